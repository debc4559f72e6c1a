"""Activation functions as a Tensor mixin: relu, sigmoid, tanh, the GELUs, silu, the ELUs, softplus, mish, the
hard ones, softsign and logsigmoid, composed from Tensor math with branches picked by where() and kept finite.
The smooth ones get their derivatives by rules of their own (gradient.py's tensor_rules, registered at the end),
PyTorch's formulas as one factor times the incoming gradient: differentiating the composition sums terms that
cancel, so an infinite (or huge) incoming gradient gave inf - inf = NaN where PyTorch's is +-inf. The rules are
Tensor math themselves, so second derivatives work."""
from __future__ import annotations
import math
from typing import TYPE_CHECKING
from teeny.dtype import dtypes
from teeny.uop import Ops
from teeny.ops.constants import _const_at
from teeny.ops.args import ArgumentError
from teeny.gradient import tensor_rules
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self


# tanh's odd Taylor coefficients, x, x^3, ... x^21: 2^2n (2^2n - 1) B_2n / (2n)! with B the Bernoulli numbers
_TANH_TAYLOR = (1, -1 / 3, 2 / 15, -17 / 315, 62 / 2835, -1382 / 155925, 21844 / 6081075, -929569 / 638512875,
                6404582 / 10854718875, -443861162 / 1856156927625, 18888466084 / 194896477400625)


