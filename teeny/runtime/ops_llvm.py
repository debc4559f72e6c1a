"""The LLVM CPU backend: host memory, LLVM IR -> object file with llvmlite (O3, tuned for this CPU), and a loader
that runs kernels on all cores.

Calling convention (the renderer in teeny/codegen/llvmir.py writes it):
  void name(void *data0, ..., void *dataN, int32 vals..., int32 core_start, int32 core_end)
The runtime splits the outermost loop's range [0, global_size[0]) into one slice per core and calls the function
for each slice on a persistent thread pool (ctypes drops the GIL during the call). Small kernels run in the
calling thread: waking a thread costs more than they do.
"""
from __future__ import annotations
import _thread, ctypes, ctypes.util, hashlib, os, re, struct, threading, time
import numpy as np
import llvmlite
import llvmlite.binding as llvm
from teeny.codegen.llvmir import LLVMRenderer
from teeny.helpers import debug_level, dprint
from teeny.runtime.device import Allocator, Compiler, CompiledDevice, Program

_ALIGN = 64  # a cache line, and the widest vector (AVX-512)
_LLVM_LOCK = threading.Lock()  # LLVM's global context is not thread-safe: parse, optimize and load one at a time


# ---- LLVM setup (once per process) ----

def _load_library(soname: str, fallback: str) -> bool:
  """Make a shared library's symbols visible to the JIT linker. Tries the soname first: find_library forks ldconfig."""
  for candidate in (soname, ctypes.util.find_library(fallback) if fallback else None):
    if not candidate: continue
    try:
      llvm.load_library_permanently(candidate)
      return True
    except RuntimeError: continue
  return False


llvm.initialize_native_target()
llvm.initialize_native_asmprinter()
_HOST_CPU = llvm.get_host_cpu_name()
_HOST_FEATURES = llvm.get_host_cpu_features().flatten()
_HOST_HAS = frozenset(f[1:] for f in _HOST_FEATURES.split(",") if f.startswith("+"))  # e.g. "avx512f"
_load_library("libm.so.6", "m")  # the llvm.exp2/log2/sin intrinsics become calls to exp2f, log2f, sinf, ...
_HAS_LIBMVEC = _load_library("libmvec.so.1", "")
_load_library("libgcc_s.so.1", "")  # compiler runtime helpers LLVM may call (e.g. __truncsfhf2 without F16C)


def _libmvec_isa() -> str | None:
  """The x86 vector-ABI letter of the widest libmvec variants this CPU can run, or None if they can't be used."""
  if not _HAS_LIBMVEC or not re.match(r"x86_64", llvm.get_process_triple()): return None
  for isa, needs in (("e", {"avx512f"}), ("d", {"avx2", "fma"}), ("b", {"sse4.1"})):
    if needs <= _HOST_HAS: return isa
  return None


def _target_machine(jit: bool = False):
  target = llvm.Target.from_triple(llvm.get_process_triple())
  # the large code model: the JIT may place code, constants and libm far apart (no 2 GiB reach limit)
  return target.create_target_machine(cpu=_HOST_CPU, features=_HOST_FEATURES, opt=3, reloc="static",
                                      codemodel="jitdefault", jit=jit)


# ---- memory ----

class CPUAllocator(Allocator):
  """Host memory as 64-byte aligned numpy arrays; a handle is the raw address (an int). The arrays are kept in
  `_live` while a handle is out or waiting in the base class's cache of freed blocks."""
  def __init__(self, cache_limit: int = 1 << 30):
    super().__init__(cache_limit)
    self._live: dict[int, np.ndarray] = {}

  def _alloc(self, nbytes: int) -> int:
    # never less than 64 bytes: kernels read element 0 of a buffer in place of a masked-off element (a padded
    # load is a select, not a branch), so even an empty buffer must have one
    arr = _aligned_empty(max(nbytes, _ALIGN))
    self._live[arr.ctypes.data] = arr
    return arr.ctypes.data

  def _free(self, handle: int, nbytes: int): self._live.pop(handle, None)

  def copyin(self, dest: int, src: memoryview):
    if src.nbytes: ctypes.memmove(dest, np.frombuffer(src, np.uint8).ctypes.data, src.nbytes)

  def copyout(self, dest: memoryview, src: int):
    dst = np.frombuffer(dest, np.uint8)  # raises on a read-only destination, as it should
    if dst.nbytes: ctypes.memmove(dst.ctypes.data, src, dst.nbytes)

  def as_numpy(self, handle: int) -> np.ndarray:
    """The bytes behind a handle, without a copy (for tests and debugging)."""
    return self._live[handle]


