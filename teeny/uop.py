"""The one IR: UOp nodes (immutable, hash-consed), the Ops they name, UPat/PatternMatcher and graph_rewrite.

The same UOp type holds the user's lazy tensor graph, the kernel ASTs the scheduler makes, and the loops and
index math that codegen lowers them to. Transformations are PatternMatchers applied with graph_rewrite; the
scheduler's walks and linearize's ordering are the hand-written exceptions (docs/DESIGN.md says why).
The rewrite rules that simplify index math (`symbolic`) are in symbolic.py.
"""
from __future__ import annotations
from typing import Any, Callable
import functools, math, weakref
import numpy as np
from teeny.dtype import DType, dtypes, normalize_const
from teeny.helpers import pretty


class Op:
  """One kind of node: a member of Ops, named after its attribute there, compared and hashed by identity."""
  __slots__ = ("name", "value")
  def __set_name__(self, owner, name): self.name = name  # `value`, its position in Ops, is set by _OpsType
  def __repr__(self): return f"Ops.{self.name}"
  def __reduce__(self): return (getattr, (Ops, self.name))  # unpickled as the same member


class _OpsType(type):
  """Ops's class: iterating it gives the members in order. Ops is not an Enum because Python 3.11's EnumType has
  a __getattr__, which sends every `Ops.ADD` through a slow lookup hook (65 ns against 14 ns for a plain class
  attribute): the scheduler, the rewrite engine and codegen read Ops members millions of times."""
  def __new__(mcs, name, bases, ns):
    cls = super().__new__(mcs, name, bases, ns)
    cls._members = tuple(v for v in ns.values() if isinstance(v, Op))
    for i, member in enumerate(cls._members): member.value = i
    return cls
  def __iter__(cls): return iter(cls._members)
  def __len__(cls): return len(cls._members)


class Ops(metaclass=_OpsType):
  # leaves of the tensor graph; BIND is a Variable bound to a value (teeny/variable.py), arg (name, lo, hi, value)
  BUFFER = Op(); CONST = Op(); BIND = Op()
  EXP2 = Op(); LOG2 = Op(); SIN = Op(); SQRT = Op(); RECIP = Op(); NEG = Op(); TRUNC = Op()  # unary ALU
  ADD = Op(); MUL = Op(); MAX = Op(); MOD = Op(); IDIV = Op(); FDIV = Op(); CMPLT = Op(); CMPNE = Op()  # binary ALU
  AND = Op(); OR = Op(); XOR = Op(); SHL = Op(); SHR = Op()
  WHERE = Op(); CAST = Op(); BITCAST = Op()  # the ternary ALU op; type changes
  REDUCE_AXIS = Op()  # reduce over axes (arg: (ALU op, axes), or (op, axes, "in order")); keeps reduced axes as size 1
  RESHAPE = Op(); PERMUTE = Op(); EXPAND = Op(); PAD = Op(); SHRINK = Op(); FLIP = Op()  # movement (free: folded into views)
  COPY = Op(); ASSIGN = Op(); CONTIGUOUS = Op(); DETACH = Op()  # graph-level
  SINK = Op(); DEFINE_GLOBAL = Op(); VIEW = Op(); LOAD = Op(); STORE = Op()  # kernel AST
  # lowered program: RANGE is a loop (src: start, end; arg: its id). In the tensor graph a RANGE without sources is
  # the leaf 0, 1, ..., arg-1 (an arange with no buffer: the loop index seen as a tensor), and in a kernel AST
  # RANGE(VIEW) is that leaf seen through a view, as CONST(VIEW) is a constant's
  SPECIAL = Op(); DEFINE_VAR = Op(); RANGE = Op(); DEFINE_ACC = Op(); ENDRANGE = Op()
  LANE = Op()  # an upcast or unrolled axis's index while lowering (arg: (axis, size)); replaced by each of its values
  VECTORIZE = Op(); GEP = Op()  # OpenCL vload/vstore's vectors: one built from scalars, and one lane of a vector
  DEFINE_LOCAL = Op(); BARRIER = Op()  # OpenCL work-group memory (arg: (name, size)); a barrier (src: writes it waits for)
  # a tensor on several devices (teeny/multi.py): src one graph per device, arg (devices, axis): consecutive blocks
  # of that axis, or with axis None the whole tensor on each device. Only in the tensor graph, never in a schedule
  MULTI = Op()


