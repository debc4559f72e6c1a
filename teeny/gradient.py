"""Autograd as graph rewriting: one PatternMatcher maps each primitive op to the gradients of its sources, as
lazy UOps. `compute_gradient` walks the graph from the output in reverse topological order, applies the
matcher to every node on a path to a target, and sums the gradients of nodes used more than once. Nothing
here computes: the gradient graph fuses and compiles like any other graph when it is realized.

Conventions documented for users: the gradient of MAX (elementwise and reduce) is split evenly between tied
inputs; integer and boolean values, comparisons, TRUNC and bit ops pass no gradient; an in-place write (ASSIGN)
passes the gradient of what it wrote to the value written, none to what was overwritten.

A composed function whose gradient the primitives would get wrong at some inputs is built as
DETACH(value, *inputs) with arg naming a rule in `custom_gradients`: the value is computed like any graph (the
scheduler passes a DETACH through to its first source), and the gradient reaches the inputs by that rule alone.
pow is one: exp2(y * log2 x) differentiates to x^y * y / x, 0/0 at x = 0, where PyTorch's y * x^(y-1) is 0,
1 or inf. Its rule lives in ops/elementwise.py, written with Tensor math (and pow itself, so it differentiates again).
A convolution is another, for speed: its input's gradient is a transposed convolution (the arg is a tuple, the
rule's name and the convolution's settings). max_pool2d is a third: PyTorch gives each window's gradient to its
first maximum, where MAX's rule would split it among ties; scatter_reduce's amax and amin a fourth, and a write
with repeated indices (scatter, setitem) a fifth: each value written gets its place's gradient, as in PyTorch. The
smooth activations, var and std, lerp, logaddexp, binary_crossentropy_logits and qr have PyTorch's closed forms as
rules too: their compositions' terms cancel, so an infinite or huge incoming gradient gave inf - inf = NaN.
Rules in Tensor math that the mixins of teeny/ops/ define go in `tensor_rules` (made custom_gradients ones at
their first use, with the nodes as tensors that tensor.py makes).
"""
from __future__ import annotations
import math, threading, weakref
from typing import Callable
from teeny.dtype import dtypes
from teeny.uop import UOp, Ops, UPat, PatternMatcher, MOVEMENT, toposort, graph_rewrite
from teeny.helpers import argsort
from teeny.schedule.items import allreduce_op, is_buffer_view
from teeny import multi


# The rules are written with UOp's arithmetic (uop.py): a Python scalar in `ret * 2.0` is a constant of ret's dtype
# and shape. Each rule builds exactly the UOps it always has (so every backward kernel stays the same): mind the
# grouping, `-(ctx * (ret * ret))` is not the graph `-ctx * ret * ret`.

def _max_grad(ctx: UOp, a: UOp, b: UOp):
  # like torch.maximum: a side gets the whole gradient unless it is the smaller one, a tie sends half to each side,
  # and a NaN (which compares as neither) sends all of it to both
  # (chosen by where, not multiplied by a 0/1 mask: the losing side of an infinite gradient gets 0, not inf * 0)
  share = a.eq(b).where(ctx * 0.5, ctx)
  return (a.lt(b).where(0.0, share), b.lt(a).where(0.0, share))


def _read_exactly(x: UOp) -> bool:
  """Whether x is stored data seen through movement ops only: every kernel that reads it gets the same bits, so it
  need not be stored again (max_pool2d's windows are a view of its input)."""
  while x.op in MOVEMENT or x.op is Ops.DETACH: x = x.src[0]
  return x.op in (Ops.BUFFER, Ops.CONST, Ops.CONTIGUOUS, Ops.COPY)


def _reduce_grad(ctx: UOp, ret: UOp):
  src = ret.src[0]
  op, axes = ret.arg[:2]
  if op is Ops.ADD: return (ctx.expand(src.shape),)
  if op is Ops.MAX:
    # every position that equals the max gets an equal share of the gradient. The input is stored once and the
    # max taken again from the stored values: recomputing src in another kernel need not give the same bits (LLVM
    # vectorizes sin with libmvec in one kernel and calls libm in another), and then no position would equal it
    stored = src if _read_exactly(src) else src.contiguous()
    ret = stored.reduce(Ops.MAX, axes)
    # the ties are counted in float32 at least: float16 would count 70,000 tied values as inf, sharing out 0
    count_dtype = dtypes.float32 if src.dtype.itemsize < 4 else src.dtype
    is_max = stored.eq(ret.expand(src.shape)).cast(count_dtype)
    count = is_max.sum(axes).expand(src.shape)
    return ((ctx.expand(src.shape).cast(count_dtype) * (is_max / count)).cast(src.dtype),)
  # a product nobody uses (upstream 0: a scan's padding, discarded) passes 0, not 0 * inf = NaN where others are infinite
  upstream = ctx.expand(src.shape)
  return (upstream.eq(0.0).where(0.0, upstream * _product_of_the_others(src, axes)),)


