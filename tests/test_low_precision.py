"""bfloat16 and the fp8 kinds (dtypes.fp8e4m3 = torch.float8_e4m3fn, dtypes.fp8e5m2 = torch.float8_e5m2): casts in
every direction bit-exact against PyTorch (NaN only has to stay NaN: PyTorch's own bfloat16 NaN bits depend on
the tensor's layout), arithmetic computed in float32 and rounded once, sums and matmuls accumulated in float32,
promotion, and the host conversions, on every device.

Without torch (CI installs none) the oracle is teeny.dtype's host conversion (float_to_bits / bits_to_float, numpy
only), itself checked here against tables frozen from PyTorch: so every test but the PyTorch-only ones runs."""
import hashlib

import numpy as np
import pytest

from teeny import Tensor, dtypes, Device
from teeny.dtype import DTYPES_DICT, bits_to_float, float_to_bits

try:
  import torch
except ImportError:  # (CI: no PyTorch; the numpy references below stand in)
  torch = None

LOW = [dtypes.bfloat16, dtypes.fp8e4m3, dtypes.fp8e5m2]
TORCH = {} if torch is None else {
  dtypes.bfloat16: torch.bfloat16, dtypes.fp8e4m3: torch.float8_e4m3fn, dtypes.fp8e5m2: torch.float8_e5m2,
  dtypes.float16: torch.float16, dtypes.float32: torch.float32, dtypes.float64: torch.float64,
  dtypes.int8: torch.int8, dtypes.uint8: torch.uint8, dtypes.int16: torch.int16, dtypes.int32: torch.int32,
  dtypes.int64: torch.int64, dtypes.bool: torch.bool}
BITS = {dtypes.bfloat16: (dtypes.uint16, np.uint16), dtypes.fp8e4m3: (dtypes.uint8, np.uint8), dtypes.fp8e5m2: (dtypes.uint8, np.uint8)}
OTHERS = [dtypes.bool, dtypes.int8, dtypes.uint8, dtypes.int16, dtypes.int32, dtypes.int64, dtypes.float16, dtypes.float32, dtypes.float64]
IDS = [d.name for d in LOW]

# Frozen from PyTorch 2.x (torch_bits below, i.e. a strided .to(torch.bfloat16 / float8_e4m3fn / float8_e5m2)) on
# 2026-12-03, so that the host conversion stays checked where torch is not installed.
# SPECIAL_BITS: the bits of float_sample(0) (its 24 special values, in order) in each format.
SPECIAL_BITS = {
  dtypes.bfloat16: [0x0, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0x7fc0, 0x43e0, 0x43e8, 0x43eb, 0x43f0, 0x47c3, 0xc789, 0x4760,
                    0x4770, 0x3b00, 0x3a80, 0x3ac0, 0x3780, 0x3700, 0xda2, 0x7f80, 0xbf80, 0x3f82, 0x3dcd],
  dtypes.fp8e4m3: [0x0, 0x80, 0x7e, 0xfe, 0x7f, 0xff, 0x7e, 0x7e, 0x7e, 0x7e, 0x7e, 0xfe, 0x7e, 0x7e, 0x1, 0x0, 0x1, 0x0,
                   0x0, 0x0, 0x7e, 0xb8, 0x38, 0x1d],
  dtypes.fp8e5m2: [0x0, 0x80, 0x7c, 0xfc, 0x7f, 0xff, 0x5f, 0x5f, 0x5f, 0x60, 0x7c, 0xfc, 0x7b, 0x7c, 0x18, 0x14, 0x16,
                   0x1, 0x0, 0x0, 0x7c, 0xbc, 0x3c, 0x2e]}
# ROUNDING_SHA: sha256 (first 32 hex digits) of PyTorch's bits for float_sample(4000, seed=1), every NaN written as
# all ones (a NaN in each format). EVERY_PATTERN_SHA: of PyTorch's float32 values of every bit pattern 0..2**bits-1,
# every NaN written as numpy's NaN (0x7fc00000).
ROUNDING_SHA = {dtypes.bfloat16: "bb400199b10f2a7a7cefc5dae0bb0e89", dtypes.fp8e4m3: "b3cb31f7d417114d3dc57d957569b75e",
                dtypes.fp8e5m2: "a950a06837bc625db7f93ab4e26f330b"}
EVERY_PATTERN_SHA = {dtypes.bfloat16: "f12e27efe34841dfd6391497b86f3890", dtypes.fp8e4m3: "422eccfaa21e72a6b26855bb10cdcfea",
                     dtypes.fp8e5m2: "229a94c5f728edf2259da970a0e1dfb4"}


def sha(values: np.ndarray) -> str: return hashlib.sha256(values.tobytes()).hexdigest()[:32]


def float_sample(n=64, seed=0) -> np.ndarray:
  """float32 values for casts: specials, values past every format's range, subnormals of each, ties, and random ones."""
  rng = np.random.default_rng(seed)
  special = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 448.0, 464.0, 470.0, 480.0, 1e5, -7e4, 57344.0, 61440.0,
             2.0 ** -9, 2.0 ** -10, 3 * 2.0 ** -11, 2.0 ** -16, 2.0 ** -17, 1e-30, 3.4e38, -1.00390625, 1.01171875, 0.1]
  rand = np.concatenate([rng.standard_normal(n) * 10, rng.uniform(-500, 500, n), rng.uniform(-0.02, 0.02, n)])
  return np.concatenate([special, rand]).astype(np.float32)


