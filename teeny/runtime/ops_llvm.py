"""The LLVM CPU backend: host memory, LLVM IR -> object file with llvmlite (O3, tuned for this CPU), and a loader
that runs kernels on all cores.

Calling convention: the kernel `name(buffers..., int32 vals..., int64 core_start, int64 core_end)` and its
`name.packed` entry, as teeny/renderer/llvmir.py documents and writes them. The runtime splits the outermost loop's range [0, global_size[0]) into one slice per core and calls the function
for each slice on a persistent pool of worker threads (native code on x86-64 Linux, see _NativePool; no GIL held
while slices run). Small kernels run in the calling thread: handing over a slice costs more than they do.
"""
from __future__ import annotations
import _thread, ctypes, ctypes.util, hashlib, os, re, struct, sys, threading, time
import numpy as np
import llvmlite
import llvmlite.binding as llvm
from teeny.renderer import ProgramSpec
from teeny.renderer.llvmir import LLVMRenderer
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
    if src.nbytes: _copy(dest, np.frombuffer(src, np.uint8).ctypes.data, src.nbytes)

  def copyout(self, dest: memoryview, src: int):
    dst = np.frombuffer(dest, np.uint8)  # raises on a read-only destination, as it should
    if dst.nbytes: _copy(dst.ctypes.data, src, dst.nbytes)

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
    with _LLVM_LOCK:
      try:
        mod = llvm.parse_assembly(src)
        mod.verify()
      except RuntimeError as e:
        raise RuntimeError(f"LLVM rejected the IR: {e}") from None  # (the caller names the kernel)
      mod.triple, mod.data_layout = self._tm.triple, str(self._tm.target_data)
      pto = llvm.create_pipeline_tuning_options(speed_level=3)
      pto.slp_vectorization = True  # off by default in llvmlite's options; clang's -O3 has it
      pb = llvm.create_pass_builder(self._tm, pto)
      pb.getModulePassManager().run(mod, pb)
      if debug_level() >= 7: dprint(self._tm.emit_assembly(mod))
      return self._tm.emit_object(mod)


# ---- running ----

def _cpu_count() -> int:
  try: return len(os.sched_getaffinity(0))
  except AttributeError: return os.cpu_count() or 1


# A kernel split across cores runs its slices on worker threads that live in native code: each spins on its control
# block for a while after its last slice, then sleeps in the kernel (futex) until woken. Waking a sleeping virtual CPU
# costs 50-100 us on the VM we measure on, and a woken core that goes back to sleep between kernels can make a split
# kernel as slow as one core for many calls in a row; a worker that is still spinning starts a slice in well under a
# microsecond. Neither side holds the GIL: the caller's one ctypes call posts the slices, runs its own and waits.
# A slice that no worker has taken by the time the caller finished its own, the caller takes and runs itself: a
# worker without a core (busy with other threads, or queued behind the caller on the caller's own) then costs the
# time of its slice, not a time slice of the kernel's scheduler (a 1024x1024 row-sum took 1.9 ms instead of 0.1 in
# such bench runs).
#
# Control block of one worker (its own 128 bytes, so the two sides don't share a cache line pair):
#   0: i32 go        generation of the last posted slice; the caller increments it to post one
#   4: i32 sleeping  1 while the worker sleeps in futex_wait on `go`
#   8: ptr fn        the kernel's packed entry: fn(ptr args, i64 start, i64 end)
#  16: ptr args      its i64 argument slots
#  24: i64 start, 32: i64 end (64-bit: a loop may pass 2^31 iterations)
#  40: i32 taken     generation of the last slice someone started (swapped in by the worker, or by the caller)
#  64: i32 done      generation of the last finished slice (the worker's own cache line)
_CTRL_BYTES = 128
_SPIN_CYCLES = 1 << 22  # time-stamp counter ticks a worker spins before it sleeps: about 1-2 ms at 2-4 GHz
_FUTEX_WAIT_PRIVATE, _FUTEX_WAKE_PRIVATE, _SYS_FUTEX_X86_64 = 128, 129, 202
_COPY_PAGE = 4096  # copies split across cores are cut at multiples of this many bytes

