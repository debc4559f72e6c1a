"""The device layer: the Device registry, Buffer (lazily allocated device memory), and the interfaces every
backend implements (Allocator, Compiler with an on-disk cache, Program). Knows nothing of Tensor or codegen
internals: a backend gets source text from its renderer and runs the compiled result."""
from __future__ import annotations
from collections import OrderedDict
import importlib, os, sys, threading
from typing import Callable
import numpy as np
from teeny.dtype import DType, dtypes
from teeny.helpers import GlobalCounters, debug_level, dprint
from teeny import tracing
from teeny.runtime.disk_cache import disk_cache_get, disk_cache_put  # noqa: F401  (realize and search use them from here)


class Allocator:
  """Raw device memory. Subclasses implement _alloc/_free/copyin/copyout on opaque handles; _alloc raises
  MemoryError when the device is full.

  Freed blocks are not given back at once: they wait in a cache keyed by their exact size and are handed out
  again to the next request of that size, because fresh memory is expensive (first-touch page faults make
  writing into new memory 3x slower than into reused memory on the machines we run on). The cache holds at
  most `cache_limit` bytes; past that, the sizes freed longest ago are released first (LRU), and a failed
  allocation empties it and tries again.

  live_count / live_bytes: blocks handed out now; cached_bytes: freed blocks waiting for reuse. While a trace
  records (teeny/tracing.py), every change of them is a point of the device's memory counter."""
  counts_in_mem_used = True  # whether its blocks are device memory, counted in GlobalCounters.mem_used
  device: str | None = None  # the device it serves (set by CompiledDevice): the process of its trace counter
  host_addressable = False  # whether a handle is a host address kernels read directly (then from_blob can wrap one)
  def __init__(self, cache_limit: int = 1 << 30):
    self.cache_limit = cache_limit
    self.live_count = self.live_bytes = self.cached_bytes = 0
    self._cache: OrderedDict[int, list] = OrderedDict()  # nbytes -> freed handles, least recently freed size first
    # buffers may be freed by the garbage collector on any thread, and on this one while it holds the lock (a
    # collection can start at any allocation inside a critical section): reentrant, so that doesn't deadlock
    self._lock = threading.RLock()

  def alloc(self, nbytes: int):
    nbytes = nbytes or 1  # an empty buffer still gets a handle
    with self._lock:
      handles = self._cache.get(nbytes)
      if handles:  # reuse: the common case, done in one critical section
        handle = handles.pop()
        self.cached_bytes -= nbytes
        if not handles: del self._cache[nbytes]
        self._count_live(nbytes)
        return handle
    try: handle = self._alloc(nbytes)
    except MemoryError:
      self.clear_cache()
      handle = self._alloc(nbytes)
    with self._lock: self._count_live(nbytes)
    return handle

  def _count_live(self, nbytes: int):
    self.live_count += 1
    self.live_bytes += nbytes
    if self.counts_in_mem_used:
      counters = GlobalCounters
      counters.mem_used += nbytes
      if counters.mem_used > counters.peak_mem: counters.peak_mem = counters.mem_used
      if tracing.active: self.trace_memory()

  def free(self, handle, nbytes: int):
    nbytes = nbytes or 1
    with self._lock:
      self.live_count -= 1
      self.live_bytes -= nbytes
      if self.counts_in_mem_used: GlobalCounters.mem_used -= nbytes
      if nbytes > self.cache_limit: evicted = [(handle, nbytes)]
      else:
        handles = self._cache.get(nbytes)
        if handles is None: self._cache[nbytes] = [handle]  # (a new size goes last: most recently freed)
        else:
          handles.append(handle)
          self._cache.move_to_end(nbytes)
        self.cached_bytes += nbytes
        if self.cached_bytes <= self.cache_limit:  # the common case: nothing to give back
          if tracing.active: self.trace_memory()
          return
        evicted = self._evict(self.cache_limit)
      if tracing.active: self.trace_memory()
    for h, n in evicted: self._free(h, n)

  def clear_cache(self):
    """Release every cached block to the device."""
    with self._lock:
      evicted = self._evict(0)
      if tracing.active: self.trace_memory()
    for h, n in evicted: self._free(h, n)

  def trace_memory(self):
    """A point of the trace's memory counter of this device, in MB (called under the lock: points in order)."""
    if self.device is None or not self.counts_in_mem_used: return
    tracing.counter(self.device, "memory (MB)", {"in use": self.live_bytes / 1e6, "cached for reuse": self.cached_bytes / 1e6})

  def _evict(self, limit: int) -> list:
    """Take blocks out of the cache, least recently freed sizes first, until it holds at most `limit` bytes."""
    out = []
    while self.cached_bytes > limit and self._cache:
      nbytes, handles = next(iter(self._cache.items()))
      if handles:
        out.append((handles.pop(0), nbytes))
        self.cached_bytes -= nbytes
      if not handles: self._cache.pop(nbytes, None)  # a free re-entered from the collector may have emptied it
    return out

  def _alloc(self, nbytes: int): raise NotImplementedError
  def _free(self, handle, nbytes: int): pass
  def copyin(self, dest, src: memoryview): raise NotImplementedError
  def copyout(self, dest: memoryview, src): raise NotImplementedError


