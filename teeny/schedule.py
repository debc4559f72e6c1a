"""The scheduler: the lazy graph under the tensors being realized -> an ordered list of kernels.

A kernel boundary (a "realize point") falls only at: a tensor being realized, CONTIGUOUS, COPY (and its
source), ASSIGN, and a reduce whose result can't be used at the kernel's output shape (it is expanded back,
padded, or reshaped in a way one view can't express), or that two kernels would both need; and elementwise work
that a big reduce would read broadcast many times (the relu mask in front of a matmul: computed once rather than
once per output column). Everything else fuses: elementwise ops into their consumer and into the reduce that
follows them.

Schedules are cached by the graph's structure (see _walk), and the intermediates of a schedule whose
lifetimes don't overlap share memory (teeny/memory.py).

Each kernel becomes an AST: SINK(STORE(DEFINE_GLOBAL(0), VIEW(out), value)) where value is built from
LOAD(DEFINE_GLOBAL(i), VIEW(st)), CONST(VIEW(st)), RANGE(VIEW(st)) (the arange leaf), ALU ops and REDUCE_AXIS.
Movement ops never reach the AST: they are pushed down through elementwise ops and folded into the views of the
loads.
"""
from __future__ import annotations
from dataclasses import dataclass
from typing import Sequence
import heapq, itertools, math
from teeny import memory
from teeny.dtype import dtypes
from teeny.helpers import GlobalCounters, LRUCache, debug_level, dprint, getenv
from teeny.memory import plan_memory
from teeny.uop import UOp, Ops, ALU, ELEMENTWISE, MOVEMENT, toposort, PatternMatcher, UPat, graph_rewrite
from teeny.view import ShapeTracker
from teeny.runtime.device import Buffer, Device


@dataclass(slots=True)
class ScheduleItem:
  ast: UOp                     # a kernel AST (SINK), or a COPY node for a copy between devices
  bufs: list[Buffer]           # the first writes_count(ast) are written, the rest are read


def writes_count(ast: UOp) -> int:
  """How many of an item's buffers it writes, the first ones: one per STORE of a kernel (usually one), one for a
  copy."""
  return len(ast.src) if ast.op is Ops.SINK else 1


@dataclass
class _Kernel(ScheduleItem):
  """A kernel while the scheduler orders it, with what it knows about it then (a cache hit makes plain
  ScheduleItems: two fields to fill for every realize)."""
  outputs: list[UOp]                       # graph nodes this item realizes
  fused_reduces: list[UOp] | tuple = ()    # reduces computed inside this kernel
  deps: set | frozenset = frozenset()      # realized nodes it reads (made by other items of the schedule)
  old_reads: set | frozenset = frozenset()  # buffers it reads as they were before the schedule ran
  out_bufs: list | None = None             # the buffer each of `outputs` is stored into (bufs[0] if one)

  def __post_init__(self):
    if self.out_bufs is None: self.out_bufs = self.bufs[:1]


# Where graph nodes were realized: node._cache["realized"] = (generation, {device: buffer view}). Graph nodes carry
# no device (the same constant expression can live on two devices), so the device is part of the entry. Kept on
# the node: forgetting a graph forgets its buffers. forget_realized() bumps the generation, which voids them all
# except those of ASSIGNs (stored with generation None).
_generation = 0


def _realized_on(n: UOp) -> dict | None:
  entry = n._cache.get("realized")
  return entry[1] if entry is not None and (entry[0] == _generation or entry[0] is None) else None


def realized_buffers(n: UOp) -> list[Buffer]:
  """The buffers node n was realized into (one per device), if it was and the entry is still valid."""
  if "realized" not in n._cache: return []
  found = _realized_on(n)
  return [buffer_of(view) for view in found.values()] if found else []


def buffer_view(buf: Buffer, shape) -> UOp:
  """The graph node of a realized buffer seen with a shape: the BUFFER node itself when the shape is the buffer's
  own (one node fewer to build and walk for every 1-d result), else a RESHAPE of it."""
  shape = tuple(shape)
  node = UOp(Ops.BUFFER, buf.dtype, (), buf)
  # shapes are known already: one realized tensor per realize, so worth not deriving them
  node._cache["shape"] = (buf.size,)
  if shape == (buf.size,): return node
  view = UOp(Ops.RESHAPE, buf.dtype, (node,), shape)
  view._cache["shape"] = shape
  return view


def is_buffer_view(u: UOp) -> bool:
  return u.op is Ops.BUFFER or (u.op is Ops.RESHAPE and u.src[0].op is Ops.BUFFER)


def buffer_of(view: UOp) -> Buffer:
  """The buffer behind a buffer view (see buffer_view)."""
  return view.arg if view.op is Ops.BUFFER else view.src[0].arg


def forget_realized():
  """Drop every remembered result: called when an ASSIGN changes a buffer others may have been computed from.
  Except ASSIGNs themselves: one that ran must never run again (a pending graph that reads a counter's ASSIGN
  would increment it a second time); a graph holding it reads the target buffer instead."""
  global _generation, _sig_epoch
  _generation += 1
  _sig_epoch += 1


class _AssignCycle(Exception):
  """Raised when kernels can't be ordered: one needs a buffer's old contents and (through another) its new ones."""


_NEEDS_SNAPSHOTS = "needs snapshots"  # cached for a graph that raised _AssignCycle: schedule it with _with_snapshots
_snapshot_ids = itertools.count()


