"""Regression tests for bugs the differential fuzzer (tests/fuzz) found. Each test's docstring says what broke."""
import numpy as np
from teeny import Tensor, Device, dtypes


def test_zero_dim_numpy_array_keeps_its_shape(device):
  """Tensor(np.array(3)) came out with shape (1,): np.ascontiguousarray turns 0-d arrays into 1-d ones."""
  for a in (np.array(3, dtype=np.int32), np.array(2.5, dtype=np.float32), np.array(True)):
    t = Tensor(a, device=device)
    assert t.shape == () and t.numpy().shape == ()
    assert t.item() == a.item()
  assert (Tensor(np.array(4, dtype=np.int32), device=device) + Tensor([1, 2], device=device)).shape == (2,)
  assert Tensor(np.array(7, dtype=np.int64), device=device).dtype == dtypes.int64


def test_realize_all_with_the_same_tensor_twice(device):
  """Tensor.realize_all(t, t) raised KeyError: the second copy looked up the buffer view the first had become."""
  x = Tensor([1.0, 2.0], device=device)
  y = x * 3
  Tensor.realize_all(y, x, y)
  np.testing.assert_equal(y.numpy(), [3.0, 6.0])
  z = (x + 1).reshape(2, 1)
  z.realize(z)
  np.testing.assert_equal(z.numpy(), [[2.0], [3.0]])


def test_softmax_family_of_empty_axis(device):
  """softmax/log_softmax over an empty axis raised (they take a max first); PyTorch returns an empty tensor, and
  logsumexp over an empty axis is -inf (the log of an empty sum)."""
  x = Tensor.zeros(0, 3, device=device)
  assert x.softmax(0).shape == (0, 3) and x.log_softmax(0).shape == (0, 3) and x.softmax(1).shape == (0, 3)
  lse = x.logsumexp(0)
  assert lse.shape == (3,) and np.all(lse.numpy() == -np.inf)
  assert x.logsumexp(0, keepdim=True).shape == (1, 3)
  assert x.logsumexp(1).shape == (0,)
  assert Tensor([], device=device).logsumexp().item() == -np.inf
  x = Tensor.zeros(0, 3, device=device, requires_grad=True)  # (the -inf was a constant: backward() found no graph)
  x.logsumexp(0).sum().backward()
  assert x.grad.shape == (0, 3)



def test_narrow_int_max_with_constant(device):
  """relu/maximum of int8, uint8, int16 tensors failed to compile on OpenCL: the constant rendered as an int
  literal, and max(char, int) is an ambiguous overload."""
  for dt in (np.int8, np.uint8, np.int16, np.uint16):
    a = np.array([-3, 0, 5, 7], dtype=np.int64).astype(dt)
    t = Tensor(a, device=device)
    np.testing.assert_equal(t.relu().numpy(), np.maximum(a, np.array(0).astype(dt)))
    np.testing.assert_equal(t.maximum(4).numpy(), np.maximum(a, np.array(4).astype(dt)))
    np.testing.assert_equal(t.max().numpy(), a.max())
    assert t.relu().dtype == dtypes.from_np(dt)


def test_padding_read_as_a_scalar_is_zero(device):
  """Indexing a single padded element ([0, -1] of x.pad(right 1)) returned a real value of x: the view where
  nothing is valid lost its empty mask when reshaped to 0-d (no axis left to hold an empty range)."""
  x = Tensor(np.array([1.0, 2.0], np.float32), device=device)
  y = (x + 2).reshape(1, 2)
  assert y.pad(((0, 0), (0, 1)))[0, -1].item() == 0.0  # elementwise value under the pad
  assert x.reshape(1, 2).pad(((0, 0), (0, 1)))[0, -1].item() == 0.0  # a load of a buffer under the pad
  a, b = y.pad(((0, 0), (0, 1)), value=5.0)[0, -1], y.reshape(-1)  # y realized once, read through the pad
  Tensor.realize_all(a, b)
  assert a.item() == 5.0 and b.tolist() == [3.0, 4.0]
  assert x.pad(((2, 0),))[1:2].reshape(()).expand(3).tolist() == [0.0, 0.0, 0.0]