def torch_bits(values, dt) -> np.ndarray:
  """The bits PyTorch gives values cast to dt (a strided source: its scalar casts, whose NaN keeps its sign)."""
  bits_dt = BITS[dt][1]
  doubled = torch.stack([values, values], 1)[:, 0]  # strided: PyTorch's scalar path
  return doubled.to(TORCH[dt]).view(torch.int16 if bits_dt == np.uint16 else torch.uint8).numpy().view(bits_dt)


def ref_bits(values: np.ndarray, dt) -> np.ndarray:
  """The reference bits of values (exact in float32) rounded to dt: PyTorch's cast where installed, else the host
  conversion (checked against PyTorch by the frozen tables in test_host_rounding_matches_torch)."""
  values = np.asarray(values, dtype=np.float32)
  return torch_bits(torch.from_numpy(values), dt) if torch is not None else float_to_bits(values, dt)


def rounded(values: np.ndarray, dt) -> np.ndarray:
  """values rounded to dt, as float32 (the numbers a dt tensor holds)."""
  return bits_to_float(ref_bits(values, dt), dt)


def canonical_nan_bits(bits: np.ndarray, dt) -> np.ndarray:
  """bits with every NaN written as all ones (a NaN in each format), for comparing against a frozen hash."""
  bits = bits.astype(BITS[dt][1])
  bits[np.isnan(bits_to_float(bits, dt))] = 0xFFFF if dt.itemsize == 2 else 0xFF
  return bits


def teeny_bits(t: Tensor) -> np.ndarray: return t.bitcast(BITS[t.dtype][0]).numpy()


def assert_same_bits(out: np.ndarray, expected: np.ndarray, dt):
  """Equal bits, except that a NaN may be any NaN of the format."""
  nan_out, nan_expected = np.isnan(bits_to_float(out, dt)), np.isnan(bits_to_float(expected, dt))
  np.testing.assert_array_equal(nan_out, nan_expected)
  np.testing.assert_array_equal(out[~nan_out], expected[~nan_expected])


def skip_float64_if_missing(device, dt):
  if dt == dtypes.float64 and device == "CL":
    from teeny.runtime.device import Device
    if not Device[device].supports_dtype(dtypes.float64): pytest.skip("no float64 on this device")


# ---- names, promotion, facts ----

def test_names_and_facts():
  assert DTYPES_DICT["bfloat16"] is dtypes.bfloat16 and DTYPES_DICT["fp8e4m3"] is dtypes.fp8e4m3
  assert dtypes.finfo(dtypes.bfloat16) == (8, 7) and dtypes.finfo(dtypes.fp8e4m3) == (4, 3) and dtypes.finfo(dtypes.fp8e5m2) == (5, 2)
  assert [d.itemsize for d in LOW] == [2, 1, 1] and all(dtypes.is_float(d) for d in LOW)
  assert Tensor([1.0], dtype="bfloat16").dtype is dtypes.bfloat16
  assert repr(dtypes.bfloat16) == "dtypes.bfloat16"
  assert dtypes.fp8s == (dtypes.fp8e4m3, dtypes.fp8e5m2) and dtypes.bfloat16 in dtypes.floats  # tinygrad's groups
  assert dtypes.uint16 in dtypes.uints and dtypes.int8 in dtypes.sints and dtypes.bfloat16 not in dtypes.ints


@pytest.mark.parametrize("a, b, want", [
  (dtypes.bfloat16, dtypes.float16, dtypes.float32), (dtypes.bfloat16, dtypes.float32, dtypes.float32),
  (dtypes.bfloat16, dtypes.int64, dtypes.bfloat16), (dtypes.bfloat16, dtypes.bool, dtypes.bfloat16),
  (dtypes.bfloat16, dtypes.float64, dtypes.float64), (dtypes.fp8e4m3, dtypes.bfloat16, dtypes.bfloat16),
  (dtypes.fp8e5m2, dtypes.float16, dtypes.float16), (dtypes.fp8e4m3, dtypes.fp8e5m2, dtypes.float16),
  (dtypes.fp8e4m3, dtypes.int32, dtypes.fp8e4m3)])
def test_promotion(a, b, want):
  """The expected results are PyTorch's (checked against torch.promote_types where it is installed)."""
  assert dtypes.least_upper_dtype(a, b) is want and dtypes.least_upper_dtype(b, a) is want
  fp8 = dtypes.fp8e4m3 in (a, b) or dtypes.fp8e5m2 in (a, b)  # (PyTorch refuses to promote fp8 at all)
  if torch is not None and not fp8:
    assert torch.promote_types(TORCH[a], TORCH[b]) == TORCH[want]


def test_scalar_keeps_dtype(device):
  x = Tensor([1.5, 2.0], dtype=dtypes.bfloat16, device=device)
  assert (x * 2.5).dtype is dtypes.bfloat16 and (x + 1).dtype is dtypes.bfloat16
  assert (x + Tensor([1.0, 2.0], dtype=dtypes.float16, device=device)).dtype is dtypes.float32


HALF_VALUES = [1000.0, 1.0009765625, 0.0999755859375, 3.0, -0.0, 0.5]


