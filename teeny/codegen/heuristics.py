"""The optimizer: which actions (kernel.Opt) a kernel gets on a device. `optimize` canonicalizes the loop space,
then applies the actions it is given (BEAM search's choice, teeny/engine/search.py, or a test's) or else the
hand-written heuristics below: a register tile for reduces over products (matmul, convolution), vectors of columns
for strided reduces, and on GPUs work-groups (GROUP) for reduces with few outputs. NOOPT=1 applies no action.
An action that turns out not to apply (KernelOptError) stops the heuristics and leaves the kernel as the actions
before it made it.
"""
from __future__ import annotations
import itertools, math
from teeny.helpers import getenv
from teeny.uop import Ops, toposort
from teeny.codegen.kernel import Kernel, Opt, KernelOptError
from teeny.codegen.vectorize import VECTOR_SCALARS
from teeny.renderer.tuning import Tuning


def optimize(kernel: Kernel, renderer, opts: list[Opt] | None = None) -> Kernel:
  """Canonicalize the loop space, then apply `opts` when given (BEAM's choice, a test's), else the heuristics'.
  NOOPT=1 keeps only what correctness needs. A kernel with lifted reduces (kernel.py) is left as the scheduler made
  it: its views are of several shapes, which the canonicalizing steps don't follow, and its outermost axis is the
  output's, which the CPU's cores split."""
  if kernel.lifted:
    for opt in opts or []: kernel.apply_opt(opt, renderer)  # (raises: it takes none)
    return kernel
  kernel.reduce_axes_last()
  if opts is None and getenv("NOOPT", 0):
    kernel.ensure_parallel_axis()
    return kernel
  kernel.merge_axes()
  kernel.ensure_parallel_axis()
  if opts is None: apply_heuristics(kernel, renderer)
  else:
    for opt in opts: kernel.apply_opt(opt, renderer)
  return kernel


def apply_heuristics(k: Kernel, renderer):
  """The default actions for a kernel on a device. An action that turns out not to apply stops the heuristics and
  leaves the kernel as the actions before it made it."""
  vector = renderer.vector_width
  try:
    _split_at_mask_edges(k, renderer)
    _vector_lanes(k, renderer)
    if not _group_few_outputs(k, renderer): _register_tile(k, vector, renderer)
    _unroll_small_reduce(k, renderer)
    _reduce_lanes(k, renderer)
    _unroll_folded_columns(k, renderer)
    _pad_lanes(k, renderer)
  except KernelOptError: pass