_POOL_IR = f"""
declare i64 @syscall(i64, ...)
declare void @llvm.x86.sse2.pause()
declare i64 @llvm.readcyclecounter()

define void @teeny_worker(ptr %c) {{
entry:
  %sleeping = getelementptr i8, ptr %c, i64 4
  br label %idle
idle:                                   ; waiting for generation != %seen
  ; it starts from generation 0, not from what `go` holds when the thread gets going: the first slice may have
  ; been posted before that
  %seen = phi i32 [ 0, %entry ], [ %posted, %run ], [ %seen, %woke ]
  %t0 = call i64 @llvm.readcyclecounter()
  br label %spin
spin:
  %posted = load atomic i32, ptr %c acquire, align 4
  %has_job = icmp ne i32 %posted, %seen
  br i1 %has_job, label %run, label %pause
pause:
  call void @llvm.x86.sse2.pause()
  %t = call i64 @llvm.readcyclecounter()
  %spun = sub i64 %t, %t0
  %tired = icmp ugt i64 %spun, {_SPIN_CYCLES}
  br i1 %tired, label %sleep, label %spin
sleep:                                  ; announce the sleep, then look once more (the caller does the mirror image)
  store atomic i32 1, ptr %sleeping seq_cst, align 4
  %again = load atomic i32, ptr %c seq_cst, align 4
  %nothing = icmp eq i32 %again, %seen
  br i1 %nothing, label %futex, label %woke
futex:                                  ; returns at once if `go` is no longer %seen
  %seen64 = zext i32 %seen to i64
  %r = call i64 (i64, ...) @syscall(i64 {_SYS_FUTEX_X86_64}, ptr %c, i64 {_FUTEX_WAIT_PRIVATE}, i64 %seen64, ptr null)
  br label %woke
woke:
  store atomic i32 0, ptr %sleeping seq_cst, align 4
  br label %idle
run:                                    ; (unless the caller took the slice already: then it ran it too)
  %ran = call i1 @teeny_take_slice(ptr %c, i32 %posted)
  br label %idle
}}

; the slice of generation %gen posted in control block %c, run here if no one took it yet: whether it ran here
define i1 @teeny_take_slice(ptr %c, i32 %gen) {{
entry:
  %takenp = getelementptr i8, ptr %c, i64 40
  %before = atomicrmw xchg ptr %takenp, i32 %gen seq_cst, align 4
  %free = icmp ne i32 %before, %gen
  br i1 %free, label %take, label %done
take:
  %fnp = getelementptr i8, ptr %c, i64 8
  %argsp = getelementptr i8, ptr %c, i64 16
  %startp = getelementptr i8, ptr %c, i64 24
  %endp = getelementptr i8, ptr %c, i64 32
  %donep = getelementptr i8, ptr %c, i64 64
  %fn = load ptr, ptr %fnp, align 8
  %args = load ptr, ptr %argsp, align 8
  %start = load i64, ptr %startp, align 8
  %end = load i64, ptr %endp, align 8
  call void %fn(ptr %args, i64 %start, i64 %end)
  store atomic i32 %gen, ptr %donep release, align 4
  br label %done
done:
  ret i1 %free
}}

; split [0, n) into %helpers + 1 slices: post slices 1.. to the workers, run slice 0 here, wait for the workers
define void @teeny_run_split(ptr %ctrls, i32 %helpers, ptr %fn, ptr %args, i64 %n64) {{
entry:
  %parts32 = add i32 %helpers, 1
  %parts = sext i32 %parts32 to i64
  %first_end = sdiv i64 %n64, %parts
  %any = icmp sgt i32 %helpers, 0
  br i1 %any, label %post, label %mine
post:
  %w = phi i32 [ 0, %entry ], [ %w1, %posted ]
  %w64 = sext i32 %w to i64
  %cw = getelementptr [{_CTRL_BYTES} x i8], ptr %ctrls, i64 %w64
  %lo_part = add i64 %w64, 1
  %hi_part = add i64 %w64, 2
  %lo_num = mul i64 %n64, %lo_part
  %hi_num = mul i64 %n64, %hi_part
  %lo = sdiv i64 %lo_num, %parts
  %hi = sdiv i64 %hi_num, %parts
  %fnp = getelementptr i8, ptr %cw, i64 8
  %argsp = getelementptr i8, ptr %cw, i64 16
  %startp = getelementptr i8, ptr %cw, i64 24
  %endp = getelementptr i8, ptr %cw, i64 32
  store ptr %fn, ptr %fnp, align 8
  store ptr %args, ptr %argsp, align 8
  store i64 %lo, ptr %startp, align 8
  store i64 %hi, ptr %endp, align 8
  %gen = load atomic i32, ptr %cw monotonic, align 4
  %next = add i32 %gen, 1
  store atomic i32 %next, ptr %cw seq_cst, align 4
  %sleepingp = getelementptr i8, ptr %cw, i64 4
  %asleep = load atomic i32, ptr %sleepingp seq_cst, align 4
  %must_wake = icmp ne i32 %asleep, 0
  br i1 %must_wake, label %wake, label %posted
wake:
  %r = call i64 (i64, ...) @syscall(i64 {_SYS_FUTEX_X86_64}, ptr %cw, i64 {_FUTEX_WAKE_PRIVATE}, i64 1)
  br label %posted
posted:
  %w1 = add i32 %w, 1
  %more = icmp slt i32 %w1, %helpers
  br i1 %more, label %post, label %mine
mine:
  call void %fn(ptr %args, i64 0, i64 %first_end)
  br i1 %any, label %wait, label %done
wait:
  %v = phi i32 [ 0, %mine ], [ %v1, %finished ]
  %v64 = sext i32 %v to i64
  %cv = getelementptr [{_CTRL_BYTES} x i8], ptr %ctrls, i64 %v64
  %want = load atomic i32, ptr %cv monotonic, align 4
  %donep = getelementptr i8, ptr %cv, i64 64
  %finished_already = load atomic i32, ptr %donep acquire, align 4
  %is_done = icmp eq i32 %finished_already, %want
  br i1 %is_done, label %finished, label %try_take
try_take:                               ; a slice its worker hasn't started: run it here
  %took = call i1 @teeny_take_slice(ptr %cv, i32 %want)
  br i1 %took, label %finished, label %check
check:
  %got = load atomic i32, ptr %donep acquire, align 4
  %ready = icmp eq i32 %got, %want
  br i1 %ready, label %finished, label %relax
relax:
  call void @llvm.x86.sse2.pause()
  br label %check
finished:
  %v1 = add i32 %v, 1
  %more_wait = icmp slt i32 %v1, %helpers
  br i1 %more_wait, label %wait, label %done
done:
  ret void
}}

; a packed entry like a kernel's, for copies: args = [dst, src, nbytes]; copies pages [start, end) of 4096 bytes
define void @teeny_copy_pages(ptr %args, i64 %start64, i64 %end64) {{
entry:
  %dst = load ptr, ptr %args, align 8
  %srcp = getelementptr i64, ptr %args, i64 1
  %src = load ptr, ptr %srcp, align 8
  %nbytesp = getelementptr i64, ptr %args, i64 2
  %nbytes = load i64, ptr %nbytesp, align 8
  %lo = mul i64 %start64, {_COPY_PAGE}
  %hi_pages = mul i64 %end64, {_COPY_PAGE}
  %hi = call i64 @llvm.umin.i64(i64 %hi_pages, i64 %nbytes)
  %any = icmp ult i64 %lo, %hi
  br i1 %any, label %copy, label %done
copy:
  %len = sub i64 %hi, %lo
  %d = getelementptr i8, ptr %dst, i64 %lo
  %s = getelementptr i8, ptr %src, i64 %lo
  call void @llvm.memcpy.p0.p0.i64(ptr %d, ptr %s, i64 %len, i1 false)
  br label %done
done:
  ret void
}}
declare i64 @llvm.umin.i64(i64, i64)
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
"""