def _product_of_the_others(src: UOp, axes) -> UOp:
  """d(prod)/dx_i: the product of the other elements, like PyTorch. prod / x_i goes wrong where x_i is 0, +-inf or
  NaN (0/0, inf/inf), so those special elements are kept out of the division: the product of the ordinary ones,
  over x_i when x_i is ordinary, times what the other special ones make (1 with none; 0 with zeros; +-inf with
  infinities, the sign theirs; NaN with zeros and infinities, or with a NaN). [inf, 1, 2, 3] gives 6 at the
  inf, as PyTorch does (inf / inf was NaN)."""
  def any_other(mask: UOp) -> UOp:  # whether the row's other elements hold one the mask holds
    counts = mask.cast(src.dtype)
    return (counts.sum(axes).expand(src.shape) - counts).lt(0.5).ne(True)
  zero, nan = src.eq(0.0), src.ne(src)
  infinite = src.eq(math.inf).alu(Ops.OR, src.eq(-math.inf))
  special = zero.alu(Ops.OR, infinite).alu(Ops.OR, nan)
  plain = special.where(1.0, src)
  rest = plain.reduce(Ops.MUL, axes).expand(src.shape)
  # the sign the other infinities multiply in: all of the row's infinities' signs, over this one's own
  sign = infinite.where(src.lt(0.0).where(src.const_like(-1.0), 1.0), 1.0)
  others_sign = sign.reduce(Ops.MUL, axes).expand(src.shape) * sign
  zeros, infinities = any_other(zero), any_other(infinite)
  undefined = any_other(nan).alu(Ops.OR, zeros.alu(Ops.AND, infinities))
  factor = undefined.where(math.nan, infinities.where(others_sign * math.inf, 1.0))
  # another zero makes it 0 by where, not by a factor 0: the ordinary elements' product may have overflowed to inf
  # ([1e15, -1e15, 0, 1, 1e15] gave NaN at the nonzero ones, PyTorch 0)
  return zeros.alu(Ops.AND, undefined.ne(True)).where(0.0, special.where(rest, rest / plain) * factor)


def _expand_grad(ctx: UOp, ret: UOp):
  src = ret.src[0]
  return (ctx.sum([i for i, (s, n) in enumerate(zip(src.shape, ret.shape)) if s != n]),)


def _cast_grad(ctx: UOp, ret: UOp):
  src = ret.src[0]
  return (ctx.cast(src.dtype),) if dtypes.is_float(src.dtype) else (None,)


def _assign_grad(ctx: UOp, ret: UOp):
  """A write: the written value gets the gradient of the elements it was stored into (seen through the view it
  was written through); the target's old contents get none (they were overwritten)."""
  g = ctx
  for op, arg in ret.arg[1]: g = UOp(op, g.dtype, (g,), arg)
  return (None, g)


def _pad_grad(ctx: UOp, ret: UOp):
  return (ctx.shrink((b, b + s) for (b, _), s in zip(ret.arg, ret.src[0].shape)),)


def _shrink_grad(ctx: UOp, ret: UOp):
  return (ctx.pad((b, s - e) for (b, e), s in zip(ret.arg, ret.src[0].shape)),)


# rule name -> fn(ctx, ret) giving the gradients of ret.src[1:] (see the module docstring)
custom_gradients: dict[str, Callable[[UOp, UOp], tuple]] = {}
# rule name -> fn(arg, grad, value, *inputs) written in Tensor ops (so it differentiates again), giving each
# input's gradient as a tensor (None: no gradient). The mixins in teeny/ops/ register these without knowing the
# Tensor class; at its first use a rule becomes a custom_gradients one (_rule_in_tensor_ops), so a rule
# registered at any time is found. `as_tensor` (node -> a tensor over it) is set by tensor.py
tensor_rules: dict[str, Callable] = {}
as_tensor: Callable | None = None


