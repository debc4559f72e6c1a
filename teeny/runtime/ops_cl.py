"""The OpenCL backend through pyopencl: a GPU when there is one, else the first device (e.g. PoCL on the CPU).

Launch sizes follow tinygrad: `global_size` counts WORK-GROUPS when `local_size` is given, so the kernel is
enqueued with global = global_size * local_size (per dimension); with local_size=None, global_size is the
number of work-items and the driver picks the work-group size.
"""
from __future__ import annotations
from dataclasses import dataclass
import atexit, gc, threading, weakref
import numpy as np
import pyopencl as cl
from teeny.runtime.device import Allocator, Compiler, CompiledDevice, Program


@dataclass(frozen=True)
class CLDeviceInfo:
  """What the renderer and optimizer may assume about the device (asked of the device, never guessed)."""
  name: str
  is_gpu: bool
  has_fp16: bool
  has_fp64: bool
  max_work_group_size: int
  max_compute_units: int
  max_work_item_sizes: tuple[int, ...]
  local_mem_size: int
  # the widest vectors the hardware computes on, per element type (CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT and _INT;
  # uint shares int's): the renderer emits no wider vector loads and stores than these
  native_vector_width_float: int = 1
  native_vector_width_int: int = 1

  @staticmethod
  def from_device(dev: cl.Device) -> CLDeviceInfo:
    ext = dev.extensions.split()
    return CLDeviceInfo(name=dev.name.strip(), is_gpu=bool(dev.type & cl.device_type.GPU),
                        has_fp16="cl_khr_fp16" in ext, has_fp64="cl_khr_fp64" in ext or "cl_amd_fp64" in ext,
                        max_work_group_size=dev.max_work_group_size, max_compute_units=dev.max_compute_units,
                        max_work_item_sizes=tuple(dev.max_work_item_sizes), local_mem_size=dev.local_mem_size,
                        native_vector_width_float=dev.native_vector_width_float,
                        native_vector_width_int=dev.native_vector_width_int)


def _all_devices() -> list[cl.Device]:
  try: platforms = cl.get_platforms()
  except Exception: return []  # no ICD loader, or no platform installed (pyopencl raises for that)
  devices = []
  for p in platforms:
    try: devices.extend(p.get_devices())
    except Exception: continue  # a platform with no devices raises DEVICE_NOT_FOUND
  return devices


def has_gpu() -> bool:
  """Whether any OpenCL platform offers a GPU. Never raises."""
  try: return any(d.type & cl.device_type.GPU for d in _all_devices())
  except Exception: return False


def _choose_device() -> cl.Device:
  devices = _all_devices()
  if not devices: raise RuntimeError("no OpenCL device found (is an OpenCL driver, e.g. pocl-binary-distribution, installed?)")
  return next((d for d in devices if d.type & cl.device_type.GPU), devices[0])


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
    self.device = ctx.devices[0]
  def _alloc(self, nbytes: int):
    if nbytes > self.device.max_mem_alloc_size: raise _out_of_memory(self.device, nbytes, "more than one buffer may hold")
    try: return cl.Buffer(self.ctx, cl.mem_flags.READ_WRITE, nbytes)
    except cl.Error as e:
      if e.code in _OUT_OF_MEMORY: raise _out_of_memory(self.device, nbytes, e) from None
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
    try: prg.build(devices=[self.device])
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
  """One kernel from a program binary. Arguments: the buffers, then `vals` as int32."""
  memory_estimate = 1300 << 10  # PoCL 3.0 (bench/bench_runner_memory.py): 1.3 MiB for a kernel compiled here,
  memory_estimate_loaded = 128 << 10  # 0.11 MiB for one loaded from the disk cache
  def __init__(self, device: CompiledDevice, name: str, lib: bytes):
    self.device, self.name, self.lib = device, name, lib
    self.queue = device.queue
    try:
      self.program = cl.Program(device.ctx, [device.cl_device], [lib]).build()
      self.kernel = cl.Kernel(self.program, name)
    except cl.Error as e: raise RuntimeError(f"OpenCL could not load kernel {name}: {e}") from None
    self.num_args = self.kernel.get_info(cl.kernel_info.NUM_ARGS)
    self._typed_for = -1  # the number of int values the kernel's argument types were declared for
    self._sizes: dict = {}  # (global_size, local_size) as given -> as enqueued: worked out once, not per launch
    # held from setting the arguments to enqueueing: a cl_kernel's arguments are state on it (clSetKernelArg is the
    # one OpenCL call that isn't thread-safe), so two threads launching it at once could swap their buffers
    self._launch_lock = threading.Lock()
    _live_programs.add(self)

  def __call__(self, *bufs, global_size=(1, 1, 1), local_size=None, vals=(), wait=False) -> float | None:
    # callers may hold more buffers than the kernel declares (inputs it ignores): those are not passed
    nbufs = self.num_args - len(vals)
    if len(bufs) < nbufs: raise ValueError(f"kernel {self.name} takes {nbufs} buffers, got {len(bufs)}")
    sizes = self._sizes.get((global_size, local_size))
    if sizes is None: sizes = self._sizes[(global_size, local_size)] = _enqueue_sizes(global_size, local_size)
    if sizes[0] is None: return 0.0 if wait else None  # an empty launch is an error in OpenCL, and a no-op here
    with self._launch_lock:
      if self._typed_for != len(vals):  # typed arguments let pyopencl set them all in one fast call
        self.kernel.set_scalar_arg_dtypes([None] * nbufs + [np.int32] * len(vals))
        self._typed_for = len(vals)
      self.kernel.set_args(*bufs[:nbufs], *vals)
      try: event = cl.enqueue_nd_range_kernel(self.queue, self.kernel, *sizes)
      except cl.Error as e:  # drivers may only find out at the first launch that a buffer doesn't fit
        if e.code in _OUT_OF_MEMORY: raise MemoryError(f"OpenCL device {self.device.cl_device.name.strip()} ran out of memory running kernel {self.name}: {e}") from None
        raise
    if not wait: return None
    event.wait()
    return (event.profile.end - event.profile.start) * 1e-9


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
    from teeny.codegen.cstyle import OpenCLRenderer
    self.cl_device = _choose_device()
    self.info = CLDeviceInfo.from_device(self.cl_device)
    self.ctx = cl.Context([self.cl_device])
    self.queue = cl.CommandQueue(self.ctx, self.cl_device, properties=cl.command_queue_properties.PROFILING_ENABLE)
    super().__init__(name, CLAllocator(self.ctx, self.queue), renderer=OpenCLRenderer(self.info),
                     compiler=CLCompiler(self.ctx, self.cl_device), program_cls=CLProgram)

  def synchronize(self): self.queue.finish()

  def __repr__(self): return f"<Device {self.name}: {self.info.name}>"


def open_device(name: str) -> CLDevice: return CLDevice(name)
