"""Program order for lazy reads: a lazy result reads the values its inputs had when it was written down.

teeny writes in place: `x.assign(v)`, `x += 1`, `x[i] = v` and an optimizer step overwrite x's buffer when they
run. A lazy tensor built from x before the write (`z = x * 2`) still reads that buffer, so realizing it after
the write would see the new values, which no eager library would give. Before a schedule that overwrites
buffers runs, this module finds the live lazy tensors that read the old contents of those buffers (directly, or
through a node realized into one of them) and hands them back to be realized in the same schedule, where the
scheduler orders their kernels before the writes: "realize the readers first". An update nobody else reads
stays in place with no extra work.

The writes not yet run are tracked apart (track_write, settle_writes): a TinyJit replay runs its kernels
outside any schedule, so it runs first the pending writes into the buffers it uses (pending_writes), and a
capture tells them from writes that ran (a tensor keeps its ASSIGN node after its write ran in another
tensor's realize).

It also keeps autograd honest: a realized tensor that requires grad keeps the graph that computed it (so
backward() works after printing the loss); once a buffer that graph reads is overwritten, backward through it
would use the new values, so the graph is marked stale and backward() raises, as PyTorch does.

The registry is a list of weak references per thread, appended to when a tensor gets a lazy node (cheap on the
hot path of building graphs: no lock, no other thread appends to it) and compacted when it has grown; a scan
reads every thread's list (a tensor made on one thread may read a buffer another thread overwrites) and walks
each candidate's graph once, sharing what it learns about nodes between candidates. Per thread too: where a
TinyJit capture running on that thread started (see split_by_capture). Nothing here knows the Tensor class: it
reads `_uop`, `_base` and the realized map of the scheduler.
"""
from __future__ import annotations
import threading, weakref
from teeny.dtype import dtypes
from teeny.uop import UOp, Ops, UPat, PatternMatcher, graph_rewrite
from teeny.helpers import snapshot
from teeny.runtime.device import Buffer
from teeny.schedule import is_buffer_view, buffer_of, realized_buffers
from teeny import multi

_ref = weakref.ref


class _Registry:
  """One thread's weak references to tensors that got a lazy node (a tensor may appear more than once; dead ones
  are dropped when the list is compacted), and, while a TinyJit captures on that thread, the position from which
  entries were made during the captured call. Only its thread appends to it or compacts it, except once that
  thread has ended (its tensors may live on, so its registry is read, and compacted, until they are gone)."""
  __slots__ = ("refs", "compact_at", "capture_start", "thread")
  def __init__(self):
    self.refs: list = []
    self.compact_at = 4096
    self.capture_start: int | None = None
    self.thread = threading.current_thread()


class _ThisThread(threading.local):
  def __init__(self):  # (runs once in each thread, at its first use of the registry)
    self.registry = _Registry()
    with _registries_lock: _registries.append(self.registry)


_registries: list[_Registry] = []  # every thread's registry that may still hold live tensors
_registries_lock = threading.Lock()  # held while the list of registries changes
_this_thread = _ThisThread()


def track(t):
  """Remember a tensor that now holds a lazy node: it may read buffers that a later write overwrites."""
  registry = _this_thread.registry
  refs = registry.refs
  refs.append(_ref(t))
  if len(refs) >= registry.compact_at and registry.capture_start is None:
    _compact(registry)
    registry.compact_at = max(4096, 2 * len(refs))


def _compact(registry: _Registry):
  seen, kept = set(), []
  for r in registry.refs:
    t = r()
    if t is not None and id(t) not in seen and not is_buffer_view(t._uop):
      seen.add(id(t))
      kept.append(r)
  registry.refs[:] = kept


def capture_position() -> int:
  """Where this thread's registry ends now: a TinyJit passes it to set_capture_start when it starts capturing."""
  return len(_this_thread.registry.refs)


def capture_start() -> int | None:
  """Where the capture running on this thread started in its registry (None: no capture runs on this thread)."""
  return _this_thread.registry.capture_start


def set_capture_start(start: int | None):
  _this_thread.registry.capture_start = start


