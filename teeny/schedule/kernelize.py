"""Kernelize: where a graph is cut into kernels, and in which order they run.

A kernel boundary (a "realize point") falls only at: a tensor being realized, CONTIGUOUS, COPY (and its
source), ASSIGN, and a reduce whose result can't be used at the kernel's output shape (it is expanded back,
padded, or reshaped in a way one view can't express), or that two kernels would both need; and elementwise work
that a big reduce would read broadcast many times (the relu mask in front of a matmul: computed once rather than
once per output column); elementwise work that several kernels would each compute (_store_shared_work); and where
a chain of elementwise work grows past a kernel's bounds (_bound_kernel_size). Everything else fuses: elementwise ops into their consumer and into the reduce that
follows them. Each kernel's AST is built by teeny/schedule/builder.py; writes that read a result another kernel
computes are merged into that kernel; the kernels are ordered and kept as a CachedSchedule over slots, their
intermediates planned to share memory (teeny/memory.py).
"""
from __future__ import annotations
import heapq
from collections import Counter
from teeny import memory
from teeny.dtype import dtypes
from teeny.memory import plan_memory
from teeny.uop import UOp, Ops, ALU, ELEMENTWISE, toposort, PatternMatcher, UPat, graph_rewrite
from teeny.runtime.device import Buffer, Device
from teeny.renderer import value_var_arg, value_number
from teeny.schedule.items import is_buffer_view, is_value_arg
from teeny.schedule.cache import REALIZED, CachedSchedule
from teeny.schedule import shaping
from teeny.schedule.builder import KernelBuilder, KernelLimits, ScheduledKernel, SlotTable, Unfusable, computed_from


class AssignCycle(Exception):
  """Raised when kernels can't be ordered: one needs a buffer's old contents and (through another) its new ones."""


def prepare(roots: tuple[UOp, ...], device_of: dict[UOp, str]) -> tuple[tuple[UOp, ...], dict[UOp, UOp]]:
  """Swap in buffers of nodes realized before on the device they are needed on, and drop nodes that mean
  nothing to scheduling (DETACH, CONTIGUOUS of something already contiguous, unless it is tagged as a buffer of
  its own: a clone or a gradient leaf, which assign may later write). Returns the new roots and old -> new."""
  done: dict[UOp, UOp] = {}
  for n in toposort(UOp(Ops.SINK, dtypes.void, roots))[:-1]:
    found = REALIZED.on(n)
    if found is not None and device_of[n] in found: done[n] = found[device_of[n]]; continue
    src = tuple(done[s] for s in n.src)
    if n.op is Ops.DETACH or (n.op is Ops.CONTIGUOUS and n.arg is None and is_buffer_view(src[0]) and src[0].shape == n.shape):
      done[n] = src[0]; continue
    done[n] = n if all(a is b for a, b in zip(src, n.src)) else UOp(n.op, n.dtype, src, n.arg)
  return tuple(done[r] for r in roots), done


def kernelize(nodes: list[UOp], roots: tuple[UOp, ...], devices: list[str], inputs: list[Buffer],
              members: list | None = None) -> CachedSchedule:
  """Run the scheduler on a prepared graph (nodes in toposort order) and keep the result as a schedule of slots,
  its intermediates planned to share memory. Given a list as `members`, fills it with the nodes each kernel of
  the schedule computes, item by item (see kernel_members: what teeny.viz draws)."""
  original_nodes, original_roots = nodes, roots
  device_of = devices_of(nodes, dict(zip(roots, devices)))
  nodes, roots, origin = shaping.shape_graph(nodes, roots, device_of)  # (the graph itself when nothing changed)
  if origin: device_of = devices_of(nodes, dict(zip(roots, devices)))
  # per device, the most buffers one kernel may read and its tuned numbers: asked once here, not per kernel built
  limits = {d: KernelLimits(Device[d].max_kernel_buffers, Device[d].renderer.tuning, not Device[d].renderer.has_threads)
            for d in set(device_of.values()) if d is not None}
  realize = _realize_points(nodes, roots)
  views = _roots_as_views(roots, realize)
  _store_shared_work(nodes, realize, device_of, limits)
  _bound_kernel_size(nodes, realize, device_of, limits)
  table = SlotTable(nodes, inputs, realize, device_of)
  kernels = _build_all(nodes, realize, table, device_of, limits)
  merged = _merge_writes(kernels, realize, table, device_of, limits)
  try: kernels = _in_order(merged)
  except AssignCycle: kernels = _in_order(kernels)  # (merging made an order impossible: run them apart)
  if members is not None:
    members.extend(kernel_members([k for k in kernels if table.size[k.slots[0]] > 0], realize, origin, original_nodes))
  return _as_cached(kernels, original_nodes, original_roots, table, origin, views)


