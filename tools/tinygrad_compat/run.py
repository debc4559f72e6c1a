"""Runs tinygrad's own test files against teeny (through the import shim in shim/) and against real tinygrad, and
writes report.md and results.json beside this file: per-file counts for both, and every teeny failure with its
cause (a missing name, a tinygrad internal, a dtype rule, a numeric mismatch, ...). See README.md.

  python tools/tinygrad_compat/run.py                      # both passes (teeny, then tinygrad), all files
  python tools/tinygrad_compat/run.py --impl teeny --files test/backend/test_ops.py
  python tools/tinygrad_compat/run.py --report-only        # rebuild the report from the recorded runs
"""
from __future__ import annotations
import argparse, json, os, re, subprocess, time
import report  # (beside this script, so on sys.path when it runs)

HERE = os.path.dirname(os.path.abspath(__file__))
TEENY_ROOT = os.path.dirname(os.path.dirname(HERE))
TINYGRAD_GIT = "/work/.mirror/tinygrad+tinygrad/repo"
FILES = ["test/backend/test_ops.py", "test/backend/test_nn.py", "test/backend/test_optim.py", "test/backend/test_tensor.py",
         "test/backend/test_jit.py", "test/unit/test_indexing.py", "test/unit/test_gradient.py", "test/unit/test_jit.py",
         "test/backend/test_randomness.py", "test/test_tiny.py", "test/unit/test_assign.py", "test/backend/test_setitem.py",
         "test/unit/test_conv.py", "test/unit/test_linalg.py", "test/unit/test_rearrange_einops.py"]


def parse_args():
  """Command-line options."""
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--impl", action="append", choices=["teeny", "tinygrad"], help="which passes (default: both)")
  parser.add_argument("--files", nargs="+", default=FILES, help="tinygrad test files, relative to its checkout")
  parser.add_argument("--work", default="/tmp/tgcompat", help="scratch folder: test tree, teeny snapshot, raw runs")
  parser.add_argument("--tgsrc", default=None, help="a tinygrad checkout with test/ and extra/ (default: made from the mirror)")
  parser.add_argument("--teeny-src", default=None, help="folder holding teeny/ (default: a snapshot of this repo's HEAD)")
  parser.add_argument("--teeny-python", default=os.path.join(TEENY_ROOT, ".venv/bin/python"))
  parser.add_argument("--tinygrad-python", default="/work/tgvenv/bin/python")
  parser.add_argument("--mode", default="lenient", choices=["lenient", "strict"], help="shim mode for the teeny pass")
  parser.add_argument("--test-timeout", type=int, default=60, help="seconds one test may run")
  parser.add_argument("--file-timeout", type=int, default=2400, help="seconds one file may run")
  parser.add_argument("--no-slow", action="store_true", help="leave RUN_SLOW unset (tinygrad's @slow tests skip)")
  parser.add_argument("--name-gap-only", action="store_true", help="only compare the public names (fast, no tests run)")
  parser.add_argument("--report-only", action="store_true", help="only rebuild report.md and results.json")
  return parser.parse_args()


