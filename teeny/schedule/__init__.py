"""The scheduler: the lazy graph under the tensors being realized -> an ordered list of kernels.

This module is the package's face: create_schedule, and what the rest of teeny uses of the scheduler (ScheduleItem,
buffer views, mark_realized/forget_realized/realized_buffers). Its modules:
  items.py      ScheduleItem (a kernel AST or a COPY, and its buffers) and buffer views (realized buffers as nodes)
  cache.py      the schedule cache: the structural key (walk), signatures, CachedSchedule, and the RealizedMap
                (which nodes were realized where, and the signatures taken meanwhile)
  shaping.py    the first pass on a cache miss: sums split or sliced, operands copied to a faster layout
  kernelize.py  prepare (realized nodes -> their buffers), realize points, every kernel built, writes merged into
                the kernels they read, the kernels ordered; the result kept as a CachedSchedule over slots
  builder.py    one kernel's AST (KernelBuilder): movement ops pushed down into the views of the loads
  snapshots.py  copies of old contents, for graphs no order of kernels can run

create_schedule: a graph with a known signature reuses its schedule at once; else the graph is walked (its
structural key), prepared and walked again if it holds realized nodes, and scheduled on a cache miss.
explain_schedule: the same, scheduled afresh, with the nodes each kernel computes (for teeny.viz). The
intermediates of a schedule whose lifetimes don't overlap share memory (teeny/memory.py).
"""
from __future__ import annotations
from typing import Sequence
from teeny import memory, multi, tracing
from teeny.helpers import GlobalCounters, debug_level, dprint
from teeny.uop import UOp
import teeny.renderer
from teeny.schedule import cache, kernelize, snapshots
from teeny.schedule.items import ScheduleItem, writes_count, buffer_view, is_buffer_view, is_realized, buffer_of, allreduce_op
from teeny.schedule.cache import REALIZED

__all__ = ["create_schedule", "explain_schedule", "ScheduleItem", "writes_count", "buffer_view", "is_buffer_view", "is_realized", "buffer_of",
           "allreduce_op", "mark_realized", "forget_realized", "realized_buffers", "hold_realized_weakly"]

# where graph nodes were realized (see cache.RealizedMap)
mark_realized = REALIZED.mark
forget_realized = REALIZED.forget
realized_buffers = REALIZED.buffers
hold_realized_weakly = REALIZED.hold_weakly

_NEEDS_SNAPSHOTS = "needs snapshots"  # cached for a graph that raised AssignCycle: schedule it with with_snapshots


def create_schedule(roots: Sequence[UOp], devices: Sequence[str]) -> tuple[list[ScheduleItem], dict[UOp, UOp], frozenset]:
  """Kernels that realize every root (on the device given for it), in a runnable order, the buffer view of every
  node they realize (the roots included), and the buffers they overwrite (ASSIGN). Call mark_realized with those
  views once the kernels ran."""
  if tracing.active: return _traced_schedule(roots, devices)
  return _schedule(roots, devices)


def _traced_schedule(roots: Sequence[UOp], devices: Sequence[str]):
  """_schedule in a trace span saying whether the schedule cache had it. (Read from GlobalCounters, which another
  thread scheduling at the same time may move too.)"""
  misses = GlobalCounters.schedule_misses
  with tracing.span("schedule", "schedule") as span:
    items, views, written = _schedule(roots, devices)
    span.args.update({"cache": "hit" if GlobalCounters.schedule_misses == misses else "miss", "kernels": len(items)})
  return items, views, written


def _schedule(roots: Sequence[UOp], devices: Sequence[str]):
  roots = tuple(roots)
  if type(devices) is not tuple: devices = tuple(devices)  # (part of the key)
  signed = cache.signature(roots)
  if signed is not None:  # a graph seen before by its signature: no walk
    sig_key = (signed[0], devices, memory.PLANNER, teeny.renderer.TUNING_CHANGES)
    cached = cache.schedule_cache.get(sig_key)
    if cached is not None:  # (stored under a signature only once it has mark_paths)
      GlobalCounters.schedule_hits += 1
      if debug_level() >= 2: dprint(f"schedule cache hit: {len(cached.items)} item(s) reused")
      return cached.instantiate_from_paths(roots, list(signed[1]))
  items, views, written, _ = _walk_and_schedule(roots, devices, signed, _cached_or_scheduled)
  return items, views, written


