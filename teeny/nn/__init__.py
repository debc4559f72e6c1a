"""Neural-network layers: Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d, BatchNorm, LayerNorm, LayerNorm2d, GroupNorm,
InstanceNorm, RMSNorm, Embedding, Dropout and the recurrent cells LSTMCell and GRUCell, with PyTorch's weight layouts,
parameter names and default initialization. Optimizers live in teeny.nn.optim, model state (state dicts, safetensors)
in teeny.nn.state, and torch.nn.utils' helpers (clip_grad_norm_) in teeny.nn.utils.

A layer is a plain object holding tensors as attributes and computing with Tensor methods in __call__; there is
no Module base class: get_parameters(model) and get_state_dict(model) find the tensors by walking attributes.
Weights start with requires_grad unset; an optimizer turns it on for the tensors it is given. Running statistics
are made with requires_grad=False, so an optimizer keeps them as buffers. Training behaviour (batch statistics,
dropout) follows `Tensor.training` (`with Tensor.train(): ...`)."""
from __future__ import annotations
import math, numbers
import numpy as np
from teeny.dtype import dtypes, NARROW_FLOATS
from teeny.tensor import Tensor
from teeny.schedule import is_realized
from teeny.ops.args import _padding_arg, conv_padding, _one_for_all
from teeny.nn import optim, state, utils  # noqa: F401  (teeny.nn.optim, .state and .utils, also as attributes)
from teeny.nn.recurrent import LSTMCell, GRUCell  # noqa: F401  (teeny.nn.LSTMCell: the cells live in their own module)


def _ntuple(x, n: int, name: str) -> tuple[int, ...]:
  """An int for every one of n spatial dims (one int given, or for all but kernel_size one in a sequence, as
  PyTorch's convolutions read stride=(2,): the same for all)."""
  if name != "kernel_size": x = _one_for_all(x, n)
  out = (x,) * n if isinstance(x, int) else tuple(x)
  if len(out) != n or not all(isinstance(v, int) for v in out): raise TypeError(f"{name} must be an int or {n} ints, got {x!r}")
  return out


