"""PyTorch's methods of teeny/ops/pytorch_extra.py: the views broadcast_to, ravel and select, torch's other names
(positive, negative, absolute, fix), float_power, inner, diagflat, diag_embed, isin, gcd, lcm, searchsorted,
bucketize, bincount, det, slogdet, logdet, matrix_power, bernoulli, randint_like, logspace, tril_indices,
triu_indices, the stacks and atleast_nd. Values are checked against numpy (or PyTorch's answers written out where
they are not numpy's: searchsorted past a NaN, gcd at a dtype's smallest value), dtypes and shapes as PyTorch's,
gradients against the derivatives worked out by hand; the last tests compare with PyTorch itself where it is
installed."""
import numpy as np
import pytest
from teeny import Tensor, dtypes
from teeny.runtime.device import Device

nan, inf = np.nan, np.inf
rng = np.random.default_rng(11)


def needs_float64(device):
  if not Device[device].supports_dtype(dtypes.float64): pytest.skip("no float64 on this device")


def test_broadcast_to_is_an_expand_that_refuses_writes(device):
  x = Tensor([1.0, 2.0, 3.0], device=device)
  for shape in ((2, 3), (4, 1, 3)):
    np.testing.assert_array_equal(x.broadcast_to(shape).numpy(), np.broadcast_to(x.numpy(), shape))
  assert x.broadcast_to(2, 3).shape == (2, 3) and x.broadcast_to(size=(2, -1)).shape == (2, 3)
  with pytest.raises(RuntimeError, match="expanded"): x.broadcast_to(2, 3)[0, 0] = 5.0
  with pytest.raises(ValueError, match="leading"): x.broadcast_to(-1, 3)
  with pytest.raises(ValueError): x.broadcast_to(2, 4)


def test_select_and_ravel_are_views(device):
  a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
  for dim in range(-3, 3):
    for i in (0, -1, 1):
      np.testing.assert_array_equal(Tensor(a, device=device).select(dim, i).numpy(), np.take(a, i, axis=dim))
  x = Tensor(a.copy(), device=device)
  x.select(1, -1)[:] = 0.0  # (writes reach x, as through torch's select)
  np.testing.assert_array_equal(x.numpy(), np.where(np.arange(3).reshape(3, 1) == 2, 0, a))
  with pytest.raises(IndexError, match="out of range"): x.select(1, 3)
  with pytest.raises(IndexError, match="out of range"): x.select(1, -4)
  with pytest.raises(IndexError, match="0-d"): Tensor(1.0, device=device).select(0, 0)
  with pytest.raises(TypeError): x.select(0, 1.0)
  m = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3), device=device)
  np.testing.assert_array_equal(m.T.ravel().numpy(), np.arange(6).reshape(2, 3).T.ravel())
  flat = m.ravel()
  flat[4] = -1.0
  assert m.numpy()[1, 1] == -1 and Tensor(2.0, device=device).ravel().shape == (1,)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int8, np.float16])
def test_positive_negative_absolute_and_fix(device, dtype):
  values = np.array([-2.5, -1.0, 0.0, 1.5, 3.0]).astype(dtype)
  x = Tensor(values, device=device)
  assert x.positive() is x
  for name, want in (("negative", -values), ("absolute", np.abs(values)), ("fix", np.trunc(values))):
    got = getattr(x, name)()
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got.numpy(), want)
  flags = Tensor([True, False], device=device)
  for name in ("positive", "negative", "absolute", "fix"):
    with pytest.raises(TypeError): getattr(flags, name)()


def test_fix_of_ints_is_a_copy(device):
  x = Tensor([1, -2], device=device)
  y = x.fix()
  y[0] = 7
  assert x.numpy().tolist() == [1, -2]


