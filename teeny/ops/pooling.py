"""Pooling as a Tensor mixin: the sliding windows of a tensor's last axes as a view (_pool, which conv2d and unfold
read too), max pooling (with PyTorch's gradient: each window's to its first maximum, and max_unpool2d), average
pooling, and putting values per window element back where the windows read them (_windows_adjoint), which the
gradients of pooling use when windows overlap."""
from __future__ import annotations
import itertools, math
from typing import TYPE_CHECKING
from teeny.dtype import dtypes, NARROW_FLOATS
from teeny.uop import UOp, Ops
from teeny.ops.args import ArgumentError, _size_arg, _int_arg, _spatial_arg, _spatial_padding
from teeny.ops.constants import _iota
from teeny.gradient import tensor_rules
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self


def _along(x, axis: int, how: str, span: tuple[int, int]):
  """x padded ("pad": zeros before and after) or shrunk ("shrink": to [start, end)) along one axis only."""
  if how == "pad": return x.pad(tuple(span if a == axis else (0, 0) for a in range(x.ndim)))
  return x.shrink(tuple(span if a == axis else (0, n) for a, n in enumerate(x.shape)))


def _placed(x, axis: int, before: int, after: int):
  """x along one axis with `before` zeros added at the start and `after` at the end, where a negative count
  drops that many of x's own entries instead (they would land outside the axis)."""
  x = _along(x, axis, "shrink", (max(0, -before), x.shape[axis] - max(0, -after)))
  return _along(x, axis, "pad", (max(0, before), max(0, after)))


def _apart(kernel: tuple, stride: tuple, dilation: tuple) -> bool:
  """Whether no two windows overlap: each window's span (kernel * dilation) fits in its stride, on every axis."""
  return all(k * d <= s for k, s, d in zip(kernel, stride, dilation))


def _real_slots(x, kernel: tuple, stride: tuple, dilation: tuple, pads: tuple):
  """For each window of x padded by `pads`, which of its slots hold an element of x rather than padding (shape
  (*outs, *kernel), broadcast over x's other axes); None when nothing is padded."""
  if not any(lo or hi for lo, hi in pads): return None
  plane = type(x).full(x.shape[-len(kernel):], True, dtype=dtypes.bool, device=x.device)
  return plane.pad(pads)._pool(kernel, stride, dilation)


def _picked_by_rank(windows, values, real, kernel: tuple):
  """Which slot of each window (..., *outs, *kernel) max pooling picks, by one reduce over a rank per slot: the
  NaNs rank highest, the last one first; then the slots holding the window's maximum (`values`, (..., *outs)),
  the first one first; padded slots (not `real`) and smaller values rank 0."""
  nd, size = len(kernel), math.prod(kernel)
  order = _iota(size, dtypes.int32, windows).reshape(kernel)
  at_max = windows == values.reshape(values.shape + (1,) * nd)
  if real is not None: at_max = at_max & real
  rank = windows.isnan().where(order + (size + 1), at_max.where(size - order, 0))
  best = rank.max(tuple(range(-nd, 0)), keepdim=True)
  # the best rank's slot, so the pick is a comparison with the slot's order: no slot's rank is read back (each
  # input element, summing its windows' picks, reads a slot per window, not the windows' elements again)
  return order == (best > size).where(best - (size + 1), size - best)


def _picked_by_comparing(windows, real, kernel: tuple):
  """_picked_by_rank's pick for a small window, elementwise: a slot is picked when it wins against every slot of
  its window (broadcast over it), itself included. A NaN wins against a number and against a NaN at or before it;
  a number wins against a NaN never, against a smaller number or padding always, and against an equal number
  when it comes first. Padding wins against nothing."""
  nd = len(kernel)
  position = _iota(math.prod(kernel), dtypes.int32, windows).reshape(kernel)
  mine_nan, picked = windows.isnan(), None
  def slot(t, at): return t.shrink(tuple((0, n) for n in t.shape[:-nd]) + tuple((a, a + 1) for a in at))  # (broadcast)
  for i, at in enumerate(itertools.product(*(range(k) for k in kernel))):
    other, other_nan = slot(windows, at), slot(mine_nan, at)
    # against slot i: before it (position > i), an equal number of its keeps the win; after it, mine does
    beats = (position > i).where(windows > other, windows >= other)
    if real is not None: beats = real & (beats | ~slot(real, at))
    wins = mine_nan.where(~other_nan | (position >= i), ~other_nan & beats)
    picked = wins if picked is None else picked & wins
  return picked


