"""A literal micrograd port: every number a 0-d Tensor, micrograd's Neuron/Layer/MLP (2-16-16-1, relu), a squared
error over 5 data points, SGD written as `p.assign(p - lr * p.grad)`. Each training step builds a graph of about
12,000 scalar nodes (forward and backward) and realizes the 337 parameter updates together. teeny schedules it
into a few hundred small kernels: elementwise work that several gradients need is stored once
(Tuning.shared_work_ops), not recomputed in every gradient's kernel.

Beside it, the same steps with micrograd's own engine (a scalar autograd in plain Python, written out below: the
algorithm of karpathy/micrograd's engine.py) and with PyTorch 0-d tensors when torch is installed. Each
implementation runs in a fresh process with a fresh compile cache; step 1 includes every compile, "later" is the
median of the steps after the second (the first two schedule new graphs: step 1 reads parameters made on the
host, step 2 reads the ones step 1 wrote). The losses are checked against micrograd's to 1e-4.

  python bench/bench_micrograd.py
  python bench/bench_micrograd.py --hidden 32 --points 20   # a graph of about 160,000 nodes per step
"""
from __future__ import annotations
import argparse, json, os, subprocess, sys, tempfile
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

CHILD = r"""
import json, random, statistics, sys, time
impl, device, hidden, points, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

class Value:
  '''micrograd's scalar: data, grad, and the closure that passes the grad to its children.'''
  def __init__(self, data, children=()):
    self.data, self.grad, self._prev, self._backward = data, 0.0, children, lambda: None
  def __add__(self, other):
    other = other if isinstance(other, Value) else Value(other)
    out = Value(self.data + other.data, (self, other))
    def backward(): self.grad += out.grad; other.grad += out.grad
    out._backward = backward
    return out
  def __mul__(self, other):
    other = other if isinstance(other, Value) else Value(other)
    out = Value(self.data * other.data, (self, other))
    def backward(): self.grad += other.data * out.grad; other.grad += self.data * out.grad
    out._backward = backward
    return out
  def __pow__(self, k):
    out = Value(self.data ** k, (self,))
    def backward(): self.grad += k * self.data ** (k - 1) * out.grad
    out._backward = backward
    return out
  def relu(self):
    out = Value(max(self.data, 0.0), (self,))
    def backward(): self.grad += (out.data > 0) * out.grad
    out._backward = backward
    return out
  def __neg__(self): return self * -1
  def __sub__(self, other): return self + (-other)
  def __radd__(self, other): return self + other
  def backward(self):
    order, seen = [], set()
    stack = [(self, False)]
    while stack:
      v, done = stack.pop()
      if done: order.append(v); continue
      if v in seen: continue
      seen.add(v)
      stack.append((v, True))
      stack.extend((c, False) for c in v._prev)
    self.grad = 1.0
    for v in reversed(order): v._backward()

if impl == "teeny":
  from teeny import Tensor
  def number(x, grad=False): return Tensor(x, requires_grad=grad, device=device)
  def zero_grads(params):
    for p in params: p.grad = None
  def backward(loss): loss.backward()
  def update(params, lr):
    for p in params: p.assign(p.detach() - lr * p.grad)
    Tensor.realize(*params)
  def value(loss): return loss.item()
elif impl == "torch":
  import torch
  torch.set_num_threads(1)
  def number(x, grad=False): return torch.tensor(x, requires_grad=grad)
  def zero_grads(params):
    for p in params: p.grad = None
  def backward(loss): loss.backward()
  def update(params, lr):
    with torch.no_grad():
      for p in params: p -= lr * p.grad
  def value(loss): return loss.item()
else:
  def number(x, grad=False): return Value(x)
  def zero_grads(params):
    for p in params: p.grad = 0.0
  def backward(loss): loss.backward()
  def update(params, lr):
    for p in params: p.data -= lr * p.grad
  def value(loss): return loss.data

random.seed(0)
sizes = [2, hidden, hidden, 1]
layers = [[([number(random.uniform(-1, 1), True) for _ in range(n_in)], number(0.0, True)) for _ in range(n_out)]
          for n_in, n_out in zip(sizes, sizes[1:])]
params = [p for layer in layers for w, b in layer for p in w + [b]]
def model(x):
  for i, layer in enumerate(layers):
    x = [sum((wi * xi for wi, xi in zip(w, x)), b) for w, b in layer]
    if i < len(layers) - 1: x = [v.relu() for v in x]
  return x[0]
data_rng = random.Random(1)
xs = [[data_rng.uniform(-2, 2), data_rng.uniform(-2, 2)] for _ in range(points)]
ys = [1.0 if x[0] * x[1] > 0 else -1.0 for x in xs]
times, losses = [], []
for step in range(steps):
  start = time.perf_counter()
  zero_grads(params)
  loss = sum(((model([number(v) for v in x]) - y) ** 2 for x, y in zip(xs, ys)), number(0.0))
  backward(loss)
  losses.append(value(loss))
  update(params, 0.002)
  times.append(time.perf_counter() - start)
print(json.dumps({"first": times[0], "later": statistics.median(times[2:]) if steps > 2 else times[-1], "losses": losses}))
"""


def run(impl: str, device: str, hidden: int, points: int, steps: int) -> dict | None:
  """One implementation's step times and losses, in a fresh process with a fresh compile cache."""
  with tempfile.TemporaryDirectory() as cache:
    env = dict(os.environ, TEENY_CACHE_DIR=cache, POCL_CACHE_DIR=os.path.join(cache, "pocl"), PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", CHILD, impl, device, str(hidden), str(points), str(steps)],
                          env=env, capture_output=True, text=True)
  if done.returncode != 0:
    if impl == "torch" and "No module named 'torch'" in done.stderr: return None
    raise SystemExit(f"{impl} {device}: {done.stderr.strip()[-2000:]}")
  return json.loads(done.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--hidden", type=int, default=16)
  parser.add_argument("--points", type=int, default=5)
  parser.add_argument("--steps", type=int, default=6)
  parser.add_argument("--devices", nargs="*", default=None, help="teeny devices (default: every one that opens here)")
  args = parser.parse_args()
  sys.path.insert(0, ROOT)
  from teeny import Device
  from bench_core import machine_header  # (bench/ is on the path when run as a script)
  devices = args.devices if args.devices is not None else Device.available()
  print(machine_header("bench_micrograd"))
  print(f"# MLP 2-{args.hidden}-{args.hidden}-1, {args.points} points, {args.steps} steps")
  reference = run("micrograd", "-", args.hidden, args.points, args.steps)
  rows = [("micrograd (plain Python)", reference)]
  for d in devices: rows.append((f"teeny {d}", run("teeny", d, args.hidden, args.points, args.steps)))
  torch_row = run("torch", "-", args.hidden, args.points, args.steps)
  if torch_row is not None: rows.append(("torch 0-d tensors", torch_row))
  print("\n| implementation | step 1 s | later steps s | later / micrograd's | losses match micrograd |")
  print("|---|---|---|---|---|")
  for name, row in rows:
    match = np.allclose(row["losses"], reference["losses"], rtol=1e-4, atol=1e-4)
    print(f"| {name} | {row['first']:.3f} | {row['later']:.4f} | {row['later'] / reference['later']:.2f}x | {'yes' if match else 'NO'} |")


if __name__ == "__main__":
  main()
