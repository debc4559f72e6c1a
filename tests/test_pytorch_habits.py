"""PyTorch's spellings work beside tinygrad's names (teeny/ops/pytorch.py, ops/args.py's takes_dim): dim= where
tinygrad says axis=, clamp(min=, max=), var(unbiased=), .to(dtype) and .to(device, dtype), .cpu(), .dim(), .mT,
float/int/format, numpy interop both ways, print showing values, from_numpy, no_grad/inference_mode, is_leaf and
detach_; and ops tinygrad and PyTorch have that teeny lacked: cumprod, cummin, softmin, normalize, isclose,
allclose, copysign, logaddexp, roll, meshgrid, empty_like. Values are checked against numpy (PyTorch's results for the same calls, where they differ from numpy's
defaults, are written out)."""
import numpy as np
import pytest
import teeny
from teeny import Tensor, Device, dtypes, GlobalCounters

rng = np.random.default_rng(0)
X = rng.standard_normal((3, 4)).astype(np.float32)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "prod", "argmax", "argmin", "logsumexp", "std", "var", "any"])
def test_reductions_take_dim_like_axis(device, name):
  """x.sum(dim=1, keepdim=True) is x.sum(axis=1, keepdim=True), for every reduction (max and min: the values of the
  (values, indices) pair PyTorch's spelling gives); both names at once is an error."""
  x = Tensor(X, device=device)
  by_axis = getattr(x, name)(axis=1, keepdim=True).numpy()
  by_dim = getattr(x, name)(dim=1, keepdim=True)
  np.testing.assert_allclose((by_dim.values if name in ("max", "min") else by_dim).numpy(), by_axis, rtol=1e-6)
  with pytest.raises(TypeError, match="axis twice"): getattr(x, name)(1, dim=1)


def test_dim_in_softmax_cumsum_and_gradients(device):
  x = Tensor(X, device=device, requires_grad=True)
  e = np.exp(X - X.max(1, keepdims=True))
  np.testing.assert_allclose(x.softmax(dim=1).numpy(), e / e.sum(1, keepdims=True), rtol=1e-5)
  np.testing.assert_allclose(x.log_softmax(dim=-1).numpy(), np.log(e / e.sum(1, keepdims=True)), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(x.cumsum(dim=0).numpy(), X.cumsum(0), rtol=1e-5)
  (x.sum(dim=0) * Tensor([1.0, 2.0, 3.0, 4.0], device=device)).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), np.tile(np.array([1, 2, 3, 4], np.float32), (3, 1)))


def test_clamp_takes_min_and_max_by_name(device):
  x = Tensor(X, device=device)
  np.testing.assert_array_equal(x.clamp(min=-0.5, max=0.5).numpy(), np.clip(X, -0.5, 0.5))
  np.testing.assert_array_equal(x.clamp(min=0).numpy(), np.maximum(X, 0))
  np.testing.assert_array_equal(x.clip(max=0.1).numpy(), np.minimum(X, 0.1))
  np.testing.assert_array_equal(x.clamp(-0.5, 0.5).numpy(), np.clip(X, -0.5, 0.5))  # (tinygrad's positional form)
  with pytest.raises(TypeError, match="min_ and min="): x.clamp(min_=0, min=0)
  y = Tensor(X, device=device)
  y.clamp_(min=0.0)
  np.testing.assert_array_equal(y.numpy(), np.maximum(X, 0))


def test_var_and_std_take_unbiased(device):
  """unbiased=False divides by N (numpy's default, ddof=0), unbiased=True by N - 1 (torch's default)."""
  x = Tensor(X, device=device)
  np.testing.assert_allclose(x.var(unbiased=False).numpy(), X.var(), rtol=1e-5)
  np.testing.assert_allclose(x.var(dim=1, unbiased=True).numpy(), X.var(1, ddof=1), rtol=1e-5)
  np.testing.assert_allclose(x.std(1, unbiased=False).numpy(), X.std(1), rtol=1e-5)
  np.testing.assert_allclose(x.std(correction=0).numpy(), X.std(), rtol=1e-5)
  var, mean = x.var_mean(dim=0, unbiased=False)
  np.testing.assert_allclose(var.numpy(), X.var(0), rtol=1e-5)
  with pytest.raises(TypeError, match="not both"): x.var(correction=1, unbiased=True)


def test_to_moves_and_casts_like_torch(device):
  x = Tensor(X, device=device)
  assert x.to(dtypes.float16).dtype == dtypes.float16 and x.to(dtypes.float16).device == device
  assert x.to("float16").dtype == dtypes.float16
  moved = x.to("LLVM", dtypes.int32)
  assert moved.device == "LLVM" and moved.dtype == dtypes.int32
  np.testing.assert_array_equal(moved.numpy(), X.astype(np.int32))
  assert x.to(device=device, dtype=dtypes.float32) is x  # nothing to do: the tensor itself
  assert x.to(device) is x
  assert x.cpu().device == "LLVM"
  np.testing.assert_array_equal(x.cpu().numpy(), X)
  with pytest.raises(TypeError, match="a device and a dtype"): x.to(3)


def test_dim_and_mT(device):
  x = Tensor(rng.standard_normal((2, 3, 4)).astype(np.float32), device=device)
  assert x.dim() == 3 and Tensor(1.0, device=device).dim() == 0
  np.testing.assert_array_equal(x.mT.numpy(), np.swapaxes(x.numpy(), -1, -2))
  with pytest.raises(ValueError, match="at least 2 dimensions"): Tensor([1.0], device=device).mT