def _check_pool_padding(kernel: tuple, pads: tuple, name: str) -> None:
  """Padding of at most half the kernel size on each side, PyTorch's rule (half the kernel, not of its span with
  dilation): with more, some windows hold padding only, and max pooling gave -inf there, average pooling without
  count_include_pad NaN. (A negative pad, which crops, is teeny's leniency.)"""
  for k, (lo, hi) in zip(kernel, pads):
    if lo > k // 2 or hi > k // 2:
      raise ArgumentError(f"{name}: padding {max(lo, hi)} is more than half the window: at most half the kernel size {k}, {k // 2}, "
                          "as in PyTorch")


def _pooled_dims(kernel_size) -> int:
  """How many axes a *2d pooling pools: 2, as PyTorch's (a one-element kernel_size counts for both), or as many as
  a longer kernel_size has entries (tinygrad's form, max_pool2d((2, 2, 2)), which PyTorch refuses)."""
  return len(kernel_size) if isinstance(kernel_size, (tuple, list)) and len(kernel_size) > 2 else 2


def _unpool_size(output_size, default: tuple, stride: tuple) -> tuple[int, ...]:
  """max_unpool2d's output_size (the spatial sizes, or a whole shape with them last): each within a stride of the
  default size, PyTorch's rule (a larger plane is not the one the pooled indices number: values land elsewhere)."""
  nd = len(default)
  given = tuple(output_size)
  if len(given) not in (nd, nd + 2): raise ArgumentError(f"max_unpool: output_size {given} must have {nd} or {nd + 2} sizes")
  spatial = tuple(_size_arg(n, "max_unpool's output_size") for n in given[-nd:])
  for n, want, s in zip(default, spatial, stride):
    if not n - s < want < n + s:
      raise ArgumentError(f"max_unpool: output_size {given} can't come from this pooling: each size must be between {n - s} "
                          f"and {n + s} (exclusive) around the default {default}, as in PyTorch")
  return spatial


