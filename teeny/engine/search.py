"""BEAM search over the optimizer's actions (BEAM=N): build each candidate kernel, time it on the device with the
kernel's real input buffers (and copies of its outputs, so nothing the program holds is overwritten), keep the N
fastest at every step, and stop when a step finds nothing faster. The winner is cached on disk per (device,
kernel AST, N), so a later run of the same kernel reuses it without searching; DEBUG=2 says so.
"""
from __future__ import annotations
import json, statistics
from teeny.codegen import get_program
from teeny.codegen.kernel import Kernel, Opt, KernelOptError
from teeny.codegen.heuristics import optimize
from teeny.helpers import debug_level, dprint
from teeny.runtime.device import Buffer, Device, disk_cache_get, disk_cache_put
from teeny.uop import UOp, pretty
from teeny.schedule import writes_count

MAX_STEPS = 4          # actions in a row, at most
MAX_CANDIDATES = 48    # kernels timed per step, at most (the rest are dropped in order)
UPCAST_AMOUNTS = (2, 3, 4, 8, 16, 32)
UNROLL_AMOUNTS = (0, 2, 4, 8, 16)
LOCAL_AMOUNTS = (2, 4, 8, 16, 32, 64, 128, 256)
GROUP_AMOUNTS = (8, 16, 32, 64, 128, 256)


def candidate_actions(k: Kernel, renderer) -> list[Opt]:
  """Every action worth timing on this kernel; those that turn out not to apply are skipped by the caller."""
  actions = []
  for axis, kind in enumerate(k.kinds):
    if kind in ("global", "local"): actions += [Opt("UPCAST", axis, a) for a in UPCAST_AMOUNTS]
    if kind == "reduce": actions += [Opt("UNROLL", axis, a) for a in UNROLL_AMOUNTS]
    if kind == "reduce" and renderer.has_threads: actions += [Opt("GROUP", axis, a) for a in GROUP_AMOUNTS]
    if kind == "global" and renderer.has_threads: actions += [Opt("LOCAL", axis, a) for a in LOCAL_AMOUNTS]
  globals_ = k.axes_of("global")
  actions += [Opt("SWAP", globals_[0], b) for b in globals_[1:]]
  return actions


def _time_candidate(ast: UOp, device: str, opts: list[Opt], bufs: list[Buffer], vals: tuple, repeats: int = 3) -> float:
  dev = Device[device]
  spec = get_program(ast, dev.renderer, opts)
  program = dev.program_cls(dev, spec, dev.compiler.compile_cached(spec.src))
  handles = [b.handle for b in bufs]
  times = [program(*handles, global_size=spec.global_size, local_size=spec.local_size, vals=vals, wait=True)
           for _ in range(repeats)]
  return statistics.median(times)


def _scratch_outputs(ast: UOp, device: str, bufs: list[Buffer]) -> list[Buffer]:
  """bufs with every output (the first writes_count) replaced by a copy, so the timed runs leave the program's
  buffers alone: a kernel with several outputs may update one in place (p.assign(p - lr * g) beside g), and
  timing it on the real buffer applied the update once per run."""
  outputs = writes_count(ast)
  scratch = []
  for b in bufs[:outputs]:
    copy = Buffer(device, b.size, b.dtype)
    if b.is_allocated and b.size: copy.copyin(memoryview(b.numpy()).cast("B"))  # (an in-place output reads it)
    scratch.append(copy)
  return scratch + list(bufs[outputs:])


def _cache_key(device: str, width: int) -> str: return f"beam:{width}:{Device[device].compiler.cache_key}"


def beam_search(ast: UOp, device: str, bufs: list[Buffer], width: int, vals: tuple = ()) -> list[Opt]:
  """The fastest list of actions found for the kernel `ast` (bufs: its buffers, output first; vals: its values)."""
  key, text = _cache_key(device, width), pretty(ast)
  cached = disk_cache_get(key, text)
  if cached is not None:
    opts = [Opt(*o) for o in json.loads(cached)]
    if debug_level() >= 2: dprint(f"BEAM={width}: cached choice {opts}")
    return opts
  renderer = Device[device].renderer
  scratch = _scratch_outputs(ast, device, bufs)
  best_time, best = _time_candidate(ast, device, [], scratch, vals), []
  beam = [(best_time, best)]
  for _ in range(MAX_STEPS):
    candidates, seen = [], set()
    for _, opts in beam:
      k = optimize(Kernel(ast), renderer, opts)
      for action in candidate_actions(k, renderer):
        trial = k.copy()
        try: trial.apply_opt(action, renderer)
        except KernelOptError: continue
        shape = (trial.full_shape, trial.kinds)  # different action lists can make the same loop space
        if shape not in seen: seen.add(shape); candidates.append(opts + [action])
    timed = []
    for opts in candidates[:MAX_CANDIDATES]:
      try: timed.append((_time_candidate(ast, device, opts, scratch, vals), opts))
      except Exception as e:  # a candidate the device can't build or run (too many registers, ...) just loses
        if debug_level() >= 3: dprint(f"BEAM: {opts} failed: {e}")
    if not timed: break
    beam = sorted(timed, key=lambda t: t[0])[:width]
    if beam[0][0] >= best_time: break
    best_time, best = beam[0]
  if debug_level() >= 2: dprint(f"BEAM={width}: chose {best} ({best_time * 1e6:.1f} us)")
  disk_cache_put(key, text, json.dumps([[o.op, o.axis, o.amount] for o in best]).encode())
  return best