def test_python_numbers_format_and_numpy(device):
  x = Tensor(X, device=device)
  assert float(x[0, 1]) == float(X[0, 1]) and isinstance(float(x[0, 1]), float)
  assert int(Tensor(7.9, device=device)) == 7 and int(Tensor([-3], device=device)) == -3  # truncates, like int()
  assert format(x[1, 2], ".3f") == format(float(X[1, 2]), ".3f")
  assert f"{Tensor(2.5, device=device):.1f}" == "2.5"
  with pytest.raises(TypeError, match="one element"): float(x)
  np.testing.assert_array_equal(np.asarray(x), X)
  assert np.array(x, dtype=np.float64).dtype == np.float64
  assert Tensor.from_numpy(X).shape == (3, 4)


def test_numpy_arrays_are_operands_on_either_side(device):
  """t + array and array + t are Tensors on t's device; float64 arrays promote like torch (to float64)."""
  x = Tensor(X, device=device)
  ones = np.ones(4, np.float32)
  for out in (x + ones, ones + x, x * ones, ones - x):
    assert isinstance(out, Tensor) and out.device == device
  np.testing.assert_allclose((ones - x).numpy(), ones - X)
  np.testing.assert_allclose((x / np.full(4, 2.0, np.float32)).numpy(), X / 2)
  assert (x + np.ones(4)).dtype == dtypes.float64


def test_print_shows_values_and_repr_stays_lazy(device):
  x = Tensor([[1.5, -2.0], [3.0, 4.0]], device=device)
  lazy = x * 2
  GlobalCounters.reset()
  assert "Tensor" in repr(lazy) and GlobalCounters.kernel_count == 0  # repr asks for no data
  text = str(lazy)
  assert GlobalCounters.kernel_count == 1
  assert text.startswith("Tensor([[ 3., -4.],") and "8." in text and f"device='{device}'" in text
  assert "requires_grad=True" in str(Tensor([1.0], device=device, requires_grad=True))


def test_no_grad_inference_mode_is_leaf_and_detach_(device):
  w = Tensor(X, device=device, requires_grad=True)
  assert w.is_leaf and Tensor(X, device=device).is_leaf
  y = w * 2
  assert not y.is_leaf and not w[0].is_leaf
  for mode in (teeny.no_grad, teeny.inference_mode, Tensor.inference_mode):
    with mode():
      assert not (w * 2).requires_grad
  assert (w * 2).requires_grad

  @teeny.no_grad()
  def doubled(t): return t * 2
  assert not doubled(w).requires_grad
  # detach_: y keeps its value but stops the gradient; z's gradient flows only through its other term
  y.detach_()
  assert y.is_leaf and not y.requires_grad
  z = (y * w).sum()
  z.backward()
  np.testing.assert_allclose(w.grad.numpy(), 2 * X, rtol=1e-6)  # d(sum(y * w))/dw = y = 2w, none through y
  with pytest.raises(RuntimeError, match="view"): w[0].detach_()


def test_cumprod_and_cummin_match_numpy_with_gradients_at_zeros(device):
  """cumprod along either axis (also past the 512 elements where scans go blockwise), its gradient right where an
  element is 0 (torch's, not prod / x); cummin like numpy's minimum.accumulate, ints included."""
  x = np.array([[2.0, 0.0, 3.0, -1.0], [0.5, 1.5, -2.0, 4.0]], np.float32)
  t = Tensor(x, device=device, requires_grad=True)
  np.testing.assert_allclose(t.cumprod(1).numpy(), np.cumprod(x, 1), rtol=1e-6)
  np.testing.assert_allclose(t.cumprod(dim=0).numpy(), np.cumprod(x, 0), rtol=1e-6)
  t.cumprod(1).sum().backward()
  # d/dx_j sum_i prod_{k<=i} x_k = sum_{i>=j} prod_{k<=i, k!=j} x_k: row 0 is [1 + 0 + 0 + 0, 2 + 6 - 6, 0, 0]
  np.testing.assert_allclose(t.grad.numpy()[0], [1.0, 2.0, 0.0, 0.0], rtol=1e-6)
  long = rng.uniform(0.999, 1.001, 700).astype(np.float32)
  np.testing.assert_allclose(Tensor(long, device=device).cumprod(0).numpy(), np.cumprod(long.astype(np.float64)), rtol=1e-5)
  np.testing.assert_array_equal(Tensor(X, device=device).cummin(1)[0].numpy(), np.minimum.accumulate(X, 1))
  ints = np.array([5, 3, 7, -2, 9, np.iinfo(np.int64).min, 0], np.int64)
  np.testing.assert_array_equal(Tensor(ints, device=device).cummin(0)[0].numpy(), np.minimum.accumulate(ints))
  unsigned = np.array([5, 3, 7, 0, 9], np.uint8)
  np.testing.assert_array_equal(Tensor(unsigned, device=device).cummin(0)[0].numpy(), np.minimum.accumulate(unsigned))
  assert Tensor([3, 2], device=device).cumprod(0).dtype == dtypes.int64


