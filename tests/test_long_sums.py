"""Long float sums of any length are added in bounded partial sums on every device: no accumulator adds more than
Tuning.split_max_chunk terms (a device that adds serially, OpenCL on a CPU, would otherwise stall once the sum outgrows
its terms: 2^24 + 0.5 == 2^24 in float32), lengths that no split divides are padded with zeros, very long sums
nest, float16 sums keep float32 partial sums, and gradient sums split like the others (the scheduler shapes every
graph: teeny/schedule/shaping.py). Checked against numpy's float64 sum."""
import numpy as np
import pytest
from teeny import Tensor, GlobalCounters, dtypes
from teeny.uop import Ops
from conftest import use_tuning

rng = np.random.default_rng(0)


def relative_error(got, values: np.ndarray) -> float:
  want = values.astype(np.float64).sum()
  return abs(float(got) - want) / abs(want)


def test_sum_of_50_million_and_3_uniform_floats(device):
  """5e7 + 3 uniform floats (a length no power of two divides) sum to numpy's float64 sum within a few float32
  roundings of the result (one serial float32 accumulator would stop at 16,777,216: 33% of the 2.5e7 sum).
  Two levels of partial sums of at most 65,536 terms: 2 kernels."""
  x = rng.random(50_000_003, dtype=np.float32)
  t = Tensor(x, device=device).realize()
  GlobalCounters.reset()
  got = t.sum().item()
  assert GlobalCounters.kernel_count == 2
  error = relative_error(got, x)
  print(f"{device}: sum {got} relative error {error:.2e}")
  assert error < 1e-6, (got, error)
  np.testing.assert_allclose(t.mean().item(), x.astype(np.float64).mean(), rtol=1e-6)


@pytest.mark.parametrize("n", [32_771, 65_537, 100_003, (1 << 20) + 1, 3 * 65_536 + 5])
def test_sums_of_odd_lengths_split_and_match_numpy(device, n):
  """Lengths that no power of two divides split too (padded with zeros), in 2 kernels, within float32
  reassociation error of numpy's float64 sum; signed values (cancellation) too, with keepdim."""
  x = rng.standard_normal(n).astype(np.float32) + 0.5
  t = Tensor(x, device=device)
  GlobalCounters.reset()
  got = t.sum().item()
  assert GlobalCounters.kernel_count == 2
  assert relative_error(got, x) < 1e-5
  rows = Tensor(np.stack([x, -2 * x]), device=device).sum(1, keepdim=True).numpy()
  np.testing.assert_allclose(rows, np.stack([x, -2 * x]).astype(np.float64).sum(1, keepdims=True), rtol=1e-5)


def test_partial_sums_are_bounded_and_nest(device, monkeypatch):
  """With the bound lowered to 64 terms, a sum of 100,003 floats over 3 outputs nests three levels deep (1,563
  partial sums, then 25, then the total: 3 kernels), a sum with many outputs splits only where it is too long,
  and gradients flow through the padding."""
  use_tuning(monkeypatch, device, split_max_chunk=64)
  x = rng.random((3, 100_003)).astype(np.float32)
  t = Tensor(x, device=device, requires_grad=True)
  GlobalCounters.reset()
  got = t.sum(1).numpy()
  assert GlobalCounters.kernel_count == 3
  np.testing.assert_allclose(got, x.astype(np.float64).sum(1), rtol=1e-6)
  wide = rng.random((100, 1000)).astype(np.float32)
  GlobalCounters.reset()
  np.testing.assert_allclose(Tensor(wide, device=device).sum(1).numpy(), wide.astype(np.float64).sum(1), rtol=1e-6)
  assert GlobalCounters.kernel_count == 2  # 100 outputs of 1000 terms: partial sums of at most 64
  GlobalCounters.reset()
  Tensor(wide[:, :64], device=device).sum(1).realize()
  assert GlobalCounters.kernel_count == 1  # short enough: one kernel
  (t.sum(1) * Tensor([1.0, 2.0, 3.0], device=device)).sum().backward()
  np.testing.assert_array_equal(t.grad.numpy(), np.broadcast_to(np.array([[1.0], [2.0], [3.0]], np.float32), x.shape))


