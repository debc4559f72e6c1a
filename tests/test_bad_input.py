"""The bad-input table (extends tests/test_errors.py): every row either raises a clear error at the call that
caused it, before any kernel runs, or gives numpy's answer. Never a wrong number, a hang or a crash.

Rows: wrong shapes at every broadcasting and matmul entry point; wrong dtypes; unknown devices; out-of-range
indices and slicing with any step; NaN and inf propagating like numpy; empty tensors through every reduction;
element counts past 32-bit indexing (computed with 64-bit index math on small realized results)."""
import math
import numpy as np
import pytest
from teeny import Tensor, GlobalCounters, dtypes, Device


@pytest.fixture
def no_kernels():
  GlobalCounters.reset()
  yield
  assert GlobalCounters.kernel_count == 0, f"{GlobalCounters.kernel_count} kernel(s) ran before the error"


def arange(shape, device, dtype=np.float32):
  return Tensor(np.arange(1, 1 + math.prod(shape)).reshape(shape).astype(dtype), device=device)


# ---------------------------------------------------------------- wrong shapes

BROADCASTING = {  # entry points not already in test_errors.py; each gets (a, b) of shapes that don't broadcast
  "sub": lambda a, b: a - b, "rsub": lambda a, b: b.sub(a, reverse=True), "div": lambda a, b: a / b,
  "div_trunc": lambda a, b: a.div(b, rounding_mode="trunc"), "div_floor": lambda a, b: a.div(b, rounding_mode="floor"),
  "floordiv": lambda a, b: a // b, "mod": lambda a, b: a % b, "pow": lambda a, b: a ** b, "minimum": Tensor.minimum,
  "gt": lambda a, b: a > b, "le": lambda a, b: a <= b, "ge": lambda a, b: a >= b, "ne": lambda a, b: a != b,
  "lerp_end": lambda a, b: a.lerp(b, 0.5), "lerp_weight": lambda a, b: a.lerp(a, b),
  "logical_and": Tensor.logical_and, "logical_or": Tensor.logical_or, "logical_xor": Tensor.logical_xor,
  "where_x": lambda a, b: (a > 2).where(b, a), "where_y": lambda a, b: (a > 2).where(a, b),
  "where_cond": lambda a, b: (b > 2).where(a, 1.0),
  "and": lambda a, b: a.int() & b.int(), "or": lambda a, b: a.int() | b.int(), "xor": lambda a, b: a.int() ^ b.int(),
  "lshift": lambda a, b: a.int() << b.int(), "rshift": lambda a, b: a.int() >> b.int(),
}


@pytest.mark.parametrize("name", list(BROADCASTING))
def test_wrong_shapes_at_every_broadcasting_entry_point(device, no_kernels, name):
  a, b = arange((2, 3), device), arange((4, 1, 2), device)
  with pytest.raises(ValueError) as e: BROADCASTING[name](a, b)
  assert "(2, 3)" in str(e.value) and "2)" in str(e.value), str(e.value)


@pytest.mark.parametrize("sa,sb", [((3,), (4,)), ((3,), (4, 5)), ((2, 3), (4,)), ((2, 3, 4), (2, 5, 6)),
                                   ((2, 3, 4), (3, 4, 5)), ((4, 2, 2, 3), (5, 3, 2)), ((0, 3), (4, 0))])
@pytest.mark.parametrize("entry", ["@", "matmul", "dot"])
def test_wrong_shapes_at_every_matmul_entry_point(device, no_kernels, sa, sb, entry):
  a, b = arange(sa, device), arange(sb, device)
  with pytest.raises(ValueError) as e:
    if entry == "@": a @ b
    else: getattr(a, entry)(b)
  assert str(sa) in str(e.value) and str(sb) in str(e.value), str(e.value)


