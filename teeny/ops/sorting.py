"""Sorting and selecting as a Tensor mixin: sort, argsort, topk, and masked_select and nonzero (with tinygrad's
fixed `size=` form, which stays lazy).

Sorting by rank. An element's place in the sorted order is the number of elements that come before it, and "comes
before" is a total order: by value (NaN after everything, like PyTorch; reversed for descending), then by the
original index, so equal values keep their order (a stable sort) and every rank is distinct. Counting is one
reduce over a (..., n, n) comparison that a kernel computes without storing it, so sort costs n^2 comparisons:
cheap for the rows people sort (a few thousand), slow for millions. topk ranks blocks of the row and keeps each
block's best k, then ranks the survivors, so its cost is about n * block, not n^2 (a top-50 over a 50k vocabulary
is three small levels). The values are gathered from the input by the final indices, so gradients flow to the
elements that were picked, like PyTorch's. Indices are int32, like argmax's."""
from __future__ import annotations
import math
from typing import TYPE_CHECKING
from teeny.dtype import dtypes
from teeny.ops.args import ArgumentError, _canon_axis, _broadcast_shape, _int_arg, index_dtype
from teeny.ops.reduce import ValuesIndices
if TYPE_CHECKING:
  from typing import Self

_BLOCK = 256  # topk ranks blocks of this many candidates (or 4k, when larger) and keeps k of each


def _comes_before(a, a_index, b, b_index, descending: bool):
  """True where element a (value, index) sorts before element b: by value, NaN last (first when descending),
  then by the smaller index. Padding (a negative index) sorts after everything, and among itself by index (-1
  first), so every slot of a block gets its own rank: equal ranks made a block with fewer than k elements pick one
  slot twice and a sum of slots for another (topk of 257 elements gave [0, 255, 255])."""
  if dtypes.is_float(a.dtype):
    a_nan, b_nan = a.isnan(), b.isnan()
    by_value = (a > b) | (a_nan & b_nan.logical_not()) if descending else (a < b) | (a_nan.logical_not() & b_nan)
    same = (a == b) | (a_nan & b_nan)
  else:
    by_value, same = (a > b) if descending else (a < b), a == b
  a_pad, b_pad = a_index < 0, b_index < 0
  ordered = by_value | (same & (a_index < b_index))
  return (a_pad.logical_not() & (b_pad | ordered)) | (a_pad & b_pad & (a_index > b_index))


def _best_of_blocks(values, index, k: int, descending: bool):
  """For rows of (..., blocks, size) values and their original indices: each block's first k in sorted order, as
  (..., blocks, k) values and indices."""
  size = values.shape[-1]
  before = _comes_before(values.unsqueeze(-2), index.unsqueeze(-2), values.unsqueeze(-1), index.unsqueeze(-1), descending)
  rank = before.cast(dtypes.int32).sum(-1, dtype=dtypes.int32)  # rank[i]: how many come before element i
  places = type(values).arange(k, dtype=dtypes.int32, device=values.device).unsqueeze(-1)
  slots = type(values).arange(size, dtype=dtypes.int32, device=values.device)
  where = ((rank.unsqueeze(-2) == places).where(slots, 0)).sum(-1, dtype=dtypes.int32)  # the slot holding rank r
  return values.gather(-1, where), index.gather(-1, where)


def _padded_blocks(values, index, block: int, pads_before: int):
  """Split the last axis into blocks of `block`, padding the end with indices -pads_before - 1, -pads_before - 2, ...
  (which sort last; distinct from the pads of earlier rounds, which this row may still hold)."""
  n = values.shape[-1]
  blocks = math.ceil(n / block)
  extra = ((0, 0),) * (values.ndim - 1) + ((0, blocks * block - n),)
  shape = values.shape[:-1] + (blocks, block)
  pads = type(index).arange(-pads_before - 1, -pads_before - 1 - (blocks * block - n), -1, dtype=dtypes.int32, device=index.device)
  return values.pad(extra).reshape(shape), index.cat(pads.expand(index.shape[:-1] + pads.shape), dim=-1).reshape(shape)


