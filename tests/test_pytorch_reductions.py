"""PyTorch's reductions, order statistics and products that teeny spells as PyTorch does (teeny/ops/pytorch_reduce.py,
pytorch_linalg.py): amax/amin (ties share the gradient evenly), aminmax, nansum, nanmean, count_nonzero, equal,
median and nanmedian (with and without dim), kthvalue, msort, quantile and nanquantile, and outer, mv, bmm, addmm,
baddbmm, trace, kron, cross, dist, cov and corrcoef. Values against numpy (numpy's median is the mean of the middle
two: the lower one is written out), NaN and empty cases, errors, and against PyTorch where it is installed
(tests/like_torch.py)."""
import numpy as np
import pytest
from teeny import Tensor, dtypes, Device
from like_torch import assert_like_torch

nan, inf = np.nan, np.inf
rng = np.random.default_rng(11)
# ties, a NaN in row 1, and a row without either
X = np.array([[3.0, 1.0, 2.0, 1.0], [nan, 1.0, 5.0, 2.0], [2.0, 2.0, 2.0, 0.0]], np.float32)
FINITE = np.array([[3.0, 1.0, 2.0, 1.0], [4.0, 1.0, 5.0, 2.0], [2.0, 2.0, 2.0, 0.0]], np.float32)
R = rng.standard_normal((3, 5)).astype(np.float32)  # (no ties: indices are unique)


@pytest.mark.parametrize("dim", [(), 1, -1, (0, 1), [0], None])
@pytest.mark.parametrize("keepdim", [False, True])
def test_amax_amin_over_dims(device, dim, keepdim):
  axis = None if dim in ((), None) else tuple(dim) if isinstance(dim, list) else dim
  np.testing.assert_array_equal(Tensor(X, device=device).amax(dim, keepdim).numpy(), np.amax(X, axis, keepdims=keepdim))  # (NaN wins)
  np.testing.assert_array_equal(Tensor(FINITE, device=device).amin(dim, keepdim).numpy(), np.amin(FINITE, axis, keepdims=keepdim))
  if dim is not None:  # (torch.amax takes no None)
    assert_like_torch(device, lambda make, x: x.amax(dim, keepdim), X)
    assert_like_torch(device, lambda make, x: x.amin(dim, keepdim), FINITE)


def test_amax_shares_ties_evenly_and_aminmax_pairs(device):
  """PyTorch's amax gives tied maxima equal shares (max(dim=) gives one of them all); a row with a NaN gives NaN
  gradients, as PyTorch's."""
  t = Tensor(X, device=device, requires_grad=True)
  t.amax(1).sum().backward()
  np.testing.assert_allclose(t.grad.numpy(), [[1, 0, 0, 0], [nan, nan, nan, nan], [1 / 3, 1 / 3, 1 / 3, 0]], rtol=1e-6)
  t = Tensor(FINITE, device=device, requires_grad=True)
  pair = t.aminmax(dim=1)
  np.testing.assert_array_equal(pair.min.numpy(), FINITE.min(1))
  np.testing.assert_array_equal(pair.max.numpy(), FINITE.max(1))
  (pair.min + 2 * pair.max).sum().backward()
  np.testing.assert_allclose(t.grad.numpy(), [[2, 0.5, 0, 0.5], [0, 1, 2, 0], [2 / 3, 2 / 3, 2 / 3, 1]], rtol=1e-6)
  low, high = Tensor(X, device=device).aminmax()  # (a named pair unpacks)
  assert np.isnan(low.item()) and np.isnan(high.item())
  assert Tensor([[1, 2]], device=device).aminmax(dim=1, keepdim=True).max.shape == (1, 1)
  assert_like_torch(device, lambda make, x: x.aminmax(dim=0).min * 3 + x.aminmax(dim=0).max, FINITE)
  with pytest.raises(TypeError, match="one dim"): Tensor(X, device=device).aminmax(dim=(0, 1))
  with pytest.raises(RuntimeError, match="empty"): Tensor.ones(2, 0, device=device).amax(1)
  assert Tensor.ones(2, 0, device=device).amax(0).shape == (0,)