def _lazy_bases() -> list:
  """Every live tensor, on any thread, that owns a lazy node, each once; views are left out: they read their
  base's current node, never an old one. On the way, registries are compacted that no capture needs as they
  are: this thread's outside a capture, and those of threads that have ended (a scan costs what the registries
  hold, so they are kept to the lazy tensors)."""
  mine = _this_thread.registry
  with _registries_lock: registries = list(_registries)
  found: dict[int, object] = {}
  for registry in registries:
    refs = registry.refs[:]  # (one atomic copy: its thread may be appending to it right now)
    live: dict[int, object] = {}
    for r in refs:
      t = r()
      if t is not None and not is_buffer_view(t._uop): live[id(t)] = t
    found.update(live)
    if registry is mine: compact = mine.capture_start is None
    else: compact = not registry.thread.is_alive()
    if compact:
      registry.refs[:] = [_ref(t) for t in live.values()]
      if not live and registry is not mine: _forget(registry)
  return [t for t in found.values() if t._base is None]


def _forget(registry: _Registry):
  with _registries_lock:
    if registry in _registries and not registry.refs: _registries.remove(registry)


def old_value_readers(written: set[Buffer], skip: set[int]) -> list:
  """Live lazy tensors (by id not in `skip`) whose graphs read the current contents of a buffer in `written`."""
  memo: dict[UOp, bool] = {}
  return [t for t in _lazy_bases() if id(t) not in skip and reads_any(t._uop, written, memo)]


def split_by_capture(tensors: list) -> tuple[list, list]:
  """While a TinyJit captures on this thread: (tensors made before the captured call, tensors made during it).
  The first are realized outside the capture (a replay must not recompute them into buffers their owners still
  read). Made during it: given a lazy node by this thread since the capture started; tensors of other threads
  are never part of the capture."""
  registry = _this_thread.registry
  start = registry.capture_start
  if start is None: return [], tensors
  during = set()
  for r in registry.refs[start:]:
    t = r()
    if t is not None: during.add(id(t))
  return [t for t in tensors if id(t) not in during], [t for t in tensors if id(t) in during]


def accumulated(grad, g):
  """grad + g: backward() adding to a .grad, in place (as PyTorch's: a reference kept to the .grad, say one that
  zero_grad(set_to_none=False) zeroed, sees the sum; it read the zeros) unless the .grad requires grad or is a view
  other than backward()'s own detach().
  Inside a TinyJit's captured call, a .grad made before the call would be read from the capture's buffer by every
  replay, which never rebinds the attribute (gradients 1, 3, 4, 5 for 1, 3, 6, 10): refused."""
  made_before, _ = split_by_capture([grad, grad if grad._base is None else grad._base])
  if len(made_before) == 2:  # (the .grad and what it is a view of, both older than the capture)
    raise RuntimeError("TinyJit: backward() adds to a .grad made before the jitted call, and replays can't follow a "
                       "gradient kept from call to call in the .grad attribute: set the gradients to None inside "
                       "the function (opt.zero_grad()), or keep the running sum in a tensor updated with assign")
  own = grad._base is None or all(op is Ops.DETACH for op, _ in grad._view_ops)
  if own and not grad.requires_grad: return grad.assign(grad + g)
  return grad + g


def made_before_capture_in(roots) -> list:
  """While a TinyJit captures on this thread: the live lazy tensors made before the captured call whose nodes are
  in the graphs under `roots` (a layer's weights never realized, a constant computed outside). Recomputed by every
  replay, they would be baked into it: a later assign to them (load_state_dict) would never reach it."""
  registry = _this_thread.registry
  if registry.capture_start is None: return []
  during = {id(t) for r in registry.refs[registry.capture_start:] if (t := r()) is not None}
  # (a tensor whose write ran keeps its ASSIGN node: only the writes still pending are computed here)
  pending = {id(t) for r in _writes if (t := r()) is not None}
  made_before = {t._uop: t for t in _lazy_bases() if id(t) not in during and (t._uop.op is not Ops.ASSIGN or id(t) in pending)}
  if not made_before: return []
  return [made_before[n] for n in UOp(Ops.SINK, dtypes.void, tuple(roots)).toposort() if n in made_before]


_writes: list = []  # weak references to tensors given a write (ASSIGN) node, on any thread: pending_writes' list
_writes_lock = threading.Lock()  # (settle_writes rebuilds the list: a write tracked meanwhile must not be lost)