def _aligned_empty(nbytes: int) -> np.ndarray:
  raw = np.empty(nbytes + _ALIGN, np.uint8)
  offset = (-raw.ctypes.data) % _ALIGN
  return raw[offset:offset + nbytes]


# ---- compiling ----

class LLVMCompiler(Compiler):
  """LLVM IR text -> an ELF object file, optimized at O3 for this machine's CPU (AVX-512 where it has it)."""
  def __init__(self):
    features_hash = hashlib.sha256(_HOST_FEATURES.encode()).hexdigest()[:16]
    self.cache_key = f"llvm:{_HOST_CPU}:{features_hash}:llvm{'.'.join(map(str, llvm.llvm_version_info))}:{llvmlite.__version__}"
    self._tm = _target_machine()

  def compile(self, src: str) -> bytes:
    name = _kernel_name(src)
    with _LLVM_LOCK:
      try:
        mod = llvm.parse_assembly(src)
        mod.verify()
      except RuntimeError as e:
        raise RuntimeError(f"LLVM rejected the IR of kernel {name}: {e}") from None
      mod.triple, mod.data_layout = self._tm.triple, str(self._tm.target_data)
      pto = llvm.create_pipeline_tuning_options(speed_level=3)
      pto.slp_vectorization = True  # off by default in llvmlite's options; clang's -O3 has it
      pb = llvm.create_pass_builder(self._tm, pto)
      pb.getModulePassManager().run(mod, pb)
      if debug_level() >= 7: dprint(self._tm.emit_assembly(mod))
      return self._tm.emit_object(mod)


def _kernel_name(src: str) -> str:
  m = re.search(r'define\s+\S+\s+@"?([^"(\s]+)', src)
  return m.group(1) if m else "<unnamed>"


# ---- running ----

def _cpu_count() -> int:
  try: return len(os.sched_getaffinity(0))
  except AttributeError: return os.cpu_count() or 1


class _Worker:
  """A thread that runs one slice of a kernel when handed one. Handing over is a pair of bare locks (acquired means
  "nothing to do" / "not done"): a round trip costs 5-9 us here where a ThreadPoolExecutor's futures and
  conditions cost 11-19 us (plus, either way, waking the core itself when it slept: see LLVMProgram)."""
  def __init__(self, index: int):
    self._go, self._done = _thread.allocate_lock(), _thread.allocate_lock()
    self._go.acquire()
    self._done.acquire()
    self._job, self._error = None, None
    threading.Thread(target=self._loop, name=f"teeny-llvm-{index}", daemon=True).start()

  def _loop(self):
    while True:
      self._go.acquire()
      fn, args = self._job
      try: fn(*args)
      except BaseException as e: self._error = e  # handed to the caller in wait()
      self._done.release()

  def start(self, fn, args: tuple):
    self._job = (fn, args)
    self._go.release()

  def wait(self):
    self._done.acquire()
    error, self._error = self._error, None
    if error is not None: raise error


_WORKERS: list[_Worker] = []
_WORKERS_LOCK = threading.Lock()  # held while a kernel's slices run: one caller uses the workers at a time


def _workers() -> list[_Worker]:
  if not _WORKERS:
    with _WORKERS_LOCK:
      # the calling thread runs one slice itself, so one worker fewer than there are cores
      if not _WORKERS: _WORKERS.extend(_Worker(i) for i in range(max(1, _cpu_count() - 1)))
  return _WORKERS


def undefined_symbols(obj: bytes) -> list[str]:
  """Names an ELF64 object file needs from outside (its SHN_UNDEF symbols)."""
  if obj[:4] != b"\x7fELF" or obj[4] != 2: return []
  shoff, = struct.unpack_from("<Q", obj, 0x28)
  shentsize, shnum = struct.unpack_from("<HH", obj, 0x3A)
  sections = [struct.unpack_from("<IIQQQQIIQQ", obj, shoff + i * shentsize) for i in range(shnum)]
  names = []
  for _, sh_type, _, _, off, size, link, _, _, entsize in sections:
    if sh_type != 2: continue  # SHT_SYMTAB
    stroff = sections[link][4]
    for sym in range(off + entsize, off + size, entsize):  # entry 0 is the null symbol
      st_name, _, _, st_shndx = struct.unpack_from("<IBBH", obj, sym)
      if st_shndx == 0 and st_name:
        names.append(obj[stroff + st_name:obj.index(b"\0", stroff + st_name)].decode())
  return names


