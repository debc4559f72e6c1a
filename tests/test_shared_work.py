"""Elementwise work that several kernels read is computed once (teeny/schedule/kernelize._store_shared_work):
stored by a kernel of its own when it is at least Tuning.shared_work_ops operations, computed again inside each
reader when it is cheaper than that. Every test checks the values against numpy (or against the same model written
with matrices): storing the wrong node, or reading it before it is written, would be a silent wrong result."""
import random
import numpy as np
from teeny import Tensor, Device, dtypes
from teeny.uop import Ops, ALU
from teeny.schedule import create_schedule

DEVICES = Device.available()


def data(*shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def kernels_of(*tensors: Tensor) -> list:
  """The kernel ASTs that realizing the tensors together runs (copies left out)."""
  items, *_ = create_schedule([t.uop for t in tensors], [t.device for t in tensors])
  return [item.ast for item in items if item.ast.op is Ops.SINK]


def alu_count(ast) -> int:
  return sum(u.op in ALU for u in ast.toposort())


def heavy(x: Tensor, steps: int) -> Tensor:
  """`steps` rounds of elementwise work on x (three ALU ops each, none of them folded away)."""
  y = x
  for i in range(steps): y = (y * 0.75 + x).sin()
  return y


def heavy_np(x: np.ndarray, steps: int) -> np.ndarray:
  y = x
  for i in range(steps): y = np.sin(y * np.float32(0.75) + x)
  return y


def test_expensive_work_read_by_two_kernels_is_stored_once(device):
  xn = data(64)
  x = Tensor(xn, device=device).realize()
  y = heavy(x, 20)
  a, b = (y * 2).sum(), (y + 1).max()
  asts = kernels_of(a, b)
  assert len(asts) == 3, "y should be a kernel of its own, read by the sum's and the max's"
  assert sum(alu_count(k) >= 60 for k in asts) == 1, "y's 60 operations should be in one kernel only"
  Tensor.realize(a, b)
  want = heavy_np(xn, 20)
  np.testing.assert_allclose(a.numpy(), (want * 2).sum(), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(b.numpy(), (want + 1).max(), rtol=1e-5, atol=1e-6)


def test_cheap_work_read_by_two_kernels_stays_fused(device):
  xn = data(64)
  x = Tensor(xn, device=device).realize()
  y = heavy(x, 2)  # six operations: cheaper to compute twice than to store and load
  a, b = (y * 2).sum(), (y + 1).max()
  assert len(kernels_of(a, b)) == 2
  want = heavy_np(xn, 2)
  np.testing.assert_allclose(a.numpy(), (want * 2).sum(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(b.numpy(), (want + 1).max(), rtol=1e-6, atol=1e-6)


def test_work_read_by_one_kernel_twice_stays_in_it(device):
  """A diamond inside one kernel (y read twice by the same elementwise result) is not a reason to store y."""
  xn = data(64)
  y = heavy(Tensor(xn, device=device), 20)
  out = y * y + y
  assert len(kernels_of(out)) == 1
  want = heavy_np(xn, 20)
  np.testing.assert_allclose(out.numpy(), want * want + want, rtol=1e-5, atol=1e-5)


def test_one_randn_read_by_many_kernels_is_drawn_once(device):
  """The random hash (threefry: about a hundred operations per number) runs in one kernel, not in each reader,
  and every reader sees the same numbers."""
  r = Tensor.randn(256, device=device)
  outs = [(r * (i + 2)).sum() for i in range(4)] + [r.max()]
  asts = kernels_of(*outs)
  hashing = [k for k in asts if sum(u.op is Ops.XOR for u in k.toposort()) > 0]
  assert len(hashing) == 1, f"{len(hashing)} kernels hash the random bits"
  Tensor.realize(r, *outs)
  rn = r.numpy()
  for i, o in enumerate(outs[:4]): np.testing.assert_allclose(o.numpy(), (rn * (i + 2)).sum(), rtol=1e-4, atol=1e-4)
  assert outs[4].numpy() == rn.max()


class ScalarMLP:
  """micrograd's MLP, every weight a 0-d tensor (its Neuron, Layer and MLP in a few lines)."""
  def __init__(self, sizes: list[int], device: str, seed: int = 0):
    rng = random.Random(seed)
    self.w = [[[Tensor(rng.uniform(-1, 1), requires_grad=True, device=device) for _ in range(n_in)] for _ in range(n_out)]
              for n_in, n_out in zip(sizes, sizes[1:])]
    self.b = [[Tensor(0.0, requires_grad=True, device=device) for _ in range(n_out)] for n_out in sizes[1:]]

  def __call__(self, x: list) -> Tensor:
    for layer, (w, b) in enumerate(zip(self.w, self.b)):
      x = [sum((wi * xi for wi, xi in zip(row, x)), bias) for row, bias in zip(w, b)]
      if layer < len(self.w) - 1: x = [v.relu() for v in x]
    return x[0]

  def parameters(self) -> list[Tensor]:
    return [p for w, b in zip(self.w, self.b) for row, bias in zip(w, b) for p in row + [bias]]


def test_scalar_mlp_gradients_match_the_matrix_model(device):
  """A micrograd-style graph (thousands of 0-d nodes): its gradients equal those of the same model written with
  matrices, and no kernel computes the forward pass again (each kernel stays small)."""
  xs, ys = [[2.0, 3.0], [3.0, -1.0], [0.5, 1.0]], [1.0, -1.0, -1.0]
  model = ScalarMLP([2, 6, 6, 1], device)
  loss = sum(((model([Tensor(v, device=device) for v in x]) - y) ** 2 for x, y in zip(xs, ys)), Tensor(0.0, device=device))
  loss.backward()
  params = model.parameters()
  grads = [p.grad for p in params]
  asts = kernels_of(*grads)
  assert max(alu_count(k) for k in asts) <= 200, "a gradient kernel computes the whole graph again"
  Tensor.realize(*grads)
  # the same model with matrices: W1 (6,2), W2 (6,6), W3 (1,6)
  w = [Tensor(np.array([[p.numpy() for p in row] for row in layer], dtype=np.float32), requires_grad=True, device=device) for layer in model.w]
  b = [Tensor(np.array([p.numpy() for p in layer], dtype=np.float32), requires_grad=True, device=device) for layer in model.b]
  h = Tensor(np.array(xs, dtype=np.float32), device=device)
  for i in range(3):
    h = h @ w[i].T + b[i]
    if i < 2: h = h.relu()
  matrix_loss = ((h.reshape(-1) - Tensor(np.array(ys, dtype=np.float32), device=device)) ** 2).sum()
  matrix_loss.backward()
  np.testing.assert_allclose(loss.numpy(), matrix_loss.numpy(), rtol=1e-5)
  want = [g for wi, bi in zip(w, b) for g in np.concatenate([wi.grad.numpy(), bi.grad.numpy()[:, None]], 1).reshape(-1)]
  np.testing.assert_allclose(np.array([g.numpy() for g in grads]), np.array(want), rtol=1e-4, atol=1e-5)


def test_stored_work_under_a_reduce_of_another_dtype(device):
  """Shared work of another dtype (int32 from a cast) is stored in that dtype."""
  xn = data(32)
  x = Tensor(xn, device=device).realize()
  y = heavy(x, 12)
  k = (y * 1000).cast(dtypes.int32)
  a, b = k.sum(), (k * 2).max()
  want = (heavy_np(xn, 12) * 1000).astype(np.int32)
  Tensor.realize(a, b)
  assert a.numpy() == want.sum() and b.numpy() == (want * 2).max()
