"""The house rules CI checks on every run (docs/DESIGN.md, "Rules of the house"), and a line-count report.

- size: no module over MAX_LINES lines (tensor.py, the Tensor core, MAX_TENSOR_LINES)
- layers: imports point down the layer table below (an import inside a function counts too), and there are no
  import cycles between modules
- complexity: no function over MAX_COMPLEXITY (radon's cyclomatic complexity)
- lint: ruff's pyflakes errors (unused or undefined names, redefinitions, shadowed imports) over the repository

  python tools/house.py            # report, exit status 1 when a rule is broken
needs `pip install ruff radon` (CI installs them; they are not dependencies of teeny).
"""
from __future__ import annotations
import ast, os, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "teeny")
MAX_LINES, MAX_TENSOR_LINES, MAX_COMPLEXITY = 500, 700, 25
# top first: a module may import its own layer and the layers below it, never one above. A module's layer is the
# first entry whose prefix (a path inside teeny/) matches it.
LAYERS = [
  ("the viewer", ["viz/"]),
  ("the package face", ["__init__.py"]),
  ("built on Tensor", ["nn/", "distributed.py", "engine/jit.py", "engine/jit_args.py", "engine/jit_views.py"]),
  ("the user API", ["tensor.py", "ops/", "gradient.py"]),
  ("the engine", ["engine/", "program_order.py", "reference.py"]),
  ("the scheduler", ["schedule/", "schedule.py", "memory.py", "multi.py"]),
  ("codegen", ["codegen/"]),
  ("the runtime", ["runtime/"]),
  ("the renderers", ["renderer/"]),
  ("the IR and helpers", ["uop.py", "symbolic.py", "view.py", "variable.py", "dtype.py", "helpers.py", "tracing.py"]),
]


def modules() -> dict[str, str]:
  """module name -> path, for every .py file of the package."""
  found = {}
  for folder, _, files in os.walk(PACKAGE):
    for name in files:
      if not name.endswith(".py"): continue
      path = os.path.join(folder, name)
      rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
      found[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
  return found


def layer_of(path: str) -> int:
  rel = os.path.relpath(path, PACKAGE).replace(os.sep, "/")
  for i, (_, prefixes) in enumerate(LAYERS):
    if any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in prefixes): return i
  raise SystemExit(f"house: {rel} is in no layer of tools/house.py's LAYERS: add it")


def imports_of(path: str, known: dict[str, str]) -> set[str]:
  """The teeny modules `path` imports (at the top or inside functions)."""
  tree, found = ast.parse(open(path).read()), set()
  package = os.path.relpath(os.path.dirname(path), ROOT).replace(os.sep, ".")
  for node in ast.walk(tree):
    if isinstance(node, ast.Import): names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level: base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
      names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    else: continue
    found |= {name for name in names if name in known}
  return found


def check_layers(known: dict[str, str]) -> list[str]:
  problems, graph = [], {}
  for name, path in known.items():
    graph[name] = imports_of(path, known) - {name}
    for target in graph[name]:
      if layer_of(known[target]) < layer_of(path) and not known[target].endswith("__init__.py"):
        problems.append(f"{name} imports {target}, a layer above it ({LAYERS[layer_of(known[target])][0]})")
  problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
  return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """One cycle per strongly connected component of more than one module (Tarjan's algorithm, iteratively)."""
  index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
  for start in sorted(graph):
    if start in index: continue
    work = [(start, iter(sorted(graph[start])))]
    index[start] = low[start] = counter; counter += 1; stack.append(start); on_stack.add(start)
    while work:
      node, children = work[-1]
      child = next(children, None)
      if child is not None:
        if child not in index:
          index[child] = low[child] = counter; counter += 1; stack.append(child); on_stack.add(child)
          work.append((child, iter(sorted(graph[child]))))
        elif child in on_stack: low[node] = min(low[node], index[child])
        continue
      work.pop()
      if work: low[work[-1][0]] = min(low[work[-1][0]], low[node])
      if low[node] == index[node]:
        component = []
        while True:
          member = stack.pop(); on_stack.discard(member); component.append(member)
          if member == node: break
        if len(component) > 1: found.append(sorted(component))
  return found


def check_sizes(known: dict[str, str]) -> list[str]:
  problems, rows = [], []
  for name, path in sorted(known.items()):
    lines = sum(1 for _ in open(path))
    rows.append((lines, name))
    limit = MAX_TENSOR_LINES if name == "teeny.tensor" else MAX_LINES
    if lines > limit: problems.append(f"{name} has {lines} lines (at most {limit})")
  print("lines  module")
  for lines, name in sorted(rows, reverse=True): print(f"{lines:5d}  {name}")
  print(f"{sum(lines for lines, _ in rows):5d}  in {len(rows)} modules")
  return problems


def check_complexity(known: dict[str, str]) -> list[str]:
  try: from radon.complexity import cc_visit
  except ImportError: return ["radon is not installed (pip install radon): complexity not checked"]
  problems, worst = [], (0, "")
  for name, path in known.items():
    functions = {}  # radon lists a method both on its own and inside its class: count each once
    for block in cc_visit(open(path).read()):
      for item in [block, *getattr(block, "closures", []), *getattr(block, "methods", [])]:
        if not hasattr(item, "methods"): functions[(item.lineno, item.name)] = item.complexity
    for (lineno, function), complexity in sorted(functions.items()):
      if complexity > MAX_COMPLEXITY: problems.append(f"{name}:{lineno} {function} has complexity {complexity}")
      worst = max(worst, (complexity, f"{name}:{lineno} {function}"))
  print(f"most complex function: {worst[1]} ({worst[0]})")
  return problems


def check_lint() -> list[str]:
  try: result = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F,E9", "--output-format", "concise",
                                "teeny", "tests", "bench", "examples", "tools"], cwd=ROOT, capture_output=True, text=True)
  except FileNotFoundError: return ["ruff is not installed (pip install ruff): lint not run"]
  if "No module named ruff" in result.stderr: return ["ruff is not installed (pip install ruff): lint not run"]
  return [line for line in result.stdout.splitlines() if line and not line.startswith(("Found", "All checks", "["))]


def main():
  known = modules()
  problems = check_sizes(known) + check_layers(known) + check_complexity(known) + check_lint()
  for problem in problems: print(f"house: {problem}")
  print(f"house: {'ok' if not problems else f'{len(problems)} problems'}")
  sys.exit(1 if problems else 0)


if __name__ == "__main__":
  main()
