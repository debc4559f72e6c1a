"""Fusion is a tested property: how many kernels a graph becomes, and that the fused kernels compute the right thing."""
import numpy as np
import pytest
from teeny import Tensor, GlobalCounters, Device, dtypes
from teeny.codegen import get_program
from teeny.uop import Ops
from teeny.schedule import buffer_of, create_schedule

rng = np.random.default_rng(0)


def kernels_for(*tensors: Tensor) -> int:
  """Realize the tensors and count the kernels that ran."""
  GlobalCounters.reset()
  Tensor.realize_all(*tensors)
  return GlobalCounters.kernel_count


def scheduled(*tensors: Tensor) -> int:
  items, *_ = create_schedule([t.uop for t in tensors], [t.device for t in tensors])
  return len(items)


def rand(*shape, device):
  return Tensor(rng.standard_normal(shape).astype(np.float32), device=device)


def test_mul_add_sum_is_one_kernel(device):
  a, b, c = rand(16, 32, device=device), rand(16, 32, device=device), rand(16, 32, device=device)
  out = (a * b + c).sum(1)
  assert kernels_for(out) == 1
  np.testing.assert_allclose(out.numpy(), (a.numpy() * b.numpy() + c.numpy()).sum(1), rtol=1e-5, atol=1e-5)


def test_elementwise_chain_is_one_kernel(device):
  a = rand(64, device=device)
  out = ((a + 1) * 2).relu()
  assert kernels_for(out) == 1
  np.testing.assert_allclose(out.numpy(), np.maximum((a.numpy() + 1) * 2, 0))


def test_sum_then_add_is_one_kernel(device):
  x = rand(8, 8, device=device)
  out = x.sum() + 1
  assert kernels_for(out) == 1
  np.testing.assert_allclose(out.numpy(), x.numpy().sum() + 1, rtol=1e-5)


def lifts(device) -> bool:
  """Whether the device computes a reduce read back over the axes it reduced inside its reader (the CPU: a kernel's
  loops run one after another in one thread; on a GPU every work-item would compute the whole row again)."""
  return not Device[device].renderer.has_threads


def test_reduce_expanded_back_is_one_kernel_on_the_cpu(device):
  x = rand(8, 16, device=device)
  out = (x - x.max(1, keepdim=True)).exp()
  assert kernels_for(out) == (1 if lifts(device) else 2)
  xn = x.numpy()
  np.testing.assert_allclose(out.numpy(), np.exp(xn - xn.max(1, keepdims=True)), rtol=1e-5)


def _softmax(x: np.ndarray) -> np.ndarray:
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


ROW_NORMALIZATIONS = {  # (teeny, numpy in float64, kernels elsewhere)
  "softmax": (lambda x: x.softmax(-1), _softmax, 3),
  "log_softmax": (lambda x: x.log_softmax(-1), lambda x: np.log(_softmax(x)), 3),
  "layernorm": (lambda x: x.layernorm(), lambda x: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5), 3),
  "centered": (lambda x: x - x.mean(-1, keepdim=True), lambda x: x - x.mean(-1, keepdims=True), 2),
}


@pytest.mark.parametrize("name", ROW_NORMALIZATIONS)
def test_row_normalizations_are_one_kernel_on_the_cpu(device, name):
  """Each row's reduces (a max, the sum that reads it) run inside the kernel that writes the row, on rows with
  infinities and NaN too (as PyTorch: a row of -inf or with a NaN is NaN; +inf makes its row NaN but for 0s)."""
  ours, numpys, elsewhere = ROW_NORMALIZATIONS[name]
  xn = rng.standard_normal((6, 33)).astype(np.float32)
  xn[1, 3], xn[2, :], xn[3, 5], xn[4, 7] = -np.inf, -np.inf, np.nan, np.inf
  x = Tensor(xn, device=device)
  out = ours(x)
  assert kernels_for(out) == (1 if lifts(device) else elsewhere)
  with np.errstate(all="ignore"): want = numpys(xn.astype(np.float64))
  np.testing.assert_allclose(out.numpy(), want, rtol=1e-5, atol=1e-6)