def test_argument_errors_are_runtime_errors_too_as_in_pytorch(device, no_kernels):
  """PyTorch raises RuntimeError where teeny raises ValueError (Python's kind): teeny's ArgumentError is both."""
  from teeny.ops.args import ArgumentError
  with pytest.raises(RuntimeError) as e: arange((2, 4), device) @ arange((1, 3), device)
  assert isinstance(e.value, (ValueError, ArgumentError))
  for bad in (lambda: arange((3, 3), device).diagonal(0, 0, 0), lambda: arange((3, 4, 5), device).permute(0, 2),
              lambda: arange((3,), device).div(arange((3,), device), rounding_mode="typo"),
              lambda: Tensor.stack(arange((3,), device), arange((4,), device)), lambda: Tensor.linspace(1, 2, -1)):
    with pytest.raises(RuntimeError): bad()


def test_calls_pytorch_refuses_are_refused(device, no_kernels):
  """Each of these ran before and gave a result; PyTorch refuses them, and so does teeny now."""
  x = arange((3, 4), device)
  with pytest.raises(RuntimeError, match="twice"): x.flip((1, -1))  # (flipping axis 1 twice would be a no-op)
  with pytest.raises(RuntimeError, match="twice"): x.flip((0, 0))
  with pytest.raises(RuntimeError, match="min or max"): x.clip()
  with pytest.raises(RuntimeError, match="min or max"): x.clamp(None, None)
  with pytest.raises(RuntimeError, match="bool"): Tensor.linspace(5, 10, 3, dtype="bool", device=device)
  scalar = Tensor(3.0, device=device)
  for scan in (lambda t, a: t.cumsum(a), lambda t, a: t.cumprod(a), lambda t, a: t.cummax(a)[0], lambda t, a: t.cummin(a)[1],
               lambda t, a: t.logcumsumexp(a)):
    with pytest.raises(IndexError): scan(scalar, 1)  # a 0-d tensor has axes 0 and -1 only
    with pytest.raises(IndexError): scan(arange((5,), device), -2)
    assert scan(scalar, 0).shape == scan(scalar, -1).shape == ()
  with pytest.raises(IndexError, match="out of bounds"): x[1, 4]
  a, b, c = (Tensor([float(i)], device=device) for i in range(3))
  with pytest.raises(RuntimeError, match="not both"): Tensor.stack((a, b), c)  # (c was left out)
  with pytest.raises(RuntimeError, match="not both"): Tensor.cat([a, b], c)


def test_unfold_into_empty_windows_and_meshgrid_of_0d(device):
  """PyTorch's unfold takes size 0 (n // step + 1 windows of nothing) and meshgrid a 0-d tensor (one value)."""
  x = arange((3, 3, 3), device)
  assert x.unfold(1, 0, 8).shape == (3, 1, 3, 0) and x.unfold(2, 0, 1).shape == (3, 3, 4, 0)
  grids = Tensor.meshgrid(arange((3,), device), Tensor(10.0, device=device), arange((2,), device))
  assert [g.shape for g in grids] == [(3, 1, 2)] * 3 and (grids[1].numpy() == 10).all()


def test_matmul_of_0d(device, no_kernels):
  with pytest.raises(ValueError): Tensor(2.0, device=device) @ arange((2,), device)
  with pytest.raises(ValueError): arange((2,), device).dot(Tensor(2.0, device=device))


def test_matmul_broadcasting_batches_still_works(device):
  a, b = np.arange(24.0, dtype=np.float32).reshape(4, 1, 2, 3), np.arange(18.0, dtype=np.float32).reshape(3, 3, 2)
  np.testing.assert_allclose((Tensor(a, device=device) @ Tensor(b, device=device)).numpy(), a @ b)


# ---------------------------------------------------------------- wrong dtypes and sizes

