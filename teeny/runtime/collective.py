"""Collectives across processes: the MPI communicator teeny.distributed sets up (mpi4py, any MPI library behind it:
the `mpich` wheel from PyPI, Open MPI, a cluster's own), and the one collective the engine runs, an allreduce of a
buffer's values. Nothing here runs unless teeny.distributed.init() was called: importing teeny
never imports mpi4py.

MPI moves host memory. A device whose buffers are host memory (LLVM's: the allocator is host_addressable) hands
MPI its buffers in place; any other (OpenCL) goes through the host: one copy out, one Allreduce, one copy in. Either
way one MPI call per allreduce (teeny.distributed.average_gradients puts many small gradients in one buffer first)."""
from __future__ import annotations
import ctypes
import numpy as np
from teeny.runtime.device import Buffer, Device

REDUCE_OPS = ("sum", "max", "min")
_STATE: dict = {}  # "comm": the communicator (MPI.COMM_WORLD), "MPI": the mpi4py.MPI module


def start():
  """The communicator of every process mpiexec started (made once). A process started without mpiexec is a world
  of one (MPI's singleton start)."""
  if "comm" not in _STATE:
    try: from mpi4py import MPI
    except ImportError as e:
      raise ImportError("teeny.distributed needs mpi4py and an MPI library: pip install 'teeny[mpi]' "
                        f"(mpi4py and the mpich wheel) ({e})") from None
    _STATE["MPI"], _STATE["comm"] = MPI, MPI.COMM_WORLD
  return _STATE["comm"]


def started() -> bool: return "comm" in _STATE


def comm():
  """The communicator; a clear error where teeny.distributed.init() was not called."""
  if "comm" not in _STATE:
    raise RuntimeError("no process group: call teeny.distributed.init() first (and run under mpiexec for several processes)")
  return _STATE["comm"]


def on_this_host() -> tuple[int, int]:
  """(how many processes of the group run on this host, this process's number among them)."""
  local = comm().Split_type(_STATE["MPI"].COMM_TYPE_SHARED)
  here = (local.Get_size(), local.Get_rank())
  local.Free()
  return here


def allreduce_buffer(dst: Buffer, src: Buffer, op: str):
  """dst = the elementwise `op` of src over every process (the engine's COPY with an op)."""
  if not src.size: return
  if src.device == dst.device and Device[src.device].allocator.host_addressable:
    comm().Allreduce(_in_place(src), _in_place(dst), op=_mpi_op(op))
  else: dst.copyin(memoryview(allreduce(src.numpy(), op)).cast("B"))


def _in_place(buf: Buffer) -> np.ndarray:
  """A numpy array over a host-addressable buffer's own memory (no copy)."""
  raw = (ctypes.c_uint8 * buf.nbytes).from_address(buf.handle)
  return np.frombuffer(raw, dtype=buf.dtype.np, count=buf.size)


def _mpi_op(op: str):
  MPI = _STATE["MPI"]
  return {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]


def allreduce(values: np.ndarray, op: str) -> np.ndarray:
  """The elementwise `op` (sum, max or min) of `values` over every process, the same array on each of them. The
  buffers are contiguous numpy arrays of a dtype MPI knows (mpi4py maps numpy's; teeny.distributed.allreduce
  reduces the narrow floats in float32)."""
  values = np.ascontiguousarray(values)
  out = np.empty_like(values)
  comm().Allreduce(values, out, op=_mpi_op(op))
  return out
