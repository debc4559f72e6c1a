"""Numbers as kernel arguments: a float32 constant other than 0, 1 and -1 is passed to its kernel as a value
(teeny/schedule/items.is_value_arg), so graphs that differ only in such numbers share their schedule and their
compiled kernels. Every test checks the numbers against numpy: a value handed to the wrong argument, or a kernel
reused with a stale number, would be a silent wrong result."""
import numpy as np
import pytest
from teeny import Tensor, Device, GlobalCounters, TinyJit, dtypes
from teeny.engine import runner
from teeny.schedule import create_schedule, cache

DEVICES = Device.available()


def data(*shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def schedule_of(t: Tensor):
  items, *_ = create_schedule([t.uop], [t.device])
  return items


def test_a_changing_number_reuses_the_schedule_and_the_kernel(device):
  x = Tensor(data(16, 32), device=device).realize()
  xn = x.numpy()
  (x * 0.5 + 1).sum(1).numpy()  # the first: scheduled and compiled
  runners, misses = len(runner._runner_cache), GlobalCounters.schedule_misses
  for i in range(2, 12):
    scale = i * 0.37
    got = (x * scale + 1).sum(1).numpy()
    np.testing.assert_allclose(got, (xn * np.float32(scale) + 1).sum(1), rtol=1e-5, atol=1e-5)
  assert len(runner._runner_cache) == runners, "a new number compiled a new kernel"
  assert GlobalCounters.schedule_misses == misses, "a new number was scheduled again"


def test_a_changing_number_in_a_loop_keeps_memory_flat(device):
  """The caches keyed by structure don't grow with the numbers: 300 values, no new schedule, kernel or signature."""
  x = Tensor(data(8), device=device).realize()
  (x * 0.25 - 3.5).numpy()
  sizes = (len(runner._runner_cache), len(cache.schedule_cache), len(cache._signature_ids))
  for i in range(300): (x * (i + 0.25) - 3.5).numpy()
  assert (len(runner._runner_cache), len(cache.schedule_cache), len(cache._signature_ids)) == sizes


def test_which_constants_are_values(device):
  x = Tensor(data(4), device=device).realize()
  assert schedule_of(x * 2.5)[0].vals == (2.5,)
  assert schedule_of(x * 2.5 + 2.5)[0].vals == (2.5,)  # one number, one argument
  assert sorted(schedule_of(x * 2.5 + 0.75)[0].vals) == [0.75, 2.5]
  # 0, 1, -1, inf and nan stay in the code (the rewrite rules fold them, reduces start from them)
  for structural in (0.0, 1.0, -1.0, float("inf"), float("-inf"), float("nan")):
    assert schedule_of(x * structural)[0].vals == (), structural
  # only float32: integers index and count, float64 and half stay constants too
  assert schedule_of(x.cast(dtypes.int32) * 3)[0].vals == ()
  assert schedule_of(x.cast(dtypes.float16) * 2.5)[0].vals == ()


def test_graphs_that_share_a_number_and_graphs_that_do_not(device):
  """x*2 + y*2 (one constant node, one argument) and x*2 + y*3 (two) are two structures: each gets its own
  schedule, and each number reaches the right product."""
  a, b = data(6, seed=1), data(6, seed=2)
  x, y = Tensor(a, device=device).realize(), Tensor(b, device=device).realize()
  for p, q in [(2.0, 2.0), (2.0, 3.0), (3.0, 2.0), (5.5, 5.5), (-4.0, 0.125)]:
    np.testing.assert_allclose((x * p + y * q).numpy(), a * np.float32(p) + b * np.float32(q), rtol=1e-6)
    np.testing.assert_allclose((x * p - y / q).numpy(), a * np.float32(p) - b / np.float32(q), rtol=1e-6)


def test_values_of_a_reduce_and_of_a_padded_view(device):
  x = Tensor(data(5, 7), device=device).realize()
  xn = x.numpy()
  for c in (0.5, 7.25):
    np.testing.assert_allclose((x + c).max(1).numpy(), (xn + np.float32(c)).max(1), rtol=1e-6)
    # a constant seen through a pad: the padding stays 0, the number is the value
    padded = (x * 0 + c).pad(((1, 1), (0, 2)))
    expect = np.pad(np.full((5, 7), c, np.float32), ((1, 1), (0, 2)))
    np.testing.assert_array_equal(padded.numpy(), expect)
    np.testing.assert_array_equal(Tensor.full((3, 2), c, device=device).numpy(), np.full((3, 2), c, np.float32))


def test_a_write_merged_into_its_producer_takes_both_kernels_values(device):
  """An SGD step whose learning rate changes every step: the update `w - lr * g` is merged into the gradient's
  kernel (kernelize._merge_writes), and both kernels' numbers survive the renumbering."""
  xn, wn = data(8, 4, seed=3), data(4, seed=4)
  x = Tensor(xn, device=device).realize()
  w = Tensor(wn.copy(), device=device, requires_grad=True)
  for step, lr in enumerate([0.1, 0.05, 0.025, 0.3]):
    loss = ((x * w).sum(1) * 1.5).square().sum()
    loss.backward()
    g = w.grad.numpy().copy()
    w.assign(w.detach() - lr * w.grad).realize()
    w.grad = None
    expect_g = (2 * 1.5 * 1.5 * (xn * wn).sum(1, keepdims=True) * xn).sum(0)
    np.testing.assert_allclose(g, expect_g, rtol=1e-4, atol=1e-4)
    wn = wn - np.float32(lr) * expect_g
    np.testing.assert_allclose(w.numpy(), wn, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif("LLVM" not in DEVICES, reason="LLVM device not available")
def test_a_kernel_split_across_cores_gets_its_values():
  """Big kernels run in slices on the native worker pool, which reads values from i64 slots."""
  n = 1 << 22
  xn = np.arange(n, dtype=np.float32) / n
  x = Tensor(xn, device="LLVM").realize()
  items = schedule_of(x * 2.5 - 0.75)
  prog = runner.get_runner("LLVM", items[0].ast).program
  assert prog.splittable and n * prog.ops_per_iter >= Device["LLVM"].renderer.tuning.parallel_threshold
  for a, b in [(2.5, -0.75), (-3.25, 10.5)]:
    np.testing.assert_array_equal((x * a + b).numpy(), xn * np.float32(a) + np.float32(b))
  np.testing.assert_array_equal(prog.value_slots([2.5, -0.75]), [0x40200000, -1086324736])  # float bits, sign-extended


def test_tinyjit_replays_the_values_it_captured(device):
  """As in tinygrad: numbers in the function's body are part of what it captured."""
  @TinyJit
  def f(t): return (t * 2.5 + 0.5).realize()
  for seed in range(4):
    a = data(6, seed=seed)
    np.testing.assert_allclose(f(Tensor(a, device=device)).numpy(), a * 2.5 + 0.5, rtol=1e-6)


def test_the_source_takes_the_value_as_an_argument(device, capfd):
  from teeny.helpers import Context
  x = Tensor(data(4), device=device).realize()
  runner._runner_cache.clear()  # (DEBUG=4 prints a kernel's source when it is compiled or loaded)
  with Context(DEBUG=4): (x * 0.37).numpy()
  err = capfd.readouterr().err
  assert "float val0" in err or "float %var0" in err, err[-2000:]
  assert "0.37" not in err and "0x3FD7AE1480000000" not in err


def test_a_graph_with_many_numbers_passes_them_all(device):
  """40 numbers in one graph are 40 values: a graph of the same structure with 40 other numbers reuses the
  schedule and gets its own numbers, none left over from the first."""
  a = data(5)
  x = Tensor(a, device=device).realize()
  misses = None
  for offset in (0.263, 0.3, 3.1):
    out, expect = x, a.copy()
    for i in range(40):
      c = offset + 0.37 * i  # (never 0.75, 1 or -1)
      out = out * 0.75 + c
      expect = expect * np.float32(0.75) + np.float32(c)
    assert len(schedule_of(out)[0].vals) == 41
    np.testing.assert_allclose(out.numpy(), expect, rtol=1e-5)
    if misses is not None: assert GlobalCounters.schedule_misses == misses
    misses = GlobalCounters.schedule_misses


def test_a_long_chain_is_cut_into_kernels_of_bounded_size(device):
  """A 3,000-op chain with a new number in every op: kernels of at most Tuning.max_kernel_values values and
  max_fused_depth ops, which share a few programs (their numbers are arguments), and numpy's result."""
  tuning = Device[device].renderer.tuning
  a = data(64)
  x = Tensor(a, device=device).realize()
  out, expect = x, a.copy()
  for i in range(1500):
    out = out * 0.999 + (i + 1) * 1e-4
    expect = expect * np.float32(0.999) + np.float32((i + 1) * 1e-4)
  items = schedule_of(out)
  assert len(items) >= 3000 // tuning.max_fused_depth
  assert all(len(item.vals) <= 2 * tuning.max_kernel_values for item in items)
  runners = len(runner._runner_cache)
  GlobalCounters.reset()
  np.testing.assert_allclose(out.numpy(), expect, rtol=1e-5, atol=1e-6)
  assert GlobalCounters.kernel_count == len(items)
  assert len(runner._runner_cache) - runners <= 4, "the chain's kernels should share their programs"


def test_a_deep_chain_of_one_number_is_cut_too(device):
  """y = y * 1.0001 a thousand times: one value, depth 1,000: cut at max_fused_depth, and right."""
  a = data(16)
  out = Tensor(a, device=device)
  expect = a.copy()
  for _ in range(1000):
    out = out * 1.0001
    expect = expect * np.float32(1.0001)
  items = schedule_of(out)
  assert len(items) == -(-1000 // Device[device].renderer.tuning.max_fused_depth)
  np.testing.assert_allclose(out.numpy(), expect, rtol=1e-6)