UNARY = {Ops.EXP2, Ops.LOG2, Ops.SIN, Ops.SQRT, Ops.RECIP, Ops.NEG, Ops.TRUNC}
BINARY = {Ops.ADD, Ops.MUL, Ops.MAX, Ops.MOD, Ops.IDIV, Ops.FDIV, Ops.CMPLT, Ops.CMPNE, Ops.AND, Ops.OR, Ops.XOR, Ops.SHL,
          Ops.SHR}
ALU = UNARY | BINARY | {Ops.WHERE}
ELEMENTWISE = ALU | {Ops.CAST, Ops.BITCAST}
MOVEMENT = {Ops.RESHAPE, Ops.PERMUTE, Ops.EXPAND, Ops.PAD, Ops.SHRINK, Ops.FLIP}
COMPARISON = {Ops.CMPLT, Ops.CMPNE}
_NUMBERS = (int, float, np.number, np.bool_)  # (what UOp.__eq__ compares a Variable expression with)
VARIABLE_MATH = {Ops.BIND, Ops.CONST, Ops.ADD, Ops.NEG, Ops.MUL, Ops.IDIV, Ops.MOD, Ops.MAX}  # (teeny/variable.py)


class _UOpMeta(type):
  # (op, dtype, src, arg key) -> weak reference to the one node with those fields. A plain dict of weakrefs
  # (rather than a WeakValueDictionary) because this lookup runs for every node built.
  _cache: dict = {}
  def __call__(cls, op: Ops, dtype: DType = dtypes.void, src: tuple = (), arg: Any = None):
    # the arg's type is part of the key (True == 1, 0.0 == -0.0 in Python, but a CONST of each is its own node)
    if arg is None: key = (op, dtype, src)
    elif type(arg) is float: key = (op, dtype, src, arg, math.copysign(1.0, arg), float)
    else: key = (op, dtype, src, arg, type(arg))
    ref = _node_cache.get(key)
    if ref is not None:
      found = ref()
      if found is not None: return found
    # built here rather than through type.__call__ and __init__: two Python frames fewer per node
    node = _new_object(cls)
    node.op, node.dtype, node.src, node.arg, node._cache = op, dtype, src, arg, {}
    _node_cache[key] = weakref.ref(node, functools.partial(_forget_node, key))  # partial: no extra Python frame
    return node

_node_cache = _UOpMeta._cache
_new_object = object.__new__


def _forget_node(key, ref):
  # a dead node's entry goes, unless a new node with the same fields has taken its place already
  if _node_cache.get(key) is ref: del _node_cache[key]


