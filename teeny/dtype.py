"""Data types: the scalar types teeny computes in, pointer types for kernels, and PyTorch-like promotion."""
from __future__ import annotations
from dataclasses import dataclass
import math, struct
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
  def np(self):
    """The numpy dtype of this type's bytes. bfloat16 and the fp8 kinds, which numpy lacks, give the unsigned int
    of their size: the raw bits (to_host/from_host convert values)."""
    if self.fmt is not None: return np.dtype(self.fmt)
    return _BITS_NP.get(self.name)
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
  """`count` lanes of `scalar` in one value: only codegen's vector code makes them (codegen/vectorize.py)."""
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
  # storage-only floats (tinygrad's names): kept in memory as their bits, computed in float32 (codegen/lowfloat.py)
  bfloat16 = DType(9, 2, "bfloat16", None)
  fp8e4m3 = DType(8, 1, "fp8e4m3", None)  # PyTorch's float8_e4m3fn: no inf, NaN is S.1111.111, max 448
  fp8e5m2 = DType(8, 1, "fp8e5m2", None)  # PyTorch's float8_e5m2: IEEE-like, max 57344, has inf
  half, float, double = float16, float32, float64
  char, uchar, short, int, long = int8, uint8, int16, int32, int64
  ushort, uint, ulong = uint16, uint32, uint64
  default_float = float32
  default_int = int32
  # tinygrad's groups of dtypes
  fp8s = (fp8e4m3, fp8e5m2)
  floats = fp8s + (float16, bfloat16, float32, float64)
  uints = (uint8, uint16, uint32, uint64)
  sints = (int8, int16, int32, int64)
  ints = uints + sints

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
    """The dtype a Python scalar (or nested list of them) gets, like torch.tensor(). An int outside the default int's
    range gets int64 (teeny's default int is tinygrad's int32, PyTorch's is int64: 2**40 must not wrap to 0). A
    numpy scalar alone counts as the Python number it holds (full((2,), np.float64(1.5)) is float32, as in PyTorch);
    inside a list it keeps its own dtype, as in torch.tensor([np.float64(1.5)])."""
    if isinstance(x, np.generic): return dtypes.from_py(x.item())
    if isinstance(x, bool): return dtypes.bool
    if isinstance(x, int):
      if dtypes.min(dtypes.default_int) <= x <= dtypes.max(dtypes.default_int): return dtypes.default_int
      if -2**63 <= x < 2**63: return dtypes.int64
      raise OverflowError(f"the Python int {x} does not fit in int64, the widest signed int a tensor holds")
    if isinstance(x, float): return dtypes.default_float
    if isinstance(x, (list, tuple)):
      def of(e):
        if isinstance(e, (np.generic, np.ndarray)): return dtypes.from_np(e.dtype)
        if isinstance(getattr(e, "dtype", None), DType): return e.dtype  # (a Tensor inside the list, as in PyTorch)
        return dtypes.from_py(e)
      return max((of(e) for e in x), key=lambda t: t.priority, default=dtypes.default_float)
    raise TypeError(f"cannot make a tensor from {type(x).__name__}")
  @staticmethod
  def finfo(t: DType) -> tuple[int, int]:
    """(exponent bits, mantissa bits) of a float dtype, like tinygrad's dtypes.finfo."""
    if t not in FLOATS: raise TypeError(f"finfo of {t}: not a float dtype")
    return _FINFO[t]
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
# floats kept as bits in memory and computed in float32 on every device (teeny/codegen/lowfloat.py)
STORAGE_FLOATS = frozenset((dtypes.bfloat16, dtypes.fp8e4m3, dtypes.fp8e5m2))
# floats narrower than float32: their arithmetic runs in float32 and rounds once per op, sums accumulate in float32
NARROW_FLOATS = STORAGE_FLOATS | {dtypes.float16}
FLOATS = frozenset((dtypes.float16, dtypes.float32, dtypes.float64)) | STORAGE_FLOATS
_FINFO = {dtypes.float16: (5, 10), dtypes.bfloat16: (8, 7), dtypes.float32: (8, 23), dtypes.float64: (11, 52),
          dtypes.fp8e4m3: (4, 3), dtypes.fp8e5m2: (5, 2)}
