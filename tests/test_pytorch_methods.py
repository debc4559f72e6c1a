"""PyTorch's Tensor methods teeny spells as PyTorch does (teeny/ops/pytorch.py, pytorch_math.py,
pytorch_shape.py): the casts and new_* constructors, the elementwise methods (fmax, logit, xlogy, hypot, erfc,
...), and the ones that move, split and pick elements (movedim, narrow, tensor_split, rot90, diff, index_select,
index_add, take_along_dim, ...). Values are checked against numpy (or written out where PyTorch's answer is not
numpy's: NaN handling, signs of zeros), gradients against the derivative worked out by hand, and both against
PyTorch where it is installed (tests/like_torch.py), with the special values where the semantics differ."""
import math
import numpy as np
import pytest
from teeny import Tensor, dtypes
from like_torch import assert_like_torch, torch

nan, inf = np.nan, np.inf
rng = np.random.default_rng(7)
X = np.array([-2.5, -1.0, -0.0, 0.0, 0.3, 1.0, 2.5, inf, -inf, nan], np.float32)
Y = np.array([2.0, -0.0, 1.0, 0.0, 0.3, nan, -2.0, 1.0, inf, 3.0], np.float32)
M = (np.arange(12, dtype=np.float32) - 5).reshape(3, 4)
A = np.arange(24, dtype=np.float32).reshape(2, 3, 4)


def test_casts_and_the_as_spellings(device):
  x = Tensor([1.5, -2.0], device=device)
  assert Tensor([200.0, 3.0], device=device).byte().dtype == dtypes.uint8
  np.testing.assert_array_equal(Tensor([-100.0, 3.7], device=device).char().numpy(), np.array([-100, 3], np.int8))
  assert x.nelement() == 2 and Tensor.ones(2, 3, device=device).nelement() == 6
  assert Tensor([1, 2], device=device).type_as(x).dtype == dtypes.float32
  assert Tensor([1, 2], device=device).expand_as(Tensor.ones(3, 2, device=device)).shape == (3, 2)
  np.testing.assert_array_equal(Tensor(np.arange(4), device=device).view_as(Tensor.ones(2, 2, device=device)).numpy(), [[0, 1], [2, 3]])
  assert Tensor(np.arange(4), device=device).reshape_as(Tensor.ones(4, 1, device=device)).shape == (4, 1)
  with pytest.raises(TypeError, match="must be a Tensor"): x.type_as(np.ones(2))
  with pytest.raises(ValueError): x.expand_as(Tensor.ones(3, device=device))


def test_new_constructors_take_self_dtype_and_device(device):
  x = Tensor([1.0, 2.0], device=device)
  for made in (x.new_zeros(2, 3), x.new_zeros((2, 3)), x.new_ones([2, 3]), x.new_empty(2, 3), x.new_full((2, 3), 1.5)):
    assert made.shape == (2, 3) and made.dtype == dtypes.float32 and made.device == device
  assert x.new_ones(()).shape == () and x.new_ones(2, dtype=dtypes.int32).dtype == dtypes.int32
  np.testing.assert_array_equal(Tensor([1], device=device).new_full((2,), 1.5).numpy(), [1, 1])  # (int: truncated, as torch's)
  assert x.new_tensor([1, 2]).dtype == dtypes.float32 and Tensor([1], device=device).new_tensor([3]).dtype == dtypes.int32
  leaf = x.new_zeros(2, requires_grad=True)
  assert leaf.requires_grad and leaf.is_leaf
  # new_tensor copies a tensor and leaves its graph behind, as torch's does
  source = Tensor([1.0, 2.0], device=device, requires_grad=True)
  copy = x.new_tensor(source * 2, dtype=dtypes.float64)
  assert not copy.requires_grad and copy.dtype == dtypes.float64
  np.testing.assert_array_equal(copy.numpy(), [2.0, 4.0])


