"""The kernel's loop space: a Kernel is an AST plus the shape of its loop space, and optimizations are explicit
actions (`Opt`) on that loop space that never change what the kernel computes. This is what lowering (lower.py)
reads; which actions to take is heuristics.py's business (or BEAM search's).

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
heuristics.optimize chooses them (or BEAM search, teeny/engine/search.py; NOOPT=1 applies none). Every applied
action is recorded in `applied` and printed at DEBUG=3. The canonicalizing steps (sort_axes, merge_axes,
ensure_parallel_axis) always run before any action: heuristics.optimize calls them.
"""
from __future__ import annotations
from dataclasses import dataclass
from typing import Callable
import math
from teeny.uop import UOp, Ops, PatternMatcher, UPat, graph_rewrite, toposort
from teeny.symbolic import where_conditions

KIND_ORDER = ("global", "local", "group", "reduce", "gather", "unroll", "upcast")
REDUCE_KINDS = ("group", "reduce", "gather", "unroll")  # axes a REDUCE sums over


@dataclass(frozen=True)
class Opt:
  op: str      # UPCAST, UNROLL, LOCAL or GROUP (split an axis), or SWAP (exchange two global axes)
  axis: int    # the axis of the current full_shape it splits (SWAP: the first of the two)
  amount: int  # the size of the new inner axis (0: all of the axis); SWAP: the second axis
  def __repr__(self): return f"{self.op}({self.axis},{self.amount})"


@dataclass(frozen=True)
class LoopSpace:
  """A kernel's loop space as lowering reads it (Kernel.loop_space): plain facts, so lower.py never calls back
  into the optimizer's Kernel."""
  ast: UOp
  name: str
  full_shape: tuple[int, ...]
  kinds: tuple[str, ...]              # each axis's kind (global, local, group, reduce, gather, upcast, unroll)
  axes: dict[str, tuple[int, ...]]    # kind -> its axes, in order (every kind of KIND_ORDER, maybe none)
  reduce_is_contiguous: bool          # see Kernel.reduce_is_contiguous
  max_offset: int                     # the largest element offset any view reaches
  loop_elements: int                  # the most indices one nest of loops runs through (see Kernel.loop_space)
  lifted: bool = False                # reduces with loops of their own (see Kernel.lifted)


class KernelOptError(ValueError):
  """An action that does not apply to this kernel (wrong axis kind, an amount that does not divide, too big)."""


_OP_KIND = {"UPCAST": ("upcast", ("global", "local")), "UNROLL": ("unroll", ("reduce",)), "LOCAL": ("local", ("global",)),
            "GROUP": ("group", ("reduce",)), "SWAP": ("global", ("global",))}


@dataclass(frozen=True)
class _LoopSpaceChange:
  """A change of loop space, as the rewrite of the AST's views and reduces sees it (Kernel._transform)."""
  view_fn: Callable       # (ShapeTracker, whether it is over full_shape) -> the new ShapeTracker
  old_full: tuple         # the full_shape before the change
  new_axes: tuple         # the reduce axes after it
  order: tuple | None = None  # a permutation's new order of the axes: each reduce's own axes follow it


def _new_view(ctx: _LoopSpaceChange, v: UOp) -> UOp: return v.replace(arg=ctx.view_fn(v.arg, v.arg.shape == ctx.old_full))
def _new_reduce(ctx: _LoopSpaceChange, r: UOp) -> UOp:
  # (a kernel with lifted reduces has reduces over different axes: a permutation moves each its own; every other
  # kernel's reduces share all of its reduce axes, which a permutation moves to new_axes the same way)
  axes = ctx.new_axes if ctx.order is None else tuple(sorted(ctx.order.index(a) for a in r.arg[1]))
  return r.replace(arg=(r.arg[0], axes) + r.arg[2:])


_follow_loop_space = PatternMatcher([(UPat(Ops.VIEW, name="v"), _new_view), (UPat(Ops.REDUCE_AXIS, name="r"), _new_reduce)])


