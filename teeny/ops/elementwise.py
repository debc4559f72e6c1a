"""Elementwise math as a Tensor mixin: the primitive exp2 and log2, pow, rounding, the NaN and infinity tests, and
the logical and bitwise functions (exp, log, sqrt, trigonometry, erf: transcendental.py; activations:
activation.py). All
of it is composed from the primitive ALU ops through Tensor's protocol (_alu, _new, _binop_operands, _constant);
branches are picked with where() and kept finite, so that gradients through them stay finite. The gradient of
pow is a rule of its own (_pow_gradient, in teeny/tensor.py)."""
from __future__ import annotations
import math
from typing import TYPE_CHECKING
import numpy as np
from teeny.dtype import dtypes, NARROW_FLOATS, check_fits, check_float_fits, promote_scalar, promote_operands, rounded_to, normalize_const
from teeny.uop import UOp, Ops
from teeny.ops.constants import _const_at
from teeny.ops.args import ArgumentError, _broadcast_shape, _int_arg
from teeny.gradient import tensor_rules
from teeny.ops.pytorch import _has_float64
from teeny.variable import is_symbolic, check_fits_dtype
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self


_SAME_SIZE_INT = {1: dtypes.int8, 2: dtypes.int16, 4: dtypes.int32, 8: dtypes.int64}  # to read a float's sign bit (signbit)



def _bound(tinygrad_name, pytorch_name, which: str):
  """A clamp bound given as min_/max_ (tinygrad) or min/max (PyTorch), not both: a number, a tensor or None."""
  if pytorch_name is not None and tinygrad_name is not None: raise TypeError(f"clamp got {which}_ and {which}=: give the bound once")
  bound = tinygrad_name if pytorch_name is None else pytorch_name
  if bound is not None and not isinstance(bound, (int, float, np.integer, np.floating, ElementwiseOps)):
    raise TypeError(f"clamp's {which} must be a number or a Tensor, got {type(bound).__name__}")
  return bound


def _past_bound(past, bound):
  """Where clamp takes the bound: where x is past it, and everywhere it is NaN (a NaN never compares true)."""
  if isinstance(bound, float) and math.isnan(bound): return past.full_like(True)
  return past | bound.isnan() if hasattr(bound, "isnan") else past


