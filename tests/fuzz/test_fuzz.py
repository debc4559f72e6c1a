"""Differential fuzzing: random tensor programs run by teeny on every device and by numpy must agree, and
gradients of random float64 programs must match finite differences (see fuzz_programs.py, fuzz_gradients.py).

The normal suite runs a small fixed budget, derandomized so CI sees the same programs every time. Run longer
with FUZZ_EXAMPLES=N (then each run draws new programs; FUZZ_SEED=S replays one run), e.g.
  FUZZ_EXAMPLES=2000 python -m pytest tests/fuzz -q -o addopts="" -p no:cacheprovider --hypothesis-show-statistics
"""
import os
import pytest
from hypothesis import HealthCheck, given, note, reject, seed, settings
from teeny import Device
from fuzz_programs import Unusable, compare, programs, run_numpy, run_teeny
from fuzz_gradients import compare_gradients, finite_difference_gradients, grad_programs, teeny_gradients

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 0)
# CI budget per device: PoCL compiles a kernel in ~0.25 s, LLVM in ~0.05 s
FORWARD_BUDGET = {"LLVM": 150, "CL": 40}
GRADIENT_BUDGET = {"LLVM": 25, "CL": 8}


def fuzz(default_examples: int):
  """Hypothesis settings: a fixed, reproducible budget in CI; FUZZ_EXAMPLES random programs when asked."""
  configured = settings(max_examples=FUZZ_EXAMPLES or default_examples, deadline=None, derandomize=not FUZZ_EXAMPLES,
                        database=None, suppress_health_check=list(HealthCheck), print_blob=True)
  if FUZZ_EXAMPLES and os.environ.get("FUZZ_SEED"):
    return lambda f: seed(int(os.environ["FUZZ_SEED"]))(configured(f))
  return configured


def has_fp64(device: str) -> bool:
  return device != "CL" or Device["CL"].info.has_fp64


def test_random_programs_match_numpy(device):
  @fuzz(FORWARD_BUDGET.get(device, 40))
  @given(programs())
  def check(program):
    note(f"program on {device}:\n{program}")
    try: want = run_numpy(program)
    except Unusable: reject()
    got = run_teeny(program, device)
    problem = compare(program, got, want)
    assert problem is None, f"{device}: teeny and numpy disagree\n{program}\n{problem}"
  check()


def test_random_gradients_match_finite_differences(device):
  if not has_fp64(device): pytest.skip(f"{device} has no float64")
  @fuzz(GRADIENT_BUDGET.get(device, 8))
  @given(grad_programs())
  def check(program):
    note(f"program on {device}:\n{program}")
    try: want = finite_difference_gradients(program)
    except Unusable: reject()
    _, got = teeny_gradients(program, device)
    problem = compare_gradients(program, got, want)
    assert problem is None, f"{device}: gradients disagree\n{program}\n{problem}"
  check()