def _with_snapshots(roots: tuple[UOp, ...]) -> tuple[tuple[UOp, ...], dict[UOp, UOp]]:
  """The graph with every read of the old contents of an assigned buffer, except inside the values written to
  that buffer, made a read of a copy of it (CONTIGUOUS, tagged so it is never dropped). The copies are taken before
  the writes, and what needed both old and new contents can run after them. Returns the new roots and old -> new."""
  written = {buffer_of(n.src[0]) for n in toposort(UOp(Ops.SINK, dtypes.void, roots)) if n.op is Ops.ASSIGN}
  copies: dict[UOp, UOp] = {}
  done: dict[tuple, UOp] = {}  # (node, the buffer whose old reads stay: inside a write to it) -> rebuilt node

  def sources(n: UOp, keep):
    if n.op is Ops.ASSIGN: return [(n.src[1], buffer_of(n.src[0]))]  # its target is written, not read
    return [(s, keep) for s in n.src]

  stack = [(r, None) for r in roots]
  while stack:
    n, keep = item = stack[-1]
    if item in done: stack.pop(); continue
    kids = sources(n, keep)
    missing = [k for k in kids if k not in done]
    if missing: stack.extend(missing); continue
    stack.pop()
    if n.op is Ops.BUFFER and n.arg in written and n.arg is not keep:
      if n not in copies: copies[n] = UOp(Ops.CONTIGUOUS, n.dtype, (n,), ("snapshot", next(_snapshot_ids)))
      done[item] = copies[n]
      continue
    new_src = (n.src[0], done[kids[0]]) if n.op is Ops.ASSIGN else tuple(done[k] for k in kids)
    done[item] = n if all(a is b for a, b in zip(new_src, n.src)) else UOp(n.op, n.dtype, new_src, n.arg)
  renamed = {n: new for (n, keep), new in done.items() if keep is None and new is not n}
  return tuple(done[(r, None)] for r in roots), renamed


class _Unfusable(Exception):
  """Raised while building a kernel when `node` must be realized on its own first."""
  def __init__(self, node: UOp): self.node = node


# ---- the schedule cache ----
# A graph realized before with the same structure (ops, dtypes, args, shapes, devices; the realized buffers it
# reads may differ) reuses the schedule made for it: the key replaces each BUFFER by its device and size,
# numbered in the order the toposort meets it, so two graphs reading different buffers of one shape share a
# key while a graph reading one buffer twice doesn't match one reading two. Constants are part of the key:
# they are compiled into the kernels. A graph that has a signature (see _signature) finds its schedule under
# that too, without a walk: most schedules are in the cache under two keys.
_schedule_cache = LRUCache(getenv("SCHEDULE_CACHE_SIZE", 512))
_NOTHING_WRITTEN: frozenset = frozenset()


@dataclass
class _CachedSchedule:
  """A schedule with its buffers replaced by slots. Slots [0, n_inputs) are the graph's BUFFERs in toposort
  order; the rest are buffers the schedule makes, each (device, size, dtype, planned block or None)."""
  n_inputs: int
  new_buffers: list[tuple]
  blocks: list[list]                   # planned memory blocks: [device, nbytes]
  items: list[tuple[UOp, list[int]]]   # (kernel AST or buffer-free COPY, slots)
  marks: list[tuple[int, int, tuple]]  # (toposort position of a node, slot, its shape): nodes to remember as realized
  written: list[int]                   # slots of the graph's buffers that ASSIGNs overwrite
  # the same nodes found from the roots instead, for a hit by signature, which has no toposort: (root index,
  # source indices leading from that root to the node, slot, shape). Made the first time a signature needs it.
  mark_paths: list[tuple[int, tuple, int, tuple]] | None = None

  def instantiate(self, nodes: list[UOp], inputs: list[Buffer]) -> tuple[list[ScheduleItem], dict[UOp, UOp]]:
    """Items over new buffers (and `inputs`, which becomes the list of slots), and the views to mark realized,
    for the graph whose toposort is `nodes`. Runs on every cache hit: loops, not comprehensions, which cost a
    frame each."""
    items, slots = self._items(inputs)
    views = {}
    for pos, slot, shape in self.marks: views[nodes[pos]] = buffer_view(slots[slot], shape)
    return items, views, self._written(slots)

  def instantiate_from_paths(self, roots: tuple[UOp, ...], inputs: list[Buffer]) -> tuple[list[ScheduleItem], dict[UOp, UOp]]:
    """instantiate() for a graph known by its signature, which has no toposort: the nodes to mark are found
    along their paths from the roots."""
    items, slots = self._items(inputs)
    views = {}
    for root_index, path, slot, shape in self.mark_paths:
      n = roots[root_index]
      for i in path: n = n.src[i]
      views[n] = buffer_view(slots[slot], shape)
    return items, views, self._written(slots)

  def _written(self, slots: list[Buffer]) -> frozenset[Buffer]:
    return frozenset(slots[s] for s in self.written) if self.written else _NOTHING_WRITTEN

  def _items(self, inputs: list[Buffer]) -> tuple[list[ScheduleItem], list[Buffer]]:
    blocks = [Buffer(device, nbytes, dtypes.uint8) for device, nbytes in self.blocks] if self.blocks else None
    slots = inputs
    for device, size, dtype, block in self.new_buffers:
      slots.append(Buffer(device, size, dtype, None if block is None else blocks[block]))
    items = []
    for ast, refs in self.items: items.append(ScheduleItem(ast, list(map(slots.__getitem__, refs))))
    return items, slots


