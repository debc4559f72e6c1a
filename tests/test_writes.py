"""Writes through views reach the base, and in-place operators are in place.

Every test runs on every device and checks against values worked out with numpy (whose views and in-place
operators have the same semantics); where PyTorch is installed the same program also runs there and must agree.
"""
import numpy as np
import pytest
from teeny import Tensor, GlobalCounters, dtypes

try:
  import torch
except ImportError:  # the PyTorch comparisons are skipped; the numpy ones always run
  torch = None


def arange(*shape, dtype=np.float32):
  return np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)


def same(t: Tensor, expected, torch_value=None):
  np.testing.assert_array_equal(t.numpy(), np.asarray(expected))
  if torch_value is not None: np.testing.assert_array_equal(t.numpy(), torch_value.numpy())


# ---- 1. writes through views reach the base ----

def test_assign_to_slice_reaches_base_and_other_views(device):
  x = Tensor(arange(6), device=device).realize()
  head, tail = x[:3], x[2:]
  x[1:3].assign(Tensor([10., 20.], device=device))
  ref = arange(6); ref[1:3] = [10, 20]
  same(x, ref)
  same(head, ref[:3])
  same(tail, ref[2:])
  if torch:
    tx = torch.arange(6.); tx[1:3].copy_(torch.tensor([10., 20.]))
    same(x, ref, tx)


def test_assign_takes_tinygrads_keyword(device):
  """x.assign(x=value), tinygrad's parameter name; a list or number is a value too."""
  x = Tensor(arange(3), device=device).realize()
  x.assign(x=[5.0, 6.0, 7.0])
  same(x, [5, 6, 7])
  x.assign(1.5)
  same(x, [1.5, 1.5, 1.5])


def test_diagonal_and_unfold_are_views_and_single_piece_joins_are_copies(device):
  """diagonal() and unfold() were copies (built with pad): a write through them didn't reach x, and they didn't
  see x's writes. PyTorch's are views. cat([x]) and diff(n=0) went the other way: x's own storage, so writing the
  result wrote x; PyTorch's are copies."""
  ref = np.arange(9.0, dtype=np.float32).reshape(3, 3)
  x = Tensor(ref, device=device)
  d = x.diagonal()
  d[1] = -1.0
  ref[1, 1] = -1.0
  np.testing.assert_array_equal(x.numpy(), ref)
  x += 100
  np.testing.assert_array_equal(d.numpy(), np.diagonal(ref + 100))
  np.testing.assert_array_equal(x.diagonal(1).numpy(), np.diagonal(ref + 100, 1))
  flat = np.arange(6.0, dtype=np.float32)
  y = Tensor(flat, device=device)
  windows = y.unfold(0, 3, 1)
  y.unfold(0, 2, 2)[1] = 9.0  # (windows apart: written through)
  flat[2:4] = 9.0
  np.testing.assert_array_equal(y.numpy(), flat)
  np.testing.assert_array_equal(windows.numpy(), np.lib.stride_tricks.sliding_window_view(flat, 3))
  with pytest.raises(RuntimeError, match="expanded"): windows[0] = 1.0  # (overlapping windows: PyTorch raises too)
  for copy in (Tensor.cat([y]), y.diff(n=0)):
    copy[0] = -5.0
    copy.realize()
    np.testing.assert_array_equal(y.numpy(), flat)


def test_assign_to_shrink_reaches_base(device):
  x = Tensor(arange(3, 4), device=device).realize()
  x.shrink(((1, 3), (0, 2))).assign(Tensor.full((2, 2), -1.0, device=device)).realize()
  ref = arange(3, 4); ref[1:3, 0:2] = -1
  same(x, ref)


def test_assign_through_reshape_then_index_reaches_base(device):
  x = Tensor(arange(2, 6), device=device).realize()
  x.reshape(3, 4)[1].assign(Tensor([7., 8., 9., 10.], device=device))
  ref = arange(2, 6); ref.reshape(3, 4)[1] = [7, 8, 9, 10]
  same(x, ref)
  if torch:
    tx = torch.arange(12.).reshape(2, 6); tx.reshape(3, 4)[1].copy_(torch.tensor([7., 8., 9., 10.]))
    same(x, ref, tx)


