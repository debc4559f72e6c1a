"""Kernel AST -> a loaded program: codegen's ProgramSpec (get_program), compiled by the device's compiler (with its
on-disk cache) and loaded as the backend's Program. Runners are cached per (device, AST), bounded in count and in
the process memory their programs hold. With BEAM=N the optimizations come from BEAM search (search.py).

ProgramSpecs are cached on disk too (_program_spec), keyed by the AST, the renderer's settings and teeny's own code:
a process that meets kernels an earlier one made skips codegen as well as the compiler (the first training step of
examples/gpt.py spent 4 of its 4.7 s optimizing, lowering and rendering 199 kernels it had made before)."""
from __future__ import annotations
import dataclasses, hashlib, pickle
from teeny.uop import UOp, pretty, toposort
from teeny.codegen import get_program
from teeny.renderer import ProgramSpec
from teeny.runtime.device import Device, Buffer, disk_cache_get, disk_cache_put
from teeny.helpers import LRUCache, debug_level, dprint, getenv, source_digest
from teeny.engine.search import beam_search
from teeny import tracing


class CompiledRunner:
  """A kernel ready to launch: its spec and the device's loaded program. `memory`: about how many bytes of process
  memory it holds (its binary, plus the backend's estimate per program compiled here or loaded from disk)."""
  def __init__(self, device: str, spec: ProgramSpec):
    self.device, self.spec = device, spec
    dev = Device[device]
    compiles_before = dev.compiler.compiles
    try: lib = dev.compiler.compile_cached(spec.src)
    except Exception as e:
      if debug_level() >= 4: dprint(spec.src)
      raise RuntimeError(f"kernel {spec.name} failed to compile on {device}: {e}") from e
    self.program = dev.program_cls(dev, spec, lib)
    # (another thread compiling meanwhile can only make a loaded program count as compiled: an overestimate)
    compiled_here = self.compiled_here = dev.compiler.compiles != compiles_before
    cls = dev.program_cls
    self.memory = len(lib) + (cls.memory_estimate if compiled_here else cls.memory_estimate_loaded)
    self.launch = self.program.launcher(spec.global_size, spec.local_size)  # launch(*handles, vals=(), wait=False)

  def __call__(self, bufs: list[Buffer], vals: tuple = (), wait=False) -> float | None:
    return self.launch(*[b.handle for b in bufs], vals=vals, wait=wait)


# (device, kernel AST) -> CompiledRunner. Bounded in count (RUNNER_CACHE_SIZE) and in the process memory its
# loaded programs hold (RUNNER_CACHE_BYTES, as estimated by each backend's Program.memory_estimate): a PoCL program
# compiled in this process holds about 1.4 MiB, so the count bound alone would let 1,024 of them take 1.4 GB. The
# least recently used runners go first. An evicted runner stays usable by whoever still holds it (a TinyJit's
# capture keeps its runners themselves, not keys into this cache), and its program is freed when the last holder
# lets go; if its kernel comes back it is loaded again from the on-disk cache.
_runner_cache = LRUCache(getenv("RUNNER_CACHE_SIZE", 1024), max_cost=getenv("RUNNER_CACHE_BYTES", 512 << 20),
                         cost=lambda runner: runner.memory)


def get_runner(device: str, ast: UOp, bufs: list[Buffer] | None = None, vals: tuple = ()) -> CompiledRunner:
  """The compiled kernel for ast; with BEAM=N (and the kernel's buffers and values to time it on) its actions come
  from BEAM search, else from the optimizer's heuristics."""
  key = (device, ast)
  runner = _runner_cache.get(key)
  if runner is None:
    runner = _traced_new_runner(device, ast, bufs, vals) if tracing.active else _new_runner(device, ast, bufs, vals)
    _runner_cache[key] = runner
  return runner


def _new_runner(device: str, ast: UOp, bufs: list[Buffer] | None, vals: tuple) -> CompiledRunner:
  """A kernel not in the runner cache: its actions (BEAM search or heuristics), its spec, its compiled program."""
  spec = _spec_for(device, ast, bufs, vals)
  return CompiledRunner(device, spec)


def _spec_for(device: str, ast: UOp, bufs: list[Buffer] | None, vals: tuple) -> ProgramSpec:
  """The kernel's spec, with the actions BEAM=N search finds (timed on bufs and vals) or the heuristics'."""
  opts = None
  if (width := getenv("BEAM", 0)) and bufs is not None:
    opts = beam_search(ast, device, bufs, width, vals)
  spec = _program_spec(ast, device, opts)
  if debug_level() >= 3: dprint(f"  {spec.name}: opts {spec.applied_opts}")
  if debug_level() >= 5: dprint(pretty(ast)); dprint(pretty_program(spec.program))
  if debug_level() >= 4: dprint(spec.src)
  return spec


