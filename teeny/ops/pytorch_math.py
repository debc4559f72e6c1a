"""PyTorch's elementwise methods that teeny lacked, as a Tensor mixin: clamp_min/clamp_max, true_divide,
floor_divide and remainder (the operators' semantics by torch's names), fmax/fmin (NaN ignored), frac, deg2rad,
rad2deg, sgn, signbit, isposinf, isneginf, logit, xlogy, sinc, hypot, logaddexp2, nan_to_num, heaviside, erfc,
addcmul and addcdiv. Each is composed from teeny's own ops; where the composition's gradient is not PyTorch's
(logit outside [0, 1], xlogy at x = 0, hypot) or loses precision (erfc), a rule of its own gives PyTorch's (a DETACH
node naming the rule, as elementwise.py's pow does: gradient.py's tensor_rules)."""
from __future__ import annotations
import math
from typing import TYPE_CHECKING
import numpy as np
from teeny.dtype import dtypes, promote, NARROW_FLOATS, bits_to_float, fp8_constants
from teeny.gradient import tensor_rules
from teeny.ops.pytorch import DtypeError, check_tensor
from teeny.ops.elementwise import _SAME_SIZE_INT
from teeny.ops.transcendental import _exp_minus_square
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self

_SINC_TAYLOR = tuple((-1) ** k / math.factorial(2 * k + 1) for k in range(9))  # sin(t) / t in powers of t^2
_ERFC_LAST = 27.5  # erfc is 0 from here on in float64 (and long before in float32): the fraction sees no more
# where erfc stops being 1 - erf(x) (which loses relative precision as erfc gets small) for its continued fraction,
# and the fraction's depth from there to 3 (1.5e-7 relative at the start in float32, 8e-16 in float64); past 3,
# the depth erf uses is enough
_ERFC_FRACTION = {dtypes.float32: (1.0, 40), dtypes.float64: (1.5, 100)}


def _largest_finite(dtype) -> float:
  """The largest finite value of a float dtype (torch.finfo(dtype).max): what nan_to_num puts for +inf."""
  if dtype in (dtypes.fp8e4m3, dtypes.fp8e5m2):  # (e4m3 has no infinity: its top codes are not IEEE's)
    return float(bits_to_float(np.array([fp8_constants(dtype)["max_finite"]], np.uint8), dtype)[0])
  exponent_bits, mantissa_bits = dtypes.finfo(dtype)
  return (2 - 2.0 ** -mantissa_bits) * 2.0 ** (2 ** (exponent_bits - 1) - 1)


def check_scalars_fit(dtype, **scalars):
  """PyTorch's rule for the scaling numbers of addcmul, addmm and friends: with int tensors they must be ints (a
  float would be truncated, silently, by some of torch's kernels; torch.add raises the same error)."""
  if dtypes.is_float(dtype): return
  for name, value in scalars.items():
    if isinstance(value, float): raise TypeError(f"for integral input tensors, argument {name} must not be a floating point number, got {value}")


