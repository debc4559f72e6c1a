"""Issue 3's composed math and reductions checked against numpy on every device, on contiguous and non-contiguous
(permuted, flipped, sliced) inputs. Shapes are reused so each kernel compiles once."""
import math
import numpy as np
import pytest
from teeny import Tensor, dtypes
from teeny.runtime.device import Device

RNG = np.random.default_rng(0)
BASE = RNG.uniform(-3, 3, size=(4, 6)).astype(np.float32)


def views(device):
  """(teeny tensor, numpy array) pairs: contiguous, permuted, flipped and sliced views of the same data."""
  t, a = Tensor(BASE, device=device), BASE
  return [(t, a), (t.permute(1, 0), a.T), (t.flip(1), a[:, ::-1]), (t[1:, ::2], a[1:, ::2])]


def check(t, expected, rtol=1e-5, atol=1e-6, dtype=None):
  out, expected = t.numpy(), np.asarray(expected)
  assert out.shape == expected.shape, f"shape {out.shape} != {expected.shape}"
  if dtype is not None: assert t.dtype == dtype, f"{t.dtype} != {dtype}"
  if out.dtype == np.bool_ or np.issubdtype(out.dtype, np.integer): np.testing.assert_array_equal(out, expected)
  else: np.testing.assert_allclose(out, expected, rtol=rtol, atol=atol, equal_nan=True)


def np_erf(x): return np.vectorize(math.erf)(x.astype(np.float64))
def np_softplus(x, beta=1.0): return np.logaddexp(0, beta * x.astype(np.float64)) / beta
def np_gelu_tanh(x): return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


UNARY = {
  "rsqrt": (lambda t: t.abs().rsqrt(), lambda a: 1 / np.sqrt(np.abs(a))),
  "reciprocal": (lambda t: t.reciprocal(), lambda a: 1 / a),
  "square": (lambda t: t.square(), lambda a: a * a),
  "gelu": (lambda t: t.gelu(), np_gelu_tanh),
  "gelu_none": (lambda t: t.gelu(approximate="none"), lambda a: 0.5 * a * (1 + np_erf(a / math.sqrt(2)))),
  "erf": (lambda t: t.erf(), np_erf),
  "silu": (lambda t: t.silu(), lambda a: a / (1 + np.exp(-a))),
  "swish": (lambda t: t.swish(), lambda a: a / (1 + np.exp(-a))),
  "leakyrelu": (lambda t: t.leakyrelu(), lambda a: np.where(a < 0, 0.01 * a, a)),
  "leakyrelu_0.2": (lambda t: t.leakyrelu(0.2), lambda a: np.where(a < 0, 0.2 * a, a)),
  "elu": (lambda t: t.elu(), lambda a: np.where(a > 0, a, np.expm1(a))),
  "elu_2": (lambda t: t.elu(2.0), lambda a: np.where(a > 0, a, 2 * np.expm1(a))),
  "softplus": (lambda t: t.softplus(), np_softplus),
  "softplus_beta": (lambda t: t.softplus(2.0), lambda a: np_softplus(a, 2.0)),
  "mish": (lambda t: t.mish(), lambda a: a * np.tanh(np_softplus(a))),
  "hardtanh": (lambda t: t.hardtanh(), lambda a: np.clip(a, -1, 1)),
  "hardtanh_args": (lambda t: t.hardtanh(-0.5, 2.0), lambda a: np.clip(a, -0.5, 2)),
  "relu6": (lambda t: (t * 3).relu6(), lambda a: np.clip(a * 3, 0, 6)),
  "hardsigmoid": (lambda t: t.hardsigmoid(), lambda a: np.clip(a / 6 + 0.5, 0, 1)),
  "hardswish": (lambda t: t.hardswish(), lambda a: a * np.clip(a + 3, 0, 6) / 6),
  "logsigmoid": (lambda t: t.logsigmoid(), lambda a: -np_softplus(-a)),
  "log10": (lambda t: t.abs().log10(), lambda a: np.log10(np.abs(a))),
  "sinh": (lambda t: t.sinh(), np.sinh),
  "cosh": (lambda t: t.cosh(), np.cosh),
  "round": (lambda t: (t * 2).round(), lambda a: np.round(a * 2)),
  "lerp": (lambda t: t.lerp(t * 0 + 1, 0.25), lambda a: a + (1 - a) * 0.25),
}