def test_float16_sums_keep_float32_partial_sums(device):
  """A long float16 sum splits like a float32 one (2 kernels; it used to stay one), its partial sums in float32
  and the total rounded to half once (as mean does): 40,000 halves of 1.5 sum to 60,000, random halves to numpy's
  float64 sum within half's rounding, and past 65,504 the sum is inf, like torch."""
  GlobalCounters.reset()
  x = Tensor(np.full(40_000, 1.5, np.float16), device=device)
  got = x.sum()
  assert got.dtype == dtypes.float16 and got.item() == 60_000.0
  assert GlobalCounters.kernel_count == 2
  y = rng.random(70_001).astype(np.float16)
  total = Tensor(y, device=device).sum()
  assert total.dtype == dtypes.float16
  np.testing.assert_allclose(total.item(), y.astype(np.float64).sum(), rtol=1e-3)  # (half rounds at 2^-11)
  assert Tensor(np.ones(70_000, np.float16), device=device).sum().item() == np.inf
  torch = pytest.importorskip("torch")
  assert torch.tensor(np.ones(70_000, np.float16)).sum().item() == np.inf


def test_gradient_sums_split_like_forward_sums(device):
  """The scheduler shapes every graph, gradients included: the gradient of a bias broadcast over 2^25 elements and
  multiplied by x is the sum of x, here 2^25 ones. It is exact (one serial float32 accumulator, OpenCL on a CPU,
  would stop at 2^24 and give half), in 2 kernels. And the user's graph holds none of the shaping: no copy in the
  lazy sum."""
  n = 1 << 25
  bias = Tensor([0.5], device=device, requires_grad=True)
  x = Tensor.ones(n, device=device).contiguous().realize()
  ((x + bias) * x).sum().backward()
  grad = bias.grad
  assert not any(u.op is Ops.CONTIGUOUS for u in grad.uop.toposort())  # (x, realized, is a buffer)
  GlobalCounters.reset()
  assert grad.numpy().tolist() == [float(n)]
  assert GlobalCounters.kernel_count == 2


def test_matmul_weight_gradient_over_a_long_batch_splits(device):
  """The weight gradient of x @ w over a batch of 2^17 rows with 2 outputs per row (x.T @ g: 8 results, each a sum
  of 2^17 products) runs as partial sums (2 kernels; 1 when only forward sums split), like the forward sum of a
  loss would; it matches numpy."""
  x = rng.standard_normal((1 << 17, 4)).astype(np.float32)
  g = rng.standard_normal((1 << 17, 2)).astype(np.float32)
  w = Tensor(rng.standard_normal((4, 2)).astype(np.float32), device=device, requires_grad=True)
  (Tensor(x, device=device) @ w * Tensor(g, device=device)).sum().backward()
  GlobalCounters.reset()
  got = w.grad.numpy()
  assert GlobalCounters.kernel_count == 2
  np.testing.assert_allclose(got, x.astype(np.float64).T @ g.astype(np.float64), rtol=1e-4, atol=1e-3)


def test_long_float32_cumprod_keeps_its_precision(device):
  """A float32 cumprod scans blocks of 256, each starting at 1, and products near 1 round down more often than up:
  the blocks' totals drifted together, 1e5 factors of 1 + 1e-3 N(0, 1) ended 4.5e-5 off (1e6: 4.8e-4, 10x a
  sequential float32 product). float32 multiplies in float64 where the device has it, as PyTorch's CPU kernel;
  the gradient too."""
  from teeny import Device
  if not Device[device].supports_dtype(dtypes.float64): pytest.skip(f"{device} has no float64")
  x = (1 + np.random.default_rng(1).standard_normal(100_000) * 1e-3).astype(np.float32)
  products = np.cumprod(x.astype(np.float64))
  t = Tensor(x, device=device, requires_grad=True)
  out = t.cumprod(0)
  assert out.dtype == dtypes.float32
  np.testing.assert_allclose(out.numpy(), products, rtol=2 ** -23)
  out.sum().backward()  # d/dx_i of the sum of every prefix product: the prefixes from i on, over x_i
  np.testing.assert_allclose(t.grad.numpy(), np.cumsum(products[::-1])[::-1] / x, rtol=2e-7)


