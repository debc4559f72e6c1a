"""Threads: one TinyJit called from several threads gives every result right, a capture records only its own
thread's kernels, and eager teeny on several threads at once (program order, autograd, grad mode, random draws)
gives the numbers it gives on one thread."""
import sys, threading
import numpy as np
import pytest
from teeny import Tensor, TinyJit
from teeny.helpers import GlobalCounters
from training import make_mlp, make_batch, train_step

pytestmark = pytest.mark.kernels_vary  # (the replay keeps none of this file's kernels: see conftest.py)

CALLS = 10_000  # calls per thread of the two-thread jit test (about 2 s per device here)


@pytest.fixture(autouse=True)
def switch_often():
  """Let threads take turns every few microseconds (Python's default is 5 ms): races show up in fewer calls."""
  before = sys.getswitchinterval()
  sys.setswitchinterval(1e-5)
  yield
  sys.setswitchinterval(before)


def run_threads(*targets, timeout=120):
  """Run each function on a thread of its own; re-raise the first exception one of them raised."""
  errors = []
  def guarded(fn):
    def run():
      try: fn()
      except BaseException as e: errors.append(e)
    return run
  threads = [threading.Thread(target=guarded(fn)) for fn in targets]
  for t in threads: t.start()
  for t in threads: t.join(timeout)
  assert not any(t.is_alive() for t in threads), "a thread did not finish (deadlock?)"
  if errors: raise errors[0]


def test_one_jit_called_from_two_threads_gives_every_result_right(device):
  @TinyJit
  def f(x):
    scratch = (x * 2).contiguous()  # a buffer the jit keeps and reuses on every replay
    return (scratch + 1).realize()
  calls = CALLS
  start = threading.Barrier(2)  # both threads begin together: their first calls race to warm up and capture
  wrong = [[], []]
  def caller(k):
    def run():
      start.wait()
      for i in range(calls):
        v = float(k * 1_000_000 + i)
        out = f(Tensor(np.full(8, v, np.float32), device=device)).numpy()
        if not (out == 2 * v + 1).all(): wrong[k].append((v, out[0]))
    return run
  kernels_before, mem_before = GlobalCounters.kernel_count, GlobalCounters.global_mem
  run_threads(caller(0), caller(1))
  assert wrong == [[], []], f"wrong results: {len(wrong[0])} and {len(wrong[1])}, e.g. {wrong[0][:3]} {wrong[1][:3]}"
  assert f.calls == 2 * calls and len(f._capture.launches) == 2  # one capture, of its own two kernels
  # every launch counted, none lost: two kernels a call, each reading and writing 8 floats
  assert GlobalCounters.kernel_count - kernels_before == 2 * 2 * calls
  assert GlobalCounters.global_mem - mem_before == 2 * 2 * 64 * calls


def test_two_jits_on_two_threads_draw_different_random_numbers(device):
  jits = [TinyJit(lambda x: (x + Tensor.rand(64, device=device)).realize()) for _ in range(2)]
  draws = [[], []]
  def caller(k):
    def run():
      zeros = Tensor.zeros(64, device=device).contiguous().realize()
      for _ in range(200): draws[k].append(jits[k](zeros).numpy())
    return run
  run_threads(caller(0), caller(1))
  every = np.stack(draws[0] + draws[1])
  assert ((every >= 0) & (every < 1)).all()
  assert len({row.tobytes() for row in every}) == len(every), "two draws gave the same numbers"


def _eager_kernels_meanwhile(device, go: threading.Event, done: threading.Event, results: list):
  """Wait for `go`, run eager kernels of this thread's own, keep their results, then set `done`."""
  go.wait(60)
  try:
    base = Tensor(np.arange(16, dtype=np.float32), device=device).realize()
    for i in range(5): results.append(((base * 3 - i).realize(), base))
  finally: done.set()


def test_capture_records_none_of_another_threads_kernels(device):
  go, done, body_runs, theirs = threading.Event(), threading.Event(), [], []
  @TinyJit
  def f(x):
    body_runs.append(1)
    if len(body_runs) == 2:  # the capture: the other thread runs its kernels now
      go.set()
      assert done.wait(60)
    return (x + 1).realize()
  def capturing():
    for i in range(6):
      out = f(Tensor(np.full(4, float(i), np.float32), device=device)).numpy()
      assert (out == i + 1).all()
  run_threads(capturing, lambda: _eager_kernels_meanwhile(device, go, done, theirs))
  assert len(f._capture.launches) == 1  # x + 1, and nothing of the other thread's
  # the other thread's results are its own: changing their input changes nothing a replay computes into them
  theirs[0][1].assign(Tensor.full((16,), -100.0, device=device)).realize()
  for i in range(3): f(Tensor(np.full(4, 7.0, np.float32), device=device))
  for i, (result, _) in enumerate(theirs): np.testing.assert_array_equal(result.numpy(), np.arange(16) * 3 - i)


