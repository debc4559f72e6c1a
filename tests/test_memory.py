"""Memory: the planner shares memory between intermediates, the allocator reuses freed blocks, and long loops
of realizing and dropping tensors leave device memory, Python memory and caches where they started."""
import gc, os, subprocess, sys, tracemalloc
import numpy as np
import pytest
from teeny import Tensor, GlobalCounters, Device, Buffer, TinyJit, dtypes, memory
from teeny.memory import plan_memory
from teeny.runtime.device import Allocator
from teeny.schedule import create_schedule
from teeny.engine import runner
from teeny.schedule import cache as schedule_cache
from teeny.uop import _UOpMeta
from training import make_mlp, make_batch, train_step

rng = np.random.default_rng(0)


@pytest.fixture
def planner_off(monkeypatch):
  monkeypatch.setattr(memory, "PLANNER", False)


# ---- the planner ----

def test_plan_reuses_memory_after_last_use():
  # kernel i writes slot i and reads slot i-1: slot 0 is free once kernel 1 ran, so slot 2 takes its block
  uses = [[0], [1, 0], [2, 1], [3, 2]]
  block_of, blocks, clobbered = plan_memory(uses, {s: ("X", 100) for s in range(4)})
  assert len(blocks) == 2 and block_of[0] == block_of[2] and block_of[1] == block_of[3]
  assert clobbered == {0, 1}
  # a kernel's inputs are never its output's memory, and a bigger slot grows a free block instead of a new one
  block_of, blocks, _ = plan_memory([[0], [1, 0], [2, 1]], {0: ("X", 10), 1: ("X", 50), 2: ("X", 80)})
  assert block_of[2] == block_of[0] != block_of[1] and sorted(b[1] for b in blocks) == [50, 80]
  # devices never share
  block_of, blocks, _ = plan_memory([[0], [1]], {0: ("X", 10), 1: ("Y", 10)})
  assert block_of[0] != block_of[1]


def test_schedule_intermediates_share_memory(device):
  x = rng.standard_normal(64).astype(np.float32)
  t = Tensor(x, device=device)
  out = (((t + 1).contiguous() * 2).contiguous().exp()).contiguous().sum()
  items, *_ = create_schedule([out.uop], [device])
  bases = [b.base for item in items for b in item.bufs[:1] if b.base is not None]
  assert len(bases) >= 2 and len(set(map(id, bases))) < len(bases)  # at least two intermediates share a block
  np.testing.assert_allclose(out.numpy(), np.exp((x + 1) * 2).sum(), rtol=1e-5)


def test_clobbered_intermediates_are_not_remembered(device):
  t = Tensor(rng.standard_normal(32).astype(np.float32), device=device)
  a = (t + 1).contiguous()
  b = (a * 2).contiguous()
  c = (b * 3).contiguous()  # takes a's memory
  (c + 1).realize()
  # a's memory now holds c: a must be computed again, not read from there
  np.testing.assert_allclose(a.numpy(), t.numpy() + 1, rtol=1e-6)
  np.testing.assert_allclose(c.numpy(), (t.numpy() + 1) * 6, rtol=1e-5)


def test_mlp_step_peak_memory_is_smaller_with_the_planner(device, monkeypatch):
  sizes, batch = (64, 48, 48, 10), 32
  peaks, params_after = {}, {}
  for planner in (True, False):
    monkeypatch.setattr(memory, "PLANNER", planner)
    params = make_mlp(sizes, device)
    x, y = make_batch(sizes, batch, device)
    train_step(params, x, y)
    for p in params: p.grad = None  # drop the last step's graphs (and the buffers they hold)
    gc.collect()
    GlobalCounters.reset()
    start = GlobalCounters.mem_used
    train_step(params, x, y)
    peaks[planner] = GlobalCounters.peak_mem - start
    params_after[planner] = [p.numpy() for p in params]
  assert peaks[True] < peaks[False], peaks
  for a, b in zip(params_after[True], params_after[False]): np.testing.assert_array_equal(a, b)


def test_jit_scratch_is_planned(device, monkeypatch):
  def f(x):
    a = (x + 1).contiguous().realize()
    b = (a * 2).contiguous().realize()
    c = (b.exp()).contiguous().realize()
    return (c * 3).sum()
  held = {}
  for planner in (True, False):
    monkeypatch.setattr(memory, "PLANNER", planner)
    jf = TinyJit(f)
    for _ in range(3): out = jf(Tensor(np.ones(256, np.float32), device=device))
    np.testing.assert_allclose(out.numpy(), np.exp(4.0) * 3 * 256, rtol=1e-5)
    owners = {id(b.base if b.base is not None else b): (b.base if b.base is not None else b) for b in jf._capture.kept.values()}
    held[planner] = sum(b.nbytes for b in owners.values())
  assert held[True] < held[False], held


