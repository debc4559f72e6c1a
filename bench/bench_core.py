"""Core benchmark: memory-bound elementwise and reduce kernels on every teeny device, beside numpy, in one run.

  python bench/bench_core.py                  # every device that opens here, 10 repeats
  python bench/bench_core.py --repeats 20 --devices LLVM

Workloads (float32; bytes are what an ideal kernel must move, the same count for teeny and numpy):
  chain6    ((a*b + c).relu()*a - b).exp2() on 3 inputs of 2^24: 6 elementwise ops, one fused kernel.
            bytes = 3 inputs read + 1 output written
  sum       x.sum() over 2^24 elements.                                  bytes = input read
  rowsum1k  x.sum(1) of a 1024x1024 matrix.                              bytes = input read + output written
  rowsum4k  x.sum(1) of a 4096x4096 matrix.                              bytes = input read + output written

How it is timed. Inputs are made once per device and reused. Each workload is warmed up first (the kernel is
compiled and cached), then every repeat builds a FRESH lazy expression over the same input buffers (a realized
tensor never recomputes) and times `.realize()` followed by `Device[dev].synchronize()`, so the clock stops when
the kernel has finished. That is the whole cost a user pays for a result that stays on the device: scheduling,
the kernel-cache lookup, the launch and the kernel itself. The copy back to the host (`.numpy()`) is NOT timed:
numpy's results already live in host memory, so timing teeny's copy-out would charge teeny for a transfer numpy
never makes. numpy runs its natural code (fresh output arrays and temporaries, one core). Reported times are the
median of the repeats; ratio = numpy ms / teeny ms, so above 1 means teeny is faster.

Every workload's result is checked against numpy (allclose) before it is timed, so a wrong kernel's speed is never
reported. torch and tinygrad columns appear when they are importable (they are not dependencies of teeny).
The machine is shared and noisy: compare ratios within one run, never absolute times across runs.
"""
from __future__ import annotations
import argparse, datetime, os, platform, statistics, sys, time
# torch's OpenMP threads spin for a while after each of its ops, taking the cores from whatever is timed next
# (bench_overhead imports this module before torch: its MLP row is timed after torch's)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout too
from teeny import Tensor, Device, GlobalCounters  # noqa: E402

N = 1 << 24