def test_lazy_tensor_of_another_thread_is_realized_outside_the_capture(device):
  # while a capture updates w, another thread makes a lazy tensor reading w: program order realizes it with
  # the old w before the update, outside the capture, so replays never recompute it
  w = Tensor(np.ones(4, np.float32), device=device).realize()
  go, made, body_runs, theirs = threading.Event(), threading.Event(), [], []
  @TinyJit
  def step(x):
    body_runs.append(1)
    if len(body_runs) == 2:
      go.set()
      assert made.wait(60)
    w.assign(w + x)
    return w.realize()
  def other():
    assert go.wait(60)
    theirs.append(w * 10)  # lazy: reads w as it is now (1 + 1 after the warm-up call)
    made.set()
  def stepping():
    for _ in range(5): step(Tensor(np.ones(4, np.float32), device=device))
  run_threads(stepping, other)
  np.testing.assert_array_equal(w.numpy(), np.full(4, 6.0))
  np.testing.assert_array_equal(theirs[0].numpy(), np.full(4, 20.0))
  assert len(step._capture.launches) == 1  # the update only


def test_eager_ops_on_two_threads_keep_program_order(device):
  # each thread reads its tensor lazily, then updates it in place: the lazy read keeps the old values
  wrong = [[], []]
  def worker(k):
    def run():
      x = Tensor(np.full(8, float(k), np.float32), device=device).realize()
      y = Tensor.ones(8, device=device).contiguous().realize()
      _unrelated = [y + j for j in range(300)]  # kept alive: lazy tensors that every scan for readers of x looks at
      for i in range(300):
        before = (x * 2)  # lazy
        x += 1
        x.realize()
        got = before.numpy()
        if not (got == 2 * (k + i)).all(): wrong[k].append((i, got[0]))
      if not (x.numpy() == k + 300).all(): wrong[k].append(("final", x.numpy()[0]))
    return run
  run_threads(worker(0), worker(1))
  assert wrong == [[], []]


def test_no_grad_on_one_thread_leaves_another_threads_gradients_alone(device):
  inside, computed = threading.Event(), threading.Event()
  seen_inside = []
  def without_grad():
    w = Tensor([1.0, 2.0], device=device, requires_grad=True)
    with Tensor.no_grad():
      inside.set()
      assert computed.wait(60)
      seen_inside.append((w * 2).requires_grad)
  grads = []
  def with_grad():
    assert inside.wait(60)
    try:
      w = Tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
      squares = (w * w).realize()  # requires grad: it keeps the graph that computed it, for backward
      (squares.sum() + w.sum()).backward()
      grads.append(w.grad.numpy())
    finally: computed.set()
  run_threads(without_grad, with_grad)
  np.testing.assert_array_equal(grads[0], [3.0, 5.0, 7.0])
  assert seen_inside == [None] or seen_inside == [False]


def test_training_on_two_threads_gives_the_same_weights_as_on_one(device):
  sizes, steps = (12, 10, 4), 8
  def train(seed, jit: bool):
    params = make_mlp(sizes, device, seed=seed)
    step = TinyJit(lambda x, y: train_step(params, x, y)) if jit else (lambda x, y: train_step(params, x, y))
    losses = [step(*make_batch(sizes, 16, device, seed=seed * 100 + i)).numpy() for i in range(steps)]
    return [p.numpy() for p in params], losses
  expected = [train(seed, jit) for seed, jit in ((1, False), (2, True))]
  got = [None, None]
  def trainer(k, seed, jit):
    def run(): got[k] = train(seed, jit)
    return run
  run_threads(trainer(0, 1, False), trainer(1, 2, True))
  # Equal to float32 rounding, not bit-equal: a write on one thread makes the scheduler forget the results every
  # thread had realized (RealizedMap.forget drops them all), so the other thread may recompute its forward pass in a
  # different kernel split, whose sums and exp/log round differently in the last bit; eight training steps grow that
  # (seen: 1 ulp in ~1 of 6 runs, up to 8 ulp in ~1 of 20 CI runs). A mix-up between the threads' models (other
  # seeds) would differ by far more than this bound (1e-5 relative).
  for (weights, losses), (weights0, losses0) in zip(got, expected):
    for a, b in zip(weights + losses, weights0 + losses0): np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_eager_realizes_on_two_threads_give_right_results(device):
  # different tensors per thread, one shared input both read (its graph nodes are shared by hash-consing)
  shared = Tensor(np.arange(16, dtype=np.float32), device=device).realize()
  wrong = [[], []]
  def worker(k):
    def run():
      acc = Tensor(np.full(16, float(k), np.float32), device=device).realize()
      for i in range(200):
        acc = (acc + shared * 2 - shared).realize()  # + shared
        if i % 20 == 19:
          got, want = acc.numpy(), k + (i + 1) * np.arange(16)
          if not (got == want).all(): wrong[k].append((i, got[:3], want[:3]))
    return run
  run_threads(worker(0), worker(1))
  assert wrong == [[], []]

