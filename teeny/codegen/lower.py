"""Lowering: an optimized Kernel -> a graph of loops and index math that linearize.py can order.

The parallel axes become SPECIAL thread ids (OpenCL) or RANGE loops whose outermost bounds are kernel
arguments (LLVM: the runtime splits that loop across cores); local axes become OpenCL local ids. Reduce axes
become RANGE loops. Upcast and unrolled axes become no loop at all: their index is a LANE placeholder, and the
graph is copied once per value of it (unrolled copies are combined before the accumulator, upcast copies each
store an output with accumulators of their own), which is where register tiles and vector code come from. Views become
index expressions and validity gates, reduces become accumulators (a sum of where(c, x, 0) steps under the mask:
_accumulate), half, bfloat16 and fp8 arithmetic moves to float32 (bfloat16 and fp8 become bits in memory: lowfloat.py), and the
symbolic rules of symbolic.py simplify the result. A gather axis (kernel.py) becomes no loop: the reduce along it sums
where(a == arange, x, 0), which is x loaded at position a (see _fold_gather).
"""
from __future__ import annotations
from dataclasses import dataclass, field
import itertools, math
from teeny.dtype import dtypes, DType, NARROW_FLOATS
from teeny.uop import UOp, Ops, PatternMatcher, UPat, graph_rewrite, ALU, COMPARISON
from teeny.symbolic import symbolic, _split_sum
from teeny.renderer import Renderer, CORE_START, CORE_END
from teeny.codegen.kernel import LoopSpace, REDUCE_KINDS
from teeny.symbolic import where_conditions
from teeny.codegen.lowfloat import touches_storage_floats, storage_floats_in_float32, storage_float_buffers
from teeny.codegen.vectorize import vectorize, lane_sum_widths


@dataclass
class LoweringContext:
  full_idxs: list[UOp]
  out_idxs: list[UOp]
  full_shape: tuple[int, ...]
  reduce_ranges: dict[int, UOp]   # reduce axis -> its RANGE
  lanes: dict[int, UOp]           # upcast/unroll axis -> its LANE
  idx_dtype: DType
  group: tuple | None             # a grouped reduce: (local id, work-group size)
  reassoc: bool                   # accumulators may be updated in any order (see ASSIGN in codegen/__init__.py)
  acc_count: list = field(default_factory=lambda: [0])
  gathers: frozenset = frozenset()  # gather axes: their reduce becomes a load (their RANGE is in reduce_ranges)
  lane_sums: tuple = ()           # unroll widths whose copies accumulate apart, as vector lanes (see _lane_sums)
  zero: UOp | None = None         # the index 0 (of out_idxs' reduce axes)

  def idxs_for(self, shape) -> list[UOp]:
    """The index of each axis of a view of this shape: the loop space's, 0 along an axis the view has size 1 of
    (the output's after a reduce; in a kernel with lifted reduces, a view of one reduce's input)."""
    if tuple(shape) == self.full_shape: return self.full_idxs
    return [o if s == f == 1 else i if s == f else self.zero for i, o, s, f in zip(self.full_idxs, self.out_idxs, shape, self.full_shape)]


def _identity(op: Ops, dtype: DType):
  if op is Ops.ADD: return 0
  if op is Ops.MUL: return 1
  return dtypes.min(dtype)  # MAX


def _lower_load(ctx: LoweringContext, buf: UOp, view: UOp, x: UOp) -> UOp:
  idx, valid = view.arg.to_index(ctx.idxs_for(view.arg.shape), ctx.idx_dtype)
  if valid is None: return UOp(Ops.LOAD, x.dtype, (buf, idx))
  return UOp(Ops.LOAD, x.dtype, (buf, idx, valid, UOp.const(x.dtype, 0)))


def _lower_range(ctx: LoweringContext, view: UOp, x: UOp) -> UOp:
  """The arange leaf through a view: the element offset the view gives, as a value (0 where the view pads)."""
  idx, valid = view.arg.to_index(ctx.idxs_for(view.arg.shape), ctx.idx_dtype)
  value = idx.cast(x.dtype)
  return value if valid is None else valid.where(value, UOp.const(x.dtype, 0))


