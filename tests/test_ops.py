"""Every user op of teeny/tensor.py checked against numpy, on every available device.

Shapes are reused across tests on purpose: each distinct kernel is compiled once and then comes from the cache."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from teeny import Tensor, dtypes
from teeny.runtime.device import Device

DEVICES = Device.available()
RNG_SEED = 0
SHAPE = (3, 4)


def rand(*shape, lo=-2.0, hi=2.0, seed=RNG_SEED, dtype=np.float32):
  return np.random.default_rng(seed).uniform(lo, hi, size=shape).astype(dtype)


def check(t: Tensor, expected, rtol=1e-5, atol=1e-6, dtype=None):
  """t's data matches numpy's `expected` in shape and value (and dtype if given or if expected is an array)."""
  expected = np.asarray(expected)
  out = t.numpy()
  assert isinstance(out, np.ndarray)
  assert out.shape == expected.shape, f"shape {out.shape} != expected {expected.shape}"
  assert t.shape == expected.shape, f"Tensor.shape {t.shape} != expected {expected.shape}"
  if dtype is not None: assert t.dtype == dtype and out.dtype == dtype.np, f"dtype {t.dtype} / {out.dtype} != {dtype}"
  if out.dtype == np.bool_ or np.issubdtype(out.dtype, np.integer): np.testing.assert_array_equal(out, expected)
  else: np.testing.assert_allclose(out, expected, rtol=rtol, atol=atol, equal_nan=True)


# ---------------------------------------------------------------- elementwise binary
BINARY = {
  "add": (lambda a, b: a + b, np.add),
  "sub": (lambda a, b: a - b, np.subtract),
  "mul": (lambda a, b: a * b, np.multiply),
  "div": (lambda a, b: a / b, np.divide),
  "maximum": (lambda a, b: a.maximum(b), np.maximum),
  "minimum": (lambda a, b: a.minimum(b), np.minimum),
}
COMPARE = {
  "lt": (lambda a, b: a < b, np.less),
  "le": (lambda a, b: a <= b, np.less_equal),
  "gt": (lambda a, b: a > b, np.greater),
  "ge": (lambda a, b: a >= b, np.greater_equal),
  "eq": (lambda a, b: a == b, np.equal),
  "ne": (lambda a, b: a != b, np.not_equal),
}


def _binary_inputs():
  a, b = rand(*SHAPE, seed=1), rand(*SHAPE, seed=2)
  b[np.abs(b) < 0.1] = 0.5  # keep division well conditioned
  a[0, :2] = b[0, :2]       # some equal pairs for the comparisons
  return a, b


@pytest.mark.parametrize("name", BINARY)
def test_binary_float(device, name):
  f, npf = BINARY[name]
  a, b = _binary_inputs()
  check(f(Tensor(a, device=device), Tensor(b, device=device)), npf(a, b), dtype=dtypes.float32)


@pytest.mark.parametrize("name", BINARY)
def test_binary_with_python_scalar(device, name):
  f, npf = BINARY[name]
  a, _ = _binary_inputs()
  t = Tensor(a, device=device)
  check(f(t, 1.5), npf(a, np.float32(1.5)), dtype=dtypes.float32)
  if name in ("add", "sub", "mul", "div"):  # reflected operators: scalar on the left
    check(f(1.5, t), npf(np.float32(1.5), a), dtype=dtypes.float32)


@pytest.mark.parametrize("name", BINARY)
def test_binary_int(device, name):
  f, npf = BINARY[name]
  rng = np.random.default_rng(3)
  a = rng.integers(-50, 50, SHAPE).astype(np.int32)
  b = rng.integers(1, 9, SHAPE).astype(np.int32) * rng.choice([-1, 1], SHAPE).astype(np.int32)
  out = f(Tensor(a, device=device), Tensor(b, device=device))
  if name == "div": check(out, (a / b).astype(np.float32), dtype=dtypes.float32)  # true division of ints is float
  else: check(out, npf(a, b), dtype=dtypes.int32)


@pytest.mark.parametrize("name", COMPARE)
def test_compare(device, name):
  f, npf = COMPARE[name]
  a, b = _binary_inputs()
  check(f(Tensor(a, device=device), Tensor(b, device=device)), npf(a, b), dtype=dtypes.bool)
  check(f(Tensor(a, device=device), 0.5), npf(a, np.float32(0.5)), dtype=dtypes.bool)
  ai, bi = (a * 3).astype(np.int32), (b * 3).astype(np.int32)
  check(f(Tensor(ai, device=device), Tensor(bi, device=device)), npf(ai, bi), dtype=dtypes.bool)


def test_compare_nan(device):
  a = np.array([np.nan, 1.0, np.nan, 2.0], dtype=np.float32)
  b = np.array([np.nan, np.nan, 1.0, 2.0], dtype=np.float32)
  ta, tb = Tensor(a, device=device), Tensor(b, device=device)
  for name, (f, npf) in COMPARE.items():
    check(f(ta, tb), npf(a, b), dtype=dtypes.bool)


def test_neg(device):
  a, _ = _binary_inputs()
  check(-Tensor(a, device=device), -a, dtype=dtypes.float32)
  ai = np.array([-3, 0, 5, 2**31 - 1], dtype=np.int32)
  check(-Tensor(ai, device=device), -ai, dtype=dtypes.int32)


def test_where(device):
  a, b = _binary_inputs()
  cond = a > b
  ta, tb, tc = Tensor(a, device=device), Tensor(b, device=device), Tensor(cond, device=device)
  check(tc.where(ta, tb), np.where(cond, a, b), dtype=dtypes.float32)
  check(tc.where(ta, 0.0), np.where(cond, a, np.float32(0)), dtype=dtypes.float32)
  check(tc.where(1.0, tb), np.where(cond, np.float32(1), b), dtype=dtypes.float32)
  check(tc.where(3, 4), np.where(cond, 3, 4).astype(np.int32), dtype=dtypes.int32)
  # broadcasting condition, x and y of different shapes
  c1 = np.array([True, False, True, False])
  check(Tensor(c1, device=device).where(ta, Tensor(b[:, :1], device=device)), np.where(c1, a, b[:, :1]))
  # a non-bool condition means "nonzero"
  check(Tensor((a * 2).astype(np.int32), device=device).where(ta, tb), np.where((a * 2).astype(np.int32) != 0, a, b))


# ---------------------------------------------------------------- division and modulo
INT_A = np.array([-7, -7, 7, 7, -8, 8, 0, 5, -5, -1, 1, 13, -13, 100, -100, 9], dtype=np.int32)
INT_B = np.array([2, -2, 2, -2, 3, -3, 4, 5, 5, 3, -3, 4, -4, 7, 7, -9], dtype=np.int32)


def test_int_floordiv_mod_python_semantics(device):
  a, b = Tensor(INT_A, device=device), Tensor(INT_B, device=device)
  check(a // b, np.floor_divide(INT_A, INT_B), dtype=dtypes.int32)
  check(a % b, np.mod(INT_A, INT_B), dtype=dtypes.int32)
  assert (a // b).tolist() == [x // y for x, y in zip(INT_A.tolist(), INT_B.tolist())]
  assert (a % b).tolist() == [x % y for x, y in zip(INT_A.tolist(), INT_B.tolist())]


def test_int_floordiv_mod_examples(device):
  assert (Tensor([-7], device=device) // 2).item() == -4
  assert (Tensor([-7], device=device) % 2).item() == 1
  assert (Tensor([7], device=device) % -2).item() == -1
  assert (Tensor([7], device=device) // -2).item() == -4
  assert (Tensor([-7], device=device) % -2).item() == -1


def test_int_floordiv_mod_scalars(device):
  a = Tensor(INT_A, device=device)
  check(a // 3, np.floor_divide(INT_A, 3), dtype=dtypes.int32)
  check(a % 3, np.mod(INT_A, 3), dtype=dtypes.int32)
  check(a // -3, np.floor_divide(INT_A, -3), dtype=dtypes.int32)
  check(a % -3, np.mod(INT_A, -3), dtype=dtypes.int32)
  b = Tensor(INT_B, device=device)
  check(17 // b, np.floor_divide(17, INT_B), dtype=dtypes.int32)
  check(-17 % b, np.mod(-17, INT_B), dtype=dtypes.int32)


def test_int_div_by_zero_gives_zero(device):
  a = np.array([-7, 0, 7, 3], dtype=np.int32)
  z = np.zeros(4, dtype=np.int32)
  with np.errstate(divide="ignore"):
    exp_div, exp_mod = np.floor_divide(a, z), np.mod(a, z)
  check(Tensor(a, device=device) // Tensor(z, device=device), exp_div, dtype=dtypes.int32)
  check(Tensor(a, device=device) % Tensor(z, device=device), exp_mod, dtype=dtypes.int32)


def test_int_div_by_scalar_zero_gives_zero(device):
  a = np.array([-7, 0, 7, 3], dtype=np.int32)
  with np.errstate(divide="ignore"):
    exp_div, exp_mod = np.floor_divide(a, 0), np.mod(a, 0)
  check(Tensor(a, device=device) // 0, exp_div, dtype=dtypes.int32)
  check(Tensor(a, device=device) % 0, exp_mod, dtype=dtypes.int32)


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.int32, 16, elements=st.integers(-1000, 1000)), hnp.arrays(np.int32, 16, elements=st.integers(-9, 9)))
def test_int_floordiv_mod_property(a, b):
  with np.errstate(divide="ignore"):
    exp_div, exp_mod = np.floor_divide(a, b), np.mod(a, b)
  for device in DEVICES:  # one kernel shape per device, new values each example
    ta, tb = Tensor(a, device=device), Tensor(b, device=device)
    np.testing.assert_array_equal((ta // tb).numpy(), exp_div, err_msg=f"{device}: {a} // {b}")
    np.testing.assert_array_equal((ta % tb).numpy(), exp_mod, err_msg=f"{device}: {a} % {b}")


def test_int_min_floordiv_minus_one_wraps(device):
  a = np.array([-2**31, -2**31, 2**31 - 1], dtype=np.int32)
  b = np.array([-1, 1, -1], dtype=np.int32)
  with np.errstate(over="ignore"):
    check(Tensor(a, device=device) // Tensor(b, device=device), np.floor_divide(a, b), dtype=dtypes.int32)
  check(Tensor(a, device=device) % Tensor(b, device=device), np.mod(a, b), dtype=dtypes.int32)


def test_int64_floordiv_mod(device):
  a, b = INT_A.astype(np.int64) * 3_000_000_000, INT_B.astype(np.int64)
  check(Tensor(a, device=device) // Tensor(b, device=device), np.floor_divide(a, b), dtype=dtypes.int64)
  check(Tensor(a, device=device) % Tensor(b, device=device), np.mod(a, b), dtype=dtypes.int64)


def test_float_floordiv_mod(device):
  a = np.array([-7.5, 7.5, -7.5, 7.5, 5.25, -0.5, 0.0, 3.0, -3.0, 1e-3], dtype=np.float32)
  b = np.array([2.0, 2.0, -2.0, -2.0, 0.5, 3.0, 1.5, 1.5, 1.5, 0.25], dtype=np.float32)
  ta, tb = Tensor(a, device=device), Tensor(b, device=device)
  check(ta // tb, np.floor_divide(a, b), dtype=dtypes.float32)
  check(ta % tb, np.mod(a, b), dtype=dtypes.float32)
  check(ta // 2.0, np.floor_divide(a, np.float32(2)), dtype=dtypes.float32)
  check(ta % 2.0, np.mod(a, np.float32(2)), dtype=dtypes.float32)
  check(ta % -2.0, np.mod(a, np.float32(-2)), dtype=dtypes.float32)


def test_float_floordiv_mod_random(device):
  a = rand(*SHAPE, lo=-10, hi=10, seed=4)
  b = rand(*SHAPE, lo=0.5, hi=5, seed=5) * np.where(rand(*SHAPE, seed=6) > 0, 1, -1).astype(np.float32)
  ta, tb = Tensor(a, device=device), Tensor(b, device=device)
  check(ta // tb, np.floor_divide(a, b))
  check(ta % tb, np.mod(a, b), rtol=1e-5, atol=1e-5)


def test_int_tensor_float_floordiv(device):
  # an int tensor with a python float promotes to float32 first
  a = np.array([-7, 7, 3], dtype=np.int32)
  check(Tensor(a, device=device) // 2.0, np.floor_divide(a.astype(np.float32), np.float32(2)), dtype=dtypes.float32)
  check(Tensor(a, device=device) % 2.5, np.mod(a.astype(np.float32), np.float32(2.5)), dtype=dtypes.float32)


def test_result_that_ignores_its_inputs(device):
  # the kernel's expression folds to a constant, so its input buffer is no longer read
  a = np.array([7, 3, 5], np.int32)
  check(Tensor(a, device=device) - Tensor(a, device=device), np.zeros(3, np.int32), dtype=dtypes.int32)
  t = Tensor(a, device=device)
  check(t - t, np.zeros(3, np.int32), dtype=dtypes.int32)
  check(t * 0, np.zeros(3, np.int32), dtype=dtypes.int32)


# ---------------------------------------------------------------- elementwise unary
UNARY = {  # name: (teeny, numpy, (lo, hi) input range, rtol, atol)
  "exp": (Tensor.exp, np.exp, (-5, 5), 1e-4, 1e-6),
  "log": (Tensor.log, np.log, (0.01, 10), 1e-4, 1e-6),
  "exp2": (Tensor.exp2, np.exp2, (-5, 5), 1e-4, 1e-6),
  "log2": (Tensor.log2, np.log2, (0.01, 10), 1e-4, 1e-6),
  "sqrt": (Tensor.sqrt, np.sqrt, (0, 10), 1e-5, 1e-6),
  "sin": (Tensor.sin, np.sin, (-4, 4), 1e-4, 1e-6),
  "cos": (Tensor.cos, np.cos, (-4, 4), 1e-4, 1e-6),
  "relu": (Tensor.relu, lambda x: np.maximum(x, 0), (-2, 2), 0, 0),
  "sigmoid": (Tensor.sigmoid, lambda x: 1 / (1 + np.exp(-x)), (-8, 8), 1e-4, 1e-6),
  "tanh": (Tensor.tanh, np.tanh, (-4, 4), 1e-4, 1e-6),
  "abs": (Tensor.abs, np.abs, (-2, 2), 0, 0),
  "neg": (Tensor.neg, np.negative, (-2, 2), 0, 0),
}


@pytest.mark.parametrize("name", UNARY)
def test_unary(device, name):
  f, npf, (lo, hi), rtol, atol = UNARY[name]
  a = rand(*SHAPE, lo=lo, hi=hi, seed=7)
  check(f(Tensor(a, device=device)), npf(a.astype(np.float64)).astype(np.float32), rtol=rtol, atol=atol, dtype=dtypes.float32)


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "sin", "sigmoid"])
def test_unary_of_int_is_float(device, name):
  f, npf, _, rtol, atol = UNARY[name]
  a = np.array([1, 2, 3, 4], dtype=np.int32)
  check(f(Tensor(a, device=device)), npf(a.astype(np.float64)).astype(np.float32), rtol=rtol, atol=atol, dtype=dtypes.float32)


def test_unary_special_values(device):
  with np.errstate(all="ignore"):
    t = lambda v: Tensor(np.array(v, dtype=np.float32), device=device)
    check(t([0.0, -1.0, np.inf]).log(), np.log(np.array([0.0, -1.0, np.inf], dtype=np.float32)))
    check(t([-1.0, 0.0, np.inf]).sqrt(), np.sqrt(np.array([-1.0, 0.0, np.inf], dtype=np.float32)))
    check(t([-np.inf, 100.0, 0.0]).exp(), np.exp(np.array([-np.inf, 100.0, 0.0], dtype=np.float32)))
    check(t([-100.0, 100.0, 0.0]).sigmoid(), np.array([0.0, 1.0, 0.5], dtype=np.float32))
    check(t([-100.0, 100.0, 0.0]).tanh(), np.array([-1.0, 1.0, 0.0], dtype=np.float32))
    check(t([-np.inf, np.inf, -0.0]).abs(), np.array([np.inf, np.inf, 0.0], dtype=np.float32))


MORE_UNARY = {  # name: (teeny, numpy, input range, rtol)
  "floor": (Tensor.floor, np.floor, (-3, 3), 0), "ceil": (Tensor.ceil, np.ceil, (-3, 3), 0),
  "trunc": (Tensor.trunc, np.trunc, (-3, 3), 0), "sign": (Tensor.sign, np.sign, (-3, 3), 0),
  "square": (Tensor.square, np.square, (-3, 3), 1e-6), "reciprocal": (Tensor.reciprocal, np.reciprocal, (0.1, 3), 1e-6),
  "rsqrt": (Tensor.rsqrt, lambda x: 1 / np.sqrt(x), (0.1, 3), 1e-5), "tan": (Tensor.tan, np.tan, (-1.4, 1.4), 1e-4),
  "clip": (lambda t: t.clip(-1, 0.5), lambda x: np.clip(x, -1, 0.5), (-3, 3), 0),
}


@pytest.mark.parametrize("name", MORE_UNARY)
def test_more_unary(device, name):
  f, npf, (lo, hi), rtol = MORE_UNARY[name]
  a = rand(*SHAPE, lo=lo, hi=hi, seed=7)
  a[0, :3] = [0.0, -1.0, 2.0]  # exact integers for floor/ceil/trunc/sign
  check(f(Tensor(a, device=device)), npf(a.astype(np.float64)).astype(np.float32), rtol=rtol, atol=1e-6, dtype=dtypes.float32)


def test_floor_ceil_sign_int(device):
  a = np.array([-3, 0, 4], np.int32)
  t = Tensor(a, device=device)
  check(t.floor(), a, dtype=dtypes.int32)
  check(t.ceil(), a, dtype=dtypes.int32)
  check(t.sign(), np.sign(a), dtype=dtypes.int32)
  check(t.clip(-1, 2), np.clip(a, -1, 2), dtype=dtypes.int32)


def test_bitwise(device):
  a = np.array([0b1100, -1, 0, 7, -8], np.int32)
  b = np.array([0b1010, 5, -1, 3, 3], np.int32)
  ta, tb = Tensor(a, device=device), Tensor(b, device=device)
  check(ta & tb, a & b, dtype=dtypes.int32)
  check(ta | tb, a | b, dtype=dtypes.int32)
  check(ta ^ tb, a ^ b, dtype=dtypes.int32)
  check(~ta, ~a, dtype=dtypes.int32)
  check(ta & 6, a & 6, dtype=dtypes.int32)
  check(ta << 2, a << 2, dtype=dtypes.int32)
  check(Tensor(np.abs(a), device=device) >> 1, np.abs(a) >> 1, dtype=dtypes.int32)
  shifts = np.array([0, 1, 2, 3], np.int32)  # a number on the left (3 << t raised TypeError: no __rlshift__)
  check(3 << Tensor(shifts, device=device), 3 << shifts, dtype=dtypes.int32)
  check(-64 >> Tensor(shifts, device=device), -64 >> shifts, dtype=dtypes.int32)
  u = np.array([0, 1, 200, 255], np.uint8)
  check(~Tensor(u, device=device), ~u, dtype=dtypes.uint8)
  c, d = a > 0, b > 0
  tc, td = Tensor(c, device=device), Tensor(d, device=device)
  check(tc & td, c & d, dtype=dtypes.bool)
  check(tc | td, c | d, dtype=dtypes.bool)
  check(tc ^ td, c ^ d, dtype=dtypes.bool)
  check(~tc, ~c, dtype=dtypes.bool)
  check(tc.logical_not(), ~c, dtype=dtypes.bool)
  check(ta.logical_not(), a == 0, dtype=dtypes.bool)


def test_div_rounding_modes(device):
  ta, tb = Tensor(INT_A, device=device), Tensor(INT_B, device=device)
  check(ta.div(tb, rounding_mode="floor"), np.floor_divide(INT_A, INT_B), dtype=dtypes.int32)
  check(ta.div(tb, rounding_mode="trunc"), np.trunc(INT_A / INT_B).astype(np.int32), dtype=dtypes.int32)
  a, b = INT_A.astype(np.float32) + 0.5, INT_B.astype(np.float32)
  check(Tensor(a, device=device).div(Tensor(b, device=device), rounding_mode="trunc"), np.trunc(a / b))
  check(Tensor(a, device=device).div(Tensor(b, device=device), rounding_mode="floor"), np.floor(a / b))


def test_prod(device):
  a = rand(*RED_SHAPE, lo=0.5, hi=1.5, seed=22)
  t = Tensor(a, device=device)
  check(t.prod(), np.prod(a), rtol=1e-5)
  check(t.prod(1), np.prod(a, axis=1), rtol=1e-5)
  check(t.prod((0, 2), keepdim=True), np.prod(a, axis=(0, 2), keepdims=True), rtol=1e-5)
  ai = np.array([[2, -3, 4], [1, 5, -1]], np.int32)
  check(Tensor(ai, device=device).prod(1), np.prod(ai, axis=1, dtype=np.int64), dtype=dtypes.int64)
  check(Tensor(np.zeros((0, 2), np.float32), device=device).prod(0), np.ones(2, np.float32))


MATMUL = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)),
          ((1, 3, 4), (2, 4, 2))]


@pytest.mark.parametrize("sa,sb", MATMUL, ids=[f"{a}@{b}" for a, b in MATMUL])
def test_matmul(device, sa, sb):
  a, b = rand(*sa, seed=23), rand(*sb, seed=24)
  check(Tensor(a, device=device) @ Tensor(b, device=device), a @ b, rtol=1e-5, atol=1e-5)


def test_matmul_int_and_views(device):
  a = np.arange(12, dtype=np.int32).reshape(3, 4) - 5
  check(Tensor(a, device=device) @ Tensor(a, device=device).T, a @ a.T, dtype=dtypes.int32)
  f = rand(4, 3, seed=25)
  check(Tensor(f, device=device).T.dot(Tensor(f, device=device)), f.T @ f, rtol=1e-5, atol=1e-5)


def test_bitcast(device):
  f = np.array([1.0, -2.5, 0.0, np.inf], np.float32)
  check(Tensor(f, device=device).bitcast(dtypes.int32), f.view(np.int32), dtype=dtypes.int32)
  check(Tensor(f, device=device).bitcast(dtypes.uint32), f.view(np.uint32), dtype=dtypes.uint32)
  i = f.view(np.int32)
  check(Tensor(i, device=device).bitcast(dtypes.float32), f, dtype=dtypes.float32)


def test_bitcast_half(device):
  # only bits move: this needs no half arithmetic, so it works on devices without cl_khr_fp16 too
  h = np.array([1.0, -0.5, 65504.0, -0.0], np.float16)
  check(Tensor(h, device=device).bitcast(dtypes.int16), h.view(np.int16), dtype=dtypes.int16)
  i = h.view(np.int16)
  check(Tensor(i, device=device).bitcast(dtypes.float16), h, dtype=dtypes.float16)


def test_bitcast_bool(device):
  """bool is one byte holding 0 or 1, so it bitcasts to and from the byte types (torch's view(torch.bool): any
  nonzero byte reads as True). OpenCL has no as_uchar(bool) (NVIDIA's compiler called it ambiguous), so the source
  is checked too: this machine's OpenCL driver may build no kernels."""
  from teeny.schedule import create_schedule
  from teeny.codegen import get_program
  from teeny.renderer.cstyle import OpenCLRenderer
  b = np.array([True, False, True])
  for dt, np_dt in ((dtypes.uint8, np.uint8), (dtypes.int8, np.int8)):
    check(Tensor(b, device=device).bitcast(dt), b.view(np_dt), dtype=dt)
  check(Tensor(np.array([0, 1, 2, 255], np.uint8), device=device).bitcast(dtypes.bool), np.array([False, True, True, True]), dtype=dtypes.bool)
  ast = create_schedule((Tensor(b).bitcast(dtypes.uint8).uop,), ("LLVM",))[0][-1].ast
  src = get_program(ast, OpenCLRenderer()).src
  assert "as_uchar" not in src, src


def test_bitcast_between_item_sizes(device):
  """As torch's view(dtype) (and numpy's view, the reference here): the last axis holds the same bytes, its size
  scaled by the item sizes' ratio (little-endian). The result is a copy here (torch's is a view), so writing into
  it raises instead of a write that would not reach the source."""
  rng = np.random.RandomState(3)
  cases = [(rng.randint(0, 256, (3, 16)).astype(np.uint8), np.int64), (rng.randint(0, 256, (2, 4)).astype(np.uint8), np.float32),
           (rng.randn(2, 3).astype(np.float32), np.uint8), (rng.randn(2, 3).astype(np.float32), np.int16),
           (rng.randn(4).astype(np.float64), np.int32), (rng.randn(2, 4).astype(np.float16), np.float32),
           (rng.randn(2, 2).astype(np.float32), np.float16), (rng.randint(0, 2, (2, 8)).astype(bool), np.int64)]
  for arr, np_dt in cases:
    dt = dtypes.from_np(np_dt)
    got, want = Tensor(arr, device=device).bitcast(dt), arr.view(np_dt)
    assert got.shape == want.shape and got.dtype == dt, (arr.dtype, np_dt, got.shape, want.shape)
    np.testing.assert_array_equal(got.numpy().view(np.uint8), want.view(np.uint8))
  bf = rng.randn(2, 2).astype(np.float32)
  halves_as_float32 = (bf.view(np.uint16).astype(np.uint32) << 16).view(np.float32)  # a bfloat16 is a float32's top half
  np.testing.assert_array_equal(Tensor(bf, device=device).bitcast(dtypes.bfloat16).numpy(), halves_as_float32)
  resized = Tensor(np.zeros(8, np.uint8), device=device).bitcast(dtypes.int64)
  with pytest.raises(RuntimeError, match="not a view"): resized.assign(Tensor([1], dtype=dtypes.int64, device=device))
  with pytest.raises(RuntimeError, match="not a view"): resized[0] = 5
  with pytest.raises(ValueError, match="multiple of 4"): Tensor(np.zeros(6, np.uint8), device=device).bitcast(dtypes.int32)
  with pytest.raises(ValueError, match="0-d"): Tensor(1.0, device=device).bitcast(dtypes.uint8)


def test_contiguous_clone_detach(device):
  a = rand(*SHAPE, seed=26)
  t = Tensor(a, device=device)
  check(t.T.contiguous(), a.T)
  check(t.clone() * 2, a * 2)
  check(t.detach() + 1, a + 1)


def test_large_odd_shapes(device):
  # sizes that don't divide any vector width or work-group size
  a, b = rand(37, 129, seed=27), rand(129, seed=28)
  ta, tb = Tensor(a, device=device), Tensor(b, device=device)
  check(ta * tb + 1, a * b + 1)
  check(ta.sum(0), a.sum(0), rtol=1e-5, atol=1e-5)
  check(ta.sum(1), a.sum(1), rtol=1e-5, atol=1e-5)
  check(ta.max(1), a.max(1))
  check(ta.T.sum(1), a.T.sum(1), rtol=1e-5, atol=1e-5)
  check((ta * tb).sum(), (a * b).astype(np.float64).sum().astype(np.float32), rtol=1e-4, atol=1e-4)


def test_abs_relu_int(device):
  a = np.array([-5, 0, 3, -2**31 + 1], dtype=np.int32)
  check(Tensor(a, device=device).abs(), np.abs(a), dtype=dtypes.int32)
  check(Tensor(a, device=device).relu(), np.maximum(a, 0), dtype=dtypes.int32)


def test_cast_basic(device):
  a = np.array([-2.7, -0.5, 0.0, 0.5, 2.7, 3.0], dtype=np.float32)
  t = Tensor(a, device=device)
  check(t.cast(dtypes.int32), a.astype(np.int32), dtype=dtypes.int32)
  check(t.cast(dtypes.bool), a.astype(np.bool_), dtype=dtypes.bool)
  check(t.cast(dtypes.float64), a.astype(np.float64), dtype=dtypes.float64)
  check(t.int().float(), a.astype(np.int32).astype(np.float32), dtype=dtypes.float32)
  check(t.cast("float16"), a.astype(np.float16), dtype=dtypes.float16)


# ---------------------------------------------------------------- pow
def test_pow_scalar_exponents(device):
  a = rand(*SHAPE, lo=0.1, hi=3, seed=8)
  t = Tensor(a, device=device)
  for e in [0, 1, 2, 3, -1, -2, 0.5, 1.5, -0.5, 2.5, 10]:
    check(t ** e, np.power(a, np.float32(e)), rtol=1e-4, atol=1e-6, dtype=dtypes.float32)


def test_pow_negative_base(device):
  a = np.array([-2.0, -1.5, -3.0, 0.0, 2.0], dtype=np.float32)
  t = Tensor(a, device=device)
  for e in [2, 3, -1]:
    with np.errstate(divide="ignore"):
      check(t ** e, np.power(a, np.float32(e)), rtol=1e-4, dtype=dtypes.float32)
  with np.errstate(invalid="ignore"):
    check(t ** 0.5, np.power(a, np.float32(0.5)), rtol=1e-4)  # nan for negative bases



def test_pow_exponent_as_pytorch_holds_it(device):
  """A number exponent's parity is the number's own (float32 rounds 2**31 + 3 to the even 2**31: -2.5 ** it was
  +inf), and 2**31 + 0.5 is no integer (a negative base gives NaN). Half float tensors take the exponent as their
  dtype holds it, as PyTorch does: float16 x ** 1e-8 is x ** 0 = 1 (NaN at negative x before), ** 2049 is ** 2048;
  one it can't hold raises; float16 x ** 0.5 is IEEE pow's ((-inf) ** 0.5 = inf), bfloat16's sqrt's (NaN)."""
  x = Tensor([-2.5, -1.0, 1.5], device=device)
  np.testing.assert_array_equal((x ** (2**31 + 3)).numpy(), [-np.inf, -1.0, np.inf])
  np.testing.assert_array_equal((x ** (2**24 + 1)).numpy(), [-np.inf, -1.0, np.inf])
  assert np.isnan((x ** (2**31 + 0.5)).numpy()[:2]).all()
  if not Device[device].supports_dtype(dtypes.float16): return
  h = Tensor(np.array([-2.5, -1.0, 0.0, 1.5, -np.inf], np.float16), device=device)
  np.testing.assert_array_equal((h ** 1e-8).numpy(), [1, 1, 1, 1, 1])
  np.testing.assert_array_equal((h ** 2049).numpy()[:2], [np.inf, 1.0])
  np.testing.assert_array_equal((h ** 0.5).numpy()[2:], [0.0, np.float16(1.5) ** 0.5, np.inf])
  with pytest.raises(OverflowError, match="exponent"): h ** 70000.5
  b = Tensor(np.array([-np.inf], np.float32), device=device).cast(dtypes.bfloat16)
  assert np.isnan((b ** 0.5).float().numpy()).all()


def test_rpow_of_an_int_tensor_wraps_the_base(device):
  """300 ** a uint8 tensor is 44 ** it, as PyTorch's (the base wraps into the dtype as the other operators' numbers
  do; it raised OverflowError)."""
  x = Tensor(np.array([0, 1, 2], np.uint8), device=device)
  np.testing.assert_array_equal((300 ** x).numpy(), [1, 44, 144])
  np.testing.assert_array_equal(((-200) ** Tensor(np.array([1, 2], np.int8), device=device)).numpy(), [56, 64])

def test_pow_tensor_exponent(device):
  a = np.array([-2.0, -2.0, -2.0, 0.0, 0.0, 3.0, 0.5, -1.0, 4.0, 0.0], dtype=np.float32)
  b = np.array([3.0, 2.0, 0.5, 2.0, 0.0, -1.0, 2.5, 0.0, -0.5, -1.0], dtype=np.float32)
  with np.errstate(all="ignore"):
    check(Tensor(a, device=device) ** Tensor(b, device=device), np.power(a, b), rtol=1e-4)


def test_rpow(device):
  b = rand(*SHAPE, lo=-3, hi=3, seed=9)
  check(2 ** Tensor(b, device=device), np.power(np.float32(2), b), rtol=1e-4, dtype=dtypes.float32)
  check(0.5 ** Tensor(b, device=device), np.power(np.float32(0.5), b), rtol=1e-4, dtype=dtypes.float32)


def test_pow_int(device):
  a = np.array([-3, -1, 0, 2, 5], dtype=np.int32)
  check(Tensor(a, device=device) ** 2, a ** 2, dtype=dtypes.int32)
  check(Tensor(a, device=device) ** 3, a ** 3, dtype=dtypes.int32)


# ---------------------------------------------------------------- reductions
RED_SHAPE = (2, 3, 4)
AXES = [None, 0, 1, 2, -1, -2, (0, 1), (0, 2), (1, 2), (-1, 0), (0, 1, 2)]
REDUCE = {"sum": np.sum, "max": np.max, "min": np.min, "mean": np.mean}


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=[str(a) for a in AXES])
@pytest.mark.parametrize("op", REDUCE)
def test_reduce(device, op, axis, keepdim):
  a = rand(*RED_SHAPE, seed=10)
  out = getattr(Tensor(a, device=device), op)(axis=axis, keepdim=keepdim)
  check(out, REDUCE[op](a, axis=axis, keepdims=keepdim), rtol=1e-5, atol=1e-6, dtype=dtypes.float32)