def _traced_new_runner(device: str, ast: UOp, bufs: list[Buffer] | None, vals: tuple) -> CompiledRunner:
  """_new_runner in a trace span "compile NAME" that says where the spec and the binary came from (the disk cache
  or made now), with a span for each step inside it. (Counted by counters another thread compiling at the same
  time may move too: then a disk hit may read as made now.)"""
  with tracing.span("compile", "compile", {"memory cache": "miss", "device": device}) as outer:
    codegen_runs = _codegen_runs[0]
    with tracing.span("codegen", "compile") as codegen:
      spec = _spec_for(device, ast, bufs, vals)
      codegen.args["program spec"] = "made now" if _codegen_runs[0] != codegen_runs else "disk cache hit"
    with tracing.span("compile and load", "compile") as compile_:
      runner = CompiledRunner(device, spec)
      compile_.args["binary"] = "compiled now" if runner.compiled_here else "disk cache hit"
    outer.name = f"compile {spec.name}"
    outer.args.update(kernel=spec.name, **codegen.args, **compile_.args)
    if getenv("BEAM", 0): outer.args["BEAM"] = getenv("BEAM", 0)
  return runner


def program_spec(device: str, ast: UOp) -> ProgramSpec:
  """The spec of this kernel: the loaded runner's when get_runner made it, else the one it would make with the
  heuristics' actions (from the disk cache when teeny made it before). Compiles and runs nothing: teeny.viz."""
  runner = _runner_cache.get((device, ast))
  return runner.spec if runner is not None else _program_spec(ast, device, None)


def is_loaded(device: str, ast: UOp) -> bool:
  """Whether get_runner holds this kernel's program already (it would neither optimize nor compile it)."""
  return (device, ast) in _runner_cache


_codegen_runs = [0]  # how many specs codegen made in this process (not read from disk): tells a trace which it was


def _program_spec(ast: UOp, device: str, opts: list | None) -> ProgramSpec:
  """get_program's spec, from the on-disk cache when this teeny made it before for the same AST, actions and
  renderer. The cached spec leaves out the linearized program (only DEBUG=5 prints it, and that level always runs
  codegen)."""
  renderer = Device[device].renderer
  if debug_level() >= 5:
    _codegen_runs[0] += 1
    return get_program(ast, renderer, opts)
  key = _spec_key(ast, device, opts)
  cached = disk_cache_get(key, "")
  if cached is not None:
    try: return pickle.loads(cached)
    except Exception: pass  # (a damaged entry: made again below)
  _codegen_runs[0] += 1
  spec = get_program(ast, renderer, opts)
  disk_cache_put(key, "", pickle.dumps(dataclasses.replace(spec, program=[])))
  return spec


def _spec_key(ast: UOp, device: str, opts: list | None) -> str:
  """What a program spec depends on: teeny's code, the device's compiler (its target), every setting of its
  renderer (capabilities, tuning, and anything set on the instance), NOOPT, the actions asked for and the AST."""
  dev = Device[device]
  renderer = dev.renderer
  settings = repr((type(renderer).__qualname__, sorted((k, _stable_repr(v)) for k, v in vars(renderer).items()), repr(renderer.tuning)))
  parts = (source_digest(), dev.compiler.cache_key, settings, str(getenv("NOOPT", 0)), repr(opts))
  digest = hashlib.sha256("\0".join(parts).encode())
  nodes = toposort(ast)  # (iterative: a deep AST is fine)
  number = {n: i for i, n in enumerate(nodes)}
  for n in nodes: digest.update(f"{n.op.name} {n.dtype} {[number[s] for s in n.src]} {n.arg!r}\n".encode())
  return f"spec:{digest.hexdigest()}"


def _stable_repr(value) -> str:
  """repr, with a set's elements in a fixed order: a set lists them in the order of their hashes, which change from
  process to process (the OpenCL renderer's fma_dtypes made every CL spec a disk-cache miss in the next process)."""
  if isinstance(value, (set, frozenset)): return "{" + ", ".join(sorted(map(repr, value))) + "}"
  return repr(value)


def pretty_program(program: list) -> str:
  ids = {u: i for i, u in enumerate(program)}
  return "\n".join(f"{i:4d} {u.op.name:<12} {str(u.dtype):<18} {[ids.get(s, '?') for s in u.src]} {u.arg!r}"[:200]
                   for i, u in enumerate(program))