@pytest.mark.parametrize("dt", [dtypes.float16, dtypes.bfloat16], ids=["float16", "bfloat16"])
def test_scaling_by_a_number_the_dtype_cant_hold_rounds_once(device, dt):
  """x * s, x / s and x // s of a 16-bit float tensor and a number it can't hold (or a 0-d float32 tensor) run in
  float32 and round once, like PyTorch's: the number was rounded to the tensor's dtype first, so float16 x * 1e-8
  was 0 (PyTorch 1e-5), x / 70000 was 0, -0.0 * 70000 NaN, and bfloat16 3 * 257 was 768 (PyTorch 772)."""
  x = Tensor(HALF_VALUES, dtype=dt, device=device)
  def rounded(values): return bits_to_float(float_to_bits(values, dt), dt) if dt != dtypes.float16 else np.float32(np.float16(values))
  held = rounded(np.array(HALF_VALUES, np.float32))  # the values as dt holds them
  with np.errstate(over="ignore", divide="ignore"):
    for number in (1e-8, 70000.0, 0.1, 1.0001, 257.0):
      f32 = np.float32(number)
      for got, want in ((x * number, held * f32), (number * x, held * f32), (x / number, held / f32),
                        (x * Tensor(number, device=device), held * f32), (x / Tensor(number, device=device), held / f32),
                        (x // number, np.floor_divide(held, f32))):
        assert got.dtype == dt
        np.testing.assert_array_equal(got.float().numpy(), rounded(want), err_msg=f"{number}")
  assert np.signbit((x * 70000.0).float().numpy()[4])  # (-0.0, not NaN: 70000 was inf in float16)
  with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
    for number in (70000, 2049, 257):  # ints the dtype can't hold, and a 0-d int tensor, and a 0-d tensor of the other half type
      np.testing.assert_array_equal((x * number).float().numpy(), rounded(held * np.float32(number)), err_msg=str(number))
      np.testing.assert_array_equal((x * Tensor(number, device=device)).float().numpy(), rounded(held * np.float32(number)))
    other = dtypes.bfloat16 if dt == dtypes.float16 else dtypes.float16
    small = Tensor(np.float32(1e-3), device=device).cast(other)
    np.testing.assert_array_equal((x * small).float().numpy(), rounded(held * small.float().numpy()))
    # a number on the left of // and / is rounded to the tensor's dtype first, as in PyTorch (c is the first operand there)
    np.testing.assert_array_equal((70000.0 // x).float().numpy(), rounded(np.floor_divide(rounded(np.float32(70000.0)), held)))
  np.testing.assert_array_equal((x + 0.1).float().numpy(), rounded(held + rounded(np.float32(0.1))))  # (+ rounds first, as in PyTorch)


@pytest.mark.parametrize("dt", [dtypes.float16, dtypes.bfloat16], ids=["float16", "bfloat16"])
def test_small_integer_powers_round_once(device, dt):
  """x ** n of a half float: computed in float32 and rounded once (each multiply rounded to the half float made
  bfloat16 1.03125 ** 4 1.125, where the power rounds to 1.1328125)."""
  def rounded(values): return bits_to_float(float_to_bits(values, dt), dt) if dt != dtypes.float16 else np.float32(np.float16(values))
  x = rounded(np.linspace(1, 2, 65)[:-1].astype(np.float32))
  for n in (3, 4, 5, 8, -3, -4):
    want = rounded((x.astype(np.float64) ** n).astype(np.float32))
    np.testing.assert_array_equal((Tensor(x, device=device).cast(dt) ** n).float().numpy(), want, err_msg=str(n))


ACTIVATIONS = ["relu", "sigmoid", "tanh", "gelu", "silu", "hardsigmoid", "hardswish", "hardtanh", "relu6", "elu", "selu",
               "celu", "softplus", "mish", "leaky_relu", "logsigmoid", "softsign", "erf", "logit", "sinc", "nan_to_num"]


@pytest.mark.parametrize("dt", [dtypes.float16, dtypes.bfloat16], ids=["float16", "bfloat16"])
def test_activations_keep_a_half_float_dtype(device, dt):
  # hardsigmoid of float16 gave float32 (its NaN branch was a float32 constant), as PyTorch never does
  x = Tensor([-4.0, -0.5, 0.25, 0.75, 5.0], dtype=dt, device=device)
  for name in ACTIVATIONS: assert getattr(x, name)().dtype is dt, name


# ---- the host side: values in, float32 out ----

@pytest.mark.parametrize("dt", LOW, ids=IDS)
def test_host_rounding_matches_frozen_torch(dt):
  """The host conversion against the tables frozen from PyTorch (runs without torch: the oracle of the rest)."""
  specials = float_sample(0)
  assert_same_bits(float_to_bits(specials, dt), np.array(SPECIAL_BITS[dt], dtype=BITS[dt][1]), dt)
  assert sha(canonical_nan_bits(float_to_bits(float_sample(4000, seed=1), dt), dt)) == ROUNDING_SHA[dt]
  every = bits_to_float(np.arange(2 ** (8 * dt.itemsize)).astype(BITS[dt][1]), dt).astype(np.float32)
  every[np.isnan(every)] = np.nan
  assert sha(every) == EVERY_PATTERN_SHA[dt]


@pytest.mark.parametrize("dt", LOW, ids=IDS)
def test_host_rounding_matches_torch(dt):
  pytest.importorskip("torch", exc_type=ImportError)
  values = float_sample(4000, seed=1)
  assert_same_bits(float_to_bits(values, dt), torch_bits(torch.from_numpy(values), dt), dt)
  every = np.arange(2 ** (8 * dt.itemsize)).astype(BITS[dt][1])
  want = torch.from_numpy(every.view(np.int16) if dt == dtypes.bfloat16 else every).view(TORCH[dt]).float().numpy()
  np.testing.assert_array_equal(bits_to_float(every, dt), want)


@pytest.mark.parametrize("dt", LOW, ids=IDS)
def test_create_and_read(device, dt):
  values = float_sample()
  t = Tensor(values, dtype=dt, device=device)
  assert t.dtype is dt and t.shape == values.shape
  assert_same_bits(teeny_bits(t), ref_bits(values, dt), dt)
  out = t.numpy()  # numpy has no bfloat16/fp8: float32, like tinygrad
  assert out.dtype == np.float32
  np.testing.assert_array_equal(out, rounded(values, dt))
  assert Tensor([[1.0, 2.0]], dtype=dt, device=device).tolist() == [[1.0, 2.0]]
  assert Tensor(3.0, dtype=dt, device=device).item() == 3.0


# ---- casts, every direction, in kernels ----

@pytest.mark.parametrize("dt", LOW, ids=IDS)
@pytest.mark.parametrize("src", OTHERS, ids=[d.name for d in OTHERS])
def test_cast_to_low(device, dt, src):
  skip_float64_if_missing(device, src)
  values = float_sample()
  if dtypes.is_int(src): values = np.clip(np.nan_to_num(values), -100, 100).astype(src.np)  # (values each int holds)
  elif src == dtypes.bool: values = values > 0
  else:
    with np.errstate(over="ignore"): values = values.astype(src.np)  # (1e5 is inf in float16)
  src_tensor = Tensor(values, dtype=src, device=device)
  out = teeny_bits(src_tensor.cast(dt))
  # (every source value is exact in float32: its bits rounded from float32 are those from the source type)
  assert_same_bits(out, ref_bits(values.astype(np.float32), dt), dt)


@pytest.mark.parametrize("dt", LOW, ids=IDS)
@pytest.mark.parametrize("dst", OTHERS, ids=[d.name for d in OTHERS])
def test_cast_from_low(device, dt, dst):
  skip_float64_if_missing(device, dst)
  values = float_sample()
  if dtypes.is_int(dst) or dst == dtypes.bool:  # (float -> int of NaN or out of range is undefined, in C and in PyTorch)
    values = np.clip(np.nan_to_num(values), 0 if dst == dtypes.uint8 else -100, 100)
  if torch is not None: ref = torch.from_numpy(values).to(TORCH[dt]).to(TORCH[dst]).numpy()
  else:
    with np.errstate(over="ignore"): ref = rounded(values, dt).astype(dst.np)  # (numpy truncates to ints, as C does)
  out = Tensor(values, dtype=dt, device=device).cast(dst).numpy()
  assert out.dtype == ref.dtype
  if dtypes.is_float(dst): np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
  np.testing.assert_array_equal(out[~np.isnan(out)] if dtypes.is_float(dst) else out, ref[~np.isnan(ref)] if dtypes.is_float(dst) else ref)


@pytest.mark.parametrize("src", LOW, ids=IDS)
@pytest.mark.parametrize("dst", LOW, ids=IDS)
def test_cast_between_low(device, src, dst):
  values = float_sample()
  ref = ref_bits(rounded(values, src), dst)
  assert_same_bits(teeny_bits(Tensor(values, dtype=src, device=device).cast(dst)), ref, dst)


@pytest.mark.parametrize("dt", LOW, ids=IDS)
def test_bitcast_both_ways(device, dt):
  bits_dt, np_bits = BITS[dt]
  every = np.arange(2 ** (8 * dt.itemsize)).astype(np_bits)
  values = Tensor(every, dtype=bits_dt, device=device).bitcast(dt)
  assert values.dtype is dt
  np.testing.assert_array_equal(values.numpy(), bits_to_float(every, dt))
  nan = np.isnan(bits_to_float(every, dt))
  np.testing.assert_array_equal(values.bitcast(bits_dt).numpy()[~nan], every[~nan])  # (the values went through float32)
  signed = Tensor(every, dtype=bits_dt, device=device).bitcast(dt).contiguous().bitcast(dtypes.int16 if dt.itemsize == 2 else dtypes.int8)
  np.testing.assert_array_equal(signed.numpy()[~nan], every.view(np.int16 if dt.itemsize == 2 else np.int8)[~nan])


def test_copy_keeps_bits(device):
  """A copy (contiguous, another device) moves the bits, NaN payloads included."""
  every = np.arange(2 ** 16).astype(np.uint16)
  t = Tensor(every, dtype=dtypes.uint16, device=device).bitcast(dtypes.bfloat16).contiguous().realize()
  np.testing.assert_array_equal(t.flip(0).flip(0).contiguous().bitcast(dtypes.uint16).numpy(), every)
  for other in Device.available():
    np.testing.assert_array_equal(t.to(other).bitcast(dtypes.uint16).numpy(), every)


# ---- arithmetic: float32, rounded once per op ----

NUMPY_OPS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.divide, "maximum": np.maximum}


@pytest.mark.parametrize("op", ["add", "sub", "mul", "truediv", "maximum"])
def test_bf16_arithmetic_rounds_once(device, op):
  """The reference: the float32 result of the rounded inputs, rounded once (what PyTorch's bfloat16 ops do)."""
  rng = np.random.default_rng(2)
  a, b = (rng.standard_normal(257) * 50).astype(np.float32), (rng.standard_normal(257) * 3).astype(np.float32)
  ra, rb = rounded(a, dtypes.bfloat16), rounded(b, dtypes.bfloat16)
  x, y = Tensor(a, dtype=dtypes.bfloat16, device=device), Tensor(b, dtype=dtypes.bfloat16, device=device)
  out = getattr(x, op)(y) if op != "truediv" else x / y
  assert out.dtype is dtypes.bfloat16
  np.testing.assert_array_equal(teeny_bits(out), ref_bits(NUMPY_OPS[op](ra, rb), dtypes.bfloat16))
  np.testing.assert_array_equal((x < y).numpy(), ra < rb)
  np.testing.assert_array_equal((-x).numpy(), -ra)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "truediv", "maximum"])
def test_bf16_arithmetic_matches_torch(device, op):
  pytest.importorskip("torch", exc_type=ImportError)
  rng = np.random.default_rng(2)
  a, b = (rng.standard_normal(257) * 50).astype(np.float32), (rng.standard_normal(257) * 3).astype(np.float32)
  ta, tb = torch.from_numpy(a).bfloat16(), torch.from_numpy(b).bfloat16()
  ref = getattr(torch, op if op != "truediv" else "div")(ta, tb)
  x, y = Tensor(a, dtype=dtypes.bfloat16, device=device), Tensor(b, dtype=dtypes.bfloat16, device=device)
  out = getattr(x, op)(y) if op != "truediv" else x / y
  np.testing.assert_array_equal(teeny_bits(out), ref.view(torch.int16).numpy().view(np.uint16))


@pytest.mark.parametrize("dt", [dtypes.fp8e4m3, dtypes.fp8e5m2], ids=["fp8e4m3", "fp8e5m2"])
def test_fp8_arithmetic_rounds_once(device, dt):
  """PyTorch has no fp8 arithmetic: the reference is the float32 result cast to fp8."""
  rng = np.random.default_rng(3)
  a, b = rng.uniform(-20, 20, 200).astype(np.float32), rng.uniform(-20, 20, 200).astype(np.float32)
  ra, rb = rounded(a, dt), rounded(b, dt)
  x, y = Tensor(a, dtype=dt, device=device), Tensor(b, dtype=dt, device=device)
  for out, ref in ((x * y, ra * rb), (x + y, ra + rb), (x * 0.5 - y, ra * np.float32(0.5) - rb)):
    assert out.dtype is dt
    assert_same_bits(teeny_bits(out), ref_bits(ref, dt), dt)


def test_bf16_where_and_mixed(device):
  rng = np.random.default_rng(4)
  a = (rng.standard_normal(64) * 10).astype(np.float32)
  ra = rounded(a, dtypes.bfloat16)
  x = Tensor(a, dtype=dtypes.bfloat16, device=device)
  np.testing.assert_array_equal((x > 0).where(x, x * 3).numpy(), np.where(ra > 0, ra, rounded(ra * 3, dtypes.bfloat16)))
  half = Tensor(a, dtype=dtypes.float16, device=device)
  # bfloat16 + float16 promotes to float32: both exact there, one float32 add
  np.testing.assert_array_equal((x + half).numpy(), ra + a.astype(np.float16).astype(np.float32))
  if torch is not None:
    ta = torch.from_numpy(a).bfloat16()
    np.testing.assert_array_equal((x + half).numpy(), (ta + torch.from_numpy(a).half()).numpy())


# ---- reductions and matmul accumulate in float32 ----

@pytest.mark.parametrize("dt", LOW, ids=IDS)
def test_sum_accumulates_in_float32(device, dt):
  rng = np.random.default_rng(5)
  a = rng.uniform(0.5, 1.5, (6, 300)).astype(np.float32)
  exact = rounded(a, dt).astype(np.float64)
  x = Tensor(a, dtype=dt, device=device)
  out = x.sum(1)
  assert out.dtype is dt
  # accumulated in float32 and rounded once: the exact sum rounded (a bfloat16 accumulator would be far off)
  assert_same_bits(teeny_bits(out), ref_bits(exact.sum(1).astype(np.float32), dt), dt)
  assert_same_bits(teeny_bits(x.max(1)), ref_bits(exact.max(1).astype(np.float32), dt), dt)
  if dt == dtypes.bfloat16 and torch is not None:
    np.testing.assert_array_equal(teeny_bits(out), torch.from_numpy(a).bfloat16().sum(1).view(torch.int16).numpy().view(np.uint16))


@pytest.mark.parametrize("dt", LOW, ids=IDS)
def test_sum_of_a_cast_rounds_each_term(device, dt):
  """x.cast(dt).sum() sums the rounded values: the kernel left the cast out when it was fused into the sum (the
  float32 terms were added as a matmul's products are), so [2.25, -2.0] in fp8e5m2 (2.0 and -2.0) summed to 0.25."""
  a = np.float32([2.25, -2.0, 1 / 3, -0.333984375, 1.1, 7.3])
  fused = Tensor(a, device=device).cast(dt).sum()
  stored = Tensor(a, device=device).cast(dt).realize().sum()
  exact = rounded(a, dt).astype(np.float64).sum()
  np.testing.assert_array_equal(teeny_bits(fused.reshape(1)), float_to_bits(np.float32([exact]), dt))
  np.testing.assert_array_equal(teeny_bits(stored.reshape(1)), teeny_bits(fused.reshape(1)))


def test_bf16_matmul_accumulates_in_float32(device):
  rng = np.random.default_rng(6)
  a, b = rng.standard_normal((17, 64)).astype(np.float32), rng.standard_normal((64, 9)).astype(np.float32)
  ra, rb = rounded(a, dtypes.bfloat16), rounded(b, dtypes.bfloat16)
  out = Tensor(a, dtype=dtypes.bfloat16, device=device) @ Tensor(b, dtype=dtypes.bfloat16, device=device)
  assert out.dtype is dtypes.bfloat16
  exact = (ra.astype(np.float64) @ rb.astype(np.float64)).astype(np.float32)
  # float32 accumulation of exact products, rounded once: within half a bfloat16 step of the exact result rounded
  # (another order of adds); a bfloat16 accumulator would miss by many steps
  np.testing.assert_allclose(out.numpy(), rounded(exact, dtypes.bfloat16), rtol=2 ** -8, atol=1e-6)
  assert (out.numpy() == rounded(exact, dtypes.bfloat16)).mean() > 0.95
  if torch is not None:  # PyTorch's bfloat16 matmul: the same method
    ref = (torch.from_numpy(a).bfloat16() @ torch.from_numpy(b).bfloat16()).float().numpy()
    np.testing.assert_allclose(out.numpy(), ref, rtol=2 ** -8, atol=1e-6)
  # (the matmul multiplies in float32; an elementwise product summed, (x * y).sum(), rounds each product to bfloat16
  # as PyTorch's does: its product is a bfloat16 tensor)


def test_a_sum_of_values_cast_to_bfloat16_rounds_each_term(device):
  """(x * 3).cast(bfloat16).sum() fused into one kernel skipped the cast's rounding (the lowering took every product
  cast to bfloat16 for a matmul's, which it keeps exact): -0.6133 where the rounded terms sum to -0.6172 (PyTorch,
  and the same sum realized in two steps). Also for fp8."""
  a = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
  for dt in (dtypes.bfloat16, dtypes.fp8e4m3):
    fused = (Tensor(a, device=device) * 3).cast(dt).sum(0).float().numpy()
    terms = rounded((a * 3).astype(np.float32), dt)
    np.testing.assert_array_equal(fused, rounded(terms.sum(0, dtype=np.float32), dt), err_msg=str(dt))


def test_bf16_matmul_long_enough_to_split_keeps_exact_products(device):
  # 40,000 terms: the sum is split into float32 partial sums (schedule/shaping.py), whose kernel rounded each
  # product to bfloat16 first (about half the outputs a step off); unsplit and split now multiply in float32
  rng = np.random.default_rng(6)
  a, b = rng.standard_normal((1, 40000)).astype(np.float32), rng.standard_normal((40000, 16)).astype(np.float32)
  ra, rb = rounded(a, dtypes.bfloat16), rounded(b, dtypes.bfloat16)
  out = (Tensor(a, dtype=dtypes.bfloat16, device=device) @ Tensor(b, dtype=dtypes.bfloat16, device=device)).float().numpy()
  exact = (ra.astype(np.float64) @ rb.astype(np.float64)).astype(np.float32)
  assert (out == rounded(exact, dtypes.bfloat16)).mean() > 0.9


@pytest.mark.parametrize("dt", [dtypes.float16, dtypes.bfloat16], ids=["float16", "bfloat16"])
def test_long_elementwise_product_sum_rounds_each_product(device, dt):
  """sum(a * b) is a half-float product, then a sum (PyTorch's and the short kernel's rounding). Long enough to be
  split into float32 partial sums (schedule/shaping.py), the products were multiplied in float32 unrounded:
  32,768 float16 1e-4 squared summed to 3.3e-4 where each 1e-8 rounds to 0."""
  def rounded_to_dt(values): return values.astype(np.float16).astype(np.float32) if dt == dtypes.float16 else rounded(values, dt)
  rng = np.random.default_rng(7)
  a, b = rng.standard_normal((8, 40_000)).astype(np.float32), rng.standard_normal((8, 40_000)).astype(np.float32)
  ra, rb = rounded_to_dt(a), rounded_to_dt(b)
  out = (Tensor(a, device=device).cast(dt) * Tensor(b, device=device).cast(dt)).sum(1).float().numpy()
  products_rounded = rounded_to_dt(rounded_to_dt(ra * rb).astype(np.float64).sum(1).astype(np.float32))
  products_exact = rounded_to_dt((ra.astype(np.float64) * rb).sum(1).astype(np.float32))
  assert (products_rounded != products_exact).any()  # (the data tells the two apart)
  np.testing.assert_array_equal(out, products_rounded)
  if dt == dtypes.float16:
    for n in (32_767, 32_768, 100_000):
      tiny = Tensor(np.full(n, 1e-4, np.float32), device=device).cast(dt)
      assert (tiny * tiny).sum().float().item() == 0.0, n
    # 300 * -300 overflows float16 to -inf, and inf + -inf is NaN, as in PyTorch
    big = np.where(np.arange(70_000) % 2 == 0, 300, -300).astype(np.float32)
    x = Tensor(big, device=device).cast(dt)
    assert np.isnan((x * x.abs()).sum().float().item())


def test_arange_in_bfloat16_and_fp8_counts_then_rounds(device):
  """A fractional step in a storage float was counted in its bits (all zeros): now in float32, rounded once."""
  for dt in (dtypes.bfloat16, dtypes.fp8e4m3):
    got = Tensor.arange(0, 3, 0.3, dtype=dt, device=device)
    assert got.dtype == dt
    counted = (np.arange(10) * 0.3).astype(np.float32)  # (what torch.arange(0, 3, 0.3, dtype=torch.float32) gives)
    np.testing.assert_array_equal(got.numpy(), rounded(counted, dt))
    if torch is not None:
      want = torch.arange(0, 3, 0.3, dtype=torch.float32).to(TORCH[dt]).float().numpy()
      np.testing.assert_array_equal(got.numpy(), want)


def test_float16_layernorm_rounds_once(device):
  """layernorm of float16 computes in float32 and rounds once, as PyTorch's layer_norm: its centred values, their
  mean square and the product each rounded to half cost up to 1% of a small output."""
  x = (np.random.default_rng(0).standard_normal((8, 8)) * 3).astype(np.float16)
  got = Tensor(x, device=device).layernorm().numpy()
  x32 = x.astype(np.float32)
  centered = x32 - x32.mean(-1, keepdims=True)
  want = (centered / np.sqrt((centered ** 2).mean(-1, keepdims=True) + 1e-5)).astype(np.float16)
  assert got.dtype == np.float16
  np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=1e-3, atol=1e-4)