def test_wrong_dtypes(device, no_kernels):
  x, f, b = arange((3,), device), arange((3,), device), Tensor([True, False, True], device=device)
  with pytest.raises(IndexError): x[Tensor([0.5], device=device)]  # a float index tensor: IndexError, like PyTorch
  with pytest.raises(TypeError): x[1.0]
  with pytest.raises(TypeError): ~f
  with pytest.raises(TypeError): f.bitwise_not()
  with pytest.raises(TypeError): f >> 1
  with pytest.raises(TypeError): f ^ f
  with pytest.raises(TypeError): b - b                              # PyTorch: use logical_xor
  with pytest.raises(TypeError): -b
  with pytest.raises(TypeError): b // b
  with pytest.raises(TypeError): Tensor.rand(3, dtype=dtypes.int32, device=device)
  with pytest.raises(TypeError): f.cast("complex64")
  with pytest.raises(ValueError, match="round"): f.div(f, rounding_mode="round")
  with pytest.raises(RuntimeError): (x > 1).sum().backward()        # no gradient of ints


def test_bool_arithmetic_that_pytorch_allows(device):
  a, b = np.array([True, True, False, False]), np.array([True, False, True, False])
  ta, tb = Tensor(a, device=device), Tensor(b, device=device)
  assert (ta + tb).tolist() == (a + b).tolist() and (ta + tb).dtype == dtypes.bool  # logical or
  assert (ta * tb).tolist() == (a * b).tolist()                                    # logical and
  assert (ta + 1).tolist() == (a + 1).tolist() and (ta + 1).dtype == dtypes.int32
  assert ta.sum().item() == 2 and ta.sum().dtype == dtypes.int64


@pytest.mark.parametrize("shape", [(-1,), (2, -3), (2.5,), (True,), ("3",)])
def test_bad_sizes(device, no_kernels, shape):
  for make in (Tensor.zeros, Tensor.ones, Tensor.empty, Tensor.rand, Tensor.randn):
    with pytest.raises((ValueError, TypeError)) as e: make(*shape, device=device)
    assert str(shape[-1]) in str(e.value) or repr(shape[-1]) in str(e.value), str(e.value)
  with pytest.raises((ValueError, TypeError)): Tensor.full(shape, 1.0, device=device)
  with pytest.raises((ValueError, TypeError)): Tensor.randint(0, 5, shape, device=device)


def test_bad_sizes_in_movement(device, no_kernels):
  x = arange((2, 3), device)
  with pytest.raises(ValueError): x.expand(2, -2)
  with pytest.raises(ValueError): x.reshape(-2, 3)
  with pytest.raises(TypeError): x.reshape(2.0, 3)
  with pytest.raises((ValueError, TypeError)): Tensor.eye(-1, device=device)


# ---------------------------------------------------------------- devices

@pytest.mark.parametrize("make", [
  lambda d: Tensor([1.0], device=d), lambda d: Tensor(np.ones(2), device=d), lambda d: Tensor(1.5, device=d),
  lambda d: Tensor.zeros(2, device=d), lambda d: Tensor.ones(2, device=d), lambda d: Tensor.full((2,), 3, device=d),
  lambda d: Tensor.empty(2, device=d), lambda d: Tensor.arange(3, device=d), lambda d: Tensor.eye(2, device=d),
  lambda d: Tensor.rand(2, device=d), lambda d: Tensor.randn(2, device=d), lambda d: Tensor.randint(0, 3, (2,), device=d),
  lambda d: Tensor([1.0]).to(d), lambda d: Tensor([1.0]).ones_like(device=d), lambda d: Tensor([1.0]).rand_like(device=d),
])
@pytest.mark.parametrize("name", ["FOO", "cuda", "", "LLVMX"])
def test_unknown_device_names(no_kernels, make, name):
  with pytest.raises(ValueError) as e: make(name)
  assert repr(name) in str(e.value) and "CL" in str(e.value), str(e.value)


def test_device_of_the_wrong_type(no_kernels):
  with pytest.raises(TypeError): Tensor([1.0], device=3)
  with pytest.raises(TypeError): Tensor.zeros(2, device=["CL"])
  with pytest.raises(ValueError):
    Device.DEFAULT = "NOPE"


