"""The way one kernel takes through teeny's files: `(a + b).realize()` traced, cold, with sys.setprofile.

Prints the stage route (the files entered, in order, with consecutive calls in one file merged and the small library
modules folded into their caller) and counts its hops, the returns to a file already left, and the hops that go up
a layer. REVIEW.md measured 43 hops and 33 returns for this route before issue 18.

  TEENY_NO_DISK_CACHE=1 python tools/route.py [--device LLVM] [--sum] [--show]
"""
from __future__ import annotations
import argparse, os, sys

# folded into their caller: the IR and the helpers every layer uses
LIBRARY = {"uop.py", "symbolic.py", "view.py", "dtype.py", "helpers.py"}
# the layers, top first; a file's layer is the first prefix that matches its path inside teeny/
LAYERS = ["nn/", "tensor.py", "ops/", "engine/", "program_order.py", "schedule", "memory.py", "codegen/", "renderer/",
          "runtime/", "reference.py"]


def layer_of(path: str) -> int:
  for i, prefix in enumerate(LAYERS):
    if path.startswith(prefix): return i
  return len(LAYERS)


def trace(device: str, reduce: bool) -> list[str]:
  import numpy as np
  import teeny
  from teeny import Tensor, Device
  root = os.path.join(os.path.dirname(teeny.__file__), "")
  Device.DEFAULT = device
  a, b = Tensor(np.ones((16, 32), np.float32)).realize(), Tensor(np.ones((16, 32), np.float32)).realize()
  out = (a * b).sum(1) if reduce else a + b
  calls = []
  def profile(frame, event, arg):
    if event == "call" and frame.f_code.co_filename.startswith(root): calls.append(frame.f_code.co_filename[len(root):])
  sys.setprofile(profile)
  out.realize()
  sys.setprofile(None)
  return calls


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
  calls = trace(args.device, args.sum)
  route = route_of(calls)
  seen, returns, up = {route[0]}, 0, 0
  for before, after in zip(route, route[1:]):
    returns += after in seen
    up += layer_of(after) < layer_of(before)
    seen.add(after)
  if args.show: print("\n".join(route))
  print(f"{len(calls)} teeny calls; stage route: {len(route)} stays in {len(set(route))} files, {len(route) - 1} hops, "
        f"{returns} returns to a file already left, {up} hops up a layer")


if __name__ == "__main__":
  main()
