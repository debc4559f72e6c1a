"""Gradients equal PyTorch's at the edges: kinks (relu at 0, clamp/hardtanh at their bounds, ties of maximum and
max), huge inputs (no NaN or inf gradient where the function is finite), pow at zero, negative bases and zero
exponents (and its dtypes), second and third derivatives (gradient of a gradient), and float16 counts and sums past
65504. Every check is against hand-derived values (numpy, float64) on every device, and against PyTorch too when
it is installed."""
import math
import numpy as np
import pytest
from teeny import Tensor, Device, dtypes

try:
  import torch
  import torch.nn.functional as F
except ImportError:  # the PyTorch comparisons are skipped, the hand-derived checks still run
  torch = None


def grad_of(device, fn, x: np.ndarray, weights: np.ndarray | None = None):
  """fn(x) and d sum(fn(x) * weights) / dx, computed by teeny."""
  t = Tensor(x, device=device, requires_grad=True)
  out = fn(t)
  (out * Tensor(weights, device=device) if weights is not None else out).sum().backward()
  return out.numpy(), t.grad.numpy()


def torch_grad_of(fn, x: np.ndarray, weights: np.ndarray | None = None):
  p = torch.tensor(x, requires_grad=True)
  out = fn(p)
  (out * torch.tensor(weights) if weights is not None else out).sum().backward()
  return out.detach().numpy(), p.grad.numpy()


def assert_same(actual, expected, rtol=1e-5, atol=1e-6):
  """Equal up to rounding, with NaN where NaN is expected and infinities of the same sign."""
  np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)


# ---- kinks and ties ----
KINK_X = np.array([-7.0, -6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0, 7.0, np.nan], np.float32)
nan = np.nan
# name -> (teeny fn, torch fn, expected value fn (numpy), expected gradient at KINK_X by hand)
KINKS = {
  "relu": (Tensor.relu, lambda p: torch.relu(p), lambda x: np.where(x > 0, x, np.where(np.isnan(x), x, 0)),
           [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]),  # 0 at 0; relu(nan) is nan with gradient 1, like torch
  "leakyrelu": (lambda t: t.leakyrelu(0.1), lambda p: F.leaky_relu(p, 0.1), lambda x: np.where(x > 0, x, 0.1 * x),
                [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 1, 1, 1, 1, 1, 0.1]),
  "elu": (Tensor.elu, lambda p: F.elu(p), lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
          list(np.exp(np.minimum(KINK_X[:6], 0))) + [1, 1, 1, 1, 1, 1]),
  "celu": (lambda t: t.celu(2.0), lambda p: F.celu(p, 2.0), lambda x: np.where(x > 0, x, 2 * np.expm1(np.minimum(x, 0) / 2)),
           list(np.exp(np.minimum(KINK_X[:6], 0) / 2)) + [1, 1, 1, 1, 1, 1]),
  "hardtanh": (Tensor.hardtanh, lambda p: F.hardtanh(p), lambda x: np.where(np.isnan(x), x, np.clip(x, -1, 1)),
               [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1]),  # 0 at the bounds themselves (torch's hardtanh_backward)
  "relu6": (Tensor.relu6, lambda p: F.relu6(p), lambda x: np.where(np.isnan(x), x, np.clip(x, 0, 6)),
            [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1]),
  "clip": (lambda t: t.clip(-1, 6), lambda p: p.clamp(-1, 6), lambda x: np.where(np.isnan(x), x, np.clip(x, -1, 6)),
           [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0]),  # clamp includes its bounds; NaN passes no gradient
  "hardsigmoid": (Tensor.hardsigmoid, lambda p: F.hardsigmoid(p), lambda x: np.where(np.isnan(x), x, np.clip(x / 6 + 0.5, 0, 1)),
                  [0, 0, 0, 1 / 6, 1 / 6, 1 / 6, 1 / 6, 1 / 6, 0, 0, 0, 0]),
  "hardswish": (Tensor.hardswish, lambda p: F.hardswish(p), lambda x: x * np.where(np.isnan(x), x, np.clip(x + 3, 0, 6)) / 6,
                [0, 0, 0, -1 / 3 + 0.5, -0.5 / 3 + 0.5, 0.5, 0.5 / 3 + 0.5, 1 / 3 + 0.5, 1, 1, 1, 1]),
  "softplus": (Tensor.softplus, lambda p: F.softplus(p), lambda x: np.logaddexp(0, x), 1 / (1 + np.exp(-KINK_X.astype(np.float64)))),
  "maximum_tie": (lambda t: t.maximum(0.5), lambda p: torch.maximum(p, torch.tensor(0.5)), lambda x: np.maximum(x, 0.5),
                  [0, 0, 0, 0, 0, 0, 0.5, 1, 1, 1, 1, 1]),  # a tie splits the gradient evenly; NaN gets it all (torch.maximum)
  "minimum_tie": (lambda t: t.minimum(-1.0), lambda p: torch.minimum(p, torch.tensor(-1.0)), lambda x: np.minimum(x, -1.0),
                  [1, 1, 1, 0.5, 0, 0, 0, 0, 0, 0, 0, 1]),
}


@pytest.mark.parametrize("name", list(KINKS))
def test_kinks_take_pytorchs_gradient(device, name):
  fn, torch_fn, value_fn, expected_grad = KINKS[name]
  value, grad = grad_of(device, fn, KINK_X)
  with np.errstate(invalid="ignore", over="ignore"):
    assert_same(value, value_fn(KINK_X.astype(np.float64)))
  assert_same(grad, np.asarray(expected_grad, np.float64))
  if torch is not None:
    torch_value, torch_grad = torch_grad_of(torch_fn, KINK_X)
    assert_same(value, torch_value)
    assert_same(grad, torch_grad)


def test_clamp_with_tensor_bounds_sends_the_gradient_like_pytorch(device):
  x = np.array([0.0, 1.0, 2.0, 3.0, 4.0], np.float32)
  lo_np, hi_np = np.full(5, 1.0, np.float32), np.full(5, 3.0, np.float32)
  t, lo, hi = (Tensor(a, device=device, requires_grad=True) for a in (x, lo_np, hi_np))
  t.clip(lo, hi).sum().backward()
  np.testing.assert_array_equal(t.grad.numpy(), [0, 1, 1, 1, 0])  # min <= x <= max
  np.testing.assert_array_equal(lo.grad.numpy(), [1, 0, 0, 0, 0])  # x < min
  np.testing.assert_array_equal(hi.grad.numpy(), [0, 0, 0, 0, 1])  # x > max
  if torch is not None:
    p, plo, phi = (torch.tensor(a, requires_grad=True) for a in (x, lo_np, hi_np))
    torch.clamp(p, plo, phi).sum().backward()
    for ours, theirs in ((t, p), (lo, plo), (hi, phi)): np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


def test_max_and_min_split_ties_evenly_like_amax(device):
  x = np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 0.0]], np.float32)
  y = np.array([[1.0, 3.0, 0.0, 2.0], [1.0, 5.0, 0.0, 2.0]], np.float32)
  cases = [(x, lambda t: t.max(), lambda p: p.max(), [[0, 0, 0, 0], [1 / 3, 1 / 3, 1 / 3, 0]]),
           (x, lambda t: t.max(1), lambda p: p.amax(1), [[0, 0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3, 0]]),
           (y, lambda t: t.min(0), lambda p: p.amin(0), [[0.5, 1, 0.5, 0.5], [0.5, 0, 0.5, 0.5]]),
           (y, lambda t: t.min(), lambda p: p.min(), [[0, 0, 0.5, 0], [0, 0, 0.5, 0]])]
  for x, fn, torch_fn, expected in cases:
    _, grad = grad_of(device, fn, x)
    np.testing.assert_allclose(grad, expected, rtol=1e-6)
    if torch is not None: np.testing.assert_allclose(grad, torch_grad_of(torch_fn, x)[1], rtol=1e-6)


