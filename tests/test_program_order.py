"""Program order for lazy reads: a lazy value built from a tensor before that tensor is
overwritten (assign, setitem, an in-place operator, an optimizer step) reads the value it had when the expression
was written, whenever it is realized, as in eager PyTorch. Updates nobody else reads stay in place.

Every test runs on every device and checks against numpy; where PyTorch is installed the training comparisons
also run there."""
import numpy as np
import pytest
from teeny import Tensor, GlobalCounters, TinyJit
from teeny.nn.optim import SGD, Adam

try:
  import torch
except ImportError:  # the PyTorch comparisons are skipped; the numpy ones always run
  torch = None


def test_lazy_result_keeps_the_value_from_before_an_assign(device):
  x = Tensor([1.0, 2.0, 3.0], device=device).realize()
  z = x * 2
  x.assign(Tensor([10.0, 20.0, 30.0], device=device)).realize()
  np.testing.assert_array_equal(z.numpy(), [2.0, 4.0, 6.0])
  np.testing.assert_array_equal((x * 2).numpy(), [20.0, 40.0, 60.0])


def test_results_between_pending_writes_read_each_value(device):
  x = Tensor([0.0], device=device).realize()
  y0 = x + 0
  x.assign(x + 1)
  y1 = x + 0
  x.assign(x + 1)
  y2 = x + 0
  x += 1
  assert [y0.item(), y1.item(), y2.item(), x.item()] == [0.0, 1.0, 2.0, 3.0]


def test_setitem_and_inplace_operators_keep_program_order(device):
  x = Tensor([1.0, 2.0, 3.0], device=device).realize()
  total, first = x.sum(), x[0] * 1
  x[0] = 100.0
  x *= 2
  assert total.item() == 6.0 and first.item() == 1.0
  np.testing.assert_array_equal(x.numpy(), [200.0, 4.0, 6.0])


@pytest.mark.parametrize("contiguous", [False, True])
def test_result_needing_old_and_new_values_of_one_tensor(device, contiguous):
  """new = a + (a_before * 3 - 1): tinygrad refuses this ("cycle"), PyTorch computes it; so does teeny."""
  a = Tensor.ones(4, device=device).contiguous().realize()
  times_a = a * 3
  a.assign(Tensor.full((4,), 2.0, device=device))
  new = (a.contiguous() if contiguous else a) + (times_a - 1)
  np.testing.assert_array_equal(new.numpy(), np.full(4, 4.0, np.float32))
  np.testing.assert_array_equal(a.numpy(), np.full(4, 2.0, np.float32))


def test_crossed_updates_read_the_values_before_them(device):
  a = Tensor.full((4,), 2.0, device=device).contiguous().realize()
  b = Tensor.full((4,), 3.0, device=device).contiguous().realize()
  c = a + 9
  a += b
  b += c  # c was 2 + 9 when it was written
  Tensor.realize_all(a, b)
  np.testing.assert_array_equal(a.numpy(), np.full(4, 5.0, np.float32))
  np.testing.assert_array_equal(b.numpy(), np.full(4, 14.0, np.float32))
  a += b
  b += a  # in program order: b reads the a just written
  Tensor.realize_all(a, b)
  np.testing.assert_array_equal(a.numpy(), np.full(4, 19.0, np.float32))
  np.testing.assert_array_equal(b.numpy(), np.full(4, 33.0, np.float32))


def test_result_remembered_before_a_write_is_not_reused_after_it(device):
  x = Tensor([1.0, 2.0], device=device).realize()
  a = (x + 1).realize()
  x += 1
  b = x + 1  # the same expression as a, over x's new values
  np.testing.assert_array_equal(b.numpy(), [3.0, 4.0])
  np.testing.assert_array_equal(a.numpy(), [2.0, 3.0])


def test_tensors_realized_from_one_graph_dont_share_storage(device):
  x = Tensor([1.0, 2.0], device=device).realize()
  a, b = x + 1, x + 1
  Tensor.realize_all(a, b)
  c = (x + 1).realize()  # found already realized
  a += 10
  np.testing.assert_array_equal(a.numpy(), [12.0, 13.0])
  np.testing.assert_array_equal(b.numpy(), [2.0, 3.0])
  np.testing.assert_array_equal(c.numpy(), [2.0, 3.0])


def test_update_nobody_else_reads_stays_in_place(device):
  """No copy and no extra kernel: the one update kernel writes the parameter's own buffer."""
  p = Tensor(np.arange(8, dtype=np.float32), device=device).realize()
  buffer = p.uop
  g = Tensor(np.ones(8, np.float32), device=device).realize()
  GlobalCounters.reset()
  p.assign(p - 0.5 * g).realize()
  assert GlobalCounters.kernel_count == 1
  assert p.uop is buffer
  np.testing.assert_array_equal(p.numpy(), np.arange(8) - 0.5)