class ActivationOps:
  """Tensor's activation functions."""
  def relu(self) -> Self:
    """max(x, 0) like torch.relu: its gradient at 0 is 0 (not maximum's tie split) and relu(nan) is nan."""
    if not dtypes.is_float(self.dtype): return self.maximum(0)
    # where(0 < x or x is nan, x, 0), built as nodes at once: relu is in every MLP, and composing it from <=,
    # where and a broadcast constant cost 15 times the Python work
    x, zero = self.uop, _const_at(self.dtype, 0.0, self.shape)
    keep = zero.alu(Ops.CMPLT, x).alu(Ops.OR, x.alu(Ops.CMPNE, x))
    return self._new(keep.where(x, zero))
  def sigmoid(self) -> Self:
    """1 / (1 + e^-x), from e = e^-|x| on both sides (1 / (1 + e) for x >= 0, e / (1 + e) below): e is in (0, 1],
    so nothing overflows. Its gradient is PyTorch's y (1 - y) by a rule of its own: the primitives' rule summed
    inf - inf = NaN for an infinite incoming gradient. (y (1 - y) is 0 where y rounds to 1, like PyTorch's: then
    a loss that divides by 1 - p, binary_crossentropy of sigmoid(20), gets 0 too, not 1e12 times a tiny slope.)"""
    def f(x: Self) -> Self:
      negative = x < 0
      e = negative.where(x, -x).exp()
      r = (1 + e).reciprocal()
      return x._exact_gradient(negative.where(e * r, r), "sigmoid")
    return self._in_float32(f)
  def tanh(self) -> Self:
    """(1 - e^-2|x|) / (1 + e^-2|x|) with x's sign (finite gradient at any |x|), and near 0 (|x| < 0.3) its odd
    Taylor polynomial: the subtraction would cancel away up to 0.1% of tanh(1e-5). To x^9 in float32 (error < 1e-7 relative), to x^21
    in float64 (< 3e-16: to x^9 it was 1.3e-8 at x = 0.26, a float32 answer in float64). Its gradient is PyTorch's
    1 - y^2 from the value, by a rule of its own (an infinite incoming gradient gave NaN through the polynomial;
    recomputing the slope from x made an LSTM's backward kernel big enough to abort LLVM's SLP vectorizer)."""
    def f(x: Self) -> Self:
      small = x.abs() < 0.3
      xs = small.where(x, 0)  # the polynomial sees 0 elsewhere: nothing overflows in the branch not taken
      x2 = xs * xs
      terms = _TANH_TAYLOR if x.dtype == dtypes.float64 else _TANH_TAYLOR[:5]
      series = terms[-1]
      for c in reversed(terms[:-1]): series = c + x2 * series  # (Horner's rule in x^2)
      e = (x.abs() * -2.0).exp()  # (at most 0.55 here: 1 - e cancels little; 2 sigmoid(2x) - 1 did, 4.6 ulp)
      return x._exact_gradient(small.where(xs * series, ((1 - e) / (1 + e)).copysign(x)), "tanh")
    return self._in_float32(f)
  def gelu(self, approximate: str = "tanh") -> Self:
    """GELU. The default is the tanh approximation (tinygrad's gelu); approximate='none' is PyTorch's exact erf
    form, x/2 (1 + erf(x/sqrt 2)), which far left (x < -2.1; -2.8 in float64) is x/2 erfc(-x/sqrt 2) instead: the
    sum would cancel (it was 4% off at x = -5, 100% at -8). Within 45 ulp in float32 and 800 in float64 (1 + erf
    still cancels just right of the switch; erfc's continued fraction converges too slowly to start sooner)."""
    if approximate == "none": return self._in_float32(lambda x: x._exact_gradient(x._exact_gelu(), "gelu_exact"))
    if approximate != "tanh": raise ArgumentError(f"gelu approximate must be 'tanh' or 'none', got {approximate!r}")
    return self._in_float32(lambda x: x._exact_gradient(0.5 * x * (1 + _gelu_inner(x).tanh()), "gelu"))
  def quick_gelu(self) -> Self:
    """x * sigmoid(1.702 x), the quick GELU approximation (CLIP's; tinygrad's quick_gelu)."""
    return self._x_sigmoid(1.702)
  def silu(self) -> Self:
    """x * sigmoid(x), like torch.nn.functional.silu; swish is the same function."""
    return self._x_sigmoid(1.0)
  def _x_sigmoid(self, k: float) -> Self:
    """x * sigmoid(k x), half floats in float32 rounded once (as PyTorch's silu), with the derivative
    sigmoid(k x) + k x sigmoid'(k x) as one factor (the product rule added inf - inf = NaN for an infinite
    incoming gradient)."""
    return self._in_float32(lambda x: x._exact_gradient(x * (x * k).sigmoid(), ("x_sigmoid", k)))
  swish = silu
  # the piecewise functions below pick a branch with where() so that the gradient at each kink is PyTorch's (at
  # x = 0 leaky_relu takes the slope, elu and celu the exp side), where max/min would split a tie in two
  def leakyrelu(self, neg_slope: float = 0.01) -> Self:
    """x where x > 0, else neg_slope * x, like torch's leaky_relu (the gradient at 0 is neg_slope)."""
    return (self > 0).where(self, self * neg_slope)
  leaky_relu = leakyrelu
  def elu(self, alpha: float = 1.0) -> Self:
    """x where x > 0, else alpha * (e^x - 1), like torch's elu (the gradient at 0 from the exp side; its own
    gradient there 0, as PyTorch's double backward: _elu_slope)."""
    return self._elu_like(alpha, 1.0)
  def _elu_like(self, alpha: float, scale: float) -> Self:
    """x where x > 0, else alpha * (e^(x / scale) - 1): elu (scale 1) and celu (scale alpha), half floats in
    float32 (as PyTorch's: e^-20 is 0 in float16)."""
    def f(x: Self) -> Self:
      below = x <= 0
      value = below.where(alpha * (below.where(x, 0) * (1 / scale))._expm1(), x)  # (e^x - 1 only of x <= 0: finite)
      return x._exact_gradient(value, ("elu", alpha, scale))
    return self._in_float32(f)
  def celu(self, alpha: float = 1.0) -> Self:
    """x where x > 0, else alpha * (e^(x / alpha) - 1), like torch's celu."""
    return self._elu_like(alpha, alpha)
  def selu(self, alpha: float = 1.6732632423543772, gamma: float = 1.0507009873554805) -> Self:
    """gamma * elu(x, alpha), like torch's selu, with its constants (tinygrad's defaults are rounded to 1.67326 and
    1.0507: 1e-6 off, 8 ulp of float32)."""
    return gamma * self.elu(alpha)
  def softplus(self, beta: float = 1.0) -> Self:
    """log(1 + exp(beta x)) / beta, computed as max(bx, 0) + log1p(exp(-|bx|)): no overflow, no lost tail. Both
    parts pick their side with one comparison, so the gradient at 0 is 1/2 like PyTorch's."""
    def f(x: Self) -> Self:
      bx = x * beta
      above = bx > 0
      # max(bx, 0) / beta is x where bx > 0: beta x may overflow where x doesn't (softplus(3e38, beta=2.5))
      value = above.where(x, 0) + above.where(-bx, bx).exp()._log1p() * (1 / beta)
      return x._exact_gradient(value, ("softplus", beta))  # (its slope, sigmoid(beta x): finite with any gradient)
    return self._in_float32(f)
  def mish(self) -> Self:
    """x * tanh(softplus(x)), like torch's mish. Above 20 tanh(softplus(x)) is 1 to float precision, so mish is x
    there: the where() keeps a gradient near float max (3e38) from overflowing inside tanh's chain (0, not NaN)."""
    return self._in_float32(lambda x: (x > 20).where(x, x._exact_gradient(x * x.softplus().tanh(), "mish")))
  def hardtanh(self, min_val: float = -1.0, max_val: float = 1.0) -> Self:
    """clip to [min_val, max_val] with torch's hardtanh gradient: 0 at the bounds themselves (clip passes it there)."""
    if min_val > max_val: raise ArgumentError(f"hardtanh: min_val {min_val} cannot be greater than max_val {max_val}")
    return (self <= min_val).where(min_val, (self >= max_val).where(max_val, self))
  def relu6(self) -> Self:
    """min(max(x, 0), 6), like torch's relu6."""
    return self.hardtanh(0, 6)  # torch's relu6 is hardtanh(0, 6), gradient included
  def hardsigmoid(self, alpha: float = 1 / 6, beta: float = 0.5) -> Self:
    """clip(alpha x + beta, 0, 1); like torch the gradient is alpha strictly inside (0, 1), else 0 (NaN too)."""
    u = alpha * self + beta
    return (u >= 1).where(1.0, (u > 0).where(u, u.isnan().where(u.detach(), 0.0)))  # (u's NaN: u's dtype)
  def hardswish(self) -> Self:
    """x * relu6(x + 3) / 6, with torch's gradient: 0 up to -3 (included), x / 3 + 1/2 below 3, then 1."""
    middle = self < 3
    # the quadratic side sees 0 elsewhere: NaN takes the x side with gradient 1, and -inf the 0 side with gradient
    # 0 (its quadratic's slope would be 0 * -inf = NaN)
    x = (middle & (self > -3)).where(self, 0)
    return self._exact_gradient((self <= -3).where(0.0, middle.where(x * (x + 3) * (1 / 6), self)), "hardswish")
  def softsign(self) -> Self:
    """x / (1 + |x|), like torch's softsign, its gradient 1 / (1 + |x|)^2 by a rule (the quotient rule's sum
    was NaN for an infinite incoming gradient)."""
    return self._exact_gradient(self / (1 + self.abs()), "softsign")
  def logsigmoid(self) -> Self:
    """log(sigmoid(x)) as -softplus(-x): no overflow at large |x|, like torch's logsigmoid."""
    return -(-self).softplus()


