"""The schedule cache: a graph realized before with the same structure reuses its schedule.

Owns the structural key (walk: one pass over the graph, its toposort, key and input buffers), the signatures
(the key without a walk, for graphs built over the last one, `x = (x + 1).realize()` in a loop), the cached
schedules themselves (CachedSchedule: kernels over slots, instantiated over new buffers on every hit), and the
RealizedMap: which graph nodes were realized where, and the signatures taken while that was so.

Everything here runs on every realize: loops over the graph bind their methods once, make no frames they can
avoid (no comprehensions, no helper calls per node), and the walk is the one pass a cache hit costs.
"""
from __future__ import annotations
from dataclasses import dataclass
import functools, itertools, threading, weakref
from teeny.dtype import dtypes
from teeny.helpers import LRUCache, getenv
from teeny.uop import UOp, Ops, MOVEMENT
from teeny.runtime.device import Buffer
from teeny.multi import is_multi
from teeny.schedule.items import ScheduleItem, buffer_view, is_buffer_view, buffer_of, is_value_arg, value_of


class _Entry(weakref.ref):
  """An entry of a RealizedMap table, under the key id(node): a weak reference to the node, holding the entry's
  value. Its callback removes it from its table when the node dies, before the id can be reused: an entry found
  under id(n) is always n's, and a dead node's entry keeps no buffer alive. `weak` (realized entries only):
  views the entry holds weakly, {device: weakref} (RealizedMap.hold_weakly), or None."""
  __slots__ = ("key", "value", "weak")


# held while an entry goes into a table and while a dead node's entry comes out: otherwise a thread could remove
# the entry another thread just made for a new node that got the dead one's id. Re-entrant: a garbage collection
# that runs inside the insert may call _remove_from on this thread.
_TABLES_LOCK = threading.RLock()


def _remove_from(table: dict, entry: _Entry):
  with _TABLES_LOCK:
    if table.get(entry.key) is entry: del table[entry.key]


def _add_entry(table: dict, node: UOp, died, value) -> _Entry:
  """A new entry for node in table, filled before another thread can find it there."""
  entry = _Entry(node, died)
  entry.key = key = id(node)
  entry.value, entry.weak = value, None
  with _TABLES_LOCK: table[key] = entry
  return entry


class RealizedMap:
  """Where graph nodes were realized, and the signatures (see below) taken of graphs while that was so.

  Kept here, beside the graph, not on its nodes (which never change), in two tables of _Entry keyed by id(node).

  realized: node -> {device: buffer view} (graph nodes carry no device: the same constant expression can live on
  two devices). An entry dies with its node: forgetting a graph forgets its buffers. forget() drops them all
  except those of ASSIGNs: one that ran must never run again.

  sig_table: node -> (signature, inputs in walk order) or None. BUFFERs and value constants have none: theirs is
  computed from the node, cheaper than an entry (`x = (x + 1).realize()` in a loop makes a new BUFFER every step). They hold for
  one epoch: the epoch ends (a new table) when a node that has a signature is realized (the signatures above it
  assumed it wasn't) and with forget(). One epoch, where there were a generation and a signature epoch."""

  def __init__(self):
    self.realized: dict[int, _Entry] = {}
    self._realized_died = functools.partial(_remove_from, self.realized)
    self.new_epoch()

  def on(self, n: UOp) -> dict | None:
    """{device: buffer view} where n was realized, or None."""
    entry = self.realized.get(id(n))
    if entry is None or not entry.weak: return None if entry is None else entry.value
    # (a dead view's callback takes it out; one that died this instant is skipped until it does)
    return {**entry.value, **{device: view for device, ref in entry.weak.items() if (view := ref()) is not None}}

  def hold_weakly(self, n: UOp, view: UOp):
    """Keep n's entry for `view` only while something else holds the view. For a realized tensor's node whose
    buffer view keys the graph it keeps (engine/tensors.kept_graphs: view -> graph, the graph being n): held here
    too, the view would keep the graph, the graph this entry, the entry the view, a cycle through two weak tables
    that nothing collects (a loop of backward passes without an optimizer kept every pass's gradients). Once the
    view dies, n is no longer realized there (a graph that still holds n computes it again)."""
    with _TABLES_LOCK:
      entry = self.realized.get(id(n))
      if entry is None: return
      device = next((d for d, v in entry.value.items() if v is view), None)
      if device is None: return
      del entry.value[device]
      if entry.weak is None: entry.weak = {}
      entry.weak[device] = weakref.ref(view, functools.partial(self._view_died, id(n), device))

  def _view_died(self, key: int, device: str, ref: weakref.ref):
    # (by key, not the entry itself: the entry holds this callback through its weakref)
    with _TABLES_LOCK:
      entry = self.realized.get(key)
      if entry is None or entry.weak is None or entry.weak.get(device) is not ref: return
      del entry.weak[device]
      if not entry.value and not entry.weak: _remove_from(self.realized, entry)
    self.new_epoch()  # (signatures above the node were taken while it was realized there)

  def buffers(self, n: UOp) -> list[Buffer]:
    """The buffers node n was realized into (one per device), if it was and the entry wasn't forgotten."""
    found = self.on(n)
    return [buffer_of(view) for view in found.values()] if found else []

  def mark(self, views: dict[UOp, UOp]):
    """Remember where nodes were realized, so graphs that still hold them read the buffers instead of recomputing."""
    realized = self.realized
    for n, view in views.items():
      if is_buffer_view(n) or _is_constant(n): continue  # a constant is cheaper to compute than to load
      key = id(n)
      if key in self.sig_table[0]: self.new_epoch()  # graphs above n were signed as if it weren't realized
      entry = realized.get(key)  # (usually a node realized for the first time)
      if entry is None:
        entry = _add_entry(realized, n, self._realized_died, {})
      device = buffer_of(view).device
      entry.value[device] = view
      if entry.weak is not None: entry.weak.pop(device, None)

  def forget(self):
    """Drop every remembered result: called when an ASSIGN changes a buffer others may have been computed from.
    Except ASSIGNs themselves: one that ran must never run again (a pending graph that reads a counter's ASSIGN
    would increment it a second time); a graph holding it reads the target buffer instead."""
    realized = self.realized
    for entry in list(realized.values()):  # (a copy: another thread may realize meanwhile)
      node = entry()
      if node is None or node.op is not Ops.ASSIGN: _remove_from(realized, entry)
    self.new_epoch()

  def new_epoch(self):
    # a new table, not cleared: a signature being taken in another thread keeps its own. The table and the
    # callback that removes entries from it are one attribute, read at once.
    sigs: dict[int, _Entry] = {}
    self.sig_table = (sigs, functools.partial(_remove_from, sigs))


