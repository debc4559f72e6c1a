"""The rule that keeps Tensor's op mixins one-way: nothing in teeny/ops/, and not teeny/engine/tensors.py, imports
teeny/tensor.py (they build on self, type(self) and Tensor's protocol methods, and take tensors duck-typed)."""
import ast, pathlib

TEENY = pathlib.Path(__file__).resolve().parent.parent / "teeny"


def imported_modules(path: pathlib.Path) -> set[str]:
  """Every module a file imports, anywhere in it (in functions and TYPE_CHECKING blocks too); `from teeny import x`
  counts as importing teeny.x."""
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import): out.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      out.add(node.module)
      out.update(f"{node.module}.{alias.name}" for alias in node.names)
  return out


def test_ops_and_engine_tensors_never_import_tensor_py():
  files = sorted((TEENY / "ops").glob("*.py")) + [TEENY / "engine" / "tensors.py"]
  assert len(files) > 5
  offenders = {f.name: sorted(m for m in imported_modules(f) if m == "teeny.tensor" or m.startswith("teeny.tensor."))
               for f in files}
  assert not {name: mods for name, mods in offenders.items() if mods}


def test_the_check_sees_an_import_of_tensor_py(tmp_path):
  sample = tmp_path / "sample.py"
  sample.write_text("def f():\n  from teeny import tensor\n  from teeny.tensor import Tensor\n")
  assert {"teeny.tensor", "teeny.tensor.Tensor"} <= imported_modules(sample)
