"""The transcendental functions as a Tensor mixin: exp and log, sqrt, trigonometric and hyperbolic functions and
their inverses, and erf (ints compute in the default float, like PyTorch; float16/bfloat16/fp8 in float32 through
elementwise.py's _in_float32). Each is composed from the primitive ops (EXP2, LOG2, SIN, SQRT, ...), and where the
plain composition loses precision (a cancellation near 0, a rounded argument) it takes another form there, chosen
with where() and kept finite in the branch not taken. The inverse functions, erf and exp get their exact
derivative by a rule of their own (a DETACH node carrying the rule's name: _exact_gradient, gradient.py), not the
composition's."""
from __future__ import annotations
import math
from typing import TYPE_CHECKING
from teeny.dtype import dtypes
from teeny.uop import UOp, Ops
from teeny.gradient import custom_gradients, tensor_rules
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self


# exp's reduction per dtype: ln2 split in two (hi has few enough bits that n * hi is exact for every n the range
# needs), the range beyond which the result is 0 or inf, and the int of the dtype's width, its exponent bias and
# mantissa bits (for 2^k from bits)
_EXP_REDUCTION = {
  dtypes.float32: (0.693145751953125, 1.428606765330187e-06, -104.0, 89.0, dtypes.int32, 127, 23),
  dtypes.float64: (6.93147180369123816490e-01, 1.90821492927058770002e-10, -746.0, 710.0, dtypes.int64, 1023, 52),
}
_EXP_FINITE_BELOW = {dtypes.float32: 88.0, dtypes.float64: 709.0}  # (e^x overflows a little above these)


