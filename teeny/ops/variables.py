"""Index items that hold Variables (teeny/variable.py): x[pos], x[pos:pos + k], x.shrink(((pos, pos + k), None)),
and writes through them (x[pos:pos + k] = v, x[pos:pos + k].assign(v)).

Such an item is a set of positions known only when the kernel runs, so it can't be a view: a read is a gather at
the positions (one load per element read; codegen sees the gather), and a write replaces the whole indexed axis
with a where that takes the new values at the positions and the old ones elsewhere. A slice whose length
depends on the Variables' values makes them sizes: it is a plain slice at their bound values (variable.as_size:
every shape is concrete). An index or slice that its Variables' bound values put out of range raises IndexError
when the graph is built; under TinyJit, whose replays bind other values without building the graph, each replay
checks its values the same way first (variable.keep_in_range). The Variables' declared ranges don't matter here.
"""
from __future__ import annotations
from dataclasses import dataclass
from typing import Any
import numpy as np
from teeny.dtype import dtypes
from teeny.ops.args import ArgumentError
from teeny.ops.constants import _iota
from teeny.variable import is_symbolic, checked, value, fixed_difference, as_size, keep_in_range


@dataclass(frozen=True)
class Pick:
  """One index item holding Variables: the axis of x it indexes, where that axis is in x[plain index], the first
  position, how many positions, their step, and whether it is an index (x[pos]: its axis goes away)."""
  axis: int
  out_axis: int
  start: Any
  length: int
  step: int
  drops: bool


def _holds_variable(item) -> bool:
  if isinstance(item, slice): return any(is_symbolic(p) for p in (item.start, item.stop, item.step))
  return is_symbolic(item)


def split_index(x, index) -> tuple[list, list[Pick]] | None:
  """None when no item of the index holds a Variable; else the index with each such item made a whole slice, and
  the Picks they stand for, or, for a slice whose length is a size, a plain slice at the Variables' values (so with
  no Picks left, the index is a plain one)."""
  items = index if isinstance(index, tuple) else (index,)
  if not any(_holds_variable(i) for i in items): return None
  n_real = sum(1 for i in items if i is not None and i is not Ellipsis)
  plain, picks, axis, out_axis = [], [], 0, 0
  for item in items:
    if item is Ellipsis:
      axis, out_axis = axis + x.ndim - n_real, out_axis + x.ndim - n_real
    elif item is None: out_axis += 1
    elif axis >= x.ndim: raise IndexError(f"too many indices ({n_real}) for a tensor of shape {x.shape}")
    elif _holds_variable(item):
      pick = _pick(item, axis, out_axis, x.shape[axis])
      if pick is None: item = slice(as_size(item.start), as_size(item.stop), item.step)  # (its length is a size)
      else:
        picks.append(pick)
        item = slice(None)
    if item is not None and item is not Ellipsis:
      drops = isinstance(item, (int, np.integer)) and not isinstance(item, bool)
      axis, out_axis = axis + 1, out_axis + (0 if drops else 1)
    plain.append(item)
  return plain, picks


