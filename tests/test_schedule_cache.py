"""The schedule cache: a graph with the structure of one realized before reuses its schedule and kernels."""
import os, subprocess, sys
import numpy as np
import pytest
from teeny import Tensor, GlobalCounters, dtypes
from teeny import schedule
from teeny.engine import runner
from teeny.schedule import create_schedule
from training import make_mlp, make_batch, train_step

rng = np.random.default_rng(0)


def data(*shape):
  return rng.standard_normal(shape).astype(np.float32)


def counts(fn) -> tuple[int, int]:
  GlobalCounters.reset()
  fn()
  return GlobalCounters.schedule_hits, GlobalCounters.schedule_misses


def test_same_structure_on_new_buffers_hits(device):
  a, b = data(5, 4), data(5, 4)
  f = lambda x, y: ((x * y).relu() + 3).sum(1)
  f(Tensor(a, device=device), Tensor(b, device=device)).realize()
  c, d = data(5, 4), data(5, 4)
  x, y = Tensor(c, device=device), Tensor(d, device=device)
  assert counts(lambda: f(x, y).realize()) == (1, 0)
  np.testing.assert_allclose(f(x, y).numpy(), (np.maximum(c * d, 0) + 3).sum(1), rtol=1e-5)


def test_one_buffer_read_twice_is_not_two_buffers(device):
  a, b = Tensor(data(6), device=device), Tensor(data(6), device=device)
  (a * b).realize()
  assert counts(lambda: (a * a).realize()) == (0, 1)  # a different key: the same input fills both places
  assert counts(lambda: (b * a).realize()) == (1, 0)
  out = (b * b)
  assert counts(out.realize) == (1, 0)
  np.testing.assert_allclose(out.numpy(), b.numpy() ** 2, rtol=1e-6)


def test_different_constants_shapes_and_dtypes_miss(device):
  x = Tensor(data(4, 4), device=device)
  (x + 1).realize()
  assert counts(lambda: (x + 2).realize()) == (0, 1)           # constants are compiled into the kernel
  assert counts(lambda: (Tensor(data(4, 5), device=device) + 1).realize()) == (0, 1)
  assert counts(lambda: (x.cast(dtypes.float16) + 1).realize()) == (0, 1)


def test_signed_zero_and_nan_constants_are_told_apart(device):
  x = Tensor(np.ones(3, np.float32), device=device)
  assert not np.signbit((x * 0.0).numpy()).any()
  assert np.signbit((x * -0.0).numpy()).all()
  assert np.isnan((x * float("nan")).numpy()).all()
  assert counts(lambda: (x * float("nan")).realize()) == (1, 0)  # nan == nan in the key


def test_second_identical_training_step_hits_every_schedule(device):
  sizes = (10, 8, 3)
  params = make_mlp(sizes, device)
  x, y = make_batch(sizes, 6, device)
  train_step(params, x, y)
  x2, y2 = make_batch(sizes, 6, device, seed=1)
  hits, misses = counts(lambda: train_step(params, x2, y2))
  assert misses == 0 and hits >= 1


def test_hit_remembers_realized_intermediates(device):
  a = Tensor(data(16), device=device)
  for _ in range(2):
    b = (a * 3).contiguous()
    c = b + 1
    c.realize()
    GlobalCounters.reset()
    (b * 2).realize()  # b was realized as part of c's schedule: reading it costs one kernel, not two
    assert GlobalCounters.kernel_count == 1
    np.testing.assert_allclose((b * 2).numpy(), a.numpy() * 6, rtol=1e-6)


def test_assign_in_a_loop_hits_and_updates(device):
  w = Tensor(np.zeros(4, np.float32), device=device).realize()
  for i in range(5):
    hits, misses = counts(lambda: w.assign(w + 1).realize())
    assert (hits, misses) == ((0, 1) if i == 0 else (1, 0))
  np.testing.assert_array_equal(w.numpy(), np.full(4, 5.0, np.float32))


def test_caches_are_bounded(device, monkeypatch):
  monkeypatch.setattr(schedule._schedule_cache, "maxsize", 4)
  monkeypatch.setattr(runner._runner_cache, "maxsize", 6)
  for n in range(1, 15):
    x = np.arange(n, dtype=np.float32)
    np.testing.assert_allclose((Tensor(x, device=device) * 2 + 1).numpy(), x * 2 + 1)
  assert len(schedule._schedule_cache) <= 4 and len(runner._runner_cache) <= 6


def test_debug_shows_hits_and_misses(device):
  program = "from teeny import Tensor\nfor i in range(2): print((Tensor([1.0, 2.0]) * 3).numpy())"
  env = dict(os.environ, DEBUG="2", DEVICE=device)
  done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  assert "schedule cache miss" in done.stderr and "schedule cache hit" in done.stderr
  assert "schedule cache 1 hits 1 misses" in done.stderr  # the DEBUG=1 summary line


