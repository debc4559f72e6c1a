"""micrograd's two demos, on teeny: the classic scalar expression, differentiated by lazy autograd (the gradients
fuse into kernels), and a tiny MLP that learns to separate two moons.

Expected (from micrograd's README): g = 24.7041, a.grad = 138.8338, b.grad = 645.5773; the MLP classifies over
95% of the points.
"""
import argparse
import numpy as np
from teeny import Tensor, Device
from teeny.nn import Linear
from teeny.nn.optim import Adam
from teeny.nn.state import get_parameters


def micrograd_expression(device: str | None = None):
  # float64, like the PyTorch check in micrograd's README (float32 gives b.grad = 645.5772)
  a = Tensor(-4.0, dtype="float64", requires_grad=True, device=device)
  b = Tensor(2.0, dtype="float64", requires_grad=True, device=device)
  c = a + b
  d = a * b + b ** 3
  c = c + c + 1
  c = c + 1 + c + (-a)
  d = d + d * 2 + (b + a).relu()
  d = d + 3 * d + (b - a).relu()
  e = c - d
  f = e ** 2
  g = f / 2.0
  g = g + 10.0 / f
  g.backward()
  return g, a, b


def two_moons(n: int, noise: float, seed: int):
  """Two interleaving half circles (like scikit-learn's make_moons), labels -1 and +1."""
  rng = np.random.default_rng(seed)
  t = np.linspace(0, np.pi, n // 2)
  outer = np.stack([np.cos(t), np.sin(t)], 1)
  inner = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
  x = np.concatenate([outer, inner]) + rng.normal(scale=noise, size=(n // 2 * 2, 2))
  y = np.concatenate([-np.ones(n // 2), np.ones(n // 2)])
  return x.astype(np.float32), y.astype(np.float32)


def train_moons(steps: int = 40, verbose: bool = False) -> float:
  """micrograd's demo: a 2-16-16-1 MLP with a max-margin loss, trained full-batch by Adam on 200 points, on
  Device.DEFAULT. Returns the fraction of points it classifies right."""
  Tensor.manual_seed(1)
  x, y = two_moons(200, 0.1, seed=0)
  layers = [Linear(2, 16), Linear(16, 16), Linear(16, 1)]
  def model(t: Tensor) -> Tensor: return layers[2](layers[1](layers[0](t).relu()).relu()).reshape(-1)
  opt = Adam(get_parameters(layers), lr=0.05)
  xt, yt = Tensor(x), Tensor(y)
  for step in range(1, steps + 1):
    opt.zero_grad()
    loss = (1 - yt * model(xt)).relu().mean()
    loss.backward()
    if verbose and step % 10 == 0: print(f"step {step:3d}  loss {loss.item():.4f}")
    opt.step()
  return float(((model(xt).numpy() > 0) == (y > 0)).mean())


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--device", default=None, help="CL or LLVM (default: teeny's default device)")
  args = parser.parse_args()
  g, a, b = micrograd_expression(args.device)
  print(f"g = {g.item():.4f}")        # 24.7041
  print(f"a.grad = {a.grad.item():.4f}")  # 138.8338
  print(f"b.grad = {b.grad.item():.4f}")  # 645.5773
  if args.device: Device.DEFAULT = args.device
  print(f"two moons: accuracy {train_moons(verbose=True) * 100:.1f}%")