class UOp(metaclass=_UOpMeta):
  """One node: an op, the dtype it produces, its source nodes and a static argument. Never mutated: `_cache` only
  keeps facts derived from those fields (shape, value bounds), computed once."""
  __slots__ = ("op", "dtype", "src", "arg", "_cache", "__weakref__")

  # made by _UOpMeta.__call__, which sets the fields: UOp(op, dtype, src, arg)
  op: Op
  dtype: DType
  src: tuple
  arg: Any
  _cache: dict

  def __repr__(self): return pretty(self)
  def __reduce__(self): return (UOp, (self.op, self.dtype, self.src, self.arg))
  def replace(self, **kw) -> UOp:
    return UOp(kw.get("op", self.op), kw.get("dtype", self.dtype), kw.get("src", self.src), kw.get("arg", self.arg))

  # ---- constructors ----
  @staticmethod
  def const(dtype: DType, value) -> UOp:
    if isinstance(value, UOp): raise TypeError("const value must be a Python scalar")
    return UOp(Ops.CONST, dtype, (), normalize_const(value, dtype))
  def alu(self, op: Ops, *others: UOp) -> UOp:
    out_dtype = dtypes.bool if op in COMPARISON else (others[0].dtype if op is Ops.WHERE else self.dtype)
    return UOp(op, out_dtype, (self, *others))
  def cast(self, dtype: DType) -> UOp: return self if self.dtype == dtype else UOp(Ops.CAST, dtype, (self,))

  # ---- arithmetic: index math in codegen, and gradient rules written as maths (gradient.py) ----
  # A Python scalar becomes a constant of this node's dtype, seen at its shape (RESHAPE to ones, then EXPAND, as
  # Tensor builds one): `ret * 2.0` is ret times a 2.0 of ret's shape. Index math has no shape: a bare CONST.
  # (between two nodes == is identity, as hash-consing needs: the elementwise comparisons are named; a Variable
  # expression against a number compares its bound value, UOp.__eq__)
  def const_like(self, x) -> UOp:
    if isinstance(x, UOp): return x
    if isinstance(x, float) and not dtypes.is_float(self.dtype):  # (a Variable's expression: `pos * 0.5`)
      raise TypeError(f"an integer expression ({self.dtype}) combined with the float {x!r}: it would be truncated to an "
                      "int; use an int, or make the expression a tensor first (Tensor(pos) * 0.5)")
    c = UOp.const(self.dtype, x)
    shape = self.shape
    if not shape: return c
    return UOp(Ops.EXPAND, self.dtype, (UOp(Ops.RESHAPE, self.dtype, (c,), (1,) * len(shape)),), shape)
  # an operand neither a node nor a number (a Tensor: pos * t) gets NotImplemented: its reflected operator runs
  def __add__(self, x): return self.alu(Ops.ADD, self.const_like(x)) if isinstance(x, _OPERANDS) else NotImplemented
  def __radd__(self, x): return self.const_like(x).alu(Ops.ADD, self) if isinstance(x, _OPERANDS) else NotImplemented
  def __sub__(self, x): return self.alu(Ops.ADD, -self.const_like(x)) if isinstance(x, _OPERANDS) else NotImplemented
  def __rsub__(self, x): return self.const_like(x).alu(Ops.ADD, -self) if isinstance(x, _OPERANDS) else NotImplemented
  def __mul__(self, x): return self.alu(Ops.MUL, self.const_like(x)) if isinstance(x, _OPERANDS) else NotImplemented
  def __rmul__(self, x): return self.const_like(x).alu(Ops.MUL, self) if isinstance(x, _OPERANDS) else NotImplemented
  def __truediv__(self, x):  # by a node: one rounding, and finite where 1 / x isn't (x subnormal)
    if not isinstance(x, _OPERANDS): return NotImplemented
    return self.alu(Ops.FDIV, x) if isinstance(x, UOp) else self.alu(Ops.MUL, self.const_like(x).recip())
  def __rtruediv__(self, x): return self.const_like(x).alu(Ops.MUL, self.recip()) if isinstance(x, _OPERANDS) else NotImplemented
  def __floordiv__(self, x): return self.alu(Ops.IDIV, self.const_like(x)) if isinstance(x, _OPERANDS) else NotImplemented
  def __mod__(self, x): return self.alu(Ops.MOD, self.const_like(x)) if isinstance(x, _OPERANDS) else NotImplemented
  def __neg__(self): return UOp(Ops.NEG, self.dtype, (self,))
  def recip(self): return UOp(Ops.RECIP, self.dtype, (self,))
  def sin(self): return UOp(Ops.SIN, self.dtype, (self,))
  def lt(self, x): return self.alu(Ops.CMPLT, self.const_like(x))
  def ne(self, x): return self.alu(Ops.CMPNE, self.const_like(x))
  def eq(self, x): return self.ne(x).ne(True)  # (no EQ op: not-not-equal)
  def logical_and(self, x): return self.alu(Ops.AND, self.const_like(x))
  def where(self, a, b) -> UOp:  # a scalar branch takes the other branch's dtype and shape
    a, b = (b.const_like(a), b) if isinstance(b, UOp) else (a, a.const_like(b))
    return UOp(Ops.WHERE, a.dtype, (self, a, b))

  # ---- tensor-graph structure, for gradient rules ----
  def reshape(self, shape) -> UOp: return UOp(Ops.RESHAPE, self.dtype, (self,), tuple(shape))
  def expand(self, shape) -> UOp: return self if self.shape == tuple(shape) else UOp(Ops.EXPAND, self.dtype, (self,), tuple(shape))
  def permute(self, order) -> UOp: return UOp(Ops.PERMUTE, self.dtype, (self,), tuple(order))
  def pad(self, padding) -> UOp: return UOp(Ops.PAD, self.dtype, (self,), tuple(padding))
  def shrink(self, bounds) -> UOp: return UOp(Ops.SHRINK, self.dtype, (self,), tuple(bounds))
  def flip(self, axes) -> UOp: return UOp(Ops.FLIP, self.dtype, (self,), axes)
  def reduce(self, op: Ops, axes) -> UOp: return UOp(Ops.REDUCE_AXIS, self.dtype, (self,), (op, tuple(axes)))
  def sum(self, axes) -> UOp: return self.reduce(Ops.ADD, axes) if axes else self  # (no axes: itself)
  def contiguous(self) -> UOp: return UOp(Ops.CONTIGUOUS, self.dtype, (self,))

  # ---- Variables (teeny/variable.py): Variable(name, lo, hi) is a DEFINE_VAR; bind() makes the BIND leaf ----
  def bind(self, value: int) -> UOp:
    if self.op is not Ops.DEFINE_VAR or self.src: raise TypeError(f"bind() is for a Variable, not a {self.op.name} node")
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not self.arg[1] <= value <= self.arg[2]:
      raise ValueError(f"Variable {self.arg[0]!r} ranges over [{self.arg[1]}, {self.arg[2]}]: can't bind it to {value!r}")
    return UOp(Ops.BIND, self.dtype, (), (*self.arg, int(value)))  # (a numpy int too: its value, a Python int)
  def unbind(self) -> tuple[UOp, int]:  # (the Variable, its value)
    if self.op is not Ops.BIND: raise TypeError(f"unbind() is for a bound Variable, not a {self.op.name} node")
    return UOp(Ops.DEFINE_VAR, self.dtype, (), self.arg[:3]), self.arg[3]
  def bound_value(self, values: dict | None = None) -> int:
    """The value of an integer expression over bound Variables (`pos + 1`) at their bound values, or at `values`
    (name -> value) for those it names."""
    found: dict[UOp, Any] = {}
    for n in self.toposort():
      if n.op is Ops.DEFINE_VAR: raise ValueError(f"Variable {n.arg[0]!r} is not bound: use Variable(...).bind(value)")
      if n.op not in VARIABLE_MATH or not dtypes.is_int(n.dtype) or n.shape not in ((), None):
        raise TypeError(f"a Variable expression holds integer arithmetic only, not {n.op.name} of {n.dtype}")
      if n.op is Ops.BIND: found[n] = n.arg[3] if values is None else values.get(n.arg[0], n.arg[3])
      elif n.op is Ops.CONST: found[n] = n.arg
      else: found[n] = exec_alu(n.op, n.dtype, [found[s] for s in n.src], floor=True)  # (Python's // and %)
    return found[self]
  # `if pos > 0`, `pos == 4`, `if pos:` read a bound Variable expression at its bound value (as tinygrad does), frozen
  # at a TinyJit capture as all Python work is. Between two nodes == is identity, and hash the node's (hash-consing)
  __hash__ = object.__hash__
  def __eq__(self, x):
    return self.bound_value() == x if isinstance(x, _NUMBERS) and is_bound_expression(self) else NotImplemented
  def __bool__(self): return self.bound_value() != 0 if is_bound_expression(self) else True
  def __lt__(self, x): return self.bound_value() < (x.bound_value() if isinstance(x, UOp) else x)
  def __le__(self, x): return self.bound_value() <= (x.bound_value() if isinstance(x, UOp) else x)
  def __gt__(self, x): return self.bound_value() > (x.bound_value() if isinstance(x, UOp) else x)
  def __ge__(self, x): return self.bound_value() >= (x.bound_value() if isinstance(x, UOp) else x)

  # ---- derived facts, computed bottom-up without recursion ----
  @property
  def shape(self) -> tuple[int, ...] | None:
    cache = self._cache
    return cache["shape"] if "shape" in cache else _derived(self, "shape", _compute_shape)
  @property
  def vmin(self): return _derived(self, "minmax", _compute_minmax)[0]
  @property
  def vmax(self): return _derived(self, "minmax", _compute_minmax)[1]
  @property
  def size(self) -> int: return math.prod(self.shape)
  def toposort(self) -> list[UOp]: return toposort(self)


