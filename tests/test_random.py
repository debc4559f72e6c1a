"""The on-device counter-based generator (Threefry-2x32): known answers, reproducibility, the same bits on every
device, and the shape, range and rough statistics of each random creation function."""
import math
import numpy as np
import pytest
from teeny import Tensor, dtypes
from teeny.runtime.device import Device

DEVICES = Device.available()
M32 = 0xFFFFFFFF


def threefry_np(x0, x1, k0, k1):
  """Reference Threefry-2x32-20 on Python ints."""
  rot, ks = ((13, 15, 26, 6), (17, 29, 16, 24)), (k0, k1, k0 ^ k1 ^ 0x1BD11BDA)
  x0, x1 = (x0 + ks[0]) & M32, (x1 + ks[1]) & M32
  for i in range(5):
    for r in rot[i % 2]:
      x0 = (x0 + x1) & M32
      x1 = (((x1 << r) | (x1 >> (32 - r))) & M32) ^ x0
    x0, x1 = (x0 + ks[(i + 1) % 3]) & M32, (x1 + ks[(i + 2) % 3] + i + 1) & M32
  return x0, x1


# Random123's known-answer vectors for threefry2x32_20: (counter, key) -> output
KNOWN = [((0, 0), (0, 0), (0x6b200159, 0x99ba4efe)),
         ((M32, M32), (M32, M32), (0x1cb996fc, 0xbb002be7)),
         ((0x243f6a88, 0x85a308d3), (0x13198a2e, 0x03707344), (0xc4923a9c, 0x483df7a0))]


def u32(v, device): return Tensor(np.array(v, dtype=np.uint32), device=device)


def test_threefry_known_answers(device):
  x0 = u32([c[0][0] for c in KNOWN], device)
  x1 = u32([c[0][1] for c in KNOWN], device)
  k0 = u32([c[1][0] for c in KNOWN], device)
  k1 = u32([c[1][1] for c in KNOWN], device)
  y0, y1 = Tensor._threefry2x32(x0, x1, k0, k1)
  assert y0.dtype == dtypes.uint32
  np.testing.assert_array_equal(y0.numpy(), [c[2][0] for c in KNOWN])
  np.testing.assert_array_equal(y1.numpy(), [c[2][1] for c in KNOWN])
  assert all(threefry_np(*c[0], *c[1]) == c[2] for c in KNOWN)


def test_random_bits_match_reference(device):
  seed = (7 << 32) | 12345
  Tensor.manual_seed(seed)
  Tensor.rand(1, device=device)  # advance the call counter once
  bits = Tensor._random_bits(7, device).numpy()
  ref = []
  for i in range(4): ref += threefry_np(i, 7, 12345, 1)
  np.testing.assert_array_equal(bits, np.array(ref[:7], dtype=np.uint32))


def test_same_bits_on_every_device():
  if len(DEVICES) < 2: pytest.skip("needs two devices")
  outs = []
  for dev in DEVICES:
    Tensor.manual_seed(1337)
    outs.append((Tensor.rand(5, 7, device=dev).numpy(), Tensor.randn(33, device=dev).numpy(),
                 Tensor.randint(-5, 5, (9,), device=dev).numpy()))
  for other in outs[1:]:
    np.testing.assert_array_equal(outs[0][0], other[0])  # bit-equal uniforms
    np.testing.assert_allclose(outs[0][1], other[1], rtol=1e-5, atol=1e-5)  # log/cos may differ in the last ulp
    np.testing.assert_array_equal(outs[0][2], other[2])


def test_reproducible_and_advancing(device):
  Tensor.manual_seed(3)
  a, b = Tensor.rand(4, 5, device=device).numpy(), Tensor.rand(4, 5, device=device).numpy()
  Tensor.manual_seed(3)
  a2, b2 = Tensor.rand(4, 5, device=device).numpy(), Tensor.rand(4, 5, device=device).numpy()
  np.testing.assert_array_equal(a, a2)
  np.testing.assert_array_equal(b, b2)
  assert not np.array_equal(a, b)
  Tensor.manual_seed(4)
  assert not np.array_equal(Tensor.rand(4, 5, device=device).numpy(), a)


def test_rand_is_lazy(device):
  t = Tensor.rand(4, 5, device=device)
  assert t.shape == (4, 5) and t.dtype == dtypes.float32 and t.device == device


