"""The CPU worker pool (teeny/runtime/cpu_pool.py) under stress: many Python threads launching kernels large enough
to be split across cores at once, with large copies in and out going through the same workers, on the native pool
and on the Python fallback; and a forked child that uses the pool while its parent's workers were busy at the fork.
Results are checked against numpy. Everything runs in a child process (tests/child.py) with a timeout: a broken
hand-over hangs or crashes that process, not the test run."""
import os, sys
import pytest
from conftest import DEVICES

sys.path.insert(0, os.path.dirname(__file__))
from child import run_in_child  # noqa: E402

pytestmark = pytest.mark.skipif("LLVM" not in DEVICES, reason="no LLVM device")

# What the children share: counters around the pool's entry points, and one round of split kernels whose inputs
# differ per thread and per call (a slice that ran with another call's arguments shows up as a wrong number). The
# values are small integers, so every float32 result is exact and the sums' order doesn't matter.
_SETUP = r"""
import dataclasses, os, threading, time
import numpy as np
from teeny import Tensor, Device
from teeny.runtime import cpu_pool

N = (1 << 19) + 7                 # elements: more operations than Tuning.parallel_threshold; uneven slices
ROWS, COLS = 515, 1024            # a row sum over as many elements, split by rows
renderer = Device["LLVM"].renderer  # the inputs' and outputs' copies (2 MiB) go through the workers too
renderer.tuning = dataclasses.replace(renderer.tuning, parallel_copy_bytes=1 << 16)

counts = {"split": 0, "on_workers": 0, "copies": 0}
count_lock = threading.Lock()
def counted(name, fn):
  def call(*args, **kwargs):
    with count_lock: counts[name] += 1
    return fn(*args, **kwargs)
  return call
cpu_pool.run_split = counted("split", cpu_pool.run_split)
for pool_cls in (cpu_pool._NativePool, cpu_pool._PythonPool):
  pool_cls.run = counted("on_workers", pool_cls.run)
  pool_cls.copy = counted("copies", pool_cls.copy)

def one_round(seed):
  x = (np.arange(N) % 1000 + seed % 7).astype(np.float32)
  y = (np.arange(N) % 13 * (seed % 5)).astype(np.float32)
  m = (np.arange(ROWS * COLS) % 97 + seed % 3).astype(np.float32).reshape(ROWS, COLS)
  np.testing.assert_array_equal((Tensor(x, device="LLVM") * 3 + Tensor(y, device="LLVM")).numpy(), x * 3 + y)
  np.testing.assert_array_equal(Tensor(m, device="LLVM").sum(axis=1).numpy(), m.sum(axis=1))

def on_threads(threads, rounds, timeout=60):
  errors = []
  def work(t):
    try:
      for i in range(rounds): one_round(t * 1000 + i)
    except BaseException as e: errors.append(e)
  workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
  for w in workers: w.start()
  for w in workers: w.join(timeout)
  assert not any(w.is_alive() for w in workers), "a thread did not finish (deadlock?)"
  if errors: raise errors[0]
"""

_STRESS = _SETUP + r"""
one_round(0)  # compile the two kernels first: the threads below only launch them
THREADS, ROUNDS = 8, 3
on_threads(THREADS, ROUNDS)
assert counts["split"] >= 2 * (THREADS * ROUNDS + 1), counts  # every kernel was large enough to split
assert counts["on_workers"] > 0 and counts["copies"] > 0, counts  # (and the rest ran in the caller: pool busy)
print(type(cpu_pool._pool()).__name__, counts)
"""


@pytest.mark.parametrize("native", [True, False], ids=["native-pool", "python-pool"])
def test_many_threads_launch_split_kernels_and_copies_at_once(native):
  """8 threads x 3 rounds of two split kernels (an elementwise one over 2^19 elements, a row sum) and their 2 MiB
  copies, all at once on one pool: every result equals numpy's, and the workers ran slices of both."""
  out = run_in_child(_STRESS, timeout=120, env={"TEENY_NATIVE_POOL": "1" if native else "0"})
  pool = out.stdout.split()[0]
  if native and pool == "_PythonPool": pytest.skip("the native pool runs on x86-64 Linux only")
  assert pool == ("_NativePool" if native else "_PythonPool"), out.stdout