class TranscendentalOps:
  """Tensor's exp, log, sqrt, trigonometry, hyperbolic functions and erf."""
  def exp(self) -> Self:
    """e ** x, like torch.exp (ints give the default float; float16/bfloat16/fp8 in float32), by Cody and Waite's
    reduction: n = floor(x log2 e), r = x - n ln2 (ln2 in two parts, so n * ln2_hi is exact), then exp2(r log2 e)
    scaled by 2^n, built from bits in two halves (no overflow before the result's own). Within about 1.5 ulp in
    float32 and float64, where 2^(x log2 e) lost about |x| / 3 ulp to the product's rounding (62 ulp near x = 88
    in float32, 221 at x = 700 in float64); at 1.3x its time (softmax keeps the plain form: _exp_shifted). Its
    gradient is the value itself (exact_gradient: clipping the argument to the dtype's range would zero it). (One
    scale, n clipped to the normal powers of 2, is a few ops less, but made an LSTM cell's backward kernel abort
    LLVM's pass pipeline: tests/test_nn.py's recurrent cells.)"""
    def f(x: Self) -> Self:
      ln2_hi, ln2_lo, low, high, int_dtype, bias, mantissa = _EXP_REDUCTION[x.dtype]
      xc = x.clip(low, high)  # (beyond: 0 and inf, which these give; NaN stays NaN)
      n = (xc * (1 / math.log(2))).floor()
      r = (xc - n * ln2_hi) - n * ln2_lo
      ni = n.cast(int_dtype)
      half = ni >> 1
      scale = [((k + bias) << mantissa).bitcast(x.dtype) for k in (half, ni - half)]  # 2^half * 2^(n - half)
      return x._exact_gradient((r * (1 / math.log(2))).exp2() * scale[0] * scale[1], "exp")
    return self._in_float32(f)
  def _exp_shifted(self) -> Self:
    """e^x of softmax's and logsumexp's arguments (x - max <= 0): in float32 one 2^(x log2 e), whose rounded
    argument costs about |x| / 3 ulp (1e-6 relative at x = -30, where the term is 1e-13 of the largest): exp's
    reduction, computed twice per element there (in the sum's kernel and the output's), made softmax 1.5x slower.
    float64 takes exp itself."""
    if self.dtype == dtypes.float64: return self.exp()
    return self._in_float32(lambda x: (x * (1 / math.log(2))).exp2())
  def log(self) -> Self:
    """Natural logarithm, like torch.log: -inf at 0, NaN below (ints give the default float; float16/bfloat16/fp8
    compute in float32)."""
    return self._in_float32(lambda x: x.log2() * math.log(2))
  def expm1(self) -> Self:
    """e^x - 1, like torch.expm1: exact for small x, where exp(x) - 1 would cancel (ints give the default float)."""
    return self._in_float32(lambda x: x._expm1())
  def log1p(self) -> Self:
    """log(1 + x), like torch.log1p: exact for small x (ints give the default float)."""
    return self._in_float32(lambda x: x._log1p())
  def _expm1(self) -> Self:
    """e^x - 1 without losing small x: near 0 (|x| < 0.5) 2t / (1 - t) with t = tanh(x/2) (as exact as tanh),
    elsewhere e^x - 1, which cancels little there."""
    near = self.abs() < 0.5
    t = (near.where(self, 0) * 0.5).tanh()
    return self._exact_gradient(near.where(2 * t / (1 - t), self.exp() - 1), "expm1")  # (PyTorch's e^x, one factor)
  def _log1p(self) -> Self:
    """log(1 + x) without losing small x: log(u) * x / (u - 1) with u = 1 + x (Goldberg's trick), log(u) itself
    where u - 1 is x exactly (log1p(inf) is inf, not inf / inf). Its gradient is 1 / (1 + x) by a rule, as
    PyTorch's, finite below -1 too where the value is NaN (the composition's was NaN)."""
    u = 1 + self
    exact, plain = u == 1, u - 1 == self
    value = exact.where(self, plain.where(u.log(), u.log() * self / exact.where(1.0, u - 1)))
    return self._exact_gradient(value, "log1p")
  def log10(self) -> Self:
    """Base-10 logarithm, like torch.log10 (log2 scaled; ints give the default float)."""
    return self.log2() * (1 / math.log2(10))
  def sqrt(self) -> Self:
    """Square root, like torch.sqrt: NaN below 0 (ints give the default float)."""
    return self._float()._alu(Ops.SQRT)
  def _sqrt_flat_at_zero(self) -> Self:
    """sqrt, with a gradient of 0 where self is 0 (not sqrt's inf slope): for the norms and std whose value there is
    a minimum, whose gradient PyTorch sets to 0 (inf times the zero deviations below it would be NaN)."""
    return (self == 0).where(0.0, self).sqrt()
  def rsqrt(self) -> Self:
    """1 / sqrt(x), like torch.rsqrt (ints give the default float)."""
    return self.sqrt().reciprocal()
  def reciprocal(self) -> Self:
    """1 / x, like torch.reciprocal: +-inf at +-0 (ints give the default float)."""
    return self._float()._alu(Ops.RECIP)
  def sin(self) -> Self:
    """Sine of x in radians, like torch.sin (ints give the default float; half floats in float32, so its gradient,
    cos, is too: in float16 cos(11) came out 0.7% off)."""
    # its gradient is cos x by a rule, Tensor.cos itself (the SIN node's own, 1 - 2 sin^2(x/2), cancels near cos's
    # zeros: sin's gradient at float32(pi/2) was +6e-8, not -4.4e-8)
    return self._in_float32(lambda x: x._exact_gradient(x._alu(Ops.SIN), "sin"))
  def cos(self) -> Self:
    """cos x = -(-1)^k sin(r), r = |x| - (k + 1/2) pi with k = floor(|x| / pi) (the identity holds for any integer
    k; this one makes |r| <= pi/2), pi taken in three parts whose products with k + 1/2 are exact (Cody and
    Waite's reduction, Cephes' constants): right relative to cos itself near its zeros, where 1 - 2 sin^2(x/2)
    cancels (tan(1.5707963) was 27% off). float32 reduces in float64 where the device has it: within 2 ulp up to
    |x| = 32768 (reduced in float32, up to 8192, its third product's rounding left 974 ulp near the zeros);
    float64 3 ulp up to 32768 away from the zeros. Past those (where the products stop being exact) 1 - 2
    sin^2(x/2): halving x is exact, so large x keep their absolute accuracy. The reduction costs: a float32 cos of
    4M elements takes 9 ms, 1.3 without. Its
    gradient is -sin x by a rule (through the reduction it was only absolutely accurate near 0: 11% off at 1e-6,
    and |x|'s slope at 0 made the second derivative 0 there)."""
    def f(x: Self) -> Self:
      # float32 reduces in float64 where the device has it: in float32 the third part's product rounds, which near
      # cos's zeros is most of r (cos(252.89821) was 974 ulp off)
      a = (x.cast(dtypes.float64) if x._widens_to_float64() else x).abs()
      k = (a * (1 / math.pi)).floor()
      h = k + 0.5
      high, middle, low, limit = _PI_PARTS[a.dtype]
      r = (((a - h * high) - h * middle) - h * low).cast(x.dtype)
      odd = (k - (k * 0.5).floor() * 2) == 1
      near = a < limit
      s = near.where(r, x * 0.5).sin()  # (one sine for both forms)
      return x._exact_gradient(near.where(odd.where(s, -s), 1 - 2 * s.square()), "cos")
    return self._in_float32(f)
  def tan(self) -> Self:
    """Tangent, sin(x) / cos(x), like torch.tan (ints: the default float; float16/bfloat16/fp8 in float32)."""
    return self._in_float32(lambda x: x._exact_gradient(x.sin() / x.cos(), "tan"))  # (1 + tan^2: no inf * 0 at 0)
  def sinh(self) -> Self:
    """Hyperbolic sine, like torch.sinh (float16/bfloat16/fp8 compute in float32): e^|x| / 2 - e^-|x| / 2 with
    x's sign (_exp_halves: sinh(89) is finite in float32 where e^89 is not); near 0 (|x| < 1) its Taylor series
    x + x^3/3! + ..., where the difference would cancel away sinh(1e-12) (2t / (1 - t^2) with t = tanh(x/2)
    carried tanh's error, 6 ulp). Its gradient is cosh x, by a rule (tensor.py), not the composition's."""
    def f(x: Self) -> Self:
      near = x.abs() < 1
      s = near.where(x, 0)  # (the series sees small inputs only)
      z, terms = s * s, (10 if x.dtype == dtypes.float64 else 7)  # (to x^19 or x^13: below the dtype's ulp at 1)
      series = 1 / math.factorial(2 * terms - 1)
      for k in reversed(range(terms - 1)): series = 1 / math.factorial(2 * k + 1) + z * series
      far = _exp_halves(x.abs())
      return x._exact_gradient(near.where(s * series, (far[0] - far[1]).copysign(x)), "sinh")
    return self._in_float32(f)
  def cosh(self) -> Self:
    """Hyperbolic cosine, like torch.cosh (float16/bfloat16/fp8 compute in float32): near 0 (|x| < 1) 1 + 2
    sinh^2(x/2), beyond e^|x| / 2 + e^-|x| / 2 (_exp_halves: finite as far as cosh is; the square of a rounded
    sinh was up to 10 ulp off). Its gradient is sinh x, by a rule (tensor.py): the derivative of (e^x + e^-x) / 2 cancelled
    near 0 (19% off at x = 1e-7 in float32)."""
    def f(x: Self) -> Self:
      near, far = x.abs() < 1, _exp_halves(x.abs())
      return x._exact_gradient(near.where(1 + (x * 0.5).sinh().square() * 2, far[0] + far[1]), "cosh")
    return self._in_float32(f)
  # inverse trigonometric and hyperbolic functions: each value is composed (from atan's polynomial, sqrt and log1p),
  # each gradient is the exact derivative by a rule of its own (_INVERSE_GRADIENTS), not the composition's
  def _exact_gradient(self, value: Self, rule, *others: Self) -> Self:
    """value, computed from self (and others), whose gradient reaches them by the named rule alone (a DETACH node:
    the value, then self and others, the rule's inputs; gradient.py). rule: its name, or a tuple of its name and
    settings."""
    return self._new(UOp(Ops.DETACH, value.dtype, (value.uop, self.uop, *(o.uop for o in others)), rule), *others)
  def _atan_value(self) -> Self:
    """atan of a float32/float64 tensor: reduced to |t| <= tan(pi/8) (Cephes' atanf ranges), a degree-9 odd
    polynomial there (float32 to an ulp), and for float64 one Newton step on tan(p) = t (to float64's precision)."""
    a = self.abs()
    big, mid = a > 2.414213562373095, a > 0.41421356237309503  # tan(3pi/8), tan(pi/8)
    t = big.where(-1 / big.where(a, 1.0), mid.where((a - 1) / (a + 1), a))
    z = t * t
    p = (((8.05374449538e-2 * z - 1.38776856032e-1) * z + 1.99777106478e-1) * z - 3.33329491539e-1) * z * t + t
    if self.dtype == dtypes.float64: p = p - p.cos() * (p.sin() - t * p.cos())
    base = big.where(p.full_like(math.pi / 2), mid.where(p.full_like(math.pi / 4), 0.0))  # (in p's dtype)
    return (base + p).copysign(self)
  def atan(self) -> Self:
    """Arctangent, like torch.atan."""
    return self._in_float32(lambda x: x._exact_gradient(x._atan_value(), "atan"))
  def asin(self) -> Self:
    """Arcsine, like torch.asin: atan(x / sqrt((1 - x)(1 + x))), exact near +-1; NaN outside [-1, 1]."""
    return self._in_float32(lambda x: x._exact_gradient((x / ((1 - x) * (1 + x)).sqrt())._atan_value(), "asin"))
  def acos(self) -> Self:
    """Arccosine, like torch.acos: 2 atan(sqrt((1 - x) / (1 + x))), which keeps small results near x = 1 exact."""
    return self._in_float32(lambda x: x._exact_gradient(((1 - x) / (1 + x)).sqrt()._atan_value() * 2, "acos"))
  def atan2(self, other) -> Self:
    """The angle of the point (other, self), like torch.atan2(self, other): atan of the smaller over the larger
    magnitude, moved into self's and other's quadrant (signed zeros and infinities as in C's atan2)."""
    y, x = self._float_operands(other)
    ay, ax = y.abs(), x.abs()
    steep = ay > ax
    angle = (steep.where(ax, ay) / steep.where(ay, ax))._atan_value()
    angle = ((ay == 0) & (ax == 0)).where(0.0, ((ay == math.inf) & (ax == math.inf)).where(math.pi / 4, angle))
    angle = steep.where(math.pi / 2 - angle, angle)
    angle = x.signbit().where(math.pi - angle, angle)  # (-0.0 too: atan2(0, -0) is pi)
    angle = (x.isnan() | y.isnan()).where(math.nan, angle).copysign(y)
    return y._exact_gradient(angle, "atan2", x)
  arctan, arcsin, arccos, arctan2 = atan, asin, acos, atan2
  def asinh(self) -> Self:
    """Inverse hyperbolic sine, like torch.asinh: log1p(|x| + x^2 / (1 + sqrt(x^2 + 1))) (exact for small x), and
    log(|x|) + log 2 where x^2 would overflow; the sign of x."""
    def f(x: Self) -> Self:
      a = x.abs()
      near = (a + a * a / (1 + (a * a + 1).sqrt()))._log1p()
      return x._exact_gradient((a > 2.0 ** 28).where(a.log() + math.log(2), near).copysign(x), "asinh")
    return self._in_float32(f)
  def acosh(self) -> Self:
    """Inverse hyperbolic cosine, like torch.acosh: log1p(t + sqrt(t (t + 2))) with t = x - 1 (exact near 1), and
    log(x) + log 2 where that would overflow; NaN below 1."""
    def f(x: Self) -> Self:
      t = x - 1
      value = (x > 2.0 ** 28).where(x.log() + math.log(2), (t + (t * (t + 2)).sqrt())._log1p())
      value = (x < 1).where(math.nan, value)  # (for x far below -1 the formula would round to log1p(-1) = -inf)
      return x._exact_gradient(value, "acosh")
    return self._in_float32(f)
  def atanh(self) -> Self:
    """Inverse hyperbolic tangent, like torch.atanh: (log1p(x) - log1p(-x)) / 2; +-inf at +-1, NaN beyond."""
    return self._in_float32(lambda x: x._exact_gradient((x._log1p() - (-x)._log1p()) * 0.5, "atanh"))
  arcsinh, arccosh, arctanh = asinh, acosh, atanh
  def erf(self) -> Self:
    """The error function, like torch.erf, to a few ulp of float32 or float64 in relative terms (erf(1e-8) is
    1.128e-8, not 0). Below an edge (1.5; 2 in float64) its Maclaurin series 2/sqrt(pi) sum (-1)^k x^(2k+1) /
    (k! (2k+1)); above, 1 - erfc(x), erfc from its continued fraction x + (1/2)/(x + 1/(x + (3/2)/(x + ...))),
    evaluated forward as numerator/denominator recurrences (all terms positive: no cancellation, one division).
    The gradient is the exact 2/sqrt(pi) exp(-x^2) (_INVERSE_GRADIENTS)."""
    def f(x: Self) -> Self:
      edge, terms, _ = _erf_parameters(x.dtype)
      a = x.abs()
      near = a < edge
      s, c = near.where(a, 0.0), near.where(edge, a).minimum(10.0)  # each branch sees inputs it is made for
      z = s * s
      series = 1 / (math.factorial(terms - 1) * (2 * terms - 1)) * (-1) ** (terms - 1)
      for k in reversed(range(terms - 1)): series = (-1) ** k / (math.factorial(k) * (2 * k + 1)) + z * series
      far = 1 - c._erfc_far()  # (beyond 10, erf is 1 anyway)
      return x._exact_gradient(near.where(2 / math.sqrt(math.pi) * s * series, far).copysign(x), "erf")
    return self._in_float32(f)
  def _exact_gelu(self) -> Self:
    """x/2 (1 + erf(x/sqrt 2)), from erf's edge on to the left x/2 erfc(-x/sqrt 2) (elementwise.py's gelu)."""
    a = self * -(1 / math.sqrt(2))
    edge = _erf_parameters(self.dtype)[0]
    far = a >= edge
    tail = 0.5 * self * far.where(a, edge).minimum(27.5)._erfc_far()  # (erfc is 0 in float64 from 27.3 on)
    return far.where(tail, 0.5 * self * (1 + (self * (1 / math.sqrt(2))).erf()))
  def _erfc_far(self) -> Self:
    """erfc of values from erf's edge on (_erf_parameters; below it the fraction converges too slowly): the
    continued fraction's convergents p / q, evaluated forward."""
    c = self
    p_before, p, q_before, q = c.ones_like(), c, c.zeros_like(), c.ones_like()
    for k in range(1, _erf_parameters(c.dtype)[2] + 1):
      p_before, p, q_before, q = p, c * p + k / 2 * p_before, q, c * q + k / 2 * q_before
    return _exp_minus_square(c) * q / (math.sqrt(math.pi) * p)