class LLVMProgram(Program):
  """A compiled kernel loaded into its own MCJIT engine (so two kernels may share a name).

  A call covers the outermost loop's range [0, global_size[0]). It is split across cores only when the renderer
  marked the kernel splittable and the work is worth waking a worker: `work` (a keyword
  of __call__) is the kernel's total operation count; when not given it is global_size[0] times the
  per-iteration count the renderer stored in the object. Below `parallel_threshold` the kernel runs in the
  calling thread. Waking a worker whose core sleeps costs 50-100 us on the 2-core VM we measure on (the hypervisor
  wakes the idle virtual CPU): kernels that run in less than a few hundred microseconds alone (x @ w.T with 10
  outputs: 26 us alone, 119 us split; a 64x512x512 matmul: 243 us either way) are faster unsplit."""
  parallel_threshold = 1 << 24
  threads = _cpu_count()

  def __init__(self, device, name: str, lib: bytes):
    self.device, self.name, self.lib = device, name, lib
    # MCJIT would bind a missing symbol to address 0 and the first call would crash the process
    missing = [sym for sym in undefined_symbols(lib) if not llvm.address_of_symbol(sym)]
    if missing: raise RuntimeError(f"kernel {name} needs symbols this process lacks: {', '.join(missing)}")
    with _LLVM_LOCK:
      self._engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), _target_machine(jit=True))
      self._engine.add_object_file(llvm.ObjectFileRef.from_data(lib))
      self._engine.finalize_object()
      self._addr = self._engine.get_function_address(name)
    if not self._addr: raise RuntimeError(f"kernel {name} is not defined in its compiled object")
    # what the renderer recorded about the kernel (see teeny/codegen/llvmir.py)
    info_addr = self._engine.get_global_value_address(f"{name}.info")
    if not info_addr: raise RuntimeError(f"kernel {name} was not rendered by teeny's LLVMRenderer (no {name}.info)")
    self.nbufs, self.nvals, self.ops_per_iter, splittable = (ctypes.c_int64 * 4).from_address(info_addr)
    self.splittable = bool(splittable)
    proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * self.nbufs), *([ctypes.c_int32] * (self.nvals + 2)))
    self._fn = proto(self._addr)

  def __call__(self, *bufs, global_size=(1, 1, 1), local_size=None, vals=(), wait=False, work=None) -> float | None:
    # a wrong argument count would not raise in C: it would read garbage pointers, so check here
    if len(bufs) < self.nbufs or len(vals) != self.nvals:
      raise ValueError(f"kernel {self.name} takes {self.nbufs} buffers and {self.nvals} values, got {len(bufs)} and {len(vals)}")
    bufs, fn, n = bufs[:self.nbufs], self._fn, int(global_size[0])
    if work is None: work = n * self.ops_per_iter
    start = time.perf_counter() if wait else 0.0
    slices = min(self.threads, n) if self.splittable and work >= self.parallel_threshold else 1
    if slices <= 1: fn(*bufs, *vals, 0, n)
    else: self._run_parallel(fn, bufs, vals, n, slices)
    return time.perf_counter() - start if wait else None

  def _run_parallel(self, fn, bufs, vals, n: int, slices: int):
    helpers = _workers()[:slices - 1]
    bounds = [n * i // (len(helpers) + 1) for i in range(len(helpers) + 2)]
    if not _WORKERS_LOCK.acquire(blocking=False):  # another thread's kernel has them: run every slice here
      for i in range(len(helpers) + 1): fn(*bufs, *vals, bounds[i], bounds[i + 1])
      return
    try:
      for i, worker in enumerate(helpers, 1): worker.start(fn, (*bufs, *vals, bounds[i], bounds[i + 1]))
      fn(*bufs, *vals, bounds[0], bounds[1])
      for worker in helpers: worker.wait()
    finally: _WORKERS_LOCK.release()


def _vector_width() -> int:
  """float32 lanes of this CPU's widest vector registers."""
  return 16 if "avx512f" in _HOST_HAS else 8 if "avx" in _HOST_HAS else 4


def open_device(name: str) -> CompiledDevice:
  renderer = LLVMRenderer(libmvec_isa=_libmvec_isa(), vector_width=_vector_width())
  return CompiledDevice(name, CPUAllocator(), renderer=renderer, compiler=LLVMCompiler(),
                        program_cls=LLVMProgram)