def test_nansum_nanmean_count_nonzero_equal(device):
  t = Tensor(X, device=device, requires_grad=True)
  np.testing.assert_array_equal(t.nansum(1).numpy(), np.nansum(X, 1))
  np.testing.assert_array_equal(t.nansum().numpy(), np.nansum(X))
  np.testing.assert_allclose(t.nanmean(0, keepdim=True).numpy(), np.nanmean(X, 0, keepdims=True), rtol=1e-6)
  t.nansum().backward()
  np.testing.assert_array_equal(t.grad.numpy(), (~np.isnan(X)).astype(np.float32))  # (none to the NaN)
  assert np.isnan(Tensor([[nan, 1.0], [nan, 2.0]], device=device).nanmean(0).numpy()[0])  # (no numbers: NaN)
  assert Tensor([1, 2], dtype=dtypes.int8, device=device).nansum().dtype == dtypes.int64
  assert Tensor([1, 2], device=device).nanmean().dtype == dtypes.float32  # (teeny's mean's rule; PyTorch raises)
  assert Tensor([1.0, nan], device=device).nansum(dtype=dtypes.float64).dtype == dtypes.float64
  shifted = X - 2
  for dim in (None, 1, -1, (0, 1)):
    got = Tensor(shifted, device=device).count_nonzero(dim)
    assert got.dtype == dtypes.int64
    np.testing.assert_array_equal(got.numpy(), np.count_nonzero(shifted, axis=dim))  # (NaN counts)
  assert_like_torch(device, lambda make, x: x.nansum(1) + x.nanmean(1), X)
  assert Tensor(FINITE, device=device).equal(Tensor(FINITE, device=device))
  assert not Tensor(X, device=device).equal(Tensor(X, device=device))  # (NaN equals nothing)
  assert Tensor([1, 2], device=device).equal(Tensor([1.0, 2.0], device=device))
  assert not Tensor([1, 2], device=device).equal(Tensor([[1, 2]], device=device))
  assert isinstance(Tensor([1], device=device).equal(Tensor([1], device=device)), bool)