def test_max_and_min_of_all_elements_with_a_nan_send_the_gradient_to_the_nans(device):
  # PyTorch's max() and min() (no dim): the gradient goes evenly to the NaNs; teeny gave amax's (NaN everywhere)
  x = np.array([[1.0, np.nan, 3.0], [4.0, 2.0, np.nan]], np.float32)
  for fn, torch_fn in ((lambda t: t.max(), lambda p: p.max()), (lambda t: t.min(), lambda p: p.min())):
    value, grad = grad_of(device, fn, x)
    assert np.isnan(value)
    np.testing.assert_array_equal(grad, [[0, 0.5, 0], [0, 0, 0.5]])
    if torch is not None: np.testing.assert_array_equal(grad, torch_grad_of(torch_fn, x)[1])


# ---- no NaN or inf gradient where the function is finite ----
HUGE_X = np.array([-1e4, -1e3, -200, -89, -50, -20, -3, -0.5, 0, 0.5, 3, 20, 50, 89, 200, 1e3, 1e4], np.float32)


def _np_sigmoid(x):
  e = np.exp(-np.abs(x))
  return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _np_gelu_tanh(x):
  u = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
  return 0.5 * x * (1 + np.tanh(u))


def _np_gelu_tanh_grad(x):
  u = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
  du = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x ** 2)
  return 0.5 * (1 + np.tanh(u)) + 0.5 * x * (1 - np.tanh(u) ** 2) * du


def _np_gelu_exact_grad(x):
  from math import erf
  cdf = 0.5 * (1 + np.vectorize(erf)(x / math.sqrt(2)))
  return cdf + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)


# name -> (teeny fn, torch fn, numpy value, numpy derivative), all float64 on the numpy side
SMOOTH = {
  "sigmoid": (Tensor.sigmoid, torch.sigmoid if torch else None, _np_sigmoid, lambda x: _np_sigmoid(x) * _np_sigmoid(-x)),
  "tanh": (Tensor.tanh, torch.tanh if torch else None, np.tanh, lambda x: 1 - np.tanh(x) ** 2),
  "gelu_tanh": (Tensor.gelu, (lambda p: F.gelu(p, approximate="tanh")) if torch else None, _np_gelu_tanh, _np_gelu_tanh_grad),
  "gelu_exact": (lambda t: t.gelu("none"), F.gelu if torch else None,
                 lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))), _np_gelu_exact_grad),
  "quick_gelu": (Tensor.quick_gelu, (lambda p: p * torch.sigmoid(1.702 * p)) if torch else None, lambda x: x * _np_sigmoid(1.702 * x),
                 lambda x: _np_sigmoid(1.702 * x) + 1.702 * x * _np_sigmoid(1.702 * x) * _np_sigmoid(-1.702 * x)),
  "silu": (Tensor.silu, F.silu if torch else None, lambda x: x * _np_sigmoid(x),
           lambda x: _np_sigmoid(x) + x * _np_sigmoid(x) * _np_sigmoid(-x)),
  "softplus": (Tensor.softplus, F.softplus if torch else None, lambda x: np.logaddexp(0, x), _np_sigmoid),
  "logsigmoid": (Tensor.logsigmoid, F.logsigmoid if torch else None, lambda x: -np.logaddexp(0, -x), lambda x: _np_sigmoid(-x)),
}


def test_softplus_with_a_beta_where_beta_x_overflows(device):
  # beta * x past float32's range made softplus(3e38, beta=2.5) inf (PyTorch: 3e38)
  value, grad = grad_of(device, lambda t: t.softplus(beta=2.5), np.array([3e38, -3e38, 8.0], np.float32))
  np.testing.assert_allclose(value, [3e38, 0.0, np.logaddexp(0, 20.0) / 2.5], rtol=1e-6)
  np.testing.assert_allclose(grad, [1.0, 0.0, 1 / (1 + np.exp(-20.0))], rtol=1e-6)


def test_mish_near_float_max_has_a_finite_gradient(device):
  # tanh's chain doubled the upstream gradient x = 3e38 to inf before multiplying it by tanh' = 0: NaN (PyTorch: 1)
  value, grad = grad_of(device, Tensor.mish, np.array([3e38, -3e38, 25.0], np.float32))
  np.testing.assert_allclose(value, [3e38, 0.0, 25.0], rtol=1e-6)
  np.testing.assert_allclose(grad, [1.0, 0.0, 1.0], rtol=1e-6)