def test_a_row_reduce_inside_the_kernels_own_reduce(device):
  x = rand(7, 40, device=device)
  out, var = (x - x.max(1, keepdim=True)).sum(1), x.var(1)
  assert kernels_for(out) == (1 if lifts(device) else 2)
  assert kernels_for(var) == (1 if lifts(device) else 2)
  xn = x.numpy().astype(np.float64)
  np.testing.assert_allclose(out.numpy(), (xn - xn.max(1, keepdims=True)).sum(1), rtol=1e-5)
  np.testing.assert_allclose(var.numpy(), xn.var(1, ddof=1), rtol=1e-5)


def test_lifted_reduces_run_once_per_row():
  """softmax's kernel on the CPU: in the loop over rows, three loops one after another (the row's max, the sum of
  exps that reads it, the row written), not nested in each other."""
  x = rand(16, 64, device="LLVM")
  items, *_ = create_schedule([x.softmax(-1).uop], ["LLVM"])
  assert len(items) == 1
  program = get_program(items[0].ast, Device["LLVM"].renderer).program
  depth, depths = 0, []
  for u in program:
    if u.op is Ops.RANGE: depth += 1; depths.append(depth)
    elif u.op is Ops.ENDRANGE: depth -= 1
  assert depths == [1, 2, 2, 2]


def test_softmax_computes_each_exp_once_on_the_cpu():
  """softmax's lifted kernel stores each exp(x - max) in the output as the sum's loop computes it, and the loop
  writing the row reads it back to divide it (lower.py _store_shared_once): one exp per element, not two.
  log_softmax's row has no exp to share; float16's exps are float32 values (rounded in the output, they would
  not be the same), so each is computed where it is used."""
  def program_of(out):
    items, *_ = create_schedule([out.uop], ["LLVM"])
    assert len(items) == 1
    return get_program(items[0].ast, Device["LLVM"].renderer).program
  def count(program, op): return sum(u.op is op for u in program)
  xn = rng.standard_normal((16, 64)).astype(np.float32)
  x = Tensor(xn, device="LLVM")
  softmax = program_of(x.softmax(-1))
  assert count(softmax, Ops.EXP2) == 1 and count(softmax, Ops.STORE) == 2
  np.testing.assert_allclose(x.softmax(-1).numpy(), _softmax(xn.astype(np.float64)), rtol=1e-5, atol=1e-7)
  assert count(program_of(x.log_softmax(-1)), Ops.EXP2) == 1
  half = program_of(x.half().softmax(-1))
  assert count(half, Ops.EXP2) == 2 and count(half, Ops.STORE) == 1


def test_reduces_that_would_run_again_are_kernels_of_their_own(device):
  """A reduce is not lifted where its reader would compute it again and again: a column's max read back along the
  rows (the rows are the outer loop), a whole tensor's max (each core would compute it), a matmul (its reduce
  needs a kernel of its own, tuned for it); nor where its loop would stride through memory (a transposed row)."""
  x, a, b = rand(8, 16, device=device), rand(8, 5, device=device), rand(5, 16, device=device)
  xn, an, bn = (t.numpy().astype(np.float64) for t in (x, a, b))
  by_column, whole, after_matmul, transposed = x.softmax(0), x - x.max(), (a @ b).softmax(-1), x.T.softmax(-1)
  assert kernels_for(by_column) == 3 and kernels_for(whole) == 2 and kernels_for(transposed) == 3
  np.testing.assert_allclose(transposed.numpy(), _softmax(xn.T), rtol=1e-5)
  assert kernels_for(after_matmul) == (2 if lifts(device) else 4)
  np.testing.assert_allclose(by_column.numpy(), _softmax(xn.T).T, rtol=1e-5)
  np.testing.assert_allclose(whole.numpy(), xn - xn.max(), rtol=1e-6)
  np.testing.assert_allclose(after_matmul.numpy(), _softmax(an @ bn), rtol=1e-5)


def test_softmax_gradient_and_a_write_of_it(device):
  xn, wn = rng.standard_normal((5, 12)).astype(np.float32), rng.standard_normal((5, 12)).astype(np.float32)
  x = Tensor(xn, device=device, requires_grad=True)
  (x.softmax(-1) * Tensor(wn, device=device)).sum().backward()
  y = _softmax(xn.astype(np.float64))
  np.testing.assert_allclose(x.grad.numpy(), y * (wn - (wn * y).sum(-1, keepdims=True)), rtol=1e-5, atol=1e-7)
  # writing a row normalization into its own input reads every element of the row before writing any
  t = Tensor(xn, device=device).contiguous().realize()
  t.assign(t.softmax(-1)).realize()
  np.testing.assert_allclose(t.numpy(), y, rtol=1e-5)


