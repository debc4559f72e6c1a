"""Tensor: the user API. Every method builds UOps and returns at once; nothing runs until data is asked for
(numpy(), item(), tolist(), realize()). Only the primitive ops of DESIGN.md reach the graph: everything else
(exp, sigmoid, mean, slicing, ...) is composed from them. Bad shapes, dtypes, axes and indices raise at the call
that caused them, before any kernel is built.

This module is Tensor's core: its state (node, storage and views), autograd entry points, realizing and reading,
casts, movement, and the binary, comparison and bitwise ops with their Python operators. The other ops are mixins
in teeny/ops/ (creation, elementwise math, reductions, indexing, joins, random numbers, nn functions, writes,
PyTorch's spellings, ...), which build on the protocol this class provides (_new, _alu, _view, _own,
_binop_operands, _constant, _check_inplace) and never import this module. Realizing is teeny/engine/tensors.py."""
from __future__ import annotations
import contextlib, functools, math, operator, threading, weakref
import numpy as np
from teeny.dtype import DType, dtypes, promote_operands, promote_scalar, to_dtype, check_fits, holds_exactly, STORAGE_FLOATS, NARROW_FLOATS
from teeny.uop import UOp, Ops
from teeny.runtime.device import Device, check_dtype
from teeny.schedule import is_buffer_view, is_realized
from teeny.helpers import snapshot, CONTEXT_FLAGS
from teeny.gradient import compute_gradient, restore_graphs, checked_gradient_target
from teeny import gradient as gradient_rules  # (the module: `gradient` is a Tensor method and an argument here)
from teeny.engine.tensors import realize_tensors, read_tensor, grad_realized, kept_graphs, written_graphs, unique_ids, constant_in_graphs_built_before
from teeny.ops.args import ArgumentError, Scalar, _canon_axis, _canon_axes, _broadcast_shape, _shape_arg, _pad_pairs, _size_arg
from teeny.ops.constants import _const_at
from teeny.ops.creation import _from_host
from teeny.ops.mixins import TensorOps
from teeny.ops.sharding import canonical_device
from teeny import multi
from teeny.ops import writes
from teeny import program_order
from teeny.variable import is_symbolic, checked, for_tensor

# tensors the user marked requires_grad=True, by id (a WeakSet compares a tensor added again with ==, elementwise)
_grad_leaves: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
# tensors backward() was called on and that may still be lazy: an optimizer realizes them with the gradients,
# so the forward pass both need runs once (and the loss is the one the gradients came from, as in PyTorch). By id,
# as _grad_leaves: a WeakSet compares a tensor added twice (backward() called again) with ==, elementwise
_backward_roots: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


class _GradMode(threading.local):
  """Per thread, as in PyTorch (one thread's no_grad block must not change what another thread's graphs record):
  `enabled` is False inside `with Tensor.no_grad():` (results don't require grad; in-place updates of parameters
  are allowed); `saved` holds the modes the no_grad blocks entered on this thread will restore."""
  def __init__(self): self.enabled, self.saved = True, []


_grad_mode = _GradMode()
_uop_of = operator.attrgetter("uop")  # a tensor's node, without a Python frame (map over operands)


def _const_tensor(uop: UOp, device: str) -> Tensor:
  """A tensor over a node that reads no buffer (a constant), made without Tensor.__init__'s checks; not tracked
  for program order, as it can't read a buffer a write overwrites."""
  out = Tensor.__new__(Tensor)
  out._uop, out.device, out.grad, out._requires_grad = uop, device, None, None
  return out


