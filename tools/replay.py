"""Kernel-source replay: the safety net for refactoring the scheduler and codegen (tinygrad calls it "process replay").

  record   runs the test suite (and the examples, small) in this process and keeps every kernel AST the scheduler
           hands to codegen; then renders each one with fixed renderers (see `renderers`) and writes the ASTs and
           what they rendered to (kernel name, optimizations, launch sizes, OpenCL C, LLVM IR) into one file.
  rebase   renders the recorded ASTs with the code as it is now and keeps that as the recorded output (after a
           change meant to change kernels; say in the commit which changed and why).
  check    renders the recorded ASTs again with the code as it is now (codegen only: nothing is compiled or run)
           and reports every kernel whose output changed. Exit status 1 when any did. CI runs this.
  compare  records like `record` (usually a smaller pytest selection; or takes the ASTs a pytest run kept with
           TEENY_REPLAY_CAPTURE=FILE, see tests/conftest.py) and reports the ASTs the scheduler now makes that the
           recorded file doesn't hold, and those it no longer makes: the check for scheduler changes. Exit status 1
           when it makes any new one.

The renderers are built from fixed device facts, never from the machine running the replay, so the rendered text
is the same on every machine. A kernel that fails to render records its error message instead of source. The
recorded file is a pickle: load only files this repository made.

  python tools/replay.py record [--out FILE] [--no-examples] [pytest args...]   (-n 2 --dist loadfile: 2 processes)
  python tools/replay.py rebase [--file FILE]
  python tools/replay.py check [--file FILE] [--show N]
  python tools/replay.py compare [--file FILE] [--no-examples] [pytest args...]
  TEENY_REPLAY_CAPTURE=run.pkl.xz python -m pytest; python tools/replay.py compare --captured run.pkl.xz

After a change that is meant to change kernels, rebase (or record again, when the suite gained kernels) and say in
the commit which kernels changed and why.
"""
from __future__ import annotations
import argparse, difflib, gzip, hashlib, lzma, os, pickle, runpy, subprocess, sys, types
from concurrent.futures import ProcessPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_FILE = os.path.join(ROOT, "tools", "replay_kernels.pkl.xz")
# the examples, shrunk to a few steps: (script, arguments)
EXAMPLES = [("quickstart.py", []), ("micrograd.py", []), ("mnist.py", ["--synthetic", "--epochs", "1"]),
            ("gpt.py", ["--steps", "2", "--sample", "8", "--print-every", "1"])]


# ---- the fixed renderers (update these, not the recorded file, when renderer construction moves) ----

def renderers() -> dict:
  """name -> a renderer built from fixed device facts: a CPU OpenCL driver like PoCL, a GPU with fp16 and vector
  loads, and an AVX-512 CPU for LLVM."""
  from teeny.renderer.cstyle import OpenCLRenderer
  from teeny.renderer.llvmir import LLVMRenderer
  from teeny.dtype import dtypes
  cpu_cl = types.SimpleNamespace(name="replay CPU", is_gpu=False, has_fp16=False, has_fp64=True, max_work_group_size=4096,
                                 max_work_item_sizes=(4096, 4096, 4096), local_mem_size=256 << 10,
                                 native_vector_width_float=16, native_vector_width_int=16, max_loop_iterations=None,
                                 fma_dtypes=(dtypes.float32, dtypes.float64))
  gpu_cl = types.SimpleNamespace(name="replay GPU", is_gpu=True, has_fp16=True, has_fp64=True, max_work_group_size=1024,
                                 max_work_item_sizes=(1024, 1024, 64), local_mem_size=48 << 10,
                                 native_vector_width_float=4, native_vector_width_int=4, max_loop_iterations=None,
                                 fma_dtypes=(dtypes.float32, dtypes.float64))
  return {"cl_cpu": OpenCLRenderer(cpu_cl), "cl_gpu": OpenCLRenderer(gpu_cl),
          "llvm": LLVMRenderer(libmvec_isa="e", vector_width=16)}