def test_float_power_computes_in_float64_with_pows_gradient(device):
  if not Device[device].supports_dtype(dtypes.float64):
    with pytest.raises(TypeError, match="float64"): Tensor([2.0], device=device).float_power(2)
    return
  base = np.array([0.5, 2.0, 3.0, 1.25], np.float32)
  exponent = np.array([2.0, -1.0, 0.5, 3.3], np.float32)
  x, e = Tensor(base, device=device, requires_grad=True), Tensor(exponent, device=device, requires_grad=True)
  out = x.float_power(e)
  assert out.dtype == dtypes.float64
  b64, e64 = base.astype(np.float64), exponent.astype(np.float64)
  np.testing.assert_allclose(out.numpy(), b64 ** e64, rtol=1e-14)
  out.sum().backward()
  assert x.grad.dtype == dtypes.float32 and e.grad.dtype == dtypes.float32
  np.testing.assert_allclose(x.grad.numpy(), e64 * b64 ** (e64 - 1), rtol=1e-6)
  np.testing.assert_allclose(e.grad.numpy(), b64 ** e64 * np.log(b64), rtol=1e-6)
  ints = Tensor([1, 2, -3], device=device)
  np.testing.assert_array_equal(ints.float_power(2).numpy(), [1.0, 4.0, 9.0])  # (an int power of an int tensor: float64)
  assert ints.float_power(2).dtype == dtypes.float64 and Tensor([True], device=device).float_power(2).dtype == dtypes.float64
  np.testing.assert_allclose(Tensor(2.0, device=device).float_power(Tensor([1.5, -2], device=device)).numpy(), [2 ** 1.5, 0.25], rtol=1e-15)
  with pytest.raises(TypeError, match="exponent"): ints.float_power("2")


