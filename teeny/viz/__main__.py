"""`python -m teeny.viz [options] SCRIPT [ARGS...]`: run a Python script (as `python SCRIPT ARGS...` would) and
draw one of its realizes: by default the one that made the most kernels (a training script's first step:
forward, backward and the optimizer's kernels), or the N-th with --realize N. Writes the HTML page (-o, default
graph.html) and, with --dot, the graphviz file too; --run runs the drawn realize's kernels again at the end, on
copies of their buffers, and adds their times and roofline shares.

    python -m teeny.viz -o micrograd.html examples/micrograd.py
    python -m teeny.viz --run -o mnist.html --dot mnist.dot examples/mnist.py --synthetic --steps 2

The realize is scheduled again, afresh, just before it runs (schedule.explain_schedule), so the page shows the
kernels the script ran. Realizes of sharded tensors are skipped."""
from __future__ import annotations
import argparse, os, runpy, sys
from teeny.engine import tensors as engine_tensors
from teeny.schedule import create_schedule
from teeny.viz import page, _write
from teeny.viz.model import Explained, explain, describe, roots_of
from teeny.viz.dot import dot_text


class RealizePicker:
  """The realize observer (engine/tensors.py): keeps the schedule explained of the realize wanted (the N-th, or the
  one with the most items so far), worked out before it runs."""
  def __init__(self, wanted: int | None):
    self.wanted, self.count, self.best_items = wanted, 0, -1
    self.chosen: tuple[int, Explained] | None = None

  def __call__(self, tensors: tuple):
    self.count += 1
    if self.wanted is not None and self.count != self.wanted: return
    try: roots, devices = roots_of(list(tensors))
    except ValueError: return  # (sharded)
    if self.wanted is None:  # the biggest so far: counted from the schedule cache, explained only when bigger
      items = len(create_schedule(roots, devices)[0])
      if items <= self.best_items: return
      self.best_items = items
    self.chosen = (self.count, explain(roots, devices))


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m teeny.viz", description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("-o", "--out", default="graph.html", help="the HTML page to write (default graph.html)")
  parser.add_argument("--dot", default=None, help="also write the graph as graphviz DOT to this path")
  parser.add_argument("--run", action="store_true", help="run the drawn kernels (on copies) and show their times")
  parser.add_argument("--realize", type=int, default=None, metavar="N", help="draw the N-th realize (default: the biggest)")
  parser.add_argument("script", help="the Python script to run")
  parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
  options = parser.parse_args(argv)
  if options.realize is not None and options.realize < 1: parser.error("--realize counts from 1")
  picker = RealizePicker(options.realize)
  status = _run_script(options.script, options.args, picker)
  if picker.chosen is None:
    print(f"teeny.viz: {options.script} made no realize to draw" + (f" (it made {picker.count})" if picker.count else ""), file=sys.stderr)
    return status or 1
  number, explained = picker.chosen
  title = f"{os.path.basename(options.script)}: realize {number} of {picker.count}, {len(explained.items)} item(s)"
  data = describe(explained, run=options.run, title=title)
  print(f"teeny.viz: {_write(options.out, page(data))}: {title}, {len(data['nodes'])} nodes", file=sys.stderr)
  if options.dot: print(f"teeny.viz: {_write(options.dot, dot_text(data))}", file=sys.stderr)
  return status


def _run_script(script: str, args: list[str], picker: RealizePicker) -> int:
  """Run the script as __main__ with the picker watching every realize; its exit status (0 when it returned)."""
  if not os.path.isfile(script): raise SystemExit(f"teeny.viz: no such script: {script}")
  saved_argv, saved_path = sys.argv, list(sys.path)
  sys.argv, sys.path[0:0] = [script, *args], [os.path.dirname(os.path.abspath(script))]
  engine_tensors.observer = picker
  try: runpy.run_path(script, run_name="__main__")
  except SystemExit as e: return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
  finally: engine_tensors.observer, sys.argv, sys.path[:] = None, saved_argv, saved_path
  return 0


if __name__ == "__main__": sys.exit(main())
