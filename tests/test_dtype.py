"""Every dtype through the device and back, elementwise and reduce math per dtype against numpy computed in the
same dtype, PyTorch's promotion rules, and the cast semantics (truncation, bool, half rounding)."""
import os
import numpy as np
import pytest
from teeny import Tensor, dtypes, Device

DTYPES = [dtypes.bool, dtypes.int8, dtypes.uint8, dtypes.int16, dtypes.int32, dtypes.int64, dtypes.uint32,
          dtypes.float16, dtypes.float32, dtypes.float64]
IDS = [d.name for d in DTYPES]
FLOAT_TOL = {dtypes.float16: dict(rtol=1e-3, atol=1e-3), dtypes.float32: dict(rtol=1e-6, atol=1e-7),
             dtypes.float64: dict(rtol=1e-12, atol=1e-14)}


def sample(dt, n=16, seed=0, special=True) -> np.ndarray:
  """n values of dt covering its range: extremes, zero, and random values; for floats also -0, inf, nan, subnormals."""
  rng = np.random.default_rng(seed)
  if dt == dtypes.bool: return rng.integers(0, 2, n).astype(np.bool_)
  npdt = dt.np
  if dtypes.is_int(dt):
    info = np.iinfo(npdt)
    out = rng.integers(info.min, info.max, n, dtype=npdt, endpoint=True)
    if special: out[:4] = [info.min, info.max, 0, 1 if dtypes.is_unsigned(dt) else -1]
    return out
  info = np.finfo(npdt)
  out = (rng.standard_normal(n) * 10).astype(npdt)
  if special: out[:8] = [0.0, -0.0, np.inf, -np.inf, np.nan, info.max, info.tiny, info.smallest_subnormal]
  return out


def assert_bits_equal(out: np.ndarray, expected: np.ndarray, nan_bits=True):
  """Bit-exact equality (so -0.0 != 0.0); with nan_bits=False a NaN only has to be some NaN, since a kernel that
  converts through another float type (half in float registers) may change a NaN's payload bits."""
  assert out.dtype == expected.dtype and out.shape == expected.shape, f"{out.dtype}{out.shape} != {expected.dtype}{expected.shape}"
  out, expected = np.ascontiguousarray(out), np.ascontiguousarray(expected)
  if not nan_bits and out.dtype.kind == "f":
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected), err_msg=f"NaNs differ: {out!r} != {expected!r}")
    keep = ~np.isnan(expected)
    out, expected = out[keep], expected[keep]
  np.testing.assert_array_equal(out.view(np.uint8), expected.view(np.uint8), err_msg=f"{out!r} != {expected!r}")


def assert_matches(out: np.ndarray, expected: np.ndarray, dt):
  assert out.dtype == expected.dtype, f"{out.dtype} != {expected.dtype}"
  assert out.shape == expected.shape
  if dtypes.is_float(dt): np.testing.assert_allclose(out, expected, equal_nan=True, **FLOAT_TOL[dt])
  else: np.testing.assert_array_equal(out, expected)


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("dt", DTYPES, ids=IDS)
def test_roundtrip(device, dt):
  a = sample(dt).reshape(2, 8)
  t = Tensor(a, device=device)
  assert t.dtype == dt
  assert_bits_equal(t.numpy(), a)


@pytest.mark.parametrize("dt", DTYPES, ids=IDS)
def test_roundtrip_through_kernel(device, dt):
  a = sample(dt).reshape(2, 8)
  t = Tensor(a, device=device).flip(1)  # a copy kernel that loads and stores every element
  assert_bits_equal(t.numpy(), np.flip(a, 1).copy(), nan_bits=False)


@pytest.mark.parametrize("dt", DTYPES, ids=IDS)
def test_roundtrip_with_dtype_arg(device, dt):
  a = sample(dt, special=False)
  t = Tensor(a.tolist(), dtype=dt, device=device)
  assert t.dtype == dt
  assert_bits_equal(t.numpy(), a)


# ---------------------------------------------------------------- math per dtype
def _pair(dt):
  a, b = sample(dt, seed=1), sample(dt, seed=2)
  a[8:10] = b[8:10]  # some equal pairs
  return a, b


@pytest.mark.parametrize("dt", DTYPES, ids=IDS)
def test_add(device, dt):
  a, b = _pair(dt)
  with np.errstate(all="ignore"): expected = a + b  # ints wrap; bool + bool is logical or
  out = Tensor(a, device=device) + Tensor(b, device=device)
  assert out.dtype == dt
  assert_matches(out.numpy(), expected, dt)


