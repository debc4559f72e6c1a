"""Reductions as a Tensor mixin: sum, prod, max, min and mean, what is composed from them (var, std, argmax,
argmin, any, all, logsumexp, softmax, the cumulative scans), and matmul, a broadcast product summed. Every reduce
goes through _reduce, which folds a reduce of a constant into the constant (constants.py) before it builds the
REDUCE_AXIS node. How a long sum is split into several kernels is the scheduler's choice (teeny/schedule/shaping.py),
made for every graph, gradients included."""
from __future__ import annotations
import functools, math
from typing import TYPE_CHECKING, NamedTuple, Any
import numpy as np
from teeny.dtype import dtypes, promote, to_dtype, NARROW_FLOATS
from teeny.uop import UOp, Ops
from teeny.schedule import is_buffer_view
from teeny.ops.args import ArgumentError, takes_dim, INDEX_MAX, _canon_axis, _broadcast_shape, index_dtype
from teeny.ops.constants import uniform_reduces
from teeny.gradient import tensor_rules
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self


class ValuesIndices(NamedTuple):
  """What PyTorch's max(dim=)/min(dim=) return (torch.return_types.max): the values and their indices."""
  values: Any
  indices: Any


# what a masked-out element of a scan holds: nothing added, nothing above any value, nothing multiplied
# the scans _cum_last computes: what pads a row (the op's identity), how a masked row reduces, how two scans combine
_SCAN_FILL = {"sum": lambda dtype: 0, "max": dtypes.min, "prod": lambda dtype: 1, "logsumexp": lambda dtype: -math.inf}
_SCAN_REDUCE = {"sum": lambda rows: _in_order(rows, Ops.ADD), "max": lambda rows: rows.max(-1),
                "prod": lambda rows: _in_order(rows, Ops.MUL), "logsumexp": lambda rows: rows.logsumexp(-1)}
_SCAN_COMBINE = {"sum": lambda a, b: a + b, "max": lambda a, b: a.maximum(b), "prod": lambda a, b: a * b,
                 "logsumexp": lambda a, b: a.logaddexp(b)}


def _in_order(rows, op: Ops):
  """Each row's sum or product over its last axis, a scan's prefix: floats combined in the order of the terms, as
  PyTorch's sequential scans (reassociated into partial sums, [1e10, -1e10] + [1e-7] * 12 lost every 1e-7); ints
  in any order (exact, or wrapping alike)."""
  if not dtypes.is_float(rows.dtype): return rows.sum(-1, dtype=rows.dtype) if op is Ops.ADD else rows.prod(-1).cast(rows.dtype)
  return rows._reduce_axis(op, (rows.ndim - 1,), in_order=True).squeeze(-1)


def _correction(correction: int | None, unbiased: bool | None) -> int:
  """The number var subtracts from N: `correction` (tinygrad, torch), or PyTorch's older unbiased=True/False."""
  if unbiased is None: return 1 if correction is None else correction
  if correction is not None: raise TypeError("var/std take correction= or unbiased=, not both")
  return 1 if unbiased else 0