def test_float16_norms_attention_and_gradients_compute_in_float32(device):
  """As PyTorch's, in float32 and rounded once: BatchNorm's batch statistics (a channel with std above 256 had an
  inf variance and normalized to 0), attention (scores above 65504 were inf: NaN out), and the gradients of elu,
  mish, softsign and addcmul (e^-20 underflowed, (1 + |x|)^2 and g * b overflowed float16)."""
  if not Device[device].supports_dtype(dtypes.float16): pytest.skip("no float16 on this device")
  from teeny import nn
  channel = np.array([1000.0, -1000.0, 10.0, 0.0], np.float32)
  x = np.stack([channel, np.arange(4.0, dtype=np.float32)], 1).astype(np.float16)
  out = nn.BatchNorm(2, affine=False, track_running_stats=False)(Tensor(x, device=device)).numpy()
  want = (channel - channel.mean()) / np.sqrt(channel.var() + 1e-5)
  np.testing.assert_allclose(out[:, 0].astype(np.float32), want, rtol=2e-3)
  q = Tensor(np.array([[200, 200, 0, 0], [1, 2, 3, 4]], np.float16), device=device)
  np.testing.assert_array_equal(q.scaled_dot_product_attention(q, q).numpy()[0], [200, 200, 0, 0])
  for name in ("elu", "mish"):
    t = Tensor(np.array([-20.0], np.float16), device=device, requires_grad=True)
    (getattr(t, name)() * 3e4).sum().backward()
    assert 5e-5 < abs(float(t.grad.numpy()[0])) < 2e-3, name
  t = Tensor(np.array([1000.0, -300.0], np.float16), device=device, requires_grad=True)
  t.softsign().sum().backward()
  np.testing.assert_allclose(t.grad.numpy().astype(np.float32), 1 / (1 + np.array([1000.0, 300.0])) ** 2, rtol=0.07)
  a = Tensor(np.array([1.0, 2.0], np.float16), device=device, requires_grad=True)
  (a.addcmul(a, Tensor(np.array([-2.5, -2.5], np.float16), device=device), value=0.5) * 3e4).sum().backward()
  np.testing.assert_allclose(a.grad.numpy().astype(np.float32), [-7500, -7500], rtol=1e-3)

