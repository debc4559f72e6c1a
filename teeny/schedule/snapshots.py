"""Snapshots: a graph whose kernels no order can run (one needs a buffer's old contents and, through another, its
new ones) is scheduled again with the old contents read from copies taken before the writes."""
from __future__ import annotations
import itertools
from teeny.dtype import dtypes
from teeny.uop import UOp, Ops, toposort
from teeny.schedule.items import buffer_of


_snapshot_ids = itertools.count()


def with_snapshots(roots: tuple[UOp, ...]) -> tuple[tuple[UOp, ...], dict[UOp, UOp]]:
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

