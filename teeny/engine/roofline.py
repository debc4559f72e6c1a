"""The roofline: what a device can do at best, its memory bandwidth and arithmetic rate, measured once by running
two benchmark kernels (a 64 MiB read-and-write, a 512x512x512 matmul) and cached in memory and on disk. DEBUG>=2
prints each kernel's time as a share of these ceilings."""
from __future__ import annotations
import json
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


def device_ceilings(device: str) -> tuple[float, float]:
  """(bytes/s, FLOP/s): the device's memory bandwidth (a 64 MiB read-and-write kernel) and arithmetic rate (a
  512x512x512 matmul that stays in cache, as optimized for this device: the best FLOP/s teeny's code reaches),
  each the best of 5 runs. Measured the first time DEBUG=2 needs them, then cached in memory and on disk (per
  device and compiler)."""
  if device in _ceilings: return _ceilings[device]
  key = f"ceilings:{Device[device].compiler.cache_key}"
  cached = disk_cache_get(key, "v2")
  if cached is not None: _ceilings[device] = tuple(json.loads(cached))
  else:
    n, size = BANDWIDTH_ELEMENTS, MATMUL_SIZE
    bandwidth = _best_rate(device, _bandwidth_ast(n), [n, n]) * n * 8
    flops = _best_rate(device, _matmul_ast(size), [size * size] * 3) * 2 * size ** 3
    _ceilings[device] = (bandwidth, flops)
    disk_cache_put(key, "v2", json.dumps(_ceilings[device]).encode())
  return _ceilings[device]


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