def test_half_softmax(device):
  xn = rng.standard_normal((4, 50)).astype(np.float16)
  out = Tensor(xn, device=device).softmax(-1)
  assert out.dtype == dtypes.float16
  np.testing.assert_allclose(out.numpy().astype(np.float64), _softmax(xn.astype(np.float64)), rtol=2e-3, atol=1e-4)


def test_permute_reshape_add_is_one_kernel_without_copy(device):
  a = rand(5, 7, device=device)
  out = a.permute(1, 0).reshape(-1) + 1
  assert scheduled(out) == 1  # no separate copy kernel for the non-contiguous reshape
  assert kernels_for(out) == 1
  np.testing.assert_allclose(out.numpy(), a.numpy().T.reshape(-1) + 1)


def test_realized_tensor_runs_no_kernel(device):
  x = (rand(4, device=device) * 2).realize()
  assert kernels_for(x) == 0
  x.numpy()
  assert kernels_for(x) == 0


def test_shared_subexpression_computed_once_per_kernel(device):
  a = rand(32, device=device)
  e = a.exp()
  out = e * e + e
  assert kernels_for(out) == 1
  np.testing.assert_allclose(out.numpy(), np.exp(a.numpy()) ** 2 + np.exp(a.numpy()), rtol=1e-5)


def test_two_reduces_of_same_shape_fuse(device):
  x = rand(6, 10, device=device)
  out = x.sum(1) + x.max(1)
  assert kernels_for(out) == 1
  # (atol: a row of 10 signed values may sum to near 0, where float32's rounding of the terms is all that is left)
  np.testing.assert_allclose(out.numpy(), x.numpy().sum(1) + x.numpy().max(1), rtol=1e-5, atol=1e-6)


def test_reduce_of_reduce_is_two_kernels(device):
  x = rand(6, 10, device=device)
  out = (x.sum(1, keepdim=True) * 2).sum()
  assert kernels_for(out) == 2
  np.testing.assert_allclose(out.numpy(), (x.numpy().sum(1) * 2).sum(), rtol=1e-5)


def test_contiguous_is_a_boundary(device):
  a = rand(16, device=device)
  out = (a + 1).contiguous() * 2
  assert kernels_for(out) == 2
  np.testing.assert_allclose(out.numpy(), (a.numpy() + 1) * 2)


