"""Joining and splitting as a Tensor mixin: cat, stack, split, chunk, unflatten, repeat, repeat_interleave,
tril/triu, and layout helpers (roll, pad_to, shrink_to, diagonal, diag, meshgrid). All composed from views, where
and sums: cat pads each piece out to the full length and adds them (a cat of many pieces is joined in groups of
the device's Tuning.cat_group_size)."""
from __future__ import annotations
import math
from typing import TYPE_CHECKING, Sequence
import numpy as np
from teeny.dtype import dtypes, promote, STORAGE_FLOATS
from teeny.uop import Ops, UOp
from teeny.ops.args import ArgumentError, _canon_axis, _shape_arg, _int_arg, _size_arg
from teeny.runtime.device import Device
from teeny.ops.sharding import first_device
from teeny import multi
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self


def _tensors_joined(first, others: tuple, what: str, dim: int) -> tuple[list, int]:
  """cat's and stack's tensors and dim: a list or tuple of them (Tensor.cat([a, b]), and then dim may follow it
  as PyTorch's torch.cat(ts, 1) gives it) or the arguments (a.cat(b)), never both (Tensor.stack((a, b), c) left c
  out)."""
  if not isinstance(first, (list, tuple)): tensors = [first, *others]
  else:
    if len(others) == 1 and isinstance(others[0], int) and not isinstance(others[0], bool): others, dim = (), others[0]
    if others: raise ArgumentError(f"{what} takes the tensors as one list or as arguments, not both: got a list and {len(others)} more")
    if not first: raise ArgumentError(f"{what} needs at least one tensor")
    tensors = list(first)
  for t in tensors:
    if not isinstance(t, JoinOps): raise TypeError(f"{what} takes tensors, got {type(t).__name__}")
  return tensors, dim