def test_setitem_column_reaches_base(device):
  x = Tensor(arange(3, 4), device=device).realize()
  row = x[1]
  x[:, 2] = Tensor([-1., -2., -3.], device=device)
  ref = arange(3, 4); ref[:, 2] = [-1, -2, -3]
  same(x, ref)
  same(row, ref[1])


def test_setitem_through_transpose_reaches_base(device):
  x = Tensor(arange(3, 4), device=device).realize()
  x.T[0] = 100.0
  ref = arange(3, 4); ref.T[0] = 100
  same(x, ref)
  if torch:
    tx = torch.arange(12.).reshape(3, 4); tx.T[0] = 100.0
    same(x, ref, tx)


def test_setitem_with_tensor_index_reaches_base_and_views(device):
  x = Tensor(arange(5, 2), device=device).realize()
  view = x.reshape(10)
  x[Tensor([0, 3], dtype=dtypes.int32, device=device)] = Tensor([[1., 1.], [2., 2.]], device=device)
  ref = arange(5, 2); ref[[0, 3]] = [[1, 1], [2, 2]]
  same(x, ref)
  same(view, ref.reshape(10))


def test_kv_cache_writes_land_at_their_positions(device):
  """A KV cache written a few positions at a time, `cache[:, :, pos:pos + n] = kv`, as attention code does."""
  cache = Tensor.zeros(2, 3, 8, 4, device=device).contiguous().realize()
  ref = np.zeros((2, 3, 8, 4), np.float32)
  rng = np.random.default_rng(0)
  pos = 0
  for n in (3, 1, 1, 2):
    kv = rng.normal(size=(2, 3, n, 4)).astype(np.float32)
    cache[:, :, pos:pos + n] = Tensor(kv, device=device)
    ref[:, :, pos:pos + n] = kv
    pos += n
    same(cache[:, :, :pos], ref[:, :, :pos])  # reading the filled part, as the next attention step does
  same(cache, ref)


def test_write_through_view_is_one_kernel_over_the_view(device):
  """Storing through the view: one kernel whose loop covers the view's elements only, not the whole base."""
  x = Tensor(np.zeros((64, 64), np.float32), device=device).realize()
  piece = x[3:5, 10:20]
  piece.assign(piece + 1)
  GlobalCounters.reset()
  x.realize()
  assert GlobalCounters.kernel_count == 1
  assert GlobalCounters.global_ops <= 2 * 20  # an add per written element, not per element of x
  ref = np.zeros((64, 64), np.float32); ref[3:5, 10:20] = 1
  same(x, ref)


def test_write_through_overlapping_view_reads_before_writing(device):
  """x[1:3] = x[2:4] + 1 reads elements the same write overwrites: the values are computed first."""
  x = Tensor([1., 2., 3., 4.], device=device).realize()
  x[1:3].assign(x[2:4] + 1)
  same(x, [1., 4., 5., 4.])


def test_writes_through_strided_and_flipped_views(device):
  x = Tensor(arange(10), device=device).realize()
  x[::3] = -1.0
  x[::-1][:2] = Tensor([50., 60.], device=device)
  ref = arange(10); ref[::3] = -1; ref[::-1][:2] = [50, 60]
  same(x, ref)


def test_write_into_expanded_view_is_refused(device):
  x = Tensor(arange(1, 3), device=device).realize()
  with pytest.raises(RuntimeError, match="expanded"): x.expand(4, 3)[0] = 1.0
  same(x, arange(1, 3))  # nothing was written


def test_write_through_view_of_a_lazy_result(device):
  """A result not computed yet has no buffer: writing through its view changes its graph, not its inputs."""
  a = Tensor(arange(2, 3), device=device).realize()
  y = a * 2
  y[0, 1:] = 0.0
  ref = arange(2, 3) * 2; ref[0, 1:] = 0
  same(y, ref)
  same(a, arange(2, 3))


