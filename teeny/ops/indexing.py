"""Indexing as a Tensor mixin: x[index] and x[index] = v with numpy's index forms (ints, slices, None, Ellipsis and
integer tensors), and gather, scatter, one_hot and masked_fill. Ints and slices are views (IndexPlan works out the
crops, flips and steps an index stands for); a tensor index selects with a comparison against the positions,
summed, which codegen compiles to one load at the index (a gather axis, codegen/opt.py)."""
from __future__ import annotations
import math
from typing import TYPE_CHECKING, Any
import numpy as np
from teeny.dtype import DType, dtypes
from teeny.uop import Ops
from teeny.gradient import tensor_rules
from teeny.ops.args import ArgumentError, IndexDtypeError, Scalar, _broadcast_shape, _canon_axis, _int_arg
from teeny.ops import variables
from teeny.ops.constants import _iota
from teeny.ops.index_plan import BoolAxis, IndexPlan, host_index, is_bool_array
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self


class IndexingOps:
  """Tensor's indexing: __getitem__, __setitem__, gather, scatter, one_hot, masked_fill."""
  _write_target = None  # (x, index) when this tensor is x[index] read through Variables: writes into it reach x
  def __getitem__(self, index) -> Self:
    """numpy indexing: ints, slices (any step, negative too), None, Ellipsis, and integer tensors, lists or tuples
    inside the index tuple (fancy indexing; several index tensors broadcast together, and their result axes go where
    PyTorch puts them; a 0-d integer tensor counts as an int there, as in PyTorch), and bool masks (tensors, arrays
    or lists) over one or more axes: they select where they are true, like PyTorch, which reads the mask (the
    result's size depends on it). Ints and slices are free views. A tensor index compiles to a load at the index (a gather): k
    selections cost k loads, not k times the size of the indexed axes. A tensor index out of range selects nothing
    (gives 0), since checking it would need to read the index from the device; a list's raises IndexError. Negative tensor indices count
    from the end. A bound Variable (teeny.Variable) may be an index or a slice bound (x[pos:pos + k]), or a size
    (x[:pos], at its bound value): see teeny/ops/variables.py."""
    split = variables.split_index(self, index)
    if split is not None and split[1]: return variables.read(self, index, *split)
    if split is not None: index = tuple(split[0])  # (Variables as sizes only: a plain index at their values)
    plan = self._index_plan(index)
    x = self._basic_index(plan)
    if not plan.tensors: return x
    return x._take(plan.tensor_axes, plan.tensors).permute(plan.result_order)

  def __iter__(self):
    """The tensor's rows (along its first axis), like PyTorch's; a 0-d tensor has none and raises TypeError
    (Python's fallback through __getitem__ stopped at x[0]'s IndexError: a silently empty iteration)."""
    if self.ndim == 0: raise TypeError("iteration over a 0-d tensor")
    return (self[i] for i in range(self.shape[0]))

  def __setitem__(self, index, value):
    """x[index] = value for every index form of __getitem__: an in-place write through the indexed view into x's
    storage (lazy, like assign; x and every view of it see it). With repeated tensor indices the last write wins,
    like numpy. A bool mask over the leading dims (x[x < 0] = 0) writes value (a number, or one that broadcasts to
    each selected element) where the mask is true, lazily; a value per selected element reads the mask first."""
    self._check_inplace()
    if self._is_leading_mask(index) and self._one_value_for_all(index, value): return self._write_where_true(index, value)
    split = variables.split_index(self, index)
    if split is not None and not split[1]: index, split = tuple(split[0]), None  # (Variables as sizes only: plain)
    plan = self._index_plan(index) if split is None else None
    value = value if isinstance(value, type(self)) else type(self)(value, device=self.device, dtype=self.dtype)
    if value.device != self.device: raise RuntimeError(f"can't assign a tensor on {value.device} into one on {self.device}")
    if split is not None: return variables.write(self, *split, value)
    sub = self._basic_index(plan)
    target_shape = sub.shape if not plan.tensors else sub._take(plan.tensor_axes, plan.tensors).permute(plan.result_order).shape
    while len(value.shape) > len(target_shape) and value.shape[0] == 1: value = value[0]  # (PyTorch drops leading 1s)
    if len(value.shape) > len(target_shape) or any(v not in (1, t) for v, t in zip(value.shape[::-1], target_shape[::-1])):
      raise ArgumentError(f"can't assign a tensor of shape {value.shape} to an indexed region of shape {target_shape}")
    value = value.cast(self.dtype).expand(target_shape)
    if plan.tensors:  # the selected elements of the view replaced: the whole view is written
      inverse = tuple(plan.result_order.index(i) for i in range(len(plan.result_order)))
      value = sub._put(plan.tensor_axes, plan.tensors, value.permute(inverse))
    sub.assign(value)

  def _is_leading_mask(self, index) -> bool:
    """Whether index is a bool tensor or array shaped like self's leading dims (x[mask] = value)."""
    if not isinstance(index, (type(self), np.ndarray)) or index.dtype not in (dtypes.bool, np.bool_): return False
    return tuple(index.shape) == self.shape[:len(index.shape)]

  def _one_value_for_all(self, mask, value) -> bool:
    """Whether value (for x[mask] = value) is one value for every selected element: a number, or a tensor whose dims
    before one element's (x.shape[mask.ndim:]) are all 1."""
    if not isinstance(value, (type(self), np.ndarray)): return True
    extra = len(value.shape) - (self.ndim - len(mask.shape))
    return all(n == 1 for n in value.shape[:max(extra, 0)])

  def _write_where_true(self, mask, value):
    """x[mask] = value for a mask over x's leading dims and one value for every selected element (a number, or a
    tensor that broadcasts to one element's trailing dims): a where(), lazy."""
    mask = mask if isinstance(mask, type(self)) else type(self)(mask, device=self.device)
    rest = self.shape[mask.ndim:]
    extra = value.ndim - len(rest) if isinstance(value, type(self)) else 0  # value's dims before one element's
    if extra > 0: value = value.reshape(value.shape[extra:])
    self.assign(self.masked_fill(mask.reshape(mask.shape + (1,) * len(rest)), value))

  def _index_plan(self, index) -> IndexPlan:
    """Check an index and work out the views (crops, flips, steps) and tensor selections it stands for."""
    items = self._index_items(index)
    plan = IndexPlan()
    # PyTorch's (and tinygrad's) rule for where the tensor indices' axes go: ints index first, like slices, and
    # the tensors then select along the axes that are left; their broadcast shape takes their place when nothing
    # but ints stands between them, else it goes first. (numpy counts ints as tensor indices instead, which moves
    # the axes of x[0, :, idx]: (len(idx), n) in numpy, (n, len(idx)) in PyTorch and here.)
    advanced, position = [], 0  # where each tensor is among the items that leave an axis (slices, None, tensors)
    axis = 0
    for _, i in items:
      if i is None or isinstance(i, BoolAxis):  # a new axis (of size 0 for a False index)
        if isinstance(i, BoolAxis) and i.size == 0: plan.emptied.append(len(plan.out_shape))
        plan.out_shape.append(1 if i is None else i.size)
        position += 1
        continue
      like_int = isinstance(i, (int, np.integer)) or (isinstance(i, type(self)) and i.ndim == 0)  # (PyTorch's reading)
      if isinstance(i, type(self)):
        if not like_int and not advanced: plan.batch_at = len(plan.out_shape) - len(plan.tensors)
        if not like_int: advanced.append(position)
        plan.add_tensor(i, self.shape[axis])
      elif like_int: plan.add_int(int(i), self.shape[axis], axis)
      else: plan.add_slice(i, self.shape[axis])
      if not like_int: position += 1
      axis += 1
    if plan.tensors and any(isinstance(i, BoolAxis) for _, i in items):
      raise IndexError("a bool index (True/False) beside tensor indices is not supported: index in two steps")
    if plan.tensors: plan.place_batch(adjacent=advanced == list(range(advanced[0], advanced[-1] + 1)) if advanced else True)
    return plan

  def _index_items(self, index) -> list[tuple[int, Any]]:
    """The index checked, as (position in the index, item): lists, tuples and arrays inside the index tuple made
    integer tensors (a tuple as the whole index holds one item per axis, as in numpy; their values are known here,
    so one out of range raises IndexError, as in PyTorch), and the Ellipsis (or the end, without one) replaced by
    whole slices for the axes no item names, at the Ellipsis's position."""
    index = self._index_tuple(index)
    ellipses = [pos for pos, i in enumerate(index) if i is Ellipsis]  # by identity: == on a Tensor is lazy
    if len(ellipses) > 1: raise IndexError("an index can only have a single ellipsis ('...')")
    def axes_named(i) -> int: return i.ndim if isinstance(i, type(self)) and i.dtype == dtypes.bool else 1  # (a mask: its dims)
    n_real = sum(axes_named(i) for i in index if i is not None and i is not Ellipsis and not isinstance(i, BoolAxis))
    if n_real > self.ndim: raise IndexError(f"too many indices ({n_real}) for a tensor of shape {self.shape}")
    at = ellipses[0] if ellipses else len(index)
    items = list(enumerate(index))
    items = items[:at] + [(at, slice(None))] * (self.ndim - n_real) + items[at + 1:]
    return self._arrays_as_tensors(items)

  def _index_tuple(self, index) -> tuple:
    """The index as a tuple of items of the kinds the plan reads: host lists and arrays as numpy arrays, a single
    bool as the new axis it makes, tensors and bool arrays as tensors. Any other item raises TypeError."""
    if isinstance(index, list) and any(i is None or i is Ellipsis or isinstance(i, slice) for i in index):
      index = tuple(index)  # x[[slice(None), [1, 3]]]: PyTorch reads a list holding a slice as the tuple (numpy refuses it)
    index = index if isinstance(index, tuple) else (index,)
    index = tuple(host_index(i) if isinstance(i, (list, tuple, np.ndarray)) else i for i in index)
    index = tuple(BoolAxis.of(i) or i for i in index)
    index = tuple(self._index_tensor(i) if isinstance(i, type(self)) or is_bool_array(i) else i for i in index)
    for i in index:
      if not (i is None or i is Ellipsis or isinstance(i, (int, slice, np.integer, np.ndarray, type(self), BoolAxis))):
        raise TypeError(f"unsupported index {i!r}: use ints, slices, None, ..., or integer tensors or lists")
    return index

  def _arrays_as_tensors(self, items: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """Each host integer array checked against its axis and made a tensor; each bool mask replaced by the integer
    tensors of its true positions, one per axis it covers (PyTorch's reading: mask.nonzero()). Its count of trues
    is data, so this reads the mask from the device."""
    out, axis = [], 0
    for position, i in items:
      if isinstance(i, np.ndarray):
        size = self.shape[axis]
        if i.size and not (-size <= i.min() and i.max() < size):
          bad = i.max() if i.max() >= size else i.min()
          raise IndexError(f"index {bad} is out of bounds for axis {axis} with size {size}")
        out.append((position, self._index_tensor(i)))
        axis += 1
        continue
      if isinstance(i, type(self)) and i.dtype == dtypes.bool:
        if i.ndim == 0: raise IndexError("a 0-d bool index is not supported: use unsqueeze() or where()")
        if i.shape != self.shape[axis:axis + i.ndim]:
          raise IndexError(f"a mask of shape {i.shape} can't index axes {axis}..{axis + i.ndim - 1} of a tensor of shape {self.shape}")
        out += [(position, column) for column in i.nonzero(as_tuple=True)]
        axis += i.ndim
        continue
      out.append((position, i))
      axis += i is not None and not isinstance(i, BoolAxis)
    return out

  def _index_tensor(self, i) -> Self:
    if not isinstance(i, type(self)):
      arr = host_index(i)
      # int32 when the values fit (teeny's default int; numpy would make int64), so index math stays 32-bit; an
      # empty list (float64 to numpy) is an empty integer index, as in numpy
      if not arr.size or (arr.dtype.kind in "iu" and -2**31 <= arr.min() and arr.max() < 2**31): arr = arr.astype(np.int32)
      i = type(self)(arr, device=self.device)
    if dtypes.is_float(i.dtype): raise IndexError(f"tensors used as indices must be integers, got {i.dtype}")
    if i.device != self.device: raise RuntimeError(f"index tensor on {i.device} for a tensor on {self.device}")
    return i

  def _basic_index(self, plan: IndexPlan) -> Self:
    """The ints, slices and None of an index applied: a view of self, as in numpy and PyTorch."""
    x = self.shrink(tuple(plan.crops))
    flipped = tuple(a for a, f in enumerate(plan.flips) if f and x.shape[a] > 1)
    if flipped: x = x._view(Ops.FLIP, flipped)
    if any(s != 1 for s in plan.steps): x = x._strided(plan.steps)
    if not plan.emptied: return x.reshape(tuple(plan.out_shape))
    x = x.reshape(tuple(1 if a in plan.emptied else n for a, n in enumerate(plan.out_shape)))  # (made, then emptied)
    return x.shrink(tuple((0, n) for n in plan.out_shape))

  def _take(self, axes: list[int], indices: list[Self]) -> Self:
    """self[..., i0, ..., i1, ...] with integer tensors at `axes`: shape (broadcast index shape, other axes...).
    Written as a sum of where(position == arange, x, 0) over the positions of the indexed axes (merged into one),
    which codegen compiles to one load of x at the position per selected element (a gather axis, codegen/opt.py)."""
    batch = _broadcast_shape(*(t.shape for t in indices))
    x, flat, total = self._flat_axes(axes, indices)
    rest = x.shape[1:]
    hit = flat.reshape(batch + (1,)) == _iota(total, flat.dtype, self)
    hit = hit.reshape(batch + (total,) + (1,) * len(rest))
    return _select(hit, x.reshape((1,) * len(batch) + x.shape), len(batch))

  def _put(self, axes: list[int], indices: list[Self], value: Self) -> Self:
    """self with self[..., i0, ..., i1, ...] = value (value shaped like _take's result); the last write wins.
    A one-hot over the writes and the positions: k writes into n positions cost k*n (a write at a computed
    address would need a store that no other write races)."""
    x, flat, total = self._flat_axes(axes, indices)
    rest = x.shape[1:]
    count = math.prod(flat.shape)
    hit = flat.reshape(count, 1) == _iota(total, flat.dtype, self)
    chosen, last = _last_writes(hit)
    chosen = chosen.reshape((count, total) + (1,) * len(rest))
    value = value.reshape((count, 1) + rest)
    written = chosen.where(value, 0)._sum_exact(0)
    out = (last > 0).reshape((total,) + (1,) * len(rest)).where(written, x)
    out = _with_write_gradient(out, x, value, hit.reshape((count, total) + (1,) * len(rest)), 0, ((0, 0),) * x.ndim)
    others = [a for a in range(self.ndim) if a not in axes]
    moved = out.reshape(tuple(self.shape[a] for a in axes) + rest)
    return moved.permute(tuple((list(axes) + others).index(a) for a in range(self.ndim)))

  def _flat_axes(self, axes: list[int], indices: list[Self]) -> tuple[Self, Self, int]:
    """self with `axes` moved first and merged into one, and the indices merged into positions along it (-1 for an
    index out of range, which then matches nothing). Negative indices count from the end."""
    batch = _broadcast_shape(*(t.shape for t in indices))
    sizes = [self.shape[a] for a in axes]
    total = math.prod(sizes)
    idx_dtype = dtypes.int32 if total < 2**31 else dtypes.int64
    others = [a for a in range(self.ndim) if a not in axes]
    x = self.permute(list(axes) + others).reshape((total,) + tuple(self.shape[a] for a in others))
    flat, valid, stride = None, None, 1
    for size, t in reversed(list(zip(sizes, indices))):
      t = t.cast(idx_dtype if _holds(idx_dtype, t.dtype) else dtypes.int64)  # range checks on the exact value
      t = (t < 0).where(t + size, t).expand(batch)
      ok = (t >= 0) & (t < size)
      t = t.cast(idx_dtype)  # (exact where ok)
      flat = t * stride if flat is None else flat + t * stride
      valid = ok if valid is None else valid & ok
      stride *= size
    return x, valid.where(flat, -1), total

  def _zero(self) -> Scalar:
    """A zero that keeps this tensor's dtype in where() (a bool tensor with an int 0 would become int32)."""
    return False if self.dtype == dtypes.bool else 0
  def _sum_exact(self, axis: int) -> Self:
    """Sum keeping the dtype (for selections, where at most one term is not zero)."""
    if self.dtype == dtypes.bool: return self.cast(dtypes.uint8).sum(axis, dtype=dtypes.uint8).cast(dtypes.bool)
    return self.sum(axis, dtype=self.dtype)

  def _strided(self, steps: list[int]) -> Self:
    """Every steps[a]-th element along each axis: pad to a multiple of the step, fold it out, keep index 0."""
    x = self
    padded = [math.ceil(s / st) * st for s, st in zip(x.shape, steps)]
    if padded != list(x.shape): x = x._view(Ops.PAD, tuple((0, p - s) for s, p in zip(x.shape, padded)))  # (never read)
    x = x.reshape(tuple(d for p, st in zip(padded, steps) for d in (p // st, st)))
    x = x.shrink(tuple(r for p, st in zip(padded, steps) for r in ((0, p // st), (0, 1))))
    return x.reshape(tuple(p // st for p, st in zip(padded, steps)))
  def _check_index(self, name: str, dim: int, index: Self, src_shape=None) -> int:
    if not isinstance(index, type(self)): raise TypeError(f"{name} index must be a Tensor, got {type(index).__name__}")
    if dtypes.is_float(index.dtype) or index.dtype == dtypes.bool: raise IndexDtypeError(f"{name} index must be an int tensor, got {index.dtype}")
    if index.device != self.device: raise RuntimeError(f"{name} index on {index.device} for a tensor on {self.device}")
    d = _canon_axis(dim, self.ndim)
    if index.ndim != self.ndim: raise ArgumentError(f"{name} index of shape {index.shape} needs {self.ndim} dimensions like the tensor {self.shape}")
    for i, (k, s) in enumerate(zip(index.shape, self.shape)):
      if i != d and k > s: raise ArgumentError(f"{name} index of shape {index.shape} is larger than the tensor {self.shape} in dim {i}")
    if src_shape is not None and any(k > s for k, s in zip(index.shape, src_shape)):
      raise ArgumentError(f"{name} index of shape {index.shape} is larger than the source {src_shape}")
    return d
  def _check_source(self, name: str, src: Self):
    """A tensor source of scatter and scatter_reduce has self's dtype (PyTorch refuses a cast there too)."""
    if src.dtype != self.dtype: raise ArgumentError(f"{name} source of dtype {src.dtype} into a tensor of dtype {self.dtype}: cast it first")
  def gather(self, dim: int, index: Self) -> Self:
    """out[i][j] = self[index[i][j]][j] for dim 0 (and so on), like torch.gather. An index out of range gives 0
    (checking it would need to read the index from the device). A 0-d self and index: as 1-d ones, like PyTorch."""
    if self.ndim == 0 and isinstance(index, type(self)) and index.ndim == 0: return self.reshape(1).gather(dim, index.reshape(1)).reshape(())
    d = self._check_index("gather", dim, index)
    x = self.shrink(tuple(None if i == d else (0, k) for i, k in enumerate(index.shape))).transpose(d, -1)
    n = x.shape[-1]
    position = index.cast(dtypes.int32 if _holds(dtypes.int32, index.dtype) and n < 2**31 else dtypes.int64)
    hit = position.transpose(d, -1).unsqueeze(-1) == _iota(n, position.dtype, self)
    return _select(hit, x.unsqueeze(-2), x.ndim).transpose(d, -1)
  def scatter(self, dim: int, index: Self, src, reduce: str | None = None) -> Self:
    """A copy of self with self[index[i][j]][j] = src[i][j] for dim 0 (and so on), like torch.scatter; src may be
    a scalar. reduce='add' or 'multiply' combines instead of replacing. Where an index repeats, the last write
    wins. An index out of range writes nothing. A 0-d self and index: as 1-d ones, like PyTorch."""
    if not isinstance(index, type(self)): raise TypeError(f"scatter index must be a Tensor, got {type(index).__name__}")
    if self.ndim == 0 and index.ndim == 0:
      return self.reshape(1).scatter(dim, index.reshape(1), _as_1d(src), reduce).reshape(())
    if reduce not in (None, "add", "multiply"): raise ArgumentError(f"scatter reduce must be None, 'add' or 'multiply', got {reduce!r}")
    if isinstance(src, type(self)): self._check_source("scatter", src)
    else: src = type(self).full(index.shape, src, dtype=self.dtype, device=self.device)
    d = self._check_index("scatter", dim, index, src.shape)
    src = src.shrink(tuple((0, k) for k in index.shape)).transpose(d, -1).unsqueeze(-1)
    x = self.transpose(d, -1)
    n = x.shape[-1]
    hit = index.transpose(d, -1).unsqueeze(-1) == type(self).arange(n, dtype=index.dtype, device=self.device)  # (..., k, n)
    if reduce == "add": update = hit.where(src, src._zero())._sum_exact(-2)
    elif reduce == "multiply": update = hit.where(src, 1).prod(-2).cast(self.dtype)
    else:
      chosen, last = _last_writes(hit)
      update = chosen.where(src, src._zero())._sum_exact(-2)
      written = (last > 0).squeeze(-2)
    # the index may cover only a corner of self in the other dims: pad the update out to self's shape
    grow = tuple((0, s - u) for s, u in zip(x.shape, update.shape))
    if reduce == "add": return (x + update.pad(grow)).transpose(d, -1)
    if reduce == "multiply": return (x * update.pad(grow, value=1)).transpose(d, -1)
    out = written.pad(grow).where(update.pad(grow), x)
    return _with_write_gradient(out, x, src, hit, -2, grow).transpose(d, -1)
  def scatter_reduce(self, dim: int, index: Self, src: Self, reduce: str, include_self: bool = True) -> Self:
    """A copy of self where each src[i][j] is combined into self[index[i][j]][j] (dim 0) by reduce ("sum",
    "prod", "mean", "amax" or "amin"), like torch.scatter_reduce; include_self=False leaves self's value out of
    the places that receive something. "mean" of ints rounds down, like PyTorch's. 0-d self and index: as 1-d."""
    if self.ndim == 0 and isinstance(index, type(self)) and index.ndim == 0:
      return self.reshape(1).scatter_reduce(dim, index.reshape(1), _as_1d(src), reduce, include_self).reshape(())
    if reduce not in ("sum", "prod", "mean", "amax", "amin"):
      raise ArgumentError(f"scatter_reduce reduce must be 'sum', 'prod', 'mean', 'amax' or 'amin', got {reduce!r}")
    self._check_source("scatter_reduce", src)
    d = self._check_index("scatter_reduce", dim, index, src.shape)
    if index.numel() == 0: return self._copy_result(self)  # (nothing scattered: amax's empty max raised)
    src = src.shrink(tuple((0, k) for k in index.shape)).transpose(d, -1).unsqueeze(-1)
    x = self.transpose(d, -1)
    hit = index.transpose(d, -1).unsqueeze(-1) == type(self).arange(x.shape[-1], dtype=index.dtype, device=self.device)
    count = hit.cast(dtypes.int32).sum(-2, dtype=dtypes.int32)
    if reduce in ("sum", "mean"): combined = hit.where(src, src._zero()).sum(-2, dtype=self.dtype)
    elif reduce == "prod": combined = hit.where(src, 1).prod(-2).cast(self.dtype)
    else:
      bound = (math.inf if reduce == "amin" else -math.inf) if dtypes.is_float(self.dtype) else \
        (dtypes.max(self.dtype) if reduce == "amin" else dtypes.min(self.dtype))
      combined = hit.where(src, bound).max(-2) if reduce == "amax" else hit.where(src, bound).min(-2)
    grow = tuple((0, s - u) for s, u in zip(x.shape, combined.shape))
    combined, count = combined.pad(grow), count.pad(grow)
    if include_self:
      with_self = {"sum": lambda: x + combined, "mean": lambda: x + combined, "prod": lambda: x * combined,
                   "amax": lambda: x.maximum(combined), "amin": lambda: x.minimum(combined)}[reduce]()
      count = count + 1
    else: with_self = combined
    if reduce == "mean":
      divisor = count.maximum(1).cast(self.dtype)
      with_self = with_self / divisor if dtypes.is_float(self.dtype) else with_self // divisor
    received = (count > 0) if not include_self else (count > 1)
    out = received.where(with_self.cast(self.dtype), x)
    if reduce in ("amax", "amin") and dtypes.is_float(self.dtype):  # the gradient by PyTorch's rule, below
      rule = ("scatter_extreme", include_self, grow)
      out = x._exact_gradient(out, rule, src, hit)
    return out.transpose(d, -1)
  @staticmethod
  def _scatter_extreme_gradient(arg: tuple, grad: Self, value: Self, x: Self, src: Self, hit: Self) -> tuple:
    """The gradients of scatter_reduce's amax and amin (in its layout: x (..., places), src (..., k, 1), hit
    (..., k, places) whether src value k goes to a place): a place that received values shares its gradient evenly
    among those equal to its result, self's value counted among them even without include_self (PyTorch's rule:
    then its share goes to nobody) and given its share only with include_self; where the result
    is NaN every value there gets NaN (PyTorch's 0 / 0: no value equals NaN). Max's own rule would count the
    placeholders that stand for the values a place did not receive (+-inf) among the ties when a value is
    infinite, and split between self and the values' extreme in two steps."""
    _, include_self, grow = arg
    result = value.detach()
    def corner(t): return t.shrink(tuple((0, n - after) for n, (_, after) in zip(t.shape, grow)))  # (the places hit covers)
    def equal(v, at): return (v == at) | at.isnan()
    src_wins = hit & equal(src, corner(result).unsqueeze(-2))
    received = hit.any(-2).pad(grow)
    count = src_wins.sum(-2, dtype=grad.dtype).pad(grow)
    self_wins = equal(x, result)
    count = count + self_wins.cast(grad.dtype)
    share = received.where(result.isnan().where(math.nan, grad / count.maximum(1)), 0)
    kept = self_wins.where(share, 0) if include_self else 0  # (what self's value gets where values arrived)
    grad_x = received.where(kept, grad)
    grad_src = src_wins.where(corner(share).unsqueeze(-2), 0).sum(-1, keepdim=True)
    return grad_x, grad_src, None
  @staticmethod
  def _write_gradient(arg: tuple, grad: Self, value: Self, x: Self, src: Self, hit: Self) -> tuple:
    """The gradients of a write of src into x where an index may repeat (scatter, setitem with index tensors), by
    PyTorch's rule: every value written gets the gradient of the place it was written to, the one the last write
    left there or not (torch.scatter's is grad.gather(index)); x gets none where something was written. hit says
    which value goes to which place (the values along `axis`, the places along the next axis); `grow` pads the
    places hit covers out to x's shape."""
    _, axis, grow = arg
    def corner(t): return t.shrink(tuple((0, n - after) for n, (_, after) in zip(t.shape, grow)))
    grad_src = hit.where(corner(grad).unsqueeze(axis), 0).sum(axis + 1, keepdim=True)
    return hit.any(axis).pad(grow).where(0, grad), grad_src, None
  def scatter_add(self, dim: int, index: Self, src: Self) -> Self:
    """A copy of self with src[i][j] added at self[index[i][j]][j] (dim 0), repeats adding up, like torch.scatter_add."""
    return self.scatter(dim, index, src, reduce="add")
  def one_hot(self, num_classes: int = -1) -> Self:
    """int32 one-hot vectors along a new last axis. num_classes=-1 reads max()+1 from the data (the one place an
    op reads the device: pass num_classes to stay lazy)."""
    if dtypes.is_float(self.dtype) or self.dtype == dtypes.bool: raise TypeError(f"one_hot needs an int tensor, got {self.dtype}")
    num_classes = _int_arg(num_classes, "one_hot's num_classes")  # (2.5 made 3 classes)
    if num_classes == -1: num_classes = int(self.max().item()) + 1 if self.numel() else 0
    if num_classes < 0: raise ArgumentError(f"one_hot num_classes must be >= 0 or -1, got {num_classes}")
    hit = self.unsqueeze(-1) == type(self).arange(num_classes, dtype=dtypes.int32, device=self.device)  # (int32: 300 classes of uint8)
    return hit.cast(dtypes.int32)
  def masked_fill(self, mask: Self, value) -> Self:
    """value where mask is true, self elsewhere, both broadcast (like torch.masked_fill: the in-place masked_fill_
    needs the mask to broadcast to self's shape)."""
    if not isinstance(mask, type(self)) or mask.dtype != dtypes.bool: raise TypeError("masked_fill needs a bool mask tensor")
    try: _broadcast_shape(mask.shape, self.shape)
    except ArgumentError: raise ArgumentError(f"masked_fill mask of shape {mask.shape} doesn't broadcast with {self.shape}") from None
    fill = value.cast(self.dtype) if isinstance(value, type(self)) else type(self).full((), value, dtype=self.dtype, device=self.device)
    return mask.where(fill, self)


def _select(hit: IndexingOps, values: IndexingOps, axis: int) -> IndexingOps:
  """Along axis, the value where hit is true (at most one place is), 0 where none is: a where and one plain sum,
  never split into parts (a sum with one term needs no care for rounding), so that codegen sees the gather."""
  is_bool = values.dtype == dtypes.bool
  picked = hit.where(values.cast(dtypes.uint8) if is_bool else values, 0)
  out = picked._reduce_axis(Ops.ADD, (axis,))
  out = out.reshape(out.shape[:axis] + out.shape[axis + 1:])
  return out.cast(dtypes.bool) if is_bool else out


def _as_1d(src):
  """A 0-d tensor source as a 1-element one (a number stays a number)."""
  return src.reshape(1) if isinstance(src, IndexingOps) and src.ndim == 0 else src


def _with_write_gradient(out: IndexingOps, x: IndexingOps, src: IndexingOps, hit: IndexingOps, axis: int, grow) -> IndexingOps:
  """out (x with src written in, hit saying where) with PyTorch's gradient for repeated indices (see _write_gradient)
  instead of the one its ops have, which would give a value the last write overwrote no gradient."""
  if not dtypes.is_float(out.dtype): return out
  return x._exact_gradient(out, ("write", axis, grow), src, hit)


def _holds(dtype: DType, other: DType) -> bool:
  """Whether every value of the integer dtype `other` is one of `dtype`'s."""
  return dtypes.min(dtype) <= dtypes.min(other) and dtypes.max(other) <= dtypes.max(dtype)


def _last_writes(hit: IndexingOps) -> tuple[IndexingOps, IndexingOps]:
  """hit (..., writes, slots) says which write goes to which slot. Returns which write wins each slot (the last one,
  like numpy), same shape, and 1 + the index of that write per slot (0 where nothing writes), keeping the axis."""
  count = hit.shape[-2]
  order = type(hit).arange(1, count + 1, dtype=dtypes.int32, device=hit.device).reshape(count, 1)
  if count == 0: return hit, type(hit).zeros(hit.shape[:-2] + (1, hit.shape[-1]), dtype=dtypes.int32, device=hit.device)  # (no writes)
  last = hit.where(order, 0).max(-2, keepdim=True)
  return order == last, last


tensor_rules["write"] = lambda arg, grad, value, x, src, hit: type(grad)._write_gradient(arg, grad, value, x, src, hit)
tensor_rules["scatter_extreme"] = lambda arg, grad, value, x, src, hit: type(grad)._scatter_extreme_gradient(arg, grad, value, x, src, hit)