def lower_median(x: np.ndarray, axis: int, ignore_nan: bool) -> np.ndarray:
  """PyTorch's median along axis: the lower middle value (numpy's median averages the two), NaN where a NaN is
  present; ignore_nan: of the numbers only (nanmedian), NaN where there are none."""
  def of_row(row):
    numbers = np.sort(row[~np.isnan(row)])
    if (not ignore_nan and len(numbers) < len(row)) or not len(numbers): return nan
    return numbers[(len(numbers) - 1) // 2]
  return np.apply_along_axis(of_row, axis, x)


@pytest.mark.parametrize("name", ["median", "nanmedian"])
def test_median_and_nanmedian(device, name):
  ignore_nan = name == "nanmedian"
  rows = np.array([[3.0, 1.0, 2.0, 5.0], [nan, 1.0, 5.0, 2.0], [nan, 0.0, nan, nan], [nan, nan, nan, nan]], np.float32)
  for dim in (0, 1, -1):
    for keepdim in (False, True):
      values, indices = getattr(Tensor(rows, device=device), name)(dim, keepdim)
      want = lower_median(rows, dim, ignore_nan)
      np.testing.assert_array_equal(values.numpy(), np.expand_dims(want, dim) if keepdim else want)
      # the index names an element holding the value (a NaN, where the value is NaN)
      picked = np.take_along_axis(rows, indices.numpy() if keepdim else np.expand_dims(indices.numpy(), dim), dim)
      np.testing.assert_array_equal(picked if keepdim else picked.squeeze(dim), values.numpy())
  np.testing.assert_array_equal(getattr(Tensor(X, device=device), name)().numpy(), lower_median(X.reshape(-1), 0, ignore_nan))
  # (which NaN of a row of NaNs nanmedian names is PyTorch's choice, unspecified: that row is left out)
  assert_like_torch(device, lambda make, x: getattr(x, name)(1).values * 2 + getattr(x, name)(), rows[:3].copy())
  assert_like_torch(device, lambda make, x: getattr(x, name)(1).indices, R, grad=False)  # (no ties: one index)


def test_median_of_all_shares_the_gradient_among_ties(device):
  """median() and nanmedian() with no dim share the gradient evenly among the elements equal to the result, or
  among the NaNs when it is NaN (PyTorch's rule); with a dim, it goes to the element at the index."""
  for values, name, want in [([1.0, 1.0, 1.0], "median", [1 / 3] * 3), ([nan, 1.0, nan], "median", [0.5, 0, 0.5]),
                             ([2.0, 2.0, nan, 5.0, 1.0], "nanmedian", [0.5, 0.5, 0, 0, 0]), ([nan, nan], "nanmedian", [0.5, 0.5])]:
    t = Tensor(np.array(values, np.float32), device=device, requires_grad=True)
    getattr(t, name)().backward()
    np.testing.assert_allclose(t.grad.numpy(), want, rtol=1e-6, err_msg=f"{name} of {values}")
  t = Tensor(R, device=device, requires_grad=True)
  values, indices = t.median(1)
  values.sum().backward()
  np.testing.assert_array_equal(t.grad.numpy(), np.eye(5, dtype=np.float32)[indices.numpy()])
  assert Tensor([3, 1, 2, 4], device=device).median().item() == 2  # (ints: the lower middle one)
  assert np.isnan(Tensor(np.zeros(0, np.float32), device=device).median().item())
  assert Tensor(5.0, device=device).median(0).values.item() == 5.0
  with pytest.raises(RuntimeError, match="size 0"): Tensor.ones(2, 0, device=device).median(1)


def test_kthvalue_and_msort(device):
  x = np.array([3.0, 1.0, 2.0, nan], np.float32)  # (NaN counts as the largest)
  for k, (value, index) in enumerate([(1.0, 1), (2.0, 2), (3.0, 0), (nan, 3)], start=1):
    got = Tensor(x, device=device).kthvalue(k)
    np.testing.assert_array_equal([got.values.item(), got.indices.item()], [value, index])
  got = Tensor([[1, 5], [4, 2]], device=device).kthvalue(2, 0, keepdim=True)
  assert got.values.numpy().tolist() == [[4, 5]] and got.indices.numpy().tolist() == [[1, 0]]
  t = Tensor(R, device=device, requires_grad=True)
  got = t.kthvalue(4, dim=1)
  np.testing.assert_array_equal(got.values.numpy(), np.sort(R, 1)[:, 3])
  got.values.sum().backward()
  np.testing.assert_array_equal(t.grad.numpy(), np.eye(5, dtype=np.float32)[np.argsort(R, 1)[:, 3]])
  np.testing.assert_array_equal(Tensor(X, device=device).msort().numpy(), np.sort(X, 0))  # (NaN last, as numpy's)
  with pytest.raises(RuntimeError, match="out of range"): Tensor([3.0, 1.0], device=device).kthvalue(3)
  with pytest.raises(RuntimeError, match="out of range"): Tensor([3.0, 1.0], device=device).kthvalue(0)
  assert_like_torch(device, lambda make, x: x.kthvalue(2, 0).values + x.msort()[0], R)


@pytest.mark.parametrize("interpolation", ["linear", "lower", "higher", "nearest", "midpoint"])
def test_quantile_and_nanquantile(device, interpolation):
  """numpy's quantile methods of the same names (NaN: NaN, or left out by nanquantile); q a float or a 1-d tensor
  (its dim first in the result), over a dim or all elements, keepdim both ways."""
  qs = np.array([0.0, 0.1, 0.125, 0.375, 0.5, 0.625, 0.9, 1.0], np.float32)
  rows = np.array([[1.0, 2.0, 3.0, 4.0, 7.0], [4.0, nan, 1.0, 2.0, 0.5], [nan] * 5], np.float32)
  t = Tensor(rows, device=device)
  for name, numpy_fn in [("quantile", np.quantile), ("nanquantile", np.nanquantile)]:
    with np.errstate(all="ignore"), np.testing.suppress_warnings() as quiet:
      quiet.filter(RuntimeWarning)
      want = numpy_fn(rows.astype(np.float64), qs, axis=1, method=interpolation, keepdims=True)
      want_all = numpy_fn(R.astype(np.float64), 0.3, method=interpolation)
    got = getattr(t, name)(Tensor(qs, device=device), dim=1, keepdim=True, interpolation=interpolation)
    assert got.shape == (8, 3, 1)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-6)
    got = getattr(Tensor(R, device=device), name)(0.3, interpolation=interpolation)
    np.testing.assert_allclose(got.numpy(), want_all, rtol=1e-6)
  assert Tensor(R, device=device).quantile(0.3, keepdim=True).shape == (1, 1)
  assert Tensor(R, device=device).quantile(Tensor(qs[:2], device=device), dim=0).shape == (2, 5)
  assert_like_torch(device, lambda make, x: x.quantile(make(qs), dim=1, interpolation=interpolation), rows, rtol=1e-6)
  assert_like_torch(device, lambda make, x: x.nanquantile(make(qs), dim=0, interpolation=interpolation), rows.T.copy(), rtol=1e-6)