class _NativePool:
  """`helpers` worker threads that run slices of kernels and of large copies (see above). Built on first use;
  x86-64 Linux only (it spins with the time-stamp counter and sleeps with futex), elsewhere `_PythonPool` does
  the same work."""
  def __init__(self, helpers: int):
    with _LLVM_LOCK:
      mod = llvm.parse_assembly(_POOL_IR)
      mod.verify()
      self._engine = llvm.create_mcjit_compiler(mod, _target_machine(jit=True))
      self._engine.finalize_object()
      run_addr = self._engine.get_function_address("teeny_run_split")
      worker_addr = self._engine.get_function_address("teeny_worker")
      self._copy_pages = self._engine.get_function_address("teeny_copy_pages")
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

  def run(self, program: "LLVMProgram", bufs, vals, n: int, slices: int):
    args = (ctypes.c_int64 * (len(bufs) + len(vals)))(*bufs, *vals)
    self._run(self.ctrls, slices - 1, program._packed, args, n)

  def copy(self, dst: int, src: int, nbytes: int, slices: int):
    args = (ctypes.c_int64 * 3)(dst, src, nbytes)
    self._run(self.ctrls, slices - 1, self._copy_pages, args, -(-nbytes // _COPY_PAGE))


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

  def run(self, program: "LLVMProgram", bufs, vals, n: int, slices: int):
    bounds = [n * i // slices for i in range(slices + 1)]
    self._split([(program._fn, (*bufs, *vals, bounds[i], bounds[i + 1])) for i in range(slices)])

  def copy(self, dst: int, src: int, nbytes: int, slices: int):
    pages = -(-nbytes // _COPY_PAGE)
    bounds = [min(nbytes, pages * i // slices * _COPY_PAGE) for i in range(slices + 1)]
    self._split([(ctypes.memmove, (dst + lo, src + lo, hi - lo)) for lo, hi in zip(bounds, bounds[1:])])

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
        helpers = max(1, _cpu_count() - 1)  # the calling thread runs one slice itself
        _POOL.append(_NativePool(helpers) if _native_pool_runs_here() else _PythonPool(helpers))
  return _POOL[0]


PARALLEL_COPY_BYTES = 4 << 20  # copies in and out of this size or more run on every core


def _copy(dst: int, src: int, nbytes: int):
  """memmove, split across the cores when large: one core copies 64 MiB at 9-10 GB/s here, two at 21 GB/s."""
  slices = min(_cpu_count(), -(-nbytes // _COPY_PAGE))
  if nbytes < PARALLEL_COPY_BYTES or slices < 2:
    ctypes.memmove(dst, src, nbytes)
    return
  pool = _pool()
  if not _POOL_LOCK.acquire(blocking=False):  # another thread has the workers
    ctypes.memmove(dst, src, nbytes)
    return
  try: pool.copy(dst, src, nbytes, min(slices, pool.helpers + 1))
  finally: _POOL_LOCK.release()


def _forget_pool_in_child():
  # a forked child has none of the parent's threads: a pool it inherited would wait forever for them
  _POOL.clear()
  global _POOL_LOCK, _POOL_MADE_LOCK
  _POOL_LOCK, _POOL_MADE_LOCK = threading.Lock(), threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)


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

  A call covers the outermost loop's range [0, global_size[0]). It is split across cores only when codegen found
  the kernel splittable (ProgramSpec.splittable) and the work is worth waking a worker: `work` (a keyword of
  __call__) is the kernel's total operation count; when not given it is global_size[0] times the per-iteration
  count codegen worked out (ProgramSpec.ops_per_iter). Below `parallel_threshold` the kernel runs in the
  calling thread. Measured here with the native pool's workers spinning (one thread / split, us): a 256x512 relu
  26 / 21, x @ w.T with 10 outputs 26 / 22, a 256-row sum over 256 7.8 / 12.3. A worker that already sleeps costs
  50-100 us more to wake (the hypervisor wakes its virtual CPU), but only on the first kernel after an idle spell."""
  parallel_threshold = 1 << 19
  threads = _cpu_count()
  memory_estimate = memory_estimate_loaded = 64 << 10  # its MCJIT engine: 20-50 KiB (bench/bench_runner_memory.py)

  def __init__(self, device, spec: ProgramSpec, lib: bytes):
    self.device, self.name, self.lib = device, spec.name, lib
    self.nbufs, self.nvals, self.ops_per_iter, self.splittable = spec.n_bufs, spec.n_vals, spec.ops_per_iter, spec.splittable
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
    proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * self.nbufs), *([ctypes.c_int32] * self.nvals), ctypes.c_int64, ctypes.c_int64)
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

  def launcher(self, global_size, local_size=None):
    """__call__ without keyword parsing, for kernels without values: the range and the work are fixed once here,
    the split threshold is read per call (tests lower it)."""
    if self.nvals: return super().launcher(global_size, local_size)
    fn, nbufs, n = self._fn, self.nbufs, int(global_size[0])
    work, splittable = n * self.ops_per_iter, self.splittable and min(self.threads, n) > 1
    def launch(*bufs, wait=False):
      if len(bufs) < nbufs: raise ValueError(f"kernel {self.name} takes {nbufs} buffers, got {len(bufs)}")
      if len(bufs) > nbufs: bufs = bufs[:nbufs]
      start = time.perf_counter() if wait else 0.0
      if splittable and work >= self.parallel_threshold: self._run_parallel(fn, bufs, (), n, min(self.threads, n))
      else: fn(*bufs, 0, n)
      return time.perf_counter() - start if wait else None
    return launch

  def _run_parallel(self, fn, bufs, vals, n: int, slices: int):
    pool = _pool()
    slices = min(slices, pool.helpers + 1)
    if not _POOL_LOCK.acquire(blocking=False):  # another thread's kernel has the workers: run every slice here
      fn(*bufs, *vals, 0, n)
      return
    try: pool.run(self, bufs, vals, n, slices)
    finally: _POOL_LOCK.release()


def _vector_width() -> int:
  """float32 lanes of this CPU's widest vector registers."""
  return 16 if "avx512f" in _HOST_HAS else 8 if "avx" in _HOST_HAS else 4


def open_device(name: str) -> CompiledDevice:
  renderer = LLVMRenderer(libmvec_isa=_libmvec_isa(), vector_width=_vector_width())
  return CompiledDevice(name, CPUAllocator(), renderer=renderer, compiler=LLVMCompiler(),
                        program_cls=LLVMProgram)
