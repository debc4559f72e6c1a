"""PyTorch's reductions and order statistics that teeny lacked, as a Tensor mixin: amax, amin, aminmax, nansum,
nanmean, count_nonzero, equal, median, nanmedian, kthvalue, msort, quantile and nanquantile.

The order statistics sort (sorting.py: stable, NaN last) and pick a position per row: median's is the lower middle
one, or the first NaN where a row holds one (PyTorch's median is NaN then); nanmedian's the lower middle of the
numbers. With a dim they give a named pair (values, indices) like max(dim=), the values read at the indices, so
the gradient goes to that one element, as PyTorch's. median() and nanmedian() of all elements share the gradient
evenly among the elements equal to the result (the NaNs, when it is NaN), as PyTorch does: a rule of their own
("shared_evenly")."""
from __future__ import annotations
import math
from typing import TYPE_CHECKING, NamedTuple, Any
from teeny.dtype import dtypes
from teeny.gradient import tensor_rules
from teeny.ops.args import ArgumentError, _canon_axis, _int_arg
from teeny.ops.reduce import ValuesIndices
from teeny.ops.pytorch import DtypeError, check_tensor
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self

_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")
_RANK_ROUNDING = {"lower": "floor", "higher": "ceil", "nearest": "round"}  # (nearest: half to even, as PyTorch's round)


class MinMax(NamedTuple):
  """What PyTorch's aminmax returns (torch.return_types.aminmax): the smallest and the largest values."""
  min: Any
  max: Any


def _all_if_empty(dim, ndim: int):
  """amax's and amin's dim: () or [] (PyTorch's default) means every dim, as None does; named one by one, since
  max() of all elements (axis None) takes PyTorch's max() gradient, amax's differs where a NaN is."""
  return tuple(range(ndim)) if dim is None or (isinstance(dim, (tuple, list)) and not dim) else dim


