"""Failures below the tensor API: a kernel that doesn't compile, and a device that can't allocate. Both raise an
error that says what and where, and leave every earlier tensor (and the next computation) intact."""
import numpy as np
import pytest
from teeny import Tensor, Device, GlobalCounters
from teeny.renderer import ProgramSpec
from teeny.engine.runner import CompiledRunner, _runner_cache

BROKEN_SOURCE = {  # each names something that doesn't exist, so the backend's message must mention it
  "CL": "__kernel void E_broken_7(__global float* data0) {\n  data0[0] = undefined_thing + 1.0f;\n}\n",
  "LLVM": "define void @E_broken_7(ptr %data0) {\n  %v = fadd float %undefined_thing, 1.0\n  ret void\n}\n",
}


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("TEENY_CACHE_DIR", str(tmp_path))
  return tmp_path


def test_broken_kernel_names_itself_and_the_backend_message(device, fresh_cache, monkeypatch, capsys):
  monkeypatch.setenv("DEBUG", "4")
  src = BROKEN_SOURCE[device]
  spec = ProgramSpec("E_broken_7", src, (1, 1, 1), None, 1, 0)
  with pytest.raises(RuntimeError) as e: CompiledRunner(device, spec)
  message = str(e.value)
  assert "E_broken_7" in message and device in message, message
  assert "undefined_thing" in message, f"the backend's own message is missing: {message}"
  assert src.splitlines()[1].strip() in capsys.readouterr().err, "DEBUG=4 must show the source"
  assert not [p for p in fresh_cache.rglob("*") if p.is_file()], "a failed compile was cached"
  with pytest.raises(RuntimeError): CompiledRunner(device, spec)  # and it fails again, not from a cache


def test_broken_kernel_source_hidden_below_debug_4(device, fresh_cache, monkeypatch, capsys):
  monkeypatch.setenv("DEBUG", "0")
  with pytest.raises(RuntimeError): CompiledRunner(device, ProgramSpec("E_broken_7", BROKEN_SOURCE[device], (1, 1, 1), None, 1, 0))
  assert "undefined_thing" not in capsys.readouterr().err


def test_compile_failure_during_realize_leaves_tensors_intact(device, fresh_cache, monkeypatch):
  """A renderer bug surfaces at realize() as an error naming the kernel; nothing half-done stays behind."""
  kept = (Tensor([1.0, 2.0], device=device) * 3).realize()
  pending = Tensor([4.0, 5.0], device=device) * 7 + 0.5  # a kernel nobody compiled yet
  renderer = Device[device].renderer
  real_render = renderer.render
  monkeypatch.setattr(renderer, "render", lambda name, program: real_render(name, program) + "\nthis is not code (\n")
  with pytest.raises(RuntimeError) as e: pending.realize()
  assert "failed to compile" in str(e.value) and "E_" in str(e.value), str(e.value)
  monkeypatch.setattr(renderer, "render", real_render)
  assert kept.tolist() == [3.0, 6.0]
  assert pending.tolist() == [28.5, 35.5]  # the same lazy tensor realizes once the compiler works again
  assert not any(runner.spec.src.endswith("this is not code (\n") for runner in _runner_cache.values())


def test_absurd_allocation_raises_memory_error_and_keeps_earlier_tensors(device):
  kept = (Tensor(np.arange(4, dtype=np.float32), device=device) * 2).realize()
  lazy = Tensor(np.ones(3, dtype=np.float32), device=device) + 1
  nbytes = 2 ** 45  # 32 TiB: no device here has it, and nothing is allocated before the error
  huge = Tensor.empty(nbytes, dtype="uint8", device=device) + 1
  with pytest.raises(MemoryError) as e: huge.realize()
  if device == "CL": assert str(nbytes) in str(e.value) and Device["CL"].cl_device.name.strip() in str(e.value), str(e.value)
  assert kept.tolist() == [0.0, 2.0, 4.0, 6.0]
  GlobalCounters.reset()
  assert lazy.tolist() == [2.0, 2.0, 2.0] and GlobalCounters.kernel_count == 1
  with pytest.raises(MemoryError): huge.realize()  # still clear the second time, and still nothing broken
  assert (kept + 1).tolist() == [1.0, 3.0, 5.0, 7.0]
