"""One kernel's AST: KernelBuilder turns the graph under a realize point into
SINK(STORE(DEFINE_GLOBAL(0), VIEW(out), value)), value built from LOAD(DEFINE_GLOBAL(i), VIEW(st)), CONST(VIEW(st)),
DEFINE_VAR(VIEW(st)) (a constant passed as a value argument: items.is_value_arg), RANGE(VIEW(st)) (the arange
leaf), ALU ops and REDUCE_AXIS. Movement ops never reach the AST: they are pushed down
through elementwise ops and folded into the views of the loads. When the graph under a realize point can't be one
kernel, the builder raises Unfusable with the node to realize on its own first (teeny/schedule/kernelize.py then
tries again with it as a realize point).

The push-down (KernelBuilder._push/_make) is a hand-written walk, not a graph_rewrite, on purpose. It runs top
down: a node is rebuilt once for every sequence of movement ops it is seen through, and what it becomes depends on
the whole sequence (a padded elementwise value is masked when the composed view still has a mask, which a later
SHRINK may remove). graph_rewrite works bottom up, node by node: the same result would need a MOVEMENT node made
for every (node, move) step and rewritten again, plus a pass first to cut the graph at realized nodes (a rewrite
descends into every source). Measured (2026-12-03: the MLP 784-512-512-10 SGD step of bench_overhead, LLVM, a
schedule-cache miss, a timer around _push): the miss takes ~110 ms, ~75 ms of it in the push-down, which builds
1,271 (node, moves) pairs in 104 pushes; a new hash-consed UOp costs 1-8 us on the shared 2-core machine. Misses
are rare (the cache serves every later step), so this is not about the tiny-op loop: the walk stays because the
rewrite would build more nodes for the same ASTs, and any change to the ASTs it makes is a behaviour change
(tools/replay.py).
"""
from __future__ import annotations
from dataclasses import dataclass
import math
from teeny.dtype import dtypes
from teeny.uop import UOp, Ops, ALU, ELEMENTWISE, MOVEMENT, PatternMatcher, UPat, graph_rewrite, toposort
from teeny.view import ShapeTracker, strides_for
from teeny.renderer import value_var_arg
from teeny.renderer.tuning import Tuning
from teeny.schedule.items import buffer_of


class SlotTable:
  """The buffers of a schedule being made, as numbers (slots): they stand for buffers, which are made only when a
  cached schedule is instantiated (cache.CachedSchedule). Slots [0, n_inputs) are the graph's inputs in walk
  order (its buffers, and the constants passed as values, which take no memory: see items.is_value_arg), then one
  per realize point (in toposort order, then those added while kernels are built); an ASSIGN's slot is its
  target's."""
  def __init__(self, nodes: list[UOp], inputs: list, realize: set, device_of: dict[UOp, str]):
    self.n_inputs = len(inputs)
    self.device = [None if type(b) is UOp else b.device for b in inputs]
    self.size = [0 if type(b) is UOp else b.size for b in inputs]
    self.dtype = [b.dtype for b in inputs]
    self.of: dict[UOp, int] = {}  # BUFFER node or realize point -> its slot
    self.input_slot = {b: i for i, b in enumerate(inputs)}
    for n in nodes:
      if n.op is Ops.BUFFER: self.of[n] = self.input_slot[n.arg]
      elif n in realize: self.add(n, device_of[n])

  def add(self, n: UOp, device: str):
    """Give realize point n its slot: its target's for an ASSIGN, else a new one at the end (the cached schedule
    numbers them again in the order kernels use them, so the order here is free)."""
    if n.op is Ops.ASSIGN: self.of[n] = self.of_view(n.src[0])
    else:  # (a value constant realized on its own, Tensor(2.5), gets a buffer: its kernel stores the value)
      self.of[n] = len(self.size)
      self.device.append(device)
      self.size.append(n.size)
      self.dtype.append(n.dtype)

  def of_view(self, view: UOp) -> int:
    """The slot of the input buffer behind a buffer view."""
    return self.input_slot[buffer_of(view)]