def _gelu_inner(x: ActivationOps) -> ActivationOps: return math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)


def _logistic_slope(x: ActivationOps) -> ActivationOps:
  """sigmoid'(x) = e / (1 + e)^2 with e = e^-|x|: y (1 - y) without its cancellation (the slope at x = 20 is
  2e-9, where 1 - y is 0 in float32)."""
  e = (-x.abs()).exp()
  r = (1 + e).reciprocal()
  return e * r * r


def _tanh_slope(u: ActivationOps) -> ActivationOps: return 4 * _logistic_slope(2 * u)  # 1 - tanh(u)^2


def _gelu_slope(x: ActivationOps) -> ActivationOps:
  """d/dx of x/2 (1 + tanh u), u = sqrt(2/pi) (x + 0.044715 x^3): (1 + tanh u) / 2 + x/2 tanh'(u) u', the first
  term as sigmoid(2u) (1 + tanh u cancels where u < 0: 1% off at x = -5). Past |x| = 10 it is 1 or 0 to float64's
  precision: taken as those there (x clipped inside, so x^3 can't overflow into 0 * inf; the clipped slope of -10,
  -3e-36, was no answer at -20)."""
  near = x.clip(-10.0, 10.0)
  u = _gelu_inner(near)
  slope = (2 * u).sigmoid() + 0.5 * near * _tanh_slope(u) * (math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * near * near))
  return (x < -10).where(0.0, (x > 10).where(1.0, slope))