@pytest.mark.parametrize("dt", DTYPES, ids=IDS)
def test_mul(device, dt):
  a, b = _pair(dt)
  with np.errstate(all="ignore"): expected = a * b  # ints wrap; bool * bool is logical and
  out = Tensor(a, device=device) * Tensor(b, device=device)
  assert out.dtype == dt
  assert_matches(out.numpy(), expected, dt)


@pytest.mark.parametrize("dt", DTYPES, ids=IDS)
def test_compare(device, dt):
  a, b = _pair(dt)
  ta, tb = Tensor(a, device=device), Tensor(b, device=device)
  for out, expected in [(ta < tb, a < b), (ta == tb, a == b), (ta != tb, a != b), (ta >= tb, a >= b)]:
    assert out.dtype == dtypes.bool
    np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize("dt", DTYPES, ids=IDS)
def test_sum(device, dt):
  a = sample(dt, special=False).reshape(4, 4)
  t = Tensor(a, device=device)
  if dtypes.is_float(dt):
    expected_all, expected_axis, out_dt = np.sum(a), np.sum(a, axis=1), dt
  else:  # ints and bools sum in int64 (and wrap like numpy's int64 sum)
    expected_all, expected_axis, out_dt = np.sum(a, dtype=np.int64), np.sum(a, axis=1, dtype=np.int64), dtypes.int64
  assert t.sum().dtype == out_dt
  assert_matches(t.sum().numpy(), np.asarray(expected_all), out_dt)
  assert_matches(t.sum(1).numpy(), expected_axis, out_dt)


@pytest.mark.parametrize("dt", DTYPES, ids=IDS)
def test_max(device, dt):
  a = sample(dt, special=False).reshape(4, 4)
  t = Tensor(a, device=device)
  assert t.max().dtype == dt
  assert_matches(t.max(1).numpy(), a.max(1), dt)
  assert_matches(t.min(0).numpy(), a.min(0), dt)


def test_half_rounds_each_result(device):
  # 2048 + 1 is 2048 in half (ties to even), so (a + b) - a is 0; float32 intermediates would give 1
  a = np.full(4, 2048, np.float16)
  b = np.ones(4, np.float16)
  ta, tb = Tensor(a, device=device), Tensor(b, device=device)
  assert_bits_equal(((ta + tb) - ta).numpy(), (a + b) - a)
  c = np.array([0.1, 0.2, 0.3, 1 / 3], np.float16)
  tc = Tensor(c, device=device)
  assert_bits_equal((tc * tc + tc).numpy(), c * c + c)
  np.testing.assert_allclose((tc / 3).numpy(), c / np.float16(3), rtol=1e-3)


def test_half_sum_accumulates_in_float(device):
  a = np.ones(4096, np.float16)  # a half accumulator would get stuck at 2048
  out = Tensor(a, device=device).sum()
  assert out.dtype == dtypes.float16
  assert out.item() == float(np.sum(a)) == 4096.0


HALF_MATH = {  # name: (teeny, numpy, input range); numpy computes these in float32 and rounds once
  "sqrt": (lambda t: t.sqrt(), np.sqrt, (0, 100)), "exp": (lambda t: t.exp(), np.exp, (-8, 10)),
  "log": (lambda t: t.log(), np.log, (0.01, 100)), "sin": (lambda t: t.sin(), np.sin, (-4, 4)),
  "sigmoid": (lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), (-8, 8)), "tanh": (lambda t: t.tanh(), np.tanh, (-4, 4)),
  "div": (lambda t: 1 / t, lambda a: 1 / a, (0.01, 100)), "pow": (lambda t: t ** 1.5, lambda a: a ** np.float32(1.5), (0, 10)),
}


@pytest.mark.parametrize("name", HALF_MATH)
def test_half_math(device, name):
  f, npf, (lo, hi) = HALF_MATH[name]
  a = np.linspace(lo, hi, 400).astype(np.float16)
  out = f(Tensor(a, device=device))
  assert out.dtype == dtypes.float16
  expected = npf(a.astype(np.float32)).astype(np.float16)
  np.testing.assert_allclose(out.numpy().astype(np.float32), expected.astype(np.float32), rtol=2e-3, atol=1e-3)


def test_int_overflow_wraps(device):
  a = np.array([2**31 - 1, -2**31, 100000, -7], np.int32)
  with np.errstate(over="ignore"):
    np.testing.assert_array_equal((Tensor(a, device=device) + 1).numpy(), a + np.int32(1))
    np.testing.assert_array_equal((Tensor(a, device=device) * 65536).numpy(), a * np.int32(65536))
  a8 = np.array([127, -128, 100, -100], np.int8)
  np.testing.assert_array_equal((Tensor(a8, device=device) + Tensor(a8, device=device)).numpy(), a8 + a8)
  u8 = np.array([255, 0, 200, 17], np.uint8)
  np.testing.assert_array_equal((Tensor(u8, device=device) * Tensor(u8, device=device)).numpy(), u8 * u8)


