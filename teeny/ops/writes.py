"""Writes as a Tensor mixin: assign (the one write: lazy, into the storage of the tensor, or of the base it is a
view of), the in-place operators (x += y) and PyTorch's in-place methods (x.add_(y)), each a result written back
with assign, and how a write reaches its base through a view's movement ops (_placed_in_base). x[i] = v is
__setitem__ in indexing.py, which ends in assign; PyTorch's rule on in-place changes of parameters is
Tensor._check_inplace."""
from __future__ import annotations
import weakref
from typing import TYPE_CHECKING
from teeny.dtype import dtypes
from teeny.uop import UOp, Ops
from teeny.schedule import is_realized, forget_realized
from teeny.gradient import restore_graphs
from teeny.engine.tensors import realize_tensors, grad_realized, written_graphs, remember_write, unique_ids
from teeny.engine.realize import capture
from teeny.helpers import snapshot
from teeny import multi, program_order
from teeny.ops.args import ArgumentError, _broadcast_shape
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self


def grad_enabled() -> bool:
  """Whether grad mode is on (set by tensor.py, which owns grad mode)."""
  return True


class WriteOps:
  """Tensor's assign and in-place operators and methods."""
  _unwritable = None  # what this tensor is and what to do, when PyTorch's would be a view and teeny's is a copy: writes raise
  _assigned_graph = None  # a pending write's values as autograd sees them (see _graph_after_write)
  def replace(self, x: Self) -> Self:
    """This tensor takes x's value, dtype and device without a copy (tinygrad's replace: how a model's parameters
    are swapped for new ones); only the shapes must match. Views made of it earlier see the new value. Returns
    self."""
    if not isinstance(x, type(self)): raise TypeError(f"replace takes a Tensor, got {type(x).__name__}")
    if x.shape != self.shape: raise ArgumentError(f"replace needs the same shape: {self.shape} and {x.shape}")
    if self._base is not None: raise RuntimeError("replace of a view: replace the tensor it is a view of, or assign")
    forget_realized()
    self.uop, self.device, self._graph = x.uop, x.device, None
    return self
  def assign(self, x) -> Self:
    """Write x into this tensor's storage, lazily (realize() runs the write): how optimizers update parameters in
    place. x (a tensor or anything Tensor() takes) broadcasts to this tensor's shape and is cast to its dtype.
    Assigning to a view writes through to its base, and the base and every view of it see the new values, as in
    PyTorch; lazy results computed from the old values keep them (teeny/program_order.py). Returns self."""
    base = self if self._base is None else self._base
    _check_writable(base)
    value = self._write_value(x)
    if value.uop is self.uop or 0 in self.shape: return self  # t.assign(t), t[i] = t[i], an empty view: nothing changes
    value, leaf = self._value_for_autograd(base, value)
    depth = len(self._view_ops)
    self._check_not_overlapping(depth)
    forget_realized()
    storage = base._storage()
    old = base._uop
    # a bitcast view (x.bitcast(int32), torch's x.view(torch.int32)) holds the base's bits read as another dtype
    # of the same size: the value's bits are what the base stores, and bitcasts commute with the movement ops
    bits = value.uop if value.dtype == base.dtype else UOp(Ops.BITCAST, base.dtype, (value.uop,))
    if depth: placed, covered = _placed_in_base(self.uop, depth, bits)
    # through a view of a sharded tensor: not in place (its graph is replaced, new buffers hold the result), which a
    # TinyJit replay can't follow (it would read the old buffers again each call): refused while one captures
    if depth and type(base.device) is tuple and capture.recording is not None:
      raise RuntimeError("TinyJit can't capture a write through a view of a tensor on several devices (x[1:3] += v on a "
                         "sharded or replicated x): it goes into new buffers that a replay would not follow; write the "
                         "whole tensor (x.assign(...)) or run the step without TinyJit")
    if depth and storage is not None and storage.op is Ops.MULTI: storage = None
    if storage is not None:
      # in place: the kernel stores value through the view's movement ops into the base's buffer
      moves = tuple((op, arg) for op, arg in self._view_ops if op is not Ops.DETACH and op is not Ops.BITCAST)
      base.uop = UOp(Ops.ASSIGN, base.dtype, (storage, bits), (next(unique_ids), moves))
      program_order.track_write(base)
      if storage.op is Ops.MULTI: multi.track_write(base.uop)  # (one write per device: see multi.writes_per_device)
      # autograd: graphs built before the write hold the buffer, standing for its old values; its kept graph (a
      # result) stays theirs until the write runs (see _realized_graphs), a leaf remembers both nodes it was
      base._assigned_graph = base._graph_after_write(covered.where(placed, old) if depth else bits, old)
      if base._assigned_graph is not None:
        grad_realized[id(base)] = base
        remember_write(base.uop, base._assigned_graph)  # (graphs built on the write may outlive the tensor)
      if leaf: base._earlier_nodes = _still_held(base._earlier_nodes, storage) + (weakref.ref(storage), weakref.ref(base.uop))
    else:
      # a leaf's new values are its own, the elements kept included (as in place: no gradient flows from the new
      # node to `old`, which graphs built before reach as an earlier node of the leaf; through both, the gradient
      # of an element the write left reached the leaf twice)
      kept = UOp(Ops.DETACH, old.dtype, (old,)) if leaf else old
      base.uop = covered.where(placed, kept) if depth else UOp(Ops.CONTIGUOUS, base.dtype, (value.uop,), ("clone", next(unique_ids)))
      base._graph = None  # (a lazy base: its graph is replaced, nothing is written; or a clone: a buffer of its own)
      # a lazy leaf (one moved by to_() or shard_() since it was made) was `old` to the graphs built before
      if leaf: base._earlier_nodes = _still_held(base._earlier_nodes, old) + (weakref.ref(old),)
    if base._write_target is not None: _write_back(base, base._new(covered).detach() if depth else None)
    return self

  def _value_for_autograd(self, base: Self, value: Self) -> tuple[Self, bool]:
    """The value to write as autograd sees it, and whether base is a leaf that requires grad: a parameter's new
    values are its own (no graph over what computed them). Values that require grad can't go through a detached
    view (its base is read through the DETACH: their gradient would be lost), and make a base that doesn't
    require grad require it (as in PyTorch: buf[0:3] = w * 2)."""
    if value._requires_grad and grad_enabled():
      if any(op is Ops.DETACH for op, _ in self._view_ops):
        raise RuntimeError("a tensor that requires grad written into a detached view (x.detach()[i] = v, or a view made "
                           "under no_grad): its gradient can't flow through the view; write into a clone() instead")
      if not base._requires_grad and not base._leaf: base._requires_grad = True
    leaf = base._leaf and base._requires_grad
    return (value.detach() if leaf else value), leaf

  def _graph_after_write(self, values: UOp, old: UOp) -> UOp | None:
    """For autograd, what a realized result that requires grad holds after an in-place write, as a graph: the
    written values, where `old` (its buffer) stands for the graph that computed it before. None when it needs no
    graph (a leaf, or no grad) or has none to give (its old graph was dropped). Writes into it that ran (values
    built on them: x[x > 0] = v reads x's pending write, which runs first) stand for their values' graphs."""
    if not self._requires_grad or self._leaf: return None
    if self._graph is not None:
      try: return restore_graphs(values, {**dict(snapshot(written_graphs.items)), old: self._graph})
      except RuntimeError: return None  # (a write it was built on went stale: backward() through it will raise)
    return None if old in values.toposort() else values

  def _write_value(self, value) -> Self:
    """value as a tensor of this tensor's device, dtype and shape (broadcast), or a clear error."""
    value = value if isinstance(value, type(self)) else type(self)(value, device=self.device, dtype=self.dtype)
    if value.device != self.device: raise RuntimeError(f"can't assign a tensor on {value.device} into one on {self.device}")
    fits = len(value.shape) <= self.ndim and all(v in (1, t) for v, t in zip(value.shape[::-1], self.shape[::-1]))
    if not fits: raise ArgumentError(f"can't assign a tensor of shape {value.shape} to one of shape {self.shape}")
    return value.cast(self.dtype).expand(self.shape)

  def _check_not_overlapping(self, depth: int):
    """A write through a broadcast (expanded) view would give several elements one memory location (PyTorch
    refuses it too)."""
    node = self.uop
    for _ in range(depth):
      if node.op is Ops.EXPAND and any(s == 1 and n > 1 for s, n in zip(node.src[0].shape, node.shape)):
        raise RuntimeError(f"can't write into an expanded view (shape {node.src[0].shape} expanded to {node.shape}): "
                           "several of its elements are one memory location; write into a clone() instead")
      node = node.src[0]

  def _storage(self) -> UOp | None:
    """The buffer view holding this base's values (a sharded tensor's MULTI of them), to write into; None while it
    is a lazy result (a write then replaces its graph). A write still pending on it runs first."""
    if self._uop.op is Ops.ASSIGN: realize_tensors((self,))
    return self._uop if is_realized(self._uop) else None
  def _inplace(self, result: Self) -> Self:
    """self <op>= other: result written into self, which keeps its dtype (a result PyTorch can't cast back,
    float into int or anything into bool, raises)."""
    self._check_inplace()
    if (dtypes.is_float(result.dtype) and not dtypes.is_float(self.dtype)) or \
       (self.dtype == dtypes.bool and result.dtype != dtypes.bool):
      raise TypeError(f"in-place result of dtype {result.dtype} can't be stored in a tensor of dtype {self.dtype}")
    if result.shape != self.shape:
      raise ArgumentError(f"in-place result of shape {result.shape} doesn't fit a tensor of shape {self.shape}")
    return self.assign(result)

  def __iadd__(self, x): return self._inplace(self + x)
  def __isub__(self, x): return self._inplace(self - x)
  def __imul__(self, x): return self._inplace(self * x)
  def __itruediv__(self, x): return self._inplace(self / x)
  def __ifloordiv__(self, x): return self._inplace(self // x)
  def __imod__(self, x): return self._inplace(self % x)
  def __ipow__(self, x): return self._inplace(self ** x)
  def __imatmul__(self, x): return self._inplace(self @ x)
  def __iand__(self, x): return self._inplace(self & x)
  def __ior__(self, x): return self._inplace(self | x)
  def __ixor__(self, x): return self._inplace(self ^ x)
  def __ilshift__(self, x): return self._inplace(self << x)
  def __irshift__(self, x): return self._inplace(self >> x)
  # PyTorch's in-place methods (the name with a trailing underscore): each writes the method's result into self
  def add_(self, other, alpha=1):
    """In place: self += alpha * other (torch's add_). Returns self, as every in-place method here does."""
    return self._inplace(self + (other * alpha if alpha != 1 else other))
  def sub_(self, other, alpha=1):
    """In place: self -= alpha * other (torch's sub_)."""
    return self._inplace(self - (other * alpha if alpha != 1 else other))
  def mul_(self, other):
    """In place: self *= other (torch's mul_)."""
    return self._inplace(self * other)
  def div_(self, other, rounding_mode: str | None = None):
    """In place: self = self.div(other, rounding_mode) (torch's div_); an int tensor needs a rounding_mode."""
    return self._inplace(self.div(other, rounding_mode=rounding_mode))
  def pow_(self, exponent):
    """In place: self **= exponent (torch's pow_)."""
    return self._inplace(self ** exponent)
  def neg_(self):
    """In place: self = -self (torch's neg_)."""
    return self._inplace(-self)
  def abs_(self):
    """In place: self = |self| (torch's abs_)."""
    return self._inplace(self.abs())
  def sqrt_(self):
    """In place: self = sqrt(self) (torch's sqrt_); an int tensor raises TypeError (its result is a float)."""
    return self._inplace(self.sqrt())
  def exp_(self):
    """In place: self = exp(self) (torch's exp_); an int tensor raises TypeError (its result is a float)."""
    return self._inplace(self.exp())
  def log_(self):
    """In place: self = log(self) (torch's log_); an int tensor raises TypeError (its result is a float)."""
    return self._inplace(self.log())
  def relu_(self):
    """In place: self = relu(self) (torch's relu_)."""
    return self._inplace(self.relu())
  def sigmoid_(self):
    """In place: self = sigmoid(self) (torch's sigmoid_); an int tensor raises TypeError (its result is a float)."""
    return self._inplace(self.sigmoid())
  def tanh_(self):
    """In place: self = tanh(self) (torch's tanh_); an int tensor raises TypeError (its result is a float)."""
    return self._inplace(self.tanh())
  def floor_(self):
    """In place: self = floor(self) (torch's floor_)."""
    return self._inplace(self.floor())
  def ceil_(self):
    """In place: self = ceil(self) (torch's ceil_)."""
    return self._inplace(self.ceil())
  def round_(self):
    """In place: self = round(self), half to even (torch's round_)."""
    return self._inplace(self.round())
  def trunc_(self):
    """In place: self = trunc(self) (torch's trunc_)."""
    return self._inplace(self.trunc())
  def clamp_(self, min_=None, max_=None, *, min=None, max=None):  # (min=, max=: PyTorch's names)
    """In place: self = self.clamp(min, max) (torch's clamp_; clip_ is the same); the bounds as in clip."""
    return self._inplace(self.clamp(min_, max_, min=min, max=max))
  clip_ = clamp_
  def masked_fill_(self, mask: Self, value):
    """In place: value where mask is True (torch's masked_fill_); the mask must broadcast to self's shape."""
    if isinstance(mask, type(self)) and _broadcast_shape(mask.shape, self.shape) != self.shape:
      raise ArgumentError(f"masked_fill_ mask of shape {mask.shape} doesn't broadcast to {self.shape}")
    return self._inplace(self.masked_fill(mask, value))
  def lerp_(self, end, weight):
    """In place: self = self.lerp(end, weight) (torch's lerp_)."""
    return self._inplace(self.lerp(end, weight))
  def zero_(self):
    """In place: every element 0 (torch's zero_)."""
    return self.fill_(0)
  def fill_(self, value):
    """In place: every element value, cast to self's dtype (torch's fill_)."""
    self._check_inplace()
    return self.assign(type(self).full(self.shape, value, dtype=self.dtype, device=self.device))
  def copy_(self, src):
    """Copy src (broadcast, cast to self's dtype) into self, like torch's copy_."""
    self._check_inplace()
    return self.assign(src)
  def uniform_(self, low=0.0, high=1.0):
    """In place: uniform samples in [low, high) in self's dtype (torch's uniform_, whose names are from and to)."""
    self._check_inplace()
    return self.assign(type(self).uniform(*self.shape, low=low, high=high, dtype=self.dtype, device=self.device))
  def normal_(self, mean=0.0, std=1.0):
    """In place: normal samples with mean and std, in self's dtype (torch's normal_)."""
    self._check_inplace()
    return self.assign(type(self).normal(*self.shape, mean=mean, std=std, dtype=self.dtype, device=self.device))


def _view_node(op: Ops, arg, node: UOp) -> UOp:
  """The node of a view one step on from `node`: a movement op, DETACH, or BITCAST (whose arg in a tensor's
  _view_ops is the dtype it reads the bits as)."""
  if op is Ops.BITCAST: return UOp(Ops.BITCAST, arg, (node,))
  return UOp(op, node.dtype, (node,), arg)


def _still_held(refs: tuple, storage: UOp) -> tuple:
  """A leaf's earlier nodes that something still holds, but its storage (added again after them): one step of a
  training loop adds two, and the list must not grow with the steps."""
  return tuple(r for r in refs if r() is not None and r() is not storage)


def _check_writable(base):
  if base._unwritable is not None:  # (a write into it would not reach the tensor PyTorch's view would write)
    raise RuntimeError(f"can't write into a {base._unwritable}")


def _write_back(base, covered):
  """x[pos:pos + k] read through Variables is a gather (a copy: ops/variables.py) that remembers where it came from:
  a write into it goes to x too, the elements it wrote only (`covered`, None for all), as through a view. Writing
  the whole copy back put old values over those x had changed since the read (x[1] = 100 was undone)."""
  target, index = base._write_target
  target[index] = base if covered is None else covered.where(base, target[index])


def _placed_in_base(view: UOp, depth: int, value: UOp) -> tuple[UOp, UOp]:
  """Undo the top `depth` movement ops of `view`: value (shaped like view) put back where those elements are in
  the base, and a bool mask of the elements it covers (the rest read 0 / False)."""
  covered = UOp.const(dtypes.bool, True)
  if value.shape: covered = UOp(Ops.EXPAND, dtypes.bool, (UOp(Ops.RESHAPE, dtypes.bool, (covered,), (1,) * len(value.shape)),), value.shape)
  for _ in range(depth):
    value, covered = _undo_move(view, value), _undo_move(view, covered)
    view = view.src[0]
  return value, covered


def _undo_move(move: UOp, x: UOp) -> UOp:
  """x, shaped like the result of the movement op `move`, taken back to the shape of move's source."""
  op, arg, before = move.op, move.arg, move.src[0].shape
  if op is Ops.DETACH or op is Ops.BITCAST: return x  # (the value was bitcast back to the base's dtype first)
  if op is Ops.RESHAPE: return UOp(Ops.RESHAPE, x.dtype, (x,), before)
  if op is Ops.PERMUTE: return UOp(Ops.PERMUTE, x.dtype, (x,), tuple(sorted(range(len(arg)), key=arg.__getitem__)))
  if op is Ops.SHRINK: return UOp(Ops.PAD, x.dtype, (x,), tuple((b, s - e) for (b, e), s in zip(arg, before)))
  if op is Ops.PAD: return UOp(Ops.SHRINK, x.dtype, (x,), tuple((b, b + s) for (b, _), s in zip(arg, before)))
  if op is Ops.FLIP: return UOp(Ops.FLIP, x.dtype, (x,), arg)
  raise RuntimeError(f"can't write through a view made by {op}")
