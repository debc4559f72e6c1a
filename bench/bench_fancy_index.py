"""Fancy indexing cost: x[i, j] with k index pairs on an (n, m) float32 tensor, and x[i] (k rows).

  python bench/bench_fancy_index.py                      # every device, n = m = 4096, k = 1000
  python bench/bench_fancy_index.py --devices LLVM --n 2048 --k 100

For each device it prints the kernels the selection ran (name, FLOPs the ProgramSpec counts, loop trip counts)
and the time of a realize over realized inputs, median of the repeats after a warm-up (compile) run. The result
is checked against numpy before it is timed. A selection by one-hot compare-and-sum costs k*n*m FLOPs; a gather
(a load at a computed address) costs a few per selected element.
"""
from __future__ import annotations
import argparse, os, statistics, sys, time
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout too
from teeny import Tensor, Device, GlobalCounters  # noqa: E402


def timed(fn, device: str, repeats: int) -> tuple[float, int, int]:
  """Median seconds of fn().realize() (synchronized), and the kernels and FLOPs of one run."""
  fn().realize(); Device[device].synchronize()
  times = []
  for _ in range(repeats):
    GlobalCounters.reset()
    start = time.perf_counter()
    fn().realize(); Device[device].synchronize()
    times.append(time.perf_counter() - start)
  return statistics.median(times), GlobalCounters.kernel_count, GlobalCounters.global_ops


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--devices", nargs="*", default=Device.available())
  parser.add_argument("--n", type=int, default=4096)
  parser.add_argument("--m", type=int, default=4096)
  parser.add_argument("--k", type=int, default=1000)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  x_np = rng.standard_normal((args.n, args.m), dtype=np.float32)
  i_np = rng.integers(0, args.n, args.k).astype(np.int32)
  j_np = rng.integers(0, args.m, args.k).astype(np.int32)
  for device in args.devices:
    x = Tensor(x_np, device=device).realize()
    i, j = Tensor(i_np, device=device).realize(), Tensor(j_np, device=device).realize()
    for name, fn, expected in (("x[i, j]", lambda: x[i, j], x_np[i_np, j_np]), ("x[i]", lambda: x[i], x_np[i_np])):
      np.testing.assert_array_equal(fn().numpy(), expected)
      seconds, kernels, flops = timed(fn, device, args.repeats)
      print(f"{device:<5} {name:<8} n={args.n} m={args.m} k={args.k}: {seconds * 1e3:10.2f} ms, {kernels} kernel(s), "
            f"{flops:.3e} FLOPs")


if __name__ == "__main__":
  main()