def test_device_aliases_still_work(device):
  if device == "CL":
    from teeny.runtime import ops_cl
    aliases = ["cl", "GPU", "opencl", f"CL:{ops_cl.default_index()}"]  # (CL:k of the default device is CL)
  else: aliases = ["llvm", "CPU", "cpu", "LLVM:0"]
  for alias in aliases: assert Tensor([1.0], device=alias).device == device


# ---------------------------------------------------------------- indices

@pytest.mark.parametrize("index", [np.int64(3), np.int32(-4), (0, np.int64(4)), (slice(None), -5)])
def test_numpy_int_index_out_of_range(device, no_kernels, index):
  with pytest.raises(IndexError): arange((3, 4), device)[index]


def test_index_into_empty_axis(device, no_kernels):
  with pytest.raises(IndexError): Tensor.zeros(0, 3, device=device)[0]
  with pytest.raises(IndexError): Tensor.zeros(3, 0, device=device)[:, -1]


def test_slice_step_zero(device, no_kernels):
  with pytest.raises(ValueError): arange((4,), device)[::0]


SLICES = [np.s_[::-1], np.s_[::-2], np.s_[5:1:-3], np.s_[-1::-4], np.s_[1:-1:2, ::-1], np.s_[::3, 4:0:-2],
          np.s_[100:-100:-1], np.s_[-100:100:5], np.s_[2:2], np.s_[3:1], np.s_[..., ::-3], np.s_[None, ::-1, None, 1::2]]


@pytest.mark.parametrize("index", SLICES, ids=[str(s) for s in SLICES])
def test_slices_with_any_step_match_numpy(device, index):
  a = np.arange(56, dtype=np.float32).reshape(7, 8)
  np.testing.assert_array_equal(Tensor(a, device=device)[index].numpy(), a[index])


# ---------------------------------------------------------------- NaN and inf like numpy

SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, 100.0, -100.0, 3e38, -3e38]

