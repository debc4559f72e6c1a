"""Overhead benchmark: the fixed costs around kernels, on every teeny device, beside numpy (and torch and
tinygrad when they are importable), in one run.

  python bench/bench_overhead.py                       # every device that opens here
  python bench/bench_overhead.py --repeats 5 --devices LLVM --workloads tiny copyout

Workloads:
  tiny      `x = (x + 1).realize()` on 16 float32s, 2,000 times in a row: realized ops per second. Each op builds
            a graph, finds its schedule in the cache, allocates the result and launches one kernel. numpy and
            torch run `x = x + 1`; tinygrad `x = (x + 1).realize()`.
  mlp       one SGD step of an MLP 784-512-512-10 (ReLU) at batch 256: forward, log-softmax cross-entropy,
            backward, in-place parameter updates, realized together; eager and under TinyJit. numpy runs the
            same step with hand-written backprop in float32; torch eager autograd with in-place updates under
            no_grad. Time per step in ms. The first step's loss is checked against numpy before timing.
  scalars   `(x * i + 1).sum(1).numpy()` on a 16x64 float32 tensor, 1,000 times: iterations per second with i
            fixed and with i new on every iteration (never seen before: a learning rate that decays, a timestep).
            A float32 number is a kernel argument, so the changing loop reuses the fixed loop's schedule and
            kernel; the row "changing / fixed" is the ratio of the two, and the process's memory growth over the
            changing loop is printed below the table. numpy runs the same loop.
  copyout   `.numpy()` of a realized 64 MiB float32 tensor: GB/s of data copied to a new host array. numpy's
            column is `a.copy()` of an array of the same size (the same work: a copy into fresh memory);
            torch's `.numpy()` is a zero-copy view, so torch is not shown for this row.

Timing: warm-ups first (compiles, captures, primes the allocator), then the median of the repeats, each ended
with the device's synchronize(). ratio = how many times faster teeny is than the other (above 1 is faster).
The machine is shared and noisy: compare ratios within one run, never absolute numbers across runs.
"""
from __future__ import annotations
import os, sys
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout too
from teeny import Tensor, Device, TinyJit  # noqa: E402
from bench_core import WrongResult, bench_arguments, bench_devices, machine_header, median_ms, optional  # noqa: E402  (bench/ is on the path when run as a script)

TINY_OPS = 2000
MLP_SIZES = (784, 512, 512, 10)
COPY_BYTES = 64 << 20


def median_s(fn, repeats: int) -> float: return median_ms(fn, repeats) / 1e3


# ---- a changing number (iterations/s) ----

SCALAR_LOOPS = 1000
_next_number = [0]  # the changing loop's numbers, never repeated across runs


def scalars_teeny(device: str, repeats: int, changing: bool) -> float:
  xn = np.random.default_rng(0).standard_normal((16, 64)).astype(np.float32)
  x = Tensor(xn, device=device).realize()
  def run():
    for _ in range(SCALAR_LOOPS):
      i = _next_number[0] + 2 if changing else 3
      _next_number[0] += 1
      (x * i + 1).sum(1).numpy()
  got = (x * 7 + 1).sum(1).numpy()
  if not np.allclose(got, (xn * 7 + 1).sum(1), rtol=1e-4, atol=1e-4): raise WrongResult(f"scalars on {device} gave a wrong result")
  run()
  return SCALAR_LOOPS / median_s(run, repeats)


def scalars_numpy(repeats: int) -> float:
  x = np.random.default_rng(0).standard_normal((16, 64)).astype(np.float32)
  def run():
    for i in range(SCALAR_LOOPS): (x * np.float32(i) + 1).sum(1)
  return SCALAR_LOOPS / median_s(run, repeats)


def scalars_torch(repeats: int) -> float | None:
  """torch eager runs the same loop; a Python number is an argument there, so changing it costs nothing."""
  torch = optional("torch")
  if torch is None: return None
  x = torch.from_numpy(np.random.default_rng(0).standard_normal((16, 64)).astype(np.float32))
  def run():
    for i in range(SCALAR_LOOPS): (x * i + 1).sum(1).numpy()
  return SCALAR_LOOPS / median_s(run, repeats)


def rss_mib() -> float:
  """The process's resident memory (Linux), MiB."""
  with open("/proc/self/statm") as f: return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# ---- tiny realized ops (ops/s) ----

def tiny_teeny(device: str, repeats: int) -> float:
  x = Tensor(np.zeros(16, np.float32), device=device).realize()
  runs = 0  # counted, not assumed: a time budget may stop the repeats early
  def run():
    nonlocal x, runs
    for _ in range(TINY_OPS): x = (x + 1).realize()
    Device[device].synchronize()
    runs += 1
  run()
  seconds = median_s(run, repeats)
  if x.numpy()[0] != TINY_OPS * runs: raise WrongResult(f"tiny ops on {device} gave a wrong result")
  return TINY_OPS / seconds


