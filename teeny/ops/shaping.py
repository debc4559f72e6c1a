"""Graph shaping for speed: where Tensor's ops build a different graph of the same values because it runs faster.
A long sum is split into partial sums (more parallel work, and float accumulators that never add too many terms),
a sum over a big product is cut into slices whose inputs stay in cache, a matmul's narrow right operand and a
convolution's filters are copied first to the layout the kernel optimizer vectorizes, and a cat of many pieces is
joined in groups. The thresholds are the device's (its renderer's Tuning, teeny/renderer/tuning.py, which names
the benchmark behind each). The functions take tensors as they come (duck-typed: shape, dtype, numel(), uop, device,
and the movement and reduce methods); this module does not import teeny/tensor.py.

It shapes the graph Tensor's ops build, so gradient graphs get only what their forward ops chose: moving it into
the scheduler as a rewrite of REDUCE_AXIS (so it would shape every graph) is open work (docs/DESIGN.md)."""
from __future__ import annotations
import math
from teeny.dtype import dtypes
from teeny.uop import Ops
from teeny.renderer.tuning import Tuning
from teeny.runtime.device import Device


def tuning_of(device: str) -> Tuning:
  """The tuned numbers of the device a tensor lives on."""
  return Device[device].renderer.tuning


def _wants_reduce_contiguous(a, b) -> bool:
  """Whether a @ b runs faster with b copied to column-major: x @ w with w of shape (512, 10) (a classifier). The
  kernel's outputs along w's 10 columns are too few to fill a vector, so the optimizer's tile then vectorizes
  along k, which needs both operands contiguous along k; the copy is one small kernel, and the backward pass
  reads the copy too (w.T of the gradient becomes a contiguous read). A b that is a transpose already (x @ w.T)
  is column-major: left as it is."""
  k, n, tuning = b.shape[-2], b.shape[-1], tuning_of(b.device)
  if n > tuning.matmul_relayout_max_n or k < tuning.matmul_relayout_min_k or b.uop.op is Ops.PERMUTE: return False
  return math.prod(a.shape[:-1]) * k * n >= tuning.matmul_relayout_min_work


def _wants_filter_relayout(device: str, cout: int, multiply_adds: int) -> bool:
  """Whether conv2d copies its filters (cout of them) with the output channel innermost first: a convolution of at
  least Tuning.conv_relayout_min_work multiply-adds into at least conv_relayout_min_cout channels."""
  tuning = tuning_of(device)
  return cout >= tuning.conv_relayout_min_cout and multiply_adds >= tuning.conv_relayout_min_work


# A sum of at least Tuning.split_min_reduced elements into at most split_max_outputs results is done in two kernels
# (_split_reduce): one output per thread or core would leave the rest of the machine idle. And no float
# accumulator adds more than split_max_chunk terms, whatever the number of outputs: a device that adds a sum's
# terms one after another (OpenCL on a CPU: one work-item per partial sum) would otherwise lose them once the
# sum outgrows them (float32 stops growing at 2^24 when adding values below 1). Longer sums add partial sums of
# at most split_max_chunk terms, and those the same way (more levels for sums past split_max_chunk^2 terms).