class ElementwiseOps:
  """Tensor's unary math, pow, and logical and bitwise functions."""
  def where(self, x, y) -> Self:
    """self is the condition: x where true, y where false (numpy broadcasting, PyTorch promotion), tinygrad's and
    torch.where's order. PyTorch's method form x.where(condition, y) (x where condition, else y) where the two
    differ: self isn't bool and x is a bool tensor (tinygrad's reading, self != 0 as the condition, picked x's
    bools, which is rarely meant: [129.5, -3].where([True, False], 0.0) was [1, 0], not [129.5, 0])."""
    if self.dtype != dtypes.bool and isinstance(x, type(self)) and x.dtype == dtypes.bool: return x.where(self, y)
    cond = self.cast(dtypes.bool)
    if isinstance(x, type(self)): xt, yt = x._binop_operands(y)
    elif isinstance(y, type(self)): yt, xt = y._binop_operands(x)
    else:
      x, y = (v.item() if isinstance(v, np.generic) else v for v in (x, y))  # (numpy scalars count as numbers, as in PyTorch)
      dt = dtypes.from_py([x, y]) if not isinstance(x, bool) or not isinstance(y, bool) else dtypes.bool
      xt, yt = (type(self)(UOp.const(dt, v), device=self.device) for v in (x, y))
    for number in (x, y):  # (300 beside a uint8 tensor would wrap to 44: PyTorch raises; check_fits passes bools and floats)
      if isinstance(number, int): check_fits(number, xt.dtype)
      elif is_symbolic(number): check_fits_dtype(number, xt.dtype)  # (over its declared range)
    if xt.device != cond.device: raise RuntimeError(f"tensors are on different devices: {cond.device} and {xt.device}")
    shape = _broadcast_shape(cond.shape, xt.shape, yt.shape)
    return cond.expand(shape)._alu(Ops.WHERE, xt.expand(shape), yt.expand(shape))
  # unary math (ints compute in the default float, like PyTorch)
  def _float(self) -> Self: return self if dtypes.is_float(self.dtype) else self.cast(dtypes.default_float)
  def _in_float32(self, fn) -> Self:
    """Composed math on float16 runs in float32 and rounds once at the end (like PyTorch and numpy)."""
    x = self._float()
    return fn(x.float()).cast(x.dtype) if x.dtype in NARROW_FLOATS else fn(x)
  def _in_float64(self, fn) -> Self:
    """fn(self) computed in float64 and rounded back once where self is float32 and its device has float64
    (PyTorch's CPU kernels accumulate float32 in float64); fn(self) itself otherwise."""
    return fn(self.cast(dtypes.float64)).cast(self.dtype) if self._widens_to_float64() else fn(self)
  def _widens_to_float64(self) -> bool:
    """Whether float32 math on self may run in float64 (the device has it): _in_float64, cos's reduction."""
    return self.dtype == dtypes.float32 and _has_float64(self.device)
  def exp2(self) -> Self:
    """2 ** x, like torch.exp2 (ints give the default float; half floats in float32, gradients too)."""
    return self._in_float32(lambda x: x._alu(Ops.EXP2))
  def log2(self) -> Self:
    """Base-2 logarithm, like torch.log2: -inf at 0, NaN below (ints give the default float; half floats in float32,
    so the second derivative -1 / (x^2 ln 2) doesn't overflow float16)."""
    return self._in_float32(lambda x: x._alu(Ops.LOG2))
  def abs(self) -> Self:
    """|x|, like torch.abs: the same dtype (bool and unsigned ints unchanged), abs(-0.0) is +0.0 and the
    gradient at 0 is 0."""
    if self.dtype == dtypes.bool or dtypes.is_unsigned(self.dtype): return self._copy_result(self)  # (a copy, as PyTorch's)
    if not dtypes.is_float(self.dtype): return (self < 0).where(-self, self)
    # max(x, -x), whose gradient at 0 is 0 (torch's); but a device's max may answer -0.0 for max(0.0, -0.0)
    # (PoCL does), so a zero is +0.0 by name: copysign and 1/x see the sign of a zero
    return (self == 0).where(0.0, self.maximum(-self))
  def trunc(self) -> Self:
    """Round toward zero, like torch.trunc; int and bool tensors come back unchanged (as copies, as PyTorch's: a
    write into the result never reaches self; so for floor, ceil, round, sign, abs and x ** 1)."""
    return self._alu(Ops.TRUNC) if dtypes.is_float(self.dtype) else self._copy_result(self)
  def floor(self) -> Self:
    """Round down, like torch.floor; int and bool tensors come back unchanged."""
    if not dtypes.is_float(self.dtype): return self._copy_result(self)
    t = self.trunc()
    return (self < t).where(t - 1, t)
  def ceil(self) -> Self:
    """Round up, like torch.ceil; int and bool tensors come back unchanged."""
    if not dtypes.is_float(self.dtype): return self._copy_result(self)
    t = self.trunc()
    return (self > t).where(t + 1, t)
  def round(self, decimals: int = 0) -> Self:
    """Round half to even, like numpy and torch.round; a zero result keeps x's sign (round(-0.4) is -0.0). With
    decimals, PyTorch's: x * 10^d rounded, over 10^d (d < 0: x / 10^-d rounded, times 10^-d); half floats in
    float32, rounded once."""
    if decimals:
      decimals = _int_arg(decimals, "round's decimals")
      if not dtypes.is_float(self.dtype): raise TypeError(f"round with decimals takes a float tensor, got {self.dtype} (as PyTorch)")
      scale = 10.0 ** abs(decimals)
      if decimals > 0: return self._in_float32(lambda x: (x * scale).round() / scale)
      return self._in_float32(lambda x: (x / scale).round() * scale)
    if not dtypes.is_float(self.dtype): return self._copy_result(self)
    f = self.floor()
    d = self - f  # exact: the fractional part of a float is a float
    f_even = (f * 0.5).floor() * 2 == f
    out = (d > 0.5).where(f + 1, (d < 0.5).where(f, f_even.where(f, f + 1)))
    return (out == 0).where(self.trunc(), out)  # (|x| <= 0.5 there: trunc is the zero of x's sign)
  def square(self) -> Self:
    """x * x in self's dtype, like torch.square."""
    return self * self
  def sign(self) -> Self:
    """-1, 0 or 1 in self's dtype, like torch.sign: 0 for NaN as in PyTorch (numpy gives NaN), and a gradient of 0
    everywhere; a bool tensor is unchanged."""
    if self.dtype == dtypes.bool: return self._copy_result(self)
    return (self > 0).cast(self.dtype) - (self < 0).cast(self.dtype)
  def clip(self, min_=None, max_=None, *, min=None, max=None) -> Self:  # (min=, max=: PyTorch's names)
    """Clamp into [min_, max_] like torch.clamp (x.clamp(min=0, max=1) too; one bound may be None): the gradient passes where
    min_ <= x <= max_ (the bounds included), tensor bounds get it where x is beyond them, NaN stays NaN with no
    gradient, min_ > max_ gives max_, and a NaN bound gives NaN where it applies (PyTorch's rule)."""
    min_, max_ = _bound(min_, min, "min"), _bound(max_, max, "max")
    if min_ is None and max_ is None: raise ArgumentError("clip needs min or max (or both), got neither")
    dt = self.dtype  # promoted with the bounds, as PyTorch's: a float bound makes an int tensor float (uint8.clamp(-1, 100.0))
    for bound in (min_, max_):
      if isinstance(bound, (int, float)): dt = promote_scalar(dt, bound)
      elif bound is not None: dt = promote_operands(dt, self.ndim, bound.dtype, bound.ndim)
    for bound in (min_, max_):  # an int bound an int tensor can't hold would wrap (max=300 of uint8 clipped at 44): PyTorch raises
      if isinstance(bound, int): check_fits(bound, dt)  # (it passes float tensors and bools)
      check_float_fits(bound, dt)  # (70000 for float16 made an inf bound)
    x = self.cast(dt)
    x = x.isnan().where(math.nan, x) if dtypes.is_float(dt) else x
    if min_ is not None: x = _past_bound(x < min_, min_).where(min_, x)
    return x if max_ is None else _past_bound(x > max_, max_).where(max_, x)
  clamp = clip
  def lerp(self, end, weight) -> Self:
    """self + weight * (end - self), broadcast and promoted like the operators, computed as torch.lerp does: from
    the end side, end - (end - self) * (1 - weight), where |weight| >= 0.5 (so weight 1 gives end, not a
    cancellation: lerp(1e8, 1, 1) was 0), and half floats in float32, rounded once."""
    start, stop = self._binop_operands(end)
    dt = start.dtype
    narrow = dt in NARROW_FLOATS and (not isinstance(weight, type(self)) or weight.dtype == dt)
    if narrow: start, stop, weight = start.float(), stop.float(), weight.float() if isinstance(weight, type(self)) else weight
    # the gradients are PyTorch's, (1 - w) and w (and end - start for a weight tensor), by a rule: through gap the
    # start's added inf - inf = NaN for an infinite incoming gradient
    if isinstance(weight, type(self)):
      shape = _broadcast_shape(start.shape, weight.shape)
      start, stop, weight = start.expand(shape), stop.expand(shape), weight.expand(shape)
      gap = stop - start
      out = start._exact_gradient((weight.abs() < 0.5).where(start + weight * gap, stop - gap * (1 - weight)), "lerp", stop, weight)
    else:
      gap = stop - start
      out = start._exact_gradient(start + weight * gap if abs(weight) < 0.5 else stop - gap * (1 - weight), ("lerp", weight), stop)
    return out.cast(dt) if narrow else out
  def isnan(self) -> Self:
    """A bool tensor, True where self is NaN (never for int and bool tensors), like torch.isnan."""
    return self != self if dtypes.is_float(self.dtype) else self.full_like(False, dtype=dtypes.bool)
  def isinf(self, detect_positive: bool = True, detect_negative: bool = True) -> Self:
    """A bool tensor, True where self is +inf or -inf (detect_positive / detect_negative=False leave one out,
    tinygrad's arguments); never for int and bool tensors."""
    if not dtypes.is_float(self.dtype): return self.full_like(False, dtype=dtypes.bool)
    pos = (self == math.inf) if detect_positive else self.full_like(False, dtype=dtypes.bool)
    return pos | (self == -math.inf) if detect_negative else pos
  def isfinite(self) -> Self:
    """A bool tensor, True where self is neither infinite nor NaN (always for ints), like torch.isfinite."""
    return (self - self) == 0 if dtypes.is_float(self.dtype) else self.full_like(True, dtype=dtypes.bool)
  def isclose(self, other, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> Self:
    """|self - other| <= atol + rtol * |other| elementwise, like torch.isclose: equal infinities are close, NaN is
    close to NaN only with equal_nan."""
    for name, tolerance in (("rtol", rtol), ("atol", atol)):  # (a negative one made nothing close, silently)
      if tolerance < 0: raise ArgumentError(f"isclose: {name} must be greater than or equal to zero, got {tolerance}")
    a, b = self._binop_operands(other)
    if not dtypes.is_float(a.dtype):
      if not (rtol or atol): return a == b
      a, b = a._float(), b._float()  # (as PyTorch: int8 -128 - 127 wraps to 1, which is "close")
    within = (a - b).abs() <= atol + rtol * b.abs()
    close = (a == b) | (within & a.isfinite() & b.isfinite())  # (an infinity is close only to itself)
    return (close | (a.isnan() & b.isnan())) if equal_nan else close
  def allclose(self, other, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> bool:
    """Whether every element isclose (a Python bool: it asks for the data), like torch.allclose."""
    return bool(self.isclose(other, rtol, atol, equal_nan).all().item())
  def copysign(self, other) -> Self:
    """|self| with the sign of other (its sign bit: -0.0 counts as negative), like torch.copysign: a float result
    in the dtype the operators promote the two to."""
    a, b = self._float_operands(other)
    magnitude = a.abs()
    return b.signbit().where(-magnitude, magnitude)
  def _float_operands(self, other) -> tuple[Self, Self]:
    """self and other promoted as the operators promote them, then ints and bools made the default float: a
    binary float function's operands (an int tensor with a float64 one computes in float64, as in PyTorch)."""
    a, b = self._binop_operands(other)
    return a._float(), b._float()
  def fmod(self, other) -> Self:
    """The remainder with the dividend's sign, like torch.fmod and C's fmod (exact for floats: x - trunc(x / y) * y
    with no rounding; fmod(x, 0) is NaN). Integers truncate, and x fmod 0 is 0 (like numpy)."""
    a, b = self._binop_operands(other)
    if a.dtype == dtypes.bool: raise TypeError("fmod of bool tensors is not supported")
    return a._c_mod(b)
  def _int_div(self, b: Self) -> Self:
    """C-style truncating division that never traps: x // 0 gives 0 (like numpy) and MIN // -1 wraps."""
    zero = b == 0
    if dtypes.is_unsigned(self.dtype): return zero.where(0, self._alu(Ops.IDIV, zero.where(1, b))).cast(self.dtype)
    minus_one = b == -1  # MIN / -1 overflows and traps on x86: -x gives the wrapped answer instead
    q = self._alu(Ops.IDIV, (zero | minus_one).where(1, b).cast(b.dtype))
    return zero.where(0, minus_one.where(-self, q)).cast(self.dtype)
  def _int_mod(self, b: Self) -> Self:
    """C-style remainder (sign of the dividend) that never traps: x % 0 and x % -1 give 0."""
    unsafe = (b == 0) if dtypes.is_unsigned(self.dtype) else (b == 0) | (b == -1)
    return unsafe.where(0, self._alu(Ops.MOD, unsafe.where(1, b).cast(b.dtype))).cast(self.dtype)
  def floordiv(self, other, reverse=False) -> Self:
    """Floor division, like Python's // and torch.floor_divide: the quotient rounds toward -inf (-7 // 2 == -4,
    7 // -2 == -4). Integers: x // 0 is 0 (like numpy; PyTorch raises) and MIN // -1 wraps to MIN. Floats: exact
    (_float_floordiv below; floor(a / b) would round 1.0 // 0.1 up to 10). A half float tensor and a number it can't
    hold: in float32, as for * and / (tensor.py's _scaled_in_float32)."""
    if not reverse and self._scaled_in_float32(other): return self.float().floordiv(other, reverse).cast(self.dtype)
    a, b = self._binop_operands(other, reverse)
    if dtypes.is_float(a.dtype): return a._float_floordiv(b)
    if a.dtype == dtypes.bool: raise TypeError("floor division of bool tensors is not supported")
    q = a._int_div(b)
    if dtypes.is_unsigned(a.dtype): return q
    r = a._int_mod(b)
    return q - ((r != 0) & ((r < 0) != (b < 0))).cast(q.dtype)
  def mod(self, other, reverse=False) -> Self:
    """Remainder with the sign of the divisor, like Python's % and torch.remainder (-7 % 2 == 1, 7 % -2 == -1), so
    (a // b) * b + a % b == a. Integers: x % 0 is 0 (like numpy). Floats: C's exact fmod, moved to b's sign."""
    a, b = self._binop_operands(other, reverse)
    if a.dtype == dtypes.bool: raise TypeError("modulo of bool tensors is not supported")
    r = a._c_mod(b)
    if dtypes.is_unsigned(a.dtype): return r
    return ((r != 0) & ((r < 0) != (b < 0))).where(r + b, r).cast(r.dtype)
  def _c_mod(self, b: Self) -> Self:
    """C's remainder of operands of one dtype and shape (the dividend's sign): fmod for floats, the truncating
    integer remainder (that never traps) for ints. fmod and % (which moves it to the divisor's sign) build on it."""
    return self._alu(Ops.MOD, b) if dtypes.is_float(self.dtype) else self._int_mod(b)
  def _float_floordiv(self, b: Self) -> Self:
    """self // b for floats of one dtype and shape, exact like Python's float // and torch.floor_divide: the
    quotient (self - fmod(self, b)) / b of the exact remainder, an integer up to rounding, moved down where the
    remainder's sign differs from b's and rounded to the nearest integer. Its gradient is 0, as PyTorch's (the
    result still requires grad: realized, it is no constant that backward() can't reach a leaf through)."""
    return self._exact_gradient(_floor_quotient(self.detach(), b.detach()), "piecewise_constant", b)
  def logaddexp(self, other) -> Self:
    """log(exp(self) + exp(other)) without overflow, like torch.logaddexp: max + log1p(exp(-|difference|)) (a far
    smaller term still counts: logaddexp(-20, 0) is 2.1e-9, not 0), and the infinity itself where both are the same
    infinity. Its gradients are PyTorch's, 1 / (1 + e^(other - self)) and the mirror, by a rule: through |a - b|
    the second derivative was 0 where a == b."""
    a, b = self._float_operands(other)
    high, gap = a.maximum(b), (a - b).abs()
    out = high + (-gap).exp().log1p()
    return a._exact_gradient(((a == b) & a.isinf()).where(a, out), ("logaddexp", "exp"), b)

  def __pos__(self) -> Self:
    """+x is x itself, as in PyTorch (which refuses it for bool tensors)."""
    if self.dtype == dtypes.bool: raise TypeError("the unary + of a bool tensor is not supported (as in PyTorch)")
    return self

  # pow
  def __pow__(self, exponent) -> Self: return self.pow(exponent)
  def __rpow__(self, base) -> Self:
    if isinstance(base, type(self)): return base.pow(self)
    if isinstance(base, np.generic): base = base.item()
    # a number in the dtype it promotes self to, as PyTorch's (3 ** a 0-d int8 tensor is int8, not the int default),
    # wrapped into an int dtype as the other operators wrap it (300 ** uint8 x is 44 ** x, as PyTorch's)
    dt = promote_scalar(self.dtype, base) if isinstance(base, (int, float)) else None
    if dt is not None and dtypes.is_int(dt) and isinstance(base, int): base = normalize_const(base, dt)
    return type(self)(base, dtype=dt, device=self.device).pow(self)
  def pow(self, exponent) -> Self:
    """x ** y like torch.pow. Integers to integer powers stay integers (exact, wrapping like PyTorch; a negative
    Python int power of an integer tensor is an error, as in PyTorch); a float on either side makes a float.
    Small integer powers of floats are repeated multiplies; others are exp2(y * log2|x|) with IEEE pow's signs and
    special cases, and PyTorch's gradients: y * x^(y-1) for x (0 where y = 0) and x^y * log(x) for y (0 where
    x = 0 and y >= 0), also at x = 0, where they are 0, 1 or inf."""
    if isinstance(exponent, np.generic): exponent = exponent.item()
    if self.dtype == dtypes.bool and not isinstance(exponent, type(self)): return self.cast(dtypes.default_int).pow(exponent)
    if isinstance(exponent, (int, float)) and not isinstance(exponent, bool): return self._copy_result(self._pow_scalar(exponent))  # (x ** 1)
    a, b = self._binop_operands(exponent)
    if a.dtype == dtypes.bool: a, b = a.cast(dtypes.default_int), b.cast(dtypes.default_int)
    if not dtypes.is_float(a.dtype): return a._int_pow(b)
    if a.dtype in NARROW_FLOATS: return a.float()._float_pow(b.float()).cast(a.dtype)
    return a._float_pow(b)
  def _pow_scalar(self, exponent: int | float, roots: bool = True) -> Self:
    if not dtypes.is_float(self.dtype):
      if isinstance(exponent, float): return self._float()._pow_scalar(exponent)  # int ** 2.0 is a float, like torch
      if exponent < 0: raise RuntimeError(f"integers to negative integer powers are not allowed ({self.dtype} tensor ** {exponent}), as in PyTorch")
      return self._int_pow_scalar(exponent)
    if exponent == 0:
      # 1 everywhere (NaN ** 0 too, like IEEE pow), with gradient 0: the where keeps x in the graph, so backward()
      # reaches it and gives zeros like PyTorch (a bare constant would leave x out)
      ones = self.ones_like()
      return self.isnan().where(ones, ones)
    # half floats: the power in float32, rounded once (as PyTorch's; a bfloat16 1.03125 ** 4 rounded at each multiply
    # was 1.125, not 1.1328125), of the exponent as the half float holds it, as PyTorch's (float16 x ** 1e-8 is 1,
    # x ** 2049 is x ** 2048); one it can't hold raises, as in PyTorch
    if self.dtype in NARROW_FLOATS:
      held = rounded_to(self.dtype, float(exponent))
      if math.isinf(held) and not math.isinf(exponent):
        raise OverflowError(f"the exponent {exponent} cannot be converted to {self.dtype} without overflow (as in PyTorch)")
      return self.float()._pow_scalar(held, roots=self.dtype != dtypes.float16).cast(self.dtype)
    if exponent in (1, 2, 3, -1, -2):
      # multiplies for the powers PyTorch multiplies out (others are its powf, within 0.6 ulp: x * ... * x rounds at
      # every multiply, 3.4 ulps for x ** 7). (1/x)^n for negative n, not 1/x^n: its gradient -n (1/x)^(n+1) is
      # -inf at x = 0 like PyTorch's, where 1/x^n's would be -inf * 0 = nan
      base = self if exponent > 0 else self.reciprocal()
      out = base
      for _ in range(int(abs(exponent)) - 1): out = out * base
      return out
    # like PyTorch, which takes sqrt and rsqrt for these in float32 and float64 (so (-0.0) ** 0.5 is -0.0 and
    # (-inf) ** 0.5 is nan) and bfloat16; float16 gets IEEE pow's +0.0 and inf
    if exponent == 0.5 and roots: return self.sqrt()
    e = self._constant(_const_at(self.dtype, float(exponent), self.shape), self.device)
    if exponent == -0.5 and roots: return self._float_pow(e, self.rsqrt())
    # whether it is an integer, and odd, from the number itself (as a double, like PyTorch): float32 rounds 2**31 + 3
    # to the even 2**31, and 2**31 + 0.5 to an integer (an infinity counts as an even integer, as e.trunc() == e)
    whole, infinite = float(exponent).is_integer(), math.isinf(exponent)
    return self._float_pow(e, parity=(whole or infinite, whole and float(exponent) % 2 == 1))
  def _int_pow_scalar(self, n: int) -> Self:
    """Integer x ** n (n >= 0) by repeated squaring: exact, wrapping on overflow like PyTorch."""
    out, square = None, self
    while n:
      if n & 1: out = square if out is None else out * square
      n >>= 1
      if n: square = square * square
    return self.ones_like() if out is None else out
  def _int_pow(self, e: Self) -> Self:
    """Integer x ** e for an integer tensor e (same dtype and shape), by squaring once per bit of e: exact and
    wrapping like PyTorch. A negative e gives what PyTorch's integer pow gives: 1 / x^-e truncated (1 for x = 1,
    +-1 for x = -1, else 0)."""
    bits = e.dtype.itemsize * 8 - (0 if dtypes.is_unsigned(e.dtype) else 1)
    out, square = self.ones_like(), self
    for i in range(bits):
      out = ((e >> i) & 1).cast(dtypes.bool).where(out * square, out)
      if i < bits - 1: square = square * square
    if dtypes.is_unsigned(e.dtype): return out
    odd = (e & 1).cast(dtypes.bool)
    below_one = (self == 1).where(1, (self == -1).where(odd.where(-1, 1), 0)).cast(self.dtype)
    return (e < 0).where(below_one, out)
  def _float_pow(self, e: Self, value: Self | None = None, parity: tuple[bool, bool] | None = None) -> Self:
    """x ** e for float x and e of one dtype (float32 or float64) and shape: the value composed from exp2 and log2
    (or the one given), its gradient by the "pow" rule (_pow_gradient, below) through a DETACH node (see gradient.py).
    parity: whether a number exponent is an integer and whether it is odd (else read from e)."""
    if value is not None: return self._new(UOp(Ops.DETACH, self.dtype, (value.uop, self.uop, e.uop), "pow"), e)
    x = self
    magnitude = _pow_magnitude(x, e)
    if parity is None:
      is_int = e.trunc() == e
      half = e * 0.5
      odd = is_int & (half.trunc() != half)
    else: is_int, odd = (x.full_like(flag, dtype=dtypes.bool) for flag in parity)
    sign_bit = (x < 0) | (x.reciprocal() < 0)  # -0.0 too: (-0.0) ** -1 is -inf
    value = (odd & sign_bit).where(-magnitude, magnitude)
    # a negative base is real only for integer exponents; (-inf) ** 2.5 is inf (IEEE pow), the magnitude
    value = ((x < 0) & is_int.logical_not() & (x != -math.inf)).where(math.nan, value)
    # IEEE pow: x ** 0 and 1 ** y are 1 whatever the other is (NaN too), and so is (-1) ** +-inf
    value = ((e == 0) | (x == 1) | ((x == -1) & e.isinf())).where(1.0, value)
    return self._new(UOp(Ops.DETACH, self.dtype, (value.uop, x.uop, e.uop), "pow"), e)

  # logical and bitwise functions
  def _logical(self, other) -> tuple[Self, Self]:
    other = other if isinstance(other, type(self)) else type(self)(bool(other), device=self.device)
    return self.cast(dtypes.bool), other.cast(dtypes.bool)
  def logical_and(self, other) -> Self:
    """A bool tensor: self and other, each nonzero as True (other may be a Python scalar), like
    torch.logical_and; broadcast like the operators."""
    a, b = self._logical(other)
    return a & b
  def logical_or(self, other) -> Self:
    """A bool tensor: self or other, each nonzero as True (other may be a Python scalar), like torch.logical_or."""
    a, b = self._logical(other)
    return a | b
  def logical_xor(self, other) -> Self:
    """A bool tensor: self xor other, each nonzero as True (other may be a Python scalar), like
    torch.logical_xor."""
    a, b = self._logical(other)
    return a ^ b
  def bitwise_and(self, other) -> Self:
    """self & other for int or bool tensors (floats raise TypeError), like torch.bitwise_and."""
    return self & other
  def bitwise_or(self, other) -> Self:
    """self | other for int or bool tensors (floats raise TypeError), like torch.bitwise_or."""
    return self | other
  def bitwise_xor(self, other) -> Self:
    """self ^ other for int or bool tensors (floats raise TypeError), like torch.bitwise_xor."""
    return self ^ other
  def bitwise_not(self) -> Self:
    """~self: every bit flipped for ints, logical not for bool; floats raise TypeError (torch.bitwise_not)."""
    if dtypes.is_float(self.dtype): raise TypeError(f"bitwise_not needs int or bool tensors, got {self.dtype}")
    return ~self
  def lshift(self, x) -> Self:
    """self << x for int tensors (tinygrad's lshift; torch's bitwise_left_shift)."""
    return self << x
  def rshift(self, x) -> Self:
    """self >> x for int tensors (tinygrad's rshift; torch's bitwise_right_shift)."""
    return self >> x


def _pow_gradient(arg, grad, out, x, e) -> tuple:
  """PyTorch's gradients of x ** e (a _float_pow node) for x and e, written with pow itself so that they can be
  differentiated again. A constant e (x ** 2.5) takes x.pow(e - 1) like PyTorch, sqrt and friends included."""
  scalar = _const_value(e.uop)
  if scalar is None: dx = (e == 0).where(0.0, e * x._float_pow(e - 1))
  else: dx = x.zeros_like() if scalar == 0 else x.pow(scalar - 1) * scalar
  de = ((x == 0) & (e >= 0)).where(0.0, out * x.log())
  return grad * dx, grad * de


def _floor_quotient(a: ElementwiseOps, b: ElementwiseOps) -> ElementwiseOps:
  """a // b of floats, exact (see _float_floordiv)."""
  mod = a._alu(Ops.MOD, b)
  div = (a - mod) / b
  div = ((mod != 0) & ((mod < 0) != (b < 0))).where(div - 1, div)
  whole = div.floor()
  whole = (div - whole > 0.5).where(whole + 1, whole)
  whole = (div == 0).where((a / b) * 0, whole)  # a zero quotient keeps the sign of a / b
  return (b == 0).where(a / b, whole)  # x // 0 is +-inf or NaN


def _const_value(u: UOp):
  """The value of a constant seen at some shape (CONST, reshaped and expanded), else None."""
  while u.op in (Ops.RESHAPE, Ops.EXPAND): u = u.src[0]
  return u.arg if u.op is Ops.CONST else None


def _lerp_gradient(arg, grad, value, start, stop, weight=None):
  w = arg[1] if weight is None else weight
  return (grad * (1 - w), grad * w) + (() if weight is None else (grad * (stop - start),))


tensor_rules["pow"] = _pow_gradient
tensor_rules["lerp"] = _lerp_gradient
# d/da log_base(base^a + base^b) = 1 / (1 + base^(b - a)), as PyTorch computes it; arg[1] names the power ("exp", "exp2")
tensor_rules["logaddexp"] = lambda arg, grad, value, a, b: (grad / (1 + getattr(b - a, arg[1])()), grad / (1 + getattr(a - b, arg[1])()))
tensor_rules["piecewise_constant"] = lambda arg, grad, value, *inputs: (None,) * len(inputs)  # (0 for each input)


def _pow_magnitude(x, e):
  """|x| ** e as exp2(e * log2|x|). float32 computes it in float64 where the device has it, rounded once: in
  float32 the rounding error of log2 is multiplied by e * log2|x| (10 ** 7 was 9999996 and 13th powers 40 ulps
  off, where PyTorch's powf is within 0.6 ulp)."""
  return x.abs()._in_float64(lambda a: (e.cast(a.dtype) * a.log2()).exp2())