def _split_at_mask_edges(k: Kernel, renderer):
  """An elementwise kernel whose loads are padded along its innermost axis at edges that are multiples of a long
  stretch (`a.cat(b, dim=1)` of two 4096-wide rows: each half one input's): split that axis into (pieces, stretch),
  so which load is valid depends on the outer index alone and the inner loop is plain contiguous loads. On LLVM
  that cat went from 9.2 to 3.0 ms (2048x8192). Edges without a long common stretch (a cat with a 1000-wide piece
  beside 4096-wide ones: stretches of 8) are left alone: that split made it slower (13.5 -> 22 ms). Measured on
  LLVM only, so only there (OpenCL spreads the axis over work-items)."""
  if renderer.has_threads or k.axes_of("reduce") or not any(k.masked_loads()): return
  axis, masks = k.axes_of("global")[-1], _loop_masks(k)
  if masks is None: return
  size = stretch = k.full_shape[axis]
  for mask in masks: stretch = math.gcd(stretch, *mask[axis])
  if not renderer.tuning.min_split_stretch <= stretch < size: return
  k.reshape(k.full_shape[:axis] + (size // stretch, stretch) + k.full_shape[axis + 1:], k.kinds[:axis] + ("global",) + k.kinds[axis:])
  k.applied.append(f"split({axis},{stretch})")


def _vector_lanes(k: Kernel, renderer):
  """On a renderer of vector arithmetic (a CPU OpenCL driver, see codegen/vectorize.py) an elementwise kernel
  computes a vector of neighbouring outputs per work-item: the innermost axis the output is contiguous along is
  upcast by the widest vector of the output's dtype that divides it. chain6 on PoCL: 2.9 -> 23 GB/s, Tensor.rand
  252 -> 30 ms. Not where an input strides along that axis (a transpose: 35 -> 69 ms as vectors of strided
  loads), unless the kernel calls exp2 or log2, which the driver leaves scalar otherwise (x.T.exp(): 152 -> 55 ms)."""
  if not renderer.vector_alu or k.axes_of("reduce"): return
  stored = [u.src[2].dtype for u in k.ast.src if u.op is Ops.STORE]
  if len(set(stored)) != 1 or stored[0] not in VECTOR_SCALARS: return  # (other dtypes are loaded and stored lane by lane)
  out = k.output_view()
  axis = next((a for a in reversed(k.axes_of("global")) if _element_step(out, k, a) == 1), None)
  if axis is None: return
  strided = any(s not in (0, 1, None) for s in k.axis_strides(axis))
  if strided and not any(u.op in (Ops.EXP2, Ops.LOG2) for u in k.ast.toposort()): return
  amount = _largest_divisor(k.full_shape[axis], renderer.vector_widths_for(stored[0]))
  if amount: k.apply_opt(Opt("UPCAST", axis, amount), renderer)


def _reduce_lanes(k: Kernel, renderer):
  """On a renderer of vector arithmetic, a reduce whose loads read its innermost loop contiguously (a row sum,
  softmax's max and sum) unrolls that loop by a vector: the copies accumulate apart, as vector lanes (lower.py's
  _lane_sums), the way LLVM vectorizes such a loop on the CPU."""
  if not renderer.vector_alu or not k.reduce_is_contiguous or k.axes_of("unroll") or k.axes_of("group"): return
  axis = k.axes_of("reduce")[-1]
  if 1 not in k.axis_strides(axis): return
  amount = _largest_divisor(k.full_shape[axis] // 2, renderer.vector_widths)  # (two steps of the loop at least)
  if amount and k.full_shape[axis] % amount == 0: k.apply_opt(Opt("UNROLL", axis, amount), renderer)


def _small_window(k: Kernel, renderer) -> int | None:
  """How many elements the kernel reduces over, when that is a small window: two axes or more, a few elements in
  all (Tuning.small_reduce_unroll: a 3x3 pooling window), on the CPU's LLVM, where _unroll_small_reduce unrolls
  them; else None. (A short row, one axis, is left to LLVM's loop vectorizer: not measured.)"""
  reduce_axes = k.axes_of("reduce")
  if renderer.has_threads or len(reduce_axes) < 2: return None
  size = math.prod(k.full_shape[a] for a in reduce_axes)
  return size if size <= renderer.tuning.small_reduce_unroll else None


def _unroll_small_reduce(k: Kernel, renderer):
  """A small reduce (a 3x3 pooling window, _small_window) is unrolled whole: one straight run of loads and
  compares per output instead of two nested loops of three steps, which ran 1.6-2.2x slower
  (max_pool2d(3, 2, padding=1) and its gradient; avg_pool2d and a depthwise convolution gained too:
  Tuning.small_reduce_unroll). After any register tile, within the expansion the tile leaves, and while the
  copies of its body stay small enough to compile quickly (Tuning.small_reduce_max_nodes). Measured on LLVM only,
  so only there."""
  copies = _small_window(k, renderer)
  if copies is None or k.axes_of("unroll") or k.axes_of("group"): return
  if k.expansion * copies > renderer.tuning.max_expansion: return
  body = max(len(toposort(u.src[0])) for u in toposort(k.ast) if u.op is Ops.REDUCE_AXIS)
  if body * copies > renderer.tuning.small_reduce_max_nodes: return
  for axis in reversed(k.axes_of("reduce")): k.apply_opt(Opt("UNROLL", axis, 0), renderer)


def _loop_masks(k: Kernel) -> list[tuple] | None:
  """The masks of the kernel's padded views, each a (valid start, end) per loop axis; None when some mask sits
  under a reshape (a view of a view), in coordinates other than the loop's."""
  masks = []
  for st in k.views:
    if any(view.mask is not None for view in st.views[:-1]): return None
    if st.views[-1].mask is not None: masks.append(st.views[-1].mask)
  return masks


def _pad_lanes(k: Kernel, renderer):
  """A padded copy (x.pad(1), which max_pool2d's and a convolution's weight gradient materialize): an elementwise
  kernel whose every load is padded, by a few elements at most on each axis. Two lanes along the innermost and
  the outermost axes share the padding checks (BEAM's choice: 16x64x112x112 padded by 1, 5.8 -> 1.5-2.0 ms). Not for
  cats, whose pieces are long stretches (two lanes slowed a cat along dim 0 from 3.2 to 8.1 ms), nor where some
  load is plain (x + x shifted by one: 0.72 -> 1.0 ms with the lanes)."""
  if renderer.has_threads or k.axes_of("reduce") or k.axes_of("upcast") or not all(k.masked_loads()): return
  axes = k.axes_of("global")
  inner, outer = axes[-1], axes[0]
  if inner == outer or k.full_shape[inner] % 2 or k.full_shape[outer] % 2: return
  masks = _loop_masks(k)
  if masks is None: return
  for mask in masks:  # (a pad leaves out a few elements at the edges of each axis; a cat's pieces, many)
    if any(hi - lo < size - 8 for (lo, hi), size in zip(mask, k.full_shape)): return
  k.apply_opt(Opt("UPCAST", inner, 2), renderer)
  k.apply_opt(Opt("UPCAST", outer, 2), renderer)


def _unroll_folded_columns(k: Kernel, renderer):
  """An elementwise kernel over a shape folded by strides (..., rows, s, rows, s), whose padded loads are shifted,
  strided copies added up (the gradient of overlapping pooling windows, ops/pooling.py's _windows_adjoint): each
  copy lands in one column, so its padding check compares the column index with a constant. With the short column
  axes unrolled those checks fold away, and each element's loop no longer tests every copy; two lanes along the
  outermost axis share the rest (BEAM's choice for max_pool2d(3, 2, padding=1)'s: 10.0 -> 4.8 ms on
  16x64x112x112; avg_pool2d(3, 2, padding=1)'s 4.5 -> 3.5 ms, where BEAM found 2.5). Measured on LLVM only, so
  only there."""
  if renderer.has_threads or k.axes_of("reduce") or k.axes_of("upcast") or not any(k.masked_loads()): return
  axes = k.axes_of("global")
  columns = [a for a in axes if a > 0 and 2 <= k.full_shape[a] <= 4 and k.full_shape[a - 1] > 4]
  if not columns or math.prod(k.full_shape[a] for a in columns) > 8: return
  for a in columns: k.apply_opt(Opt("UPCAST", a, k.full_shape[a]), renderer)
  if axes[0] not in columns and k.full_shape[axes[0]] % 2 == 0: k.apply_opt(Opt("UPCAST", axes[0], 2), renderer)


def _in_registers(k: Kernel, axis: int, choices, most: int) -> int | None:
  """The first of `choices` that divides the axis and keeps the tile's accumulators at `most` or fewer."""
  return next((a for a in choices if k.full_shape[axis] % a == 0 and k.expansion * a <= most), None)


def _largest_divisor(size: int, choices) -> int | None:
  return next((c for c in choices if c <= size and size % c == 0), None)


def _register_tile(k: Kernel, vector: int, renderer):
  """A reduce over a product (matmul, conv): upcast the output axis that one input reads contiguously and another
  broadcasts (a vector of outputs per load) and a second broadcast axis (rows of the tile), so each loaded value
  is used many times from registers."""
  if not k.axes_of("reduce"): return
  strides = {a: k.axis_strides(a) for a in k.axes_of("global")}
  # columns: an axis that input `vec` reads contiguously (and unpadded: padding makes each lane's load a
  # select of its own, so neighbours are no longer one vector load) and another input broadcasts
  masked = k.masked_loads()
  lane = _lane_axis(k, strides, masked, vector, renderer)
  if lane is not None: return _lane_tile(k, strides, lane, vector, renderer)
  cols = [(a, i) for a, st in strides.items() for i, s in enumerate(st) if s == 1 and 0 in st and not masked[i]]
  if not cols: return _tile_without_columns(k, strides, masked, vector, renderer)
  col, vec = _upcast_columns(k, cols, vector, renderer)
  if col is not None: _upcast_rows(k, strides, masked, col, vec, vector, renderer)


def _lane_axis(k: Kernel, strides: dict, masked: list[bool], vector: int, renderer) -> int | None:
  """The innermost output axis, when it is short (a vector or two) and every input reads it contiguously, none
  broadcasting it, two or more of them: lanes of partial sums a product is reduced into (a convolution's weight
  gradient splits each image row so: ops/nn.py _conv_gradients), summed across by a kernel of their own. Measured
  on LLVM only, so only there (OpenCL spreads output axes over work-items)."""
  if renderer.has_threads: return None
  axis = k.axes_of("global")[-1] if k.axes_of("global") else None
  if axis is None or not 2 <= k.full_shape[axis] <= 2 * vector: return None
  reading = [i for i, s in enumerate(strides[axis]) if s is not None]
  if len(reading) < 2 or any(strides[axis][i] != 1 or masked[i] for i in reading): return None
  return axis


def _lane_tile(k: Kernel, strides: dict, lane: int, vector: int, renderer):
  """Upcast the lanes (one vector load of each input a step, a vector of accumulators), then for each input an
  axis it broadcasts while another input moves along it (each loaded vector serves that many rows of the tile), as
  many rows as keep the accumulators in registers. The weight gradient of a 16x64x56x56 3x3 convolution: 27-29 ms
  -> 19-20 on a Zen 5 (lanes 8, 4 output channels, 3 kernel columns), where LLVM summed its vectors across at every
  row. Not a row axis along which an input moves as it does along the lanes (the kernel column: its rows would
  be overlapping unaligned loads of one image row): on a Zen 4, 3 kernel rows instead of 3 columns took that
  gradient from 30 to 21 ms."""
  views = k.input_views()
  steps = {a: [_element_step(view, k, a) for view in views] for a in strides}  # (global axes keep their numbers)
  k.apply_opt(Opt("UPCAST", lane, k.full_shape[lane]), renderer)
  def shifts_like_lanes(a): return any(s not in (0, None) and s == lane_step for s, lane_step in zip(steps[a], steps[lane]))
  most = renderer.tuning.tile_max_vectors * vector
  for i in range(len(strides[lane])):
    rows = [a for a, st in strides.items() if a != lane and st[i] == 0 and any(s not in (0, None) for s in st)]
    rows = [a for a in rows if not shifts_like_lanes(a)] or rows
    if not rows: continue
    amount = _in_registers(k, rows[-1], (4, 3, 2), most)
    if amount: k.apply_opt(Opt("UPCAST", rows[-1], amount), renderer)


def _tile_without_columns(k: Kernel, strides: dict, masked: list[bool], vector: int, renderer):
  """No input reads an output axis contiguously while another broadcasts it: a tile of the output axes every
  input broadcasts when there are such, a dot tile when every load reads the reduce loop contiguously, a tile of
  broadcast axes when some input broadcasts one, else a strided reduce."""
  shared = [a for a, st in strides.items() if st and all(s == 0 for s in st)]
  if shared: return _broadcast_tile(k, shared, vector, renderer)
  if k.reduce_is_contiguous:
    # vectorizing along the reduce needs a reduce of a few vectors at least (not a matmul with inner size 10)
    if k.full_shape[k.axes_of("reduce")[-1]] >= 2 * vector: _dot_tile(k, strides, renderer)
    return
  if any(0 in st for st in strides.values()): return _reuse_tile(k, strides, masked, vector, renderer)
  return _strided_reduce(k, vector, renderer)


def _broadcast_tile(k: Kernel, shared: list[int], vector: int, renderer):
  """Output axes that every input broadcasts (a reduce of one input spread over the output: the gradients of
  x.conv2d(w).sum(), whose upstream gradient is a constant, read only w or only x): each loaded value serves every
  output along them, so upcast the one the output is contiguous along (else the innermost) by whole vectors, and
  a second one as rows while the accumulators fit in registers. For 16x64x56x56 with 64 3x3 filters: the input
  gradient 1.39 s -> 37 ms, the weight gradient 0.37 s -> 42 ms (they ran as scalar loops)."""
  out = k.output_view()
  col = next((a for a in reversed(shared) if _element_step(out, k, a) == 1), shared[-1])
  amount = _largest_divisor(k.full_shape[col], (vector * 2, vector, 8, 4))
  if amount is None: return
  k.apply_opt(Opt("UPCAST", col, amount), renderer)
  most = renderer.tuning.tile_max_vectors * vector
  for axis in reversed([a for a in shared if a != col]):
    rows = _in_registers(k, axis, (8, 4, 2), most)
    if rows: return k.apply_opt(Opt("UPCAST", axis, rows), renderer)


def _upcast_columns(k: Kernel, cols: list[tuple[int, int]], vector: int, renderer) -> tuple[int | None, int | None]:
  """Upcast the tile's columns: of the (axis, input) candidates, the last axis whose size takes whole vectors of
  columns; else one that takes at least 4, or all of a short one (a gradient x.T @ g with 10 columns tiles x's 512
  columns, not g's 10). Returns (the axis, the input that reads it contiguously), or (None, None)."""
  def full(size): return _largest_divisor(size, (vector * 2, vector))
  def width(size): return _largest_divisor(size, (vector // 2, 4)) or (size if 4 < size <= vector * 2 else None)
  fits = [(a, i, full(k.full_shape[a])) for a, i in reversed(cols)] + [(a, i, width(k.full_shape[a])) for a, i in reversed(cols)]
  col, vec, amount = next((f for f in fits if f[2]), (None, None, None))
  if col is not None: k.apply_opt(Opt("UPCAST", col, amount), renderer)
  return col, vec


def _upcast_rows(k: Kernel, strides: dict, masked: list[bool], col: int, vec: int, vector: int, renderer):
  """Upcast the tile's rows: an axis input `vec` broadcasts while another input moves along it (splitting `col`
  moved its inner part to the end, so the other global axes kept their numbers), as many rows as keep the
  accumulators in registers (Tuning.tile_max_vectors vectors of them)."""
  rows = [a for a in strides if a != col and strides[a][vec] == 0 and any(s not in (0, None) for s in strides[a])]
  # not an axis the output is contiguous along (the kernel offsets of windows a gradient spreads over, innermost in
  # its windows): tiles over it measured 3x slower than over the channels beside it
  rows = [a for a in rows if _element_step(k.output_view(), k, a) != 1] or rows
  if not rows: return
  # the innermost such axis, unless what moves along it is padded (an image): then the outermost (the batch),
  # where one padding gate serves the whole row of the tile
  padded = any(masked[i] for i, s in enumerate(strides[rows[-1]]) if s not in (0, None))
  row = rows[0] if padded else rows[-1]
  tuning = renderer.tuning
  amount = _rows_in_l1(k, strides, row, vector, tuning)
  if amount: k.apply_opt(Opt("UPCAST", row, amount), renderer)
  # fewer rows than a full tile: widen it instead (more vectors of columns), as far as the columns go
  if (amount or 1) < 8:
    widen = _in_registers(k, col, (4, 2), tuning.tile_max_vectors * vector)
    if widen: k.apply_opt(Opt("UPCAST", col, widen), renderer)


def _rows_in_l1(k: Kernel, strides: dict, row: int, vector: int, tuning: Tuning) -> int | None:
  """How many rows along axis `row` the tile gets: as many as keep what they read over the reduce loop in L1 (the
  next tile reads most of it again). A matmul's row is a few KB of one input row; a convolution's row is a line per
  channel and kernel row of one image (24 KB for 64 channels of a 3x3): 8 of those streamed from L2 ran at 105
  GFLOP/s, 2 at 180 (Tuning.tile_rows_l1_bytes). None: not even 2."""
  mover = next(i for i, s in enumerate(strides[row]) if s not in (0, None))
  one = _reduce_footprint(k, mover, row, 1, tuning.footprint_max_steps)
  two = _reduce_footprint(k, mover, row, 2, tuning.footprint_max_steps)
  def fits(rows): return one + (rows - 1) * (two - one) <= tuning.tile_rows_l1_bytes  # (rows may share lines: g's columns)
  most = tuning.tile_max_vectors * vector
  return _in_registers(k, row, [a for a in (8, 5, 4, 3, 2) if fits(a)], most)


def _reduce_footprint(k: Kernel, i: int, row: int, rows: int, max_steps: int) -> int:
  """Bytes of cache lines that input i reads over one pass of the reduce loops for `rows` neighbouring outputs
  along axis `row`, in the middle of the loop space: counted from the elements the loads read, since padded and
  windowed views (a convolution's image) have strides that say little about memory. A reduce of more than
  max_steps steps is too long to walk: it counts one line per step and row."""
  reduces = k.axes_of("reduce")
  steps = math.prod(k.full_shape[a] for a in reduces)
  if steps > max_steps: return steps * rows * 64
  load = k.input_loads()[i]
  view, itemsize = load.src[1].arg, load.dtype.itemsize
  at = [s // 2 for s in k.full_shape]
  first_row = min(at[row], k.full_shape[row] - rows)
  lines = set()
  for r in range(first_row, first_row + rows):
    at[row] = r
    for position in itertools.product(*(range(k.full_shape[a]) for a in reduces)):
      for a, p in zip(reduces, position): at[a] = p
      element = view.element_at(at)
      if element is not None: lines.add(element * itemsize // 64)
  return len(lines) * 64


def _reuse_tile(k: Kernel, strides: dict, masked: list[bool], vector: int, renderer):
  """No input reads an output axis contiguously (a padded convolution): still tile two axes that the inputs
  broadcast, each load then feeds a row or a column of accumulators. The wide side moves an unpadded input
  (the filter: one value per lane), the other side a padded one (the image: one gate for the whole row)."""
  wide = [(a, i) for a, st in strides.items() for i, s in enumerate(st) if s not in (0, None) and not masked[i] and 0 in st]
  fits = [(a, i, _largest_divisor(k.full_shape[a], (vector * 2, vector, 8, 4))) for a, i in reversed(wide)]
  col, mover, amount = next((f for f in fits if f[2]), (None, None, None))
  if col is None: return
  k.apply_opt(Opt("UPCAST", col, amount), renderer)
  # rows: the outermost axis the image moves along (the batch: one padding gate serves the whole row)
  rows = [a for a in strides if a != col and strides[a][mover] == 0 and any(s not in (0, None) for s in strides[a])]
  most = renderer.tuning.tile_max_vectors * vector
  for axis in rows:
    amount = _in_registers(k, axis, (8, 4, 2), most)
    if amount: return k.apply_opt(Opt("UPCAST", axis, amount), renderer)


def _dot_tile(k: Kernel, strides: dict, renderer):
  """Every input reads the reduce loop contiguously (x @ w.T): the backend vectorizes along it, and a small tile
  of outputs over two axes that some input broadcasts lets each loaded vector serve several accumulators."""
  reused = [a for a, st in strides.items() if 0 in st and any(s not in (0, None) for s in st)]
  # not an axis that moves an input the way the reduce loop does (a convolution's kernel column): its lanes would
  # be overlapping unaligned loads of one row, where another axis (the kernel row) gives loads of their own
  inner = k.axes_of("reduce")[-1]
  views = k.input_views()
  def shifts_like_reduce(a):
    return any(_element_step(views[i], k, a) == _element_step(views[i], k, inner) != 0 for i, s in enumerate(strides[a]) if s not in (0, None))
  reused = [a for a in reused if not shifts_like_reduce(a)] or reused
  # the innermost such axis, and the innermost one that other inputs move along: a tile over two axes of one
  # input loads a vector per accumulator, one over an axis of each shares every load along a row or a column
  def movers(a): return {i for i, s in enumerate(strides[a]) if s not in (0, None)}
  others = [a for a in reused[:-1] if movers(a) != movers(reused[-1])]
  picked = reused[-1:] + (others[-1:] if others else reused[-2:-1])
  amounts, expansion, dot_tile_max = {}, k.expansion, renderer.tuning.dot_tile_max
  for n, axis in enumerate(sorted(picked, reverse=True)):
    size = k.full_shape[axis]
    # a short axis (a classifier's 10 outputs) whole, else 4 or 2, and the second up to 8 (3 x 8 beats 3 x 4); at
    # most tuning.dot_tile_max accumulators in all
    choices = ((size,) if size <= dot_tile_max else ()) + ((8, 4, 2) if n else (4, 2))
    amount = next((a for a in choices if size % a == 0 and expansion * a <= dot_tile_max), None)
    if amount: amounts[axis], expansion = amount, expansion * amount
  for axis in sorted(amounts):  # the outer axis first (the weight gradient's tile: 57 GFLOP/s this way, 45 the other)
    k.apply_opt(Opt("UPCAST", axis, amounts[axis]), renderer)


def _element_step(view, k: Kernel, axis: int) -> int | None:
  """How many elements a view of the loop space (an input's, or the output's) moves in memory for one step along
  axis, in the middle of the loop space (None where either position pads)."""
  if view.shape[axis] == 1: return 0
  at = [s // 2 if s == full else 0 for s, full in zip(view.shape, k.full_shape)]  # (the output's reduce axes are 1)
  if at[axis] + 1 >= view.shape[axis]: at[axis] -= 1
  here = view.element_at(at)
  at[axis] += 1
  there = view.element_at(at)
  return None if here is None or there is None else there - here


def _strided_reduce(k: Kernel, vector: int, renderer):
  """A reduce whose loop strides through memory (a column sum): no load reads the reduce axis contiguously, so
  the reduce loop can't be vectorized; upcast the output axis that the loads do read contiguously instead, and
  each loop step adds a whole vector of neighbouring columns."""
  reduce_axis = k.axes_of("reduce")[-1]
  if any(s == 1 for s in k.axis_strides(reduce_axis)): return
  # a small window is unrolled instead (_unroll_small_reduce): vectors of outputs that each read a strided window
  # were gathers, 2.2x slower than the unrolled window alone (max_pool2d(3, 2, padding=1)'s gradient)
  if _small_window(k, renderer): return
  if any(k.masked_loads()):
    # padded loads (the gradient of a pooling or a convolution, summing windows back): each lane of a vector along
    # the contiguous axis would be a gated load of its own. Lanes along the outermost axis (the channels) share
    # the index math and the padding checks instead, which cost more than the loads here: 3.2-4x faster measured
    outer = k.axes_of("global")[0]
    amount = _largest_divisor(k.full_shape[outer], (vector, 8))
    if amount: k.apply_opt(Opt("UPCAST", outer, amount), renderer)
    return
  contiguous = [a for a in k.axes_of("global") if 1 in k.axis_strides(a)]
  if not contiguous: return
  amount = _largest_divisor(k.full_shape[contiguous[-1]], (vector * 2, vector, 4))
  if amount: k.apply_opt(Opt("UPCAST", contiguous[-1], amount), renderer)


def _group_few_outputs(k: Kernel, renderer) -> bool:
  """On a GPU a reduce with few outputs leaves most of the device idle: split each output's reduce across the
  work-items of a group (GROUP). CPUs have few cores: the two-kernel split of big sums (Tensor) serves them."""
  if not renderer.is_gpu or not k.axes_of("reduce"): return False
  axis = k.axes_of("reduce")[-1]
  tuning = renderer.tuning
  if math.prod(k.full_shape[a] for a in k.axes_of("global")) >= tuning.group_max_outputs: return False
  if k.full_shape[axis] < tuning.group_min_reduced: return False
  # the largest group the device takes (work-group size and local memory, asked of it: see apply_opt)
  fits = [a for a in (256, 128, 64, 32, 16) if a <= renderer.max_local_size
          and a * k.group_bytes_per_item <= renderer.local_mem_size]
  amount = _largest_divisor(k.full_shape[axis], fits)
  if amount is None: return False
  k.apply_opt(Opt("GROUP", axis, amount), renderer)
  return True
