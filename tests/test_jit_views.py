"""TinyJit replays return views as the eager call does (teeny/engine/jit_views.py): a returned tensor that is a view
of another returned tensor, of an argument, of a parameter or global (a KV cache), or of an intermediate shares its
storage with it on every replay, so writes through it land where they would eagerly and later writes to its base
show through it; results PyTorch copies (flip, pad, advanced indexing) stay copies. Every pattern runs calls 1 to 4
(warm-up, capture, two replays) unjitted and jitted, writes through what they returned, and compares both with
numpy, whose basic slices, reshapes and transposes are views too."""
import numpy as np
import pytest
from teeny import Tensor, TinyJit, Variable


def start(call: int) -> np.ndarray:
  """A call's input values: a 4x3 block that differs from call to call."""
  return np.arange(12, dtype=np.float32).reshape(4, 3) + 10 * call


def check_calls(make, call, expected):
  """Calls 1-4 of the function make() builds, unjitted and jitted: `call(fn, i)` calls it and writes through what it
  returned, giving the arrays it then reads; both must equal `expected(i)`, and calls 3 and 4 must be replays."""
  for jitted in (False, True):
    runs = []
    fn = make()
    def counted(*args):
      runs.append(1)
      return fn(*args)
    f = TinyJit(counted) if jitted else counted
    for i in range(1, 5):
      for got, want in zip(call(f, i), expected(i), strict=True):
        np.testing.assert_array_equal(got, want, err_msg=f"{'jitted' if jitted else 'unjitted'} call {i}")
    if jitted: assert len(runs) == 2 and f.captured is not None  # (calls 3 and 4 replayed)


def test_a_view_of_a_returned_tensor_shares_its_storage(device):
  def make():
    def fn(x):
      z = (x + 1).contiguous()
      return z, z[0:2], z.reshape(3, 4)[1], z.T, z[None].expand(2, 4, 3)
    return fn
  def call(f, i):
    z, rows, row, zt, wide = f(Tensor(start(i), device=device))
    assert rows._base is z and zt._base is z and wide._base is z
    rows[0] = 100.0   # through each view into z,
    row[1:3] = -5.0
    zt[2] += 1000.0
    z[3] = 7.0        # and into z, seen by each view
    return [z.numpy(), rows.numpy(), row.numpy(), zt.numpy(), wide.numpy()]
  def expected(i):
    z = start(i) + 1
    rows, row, zt = z[0:2], z.reshape(3, 4)[1], z.T
    rows[0] = 100.0
    row[1:3] = -5.0
    zt[2] += 1000.0
    z[3] = 7.0
    return [z, rows, row, zt, np.broadcast_to(z, (2, 4, 3))]
  check_calls(make, call, expected)


def test_a_view_of_an_argument_writes_it_and_follows_it(device):
  def make():
    def fn(c):
      c += 1
      return (c * 2).contiguous(), c[1:3], c.T, c.detach().reshape(12), Tensor(c)
    return fn
  def call(f, i):
    c = Tensor(start(i), device=device)
    doubled, rows, ct, flat, alias = f(c)
    assert rows._base is c and ct._base is c and flat._base is c and alias._base is c and alias is not c
    rows[0] = 100.0
    ct[2] = -1.0
    flat[11] = 55.0
    c[3, 0] = 9.0
    return [c.numpy(), doubled.numpy(), rows.numpy(), ct.numpy(), flat.numpy()]
  def expected(i):
    c = start(i) + 1
    doubled, rows, ct, flat = c * 2, c[1:3], c.T, c.reshape(12)
    rows[0] = 100.0
    ct[2] = -1.0
    flat[11] = 55.0
    c[3, 0] = 9.0
    return [c, doubled, rows, ct, flat]
  check_calls(make, call, expected)


def test_a_tensor_of_a_tensor_is_an_alias_on_its_device():
  # Tensor(c) with no device went to the default device: a copy of c on another device, not an alias of it
  c = Tensor([1.0, 2.0], device="LLVM:1")
  alias = Tensor(c)
  assert alias.device == "LLVM:1" and alias._base is c
  alias[0] = 5.0
  np.testing.assert_array_equal(c.numpy(), [5.0, 2.0])