def _exp_halves(a):
  """(e^a / 2, e^-a / 2) for a >= 0, the first finite as far as it is (past e^a's overflow, from e^(a/2) twice)."""
  high = _EXP_FINITE_BELOW[a.dtype]
  e = a.minimum(high).exp()
  half = (a * 0.5).exp()
  return (a < high).where(e * 0.5, half * (half * 0.5)), 0.5 / e


def _exp_minus_square(c):
  """exp(-c^2) without c^2's rounding, which exp magnifies |c^2| times (erfc near 3 was 62 ulp off in float32, 489
  in float64): c = hi + lo with hi holding half the mantissa, so hi^2 is exact, and c^2 = hi^2 + lo (c + hi)."""
  bits, mask = (dtypes.int32, -(1 << 12)) if c.dtype == dtypes.float32 else (dtypes.int64, -(1 << 27))
  hi = (c.bitcast(bits) & mask).bitcast(c.dtype)
  return (-(hi * hi)).exp() * (-((c - hi) * (c + hi))).exp()


def _erf_parameters(dtype) -> tuple[float, int, int]:
  """erf's edge between its series and its continued fraction, the series' terms and the fraction's depth: each
  measured to reach the dtype's precision (float64: 4 ulp; float32: 1.5 ulp)."""
  return (2.0, 30, 40) if dtype == dtypes.float64 else (1.5, 14, 15)


