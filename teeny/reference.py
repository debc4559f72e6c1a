"""The reference interpreter: what each primitive op of the tensor-level UOp graph means, executed with numpy
(teenygrad's lazy.py idea). It is the executable form of DESIGN's list of primitives, the oracle the tests check
teeny's kernels against (tests/test_reference.py), and what VALIDATE=1 checks every realize against
(engine/validate.py).

`evaluate(root)` walks the graph once, sources first (iteratively: no recursion over graphs), and gives the value
of root as a numpy array of root's shape and dtype. Values are computed at the node's dtype, with teeny's
semantics where numpy's differ or are undefined:
- IDIV and MOD truncate like C (-7 // 2 is -3, -7 % 2 is -1); x // 0 and x % 0 give 0 and MIN // -1 wraps, as the
  LLVM backend's guarded division does (the tensor level never asks for those; see Tensor._int_div). A float
  MOD is C's fmod: exact, the dividend's sign, NaN for x % 0.
- MAX propagates a NaN from either side (exec_alu's rule: a if a > b or a is NaN, else b).
- LOG2 and SQRT of a negative number are NaN, RECIP of a zero is an infinity of the zero's sign.
- Integer arithmetic wraps at the dtype's width; CAST of a float to an integer truncates toward zero.
- A float16 sum or product accumulates in float32 and is rounded once (as the kernels compute half in float32).
- bfloat16 and the fp8 kinds are held as their bits (as their buffers are); an op reads them as float32 values,
  computes in float32 and rounds its result once to nearest even (teeny/dtype.py's host conversions, which the
  kernels match bit for bit). Movement, BITCAST and ASSIGN move the bits as they are.
The one-value form of these rules is uop.exec_alu (constant folding); the tests check the two agree.
"""
from __future__ import annotations
from typing import Callable
import numpy as np
from teeny.dtype import DType, dtypes, STORAGE_FLOATS, bits_to_float, float_to_bits
from teeny.uop import UOp, Ops
from teeny.runtime import collective
from teeny.schedule.items import allreduce_op


def evaluate(root: UOp, leaf: Callable[[UOp], np.ndarray | None] | None = None) -> np.ndarray:
  """The value of root's graph. leaf(node), when given, may give the value of any node (a result realized
  before, read back from its buffer): its sources are then not evaluated. A BUFFER node it doesn't give is read
  from the device (Buffer.numpy)."""
  values: dict[UOp, np.ndarray] = {}
  stack: list[tuple[UOp, bool]] = [(root, False)]
  while stack:
    node, sources_done = stack.pop()
    if node in values: continue
    if not sources_done:
      given = leaf(node) if leaf is not None else None
      if given is not None:
        values[node] = np.asarray(given).reshape(node.shape)
        continue
      stack.append((node, True))
      stack.extend((s, False) for s in _sources(node) if s not in values)
      continue
    values[node] = _evaluate_node(node, [values[s] for s in _sources(node)])
  return values[root]


# ops that move a storage float's bits as they are; every other op computes on its float32 values
_MOVES_BITS = {Ops.RESHAPE, Ops.PERMUTE, Ops.EXPAND, Ops.PAD, Ops.SHRINK, Ops.FLIP, Ops.BITCAST, Ops.ASSIGN, Ops.COPY,
               Ops.CONTIGUOUS, Ops.DETACH, Ops.MULTI}


def _as_values(node: UOp, src: list[np.ndarray]) -> list[np.ndarray]:
  """The sources' values: bfloat16 and fp8 bits read as float32, other dtypes as they are."""
  return [bits_to_float(v, s.dtype) if s.dtype in STORAGE_FLOATS else v for v, s in zip(src, _sources(node))]


def _sources(node: UOp) -> tuple[UOp, ...]:
  # a DETACH's further sources are there for a custom gradient rule only (see gradient.py)
  return node.src[:1] if node.op is Ops.DETACH else node.src


def _evaluate_node(node: UOp, src: list[np.ndarray]) -> np.ndarray:
  op = node.op
  computes = op not in _MOVES_BITS
  if computes: src = _as_values(node, src)
  with np.errstate(all="ignore"):  # overflow, 0/0 and log of negatives give what IEEE (or wrapping) gives
    if op in _UNARY: out = _UNARY[op](src[0])
    elif op in _BINARY: out = _BINARY[op](src[0], src[1])
    elif op in _MOVEMENT: out = _MOVEMENT[op](src[0], node.arg)
    elif op in _OTHER: out = _OTHER[op](node, src)
    else: raise NotImplementedError(f"the reference interpreter has no rule for {op} (not a tensor-level op)")
    if computes and node.dtype in STORAGE_FLOATS: return float_to_bits(out, node.dtype).reshape(np.shape(out))
    return np.asarray(out).astype(node.dtype.np, copy=False)  # (a float32 sum of float16 overflows here, to inf)