def create_schedule(roots: Sequence[UOp], devices: Sequence[str]) -> tuple[list[ScheduleItem], dict[UOp, UOp], frozenset]:
  """Kernels that realize every root (on the device given for it), in a runnable order, the buffer view of every
  node they realize (the roots included), and the buffers they overwrite (ASSIGN). Call mark_realized with those
  views once the kernels ran."""
  roots = tuple(roots)
  if type(devices) is not tuple: devices = tuple(devices)  # (part of the key)
  signed = _signature(roots)
  if signed is not None:  # a graph seen before by its signature: no walk
    sig_key = (signed[0], devices, memory.PLANNER)
    cached = _schedule_cache.get(sig_key)
    if cached is not None:  # (stored under a signature only once it has mark_paths)
      GlobalCounters.schedule_hits += 1
      if debug_level() >= 2: dprint(f"schedule cache hit: {len(cached.items)} item(s) reused")
      return cached.instantiate_from_paths(roots, list(signed[1]))
  nodes, key, inputs, needs_prepare = _walk(roots)
  renamed, new_roots = None, roots  # renamed: the caller's nodes -> the nodes scheduled in their place
  if needs_prepare:
    new_roots, renamed = _prepare(roots, _devices(nodes, dict(zip(roots, devices))))
    nodes, key, inputs, _ = _walk(new_roots)
  cached = _cached_or_scheduled(nodes, key, new_roots, devices, inputs)
  if cached is _NEEDS_SNAPSHOTS:
    # reads of old contents that no order of kernels can serve: they read copies taken before the writes
    new_roots, snapshotted = _with_snapshots(new_roots)
    if renamed: renamed = {n: snapshotted.get(m, m) for n, m in renamed.items()} | snapshotted
    else: renamed = snapshotted
    nodes, key, inputs, _ = _walk(new_roots)
    cached, signed = _cached_or_scheduled(nodes, key, new_roots, devices, inputs), None
  if signed is not None:  # (never prepared: a graph that needs _prepare has no signature)
    if cached.mark_paths is None: cached.mark_paths = _mark_paths(cached.marks, nodes, roots)
    _schedule_cache[sig_key] = cached
  items, views, written = cached.instantiate(nodes, inputs)
  for r, new in zip(roots, new_roots):
    if r not in views: views[r] = new if is_buffer_view(new) else views[new]  # a root the schedule didn't compute
  if renamed is not None:
    # remember the caller's nodes too, not only their rebuilt copies: a graph that still holds the original (an
    # ASSIGN above all, which must not run twice) then reads the buffer instead of computing it again
    for original, new in renamed.items():
      if new in views and original not in views: views[original] = views[new]
  return items, views, written


def _cached_or_scheduled(nodes, key, roots, devices, inputs):
  """The cached schedule for this walk's key, else a new one (cached): a _CachedSchedule, or _NEEDS_SNAPSHOTS."""
  key = (key, devices, memory.PLANNER)
  cached = _schedule_cache.get(key)
  if cached is None:
    GlobalCounters.schedule_misses += 1
    if debug_level() >= 2: dprint(f"schedule cache miss: {len(nodes)} nodes, {len(inputs)} input buffers")
    try: cached = _schedule(nodes, roots, devices, inputs)
    except _AssignCycle: cached = _NEEDS_SNAPSHOTS
    _schedule_cache[key] = cached
  else:
    GlobalCounters.schedule_hits += 1
    if debug_level() >= 2 and cached is not _NEEDS_SNAPSHOTS: dprint(f"schedule cache hit: {len(cached.items)} item(s) reused")
  return cached


def _walk(roots: tuple[UOp, ...]) -> tuple[list[UOp], tuple, list[Buffer], bool]:
  """One pass over the graph under roots: its nodes in toposort order, its key in the schedule cache, its input
  buffers in slot order, and whether _prepare has work to do on it (then the prepared graph is walked again).

  The key has one entry per node: (op, dtype, arg, positions of its sources); a BUFFER's entry is its device and
  size instead of the buffer itself. A last entry, SINK, holds the positions of the roots (no SINK node is made:
  it would be built and freed on every realize)."""
  nodes, parts, inputs, index, needs_prepare = [], [], [], {}, False
  # depth first without recursion: each stack entry is a node and the iterator over its sources still to visit.
  # This loop runs for every node of every realize: methods are bound once, and leaves are placed at once
  # without a trip through the stack.
  stack = [(None, iter(roots))]  # None stands for the SINK over the roots
  push, pop, place, add_part = stack.append, stack.pop, nodes.append, parts.append
  while stack:
    n, pending = stack[-1]
    for s in pending:
      if s in index: continue
      if s.src:  # not seen: visit it first (-1 marks seen; its position is set once it is placed)
        index[s] = -1
        push((s, iter(s.src)))
        break
      index[s] = len(nodes)  # a leaf: a BUFFER or a CONST
      place(s)
      if s.op is Ops.BUFFER:
        inputs.append(s.arg)
        add_part((Ops.BUFFER, s.dtype, s.arg.device, s.arg.size))
        continue
      arg = s.arg
      add_part((s.op, s.dtype, arg.hex() if type(arg) is float else arg, ()))
      if not needs_prepare and "realized" in s._cache: needs_prepare = _needs_prepare(s)
    else:  # every source is placed: place n
      pop()
      if n is None: break
      index[n] = len(nodes)
      place(n)
      # a CONTIGUOUS arg only tags leaves and clones apart (whether it has one matters to _prepare), an ASSIGN
      # arg only tells one assign() from another; a float constant is keyed by its bits (-0.0, nan)
      op, arg = n.op, n.arg
      if op is Ops.CONTIGUOUS: arg = arg is None
      elif op is Ops.ASSIGN: arg = arg[1]  # the view written through (its first part only tells writes apart)
      elif type(arg) is float: arg = arg.hex()
      src = n.src  # one or two sources (most nodes) without a list comprehension's frame
      if len(src) == 1: positions = (index[src[0]],)
      elif len(src) == 2: positions = (index[src[0]], index[src[1]])
      else: positions = tuple([index[s] for s in src])
      add_part((op, n.dtype, arg, positions))
      if not needs_prepare and (op is Ops.DETACH or op is Ops.CONTIGUOUS or "realized" in n._cache):
        needs_prepare = _needs_prepare(n)
  root_positions = (index[roots[0]],) if len(roots) == 1 else tuple([index[r] for r in roots])
  add_part((Ops.SINK, dtypes.void, None, root_positions))
  return nodes, tuple(parts), inputs, needs_prepare


