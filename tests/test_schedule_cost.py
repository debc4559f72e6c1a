"""What making a schedule and its programs costs: a kernel that can't be built as one (Unfusable) rebuilds only
the kernels that depend on that node (teeny/schedule/kernelize._build_all), and the program specs codegen made are
read back from the disk cache by a later process (teeny/engine/runner._program_spec). Both are caches of work
already done, so each test also checks that the result is the one the work itself gives."""
import numpy as np
from conftest import use_tuning
from teeny import Tensor, Device
from teeny.engine import runner
from teeny.schedule import create_schedule, cache, kernelize
from teeny.schedule.builder import KernelBuilder

DEVICES = Device.available()


def attention_step(device: str, seed: int = 0) -> list[Tensor]:
  """A small attention block, forward and backward: layernorm, softmax and matmuls, several of them Unfusable."""
  rng = np.random.default_rng(seed)
  x = Tensor(rng.standard_normal((2, 8, 16)).astype(np.float32), device=device)
  wq, wk, wv = (Tensor(rng.standard_normal((16, 16)).astype(np.float32) * 0.2, requires_grad=True, device=device) for _ in range(3))
  h = x.layernorm()
  q, k, v = h @ wq, h @ wk, h @ wv
  out = ((q @ k.transpose(-1, -2)) / 4).softmax(-1) @ v
  loss = (out * out).mean()
  loss.backward()
  return [loss, wq.grad, wk.grad, wv.grad]


def scheduled(tensors: list[Tensor]) -> list:
  cache.schedule_cache.clear()
  items, *_ = create_schedule([t.uop for t in tensors], [t.device for t in tensors])
  return [(item.ast, tuple(b.size for b in item.bufs)) for item in items]


def test_unfusable_nodes_rebuild_only_the_kernels_that_read_them(device, monkeypatch):
  builds = []
  original_build = KernelBuilder.build
  def counted(self, *args, **kwargs):
    builds.append(self.root)
    return original_build(self, *args, **kwargs)
  monkeypatch.setattr(KernelBuilder, "build", counted)
  tensors = attention_step(device)
  fast = scheduled(tensors)
  fast_builds = len(builds)
  # the reference: every kernel built again after each new realize point, as if it were the first pass
  original_pass = kernelize._build_pass
  def from_scratch(nodes, realize, table, device_of, limits, built):
    built.clear()
    return original_pass(nodes, realize, table, device_of, limits, built)
  monkeypatch.setattr(kernelize, "_build_pass", from_scratch)
  builds.clear()
  reference = scheduled(tensors)
  assert fast == reference, "rebuilding only some kernels changed the schedule"
  assert fast_builds < len(builds), (fast_builds, len(builds))
  assert fast_builds <= 2 * len(fast), f"{fast_builds} builds for {len(fast)} kernels"


def test_program_specs_are_read_back_from_the_disk_cache(device, monkeypatch, tmp_path):
  monkeypatch.setenv("TEENY_CACHE_DIR", str(tmp_path))
  made = []
  original = runner.get_program
  monkeypatch.setattr(runner, "get_program", lambda *a, **k: made.append(a[0]) or original(*a, **k))
  x = np.arange(24, dtype=np.float32).reshape(4, 6)
  def run(): return (Tensor(x, device=device).exp2().sum(1) * 3).numpy()
  first = run()
  assert len(made) == 1
  spec = runner._runner_cache.values()[-1].spec
  runner._runner_cache.clear()  # (as a new process would start: nothing loaded)
  np.testing.assert_array_equal(run(), first)
  assert len(made) == 1, "codegen ran again for a kernel whose spec is on disk"
  again = runner._runner_cache.values()[-1].spec
  assert (again.name, again.src, again.global_size, again.local_size, again.val_dtypes, again.splittable) == \
         (spec.name, spec.src, spec.global_size, spec.local_size, spec.val_dtypes, spec.splittable)
  np.testing.assert_allclose(first, np.exp2(x).sum(1) * 3, rtol=1e-6)
  # another renderer setting is another spec: made again, never read from the old entry
  runner._runner_cache.clear()
  use_tuning(monkeypatch, device, max_expansion=8)
  np.testing.assert_array_equal(run(), first)
  assert len(made) == 2


def test_debug_5_always_runs_codegen(device, monkeypatch, tmp_path):
  """DEBUG=5 prints the linearized program, which the disk cache doesn't keep."""
  monkeypatch.setenv("TEENY_CACHE_DIR", str(tmp_path))
  x = Tensor(np.ones(5, dtype=np.float32), device=device)
  (x * 7).numpy()
  runner._runner_cache.clear()
  monkeypatch.setattr(runner, "debug_level", lambda: 5)
  monkeypatch.setattr(runner, "dprint", lambda *a: None)
  made = []
  original = runner.get_program
  monkeypatch.setattr(runner, "get_program", lambda *a, **k: made.append(a[0]) or original(*a, **k))
  np.testing.assert_array_equal((x * 7).numpy(), np.full(5, 7, dtype=np.float32))
  assert len(made) == 1 and runner._runner_cache.values()[-1].spec.program