@pytest.mark.parametrize("shapes", [((3,), (3,)), ((2, 3), (4, 3)), ((2, 3), (4, 5, 3)), ((2, 0), (3, 0)), ((1, 2, 3), (3,))])
def test_inner_sums_over_the_last_dims(device, shapes):
  a, b = rng.standard_normal(shapes[0]).astype(np.float32), rng.standard_normal(shapes[1]).astype(np.float32)
  ta, tb = Tensor(a, device=device, requires_grad=True), Tensor(b, device=device, requires_grad=True)
  out = ta.inner(tb)
  assert out.shape == np.inner(a, b).shape
  np.testing.assert_allclose(out.numpy(), np.inner(a, b), rtol=1e-5, atol=1e-6)
  out.sum().backward()  # d/da of the sum: b's rows summed, for every row of a
  np.testing.assert_allclose(ta.grad.numpy(), np.broadcast_to(b.reshape(b.size // max(b.shape[-1], 1), b.shape[-1]).sum(0), a.shape), rtol=1e-5, atol=1e-6)


def test_inner_of_ints_and_0d_and_its_errors(device):
  i8 = Tensor(np.array([1, 2], np.int8), device=device)
  assert i8.inner(Tensor(np.array([100, 2], np.int8), device=device)).item() == 104 and i8.inner(i8).dtype == dtypes.int8
  np.testing.assert_array_equal(Tensor(2.0, device=device).inner(Tensor([1, 2], device=device)).numpy(), [2.0, 4.0])
  with pytest.raises(TypeError, match="one dtype"): Tensor([1, 2], device=device).inner(Tensor([1.0, 2.0], device=device))
  with pytest.raises(ValueError, match="last dims"): Tensor.ones(2, 3, device=device).inner(Tensor.ones(2, 2, device=device))
  with pytest.raises(TypeError): Tensor([True], device=device).inner(Tensor([True], device=device))


def _diag_embed_reference(a, offset, dim1, dim2):
  n = a.shape[-1]
  out = np.zeros(a.shape[:-1] + (n + abs(offset),) * 2, a.dtype)
  i = np.arange(n)
  rows, cols = (i, i + offset) if offset >= 0 else (i - offset, i)
  out[..., rows, cols] = a
  return np.moveaxis(out, (-2, -1), (dim1, dim2))


@pytest.mark.parametrize("offset, dim1, dim2", [(0, -2, -1), (1, 0, 2), (-2, 2, 0), (0, 1, -3)])
def test_diag_embed_puts_the_last_dim_on_a_diagonal(device, offset, dim1, dim2):
  a = rng.standard_normal((2, 3)).astype(np.float32)
  t = Tensor(a, device=device, requires_grad=True)
  out = t.diag_embed(offset, dim1, dim2)
  want = _diag_embed_reference(a, offset, dim1, dim2)
  np.testing.assert_array_equal(out.numpy(), want)
  np.testing.assert_array_equal(out.diagonal(offset, dim1, dim2).numpy(), a)
  weights = rng.standard_normal(want.shape).astype(np.float32)
  (out * Tensor(weights, device=device)).sum().backward()
  i = np.arange(3)
  rows, cols = (i, i + offset) if offset >= 0 else (i - offset, i)
  np.testing.assert_array_equal(t.grad.numpy(), np.moveaxis(weights, (dim1, dim2), (-2, -1))[..., rows, cols])  # (the weights on it)


def test_diag_embed_and_diagflat_edges(device):
  with pytest.raises(ValueError, match="different dims"): Tensor.ones(3, device=device).diag_embed(0, 0, -2)
  with pytest.raises(IndexError): Tensor(1.0, device=device).diag_embed()
  assert Tensor.ones(2, 0, device=device).diag_embed().shape == (2, 0, 0)
  for shape in ((), (3,), (2, 2), (0,)):
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) + 1
    for offset in (-2, 0, 1):
      np.testing.assert_array_equal(Tensor(a, device=device).diagflat(offset).numpy(), np.diagflat(a, offset))
  t = Tensor([[1.0, 2.0], [3.0, 4.0]], device=device, requires_grad=True)
  (t.diagflat(1) * Tensor(np.arange(25, dtype=np.float32).reshape(5, 5), device=device)).sum().backward()
  np.testing.assert_array_equal(t.grad.numpy(), [[1, 7], [13, 19]])  # (the weights at (i, i + 1))


def test_isin_compares_after_promotion(device):
  x = np.array([[1, 2, 3], [4, 5, 6]])
  for test in (np.array([2, 5, 9]), np.array([[1], [6]]), np.array([], np.int64), np.array([1.5, 2.0])):
    got = Tensor(x, device=device).isin(Tensor(test, device=device))
    assert got.dtype == dtypes.bool
    np.testing.assert_array_equal(got.numpy(), np.isin(x, test))
    np.testing.assert_array_equal(Tensor(x, device=device).isin(Tensor(test, device=device), invert=True).numpy(), ~np.isin(x, test))
  np.testing.assert_array_equal(Tensor(x, device=device).isin(2).numpy(), x == 2)
  assert not Tensor(x, device=device).isin(2.5).numpy().any()
  floats = Tensor([nan, 1.0, -0.0], device=device)
  np.testing.assert_array_equal(floats.isin(Tensor([nan, 0.0], device=device)).numpy(), [False, False, True])  # (NaN: in nothing)
  assert Tensor(3, device=device).isin(Tensor([3, 4], device=device)).shape == ()
  with pytest.raises(TypeError, match="bool"): Tensor([True], device=device).isin(Tensor([1], device=device))
  with pytest.raises(TypeError, match="bool"): Tensor([1], device=device).isin(True)
  with pytest.raises(TypeError, match="test_elements"): Tensor([1], device=device).isin([1, 2])


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.uint8])
def test_gcd_and_lcm_match_numpy(device, dtype):
  info = np.iinfo(dtype)
  small = max(info.min, -1000), min(info.max, 1000)
  a, b = rng.integers(*small, 300, dtype=dtype, endpoint=True), rng.integers(*small, 300, dtype=dtype, endpoint=True)
  a[:20], b[10:30] = 0, 0  # (gcd(0, 0) is 0, gcd(x, 0) is |x|; lcm with 0 is 0)
  ta, tb = Tensor(a, device=device), Tensor(b, device=device)
  assert ta.gcd(tb).dtype == ta.dtype and ta.lcm(tb).dtype == ta.dtype
  np.testing.assert_array_equal(ta.gcd(tb).numpy(), np.gcd(a, b))
  np.testing.assert_array_equal(ta.lcm(tb).numpy()[:100], np.lcm(a[:100].astype(np.int64), b[:100]).astype(dtype))


def test_gcd_and_lcm_take_pytorchs_path_at_the_edges(device):
  # consecutive Fibonacci numbers: Euclid's worst case in int64
  assert Tensor([7540113804746346429], device=device).gcd(Tensor([4660046610375530309], device=device)).item() == 1
  def i8(*values): return Tensor(np.array(values, np.int8), device=device)
  # |-128| doesn't fit int8: PyTorch's answers, whose Euclid runs on -128 as it is
  np.testing.assert_array_equal(i8(-128, -128, -128, 64).gcd(i8(0, -128, 64, -128)).numpy(), [-128, -128, 64, 64])
  # an lcm past int8 wraps as PyTorch's (127 * 126 in int32, its magnitude wrapped: -126)
  np.testing.assert_array_equal(i8(127, 100, 0).lcm(i8(126, 3, -128)).numpy(), [-126, 44, 0])
  mixed = Tensor(np.array([4], np.int8), device=device).gcd(Tensor(np.array([6, 9], np.int32), device=device))
  assert mixed.dtype == dtypes.int32 and mixed.numpy().tolist() == [2, 1]
  with pytest.raises(TypeError, match="int"): Tensor([1.0], device=device).gcd(Tensor([2.0], device=device))
  with pytest.raises(TypeError, match="int"): Tensor([True], device=device).lcm(Tensor([True], device=device))
  with pytest.raises(TypeError, match="must be a Tensor"): Tensor([4], device=device).gcd(6)