def test_quantile_over_any_dim_of_a_4d_tensor(device):
  # the dim was moved last by a transpose, which reversed the other dims' order: quantile(0.5, dim=0) of a
  # (2, 3, 4) tensor gave [6, 10, 14, 7] for [6, 7, 8, 9]
  a = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
  qs = np.array([0.1, 0.9], np.float32)
  for dim in range(4):
    for keepdim in (False, True):
      got = Tensor(a, device=device).quantile(0.3, dim=dim, keepdim=keepdim).numpy()
      np.testing.assert_allclose(got, np.quantile(a.astype(np.float64), 0.3, axis=dim, keepdims=keepdim), rtol=1e-6, atol=1e-6)
      got = Tensor(a, device=device).nanquantile(Tensor(qs, device=device), dim=dim, keepdim=keepdim).numpy()
      np.testing.assert_allclose(got, np.nanquantile(a.astype(np.float64), qs, axis=dim, keepdims=keepdim), rtol=1e-6, atol=1e-6)


def test_quantile_gradients_and_errors(device):
  """The linear blend's gradient goes to the two neighbours by their weights (to the NaN, in a row holding one);
  a tensor q outside [0, 1] gives NaN (its values are not read)."""
  t = Tensor(np.array([[1.0, 2.0, 3.0, 4.0], [4.0, nan, 1.0, 2.0]], np.float32), device=device, requires_grad=True)
  t.quantile(0.4, dim=1).sum().backward()
  np.testing.assert_allclose(t.grad.numpy(), [[0, 0.8, 0.2, 0], [0, 1, 0, 0]], rtol=1e-6)
  np.testing.assert_array_equal(Tensor([1.0, 2.0, 3.0], device=device).quantile(Tensor([-0.5, 0.5, 2.0], device=device)).numpy(), [nan, 2.0, nan])
  x = Tensor([1.0, 2.0], device=device)
  with pytest.raises(TypeError, match="float"): Tensor([1, 2], device=device).quantile(0.5)
  with pytest.raises(RuntimeError, match=r"\[0, 1\]"): x.quantile(1.5)
  with pytest.raises(TypeError, match="dtype"): x.quantile(Tensor([0.5], dtype=dtypes.float64, device=device))
  with pytest.raises(RuntimeError, match="1-d"): x.quantile(Tensor([[0.5]], device=device))
  with pytest.raises(RuntimeError, match="empty"): Tensor(np.zeros(0, np.float32), device=device).quantile(0.5)
  with pytest.raises(RuntimeError, match="interpolation"): x.quantile(0.5, interpolation="cubic")


