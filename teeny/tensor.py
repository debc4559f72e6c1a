"""Tensor: the user API. Every method builds UOps and returns at once; nothing runs until data is asked for
(numpy(), item(), tolist(), realize()). Only the primitive ops of DESIGN.md reach the graph: everything else
here (exp, sigmoid, mean, slicing, ...) is composed from them. Bad shapes, dtypes, axes and indices raise at
the call that caused them, before any kernel is built."""
from __future__ import annotations
import contextlib, itertools, math, operator, threading, weakref
from typing import Any, Sequence
import numpy as np
from teeny.dtype import DType, dtypes, promote, promote_scalar, to_dtype
from teeny.uop import UOp, Ops, UPat, PatternMatcher, ALU, normalize_const, exec_alu, _derived
from teeny.runtime.device import Buffer, Device, check_dtype
from teeny.schedule import create_schedule, mark_realized, buffer_of, buffer_view, is_buffer_view, forget_realized, writes_count
from teeny.engine.realize import run_schedule
from teeny.engine.validate import checked
from teeny.helpers import snapshot
from teeny.gradient import compute_gradient, restore_graphs, custom_gradients
from teeny.view import ShapeTracker
from teeny import program_order

Scalar = int | float | bool
_grad_leaves: weakref.WeakSet = weakref.WeakSet()  # tensors the user marked requires_grad=True
# tensors backward() was called on and that may still be lazy: an optimizer realizes them with the gradients,
# so the forward pass both need runs once (and the loss is the one the gradients came from, as in PyTorch)
_backward_roots: weakref.WeakSet = weakref.WeakSet()
# realized tensors that require grad (they keep their graph), by id: a WeakSet would compare tensors with ==, which is lazy
_grad_realized: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_leaf_ids = itertools.count()


class _GradMode(threading.local):
  """Per thread, as in PyTorch (one thread's no_grad block must not change what another thread's graphs record):
  `enabled` is False inside `with Tensor.no_grad():` (results don't require grad; in-place updates of parameters
  are allowed); `saved` holds the modes the no_grad blocks entered on this thread will restore."""
  def __init__(self): self.enabled, self.saved = True, []


_grad_mode = _GradMode()
_rng_lock = threading.Lock()  # held while draws are taken from the generator (see Tensor._take_draws)
# the key buffer of each random draw -> the draw's counter: TinyJit rewrites them on replay
rng_key_buffers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _canon_axis(axis: int, ndim: int) -> int:
  if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool): raise TypeError(f"axis must be an int, got {axis!r}")
  n = max(ndim, 1)
  if not -n <= axis < n: raise IndexError(f"axis {axis} is out of range for a tensor with {ndim} dimensions")
  return int(axis) % n if ndim else 0


# conv2d re-lays its filters out (output channel innermost) when they have at least this many output channels and
# the convolution does at least this many multiply-adds
CONV_RELAYOUT_MIN_COUT, CONV_RELAYOUT_MIN_WORK = 16, 1 << 22
# matmul copies a row-major right operand with few columns (at most this many) and a long inner dimension (at
# least this long) to column-major first, when the product does at least this many multiply-adds
MATMUL_RELAYOUT_MAX_N, MATMUL_RELAYOUT_MIN_K, MATMUL_RELAYOUT_MIN_WORK = 16, 64, 1 << 18


def _wants_reduce_contiguous(a: Tensor, b: Tensor) -> bool:
  """Whether a @ b runs faster with b copied to column-major: x @ w with w of shape (512, 10) (a classifier). The
  kernel's outputs along w's 10 columns are too few to fill a vector, so the optimizer's tile then vectorizes
  along k, which needs both operands contiguous along k; the copy is one small kernel, and the backward pass
  reads the copy too (w.T of the gradient becomes a contiguous read). A b that is a transpose already (x @ w.T)
  is column-major: left as it is."""
  k, n = b.shape[-2], b.shape[-1]
  if n > MATMUL_RELAYOUT_MAX_N or k < MATMUL_RELAYOUT_MIN_K or b.uop.op is Ops.PERMUTE: return False
  return math.prod(a.shape[:-1]) * k * n >= MATMUL_RELAYOUT_MIN_WORK


# A sum of at least SPLIT_MIN_REDUCED elements into at most SPLIT_MAX_OUTPUTS results is done in two kernels
# (Tensor._split_reduce): one output per thread or core would leave the rest of the machine idle. And no float
# accumulator adds more than SPLIT_MAX_CHUNK terms, whatever the number of outputs: a device that adds a sum's
# terms one after another (OpenCL on a CPU: one work-item per partial sum) would otherwise lose them once the
# sum outgrows them (float32 stops growing at 2^24 when adding values below 1). Longer sums add partial sums of
# at most SPLIT_MAX_CHUNK terms, and those the same way (more levels for sums past SPLIT_MAX_CHUNK^2 terms).
SPLIT_MIN_REDUCED, SPLIT_MAX_OUTPUTS, SPLIT_MAX_CHUNK = 1 << 15, 16, 1 << 16