@pytest.mark.parametrize("dtype", [dtypes.float16, dtypes.float32, dtypes.float64])
def test_rand_range_and_dtype(device, dtype):
  Tensor.manual_seed(0)
  t = Tensor.rand(4096, dtype=dtype, device=device)
  x = t.numpy()
  assert t.dtype == dtype and x.dtype == dtype.np
  assert x.min() >= 0 and x.max() < 1
  assert abs(x.astype(np.float64).mean() - 0.5) < 0.03 and abs(x.astype(np.float64).var() - 1 / 12) < 0.01
  assert len(np.unique(x)) > (1000 if dtype == dtypes.float16 else 4000)


def test_randn_stats(device):
  Tensor.manual_seed(0)
  x = Tensor.randn(64, 64, device=device).numpy()
  assert x.shape == (64, 64) and x.dtype == np.float32 and np.isfinite(x).all()
  assert abs(x.mean()) < 0.05 and abs(x.std() - 1) < 0.05
  assert abs((np.abs(x) < 1).mean() - 0.6827) < 0.03


def test_randint(device):
  Tensor.manual_seed(0)
  t = Tensor.randint(-3, 4, (4096,), device=device)
  x = t.numpy()
  assert t.dtype == dtypes.int32 and x.dtype == np.int32
  assert set(np.unique(x).tolist()) == set(range(-3, 4))
  assert Tensor.randint(5, shape=(2, 3), device=device).numpy().max() < 5
  assert Tensor.randint(0, 10, (3,), dtype=dtypes.int64, device=device).dtype == dtypes.int64
  with pytest.raises(ValueError): Tensor.randint(3, 3, (2,), device=device)


def test_randint_is_unbiased_over_wide_ranges(device):
  """Drawn as 32 random bits mod the range, randint(0, 10**9) gave values below 2**32 % 10**9 a fifth more often
  (P(x < 294967296) 0.3435 for 0.2950; mean 4.76e8 for 5e8), and ranges wider than 2**32 raised. 64 bits now;
  int64 ranges of any width, and a dtype that can't hold high - 1 raises, as PyTorch."""
  Tensor.manual_seed(5)
  x = Tensor.randint(0, 10**9, (200_000,), device=device).numpy().astype(np.float64)
  p, sd = 294967296 / 10**9, math.sqrt(0.295 * 0.705 / 200_000)
  assert abs((x < 294967296).mean() - p) < 5 * sd
  assert abs(x.mean() - 5e8) < 5 * 10**9 / math.sqrt(12 * 200_000)
  wide = Tensor.randint(-2**62, 2**62, (100_000,), dtype=dtypes.int64, device=device).numpy()
  assert wide.min() >= -2**62 and wide.max() < 2**62 and abs(wide.astype(np.float64).mean()) < 5 * 2**63 / math.sqrt(12 * 100_000)
  assert (wide > 2**32).mean() > 0.45  # (the upper half of the range is drawn)
  full = Tensor.randint(-2**63, 2**63, (4,), dtype=dtypes.int64, device=device).numpy()
  assert full.dtype == np.int64 and len(set(full.tolist())) == 4
  with pytest.raises(OverflowError): Tensor.randint(0, 300, (2,), dtype=dtypes.uint8)
  with pytest.raises(OverflowError): Tensor.randperm(300, dtype=dtypes.uint8)
  assert sorted(Tensor.randperm(256, dtype=dtypes.uint8, device=device).numpy().tolist()) == list(range(256))


@pytest.mark.parametrize("dtype", [dtypes.float32, dtypes.float16, dtypes.bfloat16, dtypes.float64])
def test_uniform_never_draws_high(device, dtype):
  """low + u * (high - low) rounds to high for u close to 1 where the range is small against low: uniform(100, 101)
  in float16 gave 101.0 about 3% of the time (PyTorch's never does). high is excluded in every dtype."""
  Tensor.manual_seed(1)
  wide = dtype in (dtypes.float32, dtypes.float64)  # (1e6 + 1 is 1e6 in bfloat16, inf in float16)
  for low, high in ((100.0, 101.0), (-1.0, 0.0)) + (((1e6, 1e6 + 1),) if wide else ()):
    x = Tensor.uniform(100_000, low=low, high=high, dtype=dtype, device=device)
    x = (x if wide else x.float()).numpy().astype(np.float64)
    assert x.max() < high and x.min() >= low, (low, high)
  t = Tensor.zeros(100_000, dtype=dtype, device=device).contiguous()
  assert t.uniform_(100.0, 101.0).cast(dtypes.float64).numpy().max() < 101.0