def test_view_realized_before_a_write_sees_it(device):
  x = Tensor(arange(4), device=device).realize()
  v = x.reshape(2, 2)[1]
  v.realize()
  same(v, [2., 3.])
  x.assign(Tensor([9., 9., 9., 9.], device=device)).realize()
  same(v, [9., 9.])


def test_detach_shares_storage(device):
  x = Tensor(arange(3), device=device).realize()
  d = x.detach()
  x[0] = 5.0
  same(d, [5., 1., 2.])
  d[2] = 7.0
  same(x, [5., 1., 7.])


def test_bitcast_is_a_view_writes_reach_the_base(device):
  """x.bitcast(int32) (torch's x.view(torch.int32)) shares x's storage: a write into it changes x's bits, a write
  into x shows in it, also through movement ops on either side of the bitcast and on a lazy base (a write to it was
  lost: it replaced the bitcast's own graph)."""
  x = Tensor(arange(2, 3), device=device).realize()
  bits = x.bitcast(dtypes.int32)
  bits[0] = Tensor(np.float32([7., 8., 9.]).view(np.int32), device=device)
  ref = arange(2, 3); ref[0] = [7., 8., 9.]
  same(x, ref)
  same(bits, ref.view(np.int32))
  column = x.T.view(dtypes.uint32)[1]  # torch's spelling, behind a transpose
  column.assign(Tensor(np.float32([-1., -2.]).view(np.uint32), device=device))
  ref[:, 1] = [-1., -2.]
  same(x, ref)
  x.assign(Tensor(arange(2, 3) + 100, device=device))
  same(bits, (arange(2, 3) + 100).view(np.int32))
  bits += 1  # the next float up, in every element
  same(x, np.nextafter(arange(2, 3) + 100, np.inf))
  lazy = Tensor.ones(3, device=device) * 2
  lazy.bitcast(dtypes.int32)[0] = int(np.float32(0.5).view(np.int32))
  same(lazy, [0.5, 2., 2.])
  if torch:
    tx = torch.ones(3) * 2; tx.view(torch.int32)[0] = int(np.float32(0.5).view(np.int32))
    same(lazy, [0.5, 2., 2.], tx)


def test_results_that_torch_copies_dont_follow_writes(device):
  """flip, pad, repeat and clone make new tensors (as in PyTorch): a write to the source doesn't reach them and a
  write to them doesn't reach the source."""
  x = Tensor(arange(3), device=device).realize()
  copies = [x.flip(0), x.pad(((1, 0),)), x.repeat(2), x.clone(), Tensor.zeros(3, device=device)]
  expected = [c.numpy() for c in copies]
  x[:] = -1.0
  for c, e in zip(copies, expected): same(c, e)
  copies[0][0] = 100.0
  same(x, [-1., -1., -1.])


@pytest.mark.parametrize("realized", [True, False])
def test_copies_that_change_nothing_are_still_copies(device, realized):
  # pad by nothing (or by a crop), flip over size-1 axes and roll by 0 returned the tensor itself or a view of it:
  # `p = h.pad((0, 0)); p += 100` changed h too (PyTorch copies in each case)
  makers = [lambda h: h.pad((0, 0)), lambda h: h.pad((0, 0), mode="reflect"), lambda h: h.pad((-1, 0)),
            lambda h: h.pad((-1, 0), mode="circular"), lambda h: h.reshape(1, 3).flip(0).reshape(3),
            lambda h: h.reshape(3, 1).fliplr().reshape(3), lambda h: h.roll(0), lambda h: h.roll(3, 0)]
  for make in makers:
    h = Tensor(arange(3), device=device) * 2
    if realized: h.realize()
    out = make(h)
    want = out.numpy().copy()
    out += 100
    same(h, [0., 2., 4.])
    same(out, want + 100)
    h = Tensor(arange(3), device=device) * 2
    if realized: h.realize()
    out = make(h)
    h += 1
    same(out, want)


# ---- 2. in-place operators are in place ----