def test_float32_cumsum_adds_in_float64_like_pytorch(device):
  """A float32 cumsum adds in float64 where the device has it, as PyTorch's CPU kernel: the scan adds in another
  order than a running sum, so [3e38, -3e38] * 8 met 3e38 + 3e38 = inf and gave NaN after the third prefix, and
  each prefix of a long scan is now the float64 prefix rounded once."""
  from teeny import Device
  if not Device[device].supports_dtype(dtypes.float64): pytest.skip(f"{device} has no float64")
  alternating = np.array([3e38, -3e38] * 8, np.float32)
  np.testing.assert_array_equal(Tensor(alternating, device=device).cumsum(0).numpy(), np.cumsum(alternating.astype(np.float64)).astype(np.float32))
  x = np.random.default_rng(2).standard_normal((3, 5000)).astype(np.float32)
  out = Tensor(x, device=device).cumsum(1)
  assert out.dtype == dtypes.float32
  np.testing.assert_allclose(out.numpy(), np.cumsum(x.astype(np.float64), 1), rtol=0, atol=2 ** -24 * 150)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_cumsum_adds_each_prefix_in_order_like_pytorch(device, dtype):
  """A scan's prefixes add their terms in order, as PyTorch's sequential cumsum: reassociated into partial sums,
  [1e20, -1e20] + [1] * 12 met 1e20 + 1 = 1e20 and gave zeros (in float64 too); the gradient, a reversed cumsum,
  likewise."""
  from teeny import Device
  if dtype == np.float64 and not Device[device].supports_dtype(dtypes.float64): pytest.skip(f"{device} has no float64")
  big, small = {np.float16: (6e4, 0.001), np.float32: (1e20, 1.0), np.float64: (1e10, 1e-7)}[dtype]
  x = np.array([big, -big] + [small] * 12, dtype)
  want = np.cumsum(x.astype(np.float64) if dtype != np.float64 else x)
  np.testing.assert_allclose(Tensor(x, device=device).cumsum(0).numpy().astype(np.float64), want, rtol=1e-2)
  if dtype == np.float16: return
  t = Tensor(np.zeros((2, 14), dtype), device=device, requires_grad=True)
  (t.cumsum(1) * Tensor(x[::-1].copy(), device=device)).sum().backward()  # d/dt_j = the sum of the weights from j on
  np.testing.assert_allclose(t.grad.numpy()[0].astype(np.float64), np.cumsum(x.astype(np.float64))[::-1], rtol=1e-6)


def test_long_sums_that_shape_into_one_node_are_all_realized(device):
  """x.sum() and x.sum(1) of a (1, n) tensor are the same sum once split into partial sums (schedule/shaping.py
  builds one node for both); realized together, each result still gets its buffer (it raised KeyError)."""
  x = np.arange(40_000, dtype=np.float32).reshape(1, 40_000) % 7
  t = Tensor(x, device=device)
  whole, rows, kept = t.sum(), t.sum(1), t.sum(1, keepdim=True)
  Tensor.realize(whole, rows, kept)
  expected = x.astype(np.float64).sum()
  assert whole.numpy() == expected and rows.numpy().tolist() == [expected] and kept.numpy().tolist() == [[expected]]


def test_cumsum_gradient_of_a_sharded_tensor():
  """cumsum's gradient rule makes its mask (an arange) on the devices its input is on: on a tensor sharded over two
  devices the mask was made on the default one alone and the backward pass raised ("a tensor on one device meets a
  sharded one")."""
  x = Tensor(np.arange(28, dtype=np.float32).reshape(2, 14), requires_grad=True)
  w = Tensor(np.arange(14, dtype=np.float32)).shard(("LLVM", "LLVM:1"))
  (x.shard(("LLVM", "LLVM:1"), axis=0).cumsum(1) * w).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), np.broadcast_to(np.cumsum(np.arange(14)[::-1])[::-1], (2, 14)))
