"""bfloat16 and fp8 in kernels: stored as their bits, computed in float32, on every device and in every renderer.

No device here has these types in its own code, so lowering removes them before a renderer sees the kernel:
after lower.py's narrow-float pass has moved their arithmetic to float32 (each op's result rounded back with a
CAST), `storage_floats_in_float32` rewrites what is left, with plain integer UOps that both renderers know:

- a LOAD reads the bits (uint16 for bfloat16, uint8 for fp8) and decodes them to the exact float32 value;
- a CAST to bfloat16/fp8 rounds a float32 to nearest even (bit arithmetic: add 0x7fff plus the kept lowest bit,
  then shift, for bfloat16; rebias, round and cap for fp8, whose subnormals a float32 add rounds) and decodes it
  again, so the value goes on as a float32 that the type can hold;
- a STORE encodes the float32 value to bits (or stores loaded bits unchanged);
- a CONST becomes the float32 of its rounded value, a BITCAST moves between the bits and the value.
Then `storage_float_buffers` makes the kernel's buffer arguments pointers to those unsigned ints. The rounding rules
are PyTorch's (float8_e4m3fn saturates at +-448 and has no inf; float8_e5m2 overflows to inf; NaN keeps its
sign), by the same integer steps as dtype.float_to_bits on the host. Kernels without these types are not touched.
"""
from __future__ import annotations
import struct
from teeny.dtype import dtypes, DType, PtrDType, STORAGE_FLOATS, float_to_bits, bits_to_float, fp8_constants
from teeny.uop import UOp, Ops, PatternMatcher, UPat, graph_rewrite

BITS = {dtypes.bfloat16: dtypes.uint16, dtypes.fp8e4m3: dtypes.uint8, dtypes.fp8e5m2: dtypes.uint8}
_U32, _F32 = dtypes.uint32, dtypes.float32


def touches_storage_floats(sink: UOp) -> bool:
  """Whether any node of the kernel has (or points to) bfloat16 or fp8: only such kernels are rewritten."""
  for u in sink.toposort():
    base = u.dtype.base if isinstance(u.dtype, PtrDType) else u.dtype
    if base in STORAGE_FLOATS: return True
  return False


# ---- the conversions, as UOps in uint32 arithmetic ----

def _shl(x: UOp, n: int) -> UOp: return x.alu(Ops.SHL, x.const_like(n))
def _shr(x: UOp, n: int) -> UOp: return x.alu(Ops.SHR, x.const_like(n))
def _and(x: UOp, mask: int) -> UOp: return x.alu(Ops.AND, x.const_like(mask))
def _or(x: UOp, y: UOp | int) -> UOp: return x.alu(Ops.OR, y if isinstance(y, UOp) else x.const_like(y))
def _bitcast(x: UOp, dtype: DType) -> UOp: return UOp(Ops.BITCAST, dtype, (x,))
def _above(x: UOp, limit: int) -> UOp: return x.const_like(limit).lt(x)  # limit < x (unsigned)


def decode(bits: UOp, dtype: DType) -> UOp:
  """The float32 value of bfloat16 or fp8 `bits` (exact)."""
  wide = bits.cast(_U32)
  if dtype == dtypes.bfloat16: return _bitcast(_shl(wide, 16), _F32)
  c = fp8_constants(dtype)
  magnitude = _and(wide, 0x7F)
  normal = _shl(magnitude, c["shift"]) + c["rebias"]
  # a subnormal (exponent field 0) is its mantissa, here the whole magnitude, times the smallest subnormal
  subnormal = _bitcast(magnitude.cast(_F32) * c["smallest"], _U32)
  value = magnitude.lt(1 << (23 - c["shift"])).where(subnormal, normal)
  # past the largest finite code: e4m3's NaN; e5m2's inf and NaNs (float32's all-ones exponent, same mantissa)
  value = _above(magnitude, c["max_finite"]).where(_or(_shl(magnitude, c["shift"]), 0x7F800000), value)
  return _bitcast(_or(value, _shl(_and(wide, 0x80), 24)), _F32)


def encode(x: UOp, dtype: DType) -> UOp:
  """The bits of float32 `x` rounded to bfloat16 or fp8, to nearest even."""
  bits = _bitcast(x, _U32)
  magnitude = _and(bits, 0x7FFFFFFF)
  is_nan = _above(magnitude, 0x7F800000)
  if dtype == dtypes.bfloat16:
    rounded = _shr(bits + 0x7FFF + _and(_shr(bits, 16), 1), 16)
    return is_nan.where(_or(_shr(bits, 16), 0x40), rounded).cast(BITS[dtype])  # NaN: kept, and quiet
  c = fp8_constants(dtype)
  rebiased = magnitude - c["rebias"]  # (wraps below the smallest normal, where `subnormal` is taken instead)
  normal = _shr(rebiased + (c["half_unit"] - 1) + _and(_shr(rebiased, c["shift"]), 1), c["shift"])
  normal = normal.lt(c["largest"]).where(normal, normal.const_like(c["largest"]))
  magic = UOp.const(_F32, c["magic"])  # its float32 unit in the last place is fp8's smallest subnormal
  subnormal = _bitcast(_bitcast(magnitude, _F32) + magic, _U32) - _f32_bits(c["magic"])
  code = magnitude.lt(c["min_normal"]).where(subnormal, normal)
  code = is_nan.where(code.const_like(c["nan"]), code)
  return _or(code, _and(_shr(bits, 24), 0x80)).cast(BITS[dtype])