def track_write(t):
  """Remember a tensor whose node is now a write into its buffer (x.assign(v), x += 1), until it runs."""
  with _writes_lock: _writes.append(_ref(t))


def settle_writes():
  """After a schedule that wrote buffers ran (its nodes marked realized): forget the tracked writes that ran, or
  whose tensors died or hold another node now. A tensor keeps its ASSIGN node after the write ran inside another
  tensor's realize, and once the realized map is forgotten nothing else tells that it ran."""
  with _writes_lock:
    _writes[:] = [_ref(t) for r in _writes if (t := r()) is not None and t._uop.op is Ops.ASSIGN and not ran_into(t._uop)]


def writes_to_run_now() -> list:
  """This thread's writes (ASSIGN) still pending, which an optimizer step and a TinyJit call run with their own
  work: side effects of the forward pass (BatchNorm's running statistics) that PyTorch runs at once. Left pending
  they were never part of a TinyJit capture (replays skipped them), and eagerly each step's update chained onto the
  last one's graph. While a TinyJit captures, only those made during the captured call: older ones run before a
  replay (realize_pending_writes), and a capture would replay them on every call."""
  settle_writes()
  pending = {id(t) for r in _writes[:] if (t := r()) is not None}
  if not pending: return []
  mine = {id(t): t for r in _this_thread.registry.refs[:] if (t := r()) is not None and id(t) in pending}
  return split_by_capture(list(mine.values()))[1]


def pending_writes(buffers) -> list:
  """Live tensors whose node is a write (ASSIGN) that has not run yet into one of `buffers` (a collection, read
  only when there is such a write: a TinyJit replay asks before every call)."""
  settle_writes()
  live = [t for r in _writes[:] if (t := r()) is not None]
  if not live: return []
  buffers = set(buffers)
  out = []
  for t in live:
    if any(b in buffers for b in write_targets(t._uop.src[0])): out.append(t)
  return out


def write_targets(target: UOp) -> list[Buffer]:
  """The buffers a write into `target` (a buffer view, or a sharded tensor's MULTI of them) overwrites."""
  parts = target.src if target.op is Ops.MULTI else (target,)
  return [buffer_of(p) for p in parts if is_buffer_view(p)]


def ran_into(write: UOp) -> list[Buffer]:
  """The buffers a write (ASSIGN) wrote, once it ran; none while it is pending. A write into a sharded tensor runs
  as one write per device (multi.writes_per_device), each realized on its own: it ran when they all did."""
  if write.src[0].op is not Ops.MULTI: return realized_buffers(write)
  shards = multi.writes_per_device(write)
  if shards is None: return []
  per_device = [realized_buffers(s) for s in shards]
  if not all(per_device): return []
  return [b for buffers in per_device for b in buffers]


def _realized_into(n: UOp) -> list[Buffer]:
  """The buffers node n was realized into (a write's: see ran_into)."""
  return ran_into(n) if n.op is Ops.ASSIGN else realized_buffers(n)


def reads_any(root: UOp, written: set[Buffer], memo: dict[UOp, bool]) -> bool:
  """Whether the graph under root reads the current contents of a buffer in `written`. A pending ASSIGN to one of
  them stands for the value after the write (the write about to run: a base has one pending write at most, see
  Tensor._storage), not a read; one that already ran stands for its buffer. The target of an ASSIGN is not read."""
  stack = [root]
  while stack:
    n = stack[-1]
    if n in memo: stack.pop(); continue
    if n.op is Ops.ASSIGN:
      if not ran_into(n) and any(b in written for b in write_targets(n.src[0])):  # a write this schedule runs
        memo[n] = False
        stack.pop()
        continue
      sources = (n.src[1],)
    else: sources = n.src
    missing = [s for s in sources if s not in memo]
    if missing:
      stack.extend(missing)
      continue
    stack.pop()
    reads = n.op is Ops.BUFFER and n.arg in written
    if not reads: reads = any(b in written for b in _realized_into(n))
    if not reads: reads = any(memo[s] for s in sources)
    memo[n] = reads
  return memo[root]


