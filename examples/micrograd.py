"""The classic micrograd expression, differentiated by teeny's lazy autograd (the gradients fuse into kernels).

Expected (from micrograd's README): g = 24.7041, a.grad = 138.8338, b.grad = 645.5773.
"""
import argparse
from teeny import Tensor


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


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--device", default=None, help="CL or LLVM (default: teeny's default device)")
  args = parser.parse_args()
  g, a, b = micrograd_expression(args.device)
  print(f"g = {g.item():.4f}")        # 24.7041
  print(f"a.grad = {a.grad.item():.4f}")  # 138.8338
  print(f"b.grad = {b.grad.item():.4f}")  # 645.5773
