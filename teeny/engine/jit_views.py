"""What a TinyJit replay returns: the returned tensors as the eager call made them, views included.

A returned tensor that is a view in the eager call (teeny/tensor.py: `z[0:2]`, `c.T`, `kv[:, :pos]`, `x.detach()`)
shares its storage with its base: a write into it reaches the base and the base's changes show through it. A
replay runs no Python, so it rebuilds that sharing from what the capture call returned: each returned tensor is
the view, through the same movement ops (its `_view_ops`), of its base on this replay, and a tensor returned
twice, or two views of one base, share one base again. The base on a replay is:

  - a Tensor argument: the tensor passed in that place now (a view of the argument, `c[0:2]`, writes into it);
  - a tensor made during the call (returned itself, `return z, z[0:2]`, or not, `y[0:2], y[1:3]`): one new base
    per replay over that replay's buffer (a fresh one for returned results, see jit.py);
  - a tensor made before the call (a parameter, a global KV cache): that same tensor, while it is alive and
    still lies in the buffer the replay's kernels used (else, as for the others, a new base over that buffer).

Results PyTorch copies (flip, pad, arithmetic) are bases of their own in an eager call, so they stay copies.
"""
from __future__ import annotations
import weakref
from teeny.tensor import Tensor
from teeny.uop import UOp, Ops
from teeny.program_order import write_targets
from teeny.schedule import is_realized
from teeny.engine.jit_args import _map


class _Out:
  """Where a returned tensor's base is on replay: the argument tensor passed in place `same_arg` now, or the
  movement ops `moves` over the buffer filling `slot`, the input buffer number `arg`, or `buf` itself (one the
  capture keeps). A sharded tensor is a MULTI with arg `multi_arg` over its `shards`, each one of these (without
  device)."""
  def __init__(self, device, moves, slot=None, arg=None, buf=None, same_arg=None, shards=None, multi_arg=None):
    self.device, self.moves, self.slot, self.arg, self.buf, self.same_arg = device, moves, slot, arg, buf, same_arg
    self.shards, self.multi_arg = shards, multi_arg

  def kept_buffers(self) -> list | None:
    """The buffers the capture keeps for this base (one per device), or None when a replay fills it otherwise."""
    parts = self.shards if self.shards is not None else [self]
    if self.same_arg is not None or any(p.buf is None for p in parts): return None
    return [p.buf for p in parts]


class _Base:
  """A base of returned tensors: where it lies on replay (`where`); for one made before the call, a weak reference
  to it (`made_before`), returned itself while it still lies there; and for one read through Variables
  (`x[pos:pos + 2]`, teeny/ops/variables.py), the tensor its writes also reach and where (`write_target`: a
  _Returned and the region, whose Variables take each replay's values)."""
  __slots__ = ("where", "made_before", "write_target")
  def __init__(self, where: _Out, made_before):
    self.where, self.made_before, self.write_target = where, made_before, None


class _Returned:
  """A returned tensor on replay: base number `base`, seen through the movement ops `view_ops` (None: the base
  itself; (): another tensor over its storage, as Tensor(t) makes)."""
  __slots__ = ("base", "view_ops")
  def __init__(self, base: int, view_ops: tuple | None):
    self.base, self.view_ops = base, view_ops