@pytest.mark.parametrize("name", list(SMOOTH))
def test_huge_inputs_give_finite_gradients(device, name):
  fn, torch_fn, np_value, np_grad = SMOOTH[name]
  value, grad = grad_of(device, fn, HUGE_X)
  x64 = HUGE_X.astype(np.float64)
  with np.errstate(over="ignore"):
    assert np.isfinite(value).all() and np.isfinite(grad).all(), (value, grad)
    np.testing.assert_allclose(value, np_value(x64), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(grad, np_grad(x64), rtol=2e-5, atol=1e-6)
  if torch is not None:
    torch_value, torch_grad = torch_grad_of(torch_fn, HUGE_X)
    np.testing.assert_allclose(value, torch_value, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(grad, torch_grad, rtol=2e-5, atol=1e-6)


def test_tanh_is_accurate_near_zero(device):
  """2 sigmoid(2x) - 1 loses the digits of a small tanh to cancellation (tanh(1e-5) came out 0.14% high)."""
  x = np.array([1e-7, -1e-5, 1e-3, -0.1, 0.29, 0.31, -0.5, 1.0, 3.0], np.float32)
  value, grad = grad_of(device, Tensor.tanh, x)
  expected = np.tanh(x.astype(np.float64))
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  # the gradient is PyTorch's 1 - y^2 of the float32 value: a difference from 1, right to a few ulp of y (2e-7), not
  # relatively (at x = 3, y = 0.995 is 1 ulp high and 1 - y^2 = 0.00987 is 1.7e-7 low)
  np.testing.assert_allclose(grad, 1 - expected ** 2, rtol=1e-6, atol=2e-7)
  if torch is not None:
    torch_value, torch_grad = torch_grad_of(torch.tanh, x)
    np.testing.assert_allclose(value, torch_value, rtol=1e-6)
    np.testing.assert_allclose(grad, torch_grad, rtol=1e-6, atol=2e-7)  # (the same formula of values 1 ulp apart)


ROWS = np.array([[1e4, -1e4, 0.0, 3.0], [-1e4, -1e4, -1e4, -1e4 + 1], [5e3, 1e4, -2e3, 1e4], [0.5, -0.5, 89.0, -89.0]], np.float32)
ROW_WEIGHTS = np.arange(1.0, 17.0, dtype=np.float32).reshape(4, 4)


def _np_log_softmax(x):
  shifted = x - x.max(1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


@pytest.mark.parametrize("name", ["log_softmax", "softmax", "logsumexp", "cross_entropy"])
def test_huge_logits_give_finite_gradients(device, name):
  x = ROWS.astype(np.float64)
  logp, p = _np_log_softmax(x), np.exp(_np_log_softmax(x))
  labels = np.array([1, 3, 0, 2])
  if name == "log_softmax":
    fn, torch_fn, w = (lambda t: t.log_softmax(1)), (lambda q: q.log_softmax(1)), ROW_WEIGHTS
    value, expected = logp, w - p * w.sum(1, keepdims=True)
  elif name == "softmax":
    fn, torch_fn, w = (lambda t: t.softmax(1)), (lambda q: q.softmax(1)), ROW_WEIGHTS
    value, expected = p, p * (w - (p * w).sum(1, keepdims=True))
  elif name == "logsumexp":
    fn, torch_fn, w = (lambda t: t.logsumexp(1)), (lambda q: q.logsumexp(1)), None
    value, expected = x.max(1) + np.log(np.exp(x - x.max(1, keepdims=True)).sum(1)), p
  else:
    fn = lambda t: t.cross_entropy(Tensor(labels, device=device))  # noqa: E731
    torch_fn, w = (lambda q: F.cross_entropy(q, torch.tensor(labels))), None
    value, expected = -logp[np.arange(4), labels].mean(), (p - np.eye(4)[labels]) / 4
  ours_value, grad = grad_of(device, fn, ROWS, w)
  assert np.isfinite(ours_value).all() and np.isfinite(grad).all()
  np.testing.assert_allclose(ours_value, value, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-5)
  if torch is not None:
    # PyTorch in float64: its float32 logsumexp gradient, exp(x - lse) with lse rounded near 1e4, is off by up to
    # 5e-4 (ours divides the exponentials by their sum, and is closer to the exact values checked above)
    torch_value, torch_grad = torch_grad_of(torch_fn, x, None if w is None else w.astype(np.float64))
    np.testing.assert_allclose(ours_value, torch_value, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad, torch_grad, rtol=1e-5, atol=1e-5)


# ---- pow ----
BASES = np.array([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, np.inf, -np.inf], np.float32)
SCALAR_EXPONENTS = [0, 1, 2, 3, 9, -1, -2, -9, 0.5, -0.5, 2.5, -1.5]


def _np_pow_scalar(x, e):
  """torch.pow(x, e) for a Python number e, and its gradient, by hand (float64): IEEE pow, except that PyTorch
  takes sqrt for 0.5 and rsqrt for -0.5; the gradient is 0 for e = 0, else e * x.pow(e - 1)."""
  def power(b, k):
    if k == 0.5: return np.sqrt(b)
    if k == -0.5: return 1 / np.sqrt(b)
    return np.power(b, k)
  return power(x, e), (np.zeros_like(x) if e == 0 else e * power(x, e - 1))


@pytest.mark.parametrize("exponent", SCALAR_EXPONENTS)
def test_pow_scalar_exponent_edges(device, exponent):
  value, grad = grad_of(device, lambda t: t ** exponent, BASES)
  with np.errstate(all="ignore"):
    expected_value, expected_grad = _np_pow_scalar(BASES.astype(np.float64), exponent)
  assert_same(value, expected_value)
  assert_same(grad, expected_grad)
  if torch is not None:
    torch_value, torch_grad = torch_grad_of(lambda p: p ** exponent, BASES)
    assert_same(value, torch_value)
    assert_same(grad, torch_grad)


def test_pow_tensor_exponent_edges(device):
  exponents = np.array([0, 1, 2, 3, 0.5, -1, -2, -0.5, 2.5, -np.inf, np.inf], np.float32)
  b, e = (a.ravel() for a in np.meshgrid(BASES, exponents))
  tb, te = Tensor(b, device=device, requires_grad=True), Tensor(e, device=device, requires_grad=True)
  out = tb ** te
  out.sum().backward()
  with np.errstate(all="ignore"):
    b64, e64 = b.astype(np.float64), e.astype(np.float64)
    expected = np.power(b64, e64)
    # PyTorch's pow_backward_self and pow_backward_exponent
    expected_db = np.where(e64 == 0, 0.0, e64 * np.power(b64, e64 - 1))
    expected_de = np.where((b64 == 0) & (e64 >= 0), 0.0, expected * np.log(b64))
  assert_same(out.numpy(), expected)
  assert_same(tb.grad.numpy(), expected_db)
  assert_same(te.grad.numpy(), expected_de)
  if torch is not None:
    pb, pe = torch.tensor(b, requires_grad=True), torch.tensor(e, requires_grad=True)
    pout = pb ** pe
    pout.sum().backward()
    assert_same(out.numpy(), pout.detach().numpy())
    assert_same(tb.grad.numpy(), pb.grad.numpy())
    assert_same(te.grad.numpy(), pe.grad.numpy())


def test_zero_to_a_tensor_power(device):
  e = np.array([-2.0, -0.5, 0.0, 0.5, 1.0, 3.0], np.float32)
  te = Tensor(e, device=device, requires_grad=True)
  out = 0.0 ** te
  out.sum().backward()
  np.testing.assert_array_equal(out.numpy(), [np.inf, np.inf, 1, 0, 0, 0])
  np.testing.assert_array_equal(te.grad.numpy(), [-np.inf, -np.inf, 0, 0, 0, 0])  # x^e log(0) where e < 0, else 0
  if torch is not None:
    pe = torch.tensor(e, requires_grad=True)
    pout = 0.0 ** pe
    pout.sum().backward()
    np.testing.assert_array_equal(out.numpy(), pout.detach().numpy())
    np.testing.assert_array_equal(te.grad.numpy(), pe.grad.numpy())


def test_pow_zero_keeps_the_graph_with_gradient_zero(device):
  t = Tensor(np.array([2.0, 0.0, -1.0, np.nan, np.inf], np.float32), device=device, requires_grad=True)
  out = t ** 0
  assert out.requires_grad
  out.sum().backward()  # reaches t: no "no tensor with requires_grad" error
  np.testing.assert_array_equal(out.numpy(), [1, 1, 1, 1, 1])
  np.testing.assert_array_equal(t.grad.numpy(), [0, 0, 0, 0, 0])


def test_pow_dtypes_like_pytorch(device):
  ints = Tensor([2, 3, -2, 0], device=device)
  cases = [
    (ints ** 2, dtypes.int32, [4, 9, 4, 0]),
    (ints ** 10, dtypes.int32, [1024, 59049, 1024, 0]),  # exact (the float path gave 59048.984)
    (ints ** 0, dtypes.int32, [1, 1, 1, 1]),
    (ints ** 2.0, dtypes.float32, [4.0, 9.0, 4.0, 0.0]),  # a float exponent makes a float
    (ints ** 0.5, dtypes.float32, [math.sqrt(2), math.sqrt(3), np.nan, 0.0]),
    (ints ** Tensor([2, 3, 3, 0], device=device), dtypes.int32, [4, 27, -8, 1]),
    (ints ** Tensor([0.5, 2.0, 2.0, 1.0], device=device), dtypes.float32, [math.sqrt(2), 9.0, 4.0, 0.0]),
    (2 ** Tensor([1, 2, 3], device=device), dtypes.int32, [2, 4, 8]),
    (2.5 ** Tensor([1, 2], device=device), dtypes.float32, [2.5, 6.25]),
    # integer pow wraps like PyTorch's; negative powers of integers truncate (1 for 1, +-1 for -1, else 0)
    (Tensor([3], device=device) ** Tensor([40], device=device), dtypes.int32, [689956897]),
    (Tensor([3], dtype=dtypes.int64, device=device) ** 20, dtypes.int64, [3486784401]),
    (Tensor([2, 1, -1, -1, 0, -2], device=device) ** Tensor([-1, -1, -1, -2, -1, -3], device=device), dtypes.int32, [0, 1, -1, 1, 0, 0]),
  ]
  for out, dtype, expected in cases:
    assert out.dtype == dtype
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
  with pytest.raises(RuntimeError, match="negative integer powers"): ints ** -1
  if torch is not None:
    pi = torch.tensor([2, 3, -2, 0], dtype=torch.int32)
    assert (pi ** 2).dtype == torch.int32 and (pi ** 2.0).dtype == torch.float32
    np.testing.assert_array_equal((ints ** 10).numpy(), (pi ** 10).numpy())
    np.testing.assert_array_equal((Tensor([3], device=device) ** Tensor([40], device=device)).numpy(),
                                  (torch.tensor([3], dtype=torch.int32) ** torch.tensor([40], dtype=torch.int32)).numpy())
    np.testing.assert_array_equal(cases[-1][0].numpy(), (torch.tensor([2, 1, -1, -1, 0, -2], dtype=torch.int32) **
                                                         torch.tensor([-1, -1, -1, -2, -1, -3], dtype=torch.int32)).numpy())


# ---- higher order ----
rng = np.random.default_rng(16)
HX = rng.uniform(-2, 2, 6).astype(np.float32)
HV = rng.uniform(-1, 1, 6).astype(np.float32)
EXPONENTS = rng.uniform(-1, 2, 6).astype(np.float32)
TABLE = np.arange(6, dtype=np.float32)


def _np_sig(x): return 1 / (1 + np.exp(-x))


# name -> (teeny fn, torch fn, hand-derived Hessian-vector product of sum(fn(x)) at x with v (numpy float64))
SECOND_ORDER = {
  "cube": (lambda t: t ** 3, lambda p: p ** 3, lambda x, v: 6 * x * v),
  "pow_2.5": (lambda t: t.abs() ** 2.5, lambda p: p.abs() ** 2.5, lambda x, v: 2.5 * 1.5 * np.abs(x) ** 0.5 * v),
  "pow_tensor": (lambda t: (t * t + 0.5) ** Tensor(EXPONENTS, device=t.device), lambda p: (p * p + 0.5) ** torch.tensor(EXPONENTS),
                 lambda x, v: _np_pow_tensor_hvp(x, v)),
  "sin": (Tensor.sin, torch.sin if torch else None, lambda x, v: -np.sin(x) * v),
  "exp": (Tensor.exp, torch.exp if torch else None, lambda x, v: np.exp(x) * v),
  "tanh": (Tensor.tanh, torch.tanh if torch else None, lambda x, v: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2) * v),
  "sigmoid": (Tensor.sigmoid, torch.sigmoid if torch else None, lambda x, v: _np_sig(x) * (1 - _np_sig(x)) * (1 - 2 * _np_sig(x)) * v),
  "softmax": (lambda t: (t.reshape(2, 3).softmax(1) * Tensor(TABLE.reshape(2, 3), device=t.device)).reshape(6),
              lambda p: (p.reshape(2, 3).softmax(1) * torch.tensor(TABLE.reshape(2, 3))).reshape(6), lambda x, v: _np_softmax_hvp(x, v)),
  "max": (lambda t: t.reshape(2, 3).max(1) ** 2, lambda p: p.reshape(2, 3).amax(1) ** 2, lambda x, v: _np_max_sq_hvp(x, v)),
}


def _np_pow_tensor_hvp(x, v):
  # f = (x^2 + 0.5)^e: f' = 2ex u^(e-1), f'' = 2e u^(e-1) + 4e(e-1) x^2 u^(e-2), u = x^2 + 0.5
  e, u = EXPONENTS.astype(np.float64), x * x + 0.5
  return (2 * e * u ** (e - 1) + 4 * e * (e - 1) * x * x * u ** (e - 2)) * v


def _np_softmax_hvp(x, v):
  """H v for sum(softmax(x) * c) per row of 3, by finite differences of the exact gradient p * (c - p.c)."""
  def grad(xf):
    rows, c = xf.reshape(2, 3), TABLE.reshape(2, 3).astype(np.float64)
    p = np.exp(rows - rows.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return (p * (c - (p * c).sum(1, keepdims=True))).reshape(6)
  eps = 1e-6
  return (grad(x + eps * v) - grad(x - eps * v)) / (2 * eps)


def _np_max_sq_hvp(x, v):
  # sum(max(row)^2): the Hessian is 2 at each row's (untied) argmax, 0 elsewhere
  rows = x.reshape(2, 3)
  hot = (rows == rows.max(1, keepdims=True)).reshape(6)
  return 2 * hot * v


@pytest.mark.parametrize("name", list(SECOND_ORDER))
def test_gradient_of_a_gradient_matches_pytorch(device, name):
  fn, torch_fn, hand_hvp = SECOND_ORDER[name]
  x = Tensor(HX, device=device)
  (g,) = fn(x).sum().gradient(x)
  (hvp,) = (g * Tensor(HV, device=device)).sum().gradient(x)
  expected = hand_hvp(HX.astype(np.float64), HV.astype(np.float64))
  assert np.abs(expected).max() > 1e-3  # a second derivative that is really there
  np.testing.assert_allclose(hvp.numpy(), expected, rtol=1e-4, atol=1e-5)
  if torch is not None:
    p = torch.tensor(HX, requires_grad=True)
    (pg,) = torch.autograd.grad(torch_fn(p).sum(), p, create_graph=True)
    (phvp,) = torch.autograd.grad((pg * torch.tensor(HV)).sum(), p)
    np.testing.assert_allclose(hvp.numpy(), phvp.numpy(), rtol=1e-4, atol=1e-5)


def test_third_derivative_and_backward_of_a_gradient(device):
  x = Tensor(HX, device=device, requires_grad=True)
  (g1,) = (x ** 4).sum().gradient(x)
  (g2,) = g1.sum().gradient(x)
  (g3,) = g2.sum().gradient(x)
  np.testing.assert_allclose(g3.numpy(), 24 * HX, rtol=1e-5)
  assert g1.requires_grad  # made from x, which requires grad: backward() through it reaches x
  (g1 * g1).sum().backward()  # d/dx sum((4x^3)^2) = 96 x^5
  np.testing.assert_allclose(x.grad.numpy(), 96 * HX.astype(np.float64) ** 5, rtol=1e-5)


def test_gradient_penalty_of_a_tiny_mlp_reaches_the_weights(device):
  """||d loss / d x||^2 backward to the weights: a gradient penalty (WGAN-GP style) trains them, it isn't 0."""
  w1n, w2n = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((4, 1)).astype(np.float32)
  xn = rng.standard_normal((5, 3)).astype(np.float32)
  w1, w2 = Tensor(w1n, device=device, requires_grad=True), Tensor(w2n, device=device, requires_grad=True)
  x = Tensor(xn, device=device, requires_grad=True)
  (gx,) = ((x @ w1).tanh() @ w2).sum().gradient(x)
  (gx * gx).sum().backward()

  def penalty(a, b):  # by hand, float64: d loss / dx = ((1 - tanh(xW1)^2) * W2^T) W1^T
    gxn = ((1 - np.tanh(xn.astype(np.float64) @ a) ** 2) * b.T) @ a.T
    return (gxn * gxn).sum()
  eps = 1e-6
  for t, arr, other in ((w1, w1n.astype(np.float64), "w2"), (w2, w2n.astype(np.float64), "w1")):
    numeric = np.zeros_like(arr)
    for i in np.ndindex(arr.shape):
      hi, lo = arr.copy(), arr.copy()
      hi[i] += eps; lo[i] -= eps
      args = (hi, w2n.astype(np.float64)) if other == "w2" else (w1n.astype(np.float64), hi)
      args_lo = (lo, w2n.astype(np.float64)) if other == "w2" else (w1n.astype(np.float64), lo)
      numeric[i] = (penalty(*args) - penalty(*args_lo)) / (2 * eps)
    assert np.abs(numeric).max() > 1e-2
    np.testing.assert_allclose(t.grad.numpy(), numeric, rtol=1e-3, atol=1e-4)
  if torch is not None:
    pw1, pw2, px = (torch.tensor(a, requires_grad=True) for a in (w1n, w2n, xn))
    (pgx,) = torch.autograd.grad((torch.tanh(px @ pw1) @ pw2).sum(), px, create_graph=True)
    (pgx * pgx).sum().backward()
    np.testing.assert_allclose(w1.grad.numpy(), pw1.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(w2.grad.numpy(), pw2.grad.numpy(), rtol=1e-4, atol=1e-5)


# ---- float16 ----
def test_float16_max_gradient_over_70000_ties_is_not_zero(device):
  """tinygrad #12296: counted in float16, 70,000 ties make inf and each share 1/inf = 0."""
  x = Tensor(np.full(70_000, 2.0, np.float16), device=device, requires_grad=True)
  x.max().backward()
  grad = x.grad.numpy()
  assert grad.dtype == np.float16
  np.testing.assert_allclose(grad.astype(np.float64), np.float16(1 / 70_000), rtol=1e-3)
  if torch is not None:
    p = torch.full((70_000,), 2.0, dtype=torch.float16, requires_grad=True)
    p.max().backward()
    np.testing.assert_allclose(grad.astype(np.float64), p.grad.numpy().astype(np.float64), rtol=1e-3)


def test_float16_var_and_std_of_many_elements_are_finite(device):
  data = (np.random.default_rng(3).standard_normal(70_000) * 3).astype(np.float16)  # sum of squares ~630,000
  x = Tensor(data, device=device, requires_grad=True)
  var, std = x.var(), x.std()
  assert var.dtype == std.dtype == dtypes.float16
  expected = data.astype(np.float64).var(ddof=1)
  np.testing.assert_allclose(var.numpy().astype(np.float64), expected, rtol=2e-3)
  np.testing.assert_allclose(std.numpy().astype(np.float64), math.sqrt(expected), rtol=2e-3)
  std.backward()
  assert np.isfinite(x.grad.numpy()).all()
  if torch is not None:
    p = torch.tensor(data)
    np.testing.assert_allclose(var.numpy().astype(np.float64), p.var().numpy().astype(np.float64), rtol=2e-3)


# ---- what a sweep of every unary function against PyTorch found (special values, float32 and float64) ----

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trig_gradients_stay_exact_at_large_arguments(device, dtype):
  """sin's gradient is cos x, computed as 1 - 2 sin^2(x/2) (halving is exact): as sin(pi/2 - x) it rounded
  pi/2 - x, 1300 ulp off at x = 1e4 in float32 and of the wrong sign at 1e30 (cos's gradient came out 1.6)."""
  if dtype == np.float64 and not Device[device].supports_dtype(dtypes.float64): pytest.skip("no float64 on this device")
  x = np.array([3.0, -20.0, 100.0, 1e4, -1e4, 1e30], dtype)
  rtol = 2e-6 if dtype == np.float32 else 1e-12
  x64 = x.astype(np.float64)
  _, sin_grad = grad_of(device, Tensor.sin, x)
  _, cos_grad = grad_of(device, Tensor.cos, x)
  np.testing.assert_allclose(sin_grad, np.cos(x64), rtol=rtol, atol=rtol)
  np.testing.assert_allclose(cos_grad, -np.sin(x64), rtol=rtol, atol=rtol)
  _, tan_grad = grad_of(device, Tensor.tan, x)
  np.testing.assert_allclose(tan_grad, 1 / np.cos(x64) ** 2, rtol=10 * rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sinh_cosh_gradients_near_zero_and_near_overflow(device, dtype):
  """cosh's gradient is sinh x (it was (e^x - e^-x) / 2 by the chain rule: 19% off at 1e-7 in float32), and both
  stay finite as far as their values do (sinh(89) is 2.2e38 in float32, where e^89 overflows)."""
  if dtype == np.float64 and not Device[device].supports_dtype(dtypes.float64): pytest.skip("no float64 on this device")
  big = 89.0 if dtype == np.float32 else 710.0
  x = np.array([1e-7, -1e-3, 0.5, -3.0, 30.0, big, -big], dtype)
  x64 = x.astype(np.float64)
  rtol = 5e-6 if dtype == np.float32 else 1e-12
  with np.errstate(over="ignore"):
    for fn, value, derivative in ((Tensor.sinh, np.sinh, np.cosh), (Tensor.cosh, np.cosh, np.sinh)):
      got, grad = grad_of(device, fn, x)
      assert np.isfinite(got).all() and np.isfinite(grad).all(), (fn.__name__, got, grad)
      allowed = rtol * (1 + np.abs(x64) / 3)  # (relative; exp's error grows with |x|)
      assert (np.abs(got - value(x64)) <= allowed * np.abs(value(x64))).all(), (fn.__name__, got, value(x64))
      assert (np.abs(grad - derivative(x64)) <= allowed * np.abs(derivative(x64))).all(), (fn.__name__, grad, derivative(x64))


def test_selu_uses_pytorchs_constants(device):
  """torch's selu scale and alpha, 1.0507009873554805 and 1.6732632423543772 (tinygrad's defaults are rounded:
  1e-6 off, 8 ulp of float32)."""
  x = np.array([-1.0, 0.5, 2.0], np.float32)
  value, grad = grad_of(device, Tensor.selu, x)
  scale, alpha = 1.0507009873554805, 1.6732632423543772
  x64 = x.astype(np.float64)
  np.testing.assert_allclose(value, scale * np.where(x64 > 0, x64, alpha * np.expm1(x64)), rtol=2e-7)
  np.testing.assert_allclose(grad, scale * np.where(x64 > 0, 1.0, alpha * np.exp(x64)), rtol=2e-7)


def test_hardswish_and_sign_at_infinities_and_nan_take_pytorchs_values(device):
  """hardswish's gradient at -inf is 0 (its quadratic side's slope was 0 * -inf = NaN); sign(NaN) is 0 as in
  PyTorch (numpy says NaN), and sign's gradient is 0 everywhere (it was 1 at NaN)."""
  x = np.array([-np.inf, -3.0, 0.0, np.inf, np.nan], np.float32)
  _, grad = grad_of(device, Tensor.hardswish, x)
  np.testing.assert_array_equal(grad[:4], [0.0, 0.0, 0.5, 1.0])
  value, grad = grad_of(device, Tensor.sign, x)
  np.testing.assert_array_equal(value, [-1.0, -1.0, 0.0, 1.0, 0.0])
  np.testing.assert_array_equal(grad, np.zeros(5))
  if torch is not None:
    torch_value, torch_grad = torch_grad_of(torch.sign, x)
    np.testing.assert_array_equal(value, torch_value)
    np.testing.assert_array_equal(torch_grad_of(F.hardswish, x)[1][:4], [0.0, 0.0, 0.5, 1.0])


def test_exact_gelu_of_minus_infinity_is_nan_in_float64_too(device):
  """x/2 erfc(-x/sqrt 2) at -inf: erfc clamped where it is 0 in float64 (at 27 it was a denormal, and -inf times it
  gave -inf); PyTorch gives NaN, float32 here did already."""
  if not Device[device].supports_dtype(dtypes.float64): pytest.skip("no float64 on this device")
  for dtype in (np.float32, np.float64):
    value = Tensor(np.array([-np.inf, -40.0], dtype), device=device).gelu("none").numpy()
    assert np.isnan(value[0]) and value[1] == 0, (dtype, value)
  # and just short of the clamp, erfc's denormals are still computed: -38/2 erfc(38/sqrt 2) = -1.0964627e-314
  np.testing.assert_allclose(Tensor(np.array([-38.0]), device=device).gelu("none").numpy(), [-1.0964627734e-314], rtol=1e-6)


def test_atan2_gradient_at_the_origin_and_at_extreme_magnitudes(device):
  """atan2's gradient is 0 at (0, 0), as in PyTorch (it was NaN there, which reaches every parameter), and exact
  where x^2 + y^2 would underflow or overflow float32: (1e-30, 1e-30) -> 5e29, (1, 1e30) -> 1e-30."""
  y = np.array([0.0, -0.0, 1e-30, 1.0, 1e30, 3.0], np.float32)
  x = np.array([0.0, 0.0, 1e-30, 1e30, 1.0, -4.0], np.float32)
  ty, tx = Tensor(y, device=device, requires_grad=True), Tensor(x, device=device, requires_grad=True)
  ty.atan2(tx).sum().backward()
  y64, x64 = y.astype(np.float64), x.astype(np.float64)
  r2 = np.where(x64 ** 2 + y64 ** 2 == 0, 1, x64 ** 2 + y64 ** 2)
  np.testing.assert_allclose(ty.grad.numpy(), np.where(r2 == 1, 0, x64 / r2) * (x64 ** 2 + y64 ** 2 > 0), rtol=1e-6, atol=1e-37)
  np.testing.assert_allclose(tx.grad.numpy(), np.where(r2 == 1, 0, -y64 / r2) * (x64 ** 2 + y64 ** 2 > 0), rtol=1e-6, atol=1e-37)


def test_clamp_with_a_nan_bound_gives_nan_like_pytorch(device):
  """A NaN bound, a number or in a tensor, gives NaN where it applies (a NaN never compared true, so x came back)."""
  x = Tensor(np.array([1.0, -1.0], np.float32), device=device)
  assert np.isnan(x.clamp(min=math.nan).numpy()).all() and np.isnan(x.clamp(max=math.nan).numpy()).all()
  np.testing.assert_array_equal(x.clamp(min=Tensor(np.array([math.nan, 0.0], np.float32), device=device)).numpy(), [np.nan, 0.0])
  np.testing.assert_array_equal(x.clamp(-0.5, 0.5).numpy(), [0.5, -0.5])


def test_prod_gradient_is_the_product_of_the_others_with_zeros_infinities_and_nan(device):
  """[inf, 1, 2, 3] gives 6 at the inf (inf / inf was NaN), [nan, 1, 2, 3] 6 at the NaN; the rest as PyTorch:
  zeros, infinities of either sign, and both together (0 * inf is NaN only where a product holds both)."""
  rows = np.array([[1, 2, 3, 4], [0, 2, 3, 4], [0, 0, 3, 4], [np.inf, 1, 2, 3], [-np.inf, 1, 2, -3], [np.inf, np.inf, 1, 1],
                   [-np.inf, np.inf, 2, 1], [np.nan, 1, 2, 3], [0, np.inf, 2, 3], [0, -np.inf, -2, 3]], np.float32)
  expected = np.array([[24, 12, 8, 6], [24, 0, 0, 0], [0, 0, 0, 0], [6, np.inf, np.inf, np.inf], [-6, np.inf, np.inf, -np.inf],
                       [np.inf] * 4, [np.inf, -np.inf, -np.inf, -np.inf], [6, np.nan, np.nan, np.nan], [np.inf, 0, np.nan, np.nan],
                       [np.inf, 0, np.nan, np.nan]], np.float32)
  _, grad = grad_of(device, lambda t: t.prod(1), rows)
  np.testing.assert_array_equal(grad, expected)
  if torch is not None: np.testing.assert_array_equal(grad, torch_grad_of(lambda p: p.prod(1), rows)[1])



def test_gradients_that_divide_by_a_subnormal_stay_finite(device):
  """prod's and cumprod's gradients divide the product by x_i, log2's the upstream gradient by x ln 2: a division
  of nodes was x * (1 / y), and 1 / y overflows to inf where y is subnormal (float32 1e-40, float16 1e-6) though
  the quotient is finite. PyTorch's: [1e-40, 2].prod() gives 2 at the 1e-40."""
  def check(fn, values, dtype, expected):
    t = Tensor(values, dtype=dtype, device=device, requires_grad=True)
    fn(t).sum().backward()
    np.testing.assert_allclose(t.grad.numpy().astype(np.float64), expected, rtol=2e-3)
  check(lambda t: t.prod(), [1e-40, 2.0], dtypes.float32, [2.0, 1e-40])
  check(lambda t: t.cumprod(0), [1e-40, 2.0, 3.0], dtypes.float32, [9.0, 4e-40, 2e-40])
  check(lambda t: t.log2() * 1e-10, [1e-40], dtypes.float32, [1e-10 / (1e-40 * math.log(2))])
  if Device[device].supports_dtype(dtypes.float16):
    check(lambda t: t.prod(), [1e-6], dtypes.float16, [1.0])
    check(lambda t: t.prod(), [3e-5, 3.0, 5.0], dtypes.float16, [15.0, np.float16(3e-5) * 5, np.float16(3e-5) * 3])


@pytest.mark.parametrize("name, fn, expected", [
  ("abs", lambda x, z: x.abs(), [-np.inf, np.inf]),
  ("maximum", lambda x, z: x.maximum(z), [0, np.inf]),
  ("minimum", lambda x, z: x.minimum(z), [np.inf, 0]),
  ("sigmoid", lambda x, z: x.sigmoid(), [np.inf, np.inf]),
  ("tanh", lambda x, z: x.tanh(), [np.inf, np.inf]),
  ("tanh_small", lambda x, z: (x * 0.1).tanh(), [np.inf, np.inf]),
  ("log_abs", lambda x, z: (x.abs() + 1).log(), [-np.inf, np.inf])])
def test_an_infinite_incoming_gradient_stays_infinite(device, name, fn, expected):
  """(f(x) / 0).sum().backward() sends +inf into f: PyTorch's gradient is +-inf, or 0 on the losing side of a
  maximum. The rules multiplied it by a 0/1 mask (inf * 0 = NaN) or summed inf - inf through sigmoid's and tanh's
  formulas."""
  x = Tensor([-0.5, 0.5], device=device, requires_grad=True)
  z = Tensor([0.1, -0.1], device=device)
  (fn(x, z) / Tensor([0.0, 0.0], device=device)).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), expected)



POS, NEG = np.inf, -np.inf
COMPOSED_RULES = {  # PyTorch's gradients at [-3, -0.5, 0, 0.5, 2, 30] for an incoming +inf
  "silu": (lambda t: t.silu(), [NEG, POS, POS, POS, POS, POS]), "gelu": (lambda t: t.gelu(), [NEG, POS, POS, POS, POS, POS]),
  "quick_gelu": (lambda t: t.quick_gelu(), [NEG, POS, POS, POS, POS, POS]),
  "gelu_none": (lambda t: t.gelu(approximate="none"), [NEG, POS, POS, POS, POS, POS]),
  "softplus": (lambda t: t.softplus(), [POS] * 6), "logsigmoid": (lambda t: t.logsigmoid(), [POS] * 6),
  "mish": (lambda t: t.mish(), [NEG, POS, POS, POS, POS, POS]), "hardswish": (lambda t: t.hardswish(), [0, POS, POS, POS, POS, POS]),
  "elu": (lambda t: t.elu(), [POS] * 6), "expm1": (lambda t: t.expm1(), [POS] * 6), "tan": (lambda t: t.tan(), [POS] * 6),
  "var": (lambda t: t.var().expand(6), [NEG] * 5 + [POS]), "std": (lambda t: t.std().expand(6), [NEG] * 5 + [POS]),
  "lerp": (lambda t: t.lerp(t * 2 + 1, 0.3), [POS] * 6),
  "lerp_tensor_weight": (lambda t: t.lerp(t * 2 + 1, Tensor([0.3, 0.7], device=t.device).reshape(2, 1).expand(2, 3).reshape(6)), [POS] * 6)}


@pytest.mark.parametrize("name", COMPOSED_RULES)
def test_composed_functions_pass_an_infinite_gradient_as_pytorch(device, name):
  """Functions composed of several primitives differentiate by PyTorch's formula as one factor (rules of their
  own): the composition's terms cancel, so an infinite incoming gradient summed inf - inf = NaN."""
  fn, expected = COMPOSED_RULES[name]
  x = Tensor([-3.0, -0.5, 0.0, 0.5, 2.0, 30.0], device=device, requires_grad=True)
  (fn(x) / Tensor.zeros(6, device=device)).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), expected)


@pytest.mark.parametrize("name", ["silu", "gelu", "gelu_none", "quick_gelu", "softplus", "mish", "hardswish", "elu", "expm1", "tan", "var", "lerp"])
def test_composed_functions_rules_differentiate_again(device, name):
  """The rules are Tensor math: their own gradient (the second derivative) matches central differences of the
  first derivative, in float64."""
  if not Device[device].supports_dtype(dtypes.float64): pytest.skip("no float64 on this device")
  fn = COMPOSED_RULES[name][0]
  values = np.array([-4.0, -1.3, -0.2, 0.1, 0.7, 2.5], np.float64)
  def first(v):
    t = Tensor(v, device=device, requires_grad=True)
    return fn(t).sum().gradient(t)[0]
  t = Tensor(values, device=device, requires_grad=True)
  second = fn(t).sum().gradient(t)[0].sum().gradient(t)[0].numpy()
  h = 1e-5  # (each value's second derivative alone: fn is elementwise, or for var all share one)
  numeric = np.array([(first(values + h * e).numpy() - first(values - h * e).numpy()).sum() / (2 * h) for e in np.eye(6)])
  np.testing.assert_allclose(second, numeric, rtol=1e-5, atol=1e-8)

def test_sigmoid_and_tanh_gradients_are_pytorchs_and_differentiate_again(device):
  """PyTorch's y (1 - y) and 1 - y^2 from the value (0 where y rounds to 1, as PyTorch's: sigmoid then
  binary_crossentropy at a confident logit gets 0, where an exact slope of 2e-9 times the loss's 1e12 gave 2061),
  and their own gradients are the second derivatives."""
  values = np.array([-20.0, -3.0, -0.2, 0.0, 0.1, 2.0, 20.0], np.float32)
  x64 = values.astype(np.float64)
  t = Tensor(values, device=device, requires_grad=True)
  y = t.sigmoid().numpy().astype(np.float64)
  _, grad = grad_of(device, lambda u: u.sigmoid(), values)
  np.testing.assert_allclose(grad, y * (1 - y), rtol=1e-6, atol=1e-12)
  assert grad[-1] == 0
  _, grad = grad_of(device, lambda u: u.tanh(), values)
  np.testing.assert_allclose(grad, 1 / np.cosh(x64) ** 2, rtol=1e-5, atol=1e-7)
  second = t.sigmoid().sum().gradient(t)[0].sum().gradient(t)[0]
  exact = 1 / (1 + np.exp(-x64))
  np.testing.assert_allclose(second.numpy(), exact * (1 - exact) * (1 - 2 * exact), rtol=1e-4, atol=1e-7)
  x = Tensor([20.0, 17.0], device=device, requires_grad=True)
  x.sigmoid().binary_crossentropy(Tensor([0.0, 0.0], device=device), reduction="none").sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])


