"""Collectives across processes: the MPI communicator teeny.distributed sets up (mpi4py, any MPI library behind it:
the `mpich` wheel from PyPI, Open MPI, a cluster's own), and the one collective the engine runs, an allreduce of a
buffer's values through the host. Nothing here runs unless teeny.distributed.init() was called: importing teeny
never imports mpi4py.

Why through the host: MPI moves host memory (a device-aware MPI could take device pointers, but PoCL's and LLVM's
buffers are host memory already, and an OpenCL GPU's are not MPI's to read). One copy out, one Allreduce, one copy
in, per bucket of gradients (teeny.distributed.average_gradients puts many gradients in one buffer first)."""
from __future__ import annotations
import numpy as np

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


def allreduce(values: np.ndarray, op: str) -> np.ndarray:
  """The elementwise `op` (sum, max or min) of `values` over every process, the same array on each of them. The
  buffers are contiguous numpy arrays of a dtype MPI knows (mpi4py maps numpy's; teeny.distributed.allreduce
  reduces the narrow floats in float32)."""
  mpi_op = {"sum": _STATE["MPI"].SUM, "max": _STATE["MPI"].MAX, "min": _STATE["MPI"].MIN}[op] if started() else None
  values = np.ascontiguousarray(values)
  out = np.empty_like(values)
  comm().Allreduce(values, out, op=mpi_op)
  return out