def _uniform_fan_in(shape: tuple[int, ...], fan_in: int) -> Tensor:
  """PyTorch's default bias init: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
  return Tensor.uniform(*shape, low=-bound, high=bound)


def _fresh(t: Tensor, requires_grad: bool | None = None) -> Tensor:
  """A constant-initialized tensor in a buffer of its own: equal lazy graphs (two layers' Tensor.ones(64)) are one
  node, and would realize into one buffer that an in-place update of either would change for both."""
  out = t.clone()
  out.requires_grad = requires_grad
  return out


class Linear:
  """y = x @ weight.T + bias, weight (out_features, in_features) like PyTorch; weights kaiming_uniform(a=sqrt(5))
  (= uniform(+-1/sqrt(in_features))) and bias uniform(+-1/sqrt(in_features)), PyTorch's defaults."""
  def __init__(self, in_features: int, out_features: int, bias: bool = True):
    self.weight = Tensor.kaiming_uniform(out_features, in_features, a=math.sqrt(5))
    self.bias = _uniform_fan_in((out_features,), in_features) if bias else None

  def __call__(self, x: Tensor) -> Tensor:
    """x @ weight.T + bias over the last axis of x (in_features); the other axes are batch."""
    if x.shape[-1:] != self.weight.shape[1:]:
      raise ValueError(f"Linear with {self.weight.shape[1]} input features got an input of shape {x.shape}")
    return x.linear(self.weight.transpose(), self.bias)


def _set_geometry(layer, in_channels: int, out_channels: int, kernel_size, stride, dilation, groups: int):
  """A convolution layer's kernel_size, stride, dilation (an int, or one per spatial dim: layer.nd) and groups,
  which must divide both channel counts."""
  if groups <= 0 or in_channels % groups or out_channels % groups:
    raise ValueError(f"{type(layer).__name__}: in_channels {in_channels} and out_channels {out_channels} must be divisible by groups {groups}")
  layer.kernel_size = _ntuple(kernel_size, layer.nd, "kernel_size")
  layer.stride, layer.dilation = _ntuple(stride, layer.nd, "stride"), _ntuple(dilation, layer.nd, "dilation")
  layer.groups = groups


class _ConvNd:
  """Convolution over `nd` spatial dims (Conv1d, Conv2d, Conv3d); weight (out_channels, in_channels / groups,
  *kernel) like PyTorch, initialized like PyTorch (kaiming_uniform(a=sqrt(5)) over fan_in = in_channels / groups *
  prod(kernel); bias uniform(+-1/sqrt(fan_in))). padding: an int, one per spatial dim, or 'valid' / 'same'
  (stride 1, like PyTorch); padding_mode: what the padding holds, 'zeros', 'reflect', 'replicate' or 'circular'."""
  nd = 2
  def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1, groups: int = 1, bias: bool = True,
               padding_mode: str = "zeros"):
    _set_geometry(self, in_channels, out_channels, kernel_size, stride, dilation, groups)
    if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
      raise ValueError(f"{type(self).__name__}: padding_mode must be 'zeros', 'reflect', 'replicate' or 'circular', got {padding_mode!r}")
    self.padding, self.padding_mode = self._padding(padding), padding_mode
    self.weight = Tensor.kaiming_uniform(out_channels, in_channels // groups, *self.kernel_size, a=math.sqrt(5))
    self.bias = _uniform_fan_in((out_channels,), in_channels // groups * math.prod(self.kernel_size)) if bias else None

  def _padding(self, padding):
    if isinstance(padding, str): return conv_padding(padding, self.kernel_size, self.stride, self.dilation, type(self).__name__)
    return padding if isinstance(padding, int) else _ntuple(padding, self.nd, "padding")

  def __call__(self, x: Tensor) -> Tensor:
    """The convolution of x (N, in_channels, *spatial): (N, out_channels, *spatial_out); an unbatched x
    (in_channels, *spatial) gives (out_channels, *spatial_out), as in PyTorch."""
    if x.ndim == self.nd + 1: return self(x.unsqueeze(0)).squeeze(0)
    padding = self.padding
    if self.padding_mode != "zeros":  # the input padded by the mode first, then convolved without padding
      x, padding = x.pad(((0, 0), (0, 0)) + _padding_arg(padding, self.nd), mode=self.padding_mode), 0
    return x.conv2d(self.weight, self.bias, groups=self.groups, stride=self.stride, dilation=self.dilation, padding=padding)


class Conv1d(_ConvNd):
  """1D convolution of (N, C, L); see _ConvNd."""
  nd = 1


class Conv2d(_ConvNd):
  """2D convolution of (N, C, H, W); weight (out_channels, in_channels / groups, kh, kw); see _ConvNd."""
  nd = 2


class Conv3d(_ConvNd):
  """3D convolution of (N, C, D, H, W); see _ConvNd."""
  nd = 3


class _ConvTransposeNd:
  """Transposed convolution over `nd` spatial dims (the gradient of a convolution with respect to its input);
  weight (in_channels, out_channels / groups, *kernel) like PyTorch, which initializes it over fan_in =
  out_channels / groups * prod(kernel). padding_mode: 'zeros' only, as in PyTorch."""
  nd = 2
  def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0, dilation=1,
               groups: int = 1, bias: bool = True, padding_mode: str = "zeros"):
    if padding_mode != "zeros": raise ValueError(f'{type(self).__name__}: only padding_mode="zeros" is supported (as in PyTorch), got {padding_mode!r}')
    _set_geometry(self, in_channels, out_channels, kernel_size, stride, dilation, groups)
    self.padding, self.output_padding = _ntuple(padding, self.nd, "padding"), _ntuple(output_padding, self.nd, "output_padding")
    self.weight = Tensor.kaiming_uniform(in_channels, out_channels // groups, *self.kernel_size, a=math.sqrt(5))
    self.bias = _uniform_fan_in((out_channels,), out_channels // groups * math.prod(self.kernel_size)) if bias else None

  def __call__(self, x: Tensor, output_size=None) -> Tensor:
    """The transposed convolution of x (N, in_channels, *spatial): (N, out_channels, *spatial_out); an unbatched x
    (in_channels, *spatial) gives (out_channels, *spatial_out), as in PyTorch. output_size (the spatial sizes, or
    a whole shape) picks the output_padding that gives it, as PyTorch's: a stride > 1 leaves several possible."""
    if x.ndim == self.weight.ndim - 1: return self(x.unsqueeze(0), output_size).squeeze(0)
    output_padding = self.output_padding if output_size is None else self._padding_for(x, output_size)
    return x.conv_transpose2d(self.weight, self.bias, groups=self.groups, stride=self.stride, dilation=self.dilation,
                              padding=self.padding, output_padding=output_padding)

  def _padding_for(self, x: Tensor, output_size) -> tuple[int, ...]:
    """The output_padding per spatial dim that makes the output output_size[-nd:]: each in [0, stride), PyTorch's
    range for the layer (its functional form also takes up to dilation - 1)."""
    wanted = tuple(output_size)[-self.nd:]
    if len(wanted) != self.nd: raise ValueError(f"{type(self).__name__}: output_size {output_size} needs {self.nd} spatial sizes")
    extra = []
    for n, want, k, s, p, d in zip(x.shape[2:], wanted, self.kernel_size, self.stride, self.padding, self.dilation):
      smallest = (n - 1) * s - 2 * p + d * (k - 1) + 1
      if not 0 <= want - smallest < s:
        raise ValueError(f"{type(self).__name__}: output_size {tuple(output_size)} can't be reached from input {x.shape}: "
                         f"each size must be in [{smallest}, {smallest + s - 1}]")
      extra.append(want - smallest)
    return tuple(extra)


class ConvTranspose1d(_ConvTransposeNd):
  """Transposed 1D convolution; see _ConvTransposeNd."""
  nd = 1


class ConvTranspose2d(_ConvTransposeNd):
  """Transposed 2D convolution (the gradient of Conv2d with respect to its input); see _ConvTransposeNd."""
  nd = 2


class ConvTranspose3d(_ConvTransposeNd):
  """Transposed 3D convolution; see _ConvTransposeNd."""
  nd = 3


def _channel_count(num_features, sz) -> int:
  """BatchNorm's channel count from PyTorch's num_features or tinygrad's sz: exactly one of them, a positive int."""
  if (num_features is None) == (sz is None):
    raise TypeError("BatchNorm takes the channel count once: num_features (PyTorch) or sz (tinygrad)")
  count = num_features if sz is None else sz
  if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
    raise TypeError(f"BatchNorm's channel count must be a positive int, got {count!r}")
  return count


def _check_batchnorm_order(momentum, affine, track_running_stats) -> None:
  """BatchNorm's arguments after eps come in PyTorch's order (momentum, affine, track_running_stats); tinygrad's
  is (affine, track_running_stats, momentum), so tinygrad's BatchNorm(64, 1e-5, False) would pass affine=False
  as momentum 0 (running statistics frozen, weight and bias kept): refused, by the types, instead."""
  if isinstance(momentum, (bool, np.bool_)) or not (momentum is None or isinstance(momentum, numbers.Real)):
    raise TypeError(f"BatchNorm's momentum must be a number or None, got {momentum!r}: the arguments after eps are "
                    "PyTorch's (momentum, affine, track_running_stats), not tinygrad's (affine, track_running_stats, "
                    "momentum); pass them by keyword")
  for name, flag in (("affine", affine), ("track_running_stats", track_running_stats)):
    if not isinstance(flag, (bool, np.bool_, numbers.Integral)):
      raise TypeError(f"BatchNorm's {name} must be a bool, got {flag!r}: the arguments after eps are PyTorch's "
                      "(momentum, affine, track_running_stats); pass them by keyword")


class BatchNorm:
  """Batch normalization over axis 1 (channels) of (N, C), (N, C, L) or (N, C, H, W) inputs: BatchNorm1d,
  BatchNorm2d and BatchNorm3d are this class. In training, normalizes by the batch's mean and (biased) variance
  and moves the running statistics toward them (running_var by the unbiased variance, like PyTorch):
  running = (1 - momentum) * running + momentum * batch, or the cumulative average when momentum is None. In
  eval it normalizes by the running statistics; with track_running_stats=False, by the batch's in eval too.
  The channel count is `num_features` (PyTorch's name) or `sz` (tinygrad's); the other arguments in PyTorch's order
  (tinygrad's differs after eps: pass those by keyword)."""
  def __init__(self, num_features: int | None = None, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
               track_running_stats: bool = True, *, sz: int | None = None):
    num_features = _channel_count(num_features, sz)
    _check_batchnorm_order(momentum, affine, track_running_stats)
    self.num_features, self.eps, self.momentum, self.track_running_stats = num_features, eps, momentum, track_running_stats
    self.weight = _fresh(Tensor.ones(num_features)) if affine else None
    self.bias = _fresh(Tensor.zeros(num_features)) if affine else None
    if track_running_stats:
      self.running_mean = _fresh(Tensor.zeros(num_features), requires_grad=False)
      self.running_var = _fresh(Tensor.ones(num_features), requires_grad=False)
      self.num_batches_tracked = _fresh(Tensor.zeros((), dtype=dtypes.int64), requires_grad=False)

  def __call__(self, x: Tensor) -> Tensor:
    """x normalized per channel (axis 1) by the batch's statistics (in training, which also moves the running
    ones, or without track_running_stats) or by the running ones, then weight * x + bias."""
    if x.ndim < 2 or x.shape[1] != self.num_features:
      raise ValueError(f"BatchNorm over {self.num_features} channels got an input of shape {x.shape} (channels are axis 1)")
    axes = tuple(a for a in range(x.ndim) if a != 1)
    if Tensor.training or not self.track_running_stats:  # (a half float batch's statistics in float32, as PyTorch's)
      mean, var, n = self._batch_statistics(x.float() if x.dtype in NARROW_FLOATS else x, axes)
      if Tensor.training and n <= 1: raise ValueError(f"BatchNorm in training needs more than one value per channel, got input of shape {x.shape}")
      if Tensor.training and self.track_running_stats: self._track(mean.detach(), var.detach(), n)
    else: mean, var = self.running_mean, self.running_var
    return _as_input(x.batchnorm(self.weight, self.bias, mean, (var + self.eps).rsqrt()), x)

  # where the batch is spread over several processes: an object with sum(tensor) and count(int) over all of them
  # (teeny.distributed.sync_batchnorm sets it); None: this process's batch is the batch
  batch_statistics_over = None

  def _batch_statistics(self, x: Tensor, axes: tuple) -> tuple[Tensor, Tensor, int]:
    """The batch's mean and biased variance per channel, and how many values each channel has."""
    n = x.numel() // self.num_features
    group = self.batch_statistics_over
    if group is None: return x.mean(axes), x.var(axes, correction=0), n
    total = group.count(n)
    mean = group.sum(x.sum(axes)) / total
    centered = x - mean.reshape([-1 if a == 1 else 1 for a in range(x.ndim)])
    return mean, group.sum((centered * centered).sum(axes)) / total, total

  def _track(self, mean: Tensor, var: Tensor, n: int):
    stats = (self.running_mean, self.running_var, self.num_batches_tracked)
    # realized once, so every update is a write into their buffers, which an optimizer step and a TinyJit call run
    # with their own work (teeny/program_order.py's writes_to_run_now); over lazy statistics an update is a new
    # graph over the last one, which nothing runs until the statistics are read (a TinyJit replay never did)
    if not all(is_realized(t.uop) for t in stats): Tensor.realize_all(*stats)
    count = self.num_batches_tracked.assign(self.num_batches_tracked + 1)
    factor = (1 / count.cast(self.running_mean.dtype)) if self.momentum is None else self.momentum  # (float64 statistics: in float64)
    self.running_mean.assign((1 - factor) * self.running_mean + factor * mean)
    self.running_var.assign((1 - factor) * self.running_var + factor * var * (n / (n - 1)))


BatchNorm1d = BatchNorm2d = BatchNorm3d = BatchNorm


class LayerNorm:
  """Normalize over the last len(normalized_shape) axes (mean 0, biased variance 1), then weight * x + bias
  (bias=False: weight only, as PyTorch's)."""
  def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True):
    self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    self.axis, self.eps = tuple(-1 - i for i in range(len(self.normalized_shape))), eps
    self.weight = _fresh(Tensor.ones(*self.normalized_shape)) if elementwise_affine else None
    self.bias = _fresh(Tensor.zeros(*self.normalized_shape)) if elementwise_affine and bias else None

  def __call__(self, x: Tensor) -> Tensor:
    """x normalized over its last len(normalized_shape) axes, then weight * x + bias."""
    if x.shape[x.ndim - len(self.normalized_shape):] != self.normalized_shape:
      raise ValueError(f"LayerNorm over {self.normalized_shape} got an input of shape {x.shape}")
    out = x.layernorm(axis=self.axis, eps=self.eps)
    if self.weight is not None: out = out * self.weight
    return _as_input(out if self.bias is None else out + self.bias, x)


class LayerNorm2d(LayerNorm):
  """LayerNorm over the channels of an NCHW input (each pixel normalized across its C values), weight and bias
  per channel: what ConvNeXt-style models call LayerNorm2d. Same as moving channels last, LayerNorm(C), and back."""
  def __init__(self, num_channels: int, eps: float = 1e-5, elementwise_affine: bool = True):
    if not isinstance(num_channels, int): raise TypeError(f"LayerNorm2d takes the channel count as an int, got {num_channels!r}")
    super().__init__(num_channels, eps, elementwise_affine)

  def __call__(self, x: Tensor) -> Tensor:
    """x (N, C, H, W) normalized across its channels at each pixel, then scaled and shifted per channel."""
    if x.ndim != 4 or x.shape[1] != self.normalized_shape[0]:
      raise ValueError(f"LayerNorm2d over {self.normalized_shape[0]} channels got an input of shape {x.shape} (wants N, C, H, W)")
    return super().__call__(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _as_input(out: Tensor, x: Tensor) -> Tensor:
  """A norm layer's result in a half-float input's dtype, as PyTorch's mixed norms give it (half input, float32
  weights and statistics: computed in float32, returned in half)."""
  return out.cast(x.dtype) if dtypes.is_float(x.dtype) and x.dtype.itemsize < out.dtype.itemsize else out


def _per_channel(t: Tensor, ndim: int) -> Tensor:
  """A (C,) weight shaped to broadcast over axis 1 of an ndim-dim input."""
  return t.reshape((1, -1) + (1,) * (ndim - 2))


class GroupNorm:
  """Split the channels (axis 1) into num_groups groups, normalize each group of each sample over its channels and
  positions, then scale and shift per channel."""
  def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True):
    if num_groups <= 0 or num_channels % num_groups:
      raise ValueError(f"GroupNorm: num_channels {num_channels} must be divisible by num_groups {num_groups}")
    self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
    self.weight = _fresh(Tensor.ones(num_channels)) if affine else None
    self.bias = _fresh(Tensor.zeros(num_channels)) if affine else None

  def __call__(self, x: Tensor) -> Tensor:
    """x (N, C, ...) normalized per sample and group of channels, then scaled and shifted per channel."""
    if x.ndim < 2 or x.shape[1] != self.num_channels:
      raise ValueError(f"GroupNorm over {self.num_channels} channels got an input of shape {x.shape} (channels are axis 1)")
    group_size = math.prod(x.shape[1:]) // self.num_groups  # (not -1: a batch of 0 leaves -1 undetermined)
    out = x.reshape(x.shape[0], self.num_groups, group_size).layernorm(eps=self.eps).reshape(x.shape)
    if self.weight is None: return out
    return _as_input(out * _per_channel(self.weight, x.ndim) + _per_channel(self.bias, x.ndim), x)


class InstanceNorm:
  """Normalize each channel of each sample over its positions (mean 0, biased variance 1), then scale and shift per
  channel: inputs (N, C, ...). tinygrad's signature, so affine defaults to True (PyTorch's InstanceNorm1d/2d/3d
  default to affine=False and keep no running statistics unless asked; this layer keeps none)."""
  def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True):
    self.num_features, self.eps = num_features, eps
    self.weight = _fresh(Tensor.ones(num_features)) if affine else None
    self.bias = _fresh(Tensor.zeros(num_features)) if affine else None

  def __call__(self, x: Tensor) -> Tensor:
    """x (N, C, ...) normalized per sample and channel over its positions, then scaled and shifted per channel. A
    2-D x is one unbatched sample (C, L), as PyTorch's InstanceNorm1d reads it."""
    if x.ndim == 2 and x.shape[0] == self.num_features: return self(x.unsqueeze(0)).squeeze(0)
    if x.ndim < 3 or x.shape[1] != self.num_features:
      raise ValueError(f"InstanceNorm over {self.num_features} channels got an input of shape {x.shape} (wants N, C, ... or C, L)")
    positions = math.prod(x.shape[2:])
    out = x.reshape(x.shape[0], self.num_features, positions).layernorm(eps=self.eps).reshape(x.shape)
    if self.weight is None: return out
    return _as_input(out * _per_channel(self.weight, x.ndim) + _per_channel(self.bias, x.ndim), x)


class RMSNorm:
  """x / sqrt(mean(x^2) + eps) over the last axis (or the last len(dim) axes), times a learned weight. As PyTorch's:
  float16/bfloat16 inputs compute in float32 and round once, and eps defaults to the machine epsilon of the dtype
  it computes in (float32's for half floats; tinygrad's is 1e-6)."""
  def __init__(self, dim, eps: float | None = None, elementwise_affine: bool = True):
    self.normalized_shape = (dim,) if isinstance(dim, int) else tuple(dim)
    self.axis, self.eps = tuple(-1 - i for i in range(len(self.normalized_shape))), eps
    self.weight = _fresh(Tensor.ones(*self.normalized_shape)) if elementwise_affine else None

  def __call__(self, x: Tensor) -> Tensor:
    """x / sqrt(mean(x^2) + eps) over the normalized axes, times weight."""
    if x.shape[x.ndim - len(self.normalized_shape):] != self.normalized_shape:
      raise ValueError(f"RMSNorm over {self.normalized_shape} got an input of shape {x.shape}")
    def normalized(v: Tensor) -> Tensor:  # (v in float32 for a half-float x: squares of |x| > 256 overflow float16)
      eps = self.eps if self.eps is not None else 2.0 ** -dtypes.finfo(v.dtype)[1]  # (the computing dtype's machine epsilon, as PyTorch's)
      out = v * (v.square().mean(self.axis, keepdim=True) + eps).rsqrt()
      return out if self.weight is None else out * self.weight
    return _as_input(x._in_float32(normalized), x)


class Embedding:
  """A lookup table: row idx of weight (vocab_size, embed_size) for each int in the input, weights normal(0, 1)
  like PyTorch. Selected with a comparison and a sum, so the gradient reaches exactly the rows that were used
  (an index out of range gives zeros: checking it would need to read the indices from the device). padding_idx, as
  PyTorch's: that row starts as zeros and gets no gradient."""
  def __init__(self, vocab_size: int, embed_size: int, padding_idx: int | None = None):
    self.vocab_size, self.embed_size = vocab_size, embed_size
    if padding_idx is not None and not -vocab_size <= padding_idx < vocab_size:
      raise ValueError(f"Embedding padding_idx {padding_idx} is out of range for {vocab_size} rows")
    self.padding_idx = None if padding_idx is None else padding_idx % vocab_size
    self.weight = Tensor.normal(vocab_size, embed_size)
    if self.padding_idx is not None: self.weight = _fresh(self._is_padding().where(0.0, self.weight))

  def __call__(self, idx: Tensor) -> Tensor:
    """The rows of weight that the int tensor idx names: shape idx.shape + (embed_size,)."""
    if not isinstance(idx, Tensor): raise TypeError(f"Embedding takes an int Tensor of indices, got {type(idx).__name__}")
    if not dtypes.is_int(idx.dtype): raise TypeError(f"Embedding indices must be ints, got {idx.dtype}")
    vocab = Tensor.arange(self.vocab_size, dtype=idx.dtype, device=idx.device)
    hit = (idx.unsqueeze(-1) == vocab).unsqueeze(-1)  # (..., vocab, 1)
    weight = self.weight if self.padding_idx is None else self._is_padding().where(self.weight.detach(), self.weight)
    return hit.where(weight, 0.0).sum(-2)

  def _is_padding(self) -> Tensor:
    """(vocab, 1): True at the padding row."""
    return (Tensor.arange(self.vocab_size, device=self.weight.device) == self.padding_idx).reshape(-1, 1)


class Dropout:
  """Zero each element with probability p in training and scale the rest by 1 / (1 - p); the identity in eval."""
  def __init__(self, p: float = 0.5):
    if not 0 <= p <= 1: raise ValueError(f"Dropout probability must be in [0, 1], got {p}")
    self.p = p

  def __call__(self, x: Tensor) -> Tensor:
    """x.dropout(p): elements zeroed and the rest scaled in training (Tensor.training), x itself in eval."""
    return x.dropout(self.p)