def test_gradients_with_huge_but_finite_values(device):
  """Finite where PyTorch's are: quick_gelu at 3e38 (k x = inf times a slope of 0 was NaN); the divisor's gradient
  -g (a / b) / b (g * (a / b) first overflowed); binary_crossentropy_logits' sigmoid(x) - y at x = -20 (it
  cancelled to 0); logaddexp's second derivative where a == b (0 through |a - b|) and its far smaller term."""
  x = Tensor([3e38, -3e38], device=device, requires_grad=True)
  x.quick_gelu().sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [1.0, 0.0])
  b = Tensor([1e15, 1e15], device=device, requires_grad=True)
  ((Tensor([-1e30, 3e38], device=device) / b) * 1e30).sum().backward()
  np.testing.assert_allclose(b.grad.numpy(), [1e30, -3e38], rtol=1e-6)
  x = Tensor([-20.0, 0.5], device=device, requires_grad=True)
  x.binary_crossentropy_logits(Tensor([0.0, 1.0], device=device), reduction="sum").backward()
  np.testing.assert_allclose(x.grad.numpy(), [1 / (1 + np.exp(20.0)), 1 / (1 + np.exp(-0.5)) - 1], rtol=1e-6)
  a = Tensor([0.0, 1.0], device=device, requires_grad=True)
  second = a.logaddexp(Tensor([0.0, 1.0], device=device)).sum().gradient(a)[0].sum().gradient(a)[0]
  np.testing.assert_allclose(second.numpy(), [0.25, 0.25], rtol=1e-6)
  second = a.logaddexp2(Tensor([0.0, 1.0], device=device)).sum().gradient(a)[0].sum().gradient(a)[0]
  np.testing.assert_allclose(second.numpy(), [0.25 * math.log(2)] * 2, rtol=1e-6)
  np.testing.assert_allclose(Tensor([-20.0], device=device).logaddexp(Tensor([0.0], device=device)).numpy(), [2.0611537e-9], rtol=1e-6)
  x = Tensor([-5.0, 1e15], device=device, requires_grad=True)  # exact GELU: Phi(x) + x phi(x), -7.1466e-6 at -5
  (x.gelu(approximate="none") * 1e30).sum().backward()
  np.testing.assert_allclose(x.grad.numpy(), [-7.1466e24, 1e30], rtol=1e-4)
  x = Tensor([1e15, 1, -2, 0.5, 3], device=device, requires_grad=True)  # std: g * scale overflowed
  (x.std() * 1e30).backward()
  np.testing.assert_allclose(x.grad.numpy(), [4.472136e29] + [-1.118034e29] * 4, rtol=1e-5)
  x = Tensor([[1e15, -1e15, 0, 1, 1e15]], device=device, requires_grad=True)  # prod: another element is 0, the rest overflow
  x.prod(1).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [[0, 0, -np.inf, 0, 0]])
  x = Tensor([[1.0, 2, 3], [4, 4, 4]], device=device, requires_grad=True)  # a constant row: 0, twice
  second = x.std(1).sum().gradient(x)[0].sum().gradient(x)[0]
  np.testing.assert_array_equal(second.numpy(), np.zeros((2, 3)))