def test_softmin_normalize_isclose_allclose(device):
  x = Tensor(X, device=device)
  e = np.exp(-X + X.min(1, keepdims=True))
  np.testing.assert_allclose(x.softmin(dim=1).numpy(), e / e.sum(1, keepdims=True), rtol=1e-5)
  np.testing.assert_allclose(x.normalize(dim=1).numpy(), X / np.linalg.norm(X, axis=1, keepdims=True), rtol=1e-5)
  np.testing.assert_allclose(x.normalize(p=1, dim=0).numpy(), X / np.abs(X).sum(0, keepdims=True), rtol=1e-5)
  # p by position and dim by name, as F.normalize(x, 1, dim=0) is written (it raised "the axis twice")
  np.testing.assert_allclose(x.normalize(1, dim=0).numpy(), X / np.abs(X).sum(0, keepdims=True), rtol=1e-5)
  with pytest.raises(TypeError, match="axis twice"): x.normalize(1, 0, dim=0)
  # torch's norms of order 0 (the count of nonzeros; was a ZeroDivisionError) and -1
  np.testing.assert_allclose(x.normalize(p=0).numpy(), X / (X != 0).sum(1, keepdims=True), rtol=1e-6)
  np.testing.assert_allclose(x.normalize(p=-1).numpy(), X / (1 / (1 / np.abs(X)).sum(1, keepdims=True)), rtol=1e-5)
  assert Tensor.zeros(2, 3, device=device).normalize().numpy().tolist() == [[0.0] * 3] * 2  # eps: no 0/0
  a = np.array([1.0, np.inf, -np.inf, np.nan, 1e-9, 100.0], np.float32)
  b = np.array([1.0 + 1e-6, np.inf, np.inf, np.nan, 0.0, 100.1], np.float32)
  ta, tb = Tensor(a, device=device), Tensor(b, device=device)
  np.testing.assert_array_equal(ta.isclose(tb).numpy(), np.isclose(a, b))
  np.testing.assert_array_equal(ta.isclose(tb, equal_nan=True).numpy(), np.isclose(a, b, equal_nan=True))
  np.testing.assert_array_equal(ta.isclose(tb, rtol=1e-2).numpy(), np.isclose(a, b, rtol=1e-2))
  assert x.allclose(X + 1e-7) and not x.allclose(X + 1e-3) and isinstance(x.allclose(X), bool)


def test_elementwise_functions_from_the_int_and_nan_sweep(device):
  """Five silent mismatches with PyTorch: lerp from self's side cancelled (lerp(1e8, 1, 1) was 0); isclose of ints
  subtracted in the int dtype (int8 -128 and 127 wrapped to 1 apart: "close"); 70000 / float16 x rounded 70000 to
  inf first; copysign took self's dtype; atan2/xlogy/logaddexp(2)/copysign made an int self float32 before
  promoting (a float64 other gave float32)."""
  t = lambda v, dt=dtypes.float32: Tensor(v, dtype=dt, device=device)
  assert t([1e8, 3.0]).lerp(t([1.0, 1e-3]), 1.0).numpy().tolist() == np.array([1.0, 1e-3], np.float32).tolist()
  w = t([0.25, 0.75, 1.0])
  np.testing.assert_allclose(t([1e8, 1e8, 1e8]).lerp(t([1.0, 1.0, 1.0]), w).numpy(), [7.5e7 + 0.25, 2.5e7 + 0.75, 1.0], rtol=1e-7)
  assert t([1000.0], dtypes.bfloat16).lerp(t([1.0], dtypes.bfloat16), 0.75).float().item() == 251.0  # (250.75, rounded once)
  a, b = t([-128, 1, 0], dtypes.int8), t([127, 2, 2], dtypes.int8)
  assert a.isclose(b, rtol=0.5, atol=1).numpy().tolist() == [False, True, True]
  assert t([True, False], dtypes.bool).isclose(t([False, False], dtypes.bool), atol=0.5).numpy().tolist() == [False, True]
  assert (70000 / t([2.0, 4.0], dtypes.float16)).numpy().tolist() == [35008.0, 17504.0]
  assert t([1.0], dtypes.float16).copysign(t([-1.0])).dtype == dtypes.float32
  ints = t([3, 1], dtypes.int32)
  if Device[device].supports_dtype(dtypes.float64):
    f64 = t([4.0, 1.0], dtypes.float64)
    for out in (ints.atan2(f64), ints.xlogy(f64), ints.logaddexp(f64), ints.logaddexp2(f64), ints.copysign(f64)): assert out.dtype == dtypes.float64
  assert ints.atan2(t([4.0, 1.0], dtypes.float16)).dtype == dtypes.float16


def test_mixed_dtype_fuzz_findings(device):
  """From a mixed-dtype program fuzzer against PyTorch: clamp of an int tensor by a float bound compared in the int
  dtype (uint8.clamp(-1, 100.0) gave 100 everywhere: -1 wrapped to 255; PyTorch promotes to float); results that
  are the identity for self's dtype (x ** 1, abs of uint8, floor of ints, sign of bools, nan_to_num of ints, a 0-d
  tensor's sum and cumsum) were self, so a write into them wrote self; 3 ** a 0-d int8 tensor was int32."""
  u8 = Tensor(np.array([7, 0, 200], np.uint8), device=device)
  assert u8.clamp(-1, 100.0).numpy().tolist() == [7.0, 0.0, 100.0] and u8.clamp(-1, 100.0).dtype == dtypes.float32
  assert u8.clamp(-1, 100).numpy().tolist() == [100, 100, 100]  # (int bounds stay in uint8: -1 is 255, as PyTorch's)
  assert Tensor(np.array([7, 0], np.int8), device=device).clamp(-1000, 5.5).numpy().tolist() == [5.5, 0.0]
  for make, op in ((lambda: Tensor([1.0, 2.0], device=device), lambda x: x ** 1),
                   (lambda: Tensor(np.array([1, 2], np.uint8), device=device), lambda x: x.abs()),
                   (lambda: Tensor(np.array([1, 2], np.int32), device=device), lambda x: x.floor()),
                   (lambda: Tensor([True, True], device=device), lambda x: x.sign()),
                   (lambda: Tensor(np.array([1, 2], np.int64), device=device), lambda x: x.nan_to_num()),
                   (lambda: Tensor(1.0, device=device), lambda x: x.sum()),
                   (lambda: Tensor(1.0, device=device), lambda x: x.cumsum(0))):
    x = make()
    before = x.numpy().tolist()
    y = op(x)
    y[...] = 0
    y.realize()
    assert x.numpy().tolist() == before
  out = 3 ** Tensor(np.array(5, np.int8), device=device)
  assert out.dtype == dtypes.int8 and out.item() == -13  # (243 wraps in int8, as PyTorch's)