# ---- leaves ----

def _leaf(node: UOp, src: list[np.ndarray]) -> np.ndarray:
  if node.op is Ops.CONST: return np.array(node.arg, dtype=np.float32 if node.dtype in STORAGE_FLOATS else node.dtype.np)
  if node.op is Ops.RANGE: return np.arange(node.arg, dtype=node.dtype.np)  # the arange leaf 0, 1, ..., arg-1
  if node.op is Ops.BIND: return np.array(node.arg[3], dtype=node.dtype.np)  # a bound Variable: its value
  return node.arg.numpy()  # BUFFER: arg is the runtime Buffer


# ---- elementwise ----

def _trunc(x: np.ndarray) -> np.ndarray: return np.trunc(x) if x.dtype.kind == "f" else x


def _recip(x: np.ndarray) -> np.ndarray: return np.divide(np.ones_like(x), x)  # 1/+-0 is +-inf


def _maximum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  return np.where((a > b) | (a != a), a, b)  # a NaN on either side wins (np.maximum leaves -0.0/+0.0 to chance)


def _c_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Integer division truncating toward zero, x // 0 = 0, MIN // -1 = MIN (wrapped)."""
  safe = np.where(b == 0, np.ones_like(b), b)
  floor, rem = np.floor_divide(a, safe), np.remainder(a, safe)
  # floor and trunc differ by one where the division is inexact and the signs differ
  quotient = np.where((rem != 0) & ((a < 0) != (safe < 0)), floor + np.ones_like(floor), floor)
  return np.where(b == 0, np.zeros_like(quotient), quotient)


def _c_mod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """The remainder of _c_div: the dividend's sign, x % 0 = 0. Floats: C's fmod (exact; x % 0 is NaN)."""
  if a.dtype.kind == "f": return np.fmod(a, b)
  return np.where(b == 0, np.zeros_like(a), a - _c_div(a, b) * b)


_UNARY: dict[Ops, Callable] = {
  Ops.EXP2: np.exp2, Ops.LOG2: np.log2, Ops.SIN: np.sin, Ops.SQRT: np.sqrt, Ops.RECIP: _recip,
  Ops.NEG: np.negative, Ops.TRUNC: _trunc,
}
_BINARY: dict[Ops, Callable] = {
  Ops.ADD: np.add, Ops.MUL: np.multiply, Ops.MAX: _maximum, Ops.IDIV: _c_div, Ops.MOD: _c_mod, Ops.FDIV: np.divide,
  Ops.CMPLT: np.less, Ops.CMPNE: np.not_equal, Ops.AND: np.bitwise_and, Ops.OR: np.bitwise_or,
  Ops.XOR: np.bitwise_xor, Ops.SHL: np.left_shift, Ops.SHR: np.right_shift,
}


def _where(node: UOp, src: list[np.ndarray]) -> np.ndarray: return np.where(src[0], src[1], src[2])


def _cast(node: UOp, src: list[np.ndarray]) -> np.ndarray:
  return src[0].astype(np.float32 if node.dtype in STORAGE_FLOATS else node.dtype.np)  # (rounded to bits after)


def _bitcast(node: UOp, src: list[np.ndarray]) -> np.ndarray:
  return np.ascontiguousarray(src[0]).view(node.dtype.np).reshape(src[0].shape)


# ---- reduce ----

def _accumulator(dtype: DType):
  return np.float32 if dtype == dtypes.float16 or dtype in STORAGE_FLOATS else dtype.np


def _reduce(node: UOp, src: list[np.ndarray]) -> np.ndarray:
  op, axes = node.arg[:2]
  x, axes = src[0], tuple(axes)
  if op is Ops.ADD: return np.sum(x, axis=axes, keepdims=True, dtype=_accumulator(node.dtype))
  if op is Ops.MUL: return np.prod(x, axis=axes, keepdims=True, dtype=_accumulator(node.dtype))
  if op is Ops.MAX:
    lowest = -np.inf if dtypes.is_float(node.dtype) else dtypes.min(node.dtype)
    return np.max(x, axis=axes, keepdims=True, initial=lowest)  # (np.max propagates NaN, like MAX)
  raise NotImplementedError(f"the reference interpreter has no rule for a {op} reduce")


# ---- movement ----

def _pad(x: np.ndarray, padding, fill=0) -> np.ndarray: return np.pad(x, padding, constant_values=fill)


def _shrink(x: np.ndarray, bounds) -> np.ndarray: return x[tuple(slice(b, e) for b, e in bounds)]


