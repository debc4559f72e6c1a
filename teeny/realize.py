"""Running schedules: get a compiled program per kernel (cached by AST and device, bounded), allocate buffers,
launch, count what ran in GlobalCounters, and print what happened at the DEBUG level asked. While a TinyJit
captures on a thread, every item that thread runs here is also recorded for it (see `capture`)."""
from __future__ import annotations
import json, threading, time
import numpy as np
from teeny.dtype import dtypes
from teeny.uop import UOp, Ops, pretty
from teeny.view import ShapeTracker, View
from teeny.codegen import get_program
from teeny.renderer import ProgramSpec
from teeny.runtime.device import Device, Buffer, disk_cache_get, disk_cache_put
from teeny.schedule import ScheduleItem
from teeny.helpers import GlobalCounters, LRUCache, debug_level, dprint, getenv


class CompiledRunner:
  """A kernel ready to launch: its spec and the device's loaded program. `memory`: about how many bytes of process
  memory it holds (its binary, plus the backend's estimate per program compiled here or loaded from disk)."""
  def __init__(self, device: str, spec: ProgramSpec):
    self.device, self.spec = device, spec
    dev = Device[device]
    compiles_before = dev.compiler.compiles
    try: lib = dev.compiler.compile_cached(spec.src)
    except Exception as e:
      if debug_level() >= 4: dprint(spec.src)
      raise RuntimeError(f"kernel {spec.name} failed to compile on {device}: {e}") from e
    self.program = dev.program_cls(dev, spec.name, lib)
    # (another thread compiling meanwhile can only make a loaded program count as compiled: an overestimate)
    compiled_here = dev.compiler.compiles != compiles_before
    cls = dev.program_cls
    self.memory = len(lib) + (cls.memory_estimate if compiled_here else cls.memory_estimate_loaded)
    self.launch = self.program.launcher(spec.global_size, spec.local_size)  # launch(*handles, wait=False)

  def __call__(self, bufs: list[Buffer], wait=False) -> float | None:
    return self.launch(*[b.handle for b in bufs], wait=wait)


# (device, kernel AST) -> CompiledRunner. Bounded in count (RUNNER_CACHE_SIZE) and in the process memory its
# loaded programs hold (RUNNER_CACHE_BYTES, as estimated by each backend's Program.memory_estimate): a PoCL program
# compiled in this process holds about 1.4 MiB, so the count bound alone would let 1,024 of them take 1.4 GB. The
# least recently used runners go first. An evicted runner stays usable by whoever still holds it (a TinyJit's
# capture keeps its runners themselves, not keys into this cache), and its program is freed when the last holder
# lets go; if its kernel comes back it is loaded again from the on-disk cache.
_runner_cache = LRUCache(getenv("RUNNER_CACHE_SIZE", 1024), max_cost=getenv("RUNNER_CACHE_BYTES", 512 << 20),
                         cost=lambda runner: runner.memory)


def get_runner(device: str, ast: UOp, bufs: list[Buffer] | None = None) -> CompiledRunner:
  """The compiled kernel for ast; with BEAM=N (and the kernel's buffers to time it on) its actions come from
  BEAM search, else from the optimizer's heuristics."""
  key = (device, ast)
  runner = _runner_cache.get(key)
  if runner is None:
    opts = None
    if (width := getenv("BEAM", 0)) and bufs is not None:
      from teeny.codegen.search import beam_search
      opts = beam_search(ast, device, bufs, width)
    spec = get_program(ast, Device[device].renderer, opts)
    if debug_level() >= 3: dprint(f"  {spec.name}: opts {spec.applied_opts}")
    if debug_level() >= 5: dprint(pretty(ast)); dprint(pretty_program(spec.program))
    if debug_level() >= 4: dprint(spec.src)
    runner = _runner_cache[key] = CompiledRunner(device, spec)
  return runner