class ReduceOps:
  """Tensor's reductions, the ops composed from them, and matmul."""
  def _axes(self, axis) -> tuple[int, ...]:
    if axis is None: return tuple(range(self.ndim))
    axes = list(axis) if isinstance(axis, (tuple, list, range, np.ndarray)) else [axis]  # (a float: one axis, which _canon_axis refuses)
    out = tuple(sorted({_canon_axis(a, self.ndim) for a in axes}))
    if len(out) != len(axes): raise ArgumentError(f"axis {axis} names the same dimension twice")
    return out if self.ndim else ()
  def _reduce(self, op: Ops, axis, keepdim: bool) -> Self:
    axes = self._axes(axis)
    folded = uniform_reduces.rewrite(UOp(Ops.REDUCE_AXIS, self.dtype, (self.uop,), (op, axes))) if axes else None
    if not axes: out = self._copy_result(self)  # (a 0-d tensor's sum: a copy, as PyTorch's, never self)
    elif folded is not None: out = self._new(folded)
    elif self.numel() > INDEX_MAX:
      raise ArgumentError(f"a reduce over shape {self.shape} ({self.numel()} elements) needs more than 64-bit indices "
                       f"can count ({INDEX_MAX}); only reduces of a constant fold without a loop")
    else: out = self._reduce_axis(op, axes)
    return out if keepdim else out.reshape(tuple(s for i, s in enumerate(self.shape) if i not in axes))
  def _reduce_axis(self, op: Ops, axes: tuple[int, ...], in_order: bool = False) -> Self:
    """The REDUCE_AXIS node itself: reduced axes kept as size 1. in_order: the terms are combined in their order
    (not reassociated into partial results: a scan's prefix, as a running sum adds it)."""
    return self._new(UOp(Ops.REDUCE_AXIS, self.dtype, (self.uop,), (op, axes, "in order") if in_order else (op, axes)))
  @takes_dim
  def sum(self, axis=None, keepdim=False, dtype=None) -> Self:
    """Sum over axes. bool and int tensors sum in int64 (like PyTorch); float16 sums accumulate in float32."""
    x = self.cast(dtype) if dtype is not None else self._accumulating()
    return x._reduce(Ops.ADD, axis, keepdim)
  @takes_dim
  def prod(self, axis=None, keepdim=False, dtype=None) -> Self:
    """Product over axes. bool and int tensors multiply in int64 (like PyTorch), or in dtype when given."""
    x = self.cast(dtype) if dtype is not None else self if dtypes.is_float(self.dtype) else self.cast(dtypes.int64)
    return x._reduce(Ops.MUL, axis, keepdim)
  def max(self, axis=None, keepdim=False, *, dim=None):
    """The largest value over `axis` (all axes by default), like torch.amax and tinygrad's max: only the values,
    the gradient split evenly among tied maxima (as torch's amax and max() without a dim do). With PyTorch's
    spelling, dim=, PyTorch's result: the values and their indices (_values_and_indices)."""
    if dim is not None: return self._values_and_indices("max", dim, keepdim, axis)
    axes = self._axes(axis)
    if any(self.shape[a] == 0 for a in axes): raise ArgumentError(f"max of an empty tensor (shape {self.shape}, axis {axis}) has no identity")
    if self.dtype == dtypes.bool: return self.cast(dtypes.uint8)._reduce(Ops.MAX, axis, keepdim).cast(dtypes.bool)
    out = self._reduce(Ops.MAX, axis, keepdim)
    # of all elements: PyTorch's max() gradient, shared among the NaNs when there is one (amax's would be NaN everywhere)
    return self._exact_gradient(out, "shared_evenly") if axis is None and dtypes.is_float(self.dtype) else out
  def min(self, axis=None, keepdim=False, *, dim=None):
    """The smallest value over `axis`, like torch.amin: ties share the gradient evenly (see max). With dim=,
    PyTorch's (values, indices)."""
    if dim is not None: return self._values_and_indices("min", dim, keepdim, axis)
    axes = self._axes(axis)
    if any(self.shape[a] == 0 for a in axes): raise ArgumentError(f"min of an empty tensor (shape {self.shape}, axis {axis}) has no identity")
    if dtypes.is_float(self.dtype): return -((-self).max(axis, keepdim))
    if self.dtype == dtypes.bool: return self.logical_not().max(axis, keepdim).logical_not()
    # Ints are negated, never bitwise-NOTed (see argmin): Intel's OpenCL CPU compiler miscompiles max of ~x
    if self.dtype.itemsize <= 4:  # in int64, -x reverses the order of every narrower int, without overflow
      return (-((-self.cast(dtypes.int64)).max(axis, keepdim))).cast(self.dtype)
    # 64-bit: the lowest value (INT64_MIN, unsigned 0) negates to itself, so a reduction holding it answers with
    # it; the others negate with it set to 0 first (no overflow)
    lowest_value = dtypes.min(self.dtype)
    lowest = self == lowest_value
    negated = -(lowest.where(0, self))
    return lowest.any(axis, keepdim).where(lowest_value, -(negated.max(axis, keepdim)))
  @takes_dim
  def mean(self, axis=None, keepdim=False, dtype=None) -> Self:
    """The mean over axes (all by default), like torch.mean: int and bool tensors give the default float (torch
    raises), float16/bfloat16/fp8 divide their float32 sum, and an empty reduction is NaN. dtype (a float): cast
    to it first, as torch does."""
    if dtype is not None and not dtypes.is_float(to_dtype(dtype)): raise TypeError(f"mean needs a float dtype, got {dtype}")
    x = self.cast(dtype) if dtype is not None else self._float()
    count = math.prod(self.shape[a] for a in self._axes(axis))
    scale = 1 / count if count else float("nan")
    # float16 divides the float32 sum before rounding, like PyTorch: a sum past 65504 may still have a finite mean
    if x.dtype in NARROW_FLOATS: return (x.sum(axis, keepdim, dtype=dtypes.float32) * scale).cast(x.dtype)
    return x.sum(axis, keepdim) * scale
  def _reduced_shape(self, axis, keepdim: bool) -> tuple[int, ...]:
    axes = self._axes(axis)
    return tuple(1 if i in axes else s for i, s in enumerate(self.shape) if keepdim or i not in axes)
  @takes_dim
  def var(self, axis=None, keepdim=False, correction=None, *, unbiased: bool | None = None) -> Self:
    """Variance with Bessel's correction by default (like torch.var): correction=0 or unbiased=False divides by N;
    N - correction <= 0 gives inf or nan. float16 computes in float32 and rounds once: its sum of squares passes
    65504 long before the variance does. var(False) is PyTorch's var(unbiased) over every axis."""
    if isinstance(axis, bool): axis, unbiased = None, axis
    correction = _correction(correction, unbiased)
    x = self._float()
    if x.dtype in NARROW_FLOATS: return x.float().var(axis, keepdim, correction).cast(x.dtype)
    axes = self._axes(axis)
    n = math.prod(self.shape[a] for a in axes)
    # the corrected two-pass sum: sum(d^2) - sum(d)^2 / n with d = x - mean is exact for any shift, so it undoes the
    # rounding of the mean itself (1e6 + [0..6] lost 1e-3 of its variance to float32's); both sums run in one kernel.
    # float32 computes in float64 where the device has it, as PyTorch's CPU kernel does: in float32 the sum of n
    # squares overflowed once n * var passed 3.4e38 ([1.5e19, -1.5e19] * 2 gave inf for 2.25e38). The gradient is
    # PyTorch's 2 (x - mean) / (n - correction), by a rule: the two sums' gradients added inf - inf = NaN for an
    # infinite incoming gradient
    def variance(v: Self) -> Self:
      d = v - v.mean(axis, keepdim=True).detach()
      sq = d.square().sum(axis, keepdim) - d.sum(axis, keepdim).square() / max(n, 1)
      return sq.div(max(0, n - correction))
    return x._exact_gradient(x._in_float64(variance), ("var", axes, correction))
  @takes_dim
  def std(self, axis=None, keepdim=False, correction=None, *, unbiased: bool | None = None) -> Self:
    """The square root of var (same arguments), of the values scaled by a power of 2 near their largest magnitude
    (exactly: the result is var's to the bit) and scaled back: squares of 1e30 (or 1e-30) overflow (underflow)
    float32 where the deviation itself does not (PyTorch accumulates in float64). Where the variance is 0 (a constant row) the gradient is 0, as PyTorch's: sqrt's
    slope there is inf, and inf times the deviations (all 0) was NaN."""
    if isinstance(axis, bool): axis, unbiased = None, axis  # (std(False): PyTorch's std(unbiased))
    x = self._float()
    if x.dtype in NARROW_FLOATS: return x.float().std(axis, keepdim, correction, unbiased=unbiased).cast(x.dtype)
    if any(self.shape[a] == 0 for a in self._axes(axis)):  # (nothing to scale: var's nan)
      return x.var(axis, keepdim, correction, unbiased=unbiased).sqrt()
    # (a constant of the gradient: s * std(x / s) is std(x))
    scale = x.abs().max(axis, keepdim=True).detach().log2().floor().exp2()
    scale = (scale == 0).where(1.0, scale)  # (a row of zeros, or of denormals whose power of 2 underflows)
    std = (x / scale).var(axis, keepdim, correction, unbiased=unbiased)._sqrt_flat_at_zero()
    # the gradient by PyTorch's formula (a rule): through the scaling, g * scale overflowed (g = 1e30 at std 4e14)
    value = std * scale.reshape(self._reduced_shape(axis, keepdim))
    return x._exact_gradient(value, ("std", self._axes(axis), _correction(correction, unbiased)))
  @takes_dim
  def var_mean(self, axis=None, keepdim=False, correction=None, *, unbiased: bool | None = None) -> tuple[Self, Self]:
    """(var, mean) over the axes, like torch.var_mean (the arguments of var)."""
    if isinstance(axis, bool): axis, unbiased = None, axis
    return self.var(axis, keepdim, correction, unbiased=unbiased), self.mean(axis, keepdim)
  @takes_dim
  def std_mean(self, axis=None, keepdim=False, correction=None, *, unbiased: bool | None = None) -> tuple[Self, Self]:
    """(std, mean) over the axes, like torch.std_mean (the arguments of var)."""
    if isinstance(axis, bool): axis, unbiased = None, axis
    return self.std(axis, keepdim, correction, unbiased=unbiased), self.mean(axis, keepdim)
  def _values_and_indices(self, which: str, dim: int, keepdim: bool, axis) -> ValuesIndices:
    """torch.max(x, dim=d) and min: (values, indices) along dim, a named pair, indices int32 like argmax's (the first
    extreme, a NaN counting as one). The values are read at the indices, so the whole gradient goes to the element
    each index names, as PyTorch's does. tinygrad's x.max(axis) gives the values only; dim= is PyTorch's spelling
    alone, so it gets PyTorch's result: `x.max(dim=1)[0]` is the values, not their first row."""
    if axis is not None: raise TypeError(f"{which}() got the axis twice: dim= and axis (dim is PyTorch's name for axis)")
    d = _canon_axis(dim, self.ndim)
    if self.ndim == 0: return ValuesIndices(self, type(self).zeros((), dtype=dtypes.int32, device=self.device))
    indices = (self.argmax if which == "max" else self.argmin)(d, keepdim=True)
    values = self.gather(d, indices)
    return ValuesIndices(values, indices) if keepdim else ValuesIndices(values.squeeze(d), indices.squeeze(d))
  @takes_dim
  def argmax(self, axis=None, keepdim=False) -> Self:
    """Index of the largest value, the first one on ties and NaN counting as largest (like numpy). int32 (teeny's
    default int, as in tinygrad; torch gives int64; int64 along an axis past 2**31 - 1). axis=None searches the
    flattened tensor."""
    if axis is None:
      out = self.reshape(-1).argmax(0) if self.ndim else type(self)(0, device=self.device)
      return out.reshape((1,) * self.ndim) if keepdim else out
    ax = _canon_axis(axis, self.ndim)
    if self.ndim == 0: return type(self)(0, device=self.device)
    n = self.shape[ax]
    if n == 0: raise ArgumentError(f"argmax of an empty axis (shape {self.shape}, axis {axis})")
    # a float expression is stored once first: recomputed in two kernels it need not give the same bits (LLVM may
    # vectorize sin with libmvec in one and call libm in the other), and then nothing would equal the max
    x = self.contiguous() if dtypes.is_float(self.dtype) and not is_buffer_view(self.uop) else self
    hit = x == x.max(ax, keepdim=True)
    if dtypes.is_float(self.dtype):  # NaN counts as the largest value, like numpy and torch
      nan = x.isnan()
      hit = nan.any(ax, keepdim=True).where(nan, hit)
    # n - index counts down, so the largest marks the first hit; int64 past int32's range (then the result is too)
    index = index_dtype(n)
    rev = (n - _count_to(type(self), n, index, self.device)).reshape((n,) + (1,) * (self.ndim - ax - 1))
    return (n - hit.where(rev, 0).max(ax, keepdim)).cast(index)
  @takes_dim
  def argmin(self, axis=None, keepdim=False) -> Self:
    """Index of the smallest value, the first one on ties and NaN counting as smallest (like numpy and torch);
    int32 like argmax. Ints are negated, never bitwise-NOTed: ~x would reverse their order exactly, but Intel's
    OpenCL CPU compiler miscompiles max of ~x."""
    if dtypes.is_float(self.dtype): return (-self).argmax(axis, keepdim)  # -NaN is NaN: argmax finds it first
    if self.dtype == dtypes.bool: return self.logical_not().argmax(axis, keepdim)
    if self.dtype.itemsize <= 4:  # in int64, -x reverses the order of every narrower int, without overflow
      return (-self.cast(dtypes.int64)).argmax(axis, keepdim)
    # 64-bit: -x reverses the order of every value but the lowest (INT64_MIN negates to itself, unsigned 0 to 0).
    # A row holding the lowest value answers with its first one; the others negate with it set to 0 (no overflow)
    lowest = self == dtypes.min(self.dtype)
    negated = -(lowest.where(0, self))
    return lowest.any(axis, keepdim).where(lowest.argmax(axis, keepdim), negated.argmax(axis, keepdim))
  @functools.partial(takes_dim, empty_is_every_axis=False)  # (PyTorch's any(dim=()) reduces none)
  def any(self, axis=None, keepdim=False) -> Self:
    """A bool tensor: whether any element over the axes is nonzero (False over an empty axis), like torch.any (a
    uint8 tensor gives uint8, as there)."""
    if any(self.shape[a] == 0 for a in self._axes(axis)): out = type(self).full(self._reduced_shape(axis, keepdim), False, device=self.device)
    else: out = (self != 0).max(axis, keepdim)
    return out.cast(dtypes.uint8) if self.dtype == dtypes.uint8 else out
  @functools.partial(takes_dim, empty_is_every_axis=False)
  def all(self, axis=None, keepdim=False) -> Self:
    """A bool tensor: whether every element over the axes is nonzero (True over an empty axis), like torch.all (a
    uint8 tensor gives uint8, as there)."""
    out = (self == 0).any(axis, keepdim).logical_not()
    return out.cast(dtypes.uint8) if self.dtype == dtypes.uint8 else out
  @takes_dim
  def logsumexp(self, axis=None, keepdim=False) -> Self:
    """log(sum(exp(x))) shifted by the max so large logits don't overflow; rows of -inf give -inf, and so does an
    empty axis (log of an empty sum, like PyTorch)."""
    if any(self.shape[a] == 0 for a in self._axes(axis)):
      return self._float().sum(axis, keepdim=keepdim) - math.inf  # (from self: a graph for backward, zeros)
    top = self._float().max(axis, keepdim=True)
    m = top.detach()
    infinite = m == math.inf
    m = m.isinf().where(0.0, m)
    # a row holding +inf is +inf, and its gradient goes to the +inf elements (max's rule: exp(inf - inf) would be
    # NaN, and 0 * that NaN in every chain through it, a long scan's block totals among them); the sum below sees
    # zeros for such rows, so nothing infinite is differentiated there
    safe = infinite.where(0.0, self)
    out = infinite.where(top, (safe - m)._exp_shifted().sum(axis, keepdim=True).log() + m)
    return out if keepdim else out.reshape(self._reduced_shape(axis, False))
  def norm(self, p: float | str = 2, dim=None, keepdim: bool = False, dtype=None, *, axis=None) -> Self:
    """The p-norm over dim (all elements by default, dim=() too), like torch.norm / torch.linalg.vector_norm: p = 2
    ('fro'), 1, inf, -inf, 0 (how many are nonzero) or any other number, in dtype when given. Its gradient at a
    zero vector is 0, as PyTorch's (sqrt's slope there is inf, and inf times the zeros under it was NaN). Half
    floats sum in float32 and round once (float16 squares of 700 overflowed)."""
    if axis is not None and dim is not None: raise TypeError("norm() got the axis twice: dim= and axis")
    axis = axis if axis is not None else dim
    if isinstance(axis, (tuple, list)) and not axis: axis = None
    if p == "fro": p = 2
    if isinstance(p, str): raise ArgumentError(f"norm order {p!r} is not supported: give a number or 'fro'")
    x = self.cast(dtype) if dtype is not None else self._float()
    if x.dtype in NARROW_FLOATS: return x.float().norm(p, axis, keepdim).cast(x.dtype)
    if p in (math.inf, -math.inf):  # (PyTorch's gradient by a rule: 0 where the norm is NaN, as NaN equals nothing)
      magnitude = x.abs().max(axis, keepdim) if p > 0 else x.abs().min(axis, keepdim)
      return x._exact_gradient(magnitude, ("extreme_magnitude", x._axes(axis)))
    if p == 0: return (x != 0).sum(axis, keepdim).cast(x.dtype)
    if p == 1: return x.abs().sum(axis, keepdim)
    if p == 2: return x.square().sum(axis, keepdim)._sqrt_flat_at_zero()
    total = x.abs().pow(p).sum(axis, keepdim)
    return (total == 0).where(0.0, total).pow(1 / p)
  @takes_dim
  def softmin(self, axis=-1, dtype=None) -> Self:
    """softmax of -self, like torch.nn.functional.softmin."""
    return (-self).softmax(axis, dtype)
  @takes_dim
  def softmax(self, axis=-1, dtype=None) -> Self:
    """e^x / sum(e^x) along axis (the last by default), shifted by the max so nothing overflows, like
    torch.softmax; computed in dtype when given, else in self's float dtype (ints: the default float; half floats
    in float32, rounded once, as PyTorch's: each rounded step cost 13% of a small bfloat16 probability)."""
    x = self.cast(dtype) if dtype is not None else self._float()
    x._axes(axis)  # (checked here: the shortcut for an empty tensor skipped the check)
    if x.numel() == 0: return x  # nothing to normalize (and an empty axis has no max)
    def softmax_of(v: Self) -> Self:
      e = (v - v.max(axis, keepdim=True).detach())._exp_shifted()
      return e * e.sum(axis, keepdim=True).reciprocal()  # (one division per row, like PyTorch: not one per element)
    return x._in_float32(softmax_of)
  @takes_dim
  def log_softmax(self, axis=-1, dtype=None) -> Self:
    """x - logsumexp(x) along axis (the last by default), shifted by the max, like torch.log_softmax; dtype
    as in softmax."""
    x = self.cast(dtype) if dtype is not None else self._float()
    x._axes(axis)  # (checked before the shortcut, as in softmax)
    if x.numel() == 0: return x
    def log_softmax_of(v: Self) -> Self:
      shifted = v - v.max(axis, keepdim=True).detach()
      return shifted - shifted._exp_shifted().sum(axis, keepdim=True).log()
    return x._in_float32(log_softmax_of)
  def _cum_last(self, op: str) -> Self:
    """Inclusive scan over the last axis. Small axes: out[i] = reduce over j <= i, a masked (n, n) reduce that one
    kernel computes. Long axes split into blocks of 256: scan each block, scan the block totals, add the offsets."""
    n, block = self.shape[-1], 256
    if n <= 2 * block:
      idx = type(self).arange(n, dtype=dtypes.int32, device=self.device)
      keep = idx.reshape(n, 1) >= idx.reshape(1, n)  # row i keeps j <= i
      fill = _SCAN_FILL[op](self.dtype)
      masked = keep.where(self.unsqueeze(-2), type(self).full((), fill, dtype=self.dtype, device=self.device))
      return _SCAN_REDUCE[op](masked)
    nb = math.ceil(n / block)
    fill = _SCAN_FILL[op](self.dtype)
    x = self.pad(((0, 0),) * (self.ndim - 1) + ((0, nb * block - n),), value=fill).reshape(*self.shape[:-1], nb, block)
    inner = x._cum_last(op)
    # every block's total but the last, scanned: the offsets before each block (the last total is never needed, and
    # a product through it would give the others 0 * inf = NaN gradients where it is infinite)
    totals = inner.shrink(tuple((0, s) for s in inner.shape[:-2]) + ((0, nb - 1), (block - 1, block))).squeeze(-1)
    before = totals._cum_last(op).pad(((0, 0),) * (totals.ndim - 1) + ((1, 0),), value=fill)
    # the padding cut off before combining: a padded row's value (a product through an inf) times its 0 gradient
    # would be NaN in the offsets' gradient
    def used(t: Self) -> Self: return t.reshape(*self.shape[:-1], nb * block).shrink(tuple((0, s) for s in self.shape))
    return _SCAN_COMBINE[op](used(inner), used(before.unsqueeze(-1).expand(inner.shape)))
  @takes_dim
  def cumsum(self, axis: int = 0, dtype=None) -> Self:
    """Inclusive prefix sum along axis, in dtype when given (like torch.cumsum's). bool and int tensors sum in int64
    (like PyTorch); half floats in float32, each prefix rounded once, as PyTorch's (past 512 elements the block
    offsets were rounded to the half float too: 1000 x 0.1 in float16 ended at 99.94, not 100). float32 adds in
    float64 where the device has it, as PyTorch's CPU kernel: the scan adds in another order than a running sum,
    and [3e38, -3e38] * 8 passed through 3e38 + 3e38 = inf to NaN where each prefix is 3e38 or 0."""
    x = self.cast(dtype) if dtype is not None else self._accumulating()
    if not dtypes.is_float(x.dtype): return x._scan("sum", axis)
    if x.dtype in NARROW_FLOATS: scanned = x.float()._scan("sum", axis).cast(x.dtype)
    else: scanned = x._in_float64(lambda v: v._scan("sum", axis))
    # its gradient is the incoming one's reversed cumsum, in order too (the composition's sums were reassociated)
    return x._exact_gradient(scanned, ("cumsum", _canon_axis(axis, x.ndim))) if x.ndim else scanned
  @takes_dim
  def logcumsumexp(self, axis: int = 0) -> Self:
    """log(cumsum(exp(x))) along axis without overflow or underflow, like torch.logcumsumexp: each prefix is a
    logsumexp (shifted by its own max), so [-1000, 0] gives [-1000, 0] and not [-inf, 0]. Half floats scan in
    float32 and round each prefix once (its exp, sum and log each rounded to float16 were 1 ulp off in 1 of 5)."""
    return self._in_float32(lambda x: x._scan("logsumexp", axis))
  @takes_dim
  def cumprod(self, axis: int = 0, dtype=None) -> Self:
    """Inclusive prefix product along axis, like torch.cumprod (its gradient is right at zeros too), in dtype when
    given. bool and int tensors multiply in int64; half floats in float32, rounded once (as cumsum). float32
    multiplies in float64 where the device has it, as PyTorch's CPU kernel: each block of the scan starts again
    at 1, and products near 1 round down more often than up (the float spacing halves below 1), so float32 block
    totals drifted: 1e6 factors of 1 + 1e-3 N(0, 1) ended 4.8e-4 off (sequential float32: 4.6e-5)."""
    x = self.cast(dtype) if dtype is not None else self._accumulating()
    if x.dtype in NARROW_FLOATS: return x.float()._scan("prod", axis).cast(x.dtype)
    return x._in_float64(lambda v: v._scan("prod", axis))
  @takes_dim
  def cummin(self, axis: int = 0) -> tuple[Self, Self]:
    """(values, indices) of the running minimum along axis, like torch.cummin (see cummax for the indices)."""
    return self._with_running_index(self._running_min(axis), axis)
  @takes_dim
  def cummax(self, axis: int = 0) -> tuple[Self, Self]:
    """(values, indices) of the running maximum along axis, like torch.cummax and tinygrad's: a NaN stays once
    seen; the index (int32) is the last position so far holding the value (the latest NaN after one). The values
    are read back at those indices, so the gradient goes to that one element, as PyTorch's does."""
    return self._with_running_index(self._running_max(axis), axis)
  def _with_running_index(self, values: Self, axis: int) -> ValuesIndices:
    d = _canon_axis(axis, self.ndim)
    if self.ndim == 0: return ValuesIndices(self, type(self).zeros((), dtype=dtypes.int32, device=self.device))
    if self.shape[d] == 0: return ValuesIndices(self, self.cast(dtypes.int32))
    index = self._running_index(values, d)
    return ValuesIndices(self.gather(d, index), index)
  def _running_max(self, axis: int) -> Self:
    if self.dtype != dtypes.bool: return self._scan("max", axis)
    return self.cast(dtypes.uint8)._scan("max", axis).cast(dtypes.bool)
  def _running_min(self, axis: int) -> Self:
    if dtypes.is_float(self.dtype): return -((-self)._running_max(axis))
    if self.dtype == dtypes.bool: return self.logical_not()._running_max(axis).logical_not()
    # ints: a map that reverses their order and can't overflow (max - x unsigned, -1 - x signed), there and back
    top = dtypes.max(self.dtype) if dtypes.is_unsigned(self.dtype) else -1
    return top - (top - self)._running_max(axis)
  def _running_index(self, values: Self, axis: int) -> Self:  # (axis: canonical, of size > 0)
    """For each position i along axis, the last j <= i where self[j] is values[i] (NaN matching NaN), as int32:
    a masked (n, n) reduce, like the short scans. Both sides are stored first, so the comparisons see the same bits
    in every kernel (as argmax does)."""
    d = axis
    x, v = self.detach().contiguous().transpose(d, -1), values.detach().contiguous().transpose(d, -1)
    n = x.shape[-1]
    j = type(self).arange(n, dtype=dtypes.int32, device=self.device)
    same = x.unsqueeze(-2) == v.unsqueeze(-1)  # (..., i, j)
    if dtypes.is_float(self.dtype): same = same | (x.unsqueeze(-2).isnan() & v.unsqueeze(-1).isnan())
    seen = j.reshape(1, n) <= j.reshape(n, 1)
    return (seen & same).where(j, -1).max(-1).cast(dtypes.int32).transpose(d, -1)
  def _scan(self, op: str, axis: int) -> Self:
    """The inclusive scan (op: "sum", "max", "prod" or "logsumexp", see _cum_last) of self along axis."""
    ax = _canon_axis(axis, self.ndim)  # (first: a 0-d tensor takes axis 0 or -1 only, as in PyTorch)
    if self.ndim == 0 or self.shape[ax] == 0: return self._copy_result(self)
    return self.transpose(ax, -1)._cum_last(op).transpose(ax, -1)
  def _accumulating(self) -> Self:
    """Self in the dtype its sums and products accumulate in: int64 for bool and the ints (uint64 stays)."""
    return self if dtypes.is_float(self.dtype) or self.dtype == dtypes.uint64 else self.cast(dtypes.int64)

  # linear algebra (composed)
  def dot(self, w: Self) -> Self:
    """matmul, by tinygrad's name."""
    return self.matmul(w)
  def matmul(self, w: Self) -> Self:
    """self @ w, like torch.matmul: a 1-D operand is a vector (its axis is dropped from the result) and batch
    dimensions broadcast. Operands are promoted; ints stay in their promoted dtype. A broadcast product, summed.
    float16, bfloat16 and fp8 multiply in float32 (their products are exact there) and round the sum once, as
    PyTorch's matmul: rounding each product to float16 made [300, 300] @ [300, -300] inf - inf = NaN."""
    if not isinstance(w, ReduceOps): raise TypeError(f"matmul takes a Tensor, got {type(w).__name__}")
    if self.ndim == 0 or w.ndim == 0: raise ArgumentError(f"matmul needs tensors with at least 1 dimension, got {self.shape} and {w.shape}")
    if self.dtype == w.dtype and self.dtype in NARROW_FLOATS: return self.float().matmul(w.float()).cast(self.dtype)
    a = self.unsqueeze(0) if self.ndim == 1 else self
    b = w.unsqueeze(1) if w.ndim == 1 else w
    if a.shape[-1] != b.shape[-2]: raise ArgumentError(f"matmul shapes {self.shape} and {w.shape} don't match: {a.shape[-1]} != {b.shape[-2]}")
    try: _broadcast_shape(a.shape[:-2], b.shape[:-2])
    except ValueError: raise ArgumentError(f"matmul batch dimensions of {self.shape} and {w.shape} can't be broadcast together") from None
    # (..., n, k, 1) * (..., 1, k, m) summed over k
    out = (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2, dtype=promote(a.dtype, b.dtype) if not dtypes.is_float(promote(a.dtype, b.dtype)) else None)
    if self.ndim == 1: out = out.squeeze(-2)
    if w.ndim == 1: out = out.squeeze(-1)
    return out