@dataclass
class ScheduledKernel:
  """A kernel while the scheduler orders it, with what it knows about it then."""
  ast: UOp                                  # a kernel AST (SINK), or a COPY node for a copy between devices
  slots: list[int]                          # the slot of each kernel argument (see SlotTable)
  outputs: list[UOp]                        # graph nodes this item realizes
  fused_reduces: list[UOp] | tuple = ()     # reduces computed inside this kernel
  deps: set | frozenset = frozenset()       # realized nodes it reads (made by other items of the schedule)
  old_reads: set | frozenset = frozenset()  # slots of input buffers it reads as they were before the schedule ran
  out_slots: list | None = None             # the slot each of `outputs` is stored into (slots[0] if one)
  values: list | tuple = ()                 # the slot of each value argument (its DEFINE_VAR named value_name(i))

  def __post_init__(self):
    if self.out_slots is None: self.out_slots = self.slots[:1]


def _unreshaped(value: UOp, is_leaf) -> UOp:
  """The value under the reshapes (and PADs by nothing) on top of it: a kernel stores its result contiguously, in
  the same order whatever shape it has, so it may loop over the shape the value was computed in. Reshaped to the
  result's shape instead, every load would carry the reshape's divisions (an input gradient of max_pool2d,
  computed as (..., out, kernel) and read as the input's (..., out * kernel), loaded the output gradient through
  index // 2)."""
  while (value.op in (Ops.RESHAPE, Ops.DETACH) or _pads_nothing(value)) and not is_leaf(value):
    value = value.src[0]  # (a DETACH: its first source)
  return value


def _pads_nothing(n: UOp) -> bool:
  """A PAD by zero elements: the mark of a result PyTorch returns as a copy (ops/join.py _copy_result), which
  changes neither the values nor their order (a max pooling's gradient has three of them between its reshapes)."""
  return n.op is Ops.PAD and all(p == (0, 0) for p in n.arg)


class Unfusable(Exception):
  """Raised while building a kernel when `node` must be realized on its own first."""
  def __init__(self, node: UOp): self.node = node


# leaves that read no memory: a kernel computes them where they are used (RANGE is the arange leaf 0..n-1)
_CONSTANT_LEAVES = (Ops.CONST, Ops.RANGE, Ops.BIND)


@dataclass(frozen=True)
class KernelLimits:
  """What the scheduler asks of a device: the most arguments (buffers and values) one kernel may take, its tuned
  numbers, and whether its kernels run their loops one after another in one thread (the CPU: no work-items), so
  a reduce read back over the axes it reduced may be computed inside its reader (see KernelBuilder._lifted)."""
  max_bufs: int
  tuning: Tuning
  lift_reduces: bool = False