def test_view_with_nothing_valid_survives_every_movement():
  """The same bug at the view level: every movement of an all-invalid view stays all-invalid."""
  from teeny.view import View
  from teeny.uop import Ops
  v = View.create((1, 2)).pad(((0, 0), (0, 1))).shrink(((0, 1), (2, 3)))
  assert v.nothing_valid
  for moved in (v.reshape(()), v.reshape(()).reshape((1,)), v.reshape(()).expand(()), v.permute((1, 0)), v.flip((0,)),
                v.reshape(()).reshape((1, 1)).expand((1, 4)), v.pad(((1, 1), (0, 0))), v.shrink(((0, 1), (0, 1)))):
    assert moved.nothing_valid, moved
    _, valid = moved.index([], dtypes.int32) if moved.shape == () else moved.index([None] * len(moved.shape), dtypes.int32)
    assert valid.op is Ops.CONST and valid.arg is False


def test_clone_has_a_buffer_of_its_own(device):
  """x.clone() shared x's buffer (it was the same node as x.contiguous(), which the scheduler skips for a realized
  buffer), so assigning into a clone changed the original; two clones of one tensor also shared one buffer."""
  x = Tensor([1.0, 2.0, 3.0], device=device)
  c = x.clone().realize()
  c.assign(c * 10).realize()
  assert x.tolist() == [1.0, 2.0, 3.0] and c.tolist() == [10.0, 20.0, 30.0]
  y = Tensor([1.0, 2.0], device=device) + 1
  a, b = y.clone(), y.clone()
  Tensor.realize_all(a, b)
  a.assign(a * 0).realize()
  assert b.tolist() == [2.0, 3.0] and y.tolist() == [2.0, 3.0] and a.tolist() == [0.0, 0.0]
  f = x.clone()
  f.assign(f.flip(0)).realize()  # reads its own target elsewhere: computed before it is written
  assert f.tolist() == [3.0, 2.0, 1.0] and x.tolist() == [1.0, 2.0, 3.0]


def test_assign_runs_once_even_after_another_assign(device):
  """t.assign(t.flip(0)) ran twice (flipping t back) when a graph holding it was realized again after another
  assign() had cleared the memo of realized nodes: an ASSIGN that ran is now remembered for good, and each
  assign() call is its own node (so a repeated x.assign(x + 1) still runs every time)."""
  t = Tensor([1.0, 2.0], device=device).clone().realize()
  t.assign(t.flip(0))
  m = t * Tensor([3.0, 5.0], device=device)
  c = m.clone().realize()   # runs the flip, then m
  c.assign(m)               # an unrelated assign: m must not flip t a second time
  assert c.tolist() == [6.0, 5.0] and m.tolist() == [6.0, 5.0] and t.tolist() == [2.0, 1.0]
  x = Tensor([0.0], device=device).clone().realize()
  for _ in range(3): x.assign(x + 1).realize()
  assert x.item() == 3.0


