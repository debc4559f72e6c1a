"""A long fuzzing campaign: rounds of random programs (or gradient programs) on one device, each round with a
new seed; a failing round is shrunk by hypothesis and logged, and the campaign goes on. Counts the programs
that actually ran and were compared: rejected draws don't count, nor do the reruns of a failing round's
shrinking (that round counts up to its first failure).

  PYTHONPATH=. python tests/fuzz/campaign.py --device CL --programs 10000 --log /tmp/fuzz-cl.log [--gradients]
"""
from __future__ import annotations
import argparse, os, sys, time, traceback
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hypothesis import HealthCheck, given, reject, seed, settings  # noqa: E402
from fuzz_programs import Unusable, compare, programs, run_numpy, run_teeny  # noqa: E402
from fuzz_gradients import compare_gradients, finite_difference_gradients, grad_programs, teeny_gradients  # noqa: E402


def one_round(device: str, n: int, round_seed: int, gradients: bool, counts: dict):
  @seed(round_seed)
  @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
  @given(grad_programs() if gradients else programs())
  def check(program):
    try: want = finite_difference_gradients(program) if gradients else run_numpy(program)
    except Unusable: reject()
    counts["ran"] += 1
    try:
      if gradients: problem = compare_gradients(program, teeny_gradients(program, device)[1], want)
      else: problem = compare(program, run_teeny(program, device), want)
    except Exception: problem = traceback.format_exc()
    if problem is not None: counts.setdefault("failed_at", counts["ran"])  # shrinking reruns don't count
    assert problem is None, f"{device}\n{program}\n{problem}"
  check()


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--device", required=True)
  parser.add_argument("--programs", type=int, default=1000)
  parser.add_argument("--round", type=int, default=250, help="programs per hypothesis run")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--log", default="fuzz.log")
  parser.add_argument("--gradients", action="store_true")
  args = parser.parse_args()
  counts, failures, start, r = {"ran": 0}, 0, time.time(), 0
  while counts["ran"] < args.programs:
    before = counts["ran"]
    try: one_round(args.device, args.round, args.seed * 100003 + r, args.gradients, counts)
    except Exception:  # a shrunk failure (or a crash): log it and go on with the next round
      failures += 1
      counts["ran"] = counts.pop("failed_at", counts["ran"])
      with open(args.log, "a") as f: f.write(f"=== round {r} seed {args.seed * 100003 + r}\n{traceback.format_exc()[-6000:]}\n")
    with open(args.log, "a") as f:
      f.write(f"round {r}: {counts['ran'] - before} programs; total {counts['ran']} on {args.device}, "
              f"{failures} failing rounds, {time.time() - start:.0f} s\n")
    r += 1
  print(f"{counts['ran']} programs on {args.device}, {failures} failing rounds, {time.time() - start:.0f} s")


if __name__ == "__main__":
  main()