@pytest.mark.parametrize("op", REDUCE)
def test_reduce_positional_axis(device, op):
  a = rand(*RED_SHAPE, seed=10)
  check(getattr(Tensor(a, device=device), op)(1), REDUCE[op](a, axis=1))
  check(getattr(Tensor(a, device=device), op)(), REDUCE[op](a))


@pytest.mark.parametrize("axis", [None, 0, (1, 2), -1])
def test_reduce_int(device, axis):
  a = np.random.default_rng(11).integers(-1000, 1000, RED_SHAPE).astype(np.int32)
  t = Tensor(a, device=device)
  check(t.sum(axis), np.sum(a, axis=axis, dtype=np.int64), dtype=dtypes.int64)
  check(t.max(axis), np.max(a, axis=axis), dtype=dtypes.int32)
  check(t.min(axis), np.min(a, axis=axis), dtype=dtypes.int32)
  check(t.mean(axis), np.mean(a, axis=axis).astype(np.float32), dtype=dtypes.float32)


def test_reduce_bool(device):
  a = rand(*RED_SHAPE, seed=12) > 0
  t = Tensor(a, device=device)
  check(t.sum(), np.sum(a, dtype=np.int64), dtype=dtypes.int64)
  check(t.sum(1), np.sum(a, axis=1, dtype=np.int64), dtype=dtypes.int64)
  check(t.max(1), np.max(a, axis=1), dtype=dtypes.bool)
  check(t.min(1), np.min(a, axis=1), dtype=dtypes.bool)