def test_floor_division_of_floats_passes_a_zero_gradient_once_realized(device):
  """x.div(y, rounding_mode='floor') and x // y were detached: realized (printed) before backward(), backward()
  raised 'no tensor with requires_grad=True'. Their gradient is 0, as PyTorch's, and they require grad."""
  x = Tensor([-7.5, -1.0], device=device, requires_grad=True)
  for r in (x.div(Tensor([2.0, -3.0], device=device), rounding_mode="floor"), x // 2):
    assert r.requires_grad
    r.realize()
    r.sum().backward()
    assert x.grad.numpy().tolist() == [0.0, 0.0]
  assert (x // 2).numpy().tolist() == [-4.0, -1.0]


def test_copysign_and_logaddexp_at_the_edges(device):
  a = np.array([1.5, -2.0, 0.0, 3.0, -0.0, np.inf], np.float32)
  b = np.array([-1.0, 2.0, -0.0, 0.0, 5.0, -1.0], np.float32)
  got = Tensor(a, device=device).copysign(Tensor(b, device=device)).numpy()
  np.testing.assert_array_equal(got, np.copysign(a, b))
  np.testing.assert_array_equal(np.signbit(got), np.signbit(np.copysign(a, b)))  # -0.0 counts as negative
  np.testing.assert_array_equal(Tensor(a, device=device).copysign(-1.0).numpy(), np.copysign(a, -1.0))
  np.testing.assert_array_equal(Tensor([1, -2], device=device).copysign(-0.0).numpy(), [-1.0, -2.0])
  # abs of either zero is +0.0 (PoCL's max(0.0, -0.0) alone answers -0.0)
  assert not np.signbit(Tensor([0.0, -0.0], device=device).abs().numpy()).any()
  x = np.array([0.0, 1000.0, -1000.0, np.inf, -np.inf, -np.inf, 2.0, np.nan], np.float32)
  y = np.array([0.0, 999.0, -1001.0, np.inf, -np.inf, 5.0, 2.0, 1.0], np.float32)
  with np.errstate(invalid="ignore"): want = np.logaddexp(x, y)  # (numpy warns about the NaN)
  np.testing.assert_allclose(Tensor(x, device=device).logaddexp(Tensor(y, device=device)).numpy(), want, rtol=1e-6)
  tx = Tensor([0.5, 3.0], device=device, requires_grad=True)
  tx.logaddexp(Tensor([0.5, 1.0], device=device)).sum().backward()
  np.testing.assert_allclose(tx.grad.numpy(), [0.5, 1 / (1 + np.exp(-2.0))], rtol=1e-5)  # ties split evenly


def test_roll_meshgrid_and_empty_like(device):
  x = Tensor(X, device=device)
  for shifts, dims in [(1, 1), (-1, 0), (5, 1), ((1, -2), (0, 1)), (3, None), ((3,), None), ((2,), 1), (2, [1])]:
    np.testing.assert_array_equal(x.roll(shifts, dims).numpy(), np.roll(X, shifts, dims), err_msg=f"{shifts} {dims}")
  with pytest.raises(RuntimeError, match="one shift"): x.roll((1, 2))  # (PyTorch: no dims, so one shift)
  t = Tensor(X, device=device, requires_grad=True)
  (t.roll(1, 1) * Tensor(np.arange(4, dtype=np.float32), device=device)).sum().backward()
  np.testing.assert_array_equal(t.grad.numpy(), np.tile(np.roll(np.arange(4, dtype=np.float32), -1), (3, 1)))
  a, b, c = (Tensor(np.arange(n, dtype=np.float32), device=device) for n in (2, 3, 4))
  for indexing in ("ij", "xy"):
    want = np.meshgrid(np.arange(2), np.arange(3), np.arange(4), indexing=indexing)
    # (tinygrad's method form a.meshgrid(b, c) left a out: it gave 2 grids of 3)
    for got in (Tensor.meshgrid(a, b, c, indexing=indexing), Tensor.meshgrid([a, b, c], indexing=indexing), a.meshgrid(b, c, indexing=indexing)):
      assert len(got) == 3
      for g, w in zip(got, want): np.testing.assert_array_equal(g.numpy(), w)
  with pytest.raises(ValueError, match="indexing"): Tensor.meshgrid(a, b, indexing="yx")
  e = x.empty_like()
  assert e.shape == x.shape and e.dtype == x.dtype and e.device == device
  assert x.empty_like(dtype=dtypes.int32).dtype == dtypes.int32


def test_pad_to_shrink_to_diagonal_diag(device):
  x = Tensor(X, device=device)
  np.testing.assert_array_equal(x.pad_to(4, 6).numpy(), np.pad(X, ((0, 1), (0, 2))))
  np.testing.assert_array_equal(x.pad_to((None, 5)).numpy(), np.pad(X, ((0, 0), (0, 1))))
  np.testing.assert_array_equal(x.shrink_to(2, None).numpy(), X[:2])
  with pytest.raises(ValueError, match="smaller"): x.pad_to(2, 4)
  for offset in (0, 1, -1, 3, -3, 5):
    np.testing.assert_array_equal(x.diagonal(offset).numpy(), np.diagonal(X, offset), err_msg=f"offset {offset}")
  cube = rng.standard_normal((2, 3, 4)).astype(np.float32)
  np.testing.assert_array_equal(Tensor(cube, device=device).diagonal(1, 0, 2).numpy(), np.diagonal(cube, 1, 0, 2))
  v = np.array([1.0, -2.0, 3.0], np.float32)
  for k in (0, 1, -2):
    np.testing.assert_array_equal(Tensor(v, device=device).diag(k).numpy(), np.diag(v, k))
  np.testing.assert_array_equal(x.diag(1).numpy(), np.diag(X, 1))
  t = Tensor(X, device=device, requires_grad=True)
  t.diagonal().sum().backward()
  np.testing.assert_array_equal(t.grad.numpy(), np.eye(3, 4, dtype=np.float32))


def test_linspace_prod_dtype_and_nll_loss(device):
  for start, stop, steps in [(0, 1, 5), (-3.0, 7.5, 11), (2, 2, 3), (1, 0, 4), (0, 1, 1)]:
    got = Tensor.linspace(start, stop, steps, device=device).numpy()
    np.testing.assert_allclose(got, np.linspace(start, stop, steps), rtol=1e-6, atol=1e-6)
    if steps > 1: assert got[-1] == np.float32(stop)  # the end is exact
  assert Tensor.linspace(0, 10, 6, dtype=dtypes.int32, device=device).numpy().tolist() == [0, 2, 4, 6, 8, 10]
  # an int dtype takes the ends as its values first, as PyTorch (-1.5 is -1, -10 in uint8 is 246), then truncates
  assert Tensor.linspace(-1.5, 2.5, 9, dtype=dtypes.int32, device=device).numpy().tolist() == [-1, 0, 0, 0, 0, 0, 1, 1, 2]
  assert Tensor.linspace(-10, 0, 4, dtype=dtypes.uint8, device=device).numpy().tolist() == [246, 164, 82, 0]
  if Device[device].supports_dtype(dtypes.float64):  # float64 is computed in float64 (it was float32, then cast)
    assert Tensor.linspace(0, 10, 4, dtype=dtypes.float64, device=device).numpy()[1] == 10 / 3
    np.testing.assert_array_equal(Tensor.linspace(1e6, 1e6 + 1, 11, dtype=dtypes.float64, device=device).numpy(),
                                  [1e6 + i / 10 if i < 5 else 1e6 + 1 - (10 - i) / 10 for i in range(11)])
    # ints in float64 too, as PyTorch: float32 gave 178956976 for 178956970 and 1e10 three times over
    assert Tensor.linspace(0, 2**30, 7, dtype=dtypes.int32, device=device).numpy().tolist()[1] == 178956970
    assert Tensor.linspace(10**10, 10**10 + 100, 3, dtype=dtypes.int64, device=device).numpy().tolist() == [10**10, 10**10 + 50, 10**10 + 100]
  ints = Tensor([[2, 3], [4, 5]], dtype=dtypes.int8, device=device)
  assert ints.prod(dtype=dtypes.float32).dtype == dtypes.float32 and ints.prod().item() == 120
  log_probs = np.log(np.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]], np.float32))
  target = np.array([1, 2, -100])
  weight = np.array([1.0, 2.0, 0.5], np.float32)
  lp, tt, w = Tensor(log_probs, device=device), Tensor(target, device=device), Tensor(weight, device=device)
  picked = -log_probs[[0, 1], [1, 2]]
  np.testing.assert_allclose(lp.nll_loss(tt).item(), picked.mean(), rtol=1e-6)  # the ignored row counts for nothing
  np.testing.assert_allclose(lp.nll_loss(tt, weight=w).item(), (picked * [2.0, 0.5]).sum() / 2.5, rtol=1e-6)
  np.testing.assert_allclose(lp.nll_loss(tt, reduction="none").numpy(), [picked[0], picked[1], 0.0], rtol=1e-6)
  np.testing.assert_allclose(lp.nll_loss(tt, reduction="sum").item(), picked.sum(), rtol=1e-6)
  logits = Tensor(rng.standard_normal((4, 5)).astype(np.float32), device=device)
  labels = Tensor([0, 4, 2, 1], device=device)
  np.testing.assert_allclose(logits.log_softmax(1).nll_loss(labels).item(), logits.cross_entropy(labels).item(), rtol=1e-6)