def git_head(git_dir: str) -> str:
  """The short commit hash of a repository's HEAD."""
  return subprocess.run(["git", f"--git-dir={git_dir}", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


def make_test_tree(work: str) -> str:
  """A tinygrad tree with its tests but not its package (test/, extra/, conftest.py, pyproject.toml), so nothing
  but the shim can answer `import tinygrad` in the teeny pass."""
  tree = os.path.join(work, f"tgtests_{git_head(TINYGRAD_GIT)}")
  if not os.path.isdir(tree):
    os.makedirs(tree)
    archive = subprocess.Popen(["git", f"--git-dir={TINYGRAD_GIT}", "archive", "HEAD", "test", "extra", "conftest.py", "pyproject.toml"],
                               stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", tree], stdin=archive.stdout, check=True)
    archive.wait()
  return tree


def make_teeny_snapshot(work: str) -> str:
  """teeny/ as committed at HEAD, so the measurement does not see files other people are half-way through editing."""
  head = git_head(os.path.join(TEENY_ROOT, ".git"))
  snapshot = os.path.join(work, f"teeny_{head}")
  if not os.path.isdir(os.path.join(snapshot, "teeny")):
    os.makedirs(snapshot, exist_ok=True)
    archive = subprocess.Popen(["git", "-C", TEENY_ROOT, "archive", "HEAD", "teeny"], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", snapshot], stdin=archive.stdout, check=True)
    archive.wait()
  return snapshot


def pass_env(impl: str, args, teeny_src: str, mode: str) -> dict:
  """The environment of one pass's pytest runs."""
  env = dict(os.environ, TEST_TIMEOUT=str(args.test_timeout * 5), PYTHONDONTWRITEBYTECODE="1")
  # tinygrad marks whole classes (all of test_nn's and test_optim's) @slow: run them, they are what we measure
  if not args.no_slow: env["RUN_SLOW"] = "1"
  plugins = os.path.join(HERE, "plugins")
  if impl == "teeny":
    env.update(TGC_SHIM_MODE=mode, DEVICE="LLVM", TEENY_CACHE_DIR="/tmp/tc", POCL_CACHE_DIR="/tmp/pc",
               PYTHONPATH=os.pathsep.join([os.path.join(HERE, "shim"), plugins, teeny_src]))
  else:
    env.update(DEV="CPU", PYTHONPATH=plugins)
  return env


def record_path(work: str, impl: str, test_file: str, suffix: str = "jsonl") -> str:
  """Where one file's raw outcomes of one pass are kept."""
  folder = os.path.join(work, "runs", impl)
  os.makedirs(folder, exist_ok=True)
  return os.path.join(folder, test_file.replace("/", "__") + "." + suffix)


def collect_count(python: str, tree: str, test_file: str, env: dict) -> tuple[int, str]:
  """How many tests pytest collects from a file, and the collection error ('' when none)."""
  result = subprocess.run([python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", test_file],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=600)
  count = sum(1 for line in result.stdout.splitlines() if "::" in line and not line.startswith(("ERROR", "FAILED")))
  error_lines = [line[1:].strip() for line in result.stdout.splitlines() if line.startswith("E ")]
  return count, (error_lines[-1] if error_lines and count == 0 else "")


def run_file(impl: str, python: str, tree: str, test_file: str, env: dict, args) -> None:
  """Run one test file under pytest, recording each outcome as it happens, and note how the run ended."""
  record, meta_path = record_path(args.work, impl, test_file), record_path(args.work, impl, test_file, "meta.json")
  for stale in (record, meta_path):
    if os.path.exists(stale): os.remove(stale)
  collected, collect_error = collect_count(python, tree, test_file, env)
  command = ["timeout", "-k", "20", str(args.file_timeout), "nice", "-n", "10", python, "-m", "pytest", "-q", "-p", "tgc_record",
             "-p", "no:cacheprovider", "-p", "no:xdist", test_file]
  started = time.time()
  log_path = record_path(args.work, impl, test_file, "log")
  with open(log_path, "w") as log:
    result = subprocess.run(command, cwd=tree, env=dict(env, TGC_RECORD=record, TGC_TEST_TIMEOUT=str(args.test_timeout)),
                            stdout=log, stderr=subprocess.STDOUT)
  meta = {"rc": result.returncode, "seconds": round(time.time() - started, 1), "collected": collected,
          "collect_error": collect_error, "killed": result.returncode in (124, 137)}
  with open(meta_path, "w") as out: json.dump(meta, out)
  print(f"[{impl}] {test_file}: rc={meta['rc']} in {meta['seconds']} s, {collected} collected", flush=True)


def strict_collect(args, tree: str, teeny_src: str) -> None:
  """Strict shim mode, collection only: does each file even import when only renamed modules exist?"""
  env = pass_env("teeny", args, teeny_src, "strict")
  results = {}
  for test_file in args.files:
    count, error = collect_count(args.teeny_python, tree, test_file, env)
    results[test_file] = {"collected": count, "collect_error": error}
  with open(os.path.join(args.work, "runs", "strict_collect.json"), "w") as out: json.dump(results, out, indent=1)


# prints the public names of tinygrad's user-facing namespaces (through the shim, for teeny) as JSON
NAMES_SCRIPT = """
import json, types, tinygrad, tinygrad.nn, tinygrad.nn.optim, tinygrad.nn.state
from tinygrad import Tensor, dtypes

def public(names): return sorted(n for n in names if not n.startswith("_"))

def own_names(module, real_name):
  # a module's own API: what it defines or lists in __all__, not what it imported (math, functools, helpers);
  # the package itself is all re-exports, so all of its names but submodules count there
  listed = getattr(module, "__all__", None)
  if listed is not None: return public(listed)
  keep = []
  for name in public(dir(module)):
    value = getattr(module, name)
    if isinstance(value, types.ModuleType): continue
    if getattr(value, "__module__", real_name) in (real_name, module.__name__): keep.append(name)
  return keep

real = lambda module: getattr(module, "_teeny_name", None) or module.__name__
spaces = {"Tensor": public(set(dir(Tensor)) | set(dir(Tensor([1.0, 2.0])))), "dtypes": public(dir(dtypes))}
for key, module in (("tinygrad", tinygrad), ("nn", tinygrad.nn), ("nn.optim", tinygrad.nn.optim), ("nn.state", tinygrad.nn.state)):
  if "teeny" in real(module): spaces[key] = public(dir(module))
  elif key == "tinygrad": spaces[key] = [n for n in public(dir(module)) if not isinstance(getattr(module, n), types.ModuleType)]
  else: spaces[key] = own_names(module, real(module))
print(json.dumps(spaces))
"""


def name_gap(args, tree: str, teeny_src: str) -> None:
  """Public names tinygrad has and teeny lacks, with how often the test files use each: this finds the names a
  test never reaches because it failed earlier on another one."""
  names = {}
  for impl, python in (("teeny", args.teeny_python), ("tinygrad", args.tinygrad_python)):
    env = pass_env(impl, args, teeny_src, "strict")
    result = subprocess.run([python, "-c", NAMES_SCRIPT], cwd="/tmp", env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0: return print(f"name gap: {impl} failed: {result.stderr[-500:]}")
    names[impl] = json.loads(result.stdout)
  sources = {f: open(os.path.join(tree, f)).read() for f in args.files}
  gap = {}
  for space, tinygrad_names in names["tinygrad"].items():
    for name in sorted(set(tinygrad_names) - set(names["teeny"].get(space, []))):
      prefix = {"Tensor": r"\.", "dtypes": r"dtypes\."}.get(space, r"\b")
      pattern = re.compile(prefix + re.escape(name) + r"\b")
      uses = {f: len(pattern.findall(text)) for f, text in sources.items()}
      gap[f"{space}.{name}"] = {f: n for f, n in uses.items() if n}
  with open(os.path.join(args.work, "runs", "name_gap.json"), "w") as out: json.dump(gap, out, indent=1)


def restore_recorded(work: str, impl: str) -> None:
  """Write a pass's outcomes recorded in results.json back as raw runs, when none are in `work`: the tinygrad pass
  takes 25 minutes and changes only with the tinygrad commit, so a teeny-only run reports against the last one."""
  recorded = report.read_json(os.path.join(HERE, "results.json"), {}).get("passes", {}).get(impl, {})
  for test_file, entry in recorded.items():
    meta_path = record_path(work, impl, test_file, "meta.json")
    if os.path.exists(meta_path): continue
    with open(record_path(work, impl, test_file), "w") as out:
      for nodeid, record in entry["tests"].items(): out.write(json.dumps(dict(record, event="test", nodeid=nodeid)) + "\n")
    with open(meta_path, "w") as out: json.dump(entry["meta"], out)


def main():
  """Run the passes asked for, rebuilding the report after every file."""
  args = parse_args()
  os.makedirs(os.path.join(args.work, "runs"), exist_ok=True)
  if args.report_only: return report.write(args.work, args.files)
  if args.name_gap_only: return name_gap(args, args.tgsrc or make_test_tree(args.work), args.teeny_src or make_teeny_snapshot(args.work))
  tree = args.tgsrc or make_test_tree(args.work)
  teeny_src = args.teeny_src or make_teeny_snapshot(args.work)
  with open(os.path.join(args.work, "runs_meta.json"), "w") as out:
    json.dump({"teeny_commit": git_head(os.path.join(TEENY_ROOT, ".git")), "tinygrad_commit": git_head(TINYGRAD_GIT),
               "teeny_mode": args.mode, "test_timeout": args.test_timeout, "teeny_src": teeny_src,
               "run_slow": not args.no_slow}, out)
  passes = args.impl or ["teeny", "tinygrad"]
  if "tinygrad" not in passes: restore_recorded(args.work, "tinygrad")
  for impl in passes:
    if impl == "teeny":
      strict_collect(args, tree, teeny_src)
      name_gap(args, tree, teeny_src)
    report.write(args.work, FILES)
    python = args.teeny_python if impl == "teeny" else args.tinygrad_python
    env = pass_env(impl, args, teeny_src, args.mode)
    for test_file in args.files:
      run_file(impl, python, tree, test_file, env, args)
      report.write(args.work, FILES)


if __name__ == "__main__":
  main()