def _masked(ctx: LoweringContext, view: UOp, value: UOp) -> UOp:
  """A value that is the same at every element, 0 where the view's mask (a PAD) says there is no element."""
  _, valid = view.arg.to_index(ctx.idxs_for(view.arg.shape), ctx.idx_dtype)
  return value if valid is None else valid.where(value, UOp.const(value.dtype, 0))


def _lower_const(ctx: LoweringContext, view: UOp, c: UOp) -> UOp: return _masked(ctx, view, UOp.const(c.dtype, c.arg))


def _value_argument(v: UOp) -> UOp:
  """The kernel argument a value DEFINE_VAR of the AST (a constant the kernel is given) stands for."""
  return UOp(Ops.DEFINE_VAR, v.dtype, (), v.arg)


def _lower_value(ctx: LoweringContext, view: UOp, v: UOp) -> UOp: return _masked(ctx, view, _value_argument(v))


def _lower_store(ctx: LoweringContext, buf: UOp, view: UOp, value: UOp) -> UOp:
  idx, valid = view.arg.to_index(ctx.out_idxs, ctx.idx_dtype)
  if ctx.group is not None:  # a grouped reduce: every work-item has the result, work-item 0 stores it
    first = ctx.group[0].lt(1)
    valid = first if valid is None else valid.logical_and(first)
  return UOp(Ops.STORE, dtypes.void, (buf, idx, value) + (() if valid is None else (valid,)))


def _lower_reduce(ctx: LoweringContext, r: UOp) -> UOp:
  op, axes = r.arg[:2]
  value, folded = r.src[0], set()
  for a in sorted(axes):
    if a in ctx.gathers and op is Ops.ADD and ctx.group is None and (gathered := _fold_gather(value, ctx.reduce_ranges[a])) is not None:
      value = gathered
      folded.add(a)
  ranges = tuple(ctx.reduce_ranges[a] for a in sorted(axes) if a in ctx.reduce_ranges and a not in folded)
  # unrolled reduce axes: the copies of the value for each of their indices, combined before the accumulator
  # (or, on a renderer of vector arithmetic, each accumulated on its own: _lane_sums)
  copies = expand_lanes(value, [ctx.lanes[a] for a in sorted(axes) if a in ctx.lanes])
  # (a scan's reduce is "in order": each prefix added as a running sum would, as PyTorch's scans do)
  reassoc = ctx.reassoc and r.arg[2:] != ("in order",)
  if reassoc and ranges and ctx.group is None and r.dtype == dtypes.float32 and len(copies) in ctx.lane_sums:
    return _lane_sums(ctx, op, r.dtype, copies, ranges)
  if r.dtype in NARROW_FLOATS and len(copies) > 1:
    # a narrow float's unrolled copies meet in float32, unrounded, as its accumulator keeps them (the CAST is
    # marked: half_to_float hands its users the float32 sum). Rounded pair by pair first, an unrolled sum of 16
    # float16s came out 3 ulps off the loop's
    value = UOp(Ops.CAST, r.dtype, (_tree(op, dtypes.float32, [c.cast(dtypes.float32) for c in copies]),), "unrounded")
  else: value = _tree(op, r.dtype, copies)
  if folded and not ranges: return value  # every loop was a gather: nothing left to accumulate
  acc = UOp(Ops.DEFINE_ACC, r.dtype, (UOp.const(r.dtype, _identity(op, r.dtype)),) + ranges, ctx.acc_count[0])
  ctx.acc_count[0] += 1
  partial = UOp(Ops.ASSIGN, r.dtype, (acc, _accumulate(op, acc, value)), "reassoc" if reassoc else None)
  return partial if ctx.group is None else _group_reduce(op, partial, acc.arg, *ctx.group)


def _accumulate(op: Ops, acc: UOp, value: UOp) -> UOp:
  """The accumulator's next value, acc op value. A sum of where(c, x, 0) steps as where(c, acc + x, acc): the same
  bits (acc starts at +0.0 and a sum that starts at +0.0 never reaches -0.0, the one value that adding +0.0 would
  change), and the CPU can then update acc under a mask (a masked fused multiply-add) instead of first zeroing x
  (a transposed convolution's products outside its input)."""
  if op is Ops.ADD and value.op is Ops.WHERE and value.src[2].op is Ops.CONST and value.src[2].arg == 0 and acc.dtype not in NARROW_FLOATS:
    return value.src[0].where(UOp(Ops.ADD, acc.dtype, (acc, value.src[1])), acc)
  return UOp(op, acc.dtype, (acc, value))