def test_outer_mv_bmm_and_the_scaled_sums(device):
  v3, v4 = rng.standard_normal(3).astype(np.float32), rng.standard_normal(4).astype(np.float32)
  m = rng.standard_normal((3, 4)).astype(np.float32)
  b1, b2 = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((2, 4, 5)).astype(np.float32)
  np.testing.assert_allclose(Tensor(v3, device=device).outer(Tensor(v4, device=device)).numpy(), np.outer(v3, v4), rtol=1e-6)
  assert Tensor([1, 2], device=device).outer(Tensor([1.5], device=device)).dtype == dtypes.float32
  np.testing.assert_allclose(Tensor(m, device=device).mv(Tensor(v4, device=device)).numpy(), m @ v4, rtol=1e-5)
  np.testing.assert_allclose(Tensor(b1, device=device).bmm(Tensor(b2, device=device)).numpy(), b1 @ b2, rtol=1e-5)
  bias = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
  got = Tensor(bias, device=device).addmm(Tensor(m.T.copy(), device=device), Tensor(m, device=device), beta=0.5, alpha=2)
  np.testing.assert_allclose(got.numpy(), 0.5 * bias + 2 * (m.T @ m), rtol=1e-5)
  # beta = 0 leaves self out: its NaNs don't show, and it gets a gradient of 0 (PyTorch's)
  ignored = Tensor(np.full((4, 4), nan, np.float32), device=device, requires_grad=True)
  got = ignored.addmm(Tensor(m.T.copy(), device=device), Tensor(m, device=device), beta=0)
  np.testing.assert_allclose(got.numpy(), m.T @ m, rtol=1e-5)
  got.sum().backward()
  assert not ignored.grad.numpy().any()
  got = Tensor(np.ones((3, 5), np.float32), device=device).baddbmm(Tensor(b1, device=device), Tensor(b2, device=device), alpha=3)
  np.testing.assert_allclose(got.numpy(), 1 + 3 * (b1 @ b2), rtol=1e-5)
  assert Tensor([[1]], device=device).addmm(Tensor([[1]], device=device), Tensor([[2]], device=device), alpha=2).item() == 5
  assert_like_torch(device, lambda make, s, a, b: s.addmm(a, b, beta=0.5, alpha=2) + s.outer(s).sum(), bias, m.T.copy(), m, rtol=1e-5)
  assert_like_torch(device, lambda make, s, a, b: s.baddbmm(a, b, beta=2) + a.bmm(b)[0, 0, 0], np.ones((3, 5), np.float32), b1, b2, rtol=1e-5)
  assert_like_torch(device, lambda make, a, v: a.mv(v), m, v4, rtol=1e-5)


def test_product_errors(device):
  ones = lambda *shape: Tensor.ones(*shape, device=device)  # noqa: E731
  with pytest.raises(RuntimeError, match="1-d"): ones(1, 1).outer(ones(1))
  with pytest.raises(RuntimeError, match="1-d"): ones(2, 3).mv(ones(3, 1))
  with pytest.raises(RuntimeError): ones(2, 3).mv(ones(4))
  with pytest.raises(RuntimeError, match="3-d"): ones(2, 3).bmm(ones(3, 4))
  with pytest.raises(RuntimeError, match="batches"): ones(2, 2, 3).bmm(ones(1, 3, 4))
  with pytest.raises(RuntimeError, match="2-d"): ones(1).addmm(ones(1), ones(1))
  with pytest.raises(RuntimeError, match="broadcast"): ones(2, 3).addmm(ones(2, 4), ones(4, 2))
  with pytest.raises(TypeError, match="floating point"): Tensor([[1]], device=device).addmm(Tensor([[1]], device=device), Tensor([[2]], device=device), beta=0.5)
  with pytest.raises(RuntimeError, match="2-d"): ones(3).trace()
  with pytest.raises(RuntimeError, match="size 3"): ones(2, 4).cross(ones(2, 4))
  with pytest.raises(RuntimeError, match="size 3"): ones(4, 3).cross(ones(4, 3), dim=0)


