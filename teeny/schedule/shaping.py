"""Graph shaping for speed: the scheduler's first pass, which rewrites the graph into one of the same values that
runs faster, before it is cut into kernels. Because it runs in the scheduler, it shapes every graph the same way:
the forward pass, the gradient graphs autograd builds, and anything written by hand.

  a long sum into partial sums   more parallel work for a sum to few outputs, and float accumulators that never
                                 add too many terms (_split_reduce)
  a sum over a big product       cut into slices along the summed axis, so each core's inputs stay in its cache
                                 (_chunked_reduce)
  a matmul's narrow right matrix copied first with the summed axis innermost (_matmul_relayout)
  a convolution's filters        copied first with the output channel innermost (_filter_relayout)
  a sum read only transposed      summed in the order it is read (_reduce_in_read_order): a weight's gradient,
                                  summed as (in, out) and read as (out, in), took a transposing copy after its kernel

Each rewrite puts a CONTIGUOUS where a value is to be a kernel of its own; the kernels of the rewritten graph are
cut as any other graph's (kernelize.py). The thresholds are the device's (its renderer's Tuning,
teeny/renderer/tuning.py, which names the benchmark behind each). shape_graph returns, with the rewritten graph, the
original node each rewritten one stands for, so results are still recorded against the caller's nodes.
"""
from __future__ import annotations
import math
from teeny.dtype import dtypes, NARROW_FLOATS
from teeny.uop import UOp, Ops, toposort
from teeny.renderer.tuning import Tuning
from teeny.runtime.device import Device
from teeny.schedule.items import is_buffer_view


def shape_graph(nodes: list[UOp], roots: tuple[UOp, ...], device_of: dict[UOp, str]) -> tuple[list[UOp], tuple[UOp, ...], dict[UOp, tuple[UOp, ...]]]:
  """The graph (nodes in toposort order) with every reduce shaped for its device: (the new nodes in toposort
  order, the new roots, new node -> the original nodes it replaces). Returns the graph itself when nothing
  changed. (Several: x.sum() and x.sum(1) of a (1, n) x are one sum once shaped, and both are results.)"""
  tunings: dict[str, Tuning] = {}
  def shaped(reduce: UOp, device: str) -> UOp:
    if reduce.arg[0] is not Ops.ADD or reduce.arg[2:] == ("in order",): return reduce  # (a scan's sum stays as it is)
    if device not in tunings: tunings[device] = Device[device].renderer.tuning
    return shaped_sum(reduce, tunings[device])
  transposed = _transposed_reduces(nodes, roots)  # permute on top -> the reduce it transposes
  replaced = set(transposed.values())  # (left unshaped: no node reads them once their permutes are rebuilt)
  new: dict[UOp, UOp] = {}
  for n in nodes:
    src = tuple(new[s] for s in n.src)
    rebuilt = n if all(a is b for a, b in zip(src, n.src)) else UOp(n.op, n.dtype, src, n.arg)
    if n in transposed:
      reduce = transposed[n]
      rebuilt = _reduce_in_read_order(new[reduce.src[0]], reduce, n, lambda r: shaped(r, device_of[reduce]))
    elif n.op is Ops.REDUCE_AXIS and n not in replaced: rebuilt = shaped(rebuilt, device_of[n])
    new[n] = rebuilt
  origin: dict[UOp, tuple[UOp, ...]] = {}
  for n, m in new.items():
    if m is not n: origin[m] = origin.get(m, ()) + (n,)
  if not origin: return nodes, roots, {}
  new_roots = tuple(new[r] for r in roots)
  return toposort(UOp(Ops.SINK, dtypes.void, new_roots))[:-1], new_roots, origin


def shaped_sum(reduce: UOp, tuning: Tuning) -> UOp:
  """A sum (REDUCE_AXIS of ADD) as the graph that computes it fastest on a device with these tuned numbers: split
  into partial sums or sliced, with an operand copied to a better layout first, or as it is. (Only sums: a max
  could be split the same way, now that gradients are taken before this pass, but none is measured to need it.)"""
  x, axes = reduce.src[0], reduce.arg[1]
  # (a product whose operand is read from a copy may still be split or sliced below; a product masked by a where,
  # a transposed convolution's that leaves out the terms of its own zeros, is read from the same copy)
  product = x.src[1] if x.op is Ops.WHERE else x
  if product.op is Ops.MUL:
    operands = _matmul_relayout(product, axes, tuning) or _filter_relayout(product, axes, tuning)
    if operands is not None:
      relaid = UOp(Ops.MUL, product.dtype, operands)
      x = relaid if x is product else UOp(Ops.WHERE, x.dtype, (x.src[0], relaid, x.src[2]))
  if (split := _reduce_split(x, axes, tuning)) is not None:
    return _split_reduce(_widened(x), axes, split, tuning).cast(reduce.dtype)
  if (chunks := _reduce_chunks(x, axes, tuning)) is not None: return _chunked_reduce(x, axes[0], chunks)
  return reduce if x is reduce.src[0] else x.reduce(Ops.ADD, axes)


