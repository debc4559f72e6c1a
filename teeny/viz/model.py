"""What the viewer shows, as plain data (the JSON the page embeds, and what the DOT export reads): the lazy graph
under some tensors, node by node, grouped into the kernels the scheduler makes of it, each kernel with its AST,
the optimizer's actions and its rendered code, and, when asked, the time and roofline share of a run.

Nothing here realizes the user's tensors. `explain` schedules the graph as a realize would (schedule.explain_
schedule: afresh, without touching the schedule cache or marking anything realized); `describe` renders each
kernel (codegen only: runner.program_spec compiles nothing) and, with run=True, runs the kernels on copies of
their input buffers (`_run_on_copies`): a write in the graph (an optimizer's assign) changes a copy, never the
user's parameters, and the tensors stay lazy.

Gradient nodes: every gradient compute_gradient made remembers the root it is a gradient of
(gradient.differentiated). A node is a gradient node when it is under such a gradient and not under its root
(the forward graph), or when all its sources are gradient nodes (the cast, detach and sum a `.grad` adds on top)."""
from __future__ import annotations
from dataclasses import dataclass
import time
from teeny.uop import UOp, Ops, ALU, MOVEMENT, pretty, toposort
from teeny.dtype import dtypes
from teeny.gradient import differentiated
from teeny.runtime.device import Buffer, Device
from teeny.schedule import ScheduleItem, explain_schedule, is_buffer_view, buffer_of
from teeny.engine.runner import program_spec, get_runner
from teeny.engine.realize import kernel_seconds, run_copy, copy_buffer, copy_name
from teeny.engine.roofline import measure_ceilings, roofline_closest

ARG_CHARS = 120  # a node's arg is shown cut to this many characters (a view's ShapeTracker can be long)


@dataclass
class Explained:
  """A graph and its schedule: `nodes` the graph under `roots` in toposort order, `items` the schedule's kernels
  and copies, `members[i]` the nodes item i computes (of the graph the scheduler saw) and `renamed` the graph's
  nodes -> the nodes scheduled in their place (a node realized before: its buffer)."""
  roots: tuple[UOp, ...]
  nodes: list[UOp]
  items: list[ScheduleItem]
  members: list[list[UOp]]
  renamed: dict[UOp, UOp]


def roots_of(tensors) -> tuple[tuple[UOp, ...], tuple[str, ...]]:
  """The graph nodes and devices of a Tensor or a list of Tensors; TypeError for anything else, ValueError for a
  sharded tensor (its graph is rewritten per device before scheduling: not drawn yet)."""
  from teeny.tensor import Tensor
  if isinstance(tensors, Tensor): tensors = [tensors]
  if not isinstance(tensors, (list, tuple)) or not tensors:
    raise TypeError(f"viz: a Tensor or a non-empty list of Tensors, got {type(tensors).__name__}")
  for i, t in enumerate(tensors):
    if not isinstance(t, Tensor): raise TypeError(f"viz: item {i} is a {type(t).__name__}, not a Tensor")
    if type(t.device) is tuple: raise ValueError(f"viz: item {i} is sharded over {t.device}; sharded tensors are not drawn yet")
  return tuple(t.uop for t in tensors), tuple(t.device for t in tensors)


def explain(roots: tuple[UOp, ...], devices: tuple[str, ...]) -> Explained:
  """Schedule the graph under roots as a realize would, without running it or touching the schedule cache."""
  items, members, renamed = explain_schedule(roots, devices)
  nodes = toposort(UOp(Ops.SINK, dtypes.void, roots))[:-1]
  return Explained(roots, nodes, items, members, renamed)


def describe(explained: Explained, run: bool = False, title: str = "teeny graph") -> dict:
  """The page's data: nodes, kernels and whether they ran (see the module docstring)."""
  nodes, index = explained.nodes, {n: i for i, n in enumerate(explained.nodes)}
  kernels_of = _kernels_of(explained)
  grads = gradient_nodes(nodes)
  roots = set(explained.roots)
  timings = _run_on_copies(explained) if run else [None] * len(explained.items)
  node_data = [_node(n, index, kernels_of.get(n, []), n in grads, n in roots) for n in nodes]
  kernel_data = [_kernel(i, item, timings[i]) for i, item in enumerate(explained.items)]
  for k in kernel_data: k["nodes"] = []
  for node in node_data:
    for k in node["kernels"]: kernel_data[k]["nodes"].append(node["id"])
  return {"title": title, "nodes": node_data, "kernels": kernel_data, "ran": run,
          "gradient_nodes": sum(node["grad"] for node in node_data)}


def _kernels_of(explained: Explained) -> dict[UOp, list[int]]:
  """Each node of the caller's graph -> the items that compute it (through the node scheduled in its place)."""
  by_scheduled: dict[UOp, list[int]] = {}
  for i, members in enumerate(explained.members):
    for m in members: by_scheduled.setdefault(m, []).append(i)
  renamed = explained.renamed
  return {n: by_scheduled[renamed.get(n, n)] for n in explained.nodes if renamed.get(n, n) in by_scheduled}


def gradient_nodes(nodes: list[UOp]) -> set[UOp]:
  """The nodes (of `nodes`, in toposort order) a backward pass made: see the module docstring."""
  gradients = [n for n in nodes if n in differentiated]
  if not gradients: return set()
  forward = _under([differentiated[g] for g in gradients])
  marked = _under(gradients) - forward
  for n in nodes:  # (toposort order: sources first)
    if n.src and n not in marked and all(s in marked for s in n.src): marked.add(n)
  return marked & set(nodes)