_BITS_NP = {"bfloat16": np.dtype(np.uint16), "fp8e4m3": np.dtype(np.uint8), "fp8e5m2": np.dtype(np.uint8)}
UNSIGNED = frozenset((dtypes.uint8, dtypes.uint16, dtypes.uint32, dtypes.uint64))
INTS = frozenset((dtypes.int8, dtypes.int16, dtypes.int32, dtypes.int64)) | UNSIGNED
_FROM_NP = {t.np: t for t in ALL}  # (ALL has no storage float: numpy's uint16 stays uint16)
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
  if ca == 2: return _promote_floats(a, b)
  if dtypes.is_unsigned(a) == dtypes.is_unsigned(b): return a if a.itemsize >= b.itemsize else b
  signed, unsigned = (a, b) if dtypes.is_unsigned(b) else (b, a)
  if signed.itemsize > unsigned.itemsize: return signed
  # an unsigned type needs the next wider signed type; uint64 has none, so (like numpy) it goes to float
  return {1: dtypes.int16, 2: dtypes.int32, 4: dtypes.int64}.get(unsigned.itemsize, dtypes.float64)


def promote_operands(a: DType, a_ndim: int, b: DType, b_ndim: int) -> DType:
  """PyTorch's promotion of two tensor operands: a 0-d tensor beside one with dimensions counts like a Python
  scalar of its dtype, deciding only when its category (bool < ints < floats) is higher: float16 times a 0-d
  float32 stays float16, uint8 plus a 0-d int64 stays uint8, int32 plus a 0-d float64 is float64."""
  if (a_ndim == 0) == (b_ndim == 0): return promote(a, b)
  shaped, zero_dim = (a, b) if b_ndim == 0 else (b, a)
  return zero_dim if _category(zero_dim) > _category(shaped) else shaped


def _promote_floats(a: DType, b: DType) -> DType:
  """Two different floats: the wider wins. Of one size (bfloat16 and float16, or the two fp8 kinds) neither holds
  the other: float32 for the 16-bit pair (like PyTorch), float16 for the fp8 pair (tinygrad's lattice; PyTorch
  refuses to mix fp8 kinds at all)."""
  if a.itemsize != b.itemsize: return a if a.itemsize > b.itemsize else b
  return dtypes.float32 if a.itemsize == 2 else dtypes.float16


def promote_scalar(t: DType, x) -> DType:
  """The result dtype of a tensor of dtype `t` combined with a Python scalar `x` (scalars don't widen within a category)."""
  if isinstance(x, bool): return t
  if isinstance(x, int): return t if t is not dtypes.bool else dtypes.from_py(x)
  if isinstance(x, float): return t if t in FLOATS else dtypes.default_float
  raise TypeError(f"cannot combine a tensor with {type(x).__name__}")


# ---- bfloat16 and fp8 on the host: values <-> bits, rounding to nearest even like PyTorch's CPU casts ----

# (exponent bits, mantissa bits, exponent bias, saturates: overflow and inf go to the largest finite value)
FP8_FORMATS = {dtypes.fp8e4m3: (4, 3, 7, True), dtypes.fp8e5m2: (5, 2, 15, False)}


def float_to_bits(values, dtype: DType) -> np.ndarray:
  """The bits (uint16 or uint8) of values rounded to bfloat16 or an fp8 kind: via float32, then to nearest even.
  NaN keeps its sign; fp8e4m3 has no inf, so it saturates at +-448 (PyTorch's float8_e4m3fn), fp8e5m2 overflows to inf."""
  with np.errstate(invalid="ignore", over="ignore"): f32 = np.asarray(values, dtype=np.float64).astype(np.float32)
  bits = f32.view(np.uint32).astype(np.uint64)
  if dtype == dtypes.bfloat16:
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(f32), ((bits >> 16) | 0x40).astype(np.uint16), rounded)
  return _float_to_fp8(f32, bits, dtype)