def test_reduce_used_by_two_outputs_is_computed_once(device):
  x = rand(8, 8, device=device)
  s = x.sum(1)
  y, z = s + 1, s * 2
  assert kernels_for(y, z) == 3
  np.testing.assert_allclose(y.numpy(), x.numpy().sum(1) + 1, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(z.numpy(), x.numpy().sum(1) * 2, rtol=1e-5, atol=1e-5)


def test_padded_elementwise_fuses_and_pads_with_zero(device):
  a = rand(4, 4, device=device)
  out = a.exp().pad(((1, 1), (2, 0))).sum(0)
  assert kernels_for(out) == 1
  np.testing.assert_allclose(out.numpy(), np.pad(np.exp(a.numpy()), ((1, 1), (2, 0))).sum(0), rtol=1e-5)


def test_realized_intermediate_is_reused(device):
  a = rand(16, device=device)
  b = (a * 3).contiguous()
  b.realize()
  c = b + 1
  assert kernels_for(c) == 1
  np.testing.assert_allclose(c.numpy(), a.numpy() * 3 + 1, rtol=1e-6)


def test_lazy_chain_realized_later_reuses_its_parts(device):
  a = rand(16, device=device)
  mid = a * 2
  mid.realize()
  out = mid + 1  # built on the lazy graph of mid before it was realized? no: after, so it reads mid's buffer
  assert kernels_for(out) == 1


def test_assign_writes_in_place(device):
  w = rand(8, device=device).realize()
  before = w.numpy().copy()
  buf = buffer_of(w.uop)
  w.assign(w * 2 + 1)
  assert kernels_for(w) == 1
  assert buffer_of(w.uop) is buf  # same buffer
  np.testing.assert_allclose(w.numpy(), before * 2 + 1)


def test_assign_reading_other_elements_of_target(device):
  w = Tensor(np.arange(6, dtype=np.float32), device=device).realize()
  w.assign(w.flip(0))
  np.testing.assert_allclose(w.numpy(), np.arange(6, dtype=np.float32)[::-1])


def test_clone_has_a_buffer_of_its_own(device):
  """clone() of a realized tensor used to be dropped by the scheduler (a CONTIGUOUS of a buffer), so assigning
  into the clone wrote into the original."""
  x = Tensor(np.array([1.0, 2.0], np.float32), device=device).realize()
  a, b = x.clone(), x.clone()
  Tensor.realize_all(a, b)
  assert buffer_of(a.uop) is not buffer_of(x.uop) and buffer_of(a.uop) is not buffer_of(b.uop)
  a.assign(a * 10).realize()
  np.testing.assert_array_equal(x.numpy(), [1.0, 2.0])
  np.testing.assert_array_equal(b.numpy(), [1.0, 2.0])
  np.testing.assert_array_equal(a.numpy(), [10.0, 20.0])


def test_zero_dim_numpy_array_stays_zero_dim(device):
  """np.ascontiguousarray turns a 0-d array into shape (1,): Tensor(np.array(3.5)) used to have shape (1,)."""
  t = Tensor(np.array(3.5, np.float32), device=device)
  assert t.shape == ()
  assert t.item() == 3.5 and (t + 1).shape == ()


def test_an_assign_runs_once(device):
  """A pending graph that read another tensor's ASSIGN used to run that ASSIGN again once any later assign had
  cleared the realized results: a counter read this way was incremented twice."""
  c = Tensor(np.zeros(1, np.float32), device=device).realize()
  r = Tensor(np.zeros(1, np.float32), device=device).realize()
  other = Tensor(np.full(1, 5.0, np.float32), device=device).realize()
  c.assign(c + 1)
  r.assign(r + c)  # reads c's ASSIGN
  c.realize()
  other.assign(other * 2)
  r.realize()
  assert c.item() == 1.0 and r.item() == 1.0


def test_an_assign_realized_inside_another_graph_runs_once(device):
  """An ASSIGN realized as part of another tensor's graph, after its own sources had been swapped for buffers,
  was remembered only under its rebuilt copy: the graphs still holding the original ran it again."""
  c = Tensor(np.zeros(1, np.float32), device=device).realize()
  a = Tensor(np.zeros(1, np.float32), device=device).realize()
  b = Tensor(np.zeros(1, np.float32), device=device).realize()
  c.assign(c + 1)
  c.assign(c + 1)  # its value reads the first ASSIGN, which assign() realizes: this one is rebuilt when scheduled
  a.assign(a + c)
  b.assign(b + c)
  a.realize()  # runs c's second ASSIGN inside a's graph
  b.realize()
  assert (a.item(), b.item(), c.item()) == (2.0, 2.0, 2.0)


def test_elementwise_read_broadcast_by_a_big_reduce_is_realized_first(device):
  """relu(a) @ b: each element of relu(a) is read once per output column. In a big matmul it is computed once
  (its own kernel) instead of once per column; in a small one it stays fused (a launch costs more)."""
  a, b = rand(64, 128, device=device).realize(), rand(128, 64, device=device).realize()
  big = a.relu() @ b
  assert kernels_for(big) == 2
  np.testing.assert_allclose(big.numpy(), np.maximum(a.numpy(), 0) @ b.numpy(), rtol=1e-4, atol=1e-4)
  small_a, small_b = rand(8, 16, device=device).realize(), rand(16, 8, device=device).realize()
  assert kernels_for(small_a.relu() @ small_b) == 1
  # an input that is only loaded (no work) is read where it is, whatever the size
  assert kernels_for(a @ b) == 1


def test_detach_fuses_and_detach_of_a_buffer_copies_nothing(device, monkeypatch):
  from teeny.schedule import kernelize
  a = rand(8, 16, device=device).realize()
  # a DETACH of computed work is passed through inside the kernel: the graph needs no rebuilding (prepare runs
  # on every realize that has to rebuild, and costs as much as scheduling)
  calls = []
  real_prepare = kernelize.prepare
  monkeypatch.setattr(kernelize, "prepare", lambda *args: calls.append(1) or real_prepare(*args))
  out = (a * 2).exp().detach() + (a * 2).exp()
  assert kernels_for(out) == 1 and not calls
  np.testing.assert_allclose(out.numpy(), 2 * np.exp(a.numpy() * 2), rtol=1e-6)
  # a DETACH of a realized tensor is that tensor's buffer
  assert kernels_for(a.detach()) == 0
  np.testing.assert_array_equal(a.detach().numpy(), a.numpy())


def test_a_sum_read_transposed_is_summed_in_that_order(device):
  """A sum whose one reader is a transpose of it (a weight's gradient: summed as (in, out), read as (out, in)) is
  summed in the order it is read: one kernel, no transposing copy after it."""
  a, b = rand(16, 24, device=device), rand(16, 20, device=device)
  Tensor.realize_all(a, b)
  summed = (a.reshape(16, 24, 1) * b.reshape(16, 1, 20)).sum(0)
  out = summed.T.contiguous()  # (a view of it alone would realize the sum and stay a view)
  assert kernels_for(out) == 1
  np.testing.assert_allclose(out.numpy(), (a.numpy().T @ b.numpy()).T, rtol=1e-4, atol=1e-4)
  x = rand(2, 3, 4, 5, device=device).realize()
  kept = x.sum(2, keepdim=True).reshape(2, 3, 5).permute(2, 0, 1).contiguous()  # (through a reshape that drops the summed axis)
  assert kernels_for(kept) == 1
  np.testing.assert_allclose(kept.numpy(), x.numpy().sum(2).transpose(2, 0, 1), rtol=1e-5, atol=1e-5)


def test_a_sum_also_read_in_its_own_order_is_summed_once(device):
  a = rand(8, 6, 5, device=device).realize()
  summed = a.sum(0)
  both = summed.T * 2, summed + 1
  assert kernels_for(*both) == 3  # the sum, then each reader (the sum stays in its order: it has two readers)
  np.testing.assert_allclose(both[0].numpy(), a.numpy().sum(0).T * 2, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(both[1].numpy(), a.numpy().sum(0) + 1, rtol=1e-5, atol=1e-5)


def test_linear_weight_gradient_is_one_kernel(device):
  x, d = rand(32, 24, device=device), rand(32, 16, device=device)
  w = rand(16, 24, device=device).requires_grad_()
  Tensor.realize_all(x, d, w)
  ((x @ w.T) * d).sum().backward()
  assert kernels_for(w.grad) == 1  # the sum over the batch, not a transpose after it
  np.testing.assert_allclose(w.grad.numpy(), d.numpy().T @ x.numpy(), rtol=1e-4, atol=1e-4)


def test_a_result_that_reshapes_a_contiguous_is_realized_as_its_view(device):
  """A result that is a reshape of a CONTIGUOUS the schedule computes anyway (a pooling gradient summed in a shape
  folded by its stride) is realized as a view of that buffer: no copy into a buffer of its own. Two results of
  one realize that reshape the same CONTIGUOUS still get a buffer each, so writing one never changes the other."""
  a = rand(4, 6, device=device).realize()
  folded = (a + 1).contiguous().uop  # (a node no tensor holds, as inside a gradient)
  flat = a._new(folded.reshape((24,)))
  assert scheduled(flat) == 1
  flat.realize()
  np.testing.assert_allclose(flat.numpy(), a.numpy().reshape(24) + 1)
  twice = a._new(folded.reshape((2, 12))), a._new(folded.reshape((3, 8)))
  Tensor.realize_all(*twice)
  assert buffer_of(twice[0].uop) is not buffer_of(twice[1].uop)
  twice[0].assign(Tensor.zeros(2, 12, device=device)).realize()
  np.testing.assert_allclose(twice[1].numpy(), a.numpy().reshape(3, 8) + 1)
  np.testing.assert_allclose(twice[0].numpy(), np.zeros((2, 12)))