def _is_constant(n: UOp) -> bool:
  """A constant (or a bound Variable), maybe reshaped and expanded: every graph that holds it computes it for free."""
  while n.op in MOVEMENT: n = n.src[0]
  return n.op is Ops.CONST or n.op is Ops.BIND


REALIZED = RealizedMap()


# ---- the schedule cache ----
# A graph realized before with the same structure (ops, dtypes, args, shapes, devices; the realized buffers it
# reads may differ) reuses the schedule made for it: the key replaces each BUFFER by its device and size,
# numbered in the order the toposort meets it, so two graphs reading different buffers of one shape share a
# key while a graph reading one buffer twice doesn't match one reading two. A constant passed to the kernels as
# an argument (items.is_value_arg) is an input like a buffer: its dtype is in the key, its value is not, so
# `(x * i + 1).sum()` for a new i reuses the schedule and the kernels. Other constants are part of the key:
# they are compiled into the kernels. A graph that has a signature (see signature) finds its schedule under
# that too, without a walk: most schedules are in the cache under two keys.
schedule_cache = LRUCache(getenv("SCHEDULE_CACHE_SIZE", 512))
_NOTHING_WRITTEN: frozenset = frozenset()


@dataclass
class CachedSchedule:
  """A schedule with its buffers replaced by slots. Slots [0, n_inputs) are the graph's inputs in toposort
  order: its BUFFERs and the constants passed as values (items.is_value_arg); the rest are buffers the schedule
  makes, each (device, size, dtype, planned block or None)."""
  n_inputs: int
  new_buffers: list[tuple]
  blocks: list[list]                   # planned memory blocks: [device, nbytes]
  items: list[tuple[UOp, list[int], list[int]]]  # (kernel AST or buffer-free COPY, buffer slots, value slots)
  marks: list[tuple[int, int, tuple]]  # (toposort position of a node, slot, its shape): nodes to remember as realized
  written: list[int]                   # slots of the graph's buffers that ASSIGNs overwrite
  # the same nodes found from the roots instead, for a hit by signature, which has no toposort: (root index,
  # source indices leading from that root to the node, slot, shape). Made the first time a signature needs it.
  mark_paths: list[tuple[int, tuple, int, tuple]] | None = None

  def instantiate(self, nodes: list[UOp], inputs: list) -> tuple[list[ScheduleItem], dict[UOp, UOp]]:
    """Items over new buffers (and `inputs`, which becomes the list of slots), and the views to mark realized,
    for the graph whose toposort is `nodes`. Runs on every cache hit: loops, not comprehensions, which cost a
    frame each."""
    items, slots = self._items(inputs)
    views = {}
    for pos, slot, shape in self.marks: views[nodes[pos]] = buffer_view(slots[slot], shape)
    return items, views, self._written(slots)

  def instantiate_from_paths(self, roots: tuple[UOp, ...], inputs: list) -> tuple[list[ScheduleItem], dict[UOp, UOp]]:
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

  def _items(self, inputs: list) -> tuple[list[ScheduleItem], list]:
    blocks = [Buffer(device, nbytes, dtypes.uint8) for device, nbytes in self.blocks] if self.blocks else None
    slots = inputs
    for device, size, dtype, block in self.new_buffers:
      slots.append(Buffer(device, size, dtype, None if block is None else blocks[block]))
    items = []
    for ast, refs, value_refs in self.items:
      bufs = list(map(slots.__getitem__, refs))
      if value_refs: items.append(ScheduleItem(ast, bufs, tuple([value_of(slots[s]) for s in value_refs])))
      else: items.append(ScheduleItem(ast, bufs))
    return items, slots


