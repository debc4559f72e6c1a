"""Graph shaping for speed: where Tensor's ops build a different graph of the same values because it runs faster.
A long sum is split into partial sums (more parallel work, and float accumulators that never add too many terms),
a sum over a big product is cut into slices whose inputs stay in cache, a matmul's narrow right operand and a
convolution's filters are copied first to the layout the kernel optimizer vectorizes, and a cat of many pieces is
joined in groups. The thresholds were measured (the comments say where and how); a later step moves this module
into the scheduler, so that it shapes gradient graphs too. The functions take tensors as they come (duck-typed:
shape, dtype, numel(), uop, and the movement and reduce methods); this module does not import teeny/tensor.py."""
from __future__ import annotations
import math
from teeny.dtype import dtypes
from teeny.uop import Ops

# conv2d re-lays its filters out (output channel innermost) when they have at least this many output channels and
# the convolution does at least this many multiply-adds
CONV_RELAYOUT_MIN_COUT, CONV_RELAYOUT_MIN_WORK = 16, 1 << 22
# matmul copies a row-major right operand with few columns (at most this many) and a long inner dimension (at
# least this long) to column-major first, when the product does at least this many multiply-adds
MATMUL_RELAYOUT_MAX_N, MATMUL_RELAYOUT_MIN_K, MATMUL_RELAYOUT_MIN_WORK = 16, 64, 1 << 18


def _wants_reduce_contiguous(a, b) -> bool:
  """Whether a @ b runs faster with b copied to column-major: x @ w with w of shape (512, 10) (a classifier). The
  kernel's outputs along w's 10 columns are too few to fill a vector, so the optimizer's tile then vectorizes
  along k, which needs both operands contiguous along k; the copy is one small kernel, and the backward pass
  reads the copy too (w.T of the gradient becomes a contiguous read). A b that is a transpose already (x @ w.T)
  is column-major: left as it is."""
  k, n = b.shape[-2], b.shape[-1]
  if n > MATMUL_RELAYOUT_MAX_N or k < MATMUL_RELAYOUT_MIN_K or b.uop.op is Ops.PERMUTE: return False
  return math.prod(a.shape[:-1]) * k * n >= MATMUL_RELAYOUT_MIN_WORK


def _wants_filter_relayout(cout: int, multiply_adds: int) -> bool:
  """Whether conv2d copies its filters (cout of them) with the output channel innermost first: a convolution of at
  least CONV_RELAYOUT_MIN_WORK multiply-adds into at least CONV_RELAYOUT_MIN_COUT channels."""
  return cout >= CONV_RELAYOUT_MIN_COUT and multiply_adds >= CONV_RELAYOUT_MIN_WORK


# A sum of at least SPLIT_MIN_REDUCED elements into at most SPLIT_MAX_OUTPUTS results is done in two kernels
# (_split_reduce): one output per thread or core would leave the rest of the machine idle. And no float
# accumulator adds more than SPLIT_MAX_CHUNK terms, whatever the number of outputs: a device that adds a sum's
# terms one after another (OpenCL on a CPU: one work-item per partial sum) would otherwise lose them once the
# sum outgrows them (float32 stops growing at 2^24 when adding values below 1). Longer sums add partial sums of
# at most SPLIT_MAX_CHUNK terms, and those the same way (more levels for sums past SPLIT_MAX_CHUNK^2 terms).
SPLIT_MIN_REDUCED, SPLIT_MAX_OUTPUTS, SPLIT_MAX_CHUNK = 1 << 15, 16, 1 << 16


def _reduce_split(x, op: Ops, axes: tuple[int, ...]) -> int | None:
  """How many partial results per output a sum should be split into, or None to keep it one kernel. A length
  that no good count divides is padded with zeros (_split_reduce). Only sums split: a max's gradient
  splits evenly between ties, which two stages would weigh by chunk."""
  if op is not Ops.ADD: return None
  n_reduced = math.prod(x.shape[a] for a in axes)
  bounded = -(-n_reduced // SPLIT_MAX_CHUNK) if dtypes.is_float(x.dtype) else 1  # parts so no partial is too long
  if n_reduced < SPLIT_MIN_REDUCED or x.numel() // max(n_reduced, 1) > SPLIT_MAX_OUTPUTS:
    return bounded if bounded > 1 else None  # many outputs: parallel already, split only what is too long
  split = 256  # a count that divides the length, at least 256 terms each, when there is one (no padding)
  while split > 1 and (n_reduced % split or n_reduced // split < 256): split //= 2
  if split < 8: split = min(256, n_reduced // 256)
  return max(split, bounded)


# A sum over one axis of at least CHUNK_MIN_REDUCED elements, of a broadcast product of at least
# CHUNK_MIN_PRODUCT elements (a big matmul: its inputs are far larger than a core's cache), is done in slices of
# CHUNK_SIZE along that axis (_chunked_reduce), as many as keep the partial results within CHUNK_MAX_BYTES.
CHUNK_MIN_REDUCED, CHUNK_MIN_PRODUCT, CHUNK_SIZE, CHUNK_MAX_BYTES = 1024, 1 << 29, 128, 256 << 20
# A smaller product (of at least SLICE_MIN_PRODUCT elements) is sliced too when each row of outputs reads more than
# SLICE_MAX_BYTES of it: the reduce axis times the axes inside it, a matmul's whole right-hand matrix. A core works
# through its rows of outputs one after another, and once that matrix outgrows its share of the L2 cache every row
# streams it again from farther away: 256x784 @ 784x512 (1.6 MB) ran at 150 GFLOP/s where 512 columns of 512 (1 MB)
# ran at 245. Slices of at most SLICE_TARGET_BYTES each, the fewest that divide the axis: 208 GFLOP/s there.
SLICE_MIN_PRODUCT, SLICE_MAX_BYTES, SLICE_TARGET_BYTES = 1 << 26, 3 << 19, 1 << 20


def _reduce_chunks(x, op: Ops, axes: tuple[int, ...]) -> int | None:
  """How many slices a long sum over a big product is split into, or None (see _reduce_split for why sums only)."""
  if op is not Ops.ADD or x.dtype == dtypes.float16 or len(axes) != 1: return None
  n_reduced = x.shape[axes[0]]
  if n_reduced >= CHUNK_MIN_REDUCED and n_reduced % CHUNK_SIZE == 0 and x.numel() >= CHUNK_MIN_PRODUCT:
    chunks, partial_bytes = n_reduced // CHUNK_SIZE, x.numel() // n_reduced * x.dtype.itemsize
    while chunks > 1 and (chunks * partial_bytes > CHUNK_MAX_BYTES or n_reduced % chunks): chunks //= 2
    return chunks if chunks > 1 else None
  if x.numel() < SLICE_MIN_PRODUCT: return None
  row_bytes = n_reduced * math.prod(x.shape[axes[0] + 1:]) * x.dtype.itemsize  # what one row of outputs reads
  if row_bytes <= SLICE_MAX_BYTES: return None
  chunks = -(-row_bytes // SLICE_TARGET_BYTES)
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


# Tensor.cat of more than CAT_HOST_PIECES pieces that are all constants (a stack of Python numbers) is made on the
# host and uploaded once, not built as a kernel with a masked term per piece. More than CAT_GROUP_SIZE pieces are
# joined CAT_GROUP_SIZE at a time first: each group's kernel has the same code (only the buffers differ), so one
# compile serves them all, and no kernel gets a masked term for every piece.
CAT_HOST_PIECES, CAT_GROUP_SIZE = 16, 32