@pytest.mark.parametrize("name", list(UNARY))
def test_unary(device, name):
  fn, ref = UNARY[name]
  for t, a in views(device):
    check(fn(t), ref(a).astype(np.float32), rtol=2e-5, atol=2e-6, dtype=dtypes.float32)


def test_round_half_to_even(device):
  a = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 0.49999997, -0.49999997, 2.5000002, 1e9 + 0.5, 8388609.0,
                np.inf, -np.inf, np.nan, -0.0], np.float32)
  check(Tensor(a, device=device).round(), np.round(a))
  check(Tensor(a.astype(np.float16), device=device).round(), np.round(a.astype(np.float16)), dtype=dtypes.float16)
  i = np.array([3, -4], np.int32)
  check(Tensor(i, device=device).round(), i, dtype=dtypes.int32)


def test_activations_extreme_inputs(device):
  a = np.array([-1e4, -100, -30, -1e-3, 0, 1e-3, 30, 100, 1e4], np.float32)
  t = Tensor(a, device=device)
  check(t.softplus(), np_softplus(a).astype(np.float32), rtol=1e-5, atol=0)  # tail kept: softplus(-30) ~ 9.4e-14
  check(t.elu(), np.where(a > 0, a, np.expm1(a)).astype(np.float32))
  check(t.silu(), (a / (1 + np.exp(-a.astype(np.float64)))).astype(np.float32), atol=1e-6)
  check(t.mish(), (a * np.tanh(np_softplus(a))).astype(np.float32), atol=1e-6)
  check(t.gelu(), np_gelu_tanh(a.astype(np.float64)).astype(np.float32), atol=1e-6)


def test_join_and_shape_forms_from_the_movement_sweep(device):
  """More than 16 constant bfloat16/fp8 pieces were joined on the host from their bits read as ints (stack of 0.5,
  1.1, -2.75, 300.5 gave 0, 1, 65536, 300). pad(value=-0.0) padded +0.0. PyTorch's positional dim (cat(ts, 1)),
  flip(0, 1), chunk of an empty axis, unflatten's -1 on an empty tensor and a 0-d unfold of size 0 raised or gave
  other shapes."""
  vals = [0.5, 1.1, -2.75, 300.5] * 5
  for dt, want in ((dtypes.bfloat16, [0.5, 1.1015625, -2.75, 300.0]), (dtypes.fp8e4m3, [0.5, 1.125, -2.75, 288.0])):
    assert Tensor.stack([Tensor(v, dtype=dt, device=device) for v in vals]).float().numpy()[:4].tolist() == want
  assert np.signbit(Tensor([1.0, 2.0], device=device).pad((1, 1), value=-0.0).numpy()).tolist() == [True, False, False, True]
  a = Tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3), device=device)
  assert Tensor.cat([a, a], 1).shape == (2, 6) and Tensor.stack([a, a], 1).shape == (2, 2, 3)
  np.testing.assert_array_equal(a.flip(0, 1).numpy(), a.numpy()[::-1, ::-1])
  assert [t.shape for t in Tensor.zeros(0, 4, device=device).chunk(3)] == [(0, 4)] * 3
  assert Tensor.zeros(2, 0, 3, device=device).unflatten(-1, (3, -1)).shape == (2, 0, 3, 1)
  assert Tensor(3.0, device=device).unfold(0, 0, 1).shape == (0,)


def test_lerp_broadcast(device):
  a, b = BASE[:, :1], BASE[:1, :]
  w = np.linspace(0, 1, 6, dtype=np.float32)
  check(Tensor(a, device=device).lerp(Tensor(b, device=device), Tensor(w, device=device)), a + (b - a) * w)


def test_isnan_isinf_isfinite(device):
  a = np.array([0, 1.5, np.nan, np.inf, -np.inf, -2, np.nan], np.float32)
  t = Tensor(a, device=device)
  check(t.isnan(), np.isnan(a), dtype=dtypes.bool)
  check(t.isinf(), np.isinf(a), dtype=dtypes.bool)
  check(t.isinf(detect_negative=False), np.isposinf(a))
  check(t.isinf(detect_positive=False), np.isneginf(a))
  check(t.isfinite(), np.isfinite(a), dtype=dtypes.bool)
  check(t.flip(0).isnan(), np.isnan(a[::-1]))
  i = Tensor([1, 2], device=device)
  check(i.isnan(), [False, False]); check(i.isinf(), [False, False]); check(i.isfinite(), [True, True])