NO_GRADIENT = {"grad": False}  # (PyTorch has no derivative of heaviside; floor_divide passes none in either)
# name -> (the call, on teeny's tensors and on torch's; numpy's answer, or PyTorch's written out; the inputs[; the
# comparison with PyTorch's settings])
ELEMENTWISE = {
  "clamp_min": (lambda make, a: a.clamp_min(0.3), lambda a: np.maximum(a, np.float32(0.3)), (X,)),
  "clamp_max": (lambda make, a: a.clamp_max(0.3), lambda a: np.minimum(a, np.float32(0.3)), (X,)),
  "fmax": (lambda make, a, b: a.fmax(b), np.fmax, (X, Y)),
  "fmin": (lambda make, a, b: a.fmin(b), np.fmin, (X, Y)),
  "fmax_0d": (lambda make, a: a.fmax(make(np.float32(0.5))), lambda a: np.fmax(a, np.float32(0.5)), (X,)),
  "frac": (lambda make, a: a.frac(), lambda a: a - np.trunc(a), (X,)),
  "deg2rad": (lambda make, a: a.deg2rad(), np.deg2rad, (X,)),
  "rad2deg": (lambda make, a: a.rad2deg(), np.rad2deg, (X,)),
  "sgn": (lambda make, a: a.sgn(), lambda a: np.where(np.isnan(a), 0, np.sign(a)), (X,)),  # (NaN: 0, as torch's)
  "signbit": (lambda make, a: a.signbit(), np.signbit, (np.concatenate([X, -np.abs(X[-1:])]),)),  # (-0.0 and -NaN)
  "isposinf": (lambda make, a: a.isposinf(), np.isposinf, (X,)),
  "isneginf": (lambda make, a: a.isneginf(), np.isneginf, (X,)),
  "sinc": (lambda make, a: a.sinc(), np.sinc, (np.array([0.0, 0.5, 0.25, -2.5, 3.3, inf, nan], np.float32),)),
  "hypot": (lambda make, a, b: a.hypot(b), np.hypot, (np.array([0.0, 3.0, 1e30, 1e-30, -5.0, inf, nan, -inf], np.float32),
                                                      np.array([0.0, 4.0, 1e30, 1e-30, 12.0, nan, inf, 1.0], np.float32))),
  "logaddexp2": (lambda make, a, b: a.logaddexp2(b), np.logaddexp2, (np.array([0.0, inf, -inf, 1000.0, 0.0, 2.0, 1.0], np.float32),
                                                                     np.array([0.0, inf, -inf, 999.0, -30.0, 2.0, -inf], np.float32))),
  "nan_to_num": (lambda make, a: a.nan_to_num(), np.nan_to_num, (X,)),
  "nan_to_num_values": (lambda make, a: a.nan_to_num(1.5, 9.0, -9.0), lambda a: np.nan_to_num(a, nan=1.5, posinf=9.0, neginf=-9.0), (X,)),
  "nan_to_num_float64": (lambda make, a: a.nan_to_num(), np.nan_to_num, (X.astype(np.float64),)),
  # heaviside: NaN gives 0 in PyTorch (numpy: NaN)
  "heaviside": (lambda make, a, v: a.heaviside(v), lambda a, v: np.where(np.isnan(a), 0, np.heaviside(a, v)), (X, np.float32(0.5)), NO_GRADIENT),
  "true_divide": (lambda make, a, b: a.true_divide(b), np.true_divide, (np.array([1, -7, 6]), np.array([2, 2, -4]))),
  "floor_divide": (lambda make, a, b: a.floor_divide(b), np.floor_divide, (np.array([-7, 7, -7, 7, 6]), np.array([2, -2, -2, 2, 3]))),
  "floor_divide_float": (lambda make, a, b: a.floor_divide(b), np.floor_divide, (np.array([-7.5, 7.5, 1.0, -0.0], np.float32),
                                                                                 np.array([2.0, -2.0, 0.1, 3.0], np.float32)), NO_GRADIENT),
  "remainder": (lambda make, a, b: a.remainder(b), np.remainder, (np.array([-7, 7, -7, 7, 6]), np.array([2, -2, -2, 2, 3]))),
  "remainder_float": (lambda make, a, b: a.remainder(b), np.remainder, (np.array([-7.5, 7.5, -0.0, 5.0, -5.0, 1.0], np.float32),
                                                                         np.array([2.0, -2.0, 2.0, inf, inf, 0.1], np.float32))),
  "addcmul": (lambda make, a, b, c: a.addcmul(b, c, value=0.5), lambda a, b, c: a + 0.5 * b * c,
              (np.ones((2, 3), np.float32), np.arange(3, dtype=np.float32), M[:2, :3].copy())),
  "addcdiv": (lambda make, a, b, c: a.addcdiv(b, c, value=2), lambda a, b, c: a + 2 * b / c,
              (np.ones((2, 3), np.float32), np.arange(3, dtype=np.float32), M[1:, 1:].copy())),
  "addcmul_int": (lambda make, a, b, c: a.addcmul(b, c, value=2), lambda a, b, c: a + 2 * b * c, (np.array([1, 2]), np.array([3, 4]), np.array([-1, 5]))),
}


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_methods_match_numpy_and_torch(device, name):
  call, reference, arrays, *settings = ELEMENTWISE[name]
  got = call(lambda a: Tensor(a, device=device), *(Tensor(a, device=device) for a in arrays))
  with np.errstate(all="ignore"): want = np.asarray(reference(*arrays))
  assert got.shape == want.shape
  np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-30)
  assert_like_torch(device, call, *arrays, **(settings[0] if settings else {}))


