"""Shared fixtures: every behaviour test runs on every device that opens on this machine.

With TEENY_REPLAY_CAPTURE=FILE the run also keeps every kernel AST it schedules into FILE, for
`python tools/replay.py compare --captured FILE` (the kernel replay's check of the scheduler; CI runs it)."""
import os, sys
import pytest
from teeny.runtime.device import Device

DEVICES = Device.available()


@pytest.fixture(params=DEVICES, ids=DEVICES)
def device(request):
  return request.param


_REPLAY_FILE = os.environ.get("TEENY_REPLAY_CAPTURE")
if _REPLAY_FILE:
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
  import replay
  _capture = replay.start_capture()

  def pytest_sessionfinish(session, exitstatus):
    replay.save(_REPLAY_FILE, {key: (flat, None) for key, flat in _capture.asts.items()})