def make_inputs(rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
  f32 = np.float32
  return {
    "chain6": [rng.standard_normal(N, dtype=f32) for _ in range(3)],
    "sum": [rng.random(N, dtype=f32)],
    "rowsum1k": [rng.random((1024, 1024), dtype=f32)],
    "rowsum4k": [rng.random((4096, 4096), dtype=f32)],
  }


# each workload: the expression (written once, for any array library with these methods), its numpy twin,
# the bytes an ideal kernel moves, and the tolerance of the correctness check
def chain6_np(a, b, c): return np.exp2(np.maximum(a * b + c, 0) * a - b)

WORKLOADS = {
  "chain6": (lambda a, b, c: ((a * b + c).relu() * a - b).exp2(), chain6_np, lambda ins: 4 * ins[0].nbytes, 1e-4),
  # a float32 sum of 2^24 positives accumulated in long runs (not pairwise like numpy) is good to about 1e-4
  "sum": (lambda x: x.sum(), lambda x: x.sum(), lambda ins: ins[0].nbytes, 1e-3),
  "rowsum1k": (lambda x: x.sum(1), lambda x: x.sum(1), lambda ins: ins[0].nbytes + ins[0].shape[0] * 4, 1e-4),
  "rowsum4k": (lambda x: x.sum(1), lambda x: x.sum(1), lambda ins: ins[0].nbytes + ins[0].shape[0] * 4, 1e-4),
}


# seconds one measurement may spend repeating (None: no cap). bench_all sets it, so a kernel that takes many seconds
# gets fewer repeats instead of holding the run for minutes.
BUDGET_S: float | None = None


# OpenBLAS (numpy) and OpenMP (torch) worker threads spin for a while after their last call, taking the cores from
# whatever is timed next: ~3 ms of a 6 ms training step here. Each measurement starts after they have gone idle.
SETTLE_S = 0.5
# ...and then makes this many untimed calls: after the pause, the measured library's own sleeping threads and the
# VM's idle virtual CPU take a few calls to come back (a sum of 2^24 took 10, 3, 2.5, 1.8 ms, then 1.6 ms steady).
# Every library gets the same, so the medians compare steady states, which is how back-to-back work runs.
WAKE_CALLS = 2


def median_ms(fn, repeats: int) -> float:
  time.sleep(SETTLE_S)
  for _ in range(WAKE_CALLS): fn()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
    if BUDGET_S is not None and sum(times) > BUDGET_S: break
  return statistics.median(times) * 1e3


class WrongResult(Exception): pass


def check(name: str, who: str, got: np.ndarray, want: np.ndarray, rtol: float):
  # `want` is computed in float64, so the check measures this result's own error. The absolute slack shrinks with
  # the data, so a result whose values are all small (a softmax row of 4096 is ~2e-4 each) is still held to rtol.
  atol = 1e-5 * min(1.0, float(np.mean(np.abs(want))))
  if not np.allclose(got, want, rtol=rtol, atol=atol):
    err = np.max(np.abs(got.astype(np.float64) - want) / np.maximum(np.abs(want), 1e-5))
    raise WrongResult(f"{name} on {who}: result does not match numpy (max relative error {err:.3g}); not timed")


def bench_teeny(device: str, name: str, arrays: list[np.ndarray], want: np.ndarray, repeats: int) -> tuple[float, int]:
  expr, _, _, rtol = WORKLOADS[name]
  dev = Device[device]
  inputs = [Tensor(x, device=device).realize() for x in arrays]
  dev.synchronize()
  GlobalCounters.reset()
  out = expr(*inputs).realize()  # warm-up: compiles the kernel
  kernels = GlobalCounters.kernel_count
  check(name, device, out.numpy(), want, rtol)

  def run():
    expr(*inputs).realize()
    dev.synchronize()
  del out
  run()  # a second warm-up, so the allocator has the output's memory at hand like every later repeat
  return median_ms(run, repeats), kernels


def bench_numpy(name: str, arrays: list[np.ndarray], repeats: int) -> float:
  fn = WORKLOADS[name][1]
  fn(*arrays)
  return median_ms(lambda: fn(*arrays), repeats)


def bench_torch(name: str, arrays: list[np.ndarray], want: np.ndarray, repeats: int) -> float | None:
  try: import torch
  except ImportError: return None
  expr, _, _, rtol = WORKLOADS[name]
  inputs = [torch.from_numpy(x) for x in arrays]
  check(name, "torch", expr(*inputs).numpy(), want, rtol)
  return median_ms(lambda: expr(*inputs), repeats)


def bench_tinygrad(name: str, arrays: list[np.ndarray], want: np.ndarray, repeats: int) -> float | None:
  try: from tinygrad import Tensor as TinyTensor, Device as TinyDevice
  except ImportError: return None
  expr, _, _, rtol = WORKLOADS[name]
  inputs = [TinyTensor(x).realize() for x in arrays]
  check(name, f"tinygrad {TinyDevice.DEFAULT}", expr(*inputs).numpy(), want, rtol)
  def run():
    expr(*inputs).realize()
    TinyDevice[TinyDevice.DEFAULT].synchronize()
  run()
  return median_ms(run, repeats)


def cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration): return platform.processor() or platform.machine()


def machine_header(bench: str) -> str:
  """The first line every bench prints: which bench, the date, the CPU, its cores, Python's and numpy's versions."""
  return (f"# teeny {bench}, {datetime.date.today().isoformat()}, {cpu_name()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, numpy {np.__version__}")