def render_all(ast) -> dict:
  """renderer name -> what codegen makes of `ast` with it: a text holding name, opts, sizes and source."""
  from teeny.codegen import get_program
  out = {}
  for name, renderer in renderers().items():
    try:
      spec = get_program(ast, renderer)
      out[name] = (f"name {spec.name}\nopts {spec.applied_opts}\nglobal {spec.global_size} local {spec.local_size} "
                   f"bufs {spec.n_bufs} flops {spec.flops}\n{spec.src}")
    except Exception as e:  # a kernel that can't render on a renderer is recorded as such, and must stay so
      out[name] = f"error {type(e).__name__}: {e}"
  return out


# ---- ASTs as flat node lists (no recursion, so deep kernels pickle too) ----

def flatten(ast) -> tuple:
  from teeny.uop import toposort
  nodes = toposort(ast)
  index = {u: i for i, u in enumerate(nodes)}
  return tuple((u.op, u.dtype, tuple(index[s] for s in u.src), u.arg) for u in nodes)


def unflatten(flat: tuple):
  from teeny.uop import UOp
  built = []
  for op, dtype, src, arg in flat: built.append(UOp(op, dtype, tuple(built[i] for i in src), arg))
  return built[-1]


def ast_key(flat: tuple) -> str:
  """A name for the AST from its text (pickled bytes would differ with what objects happen to share or cache)."""
  text = "\n".join(f"{op.name} {dtype!r} {src} {arg!r}" for op, dtype, src, arg in flat)
  return hashlib.sha256(text.encode()).hexdigest()[:20]


# ---- capturing the ASTs the scheduler hands to codegen ----

class Capture:
  """Wraps the engine's call into codegen and keeps each distinct kernel AST it sees (BEAM's candidates excluded:
  the replay renders every AST with the heuristics)."""
  def __init__(self):
    self.asts: dict[str, tuple] = {}
    self.paused = False  # (tests/conftest.py pauses it for tests whose kernels vary from run to run)

  def install(self):
    import teeny.engine.runner as engine
    original = engine.get_program
    def recording_get_program(ast, renderer, opts=None):
      self.keep(ast)
      return original(ast, renderer, opts)
    engine.get_program = recording_get_program

  def keep(self, ast):
    if self.paused: return
    flat = flatten(ast)
    self.asts.setdefault(ast_key(flat), flat)


def run_examples(capture_dir: str):
  for script, args in EXAMPLES:
    path = os.path.join(ROOT, "examples", script)
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    sys.argv = [path, *args]
    os.chdir(capture_dir)  # whatever an example writes lands in a scratch folder
    try: runpy.run_path(path, run_name="__main__")
    except SystemExit: pass
    finally: sys.argv, _ = saved_argv, os.chdir(saved_cwd)


def start_capture() -> Capture:
  """Capture from now on; hypothesis draws the same examples every run, so two recordings of one code base match."""
  try:
    from hypothesis import settings
    settings.register_profile("replay", derandomize=True, database=None)
    settings.load_profile("replay")
  except ImportError: pass
  cap = Capture()
  cap.install()
  return cap


def capture(pytest_args: list, examples: bool) -> dict:
  import tempfile, pytest
  with tempfile.TemporaryDirectory() as scratch:
    # tests/conftest.py captures the tests' ASTs (in this process, or in pytest-xdist's workers with -n) into this file
    os.environ["TEENY_REPLAY_CAPTURE"] = kept = os.path.join(scratch, "pytest.pkl.xz")
    try: status = pytest.main(["-q", "-p", "no:cacheprovider", *pytest_args])
    finally: del os.environ["TEENY_REPLAY_CAPTURE"]
    cap = start_capture()  # (from here on: the examples and the roofline's kernels)
    if os.path.exists(kept):
      for key, (flat, _) in load(kept).items(): cap.asts.setdefault(key, flat)
  print(f"replay: pytest exited with {status}; {len(cap.asts)} kernel ASTs so far", file=sys.stderr)
  if examples:
    with tempfile.TemporaryDirectory() as scratch: run_examples(scratch)
  from teeny.engine.roofline import benchmark_asts  # (made by a run only on a cold cache: recorded always)
  for ast in benchmark_asts(): cap.keep(ast)
  print(f"replay: {len(cap.asts)} kernel ASTs captured", file=sys.stderr)
  return cap.asts


