"""Random optimizer actions against the plain kernel: recorded kernel ASTs (tools/replay_kernels.pkl.xz, the suite's
and the examples' kernels) run on a device with no actions and with random sequences of the actions BEAM search may
choose, on the same random inputs, and every output compared. BEAM keeps whichever candidate is fastest, so a
candidate that computes something else would be a silent wrong result for every BEAM=N user.

  python tools/opt_fuzz.py                              # 400 kernels, 4 random sequences each, on LLVM
  python tools/opt_fuzz.py --device CL --kernels 2000 --sequences 8 --seed 3 --show 20

Outputs must be equal bit for bit, except where the kernel reduces floats (an unrolled or grouped sum adds in
another order: compared within a tolerance scaled by the sum of the magnitudes) and where OpenCL's vector math may
differ from its scalar math in the last bit. The heuristics' own choice is checked too. Exit status 1 on a
difference; kernels whose buffers would be large are skipped (--max-elements).
"""
from __future__ import annotations
import argparse, os, random, sys, traceback
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import replay  # noqa: E402
from teeny import Device  # noqa: E402
from teeny.dtype import dtypes, bits_to_float  # noqa: E402
from teeny.uop import Ops, toposort  # noqa: E402
from teeny.codegen import get_program  # noqa: E402
from teeny.codegen.kernel import Kernel, KernelOptError  # noqa: E402
from teeny.codegen.heuristics import optimize  # noqa: E402
from teeny.engine.runner import CompiledRunner  # noqa: E402
from teeny.engine.search import candidate_actions, MAX_STEPS  # noqa: E402
from teeny.renderer import value_number  # noqa: E402
from teeny.runtime.device import Buffer  # noqa: E402
from teeny.schedule.items import writes_count  # noqa: E402


def largest_offset(tracker) -> int:
  """The largest element offset a view's first (memory-facing) view reaches over its valid elements."""
  first = tracker.views[0]
  ranges = first.mask if first.mask is not None else tuple((0, s) for s in first.shape)
  if any(lo >= hi for lo, hi in ranges): return 0
  return first.offset + sum(st * (hi - 1) if st > 0 else st * lo for st, (lo, hi) in zip(first.strides, ranges))


def buffer_specs(ast) -> dict[int, tuple]:
  """slot -> (element dtype, elements) for every buffer the kernel names, sized to what its views reach."""
  specs: dict[int, list] = {}
  for u in toposort(ast):
    if u.op is Ops.DEFINE_GLOBAL: specs.setdefault(u.arg, [u.dtype.base, 1])
    if u.op in (Ops.LOAD, Ops.STORE) and u.src[0].op is Ops.DEFINE_GLOBAL and u.src[1].op is Ops.VIEW:
      spec = specs.setdefault(u.src[0].arg, [u.src[0].dtype.base, 1])
      spec[1] = max(spec[1], largest_offset(u.src[1].arg) + 1)
  return {slot: tuple(spec) for slot, spec in specs.items()}


def random_contents(dtype, n: int, rng: np.random.Generator) -> np.ndarray:
  """Inputs that exercise a kernel: floats of mixed magnitude with a few zeros; ints small enough to be indices
  (and a few out of any range); bools half and half."""
  if dtype == dtypes.bool: return rng.random(n) < 0.5
  np_dtype = dtype.np
  if dtype.fmt is None:  # bfloat16 and fp8 are their bits in memory: bfloat16 a float32's upper half, fp8 any byte
    if dtype.itemsize == 2: return (random_contents(dtypes.float32, n, rng).view(np.uint32) >> 16).astype(np.uint16)
    return rng.integers(0, 256, n).astype(np.uint8)
  if dtypes.is_float(dtype):
    values = rng.standard_normal(n) * rng.choice([0.5, 1.0, 4.0], n)
    values[rng.random(n) < 0.05] = 0.0
    return values.astype(np_dtype)
  info = np.iinfo(np_dtype)
  values = rng.integers(max(info.min, -4), min(info.max, 48), n)
  far = rng.random(n) < 0.02
  values[far] = rng.integers(max(info.min, -2**20), min(info.max, 2**20), int(far.sum()))
  return values.astype(np_dtype)


def value_arguments(ast, rng: np.random.Generator) -> tuple:
  """A value for each value argument (a float constant passed in, or a bound Variable within its range)."""
  defined = {value_number(u): u for u in toposort(ast) if u.op is Ops.DEFINE_VAR and u.arg[0].startswith("val")}
  vals = []
  for i in range(max(defined, default=-1) + 1):
    u = defined.get(i)
    if u is None: vals.append(0); continue
    _, lo, hi = u.arg
    if dtypes.is_float(u.dtype): vals.append(float(np.float32(rng.standard_normal() * 2)))
    else: vals.append(int(rng.integers(max(lo, -8), min(hi, 64) + 1)) if lo <= min(hi, 64) else int(lo))
  return tuple(vals)


def random_actions(ast, renderer, rng: random.Random) -> list:
  """A sequence of actions as BEAM search builds one: each step one of the candidate actions that applies."""
  opts = []
  for _ in range(rng.randint(1, MAX_STEPS)):
    k = optimize(Kernel(ast), renderer, opts)
    actions = candidate_actions(k, renderer)
    rng.shuffle(actions)
    for action in actions:
      trial = k.copy()
      try: trial.apply_opt(action, renderer)
      except KernelOptError: continue
      opts.append(action)
      break
  return opts


def reduces_floats(ast) -> bool:
  return any(u.op is Ops.REDUCE_AXIS and dtypes.is_float(u.dtype) for u in toposort(ast))