class PyTorchMathOps:
  """Tensor's elementwise methods by PyTorch's names."""
  def clamp_min(self, min) -> Self:  # (min, max: PyTorch's argument names)
    """max(self, min) with clamp's rules (NaN stays NaN), like torch.clamp_min."""
    return self.clamp(min=min)
  def clamp_max(self, max) -> Self:
    """min(self, max) with clamp's rules, like torch.clamp_max."""
    return self.clamp(max=max)
  def true_divide(self, other) -> Self:
    """self / other (ints give the default float), like torch.true_divide."""
    return self.div(other)
  def floor_divide(self, other) -> Self:
    """self // other rounded toward -inf, like torch.floor_divide (which floors since PyTorch 1.13): -7 // 2 is -4.
    An int divided by 0 gives 0 (teeny can't raise on values it hasn't computed; PyTorch raises)."""
    return self.floordiv(other)
  def remainder(self, other) -> Self:
    """The remainder with the divisor's sign, like torch.remainder and Python's % (teeny's % is the same op): -7
    remainder 2 is 1, 7 remainder -2 is -1. Its gradient for other is -floor(self / other), as PyTorch's."""
    return self.mod(other)
  def fmax(self, other) -> Self:
    """The larger of self and other, a NaN ignored when the other side is a number, like torch.fmax (maximum
    gives NaN). The gradient goes to self where self >= other or other is NaN, else to other, as PyTorch's."""
    a, b = self._binop_operands(other)
    if not dtypes.is_float(a.dtype): return a.maximum(b)
    return ((a >= b) | b.isnan()).where(a, b)
  def fmin(self, other) -> Self:
    """The smaller of self and other, a NaN ignored when the other side is a number, like torch.fmin."""
    a, b = self._binop_operands(other)
    if not dtypes.is_float(a.dtype): return a.minimum(b)
    return ((a <= b) | b.isnan()).where(a, b)
  def frac(self) -> Self:
    """The fractional part, self - trunc(self), with self's sign, like torch.frac (NaN at +-inf); floats only."""
    if not dtypes.is_float(self.dtype): raise DtypeError(f"frac needs a float tensor, got {self.dtype} (as in PyTorch)")
    return self - self.trunc()
  def deg2rad(self) -> Self:
    """Degrees to radians, like torch.deg2rad (ints give the default float)."""
    return self._float() * (math.pi / 180)
  def rad2deg(self) -> Self:
    """Radians to degrees, like torch.rad2deg (ints give the default float)."""
    return self._float() * (180 / math.pi)
  def sgn(self) -> Self:
    """sign(self), like torch.sgn (which differs from sign for complex numbers only: teeny has none)."""
    return self.sign()
  def signbit(self) -> Self:
    """A bool tensor, True where the sign bit is set, like torch.signbit: -0.0 and a negative NaN count as negative."""
    if dtypes.is_float(self.dtype): return self.bitcast(_SAME_SIZE_INT[self.dtype.itemsize]) < 0
    if self.dtype == dtypes.bool or dtypes.is_unsigned(self.dtype): return self.full_like(False, dtype=dtypes.bool)
    return self < 0
  def isposinf(self) -> Self:
    """A bool tensor, True where self is +inf, like torch.isposinf."""
    return self.isinf(detect_positive=True, detect_negative=False)
  def isneginf(self) -> Self:
    """A bool tensor, True where self is -inf, like torch.isneginf."""
    return self.isinf(detect_positive=False, detect_negative=True)
  def logit(self, eps: float | None = None) -> Self:
    """log(p / (1 - p)), like torch.logit: with eps, p is first clamped into [eps, 1 - eps] (the gradient is 0
    beyond, as PyTorch's); without, NaN outside [0, 1], value and gradient. Computed as log(p) - log1p(-p)."""
    def f(x: Self) -> Self:
      p = x if eps is None else x.clamp(eps, 1 - eps)
      value = p.log() - (-p).log1p()
      return x._exact_gradient(value, ("logit", eps))
    return self._in_float32(f)
  def xlogy(self, other) -> Self:
    """self * log(other), 0 where self is 0 (even where other is 0 or inf) but NaN where other is NaN, like
    torch.xlogy, with its gradients: log(other) for self (0 where self is 0 and other <= 0), self / other for other."""
    x, y = self._float_operands(other)
    value = y.isnan().where(math.nan, (x == 0).where(0.0, x * y.log()))
    return x._exact_gradient(value, "xlogy", y)
  def sinc(self) -> Self:
    """sin(pi x) / (pi x), 1 at 0, like torch.sinc (ints give the default float). Near 0 (|pi x| < 0.5) the Taylor
    series of sin(t) / t, whose gradient is right there (the quotient's cancels: PyTorch's is 3x off at x = 1e-4
    in float32)."""
    def f(x: Self) -> Self:
      t = x * math.pi
      near = t.abs() < 0.5
      t2 = near.where(t, 0.0).square()  # (each branch sees the inputs it is made for)
      terms = _SINC_TAYLOR[:9] if x.dtype == dtypes.float64 else _SINC_TAYLOR[:5]
      series = terms[-1]
      for c in reversed(terms[:-1]): series = c + t2 * series  # (Horner's rule in t^2)
      angle = near.where(1.0, t)
      return near.where(series, angle.sin() / angle)
    return self._in_float32(f)
  def hypot(self, other) -> Self:
    """sqrt(self^2 + other^2) without overflow or underflow on the way, like torch.hypot (C's hypot: inf where
    either is infinite, even beside a NaN); floats only, as in PyTorch. The gradients are self / hypot and other /
    hypot, PyTorch's (NaN at the origin)."""
    a, b = self._binop_operands(other)
    if not dtypes.is_float(a.dtype): raise DtypeError(f"hypot needs float tensors, got {a.dtype} (as in PyTorch)")
    wide = (a.float(), b.float()) if a.dtype in NARROW_FLOATS else (a, b)
    value = _scaled_hypot(*wide).cast(a.dtype)
    return a._exact_gradient(value, "hypot", b)
  def logaddexp2(self, other) -> Self:
    """log2(2^self + 2^other) without overflow, like torch.logaddexp2: max + log2(1 + 2^-|difference|), through
    log1p so a far smaller term still counts (logaddexp2(0, -30) is 1.3e-9, not 0)."""
    a, b = self._float_operands(other)
    high, gap = a.maximum(b), (a - b).abs()
    out = high + (-gap).exp2().log1p() * (1 / math.log(2))
    # (the same infinity: inf - inf would be NaN); its gradients are logaddexp's rule's, 1 / (1 + 2^(b - a))
    return a._exact_gradient(((a == b) & a.isinf()).where(a, out), ("logaddexp", "exp2"), b)
  def nan_to_num(self, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None) -> Self:
    """NaN, +inf and -inf replaced by nan, posinf and neginf (by default the dtype's largest and smallest finite
    values), like torch.nan_to_num; the gradient passes where self is finite. Int tensors come back unchanged (a copy)."""
    if not dtypes.is_float(self.dtype): return self._copy_result(self)
    if nan is None: nan = 0.0  # (PyTorch's default, also when given as None)
    largest = _largest_finite(self.dtype)
    posinf, neginf = largest if posinf is None else posinf, -largest if neginf is None else neginf
    out = self.isnan().where(nan, self)
    out = (self == math.inf).where(posinf, out)
    return (self == -math.inf).where(neginf, out).cast(self.dtype)
  def heaviside(self, values) -> Self:
    """The step function, like torch.heaviside: 0 where self < 0 (and where it is NaN), values where self == 0, 1
    where self > 0. values (a tensor or a number) must have self's dtype, as in PyTorch."""
    if isinstance(values, PyTorchMathOps) and values.dtype != self.dtype:
      raise DtypeError(f"heaviside of a {self.dtype} tensor with {values.dtype} values: give values of one dtype (as PyTorch asks)")
    x, at_zero = self._binop_operands(values)
    return (x == 0).where(at_zero, (x > 0).cast(x.dtype))
  def erfc(self) -> Self:
    """1 - erf(x), like torch.erfc, without the cancellation where erfc is small: from _ERFC_FRACTION's start on,
    erfc's continued fraction itself (erfc(10) is 2.1e-45, not 0), deeper than erf's up to 3 and erf's beyond;
    below it 1 - erf(x). The gradient is the exact -2/sqrt(pi) exp(-x^2)."""
    def f(x: Self) -> Self:
      start, depth = _ERFC_FRACTION[x.dtype]
      middle = _erfc_fraction(x.clip(start, 3.0), depth)  # (each branch sees the inputs it is made for)
      far = x.clip(3.0, _ERFC_LAST)._erfc_far()
      return x._exact_gradient((x < start).where(1 - x.erf(), (x < 3).where(middle, far)), "erfc")
    return self._in_float32(f)
  def addcmul(self, tensor1, tensor2, *, value=1) -> Self:
    """self + value * tensor1 * tensor2, broadcast and promoted together, like torch.addcmul."""
    check_tensor(tensor1, "addcmul's tensor1")
    check_tensor(tensor2, "addcmul's tensor2")
    check_scalars_fit(promote(promote(self.dtype, tensor1.dtype), tensor2.dtype), value=value)
    # torch's order of the products (the same roundings); half floats in float32, rounded once, as PyTorch's (its
    # gradient's products overflowed float16: (a.addcmul(a, -2.5, value=0.5) * 3e4) gave -inf for -7504)
    dt = promote(promote(self.dtype, tensor1.dtype), tensor2.dtype)
    if dt in NARROW_FLOATS: return self.float().addcmul(tensor1.float(), tensor2.float(), value=value).cast(dt)
    return self + (value * tensor1) * tensor2
  def addcdiv(self, tensor1, tensor2, *, value=1) -> Self:
    """self + value * tensor1 / tensor2, broadcast and promoted together, like torch.addcdiv; an int tensor1 and
    tensor2 raise, as in PyTorch (their division is no longer defined there)."""
    check_tensor(tensor1, "addcdiv's tensor1")
    check_tensor(tensor2, "addcdiv's tensor2")
    if not dtypes.is_float(promote(tensor1.dtype, tensor2.dtype)):
      raise DtypeError("addcdiv of int tensors: PyTorch no longer divides them; cast tensor1 or tensor2 to a float dtype")
    check_scalars_fit(promote(self.dtype, tensor1.dtype), value=value)
    return self + (value * tensor1) / tensor2