class JoinOps:
  """Tensor's cat, stack, split, chunk, unflatten, repeat and triangles."""
  def cat(self, *others: Self, dim: int = 0) -> Self:
    """Join tensors along dim: each is padded out to the full length (floats with -0.0) and the pieces are added. Called as
    a.cat(b, c, dim=1) (tinygrad) or Tensor.cat([a, b, c], dim=1) (like torch.cat). dtypes promote like PyTorch."""
    tensors, dim = _tensors_joined(self, others, "cat", dim)
    first = tensors[0]
    if first.ndim == 0: raise ArgumentError("cat of 0-d tensors: they have no axis to join along (stack them, or reshape to (1,))")
    for t in tensors:
      if t.device != first.device: raise RuntimeError(f"cat of tensors on different devices: {first.device} and {t.device}")
      if t.ndim != first.ndim: raise ArgumentError(f"cat of tensors with different numbers of dimensions: {first.shape} and {t.shape}")
    d = _canon_axis(dim, first.ndim)
    for t in tensors:
      if any(a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != d):
        raise ArgumentError(f"cat along dim {dim}: shapes {first.shape} and {t.shape} differ in another dimension")
    dt = first.dtype
    for t in tensors[1:]: dt = promote(dt, t.dtype)
    tuning = Device[first_device(first.device)].renderer.tuning
    if len(tensors) > tuning.cat_host_pieces and all(t._host_constant() is not None for t in tensors):
      # e.g. a stack of Python numbers: one upload, not a kernel with a masked term per piece
      return type(first)(np.concatenate([t._host_constant() for t in tensors], axis=d), device=first.device, dtype=dt)
    if len(tensors) > tuning.cat_group_size:
      # many pieces: join them cat_group_size at a time first. Each group's kernel has the same code (only the
      # buffers differ), so one compile serves them all, and no kernel gets a masked term for every piece.
      size = tuning.cat_group_size
      groups = [JoinOps.cat(*tensors[i:i + size], dim=d).contiguous() for i in range(0, len(tensors), size)]
      return JoinOps.cat(*groups, dim=d)
    pieces = [t.cast(dt) for t in tensors]
    if len(pieces) == 1: return first._copy_result(pieces[0])  # (a copy, as torch.cat's: not the piece's storage)
    return first._new(multi.join([p.uop for p in pieces], d), *pieces)
  def _host_constant(self) -> np.ndarray | None:
    """The values of a tensor that is a constant filled out to a shape (known without running anything), else None."""
    u = self.uop
    while u.op in (Ops.RESHAPE, Ops.EXPAND): u = u.src[0]
    if u.op is not Ops.CONST or self.numel() > 4096: return None
    return np.full(self.shape, u.arg, dtype=np.float32 if self.dtype in STORAGE_FLOATS else self.dtype.np)  # (bfloat16's np is its bits)
  def roll(self, shifts, dims=None) -> Self:
    """Elements shifted along dims, those pushed off the end coming back at the start, like torch.roll; with no
    dims, over the flattened tensor."""
    shifts = tuple(_int_arg(s, "roll's shifts") for s in (shifts if isinstance(shifts, (list, tuple)) else (shifts,)))
    if dims is None:
      if len(shifts) != 1: raise ArgumentError(f"roll over the flattened tensor takes one shift, got {shifts}: give dims")
      return self.flatten().roll(shifts, 0).reshape(self.shape)
    dims = tuple(dims) if isinstance(dims, (list, tuple)) else (dims,)
    if len(shifts) != len(dims): raise ArgumentError(f"roll needs one shift per dim, got shifts {shifts} and dims {dims}")
    out = self
    for shift, dim in zip(shifts, dims):
      d = _canon_axis(dim, self.ndim)
      n = self.shape[d]
      if n == 0 or shift % n == 0: continue
      cut = n - shift % n  # the elements from `cut` on move to the front
      out = out[(slice(None),) * d + (slice(cut, None),)].cat(out[(slice(None),) * d + (slice(0, cut),)], dim=d)
    return self._copy_result(out)
  def _copy_result(self, out: Self) -> Self:
    """out, a result PyTorch returns as a copy (pad, flip, roll), when it came out as this tensor itself or as a view
    of its storage: its values in a tensor of its own, so writes into it don't reach this one (nor the other way).
    A PAD by nothing: no kernel of its own, it fuses into whatever reads it."""
    if out is not self and out._base is None: return out
    return out._new(UOp(Ops.PAD, out.dtype, (out.uop,), ((0, 0),) * out.ndim))
  def _pad_from_edges(self, padding: tuple, mode: str) -> Self:
    """pad's "reflect" (mirrored about the edge element, which isn't repeated), "replicate" (the edge element
    repeated) and "circular" (wrapped around) modes, like torch.nn.functional.pad: each axis joins the pieces cut
    from the tensor itself, so gradients flow back to the elements copied."""
    limits = {"reflect": lambda n: n - 1, "replicate": lambda n: math.inf, "circular": lambda n: n}
    if mode not in limits: raise ArgumentError(f"pad mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")
    if any(b < 0 or a < 0 for b, a in padding):  # negative padding crops, as in PyTorch: circular wraps what is left,
      positive = tuple((max(b, 0), max(a, 0)) for b, a in padding)  # reflect and replicate see the whole tensor first
      def crop(t: Self) -> Self: return t.shrink(tuple((max(-b, 0), s - max(-a, 0)) for (b, a), s in zip(padding, t.shape)))
      return crop(self)._pad_from_edges(positive, mode) if mode == "circular" else crop(self._pad_from_edges(positive, mode))
    x = self
    for axis, (before, after) in enumerate(padding):
      n = x.shape[axis]
      if max(before, after) > limits[mode](n) or (n == 0 and before + after):
        raise ArgumentError(f"pad mode {mode!r}: padding {(before, after)} is too large for axis {axis} of size {n}")
      if before == after == 0: continue
      def cut(start: int, end: int) -> Self: return x.shrink(tuple((start, end) if i == axis else None for i in range(x.ndim)))
      if mode == "reflect": left, right = cut(1, before + 1).flip(axis), cut(n - 1 - after, n - 1).flip(axis)
      elif mode == "circular": left, right = cut(n - before, n), cut(0, after)
      else:
        grow = lambda k: tuple(k if i == axis else s for i, s in enumerate(x.shape))  # noqa: E731
        left, right = cut(0, 1).expand(grow(before)), cut(n - 1, n).expand(grow(after))
      pieces = ([left] if before else []) + [x] + ([right] if after else [])
      x = pieces[0].cat(*pieces[1:], dim=axis)
    return x
  def unfold(self, dim: int, size: int, step: int) -> Self:
    """Windows of `size` elements every `step` along dim, like torch.Tensor.unfold: dim becomes the window count
    and a last axis of `size` is appended (a view; tinygrad instead puts the window axis right after dim)."""
    d = _canon_axis(dim, self.ndim)
    n = self.shape[d] if self.ndim else 1
    size, step = _size_arg(size, "unfold's size"), _size_arg(step, "unfold's step")
    if size < 0 or step < 1 or size > n:
      raise ArgumentError(f"unfold of an axis of size {n} needs 0 <= size <= {n} and step >= 1, got size={size}, step={step}")
    x = self.reshape(1) if not self.ndim else self
    if size == 0 and not self.ndim: return x.shrink(((0, 0),))  # (a 0-d tensor's one window of none: shape (0,))
    if size == 0:  # windows of no elements, (n - 0) // step + 1 of them, as in PyTorch (a view of none of x: backward works)
      windows = x.shape[:d] + ((n // step) + 1,) + x.shape[d + 1:] + (0,)
      return x.shrink(tuple((0, 0) if a == d else None for a in range(x.ndim))).reshape(windows)
    out = x.transpose(d, -1)._pool((size,), (step,), (1,)).transpose(d, -2)
    return out.reshape(size) if not self.ndim else out  # (a 0-d tensor: its one window, (size,), as in PyTorch)
  def pad_to(self, *shape, value=0.0) -> Self:
    """value (0 by default) added at the end of each axis up to shape (None or the size itself: that axis as it
    is), like tinygrad."""
    shape = self._size_per_axis(shape, "pad_to")
    if any(n is not None and n < s for n, s in zip(shape, self.shape)):
      raise ArgumentError(f"pad_to {shape} is smaller than shape {self.shape}: use shrink_to")
    return self.pad(tuple((0, 0 if n is None else n - s) for n, s in zip(shape, self.shape)), value=value)
  def shrink_to(self, *shape) -> Self:
    """The first elements of each axis, up to shape (None: that axis as it is), like tinygrad."""
    shape = self._size_per_axis(shape, "shrink_to")
    return self.shrink(tuple((0, s if n is None else n) for n, s in zip(shape, self.shape)))
  def _size_per_axis(self, shape: tuple, what: str) -> tuple:
    """pad_to's and shrink_to's sizes, given as ints or one tuple: one per axis (None: the axis as it is)."""
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (list, tuple)) else shape
    if len(shape) != self.ndim: raise ArgumentError(f"{what} {shape} needs one size per axis of shape {self.shape}")
    return tuple(None if n is None else _size_arg(n, f"{what}'s sizes") for n in shape)
  def diagonal(self, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Self:
    """The diagonal of the (dim1, dim2) planes as the last axis, like torch.diagonal (offset > 0: above it)."""
    d1, d2, offset = _canon_axis(dim1, self.ndim), _canon_axis(dim2, self.ndim), _int_arg(offset, "diagonal's offset")
    if d1 == d2: raise ArgumentError(f"diagonal needs two different dims, got {dim1} and {dim2}")
    rest = [i for i in range(self.ndim) if i not in (d1, d2)]
    x = self.permute(rest + [d1, d2])
    x = x[..., max(0, -offset):, max(0, offset):]  # the diagonal now starts at (0, 0)
    n = max(0, min(x.shape[-2], x.shape[-1]))
    if n == 0: return x.reshape(*x.shape[:-2], 0)
    # along a flattened n x (n + 1) window, element i * (n + 1) is (i, i)
    # a view of self, as PyTorch's diagonal is (writes through it reach self, and it sees self's): the PAD is a
    # movement op of the view (a write undoes it with a shrink; only padding is cut off after it), not pad()'s copy
    square = x[..., :n, :n].flatten(-2)
    padded = square._view(Ops.PAD, ((0, 0),) * (square.ndim - 1) + ((0, n),))
    return padded.reshape(*square.shape[:-1], n, n + 1)[..., 0]
  def diag(self, diagonal: int = 0) -> Self:
    """Like torch.diag: a 1-d tensor as the diagonal of a square matrix (zeros elsewhere), a 2-d tensor's diagonal."""
    diagonal = _int_arg(diagonal, "diag's diagonal")  # (a float made a matrix of float size)
    if self.ndim == 2: return self.diagonal(diagonal)
    if self.ndim != 1: raise ArgumentError(f"diag takes a 1-d or 2-d tensor, got shape {self.shape}")
    n, k = self.shape[0], abs(diagonal)
    # row i of (n, n + 1) holds v[i] then n zeros: flattened and cut to n * n, v[i] lands at (i, i)
    square = self.reshape(n, 1).pad(((0, 0), (0, n))).flatten()[:n * n].reshape(n, n) if n else self.reshape(0, 0)
    pads = ((0, k), (k, 0)) if diagonal > 0 else ((k, 0), (0, k))
    return square.pad(pads)
  def meshgrid(self, *others, indexing: str = "ij") -> list:
    """Coordinate grids of 1-d tensors, like torch.meshgrid: indexing="ij" (matrix, the default) or "xy"
    (Cartesian: the first two grids' axes swapped). Tensor.meshgrid(x, y), Tensor.meshgrid([x, y]) and
    tinygrad's x.meshgrid(y) are the same call."""
    if indexing not in ("ij", "xy"): raise ArgumentError(f"meshgrid indexing must be 'ij' or 'xy', got {indexing!r}")
    tensors = (*self, *others) if isinstance(self, (list, tuple)) else (self, *others)
    tensors = tuple(t.reshape(1) if t.ndim == 0 else t for t in tensors)  # (a 0-d tensor is one value, as in PyTorch)
    if any(t.ndim != 1 for t in tensors): raise ArgumentError(f"meshgrid takes 1-d tensors, got shapes {[t.shape for t in tensors]}")
    order = list(tensors)
    if indexing == "xy" and len(order) >= 2: order[0], order[1] = order[1], order[0]
    shape = tuple(t.shape[0] for t in order)
    grids = [t.reshape(tuple(-1 if i == j else 1 for j in range(len(order)))).expand(shape) for i, t in enumerate(order)]
    if indexing == "xy" and len(grids) >= 2: grids[0], grids[1] = grids[1], grids[0]  # (back in the order given)
    return grids
  def stack(self, *others: Self, dim: int = 0) -> Self:
    """Join tensors of one shape along a new axis dim (Tensor.stack([a, b]) or a.stack(b))."""
    tensors, dim = _tensors_joined(self, others, "stack", dim)
    for t in tensors:
      if t.shape != tensors[0].shape: raise ArgumentError(f"stack needs tensors of one shape, got {tensors[0].shape} and {t.shape}")
    d = _canon_axis(dim, tensors[0].ndim + 1)
    return JoinOps.cat(*[t.unsqueeze(d) for t in tensors], dim=d)
  def split(self, sizes: int | Sequence[int], dim: int = 0) -> tuple[Self, ...]:
    """Pieces of length `sizes` along dim (the last may be shorter), or pieces of the listed lengths."""
    if self.ndim == 0: raise ArgumentError("split of a 0-d tensor: it has no axis to split")
    d = _canon_axis(dim, self.ndim)
    n = self.shape[d]
    if not isinstance(sizes, (tuple, list)):
      sizes = _size_arg(sizes, "split's size")
      if sizes <= 0: raise ArgumentError(f"split size must be positive, got {sizes}")
      sizes = [min(sizes, n - start) for start in range(0, n, sizes)] or [0]
    sizes = [_size_arg(s, "split's sizes") for s in sizes]
    if sum(sizes) != n or any(s < 0 for s in sizes): raise ArgumentError(f"split sizes {sizes} don't add up to {n} along dim {dim}")
    out, start = [], 0
    for s in sizes:
      out.append(self.shrink(tuple((start, start + s) if i == d else None for i in range(self.ndim))))
      start += s
    return tuple(out)
  def chunk(self, chunks: int, dim: int = 0) -> tuple[Self, ...]:
    """At most `chunks` pieces of equal length (the last shorter), like torch.chunk."""
    chunks = _int_arg(chunks, "chunk's chunks")  # (1.5 made pieces of ceil(n / 1.5))
    if chunks <= 0: raise ArgumentError(f"chunk needs a positive number of chunks, got {chunks}")
    if self.ndim == 0: raise ArgumentError("chunk of a 0-d tensor: it has no axis to split")
    n = self.shape[_canon_axis(dim, self.ndim)]
    if n == 0: return (self,) * chunks  # (as PyTorch: an empty axis gives `chunks` empty pieces)
    return self.split(max(1, math.ceil(n / chunks)), dim)
  def unflatten(self, dim: int, sizes: Sequence[int]) -> Self:
    """A view with axis dim split into the sizes given (one may be -1), like torch.unflatten."""
    d = _canon_axis(dim, self.ndim)
    sizes = tuple(sizes)
    if sizes.count(-1) == 1 and all(s > 0 for s in sizes if s != -1):  # -1 from this axis alone (the tensor may be empty)
      sizes = tuple(self.shape[d] // math.prod(s for s in sizes if s != -1) if s == -1 else s for s in sizes)
    return self.reshape(self.shape[:d] + sizes + self.shape[d + 1:])
  def repeat(self, *repeats) -> Self:
    """Tile the tensor: repeats[i] copies along axis i (extra leading repeats add axes), like torch.repeat."""
    repeats = _shape_arg(repeats)
    if len(repeats) < self.ndim: raise ArgumentError(f"repeat {repeats} needs at least one count per axis of shape {self.shape}")
    if any(r < 0 for r in repeats): raise ArgumentError(f"repeat counts must be >= 0, got {repeats}")
    return self._tiled(repeats)._own()  # a copy, like torch.repeat
  def _tiled(self, repeats: tuple[int, ...]) -> Self:
    """repeat's tiling as a view of self (unfold's overlapping windows are read from it)."""
    base = (1,) * (len(repeats) - self.ndim) + self.shape
    x = self.reshape(tuple(d for s in base for d in (1, s)))
    x = x.expand(tuple(d for r, s in zip(repeats, base) for d in (r, s)))
    return x.reshape(tuple(r * s for r, s in zip(repeats, base)))
  def repeat_interleave(self, repeats: int, dim: int | None = None) -> Self:
    """Each element repeated `repeats` times in a row along dim (flattened when dim is None)."""
    repeats = _int_arg(repeats, "repeat_interleave's repeats")
    if repeats < 0: raise ArgumentError(f"repeat_interleave: repeats must be >= 0, got {repeats}")  # (-1 gave x unchanged)
    x, d = (self.flatten(), 0) if dim is None else (self, _canon_axis(dim, self.ndim))
    x = x.unsqueeze(d + 1)
    return x.expand(x.shape[:d + 1] + (repeats,) + x.shape[d + 2:]).flatten(d, d + 1)._own()
  def _triangle(self, diagonal: int, upper: bool) -> Self:
    if self.ndim < 2: raise ArgumentError(f"tril/triu need at least 2 dimensions, got shape {self.shape}")
    diagonal = _int_arg(diagonal, f"{'triu' if upper else 'tril'}'s diagonal")  # (0.5 acted as 1)
    rows, cols = self.shape[-2:]
    r = type(self).arange(rows, dtype=dtypes.int32, device=self.device).reshape(rows, 1)
    c = type(self).arange(cols, dtype=dtypes.int32, device=self.device).reshape(1, cols)
    keep = (c - r >= diagonal) if upper else (c - r <= diagonal)
    return keep.where(self, type(self).full((), 0, dtype=self.dtype, device=self.device))
  def tril(self, diagonal: int = 0) -> Self:
    """The lower triangle of the last two axes (j - i <= diagonal kept), zeros above."""
    return self._triangle(diagonal, upper=False)
  def triu(self, diagonal: int = 0) -> Self:
    """The upper triangle of the last two axes (j - i >= diagonal kept), zeros below."""
    return self._triangle(diagonal, upper=True)