def _rule_in_tensor_ops(rule):
  """A gradient rule in Tensor ops as a UOp rule: called with the DETACH's arg and its nodes as tensors, on the
  device the nodes compute on (a rule that makes a tensor, cumsum's mask or qr's eye, makes it there). The value
  is the DETACH itself (the node the user's tensor holds): a value realized in the forward pass is read, not
  computed again (max_pool2d's gradient compares the windows with it)."""
  def in_uops(ctx: UOp, ret: UOp) -> tuple:
    device = graph_device(ret, ctx)
    grads = rule(ret.arg, *(as_tensor(u, device) for u in (ctx, ret, *ret.src[1:])))
    return tuple(None if g is None else g.uop for g in grads)
  return in_uops


def graph_device(*roots: UOp) -> str | tuple[str, ...] | None:
  """The device a graph computes on: that of a buffer or copy under the first root that has one, or a sharded
  tensor's devices (a MULTI); None for a graph of constants alone."""
  known = getattr(_walked, "devices", None)
  if known is None: known = {}
  for root in roots:
    device = _device_below(root, known)
    if device is not None: return device
  return None


# while compute_gradient runs in a thread: node -> the device of a buffer or copy under it (None: constants alone),
# for the nodes graph_device walked. A backward pass asks about every node of a chain, and walking each one's graph
# again made a 1,000-op chain's backward 20x slower
_walked = threading.local()


def _device_below(root: UOp, known: dict) -> str | tuple[str, ...] | None:
  """The device under root, each node's found once (post-order over the nodes not yet known, without recursion:
  chains are deep). A copy's device is where it copies to: the nodes below it are another device's."""
  stack = [root]
  while stack:
    n = stack[-1]
    if n in known:
      stack.pop()
      continue
    if n.op is Ops.BUFFER or n.op is Ops.COPY or n.op is Ops.MULTI:  # (a MULTI's: its devices, teeny/multi.py)
      known[n] = n.arg.device if n.op is Ops.BUFFER else n.arg[1] if n.op is Ops.COPY else n.arg[0]
      stack.pop()
      continue
    unknown = [s for s in n.src if s not in known]
    if unknown:
      stack.extend(unknown)
      continue
    stack.pop()
    known[n] = next((known[s] for s in n.src if known[s] is not None), None)
  return known[root]


def checked_gradient_target(node: UOp, dtype) -> UOp:
  """node, a target of Tensor.gradient, after checking it is a float tensor's and not a number filled in (a
  constant, maybe broadcast). Equal constants are one node (the 2.0 of `t * 2.0` is Tensor(2.0) itself, and x + 1
  holds Tensor.ones(x.shape)), so a gradient with respect to one would collect every use of that number:
  (t * 2.0).gradient(t) gave 4, not 2. (Built from constants in other ways, like eye(), is allowed: such a graph
  is the same node only as an identical expression.)"""
  if not dtypes.is_float(dtype): raise RuntimeError(f"gradient() with respect to a {dtype} tensor: only float tensors have gradients")
  base = node
  while base.op is Ops.RESHAPE or base.op is Ops.EXPAND: base = base.src[0]  # (a number broadcast, as x + 1 makes)
  if base.op is Ops.CONST:
    raise RuntimeError("gradient() with respect to a constant tensor: equal constants are one node in the graph, so its "
                       "uses can't be told from the same number's elsewhere; set requires_grad=True on it (a leaf) or realize() it")
  return node


def _mod_grad(ctx: UOp, ret: UOp):
  # a float MOD is fmod(a, b) = a - q * b with q the exact truncated quotient: (a - fmod(a, b)) / b rounded to the
  # nearest integer (trunc(a / b) is off by one where a / b rounds up to an integer: 1.0 / 0.1 is 10.0, q is 9).
  # A 0 divisor's quotient is a / 0, +-inf (fmod is NaN there), as PyTorch's. An integer MOD passes no gradient.
  if not dtypes.is_float(ret.dtype): return (None, None)
  a, b = ret.src
  near = (a - ret).alu(Ops.FDIV, b)
  q = (near + near.lt(0).where(near.const_like(-0.5), 0.5)).alu(Ops.TRUNC)
  return (ctx, -(ctx * b.eq(0.0).where(a.alu(Ops.FDIV, b), q)))