def test_float16_prod_gradient_compiles_on_every_x86(device):
  """LLVM 22 aborted the whole process ("Cannot select: v16f16 X86ISD::SUBV_BROADCAST_LOAD") compiling prod's
  gradient of a float16 tensor on an AMD EPYC without AVX512-FP16: float16 kernels now ask for 128-bit vectors
  there. In a child process, so a regression fails this test and not the run."""
  import os, sys
  sys.path.insert(0, os.path.dirname(__file__))
  from child import run_in_child
  code = ("import numpy as np; from teeny import Tensor\n"
          f"x = Tensor(np.full((2, 5), 1.5, np.float16), device={device!r}, requires_grad=True)\n"
          "x.prod(-1).sum().backward(); print(x.grad.numpy().tolist())")
  out = run_in_child(code)
  assert out.stdout.strip() == str(np.full((2, 5), np.float16(1.5 ** 4)).tolist())


def test_float16_convolution_rounds_each_output_once(device):
  """A float16 convolution rounded each product to half before summing (PyTorch's does not): outputs near 0 were
  thousands of ulp off and the weight gradient ~50; it multiplies in float32 now, like a matmul."""
  from numpy.lib.stride_tricks import sliding_window_view
  gen = np.random.default_rng(0)
  x, w = gen.standard_normal((2, 4, 8, 8)).astype(np.float16), gen.standard_normal((6, 4, 3, 3)).astype(np.float16)
  want = np.einsum("ncijkl,ockl->noij", sliding_window_view(x.astype(np.float64), (3, 3), axis=(2, 3)), w.astype(np.float64))
  got = Tensor(x, device=device).conv2d(Tensor(w, device=device)).numpy()
  assert got.dtype == np.float16 and got.shape == want.shape
  ulp = np.spacing(np.abs(want).astype(np.float16)).astype(np.float64)
  assert (np.abs(got.astype(np.float64) - want) <= ulp).all()  # (within an ulp of the exact sum: one rounding)


