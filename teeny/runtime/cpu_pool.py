"""The CPU worker pool: the one place in teeny that starts threads of its own.

The LLVM backend (ops_llvm.py) splits a kernel's outermost loop across the cores and calls `run_split`; its
allocator copies large buffers in and out with `copy`, split the same way. Both run their slices on one pool per
process, made on first use:
  - `_NativePool` (x86-64 Linux): worker threads that live in native code compiled from cpu_pool.ll, handed work
    through control blocks in memory; no GIL held while slices run.
  - `_PythonPool` (anywhere else, or TEENY_NATIVE_POOL=0): Python threads woken by bare locks, each slice a ctypes
    call (which drops the GIL).
One caller uses the workers at a time (`_POOL_LOCK`); a caller that finds them busy runs every slice itself.
Worker threads are pinned to CPUs of their own (TEENY_PIN_WORKERS=0 leaves them free), and a forked child forgets
the parent's pool and makes its own on first use.

While a trace records (teeny/tracing.py), each slice run on the pool is stamped where it ran (when it began and
ended, on which thread) and becomes a span on that thread's track of the LLVM device: the native pool posts its
`teeny_traced_slice` entry, which wraps the kernel's and writes the stamps (cpu_pool.ll); the untraced path posts
the kernel's entry as before. Slices a caller runs itself because another thread has the workers are not stamped.
"""
from __future__ import annotations
import _thread, ctypes, os, string, sys, threading, time
from importlib import resources
import llvmlite.binding as llvm
from teeny import tracing
from teeny.renderer.tuning import Tuning
from teeny.runtime.llvm_setup import LLVM_LOCK, target_machine


def cpu_count() -> int:
  """The CPUs this process may run on."""
  try: return len(os.sched_getaffinity(0))
  except AttributeError: return os.cpu_count() or 1


_THREADS = [cpu_count()]  # how many slices a kernel is split into at most: one per CPU this process runs on


def threads() -> int: return _THREADS[0]


def use_cpus(cpus: list[int]):
  """Run this process's kernels on these CPUs only (teeny.distributed gives each process on a host its slice). The
  worker pool is made on first use with one worker per CPU: a pool made before this keeps its workers where they
  are, which is still correct, only slower when processes share cores."""
  os.sched_setaffinity(0, cpus)
  _THREADS[0] = len(cpus)
  if _POOL: sys.stderr.write("teeny: the CPU worker pool was made before its CPUs were set: call teeny.distributed.init() first\n")


# A kernel split across cores runs its slices on worker threads that live in native code: each spins on its control
# block for a while after its last slice, then sleeps in the kernel (futex) until woken. Waking a sleeping virtual CPU
# costs 50-100 us on the VM we measure on, and a woken core that goes back to sleep between kernels can make a split
# kernel as slow as one core for many calls in a row; a worker that is still spinning starts a slice in well under a
# microsecond. Neither side holds the GIL: the caller's one ctypes call posts the slices, runs its own and waits.
# A slice that no worker has taken by the time the caller finished its own, the caller takes and runs itself: a
# worker without a core (busy with other threads, or queued behind the caller on the caller's own) then costs the
# time of its slice, not a time slice of the kernel's scheduler (a 1024x1024 row-sum took 1.9 ms instead of 0.1 in
# such bench runs). The control block's layout is written down in cpu_pool.ll.
_CTRL_BYTES = 128
# time-stamp counter ticks a worker spins before it sleeps: the pool is one per process, so it takes the default
# Tuning's (renderer/tuning.py)
_SPIN_CYCLES = Tuning().spin_cycles
_COPY_PAGE = 4096  # copies split across cores are cut at multiples of this many bytes
_STAMP_FIELDS = 5  # a traced slice's stamps: start, end, began ns, ended ns, thread id (see cpu_pool.ll)
_CPU = "LLVM"  # the trace process a copy's slices go to (a kernel's go to its own device: LLVM, LLVM:1, ...)