def test_logical_and_bitwise(device):
  a = np.array([0, 1, 2, 0, -3], np.int32)
  b = np.array([[0], [5]], np.int32)
  ta, tb = Tensor(a, device=device), Tensor(b, device=device)
  check(ta.logical_and(tb), np.logical_and(a, b), dtype=dtypes.bool)
  check(ta.logical_or(tb), np.logical_or(a, b), dtype=dtypes.bool)
  check(ta.logical_xor(tb), np.logical_xor(a, b), dtype=dtypes.bool)
  check(ta.logical_and(True), np.logical_and(a, True))
  check(ta.bitwise_and(tb), a & b, dtype=dtypes.int32)
  check(ta.bitwise_or(tb), a | b)
  check(ta.bitwise_xor(tb), a ^ b)
  check(ta.bitwise_not(), ~a)
  check(ta.flip(0).bitwise_not(), ~a[::-1])
  check(Tensor(a > 0, device=device).bitwise_not(), ~(a > 0))
  with pytest.raises(TypeError): Tensor(BASE, device=device).bitwise_not()


# ---- reductions ----
@pytest.mark.parametrize("axis,keepdim", [(None, False), (0, False), (1, True), (-1, False), ((0, 1), True)])
def test_var_std(device, axis, keepdim):
  for t, a in views(device):
    for correction in (1, 0):
      check(t.var(axis, keepdim, correction), np.var(a, axis=axis, keepdims=keepdim, ddof=correction), rtol=1e-4)
      check(t.std(axis, keepdim, correction=correction), np.std(a, axis=axis, keepdims=keepdim, ddof=correction), rtol=1e-4)


def test_var_edge_cases(device):
  one = Tensor([5.0], device=device)
  assert np.isnan(one.var().item()) and one.var(correction=0).item() == 0
  v, m = Tensor(BASE, device=device).var_mean(1)
  check(v, np.var(BASE, 1, ddof=1), rtol=1e-4); check(m, BASE.mean(1))
  check(Tensor([1, 2, 3, 4], device=device).std(), np.std([1, 2, 3, 4], ddof=1), dtype=dtypes.float32)


TIES = np.array([[1, 3, 3, 0, -1, 3], [2, 2, 2, 2, 2, 2], [-5, 4, -5, 4, 0, -5], [0, 0, 1, 9, 9, 1]], np.float32)


@pytest.mark.parametrize("axis,keepdim", [(None, False), (None, True), (0, False), (1, False), (-1, True)])
def test_argmax_argmin(device, axis, keepdim):
  pairs = [(Tensor(TIES, device=device), TIES), (Tensor(TIES, device=device).permute(1, 0), TIES.T),
           (Tensor(TIES, device=device).flip(1), TIES[:, ::-1]), (Tensor(TIES, device=device)[1:, ::2], TIES[1:, ::2])]
  pairs += views(device)
  for t, a in pairs:
    for fn, ref in (("argmax", np.argmax), ("argmin", np.argmin)):
      expected = ref(a, axis=axis, keepdims=keepdim)
      check(getattr(t, fn)(axis, keepdim), np.asarray(expected).astype(np.int32), dtype=dtypes.int32)
      ti = Tensor(a.astype(np.int32), device=device)
      check(getattr(ti, fn)(axis, keepdim), np.asarray(ref(a.astype(np.int32), axis=axis, keepdims=keepdim)).astype(np.int32))


def test_argmax_special(device):
  b = np.array([False, True, True, False])
  check(Tensor(b, device=device).argmax(), np.int32(1)); check(Tensor(b, device=device).argmin(), np.int32(0))
  big = np.array([np.iinfo(np.int32).min, 7, np.iinfo(np.int32).max, np.iinfo(np.int32).max], np.int32)
  check(Tensor(big, device=device).argmax(), np.int32(2)); check(Tensor(big, device=device).argmin(), np.int32(0))
  check(Tensor(np.array([-np.inf, 1, np.inf], np.float32), device=device).argmax(), np.int32(2))
  check(Tensor(3.0, device=device).argmax(), np.int32(0))
  n = np.array([[1, np.nan, 3, np.nan], [np.inf, 2, -1, 0], [np.nan, -np.inf, 5, 5]], np.float32)  # NaN wins, like numpy
  for axis in (None, 0, 1):
    check(Tensor(n, device=device).argmax(axis), np.asarray(np.argmax(n, axis)).astype(np.int32))
    check(Tensor(n, device=device).argmin(axis), np.asarray(np.argmin(n, axis)).astype(np.int32))


_INT_TYPES = (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64)