def _lane_sums(ctx: LoweringContext, op: Ops, dtype: DType, copies: list[UOp], ranges: tuple) -> UOp:
  """An unrolled reduce whose updates may be reordered, on a renderer of vector arithmetic: each unrolled copy
  accumulates on its own, the accumulators as the lanes of one vector (codegen/vectorize.py joins them), combined
  once after the loop. Combined before the accumulator instead, every step would add across a vector's lanes. The
  order of the sum changes as LLVM's vectorizer changes it on the CPU (partial sums in vector lanes)."""
  partials = []
  for copy in copies:
    acc = UOp(Ops.DEFINE_ACC, dtype, (UOp.const(dtype, _identity(op, dtype)),) + ranges, ctx.acc_count[0])
    ctx.acc_count[0] += 1
    partials.append(UOp(Ops.ASSIGN, dtype, (acc, UOp(op, dtype, (acc, copy))), "reassoc"))
  lanes = UOp(Ops.VECTORIZE, dtype.vec(len(partials)), tuple(partials))
  return _tree(op, dtype, [UOp(Ops.GEP, dtype, (lanes,), j) for j in range(len(partials))])


def _group_reduce(op: Ops, partial: UOp, n: int, lid: UOp, size: int) -> UOp:
  """Each work-item of the group wrote its partial result; after a barrier every one of them combines all `size`
  of them from local memory (only work-item 0's result is stored). Partials of a narrow float (half, bfloat16,
  fp8) stay float32, as its accumulators do: rounding them would lose what the float32 accumulation kept (and a
  device without cl_khr_fp16 has no half array to keep them in)."""
  kept = dtypes.float32 if partial.dtype in NARROW_FLOATS else partial.dtype
  temp = UOp(Ops.DEFINE_LOCAL, kept.ptr(), (), (f"temp{n}", size))
  # (a CAST marked "unrounded": half_to_float gives it the float32 accumulator itself, not its rounded value)
  stored = UOp(Ops.CAST, kept, (partial,), "unrounded") if kept is not partial.dtype else partial
  barrier = UOp(Ops.BARRIER, dtypes.void, (UOp(Ops.STORE, dtypes.void, (temp, lid, stored)),))
  parts = [UOp(Ops.LOAD, kept, (temp, UOp.const(lid.dtype, j), barrier)) for j in range(size)]
  return _tree(op, kept, parts).cast(partial.dtype)


def _fold_gather(value: UOp, rng: UOp) -> UOp | None:
  """The sum over the loop `rng` of value = where(a == rng + e, x, 0), with a and e not depending on rng: x at
  rng = a - e where that is in the loop's range, else 0. x's loads that move with rng get that range check as their
  gate, so no load reads outside its buffer. None when value is not of that form (then the loop stays)."""
  value = graph_rewrite(value, symbolic)
  conds, x = where_conditions(value)
  for i, cond in enumerate(conds):
    position = _solve_equal(cond, rng)
    if position is None: continue
    inside = position.lt(0).ne(True).logical_and(position.lt(rng.src[1].arg))
    zero = UOp.const(value.dtype, 0)
    for other in conds[:i] + conds[i + 1:]: x = other.where(x, zero)
    at = position.cast(rng.dtype)
    gathered = graph_rewrite(x, _at_position, {"range": rng, "position": at, "inside": inside}, fixed_point=False)
    if rng in set(gathered.toposort()): return None
    if gathered.op is Ops.LOAD and len(gathered.src) == 4 and gathered.src[2] is inside and gathered.src[3] is zero:
      return gathered  # x is just the load, and that gives 0 outside already
    return inside.where(gathered, zero)
  return None


