"""Codegen: kernel AST -> optimized loops (opt.py, lower.py) -> flat program (linearize.py) -> source, by the
renderer the device gives (teeny/renderer/: OpenCL C, LLVM IR; the linearized program's contract is written there).
`get_program` is the one entry: it runs those stages in order and returns the ProgramSpec the runtime loads.
"""
from __future__ import annotations
from teeny.uop import Ops, ALU
from teeny.renderer import Renderer, ProgramSpec
from teeny.codegen.opt import Kernel, optimize
from teeny.codegen.lower import lower
from teeny.codegen.linearize import linearize


def get_program(ast, renderer: Renderer, opts: list | None = None) -> ProgramSpec:
  """Kernel AST -> optimize -> lower -> linearize -> render. `opts` (a list of opt.Opt) replaces the optimizer's
  own choice: BEAM search and the tests use it."""
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
