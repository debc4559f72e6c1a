"""Data-parallel training over MPI: several processes (on one host or many, started by `mpiexec`), each with its own
copy of the model and its share of every batch, averaging their gradients before each optimizer step.

    from teeny import distributed as dist
    dist.init()                                  # once, first: the process group, each process's share of the CPUs
    dist.broadcast_parameters(model)             # rank 0's weights everywhere (shapes checked on every rank)
    for batch in dist.DistributedSampler(len(data), 64, seed=0):   # this rank's part of each global batch of 64
      loss = model(x[batch]).cross_entropy(y[batch]); loss.backward()
      dist.average_gradients(model)              # the mean over the processes, in a few large buckets
      opt.step()

The transport is MPI (mpi4py, with the `mpich` wheel or any MPI library), an optional extra: `pip install
'teeny[mpi]'`; importing teeny never imports it. An allreduce is a lazy graph node (a COPY with an op, run by the
engine as one MPI Allreduce over the device's buffers: runtime/collective.py), so it fuses into the schedule,
has a gradient (an allreduce of the gradients) and is captured by TinyJit like any copy.

The rule MPI itself has: every process realizes the same collectives in the same order (the same program on each,
as above). A process that realizes an allreduce the others never reach waits for them forever, as with MPI.
BatchNorm keeps its statistics local to each process by default, as PyTorch's DistributedDataParallel does;
`sync_batchnorm(model)` makes it use the statistics of the whole global batch (and then a run on N processes
computes what one process computes on the global batch).
"""
from __future__ import annotations
import os, sys, time, zlib
import numpy as np
from teeny.dtype import dtypes, STORAGE_FLOATS
from teeny.uop import UOp, Ops
from teeny.tensor import Tensor
from teeny.runtime import collective, cpu_pool
from teeny.nn.state import get_state_dict, storage_bits, _children

__all__ = ["init", "is_initialized", "rank", "world_size", "barrier", "allreduce", "broadcast_parameters",
           "average_gradients", "sync_batchnorm", "local_share", "DistributedSampler"]

# ---- the process group ----

def init():
  """Join the process group mpiexec started (a process started on its own is a group of one). Call it first, before
  any kernel runs: it gives this process its share of the host's CPUs for the LLVM worker pool, and makes an
  exception that nothing catches abort every process (MPI_Abort) instead of leaving the others waiting forever."""
  comm = collective.start()
  if getattr(sys.excepthook, "_teeny_aborts", False): return  # (called twice)
  _share_cpus()
  _abort_on_uncaught_exception(comm)


def is_initialized() -> bool: return collective.started()
def rank() -> int:
  """This process's number, 0 .. world_size() - 1."""
  return collective.comm().Get_rank()
def world_size() -> int:
  """How many processes the group has."""
  return collective.comm().Get_size()
def barrier():
  """Wait until every process got here."""
  collective.comm().Barrier()


def _share_cpus():
  """Processes on one host share its CPUs: each gets an equal slice of them (one LLVM worker per CPU of its slice),
  so two processes never fight for one core. A host with fewer CPUs than processes keeps the OS's placement."""
  here, me = collective.on_this_host()
  cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
  if here < 2 or len(cpus) < here: return
  share = len(cpus) // here
  cpu_pool.use_cpus(cpus[me * share:(me + 1) * share])


def _abort_on_uncaught_exception(comm):
  previous = sys.excepthook
  def hook(kind, value, tb):
    previous(kind, value, tb)
    sys.stderr.flush()
    if comm.Get_size() > 1:
      time.sleep(0.5)  # mpiexec forwards the traceback asynchronously: an abort at once can lose it under load
      comm.Abort(1)  # the others may be inside a collective that waits for this process
  hook._teeny_aborts = True
  sys.excepthook = hook

# ---- collectives on tensors ----

def allreduce(t: Tensor, op: str = "sum") -> Tensor:
  """The elementwise sum (or max, min) of t over every process, lazily: a Tensor like t on every process. The
  gradient of a sum flows back as the sum of the gradients. float16, bfloat16 and fp8 are reduced in float32 and
  rounded once."""
  if op not in collective.REDUCE_OPS: raise ValueError(f"allreduce op must be one of {collective.REDUCE_OPS}, got {op!r}")
  collective.comm()  # (a clear error before any graph is built, where init() was not called)
  narrow = _summed_in_float32(t.dtype) or t.dtype == dtypes.bool
  src = t.cast(dtypes.float32 if t.dtype != dtypes.bool else dtypes.int32) if narrow else t
  src = src.contiguous()
  out = src._new(UOp(Ops.COPY, src.dtype, (src.uop,), (src.device, src.device, op)))
  return out.cast(t.dtype) if narrow else out


