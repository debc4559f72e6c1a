"""Linearization: the lowered graph -> a flat list of UOps in execution order, with ENDRANGE closing loops.

Loops nest in the order of their RANGE ids. Each op goes in the innermost loop it depends on, so work that
doesn't change inside a loop is hoisted out of it. An accumulator is declared just outside its reduce loops,
and the users of a finished reduction come after those loops close.
"""
from __future__ import annotations
import heapq
from teeny.uop import UOp, Ops, toposort
from teeny.renderer import value_order


def linearize(sink: UOp) -> list[UOp]:
  order = toposort(sink)
  # kernel arguments first, in argument order: buffers by index, then values (the slice bounds last)
  args = sorted((u for u in order if u.op is Ops.DEFINE_GLOBAL), key=lambda u: u.arg)
  args += sorted((u for u in order if u.op is Ops.DEFINE_VAR), key=value_order)
  order = args + [u for u in order if u.op not in (Ops.DEFINE_GLOBAL, Ops.DEFINE_VAR)]
  ranges = sorted((u for u in order if u.op is Ops.RANGE), key=lambda r: r.arg)
  level = {r: i for i, r in enumerate(ranges)}  # loop r is open at depths >= level[r]
  depth: dict[UOp, int] = {}      # the loop an op is emitted in (-1: outside every loop)
  seen_at: dict[UOp, int] = {}    # the depth at which users may read the op's value
  for u in order:
    if u.op is Ops.RANGE:
      depth[u] = max((seen_at[s] for s in u.src), default=-1)
      seen_at[u] = level[u]
    elif u.op is Ops.DEFINE_ACC:
      # declared just outside its loops, but reading it (the update) happens inside all of them
      levels = [level[r] for r in u.src[1:]]
      depth[u] = min(levels) - 1 if levels else -1
      seen_at[u] = max(levels) if levels else -1
    elif u.op is Ops.ASSIGN:
      depth[u] = max(seen_at[s] for s in u.src)
      seen_at[u] = depth[u.src[0]]  # a finished reduction is read outside its loops
    else:
      depth[u] = seen_at[u] = max((seen_at[s] for s in u.src), default=-1)
  position = {u: i for i, u in enumerate(order)}
  out: list[UOp] = []
  _emit_block(-1, ranges, order, depth, position, out)
  return [u for u in out if u.op is not Ops.SINK]


def _emit_block(d: int, ranges: list[UOp], order: list[UOp], depth: dict, position: dict, out: list):
  """Emit the ops at loop depth d, with the loop of depth d+1 as one item among them, in dependency order."""
  inner = ranges[d + 1] if d + 1 < len(ranges) else None
  deps = _block_deps(d, inner, ranges, order, depth)
  users: dict = {u: [] for u in deps}
  for u, ds in deps.items():
    for s in ds: users[s].append(u)
  waiting = {u: len(ds) for u, ds in deps.items()}
  ready = [(position[u], u) for u, n in waiting.items() if n == 0]
  heapq.heapify(ready)
  while ready:
    _, u = heapq.heappop(ready)
    if u is inner:
      out.append(inner)
      _emit_block(d + 1, ranges, order, depth, position, out)
      out.append(UOp(Ops.ENDRANGE, src=(inner,)))
    else: out.append(u)
    for v in users[u]:
      waiting[v] -= 1
      if waiting[v] == 0: heapq.heappush(ready, (position[v], v))
  if any(waiting.values()): raise RuntimeError("linearize: ops in this kernel depend on each other across a loop")


def _block_deps(d: int, inner: UOp | None, ranges: list[UOp], order: list[UOp], depth: dict) -> dict:
  """The items of the block at depth d (its ops, and the loop `inner` as one item) -> the items of the block each
  waits for."""
  here = [u for u in order if depth[u] == d and u.op is not Ops.RANGE]
  here_set = set(here)
  deps: dict = {u: {s for s in u.src if s in here_set} for u in here}
  if inner is not None:
    inside = [u for u in order if depth[u] > d and u.op is not Ops.RANGE] + ranges[d + 1:]
    deps[inner] = {s for u in inside for s in u.src if s in here_set}
    for u in here:  # reading a value finished inside the loop means waiting for the loop
      if any(s.op is not Ops.RANGE and depth[s] > d for s in u.src): deps[u].add(inner)
  return deps
