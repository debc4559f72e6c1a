"""What tracing costs: an MLP training step (teeny.nn Linear layers, Adam) with tracing off and on, eager and under
TinyJit, in one run.

  python bench/bench_trace.py                                  # 784-512-512-10 at batch 256, default device
  python bench/bench_trace.py --sizes 64 64 10 --batch 16      # small kernels: tracing's worst case
  python bench/bench_trace.py --repeats 7 --steps 50 --device LLVM

Each measurement is `--steps` training steps in a row (after warm-ups that compile, capture and fill the caches),
timed to the device's synchronize(); per-step ms is the median over `--repeats` such runs, off and on alternating
so drift on a shared machine hits both alike. "on" runs the steps inside a trace (tracing.start before, stop after)
and times only the steps; writing the JSON file is timed apart and reported with its size. ratio = on / off: what
a traced step costs relative to an untraced one (tracing waits for every kernel and records every launch,
allocation and slice). With tracing off every hook is one attribute read: compare the "off" rows with
bench_overhead's MLP rows on a commit before tracing to see that it costs nothing measurable.
The machine is shared and noisy: compare the ratios within one run, never absolute times across runs.
"""
from __future__ import annotations
import argparse, os, statistics, sys, tempfile, time
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout too
from teeny import Tensor, Device, TinyJit, tracing  # noqa: E402
from teeny.nn import Linear  # noqa: E402
from teeny.nn.optim import Adam  # noqa: E402
from teeny.nn.state import get_parameters  # noqa: E402
from bench_core import machine_header  # noqa: E402  (bench/ is on the path when run as a script)


def make_step(sizes: list[int], device: str):
  """A training step of an MLP with these layer sizes (ReLU between layers, log-softmax cross-entropy, Adam)."""
  Device.DEFAULT = device  # the layers' weights go there
  layers = [Linear(a, b) for a, b in zip(sizes, sizes[1:])]
  opt = Adam(get_parameters(layers), lr=1e-3)

  def step(x: Tensor, y: Tensor) -> Tensor:
    with Tensor.train():
      opt.zero_grad()
      h = x
      for i, layer in enumerate(layers):
        h = layer(h)
        if i + 1 < len(layers): h = h.relu()
      loss = -(h.log_softmax(1) * y).sum(1).mean()
      loss.backward()
      opt.step()
      return loss.realize()
  return step


def make_batch(sizes: list[int], batch: int, device: str) -> tuple[Tensor, Tensor]:
  rng = np.random.default_rng(0)
  x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
  y = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], batch)]
  return Tensor(x, device=device).realize(), Tensor(y, device=device).realize()


def run_steps(step, x: Tensor, y: Tensor, steps: int, device: str) -> float:
  """Seconds per step over `steps` steps."""
  start = time.perf_counter()
  for _ in range(steps): step(x, y)
  Device[device].synchronize()
  return (time.perf_counter() - start) / steps


def measure(step, x: Tensor, y: Tensor, steps: int, repeats: int, device: str, trace_path: str) -> dict:
  """Per-step ms off and on (medians), and the trace files' write time and size (of the last one)."""
  for traced in (False, True):  # warm-ups: compiles, the jit's capture, the allocator's cache; traced once too
    if traced: tracing.start(trace_path)
    run_steps(step, x, y, 3, device)
    if traced: tracing.stop()
  off, on, writes = [], [], []
  for _ in range(repeats):
    off.append(run_steps(step, x, y, steps, device))
    tracing.start(trace_path)
    on.append(run_steps(step, x, y, steps, device))
    events = len(tracing._recorder.events)
    start = time.perf_counter()
    tracing.stop()
    writes.append(time.perf_counter() - start)
  return {"off": statistics.median(off) * 1e3, "on": statistics.median(on) * 1e3, "events": events,
          "write": statistics.median(writes) * 1e3, "MB": os.path.getsize(trace_path) / 1e6}


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--sizes", type=int, nargs="+", default=[784, 512, 512, 10])
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--steps", type=int, default=40, help="training steps per timed run")
  parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement; the median is reported")
  parser.add_argument("--device", default=None)
  args = parser.parse_args()
  device = Device.canonicalize(args.device) if args.device else Device.DEFAULT
  print(machine_header("bench_trace"))
  print(f"#   {device}: {Device[device]!r}")
  print(f"# MLP {'-'.join(map(str, args.sizes))}, batch {args.batch}, Adam; {args.steps} steps per run, median of "
        f"{args.repeats} runs; ratio = traced / untraced step time\n")
  print("| step | device | off ms/step | on ms/step | ratio | events per run | write ms | file MB |")
  print("|---|---|---|---|---|---|---|---|")
  with tempfile.TemporaryDirectory() as scratch:
    for jitted in (False, True):
      step = make_step(args.sizes, device)
      if jitted: step = TinyJit(step)
      x, y = make_batch(args.sizes, args.batch, device)
      r = measure(step, x, y, args.steps, args.repeats, device, os.path.join(scratch, "trace.json"))
      print(f"| {'TinyJit' if jitted else 'eager'} | {device} | {r['off']:.3f} | {r['on']:.3f} | {r['on'] / r['off']:.2f}x "
            f"| {r['events']:,} | {r['write']:.1f} | {r['MB']:.1f} |", flush=True)


if __name__ == "__main__":
  main()