FLOAT_OPS = [("+=", lambda a, b: a.__iadd__(b)), ("-=", lambda a, b: a.__isub__(b)), ("*=", lambda a, b: a.__imul__(b)),
             ("/=", lambda a, b: a.__itruediv__(b)), ("//=", lambda a, b: a.__ifloordiv__(b)),
             ("%=", lambda a, b: a.__imod__(b)), ("**=", lambda a, b: a.__ipow__(b))]
INT_OPS = [("&=", lambda a, b: a.__iand__(b)), ("|=", lambda a, b: a.__ior__(b)), ("^=", lambda a, b: a.__ixor__(b)),
           ("<<=", lambda a, b: a.__ilshift__(b)), (">>=", lambda a, b: a.__irshift__(b))]


@pytest.mark.parametrize("name,op", FLOAT_OPS, ids=[n for n, _ in FLOAT_OPS])
def test_inplace_float_operator_updates_the_tensor_itself(device, name, op):
  data, other = np.array([1.5, 2.0, 3.0, 4.5], np.float32), np.array([2.0, 0.5, 3.0, 1.5], np.float32)
  x = Tensor(data, device=device).realize()
  alias, view = x, x[1:]
  out = op(x, Tensor(other, device=device))
  assert out is x and alias is x
  expected = op(data.copy(), other)
  np.testing.assert_allclose(x.numpy(), expected, rtol=1e-6)
  np.testing.assert_allclose(view.numpy(), expected[1:], rtol=1e-6)
  if torch:
    tx = torch.tensor(data); op(tx, torch.tensor(other))
    np.testing.assert_allclose(x.numpy(), tx.numpy(), rtol=1e-6)


@pytest.mark.parametrize("name,op", INT_OPS, ids=[n for n, _ in INT_OPS])
def test_inplace_int_operator_updates_the_tensor_itself(device, name, op):
  data, other = np.array([5, 12, 7, 1], np.int32), np.array([3, 1, 2, 4], np.int32)
  x = Tensor(data, device=device).realize()
  view = x[:2]
  op(x, Tensor(other, device=device))
  expected = op(data.copy(), other)
  same(x, expected)
  same(view, expected[:2])


def test_inplace_matmul(device):
  a, w = arange(2, 3), np.eye(3, dtype=np.float32)[::-1].copy()
  x = Tensor(a, device=device).realize()
  x @= Tensor(w, device=device)
  same(x, a @ w)


def test_inplace_operator_on_a_view_updates_the_base(device):
  x = Tensor(arange(2, 3), device=device).realize()
  x[0] += 10
  row = x[1]
  row *= 2
  ref = arange(2, 3); ref[0] += 10; ref[1] *= 2
  same(x, ref)
  if torch:
    tx = torch.arange(6.).reshape(2, 3); tx[0] += 10; trow = tx[1]; trow *= 2
    same(x, ref, tx)


def test_repeated_inplace_adds_accumulate(device):
  x = Tensor([0, 0], dtype=dtypes.int32, device=device).realize()
  for _ in range(10): x[0] += 1
  same(x, [10, 0])
  y = Tensor.ones(4, device=device).contiguous()
  y += 1
  y += 1
  same(y, np.full(4, 3.0, np.float32))


def test_inplace_methods(device):
  data = np.array([-2.0, 0.5, 3.0], np.float32)
  def fresh(): return Tensor(data, device=device).realize()
  cases = [(lambda t: t.add_(1), data + 1), (lambda t: t.add_(2, alpha=3), data + 6), (lambda t: t.sub_(1), data - 1),
           (lambda t: t.mul_(2), data * 2), (lambda t: t.div_(2), data / 2), (lambda t: t.zero_(), np.zeros(3)),
           (lambda t: t.fill_(4), np.full(3, 4)), (lambda t: t.copy_(Tensor([1, 2, 3], device=device)), [1, 2, 3]),
           (lambda t: t.clamp_(-1, 1), np.clip(data, -1, 1)), (lambda t: t.neg_(), -data), (lambda t: t.abs_(), abs(data)),
           (lambda t: t.relu_(), np.maximum(data, 0)), (lambda t: t.pow_(2), data ** 2)]
  for fn, expected in cases:
    t = fresh()
    view = t[1:]
    assert fn(t) is t
    np.testing.assert_allclose(t.numpy(), np.asarray(expected, np.float32), rtol=1e-6)
    np.testing.assert_allclose(view.numpy(), np.asarray(expected, np.float32)[1:], rtol=1e-6)