def _float_to_fp8(f32: np.ndarray, bits: np.ndarray, dtype: DType) -> np.ndarray:
  """The fp8 bits of float32 values, by the integer steps codegen/lowfloat.py's kernels take (see fp8_constants)."""
  c = fp8_constants(dtype)
  bits = bits.astype(np.int64)
  magnitude = bits & 0x7FFFFFFF
  rebiased = magnitude - c["rebias"]
  normal = (rebiased + c["half_unit"] - 1 + ((rebiased >> c["shift"]) & 1)) >> c["shift"]
  # a subnormal: adding 2^k, whose float32 unit in the last place is the smallest subnormal, rounds it for us
  with np.errstate(over="ignore", invalid="ignore"):
    summed = (np.abs(f32) + np.float32(c["magic"])).view(np.uint32).astype(np.int64)
  small = summed - np.int64(np.float32(c["magic"]).view(np.uint32))
  code = np.where(magnitude < c["min_normal"], small, np.minimum(normal, c["largest"]))
  code = np.where(magnitude > 0x7F800000, c["nan"], code)
  return (code | ((bits >> 24) & 0x80)).astype(np.uint8)


def fp8_constants(dtype: DType) -> dict:
  """The integer constants of float32 -> fp8 rounding: float32 bits are rebiased to the fp8 exponent (`rebias`),
  rounded to nearest even at `shift` bits, and capped at `largest` (e4m3: 448, as it saturates; e5m2: inf).
  Below `min_normal` (float32 bits of fp8's smallest normal) the value is a subnormal: float32 `magic` + |x| rounds
  it (`smallest`: the smallest subnormal). `nan` is the code of NaN (the sign bit is or-ed in), `max_finite` the
  largest finite code: codes above it are NaN (e4m3), or inf and NaN (e5m2)."""
  ebits, mbits, bias, saturates = FP8_FORMATS[dtype]
  shift = 23 - mbits
  top = 2 ** (ebits + mbits) - 1
  return {"shift": shift, "half_unit": 1 << (shift - 1), "rebias": (127 - bias) << 23, "min_normal": (128 - bias) << 23,
          "smallest": 2.0 ** (1 - bias - mbits), "magic": 2.0 ** (23 + 1 - bias - mbits), "nan": top,
          "largest": top - 1 if saturates else top - (2 ** mbits - 1), "max_finite": top - 1 if saturates else top - 2 ** mbits}


def bits_to_float(bits, dtype: DType) -> np.ndarray:
  """float32 values of bfloat16 or fp8 bits (exact: float32 holds every one of them)."""
  bits = np.asarray(bits)
  if dtype == dtypes.bfloat16: return (bits.astype(np.uint32) << 16).view(np.float32)
  ebits, mbits, bias, saturates = FP8_FORMATS[dtype]
  code = bits.astype(np.int64)
  field, mantissa = (code >> mbits) & (2 ** ebits - 1), code & (2 ** mbits - 1)
  scale = np.exp2(np.maximum(field, 1) - bias - mbits)
  magnitude = np.where(field > 0, mantissa + 2 ** mbits, mantissa) * scale
  top_field = field == 2 ** ebits - 1
  special = (top_field & (mantissa == 2 ** mbits - 1)) if saturates else top_field
  special_value = np.nan if saturates else np.where(mantissa == 0, np.inf, np.nan)  # e5m2: inf, or NaN
  magnitude = np.where(special, special_value, magnitude)
  return np.where(code & 0x80, -magnitude, magnitude).astype(np.float32)


def to_host(values, dtype: DType) -> np.ndarray:
  """values as a numpy array of dtype's bytes: bfloat16 and fp8 rounded to their bits, other dtypes cast."""
  if dtype in STORAGE_FLOATS: return float_to_bits(values, dtype)
  return np.asarray(values).astype(dtype.np, copy=False)


def largest_below(dtype: DType, value: float) -> float:
  """The largest value of the float dtype that is less than the Python float `value` (an exclusive upper bound, as
  uniform's high is: rounding low + u * (high - low) can reach high itself)."""
  with np.errstate(over="ignore"):
    if dtype not in STORAGE_FLOATS:
      held = np.array(value, np.float64).astype(dtype.np)
      return float(held if held < value else np.nextafter(held, dtype.np.type(-np.inf)))
    bits = int(float_to_bits(value, dtype))
  held = float(bits_to_float(bits, dtype))
  if held < value: return held
  if held != 0: bits = bits - 1 if held > 0 else bits + 1  # (sign and magnitude: one step toward -inf)
  else: bits = (1 << (8 * dtype.itemsize - 1)) | 1  # below zero: the negative value closest to it
  return float(bits_to_float(bits, dtype))