class PoolingOps:
  """Tensor's sliding windows and pooling."""
  def _pool(self, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]) -> Self:
    """Sliding windows over the last len(kernel) axes, as a view: shape (..., *out_sizes, *kernel).
    Window j of output position o reads input o*stride + j*dilation. The trick: repeat the axis until it is long
    enough, then read rows of length `period` (a multiple of the input length plus the dilation): row j starts
    j*dilation further into the (repeating) input, and taking every stride-th element of the row walks the
    output positions."""
    nd = len(kernel)
    prefix, sizes = self.shape[:-nd], self.shape[-nd:]
    outs = [(n - d * (k - 1) - 1) // s + 1 for n, k, s, d in zip(sizes, kernel, stride, dilation)]
    for n, k, o in zip(sizes, kernel, outs):
      if o <= 0: raise ArgumentError(f"window {kernel} (dilation {dilation}) is larger than the input {sizes}")
    if _apart(kernel, stride, dilation): return self._pool_apart(kernel, stride, dilation, outs)
    periods = [n * max(1, math.ceil((o * s - d) / n)) + d for n, o, s, d in zip(sizes, outs, stride, dilation)]
    keep = tuple((0, s) for s in prefix)
    x = self._tiled((1,) * len(prefix) + tuple(math.ceil(k * p / n) for n, k, p in zip(sizes, kernel, periods)))
    x = x.shrink(keep + tuple((0, k * p) for k, p in zip(kernel, periods)))
    x = x.reshape(prefix + tuple(d for k, p in zip(kernel, periods) for d in (k, p)))
    x = x.shrink(keep + tuple(r for k, o, s in zip(kernel, outs, stride) for r in ((0, k), (0, o * s))))
    x = x.reshape(prefix + tuple(d for k, o, s in zip(kernel, outs, stride) for d in (k, o, s)))
    x = x.shrink(keep + tuple(r for k, o in zip(kernel, outs) for r in ((0, k), (0, o), (0, 1))))
    x = x.reshape(prefix + tuple(d for k, o in zip(kernel, outs) for d in (k, o)))
    p = len(prefix)
    return x.permute(tuple(range(p)) + tuple(p + 2 * i + 1 for i in range(nd)) + tuple(p + 2 * i for i in range(nd)))
  def _pool_apart(self, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...], outs: list[int]) -> Self:
    """_pool's windows where no two overlap (kernel * dilation <= stride: max_pool2d(2), a patchify conv): each
    axis cut to outs * stride and folded into (out, stride), of which each window takes its first kernel * dilation
    elements, every dilation-th. Only shrinks, pads and reshapes, so the gradient is too: the input's gradient is
    one elementwise kernel, where the general trick's repeat makes it a sum over the repeats."""
    nd, p = len(kernel), self.ndim - len(kernel)
    prefix, keep = self.shape[:p], tuple((0, n) for n in self.shape[:p])
    spans = [o * s for o, s in zip(outs, stride)]
    x = self.shrink(keep + tuple((0, min(n, span)) for n, span in zip(self.shape[p:], spans)))
    # (a PAD of the view, not pad()'s copy: the windows stay a view of self, as unfold's are in PyTorch; the padding
    # is never read, every window ends inside self)
    x = x._view(Ops.PAD, ((0, 0),) * p + tuple((0, span - n) for n, span in zip(x.shape[p:], spans)))
    x = x.reshape(prefix + tuple(d for o, s in zip(outs, stride) for d in (o, s)))
    x = x.shrink(keep + tuple(r for o, k, d in zip(outs, kernel, dilation) for r in ((0, o), (0, k * d))))
    x = x.reshape(prefix + tuple(n for o, k, d in zip(outs, kernel, dilation) for n in (o, k, d)))
    x = x.shrink(keep + tuple(r for o, k in zip(outs, kernel) for r in ((0, o), (0, k), (0, 1))))
    x = x.reshape(prefix + tuple(n for o, k in zip(outs, kernel) for n in (o, k)))
    return x.permute(tuple(range(p)) + tuple(p + 2 * i for i in range(nd)) + tuple(p + 2 * i + 1 for i in range(nd)))
  def _pool_apart_adjoint(self, sizes: tuple, kernel: tuple, stride: tuple, dilation: tuple) -> Self:
    """_pool_apart's movement ops undone in reverse, each by its adjoint (a shrink by a pad, a pad by a shrink):
    self, per window element (..., *outs, *kernel), put back where each element was read, zeros elsewhere."""
    nd = len(kernel)
    p = self.ndim - 2 * nd
    prefix, outs = self.shape[:p], self.shape[p:p + nd]
    x = self.permute(tuple(range(p)) + tuple(a for i in range(nd) for a in (p + i, p + nd + i)))
    x = x.reshape(prefix + tuple(n for o, k in zip(outs, kernel) for n in (o, k, 1)))
    x = x.pad(((0, 0),) * p + tuple(r for d in dilation for r in ((0, 0), (0, 0), (0, d - 1))))
    x = x.reshape(prefix + tuple(n for o, k, d in zip(outs, kernel, dilation) for n in (o, k * d)))
    x = x.pad(((0, 0),) * p + tuple(r for k, s, d in zip(kernel, stride, dilation) for r in ((0, 0), (0, s - k * d))))
    x = x.reshape(prefix + tuple(o * s for o, s in zip(outs, stride)))
    x = x.shrink(tuple((0, n) for n in prefix) + tuple((0, min(n, m)) for n, m in zip(sizes, x.shape[p:])))
    return x.pad(((0, 0),) * p + tuple((0, n - m) for n, m in zip(sizes, x.shape[p:])))
  def _pool_args(self, kernel_size, stride, dilation, padding, nd: int = 2):
    if self.ndim < nd: raise ArgumentError(f"pooling over {nd} dims needs at least {nd} dimensions, got shape {self.shape}")
    kernel = _spatial_arg(kernel_size, nd, "kernel_size")
    # (stride=[] is the default too, as in PyTorch)
    stride = kernel if stride is None or isinstance(stride, (tuple, list)) and not stride else _spatial_arg(stride, nd, "stride")
    return kernel, stride, _spatial_arg(dilation, nd, "dilation"), _spatial_padding(padding, nd)
  def _ceil_pads(self, kernel, stride, dilation, pads, ceil_mode: bool):
    """Extra right padding so ceil_mode keeps the last partial window (one that starts inside the input or the left
    padding, like PyTorch)."""
    if not ceil_mode: return tuple((0, 0) for _ in kernel)
    extra = []
    for n, k, s, d, (lo, hi) in zip(self.shape[-len(kernel):], kernel, stride, dilation, pads):
      span, reach = n + lo + hi, d * (k - 1) + 1
      out = -(-(span - reach) // s) + 1
      if (out - 1) * s >= n + lo: out -= 1
      extra.append((0, max(0, (out - 1) * s + reach - span)))
    return tuple(extra)
  def max_pool2d(self, kernel_size=(2, 2), stride=None, dilation=1, padding=0, ceil_mode: bool = False,
                 return_indices: bool = False, nd: int | None = None):
    """Max over windows of the last two axes, like PyTorch's (kernel_size (2,) is 2x2; a kernel_size of more
    entries pools as many axes, tinygrad's form); stride defaults to the kernel size; padding counts as -inf. return_indices: also the position of each max in its
    input plane, flattened (int32), like torch's, for max_unpool2d: the window's first maximum among its input's
    elements (never its padding, also when they are all -inf), or its last NaN, as PyTorch's CPU kernel picks."""
    nd = nd or _pooled_dims(kernel_size)
    kernel, stride, dilation, pads = self._pool_args(kernel_size, stride, dilation, padding, nd)
    _check_pool_padding(kernel, pads, "max_pool")
    extra = self._ceil_pads(kernel, stride, dilation, pads, ceil_mode)
    lowest = -math.inf if dtypes.is_float(self.dtype) else dtypes.min(self.dtype)
    full = tuple((lo + a, hi + b) for (lo, hi), (a, b) in zip(pads, extra))
    padded = self.pad(((0, 0),) * (self.ndim - nd) + full, value=lowest)
    windows = padded._pool(kernel, stride, dilation)
    values = windows.max(tuple(range(-nd, 0)))
    if dtypes.is_float(values.dtype):  # the gradient by PyTorch's rule (_max_pool_gradient), not max's even split
      # (of the unpadded input: the gradient is then summed straight into its place, with no padding to cut off)
      rule = ("max_pool", kernel, stride, dilation, full)
      values = padded._new(UOp(Ops.DETACH, values.dtype, (values.uop, self.uop), rule))
    if not return_indices: return values
    spatial = self.shape[-nd:]
    plane = type(self).arange(math.prod(spatial), dtype=dtypes.int32, device=self.device).reshape(spatial)
    places = plane.pad(full, value=-1)._pool(kernel, stride, dilation)  # (*outs, *kernel)
    picked = _picked_by_rank(windows, values, _real_slots(self, kernel, stride, dilation, full), kernel)
    return values, picked.where(places, 0).sum(tuple(range(-nd, 0)), dtype=dtypes.int32)
  @staticmethod
  def _max_pool_gradient(grad: Self, values: Self, x: Self, kernel: tuple, stride: tuple, dilation: tuple, pads: tuple) -> Self:
    """The gradient of max_pool2d's input x (padded by `pads` as the forward pass did), as PyTorch gives it: all of
    an output's gradient goes to one element of its window, where Tensor.max would share it among tied values
    (after a relu, a window of zeros is four ties): the window's first maximum in row-major order among x's
    elements (a padded slot never, also when x's elements are all -inf, which tie the padding's -inf), or its last
    NaN (the element PyTorch's CPU kernel picks, and return_indices gives). Small windows (up to 4 elements) find
    it by comparing each element with the window's others (_picked_by_comparing): one kernel, with no maximum or
    index to read first. Larger ones (3x3: 81 comparisons a window) rank the candidates and keep the best, by one
    reduce (_picked_by_rank); the gradient is then elementwise in that and the output's gradient, and fuses into
    putting it back."""
    nd, small = len(kernel), math.prod(kernel) <= 4
    windows = x.detach().pad(((0, 0),) * (x.ndim - nd) + pads, value=-math.inf)._pool(kernel, stride, dilation)
    real = _real_slots(x, kernel, stride, dilation, pads)
    first = _picked_by_comparing(windows, real, kernel) if small else _picked_by_rank(windows, values.detach(), real, kernel)
    per_window = first.where(grad.reshape(grad.shape + (1,) * nd), 0)
    if small and not _apart(kernel, stride, dilation):
      per_window = per_window.contiguous()  # (overlapping: each input element reads several windows' comparisons)
    return type(grad)._windows_adjoint(per_window, x.shape[-nd:], kernel, stride, dilation, pads)
  @staticmethod
  def _pool_gradient(arg: tuple, grad: Self, value: Self, x: Self) -> Self:
    """The gradient of a pooling's input by its rule (a DETACH whose arg names it: gradient.custom_gradients):
    max_pool2d's, or the sum of overlapping windows', each window's gradient spread back over its elements."""
    rule, kernel, stride, dilation, pads = arg
    if rule == "max_pool": return type(grad)._max_pool_gradient(grad, value, x, kernel, stride, dilation, pads)
    per_window = grad.reshape(grad.shape + (1,) * len(kernel)).expand(grad.shape + kernel)
    return type(grad)._windows_adjoint(per_window, x.shape[-len(kernel):], kernel, stride, dilation, pads)
  def _window_sum(self, kernel: tuple, stride: tuple, dilation: tuple, pads: tuple) -> Self:
    """The sum of each window of _pool (..., *outs) over self padded with zeros by `pads` ((before, after) for
    each pooled axis). Overlapping windows get _pool_gradient's rule: through the general view the gradient
    would be a sum over its repeats (avg_pool2d(3, 2, padding 1) of 16x64x112x112: 89 ms for that one kernel)."""
    padded = self.pad(((0, 0),) * (self.ndim - len(kernel)) + pads)
    total = padded._pool(kernel, stride, dilation).sum(tuple(range(-len(kernel), 0)))
    if _apart(kernel, stride, dilation) or not dtypes.is_float(total.dtype): return total
    rule = ("window_sum", kernel, stride, dilation, pads)
    return self._new(UOp(Ops.DETACH, total.dtype, (total.uop, self.uop), rule))
  @staticmethod
  def _windows_adjoint(per_window: Self, sizes: tuple, kernel: tuple, stride: tuple, dilation: tuple, pads: tuple) -> Self:
    """Values given per window element (..., *outs, *kernel) summed back into the input (..., *sizes) whose
    padding by `pads` the windows of _pool read: element j of window o came from padded position
    o * stride + j * dilation, input position that minus the padding before. Windows that don't overlap are
    _pool_apart's view, and its gradient is movement alone. Overlapping ones (3x3, stride 2) would go back through
    the general view's repeat as a sum over every repeat. Here each input axis is folded into (rows, stride), where
    input position o * stride + j * dilation - before is row o + (j * dilation - before) // stride, column
    (j * dilation - before) % stride: each kernel offset's values are shifted by their rows into their column
    (those that land in the padding dropped), and the offsets added (prod(kernel) reads an element, each column a
    constant of its own term, so no load needs a division)."""
    nd = len(kernel)
    p = per_window.ndim - 2 * nd
    if _apart(kernel, stride, dilation):
      padded = tuple(n + lo + hi for n, (lo, hi) in zip(sizes, pads))
      spread = per_window._pool_apart_adjoint(padded, kernel, stride, dilation)
      return spread.shrink(tuple((0, n) for n in spread.shape[:p]) + tuple((lo, lo + n) for n, (lo, _) in zip(sizes, pads)))
    prefix, outs = per_window.shape[:p], per_window.shape[p:p + nd]
    rows = [-(-n // s) for n, s in zip(sizes, stride)]
    total = None
    for offset in itertools.product(*(range(k) for k in kernel)):
      places = [divmod(j * d - lo, s) for j, d, (lo, _), s in zip(offset, dilation, pads, stride)]  # (row shift, column)
      if any(q >= r or q + o <= 0 for (q, _), o, r in zip(places, outs, rows)): continue  # every one in the padding
      part = per_window.shrink(tuple((0, n) for n in prefix + outs) + tuple((j, j + 1) for j in offset)).reshape(prefix + outs)
      for i, ((q, col), s, o, r) in enumerate(zip(places, stride, outs, rows)):
        axis = p + 2 * i
        part = _along(part.unsqueeze(axis + 1), axis + 1, "pad", (col, s - col - 1))
        part = _placed(part, axis, q, r - q - o)
      total = part if total is None else total + part
    if total is None: return type(per_window).zeros(prefix + tuple(sizes), dtype=per_window.dtype, device=per_window.device)
    # stored in the folded shape: the kernel loops over it (a reshape on top of the sum would bring the divisions
    # back). When each size is a multiple of its stride, the input's gradient is that buffer itself, reshaped.
    unfolded = total.contiguous().reshape(prefix + tuple(r * s for r, s in zip(rows, stride)))
    return unfolded.shrink(tuple((0, n) for n in prefix + tuple(sizes)))
  # The 1-d and 3-d poolings exist in PyTorch only (torch.nn.functional's, padding third) and teeny's 2-d ones take
  # tinygrad's order (dilation third): which one a third positional argument means is a guess either way, so
  # everything after stride is given by name.
  def max_pool1d(self, kernel_size=2, stride=None, *, dilation=1, padding=0, ceil_mode: bool = False,
                 return_indices: bool = False):
    """max_pool2d over the last axis only, like torch.nn.functional.max_pool1d (arguments after stride by name)."""
    return self.max_pool2d(kernel_size, stride, dilation, padding, ceil_mode, return_indices, nd=1)
  def max_pool3d(self, kernel_size=2, stride=None, *, dilation=1, padding=0, ceil_mode: bool = False,
                 return_indices: bool = False):
    """max_pool2d over the last three axes, like torch.nn.functional.max_pool3d (arguments after stride by name)."""
    return self.max_pool2d(kernel_size, stride, dilation, padding, ceil_mode, return_indices, nd=3)
  def max_unpool2d(self, indices: Self, kernel_size=(2, 2), stride=None, dilation=1, padding=0, output_size=None) -> Self:
    """The inverse of max_pool2d(return_indices=True), like torch.nn.functional.max_unpool2d: zeros, with each
    value written at its index in the plane. output_size defaults to (in - 1) * stride - 2 * padding + kernel."""
    nd = _pooled_dims(kernel_size)
    if indices.shape != self.shape: raise ArgumentError(f"max_unpool2d indices of shape {indices.shape} must match the input {self.shape}")
    kernel, stride, dilation, pads = self._pool_args(kernel_size, stride, dilation, padding, nd)
    default = tuple((n - 1) * s - lo - hi + d * (k - 1) + 1 for n, k, s, d, (lo, hi) in zip(self.shape[-nd:], kernel, stride, dilation, pads))
    spatial = default if output_size is None else _unpool_size(output_size, default, stride)
    lead = self.shape[:-nd]
    flat_values, flat_indices = self.reshape(*lead, -1), indices.reshape(*lead, -1)
    out = type(self).zeros(*lead, math.prod(spatial), dtype=self.dtype, device=self.device).scatter(-1, flat_indices, flat_values)
    return out.reshape(*lead, *spatial)
  def avg_pool2d(self, kernel_size=(2, 2), stride=None, dilation=1, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, *, divisor_override: int | None = None, nd: int | None = None) -> Self:
    """Mean over windows of the last two axes (pooled as max_pool2d's: (2,) is 2x2). The arguments come in
    tinygrad's order, dilation third as in max_pool2d (torch.nn.functional.avg_pool2d has no dilation and takes
    padding third: pass padding by name). count_include_pad: padding counts in the divisor (PyTorch's default);
    the extra padding of ceil_mode never does. divisor_override: every window's sum divided by that number
    instead, as PyTorch's. Half floats sum and divide in float32, rounded once (a float16 window of 30000s summed
    to inf); int64 divides its integer sums truncating, as PyTorch's (other ints give float32 means: PyTorch has
    no average of them)."""
    if divisor_override is not None: divisor_override = _int_arg(divisor_override, "avg_pool's divisor_override")
    if divisor_override is not None and divisor_override <= 0: raise ArgumentError(f"divisor_override must be positive, got {divisor_override}")
    nd = nd or _pooled_dims(kernel_size)
    kernel, stride, dilation, pads = self._pool_args(kernel_size, stride, dilation, padding, nd)
    _check_pool_padding(kernel, pads, "avg_pool")
    extra = self._ceil_pads(kernel, stride, dilation, pads, ceil_mode)
    axes, full = tuple(range(-nd, 0)), tuple((lo + a, hi + b) for (lo, hi), (a, b) in zip(pads, extra))
    if self.dtype in NARROW_FLOATS:
      wide = self.float().avg_pool2d(kernel_size, stride, dilation, padding, ceil_mode, count_include_pad,
                                     divisor_override=divisor_override, nd=nd)
      return wide.cast(self.dtype)
    x = self if self.dtype == dtypes.int64 else self._float()
    total = x._window_sum(kernel, stride, dilation, full)
    def divided(by): return total.div(by, rounding_mode="trunc") if x.dtype == dtypes.int64 else total / by
    if divisor_override is not None: return divided(divisor_override)
    if not ceil_mode and (count_include_pad or all(p == (0, 0) for p in pads)): return divided(math.prod(kernel))
    # the window counts in x's dtype (small integers, exact even in float16): float32 ones would promote the result
    ones = type(self).ones(self.shape[-nd:], dtype=x.dtype, device=self.device).pad(pads, value=1.0 if count_include_pad else 0.0).pad(extra)
    return divided(ones._pool(kernel, stride, dilation).sum(axes, dtype=x.dtype))  # (constants: no gradient to take)
  def avg_pool1d(self, kernel_size=2, stride=None, *, dilation=1, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> Self:
    """avg_pool2d over the last axis only, like torch.nn.functional.avg_pool1d (arguments after stride by name)."""
    return self.avg_pool2d(kernel_size, stride, dilation, padding, ceil_mode, count_include_pad, nd=1)
  def avg_pool3d(self, kernel_size=2, stride=None, *, dilation=1, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> Self:
    """avg_pool2d over the last three axes, like torch.nn.functional.avg_pool3d (arguments after stride by name)."""
    return self.avg_pool2d(kernel_size, stride, dilation, padding, ceil_mode, count_include_pad,
                           divisor_override=divisor_override, nd=3)


tensor_rules["max_pool"] = tensor_rules["window_sum"] = lambda arg, grad, value, x: (type(grad)._pool_gradient(arg, grad, value, x),)