def test_inplace_result_must_fit_the_tensor(device):
  i = Tensor([1, 2], dtype=dtypes.int32, device=device)
  with pytest.raises(TypeError, match="int32"): i += 0.5  # PyTorch: result type Float can't be cast to Int
  with pytest.raises(TypeError): i /= 2
  with pytest.raises(ValueError, match="shape"): i += Tensor([[1], [2]], dtype=dtypes.int32, device=device)
  f = Tensor([1.0, 2.0], device=device)
  f += Tensor([1, 1], dtype=dtypes.int32, device=device)  # int into float is fine
  same(f, [2.0, 3.0])


def test_inplace_on_leaf_that_requires_grad_raises_outside_no_grad(device):
  w = Tensor([1.0, 2.0], device=device, requires_grad=True)
  with pytest.raises(RuntimeError, match="leaf"): w += 1
  with pytest.raises(RuntimeError, match="leaf"): w[0] = 5.0
  with pytest.raises(RuntimeError, match="leaf"): w.mul_(2)
  same(w, [1.0, 2.0])
  with Tensor.no_grad():
    w -= 0.5
    w[1] = 7.0
  same(w, [0.5, 7.0])
  assert w.requires_grad
  # PyTorch's manual SGD: compute, backward, update under no_grad; the next step's gradient uses the new value
  (w * w).sum().backward()
  np.testing.assert_allclose(w.grad.numpy(), [1.0, 14.0])
  with Tensor.no_grad(): w -= 0.1 * w.grad
  np.testing.assert_allclose(w.numpy(), [0.4, 5.6], rtol=1e-6)


def test_no_grad_results_dont_require_grad(device):
  w = Tensor([1.0, 2.0], device=device, requires_grad=True)
  with Tensor.no_grad(): assert not (w * 2).requires_grad
  assert (w * 2).requires_grad
  @Tensor.no_grad()
  def f(t): return t * 3
  assert not f(w).requires_grad


def test_what_no_grad_computed_passes_no_gradient_later(device):
  # PyTorch: a result computed under no_grad is a constant to every later graph; lazy, it still held the graph to
  # its inputs, and backward went through it (a * 3 under no_grad, times a: gradient 9 instead of 3)
  a = Tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
  with Tensor.no_grad(): tripled, tail = a * 3, a[1:]
  (tripled * a).sum().backward()
  np.testing.assert_allclose(a.grad.numpy(), [3.0, 6.0, 9.0])
  a.grad = None
  (tail * a[1:]).sum().backward()  # (a view made under no_grad: its reads pass none either)
  np.testing.assert_allclose(a.grad.numpy(), [0.0, 2.0, 3.0])
  @Tensor.no_grad()
  def exp(t): return t.exp()
  np.testing.assert_allclose((exp(a) * a).sum().gradient(a)[0].numpy(), np.exp([1.0, 2.0, 3.0]), rtol=1e-6)
  with Tensor.no_grad(): tail += 10  # (and writes through such a view still reach a)
  np.testing.assert_allclose(a.numpy(), [1.0, 12.0, 13.0])


