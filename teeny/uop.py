"""The one IR: UOp nodes (immutable, hash-consed), the Ops they name, UPat/PatternMatcher and graph_rewrite.

The same UOp type holds the user's lazy tensor graph, the kernel ASTs the scheduler makes, and the loops and
index math that codegen lowers them to. Every transformation is a PatternMatcher applied with graph_rewrite.
This module also owns `symbolic`: constant folding, algebraic identities and index simplification.
"""
from __future__ import annotations
from typing import Any, Callable
import functools, math, struct, weakref
import numpy as np
from teeny.dtype import DType, dtypes


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
  # leaves of the tensor graph
  BUFFER = Op(); CONST = Op()
  # unary ALU
  EXP2 = Op(); LOG2 = Op(); SIN = Op(); SQRT = Op(); RECIP = Op(); NEG = Op(); TRUNC = Op()
  # binary ALU
  ADD = Op(); MUL = Op(); MAX = Op(); MOD = Op(); IDIV = Op(); CMPLT = Op(); CMPNE = Op()
  AND = Op(); OR = Op(); XOR = Op(); SHL = Op(); SHR = Op()
  # ternary ALU
  WHERE = Op()
  # type changes
  CAST = Op(); BITCAST = Op()
  # reduce over axes (arg: (ALU op, axes)); keeps reduced axes as size 1
  REDUCE_AXIS = Op()
  # movement (free: folded into views at schedule time)
  RESHAPE = Op(); PERMUTE = Op(); EXPAND = Op(); PAD = Op(); SHRINK = Op(); FLIP = Op()
  # graph-level
  COPY = Op(); ASSIGN = Op(); CONTIGUOUS = Op(); DETACH = Op()
  # kernel AST
  SINK = Op(); DEFINE_GLOBAL = Op(); VIEW = Op(); LOAD = Op(); STORE = Op()
  # lowered program: RANGE is a loop (src: start, end; arg: its id). In the tensor graph a RANGE without sources is
  # the leaf 0, 1, ..., arg-1 (an arange with no buffer: the loop index seen as a tensor), and in a kernel AST
  # RANGE(VIEW) is that leaf seen through a view, as CONST(VIEW) is a constant's
  SPECIAL = Op(); DEFINE_VAR = Op(); RANGE = Op(); REDUCE = Op(); DEFINE_ACC = Op(); ENDRANGE = Op()
  # an upcast or unrolled axis's index while lowering (arg: (axis, size)); replaced by each of its values
  LANE = Op()
  # vectors of neighbouring elements (OpenCL vload/vstore): a vector built from scalars, and one lane of a vector
  VECTORIZE = Op(); GEP = Op()
  # OpenCL work-group memory (arg: (name, size)) and the barrier after writing it (src: the writes it waits for)
  DEFINE_LOCAL = Op(); BARRIER = Op()


