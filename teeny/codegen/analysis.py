"""Facts about a linearized program that the runtime needs to launch it and DEBUG prints about it, worked out once
here and carried in the ProgramSpec (never written into the compiled object and read back): the arithmetic it does,
its int arguments, and, for a runtime that splits the outermost loop across cores (LLVM), how much work one
iteration of that loop is and whether slices of it may run apart."""
from __future__ import annotations
from teeny.uop import UOp, Ops, ALU
from teeny.renderer import CORE_START, CORE_END


def count_flops(program: list, global_size) -> int:
  """ALU ops on data (not index math), times how often each runs."""
  flops, mult, stack, data = 0, 1, [], set()
  for u in program:
    if u.op is Ops.SPECIAL: mult *= u.arg[1]
    elif u.op is Ops.RANGE:
      start, end = u.src
      n = global_size[0] if start.op is Ops.DEFINE_VAR or start.op is Ops.CAST else (end.arg - start.arg if end.op is Ops.CONST else 1)
      stack.append(mult); mult *= n
    elif u.op is Ops.ENDRANGE: mult = stack.pop()
    elif u.op in (Ops.LOAD, Ops.DEFINE_ACC) or any(s in data for s in u.src):
      data.add(u)
      if u.op in ALU: flops += mult * getattr(u.dtype, "count", 1)  # (a vector op: one per lane)
  return flops


def count_buffers(program: list) -> int:
  """The kernel's buffer arguments (DEFINE_GLOBALs)."""
  return sum(1 for u in program if u.op is Ops.DEFINE_GLOBAL)


def value_dtypes(program: list) -> tuple:
  """The dtypes of the value arguments after the buffers, in argument order: every DEFINE_VAR but the
  CORE_START/CORE_END slice bounds (linearize puts them in argument order)."""
  return tuple(u.dtype for u in program if u.op is Ops.DEFINE_VAR and u.arg[0] not in (CORE_START, CORE_END))


def ops_per_iteration(program: list) -> int:
  """Instructions one outermost-loop iteration runs: each op weighted by the trip counts of its inner loops. A
  runtime that splits the outermost loop runs small kernels on one core without anyone telling it their size."""
  total, weights = 0, []  # weights[d]: how often an op at loop depth d+1 runs per outermost iteration
  for u in program:
    if u.op is Ops.RANGE: weights.append(weights[-1] * _trip_count(u) if weights else 1)
    elif u.op is Ops.ENDRANGE and weights: weights.pop()
    elif weights and u.op not in (Ops.CONST, Ops.DEFINE_GLOBAL, Ops.DEFINE_VAR): total += weights[-1]
  return max(1, min(total, 1 << 62))


def splittable(program: list) -> bool:
  """Whether every STORE sits inside a loop bounded by CORE_START/CORE_END, so that calls on disjoint slices of it
  do disjoint work. Otherwise (no such loop, or a store after it, e.g. of a reduction over it) the runtime makes
  one call for the whole range."""
  depth_in_core, stores_outside, has_core = [], 0, False
  for u in program:
    if u.op is Ops.RANGE:
      is_core = _is_core_var(u.src[0], CORE_START) and _is_core_var(u.src[1], CORE_END)
      has_core |= is_core
      depth_in_core.append(is_core or bool(depth_in_core and depth_in_core[-1]))
    elif u.op is Ops.ENDRANGE and depth_in_core: depth_in_core.pop()
    elif u.op is Ops.STORE and not (depth_in_core and depth_in_core[-1]): stores_outside += 1
  return has_core and stores_outside == 0


def _is_core_var(u: UOp, name: str) -> bool:
  while u.op is Ops.CAST: u = u.src[0]
  return u.op is Ops.DEFINE_VAR and u.arg[0] == name


def _trip_count(rng: UOp) -> int:
  start, end = rng.src
  if start.op is Ops.CONST and end.op is Ops.CONST: return max(0, end.arg - start.arg)
  lo, hi = start.vmin, end.vmax
  return max(1, int(hi - lo)) if isinstance(lo, int) and isinstance(hi, int) and hi - lo < (1 << 40) else 1