def _named(obj) -> list[tuple[str, Tensor]]:
  """(name, tensor) of a model, a state dict or a list of tensors ('parameter 3' for the fourth of a list)."""
  if isinstance(obj, Tensor): return [("tensor", obj)]
  if isinstance(obj, (list, tuple)) and all(isinstance(t, Tensor) for t in obj):
    return [(f"parameter {i}", t) for i, t in enumerate(obj)]
  return list(obj.items()) if isinstance(obj, dict) else list(get_state_dict(obj).items())


def _check_same_everywhere(described: list[tuple], what: str):
  """Raise on every process (so none waits for the others) when any process's list of (name, shape, dtype) differs
  from rank 0's, naming the first difference. Every call gathers a checksum of the list (a few bytes); only when
  they differ are the lists themselves gathered."""
  comm = collective.comm()
  if len(set(comm.allgather(zlib.crc32(repr(described).encode())))) == 1: return
  everyone = comm.allgather(described)
  reference = everyone[0]
  for r, theirs in enumerate(everyone[1:], 1):
    if len(theirs) != len(reference):
      raise ValueError(f"{what}: rank {r} has {len(theirs)} tensors, rank 0 has {len(reference)}")
    for mine, first in zip(theirs, reference):
      if mine != first:
        raise ValueError(f"{what}: {mine[0]} is {mine[1:]} on rank {r} but {first[0]} is {first[1:]} on rank 0")


def broadcast_parameters(model, root: int = 0):
  """Every tensor of the model (its state dict: parameters and buffers such as BatchNorm's running statistics)
  set to rank `root`'s values on every process, after checking that every process has the same names, shapes and
  dtypes (a ValueError on every process naming the first that differs)."""
  named = _named(model)
  _check_same_everywhere([(n, tuple(t.shape), t.dtype.name) for n, t in named], "broadcast_parameters")
  comm, writes = collective.comm(), []
  for _, t in named:
    bits = storage_bits(t)
    values = np.array(bits.numpy(), order="C")  # (a copy MPI may write into; 0-d stays 0-d)
    comm.Bcast(values, root=root)
    if comm.Get_rank() != root:
      new = Tensor(values, device=t.device, dtype=bits.dtype)
      writes.append(t.assign(new.bitcast(t.dtype) if bits is not t else new))
  if writes: Tensor.realize_all(*writes)


def average_gradients(model, bucket_bytes: int = 25 << 20):
  """Replace the gradient of every parameter of the model (anything broadcast_parameters takes) that has one with
  its mean over the processes. Small gradients of one device and dtype are flattened into buckets of up to
  `bucket_bytes` (PyTorch's default size, 25 MiB), each one allreduce, so the cost is one MPI call per bucket, not per
  parameter; a gradient of OWN_ALLREDUCE_BYTES (1 MiB) or more is allreduced as it is. Lazy, so it fuses into the
  optimizer step that follows and works inside TinyJit. Each call first checks that every process has the same
  parameters with gradients (names, shapes, dtypes), as broadcast_parameters does."""
  with_grad = [(n, t) for n, t in _named(model) if t.grad is not None]
  _check_same_everywhere([(n, tuple(t.shape), t.grad.dtype.name) for n, t in with_grad], "average_gradients")
  world = world_size()
  for bucket in _buckets([t for _, t in with_grad], bucket_bytes):
    # each process's share (1/world of its gradient, computed by the kernel that makes the gradient) summed, as
    # PyTorch's DistributedDataParallel does: the sum is then the mean, with no kernel after the allreduce
    shares = [_share(t.grad, world) for t in bucket]
    if len(bucket) == 1:
      bucket[0].grad = allreduce(shares[0], "sum").cast(bucket[0].grad.dtype)
      continue
    summed = allreduce(Tensor.cat(*[g.flatten() for g in shares]), "sum")
    offset = 0
    for t in bucket:
      t.grad = summed[offset:offset + t.numel()].reshape(t.shape).cast(t.grad.dtype)
      offset += t.numel()