def _int_extremes(np_dtype) -> np.ndarray:
  """Rows holding the dtype's lowest and highest values, their neighbours, ties, and rows without the extremes."""
  lo, hi = np.iinfo(np_dtype).min, np.iinfo(np_dtype).max
  return np.array([[3, hi, lo, lo + 1, 0, lo], [lo + 1, 5, hi, lo + 1, 1, 2], [7, 7, 7, 7, 7, 7],
                   [hi, hi - 1, hi, lo + 2, lo + 1, lo + 2], [1, 0, 1, 0, hi, 0]], dtype=np_dtype)


@pytest.mark.parametrize("np_dtype", _INT_TYPES, ids=lambda d: np.dtype(d).name)
def test_argmin_argmax_of_ints_at_their_extremes(device, np_dtype):
  """First index of the smallest / largest value for every int dtype, with its lowest and highest values (argmin
  must not negate the lowest value into itself, nor use bitwise NOT: Intel's OpenCL CPU compiler gets max of ~x
  wrong), against numpy and torch."""
  torch = None
  if np_dtype in (np.int8, np.uint8, np.int16, np.int32, np.int64):  # the ints torch has argmin/argmax for
    try: import torch
    except ImportError: pass
  a = _int_extremes(np_dtype)
  for view, arr in ((Tensor(a, device=device), a), (Tensor(a, device=device).permute(1, 0), a.T)):
    for axis in (None, 0, 1):
      for fn in ("argmin", "argmax"):
        out = getattr(view, fn)(axis).numpy()
        np.testing.assert_equal(out, getattr(np, fn)(arr, axis), err_msg=f"{fn} axis={axis}")
        if torch is not None:
          np.testing.assert_equal(out, getattr(torch, fn)(torch.from_numpy(np.ascontiguousarray(arr)), axis).numpy(), err_msg=f"torch {fn} axis={axis}")


@pytest.mark.parametrize("np_dtype", _INT_TYPES, ids=lambda d: np.dtype(d).name)
def test_min_max_of_ints_at_their_extremes(device, np_dtype):
  """min/max of every int dtype with its lowest and highest values, over small rows and over one long reduction
  that splits into partial sums (where Intel's OpenCL CPU compiler got max of ~x wrong: min used to be ~max(~x))."""
  info = np.iinfo(np_dtype)
  long = np.random.default_rng(0).integers(info.min, info.max, size=(64, 64), dtype=np_dtype, endpoint=True)
  long.flat[3], long.flat[100] = info.min, info.max
  without_extremes = np.clip(long, info.min + 1, info.max - 1)
  for arr in (_int_extremes(np_dtype), long, without_extremes):
    for axis in (None, 0, 1):
      for fn in ("min", "max"):
        out = getattr(Tensor(arr, device=device), fn)(axis).numpy()
        np.testing.assert_equal(out, getattr(np, fn)(arr, axis), err_msg=f"{fn} axis={axis}")
        assert out.dtype == np_dtype


def test_argmin_argmax_of_floats_with_nan_ties_and_signed_zeros(device):
  """A row with NaN answers with its first NaN (argmin too, like numpy and torch); ties and -0.0 == 0.0 give the
  first index; infinities are ordinary extremes."""
  nan, inf = np.nan, np.inf
  a = np.array([[0.0, -0.0, 1.0, -0.0], [-0.0, 0.0, -1.0, -1.0], [2.0, nan, -inf, nan], [inf, -inf, inf, -inf],
                [5.0, 5.0, 5.0, 5.0], [-inf, 3.0, nan, -inf]], np.float32)
  try: import torch
  except ImportError: torch = None
  for axis in (None, 0, 1):
    for fn in ("argmin", "argmax"):
      out = getattr(Tensor(a, device=device), fn)(axis).numpy()
      np.testing.assert_equal(out, getattr(np, fn)(a, axis), err_msg=f"{fn} axis={axis}")
      if torch is not None: np.testing.assert_equal(out, getattr(torch, fn)(torch.from_numpy(a), axis).numpy())
  half = Tensor(a, device=device).half()
  for fn in ("argmin", "argmax"): np.testing.assert_equal(getattr(half, fn)(1).numpy(), getattr(np, fn)(a.astype(np.float16), 1))