class KernelBuilder:
  """Builds the AST of the kernel that realizes `root` on a device with these limits."""
  def __init__(self, root: UOp, realize: set, table: SlotTable, limits: KernelLimits):
    self.root, self.realize, self.table = root, realize, table
    self.max_bufs, self.tuning = limits.max_bufs, limits.tuning
    out = table.of[root]
    self.slots: list[int] = [out]
    # the output is argument 0; an ASSIGN that reads its own target reads it through the same argument
    self.globals: dict[int, UOp] = {out: UOp(Ops.DEFINE_GLOBAL, table.dtype[out].ptr(), (), 0)}
    self.reads: dict[UOp, frozenset] = {}  # AST node -> the arguments it reads (DEFINE_GLOBALs and value DEFINE_VARs)
    self.deps: set[UOp] = set()            # realized nodes read
    self.old_reads: set[int] = set()       # slots of input buffers read as they were before the schedule
    self.values: list[int] = []            # slots of the constants passed as value arguments, in argument order
    self.asked: set[UOp] = set()           # nodes whether realized or not decided what this kernel is
    self.lift_reduces = limits.lift_reduces
    self.plain: set[UOp] = set()           # the reduces whose loops are the kernel's own (its reduce axes)
    self.nested: set[UOp] = set()          # reduces read inside another reduce's input (lifted, or realized first)
    self.plain_axes: set[int] = set()      # their axes
    self.out_space: tuple = ()             # the loop space before any reduce is lifted
    self.rank = 0                          # axes of the loop space so far: the output's, then lifted reduces' own
    self.space_size = 0                    # elements of the loop space before any reduce is lifted
    self.lifted_axes: dict[UOp, tuple] = {}  # lifted reduce -> its axes in the loop space
    self.lifts: dict = {}                  # (reduce, moves) -> (its input's moves, its axes), or None: not lifted

  def build(self, out_space: tuple | None = None) -> ScheduledKernel:
    """The kernel; a write (ASSIGN) with no reduce of its own may be given the loop space to run over (another
    kernel's, to be merged into it: see kernelize._merge_writes)."""
    root = self.root
    value_node = root.src[1] if root.op is Ops.ASSIGN else (root.src[0] if root.op is Ops.CONTIGUOUS else root)
    reduces = self._fused_reduces(value_node)
    if reduces and reduces[0].size != value_node.size:
      if not self.lift_reduces: raise Unfusable(reduces[0])
      reduces = []  # each is read back over the axes it reduced: lifted, none is the kernel's own
    for r in reduces:
      if r in self.nested: raise Unfusable(r)  # the kernel's own reduce, also read inside another: a kernel first
    for r in reduces: self._check_broadcast_work(r)
    if out_space is None:
      # (a write keeps its target's shape: the view it writes through may be strided, not a contiguous buffer)
      plain = value_node.shape if root.op is Ops.ASSIGN else _unreshaped(value_node, self._is_leaf).shape
      out_space = reduces[0].shape if reduces else plain
    self.plain, self.plain_axes = set(reduces), set(reduces[0].arg[1]) if reduces else set()
    self.out_space, self.rank = out_space, len(out_space)
    self.space_size = reduces[0].src[0].size if reduces else math.prod(out_space)
    # lifting needs the outermost axis to be a loop of the output's, which the CPU's cores split between them
    if not out_space or out_space[0] <= 1 or any(0 in r.arg[1] for r in reduces): self.lift_reduces = False
    value = self._push(value_node, (("RESHAPE", out_space),))
    out_st = _written_view(root).reshape(out_space) if root.op is Ops.ASSIGN else ShapeTracker.from_shape(out_space)
    if self.rank > len(out_space): value, out_st = _padded_views(value, self.rank), _padded(out_st, self.rank)
    self.asked.add(value_node)
    if root.op is Ops.ASSIGN and value_node not in self.realize: self._check_assign_reads(value, out_st)
    glob = self.globals[self.slots[0]]
    ast = UOp(Ops.SINK, dtypes.void, (UOp(Ops.STORE, dtypes.void, (glob, UOp(Ops.VIEW, dtypes.void, (), out_st), value)),))
    return ScheduledKernel(ast, self.slots, [root], list(reduces) + list(self.lifted_axes), self.deps, self.old_reads,
                           values=self.values)

  def _is_leaf(self, n: UOp) -> bool:
    """Whether the kernel reads n from memory (a buffer, or another kernel's result) instead of computing it."""
    self.asked.add(n)
    return (n in self.realize and n is not self.root) or n.op is Ops.BUFFER

  def _check_broadcast_work(self, reduce: UOp):
    """Elementwise work that the reduce reads broadcast (expanded) by a large factor would be recomputed that many
    times: the relu mask in front of a matmul, once per output column. Realize it on its own first (one cheap
    pass) so the reduce reads it like any buffer. Small reduces keep it fused: a kernel launch costs more there."""
    if reduce.src[0].size < self.tuning.broadcast_realize_min_size: return
    stack, seen = [(reduce.src[0], 1)], set()
    while stack:
      n, factor = stack.pop()
      if (n, factor) in seen or self._is_leaf(n) or n.op in _CONSTANT_LEAVES: continue
      seen.add((n, factor))
      if n.op is Ops.EXPAND: factor *= math.prod(n.shape) // max(1, math.prod(n.src[0].shape))
      elif n.op in ALU and factor >= self.tuning.broadcast_realize_factor and self._worth_storing(n): raise Unfusable(n)
      if n.op is not Ops.REDUCE_AXIS: stack.extend((src, factor) for src in computed_from(n))

  def _worth_storing(self, start: UOp) -> bool:
    """Whether computing `start` loads anything (work on constants alone is as cheap as reading its result) and
    uses no arange leaf: a value of the loop index (a tensor index compared with an arange) would be stored as big
    as the loop space, costs a compare where storing it costs a load, and codegen may turn the reduce it feeds
    into a gather (codegen/opt.py), which a stored one-hot would hide. Its sources may still be worth storing."""
    stack, seen, loads = [start], set(), False
    while stack:
      n = stack.pop()
      if n in seen: continue
      seen.add(n)
      if n.op is Ops.RANGE: return False
      if self._is_leaf(n): loads = True
      else: stack.extend(computed_from(n))
    return loads

  def _fused_reduces(self, start: UOp) -> list[UOp]:
    """Reduces this kernel computes; all must share one input shape and axes, none may feed another."""
    found, seen, stack = [], set(), [(start, False)]
    while stack:
      n, inside_reduce = stack.pop()
      if (n, inside_reduce) in seen or self._is_leaf(n): continue
      seen.add((n, inside_reduce))
      if n.op is Ops.REDUCE_AXIS:
        if inside_reduce:
          if not self.lift_reduces: raise Unfusable(n)
          self.nested.add(n)  # (lifted where it is read, or realized first: see _lifted)
          continue
        if found and (n.src[0].shape != found[0].src[0].shape or n.arg[1] != found[0].arg[1]): raise Unfusable(n)
        if n not in found: found.append(n)
        stack.append((n.src[0], True))
        continue
      stack.extend((s, inside_reduce) for s in computed_from(n))
    return found

  def _load(self, slot: int, shape, moves) -> UOp:
    dtype = self.table.dtype[slot]
    if slot not in self.globals:
      self.globals[slot] = UOp(Ops.DEFINE_GLOBAL, dtype.ptr(), (), len(self.slots))
      self.slots.append(slot)
    st = _apply(ShapeTracker.from_shape(shape), moves)
    return UOp(Ops.LOAD, dtype, (self.globals[slot], UOp(Ops.VIEW, dtypes.void, (), st)))

  def _children(self, n: UOp, moves) -> list:
    if self._is_leaf(n) or n.op in _CONSTANT_LEAVES: return []
    if n.op in MOVEMENT: return [(n.src[0], ((n.op.name, n.arg),) + moves)]
    if n.op is Ops.REDUCE_AXIS:
      lifted = self._lifted(n, moves)
      return [(n.src[0], lifted[0] if lifted else ())]
    return [(s, moves) for s in computed_from(n)]

  def _push(self, start: UOp, moves: tuple) -> UOp:
    """The AST for `start` seen through the movement ops `moves` (applied in order), built bottom-up iteratively."""
    memo: dict = {}
    stack = [(start, moves, False)]
    while stack:
      n, mv, ready = stack.pop()
      if (n, mv) in memo: continue
      kids = self._children(n, mv)
      if not ready:
        stack.append((n, mv, True))
        stack.extend((c, cm, False) for c, cm in kids if (c, cm) not in memo)
        continue
      ast = self._make(n, mv, [memo[k] for k in kids])
      if ast.op is Ops.LOAD: self.reads[ast] = frozenset([ast.src[0]])
      elif ast.op is Ops.DEFINE_VAR: self.reads[ast] = frozenset([ast])  # a value is a kernel argument too
      else: self.reads[ast] = frozenset().union(*(self.reads[memo[k]] for k in kids))
      memo[(n, mv)] = ast
    return memo[(start, moves)]

  def _make(self, n: UOp, moves, srcs: list[UOp]) -> UOp:
    if n.op is Ops.BUFFER:
      slot = self.table.of[n]
      self.old_reads.add(slot)
      return self._load(slot, n.shape, moves)
    if self._is_leaf(n):
      self.deps.add(n)
      return self._load(self.table.of[n], n.shape, moves)
    if n.op in _CONSTANT_LEAVES:  # a constant, or an arange leaf (RANGE): seen through the moves like a buffer
      view = UOp(Ops.VIEW, dtypes.void, (), _apply(ShapeTracker.from_shape(n.shape), moves))
      slot = self.table.input_slot.get(n) if n.op is not Ops.RANGE else None
      if slot is not None: return self._value(slot, n, view)
      return UOp(n.op, n.dtype, (view,), n.arg)
    if n.op in MOVEMENT or n.op is Ops.DETACH: return srcs[0]
    if n.op is Ops.REDUCE_AXIS:
      lifted = self._lifted(n, moves)
      if lifted is not None:
        # its loops run as they are (no actions, see codegen/kernel.py): where they stride through memory, the
        # reduce's own kernel (vectors across its outputs) is faster: a transposed softmax took 1.6x as long
        if not _contiguous_along(srcs[0], lifted[1]): raise Unfusable(n)
        return UOp(Ops.REDUCE_AXIS, n.dtype, (srcs[0],), (n.arg[0], lifted[1]) + n.arg[2:])
      st = _apply(ShapeTracker.from_shape(n.shape), moves)
      if st.shape != n.shape or not st.contiguous or n not in self.plain: raise Unfusable(n)
      return UOp(Ops.REDUCE_AXIS, n.dtype, (srcs[0],), n.arg)
    if n.op in ELEMENTWISE:
      if len(frozenset().union(*(self.reads[s] for s in srcs))) >= self.max_bufs: self._split(n, srcs)
      out = UOp(n.op, n.dtype, tuple(srcs), n.arg)
      if any(name == "PAD" for name, _ in moves):
        # padding an elementwise result pads with 0, not with f(0): mask the value itself
        st = _apply(ShapeTracker.from_shape(n.shape), moves)
        if any(v.mask is not None for v in st.views):
          valid = UOp(Ops.CONST, dtypes.bool, (UOp(Ops.VIEW, dtypes.void, (), st),), True)
          out = UOp(Ops.WHERE, n.dtype, (valid, out, UOp(Ops.CONST, n.dtype, (UOp(Ops.VIEW, dtypes.void, (), st),), _zero(n.dtype))))
      return out
    raise RuntimeError(f"scheduler can't place {n.op} in a kernel")

  def _lifted(self, n: UOp, moves) -> tuple | None:
    """A reduce read back over the axes it reduced (a row's max in softmax's x - max), computed inside its reader
    on the CPU instead of as a kernel of its own: its reduced axes become axes of this kernel's loop space of
    their own (appended after the others), and its input is seen in that space, so lowering gives it loops of its
    own and the linearizer runs them inside the loops of the axes it keeps (codegen/linearize.py), once per row.
    Returns (the moves its input is seen through, its axes), or None where it stays a kernel of its own: the
    device has work-items (each would compute the whole row again), the reduce is the kernel's own, reads more
    elements than the loop space has (a matmul: it needs a kernel tuned for it), doesn't keep the outermost axis
    (each core would compute it whole), or would be computed again for every index of an axis it doesn't read
    (an axis it is read back over that is a loop outside one it keeps)."""
    key = (n, moves)
    if key not in self.lifts:
      self.lifts[key] = self._lift(n, moves) if self.lift_reduces and n not in self.plain else None
    return self.lifts[key]

  def _lift(self, n: UOp, moves) -> tuple | None:
    if n.src[0].size > self.space_size: return None
    seen = _apply(ShapeTracker.from_shape(n.shape), moves)
    if len(seen.views) != 1 or seen.views[0].mask is not None or seen.views[0].offset != 0: return None
    view = seen.views[0]
    at = _kept_axes(n, view)
    if at is None or 0 not in at.values(): return None
    # loops run the output's axes outermost, then the kernel's own reduce axes, then lifted reduces' axes in order
    loop = lambda axis: (axis >= len(self.out_space) or axis in self.plain_axes, axis)  # noqa: E731
    spread = [loop(axis) for axis, (size, stride) in enumerate(zip(view.shape, view.strides)) if size > 1 and stride == 0]
    if spread and max(loop(a) for a in at.values()) > min(spread): return None
    axes = self.lifted_axes.get(n, tuple(range(self.rank, self.rank + len(n.arg[1]))))
    rank = max(len(view.shape), axes[-1] + 1)
    if rank < len(n.shape): return None
    if n not in self.lifted_axes:
      self.lifted_axes[n] = axes
      self.rank += len(axes)
    return _input_moves(n, at, axes, rank), axes

  def _value(self, slot: int, leaf: UOp, view: UOp) -> UOp:
    """A constant passed as a value argument (items.is_value_arg): the kernel's DEFINE_VAR for it, seen through
    a view like a constant. Numbered in the kernel's own order, so kernels that differ only in their numbers are
    one AST (one compile)."""
    if slot not in self.values: self.values.append(slot)
    bounds = leaf.arg[1:3] if leaf.op is Ops.BIND else ()  # (a Variable's range lets index math simplify)
    return UOp(Ops.DEFINE_VAR, leaf.dtype, (view,), value_var_arg(self.values.index(slot), *bounds))

  def _split(self, n: UOp, srcs: list[UOp]):
    """Too many arguments (buffers and values) for one kernel: realize the source that reads the most of them on
    its own."""
    inner = [(len(self.reads[ast]), s) for s, ast in zip(n.src, srcs) if not self._is_leaf(s) and s.op not in _CONSTANT_LEAVES]
    raise Unfusable(max(inner, key=lambda x: x[0])[1])

  def _check_assign_reads(self, value: UOp, out_st: ShapeTracker):
    """An ASSIGN may read its own target only at the element it writes; otherwise compute the value first."""
    target = self.globals[self.slots[0]]
    for u in toposort(value):
      if u.op is Ops.LOAD and u.src[0] is target and u.src[1].arg != out_st: raise Unfusable(self.root.src[1])