def test_fmax_and_fmin_ignore_nan_and_send_ties_to_self(device):
  """fmax(1, NaN) is 1 and fmax(NaN, NaN) NaN; the gradient goes to self where self >= other or other is NaN."""
  a, b = Tensor(X, device=device, requires_grad=True), Tensor(Y, device=device, requires_grad=True)
  a.fmax(b).sum().backward()
  to_self = (X >= Y) | np.isnan(Y)
  np.testing.assert_array_equal(a.grad.numpy(), to_self.astype(np.float32))
  np.testing.assert_array_equal(b.grad.numpy(), (~to_self).astype(np.float32))
  assert Tensor([nan], device=device).fmin(nan).isnan().item()
  np.testing.assert_array_equal(Tensor([1, 5], device=device).fmax(Tensor([3, 2], device=device)).numpy(), [3, 5])


def test_remainder_has_the_divisors_sign_and_pytorchs_gradient(device):
  """-7.5 remainder 2 is 0.5 and 7.5 remainder -2 is -0.5 (Python's %, not C's fmod); the gradient for other is
  -floor(self / other)."""
  x, y = Tensor([-7.5, 7.5, 3.0], device=device, requires_grad=True), Tensor([2.0, -2.0, 4.0], device=device, requires_grad=True)
  np.testing.assert_array_equal(x.remainder(y).numpy(), [0.5, -0.5, 3.0])
  x.remainder(y).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [1, 1, 1])
  np.testing.assert_array_equal(y.grad.numpy(), [4, 4, 0])
  assert_like_torch(device, lambda make, a, b: a.remainder(b), np.array([-7.5, 7.5, 3.0], np.float32), np.array([2.0, -2.0, 4.0], np.float32))
  # an int divided by 0 gives 0 (numpy's answer; PyTorch raises, which a lazy graph can't)
  assert Tensor([5], device=device).floor_divide(0).item() == 0 and Tensor([5], device=device).remainder(0).item() == 0