def _widened(x: UOp) -> UOp:
  """A sum's operand for float32 partial sums (rounded once at the end, as mean does: half can't hold them). The
  operand itself is cast as it is, so a product of half floats is rounded to half first, as the unsplit kernel and
  PyTorch's sum(a * b) do (matmul and conv multiply in float32 themselves: their operands are cast before this)."""
  return x.cast(dtypes.float32) if x.dtype in NARROW_FLOATS else x


# ---- a sum read only through a transpose: summed in the order it is read ----
# A kernel stores its results in the order of its output's axes. The gradient of x @ w.T with respect to w is a sum
# over the batch in the order (in, out), then transposed to w's (out, in): a second kernel made that copy, gathering
# across rows (784x512 floats: 250 us against 300 for the sum). Summed directly in the order it is read, the copy is
# gone (bench_distributed's MLP step: -0.4 ms of 4.2). Done only where the transposed read is the sum's one use.

def _transposed_reduces(nodes: list[UOp], roots: tuple[UOp, ...]) -> dict[UOp, UOp]:
  """PERMUTE -> the REDUCE_AXIS under it (through one RESHAPE that only drops or adds axes of size 1), where the
  permute is the only reader of the reduce and the reduce and reshape are not results themselves."""
  readers: dict[UOp, int] = {}
  for n in nodes:
    for s in n.src: readers[s] = readers.get(s, 0) + 1
  for r in roots: readers[r] = readers.get(r, 0) + 1
  found = {}
  for n in nodes:
    if n.op is not Ops.PERMUTE: continue
    below = n.src[0]
    if below.op is Ops.RESHAPE and readers.get(below) == 1 and not is_buffer_view(below):
      if [d for d in below.shape if d != 1] != [d for d in below.src[0].shape if d != 1]: continue
      below = below.src[0]
    if below.op is Ops.REDUCE_AXIS and readers.get(below) == 1 and _kept_order(below, n) is not None: found[n] = below
  return found


def _kept_order(reduce: UOp, permute: UOp) -> list[int] | None:
  """The axes of the reduce's input it keeps (of size above 1), in the order the permute on top reads them; None
  where that is their own order (nothing to move)."""
  x, axes = reduce.src[0], reduce.arg[1]
  kept = [i for i, d in enumerate(x.shape) if i not in axes and d != 1]
  flat = permute.src[0]  # the reduce, or a reshape of it
  big = [j for j, d in enumerate(flat.shape) if d != 1]  # big[q] is the axis of flat that holds kept[q]
  order = [kept[big.index(j)] for j in permute.arg if flat.shape[j] != 1]
  return None if order == kept else order


def _reduce_in_read_order(x: UOp, reduce: UOp, permute: UOp, shape_sum) -> UOp:
  """The value of permute (over reduce, maybe through a reshape) as a reduce of x whose output axes come in the
  order the permute reads them, then reshaped to the permute's shape. shape_sum shapes the new reduce."""
  axes = reduce.arg[1]
  order = _kept_order(reduce, permute)
  ones = [i for i, d in enumerate(x.shape) if i not in axes and d == 1]
  moved = _permute(x, order + list(axes) + ones)
  summed = shape_sum(moved.reduce(reduce.arg[0], tuple(range(len(order), len(order) + len(axes)))))
  return _reshape(summed, permute.shape)


# ---- movement ops that leave out the ones that change nothing (as Tensor's do) ----

def _reshape(x: UOp, shape: tuple[int, ...]) -> UOp: return x if x.shape == tuple(shape) else x.reshape(shape)
def _permute(x: UOp, order) -> UOp: return x if tuple(order) == tuple(range(len(order))) else x.permute(order)
def _pad(x: UOp, padding) -> UOp: return x if all(p == (0, 0) for p in padding) else x.pad(padding)
def _swap_last_two(x: UOp) -> UOp:
  ndim = len(x.shape)
  return x.permute(tuple(range(ndim - 2)) + (ndim - 1, ndim - 2))


# ---- long sums: partial sums ----
# A sum of at least Tuning.split_min_reduced elements into at most split_max_outputs results is done in two kernels
# (_split_reduce): one output per thread or core would leave the rest of the machine idle. And no float
# accumulator adds more than split_max_chunk terms, whatever the number of outputs: a device that adds a sum's
# terms one after another (OpenCL on a CPU: one work-item per partial sum) would otherwise lose them once the
# sum outgrows them (float32 stops growing at 2^24 when adding values below 1). Longer sums add partial sums of
# at most split_max_chunk terms, and those the same way (more levels for sums past split_max_chunk^2 terms).

