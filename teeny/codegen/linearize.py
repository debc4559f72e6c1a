"""Linearization: the lowered graph -> a flat list of UOps in execution order, with ENDRANGE closing loops.

Loops form a tree. A loop goes inside the loops that the work in its body reads (the innermost of them, by RANGE
id: a loop only ever nests in loops of smaller ids), so two loops whose bodies don't read each other's index are
siblings: a row's max, the sum that needs it, and the loop that stores the row, one after another inside the row's
loop. Where every loop's body reads every loop outside it (every kernel with one reduce), the tree is the chain of
RANGE ids. Each op goes in the innermost loop it depends on, so work that doesn't change inside a loop is hoisted
out of it. An accumulator is declared just outside its reduce loops, and the users of a finished reduction come
after those loops close.
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
  # a finished reduction is read after its loops close, but inside the loop its accumulator is declared in (the
  # accumulator of a C renderer is scoped to it); where that loop is depends on the tree: repeat until every
  # reduction is already read there (usually at once: the loops only ever grow, so it ends)
  declared_in: dict[UOp, frozenset] = {}
  while True:
    needs, seen = _loops_needed(order, declared_in)
    parent = _loop_tree(order, needs)
    now = {u: _enclosing(parent[min(loops, key=lambda r: r.arg)], parent)
           for u in order if u.op is Ops.ASSIGN and (loops := _acc_loops(u))}
    if all(loops <= seen[u] for u, loops in now.items()): break
    declared_in = {u: declared_in.get(u, frozenset()) | loops for u, loops in now.items()}
  place = _placement(order, needs, parent)
  position = {u: i for i, u in enumerate(order)}
  out: list[UOp] = []
  _emit_block(None, order, place, parent, position, out)
  return [u for u in out if u.op is not Ops.SINK]


def _acc_loops(assign: UOp) -> tuple:
  """The loops an ASSIGN's accumulator accumulates over."""
  return assign.src[0].src[1:] if assign.src[0].op is Ops.DEFINE_ACC else ()


def _loops_needed(order: list[UOp], declared_in: dict) -> tuple[dict[UOp, frozenset], dict[UOp, frozenset]]:
  """Each op -> the loops (RANGEs) it must run inside: those its sources are read in, its own loops for an
  accumulator's update; and each op -> the loops inside which its value may be read. A finished reduction (ASSIGN)
  is read outside its accumulator's loops, inside the loops its accumulator is declared in (declared_in)."""
  needs: dict[UOp, frozenset] = {}
  seen: dict[UOp, frozenset] = {}  # the loops inside which the op's value may be read
  for u in order:
    inner = frozenset().union(*(seen[s] for s in u.src))
    if u.op is Ops.SINK: needs[u] = seen[u] = frozenset()  # (its stores may sit in sibling loops: it nests none)
    elif u.op is Ops.RANGE: needs[u], seen[u] = inner, inner | {u}
    elif u.op is Ops.DEFINE_ACC:
      # declared outside its loops (see _placement), but reading it (the update) happens inside all of them
      needs[u] = seen[u] = inner | frozenset(u.src[1:])
    elif u.op is Ops.ASSIGN:
      needs[u] = inner
      seen[u] = (inner - frozenset(_acc_loops(u))) | declared_in.get(u, frozenset())
    else: needs[u] = seen[u] = inner
  return needs, seen


def _loop_tree(order: list[UOp], needs: dict) -> dict[UOp, UOp | None]:
  """RANGE -> the loop it nests in (None: the kernel's top level): the innermost (largest id) loop of a smaller
  id that any op inside it needs."""
  ranges = [u for u in order if u.op is Ops.RANGE]
  outer: dict[UOp, set] = {r: set(needs[r]) for r in ranges}
  for u in order:
    if u.op is Ops.RANGE: continue
    for r in needs[u]: outer[r].update(needs[u])
  parent = {}
  for r in ranges:
    candidates = [s for s in outer[r] if s.arg < r.arg]
    parent[r] = max(candidates, key=lambda s: s.arg) if candidates else None
  return parent


def _placement(order: list[UOp], needs: dict, parent: dict) -> dict[UOp, UOp | None]:
  """Each op -> the loop whose body it is emitted in (None: the top level); a RANGE -> the loop it nests in."""
  place: dict[UOp, UOp | None] = {}
  for u in order:
    if u.op is Ops.RANGE: place[u] = parent[u]
    elif u.op is Ops.DEFINE_ACC and len(u.src) > 1: place[u] = parent[min(u.src[1:], key=lambda r: r.arg)]
    else:
      loops = needs[u]
      place[u] = max(loops, key=lambda r: r.arg) if loops else None
      if loops and not loops <= _enclosing(place[u], parent):
        raise RuntimeError("linearize: an op needs two loops that are not nested in one another")
  return place


def _enclosing(r: UOp | None, parent: dict) -> frozenset:
  """r and every loop around it."""
  out = set()
  while r is not None: out.add(r); r = parent[r]
  return frozenset(out)


def _emit_block(node: UOp | None, order: list[UOp], place: dict, parent: dict, position: dict, out: list):
  """Emit the body of loop `node` (None: the top level): its ops, and each loop nested in it as one item among
  them, in dependency order."""
  deps = _block_deps(node, order, place, parent)
  users: dict = {u: [] for u in deps}
  for u, ds in deps.items():
    for s in ds: users[s].append(u)
  waiting = {u: len(ds) for u, ds in deps.items()}
  ready = [(position[u], u) for u, n in waiting.items() if n == 0]
  heapq.heapify(ready)
  while ready:
    _, u = heapq.heappop(ready)
    out.append(u)
    if u.op is Ops.RANGE:
      _emit_block(u, order, place, parent, position, out)
      out.append(UOp(Ops.ENDRANGE, src=(u,)))
    for v in users[u]:
      waiting[v] -= 1
      if waiting[v] == 0: heapq.heappush(ready, (position[v], v))
  if any(waiting.values()): raise RuntimeError("linearize: ops in this kernel depend on each other across a loop")


def _block_deps(node: UOp | None, order: list[UOp], place: dict, parent: dict) -> dict:
  """The items of the body of `node` (its ops, and the loops nested in it, each one item) -> the items of that
  body each waits for."""
  here = [u for u in order if place[u] is node]
  here_set = set(here)
  # which item of this body each op deeper inside belongs to: the loop nested in `node` that encloses it
  item_of: dict = {}
  for u in order:
    if u in here_set: continue
    loop = u if u.op is Ops.RANGE else place[u]
    while loop is not None and parent[loop] is not node: loop = parent[loop]
    if loop is not None: item_of[u] = loop
  deps: dict = {u: set() for u in here}
  for u in order:
    owner = u if u in here_set else item_of.get(u)
    if owner is None: continue
    for s in u.src:
      if s.op is Ops.RANGE: continue  # (a loop's index, or an accumulator's loop: not a value the loop finishes)
      # a value of this body, or finished inside a loop nested in it (reading it means waiting for that loop)
      source = s if s in here_set else item_of.get(s)
      if source is not None and source is not owner: deps[owner].add(source)
  return deps
