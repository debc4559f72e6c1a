"""PyTorch's methods that the other pytorch_* mixins don't hold, as a Tensor mixin: the views broadcast_to, ravel
and select; positive, negative, absolute and fix (torch's other names); float_power, inner, diagflat, diag_embed,
isin, gcd and lcm; bucketize, searchsorted and bincount; det, slogdet and logdet (Gaussian elimination with
partial pivoting, the LU factorization PyTorch's are built on) and matrix_power; bernoulli and randint_like (drawn
from random.py's generator); and the constructors and joins logspace, tril_indices, triu_indices, hstack, vstack,
dstack, column_stack and atleast_1d/2d/3d. All are composed from Tensor's own ops and stay lazy, so gradients are
the composition's; only bincount reads values back (the length of its result is the largest of them), and
logspace and the triangle indices are made on the host, as arange is."""
from __future__ import annotations
import math
from functools import reduce
from typing import TYPE_CHECKING, Any, NamedTuple
import numpy as np
from teeny.dtype import dtypes, to_dtype, normalize_const, rounded_to, NARROW_FLOATS
from teeny.ops.args import ArgumentError, _canon_axis, _shape_arg, _int_arg
from teeny.ops.pytorch import DtypeError, check_tensor, _has_float64
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self

# gcd's Euclid steps per kernel: its worst case (consecutive Fibonacci numbers) takes ~1.44 steps per bit, 95 for
# int64, and one kernel of them all took seconds to compile; kernels of 16 steps are the same code, compiled once
_GCD_CHUNK = 16


class SignLogAbsDet(NamedTuple):
  """slogdet's result, like torch's: the determinant's sign (0 for a singular matrix) and log |det|."""
  sign: Any
  logabsdet: Any


def _tensor_list(tensors, name: str) -> list:
  """The tensors of a join (hstack, vstack, ...): a non-empty list or tuple of them, as PyTorch asks."""
  if not isinstance(tensors, (list, tuple)): raise TypeError(f"{name} takes a list or tuple of tensors, got {type(tensors).__name__}")
  if not tensors: raise ArgumentError(f"{name} expects a non-empty list of tensors")
  for t in tensors: check_tensor(t, f"each of {name}'s tensors")
  return list(tensors)


def _at_least(t, ndim: int):
  """t as a view with at least ndim dims, placed where torch.atleast_1d/2d/3d put them: a 0-d t becomes (1, ...),
  a 1-d (n,) becomes (1, n) or (1, n, 1), a 2-d (m, n) becomes (m, n, 1); with ndim dims already, t itself."""
  if t.ndim >= ndim: return t
  if t.ndim == 0: return t.reshape((1,) * ndim)
  if t.ndim == 1: return t.reshape((1, t.shape[0], 1)[:ndim])
  return t.unsqueeze(-1)


def _at_least_each(tensors: tuple, ndim: int, name: str):
  """atleast_Nd's rule for its arguments: one tensor gives a tensor; several, or one list or tuple of them, a tuple."""
  if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)): return tuple(_at_least(t, ndim) for t in _tensor_list(tensors[0], name))
  for t in tensors: check_tensor(t, f"each of {name}'s tensors")
  out = tuple(_at_least(t, ndim) for t in tensors)
  return out[0] if len(out) == 1 else out


def _euclid(a, b):
  """gcd of two int tensors of one dtype and shape, by PyTorch's loop: while a != 0: a, b = b % a, a (C's
  remainder), unrolled for as many steps as the dtype's worst case needs (consecutive Fibonacci numbers). A finished
  element (a == 0) keeps b: the remainder by 0 is 0 in teeny, so a stays 0."""
  steps = math.ceil(8 * a.dtype.itemsize * math.log(2) / math.log((1 + math.sqrt(5)) / 2)) + 2
  for step in range(steps):
    a, b = b.fmod(a), (a == 0).where(b, a)
    if step % _GCD_CHUNK == _GCD_CHUNK - 1: a, b = a.contiguous(), b.contiguous()
  return b


def _held(value, dtype):
  """A Python number as PyTorch holds it in dtype (Scalar.to<dtype>): ints truncated and wrapped, floats rounded
  (half floats through float32, as c10 converts a double)."""
  if dtypes.is_int(dtype): return normalize_const(value, dtype)
  if dtype == dtypes.float64: return float(value)
  return rounded_to(dtype, rounded_to(dtypes.float32, float(value)))


