"""The LLVM CPU backend: host memory, LLVM IR -> object file with llvmlite (O3, tuned for this CPU), and a loader
that runs kernels on all cores.

Calling convention: the kernel `name(buffers..., values..., int64 core_start, int64 core_end)` and its
`name.packed` entry, as teeny/renderer/llvmir.py documents and writes them. The runtime splits the outermost loop's
range [0, global_size[0]) into one slice per core and calls the function for each slice on a persistent pool of
worker threads (cpu_pool.py: native code on x86-64 Linux; no GIL held
while slices run). Small kernels run in the calling thread: handing over a slice costs more than they do.
LLVM itself is set up once per process in llvm_setup.py; big kernels compile in a child process (llvm_child.py),
so that LLVM crashing on one can't end the user's process.
"""
from __future__ import annotations
import ctypes, hashlib, time, warnings
import numpy as np
import llvmlite
import llvmlite.binding as llvm
from teeny.dtype import dtypes
from teeny.renderer import ProgramSpec
from teeny.renderer.llvmir import LLVMRenderer
from teeny.helpers import debug_level, dprint
from teeny.runtime import cpu_pool
from teeny.runtime.cpu_pool import threads as _threads
from teeny.runtime.device import Allocator, Compiler, CompiledDevice, Program
from teeny.runtime.elf import undefined_symbols
from teeny.runtime.llvm_child import ChildCrashed, CompileChild
from teeny.runtime.llvm_setup import HOST_CPU as _HOST_CPU, HOST_FEATURES as _HOST_FEATURES, LLVM_LOCK as _LLVM_LOCK
from teeny.runtime.llvm_setup import libmvec_isa as _libmvec_isa, target_machine as _target_machine, half_vector_width as _half_vector_width
from teeny.runtime.llvm_setup import compile_ir, vector_width as _vector_width

_ALIGN = 64  # a cache line, and the widest vector (AVX-512)
_CTYPES = {dtypes.float32: ctypes.c_float, dtypes.float64: ctypes.c_double, dtypes.int32: ctypes.c_int32,
           dtypes.int64: ctypes.c_int64}  # value arguments as ctypes passes them


# ---- memory ----

class CPUAllocator(Allocator):
  """Host memory as 64-byte aligned numpy arrays; a handle is the raw address (an int). The arrays are kept in
  `_live` while a handle is out or waiting in the base class's cache of freed blocks. Copies in and out of at
  least the renderer's `tuning.parallel_copy_bytes` run on every core (read per copy: a device or a test may give
  its renderer another Tuning)."""
  host_addressable = True

  def __init__(self, renderer, cache_limit: int = 1 << 30):
    super().__init__(cache_limit)
    self.renderer = renderer
    self._live: dict[int, np.ndarray] = {}

  def _alloc(self, nbytes: int) -> int:
    # never less than 64 bytes: kernels read element 0 of a buffer in place of a masked-off element (a padded
    # load is a select, not a branch), so even an empty buffer must have one
    arr = _aligned_empty(max(nbytes, _ALIGN))
    self._live[arr.ctypes.data] = arr
    return arr.ctypes.data

  def _free(self, handle: int, nbytes: int): self._live.pop(handle, None)

  def copyin(self, dest: int, src: memoryview):
    if src.nbytes:
      cpu_pool.copy(dest, np.frombuffer(src, np.uint8).ctypes.data, src.nbytes, self.renderer.tuning.parallel_copy_bytes)

  def copyout(self, dest: memoryview, src: int):
    dst = np.frombuffer(dest, np.uint8)  # raises on a read-only destination, as it should
    if dst.nbytes: cpu_pool.copy(dst.ctypes.data, src, dst.nbytes, self.renderer.tuning.parallel_copy_bytes)

  def as_numpy(self, handle: int) -> np.ndarray:
    """The bytes behind a handle, without a copy (for tests and debugging)."""
    return self._live[handle]


def _aligned_empty(nbytes: int) -> np.ndarray:
  raw = np.empty(nbytes + _ALIGN, np.uint8)
  offset = (-raw.ctypes.data) % _ALIGN
  return raw[offset:offset + nbytes]


# ---- compiling ----

