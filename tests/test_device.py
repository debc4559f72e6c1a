"""Devices: choice of default, copies between devices, the on-disk compile cache, and buffers freed when unused."""
import gc, os, subprocess, sys
import numpy as np
import pytest
from conftest import use_tuning
from teeny import Tensor, Device
from teeny.runtime.disk_cache import read_entry as _read_cache_entry
from teeny.engine.runner import _runner_cache
DEVICES = Device.available()


def default_device_with(env: dict) -> str:
  code = "from teeny import Device; print(Device.DEFAULT)"
  clean = {k: v for k, v in os.environ.items() if k not in ("CL", "LLVM", "DEVICE")}
  return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, timeout=120).stdout.strip()


def test_env_vars_choose_the_default_device():
  assert default_device_with({"LLVM": "1"}) == "LLVM"
  assert default_device_with({"DEVICE": "LLVM"}) == "LLVM"
  if "CL" in DEVICES: assert default_device_with({"CL": "1"}) == "CL"


def test_default_without_a_gpu_is_llvm():
  from teeny.runtime import ops_cl
  expected = "CL" if ops_cl.has_gpu() else "LLVM"
  assert default_device_with({}) == expected


def test_choosing_the_default_asks_opencl_only_where_a_driver_is_registered(tmp_path):
  """Without an OpenCL driver registered with the ICD loader (no .icd file in its vendors directory, no
  OCL_ICD_FILENAMES), pyopencl could only find the CPU PoCL its wheel bundles: the first tensor op picks LLVM
  without importing pyopencl (65 ms of a first call). With a driver registered, it asks OpenCL for a GPU."""
  if not sys.platform.startswith("linux"): pytest.skip("the shortcut is for Linux's ICD loader")
  code = "import sys; from teeny import Tensor, Device; Tensor([1.0]).numpy(); print(Device.DEFAULT, 'pyopencl' in sys.modules)"
  clean = {k: v for k, v in os.environ.items() if k not in ("CL", "LLVM", "DEVICE", "OCL_ICD_FILENAMES")}
  def first_op(vendors) -> str:
    env = {**clean, "OCL_ICD_VENDORS": str(vendors)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120).stdout.strip()
  (tmp_path / "empty").mkdir()
  assert first_op(tmp_path / "empty") == "LLVM False"
  (tmp_path / "one").mkdir()
  (tmp_path / "one" / "some_driver.icd").write_text("libno_such_driver.so\n")  # (registered, though it won't load)
  assert first_op(tmp_path / "one") == "LLVM True"


def test_a_device_that_cannot_compile_is_not_available(monkeypatch):
  """A driver can open and fail on every program (PoCL 3.0 on a CPU newer than its LLVM): available() leaves that
  device out, so tests and describe() don't count on it, and the reason is the device's own."""
  dev = Device["LLVM"]
  def broken(): raise RuntimeError("LLVM opens but cannot compile a kernel: test")
  monkeypatch.setattr(dev, "check_works", broken)
  assert "LLVM" not in Device.available()
  monkeypatch.undo()
  assert "LLVM" in Device.available()


def test_an_opencl_device_that_opens_says_whether_it_compiles():
  try: cl = Device["CL"]
  except Exception: pytest.skip("no OpenCL device opens here")
  try: cl.check_works()
  except RuntimeError as e:
    assert "cannot compile a kernel" in str(e) and "CL" not in DEVICES
    return
  assert "CL" in DEVICES


def test_unknown_device_is_a_clear_error():
  with pytest.raises(ValueError, match="FOO"): Tensor([1.0], device="FOO")