def _under(roots: list[UOp]) -> set[UOp]:
  return set(toposort(UOp(Ops.SINK, dtypes.void, tuple(roots)))[:-1])


def node_kind(n: UOp) -> str:
  """What the page colours a node by."""
  if n.op is Ops.BUFFER: return "buffer"
  if n.op in (Ops.CONST, Ops.RANGE): return "const"
  if n.op in MOVEMENT: return "movement"
  if n.op is Ops.REDUCE_AXIS: return "reduce"
  if n.op in ALU or n.op in (Ops.CAST, Ops.BITCAST): return "elementwise"
  return "special"  # COPY, ASSIGN, CONTIGUOUS, DETACH, MULTI


def node_label(n: UOp) -> str:
  """A node's short name: the op, with the number of a constant, the reduce's op and axes, a buffer's size."""
  if n.op is Ops.CONST: return f"CONST {n.arg:g}" if isinstance(n.arg, float) else f"CONST {n.arg}"
  if n.op is Ops.REDUCE_AXIS: return f"{n.arg[0].name} over {tuple(n.arg[1])}"
  if n.op is Ops.BUFFER: return f"BUFFER {n.arg.device}"
  return n.op.name


def _arg_text(n: UOp) -> str:
  if n.op is Ops.BUFFER: return f"{n.arg.size} x {n.arg.dtype} on {n.arg.device}"
  text = repr(n.arg)
  return text if len(text) <= ARG_CHARS else text[:ARG_CHARS] + "..."


def _node(n: UOp, index: dict, kernels: list[int], grad: bool, root: bool) -> dict:
  try: shape = list(n.shape)
  except Exception: shape = None  # (a node without a shape)
  return {"id": index[n], "op": n.op.name, "label": node_label(n), "kind": node_kind(n), "dtype": str(n.dtype),
          "shape": shape, "arg": _arg_text(n), "src": [index[s] for s in n.src], "kernels": kernels, "grad": grad,
          "root": root}


def _kernel(i: int, item: ScheduleItem, timing: dict | None) -> dict:
  """One item's data: a copy's devices and bytes, or a kernel's name, AST, actions and code."""
  out = {"id": i, "buffers": len(item.bufs), "bytes": sum(b.nbytes for b in item.bufs), "ran": timing}
  if item.ast.op is Ops.COPY:
    dst, src = item.bufs
    return out | {"kind": "copy", "name": copy_name(item.ast, dst, src), "device": dst.device, "ast": pretty(item.ast), "opts": [], "code": "",
                  "language": "", "global_size": [], "local_size": None, "flops": 0}
  device = item.bufs[0].device
  spec = program_spec(device, item.ast)
  return out | {"kind": "kernel", "name": spec.name, "device": device, "ast": pretty(item.ast),
                "opts": [str(o) for o in spec.applied_opts], "code": spec.src, "language": Device[device].renderer.language,
                "global_size": list(spec.global_size), "local_size": list(spec.local_size) if spec.local_size else None,
                "flops": spec.flops}


# ---- run=True: the kernels run on copies of their inputs ----

def _run_on_copies(explained: Explained, runs: int = 2) -> list[dict]:
  """Run the schedule `runs` times on copies of the buffers the graph reads (the buffers it makes are its own:
  nothing else holds them) and return each item's numbers from the last run (the first touches fresh memory)."""
  items = explained.items
  inputs = {buffer_of(n) for n in [*explained.nodes, *explained.renamed.values()] if is_buffer_view(n)}
  copies = {id(b): _copy_of(b) for item in items for b in item.bufs if b in inputs}
  sandboxed = [[copies.get(id(b), b) for b in item.bufs] for item in items]
  for _ in range(runs): seconds = [_run_item(item, bufs) for item, bufs in zip(items, sandboxed)]
  devices = sorted({item.bufs[0].device for item in items if item.ast.op is not Ops.COPY})
  measure_ceilings(*devices)  # (once per device, then cached on disk: run=True asked for the roofline)
  return [_numbers(item, bufs, t) for item, bufs, t in zip(items, sandboxed, seconds)]


def _copy_of(buf: Buffer) -> Buffer:
  copy = Buffer(buf.device, buf.size, buf.dtype)
  if buf.is_allocated: copy_buffer(copy, buf)
  return copy


def _run_item(item: ScheduleItem, bufs: list[Buffer]) -> float:
  if item.ast.op is Ops.COPY:
    start = time.perf_counter()
    run_copy(item.ast, bufs[0], bufs[1])
    return time.perf_counter() - start
  runner = get_runner(bufs[0].device, item.ast, bufs, item.vals)
  return kernel_seconds(runner(bufs, item.vals, wait=True))


def _numbers(item: ScheduleItem, bufs: list[Buffer], seconds: float) -> dict:
  """A run's numbers as DEBUG=2 prints them: time, GFLOP/s, GB/s and the share of the closer ceiling."""
  mem = sum(b.nbytes for b in bufs)
  out = {"us": round(seconds * 1e6, 3), "GB/s": round(mem / seconds / 1e9, 3)}
  if item.ast.op is Ops.COPY: return out
  spec = program_spec(bufs[0].device, item.ast)
  out["GFLOP/s"] = round(spec.flops / seconds / 1e9, 3)
  closest = roofline_closest(bufs[0].device, mem, spec.flops, seconds)
  if closest is not None: out["roofline"] = f"{closest[0]:.0%} of {closest[1]}"
  return out