def test_a_view_of_a_global_kv_cache_and_the_cache_itself(device):
  made = []
  def make():
    cache = Tensor.zeros(6, 3, device=device).contiguous().realize()
    made.append(cache)
    def fn(x):
      cache[1:3] = x[0:2] * 2
      return cache[0:3], cache
    return fn
  def call(f, i):
    window, whole = f(Tensor(start(i), device=device))
    cache = made[-1]
    assert whole is cache and window._base is cache
    seen = window.numpy().copy()  # (before the writes below)
    window[0] = 42.0
    cache[2] = 9.0 + i
    return [seen, window.numpy(), cache.numpy()]
  def expected(i):
    cache = np.zeros((6, 3), np.float32)
    for j in range(1, i + 1):  # (each call rewrites rows 1-2 and the writes after it land in rows 0 and 2)
      cache[1:3] = start(j)[0:2] * 2
      seen = cache[0:3].copy()
      cache[0] = 42.0
      cache[2] = 9.0 + j
    return [seen, cache[0:3], cache]
  check_calls(make, call, expected)


def test_a_view_of_a_parameter_requires_grad_and_shares_it(device):
  params = []
  def make():
    w = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3), device=device, requires_grad=True).realize()
    params.append(w)
    return lambda x: ((x * w).sum(1).realize(), w.T)
  def call(f, i):
    total, wt = f(Tensor(np.full((2, 3), float(i), np.float32), device=device))
    w = params[-1]
    assert wt._base is w and wt.requires_grad
    with Tensor.no_grad(): wt[0] = 10.0 * i  # a parameter's view is written under no_grad, as in PyTorch
    w.assign(w + 1).realize()
    return [total.numpy(), wt.numpy(), w.numpy()]
  def expected(i):
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    for j in range(1, i + 1):
      total = (np.full((2, 3), float(j), np.float32) * w).sum(1)
      w.T[0] = 10.0 * j
      w += 1
    return [total, w.T, w]
  check_calls(make, call, expected)


def test_views_of_an_intermediate_share_it(device):
  def make():
    def fn(x):
      y = (x + 1).contiguous()  # not returned: its views still share it
      return y[0:2], y[1:3]
    return fn
  def call(f, i):
    top, middle = f(Tensor(start(i), device=device))
    top[1] = 77.0
    middle[1] *= 2.0
    return [top.numpy(), middle.numpy()]
  def expected(i):
    y = start(i) + 1
    top, middle = y[0:2], y[1:3]
    top[1] = 77.0
    middle[1] *= 2.0
    return [top, middle]
  check_calls(make, call, expected)


def test_results_pytorch_copies_stay_copies(device):
  def make():
    return lambda c: (c.flip(0), c.pad(((1, 0), None)), c[[0, 2]], (c * 1).realize())
  def call(f, i):
    c = Tensor(start(i), device=device)
    outs = f(c)
    assert not any(out._base is c for out in outs)  # (c[[0, 2]] is a view of a gather of its own)
    c[0] = -1.0          # reaches none of them,
    outs[0][1] = 33.0    # and writes into them don't reach c
    outs[2][0] = 44.0
    return [c.numpy()] + [out.numpy() for out in outs]
  def expected(i):
    c = start(i)
    outs = [c[::-1].copy(), np.pad(c, ((1, 0), (0, 0))), c[[0, 2]], c.copy()]
    c[0] = -1.0
    outs[0][1] = 33.0
    outs[2][0] = 44.0
    return [c] + outs
  check_calls(make, call, expected)


def test_a_slice_read_through_a_variable_writes_into_its_source_on_replay(device):
  def make():
    def fn(cache, pos):
      cache[pos:pos + 1] = cache[pos:pos + 1] + 1
      return cache[pos:pos + 2]
    return fn
  def call(f, i):
    cache = Tensor(start(i).reshape(6, 2), device=device)
    window = f(cache, Variable("pos", 0, 4).bind(i))
    seen = window.numpy().copy()
    window[1] = -1.0     # a gather, not a view: writes into it reach the cache,
    cache[i] = 50.0      # but the cache's later changes don't show in it (teeny/ops/variables.py)
    return [seen, window.numpy(), cache.numpy()]
  def expected(i):
    cache = start(i).reshape(6, 2)
    cache[i] += 1
    window = cache[i:i + 2].copy()
    seen = window.copy()
    window[1] = -1.0
    cache[i + 1] = -1.0
    cache[i] = 50.0
    return [seen, window, cache]
  check_calls(make, call, expected)


