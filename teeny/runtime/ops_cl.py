"""The OpenCL backend through pyopencl, on any OpenCL device of any platform.

Naming: every device of every platform gets a name `CL:0`, `CL:1`, ... in a stable order (platforms sorted by
name, vendor and version, so the order does not depend on the order the ICD loader happens to list them in; a
platform's devices in the driver's order). `CL` is the default one: `CL_DEVICE=k` (its index), else pyopencl's own
`PYOPENCL_CTX` ("platform:device", as pyopencl counts them), else the first GPU, else CL:0. One physical device has
exactly one canonical name (the default one is always `CL`, so `CL:k` naming it means `CL`): tensors on it share one
context, queue and allocator whatever name they were made with. `describe()` lists them all.

Launch sizes follow tinygrad: `global_size` counts WORK-GROUPS when `local_size` is given, so the kernel is
enqueued with global = global_size * local_size (per dimension); with local_size=None, global_size is the
number of work-items and the driver picks the work-group size.
"""
from __future__ import annotations
from dataclasses import dataclass
import atexit, gc, math, os, threading, weakref
import numpy as np
import pyopencl as cl
from teeny.runtime.device import Allocator, Compiler, CompiledDevice, Program, UnknownDeviceError
from teeny.dtype import DType, dtypes
from teeny.renderer import ProgramSpec
from teeny.renderer.cstyle import OpenCLRenderer


def use_own_pocl_cache(name: str):
  """Gives this process a PoCL kernel cache folder of its own, `name`, inside the one POCL_CACHE_DIR names (or PoCL's
  default); only before PoCL starts. PoCL 3.0 crashes (a segfault in its work-group compiler) when two processes
  fill one empty cache with the same kernels at once (3 of 8 runs of two MPI ranks here). The test suite gives each
  pytest-xdist worker one."""
  default = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "pocl")
  os.environ["POCL_CACHE_DIR"] = os.path.join(os.environ.get("POCL_CACHE_DIR") or default, name)