@pytest.mark.parametrize("which", ["max", "min"])
def test_max_and_min_with_dim_give_values_and_indices_like_torch(device, which):
  # PyTorch's x.max(dim=1)[0] is the values: as tinygrad's values-only result it was their first row, silently
  x = np.random.default_rng(4).choice([0.0, 1.0, 2.0, np.nan, -np.inf], size=(3, 4, 5)).astype(np.float32)
  find = np.argmax if which == "max" else np.argmin  # (numpy's: the first extreme, a NaN counting as one)
  for dim, keepdim in [(1, False), (-1, True), (0, False)]:
    t = Tensor(x, device=device, requires_grad=True)
    result = getattr(t, which)(dim=dim, keepdim=keepdim)
    want_indices = np.expand_dims(find(x, axis=dim), dim)
    want_values = np.take_along_axis(x, want_indices, dim)
    if not keepdim: want_indices, want_values = want_indices.squeeze(dim), want_values.squeeze(dim)
    values, indices = result
    assert result[0] is result.values and result[1] is result.indices and indices.dtype == dtypes.int32
    np.testing.assert_array_equal(values.numpy(), want_values)
    np.testing.assert_array_equal(indices.numpy(), want_indices)
    values.sum().backward()  # the whole gradient to the element each index names, as PyTorch's
    want_grad = np.zeros_like(x)
    np.put_along_axis(want_grad, want_indices if keepdim else np.expand_dims(want_indices, dim), 1.0, dim)
    np.testing.assert_array_equal(t.grad.numpy(), want_grad)
  assert getattr(Tensor(x, device=device), which)(1).shape == (3, 5)  # tinygrad's positional form: the values
  with pytest.raises(TypeError, match="twice"): getattr(Tensor(x, device=device), which)(1, dim=1)
  pair = Tensor(x, device=device).sort(dim=1)
  np.testing.assert_array_equal(pair.indices.numpy(), pair[1].numpy())