def kernel_members(kernels: list[ScheduledKernel], realize: set, origin: dict[UOp, tuple[UOp, ...]], nodes: list[UOp]) -> list[list[UOp]]:
  """For each kernel, the nodes of the graph as walked (`nodes`) it computes: its outputs and everything under them
  down to the loads (realize points and buffers). A node shaping.py rebuilt counts as the node it stands for;
  the nodes it added (partial sums, copies in a better layout) stand for none. A node two kernels both compute
  (elementwise work too small to store once) is a member of both."""
  walked = set(nodes)
  out = []
  for k in kernels:
    seen, stack = set(), list(k.outputs)
    while stack:
      n = stack.pop()
      if n in seen: continue
      seen.add(n)
      stack.extend(s for s in n.src if s not in realize and s.op is not Ops.BUFFER)
    out.append([m for n in seen for m in origin.get(n, (n,)) if m in walked])
  return out


def _realize_points(nodes: list[UOp], roots: tuple[UOp, ...]) -> set[UOp]:
  """The nodes that are realized whatever the kernels turn out to be: the roots, CONTIGUOUS, COPY (and its
  source), ASSIGN. Building the kernels adds the reduces and the work they can't fuse (Unfusable)."""
  realize = {r for r in roots if not is_buffer_view(r)}
  for n in nodes:
    if n.op in (Ops.CONTIGUOUS, Ops.COPY, Ops.ASSIGN): realize.add(n)
    if n.op is Ops.COPY and not is_buffer_view(n.src[0]): realize.add(n.src[0])
  return realize


def _roots_as_views(roots: tuple[UOp, ...], realize: set) -> dict[UOp, UOp]:
  """Roots that are a reshape of a CONTIGUOUS the schedule computes anyway -> that CONTIGUOUS, each taken out of
  `realize`: such a root is realized as a view of the CONTIGUOUS's buffer (a reshape of a contiguous buffer is
  the same bytes), not copied into a buffer of its own (a pooling gradient summed in a folded shape: its copy was
  a sixth of the backward pass). Only where the CONTIGUOUS is no root and no other root is a reshape of it, so
  no two results of one realize are given one buffer."""
  inner_of = {}
  for r in roots:
    inner = r
    while inner.op is Ops.RESHAPE: inner = inner.src[0]
    if inner is not r and inner.op is Ops.CONTIGUOUS and inner.arg is None and r.size > 0: inner_of[r] = inner
  counts = Counter(inner_of.values())
  shared = {c for c, n in counts.items() if n > 1} | set(roots)
  views = {r: c for r, c in inner_of.items() if c not in shared}
  for r in views: realize.discard(r)
  return views


_MANY = object()  # (the kernels reading a node: more than one)


def _store_shared_work(nodes: list[UOp], realize: set, device_of: dict, limits: dict):
  """Add realize points at elementwise work that several kernels would each compute again: a node read by two
  kernels or more is stored once, when computing it inline takes at least Tuning.shared_work_ops operations and
  loads something (work on constants alone, or on a loop index, stays inline, as in the builder's
  _worth_storing). Without this, a scalar graph (every number a 0-d tensor, micrograd's way) computes its whole
  forward pass again in every parameter's gradient kernel, and one randn read by many kernels runs its hash in
  each. One pass from the roots down: a node's readers are its consumers' kernels (a realized consumer is a
  kernel of its own); a node is weighed by the work its kernel would inline, found before this pass (so work that
  this pass stores further up still counts: it may store a node whose kernel turns out smaller)."""
  work = _inline_work(nodes, realize, limits, device_of)
  reader: dict[UOp, object] = {}  # node -> the one kernel root reading it, or _MANY
  for n in reversed(nodes):
    kernel = n if n in realize else reader.get(n)
    if kernel is _MANY and work.get(n, False):
      realize.add(n)
      kernel = n
    for s in computed_from(n):  # (the sources _inline_work weighed)
      seen = reader.get(s)
      reader[s] = kernel if seen is None or seen is kernel else _MANY