def test_a_missing_backend_package_says_what_to_install():
  """Without llvmlite (a user who ran teeny from a checkout without installing it) the first tensor on LLVM raises
  an ImportError naming the package and the pip command."""
  code = ("import sys; sys.modules['llvmlite'] = None\n"  # (None in sys.modules: `import llvmlite` fails)
          "from teeny import Tensor\n"
          "try: Tensor([1.0], device='LLVM').numpy()\n"
          "except ImportError as e: print(e)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert out.returncode == 0, out.stderr
  assert "device LLVM needs the Python package 'llvmlite'" in out.stdout and "pip install llvmlite" in out.stdout


@pytest.mark.parametrize("src", DEVICES)
@pytest.mark.parametrize("dst", DEVICES)
def test_copy_between_devices(src, dst):
  x = np.arange(10, dtype=np.float32)
  t = (Tensor(x, device=src) * 2).to(dst)
  assert t.device == dst
  np.testing.assert_equal((t + 1).numpy(), x * 2 + 1)
  np.testing.assert_equal(Tensor(t, device=src).numpy(), x * 2)


def test_constant_tensor_moves_to_another_device():
  if len(DEVICES) < 2: pytest.skip("needs two devices")
  t = Tensor.ones(3, device=DEVICES[0]).to(DEVICES[1])
  np.testing.assert_equal(t.numpy(), np.ones(3, dtype=np.float32))


def test_compile_cache_lives_where_the_env_says_and_survives_corruption(tmp_path, device):
  code = ("from teeny import Tensor; import numpy as np; "
          "print((Tensor(np.arange(7, dtype=np.float32), device='%s') * 3 - 1).numpy().tolist())" % device)
  env = dict(os.environ, TEENY_CACHE_DIR=str(tmp_path))
  first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
  assert first.returncode == 0, first.stderr
  entries = [p for p in tmp_path.rglob("*") if p.is_file()]
  assert entries, "nothing was cached"
  for p in entries: p.write_bytes(p.read_bytes()[:10])  # truncate every entry
  assert all(_read_cache_entry(str(p)) is None for p in entries)
  second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
  assert second.returncode == 0, second.stderr
  assert first.stdout == second.stdout
  assert all(_read_cache_entry(str(p)) is not None for p in entries)  # rebuilt


def test_compiled_programs_are_reused(device):
  x = Tensor(np.ones(5, dtype=np.float32), device=device)
  (x * 5 + 2).realize()
  count = len(_runner_cache)
  (x * 5 + 2).realize()
  assert len(_runner_cache) == count


def test_launcher_runs_the_kernel_and_checks_its_buffers(device):
  """A program's launcher (what every realize calls) runs the kernel like the program's own call, times it when
  asked to wait, and refuses too few buffers with a clear error instead of reading garbage pointers."""
  from teeny.engine.runner import get_runner
  from teeny.schedule import create_schedule
  x = np.arange(10, dtype=np.float32)
  src = Tensor(x, device=device).realize()
  items, *_ = create_schedule([(src * 3 + 1).uop], [device])
  runner = get_runner(device, items[0].ast)
  out, inp = items[0].bufs
  assert items[0].vals == (3.0,)  # the 3 is the kernel's value argument (schedule.items.is_value_arg); the 1 is code
  assert runner.launch(out.handle, inp.handle, vals=(3.0,)) is None
  np.testing.assert_equal(out.numpy(), x * 3 + 1)
  inp.copyin(memoryview(x * 2).cast("B"))
  assert runner.launch(out.handle, inp.handle, vals=(3.0,), wait=True) >= 0
  np.testing.assert_equal(out.numpy(), x * 6 + 1)
  assert runner.launch(out.handle, inp.handle, vals=(-0.5,)) is None  # the same program, another number
  np.testing.assert_equal(out.numpy(), x * 2 * -0.5 + 1)
  with pytest.raises(ValueError, match="buffers"): runner.launch(out.handle, vals=(3.0,))
  with pytest.raises(ValueError, match="values"): runner.launch(out.handle, inp.handle)


def test_buffers_are_freed_when_no_tensor_holds_them(device):
  gc.collect()
  allocator = Device[device].allocator
  live, live_bytes = allocator.live_count, allocator.live_bytes
  for _ in range(20):
    a = Tensor(np.ones(1000, dtype=np.float32), device=device)
    b = ((a + 1).contiguous() * 2).sum()
    b.numpy()
  del a, b
  gc.collect()
  assert (allocator.live_count, allocator.live_bytes) == (live, live_bytes)


def test_llvm_splits_large_kernels_across_cores():
  if "LLVM" not in DEVICES: pytest.skip("no LLVM device")
  from teeny.engine.runner import get_runner
  n = 1 << 23
  x = np.arange(n, dtype=np.float32)
  out = Tensor(x, device="LLVM") * 2 + 1
  from teeny.schedule import create_schedule
  items, *_ = create_schedule([out.uop], ["LLVM"])
  program = get_runner("LLVM", items[0].ast).program
  assert program.splittable and n * program.ops_per_iter >= Device["LLVM"].renderer.tuning.parallel_threshold
  np.testing.assert_equal(out.numpy(), x * 2 + 1)


def fresh_llvm_pool(monkeypatch, native: bool):
  """cpu_pool, set to make a new worker pool of the kind asked for on first use (the test skips where that kind
  can't run)."""
  if "LLVM" not in DEVICES: pytest.skip("no LLVM device")
  from teeny.runtime import cpu_pool
  if native and not cpu_pool._native_pool_runs_here(): pytest.skip("the native pool runs on x86-64 Linux only")
  monkeypatch.setattr(cpu_pool, "_POOL", [])
  monkeypatch.setattr(cpu_pool, "_native_pool_runs_here", lambda: native)
  return cpu_pool


@pytest.mark.parametrize("native", [True, False], ids=["native-pool", "python-pool"])
def test_llvm_split_kernels_from_many_threads(monkeypatch, native):
  """Kernels split across cores give the same result when several Python threads launch them at once (a thread
  that finds the workers busy runs every slice itself), on the native worker pool and on the Python fallback."""
  import threading
  cpu_pool = fresh_llvm_pool(monkeypatch, native)
  use_tuning(monkeypatch, "LLVM", parallel_threshold=0)
  x = np.arange(4099, dtype=np.float32)  # slices of unequal length
  src = Tensor(x, device="LLVM").realize()
  results, errors = {}, []
  def work(i):
    try:
      for _ in range(20): results[i] = ((src * 2 + i).numpy() == x * 2 + i).all()
    except Exception as e: errors.append(e)
  threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
  for t in threads: t.start()
  for t in threads: t.join()
  assert not errors and all(results[i] for i in range(4))
  assert type(cpu_pool._pool()).__name__ == ("_NativePool" if native else "_PythonPool")
  # a fresh pool's first slice may be posted before its worker threads get going
  for i in range(5):
    monkeypatch.setattr(cpu_pool, "_POOL", [])
    np.testing.assert_equal((src * 3 - i).numpy(), x * 3 - i)


def test_llvm_python_pool_passes_a_slice_error_on():
  """An error in a worker's slice of the Python pool reaches the caller, and the pool goes on working."""
  if "LLVM" not in DEVICES: pytest.skip("no LLVM device")
  from teeny.runtime import cpu_pool
  pool = cpu_pool._PythonPool(1)
  ran = []
  class Program:
    def __init__(self, fail_from: int): self.fail_from = fail_from
    def _fn(self, start, end):
      if start >= self.fail_from: raise ValueError("slice failed")
      ran.append((start, end))
  with pytest.raises(ValueError, match="slice failed"): pool.run(Program(fail_from=5), (), (), 10, 2)
  assert ran == [(0, 5)]
  pool.run(Program(fail_from=99), (), (), 10, 2)
  assert sorted(ran[1:]) == [(0, 5), (5, 10)]


def test_llvm_native_pool_worker_sleeps_when_idle_and_wakes_for_work(monkeypatch):
  """A native worker spins for about a millisecond after its slice, then sleeps in the kernel (futex); the next
  split kernel wakes it and gets its slice done."""
  if "LLVM" not in DEVICES: pytest.skip("no LLVM device")
  import time
  from teeny.runtime import cpu_pool
  if not cpu_pool._native_pool_runs_here(): pytest.skip("the native pool runs on x86-64 Linux only")
  use_tuning(monkeypatch, "LLVM", parallel_threshold=0)
  x = np.arange(4096, dtype=np.float32)
  src = Tensor(x, device="LLVM").realize()
  np.testing.assert_equal((src + 1).numpy(), x + 1)
  import ctypes
  sleeping = ctypes.c_int32.from_address(cpu_pool._pool().ctrls + 4)  # worker 0's "sleeping" flag
  deadline = time.perf_counter() + 5
  while not sleeping.value and time.perf_counter() < deadline: time.sleep(0.01)
  assert sleeping.value == 1, "the worker still spins 5 s after its last slice"
  for i in range(3):
    np.testing.assert_equal((src * 2 + i).numpy(), x * 2 + i)
    time.sleep(0.02)  # long enough for the worker to fall asleep again


def test_llvm_native_pool_caller_runs_slices_no_worker_took():
  """A slice its worker hasn't started by the time the caller finished its own is run by the caller: here the
  workers never get a core at all (their threads are never started), and split kernels still finish, correct.
  In a subprocess, so that a broken hand-over fails on the timeout instead of hanging the test run."""
  if "LLVM" not in DEVICES: pytest.skip("no LLVM device")
  from teeny.runtime import cpu_pool
  if not cpu_pool._native_pool_runs_here(): pytest.skip("the native pool runs on x86-64 Linux only")
  code = ("import threading, numpy as np\n"
          "from teeny import Tensor\n"
          "import dataclasses\n"
          "from teeny import Device\n"
          "from teeny.runtime import cpu_pool\n"
          "renderer = Device['LLVM'].renderer\n"
          "renderer.tuning = dataclasses.replace(renderer.tuning, parallel_threshold=0)\n"
          "threading.Thread.start = lambda self: None  # the pool's workers never run\n"
          "x = np.arange(4099, dtype=np.float32)\n"
          "ok = all(((Tensor(x, device='LLVM') * 2 + i).numpy() == x * 2 + i).all() for i in range(3))\n"
          "print(ok, type(cpu_pool._pool()).__name__, cpu_pool._pool().helpers)\n")
  env = dict(os.environ, TEENY_PIN_WORKERS="0")  # threads that never started have no id to pin
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  ok, pool, helpers = out.stdout.split()
  assert (ok, pool) == ("True", "_NativePool")
  if int(helpers) == 0: pytest.skip("one core: there are no workers to stand in for")


def test_llvm_native_workers_are_pinned_to_cores_of_their_own(monkeypatch):
  """Worker i runs on the (i+1)-th CPU this process may use (the first is left to the caller); with
  TEENY_PIN_WORKERS=0 (read at import) they may run anywhere."""
  cpu_pool = fresh_llvm_pool(monkeypatch, native=True)
  cpus = sorted(os.sched_getaffinity(0))
  if len(cpus) < 2: pytest.skip("one core: no workers")
  use_tuning(monkeypatch, "LLVM", parallel_threshold=0)
  x = np.arange(4096, dtype=np.float32)
  np.testing.assert_equal((Tensor(x, device="LLVM") * 5).numpy(), x * 5)
  pool = cpu_pool._pool()
  assert [os.sched_getaffinity(t.native_id) for t in pool.threads] == [{cpus[(i + 1) % len(cpus)]} for i in range(pool.helpers)]
  monkeypatch.setattr(cpu_pool, "_PIN_WORKERS", False)
  monkeypatch.setattr(cpu_pool, "_POOL", [])
  np.testing.assert_equal((Tensor(x, device="LLVM") * 6).numpy(), x * 6)
  assert all(os.sched_getaffinity(t.native_id) == set(cpus) for t in cpu_pool._pool().threads)


@pytest.mark.parametrize("native", [True, False], ids=["native-pool", "python-pool"])
def test_llvm_large_copies_split_across_cores_are_exact(monkeypatch, native):
  """Copies in and out of Tuning.parallel_copy_bytes or more run on every core; sizes that are no multiple of a page
  or of the core count arrive whole and unchanged."""
  cpu_pool = fresh_llvm_pool(monkeypatch, native)
  use_tuning(monkeypatch, "LLVM", parallel_copy_bytes=1 << 16)
  rng = np.random.default_rng(0)
  for n in (1 << 14, (1 << 14) + 3, 3 * 4096 // 4 + 1, 100_003):
    a = rng.standard_normal(n).astype(np.float32)
    t = Tensor(a, device="LLVM")
    np.testing.assert_array_equal(t.numpy(), a)
    np.testing.assert_array_equal((t + 0).numpy(), a)
  assert type(cpu_pool._POOL[0]).__name__ == ("_NativePool" if native else "_PythonPool")  # the copies used it


def _split_kernel_in_child(queue):
  x = np.arange(1 << 16, dtype=np.float32)
  queue.put(bool(((Tensor(x, device="LLVM") * 2 + 1).numpy() == x * 2 + 1).all()))


def test_llvm_split_kernels_run_in_a_forked_child(monkeypatch):
  """A child forked after the parent's worker pool started makes a pool of its own (the parent's threads don't
  exist in it) instead of waiting forever for them."""
  if "LLVM" not in DEVICES: pytest.skip("no LLVM device")
  import multiprocessing
  if "fork" not in multiprocessing.get_all_start_methods(): pytest.skip("no fork on this platform")
  use_tuning(monkeypatch, "LLVM", parallel_threshold=0)
  x = np.arange(1 << 16, dtype=np.float32)
  np.testing.assert_equal((Tensor(x, device="LLVM") + 1).numpy(), x + 1)  # the parent's pool is running
  ctx = multiprocessing.get_context("fork")
  queue = ctx.Queue()
  child = ctx.Process(target=_split_kernel_in_child, args=(queue,))
  child.start()
  child.join(timeout=60)
  if child.is_alive(): child.kill()
  assert child.exitcode == 0 and queue.get(timeout=5)


def test_a_kernel_spec_made_once_is_read_from_disk_in_the_next_process(tmp_path, device):
  """The spec cache's key holds the renderer's settings: the OpenCL renderer's fma_dtypes (a frozenset) printed its
  dtypes in hash order, which differs between processes, so every CL spec was made again in the next process."""
  code = ("from teeny import Tensor; import numpy as np; from teeny.engine import runner; "
          "(Tensor(np.arange(5, dtype=np.float32), device='%s') * 3 - 1).numpy(); print(runner._codegen_runs[0])" % device)
  runs = []
  for seed in ("1", "2", "3"):
    env = dict(os.environ, TEENY_CACHE_DIR=str(tmp_path), PYTHONHASHSEED=seed)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    runs.append(int(done.stdout.split()[-1]))
  assert runs[0] > 0 and runs[1:] == [0, 0], runs