def _solve_equal(cond: UOp, rng: UOp) -> UOp | None:
  """For cond = (a == rng + e) (written (a != b) != True, b possibly a cast that keeps its value), a and e free of
  rng: a - e (in int64, or when e is 0 in the wider of a's and rng's dtypes), the value of rng where cond holds."""
  if cond.op is not Ops.CMPNE or cond.src[1].op is not Ops.CONST or cond.src[1].arg is not True: return None
  if cond.src[0].op is not Ops.CMPNE: return None
  for a, b in (cond.src[0].src, cond.src[0].src[::-1]):
    if not dtypes.is_int(a.dtype) or dtypes.is_unsigned(a.dtype) or rng in set(a.toposort()): continue
    if b.op is Ops.CAST and dtypes.min(b.dtype) <= b.src[0].vmin and b.src[0].vmax <= dtypes.max(b.dtype): b = b.src[0]
    terms = _split_sum(b)
    rest = [t for t in terms if t is not rng]
    if len(rest) != len(terms) - 1 or any(rng in set(t.toposort()) for t in rest): continue
    if not rest: return a if a.dtype.itemsize >= rng.dtype.itemsize else a.cast(rng.dtype)
    offset = rest[0]
    for t in rest[1:]: offset = offset + t
    return a.cast(dtypes.int64) + -offset.cast(dtypes.int64)
  return None


def _substitute_range(ctx: dict, r: UOp) -> UOp | None: return ctx["position"] if r is ctx["range"] else None


def _gate_load(ctx: dict, x: UOp) -> UOp | None:
  """A load whose index now uses the gathered position reads only where that position is inside the loop's range."""
  if len(x.src) == 3 or ctx["position"] not in set(x.src[1].toposort()): return None  # (3: local memory)
  gate = ctx["inside"] if len(x.src) == 2 else ctx["inside"].logical_and(x.src[2])
  alt = x.src[3] if len(x.src) == 4 else UOp.const(x.dtype, 0)
  return x.replace(src=(x.src[0], x.src[1], gate, alt))


_at_position = PatternMatcher([(UPat(Ops.RANGE, name="r"), _substitute_range), (UPat(Ops.LOAD, name="x"), _gate_load)])


def _tree(op: Ops, dtype: DType, values: list[UOp]) -> UOp:
  """values combined pairwise (a balanced tree keeps the adds independent of each other)."""
  while len(values) > 1:
    values = [UOp(op, dtype, tuple(values[i:i + 2])) if i + 1 < len(values) else values[i] for i in range(0, len(values), 2)]
  return values[0]


def _substitute(ctx: dict, lane: UOp) -> UOp | None: return ctx.get(lane)
def _rename_acc(ctx: dict, acc: UOp) -> UOp | None:
  return acc.replace(arg=acc.arg + ctx["acc_offset"]) if ctx.get("acc_offset") else None


substitute_lanes = PatternMatcher([(UPat(Ops.LANE, name="lane"), _substitute), (UPat(Ops.DEFINE_ACC, name="acc"), _rename_acc)])


def expand_lanes(x: UOp, lanes: list[UOp], acc_stride: int = 0) -> list[UOp]:
  """One copy of x per combination of the lanes' values (the last lane varies fastest). With acc_stride, copy n's
  accumulators are renumbered by n * acc_stride, so that each copy accumulates on its own."""
  copies = []
  for n, values in enumerate(itertools.product(*(range(lane.arg[1]) for lane in lanes))):
    subst: dict = {lane: UOp.const(lane.dtype, v) for lane, v in zip(lanes, values)}
    subst["acc_offset"] = n * acc_stride
    copies.append(graph_rewrite(x, substitute_lanes, subst, fixed_point=False) if lanes else x)
  return copies


lower_ast = PatternMatcher([
  (UPat(Ops.LOAD, src=(UPat(Ops.DEFINE_GLOBAL, name="buf"), UPat(Ops.VIEW, name="view")), name="x"), _lower_load),
  (UPat(Ops.CONST, src=(UPat(Ops.VIEW, name="view"),), name="c"), _lower_const),
  (UPat(Ops.DEFINE_VAR, src=(UPat(Ops.VIEW, name="view"),), name="v"), _lower_value),
  (UPat(Ops.RANGE, src=(UPat(Ops.VIEW, name="view"),), name="x"), _lower_range),
  (UPat(Ops.STORE, src=(UPat(Ops.DEFINE_GLOBAL, name="buf"), UPat(Ops.VIEW, name="view"), UPat.var("value"))), _lower_store),
  (UPat(Ops.REDUCE_AXIS, name="r"), _lower_reduce),
])