def test_trace_kron_cross_dist(device):
  m = rng.standard_normal((3, 4)).astype(np.float32)
  assert Tensor(m, device=device).trace().numpy() == pytest.approx(np.trace(m), rel=1e-6)
  ints = Tensor([[1, 2], [3, 4]], dtype=dtypes.int8, device=device).trace()
  assert ints.dtype == dtypes.int64 and ints.item() == 5
  a, b = rng.standard_normal((2, 2)).astype(np.float32), rng.standard_normal((2, 3, 2)).astype(np.float32)
  for x, y in [(a, b), (a[0], b), (b, a), (np.float32(2.0), a)]:
    np.testing.assert_allclose(Tensor(x, device=device).kron(Tensor(y, device=device)).numpy(), np.kron(x, y), rtol=1e-6)
  u, w = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((1, 3)).astype(np.float32)
  np.testing.assert_allclose(Tensor(u, device=device).cross(Tensor(w, device=device), dim=-1).numpy(), np.cross(u, w), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(Tensor(u.T.copy(), device=device).cross(Tensor(u[::-1].T.copy(), device=device)).numpy(),
                             np.cross(u.T, u[::-1].T, axis=0), rtol=1e-5, atol=1e-6)  # (no dim: the first of size 3)
  for p in (2, 1, 3, inf, -inf, 0):
    got = Tensor(m, device=device).dist(Tensor(m[0], device=device), p)
    diff = (m - m[0]).reshape(-1)
    want = np.count_nonzero(diff) if p == 0 else np.linalg.norm(diff, p)
    assert got.numpy() == pytest.approx(want, rel=1e-5), f"p={p}"
  same = Tensor([1.0, 2.0], device=device, requires_grad=True)
  same.dist(Tensor([1.0, 2.0], device=device)).backward()
  assert same.grad.numpy().tolist() == [0.0, 0.0]  # (at distance 0: PyTorch's 0, not NaN)
  assert_like_torch(device, lambda make, x, y: x.kron(y) + 0, a, b[0].copy(), rtol=1e-6)
  assert_like_torch(device, lambda make, x, y: x.cross(y, dim=-1), u, w, rtol=1e-5, atol=1e-6)
  assert_like_torch(device, lambda make, x, y: x.dist(y, 3) + x.dist(y, inf), m, m[1].copy(), rtol=1e-5)


def test_cov_and_corrcoef(device):
  x = np.array([[0.0, 1.0, 2.0, 5.0], [2.0, 1.0, 0.0, 3.0], [1.0, -1.0, 4.0, 2.0]], np.float32)
  fweights, aweights = np.array([1, 2, 1, 3]), np.array([0.5, 1.0, 2.0, 1.0], np.float32)
  t = Tensor(x, device=device)
  np.testing.assert_allclose(t.cov().numpy(), np.cov(x), rtol=1e-5)
  np.testing.assert_allclose(t.cov(correction=0).numpy(), np.cov(x, ddof=0), rtol=1e-5)
  got = t.cov(fweights=Tensor(fweights, device=device), aweights=Tensor(aweights, device=device))
  np.testing.assert_allclose(got.numpy(), np.cov(x, fweights=fweights, aweights=aweights), rtol=1e-5)
  one = Tensor(x[0], device=device).cov()
  assert one.shape == () and one.item() == pytest.approx(np.cov(x[0]), rel=1e-6)  # (one variable: 0-d)
  assert Tensor([[1.0, 2.0, 4.0]], device=device).cov().shape == ()
  assert np.isnan(Tensor([[1.0], [2.0]], device=device).cov().numpy()).all()  # (one observation: 0 / 0)
  np.testing.assert_allclose(t.corrcoef().numpy(), np.corrcoef(x), rtol=1e-5, atol=1e-6)
  constant = Tensor([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]], device=device).corrcoef().numpy()
  assert constant[0, 0] == pytest.approx(1.0) and np.isnan(constant[1]).all()
  np.testing.assert_allclose(Tensor([[1, 2, 3], [1, 5, 2]], device=device).corrcoef().numpy(), np.corrcoef([[1, 2, 3], [1, 5, 2]]), rtol=1e-5)
  with pytest.raises(RuntimeError, match="2 dims"): Tensor.ones(2, 2, 2, device=device).cov()
  with pytest.raises(TypeError, match="int dtype"): Tensor([1.0, 2.0], device=device).cov(fweights=Tensor([1.5, 1.0], device=device))
  with pytest.raises(TypeError, match="float dtype"): Tensor([1.0, 2.0], device=device).cov(aweights=Tensor([1, 1], device=device))
  with pytest.raises(RuntimeError, match="one weight per observation"): Tensor([1.0, 2.0], device=device).cov(fweights=Tensor([1], device=device))
  assert_like_torch(device, lambda make, v: v.cov(fweights=make(fweights), aweights=make(aweights)), x, rtol=1e-5, atol=1e-6)
  assert_like_torch(device, lambda make, v: v.corrcoef() * make(np.arange(9, dtype=np.float32).reshape(3, 3)), x, rtol=1e-4, atol=1e-5)