class SortOps:
  """sort, argsort, topk, masked_select, nonzero."""
  def _ranked_first(self, k: int, dim: int, descending: bool) -> ValuesIndices:
    """The first k of self along dim in sorted order: (values, int32 indices), dim moved back in place."""
    d = _canon_axis(dim, self.ndim)
    x = self.transpose(d, -1) if self.ndim else self.reshape(1)
    # the keys are stored once: computed inline, each comparison would compute both sides, and a kernel may
    # compute the same exp or log in vector and scalar code that differ in the last bit, so an element could rank
    # before itself
    keys = (x.cast(dtypes.uint8) if x.dtype == dtypes.bool else x).detach().contiguous()
    n = x.shape[-1]
    index = type(self).arange(n, dtype=dtypes.int32, device=self.device).expand(keys.shape)
    block, pads = max(_BLOCK, 4 * k), 0
    while keys.shape[-1] > block:  # keep each block's best k, until one block is left
      kept_keys, kept_index = _best_of_blocks(*_padded_blocks(keys, index, block, pads), k, descending)
      pads += -keys.shape[-1] % block
      keys, index = kept_keys.flatten(-2), kept_index.flatten(-2)
    _, index = _best_of_blocks(keys.unsqueeze(-2), index.unsqueeze(-2), k, descending)
    index = index.squeeze(-2)
    values = x.gather(-1, index)
    if not self.ndim: return ValuesIndices(values.reshape(()), index.reshape(()))
    return ValuesIndices(values.transpose(d, -1), index.transpose(d, -1))

  def sort(self, dim: int = -1, descending: bool = False, stable: bool = True) -> tuple[Self, Self]:
    """(values, indices) sorted along dim, like torch.sort: stable (equal values keep their order), NaN sorted as
    the largest value; a named pair (.values, .indices) as PyTorch's. Costs dim's size squared in comparisons (see
    the module docstring)."""
    d = _canon_axis(dim, self.ndim)  # (checked first: a 0-d tensor takes dim 0 or -1 only, as in PyTorch)
    if self.ndim == 0: return ValuesIndices(self, type(self).zeros((), dtype=dtypes.int32, device=self.device))
    n = self.shape[d]
    if n == 0: return ValuesIndices(self, self.cast(dtypes.int32))
    return self._ranked_first(n, dim, descending)

  def argsort(self, dim: int = -1, descending: bool = False, stable: bool = True) -> Self:
    """The indices that sort self along dim (int32), like torch.argsort."""
    return self.sort(dim, descending)[1]

  def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True, *, sorted_: bool | None = None) -> tuple[Self, Self]:
    """The k largest (or smallest) elements along dim and their indices, like torch.topk, in sorted order (which
    is also what sorted=False gives: PyTorch leaves that order unspecified), a named pair (.values, .indices) as
    PyTorch's. tinygrad's sorted_= is accepted."""
    n, k = self.shape[_canon_axis(dim, self.ndim)] if self.ndim else 1, _int_arg(k, "topk's k")  # (True was k=1)
    if not 0 <= k <= n: raise ArgumentError(f"topk: k={k!r} must be an int in [0, {n}] for dim of size {n}")
    if k == 0 and self.ndim == 0:  # (PyTorch gives the element itself here, index 0; an empty() was never written)
      return ValuesIndices(self, type(self).zeros((), dtype=dtypes.int32, device=self.device))
    if k == 0:  # none along dim: a view of none of self, so backward() gives zeros
      d = _canon_axis(dim, self.ndim)
      none = self.shrink(tuple((0, 0) if i == d else None for i in range(self.ndim)))
      return ValuesIndices(none, type(self).zeros(none.shape, dtype=dtypes.int32, device=self.device))
    return self._ranked_first(k, dim, descending=largest)

  def _true_positions(self, size: int) -> tuple[Self, Self]:
    """For a bool mask: the flat positions of its first `size` True elements (int32; int64 in a mask of more than
    2**31 - 1 elements, where int32 counts would wrap) and which of them exist."""
    flat = self.cast(dtypes.bool).flatten()
    index = index_dtype(flat.shape[0])
    count_through = flat.cast(index).cumsum().cast(index)  # how many True up to and including i
    r = type(self).arange(size, dtype=index, device=self.device).unsqueeze(-1)
    position = (count_through.unsqueeze(0) <= r).cast(index).sum(-1, dtype=index)  # the (r+1)-th True
    return position, position < flat.shape[0]

  def _selected_size(self, size: int | None) -> int:
    if size is None: return int(self.cast(dtypes.bool).sum().item())  # (reads the mask: the shape depends on it)
    if not isinstance(size, int) or size < 0: raise ArgumentError(f"size must be a non-negative int or None, got {size!r}")
    return size

  def masked_select(self, mask, size: int | None = None, fill_value=0) -> Self:
    """The elements of self where mask (broadcast to self's shape) is True, as a 1-D tensor in row-major order, like
    torch.masked_select. size=None reads the mask to know how many (like PyTorch); size=N gives exactly N, cut or
    padded with fill_value, and stays lazy (tinygrad's form, usable under TinyJit)."""
    mask = mask if isinstance(mask, type(self)) else type(self)(mask, device=self.device)
    if mask.dtype != dtypes.bool: raise TypeError(f"masked_select needs a bool mask, got {mask.dtype}")
    shape = _broadcast_shape(self.shape, mask.shape)  # (both broadcast, as in PyTorch)
    x, mask = self.expand(shape), mask.expand(shape)
    position, exists = mask._true_positions(mask._selected_size(size))
    picked = x.flatten().gather(0, exists.where(position, 0))
    return exists.where(picked, fill_value).cast(self.dtype)

  def nonzero(self, size: int | None = None, fill_value=0, as_tuple: bool = False):
    """The indices of the non-zero elements, shape (count, ndim) in row-major order, like torch.nonzero (int32
    here). size=N gives N rows, cut or padded with fill_value, and stays lazy; as_tuple gives one 1-D tensor per
    dimension, like torch.nonzero(as_tuple=True)."""
    position, exists = self._true_positions(self._selected_size(size))
    columns, stride = [], 1
    for extent in reversed(self.shape):
      columns.insert(0, exists.where((position // stride) % extent, fill_value).cast(position.dtype))
      stride *= extent
    if as_tuple and self.ndim == 0: return (exists.where(0, fill_value).cast(dtypes.int32),)  # (a 0-d tensor: as 1-d, like PyTorch)
    if as_tuple: return tuple(columns)
    if not columns: return type(self).zeros((position.shape[0], 0), dtype=dtypes.int32, device=self.device)
    return type(self).stack(columns, dim=1)
