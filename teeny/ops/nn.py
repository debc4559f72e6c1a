"""Neural network functions as a Tensor mixin, composed from the other ops: linear, interpolation, layer and batch
normalization, dropout, scaled dot-product attention, the losses (cross entropy, nll, binary cross entropy, mean
squared error, l1, smooth l1, huber, kl divergence) and cosine similarity. Convolutions are conv.py's, pooling is
pooling.py's."""
from __future__ import annotations
import math
from typing import TYPE_CHECKING
import numpy as np
from teeny.dtype import dtypes, NARROW_FLOATS
from teeny.uop import UOp, Ops
from teeny.gradient import custom_gradients, tensor_rules
from teeny.ops.pytorch import DtypeError
from teeny.ops.args import ArgumentError, takes_dim, _canon_axis, _int_arg, _tuple_float, _broadcast_shape
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self


def _check_attention_mask(attn_mask, is_causal: bool) -> None:
  """attn_mask is bool (True attends) or float (added to the scores): a 0/1 int "keep" mask was added, masking nothing."""
  if attn_mask is None: return
  if is_causal: raise ArgumentError("attention takes attn_mask or is_causal, not both (as in PyTorch)")
  if attn_mask.dtype != dtypes.bool and not dtypes.is_float(attn_mask.dtype):
    raise DtypeError(f"attention's attn_mask must be bool (True attends) or float (added to the scores), got {attn_mask.dtype}")


def _check_class_axis(logits, target, name: str, ignore_index) -> None:
  """cross_entropy's and nll_loss's input has a class axis (a 0-d one has none), class targets are ints or
  probabilities, never bools, and ignore_index is an int (1.5 ignored nothing)."""
  if ignore_index is not None: _int_arg(ignore_index, f"{name}'s ignore_index")
  if logits.ndim == 0: raise ArgumentError(f"{name} needs an input with a class axis, (C,) or (N, C, ...), got a 0-d tensor")
  if target.dtype == dtypes.bool: raise DtypeError(f"{name} targets can't be bool: give class indices as ints")


# interpolate's sampling along one axis of n to m elements, as PyTorch computes it (source positions in float32, or
# float64 for a float64 input): (the source rows of each tap, int32 arrays of m) and (each tap's weights, arrays of m
# in that float type; None: one tap as is)
def _nearest(n: int, m: int, ratio, align_corners: bool, ft=np.float32, offset: float = 0.0):
  """Source rows of nearest (offset 0.5: nearest-exact); PyTorch's index math is float32 here for every dtype."""
  src = np.floor((np.arange(m, dtype=np.float32) + np.float32(offset)) * np.float32(ratio))
  return [np.minimum(src, n - 1).astype(np.int32)], None


def _source_positions(n: int, m: int, ratio, align_corners: bool, cubic: bool, ft):
  """Where each output row samples the input, in the float type ft (float64 for a float64 input, as PyTorch)."""
  i = np.arange(m, dtype=ft)
  if align_corners: return i * ft((n - 1) / (m - 1) if m > 1 else 0.0)
  src = (i + ft(0.5)) * ft(ratio) - ft(0.5)
  return src if cubic else np.maximum(src, ft(0.0))  # (linear clamps at the first row; cubic doesn't)


def _linear(n: int, m: int, ratio, align_corners: bool, ft=np.float32):
  src = _source_positions(n, m, ratio, align_corners, False, ft)
  low = np.minimum(np.floor(src), n - 1).astype(np.int32)
  high = np.minimum(low + 1, n - 1).astype(np.int32)
  frac = (src - low).astype(ft)
  return [low, high], [ft(1) - frac, frac]


def _bicubic(n: int, m: int, ratio, align_corners: bool, ft=np.float32, a: float = -0.75):
  src = _source_positions(n, m, ratio, align_corners, True, ft)
  base = np.floor(src)
  t = (src - base).astype(ft)
  def outer(d): return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a  # Keys' kernel for 1 < |d| < 2
  def inner(d): return ((a + 2) * d - (a + 3)) * d * d + 1  # and for |d| <= 1
  weights = [outer(t + 1), inner(t), inner(1 - t), outer(2 - t)]
  rows = [np.clip(base + k, 0, n - 1).astype(np.int32) for k in (-1, 0, 1, 2)]
  return rows, [w.astype(ft) for w in weights]