def _summed_in_float32(dtype) -> bool:
  """Whether allreduce sums this float dtype in float32: float16, bfloat16 and the fp8 kinds."""
  return dtype in STORAGE_FLOATS or dtype == dtypes.float16


def _share(grad: Tensor, world: int) -> Tensor:
  """grad / world, in float32 for the narrow floats (which allreduce sums in float32 anyway)."""
  if world == 1: return grad
  return (grad.float() if _summed_in_float32(grad.dtype) else grad) / world


# a gradient this big is allreduced on its own: flattening it into a bucket would cost a copy as large as the
# allreduce's own traffic, while one more MPI call costs microseconds (bench_distributed's MLP, whose two big
# weights are 1.6 and 1 MiB: one process 4.8 -> 3.7-4.1 ms a step, two processes' scaling 1.60x -> 1.62-1.69x)
OWN_ALLREDUCE_BYTES = 1 << 20


def _buckets(tensors: list[Tensor], bucket_bytes: int) -> list[list[Tensor]]:
  """Tensors grouped by (device, gradient dtype), in order, each group cut where it would pass bucket_bytes; a
  gradient of OWN_ALLREDUCE_BYTES or more is a bucket of its own."""
  alone, filling, full = [], {}, []  # filling: (device, dtype) -> (its open bucket, that bucket's bytes)
  for t in tensors:
    nbytes = t.numel() * t.grad.dtype.itemsize
    if nbytes >= OWN_ALLREDUCE_BYTES:
      alone.append([t])
      continue
    key = (t.device, t.grad.dtype)
    bucket, used = filling.get(key, ([], 0))
    if bucket and used + nbytes > bucket_bytes:
      full.append(bucket)
      bucket, used = [], 0
    bucket.append(t)
    filling[key] = (bucket, used + nbytes)
  return alone + full + [bucket for bucket, _ in filling.values()]

# ---- BatchNorm over the global batch ----

class _GlobalBatch:
  """What a synchronized BatchNorm asks of the process group: sums and counts over every process's batch."""
  def sum(self, t: Tensor) -> Tensor: return allreduce(t, "sum")
  def count(self, n: int) -> int: return collective.comm().allreduce(n)


def sync_batchnorm(model) -> int:
  """Make every BatchNorm inside the model normalize by the mean and variance of the global batch (every process's
  part of it), like PyTorch's SyncBatchNorm; its running statistics then are the same on every process. Returns how
  many it changed."""
  changed, seen, stack = 0, set(), [model]
  while stack:
    obj = stack.pop()
    if id(obj) in seen or isinstance(obj, Tensor): continue
    seen.add(id(obj))
    if hasattr(obj, "batch_statistics_over"):
      obj.batch_statistics_over = _GlobalBatch()
      changed += 1
    stack.extend(child for _, child in _children(obj, ""))
  return changed

# ---- data ----

def local_share(batch) -> np.ndarray:
  """This process's part of a global batch (an array of sample indices): the batch cut into world_size() equal
  parts, in rank order. Same data, same seed, same global batches on every process: each trains on its part."""
  batch, world = np.asarray(batch), world_size()
  if len(batch) % world: raise ValueError(f"a global batch of {len(batch)} does not split evenly over {world} processes")
  per = len(batch) // world
  return batch[rank() * per:(rank() + 1) * per]


class DistributedSampler:
  """The sample indices of this process's share of every global batch: an epoch is a permutation of range(size)
  (the same on every process: from seed and epoch), cut into global batches of batch_size (a last partial batch
  is dropped), each split over the processes by local_share. set_epoch(e) before each epoch gives a new order."""
  def __init__(self, size: int, batch_size: int, shuffle: bool = True, seed: int = 0):
    if batch_size % world_size():
      raise ValueError(f"a global batch of {batch_size} does not split evenly over {world_size()} processes")
    self.size, self.batch_size, self.shuffle, self.seed, self.epoch = size, batch_size, shuffle, seed, 0
  def set_epoch(self, epoch: int): self.epoch = epoch
  def __len__(self) -> int: return self.size // self.batch_size
  def __iter__(self):
    order = np.random.default_rng((self.seed, self.epoch)).permutation(self.size) if self.shuffle else np.arange(self.size)
    for i in range(len(self)): yield local_share(order[i * self.batch_size:(i + 1) * self.batch_size])
