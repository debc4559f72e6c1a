"""TinyJit: capture on the second call, replay on later ones with the new inputs and no Python graph building."""
import collections
import numpy as np
import pytest
from teeny import Tensor, TinyJit, GlobalCounters, dtypes
from teeny.engine.jit import TinyJit as TinyJitFromModule, JitError, JitValueError, JitTypeError, JitDeviceError
import teeny
from conftest import DEVICES
from teeny.nn.optim import SGD, Adam
from training import make_mlp, make_batch, train_step, numpy_step, mlp_loss

SIZES = (12, 10, 8, 4)
rng = np.random.default_rng(0)


def data(*shape):
  return rng.standard_normal(shape).astype(np.float32)


def test_names():
  assert TinyJitFromModule is TinyJit and teeny.JitError is JitError


def test_jitted_mlp_training_step_is_bit_identical_to_unjitted(device):
  eager, jitted = make_mlp(SIZES, device), make_mlp(SIZES, device)
  step = TinyJit(lambda x, y: train_step(jitted, x, y))
  weights = [p.numpy() for p in eager]
  for i in range(5):
    x, y = make_batch(SIZES, 16, device, seed=i)
    loss_eager = train_step(eager, x, y)
    loss_jit = step(x, y)
    np.testing.assert_array_equal(loss_jit.numpy(), loss_eager.numpy())
    for a, b in zip(jitted, eager): np.testing.assert_array_equal(a.numpy(), b.numpy())
    weights, loss_np = numpy_step(weights, x.numpy(), y.numpy())
    np.testing.assert_allclose(loss_eager.numpy(), loss_np, rtol=1e-4)
    for p, w in zip(eager, weights): np.testing.assert_allclose(p.numpy(), w, rtol=1e-4, atol=1e-5)
  assert step.calls == 5 and step._capture is not None


def test_replay_builds_no_graph_and_schedules_nothing(device, monkeypatch):
  body_runs = []
  @TinyJit
  def f(a, b):
    body_runs.append(1)
    return ((a * b).relu() + a.sum(1, keepdim=True)).exp2()
  a, b = data(6, 5), data(6, 5)
  f(Tensor(a, device=device), Tensor(b, device=device))
  GlobalCounters.reset()
  f(Tensor(a, device=device), Tensor(b, device=device))  # the capture
  captured = (GlobalCounters.kernel_count, GlobalCounters.global_ops, GlobalCounters.global_mem)
  assert captured[0] == len(f._capture.launches)
  import teeny.schedule, teeny.engine.tensors
  def fail(*args, **kwargs): raise AssertionError("replay must not schedule")
  monkeypatch.setattr(teeny.schedule, "create_schedule", fail)
  monkeypatch.setattr(teeny.engine.tensors, "create_schedule", fail)
  ta, tb = Tensor(a * 2, device=device), Tensor(b, device=device)
  GlobalCounters.reset()
  out = f(ta, tb)
  assert len(body_runs) == 2  # the function ran on calls 1 and 2 only
  assert GlobalCounters.schedule_hits == GlobalCounters.schedule_misses == 0
  assert (GlobalCounters.kernel_count, GlobalCounters.global_ops, GlobalCounters.global_mem) == captured
  want = np.exp2(np.maximum(a * 2 * b, 0) + (a * 2).sum(1, keepdims=True))
  np.testing.assert_allclose(out.numpy(), want, rtol=1e-5)


def test_new_shape_or_dtype_raises_and_reset_recaptures(device):
  f = TinyJit(lambda x: x * 2 + 1)
  for _ in range(3): f(Tensor(data(4, 3), device=device))
  with pytest.raises(ValueError, match=r"argument 0 has shape \(5, 3\), captured with \(4, 3\)"):
    f(Tensor(data(5, 3), device=device))
  with pytest.raises(TypeError, match="dtype"):
    f(Tensor(data(4, 3), device=device).cast(dtypes.int32))
  f.reset()
  x = data(5, 3)
  for _ in range(3): out = f(Tensor(x, device=device))
  np.testing.assert_allclose(out.numpy(), x * 2 + 1, rtol=1e-6)


