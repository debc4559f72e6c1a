"""Views: how a kernel's loop indices map to a buffer element, as strides + offset + a validity mask (for PAD).

A ShapeTracker is a stack of Views; the last one has the logical shape. Movement ops (RESHAPE, PERMUTE,
EXPAND, PAD, SHRINK, FLIP) cost nothing: they only change the view. A reshape that one View can't express
pushes a new View on the stack. `to_index` turns the stack into an index UOp and a validity UOp, which the
symbolic rules (symbolic.py) then simplify. Views are built and moved only here; codegen also reads their
fields (strides, mask) to choose optimizations (codegen/kernel.py).
"""
from __future__ import annotations
from dataclasses import dataclass
from functools import cached_property
import math
from teeny.dtype import DType, dtypes
from teeny.uop import UOp


def strides_for(shape: tuple[int, ...]) -> tuple[int, ...]:
  """Row-major strides, with 0 for size-1 axes (they never move)."""
  strides, acc = [], 1
  for s in reversed(shape):
    strides.append(acc if s != 1 else 0)
    acc *= s
  return tuple(reversed(strides))


@dataclass(frozen=True)
class View:
  shape: tuple[int, ...]
  strides: tuple[int, ...]
  offset: int = 0
  mask: tuple[tuple[int, int], ...] | None = None  # per axis: valid indices are lo <= i < hi

  @staticmethod
  def create(shape, strides=None, offset=0, mask=None) -> View:
    shape = tuple(shape)
    strides = strides_for(shape) if strides is None else tuple(0 if s == 1 else st for s, st in zip(shape, strides))
    if mask is not None:
      if any(lo >= hi for lo, hi in mask): return View.invalid(shape)
      if all(lo == 0 and hi == s for (lo, hi), s in zip(mask, shape)): mask = None
    return View(shape, strides, offset, None if mask is None else tuple(mask))

  @staticmethod
  def invalid(shape) -> View:
    """The view where no index is valid (it reads as 0 everywhere): the canonical empty mask, nothing to index.
    A 0-d shape has no axis to hold an empty range, so it keeps one (0, 0) range to say so."""
    shape = tuple(shape)
    return View(shape, (0,) * len(shape), 0, tuple((0, 0) for _ in shape) or ((0, 0),))

  @property
  def nothing_valid(self) -> bool: return self.mask is not None and any(lo >= hi for lo, hi in self.mask)

  @cached_property
  def contiguous(self) -> bool:
    return self.offset == 0 and self.mask is None and self.strides == strides_for(self.shape)

  def _mask_or_full(self): return self.mask if self.mask is not None else tuple((0, s) for s in self.shape)

  # every movement of a view where nothing is valid is again such a view (keeps the 0-d case from losing it)
  def permute(self, order) -> View:
    if self.nothing_valid: return View.invalid(tuple(self.shape[i] for i in order))
    return View.create(tuple(self.shape[i] for i in order), tuple(self.strides[i] for i in order), self.offset,
                       tuple(self.mask[i] for i in order) if self.mask is not None else None)

  def expand(self, new_shape) -> View:
    if self.nothing_valid: return View.invalid(new_shape)
    mask = None
    if self.mask is not None:
      mask = tuple(m if s == ns else ((0, ns) if m != (0, 0) else (0, 0)) for m, s, ns in zip(self.mask, self.shape, new_shape))
    return View.create(new_shape, tuple(st if s == ns else 0 for st, s, ns in zip(self.strides, self.shape, new_shape)), self.offset, mask)

  def shrink(self, arg) -> View:
    """Keep [b, e) of each axis; b may be negative and e past the end (that is how PAD is made)."""
    if self.nothing_valid: return View.invalid(tuple(e - b for b, e in arg))
    offset = self.offset + sum(b * st for (b, _), st in zip(arg, self.strides))
    mask = tuple((max(lo - b, 0), min(hi - b, e - b)) for (lo, hi), (b, e) in zip(self._mask_or_full(), arg))
    return View.create(tuple(e - b for b, e in arg), self.strides, offset, mask)

  def pad(self, arg) -> View: return self.shrink(tuple((-b, s + a) for s, (b, a) in zip(self.shape, arg)))

  def flip(self, axes) -> View:
    if self.nothing_valid: return self
    offset = self.offset + sum((s - 1) * st for i, (s, st) in enumerate(zip(self.shape, self.strides)) if i in axes)
    strides = tuple(-st if i in axes else st for i, st in enumerate(self.strides))
    mask = None if self.mask is None else tuple((s - hi, s - lo) if i in axes else (lo, hi)
                                                for i, ((lo, hi), s) in enumerate(zip(self.mask, self.shape)))
    return View.create(self.shape, strides, offset, mask)

  def reshape(self, new_shape) -> View | None:
    """The same elements under a new shape as ONE view, or None when that needs a second view."""
    new_shape = tuple(new_shape)
    if new_shape == self.shape: return self
    if math.prod(new_shape) != math.prod(self.shape): raise ValueError(f"view of shape {self.shape} can't become {new_shape}")
    if self.contiguous or 0 in self.shape or 0 in new_shape: return View.create(new_shape)
    if self.nothing_valid: return View.invalid(new_shape)
    # drop size-1 axes (their only index is 0 and their mask, if any, is full), then match groups of axes
    old = [(s, st, m) for s, st, m in zip(self.shape, self.strides, self._mask_or_full()) if s != 1]
    strides, mask, i = [], [], 0
    for ns in new_shape:
      if ns == 1: strides.append(0); mask.append((0, 1)); continue
      if i < len(old) and old[i][0] == ns:  # one old axis becomes one new axis
        strides.append(old[i][1]); mask.append(old[i][2]); i += 1; continue
      return self._reshape_groups(new_shape, old)
    return View.create(new_shape, strides, self.offset, mask)

  def _reshape_groups(self, new_shape, old) -> View | None:
    """General case: merge runs of old axes that are laid out contiguously, then split them into new axes."""
    merged = []  # (size, stride) of maximal mergeable runs, each with full masks
    for s, st, (lo, hi) in old:
      if (lo, hi) != (0, s): return None
      if merged and merged[-1][1] == st * s: merged[-1] = (merged[-1][0] * s, st)
      else: merged.append((s, st))
    strides, j, remaining = [], 0, None
    for ns in new_shape:
      if ns == 1: strides.append(0); continue
      if remaining is None:
        if j >= len(merged): return None
        remaining, stride = merged[j]
      if remaining % ns: return None
      remaining //= ns
      strides.append(stride * remaining)
      if remaining == 1: remaining = None; j += 1
    return View.create(new_shape, strides, self.offset) if remaining is None and j == len(merged) else None

  def element_at(self, idxs) -> int | None:
    """index() for plain ints: the element at these indices, or None where the view reads nothing."""
    if self.mask is not None and any(not lo <= i < hi for i, (lo, hi) in zip(idxs, self.mask)): return None
    return self.offset + sum(i * st for i, st in zip(idxs, self.strides))

  def index(self, idxs: list[UOp], dtype: DType) -> tuple[UOp, UOp | None]:
    """(element offset, validity or None) for indices along this view's shape."""
    if self.nothing_valid: return UOp.const(dtype, 0), UOp.const(dtypes.bool, False)
    idx = UOp.const(dtype, self.offset)
    for i, st in zip(idxs, self.strides):
      if st: idx = idx + i * UOp.const(dtype, st)
    valid = None
    if self.mask is not None:
      for i, (lo, hi), s in zip(idxs, self.mask, self.shape):
        conds = ([] if lo == 0 else [i.lt(lo).ne(True)]) + ([] if hi == s else [i.lt(hi)])
        for c in conds: valid = c if valid is None else valid.logical_and(c)
    return idx, valid