def test_backward_through_a_result_whose_inputs_were_overwritten_raises(device):
  w = Tensor([1.0, 2.0], device=device, requires_grad=True)
  loss = (w * w).sum()
  assert loss.item() == 5.0  # realized: it keeps its graph for a later backward()
  with Tensor.no_grad(): w -= 1.0
  w.realize()
  with pytest.raises(RuntimeError, match="overwritten"): loss.backward()
  fresh = (w * w).sum()
  fresh.backward()
  np.testing.assert_array_equal(w.grad.numpy(), [0.0, 2.0])


# ---- training: every way of writing the update trains the same, like PyTorch ----

def two_moons(n=64, seed=0):
  rng = np.random.default_rng(seed)
  t = np.linspace(0, np.pi, n // 2)
  x = np.concatenate([np.stack([np.cos(t), np.sin(t)], 1), np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)])
  x = (x + rng.normal(scale=0.1, size=x.shape)).astype(np.float32)
  return x, np.concatenate([-np.ones(n // 2), np.ones(n // 2)]).astype(np.float32)


def init_params(seed=1):
  rng = np.random.default_rng(seed)
  shapes = [(16, 2), (16,), (16, 16), (16,), (1, 16), (1,)]
  return [rng.uniform(-0.5, 0.5, size=s).astype(np.float32) for s in shapes]


def numpy_losses(x, y, params, lr, steps):
  """micrograd's two-moons MLP (2-16-16-1, relu, hinge loss) trained by plain SGD, in float64, by hand."""
  w1, b1, w2, b2, w3, b3 = [p.astype(np.float64) for p in params]
  losses = []
  for _ in range(steps):
    h1 = x @ w1.T + b1; a1 = np.maximum(h1, 0)
    h2 = a1 @ w2.T + b2; a2 = np.maximum(h2, 0)
    out = (a2 @ w3.T + b3).reshape(-1)
    margin = 1 - y * out
    losses.append(np.maximum(margin, 0).mean())
    dout = (-y * (margin > 0) / len(y)).reshape(-1, 1)
    dw3, db3 = dout.T @ a2, dout.sum(0)
    dh2 = (dout @ w3) * (h2 > 0)
    dw2, db2 = dh2.T @ a1, dh2.sum(0)
    dh1 = (dh2 @ w2) * (h1 > 0)
    dw1, db1 = dh1.T @ x, dh1.sum(0)
    w1, b1, w2, b2, w3, b3 = (w1 - lr * dw1, b1 - lr * db1, w2 - lr * dw2, b2 - lr * db2, w3 - lr * dw3, b3 - lr * db3)
  return losses


def teeny_losses(x, y, params, lr, steps, device, update: str):
  ps = [Tensor(p, device=device, requires_grad=True) for p in params]
  xt, yt = Tensor(x, device=device), Tensor(y, device=device)
  opt = SGD(ps, lr=lr) if update == "optimizer" else None
  losses = []
  for _ in range(steps):
    w1, b1, w2, b2, w3, b3 = ps
    out = ((xt @ w1.T + b1).relu() @ w2.T + b2).relu() @ w3.T + b3
    loss = (1 - yt * out.reshape(-1)).relu().mean()
    for p in ps: p.grad = None
    loss.backward()
    losses.append(loss)  # read at the end: each must be the loss of the weights of its own step
    if update == "per parameter":  # one realize per parameter, micrograd style
      for p in ps: p.assign(p - lr * p.grad).realize()
    elif update == "fused":
      Tensor.realize_all(*[p.assign(p - lr * p.grad) for p in ps])
    elif update == "inplace":
      with Tensor.no_grad():
        for p in ps: p -= lr * p.grad
    elif update == "inplace, gradients kept":  # (a realized gradient's graph read the parameters' old values)
      kept = [p.grad for p in ps]
      with Tensor.no_grad():
        for p, g in zip(ps, kept): p -= lr * g
    else: opt.step()
  return [loss.item() for loss in losses]


@pytest.mark.parametrize("update", ["per parameter", "fused", "inplace", "inplace, gradients kept", "optimizer"])
def test_every_way_of_updating_trains_the_same(device, update):
  x, y = two_moons()
  params, lr, steps = init_params(), 0.2, 10
  expected = numpy_losses(x, y, params, lr, steps)
  np.testing.assert_allclose(teeny_losses(x, y, params, lr, steps, device, update), expected, rtol=2e-4, atol=1e-6)
  if torch:
    tp = [torch.tensor(p, requires_grad=True) for p in params]
    tx, ty = torch.tensor(x), torch.tensor(y)
    losses = []
    for _ in range(steps):
      out = torch.relu(torch.relu(tx @ tp[0].T + tp[1]) @ tp[2].T + tp[3]) @ tp[4].T + tp[5]
      loss = torch.relu(1 - ty * out.reshape(-1)).mean()
      for p in tp: p.grad = None
      loss.backward()
      losses.append(loss.item())
      with torch.no_grad():
        for p in tp: p -= lr * p.grad
    np.testing.assert_allclose(losses, expected, rtol=2e-4, atol=1e-6)


def test_metric_built_before_the_step_is_the_old_one(device):
  x, y = two_moons()
  params = [Tensor(p, device=device) for p in init_params()]
  opt = Adam(params, lr=0.1)
  xt, yt = Tensor(x, device=device), Tensor(y, device=device)
  def model(): return ((xt @ params[0].T + params[1]).relu() @ params[2].T + params[3]).relu() @ params[4].T + params[5]
  out = model()
  loss = (1 - yt * out.reshape(-1)).relu().mean()
  accuracy = ((out.reshape(-1) > 0) == (yt > 0)).float().mean()  # built before the step, read after it
  expected = float((((model().numpy().reshape(-1) > 0) == (y > 0))).mean())
  loss.backward()
  opt.step()
  assert accuracy.item() == expected


def test_lazy_tensor_across_tinyjit_steps_keeps_program_order(device):
  w = Tensor(np.ones(3, np.float32), device=device).realize()
  @TinyJit
  def step(x):
    w.assign(w * x)
    return w.sum()
  two = Tensor(np.full(3, 2.0, np.float32), device=device)
  for _ in range(3): step(two)  # w = 8
  before = w + 0  # lazy, reads w = 8
  step(two)       # a replay: w = 16
  np.testing.assert_array_equal(before.numpy(), np.full(3, 8.0, np.float32))
  np.testing.assert_array_equal(w.numpy(), np.full(3, 16.0, np.float32))


def test_update_reading_a_kept_result_is_one_kernel_storing_both(device):
  """p.assign(p - lr * g) with g still held (as p.grad is): g must be stored (it may be read after the update),
  and the update reads it at the element it writes, so one kernel stores both."""
  rng = np.random.default_rng(3)
  a_np, b_np, p_np = rng.normal(size=(16, 8)), rng.normal(size=(8, 12)), rng.normal(size=(16, 12))
  a, b = Tensor(a_np.astype(np.float32), device=device), Tensor(b_np.astype(np.float32), device=device)
  p = Tensor(p_np.astype(np.float32), device=device).realize()
  g = a @ b
  p.assign(p - 0.5 * g)
  GlobalCounters.reset()
  Tensor.realize_all(p, g)
  assert GlobalCounters.kernel_count == 1
  np.testing.assert_allclose(g.numpy(), a_np @ b_np, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(p.numpy(), p_np - 0.5 * (a_np @ b_np), rtol=1e-5, atol=1e-5)


def test_update_reading_a_result_elsewhere_than_it_writes_stays_apart(device):
  """An update reading the result at other elements (a flip) or a result that reads the updated tensor can't be
  one kernel: each still gets the old values."""
  x_np = np.arange(6, dtype=np.float32)
  p = Tensor(x_np.copy(), device=device).realize()
  r = Tensor(x_np, device=device) * 2
  p.assign(p + r.flip(0))
  Tensor.realize_all(p, r)
  np.testing.assert_array_equal(p.numpy(), x_np + (x_np * 2)[::-1])
  q = Tensor(x_np.copy(), device=device).realize()
  s = (q * 3).sum()  # reads all of q: the update of q must wait until it is done
  q.assign(q - s)
  Tensor.realize_all(q, s)
  np.testing.assert_array_equal(q.numpy(), x_np - x_np.sum() * 3)
  assert s.item() == x_np.sum() * 3


def test_tinyjit_replay_of_a_merged_update_keeps_program_order(device):
  """A replayed kernel that stores a kept result and an update (see the merged writes above) protects the
  updated tensor too: a lazy reader built before the replay keeps the old values, the kept result is new."""
  a = Tensor(np.ones((4, 3), np.float32), device=device).realize()
  b = Tensor(np.ones((3, 2), np.float32), device=device).realize()
  p = Tensor(np.zeros((4, 2), np.float32), device=device).realize()
  kept = {}
  @TinyJit
  def step():
    kept["g"] = a @ b
    p.assign(p + kept["g"])
    Tensor.realize_all(p, kept["g"])
    return p
  for _ in range(3): step()  # p = 9
  before = p * 1
  step()                      # a replay: p = 12
  np.testing.assert_array_equal(before.numpy(), np.full((4, 2), 9.0, np.float32))
  np.testing.assert_array_equal(p.numpy(), np.full((4, 2), 12.0, np.float32))
  np.testing.assert_array_equal(kept["g"].numpy(), np.full((4, 2), 3.0, np.float32))