def test_new_device_raises():
  if len(DEVICES) < 2: pytest.skip("needs two devices")
  f = TinyJit(lambda x: x + 1)
  for _ in range(2): f(Tensor(data(3), device=DEVICES[0]))
  with pytest.raises(RuntimeError, match=f"is on {DEVICES[1]}, captured on {DEVICES[0]}"):
    f(Tensor(data(3), device=DEVICES[1]))


def test_non_tensor_arguments_are_constants(device):
  f = TinyJit(lambda x, scale, mode="add": x * scale + 1 if mode == "add" else x * scale)
  x = data(4)
  for _ in range(3): out = f(Tensor(x, device=device), 3.0, mode="add")
  np.testing.assert_allclose(out.numpy(), x * 3 + 1, rtol=1e-6)
  with pytest.raises(ValueError, match="non-Tensor arguments"): f(Tensor(x, device=device), 4.0, mode="add")
  with pytest.raises(ValueError, match="non-Tensor arguments"): f(Tensor(x, device=device), 3.0, mode="mul")


def test_keyword_tensors_map_by_name(device):
  f = TinyJit(lambda a, b: a - b)
  for i in range(4):
    a, b = data(3), data(3)
    out = f(b=Tensor(b, device=device), a=Tensor(a, device=device)) if i % 2 else f(a=Tensor(a, device=device), b=Tensor(b, device=device))
    np.testing.assert_allclose(out.numpy(), a - b, rtol=1e-6)


def test_old_outputs_are_not_overwritten_by_later_calls(device):
  f = TinyJit(lambda x: x * 10)
  outs = [f(Tensor(np.full(4, i, np.float32), device=device)) for i in range(6)]
  for i, out in enumerate(outs): np.testing.assert_array_equal(out.numpy(), np.full(4, i * 10, np.float32))


def test_output_aliasing_an_input(device):
  @TinyJit
  def bump(x):
    x.assign(x + 1)
    return x
  for i in range(4):
    x = Tensor(np.full(3, float(i), np.float32), device=device)
    out = bump(x)
    np.testing.assert_array_equal(out.numpy(), np.full(3, i + 1.0, np.float32))
    np.testing.assert_array_equal(x.numpy(), np.full(3, i + 1.0, np.float32))  # written in place


def test_returning_inputs_tuples_dicts_and_plain_values(device):
  @TinyJit
  def f(x, y):
    return {"x": x, "sum": (x + y).realize(), "n": 3}, None
  for _ in range(4):
    x, y = data(2, 2), data(2, 2)
    out, nothing = f(Tensor(x, device=device), Tensor(y, device=device))
    assert nothing is None and out["n"] == 3
    np.testing.assert_array_equal(out["x"].numpy(), x)
    np.testing.assert_allclose(out["sum"].numpy(), x + y, rtol=1e-6)


def test_same_tensor_in_two_places(device):
  f = TinyJit(lambda a, b: a * b)
  a = Tensor(data(3), device=device)
  for _ in range(3): out = f(a, a)
  np.testing.assert_allclose(out.numpy(), a.numpy() ** 2, rtol=1e-6)
  with pytest.raises(ValueError, match="same Tensor"): f(a, Tensor(data(3), device=device))