def _half_in_float(x: UOp) -> UOp | None:
  """Compute an ALU op on a narrow float (float16, bfloat16, fp8) in float32 and round the result back, like numpy
  and PyTorch do."""
  if not any(s.dtype in NARROW_FLOATS for s in x.src[-2:]) and x.dtype not in NARROW_FLOATS: return None
  if x.op is Ops.WHERE: srcs = (x.src[0],) + tuple(_float32_of(s) for s in x.src[1:])
  else: srcs = tuple(_float32_of(s) if s.dtype in NARROW_FLOATS else s for s in x.src)
  out = UOp(x.op, dtypes.bool if x.op in COMPARISON else dtypes.float32, srcs, x.arg)
  return out if x.op in COMPARISON else out.cast(x.dtype)


def _float32_of(s: UOp) -> UOp:
  """A narrow float value as float32: its float32 sum itself where it is an unrolled sum (see _lower_reduce)."""
  if s.op is Ops.CAST and s.arg == "unrounded" and s.src[0].dtype == dtypes.float32: return s.src[0]
  return s.cast(dtypes.float32)


def _half_acc(acc: UOp) -> UOp | None:
  # narrow float reductions accumulate in float32
  if acc.dtype not in NARROW_FLOATS: return None
  return acc.replace(dtype=dtypes.float32, src=(UOp.const(dtypes.float32, acc.src[0].arg),) + acc.src[1:])


def _half_assign(a: UOp, acc: UOp, v: UOp) -> UOp | None:
  """The update of a float32 accumulator of a narrow float reduce keeps full precision; only the result is rounded."""
  if a.dtype not in NARROW_FLOATS: return None
  exact = v.src[0] if v.op is Ops.CAST and v.src[0].dtype == dtypes.float32 else v.cast(dtypes.float32)
  return a.replace(dtype=dtypes.float32, src=(acc, exact)).cast(a.dtype)


def _unrounded(x: UOp) -> UOp | None:
  """A group reduce's partial (see _group_reduce): the float32 accumulator, where _half_assign rounded it."""
  inner = x.src[0]
  if inner.op is Ops.CAST and inner.src[0].op is Ops.ASSIGN and inner.src[0].dtype == dtypes.float32: return inner.src[0]
  if inner.dtype == dtypes.float32 and inner.op is not Ops.CAST: return None  # (an unrolled sum: see _float32_of)
  return x.replace(arg=None)


half_to_float = PatternMatcher([
  (UPat(Ops.CAST, arg="unrounded", name="x"), _unrounded),
  (UPat(Ops.DEFINE_ACC, name="acc"), _half_acc),
  (UPat(Ops.ASSIGN, src=(UPat(Ops.DEFINE_ACC, dtype=dtypes.float32, name="acc"), UPat.var("v")), name="a"), _half_assign),
  (UPat(tuple(ALU), name="x"), _half_in_float),
])


@dataclass
class LoweredKernel:
  sink: UOp
  global_size: tuple[int, int, int]
  local_size: tuple[int, int, int] | None


