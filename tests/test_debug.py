"""The DEBUG contract: what each level prints to stderr (and that DEBUG never changes results)."""
import os, re, subprocess, sys
import numpy as np
from teeny import Tensor, Context, Device

PROGRAM = "from teeny import Tensor; a = Tensor([[1.,2.],[3.,4.]]); print(((a*2+1).relu().sum(1)).numpy())"


def run(device: str, level: int, program: str = PROGRAM, **extra_env):
  env = dict(os.environ, DEBUG=str(level), DEVICE=device, **extra_env)
  done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  return done.stdout, done.stderr


def test_debug_2_prints_one_line_per_kernel_with_its_numbers(device, tmp_path):
  """The roofline ceilings are measured at exit the first time (never inside the program's realize), and cached:
  the next run's line carries the kernel's share."""
  line = rf"\*\*\* {device}\s+\d+ r_2_2\s+arg\s+2 mem\s+[\d.]+ GB tm\s+[\d.]+us \(\s*[\d.]+ GFLOPS\s+[\d.]+ GB/s, "
  cache = str(tmp_path / "cache")
  out, err = run(device, 2, TEENY_CACHE_DIR=cache)
  assert out.strip() == "[ 8. 16.]"
  lines = [l for l in err.splitlines() if l.startswith("***")]
  assert len(lines) == 1 and re.search(line + r"roofline at exit\)", lines[0]), lines[0]
  summary = err[err.index(f"roofline of {device}, measured after the program ran"):]
  assert re.search(r"\n  r_2_2\s+1x\s+[\d.]+ ms\s+\d+% of (mem|FLOPS)", summary), summary
  out, err = run(device, 2, TEENY_CACHE_DIR=cache)
  lines = [l for l in err.splitlines() if l.startswith("***")]
  # index, device, kernel name with its shape, buffer count, memory, time, GFLOP/s, GB/s, place on the roofline
  assert len(lines) == 1 and re.search(line + r"\s*\d+% of (mem|FLOPS)\)", lines[0]), lines[0]
  assert "roofline of" not in err  # nothing left to place at exit


def test_debug_2_prints_the_kernels_by_total_time_at_exit(device, tmp_path):
  """At exit, DEBUG=2 lists the kernels that ran (by name: kernels of one shape share it), the most total time
  first, with their launches, time, roofline share and share of the time: whether or not the ceilings were known
  while they ran."""
  program = ("from teeny import Tensor\nx = Tensor.ones(64, 64).contiguous().realize()\n"
             "for _ in range(3): (x * 2).sum(1).numpy()\n(x + 1).exp().numpy()")
  for _ in range(2):  # the ceilings measured at exit, then known
    _, err = run(device, 2, program, TEENY_CACHE_DIR=str(tmp_path / "cache"))
    table = err[err.index(f"kernels on {device} by total time (2 kernel(s),"):].splitlines()
    rows = [re.match(r"  (\w+)\s+(\d+)x\s+([\d.]+) ms\s+\d+% of (mem|FLOPS)\s+\d+% of the time$", line) for line in table[1:]]
    assert len(rows) == 2 and all(rows), table
    # (a CPU OpenCL driver computes 8 neighbours per work-item: codegen/vectorize.py)
    elementwise, rowsum = ("E_512_8", "r_64_8_8") if Device[device].renderer.vector_alu else ("E_4096", "r_64_64")
    assert sorted((r.group(1), int(r.group(2))) for r in rows) == [(elementwise, 2), (rowsum, 3)]
    assert float(rows[0].group(3)) >= float(rows[1].group(3))


def test_debug_1_prints_a_summary_and_nothing_per_kernel(device):
  out, err = run(device, 1)
  assert "realized 1 item" in err and "***" not in err


def test_debug_3_shows_schedule_and_opts(device):
  _, err = run(device, 3)
  assert "schedule 0" in err and "opts" in err


def test_debug_4_shows_the_source(device):
  _, err = run(device, 4)
  assert ("__kernel void r_2_2" in err) if device == "CL" else ('define void @"r_2_2"' in err or "define void @r_2_2" in err)


def test_debug_5_shows_ast_and_program(device):
  _, err = run(device, 5)
  assert "REDUCE_AXIS" in err and "DEFINE_ACC" in err


def test_debug_output_goes_to_stderr_and_does_not_change_results(device):
  quiet, _ = run(device, 0)
  loud, _ = run(device, 5)
  assert quiet == loud


def test_progress_line_while_a_realize_runs(device, monkeypatch, capsys):
  """PROGRESS=1: a realize past _Progress.AFTER_S (0 here) keeps one line on stderr up to date, ending with every
  kernel done and how many were new; off, and under DEBUG=2 (which lists each kernel), nothing is printed."""
  from teeny.engine import realize
  monkeypatch.setattr(realize._Progress, "AFTER_S", 0.0)
  monkeypatch.setattr(realize._Progress, "EVERY_S", 0.0)
  x = Tensor(np.arange(12, dtype=np.float32).reshape(3, 4), device=device)
  with Context(PROGRESS=1):
    out = ((x * 3).exp2().sum(1) + x.max(1)).numpy()
  err = capsys.readouterr().err
  last = err.split("\r")[-1].strip()
  assert last.startswith("realize: ") and "kernels" in last and "new (optimized and compiled)" in last, err
  done, total = last.split(": ")[1].split(" ")[0].split("/")
  assert done == total and int(total) >= 1
  np.testing.assert_allclose(out, np.exp2(np.arange(12, dtype=np.float32).reshape(3, 4) * 3).sum(1) + np.arange(3, 15, 4), rtol=1e-6)
  (x * 5).numpy()
  assert capsys.readouterr().err == "", "PROGRESS off printed"


def test_debug_7_shows_the_assembly_also_for_a_kernel_from_the_disk_cache(tmp_path):
  """The disk cache holds objects, not assembly: a kernel found there is compiled again at DEBUG=7, and the line
  before its assembly says so. Run twice with one cache: the second run finds every kernel on disk."""
  cache = str(tmp_path / "cache")
  _, first = run("LLVM", 7, TEENY_CACHE_DIR=cache)
  _, second = run("LLVM", 7, TEENY_CACHE_DIR=cache)
  for err in (first, second): assert re.search(r"\.globl\s+r_2_2\b", err), err[-2000:]
  assert "compiling it again" not in first
  assert "this kernel's object is in the disk cache; compiling it again to show its assembly" in second
