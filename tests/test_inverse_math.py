"""Inverse trigonometric and hyperbolic functions (asin, acos, atan, atan2, asinh, acosh, atanh; teeny/ops/
elementwise.py): values against numpy to an ulp or two in float32 and float64, the edges (+-1, +-inf, NaN, signed
zeros) exactly, float16, and gradients against PyTorch, second derivatives included."""
import numpy as np
import pytest
from teeny import Tensor, dtypes

FUNCTIONS = {"atan": np.arctan, "asin": np.arcsin, "acos": np.arccos, "asinh": np.arcsinh, "acosh": np.arccosh,
             "atanh": np.arctanh}
rng = np.random.default_rng(3)
INSIDE = rng.uniform(-1, 1, 300)  # asin, acos and atanh's domain
WIDE = rng.standard_normal(200) * 10.0 ** rng.integers(-8, 30, 200)
EDGES = [-1.0, 1.0, 0.0, -0.0, 1.5, -1.5, 0.999999, -0.999999, 1.000001, np.inf, -np.inf, np.nan]


def _check(got: np.ndarray, want: np.ndarray, ulps: float):
  """Finite results within `ulps` units of the dtype's epsilon (relative); NaN and infinities exactly."""
  np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
  np.testing.assert_array_equal(got[np.isinf(want)], want[np.isinf(want)])
  finite = np.isfinite(want)
  np.testing.assert_allclose(got[finite], want[finite], rtol=ulps * np.finfo(got.dtype).eps, atol=0)


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_match_numpy(device, name, dtype):
  x = np.concatenate([INSIDE, WIDE, EDGES]).astype(dtype)
  if name == "acosh": x = np.concatenate([x, 1 + np.abs(WIDE[:50]).astype(dtype)])
  with np.errstate(all="ignore"): want = FUNCTIONS[name](x.astype(np.float64)).astype(dtype)
  _check(getattr(Tensor(x, device=device), name)().numpy(), want, ulps=2)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_half_and_int_inputs(device, name):
  """float16 computes in float32 and rounds once; ints compute in the default float (like PyTorch)."""
  x = np.concatenate([INSIDE, [1.0, -1.0, 2.0, 100.0]]).astype(np.float16)
  with np.errstate(all="ignore"): want = FUNCTIONS[name](x.astype(np.float64)).astype(np.float16)
  out = getattr(Tensor(x, device=device), name)()
  assert out.dtype == dtypes.float16
  _check(out.numpy().astype(np.float64), want.astype(np.float64), ulps=1e-3 / np.finfo(np.float64).eps)
  ints = getattr(Tensor([1, 2, 3], device=device), name)()
  assert ints.dtype == dtypes.float32
  with np.errstate(all="ignore"): np.testing.assert_allclose(ints.numpy(), FUNCTIONS[name](np.array([1.0, 2.0, 3.0])), rtol=3e-7)


def test_atan2_every_quadrant_zero_and_infinity(device):
  """torch.atan2(y, x) = numpy.arctan2: the quadrant from both signs, signed zeros (atan2(0, -0) = pi), infinities."""
  values = np.array([0.0, -0.0, 1.0, -1.0, 2.5, -3e-30, 7e20, np.inf, -np.inf, np.nan], np.float32)
  y, x = (a.ravel() for a in np.meshgrid(values, values))
  y, x = np.concatenate([y, rng.standard_normal(200).astype(np.float32)]), np.concatenate([x, rng.standard_normal(200).astype(np.float32)])
  got = Tensor(y, device=device).atan2(Tensor(x, device=device)).numpy()
  want = np.arctan2(y, x)
  _check(got, want, ulps=3)
  np.testing.assert_array_equal(np.signbit(got[want == 0]), np.signbit(want[want == 0]))
  np.testing.assert_allclose(Tensor(y, device=device).arctan2(2.0).numpy(), np.arctan2(y, np.float32(2.0)), rtol=4e-7)


@pytest.mark.parametrize("name", ["atan", "asin", "acos", "asinh", "acosh", "atanh", "atan2"])
def test_gradients_match_torch(device, name):
  torch = pytest.importorskip("torch")
  x = np.array([0.3, -0.7, 0.05, 0.99, -0.2], np.float64)
  if name == "acosh": x = 1.5 + np.abs(x) * 3
  if name in ("atan", "asinh"): x = x * 50
  other = np.array([0.5, -2.0, 1e-3, -0.1, 3.0], np.float64)
  t, tt = Tensor(x, device=device, requires_grad=True), torch.tensor(x, requires_grad=True)
  o, ot = Tensor(other, device=device, requires_grad=True), torch.tensor(other, requires_grad=True)
  out = t.atan2(o) if name == "atan2" else getattr(t, name)()
  want = torch.atan2(tt, ot) if name == "atan2" else getattr(torch, name)(tt)
  (out * out).sum().backward()
  (want * want).sum().backward()
  np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-12)
  if name == "atan2": np.testing.assert_allclose(o.grad.numpy(), ot.grad.numpy(), rtol=1e-12)


def test_gradients_at_the_edges_are_torchs(device):
  """asin' and acos' at +-1 are +-inf, atanh' at +-1 inf, atan' at +-inf 0 (no NaN from the composition's branches)."""
  x = Tensor([1.0, -1.0], device=device, requires_grad=True)
  x.asin().sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [np.inf, np.inf])
  y = Tensor([np.inf, -np.inf, 0.0], device=device, requires_grad=True)
  y.atan().sum().backward()
  np.testing.assert_array_equal(y.grad.numpy(), [0.0, 0.0, 1.0])


def test_second_derivative_of_atan(device):
  """The gradient rules are built from primitives, so they differentiate again: atan''(x) = -2x / (1 + x^2)^2."""
  x = Tensor([0.5, -2.0, 3.0], device=device, requires_grad=True)
  (first,) = x.atan().sum().gradient(x)
  first.sum().backward()
  v = np.array([0.5, -2.0, 3.0])
  np.testing.assert_allclose(x.grad.numpy(), -2 * v / (1 + v * v) ** 2, rtol=1e-6)