class ReturnedOutputs:
  """What a capture call returned, for its replays to return alike: `template` (the result with each Tensor a
  _Returned) and `bases`. `plain`: no view, no tensor returned twice, none made before the call, so a replay
  just makes each base (the common case, kept as cheap as it was)."""
  def __init__(self, out, where, made_before):
    """`where(t)` says where a base tensor lies on replay (an _Out); `made_before(buffers)` whether those buffers
    existed before the call."""
    self.bases: list[_Base] = []
    tensors: list[Tensor] = []  # the capture's base tensors, in the order of bases
    number: dict[int, int] = {}  # id of a base tensor -> its place in bases (the tensors are alive: `out` holds them)
    def seen_outside(place: _Out) -> bool:  # (an argument, or a tensor made before the call)
      kept = place.kept_buffers()
      return place.same_arg is not None or (kept is not None and made_before(kept))
    def returned(t: Tensor) -> _Returned:
      base = _base_of(t)
      if id(base) not in number:
        number[id(base)] = len(self.bases)
        place = _Base(where(base), None)
        if place.where.same_arg is None and seen_outside(place.where): place.made_before = weakref.ref(base)
        self.bases.append(place)
        tensors.append(base)
      return _Returned(number[id(base)], t._view_ops if t._base is not None else None)
    self.template = _map(out, Tensor, returned)
    for base, t in zip(self.bases, tensors):  # (bases grows in the loop: a target's own target is found too)
      if t._write_target is None: continue
      target, region = t._write_target
      # a target that nobody outside the call sees (an intermediate) can't show the writes: none is kept for it
      if id(_base_of(target)) in number or (is_realized(_base_of(target).uop) and seen_outside(where(_base_of(target)))):
        base.write_target = (returned(target), region)
    returned_now = _returned_in(self.template)
    self.plain = (len(returned_now) == len(self.bases) and all(r.view_ops is None for r in returned_now)
                  and all(b.made_before is None and b.write_target is None for b in self.bases))

  def replayed(self, build, variables: dict[str, int]):
    """At a replay: the template's tensors, each base made once (`build(_Out)` makes a Tensor over this replay's
    buffers) and each view a view of it, as the eager call's were. `variables`: this replay's values of the bound
    Variables passed in."""
    if self.plain: return _map(self.template, _Returned, lambda r: build(self.bases[r.base].where))
    made: dict[int, Tensor] = {}
    def base_tensor(i: int) -> Tensor:
      if i not in made:
        base = self.bases[i]
        live = _still_there(base)
        made[i] = live if live is not None else build(base.where)  # (not `or`: a Tensor's truth is its value's)
        if live is None and base.write_target is not None:
          target, region = base.write_target
          made[i]._write_target = (tensor(target), tuple(_rebound(r, variables) for r in region))
      return made[i]
    def tensor(r: _Returned) -> Tensor:
      t = base_tensor(r.base)
      if r.view_ops == (): return Tensor(t)  # (an alias: a view with no movement)
      for op, arg in r.view_ops or (): t = t._view(op, arg)
      return t
    return _map(self.template, _Returned, tensor)


def _base_of(t: Tensor) -> Tensor: return t if t._base is None else t._base


def _returned_in(template) -> list[_Returned]:
  found: list[_Returned] = []
  _map(template, _Returned, found.append)
  return found


def _rebound(item, variables: dict[str, int]):
  """An index item (an int, a slice, an expression over bound Variables) with the Variables passed in bound to
  this replay's values."""
  if isinstance(item, slice): return slice(*(_rebound(v, variables) for v in (item.start, item.stop, item.step)))
  if not isinstance(item, UOp) or not variables: return item
  new: dict[UOp, UOp] = {}
  for n in item.toposort():
    if n.op is Ops.BIND and n.arg[0] in variables: new[n] = n.replace(arg=(*n.arg[:3], variables[n.arg[0]]))
    else: new[n] = n.replace(src=tuple(new[s] for s in n.src)) if n.src else n
  return new[item]


def _still_there(base: _Base) -> Tensor | None:
  """The tensor made before the call, if it is alive and lies (realized, or with a write pending) in the buffers
  the replay used: a parameter replaced by another tensor's storage is not what the kernels wrote."""
  t = base.made_before() if base.made_before is not None else None
  if t is None or t._base is not None: return None
  node = t.uop
  if node.op is Ops.ASSIGN: node = node.src[0]  # (a write still pending: it lands in the same buffers)
  now, kept = write_targets(node), base.where.kept_buffers()
  return t if len(now) == len(kept) and all(a is b for a, b in zip(now, kept)) else None