def _copy_grad(ctx: UOp, ret: UOp):
  """A copy's gradient is copied back. An allreduce's (teeny.distributed: a COPY with an op, every process's
  values summed) is the allreduce of the gradients: each process's input reaches every process's output, so its
  gradient is the sum of theirs. A max or min across processes has none here."""
  op = allreduce_op(ret)
  if op is None: return (UOp(Ops.COPY, ctx.dtype, (ctx,), (ret.arg[1], ret.arg[0])),)
  if op != "sum": raise RuntimeError(f"no gradient through an allreduce of {op}: only a sum has one here")
  return (UOp(Ops.COPY, ctx.dtype, (ctx,), ret.arg),)


def _multi_grad(ctx: UOp, ret: UOp):
  """A sharded tensor's (teeny/multi.py) gradient, shard by shard: each device's block of the gradient, gathered
  there. A replicated one's shards are copies of one value: the first takes the whole gradient."""
  devices, axis = ret.arg
  gathered = [UOp(Ops.COPY, ctx.dtype, (ctx,), (devices, d)) for d in devices]
  if axis is None: return (gathered[0],) + (None,) * (len(devices) - 1)
  return tuple(multi.block(g, axis, b) for g, b in zip(gathered, multi.bounds_of(ret)))


def _detach_grad(ctx: UOp, ret: UOp):
  if ret.arg is None: return (None,)  # a plain detach(): no gradient
  rule = ret.arg[0] if isinstance(ret.arg, tuple) else ret.arg  # (a rule's settings follow its name: conv's)
  if rule not in custom_gradients: custom_gradients[rule] = _rule_in_tensor_ops(tensor_rules[rule])
  return (None, *custom_gradients[rule](ctx, ret))


LN2 = math.log(2)


def _cos(x: UOp) -> UOp:
  """cos x as 1 - 2 sin^2(x/2), as Tensor.cos computes it past its reduction's range: halving x is exact, where
  sin(pi/2 - x) rounds pi/2 - x. Only a bare SIN node's gradient: Tensor.sin's is Tensor.cos by a rule
  (transcendental.py), right near cos's zeros too, where this cancels."""
  half = (x * 0.5).sin()
  return 1 - half * half * 2.0


pm_gradient = PatternMatcher([
  (UPat(Ops.ADD), lambda ctx: (ctx, ctx)),
  (UPat(Ops.MUL, name="ret"), lambda ctx, ret: (ctx * ret.src[1], ctx * ret.src[0])),
  (UPat(Ops.NEG), lambda ctx: (-ctx,)),
  (UPat(Ops.RECIP, name="ret"), lambda ctx, ret: (-(ctx * (ret * ret)),)),
  # (the divisor's as PyTorch's, -ctx * ((a / b) / b): ctx * (a / b) first overflowed where the gradient is finite)
  (UPat(Ops.FDIV, name="ret"), lambda ctx, ret: (ctx.alu(Ops.FDIV, ret.src[1]), -(ctx * ret.alu(Ops.FDIV, ret.src[1])))),
  (UPat(Ops.SQRT, name="ret"), lambda ctx, ret: (ctx / (ret * 2.0),)),
  (UPat(Ops.EXP2, name="ret"), lambda ctx, ret: (ctx * (ret * LN2),)),
  (UPat(Ops.LOG2, name="ret"), lambda ctx, ret: (ctx / (ret.src[0] * LN2),)),
  (UPat(Ops.SIN, name="ret"), lambda ctx, ret: (ctx * _cos(ret.src[0]),)),
  (UPat(Ops.MAX, name="ret"), lambda ctx, ret: _max_grad(ctx, *ret.src)),
  (UPat(Ops.WHERE, name="ret"), lambda ctx, ret: (None, ret.src[0].where(ctx, 0.0), ret.src[0].where(0.0, ctx))),
  (UPat(Ops.CAST, name="ret"), _cast_grad),
  (UPat(Ops.REDUCE_AXIS, name="ret"), _reduce_grad),
  (UPat(Ops.RESHAPE, name="ret"), lambda ctx, ret: (ctx.reshape(ret.src[0].shape),)),
  (UPat(Ops.PERMUTE, name="ret"), lambda ctx, ret: (ctx.permute(argsort(ret.arg)),)),
  (UPat(Ops.EXPAND, name="ret"), _expand_grad),
  (UPat(Ops.PAD, name="ret"), _pad_grad),
  (UPat(Ops.SHRINK, name="ret"), _shrink_grad),
  (UPat(Ops.FLIP, name="ret"), lambda ctx, ret: (ctx.flip(ret.arg),)),
  (UPat(Ops.CONTIGUOUS), lambda ctx: (ctx,)),
  (UPat(Ops.ASSIGN, name="ret"), _assign_grad),
  (UPat(Ops.DETACH, name="ret"), _detach_grad),
  (UPat(Ops.COPY, name="ret"), _copy_grad),
  (UPat(Ops.MULTI, name="ret"), _multi_grad),
  (UPat(Ops.MOD, name="ret"), _mod_grad),
  # no gradient flows through comparisons, integer math, bit ops, TRUNC or BITCAST
  (UPat((Ops.CMPLT, Ops.CMPNE, Ops.AND, Ops.OR, Ops.XOR, Ops.SHL, Ops.SHR, Ops.MOD, Ops.IDIV, Ops.TRUNC,
         Ops.BITCAST), name="ret"), lambda ctx, ret: tuple(None for _ in ret.src)),
])