_OPERANDS = (UOp, *_NUMBERS)  # (what UOp's arithmetic operators take)


def _derived(node: UOp, key: str, compute: Callable[[UOp], Any]):
  """A cached fact of a node that depends on the same fact of its sources; filled in bottom-up iteratively."""
  cache = node._cache
  if key in cache: return cache[key]
  for s in node.src:  # a loop, not all(...): no generator to make for every new node
    if key not in s._cache: break
  else:  # the usual case: a new node over nodes already known
    value = cache[key] = compute(node)
    return value
  stack = [node]
  while stack:
    n = stack[-1]
    missing = [s for s in n.src if key not in s._cache]
    if missing: stack.extend(missing); continue
    stack.pop()
    if key not in n._cache: n._cache[key] = compute(n)
  return node._cache[key]


def is_bound_expression(u: UOp) -> bool:
  """Whether u is integer math of shape () over bound Variables (`pos + 1`); not kernel index math (DEFINE_VARs)."""
  if "bound_expr" not in u._cache:
    nodes = toposort(u) if u.op in VARIABLE_MATH and dtypes.is_int(u.dtype) and u.shape == () else ()
    pure = all(n.op in VARIABLE_MATH and n.shape == () for n in nodes)
    u._cache["bound_expr"] = pure and any(n.op is Ops.BIND for n in nodes)
  return u._cache["bound_expr"]