@pytest.mark.parametrize("eps", [None, 0.1])
def test_logit_values_and_gradients_outside_and_at_the_bounds(device, eps):
  """Without eps: -inf and inf at 0 and 1, NaN (value and gradient) outside [0, 1]; with eps, p clamped into
  [eps, 1 - eps] and the gradient 0 beyond, passing at the bounds themselves (PyTorch's rule)."""
  p = np.array([0.0, 0.1, 0.5, 0.9, 1.0, 1.5, -0.5, nan, 0.05, 0.95], np.float32)
  t = Tensor(p, device=device, requires_grad=True)
  out = t.logit(eps)
  q = p.astype(np.float64) if eps is None else np.clip(p.astype(np.float64), eps, 1 - eps)
  with np.errstate(all="ignore"):
    np.testing.assert_allclose(out.numpy(), np.log(q / (1 - q)), rtol=1e-5)
    out.sum().backward()
    slope = 1 / (p * (1 - p.astype(np.float64)))
    want = np.where((p < 0) | (p > 1), nan, slope) if eps is None else np.where((p < eps) | (p > 1 - eps), 0.0, slope)
  np.testing.assert_allclose(t.grad.numpy(), want, rtol=1e-5)
  assert_like_torch(device, lambda make, a: a.logit(eps), p, rtol=1e-5)
  assert Tensor([0, 1], device=device).logit().numpy().tolist() == [-inf, inf]  # (ints: the default float)


def test_xlogy_is_zero_at_zero_but_nan_beside_nan(device):
  """x log y, 0 where x is 0 even for y = 0 or inf, NaN where y is NaN; PyTorch's gradients: log y for x (0 where
  x is 0 and y <= 0) and x / y for y (NaN at 0 / 0)."""
  x = np.array([0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0, -1.0, 3.0], np.float32)
  y = np.array([nan, 0.0, 0.0, 3.0, 2.0, -1.0, inf, 2.0, 0.5], np.float32)
  tx, ty = Tensor(x, device=device, requires_grad=True), Tensor(y, device=device, requires_grad=True)
  out = tx.xlogy(ty)
  with np.errstate(all="ignore"):
    want = np.where(np.isnan(y), nan, np.where(x == 0, 0.0, x * np.log(y)))
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(tx.grad.numpy(), np.where((x == 0) & (y <= 0), 0.0, np.log(y)), rtol=1e-6)
    np.testing.assert_allclose(ty.grad.numpy(), x / y, rtol=1e-6)
  assert_like_torch(device, lambda make, a, b: a.xlogy(b), x, y)
  np.testing.assert_allclose(Tensor([0.0, 1.0], device=device).xlogy(2).numpy(), [0.0, math.log(2)], rtol=1e-6)


def test_sinc_is_one_at_zero_with_an_exact_gradient_near_it(device):
  """sinc's gradient is 0 at 0 and right at 1e-4, where sin(t)/t's quotient rule cancels (PyTorch's gradient is
  3x off there and 4e-5 at -0.01, so the comparison with it skips them): checked against the derivative in
  float64."""
  x = np.array([0.0, 1e-4, -0.01, 0.1, 0.5, 2.3], np.float32)
  t = Tensor(x, device=device, requires_grad=True)
  np.testing.assert_allclose(t.sinc().numpy(), np.sinc(x), rtol=1e-6, atol=1e-7)
  t.sinc().sum().backward()
  w = np.pi * x.astype(np.float64)
  with np.errstate(all="ignore"): slope = np.where(x == 0, 0.0, (w * np.cos(w) - np.sin(w)) / (w * x))
  np.testing.assert_allclose(t.grad.numpy(), slope, rtol=1e-5, atol=1e-7)
  assert_like_torch(device, lambda make, a: a.sinc(), x[3:], rtol=1e-5)
  np.testing.assert_allclose(Tensor(x.astype(np.float64), device=device).sinc().numpy(), np.sinc(x.astype(np.float64)), rtol=1e-15)