def test_gradient_flows_through_inplace_updates_of_results(device):
  """PyTorch differentiates through in-place operations on results that require grad (not leaves)."""
  a = Tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
  b = Tensor([0.5, 0.5, 0.5], device=device, requires_grad=True)
  y = a * 2
  y += b * a        # lazy result: its graph is extended
  y[0] = 10.0       # element 0 no longer depends on a or b
  y.sum().backward()
  np.testing.assert_allclose(a.grad.numpy(), [0.0, 2.5, 2.5])
  np.testing.assert_allclose(b.grad.numpy(), [0.0, 2.0, 3.0])
  a.grad = b.grad = None
  z = (a * 3).realize()  # a realized result: the write goes to its buffer, the gradient still flows
  z *= b
  z.sum().backward()
  np.testing.assert_allclose(a.grad.numpy(), [1.5, 1.5, 1.5])
  np.testing.assert_allclose(b.grad.numpy(), [3.0, 6.0, 9.0])
  if torch:
    ta, tb = torch.tensor([1.0, 2.0, 3.0], requires_grad=True), torch.tensor([0.5, 0.5, 0.5], requires_grad=True)
    ty = ta * 2; ty += tb * ta; ty[0] = 10.0; ty.sum().backward()
    np.testing.assert_allclose(ta.grad.numpy(), [0.0, 2.5, 2.5])


@pytest.mark.parametrize("write", ["no_grad +=", "no_grad view +=", "assign"])
def test_a_graph_built_before_a_write_into_a_leaf_still_reaches_the_leaf(device, write):
  # PyTorch: the leaf is the same tensor after an in-place update under no_grad (an SGD step by hand); y built
  # before it gave x.grad None (y held the leaf's old buffer, the leaf a pending write)
  x = Tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
  y = (x * 3.0).sum()
  if write == "assign": x.assign(x.detach() + 1)
  else:
    with Tensor.no_grad():
      if write == "no_grad +=": x += 1
      else:
        v = x[1:]
        v += 1
  y.backward()
  np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0, 3.0])
  np.testing.assert_allclose(x.numpy(), [1.0, 3.0, 4.0] if write == "no_grad view +=" else [2.0, 3.0, 4.0])


def test_a_graph_built_after_a_write_into_a_leaf_reaches_it_after_the_write_ran(device):
  # x *= 0.5 under no_grad, y = x * 3 built on the pending write, then x read (the write runs): x.grad was 0
  x = Tensor([0.5, -1.0, 1.5], device=device, requires_grad=True)
  with Tensor.no_grad(): x *= 0.5
  y = x * 3.0
  np.testing.assert_allclose(x.numpy(), [0.25, -0.5, 0.75])
  y.sum().backward()
  np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0, 3.0])
  x.grad = None
  z = ((x * x).sum() + (x * 5).sum())  # (and both a graph on the old and one on the new values)
  with Tensor.no_grad(): x -= 1
  w = (x * 2).sum()
  (z + w).backward()
  np.testing.assert_allclose(x.grad.numpy(), [0.5 + 5 + 2, -1.0 + 5 + 2, 1.5 + 5 + 2])
  x.grad = None
  x.assign(x * 2)  # (assign into a leaf with grad mode on: its new values are the leaf's, not a graph over its old)
  (x * 4).sum().backward()
  np.testing.assert_allclose(x.grad.numpy(), [4.0, 4.0, 4.0])
  remembered = len(x._earlier_nodes)
  for _ in range(20):  # (what a leaf remembers of its writes doesn't grow with the steps of a training loop)
    with Tensor.no_grad(): x -= 0.01 * x.grad
    x.realize()
  assert len(x._earlier_nodes) <= remembered + 2


@pytest.mark.parametrize("through_view", [False, True])
def test_a_graph_built_before_a_write_into_a_realized_result_still_reaches_its_inputs(device, through_view):
  # h realized, y built from it, then h written in place: y's gradient lost its way to x (None)
  x = Tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
  h = (x * 2.0).realize()
  y = (h * 3.0).sum()
  if through_view:
    v = h[1:]
    v += 1
  else: h += 1.0
  y.backward()
  np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0, 6.0])
  np.testing.assert_allclose(y.numpy(), 36.0)
  x.grad = None
  (h * h).sum().backward()  # (and a graph built after the write, through the written values)
  written = np.array([2.0, 5.0, 7.0]) if through_view else np.array([3.0, 5.0, 7.0])
  np.testing.assert_allclose(x.grad.numpy(), 2 * written * 2)