def toposort(root: UOp) -> list[UOp]:
  """Nodes under `root` (included), every node after all of its sources. Iterative, so deep graphs are fine."""
  order, visited, stack = [], set(), [(root, False)]
  while stack:
    n, expanded = stack.pop()
    if expanded: order.append(n); continue
    if n in visited: continue
    visited.add(n)
    stack.append((n, True))
    for s in reversed(n.src):
      if s not in visited: stack.append((s, False))
  return order


# ---- shapes of tensor-graph nodes ----

def _compute_shape(u: UOp):
  if u.op in ALU: return u.src[-1].shape  # first: most nodes are elementwise (a WHERE's condition may be bool)
  rule = _SHAPE_RULES.get(u.op)
  return None if rule is None else rule(u)  # kernel and program nodes have no tensor shape


def _range_shape(u: UOp):
  # the tensor-graph leaf, or that leaf seen through a view (a lowered loop has no shape)
  if not u.src: return (u.arg,)
  return u.src[0].shape if u.src[0].op is Ops.VIEW else None


def _source_shape(u: UOp): return u.src[0].shape


_SHAPE_RULES: dict[Op, Callable[[UOp], Any]] = {
  Ops.BUFFER: lambda u: (u.arg.size,),
  Ops.CONST: lambda u: u.src[0].shape if u.src else (),  # in a kernel AST a CONST has a VIEW
  Ops.BIND: lambda u: (),
  Ops.VIEW: lambda u: u.arg.shape,
  Ops.DEFINE_VAR: lambda u: u.src[0].shape if u.src else None,  # in a kernel AST a value argument has a VIEW
  Ops.RANGE: _range_shape,
  Ops.LOAD: lambda u: u.src[1].shape if len(u.src) > 1 and u.src[1].op is Ops.VIEW else None,
  Ops.RESHAPE: lambda u: u.arg,
  Ops.EXPAND: lambda u: u.arg,
  Ops.PERMUTE: lambda u: tuple(u.src[0].shape[i] for i in u.arg),
  Ops.PAD: lambda u: tuple(s + b + a for s, (b, a) in zip(u.src[0].shape, u.arg)),
  Ops.SHRINK: lambda u: tuple(e - b for b, e in u.arg),
  Ops.FLIP: _source_shape,
  Ops.REDUCE_AXIS: lambda u: tuple(1 if i in u.arg[1] else s for i, s in enumerate(u.src[0].shape)),
  **{op: _source_shape for op in (Ops.CAST, Ops.BITCAST, Ops.COPY, Ops.CONTIGUOUS, Ops.DETACH, Ops.ASSIGN)},
  Ops.MULTI: lambda u: _multi_shape(u.src, u.arg[1]),
}