def _f32_bits(value: float) -> int: return struct.unpack("<I", struct.pack("<f", value))[0]


# ---- the rewrite: ctx maps each float32 value that carries a bfloat16/fp8 value to (its bits, the dtype) ----

def _remember(ctx: dict, value: UOp, bits: UOp, dtype: DType) -> UOp:
  ctx[value] = (bits, dtype)
  return value


def _bits_of(ctx: dict, value: UOp, dtype: DType) -> UOp:
  """The bits of `value` as dtype: the bits it was decoded from when it is that dtype's, else encoded now."""
  known = ctx.get(value)
  return known[0] if known is not None and known[1] == dtype else encode(value, dtype)


def _load(ctx: dict, x: UOp) -> UOp | None:
  if x.dtype not in STORAGE_FLOATS: return None
  buf = x.src[0]
  if buf.dtype.base == _F32: return x.replace(dtype=_F32)  # local memory (a grouped reduce) holds float32
  bits_dt = BITS[x.dtype]
  src = x.src
  if len(src) == 4: src = src[:3] + (UOp.const(bits_dt, int(float_to_bits(src[3].arg, x.dtype))),)  # gated: 0's bits
  raw = UOp(Ops.LOAD, bits_dt, src)
  return _remember(ctx, decode(raw, x.dtype), raw, x.dtype)


def _store(ctx: dict, x: UOp) -> UOp | None:
  dtype = x.src[0].dtype.base
  if dtype not in STORAGE_FLOATS or x.src[2].dtype != _F32: return None
  return x.replace(src=x.src[:2] + (_bits_of(ctx, x.src[2], dtype),) + x.src[3:])


def _cast(ctx: dict, x: UOp) -> UOp | None:
  value = x.src[0]
  if x.dtype == value.dtype: return value  # a cast from bfloat16/fp8 to float32: already float32
  if x.dtype not in STORAGE_FLOATS: return None
  bits = encode(value.cast(_F32), x.dtype)  # from float64 or an int: through float32, like PyTorch
  return _remember(ctx, decode(bits, x.dtype), bits, x.dtype)


def _const(ctx: dict, x: UOp) -> UOp | None:
  if x.dtype not in STORAGE_FLOATS: return None
  bits = float_to_bits(x.arg, x.dtype)
  return _remember(ctx, UOp.const(_F32, float(bits_to_float(bits, x.dtype))), UOp.const(BITS[x.dtype], int(bits)), x.dtype)


def _bitcast_rule(ctx: dict, x: UOp) -> UOp | None:
  """A BITCAST to or from a bfloat16/fp8 value (a float32 here, whose bits ctx knows) as one of its bits: between
  ints of one width a cast keeps the bits, from or to another float (float16, a storage float) it must not."""
  value = x.src[0]
  if x.dtype in STORAGE_FLOATS:  # bits -> the value
    if value.dtype == _F32: bits = _known_bits(ctx, value, x.dtype)  # (another storage float: its bits)
    elif dtypes.is_float(value.dtype): bits = _bitcast(value, BITS[x.dtype])  # (float16)
    else: bits = value.cast(BITS[x.dtype])
    return _remember(ctx, decode(bits, x.dtype), bits, x.dtype)
  if value.dtype != _F32 or x.dtype.itemsize >= 4: return None
  bits = _known_bits(ctx, value, x.dtype)
  return _bitcast(bits, x.dtype) if dtypes.is_float(x.dtype) else bits.cast(x.dtype)


def _known_bits(ctx: dict, value: UOp, target) -> UOp:
  known = ctx.get(value)  # the value -> its bits: it was decoded from them, or rounded to its dtype here
  if known is None: raise ValueError(f"BITCAST to {target} of a float32 that is no bfloat16/fp8 value")
  return known[0].cast(BITS[target]) if target in BITS else known[0]


def _local(x: UOp) -> UOp | None:
  return x.replace(dtype=_F32.ptr()) if x.dtype.base in STORAGE_FLOATS else None


_in_float32 = PatternMatcher([
  (UPat(Ops.DEFINE_LOCAL, name="x"), _local),
  (UPat(Ops.LOAD, name="x"), _load),
  (UPat(Ops.STORE, name="x"), _store),
  (UPat(Ops.CAST, name="x"), _cast),
  (UPat(Ops.CONST, name="x"), _const),
  (UPat(Ops.BITCAST, name="x"), _bitcast_rule),
])


def storage_floats_in_float32(sink: UOp) -> UOp:
  """The kernel with every bfloat16/fp8 value a float32 and every access to their buffers one of bits."""
  return graph_rewrite(sink, _in_float32, {})


def _bits_buffer(x: UOp) -> UOp | None:
  return x.replace(dtype=BITS[x.dtype.base].ptr()) if x.dtype.base in STORAGE_FLOATS else None


_bits_buffers = PatternMatcher([(UPat(Ops.DEFINE_GLOBAL, name="x"), _bits_buffer)])


def storage_float_buffers(sink: UOp) -> UOp:
  """bfloat16/fp8 buffer arguments as pointers to their bits (run last: the STOREs above found their dtype there)."""
  return graph_rewrite(sink, _bits_buffers)