@pytest.mark.parametrize("n", [0, 1, 2, 5, 8, 9])
def test_searchsorted_and_bucketize_match_numpy(device, n):
  seq = np.sort(rng.integers(0, 10, n)).astype(np.float32)
  values = rng.integers(-1, 11, (3, 4)).astype(np.float32)
  for side in ("left", "right"):
    got = Tensor(seq, device=device).searchsorted(Tensor(values, device=device), side=side)
    assert got.dtype == dtypes.int64 and got.shape == values.shape
    np.testing.assert_array_equal(got.numpy(), np.searchsorted(seq, values, side))
    buckets = Tensor(values, device=device).bucketize(Tensor(seq, device=device), right=side == "right", out_int32=True)
    assert buckets.dtype == dtypes.int32
    np.testing.assert_array_equal(buckets.numpy(), np.searchsorted(seq, values, side))
  batched = np.sort(rng.integers(0, 10, (2, 3, n)), -1)
  batched_values = rng.integers(-1, 11, (2, 3, 5))
  got = Tensor(batched, device=device).searchsorted(Tensor(batched_values, device=device), right=True)
  want = [np.searchsorted(s, v, "right") for s, v in zip(batched.reshape(6, n), batched_values.reshape(6, 5))]
  np.testing.assert_array_equal(got.numpy(), np.reshape(want, (2, 3, 5)))


def test_searchsorted_follows_pytorchs_binary_search(device):
  """PyTorch's search, step by step: past a NaN (which torch.sort puts last) its answers are not numpy's (4 goes
  to 5, not 3), and a NaN value goes to the end. Values promote with the sequence, a number gives a 0-d result."""
  seq = Tensor([1.0, 3.0, 3.0, 5.0, nan], device=device)
  values = Tensor([0.0, 1.0, 2.0, 3.0, 4.0, 6.0, nan, -inf], device=device)
  assert seq.searchsorted(values).numpy().tolist() == [0, 0, 1, 1, 5, 5, 5, 0]
  assert seq.searchsorted(values, right=True).numpy().tolist() == [0, 1, 1, 5, 5, 5, 5, 0]
  ints = Tensor([1, 3, 5], device=device)
  assert ints.searchsorted(Tensor([2.5, 3.0], device=device)).numpy().tolist() == [1, 1]
  assert ints.searchsorted(3.5).shape == () and ints.searchsorted(3.5).item() == 2 and ints.searchsorted(3, side="right").item() == 2
  unsorted = Tensor([5, 1, 3], device=device)
  assert unsorted.searchsorted(Tensor([3, 4], device=device), sorter=unsorted.argsort()).numpy().tolist() == [1, 2]
  with pytest.raises(ValueError, match="opposites"): ints.searchsorted(3, side="left", right=True)
  with pytest.raises(ValueError, match="side"): ints.searchsorted(3, side="up")
  with pytest.raises(ValueError, match="needs values of shape"): Tensor.ones(2, 3, device=device).searchsorted(Tensor.ones(2, device=device))
  with pytest.raises(ValueError, match="1-d sequence"): Tensor.ones(2, 3, device=device).searchsorted(1.0)
  with pytest.raises(ValueError, match="0-d"): Tensor(1.0, device=device).searchsorted(Tensor.ones(2, device=device))
  with pytest.raises(TypeError, match="bool"): Tensor([True], device=device).searchsorted(Tensor([True], device=device))
  with pytest.raises(ValueError, match="1-d boundaries"): Tensor([1], device=device).bucketize(Tensor.ones(1, 2, device=device))


