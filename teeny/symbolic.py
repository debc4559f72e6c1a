"""Index math and algebra as rewrite rules: `symbolic` folds constants (with uop.exec_alu), applies algebraic
identities, and simplifies the integer index expressions views produce, using the value bounds UOps derive
(vmin/vmax). lower.py runs it on every kernel's index math; tests/test_uop.py and tests/test_view.py pin it down."""
from __future__ import annotations
import math
from teeny.dtype import DType, VecDType, dtypes
from teeny.uop import UOp, Ops, UPat, PatternMatcher, ALU, exec_alu


def _fold(x: UOp) -> UOp | None:
  if x.op in (Ops.IDIV, Ops.MOD) and x.src[1].arg == 0: return None  # leave a division by zero to the device
  if x.op in (Ops.SHL, Ops.SHR) and not 0 <= x.src[1].arg < x.dtype.itemsize * 8: return None
  return UOp.const(x.dtype, exec_alu(x.op, x.dtype, [s.arg for s in x.src]))


def _is_int(u: UOp) -> bool: return dtypes.is_int(u.dtype)


def _cast_value(c: UOp, dst: DType):
  """A constant cast to dst, as the devices convert at run time: a float to an int as the renderers' float_to_int
  does (out-of-range values wrap through a wider int; one that int can't hold, NaN and +-inf, is its minimum)."""
  value = c.arg
  if not (dtypes.is_float(c.dtype) and dtypes.is_int(dst)): return value
  def signed(bits: int) -> int: return math.trunc(value) if abs(value) < 2.0 ** (bits - 1) else -2 ** (bits - 1)
  if dst == dtypes.uint64:
    if value < 0: return signed(64)  # (UOp.const wraps it)
    return math.trunc(value) if value < 2.0 ** 64 else 2 ** 63
  if dst in (dtypes.int64, dtypes.int32): return signed(dst.itemsize * 8)
  return signed(64 if dst == dtypes.uint32 else 32)


def _split_sum(x: UOp) -> list[UOp]:
  """The terms of a chain of ADDs."""
  terms, stack = [], [x]
  while stack:
    t = stack.pop()
    if t.op is Ops.ADD: stack.extend(t.src)
    else: terms.append(t)
  return terms


def _coef(t: UOp) -> tuple[UOp, int]:
  """A term as (factor, integer coefficient)."""
  if t.op is Ops.MUL and t.src[1].op is Ops.CONST: return t.src[0], t.src[1].arg
  if t.op is Ops.CONST: return UOp.const(t.dtype, 1), t.arg
  return t, 1