ELEMENTWISE = {  # name: (teeny, numpy)
  "exp": (Tensor.exp, np.exp), "exp2": (Tensor.exp2, np.exp2), "log": (Tensor.log, np.log), "log2": (Tensor.log2, np.log2),
  "sqrt": (Tensor.sqrt, np.sqrt), "reciprocal": (Tensor.reciprocal, np.reciprocal), "neg": (lambda t: -t, np.negative),
  "abs": (Tensor.abs, np.abs), "square": (Tensor.square, np.square), "sin": (Tensor.sin, np.sin), "cos": (Tensor.cos, np.cos),
  "sigmoid": (Tensor.sigmoid, lambda a: 1 / (1 + np.exp(-a))), "tanh": (Tensor.tanh, np.tanh), "relu": (Tensor.relu, lambda a: np.maximum(a, 0)),
  "sign": (Tensor.sign, lambda a: np.where(np.isnan(a), 0, np.sign(a))),  # (PyTorch's sign(nan) is 0; numpy's NaN)
  "floor": (Tensor.floor, np.floor), "ceil": (Tensor.ceil, np.ceil), "trunc": (Tensor.trunc, np.trunc),
  "round": (Tensor.round, np.round), "clip": (lambda t: t.clip(-2, 2), lambda a: np.clip(a, -2, 2)),
  "div_by_zero": (lambda t: t / 0, lambda a: a / a.dtype.type(0)), "times_zero": (lambda t: t * 0, lambda a: a * a.dtype.type(0)),
  "minus_self": (lambda t: t - t, lambda a: a - a), "plus_inf": (lambda t: t + math.inf, lambda a: a + a.dtype.type(np.inf)),
  "floordiv_zero": (lambda t: t // 0, lambda a: np.floor_divide(a, a.dtype.type(0))),
  "mod_zero": (lambda t: t % 0, lambda a: np.mod(a, a.dtype.type(0))),
  "pow_2_5": (lambda t: t ** 2.5, lambda a: a ** a.dtype.type(2.5)), "pow_3": (lambda t: t ** 3, lambda a: a ** 3),
  "maximum": (lambda t: t.maximum(t.flip(0)), lambda a: np.maximum(a, a[::-1])),
  "minimum": (lambda t: t.minimum(t.flip(0)), lambda a: np.minimum(a, a[::-1])),
  "lt": (lambda t: t < 1, lambda a: a < 1), "le": (lambda t: t <= 1, lambda a: a <= 1), "eq": (lambda t: t == t, lambda a: a == a),
  "ne": (lambda t: t != t, lambda a: a != a), "ge": (lambda t: t >= t.flip(0), lambda a: a >= a[::-1]),
  "isnan": (Tensor.isnan, np.isnan), "isinf": (Tensor.isinf, np.isinf), "isfinite": (Tensor.isfinite, np.isfinite),
  "where_nan": (lambda t: t.isnan().where(0.0, t), lambda a: np.where(np.isnan(a), a.dtype.type(0), a)),
}

REDUCTIONS = {  # name: (teeny over axis 1, numpy over axis 1)
  "max": (lambda t: t.max(1), lambda a: a.max(1)), "min": (lambda t: t.min(1), lambda a: a.min(1)),
  "sum": (lambda t: t.sum(1), lambda a: a.sum(1)), "mean": (lambda t: t.mean(1), lambda a: a.mean(1)),
  "prod": (lambda t: t.prod(1), lambda a: a.prod(1)), "cumsum": (lambda t: t.cumsum(1), lambda a: np.cumsum(a, 1)),
  "cummax": (lambda t: t.cummax(1)[0], lambda a: np.maximum.accumulate(a, 1)),
  "argmax": (lambda t: t.argmax(1), lambda a: a.argmax(1).astype(np.int32)),
  "argmin": (lambda t: t.argmin(1), lambda a: a.argmin(1).astype(np.int32)),
}
# rows whose reductions don't depend on the order of the additions or products
REDUCE_ROWS = [[np.nan, np.inf, -np.inf], [0.0, -0.0, 1.0], [-1.0, 0.5, 2.0], [np.inf, -np.inf, 1.0], [1.0, 100.0, 3e38],
               [np.inf, 1.0, 2.0], [3e38, 3e38, 1.0], [-np.inf, -1.0, -2.0], [1.0, np.nan, 2.0], [-np.inf] * 3, [1.0, 2.0, np.nan]]


def assert_like_numpy(got: np.ndarray, want: np.ndarray, rtol: float, what: str):
  want = np.asarray(want)
  assert got.shape == want.shape, (what, got.shape, want.shape)
  if want.dtype.kind != "f":
    np.testing.assert_array_equal(got, want, err_msg=what)
    return
  g, w = got.astype(np.float64), want.astype(np.float64)
  np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=f"{what}: NaNs differ: teeny {got} numpy {want}")
  np.testing.assert_array_equal(np.where(np.isinf(g), g, 0), np.where(np.isinf(w), w, 0), err_msg=f"{what}: infs differ: teeny {got} numpy {want}")
  finite = np.isfinite(w)
  np.testing.assert_allclose(g[finite], w[finite], rtol=rtol, atol=rtol * 1e-3, err_msg=what)


def clamped(values, dtype) -> np.ndarray:
  """The values in dtype, with finite ones clamped to its range (3e38 becomes 65504 in float16)."""
  big = float(np.finfo(dtype).max)
  return np.array([[min(max(v, -big), big) if np.isfinite(v) else v for v in row] for row in np.atleast_2d(values)], dtype)