def _reduce_split(x, op: Ops, axes: tuple[int, ...]) -> int | None:
  """How many partial results per output a sum should be split into, or None to keep it one kernel. A length
  that no good count divides is padded with zeros (_split_reduce). Only sums split: a max's gradient
  splits evenly between ties, which two stages would weigh by chunk."""
  if op is not Ops.ADD: return None
  n_reduced, tuning = math.prod(x.shape[a] for a in axes), tuning_of(x.device)
  bounded = -(-n_reduced // tuning.split_max_chunk) if dtypes.is_float(x.dtype) else 1  # no partial too long
  if n_reduced < tuning.split_min_reduced or x.numel() // max(n_reduced, 1) > tuning.split_max_outputs:
    return bounded if bounded > 1 else None  # many outputs: parallel already, split only what is too long
  split = 256  # a count that divides the length, at least 256 terms each, when there is one (no padding)
  while split > 1 and (n_reduced % split or n_reduced // split < 256): split //= 2
  if split < 8: split = min(256, n_reduced // 256)
  return max(split, bounded)


# A sum over one axis of at least Tuning.chunk_min_reduced elements, of a broadcast product of at least
# chunk_min_product elements (a big matmul: its inputs are far larger than a core's cache), is done in slices of
# chunk_size along that axis (_chunked_reduce), as many as keep the partial results within chunk_max_bytes.
# A smaller product (of at least slice_min_product elements) is sliced too when each row of outputs reads more than
# slice_max_bytes of it: the reduce axis times the axes inside it, a matmul's whole right-hand matrix. A core works
# through its rows of outputs one after another, and once that matrix outgrows its share of the L2 cache every row
# streams it again from farther away: 256x784 @ 784x512 (1.6 MB) ran at 150 GFLOP/s where 512 columns of 512 (1 MB)
# ran at 245. Slices of at most slice_target_bytes each, the fewest that divide the axis: 208 GFLOP/s there.


def _reduce_chunks(x, op: Ops, axes: tuple[int, ...]) -> int | None:
  """How many slices a long sum over a big product is split into, or None (see _reduce_split for why sums only)."""
  if op is not Ops.ADD or x.dtype == dtypes.float16 or len(axes) != 1: return None
  n_reduced, tuning = x.shape[axes[0]], tuning_of(x.device)
  if n_reduced >= tuning.chunk_min_reduced and n_reduced % tuning.chunk_size == 0 and x.numel() >= tuning.chunk_min_product:
    chunks, partial_bytes = n_reduced // tuning.chunk_size, x.numel() // n_reduced * x.dtype.itemsize
    while chunks > 1 and (chunks * partial_bytes > tuning.chunk_max_bytes or n_reduced % chunks): chunks //= 2
    return chunks if chunks > 1 else None
  if x.numel() < tuning.slice_min_product: return None
  row_bytes = n_reduced * math.prod(x.shape[axes[0] + 1:]) * x.dtype.itemsize  # what one row of outputs reads
  if row_bytes <= tuning.slice_max_bytes: return None
  chunks = -(-row_bytes // tuning.slice_target_bytes)
  while n_reduced % chunks: chunks += 1
  return chunks if chunks <= 16 else None


def _split_reduce(t, op: Ops, axes: tuple[int, ...], split: int):
  """A big reduce to few outputs in two kernels: `split` partial results per output first (parallel work for
  every core or compute unit), then the reduce of those. Keeps the reduced axes as size 1, like REDUCE_AXIS."""
  kept = [i for i in range(t.ndim) if i not in axes]
  n_out, n_reduced = math.prod(t.shape[i] for i in kept), math.prod(t.shape[i] for i in axes)
  chunk = -(-n_reduced // split)
  x = t.permute(kept + list(axes)).reshape(n_out, n_reduced)
  if split * chunk != n_reduced: x = x.pad(((0, 0), (0, split * chunk - n_reduced)))  # zeros: they add nothing
  partials = x.reshape(n_out, split, chunk)._reduce_axis(op, (2,)).contiguous()
  total = partials._reduce(op, 1, keepdim=True)  # (which splits again when there are many partial sums)
  return total.reshape(tuple(1 if i in axes else s for i, s in enumerate(t.shape)))


def _chunked_reduce(t, op: Ops, axis: int, chunks: int):
  """A long reduce over a big broadcast product (a large matmul) in two kernels: partial results over `chunks`
  slices of the reduce axis first, the slice index outermost (so each core works through one slice of the
  inputs, which stays in its cache), then their sum."""
  shape = t.shape
  x = t.reshape(shape[:axis] + (chunks, shape[axis] // chunks) + shape[axis + 1:])
  order = [axis] + [i for i in range(x.ndim) if i not in (axis, axis + 1)] + [axis + 1]
  x = x.permute(order)
  total = x._reduce_axis(op, (x.ndim - 1,)).contiguous()._reduce_axis(op, (0,))
  return total.reshape(shape[:axis] + (1,) + shape[axis + 1:])

