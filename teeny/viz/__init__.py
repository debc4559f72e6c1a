"""The viewer: the lazy graph under some tensors, its nodes grouped into the kernels the scheduler makes of it.

    teeny.viz.graph(tensors, "graph.html")           # one self-contained HTML page (no network: open it anywhere)
    teeny.viz.graph(tensors, "graph.html", run=True) # ... with each kernel run (on copies) and timed
    teeny.viz.dot(tensors, "graph.dot")              # the same graph for graphviz: kernels as clusters
    python -m teeny.viz examples/micrograd.py        # a script's biggest realize (see __main__.py)

Drawing never realizes the tensors: the graph is scheduled as a realize would schedule it and each kernel is
rendered, nothing runs unless run=True, and then on copies of the buffers (model.py). The page (page.html, a
template with vanilla JS and inline SVG) embeds the data as JSON; clicking a kernel shows its AST, the
optimizer's actions, its OpenCL C or LLVM IR and, when it ran, its time and roofline share. Gradient nodes (made
by a backward pass) are marked. This package sits above the engine and Tensor: nothing in teeny imports it."""
from __future__ import annotations
import json, os
from importlib import resources
from teeny.viz.model import Explained, explain, describe, roots_of
from teeny.viz.dot import dot_text

__all__ = ["graph", "dot", "data", "page", "Explained", "explain", "describe"]
_DATA_MARK = "__TEENY_VIZ_DATA__"  # where page.html takes the JSON


def data(tensors, run: bool = False, title: str | None = None) -> dict:
  """The page's data for these tensors (a Tensor or a list of them): nodes, kernels, gradient marks, and with
  run=True each kernel's time and roofline share."""
  roots, devices = roots_of(tensors)
  return describe(explain(roots, devices), run=run, title=title or _title(roots))


def graph(tensors, path: str = "graph.html", run: bool = False, title: str | None = None) -> str:
  """Write the viewer's HTML page for these tensors to `path`; returns the path."""
  return _write(path, page(data(tensors, run, title)))


def dot(tensors, path: str = "graph.dot", run: bool = False, title: str | None = None) -> str:
  """Write the graph as graphviz DOT to `path` (kernels as clusters, gradient nodes in red); returns the path."""
  return _write(path, dot_text(data(tensors, run, title)))


def page(page_data: dict) -> str:
  """The HTML page showing `page_data` (what data() returns)."""
  template = resources.files("teeny.viz").joinpath("page.html").read_text(encoding="utf-8")
  return template.replace(_DATA_MARK, embedded_json(page_data))


def embedded_json(value) -> str:
  """JSON that is safe inside a <script> element: '<', '>' and '&' escaped (a kernel's code may hold '</script>'),
  and every non-ASCII character too (U+2028 ends a line in old JavaScript)."""
  text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
  return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _write(path, text: str) -> str:
  if not isinstance(path, (str, os.PathLike)): raise TypeError(f"viz: a path to write to, got {path!r}")
  with open(path, "w", encoding="utf-8") as f: f.write(text)
  return os.fspath(path)


def _title(roots) -> str:
  shapes = ", ".join(str(tuple(r.shape)) for r in roots[:4])
  return f"teeny graph of {len(roots)} tensor(s): {shapes}{', ...' if len(roots) > 4 else ''}"