def test_variance_of_values_far_from_zero_keeps_its_precision(device):
  """var of 1e6 + (i % 7) in float32 was 4.0025 for 3.99899 (the mean's own rounding, squared, 1e-3 of it); the
  corrected two-pass sum undoes it (PyTorch sums in float64)."""
  x = (np.arange(1000) % 7 + 1e6).astype(np.float32)
  want = np.var(x.astype(np.float64), ddof=1)
  np.testing.assert_allclose(Tensor(x, device=device).var().item(), want, rtol=1e-6)
  np.testing.assert_allclose(Tensor(x, device=device).std().item(), np.sqrt(want), rtol=1e-6)
  t = Tensor(x, device=device, requires_grad=True)
  t.var().backward()
  np.testing.assert_allclose(t.grad.numpy(), 2 * (x.astype(np.float64) - x.astype(np.float64).mean()) / 999, rtol=1e-4, atol=1e-5)


def test_variance_whose_sum_of_squares_passes_float32s_range(device):
  """var of [1.5e19, -1.5e19] * 2 was inf (its squares summed to 9e38, past float32's range, for a variance of 3e38),
  and 1e5 values of spread 1e17 gave inf for 1e34: float32 computes in float64 where the device has it, as
  PyTorch's CPU kernel does. A variance past float32's range is inf, not NaN."""
  if not Device[device].supports_dtype(dtypes.float64): pytest.skip(f"{device} has no float64")
  x = np.array([1.5e19, -1.5e19, 1.5e19, -1.5e19], np.float32)
  for correction in (0, 1):
    want = np.var(x.astype(np.float64), ddof=correction)
    np.testing.assert_allclose(Tensor(x, device=device).var(correction=correction).item(), want, rtol=1e-6)
  wide = np.random.default_rng(0).normal(0, 1e17, 100_000).astype(np.float32)
  np.testing.assert_allclose(Tensor(wide, device=device).var().item(), np.var(wide.astype(np.float64), ddof=1), rtol=1e-5)
  assert Tensor(np.array([3e38] * 5 + [-3e38] * 5, np.float32), device=device).var().item() == np.inf
  t = Tensor(x, device=device, requires_grad=True)
  t.var().backward()
  np.testing.assert_allclose(t.grad.numpy(), 2 * x.astype(np.float64) / 3, rtol=1e-6)


def test_reduction_forms_like_torch(device):
  """dim=() reduced nothing (PyTorch: every dim), std(False) raised (PyTorch's std(unbiased)), a float16 norm
  summed its squares in float16 (inf for 100 x 700), topk(0) of a 0-d tensor read memory nothing wrote and topk(0)
  had no gradient graph, and uint8 all/any gave bool (PyTorch: uint8)."""
  a = (np.arange(12, dtype=np.float32).reshape(3, 4) % 5)
  t = Tensor(a, device=device)
  assert t.sum(dim=()).item() == a.sum() and t.mean(dim=[]).item() == a.mean()
  np.testing.assert_allclose(t.std(dim=()).item(), a.std(ddof=1), rtol=1e-6)
  np.testing.assert_allclose(t.norm(dim=()).item(), np.linalg.norm(a), rtol=1e-6)
  assert t.sum(axis=()).shape == (3, 4)  # (tinygrad's axis=(): no axis reduced)
  np.testing.assert_allclose(t.std(False).item(), a.std(), rtol=1e-6)
  np.testing.assert_allclose(t.var(True).item(), a.var(ddof=1), rtol=1e-6)
  np.testing.assert_allclose(Tensor(np.full(100, 700, np.float16), device=device).norm().item(), 7000, rtol=1e-3)
  np.testing.assert_allclose(Tensor(np.full(100, 700, np.float16), device=device).norm(3).item(), 700 * 100 ** (1 / 3), rtol=1e-3)
  assert Tensor(1.5, device=device).topk(0).values.item() == 1.5
  x = Tensor(a, device=device, requires_grad=True)
  x.topk(0).values.sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), np.zeros_like(a))
  u = Tensor(np.array([[1, 0], [2, 2]], np.uint8), device=device)
  assert u.all(1).dtype == dtypes.uint8 and u.all(1).numpy().tolist() == [0, 1] and u.any().numpy().tolist() == 1