def test_nll_loss_where_other_classes_have_probability_zero(device):
  # a masked vocabulary's log_softmax holds -inf for the classes masked out: the loss reads only the target's
  # log-probability (0 * -inf made it NaN); a target outside the classes is NaN (PyTorch raises), unless ignored
  log_probs = np.array([[-np.inf, -0.1, -2.4], [-1.0, -np.inf, -0.5], [-0.3, -1.2, -np.inf]], np.float32)
  lp = Tensor(log_probs, device=device, requires_grad=True)
  target, weight = Tensor([1, 2, -100], device=device), Tensor([1.0, 2.0, 0.5], device=device)
  np.testing.assert_allclose(lp.nll_loss(target, reduction="none").numpy(), [0.1, 0.5, 0.0], rtol=1e-6)
  np.testing.assert_allclose(lp.nll_loss(target, weight=weight).item(), (2.0 * 0.1 + 0.5 * 0.5) / 2.5, rtol=1e-6)
  lp.nll_loss(target).backward()
  np.testing.assert_array_equal(lp.grad.numpy(), [[0, -0.5, 0], [0, 0, -0.5], [0, 0, 0]])
  both = Tensor([[-1.0, -2.0], [-1.0, -2.0]], device=device)
  assert np.isnan(both.nll_loss(Tensor([0, 5], device=device), reduction="none").numpy()).tolist() == [False, True]
  np.testing.assert_array_equal(both.nll_loss(Tensor([0, 5], device=device), ignore_index=5, reduction="none").numpy(), [1.0, 0.0])


def test_attention_scale_and_grouped_query_heads(device):
  """scaled_dot_product_attention(scale=, enable_gqa=True): 4 query heads share 2 key/value heads (heads 0-1 the
  first, 2-3 the second, torch's grouping), checked against numpy."""
  q = rng.standard_normal((1, 4, 3, 8)).astype(np.float32)
  k = rng.standard_normal((1, 2, 5, 8)).astype(np.float32)
  v = rng.standard_normal((1, 2, 5, 8)).astype(np.float32)
  def numpy_attention(q, k, v, scale):
    s = q @ np.swapaxes(k, -1, -2) * scale
    e = np.exp(s - s.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)) @ v
  kk, vv = np.repeat(k, 2, axis=1), np.repeat(v, 2, axis=1)
  tq, tk, tv = (Tensor(a, device=device) for a in (q, k, v))
  got = tq.scaled_dot_product_attention(tk, tv, enable_gqa=True).numpy()
  np.testing.assert_allclose(got, numpy_attention(q, kk, vv, 1 / np.sqrt(8)), rtol=1e-4, atol=1e-5)
  got = tq.scaled_dot_product_attention(tk, tv, scale=0.5, enable_gqa=True).numpy()
  np.testing.assert_allclose(got, numpy_attention(q, kk, vv, 0.5), rtol=1e-4, atol=1e-5)
  # the sixth argument is PyTorch's scale: tinygrad's enable_gqa there ran as scale 1.0, silently
  with pytest.raises(TypeError, match="enable_gqa goes by keyword"): tq.scaled_dot_product_attention(tk, tv, None, 0.0, False, True)
  with pytest.raises(ValueError, match="grouped-query"):
    tq.scaled_dot_product_attention(Tensor(np.ones((1, 3, 5, 8), np.float32), device=device), Tensor(np.ones((1, 3, 5, 8), np.float32), device=device), enable_gqa=True)


def test_tensor_from_bytes_and_int_uniform(device):
  """Tensor(bytes) is their uint8 values (tinygrad's); uniform with an int dtype draws integers in [low, high)."""
  assert Tensor(b"abc", device=device).numpy().tolist() == [97, 98, 99]
  assert Tensor(bytearray(b"\x01\xff"), device=device).dtype == dtypes.uint8
  assert Tensor(b"\x05", dtype=dtypes.int32, device=device).numpy().tolist() == [5]
  drawn = Tensor.uniform(2000, low=-3, high=4, dtype=dtypes.int32, device=device).numpy()
  assert drawn.dtype == np.int32 and set(drawn.tolist()) == set(range(-3, 4))