def test_bincount_reads_the_largest_value(device):
  x = np.array([1, 3, 1, 0, 7])
  got = Tensor(x, device=device).bincount()
  assert got.dtype == dtypes.int64
  np.testing.assert_array_equal(got.numpy(), np.bincount(x))
  np.testing.assert_array_equal(Tensor(x.astype(np.uint8), device=device).bincount(minlength=10).numpy(), np.bincount(x, minlength=10))
  weights = rng.standard_normal(5).astype(np.float32)
  w = Tensor(weights, device=device, requires_grad=True)
  summed = Tensor(x, device=device).bincount(w)
  assert summed.dtype == dtypes.float32
  np.testing.assert_allclose(summed.numpy(), np.bincount(x, weights), rtol=1e-6)
  (summed * Tensor(np.arange(8, dtype=np.float32), device=device)).sum().backward()
  np.testing.assert_array_equal(w.grad.numpy(), x)  # (each weight's gradient: the weight of its bin)
  empty = Tensor(np.zeros(0, np.int64), device=device)
  assert empty.bincount().shape == (0,) and empty.bincount(minlength=3).numpy().tolist() == [0, 0, 0]
  assert empty.bincount(Tensor(np.zeros(0, np.float32), device=device)).dtype == dtypes.int64  # (PyTorch's, also with weights)
  if Device[device].supports_dtype(dtypes.float64):
    assert Tensor(x, device=device).bincount(Tensor(np.arange(5), device=device)).dtype == dtypes.float64
  with pytest.raises(ValueError, match="non-negative"): Tensor([1, -1], device=device).bincount()
  with pytest.raises(TypeError, match="ints"): Tensor([1.0], device=device).bincount()
  with pytest.raises(ValueError, match="1-d"): Tensor([[1]], device=device).bincount()
  with pytest.raises(ValueError, match="minlength"): Tensor([1], device=device).bincount(minlength=-1)
  with pytest.raises(ValueError, match="weights"): Tensor([1, 2], device=device).bincount(Tensor.ones(3, device=device))


MATRICES = {
  "random": rng.standard_normal((2, 4, 4)),
  "needs_pivots": np.array([[0.0, 2.0, 1.0], [1.0, 1.0, 0.0], [3.0, 0.0, 1.0]]),
  "permutation": np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
  "singular": np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]]),
  "zeros": np.zeros((2, 2)),
  "one_by_one": np.array([[-2.5]]),
  "empty": np.zeros((3, 0, 0)),
}


@pytest.mark.parametrize("name", list(MATRICES))
def test_det_slogdet_and_logdet_match_numpy(device, name):
  a = MATRICES[name].astype(np.float32)
  t = Tensor(a, device=device)
  assert t.det().shape == a.shape[:-2] and t.det().dtype == dtypes.float32
  np.testing.assert_allclose(t.det().numpy(), np.linalg.det(a.astype(np.float64)), rtol=1e-5, atol=1e-5)
  sign, logabsdet = t.slogdet()
  want_sign, want_log = np.linalg.slogdet(a.astype(np.float64))
  np.testing.assert_array_equal(sign.numpy(), want_sign)
  np.testing.assert_allclose(logabsdet.numpy(), want_log, rtol=1e-5, atol=1e-5)
  with np.errstate(invalid="ignore"): want_logdet = np.where(want_sign < 0, nan, want_log)
  np.testing.assert_allclose(t.logdet().numpy(), want_logdet, rtol=1e-5, atol=1e-5)


def test_det_gradient_is_det_times_the_inverse_transposed(device):
  a = rng.standard_normal((2, 3, 3)).astype(np.float32) + 2 * np.eye(3, dtype=np.float32)
  t = Tensor(a, device=device, requires_grad=True)
  t.det().sum().backward()
  a64 = a.astype(np.float64)
  want = np.linalg.det(a64)[:, None, None] * np.swapaxes(np.linalg.inv(a64), -1, -2)
  np.testing.assert_allclose(t.grad.numpy(), want, rtol=1e-4, atol=1e-5)
  t = Tensor(a, device=device, requires_grad=True)
  t.slogdet().logabsdet.sum().backward()
  np.testing.assert_allclose(t.grad.numpy(), np.swapaxes(np.linalg.inv(a64), -1, -2), rtol=1e-4, atol=1e-5)