UNARY = {Ops.EXP2, Ops.LOG2, Ops.SIN, Ops.SQRT, Ops.RECIP, Ops.NEG, Ops.TRUNC}
BINARY = {Ops.ADD, Ops.MUL, Ops.MAX, Ops.MOD, Ops.IDIV, Ops.CMPLT, Ops.CMPNE, Ops.AND, Ops.OR, Ops.XOR, Ops.SHL, Ops.SHR}
ALU = UNARY | BINARY | {Ops.WHERE}
ELEMENTWISE = ALU | {Ops.CAST, Ops.BITCAST}
MOVEMENT = {Ops.RESHAPE, Ops.PERMUTE, Ops.EXPAND, Ops.PAD, Ops.SHRINK, Ops.FLIP}
COMMUTATIVE = {Ops.ADD, Ops.MUL, Ops.MAX, Ops.CMPNE, Ops.AND, Ops.OR, Ops.XOR}
COMPARISON = {Ops.CMPLT, Ops.CMPNE}


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
  """One node: an op, the dtype it produces, its source nodes and a static argument. Never mutated."""
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
  def const(dtype: DType, value) -> UOp: return UOp(Ops.CONST, dtype, (), normalize_const(value, dtype))
  def alu(self, op: Ops, *others: UOp) -> UOp:
    out_dtype = dtypes.bool if op in COMPARISON else (others[0].dtype if op is Ops.WHERE else self.dtype)
    return UOp(op, out_dtype, (self, *others))
  def cast(self, dtype: DType) -> UOp: return self if self.dtype == dtype else UOp(Ops.CAST, dtype, (self,))

  # ---- arithmetic: index math in codegen, and gradient rules written as maths (gradient.py) ----
  # A Python scalar becomes a constant of this node's dtype, seen at its shape (RESHAPE to ones, then EXPAND, as
  # Tensor builds one): `ret * 2.0` is ret times a 2.0 of ret's shape. Index math has no shape: a bare CONST.
  # (== and != stay Python's identity tests: hash-consing needs them; the elementwise comparisons are named.)
  def const_like(self, x) -> UOp:
    if isinstance(x, UOp): return x
    c = UOp.const(self.dtype, x)
    shape = self.shape
    if not shape: return c
    return UOp(Ops.EXPAND, self.dtype, (UOp(Ops.RESHAPE, self.dtype, (c,), (1,) * len(shape)),), shape)
  def __add__(self, x): return self.alu(Ops.ADD, self.const_like(x))
  def __radd__(self, x): return self.const_like(x).alu(Ops.ADD, self)
  def __sub__(self, x): return self.alu(Ops.ADD, -self.const_like(x))
  def __rsub__(self, x): return self.const_like(x).alu(Ops.ADD, -self)
  def __mul__(self, x): return self.alu(Ops.MUL, self.const_like(x))
  def __rmul__(self, x): return self.const_like(x).alu(Ops.MUL, self)
  def __truediv__(self, x): return self.alu(Ops.MUL, self.const_like(x).recip())
  def __rtruediv__(self, x): return self.const_like(x).alu(Ops.MUL, self.recip())
  def __floordiv__(self, x): return self.alu(Ops.IDIV, self.const_like(x))
  def __mod__(self, x): return self.alu(Ops.MOD, self.const_like(x))
  def __neg__(self): return UOp(Ops.NEG, self.dtype, (self,))
  def recip(self): return UOp(Ops.RECIP, self.dtype, (self,))
  def sin(self): return UOp(Ops.SIN, self.dtype, (self,))
  def lt(self, x): return self.alu(Ops.CMPLT, self.const_like(x))
  def ne(self, x): return self.alu(Ops.CMPNE, self.const_like(x))
  def eq(self, x): return self.ne(x).ne(True)  # (no EQ op: not-not-equal)
  def logical_and(self, x): return self.alu(Ops.AND, self.const_like(x))
  def where(self, a, b) -> UOp:
    # a scalar branch takes the other branch's dtype and shape
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


def normalize_const(value, dtype: DType):
  """Store a constant as the Python value its dtype can hold (ints wrap, floats round to the dtype's precision)."""
  if isinstance(value, UOp): raise TypeError("const value must be a Python scalar")
  if dtype == dtypes.bool: return bool(value)
  if dtypes.is_int(dtype):
    if isinstance(value, float): value = math.trunc(value) if math.isfinite(value) else 0
    return _wrap_int(int(value), dtype)
  if dtype in _FLOAT_FORMATS:
    # struct rounds a double to float32/float16 the way numpy does, 10x faster; out of range it raises where
    # numpy gives inf, so numpy decides those
    try: return struct.unpack(_FLOAT_FORMATS[dtype], struct.pack(_FLOAT_FORMATS[dtype], float(value)))[0]
    except (OverflowError, struct.error): return float(np.array(value, dtype=np.float64).astype(dtype.np))
  return value


_FLOAT_FORMATS = {dtypes.float16: "e", dtypes.float32: "f", dtypes.float64: "d"}