def _pick(item, axis: int, out_axis: int, size: int) -> Pick | None:
  """The Pick of an index item holding Variables; None for a slice whose length depends on them (a size)."""
  if not isinstance(item, slice):  # x[pos]
    _check_range(item, checked(item), size, axis, "the index")
    return Pick(axis, out_axis, item, 1, 1, True)
  if item.step is not None and (is_symbolic(item.step) or item.step <= 0):
    raise ArgumentError(f"a slice with Variables takes a positive int step, got {item.step!r}")
  step = 1 if item.step is None else item.step
  start = 0 if item.start is None else item.start
  stop = size if item.stop is None else item.stop
  span = fixed_difference(stop, start)
  if span is None: return None
  shown = f"[{value(start)}:{value(stop)}:{step}] (at its Variables' values)"
  length = max(0, -(-span // step))
  if length: _check_range(start if is_symbolic(start) else stop, start, size, axis, f"the slice {shown}", (length - 1) * step)
  return Pick(axis, out_axis, start, length, step, False)


def _check_range(expr, first, size: int, axis: int, what: str, extent: int = 0):
  """The positions first .. first + extent stay inside the axis, at the bound values and, under TinyJit, at every
  replay's (variable.keep_in_range): out of range a read would give 0 and a write would write nothing, silently.
  (`expr` holds the Variables when `first` is a plain int: then only the slice's stop has them.)"""
  if is_symbolic(first): return keep_in_range(first, 0, size - 1 - extent, f"{what} of axis {axis} (size {size})")
  if first < 0 or first + extent >= size:
    raise IndexError(f"{what} of axis {axis} (size {size}) reaches positions {first}..{first + extent}: it doesn't wrap or clamp")


def _positions(x, pick: Pick):
  """The positions a pick reads, as an int32 tensor of shape (length,)."""
  return _iota(pick.length, dtypes.int32, x) * pick.step + pick.start


def _along(t, axis: int, ndim: int):
  """A 1-d tensor seen along `axis` of an ndim-d shape (size 1 elsewhere)."""
  return t.reshape(tuple(-1 if i == axis else 1 for i in range(ndim)))


def read(x, index, plain: list, picks: list[Pick]):
  """x[index]: a gather along each picked axis (`picked`), then the rest of the index, a view of it. `picked`
  remembers which region of x it holds, so that a write into it or any view of it (assign, setitem, +=) also
  writes x there (WritesOps.assign), as it would through a view."""
  picked, region = x, [slice(None)] * x.ndim
  for p in picks:
    shape = picked.shape[:p.axis] + (p.length,) + picked.shape[p.axis + 1:]
    picked = picked.gather(p.axis, _along(_positions(x, p), p.axis, x.ndim).expand(shape))
    region[p.axis] = slice(p.start, p.start + (p.length - 1) * p.step + 1, p.step)  # (an index keeps its axis here)
  picked = picked._own()  # (a base of its own: the gather ends in a transpose, a view of its internals)
  picked._write_target = (x, tuple(region))
  for p in picks:
    if p.drops: plain[_item_position(plain, p, x.ndim)] = 0
  return picked[tuple(plain)]


def _item_position(plain: list, pick: Pick, ndim: int) -> int:
  """Which item of the plain index indexes pick's axis (an Ellipsis stands for the axes no other item indexes)."""
  n_real = sum(1 for i in plain if i is not None and i is not Ellipsis)
  axis = 0
  for i, item in enumerate(plain):
    if item is Ellipsis: axis += ndim - n_real
    if item is Ellipsis or item is None: continue
    if axis == pick.axis: return i
    axis += 1
  raise AssertionError("a pick's axis has an item")  # (split_index put one there)


def write(x, plain: list, picks: list[Pick], val):
  """x[index] = val through picks: the whole plain view of x is rewritten, new values at the picked positions."""
  if any(isinstance(i, (list, tuple, np.ndarray, type(x))) for i in plain):
    raise TypeError("an index can't mix Variables with tensor or list indices when it is written to")
  sub = x[tuple(plain)]
  target = list(sub.shape)
  for p in picks: target[p.out_axis] = p.length
  region = tuple(s for i, s in enumerate(target) if not any(p.drops and p.out_axis == i for p in picks))
  if len(val.shape) > len(region) or any(v not in (1, r) for v, r in zip(val.shape[::-1], region[::-1])):
    raise ArgumentError(f"can't assign a tensor of shape {val.shape} to an indexed region of shape {region}")
  placed = val.cast(x.dtype).expand(region)
  for p in sorted(picks, key=lambda p: p.out_axis):
    if p.drops: placed = placed.unsqueeze(p.out_axis)
  inside = None
  for p in picks:
    if p.length == 0: return  # (nothing is written)
    offset = _iota(sub.shape[p.out_axis], dtypes.int32, x) - p.start
    ok = (offset >= 0) & (offset < p.length * p.step)
    if p.step > 1: ok = ok & (offset % p.step == 0)
    source = (offset // p.step).clip(0, p.length - 1)
    shape = placed.shape[:p.out_axis] + (sub.shape[p.out_axis],) + placed.shape[p.out_axis + 1:]
    placed = placed.gather(p.out_axis, _along(source, p.out_axis, len(shape)).expand(shape))
    ok = _along(ok, p.out_axis, len(shape))
    inside = ok if inside is None else inside & ok
  sub.assign(inside.where(placed, sub))