def lower(k: LoopSpace, renderer: Renderer) -> LoweredKernel:
  """The kernel's AST over its loop space as loops, thread ids and lanes, its index math simplified."""
  full, axes = k.full_shape, k.axes
  # 32-bit index math (faster) unless a loop, a launch or an offset can pass INT32_MAX; past 64 bits, nothing works
  span = max(k.loop_elements, k.max_offset)
  if span > 2**63 - 1:
    raise ValueError(f"kernel {k.name} spans {span} elements, more than 64-bit indices can count (2^63 - 1)")
  idx_dtype = dtypes.int64 if span >= 2**31 - 1 else dtypes.int32
  global_axes, local_axes = axes["global"], axes["local"] + axes["group"]
  local_size = None
  if local_axes:
    # OpenCL work-groups: global axes are group ids (up to 3 dimensions), local axes local ids folded into dimension 0
    global_idxs, global_size = _thread_ids([full[a] for a in global_axes], "group", renderer.max_global_dims, idx_dtype)
    local_idxs, local_size = _thread_ids([full[a] for a in local_axes], "lidx", 1, idx_dtype)
  else:
    global_idxs, global_size = _parallel_indices([full[a] for a in global_axes], renderer, idx_dtype)
    local_idxs = []
  idxs: list = [None] * len(full)
  for a, i in zip(global_axes + local_axes, global_idxs + local_idxs): idxs[a] = i
  reduce_ranges = {a: UOp(Ops.RANGE, idx_dtype, (UOp.const(idx_dtype, 0), UOp.const(idx_dtype, full[a])), a)
                   for a in axes["reduce"] + axes["gather"]}
  lanes = {a: UOp(Ops.LANE, idx_dtype, (), (a, full[a])) for a in axes["upcast"] + axes["unroll"]}
  idxs = [reduce_ranges.get(a, lanes.get(a, i)) for a, i in enumerate(idxs)]
  zero = UOp.const(idx_dtype, 0)
  out_idxs = [zero if kind in REDUCE_KINDS else i for i, kind in zip(idxs, k.kinds)]
  group = (local_idxs[0], local_size[0]) if axes["group"] else None  # GROUP goes alone: its id is the local id
  # with upcast axes the accumulators' copies are the parallel work, vectorized across them; letting the backend
  # also split each accumulator into partial sums (vectorizing along the reduce loop, with gathers where a load
  # strides through it) would fight that, unless every load reads the reduce loop contiguously
  reassoc = not axes["upcast"] or k.reduce_is_contiguous
  ctx = LoweringContext(idxs, out_idxs, full, reduce_ranges, lanes, idx_dtype, group, reassoc=reassoc,
                        gathers=frozenset(axes["gather"]), lane_sums=lane_sum_widths(renderer), zero=zero)
  sink = graph_rewrite(k.ast, lower_ast, ctx)
  # upcast axes: one copy of every store per combination of their indices, each with accumulators of its own
  copies = expand_lanes(sink, [lanes[a] for a in axes["upcast"]], ctx.acc_count[0])
  sink = UOp(Ops.SINK, dtypes.void, tuple(store for copy in copies for store in copy.src))
  sink = graph_rewrite(sink, half_to_float)
  storage_floats = touches_storage_floats(k.ast)  # bfloat16 or fp8: bits in memory, float32 in registers
  if storage_floats: sink = storage_floats_in_float32(sink)
  sink = graph_rewrite(sink, symbolic)
  if k.lifted: sink = _store_shared_once(sink)
  sink = vectorize(sink, renderer)
  # every buffer and value stays a kernel argument, even one whose uses folded away, so arguments keep their positions
  buffers = tuple(u for u in k.ast.toposort() if u.op is Ops.DEFINE_GLOBAL)
  values = tuple(_value_argument(u) for u in k.ast.toposort() if u.op is Ops.DEFINE_VAR)
  sink = sink.replace(src=sink.src + buffers + values)
  if storage_floats: sink = storage_float_buffers(sink)
  return LoweredKernel(sink, global_size, local_size)


_COSTLY = {Ops.EXP2, Ops.LOG2, Ops.SIN}
_replace_nodes = PatternMatcher([(UPat(name="x"), lambda ctx, x: ctx.get(x))])


def _replaced(root: UOp, mapping: dict) -> UOp: return graph_rewrite(root, _replace_nodes, mapping, fixed_point=False)


def _store_shared_once(sink: UOp) -> UOp:
  """A kernel with lifted reduces (kernel.py) whose output is computed from a value its own sum computed too, over
  the same row: softmax's exp(x - max), summed in one loop and divided by that sum in the next, each loop calling
  exp. The loop of the sum stores the value in the output as it goes, and the loop writing the row reads it back
  from there (the row is still in cache): one exp per element instead of two. Only where the value has the
  output's dtype (stored and read back, it is the same bits) and the output buffer is read nowhere else."""
  stores = [u for u in sink.src if u.op is Ops.STORE]
  if len(stores) != 1 or len(stores[0].src) != 3: return sink  # (one ungated store)
  store = stores[0]
  buf, idx, value = store.src
  if any(u.op is Ops.LOAD and u.src[0] is buf for u in sink.toposort()): return sink  # (written in place)
  found = _shared_value(buf.dtype.base, idx, value)
  if found is None: return sink
  summed, read, to_reduce = found
  early = UOp(Ops.STORE, dtypes.void, (buf, _replaced(idx, to_reduce), summed))
  late = store.replace(src=(buf, idx, _replaced(value, {read: UOp(Ops.LOAD, read.dtype, (buf, idx))})))
  return sink.replace(src=tuple(early if u is store else u for u in sink.src) + (late,))