def test_normalize_of_a_zero_vector_has_a_finite_gradient(device):
  """F.normalize of a zero row is zero with gradient 1/eps, as in PyTorch (the norm's slope at 0 gave NaN, which
  reached every parameter upstream: zero embeddings and padding make such rows)."""
  rows = np.array([[0, 0, 0], [3, 4, 0]], np.float32)
  for p in (2.0, 3.0):
    value, grad = grad_of(device, lambda t: t.normalize(p=p, axis=1), rows)
    assert np.isfinite(grad).all(), (p, grad)
    np.testing.assert_allclose(value[0], [0, 0, 0])
    if torch is not None:
      tv, tg = torch_grad_of(lambda q: F.normalize(q, p=p, dim=1), rows)
      np.testing.assert_allclose(value, tv, rtol=1e-6)
      np.testing.assert_allclose(grad, tg, rtol=1e-5, atol=1e-6)


def test_binary_crossentropy_gradient_at_certain_probabilities(device):
  """PyTorch's BCE gradient (p - y) / max(p (1 - p), 1e-12): 0 where p = y = 0 or 1 (the clamped log's slope was
  0 / 0 = NaN there), and +-1e12 / n where p is certain and wrong; the targets' log(1 - p) - log(p)."""
  p = np.array([0.0, 1.0, 0.0, 1.0, 0.3, 0.5], np.float32)
  y = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.5], np.float32)
  tp, ty = Tensor(p, device=device, requires_grad=True), Tensor(y, device=device, requires_grad=True)
  loss = tp.binary_crossentropy(ty)
  loss.backward()
  np.testing.assert_allclose(loss.numpy(), (0 + 0 + 100 + 100 - np.log(0.3) + np.log(2)) / 6, rtol=1e-6)
  expected = np.array([0, 0, -1e12, 1e12, -0.7 / 0.21, 0]) / 6
  np.testing.assert_allclose(tp.grad.numpy(), expected, rtol=1e-5)
  with np.errstate(divide="ignore"):
    np.testing.assert_allclose(ty.grad.numpy(), (np.log1p(-p.astype(np.float64)) - np.log(p.astype(np.float64))) / 6, rtol=1e-5)
  if torch is not None:
    pp, py = torch.tensor(p, requires_grad=True), torch.tensor(y, requires_grad=True)
    F.binary_cross_entropy(pp, py).backward()
    np.testing.assert_allclose(tp.grad.numpy(), pp.grad.numpy(), rtol=1e-5)
    np.testing.assert_allclose(ty.grad.numpy(), py.grad.numpy(), rtol=1e-5)


