"""Program order for lazy reads: a lazy result reads the values its inputs had when it was written down.

teeny writes in place: `x.assign(v)`, `x += 1`, `x[i] = v` and an optimizer step overwrite x's buffer when they
run. A lazy tensor built from x before the write (`z = x * 2`) still reads that buffer, so realizing it after
the write would see the new values, which no eager library would give. Before a schedule that overwrites
buffers runs, this module finds the live lazy tensors that read the old contents of those buffers (directly, or
through a node realized into one of them) and hands them back to be realized in the same schedule, where the
scheduler orders their kernels before the writes: "realize the readers first". An update nobody else reads
stays in place with no extra work.

It also keeps autograd honest: a realized tensor that requires grad keeps the graph that computed it (so
backward() works after printing the loss); once a buffer that graph reads is overwritten, backward through it
would use the new values, so the graph is marked stale and backward() raises, as PyTorch does.

The registry is a list of weak references appended to when a tensor gets a lazy node (cheap on the hot path of
building graphs) and compacted when it has grown; a scan walks each candidate's graph once, sharing what it
learns about nodes between candidates. Nothing here knows the Tensor class: it reads `_uop`, `_base` and the
realized map of the scheduler.
"""
from __future__ import annotations
import weakref
from teeny.uop import UOp, Ops
from teeny.runtime.device import Buffer
from teeny.schedule import is_buffer_view, buffer_of, realized_buffers

# weak references to tensors that got a lazy node (a tensor may appear more than once; dead ones are dropped
# when the list is compacted)
_live: list = []
_compact_at = 4096
_ref = weakref.ref

# While a TinyJit captures, entries from this position on were made during the captured call (see split_by_capture)
capture_start: int | None = None


def track(t):
  """Remember a tensor that now holds a lazy node: it may read buffers that a later write overwrites."""
  global _compact_at
  _live.append(_ref(t))
  if len(_live) >= _compact_at and capture_start is None:
    _compact()
    _compact_at = max(4096, 2 * len(_live))


def _compact():
  seen, kept = set(), []
  for r in _live:
    t = r()
    if t is not None and id(t) not in seen and not is_buffer_view(t._uop):
      seen.add(id(t))
      kept.append(r)
  _live[:] = kept


def capture_position() -> int:
  """Where the registry ends now: a TinyJit sets capture_start to it while it captures."""
  return len(_live)


def _lazy_bases() -> list[tuple[int, object]]:
  """(registry position, tensor) of every live tensor that owns a lazy node; views are left out: they read their
  base's current node, never an old one. A tensor listed twice keeps its last position. Outside a capture the
  registry is compacted on the way (a scan costs what the registry holds, so it is kept to the lazy tensors)."""
  found: dict[int, tuple[int, object]] = {}
  for pos, r in enumerate(_live):
    t = r()
    if t is not None and not is_buffer_view(t._uop): found[id(t)] = (pos, t)
  if capture_start is None:
    _live[:] = [_ref(t) for _, t in sorted(found.values(), key=lambda entry: entry[0])]
  return [(pos, t) for pos, t in found.values() if t._base is None]


def old_value_readers(written: set[Buffer], skip: set[int]) -> list:
  """Live lazy tensors (by id not in `skip`) whose graphs read the current contents of a buffer in `written`."""
  memo: dict[UOp, bool] = {}
  return [t for _, t in _lazy_bases() if id(t) not in skip and reads_any(t._uop, written, memo)]


def split_by_capture(tensors: list) -> tuple[list, list]:
  """While a TinyJit captures: (tensors made before the captured call, tensors made during it). The first are
  realized outside the capture (a replay must not recompute them into buffers their owners still read)."""
  if capture_start is None: return [], tensors
  position = {id(t): pos for pos, t in _lazy_bases()}
  before = [t for t in tensors if position.get(id(t), capture_start) < capture_start]
  return before, [t for t in tensors if position.get(id(t), capture_start) >= capture_start]


def reads_any(root: UOp, written: set[Buffer], memo: dict[UOp, bool]) -> bool:
  """Whether the graph under root reads the current contents of a buffer in `written`. A pending ASSIGN to one of
  them stands for the value after the write (the write about to run: a base has one pending write at most, see
  Tensor._storage), not a read; one that already ran stands for its buffer. The target of an ASSIGN is not read."""
  stack = [root]
  while stack:
    n = stack[-1]
    if n in memo: stack.pop(); continue
    if n.op is Ops.ASSIGN:
      if buffer_of(n.src[0]) in written and not realized_buffers(n):  # a write this schedule runs
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
    if not reads: reads = any(b in written for b in realized_buffers(n))
    if not reads: reads = any(memo[s] for s in sources)
    memo[n] = reads
  return memo[root]


# ---- autograd graphs that a write makes stale ----
# buffer view of a realized tensor whose kept graph read an overwritten buffer -> True. Weak: it goes with the node.
_stale: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def mark_stale_graphs(grad_realized, written: set[Buffer]):
  """Drop the kept graphs (see Tensor._graph) that read a buffer about to be overwritten, remembering their
  buffer views so that backward() through them raises instead of using the new values."""
  memo: dict[UOp, bool] = {}
  for key, t in list(grad_realized.items()):
    graph = t._graph
    if graph is not None and reads_any(graph, written, memo):
      _stale[t._uop] = True
      t._graph = None
      grad_realized.pop(key, None)


def check_not_stale(root: UOp):
  """Raise if a gradient is asked through a realized tensor whose inputs were overwritten since it was computed."""
  if not _stale: return
  for n in root.toposort():
    if n in _stale:
      raise RuntimeError("a tensor needed for this gradient was computed from values that were since overwritten in "
                         "place (assign, an in-place operator or an optimizer step); backward() would use the new "
                         "values. Call backward() before the update, or compute the result again")