# the exact derivatives of the inverse functions (UOp math: each builds plain primitive graphs, so they differentiate
# again). ctx is the incoming gradient, ret the DETACH node, ret.src[1] the input x (ret.src[2]: atan2's other).
def _sqrt(u: UOp) -> UOp: return u.alu(Ops.SQRT)
def _fdiv(a: UOp, b: UOp) -> UOp: return a.alu(Ops.FDIV, b)
def _one_minus_square(x: UOp) -> UOp: return (1 - x) * (1 + x)  # (1 - x^2 without the cancellation near +-1)


def _atan2_gradient(ctx: UOp, ret: UOp):
  """d/dy = x / (x^2 + y^2) and d/dx = -y / (x^2 + y^2), with x and y divided by the larger magnitude m first, so
  the sum of squares neither underflows (at 1e-30 each in float32 the gradient is 5e29, not inf) nor overflows;
  0 at the origin, as PyTorch gives (NaN there poisoned every gradient of a model taking the angle of a zero)."""
  y, x = ret.src[1], ret.src[2]
  m = x.alu(Ops.MAX, -x).alu(Ops.MAX, y.alu(Ops.MAX, -y))
  origin = m.eq(0)
  scale = origin.alu(Ops.OR, m.eq(math.inf)).where(1.0, m)  # (unscaled at inf: x / inf is 0)
  xs, ys = _fdiv(x, scale), _fdiv(y, scale)
  r2 = scale * (xs * xs + ys * ys)
  return origin.where(0.0, _fdiv(ctx * xs, r2)), origin.where(0.0, -_fdiv(ctx * ys, r2))


