"""The roofline: what a device can do at best, its memory bandwidth and arithmetic rate, measured once by running
two benchmark kernels (a 64 MiB read-and-write, a 512x512x512 matmul) and cached in memory and on disk. DEBUG>=2
prints each kernel's time as a share of these ceilings.

The ceilings are never measured inside a realize of the user's (that took about a second and 134 MB in the first
realize of a 6-element program): while they are unknown, DEBUG=2 lines leave the share out and the kernels are
noted here; when the process ends, the ceilings are measured once (then cached on disk for every later run) and
the kernels are printed with their shares. At exit DEBUG>=2 always prints the kernels that ran, the most total
time first (the top TOP_KERNELS), with their shares. `measure_ceilings()` measures them at a moment the user
chooses."""
from __future__ import annotations
import atexit, json, threading
import numpy as np
from teeny.dtype import dtypes
from teeny.uop import UOp, Ops
from teeny.view import ShapeTracker, View
from teeny.runtime.device import Device, Buffer, disk_cache_get, disk_cache_put
from teeny.engine.runner import get_runner

_ceilings: dict[str, tuple[float, float]] = {}
BANDWIDTH_ELEMENTS, MATMUL_SIZE = 1 << 24, 512  # the two benchmark kernels: 64 MiB read and written, a 512^3 matmul


def benchmark_asts() -> list[UOp]:
  """The kernels device_ceilings runs. A process makes them only while the ceilings are not on disk yet (a fresh
  cache, as CI's), so tools/replay.py records them whatever the cache held."""
  return [_bandwidth_ast(BANDWIDTH_ELEMENTS), _matmul_ast(MATMUL_SIZE)]


def known_ceilings(device: str) -> tuple[float, float] | None:
  """(bytes/s, FLOP/s) if measured before (in this process or on disk), else None: never measures."""
  if device in _ceilings: return _ceilings[device]
  cached = disk_cache_get(_disk_key(device), "v2")
  if cached is not None: _ceilings[device] = tuple(json.loads(cached))
  return _ceilings.get(device)


def device_ceilings(device: str) -> tuple[float, float]:
  """(bytes/s, FLOP/s): the device's memory bandwidth (a 64 MiB read-and-write kernel) and arithmetic rate (a
  512x512x512 matmul that stays in cache, as optimized for this device: the best FLOP/s teeny's code reaches),
  each the best of 5 runs. Measured once, then cached in memory and on disk (per device and compiler)."""
  known = known_ceilings(device)
  if known is not None: return known
  n, size = BANDWIDTH_ELEMENTS, MATMUL_SIZE
  bandwidth = _best_rate(device, _bandwidth_ast(n), [n, n]) * n * 8
  flops = _best_rate(device, _matmul_ast(size), [size * size] * 3) * 2 * size ** 3
  _ceilings[device] = (bandwidth, flops)
  disk_cache_put(_disk_key(device), "v2", json.dumps(_ceilings[device]).encode())
  return _ceilings[device]


def measure_ceilings(*devices: str):
  """Measure the ceilings of these devices (default: every one that ran a kernel) now, if they aren't known: then
  the DEBUG=2 lines that follow carry their roofline shares."""
  for device in devices or list(_ran): device_ceilings(device)


def roofline_share(device: str, mem: int, flops: int, seconds: float) -> str | None:
  """'NN% of mem' or 'NN% of FLOPS' (whichever ceiling the kernel came closer to), or None while the device's
  ceilings are unknown."""
  closest = roofline_closest(device, mem, flops, seconds)
  if closest is None: return None
  fraction, ceiling = closest
  return f"{fraction:4.0%} of {ceiling}"


def roofline_closest(device: str, mem: int, flops: int, seconds: float) -> tuple[float, str] | None:
  """(the fraction of the ceiling, "mem" or "FLOPS") for the ceiling the kernel came closer to, or None while the
  device's ceilings are unknown."""
  ceilings = known_ceilings(device)
  if ceilings is None: return None
  mem_frac, flop_frac = mem / seconds / ceilings[0], flops / seconds / ceilings[1]
  return (mem_frac, "mem") if mem_frac >= flop_frac else (flop_frac, "FLOPS")


# device -> kernel name -> [launches, seconds, bytes, flops]: every kernel DEBUG>=2 printed, for the table at exit
_ran: dict[str, dict[str, list]] = {}
_unplaced: set[str] = set()  # devices whose ceilings were unknown when one of their kernels ran: measured at exit
_ran_lock = threading.Lock()
TOP_KERNELS = 10  # the rows of the table at exit