def test_det_inputs_it_refuses_and_the_half_floats(device):
  with pytest.raises(TypeError, match="float"): Tensor([[1, 2], [3, 4]], device=device).det()
  with pytest.raises(ValueError, match="square"): Tensor.ones(2, 3, device=device).det()
  with pytest.raises(ValueError, match="matrix"): Tensor.ones(3, device=device).logdet()
  half = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]], np.float16), device=device)
  assert half.det().dtype == dtypes.float16 and half.det().item() == -2.0


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 6, 11])
def test_matrix_power_matches_numpy(device, n):
  ints = rng.integers(-3, 4, (2, 3, 3)).astype(np.int32)
  got = Tensor(ints, device=device).matrix_power(n)
  assert got.dtype == dtypes.int32
  np.testing.assert_array_equal(got.numpy(), np.linalg.matrix_power(ints, n))
  floats = rng.standard_normal((3, 3)).astype(np.float32) / 2
  np.testing.assert_allclose(Tensor(floats, device=device).matrix_power(n).numpy(), np.linalg.matrix_power(floats.astype(np.float64), n),
                             rtol=1e-5, atol=1e-6)


def test_matrix_power_copies_gradients_and_errors(device):
  a = np.array([[1.0, 2.0], [0.5, -1.0]], np.float32)
  t = Tensor(a, device=device, requires_grad=True)
  t.matrix_power(3).sum().backward()  # d/dA sum(A^3) = sum over k of (A^T)^k J (A^T)^(2 - k), J all ones
  at, ones = a.T.astype(np.float64), np.ones((2, 2))
  want = sum(np.linalg.matrix_power(at, k) @ ones @ np.linalg.matrix_power(at, 2 - k) for k in range(3))
  np.testing.assert_allclose(t.grad.numpy(), want, rtol=1e-6)
  x = Tensor(a, device=device)
  copy, identity = x.matrix_power(1), x.matrix_power(0)
  copy[0, 0], identity[0, 0] = 9.0, 7.0  # (both are tensors of their own)
  assert x.numpy()[0, 0] == 1 and identity.numpy().tolist() == [[7, 0], [0, 1]]
  assert Tensor([[True, False], [True, True]], device=device).matrix_power(0).dtype == dtypes.bool
  with pytest.raises(ValueError, match="inverse"): x.matrix_power(-1)
  with pytest.raises(TypeError, match="int"): x.matrix_power(2.0)
  with pytest.raises(ValueError, match="square"): Tensor.ones(2, 3, device=device).matrix_power(2)
  with pytest.raises(TypeError, match="bool"): Tensor([[True]], device=device).matrix_power(2)


def test_logspace_values_and_dtypes(device):
  got = Tensor.logspace(-2, 3, 11, device=device)
  assert got.dtype == dtypes.float32 and got.shape == (11,)
  np.testing.assert_allclose(got.numpy(), np.logspace(-2, 3, 11), rtol=1e-6)
  np.testing.assert_array_equal(Tensor.logspace(0, 3, 4, dtype=dtypes.int64, device=device).numpy(), [1, 10, 100, 1000])
  np.testing.assert_array_equal(Tensor.logspace(0, 3, 4, base=2, dtype=dtypes.int32, device=device).numpy(), [1, 2, 4, 8])
  np.testing.assert_array_equal(Tensor.logspace(-2, 2, 5, base=-2, device=device).numpy(), [0.25, -0.5, 1, -2, 4])
  np.testing.assert_array_equal(Tensor.logspace(0.5, 2.5, 3, dtype=dtypes.int64, device=device).numpy(), [1, 10, 100])  # (ends held as ints)
  assert Tensor.logspace(2, 9, 1, device=device).numpy().tolist() == [100.0] and Tensor.logspace(0, 1, 0, device=device).shape == (0,)
  np.testing.assert_array_equal(Tensor.logspace(-1, 1, 3, base=0.5, dtype=dtypes.float16, device=device).numpy(), [2, 1, 0.5])
  with pytest.raises(ValueError, match="steps"): Tensor.logspace(0, 1, -1)
  with pytest.raises(TypeError, match="bool"): Tensor.logspace(0, 1, 3, dtype=dtypes.bool)


@pytest.mark.parametrize("row, col", [(3, 4), (4, 3), (1, 1), (0, 3), (3, 0)])
def test_tril_and_triu_indices_match_numpy(device, row, col):
  for offset in (-5, -1, 0, 2):
    for name in ("tril_indices", "triu_indices"):
      got = getattr(Tensor, name)(row, col, offset, device=device)
      want = np.stack(getattr(np, name)(row, offset, col)) if row and col else np.zeros((2, 0))
      assert got.dtype == dtypes.int32 and got.shape == want.shape
      np.testing.assert_array_equal(got.numpy(), want)