def _needs_prepare(n: UOp) -> bool:
  # a DETACH of computed work is passed through by the kernel builder; one of a buffer must become that buffer
  # (else realizing it would copy it)
  if n.op is Ops.DETACH: return is_buffer_view(n.src[0])
  if n.op is Ops.CONTIGUOUS and n.arg is None and is_buffer_view(n.src[0]): return True
  return "realized" in n._cache and _realized_on(n) is not None


# ---- signatures: the schedule cache's key without a walk ----
# Realizing x = (x + 1) in a loop builds the same structure over a new buffer every time. Its signature is a small
# int naming that structure, found from the signatures of the sources, which are remembered on the nodes: only the
# new nodes are looked at, where _walk would visit the whole graph. Hash-consing makes this enough: two nodes of one
# graph are the same node exactly when their structures and the buffers under them are the same, so a signature
# (which records which leaves are the same buffer) fixes the toposort's shape and with it the schedule.
#
# A node's entry: node._cache["sig"] = (epoch, (signature, input buffers in walk order) or None). None is for
# graphs _walk must see: a realized node inside (which _prepare swaps for its buffer), DETACH, CONTIGUOUS, ASSIGN
# (whose args tell apart nodes of one structure), or too many input buffers. The epoch moves when a node that has
# an entry is realized, and with forget_realized(): the entries above it assumed it wasn't.
_signature_ids: dict[tuple, int] = {}
_next_signature = itertools.count()
_sig_epoch = 0
_SIGNATURE_IDS_MAX, _SIGNATURE_INPUTS_MAX = 1 << 16, 64
_NO_SIGNATURE_OPS = {Ops.DETACH, Ops.CONTIGUOUS, Ops.ASSIGN}


def _signature(roots: tuple[UOp, ...]) -> tuple[int, tuple[Buffer, ...]] | None:
  """The signature of the graph under roots and its input buffers in slot order (as _walk would list them), or
  None when the graph must be walked. Entries are kept on every node but the roots: a root is about to be
  realized, which would move the epoch."""
  if len(roots) == 1: return _root_signature(roots[0])
  for r in roots:  # an update of parameters (ASSIGN roots) is walked: don't sign the graph under them first
    if r.op in _NO_SIGNATURE_OPS: return None
  found = []
  for r in roots:
    result = _root_signature(r)
    if result is None: return None
    found.append(result)
  return _combine(("SINK", None), [sig for sig, _ in found], [inputs for _, inputs in found])


def _root_signature(root: UOp):
  entry = root._cache.get("sig")
  if entry is not None and entry[0] == _sig_epoch: return entry[1]
  if root.op in _NO_SIGNATURE_OPS: return None
  for s in root.src:
    entry = s._cache.get("sig")
    if entry is None or entry[0] != _sig_epoch:
      if not _sign(s): return None
    elif entry[1] is None: return None
  return _signature_from_sources(root)


def _sign(node: UOp) -> bool:
  """Give node, and every node under it without a current entry, its entry. Stops at the first node without a
  signature (returns False): the graph above it has none, and the rest of it needn't be looked at."""
  if node.op is Ops.BUFFER:  # the usual new node: a realized buffer
    node._cache["sig"] = (_sig_epoch, _signature_from_sources(node))
    return True
  # sources first, without recursion (graphs can be deep): a node waits on the stack until its sources have entries
  stack = [node]
  while stack:
    n = stack[-1]
    waiting = False
    for s in n.src:
      entry = s._cache.get("sig")
      if entry is None or entry[0] != _sig_epoch:
        stack.append(s)
        waiting = True
    if not waiting:
      stack.pop()
      result = _signature_from_sources(n)
      n._cache["sig"] = (_sig_epoch, result)
      if result is None: return False
  return True


def _signature_from_sources(n: UOp):
  """n's (signature, inputs), or None; its sources have their entries."""
  op = n.op
  if op is Ops.BUFFER:
    buf = n.arg
    return _intern((op, n.dtype, buf.device, buf.size)), (buf,)
  if op in _NO_SIGNATURE_OPS or ("realized" in n._cache and _realized_on(n) is not None): return None
  arg = n.arg
  if type(arg) is float: arg = arg.hex()  # as in _walk: -0.0 and nan by their bits
  sigs, inputs, with_inputs = [], (), 0
  for s in n.src:
    result = s._cache["sig"][1]
    if result is None: return None
    sigs.append(result[0])
    if result[1]:
      inputs = result[1]
      with_inputs += 1
  if with_inputs > 1: return _combine((op, n.dtype, arg), sigs, [s._cache["sig"][1][1] for s in n.src])
  return _intern((op, n.dtype, arg, None, *sigs)), inputs  # (None: no buffer is under two sources)