def test_tensors_inside_lists_tuples_and_dicts_are_inputs(device):
  """Tensors directly inside a list, tuple or dict argument are inputs like tinygrad's (a replay reads the ones
  passed now); the non-Tensor items beside them are constants; a view inside is copied like a view argument."""
  @TinyJit
  def f(x, pair, state, scale):
    return (x * pair[0] - pair[1] + state["h"] * scale[0]).realize()
  for i in range(5):
    x, a, b, h = data(3), data(3), data(3), data(3)
    big = Tensor(data(6), device=device)
    out = f(Tensor(x, device=device), [Tensor(a, device=device), big[1:4] if i % 2 else Tensor(b, device=device)],
            {"h": Tensor(h, device=device), "n": 2}, (4.0,))
    want_b = big.numpy()[1:4] if i % 2 else b
    np.testing.assert_allclose(out.numpy(), x * a - want_b + h * 4.0, rtol=1e-6, err_msg=f"call {i}")
  t = Tensor(data(3), device=device)
  with pytest.raises(JitValueError, match=r"argument 1\[0\] has shape \(4,\)"):
    f(t, [Tensor(data(4), device=device), t], {"h": t, "n": 2}, (4.0,))
  with pytest.raises(JitValueError, match="non-Tensor"): f(t, [t, t], {"h": t, "n": 3}, (4.0,))
  with pytest.raises(JitTypeError, match="two containers deep"): TinyJit(lambda xs: xs[0][0] + 1)([[t]])
  g = TinyJit(lambda d: (d["a"] + d["missing"]).realize())
  for _ in range(3):  # a dict subclass is rebuilt as itself (a view inside is copied): the defaultdict keeps its factory
    a = Tensor(data(6), device=device)
    out = g(collections.defaultdict(lambda: 1.0, {"a": a[::2]}))
    np.testing.assert_allclose(out.numpy(), a.numpy()[::2] + 1, rtol=1e-6)


def test_a_tuple_state_threads_through_replays(device):
  """tinygrad's LSTM habit: step(x, (h, c)) returning the new (h, c), fed back in on the next call."""
  @TinyJit
  def step(x, hc):
    h, c = hc
    c_new = (c + x).realize()
    return (h * 0.5 + c_new).realize(), c_new
  x = data(4)
  h, c = Tensor(np.zeros(4, np.float32), device=device), Tensor(np.zeros(4, np.float32), device=device)
  hn, cn = np.zeros(4), np.zeros(4)
  for _ in range(5):
    h, c = step(Tensor(x, device=device), (h, c))
    cn = cn + x
    hn = hn * 0.5 + cn
    np.testing.assert_allclose(h.numpy(), hn, rtol=1e-5)
    np.testing.assert_allclose(c.numpy(), cn, rtol=1e-5)


def test_misuse_raises_jit_error_of_the_old_kinds(device):
  """JitError (tinygrad's type) for every misuse, each also the builtin error it always was."""
  assert issubclass(JitValueError, ValueError) and issubclass(JitTypeError, TypeError) and issubclass(JitDeviceError, RuntimeError)
  f = TinyJit(lambda x: (x + 1).realize())
  for _ in range(3): f(Tensor(data(4), device=device))
  with pytest.raises(JitError): f(Tensor(data(5), device=device))
  with pytest.raises(JitError): f(Tensor(data(4), device=device).cast(dtypes.int32))
  with pytest.raises(JitError): f(x=Tensor(data(4), device=device))


def test_a_function_that_launches_nothing_raises_jit_error(device):
  """Like tinygrad's "didn't JIT anything!": the capture call launched no kernel. The call after tries again."""
  body_runs = []
  def nothing(a):
    body_runs.append(1)
    return a
  f = TinyJit(nothing)
  a = Tensor(data(3), device=device)
  assert f(a) is a  # the warm-up call just runs
  for _ in range(2):
    with pytest.raises(JitError, match="no kernel"): f(a)
  assert len(body_runs) == 3 and f._capture is None


def test_prune_leaves_input_independent_kernels_out_of_replays(device):
  """tinygrad's prune=True: (weights * 2).contiguous() reads no input, so it runs at the capture only and its
  buffer keeps the result; a replay launches just the kernel that reads x. Without prune both run."""
  weights = Tensor(data(16), device=device).realize()
  def w2(x): return ((weights * 2).contiguous() + x).realize()
  @TinyJit(prune=True)
  def w2_pruned(x): return w2(x)
  plain = TinyJit(w2)
  assert isinstance(w2_pruned, TinyJit) and w2_pruned.prune and not plain.prune
  for jit, kernels in ((plain, 2), (w2_pruned, 1)):
    for i in range(4):
      x = data(16)
      GlobalCounters.reset()
      out = jit(Tensor(x, device=device))
      if i >= 2: assert GlobalCounters.kernel_count == kernels, (jit.prune, GlobalCounters.kernel_count)
      np.testing.assert_allclose(out.numpy(), weights.numpy() * 2 + x, rtol=1e-6)