def note_kernel(device: str, name: str, mem: int, flops: int, seconds: float, placed: bool):
  """Count a kernel DEBUG=2 printed (placed: with its roofline share), for the table of kernels at exit."""
  with _ran_lock:
    if not _ran: atexit.register(_summary_at_exit)
    if not placed: _unplaced.add(device)
    entry = _ran.setdefault(device, {}).setdefault(name, [0, 0.0, 0, 0])
    entry[0] += 1
    entry[1] += seconds
    entry[2] += mem
    entry[3] += flops


def _summary_at_exit(top: int = TOP_KERNELS):
  """DEBUG>=2 at exit: per device, the kernels that ran, the most total time first, with their shares of the
  ceilings (measured now, once, for a device whose ceilings were unknown while its kernels ran)."""
  from teeny.helpers import dprint  # (at exit: print even if DEBUG was lowered meanwhile)
  for device, kernels in _ran.items():
    try: bandwidth, peak = device_ceilings(device)
    except Exception as e:  # a device that can't run at exit (torn down): say so, don't raise at exit
      dprint(f"roofline of {device}: not measured ({type(e).__name__}: {e})")
      continue
    if device in _unplaced:
      dprint(f"roofline of {device}, measured after the program ran: {bandwidth / 1e9:.1f} GB/s, {peak / 1e9:.1f} "
             f"GFLOP/s (cached: later runs show each kernel's share in its DEBUG=2 line).")
    ranked = sorted(kernels.items(), key=lambda item: -item[1][1])
    total = sum(seconds for _, seconds, _, _ in kernels.values())
    dprint(f"kernels on {device} by total time ({len(ranked)} kernel(s), {total * 1e3:.3f} ms in all):")
    for name, (count, seconds, mem, flops) in ranked[:top]:
      dprint(f"  {name:<34} {count:5d}x {seconds * 1e3:10.3f} ms  {roofline_share(device, mem, flops, max(seconds, 1e-9))}"
             f"  {seconds / max(total, 1e-12):4.0%} of the time")
    if len(ranked) > top: dprint(f"  ... and {len(ranked) - top} more kernel(s)")


def _disk_key(device: str) -> str: return f"ceilings:{Device[device].compiler.cache_key}"


def _best_rate(device: str, ast: UOp, sizes: list[int]) -> float:
  """Runs per second of the kernel `ast` (the best of 5) on float32 buffers of these sizes, inputs all ones."""
  runner = get_runner(device, ast)
  bufs = [Buffer(device, n, dtypes.float32) for n in sizes]
  for b in bufs[1:]: b.copyin(memoryview(np.ones(b.size, np.float32)).cast("B"))  # ones: no slow denormals
  return 1 / min(runner(bufs, wait=True) or 1e-9 for _ in range(5))


def _kernel_ast(out_shape, value: UOp) -> UOp:
  out = UOp(Ops.DEFINE_GLOBAL, dtypes.float32.ptr(), (), 0)
  view = UOp(Ops.VIEW, dtypes.void, (), ShapeTracker.from_shape(out_shape))
  return UOp(Ops.SINK, dtypes.void, (UOp(Ops.STORE, dtypes.void, (out, view, value)),))


def _load(i: int, st: ShapeTracker) -> UOp:
  return UOp(Ops.LOAD, dtypes.float32, (UOp(Ops.DEFINE_GLOBAL, dtypes.float32.ptr(), (), i), UOp(Ops.VIEW, dtypes.void, (), st)))


def _bandwidth_ast(n: int) -> UOp:
  return _kernel_ast((n,), _load(1, ShapeTracker.from_shape((n,))) + UOp.const(dtypes.float32, 1.0))


def _matmul_ast(n: int) -> UOp:
  """out[i, j] = sum_k a[i, k] * b[k, j] over the loop space (i, j, k)."""
  a = ShapeTracker((View.create((n, n, n), (n, 0, 1)),))
  b = ShapeTracker((View.create((n, n, n), (0, 1, n)),))
  product = UOp(Ops.MUL, dtypes.float32, (_load(1, a), _load(2, b)))
  return _kernel_ast((n, n, 1), UOp(Ops.REDUCE_AXIS, dtypes.float32, (product,), (Ops.ADD, (2,))))