def explain_schedule(roots: Sequence[UOp], devices: Sequence[str]) -> tuple[list[ScheduleItem], list[list[UOp]], dict[UOp, UOp]]:
  """What create_schedule makes of this graph, scheduled afresh (the schedule cache is neither read nor written)
  and told kernel by kernel: the items, for each item the nodes it computes (of the graph the scheduler saw:
  kernelize.kernel_members), and the caller's nodes -> the nodes scheduled in their place (nodes realized before
  became their buffers, DETACH its source). Nothing runs and nothing is marked realized: teeny.viz draws this."""
  members: list[list[UOp]] = []
  def scheduled_now(nodes, key, roots, devices, inputs):
    members.clear()  # (a graph that needs snapshots is scheduled twice: the second one counts)
    try: return kernelize.kernelize(nodes, roots, devices, inputs, members)
    except kernelize.AssignCycle: return _NEEDS_SNAPSHOTS
  devices = tuple(devices)
  items, _, _, renamed = _walk_and_schedule(tuple(roots), devices, None, scheduled_now)
  return items, list(members), renamed or {}


def _walk_and_schedule(roots: tuple[UOp, ...], devices: tuple, signed, scheduled):
  """create_schedule past the signature's fast path: walk the graph, prepare it if it holds realized nodes, and
  get its schedule from `scheduled` (the cache's, or explain_schedule's made afresh). Returns the items, the
  views, the buffers written and the caller's nodes -> the nodes scheduled in their place (or None)."""
  nodes, key, inputs, needs_prepare = cache.walk(roots)
  renamed, new_roots = None, roots  # renamed: the caller's nodes -> the nodes scheduled in their place
  if needs_prepare:
    plain = roots
    if any(multi.is_multi(n) for n in nodes):  # a sharded tensor gathered onto one device: per device first
      plain = tuple(multi.on_one_device(r) for r in roots)
      nodes = cache.walk(plain)[0]
    new_roots, renamed = kernelize.prepare(plain, kernelize.devices_of(nodes, dict(zip(plain, devices))))
    nodes, key, inputs, _ = cache.walk(new_roots)
  cached = scheduled(nodes, key, new_roots, devices, inputs)
  if cached is _NEEDS_SNAPSHOTS:
    # reads of old contents that no order of kernels can serve: they read copies taken before the writes
    new_roots, snapshotted = snapshots.with_snapshots(new_roots)
    if renamed: renamed = {n: snapshotted.get(m, m) for n, m in renamed.items()} | snapshotted
    else: renamed = snapshotted
    nodes, key, inputs, _ = cache.walk(new_roots)
    cached, signed = scheduled(nodes, key, new_roots, devices, inputs), None
  if signed is not None:  # (never prepared: a graph that needs prepare has no signature)
    if cached.mark_paths is None: cached.mark_paths = cache.paths_to_marks(cached.marks, nodes, roots)
    cache.schedule_cache[(signed[0], devices, memory.PLANNER, teeny.renderer.TUNING_CHANGES)] = cached
  items, views, written = cached.instantiate(nodes, inputs)
  for r, new in zip(roots, new_roots):
    if r not in views: views[r] = new if is_buffer_view(new) else views[new]  # a root the schedule didn't compute
  if renamed is not None:
    # remember the caller's nodes too, not only their rebuilt copies: a graph that still holds the original (an
    # ASSIGN above all, which must not run twice) then reads the buffer instead of computing it again
    for original, new in renamed.items():
      if new in views and original not in views: views[original] = views[new]
  return items, views, written, renamed


def _cached_or_scheduled(nodes, key, roots, devices, inputs):
  """The cached schedule for this walk's key, else a new one (cached): a CachedSchedule, or _NEEDS_SNAPSHOTS."""
  key = (key, devices, memory.PLANNER, teeny.renderer.TUNING_CHANGES)  # (a new Tuning may shape the graph differently)
  cached = cache.schedule_cache.get(key)
  if cached is None:
    GlobalCounters.schedule_misses += 1
    if debug_level() >= 2: dprint(f"schedule cache miss: {len(nodes)} nodes, {len(inputs)} input buffers")
    try: cached = kernelize.kernelize(nodes, roots, devices, inputs)
    except kernelize.AssignCycle: cached = _NEEDS_SNAPSHOTS
    cache.schedule_cache[key] = cached
  else:
    GlobalCounters.schedule_hits += 1
    if debug_level() >= 2 and cached is not _NEEDS_SNAPSHOTS: dprint(f"schedule cache hit: {len(cached.items)} item(s) reused")
  return cached