class PyTorchReduceOps:
  """Tensor's PyTorch reductions and order statistics."""
  def amax(self, dim=(), keepdim: bool = False) -> Self:
    """The largest value over dim (an int or a tuple; all dims by default), like torch.amax: NaN where a NaN is
    among them, and tied maxima share the gradient evenly (max(dim=) gives it all to one)."""
    return self.max(_all_if_empty(dim, self.ndim), keepdim)
  def amin(self, dim=(), keepdim: bool = False) -> Self:
    """The smallest value over dim (an int or a tuple; all dims by default), like torch.amin (ties share the
    gradient evenly)."""
    return self.min(_all_if_empty(dim, self.ndim), keepdim)
  def aminmax(self, *, dim: int | None = None, keepdim: bool = False) -> MinMax:
    """(min, max) over dim (an int; all dims by default), a named pair like torch.aminmax's."""
    if dim is not None and not isinstance(dim, int): raise TypeError(f"aminmax takes one dim (an int) or None, got {dim!r}")
    return MinMax(self.amin(dim, keepdim), self.amax(dim, keepdim))
  def nansum(self, dim=None, keepdim: bool = False, *, dtype=None) -> Self:
    """The sum over dim with NaNs counted as 0, like torch.nansum (ints sum in int64; no gradient to the NaNs;
    dim=() is every dim, as PyTorch's: it summed none)."""
    return self.isnan().where(0, self).sum(_all_if_empty(dim, self.ndim), keepdim, dtype=dtype)
  def nanmean(self, dim=None, keepdim: bool = False, *, dtype=None) -> Self:
    """The mean of the numbers over dim, NaNs left out, like torch.nanmean: NaN where there are none. Int tensors
    give the default float, as teeny's mean does (PyTorch raises)."""
    x = self.cast(dtype) if dtype is not None else self._float()
    dim = _all_if_empty(dim, self.ndim)
    numbers = x.isnan().logical_not().sum(dim, keepdim)
    return x.nansum(dim, keepdim) / numbers
  def count_nonzero(self, dim=None) -> Self:
    """How many elements over dim (an int or a tuple; all by default) are not 0, as int64, like
    torch.count_nonzero (NaN counts; dim=() is every dim, as there)."""
    return (self != 0).sum(_all_if_empty(dim, self.ndim))
  def equal(self, other) -> bool:
    """Whether self and other have the same shape and equal elements (NaN equals nothing), a Python bool like
    torch.equal's (it reads the data)."""
    check_tensor(other, "equal's other")
    return self.shape == other.shape and bool((self == other).all().item())

  # order statistics
  def _picked_along(self, d: int, position: Self | int, keepdim: bool) -> ValuesIndices:
    """The element at sorted `position` (per row, an int tensor with d kept as size 1, or an int) along dim d, and
    its index: values read from self at the indices."""
    if isinstance(position, int):
      position = type(self).full(self.shape[:d] + (1,) + self.shape[d + 1:], position, dtype=dtypes.int32, device=self.device)
    indices = self.argsort(d).gather(d, position.cast(dtypes.int32))
    values = self.gather(d, indices)
    return ValuesIndices(values, indices) if keepdim else ValuesIndices(values.squeeze(d), indices.squeeze(d))
  def _order_statistic(self, name: str, dim: int, keepdim: bool, position) -> ValuesIndices:
    """The values and indices `position(row size, NaN count per row)` picks out of each sorted row along dim."""
    d = _canon_axis(dim, self.ndim)  # (checked first: a 0-d tensor takes dim 0 or -1 only, as in PyTorch)
    if self.ndim == 0: return ValuesIndices(self, type(self).zeros((), dtype=dtypes.int32, device=self.device))
    n = self.shape[d]
    if n == 0: raise ArgumentError(f"{name} over dim {dim} of size 0: there is no element to pick")
    missing = self.isnan().sum(d, keepdim=True)
    return self._picked_along(d, position(n, missing), keepdim)
  def _of_all(self, name: str, ignore_nan: bool, keepdim: bool) -> Self:
    """median() or nanmedian() of every element: the value, with its gradient shared evenly (see the module)."""
    if keepdim: raise TypeError(f"{name}() takes keepdim only with a dim, as PyTorch's")
    if self.numel() == 0:  # (PyTorch's: NaN of a float tensor, from it, so backward() gives its empty gradient;
      # an int tensor keeps its dtype, PyTorch's value its smallest)
      if not dtypes.is_float(self.dtype): return type(self).full((), dtypes.min(self.dtype), dtype=self.dtype, device=self.device)
      return self.sum() * math.nan
    flat = self.flatten()
    value = flat._order_statistic(name, 0, False, _median_position(ignore_nan)).values
    return self._exact_gradient(value, "shared_evenly")
  def median(self, dim: int | None = None, keepdim: bool = False):
    """The lower of the two middle values, like torch.median: NaN where a NaN is present. With no dim, of all the
    elements (one value); with dim, a named pair (values, indices) along it, like max(dim=)."""
    if dim is None: return self._of_all("median", False, keepdim)
    return self._order_statistic("median", dim, keepdim, _median_position(ignore_nan=False))
  def nanmedian(self, dim: int | None = None, keepdim: bool = False):
    """median with NaNs left out, like torch.nanmedian: NaN only where a row holds nothing else."""
    if dim is None: return self._of_all("nanmedian", True, keepdim)
    return self._order_statistic("nanmedian", dim, keepdim, _median_position(ignore_nan=True))
  def kthvalue(self, k: int, dim: int = -1, keepdim: bool = False) -> ValuesIndices:
    """The k-th smallest element along dim (k from 1; NaN counts as the largest) and its index, a named pair like
    torch.kthvalue's."""
    n, k = self.shape[_canon_axis(dim, self.ndim)] if self.ndim else 1, _int_arg(k, "kthvalue's k")
    if not 1 <= k <= n: raise ArgumentError(f"kthvalue: k={k!r} is out of range for a dim of size {n} (1 to {n})")
    return self._order_statistic("kthvalue", dim, keepdim, lambda size, missing: k - 1)
  def msort(self) -> Self:
    """Sorted along dim 0, like torch.msort."""
    return self.sort(0).values
  def quantile(self, q, dim: int | None = None, keepdim: bool = False, *, interpolation: str = "linear") -> Self:
    """The q-th quantiles (q a float or a 1-d tensor, in [0, 1]) over dim (all elements by default), like
    torch.quantile: between sorted neighbours by `interpolation` (linear, lower, higher, midpoint, nearest); NaN
    where a NaN is present. A tensor q adds a first dim; its values are not read: one outside [0, 1] gives NaN."""
    return self._quantile("quantile", q, dim, keepdim, interpolation, ignore_nan=False)
  def nanquantile(self, q, dim: int | None = None, keepdim: bool = False, *, interpolation: str = "linear") -> Self:
    """quantile with NaNs left out, like torch.nanquantile: NaN only where a row holds nothing else."""
    return self._quantile("nanquantile", q, dim, keepdim, interpolation, ignore_nan=True)
  def _quantile(self, name: str, q, dim, keepdim: bool, interpolation: str, ignore_nan: bool) -> Self:
    """quantile and nanquantile: the arguments checked, self's rows along dim (or all of it) given to
    _quantile_of_rows, and the quantiles' dim put first."""
    if not dtypes.is_float(self.dtype): raise DtypeError(f"{name} needs a float tensor, got {self.dtype} (as in PyTorch)")
    if interpolation not in _INTERPOLATIONS: raise ArgumentError(f"{name} interpolation must be one of {', '.join(_INTERPOLATIONS)}, got {interpolation!r}")
    if self.numel() == 0: raise ArgumentError(f"{name} of an empty tensor")
    qs = self._quantile_points(name, q)
    x = self.flatten() if dim is None else self.reshape(1) if self.ndim == 0 else self
    d = 0 if dim is None else _canon_axis(dim, x.ndim)
    rows = x.permute(*(i for i in range(x.ndim) if i != d), d)  # (dim last, the others in their order)
    out = rows._quantile_of_rows(qs.reshape(-1, 1), interpolation, ignore_nan)  # (..., Q)
    out = out.permute(out.ndim - 1, *range(out.ndim - 1))  # (Q, ...): the quantiles first, as PyTorch's
    return out.reshape(qs.shape + self._reduced_shape(None if dim is None else d, keepdim))
  def _quantile_points(self, name: str, q) -> Self:
    """quantile's q as a 0-d or 1-d tensor of self's dtype: a float checked to be in [0, 1], a tensor of self's
    dtype (as PyTorch asks) not read."""
    if isinstance(q, (int, float)) and not isinstance(q, bool):
      if not 0 <= q <= 1: raise ArgumentError(f"{name} q must be in [0, 1], got {q}")
      return type(self).full((), q, dtype=self.dtype, device=self.device)
    check_tensor(q, f"{name}'s q")
    if q.ndim > 1: raise ArgumentError(f"{name} q must be a number or a 1-d tensor, got shape {q.shape}")
    if q.dtype != self.dtype: raise DtypeError(f"{name} q of dtype {q.dtype} for a {self.dtype} tensor: give q in the tensor's dtype (as PyTorch asks)")
    return q
  def _quantile_of_rows(self, q: Self, interpolation: str, ignore_nan: bool) -> Self:
    """For rows (..., n) and quantiles q (Q, 1): (..., Q), PyTorch's way: rank q * (count - 1) in the sorted row
    (count: its numbers, or all with a NaN, whose rank is then the last), rounded by interpolation, and the
    neighbours below and above the rank blended."""
    n = self.shape[-1]
    ordered = self.sort(-1).values.unsqueeze(-2)  # (..., 1, n), NaN last
    missing = ordered.isnan().sum(-1, keepdim=True)  # (..., 1, 1)
    if ignore_nan: rank = (q * (n - missing - 1).cast(q.dtype)).maximum(0)  # (a row of NaNs: rank 0, a NaN)
    else: rank = (missing > 0).where(n - 1, q * (n - 1))  # (..., Q, 1)
    if interpolation in _RANK_ROUNDING: rank = getattr(rank, _RANK_ROUNDING[interpolation])()
    out_of_range = (q < 0) | (q > 1)
    rank = out_of_range.where(0.0, rank)  # (those give NaN: below)
    def at(position: Self) -> Self:
      return ordered.expand(*rank.shape[:-1], n).gather(-1, position.cast(dtypes.int32))
    below = rank.floor()
    value = at(below)
    if interpolation in ("linear", "midpoint"):
      low, high = value, at(rank.ceil())
      weight = rank - below if interpolation == "linear" else rank.full_like(0.5)
      # torch.lerp's two forms (the same roundings): from below for weights under 0.5, from above past it
      value = (weight < 0.5).where(low + weight * (high - low), high - (high - low) * (1 - weight))
    return out_of_range.where(math.nan, value).squeeze(-1)


def _median_position(ignore_nan: bool):
  """median's sorted position per row from its size n and NaN count: the lower middle one, or the first NaN
  where there is one (NaN last in the sorted row); nanmedian's the lower middle of the numbers (0 in a row of
  NaNs: a NaN)."""
  if ignore_nan: return lambda n, missing: ((n - missing - 1) // 2).maximum(0)
  return lambda n, missing: (missing > 0).where(n - missing, (n - 1) // 2)


def _shared_evenly(arg, grad, value, x) -> tuple:
  """The gradient of a value picked from x (median() of all elements), PyTorch's evenly_distribute_backward: shared
  evenly among the elements equal to it, or among the NaNs when it is NaN."""
  result = value.detach()
  hit = result.isnan().where(x.isnan(), x == result)
  wide = grad.dtype if grad.dtype.itemsize >= 4 else dtypes.float32  # (70,000 ties are inf in float16)
  share = (grad.cast(wide) / hit.sum().cast(wide)).cast(grad.dtype)
  return (hit.where(share, 0.0),)


tensor_rules["shared_evenly"] = _shared_evenly