def walk(roots: tuple[UOp, ...]) -> tuple[list[UOp], tuple, list, bool]:
  """One pass over the graph under roots: its nodes in toposort order, its key in the schedule cache, its inputs
  in slot order (buffers, and the constants passed as values: their CONST nodes), and whether kernelize.prepare
  has work to do on it (then the prepared graph is walked again).

  The key has one entry per node: (op, dtype, arg, positions of its sources); a BUFFER's entry is its device and
  size instead of the buffer itself, a value constant's entry leaves out its value. A last entry, SINK, holds the positions of the roots (no SINK node is made:
  it would be built and freed on every realize)."""
  nodes, parts, inputs, index, needs_prepare = [], [], [], {}, False
  # depth first without recursion: each stack entry is a node and the iterator over its sources still to visit.
  # This loop runs for every node of every realize: methods are bound once, and leaves are placed at once
  # without a trip through the stack.
  stack = [(None, iter(roots))]  # None stands for the SINK over the roots
  push, pop, place, add_part = stack.append, stack.pop, nodes.append, parts.append
  realized, id_ = REALIZED.realized, id
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
      if s.op is Ops.BIND:  # a bound Variable: its name and range are structure, its value an input
        inputs.append(s)
        add_part((Ops.BIND, s.dtype, arg[:3], ()))
        continue
      if type(arg) is float:
        if is_value_arg(s):
          inputs.append(s)
          add_part(_VALUE_PART)
          continue
        arg = arg.hex()
      add_part((s.op, s.dtype, arg, ()))
      if not needs_prepare and id_(s) in realized: needs_prepare = _needs_prepare(s)
    else:  # every source is placed: place n
      pop()
      if n is None: break
      index[n] = len(nodes)
      place(n)
      # a CONTIGUOUS arg only tags leaves and clones apart (whether it has one matters to prepare), an ASSIGN
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
      if not needs_prepare and (op in _MAY_NEED_PREPARE or id_(n) in realized):
        needs_prepare = _needs_prepare(n)
  root_positions = (index[roots[0]],) if len(roots) == 1 else tuple([index[r] for r in roots])
  add_part((Ops.SINK, dtypes.void, None, root_positions))
  return nodes, tuple(parts), inputs, needs_prepare


_MAY_NEED_PREPARE = frozenset({Ops.DETACH, Ops.CONTIGUOUS, Ops.MULTI, Ops.COPY})  # (see _needs_prepare)
_VALUE_PART = (Ops.CONST, dtypes.float32, "a value argument", ())  # (is_value_arg: float32 only)


def _needs_prepare(n: UOp) -> bool:
  # a DETACH of computed work is passed through by the kernel builder; one of a buffer must become that buffer
  # (else realizing it would copy it)
  if n.op is Ops.DETACH: return is_buffer_view(n.src[0])
  if n.op is Ops.CONTIGUOUS and n.arg is None and is_buffer_view(n.src[0]): return True
  if is_multi(n): return True  # a sharded tensor read on one device: create_schedule rewrites it first
  return id(n) in REALIZED.realized


# ---- signatures: the schedule cache's key without a walk ----
# Realizing x = (x + 1) in a loop builds the same structure over a new buffer every time. Its signature is a small
# int naming that structure, found from the signatures of the sources, which are remembered (REALIZED.sig_table): only
# the new nodes are looked at, where walk would visit the whole graph. Hash-consing makes this enough: two nodes of
# one graph are the same node exactly when their structures and the buffers under them are the same, so a signature
# (which records which leaves are the same buffer) fixes the toposort's shape and with it the schedule.
#
# A node's entry: (signature, input buffers in walk order) or None. None is for graphs walk must see: a realized
# node inside (which kernelize.prepare swaps for its buffer), DETACH, CONTIGUOUS, ASSIGN (whose args tell apart
# nodes of one structure), or too many input buffers. The entries hold for one epoch of the RealizedMap, which ends
# when a node that has an entry is realized, and with forget_realized(): the entries above it assumed it wasn't.
_signature_ids: dict[tuple, int] = {}
_next_signature = itertools.count()
_SIGNATURE_IDS_MAX, _SIGNATURE_INPUTS_MAX = 1 << 16, 64
_VALUE_SIGNATURE = next(_next_signature)  # every value constant's: only its dtype counts, and that is float32
_NO_SIGNATURE_OPS = {Ops.DETACH, Ops.CONTIGUOUS, Ops.ASSIGN, Ops.MULTI}  # (MULTI: a sharded tensor gathered)