_MOVEMENT: dict[Ops, Callable] = {
  Ops.RESHAPE: lambda x, shape: x.reshape(shape), Ops.PERMUTE: lambda x, order: x.transpose(order),
  Ops.EXPAND: lambda x, shape: np.broadcast_to(x, shape), Ops.PAD: _pad, Ops.SHRINK: _shrink,
  Ops.FLIP: lambda x, axes: np.flip(x, axes),
}


# ---- graph-level ----

def _assign(node: UOp, src: list[np.ndarray]) -> np.ndarray:
  """The target's contents after the write: value stored through the movement ops of the view written through
  (arg[1]). The view's elements are found by moving an array of element numbers the same way (padding: -1)."""
  target, value = src
  out = np.array(target, copy=True)
  element = np.arange(out.size).reshape(out.shape)
  for op, arg in node.arg[1]: element = _pad(element, arg, -1) if op is Ops.PAD else _MOVEMENT[op](element, arg)
  written = element >= 0
  out.reshape(-1)[element[written]] = np.broadcast_to(value, element.shape)[written]
  return out


def _same(node: UOp, src: list[np.ndarray]) -> np.ndarray: return src[0]  # CONTIGUOUS, DETACH: the values


def _copy(node: UOp, src: list[np.ndarray]) -> np.ndarray:
  """The values; an allreduce across processes (a COPY with an op: teeny.distributed) runs one of its own."""
  op = allreduce_op(node)
  return src[0] if op is None else collective.allreduce(src[0], op)


def _multi(node: UOp, src: list[np.ndarray]) -> np.ndarray:
  """A tensor on several devices (teeny/multi.py): its shards joined along the sharded axis, or the first copy."""
  axis = node.arg[1]
  return src[0] if axis is None else np.concatenate(src, axis=axis)


_OTHER: dict[Ops, Callable] = {
  Ops.CONST: _leaf, Ops.RANGE: _leaf, Ops.BIND: _leaf, Ops.BUFFER: _leaf, Ops.WHERE: _where, Ops.CAST: _cast, Ops.BITCAST: _bitcast,
  Ops.REDUCE_AXIS: _reduce, Ops.ASSIGN: _assign, Ops.COPY: _copy, Ops.CONTIGUOUS: _same, Ops.DETACH: _same,
  Ops.MULTI: _multi,
}


# ---- comparing a result with the reference ----

# how far a float result may be from the reference, relative to the largest magnitude in the result: kernels sum in
# another order, keep float16 in float32 between ops, and may use the device's own sin/exp2/log2
TOLERANCE = {dtypes.float16: 1e-2, dtypes.float32: 1e-4, dtypes.float64: 1e-9,
             # (a unit in the last place, relative: 8, 4 and 3 bits of significand)
             dtypes.bfloat16: 2 ** -7, dtypes.fp8e4m3: 2 ** -3, dtypes.fp8e5m2: 2 ** -2}


def mismatch(got: np.ndarray, want: np.ndarray, dtype: DType, rtol: float | None = None) -> str | None:
  """None when `got` matches the reference value `want` (integers and bools exactly; floats within rtol of the
  largest magnitude, NaN where NaN, infinities where they are), else a sentence about the worst difference."""
  got, want = np.asarray(got).reshape(want.shape), np.asarray(want)
  if got.size == 0: return None
  if dtype in STORAGE_FLOATS: got, want = bits_to_float(got, dtype), bits_to_float(want, dtype)  # (both are bits)
  if not dtypes.is_float(dtype):
    wrong = got != want
    if not wrong.any(): return None
    worst = np.unravel_index(np.argmax(wrong), want.shape)
    return _worst(got, want, worst, int(wrong.sum()))
  got64, want64 = got.astype(np.float64), want.astype(np.float64)
  rtol = TOLERANCE.get(dtype, 1e-4) if rtol is None else rtol
  finite = np.isfinite(want64)
  scale = max(1.0, float(np.abs(want64[finite]).max())) if finite.any() else 1.0
  with np.errstate(invalid="ignore"):
    error = np.where(finite, np.abs(got64 - want64) / (rtol * scale), 0.0)
    # a NaN or infinity must be matched exactly (an infinity by one of the same sign)
    exact_ok = (np.isnan(got64) & np.isnan(want64)) | (got64 == want64)
  error = np.where(np.isnan(error) | (~finite & ~exact_ok), np.inf, error)
  wrong = error > 1.0
  if not wrong.any(): return None
  return _worst(got, want, np.unravel_index(np.argmax(error), want.shape), int(wrong.sum()))


def _worst(got: np.ndarray, want: np.ndarray, index: tuple, count: int) -> str:
  at = tuple(int(i) for i in index)
  return (f"{count} of {want.size} elements differ; the worst at index {at}: got {got[index]!r}, the reference "
          f"gives {want[index]!r}")
