"""Codegen: kernel AST -> optimized loops (kernel.py, heuristics.py, lower.py) -> flat program (linearize.py) -> source (cstyle.py, llvmir.py).

THE LINEARIZED PROGRAM (what renderers receive): a list of UOps in execution order. Renderers are dumb: every
decision is made before them. The ops that appear, and what they mean:

  DEFINE_GLOBAL  dtype=PtrDType(base)  arg=i            kernel argument i: a pointer to `base` elements
  DEFINE_VAR     dtype=int32|int64     arg=(name,lo,hi) an int kernel argument after the buffers, in order of appearance
                                        (LLVM's core_start/core_end are int64)
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
  ALU ops        EXP2 LOG2 SIN SQRT RECIP NEG TRUNC ADD MUL MAX MOD IDIV CMPLT CMPNE AND OR XOR SHL SHR WHERE
  CAST           dtype=target          src=(x,)   value conversion (float->int truncates, x->bool is x != 0)
  LOAD/STORE of a vector (dtype / value of a VecDType of n lanes): elements buf[idx] .. buf[idx+n-1] at once
                                        (only for renderers with vector_widths; the index need not be aligned)
  GEP            dtype=scalar          src=(vector,) arg=lane   one lane of a vector
  VECTORIZE      dtype=VecDType        src=(scalars...)         a vector of these lanes
  BITCAST        dtype=target          src=(x,)   same bits, other type (same size)

Semantics every renderer keeps: MAX on floats propagates NaN from either side; IDIV and MOD truncate toward zero
(C); SHR is arithmetic for signed ints; CMPNE on floats is true when unordered, CMPLT false; bool lives in
memory as one byte (0/1). float16 values appear only in LOAD, STORE, CAST and CONST: lower.py computes half
arithmetic in float32.
"""
from __future__ import annotations
from dataclasses import dataclass, field
from teeny.renderer.tuning import Tuning


class Renderer:
  """Turns a linearized program into source text for one backend, and tells lowering what the target can do."""
  device = ""
  has_threads = False     # SPECIAL ids exist (OpenCL); else the outermost loop is split across cores by the runtime
  supports_half = False   # half arithmetic natively (else lower.py computes it in float32)
  max_global_dims = 3
  vector_width = 4        # float32 lanes of the target's vector registers (what the optimizer upcasts to)
  vector_widths: tuple = ()  # lane counts of the vector loads/stores it renders (LOAD/STORE of a VecDType), widest first
  native_vector_width: dict = {}  # element dtype -> the widest vector the device computes on (absent: no limit)
  tuning = Tuning()       # the tuned numbers (teeny/renderer/tuning.py); a device may set its own

  def vector_widths_for(self, dtype) -> tuple:
    """The vector widths rendered for loads and stores of `dtype` elements: no wider than the device's native width."""
    limit = self.native_vector_width.get(dtype)
    return tuple(w for w in self.vector_widths if limit is None or w <= limit)

  def render(self, name: str, program: list) -> str: raise NotImplementedError


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


def get_program(ast, renderer: Renderer, opts: list | None = None) -> ProgramSpec:
  """Kernel AST -> optimize -> lower -> linearize -> render. `opts` (a list of kernel.Opt) replaces the optimizer's
  own choice: BEAM search and the tests use it."""
  from teeny.codegen.kernel import Kernel
  from teeny.codegen.heuristics import optimize
  from teeny.codegen.lower import lower
  from teeny.codegen.linearize import linearize
  kernel = optimize(Kernel(ast), renderer, opts)
  lowered = lower(kernel, renderer)
  program = linearize(lowered.sink)
  name = kernel.name()  # backends load each program on its own, so two kernels may share a name
  src = renderer.render(name, program)
  n_bufs = sum(1 for u in program if u.op.name == "DEFINE_GLOBAL")
  return ProgramSpec(name, src, lowered.global_size, lowered.local_size, n_bufs, _count_flops(program, lowered.global_size),
                     kernel.applied, kernel.opts, program)


def _count_flops(program: list, global_size) -> int:
  """ALU ops on data (not index math), times how often each runs."""
  from teeny.uop import Ops, ALU
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
      if u.op in ALU: flops += mult
  return flops
