"""The kernel optimizer: a Kernel is an AST plus the shape of its loop space, and optimizations are explicit
actions (`Opt`) on that loop space that never change what the kernel computes.

Loop space: `full_shape` (the shape the reduces read), and for each axis its kind:
  global  a parallel axis: a thread id on OpenCL, a loop on LLVM (the outermost one is split across cores)
  local   a parallel axis inside an OpenCL work-group (its index is the work-item's local id)
  group   a reduce axis split across the work-items of an OpenCL work-group: each sums its part, then the
          partial sums meet in local memory
  reduce  a loop that a REDUCE accumulates over
  unroll  a reduce axis expanded into copies of the loop body (no loop)
  upcast  a parallel axis expanded into copies: each thread / iteration computes several outputs, which is how
          matmul gets a register tile and how loads next to each other become one vector load
  gather  a reduce axis that is no loop at all: the reduce sums where(a == arange, x, 0) along it, which is x
          at position a (indexing by a tensor). lower.py turns it into a load at that position (see
          _gather_axes); it takes no actions
Axes are kept in that order (globals first, upcasts last). Views inside the AST before the reduce have
`full_shape`; views after it have `out_shape` (full_shape with group, reduce, gather and unroll axes set to 1).

Actions are `Opt(op, axis, amount)` with op one of UPCAST, UNROLL, LOCAL, GROUP: split axis `axis` (an index into the
current full_shape) into (size // amount, amount) and give the new inner axis of `amount` the kind the op names;
or SWAP: exchange global axes `axis` and `amount` (the loop order, which decides what stays in cache).
`optimize` chooses them with hand-written heuristics per device (or BEAM search, teeny/engine/search.py);
every applied action is recorded in `applied` and printed at DEBUG=3. NOOPT=1 applies none.
"""
from __future__ import annotations
from dataclasses import dataclass
import itertools, math
from teeny.uop import UOp, Ops, PatternMatcher, UPat, graph_rewrite, toposort
from teeny.dtype import dtypes
from teeny.helpers import getenv

KIND_ORDER = ("global", "local", "group", "reduce", "gather", "unroll", "upcast")
REDUCE_KINDS = ("group", "reduce", "gather", "unroll")  # axes a REDUCE sums over
MAX_EXPANSION = 256  # copies of the loop body one thread may hold (upcast x unroll): more only bloats the code


@dataclass(frozen=True)
class Opt:
  op: str      # UPCAST, UNROLL or LOCAL
  axis: int    # the axis of the current full_shape it splits
  amount: int  # the size of the new inner axis (0: all of the axis)
  def __repr__(self): return f"{self.op}({self.axis},{self.amount})"


class KernelOptError(ValueError):
  """An action that does not apply to this kernel (wrong axis kind, an amount that does not divide, too big)."""


_OP_KIND = {"UPCAST": ("upcast", ("global", "local")), "UNROLL": ("unroll", ("reduce",)), "LOCAL": ("local", ("global",)),
            "GROUP": ("group", ("reduce",)), "SWAP": ("global", ("global",))}