def test_prune_keeps_a_returned_input_independent_result(device):
  """A result made only by left-out kernels is returned as the buffer the capture wrote, on every replay."""
  weights = Tensor(data(5), device=device).realize()
  f = TinyJit(lambda x: ((weights + 1).contiguous().realize(), (x * 3).realize()), prune=True)
  for _ in range(4):
    x = data(5)
    const, out = f(Tensor(x, device=device))
    np.testing.assert_allclose(const.numpy(), weights.numpy() + 1, rtol=1e-6)
    np.testing.assert_allclose(out.numpy(), x * 3, rtol=1e-6)


def test_captured_lists_the_launches_and_frees_its_scratch(device):
  """jit.captured (tinygrad's name) is None until the capture, then lists what a replay launches (jit_cache, and
  linear.src as tinygrad's newer spelling); free_intermediates() gives the scratch buffers' memory back and the
  next replay plans them again, with the same results."""
  ext = Tensor(np.float32([1, 24, 23, 45, 1]), device=device).realize()
  @TinyJit
  def f(x):
    t1 = (x * 2).contiguous().realize()
    t2 = (t1 + ext).contiguous().realize()
    return t2.sum().realize()
  assert f.captured is None
  for i in range(4): assert f(Tensor(np.float32([i, 1, 2, 3, 4]), device=device)).item() == 114 + 2 * i
  assert len(f.captured.jit_cache) == len(f.captured.linear.src) == 3
  assert all(launch.ast.op.name == "SINK" for launch in f.captured.jit_cache)
  for _ in range(2):
    before = GlobalCounters.mem_used
    f.captured.free_intermediates()
    f.captured.free_intermediates()  # (a second time frees nothing more, and breaks nothing)
    assert before - GlobalCounters.mem_used >= 2 * 5 * 4  # t1 and t2
    assert f(Tensor(np.float32([11, 1, 2, 3, 4]), device=device)).item() == 136


def test_random_numbers_advance_on_every_replay_like_unjitted(device):
  def noisy(x): return x + Tensor.rand(*x.shape, device=device) + Tensor.randn(2, device=device).sum()
  x = Tensor(np.zeros(5, np.float32), device=device)
  Tensor.manual_seed(7)
  eager = [noisy(x).numpy() for _ in range(5)]
  Tensor.manual_seed(7)
  f = TinyJit(noisy)
  jitted = [f(x).numpy() for _ in range(5)]
  for a, b in zip(eager, jitted): np.testing.assert_array_equal(a, b)
  assert len({tuple(r) for r in jitted}) == 5  # every call drew new numbers


def test_random_draw_counter_matches_unjitted(device):
  def noisy(x): return x * Tensor.rand(4, device=device)
  x = Tensor(np.ones(4, np.float32), device=device)
  Tensor.manual_seed(3)
  for _ in range(4): noisy(x).realize()
  after_eager = Tensor.rand(4, device=device).numpy()
  Tensor.manual_seed(3)
  f = TinyJit(noisy)
  for _ in range(4): f(x)
  np.testing.assert_array_equal(Tensor.rand(4, device=device).numpy(), after_eager)


def test_nested_jit_runs_inside_the_outer_capture(device):
  inner_runs = []
  @TinyJit
  def inner(x):
    inner_runs.append(1)
    return (x * 2).realize()
  @TinyJit
  def outer(x):
    return inner(x) + 1
  for i in range(5):
    x = np.full(3, float(i), np.float32)
    np.testing.assert_array_equal(outer(Tensor(x, device=device)).numpy(), x * 2 + 1)
  # inner ran its function on outer's calls 1 (its own call 1) and 2 (outer's capture), never after
  assert len(inner_runs) == 2 and inner.calls == 1 and inner._capture is None
  for i in range(3):  # and still works on its own
    x = np.full(3, float(i), np.float32)
    np.testing.assert_array_equal(inner(Tensor(x, device=device)).numpy(), x * 2)
  assert inner._capture is not None


