"""PyTorch's methods that move, split and pick elements, as a Tensor mixin: t, swapaxes/swapdims,
moveaxis/movedim, narrow, unbind, tensor_split, hsplit, vsplit, dsplit, fliplr, flipud, rot90, tile, diff, and the
index ops index_select, index_add, index_fill, index_copy, take and take_along_dim. Views where PyTorch's are views,
the rest composed from views, where, gather and scatter (so gradients flow as PyTorch's do). Index tensors are
never read: an index out of range selects 0 or writes nothing (PyTorch raises), and a negative one counts from
the end."""
from __future__ import annotations
from typing import TYPE_CHECKING, Sequence
from teeny.dtype import dtypes
from teeny.ops.args import ArgumentError, IndexDtypeError, _canon_axis, _canon_axes, _shape_arg, _int_arg, _size_arg
from teeny.ops.pytorch import check_tensor
from teeny.ops.pytorch_math import check_scalars_fit
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self


class PyTorchShapeOps:
  """Tensor's PyTorch methods that move, split and pick elements."""
  def t(self) -> Self:
    """A matrix transposed (a 0-d or 1-d tensor as it is), like torch's .t(): more dimensions raise."""
    if self.ndim > 2: raise ArgumentError(f"t() expects a tensor with <= 2 dimensions, got shape {self.shape}: use .mT or transpose")
    return self.transpose(0, -1) if self.ndim == 2 else self
  def swapaxes(self, axis0: int, axis1: int) -> Self:
    """A view with the two axes swapped: transpose, by numpy's and torch's other name."""
    return self.transpose(axis0, axis1)
  def swapdims(self, dim0: int, dim1: int) -> Self:
    """A view with the two dims swapped: transpose, by torch's other name."""
    return self.transpose(dim0, dim1)
  def movedim(self, source, destination) -> Self:
    """A view with the dims `source` (an int or a sequence) moved to `destination`, the others keeping their order,
    like torch.movedim."""
    src = _canon_axes(source, self.ndim, "movedim's source")
    dst = _canon_axes(destination, self.ndim, "movedim's destination")
    if len(src) != len(dst): raise ArgumentError(f"movedim: source {source} and destination {destination} name different numbers of dims")
    order: list[int | None] = [None] * self.ndim  # order[i]: the dim that ends up at i
    for from_dim, to_dim in zip(src, dst): order[to_dim] = from_dim
    unmoved = iter(i for i in range(self.ndim) if i not in src)  # (in their order, into the places left)
    return self.permute([next(unmoved) if moved is None else moved for moved in order])
  moveaxis = movedim
  def narrow(self, dim: int, start: int, length: int) -> Self:
    """A view of `length` elements along dim from start (negative counts from the end), like torch.narrow; a 0-d
    int tensor start is read, as there."""
    d = _canon_axis(dim, self.ndim)
    n, start, length = self.shape[d], _int_arg(start, "narrow's start"), _size_arg(length, "narrow's length")
    if not -n <= start <= n: raise IndexError(f"narrow start {start} is out of range for dim {dim} of size {n}")
    start = start + n if start < 0 else start
    if length < 0 or start + length > n: raise ArgumentError(f"narrow of {length} elements from {start} doesn't fit dim {dim} of size {n}")
    return self.shrink(tuple((start, start + length) if i == d else None for i in range(self.ndim)))
  def unbind(self, dim: int = 0) -> tuple[Self, ...]:
    """The slices along dim, that dim removed, like torch.unbind (views)."""
    if self.ndim == 0: raise IndexError("unbind of a 0-d tensor: it has no dim to take apart")
    d = _canon_axis(dim, self.ndim)
    return tuple(piece.squeeze(d) for piece in self.split(1, d)) if self.shape[d] else ()
  def tensor_split(self, indices_or_sections, dim: int = 0) -> tuple[Self, ...]:
    """Pieces along dim, like torch.tensor_split: an int n gives n pieces as equal as can be (the first size % n
    one longer); a sequence of indices cuts before each (as Python slices: negative counts from the end, too large
    gives empty pieces)."""
    if self.ndim == 0: raise ArgumentError("tensor_split of a 0-d tensor: it has no dim to split")
    d = _canon_axis(dim, self.ndim)
    n = self.shape[d]
    if isinstance(indices_or_sections, type(self)):  # (torch reads it: the pieces' sizes are its values)
      given = indices_or_sections
      if given.ndim > 1 or given.dtype == dtypes.bool or not dtypes.is_int(given.dtype):
        raise ArgumentError(f"tensor_split takes a 0-d or 1-d int tensor of sections or indices, got {given.dtype} of shape {given.shape}")
      indices_or_sections = given.item() if given.ndim == 0 else given.tolist()
    if not isinstance(indices_or_sections, (tuple, list)):
      sections = _int_arg(indices_or_sections, "tensor_split's sections")
      if sections <= 0: raise ArgumentError(f"tensor_split needs a number of sections > 0, got {sections}")
      sizes = [n // sections + (1 if i < n % sections else 0) for i in range(sections)]
      return self.split(sizes, d)
    cuts = [None, *(_int_arg(i, "tensor_split's indices") for i in indices_or_sections), None]
    return tuple(self[(slice(None),) * d + (slice(start, end),)] for start, end in zip(cuts, cuts[1:]))
  def _split_along(self, name: str, sections, d: int, least_ndim: int) -> tuple[Self, ...]:
    """hsplit, vsplit and dsplit: tensor_split along d, an int needing to divide the dim's size evenly."""
    if self.ndim < least_ndim: raise ArgumentError(f"{name} needs a tensor of {least_ndim} or more dimensions, got shape {self.shape}")
    if isinstance(sections, int) and (sections <= 0 or self.shape[d] % sections):
      raise ArgumentError(f"{name} splits dim {d} of size {self.shape[d]} into {sections} equal parts: it doesn't divide")
    return self.tensor_split(sections, d)
  def hsplit(self, sections) -> tuple[Self, ...]:
    """Split along dim 1 (dim 0 of a 1-d tensor) into equal parts or at indices, like torch.hsplit."""
    return self._split_along("hsplit", sections, 0 if self.ndim == 1 else 1, 1)
  def vsplit(self, sections) -> tuple[Self, ...]:
    """Split along dim 0 into equal parts or at indices, like torch.vsplit (2 or more dims)."""
    return self._split_along("vsplit", sections, 0, 2)
  def dsplit(self, sections) -> tuple[Self, ...]:
    """Split along dim 2 into equal parts or at indices, like torch.dsplit (3 or more dims)."""
    return self._split_along("dsplit", sections, 2, 3)
  def fliplr(self) -> Self:
    """Reversed along dim 1, like torch.fliplr (2 or more dims)."""
    if self.ndim < 2: raise ArgumentError(f"fliplr needs a tensor with at least 2 dimensions, got shape {self.shape}")
    return self.flip(1)
  def flipud(self) -> Self:
    """Reversed along dim 0, like torch.flipud (1 or more dims)."""
    if self.ndim < 1: raise ArgumentError("flipud needs a tensor with at least 1 dimension, got a 0-d one")
    return self.flip(0)
  def rot90(self, k: int = 1, dims: Sequence[int] = (0, 1)) -> Self:
    """Rotated by 90 degrees k times (negative: the other way) in the plane of dims, from the first towards the
    second, like torch.rot90."""
    if len(dims) != 2: raise ArgumentError(f"rot90 takes 2 dims, got {dims}")
    if self.ndim < 2: raise ArgumentError(f"rot90 needs a tensor with at least 2 dimensions, got shape {self.shape}")
    d0, d1 = _canon_axis(dims[0], self.ndim), _canon_axis(dims[1], self.ndim)
    if d0 == d1: raise ArgumentError(f"rot90 needs two different dims, got {dims}")
    k = _int_arg(k, "rot90's k") % 4  # (1.5 was taken as 1.5 % 4: no rotation)
    if k == 1: return self.flip(d1).transpose(d0, d1)
    if k == 2: return self.flip((d0, d1))
    if k == 3: return self.flip(d0).transpose(d0, d1)
    return self.clone()  # (a copy, as torch's)
  def tile(self, *dims) -> Self:
    """Copies of self along each dim (fewer dims than self's count as 1 for the first), like torch.tile."""
    dims = _shape_arg(dims)
    return self.repeat((1,) * (self.ndim - len(dims)) + dims)
  def diff(self, n: int = 1, dim: int = -1, prepend=None, append=None) -> Self:
    """The n-th forward difference along dim, like torch.diff: out[i] = x[i + 1] - x[i] (bool: !=), after joining
    the tensors prepend and append (of self's dims) on either side."""
    if self.ndim == 0: raise ArgumentError("diff needs a tensor with at least 1 dimension, got a 0-d one")
    n = _int_arg(n, "diff's n")
    if n < 0: raise ArgumentError(f"diff order n must be >= 0, got {n}")
    d = _canon_axis(dim, self.ndim)
    pieces = [p for p in (prepend, self, append) if p is not None]
    for p in pieces: check_tensor(p, "diff's prepend and append")
    if any(p.ndim != self.ndim for p in pieces): raise ArgumentError(f"diff prepend and append need the {self.ndim} dims of the tensor")
    x = pieces[0].cat(*pieces[1:], dim=d) if len(pieces) > 1 else self
    for _ in range(n):
      size = x.shape[d]
      if size == 0: break
      after = x.shrink(tuple((1, size) if i == d else None for i in range(x.ndim)))
      before = x.shrink(tuple((0, size - 1) if i == d else None for i in range(x.ndim)))
      x = after != before if x.dtype == dtypes.bool else after - before
    return self._copy_result(x)  # (n = 0: a copy, as PyTorch's, not self)

  # index ops: one index vector along one dim
  def _index_vector(self, name: str, index, d: int, wrap: bool = True) -> Self:
    """index (an int tensor of at most one dim) as a 1-d int tensor with negative entries counted from the end of
    dim d's size (wrap=False: as they are, for x[index], which counts them itself; counted twice, -13 of 12
    elements read the last one instead of nothing)."""
    check_tensor(index, f"{name}'s index")
    if dtypes.is_float(index.dtype) or index.dtype == dtypes.bool: raise IndexDtypeError(f"{name} index must be an int tensor, got {index.dtype}")
    if index.ndim > 1: raise ArgumentError(f"{name} index must be a vector (0 or 1 dims), got shape {index.shape}")
    flat = index.reshape(-1)
    return (flat < 0).where(flat + (self.shape[d] if self.ndim else 1), flat) if wrap else flat
  def _index_source(self, name: str, index: Self, source, d: int) -> Self:
    """index_add's and index_copy's index spread to source's shape (index[i] along dim d), after checking that source
    is self's shape with dim d the index's length, in self's dtype (as PyTorch asks)."""
    check_tensor(source, f"{name}'s source")
    want = tuple(index.shape[0] if i == d else s for i, s in enumerate(self.shape))
    if source.shape != want: raise ArgumentError(f"{name} source of shape {source.shape} must be {want}: self's, dim {d} the index's length")
    if source.dtype != self.dtype: raise ArgumentError(f"{name} source of dtype {source.dtype} into a {self.dtype} tensor: cast it first")
    return index.reshape(tuple(-1 if i == d else 1 for i in range(self.ndim))).expand(want)
  def index_select(self, dim: int, index) -> Self:
    """The entries of dim at the positions index lists (an int vector; repeats allowed), like torch.index_select;
    gradients add up over repeats."""
    d = _canon_axis(dim, self.ndim)
    positions = self._index_vector("index_select", index, d, wrap=False)
    if self.ndim == 0: return self.reshape(1)[positions].reshape(())
    return self[(slice(None),) * d + (positions,)]
  def index_add(self, dim: int, index, source, *, alpha=1) -> Self:
    """A copy of self with alpha * source[i] added at position index[i] along dim (repeats add up), like
    torch.index_add."""
    d = _canon_axis(dim, self.ndim)
    positions = self._index_vector("index_add", index, d)
    check_scalars_fit(self.dtype, alpha=alpha)
    spread = self._index_source("index_add", positions, source, d)
    return self.scatter_add(d, spread, source if alpha == 1 else (source * alpha).cast(self.dtype))
  def index_copy(self, dim: int, index, source) -> Self:
    """A copy of self with source[i] written at position index[i] along dim, like torch.index_copy (of repeated
    indices the last write wins; PyTorch leaves which one unspecified)."""
    d = _canon_axis(dim, self.ndim)
    positions = self._index_vector("index_copy", index, d)
    return self.scatter(d, self._index_source("index_copy", positions, source, d), source)
  def index_fill(self, dim: int, index, value) -> Self:
    """A copy of self with the positions index lists along dim set to value (a number or a 0-d tensor, which gets
    their gradient), like torch.index_fill."""
    d = _canon_axis(dim, self.ndim)
    positions = self._index_vector("index_fill", index, d)
    if isinstance(value, PyTorchShapeOps) and value.ndim: raise ArgumentError(f"index_fill takes a number or a 0-d tensor value, got shape {value.shape}")
    size = self.shape[d] if self.ndim else 1
    hit = (positions.unsqueeze(-1) == type(self).arange(size, dtype=positions.dtype, device=self.device)).any(0)
    return self.masked_fill(hit.reshape(tuple(-1 if i == d else 1 for i in range(self.ndim))), value)
  def take(self, index) -> Self:
    """The elements at flat positions index (row-major; negative counts from the end) in index's shape, like
    torch.take."""
    check_tensor(index, "take's index")
    flat = self.flatten()
    positions = flat._index_vector("take", index.reshape(-1), 0, wrap=False)
    return flat[positions].reshape(index.shape)
  def take_along_dim(self, indices, dim: int | None = None) -> Self:
    """self's elements at `indices` along dim, like torch.take_along_dim (and numpy's take_along_axis): self and
    indices broadcast in the other dims; with no dim, flat positions in the flattened self."""
    check_tensor(indices, "take_along_dim's indices")
    if dim is None: return self.take(indices.reshape(-1))
    if indices.ndim != self.ndim: raise ArgumentError(f"take_along_dim: indices of shape {indices.shape} need the {self.ndim} dims of self {self.shape}")
    d = _canon_axis(dim, self.ndim)
    others = [1 if i == d else s for i, s in enumerate(self.shape)]
    shape = _broadcast_except(others, indices.shape, d)
    n = self.shape[d]
    wrapped = (indices < 0).where(indices + n, indices)
    return self.expand(shape[:d] + (n,) + shape[d + 1:]).gather(d, wrapped.expand(shape[:d] + (indices.shape[d],) + shape[d + 1:]))


def _broadcast_except(a: list[int], b: tuple[int, ...], d: int) -> tuple[int, ...]:
  """The broadcast of two shapes of one length in every dim but d (there: 1, to be replaced)."""
  out = []
  for i, (x, y) in enumerate(zip(a, b)):
    if i == d: out.append(1)
    elif x != y and 1 not in (x, y): raise ArgumentError(f"take_along_dim: shapes {tuple(a)} and {b} don't broadcast in dim {i}")
    else: out.append(y if x == 1 else x)
  return tuple(out)