def _combine(head: tuple, sigs: list[int], source_inputs: list[tuple]) -> tuple[int, tuple[Buffer, ...]] | None:
  """The signature of a node (head: what it is) over sources with these signatures and inputs: its inputs are
  theirs in order, each buffer once, and when a buffer is under two sources the key says where each one's go."""
  inputs = tuple(dict.fromkeys(itertools.chain.from_iterable(source_inputs)))
  if len(inputs) > _SIGNATURE_INPUTS_MAX: return None  # (merging input lists gets slow; _walk is linear)
  layout = None
  if len(inputs) != sum(map(len, source_inputs)):  # shared buffers: record every source's slots
    slot = {b: i for i, b in enumerate(inputs)}
    layout = tuple(tuple(slot[b] for b in one) for one in source_inputs)
  return _intern((*head, layout, *sigs)), inputs


def _intern(structure: tuple) -> int:
  sig = _signature_ids.get(structure)
  if sig is None:
    # bounded: ever new constants would grow it forever. Numbers are never reused, so cache keys made with
    # forgotten ones just stop matching.
    if len(_signature_ids) >= _SIGNATURE_IDS_MAX: _signature_ids.clear()
    sig = _signature_ids[structure] = next(_next_signature)
  return sig


def _mark_paths(marks: list[tuple[int, int, tuple]], nodes: list[UOp], roots: tuple[UOp, ...]) -> list[tuple]:
  """The marks as paths from the roots (see _CachedSchedule.mark_paths), for the graph whose toposort is nodes."""
  reached_from: dict[UOp, tuple] = {}  # node -> (the node it was reached from or None for a root, source index)
  for i, r in enumerate(roots): reached_from.setdefault(r, (None, i))
  stack = list(roots)
  while stack:
    n = stack.pop()
    for i, s in enumerate(n.src):
      if s not in reached_from:
        reached_from[s] = (n, i)
        stack.append(s)
  out = []
  for pos, slot, shape in marks:
    steps, (up, i) = [], reached_from[nodes[pos]]
    while up is not None:
      steps.append(i)
      up, i = reached_from[up]
    out.append((i, tuple(reversed(steps)), slot, shape))
  return out


def mark_realized(views: dict[UOp, UOp]):
  """Remember where nodes were realized, so graphs that still hold them read the buffers instead of recomputing."""
  global _sig_epoch
  for n, view in views.items():
    if is_buffer_view(n) or _is_constant(n): continue  # a constant is cheaper to compute than to load
    cache = n._cache
    if "sig" in cache: _sig_epoch += 1  # graphs above n were signed as if it weren't realized
    found = _realized_on(n) if "realized" in cache else None  # (usually a node realized for the first time)
    if found is None:
      found = {}
      cache["realized"] = (None if n.op is Ops.ASSIGN else _generation, found)  # None: never forgotten
    found[buffer_of(view).device] = view


def _is_constant(n: UOp) -> bool:
  """A constant, maybe reshaped and expanded: every graph that holds it computes it for free."""
  while n.op in MOVEMENT: n = n.src[0]
  return n.op is Ops.CONST


def _prepare(roots: tuple[UOp, ...], device_of: dict[UOp, str]) -> tuple[tuple[UOp, ...], dict[UOp, UOp]]:
  """Swap in buffers of nodes realized before on the device they are needed on, and drop nodes that mean
  nothing to scheduling (DETACH, CONTIGUOUS of something already contiguous, unless it is tagged as a buffer of
  its own: a clone or a gradient leaf, which assign may later write). Returns the new roots and old -> new."""
  done: dict[UOp, UOp] = {}
  for n in toposort(UOp(Ops.SINK, dtypes.void, roots))[:-1]:
    found = _realized_on(n)
    if found is not None and device_of[n] in found: done[n] = found[device_of[n]]; continue
    src = tuple(done[s] for s in n.src)
    if n.op is Ops.DETACH or (n.op is Ops.CONTIGUOUS and n.arg is None and is_buffer_view(src[0]) and src[0].shape == n.shape):
      done[n] = src[0]; continue
    done[n] = n if all(a is b for a, b in zip(src, n.src)) else UOp(n.op, n.dtype, src, n.arg)
  return tuple(done[r] for r in roots), done