def signature(roots: tuple[UOp, ...]) -> tuple[int, tuple[Buffer, ...]] | None:
  """The signature of the graph under roots and its input buffers in slot order (as walk would list them), or
  None when the graph must be walked. Every node but the roots gets an entry: a root is about to be realized,
  which would end the epoch."""
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
  if _is_signed_leaf(root): return _leaf_signature(root)
  sigs, died = REALIZED.sig_table  # (bound once: a new epoch may replace it meanwhile)
  entry = sigs.get(id(root))
  if entry is not None: return entry.value
  if root.op in _NO_SIGNATURE_OPS: return None
  for s in root.src:
    if _is_signed_leaf(s): continue
    entry = sigs.get(id(s))
    if entry is None:
      if not _sign(s, sigs, died): return None
    elif entry.value is None: return None
  return _signature_from_sources(root, sigs)


def _sign(node: UOp, sigs: dict, died) -> bool:
  """Give node, and every node under it without an entry in sigs, its entry. Stops at the first node without a
  signature (returns False): the graph above it has none, and the rest of it needn't be looked at."""
  # sources first, without recursion (graphs can be deep): a node waits on the stack until its sources have entries
  stack = [node]
  while stack:
    n = stack[-1]
    waiting = False
    for s in n.src:
      if id(s) not in sigs and not _is_signed_leaf(s):
        stack.append(s)
        waiting = True
    if not waiting:
      stack.pop()
      result = _signature_from_sources(n, sigs)
      _add_entry(sigs, n, died, result)
      if result is None: return False
  return True


def _is_signed_leaf(n: UOp) -> bool:
  """A BUFFER or a value constant: a leaf whose signature _leaf_signature computes, never in the table."""
  return n.op is Ops.BUFFER or is_value_arg(n)


def _leaf_signature(n: UOp) -> tuple[int, tuple]:
  """The signature of a BUFFER or of a constant passed as a value, which have no entry in the table: computing it
  is cheaper than an entry (`x = (x + 1).realize()` in a loop makes a new BUFFER every step; a changing number a
  new CONST). The input is the buffer, or the CONST node, whose value the schedule's kernels are given."""
  if n.op is Ops.CONST: return _VALUE_SIGNATURE, (n,)
  if n.op is Ops.BIND: return _intern((Ops.BIND, n.dtype, n.arg[:3])), (n,)
  buf = n.arg
  return _intern((Ops.BUFFER, n.dtype, buf.device, buf.size)), (buf,)


def _signature_from_sources(n: UOp, sigs: dict):
  """n's (signature, inputs), or None; its sources are BUFFERs or have their entries in sigs."""
  op = n.op
  if op in _NO_SIGNATURE_OPS or id(n) in REALIZED.realized or (op is Ops.COPY and is_multi(n)): return None
  arg = n.arg
  if type(arg) is float: arg = arg.hex()  # as in walk: -0.0 and nan by their bits
  source_sigs, inputs, with_inputs = [], (), 0
  for s in n.src:
    result = _leaf_signature(s) if _is_signed_leaf(s) else sigs[id(s)].value
    if result is None: return None
    source_sigs.append(result[0])
    if result[1]:
      inputs = result[1]
      with_inputs += 1
  if with_inputs > 1:
    source_inputs = [(_leaf_signature(s) if _is_signed_leaf(s) else sigs[id(s)].value)[1] for s in n.src]
    return _combine((op, n.dtype, arg), source_sigs, source_inputs)
  return _intern((op, n.dtype, arg, None, *source_sigs)), inputs  # (None: no buffer is under two sources)


def _combine(head: tuple, sigs: list[int], source_inputs: list[tuple]) -> tuple[int, tuple[Buffer, ...]] | None:
  """The signature of a node (head: what it is) over sources with these signatures and inputs: its inputs are
  theirs in order, each buffer once, and when a buffer is under two sources the key says where each one's go."""
  inputs = tuple(dict.fromkeys(itertools.chain.from_iterable(source_inputs)))
  if len(inputs) > _SIGNATURE_INPUTS_MAX: return None  # (merging input lists gets slow; walk is linear)
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


def paths_to_marks(marks: list[tuple[int, int, tuple]], nodes: list[UOp], roots: tuple[UOp, ...]) -> list[tuple]:
  """The marks as paths from the roots (see CachedSchedule.mark_paths), for the graph whose toposort is nodes."""
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