def test_reduce_int_extremes(device):
  a = np.array([[-2**31, 2**31 - 1, 0], [5, -5, -2**31]], dtype=np.int32)
  t = Tensor(a, device=device)
  check(t.max(1), a.max(1), dtype=dtypes.int32)
  check(t.min(1), a.min(1), dtype=dtypes.int32)
  check(t.sum(1), a.sum(1, dtype=np.int64), dtype=dtypes.int64)  # int64 accumulation: no overflow


def test_reduce_large(device):
  a = rand(1000, 33, seed=13)
  t = Tensor(a, device=device)
  check(t.sum(), a.astype(np.float64).sum().astype(np.float32), rtol=1e-4, atol=1e-4)
  check(t.sum(0), a.astype(np.float64).sum(0).astype(np.float32), rtol=1e-4, atol=1e-4)
  check(t.max(0), a.max(0))
  check(t.min(), a.min())


def test_reduce_of_constant_and_broadcast(device):
  # every element counts, even when they are all one value read through a broadcast
  check(Tensor.ones(4, device=device).sum(), np.array(4.0, np.float32))
  check(Tensor.ones(2, 3, device=device).sum(1), np.full(2, 3.0, np.float32))
  check(Tensor.full((3,), 2.0, device=device).prod(), np.array(8.0, np.float32))
  check(Tensor.ones(4, device=device).mean(), np.array(1.0, np.float32))
  check(Tensor.ones(4, dtype=dtypes.int32, device=device).sum(), np.array(4, np.int64), dtype=dtypes.int64)
  check(Tensor([1.0, 2.0], device=device).reshape(2, 1).expand(2, 3).sum(1), np.array([3.0, 6.0], np.float32))
  check(Tensor(np.zeros((2, 0), np.float32), device=device).pad(((0, 0), (3, 0)), value=1.5).sum(), np.array(9.0, np.float32))