@pytest.mark.parametrize("args,kw,shape,lo,hi", [
  ((5, (2, 3)), {}, (2, 3), 0, 5),               # torch: randint(high, size)
  ((-3, 4, (4,)), {}, (4,), -3, 4),              # torch: randint(low, high, size)
  ((0, 10), {"size": 3}, (3,), 0, 10),           # torch: size keyword
  ((2, 3), {"high": 5}, (2, 3), 0, 5),           # tinygrad: randint(*shape, low=0, high=10)
  ((3,), {"low": 7, "high": 9}, (3,), 7, 9),
  ((), {"shape": (2, 2), "low": 1, "high": 3}, (2, 2), 1, 3),
])
def test_randint_call_forms(args, kw, shape, lo, hi):
  x = Tensor.randint(*args, **kw).numpy()
  assert x.shape == shape and x.min() >= lo and x.max() < hi


def test_uniform_normal_and_inits(device):
  Tensor.manual_seed(0)
  u = Tensor.uniform(64, 64, low=-2, high=3, device=device).numpy()
  assert u.min() >= -2 and u.max() < 3 and abs(u.mean() - 0.5) < 0.1
  n = Tensor.normal(64, 64, mean=3, std=0.5, device=device).numpy()
  assert abs(n.mean() - 3) < 0.05 and abs(n.std() - 0.5) < 0.05
  shape = (64, 32)
  ku = Tensor.kaiming_uniform(*shape, device=device).numpy()
  bound = math.sqrt(3) * math.sqrt(2 / (1 + 0.01 ** 2)) / math.sqrt(32)
  assert np.abs(ku).max() <= bound and np.abs(ku).max() > 0.9 * bound
  kn = Tensor.kaiming_normal(*shape, device=device).numpy()
  assert abs(kn.std() - math.sqrt(2 / (1 + 0.01 ** 2)) / math.sqrt(32)) < 0.02
  gb = math.sqrt(6 / (64 + 32))
  g = Tensor.glorot_uniform(*shape, device=device).numpy()
  assert np.abs(g).max() <= gb and np.abs(g).max() > 0.9 * gb
  s = Tensor.scaled_uniform(*shape, device=device).numpy()
  assert np.abs(s).max() <= (64 * 32) ** -0.5


def test_like_and_requires_grad(device):
  base = Tensor(np.zeros((2, 3), np.float64), device=device)
  r = base.rand_like()
  assert r.shape == (2, 3) and r.dtype == dtypes.float64 and r.device == device
  assert base.randn_like().dtype == dtypes.float64
  assert Tensor.ones(2, 3, dtype=dtypes.int32, device=device).rand_like().dtype == dtypes.float32
  assert Tensor.rand(2, device=device, requires_grad=True).requires_grad
  assert Tensor.rand(0, 3, device=device).shape == (0, 3)


def test_randperm_is_a_permutation(device):
  Tensor.manual_seed(3)
  p = Tensor.randperm(50, device=device)
  assert p.dtype == dtypes.int32 and sorted(p.numpy().tolist()) == list(range(50))
  assert Tensor.randperm(50, device=device).numpy().tolist() != p.numpy().tolist()  # (a new draw)
  assert Tensor.randperm(0, device=device).shape == (0,)
  with pytest.raises(ValueError, match="non-negative"): Tensor.randperm(-1)


@pytest.mark.parametrize("replacement", [True, False])
def test_multinomial_frequencies_follow_the_weights(device, replacement):
  """20000 draws of one sample from weights 1:0:6:3 land within 5 standard deviations of 0.1, 0, 0.6, 0.3. (Drawn
  without replacement through topk of log(u) / w: keys computed inline once ranked an element before itself,
  and gave 0.14 / 0.57 / 0.28.)"""
  Tensor.manual_seed(1)
  weights = np.array([1.0, 0.0, 6.0, 3.0], np.float32)
  if replacement: drawn = Tensor(weights, device=device).multinomial(20000, replacement=True).numpy()
  else: drawn = Tensor(np.tile(weights, (20000, 1)), device=device).multinomial(1).numpy().ravel()
  share = np.bincount(drawn, minlength=4) / 20000
  want = weights / weights.sum()
  np.testing.assert_array_less(np.abs(share - want), 5 * np.sqrt(want * (1 - want) / 20000) + 1e-9)


def test_multinomial_without_replacement_draws_distinct_indices(device):
  Tensor.manual_seed(2)
  drawn = Tensor([[1.0, 2.0, 3.0, 4.0, 0.0]] * 3, device=device).multinomial(4).numpy()
  assert drawn.shape == (3, 4) and all(sorted(row) == [0, 1, 2, 3] for row in drawn.tolist())
  with pytest.raises(ValueError, match="without replacement"): Tensor([1.0, 2.0], device=device).multinomial(3)
  with pytest.raises(ValueError, match="1-D or 2-D"): Tensor.ones(2, 2, 2, device=device).multinomial()