def _c_pow(base: float, exponent: float) -> float:
  """C's pow(base, exponent) in float64, which Python's math.pow calls, with C's answers where math.pow raises: NaN
  for a negative base to a fractional power, and infinity for an overflow or 0 to a negative power."""
  try: return math.pow(base, exponent)
  except (ValueError, OverflowError):
    if base < 0 and not exponent.is_integer(): return math.nan
    odd = exponent.is_integer() and exponent % 2 == 1
    return math.copysign(math.inf, base) if odd else math.inf


def _into(values: np.ndarray, dtype) -> np.ndarray:
  """float64 results as PyTorch stores them in dtype: ints truncated toward 0 by C's conversion (numpy's, which
  gives what PyTorch's gives out of the dtype's range too, where C leaves it undefined, on the machines tried), half
  floats through float32 (as c10 converts a double; teeny's constructor rounds float32 to bfloat16), the others
  rounded."""
  with np.errstate(invalid="ignore", over="ignore"):
    if dtypes.is_int(dtype): return values.astype(dtype.np)
    if dtype == dtypes.float16: return values.astype(np.float32).astype(np.float16)
    return values if dtype == dtypes.float64 else values.astype(np.float32)


class PyTorchExtraOps:
  """Tensor's PyTorch methods that the other pytorch_* mixins don't hold."""
  # ---- views and torch's other names ----
  def broadcast_to(self, *sizes, size=None) -> Self:
    """A view broadcast to `size` (ints or one tuple; -1 keeps a dim of self), like torch.broadcast_to: expand,
    whose views refuse writes as PyTorch's do (several of their elements are one memory location)."""
    if sizes and size is not None: raise TypeError("broadcast_to takes the size once: as arguments or as size=")
    shape = _shape_arg(sizes if size is None else (size,))
    if -1 in shape[:len(shape) - self.ndim]:
      raise ArgumentError(f"broadcast_to {shape}: -1 keeps a dim of self, and the leading new dims of shape {self.shape} have none")
    return self.expand(shape)
  def ravel(self) -> Self:
    """The elements as a 1-d tensor in row-major order (a 0-d tensor gives shape (1,)), like torch.ravel. It is a
    view always, as teeny's reshape is: PyTorch's copies a non-contiguous tensor (a transposed one), so writes
    into that one don't reach self, where teeny's do."""
    return self.flatten()
  def select(self, dim: int, index: int) -> Self:
    """The slice at `index` along dim, that dim removed, like torch.select: a view (writes into it reach self). A
    negative index counts from the end; one out of range raises IndexError."""
    if self.ndim == 0: raise IndexError("select() cannot be applied to a 0-d tensor: it has no dim to pick from")
    d = _canon_axis(dim, self.ndim)
    n, i = self.shape[d], _int_arg(index, "select's index")
    if not -n <= i < n: raise IndexError(f"select(): index {i} is out of range for dim {dim} of size {n} (shape {self.shape})")
    i %= n
    return self.shrink(tuple((i, i + 1) if j == d else None for j in range(self.ndim))).squeeze(d)
  def positive(self) -> Self:
    """self itself, like torch.positive (+x); a bool tensor raises, as there."""
    return +self
  def negative(self) -> Self:
    """-self, like torch.negative; a bool tensor raises, as there (use logical_not)."""
    return self.neg()
  def absolute(self) -> Self:
    """|self|, like torch.absolute (abs by another name); a bool tensor raises, as in PyTorch (teeny's abs passes
    it through)."""
    if self.dtype == dtypes.bool: raise DtypeError("absolute of a bool tensor is not supported (as in PyTorch)")
    return self.abs()
  def fix(self) -> Self:
    """self rounded toward zero, like torch.fix (trunc by another name): ints come back as copies, a bool tensor
    raises, as in PyTorch."""
    if self.dtype == dtypes.bool: raise DtypeError("fix of a bool tensor is not supported (as in PyTorch)")
    return self.trunc()

  # ---- elementwise and products ----
  def float_power(self, exponent) -> Self:
    """self ** exponent in float64, like torch.float_power: self and a tensor exponent are cast to float64 first
    (ints, bools, float32), a Python number exponent is a float64. The values are teeny's float64 pow's (small
    integer number powers multiply; the rest is exp2(y log2 x), a few ulps from the C library's pow that PyTorch
    calls). The gradient is pow's, cast back to each operand's dtype. On a device without float64 (OpenCL without cl_khr_fp64) it raises, as teeny never
    gives float32 for a float64 asked for."""
    if not _has_float64(self.device): raise DtypeError(f"float_power computes in float64, which device {self.device} lacks: use pow in float32")
    base = self.cast(dtypes.float64)
    if isinstance(exponent, PyTorchExtraOps): return base.pow(exponent.cast(dtypes.float64))
    if not isinstance(exponent, (int, float, np.number)):
      raise TypeError(f"float_power's exponent must be a tensor or a number, got {type(exponent).__name__}")
    return base.pow(float(exponent))
  def inner(self, other) -> Self:
    """Sums of products over the last dims of self and other, like torch.inner: out[i..., j...] = sum_k
    self[i..., k] * other[j..., k], shape self.shape[:-1] + other.shape[:-1] (a 0-d operand multiplies instead).
    Both need one dtype, as in PyTorch; ints sum in it (wrapping)."""
    check_tensor(other, "inner's other")
    if self.ndim == 0 or other.ndim == 0: return self * other
    if self.dtype != other.dtype: raise DtypeError(f"inner of {self.dtype} and {other.dtype} tensors: both need one dtype (as in PyTorch)")
    if self.dtype == dtypes.bool: raise DtypeError("inner of bool tensors is not supported (as in PyTorch)")
    k = self.shape[-1]
    if other.shape[-1] != k: raise ArgumentError(f"inner: the last dims of shapes {self.shape} and {other.shape} must match")
    rows, cols = math.prod(self.shape[:-1]), math.prod(other.shape[:-1])
    out = self.reshape(rows, k) @ other.reshape(cols, k).transpose(0, 1)
    return out.reshape(self.shape[:-1] + other.shape[:-1])
  def diagflat(self, offset: int = 0) -> Self:
    """self's elements (flattened) as diagonal `offset` (above the main one when > 0) of a square matrix of zeros,
    like torch.diagflat."""
    return self.flatten().diag(_int_arg(offset, "diagflat's offset"))
  def diag_embed(self, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Self:
    """self's last dim as diagonal `offset` of square planes of zeros in dims dim1 (rows) and dim2 (columns) of
    a result with one more dim, like torch.diag_embed: out.diagonal(offset, dim1, dim2) is self."""
    if self.ndim == 0: raise IndexError("diag_embed of a 0-d tensor: it has no last dim to place on a diagonal")
    d1, d2 = _canon_axis(dim1, self.ndim + 1), _canon_axis(dim2, self.ndim + 1)
    if d1 == d2: raise ArgumentError(f"diag_embed needs two different dims, got {dim1} and {dim2}")
    n, k = self.shape[-1], abs(_int_arg(offset, "diag_embed's offset"))
    # element i then n zeros, for each i, laid end to end and cut into rows of n: element i lands at (i, i)
    rows = self.unsqueeze(-1).pad((0, n)).flatten(-2)[..., :n * n].reshape(*self.shape, n)
    planes = rows.pad((k, 0, 0, k) if offset > 0 else (0, k, k, 0))  # (flat: columns before, after, rows before, after)
    return planes.movedim((-2, -1), (d1, d2))
  def isin(self, test_elements, *, assume_unique: bool = False, invert: bool = False) -> Self:
    """A bool tensor of self's shape, True where the element equals one of test_elements (a tensor of any shape,
    or a number), like torch.isin(self, test_elements): compared as == compares, after promotion (2 is in [2.0],
    1 is not in [1.5]); NaN is in nothing. invert gives the opposite. assume_unique changes nothing here."""
    tensor_test = isinstance(test_elements, PyTorchExtraOps)
    if not tensor_test and not isinstance(test_elements, (int, float, np.number)):
      raise TypeError(f"isin's test_elements must be a tensor or a number, got {type(test_elements).__name__}")
    if dtypes.bool in (self.dtype, test_elements.dtype if tensor_test else None) or isinstance(test_elements, (bool, np.bool_)):
      raise DtypeError("isin of bools is not supported (as in PyTorch): compare with == instead")
    hit = (self.unsqueeze(-1) == test_elements.flatten()).any(-1) if tensor_test else self == test_elements
    return hit.logical_not() if invert else hit
  def _int_operands(self, other, name: str) -> tuple[Self, Self]:
    """gcd's and lcm's operands, broadcast and promoted: two int tensors, as PyTorch asks."""
    check_tensor(other, f"{name}'s other")
    a, b = self._binop_operands(other)
    if not dtypes.is_int(a.dtype): raise DtypeError(f"{name} needs int tensors, got {self.dtype} and {other.dtype} (as in PyTorch)")
    return a, b
  def gcd(self, other) -> Self:
    """The greatest common divisor, elementwise (broadcast and promoted), like torch.gcd: >= 0, and gcd(0, 0) is
    0; int tensors only. Euclid's algorithm on |self| and |other| in their dtype, as PyTorch's: so a dtype's
    smallest value, whose magnitude it can't hold, gives PyTorch's answer too (gcd(-128, 0) is -128 in int8)."""
    a, b = self._int_operands(other, "gcd")
    return _euclid(a.abs(), b.abs())
  def lcm(self, other) -> Self:
    """The least common multiple, elementwise, like torch.lcm: |self / gcd * other|, 0 where gcd is 0; int tensors
    only. An overflow wraps as PyTorch's does: in int8, int16 and uint8 the product is taken in int32 (C's
    promotion) and its magnitude wrapped into the dtype; wider dtypes wrap the product, then take its magnitude."""
    a, b = self._int_operands(other, "lcm")
    g = _euclid(a.abs(), b.abs())
    if a.dtype.itemsize < 4:
      wide = (a.cast(dtypes.int32).div(g.cast(dtypes.int32), rounding_mode="trunc") * b.cast(dtypes.int32)).abs()
      out = wide.cast(a.dtype)
    else: out = (a.div(g, rounding_mode="trunc") * b).abs()
    return (g == 0).where(0, out)

  # ---- searching and counting ----
  def bucketize(self, boundaries, *, out_int32: bool = False, right: bool = False) -> Self:
    """The bucket of 1-d sorted boundaries that each element of self falls in, like torch.bucketize: i with
    boundaries[i - 1] < x <= boundaries[i] (right: boundaries[i - 1] <= x < boundaries[i]). int64, or int32 with
    out_int32: boundaries.searchsorted(self)."""
    check_tensor(boundaries, "bucketize's boundaries")
    if boundaries.ndim != 1: raise ArgumentError(f"bucketize needs 1-d boundaries, got shape {boundaries.shape}")
    return boundaries.searchsorted(self, out_int32=out_int32, right=right)
  def searchsorted(self, values, *, out_int32: bool = False, right: bool = False, side: str | None = None, sorter=None) -> Self:
    """Where each of values would go into self (sorted along its last dim) to keep it sorted, like
    torch.searchsorted(self, values): the first such index, or with right (side="right") the last. A 1-d self
    takes values of any shape; else values need self's dims but the last. values may be a number (a 0-d result).
    sorter: indices that sort self's last dim (argsort's: any int dtype, where PyTorch asks for int64). int64, or
    int32 with out_int32. PyTorch's binary search step by step, one gather each, so where self is not sorted (a
    NaN, which torch.sort puts last) the answer is PyTorch's too; comparisons promote as the operators do."""
    if side not in (None, "left", "right"): raise ArgumentError(f"searchsorted side must be 'left' or 'right', got {side!r}")
    if side == "left" and right: raise ArgumentError("searchsorted: side='left' and right=True ask for opposites")
    seq = self._sorted_by(sorter)
    if isinstance(values, PyTorchExtraOps): self._check_search_values(values)
    elif not isinstance(values, (int, float, np.number)) or isinstance(values, (bool, np.bool_)):
      raise TypeError(f"searchsorted's values must be a tensor or a number, got {type(values).__name__}")
    elif self.ndim > 1: raise ArgumentError(f"searchsorted: a number as values needs a 1-d sequence, got shape {self.shape}")
    found = seq._binary_search(values, right or side == "right")
    return found.cast(dtypes.int32 if out_int32 else dtypes.int64)
  def _sorted_by(self, sorter) -> Self:
    """searchsorted's sequence: self checked, and put in order by sorter when one is given."""
    if self.ndim == 0: raise ArgumentError("searchsorted needs a sorted sequence of at least 1 dim, got a 0-d tensor")
    if self.dtype == dtypes.bool: raise DtypeError("searchsorted of bools is not supported (as in PyTorch)")
    if sorter is None: return self
    check_tensor(sorter, "searchsorted's sorter")
    if sorter.shape != self.shape or not dtypes.is_int(sorter.dtype):
      raise ArgumentError(f"searchsorted's sorter must be int indices of the sequence's shape {self.shape}, got "
                          f"{sorter.dtype} of shape {sorter.shape}")
    return self.gather(-1, sorter)
  def _check_search_values(self, values):
    if values.dtype == dtypes.bool: raise DtypeError("searchsorted of bools is not supported (as in PyTorch)")
    if self.ndim > 1 and (values.ndim != self.ndim or values.shape[:-1] != self.shape[:-1]):
      raise ArgumentError(f"searchsorted: a sequence of shape {self.shape} needs values of shape {self.shape[:-1]} + (any,), "
                          f"got {values.shape} (or give a 1-d sequence)")
  def _binary_search(self, values, right: bool) -> Self:
    """PyTorch's lower (upper, with right) bound loop for each value, lazily: [start, end) halves n.bit_length()
    times, moving right where not probe >= value (not probe > value), so a NaN on either side moves right."""
    n = self.shape[-1]
    shape = values.shape if isinstance(values, PyTorchExtraOps) else ()
    index_dtype = dtypes.int32 if n < 2**31 - 1 else dtypes.int64
    start = type(self).zeros(shape, dtype=index_dtype, device=self.device)
    end = type(self).full(shape, n, dtype=index_dtype, device=self.device)
    for _ in range(n.bit_length()):
      mid = start + ((end - start) >> 1)
      at = mid.minimum(n - 1)  # (a finished search may point past the end: its probe is not used)
      probe = self[at] if self.ndim == 1 else self.gather(-1, at)
      stop = (probe > values) if right else (probe >= values)
      active = start < end
      start = (active & stop.logical_not()).where(mid + 1, start)
      end = (active & stop).where(mid, end)
    return start
  def bincount(self, weights=None, minlength: int = 0) -> Self:
    """How often each of 0, 1, ..., max occurs in self (a 1-d tensor of non-negative ints), like torch.bincount:
    length max(max + 1, minlength), so unlike teeny's other ops it reads data (one read of the smallest and
    largest value, which also finds the negative ones PyTorch refuses). int64 counts; with weights (one per
    element) their sums instead, float32 for float32 weights, else float64, as PyTorch's. An empty self gives
    minlength int64 zeros, also with weights, as PyTorch's. The gradient reaches weights (PyTorch has none)."""
    if self.dtype == dtypes.bool or not dtypes.is_int(self.dtype): raise DtypeError(f"bincount counts ints, got {self.dtype} (as in PyTorch)")
    if self.ndim != 1: raise ArgumentError(f"bincount only supports 1-d non-negative integral inputs, got shape {self.shape}")
    minlength = _int_arg(minlength, "bincount's minlength")  # (2.5 made 3 bins)
    if minlength < 0: raise ArgumentError(f"bincount minlength should be >= 0, got {minlength}")
    if weights is not None:
      check_tensor(weights, "bincount's weights")
      if weights.shape != self.shape:
        raise ArgumentError(f"bincount weights should be 1-d and as long as the input {self.shape}, got shape {weights.shape}")
    if self.numel() == 0: return type(self).zeros(minlength, dtype=dtypes.int64, device=self.device)
    low, high = type(self).stack([self.min(), self.max()]).tolist()
    if low < 0: raise ArgumentError(f"bincount only supports non-negative inputs, got {low}")
    hit = self.unsqueeze(-1) == type(self).arange(max(high + 1, minlength), device=self.device)
    if weights is None: return hit.sum(0)
    summed = dtypes.float32 if weights.dtype == dtypes.float32 else dtypes.float64
    return hit.where(weights.cast(summed).unsqueeze(-1), 0.0).sum(0)

  # ---- determinants and powers of matrices ----
  def _check_square(self, name: str):
    if self.ndim < 2: raise ArgumentError(f"{name} needs a matrix (or a batch of them), got shape {self.shape}")
    if self.shape[-1] != self.shape[-2]: raise ArgumentError(f"{name} needs square matrices, got {self.shape[-2]} by {self.shape[-1]}")
  def _lu_pivots(self) -> tuple[list, Self]:
    """Gaussian elimination with partial pivoting of each matrix of self (LAPACK's getrf order: at step k, of the
    rows from k down, the one with the largest |value| in column k, the first of equals, is swapped into row k):
    U's diagonal as a list of n tensors of the batch's shape, and the row swaps' sign. Each step is stored, and k
    reaches the kernels as a small host-made tensor, so every step runs the kernels the first one compiled."""
    n, lead = self.shape[-1], self.shape[:-2]
    rows = type(self).arange(n, dtype=dtypes.int32, device=self.device).reshape(n, 1)
    a, sign, pivots = self, type(self).ones(lead, dtype=self.dtype, device=self.device), []
    for k in range(n):
      at_k = type(self)(np.full((1, 1), k, np.int32), device=self.device)
      column = a.gather(-1, at_k.expand(*lead, n, 1))
      best = (rows >= at_k).where(column.abs(), -1.0).argmax(-2, keepdim=True)  # (..., 1, 1); NaN counts as largest
      source = (rows == at_k).where(best, (rows == best).where(at_k, rows))  # row k <-> row best
      a = a.gather(-2, source.expand(*lead, n, n))
      sign = (best != at_k).reshape(lead).where(-sign, sign)
      pivot_row = a.gather(-2, at_k.expand(*lead, 1, n))
      pivot = pivot_row.gather(-1, at_k.expand(*lead, 1, 1))
      # a zero pivot has zeros below it (it is the largest): nothing to take away, and 1 keeps the division finite
      factor = a.gather(-1, at_k.expand(*lead, n, 1)) / (pivot == 0).where(1.0, pivot)
      a = (rows > at_k).where(a - factor * pivot_row, a).contiguous()
      pivots.append(pivot.reshape(lead))
    return pivots, sign
  def _determinant_parts(self, name: str) -> tuple[list, Self]:
    """_lu_pivots of self, after PyTorch's checks (square float matrices)."""
    self._check_square(name)
    if not dtypes.is_float(self.dtype): raise DtypeError(f"{name} needs a float tensor, got {self.dtype} (as in PyTorch)")
    return self._lu_pivots()
  def det(self) -> Self:
    """The determinant of each matrix (the last two dims), like torch.det / torch.linalg.det: the product of U's
    diagonal of an LU factorization with partial pivoting, times the sign of its row swaps (1 for a 0x0 matrix).
    float16 and bfloat16 work in float32 (PyTorch's CPU refuses them). The gradient is the chain rule through the
    elimination: det * inverse^T where det != 0; at a singular matrix the derivative of the product (for rank
    n - 1 the adjugate), where PyTorch's answer there is 0."""
    if self.dtype in NARROW_FLOATS: return self.float().det().cast(self.dtype)
    pivots, sign = self._determinant_parts("det")
    return reduce(lambda product, pivot: product * pivot, pivots, sign)  # (in order, as PyTorch multiplies them)
  def slogdet(self) -> SignLogAbsDet:
    """(sign, logabsdet) of each matrix's determinant, like torch.slogdet: sign -1, 0 (singular) or 1, and log |det|
    (-inf for a singular matrix, NaN where the matrix has one), summed over the pivots so it holds where det would
    overflow. float16 and bfloat16 work in float32."""
    if self.dtype in NARROW_FLOATS:
      sign, logabsdet = self.float().slogdet()
      return SignLogAbsDet(sign.cast(self.dtype), logabsdet.cast(self.dtype))
    pivots, sign = self._determinant_parts("slogdet")
    logabsdet = sign.zeros_like()
    for pivot in pivots:
      sign, logabsdet = sign * pivot.sign(), logabsdet + pivot.abs().log()
    return SignLogAbsDet(sign, logabsdet)
  def logdet(self) -> Self:
    """log det of each matrix, like torch.logdet: NaN where det < 0, -inf where it is 0 (slogdet's logabsdet where
    the sign is not -1)."""
    sign, logabsdet = self.slogdet()
    return (sign < 0).where(math.nan, logabsdet)
  def matrix_power(self, n: int) -> Self:
    """Each matrix (the last two dims) multiplied by itself n times, like torch.linalg.matrix_power: n = 0 gives the
    identity in self's dtype, n = 1 a copy, larger n PyTorch's products in its order (the same roundings): squares
    of self, each multiplied in where n has a 1 bit. A negative n needs the inverse, which teeny lacks: it raises."""
    n = _int_arg(n, "matrix_power's n")
    self._check_square("matrix_power")
    if n < 0: raise ArgumentError(f"matrix_power with n = {n} needs the matrix inverse, which teeny has not got: give n >= 0")
    if n == 0:
      size = self.shape[-1]
      return type(self).eye(size, dtype=self.dtype, device=self.device).expand(self.shape)._own()
    if n == 1: return self.clone()
    if self.dtype == dtypes.bool: raise DtypeError("matrix_power of a bool matrix (n > 1) is not supported (as in PyTorch)")
    if n <= 3: return self @ self if n == 2 else (self @ self) @ self
    square, out = None, None
    while n > 0:  # (from the lowest bit: square each time, multiply in where the bit is set)
      n, bit = n // 2, n % 2
      square = self if square is None else square @ square
      if bit: out = square if out is None else out @ square
    return out

  # ---- random ----
  def bernoulli(self, p: float | None = None) -> Self:
    """0 or 1 in self's shape and dtype, 1 with probability self (a float tensor of probabilities) or p (a number
    for every element, self's values unused), like torch's x.bernoulli(): 1 where a uniform draw from teeny's
    generator (rand) is below the probability. self's probabilities are not read (PyTorch reads them and raises
    outside [0, 1]): below 0 they act as 0, above 1 as 1, NaN as 0. No gradient flows (PyTorch's is 0)."""
    if p is None:
      if not dtypes.is_float(self.dtype): raise DtypeError(f"bernoulli draws with the probabilities of a float tensor, got {self.dtype}")
      probability = self
    elif isinstance(p, bool) or not isinstance(p, (int, float, np.number)):
      raise TypeError(f"bernoulli's p must be a number (for probabilities per element, call bernoulli() on them), got {type(p).__name__}")
    elif not 0 <= p <= 1: raise ArgumentError(f"bernoulli expects p in [0, 1], got {p}")
    else: probability = p
    draw_dtype = dtypes.float64 if self.dtype == dtypes.float64 else dtypes.float32
    draws = type(self).rand(*self.shape, dtype=draw_dtype, device=self.device)
    return (draws < probability).cast(self.dtype)
  def randint_like(self, low: int = 0, high: int | None = None, *, dtype=None, device=None, requires_grad=None) -> Self:
    """Random integers in [low, high) in self's shape, and self's dtype and device unless given, like
    torch.randint_like: randint_like(x, high) or randint_like(x, low, high); drawn by randint."""
    if high is None: low, high = 0, low
    return type(self).randint(low=low, high=high, shape=self.shape, dtype=dtype or self.dtype, device=device or self.device,
                              requires_grad=requires_grad)

  # ---- constructors ----
  @classmethod
  def logspace(cls, start, end, steps: int, base: float = 10.0, dtype=None, device=None, requires_grad=None) -> Self:
    """steps values base ** e, e evenly spaced from start to end (both included), like torch.logspace: the
    default float unless dtype is given (an int dtype truncates). Made on the host as arange is, in PyTorch's own
    arithmetic: start and end held in the dtype, the step in float64, the first half counted up from start and
    the rest down from end, C's pow in float64 (math.pow), rounded into the dtype: PyTorch's values, bit for bit
    (so the device needs no float64)."""
    steps = _int_arg(steps, "logspace's steps")
    if steps < 0: raise ArgumentError(f"logspace needs steps >= 0, got {steps}")
    dt = to_dtype(dtype) if dtype is not None else dtypes.default_float
    if dt == dtypes.bool: raise DtypeError("logspace has no bool form (as in PyTorch)")
    start, end = (v.item() if isinstance(v, PyTorchExtraOps) else v for v in (start, end))  # (0-d tensors, as PyTorch takes)
    if steps == 1: exponents = np.array([float(start)])  # (PyTorch: pow(base, start), start not held in the dtype first)
    else:
      first, last = _held(start, dt), _held(end, dt)
      step = float(last - first if dtypes.is_int(dt) else _held(last - first, dt)) / (steps - 1)
      i = np.arange(steps)
      exponents = np.where(i < steps // 2, first + step * i, last - step * (steps - 1 - i))
    values = np.array([_c_pow(float(base), float(e)) for e in exponents], np.float64)
    return cls(_into(values, dt), dtype=dt, device=device, requires_grad=requires_grad)
  @classmethod
  def _triangle_indices(cls, name: str, numpy_indices, row: int, col: int, offset: int, dtype, device) -> Self:
    """tril_indices and triu_indices: numpy's coordinates (row by row, as PyTorch's) as a (2, N) int tensor."""
    for what, size in (("row", row), ("col", col)):
      if _int_arg(size, f"{name}'s {what}") < 0: raise ArgumentError(f"{name}: {what} must be >= 0, got {size}")
    offset = _int_arg(offset, f"{name}'s offset")
    dt = to_dtype(dtype) if dtype is not None else dtypes.default_int if max(row, col) <= 2**31 else dtypes.int64
    if not dtypes.is_int(dt): raise DtypeError(f"{name} makes int indices, not {dt} (as in PyTorch)")
    pair = numpy_indices(row, offset, col) if row and col else (np.zeros(0, np.int64),) * 2
    return cls(np.stack(pair).astype(dt.np), dtype=dt, device=device)
  @classmethod
  def tril_indices(cls, row: int, col: int, offset: int = 0, *, dtype=None, device=None) -> Self:
    """The coordinates of a row x col matrix's lower triangle (col - row <= offset), as a (2, N) tensor of row
    indices over column indices, row by row, like torch.tril_indices. In teeny's default int (int32, PyTorch's
    int64; as for arange, argmax and nonzero), int64 where a size doesn't fit it, or in dtype (an int one)."""
    return cls._triangle_indices("tril_indices", np.tril_indices, row, col, offset, dtype, device)
  @classmethod
  def triu_indices(cls, row: int, col: int, offset: int = 0, *, dtype=None, device=None) -> Self:
    """The coordinates of a row x col matrix's upper triangle (col - row >= offset), like torch.triu_indices (and
    in tril_indices' dtype)."""
    return cls._triangle_indices("triu_indices", np.triu_indices, row, col, offset, dtype, device)

  # ---- joins (Tensor.hstack([a, b]), as torch.hstack) ----
  @staticmethod
  def hstack(tensors) -> Self:
    """The tensors joined along dim 1, or dim 0 when the first is 1-d (0-d ones count as 1-d), like torch.hstack;
    dtypes promote as cat's."""
    pieces = [_at_least(t, 1) for t in _tensor_list(tensors, "hstack")]
    return pieces[0].cat(*pieces[1:], dim=0 if pieces[0].ndim == 1 else 1)
  @staticmethod
  def vstack(tensors) -> Self:
    """The tensors joined along dim 0, 0-d and 1-d ones first viewed as rows (1, n), like torch.vstack."""
    pieces = [_at_least(t, 2) for t in _tensor_list(tensors, "vstack")]
    return pieces[0].cat(*pieces[1:], dim=0)
  @staticmethod
  def dstack(tensors) -> Self:
    """The tensors joined along dim 2, each first given 3 dims as atleast_3d does, like torch.dstack."""
    pieces = [_at_least(t, 3) for t in _tensor_list(tensors, "dstack")]
    return pieces[0].cat(*pieces[1:], dim=2)
  @staticmethod
  def column_stack(tensors) -> Self:
    """The tensors joined along dim 1, 0-d and 1-d ones first viewed as columns (n, 1), like torch.column_stack."""
    pieces = [t.reshape(t.numel(), 1) if t.ndim <= 1 else t for t in _tensor_list(tensors, "column_stack")]
    return pieces[0].cat(*pieces[1:], dim=1)
  @staticmethod
  def atleast_1d(*tensors):
    """Each tensor viewed with at least 1 dim, like torch.atleast_1d: one tensor gives a tensor (itself when it
    has a dim), several or a list of them a tuple."""
    return _at_least_each(tensors, 1, "atleast_1d")
  @staticmethod
  def atleast_2d(*tensors):
    """Each tensor viewed with at least 2 dims (a 1-d (n,) as (1, n)), like torch.atleast_2d."""
    return _at_least_each(tensors, 2, "atleast_2d")
  @staticmethod
  def atleast_3d(*tensors):
    """Each tensor viewed with at least 3 dims ((n,) as (1, n, 1), (m, n) as (m, n, 1)), like torch.atleast_3d."""
    return _at_least_each(tensors, 3, "atleast_3d")