class Kernel:
  def __init__(self, ast: UOp):
    self.ast = ast
    reduces = [u for u in toposort(ast) if u.op is Ops.REDUCE_AXIS]
    out_shape = ast.src[0].src[1].arg.shape
    self.full_shape: tuple[int, ...] = reduces[0].src[0].shape if reduces else out_shape
    reduce_axes = set(reduces[0].arg[1]) if reduces else set()
    # local memory a GROUP takes per work-item: one partial result of each reduce (64-bit ones 8 bytes, the rest at
    # most 4: half is combined in float)
    self.group_bytes_per_item = sum(max(r.dtype.itemsize, 4) for r in reduces)
    gathers = _gather_axes(reduces)
    self.kinds: tuple[str, ...] = tuple("gather" if i in gathers else "reduce" if i in reduce_axes else "global"
                                        for i in range(len(self.full_shape)))
    self.applied: list = []   # what was done, in order: Opt actions and the names of the canonicalizing steps
    self.opts: list[Opt] = []  # the Opt actions alone (what BEAM search varies and caches)

  # ---- the loop space ----
  @property
  def reduce_axes(self) -> tuple[int, ...]: return tuple(i for i, k in enumerate(self.kinds) if k in REDUCE_KINDS)
  @property
  def out_shape(self): return tuple(1 if k in REDUCE_KINDS else s for s, k in zip(self.full_shape, self.kinds))
  def axes_of(self, kind: str) -> list[int]: return [i for i, k in enumerate(self.kinds) if k == kind]
  @property
  def views(self) -> list: return [u.arg for u in toposort(self.ast) if u.op is Ops.VIEW]
  @property
  def expansion(self) -> int:
    """How many copies of the loop body one iteration runs (the product of upcast and unroll sizes)."""
    return math.prod(s for s, k in zip(self.full_shape, self.kinds) if k in ("upcast", "unroll"))

  def copy(self) -> Kernel:
    k = Kernel.__new__(Kernel)
    k.ast, k.full_shape, k.kinds, k.applied, k.opts = self.ast, self.full_shape, self.kinds, list(self.applied), list(self.opts)
    k.group_bytes_per_item = self.group_bytes_per_item
    return k

  # ---- the primitive change of loop space: every view and every reduce follows it ----
  def _transform(self, view_fn, new_full, new_kinds):
    old_full = self.full_shape
    new_axes = tuple(i for i, k in enumerate(new_kinds) if k in REDUCE_KINDS)
    def new_view(v: UOp): return v.replace(arg=view_fn(v.arg, v.arg.shape == old_full))
    def new_reduce(r: UOp): return r.replace(arg=(r.arg[0], new_axes))
    pm = PatternMatcher([(UPat(Ops.VIEW, name="v"), new_view), (UPat(Ops.REDUCE_AXIS, name="r"), new_reduce)])
    self.ast = graph_rewrite(self.ast, pm, fixed_point=False)
    self.full_shape, self.kinds = tuple(new_full), tuple(new_kinds)

  def permute(self, order):
    self._transform(lambda st, full: st.permute(order), [self.full_shape[i] for i in order], [self.kinds[i] for i in order])

  def reshape(self, new_full, new_kinds):
    new_out = tuple(1 if k in REDUCE_KINDS else s for s, k in zip(new_full, new_kinds))
    self._transform(lambda st, full: st.reshape(new_full if full else new_out), new_full, new_kinds)

  # ---- canonicalizing steps (always run; they make the loop space the optimizer reasons about) ----
  def sort_axes(self) -> bool:
    """Put axes in KIND_ORDER (a stable sort, so axes of one kind keep their order)."""
    order = sorted(range(len(self.kinds)), key=lambda i: KIND_ORDER.index(self.kinds[i]))
    if order == list(range(len(order))): return False
    self.permute(order)
    return True

  def reduce_axes_last(self):
    if self.sort_axes(): self.applied.append("reduce_axes_last")

  def merge_axes(self):
    """Merge neighbouring global (or reduce) axes when every view can take the merged shape as one view."""
    i = len(self.full_shape) - 2
    while i >= 0:
      if self.kinds[i] == self.kinds[i + 1] and self.kinds[i] in ("global", "reduce") and self._can_merge(i):
        new_full = self.full_shape[:i] + (self.full_shape[i] * self.full_shape[i + 1],) + self.full_shape[i + 2:]
        self.reshape(new_full, self.kinds[:i + 1] + self.kinds[i + 2:])
        self.applied.append(f"merge({i},{i + 1})")
      i -= 1

  def _can_merge(self, i: int) -> bool:
    for st in self.views:
      shape = st.shape
      merged = shape[:i] + (shape[i] * shape[i + 1],) + shape[i + 2:]
      if len(st.reshape(merged).views) != len(st.views): return False
    return True

  def ensure_parallel_axis(self):
    """Backends parallelize over global axes: a kernel with none (a full reduce) gets a size-1 one."""
    if not self.axes_of("global"):
      self.reshape((1,) + self.full_shape, ("global",) + self.kinds)
      self.applied.append("add_parallel_axis")

  # ---- actions ----
  def apply_opt(self, opt: Opt, renderer):
    """Split `opt.axis` and make its inner part an axis of the kind the op names. Raises KernelOptError (and
    leaves the kernel unchanged) when the action does not apply on this kernel and device."""
    if opt.op not in _OP_KIND: raise KernelOptError(f"unknown optimization {opt.op!r}")
    if opt.op == "SWAP": return self._swap(opt)
    kind, allowed_from = _OP_KIND[opt.op]
    if opt.op in ("LOCAL", "GROUP") and not renderer.has_threads: raise KernelOptError(f"{opt}: the device has no work-groups")
    # a grouped reduce meets its partial sums in one local array: no other work-item or register copies beside it
    if (opt.op == "GROUP" and (self.axes_of("local") or self.axes_of("upcast") or self.axes_of("group"))) or \
       (opt.op in ("LOCAL", "UPCAST") and self.axes_of("group")):
      raise KernelOptError(f"{opt}: GROUP goes alone: no LOCAL, UPCAST or second GROUP with it")
    if not 0 <= opt.axis < len(self.full_shape): raise KernelOptError(f"{opt}: no axis {opt.axis} in {self.full_shape}")
    if self.kinds[opt.axis] not in allowed_from:
      raise KernelOptError(f"{opt}: axis {opt.axis} is a {self.kinds[opt.axis]} axis, {opt.op} takes {'/'.join(allowed_from)}")
    size = self.full_shape[opt.axis]
    amount = size if opt.amount == 0 else opt.amount
    if amount <= 1 or size % amount: raise KernelOptError(f"{opt}: {amount} does not split axis {opt.axis} of size {size}")
    local = math.prod(self.full_shape[a] for a in self.axes_of("local")) * amount
    # the device's work-group limit; a group's partial sums are also combined unrolled, so at most 256 of them
    limit = min(renderer.max_local_size, 256 if kind == "group" else 1 << 30)
    if kind in ("local", "group") and local > limit:
      raise KernelOptError(f"{opt}: work-groups of {local} items (at most {limit} here)")
    if kind == "group" and amount * self.group_bytes_per_item > renderer.local_mem_size:
      raise KernelOptError(f"{opt}: {amount * self.group_bytes_per_item} bytes of local memory "
                           f"(the device has {renderer.local_mem_size} bytes per work-group)")
    if kind in ("upcast", "unroll") and self.expansion * amount > MAX_EXPANSION:
      raise KernelOptError(f"{opt}: {self.expansion * amount} copies of the loop body (the limit is {MAX_EXPANSION})")
    i = opt.axis
    self.reshape(self.full_shape[:i] + (size // amount, amount) + self.full_shape[i + 1:],
                 self.kinds[:i + 1] + (kind,) + self.kinds[i + 1:])
    self.sort_axes()
    self.applied.append(opt)
    self.opts.append(opt)

  def _swap(self, opt: Opt):
    """SWAP(a, b): exchange global axes a and b (which loop is outer: it decides what stays in cache)."""
    a, b = opt.axis, opt.amount
    if a == b or any(not 0 <= x < len(self.kinds) or self.kinds[x] != "global" for x in (a, b)):
      raise KernelOptError(f"{opt}: SWAP takes two different global axes of {self.full_shape} ({self.kinds})")
    order = list(range(len(self.kinds)))
    order[a], order[b] = b, a
    self.permute(order)
    self.applied.append(opt)
    self.opts.append(opt)

  # ---- what the heuristics look at ----
  def input_loads(self) -> list[UOp]:
    """Each input LOAD, in graph order (the order of axis_strides, masked_loads and input_views)."""
    return [u for u in toposort(self.ast) if u.op is Ops.LOAD and len(u.src) > 1 and u.src[1].op is Ops.VIEW]

  def input_views(self) -> list:
    """The ShapeTracker of each input LOAD."""
    return [u.src[1].arg for u in self.input_loads()]

  def output_view(self):
    """The ShapeTracker of the STORE (over out_shape)."""
    return self.ast.src[0].src[1].arg

  def axis_strides(self, axis: int) -> list[int | None]:
    """The stride of `axis` in each input LOAD's view over the loop space (None for a view after the reduce). For
    a stack of views it is the stride in the last one: 0 still means the load ignores the axis, and 1 means
    neighbours in the view that the earlier views map (a padded or windowed image) usually stay neighbours."""
    return [st.views[-1].strides[axis] if st.shape == self.full_shape else None for st in self.input_views()]

  def masked_loads(self) -> list[bool]:
    """For each input LOAD (in axis_strides' order), whether its view pads (some of its indices read nothing)."""
    return [any(v.mask is not None for v in st.views) for st in self.input_views()]

  @property
  def reduce_is_contiguous(self) -> bool:
    """Every load that moves along the innermost reduce loop reads it contiguously (a dot product of rows): then
    the backend may as well vectorize along that loop, with partial sums per accumulator. Loads after the reduce
    (a bias added to its result: stride None) are outside that loop and don't count."""
    reduces = self.axes_of("reduce")
    return bool(reduces) and all(s in (0, 1, None) for s in self.axis_strides(reduces[-1]))

  def name(self) -> str:
    """r_ or E_ (a reduce loop or none) and the loop shape; a gather axis is no loop, so it is not in it."""
    kind = "r" if any(k in REDUCE_KINDS and k != "gather" for k in self.kinds) else "E"
    return f"{kind}_" + "_".join(str(s) for s, k in zip(self.full_shape, self.kinds) if k != "gather")


# ---- gathers: a sum of where(a == arange, x, 0) along an axis is x at a ----

def _gather_axes(reduces: list[UOp]) -> set[int]:
  """Reduce axes along which every reduce of the kernel sums where(a == arange, x, 0), with the arange counting
  along the axis (an arange leaf seen with stride 1 there) and `a` not moving along it: indexing by a tensor, which
  lower.py turns into a load of x at position a. Then the loop over the axis, k*n compare-and-adds for k
  selections from n, becomes k loads."""
  found = None
  for r in reduces:
    here = _gathered(r) if r.arg[0] is Ops.ADD else set()
    found = here if found is None else found & here
  return found or set()


def _gathered(r: UOp) -> set[int]:
  out = set()
  for cond in where_conditions(r.src[0])[0]:
    if cond.op is not Ops.CMPNE or cond.src[1].op is not Ops.CONST or cond.src[1].arg is not True: continue
    ne = cond.src[0]  # a == b is written (a != b) != True
    if ne.op is not Ops.CMPNE: continue
    for a, b in (ne.src, ne.src[::-1]):
      if b.op is not Ops.RANGE or len(b.src) != 1: continue
      view = b.src[0].arg.views
      if len(view) != 1 or view[0].mask is not None: continue
      out |= {axis for axis in r.arg[1] if view[0].strides[axis] == 1 and _still_along(a, axis)}
  return out


def where_conditions(value: UOp) -> tuple[list[UOp], UOp]:
  """value as where(c1, where(c2, ..., 0), 0): the conditions (ANDs split into their terms) and the innermost value."""
  conds = []
  while value.op is Ops.WHERE and value.src[2].op is Ops.CONST and value.src[2].arg == 0:
    conds.append(value.src[0])
    value = value.src[1]
  terms = []
  while conds:
    c = conds.pop()
    if c.op is Ops.AND and c.dtype == dtypes.bool: conds.extend(c.src)
    else: terms.append(c)
  return terms, value


def _still_along(u: UOp, axis: int) -> bool:
  """Whether every load and constant under u reads the same element at every index along axis."""
  for n in toposort(u):
    if n.op is Ops.REDUCE_AXIS: return False
    if n.op is not Ops.VIEW: continue
    last = n.arg.views[-1]
    if last.strides[axis] != 0 or (last.mask is not None and last.mask[axis] != (0, last.shape[axis])): return False
  return True


# ---- the hand-written heuristics ----

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
  cols = [(a, i) for a, st in strides.items() for i, s in enumerate(st) if s == 1 and 0 in st and not masked[i]]
  if not cols:
    if k.reduce_is_contiguous:
      # vectorizing along the reduce needs a reduce of a few vectors at least (not a matmul with inner size 10)
      if k.full_shape[k.axes_of("reduce")[-1]] >= 2 * vector: _dot_tile(k, strides, renderer)
      return
    if any(0 in st for st in strides.values()): return _reuse_tile(k, strides, masked, vector, renderer)
    return _strided_reduce(k, vector, renderer)
  # the last such axis whose size takes whole vectors of columns; else one that takes at least 4, or all of a
  # short one (a gradient x.T @ g with 10 columns tiles x's 512 columns, not g's 10)
  def full(size): return _largest_divisor(size, (vector * 2, vector))
  def width(size): return _largest_divisor(size, (vector // 2, 4)) or (size if 4 < size <= vector * 2 else None)
  fits = [(a, i, full(k.full_shape[a])) for a, i in reversed(cols)] + [(a, i, width(k.full_shape[a])) for a, i in reversed(cols)]
  col, vec, amount = next((f for f in fits if f[2]), (None, None, None))
  if col is None: return
  k.apply_opt(Opt("UPCAST", col, amount), renderer)
  # the tile's rows: an axis input `vec` broadcasts while another input moves along it (splitting `col` moved
  # its inner part to the end, so the other global axes kept their numbers), as many rows as keep the
  # accumulators in registers (32 vector registers on AVX-512 x86)
  rows = [a for a in strides if a != col and strides[a][vec] == 0 and any(s not in (0, None) for s in strides[a])]
  # not an axis the output is contiguous along (the kernel offsets of a convolution's input gradient, innermost in
  # its windows): tiles over it measured 3x slower than over the channels beside it
  rows = [a for a in rows if _element_step(k.output_view(), k, a) != 1] or rows
  if rows:
    # the innermost such axis, unless what moves along it is padded (an image): then the outermost (the batch),
    # where one padding gate serves the whole row of the tile
    padded = any(masked[i] for i, s in enumerate(strides[rows[-1]]) if s not in (0, None))
    row = rows[0] if padded else rows[-1]
    # as many rows as keep what they read over the reduce loop in L1: the next tile reads most of it again. A
    # matmul's row is a few KB of one input row; a convolution's row is a line per channel and kernel row of one
    # image (24 KB for 64 channels of a 3x3): 8 of those streamed from L2 ran at 105 GFLOP/s, 2 at 180
    mover = next(i for i, s in enumerate(strides[row]) if s not in (0, None))
    one, two = _reduce_footprint(k, mover, row, 1), _reduce_footprint(k, mover, row, 2)
    def fits(rows): return one + (rows - 1) * (two - one) <= TILE_ROWS_L1_BYTES  # (rows may share lines: g's columns)
    amount = next((a for a in (8, 5, 4, 3, 2) if fits(a) and k.full_shape[row] % a == 0 and k.expansion * a <= 16 * vector), None)
    if amount: k.apply_opt(Opt("UPCAST", row, amount), renderer)
    # fewer rows than a full tile: widen it instead (more vectors of columns), as far as the columns go
    if (amount or 1) < 8:
      widen = next((w for w in (4, 2) if k.full_shape[col] % w == 0 and k.expansion * w <= 16 * vector), None)
      if widen: k.apply_opt(Opt("UPCAST", col, widen), renderer)


TILE_ROWS_L1_BYTES = 32 << 10  # most of the L1 data cache of one core (x86 of the last years: 32-48 KB)


def _reduce_footprint(k: Kernel, i: int, row: int, rows: int) -> int:
  """Bytes of cache lines that input i reads over one pass of the reduce loops for `rows` neighbouring outputs
  along axis `row`, in the middle of the loop space: counted from the elements the loads read, since padded and
  windowed views (a convolution's image) have strides that say little about memory. A reduce too long to walk
  counts one line per step and row."""
  reduces = k.axes_of("reduce")
  steps = math.prod(k.full_shape[a] for a in reduces)
  if steps > FOOTPRINT_MAX_STEPS: return steps * rows * 64
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


FOOTPRINT_MAX_STEPS = 4096


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
  for axis in rows:
    amount = next((a for a in (8, 4, 2) if k.full_shape[axis] % a == 0 and k.expansion * a <= 16 * vector), None)
    if amount: return k.apply_opt(Opt("UPCAST", axis, amount), renderer)


DOT_TILE_MAX = 24  # accumulators of a dot tile, each a vector register (32 on AVX-512), the rest hold the loads


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
  amounts, expansion = {}, k.expansion
  for n, axis in enumerate(sorted(picked, reverse=True)):
    size = k.full_shape[axis]
    # a short axis (a classifier's 10 outputs) whole, else 4 or 2, and the second up to 8 (3 x 8 beats 3 x 4); at
    # most DOT_TILE_MAX accumulators in all
    choices = ((size,) if size <= DOT_TILE_MAX else ()) + ((8, 4, 2) if n else (4, 2))
    amount = next((a for a in choices if size % a == 0 and expansion * a <= DOT_TILE_MAX), None)
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


def apply_heuristics(k: Kernel, renderer):
  """The default actions for a kernel on a device. An action that turns out not to apply stops the heuristics and
  leaves the kernel as the actions before it made it."""
  vector = renderer.vector_width
  try:
    if not _group_few_outputs(k, renderer): _register_tile(k, vector, renderer)
  except KernelOptError: pass


def _group_few_outputs(k: Kernel, renderer) -> bool:
  """On a GPU a reduce with few outputs leaves most of the device idle: split each output's reduce across the
  work-items of a group (GROUP). CPUs have few cores: the two-kernel split of big sums (Tensor) serves them."""
  if not renderer.is_gpu or not k.axes_of("reduce"): return False
  axis = k.axes_of("reduce")[-1]
  if math.prod(k.full_shape[a] for a in k.axes_of("global")) >= 4096 or k.full_shape[axis] < 256: return False
  # the largest group the device takes (work-group size and local memory, asked of it: see apply_opt)
  fits = [a for a in (256, 128, 64, 32, 16) if a <= renderer.max_local_size
          and a * k.group_bytes_per_item <= renderer.local_mem_size]
  amount = _largest_divisor(k.full_shape[axis], fits)
  if amount is None: return False
  k.apply_opt(Opt("GROUP", axis, amount), renderer)
  return True


def optimize(kernel: Kernel, renderer, opts: list[Opt] | None = None) -> Kernel:
  """Canonicalize the loop space, then apply `opts` when given (BEAM's choice, a test's), else the heuristics'.
  NOOPT=1 keeps only what correctness needs."""
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
