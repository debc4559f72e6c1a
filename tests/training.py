"""A small MLP and its training step written by hand (no optimizer module), shared by the overhead tests."""
import numpy as np
from teeny import Tensor


def make_mlp(sizes, device, seed=0) -> list[Tensor]:
  """Weights and biases of an MLP with layer sizes `sizes` (e.g. (16, 12, 12, 4)), as leaf tensors."""
  rng = np.random.default_rng(seed)
  params = []
  for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
    params.append(Tensor((rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32), device=device, requires_grad=True))
    params.append(Tensor((rng.standard_normal(fan_out) * 0.1).astype(np.float32), device=device, requires_grad=True))
  return params


def make_batch(sizes, batch, device, seed=0) -> tuple[Tensor, Tensor]:
  """Inputs and one-hot labels."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
  y = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], batch)]
  return Tensor(x, device=device), Tensor(y, device=device)


def mlp_loss(params, x: Tensor, y: Tensor) -> Tensor:
  h = x
  for i in range(0, len(params), 2):
    h = h @ params[i] + params[i + 1]
    if i + 2 < len(params): h = h.relu()
  return -(h.log_softmax(1) * y).sum(1).mean()


def train_step(params, x: Tensor, y: Tensor, lr: float = 0.1) -> Tensor:
  """One SGD step: gradients, in-place updates, and the loss, realized together."""
  for p in params: p.grad = None
  loss = mlp_loss(params, x, y)
  loss.backward()
  for p in params: p.assign(p - lr * p.grad)
  Tensor.realize_all(loss, *params)
  return loss


def numpy_step(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray, lr: float = 0.1) -> tuple[list[np.ndarray], float]:
  """The same step in numpy (float64), for checking the values."""
  ws = [w.astype(np.float64) for w in weights]
  acts, pre = [x.astype(np.float64)], []
  for i in range(0, len(ws), 2):
    z = acts[-1] @ ws[i] + ws[i + 1]
    pre.append(z)
    acts.append(np.maximum(z, 0) if i + 2 < len(ws) else z)
  logits = acts[-1]
  shifted = logits - logits.max(1, keepdims=True)
  logp = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
  loss = -(logp * y).sum(1).mean()
  g = (np.exp(logp) - y) / x.shape[0]
  grads = [None] * len(ws)
  for layer in reversed(range(len(ws) // 2)):
    grads[2 * layer], grads[2 * layer + 1] = acts[layer].T @ g, g.sum(0)
    if layer: g = (g @ ws[2 * layer].T) * (pre[layer - 1] > 0)
  return [w - lr * gr for w, gr in zip(ws, grads)], loss