@dataclass(frozen=True)
class ShapeTracker:
  views: tuple[View, ...]

  @staticmethod
  def from_shape(shape) -> ShapeTracker: return ShapeTracker((View.create(tuple(shape)),))

  @property
  def shape(self) -> tuple[int, ...]: return self.views[-1].shape
  @property
  def contiguous(self) -> bool: return len(self.views) == 1 and self.views[0].contiguous
  @property
  def size(self) -> int: return math.prod(self.shape)

  def _last(self, view: View) -> ShapeTracker: return ShapeTracker(self.views[:-1] + (view,))
  def permute(self, order) -> ShapeTracker: return self._last(self.views[-1].permute(order))
  def expand(self, shape) -> ShapeTracker: return self._last(self.views[-1].expand(shape))
  def pad(self, arg) -> ShapeTracker: return self._last(self.views[-1].pad(arg))
  def shrink(self, arg) -> ShapeTracker: return self._last(self.views[-1].shrink(arg))
  def flip(self, axes) -> ShapeTracker: return self._last(self.views[-1].flip(axes))

  def reshape(self, shape) -> ShapeTracker:
    one = self.views[-1].reshape(tuple(shape))
    if one is None: return ShapeTracker(self.views + (View.create(tuple(shape)),))
    if len(self.views) > 1 and one.contiguous and one.shape == self.views[-2].shape:
      return ShapeTracker(self.views[:-1])  # reshaped back to the shape below: the top view maps each index to itself
    return self._last(one)

  def apply(self, op_name: str, arg) -> ShapeTracker:
    """Apply a movement op by name (RESHAPE, PERMUTE, ...), as the scheduler pushes them onto loads."""
    return getattr(self, op_name.lower())(arg)

  def to_index(self, idxs: list[UOp], dtype: DType = dtypes.int32) -> tuple[UOp, UOp | None]:
    """Buffer index and validity for the logical indices `idxs`, walking the stack from the last view down."""
    idx, valid = self.views[-1].index(idxs, dtype)
    for view in reversed(self.views[:-1]):
      # the previous view sees our flat offset as a row-major position in its own shape
      flat, inner = idx, []
      for s in reversed(view.shape):
        inner.append(flat % s if s != 1 else UOp.const(dtype, 0))
        flat = flat // s
      idx, v = view.index(list(reversed(inner)), dtype)
      if v is not None: valid = v if valid is None else valid.logical_and(v)
    return idx, valid

  def element_at(self, idxs) -> int | None:
    """The buffer element read at these logical indices (plain ints), or None where the views pad: to_index
    evaluated, for heuristics that look at which memory a loop touches."""
    idx = self.views[-1].element_at(idxs)
    for view in reversed(self.views[:-1]):
      if idx is None: return None
      inner = []
      for s in reversed(view.shape):
        inner.append(idx % s)
        idx //= s
      idx = view.element_at(list(reversed(inner)))
    return idx