def _erfc_fraction(x, depth: int):
  """erfc(x) from its continued fraction x + (1/2)/(x + 1/(x + (3/2)/(x + ...))) to `depth` (transcendental.py's
  _erfc_far, whose depth is erf's), its convergents p / q evaluated forward: p grows like x^depth, so the depth
  is kept where that fits the dtype."""
  p_before, p, q_before, q = x.ones_like(), x, x.zeros_like(), x.ones_like()
  for k in range(1, depth + 1):
    p_before, p, q_before, q = p, x * p + k / 2 * p_before, q, x * q + k / 2 * q_before
  return _exp_minus_square(x) * q / (math.sqrt(math.pi) * p)


def _scaled_hypot(a, b):
  """hypot of float32 or float64 tensors of one shape: big * sqrt(1 + (small / big)^2), which neither overflows
  nor underflows before the result does; NaN where either is NaN, inf where either is infinite (C's rule)."""
  big, small = a.abs().maximum(b.abs()), a.abs().minimum(b.abs())
  ratio = small / (big == 0).where(1.0, big)  # (at the origin both are 0: the ratio is 0, not 0 / 0)
  value = big * (1 + ratio * ratio).sqrt()
  value = (a.isnan() | b.isnan()).where(math.nan, value)
  return (a.isinf() | b.isinf()).where(math.inf, value)