def test_a_graph_built_on_a_pending_write_into_a_result_keeps_it_after_both_are_realized(device):
  # h[2] = c, then v = h - 0.5 built on the pending write; v and h read (realized), then backward through v: the
  # realized write in v's kept graph passed nothing to h's elements it didn't write (x.grad 8 for 8.5)
  x = Tensor([0.9, 0.2, -1.6], device=device, requires_grad=True)
  h = (x + 1).realize()
  h[2] = -0.9
  v = h - 0.5
  (v * Tensor([1.0, 2.0, 3.0], device=device)).sum().backward()
  v.numpy(), h.numpy()
  ((v * Tensor([0.5, 0.25, 4.0], device=device)).sum() + (h * Tensor([7.0, 11.0, 13.0], device=device)).sum()).backward()
  np.testing.assert_allclose(x.grad.numpy(), [8.5, 13.25, 0.0])


@pytest.mark.parametrize("realize_first", [False, True])
def test_backward_through_a_graph_whose_input_was_overwritten_raises(device, realize_first):
  # b = sin(h) * 1 built, then h written in place and the write run (b realized before it, as its reader): backward
  # through b used the new h in sin's gradient, silently (2 cos(3) for 2 cos(2)). PyTorch raises; so does teeny
  x = Tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
  h = (x * 2).realize()
  b = h.sin() * 1.0
  h += 1
  h.realize()
  if realize_first: b.realize()
  np.testing.assert_allclose(b.numpy(), np.sin([2.0, 4.0, 6.0]), rtol=1e-6)
  with pytest.raises(RuntimeError, match="overwritten"): b.sum().backward()
  (h.sin() * 1.0).sum().backward()  # (a graph built after the write is fine)
  np.testing.assert_allclose(x.grad.numpy(), 2 * np.cos([3.0, 5.0, 7.0]), rtol=1e-5)


def test_writing_what_requires_grad_into_a_detached_view_raises(device):
  # x.detach()[1] = v * 2 with grad mode on: PyTorch passes v its gradient through the detached alias; teeny's
  # view reads its base through the DETACH, so v's gradient was silently lost (None / 0). It raises now; under
  # no_grad (no gradient asked) and into a clone it works
  x = Tensor(np.ones((3, 2), np.float32), device=device, requires_grad=True)
  v = Tensor(np.ones(2, np.float32), device=device, requires_grad=True)
  with pytest.raises(RuntimeError, match="detached view"): x.detach()[1] = v * 2
  with Tensor.no_grad(): x.detach()[1] = v * 2
  same(x, [[1, 1], [2, 2], [1, 1]])
  c = x.detach().clone()
  c[1] = v * 2
  c.sum().backward()
  same(v.grad, [2, 2])


def test_backward_through_a_result_written_three_times(device):
  # a realized result overwritten by assign, then written in place twice (each write running the one before):
  # backward() through what was built on the last write crashed in the scheduler (KeyError: the first write's
  # target had been replaced by a graph); random program 3288 of the helper's autograd sweep
  x = Tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]], device=device, requires_grad=True)
  h = x.topk(1, dim=0)[0].realize()
  h.assign(Tensor([[0.3, -0.2, 0.1]], device=device))
  h[h > 0] = 0.75
  h.masked_fill_(h < -0.1, 0.5)
  ((h * 2).tanh().sum() + (x * x).sum()).backward()
  np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())


def test_values_that_require_grad_written_into_a_tensor_that_doesnt(device):
  # buf[0:4] = f(w) into a plain buffer, realized, then backward through buf: w's gradient through buf was lost
  # silently (1 for 7: only the w.sum() term). Now buf requires grad, as in PyTorch; a write of part of it (its
  # other elements had no graph, and were overwritten) raises at backward() instead
  w = Tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
  buf = Tensor.zeros(4, device=device).contiguous().realize()
  buf[0:4] = w.pad((0, 1)) * 2
  assert buf.requires_grad
  buf.numpy()
  ((buf * 3).sum() + w.sum()).backward()
  same(w.grad, [7.0, 7.0, 7.0])
  part = Tensor.zeros(4, device=device).contiguous().realize()
  part[0:3] = w * 2
  ((part * 3).sum() + w.sum()).backward()  # (before the write ran: through the write itself)
  same(w.grad, [14.0, 14.0, 14.0])
  part.numpy()
  with pytest.raises(RuntimeError, match="backward"): ((part * 3).sum() + w.sum()).backward()