def test_jitted_method(device):
  class Model:
    def __init__(self): self.w = Tensor(np.full(3, 2.0, np.float32), device=device)
    @TinyJit
    def __call__(self, x): return (x * self.w).realize()
  m = Model()
  for i in range(4):
    x = np.full(3, float(i), np.float32)
    np.testing.assert_array_equal(m(Tensor(x, device=device)).numpy(), x * 2)


def test_several_realizes_inside_with_scratch_buffers(device):
  @TinyJit
  def f(x):
    a = (x + 1).contiguous().realize()
    b = (a * a).sum(0).realize()
    c = (a - b).exp().contiguous().realize()
    return (c * 2).sum()
  for i in range(5):
    x = data(7, 3)
    a = x + 1
    want = (np.exp(a - (a * a).sum(0)) * 2).sum()
    np.testing.assert_allclose(f(Tensor(x, device=device)).numpy(), want, rtol=1e-5)


def test_replay_with_debug_2_prints_kernels(device, monkeypatch, capsys):
  f = TinyJit(lambda x: (x * 3).sum())
  for _ in range(2): f(Tensor(data(8), device=device))
  monkeypatch.setenv("DEBUG", "2")
  x = data(8)
  out = f(Tensor(x, device=device))
  assert "***" in capsys.readouterr().err
  np.testing.assert_allclose(out.numpy(), (x * 3).sum(), rtol=1e-5)


def test_copy_between_devices_is_replayed():
  if len(DEVICES) < 2: pytest.skip("needs two devices")
  src, dst = DEVICES
  f = TinyJit(lambda x: x.to(dst) * 2)
  for i in range(4):
    x = data(5)
    out = f(Tensor(x, device=src))
    assert out.device == dst
    np.testing.assert_allclose(out.numpy(), x * 2, rtol=1e-6)


@pytest.mark.parametrize("make_opt", [lambda ps: SGD(ps, lr=0.05, momentum=0.9), lambda ps: Adam(ps, lr=0.01)], ids=["sgd", "adam"])
def test_jitted_optimizer_step_is_bit_identical(device, make_opt):
  """An optimizer step realizes twice (gradients, then updates) and keeps state (momentum, Adam's m, v and step
  counter): the capture holds all of it and replays land in the same buffers."""
  def make():
    params = make_mlp(SIZES, device)
    opt = make_opt(params)
    def step(x, y):
      opt.zero_grad()
      loss = mlp_loss(params, x, y)
      loss.backward()
      Tensor.realize_all(loss, *opt.schedule_step())
      return loss
    return params, step
  (eager, eager_step), (jitted, jit_step) = make(), make()
  jit_step = TinyJit(jit_step)
  for i in range(5):
    x, y = make_batch(SIZES, 16, device, seed=i)
    np.testing.assert_array_equal(jit_step(x, y).numpy(), eager_step(x, y).numpy())
    for a, b in zip(jitted, eager): np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_replayed_assign_keeps_program_order_for_lazy_readers(device):
  """A lazy result built before a replay overwrites what it reads keeps the values it was written with (as in
  eager PyTorch); one built after the replay reads the new values, not a result remembered from the old ones."""
  w = Tensor(np.zeros(3, np.float32), device=device).realize()
  @TinyJit
  def bump(x):
    w.assign(w + x)
    return w
  one = Tensor(np.ones(3, np.float32), device=device)
  for _ in range(3): bump(one)
  doubled = w * 2
  later = doubled + 1  # holds the node `doubled`, realized next from w = 3
  doubled.realize()
  bump(one)  # a replay: w = 4
  np.testing.assert_array_equal(later.numpy(), np.full(3, 7.0, np.float32))  # 2 * 3 + 1: written when w was 3
  np.testing.assert_array_equal((w * 2 + 1).numpy(), np.full(3, 9.0, np.float32))  # written now: w is 4