def numpy_like_teeny(np_fn, a: np.ndarray) -> np.ndarray:
  """teeny computes float16 math in float32 and rounds once: so does this reference."""
  with np.errstate(all="ignore"): want = np.asarray(np_fn(a.astype(np.float32)))
  return want.astype(a.dtype) if want.dtype == np.float32 else want


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_nan_and_inf_propagate_like_numpy_elementwise(device, dtype):
  """Every op on NaN, +-inf, +-0, +-1 and huge values, all in one kernel: the rows are stacked by padding each
  into place and adding (adding exact zeros keeps NaN, inf and every other value)."""
  a = clamped(SPECIAL, dtype)[0]
  t = Tensor(a, device=device)
  names = list(ELEMENTWISE)
  stacked = None
  for k, name in enumerate(names):
    row = ELEMENTWISE[name][0](t).float().reshape(1, len(a)).pad(((k, len(names) - 1 - k), (0, 0)))
    stacked = row if stacked is None else stacked + row
  got = stacked.numpy()
  for k, name in enumerate(names):  # every result is compared as float32 (exact for half, bool and small ints)
    want = numpy_like_teeny(ELEMENTWISE[name][1], a).astype(np.float32)
    assert_like_numpy(got[k], want, 1e-5 if dtype == np.float32 else 2e-3, name)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_nan_and_inf_propagate_like_numpy_in_reductions(device, name, dtype):
  a = clamped(REDUCE_ROWS, dtype)
  fn, np_fn = REDUCTIONS[name]
  assert_like_numpy(fn(Tensor(a, device=device)).numpy(), numpy_like_teeny(np_fn, a), 1e-5 if dtype == np.float32 else 2e-3, name)


def test_exp_overflow_in_every_float_dtype(device):
  for dtype, big in ((np.float16, 12.0), (np.float32, 89.0), (np.float64, 710.0)):
    if dtype == np.float64 and device == "CL" and not Device["CL"].info.has_fp64: continue
    assert Tensor(np.array([big], dtype), device=device).exp().numpy()[0] == np.inf
    assert Tensor(np.array([-big * 2], dtype), device=device).exp().numpy()[0] == 0.0


def test_logsumexp_softmax_with_inf_and_nan(device):
  t = Tensor(np.array([[1.0, np.inf], [1.0, np.nan], [-np.inf, -np.inf], [-np.inf, 2.0]], np.float32), device=device)
  lse = t.logsumexp(1).numpy()
  assert lse[0] == np.inf and np.isnan(lse[1]) and lse[2] == -np.inf and lse[3] == 2.0
  sm = t.softmax(1).numpy()
  assert np.isnan(sm[1]).all() and sm[3].tolist() == [0.0, 1.0]


# ---------------------------------------------------------------- empty tensors through every reduction

EMPTY_CASES = [((0,), None), ((0, 3), 0), ((3, 0), -1), ((2, 0, 3), (0, 1))]


@pytest.mark.parametrize("shape,axis", EMPTY_CASES)
def test_empty_reductions(device, shape, axis):
  a = np.zeros(shape, np.float32)
  t = Tensor(a, device=device)
  kw = dict(axis=axis)
  np.testing.assert_array_equal(t.sum(axis).numpy(), a.sum(**kw))
  np.testing.assert_array_equal(t.sum(axis, keepdim=True).numpy(), a.sum(**kw, keepdims=True))
  np.testing.assert_array_equal(t.prod(axis).numpy(), a.prod(**kw))
  with np.errstate(all="ignore"):
    np.testing.assert_array_equal(t.mean(axis).numpy(), a.mean(**kw))
    np.testing.assert_array_equal(t.var(axis).numpy(), a.var(**kw, ddof=1))
    np.testing.assert_array_equal(t.std(axis).numpy(), a.std(**kw, ddof=1))
  np.testing.assert_array_equal(t.any(axis).numpy(), a.any(**kw))
  np.testing.assert_array_equal(t.all(axis).numpy(), a.all(**kw))
  assert np.all(t.logsumexp(axis).numpy() == -np.inf) and t.logsumexp(axis).shape == a.sum(**kw).shape
  ints = Tensor(a.astype(np.int32), device=device)
  assert ints.sum(axis).dtype == dtypes.int64 and np.all(ints.sum(axis).numpy() == 0)
  GlobalCounters.reset()
  with pytest.raises(ValueError): t.max(axis)
  with pytest.raises(ValueError): t.min(axis, keepdim=True)
  empty_axis = next(i for i, s in enumerate(shape) if s == 0)
  with pytest.raises(ValueError): t.argmax(empty_axis)
  with pytest.raises(ValueError): t.argmin(empty_axis)
  if axis is None:
    with pytest.raises(ValueError): t.argmax()
  assert GlobalCounters.kernel_count == 0