def test_hypot_does_not_overflow_and_has_pytorchs_gradients(device):
  a = np.array([3.0, 1e30, 1e-30, -5.0, 0.0], np.float32)
  b = np.array([4.0, 1e30, 1e-30, 12.0, 0.0], np.float32)
  ta, tb = Tensor(a, device=device, requires_grad=True), Tensor(b, device=device, requires_grad=True)
  out = ta.hypot(tb)
  np.testing.assert_allclose(out.numpy(), np.hypot(a, b), rtol=1e-6)
  out.sum().backward()
  with np.errstate(all="ignore"): h = np.hypot(a.astype(np.float64), b)
  np.testing.assert_allclose(ta.grad.numpy(), a / h, rtol=1e-6)  # (NaN at the origin, as PyTorch's)
  np.testing.assert_allclose(tb.grad.numpy(), b / h, rtol=1e-6)
  with pytest.raises(TypeError, match="float"): Tensor([3], device=device).hypot(Tensor([4], device=device))


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-13)])
def test_erfc_keeps_its_relative_precision_far_right(device, dtype, rtol):
  """erfc(10) is 2.1e-45 (1 - erf gives 0), erfc(25) is 8e-274 in float64; values against math.erfc (float32
  within teeny's exp's error: exp(-x^2) at x = 8 costs 6e-6), the gradient -2/sqrt(pi) exp(-x^2)."""
  x = np.array([-5.0, -0.5, 0.0, 0.5, 0.99, 1.0, 1.4, 1.5, 2.0, 2.9, 3.0, 5.0, 8.0, 9.0, 25.0, 30.0, inf, -inf, nan], dtype)
  t = Tensor(x, device=device, requires_grad=True)
  want = np.array([math.erfc(v) for v in x.tolist()])
  np.testing.assert_allclose(t.erfc().numpy(), want, rtol=rtol, atol=np.finfo(dtype).tiny)
  t.erfc().sum().backward()
  np.testing.assert_allclose(t.grad.numpy(), -2 / np.sqrt(np.pi) * np.exp(-x.astype(np.float64) ** 2), rtol=rtol, atol=np.finfo(dtype).tiny)
  assert_like_torch(device, lambda make, a: a.erfc(), x, rtol=rtol, atol=float(np.finfo(dtype).tiny))
  assert Tensor([0, 1], device=device).erfc().dtype == dtypes.float32


def test_elementwise_errors(device):
  """The dtypes PyTorch refuses, as TypeErrors that are RuntimeErrors too."""
  ints = Tensor([1, 2], device=device)
  for bad in (ints.frac, lambda: Tensor([1.0], device=device).heaviside(ints), lambda: ints.addcdiv(ints, ints)):
    with pytest.raises(TypeError): bad()
    with pytest.raises(RuntimeError): bad()
  with pytest.raises(TypeError, match="floating point"): ints.addcmul(ints, ints, value=0.5)
  with pytest.raises(TypeError, match="must be a Tensor"): ints.addcmul(1, ints)


def test_t_swapaxes_movedim_narrow(device):
  a, m = Tensor(A, device=device), Tensor(M, device=device)
  np.testing.assert_array_equal(m.t().numpy(), M.T)
  assert Tensor([1, 2], device=device).t().shape == (2,) and Tensor(1.0, device=device).t().shape == ()
  np.testing.assert_array_equal(a.swapaxes(0, -1).numpy(), np.swapaxes(A, 0, -1))
  np.testing.assert_array_equal(a.swapdims(1, 2).numpy(), np.swapaxes(A, 1, 2))
  assert Tensor(3.0, device=device).swapaxes(0, -1).item() == 3.0  # (dims 0 and -1 of a 0-d tensor: an internal IndexError)
  with pytest.raises(IndexError, match="out of range"): Tensor(3.0, device=device).transpose(0, 1)
  for source, destination in [(0, -1), ((0, 1), (2, 0)), ([2], [0]), ((), ())]:
    np.testing.assert_array_equal(a.movedim(source, destination).numpy(), np.moveaxis(A, source, destination))
    np.testing.assert_array_equal(a.moveaxis(source, destination).numpy(), np.moveaxis(A, source, destination))
  for start, length in [(1, 2), (-3, 2), (0, 0), (4, 0), (Tensor(1, device=device), 3)]:
    begin = int(start) % 4 if int(start) < 0 else int(start)
    np.testing.assert_array_equal(m.narrow(1, start, length).numpy(), M[:, begin:begin + length])
  with pytest.raises(RuntimeError, match="2 dimensions"): a.t()
  with pytest.raises(RuntimeError, match="repeated"): a.movedim((0, 0), (1, 2))
  with pytest.raises(RuntimeError, match="numbers of dims"): a.movedim((0, 1), (1,))
  with pytest.raises(IndexError): a.movedim(0, 3)
  with pytest.raises(RuntimeError, match="doesn't fit"): m.narrow(1, 3, 2)
  with pytest.raises(IndexError): m.narrow(1, -5, 1)
  assert_like_torch(device, lambda make, x: x.movedim((0, 1), (2, 0)).narrow(0, 1, 2), A)