def test_a_manual_sgd_loop_over_a_realized_activation_stays_small_and_right(device):
  # h realized each step reads the weights' pending updates, whose values held the step before's gradient graph:
  # every step's graph stayed alive (30 -> 3,833 nodes over 200 steps, time per step growing with it)
  from teeny.gradient import differentiated
  w1 = Tensor([[1.0, 0.5], [0.2, 1.0]], device=device, requires_grad=True)
  w2 = Tensor([[0.3], [0.7]], device=device, requires_grad=True)
  x = Tensor([[3.0, 4.0]], device=device)
  n1, n2 = np.array([[1.0, 0.5], [0.2, 1.0]]), np.array([[0.3], [0.7]])
  for step in range(40):
    w1.grad = w2.grad = None
    h = (x @ w1).relu().realize()
    (h @ w2).sum().backward()
    with Tensor.no_grad():
      w1 -= 0.001 * w1.grad
      w2 -= 0.001 * w2.grad
    hn = np.maximum(np.array([[3.0, 4.0]]) @ n1, 0)
    n1, n2 = n1 - 0.001 * (np.array([[3.0], [4.0]]) @ (n2.T * (hn > 0))), n2 - 0.001 * hn.T
    if step == 5: size = max(len(g.toposort()) for g in differentiated.keys())
  np.testing.assert_allclose(w1.numpy(), n1, rtol=1e-5)
  np.testing.assert_allclose(w2.numpy(), n2, rtol=1e-5)
  assert max(len(g.toposort()) for g in differentiated.keys()) <= size


@pytest.mark.parametrize("move", ["to", "shard"])
def test_a_graph_built_before_a_write_into_a_moved_leaf_still_reaches_it(device, move):
  # after to_()/shard_() a leaf is a lazy copy: a write replaces its graph, and the graphs built before lost it
  # (x.grad 2 for 5); and a result written in place and dropped before backward() raised
  # (the other device: LLVM:1 beside LLVM, which every machine has; LLVM beside CL, where CL:1 may not exist)
  other = f"{device}:1" if device == "LLVM" else "LLVM"
  devices = (device, other) if move == "shard" else other
  x = Tensor(np.arange(8, dtype=np.float32).reshape(4, 2), device=device, requires_grad=True)
  if move == "shard": x.shard_(devices, 0)
  else: x.to_(devices)
  a = x * 3
  with Tensor.no_grad(): x += 1
  (a.sum() + (x * 2).sum()).backward()
  np.testing.assert_allclose(x.grad.numpy(), np.full((4, 2), 5.0))
  def f(t):
    h = (t * 2).realize()
    h += 1
    return (h * h).sum()
  y = Tensor([1.0, 2.0], device=device, requires_grad=True)
  f(y).backward()
  np.testing.assert_allclose(y.grad.numpy(), [12.0, 20.0])


def test_contiguous_of_a_tensor_of_its_own_is_the_tensor(device):
  """x.contiguous() is x itself for a tensor that isn't a view, realized or lazy (a result, or one with a write
  pending), as PyTorch's: a write into it reaches x. For a lazy x it was a copy, and such writes were lost."""
  a = Tensor([1.0, 2.0], device=device) * 2
  c = a.contiguous()
  c.add_(100)
  np.testing.assert_array_equal(a.numpy(), [102.0, 104.0])
  b = Tensor([[1.0, 2.0], [3.0, 4.0]], device=device)
  b.mul_(2.0)
  b.contiguous()[1].sub_(100)
  np.testing.assert_array_equal(b.numpy(), [[2.0, 4.0], [-94.0, -92.0]])
  view = b[:, :1]  # a view: a copy of its own, as PyTorch's for a non-contiguous one
  view.contiguous().add_(1000)
  np.testing.assert_array_equal(b.numpy()[:, 0], [2.0, -94.0])