def test_half_float_softmax_computes_in_float32_and_rounds_once(device):
  """bfloat16 softmax rounded x - max and each exp to bfloat16: the smallest probability of this row was 13% off.
  Computed in float32 and rounded once, as PyTorch's (within half a bfloat16 step of the exact value)."""
  row = np.array([[-13.75, -5.53125, -4.75, 19.875]], np.float32)  # (every value exact in bfloat16)
  exact = np.exp(row.astype(np.float64) - row.max()) / np.exp(row.astype(np.float64) - row.max()).sum()
  for dt in (dtypes.bfloat16, dtypes.float16):
    probs = Tensor(row, dtype=dt, device=device).softmax(-1).float().numpy()
    np.testing.assert_allclose(probs, exact, rtol=2 ** -8 if dt == dtypes.bfloat16 else 2 ** -11, atol=1e-30 if dt == dtypes.bfloat16 else 6e-8)
    logs = Tensor(row, dtype=dt, device=device).log_softmax(-1).float().numpy()
    np.testing.assert_allclose(logs, np.log(exact), rtol=2 ** -8 if dt == dtypes.bfloat16 else 2 ** -11, atol=1e-7)  # (log(1 + 3e-11) is 0 in float32)


def test_half_float_logcumsumexp_rounds_each_prefix_once(device):
  """A float16 logcumsumexp rounded its exp, sums and log to float16: [-0.4526, 0.4304] gave 0.777 for 0.7765 (its
  exact value rounds to 0.7764), 1 ulp off in about 1 element of 5. Scanned in float32 and rounded once, as
  PyTorch's (within half a step of the exact value, past float32's own error)."""
  x = np.concatenate([[-0.45263671875, 0.430419921875], np.random.default_rng(0).standard_normal(300)]).astype(np.float32)
  for dt, step in ((dtypes.float16, 2 ** -10), (dtypes.bfloat16, 2 ** -7)):
    held = Tensor(x, device=device).cast(dt).float().numpy().astype(np.float64)  # (x as the half float holds it)
    got = Tensor(held.astype(np.float32), dtype=dt, device=device).logcumsumexp(0)
    assert got.dtype == dt
    np.testing.assert_allclose(got.float().numpy(), np.logaddexp.accumulate(held), rtol=step / 2 * 1.01, atol=1e-30)