def _pool_ir() -> str:
  """cpu_pool.ll (shipped with the package) with its placeholders filled in."""
  template = string.Template(resources.files(__package__).joinpath("cpu_pool.ll").read_text())
  return template.substitute(CTRL_BYTES=_CTRL_BYTES, SPIN_CYCLES=_SPIN_CYCLES, COPY_PAGE=_COPY_PAGE,
                             STAMP_FIELDS=_STAMP_FIELDS)


class _NativePool:
  """`helpers` worker threads that run slices of kernels and of large copies (see above). Built on first use;
  x86-64 Linux only (it spins with the time-stamp counter and sleeps with futex), elsewhere `_PythonPool` does
  the same work."""
  def __init__(self, helpers: int):
    with LLVM_LOCK:
      mod = llvm.parse_assembly(_pool_ir())
      mod.verify()
      self._engine = llvm.create_mcjit_compiler(mod, target_machine(jit=True))
      self._engine.finalize_object()
      run_addr = self._engine.get_function_address("teeny_run_split")
      worker_addr = self._engine.get_function_address("teeny_worker")
      self._copy_pages = self._engine.get_function_address("teeny_copy_pages")
      self._traced_slice = self._engine.get_function_address("teeny_traced_slice")
    self.helpers = helpers
    # the workers read their control blocks until the process ends, so the blocks come from malloc and are never
    # freed: not even while the interpreter shuts down and frees its objects (a freed block reused for something
    # else could look like a posted slice to a worker still spinning)
    libc = ctypes.CDLL(None)
    block = ctypes.c_void_p()
    if libc.posix_memalign(ctypes.byref(block), _CTRL_BYTES, helpers * _CTRL_BYTES) != 0:
      raise MemoryError("no memory for the LLVM worker pool's control blocks")
    self.ctrls = block.value
    ctypes.memset(self.ctrls, 0, helpers * _CTRL_BYTES)
    self._run = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_int64)(run_addr)
    self._worker = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(worker_addr)  # never returns; ctypes drops the GIL
    _KEEP_ALIVE.append(self)  # its threads run its compiled code until the process ends
    self.threads = []
    for i in range(helpers):
      worker = threading.Thread(target=self._worker, args=(self.ctrls + i * _CTRL_BYTES,), name=f"teeny-llvm-{i}",
                                daemon=True)
      worker.start()
      if _PIN_WORKERS: _pin(worker.native_id, i + 1)
      self.threads.append(worker)

  def run(self, program, bufs, vals, n: int, slices: int, traced: bool = False) -> list[tuple] | None:
    """Run `program` (an LLVMProgram) over [0, n) in `slices` slices, through its packed entry. `traced`: stamp
    each slice and return the stamps (see cpu_pool.ll)."""
    if vals: vals = program.value_slots(vals)
    args = (ctypes.c_int64 * (len(bufs) + len(vals)))(*bufs, *vals)
    if traced: return self._run_traced(program._packed, args, n, slices)
    self._run(self.ctrls, slices - 1, program._packed, args, n)
    return None

  def copy(self, dst: int, src: int, nbytes: int, slices: int, traced: bool = False) -> list[tuple] | None:
    args = (ctypes.c_int64 * 3)(dst, src, nbytes)
    pages = -(-nbytes // _COPY_PAGE)
    if traced: return self._run_traced(self._copy_pages, args, pages, slices)
    self._run(self.ctrls, slices - 1, self._copy_pages, args, pages)
    return None

  def _run_traced(self, fn: int, args, n: int, slices: int) -> list[tuple]:
    """Run the packed entry `fn` over [0, n) in slices through teeny_traced_slice: the stamps of each slice."""
    stamps = (ctypes.c_int64 * (_STAMP_FIELDS * slices))()
    record = (ctypes.c_int64 * 4)(fn, ctypes.addressof(args), ctypes.addressof(stamps), 0)
    self._run(self.ctrls, slices - 1, self._traced_slice, record, n)
    return [tuple(stamps[i * _STAMP_FIELDS:(i + 1) * _STAMP_FIELDS]) for i in range(record[3])]


class _PythonPool:
  """Worker threads woken by bare locks, for machines the native pool doesn't run on. Handing over is a pair of
  locks per worker (acquired means "nothing to do" / "not done"); each slice is a ctypes call, which drops the GIL."""
  def __init__(self, helpers: int):
    self.helpers = helpers
    self._go = [_thread.allocate_lock() for _ in range(helpers)]
    self._done = [_thread.allocate_lock() for _ in range(helpers)]
    self._jobs: list = [None] * helpers
    self._errors: list = [None] * helpers
    for i in range(helpers):
      self._go[i].acquire()
      self._done[i].acquire()
      threading.Thread(target=self._loop, args=(i,), name=f"teeny-llvm-{i}", daemon=True).start()

  def _loop(self, i: int):
    while True:
      self._go[i].acquire()
      fn, args = self._jobs[i]
      try: fn(*args)  # a compiled kernel can't raise, but ctypes may refuse an argument
      except BaseException as e: self._errors[i] = e  # handed to the caller in run()
      self._done[i].release()

  def run(self, program, bufs, vals, n: int, slices: int, traced: bool = False) -> list[tuple] | None:
    """Run `program` (an LLVMProgram) over [0, n) in `slices` slices, through its ctypes function. `traced`: stamp
    each slice and return the stamps, as the native pool does."""
    bounds = [n * i // slices for i in range(slices + 1)]
    calls = [(program._fn, (*bufs, *vals, bounds[i], bounds[i + 1])) for i in range(slices)]
    if traced: return self._split_traced(calls, list(zip(bounds, bounds[1:])))
    self._split(calls)
    return None

  def copy(self, dst: int, src: int, nbytes: int, slices: int, traced: bool = False) -> list[tuple] | None:
    pages = -(-nbytes // _COPY_PAGE)
    page_bounds = [pages * i // slices for i in range(slices + 1)]
    bounds = [min(nbytes, page * _COPY_PAGE) for page in page_bounds]
    calls = [(ctypes.memmove, (dst + lo, src + lo, hi - lo)) for lo, hi in zip(bounds, bounds[1:])]
    if traced: return self._split_traced(calls, list(zip(page_bounds, page_bounds[1:])))
    self._split(calls)
    return None

  def _split_traced(self, calls: list, ranges: list[tuple[int, int]]) -> list[tuple]:
    """_split, each call stamped as the native pool stamps a slice: (start, end, began ns, ended ns, thread id)."""
    stamps: list[tuple] = []
    def stamped(fn, args, start, end):
      began = time.perf_counter_ns()
      fn(*args)
      stamps.append((start, end, began, time.perf_counter_ns(), threading.get_native_id()))
    self._split([(stamped, (fn, args, start, end)) for (fn, args), (start, end) in zip(calls, ranges)])
    return stamps

  def _split(self, calls: list):
    """Run calls[0] here and the others on the workers (ctypes calls: no GIL held while they run)."""
    for i, call in enumerate(calls[1:]):
      self._jobs[i] = call
      self._go[i].release()
    try:
      fn, args = calls[0]
      fn(*args)
    finally:
      for i in range(len(calls) - 1): self._done[i].acquire()  # the workers are free again, even after an error
    for i in range(len(calls) - 1):
      error, self._errors[i] = self._errors[i], None
      if error is not None: raise error


_POOL: list = []  # the process's one pool, made on first use
_KEEP_ALIVE: list = []  # every native pool ever made (their threads never end)
_POOL_LOCK = threading.Lock()  # held while a kernel's or a copy's slices run: one caller uses the workers at a time
_POOL_MADE_LOCK = threading.Lock()  # held while the pool is made


# Worker i is pinned to the (i+1)-th CPU this process may run on, leaving the first to the calling thread. Unpinned,
# the kernel scheduler of the VM we measure on often woke a worker onto the caller's core and left it there while
# the other core idled: the two took turns for many calls in a row (a 1024x1024 row-sum at 0.22-0.45 ms instead of
# 0.1; 1.9 ms before the caller could take a late worker's slice). A pinned worker whose core is busy with other
# work costs no more than that: the caller runs the slice it didn't start. TEENY_PIN_WORKERS=0 leaves them free.
_PIN_WORKERS = os.environ.get("TEENY_PIN_WORKERS", "1") != "0"


def _pin(thread_id: int, index: int):
  cpus = sorted(os.sched_getaffinity(0))
  try: os.sched_setaffinity(thread_id, {cpus[index % len(cpus)]})
  except OSError: pass  # a CPU set we may not narrow (some containers): the worker stays free, which also works


def _native_pool_runs_here() -> bool:
  """x86-64 Linux, unless TEENY_NATIVE_POOL=0 asks for the Python pool."""
  return os.environ.get("TEENY_NATIVE_POOL", "1") != "0" and sys.platform.startswith("linux") and \
    llvm.get_process_triple().startswith("x86_64")


def _pool():
  if not _POOL:
    with _POOL_MADE_LOCK:
      if not _POOL:
        helpers = max(1, cpu_count() - 1)  # the calling thread runs one slice itself
        if tracing.active:
          with tracing.span("start the LLVM worker pool", "runtime", {"workers": helpers}): _POOL.append(_make_pool(helpers))
        else: _POOL.append(_make_pool(helpers))
  return _POOL[0]


def _make_pool(helpers: int): return _NativePool(helpers) if _native_pool_runs_here() else _PythonPool(helpers)


def run_split(program, fn, bufs, vals, n: int, slices: int):
  """Run `program` (an LLVMProgram; `fn` is its ctypes function) over [0, n) in up to `slices` slices on the pool,
  or every slice in this thread when another thread's kernel or copy has the workers."""
  pool = _pool()
  slices = min(slices, pool.helpers + 1)
  if not _POOL_LOCK.acquire(blocking=False):  # another thread's kernel has the workers: run every slice here
    fn(*bufs, *vals, 0, n)
    return
  try:
    if tracing.active:
      _trace_slices(program.device.name, program.name, "range", n, pool.run(program, bufs, vals, n, slices, traced=True))
    else: pool.run(program, bufs, vals, n, slices)
  finally: _POOL_LOCK.release()


def copy(dst: int, src: int, nbytes: int, parallel_bytes: int):
  """memmove, split across the cores from `parallel_bytes` bytes (Tuning.parallel_copy_bytes): one core copies 64 MiB
  at 9-10 GB/s here, two at 21 GB/s."""
  slices = min(cpu_count(), -(-nbytes // _COPY_PAGE))
  if nbytes < parallel_bytes or slices < 2:
    ctypes.memmove(dst, src, nbytes)
    return
  pool = _pool()
  if not _POOL_LOCK.acquire(blocking=False):  # another thread has the workers
    ctypes.memmove(dst, src, nbytes)
    return
  slices = min(slices, pool.helpers + 1)
  try:
    if tracing.active: _trace_slices(_CPU, "copy", "pages", -(-nbytes // _COPY_PAGE), pool.copy(dst, src, nbytes, slices, traced=True))
    else: pool.copy(dst, src, nbytes, slices)
  finally: _POOL_LOCK.release()


def _trace_slices(device: str, name: str, unit: str, n: int, stamps: list[tuple]):
  """One trace span per slice that ran, on the track of the thread that ran it (the caller's own slices land on
  its kernel track, inside the kernel's span)."""
  for start, end, began, ended, thread in stamps:
    args = {unit: [start, end], "of": n, "slices": len(stamps)}
    tracing.complete(tracing.thread_track(device, thread), name, "slice", began, ended, args)


def _forget_pool_in_child():
  # a forked child has none of the parent's threads: a pool it inherited would wait forever for them
  _POOL.clear()
  global _POOL_LOCK, _POOL_MADE_LOCK
  _POOL_LOCK, _POOL_MADE_LOCK = threading.Lock(), threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)