class Tensor(TensorOps):  # (the op families: teeny/ops/mixins.py)
  """A lazily computed n-dimensional array on a device.

  Storage and views, as in PyTorch: a tensor either owns its storage (a base) or is a view of a base, made by the
  movement ops that PyTorch makes views with (reshape, permute, expand, shrink and basic indexing, detach). A view
  records the chain of those ops from its base and rebuilds its node from the base's current one whenever the
  base changed (its _version moved), so a write through any view, or to the base, is seen by all of them."""
  training = False
  __array_priority__ = 1000  # np.ones(3) + t: numpy leaves the operator to Tensor.__radd__ (a Tensor, like torch)
  _graph: UOp | None = None  # for a realized tensor that requires grad: the graph that computed it
  _leaf = False              # requires_grad was set on this tensor by the user (a parameter)
  _keeps_graph = False       # a gradient() result: keeps its graph when realized, like one that requires grad
  _earlier_nodes: tuple = ()  # a leaf: weak refs to the nodes it was, which graphs built then hold (see _gradient_nodes)
  _base: Tensor | None = None  # the tensor whose storage this one is a view of (None: this one owns it)
  _view_ops: tuple = ()        # a view's movement ops from its base: ((Ops, arg), ...)
  _version = 0                 # a base's count of changes of its node: views compare it with _seen
  _seen = 0                    # a view: the base's _version its node was built from
  _born = 0                    # a view: the base's _version when it was made
  _constant_to_views_until = -1  # a base: views born at or before this _version took it as a constant (requires_grad)
  __hash__ = object.__hash__  # == builds a comparison tensor, so hash by identity
  _constant = staticmethod(_const_tensor)  # how the mixins in teeny/ops/ make a tensor over a constant node

  def __init__(self, data, device: str | None = None, dtype: DType | str | None = None, requires_grad: bool | None = None):
    dtype = to_dtype(dtype) if dtype is not None else None
    # (Tensor(t) stays on t's device, as torch.tensor(t) and torch.as_tensor(t) do: an alias of t, not a copy)
    self.device = canonical_device(device) if device is not None else (data.device if isinstance(data, Tensor) else Device.DEFAULT)
    self._requires_grad, self.grad = None, None
    if isinstance(data, UOp):
      if data.op is Ops.DEFINE_VAR: raise ValueError(f"Variable {data.arg[0]!r} is not bound: use Variable(...).bind(value)")
      data = for_tensor(data)  # (a number over Variables: checked, its // and % rounding down)
      self.uop = data if dtype is None else data.cast(dtype)
    elif isinstance(data, Tensor) and data.device == self.device and dtype in (None, data.dtype):
      self._alias(data)  # Tensor(t) is another view of t's storage
    elif isinstance(data, Tensor):
      moved = data if data.device == self.device else data.to(self.device)
      self.uop = moved.uop if dtype is None else moved.uop.cast(dtype)
    elif isinstance(data, (bool, int, float, np.generic)) and not isinstance(data, np.ndarray):
      value = data.item() if isinstance(data, np.generic) else data
      dt = dtype or (dtypes.from_np(data.dtype) if isinstance(data, np.generic) else dtypes.from_py(value))
      if dtype is not None: check_fits(value, dt)  # (a numpy scalar too: torch.tensor reads it as a number)
      self.uop = UOp.const(dt, value)
    elif type(self.device) is tuple:  # host data on several devices: a copy on each
      self.uop = multi.multi((_from_host(data, dtype, d) for d in self.device), self.device, None)
    else:
      self.uop = _from_host(data, dtype, self.device)
    check_dtype(self.device, self._uop.dtype)  # float64 on a device without it: refused here, not at realize
    if requires_grad is not None: self._set_requires_grad(requires_grad, constant_before=False)  # (no graph used it yet)

  # ---- basic facts ----
  # (read from _uop, even a view's that its base has since changed: a view's shape and dtype never change)
  @property
  def shape(self) -> tuple[int, ...]:
    """The size of each dimension, a plain tuple of ints (torch's is a torch.Size)."""
    return self._uop.shape
  @property
  def dtype(self) -> DType:
    """The element type, a teeny DType (dtypes.float32, ...)."""
    return self._uop.dtype
  @property
  def ndim(self) -> int:
    """The number of dimensions (0 for a scalar tensor)."""
    return len(self.shape)
  lazydata = property(lambda self: self.uop, doc="tinygrad's older name for uop: the graph node of this tensor's value.")
  def numel(self) -> int:
    """The number of elements: the product of the shape (1 for a 0-d tensor)."""
    return math.prod(self.shape)
  def size(self, dim: int | None = None):
    """The shape (a tuple), or the size of dimension dim (negative counts from the end), like torch's .size()."""
    return self.shape if dim is None else self.shape[_canon_axis(dim, self.ndim)]
  def __len__(self):
    if not self.shape: raise TypeError("len() of a 0-d tensor")
    return self.shape[0]
  def __repr__(self): return f"<Tensor {self.shape} {self.dtype} on {self.device}>"
  def __bool__(self):
    if self.numel() != 1: raise RuntimeError(f"the truth value of a tensor with {self.numel()} elements is ambiguous")
    return bool(self.item())
  def _new(self, uop: UOp, *others: Tensor) -> Tensor:
    """A result computed from self (and others): it requires grad if any of them does, like PyTorch (and grad
    mode is on). Under no_grad it passes no gradient back to them either, later uses included (a DETACH)."""
    out = Tensor.__new__(Tensor)
    out.device, out.grad, out._requires_grad = self.device, None, None
    for t in (self, *others):  # a loop, not any(...): no generator made for every op
      if t._requires_grad:
        if _grad_mode.enabled: out._requires_grad = True
        else: uop = UOp(Ops.DETACH, uop.dtype, (uop,))
        break
    out._uop = uop
    program_order.track(out)
    return out

  # ---- the node, storage and views ----
  @property
  def uop(self) -> UOp:
    """The graph node of this tensor's value. A view's node is rebuilt from its base's when the base changed."""
    base = self._base
    if base is None or self._seen == base._version: return self._uop
    node = base._uop
    if self._born <= base._constant_to_views_until and not self._requires_grad and self._view_ops[0][0] is not Ops.DETACH:
      node = UOp(Ops.DETACH, node.dtype, (node,))  # made while the base was a constant: it stays one (see requires_grad)
    for op, arg in self._view_ops: node = writes._view_node(op, arg, node)
    self._uop, self._seen = node, base._version
    return node
  @uop.setter
  def uop(self, node: UOp):
    self._uop = node
    if self._base is None: self._version += 1  # the views of this tensor rebuild their nodes from it
    else: self._seen = self._base._version
    if not is_buffer_view(node): program_order.track(self)

  def _view(self, op: Ops, arg) -> Tensor:
    """A view of this tensor's storage through one more movement op (see the class docstring); under no_grad a
    view of its detach(), so no gradient flows back through it."""
    if self._requires_grad and not _grad_mode.enabled and op is not Ops.DETACH: return self.detach()._view(op, arg)
    out = Tensor.__new__(Tensor)
    out._uop, out.device, out.grad = writes._view_node(op, arg, self.uop), self.device, None
    out._requires_grad = self._requires_grad if _grad_mode.enabled else None
    base = self._base
    if base is None: out._base, out._view_ops = self, ((op, arg),)
    else: out._base, out._view_ops = base, self._view_ops + ((op, arg),)
    out._seen = out._born = out._base._version
    return out

  def _alias(self, other: Tensor):
    """Make this (new) tensor another view of other's storage, with other's shape."""
    base = other._base if other._base is not None else other
    self._base, self._view_ops, self._uop, self._seen = base, other._view_ops, other.uop, base._version
    self._born = other._born if other._base is not None else base._version
    self._requires_grad = other._requires_grad

  def _own(self) -> Tensor:
    """This tensor as a base of its own: a result that PyTorch would copy (pad, repeat, flip, ...) must not write
    through to the storage it was computed from, nor follow later writes to it."""
    if self._base is None: return self
    out = Tensor.__new__(Tensor)
    out._uop, out.device, out.grad, out._requires_grad = self.uop, self.device, None, self._requires_grad
    program_order.track(out)
    return out

  # ---- autograd ----
  @property
  def requires_grad(self) -> bool | None:
    """Whether gradients flow to this tensor: None while unset (torch's False), True or False. Set by the user on
    leaves (parameters): backward() fills their .grad. Results inherit it from inputs. Setting it to True on any
    float tensor, lazy or realized, makes that tensor a leaf of its own; on another dtype it raises. A result
    that is not a float (x > 0, argmax) reports False, as in PyTorch: no gradient flows through it. A float made
    from one reports True ((x > 0).float(); PyTorch: False), as x.sign(), built the same way, must (gradient 0)."""
    if self._requires_grad and not dtypes.is_float(self.dtype): return False
    return self._requires_grad
  @requires_grad.setter
  def requires_grad(self, value: bool | None): self._set_requires_grad(value, constant_before=True)
  def _set_requires_grad(self, value: bool | None, constant_before: bool):
    """constant_before: whether graphs built from this tensor so far take it as a constant (the user's setter,
    as PyTorch), or pass it gradient (an optimizer's parameters: a PyTorch parameter requires grad from the start;
    and a tensor being made, which no graph has used)."""
    if value and not dtypes.is_float(self.dtype):
      raise RuntimeError(f"only float tensors can require gradients, this one is {self.dtype}")
    already_leaf = self._leaf and self._requires_grad
    was_constant = not self._requires_grad
    self._requires_grad = value
    if not value or already_leaf: return  # a second requires_grad_() must not make a new node graphs don't hold
    self._leaf = True
    if self._base is not None:  # a leaf of its own: it stops being a view (its gradient is its alone)
      self._uop, self._base, self._view_ops = self.uop, None, ()
    realized = is_realized(self.uop)
    if was_constant and constant_before:
      # graphs built from it so far took it as a constant, as in PyTorch: its views made so far rebuild their
      # nodes from a DETACH of it (see the uop property); realized, the lazy graphs that read its buffer are
      # realized and the kept ones read it through a DETACH (made lazily, they hold its old node: constants)
      self._constant_to_views_until = self._version
      if realized: constant_in_graphs_built_before(self)
    if realized: self._version += 1  # (its views rebuild their nodes)
    else:
      # equal lazy graphs are one node (hash-consing): a leaf must be its own node, or gradients meant for
      # another tensor that happens to be equal (the constant 2.0 in x * 2) would land on it
      self.uop = UOp(Ops.CONTIGUOUS, self.dtype, (self.uop,), ("leaf", next(unique_ids)))
      # graphs built from it before it is realized hold this node, not the buffer: it is the leaf there too.
      # A weak reference: once no graph holds it, neither it nor the buffers under it are kept alive for this
      self._earlier_nodes = (weakref.ref(self.uop),)
    _grad_leaves[id(self)] = self

  def requires_grad_(self, value: bool = True) -> Tensor:
    """Set requires_grad (True by default) and return self, like torch's requires_grad_."""
    self.requires_grad = value
    return self

  def gradient(self, *targets: Tensor, gradient: Tensor | None = None) -> list[Tensor]:
    """Lazy gradients of this tensor with respect to `targets` (without touching their .grad), like tinygrad's
    gradient: any float tensors in the graph, whether they require grad or not; zeros for one not in it. The
    results are graphs themselves (like torch.autograd.grad with create_graph=True): gradient() or backward()
    of them gives second derivatives."""
    seed = self._seed_gradient(gradient)
    graphs = _realized_graphs()
    nodes_of = [_gradient_nodes(t, graphs) for t in targets]
    root = restore_graphs(self.uop, graphs, keep={n for nodes in nodes_of for n in nodes})  # (found by identity)
    program_order.check_not_stale(root)
    grads = compute_gradient(root, seed.uop, {n for nodes in nodes_of for n in nodes})
    out = []
    for t, nodes in zip(targets, nodes_of):
      found = [grads[n] for n in nodes if n in grads]
      if not found:
        out.append(t.zeros_like(dtype=t.dtype))
        continue
      g = functools.reduce(lambda a, b: a.alu(Ops.ADD, b), found)
      result = Tensor(g.cast(t.dtype), device=t.device)  # (a lazy tensor: tracked, see teeny/program_order.py)
      result._requires_grad = True if self._requires_grad or t._requires_grad else None
      result._keeps_graph = True  # (realized, e.g. printed, it can still be differentiated again: not zeros)
      out.append(result)
    return out

  def backward(self, gradient: Tensor | None = None) -> Tensor:
    """Add d(self)/d(leaf) to .grad of every leaf with requires_grad=True in this graph. Lazy: realize the
    grads (or let an optimizer step do it) to run the kernels. The .grad tensors are plain values (PyTorch's
    create_graph=False); use gradient() for gradients to differentiate again."""
    gradient = self._seed_gradient(gradient)  # (PyTorch's errors first: a non-scalar needs a gradient)
    graphs = _realized_graphs()
    candidates = [(t, _gradient_nodes(t, graphs)) for t in snapshot(_grad_leaves.values) if t._requires_grad]
    root = restore_graphs(self.uop, graphs, keep={n for _, nodes in candidates for n in nodes})
    program_order.check_not_stale(root)
    in_graph = set(root.toposort())
    leaves = [t for t, nodes in candidates if any(n in in_graph for n in nodes)]
    if not leaves and self._requires_grad: return self  # its leaves are gone: nobody can read their gradients
    if not leaves: raise RuntimeError("backward(): no tensor with requires_grad=True is used to compute this one")
    for leaf, g in zip(leaves, self.gradient(*leaves, gradient=gradient)):
      g = g.detach()
      leaf.grad = g if leaf.grad is None else program_order.accumulated(leaf.grad, g)
    _backward_roots[id(self)] = self
    return self

  @staticmethod
  def take_backward_roots() -> list[Tensor]:
    """The tensors backward() was called on since the last call (alive ones): what an optimizer realizes together
    with the gradients."""
    roots = snapshot(_backward_roots.values)
    _backward_roots.clear()
    return roots

  def _seed_gradient(self, gradient: Tensor | None) -> Tensor:
    if not dtypes.is_float(self.dtype): raise RuntimeError(f"only float tensors have gradients, this one is {self.dtype}")
    if gradient is None:
      if self.numel() != 1:
        raise RuntimeError(f"backward() of a tensor of shape {self.shape} needs an explicit gradient of that shape")
      return Tensor.ones(self.shape, dtype=self.dtype, device=self.device)
    if gradient.shape != self.shape: raise ArgumentError(f"gradient of shape {gradient.shape} for a tensor of shape {self.shape}")
    if type(self.device) is tuple and gradient.device != self.device:  # laid out on the devices as self is
      gradient = gradient.shard(self.device, multi.layout(self.uop, self.device))
    return gradient.cast(self.dtype)

  @staticmethod
  @contextlib.contextmanager
  def train(mode: bool = True):
    """`with Tensor.train():` turns on training behaviour (dropout, batchnorm statistics) inside the block."""
    previous, Tensor.training = Tensor.training, mode
    try: yield
    finally: Tensor.training = previous

  # ---- realizing and reading ----
  def realize(self, *others: Tensor) -> Tensor:
    """Run the kernels that compute this tensor (and others) now. A view realizes the tensor it is a view of (a
    write pending on it runs) and stays a view: realizing never copies a view's elements out."""
    if others: Tensor.realize_all(self, *others)
    elif self._base is not None or not is_realized(self._uop): realize_tensors((self,))  # the common case: no set-up
    return self
  @staticmethod
  def realize_all(*tensors: Tensor, before_writing: tuple[Tensor, ...] = ()):
    """Realize the tensors together, in one schedule (Tensor.realize_all(a, b)); realized ones are skipped. With
    before_writing (what the caller overwrites next: an optimizer's parameters), the live lazy tensors that read
    those (the logits) join this schedule, instead of being computed again just before the writes."""
    todo = tuple({id(t): t for t in tensors if not is_realized(t.uop)}.values())  # a tensor named twice is realized once
    if todo or before_writing: realize_tensors(todo, before_writing)
  def numpy(self) -> np.ndarray:
    """The values as a new numpy array (this runs the kernels they need); bfloat16 and fp8 come as float32."""
    if self.dtype in STORAGE_FLOATS: return self.float().numpy()  # numpy has no bfloat16/fp8: float32, like tinygrad
    if 0 in self.shape: return np.zeros(self.shape, dtype=self.dtype.np)
    if type(self.device) is tuple: return self._gather_numpy()
    self.realize()
    return read_tensor(self).reshape(self.shape)
  def item(self) -> Scalar:
    """The value of a one-element tensor as a Python scalar, like torch's .item(); other sizes raise ValueError."""
    if self.numel() != 1: raise ArgumentError(f"item() needs a tensor with one element, this one has shape {self.shape}")
    return self.numpy().reshape(()).item()
  def tolist(self):
    """The values as nested Python lists (a scalar for a 0-d tensor), like torch's .tolist()."""
    return self.numpy().tolist()
  def data(self) -> memoryview:
    """The values as a memoryview of a host copy, like tinygrad's .data() (torch's .data is a tensor instead)."""
    return memoryview(self.numpy())
  def _to_device(self, device: str) -> Tensor:
    """A copy on another device (self on the same one); on a tuple of devices, a copy on each (ops/sharding.py).
    Tensor.to is ops/pytorch.py's."""
    device = canonical_device(device)
    if type(device) is tuple: return self._to_devices(device)  # (sharded over them already: replicated)
    if device == self.device: return self
    check_dtype(device, self.dtype)
    out = self._new(UOp(Ops.COPY, self.dtype, (self.contiguous().uop,), (self.device, device)))  # (sharded: gathered)
    out.device = device
    # a realized replicated tensor's copy on one of its devices would be that device's replica itself, a buffer a
    # later in-place write to self changes: a copy of its own
    if self.uop.op is Ops.MULTI and device in self.device and is_realized(self.uop): out = out.clone()
    return out
  def contiguous(self) -> Tensor:
    """Self for a tensor of its own, as PyTorch's (a lazy one becomes a kernel boundary in place); a view's: a copy."""
    if self._base is not None or (self._leaf and self._requires_grad): return self._new(UOp(Ops.CONTIGUOUS, self.dtype, (self.uop,)))
    if not is_realized(self._uop) and self._uop.op not in (Ops.ASSIGN, Ops.CONTIGUOUS): self.uop = UOp(Ops.CONTIGUOUS, self.dtype, (self.uop,))
    return self
  def detach(self) -> Tensor:
    """A view of the same storage that no gradient flows through (like torch's detach, it sees writes to self)."""
    out = self._view(Ops.DETACH, None)
    out._requires_grad = None
    return out
  def clone(self) -> Tensor:
    """A copy in a buffer of its own (tagged so it is never merged with an equal graph or with its source):
    assigning into the clone leaves the original alone."""
    return self._new(UOp(Ops.CONTIGUOUS, self.dtype, (self.uop,), ("clone", next(unique_ids))))

  # ---- grad mode, and PyTorch's rule on in-place changes (the writes themselves: teeny/ops/writes.py) ----
  def _check_inplace(self):
    """PyTorch's rule: a leaf that requires grad (a parameter), or a view of one, can't be changed in place while
    grad mode is on; its gradient would be of a value it no longer has."""
    if not (_grad_mode.enabled and self._requires_grad): return
    base = self if self._base is None else self._base
    if base._leaf:
      what = "a view of a leaf tensor" if base is not self else "a leaf tensor"
      raise RuntimeError(f"{what} that requires grad (shape {base.shape}) is being changed in place; update it "
                         "under `with Tensor.no_grad():` (as optimizers do), or with assign()")
  @staticmethod
  def no_grad():
    """`with Tensor.no_grad():` or `@Tensor.no_grad()`: results computed inside don't require grad, and
    parameters may be changed in place, like torch.no_grad."""
    return _NoGrad()

  # ---- type changes ----
  def cast(self, dtype) -> Tensor:
    """The values converted to dtype (a DType, numpy dtype or name like "half"), like torch's .to(dtype)."""
    dtype = to_dtype(dtype)
    if dtype == self.dtype: return self
    check_dtype(self.device, dtype)
    return self._new(self.uop.cast(dtype))
  def bitcast(self, dtype) -> Tensor:
    """The same bits read as dtype (torch's .view(dtype), tinygrad's bitcast): a view when the item sizes are the
    same; else the last axis resizes and the result is a tensor of its own (ops/pytorch.py)."""
    dtype = to_dtype(dtype)
    check_dtype(self.device, dtype)
    if dtype.itemsize != self.dtype.itemsize: return self._bitcast_resized(dtype)
    return self if dtype == self.dtype else self._view(Ops.BITCAST, dtype)  # a view: writes reach self, as torch's
  # ---- movement (free: views) ----
  def reshape(self, *shape) -> Tensor:
    """A view in a new shape (sizes or one tuple; one -1 inferred; None: axis i's size), like torch's, never a copy."""
    shape = _shape_arg(shape, keep=self.shape)
    if sum(1 for s in shape if s == -1) > 1: raise ArgumentError(f"reshape to {shape}: only one dimension can be -1")
    if any(s < -1 for s in shape): raise ArgumentError(f"reshape to {shape}: sizes must be ints >= -1")
    if -1 in shape:
      known = math.prod(s for s in shape if s != -1)
      if known == 0 or self.numel() % known: raise ArgumentError(f"cannot reshape tensor of shape {self.shape} into {shape}")
      shape = tuple(self.numel() // known if s == -1 else s for s in shape)
    if math.prod(shape) != self.numel(): raise ArgumentError(f"cannot reshape tensor of shape {self.shape} into {shape}")
    return self if shape == self.shape else self._view(Ops.RESHAPE, shape)
  def view(self, *shape) -> Tensor:
    """reshape, by torch's name .view(shape); .view(dtype) is bitcast, as in torch."""
    return self.bitcast(shape[0]) if len(shape) == 1 and isinstance(shape[0], (DType, str)) else self.reshape(*shape)
  def permute(self, *order) -> Tensor:
    """A view with the axes in the given order (ints or one tuple; negative ones count from the end), like torch's."""
    order = _shape_arg(order)
    if len(order) != self.ndim or sorted(_canon_axis(o, self.ndim) for o in order) != list(range(self.ndim)):
      raise ArgumentError(f"permute order {order} is not a permutation of the {self.ndim} axes of shape {self.shape}")
    order = tuple(_canon_axis(o, self.ndim) for o in order)
    return self if order == tuple(range(self.ndim)) else self._view(Ops.PERMUTE, order)
  def transpose(self, dim0: int = 1, dim1: int = 0) -> Tensor:
    """A view with axes dim0 and dim1 swapped, like torch.transpose; by default the first two (tinygrad's)."""
    a, b = _canon_axis(dim0, self.ndim), _canon_axis(dim1, self.ndim)
    if self.ndim == 0: return self.permute(())  # dims 0 and -1 name a 0-d tensor's single "axis", as in torch
    order = list(range(self.ndim))
    order[a], order[b] = order[b], order[a]
    return self.permute(order)
  @property
  def T(self) -> Tensor:
    """A view with all the axes in reverse order (a matrix transposed), like torch's .T."""
    return self.permute(tuple(reversed(range(self.ndim))))
  def expand(self, *shape) -> Tensor:
    """A view with size-1 axes broadcast to shape (-1 keeps a size; new axes go in front), like torch's expand."""
    shape = _shape_arg(shape)
    if len(shape) < self.ndim: raise ArgumentError(f"expand to {shape}: fewer dimensions than the tensor's shape {self.shape}")
    src = (1,) * (len(shape) - self.ndim) + self.shape
    shape = tuple(s if n == -1 else n for s, n in zip(src, shape))
    for s, n in zip(src, shape):
      if (s != n and s != 1) or n < 0: raise ArgumentError(f"can't expand shape {self.shape} to {shape}")
    x = self.reshape(src) if src != self.shape else self
    return x if shape == x.shape else x._view(Ops.EXPAND, shape)
  def pad(self, padding, mode: str = "constant", value: Scalar = 0.0) -> Tensor:
    """padding: ((before, after), ...) per axis (None for none), or PyTorch's flat (last_before, last_after, ...).
    mode: "constant" (value), or "reflect", "replicate", "circular" like torch.nn.functional.pad (ops/join.py)."""
    padding = _pad_pairs(padding, self.ndim)  # (sizes checked: a float made a shape of floats)
    if len(padding) != self.ndim: raise ArgumentError(f"padding {padding} needs one pair per axis of shape {self.shape}")
    if mode != "constant": return self._copy_result(self._pad_from_edges(padding, mode))
    if any(b < 0 or a < 0 for b, a in padding):  # negative padding crops, like PyTorch
      crop = tuple((max(-b, 0), s - max(-a, 0)) for (b, a), s in zip(padding, self.shape))
      return self.shrink(crop).pad(tuple((max(b, 0), max(a, 0)) for b, a in padding), value=value)
    if all(p == (0, 0) for p in padding): return self._copy_result(self)
    out = self._new(UOp(Ops.PAD, self.dtype, (self.uop,), padding))
    if value == 0 and not (isinstance(value, float) and math.copysign(1.0, value) < 0): return out  # (-0.0 pads -0.0)
    inside = Tensor.ones(self.shape, dtype=dtypes.bool, device=self.device).pad(padding)  # True where the data is
    return inside.where(out, Tensor.full((), value, dtype=self.dtype, device=self.device))
  def shrink(self, arg) -> Tensor:
    """A view of the window arg: a (start, end) per axis, None for all of it (tinygrad's shrink; slicing is [])."""
    arg = tuple(arg)  # (its length checked before zip() could drop the extra pairs)
    if len(arg) != self.ndim: raise ArgumentError(f"shrink {arg} needs one (start, end) per axis of shape {self.shape}")
    arg = tuple((0, s) if a is None else tuple(a) for a, s in zip(arg, self.shape))
    if any(is_symbolic(x) for a in arg for x in a): return self[tuple(slice(b, e) for b, e in arg)]  # (ops/variables.py)
    arg = tuple((_size_arg(b, "shrink's start"), _size_arg(e, "shrink's end")) for b, e in arg)  # (a float made a float size)
    if any(not 0 <= b <= e <= s for (b, e), s in zip(arg, self.shape)): raise ArgumentError(f"shrink {arg} is out of bounds for shape {self.shape}")
    if all(a == (0, s) for a, s in zip(arg, self.shape)): return self
    return self._view(Ops.SHRINK, arg)
  def flip(self, axis=None, *more_axes) -> Tensor:
    """The elements in reverse order along the axes (all by default; x.flip(0, 1) as x.flip((0, 1))). A new tensor,
    like torch.flip; x[::-1] is a view of x instead, like numpy."""
    if more_axes: axis = (axis, *more_axes)
    axes = _canon_axes(tuple(range(self.ndim)) if axis is None else axis, self.ndim, "flip")
    axes = tuple(sorted(a for a in axes if self.ndim and self.shape[a] > 1))  # (a 0-d tensor takes axis 0 or -1)
    return self._copy_result(self) if not axes else self._new(UOp(Ops.FLIP, self.dtype, (self.uop,), axes))
  def squeeze(self, dim=None) -> Tensor:
    """A view without the size-1 axes (all, or those among dim: an int or a tuple), like torch.squeeze."""
    if dim is None: return self.reshape(tuple(s for s in self.shape if s != 1))
    dims = _canon_axes(dim, self.ndim, "squeeze")
    return self.reshape(tuple(s for i, s in enumerate(self.shape) if not (i in dims and s == 1)))
  def unsqueeze(self, dim: int) -> Tensor:
    """A view with a new size-1 axis at dim (negative counts from the end of the result), like torch.unsqueeze."""
    d = _canon_axis(dim, self.ndim + 1)
    return self.reshape(self.shape[:d] + (1,) + self.shape[d:])
  def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """A view with axes start_dim to end_dim (included) merged into one, like torch.flatten; 0-d gives shape (1,)."""
    a, b = _canon_axis(start_dim, self.ndim), _canon_axis(end_dim, self.ndim)  # (0-d: 0 and -1 name its one "axis")
    if a > b: raise ArgumentError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    if self.ndim == 0: return self.reshape(1)
    return self.reshape(self.shape[:a] + (math.prod(self.shape[a:b + 1]),) + self.shape[b + 1:])

  # ---- binary ops (unary math is teeny/ops/elementwise.py) ----
  def _binop_operands(self, other, reverse=False) -> tuple[Tensor, Tensor]:
    """Promote dtypes like PyTorch and broadcast like numpy; scalars become constants."""
    if isinstance(other, Tensor):
      if other.device != self.device:
        raise RuntimeError(f"tensors are on different devices: {self.device} and {other.device}")
      dt = promote_operands(self.dtype, self.ndim, other.dtype, other.ndim)
      a, b = self.cast(dt), other.cast(dt)
    elif isinstance(other, (int, float, bool, np.generic)):
      # the common `x * 2`: the constant is made at x's shape at once (one cached node, no broadcasting)
      value = other.item() if isinstance(other, np.generic) else other
      dt = promote_scalar(self._uop.dtype, value)  # (_uop: a view's dtype and shape are its base's, always)
      a = self if dt is self._uop.dtype else self.cast(dt)
      b = _const_tensor(_const_at(dt, value, a._uop.shape), self.device)
      return (b, a) if reverse else (a, b)
    elif isinstance(other, np.ndarray): return self._binop_operands(Tensor(other, device=self.device), reverse)
    elif isinstance(other, UOp):  # an expression over bound Variables (teeny/variable.py): an int number
      return self._binop_operands(Tensor(checked(other), device=self.device).cast(promote_scalar(self.dtype, 0)), reverse)
    else: raise TypeError(f"can't combine a Tensor with {type(other).__name__}")
    if reverse: a, b = b, a
    if a.shape == b.shape: return a, b
    shape = _broadcast_shape(a.shape, b.shape)
    return a.expand(shape), b.expand(shape)

  def _scaled_in_float32(self, other) -> bool:
    """Whether self * other, / and // (other on the right) run in float32 with other unrounded and round once, as
    PyTorch's kernels do for a 16- or 8-bit float tensor and a number its dtype can't hold (a Variable, any
    value: it changes from call to call), or a 0-d tensor of another dtype: x_f16 * 1e-8 is 1e-5 there, not x times the 0 that 1e-8 rounds to; so does a number on the left
    of / (70000 / x_f16 is 35008 for x = 2, not inf). (A number on the left of //, and +, - and comparisons, round
    the number first, as there.)"""
    if self.dtype not in NARROW_FLOATS: return False
    if isinstance(other, np.generic): other = other.item()
    if isinstance(other, (int, float)) and not isinstance(other, bool): return not holds_exactly(self.dtype, float(other))
    return isinstance(other, UOp) or (isinstance(other, Tensor) and other.ndim == 0 < self.ndim and other.dtype not in (self.dtype, dtypes.bool))

  def _alu(self, op: Ops, *srcs: Tensor) -> Tensor:
    return self._new(self.uop.alu(op, *map(_uop_of, srcs)), *srcs)

  def add(self, other, reverse=False) -> Tensor:
    """self + other (other + self if reverse), broadcast like numpy and promoted like PyTorch (a Python scalar
    keeps self's dtype unless it is a float and self is not); bool + bool is logical or, as in PyTorch."""
    a, b = self._binop_operands(other, reverse)
    return a._alu(Ops.OR if a.uop.dtype is dtypes.bool else Ops.ADD, b)
  def sub(self, other, reverse=False) -> Tensor:
    """self - other (other - self if reverse), broadcast and promoted like add; bool tensors raise TypeError."""
    a, b = self._binop_operands(other, reverse)
    if a.dtype == dtypes.bool: raise TypeError("subtraction of bool tensors is not supported; use logical_xor or ^")
    return a._alu(Ops.ADD, b._alu(Ops.NEG))
  def mul(self, other, reverse=False) -> Tensor:
    """self * other (other * self if reverse), broadcast and promoted like add; bool * bool is logical and."""
    if self._scaled_in_float32(other): return self.float().mul(other, reverse).cast(self.dtype)
    a, b = self._binop_operands(other, reverse)
    return a._alu(Ops.AND if a.dtype == dtypes.bool else Ops.MUL, b)
  def div(self, other, reverse=False, rounding_mode: str | None = None) -> Tensor:
    """True division (ints become floats), or rounding_mode 'trunc' / 'floor' like torch.div."""
    if rounding_mode not in (None, "trunc", "floor"): raise ArgumentError(f"rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
    if rounding_mode == "floor": return self.floordiv(other, reverse)
    if (not reverse or rounding_mode is None) and self._scaled_in_float32(other): return self.float().div(other, reverse, rounding_mode).cast(self.dtype)
    if rounding_mode == "trunc":
      a, b = self._binop_operands(other, reverse)
      return a._int_div(b) if not dtypes.is_float(a.dtype) else (a / b).trunc()
    if not (isinstance(other, Tensor) and (dtypes.is_float(self.dtype) or dtypes.is_float(other.dtype))):
      # ints divide as floats of their own values: -1 is not 255, and uint8 over a 0-d int16 300 is not over 44
      self, other = self._float(), other._float() if isinstance(other, Tensor) else other
    a, b = self._binop_operands(other, reverse)
    return a._alu(Ops.FDIV, b)  # correctly rounded (a * (1 / b) rounds twice: 41 / 41 would be 0.99999994)
  def neg(self) -> Tensor:
    """-self; a bool tensor raises TypeError (use logical_not), as in PyTorch."""
    if self.dtype == dtypes.bool: raise TypeError("negation of a bool tensor is not supported; use logical_not")
    return self._alu(Ops.NEG)
  def maximum(self, other) -> Tensor:
    """The larger of self and other at each element (broadcast and promoted like add), like torch.maximum."""
    a, b = self._binop_operands(other)
    return a._alu(Ops.MAX, b)
  def minimum(self, other) -> Tensor:
    """The smaller of self and other at each element (broadcast and promoted like add), like torch.minimum."""
    a, b = self._binop_operands(other)
    if dtypes.is_float(a.dtype): return a._alu(Ops.NEG)._alu(Ops.MAX, b._alu(Ops.NEG))._alu(Ops.NEG)
    return (a < b).where(a, b)
  # comparisons give bool tensors
  def _cmp(self, op: Ops, other, reverse=False) -> Tensor:
    a, b = self._binop_operands(other, reverse)
    return a._alu(op, b)
  def __lt__(self, x) -> Tensor: return self._cmp(Ops.CMPLT, x)
  def __gt__(self, x) -> Tensor: return self._cmp(Ops.CMPLT, x, reverse=True)
  def __ne__(self, x) -> Tensor: return self._cmp(Ops.CMPNE, x)  # type: ignore[override]
  def __eq__(self, x) -> Tensor: return self._cmp(Ops.CMPNE, x).logical_not()  # type: ignore[override]
  def __le__(self, x) -> Tensor:
    a, b = self._binop_operands(x)
    return a._alu(Ops.CMPLT, b) | (a == b)  # not (b < a) would be true for NaN
  def __ge__(self, x) -> Tensor:
    a, b = self._binop_operands(x)
    return b._alu(Ops.CMPLT, a) | (a == b)
  def eq(self, x) -> Tensor:
    """self == x at each element, a bool tensor (broadcast and promoted like add), like torch.eq."""
    return self == x
  def ne(self, x) -> Tensor:
    """self != x at each element, a bool tensor (NaN != NaN is True), like torch.ne."""
    return self != x
  def lt(self, x) -> Tensor:
    """self < x at each element, a bool tensor, like torch.lt."""
    return self < x
  def le(self, x) -> Tensor:
    """self <= x at each element, a bool tensor (False where either is NaN), like torch.le."""
    return self <= x
  def gt(self, x) -> Tensor:
    """self > x at each element, a bool tensor, like torch.gt."""
    return self > x
  def ge(self, x) -> Tensor:
    """self >= x at each element, a bool tensor (False where either is NaN), like torch.ge."""
    return self >= x

  # logic and bits
  def logical_not(self) -> Tensor:
    """A bool tensor, True where self is zero (False), like torch.logical_not."""
    return self.cast(dtypes.bool)._cmp(Ops.CMPNE, True)
  def _bitop(self, op: Ops, other, reverse=False) -> Tensor:
    a, b = self._binop_operands(other, reverse)
    if dtypes.is_float(a.dtype): raise TypeError(f"bitwise {op.name.lower()} needs int or bool tensors, got {a.dtype}")
    return a._alu(op, b)
  def __and__(self, x) -> Tensor: return self._bitop(Ops.AND, x)
  def __or__(self, x) -> Tensor: return self._bitop(Ops.OR, x)
  def __xor__(self, x) -> Tensor: return self._bitop(Ops.XOR, x)
  def __rand__(self, x) -> Tensor: return self._bitop(Ops.AND, x, True)
  def __ror__(self, x) -> Tensor: return self._bitop(Ops.OR, x, True)
  def __rxor__(self, x) -> Tensor: return self._bitop(Ops.XOR, x, True)
  def __invert__(self) -> Tensor:
    if self.dtype == dtypes.bool: return self.logical_not()
    return self._bitop(Ops.XOR, -1 if not dtypes.is_unsigned(self.dtype) else dtypes.max(self.dtype))

  # ---- python operators ----
  __add__, __sub__, __mul__, __truediv__ = add, sub, mul, div  # the methods themselves: one Python frame fewer per op
  def __radd__(self, x): return self.add(x, True)
  def __rsub__(self, x): return self.sub(x, True)
  def __rmul__(self, x): return self.mul(x, True)
  def __rtruediv__(self, x): return self.div(x, True)
  def __floordiv__(self, x): return self.floordiv(x)
  def __rfloordiv__(self, x): return self.floordiv(x, True)
  def __mod__(self, x): return self.mod(x)
  def __rmod__(self, x): return self.mod(x, True)
  def __neg__(self): return self.neg()
  def __abs__(self): return self.abs()
  def __lshift__(self, x): return self._bitop(Ops.SHL, x)
  def __rshift__(self, x): return self._bitop(Ops.SHR, x)
  def __rlshift__(self, x): return self._bitop(Ops.SHL, x, True)
  def __rrshift__(self, x): return self._bitop(Ops.SHR, x, True)
  def __matmul__(self, x): return self.matmul(x)


def _gradient_nodes(t: Tensor, graphs: dict[UOp, UOp]) -> tuple[UOp, ...]:
  """The graph nodes that stand for t when differentiating: its node (or, realized, the graph that computed it)
  and, for a leaf, the nodes it was that graphs built then still hold: the lazy node it was made as, and around
  each in-place write into it the buffer before and the write (an SGD step by hand leaves the leaf the leaf)."""
  node = checked_gradient_target(graphs.get(t.uop, t.uop), t.dtype)
  earlier = (ref() for ref in t._earlier_nodes)
  return (node,) + tuple(dict.fromkeys(n for n in earlier if n is not None and n is not node))


# the mixins' gradient rules see their nodes as tensors on the device their graph computes on (one of constants
# alone: the default device)
gradient_rules.as_tensor = lambda node, device: _const_tensor(node, device or Device.DEFAULT)
writes.grad_enabled = lambda: _grad_mode.enabled  # (a write into a detached view checks it)


def _realized_graphs() -> dict[UOp, UOp]:
  """Buffer view -> the graph that computed it, for realized tensors that require grad, and a pending write ->
  the graph of the values it writes (see gradient.restore_graphs and Tensor._graph_after_write)."""
  graphs = dict(snapshot(kept_graphs.items)) | dict(snapshot(written_graphs.items))  # (those of tensors since gone too)
  for t in snapshot(grad_realized.values):
    node = t._uop
    if node.op is Ops.ASSIGN:
      if t._assigned_graph is not None: graphs[node.arg] = t._assigned_graph
      if t._graph is not None: graphs[node.src[0]] = t._graph  # (graphs built before the write hold the old values)
    elif t._graph is not None and is_realized(node): graphs[node] = t._graph  # (a sharded one: a MULTI of views)
  return graphs


def _set_training(value) -> bool:
  """Context(TRAINING=1) (teeny/helpers.py): Tensor.training set, the old value returned."""
  previous, Tensor.training = Tensor.training, bool(value)
  return previous
CONTEXT_FLAGS["TRAINING"] = _set_training


class _NoGrad(contextlib.ContextDecorator):
  """Tensor.no_grad(): grad mode off inside the block (or the decorated function), restored after."""
  # (the saved modes are kept per thread, not on this object: a decorated function may run on two threads at once)
  def __enter__(self):
    _grad_mode.saved.append(_grad_mode.enabled)
    _grad_mode.enabled = False
    return self
  def __exit__(self, *exc):
    _grad_mode.enabled = _grad_mode.saved.pop()
    return False
