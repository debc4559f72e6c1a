"""What a schedule hands out: ScheduleItems (a kernel AST or a COPY, its buffers and its values) and buffer views,
the graph nodes that stand for realized buffers; and which constants are kernel arguments (is_value_arg). Everything above the scheduler (tensor, realize, jit, program_order) uses
these through the package's face, teeny/schedule/__init__.py."""
from __future__ import annotations
from dataclasses import dataclass
import math
from teeny.dtype import dtypes
from teeny.uop import UOp, Ops
from teeny.runtime.device import Buffer
from teeny.variable import BoundValue


@dataclass(slots=True)
class ScheduleItem:
  ast: UOp                     # a kernel AST (SINK), or a COPY node for a copy between devices
  bufs: list[Buffer]           # the first writes_count(ast) are written, the rest are read
  vals: tuple = ()             # the kernel's value arguments (see is_value_arg), in the order of its DEFINE_VARs


def is_value_arg(n: UOp) -> bool:
  """Whether a constant of the graph is passed to its kernels as an argument instead of being compiled into them:
  a float32 number other than 0, 1 and -1, finite. Then graphs that differ only in such numbers (x * lr with a
  changing lr, a diffusion timestep, a temperature) share their schedule and their compiled kernels. 0, 1 and -1
  stay in the code, where the rewrite rules fold them (x * 1, x + 0); so do inf and nan (reduce identities and
  masks), the other dtypes (integers index and count; half needs a device extension as an argument) and bool.
  A bound Variable (BIND, teeny/variable.py) is always one: an int32 argument."""
  if n.op is Ops.BIND: return True
  if n.op is not Ops.CONST or n.src or n.dtype is not dtypes.float32: return False
  value = n.arg
  return value != 0.0 and value != 1.0 and value != -1.0 and math.isfinite(value)


def value_of(n: UOp):
  """What a value argument's node passes: a CONST's number, or a BIND's value (as a BoundValue, so TinyJit knows
  which Variable it came from)."""
  return n.arg if n.op is Ops.CONST else BoundValue(n.arg[3], n.arg[0])


def allreduce_op(copy: UOp) -> str | None:
  """A COPY's arg is (from device, to device), or (device, device, op) for an allreduce across processes
  (teeny.distributed.allreduce: op is sum, max or min): the op, or None for a plain copy."""
  return copy.arg[2] if len(copy.arg) > 2 else None


def writes_count(ast: UOp) -> int:
  """How many of an item's buffers it writes, the first ones: one per STORE of a kernel (usually one), one for a
  copy."""
  return len(ast.src) if ast.op is Ops.SINK else 1


def buffer_view(buf: Buffer, shape) -> UOp:
  """The graph node of a realized buffer seen with a shape: the BUFFER node itself when the shape is the buffer's
  own (one node fewer to build and walk for every 1-d result), else a RESHAPE of it."""
  shape = tuple(shape)
  node = UOp(Ops.BUFFER, buf.dtype, (), buf)
  # shapes are known already: one realized tensor per realize, so worth not deriving them
  node._cache["shape"] = (buf.size,)
  if shape == (buf.size,): return node
  view = UOp(Ops.RESHAPE, buf.dtype, (node,), shape)
  view._cache["shape"] = shape
  return view


def is_buffer_view(u: UOp) -> bool:
  return u.op is Ops.BUFFER or (u.op is Ops.RESHAPE and u.src[0].op is Ops.BUFFER)


def is_realized(u: UOp) -> bool:
  """A buffer view, or a sharded tensor's MULTI of them (teeny/multi.py): a tensor with nothing left to compute."""
  if u.op is Ops.MULTI: return all(is_buffer_view(s) for s in u.src)
  return is_buffer_view(u)


def buffer_of(view: UOp) -> Buffer:
  """The buffer behind a buffer view (see buffer_view)."""
  return view.arg if view.op is Ops.BUFFER else view.src[0].arg