def _reduce_split(x: UOp, axes: tuple[int, ...], tuning: Tuning) -> int | None:
  """How many partial results per output a sum of x over axes should be split into, or None to keep it one
  kernel. A length that no good count divides is padded with zeros (_split_reduce)."""
  n_reduced = math.prod(x.shape[a] for a in axes)
  bounded = -(-n_reduced // tuning.split_max_chunk) if dtypes.is_float(x.dtype) else 1  # no partial too long
  if n_reduced < tuning.split_min_reduced or x.size // max(n_reduced, 1) > tuning.split_max_outputs:
    return bounded if bounded > 1 else None  # many outputs: parallel already, split only what is too long
  split = 256  # a count that divides the length, at least 256 terms each, when there is one (no padding)
  while split > 1 and (n_reduced % split or n_reduced // split < 256): split //= 2
  if split < 8: split = min(256, n_reduced // 256)
  return max(split, bounded)


def _split_reduce(x: UOp, axes: tuple[int, ...], split: int, tuning: Tuning) -> UOp:
  """A big sum to few outputs in two kernels: `split` partial sums per output first (parallel work for every
  core or compute unit), then the sum of those, itself shaped again (a sum of many partial sums splits again).
  Keeps the reduced axes as size 1, like REDUCE_AXIS."""
  kept = [i for i in range(len(x.shape)) if i not in axes]
  n_out, n_reduced = math.prod(x.shape[i] for i in kept), math.prod(x.shape[i] for i in axes)
  chunk = -(-n_reduced // split)
  rows = _reshape(_permute(x, kept + list(axes)), (n_out, n_reduced))
  rows = _pad(rows, ((0, 0), (0, split * chunk - n_reduced)))  # zeros: they add nothing
  partials = _reshape(rows, (n_out, split, chunk)).reduce(Ops.ADD, (2,)).contiguous()
  total = shaped_sum(partials.reduce(Ops.ADD, (1,)), tuning)
  return _reshape(total, tuple(1 if i in axes else s for i, s in enumerate(x.shape)))


# ---- sums over big products: slices ----
# A sum over one axis of at least Tuning.chunk_min_reduced elements, of a broadcast product of at least
# chunk_min_product elements (a big matmul: its inputs are far larger than a core's cache), is done in slices of
# chunk_size along that axis (_chunked_reduce), as many as keep the partial results within chunk_max_bytes.
# A smaller product (of at least slice_min_product elements) is sliced too when each row of outputs reads more than
# slice_max_bytes of it: the reduce axis times the axes inside it, a matmul's whole right-hand matrix. A core works
# through its rows of outputs one after another, and once that matrix outgrows its share of the L2 cache every row
# streams it again from farther away: 256x784 @ 784x512 (1.6 MB) ran at 150 GFLOP/s where 512 columns of 512 (1 MB)
# ran at 245. Slices of at most slice_target_bytes each, the fewest that divide the axis: 208 GFLOP/s there.

def _reduce_chunks(x: UOp, axes: tuple[int, ...], tuning: Tuning) -> int | None:
  """How many slices a long sum of x over axes is split into, or None."""
  if x.dtype in NARROW_FLOATS or len(axes) != 1: return None
  n_reduced = x.shape[axes[0]]
  if n_reduced >= tuning.chunk_min_reduced and n_reduced % tuning.chunk_size == 0 and x.size >= tuning.chunk_min_product:
    chunks, partial_bytes = n_reduced // tuning.chunk_size, x.size // n_reduced * x.dtype.itemsize
    while chunks > 1 and (chunks * partial_bytes > tuning.chunk_max_bytes or n_reduced % chunks): chunks //= 2
    return chunks if chunks > 1 else None
  if x.size < tuning.slice_min_product: return None
  row_bytes = n_reduced * math.prod(x.shape[axes[0] + 1:]) * x.dtype.itemsize  # what one row of outputs reads
  if row_bytes <= tuning.slice_max_bytes: return None
  chunks = -(-row_bytes // tuning.slice_target_bytes)
  while chunks <= 16 and n_reduced % chunks: chunks += 1
  return chunks if chunks <= 16 else None  # (no more than 16 slices: an axis without such a divisor stays whole)


def _chunked_reduce(x: UOp, axis: int, chunks: int) -> UOp:
  """A long sum over a big broadcast product (a large matmul) in two kernels: partial sums over `chunks` slices of
  the summed axis first, the slice index outermost (so each core works through one slice of the inputs, which
  stays in its cache), then their sum."""
  shape = x.shape
  sliced = x.reshape(shape[:axis] + (chunks, shape[axis] // chunks) + shape[axis + 1:])
  order = [axis] + [i for i in range(len(sliced.shape)) if i not in (axis, axis + 1)] + [axis + 1]
  sliced = _permute(sliced, order)
  total = sliced.reduce(Ops.ADD, (len(order) - 1,)).contiguous().reduce(Ops.ADD, (0,))
  return _reshape(total, shape[:axis] + (1,) + shape[axis + 1:])


# ---- relayout copies ----
# Tensor.matmul sums (..., n, k, 1) * (..., 1, k, m) over k, and Tensor.conv2d sums windows (N, g, 1, C_in/g, *out,
# *kernel) times filters (1, g, C_out/g, C_in/g, *1, *kernel) over C_in/g and the kernel. These rewrites recognize
# the operand made by broadcasting a weight that way (EXPAND of RESHAPEs of it) and read it from a copy instead.

def _broadcast_source(operand: UOp) -> tuple[UOp, list[UOp]] | None:
  """(the tensor an EXPAND of RESHAPEs broadcasts, the RESHAPE and EXPAND nodes above it, outermost last), else
  None. A realized tensor's buffer view (a RESHAPE of its BUFFER) is a tensor, not a reshape of one."""
  if operand.op is not Ops.EXPAND: return None
  above, x = [operand], operand.src[0]
  while x.op is Ops.RESHAPE and not is_buffer_view(x): above, x = [x] + above, x.src[0]
  return x, above


def _rebuilt_above(base: UOp, above: list[UOp]) -> UOp:
  """The chain of movement nodes `above` applied again to a new base."""
  for node in above: base = UOp(node.op, node.dtype, (base,), node.arg)
  return base


def _matmul_relayout(product: UOp, axes: tuple[int, ...], tuning: Tuning) -> tuple[UOp, UOp] | None:
  """The operands of a matmul's product with its right matrix b copied to column-major, or None. x @ w with w of
  shape (512, 10) (a classifier): the kernel's outputs along w's 10 columns are too few to fill a vector, so the
  optimizer's tile then vectorizes along k, which needs both operands contiguous along k; the copy is one small
  kernel. A b that is a transpose already (x @ w.T) is column-major: left as it is."""
  ndim = len(product.shape)
  if ndim < 3 or axes != (ndim - 2,): return None
  k, m = product.shape[-2:]
  for i, operand in enumerate(product.src):
    found = _broadcast_source(operand)
    if found is None or operand.src[0].shape[-3] != 1: continue  # (b is the operand broadcast over a's rows)
    b, above = found
    while b.op is Ops.RESHAPE and not is_buffer_view(b) and b.src[0].shape[-2:] == (k, m):  # (down to w itself)
      above, b = [b] + above, b.src[0]
    if len(b.shape) < 2 or b.shape[-2:] != (k, m) or b.op is Ops.PERMUTE: continue
    if m > tuning.matmul_relayout_max_n or k < tuning.matmul_relayout_min_k: return None
    a = product.src[1 - i]
    a_rows_times_k = a.src[0].size if a.op is Ops.EXPAND else a.size  # (a.unsqueeze(-1) before it is broadcast)
    if a_rows_times_k * m < tuning.matmul_relayout_min_work: return None
    copied = _swap_last_two(_swap_last_two(b).contiguous())
    operands = list(product.src)
    operands[i] = _rebuilt_above(copied, above)
    return tuple(operands)
  return None


def _filter_relayout(product: UOp, axes: tuple[int, ...], tuning: Tuning) -> tuple[UOp, UOp] | None:
  """The operands of a convolution's product with the filters copied with the output channel innermost (one
  small kernel: the optimizer's register tile then loads a vector of filters where it would gather them one by
  one), or None: a convolution of at least Tuning.conv_relayout_min_work multiply-adds into at least
  conv_relayout_min_cout channels."""
  ndim = len(product.shape)
  nd = (ndim - 4) // 2
  if nd < 1 or ndim != 4 + 2 * nd or axes != (3,) + tuple(range(4 + nd, 4 + 2 * nd)): return None
  for i, operand in enumerate(product.src):
    found = _broadcast_source(operand)
    if found is None or len(found[1]) != 2: continue
    weight, above = found
    groups, cout_g, cin_g = product.shape[1], product.shape[2], product.shape[3]
    kernel = product.shape[4 + nd:]
    if weight.shape != (groups * cout_g, cin_g) + kernel: continue
    if above[0].shape != (1, groups, cout_g, cin_g) + (1,) * nd + kernel: continue
    cout = groups * cout_g
    if cout < tuning.conv_relayout_min_cout or product.size < tuning.conv_relayout_min_work: return None
    flat = weight.reshape((cout, weight.size // cout))
    copied = flat.permute((1, 0)).contiguous().permute((1, 0)).reshape(weight.shape)
    operands = list(product.src)
    operands[i] = _rebuilt_above(copied, above)
    return tuple(operands)
  return None
