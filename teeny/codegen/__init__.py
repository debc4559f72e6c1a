"""Codegen: kernel AST -> optimized loops (kernel.py, heuristics.py, lower.py) -> flat program (linearize.py) -> source, by the
renderer the device gives (teeny/renderer/: OpenCL C, LLVM IR; the linearized program's contract is written there).
`get_program` is the one entry: it runs those stages in order and returns the ProgramSpec the runtime loads, with
the facts about the program the runtime needs (analysis.py).
"""
from __future__ import annotations
from teeny.renderer import Renderer, ProgramSpec
from teeny.codegen.kernel import Kernel
from teeny.codegen.heuristics import optimize
from teeny.codegen.lower import lower
from teeny.codegen.linearize import linearize
from teeny.codegen.analysis import count_buffers, count_flops, value_dtypes, ops_per_iteration, splittable


def get_program(ast, renderer: Renderer, opts: list | None = None) -> ProgramSpec:
  """Kernel AST -> optimize -> lower -> linearize -> render. `opts` (a list of kernel.Opt) replaces the optimizer's
  own choice: BEAM search and the tests use it."""
  kernel = optimize(Kernel(ast), renderer, opts)
  space = kernel.loop_space()  # (what lowering reads of it: the way from here goes on down, never back to kernel.py)
  lowered = lower(space, renderer)
  program = linearize(lowered.sink)
  name = space.name  # backends load each program on its own, so two kernels may share a name
  facts = dict(val_dtypes=value_dtypes(program), ops_per_iter=ops_per_iteration(program), splittable=splittable(program))
  n_bufs, flops = count_buffers(program), count_flops(program, lowered.global_size)
  src = renderer.render(name, program)  # last: the way from here goes on down to the runtime
  return ProgramSpec(name, src, lowered.global_size, lowered.local_size, n_bufs, flops, kernel.applied, kernel.opts,
                     program, **facts)
