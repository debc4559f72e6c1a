"""Constants in the graph: the cached constant nodes that elementwise code makes over and over (`x + 1` builds 1 at
x's shape), and the rewrite that folds a reduce of a tensor whose elements all hold one value into that value."""
from __future__ import annotations
import math
from teeny.dtype import DType, dtypes
from teeny.uop import UOp, Ops, UPat, PatternMatcher, ALU, normalize_const, exec_alu, _derived

def _iota(n: int, dtype: DType, like):
  """0, 1, ..., n-1 on like's device (like: a Tensor) as the arange leaf (a RANGE node): no buffer to make and
  upload, and a kernel sees it as its loop index, so a sum of where(i == arange, x, 0) compiles to a load of x at i
  (codegen/kernel.py: gather axes)."""
  return like._constant(UOp(Ops.RANGE, dtype, (), n), like.device)


_const_nodes: dict = {}  # (dtype, shape, value...) -> node; emptied when it reaches _CONST_NODES_MAX
_CONST_NODES_MAX = 4096


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
