"""What an index means, for Tensor.__getitem__/__setitem__ (teeny/ops/indexing.py): the plan of crops, flips,
steps, new axes and tensor selections an index tuple stands for, and the host-side reading of its items (lists
and arrays, and a single bool)."""
from __future__ import annotations
import numpy as np
from teeny.dtype import dtypes
from teeny.ops.args import _broadcast_shape


def host_index(i) -> np.ndarray:
  """A list, tuple or array used as an index, as a numpy array of ints or bools."""
  arr = np.asarray(i)
  if arr.dtype.kind not in "iub" and arr.size: raise IndexError(f"index {i!r} is not an integer array or list")
  return arr


def is_bool_array(i) -> bool: return isinstance(i, np.ndarray) and i.dtype == np.bool_


class BoolAxis:
  """A bool index that is one value (True, np.True_, a 0-d bool array or tensor, whose value is read): a new axis,
  as in numpy and PyTorch, of size 1 for True (as None) and 0 for False (every element deselected)."""
  def __init__(self, size: int): self.size = size
  @staticmethod
  def of(i) -> BoolAxis | None:
    """The new axis i stands for, or None where i is another kind of index."""
    if isinstance(i, (bool, np.bool_)): return BoolAxis(int(i))
    if isinstance(i, np.ndarray): is_bool = i.ndim == 0 and i.dtype == np.bool_
    else: is_bool = getattr(i, "dtype", None) is dtypes.bool and i.ndim == 0  # (a 0-d bool Tensor)
    return BoolAxis(int(i.item())) if is_bool else None


class IndexPlan:
  """What an index means for Tensor.__getitem__/__setitem__: per axis of the tensor a crop, a flip and a step (in
  that order), the shape after those views, and the integer tensors that then select along some of its axes."""
  def __init__(self):
    self.crops, self.flips, self.steps = [], [], []
    self.out_shape: list[int] = []   # after ints, slices and None (tensor-indexed axes still whole)
    self.emptied: list[int] = []     # axes of out_shape a False index made (size 0)
    self.tensor_axes: list[int] = []  # axes of out_shape that integer tensors select along
    self.tensors: list = []
    self.batch_at = 0                 # where the index tensors' broadcast shape goes in the result
    self.result_order: tuple[int, ...] = ()  # _take's result (batch axes, other axes) permuted into the result's
  def add_axis(self, lo: int, hi: int, flip: bool, step: int, out: int | None):
    """One axis of the tensor: crop [lo, hi), flip it or not, take every step-th element; out is its size in the
    result (None: an int removes it)."""
    self.crops.append((lo, hi))
    self.flips.append(flip)
    self.steps.append(step)
    if out is not None: self.out_shape.append(out)
  def add_int(self, i: int, size: int, axis: int):
    if not -size <= i < size: raise IndexError(f"index {i} is out of bounds for axis {axis} with size {size}")
    self.add_axis(i % size, i % size + 1, False, 1, None)
  def add_slice(self, s: slice, size: int):
    start, stop, step = s.indices(size)
    length = len(range(start, stop, step))
    if step > 0: self.add_axis(start, max(start, stop), False, step, length)
    else: self.add_axis(stop + 1, max(stop + 1, start + 1), True, -step, length)  # walk the flipped axis
  def add_tensor(self, t, size: int):
    self.tensor_axes.append(len(self.out_shape)); self.tensors.append(t)
    self.add_axis(0, size, False, 1, size)
  def place_batch(self, adjacent: bool):
    """The index tensors' broadcast shape replaces their axes: where the first one was if they sit side by side
    (ints between them don't count), else first."""
    batch = len(_broadcast_shape(*(t.shape for t in self.tensors)))
    rest = len(self.out_shape) - len(self.tensors)
    at = self.batch_at if adjacent else 0
    self.result_order = tuple(range(batch, batch + at)) + tuple(range(batch)) + tuple(range(batch + at, batch + rest))
  @property
  def result_shape(self) -> tuple[int, ...]:
    """The shape x[index] has."""
    if not self.tensors: return tuple(self.out_shape)
    batch = _broadcast_shape(*(t.shape for t in self.tensors))
    others = [s for a, s in enumerate(self.out_shape) if a not in self.tensor_axes]
    taken = batch + tuple(others)
    return tuple(taken[i] for i in self.result_order)