def test_numpy_array_arguments_compare_by_value(device):
  f = TinyJit(lambda x, table: x * float(table.sum()))
  x = np.ones(2, np.float32)
  for _ in range(3): out = f(Tensor(x, device=device), np.array([1.0, 2.0]))
  np.testing.assert_array_equal(out.numpy(), x * 3)
  with pytest.raises(ValueError, match="non-Tensor"): f(Tensor(x, device=device), np.array([1.0, 5.0]))


def test_jit_zero_turns_the_jit_off(device):
  """JIT=0 (tinygrad's switch, here with Context): every call runs the function and nothing is captured."""
  from teeny import Context
  calls = []
  @TinyJit
  def add(a, b):
    calls.append(1)
    return (a + b).realize()
  with Context(JIT=0):
    for i in range(4): assert add(Tensor([float(i)], device=device), Tensor([float(i)], device=device)).item() == 2 * i
  assert len(calls) == 4 and add.captured is None


def test_a_replay_runs_the_writes_still_pending_into_its_buffers_first(device):
  # a lazy assign into a buffer the recording reads or writes (a parameter reset between steps, a constant the
  # function reads) ran after the replay: the step's update was lost, or the replay read the old value
  w = Tensor(np.ones(2, np.float32), device=device, requires_grad=True)
  opt = SGD([w], lr=0.5)
  @TinyJit
  def step(x):
    opt.zero_grad()
    (w * x).sum().backward()
    opt.step()
    return w.realize()
  ones = Tensor(np.ones(2, np.float32), device=device)
  for _ in range(3): step(ones)
  with Tensor.no_grad(): w.assign(Tensor(np.full(2, 10.0, np.float32), device=device))
  np.testing.assert_array_equal(step(ones).numpy(), [9.5, 9.5])
  np.testing.assert_array_equal(w.numpy(), [9.5, 9.5])
  assert_replays_see_an_assign_to((Tensor.ones(3, device=device) * 2).realize(), device)


def assert_replays_see_an_assign_to(constant: Tensor, device):
  """A jitted x + constant, replayed after constant.assign(7), adds 7."""
  @TinyJit
  def add(x): return (x + constant).realize()
  for _ in range(3): add(Tensor.zeros(3, device=device))
  constant.assign(Tensor.full((3,), 7.0, device=device))
  np.testing.assert_array_equal(add(Tensor.zeros(3, device=device)).numpy(), [7.0, 7.0, 7.0])


def test_what_was_lazy_before_the_capture_is_read_not_baked_in(device):
  # a layer's weights never realized were recomputed by every replay from their old graph, so loading new ones
  # (an assign to a lazy tensor replaces its graph) never reached the jit
  layer = teeny.nn.Linear(3, 2)
  if device != teeny.Device.DEFAULT: layer.weight, layer.bias = layer.weight.to(device), layer.bias.to(device)
  @TinyJit
  def forward(x): return layer(x).realize()
  x = Tensor(np.ones((1, 3), np.float32), device=device)
  for _ in range(3): forward(x)
  teeny.nn.state.load_state_dict(layer, {"weight": Tensor(np.full((2, 3), 0.5, np.float32), device=device),
                                         "bias": Tensor(np.zeros(2, np.float32), device=device)})
  np.testing.assert_array_equal(forward(x).numpy(), [[1.5, 1.5]])
  assert_replays_see_an_assign_to(Tensor.ones(3, device=device) * 2, device)  # (lazy at the capture)
  # lazy at the capture, but stored by the warm-up call in a buffer of its own (as a copy from another device is):
  # the capture read that buffer, not the one the tensor got, and missed the assign
  assert_replays_see_an_assign_to((Tensor.ones(3, device=device) * 2).contiguous(), device)