# pi in three parts for cos's reduction (Cephes' DP1..DP3 for pi/4, times 4): the first two have few enough bits
# that (k + 1/2) times them is exact up to the last entry, the |x| past which cos falls back to its half-angle form
_PI_PARTS = {dtypes.float32: (3.140625, 9.67502593994140625e-4, 1.509957990978376432e-7, 8192.0),
             dtypes.float64: (3.14159250259399414062, 1.50995788317231927067e-7, 1.07806057163162380640e-14, 32768.0)}


_INVERSE_GRADIENTS = {
  "atan": lambda ctx, ret: (_fdiv(ctx, ret.src[1] * ret.src[1] + 1),),
  "asin": lambda ctx, ret: (_fdiv(ctx, _sqrt(_one_minus_square(ret.src[1]))),),
  "acos": lambda ctx, ret: (-_fdiv(ctx, _sqrt(_one_minus_square(ret.src[1]))),),
  "asinh": lambda ctx, ret: (_fdiv(ctx, _sqrt(ret.src[1] * ret.src[1] + 1)),),
  "acosh": lambda ctx, ret: (_fdiv(ctx, _sqrt((ret.src[1] - 1) * (ret.src[1] + 1))),),
  "atanh": lambda ctx, ret: (_fdiv(ctx, _one_minus_square(ret.src[1])),),
  "atan2": _atan2_gradient,
  "exp": lambda ctx, ret: (ctx * ret.src[0],),
  "log1p": lambda ctx, ret: (_fdiv(ctx, ret.src[1] + 1),),
  "erf": lambda ctx, ret: (ctx * (ret.src[1] * ret.src[1] * (-1 / math.log(2))).alu(Ops.EXP2) * (2 / math.sqrt(math.pi)),),
}
custom_gradients.update(_INVERSE_GRADIENTS)
tensor_rules["expm1"] = lambda arg, grad, _, x: (grad * x.exp(),)
tensor_rules["cos"] = lambda arg, grad, _, x: (grad * -x.sin(),)
tensor_rules["tan"] = lambda arg, grad, value, x: (grad * (1 + value.square()),)
tensor_rules["sinh"] = lambda arg, grad, _, x: (grad * x.cosh(),)  # (each other's derivative: finite as far as
tensor_rules["cosh"] = lambda arg, grad, _, x: (grad * x.sinh(),)  # they are)


tensor_rules["sin"] = lambda arg, grad, value, x: (grad * x.cos(),)
