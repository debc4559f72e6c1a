"""Convolution as a Tensor mixin: conv2d (the input's sliding windows, pooling.py's _pool, times the filters and
summed), its gradients by a rule (the input's a transposed convolution, the weight's a sum of windows times the
output's gradient), and the transposed convolution: a convolution of the input spread out by the stride and
padded, in which the terms of those added zeros are left out, as PyTorch never computes them (0 * an infinite
weight is NaN), or for a big one with a stride, one convolution per phase of the stride, which has no such terms."""
from __future__ import annotations
import itertools, math
from typing import TYPE_CHECKING
from teeny.dtype import dtypes, NARROW_FLOATS
from teeny.gradient import tensor_rules
from teeny.ops.args import ArgumentError, conv_padding, check_output_padding, _spatial_arg, _spatial_padding
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self


def _weight_gradient_lanes(width: int, stride: int, kernel_width: int) -> int | None:
  """How many lanes of partial sums a convolution's weight gradient keeps along its output rows of `width` (see
  _conv_gradients): 8, else 4, when they divide the row (two lanes' worth at least), else the whole row when it is
  short (14 and 7 wide, as in a ResNet's last stages), else none. Only at stride 1, where the input is read
  contiguously along a row as the output's gradient is, and for kernels wider than 1 (a 1x1 convolution's rows
  merge into one long reduce, which the dot tile serves better: 2.6 ms against 3.7 for 16x128x28x28)."""
  if stride != 1 or kernel_width == 1: return None
  if width % 8 == 0 and width >= 16: return 8
  if width % 4 == 0 and width >= 8: return 4
  return width if 2 <= width <= 32 else None