def _reduce_split(x: Tensor, op: Ops, axes: tuple[int, ...]) -> int | None:
  """How many partial results per output a sum should be split into, or None to keep it one kernel. A length
  that no good count divides is padded with zeros (Tensor._split_reduce). Only sums split: a max's gradient
  splits evenly between ties, which two stages would weigh by chunk."""
  if op is not Ops.ADD: return None
  n_reduced = math.prod(x.shape[a] for a in axes)
  bounded = -(-n_reduced // SPLIT_MAX_CHUNK) if dtypes.is_float(x.dtype) else 1  # parts so no partial is too long
  if n_reduced < SPLIT_MIN_REDUCED or x.numel() // max(n_reduced, 1) > SPLIT_MAX_OUTPUTS:
    return bounded if bounded > 1 else None  # many outputs: parallel already, split only what is too long
  split = 256  # a count that divides the length, at least 256 terms each, when there is one (no padding)
  while split > 1 and (n_reduced % split or n_reduced // split < 256): split //= 2
  if split < 8: split = min(256, n_reduced // 256)
  return max(split, bounded)


# A sum over one axis of at least CHUNK_MIN_REDUCED elements, of a broadcast product of at least
# CHUNK_MIN_PRODUCT elements (a big matmul: its inputs are far larger than a core's cache), is done in slices of
# CHUNK_SIZE along that axis (Tensor._chunked_reduce), as many as keep the partial results within CHUNK_MAX_BYTES.
CHUNK_MIN_REDUCED, CHUNK_MIN_PRODUCT, CHUNK_SIZE, CHUNK_MAX_BYTES = 1024, 1 << 29, 128, 256 << 20
# A smaller product (of at least SLICE_MIN_PRODUCT elements) is sliced too when each row of outputs reads more than
# SLICE_MAX_BYTES of it: the reduce axis times the axes inside it, a matmul's whole right-hand matrix. A core works
# through its rows of outputs one after another, and once that matrix outgrows its share of the L2 cache every row
# streams it again from farther away: 256x784 @ 784x512 (1.6 MB) ran at 150 GFLOP/s where 512 columns of 512 (1 MB)
# ran at 245. Slices of at most SLICE_TARGET_BYTES each, the fewest that divide the axis: 208 GFLOP/s there.
SLICE_MIN_PRODUCT, SLICE_MAX_BYTES, SLICE_TARGET_BYTES = 1 << 26, 3 << 19, 1 << 20


def _reduce_chunks(x: Tensor, op: Ops, axes: tuple[int, ...]) -> int | None:
  """How many slices a long sum over a big product is split into, or None (see _reduce_split for why sums only)."""
  if op is not Ops.ADD or x.dtype == dtypes.float16 or len(axes) != 1: return None
  n_reduced = x.shape[axes[0]]
  if n_reduced >= CHUNK_MIN_REDUCED and n_reduced % CHUNK_SIZE == 0 and x.numel() >= CHUNK_MIN_PRODUCT:
    chunks, partial_bytes = n_reduced // CHUNK_SIZE, x.numel() // n_reduced * x.dtype.itemsize
    while chunks > 1 and (chunks * partial_bytes > CHUNK_MAX_BYTES or n_reduced % chunks): chunks //= 2
    return chunks if chunks > 1 else None
  if x.numel() < SLICE_MIN_PRODUCT: return None
  row_bytes = n_reduced * math.prod(x.shape[axes[0] + 1:]) * x.dtype.itemsize  # what one row of outputs reads
  if row_bytes <= SLICE_MAX_BYTES: return None
  chunks = -(-row_bytes // SLICE_TARGET_BYTES)
  while n_reduced % chunks: chunks += 1
  return chunks if chunks <= 16 else None


_const_nodes: dict = {}  # (dtype, shape, value...) -> node; emptied when it reaches _CONST_NODES_MAX
_CONST_NODES_MAX = 4096
_uop_of = operator.attrgetter("uop")  # a tensor's node, without a Python frame (map over operands)


def _const_at(dtype: DType, value, shape: tuple[int, ...]) -> UOp:
  """The graph of a constant seen at `shape` (CONST, reshaped to ones, expanded). Cached: elementwise code makes
  the same few constants over and over, and kept alive here they are built once."""
  sign = math.copysign(1.0, value) if type(value) is float else 0  # -0.0 == 0.0 to a dict, not to a kernel
  key = (dtype, shape, type(value), value, sign)
  node = _const_nodes.get(key)
  if node is None:
    node = UOp.const(dtype, value)
    if shape:
      node = UOp(Ops.EXPAND, dtype, (UOp(Ops.RESHAPE, dtype, (node,), (1,) * len(shape)),), shape)
    if len(_const_nodes) >= _CONST_NODES_MAX: _const_nodes.clear()  # bounded; the ones in use come back at once
    _const_nodes[key] = node
  return node


# ---- reduces of a constant fold to a constant ----
# Tensor.ones(2**40, 2**40).sum() is 2^80 at once: a reduce (sum, max, min, prod) of a tensor whose elements all
# hold one value (a constant seen through movement ops, casts and elementwise ops on such tensors) is that value
# combined with itself n times, computed here in Python. It is a rewrite of the REDUCE_AXIS node that
# Tensor._reduce is about to build, applied there, before the reduce is split into kernels: no kernel loops 2^80
# times (nor could index that many elements). Whether a node holds one value is a fact derived once per node,
# like its shape, so reduces don't walk the graph again and again.
INDEX_MAX = 2**63 - 1  # the most elements 64-bit indices count
_UNIFORM_MOVES = (Ops.RESHAPE, Ops.EXPAND, Ops.PERMUTE, Ops.SHRINK, Ops.FLIP)  # (PAD adds other values)


def _uniform_value(u: UOp):
  """(value,) when every element of u holds that one value, else None."""
  return _derived(u, "uniform", _compute_uniform)


def _compute_uniform(u: UOp):
  op = u.op
  if op is Ops.CONST: return (u.arg,)
  if op in _UNIFORM_MOVES: return u.src[0]._cache["uniform"]
  sources = [s._cache["uniform"] for s in u.src]
  if not u.src or None in sources: return None
  values = [v[0] for v in sources]
  if op is Ops.CAST:
    # float -> int of NaN, inf or values out of range: what the device does, not Python
    if dtypes.is_float(u.src[0].dtype) and dtypes.is_int(u.dtype): return None
    return (normalize_const(values[0], u.dtype),)
  if op in ALU:
    if op in (Ops.IDIV, Ops.MOD) and values[1] == 0: return None  # (as symbolic: left to the device)
    if op in (Ops.SHL, Ops.SHR) and not 0 <= values[1] < u.dtype.itemsize * 8: return None
    return (exec_alu(op, u.dtype, values),)
  if op is Ops.REDUCE_AXIS:
    result = _repeated(u.arg[0], values[0], math.prod(u.src[0].shape[a] for a in u.arg[1]), u.dtype)
    return None if result is None else (normalize_const(result, u.dtype),)
  return None  # buffers, copies, assigns, gradient leaves (CONTIGUOUS), bitcasts


def _repeated(op: Ops, value, n: int, dtype: DType):
  """value combined with itself n times by op (ADD, MUL or MAX) in dtype, or None where there is nothing to fold."""
  if op is Ops.MAX: return value if n else None  # (a max over nothing raised already)
  if n == 0: return 0 if op is Ops.ADD else 1
  if dtype == dtypes.bool: return value  # (or, and)
  if not dtypes.is_float(dtype):  # wraps like the device's ints (normalize_const wraps the result)
    return value * n if op is Ops.ADD else pow(value, n, 1 << (8 * dtype.itemsize))
  try: return float(value) * n if op is Ops.ADD else float(value) ** n  # exact, rounded once to dtype
  except OverflowError:  # past a double: infinite, with the sign the product would have
    negative = value < 0 and (op is Ops.ADD or n % 2)
    return -math.inf if negative else math.inf


def _fold_uniform_reduce(r: UOp) -> UOp | None:
  value = _uniform_value(r)
  return None if value is None else _const_at(r.dtype, value[0], r.shape)


uniform_reduces = PatternMatcher([(UPat(Ops.REDUCE_AXIS, name="r"), _fold_uniform_reduce)])


def _fits(values: range, dtype: DType) -> bool:
  """Whether every value of a range fits dtype."""
  return not values or (dtypes.min(dtype) <= min(values[0], values[-1]) and max(values[0], values[-1]) <= dtypes.max(dtype))


def _const_tensor(uop: UOp, device: str) -> Tensor:
  """A tensor over a node that reads no buffer (a constant), made without Tensor.__init__'s checks; not tracked
  for program order, as it can't read a buffer a write overwrites."""
  out = Tensor.__new__(Tensor)
  out._uop, out.device, out.grad, out._requires_grad = uop, device, None, None
  return out


def _broadcast_shape(*shapes: tuple[int, ...]) -> tuple[int, ...]:
  ndim = max(len(s) for s in shapes)
  padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
  out = []
  for dims in zip(*padded):
    sizes = {d for d in dims if d != 1}
    if len(sizes) > 1:
      raise ValueError(f"shapes {' and '.join(str(tuple(s)) for s in shapes)} can't be broadcast together")
    out.append(sizes.pop() if sizes else 1)
  return tuple(out)


class Tensor:
  """A lazily computed n-dimensional array on a device.

  Storage and views, as in PyTorch: a tensor either owns its storage (a base) or is a view of a base, made by the
  movement ops that PyTorch makes views with (reshape, permute, expand, shrink and basic indexing, detach). A view
  records the chain of those ops from its base and rebuilds its node from the base's current one whenever the
  base changed (its _version moved), so a write through any view, or to the base, is seen by all of them."""
  training = False
  _graph: UOp | None = None  # for a realized tensor that requires grad: the graph that computed it
  _leaf = False              # requires_grad was set on this tensor by the user (a parameter)
  _leaf_node: weakref.ref | None = None  # the lazy node a leaf was made as, while graphs built from it hold it
  _base: Tensor | None = None  # the tensor whose storage this one is a view of (None: this one owns it)
  _view_ops: tuple = ()        # a view's movement ops from its base: ((Ops, arg), ...)
  _version = 0                 # a base's count of changes of its node: views compare it with _seen
  _seen = 0                    # a view: the base's _version its node was built from
  _assigned_graph: UOp | None = None  # a pending write's values as autograd sees them (see _graph_after_write)
  __hash__ = object.__hash__  # == builds a comparison tensor, so hash by identity

  def __init__(self, data, device: str | None = None, dtype: DType | str | None = None, requires_grad: bool | None = None):
    dtype = to_dtype(dtype) if dtype is not None else None
    self.device = Device.canonicalize(device) if device is not None else Device.DEFAULT
    self._requires_grad, self.grad = None, None
    if isinstance(data, UOp):
      self.uop = data if dtype is None else data.cast(dtype)
    elif isinstance(data, Tensor) and data.device == self.device and dtype in (None, data.dtype):
      self._alias(data)  # Tensor(t) is another view of t's storage
    elif isinstance(data, Tensor):
      moved = data if data.device == self.device else data.to(self.device)
      self.uop = moved.uop if dtype is None else moved.uop.cast(dtype)
    elif isinstance(data, (bool, int, float, np.generic)) and not isinstance(data, np.ndarray):
      value = data.item() if isinstance(data, np.generic) else data
      dt = dtype or (dtypes.from_np(data.dtype) if isinstance(data, np.generic) else dtypes.from_py(value))
      self.uop = UOp.const(dt, value)
    else:
      self.uop = _from_host(data, dtype, self.device)
    check_dtype(self.device, self._uop.dtype)  # float64 on a device without it: refused here, not at realize
    if requires_grad is not None: self.requires_grad = requires_grad

  # ---- basic facts ----
  # (read from _uop, even a view's that its base has since changed: a view's shape and dtype never change)
  @property
  def shape(self) -> tuple[int, ...]: return self._uop.shape
  @property
  def dtype(self) -> DType: return self._uop.dtype
  @property
  def ndim(self) -> int: return len(self.shape)
  @property
  def lazydata(self) -> UOp: return self.uop
  def numel(self) -> int: return math.prod(self.shape)
  def size(self, dim: int | None = None): return self.shape if dim is None else self.shape[_canon_axis(dim, self.ndim)]
  def element_size(self) -> int: return self.dtype.itemsize
  @property
  def nbytes(self) -> int: return self.numel() * self.dtype.itemsize
  def __len__(self):
    if not self.shape: raise TypeError("len() of a 0-d tensor")
    return self.shape[0]
  def __repr__(self): return f"<Tensor {self.shape} {self.dtype} on {self.device}>"
  def __bool__(self):
    if self.numel() != 1: raise RuntimeError(f"the truth value of a tensor with {self.numel()} elements is ambiguous")
    return bool(self.item())
  def _new(self, uop: UOp, *others: Tensor) -> Tensor:
    """A result computed from self (and others): it requires grad if any of them does, like PyTorch (and grad
    mode is on)."""
    out = Tensor.__new__(Tensor)
    out._uop, out.device, out.grad, out._requires_grad = uop, self.device, None, None
    program_order.track(out)
    if not _grad_mode.enabled: return out
    for t in (self, *others):  # a loop, not any(...): no generator made for every op
      if t._requires_grad:
        out._requires_grad = True
        break
    return out

  # ---- the node, storage and views ----
  @property
  def uop(self) -> UOp:
    """The graph node of this tensor's value. A view's node is rebuilt from its base's when the base changed."""
    base = self._base
    if base is None or self._seen == base._version: return self._uop
    node = base._uop
    for op, arg in self._view_ops: node = UOp(op, node.dtype, (node,), arg)
    self._uop, self._seen = node, base._version
    return node
  @uop.setter
  def uop(self, node: UOp):
    self._uop = node
    if self._base is None: self._version += 1  # the views of this tensor rebuild their nodes from it
    else: self._seen = self._base._version
    if not is_buffer_view(node): program_order.track(self)

  def _view(self, op: Ops, arg) -> Tensor:
    """A view of this tensor's storage through one more movement op (see the class docstring)."""
    out = Tensor.__new__(Tensor)
    out._uop, out.device, out.grad = UOp(op, self.dtype, (self.uop,), arg), self.device, None
    out._requires_grad = self._requires_grad if _grad_mode.enabled else None
    base = self._base
    if base is None: out._base, out._view_ops = self, ((op, arg),)
    else: out._base, out._view_ops = base, self._view_ops + ((op, arg),)
    out._seen = out._base._version
    return out

  def _alias(self, other: Tensor):
    """Make this (new) tensor another view of other's storage, with other's shape."""
    base = other._base if other._base is not None else other
    self._base, self._view_ops, self._uop, self._seen = base, other._view_ops, other.uop, base._version
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
  def requires_grad(self) -> bool | None: return self._requires_grad
  @requires_grad.setter
  def requires_grad(self, value: bool | None):
    """Set by the user on leaves (parameters): backward() fills their .grad. Results inherit it from inputs.
    Setting it to True on any float tensor, lazy or realized, makes that tensor a leaf of its own."""
    if value and not dtypes.is_float(self.dtype):
      raise RuntimeError(f"only float tensors can require gradients, this one is {self.dtype}")
    already_leaf = self._leaf and self._requires_grad
    self._requires_grad = value
    if not value or already_leaf: return  # a second requires_grad_() must not make a new node graphs don't hold
    self._leaf = True
    if self._base is not None:  # a leaf of its own: it stops being a view (its gradient is its alone)
      self._uop, self._base, self._view_ops = self.uop, None, ()
    if not is_buffer_view(self.uop):
      # equal lazy graphs are one node (hash-consing): a leaf must be its own node, or gradients meant for
      # another tensor that happens to be equal (the constant 2.0 in x * 2) would land on it
      self.uop = UOp(Ops.CONTIGUOUS, self.dtype, (self.uop,), ("leaf", next(_leaf_ids)))
      # graphs built from it before it is realized hold this node, not the buffer: it is the leaf there too.
      # A weak reference: once no graph holds it, neither it nor the buffers under it are kept alive for this
      self._leaf_node = weakref.ref(self.uop)
    _grad_leaves.add(self)

  def requires_grad_(self, value: bool = True) -> Tensor:
    self.requires_grad = value
    return self

  def gradient(self, *targets: Tensor, gradient: Tensor | None = None) -> list[Tensor]:
    """Lazy gradients of this tensor with respect to `targets` (without touching their .grad), like tinygrad's
    gradient: any float tensors in the graph, whether they require grad or not; zeros for one not in it. The
    results are graphs themselves (like torch.autograd.grad with create_graph=True): gradient() or backward()
    of them gives second derivatives."""
    seed = self._seed_gradient(gradient)
    graphs = _realized_graphs()
    root = restore_graphs(self.uop, graphs)
    program_order.check_not_stale(root)
    nodes_of = [_gradient_nodes(t, graphs) for t in targets]
    grads = compute_gradient(root, seed.uop, {n for nodes in nodes_of for n in nodes})
    out = []
    for t, nodes in zip(targets, nodes_of):
      found = [grads[n] for n in nodes if n in grads]
      if not found:
        out.append(t.zeros_like(dtype=t.dtype))
        continue
      g = found[0] if len(found) == 1 else found[0].alu(Ops.ADD, found[1])
      result = Tensor(g.cast(t.dtype), device=t.device)  # (a lazy tensor: tracked, see teeny/program_order.py)
      result._requires_grad = True if self._requires_grad or t._requires_grad else None
      out.append(result)
    return out

  def backward(self, gradient: Tensor | None = None) -> Tensor:
    """Add d(self)/d(leaf) to .grad of every leaf with requires_grad=True in this graph. Lazy: realize the
    grads (or let an optimizer step do it) to run the kernels. The .grad tensors are plain values (PyTorch's
    create_graph=False); use gradient() for gradients to differentiate again."""
    graphs = _realized_graphs()
    root = restore_graphs(self.uop, graphs)
    program_order.check_not_stale(root)
    in_graph = set(root.toposort())
    leaves = [t for t in snapshot(_grad_leaves) if t._requires_grad and any(n in in_graph for n in _gradient_nodes(t, graphs))]
    if not leaves: raise RuntimeError("backward(): no tensor with requires_grad=True is used to compute this one")
    for leaf, g in zip(leaves, self.gradient(*leaves, gradient=gradient)):
      g = g.detach()
      leaf.grad = g if leaf.grad is None else leaf.grad + g
    _backward_roots.add(self)
    return self

  @staticmethod
  def take_backward_roots() -> list[Tensor]:
    """The tensors backward() was called on since the last call (alive ones): what an optimizer realizes together
    with the gradients."""
    roots = snapshot(_backward_roots)
    _backward_roots.clear()
    return roots

  def _seed_gradient(self, gradient: Tensor | None) -> Tensor:
    if not dtypes.is_float(self.dtype): raise RuntimeError(f"only float tensors have gradients, this one is {self.dtype}")
    if gradient is None:
      if self.numel() != 1:
        raise RuntimeError(f"backward() of a tensor of shape {self.shape} needs an explicit gradient of that shape")
      return Tensor.ones(self.shape, dtype=self.dtype, device=self.device)
    if gradient.shape != self.shape: raise ValueError(f"gradient of shape {gradient.shape} for a tensor of shape {self.shape}")
    return gradient.cast(self.dtype)

  @staticmethod
  @contextlib.contextmanager
  def train(mode: bool = True):
    """`with Tensor.train():` turns on training behaviour (dropout, batchnorm statistics) inside the block."""
    previous, Tensor.training = Tensor.training, mode
    try: yield
    finally: Tensor.training = previous

  # ---- creation ----
  # every creation function takes requires_grad and sets it on the tensor it returns (the leaf), not on a tensor
  # it was built from: a flag set on an inner tensor would be left behind on a node the result only reads
  @staticmethod
  def _as_leaf(out: Tensor, requires_grad: bool | None) -> Tensor:
    if requires_grad is not None: out.requires_grad = requires_grad
    return out
  @staticmethod
  def full(shape, fill_value: Scalar, dtype=None, device=None, requires_grad: bool | None = None) -> Tensor:
    shape = _new_shape(shape)
    dt = to_dtype(dtype) if dtype is not None else dtypes.from_py(fill_value)
    t = Tensor(UOp.const(dt, fill_value), device=device)
    filled = t.reshape((1,) * len(shape)).expand(shape)._own() if shape else t  # (storage of its own, like torch.full)
    return Tensor._as_leaf(filled, requires_grad)
  @staticmethod
  def zeros(*shape, **kw) -> Tensor: return Tensor.full(_shape_arg(shape), 0.0 if kw.get("dtype") is None else 0, **kw)
  @staticmethod
  def ones(*shape, **kw) -> Tensor: return Tensor.full(_shape_arg(shape), 1.0 if kw.get("dtype") is None else 1, **kw)
  @staticmethod
  def empty(*shape, dtype=None, device=None, requires_grad: bool | None = None) -> Tensor:
    dt = to_dtype(dtype) if dtype is not None else dtypes.default_float
    dev = Device.canonicalize(device) if device is not None else Device.DEFAULT
    shape = _new_shape(shape)
    if math.prod(shape) > INDEX_MAX: raise ValueError(f"a buffer of shape {shape} has {math.prod(shape)} elements, more than 64-bit indices can count ({INDEX_MAX})")
    return Tensor(buffer_view(Buffer(dev, math.prod(shape), dt), shape), device=dev, requires_grad=requires_grad)
  @staticmethod
  def arange(start, stop=None, step=1, dtype=None, device=None, requires_grad: bool | None = None) -> Tensor:
    if stop is None: start, stop = 0, start
    if step == 0: raise ValueError("arange step must not be zero")
    dt = to_dtype(dtype) if dtype is not None else dtypes.from_py([start, stop, step])
    if dtype is None and dt == dtypes.default_int and not _fits(range(start, stop, step), dt): dt = dtypes.int64
    # made on the host like torch.arange: exact, and O(n) (a lazy cumsum of ones would cost O(n^2) adds)
    return Tensor(np.arange(start, stop, step, dtype=dt.np), device=device, dtype=dt, requires_grad=requires_grad)
  @staticmethod
  def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad: bool | None = None) -> Tensor:
    m = n if m is None else m
    n, m = _new_shape((n, m))
    dt = to_dtype(dtype) if dtype is not None else dtypes.default_float
    if n == 0 or m == 0: return Tensor.zeros(n, m, dtype=dt, device=device, requires_grad=requires_grad)
    # k rows of [1, 0*k] laid end to end and cut into rows of k put the ones on the diagonal of a k x k square
    k = max(n, m)
    row = Tensor.ones(1, dtype=dt, device=device).pad(((0, k),))
    square = row.reshape(1, k + 1).expand(k, k + 1).reshape(-1).shrink(((0, k * k),)).reshape(k, k)
    return Tensor._as_leaf(square.shrink(((0, n), (0, m)))._own(), requires_grad)
  def full_like(self, fill_value: Scalar, **kw) -> Tensor:
    return Tensor.full(self.shape, fill_value, dtype=kw.pop("dtype", self.dtype), device=kw.pop("device", self.device), **kw)
  def zeros_like(self, **kw) -> Tensor: return self.full_like(0, **kw)
  def ones_like(self, **kw) -> Tensor: return self.full_like(1, **kw)

  # ---- realizing and reading ----
  def realize(self, *others: Tensor) -> Tensor:
    """Run the kernels that compute this tensor (and others) now. A view realizes the tensor it is a view of (a
    write pending on it runs) and stays a view: realizing never copies a view's elements out."""
    if others: Tensor.realize_all(self, *others)
    elif self._base is not None or not is_buffer_view(self._uop): _realize((self,))  # the common case: no set-up
    return self
  @staticmethod
  def realize_all(*tensors: Tensor):
    todo = tuple({id(t): t for t in tensors if not is_buffer_view(t.uop)}.values())  # a tensor named twice is realized once
    if todo: _realize(todo)
  def numpy(self) -> np.ndarray:
    if 0 in self.shape: return np.zeros(self.shape, dtype=self.dtype.np)
    self.realize()
    return _read(self.uop, self.device).reshape(self.shape)
  def item(self) -> Scalar:
    if self.numel() != 1: raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
    return self.numpy().reshape(()).item()
  def tolist(self): return self.numpy().tolist()
  def data(self) -> memoryview: return memoryview(self.numpy())
  def to(self, device: str) -> Tensor:
    device = Device.canonicalize(device)
    if device == self.device: return self
    check_dtype(device, self.dtype)
    out = self._new(UOp(Ops.COPY, self.dtype, (self.contiguous().uop,), (self.device, device)))
    out.device = device
    return out
  def contiguous(self) -> Tensor:
    """Self when it already is a buffer of its own (like PyTorch), else a copy into a new one: a kernel boundary."""
    if self._base is None and is_buffer_view(self._uop): return self
    return self._new(UOp(Ops.CONTIGUOUS, self.dtype, (self.uop,)))
  def detach(self) -> Tensor:
    """A view of the same storage that no gradient flows through (like torch's detach, it sees writes to self)."""
    out = self._view(Ops.DETACH, None)
    out._requires_grad = None
    return out
  def clone(self) -> Tensor:
    """A copy in a buffer of its own (tagged so it is never merged with an equal graph or with its source):
    assigning into the clone leaves the original alone."""
    return self._new(UOp(Ops.CONTIGUOUS, self.dtype, (self.uop,), ("clone", next(_leaf_ids))))

  # ---- writes: assign, setitem, in-place operators ----
  def assign(self, value) -> Tensor:
    """Write value into this tensor's storage, lazily (realize() runs the write): how optimizers update
    parameters in place. value broadcasts to this tensor's shape and is cast to its dtype. Assigning to a view
    writes through to its base, and the base and every view of it see the new values, as in PyTorch; lazy results
    computed from the old values keep them (teeny/program_order.py). Returns self."""
    value = self._write_value(value)
    if value.uop is self.uop: return self  # x.assign(x), x[i] = x[i]: nothing changes
    depth = len(self._view_ops)
    self._check_not_overlapping(depth)
    base = self if self._base is None else self._base
    forget_realized()
    storage = base._storage()
    old = base._uop
    if depth: placed, covered = _placed_in_base(self.uop, depth, value.uop)
    if storage is not None:
      # in place: the kernel stores value through the view's movement ops into the base's buffer
      moves = tuple((op, arg) for op, arg in self._view_ops if op is not Ops.DETACH)
      base.uop = UOp(Ops.ASSIGN, base.dtype, (storage, value.uop), (next(_leaf_ids), moves))
      base._assigned_graph = base._graph_after_write(covered.where(placed, old) if depth else value.uop, old)
      if base._assigned_graph is not None: _grad_realized[id(base)] = base
    elif depth: base.uop = covered.where(placed, old)  # a lazy base: its graph is replaced, nothing is written
    else: base.uop = UOp(Ops.CONTIGUOUS, base.dtype, (value.uop,), ("clone", next(_leaf_ids)))  # (a buffer of its own)
    base._graph = None
    return self

  def _graph_after_write(self, values: UOp, old: UOp) -> UOp | None:
    """For autograd, what a realized result that requires grad holds after an in-place write, as a graph: the
    written values, where `old` (its buffer) stands for the graph that computed it before. None when it needs no
    graph (a leaf, or no grad) or has none to give (its old graph was dropped)."""
    if not self._requires_grad or self._leaf: return None
    if self._graph is not None: return restore_graphs(values, {old: self._graph})
    return None if old in values.toposort() else values

  def _write_value(self, value) -> Tensor:
    """value as a tensor of this tensor's device, dtype and shape (broadcast), or a clear error."""
    value = value if isinstance(value, Tensor) else Tensor(value, device=self.device, dtype=self.dtype)
    if value.device != self.device: raise RuntimeError(f"can't assign a tensor on {value.device} into one on {self.device}")
    fits = len(value.shape) <= self.ndim and all(v in (1, t) for v, t in zip(value.shape[::-1], self.shape[::-1]))
    if not fits: raise ValueError(f"can't assign a tensor of shape {value.shape} to one of shape {self.shape}")
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
    """The buffer view holding this base's values, to write into; None while it is a lazy result (a write then
    replaces its graph). A write still pending on it runs first."""
    if self._uop.op is Ops.ASSIGN: _realize((self,))
    return self._uop if is_buffer_view(self._uop) else None

  def _check_inplace(self):
    """PyTorch's rule: a leaf that requires grad (a parameter), or a view of one, can't be changed in place while
    grad mode is on; its gradient would be of a value it no longer has."""
    if not (_grad_mode.enabled and self._requires_grad): return
    base = self if self._base is None else self._base
    if base._leaf:
      what = "a view of a leaf tensor" if base is not self else "a leaf tensor"
      raise RuntimeError(f"{what} that requires grad (shape {base.shape}) is being changed in place; update it "
                         "under `with Tensor.no_grad():` (as optimizers do), or with assign()")

  def _inplace(self, result: Tensor) -> Tensor:
    """self <op>= other: result written into self, which keeps its dtype (a result PyTorch can't cast back,
    float into int or anything into bool, raises)."""
    self._check_inplace()
    if (dtypes.is_float(result.dtype) and not dtypes.is_float(self.dtype)) or \
       (self.dtype == dtypes.bool and result.dtype != dtypes.bool):
      raise TypeError(f"in-place result of dtype {result.dtype} can't be stored in a tensor of dtype {self.dtype}")
    if result.shape != self.shape:
      raise ValueError(f"in-place result of shape {result.shape} doesn't fit a tensor of shape {self.shape}")
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
  def add_(self, other, alpha=1): return self._inplace(self + (other * alpha if alpha != 1 else other))
  def sub_(self, other, alpha=1): return self._inplace(self - (other * alpha if alpha != 1 else other))
  def mul_(self, other): return self._inplace(self * other)
  def div_(self, other, rounding_mode: str | None = None): return self._inplace(self.div(other, rounding_mode=rounding_mode))
  def pow_(self, exponent): return self._inplace(self ** exponent)
  def neg_(self): return self._inplace(-self)
  def abs_(self): return self._inplace(self.abs())
  def sqrt_(self): return self._inplace(self.sqrt())
  def exp_(self): return self._inplace(self.exp())
  def log_(self): return self._inplace(self.log())
  def relu_(self): return self._inplace(self.relu())
  def sigmoid_(self): return self._inplace(self.sigmoid())
  def tanh_(self): return self._inplace(self.tanh())
  def floor_(self): return self._inplace(self.floor())
  def ceil_(self): return self._inplace(self.ceil())
  def round_(self): return self._inplace(self.round())
  def trunc_(self): return self._inplace(self.trunc())
  def clamp_(self, min_=None, max_=None): return self._inplace(self.clamp(min_, max_))
  clip_ = clamp_
  def masked_fill_(self, mask: Tensor, value): return self._inplace(self.masked_fill(mask, value))
  def lerp_(self, end, weight): return self._inplace(self.lerp(end, weight))
  def zero_(self): return self.fill_(0)
  def fill_(self, value):
    self._check_inplace()
    return self.assign(Tensor.full(self.shape, value, dtype=self.dtype, device=self.device))
  def copy_(self, src):
    """Copy src (broadcast, cast to self's dtype) into self, like torch's copy_."""
    self._check_inplace()
    return self.assign(src)
  def uniform_(self, low=0.0, high=1.0):
    self._check_inplace()
    return self.assign(Tensor.uniform(*self.shape, low=low, high=high, dtype=self.dtype, device=self.device))
  def normal_(self, mean=0.0, std=1.0):
    self._check_inplace()
    return self.assign(Tensor.normal(*self.shape, mean=mean, std=std, dtype=self.dtype, device=self.device))

  @staticmethod
  def no_grad():
    """`with Tensor.no_grad():` or `@Tensor.no_grad()`: results computed inside don't require grad, and
    parameters may be changed in place, like torch.no_grad."""
    return _NoGrad()

  # ---- type changes ----
  def cast(self, dtype) -> Tensor:
    dtype = to_dtype(dtype)
    if dtype == self.dtype: return self
    check_dtype(self.device, dtype)
    return self._new(self.uop.cast(dtype))
  def bitcast(self, dtype) -> Tensor:
    dtype = to_dtype(dtype)
    if dtype.itemsize != self.dtype.itemsize:
      raise ValueError(f"bitcast from {self.dtype} to {dtype} needs the same item size")
    check_dtype(self.device, dtype)
    return self._new(UOp(Ops.BITCAST, dtype, (self.uop,)))
  def float(self) -> Tensor: return self.cast(dtypes.float32)
  def half(self) -> Tensor: return self.cast(dtypes.float16)
  def double(self) -> Tensor: return self.cast(dtypes.float64)
  def int(self) -> Tensor: return self.cast(dtypes.int32)
  def long(self) -> Tensor: return self.cast(dtypes.int64)
  def bool(self) -> Tensor: return self.cast(dtypes.bool)

  # ---- movement (free: views) ----
  def reshape(self, *shape) -> Tensor:
    shape = _shape_arg(shape)
    if sum(1 for s in shape if s == -1) > 1: raise ValueError(f"reshape to {shape}: only one dimension can be -1")
    if any(not isinstance(s, int) or s < -1 for s in shape): raise ValueError(f"reshape to {shape}: sizes must be ints >= -1")
    if -1 in shape:
      known = math.prod(s for s in shape if s != -1)
      if known == 0 or self.numel() % known: raise ValueError(f"cannot reshape tensor of shape {self.shape} into {shape}")
      shape = tuple(self.numel() // known if s == -1 else s for s in shape)
    if math.prod(shape) != self.numel(): raise ValueError(f"cannot reshape tensor of shape {self.shape} into {shape}")
    return self if shape == self.shape else self._view(Ops.RESHAPE, shape)
  def view(self, *shape) -> Tensor: return self.reshape(*shape)
  def permute(self, *order) -> Tensor:
    order = _shape_arg(order)
    if len(order) != self.ndim or sorted(_canon_axis(o, self.ndim) for o in order) != list(range(self.ndim)):
      raise ValueError(f"permute order {order} is not a permutation of the {self.ndim} axes of shape {self.shape}")
    order = tuple(_canon_axis(o, self.ndim) for o in order)
    return self if order == tuple(range(self.ndim)) else self._view(Ops.PERMUTE, order)
  def transpose(self, dim0: int = 1, dim1: int = 0) -> Tensor:
    order = list(range(self.ndim))
    a, b = _canon_axis(dim0, self.ndim), _canon_axis(dim1, self.ndim)
    order[a], order[b] = order[b], order[a]
    return self.permute(order)
  @property
  def T(self) -> Tensor: return self.permute(tuple(reversed(range(self.ndim))))
  def expand(self, *shape) -> Tensor:
    shape = _shape_arg(shape)
    if len(shape) < self.ndim: raise ValueError(f"expand to {shape}: fewer dimensions than the tensor's shape {self.shape}")
    src = (1,) * (len(shape) - self.ndim) + self.shape
    shape = tuple(s if n == -1 else n for s, n in zip(src, shape))
    for s, n in zip(src, shape):
      if (s != n and s != 1) or n < 0: raise ValueError(f"can't expand shape {self.shape} to {shape}")
    x = self.reshape(src) if src != self.shape else self
    return x if shape == x.shape else x._view(Ops.EXPAND, shape)
  def pad(self, padding, value: Scalar = 0.0) -> Tensor:
    """padding: ((before, after), ...) per axis (None for none), or PyTorch's flat (last_before, last_after, ...)."""
    if padding and all(isinstance(p, int) for p in padding):
      if len(padding) % 2 or len(padding) // 2 > self.ndim: raise ValueError(f"flat padding {padding} doesn't fit shape {self.shape}")
      pairs = [(0, 0)] * self.ndim
      for i in range(len(padding) // 2): pairs[self.ndim - 1 - i] = (padding[2 * i], padding[2 * i + 1])
      padding = pairs
    padding = tuple((0, 0) if p is None else tuple(p) for p in padding)
    if len(padding) != self.ndim: raise ValueError(f"padding {padding} needs one pair per axis of shape {self.shape}")
    if any(b < 0 or a < 0 for b, a in padding):  # negative padding crops, like PyTorch
      crop = tuple((max(-b, 0), s - max(-a, 0)) for (b, a), s in zip(padding, self.shape))
      return self.shrink(crop).pad(tuple((max(b, 0), max(a, 0)) for b, a in padding), value)
    if all(p == (0, 0) for p in padding): return self
    out = self._new(UOp(Ops.PAD, self.dtype, (self.uop,), padding))
    if value == 0: return out
    inside = Tensor.ones(self.shape, dtype=dtypes.bool, device=self.device).pad(padding)  # True where the data is
    return inside.where(out, Tensor.full((), value, dtype=self.dtype, device=self.device))
  def shrink(self, arg) -> Tensor:
    arg = tuple((0, s) if a is None else tuple(a) for a, s in zip(arg, self.shape))
    if len(arg) != self.ndim: raise ValueError(f"shrink {arg} needs one (start, end) per axis of shape {self.shape}")
    for (b, e), s in zip(arg, self.shape):
      if not 0 <= b <= e <= s: raise ValueError(f"shrink {arg} is out of bounds for shape {self.shape}")
    if all(a == (0, s) for a, s in zip(arg, self.shape)): return self
    return self._view(Ops.SHRINK, arg)
  def flip(self, axis=None) -> Tensor:
    """The elements in reverse order along the axes (all by default). A new tensor, like torch.flip; x[::-1] is
    a view of x instead, like numpy."""
    axes = range(self.ndim) if axis is None else ([axis] if isinstance(axis, int) else axis)
    axes = tuple(sorted({_canon_axis(a, self.ndim) for a in axes}))
    axes = tuple(a for a in axes if self.shape[a] > 1)
    return self if not axes else self._new(UOp(Ops.FLIP, self.dtype, (self.uop,), axes))
  def squeeze(self, dim=None) -> Tensor:
    if dim is None: return self.reshape(tuple(s for s in self.shape if s != 1))
    dims = {_canon_axis(d, self.ndim) for d in ([dim] if isinstance(dim, int) else dim)}
    return self.reshape(tuple(s for i, s in enumerate(self.shape) if not (i in dims and s == 1)))
  def unsqueeze(self, dim: int) -> Tensor:
    d = _canon_axis(dim, self.ndim + 1)
    return self.reshape(self.shape[:d] + (1,) + self.shape[d:])
  def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    if self.ndim == 0: return self.reshape(1)
    a, b = _canon_axis(start_dim, self.ndim), _canon_axis(end_dim, self.ndim)
    return self.reshape(self.shape[:a] + (math.prod(self.shape[a:b + 1]),) + self.shape[b + 1:])

  def __getitem__(self, index) -> Tensor:
    """numpy indexing: ints, slices (any step, negative too), None, Ellipsis, and integer tensors, lists or tuples
    inside the index tuple (fancy indexing; several index tensors broadcast together, and their result axes go where
    numpy puts them). Ints and slices are free views. A tensor index compiles to a load at the index (a gather): k
    selections cost k loads, not k times the size of the indexed axes. An index out of range selects nothing
    (gives 0), since checking it would need to read the index from the device. Negative tensor indices count
    from the end."""
    plan = self._index_plan(index)
    x = self._basic_index(plan)
    if not plan.tensors: return x
    return x._take(plan.tensor_axes, plan.tensors).permute(plan.result_order)

  def __setitem__(self, index, value):
    """x[index] = value for every index form of __getitem__: an in-place write through the indexed view into x's
    storage (lazy, like assign; x and every view of it see it). With repeated tensor indices the last write wins,
    like numpy."""
    self._check_inplace()
    plan = self._index_plan(index)
    value = value if isinstance(value, Tensor) else Tensor(value, device=self.device, dtype=self.dtype)
    if value.device != self.device: raise RuntimeError(f"can't assign a tensor on {value.device} into one on {self.device}")
    sub = self._basic_index(plan)
    target_shape = sub.shape if not plan.tensors else sub._take(plan.tensor_axes, plan.tensors).permute(plan.result_order).shape
    if len(value.shape) > len(target_shape) or any(v not in (1, t) for v, t in zip(value.shape[::-1], target_shape[::-1])):
      raise ValueError(f"can't assign a tensor of shape {value.shape} to an indexed region of shape {target_shape}")
    value = value.cast(self.dtype).expand(target_shape)
    if plan.tensors:  # the selected elements of the view replaced: the whole view is written
      inverse = tuple(plan.result_order.index(i) for i in range(len(plan.result_order)))
      value = sub._put(plan.tensor_axes, plan.tensors, value.permute(inverse))
    sub.assign(value)

  def _index_plan(self, index) -> _IndexPlan:
    """Check an index and work out the views (crops, flips, steps) and tensor selections it stands for."""
    items = self._index_items(index)
    plan = _IndexPlan()
    # PyTorch's (and tinygrad's) rule for where the tensor indices' axes go: ints index first, like slices, and
    # the tensors then select along the axes that are left; their broadcast shape takes their place when nothing
    # but ints stands between them, else it goes first. (numpy counts ints as tensor indices instead, which moves
    # the axes of x[0, :, idx]: (len(idx), n) in numpy, (n, len(idx)) in PyTorch and here.)
    advanced, position = [], 0  # where each tensor is among the items that leave an axis (slices, None, tensors)
    axis = 0
    for _, i in items:
      if i is None:
        plan.out_shape.append(1)
        position += 1
        continue
      if isinstance(i, Tensor):
        if not advanced: plan.batch_at = len(plan.out_shape)
        advanced.append(position)
        plan.add_tensor(i, self.shape[axis])
      elif isinstance(i, (int, np.integer)): plan.add_int(int(i), self.shape[axis], axis)
      else: plan.add_slice(i, self.shape[axis])
      if not isinstance(i, (int, np.integer)): position += 1
      axis += 1
    if plan.tensors: plan.place_batch(adjacent=advanced == list(range(advanced[0], advanced[-1] + 1)))
    return plan

  def _index_items(self, index) -> list[tuple[int, Any]]:
    """The index checked, as (position in the index, item): lists, tuples and arrays inside the index tuple made
    integer tensors (a tuple as the whole index holds one item per axis, as in numpy), and the Ellipsis (or the end,
    without one) replaced by whole slices for the axes no item names, at the Ellipsis's position."""
    index = index if isinstance(index, tuple) else (index,)
    index = tuple(self._index_tensor(i) if isinstance(i, (list, tuple, np.ndarray, Tensor)) else i for i in index)
    for i in index:
      if not (i is None or i is Ellipsis or isinstance(i, (int, slice, np.integer, Tensor))) or isinstance(i, bool):
        raise TypeError(f"unsupported index {i!r}: use ints, slices, None, ..., or integer tensors or lists")
    ellipses = [pos for pos, i in enumerate(index) if i is Ellipsis]  # by identity: == on a Tensor is lazy
    if len(ellipses) > 1: raise IndexError("an index can only have one ellipsis")
    n_real = sum(1 for i in index if i is not None and i is not Ellipsis)
    if n_real > self.ndim: raise IndexError(f"too many indices ({n_real}) for a tensor of shape {self.shape}")
    at = ellipses[0] if ellipses else len(index)
    items = list(enumerate(index))
    return items[:at] + [(at, slice(None))] * (self.ndim - n_real) + items[at + 1:]

  def _index_tensor(self, i) -> Tensor:
    if not isinstance(i, Tensor):
      arr = np.asarray(i)
      if arr.dtype.kind not in "iub" and arr.size: raise IndexError(f"index {i!r} is not an integer array or list")
      # int32 when the values fit (teeny's default int; numpy would make int64), so index math stays 32-bit; an
      # empty list (float64 to numpy) is an empty integer index, as in numpy
      if not arr.size or (arr.dtype.kind in "iu" and -2**31 <= arr.min() and arr.max() < 2**31): arr = arr.astype(np.int32)
      i = Tensor(arr, device=self.device)
    if i.dtype == dtypes.bool:
      raise IndexError("indexing with a boolean mask gives a shape that depends on the data: use where() or masked_fill()")
    if dtypes.is_float(i.dtype): raise IndexError(f"tensors used as indices must be integers, got {i.dtype}")
    if i.device != self.device: raise RuntimeError(f"index tensor on {i.device} for a tensor on {self.device}")
    return i

  def _basic_index(self, plan: _IndexPlan) -> Tensor:
    """The ints, slices and None of an index applied: a view of self, as in numpy and PyTorch."""
    x = self.shrink(tuple(plan.crops))
    flipped = tuple(a for a, f in enumerate(plan.flips) if f and x.shape[a] > 1)
    if flipped: x = x._view(Ops.FLIP, flipped)
    if any(s != 1 for s in plan.steps): x = x._strided(plan.steps)
    return x.reshape(tuple(plan.out_shape))

  def _take(self, axes: list[int], indices: list[Tensor]) -> Tensor:
    """self[..., i0, ..., i1, ...] with integer tensors at `axes`: shape (broadcast index shape, other axes...).
    Written as a sum of where(position == arange, x, 0) over the positions of the indexed axes (merged into one),
    which codegen compiles to one load of x at the position per selected element (a gather axis, codegen/opt.py)."""
    batch = _broadcast_shape(*(t.shape for t in indices))
    x, flat, total = self._flat_axes(axes, indices)
    rest = x.shape[1:]
    hit = flat.reshape(batch + (1,)) == _iota(total, flat.dtype, self.device)
    hit = hit.reshape(batch + (total,) + (1,) * len(rest))
    return _select(hit, x.reshape((1,) * len(batch) + x.shape), len(batch))

  def _put(self, axes: list[int], indices: list[Tensor], value: Tensor) -> Tensor:
    """self with self[..., i0, ..., i1, ...] = value (value shaped like _take's result); the last write wins.
    A one-hot over the writes and the positions: k writes into n positions cost k*n (a write at a computed
    address would need a store that no other write races)."""
    x, flat, total = self._flat_axes(axes, indices)
    rest = x.shape[1:]
    count = math.prod(flat.shape)
    hit = flat.reshape(count, 1) == _iota(total, flat.dtype, self.device)
    chosen, last = _last_writes(hit)
    chosen = chosen.reshape((count, total) + (1,) * len(rest))
    written = chosen.where(value.reshape((count, 1) + rest), 0)._sum_exact(0)
    out = (last > 0).reshape((total,) + (1,) * len(rest)).where(written, x)
    others = [a for a in range(self.ndim) if a not in axes]
    moved = out.reshape(tuple(self.shape[a] for a in axes) + rest)
    return moved.permute(tuple((list(axes) + others).index(a) for a in range(self.ndim)))

  def _flat_axes(self, axes: list[int], indices: list[Tensor]) -> tuple[Tensor, Tensor, int]:
    """self with `axes` moved first and merged into one, and the indices merged into positions along it (-1 for an
    index out of range, which then matches nothing). Negative indices count from the end."""
    batch = _broadcast_shape(*(t.shape for t in indices))
    sizes = [self.shape[a] for a in axes]
    total = math.prod(sizes)
    idx_dtype = dtypes.int32 if total < 2**31 else dtypes.int64
    others = [a for a in range(self.ndim) if a not in axes]
    x = self.permute(list(axes) + others).reshape((total,) + tuple(self.shape[a] for a in others))
    flat, valid, stride = None, None, 1
    for size, t in reversed(list(zip(sizes, indices))):
      t = t.cast(idx_dtype if _holds(idx_dtype, t.dtype) else dtypes.int64)  # range checks on the exact value
      t = (t < 0).where(t + size, t).expand(batch)
      ok = (t >= 0) & (t < size)
      t = t.cast(idx_dtype)  # (exact where ok)
      flat = t * stride if flat is None else flat + t * stride
      valid = ok if valid is None else valid & ok
      stride *= size
    return x, valid.where(flat, -1), total

  def _zero(self) -> Scalar:
    """A zero that keeps this tensor's dtype in where() (a bool tensor with an int 0 would become int32)."""
    return False if self.dtype == dtypes.bool else 0
  def _sum_exact(self, axis: int) -> Tensor:
    """Sum keeping the dtype (for selections, where at most one term is not zero)."""
    if self.dtype == dtypes.bool: return self.cast(dtypes.uint8).sum(axis, dtype=dtypes.uint8).cast(dtypes.bool)
    return self.sum(axis, dtype=self.dtype)

  def _strided(self, steps: list[int]) -> Tensor:
    """Every steps[a]-th element along each axis: pad to a multiple of the step, fold it out, keep index 0."""
    x = self
    padded = [math.ceil(s / st) * st for s, st in zip(x.shape, steps)]
    if padded != list(x.shape): x = x._view(Ops.PAD, tuple((0, p - s) for s, p in zip(x.shape, padded)))  # (never read)
    x = x.reshape(tuple(d for p, st in zip(padded, steps) for d in (p // st, st)))
    x = x.shrink(tuple(r for p, st in zip(padded, steps) for r in ((0, p // st), (0, 1))))
    return x.reshape(tuple(p // st for p, st in zip(padded, steps)))

  # ---- elementwise ----
  def _binop_operands(self, other, reverse=False) -> tuple[Tensor, Tensor]:
    """Promote dtypes like PyTorch and broadcast like numpy; scalars become constants."""
    if isinstance(other, Tensor):
      if other.device != self.device:
        raise RuntimeError(f"tensors are on different devices: {self.device} and {other.device}")
      dt = promote(self.dtype, other.dtype)
      a, b = self.cast(dt), other.cast(dt)
    elif isinstance(other, (int, float, bool, np.generic)):
      # the common `x * 2`: the constant is made at x's shape at once (one cached node, no broadcasting)
      value = other.item() if isinstance(other, np.generic) else other
      dt = promote_scalar(self._uop.dtype, value)  # (_uop: a view's dtype and shape are its base's, always)
      a = self if dt is self._uop.dtype else self.cast(dt)
      b = _const_tensor(_const_at(dt, value, a._uop.shape), self.device)
      return (b, a) if reverse else (a, b)
    else: raise TypeError(f"can't combine a Tensor with {type(other).__name__}")
    if reverse: a, b = b, a
    if a.shape == b.shape: return a, b
    shape = _broadcast_shape(a.shape, b.shape)
    return a.expand(shape), b.expand(shape)

  def _alu(self, op: Ops, *srcs: Tensor) -> Tensor:
    return self._new(self.uop.alu(op, *map(_uop_of, srcs)), *srcs)

  def add(self, other, reverse=False) -> Tensor:
    a, b = self._binop_operands(other, reverse)
    return a._alu(Ops.OR if a.uop.dtype is dtypes.bool else Ops.ADD, b)
  def sub(self, other, reverse=False) -> Tensor:
    a, b = self._binop_operands(other, reverse)
    if a.dtype == dtypes.bool: raise TypeError("subtraction of bool tensors is not supported; use logical_xor or ^")
    return a._alu(Ops.ADD, b._alu(Ops.NEG))
  def mul(self, other, reverse=False) -> Tensor:
    a, b = self._binop_operands(other, reverse)
    return a._alu(Ops.AND if a.dtype == dtypes.bool else Ops.MUL, b)
  def div(self, other, reverse=False, rounding_mode: str | None = None) -> Tensor:
    """True division (ints become floats), or rounding_mode 'trunc' / 'floor' like torch.div."""
    if rounding_mode not in (None, "trunc", "floor"): raise ValueError(f"rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
    if rounding_mode == "floor": return self.floordiv(other, reverse)
    if rounding_mode == "trunc":
      a, b = self._binop_operands(other, reverse)
      return a._int_div(b) if not dtypes.is_float(a.dtype) else (a / b).trunc()
    a, b = self._binop_operands(other, reverse)
    if not dtypes.is_float(a.dtype): a, b = a.cast(dtypes.default_float), b.cast(dtypes.default_float)
    return a._alu(Ops.MUL, b._alu(Ops.RECIP))
  def _int_div(self, b: Tensor) -> Tensor:
    """C-style truncating division that never traps: x // 0 gives 0 (like numpy) and MIN // -1 wraps."""
    zero = b == 0
    if dtypes.is_unsigned(self.dtype): return zero.where(0, self._alu(Ops.IDIV, zero.where(1, b))).cast(self.dtype)
    minus_one = b == -1  # MIN / -1 overflows and traps on x86: -x gives the wrapped answer instead
    q = self._alu(Ops.IDIV, (zero | minus_one).where(1, b).cast(b.dtype))
    return zero.where(0, minus_one.where(-self, q)).cast(self.dtype)
  def _int_mod(self, b: Tensor) -> Tensor:
    """C-style remainder (sign of the dividend) that never traps: x % 0 and x % -1 give 0."""
    unsafe = (b == 0) if dtypes.is_unsigned(self.dtype) else (b == 0) | (b == -1)
    return unsafe.where(0, self._alu(Ops.MOD, unsafe.where(1, b).cast(b.dtype))).cast(self.dtype)
  def floordiv(self, other, reverse=False) -> Tensor:
    """Floor division, like Python's // and torch.floor_divide: the quotient rounds toward -inf (-7 // 2 == -4,
    7 // -2 == -4). Integers: x // 0 is 0 (like numpy; PyTorch raises) and MIN // -1 wraps to MIN. Floats: floor(a / b)."""
    a, b = self._binop_operands(other, reverse)
    if dtypes.is_float(a.dtype): return (a / b).floor()
    if a.dtype == dtypes.bool: raise TypeError("floor division of bool tensors is not supported")
    q = a._int_div(b)
    if dtypes.is_unsigned(a.dtype): return q
    r = a._int_mod(b)
    return q - ((r != 0) & ((r < 0) != (b < 0))).cast(q.dtype)
  def mod(self, other, reverse=False) -> Tensor:
    """Remainder with the sign of the divisor, like Python's % and torch.remainder (-7 % 2 == 1, 7 % -2 == -1), so
    (a // b) * b + a % b == a. Integers: x % 0 is 0 (like numpy). Floats: a - floor(a / b) * b."""
    a, b = self._binop_operands(other, reverse)
    if dtypes.is_float(a.dtype): return a - (a / b).floor() * b
    if a.dtype == dtypes.bool: raise TypeError("modulo of bool tensors is not supported")
    r = a._int_mod(b)
    if dtypes.is_unsigned(a.dtype): return r
    return ((r != 0) & ((r < 0) != (b < 0))).where(r + b, r).cast(r.dtype)
  def neg(self) -> Tensor:
    if self.dtype == dtypes.bool: raise TypeError("negation of a bool tensor is not supported; use logical_not")
    return self._alu(Ops.NEG)
  def maximum(self, other) -> Tensor:
    a, b = self._binop_operands(other)
    return a._alu(Ops.MAX, b)
  def minimum(self, other) -> Tensor:
    a, b = self._binop_operands(other)
    if dtypes.is_float(a.dtype): return a._alu(Ops.NEG)._alu(Ops.MAX, b._alu(Ops.NEG))._alu(Ops.NEG)
    return (a < b).where(a, b)
  def where(self, x, y) -> Tensor:
    """self is the condition: x where true, y where false (numpy broadcasting, PyTorch promotion)."""
    cond = self.cast(dtypes.bool)
    if isinstance(x, Tensor): xt, yt = x._binop_operands(y)
    elif isinstance(y, Tensor): yt, xt = y._binop_operands(x)
    else:
      dt = dtypes.from_py([x, y]) if not isinstance(x, bool) or not isinstance(y, bool) else dtypes.bool
      xt, yt = Tensor(UOp.const(dt, x), device=self.device), Tensor(UOp.const(dt, y), device=self.device)
    if xt.device != cond.device: raise RuntimeError(f"tensors are on different devices: {cond.device} and {xt.device}")
    shape = _broadcast_shape(cond.shape, xt.shape, yt.shape)
    return cond.expand(shape)._alu(Ops.WHERE, xt.expand(shape), yt.expand(shape))

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
  def eq(self, x) -> Tensor: return self == x
  def ne(self, x) -> Tensor: return self != x
  def lt(self, x) -> Tensor: return self < x
  def le(self, x) -> Tensor: return self <= x
  def gt(self, x) -> Tensor: return self > x
  def ge(self, x) -> Tensor: return self >= x

  # logic and bits
  def logical_not(self) -> Tensor: return self.cast(dtypes.bool)._cmp(Ops.CMPNE, True)
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

  # unary math (ints compute in the default float, like PyTorch)
  def _float(self) -> Tensor: return self if dtypes.is_float(self.dtype) else self.cast(dtypes.default_float)
  def _in_float32(self, fn) -> Tensor:
    """Composed math on float16 runs in float32 and rounds once at the end (like PyTorch and numpy)."""
    x = self._float()
    return fn(x.float()).half() if x.dtype == dtypes.float16 else fn(x)
  def exp2(self) -> Tensor: return self._float()._alu(Ops.EXP2)
  def log2(self) -> Tensor: return self._float()._alu(Ops.LOG2)
  def exp(self) -> Tensor: return self._in_float32(lambda x: (x * (1 / math.log(2))).exp2())
  def log(self) -> Tensor: return self._in_float32(lambda x: x.log2() * math.log(2))
  def sqrt(self) -> Tensor: return self._float()._alu(Ops.SQRT)
  def rsqrt(self) -> Tensor: return self.sqrt().reciprocal()
  def reciprocal(self) -> Tensor: return self._float()._alu(Ops.RECIP)
  def sin(self) -> Tensor: return self._float()._alu(Ops.SIN)
  def cos(self) -> Tensor:
    """cos x = 1 - 2 sin^2(x/2): halving x is exact, so large x keep their accuracy (sin(pi/2 - x) would round
    pi/2 - x, an error of |x| * eps)."""
    return self._in_float32(lambda x: 1 - 2 * (x * 0.5).sin().square())
  def tan(self) -> Tensor: return self._in_float32(lambda x: x.sin() / x.cos())
  def relu(self) -> Tensor:
    """max(x, 0) like torch.relu: its gradient at 0 is 0 (not maximum's tie split) and relu(nan) is nan."""
    if not dtypes.is_float(self.dtype): return self.maximum(0)
    # where(0 < x or x is nan, x, 0), built as nodes at once: relu is in every MLP, and composing it from <=,
    # where and a broadcast constant cost 15 times the Python work
    x, zero = self.uop, _const_at(self.dtype, 0.0, self.shape)
    keep = zero.alu(Ops.CMPLT, x).alu(Ops.OR, x.alu(Ops.CMPNE, x))
    return self._new(keep.where(x, zero))
  def sigmoid(self) -> Tensor:
    """1 / (1 + e^-x), from e = e^-|x| on both sides (1 / (1 + e) for x >= 0, e / (1 + e) below): e is in (0, 1],
    so nothing overflows and the gradient stays finite (0, not inf * 0 = nan) at any |x|."""
    def f(x: Tensor) -> Tensor:
      negative = x < 0
      e = negative.where(x, -x).exp()
      r = (1 + e).reciprocal()
      return negative.where(e * r, r)
    return self._in_float32(f)
  def tanh(self) -> Tensor:
    """2 sigmoid(2x) - 1 (finite gradient at any |x|), and near 0 (|x| < 0.3) its odd Taylor polynomial to x^9
    (error < 1e-7 relative): the subtraction would cancel away up to 0.1% of tanh(1e-5)."""
    def f(x: Tensor) -> Tensor:
      small = x.abs() < 0.3
      xs = small.where(x, 0)  # the polynomial sees 0 elsewhere: nothing overflows in the branch not taken
      x2 = xs * xs
      series = xs * (1 + x2 * (-1 / 3 + x2 * (2 / 15 + x2 * (-17 / 315 + x2 * (62 / 2835)))))
      return small.where(series, 2.0 * (2.0 * x).sigmoid() - 1.0)
    return self._in_float32(f)
  def abs(self) -> Tensor:
    if self.dtype == dtypes.bool or dtypes.is_unsigned(self.dtype): return self
    return self.maximum(-self) if dtypes.is_float(self.dtype) else (self < 0).where(-self, self)
  def trunc(self) -> Tensor: return self._alu(Ops.TRUNC) if dtypes.is_float(self.dtype) else self
  def floor(self) -> Tensor:
    if not dtypes.is_float(self.dtype): return self
    t = self.trunc()
    return (self < t).where(t - 1, t)
  def ceil(self) -> Tensor:
    if not dtypes.is_float(self.dtype): return self
    t = self.trunc()
    return (self > t).where(t + 1, t)
  def square(self) -> Tensor: return self * self
  def sign(self) -> Tensor:
    if self.dtype == dtypes.bool: return self
    out = (self > 0).cast(self.dtype) - (self < 0).cast(self.dtype)
    return self.isnan().where(self, out) if dtypes.is_float(self.dtype) else out  # sign(nan) is nan, like numpy
  def clip(self, min_=None, max_=None) -> Tensor:
    """Clamp into [min_, max_] like torch.clamp: the gradient passes where min_ <= x <= max_ (the bounds included),
    tensor bounds get it where x is beyond them, NaN stays NaN with no gradient, and min_ > max_ gives max_."""
    x = self.isnan().where(math.nan, self) if dtypes.is_float(self.dtype) and (min_ is not None or max_ is not None) else self
    if min_ is not None: x = (x < min_).where(min_, x)
    return x if max_ is None else (x > max_).where(max_, x)
  clamp = clip
  def __pow__(self, exponent) -> Tensor: return self.pow(exponent)
  def __rpow__(self, base) -> Tensor: return Tensor(base, device=self.device).pow(self) if not isinstance(base, Tensor) else base.pow(self)
  def pow(self, exponent) -> Tensor:
    """x ** y like torch.pow. Integers to integer powers stay integers (exact, wrapping like PyTorch; a negative
    Python int power of an integer tensor is an error, as in PyTorch); a float on either side makes a float.
    Small integer powers of floats are repeated multiplies; others are exp2(y * log2|x|) with IEEE pow's signs and
    special cases, and PyTorch's gradients: y * x^(y-1) for x (0 where y = 0) and x^y * log(x) for y (0 where
    x = 0 and y >= 0), also at x = 0, where they are 0, 1 or inf."""
    if isinstance(exponent, np.generic): exponent = exponent.item()
    if self.dtype == dtypes.bool: return self.cast(dtypes.default_int).pow(exponent)
    if isinstance(exponent, (int, float)) and not isinstance(exponent, bool): return self._pow_scalar(exponent)
    a, b = self._binop_operands(exponent)
    if a.dtype == dtypes.bool: a, b = a.cast(dtypes.default_int), b.cast(dtypes.default_int)
    if not dtypes.is_float(a.dtype): return a._int_pow(b)
    if a.dtype == dtypes.float16: return a.float()._float_pow(b.float()).half()
    return a._float_pow(b)
  def _pow_scalar(self, exponent: int | float) -> Tensor:
    if not dtypes.is_float(self.dtype):
      if isinstance(exponent, float): return self._float()._pow_scalar(exponent)  # int ** 2.0 is a float, like torch
      if exponent < 0: raise RuntimeError(f"integers to negative integer powers are not allowed ({self.dtype} tensor ** {exponent}), as in PyTorch")
      return self._int_pow_scalar(exponent)
    if exponent == 0:
      # 1 everywhere (NaN ** 0 too, like IEEE pow), with gradient 0: the where keeps x in the graph, so backward()
      # reaches it and gives zeros like PyTorch (a bare constant would leave x out)
      ones = self.ones_like()
      return self.isnan().where(ones, ones)
    if float(exponent).is_integer() and abs(exponent) <= 8:
      # (1/x)^n for negative n, not 1/x^n: its gradient -n (1/x)^(n+1) is -inf at x = 0 like PyTorch's, where
      # 1/x^n's would be -inf * 0 = nan
      base = self if exponent > 0 else self.reciprocal()
      out = base
      for _ in range(int(abs(exponent)) - 1): out = out * base
      return out
    # like PyTorch, which takes sqrt and rsqrt for these (so (-0.0) ** 0.5 is -0.0 and (-inf) ** 0.5 is nan)
    if exponent == 0.5: return self.sqrt()
    if self.dtype == dtypes.float16: return self.float()._pow_scalar(exponent).half()
    e = _const_tensor(_const_at(self.dtype, float(exponent), self.shape), self.device)
    return self._float_pow(e, self.rsqrt() if exponent == -0.5 else None)
  def _int_pow_scalar(self, n: int) -> Tensor:
    """Integer x ** n (n >= 0) by repeated squaring: exact, wrapping on overflow like PyTorch."""
    out, square = None, self
    while n:
      if n & 1: out = square if out is None else out * square
      n >>= 1
      if n: square = square * square
    return self.ones_like() if out is None else out
  def _int_pow(self, e: Tensor) -> Tensor:
    """Integer x ** e for an integer tensor e (same dtype and shape), by squaring once per bit of e: exact and
    wrapping like PyTorch. A negative e gives what PyTorch's integer pow gives: 1 / x^-e truncated (1 for x = 1,
    +-1 for x = -1, else 0)."""
    bits = e.dtype.itemsize * 8 - (0 if dtypes.is_unsigned(e.dtype) else 1)
    out, square = self.ones_like(), self
    for i in range(bits):
      out = ((e >> i) & 1).cast(dtypes.bool).where(out * square, out)
      if i < bits - 1: square = square * square
    if dtypes.is_unsigned(e.dtype): return out
    odd = (e & 1).cast(dtypes.bool)
    below_one = (self == 1).where(1, (self == -1).where(odd.where(-1, 1), 0)).cast(self.dtype)
    return (e < 0).where(below_one, out)
  def _float_pow(self, e: Tensor, value: Tensor | None = None) -> Tensor:
    """x ** e for float x and e of one dtype (float32 or float64) and shape: the value composed from exp2 and log2
    (or the one given), its gradient by the "pow" rule (_pow_gradient) through a DETACH node (see gradient.py)."""
    if value is not None: return self._new(UOp(Ops.DETACH, self.dtype, (value.uop, self.uop, e.uop), "pow"), e)
    x = self
    magnitude = (e * x.abs().log2()).exp2()
    is_int = e.trunc() == e
    half = e * 0.5
    odd = is_int & (half.trunc() != half)
    sign_bit = (x < 0) | (x.reciprocal() < 0)  # -0.0 too: (-0.0) ** -1 is -inf
    value = (odd & sign_bit).where(-magnitude, magnitude)
    # a negative base is real only for integer exponents; (-inf) ** 2.5 is inf (IEEE pow), the magnitude
    value = ((x < 0) & is_int.logical_not() & (x != -math.inf)).where(math.nan, value)
    # IEEE pow: x ** 0 and 1 ** y are 1 whatever the other is (NaN too), and so is (-1) ** +-inf
    value = ((e == 0) | (x == 1) | ((x == -1) & e.isinf())).where(1.0, value)
    return self._new(UOp(Ops.DETACH, self.dtype, (value.uop, x.uop, e.uop), "pow"), e)

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
  def __matmul__(self, x): return self.matmul(x)

  # ---- reductions ----
  def _axes(self, axis) -> tuple[int, ...]:
    if axis is None: return tuple(range(self.ndim))
    axes = [axis] if isinstance(axis, (int, np.integer)) else list(axis)
    out = tuple(sorted({_canon_axis(a, self.ndim) for a in axes}))
    if len(out) != len(axes): raise ValueError(f"axis {axis} names the same dimension twice")
    return out if self.ndim else ()
  def _reduce(self, op: Ops, axis, keepdim: bool) -> Tensor:
    axes = self._axes(axis)
    folded = uniform_reduces.rewrite(UOp(Ops.REDUCE_AXIS, self.dtype, (self.uop,), (op, axes))) if axes else None
    if not axes: out = self
    elif folded is not None: out = self._new(folded)
    elif self.numel() > INDEX_MAX:
      raise ValueError(f"a reduce over shape {self.shape} ({self.numel()} elements) needs more than 64-bit indices "
                       f"can count ({INDEX_MAX}); only reduces of a constant fold without a loop")
    elif (split := _reduce_split(self, op, axes)) is not None:
      # float16 partial sums stay float32 (rounded once at the end, as mean does): half can't hold them
      wide = self.cast(dtypes.float32) if self.dtype == dtypes.float16 else self
      out = wide._split_reduce(op, axes, split).cast(self.dtype)
    elif (chunks := _reduce_chunks(self, op, axes)) is not None: out = self._chunked_reduce(op, axes[0], chunks)
    else: out = self._reduce_axis(op, axes)
    return out if keepdim else out.reshape(tuple(s for i, s in enumerate(self.shape) if i not in axes))
  def _reduce_axis(self, op: Ops, axes: tuple[int, ...]) -> Tensor:
    """The REDUCE_AXIS node itself: reduced axes kept as size 1."""
    return self._new(UOp(Ops.REDUCE_AXIS, self.dtype, (self.uop,), (op, axes)))
  def _split_reduce(self, op: Ops, axes: tuple[int, ...], split: int) -> Tensor:
    """A big reduce to few outputs in two kernels: `split` partial results per output first (parallel work for
    every core or compute unit), then the reduce of those. Keeps the reduced axes as size 1, like REDUCE_AXIS."""
    kept = [i for i in range(self.ndim) if i not in axes]
    n_out, n_reduced = math.prod(self.shape[i] for i in kept), math.prod(self.shape[i] for i in axes)
    chunk = -(-n_reduced // split)
    x = self.permute(kept + list(axes)).reshape(n_out, n_reduced)
    if split * chunk != n_reduced: x = x.pad(((0, 0), (0, split * chunk - n_reduced)))  # zeros: they add nothing
    partials = x.reshape(n_out, split, chunk)._reduce_axis(op, (2,)).contiguous()
    total = partials._reduce(op, 1, keepdim=True)  # (which splits again when there are many partial sums)
    return total.reshape(tuple(1 if i in axes else s for i, s in enumerate(self.shape)))
  def _chunked_reduce(self, op: Ops, axis: int, chunks: int) -> Tensor:
    """A long reduce over a big broadcast product (a large matmul) in two kernels: partial results over `chunks`
    slices of the reduce axis first, the slice index outermost (so each core works through one slice of the
    inputs, which stays in its cache), then their sum."""
    shape = self.shape
    x = self.reshape(shape[:axis] + (chunks, shape[axis] // chunks) + shape[axis + 1:])
    order = [axis] + [i for i in range(x.ndim) if i not in (axis, axis + 1)] + [axis + 1]
    x = x.permute(order)
    total = x._reduce_axis(op, (x.ndim - 1,)).contiguous()._reduce_axis(op, (0,))
    return total.reshape(shape[:axis] + (1,) + shape[axis + 1:])
  def sum(self, axis=None, keepdim=False, dtype=None) -> Tensor:
    """Sum over axes. bool and int tensors sum in int64 (like PyTorch); float16 sums accumulate in float32."""
    x = self.cast(dtype) if dtype is not None else (self.cast(dtypes.int64) if not dtypes.is_float(self.dtype) and self.dtype != dtypes.uint64 else self)
    return x._reduce(Ops.ADD, axis, keepdim)
  def prod(self, axis=None, keepdim=False) -> Tensor:
    x = self if dtypes.is_float(self.dtype) else self.cast(dtypes.int64)
    return x._reduce(Ops.MUL, axis, keepdim)
  def max(self, axis=None, keepdim=False) -> Tensor:
    """The largest value over `axis` (all axes by default), like torch.amax. Only the values: its gradient is split
    evenly among tied maxima (as torch's amax and max() without a dim do), where torch.max(x, dim) also returns
    indices and sends the whole gradient to the one element each index names."""
    axes = self._axes(axis)
    if any(self.shape[a] == 0 for a in axes): raise ValueError(f"max of an empty tensor (shape {self.shape}, axis {axis}) has no identity")
    return self._reduce(Ops.MAX, axis, keepdim) if self.dtype != dtypes.bool else self.cast(dtypes.uint8)._reduce(Ops.MAX, axis, keepdim).cast(dtypes.bool)
  def min(self, axis=None, keepdim=False) -> Tensor:
    """The smallest value over `axis`, like torch.amin: ties share the gradient evenly (see max)."""
    axes = self._axes(axis)
    if any(self.shape[a] == 0 for a in axes): raise ValueError(f"min of an empty tensor (shape {self.shape}, axis {axis}) has no identity")
    if dtypes.is_float(self.dtype): return -((-self).max(axis, keepdim))
    if self.dtype == dtypes.bool: return self.logical_not().max(axis, keepdim).logical_not()
    # Ints are negated, never bitwise-NOTed (see argmin): Intel's OpenCL CPU compiler miscompiles max of ~x
    if self.dtype.itemsize <= 4:  # in int64, -x reverses the order of every narrower int, without overflow
      return (-((-self.cast(dtypes.int64)).max(axis, keepdim))).cast(self.dtype)
    # 64-bit: the lowest value (INT64_MIN, unsigned 0) negates to itself, so a reduction holding it answers with
    # it; the others negate with it set to 0 first (no overflow)
    lowest_value = dtypes.min(self.dtype)
    lowest = self == lowest_value
    negated = -(lowest.where(0, self))
    return lowest.any(axis, keepdim).where(lowest_value, -(negated.max(axis, keepdim)))
  def mean(self, axis=None, keepdim=False) -> Tensor:
    x = self._float()
    count = math.prod(self.shape[a] for a in self._axes(axis))
    scale = 1 / count if count else float("nan")
    # float16 divides the float32 sum before rounding, like PyTorch: a sum past 65504 may still have a finite mean
    if x.dtype == dtypes.float16: return (x.sum(axis, keepdim, dtype=dtypes.float32) * scale).cast(dtypes.float16)
    return x.sum(axis, keepdim) * scale

  # ---- linear algebra (composed) ----
  def dot(self, w: Tensor) -> Tensor: return self.matmul(w)
  def matmul(self, w: Tensor) -> Tensor:
    if self.ndim == 0 or w.ndim == 0: raise ValueError(f"matmul needs tensors with at least 1 dimension, got {self.shape} and {w.shape}")
    a = self.unsqueeze(0) if self.ndim == 1 else self
    b = w.unsqueeze(1) if w.ndim == 1 else w
    if a.shape[-1] != b.shape[-2]: raise ValueError(f"matmul shapes {self.shape} and {w.shape} don't match: {a.shape[-1]} != {b.shape[-2]}")
    try: _broadcast_shape(a.shape[:-2], b.shape[:-2])
    except ValueError: raise ValueError(f"matmul batch dimensions of {self.shape} and {w.shape} can't be broadcast together") from None
    if _wants_reduce_contiguous(a, b): b = b.transpose(-1, -2).contiguous().transpose(-1, -2)
    # (..., n, k, 1) * (..., 1, k, m) summed over k
    out = (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2, dtype=promote(a.dtype, b.dtype) if not dtypes.is_float(promote(a.dtype, b.dtype)) else None)
    if self.ndim == 1: out = out.squeeze(-2)
    if w.ndim == 1: out = out.squeeze(-1)
    return out

  # ---- random, math and reductions (issue 3) ----
  # Random numbers come from Threefry-2x32 (20 rounds, Salmon et al. 2011, as in JAX and tinygrad) computed on the
  # device with uint32 adds, shifts and xors. The counter is (element index, high word of the seed) and the key is
  # (low word of the seed, a call counter that advances on every draw), so two draws differ, a seed replays the same
  # stream, and every device gives the same bits. The key lives in a tiny device buffer rather than in the kernel
  # source, so each new draw of the same shape reuses the compiled kernel.
  _seed: int = 0
  _rng_counter: int = 0
  @staticmethod
  def manual_seed(seed: int = 0):
    """Seed the generator (any int; 64 bits are used) and restart its stream."""
    with _rng_lock: Tensor._seed, Tensor._rng_counter = int(seed) % 2**64, 0
  @staticmethod
  def _threefry2x32(x0: Tensor, x1: Tensor, k0: Tensor, k1: Tensor) -> tuple[Tensor, Tensor]:
    """Threefry-2x32 with 20 rounds on uint32 tensors (uint32 math wraps mod 2**32)."""
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    ks = (k0, k1, k0 ^ k1 ^ 0x1BD11BDA)
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for i in range(5):
      for r in rotations[i % 2]:
        x0 = x0 + x1
        x1 = ((x1 << r) | (x1 >> (32 - r))) ^ x0
      x0, x1 = x0 + ks[(i + 1) % 3], x1 + ks[(i + 2) % 3] + (i + 1)
    return x0, x1
  @staticmethod
  def _take_draws(n: int) -> int:
    """Take the generator's next n draws; returns the number of the first. At once, under a lock: two threads
    drawing together must not both get the same numbers."""
    with _rng_lock:
      first = Tensor._rng_counter
      Tensor._rng_counter = first + n
    return first
  @staticmethod
  def _rng_key(counter: int) -> np.ndarray:
    """The key words of draw number `counter` of the current seed (TinyJit rewrites key buffers with them)."""
    seed = Tensor._seed
    return np.array([seed & 0xFFFFFFFF, counter & 0xFFFFFFFF, seed >> 32], dtype=np.uint32)
  @staticmethod
  def _random_bits(n: int, device=None) -> Tensor:
    """n random uint32s (shape (n,)) for the next draw of the generator."""
    counter = Tensor._take_draws(1)
    key = Tensor(Tensor._rng_key(counter), device=device)
    rng_key_buffers[buffer_of(key.uop)] = counter
    k0, k1, hi = key[0], key[1], key[2]
    half = (n + 1) // 2
    x0, x1 = Tensor._threefry2x32(Tensor.arange(half, dtype=dtypes.uint32, device=device), hi, k0, k1)
    # interleave the two output words: bits[2i] = x0[i], bits[2i+1] = x1[i]
    bits = x0.reshape(half, 1).pad(((0, 0), (0, 1))) + x1.reshape(half, 1).pad(((0, 0), (1, 0)))
    return bits.reshape(2 * half).shrink(((0, n),))
  @staticmethod
  def rand(*shape, dtype=None, device=None, requires_grad=None) -> Tensor:
    """Uniform in [0, 1). float32 uses the top 24 bits of each random word, float16 the top 11 and float64 all 32,
    so every value is exact and 1.0 never appears."""
    shape, dt = _new_shape(shape), to_dtype(dtype) if dtype is not None else dtypes.default_float
    if not dtypes.is_float(dt): raise TypeError(f"rand makes floats, not {dt}")
    n, mbits = math.prod(shape), {2: 11, 4: 24, 8: 32}[dt.itemsize]
    if n == 0: return Tensor._as_leaf(Tensor.zeros(shape, dtype=dt, device=device), requires_grad)
    bits = Tensor._random_bits(n, device)
    compute = dtypes.float64 if dt == dtypes.float64 else dtypes.float32
    out = ((bits >> (32 - mbits)).cast(compute) * (2.0 ** -mbits)).cast(dt).reshape(shape)
    return Tensor._as_leaf(out, requires_grad)
  @staticmethod
  def randn(*shape, dtype=None, device=None, requires_grad=None) -> Tensor:
    """Standard normal by the Box-Muller transform of two uniforms (computed in float32, or float64 for float64)."""
    shape, dt = _new_shape(shape), to_dtype(dtype) if dtype is not None else dtypes.default_float
    u = Tensor.rand(2, *shape, dtype=dtypes.float64 if dt == dtypes.float64 else dtypes.float32, device=device)
    out = ((1 - u[0]).log() * -2).sqrt() * (u[1] * (2 * math.pi)).cos()  # 1-u is in (0, 1]: the log is finite
    return Tensor._as_leaf(out.cast(dt), requires_grad)
  @staticmethod
  def randint(*args, low=None, high=None, shape=None, size=None, dtype=None, device=None, requires_grad=None) -> Tensor:
    """Integers in [low, high); int32 by default (teeny's default int). Takes PyTorch's forms randint(high, size),
    randint(low, high, size) (size a tuple, or shape=/size= keywords) and tinygrad's randint(*shape, low=0, high=10).
    Drawn as random uint32 mod the range, exact on every device (bias < range / 2**32)."""
    shape = shape if shape is not None else size
    if shape is None and args and isinstance(args[-1], (tuple, list)): shape, args = args[-1], args[:-1]
    if shape is not None:  # PyTorch: the positional ints are (high,) or (low, high)
      if len(args) > 2: raise TypeError(f"randint takes (high, size) or (low, high, size), got {args} and size {shape}")
      if len(args) == 2: low, high = args
      elif len(args) == 1: low, high = (0, args[0]) if high is None else (args[0], high)
    else: shape = args  # tinygrad: the positional ints are the shape
    low, high = 0 if low is None else int(low), 10 if high is None else int(high)
    if high <= low: raise ValueError(f"randint needs low < high, got low={low} high={high}")
    if high - low > 2**32: raise ValueError(f"randint range [{low}, {high}) is wider than 2**32")
    shape = _new_shape(shape if isinstance(shape, (tuple, list)) else (shape,))
    dt = to_dtype(dtype) if dtype is not None else dtypes.default_int
    n = math.prod(shape)
    if n == 0: return Tensor._as_leaf(Tensor.zeros(shape, dtype=dt, device=device), requires_grad)
    bits = Tensor._random_bits(n, device)
    r = bits if high - low == 2**32 else bits % (high - low)
    return Tensor._as_leaf((r.cast(dtypes.int64) + low).cast(dt).reshape(shape), requires_grad)
  @staticmethod
  def uniform(*shape, low=0.0, high=1.0, dtype=None, device=None, requires_grad=None) -> Tensor:
    out = Tensor.rand(*shape, dtype=dtype, device=device) * (high - low) + low
    return Tensor._as_leaf(out.cast(dtype or dtypes.default_float), requires_grad)
  @staticmethod
  def normal(*shape, mean=0.0, std=1.0, dtype=None, device=None, requires_grad=None) -> Tensor:
    out = Tensor.randn(*shape, dtype=dtype, device=device) * std + mean
    return Tensor._as_leaf(out.cast(dtype or dtypes.default_float), requires_grad)
  @staticmethod
  def scaled_uniform(*shape, requires_grad: bool | None = None, **kw) -> Tensor:
    """Uniform in [-1, 1) scaled by numel ** -0.5 (tinygrad)."""
    out = Tensor.uniform(*shape, low=-1.0, high=1.0, **kw).mul(math.prod(_shape_arg(shape)) ** -0.5)
    return Tensor._as_leaf(out, requires_grad)
  @staticmethod
  def glorot_uniform(*shape, **kw) -> Tensor:
    """Xavier/Glorot uniform: bound sqrt(6 / (fan_in + fan_out)), with fan_out = shape[0] (tinygrad's convention)."""
    shape = _shape_arg(shape)
    bound = math.sqrt(6 / (shape[0] + math.prod(shape[1:])))
    return Tensor.uniform(*shape, low=-bound, high=bound, **kw)
  @staticmethod
  def kaiming_uniform(*shape, a: float = 0.01, **kw) -> Tensor:
    """He uniform with leaky-relu gain sqrt(2 / (1 + a^2)) and fan_in = prod(shape[1:]), like tinygrad/PyTorch."""
    shape = _shape_arg(shape)
    bound = math.sqrt(3.0) * math.sqrt(2.0 / (1 + a ** 2)) / math.sqrt(math.prod(shape[1:]))
    return Tensor.uniform(*shape, low=-bound, high=bound, **kw)
  @staticmethod
  def kaiming_normal(*shape, a: float = 0.01, **kw) -> Tensor:
    shape = _shape_arg(shape)
    std = math.sqrt(2.0 / (1 + a ** 2)) / math.sqrt(math.prod(shape[1:]))
    return Tensor.normal(*shape, mean=0.0, std=std, **kw)
  def rand_like(self, **kw) -> Tensor:
    dt = kw.pop("dtype", self.dtype if dtypes.is_float(self.dtype) else dtypes.default_float)
    return Tensor.rand(*self.shape, dtype=dt, device=kw.pop("device", self.device), **kw)
  def randn_like(self, **kw) -> Tensor:
    dt = kw.pop("dtype", self.dtype if dtypes.is_float(self.dtype) else dtypes.default_float)
    return Tensor.randn(*self.shape, dtype=dt, device=kw.pop("device", self.device), **kw)

  # activations and more unary math (composed; branches kept finite so gradients through where() stay finite)
  def _log1p(self) -> Tensor:
    """log(1 + x) without losing small x: log(u) * x / (u - 1) with u = 1 + x (Goldberg's trick)."""
    u = 1 + self
    exact = u == 1
    return exact.where(self, u.log() * self / exact.where(1.0, u - 1))
  def log10(self) -> Tensor: return self.log2() * (1 / math.log2(10))
  def sinh(self) -> Tensor: return self._in_float32(lambda x: (x.exp() - (-x).exp()) * 0.5)
  def cosh(self) -> Tensor: return self._in_float32(lambda x: (x.exp() + (-x).exp()) * 0.5)
  def erf(self) -> Tensor:
    """Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7)."""
    def f(x: Tensor) -> Tensor:
      t = 1.0 / (1.0 + 0.3275911 * x.abs())
      poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
      return x.sign() * (1.0 - poly * (-x * x).exp())
    return self._in_float32(f)
  def gelu(self, approximate: str = "tanh") -> Tensor:
    """GELU. The default is the tanh approximation (tinygrad's gelu); approximate='none' is PyTorch's exact erf form."""
    if approximate == "none": return self._in_float32(lambda x: 0.5 * x * (1 + (x * (1 / math.sqrt(2))).erf()))
    if approximate != "tanh": raise ValueError(f"gelu approximate must be 'tanh' or 'none', got {approximate!r}")
    return self._in_float32(lambda x: 0.5 * x * (1 + (math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)).tanh()))
  def quick_gelu(self) -> Tensor: return self * (self * 1.702).sigmoid()
  def silu(self) -> Tensor: return self * self.sigmoid()
  swish = silu
  # the piecewise functions below pick a branch with where() so that the gradient at each kink is PyTorch's (at
  # x = 0 leaky_relu takes the slope, elu and celu the exp side), where max/min would split a tie in two
  def leakyrelu(self, neg_slope: float = 0.01) -> Tensor: return (self > 0).where(self, self * neg_slope)
  leaky_relu = leakyrelu
  def elu(self, alpha: float = 1.0) -> Tensor:
    below = self <= 0
    return below.where(alpha * (below.where(self, 0).exp() - 1), self)  # exp only of x <= 0: finite both ways
  def celu(self, alpha: float = 1.0) -> Tensor:
    below = self <= 0
    return below.where(alpha * ((below.where(self, 0) / alpha).exp() - 1), self)
  def selu(self, alpha: float = 1.67326, gamma: float = 1.0507) -> Tensor: return gamma * self.elu(alpha)
  def softplus(self, beta: float = 1.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, computed as max(bx, 0) + log1p(exp(-|bx|)): no overflow, no lost tail. Both
    parts pick their side with one comparison, so the gradient at 0 is 1/2 like PyTorch's."""
    def f(x: Tensor) -> Tensor:
      bx = x * beta
      above = bx > 0
      return (above.where(bx, 0) + above.where(-bx, bx).exp()._log1p()) * (1 / beta)
    return self._in_float32(f)
  def mish(self) -> Tensor: return self * self.softplus().tanh()
  def hardtanh(self, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """clip to [min_val, max_val] with torch's hardtanh gradient: 0 at the bounds themselves (clip passes it there)."""
    return (self <= min_val).where(min_val, (self >= max_val).where(max_val, self))
  def relu6(self) -> Tensor: return self.hardtanh(0, 6)  # torch's relu6 is hardtanh(0, 6), gradient included
  def hardsigmoid(self, alpha: float = 1 / 6, beta: float = 0.5) -> Tensor:
    """clip(alpha x + beta, 0, 1); like torch the gradient is alpha strictly inside (0, 1), else 0 (NaN too)."""
    u = alpha * self + beta
    return (u >= 1).where(1.0, (u > 0).where(u, u.isnan().where(math.nan, 0.0)))
  def hardswish(self) -> Tensor:
    """x * relu6(x + 3) / 6, with torch's gradient: 0 up to -3 (included), x / 3 + 1/2 below 3, then 1."""
    middle = self < 3
    x = middle.where(self, 0)  # the quadratic side sees 0 elsewhere: NaN takes the x side with gradient 1, not 0 * nan
    return (self <= -3).where(0.0, middle.where(x * (x + 3) * (1 / 6), self))
  def softsign(self) -> Tensor: return self / (1 + self.abs())
  def logsigmoid(self) -> Tensor: return -(-self).softplus()
  def round(self) -> Tensor:
    """Round half to even, like numpy and torch.round."""
    if not dtypes.is_float(self.dtype): return self
    f = self.floor()
    d = self - f  # exact: the fractional part of a float is a float
    f_even = (f * 0.5).floor() * 2 == f
    return (d > 0.5).where(f + 1, (d < 0.5).where(f, f_even.where(f, f + 1)))
  def lerp(self, end, weight) -> Tensor: return self + (end - self) * weight
  def isnan(self) -> Tensor: return self != self if dtypes.is_float(self.dtype) else self.full_like(False, dtype=dtypes.bool)
  def isinf(self, detect_positive: bool = True, detect_negative: bool = True) -> Tensor:
    if not dtypes.is_float(self.dtype): return self.full_like(False, dtype=dtypes.bool)
    pos = (self == math.inf) if detect_positive else self.full_like(False, dtype=dtypes.bool)
    return pos | (self == -math.inf) if detect_negative else pos
  def isfinite(self) -> Tensor:
    return (self - self) == 0 if dtypes.is_float(self.dtype) else self.full_like(True, dtype=dtypes.bool)
  def _logical(self, other) -> tuple[Tensor, Tensor]:
    other = other if isinstance(other, Tensor) else Tensor(bool(other), device=self.device)
    return self.cast(dtypes.bool), other.cast(dtypes.bool)
  def logical_and(self, other) -> Tensor:
    a, b = self._logical(other)
    return a & b
  def logical_or(self, other) -> Tensor:
    a, b = self._logical(other)
    return a | b
  def logical_xor(self, other) -> Tensor:
    a, b = self._logical(other)
    return a ^ b
  def bitwise_and(self, other) -> Tensor: return self & other
  def bitwise_or(self, other) -> Tensor: return self | other
  def bitwise_xor(self, other) -> Tensor: return self ^ other
  def bitwise_not(self) -> Tensor:
    if dtypes.is_float(self.dtype): raise TypeError(f"bitwise_not needs int or bool tensors, got {self.dtype}")
    return ~self
  def lshift(self, x) -> Tensor: return self << x
  def rshift(self, x) -> Tensor: return self >> x

  # more reductions
  def _reduced_shape(self, axis, keepdim: bool) -> tuple[int, ...]:
    axes = self._axes(axis)
    return tuple(1 if i in axes else s for i, s in enumerate(self.shape) if keepdim or i not in axes)
  def var(self, axis=None, keepdim=False, correction=1) -> Tensor:
    """Variance with Bessel's correction by default (like torch.var); N - correction <= 0 gives inf or nan.
    float16 computes in float32 and rounds once: its sum of squares passes 65504 long before the variance does."""
    x = self._float()
    if x.dtype == dtypes.float16: return x.float().var(axis, keepdim, correction).half()
    n = math.prod(self.shape[a] for a in self._axes(axis))
    sq = (x - x.mean(axis, keepdim=True)).square().sum(axis, keepdim)
    return sq.div(max(0, n - correction))
  def std(self, axis=None, keepdim=False, correction=1) -> Tensor: return self.var(axis, keepdim, correction).sqrt()
  def var_mean(self, axis=None, keepdim=False, correction=1) -> tuple[Tensor, Tensor]:
    return self.var(axis, keepdim, correction), self.mean(axis, keepdim)
  def std_mean(self, axis=None, keepdim=False, correction=1) -> tuple[Tensor, Tensor]:
    return self.std(axis, keepdim, correction), self.mean(axis, keepdim)
  def argmax(self, axis=None, keepdim=False) -> Tensor:
    """Index of the largest value, the first one on ties and NaN counting as largest (like numpy). int32 (teeny's
    default int, as in tinygrad; torch gives int64). axis=None searches the flattened tensor."""
    if axis is None:
      out = self.reshape(-1).argmax(0) if self.ndim else Tensor(0, device=self.device)
      return out.reshape((1,) * self.ndim) if keepdim else out
    ax = _canon_axis(axis, self.ndim)
    if self.ndim == 0: return Tensor(0, device=self.device)
    n = self.shape[ax]
    if n == 0: raise ValueError(f"argmax of an empty axis (shape {self.shape}, axis {axis})")
    # a float expression is stored once first: recomputed in two kernels it need not give the same bits (LLVM may
    # vectorize sin with libmvec in one and call libm in the other), and then nothing would equal the max
    x = self.contiguous() if dtypes.is_float(self.dtype) and not is_buffer_view(self.uop) else self
    hit = x == x.max(ax, keepdim=True)
    if dtypes.is_float(self.dtype):  # NaN counts as the largest value, like numpy and torch
      nan = x.isnan()
      hit = nan.any(ax, keepdim=True).where(nan, hit)
    # n - index counts down, so the largest marks the first hit
    rev = Tensor.arange(n, 0, -1, dtype=dtypes.int32, device=self.device).reshape((n,) + (1,) * (self.ndim - ax - 1))
    return (n - hit.where(rev, 0).max(ax, keepdim)).cast(dtypes.int32)
  def argmin(self, axis=None, keepdim=False) -> Tensor:
    """Index of the smallest value, the first one on ties and NaN counting as smallest (like numpy and torch);
    int32 like argmax. Ints are negated, never bitwise-NOTed: ~x would reverse their order exactly, but Intel's
    OpenCL CPU compiler miscompiles max of ~x."""
    if dtypes.is_float(self.dtype): return (-self).argmax(axis, keepdim)  # -NaN is NaN: argmax finds it first
    if self.dtype == dtypes.bool: return self.logical_not().argmax(axis, keepdim)
    if self.dtype.itemsize <= 4:  # in int64, -x reverses the order of every narrower int, without overflow
      return (-self.cast(dtypes.int64)).argmax(axis, keepdim)
    # 64-bit: -x reverses the order of every value but the lowest (INT64_MIN negates to itself, unsigned 0 to 0).
    # A row holding the lowest value answers with its first one; the others negate with it set to 0 (no overflow)
    lowest = self == dtypes.min(self.dtype)
    negated = -(lowest.where(0, self))
    return lowest.any(axis, keepdim).where(lowest.argmax(axis, keepdim), negated.argmax(axis, keepdim))
  def any(self, axis=None, keepdim=False) -> Tensor:
    if any(self.shape[a] == 0 for a in self._axes(axis)): return Tensor.full(self._reduced_shape(axis, keepdim), False, device=self.device)
    return (self != 0).max(axis, keepdim)
  def all(self, axis=None, keepdim=False) -> Tensor: return (self == 0).any(axis, keepdim).logical_not()
  def logsumexp(self, axis=None, keepdim=False) -> Tensor:
    """log(sum(exp(x))) shifted by the max so large logits don't overflow; rows of -inf give -inf, and so does an
    empty axis (log of an empty sum, like PyTorch)."""
    if any(self.shape[a] == 0 for a in self._axes(axis)):
      return Tensor.full(self._reduced_shape(axis, keepdim), -math.inf, dtype=self._float().dtype, device=self.device)
    m = self._float().max(axis, keepdim=True).detach()
    m = m.isinf().where(0.0, m)
    out = (self - m).exp().sum(axis, keepdim=True).log() + m
    return out if keepdim else out.reshape(self._reduced_shape(axis, False))
  def softmax(self, axis=-1, dtype=None) -> Tensor:
    x = self.cast(dtype) if dtype is not None else self._float()
    if x.numel() == 0: return x  # nothing to normalize (and an empty axis has no max)
    e = (x - x.max(axis, keepdim=True).detach()).exp()
    return e / e.sum(axis, keepdim=True)
  def log_softmax(self, axis=-1, dtype=None) -> Tensor:
    x = self.cast(dtype) if dtype is not None else self._float()
    if x.numel() == 0: return x
    shifted = x - x.max(axis, keepdim=True).detach()
    return shifted - shifted.exp().sum(axis, keepdim=True).log()
  def _cum_last(self, op: str) -> Tensor:
    """Inclusive scan over the last axis. Small axes: out[i] = reduce over j <= i, a masked (n, n) reduce that one
    kernel computes. Long axes split into blocks of 256: scan each block, scan the block totals, add the offsets."""
    n, block = self.shape[-1], 256
    if n <= 2 * block:
      idx = Tensor.arange(n, dtype=dtypes.int32, device=self.device)
      keep = idx.reshape(n, 1) >= idx.reshape(1, n)  # row i keeps j <= i
      fill = 0 if op == "sum" else dtypes.min(self.dtype)
      masked = keep.where(self.unsqueeze(-2), Tensor.full((), fill, dtype=self.dtype, device=self.device))
      return masked.sum(-1, dtype=self.dtype) if op == "sum" else masked.max(-1)
    nb = math.ceil(n / block)
    fill = 0 if op == "sum" else dtypes.min(self.dtype)
    x = self.pad(((0, 0),) * (self.ndim - 1) + ((0, nb * block - n),), value=fill).reshape(*self.shape[:-1], nb, block)
    inner = x._cum_last(op)
    totals = inner.shrink(tuple((0, s) for s in inner.shape[:-1]) + ((block - 1, block),)).squeeze(-1)
    before = totals._cum_last(op).pad(((0, 0),) * (totals.ndim - 1) + ((1, 0),), value=fill).shrink(tuple((0, s) for s in totals.shape))
    out = inner + before.unsqueeze(-1) if op == "sum" else inner.maximum(before.unsqueeze(-1))
    return out.reshape(*self.shape[:-1], nb * block).shrink(tuple((0, s) for s in self.shape))
  def cumsum(self, axis: int = 0) -> Tensor:
    """Inclusive prefix sum along axis. bool and int tensors sum in int64 (like PyTorch)."""
    if self.ndim == 0: return self.sum()
    ax = _canon_axis(axis, self.ndim)
    x = self if dtypes.is_float(self.dtype) or self.dtype == dtypes.uint64 else self.cast(dtypes.int64)
    if self.shape[ax] == 0: return x
    return x.transpose(ax, -1)._cum_last("sum").transpose(ax, -1)
  def cummax(self, axis: int = 0) -> Tensor:
    """Running maximum along axis (the values only, like tinygrad; torch also returns indices)."""
    if self.ndim == 0: return self
    ax = _canon_axis(axis, self.ndim)
    if self.shape[ax] == 0: return self
    x = self.cast(dtypes.uint8) if self.dtype == dtypes.bool else self
    out = x.transpose(ax, -1)._cum_last("max").transpose(ax, -1)
    return out.cast(dtypes.bool) if self.dtype == dtypes.bool else out

  # ---- joining, splitting and selecting (composed from views, where and reductions) ----
  def cat(self, *others: Tensor, dim: int = 0) -> Tensor:
    """Join tensors along dim: each is padded with zeros out to the full length and the pieces are added. Called as
    a.cat(b, c, dim=1) (tinygrad) or Tensor.cat([a, b, c], dim=1) (like torch.cat). dtypes promote like PyTorch."""
    tensors = list(self) if isinstance(self, (list, tuple)) else [self, *others]
    if not tensors: raise ValueError("cat needs at least one tensor")
    first = tensors[0]
    for t in tensors:
      if not isinstance(t, Tensor): raise TypeError(f"cat takes tensors, got {type(t).__name__}")
      if t.device != first.device: raise RuntimeError(f"cat of tensors on different devices: {first.device} and {t.device}")
      if t.ndim != first.ndim: raise ValueError(f"cat of tensors with different numbers of dimensions: {first.shape} and {t.shape}")
    d = _canon_axis(dim, first.ndim)
    for t in tensors:
      if any(a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != d):
        raise ValueError(f"cat along dim {dim}: shapes {first.shape} and {t.shape} differ in another dimension")
    dt = first.dtype
    for t in tensors[1:]: dt = promote(dt, t.dtype)
    if len(tensors) > 16 and all(t._host_constant() is not None for t in tensors):
      # e.g. a stack of Python numbers: one upload, not a kernel with a masked term per piece
      return Tensor(np.concatenate([t._host_constant() for t in tensors], axis=d), device=first.device, dtype=dt)
    if len(tensors) > 32:
      # many pieces: join them 32 at a time first. Each group's kernel has the same code (only the buffers differ),
      # so one compile serves them all, and no kernel gets a masked term for every piece.
      groups = [Tensor.cat(*tensors[i:i + 32], dim=d).contiguous() for i in range(0, len(tensors), 32)]
      return Tensor.cat(*groups, dim=d)
    total = sum(t.shape[d] for t in tensors)
    pieces, offset = [], 0
    for t in tensors:
      pad = [(0, 0)] * first.ndim
      pad[d] = (offset, total - offset - t.shape[d])
      pieces.append(t.cast(dt).pad(tuple(pad)))
      offset += t.shape[d]
    out = pieces[0]
    for p in pieces[1:]: out = out + p
    return out
  def _host_constant(self) -> np.ndarray | None:
    """The values of a tensor that is a constant filled out to a shape (known without running anything), else None."""
    u = self.uop
    while u.op in (Ops.RESHAPE, Ops.EXPAND): u = u.src[0]
    if u.op is not Ops.CONST or self.numel() > 4096: return None
    return np.full(self.shape, u.arg, dtype=self.dtype.np)
  def stack(self, *others: Tensor, dim: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis dim (Tensor.stack([a, b]) or a.stack(b))."""
    tensors = list(self) if isinstance(self, (list, tuple)) else [self, *others]
    if not tensors: raise ValueError("stack needs at least one tensor")
    for t in tensors:
      if t.shape != tensors[0].shape: raise ValueError(f"stack needs tensors of one shape, got {tensors[0].shape} and {t.shape}")
    d = _canon_axis(dim, tensors[0].ndim + 1)
    return Tensor.cat(*[t.unsqueeze(d) for t in tensors], dim=d)
  def split(self, sizes: int | Sequence[int], dim: int = 0) -> tuple[Tensor, ...]:
    """Pieces of length `sizes` along dim (the last may be shorter), or pieces of the listed lengths."""
    d = _canon_axis(dim, self.ndim)
    n = self.shape[d]
    if isinstance(sizes, int):
      if sizes <= 0: raise ValueError(f"split size must be positive, got {sizes}")
      sizes = [min(sizes, n - start) for start in range(0, n, sizes)] or [0]
    sizes = list(sizes)
    if sum(sizes) != n or any(s < 0 for s in sizes): raise ValueError(f"split sizes {sizes} don't add up to {n} along dim {dim}")
    out, start = [], 0
    for s in sizes:
      out.append(self.shrink(tuple((start, start + s) if i == d else None for i in range(self.ndim))))
      start += s
    return tuple(out)
  def chunk(self, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """At most `chunks` pieces of equal length (the last shorter), like torch.chunk."""
    if chunks <= 0: raise ValueError(f"chunk needs a positive number of chunks, got {chunks}")
    n = self.shape[_canon_axis(dim, self.ndim)]
    return self.split(max(1, math.ceil(n / chunks)), dim)
  def unflatten(self, dim: int, sizes: Sequence[int]) -> Tensor:
    d = _canon_axis(dim, self.ndim)
    return self.reshape(self.shape[:d] + tuple(sizes) + self.shape[d + 1:])
  def repeat(self, *repeats) -> Tensor:
    """Tile the tensor: repeats[i] copies along axis i (extra leading repeats add axes), like torch.repeat."""
    repeats = _shape_arg(repeats)
    if len(repeats) < self.ndim: raise ValueError(f"repeat {repeats} needs at least one count per axis of shape {self.shape}")
    if any(r < 0 for r in repeats): raise ValueError(f"repeat counts must be >= 0, got {repeats}")
    base = (1,) * (len(repeats) - self.ndim) + self.shape
    x = self.reshape(tuple(d for s in base for d in (1, s)))
    x = x.expand(tuple(d for r, s in zip(repeats, base) for d in (r, s)))
    return x.reshape(tuple(r * s for r, s in zip(repeats, base)))._own()  # a copy, like torch.repeat
  def repeat_interleave(self, repeats: int, dim: int | None = None) -> Tensor:
    """Each element repeated `repeats` times in a row along dim (flattened when dim is None)."""
    x, d = (self.flatten(), 0) if dim is None else (self, _canon_axis(dim, self.ndim))
    x = x.unsqueeze(d + 1)
    return x.expand(x.shape[:d + 1] + (repeats,) + x.shape[d + 2:]).flatten(d, d + 1)._own()
  def _check_index(self, name: str, dim: int, index: Tensor, src_shape=None) -> int:
    if not isinstance(index, Tensor): raise TypeError(f"{name} index must be a Tensor, got {type(index).__name__}")
    if dtypes.is_float(index.dtype) or index.dtype == dtypes.bool: raise TypeError(f"{name} index must be an int tensor, got {index.dtype}")
    if index.device != self.device: raise RuntimeError(f"{name} index on {index.device} for a tensor on {self.device}")
    d = _canon_axis(dim, self.ndim)
    if index.ndim != self.ndim: raise ValueError(f"{name} index of shape {index.shape} needs {self.ndim} dimensions like the tensor {self.shape}")
    for i, (k, s) in enumerate(zip(index.shape, self.shape)):
      if i != d and k > s: raise ValueError(f"{name} index of shape {index.shape} is larger than the tensor {self.shape} in dim {i}")
    if src_shape is not None and any(k > s for k, s in zip(index.shape, src_shape)):
      raise ValueError(f"{name} index of shape {index.shape} is larger than the source {src_shape}")
    return d
  def gather(self, dim: int, index: Tensor) -> Tensor:
    """out[i][j] = self[index[i][j]][j] for dim 0 (and so on), like torch.gather. An index out of range gives 0
    (checking it would need to read the index from the device)."""
    d = self._check_index("gather", dim, index)
    x = self.shrink(tuple(None if i == d else (0, k) for i, k in enumerate(index.shape))).transpose(d, -1)
    n = x.shape[-1]
    position = index.cast(dtypes.int32 if _holds(dtypes.int32, index.dtype) and n < 2**31 else dtypes.int64)
    hit = position.transpose(d, -1).unsqueeze(-1) == _iota(n, position.dtype, self.device)
    return _select(hit, x.unsqueeze(-2), x.ndim).transpose(d, -1)
  def scatter(self, dim: int, index: Tensor, src, reduce: str | None = None) -> Tensor:
    """A copy of self with self[index[i][j]][j] = src[i][j] for dim 0 (and so on), like torch.scatter; src may be
    a scalar. reduce='add' or 'multiply' combines instead of replacing. Where an index repeats, the last write
    wins. An index out of range writes nothing."""
    if reduce not in (None, "add", "multiply"): raise ValueError(f"scatter reduce must be None, 'add' or 'multiply', got {reduce!r}")
    src = src if isinstance(src, Tensor) else Tensor.full(index.shape, src, dtype=self.dtype, device=self.device)
    d = self._check_index("scatter", dim, index, src.shape)
    src = src.cast(self.dtype).shrink(tuple((0, k) for k in index.shape)).transpose(d, -1).unsqueeze(-1)
    x = self.transpose(d, -1)
    n = x.shape[-1]
    hit = index.transpose(d, -1).unsqueeze(-1) == Tensor.arange(n, dtype=index.dtype, device=self.device)  # (..., k, n)
    if reduce == "add": update = hit.where(src, src._zero())._sum_exact(-2)
    elif reduce == "multiply": update = hit.where(src, 1).prod(-2).cast(self.dtype)
    else:
      chosen, last = _last_writes(hit)
      update = chosen.where(src, src._zero())._sum_exact(-2)
      written = (last > 0).squeeze(-2)
    # the index may cover only a corner of self in the other dims: pad the update out to self's shape
    grow = tuple((0, s - u) for s, u in zip(x.shape, update.shape))
    if reduce == "add": return (x + update.pad(grow)).transpose(d, -1)
    if reduce == "multiply": return (x * update.pad(grow, value=1)).transpose(d, -1)
    return written.pad(grow).where(update.pad(grow), x).transpose(d, -1)
  def scatter_add(self, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """A copy of self with src[i][j] added at self[index[i][j]][j] (dim 0), repeats adding up, like torch.scatter_add."""
    return self.scatter(dim, index, src, reduce="add")
  def one_hot(self, num_classes: int = -1) -> Tensor:
    """int32 one-hot vectors along a new last axis. num_classes=-1 reads max()+1 from the data (the one place an
    op reads the device: pass num_classes to stay lazy)."""
    if dtypes.is_float(self.dtype) or self.dtype == dtypes.bool: raise TypeError(f"one_hot needs an int tensor, got {self.dtype}")
    if num_classes == -1: num_classes = int(self.max().item()) + 1 if self.numel() else 0
    if num_classes < 0: raise ValueError(f"one_hot num_classes must be >= 0 or -1, got {num_classes}")
    hit = self.unsqueeze(-1) == Tensor.arange(num_classes, dtype=self.dtype, device=self.device)
    return hit.cast(dtypes.int32)
  def masked_fill(self, mask: Tensor, value) -> Tensor:
    """value where mask is true (mask broadcasts to self's shape), self elsewhere."""
    if not isinstance(mask, Tensor) or mask.dtype != dtypes.bool: raise TypeError("masked_fill needs a bool mask tensor")
    if _broadcast_shape(mask.shape, self.shape) != self.shape:
      raise ValueError(f"masked_fill mask of shape {mask.shape} doesn't broadcast to {self.shape}")
    fill = value.cast(self.dtype) if isinstance(value, Tensor) else Tensor.full((), value, dtype=self.dtype, device=self.device)
    return mask.where(fill, self)
  def _triangle(self, diagonal: int, upper: bool) -> Tensor:
    if self.ndim < 2: raise ValueError(f"tril/triu need at least 2 dimensions, got shape {self.shape}")
    rows, cols = self.shape[-2:]
    r = Tensor.arange(rows, dtype=dtypes.int32, device=self.device).reshape(rows, 1)
    c = Tensor.arange(cols, dtype=dtypes.int32, device=self.device).reshape(1, cols)
    keep = (c - r >= diagonal) if upper else (c - r <= diagonal)
    return keep.where(self, Tensor.full((), 0, dtype=self.dtype, device=self.device))
  def tril(self, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two axes (j - i <= diagonal kept), zeros above."""
    return self._triangle(diagonal, upper=False)
  def triu(self, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two axes (j - i >= diagonal kept), zeros below."""
    return self._triangle(diagonal, upper=True)
  # ---- neural network functions (composed: windows are views, convolution is multiply + sum) ----
  def linear(self, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """self @ weight + bias, with weight shaped (in, out) as in tinygrad (a 1-d weight scales elementwise)."""
    x = self * weight if weight.ndim == 1 else self.matmul(weight)
    return x if bias is None else x + bias
  def _pool(self, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]) -> Tensor:
    """Sliding windows over the last len(kernel) axes, as a view: shape (..., *out_sizes, *kernel).
    Window j of output position o reads input o*stride + j*dilation. The trick: repeat the axis until it is long
    enough, then read rows of length `period` (a multiple of the input length plus the dilation): row j starts
    j*dilation further into the (repeating) input, and taking every stride-th element of the row walks the
    output positions."""
    nd = len(kernel)
    prefix, sizes = self.shape[:-nd], self.shape[-nd:]
    outs = [(n - d * (k - 1) - 1) // s + 1 for n, k, s, d in zip(sizes, kernel, stride, dilation)]
    for n, k, o in zip(sizes, kernel, outs):
      if o <= 0: raise ValueError(f"window {kernel} (dilation {dilation}) is larger than the input {sizes}")
    periods = [n * max(1, math.ceil((o * s - d) / n)) + d for n, o, s, d in zip(sizes, outs, stride, dilation)]
    keep = tuple((0, s) for s in prefix)
    x = self.repeat((1,) * len(prefix) + tuple(math.ceil(k * p / n) for n, k, p in zip(sizes, kernel, periods)))
    x = x.shrink(keep + tuple((0, k * p) for k, p in zip(kernel, periods)))
    x = x.reshape(prefix + tuple(d for k, p in zip(kernel, periods) for d in (k, p)))
    x = x.shrink(keep + tuple(r for k, o, s in zip(kernel, outs, stride) for r in ((0, k), (0, o * s))))
    x = x.reshape(prefix + tuple(d for k, o, s in zip(kernel, outs, stride) for d in (k, o, s)))
    x = x.shrink(keep + tuple(r for k, o in zip(kernel, outs) for r in ((0, k), (0, o), (0, 1))))
    x = x.reshape(prefix + tuple(d for k, o in zip(kernel, outs) for d in (k, o)))
    p = len(prefix)
    return x.permute(tuple(range(p)) + tuple(p + 2 * i + 1 for i in range(nd)) + tuple(p + 2 * i for i in range(nd)))
  def conv2d(self, weight: Tensor, bias: Tensor | None = None, groups: int = 1, stride=1, dilation=1, padding=0) -> Tensor:
    """Convolution (cross-correlation, like PyTorch) of (N, C_in, *spatial) with weight (C_out, C_in/groups, *kernel);
    any number of spatial dims. padding: an int, one per spatial dim, or PyTorch's flat (left, right, top, bottom)."""
    nd = weight.ndim - 2
    if nd < 1: raise ValueError(f"conv weight needs shape (C_out, C_in/groups, *kernel), got {weight.shape}")
    if self.ndim != nd + 2: raise ValueError(f"conv input of shape {self.shape} needs {nd + 2} dims (N, C_in, *spatial) for weight {weight.shape}")
    cout, cin_g, kernel = weight.shape[0], weight.shape[1], weight.shape[2:]
    n, cin = self.shape[:2]
    if groups <= 0 or cin % groups or cout % groups:
      raise ValueError(f"conv groups={groups} must divide the input channels {cin} and output channels {cout}")
    if cin_g * groups != cin:
      raise ValueError(f"conv input has {cin} channels but weight {weight.shape} with groups={groups} expects {cin_g * groups}")
    if bias is not None and bias.shape != (cout,): raise ValueError(f"conv bias of shape {bias.shape}, expected ({cout},)")
    stride, dilation = _tuple_arg(stride, nd, "stride"), _tuple_arg(dilation, nd, "dilation")
    x = self.pad(((0, 0), (0, 0)) + _padding_arg(padding, nd))
    windows = x._pool(kernel, stride, dilation)  # (N, C_in, *out, *kernel)
    outs = windows.shape[2:2 + nd]
    # (N, groups, 1, C_in/g, *out, *kernel) * (1, groups, C_out/g, C_in/g, *1, *kernel), summed over C_in/g and kernel
    windows = windows.reshape((n, groups, 1, cin_g) + outs + kernel)
    if cout >= CONV_RELAYOUT_MIN_COUT and n * math.prod(outs) * cout * cin_g * math.prod(kernel) >= CONV_RELAYOUT_MIN_WORK:
      # a copy of the filters with the output channel innermost (one small kernel): the optimizer's register tile
      # then loads a vector of filters where it would gather them one by one
      weight = weight.reshape(cout, -1).permute(1, 0).contiguous().permute(1, 0).reshape(weight.shape)
    w = weight.reshape((1, groups, cout // groups, cin_g) + (1,) * nd + kernel)
    out = (windows * w).sum(tuple([3] + list(range(4 + nd, 4 + 2 * nd))))
    out = out.reshape((n, cout) + outs)
    return out if bias is None else out + bias.reshape((1, cout) + (1,) * nd)
  def conv_transpose2d(self, weight: Tensor, bias: Tensor | None = None, groups: int = 1, stride=1, dilation=1,
                       padding=0, output_padding=0) -> Tensor:
    """Transposed convolution (the gradient of conv2d with respect to its input), weight (C_in, C_out/groups,
    *kernel) like PyTorch: spread the input out by the stride, pad it, and convolve with the flipped kernel."""
    nd = weight.ndim - 2
    if self.ndim != nd + 2: raise ValueError(f"conv_transpose input of shape {self.shape} needs {nd + 2} dims for weight {weight.shape}")
    cin, cout_g, kernel = weight.shape[0], weight.shape[1], weight.shape[2:]
    if self.shape[1] != cin: raise ValueError(f"conv_transpose input has {self.shape[1]} channels, weight {weight.shape} expects {cin}")
    if groups <= 0 or cin % groups: raise ValueError(f"conv_transpose groups={groups} must divide the input channels {cin}")
    stride, dilation = _tuple_arg(stride, nd, "stride"), _tuple_arg(dilation, nd, "dilation")
    padding, output_padding = _tuple_arg(padding, nd, "padding", 0), _tuple_arg(output_padding, nd, "output_padding", 0)
    # (C_in, C_out/g, *k) -> (C_out, C_in/g, *k) per group, kernel flipped
    w = weight.reshape((groups, cin // groups, cout_g) + kernel).transpose(1, 2).reshape((groups * cout_g, cin // groups) + kernel)
    w = w.flip(tuple(range(2, 2 + nd)))
    x, sizes = self, self.shape[2:]
    if any(s > 1 for s in stride):  # s-1 zeros between neighbours
      x = x.reshape(self.shape[:2] + tuple(d for n in sizes for d in (n, 1)))
      x = x.pad(((0, 0), (0, 0)) + tuple(p for s in stride for p in ((0, 0), (0, s - 1))))
      x = x.reshape(self.shape[:2] + tuple(n * s for n, s in zip(sizes, stride)))
      x = x.shrink(((0, x.shape[0]), (0, x.shape[1])) + tuple((0, (n - 1) * s + 1) for n, s in zip(sizes, stride)))
    pads = tuple((d * (k - 1) - p, d * (k - 1) - p + op) for k, d, p, op in zip(kernel, dilation, padding, output_padding))
    return x.pad(((0, 0), (0, 0)) + pads).conv2d(w, bias, groups=groups, dilation=dilation)
  def _pool_args(self, kernel_size, stride, dilation, padding, nd: int = 2):
    if self.ndim < nd: raise ValueError(f"pooling over {nd} dims needs at least {nd} dimensions, got shape {self.shape}")
    kernel = _tuple_arg(kernel_size, nd, "kernel_size")
    stride = kernel if stride is None else _tuple_arg(stride, nd, "stride")
    return kernel, stride, _tuple_arg(dilation, nd, "dilation"), _padding_arg(padding, nd)
  def _ceil_pads(self, kernel, stride, dilation, pads, ceil_mode: bool):
    """Extra right padding so ceil_mode keeps the last partial window (one that starts inside the input or the left
    padding, like PyTorch)."""
    if not ceil_mode: return tuple((0, 0) for _ in kernel)
    extra = []
    for n, k, s, d, (lo, hi) in zip(self.shape[-len(kernel):], kernel, stride, dilation, pads):
      span, reach = n + lo + hi, d * (k - 1) + 1
      out = -(-(span - reach) // s) + 1
      if (out - 1) * s >= n + lo: out -= 1
      extra.append((0, max(0, (out - 1) * s + reach - span)))
    return tuple(extra)
  def max_pool2d(self, kernel_size=(2, 2), stride=None, dilation=1, padding=0, ceil_mode: bool = False) -> Tensor:
    """Max over windows of the last two axes (stride defaults to the kernel size); padding counts as -inf."""
    kernel, stride, dilation, pads = self._pool_args(kernel_size, stride, dilation, padding)
    extra = self._ceil_pads(kernel, stride, dilation, pads, ceil_mode)
    lowest = -math.inf if dtypes.is_float(self.dtype) else dtypes.min(self.dtype)
    full = tuple((lo + a, hi + b) for (lo, hi), (a, b) in zip(pads, extra))
    x = self.pad(((0, 0),) * (self.ndim - 2) + full, value=lowest)
    return x._pool(kernel, stride, dilation).max((-2, -1))
  def avg_pool2d(self, kernel_size=(2, 2), stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    """Mean over windows of the last two axes. count_include_pad: padding counts in the divisor (PyTorch's default);
    the extra padding of ceil_mode never does."""
    kernel, stride, dilation, pads = self._pool_args(kernel_size, stride, 1, padding)
    extra = self._ceil_pads(kernel, stride, dilation, pads, ceil_mode)
    lead = ((0, 0),) * (self.ndim - 2)
    x = self._float().pad(lead + pads).pad(lead + extra)
    total = x._pool(kernel, stride, dilation).sum((-2, -1))
    if not ceil_mode and (count_include_pad or all(p == (0, 0) for p in pads)): return total / math.prod(kernel)
    # the window counts in x's dtype (small integers, exact even in float16): float32 ones would promote the result
    ones = Tensor.ones(self.shape[-2:], dtype=x.dtype, device=self.device).pad(pads, value=1.0 if count_include_pad else 0.0).pad(extra)
    return total / ones._pool(kernel, stride, dilation).sum((-2, -1))
  def layernorm(self, axis=-1, eps: float = 1e-5) -> Tensor:
    """Normalize to mean 0 and variance 1 over axis (no affine: nn.LayerNorm adds it)."""
    x = self._float()
    centered = x - x.mean(axis, keepdim=True)
    return centered * (centered.square().mean(axis, keepdim=True) + eps).rsqrt()
  def batchnorm(self, weight: Tensor | None, bias: Tensor | None, mean: Tensor, invstd: Tensor, axis=1) -> Tensor:
    """(x - mean) * invstd * weight + bias, the per-channel tensors laid along `axis` (tinygrad's signature)."""
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(_canon_axis(a, self.ndim) for a in axes)
    shape = tuple(s if i in axes else 1 for i, s in enumerate(self.shape))
    x = self - mean.reshape(shape)
    if weight is not None: x = x * weight.reshape(shape)
    x = x * (invstd.reshape(shape) if invstd.ndim == len(axes) else invstd)
    return x if bias is None else x + bias.reshape(shape)
  def dropout(self, p: float = 0.5) -> Tensor:
    """In training (Tensor.training), zero each element with probability p and scale the rest by 1/(1-p)."""
    if not 0 <= p <= 1: raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not Tensor.training or p == 0: return self
    if p == 1: return self * 0
    keep = Tensor.rand(*self.shape, device=self.device) >= p
    return keep.where(self * (1 / (1 - p)), 0)
  def scaled_dot_product_attention(self, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                   dropout_p: float = 0.0, is_causal: bool = False) -> Tensor:
    """softmax(q @ k^T / sqrt(d) + mask) @ v with self as the queries (..., L, d). attn_mask: bool (True = attend)
    or float (added); is_causal masks out keys after each query."""
    if self.ndim < 2 or key.ndim < 2 or value.ndim < 2: raise ValueError("attention needs (..., L, d) queries, keys and values")
    if self.shape[-1] != key.shape[-1]: raise ValueError(f"queries {self.shape} and keys {key.shape} differ in the last dim")
    if key.shape[-2] != value.shape[-2]: raise ValueError(f"keys {key.shape} and values {value.shape} differ in length")
    scores = self.matmul(key.transpose(-2, -1)) * (1 / math.sqrt(self.shape[-1]))
    if is_causal:
      l, s = self.shape[-2], key.shape[-2]
      causal = Tensor.ones(l, s, dtype=dtypes.bool, device=self.device).tril()
      scores = causal.where(scores, -math.inf)
    if attn_mask is not None:
      scores = attn_mask.where(scores, -math.inf) if attn_mask.dtype == dtypes.bool else scores + attn_mask
    return scores.softmax(-1).dropout(dropout_p).matmul(value)

  # ---- losses ----
  @staticmethod
  def _reduction(loss: Tensor, reduction: str, count: Tensor | None = None) -> Tensor:
    if reduction == "none": return loss
    if reduction == "sum": return loss.sum()
    if reduction == "mean": return loss.mean() if count is None else loss.sum() / count
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
  def cross_entropy(self, target: Tensor, reduction: str = "mean", label_smoothing: float = 0.0, ignore_index: int = -100) -> Tensor:
    """PyTorch's cross_entropy: self holds logits (N, C, ...) or (C,), target class indices (N, ...) or
    probabilities shaped like self. Rows whose class is ignore_index count for nothing (and not in the mean)."""
    if not 0 <= label_smoothing <= 1: raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    axis = 1 if self.ndim > 1 else 0
    classes = self.shape[axis]
    log_probs = self.log_softmax(axis)
    if dtypes.is_float(target.dtype):
      if target.shape != self.shape: raise ValueError(f"cross_entropy probabilities {target.shape} must match the logits {self.shape}")
      probs = target * (1 - label_smoothing) + label_smoothing / classes
      return Tensor._reduction(-(log_probs * probs).sum(axis), reduction)
    expected = self.shape[:axis] + self.shape[axis + 1:]
    if target.shape != expected: raise ValueError(f"cross_entropy targets of shape {target.shape} for logits {self.shape}: expected {expected}")
    # class numbers and ignore_index compared in a narrow int (uint8 targets, 300 classes) would wrap
    if target.dtype not in (dtypes.int32, dtypes.int64): target = target.cast(dtypes.int64)
    keep = target != ignore_index
    hot = target.unsqueeze(axis) == Tensor.arange(classes, dtype=target.dtype, device=self.device).reshape((classes,) + (1,) * (self.ndim - axis - 1))
    picked = -hot.where(log_probs, 0).sum(axis)
    if label_smoothing: picked = picked * (1 - label_smoothing) - log_probs.mean(axis) * label_smoothing
    # a class outside [0, classes) can't be caught without reading the targets (PyTorch raises): its row's loss
    # is NaN, so the loss is visibly wrong instead of quietly small
    in_range = (target >= 0) & (target < classes)
    loss = keep.where(in_range.where(picked, math.nan), 0)
    return Tensor._reduction(loss, reduction, keep.sum().cast(loss.dtype))
  def sparse_categorical_crossentropy(self, target: Tensor, ignore_index: int = -1, label_smoothing: float = 0.0,
                                      reduction: str = "mean") -> Tensor:
    """tinygrad's loss: logits with the classes on the LAST axis, integer targets of the other axes' shape."""
    moved = self.permute((0, self.ndim - 1) + tuple(range(1, self.ndim - 1))) if self.ndim > 1 else self
    return moved.cross_entropy(target, reduction, label_smoothing, ignore_index)
  def binary_crossentropy(self, target: Tensor, reduction: str = "mean") -> Tensor:
    """-(y log p + (1-y) log(1-p)) with self the probabilities; logs clamped at -100 like PyTorch."""
    p, y = self._float(), target.cast(self._float().dtype)
    return Tensor._reduction(-(y * p.log().maximum(-100) + (1 - y) * (1 - p).log().maximum(-100)), reduction)
  def binary_crossentropy_logits(self, target: Tensor, reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """binary_crossentropy of sigmoid(self) computed stably from the logits: max(x, 0) - x*y + log(1 + e^-|x|)."""
    x = self._float()
    y = target.cast(x.dtype)
    softplus_neg = (-x).softplus()  # log(1 + e^-x), stable, with the gradient sigmoid(x) - y at x = 0 too
    if pos_weight is None: loss = (1 - y) * x + softplus_neg
    else: loss = (1 - y) * x + (1 + (pos_weight - 1) * y) * softplus_neg
    return Tensor._reduction(loss, reduction)
  def mse(self, target: Tensor, reduction: str = "mean") -> Tensor:
    return Tensor._reduction((self - target).square(), reduction)


def _iota(n: int, dtype: DType, device: str) -> Tensor:
  """0, 1, ..., n-1 as the arange leaf (a RANGE node): no buffer to make and upload, and a kernel sees it as its loop
  index, so a sum of where(i == arange, x, 0) compiles to a load of x at i (codegen/opt.py: gather axes)."""
  return _const_tensor(UOp(Ops.RANGE, dtype, (), n), device)


def _select(hit: Tensor, values: Tensor, axis: int) -> Tensor:
  """Along axis, the value where hit is true (at most one place is), 0 where none is: a where and one plain sum,
  never split into parts (a sum with one term needs no care for rounding), so that codegen sees the gather."""
  is_bool = values.dtype == dtypes.bool
  picked = hit.where(values.cast(dtypes.uint8) if is_bool else values, 0)
  out = picked._reduce_axis(Ops.ADD, (axis,))
  out = out.reshape(out.shape[:axis] + out.shape[axis + 1:])
  return out.cast(dtypes.bool) if is_bool else out


def _holds(dtype: DType, other: DType) -> bool:
  """Whether every value of the integer dtype `other` is one of `dtype`'s."""
  return dtypes.min(dtype) <= dtypes.min(other) and dtypes.max(other) <= dtypes.max(dtype)


def _last_writes(hit: Tensor) -> tuple[Tensor, Tensor]:
  """hit (..., writes, slots) says which write goes to which slot. Returns which write wins each slot (the last one,
  like numpy), same shape, and 1 + the index of that write per slot (0 where nothing writes), keeping the axis."""
  count = hit.shape[-2]
  order = Tensor.arange(1, count + 1, dtype=dtypes.int32, device=hit.device).reshape(count, 1)
  last = hit.where(order, 0).max(-2, keepdim=True)
  return order == last, last


class _IndexPlan:
  """What an index means for Tensor.__getitem__/__setitem__: per axis of the tensor a crop, a flip and a step (in
  that order), the shape after those views, and the integer tensors that then select along some of its axes."""
  def __init__(self):
    self.crops, self.flips, self.steps = [], [], []
    self.out_shape: list[int] = []   # after ints, slices and None (tensor-indexed axes still whole)
    self.tensor_axes: list[int] = []  # axes of out_shape that integer tensors select along
    self.tensors: list[Tensor] = []
    self.batch_at = 0                 # where the index tensors' broadcast shape goes in the result
    self.result_order: tuple[int, ...] = ()  # _take's result (batch axes, other axes) permuted into the result's
  def add_axis(self, lo: int, hi: int, flip: bool, step: int, out: int | None):
    """One axis of the tensor: crop [lo, hi), flip it or not, take every step-th element; out is its size in the
    result (None: an int removes it)."""
    self.crops.append((lo, hi))
    self.flips.append(flip)
    self.steps.append(step)
    if out is not None: self.out_shape.append(out)
  def add_int(self, i: int, size: int, axis: int):
    if not -size <= i < size: raise IndexError(f"index {i} is out of range for axis {axis} with size {size}")
    self.add_axis(i % size, i % size + 1, False, 1, None)
  def add_slice(self, s: slice, size: int):
    start, stop, step = s.indices(size)
    length = len(range(start, stop, step))
    if step > 0: self.add_axis(start, max(start, stop), False, step, length)
    else: self.add_axis(stop + 1, max(stop + 1, start + 1), True, -step, length)  # walk the flipped axis
  def add_tensor(self, t: Tensor, size: int):
    self.tensor_axes.append(len(self.out_shape)); self.tensors.append(t)
    self.add_axis(0, size, False, 1, size)
  def place_batch(self, adjacent: bool):
    """The index tensors' broadcast shape replaces their axes: where the first one was if they sit side by side
    (ints between them don't count), else first."""
    batch = len(_broadcast_shape(*(t.shape for t in self.tensors)))
    rest = len(self.out_shape) - len(self.tensors)
    at = self.batch_at if adjacent else 0
    self.result_order = tuple(range(batch, batch + at)) + tuple(range(batch)) + tuple(range(batch + at, batch + rest))
  @property
  def result_shape(self) -> tuple[int, ...]:
    """The shape x[index] has."""
    if not self.tensors: return tuple(self.out_shape)
    batch = _broadcast_shape(*(t.shape for t in self.tensors))
    others = [s for a, s in enumerate(self.out_shape) if a not in self.tensor_axes]
    taken = batch + tuple(others)
    return tuple(taken[i] for i in self.result_order)


def _gradient_nodes(t: Tensor, graphs: dict[UOp, UOp]) -> tuple[UOp, ...]:
  """The graph nodes that stand for t when differentiating: its node (or, realized, the graph that computed it)
  and, for a leaf made lazily and realized since, the lazy node graphs built before then still hold."""
  node = graphs.get(t.uop, t.uop)
  lazy = t._leaf_node() if t._leaf_node is not None else None
  return (node,) if lazy is None or lazy is node else (node, lazy)


def _pow_gradient(ctx: UOp, ret: UOp) -> tuple[UOp | None, UOp | None]:
  """PyTorch's gradients of x ** e (a _float_pow node) for x and e, written with pow itself so that they can be
  differentiated again. A constant e (x ** 2.5) takes x.pow(e - 1) like PyTorch, sqrt and friends included. Graph
  nodes carry no device: these tensors only build graph, any device name will do."""
  grad, out, x, e = (_const_tensor(u, Device.DEFAULT) for u in (ctx, ret, ret.src[1], ret.src[2]))
  scalar = _const_value(ret.src[2])
  if scalar is None: dx = (e == 0).where(0.0, e * x._float_pow(e - 1))
  else: dx = x.zeros_like() if scalar == 0 else x.pow(scalar - 1) * scalar
  de = ((x == 0) & (e >= 0)).where(0.0, out * x.log())
  return (grad * dx).uop, (grad * de).uop


def _const_value(u: UOp):
  """The value of a constant seen at some shape (CONST, reshaped and expanded), else None."""
  while u.op in (Ops.RESHAPE, Ops.EXPAND): u = u.src[0]
  return u.arg if u.op is Ops.CONST else None


custom_gradients["pow"] = _pow_gradient


def _realized_graphs() -> dict[UOp, UOp]:
  """Buffer view -> the graph that computed it, for realized tensors that require grad, and a pending write ->
  the graph of the values it writes (see gradient.restore_graphs and Tensor._graph_after_write)."""
  graphs = {}
  for t in snapshot(_grad_realized.values):
    node = t._uop
    if node.op is Ops.ASSIGN and t._assigned_graph is not None: graphs[node.arg] = t._assigned_graph
    elif t._graph is not None and is_buffer_view(node): graphs[node] = t._graph
  return graphs


def _shape_arg(shape) -> tuple[int, ...]:
  if len(shape) == 1 and isinstance(shape[0], (tuple, list)): shape = shape[0]
  for s in shape:  # int(2.5) would quietly make a size of 2
    if isinstance(s, bool) or not isinstance(s, (int, np.integer)): raise TypeError(f"sizes must be ints, got {s!r} in {tuple(shape)}")
  return tuple(int(s) for s in shape)


def _new_shape(shape) -> tuple[int, ...]:
  """The shape of a new tensor: ints >= 0."""
  shape = _shape_arg(shape)
  if any(s < 0 for s in shape): raise ValueError(f"a tensor can't have a negative size, got shape {shape}")
  return shape


def _tuple_arg(value, n: int, name: str, least: int = 1) -> tuple[int, ...]:
  """An int or a sequence of n ints (stride, dilation, kernel size, ...), each at least `least`."""
  out = (value,) * n if isinstance(value, int) else tuple(value)
  if len(out) != n or any(not isinstance(v, int) or v < least for v in out):
    raise ValueError(f"{name} must be an int >= {least} or {n} of them, got {value!r}")
  return out


def _padding_arg(padding, n: int) -> tuple[tuple[int, int], ...]:
  """Padding for n spatial dims as (before, after) pairs: an int, one int per dim, or PyTorch's flat
  (last_before, last_after, ...) of 2n ints."""
  if isinstance(padding, int): return ((padding, padding),) * n
  padding = tuple(padding)
  if len(padding) == n: return tuple((p, p) for p in padding)
  if len(padding) == 2 * n: return tuple((padding[2 * i], padding[2 * i + 1]) for i in reversed(range(n)))
  raise ValueError(f"padding {padding} must be an int, {n} ints, or {2 * n} ints")


@checked  # VALIDATE=1: each realize also computed by the reference interpreter and compared
def _realize(tensors: tuple[Tensor, ...]):
  """Compute tensors that aren't buffers yet, and point each at its buffer. A view of a tensor that has storage
  realizes that tensor instead (views stay views). When the schedule overwrites buffers (assign), the live lazy
  tensors that read their old contents are realized in it too, ordered before the writes (program order)."""
  tensors = _storage_owners(tensors)
  if not tensors: return
  if len(tensors) == 1 and tensors[0]._uop.op is not Ops.ASSIGN:  # one new result, the common case: no set-up
    t = tensors[0]
    node = t._uop
    items, views, written = create_schedule((node,), (t.device,))
    if not written:
      run_schedule(items)
      mark_realized(views)
      view = views[node]
      if not items or items[-1].bufs[0] is not buffer_of(view): return _take_buffers(tensors, items, views, written)
      if t._requires_grad: _keep_graph(t, node)
      t._uop, t._version = view, t._version + 1  # (the uop setter, for a base given its own new buffer)
      return
    # (it runs a write deeper in its graph: the general case below, scheduling again with the readers)
  done = {id(t) for t in tensors}
  # the writes of the tensors being realized (parameter updates) are known before scheduling: the readers of what
  # they overwrite join at once, so the graph is scheduled once. Writes found deeper in the graph come after.
  expected = frozenset(buffer_of(t._uop.src[0]) for t in tensors if t._uop.op is Ops.ASSIGN)
  if expected: tensors += tuple(_readers_to_realize(expected, done))
  items, views, written = _schedule(tensors)
  unexpected = written - expected
  while unexpected and (readers := _readers_to_realize(unexpected, done)):
    tensors += tuple(readers)
    items, views, now_written = _schedule(tensors)
    unexpected, written = now_written - written, now_written
  if written: program_order.mark_stale_graphs(_grad_realized, written)
  run_schedule(items)
  mark_realized(views)
  # what the schedule computed before its writes is of the old contents: no later graph may reuse it
  if written: forget_realized()
  _take_buffers(tensors, items, views, written)


def _readers_to_realize(written, done: set[int]) -> list[Tensor]:
  """The live lazy tensors (not in `done`, which they join) that read the old contents of `written`, to realize
  with the writes. While a TinyJit captures, those made before its call are realized apart, first."""
  readers = program_order.old_value_readers(written, done)
  before_capture, readers = program_order.split_by_capture(readers)
  if before_capture: _realize_outside_capture(before_capture)
  done.update(id(t) for t in readers)
  return readers


def _schedule(tensors: tuple[Tensor, ...]):
  # tuples: create_schedule keeps them as they are (it would copy lists into tuples for its key)
  if len(tensors) == 1: roots, devices = (tensors[0].uop,), (tensors[0].device,)
  else: roots, devices = tuple([t.uop for t in tensors]), tuple([t.device for t in tensors])
  return create_schedule(roots, devices)


def _storage_owners(tensors: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
  """What realizing these tensors computes: their bases (a view is realized by realizing the tensor whose storage
  it views, as PyTorch would have computed it, and stays a view of it). Each once, buffers left out."""
  if len(tensors) == 1 and tensors[0]._base is None: return tensors  # the common case
  out: dict[int, Tensor] = {}
  for t in tensors:
    if t._base is not None: t = t._base
    if not is_buffer_view(t._uop): out[id(t)] = t
  return tuple(out.values())


def realize_old_value_readers(written: set[Buffer]):
  """Before kernels that run outside a schedule (a TinyJit replay) overwrite `written`: realize the live lazy
  tensors that read their old contents, and mark autograd graphs that read them stale."""
  readers = program_order.old_value_readers(written, set())
  if readers: _realize(tuple(readers))
  program_order.mark_stale_graphs(_grad_realized, written)


def _realize_outside_capture(tensors: list[Tensor]):
  """Realize tensors made before a TinyJit's captured call without recording their kernels: a replay must not
  recompute them into buffers their owners still hold. (Where the capture started stays set: it is a position
  in this thread's registry of lazy tensors, which must not be compacted under it.)"""
  from teeny.engine.realize import capture
  recording, capture.recording = capture.recording, None
  try: _realize(tuple(tensors))
  finally: capture.recording = recording


def _take_buffers(tensors: tuple[Tensor, ...], items, views: dict, written):
  """Point each realized tensor at its buffer. A tensor owns its buffer: one the schedule made for it, or, for a
  write, the buffer it wrote. A tensor whose graph was found already realized (by another tensor), or that shares
  its graph with another tensor of this realize, gets a copy: two tensors never share storage unless one is a
  view of the other, so writing one never changes the other."""
  made = {b for item in items for b in item.bufs[:writes_count(item.ast)]}
  taken, copies = set(), []
  for t in tensors:
    node = t.uop
    view = views[node]
    buf = buffer_of(view)
    _keep_graph(t, node)
    owned = buf in made and buf not in written and buf not in taken
    if node.op is Ops.ASSIGN or owned or buf.size == 0:  # (an empty buffer holds nothing to share)
      taken.add(buf)
      t.uop = view
    else:
      t.uop = UOp(Ops.CONTIGUOUS, t.dtype, (view,), ("copy", next(_leaf_ids)))
      copies.append(t)
  if copies: _realize(tuple(copies))


def _keep_graph(t: Tensor, node: UOp):
  """A realized result that requires grad keeps the graph that computed it, so backward() still reaches the leaves
  (gradient.restore_graphs); a realized write keeps the graph of the values it wrote (see assign)."""
  if not t._requires_grad or t._leaf: return
  if node.op is Ops.CONTIGUOUS and type(node.arg) is tuple and node.arg[0] == "copy": return  # (see _take_buffers)
  graph = t._assigned_graph if node.op is Ops.ASSIGN else node
  if graph is None: return
  t._graph, t._assigned_graph = graph, None
  _grad_realized[id(t)] = t


def _read(node: UOp, device: str) -> np.ndarray:
  """The elements of a realized node (a buffer, or a view of one) as a flat numpy array, in row-major order. A
  view that is one contiguous run of a buffer is read from it directly, others are copied out by a kernel."""
  if is_buffer_view(node): return buffer_of(node).numpy()
  region = _contiguous_region(node)
  if region is not None:
    buf, offset = region
    size = math.prod(node.shape)
    if 2 * size >= buf.size: return buf.numpy()[offset:offset + size]  # most of the buffer: read it whole
  copy = Tensor(UOp(Ops.CONTIGUOUS, node.dtype, (node,), ("copy", next(_leaf_ids))), device=device)
  _realize((copy,))
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
  if op is Ops.DETACH: return x
  if op is Ops.RESHAPE: return UOp(Ops.RESHAPE, x.dtype, (x,), before)
  if op is Ops.PERMUTE: return UOp(Ops.PERMUTE, x.dtype, (x,), tuple(sorted(range(len(arg)), key=arg.__getitem__)))
  if op is Ops.SHRINK: return UOp(Ops.PAD, x.dtype, (x,), tuple((b, s - e) for (b, e), s in zip(arg, before)))
  if op is Ops.PAD: return UOp(Ops.SHRINK, x.dtype, (x,), tuple((b, b + s) for (b, _), s in zip(arg, before)))
  if op is Ops.FLIP: return UOp(Ops.FLIP, x.dtype, (x,), arg)
  raise RuntimeError(f"can't write through a view made by {op}")


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


def _from_host(data, dtype: DType | None, device: str) -> UOp:
  """Copy a list or numpy array into a new device buffer."""
  if isinstance(data, np.ndarray):
    if data.dtype == np.float64 and dtype is None: dtype = dtypes.float64
    arr = data
  else:
    try: arr = np.array(data)
    except ValueError as e: raise ValueError(f"can't make a tensor from ragged or mixed data: {e}") from None
    if arr.dtype == object: raise TypeError(f"can't make a tensor from {type(data).__name__} of objects")
    if dtype is None: dtype = dtypes.from_py(data) if arr.size else dtypes.default_float
  dt = dtype if dtype is not None else dtypes.from_np(arr.dtype)
  shape = arr.shape  # before ascontiguousarray, which turns a 0-d array into shape (1,)
  arr = np.ascontiguousarray(arr.astype(dt.np, copy=False))
  buf = Buffer(device, arr.size, dt)
  if arr.size: buf.copyin(memoryview(arr.reshape(-1)).cast("B"))
  return buffer_view(buf, shape)