@pytest.mark.parametrize("n", [5, 700])
def test_logcumsumexp_matches_torch(device, n):
  """Each prefix shifted by its own max: -1000 stays -1000 (a global shift would underflow it to -inf); rows of
  -inf give -inf, and their gradient NaN, as PyTorch's does. 700 takes the blocked scan."""
  torch = pytest.importorskip("torch")
  x = (rng.standard_normal((3, n)) * 30).astype(np.float32)
  x[0, 0], x[1, :3] = -1000, -np.inf
  t, tt = Tensor(x, device=device, requires_grad=True), torch.tensor(x, requires_grad=True)
  out, want = t.logcumsumexp(dim=1), torch.logcumsumexp(tt, 1)
  np.testing.assert_allclose(out.numpy(), want.detach().numpy(), rtol=1e-6, atol=1e-5)
  weights = np.arange(n, dtype=np.float32)
  (out * Tensor(weights, device=device)).sum().backward()
  (want * torch.tensor(weights)).sum().backward()
  np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_from_blob_reads_and_writes_the_memory_in_place():
  """tinygrad's from_blob on LLVM: no copy; kernels see the memory as it is when they run, writes land in it."""
  import array, ctypes
  memory = memoryview(bytearray(16)).cast("I")
  address = ctypes.addressof(ctypes.c_char.from_buffer(memory.obj))
  t = Tensor.from_blob(address, (4,), dtype=dtypes.int32, device="LLVM")
  np.testing.assert_array_equal((t + 1).numpy(), [1, 1, 1, 1])
  memory[:] = array.array("I", [0, 1, 2, 3])
  np.testing.assert_array_equal((t + 1).numpy(), [1, 2, 3, 4])
  t.assign(t * 10).realize()
  assert list(memory) == [0, 10, 20, 30]
  assert t.numpy().tolist() == [0, 10, 20, 30] and t[2].item() == 20  # (read straight out: it raised AttributeError)
  t2 = Tensor.from_blob(address, (4,), dtype=dtypes.int32, device="LLVM")
  t2.assign(Tensor([7, 8, 9, 10], dtype=dtypes.int32, device="LLVM").contiguous().realize()).realize()
  assert list(memory) == [7, 8, 9, 10]
  with pytest.raises(ValueError, match="aligned"): Tensor.from_blob(address + 1, (2,), dtype=dtypes.int32, device="LLVM")
  if "CL" in Device.available():
    with pytest.raises(TypeError, match="host memory"): Tensor.from_blob(address, (4,), dtype=dtypes.int32, device="CL")


def test_replace_swaps_a_tensors_value(device):
  p = Tensor.ones(3, device=device, requires_grad=True)
  tail = p[1:]
  assert p.replace(Tensor([5.0, 6.0, 7.0], device=device).contiguous()) is p
  np.testing.assert_array_equal(p.numpy(), [5, 6, 7])
  np.testing.assert_array_equal(tail.numpy(), [6, 7])  # (a view made before sees the new value)
  assert p.requires_grad
  with pytest.raises(ValueError, match="same shape"): p.replace(Tensor.ones(2, device=device))
  with pytest.raises(RuntimeError, match="view"): tail.replace(Tensor.ones(2, device=device))


@pytest.mark.parametrize("name", ["cummax", "cummin"])
def test_cummax_cummin_give_values_and_indices_like_torch(device, name):
  """Indices: the last position so far holding the running value; after a NaN, the latest NaN (torch's rule)."""
  torch = pytest.importorskip("torch")
  x = np.array([[1.0, 3.0, 3.0, 2.0, np.nan, 5.0, np.nan, 1.0], [2.0, 1.0, 1.0, 3.0, 1.0, 0.0, 0.0, 4.0]], np.float32)
  values, indices = getattr(Tensor(x, device=device), name)(dim=1)
  want = getattr(torch, name)(torch.tensor(x), 1)
  np.testing.assert_array_equal(values.numpy(), want.values.numpy())
  np.testing.assert_array_equal(indices.numpy(), want.indices.numpy())
  ints = np.array([2, 1, 1, 3, 1], np.int32)
  values, indices = getattr(Tensor(ints, device=device), name)(0)
  want = getattr(torch, name)(torch.tensor(ints), 0)
  np.testing.assert_array_equal(values.numpy(), want.values.numpy())
  np.testing.assert_array_equal(indices.numpy(), want.indices.numpy())
  t, tt = Tensor(x[1], device=device, requires_grad=True), torch.tensor(x[1], requires_grad=True)
  getattr(t, name)(0)[0].sum().backward()
  getattr(torch, name)(tt, 0).values.sum().backward()
  np.testing.assert_array_equal(t.grad.numpy(), tt.grad.numpy())


def test_interpolate_keeps_an_int_dtype(device):
  """uint8 images stay uint8, like PyTorch's: nearest picks elements, bilinear rounds back (values checked by hand:
  row 0 of a 3x4 ramp of 20s resized to 7 columns)."""
  x = (np.arange(12, dtype=np.uint8).reshape(1, 1, 3, 4) * 20)
  nearest = Tensor(x, device=device).interpolate((5, 7), mode="nearest")
  assert nearest.dtype == dtypes.uint8
  np.testing.assert_array_equal(nearest.numpy()[0, 0, 0], [0, 0, 20, 20, 40, 40, 60])
  bilinear = Tensor(x, device=device).interpolate((5, 7), mode="bilinear")
  assert bilinear.dtype == dtypes.uint8
  np.testing.assert_array_equal(bilinear.numpy()[0, 0, 0], [0, 7, 19, 30, 41, 53, 60])