def _inline_work(nodes: list[UOp], realize: set, limits: dict, device_of: dict) -> dict[UOp, bool]:
  """For each node: whether it is an ALU op whose inline work (down to the realized nodes and buffers) is at least
  its device's Tuning.shared_work_ops distinct operations, reads memory and uses no loop index (RANGE). Distinct
  operations are counted as sets bounded at that size, so the pass stays linear."""
  ops: dict[UOp, frozenset | None] = {}  # node -> the ALU nodes computed inline; None once there are enough
  loads: dict[UOp, bool] = {}    # node -> whether its inline work reads a buffer or a realized result
  indexed: dict[UOp, bool] = {}  # node -> whether its inline work uses a loop index (the arange leaf)
  heavy: dict[UOp, bool] = {}
  for n in nodes:
    if n in realize or n.op is Ops.BUFFER or not n.src:
      ops[n], loads[n], indexed[n] = frozenset(), n in realize or n.op is Ops.BUFFER, n.op is Ops.RANGE
      continue
    sources = computed_from(n)
    loads[n], indexed[n] = any(loads[s] for s in sources), any(indexed[s] for s in sources)
    limit = limits[device_of[n]].tuning.shared_work_ops if device_of[n] is not None else None
    found = frozenset([n]) if n.op in ALU else frozenset()
    for s in sources:
      found = None if ops[s] is None else found | ops[s]
      if found is None or (limit is not None and len(found) >= limit):
        found = None
        break
    ops[n] = found
    heavy[n] = n.op in ALU and found is None and limit is not None and loads[n] and not indexed[n]
  return heavy


def _bound_kernel_size(nodes: list[UOp], realize: set, device_of: dict, limits: dict):
  """Add realize points where a chain of elementwise work would grow past a kernel's bounds: Tuning.max_fused_depth
  ops deep, Tuning.max_kernel_values value arguments, or more arguments in all (buffers it loads and values) than
  the device takes. `for i in range(10_000): y = y * 1.01 + i` becomes kernels of a bounded size, most of them one
  program; a sum of a thousand 0-d tensors (micrograd's way) reads its buffers in kernels of at most that many.
  One pass in toposort order; a realized node starts a new chain. Where an elementwise op would read too many
  arguments, its source that reads the most is realized first, as the builder's _split would, which then never
  has to find it kernel by kernel."""
  depth: dict[UOp, int] = {}
  values: dict[UOp, frozenset] = {}  # node -> the value constants its kernel would read to compute it
  loads: dict[UOp, frozenset] = {}   # node -> the buffers and realized results it would load
  empty = frozenset()
  for n in nodes:
    if not n.src:
      depth[n], values[n] = 0, (frozenset([n]) if is_value_arg(n) else empty)
      loads[n] = frozenset([n]) if n.op is Ops.BUFFER else empty
      continue
    limit = limits[device_of[n]] if device_of[n] is not None else None
    if limit is not None and n.op in ELEMENTWISE: _split_wide_sources(n, realize, values, loads, limit.max_bufs)
    d, r, l = 0, empty, empty
    for s in n.src:
      if s in realize:  # (a load: a new chain)
        l = l | {s}
        continue
      d = max(d, depth[s])
      r, l = r | values[s], l | loads[s]
    d += n.op in ALU or n.op is Ops.REDUCE_AXIS
    if limit is not None and n.op in ALU and (d >= limit.tuning.max_fused_depth or len(r) >= limit.tuning.max_kernel_values):
      realize.add(n)
    depth[n], values[n], loads[n] = d, r, l


def _split_wide_sources(n: UOp, realize: set, values: dict, loads: dict, max_args: int):
  """Realize n's sources, the one reading the most arguments first, until computing n reads fewer than max_args."""
  def arguments(s: UOp) -> frozenset: return frozenset([s]) if s in realize else values[s] | loads[s]
  while len(frozenset().union(*(arguments(s) for s in n.src))) >= max_args:
    inner = [s for s in n.src if s not in realize and s.op not in (Ops.BUFFER, Ops.CONST, Ops.RANGE, Ops.BIND)]
    if not inner: return  # (a kernel of leaves alone: nothing to cut here)
    realize.add(max(inner, key=lambda s: len(arguments(s))))