def test_unbind_and_the_splits(device):
  m, a = Tensor(M, device=device), Tensor(A, device=device)
  pieces = m.unbind(1)
  assert len(pieces) == 4 and all(p.shape == (3,) for p in pieces)
  np.testing.assert_array_equal(pieces[2].numpy(), M[:, 2])
  cases = [(m, 3, 1), (m, [1, 3], 1), (m, [-2, 10], 1), (m, [3, 1], 1), (m, 2, 0), (a, 5, 2)]
  for t, split, dim in cases:
    want = np.array_split(t.numpy(), split, axis=dim)  # (numpy's array_split: tensor_split's rule, int and indices)
    got = t.tensor_split(split, dim)
    assert len(got) == len(want)
    for g, w in zip(got, want): np.testing.assert_array_equal(g.numpy(), w)
    # given as an int tensor, 0-d or 1-d, as torch takes it too (a 0-d one gave one piece)
    got = t.tensor_split(Tensor(np.array(split, np.int32), device=device), dim)
    assert len(got) == len(want)
    for g, w in zip(got, want): np.testing.assert_array_equal(g.numpy(), w)
  for got, want in [(m.hsplit(2), np.hsplit(M, 2)), (m.vsplit([1]), np.vsplit(M, [1])), (a.dsplit(2), np.dsplit(A, 2)),
                    (Tensor(np.arange(6), device=device).hsplit(3), np.hsplit(np.arange(6), 3))]:
    assert len(got) == len(want)
    for g, w in zip(got, want): np.testing.assert_array_equal(g.numpy(), w)
  with pytest.raises(IndexError): Tensor(1.0, device=device).unbind()
  with pytest.raises(RuntimeError, match="divide"): m.hsplit(3)
  with pytest.raises(RuntimeError, match="2 or more"): Tensor([1, 2], device=device).vsplit(2)
  with pytest.raises(RuntimeError, match="> 0"): m.tensor_split(0)
  assert_like_torch(device, lambda make, x: x.tensor_split([1, 3], dim=1)[1] * 2, M)


def test_flips_rot90_and_tile(device):
  a, m = Tensor(A, device=device), Tensor(M, device=device)
  np.testing.assert_array_equal(a.fliplr().numpy(), np.fliplr(A))
  np.testing.assert_array_equal(a.flipud().numpy(), np.flipud(A))
  for k in range(-2, 6):
    np.testing.assert_array_equal(m.rot90(k).numpy(), np.rot90(M, k), err_msg=f"k={k}")
    np.testing.assert_array_equal(a.rot90(k, (2, 0)).numpy(), np.rot90(A, k, (2, 0)), err_msg=f"k={k}")
  for reps in [(2,), (2, 1), (1, 2, 2), 2]:
    np.testing.assert_array_equal(m.tile(reps).numpy(), np.tile(M, reps))
  np.testing.assert_array_equal(m.tile(2, 1).numpy(), np.tile(M, (2, 1)))
  with pytest.raises(RuntimeError, match="2 or more|at least 2"): Tensor([1, 2], device=device).fliplr()
  with pytest.raises(RuntimeError, match="different dims"): m.rot90(1, (0, 0))
  with pytest.raises(RuntimeError, match="2 dims"): m.rot90(1, (0,))
  assert_like_torch(device, lambda make, x: x.rot90(1, (2, 0)).tile((2, 1, 1)).fliplr(), A)


