"""Data types: the scalar types teeny computes in, pointer types for kernels, and PyTorch-like promotion."""
from __future__ import annotations
from dataclasses import dataclass
import math
import numpy as np


class _Interned(type):
  """Each distinct dtype is made once: dtypes are compared and hashed on every graph node built, and identity
  (C's own hash and ==) is far cheaper than comparing fields in Python."""
  _made: dict = {}
  def __call__(cls, *fields):
    key = (cls, fields)
    found = _Interned._made.get(key)
    # setdefault is atomic: two threads making the same new dtype at once still get one object
    if found is None: found = _Interned._made.setdefault(key, super().__call__(*fields))
    return found


@dataclass(frozen=True, eq=False)
class DType(metaclass=_Interned):
  """A scalar type. `priority` orders types inside a category for promotion; `fmt` is the numpy/struct char.
  Interned (see _Interned): equal dtypes are the same object, so == and hash are by identity."""
  priority: int
  itemsize: int
  name: str
  fmt: str | None

  def __repr__(self): return f"dtypes.{self.name}"
  def __reduce__(self): return (type(self), self._fields())  # unpickled through _Interned: the same object again
  def _fields(self) -> tuple: return (self.priority, self.itemsize, self.name, self.fmt)
  def ptr(self) -> PtrDType: return PtrDType(self.priority, self.itemsize, self.name, self.fmt, self)
  def vec(self, count: int) -> VecDType:
    return VecDType(self.priority, self.itemsize * count, f"{self.name}x{count}", None, self, count)

  @property
  def np(self): return np.dtype(self.fmt) if self.fmt is not None else None
  @property
  def min(self):
    """The lowest value (-inf for floats), like tinygrad's dtype.min."""
    return _limits(self)[0]
  @property
  def max(self):
    """The highest value (inf for floats)."""
    return _limits(self)[1]


@dataclass(frozen=True, eq=False)
class PtrDType(DType):
  """A pointer to global memory holding `base` elements (kernel arguments)."""
  base: DType = None  # type: ignore[assignment]
  def __repr__(self): return f"{self.base!r}.ptr()"
  def _fields(self) -> tuple: return (self.priority, self.itemsize, self.name, self.fmt, self.base)


@dataclass(frozen=True, eq=False)
class VecDType(DType):
  """`count` lanes of `scalar` in one value: only the vector loads and stores of codegen make them."""
  scalar: DType = None  # type: ignore[assignment]
  count: int = 1
  def __repr__(self): return f"{self.scalar!r}.vec({self.count})"
  def _fields(self) -> tuple: return (self.priority, self.itemsize, self.name, self.fmt, self.scalar, self.count)


class dtypes:
  """The dtype namespace, named like tinygrad's."""
  void = DType(-1, 0, "void", None)
  bool = DType(0, 1, "bool", "?")
  int8 = DType(1, 1, "int8", "b")
  uint8 = DType(2, 1, "uint8", "B")
  int16 = DType(3, 2, "int16", "h")
  uint16 = DType(4, 2, "uint16", "H")
  int32 = DType(5, 4, "int32", "i")
  uint32 = DType(6, 4, "uint32", "I")
  int64 = DType(7, 8, "int64", "q")
  uint64 = DType(8, 8, "uint64", "Q")
  float16 = DType(9, 2, "float16", "e")
  float32 = DType(10, 4, "float32", "f")
  float64 = DType(11, 8, "float64", "d")
  half, float, double = float16, float32, float64
  char, uchar, short, int, long = int8, uint8, int16, int32, int64
  ushort, uint, ulong = uint16, uint32, uint64
  default_float = float32
  default_int = int32

  @staticmethod
  def is_float(t: DType) -> bool: return t in FLOATS
  @staticmethod
  def is_int(t: DType) -> bool: return t in INTS
  @staticmethod
  def is_unsigned(t: DType) -> bool: return t in UNSIGNED
  @staticmethod
  def from_np(npdtype) -> DType:
    npdtype = np.dtype(npdtype)
    if npdtype not in _FROM_NP: raise TypeError(f"numpy dtype {npdtype} is not supported by teeny")
    return _FROM_NP[npdtype]
  @staticmethod
  def from_py(x) -> DType:
    """The dtype a Python scalar (or nested list of them) gets, like torch.tensor()."""
    if isinstance(x, bool): return dtypes.bool
    if isinstance(x, int): return dtypes.default_int
    if isinstance(x, float): return dtypes.default_float
    if isinstance(x, (list, tuple)):
      return max((dtypes.from_py(e) for e in x), key=lambda t: t.priority, default=dtypes.default_float)
    raise TypeError(f"cannot make a tensor from {type(x).__name__}")
  @staticmethod
  def finfo(t: DType) -> tuple[int, int]:
    """(exponent bits, mantissa bits) of a float dtype, like tinygrad's dtypes.finfo."""
    if t not in FLOATS: raise TypeError(f"finfo of {t}: not a float dtype")
    return {2: (5, 10), 4: (8, 23), 8: (11, 52)}[t.itemsize]
  @staticmethod
  def least_upper_dtype(*ds: DType) -> DType:
    """The dtype every one of ds promotes to (PyTorch's promotion, see promote)."""
    out = ds[0]
    for d in ds[1:]: out = promote(out, d)
    return out
  @staticmethod
  def min(t: DType): return _limits(t)[0]
  @staticmethod
  def max(t: DType): return _limits(t)[1]