class HostMemory(Allocator):
  """Host memory for copy-outs: `.numpy()` of a large buffer copies into a block from here, lent to numpy (see
  _LentBlock) and given back when the array is gone, so the next copy-out of that size writes memory that is
  already paged in instead of paying first-touch page faults on fresh memory."""
  counts_in_mem_used = False
  def _alloc(self, nbytes: int) -> np.ndarray: return np.empty(nbytes, np.uint8)


host_memory = HostMemory(cache_limit=256 << 20)
_LEND_FROM = 1 << 20  # below this, malloc's memory is as warm as ours


class _LentBlock:
  """A block of host_memory seen by numpy as an array: numpy keeps this object as the array's base, so when the
  last view of the array is gone, this goes and the block returns to host_memory."""
  def __init__(self, raw: np.ndarray, size: int, np_dtype):
    self.raw = raw
    self.__array_interface__ = {"data": (raw.ctypes.data, False), "shape": (size,), "typestr": np_dtype.str, "version": 3}
  def __del__(self):
    try: host_memory.free(self.raw, self.raw.nbytes)
    except Exception: pass  # at interpreter exit the pool may be gone already


def host_array(size: int, np_dtype) -> np.ndarray:
  """An uninitialized host array of `size` elements, in reused memory when it is large."""
  nbytes = size * np_dtype.itemsize
  if nbytes < _LEND_FROM: return np.empty(size, np_dtype)
  return np.asarray(_LentBlock(host_memory.alloc(nbytes), size, np_dtype))


class Compiler:
  """Turns rendered source into a loadable binary, cached on disk by a hash of (compiler key, source) (see
  teeny/runtime/disk_cache.py: what is in the cache is only used when this user wrote it)."""
  cache_key = "base"
  compiles = 0  # sources compiled here (not found on disk): tells the kernel cache a program was built in-process
  assembly_debug = None  # the DEBUG level at which compile() prints the assembly it made (LLVM: 7), if any
  def compile(self, src: str) -> bytes: raise NotImplementedError

  def compile_cached(self, src: str) -> bytes:
    lib = disk_cache_get(self.cache_key, src)
    if lib is not None and self.assembly_debug is not None and debug_level() >= self.assembly_debug:
      # the cache holds the object only, and the assembly is printed while compiling: compile it again
      dprint(f"DEBUG={debug_level()}: this kernel's object is in the disk cache; compiling it again to show its assembly")
      lib = None
    if lib is not None: return lib
    lib = self.compile(src)
    self.compiles += 1
    disk_cache_put(self.cache_key, src, lib)
    return lib