def _phase_taps(kernel: int, stride: int, dilation: int, phase: int) -> tuple[int, int, int] | None:
  """The taps of a transposed convolution's kernel (along one axis) that reach its outputs at `phase` mod stride:
  (the first, the step between them, the first one's shift in whole strides), or None when none does. Tap j
  moves an input element j * dilation further, which is phase mod stride for every stride / gcd-th j."""
  step = stride // math.gcd(stride, dilation)
  first = next((j for j in range(min(kernel, step)) if j * dilation % stride == phase), None)
  return None if first is None else (first, step, first * dilation // stride)


# a transposed convolution with a stride is split by phase (_transposed_conv) from this many products of its direct
# form on: a 16x64x28x28 stride-2 3x3 one has 1.9e9, its 4 phases run in 14 ms against 65-75 for the direct kernel; a
# 2x8x8x8 one (3e5) took 2.3 ms split, 0.45 ms direct (graph building and launches)
PHASES_MIN_PRODUCTS = 1 << 24
_real_slot_masks: dict = {}  # (tensor type, device, sizes, stride, kernel, dilation, pads) -> _real_slots' mask


def _spread(x, stride: tuple):
  """x with stride - 1 zeros put between neighbours along its last len(stride) axes."""
  if all(s == 1 for s in stride): return x
  nd = len(stride)
  lead, sizes = x.shape[:-nd], x.shape[-nd:]
  x = x.reshape(lead + tuple(d for n in sizes for d in (n, 1)))
  x = x.pad(((0, 0),) * len(lead) + tuple(p for s in stride for p in ((0, 0), (0, s - 1))))
  x = x.reshape(lead + tuple(n * s for n, s in zip(sizes, stride)))
  return x.shrink(tuple((0, n) for n in lead) + tuple((0, (n - 1) * s + 1) for n, s in zip(sizes, stride)))


def _real_slots(like, stride: tuple, kernel: tuple, dilation: tuple, pads: tuple):
  """Which slots of the stride-1 windows (*out, *kernel) over like's spatial axes, spread by the stride and padded
  by pads, read one of its elements: a plane of True spread and padded as like is, in windows. Its movement ops
  are like's, so a kernel tests the conditions its loads test already (a mask computed from the loop indices
  instead made a 3x3 transposed convolution's kernel 30% slower); cached by _transposed_conv_direct, as building
  it was a third of a small transposed convolution's time."""
  real = type(like).full(like.shape[2:], True, dtype=dtypes.bool, device=like.device)
  return _spread(real, stride).pad(pads)._pool(kernel, (1,) * len(kernel), dilation)


class ConvOps:
  """Tensor's convolutions and transposed convolutions."""
  def conv2d(self, weight: Self, bias: Self | None = None, groups: int = 1, stride=1, dilation=1, padding=0) -> Self:
    """Convolution (cross-correlation, like PyTorch) of (N, C_in, *spatial) with weight (C_out, C_in/groups, *kernel);
    any number of spatial dims. padding: an int, one per spatial dim, PyTorch's flat (left, right, top, bottom),
    or 'valid' / 'same'. float16 multiplies in float32 and rounds each output once, as a matmul (and PyTorch's
    convolution) does: products rounded to half made its weight gradient 1000 ulp off."""
    if self.dtype == weight.dtype and self.dtype in NARROW_FLOATS and (bias is None or bias.dtype == self.dtype):
      wide_bias = None if bias is None else bias.float()
      return self.float().conv2d(weight.float(), wide_bias, groups, stride, dilation, padding).cast(self.dtype)
    nd = weight.ndim - 2
    if nd < 1: raise ArgumentError(f"conv weight needs shape (C_out, C_in/groups, *kernel), got {weight.shape}")
    if self.ndim == nd + 1: return self.unsqueeze(0).conv2d(weight, bias, groups, stride, dilation, padding).squeeze(0)  # (unbatched, as PyTorch's)
    if self.ndim != nd + 2: raise ArgumentError(f"conv input of shape {self.shape} needs {nd + 2} dims (N, C_in, *spatial) for weight {weight.shape}")
    cout, cin_g, kernel = weight.shape[0], weight.shape[1], weight.shape[2:]
    n, cin = self.shape[:2]
    if groups <= 0 or cin % groups or cout % groups:
      raise ArgumentError(f"conv groups={groups} must divide the input channels {cin} and output channels {cout}")
    if cin_g * groups != cin:
      raise ArgumentError(f"conv input has {cin} channels but weight {weight.shape} with groups={groups} expects {cin_g * groups}")
    if bias is not None and bias.shape != (cout,): raise ArgumentError(f"conv bias of shape {bias.shape}, expected ({cout},)")
    stride, dilation = _spatial_arg(stride, nd, "stride"), _spatial_arg(dilation, nd, "dilation")
    pads = _spatial_padding(conv_padding(padding, kernel, stride, dilation), nd)
    if any(p < 0 for pair in pads for p in pair): raise ArgumentError(f"conv: negative padding is not supported (as in PyTorch), got {padding!r}")
    out = self._correlate(weight, groups, stride, dilation, pads)
    return out if bias is None else out + bias.reshape((1, cout) + (1,) * nd)
  def _correlate(self, weight: Self, groups: int, stride: tuple, dilation: tuple, pads: tuple, valid: Self | None = None) -> Self:
    """conv2d's sum, of self (N, C_in, *spatial) padded with zeros by pads ((before, after) per dim). valid (bool,
    broadcast to the windows' (*out, *kernel)): which window slots hold a term; the others' products are left
    out, where 0 * an infinite weight would be NaN (a transposed convolution's slots that read its own zeros)."""
    nd, n = weight.ndim - 2, self.shape[0]
    cout, cin_g, kernel = weight.shape[0], weight.shape[1], weight.shape[2:]
    windows = self.pad(((0, 0), (0, 0)) + pads)._pool(kernel, stride, dilation)  # (N, C_in, *out, *kernel)
    outs = windows.shape[2:2 + nd]
    # (N, groups, 1, C_in/g, *out, *kernel) * (1, groups, C_out/g, C_in/g, *1, *kernel), summed over C_in/g and kernel
    windows = windows.reshape((n, groups, 1, cin_g) + outs + kernel)
    # (the scheduler may read the filters from a copy with the output channel innermost: schedule/shaping.py)
    w = weight.reshape((1, groups, cout // groups, cin_g) + (1,) * nd + kernel)
    products = windows * w
    if valid is not None: products = valid.where(products, 0)
    # an int convolution keeps its dtype, as PyTorch's (and an int matmul) do: sum() alone would give int64
    out = products.sum(tuple([3] + list(range(4 + nd, 4 + 2 * nd))), dtype=None if dtypes.is_float(products.dtype) else products.dtype)
    out = out.reshape((n, cout) + outs)
    if not dtypes.is_float(out.dtype): return out
    # its gradient by the rule below (gradient.py's DETACH): the input's is a transposed convolution, not a sum back
    # over every window (a tensor 9x the input's size for a 3x3 kernel). (It leaves out no slot: the input's gradient
    # at an element of self is the same, and the weight's terms at the others are zeros times the gradient.)
    return self._exact_gradient(out, ("conv", groups, stride, dilation, pads), weight)
  @staticmethod
  def _conv_gradients(grad: Self, x: Self, weight: Self, groups: int, stride: tuple, dilation: tuple, pads: tuple) -> tuple[Self, Self]:
    """The gradients of x.conv2d(weight, groups, stride, dilation, padding=pads) for x and weight, given the
    output's: for x the transposed convolution of grad with the same weight (onto the padded input, the padding
    then cut off); for weight the sum over the batch and the output positions of grad times each window, as
    differentiating the product in conv2d gives it."""
    nd = weight.ndim - 2
    kernel, padded = weight.shape[2:], tuple(s + b + a for s, (b, a) in zip(x.shape[2:], pads))
    outs = grad.shape[2:]
    # the transposed convolution reaches (outs - 1) * stride + dilation * (kernel - 1) + 1 per dim of the padded
    # input; the rows past that (no window reached them: a stride that doesn't divide the size) get zeros, and the
    # padding is cut off, both by the transposed convolution itself (no copy of a bigger result cut afterwards)
    reach = tuple((o - 1) * s + d * (k - 1) + 1 for o, s, d, k in zip(outs, stride, dilation, kernel))
    cut = tuple((b, a - (p - r)) for (b, a), p, r in zip(pads, padded, reach))
    dx = grad._transposed_conv(weight, groups, stride, dilation, cut)
    n, cout, cin_g = x.shape[0], weight.shape[0], weight.shape[1]
    padded_x = x.pad(((0, 0), (0, 0)) + pads)
    # the padded input copied first: each load of it is then plain, where reading it through the padding made
    # every load a gated one (2.5x slower kernel than the copy and plain loads together)
    if any(p != 0 for pair in pads for p in pair): padded_x = padded_x.contiguous()
    windows = padded_x._pool(kernel, stride, dilation).reshape((n, groups, 1, cin_g) + outs + kernel)
    g = grad.reshape((n, groups, cout // groups, 1) + outs + (1,) * nd)
    lanes = _weight_gradient_lanes(outs[-1], stride[-1], kernel[-1])
    if lanes is None: return dx, (g * windows).sum(tuple([0] + list(range(4, 4 + nd)))).reshape(weight.shape)
    # the last output axis split into (outs / lanes, lanes) and the lanes kept apart until the end: each is a
    # vector's lane of partial sums over every other reduced axis, summed across once (a second, small kernel),
    # where summing across the lanes at the end of every image row cost as much as the row's products
    split = outs[:-1] + (outs[-1] // lanes, lanes)
    order = tuple(range(4 + nd)) + tuple(range(5 + nd, 5 + 2 * nd)) + (4 + nd,)  # (the lanes last)
    windows = windows.reshape((n, groups, 1, cin_g) + split + kernel).permute(order)
    g = g.reshape((n, groups, cout // groups, 1) + split + (1,) * nd).permute(order)
    per_lane = (g * windows).sum(tuple([0] + list(range(4, 4 + nd))))
    return dx, per_lane.sum(-1).reshape(weight.shape)
  def conv_transpose2d(self, weight: Self, bias: Self | None = None, groups: int = 1, stride=1, dilation=1,
                       padding=0, output_padding=0) -> Self:
    """Transposed convolution (the gradient of conv2d with respect to its input), weight (C_in, C_out/groups,
    *kernel) like PyTorch: spread the input out by the stride, pad it, and convolve with the flipped kernel.
    float16 multiplies in float32, as conv2d."""
    if self.dtype == weight.dtype and self.dtype in NARROW_FLOATS and (bias is None or bias.dtype == self.dtype):
      wide_bias = None if bias is None else bias.float()
      return self.float().conv_transpose2d(weight.float(), wide_bias, groups, stride, dilation, padding, output_padding).cast(self.dtype)
    nd = weight.ndim - 2
    if self.ndim == nd + 1:  # (unbatched, as PyTorch's)
      return self.unsqueeze(0).conv_transpose2d(weight, bias, groups, stride, dilation, padding, output_padding).squeeze(0)
    if self.ndim != nd + 2: raise ArgumentError(f"conv_transpose input of shape {self.shape} needs {nd + 2} dims for weight {weight.shape}")
    cin = weight.shape[0]
    if self.shape[1] != cin: raise ArgumentError(f"conv_transpose input has {self.shape[1]} channels, weight {weight.shape} expects {cin}")
    if groups <= 0 or cin % groups: raise ArgumentError(f"conv_transpose groups={groups} must divide the input channels {cin}")
    stride, dilation = _spatial_arg(stride, nd, "stride"), _spatial_arg(dilation, nd, "dilation")
    padding, output_padding = _spatial_arg(padding, nd, "padding", 0), _spatial_arg(output_padding, nd, "output_padding", 0)
    check_output_padding(output_padding, stride, dilation)
    cout = weight.shape[1] * groups
    if bias is not None and bias.shape != (cout,): raise ArgumentError(f"conv_transpose bias of shape {bias.shape}, expected ({cout},)")
    sizes = tuple((n - 1) * s - 2 * p + d * (k - 1) + 1 + op
                  for n, k, s, d, p, op in zip(self.shape[2:], weight.shape[2:], stride, dilation, padding, output_padding))
    if min(self.shape[2:]) <= 0:
      raise ArgumentError(f"conv_transpose: input of shape {self.shape} has an empty spatial dim (as in PyTorch, only N or C may be 0)")
    if min(sizes) < 0:
      raise ArgumentError(f"conv_transpose of input {self.shape} with weight {weight.shape}, stride {stride}, padding {padding}: the "
                          f"output would be {sizes}, too small (as PyTorch raises)")
    if min(sizes) == 0: out = self._empty_conv(weight, (self.shape[0], cout) + sizes)
    else: out = self._transposed_conv(weight, groups, stride, dilation, tuple((p, p - op) for p, op in zip(padding, output_padding)))
    return out if bias is None else out + bias.reshape((1, out.shape[1]) + (1,) * nd)
  def _empty_conv(self, weight: Self, shape: tuple) -> Self:
    """A convolution's result of shape (a size 0 in it) in the dtype of its products, which passes zeros back as
    self's and weight's gradients."""
    return (self.flatten()[:0] * weight.flatten()[:0]).reshape(shape)
  def _transposed_conv(self, weight: Self, groups: int, stride: tuple, dilation: tuple, cut: tuple) -> Self:
    """conv_transpose2d with `cut` (before, after) taken off each spatial end of the full result (negative: zeros
    added), which is (size - 1) * stride + dilation * (kernel - 1) + 1 long. Input element i reaches output
    i * stride + j * dilation by tap j. Only those products are summed, as PyTorch computes it (0 * an infinite
    weight made NaN of outputs the weight doesn't reach): spread out by the stride and padded, the input's zeros
    are left out of the sum (_transposed_conv_direct). A big one with a stride is split by phase instead: the
    outputs at r mod stride are reached by the taps j with j * dilation = r mod stride only, so each phase is a
    transposed convolution of stride 1 with those taps, and the phases are interleaved: no products with the
    stride - 1 zeros between elements (4x fewer for a 2-d stride 2; a kernel and a graph per phase, though, which
    cost more than they save in a small one)."""
    kernel, sizes = weight.shape[2:], self.shape[2:]
    products = math.prod(self.shape[:2]) * weight.shape[1] * math.prod(kernel) * math.prod((n - 1) * s + 1 for n, s in zip(sizes, stride))
    if all(s == 1 for s in stride) or products < PHASES_MIN_PRODUCTS: return self._transposed_conv_direct(weight, groups, stride, dilation, cut)
    lengths = [(n - 1) * s + d * (k - 1) + 1 - b - a for n, k, s, d, (b, a) in zip(sizes, kernel, stride, dilation, cut)]
    # the result as rows of `stride` outputs each: row q holds full outputs q * s .. q * s + s - 1, from first_rows on
    first_rows = [b // s for (b, _), s in zip(cut, stride)]
    rows = [-(-(b - q * s + n) // s) for (b, _), s, q, n in zip(cut, stride, first_rows, lengths)]
    sub_dilation, unit = tuple(d // math.gcd(s, d) for s, d in zip(stride, dilation)), (1,) * len(stride)
    total = None
    for phase in itertools.product(*(range(s) for s in stride)):
      taps = [_phase_taps(k, s, d, r) for k, s, d, r in zip(kernel, stride, dilation, phase)]
      if None in taps: continue  # (no tap reaches these outputs: they stay 0)
      sub = weight[(slice(None),) * 2 + tuple(slice(first, None, step) for first, step, _ in taps)]
      # its stride-1 result's output t is row t + shift; keep the rows first_rows .. first_rows + rows
      cuts = tuple((q - shift, n + dd * (k - 1) - (q + count - shift))
                   for (_, _, shift), q, count, n, dd, k in zip(taps, first_rows, rows, sizes, sub_dilation, sub.shape[2:]))
      part = self._transposed_conv_direct(sub, groups, unit, sub_dilation, cuts)
      part = part.reshape(part.shape[:2] + tuple(d for count in rows for d in (count, 1)))
      part = part.pad(((0, 0), (0, 0)) + tuple(p for r, s in zip(phase, stride) for p in ((0, 0), (r, s - 1 - r))))
      total = part if total is None else total + part
    grid = total.reshape(total.shape[:2] + tuple(count * s for count, s in zip(rows, stride)))
    starts = [b - q * s for (b, _), q, s in zip(cut, first_rows, stride)]
    return grid.shrink(((0, grid.shape[0]), (0, grid.shape[1])) + tuple((a, a + n) for a, n in zip(starts, lengths)))
  def _transposed_conv_direct(self, weight: Self, groups: int, stride: tuple, dilation: tuple, cut: tuple) -> Self:
    """_transposed_conv as one convolution: self spread out by the stride (stride - 1 zeros between elements),
    padded by dilation * (kernel - 1) less the cut, correlated with the flipped kernel, where the window slots
    that read one of those zeros are left out of the sum."""
    nd = weight.ndim - 2
    cin, cout_g, kernel = weight.shape[0], weight.shape[1], weight.shape[2:]
    # (C_in, C_out/g, *k) -> (C_out, C_in/g, *k) per group, kernel flipped
    w = weight.reshape((groups, cin // groups, cout_g) + kernel).transpose(1, 2).reshape((groups * cout_g, cin // groups) + kernel)
    w = w.flip(tuple(range(2, 2 + nd)))
    pads, unit = tuple((d * (k - 1) - b, d * (k - 1) - a) for k, d, (b, a) in zip(kernel, dilation, cut)), (1,) * nd
    x = _spread(self, stride).pad(((0, 0), (0, 0)) + pads)
    if all(s == 1 for s in stride) and all(p <= 0 for pair in pads for p in pair):  # (no zeros added)
      return x._correlate(w, groups, unit, dilation, ((0, 0),) * nd)
    key = (type(self), self.device, self.shape[2:], stride, kernel, dilation, pads)
    if key not in _real_slot_masks:
      if len(_real_slot_masks) >= 256: _real_slot_masks.clear()
      _real_slot_masks[key] = _real_slots(self, stride, kernel, dilation, pads)
    return x._correlate(w, groups, unit, dilation, ((0, 0),) * nd, _real_slot_masks[key])


# a convolution's input gradient is a transposed convolution, its weight's a convolution of x with the gradient
tensor_rules["conv"] = lambda arg, grad, _, x, w: type(grad)._conv_gradients(grad, x, w, *arg[1:])