def test_empty_scans_and_normalizations(device):
  t = Tensor.zeros(3, 0, device=device)
  for out in (t.cumsum(1), t.cummax(1)[0], t.softmax(1), t.log_softmax(1), t.softmax(0)):
    assert out.shape == (3, 0) and out.numpy().shape == (3, 0)


def test_reduce_a_nonempty_axis_of_an_empty_tensor(device):
  t = Tensor.zeros(0, 3, device=device)
  assert t.max(1).shape == (0,) and t.min(1).numpy().shape == (0,) and t.argmax(1).shape == (0,)


def test_matmul_with_empty_inner_dimension(device):
  a, b = np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32)
  np.testing.assert_array_equal((Tensor(a, device=device) @ Tensor(b, device=device)).numpy(), a @ b)
  assert (Tensor(b, device=device).T @ Tensor(a, device=device).T).shape == (4, 3)


# ---------------------------------------------------------------- past 32-bit indexing

def test_expand_past_2_to_31_then_pick_a_few(device):
  """The flat index of a reshaped, lazily expanded tensor passes 2**31: 64-bit index math, small result."""
  a = Tensor.arange(5, device=device).reshape(5, 1).expand(5, 2**31).reshape(-1)[::2**30]
  assert a.tolist() == [k // 2 for k in range(10)]
  b = Tensor.arange(6, device=device).reshape(2, 3, 1).expand(2, 3, 2**30).reshape(3, 2, 2**30)[:, :, -1]
  assert b.tolist() == np.arange(6).reshape(3, 2).tolist()
  n = 2**32 + 3
  c = Tensor.arange(3, device=device).reshape(3, 1).expand(3, n).reshape(-1)[2**32 + 1::2**32 + 7]
  assert c.tolist() == [(2**32 + 1 + k * (2**32 + 7)) // n for k in range(2)]


def test_reduce_over_more_than_2_to_31_elements(device):
  out = Tensor.ones(2, 1, dtype=dtypes.int32, device=device).expand(2, 2**31 + 5).sum(1)
  assert out.dtype == dtypes.int64 and out.tolist() == [2**31 + 5] * 2


# ---------------------------------------------------------------- nn entry points (conv, pooling, linear, losses)

NN_BAD_SHAPES = {  # rows not already in tests/test_nn_functional.py
  "conv weight ndim": lambda x, d: x.conv2d(Tensor.ones(4, 3, 3, device=d)),
  "conv bias shape": lambda x, d: x.conv2d(Tensor.ones(4, 3, 3, 3, device=d), bias=Tensor.ones(3, device=d)),
  "conv stride 0": lambda x, d: x.conv2d(Tensor.ones(4, 3, 3, 3, device=d), stride=0),
  "conv dilation 0": lambda x, d: x.conv2d(Tensor.ones(4, 3, 3, 3, device=d), dilation=0),
  "conv stride of 3 for 2-d": lambda x, d: x.conv2d(Tensor.ones(4, 3, 3, 3, device=d), stride=(1, 1, 1)),
  "conv_transpose channels": lambda x, d: x.conv_transpose2d(Tensor.ones(4, 4, 3, 3, device=d)),
  "max_pool window > input": lambda x, d: x.max_pool2d(9),
  "avg_pool stride 0": lambda x, d: x.avg_pool2d(2, stride=0),
  "linear in-features": lambda x, d: x.reshape(2, -1).linear(Tensor.ones(5, 10, device=d)),
  "linear bias": lambda x, d: x.reshape(2, -1).linear(Tensor.ones(192, 10, device=d), Tensor.ones(9, device=d)),
  "bce shapes": lambda x, d: Tensor.ones(4, device=d).sigmoid().binary_crossentropy(Tensor.ones(3, device=d)),
  "mse shapes": lambda x, d: Tensor.ones(4, device=d).mse(Tensor.ones(3, device=d)),
  "ce probabilities shape": lambda x, d: Tensor.ones(4, 5, device=d).cross_entropy(Tensor.ones(4, 4, device=d)),
}


@pytest.mark.parametrize("name", list(NN_BAD_SHAPES))
def test_wrong_shapes_at_nn_entry_points(device, no_kernels, name):
  x = Tensor.ones(2, 3, 8, 8, device=device)
  with pytest.raises(ValueError): NN_BAD_SHAPES[name](x, device)


def test_cross_entropy_class_out_of_range_is_nan_not_a_number(device):
  """A class index outside [0, C) can't be checked without reading the targets; its row's loss is NaN (PyTorch
  raises), so the mean is visibly wrong, never a plausible number. ignore_index rows still count for nothing."""
  logits = Tensor(np.zeros((4, 5), np.float32), device=device)
  for bad in (7, 5, -3):
    target = Tensor([0, 1, 2, bad], device=device)
    assert np.isnan(logits.cross_entropy(target).item()) and np.isnan(logits.cross_entropy(target, reduction="sum").item())
    rows = logits.cross_entropy(target, reduction="none").numpy()
    assert np.isnan(rows[3]) and np.allclose(rows[:3], np.log(5))
  ok = logits.cross_entropy(Tensor([0, 1, 2, -100], device=device)).item()
  assert np.isclose(ok, np.log(5))
  assert np.isnan(logits.sparse_categorical_crossentropy(Tensor([0, 9, 1, 2], device=device)).item())


def test_sizes_that_arent_ints_are_type_and_value_errors(device, no_kernels):
  """PyTorch raises TypeError for Tensor.zeros((2, 2), 2), tinygrad ValueError: teeny's SizeError is both."""
  for make in (Tensor.zeros, Tensor.ones, Tensor.rand, Tensor.randn, Tensor.empty):
    for sizes in (((2, 2), 2, 2), ((2, 2), (2, 2)), ((128, 128), 0.0, 0.01)):
      with pytest.raises(TypeError): make(*sizes, device=device)
      with pytest.raises(ValueError): make(*sizes, device=device)
  with pytest.raises(ValueError): Tensor.kaiming_uniform((-3, 3), 3, device=device)


def test_reshape_none_keeps_that_axis(device):
  """tinygrad's x.reshape(None, ..., n): None at position i is the size of axis i."""
  x = arange((4, 3, 6), device)
  assert x.reshape(None, None, 2, 3).shape == (4, 3, 2, 3) and x.reshape((None, -1)).shape == (4, 18)
  np.testing.assert_array_equal(x.reshape(None, 18).numpy(), np.arange(1, 73, dtype=np.float32).reshape(4, 18))
  with pytest.raises(TypeError): x.reshape(None, None, None, None)  # (no axis 3 to keep)


def test_rounding_keeps_the_sign_of_zero(device):
  """round(-0.4) was +0.0 (floor(-0.4) + 1); numpy and PyTorch give -0.0, as trunc, ceil and floor do."""
  a = np.array([-0.4, -0.5, -0.0, 0.4, -0.6, 0.0], np.float32)
  t = Tensor(a, device=device)
  for name, fn, np_fn in (("round", Tensor.round, np.round), ("trunc", Tensor.trunc, np.trunc), ("ceil", Tensor.ceil, np.ceil),
                          ("floor", Tensor.floor, np.floor)):
    got = fn(t).numpy()
    np.testing.assert_array_equal(got, np_fn(a), err_msg=name)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(np_fn(a)), err_msg=name)
