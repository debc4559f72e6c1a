"""Renderers: what a backend can do (Renderer), what codegen hands the runtime (ProgramSpec), and the contract
between them (the linearized program, below). This package sits below both codegen/ (which asks a Renderer about
the target and calls its render) and runtime/ (whose backends build their renderer from device facts and load the
ProgramSpecs), so neither of those imports the other. cstyle.py renders OpenCL C, llvmir.py LLVM IR.

THE LINEARIZED PROGRAM (what renderers receive): a list of UOps in execution order. Renderers are dumb: every
decision is made before them. The ops that appear, and what they mean:

  DEFINE_GLOBAL  dtype=PtrDType(base)  arg=i            kernel argument i: a pointer to `base` elements
  DEFINE_VAR     dtype=int32|int64|float32  arg=(name,lo,hi)  a value argument after the buffers (the int64
                                        CORE_START/CORE_END below are not among them). The program lists them in
                                        argument order; a constant passed as a value is named value_name(i) for
                                        argument i, with the bounds -inf, inf
  CONST          dtype=scalar          arg=python value
  SPECIAL        dtype=int32|int64     arg=(name, size) CL only: name "gidxN" is get_global_id(N), "groupN"
                                        get_group_id(N), "lidxN" get_local_id(N)
  RANGE          dtype=int32|int64     src=(start, end) arg=id   opens `for (i = start; i < end; i++)`
  ENDRANGE       src=(range,)                           closes that loop
  LOAD           dtype=scalar          src=(buf, idx) or (buf, idx, gate, alt): element buf[idx]; gated: gate ? buf[idx] : alt,
                                        and buf[idx] is not read when gate is false (a backend whose buffers
                                        always hold element 0 may read that instead: LLVM does, without a branch)
                                        (buf, idx, barrier): a read of local memory after that BARRIER
  STORE          src=(buf, idx, value) or (buf, idx, value, gate)
  DEFINE_LOCAL   dtype=PtrDType(base)  arg=(name, size)  CL only: work-group memory of `size` elements
  BARRIER        src=(stores...)                        CL only: every work-item of the group waits here
  DEFINE_ACC     dtype=scalar          src=(init, *ranges) arg=id   a mutable accumulator, declared and set to init
                                        (the ranges it accumulates over are for linearize; renderers read src[0])
  ASSIGN         src=(acc, value)  arg=None|"reassoc"   acc = value; later users of the ASSIGN read the accumulator.
                                        "reassoc": the updates may be reordered (kept as several partial sums)
  ALU ops        EXP2 LOG2 SIN SQRT RECIP NEG TRUNC ADD MUL MAX MOD IDIV FDIV CMPLT CMPNE AND OR XOR SHL SHR WHERE
  CAST           dtype=target          src=(x,)   value conversion (float->int truncates, x->bool is x != 0)
  LOAD/STORE of a vector (dtype / value of a VecDType of n lanes): elements buf[idx] .. buf[idx+n-1] at once
                                        (only for renderers with vector_widths; the index need not be aligned)
  GEP            dtype=scalar          src=(vector,) arg=lane   one lane of a vector
  VECTORIZE      dtype=VecDType        src=(scalars...)         a vector of these lanes
  ALU ops, DEFINE_ACC and ASSIGN of a VecDType (only for renderers with vector_alu): lane by lane, as the scalar op.
                                        A bool vector is the result of a float32 comparison (or logic on those)
  BITCAST        dtype=target          src=(x,)   same bits, other type (same size)

Semantics every renderer keeps: MAX on floats propagates NaN from either side; IDIV and MOD truncate toward zero
(C), and MOD on floats is C's fmod (exact, the dividend's sign, NaN for x % 0); FDIV is float division, correctly
rounded (OpenCL: built with -cl-fp32-correctly-rounded-divide-sqrt); SHR is arithmetic for signed ints; CMPNE on
floats is true when unordered, CMPLT false; bool lives in memory as one byte (0/1). float16 values appear only in LOAD, STORE, CAST and CONST: lower.py always computes
half arithmetic in float32.

On a renderer without threads (has_threads False) the outermost loop of a kernel runs from the DEFINE_VAR named
CORE_START to the one named CORE_END: the runtime calls the kernel once per core with a slice of that range.
"""
from __future__ import annotations
from dataclasses import dataclass, field
import math
from teeny.renderer.tuning import Tuning
from teeny.dtype import dtypes, DTYPES_DICT, STORAGE_FLOATS
from teeny.uop import UOp, Ops