def _zero(dtype): return False if dtype == dtypes.bool else (0.0 if dtypes.is_float(dtype) else 0)


def computed_from(n: UOp) -> tuple:
  """The sources a kernel computes n from: a DETACH's first only (the others are there for a custom gradient rule,
  gradient.custom_gradients, and would only add loads)."""
  return n.src[:1] if n.op is Ops.DETACH else n.src


def _written_view(assign: UOp) -> ShapeTracker:
  """Where an ASSIGN stores its value: its target buffer seen through the target's shape and the movement ops of
  the view written through (arg[1]), built the way loads of that view are (so a value that reads the target at
  the element it writes is recognised: see _check_assign_reads)."""
  target = assign.src[0]
  moves = [("RESHAPE", target.arg)] if target.op is Ops.RESHAPE else []
  moves += [(op.name, arg) for op, arg in assign.arg[1]]
  return _apply(ShapeTracker.from_shape((buffer_of(target).size,)), moves)


def _kept_axes(n: UOp, view) -> dict[int, int] | None:
  """Where each axis reduce n keeps is in the loop space that `view` (n's result, seen from its reader) spans: the
  axis it is seen along, with the same size and stride; None where the view does more than lay the kept axes out
  and read them back along others (it merges or splits them)."""
  reduced, keep_stride, at = n.arg[1], strides_for(n.shape), {}
  for axis, (size, stride) in enumerate(zip(view.shape, view.strides)):
    if size == 1 or stride == 0: continue
    kept = [a for a in range(len(n.shape)) if a not in reduced and a not in at and (n.shape[a], keep_stride[a]) == (size, stride)]
    if not kept: return None
    at[kept[0]] = axis
  if any(n.shape[a] > 1 and a not in at for a in range(len(n.shape)) if a not in reduced): return None
  return at