def test_diff_with_prepend_append_and_bools(device):
  m = Tensor(M * M, device=device)
  for n, dim in [(1, -1), (2, 0), (0, 1), (5, 1)]:
    np.testing.assert_array_equal(m.diff(n, dim).numpy(), np.diff(M * M, n, dim))
  before, after = np.ones((3, 1), np.float32), np.zeros((3, 2), np.float32)
  got = m.diff(1, 1, Tensor(before, device=device), Tensor(after, device=device))
  np.testing.assert_array_equal(got.numpy(), np.diff(M * M, 1, 1, prepend=before, append=after))
  bools = np.array([True, False, False, True])
  np.testing.assert_array_equal(Tensor(bools, device=device).diff().numpy(), np.diff(bools))
  with pytest.raises(RuntimeError, match="1 dimension"): Tensor(5, device=device).diff()
  with pytest.raises(TypeError, match="must be a Tensor"): m.diff(prepend=0)
  with pytest.raises(RuntimeError, match="dims"): m.diff(dim=1, prepend=Tensor([0.0], device=device))
  assert_like_torch(device, lambda make, x, p: x.diff(2, 1, prepend=p), M, before)


def test_index_select_add_copy_fill(device):
  """numpy's take, add.at and writes, a negative index counted from the end; the gradients: summed over repeated
  selections, self's passing where nothing was written."""
  index = np.array([3, 0, 3, -1])
  t = Tensor(M, device=device, requires_grad=True)
  out = t.index_select(1, Tensor(index, device=device))
  np.testing.assert_array_equal(out.numpy(), np.take(M, index, axis=1))
  out.sum().backward()
  np.testing.assert_array_equal(t.grad.numpy(), np.tile([1, 0, 0, 3], (3, 1)))
  assert Tensor(M, device=device).index_select(0, Tensor(1, device=device)).shape == (1, 4)
  source = np.arange(9, dtype=np.float32).reshape(3, 3)
  added = M.copy()
  np.add.at(added, (slice(None), [0, 3, 0]), 2 * source)
  got = Tensor(M, device=device).index_add(1, Tensor([0, 3, 0], device=device), Tensor(source, device=device), alpha=2)
  np.testing.assert_array_equal(got.numpy(), added)
  copied = M.copy()
  copied[:, [3, 0]] = source[:, :2]
  got = Tensor(M, device=device).index_copy(1, Tensor([3, 0], device=device), Tensor(source[:, :2], device=device))
  np.testing.assert_array_equal(got.numpy(), copied)
  filled = M.copy()
  filled[:, [0, 3]] = -1
  np.testing.assert_array_equal(Tensor(M, device=device).index_fill(1, Tensor([0, -1, 0], device=device), -1.0).numpy(), filled)
  np.testing.assert_array_equal(Tensor([1, 2], device=device).index_fill(0, Tensor([0], device=device), 2.7).numpy(), [2, 2])
  value = Tensor(7.0, device=device, requires_grad=True)
  Tensor(M, device=device).index_fill(0, Tensor([0, 2], device=device), value).sum().backward()
  assert value.grad.item() == 8.0  # (the 8 places it fills)
  assert_like_torch(device, lambda make, x, s: x.index_add(1, make([0, 3, 0]), s, alpha=2).index_select(0, make([2, 2])), M, source)
  assert_like_torch(device, lambda make, x, s: x.index_copy(1, make([3, 0]), s).index_fill(0, make([1]), 5.0), M, source[:, :2].copy())


