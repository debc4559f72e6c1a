"""Shared fixtures: every behaviour test runs on every device that opens on this machine.

With TEENY_REPLAY_CAPTURE=FILE the run also keeps every kernel AST it schedules into FILE, for
`python tools/replay.py compare --captured FILE` (the kernel replay's check of the scheduler; CI runs it), also
when the tests run in several processes (pytest-xdist's `-n`)."""
import dataclasses, glob, os, sys
import pytest

# each pytest-xdist worker gets a PoCL kernel cache of its own, before PoCL starts (Device.available() below opens
# it): PoCL 3.0 segfaults when two processes fill one empty cache with the same kernels at once
if os.environ.get("PYTEST_XDIST_WORKER"):
  _pocl_cache = os.environ.get("POCL_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "pocl")
  os.environ["POCL_CACHE_DIR"] = os.path.join(_pocl_cache, os.environ["PYTEST_XDIST_WORKER"])

from teeny.runtime.device import Device  # noqa: E402

DEVICES = Device.available()


@pytest.fixture(params=DEVICES, ids=DEVICES)
def device(request):
  return request.param


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