# ---- autograd graphs that a write makes stale ----
# buffer view of a realized tensor whose kept graph read an overwritten buffer -> True. Weak: it goes with the node.
_stale: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def mark_stale_graphs(grad_realized, maps: tuple, written: set[Buffer], realizing: tuple = ()) -> list:
  """Drop the kept graphs (see Tensor._graph; `maps`: engine/tensors' kept_graphs, buffer view -> graph, the same
  also for tensors since gone, written_graphs, a write that ran -> its values' graph, and write_nodes) that read a
  buffer about to be overwritten, remembering their nodes so that backward() through them raises instead of using
  the new values. Returns the tensors among `realizing` (realized by the same schedule, before its writes: the
  readers of the old values) whose graphs read one: they keep their graphs only once realized, so mark_stale(...)
  them after."""
  kept, written_graphs, write_nodes = maps
  memo: dict[UOp, bool] = {}
  for key, t in snapshot(grad_realized.items):
    graphs = [g for g in (t._graph, t._assigned_graph) if g is not None]
    if any(reads_any(g, written, memo) for g in graphs): _mark(grad_realized, kept, key, t)
  for node, graph in snapshot(kept.items):
    if reads_any(graph, written, memo):
      _stale[node] = True
      kept.pop(node, None)
  for arg, graph in snapshot(written_graphs.items):
    if reads_any(graph, written, memo):
      node = write_nodes.get(arg)
      if node is not None: _stale[node] = True
      written_graphs.pop(arg, None)
  return [t for t in realizing if t._requires_grad and not t._leaf and t._uop.op is not Ops.ASSIGN
          and reads_any(t._uop, written, memo)]


def mark_untraceable(view: UOp):
  """A buffer whose values autograd can't follow back (see engine/tensors._keep_graph): backward() through it
  raises, as through a stale graph."""
  _stale[view] = True


def mark_stale(grad_realized, kept, tensors: list):
  """Mark the graphs these realized tensors keep stale (see mark_stale_graphs)."""
  for t in tensors: _mark(grad_realized, kept, id(t), t)


def _mark(grad_realized, kept, key, t):
  node = t._uop
  _stale[node] = True
  if node.op is Ops.ASSIGN: _stale[node.src[0]] = True  # (a pending write: graphs of both its old and new values)
  kept.pop(node.src[0] if node.op is Ops.ASSIGN else node, None)
  t._graph = t._assigned_graph = None
  grad_realized.pop(key, None)


# a BUFFER node whose buffer is in ctx read through a DETACH (fixed_point=False: the DETACH's source stays as it is)
_detach_reads = PatternMatcher([
  (UPat(Ops.BUFFER, name="b"), lambda ctx, b: UOp(Ops.DETACH, b.dtype, (b,)) if b.arg in ctx else None),
])


def detach_in_kept_graphs(grad_realized, kept, buffers: set[Buffer]):
  """The kept graphs (see Tensor._graph, and `kept` of mark_stale_graphs) that read a buffer in `buffers` read it
  through a DETACH from now on: a tensor that starts requiring grad was a constant to the graphs built before (see
  Tensor.requires_grad)."""
  memo: dict[UOp, bool] = {}
  for _, t in snapshot(grad_realized.items):
    graph = t._graph
    if graph is not None and reads_any(graph, buffers, memo): t._graph = graph_rewrite(graph, _detach_reads, buffers, fixed_point=False)
  for node, graph in snapshot(kept.items):
    if reads_any(graph, buffers, memo): kept[node] = graph_rewrite(graph, _detach_reads, buffers, fixed_point=False)


def check_not_stale(root: UOp):
  """Raise if a gradient is asked through a realized tensor whose inputs were overwritten since it was computed.
  What the graph reads through a DETACH passes no gradient (p -= lr * p.grad reads the gradient so): not looked at;
  a DETACH naming a gradient rule passes it to its other sources (gradient.py), which are."""
  if not _stale: return
  seen, stack = {root}, [root]
  while stack:
    n = stack.pop()
    if n in _stale:
      raise RuntimeError("a tensor needed for this gradient was computed from values that were since overwritten in "
                         "place (assign, an in-place operator or an optimizer step), or was written in part with values "
                         "that require grad when its old values had no gradient graph; backward() can't follow it. "
                         "Call backward() before the update, compute the result again, or write into a clone()")
    for s in (() if n.arg is None else n.src[1:]) if n.op is Ops.DETACH else n.src:
      if s not in seen:
        seen.add(s)
        stack.append(s)