def _as_cached(kernels: list[ScheduledKernel], nodes: list[UOp], roots: tuple[UOp, ...], table: SlotTable,
               origin: dict[UOp, tuple[UOp, ...]], views: dict[UOp, UOp]) -> CachedSchedule:
  """The ordered kernels as a cached schedule: the slots renumbered so that the graph's inputs come first, then
  the buffers the kernels make in the order the kernels first use them; intermediates planned to share memory.
  nodes and roots are the graph as it was walked; origin maps a node shaping.py made to the ones it stands for
  (the nodes it added, partial sums and copies, stand for none: their results are not recorded as realized).
  views: the roots realized as views of another node's buffer (_roots_as_views) -> that node."""
  n_inputs = table.n_inputs
  final = {s: s for s in range(n_inputs)}  # slot while scheduling -> slot in the cached schedule
  new_buffers = []
  for k in kernels:
    for s in k.slots:
      if s not in final:
        final[s] = n_inputs + len(new_buffers)
        new_buffers.append([table.device[s], table.size[s], table.dtype[s], None])
  items = [(_buffer_free(k.ast), [final[s] for s in k.slots], list(k.values)) for k in kernels if table.size[k.slots[0]] > 0]
  stored = [(o, final[s]) for k in kernels for n, s in zip(k.outputs, k.out_slots) for o in origin.get(n, (n,))]
  stored += [(o, final[table.of[c]]) for r, c in views.items() for o in origin.get(r, (r,))]  # (marked with the root's shape)
  position = {n: i for i, n in enumerate(nodes)}
  marks = [(position[n], s, n.shape) for n, s in stored if n in position]
  written = [s for n, s in stored if n.op is Ops.ASSIGN]
  blocks: list[list] = []
  if memory.PLANNER:
    # intermediates may share memory; what the roots were realized into is the caller's to keep
    blocks, clobbered = _plan(items, new_buffers, n_inputs, keep={s for n, s in stored if n in roots})
    marks = [m for m in marks if m[1] not in clobbered]  # their memory now holds another result
  return CachedSchedule(n_inputs, [tuple(b) for b in new_buffers], blocks, items, marks, written)


def _plan(items: list[tuple], new_buffers: list[list], n_inputs: int, keep: set[int]) -> tuple[list[list], set[int]]:
  """Plan the memory of the buffers the schedule makes, except `keep`: sets each one's block in new_buffers and
  returns the blocks and the slots whose memory another result reuses later (see memory.plan_memory)."""
  plannable = {s: (b[0], b[1] * b[2].itemsize) for s, b in enumerate(new_buffers, n_inputs) if s not in keep}
  block_of, blocks, clobbered = plan_memory([refs for _, refs, _ in items], plannable)
  for s, b in block_of.items(): new_buffers[s - n_inputs][3] = b
  return blocks, clobbered


def _buffer_free(ast: UOp) -> UOp:
  """A kernel AST as it is; a COPY without its source graph (the cache must not keep buffers alive)."""
  return ast if ast.op is not Ops.COPY else UOp(Ops.COPY, ast.dtype, (), ast.arg)


def devices_of(nodes: list[UOp], root_devices: dict[UOp, str]) -> dict[UOp, str]:
  """Which device each node computes on: where its buffers live, else where its consumer needs it."""
  dev: dict[UOp, str | None] = {}
  for n in nodes:
    if n.op is Ops.BUFFER: dev[n] = n.arg.device
    elif n.op is Ops.COPY: dev[n] = n.arg[1]
    else: dev[n] = next((dev[s] for s in n.src if dev[s] is not None), None)
  for r, d in root_devices.items():
    if dev[r] is None: dev[r] = d
  for n in reversed(nodes):  # constants-only subgraphs take the device of whoever consumes them
    for s in n.src:
      if dev[s] is None: dev[s] = n.arg[0] if n.op is Ops.COPY else dev[n]
  return dev