@pytest.mark.parametrize("devices", [("LLVM", "LLVM:1")], ids=["LLVM+LLVM:1"])
def test_views_of_sharded_results_and_arguments(devices):
  def make():
    def fn(x):
      h = (x * 2).contiguous()
      return h, h[:, 0:2], x[:, 1:3]
    return fn
  def call(f, i):
    x = Tensor(np.arange(24, dtype=np.float32).reshape(8, 3) + i).shard(devices, 0).realize()
    h, left, right = f(x)
    assert left._base is h and right._base is x
    left[1] = 100.0
    right[2] = -1.0
    return [h.numpy(), x.numpy(), left.numpy()]
  def expected(i):
    x = np.arange(24, dtype=np.float32).reshape(8, 3) + i
    h = x * 2
    h[1, 0:2] = 100.0
    x[2, 1:3] = -1.0
    return [h, x, h[:, 0:2]]
  check_calls(make, call, expected)


def test_a_tensor_returned_twice_is_one_tensor(device):
  f = TinyJit(lambda x: ((x + 1).contiguous(),) * 2)
  for i in range(1, 5):
    a, b = f(Tensor(start(i), device=device))
    assert a is b
    a[0] = 5.0
    expected = start(i) + 1
    expected[0] = 5.0
    np.testing.assert_array_equal(b.numpy(), expected)


def test_a_global_dropped_or_replaced_after_the_capture_gives_views_of_what_the_replay_wrote(device):
  holder = {"cache": Tensor.zeros(4, 3, device=device).contiguous().realize()}
  def fn(x):
    cache = holder["cache"]
    cache[0:2] = x[0:2]
    return cache[0:3]
  f = TinyJit(fn)
  for i in (1, 2): f(Tensor(start(i), device=device))
  holder["cache"].replace(Tensor.ones(4, 3, device=device).contiguous())  # (a replay still writes the old buffer)
  for i in (3, 4):
    window = f(Tensor(start(i), device=device))
    assert window._base is not holder["cache"]
    np.testing.assert_array_equal(window.numpy()[0:2], start(i)[0:2])
    window[2] = 8.0
    np.testing.assert_array_equal(window.numpy()[2], [8.0] * 3)
  np.testing.assert_array_equal(holder["cache"].numpy(), np.ones((4, 3), np.float32))
  holder.clear()  # (the cache itself dropped: a replay still returns its buffer's values)
  window = f(Tensor(start(5), device=device))
  np.testing.assert_array_equal(window.numpy()[0:2], start(5)[0:2])


def test_a_view_argument_the_function_writes_is_written_through(device):
  """step(cache[layer]): the view is copied for the kernels and copied back after the call, so the writes reach the
  cache as eagerly, and a returned argument or view of it is the view passed (or that view of it)."""
  caches = []
  def make():
    caches.append(Tensor.zeros(4, 2, 3, device=device).contiguous().realize())
    def fn(layer, x):
      layer[0] = x
      return (layer * 2).realize(), layer, layer[1]
    return fn
  def call(f, i):
    cache = caches[-1]
    layer = cache[i - 1]
    doubled, same, row = f(layer, Tensor(np.full(3, float(i), np.float32), device=device))
    assert same is layer and row._base is cache
    row[2] = -float(i)  # (a write through the returned view reaches the cache too)
    return [doubled.numpy(), cache.numpy()]
  def expected(i):
    cache = np.zeros((4, 2, 3), np.float32)
    for j in range(1, i + 1):
      cache[j - 1, 0] = j
      doubled = cache[j - 1] * 2
      cache[j - 1, 1, 2] = -float(j)
    return [doubled, cache]
  check_calls(make, call, expected)


def test_a_view_argument_only_read_is_not_written_back(device):
  f = TinyJit(lambda v: (v * 2).realize())
  for i in range(1, 5):
    x = Tensor(start(i), device=device)
    version = x._version
    np.testing.assert_array_equal(f(x[1:3]).numpy(), start(i)[1:3] * 2)
    assert x._version == version  # (a write back would rerun what reads x and mark graphs through it stale)


@pytest.mark.parametrize("devices", [("LLVM", "LLVM:1")], ids=["LLVM+LLVM:1"])
def test_a_view_of_a_sharded_tensor_passed_and_written(devices):
  def fn(v, x):
    v += x
    return (v * 2).realize(), v
  for jitted in (False, True):
    f = TinyJit(fn) if jitted else fn
    X = Tensor(np.zeros((4, 6), np.float32)).shard(devices, 0).realize()
    expected = np.zeros((4, 6), np.float32)
    for i in range(1, 5):
      view = X[:, i - 1:i + 1]
      doubled, same = f(view, Tensor(np.full((4, 2), float(i), np.float32)).shard(devices, 0))
      expected[:, i - 1:i + 1] += i
      assert same is view
      np.testing.assert_array_equal(doubled.numpy(), expected[:, i - 1:i + 1] * 2)
    np.testing.assert_array_equal(X.numpy(), expected, err_msg=f"jitted={jitted}")
