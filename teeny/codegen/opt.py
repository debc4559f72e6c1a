"""The kernel optimizer: a Kernel is an AST plus the shape of its loop space, and optimizations are explicit
actions on that loop space that keep the result identical.

Loop space: `full_shape` (the shape the reduces read); axes [0, first_reduce) are parallel (global) axes, the
rest are reduced. Views inside the AST of the pre-reduce part have `full_shape`; views after the reduce have
`out_shape` (full_shape with reduce axes set to 1).

Actions applied now: move reduce axes last, merge adjacent axes that every view can merge, and keep at least
one parallel axis. Each applied action is recorded in `applied` and printed at DEBUG=3.
"""
from __future__ import annotations
from teeny.uop import UOp, Ops, PatternMatcher, UPat, graph_rewrite, toposort
from teeny.helpers import getenv


class Kernel:
  def __init__(self, ast: UOp):
    self.ast = ast
    reduces = [u for u in toposort(ast) if u.op is Ops.REDUCE_AXIS]
    out_shape = ast.src[0].src[1].arg.shape
    self.full_shape: tuple[int, ...] = reduces[0].src[0].shape if reduces else out_shape
    self.reduce_axes: tuple[int, ...] = tuple(sorted(reduces[0].arg[1])) if reduces else ()
    self.applied: list[str] = []

  @property
  def out_shape(self): return tuple(1 if i in self.reduce_axes else s for i, s in enumerate(self.full_shape))
  @property
  def first_reduce(self) -> int: return len(self.full_shape) - len(self.reduce_axes)
  @property
  def views(self) -> list: return [u.arg for u in toposort(self.ast) if u.op is Ops.VIEW]

  # ---- the primitive change of loop space: every view and every reduce follows it ----
  def _transform(self, view_fn, new_full, new_axes):
    old_full = self.full_shape
    def new_view(v: UOp): return v.replace(arg=view_fn(v.arg, v.arg.shape == old_full))
    def new_reduce(r: UOp): return r.replace(arg=(r.arg[0], new_axes))
    pm = PatternMatcher([(UPat(Ops.VIEW, name="v"), new_view), (UPat(Ops.REDUCE_AXIS, name="r"), new_reduce)])
    self.ast = graph_rewrite(self.ast, pm, fixed_point=False)
    self.full_shape, self.reduce_axes = tuple(new_full), tuple(new_axes)

  def permute(self, order):
    axes = tuple(sorted(order.index(a) for a in self.reduce_axes))
    self._transform(lambda st, full: st.permute(order), [self.full_shape[i] for i in order], axes)

  def reshape(self, new_full, new_axes):
    new_out = tuple(1 if i in new_axes else s for i, s in enumerate(new_full))
    self._transform(lambda st, full: st.reshape(new_full if full else new_out), new_full, new_axes)

  # ---- actions ----
  def reduce_axes_last(self):
    order = [i for i in range(len(self.full_shape)) if i not in self.reduce_axes] + list(self.reduce_axes)
    if order != list(range(len(order))):
      self.permute(order)
      self.applied.append(f"permute{tuple(order)}")

  def merge_axes(self):
    """Merge neighbouring axes of the same kind when every view can take the merged shape as one view."""
    i = len(self.full_shape) - 2
    while i >= 0:
      if (i in self.reduce_axes) == (i + 1 in self.reduce_axes) and self._can_merge(i):
        new_full = self.full_shape[:i] + (self.full_shape[i] * self.full_shape[i + 1],) + self.full_shape[i + 2:]
        new_axes = tuple(a if a <= i else a - 1 for a in self.reduce_axes if a != i + 1)
        self.reshape(new_full, new_axes)
        self.applied.append(f"merge({i},{i + 1})")
      i -= 1

  def _can_merge(self, i: int) -> bool:
    for st in self.views:
      shape = st.shape
      merged = shape[:i] + (shape[i] * shape[i + 1],) + shape[i + 2:]
      if len(st.reshape(merged).views) != len(st.views): return False
    return True

  def ensure_parallel_axis(self):
    """Backends parallelize the first axis: a kernel with none (a full reduce) gets a size-1 one."""
    if self.first_reduce == 0:
      self.reshape((1,) + self.full_shape, tuple(a + 1 for a in self.reduce_axes))
      self.applied.append("add_parallel_axis")

  def name(self) -> str:
    kind = "r" if self.reduce_axes else "E"
    return f"{kind}_" + "_".join(str(s) for s in self.full_shape)


def optimize(kernel: Kernel) -> Kernel:
  """The hand-written heuristics. NOOPT=1 keeps only what correctness needs."""
  kernel.reduce_axes_last()
  if not getenv("NOOPT", 0): kernel.merge_axes()
  kernel.ensure_parallel_axis()
  return kernel