def _multi_shape(shards: tuple, axis: int | None) -> tuple[int, ...]:
  """The whole tensor's shape: a shard's, with the sharded axis the sum of the shards' sizes."""
  shape = shards[0].shape
  if axis is None: return shape
  return shape[:axis] + (sum(s.shape[axis] for s in shards),) + shape[axis + 1:]


# ---- value bounds of integer index math ----

def _compute_minmax(u: UOp):
  """(vmin, vmax) of u: the rule for its op, or, where there is none or it knows nothing, its dtype's range."""
  exact = dtypes.is_int(u.dtype) or u.dtype == dtypes.bool
  dmin, dmax = (dtypes.min(u.dtype), dtypes.max(u.dtype)) if exact else (-math.inf, math.inf)
  rule = _MINMAX_RULES.get(u.op)
  bounds = rule(u, u.src, dmin, dmax) if rule is not None else None
  return (dmin, dmax) if bounds is None else bounds


def _range_bounds(u: UOp, s: tuple, dmin, dmax):
  if len(s) != 2: return (0, max(u.arg - 1, 0)) if not s else (dmin, dmax)  # an arange leaf
  if s[0].op is Ops.CONST and s[1].op is Ops.CONST: return (s[0].arg, s[1].arg - 1)
  return (s[0].vmin, s[1].vmax - 1)


def _mul_bounds(u: UOp, s: tuple, dmin, dmax):
  corners = [a * b for a in (s[0].vmin, s[0].vmax) for b in (s[1].vmin, s[1].vmax) if not (math.isinf(a) or math.isinf(b))]
  return _clamp(min(corners), max(corners), dmin, dmax) if len(corners) == 4 else None


def _divides_nonnegative(s: tuple) -> bool: return s[1].op is Ops.CONST and s[1].arg > 0 and s[0].vmin >= 0


