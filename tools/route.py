"""The way one kernel takes through teeny's files: `(a + b).realize()` traced, cold, with sys.setprofile.

Prints the stage route (the files entered, in order, with consecutive calls in one file merged and the small library
modules folded into their caller) and counts its hops, the returns to a file already left, and the hops that go up
a layer; then the same over layers (tools/house.py's table). REVIEW.md measured 43 hops and 33 returns over files
for this route at 5b6d19b.

The route is the order in which files are entered, so an orchestrator (the engine calling the scheduler, then
codegen, then the runtime) shows as returns. The last figure counts calls instead: each call whose callee sits in a
higher layer than its caller, that is, control going against the layering. Those are listed by name; the only ones
expected are the rewrite engine (uop.py) running a layer's own pattern rules and functions handed down as
arguments (a cache's cost function).

  TEENY_NO_DISK_CACHE=1 python tools/route.py [--device LLVM] [--sum] [--show]
"""
from __future__ import annotations
import argparse, collections, os, sys
sys.path[:0] = [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.path.dirname(os.path.abspath(__file__))]
import house  # noqa: E402  (the layer table)

# folded into their caller: the IR and the helpers every layer uses
LIBRARY = {"uop.py", "symbolic.py", "view.py", "dtype.py", "helpers.py"}


def layer_of(path: str) -> int:
  """The layer (tools/house.py's table, top first) of a file inside teeny/."""
  return house.layer_of(os.path.join(house.PACKAGE, path))


def trace(device: str, reduce: bool) -> list[str]:
  import numpy as np
  import teeny
  from teeny import Tensor, Device
  root = os.path.join(os.path.dirname(teeny.__file__), "")
  Device.DEFAULT = device
  a, b = Tensor(np.ones((16, 32), np.float32)).realize(), Tensor(np.ones((16, 32), np.float32)).realize()
  out = (a * b).sum(1) if reduce else a + b
  calls, upward = [], collections.Counter()
  def profile(frame, event, arg):
    if event != "call" or not frame.f_code.co_filename.startswith(root): return
    callee = frame.f_code.co_filename[len(root):]
    calls.append(callee)
    caller = frame.f_back
    while caller is not None and not caller.f_code.co_filename.startswith(root): caller = caller.f_back
    if caller is None: return
    caller_path = caller.f_code.co_filename[len(root):]
    if layer_of(callee) < layer_of(caller_path):
      upward[f"{caller_path}:{caller.f_code.co_name} -> {callee}:{frame.f_code.co_name}"] += 1
  sys.setprofile(profile)
  out.realize()
  sys.setprofile(None)
  return calls, upward


def route_of(calls: list[str]) -> list[str]:
  route = []
  for path in calls:
    if os.path.basename(path) in LIBRARY: continue
    if not route or route[-1] != path: route.append(path)
  return route


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--device", default="LLVM")
  parser.add_argument("--sum", action="store_true", help="trace (a * b).sum(1) instead of a + b")
  parser.add_argument("--show", action="store_true", help="print the route")
  args = parser.parse_args()
  calls, upward = trace(args.device, args.sum)
  route = route_of(calls)
  if args.show: print("\n".join(route))
  print(f"{len(calls)} teeny calls")
  report("files", route, layer_of)
  layer_names = [name for name, _ in house.LAYERS]
  layers = [layer_names[layer_of(path)] for path in route]
  report("layers", [name for i, name in enumerate(layers) if i == 0 or layers[i - 1] != name], layer_names.index)
  print(f"calls against the layering (callee in a higher layer than its caller): {sum(upward.values())}")
  for edge, count in sorted(upward.items()): print(f"  {count} x {edge}")


def report(what: str, route: list[str], rank):
  """Hops along the route, returns to a place already left, and hops that go up a layer (rank: place -> its
  layer's index in the table, top first)."""
  seen, returns = {route[0]}, 0
  for after in route[1:]:
    returns += after in seen
    seen.add(after)
  up = sum(rank(after) < rank(before) for before, after in zip(route, route[1:]))
  print(f"route over {what}: {len(route)} stays in {len(set(route))} {what}, {len(route) - 1} hops, "
        f"{returns} returns to one already left, {up} hops up a layer")


if __name__ == "__main__":
  main()