def test_float16_pooling_resizing_and_nll_loss_round_once(device):
  """avg_pool sums a half float window in float32 (four 30000s summed to inf in float16), bicubic interpolate adds
  its terms in float32 (a constant 60000 image gave inf), each rounded once as PyTorch's; nll_loss of float16
  log-probabilities is float16 (it came back float32)."""
  if not Device[device].supports_dtype(dtypes.float16): pytest.skip("no float16 on this device")
  x = Tensor(np.full((1, 1, 2, 2), 30000, np.float16), device=device)
  pooled = x.avg_pool2d(2)
  assert pooled.dtype == dtypes.float16 and pooled.item() == 30000
  image = Tensor(np.full((1, 1, 4, 4), 60000, np.float16), device=device).interpolate(size=(4, 7), mode="bicubic")
  assert image.dtype == dtypes.float16
  np.testing.assert_allclose(image.numpy().astype(np.float32), 60000, rtol=1e-3)
  logp = Tensor(np.log(np.full((2, 3), 1 / 3, np.float32)).astype(np.float16), device=device)
  loss = logp.nll_loss(Tensor(np.array([0, 2]), device=device))
  assert loss.dtype == dtypes.float16 and abs(loss.item() - np.log(3)) < 1e-3


@pytest.mark.parametrize("src,dst", [(dtypes.float16, dtypes.bfloat16), (dtypes.bfloat16, dtypes.float16),
                                     (dtypes.fp8e4m3, dtypes.fp8e5m2), (dtypes.fp8e5m2, dtypes.fp8e4m3),
                                     (dtypes.bfloat16, dtypes.int16), (dtypes.int16, dtypes.bfloat16),
                                     (dtypes.fp8e4m3, dtypes.int8), (dtypes.uint8, dtypes.fp8e5m2)], ids=str)