def tiny_numpy(repeats: int) -> float:
  def run():
    x = np.zeros(16, np.float32)
    for _ in range(TINY_OPS): x = x + 1
  return TINY_OPS / median_s(run, repeats)


def tiny_torch(repeats: int) -> float | None:
  torch = optional("torch")
  if torch is None: return None
  def run():
    x = torch.zeros(16)
    for _ in range(TINY_OPS): x = x + 1
  return TINY_OPS / median_s(run, repeats)


def tiny_tinygrad(repeats: int) -> float | None:
  tinygrad = optional("tinygrad")
  if tinygrad is None: return None
  x = tinygrad.Tensor.zeros(16).contiguous().realize()
  def run():
    nonlocal x
    for _ in range(TINY_OPS // 10): x = (x + 1).realize()
    tinygrad.Device[tinygrad.Device.DEFAULT].synchronize()
  run()
  return TINY_OPS // 10 / median_s(run, repeats)


# ---- MLP training step (ms) ----

def mlp_data(batch: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  weights = []
  for fan_in, fan_out in zip(MLP_SIZES[:-1], MLP_SIZES[1:]):
    weights.append((rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32))
    weights.append(np.zeros(fan_out, np.float32))
  x = rng.standard_normal((batch, MLP_SIZES[0])).astype(np.float32)
  y = np.eye(MLP_SIZES[-1], dtype=np.float32)[rng.integers(0, MLP_SIZES[-1], batch)]
  return weights, x, y


def numpy_step(ws: list[np.ndarray], x: np.ndarray, y: np.ndarray, lr: float = 0.01) -> float:
  """One SGD step in place, float32, hand-written backprop; returns the loss."""
  acts, pre = [x], []
  for i in range(0, len(ws), 2):
    z = acts[-1] @ ws[i] + ws[i + 1]
    pre.append(z)
    acts.append(np.maximum(z, 0) if i + 2 < len(ws) else z)
  shifted = acts[-1] - acts[-1].max(1, keepdims=True)
  logp = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
  loss = float(-(logp * y).sum(1).mean())
  g = (np.exp(logp) - y) / x.shape[0]
  for layer in reversed(range(len(ws) // 2)):
    gw, gb = acts[layer].T @ g, g.sum(0)
    if layer: g = (g @ ws[2 * layer].T) * (pre[layer - 1] > 0)
    ws[2 * layer] -= lr * gw
    ws[2 * layer + 1] -= lr * gb
  return loss


def teeny_step_fn(params: list[Tensor], lr: float = 0.01):
  def step(x: Tensor, y: Tensor) -> Tensor:
    for p in params: p.grad = None
    h = x
    for i in range(0, len(params), 2):
      h = h @ params[i] + params[i + 1]
      if i + 2 < len(params): h = h.relu()
    loss = -(h.log_softmax(1) * y).sum(1).mean()
    loss.backward()
    for p in params: p.assign(p - lr * p.grad)
    Tensor.realize_all(loss, *params)
    return loss
  return step


def mlp_teeny(device: str, batch: int, repeats: int, jit: bool) -> float:
  weights, x, y = mlp_data(batch)
  want = numpy_step([w.copy() for w in weights], x, y)
  params = [Tensor(w, device=device, requires_grad=True) for w in weights]
  xt, yt = Tensor(x, device=device), Tensor(y, device=device)
  step = teeny_step_fn(params)
  if jit: step = TinyJit(step)
  loss = step(xt, yt).item()
  if not np.isclose(loss, want, rtol=1e-3): raise WrongResult(f"MLP step on {device}: loss {loss} but numpy says {want}")
  for _ in range(2): step(xt, yt)  # jit: the capture, and a first replay
  def run():
    step(xt, yt)
    Device[device].synchronize()
  return median_s(run, repeats) * 1e3


def mlp_numpy(batch: int, repeats: int) -> float:
  weights, x, y = mlp_data(batch)
  numpy_step(weights, x, y)
  return median_s(lambda: numpy_step(weights, x, y), repeats) * 1e3


def mlp_torch(batch: int, repeats: int) -> float | None:
  torch = optional("torch")
  if torch is None: return None
  weights, x, y = mlp_data(batch)
  params = [torch.tensor(w, requires_grad=True) for w in weights]
  xt, yt = torch.from_numpy(x), torch.from_numpy(y)
  def step():
    for p in params: p.grad = None
    h = xt
    for i in range(0, len(params), 2):
      h = h @ params[i] + params[i + 1]
      if i + 2 < len(params): h = h.relu()
    loss = -(h.log_softmax(1) * yt).sum(1).mean()
    loss.backward()
    with torch.no_grad():
      for p in params: p -= 0.01 * p.grad
  step()
  return median_s(step, repeats) * 1e3


# ---- copy-out (GB/s) ----

def copyout_teeny(device: str, repeats: int) -> float:
  data = np.random.default_rng(0).random(COPY_BYTES // 4, dtype=np.float32)
  t = Tensor(data, device=device).realize()
  if not np.array_equal(t.numpy(), data): raise WrongResult(f"copy-out on {device} returned wrong data")
  return COPY_BYTES / median_s(t.numpy, repeats) / 1e9


def copyout_numpy(repeats: int) -> float:
  data = np.random.default_rng(0).random(COPY_BYTES // 4, dtype=np.float32)
  return COPY_BYTES / median_s(data.copy, repeats) / 1e9


def copyout_tinygrad(repeats: int) -> float | None:
  tinygrad = optional("tinygrad")
  if tinygrad is None: return None
  t = tinygrad.Tensor(np.random.default_rng(0).random(COPY_BYTES // 4, dtype=np.float32)).realize()
  return COPY_BYTES / median_s(t.numpy, repeats) / 1e9


# ---- the table ----

def safe(fn, *args) -> float | None:
  """An optional library's measurement, or None when that library fails here (tinygrad finding no usable device)."""
  try: return fn(*args)
  except Exception as e:
    print(f"# {fn.__name__} failed: {type(e).__name__}: {e}")
    return None


def ratio(teeny: float, other: float | None, higher_is_better: bool) -> str:
  if other is None: return "-"
  return f"{(teeny / other if higher_is_better else other / teeny):.2f}x"


def main():
  parser = bench_arguments(__doc__, ["tiny", "scalars", "mlp", "copyout"], repeats=7)
  parser.add_argument("--mlp-batch", type=int, default=256)
  args = parser.parse_args()
  devices = bench_devices(args)
  print(machine_header("bench_overhead"))
  for d in devices: print(f"#   {d}: {Device[d]!r}")
  torch, tinygrad = optional("torch"), optional("tinygrad")
  print(f"# torch: {getattr(torch, '__version__', 'not installed')}, tinygrad: {getattr(tinygrad, '__version__', 'not installed') if tinygrad else 'not installed'}")
  print(f"# median of {args.repeats}; ratio = how many times faster teeny is (above 1: teeny is faster)")

  rows = []  # (workload, unit, device, teeny, numpy, torch, tinygrad, higher_is_better)
  r = args.repeats
  if "tiny" in args.workloads:
    others = (tiny_numpy(r), safe(tiny_torch, r), safe(tiny_tinygrad, r))
    for d in devices: rows.append(("tiny x=x+1 (16 floats)", "ops/s", d, tiny_teeny(d, r), *others, True))
  notes = []
  if "scalars" in args.workloads:
    others = (scalars_numpy(r), safe(scalars_torch, r), None)
    for d in devices:
      fixed = scalars_teeny(d, r, changing=False)
      before = rss_mib()
      changing = scalars_teeny(d, r, changing=True)
      notes.append(f"# {d}: memory over the changing loops ({SCALAR_LOOPS * (r + 1)} new numbers): {rss_mib() - before:+.1f} MiB")
      rows.append(("(x * i + 1).sum(1).numpy(), i fixed", "it/s", d, fixed, *others, True))
      rows.append(("same, i new every time", "it/s", d, changing, *others, True))
      rows.append(("changing / fixed", "ratio", d, changing / fixed, None, None, None, True))
  if "mlp" in args.workloads:
    b = args.mlp_batch
    others = (mlp_numpy(b, r), safe(mlp_torch, b, r), None)
    for d in devices:
      rows.append((f"MLP {'-'.join(map(str, MLP_SIZES))} step, batch {b}", "ms", d, mlp_teeny(d, b, r, jit=False), *others, False))
      rows.append(("same, TinyJit", "ms", d, mlp_teeny(d, b, r, jit=True), *others, False))
  if "copyout" in args.workloads:
    others = (copyout_numpy(r), None, safe(copyout_tinygrad, r))
    for d in devices: rows.append(("copy-out .numpy() of 64 MiB", "GB/s", d, copyout_teeny(d, r), *others, True))

  header = ["workload", "unit", "device", "teeny", "numpy", "torch", "tinygrad", "vs numpy", "vs torch", "vs tinygrad"]
  print("\n| " + " | ".join(header) + " |")
  print("|" + "|".join("---" for _ in header) + "|")
  fmt = lambda v: "-" if v is None else (f"{v:,.0f}" if v >= 1000 else f"{v:.2f}")
  for name, unit, d, teeny, np_v, torch_v, tg_v, higher in rows:
    cells = [name, unit, d, fmt(teeny), fmt(np_v), fmt(torch_v), fmt(tg_v),
             ratio(teeny, np_v, higher), ratio(teeny, torch_v, higher), ratio(teeny, tg_v, higher)]
    print("| " + " | ".join(cells) + " |")
  for note in notes: print(note)


if __name__ == "__main__":
  try: main()
  except WrongResult as e: raise SystemExit(str(e))