class _ThreadCapture(threading.local):
  """Per thread: while a TinyJit captures on this thread, `recording` is the list it records into: per item run,
  (item, its runner or None for a copy, which of its buffers had memory before it ran). Per thread, because the
  kernels other threads run meanwhile are theirs, not the capture's."""
  recording: list | None = None  # (a class default: every thread starts with None)


capture = _ThreadCapture()


def pretty_program(program: list) -> str:
  ids = {u: i for i, u in enumerate(program)}
  return "\n".join(f"{i:4d} {u.op.name:<12} {str(u.dtype):<18} {[ids.get(s, '?') for s in u.src]} {u.arg!r}"[:200]
                   for i, u in enumerate(program))


def run_schedule(items: list[ScheduleItem]):
  level = debug_level()
  if level >= 3:
    for i, item in enumerate(items):
      dprint(f"schedule {i}: {item.ast.op.name if item.ast.op is Ops.COPY else 'kernel'} bufs={item.bufs}")
  start = time.perf_counter() if level >= 1 else 0.0
  for item in items:
    if item.ast.op is Ops.COPY: _run_copy(item, level)
    else: _run_kernel(item, level)
  if level >= 1 and items:
    dprint(f"realized {len(items)} item(s) in {(time.perf_counter() - start) * 1e3:.2f} ms; schedule cache "
           f"{GlobalCounters.schedule_hits} hits {GlobalCounters.schedule_misses} misses; mem {GlobalCounters.mem_used / 1e6:.2f} MB "
           f"(peak {GlobalCounters.peak_mem / 1e6:.2f} MB)")


def _run_kernel(item: ScheduleItem, level: int):
  bufs = item.bufs
  device = bufs[0].device
  runner = get_runner(device, item.ast, bufs)
  recording = capture.recording
  if recording is not None: recording.append((item, runner, [b.is_allocated for b in bufs]))
  handles, mem = [], 0
  for b in bufs:  # one loop for both (this runs for every kernel launched)
    handles.append(b.handle)
    mem += b.nbytes
  elapsed = runner.launch(*handles, wait=level >= 2)
  GlobalCounters.kernel_count += 1
  GlobalCounters.global_ops += runner.spec.flops
  GlobalCounters.global_mem += mem
  if elapsed is not None: GlobalCounters.time_sum_s += elapsed
  if level >= 2:
    t = max(elapsed or 0.0, 1e-9)
    bandwidth, peak = device_ceilings(device)
    mem_frac, flop_frac = mem / t / bandwidth, runner.spec.flops / t / peak
    roof = f"{mem_frac:4.0%} of mem" if mem_frac >= flop_frac else f"{flop_frac:4.0%} of FLOPS"
    dprint(f"*** {device:<5} {GlobalCounters.kernel_count:4d} {runner.spec.name:<34} arg {len(item.bufs):2d} "
           f"mem {mem / 1e9:6.3f} GB tm {t * 1e6:9.2f}us ({runner.spec.flops / t / 1e9:9.2f} GFLOPS {mem / t / 1e9:7.2f} GB/s, {roof})")


def _run_copy(item: ScheduleItem, level: int):
  dst, src = item.bufs
  recording = capture.recording
  if recording is not None: recording.append((item, None, [b.is_allocated for b in item.bufs]))
  t0 = time.perf_counter()
  copy_buffer(dst, src)
  GlobalCounters.copies += 1
  if level >= 2:
    dprint(f"*** {dst.device:<5} copy {src.nbytes:10d} bytes {src.device} -> {dst.device} tm {(time.perf_counter() - t0) * 1e6:9.2f}us")


def copy_buffer(dst: Buffer, src: Buffer):
  """Copy between devices, through the host."""
  if src.size: dst.copyin(memoryview(src.numpy()).cast("B"))


# ---- the roofline: what a device can do at best, measured once ----
_ceilings: dict[str, tuple[float, float]] = {}


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
    n, size = 1 << 24, 512
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