def compute_gradient(root: UOp, root_grad: UOp, targets: set[UOp]) -> dict[UOp, UOp]:
  """Gradients of `root` (seeded with root_grad) with respect to every target node it depends on."""
  order = toposort(root)
  # only nodes with a target below them need a gradient
  leads_to_target: set[UOp] = set()
  for u in order:
    if u in targets or any(s in leads_to_target for s in u.src): leads_to_target.add(u)
  grads: dict[UOp, UOp] = {root: root_grad}
  outer, _walked.devices = getattr(_walked, "devices", None), {}  # (graph_device's memo for this pass)
  try:
    for u in reversed(order):
      g = grads.get(u)
      if g is None or u not in leads_to_target or not u.src: continue
      src_grads = pm_gradient.rewrite(u, ctx=g)
      if src_grads is None: raise RuntimeError(f"no gradient rule for {u.op}")
      for s, sg in zip(u.src, src_grads):
        if sg is None or s not in leads_to_target: continue
        grads[s] = sg if s not in grads else grads[s] + sg
  finally:
    _walked.devices = outer
  found = {t: grads[t] for t in targets if t in grads}
  for g in found.values(): differentiated[g] = root
  return found


# each gradient compute_gradient returned (while it lives) -> the root it is a gradient of: teeny.viz marks the
# nodes a backward pass made as those under a gradient and not under its root (an entry lives as long as its gradient)
differentiated: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# A tensor that requires grad keeps, when it is realized, the graph that computed it: backward() after realize()
# (printing the loss first, say) puts those graphs back in place of the buffers, so gradients still reach the
# leaves. Nodes already realized are reused from their buffers when the gradient graph is scheduled.
# (a pending write, whose sources may be rewritten first, is found by its arg: each assign() has its own)
def _restore_write(ctx: dict, x: UOp) -> UOp | None:
  """A write in the graph: the graph of the values it writes when known (pending, or run: see engine/tensors'
  written_graphs). Unknown while its target was replaced by a graph, it would no longer be a write into a buffer:
  the values' graph went stale (what it read was overwritten since), so backward() can't go through it."""
  found = ctx.get(x.arg)
  if found is not None or is_buffer_view(x.src[0]) or x.src[0].op is Ops.MULTI: return found
  raise RuntimeError("backward() goes through an in-place write whose values' graph is gone (what it read was "
                     "overwritten since): compute the result again after the last write")


pm_restore_graphs = PatternMatcher([(UPat((Ops.RESHAPE, Ops.BUFFER, Ops.MULTI), name="x"), lambda ctx, x: ctx.get(x)),
                                    (UPat(Ops.ASSIGN, name="x"), _restore_write)])


def restore_graphs(root: UOp, graphs: dict, keep=frozenset()) -> UOp:
  """root with every realized buffer view in `graphs` replaced by the graph that computed it, and every pending
  write whose arg is in `graphs` by the graph of the values it writes. The nodes in `keep` (the gradient's
  targets: it finds them by identity) stay as they are, with what is under them."""
  return graphs and graph_rewrite(root, pm_restore_graphs, ctx=graphs, opaque=keep) or root
