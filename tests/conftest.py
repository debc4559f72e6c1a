"""Shared fixtures: every behaviour test runs on every device that opens on this machine.

With TEENY_REPLAY_CAPTURE=FILE the run also keeps every kernel AST it schedules into FILE, for
`python tools/replay.py compare --captured FILE` (the kernel replay's check of the scheduler; CI runs it)."""
import dataclasses, os, sys
import pytest
from teeny.runtime.device import Device

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

  def pytest_sessionfinish(session, exitstatus):
    replay.save(_REPLAY_FILE, {key: (flat, None) for key, flat in _capture.asts.items()})