ALL = (dtypes.bool, dtypes.int8, dtypes.uint8, dtypes.int16, dtypes.uint16, dtypes.int32, dtypes.uint32,
       dtypes.int64, dtypes.uint64, dtypes.float16, dtypes.float32, dtypes.float64)
FLOATS = frozenset((dtypes.float16, dtypes.float32, dtypes.float64))
UNSIGNED = frozenset((dtypes.uint8, dtypes.uint16, dtypes.uint32, dtypes.uint64))
INTS = frozenset((dtypes.int8, dtypes.int16, dtypes.int32, dtypes.int64)) | UNSIGNED
_FROM_NP = {t.np: t for t in ALL}
# every scalar dtype by its name (aliases such as "half" included), like tinygrad's DTYPES_DICT
DTYPES_DICT = {name: t for name, t in vars(dtypes).items() if isinstance(t, DType) and not name.startswith(("default", "void"))}


def _limits(t: DType):
  if t == dtypes.bool: return False, True
  if dtypes.is_int(t): return (int(np.iinfo(t.np).min), int(np.iinfo(t.np).max))
  return -math.inf, math.inf


def _category(t: DType) -> int: return 0 if t == dtypes.bool else 1 if dtypes.is_int(t) else 2


def promote(a: DType, b: DType) -> DType:
  """PyTorch's promotion for two tensor dtypes: bool < ints < floats; signed/unsigned mixes widen."""
  if a == b: return a
  ca, cb = _category(a), _category(b)
  if ca != cb: return a if ca > cb else b
  if ca == 2 or dtypes.is_unsigned(a) == dtypes.is_unsigned(b): return a if a.itemsize >= b.itemsize else b
  signed, unsigned = (a, b) if dtypes.is_unsigned(b) else (b, a)
  if signed.itemsize > unsigned.itemsize: return signed
  # an unsigned type needs the next wider signed type; uint64 has none, so (like numpy) it goes to float
  return {1: dtypes.int16, 2: dtypes.int32, 4: dtypes.int64}.get(unsigned.itemsize, dtypes.float64)


def promote_scalar(t: DType, x) -> DType:
  """The result dtype of a tensor of dtype `t` combined with a Python scalar `x` (scalars don't widen within a category)."""
  if isinstance(x, bool): return t
  if isinstance(x, int): return t if t is not dtypes.bool else dtypes.default_int
  if isinstance(x, float): return t if t in FLOATS else dtypes.default_float
  raise TypeError(f"cannot combine a tensor with {type(x).__name__}")


def to_dtype(x) -> DType:
  """Accept a DType, a numpy dtype, or a name like 'float32'."""
  if isinstance(x, DType): return x
  if isinstance(x, str) and hasattr(dtypes, x) and isinstance(getattr(dtypes, x), DType): return getattr(dtypes, x)
  try: return dtypes.from_np(x)
  except TypeError: raise TypeError(f"unknown dtype {x!r}") from None