class Program:
  """A compiled kernel, loaded: `Program(device, spec, lib)` with the ProgramSpec codegen made it from (its name,
  argument counts and what else the backend needs to know) and the compiler's binary. Called with device buffers,
  global/local sizes and the values of its value arguments (ProgramSpec.val_dtypes); returns the kernel's run time in seconds when wait=True.

  memory_estimate: about how many bytes of process memory one loaded program holds besides its binary (the
  driver's or JIT's copy of the code, its bookkeeping) when its source was compiled in this process;
  memory_estimate_loaded: the same for a binary read from the disk cache (PoCL keeps far less then). The kernel
  cache in engine/runner.py bounds its total by these; backends set them from bench/bench_runner_memory.py."""
  memory_estimate = 256 << 10
  memory_estimate_loaded = 256 << 10
  def __call__(self, *bufs, global_size=(1, 1, 1), local_size=None, vals=(), wait=False) -> float | None:
    raise NotImplementedError

  def launcher(self, global_size, local_size=None) -> Callable[..., float | None]:
    """A function launch(*bufs, vals=(), wait=False) that runs this kernel at these sizes. The runtime makes one
    per compiled kernel and calls it for every launch, so a backend may work out what depends on the sizes once, here."""
    def launch(*bufs, vals=(), wait=False):
      return self(*bufs, global_size=global_size, local_size=local_size, vals=vals, wait=wait)
    return launch


class CompiledDevice:
  """A device = allocator + renderer + compiler + program loader. `renderer` is a teeny.renderer Renderer instance;
  `program_cls(device, spec, lib)` loads a compiled kernel."""
  max_kernel_buffers = 128  # arguments (buffers and values) one kernel may take; the scheduler splits kernels that would need more
  def __init__(self, name: str, allocator: Allocator, renderer, compiler: Compiler, program_cls):
    self.name, self.allocator, self.renderer, self.compiler, self.program_cls = name, allocator, renderer, compiler, program_cls
    allocator.device = name
  def supports_dtype(self, dtype: DType) -> bool: return True  # (a backend that may lack one asks its device)
  def check_works(self):
    """Raise RuntimeError, saying why, when this device opened but cannot run kernels (a driver whose compiler
    fails on every program). Device.available() asks this; a device that opens is assumed to work."""
  def synchronize(self): pass
  def __repr__(self): return f"<Device {self.name}>"


class Buffer:
  """`size` elements of `dtype` on `device`. Memory is allocated on first use and freed (to the allocator's
  cache) when garbage collected. A buffer made with `base=` owns no memory: it uses the base's, which must be
  at least as large (the memory planner gives intermediates whose lifetimes don't overlap one base)."""
  # slots: two are made and freed for every realized op, and their fields are read on every launch
  __slots__ = ("device", "size", "dtype", "base", "nbytes", "_handle", "_allocator", "__weakref__")
  def __init__(self, device: str, size: int, dtype: DType, base: Buffer | None = None):
    self._handle = None  # first: __del__ reads it even when __init__ failed part way
    self.device, self.size, self.dtype, self.base = device, size, dtype, base
    self.nbytes = size * dtype.itemsize

  @property
  def is_allocated(self) -> bool: return self._handle is not None

  def ensure_allocated(self) -> Buffer:
    if self._handle is None:
      if self.base is not None:
        self._handle = self.base.ensure_allocated()._handle
        self._allocator = self.base._allocator
        return self
      allocator = _allocators.get(self.device)
      if allocator is None: allocator = _allocators[self.device] = Device[self.device].allocator
      self._allocator = allocator
      self._handle = allocator.alloc(self.nbytes)
    return self

  @property
  def handle(self):
    handle = self._handle  # read for every buffer of every kernel launch: skip the call once allocated
    return handle if handle is not None else self.ensure_allocated()._handle

  def borrow(self, address: int) -> Buffer:
    """Use the memory at a host address instead of allocating (Tensor.from_blob): never freed here, and only on a
    device whose allocator is host_addressable."""
    allocator = Device[self.device].allocator
    if not allocator.host_addressable: raise TypeError(f"device {self.device} can't use host memory in place: its buffers live on the device")
    if self._handle is not None: raise RuntimeError("borrow: the buffer already has memory")
    self._handle, self._allocator = address, _Borrowed(allocator)
    return self

  def copyin(self, data: memoryview) -> Buffer:
    if tracing.active:
      with tracing.span(f"copy host -> {self.device}", "copy", {"bytes": data.nbytes}):
        self.ensure_allocated()._allocator.copyin(self._handle, data)
      return self
    self.ensure_allocated()._allocator.copyin(self._handle, data)
    return self

  def numpy(self) -> np.ndarray:
    out = host_array(self.size, self.dtype.np)
    if not self.size: return out
    if tracing.active:
      with tracing.span(f"copy {self.device} -> host", "copy", {"bytes": self.nbytes}):
        self.ensure_allocated()._allocator.copyout(memoryview(out).cast("B"), self._handle)
      return out
    self.ensure_allocated()._allocator.copyout(memoryview(out).cast("B"), self._handle)
    return out

  def __del__(self):
    if self._handle is not None and self.base is None:
      self._allocator.free(self._handle, self.nbytes)

  def __repr__(self): return f"<Buffer {self.device} {self.size} {self.dtype}{' (planned)' if self.base is not None else ''}>"