@pytest.mark.parametrize("float_mask", [False, True])
def test_attention_query_with_every_key_masked_gets_zeros(device, float_mask):
  """A query that may attend to no key (a padded query row) gets output 0 and gradient 0, as PyTorch's attention
  gives it: a plain softmax of all -inf is NaN, and its NaN gradient reached every query, key and value."""
  q = np.random.default_rng(3).standard_normal((2, 4, 8)).astype(np.float32)
  allowed = np.ones((4, 4), bool)
  allowed[2] = False
  mask = Tensor(np.where(allowed, 0.0, -np.inf).astype(np.float32) if float_mask else allowed, device=device)
  t = Tensor(q, device=device, requires_grad=True)
  out = t.scaled_dot_product_attention(t, t, attn_mask=mask)
  out.sum().backward()
  value, grad = out.numpy(), t.grad.numpy()
  assert np.isfinite(grad).all() and (value[:, 2] == 0).all(), (value[:, 2], grad)
  # the other rows are plain attention over every key
  scores = q @ q.transpose(0, 2, 1) / np.sqrt(8)
  weights = np.exp(scores - scores.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  np.testing.assert_allclose(np.delete(value, 2, axis=1), np.delete(weights @ q, 2, axis=1), rtol=1e-5, atol=1e-6)
  if torch is not None:
    p = torch.tensor(q, requires_grad=True)
    tmask = torch.tensor(np.where(allowed, 0.0, -np.inf).astype(np.float32)) if float_mask else torch.tensor(allowed)
    F.scaled_dot_product_attention(p, p, p, attn_mask=tmask).sum().backward()
    np.testing.assert_allclose(grad, p.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("p", [2, 1, math.inf, -math.inf, 0, 3, 0.5, "fro"])
def test_norm_like_pytorch_with_a_zero_gradient_at_a_zero_vector(device, p):
  """x.norm(p, dim) as torch.norm: every order against numpy's linalg.norm, and at a zero vector a gradient of 0
  (PyTorch's), not sqrt's inf slope times the zeros below it (NaN)."""
  rows = np.array([[0, 0, 0, 0], [3, 4, 0, 0], [-1, 2, -2, 0.5]], np.float32)
  order = 2 if p == "fro" else p
  t = Tensor(rows, device=device, requires_grad=True)
  out = t.norm(p, dim=1)
  np.testing.assert_allclose(out.numpy(), np.linalg.norm(rows.astype(np.float64), ord=order, axis=1), rtol=1e-6)
  np.testing.assert_allclose(t.norm(p).numpy(), np.linalg.norm(rows.astype(np.float64).ravel(), ord=order), rtol=1e-6)
  if p == 0: return  # (a count: no gradient)
  (out * Tensor(np.array([1, 2, 3], np.float32), device=device)).sum().backward()
  grad = t.grad.numpy()
  assert np.isfinite(grad).all(), grad
  np.testing.assert_array_equal(grad[0], np.zeros(4))
  if torch is not None:
    q = torch.tensor(rows, requires_grad=True)
    (q.norm(p, dim=1) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_allclose(grad, q.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("p", [math.inf, -math.inf])
def test_infinity_norm_of_a_row_with_nan_has_a_zero_gradient(device, p):
  """norm(p=+-inf) of a row holding NaN is NaN, and its gradient 0, as PyTorch's (the magnitudes equal to a NaN
  norm: none); it was NaN everywhere in the row (max's rule). Ties share the gradient evenly, times their sign."""
  rows = np.array([[1, np.nan, -3], [3, -3, 1], [2, -2, 2]], np.float32)
  t = Tensor(rows, device=device, requires_grad=True)
  out = t.norm(p, dim=1)
  (out * Tensor(np.array([1, 2, 3], np.float32), device=device)).sum().backward()
  if p > 0: want = [[0, 0, 0], [1, -1, 0], [1, -1, 1]]
  else: want = [[0, 0, 0], [0, 0, 2], [1, -1, 1]]
  np.testing.assert_array_equal(t.grad.numpy(), np.array(want, np.float32))


def test_log1p_and_expm1_like_pytorch(device):
  """Tensor.log1p and Tensor.expm1, as torch's: exact for tiny x (1e-30 stays 1e-30), log1p(inf) is inf (Goldberg's
  log(u) * x / (u - 1) was inf / inf), and log1p's gradient is 1 / (1 + x), finite below -1 where the value is NaN
  (as PyTorch's; the composition's was NaN)."""
  x = np.array([1e-30, -1e-7, 0.5, -0.5, 3.0, np.inf, -3.0, -20.0], np.float32)
  value, grad = grad_of(device, Tensor.log1p, x)
  with np.errstate(invalid="ignore", divide="ignore"):
    np.testing.assert_allclose(value, np.log1p(x.astype(np.float64)), rtol=1e-6)
    np.testing.assert_allclose(grad, 1 / (1 + x.astype(np.float64)), rtol=1e-6)
  if torch is not None: np.testing.assert_allclose(grad, torch_grad_of(torch.log1p, x)[1], rtol=1e-6)
  value, grad = grad_of(device, Tensor.expm1, x[:5])
  np.testing.assert_allclose(value, np.expm1(x[:5].astype(np.float64)), rtol=1e-6)
  np.testing.assert_allclose(grad, np.exp(x[:5].astype(np.float64)), rtol=1e-6)


@pytest.mark.parametrize("p", [2, 1, math.inf, 3])
def test_normalize_divides_by_the_norm_of_its_order(device, p):
  """normalize(p) is x / max(norm_p(x), eps) for every order, inf included: it computed its own norm, and at
  p = inf that was sum(|x|^inf)^0, 1 for any row (x came back unchanged, silently); it is `norm` now."""
  rows = np.array([[0.5, -2.0, 1.0], [0.0, 0.0, 0.0], [3.0, 4.0, 0.0]], np.float32)
  got = Tensor(rows, device=device).normalize(p=p, axis=1).numpy()
  norms = np.linalg.norm(rows.astype(np.float64), ord=p, axis=1, keepdims=True)
  np.testing.assert_allclose(got, rows / np.maximum(norms, 1e-12), rtol=1e-6)


def test_cos_gradient_is_minus_sin_and_elu_second_derivative_at_zero(device):
  """cos's gradient is -sin x by a rule: through its reduction by (k + 1/2) pi it was only absolutely accurate near
  0 (11% off at 1e-6, 6x at 1e-8) and |x|'s slope at 0 made cos''(0) 0. elu's and celu's second derivative at 0 is
  0, as PyTorch's double backward (the exp side's alpha before)."""
  values = np.array([0.0, 1e-20, 1e-8, 1e-6, 1e-4, 3.0], np.float32)
  x = Tensor(values, device=device, requires_grad=True)
  first = x.cos().sum().gradient(x)[0]
  np.testing.assert_allclose(first.numpy(), -np.sin(values.astype(np.float64)), rtol=1e-6, atol=1e-30)
  np.testing.assert_allclose(first.sum().gradient(x)[0].numpy(), -np.cos(values.astype(np.float64)), rtol=1e-6)
  for name in ("elu", "celu"):
    z = Tensor([0.0, -1.0, 1.0], device=device, requires_grad=True)
    second = getattr(z, name)().sum().gradient(z)[0].sum().gradient(z)[0].numpy()
    np.testing.assert_allclose(second, [0.0, np.exp(-1.0), 0.0], rtol=1e-6, err_msg=name)
