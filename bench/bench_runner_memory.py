"""Process memory per compiled kernel, and what bounding the kernel cache by bytes (RUNNER_CACHE_BYTES) does to it.

  python bench/bench_runner_memory.py                          # every device that opens here, 300 and 2,000 kernels
  python bench/bench_runner_memory.py --devices CL --kernels 500 --sample 100

Every figure comes from a fresh child process with its own empty compile caches (teeny's and PoCL's) in a
temporary directory, running `(x * c + 1).sum()` for distinct constants c (each one kernel of its own):
  per kernel   RSS growth per distinct kernel: "cold" compiles each one in the process, "warm" (a second process)
               loads each from the on-disk cache; "freed" is what dropping every runner gives back (after
               gc and malloc_trim), i.e. what the loaded programs themselves held. These are the figures the
               backends' Program.memory_estimate is set from.
  N kernels    RSS after N distinct kernels, warm and cold, with the kernel cache bounded only by count (as before)
               and with the default byte bound; and the bound's own count of bytes held.

RSS is read from /proc/self/statm (Linux only). The machine is shared and noisy: compare within one run.
"""
from __future__ import annotations
import argparse, ctypes, gc, json, os, subprocess, sys, tempfile, time

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _rss() -> int:
  gc.collect()
  ctypes.CDLL(None).malloc_trim(0)  # give freed heap back, so RSS shows what is really held
  with open("/proc/self/statm") as f: return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(device: str, kernels: int, offset: int):
  """Run in a child: build `kernels` distinct kernels, print one JSON line of measurements."""
  sys.path.insert(0, REPO)
  import numpy as np
  from teeny import Tensor
  from teeny.engine import runner
  x = Tensor(np.arange(64, dtype=np.float32), device=device)
  (x * 0.5 + 1).sum().item()  # open the device, build the pool, compile once
  start = _rss()
  t0 = time.perf_counter()
  for k in range(kernels): (x * (offset + k + 0.25) + 1).sum().item()
  seconds = time.perf_counter() - t0
  after = _rss()
  cache = runner._runner_cache
  held, held_bytes = len(cache), cache.total_cost
  libs = [len(r.program.lib) for r in cache.values()]
  cache.clear()
  freed = after - _rss()
  print(json.dumps({"grown": after - start, "rss": after, "freed": freed, "held": held, "held_bytes": held_bytes,
                    "lib": sum(libs) / max(len(libs), 1), "seconds": seconds}))


def run_child(device: str, kernels: int, cache_dir: str, offset: int = 0, **env) -> dict:
  environ = dict(os.environ, TEENY_CACHE_DIR=os.path.join(cache_dir, "teeny"), POCL_CACHE_DIR=os.path.join(cache_dir, "pocl"),
                 PYTHONPATH=REPO, **{k: str(v) for k, v in env.items()})
  environ.pop("TEENY_NO_DISK_CACHE", None)
  done = subprocess.run([sys.executable, __file__, "--child", device, str(kernels), str(offset)], env=environ,
                        capture_output=True, text=True)
  if done.returncode != 0: raise RuntimeError(done.stderr)
  return json.loads(done.stdout.strip().splitlines()[-1])


def kib(n: float) -> str: return f"{n / 1024:8.1f} KiB"
def mib(n: float) -> str: return f"{n / 2**20:8.1f} MiB"


def per_kernel(device: str, n: int):
  """Print the RSS growth per distinct kernel, compiled here (cold) and loaded from the disk cache (warm)."""
  with tempfile.TemporaryDirectory() as tmp:
    cold, warm = run_child(device, n, tmp), run_child(device, n, tmp)
  print(f"{device}: per distinct kernel ({n} kernels, mean binary {cold['lib']:.0f} bytes)")
  for label, r in (("cold (compiled here):  ", cold), ("warm (from disk cache):", warm)):
    print(f"  {label} grows {kib(r['grown'] / n)}, runners' programs freed {kib(r['freed'] / n)}, "
          f"{r['seconds'] / n * 1e3:.1f} ms/kernel")


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--devices", nargs="*")
  parser.add_argument("--sample", type=int, default=300, help="kernels for the per-kernel figures (0: none)")
  parser.add_argument("--kernels", type=int, default=2000, help="kernels for the with/without bound figures (0: none)")
  args = parser.parse_args()
  sys.path.insert(0, REPO)
  from teeny import Device
  for device in args.devices or Device.available():
    if args.sample: per_kernel(device, args.sample)
    if not args.kernels: continue
    unbounded = {"RUNNER_CACHE_SIZE": 10 ** 6, "RUNNER_CACHE_BYTES": 1 << 60}
    bounds = [("count bound only (1,024)", {"RUNNER_CACHE_BYTES": 1 << 60}), ("default byte bound", {})]
    if args.kernels > 1024: bounds.insert(1, ("no bound", unbounded))  # else the same as the count bound
    for label, env in bounds:
      with tempfile.TemporaryDirectory() as tmp:
        cold = run_child(device, args.kernels, tmp, **env)
        warm = run_child(device, args.kernels, tmp, **env)
      print(f"{device}: {args.kernels} kernels, {label}: RSS cold {mib(cold['rss'])} (grew {mib(cold['grown'])}), "
            f"warm {mib(warm['rss'])} (grew {mib(warm['grown'])}); cache holds {warm['held']} runners, "
            f"estimated {mib(warm['held_bytes'])}", flush=True)


if __name__ == "__main__":
  if len(sys.argv) == 5 and sys.argv[1] == "--child": child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
  else: main()
