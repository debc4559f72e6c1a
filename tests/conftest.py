"""Shared fixtures: every behaviour test runs on every device that opens on this machine."""
import pytest
from teeny.runtime.device import Device

DEVICES = Device.available()


@pytest.fixture(params=DEVICES, ids=DEVICES)
def device(request):
  return request.param