def test_a_learning_rate_schedule_steps_under_tinyjit_as_without_it(device):
  # StepLR's lazy lr.assign after each step: the replays read the learning rate captured, 0.1, ever after
  from teeny.nn.optim import StepLR
  trajectories = []
  for jit in (False, True):
    w = Tensor(np.zeros(1, np.float32), device=device, requires_grad=True)
    opt = SGD([w], lr=1.0)
    schedule = StepLR(opt, step_size=1, gamma=0.1)
    def step(x):
      opt.zero_grad()
      (w * x).sum().backward()
      opt.step()
      return w.realize()
    run = TinyJit(step) if jit else step
    values = []
    for _ in range(5):
      values.append(run(Tensor(np.ones(1, np.float32), device=device)).item())
      schedule.step()
    trajectories.append(values)
  np.testing.assert_allclose(trajectories[0], [-1.0, -1.1, -1.11, -1.111, -1.1111], rtol=1e-6)
  np.testing.assert_array_equal(trajectories[1], trajectories[0])


def test_constants_that_only_compare_equal_are_not_the_capture(device):
  # 2 and 2.0, True and 1, 0.0 and -0.0 are == but compute different results: a call that passes the other one
  # must not replay the capture (it gave an int32 [2 4 6] for x * 2.0); a NaN is the same NaN
  f = TinyJit(lambda x, c: (x * c).realize())
  ints = Tensor([1, 2, 3], device=device)
  f(ints, 2)
  f(ints, 2)
  assert f(ints, 2).tolist() == [2, 4, 6]
  for other in (2.0, True, [2], np.float32(2.0)):
    with pytest.raises(JitValueError, match="non-Tensor"): f(ints, other)
  g = TinyJit(lambda x, c: (x * c).realize())
  floats = Tensor([1.0, 2.0, 3.0], device=device)
  for _ in range(3): g(floats, 0.0)
  with pytest.raises(JitValueError, match="non-Tensor"): g(floats, -0.0)
  h = TinyJit(lambda x, c: (x * c).realize())
  for _ in range(3): assert np.isnan(h(floats, float("nan")).numpy()).all()


def test_gradients_kept_from_call_to_call_in_grad_are_refused(device):
  # backward() in a jitted function without zeroing: each replay added the new gradient to the .grad of the capture
  # call (1, 3, 4, 5, 6 for eager's 1, 3, 6, 10, 15), silently. Accumulating inside one call still works
  w = Tensor(np.ones(2, np.float32), device=device, requires_grad=True)
  @TinyJit
  def keeps(x):
    (w * x).sum().backward()
    return w.grad.realize()
  keeps(Tensor(np.full(2, 1.0, np.float32), device=device))
  with pytest.raises(RuntimeError, match="zero_grad"): keeps(Tensor(np.full(2, 2.0, np.float32), device=device))
  v = Tensor(np.ones(2, np.float32), device=device, requires_grad=True)
  @TinyJit
  def twice(x):
    v.grad = None
    (v * x).sum().backward()
    (v * x * 2).sum().backward()
    return v.grad.realize()
  for i in range(1, 5): np.testing.assert_allclose(twice(Tensor(np.full(2, float(i), np.float32), device=device)).numpy(), [3.0 * i] * 2)


def test_a_numpy_argument_changed_in_place_is_not_the_capture(device):
  # the signature kept a reference to the array and compared it with itself: w[:] = i replayed the capture's w
  k = TinyJit(lambda x, w: (x * Tensor(w, device=device)).realize())
  w = np.ones(3, np.float32)
  ones = Tensor.ones(3, device=device)
  for i in range(2):
    w[:] = i
    np.testing.assert_array_equal(k(ones, w).numpy(), [float(i)] * 3)
  w[:] = 1  # the capture's values: a replay
  np.testing.assert_array_equal(k(ones, w).numpy(), [1.0] * 3)
  w[:] = 5
  with pytest.raises(JitValueError, match="non-Tensor"): k(ones, w)
  g = TinyJit(lambda x, ws: (x * Tensor(ws[0], device=device)).realize())  # one inside a list
  for _ in range(2): g(ones, [w])
  w[:] = 6
  with pytest.raises(JitValueError, match="non-Tensor"): g(ones, [w])