def check_fits(values, dtype: DType):
  """Raise, as PyTorch does, where Python numbers given for an int dtype don't fit it (they would wrap: 300 as uint8
  is 44). A negative int for an unsigned dtype wraps, as in PyTorch (-1 as uint8 is 255)."""
  if not dtypes.is_int(dtype): return
  arr = np.asarray(values)
  if arr.size == 0 or arr.dtype == np.bool_: return
  lo, hi = dtypes.min(dtype), dtypes.max(dtype)
  if dtypes.is_unsigned(dtype): lo = -hi - 1
  for v in (arr.min(), arr.max()):  # (NaN is out of every range: min and max give it where there is one)
    if not lo <= v <= hi: raise OverflowError(f"value {v} cannot be converted to {dtype} without overflow")


_LARGEST_FINITE: dict[DType, float] = {}


def check_float_fits(value, dtype: DType):
  """Raise, as PyTorch's full, fill_, masked_fill and clamp do, where a finite Python number is beyond a float
  dtype's largest finite value (1e6 as float16 became inf; 500 as fp8e4m3 448). inf and NaN pass; torch.tensor()
  and arithmetic give inf instead, and so does teeny there."""
  if not dtypes.is_float(dtype) or isinstance(value, bool) or not isinstance(value, (int, float)): return
  if isinstance(value, float) and not math.isfinite(value): return
  if dtype not in _LARGEST_FINITE: _LARGEST_FINITE[dtype] = largest_below(dtype, math.inf)
  if abs(value) > _LARGEST_FINITE[dtype]: raise OverflowError(f"value {value} cannot be converted to {dtype} without overflow")


def rounded_to(dtype: DType, value: float) -> float:
  """The Python float as the float dtype holds it (rounded to nearest; inf where it overflows)."""
  with np.errstate(over="ignore", invalid="ignore"):
    if dtype in STORAGE_FLOATS: return float(bits_to_float(float_to_bits(value, dtype), dtype))
    return float(np.array(value, np.float64).astype(dtype.np))


def holds_exactly(dtype: DType, value: float) -> bool:
  """Whether the float dtype holds the Python float as it is (no rounding, no overflow); NaN counts as held."""
  return math.isnan(value) or rounded_to(dtype, value) == value


def to_dtype(x) -> DType:
  """Accept a DType, a numpy dtype, or a name like 'float32'."""
  if isinstance(x, DType): return x
  if isinstance(x, str) and hasattr(dtypes, x) and isinstance(getattr(dtypes, x), DType): return getattr(dtypes, x)
  try: return dtypes.from_np(x)
  except TypeError: raise TypeError(f"unknown dtype {x!r}") from None


def normalize_const(value, dtype: DType):
  """Store a constant as the Python value its dtype can hold (ints wrap, floats round to the dtype's precision)."""
  if dtype == dtypes.bool: return bool(value)
  if dtypes.is_int(dtype):
    if isinstance(value, float): value = math.trunc(value) if math.isfinite(value) else 0
    return _wrap_int(int(value), dtype)
  if dtype in _FLOAT_FORMATS:
    # struct rounds a double to float32/float16 the way numpy does, 10x faster; out of range it raises where
    # numpy gives inf, so numpy decides those
    try: return struct.unpack(_FLOAT_FORMATS[dtype], struct.pack(_FLOAT_FORMATS[dtype], float(value)))[0]
    except (OverflowError, struct.error):
      with np.errstate(over="ignore"): return float(np.array(value, dtype=np.float64).astype(dtype.np))  # (inf: no warning)
  return value


_FLOAT_FORMATS = {dtypes.float16: "e", dtypes.float32: "f", dtypes.float64: "d"}


def _wrap_int(v: int, dtype: DType) -> int:
  bits = dtype.itemsize * 8
  v &= (1 << bits) - 1
  if not dtypes.is_unsigned(dtype) and v >= 1 << (bits - 1): v -= 1 << bits
  return v