def optional(name: str):
  """The module, or None when it is not installed (torch and tinygrad are never dependencies)."""
  try: return __import__(name)
  except ImportError: return None


def bench_arguments(doc: str, workloads: list[str], repeats: int) -> argparse.ArgumentParser:
  """The command line every bench script takes: --repeats, --devices, --workloads (all of them by default)."""
  parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--repeats", type=int, default=repeats, help="timed runs per measurement; the median is reported")
  parser.add_argument("--devices", nargs="*", default=None, help="teeny devices (default: every one that opens here)")
  parser.add_argument("--workloads", nargs="*", default=list(workloads), choices=list(workloads))
  return parser


def bench_devices(args) -> list[str]:
  """The teeny devices asked for, or every one that opens here; exits when there is none."""
  devices = args.devices if args.devices is not None else Device.available()
  if not devices: raise SystemExit("no teeny device opens on this machine")
  return devices


def main():
  args = bench_arguments(__doc__, list(WORKLOADS), repeats=10).parse_args()
  devices = bench_devices(args)

  print(machine_header("bench_core"))
  for d in devices: print(f"#   {d}: {Device[d]!r}")
  print(f"# median of {args.repeats}; teeny timed as realize() + synchronize() (no copy-out, see the docstring); "
        "ratio = numpy ms / teeny ms")

  arrays = make_inputs(np.random.default_rng(0))
  rows, failures = [], []
  for name in args.workloads:
    ins = arrays[name]
    want = np.asarray(WORKLOADS[name][1](*[x.astype(np.float64) for x in ins]))
    nbytes = WORKLOADS[name][2](ins)
    np_ms = bench_numpy(name, ins, args.repeats)
    extra = {}
    for lib, fn in (("torch", bench_torch), ("tinygrad", bench_tinygrad)):
      try: ms = fn(name, ins, want, args.repeats)
      except WrongResult as e: print(f"# {e}"); ms = None
      except Exception as e:  # an optional library's own trouble (tinygrad finding no usable device) must not end the run
        print(f"# {lib} failed on {name}: {type(e).__name__}: {e}"); ms = None
      if ms is not None: extra[lib] = ms
    for dev in devices:
      try: ms, kernels = bench_teeny(dev, name, ins, want, args.repeats)
      except WrongResult as e:
        print(f"# {e}")
        failures.append(str(e))
        rows.append((name, dev, "-", None, None, np_ms, nbytes / np_ms / 1e6, None, extra))
        continue
      rows.append((name, dev, kernels, ms, nbytes / ms / 1e6, np_ms, nbytes / np_ms / 1e6, np_ms / ms, extra))

  extra_cols = sorted({k for r in rows for k in r[8]})
  header = ["workload", "device", "kernels", "ms", "GB/s", "numpy ms", "numpy GB/s", "teeny/numpy"]
  header += [f"{lib} {unit}" for lib in extra_cols for unit in ("ms", "GB/s")]
  print("\n| " + " | ".join(header) + " |")
  print("|" + "|".join("---" for _ in header) + "|")
  for name, dev, kernels, ms, gbs, np_ms, np_gbs, ratio, extra in rows:
    nbytes = WORKLOADS[name][2](arrays[name])
    timed = [f"{ms:.2f}", f"{gbs:.1f}"] if ms is not None else ["WRONG", "-"]
    cells = [name, dev, str(kernels), *timed, f"{np_ms:.2f}", f"{np_gbs:.1f}", f"{ratio:.2f}x" if ratio else "-"]
    for lib in extra_cols:
      cells += [f"{extra[lib]:.2f}", f"{nbytes / extra[lib] / 1e6:.1f}"] if lib in extra else ["-", "-"]
    print("| " + " | ".join(cells) + " |")
  if failures: raise SystemExit(f"{len(failures)} result(s) did not match numpy; see the lines starting with '#' above")


if __name__ == "__main__":
  main()
