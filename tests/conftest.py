"""Shared fixtures: every behaviour test runs on every device that opens on this machine.

With TEENY_REPLAY_CAPTURE=FILE the run also keeps every kernel AST it schedules into FILE, for
`python tools/replay.py compare --captured FILE` (the kernel replay's check of the scheduler; CI runs it), also
when the tests run in several processes (pytest-xdist's `-n`)."""
import dataclasses, glob, os, sys
import pytest

# each pytest-xdist worker gets a PoCL kernel cache of its own, before PoCL starts (Device.available() below opens
# it): PoCL 3.0 segfaults when two processes fill one empty cache with the same kernels at once
if os.environ.get("PYTEST_XDIST_WORKER"):
  try:
    from teeny.runtime.ops_cl import use_own_pocl_cache
    use_own_pocl_cache(os.environ["PYTEST_XDIST_WORKER"])
  except ImportError: pass  # (no pyopencl: no PoCL)

from teeny.runtime.device import Device  # noqa: E402

DEVICES = Device.available()

# The OpenCL device runs the `device` tests of these files, which exercise its renderer (every op and dtype), its
# runtime and moving data between devices; the other files' `device` tests run on it only with
# TEENY_TEST_DEVICES=all. On a CPU, PoCL builds each kernel in about 0.2 s: the whole suite on CL took 26 min of
# two cores here (AMD Zen 4, `pytest -k CL --durations=0`: 3,111 s of tests), which CI's 30 minutes can't hold;
# these files took 1,330 s of it. Tests that name CL themselves always run.
CL_EVERYWHERE = {"test_ops.py", "test_dtype.py", "test_multi.py", "test_low_precision.py", "test_reference.py",
                 "test_numerics.py", "test_opt.py", "test_writes.py", "test_memory.py", "test_jit.py", "test_random.py",
                 "test_long_sums.py", "test_fuzz.py", "test_distributed.py", "test_schedule_cache.py",
                 "test_program_order.py", "test_jit_views.py", "test_jit_threads.py", "test_loader_safety.py",
                 "test_compile_cache.py", "test_requires_grad.py", "test_cache_runner_memory.py", "test_shared_work.py",
                 "test_debug.py", "test_schedule.py", "test_device.py", "test_opencl_devices.py", "test_errors.py",
                 "test_kernel_values.py", "test_data_in_out.py", "test_lazy.py", "test_trace.py", "test_viz.py",
                 "test_runtime_errors.py", "test_scatter_keeps_dtype.py", "test_schedule_cost.py", "test_cache_security.py",
                 "test_vectorize.py"}
ALL_DEVICES = os.environ.get("TEENY_TEST_DEVICES") == "all"


@pytest.fixture(params=DEVICES, ids=DEVICES)
def device(request):
  return request.param


def pytest_collection_modifyitems(config, items):
  """Leaves out the CL runs of `device` tests outside CL_EVERYWHERE (unless TEENY_TEST_DEVICES=all)."""
  if ALL_DEVICES: return
  kept, left_out = [], []
  for item in items:
    on_cl = getattr(item, "callspec", None) is not None and str(item.callspec.params.get("device", "")).startswith("CL")
    (left_out if on_cl and item.path.name not in CL_EVERYWHERE else kept).append(item)
  if left_out:
    config.hook.pytest_deselected(items=left_out)
    items[:] = kept


def use_tuning(monkeypatch, device: str, **numbers):
  """For this test, the device's renderer carries a Tuning with these numbers changed (teeny/renderer/tuning.py):
  how tests reach a heuristic with small inputs."""
  renderer = Device[device].renderer
  monkeypatch.setattr(renderer, "tuning", dataclasses.replace(renderer.tuning, **numbers))


_REPLAY_FILE = os.environ.get("TEENY_REPLAY_CAPTURE")
if _REPLAY_FILE:
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
  import replay
  _capture = replay.start_capture()
  _WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # (set in each pytest-xdist worker: gw0, gw1, ...)

  @pytest.hookimpl(wrapper=True)
  def pytest_runtest_call(item):
    """A test marked kernels_vary (threads racing: which results another thread's write makes the scheduler forget
    decides where kernels split) schedules different ASTs from run to run; the replay keeps none of them."""
    if item.get_closest_marker("kernels_vary") is None: return (yield)
    _capture.paused = True
    try: return (yield)
    finally: _capture.paused = False

  def pytest_sessionfinish(session, exitstatus):
    """Keep the ASTs this process scheduled. Under pytest-xdist each worker keeps its own file, and the controller,
    which finishes after them, merges theirs into FILE."""
    kept = {key: (flat, None) for key, flat in _capture.asts.items()}
    if _WORKER:
      replay.save(f"{_REPLAY_FILE}.{_WORKER}", kept)
      return
    worker_files = glob.glob(f"{glob.escape(_REPLAY_FILE)}.gw*")
    for path in worker_files: kept.update(replay.load(path))
    replay.save(_REPLAY_FILE, kept)
    for path in worker_files: os.remove(path)
