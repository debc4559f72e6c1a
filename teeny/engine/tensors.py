"""Realizing tensors: run the kernels that compute the tensors asked for, and point each at its buffer. A view is
realized by realizing the tensor whose storage it views; when the schedule overwrites buffers (assign), the live
lazy tensors that read their old contents are realized in it too (teeny/program_order.py); a realized result that
requires grad (or a gradient() result) keeps the graph that computed it, for backward(). Reading a realized tensor's
elements to the host is here too. This module does not import teeny/tensor.py: it takes the tensors as they come
(duck-typed), reading and setting _uop, uop, _base, _version, device, dtype, _requires_grad, _leaf, _keeps_graph,
_graph and _assigned_graph."""
from __future__ import annotations
import itertools, math, weakref
import numpy as np
from teeny.uop import UOp, Ops, PatternMatcher, UPat, graph_rewrite
from teeny.runtime.device import Buffer
from teeny.schedule import create_schedule, mark_realized, buffer_of, is_buffer_view, is_realized, forget_realized, writes_count, hold_realized_weakly
from teeny.engine.realize import run_schedule, capture
from teeny.engine.validate import checked
from teeny.view import ShapeTracker
from teeny import multi, program_order, tracing

# realized tensors that require grad (they keep their graph), by id: a WeakSet would compare tensors with ==, which is lazy
grad_realized: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
# a realized result's buffer view -> the graph that computed it, while graphs hold that view, also once the tensor
# is gone: h = x.exp() printed inside a function and dropped, backward through what was built from it reaches x
kept_graphs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# a write that ran, by its ASSIGN's arg -> the graph of the values it wrote, while its node lives: graphs built while
# it was pending hold the write, also once its tensor was written again or is gone (write_nodes: arg -> the node)
written_graphs: dict = {}
write_nodes: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
# tags that make a node unique (a leaf, a clone, a copy, a write), so it is never merged with an equal graph
unique_ids = itertools.count()
# when set, called with the tensors of every realize before it runs (`python -m teeny.viz` picks a realize with it)
observer = None


@checked  # VALIDATE=1: also computed by the reference interpreter and compared (engine/validate.py)
def realize_tensors(tensors: tuple, before_writing: tuple = ()):
  """Compute tensors that aren't buffers yet, and point each at its buffer. A view of a tensor that has storage
  realizes that tensor instead (views stay views). When the schedule overwrites buffers (assign), the live lazy
  tensors that read their old contents are realized in it too, ordered before the writes (program order).
  `before_writing`: tensors whose buffers the caller overwrites next (an optimizer, its parameters); the live
  lazy tensors that read them are realized now, in this schedule, where they share its kernels (the forward pass
  a training step's logits come from), instead of being computed again before those writes."""
  if observer is not None: observer(tensors)
  if tracing.active:
    with tracing.span("realize", "realize", {"tensors": len(tensors)}): return _realize(tensors, before_writing)
  return _realize(tensors, before_writing)


def _realize(tensors: tuple, before_writing: tuple = ()):
  tensors = _storage_owners(tensors)
  if capture.recording is not None: tensors = _apart_from_capture(tensors)
  if before_writing:
    soon_written = {b for t in before_writing for b in _buffers_held(t._uop)}
    if soon_written: tensors += tuple(_readers_to_realize(soon_written, {id(t) for t in tensors}))
  if not tensors: return
  if len(tensors) == 1 and tensors[0]._uop.op is not Ops.ASSIGN and type(tensors[0].device) is str:  # the common case
    t = tensors[0]
    node = t._uop
    items, views, written = create_schedule((node,), (t.device,))
    if not written:
      run_schedule(items)
      mark_realized(views)
      view = views[node]
      if not items or items[-1].bufs[0] is not buffer_of(view): return _take_buffers(tensors, items, views, written)
      if _wants_graph(t): _keep_graph(t, node, _updates_that_ran(views))
      t._uop, t._version = view, t._version + 1  # (the uop setter, for a base given its own new buffer)
      _remember_graph(t)
      return
    # (it runs a write deeper in its graph: the general case below, scheduling again with the readers)
  done = {id(t) for t in tensors}
  # the writes of the tensors being realized (parameter updates) are known before scheduling: the readers of what
  # they overwrite join at once, so the graph is scheduled once. Writes found deeper in the graph come after.
  expected = frozenset(b for t in tensors if t._uop.op is Ops.ASSIGN for b in program_order.write_targets(t._uop.src[0]))
  if expected: tensors += tuple(_readers_to_realize(expected, done))
  items, views, written = _schedule(tensors)
  unexpected = written - expected
  while unexpected and (readers := _readers_to_realize(unexpected, done)):
    tensors += tuple(readers)
    items, views, now_written = _schedule(tensors)
    unexpected, written = now_written - written, now_written
  stale_readers = program_order.mark_stale_graphs(grad_realized, (kept_graphs, written_graphs, write_nodes), written, tensors) if written else []
  run_schedule(items)
  mark_realized(views)
  if written: program_order.settle_writes()  # (before the realized map that tells which writes ran is forgotten)
  # what the schedule computed before its writes is of the old contents: no later graph may reuse it
  if written: forget_realized()
  _take_buffers(tensors, items, views, written)
  program_order.mark_stale(grad_realized, kept_graphs, stale_readers)  # (their graphs read what the writes overwrote)