def test_triangle_indices_dtype_and_errors(device):
  assert Tensor.tril_indices(3, 3, dtype=dtypes.int64, device=device).dtype == dtypes.int64
  with pytest.raises(ValueError, match="row"): Tensor.tril_indices(-1, 3)
  with pytest.raises(ValueError, match="col"): Tensor.triu_indices(3, -1)
  with pytest.raises(TypeError, match="int"): Tensor.triu_indices(3, 3, dtype=dtypes.float32)


def test_stacks_match_numpy(device):
  a0, a1, m, w = np.float32(1), np.array([2.0, 3.0], np.float32), np.ones((2, 1), np.float32), np.arange(4).reshape(2, 2)
  cases = {"hstack": [[a0, a1], [m, w], [a1]], "vstack": [[a0, a0], [a1, a1], [m, np.ones((3, 1), np.float32)]],
           "dstack": [[a1, a1], [a0, a0], [w, w]], "column_stack": [[a1, w, a1], [a0, a0]]}
  for name, lists in cases.items():
    for arrays in lists:
      tensors = [Tensor(x, device=device) for x in arrays]
      got, want = getattr(Tensor, name)(tensors), getattr(np, name)(arrays)
      floats = any(np.asarray(x).dtype.kind == "f" for x in arrays)  # (PyTorch's promotion: float32 with int64, numpy's float64)
      assert got.shape == want.shape and got.dtype == (dtypes.float32 if floats else dtypes.int64)
      np.testing.assert_array_equal(got.numpy(), want)
      np.testing.assert_array_equal(getattr(Tensor, name)(tuple(tensors)).numpy(), want)
    with pytest.raises(ValueError, match="non-empty"): getattr(Tensor, name)([])
    with pytest.raises(TypeError, match="list or tuple"): getattr(Tensor, name)(Tensor(a1, device=device))
  with pytest.raises(ValueError): Tensor.hstack([Tensor(m, device=device), Tensor(a1, device=device)])
  x, y = Tensor(a1, device=device, requires_grad=True), Tensor(w.astype(np.float32), device=device, requires_grad=True)
  (Tensor.column_stack([x, y]) * Tensor(np.arange(6, dtype=np.float32).reshape(2, 3), device=device)).sum().backward()
  assert x.grad.numpy().tolist() == [0, 3] and y.grad.numpy().tolist() == [[1, 2], [4, 5]]


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_atleast_nd_views_like_numpys(device, ndim):
  ours, numpys = getattr(Tensor, f"atleast_{ndim}d"), getattr(np, f"atleast_{ndim}d")
  for shape in ((), (3,), (2, 3), (2, 3, 4)):
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    np.testing.assert_array_equal(ours(Tensor(a, device=device)).numpy(), numpys(a))
    assert ours(Tensor(a, device=device)).shape == numpys(a).shape
  x, y = Tensor(1.0, device=device), Tensor.ones(3, device=device)
  pair = ours(x, y)
  assert isinstance(pair, tuple) and [t.shape for t in pair] == [s.shape for s in numpys(np.float32(1), np.ones(3))]
  assert isinstance(ours([x]), tuple) and len(ours([x])) == 1 and ours() == ()
  big = Tensor.ones(2, 2, 2, device=device)
  assert ours(big) is big
  view = ours(y)
  view[(0,) * view.ndim] = 5.0  # (a view: writes reach y)
  assert y.numpy().tolist() == [5, 1, 1]
  with pytest.raises(TypeError): ours(3)


def test_bernoulli_draws_with_the_probabilities(device):
  Tensor.manual_seed(5)
  p = Tensor(np.tile(np.array([0.0, 1.0, 0.25], np.float32), 3000), device=device)
  draws = p.bernoulli()
  assert draws.dtype == dtypes.float32 and draws.shape == p.shape
  d = draws.numpy().reshape(-1, 3)
  assert set(np.unique(d)) <= {0.0, 1.0} and not d[:, 0].any() and d[:, 1].all() and abs(d[:, 2].mean() - 0.25) < 0.03
  Tensor.manual_seed(5)
  np.testing.assert_array_equal(p.bernoulli().numpy(), draws.numpy())  # (teeny's generator: a seed replays it)
  flat = Tensor.zeros(4000, dtype=dtypes.int32, device=device).bernoulli(0.75)
  assert flat.dtype == dtypes.int32 and abs(flat.numpy().mean() - 0.75) < 0.03
  with pytest.raises(TypeError, match="float"): Tensor([1, 0], device=device).bernoulli()
  with pytest.raises(ValueError, match=r"\[0, 1\]"): p.bernoulli(1.5)
  with pytest.raises(TypeError, match="number"): p.bernoulli(p)


