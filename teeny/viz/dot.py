"""The viewer's graph as graphviz DOT: one cluster per kernel (a node two kernels compute is drawn in the first,
its label saying which others compute it too), inputs outside every cluster, gradient nodes outlined in red.
`dot -Tsvg graph.dot -o graph.svg` draws it."""
from __future__ import annotations

COLORS = {"buffer": "#d9e8f5", "const": "#eeeeee", "movement": "#fdf1c7", "elementwise": "#dff2dc",
          "reduce": "#f7d9c4", "special": "#e6dcf2"}  # node kind -> fill (the page uses the same)


def quoted(text: str) -> str:
  """A DOT string: backslashes and quotes escaped, newlines as DOT's \\n."""
  return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot_text(data: dict) -> str:
  """DOT for the viewer's data (teeny.viz.data)."""
  lines = ["digraph teeny {", f"  label={quoted(data['title'])}; labelloc=t; rankdir=TB; compound=true;",
           '  node [shape=box, style="rounded,filled", fontname="monospace", fontsize=10];']
  placed: dict[int, int] = {}  # node id -> the kernel whose cluster declares it
  for node in data["nodes"]:
    if node["kernels"]: placed[node["id"]] = node["kernels"][0]
  for kernel in data["kernels"]:
    lines.append(f"  subgraph cluster_k{kernel['id']} {{")
    lines.append(f"    label={quoted(_kernel_label(kernel))}; style=\"rounded\"; color=\"#555555\";")
    lines += [f"    {_node_line(node)}" for node in data["nodes"] if placed.get(node["id"]) == kernel["id"]]
    lines.append("  }")
  lines += [f"  {_node_line(node)}" for node in data["nodes"] if node["id"] not in placed]
  lines += [f"  n{s} -> n{node['id']};" for node in data["nodes"] for s in node["src"]]
  lines.append("}")
  return "\n".join(lines) + "\n"


def _kernel_label(kernel: dict) -> str:
  label = f"kernel {kernel['id']}: {kernel['name']} ({kernel['device']})"
  if kernel["ran"]: label += f"\n{kernel['ran']['us']} us"
  return label


def _node_line(node: dict) -> str:
  label = f"{node['label']}\n{node['dtype']} {tuple(node['shape']) if node['shape'] is not None else ''}"
  if len(node["kernels"]) > 1: label += f"\nalso in kernel(s) {', '.join(map(str, node['kernels'][1:]))}"
  style = ', color="#c0392b", penwidth=2' if node["grad"] else ""
  return f"n{node['id']} [label={quoted(label)}, fillcolor={quoted(COLORS[node['kind']])}{style}];"