_SLP_MAX_LINES = 20_000  # IR lines past which the SLP vectorizer is left out (see LLVMCompiler.compile)


class LLVMCompiler(Compiler):
  """LLVM IR text -> an ELF object file, optimized at O3 for this machine's CPU (AVX-512 where it has it).

  A kernel of `isolate_lines` IR lines or more compiles in a child process (llvm_child.py): LLVM's optimizer has
  aborted the whole process on big kernels, and a child's crash is only an error. Then the kernel is compiled again
  with a safer pipeline (no SLP vectorizer, then O1) and the user gets a slower kernel and a warning instead of a
  dead process. Smaller kernels compile here: most kernels are small, and starting the child (~0.1 s) would slow
  every program's first call. About 2% of the test suite's kernels are this big; at 1,500 lines they take 0.1-0.3 s
  to compile, against a few ms for the round trip to the child."""
  isolate_lines = 1_500

  def __init__(self):
    features_hash = hashlib.sha256(_HOST_FEATURES.encode()).hexdigest()[:16]
    self.cache_key = f"llvm:{_HOST_CPU}:{features_hash}:llvm{'.'.join(map(str, llvm.llvm_version_info))}:{llvmlite.__version__}"
    self._tm = _target_machine()
    self.child = CompileChild()

  assembly_debug = 7

  def compile(self, src: str) -> bytes:
    lines = src.count("\n")
    # not for a huge kernel: LLVM's SLP vectorizer aborted (an assertion, "Expected valid number of unscheduled
    # deps") on a 34k-line backward kernel, and so big a kernel is bound by its memory traffic, not by what SLP packs
    slp = lines < _SLP_MAX_LINES
    want_assembly = debug_level() >= self.assembly_debug
    if lines < self.isolate_lines:
      with _LLVM_LOCK: obj, assembly = compile_ir(src, self._tm, 3, slp, want_assembly)
    else:
      obj, assembly = self._compile_in_child(src, slp, want_assembly)
    if assembly is not None: dprint(assembly)
    return obj

  def _compile_in_child(self, src: str, slp: bool, want_assembly: bool) -> tuple[bytes, str | None]:
    """Compiles in the child, and after a crash again with a safer pipeline; raises when every pipeline crashed."""
    pipelines = [(3, True), (3, False), (1, False)] if slp else [(3, False), (1, False)]
    crashes = []
    for speed_level, with_slp in pipelines:
      try:
        result = self.child.compile(src, speed_level, with_slp, want_assembly)
      except ChildCrashed as e:
        crashes.append(f"O{speed_level}{' with SLP' if with_slp else ''}: {e}")
        continue
      if crashes:
        warnings.warn(f"LLVM crashed compiling a kernel ({'; '.join(crashes)}); compiled it at O{speed_level}"
                      f"{'' if with_slp else ' without the SLP vectorizer'} instead (slower, same results)", RuntimeWarning)
      return result
    raise RuntimeError(f"LLVM crashed compiling this kernel with every pipeline teeny tries ({'; '.join(crashes)})")


# ---- running ----