def _build_all(nodes, realize: set, table: SlotTable, device_of, limits: dict) -> list[ScheduledKernel]:
  """Build every realize point's kernel, in toposort order. A kernel that can't be built names a node to realize
  on its own (Unfusable): it joins the realize points and the walk starts again, as if they had been known from the
  start. Only the kernels whose builder asked about that node are built again (a kernel is decided by the nodes
  it asked "realized or not?"), so a graph that needs many such points costs one build per kernel and per point."""
  built: dict[UOp, tuple[ScheduledKernel, set]] = {}  # realize point -> its kernel, and the nodes it asked about
  while True:
    try: return _build_pass(nodes, realize, table, device_of, limits, built)
    except Unfusable as e:
      realize.add(e.node)
      table.add(e.node, device_of[e.node])
      for root in [root for root, (_, asked) in built.items() if e.node in asked]: del built[root]


def _build_pass(nodes, realize: set, table: SlotTable, device_of, limits: dict, built: dict) -> list[ScheduledKernel]:
  kernels, fused_by = [], {}
  for n in nodes:
    if n not in realize: continue
    if n not in built:
      if n.op is Ops.COPY: built[n] = (_copy_item(n, table), set())
      else:
        builder = KernelBuilder(n, realize, table, limits[device_of[n]])
        built[n] = (builder.build(), builder.asked)
    item = built[n][0]
    kernels.append(item)
    for r in item.fused_reduces:
      if r in fused_by: raise Unfusable(r)  # two kernels would each compute this reduce: compute it once
      fused_by[r] = n
  return kernels


def _merge_writes(kernels: list[ScheduledKernel], realize: set, table: SlotTable, device_of: dict,
                  limits: dict) -> list[ScheduledKernel]:
  """Merge each write (ASSIGN) that reads a result another kernel computes, at the element it writes, into that
  kernel: one kernel stores both. `p.assign(p - lr * g)` with the gradient g kept (p.grad may still be read: it is
  realized here) is then the gradient's kernel storing g and the new p, not a second kernel reading g back."""
  made_by = {n: k for k in kernels for n in k.outputs}
  merged: dict[int, ScheduledKernel] = {}  # id of a producer kernel -> the kernel it became
  out = []
  for k in kernels:
    into = _merge_target(k, made_by, merged, table)
    if into is None:
      out.append(k)
      continue
    producer, value = into
    rebuilt = KernelBuilder(k.outputs[0], realize, table, limits[device_of[k.outputs[0]]])
    combined = _merged(merged.get(id(producer), producer), rebuilt, table.of[value])
    if combined is None: out.append(k)
    else: merged[id(producer)] = combined
  return [merged.get(id(k), k) for k in out]


def _merge_target(k: ScheduledKernel, made_by: dict, merged: dict, table: SlotTable) -> tuple[ScheduledKernel, UOp] | None:
  """(the kernel to merge write k into, the result it reads there), or None: k writes a whole buffer or a view of
  one with no reduce of its own, and reads a result made by a plain kernel (one output, not a write or a copy)
  that doesn't touch k's target."""
  if k.outputs[0].op is not Ops.ASSIGN or len(k.outputs) != 1 or k.fused_reduces: return None
  target = k.out_slots[0]
  for dep in k.deps:
    producer = made_by.get(dep)
    if producer is None or producer.ast.op is not Ops.SINK or producer.outputs[0].op is Ops.ASSIGN: continue
    current = merged.get(id(producer), producer)
    if target in current.slots or table.of[dep] != producer.out_slots[0]: continue
    if producer.ast.src[0].src[1].arg.size == k.outputs[0].src[1].size: return producer, dep
  return None


