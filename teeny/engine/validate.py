"""VALIDATE=1: every realize is also computed by the reference interpreter (teeny/reference.py) and compared.

`checked(realize)` decorates the tensor-level realize function (one line where it is defined): without VALIDATE it
returns the function itself (no cost), with VALIDATE=1 a wrapper that evaluates each tensor's graph with numpy
before the kernels run (a write may overwrite what the graph reads), runs the realize, reads what each tensor now
holds and raises a RuntimeError naming the tensor, its graph and the worst difference when they disagree. It is a
debugging mode: every realize reads its inputs and results back from the device and runs numpy on them.

Not covered: the launches a TinyJit replays (they bypass realize), and a graph that reads a buffer never written
(Tensor.empty: its contents are whatever the memory held), which is skipped.
"""
from __future__ import annotations
import functools
import numpy as np
from teeny.uop import UOp, Ops, pretty
from teeny.helpers import getenv
from teeny.reference import evaluate, mismatch
from teeny.schedule import realized_buffers


class _Unwritten(Exception):
  """The graph reads a buffer that was never written: nothing to compare."""


def checked(realize):
  """realize itself, or with VALIDATE=1 realize checked against the reference interpreter (see the docstring)."""
  if not getenv("VALIDATE", 0): return realize

  @functools.wraps(realize)
  def validated(tensors, *args, **kwargs):
    expected = [(t, t.uop, _reference(t.uop)) for t in tensors]  # before the realize runs anything
    out = realize(tensors, *args, **kwargs)
    for t, graph, want in expected:
      if want is not None: _check(graph, want, evaluate(t.uop, _known_value))
    return out
  return validated


def _reference(graph: UOp) -> np.ndarray | None:
  try: return evaluate(graph, _known_value)
  except _Unwritten: return None


def _known_value(node: UOp) -> np.ndarray | None:
  """A node's value when the device has it already: a buffer, or a result realized before (the scheduler reads
  those instead of computing them again; a write that ran must not be applied twice)."""
  if node.op is Ops.BUFFER:
    if not node.arg.is_allocated: raise _Unwritten()
    return node.arg.numpy()
  buffers = realized_buffers(node)
  return buffers[0].numpy()[:node.size] if buffers else None


def _check(graph: UOp, want: np.ndarray, got: np.ndarray):
  problem = mismatch(got, want, graph.dtype)
  if problem is None: return
  lines = pretty(graph).splitlines()
  shown = "\n".join(lines[-30:]) + (f"\n(the last 30 of {len(lines)} nodes)" if len(lines) > 30 else "")
  raise RuntimeError(f"VALIDATE: a tensor of shape {graph.shape} and {graph.dtype} (a {graph.op.name} node) differs "
                     f"from the reference interpreter: {problem}. Its graph:\n{shown}\n(DEBUG=3 prints its kernels)")