_FORK = _SETUP + r"""
one_round(0)  # the parent's pool is made and its workers have run slices
parent_pool = cpu_pool._pool()
busy = cpu_pool._POOL_LOCK
busy.acquire()  # the fork comes while a caller has the workers, as when another thread's kernel is running
pid = os.fork()
if pid == 0:
  try:
    before = counts["on_workers"]
    on_threads(4, 2)
    assert cpu_pool._pool() is not parent_pool, "the child used the parent's pool, whose threads it doesn't have"
    assert counts["on_workers"] > before, "the child's split kernels never ran on its workers"
    os._exit(0)
  except BaseException as e:
    print("forked child:", repr(e), flush=True)
    os._exit(1)
busy.release()
deadline = time.monotonic() + 60
while True:
  done, status = os.waitpid(pid, os.WNOHANG)
  if done: break
  if time.monotonic() > deadline:
    os.kill(pid, 9)
    raise SystemExit("the forked child hung")
  time.sleep(0.01)
assert os.waitstatus_to_exitcode(status) == 0, f"the forked child failed: {os.waitstatus_to_exitcode(status)}"
one_round(1)  # and the parent's pool still works
print("ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
@pytest.mark.parametrize("native", [True, False], ids=["native-pool", "python-pool"])
def test_forked_child_makes_its_own_pool(native):
  """A child forked while its parent's pool is in use makes a pool of its own and runs split kernels from several
  threads on it, right; the parent goes on using its own."""
  out = run_in_child(_FORK, timeout=120, env={"TEENY_NATIVE_POOL": "1" if native else "0"})
  assert out.stdout.split()[-1] == "ok", out.stdout


_TAKE = r"""
import ctypes
from teeny.runtime import cpu_pool
if not cpu_pool._native_pool_runs_here():
  print("skip: the native pool runs on x86-64 Linux only")
  raise SystemExit(0)
take = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_int32)(
  cpu_pool._pool()._engine.get_function_address("teeny_take_slice"))
ran = []
slice_fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)(lambda args, lo, hi: ran.append((lo, hi)))
block = (ctypes.c_char * cpu_pool._CTRL_BYTES)()  # a control block of its own, no worker reads it
c = ctypes.addressof(block)
field = lambda offset, ctype: ctype.from_address(c + offset)
field(8, ctypes.c_void_p).value = ctypes.cast(slice_fn, ctypes.c_void_p).value
field(24, ctypes.c_int64).value, field(32, ctypes.c_int64).value = 10, 20
taken, done = field(40, ctypes.c_int32), field(64, ctypes.c_int32)
taken.value = done.value = 6
# slice 7 was posted: the first to take it runs it, a second one doesn't
print(take(c, 7), take(c, 7), ran, taken.value, done.value)
# a worker that read `go` == 7 long ago, held up while the caller took and ran slices 7 and 8 itself, finally
# tries slice 7: it must not run (its fields are slice 8's now, and slice 8 is finished)
taken.value = done.value = 8
print(take(c, 7), ran, taken.value, done.value)
"""


def test_a_slice_runs_once_even_for_a_worker_that_is_late_by_two_slices():
  """teeny_take_slice, the native pool's hand-over: a posted slice runs once, on whichever side takes it first;
  a worker that read an older generation and was held up meanwhile (the caller ran that slice and the next one
  itself) takes nothing, runs nothing and leaves `done` alone."""
  out = run_in_child(_TAKE, timeout=60).stdout.splitlines()
  if out and out[0].startswith("skip"): pytest.skip(out[0])
  assert out == ["True False [(10, 20)] 7 7", "False [(10, 20)] 8 8"], out