CORE_START, CORE_END = "core_start", "core_end"  # the DEFINE_VARs bounding the slice of the outermost loop one call runs


_VALUE_PREFIX = "val"
def value_name(i: int) -> str: return f"{_VALUE_PREFIX}{i}"


def value_var_arg(i: int, lo=-math.inf, hi=math.inf) -> tuple:
  """The DEFINE_VAR arg of value argument i (a constant passed as an argument: teeny/schedule/items.is_value_arg),
  with the range of its values (a bound Variable's)."""
  return (value_name(i), lo, hi)


def value_number(var) -> int:
  """Which value argument a DEFINE_VAR made by value_var_arg is."""
  return int(var.arg[0][len(_VALUE_PREFIX):])


def value_order(var) -> tuple:
  """Sort key putting a kernel's value DEFINE_VARs in argument order (val2 before val10), the slice bounds last."""
  if var.arg[0] in (CORE_START, CORE_END): return (1, var.arg[0])
  return (0, value_number(var))


# How many times a renderer's Tuning was replaced: part of the schedule cache's keys, since the scheduler shapes
# graphs by the Tuning (teeny/schedule/shaping.py). Read as teeny.renderer.TUNING_CHANGES (a number, not a call:
# the key is made on every realize).
TUNING_CHANGES = 0


class Renderer:
  """Turns a linearized program into source text for one backend, and tells the optimizer and lowering what the
  target can do. Every capability they read is declared here with the answer for a plain target; a backend's
  renderer overrides what its device says otherwise."""
  language = "source"     # what the rendered code is, for people (the viewer's label): "OpenCL C", "LLVM IR"
  has_threads = False     # SPECIAL ids and work-groups exist (OpenCL); else the outermost loop is split across cores by the runtime
  is_gpu = False          # the heuristics group small reductions into work-groups only on GPUs
  max_global_dims = 3     # dimensions of the launch grid
  max_local_size = 1      # work-items one work-group may hold (1: no work-groups)
  local_mem_size = 32 << 10  # bytes of work-group memory one group may use (32 KiB: the least OpenCL 1.2 devices have)
  vector_width = 4        # float32 lanes of the target's vector registers (what the optimizer upcasts to)
  vector_widths: tuple = ()  # lane counts of the vector loads/stores it renders (LOAD/STORE of a VecDType), widest first
  native_vector_width: dict = {}  # element dtype -> the widest vector the device computes on (absent: no limit)
  vector_alu = False      # it renders vector arithmetic, so lowering joins upcast lanes into it (codegen/vectorize.py)
  has_fp16 = False        # half arithmetic in the device's own code (else half lives in memory only)
  has_fp64 = False        # float64 arithmetic
  max_loop_iterations: int | None = None  # loop iterations one work-item may run in all (None: no limit)
  tuning = Tuning()       # the tuned numbers (renderer/tuning.py); a device may set its own

  def __setattr__(self, name: str, value):
    super().__setattr__(name, value)
    if name == "tuning":  # (a new Tuning: schedules cached under the old one are not reused)
      global TUNING_CHANGES
      TUNING_CHANGES += 1

  def vector_widths_for(self, dtype) -> tuple:
    """The vector widths rendered for loads and stores of `dtype` elements: no wider than the device's native width."""
    limit = self.native_vector_width.get(dtype)
    return tuple(w for w in self.vector_widths if limit is None or w <= limit)

  def supported_dtypes(self) -> set:
    """The dtypes this target computes in its own arithmetic (tinygrad's name): all but the storage-only floats
    (bfloat16, fp8: computed in float32), float16 without has_fp16 (held in float registers) and float64 without
    has_fp64 (refused)."""
    left_out = set(STORAGE_FLOATS) | ({dtypes.float16} if not self.has_fp16 else set()) | ({dtypes.float64} if not self.has_fp64 else set())
    return {dt for dt in DTYPES_DICT.values() if dt not in left_out}

  def render(self, name: str, program: list) -> str: raise NotImplementedError