def _merged(producer: ScheduledKernel, write: KernelBuilder, value: int) -> ScheduledKernel | None:
  """producer's kernel also storing `write`'s ASSIGN, which it computes over producer's loop space with the loads
  of the result in slot `value` replaced by the value itself; None when that isn't one kernel (it reads value
  elsewhere than at the element it writes, or there would be too many buffers)."""
  store = producer.ast.src[0]  # (the first store is the producer's own result)
  try: built = write.build(out_space=store.src[1].arg.shape)
  except Unfusable: return None
  target = built.out_slots[0]
  # it must read the result, and no buffer another write of this kernel stores into (it might read it written)
  if value not in built.slots or any(s in built.slots for s in producer.out_slots[1:]): return None
  slots = producer.out_slots + [target] + [s for s in producer.slots[len(producer.out_slots):]]
  slots += [s for s in built.slots[1:] if s not in slots and s != value]
  values = list(producer.values) + [s for s in built.values if s not in producer.values]
  if len(slots) + len(values) > write.max_bufs: return None  # (values are kernel arguments too)
  index = {s: i for i, s in enumerate(slots)}
  # the write's value, over the merged arguments, with the result computed in place of its loads
  # (the result's buffer is numbered -1 there: its loads are replaced below)
  write_numbers = {i: -1 if s == value else index[s] for i, s in enumerate(built.slots)}
  value_numbers = {i: values.index(s) for i, s in enumerate(built.values)}
  write_store = _renumbered(built.ast, write_numbers, value_numbers).src[0]
  own = _renumbered(producer.ast, {i: index[s] for i, s in enumerate(producer.slots)})
  loads = [u for u in write_store.toposort() if u.op is Ops.LOAD and u.src[0].arg == -1]
  if any(load.src[1].arg != store.src[1].arg for load in loads): return None
  computed = {load: own.src[0].src[2] for load in loads}
  write_store = graph_rewrite(write_store, PatternMatcher([(UPat(Ops.LOAD, name="x"), lambda ctx, x: ctx.get(x))]), computed)
  ast = UOp(Ops.SINK, dtypes.void, own.src + (write_store,))
  deps = (producer.deps | built.deps) - set(producer.outputs)
  return ScheduledKernel(ast, slots, producer.outputs + built.outputs, producer.fused_reduces, deps,
                         producer.old_reads | built.old_reads, producer.out_slots + [target], values)


def _renumber_buffer(ctx, g: UOp): return g.replace(arg=ctx[0][g.arg]) if ctx[0][g.arg] != g.arg else None
def _renumber_value(ctx, v: UOp):
  i = value_number(v)
  return v.replace(arg=value_var_arg(ctx[1][i], *v.arg[1:3])) if ctx[1].get(i, i) != i else None
_renumber = PatternMatcher([(UPat(Ops.DEFINE_GLOBAL, name="g"), _renumber_buffer), (UPat(Ops.DEFINE_VAR, name="v"), _renumber_value)])


def _renumbered(ast: UOp, index: dict[int, int], value_index: dict[int, int] | None = None) -> UOp:
  """ast with buffer argument i made argument index[i], and value argument j value_index[j]."""
  return graph_rewrite(ast, _renumber, (index, value_index or {}), fixed_point=False)


def _copy_item(n: UOp, table: SlotTable) -> ScheduledKernel:
  src = n.src[0]
  if is_buffer_view(src):
    src_slot = table.of_view(src)
    return ScheduledKernel(n, [table.of[n], src_slot], [n], old_reads={src_slot})
  return ScheduledKernel(n, [table.of[n], table.of[src]], [n], deps={src})


def _in_order(kernels: list[ScheduledKernel]) -> list[ScheduledKernel]:
  """The kernels in an order where each runs after the kernels whose results it reads, and before an ASSIGN
  that overwrites a buffer it reads the old value of (the forward pass reading a parameter must run before the
  update of that parameter). Among kernels free to run, the first in toposort order goes first."""
  made_by = {n: i for i, k in enumerate(kernels) for n in k.outputs}
  assigned_by = {b: i for i, k in enumerate(kernels) for n, b in zip(k.outputs, k.out_slots) if n.op is Ops.ASSIGN}
  before: list[set[int]] = [set() for _ in kernels]  # before[i]: kernels that must run before kernel i
  for i, k in enumerate(kernels):
    before[i].update(made_by[n] for n in k.deps)
    for b in k.old_reads:
      if assigned_by.get(b, i) != i: before[assigned_by[b]].add(i)
  users: list[list[int]] = [[] for _ in kernels]
  for i, deps in enumerate(before):
    for d in deps: users[d].append(i)
  waiting = [len(deps) for deps in before]
  ready = [i for i, w in enumerate(waiting) if w == 0]
  heapq.heapify(ready)
  order = []
  while ready:
    i = heapq.heappop(ready)
    order.append(kernels[i])
    for u in users[i]:
      waiting[u] -= 1
      if waiting[u] == 0: heapq.heappush(ready, u)
  if len(order) != len(kernels): raise AssignCycle()
  return order