def test_lru_cache_drops_the_least_recently_used_entry():
  from teeny.helpers import LRUCache
  cache = LRUCache(3)
  for k in "abc": cache[k] = k.upper()
  assert cache.get("a") == "A"  # a is now the most recent: b is the least
  cache["d"] = "D"
  assert "b" not in cache and all(k in cache for k in "acd")  # (`in` is no use)
  cache["e"] = "E"  # c was used before a and d
  assert "c" not in cache and len(cache) == 3 and sorted(cache.values()) == ["A", "D", "E"]
  assert cache.get("zz", 7) == 7


def test_lru_cache_inserts_from_many_threads():
  """Threads that realize at once insert into the schedule and kernel caches at once: evicting must not trip over
  another thread's insert (the scan for the least recently used entry iterates the cache)."""
  import sys, threading
  from teeny.helpers import LRUCache
  cache, errors = LRUCache(8), []
  def work(t):
    try:
      for i in range(3000):
        cache[(t, i)] = i
        cache.get((t, i - 1))
    except Exception as e: errors.append(e)
  interval = sys.getswitchinterval()
  sys.setswitchinterval(1e-6)  # switch threads as often as possible, to make the race likely
  try:
    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
  finally: sys.setswitchinterval(interval)
  assert not errors and len(cache) <= 8


# ---- signatures: a hit without walking the graph ----

def walks_during(fn, monkeypatch) -> int:
  calls = []
  real_walk = schedule._walk
  monkeypatch.setattr(schedule, "_walk", lambda roots: calls.append(roots) or real_walk(roots))
  fn()
  return len(calls)


def test_repeated_structure_hits_without_a_walk(device, monkeypatch):
  x = Tensor(np.zeros(16, np.float32), device=device).realize()
  x = (x + 1).realize()  # the first time: walked (a miss), and the signature learned
  for _ in range(3):
    GlobalCounters.reset()
    assert walks_during(lambda: (x + 1).realize(), monkeypatch) == 0
    assert (GlobalCounters.schedule_hits, GlobalCounters.schedule_misses) == (1, 0)
    x = (x + 1).realize()
  np.testing.assert_array_equal(x.numpy(), np.full(16, 4, np.float32))


def test_signature_tells_shared_buffers_apart(device):
  """(a*b)+(c*d), (a*b)+(b*a) and (a*b)+(a*b) have one structure but read 4, 2 and 2 buffers in different places."""
  bufs = [Tensor(data(8), device=device) for _ in range(4)]
  a, b, c, d = bufs
  values = [t.numpy() for t in bufs]
  va, vb, vc, vd = values
  for _ in range(2):  # the second round hits by signature
    np.testing.assert_allclose(((a * b) + (c * d)).numpy(), va * vb + vc * vd, rtol=1e-6)
    np.testing.assert_allclose(((a * b) + (b * a)).numpy(), 2 * va * vb, rtol=1e-6)
    np.testing.assert_allclose(((a * b) + (a * b)).numpy(), 2 * va * vb, rtol=1e-6)
    np.testing.assert_allclose(((c * d) + (d * c)).numpy(), 2 * vc * vd, rtol=1e-6)
    np.testing.assert_allclose(((a * c) + (c * b)).numpy(), va * vc + vc * vb, rtol=1e-6)


def test_node_realized_after_its_signature_was_taken_is_read_not_recomputed(device):
  a = Tensor(data(16), device=device)
  for _ in range(2):  # the second time, every graph here has a signature already
    b = a * 3
    c = b + 1
    later = b * 2  # holds b's lazy node
    c.realize()    # b's node got a signature entry, as a source of c
    b.realize()
    items, *_ = create_schedule((later.uop,), (device,))
    assert len(items) == 1 and items[0].bufs[1] is b.uop.arg  # reads b's buffer: its graph was walked and prepared
    np.testing.assert_allclose(later.numpy(), a.numpy() * 6, rtol=1e-6)


def test_deep_lazy_graph_is_signed_without_recursion(device):
  for _ in range(2):
    x = Tensor(np.zeros(4, np.float32), device=device)
    for _ in range(3000): x = x + 1
    np.testing.assert_array_equal(x.numpy(), np.full(4, 3000, np.float32))


def test_signature_table_is_bounded(device, monkeypatch):
  monkeypatch.setattr(schedule, "_SIGNATURE_IDS_MAX", 10)
  x = Tensor(data(4), device=device)
  for i in range(30):  # a new constant every time: a new structure
    np.testing.assert_allclose((x * i + 1).numpy(), x.numpy() * i + 1, rtol=1e-6)
    assert len(schedule._signature_ids) <= 10