def _shared_value(dtype: DType, idx: UOp, value: UOp) -> tuple[UOp, UOp, dict] | None:
  """(the costly value an accumulator's update computes, the same value as the output computes it, the map from
  the output's loops to the reduce's) for _store_shared_once: the largest such value, or None. The reduce's loops
  pair with output loops of the same bounds, and the value must change with exactly the loops of the element it
  is stored at (the store's index moved to the reduce's loops): one value per element, each stored once."""
  nodes = value.toposort()
  inside, out_ranges = set(nodes), [u for u in idx.toposort() if u.op is Ops.RANGE]
  best = None
  for assign in (u for u in nodes if u.op is Ops.ASSIGN and u.src[0].op is Ops.DEFINE_ACC):
    acc, update = assign.src
    reduce_ranges = acc.src[1:]
    pairings = itertools.product(*([c for c in out_ranges if c.src == r.src] for r in reduce_ranges))
    for paired in (p for p in pairings if len(set(p)) == len(p)):
      to_output = dict(zip(reduce_ranges, paired))
      to_reduce = {c: r for r, c in to_output.items()}
      moved_idx_ranges = _loops_read(_replaced(idx, to_reduce))
      for e in update.toposort():
        if e.dtype != dtype or e is acc: continue
        graph = e.toposort()
        if acc in graph or not any(u.op in _COSTLY for u in graph): continue
        # e must change with exactly the loops of the element it is stored at: one value per stored element
        if _loops_read(e) != moved_idx_ranges | set(reduce_ranges): continue
        if (read := _replaced(e, to_output)) in inside and (best is None or len(graph) > best[0]):
          best = (len(graph), e, read, to_reduce)
  return None if best is None else best[1:]


def _loops_read(x: UOp) -> set:
  """The loops (RANGEs) x's value changes with: those it reads, not counting a finished reduction's own loops (its
  value is the same in every one of them)."""
  found, seen, stack = set(), set(), [x]
  while stack:
    u = stack.pop()
    if u in seen: continue
    seen.add(u)
    if u.op is Ops.RANGE: found.add(u)
    if u.op is Ops.ASSIGN and u.src[0].op is Ops.DEFINE_ACC: found |= _loops_read(u.src[1]) - set(u.src[0].src[1:])
    else: stack.extend(u.src)
  return found


def _parallel_indices(shape, renderer: Renderer, dtype: DType) -> tuple[list[UOp], tuple[int, int, int]]:
  if not renderer.has_threads:
    # LLVM: a loop per axis; the runtime runs slices [core_start, core_end) of the outermost one on each core. The
    # slice bounds are always 64-bit (the outermost axis alone may pass 2^31); the loop itself counts in `dtype`
    start = UOp(Ops.DEFINE_VAR, dtypes.int64, (), (CORE_START, 0, shape[0]))
    end = UOp(Ops.DEFINE_VAR, dtypes.int64, (), (CORE_END, 0, shape[0]))
    outer = UOp(Ops.RANGE, dtype, (start.cast(dtype), end.cast(dtype)), 0)
    rest = [UOp(Ops.RANGE, dtype, (UOp.const(dtype, 0), UOp.const(dtype, s)), i + 1) for i, s in enumerate(shape[1:])]
    return [outer] + rest, (shape[0], 1, 1)
  return _thread_ids(shape, "gidx", renderer.max_global_dims, dtype)


def _thread_ids(shape, prefix: str, dims: int, dtype: DType) -> tuple[list[UOp], tuple[int, int, int]]:
  """OpenCL ids for the axes of `shape`: the last axis is id 0 (neighbouring threads touch neighbouring memory);
  more than `dims` axes fold into the outermost id. Returns the indices and the launch size per dimension."""
  if not shape: return [], (1, 1, 1)
  folded = [math.prod(shape[:len(shape) - dims + 1])] + list(shape[len(shape) - dims + 1:]) if len(shape) > dims else list(shape)
  # ids in the index dtype: a launch of 2^31 work-items or more needs 64-bit ids (get_global_id returns a size_t)
  ids = [UOp(Ops.SPECIAL, dtype, (), (f"{prefix}{len(folded) - 1 - i}", s)) for i, s in enumerate(folded)]
  idxs = ids[1:]
  if len(shape) > dims:  # unravel the folded id
    lead, rem = [], ids[0]
    for s in reversed(shape[:len(shape) - dims + 1]):
      lead.append(rem % s); rem = rem // s
    idxs = list(reversed(lead)) + idxs
  else: idxs = ids
  sizes = tuple(reversed(folded)) + (1,) * (3 - len(folded))
  return idxs, sizes