def test_small_int_division(device):
  a = np.array([-128, -7, 7, 127, -1, 0], np.int8)
  b = np.array([-1, 2, -2, 3, 5, 3], np.int8)
  with np.errstate(over="ignore"):
    np.testing.assert_array_equal((Tensor(a, device=device) // Tensor(b, device=device)).numpy(), np.floor_divide(a, b))
  np.testing.assert_array_equal((Tensor(a, device=device) % Tensor(b, device=device)).numpy(), np.mod(a, b))
  u = np.array([200, 7, 255, 0], np.uint8)
  v = np.array([3, 2, 16, 5], np.uint8)
  np.testing.assert_array_equal((Tensor(u, device=device) // Tensor(v, device=device)).numpy(), u // v)
  np.testing.assert_array_equal((Tensor(u, device=device) % Tensor(v, device=device)).numpy(), u % v)


# ---------------------------------------------------------------- casts
def _cast_source(src, dst) -> np.ndarray:
  """Values whose cast from src to dst is defined in C, numpy and PyTorch alike."""
  if src == dtypes.bool: return np.array([True, False, True, True], np.bool_)
  vals = [0, 1, 2, 3, 7, 10, 42, 100, 127]
  if dtypes.is_float(src): vals += [0.5, 1.7, 99.9, 126.99, -0.0]
  if not dtypes.is_unsigned(src) and not (dtypes.is_float(src) and dtypes.is_unsigned(dst)):
    vals += [-1, -2, -100, -128] + ([-2.5, -0.7] if dtypes.is_float(src) else [])
  return np.array(vals).astype(src.np)


@pytest.mark.parametrize("dst", DTYPES, ids=IDS)
@pytest.mark.parametrize("src", DTYPES, ids=IDS)
def test_cast(device, src, dst):
  a = _cast_source(src, dst)
  out = Tensor(a, device=device).cast(dst)
  assert out.dtype == dst
  assert_bits_equal(out.numpy(), a.astype(dst.np), nan_bits=False)


def test_cast_float_to_int_truncates(device):
  a = np.array([2.7, -2.7, 0.9999, -0.9999, 1e9, -1e9, 2.5, -2.5], np.float32)
  for dt in (dtypes.int32, dtypes.int64):
    out = Tensor(a, device=device).cast(dt)
    np.testing.assert_array_equal(out.numpy(), np.trunc(a).astype(dt.np))
  np.testing.assert_array_equal(Tensor(a, device=device).int().tolist(), [2, -2, 0, 0, 1000000000, -1000000000, 2, -2])


def test_kernels_of_a_nan_constant_write_their_output(device):
  # LLVM folds a conversion of a constant NaN into poison, which dropped the kernel's store: float64 exp(x + nan)
  # (its exp2 converts the exponent to an int) returned the previous kernel's numbers from reused memory. PoCL 3.0
  # folds exp2 of a constant NaN to garbage: float64 exp(x + nan) was 6.9e-310, float32 sigmoid -1.5e-18, tanh 1
  float_types = [dt for dt in (dtypes.float32, dtypes.float64) if Device[device].supports_dtype(dt)]
  for dt in float_types:
    x = Tensor([1.0, -2.0, 3.0], dtype=dt, device=device)
    (x * 7.0 + 100).realize()
    for name in ("exp", "exp2", "tanh", "sigmoid", "softmax", "log", "sin", "sqrt"):
      assert np.isnan(getattr(x + float("nan"), name)().numpy()).all(), (dt, name)
    assert np.isnan(((x + float("nan")) ** 2.5).numpy()).all(), dt
    np.testing.assert_array_equal((x * float("inf")).exp().numpy(), [np.inf, 0, np.inf])
  y = Tensor([1.0, -2.0, 3.0], device=device)
  (y * 7 + 100).cast(dtypes.int64).realize()
  for value in (float("nan"), float("inf")):  # x86's conversion at run time, numpy's too: the int's minimum
    for dt, want in ((dtypes.int32, -2**31), (dtypes.int64, -2**63), (dtypes.int8, 0), (dtypes.uint32, 0)):
      assert (y * value).cast(dt).tolist() == [want] * 3, (value, dt)
      assert Tensor([value] * 3, device=device).cast(dt).tolist() == [want] * 3, (value, dt)  # (read from memory)


def test_cast_int_to_narrower_int_wraps(device):
  a = np.array([300, -200, 255, 256, -1, 65537], np.int32)
  for dt in (dtypes.int8, dtypes.uint8, dtypes.int16):
    np.testing.assert_array_equal(Tensor(a, device=device).cast(dt).numpy(), a.astype(dt.np))
  np.testing.assert_array_equal(Tensor(a, device=device).cast(dtypes.uint32).numpy(), a.astype(np.uint32))


def test_cast_to_bool(device):
  ai = np.array([0, 1, -1, 2, 256, -2**31], np.int32)
  np.testing.assert_array_equal(Tensor(ai, device=device).bool().numpy(), ai.astype(np.bool_))
  af = np.array([0.0, -0.0, 0.5, -1e-30, np.inf, np.nan], np.float32)
  np.testing.assert_array_equal(Tensor(af, device=device).bool().numpy(), af.astype(np.bool_))
  a64 = np.array([0, 2**40], np.int64)  # a nonzero value whose low 32 bits are zero is still True
  np.testing.assert_array_equal(Tensor(a64, device=device).bool().numpy(), [False, True])
  u8 = np.array([0, 2, 255], np.uint8)
  np.testing.assert_array_equal(Tensor(u8, device=device).bool().numpy(), [False, True, True])


def test_cast_bool_to_number(device):
  b = np.array([True, False, True])
  for dt in (dtypes.float32, dtypes.float16, dtypes.int32, dtypes.uint8, dtypes.int64):
    out = Tensor(b, device=device).cast(dt)
    assert_bits_equal(out.numpy(), b.astype(dt.np))
  assert Tensor(b, device=device).float().tolist() == [1.0, 0.0, 1.0]


def test_cast_float_to_half_rounds(device):
  rng = np.random.default_rng(3)
  a = np.concatenate([
    (rng.standard_normal(64) * 100).astype(np.float32),
    np.array([1 / 3, 0.1, 2049.0, 2051.0, 65504.0, 65520.0, 70000.0, -70000.0, 1e-5, 6e-8, 2.9e-8, 1e-9,
              np.inf, -np.inf, np.nan, -0.0], np.float32)])
  out = Tensor(a, device=device).half()
  assert out.dtype == dtypes.float16
  assert_bits_equal(out.numpy(), a.astype(np.float16), nan_bits=False)


def test_cast_half_to_float_exact(device):
  h = np.arange(0, 65536, 97, dtype=np.uint32).astype(np.uint16).view(np.float16)
  h = h[~np.isnan(h)]
  assert_bits_equal(Tensor(h, device=device).float().numpy(), h.astype(np.float32))


def test_cast_double_to_float_rounds(device):
  a = np.array([1 / 3, 0.1, 1e40, -1e40, 1e-50, 16777217.0, np.pi], np.float64)
  with np.errstate(over="ignore"):
    assert_bits_equal(Tensor(a, device=device).float().numpy(), a.astype(np.float32))
  f = a[[0, 1, 5, 6]].astype(np.float32)
  assert_bits_equal(Tensor(f, device=device).double().numpy(), f.astype(np.float64))


def test_cast_large_int64_to_float(device):
  a = np.array([2**53 + 1, -2**62, 2**40 + 3], np.int64)
  assert_bits_equal(Tensor(a, device=device).cast(dtypes.float64).numpy(), a.astype(np.float64))
  assert_bits_equal(Tensor(a, device=device).cast(dtypes.float32).numpy(), a.astype(np.float32))
  u = np.array([2**32 - 1, 2**31, 5], np.uint32)
  assert_bits_equal(Tensor(u, device=device).cast(dtypes.float32).numpy(), u.astype(np.float32))
  assert_bits_equal(Tensor(u, device=device).cast(dtypes.int64).numpy(), u.astype(np.int64))


# ---------------------------------------------------------------- promotion (PyTorch's rules)
PROMOTION = [  # (name, build(make) -> Tensor, expected dtype)
  ("int32+float32", lambda m: m(dtypes.int32) + m(dtypes.float32), dtypes.float32),
  ("int8+uint8", lambda m: m(dtypes.int8) + m(dtypes.uint8), dtypes.int16),
  ("uint8+int16", lambda m: m(dtypes.uint8) + m(dtypes.int16), dtypes.int16),
  ("uint8+int32", lambda m: m(dtypes.uint8) + m(dtypes.int32), dtypes.int32),
  ("uint32+int32", lambda m: m(dtypes.uint32) + m(dtypes.int32), dtypes.int64),
  ("int16+int64", lambda m: m(dtypes.int16) * m(dtypes.int64), dtypes.int64),
  ("bool+int32", lambda m: m(dtypes.bool) + m(dtypes.int32), dtypes.int32),
  ("bool+int8", lambda m: m(dtypes.bool) * m(dtypes.int8), dtypes.int8),
  ("bool+float16", lambda m: m(dtypes.bool) + m(dtypes.float16), dtypes.float16),
  ("int64+float16", lambda m: m(dtypes.int64) + m(dtypes.float16), dtypes.float16),
  ("float16+float32", lambda m: m(dtypes.float16) + m(dtypes.float32), dtypes.float32),
  ("float32+float64", lambda m: m(dtypes.float32) + m(dtypes.float64), dtypes.float64),
  ("int32+pyfloat", lambda m: m(dtypes.int32) + 1.5, dtypes.float32),
  ("pyfloat*int8", lambda m: 1.5 * m(dtypes.int8), dtypes.float32),
  ("bool+pyfloat", lambda m: m(dtypes.bool) + 1.5, dtypes.float32),
  ("bool+pyint", lambda m: m(dtypes.bool) + 3, dtypes.int32),
  ("bool+pybool", lambda m: m(dtypes.bool) + True, dtypes.bool),
  ("float16+pyfloat", lambda m: m(dtypes.float16) + 1.5, dtypes.float16),
  ("float16*pyint", lambda m: m(dtypes.float16) * 2, dtypes.float16),
  ("float64+pyfloat", lambda m: m(dtypes.float64) + 1.5, dtypes.float64),
  ("int8+pyint", lambda m: m(dtypes.int8) + 1000, dtypes.int8),
  ("uint8*pyint", lambda m: m(dtypes.uint8) * 2, dtypes.uint8),
  ("int32*pybool", lambda m: m(dtypes.int32) * True, dtypes.int32),
  ("int32/int32", lambda m: m(dtypes.int32) / m(dtypes.int32), dtypes.float32),
  ("int64/pyint", lambda m: m(dtypes.int64) / 2, dtypes.float32),
  ("pyint/int8", lambda m: 2 / m(dtypes.int8), dtypes.float32),
  ("float16/int32", lambda m: m(dtypes.float16) / m(dtypes.int32), dtypes.float16),
  ("float64/int32", lambda m: m(dtypes.float64) / m(dtypes.int32), dtypes.float64),
  ("int32//int32", lambda m: m(dtypes.int32) // m(dtypes.int32), dtypes.int32),
  ("int16%int8", lambda m: m(dtypes.int16) % m(dtypes.int8), dtypes.int16),
  ("int32//pyfloat", lambda m: m(dtypes.int32) // 2.0, dtypes.float32),
  ("int32<float32", lambda m: m(dtypes.int32) < m(dtypes.float32), dtypes.bool),
  ("float16==pyfloat", lambda m: m(dtypes.float16) == 1.0, dtypes.bool),
  ("maximum int8 uint8", lambda m: m(dtypes.int8).maximum(m(dtypes.uint8)), dtypes.int16),
  ("where int/float", lambda m: m(dtypes.bool).where(m(dtypes.int32), m(dtypes.float16)), dtypes.float16),
  ("where int/pyfloat", lambda m: m(dtypes.bool).where(m(dtypes.int32), 0.5), dtypes.float32),
  ("where pyint/pyint", lambda m: m(dtypes.bool).where(1, 0), dtypes.int32),
  ("sum int32", lambda m: m(dtypes.int32).sum(), dtypes.int64),
  ("sum int8", lambda m: m(dtypes.int8).sum(0), dtypes.int64),
  ("sum uint8", lambda m: m(dtypes.uint8).sum(), dtypes.int64),
  ("sum bool", lambda m: m(dtypes.bool).sum(), dtypes.int64),
  ("sum float16", lambda m: m(dtypes.float16).sum(), dtypes.float16),
  ("sum float64", lambda m: m(dtypes.float64).sum(), dtypes.float64),
  ("max int8", lambda m: m(dtypes.int8).max(), dtypes.int8),
  ("max bool", lambda m: m(dtypes.bool).max(), dtypes.bool),
  ("mean int32", lambda m: m(dtypes.int32).mean(), dtypes.float32),
  ("mean float16", lambda m: m(dtypes.float16).mean(), dtypes.float16),
  ("exp int32", lambda m: m(dtypes.int32).exp(), dtypes.float32),
  ("sqrt uint8", lambda m: m(dtypes.uint8).sqrt(), dtypes.float32),
  ("sin float16", lambda m: m(dtypes.float16).sin(), dtypes.float16),
  ("sqrt float64", lambda m: m(dtypes.float64).sqrt(), dtypes.float64),
  ("neg int8", lambda m: -m(dtypes.int8), dtypes.int8),
  ("abs int16", lambda m: m(dtypes.int16).abs(), dtypes.int16),
  ("relu int32", lambda m: m(dtypes.int32).relu(), dtypes.int32),
  ("pow int32 2", lambda m: m(dtypes.int32) ** 2, dtypes.int32),
  ("pow int32 0.5", lambda m: m(dtypes.int32) ** 0.5, dtypes.float32),
  ("pow float16 2.5", lambda m: m(dtypes.float16) ** 2.5, dtypes.float16),
  # a 0-d tensor beside one with dimensions decides the dtype only when its category (bool < int < float) is higher
  ("float16 * 0-d float32", lambda m: m(dtypes.float16) * m(dtypes.float32).sum(), dtypes.float16),
  ("uint8 + 0-d int64", lambda m: m(dtypes.uint8) + m(dtypes.int64).max(), dtypes.uint8),
  ("0-d int64 - int8", lambda m: m(dtypes.int64).max() - m(dtypes.int8), dtypes.int8),
  ("int32 + 0-d float64", lambda m: m(dtypes.int32) + m(dtypes.float64).max(), dtypes.float64),
  ("bool + 0-d int16", lambda m: m(dtypes.bool) + m(dtypes.int16).max(), dtypes.int16),
  ("where float32, 0-d float64", lambda m: m(dtypes.bool).where(m(dtypes.float32), m(dtypes.float64).max()), dtypes.float32),
  ("0-d float16 * 0-d float32", lambda m: m(dtypes.float16).max() * m(dtypes.float32).max(), dtypes.float32),
]


@pytest.mark.parametrize("build,expected", [p[1:] for p in PROMOTION], ids=[p[0] for p in PROMOTION])
def test_promotion_dtype(device, build, expected):
  out = build(lambda dt: Tensor(np.ones(3, dtype=dt.np), device=device))
  assert out.dtype == expected


def test_promotion_values(device):
  i32 = Tensor(np.array([1, -2, 3], np.int32), device=device)
  f32 = Tensor(np.array([0.5, 0.25, -1.5], np.float32), device=device)
  out = i32 + f32
  assert out.dtype == dtypes.float32 and out.numpy().dtype == np.float32
  np.testing.assert_array_equal(out.numpy(), np.array([1.5, -1.75, 1.5], np.float32))
  i8 = Tensor(np.array([-128, 127, -1], np.int8), device=device)
  u8 = Tensor(np.array([255, 255, 255], np.uint8), device=device)
  out = i8 + u8  # int16: no wrapping
  assert out.dtype == dtypes.int16
  np.testing.assert_array_equal(out.numpy(), np.array([127, 382, 254], np.int16))
  out = i32 / Tensor(np.array([2, 4, 2], np.int32), device=device)
  np.testing.assert_array_equal(out.numpy(), np.array([0.5, -0.5, 1.5], np.float32))
  out = Tensor(np.array([True, False, True]), device=device) + Tensor(np.array([5, 6, 7], np.int32), device=device)
  np.testing.assert_array_equal(out.numpy(), np.array([6, 6, 8], np.int32))
  out = Tensor(np.array([255, 7], np.uint8), device=device) + Tensor(np.array(3, np.int64), device=device)
  np.testing.assert_array_equal(out.numpy(), np.array([2, 10], np.uint8))  # (uint8, as in PyTorch: it wraps)
  out = Tensor(np.array([1, 7], np.uint8), device=device) / Tensor(np.array(300, np.int16), device=device)
  np.testing.assert_allclose(out.numpy(), np.array([1, 7], np.float32) / 300, rtol=1e-7)  # (each int its own value: not 300 -> 44)
  out = Tensor(np.array([True, False]), device=device) ** Tensor(np.array([2, 3], np.uint8), device=device)
  assert out.dtype == dtypes.uint8 and out.numpy().tolist() == [1, 0]
  out = Tensor(np.array([1, 2], np.int32), device=device) + 0.5
  assert out.numpy().dtype == np.float32
  np.testing.assert_array_equal(out.numpy(), np.array([1.5, 2.5], np.float32))
  out = Tensor(np.array([1, 2], np.float16), device=device) * 1.5
  assert out.numpy().dtype == np.float16
  np.testing.assert_array_equal(out.numpy(), np.array([1.5, 3.0], np.float16))
  out = Tensor(np.array([100, 120], np.int8), device=device) + 100  # the scalar doesn't widen: wraps in int8
  assert out.numpy().dtype == np.int8
  np.testing.assert_array_equal(out.numpy(), np.array([100, 120], np.int8) + np.int8(100))
  big = Tensor(np.full(4, 2**30, np.int32), device=device).sum()  # int64 sum: no overflow
  assert big.item() == 2**32


def test_default_dtypes(device):
  assert Tensor([1, 2], device=device).dtype == dtypes.int32
  assert Tensor([1.0, 2], device=device).dtype == dtypes.float32
  assert Tensor([True], device=device).dtype == dtypes.bool
  assert Tensor(np.array([1.0]), device=device).dtype == dtypes.float64
  assert Tensor(np.array([1], np.int64), device=device).dtype == dtypes.int64
  assert Tensor(1.5, device=device).dtype == dtypes.float32
  assert Tensor(np.float16(1.5), device=device).dtype == dtypes.float16
  assert Tensor([1, 2], dtype="float16", device=device).dtype == dtypes.float16
  assert Tensor([1, 2], dtype=np.int8, device=device).dtype == dtypes.int8
  assert Tensor.zeros(2, device=device).dtype == dtypes.float32
  assert Tensor.arange(3, device=device).dtype == dtypes.int32
  assert Tensor.arange(3.0, device=device).dtype == dtypes.float32


def test_python_ints_past_int32_get_int64_and_numbers_that_dont_fit_a_given_dtype_raise(device):
  # the default int is int32 (tinygrad's); a number it can't hold gets int64 (PyTorch's default) instead of wrapping
  assert Tensor(2**40, device=device).item() == 2**40
  big = Tensor([1, 2**31], device=device)
  assert big.dtype == dtypes.int64 and big.tolist() == [1, 2**31]
  assert Tensor.full((2,), -2**40, device=device).tolist() == [-2**40, -2**40]
  assert Tensor(-2**31, device=device).dtype == dtypes.int32
  assert (Tensor([True], device=device) + 2**40).tolist() == [2**40 + 1]
  with pytest.raises(OverflowError, match="int64"): Tensor(2**63, device=device)
  # a dtype given: PyTorch's check (a negative int for an unsigned dtype wraps, as in PyTorch)
  for make in (lambda: Tensor([2**40], dtype=dtypes.int32, device=device), lambda: Tensor(300, dtype=dtypes.uint8, device=device),
               lambda: Tensor.full((2,), 128, dtype=dtypes.int8, device=device), lambda: Tensor([1e10], dtype=dtypes.int32, device=device),
               lambda: Tensor(float("nan"), dtype=dtypes.int64, device=device)):
    with pytest.raises(OverflowError, match="without overflow"): make()
  assert Tensor([-1, 255], dtype=dtypes.uint8, device=device).tolist() == [255, 255]
  assert Tensor(2.5, dtype=dtypes.int32, device=device).item() == 2


def test_big_endian_numpy_arrays_are_read_by_value(device):
  for kind in (">f4", ">f8", ">i2", ">u4"):
    data = np.arange(-3, 3).astype(kind) if kind[1] != "u" else np.arange(6).astype(kind)
    t = Tensor(data, device=device)
    np.testing.assert_array_equal(t.numpy(), data, err_msg=kind)


def test_tinygrad_dtype_names():
  """DType.min/max, dtypes.finfo, least_upper_dtype, DTYPES_DICT and the unsigned aliases, as tinygrad names them."""
  from teeny.dtype import DTYPES_DICT
  assert dtypes.int8.min == -128 and dtypes.uint16.max == 65535 and dtypes.float32.max == float("inf")
  assert dtypes.bool.min is False and dtypes.int64.min == dtypes.min(dtypes.int64)
  assert dtypes.finfo(dtypes.float16) == (5, 10) and dtypes.finfo(dtypes.float32) == (8, 23)
  assert dtypes.finfo(dtypes.float64) == (11, 52)
  with pytest.raises(TypeError, match="not a float"): dtypes.finfo(dtypes.int32)
  assert dtypes.least_upper_dtype(dtypes.int8, dtypes.uint8) == dtypes.int16
  assert dtypes.least_upper_dtype(dtypes.bool, dtypes.int32, dtypes.float16) == dtypes.float16
  assert (dtypes.ushort, dtypes.uint, dtypes.ulong) == (dtypes.uint16, dtypes.uint32, dtypes.uint64)
  assert DTYPES_DICT["float32"] is dtypes.float32 and DTYPES_DICT["half"] is dtypes.float16
  assert "void" not in DTYPES_DICT and "default_float" not in DTYPES_DICT


def test_context_sets_flags_for_a_block_and_restores_them(monkeypatch):
  """Context(DEBUG=..., NOOPT=..., TRAINING=...) as a context manager and a decorator, like tinygrad's."""
  from teeny import Context, Tensor
  from teeny.helpers import debug_level, getenv
  monkeypatch.delenv("NOOPT", raising=False)
  monkeypatch.setenv("DEBUG", "0")
  with Context(DEBUG=2, NOOPT=True, TRAINING=1):
    assert debug_level() == 2 and getenv("NOOPT", 0) == 1 and Tensor.training
  assert debug_level() == 0 and getenv("NOOPT", 0) == 0 and not Tensor.training and "NOOPT" not in os.environ

  @Context(TRAINING=True)
  def in_training(): return Tensor.training
  assert in_training() and not Tensor.training


def test_renderer_supported_dtypes(device):
  """tinygrad's Device[d].renderer.supported_dtypes(): what the target computes in its own arithmetic. float64 is
  in it exactly when the device takes float64 tensors; the storage-only floats never are."""
  from teeny.runtime.device import check_dtype
  supported = Device[device].renderer.supported_dtypes()
  assert {dtypes.float32, dtypes.int32, dtypes.bool, dtypes.uint8} <= supported
  assert dtypes.bfloat16 not in supported and dtypes.fp8e4m3 not in supported
  try: check_dtype(device, dtypes.float64); takes_float64 = True
  except TypeError: takes_float64 = False
  assert (dtypes.float64 in supported) == takes_float64


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.bool_])
def test_true_division_of_ints_by_a_number_keeps_the_numbers_value(device, dtype):
  """An int tensor divided by a Python number divides as floats with the number's own value, as in PyTorch: the
  number was cast to the tensor's dtype first, so uint8 / -1 divided by 255 and int8 / 200 by -56 (silently)."""
  a = np.array([1, 0, 1], dtype) if dtype == np.bool_ else np.array([1, 2, 100], dtype)
  t = Tensor(a, device=device)
  for number in (-1, 200, 300, 2 ** 40, 2.5, 3):
    np.testing.assert_allclose((t / number).numpy(), a.astype(np.float64) / number, rtol=1e-6)
    with np.errstate(divide="ignore"):
      np.testing.assert_allclose((number / t).numpy(), number / a.astype(np.float64), rtol=1e-6)


def test_lists_of_numpy_scalars_keep_their_dtype(device):
  """Tensor([np.float64(1.5)]) was float32 (np.float64 is a Python float) and Tensor([np.int8(3)]) raised; PyTorch
  keeps a numpy scalar's dtype, and promotes a mixed list."""
  for values, want in (([np.float64(1.5)], dtypes.float64), ([np.float16(1.5)], dtypes.float16), ([np.int8(3)], dtypes.int8),
                       ([np.float64(1.5), 2], dtypes.float64), ([np.int64(3), 2], dtypes.int64), ([np.bool_(True), False], dtypes.bool)):
    t = Tensor(values, device=device)
    assert t.dtype == want, values
    np.testing.assert_array_equal(t.numpy(), np.array(values, dtype=want.np))
  # alone, a numpy scalar is the number it holds (PyTorch's full, arange and where give the default float)
  assert Tensor.full((2,), np.float64(1.5), device=device).dtype == dtypes.float32
  assert Tensor.arange(np.float64(0), np.float64(1), np.float64(0.25), device=device).dtype == dtypes.float32
  assert Tensor([True, False], device=device).where(np.float64(1.5), 2.0).dtype == dtypes.float32


def test_an_int_number_an_int_tensor_cant_hold_raises_in_where_and_clamp(device):
  """where(c, u8, 300) stored 44 and u8.clamp(max=300) clipped at 44 (300 wrapped); PyTorch raises there (its
  arithmetic wraps, u8 + 300, and so does teeny's)."""
  u = Tensor(np.array([1, 100, 250], np.uint8), device=device)
  with pytest.raises(OverflowError, match="300"): (u > 50).where(u, 300)
  with pytest.raises(OverflowError, match="300"): (u > 50).where(300, u)
  with pytest.raises(OverflowError, match="300"): u.clamp(max=300)
  np.testing.assert_array_equal((u > 50).where(u, -1).numpy(), [255, 100, 250])  # (-1 as uint8 wraps, as in PyTorch)
  np.testing.assert_array_equal(u.clamp(max=99).numpy(), [1, 99, 99])
  np.testing.assert_array_equal((u + 300).numpy(), np.array([1, 100, 250], np.uint8) + np.uint8(44))