def _schedule(nodes: list[UOp], roots: tuple[UOp, ...], devices: list[str], inputs: list[Buffer]) -> _CachedSchedule:
  """Run the scheduler on a prepared graph (nodes in toposort order) and keep the result as a schedule of slots,
  its intermediates planned to share memory."""
  device_of = _devices(nodes, dict(zip(roots, devices)))
  realize = {r for r in roots if not is_buffer_view(r)}
  for n in nodes:
    if n.op in (Ops.CONTIGUOUS, Ops.COPY, Ops.ASSIGN): realize.add(n)
    if n.op is Ops.COPY and not is_buffer_view(n.src[0]): realize.add(n.src[0])
  while True:
    try:
      kernels, buffers = _build_all(nodes, realize, device_of)
      break
    except _Unfusable as e:
      realize.add(e.node)
  merged = _merge_writes(kernels, realize, buffers, device_of)
  try: kernels = _in_order(merged)
  except _AssignCycle: kernels = _in_order(kernels)  # (merging made an order impossible: run them apart)
  # buffers -> slots: the graph's inputs first, then every buffer the kernels made
  slot_of = {buf: i for i, buf in enumerate(inputs)}
  new_buffers = []
  for k in kernels:
    for b in k.bufs:
      if b not in slot_of:
        slot_of[b] = len(inputs) + len(new_buffers)
        new_buffers.append([b.device, b.size, b.dtype, None])
  items = [(k.ast if k.ast.op is not Ops.COPY else UOp(Ops.COPY, k.ast.dtype, (), k.ast.arg), [slot_of[b] for b in k.bufs])
           for k in kernels if k.bufs[0].size > 0]
  position = {n: i for i, n in enumerate(nodes)}
  marks = [(position[n], slot_of[b], n.shape) for k in kernels for n, b in zip(k.outputs, k.out_bufs)]
  written = [slot_of[b] for k in kernels for n, b in zip(k.outputs, k.out_bufs) if n.op is Ops.ASSIGN]
  blocks: list[list] = []
  if memory.PLANNER:
    # intermediates may share memory; what the roots were realized into is the caller's to keep
    keep = {slot_of[b] for k in kernels for n, b in zip(k.outputs, k.out_bufs) if n in roots}
    plannable = {s: (b[0], b[1] * b[2].itemsize) for s, b in enumerate(new_buffers, len(inputs)) if s not in keep}
    block_of, blocks, clobbered = plan_memory([refs for _, refs in items], plannable)
    for s, b in block_of.items(): new_buffers[s - len(inputs)][3] = b
    marks = [m for m in marks if m[1] not in clobbered]  # their memory now holds another result
  return _CachedSchedule(len(inputs), [tuple(b) for b in new_buffers], blocks, items, marks, written)


def _devices(nodes: list[UOp], root_devices: dict[UOp, str]) -> dict[UOp, str]:
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


def _build_all(nodes, realize, device_of) -> list[_Kernel]:
  buffers: dict[UOp, Buffer] = {}
  for n in nodes:
    if n in realize:
      buffers[n] = buffer_of(n.src[0]) if n.op is Ops.ASSIGN else Buffer(device_of[n], n.size, n.dtype)
  kernels, fused_by = [], {}
  for n in nodes:
    if n not in realize: continue
    max_bufs = Device[device_of[n]].max_kernel_buffers
    item = _copy_item(n, buffers) if n.op is Ops.COPY else _KernelBuilder(n, realize, buffers, max_bufs).build()
    kernels.append(item)
    for r in item.fused_reduces:
      if r in fused_by: raise _Unfusable(r)  # two kernels would each compute this reduce: compute it once
      fused_by[r] = n
  return kernels, buffers


def _merge_writes(kernels: list[_Kernel], realize: set, buffers: dict, device_of: dict) -> list[_Kernel]:
  """Merge each write (ASSIGN) that reads a result another kernel computes, at the element it writes, into that
  kernel: one kernel stores both. `p.assign(p - lr * g)` with the gradient g kept (p.grad may still be read: it is
  realized here) is then the gradient's kernel storing g and the new p, not a second kernel reading g back."""
  made_by = {n: k for k in kernels for n in k.outputs}
  merged: dict[int, _Kernel] = {}  # id of a producer kernel -> the kernel it became
  out = []
  for k in kernels:
    into = _merge_target(k, made_by, merged, buffers)
    if into is None:
      out.append(k)
      continue
    producer, value = into
    rebuilt = _KernelBuilder(k.outputs[0], realize, buffers, Device[device_of[k.outputs[0]]].max_kernel_buffers)
    combined = _merged(merged.get(id(producer), producer), rebuilt, value, buffers)
    if combined is None: out.append(k)
    else: merged[id(producer)] = combined
  return [merged.get(id(k), k) for k in out]


def _merge_target(k: _Kernel, made_by: dict, merged: dict, buffers: dict) -> tuple[_Kernel, UOp] | None:
  """(the kernel to merge write k into, the result it reads there), or None: k writes a whole buffer or a view of
  one with no reduce of its own, and reads a result made by a plain kernel (one output, not a write or a copy)
  that doesn't touch k's target."""
  if k.outputs[0].op is not Ops.ASSIGN or len(k.outputs) != 1 or k.fused_reduces: return None
  target = k.out_bufs[0]
  for dep in k.deps:
    producer = made_by.get(dep)
    if producer is None or producer.ast.op is not Ops.SINK or producer.outputs[0].op is Ops.ASSIGN: continue
    current = merged.get(id(producer), producer)
    if target in current.bufs or buffers[dep] is not producer.out_bufs[0]: continue
    if producer.ast.src[0].src[1].arg.size == k.outputs[0].src[1].size: return producer, dep
  return None