def test_prod_gradient_at_zero(device):
  """The gradient of prod was prod / x: NaN wherever an element is 0 (the gradient fuzzer hit it through a row
  that cancelled to 0). It is the product of the other elements, like PyTorch."""
  a = np.array([[2.0, 3.0, 4.0], [2.0, 0.0, 4.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
  t = Tensor(a, device=device, requires_grad=True)
  t.prod(1).sum().backward()
  want = np.array([[12, 8, 6], [0, 8, 0], [0, 0, 0], [0, 0, 0]], np.float32)
  np.testing.assert_array_equal(t.grad.numpy(), want)
  s = Tensor(np.array([0.0, 5.0], np.float32), device=device, requires_grad=True)
  s.prod().backward()
  assert s.grad.tolist() == [5.0, 0.0]


def test_identical_assign_while_the_first_is_still_held(device):
  """x.assign(x + 1) twice built one and the same ASSIGN node (equal graphs are one node); while a lazy tensor
  still held the first one, the scheduler took the second for the first, already run, and skipped the write."""
  x = Tensor([0.0], device=device).clone().realize()
  x.assign(x + 1)
  keep = x * 10  # holds the first ASSIGN node
  x.realize()
  x.assign(x + 1).realize()
  assert x.item() == 2.0
  del keep


def test_fancy_index_and_gather_keep_bool(device):
  """Indexing a bool tensor with a tensor, and gather of a bool tensor, returned int32 (the selection's where()
  promoted bool with an int 0); torch keeps the dtype."""
  b = Tensor(np.array([[True, False, True], [False, False, True]]), device=device)
  picked = b[Tensor([1, 0, 1], device=device)]
  assert picked.dtype == dtypes.bool and picked.tolist() == [[False, False, True], [True, False, True], [False, False, True]]
  g = b.gather(1, Tensor([[2, 1], [0, 2]], device=device))
  assert g.dtype == dtypes.bool and g.tolist() == [[True, False], [False, True]]


def test_avg_pool_keeps_float16(device):
  """avg_pool2d of a float16 tensor returned float32 when the divisor was counted per window (count_include_pad
  False, or ceil_mode): the counts were float32 ones."""
  x = Tensor(np.arange(16, dtype=np.float16).reshape(1, 1, 4, 4), device=device)
  for out in (x.avg_pool2d(2, padding=1, count_include_pad=False), x.avg_pool2d(3, stride=2, ceil_mode=True), x.avg_pool2d(2)):
    assert out.dtype == dtypes.float16 and out.numpy().dtype == np.float16
  np.testing.assert_array_equal(x.avg_pool2d(2, padding=1, count_include_pad=False).numpy()[0, 0, 0], [0.0, 1.5, 3.0])


def test_cross_entropy_with_narrow_int_targets(device):
  """cross_entropy with uint8/int8/int16 targets compared class numbers in the targets' dtype: with more classes
  than it holds, arange(classes) wrapped (class 5 also matched 261) and ignore_index -100 became 156 for uint8."""
  logits = np.random.default_rng(0).normal(size=(3, 300)).astype(np.float32)
  lsm = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  t = Tensor(logits, device=device)
  for dt, target in ((np.uint8, [5, 200, 156]), (np.int16, [5, 299, 0]), (np.int8, [5, 100, -100])):
    rows = t.cross_entropy(Tensor(np.array(target, dt), device=device), reduction="none").numpy()
    want = [0.0 if c == -100 else -lsm[i, c] for i, c in enumerate(target)]
    np.testing.assert_allclose(rows, want, rtol=1e-5, atol=1e-6)


def test_max_gradient_and_argmax_do_not_rely_on_recomputed_bits(device):
  """The gradient of max(sin(x)) was all zero on LLVM: the backward kernel recomputed sin(x) (scalar libm) and
  compared it with the max from the forward kernel (vectorized libmvec sin, one ulp apart), so no position equalled
  the max. Now the input is stored once and the max taken again from it; argmax does the same for float
  expressions, so it can never return an index past the end."""
  x = np.random.default_rng(0).normal(0, 1, (2, 2, 2))
  if device == "CL" and not Device["CL"].info.has_fp64: x = x.astype(np.float32)
  t = Tensor(x, device=device, requires_grad=True)
  s = t.flip(0).reshape(-1).sin()
  s.max(0, keepdim=True).sum().backward()
  flat = np.sin(x[::-1].reshape(-1))
  want = np.zeros(8)
  want[flat.argmax()] = np.cos(x[::-1].reshape(-1))[flat.argmax()]
  np.testing.assert_allclose(t.grad.numpy()[::-1].reshape(-1), want, rtol=1e-6)
  assert s.argmax().item() == flat.argmax()


def test_cat_keeps_negative_zero(device):
  """cat padded each piece with zeros and added them: -0.0 + 0.0 is 0.0, so 1 / cat(...) gave +inf where torch
  gives -inf."""
  x = Tensor(np.array([-0.0, 1.0], np.float32), device=device)
  out = Tensor.cat(x, Tensor(np.array([-0.0], np.float32), device=device), x)
  assert np.signbit(out.numpy()).tolist() == [True, False, True, True, False]
  assert (1 / out).numpy()[0] == -np.inf


def test_a_value_computed_in_two_kernels_is_equal_to_itself(device):
  """`y == y.max(1, keepdim=True)` found no maximum in some rows of y = x.exp(), x.sin(), log(|x| + 1) on LLVM, in
  float64 and float32: the max kernel and the comparison kernel each computed y, one with glibc's libmvec SIMD
  function (a vectorized loop) and one with libm's scalar function (a loop's scalar remainder), which differ in the
  last bit. The fuzzer found it as a max_pool2d gradient that lost a window's share (the window's elements are
  compared with each other, each computed at its own place). LLVM kernels now call one implementation everywhere
  (the renderer's vector_math_call)."""
  for dt in (np.float64, np.float32):
    if dt == np.float64 and device.startswith("CL") and not Device[device].info.has_fp64: continue
    for n in (3, 5, 7, 9, 13, 17, 31, 33, 63, 100):
      x = Tensor(np.random.default_rng(n).normal(size=(4, n)).astype(dt), device=device)
      for y in (x.exp(), x.sin(), (x.abs() + 1).log()):
        assert ((y == y.max(1, keepdim=True)).sum(1).numpy() >= 1).all(), (dt, n)


def test_max_pool_gradient_of_a_transcendental_with_two_readers(device):
  """Found by the gradient fuzzer: softplus(x) read by max_pool2d (kernel (1, 2), stride 2, padding (0, 1)) and by a
  second op lost max_pool's gradient for x[0, 0] in float64 on LLVM (the same libm/libmvec split as above)."""
  if device.startswith("CL") and not Device[device].info.has_fp64: return
  xn = np.random.default_rng(0).normal(0, 1, (2, 2))
  w0, w1 = np.array([[0.5, -0.7]]), np.array([[0.3, 0.2], [-0.4, 0.9]])
  x = Tensor(xn, device=device, requires_grad=True)
  s = x.softplus()
  loss = (s.max_pool2d((1, 2), (2, 2), 1, (0, 1)) * Tensor(w0, device=device)).sum() + ((-s) * Tensor(w1, device=device)).sum()
  loss.backward()
  # each output of the pooling is one element of row 0 (the other window element is padding): d/ds = w0 there, -w1 always
  ds = -w1 + np.array([[w0[0, 0], w0[0, 1]], [0, 0]])
  np.testing.assert_allclose(x.grad.numpy(), ds / (1 + np.exp(-xn)), rtol=1e-12)


def test_a_math_call_on_a_constant_compiles(tmp_path):
  """sin of a value that is only padding (a constant once LLVM folds the load away) aborted the process: LLVM's
  constant propagation dropped the constant argument from the renderer's internal teeny_sin wrapper, the call's
  vector variant no longer matched it, and LLVM's verifier asserted inside the loop vectorizer. Run in a child
  process, so that a regression fails this test instead of killing the suite."""
  import os, subprocess, sys
  if "LLVM" not in Device.available(): return
  code = ("import numpy as np\nfrom teeny import Tensor\n"
          "x = Tensor(np.array([0.5, 0.25]), device='LLVM')\n"
          "for t in (x, x.cast('float32')):\n"
          "  pad = t.pad(((24, 0),)).shrink(((0, 24),))\n"
          "  print((pad.sin().exp() + (pad + 1).log2().exp2()).numpy().tolist())\n")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, TEENY_CACHE_DIR=str(tmp_path), PYTHONPATH=root)
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  for line in out.stdout.split("\n")[:2]: assert line.startswith("[2.0, 2.0") and "nan" not in line, out.stdout
