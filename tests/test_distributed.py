"""teeny.distributed: data-parallel training over MPI. Each test starts two processes with `mpiexec -n 2` running a
scenario of tests/distributed_child.py (which checks its own results and prints "ok ..."), or one process without
mpiexec (a world of one). Skipped where mpi4py or mpiexec is missing (`pip install 'teeny[mpi]'`)."""
import importlib.util, os, shutil, subprocess, sys
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MPIEXEC = next((p for p in (os.path.join(os.path.dirname(sys.executable), "mpiexec"), shutil.which("mpiexec"))
                if p and os.path.exists(p)), None)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
                                reason="needs mpi4py and mpiexec: pip install 'teeny[mpi]'")


def run(args: list[str], processes: int = 2, device: str | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
  """`args` (a python command line) in `processes` processes under mpiexec (1: plain python, no mpiexec)."""
  env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
  if device: env["DEVICE"] = device
  command = [sys.executable, *args] if processes == 1 else [MPIEXEC, "-n", str(processes), sys.executable, *args]
  return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def scenario(name: str, device: str | None = None, processes: int = 2) -> str:
  done = run([os.path.join(HERE, "distributed_child.py"), name], processes, device)
  assert done.returncode == 0, f"{name} exited with {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
  for r in range(processes): assert f"ok {name} rank {r}" in done.stdout, done.stdout
  return done.stdout


@pytest.mark.parametrize("name", ["collectives", "sync_batchnorm", "jit"])
def test_two_processes(name, device):
  """allreduce (sum, max, min; int, float16, bfloat16; fused; its gradient), a synchronized BatchNorm equal to one
  BatchNorm over the whole batch, and average_gradients inside a TinyJit equal to the same steps without it."""
  scenario(name, device)


def test_parameters_are_broadcast_and_gradients_averaged_in_buckets():
  scenario("parameters")


def test_a_world_of_one_process_needs_no_mpiexec():
  scenario("alone", processes=1)


def test_parameters_of_another_shape_raise_on_every_process_naming_it():
  out = scenario("mismatch")
  for r in (0, 1): assert f"raised rank {r}: broadcast_parameters: head is ((8, 5), 'float32') on rank 1" in out, out


def test_an_exception_in_one_process_ends_them_all():
  """Rank 0 waits in an allreduce rank 1 never reaches: init's hook aborts the run (MPI_Abort) instead of a hang."""
  done = run([os.path.join(HERE, "distributed_child.py"), "crash"], timeout=120)
  assert done.returncode != 0
  assert "rank 1 failed on purpose" in done.stderr
  assert "never released" not in done.stdout


def test_mnist_on_two_processes_trains_the_weights_of_one(tmp_path):
  """examples/mnist.py: 20 steps of the global batch 64, on one process and on two (32 each, gradients averaged,
  BatchNorm synchronized), from the same seed: equal weights to 1e-5, and bit-identical on both processes."""
  from teeny.nn.state import safe_load
  common = [os.path.join(ROOT, "examples", "mnist.py"), "--synthetic", "--steps", "20", "--device", "LLVM"]
  one = run(common + ["--save", str(tmp_path / "one.safetensors")], processes=1)
  assert one.returncode == 0, one.stderr[-3000:]
  two = run(common + ["--distributed", "--save", str(tmp_path / "two_{rank}.safetensors")])
  assert two.returncode == 0, two.stderr[-3000:]
  assert "on 2 processes" in two.stdout
  single = safe_load(tmp_path / "one.safetensors")
  ranks = [safe_load(tmp_path / f"two_{r}.safetensors") for r in (0, 1)]
  assert set(single) == set(ranks[0]) == set(ranks[1])
  for name, t in single.items():
    a, b0, b1 = t.numpy(), ranks[0][name].numpy(), ranks[1][name].numpy()
    np.testing.assert_array_equal(b0, b1, err_msg=name)
    np.testing.assert_allclose(b0, a, atol=1e-5, rtol=0, err_msg=name)