# ---- the allocator ----

class CountingAllocator(Allocator):
  def __init__(self, cache_limit):
    super().__init__(cache_limit)
    self.made, self.released = 0, []
  def _alloc(self, nbytes):
    self.made += 1
    return ("block", self.made, nbytes)
  def _free(self, handle, nbytes): self.released.append(handle)


def test_allocator_reuses_freed_blocks_of_the_same_size():
  a = CountingAllocator(cache_limit=1000)
  h = a.alloc(100)
  assert (a.live_count, a.live_bytes) == (1, 100)
  a.free(h, 100)
  assert (a.live_count, a.live_bytes, a.cached_bytes) == (0, 0, 100)
  assert a.alloc(100) is h and a.made == 1  # reused, not made again
  assert a.alloc(50) != h and a.made == 2


def test_allocator_cache_is_capped_and_drops_least_recently_freed_sizes():
  a = CountingAllocator(cache_limit=240)
  blocks = {n: a.alloc(n) for n in (100, 120, 130)}
  for n in (100, 120, 130): a.free(blocks[n], n)
  assert a.cached_bytes <= 240 and a.released == [blocks[100], blocks[120]]  # oldest sizes went first
  a.clear_cache()
  assert a.cached_bytes == 0 and len(a.released) == 3


def test_allocator_empties_its_cache_when_the_device_is_full():
  class Small(CountingAllocator):
    def _alloc(self, nbytes):
      if self.made - len(self.released) >= 2: raise MemoryError("full")
      return super()._alloc(nbytes)
  a = Small(cache_limit=1000)
  a.free(a.alloc(10), 10)
  a.free(a.alloc(20), 20)
  assert a.alloc(30) is not None and a.cached_bytes == 0  # the cached blocks were released to make room


def test_mem_used_and_peak_follow_buffers(device):
  gc.collect()
  GlobalCounters.reset()
  start = GlobalCounters.mem_used
  allocator = Device[device].allocator
  live = allocator.live_count
  b = Buffer(device, 1000, dtypes.float32).ensure_allocated()
  assert GlobalCounters.mem_used == start + 4000 and allocator.live_count == live + 1
  del b
  assert GlobalCounters.mem_used == start and GlobalCounters.peak_mem == start + 4000
  GlobalCounters.reset()
  assert GlobalCounters.peak_mem == GlobalCounters.mem_used