def test_bitcast_between_floats_of_one_size_keeps_the_bits(device, src, dst):
  """A bitcast from or to bfloat16/fp8 reinterprets the bits, like torch's .view(dtype): between two floats it
  converted the value instead (float16 [1, -2.5, 3] as bfloat16 was [9.2e-41, nan, 2.8e-40], not [2^-7, -8, 32])."""
  ints = {1: dtypes.uint8, 2: dtypes.uint16}[src.itemsize]
  values = Tensor([1.0, -2.5, 3.0, 0.25, -0.0], device=device)
  x = values.cast(src) if dtypes.is_float(src) else values.cast(dtypes.int32).cast(src)
  src_bits = x.bitcast(ints).numpy()
  for y in (x.bitcast(dst), x.realize().bitcast(dst).realize()):
    assert y.dtype == dst
    np.testing.assert_array_equal(y.bitcast(ints).numpy(), src_bits)
  if (src, dst) == (dtypes.float16, dtypes.bfloat16):  # the values: float16's bits read as bfloat16's
    half_bits = np.array([1.0, -2.5, 3.0, 0.25, -0.0], np.float16).view(np.uint16)
    np.testing.assert_array_equal(x.bitcast(dst).float().numpy(), (half_bits.astype(np.uint32) << 16).view(np.float32))