class Kernel:
  def __init__(self, ast: UOp):
    self.ast = ast
    nodes = toposort(ast)
    reduces = [u for u in nodes if u.op is Ops.REDUCE_AXIS]
    out_shape = ast.src[0].src[1].arg.shape
    self.full_shape: tuple[int, ...] = reduces[0].src[0].shape if reduces else out_shape
    reduce_axes = set(reduces[0].arg[1]) if reduces else set()
    # reduces over axes of their own (lifted by the scheduler: schedule/builder.py KernelBuilder._lifted) have views
    # of several shapes: the loop space is all of their axes, and its actions don't apply (see apply_opt)
    shapes = {u.arg.shape for u in nodes if u.op is Ops.VIEW}
    reduced = tuple(1 if i in reduce_axes else s for i, s in enumerate(self.full_shape))
    self.lifted = len({r.arg[1] for r in reduces}) > 1 or out_shape != reduced or not shapes <= {self.full_shape, reduced}
    if self.lifted:
      self.full_shape = tuple(max(sizes) for sizes in zip(*shapes))
      reduce_axes = {a for r in reduces for a in r.arg[1]}
    # local memory a GROUP takes per work-item: one partial result of each reduce (64-bit ones 8 bytes, the rest at
    # most 4: half is combined in float)
    self.group_bytes_per_item = sum(max(r.dtype.itemsize, 4) for r in reduces)
    gathers = _gather_axes(reduces) if not self.lifted else set()
    self.kinds: tuple[str, ...] = tuple("gather" if i in gathers else "reduce" if i in reduce_axes else "global"
                                        for i in range(len(self.full_shape)))
    self.applied: list = []   # what was done, in order: Opt actions and the names of the canonicalizing steps
    self.opts: list[Opt] = []  # the Opt actions alone (what BEAM search varies and caches)
    if self.lifted: self.sort_axes()  # (the output's axes first: lowering numbers its loops so; it takes no other step)

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
    k.group_bytes_per_item, k.lifted = self.group_bytes_per_item, self.lifted
    return k

  # ---- the primitive change of loop space: every view and every reduce follows it ----
  def _transform(self, view_fn, new_full, new_kinds, order: tuple | None = None):
    """view_fn(view, over_full_shape) gives each view its new shape; reduces get the new reduce axes (or, for a
    permutation in `order`, their own axes moved)."""
    new_axes = tuple(i for i, k in enumerate(new_kinds) if k in REDUCE_KINDS)
    change = _LoopSpaceChange(view_fn, self.full_shape, new_axes, order)
    self.ast = graph_rewrite(self.ast, _follow_loop_space, change, fixed_point=False)
    self.full_shape, self.kinds = tuple(new_full), tuple(new_kinds)

  def permute(self, order):
    self._transform(lambda st, full: st.permute(order), [self.full_shape[i] for i in order], [self.kinds[i] for i in order],
                    tuple(order))

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
      if len(st.reshape(merged).views) > len(st.views): return False  # (fewer: a reshape back dropped a view)
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
    if self.lifted: raise KernelOptError(f"{opt}: a kernel with lifted reduces (loops of their own) takes no actions")
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
    max_expansion = renderer.tuning.max_expansion
    if kind in ("upcast", "unroll") and self.expansion * amount > max_expansion:
      raise KernelOptError(f"{opt}: {self.expansion * amount} copies of the loop body (the limit is {max_expansion})")
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

  def loop_space(self) -> LoopSpace:
    """What lowering reads of this kernel, taken once the optimizer is done (codegen/lower.py)."""
    axes = {kind: tuple(self.axes_of(kind)) for kind in KIND_ORDER}
    worst_offset = 0  # the largest element offset a view reaches (past 2^31 elements, indices need 64 bits)
    for st in self.views:
      for v in st.views:
        worst_offset = max(worst_offset, abs(v.offset) + sum(abs(stride) * (n - 1) for n, stride in zip(v.shape, v.strides)))
    # every index of the loop space, except with lifted reduces: their loops are not nested in each other, so the
    # most one nest runs through is one view's shape (the output's, or one reduce's input)
    elements = max(math.prod(st.shape) for st in self.views) if self.lifted else math.prod(self.full_shape)
    return LoopSpace(self.ast, self.name(), self.full_shape, self.kinds, axes, self.reduce_is_contiguous, worst_offset,
                     elements, self.lifted)

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


def _still_along(u: UOp, axis: int) -> bool:
  """Whether every load and constant under u reads the same element at every index along axis."""
  for n in toposort(u):
    if n.op is Ops.REDUCE_AXIS: return False
    if n.op is not Ops.VIEW: continue
    last = n.arg.views[-1]
    if last.strides[axis] != 0 or (last.mask is not None and last.mask[axis] != (0, last.shape[axis])): return False
  return True