def test_any_all(device):
  a = np.array([[0, 0, 1], [0, 0, 0], [2, 3, -1]], np.float32)
  for t, x in [(Tensor(a, device=device), a), (Tensor(a, device=device).permute(1, 0), a.T)]:
    for axis in (None, 0, 1):
      for keepdim in (False, True):
        check(t.any(axis, keepdim), np.any(x, axis=axis, keepdims=keepdim), dtype=dtypes.bool)
        check(t.all(axis, keepdim), np.all(x, axis=axis, keepdims=keepdim), dtype=dtypes.bool)
  e = Tensor.zeros(0, 3, device=device)
  check(e.any(0), np.zeros(3, bool)); check(e.all(0), np.ones(3, bool)); check(e.any(), np.bool_(False))
  check(Tensor(a > 0, device=device).all(1), np.all(a > 0, axis=1))


def np_logsumexp(a, axis=None, keepdims=False):
  a = a.astype(np.float64)
  m = np.max(a, axis=axis, keepdims=True)
  m = np.where(np.isinf(m), 0, m)
  out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
  return out if keepdims else (out.reshape(()) if axis is None else np.squeeze(out, axis=axis))


def np_softmax(a, axis):
  e = np.exp(a.astype(np.float64) - a.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_family(device, axis):
  for t, a in views(device):
    check(t.softmax(axis), np_softmax(a, axis).astype(np.float32), dtype=dtypes.float32)
    check(t.log_softmax(axis), np.log(np_softmax(a, axis)).astype(np.float32), rtol=1e-5, atol=1e-5)
    check(t.logsumexp(axis), np_logsumexp(a, axis).astype(np.float32))
    check(t.logsumexp(axis, keepdim=True), np_logsumexp(a, axis, True).astype(np.float32))
  check(Tensor(BASE, device=device).logsumexp(), np.float32(np_logsumexp(BASE)))


def test_softmax_family_large_logits(device):
  a = np.array([[1e4, -1e4, 0, 1e4 - 1], [-1e4, -1e4 + 2, -1e4, -1e4], [-np.inf, 0, 1, -np.inf]], np.float32)
  t = Tensor(a, device=device)
  sm, lsm, lse = t.softmax(-1).numpy(), t.log_softmax(-1).numpy(), t.logsumexp(-1).numpy()
  assert np.isfinite(sm).all() and np.isfinite(lse).all() and np.isfinite(lsm[np.isfinite(a)]).all()
  np.testing.assert_allclose(sm, np_softmax(a, -1), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(lse, np_logsumexp(a, -1), rtol=1e-6)
  np.testing.assert_allclose(lsm, a - np_logsumexp(a, -1, keepdims=True), rtol=1e-5, atol=1e-5)
  neg = Tensor(np.full((2, 3), -np.inf, np.float32), device=device)
  assert np.all(neg.logsumexp(1).numpy() == -np.inf)


def test_softmax_int_and_half(device):
  i = np.array([[1, 2, 3]], np.int32)
  check(Tensor(i, device=device).softmax(), np_softmax(i, -1).astype(np.float32), dtype=dtypes.float32)
  h = BASE.astype(np.float16)
  check(Tensor(h, device=device).softmax(), np_softmax(h, -1).astype(np.float16), rtol=2e-3, atol=1e-3, dtype=dtypes.float16)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumsum_cummax(device, axis):
  for t, a in views(device):
    check(t.cumsum(axis), np.cumsum(a, axis=axis), rtol=1e-5, atol=1e-5, dtype=dtypes.float32)
    check(t.cummax(axis)[0], np.maximum.accumulate(a, axis=axis))
  i = (BASE * 10).astype(np.int32)
  check(Tensor(i, device=device).cumsum(axis), np.cumsum(i, axis=axis, dtype=np.int64), dtype=dtypes.int64)
  check(Tensor(i, device=device).cummax(axis)[0], np.maximum.accumulate(i, axis=axis), dtype=dtypes.int32)
  b = BASE > 0
  check(Tensor(b, device=device).cumsum(axis), np.cumsum(b, axis=axis), dtype=dtypes.int64)


def test_cumsum_long_and_special(device):
  n = 3000  # past one block: scans of 256-blocks plus a scan of the block totals
  x = np.random.default_rng(1).integers(-100, 100, size=(2, n)).astype(np.float32)
  t = Tensor(x, device=device)
  check(t.cumsum(1), np.cumsum(x, axis=1))  # small ints: float32 sums are exact
  check(t.permute(1, 0).cumsum(0), np.cumsum(x.T, axis=0))
  check(t.cummax(1)[0], np.maximum.accumulate(x, axis=1))
  big = np.random.default_rng(2).integers(0, 5, size=70000).astype(np.int32)  # two levels of blocks
  check(Tensor(big, device=device).cumsum(0), np.cumsum(big, dtype=np.int64))
  s = np.array([1, np.inf, 2, -np.inf, 3], np.float32)
  with np.errstate(invalid="ignore"): check(Tensor(s, device=device).cumsum(0), np.cumsum(s))
  check(Tensor(2.5, device=device).cumsum(), np.float32(2.5))
  check(Tensor.zeros(0, 3, device=device).cumsum(0), np.zeros((0, 3), np.float32))
  with pytest.raises(IndexError): Tensor(x, device=device).cumsum(2)


def test_prod(device):
  for t, a in views(device):
    check(t.prod(1), np.prod(a, axis=1), rtol=1e-5)
    check(t.prod(), np.prod(a), rtol=1e-4)


def test_reduce_of_two_broadcasts(device):
  """Regression: the optimizer's permute of the loop space rewrote a view into another view's old value, and
  graph_rewrite(fixed_point=False) then rewrote it a second time; (x + x.T).sum(0) read x twice the same way."""
  a = np.arange(9, dtype=np.float32).reshape(3, 3)
  x = Tensor(a, device=device)
  check((x + x.T).sum(0), (a + a.T).sum(0))
  p, q = a[:1], a[:, :1]
  check((Tensor(p, device=device) * Tensor(q, device=device)).sum(0), (p * q).sum(0))


W = np.arange(15.0).reshape(3, 5)
GRAD_FNS = {
  "softmax": lambda t: (t.softmax(-1) * Tensor(W, device="LLVM")).sum(),
  "log_softmax": lambda t: (t.log_softmax(0) * Tensor(W, device="LLVM")).sum(),
  "logsumexp": lambda t: t.logsumexp(1).sum(),
  "gelu": lambda t: t.gelu().sum(), "gelu_none": lambda t: t.gelu(approximate="none").sum(),
  "silu": lambda t: t.silu().sum(), "elu": lambda t: t.elu().sum(), "softplus": lambda t: t.softplus().sum(),
  "mish": lambda t: t.mish().sum(), "var": lambda t: t.var(1).sum(), "std": lambda t: t.std().sum(),
  "cumsum": lambda t: (t.cumsum(1) * Tensor(W, device="LLVM")).sum(), "cummax": lambda t: t.cummax(1)[0].sum(),
  "lerp": lambda t: t.lerp(t * t, 0.3).sum(), "hardswish": lambda t: t.hardswish().sum(),
  "leakyrelu": lambda t: t.leakyrelu().sum(), "logsigmoid": lambda t: t.logsigmoid().sum(),
}


@pytest.mark.parametrize("name", list(GRAD_FNS))
def test_gradients_finite_differences(name):
  """float64 on LLVM against central differences (the values avoid the kinks of the piecewise ops)."""
  if "LLVM" not in Device.available(): pytest.skip("needs LLVM")
  f, a, eps = GRAD_FNS[name], np.random.default_rng(3).uniform(-2, 2, size=(3, 5)), 1e-6
  t = Tensor(a, device="LLVM", dtype=dtypes.float64, requires_grad=True)
  f(t).backward()
  num = np.zeros_like(a)
  for i in np.ndindex(a.shape):
    up, down = a.copy(), a.copy()
    up[i] += eps; down[i] -= eps
    num[i] = (f(Tensor(up, device="LLVM")).item() - f(Tensor(down, device="LLVM")).item()) / (2 * eps)
  np.testing.assert_allclose(t.grad.numpy(), num, rtol=1e-4, atol=1e-6)


def test_softmax_gradient_large_logits(device):
  t = Tensor(np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], np.float32), device=device, requires_grad=True)
  (t.log_softmax(-1)[:, 0].sum() + t.logsumexp(-1).sum() + t.softmax(-1)[:, 1].sum()).backward()
  assert np.isfinite(t.grad.numpy()).all()


def test_mean_takes_a_float_dtype_like_torch(device):
  ints = Tensor([1, 2, 4], device=device)
  out = ints.mean(dtype=dtypes.float64)
  assert out.dtype == dtypes.float64 and out.item() == pytest.approx(7 / 3, rel=1e-15)
  half = Tensor([[1.0, 2.0], [3.0, 4.0]], device=device).mean(1, keepdim=True, dtype="float16")
  assert half.dtype == dtypes.float16 and half.numpy().tolist() == [[1.5], [3.5]]
  with pytest.raises(TypeError, match="float dtype"): ints.mean(dtype=dtypes.int32)