class _Borrowed:
  """The allocator of a borrowed buffer: the device's own for copies in and out, but the memory belongs to someone
  else, so freeing it does nothing (without copies, from_blob(...).numpy() raised AttributeError)."""
  def __init__(self, allocator): self.allocator = allocator
  def copyin(self, handle, data: memoryview): self.allocator.copyin(handle, data)
  def copyout(self, dest: memoryview, handle): self.allocator.copyout(dest, handle)
  def free(self, handle, nbytes: int): pass
_FLOAT64 = dtypes.float64
_allocators: dict = {}  # device name -> its allocator: looked up for every buffer allocated


class UnknownDeviceError(ValueError):
  """A device name (or a CL_DEVICE / PYOPENCL_CTX choice) that names no device here; the message lists those that do."""


def check_dtype(device: str, dtype: DType):
  """Raise TypeError when `device` can't hold or compute `dtype` (float64 on an OpenCL device without cl_khr_fp64):
  at the call that asked for it, never silently in float32."""
  if dtype != _FLOAT64: return  # the only dtype a device may lack: every other call returns here
  if type(device) is tuple:  # a sharded tensor's devices: each must have it
    for d in device: check_dtype(d, dtype)
    return
  dev = Device[device]
  if not dev.supports_dtype(dtype):
    raise TypeError(f"device {device} ({dev!r}) has no {dtype}: the device does not report cl_khr_fp64; use float32")