def _readers_to_realize(written, done: set[int]) -> list:
  """The live lazy tensors (not in `done`, which they join) that read the old contents of `written`, to realize
  with the writes. While a TinyJit captures, those made before its call are realized apart, first."""
  readers = program_order.old_value_readers(written, done)
  before_capture, readers = program_order.split_by_capture(readers)
  if before_capture: _realize_outside_capture(before_capture)
  done.update(id(t) for t in readers)
  return readers


def _buffers_held(node: UOp) -> list[Buffer]:
  """The buffers a realized tensor (a buffer view, or a MULTI of them) holds its values in; none for a lazy one."""
  parts = node.src if node.op is Ops.MULTI else (node,)
  return [buffer_of(p) for p in parts if is_buffer_view(p)]


def _schedule(tensors: tuple):
  # tuples: create_schedule keeps them as they are (it would copy lists into tuples for its key)
  if len(tensors) == 1 and type(tensors[0].device) is str: return create_schedule((tensors[0].uop,), (tensors[0].device,))
  multi.rewrite_together([(t.uop, t.device) for t in tensors if type(t.device) is tuple])
  roots, devices = [], []
  for t in tensors:
    if type(t.device) is str: roots.append(t.uop); devices.append(t.device)
    else:  # a tensor on several devices: one root per device (teeny/multi.py)
      roots.extend(multi.per_device(t.uop, t.device))
      devices.extend(t.device)
  return create_schedule(tuple(roots), tuple(devices))


def _storage_owners(tensors: tuple) -> tuple:
  """What realizing these tensors computes: their bases (a view is realized by realizing the tensor whose storage
  it views, as PyTorch would have computed it, and stays a view of it). Each once, buffers left out. A tensor
  read through Variables (x[pos:pos + k], teeny/ops/variables.py) is no view: it brings x, whose write through it
  (assign) must run when it is realized, as a view's would (a TinyJit capture would miss it otherwise)."""
  if len(tensors) == 1 and tensors[0]._base is None and tensors[0]._write_target is None: return tensors  # the common case
  bases = [t if t._base is None else t._base for t in tensors]
  out: dict = {}
  for t in bases + [b._write_target[0] for b in bases if b._write_target is not None]:
    if t._base is not None: t = t._base
    if not is_realized(t._uop): out[id(t)] = t
  return tuple(out.values())


def realize_old_value_readers(written: set[Buffer]):
  """Before kernels that run outside a schedule (a TinyJit replay) overwrite `written`: realize the live lazy
  tensors that read their old contents, and mark autograd graphs that read them stale."""
  _realize_readers(written)
  program_order.mark_stale_graphs(grad_realized, (kept_graphs, written_graphs, write_nodes), written)


def _realize_readers(buffers: set[Buffer]):
  """Realize the live lazy tensors that read the current contents of `buffers`."""
  readers = program_order.old_value_readers(buffers, set())
  if readers: realize_tensors(tuple(readers))