@pytest.mark.parametrize("n", [100, 600])
def test_long_scans_keep_gradients_finite_beside_an_inf(device, n):
  """Scans past 512 elements (blocks of 256) gave NaN gradients to every element when one was +inf (torch: finite):
  the last block total and the padding were computed, unused, and 0 * inf is NaN; a logsumexp over +inf gave
  exp(inf - inf) = NaN too."""
  x = np.zeros(n, np.float32)
  x[50] = np.inf
  t = Tensor(x, device=device, requires_grad=True)
  t.logcumsumexp(0).sum().backward()
  grad = t.grad.numpy()
  assert np.isfinite(grad).all()
  harmonic = np.cumsum(1 / np.arange(50, 0, -1))[::-1]  # element i: sum of exp(0 - log(j + 1)) over outputs i <= j < 50
  np.testing.assert_allclose(grad[:50], harmonic, rtol=1e-5)  # (the outputs from the inf on are inf: no gradient)
  y = np.ones(n, np.float32)
  y[n - 50] = np.inf
  t = Tensor(y, device=device, requires_grad=True)
  t.cumprod(0).sum().backward()
  grad = t.grad.numpy()
  assert not np.isnan(grad).any() and np.isinf(grad[0]) and grad[n - 50] == 50


def test_empty_dim_means_what_pytorch_means(device):
  """dim=() is every dim for nansum, nanmean and count_nonzero (they reduced none), as for the other reductions;
  PyTorch's any and all reduce none with it (elementwise), and so do teeny's now (they reduced every dim)."""
  b = Tensor([1.0, float("nan"), 2.0, 4.0], device=device)
  assert b.nansum(dim=()).item() == 7.0 and abs(b.nanmean(dim=()).item() - 7 / 3) < 1e-6
  assert b.nansum(dim=(), keepdim=True).shape == (1,)
  a = Tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 4.0]], device=device)
  assert a.count_nonzero(dim=()).item() == 4
  np.testing.assert_array_equal(a.any(dim=()).numpy(), [[True, False, True], [False, True, True]])
  np.testing.assert_array_equal(a.all(dim=[]).numpy(), [[True, False, True], [False, True, True]])
  assert a.any().item() and not a.all().item()


def test_half_float_scans_round_each_prefix_once(device):
  """float16/bfloat16 cumsum and cumprod scan in float32 and round each prefix once, as PyTorch's: past 512 elements
  the block offsets were half floats too (1000 x 0.1 in float16 ended at 99.94, not 100)."""
  if not Device[device].supports_dtype(dtypes.float16): pytest.skip("no float16 on this device")
  x = Tensor(np.full(1000, 0.1, np.float32), device=device).cast(dtypes.float16)
  sums = x.cumsum(0)
  assert sums.dtype == dtypes.float16 and sums[-1].item() == 100.0
  values = np.random.default_rng(0).standard_normal(1000).astype(np.float16)
  want = np.cumsum(values.astype(np.float64)).astype(np.float16)
  got = Tensor(values, device=device).cumsum(0).numpy()
  assert (np.abs(got.astype(np.float64) - want) <= np.spacing(np.abs(want)).astype(np.float64)).all()


def test_median_of_an_empty_tensor(device):
  """median()/nanmedian() of an empty float tensor is NaN from it (backward() gives its empty gradient; it raised: no
  tensor requiring grad was used), and of an empty int tensor keeps the dtype, as PyTorch's (it gave float32)."""
  for name in ("median", "nanmedian"):
    x = Tensor(np.zeros((0,), np.float32), device=device, requires_grad=True)
    out = getattr(x, name)()
    out.backward()
    assert np.isnan(out.item()) and x.grad.shape == (0,)
  assert Tensor(np.zeros((0,), np.int32), device=device).median().dtype == dtypes.int32