def _merged(producer: _Kernel, write: _KernelBuilder, value: UOp, buffers: dict) -> _Kernel | None:
  """producer's kernel also storing `write`'s ASSIGN, which it computes over producer's loop space with the loads
  of `value`'s buffer replaced by the value itself; None when that isn't one kernel (it reads value elsewhere than
  at the element it writes, or there would be too many buffers)."""
  store = producer.ast.src[0]  # (the first store is the producer's own result)
  try: built = write.build(out_space=store.src[1].arg.shape)
  except _Unfusable: return None
  target = built.out_bufs[0]
  # it must read the result, and no buffer another write of this kernel stores into (it might read it written)
  if buffers[value] not in built.bufs or any(b in built.bufs for b in producer.out_bufs[1:]): return None
  bufs = producer.out_bufs + [target] + [b for b in producer.bufs[len(producer.out_bufs):]]
  bufs += [b for b in built.bufs[1:] if b not in bufs and b is not buffers[value]]
  if len(bufs) > write.max_bufs: return None
  index = {b: i for i, b in enumerate(bufs)}
  # the write's value, over the merged arguments, with the result computed in place of its loads
  # (the result's buffer is numbered -1 there: its loads are replaced below)
  write_numbers = {i: -1 if b is buffers[value] else index[b] for i, b in enumerate(built.bufs)}
  write_store = _renumbered(built.ast, write_numbers).src[0]
  own = _renumbered(producer.ast, {i: index[b] for i, b in enumerate(producer.bufs)})
  loads = [u for u in write_store.toposort() if u.op is Ops.LOAD and u.src[0].arg == -1]
  if any(load.src[1].arg != store.src[1].arg for load in loads): return None
  computed = {load: own.src[0].src[2] for load in loads}
  write_store = graph_rewrite(write_store, PatternMatcher([(UPat(Ops.LOAD, name="x"), lambda ctx, x: ctx.get(x))]), computed)
  ast = UOp(Ops.SINK, dtypes.void, own.src + (write_store,))
  deps = (producer.deps | built.deps) - set(producer.outputs)
  return _Kernel(ast, bufs, producer.outputs + built.outputs, producer.fused_reduces, deps,
                 producer.old_reads | built.old_reads, producer.out_bufs + [target])


def _renumbered(ast: UOp, index: dict[int, int]) -> UOp:
  """ast with kernel argument i made argument index[i]."""
  def renumber(ctx, g): return g.replace(arg=ctx[g.arg]) if ctx[g.arg] != g.arg else None
  return graph_rewrite(ast, PatternMatcher([(UPat(Ops.DEFINE_GLOBAL, name="g"), renumber)]), index, fixed_point=False)


def _copy_item(n: UOp, buffers) -> _Kernel:
  src = n.src[0]
  if is_buffer_view(src):
    src_buf = buffer_of(src)
    return _Kernel(n, [buffers[n], src_buf], [n], old_reads={src_buf})
  return _Kernel(n, [buffers[n], buffers[src]], [n], deps={src})


def _in_order(kernels: list[_Kernel]) -> list[_Kernel]:
  """The kernels in an order where each runs after the kernels whose results it reads, and before an ASSIGN
  that overwrites a buffer it reads the old value of (the forward pass reading a parameter must run before the
  update of that parameter). Among kernels free to run, the first in toposort order goes first."""
  made_by = {n: i for i, k in enumerate(kernels) for n in k.outputs}
  assigned_by = {b: i for i, k in enumerate(kernels) for n, b in zip(k.outputs, k.out_bufs) if n.op is Ops.ASSIGN}
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
  if len(order) != len(kernels): raise _AssignCycle()
  return order


# leaves that read no memory: a kernel computes them where they are used (RANGE is the arange leaf 0..n-1)
_CONSTANT_LEAVES = (Ops.CONST, Ops.RANGE)


# elementwise work a reduce reads broadcast this many times or more is realized first, when the reduce reads at
# least BROADCAST_REALIZE_MIN_SIZE elements (see _check_broadcast_work)
BROADCAST_REALIZE_FACTOR, BROADCAST_REALIZE_MIN_SIZE = 16, 1 << 16