class _DeviceRegistry:
  """Device["CL"] opens (once) and returns a backend; Device.DEFAULT is the device new tensors go to.

  Names: a backend (`CL`, `LLVM`), optionally with an index (`CL:1`). Every name is canonicalized first, so two
  names of one physical device (`CL` and `CL:0` when CL:0 is the default) open one device and its tensors mix.
  `LLVM:1`, `LLVM:2`, ... are further devices on the same CPU (each its own buffers and kernels, like tinygrad's
  CPU:1): how sharding over several devices runs on a machine with one."""
  _BACKENDS = {"CL": "teeny.runtime.ops_cl", "LLVM": "teeny.runtime.ops_llvm"}

  def __init__(self):
    self._opened: dict[str, CompiledDevice] = {}
    self._open_lock = threading.RLock()  # two threads opening a device at once must get the same one
    self._canonical: dict[str, str] = {}  # a name as given -> its canonical name (asking the driver once)

  def canonicalize(self, name: str) -> str:
    if not isinstance(name, str):
      raise TypeError(f"device must be a string like 'CL', 'CL:1' or 'LLVM' (or, for a sharded tensor, a tuple of them), got {name!r}")
    if name in _DeviceRegistry._BACKENDS: return name  # already canonical: the common case, on every tensor made
    known = self._canonical.get(name)
    if known is not None: return known
    base, _, suffix = name.partition(":")
    base = base.upper()
    if base in ("GPU", "OPENCL"): base = "CL"
    if base in ("CPU",): base = "LLVM"
    if base not in _DeviceRegistry._BACKENDS:
      raise UnknownDeviceError(f"unknown device {name!r}; teeny has {', '.join(_DeviceRegistry._BACKENDS)} (and CL:0, CL:1, ... for each OpenCL device)")
    canonical = base if not suffix else self._indexed_name(name, base, suffix.strip())
    self._canonical[name] = canonical
    return canonical

  def _indexed_name(self, name: str, base: str, suffix: str) -> str:
    if base == "LLVM":  # the CPU; LLVM:1, LLVM:2, ... are more devices on it (tinygrad's CPU:1), for sharding
      if suffix.isdigit(): return "LLVM" if int(suffix) == 0 else f"LLVM:{int(suffix)}"
      raise UnknownDeviceError(f"unknown device {name!r}: LLVM devices are LLVM (LLVM:0), LLVM:1, LLVM:2, ...")
    try: module = self._backend(base)
    except ImportError as e: raise UnknownDeviceError(f"unknown device {name!r}: OpenCL is not available here ({e})") from None
    return module.canonical_name(suffix)

  def _backend(self, base: str):
    """The module of backend `base` (`CL`, `LLVM`). A third-party package it needs that is missing is an
    ImportError saying what to install, not a traceback from deep inside the first tensor op."""
    try: return importlib.import_module(self._BACKENDS[base])
    except ModuleNotFoundError as e:
      if e.name is None or e.name.split(".")[0] == "teeny": raise
      raise ImportError(f"device {base} needs the Python package {e.name!r}, which is not installed here: "
                        f"pip install {e.name} (or, in teeny's checkout, pip install -e '.[pocl]')") from e

  def __getitem__(self, name: str) -> CompiledDevice:
    dev = self._opened.get(name)
    if dev is not None: return dev
    name = self.canonicalize(name)
    if name not in self._opened:
      with self._open_lock:
        if name not in self._opened:
          module = self._backend(name.split(":")[0])
          self._opened[name] = module.open_device(name)
          if debug_level() >= 1: dprint(f"opened device {name}: {self._opened[name]!r}")
    return self._opened[name]

  def available(self) -> list[str]:
    """Devices that open and compile a kernel on this machine, one per backend (`CL` is the default OpenCL device;
    tests parametrize over these). describe() lists every device, with its platform. A CL_DEVICE or PYOPENCL_CTX that names no
    device raises UnknownDeviceError: a choice that was asked for is not dropped silently."""
    names = []
    for name in self._BACKENDS:
      try:
        self[name].check_works()
        names.append(name)
      except UnknownDeviceError: raise
      except Exception as e:  # a missing driver or package means that device is not here
        if debug_level() >= 1: dprint(f"device {name} unavailable: {e}")
    if debug_level() >= 1: dprint("devices:\n  " + "\n  ".join(self.describe()))
    return names

  def describe(self) -> list[str]:
    """One line per device on this machine: its name and what it is; for OpenCL every device of every platform,
    with its platform, the default one marked (the names `CL:k` are what `device=` takes)."""
    lines = []
    try: lines.append(f"LLVM {self['LLVM']!r}")
    except Exception as e: lines.append(f"LLVM unavailable: {e}")
    try: lines += self._backend("CL").describe() or ["CL unavailable: no OpenCL device"]
    except UnknownDeviceError: raise
    except Exception as e: lines.append(f"CL unavailable: {e}")
    return lines

  @property
  def DEFAULT(self) -> str:
    if "_default" not in self.__dict__: self._default = self._choose_default()
    return self._default

  @DEFAULT.setter
  def DEFAULT(self, name: str): self._default = self.canonicalize(name)

  def _choose_default(self) -> str:
    if os.environ.get("DEVICE"): return self.canonicalize(os.environ["DEVICE"])
    for name in self._BACKENDS:
      if os.environ.get(name) not in (None, "", "0"): return name
    if not _an_opencl_driver_may_be_installed(): return "LLVM"  # (without importing pyopencl: 65 ms of a first call)
    try:
      if self._backend("CL").has_gpu(): return "CL"
    except Exception: pass
    return "LLVM"


def _an_opencl_driver_may_be_installed() -> bool:
  """False when no OpenCL driver is registered with the system's ICD loader, so the only platform pyopencl could
  find is the PoCL its own wheel bundles, which is a CPU: then there is no GPU to make the default, and the first
  tensor op need not import pyopencl to ask. A GPU driver (NVIDIA's, AMD's, Intel's) registers an .icd file in
  /etc/OpenCL/vendors (or the directory OCL_ICD_VENDORS names), or is named in OCL_ICD_FILENAMES. Linux only:
  elsewhere, ask."""
  if not sys.platform.startswith("linux") or os.environ.get("OCL_ICD_FILENAMES"): return True
  vendors = os.environ.get("OCL_ICD_VENDORS") or "/etc/OpenCL/vendors"
  if not os.path.isdir(vendors): return os.path.exists(vendors)  # (ocl-icd also takes one .icd file here)
  try: return any(name.endswith(".icd") for name in os.listdir(vendors))
  except OSError: return True


Device = _DeviceRegistry()