def test_small_spellings_of_torch_and_tinygrad(device):
  """.bfloat16(), .short(), .is_floating_point() (torch), .to_(device) and pad_to(value=) (tinygrad), and
  teeny.getenv (tinygrad's top-level helper)."""
  t = Tensor(np.float32([1.5, -2.5]), device=device)
  assert t.bfloat16().dtype == dtypes.bfloat16 and t.short().dtype == dtypes.int16
  np.testing.assert_array_equal(t.short().numpy(), [1, -2])
  assert t.is_floating_point() and not Tensor([1], device=device).is_floating_point()
  for other in Device.available():
    moved = Tensor(np.float32([1.5, -2.5]), device=device)
    assert moved.to_(other) is moved and moved.device == other
    np.testing.assert_array_equal(moved.numpy(), [1.5, -2.5])
  np.testing.assert_array_equal(Tensor.ones(1, 2, device=device).pad_to(2, 3, value=7).numpy(), [[1, 1, 7], [7, 7, 7]])
  assert teeny.getenv("TEENY_SURELY_UNSET_NAME", 3) == 3


def test_where_tinygrad_refuses_teeny_answers_or_errors_like_pytorch(device):
  """The calls tinygrad's own tests pin differently (tools/tinygrad_compat/verdicts.py), with PyTorch's answer or
  error written out: one_hot(-1) infers the class count, bool() of one element, an optimizer step with
  Tensor.training off, a write of another dtype casts, a formula isn't rewritten (x = 300: NaN, as in torch), and
  the refusals: Tensor(None), shifts of floats, a float index, a gradient of another shape, backward() of a
  non-scalar, a dtype that is no dtype."""
  from teeny.nn.optim import SGD
  labels = Tensor([1, 2, 4], device=device)
  np.testing.assert_array_equal(labels.one_hot(-1).numpy(), np.eye(5, dtype=np.int32)[[1, 2, 4]])
  assert bool(Tensor(3, device=device)) and Tensor([3], device=device) in [Tensor([3], device=device)]
  w = Tensor([1.0, 2.0], device=device, requires_grad=True)
  opt = SGD([w], lr=0.5)
  was, Tensor.training = Tensor.training, False
  try:
    (w * w).sum().backward()
    opt.step()
  finally: Tensor.training = was
  np.testing.assert_allclose(w.numpy(), [0.0, 0.0])
  t = Tensor.zeros(6, device=device).contiguous().realize()
  t[2:4] = Tensor([1, 2], dtype=dtypes.int32, device=device)
  t.assign(t + Tensor([1, 1, 1, 1, 1, 1], dtype=dtypes.int64, device=device))
  assert t.dtype == dtypes.float32 and t.tolist() == [1.0, 1.0, 2.0, 3.0, 1.0, 1.0]
  x = Tensor([300.0], device=device, requires_grad=True)
  y = x.exp() / (1 + x.exp())
  y.sum().backward()
  assert np.isnan(y.numpy()).all() and np.isnan(x.grad.numpy()).all()
  with pytest.raises(TypeError): Tensor(None, device=device)
  with pytest.raises(TypeError): Tensor([1.0], device=device) << 1
  with pytest.raises((TypeError, IndexError)): Tensor([1.0, 2.0], device=device)[0.0]
  z = (Tensor([1.0, 2.0], device=device, requires_grad=True) ** 2)
  with pytest.raises(RuntimeError, match="explicit gradient"): z.backward()
  with pytest.raises(RuntimeError, match="gradient of shape"): z.sum().backward(Tensor([1.0], device=device))
  with pytest.raises(TypeError): Tensor([3], dtype="typo", device=device)


def test_cumsum_dtype_and_unbatched_convolutions(device):
  # torch.cumsum(dtype=) and an unbatched (C, H, W) input to nn.Conv2d (and (C, L) to Conv1d): teeny raised
  from teeny import nn
  assert Tensor([1, 2, 3], device=device).cumsum(0, dtype=dtypes.float32).numpy().tolist() == [1.0, 3.0, 6.0]
  assert Tensor([1, 2, 3], device=device).cumsum(dim=0, dtype=dtypes.float32).dtype == dtypes.float32
  assert Tensor([1.0, 2.0, 3.0], device=device).cumprod(0, dtype=dtypes.int32).numpy().tolist() == [1, 2, 6]
  for conv, shape in ((nn.Conv2d(3, 4, 3, padding=1), (3, 5, 5)), (nn.Conv1d(3, 4, 3), (3, 6))):
    x = Tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32), device=device)
    conv.weight, conv.bias = conv.weight.to(device), conv.bias.to(device)
    np.testing.assert_array_equal(conv(x).numpy(), conv(x.unsqueeze(0)).numpy()[0])


def test_small_forms_pytorch_accepts(device):
  """+x is x (bool raises), a 0-d tensor flips along 0 or -1, out-of-place masked_fill broadcasts self up to the
  mask (masked_fill_ still needs the mask to fit self), and a write of no elements through any view, an expanded
  one too, does nothing (it raised as a write into an expanded view)."""
  x = Tensor([1.0, 2.0], device=device)
  assert +x is x
  with pytest.raises(TypeError, match="bool"): +Tensor([True], device=device)
  assert Tensor(3.0, device=device).flip(0).item() == 3.0 and Tensor(3.0, device=device).flip(-1).item() == 3.0
  mask = Tensor(np.array([[[True]], [[False]]]), device=device)
  filled = Tensor.zeros(2, 3, device=device).masked_fill(mask, 1.0)
  np.testing.assert_array_equal(filled.numpy(), np.broadcast_to(np.array([1.0, 0.0]).reshape(2, 1, 1), (2, 2, 3)))
  with pytest.raises(ValueError, match="masked_fill_"): Tensor.zeros(2, 3, device=device).masked_fill_(mask, 1.0)
  b = Tensor([[1.0], [2.0]], device=device)
  b.expand(2, 3)[:, 0:0] = 7
  np.testing.assert_array_equal(b.numpy(), [[1.0], [2.0]])