def _exact_gelu_slope(x: ActivationOps) -> ActivationOps:
  """d/dx of x Phi(x), PyTorch's Phi(x) + x phi(x), with Phi(x) = erfc(-x / sqrt 2) / 2 (exact on both sides; the
  composition's terms cancelled: wrong sign at x = -5 in float64, NaN at 1e15 with a large incoming gradient).
  x phi(x) is 0 in float64 past |x| = 40: x is clipped there, so x^2 can't overflow into 0 * inf."""
  near = x.clip(-40.0, 40.0)
  return 0.5 * (x * -(1 / math.sqrt(2))).erfc() + near * (near * near * -0.5).exp() * (1 / math.sqrt(2 * math.pi))


def _elu_slope(x: ActivationOps, alpha: float, scale: float) -> ActivationOps:
  """d/dx of elu-like x: alpha / scale e^(x / scale) below 0, the same constant at 0 (PyTorch takes the exp side
  there, and its second derivative is 0 at 0: a constant has none), 1 above. The exponential sees only x <= 0
  (e^1e4 in the branch not taken made the second derivative inf * 0 = NaN)."""
  below, ratio = x < 0, alpha / scale
  return below.where(ratio * (below.where(x, 0.0) * (1 / scale)).exp(), (x == 0).where(x.full_like(ratio), 1.0))


def _mish_slope(x: ActivationOps) -> ActivationOps:
  """d/dx of x tanh(softplus x): tanh(s) + x tanh'(s) sigmoid(x), with s = softplus(x)."""
  s = x.softplus()
  return s.tanh() + x * _tanh_slope(s) * x.sigmoid()


def _x_sigmoid_slope(x: ActivationOps, k: float) -> ActivationOps:
  """d/dx of x sigmoid(k x): sigmoid(k x) + k x sigmoid'(k x), with k x clipped to +-1000 in the second term, where
  it is 0 in float64 too (k x = inf times a slope of 0 was NaN: quick_gelu at 3e38)."""
  kx = (x * k).clip(-1000.0, 1000.0)
  return (x * k).sigmoid() + kx * _logistic_slope(kx)


# each: (the DETACH's arg, the incoming gradient, the value, x) -> (x's gradient,)
tensor_rules["sigmoid"] = lambda arg, grad, value, x: (grad * (value * (1 - value)),)
tensor_rules["tanh"] = lambda arg, grad, value, x: (grad * ((1 - value) * (1 + value)),)  # (1 - y^2, its difference exact near 1)
tensor_rules["gelu"] = lambda arg, grad, value, x: (grad * _gelu_slope(x),)
tensor_rules["gelu_exact"] = lambda arg, grad, value, x: (grad * _exact_gelu_slope(x),)
tensor_rules["x_sigmoid"] = lambda arg, grad, value, x: (grad * _x_sigmoid_slope(x, arg[1]),)
tensor_rules["softplus"] = lambda arg, grad, value, x: (grad * (x * arg[1]).sigmoid(),)
tensor_rules["mish"] = lambda arg, grad, value, x: (grad * _mish_slope(x),)
tensor_rules["elu"] = lambda arg, grad, value, x: (grad * _elu_slope(x, arg[1], arg[2]),)
tensor_rules["softsign"] = lambda arg, grad, value, x: (grad / (1 + x.abs()) / (1 + x.abs()),)  # ((1 + |x|)^2 overflows float16)
# hardswish: 0 up to -3 (included), x / 3 + 1/2 below 3, then 1 (NaN too), as PyTorch's
tensor_rules["hardswish"] = lambda arg, grad, value, x: ((x <= -3).where(0.0, (x < 3).where(grad * (x / 3 + 0.5), grad)),)