def _div_mod_fold(x: UOp, c: UOp, is_mod: bool) -> UOp | None:
  """(a*c + b) // c -> a + b//c and (a*c + b) % c -> b % c when every term is non-negative; also drops
  x // c and x % c entirely when 0 <= x < c."""
  if c.arg <= 0 or x.vmin < 0: return None
  if x.vmax < c.arg: return UOp.const(x.dtype, 0) if not is_mod else x
  terms = _split_sum(x)
  if len(terms) == 1 and terms[0].op is not Ops.MUL: return None
  if any(t.vmin < 0 for t in terms): return None
  quotient, rest, changed = [], [], False
  for t in terms:
    factor, k = _coef(t)
    if k % c.arg == 0:
      quotient.append(factor * (k // c.arg) if k // c.arg != 1 else factor); changed = True
    elif k > c.arg and factor.vmin >= 0:  # split k = q*c + r keeps both parts non-negative
      q, r = divmod(k, c.arg)
      quotient.append(factor * q if q != 1 else factor); rest.append(factor * r if r != 1 else factor); changed = True
    else: rest.append(t)
  if not changed: return None
  rem = _sum(rest, x.dtype)
  if is_mod: return rem % c
  return _sum(quotient + [rem // c], x.dtype)


def _sum(terms: list[UOp], dtype: DType) -> UOp:
  out = None
  for t in terms: out = t if out is None else out + t
  return out if out is not None else UOp.const(dtype, 0)


# float ops whose result is NaN when any operand is (IEEE 754; MAX here is numpy's, where NaN wins), and comparisons
_NAN_PROPAGATING = (Ops.ADD, Ops.MUL, Ops.MAX, Ops.FDIV, Ops.MOD, Ops.EXP2, Ops.LOG2, Ops.SIN, Ops.SQRT, Ops.RECIP,
                    Ops.NEG, Ops.TRUNC, Ops.CMPLT, Ops.CMPNE)


def _nan_operand(x: UOp) -> UOp | None:
  """A float op with a constant NaN operand is that NaN, and a comparison with one is known (< is false, != is
  true). Folded here, so no constant NaN reaches the device compiler: PoCL 3.0 folds exp2 of a constant NaN to
  garbage (float64 exp(x + nan) returned 6.9e-310, float32 sigmoid(x + nan) -1.5e-18), also through a clamp whose
  comparison it could decide."""
  if isinstance(x.dtype, VecDType) or not any(_is_nan_const(s) for s in x.src): return None
  if x.op is Ops.CMPLT: return UOp.const(dtypes.bool, False)
  if x.op is Ops.CMPNE: return UOp.const(dtypes.bool, True)
  return UOp.const(x.dtype, math.nan) if dtypes.is_float(x.dtype) else None


def _is_nan_const(u: UOp) -> bool: return u.op is Ops.CONST and not u.src and isinstance(u.arg, float) and math.isnan(u.arg)


symbolic = PatternMatcher([
  # constant folding
  (UPat(_NAN_PROPAGATING, name="x"), _nan_operand),
  (UPat(tuple(ALU), src=UPat(Ops.CONST), name="x"), _fold),
  (UPat(Ops.CAST, src=(UPat(Ops.CONST, name="c"),), name="x"), lambda x, c: UOp.const(x.dtype, _cast_value(c, x.dtype))),
  # identities
  (UPat(Ops.ADD, src=[UPat.var("x"), UPat.cvar("c")]),
   # for floats only -0.0 is an identity: -0.0 + 0.0 is +0.0
   lambda x, c: x if c.arg == 0 and not (dtypes.is_float(x.dtype) and math.copysign(1, c.arg) > 0) else None),
  (UPat(Ops.MUL, src=[UPat.var("x"), UPat.cvar("c")]), lambda x, c: x if c.arg == 1 else None),
  (UPat(Ops.MUL, src=[UPat.var("x"), UPat.cvar("c")]), lambda x, c: UOp.const(x.dtype, 0) if c.arg == 0 and _is_int(x) else None),
  (UPat((Ops.IDIV, Ops.FDIV), src=(UPat.var("x"), UPat.cvar("c"))), lambda x, c: x if c.arg == 1 else None),
  (UPat(Ops.MOD, src=(UPat.var("x"), UPat.cvar("c"))), lambda x, c: UOp.const(x.dtype, 0) if c.arg == 1 and _is_int(x) else None),
  (UPat(Ops.NEG, src=(UPat(Ops.NEG, src=(UPat.var("x"),)),)), lambda x: x),
  (UPat(Ops.ADD, src=[UPat.var("x"), UPat(Ops.NEG, src=(UPat.var("y"),))]), lambda x, y: UOp.const(x.dtype, 0) if x is y and _is_int(x) else None),
  (UPat(Ops.WHERE, src=(UPat.cvar("c"), UPat.var("a"), UPat.var("b"))), lambda c, a, b: a if c.arg else b),
  (UPat(Ops.WHERE, src=(UPat.var(), UPat.var("a"), UPat.var("a"))), lambda a: a),
  (UPat(Ops.CAST, name="x"), lambda x: x.src[0] if x.src[0].dtype == x.dtype else None),
  (UPat(Ops.AND, dtype=dtypes.bool, src=[UPat.var("x"), UPat.cvar("c")]), lambda x, c: x if c.arg else c),
  (UPat(Ops.OR, dtype=dtypes.bool, src=[UPat.var("x"), UPat.cvar("c")]), lambda x, c: c if c.arg else x),
  (UPat(Ops.AND, dtype=dtypes.bool, src=(UPat.var("x"), UPat.var("x"))), lambda x: x),
  (UPat(Ops.MAX, src=(UPat.var("x"), UPat.var("x"))), lambda x: x),
  # collect constants: (x + c1) + c2 -> x + (c1+c2), (x * c1) * c2 -> x * (c1*c2), c + x -> x + c
  (UPat(Ops.ADD, src=(UPat(Ops.ADD, src=(UPat.var("x"), UPat.cvar("c1"))), UPat.cvar("c2"))),
   lambda x, c1, c2: x + UOp.const(x.dtype, exec_alu(Ops.ADD, x.dtype, [c1.arg, c2.arg])) if _is_int(x) else None),
  (UPat(Ops.MUL, src=(UPat(Ops.MUL, src=(UPat.var("x"), UPat.cvar("c1"))), UPat.cvar("c2"))),
   lambda x, c1, c2: x * UOp.const(x.dtype, exec_alu(Ops.MUL, x.dtype, [c1.arg, c2.arg])) if _is_int(x) else None),
  (UPat((Ops.ADD, Ops.MUL), src=(UPat.cvar("c"), UPat.var("x")), name="e"),
   lambda e, c, x: e.replace(src=(x, c)) if x.op is not Ops.CONST and _is_int(x) else None),
  # (x + c1) * c2 -> x*c2 + c1*c2 keeps index sums flat so div/mod folding can see the terms
  (UPat(Ops.MUL, src=(UPat(Ops.ADD, src=(UPat.var("x"), UPat.cvar("c1"))), UPat.cvar("c2"))),
   lambda x, c1, c2: x * c2 + UOp.const(x.dtype, c1.arg * c2.arg) if _is_int(x) and x.vmin >= 0 and c2.arg >= 0 else None),
  # index math with known bounds
  (UPat(Ops.IDIV, src=(UPat.var("x"), UPat.cvar("c"))), lambda x, c: _div_mod_fold(x, c, False) if _is_int(x) else None),
  (UPat(Ops.MOD, src=(UPat.var("x"), UPat.cvar("c"))), lambda x, c: _div_mod_fold(x, c, True) if _is_int(x) else None),
  (UPat(Ops.CMPLT, src=(UPat.var("x"), UPat.var("y")), name="cmp"),
   lambda cmp, x, y: UOp.const(dtypes.bool, cmp.vmin) if _is_int(x) and cmp.vmin == cmp.vmax else None),
])


# ---- reading a masked value ----

def where_conditions(value: UOp) -> tuple[list[UOp], UOp]:
  """value as where(c1, where(c2, ..., 0), 0): the conditions (ANDs split into their terms) and the innermost value."""
  conds = []
  while value.op is Ops.WHERE and value.src[2].op is Ops.CONST and value.src[2].arg == 0:
    conds.append(value.src[0])
    value = value.src[1]
  terms = []
  while conds:
    c = conds.pop()
    if c.op is Ops.AND and c.dtype == dtypes.bool: conds.extend(c.src)
    else: terms.append(c)
  return terms, value