def test_randint_like_takes_selfs_shape_and_dtype(device):
  x = Tensor.ones(20, 30, device=device)
  r = x.randint_like(10)
  assert r.shape == (20, 30) and r.dtype == dtypes.float32
  values = r.numpy()
  assert values.min() >= 0 and values.max() <= 9 and (values == np.trunc(values)).all()
  r = Tensor.randint_like(Tensor(np.zeros(500, np.int8), device=device), 3, 10)
  assert r.dtype == dtypes.int8 and set(np.unique(r.numpy())) == set(range(3, 10))
  assert x.randint_like(low=2, high=4, dtype=dtypes.int16).dtype == dtypes.int16 and Tensor(1.0, device=device).randint_like(5).shape == ()
  with pytest.raises(OverflowError): Tensor(np.zeros(2, np.int8), device=device).randint_like(300)
  with pytest.raises(ValueError, match="low < high"): x.randint_like(3, 2)


# ---- against PyTorch itself, where it is installed ----

def test_against_torch_bit_for_bit(device):
  """logspace in PyTorch's arithmetic (its pow is C's), searchsorted's path past a NaN, gcd and lcm over every
  int8 pair (overflows included): the same bits as PyTorch's."""
  torch = pytest.importorskip("torch")
  for start, end, steps, base in ((1.3, 7.9, 11, 10.0), (-20, 20, 101, np.e), (-3.3, 2.1, 30, 0.5), (0.5, 9.5, 10, 3.0)):
    for ours, theirs in ((dtypes.float32, torch.float32), (dtypes.float16, torch.float16), (dtypes.int64, torch.int64)):
      want = torch.logspace(start, end, steps, base=base, dtype=theirs).numpy()
      np.testing.assert_array_equal(Tensor.logspace(start, end, steps, base, dtype=ours, device=device).numpy(), want)
  a = np.repeat(np.arange(-128, 128, dtype=np.int8), 256)
  b = np.tile(np.arange(-128, 128, dtype=np.int8), 256)
  for name in ("gcd", "lcm"):
    want = getattr(torch, name)(torch.tensor(a), torch.tensor(b)).numpy()
    np.testing.assert_array_equal(getattr(Tensor(a, device=device), name)(Tensor(b, device=device)).numpy(), want)
  unsorted = rng.integers(0, 10, 9).astype(np.float32)
  values = rng.integers(-1, 11, 20).astype(np.float32)
  for right in (False, True):
    want = torch.searchsorted(torch.tensor(unsorted), torch.tensor(values), right=right).numpy()
    np.testing.assert_array_equal(Tensor(unsorted, device=device).searchsorted(Tensor(values, device=device), right=right).numpy(), want)


def test_against_torch_gradients(device):
  torch = pytest.importorskip("torch")
  needs_float64(device)
  calls = {
    "det": (lambda x: x.det(), rng.standard_normal((2, 3, 3))),
    "logdet": (lambda x: x.logdet(), rng.standard_normal((3, 3)) + 4 * np.eye(3)),
    "matrix_power": (lambda x: x.matrix_power(5), rng.standard_normal((3, 3)) / 2),
    "inner": (lambda x: x.inner(x[:2]), rng.standard_normal((3, 4))),
    "diag_embed": (lambda x: x.diag_embed(-1, 0, 2), rng.standard_normal((2, 3))),
    "float_power": (lambda x: x.float_power(x), rng.uniform(0.5, 2, 5)),
    "select": (lambda x: x.select(1, -1) * x.select(0, 0)[:2], rng.standard_normal((2, 3))),
  }
  for name, (call, a) in calls.items():
    ours, theirs = Tensor(a, device=device, requires_grad=True), torch.tensor(a, requires_grad=True)
    got, want = call(ours), call(theirs)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-12, err_msg=name)
    weights = rng.standard_normal(tuple(want.shape))
    (got * Tensor(weights, device=device)).sum().backward()
    (want * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