def _apart_from_capture(tensors: tuple) -> tuple:
  """While a TinyJit captures: the lazy tensors made before its call that these graphs read (a layer's weights
  never realized, a learning rate's pending assign) are realized outside it, so every replay reads their buffers
  (and a later write to them) instead of recomputing their old graph. Returns the tensors still to realize."""
  made_before = program_order.made_before_capture_in([t._uop for t in tensors])
  if not made_before: return tensors
  _realize_outside_capture(made_before)
  return tuple(t for t in tensors if not is_realized(t._uop))


def constant_in_graphs_built_before(t):
  """t, realized, starts requiring grad. The graphs built from it before took it as a constant (PyTorch records no
  gradient edge to a tensor that did not require grad when it was used), but they hold its buffer's node, which
  stands for t as a leaf from now on. So the live lazy tensors that read it are realized now (the values they
  would have had: nothing has written t since), and the graphs kept for backward() read it through a DETACH."""
  held = set(_buffers_held(t._uop))
  _realize_readers(held)  # (t is realized: never one of them)
  program_order.detach_in_kept_graphs(grad_realized, kept_graphs, held)


def realize_pending_writes(buffers):
  """Before kernels that run outside a schedule (a TinyJit replay) read or write `buffers`: run the writes into
  them still pending (a lazy assign: a learning-rate scheduler's, load_state_dict's), which they would miss."""
  writers = program_order.pending_writes(buffers)
  if writers: realize_tensors(tuple(writers))


def _realize_outside_capture(tensors: list):
  """Realize tensors made before a TinyJit's captured call without recording their kernels: a replay must not
  recompute them into buffers their owners still hold. (Where the capture started stays set: it is a position
  in this thread's registry of lazy tensors, which must not be compacted under it.)"""
  recording, capture.recording = capture.recording, None
  old_nodes = [(t, t._uop) for t in tensors if type(t.device) is str]
  try: realize_tensors(tuple(tensors))
  finally: capture.recording = recording
  # a node realized before (into a buffer of the warm-up call: a copy to another device is its own kernel) gives
  # its tensor a copy of that buffer; the graphs being captured hold the node, so they must read the tensor's
  # buffer from now on, not the old one, or a later write to the tensor (load_state_dict) never reaches a replay
  mark_realized({node: t._uop for t, node in old_nodes if is_buffer_view(t._uop) and not is_buffer_view(node)})


def _take_buffers(tensors: tuple, items, views: dict, written):
  """Point each realized tensor at its buffer. A tensor owns its buffer: one the schedule made for it, or, for a
  write, the buffer it wrote. A tensor whose graph was found already realized (by another tensor), or that shares
  its graph with another tensor of this realize, gets a copy: two tensors never share storage unless one is a
  view of the other, so writing one never changes the other."""
  made = {b for item in items for b in item.bufs[:writes_count(item.ast)]}
  taken, copies, ran = set(), [], _updates_that_ran(views)
  for t in tensors:
    node = t.uop
    _keep_graph(t, node, ran)
    if type(t.device) is str: t.uop = _buffer_taken(node, views, made, written, taken)
    else:  # each device's part takes its buffer the same way
      shards = [_buffer_taken(s, views, made, written, taken) for s in multi.per_device(node, t.device)]
      t.uop = multi.multi(shards, t.device, multi.layout(node, t.device))
    _remember_graph(t)
    if not is_realized(t.uop): copies.append(t)
  if copies: realize_tensors(tuple(copies))


def _buffer_taken(node: UOp, views: dict, made: set, written, taken: set) -> UOp:
  """The node a realized `node` becomes: its buffer view when the buffer is its own, else a copy to realize."""
  if is_buffer_view(node): return node  # (a sharded tensor's part that was realized already)
  view = views[node]
  buf = buffer_of(view)
  owned = buf in made and buf not in written and buf not in taken
  if node.op is Ops.ASSIGN or owned or buf.size == 0:  # (an empty buffer holds nothing to share)
    taken.add(buf)
    return view
  return UOp(Ops.CONTIGUOUS, node.dtype, (view,), ("copy", next(unique_ids)))


def _remember_graph(t):
  """kept_graphs follows a realized tensor's kept graph (set, replaced, or gone with a write that has none)."""
  if t._graph is not None:
    kept_graphs[t._uop] = t._graph
    hold_realized_weakly(t._graph, t._uop)  # (the view keeps the graph: the graph must not keep the view)
  elif _wants_graph(t) and not t._leaf: kept_graphs.pop(t._uop, None)