def _idiv_bounds(u: UOp, s: tuple, dmin, dmax):
  if not _divides_nonnegative(s): return None
  return (s[0].vmin // s[1].arg, s[0].vmax // s[1].arg) if not math.isinf(s[0].vmax) else (0, dmax)


def _mod_bounds(u: UOp, s: tuple, dmin, dmax):
  if not dtypes.is_int(u.dtype): return None  # (a float MOD is fmod: its bounds aren't the integer ones)
  return (0, min(s[1].arg - 1, s[0].vmax)) if _divides_nonnegative(s) else None


def _cmplt_bounds(u: UOp, s: tuple, dmin, dmax):
  if u.dtype != dtypes.bool: return None
  if s[0].vmax < s[1].vmin: return (True, True)
  if s[0].vmin >= s[1].vmax: return (False, False)
  return (False, True)


def _cast_bounds(u: UOp, s: tuple, dmin, dmax):
  def exact(dtype: DType) -> bool: return dtypes.is_int(dtype) or dtype == dtypes.bool
  return _clamp(s[0].vmin, s[0].vmax, dmin, dmax) if exact(u.dtype) and exact(s[0].dtype) else None


def _and_bounds(u: UOp, s: tuple, dmin, dmax):
  return (bool(s[0].vmin and s[1].vmin), bool(s[0].vmax and s[1].vmax)) if u.dtype == dtypes.bool else None


# op -> fn(u, u.src, dtype min, dtype max) giving (vmin, vmax), or None when it knows nothing better than the dtype
_MINMAX_RULES: dict[Op, Callable] = {
  Ops.CONST: lambda u, s, dmin, dmax: (u.arg, u.arg),
  Ops.RANGE: _range_bounds,
  Ops.SPECIAL: lambda u, s, dmin, dmax: (0, u.arg[1] - 1),
  Ops.LANE: lambda u, s, dmin, dmax: (0, u.arg[1] - 1),
  **{op: lambda u, s, dmin, dmax: (u.arg[1], u.arg[2]) for op in (Ops.DEFINE_VAR, Ops.BIND)},  # (a Variable's range)
  Ops.ADD: lambda u, s, dmin, dmax: _clamp(s[0].vmin + s[1].vmin, s[0].vmax + s[1].vmax, dmin, dmax),
  Ops.NEG: lambda u, s, dmin, dmax: _clamp(-s[0].vmax, -s[0].vmin, dmin, dmax),
  Ops.MUL: _mul_bounds,
  Ops.IDIV: _idiv_bounds,
  Ops.MOD: _mod_bounds,
  Ops.CMPLT: _cmplt_bounds,
  Ops.WHERE: lambda u, s, dmin, dmax: (min(s[1].vmin, s[2].vmin), max(s[1].vmax, s[2].vmax)),
  Ops.CAST: _cast_bounds,
  Ops.AND: _and_bounds,
}


def _clamp(lo, hi, dmin, dmax):
  # a bound that leaves the dtype's range might wrap: then we know nothing
  return (lo, hi) if dmin <= lo and hi <= dmax else (dmin, dmax)


# ---- patterns ----

class UPat:
  """A pattern over UOps. op/dtype may be one value or a tuple of choices; src a tuple (in order), a list (any
  order, for commutative ops) or one UPat every source must match; `name` binds the matched node."""
  def __init__(self, op=None, dtype=None, src=None, arg=None, name: str | None = None, allow_any_len=False):
    self.op = (op,) if isinstance(op, Op) else op
    self.dtype = (dtype,) if isinstance(dtype, DType) else dtype
    self.src, self.arg, self.name, self.allow_any_len = src, arg, name, allow_any_len

  @staticmethod
  def var(name: str | None = None, dtype=None) -> UPat: return UPat(dtype=dtype, name=name)
  @staticmethod
  def cvar(name: str | None = None, dtype=None) -> UPat: return UPat(Ops.CONST, dtype=dtype, name=name)

  def match(self, u: UOp, bound: dict) -> bool:
    if self.op is not None and u.op not in self.op: return False
    if self.dtype is not None and u.dtype not in self.dtype: return False
    if self.arg is not None and u.arg != self.arg: return False
    if self.name is not None:
      if self.name in bound and bound[self.name] is not u: return False
      bound[self.name] = u
    if self.src is None: return True
    if isinstance(self.src, UPat): return all(self.src.match(s, bound) for s in u.src)
    if len(self.src) != len(u.src) and not (self.allow_any_len and len(u.src) >= len(self.src)): return False
    if isinstance(self.src, list) and len(self.src) == 2:
      for order in (self.src, self.src[::-1]):
        trial = dict(bound)
        if all(p.match(s, trial) for p, s in zip(order, u.src)):
          bound.update(trial)
          return True
      return False
    return all(p.match(s, bound) for p, s in zip(self.src, u.src))


class PatternMatcher:
  """An ordered list of (UPat, rewrite function). A function gets the bound names as keyword arguments (plus
  `ctx` if it asks for it) and returns a replacement node, or None to decline."""
  def __init__(self, rules: list[tuple[UPat, Callable]]):
    self.rules = rules
    self.by_op: dict[Ops, list] = {}
    for pat, fn in rules:
      wants_ctx = "ctx" in fn.__code__.co_varnames[:fn.__code__.co_argcount]
      for op in (pat.op if pat.op is not None else tuple(Ops)):
        self.by_op.setdefault(op, []).append((pat, fn, wants_ctx))

  def __add__(self, other: PatternMatcher) -> PatternMatcher: return PatternMatcher(self.rules + other.rules)

  def rewrite(self, u: UOp, ctx=None) -> UOp | None:
    for pat, fn, wants_ctx in self.by_op.get(u.op, ()):
      bound: dict = {}
      if not pat.match(u, bound): continue
      out = fn(ctx=ctx, **bound) if wants_ctx else fn(**bound)
      if out is not None and out is not u: return out
    return None


def graph_rewrite(root: UOp, pm: PatternMatcher, ctx=None, fixed_point=True, opaque=frozenset()) -> UOp:
  """Rewrite bottom-up until no rule applies anywhere. Sources are rewritten before their users, and a node a
  rule produced is itself rewritten (with its new sources) before it replaces the old one. Iterative. With
  fixed_point=False every node is rewritten at most once (for transforms that are not idempotent). Nodes in
  `opaque` stay as they are, sources included (nodes something else finds by identity)."""
  done: dict[UOp, UOp] = {n: n for n in opaque}
  stack: list = [(root, 0, None)]
  while stack:
    n, stage, link = stack.pop()
    if stage == 2:  # n was rewritten to `link`; n becomes whatever link became
      done[n] = done[link]
      continue
    if n in done: continue
    if stage == 0:
      stack.append((n, 1, None))
      stack.extend((s, 0, None) for s in reversed(n.src) if s not in done)
      continue
    new_src = tuple(done[s] for s in n.src)
    node = n if all(a is b for a, b in zip(new_src, n.src)) else UOp(n.op, n.dtype, new_src, n.arg)
    out = pm.rewrite(node, ctx)
    if out is None:
      done[n] = node
      if node is not n and fixed_point: done.setdefault(node, node)
    elif not fixed_point: done[n] = out  # final: out may equal an old node that this pass rewrites differently
    elif out in done: done[n] = done[out]
    else: stack.extend([(n, 2, out), (out, 0, None)])
  return done[root]


# ---- the value of one ALU op on constants (constant folding in symbolic.py; reference.py is its tensor form) ----

def _c_div(a: int, b: int) -> int:
  q = abs(a) // abs(b)
  return q if (a >= 0) == (b >= 0) else -q


def exec_alu(op: Ops, dtype: DType, vals: list, floor=False):
  """Evaluate one ALU op on Python constants with the same semantics the kernels have (integer // and % truncate),
  or, with floor, with Python's // and % (a Variable expression's value: variable.checked makes kernels agree)."""
  if op is Ops.WHERE: return vals[1] if vals[0] else vals[2]
  if dtypes.is_float(dtype) or (op in COMPARISON and any(isinstance(v, float) for v in vals)):
    with np.errstate(all="ignore"):
      a = [np.float64(v) for v in vals]
      out = {Ops.EXP2: lambda: np.exp2(a[0]), Ops.LOG2: lambda: np.log2(a[0]) if a[0] >= 0 else np.nan,
             Ops.SIN: lambda: np.sin(a[0]), Ops.SQRT: lambda: np.sqrt(a[0]) if a[0] >= 0 else np.nan,
             Ops.RECIP: lambda: np.float64(1.0) / a[0] if a[0] != 0 else math.copysign(math.inf, a[0]),
             Ops.NEG: lambda: -a[0], Ops.TRUNC: lambda: np.trunc(a[0]), Ops.ADD: lambda: a[0] + a[1],
             Ops.MUL: lambda: a[0] * a[1], Ops.MAX: lambda: a[0] if (a[0] > a[1] or a[0] != a[0]) else a[1],
             Ops.MOD: lambda: np.fmod(a[0], a[1]), Ops.FDIV: lambda: a[0] / a[1],
             Ops.CMPLT: lambda: bool(a[0] < a[1]), Ops.CMPNE: lambda: bool(a[0] != a[1])}[op]()
    return out if isinstance(out, bool) else normalize_const(float(out), dtype)
  a = [int(v) for v in vals]
  out = {Ops.NEG: lambda: -a[0], Ops.ADD: lambda: a[0] + a[1], Ops.MUL: lambda: a[0] * a[1],
         Ops.MAX: lambda: max(a[0], a[1]), Ops.IDIV: lambda: a[0] // a[1] if floor else _c_div(a[0], a[1]),
         Ops.MOD: lambda: a[0] % a[1] if floor else a[0] - _c_div(a[0], a[1]) * a[1],
         Ops.CMPLT: lambda: a[0] < a[1], Ops.CMPNE: lambda: a[0] != a[1],
         Ops.AND: lambda: a[0] & a[1], Ops.OR: lambda: a[0] | a[1], Ops.XOR: lambda: a[0] ^ a[1],
         Ops.SHL: lambda: a[0] << a[1], Ops.SHR: lambda: a[0] >> a[1]}[op]()
  return out if op in COMPARISON else normalize_const(out, dtype)
