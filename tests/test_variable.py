"""Variables (teeny/variable.py): named ints bound per call, as numbers, indices and fixed-length slices, read and
written, eagerly and under TinyJit. Every result is checked against numpy at every value: a kernel reused with a
stale position, or a write that lands elsewhere or not at all, would be a silent wrong result. And a changing value
must not schedule or compile anything new."""
import numpy as np
import pytest
from teeny import Tensor, Variable, TinyJit, GlobalCounters, JitError
from teeny.engine.jit import JitValueError
from teeny.engine import runner
from teeny.helpers import Context


def data(*shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_bind_and_unbind():
  pos = Variable("pos", 0, 7)
  bound = pos.bind(3)
  var, value = bound.unbind()
  assert var is pos and value == 3
  for bad in (-1, 8, 2.0, True, np.int64(9), np.bool_(True)):
    with pytest.raises(ValueError, match="pos"): pos.bind(bad)
  assert pos.bind(np.int64(3)) is bound and type(pos.bind(np.int32(3)).arg[3]) is int  # (it said 3 was out of range)
  with pytest.raises(ValueError, match="min <= max"): Variable("n", 3, 2)
  with pytest.raises(TypeError, match="bind"): bound.bind(1)
  with pytest.raises(ValueError, match="not bound"): Tensor.ones(3) * (pos + 1)
  # compared in Python (`if pos > 0`, tinygrad's KV-cache code): at the bound value
  assert bound > 2 and not bound > 3 and bound + 1 >= 4 and 2 < bound and bound * 2 <= 6 and not (7 - bound) < 4
  with pytest.raises(ValueError, match="not bound"): pos > 1
  with pytest.raises(TypeError, match="integer arithmetic"): Tensor([1]).uop < 3


def test_a_variable_reads_as_a_number_an_index_and_a_slice(device):
  xn = data(8, 6)
  x = Tensor(xn, device=device).realize()
  pos = Variable("pos", 0, 5)
  for i in range(6):
    v = pos.bind(i)
    np.testing.assert_allclose((x * v + (v + 1)).numpy(), xn * i + (i + 1), rtol=1e-6)
    np.testing.assert_array_equal(x[v].numpy(), xn[i])
    np.testing.assert_array_equal(x[v:v + 3].numpy(), xn[i:i + 3])
    np.testing.assert_array_equal(x[1:3, v].numpy(), xn[1:3, i])
    np.testing.assert_array_equal(x[..., v:v + 1].numpy(), xn[..., i:i + 1])
    np.testing.assert_array_equal(x[v:v + 3:2, None, v].numpy(), xn[i:i + 3:2, None, i])
    np.testing.assert_array_equal(x.shrink(((v, v + 2), (1, 4))).numpy(), xn[i:i + 2, 1:4])
    np.testing.assert_array_equal(x[v, Tensor([0, 2, 5], device=device)].numpy(), xn[i, [0, 2, 5]])


def test_a_changing_value_schedules_and_compiles_nothing_new(device):
  xn = data(16, 4)
  x = Tensor(xn, device=device).realize()
  pos = Variable("pos", 0, 14)
  def step(i): return (x[pos.bind(i):pos.bind(i) + 2] * 3).sum().numpy()
  step(0)
  runners, misses = len(runner._runner_cache), GlobalCounters.schedule_misses
  for i in range(1, 15): np.testing.assert_allclose(step(i), (xn[i:i + 2] * 3).sum(), rtol=1e-5)
  assert len(runner._runner_cache) == runners, "a new value compiled a new kernel"
  assert GlobalCounters.schedule_misses == misses, "a new value was scheduled again"


def test_writes_through_a_variable_land_at_its_position(device):
  """x[pos] = v, x[pos:pos + k, a:b] = t, two Variables in one index, and shrink(...).assign(...): each against a
  numpy array written the same way."""
  ref = np.zeros((6, 5), np.float32)
  x = Tensor(ref, device=device).contiguous().realize()
  pos, col = Variable("pos", 0, 4), Variable("col", 0, 4)
  for i in range(5):
    v, c = pos.bind(i), col.bind(4 - i)
    x[v] = float(i + 1)
    ref[i] = i + 1
    x[v:v + 2, 1:3] = Tensor(np.full((2, 2), -i, np.float32), device=device)
    ref[i:i + 2, 1:3] = -i
    x[v, c] = 10.0 + i
    ref[i, 4 - i] = 10 + i
    x.shrink(((v, v + 1), (c, c + 1))).assign(Tensor([[20.0 + i]], device=device))
    ref[i, 4 - i] = 20 + i
    np.testing.assert_array_equal(x.numpy(), ref)


def test_a_slice_read_through_variables_is_written_through(device):
  """x[pos:pos + 2] is a gather, not a view, yet assign() on it writes into x (and realizing it runs that write),
  and reading it afterwards shows the written values, as through a view."""
  x = Tensor.zeros(4, 3, device=device).contiguous().realize()
  window = x[Variable("pos", 0, 2).bind(1):Variable("pos", 0, 2).bind(1) + 2]
  window.assign(Tensor.ones(2, 3, device=device) * 7).realize()
  np.testing.assert_array_equal(window.numpy(), np.full((2, 3), 7.0))
  np.testing.assert_array_equal(x.numpy(), [[0] * 3, [7] * 3, [7] * 3, [0] * 3])


def test_a_kv_cache_write_and_read_under_tinyjit(device):
  """tinygrad's KV-cache step: write at pos with shrink(...).assign(...), read the row back; captured once and
  replayed for every position with that call's value (one capture, no new kernel)."""
  @TinyJit
  def step(cache, row, pos):
    cache.shrink(((pos, pos + 1), None)).assign(row).realize()
    return (cache[pos] * 2).realize()
  ref = np.zeros((8, 4), np.float32)
  cache = Tensor(ref, device=device).contiguous().realize()
  pos = Variable("pos", 0, 7)
  for i in range(8):
    row = data(1, 4, seed=i)
    ref[i] = row[0]
    out = step(cache, Tensor(row, device=device), pos.bind(i))
    np.testing.assert_array_equal(cache.numpy(), ref)
    np.testing.assert_array_equal(out.numpy(), row[0] * 2)
    if i == 2: runners = len(runner._runner_cache)
  assert len(runner._runner_cache) == runners and len(step.captured.jit_cache) >= 1


def test_tinyjit_takes_variables_inside_a_list_and_checks_them(device):
  @TinyJit
  def pick(x, where):
    return (x[where[0]] + x[where[1]]).realize()
  xn = data(5, 3)
  x = Tensor(xn, device=device).realize()
  a, b = Variable("a", 0, 4), Variable("b", 0, 4)
  for i in range(5):
    np.testing.assert_array_equal(pick(x, [a.bind(i), b.bind(4 - i)]).numpy(), xn[i] + xn[4 - i])
  with pytest.raises(JitError, match="Variable"): pick(x, [a.bind(1), Variable("b", 0, 9).bind(2)])  # another range
  with pytest.raises(JitError, match="bound to 1 and to 2"): pick(x, [a.bind(1), Variable("a", 0, 4).bind(2)])


def test_variables_refuse_what_they_cannot_do(device):
  """A position out of its axis at the bound value raises (a kernel would read 0 and write nothing, silently);
  the declared range may be wider than the axis allows, as long as the values bound stay inside."""
  x = Tensor(data(6, 4), device=device).realize()
  pos = Variable("pos", 0, 9)
  with pytest.raises(IndexError, match=r"starts at 4 with pos = 4, outside \[0, 3\]"): x[pos.bind(4):pos.bind(4) + 3]
  with pytest.raises(IndexError, match=r"starts at 4 with pos = 4, outside \[0, 3\]"): x[:, pos.bind(4)]  # (4 columns)
  with pytest.raises(IndexError, match=r"starts at -1 with pos = 1"): x[pos.bind(1) - 2]
  with pytest.raises(TypeError, match="tensor or list"): x[pos.bind(1), [0, 1]] = 1.0
  x[pos.bind(1), [0, 1]].numpy()  # (reading that index is fine)
  np.testing.assert_array_equal(x[pos.bind(3):pos.bind(3) + 3].numpy(), x.numpy()[3:6])  # (pos = 9 could not)


def test_tinyjit_replays_check_their_positions_as_a_build_would(device):
  """A replay binds new values without building the graph, so it checks the positions it reads and writes
  first: writing row `v` of 6 rows with v declared in [0, 6] replays for v = 0..5 and raises at v = 6 (tinygrad's
  test_jit_setitem_variable_offset, without its CHECK_OOB=0), leaving the tensor as it was."""
  t = Tensor.zeros(6, 3, device=device).contiguous().realize()
  @TinyJit
  def write_row(row, v): t.shrink(((v, v + 1), None)).assign(row).realize()
  v = Variable("v", 0, 6)
  want = np.zeros((6, 3), np.float32)
  for i in range(6):
    write_row(Tensor.full((1, 3), i + 1.0, device=device).contiguous(), v.bind(i))
    want[i] = i + 1
    np.testing.assert_array_equal(t.numpy(), want)
  assert write_row.captured is not None
  with pytest.raises(IndexError, match=r"starts at 6 with v = 6, outside \[0, 5\]"):
    write_row(Tensor.full((1, 3), 9.0, device=device).contiguous(), v.bind(6))
  np.testing.assert_array_equal(t.numpy(), want)


def test_a_variable_as_a_size_is_its_bound_value(device):
  """x[:n], shrink, pad, reshape and new tensors with a Variable as a size: the size is its bound value (shapes are
  concrete), read and written, at every value."""
  xn = data(6, 4)
  x = Tensor(xn, device=device).realize()
  n = Variable("n", 1, 6)
  for v in (1, 3, 6):
    b = n.bind(v)
    np.testing.assert_array_equal(x[:b].numpy(), xn[:v])
    np.testing.assert_array_equal(x[b - 1:, 1:b].numpy(), xn[v - 1:, 1:v])
    np.testing.assert_array_equal(x.shrink(((0, b), None)).sum(0).numpy(), xn[:v].sum(0))
    np.testing.assert_allclose(x[:b].mean().item(), xn[:v].mean(), rtol=1e-6)
    np.testing.assert_array_equal(x[:b].pad(((0, 6 - b), None)).numpy(), np.pad(xn[:v], ((0, 6 - v), (0, 0))))
    assert Tensor.zeros(b, 2, device=device).shape == (v, 2) and x[:b].reshape(b, 2, 2).shape == (v, 2, 2)
    y = Tensor(xn, device=device).contiguous()
    y[:b] = 0.0  # a write through a size: the first v rows
    np.testing.assert_array_equal(y.numpy(), np.concatenate([np.zeros((v, 4), np.float32), xn[v:]]))


def test_tinyjit_replays_a_variable_size_only_at_the_size_it_captured(device):
  """A size is baked into the capture's kernels: a call with another value runs the function again (warm-up,
  capture, replay per value), so each call is right; a position that is no size still replays across values. A
  replay at a stale size would be a silent wrong sum."""
  cache = Tensor.zeros(8, device=device).contiguous().realize()
  @TinyJit
  def write_and_sum(v, pos):
    cache[pos:pos + 1] = v  # a position
    return cache[:pos + 1].sum().realize()  # and a size
  pos = Variable("pos", 0, 7)
  for p in (0, 1, 2, 2, 2, 3, 3, 3, 2):
    assert write_and_sum(Tensor([float(p + 1)], device=device), pos.bind(p)).item() == sum(range(1, p + 2)), p
  assert write_and_sum.captured is None and write_and_sum.calls == 1  # (p = 2 again: a warm-up at that size)
  @TinyJit
  def shifted(x, pos): return (x[pos:pos + 2] * 2).realize()  # a position only: one capture for every value
  xn = data(8)
  start = Variable("start", 0, 6)
  for p in range(6): np.testing.assert_array_equal(shifted(Tensor(xn, device=device), start.bind(p)).numpy(), xn[p:p + 2] * 2)
  assert shifted.captured is not None and shifted.calls == 6


def test_variables_under_validate(device):
  """VALIDATE=1 checks every realize against the numpy reference interpreter (teeny/reference.py), BIND included."""
  with Context(VALIDATE=1):
    x = Tensor(data(4, 4), device=device).contiguous().realize()
    v = Variable("pos", 0, 2).bind(2)
    x[v] = x[v] * v
    x.realize()
    (x[v:v + 2] + v).realize()


def test_random_variable_slices_read_and_write_like_numpy(device):
  """40 random cases: a 3-d tensor, a slice pos*a + b : ... of fixed length and step along a random axis (another
  axis sliced plainly), read and written at every value of the Variable, against numpy."""
  rng = np.random.default_rng(7)
  for case in range(40):
    shape = tuple(int(n) for n in rng.integers(2, 7, size=3))
    axis, length, step, scale = int(rng.integers(0, 3)), int(rng.integers(1, 3)), int(rng.integers(1, 3)), int(rng.integers(1, 3))
    reach = (length - 1) * step
    if reach >= shape[axis]: continue
    hi = (shape[axis] - 1 - reach) // scale
    pos = Variable(f"p{case}", 0, hi)
    ref = rng.standard_normal(shape).astype(np.float32)
    x = Tensor(ref, device=device).contiguous().realize()
    for i in range(hi + 1):
      v = pos.bind(i)
      index, np_index = [slice(None)] * 3, [slice(None)] * 3
      index[axis], np_index[axis] = slice(v * scale, v * scale + reach + 1, step), slice(i * scale, i * scale + reach + 1, step)
      other = (axis + 1) % 3
      index[other] = np_index[other] = slice(1, None)
      np.testing.assert_array_equal(x[tuple(index)].numpy(), ref[tuple(np_index)])
      new = rng.standard_normal(ref[tuple(np_index)].shape).astype(np.float32)
      x[tuple(index)] = Tensor(new, device=device)
      ref[tuple(np_index)] = new
      np.testing.assert_array_equal(x.numpy(), ref)


def test_tinyjit_takes_a_variable_beside_tensors_in_a_list(device):
  @TinyJit
  def row(args):
    x, pos = args
    return (x[pos] * 2).realize()
  xn = data(4, 3)
  x = Tensor(xn, device=device).realize()
  pos = Variable("pos", 0, 3)
  for i in (0, 1, 2, 3, 1):
    np.testing.assert_array_equal(row([x, pos.bind(i)]).numpy(), xn[i] * 2)


def test_writes_into_a_slice_read_through_a_variable_reach_the_tensor(device):
  """x[pos:pos + 2] is a gather, yet s[0] = v and s += 1 on it change x, as through a view."""
  ref = np.zeros((5, 3), np.float32)
  x = Tensor(ref, device=device).contiguous().realize()
  pos = Variable("pos", 0, 3).bind(2)
  s = x[pos:pos + 2]
  s[0] = 5.0
  ref[2] = 5.0
  np.testing.assert_array_equal(x.numpy(), ref)
  s += 1
  ref[2:4] += 1
  np.testing.assert_array_equal(x.numpy(), ref)
  np.testing.assert_array_equal(s.numpy(), ref[2:4])


def test_kv_cache_by_variable_sizes_under_tinyjit(device):
  """tinygrad's way of filling a KV cache: the prompt first (a warm-up call of another shape, with a plain 0), then
  one row per call, the cache rebuilt from its first `pos` rows (a size), the new row and padding (`n - pos - 1`,
  a size), with `if pos > 0` in Python. Every call's cache is checked, so a replay at a stale size would show."""
  n, rows = 8, []
  cache = Tensor.zeros(n, 2, device=device).contiguous().realize()
  @TinyJit
  def step(new, pos):
    keys = cache.shrink(((0, pos), None)).cat(new, dim=0) if pos > 0 else new
    cache.assign(keys.pad(((0, n - pos - new.shape[0]), None))).realize()
  prompt = data(3, 2)
  step(Tensor(prompt, device=device), 0)
  rows = list(prompt)
  pos = Variable("pos", 1, n - 1)
  for p in range(3, 7):
    row = data(1, 2, seed=p)
    step(Tensor(row, device=device), pos.bind(p))
    rows.append(row[0])
    want = np.concatenate([np.array(rows), np.zeros((n - len(rows), 2), np.float32)])
    np.testing.assert_array_equal(cache.numpy(), want)


def test_tinyjit_warm_up_call_may_differ_from_the_capture(device):
  """As in tinygrad, the first call only runs the function: the capture (second) call's shapes are the ones later
  calls must keep."""
  f = TinyJit(lambda x: (x * 2).realize())
  f(Tensor(data(3), device=device))
  for seed in range(3): np.testing.assert_array_equal(f(Tensor(data(5, seed=seed), device=device)).numpy(), data(5, seed=seed) * 2)
  with pytest.raises(JitError, match="captured with"): f(Tensor(data(3), device=device))


def test_what_a_variable_cannot_hold_raises(device):
  pos = Variable("pos", 0, 9).bind(3)
  with pytest.raises(TypeError, match="truncated"): pos * 0.5  # (an int expression: 0.5 would become 0)
  with pytest.raises(TypeError, match="truncated"): pos - 0.9
  np.testing.assert_allclose((Tensor([1.0, 2.0], device=device) * pos * 0.5).numpy(), [1.5, 3.0])  # (a tensor first)
  with pytest.raises(ValueError, match="int32"): Variable("n", 0, 2**40)  # (its kernel argument is an int32)


def test_a_variable_expression_past_int32_raises_instead_of_wrapping(device):
  # kernels compute a Variable expression in int32: n * 10000 at n = 300000 was -1294967296 (wrapped); a replay
  # could bind any value of the declared range, so the range decides, not the bound value
  x = Tensor.arange(3, device=device).float()
  n = Variable("n", 0, 10**6)
  with pytest.raises(OverflowError, match="past int32"): x + n.bind(300000) * 10000
  with pytest.raises(OverflowError, match="past int32"): x + n.bind(5) * 10000
  with pytest.raises(OverflowError, match="past int32"): x - (n.bind(5) + 2**31 - 10**6)
  m = Variable("m", -1000, 1000).bind(-3)
  np.testing.assert_array_equal((x + m * 10000).numpy(), [-30000, -29999, -29998])
  np.testing.assert_array_equal((x + m * -m).numpy(), [-9, -8, -7])


def test_tinyjit_prune_keeps_kernels_that_take_a_variable(device):
  table = Tensor(np.arange(12, dtype=np.float32).reshape(6, 2), device=device).realize()
  pos = Variable("pos", 0, 5)
  @TinyJit(prune=True)
  def f(x, p): return (x + (table[p] * 2).contiguous() + (Tensor.ones(2, device=device) * p).contiguous()).realize()
  for i in (1, 1, 1, 4, 2):  # (the kernels that read table[p] depend on no input buffer, only on p)
    np.testing.assert_allclose(f(Tensor([0.5, 0.5], device=device), pos.bind(i)).numpy(), 0.5 + 2 * np.arange(12).reshape(6, 2)[i] + i)


def test_tinyjit_refuses_a_variable_bound_inside_under_an_arguments_name(device):
  rows = Tensor(np.arange(24, dtype=np.float32).reshape(6, 4), device=device).realize()
  @TinyJit
  def f(x, p): return (x[p] + x[Variable("pos", 0, 5).bind(0)] * 100).realize()
  f(rows, Variable("pos", 0, 5).bind(1))
  with pytest.raises(JitValueError, match="inside the function"): f(rows, Variable("pos", 0, 5).bind(2))


def test_a_bound_variable_compares_equal_and_is_truthy_at_its_value():
  # `if pos == 0:` and `if pos:` must see the bound value, as `<` does (both were answered for the node: == was
  # always False, bool always True)
  s, z = Variable("s", 0, 10).bind(4), Variable("s", 0, 10).bind(0)
  assert s == 4 and not s != 4 and s in (4,) and 4 == s and s + 1 == 5 and (s - 4) == 0 and s == 4.0
  assert s != 3 and not s == 3 and s not in (3, 5)
  assert not bool(z) and bool(s) and not (s - 4) and (z + 1)
  # between nodes == stays identity (the graph's dicts and hash-consing need it); hash is the node's
  assert s == Variable("s", 0, 10).bind(4) and len({s, z, s}) == 2
  # a Tensor on the other side still compares elementwise
  assert (s == Tensor([4, 5])).numpy().tolist() == [True, False]


def test_floor_division_and_modulo_of_variables_round_down_like_python(device):
  # the kernels' integer // and % truncate toward zero: (q - 5) // 2 at q = 0 was -2 and (q - 5) % 3 was -2
  q, d = Variable("q", 0, 10), Variable("d", 1, 4)
  row = np.arange(10, dtype=np.float32)
  @TinyJit
  def f(x, q, d):
    return (x * ((q - 5) // 2) + x[(q - 1) // 3 + 1] * 100 + ((q - 7) % d) * 1000 + ((5 - q) // -d) * 10000).realize()
  for v in [0, 3, 1, 2, 7, 10, 4]:
    for w in (1, 3):
      want = row * ((v - 5) // 2) + row[(v - 1) // 3 + 1] * 100 + ((v - 7) % w) * 1000 + ((5 - v) // -w) * 10000
      np.testing.assert_array_equal(f(Tensor(row, device=device), q.bind(v), d.bind(w)).numpy(), want)
      assert (q.bind(v) - 5) // 2 == (v - 5) // 2 and (q.bind(v) - 5) % -3 == (v - 5) % -3  # at the bound value too
      assert Tensor((q.bind(v) - 5) % 4, device=device).item() == (v - 5) % 4
  with pytest.raises(ValueError, match="holds 0"): Tensor.ones(2) * (q.bind(3) // (q.bind(3) - 1))


def test_a_variable_on_the_left_of_a_tensor_leaves_it_to_the_tensor(device):
  # pos * t made t a Python int (one element; more raised) and gave a node: now Tensor's reflected operator runs,
  # and a TinyJit replay uses each call's tensor and value
  @TinyJit
  def f(t, pos):
    return ((pos + t) * 10 + (pos * t) + (pos - t) / 4 + (pos / t) + (pos // t) + (pos % t)).realize()
  pos = Variable("pos", 0, 10)
  for i in range(5):
    tn = np.array([0.7 + i, 2.5, 4.0 + i], np.float32)
    v = (2 * i + 1) % 11
    want = (v + tn) * 10 + v * tn + (v - tn) / 4 + v / tn + np.floor_divide(v, tn) + np.mod(v, tn)
    np.testing.assert_allclose(f(Tensor(tn, device=device), pos.bind(v)).numpy(), want, rtol=1e-6)


def test_an_ellipsis_before_a_variable_index_counts_the_axes_it_stands_for(device):
  # x[..., p, :] read x[..., :, 0]'s place as p's (shape (2, 1) for (2, 4)); x[..., p] raised AssertionError
  xn = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
  x = Tensor(xn, device=device)
  p = Variable("p", 0, 3)
  for v in (1, 2, 0):
    b = p.bind(v)
    for index, want in [((Ellipsis, b, slice(None)), xn[..., v, :]), ((Ellipsis, b), xn[..., v]),
                        ((None, Ellipsis, b), xn[None, ..., v]), ((b % 2, Ellipsis, b), xn[v % 2, ..., v]),
                        ((Ellipsis, None, b, slice(None)), xn[..., None, v, :]), ((0, Ellipsis, b, 2), xn[0, ..., v, 2])]:
      got = x[index].numpy()
      assert got.shape == want.shape
      np.testing.assert_array_equal(got, want)
    y, yn = Tensor(xn, device=device).contiguous(), xn.copy()
    y[..., b] = -1.0
    yn[..., v] = -1.0
    np.testing.assert_array_equal(y.numpy(), yn)


def test_a_half_float_tensor_times_a_variable_rounds_once_as_with_an_int(device):
  # the Variable was cast to the tensor's dtype first: 3 * 2049 in float16 gave 6144 (2049 rounds to 2048), torch 6148
  from teeny import dtypes
  v = Variable("v", 0, 100000)
  for dtype, n in [(dtypes.float16, 2049), (dtypes.bfloat16, 257)]:
    x = Tensor([3.0, 1.5, 7.0], device=device).cast(dtype)
    for got, want in [(x * v.bind(n), x * n), (v.bind(n) * x, n * x), (x / v.bind(n), x / n), (v.bind(n) / x, n / x)]:
      np.testing.assert_array_equal(got.float().numpy(), want.float().numpy())
  assert (Tensor([3.0], device=device).half() * v.bind(2049)).float().item() == 6148.0


def test_where_with_a_variable_past_an_int8_tensors_range_raises_as_an_int_does(device):
  # (x8 > 0).where(x8, q) with q bound to 200 gave -56 (wrapped) where the int 200 raises OverflowError, as in
  # PyTorch; a kernel serves every value, so the Variable's declared range is what must fit
  x8 = Tensor(np.array([-3, 5], np.int8), device=device)
  with pytest.raises(OverflowError): (x8 > 0).where(x8, 200)
  with pytest.raises(OverflowError, match="-300, 300"): (x8 > 0).where(x8, Variable("q", -300, 300).bind(200))
  with pytest.raises(OverflowError, match="int8"): (x8 > 0).where(Variable("q", 0, 200).bind(1), x8)
  r = Variable("r", -100, 100)
  assert (x8 > 0).where(x8, r.bind(-7)).tolist() == [-7, 5] and (x8 > 0).where(r.bind(9), x8).tolist() == [-3, 9]


def test_a_write_into_a_variable_slice_keeps_newer_values_of_the_source(device):
  """s = x[pos:pos + 2] is a copy that writes through to x: a write into one element of s wrote all of s back,
  undoing x[1] = 100 made after s was read. Only the elements written reach x now."""
  x = Tensor(np.arange(6, dtype=np.float32), device=device).contiguous().realize()
  pos = Variable("pos", 0, 4).bind(1)
  s = x[pos:pos + 2]
  x[1] = 100
  s[1] = -1
  np.testing.assert_array_equal(x.numpy(), [0, 100, -1, 3, 4, 5])