class Case:
  """One kernel's buffers on the device, their starting contents and its value arguments."""
  def __init__(self, ast, device: str, rng: np.random.Generator):
    self.ast, self.device = ast, device
    specs = buffer_specs(ast)
    self.bufs = [Buffer(device, n, dtype) for _, (dtype, n) in sorted(specs.items())]
    self.start = [random_contents(dtype, n, rng) for _, (dtype, n) in sorted(specs.items())]
    self.vals = value_arguments(ast, rng)
    self.outputs = writes_count(ast)
    self.dtypes = [dtype for _, (dtype, _) in sorted(specs.items())][:self.outputs]

  def run(self, opts) -> list[np.ndarray]:
    for buf, contents in zip(self.bufs, self.start): buf.copyin(memoryview(np.ascontiguousarray(contents)).cast("B"))
    spec = get_program(self.ast, Device[self.device].renderer, opts)
    CompiledRunner(self.device, spec)(self.bufs, self.vals)
    Device[self.device].synchronize()
    # (bfloat16 and fp8 outputs as their float32 values: a NaN's bits may differ between two sums of the same NaNs)
    return [bits_to_float(b.numpy(), dt) if dt.fmt is None else b.numpy().copy() for b, dt in zip(self.bufs, self.dtypes)]


# one rounding step of a narrow float, relative: a reassociated sum rounded once may land a step away
_STEP = {dtypes.float16: 2.0 ** -10, dtypes.bfloat16: 2.0 ** -7, dtypes.fp8e4m3: 2.0 ** -3, dtypes.fp8e5m2: 2.0 ** -2}


def difference(plain: list, other: list, loose: bool, dts: list) -> str | None:
  """Why two runs' outputs differ, or None. NaN matches NaN; loose: within reassociation of float sums (and one
  rounding step of a narrow float output, dts: the outputs' dtypes)."""
  for i, (a, b) in enumerate(zip(plain, other)):
    if a.dtype.kind != "f":
      if not np.array_equal(a, b): return f"output {i}: {int((a != b).sum())} of {a.size} elements differ"
      continue
    same_nan = np.isnan(a) == np.isnan(b)
    if not same_nan.all(): return f"output {i}: NaN at {int((~same_nan).sum())} places in one run only"
    with np.errstate(invalid="ignore"): a64, b64 = np.nan_to_num(a.astype(np.float64), nan=0), np.nan_to_num(b.astype(np.float64), nan=0)
    if not loose:
      if not np.array_equal(a64, b64): return f"output {i}: {int((a64 != b64).sum())} of {a.size} elements differ (max {np.max(np.abs(a64 - b64)):.3g})"
      continue
    inf_same = np.isinf(a64) == np.isinf(b64)
    finite = np.isfinite(a64) & np.isfinite(b64)
    scale = np.max(np.abs(a64[finite]), initial=1.0)
    # float32/64: reassociation, within the sum's magnitude; a narrow float: its float32 sum rounded once, a step
    tol = _STEP[dts[i]] * np.abs(a64) + 1e-6 * scale if dts[i] in _STEP else 1e-3 * scale + 1e-4 * np.abs(a64)
    bad = finite & (np.abs(a64 - b64) > tol)
    if not inf_same.all() or bad.any():
      return f"output {i}: {int(bad.sum()) + int((~inf_same).sum())} of {a.size} elements differ (max {np.max(np.abs(a64 - b64)[finite], initial=0):.3g}, scale {scale:.3g})"
  return None


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--device", default="LLVM")
  parser.add_argument("--kernels", type=int, default=400)
  parser.add_argument("--sequences", type=int, default=4)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--max-elements", type=int, default=1 << 22)
  parser.add_argument("--file", default=replay.DEFAULT_FILE)
  parser.add_argument("--show", type=int, default=10)
  args = parser.parse_args()
  records = replay.load(args.file)
  keys = sorted(records)
  random.Random(args.seed).shuffle(keys)
  renderer, rng, np_rng = Device[args.device].renderer, random.Random(args.seed), np.random.default_rng(args.seed)
  loose_math = not args.device.startswith("LLVM")  # (an OpenCL driver's vector exp2 may differ from its scalar one)
  counts, problems = {"kernels": 0, "runs": 0, "skipped": 0}, []
  for key in keys[:args.kernels]:
    ast = replay.unflatten(records[key][0])
    if ast.op is not Ops.SINK or any(n > args.max_elements for _, n in buffer_specs(ast).values()):
      counts["skipped"] += 1; continue
    try:
      case = Case(ast, args.device, np_rng)
      plain = case.run([])
    except Exception as e:
      counts["skipped"] += 1
      if "work-groups" not in str(e): problems.append((key, "plain", f"plain kernel failed: {e!r}"))
      continue
    counts["kernels"] += 1
    loose = reduces_floats(ast) or loose_math
    for opts in [None] + [random_actions(ast, renderer, rng) for _ in range(args.sequences)]:
      try: why = difference(plain, case.run(opts), loose, case.dtypes)
      except Exception: why = traceback.format_exc(limit=3)
      counts["runs"] += 1
      if why is not None: problems.append((key, "heuristics" if opts is None else opts, why))
  print(f"opt_fuzz on {args.device}: {counts['kernels']} kernels, {counts['runs']} optimized runs compared with the "
        f"plain kernel, {counts['skipped']} skipped, {len(problems)} differences")
  for key, opts, why in problems[:args.show]: print(f"  {key} {opts}: {why}")
  return 1 if problems else 0


if __name__ == "__main__":
  sys.exit(main())