_RESAMPLE = {"nearest": _nearest, "nearest-exact": lambda n, m, r, ac, ft: _nearest(n, m, r, ac, ft, 0.5), "linear": _linear,
             "bilinear": _linear, "trilinear": _linear, "bicubic": _bicubic}


class NNOps:
  """Tensor's neural network functions and losses."""
  def sequential(self, layers) -> Self:
    """self through each callable of layers in turn (tinygrad's x.sequential([conv, Tensor.relu, ...]))."""
    x = self
    for layer in layers: x = layer(x)
    return x
  def linear(self, weight: Self, bias: Self | None = None) -> Self:
    """self @ weight + bias, with weight shaped (in, out) as in tinygrad (a 1-d weight scales elementwise)."""
    x = self * weight if weight.ndim == 1 else self.matmul(weight)
    return x if bias is None else x + bias
  def interpolate(self, size=None, mode: str = "linear", align_corners: bool | None = None, scale_factor=None,
                  recompute_scale_factor: bool | None = None, antialias: bool = False) -> Self:
    """Resize the last len(size) axes (tinygrad's form: size (16, 16) of an NCHW image is bilinear), with PyTorch's
    sampling: mode "nearest", "nearest-exact", "linear" (also "bilinear", "trilinear": linear on each axis) or
    "bicubic" (Keys' cubic, a = -0.75), align_corners as in torch.nn.functional.interpolate, or scale_factor
    instead of size. Each axis is one gather of its source rows and a weighted sum, so gradients flow. An int
    input keeps its dtype: nearest picks elements, the others compute in float32 and round back (PyTorch computes
    uint8 linear and bicubic in fixed point: its results can differ from these by 1 or 2). recompute_scale_factor=True
    samples at in / out, as if the size had been given (PyTorch's); antialias=True is not implemented and raises."""
    if antialias: raise ArgumentError("interpolate(antialias=True) is not supported: resize without it, or blur first")
    if mode not in _RESAMPLE: raise ArgumentError(f"interpolate mode must be one of {sorted(_RESAMPLE)}, got {mode!r}")
    if align_corners is not None and mode.startswith("nearest"): raise ArgumentError(f"align_corners is for the linear and cubic modes, not {mode!r}")
    size, scales = self._resize_to(size, scale_factor, recompute_scale_factor)
    # nearest only picks elements, so it keeps the dtype; the others compute an int input in float and round back,
    # and a half float in float32, rounded once (as PyTorch's: float16 terms of 60000 summed to inf)
    x = self if mode.startswith("nearest") or self.dtype in (dtypes.float32, dtypes.float64) else self.float()
    for k, (axis, m) in enumerate(zip(range(self.ndim - len(size), self.ndim), size)):
      n = x.shape[axis]
      # PyTorch's linear kernels and its 2-D nearest one copy an axis whose size stays, whatever the scale, and the
      # 2-D nearest doubles one by i >> 1; its other kernels sample at the scale given (1-D nearest at 1.1 too)
      plane_nearest = mode == "nearest" and len(size) == 2
      if n == m and (plane_nearest or mode in ("linear", "bilinear", "trilinear")): continue
      ratio = n / m if scales is None else 1 / scales[k]
      if plane_nearest and m == 2 * n: rows, weights = [np.arange(m, dtype=np.int32) >> 1], None
      else: rows, weights = _RESAMPLE[mode](n, m, ratio, bool(align_corners), np.float64 if x.dtype == dtypes.float64 else np.float32)
      taps = [x[(slice(None),) * axis + (type(self)(r, device=self.device),)] for r in rows]
      if weights is None:
        x = taps[0]
        continue
      shape = tuple(m if i == axis else 1 for i in range(x.ndim))
      out = None
      for tap, w in zip(taps, weights):
        term = tap * type(self)(w, device=self.device).reshape(shape).cast(x.dtype)
        out = term if out is None else out + term
      x = out
    if x.dtype != self.dtype and dtypes.is_float(self.dtype): x = x.cast(self.dtype)
    elif x.dtype != self.dtype:  # (an int input: rounded and clamped back to its dtype, like PyTorch's uint8 images)
      x = x.round().clip(dtypes.min(self.dtype), dtypes.max(self.dtype)).cast(self.dtype)
    return x
  def _resize_to(self, size, scale_factor, recompute_scale_factor) -> tuple[tuple[int, ...], tuple[float, ...] | None]:
    """interpolate's output sizes, and the scales it samples at: given a scale_factor, the sampling steps are
    1 / scale, as in PyTorch (not in / out), unless recompute_scale_factor; given a size, None (in / out)."""
    if (size is None) == (scale_factor is None): raise ArgumentError("interpolate needs exactly one of size and scale_factor")
    if size is not None and recompute_scale_factor:
      raise ArgumentError("interpolate: recompute_scale_factor is for a scale_factor, not with an explicit size (as in PyTorch)")
    given, name = (size, "size") if size is not None else (scale_factor, "scale_factor")
    count, scales = self._resized_axes(given, name), None
    if size is not None:
      sizes = tuple(_int_arg(m, "interpolate's size") for m in (size if isinstance(size, (tuple, list)) else (size,) * count))
    else:
      scales = _tuple_float(scale_factor, count)
      sizes = tuple(int(math.floor(n * s)) for n, s in zip(self.shape[-count:], scales))
      if recompute_scale_factor: scales = None
    if any(m <= 0 for m in sizes): raise ArgumentError(f"interpolate: output sizes must be > 0, got {sizes} from input {self.shape}")
    return sizes, scales
  def _resized_axes(self, given, name: str) -> int:
    """How many trailing axes interpolate resizes: PyTorch's spatial axes (all but batch and channels), one value
    of `given` per axis or one for all; a 1-d or 2-d tensor (tinygrad's form, which PyTorch refuses) names the
    last len(given) axes. A wrong count raised: it resized the channel axis, or only the last one."""
    is_sequence = isinstance(given, (tuple, list))
    if self.ndim >= 3:
      if is_sequence and len(given) != self.ndim - 2:
        raise ArgumentError(f"interpolate: {name} {tuple(given)} must have one value per spatial axis: {self.ndim - 2} for input "
                            f"shape {self.shape} (its first two axes are batch and channels)")
      return self.ndim - 2
    if not is_sequence or not 0 < len(given) <= self.ndim:
      raise ArgumentError(f"interpolate of a {self.ndim}-d tensor (no batch or channel axes) takes a tuple of at most {self.ndim} "
                          f"{name} values, one per trailing axis to resize, got {given!r}")
    return len(given)
  @takes_dim
  def normalize(self, p: float = 2.0, axis=1, eps: float = 1e-12) -> Self:
    """self / max(||self||_p, eps) along axis, like torch.nn.functional.normalize (dim=1 by default), the norm of
    any order `norm` takes (p=0 counts the nonzero elements, p=inf is the largest magnitude). A zero vector stays
    zero with a finite gradient (1 / eps), as in PyTorch (the norm's slope at 0 made it NaN)."""
    x = self._float()
    return x / x.norm(p, axis, keepdim=True).maximum(eps)
  @takes_dim
  def layernorm(self, axis=-1, eps: float = 1e-5) -> Self:
    """Normalize to mean 0 and variance 1 over axis (no affine: nn.LayerNorm adds it). float16/bfloat16 compute in
    float32 and round once, as PyTorch's layer_norm does (each rounded step cost up to 1% of a small output)."""
    def normalized(x: Self) -> Self:
      centered = x - x.mean(axis, keepdim=True)
      return centered * (centered.square().mean(axis, keepdim=True) + eps).rsqrt()
    return self._in_float32(normalized)
  def batchnorm(self, weight: Self | None, bias: Self | None, mean: Self, invstd: Self, axis=1) -> Self:
    """(x - mean) * invstd * weight + bias, the per-channel tensors laid along `axis` (tinygrad's signature)."""
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(_canon_axis(a, self.ndim) for a in axes)
    shape = tuple(s if i in axes else 1 for i, s in enumerate(self.shape))
    x = self - mean.reshape(shape)
    if weight is not None: x = x * weight.reshape(shape)
    x = x * (invstd.reshape(shape) if invstd.ndim == len(axes) else invstd)
    return x if bias is None else x + bias.reshape(shape)
  def dropout(self, p: float = 0.5, training: bool | None = None) -> Self:
    """In training (Tensor.training, or training=True as torch.nn.functional.dropout takes it), zero each element
    with probability p and scale the rest by 1/(1-p): x times a mask of 0 and 1/(1-p), like PyTorch's, so a NaN or
    inf dropped stays NaN (a where() made it 0)."""
    if not 0 <= p <= 1: raise ArgumentError(f"dropout probability must be in [0, 1], got {p}")
    if not (type(self).training if training is None else training) or p == 0: return self
    if p == 1: return self * 0
    keep = type(self).rand(*self.shape, device=self.device) >= p
    scale = keep.where(1 / (1 - p), 0.0)
    return self * (scale.cast(self.dtype) if dtypes.is_float(self.dtype) else scale)
  def scaled_dot_product_attention(self, key: Self, value: Self, attn_mask: Self | None = None, dropout_p: float = 0.0,
                                   is_causal: bool = False, scale: float | None = None, enable_gqa: bool = False) -> Self:
    """softmax(q @ k^T * scale + mask) @ v with self as the queries (..., L, d), scale 1/sqrt(d) by default.
    attn_mask: bool (True = attend) or float (added); is_causal masks out keys after each query; dropout_p drops
    weights whether or not Tensor.training is set (PyTorch's functional form; tinygrad's only in training). enable_gqa
    (grouped-query attention, like torch): keys and values with fewer heads (dim -3) than the queries, each
    shared by query_heads / kv_heads consecutive query heads."""
    if self.ndim < 2 or key.ndim < 2 or value.ndim < 2: raise ArgumentError("attention needs (..., L, d) queries, keys and values")
    if self.shape[-1] != key.shape[-1]: raise ArgumentError(f"queries {self.shape} and keys {key.shape} differ in the last dim")
    if key.shape[-2] != value.shape[-2]: raise ArgumentError(f"keys {key.shape} and values {value.shape} differ in length")
    _check_attention_mask(attn_mask, is_causal)
    if isinstance(scale, (bool, np.bool_)):  # (scale 1.0 from tinygrad's sixth argument, which is enable_gqa)
      raise TypeError(f"attention's scale must be a number or None, got {scale!r}: the sixth argument is PyTorch's scale; "
                      "tinygrad's enable_gqa goes by keyword")
    if self.dtype in NARROW_FLOATS and key.dtype == self.dtype and value.dtype == self.dtype:
      # half floats in float32, rounded once, as PyTorch's CPU attention: float16 scores above 65504 were inf (NaN out)
      mask = attn_mask if attn_mask is None or attn_mask.dtype == dtypes.bool else attn_mask.cast(self.dtype).float()
      return self.float().scaled_dot_product_attention(key.float(), value.float(), mask, dropout_p, is_causal, scale,
                                                        enable_gqa).cast(self.dtype)
    if enable_gqa and self.ndim >= 3 and key.shape[-3] != self.shape[-3]:
      heads, kv_heads = self.shape[-3], key.shape[-3]
      if heads % kv_heads or value.shape[-3] != kv_heads:
        raise ArgumentError(f"grouped-query attention needs key/value heads {kv_heads} dividing the query heads {heads}")
      key, value = key.repeat_interleave(heads // kv_heads, -3), value.repeat_interleave(heads // kv_heads, -3)
    if key.shape[-2] == 0:  # (no keys: PyTorch's zeros; the max of an empty row raised)
      shape = _broadcast_shape(self.shape[:-2], value.shape[:-2]) + (self.shape[-2], value.shape[-1])
      return type(self).zeros(*shape, dtype=self.dtype, device=self.device)
    default_scale = 1 / math.sqrt(self.shape[-1]) if self.shape[-1] else 1.0  # (a head dim of 0: all scores 0, PyTorch's mean of v)
    scores = self.matmul(key.transpose(-2, -1)) * (default_scale if scale is None else scale)
    if is_causal:
      l, s = self.shape[-2], key.shape[-2]
      causal = type(self).ones(l, s, dtype=dtypes.bool, device=self.device).tril()
      scores = causal.where(scores, -math.inf)
    if attn_mask is not None:  # (a float mask in the queries' dtype, as PyTorch's: float16 queries give float16)
      scores = attn_mask.where(scores, -math.inf) if attn_mask.dtype == dtypes.bool else scores + attn_mask.cast(scores.dtype)
    # softmax, except that a query whose every key is masked out (-inf) gets weights 0, as PyTorch's attention
    # gives it (a plain softmax is NaN there, and its NaN gradient reached every query, key and value)
    top = scores.max(-1, keepdim=True).detach()
    dead = top == -math.inf
    e = (scores - dead.where(0.0, top)).exp()
    weights = e * dead.where(1.0, e.sum(-1, keepdim=True)).reciprocal()
    return weights.dropout(dropout_p, training=True).matmul(value)  # (dropout_p applies always, as in PyTorch)

  # losses
  @staticmethod
  def _reduction(loss: Self, reduction: str, count: Self | None = None) -> Self:
    if reduction == "none": return loss
    if reduction == "sum": return loss.sum()
    if reduction == "mean": return loss.mean() if count is None else loss.sum() / count
    raise ArgumentError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
  def cross_entropy(self, target: Self, reduction: str = "mean", label_smoothing: float = 0.0, ignore_index: int = -100,
                    weight: Self | None = None) -> Self:
    """PyTorch's cross_entropy: self holds logits (N, C, ...) or (C,), target class indices (N, ...) or
    probabilities shaped like self. Rows whose class is ignore_index count for nothing (and not in the mean).
    weight (C,) scales each class's terms; with class indices the mean divides by the rows' weights, as PyTorch's."""
    if not 0 <= label_smoothing <= 1: raise ArgumentError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    axis = 1 if self.ndim > 1 else 0
    _check_class_axis(self, target, "cross_entropy", ignore_index)
    classes = self.shape[axis]
    if weight is not None and weight.shape != (classes,): raise ArgumentError(f"cross_entropy weight of shape {weight.shape}, expected ({classes},)")
    log_probs = self.log_softmax(axis)
    class_weight = None if weight is None else weight.reshape((classes,) + (1,) * (self.ndim - axis - 1))
    weighted = log_probs if class_weight is None else log_probs * class_weight
    if dtypes.is_float(target.dtype):
      if target.shape != self.shape: raise ArgumentError(f"cross_entropy probabilities {target.shape} must match the logits {self.shape}")
      probs = target * (1 - label_smoothing) + label_smoothing / classes
      return type(self)._reduction(-(weighted * probs).sum(axis), reduction)
    expected = self.shape[:axis] + self.shape[axis + 1:]
    if target.shape != expected: raise ArgumentError(f"cross_entropy targets of shape {target.shape} for logits {self.shape}: expected {expected}")
    # class numbers and ignore_index compared in a narrow int (uint8 targets, 300 classes) would wrap
    if target.dtype not in (dtypes.int32, dtypes.int64): target = target.cast(dtypes.int64)
    keep = target != ignore_index
    hot = target.unsqueeze(axis) == type(self).arange(classes, dtype=target.dtype, device=self.device).reshape((classes,) + (1,) * (self.ndim - axis - 1))
    picked = -hot.where(weighted, 0).sum(axis)
    if label_smoothing: picked = picked * (1 - label_smoothing) - weighted.mean(axis) * label_smoothing
    # a class outside [0, classes) can't be caught without reading the targets (PyTorch raises): its row's loss
    # is NaN, so the loss is visibly wrong instead of quietly small
    in_range = (target >= 0) & (target < classes)
    loss = keep.where(in_range.where(picked, math.nan), 0)
    row_weight = keep.cast(loss.dtype) if class_weight is None else keep.where(hot.where(class_weight, 0).sum(axis), 0).cast(loss.dtype)
    return type(self)._reduction(loss, reduction, row_weight.sum())
  def sparse_categorical_crossentropy(self, target: Self, ignore_index: int = -1, label_smoothing: float = 0.0,
                                      reduction: str = "mean") -> Self:
    """tinygrad's loss: logits with the classes on the LAST axis, integer targets of the other axes' shape."""
    moved = self.permute((0, self.ndim - 1) + tuple(range(1, self.ndim - 1))) if self.ndim > 1 else self
    return moved.cross_entropy(target, reduction, label_smoothing, ignore_index)
  def nll_loss(self, target: Self, weight: Self | None = None, ignore_index: int | None = -100, reduction: str = "mean") -> Self:
    """PyTorch's nll_loss: self holds log-probabilities (N, C, ...) or (C,), target class indices. Each row's loss is
    -weight[class] * self[row, class]; the mean divides by the weights of the rows counted (ignore_index: none)."""
    axis = 1 if self.ndim > 1 else 0
    _check_class_axis(self, target, "nll_loss", ignore_index)
    if dtypes.is_float(target.dtype): raise DtypeError(f"nll_loss targets are class indices, an int tensor: got {target.dtype}")
    classes = self.shape[axis]
    expected = self.shape[:axis] + self.shape[axis + 1:]
    if target.shape != expected: raise ArgumentError(f"nll_loss targets of shape {target.shape} for input {self.shape}: expected {expected}")
    if weight is not None and weight.shape != (classes,): raise ArgumentError(f"nll_loss weight of shape {weight.shape}, expected ({classes},)")
    if target.dtype not in (dtypes.int32, dtypes.int64): target = target.cast(dtypes.int64)
    class_axis = (classes,) + (1,) * (self.ndim - axis - 1)
    hot = target.unsqueeze(axis) == type(self).arange(classes, dtype=target.dtype, device=self.device).reshape(class_axis)
    keep = target != ignore_index if ignore_index is not None else None
    if keep is not None: hot = hot & keep.unsqueeze(axis)
    weights = hot.where(1.0 if weight is None else weight.reshape(class_axis), 0.0)  # each row: its class's weight
    # picked by where, not by multiplying with the 0 weights: another class's log-probability of -inf (a masked
    # vocabulary) would make 0 * -inf = NaN
    loss = hot.where(-(weights * self._float()), 0).sum(axis)
    # a class outside [0, classes) (PyTorch raises; see cross_entropy): NaN, unless the row is ignored
    outside = (target < 0) | (target >= classes)
    loss = (outside if keep is None else keep & outside).where(math.nan, loss)
    out = type(self)._reduction(loss, reduction, count=weights.sum())
    return out.cast(self._float().dtype)  # (a half float's loss: summed in float32, returned in its dtype, as PyTorch's)
  def binary_crossentropy(self, target: Self, reduction: str = "mean", weight: Self | None = None) -> Self:
    """-(y log p + (1-y) log(1-p)) with self the probabilities; logs clamped at -100, and the gradient PyTorch
    gives, (p - y) / max(p (1 - p), 1e-12) (binary_crossentropy_gradient): finite at p = 0 and 1, where the
    clamped log's slope was 0 / 0 = NaN. weight (broadcast to the loss) scales each term, as PyTorch's."""
    if target.shape != self.shape:  # (broadcast, a (3,) target against (2, 3) probabilities gave a loss of other pairs)
      raise ArgumentError(f"binary_crossentropy target of shape {target.shape} for probabilities of shape {self.shape}: give one shape (as PyTorch asks)")
    p, y = self._float()._binop_operands(target.cast(self._float().dtype))
    loss = -(y * p.log().maximum(-100) + (1 - y) * (1 - p).log().maximum(-100))
    with_rule = p._new(UOp(Ops.DETACH, loss.dtype, (loss.uop, p.uop, y.uop), "binary_crossentropy"), y)
    return type(self)._reduction(with_rule if weight is None else with_rule * weight, reduction)
  def binary_crossentropy_logits(self, target: Self, reduction: str = "mean", pos_weight: Self | None = None,
                                 weight: Self | None = None) -> Self:
    """binary_crossentropy of sigmoid(self) computed stably from the logits: max(x, 0) - x*y + log(1 + e^-|x|);
    pos_weight scales the positive term, weight every term (PyTorch's). The gradients are PyTorch's, by a rule:
    sigmoid(x) - y for the logits (1 - y - sigmoid(-x) cancelled to 0 at x = -20, where it is 2e-9)."""
    x = self._float()
    if target.shape != x.shape: raise ArgumentError(f"binary_crossentropy_logits target of shape {target.shape} for logits of shape {x.shape}: give one shape (as PyTorch asks)")
    y = target.cast(x.dtype)
    softplus_neg = (-x).softplus()  # log(1 + e^-x), stable
    if pos_weight is None: loss = x._exact_gradient((1 - y) * x + softplus_neg, "bce_logits", y)
    else:
      pos_weight = pos_weight.cast(x.dtype).expand(_broadcast_shape(pos_weight.shape, x.shape))
      loss = x._exact_gradient((1 - y) * x + (1 + (pos_weight - 1) * y) * softplus_neg, "bce_logits", y, pos_weight)
    return type(self)._reduction(loss if weight is None else loss * weight, reduction)
  def mse(self, target: Self, reduction: str = "mean") -> Self:
    """Mean squared error against target (broadcast like the operators), like torch's mse_loss; reduction 'mean',
    'sum' or 'none'."""
    return type(self)._reduction((self - target).square(), reduction)
  def l1_loss(self, target: Self, reduction: str = "mean") -> Self:
    """Mean absolute error against target (broadcast), like torch's l1_loss."""
    return type(self)._reduction((self - target).abs(), reduction)
  def smooth_l1_loss(self, target: Self, reduction: str = "mean", beta: float = 1.0) -> Self:
    """PyTorch's smooth_l1_loss: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta 0: l1_loss)."""
    if beta < 0: raise ArgumentError(f"smooth_l1_loss beta must be >= 0, got {beta}")
    d = (self - target).abs()
    return type(self)._reduction(d if beta == 0 else (d < beta).where(0.5 * d.square() / beta, d - 0.5 * beta), reduction)
  def huber_loss(self, target: Self, reduction: str = "mean", delta: float = 1.0) -> Self:
    """PyTorch's huber_loss: 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)."""
    if delta <= 0: raise ArgumentError(f"huber_loss delta must be > 0, got {delta}")
    d = (self - target).abs()
    return type(self)._reduction((d < delta).where(0.5 * d.square(), delta * (d - 0.5 * delta)), reduction)
  def kl_div(self, target: Self, reduction: str = "mean", log_target: bool = False) -> Self:
    """PyTorch's kl_div with self the log-probabilities: target (log target - self), 0 where target is 0
    (xlogy), or with log_target e^target (target - self). reduction "batchmean" divides the sum by the batch size
    (dim 0), as PyTorch's; "mean" by the element count."""
    loss = target.exp() * (target - self) if log_target else target.xlogy(target) - target * self
    if reduction == "batchmean": return loss.sum() / (self.shape[0] if self.ndim else 1)
    return type(self)._reduction(loss, reduction)
  def cosine_similarity(self, other: Self, dim: int = 1, eps: float = 1e-8) -> Self:
    """The cosine of the angle between self and other along dim (broadcast), like torch's cosine_similarity: each
    divided by max(its norm, eps) first, then their products summed."""
    a, b = self._float_operands(other)
    def unit(v: Self) -> Self: return v / v.norm(2, dim, keepdim=True).maximum(eps)
    return (unit(a) * unit(b)).sum(dim)


def _bce_logits_gradient(arg, grad, value, x, y, pos_weight=None):
  """binary_crossentropy_logits' loss (1 - y) x + (1 + (w - 1) y) softplus(-x) differentiated as PyTorch does:
  (1 + (w - 1) y) sigmoid(x) - w y for x (sigmoid(x) - y without pos_weight), (w - 1) softplus(-x) - x for y, and
  y softplus(-x) for w."""
  if pos_weight is None: return grad * (x.sigmoid() - y), grad * -x
  dx = (1 + (pos_weight - 1) * y) * x.sigmoid() - pos_weight * y
  return grad * dx, grad * ((pos_weight - 1) * (-x).softplus() - x), grad * (y * (-x).softplus())


tensor_rules["bce_logits"] = _bce_logits_gradient


def binary_crossentropy_gradient(ctx: UOp, ret: UOp) -> tuple[UOp, UOp]:
  """PyTorch's gradients of binary_crossentropy (UOp math: they differentiate again): for the probabilities
  (p - y) / max(p (1 - p), 1e-12), for the targets log(1 - p) - log(p) (unclamped, as PyTorch's: +-inf at 0, 1)."""
  p, y = ret.src[1], ret.src[2]
  spread = (p * (1 - p)).alu(Ops.MAX, p.const_like(1e-12))
  return (ctx * (p - y)).alu(Ops.FDIV, spread), ctx * ((1 - p).alu(Ops.LOG2) - p.alu(Ops.LOG2)) * math.log(2)


custom_gradients["binary_crossentropy"] = binary_crossentropy_gradient
