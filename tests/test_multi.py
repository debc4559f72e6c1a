"""Several devices in one process (teeny/multi.py, ops/sharding.py): every op family on sharded and replicated
tensors against the same op on one device, gradients included, and the kernels and copies it takes.

The device sets: LLVM with LLVM:1 (and LLVM:2 for the ring allreduce), which every machine has, and the OpenCL
devices where there are two, or OpenCL beside LLVM."""
import numpy as np
import pytest
from teeny import Tensor, nn, GlobalCounters
from teeny.nn.optim import SGD, Adam
from teeny.nn.state import get_parameters
from teeny.multi import layout as multi_layout
from conftest import DEVICES

SETS = [("LLVM", "LLVM:1"), ("LLVM", "LLVM:1", "LLVM:2")]
if "CL" in DEVICES: SETS.append(("CL", "LLVM"))
IDS = ["+".join(s) for s in SETS]


@pytest.fixture(params=SETS, ids=IDS)
def devices(request):
  return request.param


def data(*shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def close(t: Tensor, expected, rtol=1e-5, atol=1e-5):
  np.testing.assert_allclose(t.numpy(), expected, rtol=rtol, atol=atol)


# ---- placement ----

def test_shard_splits_into_blocks_and_numpy_gathers(devices):
  a = data(7, 3)  # 7 rows over 2 or 3 devices: blocks differ by one row
  x = Tensor(a).shard(devices, axis=0)
  assert x.device == devices and x.shape == (7, 3)
  np.testing.assert_equal(x.numpy(), a)
  shards = x.realize().uop.src
  assert [s.shape[0] for s in shards] == [len(r) for r in np.array_split(a, len(devices))]
  assert [Tensor(s, device=d).numpy().tolist() for s, d in zip(shards, devices)] == [r.tolist() for r in np.array_split(a, len(devices))]


def test_replicate_gather_and_move_back(devices):
  a = data(4, 5)
  x = Tensor(a).to(devices)
  assert x.device == devices
  np.testing.assert_equal(x.numpy(), a)
  for d in devices: np.testing.assert_equal(x.shard(devices, 1).to(d).numpy(), a)
  replicated = Tensor(a).shard(devices)  # (no axis: replicated, tinygrad's default, as to(devices))
  assert replicated.device == devices and multi_layout(replicated.uop, devices) is None and multi_layout(x.shard(devices, 1).uop, devices) == 1
  for d in devices: np.testing.assert_equal(replicated.to(d).numpy(), a)
  np.testing.assert_equal(Tensor(a, device=devices).numpy(), a)  # host data on several devices
  np.testing.assert_equal(Tensor.ones(2, 3, device=devices).numpy(), np.ones((2, 3)))
  np.testing.assert_equal(Tensor.arange(5, device=devices).numpy(), np.arange(5))
  empty = Tensor.empty(2, 3, device=devices)
  assert empty.device == devices
  np.testing.assert_equal(empty.assign(Tensor.full((2, 3), 7.0, device=devices)).numpy(), np.full((2, 3), 7.0))


def test_in_place_forms(devices):
  a = data(6, 2)
  x = Tensor(a)
  assert x.shard_(devices, 0) is x and x.device == devices
  np.testing.assert_equal(x.numpy(), a)
  y = Tensor(a)
  y.to_(devices)
  assert y.device == devices
  np.testing.assert_equal((y + x).numpy(), 2 * a)


def test_bad_uses_raise_clearly(devices):
  a = Tensor(data(4, 4))
  with pytest.raises(RuntimeError, match="different devices"): a.shard(devices, 0) + a
  with pytest.raises(ValueError, match="size 1"): Tensor(data(1, 4)).shard(devices, 0)
  with pytest.raises(ValueError, match="twice"): a.shard((devices[0], devices[0]))
  with pytest.raises(RuntimeError, match="different devices"): a.shard(devices, 0) + a.shard(devices[:1] + ("LLVM:3",), 0)


# ---- every op family against one device ----

@pytest.mark.parametrize("axis", [0, 1, None])
def test_elementwise_and_broadcasting(devices, axis):
  a, b, c = data(6, 4), data(6, 4, seed=1), data(4, seed=2)
  x, y = Tensor(a).shard(devices, axis), Tensor(b).shard(devices, axis)
  z = Tensor(c).to(devices)
  close((x * y + 2).exp2().sqrt() - x.maximum(y), np.sqrt(np.exp2(a * b + 2)) - np.maximum(a, b))
  close(x + z, a + c)
  close((x > y).where(x, 3.0), np.where(a > b, a, 3.0))
  close(x.cast("half").float(), a.astype(np.float16).astype(np.float32))


def test_operands_sharded_differently_are_resharded(devices):
  a, b = data(6, 6), data(6, 6, seed=1)
  close(Tensor(a).shard(devices, 0) + Tensor(b).shard(devices, 1), a + b)
  close(Tensor(a).shard(devices, 0) + Tensor(b).to(devices), a + b)
  close(Tensor(a).to(devices) * Tensor(b).shard(devices, 1), a * b)


@pytest.mark.parametrize("axis", [0, 1, None])
def test_reductions(devices, axis):
  a = data(6, 5)
  x = Tensor(a).shard(devices, axis)
  close(x.sum(0), a.sum(0))
  close(x.sum(1), a.sum(1))
  close(x.sum(), a.sum(), rtol=1e-4)
  close(x.max(0), a.max(0))
  close(x.min(), a.min())
  close(x.mean(1, keepdim=True), a.mean(1, keepdims=True))
  close(x.prod(0), a.prod(0), rtol=1e-4)
  close(x.softmax(1), np.exp(a) / np.exp(a).sum(1, keepdims=True))
  close(x.softmax(0), np.exp(a) / np.exp(a).sum(0, keepdims=True))
  np.testing.assert_equal(x.argmax(0).numpy(), a.argmax(0))


def test_replicas_of_an_allreduce_are_equal_bit_for_bit(devices):
  a = data(64, 33)
  total = Tensor(a).shard(devices, 0).sum(0).contiguous().realize()
  shards = [Tensor(s, device=d).numpy() for s, d in zip(total.uop.src, devices)]
  for s in shards[1:]: np.testing.assert_array_equal(s, shards[0])
  close(total, a.sum(0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("axis", [0, 1])
def test_movement(devices, axis):
  a = data(6, 4, 3)
  x = Tensor(a).shard(devices, axis)
  np.testing.assert_equal(x.reshape(6, 12).numpy(), a.reshape(6, 12))
  np.testing.assert_equal(x.reshape(3, 2, 4, 3).numpy(), a.reshape(3, 2, 4, 3))
  np.testing.assert_equal(x.reshape(72).numpy(), a.reshape(72))
  np.testing.assert_equal(x.reshape(4, 18).numpy(), a.reshape(4, 18))  # blocks cut: gathered first
  np.testing.assert_equal(x.permute(2, 0, 1).numpy(), a.transpose(2, 0, 1))
  np.testing.assert_equal(x[:, :, :1].expand(6, 4, 5).numpy(), np.broadcast_to(a[:, :, :1], (6, 4, 5)))
  np.testing.assert_equal(x.pad(((1, 2), (2, 0), (0, 1))).numpy(), np.pad(a, ((1, 2), (2, 0), (0, 1))))
  np.testing.assert_equal(x[1:5, 1:3].numpy(), a[1:5, 1:3])
  np.testing.assert_equal(x[4:].numpy(), a[4:])  # shards left empty: gathered first
  np.testing.assert_equal(x.flip(axis).numpy(), np.flip(a, axis))
  np.testing.assert_equal(x.flip((0, 1, 2)).numpy(), a[::-1, ::-1, ::-1])
  close((x.pad(((1, 1), (1, 1), (0, 0))) + 1).sum(axis), (np.pad(a, ((1, 1), (1, 1), (0, 0))) + 1).sum(axis), rtol=1e-4)


def test_negative_zero_survives_a_gather(devices):
  x = Tensor(np.array([-0.0, 1.0, -0.0, 2.0], np.float32)).shard(devices, 0)
  assert np.signbit(x.to(devices[0]).numpy()).tolist() == [True, False, True, False]


@pytest.mark.parametrize("layout", ["batch", "weights_out", "weights_in"])
def test_matmul(devices, layout):
  a, w = data(8, 6), data(6, 4, seed=1)
  if layout == "batch": x, y = Tensor(a).shard(devices, 0), Tensor(w).to(devices)
  elif layout == "weights_out": x, y = Tensor(a).to(devices), Tensor(w).shard(devices, 1)
  else: x, y = Tensor(a).shard(devices, 1), Tensor(w).shard(devices, 0)  # the contraction split: an allreduce
  close(x @ y, a @ w, rtol=1e-4)
  close((x @ y).relu().sum(1), np.maximum(a @ w, 0).sum(1), rtol=1e-4)


def test_conv_and_pooling_with_a_sharded_batch(devices):
  a, w = data(4, 2, 6, 6), data(3, 2, 3, 3, seed=1)
  x = Tensor(a).shard(devices, 0)
  ref = Tensor(a).conv2d(Tensor(w), padding=1).max_pool2d().numpy()
  close(x.conv2d(Tensor(w).to(devices), padding=1).max_pool2d(), ref, rtol=1e-4)


def test_cat_stack_and_indexing(devices):
  a, b = data(4, 3), data(4, 3, seed=1)
  x, y = Tensor(a).shard(devices, 0), Tensor(b).shard(devices, 0)
  np.testing.assert_equal(x.cat(y, dim=1).numpy(), np.concatenate([a, b], 1))
  np.testing.assert_equal(x.cat(y, dim=0).numpy(), np.concatenate([a, b], 0))
  np.testing.assert_equal(Tensor.stack(x, y).numpy(), np.stack([a, b]))
  np.testing.assert_equal(x[::-1, 1].numpy(), a[::-1, 1])
  idx = Tensor(np.array([3, 0, 2], np.int32)).to(devices)
  np.testing.assert_equal(x[idx].numpy(), a[[3, 0, 2]])


# ---- gradients ----

def grads_on_one_device(a, w, b, fn):
  x, wt, bt = Tensor(a), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
  fn(x, wt, bt).backward()
  return wt.grad.numpy(), bt.grad.numpy()


def mlp_loss(x, w, b): return ((x @ w + b).tanh() ** 2).mean()


@pytest.mark.parametrize("layout", ["data", "weights"])
def test_gradients_are_laid_out_like_their_parameters(devices, layout):
  a, w, b = data(8, 6), data(6, 4, seed=1), data(4, seed=2)
  x, wt, bt = Tensor(a), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
  if layout == "data": x, wt, bt = x.shard(devices, 0), wt.to_(devices), bt.to_(devices)
  else: x, wt, bt = x.to(devices), wt.shard_(devices, 1), bt.shard_(devices, 0)
  mlp_loss(x, wt, bt).backward()
  gw, gb = grads_on_one_device(a, w, b, mlp_loss)
  assert wt.grad.device == devices and bt.grad.device == devices
  close(wt.grad, gw, rtol=1e-4)
  close(bt.grad, gb, rtol=1e-4)
  if layout == "weights":  # (the grads are detached views: their own copies show the layout)
    assert wt.grad.contiguous().realize().uop.arg == (devices, 1) and bt.grad.contiguous().realize().uop.arg == (devices, 0)


def test_gradient_through_shard_and_gather(devices):
  a = data(6, 3)
  x = Tensor(a, requires_grad=True)
  (x.shard(devices, 0).to(devices[-1]) * Tensor(a, device=devices[-1])).sum().backward()
  close(x.grad, a)
  y = Tensor(a, requires_grad=True)
  (y.to(devices).exp() * 2).sum().backward()
  close(y.grad, 2 * np.exp(a), rtol=1e-5)


def test_training_data_parallel_matches_one_device(devices):
  rng = np.random.default_rng(0)
  xs, ys = rng.standard_normal((32, 10)).astype(np.float32), rng.integers(0, 3, 32).astype(np.int32)

  def train(place):
    Tensor.manual_seed(1)
    # (no bias before the BatchNorm: it cancels, its gradient is rounding noise, which Adam would amplify)
    model = [nn.Linear(10, 16, bias=False), nn.BatchNorm(16), nn.Linear(16, 3)]
    for p in get_parameters(model) + [model[1].running_mean, model[1].running_var]: place(p, None)
    opt = Adam(get_parameters(model), lr=0.01)
    with Tensor.train():
      for _ in range(3):
        x, y = place(Tensor(xs), 0), place(Tensor(ys), 0)
        opt.zero_grad()
        loss = model[2](model[1](model[0](x)).relu()).sparse_categorical_crossentropy(y)
        loss.backward()
        opt.step()
    return [p.numpy() for p in get_parameters(model)] + [model[1].running_mean.numpy(), loss.numpy()]

  one = train(lambda t, axis: t)
  many = train(lambda t, axis: t.to_(devices) if axis is None else t.shard(devices, axis))
  for p, q in zip(one, many): np.testing.assert_allclose(q, p, rtol=1e-4, atol=1e-5)


def test_sgd_on_sharded_weights_keeps_them_sharded(devices):
  w = Tensor(data(6, 4), requires_grad=True).shard_(devices, 1)
  opt = SGD([w], lr=0.1, momentum=0.9)
  for _ in range(2):
    opt.zero_grad()
    (Tensor(data(5, 6)).to(devices) @ w).square().sum().backward()
    opt.step()
  assert w.uop.arg == (devices, 1)
  w1 = Tensor(data(6, 4), requires_grad=True)
  opt1 = SGD([w1], lr=0.1, momentum=0.9)
  for _ in range(2):
    opt1.zero_grad()
    (Tensor(data(5, 6)) @ w1).square().sum().backward()
    opt1.step()
  close(w, w1.numpy(), rtol=1e-4)


# ---- what it costs ----

def test_elementwise_runs_one_kernel_per_device_and_no_copies():
  devices = ("LLVM", "LLVM:1")
  x, y = Tensor(data(8, 4)).shard(devices, 0).realize(), Tensor(data(8, 4, seed=1)).shard(devices, 0).realize()
  GlobalCounters.reset()
  ((x * y).exp() + 1).realize()
  assert GlobalCounters.kernel_count == 2 and GlobalCounters.copies == 0


def test_sum_over_the_sharded_axis_is_local_sums_and_an_allreduce():
  devices = ("LLVM", "LLVM:1")
  x = Tensor(data(8, 4)).shard(devices, 0).realize()
  GlobalCounters.reset()
  x.sum(0).realize()
  # a partial sum on each device, each copied to the other, and on each device one add of the two
  assert GlobalCounters.kernel_count == 4 and GlobalCounters.copies == 2


# ---- TinyJit ----

def test_tinyjit_replays_sharded_inputs_and_outputs(devices):
  from teeny import TinyJit

  def step(x, w):
    h = (x @ w).relu()  # x sharded along the batch, w replicated
    return h * 2, h.sum(0), h.sum()  # sharded, and two allreduces (replicated)

  jitted, w = TinyJit(step), Tensor(data(5, 3, seed=9)).to(devices)
  held = []
  for i in range(5):
    a = data(8, 5, seed=i)
    outs = jitted(Tensor(a).shard(devices, 0), w)
    h = np.maximum(a @ w.numpy(), 0)
    for out, expected in zip(outs, (h * 2, h.sum(0), h.sum())): close(out, expected, rtol=1e-4)
    assert outs[0].uop.arg == (devices, 0) and outs[1].device == outs[2].device == devices
    held.append((outs[0], h * 2))
  assert jitted.captured is not None and any(launch.runner is None for launch in jitted.captured.jit_cache)  # (copies)
  for out, expected in held: close(out, expected, rtol=1e-4)  # each replay's results are its own buffers


def test_tinyjit_training_step_on_sharded_batches_matches_eager(devices):
  from teeny import TinyJit
  rng = np.random.default_rng(0)
  batches = [(rng.standard_normal((16, 10)).astype(np.float32), rng.integers(0, 3, 16).astype(np.int32)) for _ in range(5)]

  def train(jit: bool):
    Tensor.manual_seed(1)
    model = [nn.Linear(10, 16), nn.Linear(16, 3)]
    for p in get_parameters(model): p.to_(devices)
    opt = Adam(get_parameters(model), lr=0.01)

    def step(x, y):
      opt.zero_grad()
      loss = model[1](model[0](x).relu()).sparse_categorical_crossentropy(y)
      loss.backward()
      opt.step()
      return loss.realize()
    run = TinyJit(step) if jit else step
    with Tensor.train():
      losses = [run(Tensor(x).shard(devices, 0), Tensor(y).shard(devices, 0)).item() for x, y in batches]
    if jit: assert run.captured is not None
    return losses, [p.numpy() for p in get_parameters(model)]

  (eager_losses, eager), (jit_losses, jitted) = train(False), train(True)
  np.testing.assert_allclose(jit_losses, eager_losses, rtol=1e-6)
  for p, q in zip(eager, jitted): np.testing.assert_allclose(q, p, rtol=1e-6, atol=1e-7)


def test_tinyjit_refuses_another_split_clearly():
  from teeny import TinyJit, JitError
  devices = ("LLVM", "LLVM:1")
  jitted = TinyJit(lambda t: (t * 2).realize())
  for _ in range(2): jitted(Tensor(data(4, 4)).shard(devices, 0))
  with pytest.raises(JitError, match="shards along axis 1 of shapes"): jitted(Tensor(data(4, 4)).shard(devices, 1))
  with pytest.raises(JitError, match="replicas"): jitted(Tensor(data(4, 4)).to(devices))
  with pytest.raises(JitError, match="is on LLVM, captured on"): jitted(Tensor(data(4, 4), device="LLVM"))  # (not the default device: CL where a GPU is)
  np.testing.assert_equal(jitted(Tensor(data(4, 4, seed=3)).shard(devices, 0)).numpy(), 2 * data(4, 4, seed=3))


def test_mnist_on_two_devices_trains_the_weights_of_one(tmp_path):
  """examples/mnist.py: 20 steps on one device and data-parallel on LLVM and LLVM:1 (each batch sharded, the
  weights replicated), from the same seed: the saved weights agree to 1e-5."""
  import os, subprocess, sys
  from teeny.nn.state import safe_load
  script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "mnist.py")
  common = [sys.executable, script, "--synthetic", "--steps", "20", "--device", "LLVM"]
  for name, extra in (("one", []), ("two", ["--devices", "LLVM,LLVM:1"])):
    done = subprocess.run(common + extra + ["--save", str(tmp_path / f"{name}.safetensors")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
  assert "on LLVM, LLVM:1" in done.stdout
  one, two = safe_load(tmp_path / "one.safetensors"), safe_load(tmp_path / "two.safetensors")
  assert set(one) == set(two)
  for name, t in one.items(): np.testing.assert_allclose(two[name].numpy(), t.numpy(), atol=1e-5, rtol=0, err_msg=name)


def test_writes_to_sharded_tensors(devices):
  a = data(4, 3)
  x = Tensor(a).shard(devices, 0).realize()
  buffers, reader = x.uop.src, x * 1  # reader: computed from the values before the writes
  view = x[1:3]
  x[1:3, 0] = 100.0  # through a view: x's graph is replaced, new buffers hold the result
  b = a.copy()
  b[1:3, 0] = 100.0
  np.testing.assert_equal(x.numpy(), b)
  np.testing.assert_equal(view.numpy(), b[1:3])
  buffers = x.uop.src
  x.assign(Tensor(a + 1).shard(devices, 0)).realize()  # the whole tensor: in place, each device its block
  assert x.uop.src == buffers
  x += Tensor(a).to(devices)  # a replicated value is sliced to the blocks
  np.testing.assert_equal(x.numpy(), (a + 1) + a)
  np.testing.assert_equal(reader.numpy(), a)


def test_backward_after_reading_a_sharded_result_reaches_the_weights(devices):
  # a realized result that requires grad keeps its graph: a sharded one too (its node is a MULTI of buffers), so
  # printing the loss before backward() doesn't leave the weights without gradient (and the optimizer idle)
  w = Tensor(np.ones((4, 3), np.float32), requires_grad=True).shard_(devices, 0)
  loss = (w * w).sum()
  assert loss.item() == 12.0
  loss.backward()
  close(w.grad, np.full((4, 3), 2.0))
  v = Tensor(np.ones((4, 3), np.float32), requires_grad=True).to_(devices)
  hidden = (v * 3).realize()
  (hidden * hidden).sum().backward()
  close(v.grad, np.full((4, 3), 18.0))
  w = Tensor(np.ones((4, 3), np.float32), requires_grad=True).shard_(devices, 0)
  opt, losses = SGD([w], lr=0.1), []
  for _ in range(3):
    opt.zero_grad()
    loss = (w * w).sum()
    losses.append(loss.item())
    loss.backward()
    opt.step()
  np.testing.assert_allclose(losses, [12.0, 7.68, 4.9152], rtol=1e-6)


def test_ops_with_a_gradient_rule_keep_their_values_layout(devices):
  # conv, pooling and scatter values carry their inputs beside them for a gradient rule (a DETACH): those inputs'
  # layouts (a weight sharded on its input channels, an index on the scatter axis) are not the value's
  x, w = data(2, 4, 6, 6), data(3, 4, 3, 3, seed=1)
  for xs, ws in ((Tensor(x).shard(devices, 1), Tensor(w).shard(devices, 1)), (Tensor(x).to(devices), Tensor(w).shard(devices, 2))):
    out = xs.conv2d(ws)
    assert out.shape == (2, 3, 4, 4)
    close(out, Tensor(x).conv2d(Tensor(w)).numpy(), rtol=1e-4, atol=1e-4)
  grid = np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6)
  close(Tensor(grid).shard(devices, 2).max_pool2d(3, 1), Tensor(grid).max_pool2d(3, 1).numpy())
  close(Tensor(grid).shard(devices, 3).avg_pool2d(3, 1), Tensor(grid).avg_pool2d(3, 1).numpy())
  idx = np.array([[0, 2, 4], [1, 3, 0], [4, 4, 1], [2, 2, 2]], np.int32)
  scattered = Tensor.zeros(4, 5).to(devices).scatter(1, Tensor(idx).shard(devices, 1), Tensor.ones(4, 3).to(devices))
  close(scattered, Tensor.zeros(4, 5).scatter(1, Tensor(idx), Tensor.ones(4, 3)).numpy())


def test_half_sums_over_the_sharded_axis_round_once_like_one_device(devices):
  a = np.random.default_rng(3).standard_normal((7, 5)).astype(np.float16)  # cancelling values: half partials lose bits
  for dtype_name in ("float16", "bfloat16"):
    x = Tensor(a).cast(dtype_name)
    for out, want in ((x.shard(devices, 0).sum(0), x.sum(0)), (x.shard(devices, 0).cumsum(0), x.cumsum(0)),
                      (x.shard(devices, 1).mean(1), x.mean(1))):
      np.testing.assert_array_equal(out.float().numpy(), want.float().numpy())


def test_a_copy_to_one_device_of_a_replicated_tensor_keeps_its_values(devices):
  """x.to(one of x's devices) of a realized replicated x was that device's replica itself: a later x += 1 showed in
  it (single-device tensors copied). It is a copy of its own now."""
  a = np.arange(4, dtype=np.float32)
  x = Tensor(a).to(devices).realize()
  one, some = x.to(devices[1]), x.to(devices[:2])
  x += 1
  x.realize()
  np.testing.assert_array_equal(one.numpy(), a)
  if len(devices) > 2: np.testing.assert_array_equal(some.numpy(), a)  # (to() all of x's devices is x itself, as in PyTorch)
  np.testing.assert_array_equal(x.numpy(), a + 1)


def test_to_the_devices_a_tensor_is_sharded_over_replicates_it(devices):
  """x.to(devices) of x sharded over those devices returned x, still sharded: README says to() replicates."""
  from teeny import multi
  a = data(6, 2)
  x = Tensor(a).shard(devices, 0)
  for r in (x.to(devices), x.shard(devices, None)):
    assert r.device == devices and multi.layout(r.uop, devices) is None
    for shard in r.realize().uop.src: assert shard.shape == (6, 2)  # each device holds all of it
    np.testing.assert_array_equal(r.numpy(), a)
  replicated = Tensor(a).to(devices)
  assert replicated.to(devices) is replicated


def test_backward_of_a_sharded_result_takes_a_gradient_on_one_device(devices):
  """y.backward(g) with y sharded and g on one device raised an internal copy error: g is laid out as y is."""
  a = data(6, 3)
  for axis in (0, 1, None):
    x = Tensor(a, requires_grad=True)
    y = x.shard(devices, axis) * 2
    y.backward(Tensor(a))
    close(x.grad, 2 * a)


def test_tinyjit_refuses_a_write_through_a_view_of_a_sharded_tensor(devices):
  """st[1:3] += v on a sharded or replicated st writes new buffers, which replays did not follow: every call after
  the capture lost its write (st[1] 2 for 5). Refused at the capture, with what to do instead."""
  from teeny import TinyJit
  for layout in (0, None):
    state = Tensor.zeros(6, 3).shard(devices, layout).contiguous().realize()
    @TinyJit
    def step(v):
      state[1:3] += v
      return (state.sum(0) * 1).realize()
    step(Tensor.ones(2, 3).shard(devices, None))
    with pytest.raises(RuntimeError, match="TinyJit can't capture a write through a view"):
      step(Tensor.ones(2, 3).shard(devices, None))


def test_shard_argument_errors_name_the_problem(devices):
  """shard("LLVM") split the string into devices 'L', 'L', ... and a 0-d tensor raised an internal IndexError."""
  with pytest.raises(TypeError, match="tuple of devices"): Tensor.ones(4).shard(devices[0], 0)
  with pytest.raises(ValueError, match="0-d"): Tensor(3.0).shard(devices, 0)
  assert Tensor(3.0).shard(devices, None).numpy() == 3.0


@pytest.mark.parametrize("make", [lambda d: Tensor(3.0).shard(d, None), lambda d: Tensor.ones(4).shard(d, 0),
                                  lambda d: Tensor.arange(12).reshape(4, 3).shard(d, 1)], ids=["replicated", "rows", "columns"])
def test_each_kernel_of_a_sharded_constant_reads_its_own_device(devices, make):
  """A constant made contiguous and sharded is one node under every shard: it was computed on one device and the
  others' kernels read its buffer there (on CL beside LLVM, an LLVM address handed to an OpenCL kernel)."""
  from teeny import multi
  from teeny.schedule import create_schedule
  x = make(devices)
  items, _, _ = create_schedule(multi.per_device(x.uop, devices), devices)
  for item in items:
    if item.ast.op.name != "COPY": assert len({b.device for b in item.bufs}) == 1, [b.device for b in item.bufs]
  expected = make(("LLVM",)).numpy()
  np.testing.assert_equal(x.numpy(), expected)


# ---- program order: a lazy reader of a sharded tensor keeps the values it read ----

def _assign_twice(x):
  x.assign(x + 1)
  reader = x * 1
  x.assign(x * 10)
  return reader


def _add_in_place_three_times(x):
  x += 1
  x += 1
  reader = x * 1
  x *= 10
  return reader


def _index_writes(x):
  idx = Tensor(np.array([0, 2], np.int32))
  if type(x.device) is tuple: idx = idx.to(x.device)
  x[idx] = 5.0
  x[idx] = 7.0
  reader = x * 1
  x[idx] = 9.0
  return reader


def _view_read_between_writes(x):
  x.assign(x + 1)
  reader = x[1:3] * 2
  x.assign(x * 10)
  return reader


@pytest.mark.parametrize("writes", [_assign_twice, _add_in_place_three_times, _index_writes, _view_read_between_writes])
@pytest.mark.parametrize("layout", [0, None])
def test_a_lazy_reader_keeps_the_values_before_a_later_write(devices, layout, writes):
  """A write into a sharded tensor runs as one write per device, and only those were marked realized: once it ran,
  a lazy reader of it still looked pending to the next write, which ran first (x realized before the reader gave
  [20, 30, 40, 50] for [2, 3, 4, 5])."""
  a = np.arange(1, 7, dtype=np.float32)
  x = Tensor(a).contiguous().realize()
  reader = writes(x)
  expected_x, expected_reader = x.numpy(), reader.numpy()
  x = Tensor(a).shard(devices, layout).contiguous().realize()
  reader = writes(x)
  np.testing.assert_array_equal(x.numpy(), expected_x)  # (x first: the write after the reader runs first)
  np.testing.assert_array_equal(reader.numpy(), expected_reader)


# ---- autograd through a no_grad write into a parameter moved by to_() or shard_() ----

def _rows_zeroed(w):
  with Tensor.no_grad(): w[1] = 0.0


def _view_zeroed(w):
  with Tensor.no_grad(): w[0:2].zero_()


def _row_added_to(w):
  with Tensor.no_grad(): w[1] += 1


def _three_writes(w):
  with Tensor.no_grad():
    w[1] = 0.0
    w[:, 1] = 4.0
    w[2, 0] = 5.0


def _moved(w, place):
  if place == "one device": return w.to_("LLVM:1")
  devices, layout = place
  return w.shard_(devices, layout) if layout is not None else w.to_(devices)


@pytest.mark.parametrize("write", [_rows_zeroed, _view_zeroed, _row_added_to, _three_writes])
@pytest.mark.parametrize("layout", ["one device", 0, 1, None])
def test_a_no_grad_write_into_a_moved_parameter_leaves_its_gradient_single(devices, layout, write):
  """A write through a view of a parameter that to_()/shard_() left lazy (a sharded one always writes so) replaces
  its node by where(covered, new, old), and `old` is also the node graphs built before hold for the leaf: the
  gradient of every element the write left reached the leaf twice ([[6, 6], [3, 3], [6, 6]] for 3, k writes k + 1
  times), and SGD took steps that much larger. The leaf's new values are its own: no gradient flows to `old`."""
  place = layout if layout == "one device" else (devices, layout)
  def grad_and_values(place):
    w = Tensor(np.arange(1, 13, dtype=np.float32).reshape(4, 3), requires_grad=True)
    if place is not None: _moved(w, place)
    # built before the write: the leaf's old node, which gets its gradient too (not before several writes: on one
    # device, the first write runs in place before the next and backward() through it raises, a known limitation)
    before = (w * 2).sum() if write is not _three_writes else 0.0
    write(w)
    ((w * w * 3).sum() + before).backward()
    return w.grad.numpy(), w.numpy()
  expected_grad, expected_w = grad_and_values(None)
  grad, w = grad_and_values(place)
  np.testing.assert_array_equal(w, expected_w)
  np.testing.assert_allclose(grad, expected_grad, rtol=1e-6)


def test_sgd_steps_after_a_no_grad_write_into_a_sharded_parameter_match_one_device(devices):
  """An embedding's padding row zeroed before every step: the other rows took steps twice as large."""
  def train(place):
    w = Tensor(np.ones((4, 2), np.float32), requires_grad=True)
    if place is not None: w.shard_(devices, place)
    opt = SGD([w], lr=0.03)
    for _ in range(4):
      with Tensor.no_grad(): w[1] = 0.0
      opt.zero_grad()
      (w * w * 3 + w).sum().backward()
      opt.step()
    return w.numpy()
  np.testing.assert_allclose(train(0), train(None), rtol=1e-6)


def test_expanding_the_sharded_axis_of_one_device():
  """Sharded over one device, the sharded axis may have size 1, and expanding it was dropped: shard(("LLVM",), 0)
  of a (1, 4) tensor expanded to (3, 4) gave a (1, 4) array (and x + ones(3, 1) a (1, 4) result)."""
  one = ("LLVM",)
  a, b = np.arange(1, 5, dtype=np.float32).reshape(1, 4), data(3, 4)
  x = Tensor(a).shard(one, 0)
  np.testing.assert_array_equal(x.expand(3, 4).numpy(), np.broadcast_to(a, (3, 4)))
  out = x + Tensor(b).shard(one, 0)
  close(out, a + b)
  assert out.shape == (3, 4)
  close(x.reshape(1, 1, 4).expand(2, 3, 4).sum(1), np.broadcast_to(a, (2, 3, 4)).sum(1))
  w = Tensor(a, requires_grad=True).shard_(one, 0)
  (w.expand(3, 4) * Tensor(b).to(one)).sum().backward()
  close(w.grad, b.sum(0, keepdims=True))


@pytest.mark.parametrize("move", ["to one device", "replicate", "shard 0", "shard 1"])
def test_a_view_made_before_an_in_place_move_follows_its_base(devices, move):
  """A view keeps its device attribute while its node is rebuilt from its base's: after x.shard_(devices, 0) or
  x.to_(devices), v = x[1:3] made before read as a tensor on one device computed on several and raised
  ("a tensor on one device computed on several"); after x.to_("LLVM:1") it said LLVM. A view's device is its base's."""
  a = np.arange(12, dtype=np.float32).reshape(4, 3)
  x = Tensor(a).contiguous().realize()
  rows, column = x[1:3], x.T[0]
  if move == "to one device": x.to_(devices[1])
  elif move == "replicate": x.to_(devices)
  else: x.shard_(devices, int(move[-1]))
  assert rows.device == x.device and column.device == x.device
  np.testing.assert_array_equal(rows.numpy(), a[1:3])
  rows[0] = 100.0  # writes through to x, and x's other views see it
  column += 1
  b = a.copy()
  b[1] = 100.0
  b[:, 0] += 1
  np.testing.assert_array_equal(x.numpy(), b)
  np.testing.assert_array_equal((rows + Tensor.ones(2, 3, device=x.device)).numpy(), b[1:3] + 1)
  w = Tensor(a, requires_grad=True)
  row = w[1]
  w.to_(x.device)
  (row * row).sum().backward()
  expected = np.zeros_like(a)
  expected[1] = 2 * a[1]
  np.testing.assert_array_equal(w.grad.numpy(), expected)