def test_reduce_then_elementwise(device):
  a = rand(*RED_SHAPE, seed=10)
  t = Tensor(a, device=device)
  check(t.sum(1) + 1, a.sum(1) + 1)
  check(t - t.max(-1, keepdim=True), a - a.max(-1, keepdims=True))
  check((t.exp() / t.exp().sum(-1, keepdim=True)).sum(-1), np.ones((2, 3), np.float32), rtol=1e-5)


# ---------------------------------------------------------------- movement
MOVE_SRC = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
MOVEMENT = {  # name: (teeny, numpy)
  "reshape": (lambda t: t.reshape(4, 6), lambda a: a.reshape(4, 6)),
  "reshape_tuple": (lambda t: t.reshape((6, 4)), lambda a: a.reshape(6, 4)),
  "reshape_neg1": (lambda t: t.reshape(-1, 8), lambda a: a.reshape(-1, 8)),
  "reshape_neg1_mid": (lambda t: t.reshape(2, -1, 2), lambda a: a.reshape(2, -1, 2)),
  "reshape_flat": (lambda t: t.reshape(-1), lambda a: a.reshape(-1)),
  "view": (lambda t: t.view(3, 8), lambda a: a.reshape(3, 8)),
  "permute": (lambda t: t.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
  "permute_tuple": (lambda t: t.permute((1, 2, 0)), lambda a: a.transpose(1, 2, 0)),
  "permute_neg": (lambda t: t.permute(-1, -3, -2), lambda a: a.transpose(2, 0, 1)),
  "transpose": (lambda t: t.transpose(0, 2), lambda a: a.swapaxes(0, 2)),
  "transpose_neg": (lambda t: t.transpose(-1, -2), lambda a: a.swapaxes(-1, -2)),
  "T": (lambda t: t.T, lambda a: a.T),
  "expand": (lambda t: t[:, :1].expand(2, 5, 4), lambda a: np.broadcast_to(a[:, :1], (2, 5, 4))),
  "expand_new_dims": (lambda t: t.expand(3, 2, 3, 4), lambda a: np.broadcast_to(a, (3, 2, 3, 4))),
  "expand_neg1": (lambda t: t[:1].expand(-1, 3, -1).expand(4, -1, -1, -1), lambda a: np.broadcast_to(a[:1], (4, 1, 3, 4))),
  "pad_pairs": (lambda t: t.pad(((1, 0), (0, 2), (1, 1))), lambda a: np.pad(a, ((1, 0), (0, 2), (1, 1)))),
  "pad_none": (lambda t: t.pad((None, (2, 1), None)), lambda a: np.pad(a, ((0, 0), (2, 1), (0, 0)))),
  "pad_flat": (lambda t: t.pad((1, 2)), lambda a: np.pad(a, ((0, 0), (0, 0), (1, 2)))),
  "pad_flat2": (lambda t: t.pad((1, 2, 3, 0)), lambda a: np.pad(a, ((0, 0), (3, 0), (1, 2)))),
  "pad_value": (lambda t: t.pad(((0, 1), (1, 0), (2, 2)), value=-1.5),
                lambda a: np.pad(a, ((0, 1), (1, 0), (2, 2)), constant_values=-1.5)),
  "pad_flat_value": (lambda t: t.pad((1, 1), value=7.0), lambda a: np.pad(a, ((0, 0), (0, 0), (1, 1)), constant_values=7)),
  "pad_negative_crops": (lambda t: t.pad((-1, 2)), lambda a: np.pad(a[..., 1:], ((0, 0), (0, 0), (0, 2)))),
  "shrink": (lambda t: t.shrink(((0, 1), (1, 3), (1, 4))), lambda a: a[0:1, 1:3, 1:4]),
  "shrink_none": (lambda t: t.shrink((None, (2, 3), None)), lambda a: a[:, 2:3, :]),
  "flip0": (lambda t: t.flip(0), lambda a: np.flip(a, 0)),
  "flip_neg": (lambda t: t.flip(-1), lambda a: np.flip(a, -1)),
  "flip_many": (lambda t: t.flip((0, 2)), lambda a: np.flip(a, (0, 2))),
  "flip_all": (lambda t: t.flip(), lambda a: np.flip(a)),
  "squeeze_all": (lambda t: t.reshape(1, 2, 1, 12, 1).squeeze(), lambda a: a.reshape(2, 12)),
  "squeeze_dim": (lambda t: t.reshape(1, 2, 1, 12).squeeze(2), lambda a: a.reshape(1, 2, 12)),
  "squeeze_neg": (lambda t: t.reshape(2, 12, 1).squeeze(-1), lambda a: a.reshape(2, 12)),
  "squeeze_not_one": (lambda t: t.squeeze(1), lambda a: a),
  "unsqueeze": (lambda t: t.unsqueeze(1), lambda a: np.expand_dims(a, 1)),
  "unsqueeze_neg": (lambda t: t.unsqueeze(-1), lambda a: np.expand_dims(a, -1)),
  "unsqueeze_front": (lambda t: t.unsqueeze(0), lambda a: a[None]),
  "flatten": (lambda t: t.flatten(), lambda a: a.reshape(-1)),
  "flatten_from1": (lambda t: t.flatten(1), lambda a: a.reshape(2, 12)),
  "flatten_range": (lambda t: t.flatten(0, 1), lambda a: a.reshape(6, 4)),
  "chain": (lambda t: t.permute(1, 0, 2).reshape(3, 8).flip(1)[:, 1::3].pad(((1, 1), (0, 1))),
            lambda a: np.pad(np.flip(a.transpose(1, 0, 2).reshape(3, 8), 1)[:, 1::3], ((1, 1), (0, 1)))),
}


@pytest.mark.parametrize("name", MOVEMENT)
def test_movement(device, name):
  f, npf = MOVEMENT[name]
  check(f(Tensor(MOVE_SRC, device=device)), np.array(npf(MOVE_SRC)), dtype=dtypes.float32)


def test_movement_int_and_bool(device):
  a = MOVE_SRC.astype(np.int32)
  check(Tensor(a, device=device).permute(2, 0, 1).pad(((1, 0), None, None), value=-3), np.pad(a.transpose(2, 0, 1), ((1, 0), (0, 0), (0, 0)), constant_values=-3))
  b = a % 3 == 0
  check(Tensor(b, device=device).flip(1).pad(((0, 0), (1, 1), (0, 0))), np.pad(np.flip(b, 1), ((0, 0), (1, 1), (0, 0))), dtype=dtypes.bool)


# ---------------------------------------------------------------- indexing
IDX_SRC = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
E = Ellipsis
INDICES = [
  1, -1, (2, 3), (-1, -2, -3), (1, 2, 3),
  slice(1, 3), slice(None, None, 2), slice(None, None, -1), slice(None, None, -2), slice(-3, -1), slice(3, 0, -1),
  slice(1, 100), slice(-100, 2), slice(5, 1), slice(10, None), slice(None, None, 3),
  (slice(None), slice(1, None, 2)), (slice(1, -1), slice(None, None, -3)), (slice(None, None, -1), 2, slice(4, 0, -2)),
  None, (None, 1), (slice(None), None, 2), (E, 1), (E, slice(None, None, -1), None), (1, E), (1, E, 2), (E,), (None, E, None),
  (0, slice(None), 0), (-1, slice(2, None, 2), slice(None, -2, 3)), (slice(None), -1, slice(None, None, -4)),
]


@pytest.mark.parametrize("index", INDICES, ids=[repr(i) for i in INDICES])
def test_getitem(device, index):
  check(Tensor(IDX_SRC, device=device)[index], np.array(IDX_SRC[index]), dtype=dtypes.float32)


def test_getitem_numpy_int(device):
  t = Tensor(IDX_SRC, device=device)
  check(t[np.int64(2), np.int32(-1)], IDX_SRC[2, -1])


def test_getitem_chained(device):
  t = Tensor(IDX_SRC, device=device)
  check(t[1:][::-1][:, 2][::2], IDX_SRC[1:][::-1][:, 2][::2])


# ---------------------------------------------------------------- non-contiguous views feeding compute
VA, VB = rand(3, 4, seed=14), rand(4, 3, seed=15)
VIEWS_ELEMENTWISE = {  # name: (teeny on (a, b), numpy on (a, b))
  "permute_add": (lambda a, b: a.permute(1, 0) + b, lambda a, b: a.T + b),
  "T_mul_exp": (lambda a, b: a.T * a.T.exp(), lambda a, b: a.T * np.exp(a.T)),
  "flip_add": (lambda a, b: a + a.flip(1), lambda a, b: a + np.flip(a, 1)),
  "flip_both_sub": (lambda a, b: a.flip((0, 1)) - a, lambda a, b: np.flip(a) - a),
  "strided_slices": (lambda a, b: a[:, ::2] * b[::2, :].T, lambda a, b: a[:, ::2] * b[::2, :].T),
  "negative_step_slice": (lambda a, b: a[::-1, 1:3] + 1, lambda a, b: a[::-1, 1:3] + 1),
  "expand_mul": (lambda a, b: a[:1].expand(3, 4) * a, lambda a, b: np.broadcast_to(a[:1], (3, 4)) * a),
  "pad_add": (lambda a, b: a.pad(((1, 0), (0, 1))) + 1, lambda a, b: np.pad(a, ((1, 0), (0, 1))) + 1),
  "pad_value_exp": (lambda a, b: a.pad(((1, 0), (0, 1)), value=2.0).exp(),
                    lambda a, b: np.exp(np.pad(a, ((1, 0), (0, 1)), constant_values=2.0))),
  "elementwise_then_pad": (lambda a, b: (a + 1).pad(((0, 1), (2, 0))) * 3, lambda a, b: np.pad(a + 1, ((0, 1), (2, 0))) * 3),
  "reshape_T_add": (lambda a, b: a.reshape(2, 6).T + b.reshape(6, 2), lambda a, b: a.reshape(2, 6).T + b.reshape(6, 2)),
  "T_reshape": (lambda a, b: a.T.reshape(12) * 2, lambda a, b: a.T.reshape(12) * 2),
  "T_reshape_flip": (lambda a, b: (a * 2).T.reshape(2, 6).flip(0), lambda a, b: np.flip((a * 2).T.reshape(2, 6), 0)),
}
VIEWS_REDUCE = {
  "T_sum": (lambda a, b: a.T.sum(1), lambda a, b: a.T.sum(1)),
  "T_max": (lambda a, b: a.T.max(0), lambda a, b: a.T.max(0)),
  "flip_sum": (lambda a, b: a.flip(1).sum(0), lambda a, b: np.flip(a, 1).sum(0)),
  "strided_sum": (lambda a, b: a[:, ::2].sum(1), lambda a, b: a[:, ::2].sum(1)),
  "negative_step_max": (lambda a, b: a[::-2, 1:].max(1), lambda a, b: a[::-2, 1:].max(1)),
  "pad_value_max": (lambda a, b: a.pad(((0, 0), (1, 1)), value=5.0).max(1),
                    lambda a, b: np.pad(a, ((0, 0), (1, 1)), constant_values=5).max(1)),
  "pad_min": (lambda a, b: a.pad(((1, 1), (0, 0))).min(0), lambda a, b: np.pad(a, ((1, 1), (0, 0))).min(0)),
  "pad_sum": (lambda a, b: a.pad(((2, 0), (0, 3))).sum(), lambda a, b: np.pad(a, ((2, 0), (0, 3))).sum()),
  "expand_sum_expanded_axis": (lambda a, b: a[:, None, :].expand(3, 5, 4).sum(1),
                               lambda a, b: np.broadcast_to(a[:, None, :], (3, 5, 4)).sum(1)),
  "expand_sum_other_axis": (lambda a, b: a[:, None, :].expand(3, 5, 4).sum(2),
                            lambda a, b: np.broadcast_to(a[:, None, :], (3, 5, 4)).sum(2)),
  "expand_max": (lambda a, b: a[:, None, :].expand(3, 5, 4).max(1), lambda a, b: a),
  "reshape_T_sum": (lambda a, b: a.reshape(4, 3).T.sum(0), lambda a, b: a.reshape(4, 3).T.sum(0)),
  "T_mul_sum": (lambda a, b: (a.T * b).sum(0), lambda a, b: (a.T * b).sum(0)),
  "flip_sub_abs_max": (lambda a, b: (a.flip(0) - a).abs().max(), lambda a, b: np.abs(np.flip(a, 0) - a).max()),
}


@pytest.mark.parametrize("name", VIEWS_ELEMENTWISE)
def test_views_feed_elementwise(device, name):
  f, npf = VIEWS_ELEMENTWISE[name]
  check(f(Tensor(VA, device=device), Tensor(VB, device=device)), npf(VA, VB), rtol=1e-5)


@pytest.mark.parametrize("name", VIEWS_REDUCE)
def test_views_feed_reduce(device, name):
  f, npf = VIEWS_REDUCE[name]
  check(f(Tensor(VA, device=device), Tensor(VB, device=device)), npf(VA, VB), rtol=1e-5)


def test_reduce_feeds_views(device):
  a = rand(*RED_SHAPE, seed=10)
  t = Tensor(a, device=device)
  check(t.sum(1).T, a.sum(1).T)
  check(t.max(2).flip(0), np.flip(a.max(2), 0))
  check(t.sum(0).pad(((1, 0), (0, 1))), np.pad(a.sum(0), ((1, 0), (0, 1))))
  check(t.sum(2)[:, ::2], a.sum(2)[:, ::2])
  check(t.sum(2, keepdim=True).expand(2, 3, 4) * t, np.broadcast_to(a.sum(2, keepdims=True), (2, 3, 4)) * a)
  check(t.sum(0).reshape(4, 3).sum(1), a.sum(0).reshape(4, 3).sum(1))


def test_realized_view_reused(device):
  a = rand(3, 4, seed=14)
  t = Tensor(a, device=device)
  v = t.T.realize()
  check(v[1:], a.T[1:])
  check(v + t.T, a.T + a.T)


# ---------------------------------------------------------------- broadcasting
BROADCAST = [((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((1,), (3, 4)), ((), (2, 3)), ((5, 1, 3), (4, 1)),
             ((2, 1, 4), (2, 3, 1)), ((3, 4), (3, 4)), ((1, 1), (1,)), ((4, 1), ())]


@pytest.mark.parametrize("sa,sb", BROADCAST, ids=[f"{a}x{b}" for a, b in BROADCAST])
def test_broadcast(device, sa, sb):
  a, b = rand(*sa, seed=16), rand(*sb, seed=17)
  ta, tb = Tensor(a, device=device), Tensor(b, device=device)
  check(ta + tb, a + b)
  check(tb * ta, b * a)
  check(ta < tb, a < b)


# ---------------------------------------------------------------- creation
def test_zeros_ones_full(device):
  check(Tensor.zeros(2, 3, device=device), np.zeros((2, 3), np.float32), dtype=dtypes.float32)
  check(Tensor.zeros((2, 3), device=device), np.zeros((2, 3), np.float32), dtype=dtypes.float32)
  check(Tensor.ones(4, device=device), np.ones(4, np.float32), dtype=dtypes.float32)
  check(Tensor.ones(2, 3, dtype=dtypes.int32, device=device), np.ones((2, 3), np.int32), dtype=dtypes.int32)
  check(Tensor.zeros(3, dtype="bool", device=device), np.zeros(3, np.bool_), dtype=dtypes.bool)
  check(Tensor.full((2, 3), 7, device=device), np.full((2, 3), 7, np.int32), dtype=dtypes.int32)
  check(Tensor.full((2, 3), 2.5, device=device), np.full((2, 3), 2.5, np.float32), dtype=dtypes.float32)
  check(Tensor.full((2,), True, device=device), np.full((2,), True), dtype=dtypes.bool)
  check(Tensor.full((2, 2), 3, dtype=dtypes.float16, device=device), np.full((2, 2), 3, np.float16), dtype=dtypes.float16)
  check(Tensor.full((), 4.0, device=device), np.array(4.0, np.float32), dtype=dtypes.float32)
  check(Tensor.zeros(device=device), np.zeros((), np.float32))


def test_like(device):
  t = Tensor(rand(2, 3, seed=18), device=device)
  check(t.zeros_like(), np.zeros((2, 3), np.float32), dtype=dtypes.float32)
  check(t.ones_like(), np.ones((2, 3), np.float32), dtype=dtypes.float32)
  check(t.full_like(-2.0), np.full((2, 3), -2.0, np.float32), dtype=dtypes.float32)
  check(t.ones_like(dtype=dtypes.int32), np.ones((2, 3), np.int32), dtype=dtypes.int32)
  ti = Tensor(np.arange(6, dtype=np.int32).reshape(3, 2), device=device)
  check(ti.zeros_like(), np.zeros((3, 2), np.int32), dtype=dtypes.int32)
  check(ti.full_like(5), np.full((3, 2), 5, np.int32), dtype=dtypes.int32)
  assert t.zeros_like().device == device


ARANGE = [(5,), (2, 10), (2, 10, 3), (5, -3, -2), (10, 0, -1), (0,), (3, 3), (5, 2)]


@pytest.mark.parametrize("args", ARANGE, ids=[str(a) for a in ARANGE])
def test_arange_int(device, args):
  check(Tensor.arange(*args, device=device), np.arange(*args, dtype=np.int32), dtype=dtypes.int32)


def test_arange_float(device):
  check(Tensor.arange(0, 1, 0.25, device=device), np.arange(0, 1, 0.25, dtype=np.float32), dtype=dtypes.float32)
  check(Tensor.arange(5.0, device=device), np.arange(5.0, dtype=np.float32), dtype=dtypes.float32)
  check(Tensor.arange(-1, 1, 0.5, device=device), np.arange(-1, 1, 0.5, dtype=np.float32), dtype=dtypes.float32)
  check(Tensor.arange(4, dtype=dtypes.float32, device=device), np.arange(4, dtype=np.float32), dtype=dtypes.float32)
  check(Tensor.arange(4, device=device) * 2 + 1, np.arange(4, dtype=np.int32) * 2 + 1)
  # start + i * step in float64, rounded once, as PyTorch: numpy's float32 arange(0, 1, 0.1)[9] is 0.90000004 (0.9 here)
  np.testing.assert_array_equal(Tensor.arange(0, 1, 0.1, device=device).numpy(), (np.arange(10) * 0.1).astype(np.float32))
  np.testing.assert_array_equal(Tensor.arange(0, 1, 0.1, dtype=dtypes.float16, device=device).numpy(), (np.arange(10) * 0.1).astype(np.float16))


@pytest.mark.parametrize("n,m", [(3, None), (1, None), (2, 4), (4, 2), (0, None), (3, 0)])
def test_eye(device, n, m):
  check(Tensor.eye(n, m, device=device), np.eye(n, m, dtype=np.float32), dtype=dtypes.float32)


def test_eye_dtype(device):
  check(Tensor.eye(3, dtype=dtypes.int32, device=device), np.eye(3, dtype=np.int32), dtype=dtypes.int32)


def test_empty(device):
  t = Tensor.empty(2, 3, device=device)
  assert t.shape == (2, 3) and t.dtype == dtypes.float32 and t.device == device
  assert t.numpy().shape == (2, 3)
  t = Tensor.empty((4,), dtype=dtypes.int32, device=device)
  assert t.shape == (4,) and t.dtype == dtypes.int32 and t.numpy().dtype == np.int32
  assert Tensor.empty(0, 3, device=device).numpy().shape == (0, 3)
  t = Tensor.invalids(10, dtype="int", device=device)  # tinygrad's name: set before read, as empty's
  t[2:5] = 2
  assert t.shape == (10,) and t.dtype == dtypes.int32 and t[2:5].tolist() == [2, 2, 2]


def test_from_lists_and_scalars(device):
  check(Tensor([[1, 2], [3, 4]], device=device), np.array([[1, 2], [3, 4]], np.int32), dtype=dtypes.int32)
  check(Tensor([1.5, 2], device=device), np.array([1.5, 2], np.float32), dtype=dtypes.float32)
  check(Tensor([True, False], device=device), np.array([True, False]), dtype=dtypes.bool)
  check(Tensor(3.5, device=device), np.array(3.5, np.float32), dtype=dtypes.float32)
  check(Tensor(7, device=device), np.array(7, np.int32), dtype=dtypes.int32)
  check(Tensor([], device=device), np.zeros((0,), np.float32), dtype=dtypes.float32)
  check(Tensor([1, 2], dtype=dtypes.float32, device=device), np.array([1, 2], np.float32), dtype=dtypes.float32)
  check(Tensor(np.arange(3, dtype=np.int64), device=device), np.arange(3), dtype=dtypes.int64)
  check(Tensor(np.arange(6).reshape(2, 3)[:, ::-1], device=device), np.arange(6).reshape(2, 3)[:, ::-1])  # non-contiguous numpy


# ---------------------------------------------------------------- reading data
def test_item_tolist_numpy(device):
  assert Tensor(3.5, device=device).item() == 3.5 and type(Tensor(3.5, device=device).item()) is float
  assert Tensor([7], device=device).item() == 7 and type(Tensor([7], device=device).item()) is int
  assert Tensor([[True]], device=device).item() is True
  assert (Tensor([2.0], device=device) * 3).item() == 6.0
  assert Tensor([[1, 2], [3, 4]], device=device).tolist() == [[1, 2], [3, 4]]
  assert Tensor([1.5, -2.0], device=device).tolist() == [1.5, -2.0]
  assert Tensor(2, device=device).tolist() == 2
  assert Tensor.zeros(2, 0, device=device).tolist() == [[], []]
  a = rand(2, 3, seed=19)
  out = Tensor(a, device=device).numpy()
  assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (2, 3)
  np.testing.assert_array_equal(out, a)


def test_numpy_is_a_copy(device):
  a = np.arange(4, dtype=np.float32)
  t = Tensor(a, device=device)
  a[0] = 100  # the tensor holds its own copy of the data
  out = t.numpy()
  assert out[0] == 0
  out[1] = 50  # writing the returned array does not change the tensor
  assert t.numpy()[1] == 1


def test_len_shape_numel(device):
  t = Tensor(IDX_SRC, device=device)
  assert len(t) == 4 and t.shape == (4, 5, 6) and t.numel() == 120 and t.ndim == 3
  assert t.size() == (4, 5, 6) and t.size(1) == 5 and t.size(-1) == 6


# ---------------------------------------------------------------- 0-d tensors
def test_zero_dim_elementwise(device):
  a, b = Tensor(2.0, device=device), Tensor(3.0, device=device)
  check(a + b, np.array(5.0, np.float32))
  check(a * b - 1, np.array(5.0, np.float32))
  check(a.exp(), np.exp(np.float32(2.0)), rtol=1e-4)
  check(a < b, np.array(True))
  check(Tensor(-7, device=device) // 2, np.array(-4, np.int32))
  m = rand(2, 3, seed=20)
  check(a * Tensor(m, device=device), np.float32(2.0) * m)
  assert (a + b).shape == () and (a + b).item() == 5.0


def test_zero_dim_movement(device):
  a = Tensor(2.5, device=device)
  check(a.reshape(1, 1), np.full((1, 1), 2.5, np.float32))
  check(a.reshape(()), np.array(2.5, np.float32))
  check(a.expand(3, 2), np.full((3, 2), 2.5, np.float32))
  check(a.unsqueeze(0), np.array([2.5], np.float32))
  check(a.flatten(), np.array([2.5], np.float32))
  check(a[None, None], np.full((1, 1), 2.5, np.float32))
  check(a[...], np.array(2.5, np.float32))
  check(Tensor([4.0], device=device).reshape(()), np.array(4.0, np.float32))
  check(Tensor([[4.0]], device=device).squeeze(), np.array(4.0, np.float32))
  check(Tensor([1.0, 2.0], device=device)[1], np.array(2.0, np.float32))


def test_zero_dim_reduce(device):
  a = Tensor(2.5, device=device)
  for op in REDUCE:
    check(getattr(a, op)(), np.array(2.5, np.float32))
    check(getattr(a, op)(keepdim=True), np.array(2.5, np.float32))
  check(a.sum(0), np.array(2.5, np.float32))   # PyTorch accepts dim 0 / -1 for 0-d tensors
  check(a.max(-1), np.array(2.5, np.float32))
  check(Tensor(3, device=device).sum(), np.array(3, np.int64), dtype=dtypes.int64)


# ---------------------------------------------------------------- empty tensors
def test_empty_elementwise(device):
  a = np.zeros((0, 3), np.float32)
  t = Tensor(a, device=device)
  check(t + 1, a + 1)
  check(t * t, a)
  check(t.exp(), a)
  check(t < 1, a < 1)
  check(t + Tensor(rand(1, 3, seed=21), device=device), np.zeros((0, 3), np.float32))
  check(Tensor.zeros(2, 0, 3, device=device).sqrt(), np.zeros((2, 0, 3), np.float32))


def test_empty_movement(device):
  t = Tensor(np.zeros((2, 0, 3), np.float32), device=device)
  check(t.reshape(0, 6), np.zeros((0, 6), np.float32))
  check(t.reshape(3, -1, 2), np.zeros((3, 0, 2), np.float32))
  check(t.permute(2, 0, 1), np.zeros((3, 2, 0), np.float32))
  check(t.flip(0), np.zeros((2, 0, 3), np.float32))
  check(t.expand(4, 2, 0, 3), np.zeros((4, 2, 0, 3), np.float32))
  check(t[:, :, 1:], np.zeros((2, 0, 2), np.float32))
  check(t.pad(((0, 0), (0, 0), (1, 1))), np.zeros((2, 0, 5), np.float32))
  check(Tensor(IDX_SRC, device=device)[2:2], IDX_SRC[2:2])
  check(Tensor(IDX_SRC, device=device)[:, 3:1], IDX_SRC[:, 3:1])


def test_pad_empty_axis(device):
  # padding an empty axis makes data out of nothing: all pad value
  t = Tensor(np.zeros((2, 0, 3), np.float32), device=device)
  check(t.pad(((0, 0), (1, 1), (0, 0)), value=3.0), np.full((2, 2, 3), 3.0, np.float32))
  check(t.pad(((0, 0), (1, 0), (0, 0))), np.zeros((2, 1, 3), np.float32))


def test_empty_reduce(device):
  a = np.zeros((0, 3), np.float32)
  t = Tensor(a, device=device)
  check(t.sum(), np.array(0.0, np.float32), dtype=dtypes.float32)
  check(t.sum(0), np.zeros(3, np.float32))
  check(t.sum(1), np.zeros(0, np.float32))
  check(t.sum(0, keepdim=True), np.zeros((1, 3), np.float32))
  check(t.max(1), np.zeros(0, np.float32))  # reducing a nonempty axis of an empty tensor is fine
  check(Tensor(np.zeros((0,), np.int32), device=device).sum(), np.array(0, np.int64), dtype=dtypes.int64)
  check(Tensor.zeros(2, 0, 3, device=device).sum((1, 2)), np.zeros(2, np.float32))
  with np.errstate(invalid="ignore"):
    check(t.mean(), np.array(np.nan, np.float32))
  check(t.sum() + 1, np.array(1.0, np.float32))


def test_empty_max_raises(device):
  t = Tensor(np.zeros((0, 3), np.float32), device=device)
  with pytest.raises(ValueError): t.max()
  with pytest.raises(ValueError): t.max(0)
  with pytest.raises(ValueError): t.min()
  with pytest.raises(ValueError): Tensor([], device=device).max()