def _count_to(cls, n: int, dtype, device):
  """0, 1, ..., n - 1: arange, made on the host, up to int32's range; past it (int64 values, 16 GiB of them for
  argmax of 2**31 bytes) computed from two host aranges of about sqrt(n) each, as row * cols + col."""
  if n <= dtypes.max(dtypes.int32): return cls.arange(n, dtype=dtype, device=device)
  cols = math.isqrt(n - 1) + 1
  rows = -(-n // cols)
  row = cls.arange(rows, dtype=dtype, device=device).reshape(rows, 1)
  return (row * cols + cls.arange(cols, dtype=dtype, device=device).reshape(1, cols)).reshape(rows * cols)[:n]


def _deviations(x, axes: tuple, correction: int):
  """What var's and std's rules share: x - mean(x) (the mean taken out twice, as the value's two sums do), the
  reduced shape with its dims kept (where the incoming gradient is reshaped to), and 2 / (n - correction), inf
  where that count is 0 (as the value divides by it)."""
  count = max(0, math.prod(x.shape[a] for a in axes) - correction)
  d = x - x.mean(axes, keepdim=True).detach()
  return d - d.mean(axes, keepdim=True), x._reduced_shape(axes, True), (2 / count if count else math.inf)


def _var_gradient(arg, grad, value, x):
  """var's rule: the incoming gradient (at the reduced shape, kept dims or not) times 2 (x - mean) / (n - correction)."""
  centered, kept, factor = _deviations(x, arg[1], arg[2])
  return (grad.reshape(kept) * (centered * factor),)


def _std_gradient(arg, grad, value, x):
  """std's rule, PyTorch's: (g / 2 std) (2 / (n - correction)) (x - mean), 0 where std is 0 (a constant row)."""
  centered, kept, factor = _deviations(x, arg[1], arg[2])
  std = value.reshape(kept)
  zero = std == 0
  share = (grad.reshape(kept) / (zero.where(1.0, std) * 2)) * factor  # (1 / 0 kept out: a NaN second derivative)
  return (zero.where(0.0, share * centered),)


def _extreme_magnitude_gradient(arg, grad, value, x):
  """norm(p=+-inf)'s rule, PyTorch's: the incoming gradient shared evenly by the elements whose magnitude is the
  norm, times their sign; nothing where the norm is NaN (Tensor.max's rule gave every element of that row NaN)."""
  axes = arg[1]
  kept = x._reduced_shape(axes, True)
  hit = x.abs() == value.reshape(kept)
  share = grad.reshape(kept) / hit.sum(axes, keepdim=True).maximum(1)
  return (hit.where(share * x.sign(), 0.0),)


tensor_rules["var"] = _var_gradient
tensor_rules["extreme_magnitude"] = _extreme_magnitude_gradient
tensor_rules["std"] = _std_gradient


tensor_rules["cumsum"] = lambda arg, grad, value, x: (grad.flip(arg[1]).cumsum(arg[1]).flip(arg[1]),)