def _wrap_int(v: int, dtype: DType) -> int:
  bits = dtype.itemsize * 8
  v &= (1 << bits) - 1
  if not dtypes.is_unsigned(dtype) and v >= 1 << (bits - 1): v -= 1 << bits
  return v


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
  op = u.op
  if op in ALU: return u.src[-1].shape  # first: most nodes are elementwise (a WHERE's condition may be bool)
  if op is Ops.BUFFER: return (u.arg.size,)
  if op is Ops.CONST: return u.src[0].shape if u.src else ()  # in a kernel AST a CONST has a VIEW
  if op is Ops.VIEW: return u.arg.shape
  if op is Ops.RANGE:  # the tensor-graph leaf, or that leaf seen through a view (a lowered loop has no shape)
    if not u.src: return (u.arg,)
    return u.src[0].shape if u.src[0].op is Ops.VIEW else None
  if op is Ops.LOAD: return u.src[1].shape if len(u.src) > 1 and u.src[1].op is Ops.VIEW else None
  if op in MOVEMENT:
    src = u.src[0].shape
    if op in (Ops.RESHAPE, Ops.EXPAND): return u.arg
    if op is Ops.PERMUTE: return tuple(src[i] for i in u.arg)
    if op is Ops.PAD: return tuple(s + b + a for s, (b, a) in zip(src, u.arg))
    if op is Ops.SHRINK: return tuple(e - b for b, e in u.arg)
    return src  # FLIP
  if op is Ops.REDUCE_AXIS: return tuple(1 if i in u.arg[1] else s for i, s in enumerate(u.src[0].shape))
  if op in ELEMENTWISE or op in (Ops.COPY, Ops.CONTIGUOUS, Ops.DETACH, Ops.ASSIGN): return u.src[0].shape
  return None  # kernel and program nodes have no tensor shape


# ---- value bounds of integer index math ----