def _render_one(flat: tuple) -> dict: return render_all(unflatten(flat))


def render_many(flats: list, jobs: int) -> list:
  if jobs <= 1: return [_render_one(f) for f in flats]
  with ProcessPoolExecutor(jobs) as pool: return list(pool.map(_render_one, flats, chunksize=16))


def save(path: str, records: dict):
  """xz (a quarter of gzip's size: the file lives in the repository); a name ending .gz is written as gzip."""
  if path.endswith(".gz"):
    with gzip.open(path, "wb") as f: pickle.dump(records, f, protocol=5)
  else:
    with lzma.open(path, "wb", preset=9) as f: pickle.dump(records, f, protocol=5)


def load(path: str) -> dict:
  with open(path, "rb") as f: gz = f.read(2) == b"\x1f\x8b"
  with (gzip.open if gz else lzma.open)(path, "rb") as f: return pickle.load(f)


# ---- the commands ----

def cmd_record(args, rest):
  asts = capture(rest, not args.no_examples)
  save(args.out, {k: (flat, None) for k, flat in asts.items()})
  # render in a fresh process: this one has run the suite (device threads, tests' patches), and forking it is unsafe
  return subprocess.run([sys.executable, os.path.abspath(__file__), "rebase", "--file", args.out, "--jobs", str(args.jobs)]).returncode


def cmd_rebase(args, rest):
  records = load(args.file)
  keys = sorted(records)
  rendered = render_many([records[k][0] for k in keys], args.jobs)
  save(args.file, {k: (records[k][0], r) for k, r in zip(keys, rendered)})
  print(f"replay: {len(keys)} kernels x {len(renderers())} renderers rendered into {args.file}")


def cmd_check(args, rest):
  records = load(args.file)
  keys = sorted(records)
  rendered = render_many([records[k][0] for k in keys], args.jobs)
  changed = []
  for key, now in zip(keys, rendered):
    before = records[key][1]
    for name in sorted(set(before) | set(now)):
      if before.get(name) != now.get(name): changed.append((key, name, before.get(name, ""), now.get(name, "")))
  for key, name, before, now in changed[:args.show]:
    print(f"--- kernel {key} on {name} changed:")
    print("\n".join(difflib.unified_diff(before.splitlines(), now.splitlines(), "recorded", "now", lineterm="", n=2)))
  n_renders = len(keys) * len(renderers())
  print(f"replay: {len(keys)} kernels, {n_renders} renders, {len(changed)} changed")
  return 1 if changed else 0


def cmd_compare(args, rest):
  records = load(args.file)
  if args.captured: asts = {k: flat for k, (flat, _) in load(args.captured).items()}
  else: asts = capture(rest, not args.no_examples)
  new = sorted(k for k in asts if k not in records)
  from teeny.uop import pretty
  for key in new[:args.show]:
    lines = pretty(unflatten(asts[key])).splitlines()
    shown = lines if len(lines) <= 40 else lines[:20] + [f"... {len(lines) - 40} lines ..."] + lines[-20:]
    print(f"--- new kernel AST {key}:\n" + "\n".join(shown))
  print(f"replay: {len(asts)} ASTs made now, {len(new)} not in {os.path.basename(args.file)} "
        f"({len(records)} recorded; {len(set(records) - set(asts))} of them not made by this run)")
  return 1 if new else 0


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("command", choices=["record", "rebase", "check", "compare"])
  parser.add_argument("--file", default=DEFAULT_FILE, help="the recorded kernels (check, compare)")
  parser.add_argument("--out", default=DEFAULT_FILE, help="where record writes")
  parser.add_argument("--captured", help="compare: the ASTs a pytest run with TEENY_REPLAY_CAPTURE=FILE kept")
  parser.add_argument("--no-examples", action="store_true", help="record from pytest only")
  parser.add_argument("--show", type=int, default=10, help="differences to print")
  parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes that render")
  args, rest = parser.parse_known_args()
  sys.path.insert(0, ROOT)
  command = {"record": cmd_record, "rebase": cmd_rebase, "check": cmd_check, "compare": cmd_compare}[args.command]
  sys.exit(command(args, rest) or 0)


if __name__ == "__main__":
  main()