def test_take_and_take_along_dim(device):
  m = Tensor(M, device=device)
  flat_index = np.array([[0, 11], [-1, 5]])
  np.testing.assert_array_equal(m.take(Tensor(flat_index, device=device)).numpy(), np.take(M, flat_index))
  along = np.array([[0, 3], [1, 1], [2, -1]])
  np.testing.assert_array_equal(m.take_along_dim(Tensor(along, device=device), 1).numpy(), np.take_along_axis(M, along, 1))
  column = np.array([[1], [2], [0]])  # (broadcast in the other dims, as numpy's take_along_axis)
  np.testing.assert_array_equal(m.take_along_dim(Tensor(column, device=device), dim=1).numpy(), np.take_along_axis(M, column, 1))
  cube = np.array([[[1, 0]]])
  np.testing.assert_array_equal(Tensor(A, device=device).take_along_dim(Tensor(cube, device=device), 2).numpy(), np.take_along_axis(A, np.broadcast_to(cube, (2, 3, 2)), 2))
  np.testing.assert_array_equal(m.take_along_dim(Tensor([11, 0], device=device)).numpy(), M.reshape(-1)[[11, 0]])
  descending = m.take_along_dim(m.argsort(1, descending=True), 1)
  np.testing.assert_array_equal(descending.numpy(), -np.sort(-M, 1))
  with pytest.raises(TypeError): m.take(Tensor([1.0], device=device))
  with pytest.raises(RuntimeError, match="dims of self"): m.take_along_dim(Tensor([1, 2], device=device), dim=1)
  with pytest.raises(RuntimeError, match="broadcast"): m.take_along_dim(Tensor([[1, 2]], device=device), dim=0)
  assert_like_torch(device, lambda make, x: x.take(make(flat_index)) + x.take_along_dim(make(along), 1)[:2], M)


def test_index_op_errors(device):
  m = Tensor(M, device=device)
  with pytest.raises(RuntimeError, match="vector"): m.index_select(1, Tensor([[1]], device=device))
  with pytest.raises(TypeError): m.index_select(1, Tensor([1.0], device=device))
  with pytest.raises(RuntimeError, match="must be"): m.index_add(0, Tensor([1, 1], device=device), Tensor.ones(3, 4, device=device))
  with pytest.raises(RuntimeError, match="dtype"): m.index_add(0, Tensor([1], device=device), Tensor.ones(1, 4, dtype=dtypes.int32, device=device))
  with pytest.raises(TypeError, match="floating point"): Tensor([1, 2], device=device).index_add(0, Tensor([1], device=device), Tensor([1], device=device), alpha=0.5)
  with pytest.raises(RuntimeError, match="0-d"): m.index_fill(1, Tensor([1], device=device), Tensor([7.0], device=device))
  if torch is not None:  # (the same calls raise in PyTorch too)
    with pytest.raises(RuntimeError): torch.tensor(M).index_fill(1, torch.tensor([1]), torch.tensor([7.0]))


def test_round_to_decimals_and_nan_to_num_of_none(device):
  """round(decimals=d) raised (tinygrad's round has no decimals); PyTorch's: x * 10^d rounded half to even, over
  10^d, and for d < 0 x / 10^-d rounded, times 10^-d; half floats in float32 (float16's 10^5 is inf), an int
  tensor refused. nan_to_num(nan=None) raised: PyTorch reads None as its default, 0."""
  v = np.array([1.2345, -2.5, 1250.0, 0.125, 0.0151, -0.005, 2.675, 1350.0], np.float32)
  for d in (2, 1, 3, -1, -2):
    scale = np.float32(10.0 ** abs(d))
    want = np.round(v * scale) / scale if d > 0 else np.round(v / scale) * scale
    np.testing.assert_array_equal(Tensor(v, device=device).round(decimals=d).numpy(), want)
  assert Tensor([1.5], dtype=dtypes.float16, device=device).round(decimals=5).item() == 1.5
  with pytest.raises(TypeError, match="float tensor"): Tensor([1, 2], device=device).round(decimals=1)
  with pytest.raises(TypeError, match="decimals"): Tensor([1.0], device=device).round(decimals=1.5)
  assert Tensor([math.nan, 1.0], device=device).nan_to_num(nan=None).tolist() == [0.0, 1.0]
