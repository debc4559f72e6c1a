"""The in-process kernel cache (engine/runner.py _runner_cache: compiled, loaded programs) is bounded in bytes as well as in
count: past RUNNER_CACHE_BYTES of estimated program memory the least recently used runners are dropped. Results
stay right, an evicted kernel is loaded again when it comes back, and a TinyJit whose runners were evicted still
replays them."""
import itertools, os, subprocess, sys
import numpy as np
import pytest
import teeny.engine.runner as runner
from teeny import Device, Tensor, TinyJit
from teeny.helpers import LRUCache
from teeny.engine.runner import _runner_cache

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a fresh constant per kernel: each one is a kernel of its own (an integer: integers are compiled into their
# kernels, where a float32 number is a value argument and every number would share one kernel)
_constants = itertools.count()


@pytest.fixture
def compiles(monkeypatch):
  """Counts the runners built, with an empty runner cache. Without the disk cache, so every runner is compiled
  here and costs the same estimate (a program loaded from disk is estimated smaller)."""
  monkeypatch.setenv("TEENY_NO_DISK_CACHE", "1")
  built = []
  class CountingRunner(runner.CompiledRunner):
    def __init__(self, *args):
      super().__init__(*args)
      built.append(self)
  monkeypatch.setattr(runner, "CompiledRunner", CountingRunner)
  _runner_cache.clear()
  yield built
  _runner_cache.clear()  # don't leave CountingRunners behind for other tests


def affine(device: str, value: int) -> np.ndarray:
  x = np.arange(16, dtype=np.int32)
  out = (Tensor(x, device=device) * value + 1).numpy()
  np.testing.assert_array_equal(out, x * np.int32(value) + 1)
  return out


def small_bound(monkeypatch, device: str, compiles, runners: float) -> int:
  """Bound the cache to about `runners` runners' worth of bytes (measured on one), and return the bound."""
  affine(device, 2 + next(_constants))
  bound = int(compiles[-1].memory * runners)
  monkeypatch.setattr(_runner_cache, "max_cost", bound)
  return bound


def test_runner_cache_stays_under_its_byte_bound(device, monkeypatch, compiles):
  bound = small_bound(monkeypatch, device, compiles, 4.5)
  for _ in range(12):
    affine(device, 2 + next(_constants))
    assert _runner_cache.total_cost == sum(r.memory for r in _runner_cache.values())
    assert _runner_cache.total_cost <= bound
  assert len(compiles) == 13 and 3 <= len(_runner_cache) <= 4  # the oldest went; the count bound (1,024) never bit


def test_evicted_kernel_is_loaded_again_and_right(device, monkeypatch, compiles):
  small_bound(monkeypatch, device, compiles, 3.5)
  first = 2 + next(_constants)
  affine(device, first)
  first_runner = compiles[-1]
  for _ in range(6): affine(device, 2 + next(_constants))
  assert first_runner not in _runner_cache.values()
  built = len(compiles)
  affine(device, first)  # compiled again, and right
  assert len(compiles) == built + 1 and compiles[-1] in _runner_cache.values()


def test_recently_used_runners_are_kept(device, monkeypatch, compiles):
  small_bound(monkeypatch, device, compiles, 3.5)
  kept = 2 + next(_constants)
  affine(device, kept)
  kept_runner = compiles[-1]
  for _ in range(8):
    affine(device, 2 + next(_constants))
    affine(device, kept)  # used again: always the most recent but one
  assert kept_runner in _runner_cache.values()


def test_jit_replays_runners_the_cache_evicted(device, monkeypatch, compiles):
  small_bound(monkeypatch, device, compiles, 2.5)
  value = 2 + next(_constants)
  jitted = TinyJit(lambda x: (x * value + 1).realize())
  x = np.arange(16, dtype=np.float32)
  for i in range(2): jitted(Tensor(x + i, device=device))  # the second call captures
  captured = [launch.runner for launch in jitted._capture.launches if launch.runner is not None]
  for _ in range(6): affine(device, 2 + next(_constants))
  assert not any(r in _runner_cache.values() for r in captured)
  built = len(compiles)
  for i in range(3):
    np.testing.assert_array_equal(jitted(Tensor(x - i, device=device)).numpy(), (x - i) * np.float32(value) + 1)
  assert len(compiles) == built  # replayed with its own runners, nothing compiled again


def test_newest_runner_is_kept_even_over_the_bound():
  cache = LRUCache(10, max_cost=100, cost=len)
  cache["a"] = "x" * 60
  cache["b"] = "x" * 60
  assert list(cache.values()) == ["x" * 60] and "b" in cache and cache.total_cost == 60
  cache["c"] = "x" * 500  # alone over the bound: kept, since its caller is about to use it
  assert "c" in cache and len(cache) == 1 and cache.total_cost == 500
  cache["c"] = "x" * 5  # replaced: the old cost is no longer counted
  assert cache.total_cost == 5


def test_program_loaded_from_disk_is_estimated_as_loaded(device, monkeypatch, compiles, tmp_path):
  monkeypatch.delenv("TEENY_NO_DISK_CACHE")
  monkeypatch.setenv("TEENY_CACHE_DIR", str(tmp_path / "cache"))  # empty: the first run compiles
  value = 2 + next(_constants)
  affine(device, value)
  _runner_cache.clear()
  affine(device, value)  # from the disk cache
  cls = Device[device].program_cls
  compiled, loaded = compiles[-2].memory, compiles[-1].memory
  assert compiled - len(compiles[-2].program.lib) == cls.memory_estimate
  assert loaded - len(compiles[-1].program.lib) == cls.memory_estimate_loaded


def test_byte_bound_is_set_by_environment():
  code = "from teeny.engine.runner import _runner_cache as c; print(c.max_cost, c.maxsize)"
  env = dict(os.environ, RUNNER_CACHE_BYTES="12345", RUNNER_CACHE_SIZE="77", PYTHONPATH=REPO)
  done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
  assert done.stdout.split() == ["12345", "77"]
  env.pop("RUNNER_CACHE_BYTES"), env.pop("RUNNER_CACHE_SIZE")
  done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
  assert done.stdout.split() == [str(512 << 20), "1024"]