def _contiguous_along(value: UOp, axes: tuple) -> bool:
  """Whether every load under value reads memory contiguously (or not at all) along the loop space's `axes`."""
  for u in toposort(value):
    if u.op is not Ops.LOAD: continue
    last = u.src[1].arg.views[-1]
    if any(a < len(last.shape) and last.shape[a] > 1 and last.strides[a] not in (0, 1) for a in axes): return False
  return True


def _input_moves(n: UOp, at: dict[int, int], axes: tuple, rank: int) -> tuple:
  """The moves that show reduce n's input in the loop space: each kept axis where it is read (`at`), each reduced
  axis at the reduce's own axis, the rest (size 1) at the places left over."""
  place = {**at, **dict(zip(sorted(n.arg[1]), axes))}
  free = iter(sorted(set(range(rank)) - set(place.values())))
  order = [0] * rank
  for old in range(rank): order[place[old] if old in place else next(free)] = old
  return ("RESHAPE", n.src[0].shape + (1,) * (rank - len(n.shape))), ("PERMUTE", tuple(order))


def _padded(st: ShapeTracker, rank: int) -> ShapeTracker:
  """st with size-1 axes appended up to `rank`: the axes of reduces lifted into the kernel after it was made."""
  return st.reshape(st.shape + (1,) * (rank - len(st.shape))) if len(st.shape) < rank else st


def _pad_view(ctx: int, v: UOp) -> UOp | None:
  return v.replace(arg=_padded(v.arg, ctx)) if len(v.arg.shape) < ctx else None


_PAD_VIEWS = PatternMatcher([(UPat(Ops.VIEW, name="v"), _pad_view)])


def _padded_views(value: UOp, rank: int) -> UOp:
  """Every view under value given the loop space's rank (a kernel with lifted reduces: see KernelBuilder._lifted)."""
  return graph_rewrite(value, _PAD_VIEWS, rank)


def _apply(st: ShapeTracker, moves) -> ShapeTracker:
  for name, arg in moves: st = st.apply(name, arg)
  return st