def _wants_graph(t) -> bool:
  """Whether a realized t keeps the graph that computed it: it requires grad, or it is a gradient() result."""
  return bool(t._requires_grad or t._keeps_graph)


def _keep_graph(t, node: UOp, ran: dict):
  """A realized result that requires grad keeps the graph that computed it, so backward() still reaches the leaves
  (gradient.restore_graphs); a realized write keeps the graph of the values it wrote (see assign)."""
  if not _wants_graph(t) or t._leaf: return
  if node.op is Ops.CONTIGUOUS and type(node.arg) is tuple and node.arg[0] == "copy": return  # (see _take_buffers)
  graph = t._assigned_graph if node.op is Ops.ASSIGN else _with_updates_settled(node, ran)
  t._graph, t._assigned_graph = graph, None  # (a write with no graph to give: the old values' graph goes too)
  if graph is not None: grad_realized[id(t)] = t
  # a write of values that require grad into part of a tensor whose old values had no graph: backward() through
  # what it holds now can't be followed (its old part was overwritten), so it raises instead of passing nothing
  if graph is None: program_order.mark_untraceable(node.src[0])


# a parameter's update that ran -> the buffer it wrote (ctx of _with_updates_settled)
_settle_updates = PatternMatcher([(UPat(Ops.ASSIGN, name="x"), lambda ctx, x: ctx.get(x))])


def _updates_that_ran(views: dict) -> dict:
  """The updates of parameters (writes of detached values, see assign) a schedule ran -> the buffer each wrote."""
  return {n: views[n] for n in views if n.op is Ops.ASSIGN and n.src[1].op is Ops.DETACH and is_buffer_view(views[n])}


def _with_updates_settled(graph: UOp, ran: dict) -> UOp:
  """graph with each update of a parameter that ran in this schedule (`ran`) replaced by the buffer it wrote: once
  run, the values are the buffer's, which stands for the parameter (its current node), and the write's node would
  keep its value graph alive, the step before's gradient holding the step before it: a manual SGD loop over a
  realized activation kept every step's graph."""
  if not ran: return graph
  return graph_rewrite(graph, _settle_updates, ctx=ran, opaque={n.src[1] for n in ran})


def remember_write(node: UOp, graph: UOp):
  """written_graphs[node.arg] = graph, for as long as the write's node lives, pending or run (assign calls it)."""
  if node.arg not in written_graphs: weakref.finalize(node, written_graphs.pop, node.arg, None)
  written_graphs[node.arg], write_nodes[node.arg] = graph, node


def read_tensor(t) -> np.ndarray:
  """The elements of a realized tensor (its node a buffer, or a view of one) as a flat numpy array, in row-major
  order. A view that is one contiguous run of a buffer is read from it directly, others are copied out by a kernel."""
  node = t.uop
  if is_buffer_view(node): return buffer_of(node).numpy()
  region = _contiguous_region(node)
  if region is not None:
    buf, offset = region
    size = math.prod(node.shape)
    if 2 * size >= buf.size: return buf.numpy()[offset:offset + size]  # most of the buffer: read it whole
  copy = type(t)(UOp(Ops.CONTIGUOUS, node.dtype, (node,), ("copy", next(unique_ids))), device=t.device)
  realize_tensors((copy,))
  return buffer_of(copy.uop).numpy()


def _contiguous_region(node: UOp) -> tuple[Buffer, int] | None:
  """(buffer, first element) when node is movement ops over a buffer that keep it one row-major run, else None."""
  moves = []
  while node.op is not Ops.BUFFER:
    if node.op is Ops.DETACH: node = node.src[0]; continue
    if node.op not in (Ops.RESHAPE, Ops.PERMUTE, Ops.SHRINK, Ops.EXPAND, Ops.PAD, Ops.FLIP): return None
    moves.append((node.op.name, node.arg))
    node = node.src[0]
  st = ShapeTracker.from_shape((node.arg.size,))
  for name, arg in reversed(moves): st = st.apply(name, arg)
  view = st.views[-1]
  if len(st.views) != 1 or view.mask is not None: return None
  contiguous = ShapeTracker.from_shape(view.shape).views[0]
  return (node.arg, view.offset) if view.strides == contiguous.strides else None