def test_debug_1_reports_memory(device):
  env = dict(os.environ, DEBUG="1", DEVICE=device)
  done = subprocess.run([sys.executable, "-c", "from teeny import Tensor; print((Tensor([1.0]) + 1).numpy())"], env=env,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  assert "peak" in done.stderr and "MB" in done.stderr


# ---- resources stay flat ----

def churn(device: str, i: int):
  """Realize and drop a few kinds of tensors: new buffers, reductions, views, an in-place update, and now and
  then random numbers (their graph is large to build: every 50th iteration keeps the test fast)."""
  x = Tensor(np.full((8, 4), float(i), np.float32), device=device)
  y = ((x * 2 + 1).relu().sum(1) + x.T.reshape(4, 8).max(0)).realize()
  r = (Tensor.rand(8, device=device) + y) if i % 50 == 0 else y * 2
  w = Tensor.zeros(4, device=device).contiguous().realize()
  w.assign(w + x.mean(0)).realize()
  assert r.numpy().shape == (8,) and w.numpy()[0] == i


def python_memory() -> int:
  """Bytes Python holds, after a collection. The table of live graph nodes is rebuilt first: how big its
  storage is depends on when it last grew (a 300 KB swing), not on how many nodes are alive."""
  gc.collect()
  table = _UOpMeta._cache
  entries = dict(table)
  table.clear()  # frees its storage; refilled at the size its entries need
  table.update(entries)
  return tracemalloc.get_traced_memory()[0]


def test_a_thousand_iterations_leave_memory_and_caches_flat(device):
  allocator = Device[device].allocator
  for i in range(20): churn(device, i)  # warm up: kernels compiled, caches filled, allocator cache primed
  gc.collect()
  start = (allocator.live_count, allocator.live_bytes, GlobalCounters.mem_used)
  sizes = (len(schedule_cache.schedule_cache), len(runner._runner_cache), len(_UOpMeta._cache))
  tracemalloc.start()
  try:
    for i in range(1000):
      churn(device, i)
      if i == 99: py_start = python_memory()
    py_end = python_memory()
  finally: tracemalloc.stop()
  assert (allocator.live_count, allocator.live_bytes, GlobalCounters.mem_used) == start
  assert (len(schedule_cache.schedule_cache), len(runner._runner_cache), len(_UOpMeta._cache)) == sizes
  assert py_end - py_start < 64 * 1024, f"Python memory grew by {py_end - py_start} bytes over 900 iterations"
  assert allocator.cached_bytes <= allocator.cache_limit


def test_jit_replays_leave_memory_flat(device):
  f = TinyJit(lambda x: ((x * 2).relu() + Tensor.rand(16, device=device)).sum())
  for i in range(5): f(Tensor(np.ones(16, np.float32), device=device)).numpy()
  gc.collect()
  start = (Device[device].allocator.live_count, GlobalCounters.mem_used)
  for i in range(300): f(Tensor(np.ones(16, np.float32), device=device)).numpy()
  gc.collect()
  assert (Device[device].allocator.live_count, GlobalCounters.mem_used) == start


def test_backward_passes_without_an_optimizer_leave_memory_flat(device):
  """Gradients taken again and again with no write in between (a saliency map, an attack on the input): each
  pass's x.grad is freed once replaced. A realized gradient keeps the graph that computed it (kept_graphs: its
  buffer view -> the graph) and the realized map remembered that graph's buffer (graph -> view): the two held
  each other through weak tables, and every pass kept its gradient's memory (one buffer per pass, forever)."""
  allocator = Device[device].allocator
  x = Tensor(rng.standard_normal((64, 32)).astype(np.float32), device=device, requires_grad=True).realize()
  w = Tensor(rng.standard_normal((32, 8)).astype(np.float32), device=device, requires_grad=True).realize()
  def step(i):
    x.grad = w.grad = None
    ((x * float(i + 2)) @ w).exp().sum().backward()
    Tensor.realize_all(x.grad, w.grad)
  for i in range(5): step(i)
  gc.collect()
  start = (allocator.live_count, GlobalCounters.mem_used)
  for i in range(5, 30): step(i)
  gc.collect()
  assert (allocator.live_count, GlobalCounters.mem_used) == start
  # and a gradient realized, then read through a graph built from it after its tensor is gone, still reaches x
  x.grad = None
  g = (x * 3.0).sum(1)
  g.realize()
  h = g * 2.0
  del g
  gc.collect()
  h.sum().backward()
  np.testing.assert_allclose(x.grad.numpy(), np.full((64, 32), 6.0), rtol=1e-6)


# ---- copy-out ----

def test_large_copy_out_reuses_host_memory_but_never_a_held_array(device):
  from teeny.runtime.device import host_memory
  n = (2 << 20) // 4  # 2 MiB: lent from host_memory
  a = np.arange(n, dtype=np.float32)
  t, u = Tensor(a, device=device).realize(), Tensor(a * 2, device=device).realize()
  first = t.numpy()
  address = first.ctypes.data
  held = u.numpy()  # `first` is still held: this must be other memory
  assert held.ctypes.data != address
  np.testing.assert_array_equal(first, a)
  np.testing.assert_array_equal(held, a * 2)
  del first
  again = t.numpy()  # first's block went back to the pool and comes out again, already paged in
  assert again.ctypes.data == address
  np.testing.assert_array_equal(again, a)
  view = again.reshape(-1, 4)[1:]
  del again
  np.testing.assert_array_equal(view.reshape(-1), a[4:])  # a view keeps the block lent
  assert u.numpy().ctypes.data != address
  assert host_memory.cached_bytes <= host_memory.cache_limit


def test_constant_node_cache_stays_bounded(monkeypatch):
  """The cache of constant graphs (`x + 1` builds the constant at x's shape once) empties itself when full, and
  a constant built again after that is the same graph as before (hash-consing, not the cache, makes it equal)."""
  from teeny.ops import constants
  monkeypatch.setattr(constants, "_CONST_NODES_MAX", 4)
  # an empty cache of its own: constants earlier tests in this process made would be found, never inserted
  monkeypatch.setattr(constants, "_const_nodes", {})
  x = Tensor(np.zeros(3, np.float32))
  first = (x + 0.5).uop
  for i in range(12):
    x + float(i)
    assert len(constants._const_nodes) <= 4
  assert (x + 0.5).uop is first
  np.testing.assert_equal((x + 0.5).numpy(), np.full(3, 0.5, np.float32))
