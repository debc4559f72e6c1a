"""Long elementwise chains: `y = y * 1.0001 + i * 1e-7` for i in range(ops // 2) over 1,024 float32s, with a new
number in every op, realized (forward) and then differentiated (backward of y.sum() with respect to the input), on
every teeny device, beside numpy running the same forward loop. Each chain is built and realized once, in a fresh
compile cache (the time includes compiling): teeny cuts a chain into kernels of a bounded size
(Tuning.max_fused_depth, max_kernel_values), whose numbers are kernel arguments, so most of them are one program.

  python bench/bench_chain.py                         # 10,000 and 100,000 ops on every device
  python bench/bench_chain.py --ops 10000 --devices LLVM

Every forward result is checked against numpy (bit-exact: the same float32 operations in the same order).
"""
from __future__ import annotations
import argparse, os, subprocess, sys, tempfile, time
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

CHILD = """
import sys, time, numpy as np
from teeny import Tensor, GlobalCounters
device, ops = sys.argv[1], int(sys.argv[2])
xn = np.random.default_rng(0).random(1024).astype(np.float32)
x = Tensor(xn, device=device, requires_grad=True)
start = time.perf_counter()
y = x
for i in range(ops // 2): y = y * 1.0001 + i * 1e-7
out = y.numpy()
forward = time.perf_counter() - start
kernels = GlobalCounters.kernel_count
y.sum().backward()
x.grad.numpy()
backward = time.perf_counter() - start - forward
ref = xn.copy()
for i in range(ops // 2): ref = ref * np.float32(1.0001) + np.float32(i * 1e-7)
if not np.array_equal(out, ref): sys.exit(f"wrong result on {device}: max error {np.abs(out - ref).max()}")
print(forward, backward, kernels)
"""


def teeny_chain(device: str, ops: int) -> tuple[float, float, int]:
  """(forward s, backward s, forward kernels), in a child process with a fresh compile cache."""
  with tempfile.TemporaryDirectory() as cache:
    env = dict(os.environ, TEENY_CACHE_DIR=cache, POCL_CACHE_DIR=os.path.join(cache, "pocl"), PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", CHILD, device, str(ops)], env=env, capture_output=True, text=True)
  if done.returncode != 0: raise SystemExit(f"{device}, {ops} ops: {done.stderr.strip()[-2000:]}")
  forward, backward, kernels = done.stdout.split()
  return float(forward), float(backward), int(kernels)


def numpy_chain(ops: int) -> float:
  y = np.random.default_rng(0).random(1024).astype(np.float32)
  start = time.perf_counter()
  for i in range(ops // 2): y = y * np.float32(1.0001) + np.float32(i * 1e-7)
  return time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--ops", type=int, nargs="*", default=[10_000, 100_000])
  parser.add_argument("--devices", nargs="*", default=None, help="teeny devices (default: every one that opens here)")
  args = parser.parse_args()
  sys.path.insert(0, ROOT)
  from teeny import Device
  from bench_core import machine_header  # (bench/ is on the path when run as a script)
  devices = args.devices if args.devices is not None else Device.available()
  print(machine_header("bench_chain"))
  print("\n| ops | device | teeny forward s | kernels | teeny backward s | numpy forward s |")
  print("|---|---|---|---|---|---|")
  for ops in args.ops:
    numpy_s = numpy_chain(ops)
    for d in devices:
      forward, backward, kernels = teeny_chain(d, ops)
      print(f"| {ops:,} | {d} | {forward:.2f} | {kernels} | {backward:.2f} | {numpy_s:.3f} |")


if __name__ == "__main__":
  main()