def _pocl_cache_per_rank():
  """Under MPI, each rank gets a PoCL kernel cache of its own (use_own_pocl_cache), set at import, before PoCL starts."""
  rank = next((os.environ[k] for k in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK") if k in os.environ), None)
  if rank is not None: use_own_pocl_cache(f"rank{rank}")


_pocl_cache_per_rank()


@dataclass(frozen=True)
class CLDeviceInfo:
  """What the renderer (and through it the optimizer) may assume about the device (asked of the device, never
  guessed). OpenCLRenderer reads every field; CLDevice reads has_fp64 and name too."""
  name: str
  is_gpu: bool
  has_fp16: bool
  has_fp64: bool
  max_work_group_size: int
  max_work_item_sizes: tuple[int, ...]
  local_mem_size: int
  # the widest vectors the hardware computes on, per element type (CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT and _INT;
  # uint shares int's): the renderer emits no wider vector loads and stores than these
  native_vector_width_float: int = 1
  native_vector_width_int: int = 1
  # loop iterations one work-item may run in all, on drivers that stop loops silently past a count: Mesa's llvmpipe
  # (under rusticl) ends every kernel's loops after 65,535 iterations in all (LP_MAX_TGSI_LOOP_ITERATIONS)
  max_loop_iterations: int | None = None
  # the float types whose fma() the device computes in hardware (its fp configs' CL_FP_FMA): the renderer fuses
  # accumulator updates with fma() only for these
  fma_dtypes: tuple = ()

  @staticmethod
  def from_device(dev: cl.Device) -> CLDeviceInfo:
    ext = dev.extensions.split()
    return CLDeviceInfo(name=dev.name.strip(), is_gpu=bool(dev.type & cl.device_type.GPU),
                        has_fp16="cl_khr_fp16" in ext, has_fp64="cl_khr_fp64" in ext or "cl_amd_fp64" in ext,
                        max_work_group_size=dev.max_work_group_size,
                        max_work_item_sizes=tuple(dev.max_work_item_sizes), local_mem_size=dev.local_mem_size,
                        native_vector_width_float=dev.native_vector_width_float,
                        native_vector_width_int=dev.native_vector_width_int,
                        max_loop_iterations=_loop_cap(dev), fma_dtypes=_fma_dtypes(dev))


def _fma_dtypes(dev: cl.Device) -> tuple:
  found = []
  for dtype, config in ((dtypes.float32, "single_fp_config"), (dtypes.float64, "double_fp_config")):
    try: flags = getattr(dev, config)
    except cl.Error: continue  # (double_fp_config on a device without float64)
    if flags & cl.device_fp_config.FMA: found.append(dtype)
  return tuple(found)


def _loop_cap(dev: cl.Device) -> int | None:
  if "llvmpipe" in dev.name.lower() and "rusticl" in dev.platform.name.lower(): return 65535
  return None


def _platforms_in_loader_order() -> list:
  try: return cl.get_platforms()
  except Exception: return []  # no ICD loader, or no platform installed (pyopencl raises for that)


def _platform_devices(platform) -> list:
  try: return platform.get_devices()
  except Exception: return []  # a platform with no devices raises DEVICE_NOT_FOUND


_devices_cache: list | None = None


def cl_devices() -> list[cl.Device]:
  """Every OpenCL device of every platform, in naming order (index k is `CL:k`). Asked of the drivers once."""
  global _devices_cache
  if _devices_cache is None:
    def platform_key(p): return (p.name.strip(), p.vendor.strip(), p.version.strip())
    platforms = sorted(_platforms_in_loader_order(), key=platform_key)  # (stable: equal keys keep loader order)
    _devices_cache = [d for p in platforms for d in _platform_devices(p)]
  return _devices_cache


def has_gpu() -> bool:
  """Whether any OpenCL platform offers a GPU. Never raises."""
  try: return any(d.type & cl.device_type.GPU for d in cl_devices())
  except Exception: return False


def _device_line(index: int, dev: cl.Device) -> str:
  kind = "GPU" if dev.type & cl.device_type.GPU else "CPU" if dev.type & cl.device_type.CPU else "accelerator"
  return f"CL:{index} {kind} {dev.name.strip()} on {dev.platform.name.strip()} ({dev.platform.version.strip()})"


def describe() -> list[str]:
  """One line per OpenCL device: its name, kind, device and platform; the default one is marked."""
  devices = cl_devices()
  if not devices: return []
  default = default_index()
  return [_device_line(i, d) + ("  [default: CL]" if i == default else "") for i, d in enumerate(devices)]


def _listing() -> str:
  lines = [_device_line(i, d) for i, d in enumerate(cl_devices())]
  return "the OpenCL devices here are:\n  " + "\n  ".join(lines) if lines else "there is no OpenCL device here"


def _from_pyopencl_ctx(spec: str, devices: list) -> int:
  """PYOPENCL_CTX="p:d" (or "p"): device d (default 0) of platform p, counted as pyopencl counts them (loader
  order); each part is an index or, like pyopencl, a piece of the platform's or device's name."""
  parts = spec.split(":")
  platforms = _platforms_in_loader_order()
  def pick(items, part, what):
    part = part.strip()
    if part.isdigit() and int(part) < len(items): return items[int(part)]
    named = [x for x in items if part and part.lower() in x.name.lower()]
    if named: return named[0]
    raise UnknownDeviceError(f"PYOPENCL_CTX={spec!r}: no OpenCL {what} {part!r}; {_listing()}")
  platform = pick(platforms, parts[0], "platform")
  chosen = pick(_platform_devices(platform), parts[1] if len(parts) > 1 and parts[1].strip() else "0", "device")
  return next(i for i, d in enumerate(devices) if d == chosen)


def default_index() -> int:
  """The index of the device `CL` names: CL_DEVICE, else PYOPENCL_CTX, else the first GPU, else 0."""
  devices = cl_devices()
  if not devices: raise RuntimeError("no OpenCL device found (is an OpenCL driver, e.g. pocl-binary-distribution, installed?)")
  chosen = os.environ.get("CL_DEVICE", "").strip()
  if chosen:
    if not chosen.isdigit() or int(chosen) >= len(devices):
      raise UnknownDeviceError(f"CL_DEVICE={chosen!r} names no OpenCL device (it takes an index, 0 to {len(devices) - 1}); {_listing()}")
    return int(chosen)
  ctx = os.environ.get("PYOPENCL_CTX", "").strip()
  if ctx: return _from_pyopencl_ctx(ctx, devices)
  return next((i for i, d in enumerate(devices) if d.type & cl.device_type.GPU), 0)


def canonical_name(suffix: str) -> str:
  """The canonical name of `CL:<suffix>`: `CL` for the default device, else `CL:k`. Raises UnknownDeviceError,
  listing the devices, for an index that names none."""
  devices = cl_devices()
  if not suffix.isdigit() or int(suffix) >= len(devices):
    raise UnknownDeviceError(f"unknown device 'CL:{suffix}'; {_listing()}")
  index = int(suffix)
  return "CL" if index == default_index() else f"CL:{index}"


def _device_for(name: str) -> cl.Device:
  """The cl.Device a canonical name (`CL` or `CL:k`) stands for."""
  index = default_index() if name == "CL" else int(name.split(":")[1])
  return cl_devices()[index]


_OUT_OF_MEMORY = {cl.status_code.MEM_OBJECT_ALLOCATION_FAILURE, cl.status_code.OUT_OF_RESOURCES,
                  cl.status_code.OUT_OF_HOST_MEMORY, cl.status_code.INVALID_BUFFER_SIZE}


def _out_of_memory(device: cl.Device, nbytes: int, why) -> MemoryError:
  return MemoryError(f"OpenCL device {device.name.strip()} can't allocate {nbytes} bytes "
                     f"({device.global_mem_size} bytes of memory, at most {device.max_mem_alloc_size} in one buffer): {why}")


class CLAllocator(Allocator):
  """cl.Buffer handles. Copies in are blocking too: the caller may reuse its host memory as soon as we return.
  An allocation the device can't make raises MemoryError naming the bytes and the device; nothing else changes."""
  def __init__(self, ctx: cl.Context, queue: cl.CommandQueue):
    super().__init__()
    self.ctx, self.queue = ctx, queue
    self.cl_device = ctx.devices[0]  # (not `device`: Allocator.device is the teeny device name, set when it opens)
  def _alloc(self, nbytes: int):
    if nbytes > self.cl_device.max_mem_alloc_size: raise _out_of_memory(self.cl_device, nbytes, "more than one buffer may hold")
    try: return cl.Buffer(self.ctx, cl.mem_flags.READ_WRITE, nbytes)
    except cl.Error as e:
      if e.code in _OUT_OF_MEMORY: raise _out_of_memory(self.cl_device, nbytes, e) from None
      raise
  def _free(self, handle, nbytes: int): handle.release()
  def copyin(self, dest, src: memoryview):
    if src.nbytes: cl.enqueue_copy(self.queue, dest, src, is_blocking=True)
  def copyout(self, dest: memoryview, src):
    if dest.nbytes: cl.enqueue_copy(self.queue, dest, src, is_blocking=True)


class CLCompiler(Compiler):
  """OpenCL C -> the device's program binary (for PoCL and most GPU drivers, loadable again without the source)."""
  def __init__(self, ctx: cl.Context, device: cl.Device):
    self.ctx, self.device = ctx, device
    self.cache_key = f"cl:{device.platform.name.strip()}:{device.name.strip()}:{device.driver_version.strip()}"

  def compile(self, src: str) -> bytes:
    prg = cl.Program(self.ctx, src)
    # float division correctly rounded, like IEEE and the LLVM backend (OpenCL C's default allows 2.5 ulp)
    try: prg.build(options=["-cl-fp32-correctly-rounded-divide-sqrt"], devices=[self.device])
    except cl.Error as e:
      try: log = prg.get_build_info(self.device, cl.program_build_info.LOG)
      except cl.Error: log = ""
      raise RuntimeError(f"OpenCL build failed:\n{log or e}\n--- source ---\n{src}") from None
    return prg.get_info(cl.program_info.BINARIES)[0]


_live_programs: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _release_programs():
  """Release every kernel and program before the interpreter tears pyopencl down: PoCL aborts the process at exit
  ("still have references to IRs") when programs are still alive while it releases its LLVM context."""
  for prg in list(_live_programs): prg.kernel = prg.program = None
  gc.collect()


class CLProgram(Program):
  """One kernel from a program binary. Arguments: the buffers, then `vals` (typed as ProgramSpec.val_dtypes says)."""
  memory_estimate = 1300 << 10  # PoCL 3.0 (bench/bench_runner_memory.py): 1.3 MiB for a kernel compiled here,
  memory_estimate_loaded = 128 << 10  # 128 KiB for one loaded from the disk cache
  def __init__(self, device: CompiledDevice, spec: ProgramSpec, lib: bytes):
    self.device, self.name, self.lib = device, spec.name, lib
    name = spec.name
    self.queue = device.queue
    try:
      self.program = cl.Program(device.ctx, [device.cl_device], [lib]).build()
      self.kernel = cl.Kernel(self.program, name)
    except cl.Error as e: raise RuntimeError(f"OpenCL could not load kernel {name}: {e}") from None
    self.num_args = self.kernel.get_info(cl.kernel_info.NUM_ARGS)
    # the largest work-group this kernel may run in: the device's limit, or less for a kernel using many registers
    self.max_work_group_size = self.kernel.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, device.cl_device)
    self._typed_for = -1  # the number of values the kernel's argument types were declared for
    self.value_types = [np.dtype(dt.fmt) for dt in spec.val_dtypes]
    self._sizes: dict = {}  # (global_size, local_size) as given -> as enqueued: worked out once, not per launch
    # held from setting the arguments to enqueueing: a cl_kernel's arguments are state on it (clSetKernelArg is the
    # one OpenCL call that isn't thread-safe), so two threads launching it at once could swap their buffers
    self._launch_lock = threading.Lock()
    _live_programs.add(self)

  def __call__(self, *bufs, global_size=(1, 1, 1), local_size=None, vals=(), wait=False) -> float | None:
    # callers may hold more buffers than the kernel declares (inputs it ignores): those are not passed
    nbufs = self.num_args - len(self.value_types)
    if len(bufs) < nbufs: raise ValueError(f"kernel {self.name} takes {nbufs} buffers, got {len(bufs)}")
    if len(vals) != len(self.value_types): raise ValueError(f"kernel {self.name} takes {len(self.value_types)} values, got {len(vals)}")
    sizes = self._sizes.get((global_size, local_size))
    if sizes is None: sizes = self._sizes[(global_size, local_size)] = self._checked_sizes(global_size, local_size)
    if sizes[0] is None: return 0.0 if wait else None  # an empty launch is an error in OpenCL, and a no-op here
    with self._launch_lock:
      if self._typed_for != len(vals):  # typed arguments let pyopencl set them all in one fast call
        self.kernel.set_scalar_arg_dtypes([None] * nbufs + self.value_types)
        self._typed_for = len(vals)
      self.kernel.set_args(*bufs[:nbufs], *vals)
      try: event = cl.enqueue_nd_range_kernel(self.queue, self.kernel, *sizes)
      except cl.Error as e:  # drivers may only find out at the first launch that a buffer doesn't fit
        if e.code in _OUT_OF_MEMORY: raise MemoryError(f"OpenCL device {self.device.cl_device.name.strip()} ran out of memory running kernel {self.name}: {e}") from None
        raise
    if not wait: return None
    event.wait()
    return (event.profile.end - event.profile.start) * 1e-9

  def _checked_sizes(self, global_size, local_size) -> tuple:
    sizes = _enqueue_sizes(global_size, local_size)
    if sizes[1] is not None and math.prod(sizes[1]) > self.max_work_group_size:
      raise RuntimeError(f"kernel {self.name} asks for work-groups of {math.prod(sizes[1])} items {sizes[1]}; on "
                         f"{self.device.cl_device.name.strip()} it runs in at most {self.max_work_group_size}")
    return sizes


def _enqueue_sizes(global_size, local_size) -> tuple:
  """The global and local sizes to enqueue (global counts work-items), or (None, None) for an empty launch."""
  global_size = tuple(int(g) for g in global_size)
  if local_size is not None:
    local_size = tuple(int(l) for l in local_size) + (1,) * (len(global_size) - len(local_size))
    global_size = tuple(g * l for g, l in zip(global_size, local_size))
  return (None, None) if 0 in global_size else (global_size, local_size)


class CLDevice(CompiledDevice):
  """One OpenCL device with its context and an in-order queue (profiling on, for kernel times)."""
  def __init__(self, name: str):
    self.cl_device = _device_for(name)
    self.info = CLDeviceInfo.from_device(self.cl_device)
    self.ctx = cl.Context([self.cl_device])
    self.queue = cl.CommandQueue(self.ctx, self.cl_device, properties=cl.command_queue_properties.PROFILING_ENABLE)
    super().__init__(name, CLAllocator(self.ctx, self.queue), renderer=OpenCLRenderer(self.info),
                     compiler=CLCompiler(self.ctx, self.cl_device), program_cls=CLProgram)
    self._works: str | None = None  # (check_works: None until asked, then "" or why it cannot compile)

  def supports_dtype(self, dtype: DType) -> bool:
    """float64 only with cl_khr_fp64 (fp16 is computed in float32 without cl_khr_fp16, so it always works)."""
    return dtype != dtypes.float64 or self.info.has_fp64

  def synchronize(self): self.queue.finish()

  def check_works(self):
    """Build a one-line kernel once: a driver can open and still fail on every program (PoCL 3.0's LLVM 14
    knows no CPU newer than it and asks for target CPU 'generic', which its clang refuses, on AMD Zen 5)."""
    if self._works is None:
      try:
        self.compiler.compile("__kernel void probe(__global int* out) { out[0] = 1; }")
        self._works = ""
      except RuntimeError as e: self._works = str(e).split("--- source ---")[0].strip().replace("\n", " ")
    if self._works: raise RuntimeError(f"{self.name} ({self.info.name}) opens but cannot compile a kernel: {self._works}")

  def __repr__(self):
    index = f" (CL:{default_index()})" if self.name == "CL" and cl_devices() else ""
    return f"<Device {self.name}{index}: {self.info.name} on {self.cl_device.platform.name.strip()} ({self.cl_device.platform.version.strip()})>"


def open_device(name: str) -> CLDevice: return CLDevice(name)