def _compute_minmax(u: UOp):
  exact = dtypes.is_int(u.dtype) or u.dtype == dtypes.bool
  dmin, dmax = (dtypes.min(u.dtype), dtypes.max(u.dtype)) if exact else (-math.inf, math.inf)
  op, s = u.op, u.src
  if op is Ops.CONST: return (u.arg, u.arg)
  if op is Ops.RANGE and len(s) != 2: return (0, max(u.arg - 1, 0)) if not s else (dmin, dmax)  # an arange leaf
  if op is Ops.RANGE and s[0].op is Ops.CONST and s[1].op is Ops.CONST: return (s[0].arg, s[1].arg - 1)
  if op is Ops.RANGE: return (s[0].vmin, s[1].vmax - 1)
  if op is Ops.SPECIAL: return (0, u.arg[1] - 1)
  if op is Ops.LANE: return (0, u.arg[1] - 1)
  if op is Ops.DEFINE_VAR: return (u.arg[1], u.arg[2])
  if op is Ops.ADD: return _clamp(s[0].vmin + s[1].vmin, s[0].vmax + s[1].vmax, dmin, dmax)
  if op is Ops.NEG: return _clamp(-s[0].vmax, -s[0].vmin, dmin, dmax)
  if op is Ops.MUL:
    corners = [a * b for a in (s[0].vmin, s[0].vmax) for b in (s[1].vmin, s[1].vmax) if not (math.isinf(a) or math.isinf(b))]
    if len(corners) == 4: return _clamp(min(corners), max(corners), dmin, dmax)
  if op is Ops.IDIV and s[1].op is Ops.CONST and s[1].arg > 0 and s[0].vmin >= 0:
    return (s[0].vmin // s[1].arg, s[0].vmax // s[1].arg) if not math.isinf(s[0].vmax) else (0, dmax)
  if op is Ops.MOD and s[1].op is Ops.CONST and s[1].arg > 0 and s[0].vmin >= 0: return (0, min(s[1].arg - 1, s[0].vmax))
  if op is Ops.CMPLT and u.dtype == dtypes.bool:
    if s[0].vmax < s[1].vmin: return (True, True)
    if s[0].vmin >= s[1].vmax: return (False, False)
    return (False, True)
  if op is Ops.WHERE: return (min(s[1].vmin, s[2].vmin), max(s[1].vmax, s[2].vmax))
  if op is Ops.CAST and exact and (dtypes.is_int(s[0].dtype) or s[0].dtype == dtypes.bool):
    return _clamp(s[0].vmin, s[0].vmax, dmin, dmax)
  if op is Ops.AND and u.dtype == dtypes.bool: return (bool(s[0].vmin and s[1].vmin), bool(s[0].vmax and s[1].vmax))
  return (dmin, dmax)


def _clamp(lo, hi, dmin, dmax):
  # a bound that leaves the dtype's range might wrap: then we know nothing
  return (lo, hi) if dmin <= lo and hi <= dmax else (dmin, dmax)


def pretty(u: UOp) -> str:
  """Print a graph as numbered lines (shared nodes printed once)."""
  nodes = toposort(u)
  ids = {n: i for i, n in enumerate(nodes)}
  lines = []
  for n in nodes:
    srcs = ",".join(f"%{ids[s]}" for s in n.src)
    lines.append(f"%{ids[n]:<3} {n.op.name:<13} {str(n.dtype):<20} [{srcs}] {n.arg!r}"[:240])
  return "\n".join(lines)


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


def graph_rewrite(root: UOp, pm: PatternMatcher, ctx=None, fixed_point=True) -> UOp:
  """Rewrite bottom-up until no rule applies anywhere. Sources are rewritten before their users, and a node a
  rule produced is itself rewritten (with its new sources) before it replaces the old one. Iterative.
  With fixed_point=False every node is rewritten at most once (for transforms that are not idempotent)."""
  done: dict[UOp, UOp] = {}
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


# ---- constant folding and algebraic simplification ----

def _c_div(a: int, b: int) -> int:
  q = abs(a) // abs(b)
  return q if (a >= 0) == (b >= 0) else -q


def exec_alu(op: Ops, dtype: DType, vals: list):
  """Evaluate one ALU op on Python constants with the same semantics the kernels have."""
  if op is Ops.WHERE: return vals[1] if vals[0] else vals[2]
  if dtypes.is_float(dtype) or (op in COMPARISON and any(isinstance(v, float) for v in vals)):
    with np.errstate(all="ignore"):
      a = [np.float64(v) for v in vals]
      out = {Ops.EXP2: lambda: np.exp2(a[0]), Ops.LOG2: lambda: np.log2(a[0]) if a[0] >= 0 else np.nan,
             Ops.SIN: lambda: np.sin(a[0]), Ops.SQRT: lambda: np.sqrt(a[0]) if a[0] >= 0 else np.nan,
             Ops.RECIP: lambda: np.float64(1.0) / a[0] if a[0] != 0 else math.copysign(math.inf, a[0]),
             Ops.NEG: lambda: -a[0], Ops.TRUNC: lambda: np.trunc(a[0]), Ops.ADD: lambda: a[0] + a[1],
             Ops.MUL: lambda: a[0] * a[1], Ops.MAX: lambda: a[0] if (a[0] > a[1] or a[0] != a[0]) else a[1],
             Ops.CMPLT: lambda: bool(a[0] < a[1]), Ops.CMPNE: lambda: bool(a[0] != a[1])}[op]()
    return out if isinstance(out, bool) else normalize_const(float(out), dtype)
  a = [int(v) for v in vals]
  out = {Ops.NEG: lambda: -a[0], Ops.ADD: lambda: a[0] + a[1], Ops.MUL: lambda: a[0] * a[1],
         Ops.MAX: lambda: max(a[0], a[1]), Ops.IDIV: lambda: _c_div(a[0], a[1]),
         Ops.MOD: lambda: a[0] - _c_div(a[0], a[1]) * a[1], Ops.CMPLT: lambda: a[0] < a[1], Ops.CMPNE: lambda: a[0] != a[1],
         Ops.AND: lambda: a[0] & a[1], Ops.OR: lambda: a[0] | a[1], Ops.XOR: lambda: a[0] ^ a[1],
         Ops.SHL: lambda: a[0] << a[1], Ops.SHR: lambda: a[0] >> a[1]}[op]()
  return out if op in COMPARISON else normalize_const(out, dtype)


def _fold(x: UOp) -> UOp | None:
  if x.op in (Ops.IDIV, Ops.MOD) and x.src[1].arg == 0: return None  # leave a division by zero to the device
  if x.op in (Ops.SHL, Ops.SHR) and not 0 <= x.src[1].arg < x.dtype.itemsize * 8: return None
  return UOp.const(x.dtype, exec_alu(x.op, x.dtype, [s.arg for s in x.src]))


def _is_int(u: UOp) -> bool: return dtypes.is_int(u.dtype)


def _split_sum(x: UOp) -> list[UOp]:
  """The terms of a chain of ADDs."""
  terms, stack = [], [x]
  while stack:
    t = stack.pop()
    if t.op is Ops.ADD: stack.extend(t.src)
    else: terms.append(t)
  return terms


def _coef(t: UOp) -> tuple[UOp, int]:
  """A term as (factor, integer coefficient)."""
  if t.op is Ops.MUL and t.src[1].op is Ops.CONST: return t.src[0], t.src[1].arg
  if t.op is Ops.CONST: return UOp.const(t.dtype, 1), t.arg
  return t, 1


def _div_mod_fold(x: UOp, c: UOp, is_mod: bool) -> UOp | None:
  """(a*c + b) // c -> a + b//c and (a*c + b) % c -> b % c when every term is non-negative; also drops
  x // c and x % c entirely when 0 <= x < c."""
  if c.arg <= 0 or x.vmin < 0: return None
  if x.vmax < c.arg: return UOp.const(x.dtype, 0) if not is_mod else x
  terms = _split_sum(x)
  if len(terms) == 1 and terms[0].op is not Ops.MUL: return None
  if any(t.vmin < 0 for t in terms): return None
  quotient, rest, changed = [], [], False
  for t in terms:
    factor, k = _coef(t)
    if k % c.arg == 0:
      quotient.append(factor * (k // c.arg) if k // c.arg != 1 else factor); changed = True
    elif k > c.arg and factor.vmin >= 0:  # split k = q*c + r keeps both parts non-negative
      q, r = divmod(k, c.arg)
      quotient.append(factor * q if q != 1 else factor); rest.append(factor * r if r != 1 else factor); changed = True
    else: rest.append(t)
  if not changed: return None
  rem = _sum(rest, x.dtype)
  if is_mod: return rem % c
  return _sum(quotient + [rem // c], x.dtype)


def _sum(terms: list[UOp], dtype: DType) -> UOp:
  out = None
  for t in terms: out = t if out is None else out + t
  return out if out is not None else UOp.const(dtype, 0)


_CONST = UPat(Ops.CONST)
symbolic = PatternMatcher([
  # constant folding
  (UPat(tuple(ALU), src=UPat(Ops.CONST), name="x"), _fold),
  (UPat(Ops.CAST, src=(UPat(Ops.CONST, name="c"),), name="x"), lambda x, c: UOp.const(x.dtype, c.arg)),
  # identities
  (UPat(Ops.ADD, src=[UPat.var("x"), UPat.cvar("c")]), 
   # for floats only -0.0 is an identity: -0.0 + 0.0 is +0.0
   lambda x, c: x if c.arg == 0 and not (dtypes.is_float(x.dtype) and math.copysign(1, c.arg) > 0) else None),
  (UPat(Ops.MUL, src=[UPat.var("x"), UPat.cvar("c")]), lambda x, c: x if c.arg == 1 else None),
  (UPat(Ops.MUL, src=[UPat.var("x"), UPat.cvar("c")]), lambda x, c: UOp.const(x.dtype, 0) if c.arg == 0 and _is_int(x) else None),
  (UPat(Ops.IDIV, src=(UPat.var("x"), UPat.cvar("c"))), lambda x, c: x if c.arg == 1 else None),
  (UPat(Ops.MOD, src=(UPat.var("x"), UPat.cvar("c"))), lambda x, c: UOp.const(x.dtype, 0) if c.arg == 1 else None),
  (UPat(Ops.NEG, src=(UPat(Ops.NEG, src=(UPat.var("x"),)),)), lambda x: x),
  (UPat(Ops.ADD, src=[UPat.var("x"), UPat(Ops.NEG, src=(UPat.var("y"),))]), lambda x, y: UOp.const(x.dtype, 0) if x is y and _is_int(x) else None),
  (UPat(Ops.WHERE, src=(UPat.cvar("c"), UPat.var("a"), UPat.var("b"))), lambda c, a, b: a if c.arg else b),
  (UPat(Ops.WHERE, src=(UPat.var(), UPat.var("a"), UPat.var("a"))), lambda a: a),
  (UPat(Ops.CAST, name="x"), lambda x: x.src[0] if x.src[0].dtype == x.dtype else None),
  (UPat(Ops.AND, dtype=dtypes.bool, src=[UPat.var("x"), UPat.cvar("c")]), lambda x, c: x if c.arg else c),
  (UPat(Ops.OR, dtype=dtypes.bool, src=[UPat.var("x"), UPat.cvar("c")]), lambda x, c: c if c.arg else x),
  (UPat(Ops.AND, dtype=dtypes.bool, src=(UPat.var("x"), UPat.var("x"))), lambda x: x),
  (UPat(Ops.MAX, src=(UPat.var("x"), UPat.var("x"))), lambda x: x),
  # collect constants: (x + c1) + c2 -> x + (c1+c2), (x * c1) * c2 -> x * (c1*c2), c + x -> x + c
  (UPat(Ops.ADD, src=(UPat(Ops.ADD, src=(UPat.var("x"), UPat.cvar("c1"))), UPat.cvar("c2"))),
   lambda x, c1, c2: x + UOp.const(x.dtype, exec_alu(Ops.ADD, x.dtype, [c1.arg, c2.arg])) if _is_int(x) else None),
  (UPat(Ops.MUL, src=(UPat(Ops.MUL, src=(UPat.var("x"), UPat.cvar("c1"))), UPat.cvar("c2"))),
   lambda x, c1, c2: x * UOp.const(x.dtype, exec_alu(Ops.MUL, x.dtype, [c1.arg, c2.arg])) if _is_int(x) else None),
  (UPat((Ops.ADD, Ops.MUL), src=(UPat.cvar("c"), UPat.var("x")), name="e"),
   lambda e, c, x: e.replace(src=(x, c)) if x.op is not Ops.CONST and _is_int(x) else None),
  # (x + c1) * c2 -> x*c2 + c1*c2 keeps index sums flat so div/mod folding can see the terms
  (UPat(Ops.MUL, src=(UPat(Ops.ADD, src=(UPat.var("x"), UPat.cvar("c1"))), UPat.cvar("c2"))),
   lambda x, c1, c2: x * c2 + UOp.const(x.dtype, c1.arg * c2.arg) if _is_int(x) and x.vmin >= 0 and c2.arg >= 0 else None),
  # index math with known bounds
  (UPat(Ops.IDIV, src=(UPat.var("x"), UPat.cvar("c"))), lambda x, c: _div_mod_fold(x, c, False) if _is_int(x) else None),
  (UPat(Ops.MOD, src=(UPat.var("x"), UPat.cvar("c"))), lambda x, c: _div_mod_fold(x, c, True) if _is_int(x) else None),
  (UPat(Ops.CMPLT, src=(UPat.var("x"), UPat.var("y")), name="cmp"),
   lambda cmp, x, y: UOp.const(dtypes.bool, cmp.vmin) if _is_int(x) and cmp.vmin == cmp.vmax else None),
])
