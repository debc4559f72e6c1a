"""Numerics the issue asks for, beyond tests/test_ops*.py and tests/test_dtype.py: integer division and modulo
against Python's own // and % (every int width, negative operands, scalars on either side); float16 reductions
that only come out right with a float32 accumulator; softmax, log_softmax and logsumexp for logits of +-1e4 in
every float dtype, forward and backward; float division, %, // and fmod exactly as IEEE, numpy and PyTorch give them."""
import re
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from teeny import Tensor, Device, dtypes

DEVICES = Device.available()


# ---------------------------------------------------------------- float /, %, // and fmod, exact

def _float_operands(dtype):
  """Dividends and divisors over many magnitudes and signs, with the cases a * (1 / b) or a - floor(a / b) * b got
  wrong: 41 / 41 (0.99999994), 1.0 % 0.1 (0), 1e10 % 3 (-1024), 1.0 // 0.1 (10)."""
  rng = np.random.default_rng(7)
  a = (rng.standard_normal(200) * 10.0 ** rng.integers(-6, 12, 200)).astype(dtype)
  b = (rng.standard_normal(200) * 10.0 ** rng.integers(-4, 6, 200)).astype(dtype)
  special_a = np.array([41, 47, 1.0, 1e10, -1e10, 5.3, -7.5, 7.5, 0.3, -0.0, 0.0, 3.0, -3.0, np.inf, -np.inf, np.nan, 1.0], dtype)
  special_b = np.array([41, 47, 0.1, 3.0, 3.0, 2.0, 2.0, -2.0, 0.1, 1.0, -1.0, np.inf, -np.inf, 2.0, 2.0, 1.0, 0.0], dtype)
  return np.concatenate([a, special_a, np.arange(1, 200, dtype=dtype)]), np.concatenate([b, special_b, np.arange(1, 200, dtype=dtype)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_division_is_correctly_rounded(device, dtype):
  """x / y is IEEE division, one rounding (x * (1 / y) rounds twice: 41 / 41 was 0.99999994 and its trunc 0)."""
  a, b = _float_operands(dtype)
  with np.errstate(all="ignore"): want = a / b
  np.testing.assert_array_equal((Tensor(a, device=device) / Tensor(b, device=device)).numpy(), want)
  x = Tensor(np.arange(1, 2000, dtype=dtype), device=device)
  np.testing.assert_array_equal((x / x).numpy(), np.ones(1999, dtype))
  np.testing.assert_array_equal(x.div(x, rounding_mode="trunc").numpy(), np.ones(1999, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_mod_floordiv_fmod_match_numpy_exactly(device, dtype):
  """% (torch.remainder), // (torch.floor_divide) and fmod of floats are exact, like numpy's and PyTorch's."""
  a, b = _float_operands(dtype)
  ta, tb = Tensor(a, device=device), Tensor(b, device=device)
  with np.errstate(all="ignore"):
    np.testing.assert_array_equal((ta % tb).numpy(), np.remainder(a, b))
    np.testing.assert_array_equal((ta // tb).numpy(), np.floor_divide(a, b))
    np.testing.assert_array_equal(ta.fmod(tb).numpy(), np.fmod(a, b))
    np.testing.assert_array_equal((ta % 0.1).numpy(), np.remainder(a, dtype(0.1)))


def test_fmod_and_remainder_gradients(device):
  """d/da is 1 and d/db is minus the exact quotient: floor's for % (what torch.remainder gives), trunc's for fmod
  (torch.fmod uses trunc of the rounded a / b, -10 instead of -9 for 1.0 fmod 0.1: not followed)."""
  torch = pytest.importorskip("torch")
  a = np.array([5.3, -7.5, 7.5, 1.0, 41.0, -3.2], np.float32)
  b = np.array([2.0, 2.0, -2.0, 0.1, 41.0, 1.5], np.float32)
  weights = np.arange(6, dtype=np.float32)
  for name in ("fmod", "remainder"):
    x, y = Tensor(a, device=device, requires_grad=True), Tensor(b, device=device, requires_grad=True)
    out = x.fmod(y) if name == "fmod" else x % y
    (out * Tensor(weights, device=device)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), weights, err_msg=name)
    exact_trunc = np.round((a.astype(np.float64) - np.fmod(a, b)) / b)
    want = -weights * (exact_trunc if name == "fmod" else np.floor_divide(a, b))
    np.testing.assert_array_equal(y.grad.numpy(), want, err_msg=name)
  ty = torch.tensor(b, requires_grad=True)
  (torch.remainder(torch.tensor(a), ty) * torch.arange(6.0)).sum().backward()
  np.testing.assert_array_equal(y.grad.numpy(), ty.grad.numpy())



def test_fmod_and_remainder_gradients_at_a_zero_divisor(device):
  """x % 0 is NaN, and the divisor's gradient there is -a / 0, +-inf (NaN for 0 / 0), as PyTorch's (the rounded
  quotient made from the NaN remainder was NaN)."""
  a = Tensor([3.0, -3.0, 0.0, 7.5, 1.0], device=device)
  for name in ("fmod", "remainder"):
    b = Tensor([0.0, 0.0, 0.0, 2.0, -0.0], device=device, requires_grad=True)
    (a.fmod(b) if name == "fmod" else a % b).sum().backward()
    np.testing.assert_array_equal(b.grad.numpy(), [-np.inf, np.inf, np.nan, -3.0, np.inf], err_msg=name)

def test_fmod_of_integers_truncates(device):
  a = np.array([7, -7, 7, -7, 5, 0], np.int32)
  b = np.array([2, 2, -2, -2, 0, 3], np.int32)
  np.testing.assert_array_equal(Tensor(a, device=device).fmod(Tensor(b, device=device)).numpy(), [1, -1, 1, -1, 0, 0])
  np.testing.assert_array_equal(Tensor(a, device=device).fmod(3).numpy(), np.fmod(a, 3))


# ---------------------------------------------------------------- integer // and % like Python

def python_floordiv(a: int, b: int) -> int: return 0 if b == 0 else a // b   # teeny (like numpy): x // 0 == 0
def python_mod(a: int, b: int) -> int: return 0 if b == 0 else a % b
def c_truncdiv(a: int, b: int) -> int: return 0 if b == 0 else (abs(a) // abs(b)) * (1 if (a >= 0) == (b >= 0) else -1)


def wrap(v: int, bits: int, signed: bool = True) -> int:
  v &= (1 << bits) - 1
  return v - (1 << bits) if signed and v >= 1 << (bits - 1) else v


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(st.lists(st.tuples(st.integers(-2**62, 2**62), st.integers(-2**40, 2**40) | st.integers(-9, 9)), min_size=16, max_size=16))
def test_int64_floordiv_mod_match_python(pairs):
  """Fixed-length lists: one compiled kernel per device, new values each example."""
  a = np.array([p[0] for p in pairs], np.int64)
  b = np.array([p[1] for p in pairs], np.int64)
  for device in DEVICES:
    ta, tb = Tensor(a, device=device), Tensor(b, device=device)
    assert (ta // tb).tolist() == [python_floordiv(x, y) for x, y in pairs], device
    assert (ta % tb).tolist() == [python_mod(x, y) for x, y in pairs], device
    assert ta.div(tb, rounding_mode="trunc").tolist() == [c_truncdiv(x, y) for x, y in pairs], device


@pytest.mark.parametrize("dtype,bits", [(np.int8, 8), (np.int16, 16), (np.int32, 32), (np.int64, 64)])
def test_floordiv_mod_every_signed_width(device, dtype, bits):
  lo, hi = -2 ** (bits - 1), 2 ** (bits - 1) - 1
  values = [lo, lo + 1, -100, -7, -2, -1, 0, 1, 2, 7, 100, hi - 1, hi]
  pairs = [(x, y) for x in values for y in values]
  a, b = np.array([p[0] for p in pairs], dtype), np.array([p[1] for p in pairs], dtype)
  ta, tb = Tensor(a, device=device), Tensor(b, device=device)
  # MIN // -1 overflows: it wraps to MIN, and MIN % -1 is 0
  assert (ta // tb).tolist() == [wrap(python_floordiv(x, y), bits) for x, y in pairs]
  assert (ta % tb).tolist() == [python_mod(x, y) for x, y in pairs]
  assert (ta // tb).dtype == dtypes.from_np(dtype) and (ta % tb).dtype == dtypes.from_np(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
def test_floordiv_mod_unsigned(device, dtype):
  top = int(np.iinfo(dtype).max)
  values = [0, 1, 2, 7, 100 % (top + 1), top - 1, top]
  pairs = [(x, y) for x in values for y in values]
  ta, tb = (Tensor(np.array([p[i] for p in pairs], dtype), device=device) for i in (0, 1))
  assert (ta // tb).tolist() == [python_floordiv(x, y) for x, y in pairs]
  assert (ta % tb).tolist() == [python_mod(x, y) for x, y in pairs]


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_floordiv_mod_with_scalars_on_either_side(device, dtype):
  xs = [-9, -8, -7, -1, 0, 1, 7, 8, 9]
  t = Tensor(np.array(xs, dtype), device=device)
  for s in (-3, 4):
    assert (t // s).tolist() == [x // s for x in xs] and (t % s).tolist() == [x % s for x in xs]
    assert (s // t).tolist() == [python_floordiv(s, x) for x in xs] and (s % t).tolist() == [python_mod(s, x) for x in xs]
    assert ((t // s) * s + t % s).tolist() == xs  # the identity that ties the two together


# ---------------------------------------------------------------- float16 accumulates in float32

def test_half_reductions_accumulate_in_float32(device):
  v = np.full(4096, 0.1, np.float16)  # 4096 x 0.0999755859375: a half accumulator stalls far below 409.5
  exact = np.float16(np.sum(v.astype(np.float64)))
  stalled = np.float16(0)
  for x in v[:2048]: stalled = np.float16(stalled + x)  # what a half accumulator would do
  assert stalled != exact
  t = Tensor(v, device=device)
  assert t.sum().item() == exact
  assert t.reshape(64, 64).sum(1).sum().item() == exact
  assert (t * 2).sum().item() == np.float16(2 * np.sum(v.astype(np.float64)))  # fused elementwise, same accumulator
  assert t.mean().item() == np.float16(np.mean(v.astype(np.float64)))
  assert (t.reshape(1, 4096) @ Tensor(np.ones((4096, 1), np.float16), device=device)).item() == exact
  cum = t.cumsum().numpy()
  assert cum.dtype == np.float16 and cum[-1] == exact and cum[2047] == np.float16(np.sum(v[:2048].astype(np.float64)))
  ones = Tensor(np.ones((3, 4096), np.float16), device=device)
  assert ones.sum(1).tolist() == [4096.0] * 3  # a half accumulator sticks at 2048


def test_half_sum_past_the_half_range_is_inf_but_mean_is_not(device):
  t = Tensor(np.full(8, 60000, np.float16), device=device)
  assert t.sum().item() == np.inf
  assert t.mean().item() == 60000.0


# ---------------------------------------------------------------- softmax family for huge logits

LOGITS = np.array([[1e4, -1e4, 0.0, 1e4 - 1], [-1e4, -1e4 + 2, -1e4, -1e4], [1e4, 1e4, 1e4, 1e4], [-1e4, 1e4, -1e4, -1e4]])


def reference(a: np.ndarray, axis: int):
  m = a.max(axis, keepdims=True)
  lse = np.log(np.exp(a - m).sum(axis, keepdims=True)) + m
  return np.exp(a - lse), a - lse, lse


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, 1])
def test_softmax_family_stable_for_huge_logits(device, dtype, axis):
  if dtype == np.float64 and device == "CL" and not Device["CL"].info.has_fp64: pytest.skip("no float64")
  a = LOGITS.astype(dtype)
  sm, lsm, lse = reference(a.astype(np.float64), axis)
  t = Tensor(a, device=device)
  rtol = {np.float16: 2e-3, np.float32: 1e-5, np.float64: 1e-12}[dtype]
  got_sm, got_lsm, got_lse = t.softmax(axis).numpy(), t.log_softmax(axis).numpy(), t.logsumexp(axis, keepdim=True).numpy()
  for got in (got_sm, got_lsm, got_lse): assert got.dtype == dtype and np.isfinite(got).all()
  np.testing.assert_allclose(got_sm, sm, rtol=rtol, atol=rtol * 1e-2)
  np.testing.assert_allclose(got_lsm, lsm, rtol=rtol, atol=rtol)
  np.testing.assert_allclose(got_lse, lse, rtol=rtol)
  np.testing.assert_allclose(got_sm.astype(np.float64).sum(axis), 1.0, rtol=4 * rtol)


def test_softmax_family_gradients_stable_for_huge_logits(device):
  a = LOGITS.astype(np.float32)
  for name in ("softmax", "log_softmax", "logsumexp"):
    t = Tensor(a, device=device, requires_grad=True)
    out = getattr(t, name)(1)
    (out * Tensor(np.arange(out.numel(), dtype=np.float32).reshape(out.shape), device=device)).sum().backward()
    g = t.grad.numpy()
    assert np.isfinite(g).all(), (name, g)
    if name == "logsumexp": np.testing.assert_allclose(g, reference(a.astype(np.float64), 1)[0] * np.arange(4)[:, None], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_cross_entropy_stable_for_huge_logits(device, dtype):
  a = LOGITS.astype(dtype)
  target = np.array([1, 0, 3, 1])
  _, lsm, _ = reference(a.astype(np.float64), 1)
  rtol = 2e-3 if dtype == np.float16 else 1e-5
  t = Tensor(a, device=device, requires_grad=True)
  rows = t.cross_entropy(Tensor(target, device=device), reduction="none")
  np.testing.assert_allclose(rows.numpy(), -lsm[np.arange(4), target], rtol=rtol, atol=rtol)
  probs = np.eye(4)[target] * 0.9 + 0.025  # soft targets
  soft = t.cross_entropy(Tensor(probs.astype(dtype), device=device), reduction="sum")
  np.testing.assert_allclose(soft.item(), -(lsm * probs).sum(), rtol=rtol)
  smooth = t.cross_entropy(Tensor(target, device=device), label_smoothing=0.1).item()
  assert np.isfinite(smooth)
  rows.sum().backward()
  g = t.grad.numpy().astype(np.float64)
  np.testing.assert_allclose(g, np.exp(lsm) - np.eye(4)[target], rtol=rtol, atol=rtol)


def test_grouped_half_reduce_keeps_float32_partials():
  """On a GPU a long reduce is split over a work-group (GROUP) whose partial sums meet in local memory. For half
  they were kept in a __local half array: each partial rounded to half and each pairwise sum of them rounded
  again (against this file's rule: half reductions accumulate in float32), and without cl_khr_fp16 NVIDIA's
  OpenCL compiler refused the kernel (vload_half/vstore_half on a __local array: ambiguous overloads). Checked on
  the source, since this machine has no GPU; the numbers were checked on an NVIDIA H200."""
  import types
  from teeny.schedule import create_schedule
  from teeny.codegen import get_program
  from teeny.renderer.cstyle import OpenCLRenderer
  t = Tensor(np.full(4096, 0.1, np.float16))
  ast = create_schedule((t.sum().uop,), (t.device,))[0][-1].ast
  for has_fp16 in (True, False):
    gpu = types.SimpleNamespace(name="a GPU", is_gpu=True, has_fp16=has_fp16, has_fp64=True, max_work_group_size=1024,
                                max_work_item_sizes=(1024, 1024, 64), local_mem_size=48 << 10, native_vector_width_float=4,
                                native_vector_width_int=4, max_loop_iterations=None)
    spec = get_program(ast, OpenCLRenderer(gpu))
    assert any(getattr(o, "op", None) == "GROUP" for o in spec.applied_opts), spec.applied_opts
    assert "__local float temp0" in spec.src and "temp0[lidx0] = acc0;" in spec.src, spec.src[:800]
    body = spec.src[spec.src.index("__kernel"):]
    assert body.count("(half)") + body.count("teeny_round_half") <= 1, body  # only the result is rounded


def test_opencl_kernels_fuse_multiply_adds_only_in_accumulators():
  """OpenCL C lets a compiler contract a*b+c into one fma (rounded once) wherever it likes, so a value computed in
  two kernels could round differently in each (NVIDIA's compiler does contract: an optimizer step was 1.6e-6 off its
  reference on an H200, with tolerance 1e-6). So every kernel turns FP_CONTRACT off, and the accumulator update
  acc + a*b alone is fused, as LLVM's `contract` marks it: on a GPU an explicit fma(), where the device does fma in
  hardware; on a CPU driver a block of its own with FP_CONTRACT on (PoCL calls fma() out of line: 11 against 124
  GFLOP/s in a matmul tile). Checked on the source, for devices this machine may not have."""
  import types
  from teeny.schedule import create_schedule
  from teeny.codegen import get_program
  from teeny.renderer.cstyle import OpenCLRenderer
  a, b = Tensor(np.ones((8, 16), np.float32)), Tensor(np.ones((16, 4), np.float32))
  matmul = create_schedule(((a @ b).uop,), (a.device,))[0][-1].ast
  elementwise = create_schedule(((a * 3 + a).uop,), (a.device,))[0][-1].ast
  for is_gpu, fma in ((True, ()), (True, (dtypes.float32, dtypes.float64)), (False, ())):
    renderer = OpenCLRenderer(types.SimpleNamespace(name="a device", is_gpu=is_gpu, fma_dtypes=fma))  # (the rest: defaults)
    for ast in (matmul, elementwise):
      assert get_program(ast, renderer).src.startswith("#pragma OPENCL FP_CONTRACT OFF\n")
    matmul_src, elementwise_src = get_program(matmul, renderer).src, get_program(elementwise, renderer).src
    assert "fma(" not in elementwise_src and "mad(" not in elementwise_src and "FP_CONTRACT ON" not in elementwise_src
    assert ("fma(" in matmul_src) == (is_gpu and bool(fma)), matmul_src
    updates = re.findall(r"#pragma OPENCL FP_CONTRACT ON\n\s*(v\d+) = (v\d+)\*(v\d+)\+(acc\d+);", matmul_src)
    assert bool(updates) == (not is_gpu), matmul_src
    float_products = re.findall(r"float v\d+ = \(v\d+\*v\d+\);", matmul_src)
    # fused, the products are read by the update alone and are not also written out on their own
    assert (len(float_products) == 0) == (bool(fma) or not is_gpu), matmul_src


# ---------------------------------------------------------------- erf, tanh, sinh, elu: relative error near 0

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_erf_tanh_sinh_elu_keep_relative_precision(device, dtype):
  """Each within a few ulp of the exact value in relative terms, tiny arguments included: erf was a 1.5e-7
  absolute approximation (erf(1e-8) came out 0 in float32, 1.2e-8 in float64), float64 tanh used float32's
  polynomial (1.3e-8 off at 0.26, found by the fuzzer), sinh and elu lost tiny x to e^x - e^-x and e^x - 1.
  The reference is Python's math module in float64, applied to the inputs as rounded to dtype. float64's exp
  (Cody and Waite's reduction) is checked to an ulp over its whole range, where 2^(x log2 e) was 221 ulp off."""
  import math
  rng = np.random.default_rng(11)
  x = np.concatenate([rng.uniform(-4, 4, 3000), 10.0 ** rng.uniform(-30, 0, 1000) * rng.choice([-1, 1], 1000),
                      [0.2617, 1.4, 1.5, 1.99, 2.0, 2.01, 6.0, 30.0, -30.0]]).astype(dtype)
  exact = {"erf": np.vectorize(math.erf), "tanh": np.tanh, "sinh": np.sinh, "elu": lambda v: np.where(v > 0, v, np.vectorize(math.expm1)(v))}
  for name, ref in exact.items():
    want = ref(x.astype(np.float64))
    got = getattr(Tensor(x, device=device), name)().numpy().astype(np.float64)
    # float32's exp is 2^(x log2 e), about |x| / 3 ulp off (teeny's exp docstring): sinh of large x inherits it
    ulps = 6 + np.abs(x) / 2 * (name == "sinh") if dtype == np.float32 else 8
    ok = np.abs(got - want) <= ulps * np.finfo(dtype).eps * np.abs(want) + np.finfo(dtype).tiny
    assert ok.all(), (name, x[~ok][:5], got[~ok][:5], want[~ok][:5])
  # exact gelu's left tail: x/2 erfc(-x/sqrt 2), no longer 1 + erf cancelling to nothing (it gave 0 at -8)
  left = np.linspace(-12 if dtype == np.float32 else -30, 3, 4001).astype(dtype)
  want = np.array([0.5 * v * math.erfc(-v * (1 / math.sqrt(2))) for v in left.astype(np.float64)])
  got = Tensor(left, device=device).gelu(approximate="none").numpy().astype(np.float64)
  # (erfc's condition number at x/sqrt 2 is about x^2: the rounding of x/sqrt 2 alone costs that many ulp far left)
  bound = ((45 if dtype == np.float32 else 800) + left.astype(np.float64) ** 2) * np.finfo(dtype).eps
  assert np.all(np.abs(got - want) <= bound * np.abs(want) + np.finfo(dtype).tiny)
  xt = Tensor(x[:50], device=device, requires_grad=True)
  xt.erf().sum().backward()  # the exact derivative, 2/sqrt(pi) e^(-x^2), not the approximation's
  np.testing.assert_allclose(xt.grad.numpy(), 2 / np.sqrt(np.pi) * np.exp(-x[:50].astype(np.float64) ** 2), rtol=16 * np.finfo(dtype).eps, atol=0)
  if dtype == np.float64:
    wide = np.concatenate([np.linspace(-745, 709, 20001), [-800.0, 800.0, np.inf, -np.inf]])
    with np.errstate(over="ignore"): want = np.exp(wide)
    got = Tensor(wide, device=device).exp().numpy()
    normal = np.isfinite(want) & (want > np.finfo(np.float64).tiny)
    assert np.max(np.abs(got[normal] - want[normal]) / want[normal]) < 2 * np.finfo(np.float64).eps
    small = np.isfinite(want) & ~normal  # subnormal and 0: one rounding at the scale, half their ulp
    assert np.all(np.abs(got[small] - want[small]) <= 5e-324 + 2 * np.finfo(np.float64).eps * want[small])
    assert np.array_equal(got[~np.isfinite(want)], want[~np.isfinite(want)])  # inf above


def test_cos_and_tan_are_relatively_accurate_near_the_zeros_of_cos(device):
  """cos reduces x by the nearest (k + 1/2) pi in three exact parts, so it is right relative to itself near its
  zeros, where 1 - 2 sin^2(x/2) cancelled: tan(float32(1.5707963)) was 1.677722e7 (27% off, PyTorch 1.32454e7)."""
  x = np.float32(1.5707963)
  np.testing.assert_allclose(Tensor([x], device=device).tan().numpy(), [np.tan(np.float64(x))], rtol=1e-5)
  near = np.concatenate([(k + 0.5) * np.pi + np.linspace(-1e-3, 1e-3, 7) for k in range(-20, 20)]).astype(np.float32)
  want = np.cos(near.astype(np.float64))
  np.testing.assert_allclose(Tensor(near, device=device).cos().numpy(), want, rtol=3e-6)
  wide = np.random.default_rng(0).uniform(-8000, 8000, 4000).astype(np.float32)
  got = Tensor(wide, device=device).cos().numpy().astype(np.float64)
  assert (np.abs(got - np.cos(wide.astype(np.float64))) <= 2.5 * np.spacing(np.abs(np.cos(wide)).astype(np.float32))).all()


def test_float32_cos_near_far_zeros_reduces_in_float64(device):
  """Near the zeros of cos at large |x| the reduction's third product rounds in float32 to most of r: cos(252.89821)
  was -4.1854946e-09 (974 ulp off; exact -4.185707e-09). On a device with float64 it reduces there."""
  if not Device[device].supports_dtype(dtypes.float64): pytest.skip(f"{device} has no float64")
  rng = np.random.default_rng(1)
  near = ((rng.integers(0, 10_000, 20_000) + 0.5) * np.pi + rng.uniform(-1e-3, 1e-3, 20_000)).astype(np.float32)
  near = np.concatenate([near, np.float32([252.89821])])
  want = np.cos(near.astype(np.float64))
  ulps = np.abs(Tensor(near, device=device).cos().numpy() - want) / np.spacing(np.abs(want).astype(np.float32))
  assert ulps.max() <= 1.5


# ---------------------------------------------------------------- float32 pow, within an ulp

@pytest.mark.parametrize("exponent", ["tensor", 7, 13, -3, 2.5, -1.5, 4])
def test_float32_pow_is_within_an_ulp(device, exponent):
  """float32 x ** y (a tensor or a number other than PyTorch's multiplied-out 2, 3, -1, -2) is exp2(y * log2|x|)
  computed in float64 where the device has it and rounded once: in float32 log2's error was multiplied by
  y * log2|x| (10 ** 7 was 9999996, x ** 13 40 ulps off; PyTorch's powf is within 0.6 ulp)."""
  if not Device[device].supports_dtype(dtypes.float64): pytest.skip(f"{device} has no float64")
  rng = np.random.default_rng(3)
  x = rng.uniform(0.1, 10, 20_000).astype(np.float32)
  y = rng.uniform(-5, 5, 20_000).astype(np.float32) if exponent == "tensor" else np.float32(exponent)
  got = (Tensor(x, device=device) ** (Tensor(y, device=device) if exponent == "tensor" else exponent)).numpy()
  exact = x.astype(np.float64) ** y.astype(np.float64)
  assert np.max(np.abs(got - exact) / np.spacing(np.abs(exact).astype(np.float32))) <= 0.51
  bases, powers = np.array([10, 3, 5, 2, 7], np.float32), np.array([7, 3, 3, 20, 5], np.float32)
  assert (Tensor(bases, device=device) ** Tensor(powers, device=device)).numpy().tolist() == [1e7, 27, 125, 2 ** 20, 16807]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_is_within_about_an_ulp_over_its_whole_range(device, dtype):
  """exp by Cody and Waite's reduction: 2^(x log2 e) lost about |x| / 3 ulp to the product's rounding (62 ulp near
  x = 88 in float32), and sigmoid, sinh, cosh and expm1 with it; now under 2 ulp (PyTorch's: 0.55)."""
  if dtype == np.float64 and not Device[device].supports_dtype(dtypes.float64): pytest.skip(f"{device} has no float64")
  rng = np.random.default_rng(5)
  top = 88.0 if dtype == np.float32 else 700.0
  x = np.concatenate([rng.uniform(-top, top, 20_000), rng.uniform(-1, 1, 2_000)]).astype(dtype)
  exact = np.exp(x.astype(np.longdouble))
  ulps = np.abs(Tensor(x, device=device).exp().numpy() - exact) / np.spacing(exact.astype(dtype))
  assert ulps.max() <= 2.0
  edges = np.array([-np.inf, np.inf, np.nan, 0.0, -0.0, -200.0, 200.0] + ([-103.0, 88.7, 89.0] if dtype == np.float32 else [-745.0, 709.7, 710.0]), dtype)
  with np.errstate(over="ignore"):
    np.testing.assert_allclose(Tensor(edges, device=device).exp().numpy(), np.exp(edges), rtol=2e-7 if dtype == np.float32 else 1e-15)


def test_erfc_keeps_exp_of_minus_x_squared_exact(device):
  """erfc's continued fraction multiplies by exp(-x^2), and x * x rounded first was magnified |x^2| times: 62 ulp
  near x = 3 in float32 (x = 9: more). x^2 is now split so its big part is exact: within 13 ulp (PyTorch: 1)."""
  import math
  x = np.linspace(2.0, 9.0, 2000).astype(np.float32)
  exact = np.array([math.erfc(v) for v in x.astype(np.float64)])
  ulps = np.abs(Tensor(x, device=device).erfc().numpy() - exact) / np.spacing(exact.astype(np.float32))
  assert ulps.max() <= 13


@pytest.mark.parametrize("name", ["sinh", "cosh"])
def test_sinh_and_cosh_are_within_a_few_ulp(device, name):
  """sinh near 0 from its Taylor series (from tanh it carried tanh's error: 6 ulp), beyond e^|x| / 2 -+ e^-|x| / 2;
  cosh beyond 1 likewise (1 + 2 sinh^2(x/2) squared a rounded sinh: 10 ulp). Up to float32's overflow."""
  import math
  worst_before = [0.6092549, 0.87838405, 0.8526458, 0.8365113, 0.8597933]  # (sinh through tanh)
  x = np.concatenate([np.linspace(-89.4, 89.4, 3001), np.linspace(-3, 3, 3001), worst_before]).astype(np.float32)
  exact = np.array([getattr(math, name)(v) for v in x.astype(np.float64)])
  ulps = np.abs(getattr(Tensor(x, device=device), name)().numpy() - exact) / np.spacing(np.abs(exact).astype(np.float32))
  assert ulps[exact != 0].max() <= 3


def test_tanh_is_within_a_few_ulp(device):
  """tanh past 0.3 is (1 - e^-2|x|) / (1 + e^-2|x|): 2 sigmoid(2x) - 1 cancelled there (4.6 ulp; PyTorch 0.5)."""
  import math
  x = np.concatenate([np.linspace(-10, 10, 4001), np.linspace(0.29, 1.5, 4001)]).astype(np.float32)
  exact = np.array([math.tanh(v) for v in x.astype(np.float64)])
  ulps = np.abs(Tensor(x, device=device).tanh().numpy() - exact) / np.spacing(np.abs(exact).astype(np.float32))
  assert ulps[exact != 0].max() <= 2.6


def test_sin_gradient_is_cos_near_its_zeros(device):
  """sin's gradient is Tensor.cos itself: the SIN node's rule, 1 - 2 sin^2(x/2), cancelled near cos's zeros and had
  the wrong sign at float32(pi/2): +5.96e-8 where cos is -4.371139e-8."""
  x = np.array([1.5707963705062866, -4.712389, 252.89821, 0.3], np.float32)
  t = Tensor(x, device=device, requires_grad=True)
  t.sin().sum().backward()
  np.testing.assert_allclose(t.grad.numpy(), np.cos(x.astype(np.float64)), rtol=3e-7)