def _logit_gradient(arg, grad, value, x) -> tuple:
  """torch.logit's gradient: grad / (p (1 - p)); with eps, 0 where p is beyond [eps, 1 - eps] (the clamp's
  bounds themselves pass it); without, NaN outside [0, 1] (where the composition's was finite)."""
  _, eps = arg
  slope = grad / (x * (1 - x))
  if eps is None: return (((x < 0) | (x > 1)).where(math.nan, slope),)
  return (((x < eps) | (x > 1 - eps)).where(0.0, slope),)


def _xlogy_gradient(arg, grad, value, x, y) -> tuple:
  """torch.xlogy's gradients: log(y) for x, 0 where x is 0 and y <= 0 (where log(y) is -inf or NaN); x / y for y
  (NaN at x = y = 0, as PyTorch's)."""
  log_y = ((x == 0) & (y <= 0)).where(0.0, y.log())
  return grad * log_y, grad * x / y


def _hypot_gradient(arg, grad, value, a, b) -> tuple:
  """torch.hypot's gradients: a / hypot and b / hypot."""
  return grad * a / value, grad * b / value


tensor_rules["logit"] = _logit_gradient
tensor_rules["xlogy"] = _xlogy_gradient
tensor_rules["hypot"] = _hypot_gradient
tensor_rules["erfc"] = lambda arg, grad, _, x: (grad * (-(x * x)).exp() * (-2 / math.sqrt(math.pi)),)