def accumulator_updates(program: list) -> dict[UOp, str | None]:
  """The float ADD/MUL nodes v in `ASSIGN(acc, v)` or `ASSIGN(acc, where(c, v, acc))` (a step under a mask) that
  read acc itself (the steps of a sum or product), each with its ASSIGN's arg ("reassoc" where the updates may be
  reordered). Renderers treat these alone specially: they may be reordered (LLVM) and fused with the product they
  add (both), where nothing else may."""
  root: dict[UOp, UOp] = {}  # DEFINE_ACC or ASSIGN -> its DEFINE_ACC
  found: dict[UOp, str | None] = {}
  for u in program:
    if u.op is Ops.DEFINE_ACC: root[u] = u
    elif u.op is Ops.ASSIGN and u.src[0] in root:
      acc, value = root[u.src[0]], u.src[1]
      root[u] = acc
      if value.op is Ops.WHERE and root.get(value.src[2]) is acc: value = value.src[1]
      is_float = dtypes.is_float(getattr(value.dtype, "scalar", value.dtype))
      if value.op in (Ops.ADD, Ops.MUL) and is_float and any(root.get(s) is acc for s in value.src): found[value] = u.arg
  return found


@dataclass
class ProgramSpec:
  """Everything the runtime needs to compile and launch one kernel, and what DEBUG prints about it."""
  name: str
  src: str
  global_size: tuple[int, int, int]
  local_size: tuple[int, int, int] | None
  n_bufs: int
  flops: int                    # estimated arithmetic ops on data per launch
  applied_opts: list = field(default_factory=list)  # what the optimizer did (kernel.Opt actions and canonical steps)
  opts: list = field(default_factory=list)          # the kernel.Opt actions alone
  program: list = field(default_factory=list)   # the linearized UOps (DEBUG=5)
  # facts codegen worked out about the program (teeny/codegen/analysis.py), for the runtime:
  val_dtypes: tuple = ()        # the value arguments after the buffers (DEFINE_VARs other than CORE_START/CORE_END)
  ops_per_iter: int = 1         # about how many ops one iteration of the outermost loop runs
  splittable: bool = False      # the outermost loop runs CORE_START..CORE_END and every STORE is inside it, so calls
                                # on disjoint slices of its range do disjoint work (a CPU runtime splits it across cores)

  @property
  def n_vals(self) -> int: return len(self.val_dtypes)


def index_math(program: list) -> set[UOp]:
  """The ADD/MUL ops that compute addresses (the index of a LOAD or STORE) from loop indices and constants alone.
  Lowering picks an index type wide enough for every offset, so this math never wraps, and saying so (nsw) lets
  LLVM see that x[i], x[i+1], ... are neighbours and load them as one vector. Integer math on values (which
  wraps, like C) is left alone: an op shared by a value and an address is bounded by the address."""
  from_data = set()
  for u in program:
    if u.op in (Ops.LOAD, Ops.DEFINE_ACC, Ops.ASSIGN) or any(s in from_data for s in u.src): from_data.add(u)
  found, stack = set(), [u.src[1] for u in program if u.op in (Ops.LOAD, Ops.STORE)]
  while stack:
    u = stack.pop()
    if u in found or u in from_data or u.op not in (Ops.ADD, Ops.MUL): continue
    found.add(u)
    stack.extend(u.src)
  return found