class LLVMProgram(Program):
  """A compiled kernel loaded into its own MCJIT engine (so two kernels may share a name).

  A call covers the outermost loop's range [0, global_size[0]). It is split across cores only when codegen found
  the kernel splittable (ProgramSpec.splittable) and the work is worth waking a worker: `work` (a keyword of
  __call__) is the kernel's total operation count; when not given it is global_size[0] times the per-iteration
  count codegen worked out (ProgramSpec.ops_per_iter). Below the device's `tuning.parallel_threshold` (read per
  call: a test may give the renderer another Tuning) the kernel runs in the calling thread. Measured here with the native pool's workers spinning (one thread / split, us): a 256x512 relu
  26 / 21, x @ w.T with 10 outputs 26 / 22, a 256-row sum over 256 7.8 / 12.3. A worker that already sleeps costs
  50-100 us more to wake (the hypervisor wakes its virtual CPU), but only on the first kernel after an idle spell."""
  threads = property(lambda self: _threads())  # (cpu_pool.use_cpus may narrow them)
  memory_estimate = memory_estimate_loaded = 64 << 10  # its MCJIT engine: 20-50 KiB (bench/bench_runner_memory.py)

  def __init__(self, device, spec: ProgramSpec, lib: bytes):
    self.device, self.name, self.lib = device, spec.name, lib
    self.nbufs, self.nvals, self.ops_per_iter, self.splittable = spec.n_bufs, spec.n_vals, spec.ops_per_iter, spec.splittable
    self.value_types = [_CTYPES[dt] for dt in spec.val_dtypes]
    name = spec.name
    # MCJIT would bind a missing symbol to address 0 and the first call would crash the process
    missing = [sym for sym in undefined_symbols(lib) if not llvm.address_of_symbol(sym)]
    if missing: raise RuntimeError(f"kernel {name} needs symbols this process lacks: {', '.join(missing)}")
    with _LLVM_LOCK:
      self._engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), _target_machine(jit=True))
      self._engine.add_object_file(llvm.ObjectFileRef.from_data(lib))
      self._engine.finalize_object()
      self._addr = self._engine.get_function_address(name)
      self._packed = self._engine.get_function_address(f"{name}.packed")  # what the native workers call (see llvmir.py)
    if not self._addr or not self._packed: raise RuntimeError(f"kernel {name} is not defined in its compiled object")
    proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * self.nbufs), *self.value_types, ctypes.c_int64, ctypes.c_int64)
    self._fn = proto(self._addr)

  def __call__(self, *bufs, global_size=(1, 1, 1), local_size=None, vals=(), wait=False, work=None) -> float | None:
    # a wrong argument count would not raise in C: it would read garbage pointers, so check here
    if len(bufs) < self.nbufs or len(vals) != self.nvals:
      raise ValueError(f"kernel {self.name} takes {self.nbufs} buffers and {self.nvals} values, got {len(bufs)} and {len(vals)}")
    bufs, fn, n = bufs[:self.nbufs], self._fn, int(global_size[0])
    if work is None: work = n * self.ops_per_iter
    start = time.perf_counter() if wait else 0.0
    slices = min(self.threads, n) if self.splittable and work >= self.device.renderer.tuning.parallel_threshold else 1
    if slices <= 1: fn(*bufs, *vals, 0, n)
    else: self._run_parallel(fn, bufs, vals, n, slices)
    return time.perf_counter() - start if wait else None

  def launcher(self, global_size, local_size=None):
    """__call__ without keyword parsing: the range and the work are fixed once here, the split threshold is read
    per call (a test may give the renderer another Tuning)."""
    fn, nbufs, nvals, n = self._fn, self.nbufs, self.nvals, int(global_size[0])
    work, splittable = n * self.ops_per_iter, self.splittable and min(self.threads, n) > 1
    renderer = self.device.renderer
    def launch(*bufs, vals=(), wait=False):
      if len(bufs) < nbufs: raise ValueError(f"kernel {self.name} takes {nbufs} buffers, got {len(bufs)}")
      if len(vals) != nvals: raise ValueError(f"kernel {self.name} takes {nvals} values, got {len(vals)}")
      if len(bufs) > nbufs: bufs = bufs[:nbufs]
      start = time.perf_counter() if wait else 0.0
      if splittable and work >= renderer.tuning.parallel_threshold: self._run_parallel(fn, bufs, vals, n, min(self.threads, n))
      else: fn(*bufs, *vals, 0, n)
      return time.perf_counter() - start if wait else None
    return launch

  def value_slots(self, vals) -> list[int]:
    """The values as the packed entry reads them: each one's bytes in the low bytes of an i64 slot."""
    out = []
    for ctype, v in zip(self.value_types, vals):
      raw = bytes(ctype(v))
      out.append(int.from_bytes(raw, "little", signed=True))
    return out

  def _run_parallel(self, fn, bufs, vals, n: int, slices: int):
    cpu_pool.run_split(self, fn, bufs, vals, n, slices)


def open_device(name: str) -> CompiledDevice:
  renderer = LLVMRenderer(libmvec_isa=_libmvec_isa(), vector_width=_vector_width(), half_vector_width=_half_vector_width())
  return CompiledDevice(name, CPUAllocator(renderer), renderer=renderer, compiler=LLVMCompiler(),
                        program_cls=LLVMProgram)