class _KernelBuilder:
  """Builds the AST of the kernel that realizes `root`."""
  def __init__(self, root: UOp, realize: set, buffers: dict, max_bufs: int):
    self.root, self.realize, self.buffers, self.max_bufs = root, realize, buffers, max_bufs
    self.bufs: list[Buffer] = [buffers[root]]
    # the output is argument 0; an ASSIGN that reads its own target reads it through the same argument
    self.globals: dict[Buffer, UOp] = {self.bufs[0]: UOp(Ops.DEFINE_GLOBAL, self.bufs[0].dtype.ptr(), (), 0)}
    self.reads: dict[UOp, frozenset] = {}  # AST node -> the DEFINE_GLOBALs it reads
    self.deps: set[UOp] = set()            # realized nodes read
    self.old_reads: set[Buffer] = set()    # buffers read as they were before the schedule

  def build(self, out_space: tuple | None = None) -> _Kernel:
    """The kernel; a write (ASSIGN) with no reduce of its own may be given the loop space to run over (another
    kernel's, to be merged into it: see _merge_writes)."""
    root = self.root
    value_node = root.src[1] if root.op is Ops.ASSIGN else (root.src[0] if root.op is Ops.CONTIGUOUS else root)
    reduces = self._fused_reduces(value_node)
    for r in reduces: self._check_broadcast_work(r)
    if out_space is None: out_space = reduces[0].shape if reduces else value_node.shape
    if reduces and reduces[0].size != value_node.size: raise _Unfusable(reduces[0])
    value = self._push(value_node, (("RESHAPE", out_space),))
    out_buf = self.buffers[root]
    out_st = _written_view(root).reshape(out_space) if root.op is Ops.ASSIGN else ShapeTracker.from_shape(out_space)
    if root.op is Ops.ASSIGN and value_node not in self.realize: self._check_assign_reads(value, out_st)
    glob = self.globals[out_buf]
    ast = UOp(Ops.SINK, dtypes.void, (UOp(Ops.STORE, dtypes.void, (glob, UOp(Ops.VIEW, dtypes.void, (), out_st), value)),))
    return _Kernel(ast, self.bufs, [root], reduces, self.deps, self.old_reads)

  def _is_leaf(self, n: UOp) -> bool:
    return (n in self.realize and n is not self.root) or n.op is Ops.BUFFER

  def _check_broadcast_work(self, reduce: UOp):
    """Elementwise work that the reduce reads broadcast (expanded) by a large factor would be recomputed that many
    times: the relu mask in front of a matmul, once per output column. Realize it on its own first (one cheap
    pass) so the reduce reads it like any buffer. Small reduces keep it fused: a kernel launch costs more there."""
    if reduce.src[0].size < BROADCAST_REALIZE_MIN_SIZE: return
    stack, seen = [(reduce.src[0], 1)], set()
    while stack:
      n, factor = stack.pop()
      if (n, factor) in seen or self._is_leaf(n) or n.op in _CONSTANT_LEAVES: continue
      seen.add((n, factor))
      if n.op is Ops.EXPAND: factor *= math.prod(n.shape) // max(1, math.prod(n.src[0].shape))
      elif n.op in ALU and factor >= BROADCAST_REALIZE_FACTOR and self._worth_storing(n): raise _Unfusable(n)
      if n.op is not Ops.REDUCE_AXIS: stack.extend((src, factor) for src in _computed_from(n))

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
      else: stack.extend(_computed_from(n))
    return loads

  def _fused_reduces(self, start: UOp) -> list[UOp]:
    """Reduces this kernel computes; all must share one input shape and axes, none may feed another."""
    found, seen, stack = [], set(), [(start, False)]
    while stack:
      n, inside_reduce = stack.pop()
      if (n, inside_reduce) in seen or self._is_leaf(n): continue
      seen.add((n, inside_reduce))
      if n.op is Ops.REDUCE_AXIS:
        if inside_reduce: raise _Unfusable(n)
        if found and (n.src[0].shape != found[0].src[0].shape or n.arg[1] != found[0].arg[1]): raise _Unfusable(n)
        if n not in found: found.append(n)
        stack.append((n.src[0], True))
        continue
      stack.extend((s, inside_reduce) for s in _computed_from(n))
    return found

  def _load(self, buf: Buffer, shape, moves) -> UOp:
    if buf not in self.globals:
      self.globals[buf] = UOp(Ops.DEFINE_GLOBAL, buf.dtype.ptr(), (), len(self.bufs))
      self.bufs.append(buf)
    st = _apply(ShapeTracker.from_shape(shape), moves)
    return UOp(Ops.LOAD, buf.dtype, (self.globals[buf], UOp(Ops.VIEW, dtypes.void, (), st)))

  def _children(self, n: UOp, moves) -> list:
    if self._is_leaf(n) or n.op in _CONSTANT_LEAVES: return []
    if n.op in MOVEMENT: return [(n.src[0], ((n.op.name, n.arg),) + moves)]
    if n.op is Ops.REDUCE_AXIS: return [(n.src[0], ())]
    return [(s, moves) for s in _computed_from(n)]

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
      self.reads[ast] = frozenset().union(*(self.reads[memo[k]] for k in kids)) if ast.op is not Ops.LOAD else frozenset([ast.src[0]])
      memo[(n, mv)] = ast
    return memo[(start, moves)]

  def _make(self, n: UOp, moves, srcs: list[UOp]) -> UOp:
    if n.op is Ops.BUFFER:
      self.old_reads.add(n.arg)
      return self._load(n.arg, n.shape, moves)
    if self._is_leaf(n):
      self.deps.add(n)
      return self._load(self.buffers[n], n.shape, moves)
    if n.op in _CONSTANT_LEAVES:  # a constant, or an arange leaf (RANGE): seen through the moves like a buffer
      st = _apply(ShapeTracker.from_shape(n.shape), moves)
      return UOp(n.op, n.dtype, (UOp(Ops.VIEW, dtypes.void, (), st),), n.arg)
    if n.op in MOVEMENT or n.op is Ops.DETACH: return srcs[0]
    if n.op is Ops.REDUCE_AXIS:
      st = _apply(ShapeTracker.from_shape(n.shape), moves)
      if st.shape != n.shape or not st.contiguous: raise _Unfusable(n)
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

  def _split(self, n: UOp, srcs: list[UOp]):
    """Too many buffers for one kernel: realize the source that reads the most of them on its own."""
    inner = [(len(self.reads[ast]), s) for s, ast in zip(n.src, srcs) if not self._is_leaf(s) and s.op not in _CONSTANT_LEAVES]
    raise _Unfusable(max(inner, key=lambda x: x[0])[1])

  def _check_assign_reads(self, value: UOp, out_st: ShapeTracker):
    """An ASSIGN may read its own target only at the element it writes; otherwise compute the value first."""
    target = self.globals[self.bufs[0]]
    for u in toposort(value):
      if u.op is Ops.LOAD and u.src[0] is target and u.src[1].arg != out_st: raise _Unfusable(self.root.src[1])


def _zero(dtype): return False if dtype == dtypes.bool else (0.0 if dtypes.is_float(dtype) else 0)


def _computed_from(n: UOp) -> tuple:
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


def _apply(st: ShapeTracker, moves) -> ShapeTracker:
  for name, arg in moves: st = st.apply(name, arg)
  return st
