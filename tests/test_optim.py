"""Optimizers against numpy implementations of PyTorch's update rules, on every device.

The model is two linear layers, out = (x @ w1 + c1) @ w2 + c2, with a mean squared error loss. Its gradient is
known in closed form, so the numpy reference (float64) computes its own gradients from its own parameters at
every step; teeny gets them from autograd in float32. w1's gradient depends on w2, so an update that read w2
after w2 was overwritten would show up here."""
import math
import numpy as np
import pytest
from teeny import Tensor, GlobalCounters, Device, TinyJit, dtypes
from teeny.nn.optim import SGD, Adam, AdamW, LAMB, Optimizer

rng = np.random.default_rng(0)
X, Y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
INIT = {"w1": rng.normal(size=(3, 4)), "c1": rng.normal(size=(4,)), "w2": rng.normal(size=(4, 2)), "c2": rng.normal(size=(2,))}


def closed_form_grads(p: dict) -> dict:
  h = X @ p["w1"] + p["c1"]
  r = h @ p["w2"] + p["c2"] - Y
  dr = 2 * r / r.size
  dh = dr @ p["w2"].T
  return {"w1": X.T @ dh, "c1": dh.sum(0), "w2": h.T @ dr, "c2": dr.sum(0)}


def ref_sgd(steps, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
  """torch.optim.SGD (dampening 0): the first step's momentum buffer is the gradient itself."""
  p = {k: v.copy() for k, v in INIT.items()}
  buf = {}
  for _ in range(steps):
    g = closed_form_grads(p)
    for k in p:
      d = g[k] + weight_decay * p[k]
      if momentum:
        buf[k] = d.copy() if k not in buf else momentum * buf[k] + d
        d = d + momentum * buf[k] if nesterov else buf[k]
      p[k] = p[k] - lr * d
  return p


def ref_adam(steps, lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False):
  """torch.optim.Adam (L2 decay added to the gradient) or torch.optim.AdamW (decoupled decay)."""
  p = {k: v.copy() for k, v in INIT.items()}
  m = {k: np.zeros_like(v) for k, v in p.items()}
  v = {k: np.zeros_like(x) for k, x in p.items()}
  for t in range(1, steps + 1):
    g = closed_form_grads(p)
    for k in p:
      d = g[k] if decoupled else g[k] + weight_decay * p[k]
      if decoupled: p[k] = p[k] * (1 - lr * weight_decay)
      m[k] = m[k] + (d - m[k]) * (1 - b1)
      v[k] = v[k] * b2 + (1 - b2) * d * d
      step_size = lr / (1 - b1 ** t)
      denom = np.sqrt(v[k]) / math.sqrt(1 - b2 ** t) + eps
      p[k] = p[k] - step_size * m[k] / denom
  return p


def ref_lamb(steps, lr, b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.0):
  """LAMB (You et al. 2019): Adam's bias-corrected direction plus decoupled decay, scaled by ||p|| / ||update||."""
  p = {k: v.copy() for k, v in INIT.items()}
  m = {k: np.zeros_like(v) for k, v in p.items()}
  v = {k: np.zeros_like(x) for k, x in p.items()}
  for t in range(1, steps + 1):
    g = closed_form_grads(p)
    for k in p:
      m[k] = b1 * m[k] + (1 - b1) * g[k]
      v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
      up = (m[k] / (1 - b1 ** t)) / (np.sqrt(v[k] / (1 - b2 ** t)) + eps) + weight_decay * p[k]
      r1, r2 = np.linalg.norm(p[k]), np.linalg.norm(up)
      p[k] = p[k] - lr * (r1 / r2 if r1 > 0 and r2 > 0 else 1.0) * up
  return p


CASES = {
  "sgd": (lambda ps: SGD(ps, lr=0.1), lambda: ref_sgd(3, 0.1)),
  "sgd_momentum": (lambda ps: SGD(ps, lr=0.1, momentum=0.9), lambda: ref_sgd(3, 0.1, 0.9)),
  "sgd_nesterov_wd": (lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True),
                      lambda: ref_sgd(3, 0.1, 0.9, 0.01, True)),
  "adam": (lambda ps: Adam(ps, lr=0.01), lambda: ref_adam(3, 0.01)),
  "adam_l2": (lambda ps: Adam(ps, lr=0.01, b1=0.8, b2=0.99, weight_decay=0.1), lambda: ref_adam(3, 0.01, 0.8, 0.99, weight_decay=0.1)),
  "adamw": (lambda ps: AdamW(ps, lr=0.01), lambda: ref_adam(3, 0.01, weight_decay=0.01, decoupled=True)),
  "adamw_strong": (lambda ps: AdamW(ps, lr=0.05, weight_decay=0.5, eps=1e-3), lambda: ref_adam(3, 0.05, eps=1e-3, weight_decay=0.5, decoupled=True)),
  "lamb": (lambda ps: LAMB(ps, lr=0.01, weight_decay=0.1), lambda: ref_lamb(3, 0.01, weight_decay=0.1)),
}


def make_params(device, dtype=np.float32) -> dict:
  return {k: Tensor(v.astype(dtype), device=device) for k, v in INIT.items()}


def model_loss(ps: dict, device, dtype=np.float32) -> Tensor:
  x, y = Tensor(X.astype(dtype), device=device), Tensor(Y.astype(dtype), device=device)
  return (((x @ ps["w1"] + ps["c1"]) @ ps["w2"] + ps["c2"] - y) ** 2).mean()


def train(ps: dict, opt: Optimizer, device, steps=3):
  for _ in range(steps):
    opt.zero_grad()
    model_loss(ps, device).backward()
    opt.step()
  return {k: v.numpy() for k, v in ps.items()}


DEVICES = Device.available()
CHEAP = "LLVM" if "LLVM" in DEVICES else DEVICES[0]
EVERYWHERE = ("sgd_nesterov_wd", "adam", "adamw")  # the rest run on the device that compiles fastest


@pytest.mark.parametrize("device,case", [pytest.param(d, c, id=f"{d}-{c}") for c in CASES for d in (DEVICES if c in EVERYWHERE else [CHEAP])])
def test_three_steps_match_pytorch_rules(device, case):
  make, ref = CASES[case]
  ps = make_params(device)
  got, want = train(ps, make(list(ps.values())), device), ref()
  for k in want:
    # float32 parameters of size ~1 against a float64 reference: a few float32 ulps
    np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-6, err_msg=f"{case}: {k}")


@pytest.mark.parametrize("case", ["sgd_nesterov_wd", "adam_l2", "adamw_strong", "lamb"])
def test_float64_parameters_are_updated_in_float64(case):
  # the learning rate was a float32 tensor and Adam's bias corrections float32: float64 parameters drifted 1e-8 to
  # 4e-5 from PyTorch's (SGD, lr 0.1, one step from 1 with gradient 1: 0.89999999850988)
  make, ref = CASES[case]
  ps = make_params(CHEAP, np.float64)
  opt = make(list(ps.values()))
  for _ in range(3):
    opt.zero_grad()
    model_loss(ps, CHEAP, np.float64).backward()
    opt.step()
  want = ref()
  for k in want: np.testing.assert_allclose(ps[k].numpy(), want[k], rtol=1e-12, atol=1e-13, err_msg=f"{case}: {k}")


def test_sgd_refuses_pytorchs_positional_dampening_form():
  """SGD(ps, 0.1, 0.9, 0.0, 0.01) is PyTorch's dampening=0, weight_decay=0.01; teeny's arguments after momentum are
  tinygrad's (weight_decay, nesterov): it ran with nesterov=0.01 (on) and no weight decay, silently."""
  w = Tensor([1.0, 2.0], requires_grad=True)
  with pytest.raises(TypeError, match="by keyword"): SGD([w], 0.1, 0.9, 0.0, 0.01)
  assert SGD([w], 0.1, 0.9, 0.0, True).nesterov is True  # (tinygrad's positional form stays)


def test_lamb_takes_decoupled_by_keyword():
  """tinygrad's LAMB takes device eighth: LAMB(ps, lr, b1, b2, eps, wd, False, None) turned teeny's decoupled weight
  decay into Adam's L2 decay, silently. decoupled is keyword-only."""
  w = Tensor([1.0, 2.0], requires_grad=True)
  with pytest.raises(TypeError, match="positional"): LAMB([w], 0.01, 0.9, 0.999, 1e-6, 0.1, False, None)
  assert LAMB([w], 0.01, 0.9, 0.999, 1e-6, 0.1, False, decoupled=False).decoupled is False
  with pytest.raises(TypeError, match="device"): Adam([w], 0.001, 0.9, 0.999, 1e-8, "LLVM")  # (tinygrad's sixth: device)


def test_parameters_moved(device):
  """The reference comparison above would pass for an optimizer that did nothing if the reference did nothing."""
  ps = make_params(device)
  got = train(ps, Adam(list(ps.values()), lr=0.01), device)
  for k in got: assert np.abs(got[k] - INIT[k]).min() > 1e-3


# one kernel per tensor the step assigns: every parameter, its momentum buffer (SGD) or m and v (Adam), and the
# shared step counter t (Adam). The gradients are realized before counting, as the step realizes them first.
@pytest.mark.parametrize("case,kernels", [("sgd", 4), ("sgd_momentum", 8), ("sgd_nesterov_wd", 8), ("adam", 13), ("adamw", 13)])
def test_step_kernel_count(device, case, kernels):
  ps = make_params(device)
  opt = CASES[case][0](list(ps.values()))
  train(ps, opt, device, steps=1)  # the first step also zero-fills the optimizer state
  model_loss(ps, device).backward()
  Tensor.realize_all(*[p.grad for p in ps.values()])
  GlobalCounters.reset()
  opt.step()
  assert GlobalCounters.kernel_count == kernels


def test_first_step_zero_fills_state_once(device):
  ps = make_params(device)
  opt = Adam(list(ps.values()), lr=0.01)
  model_loss(ps, device).backward()
  Tensor.realize_all(*[p.grad for p in ps.values()])
  GlobalCounters.reset()
  opt.step()
  assert GlobalCounters.kernel_count == 13 + 9  # + zeros for 4 m's, 4 v's and t


def test_zero_grad(device):
  ps = make_params(device)
  opt = SGD(list(ps.values()), lr=0.1)
  model_loss(ps, device).backward()
  model_loss(ps, device).backward()  # without zero_grad gradients accumulate: twice the gradient
  g2 = ps["w2"].grad.numpy()
  opt.zero_grad()
  assert all(p.grad is None for p in ps.values())
  model_loss(ps, device).backward()
  np.testing.assert_allclose(g2, 2 * ps["w2"].grad.numpy(), rtol=1e-6)
  opt.step()
  want = ref_sgd(1, 0.1)
  for k in want: np.testing.assert_allclose(ps[k].numpy(), want[k], rtol=1e-6, atol=1e-6)


def test_params_without_grad_are_skipped(device):
  ps = make_params(device)
  extra = Tensor(np.ones(3, np.float32), device=device)
  opt = Adam([*ps.values(), extra], lr=0.1)
  assert extra.requires_grad is True  # set by the optimizer
  train(ps, opt, device, steps=2)
  np.testing.assert_array_equal(extra.numpy(), np.ones(3, np.float32))
  np.testing.assert_array_equal(opt.m[-1].numpy(), np.zeros(3, np.float32))
  assert opt.t.numpy().tolist() == [2] * len(ps) + [0]  # (the steps each parameter took, as PyTorch's state['step'])


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_counts_the_steps_of_each_parameter_apart(device, name):
  # PyTorch's bias correction uses the steps a parameter took: one that got no gradient on a step (a head used
  # every other step) is corrected by its own count, not by the optimizer's (5e-3 off after 5 steps)
  a, b = (Tensor(np.array(v, np.float32), device=device) for v in ([1.0, -2.0], [0.5, 3.0]))
  opt = {"Adam": Adam, "AdamW": AdamW}[name]([a, b], lr=0.01)
  moments = {"a": [np.zeros(2), np.zeros(2), 0], "b": [np.zeros(2), np.zeros(2), 0]}
  want = {"a": a.numpy().astype(np.float64), "b": b.numpy().astype(np.float64)}
  for step in range(5):
    opt.zero_grad()
    uses_b = step % 2 == 1
    ((a * a).sum() + ((b * a).sum() if uses_b else 0)).backward()
    opt.step()
    grads = {"a": 2 * want["a"] + (want["b"] if uses_b else 0), "b": want["a"] if uses_b else None}
    for key, g in grads.items():  # the reference: PyTorch's Adam(W) update, per parameter, in float64
      if g is None: continue
      m, v, t = moments[key]
      if name == "AdamW": want[key] = want[key] * (1 - 0.01 * 0.01)
      m, v, t = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g, t + 1
      moments[key] = [m, v, t]
      want[key] = want[key] - 0.01 / (1 - 0.9 ** t) * m / (np.sqrt(v) / np.sqrt(1 - 0.999 ** t) + 1e-8)
  np.testing.assert_allclose(a.numpy(), want["a"], rtol=1e-5)
  np.testing.assert_allclose(b.numpy(), want["b"], rtol=1e-5)


def test_requires_grad_false_is_not_optimized(device):
  frozen = Tensor(np.ones(2, np.float32), device=device, requires_grad=False)
  w = Tensor(np.ones(2, np.float32), device=device)
  opt = SGD([frozen, w], lr=0.5)
  assert len(opt.params) == 1 and opt.params[0] is w
  (frozen * w).sum().backward()
  opt.step()
  np.testing.assert_array_equal(w.numpy(), [0.5, 0.5])
  np.testing.assert_array_equal(frozen.numpy(), [1, 1])


def test_step_ignores_training_flag(device):
  results = []
  for mode in (False, True):
    ps = make_params(device)
    with Tensor.train(mode): results.append(train(ps, AdamW(list(ps.values()), lr=0.01), device, steps=2))
  for k in INIT: np.testing.assert_array_equal(results[0][k], results[1][k])


def test_learning_rate_tensor_can_change(device):
  w = Tensor(np.array([1.0, 2.0], np.float32), device=device)
  opt = SGD([w], lr=0.5)
  (w * w).sum().backward()
  opt.step()
  np.testing.assert_allclose(w.numpy(), [0.0, 0.0])
  w.assign(Tensor(np.array([1.0, 2.0], np.float32), device=device))
  opt.lr.assign(Tensor(np.array(0.25, np.float32), device=device))
  opt.zero_grad()
  (w * w).sum().backward()
  opt.step()
  np.testing.assert_allclose(w.numpy(), [0.5, 1.0])


def test_lazy_params_and_shared_zero_state(device):
  """Parameters still lazy when the optimizer is made, and state tensors of equal shapes, each get a buffer of
  their own (equal lazy graphs are one node; the state must not alias)."""
  a = Tensor.ones(3, device=device)
  b = Tensor.ones(3, device=device)
  opt = Adam([a, b], lr=0.1)
  (a * 2 + b * b).sum().backward()
  opt.step()
  # one Adam step moves every parameter by lr * sign(g) (up to eps): both grads are positive
  np.testing.assert_allclose(a.numpy(), np.full(3, 0.9), rtol=1e-6)
  np.testing.assert_allclose(b.numpy(), np.full(3, 0.9), rtol=1e-6)
  np.testing.assert_allclose(opt.m[0].numpy(), np.full(3, 0.2), rtol=1e-6)
  np.testing.assert_allclose(opt.m[1].numpy(), np.full(3, 0.2), rtol=1e-6)
  np.testing.assert_allclose(opt.v[0].numpy(), np.full(3, 0.004), rtol=1e-5)


@pytest.mark.skipif(len(Device.available()) < 2, reason="needs two devices")
def test_parameters_on_two_devices():
  d0, d1 = Device.available()[:2]
  ps = make_params(d0)
  ps["w2"], ps["c2"] = Tensor(INIT["w2"].astype(np.float32), device=d1), Tensor(INIT["c2"].astype(np.float32), device=d1)
  opt = Adam(list(ps.values()), lr=0.01)
  for _ in range(3):
    opt.zero_grad()
    x, y = Tensor(X.astype(np.float32), device=d0), Tensor(Y.astype(np.float32), device=d1)
    loss = ((((x @ ps["w1"] + ps["c1"]).to(d1)) @ ps["w2"] + ps["c2"] - y) ** 2).mean()
    loss.backward()
    opt.step()
  want = ref_adam(3, 0.01)
  for k in want: np.testing.assert_allclose(ps[k].numpy(), want[k], rtol=1e-6, atol=1e-6)


def test_bad_arguments():
  w = Tensor([1.0, 2.0])
  with pytest.raises(ValueError, match="learning rate"): SGD([w], lr=-1)
  with pytest.raises(ValueError, match="momentum"): SGD([w], momentum=-0.5)
  with pytest.raises(ValueError, match="nesterov"): SGD([w], nesterov=True)
  with pytest.raises(ValueError, match="b1"): Adam([w], b1=1.0)
  with pytest.raises(ValueError, match="eps"): Adam([w], eps=-1)
  with pytest.raises(ValueError, match="no parameters"): SGD([Tensor([1.0], requires_grad=False)])
  with pytest.raises(TypeError, match="Tensors"): SGD([np.ones(2)])
  with pytest.raises(TypeError, match="float"): SGD([Tensor([1, 2])])


def test_buffers_are_realized_before_the_parameters_change(device):
  """A tensor given with requires_grad=False is a buffer: an assign into it left pending by the forward pass
  (as BatchNorm does with its running mean) is realized by the step, with the parameter values before it."""
  w = Tensor(np.array([1.0, 2.0], np.float32), device=device)
  running = Tensor(np.zeros(2, np.float32), device=device, requires_grad=False)
  opt = SGD([w, running], lr=0.5)
  assert [id(p) for p in opt.params] == [id(w)] and [id(b) for b in opt.buffers] == [id(running)]
  out = w * 3
  running.assign(running + out.detach())
  out.sum().backward()
  opt.step()
  assert is_realized(running)
  np.testing.assert_allclose(w.numpy(), [-0.5, 0.5])
  np.testing.assert_allclose(running.numpy(), [3.0, 6.0])  # from w before the step


def is_realized(t: Tensor) -> bool:
  from teeny.schedule import is_buffer_view
  return is_buffer_view(t.uop)


def test_lr_schedules(device):
  from teeny.nn.optim import StepLR, CosineAnnealingLR, LambdaLR
  w = Tensor(np.array([1.0], np.float32), device=device)
  cases = [(StepLR, dict(step_size=2, gamma=0.5), lambda e: 0.1 * 0.5 ** (e // 2)),
           (CosineAnnealingLR, dict(T_max=4, eta_min=0.01), lambda e: 0.01 + 0.09 * (1 + math.cos(math.pi * e / 4)) / 2),
           (LambdaLR, dict(lr_lambda=lambda e: 1 / (e + 1)), lambda e: 0.1 / (e + 1))]
  for cls, kw, want in cases:
    opt = SGD([w], lr=0.1)
    sched = cls(opt, **kw)
    for epoch in range(6):
      assert sched.get_last_lr()[0] == pytest.approx(want(epoch)), (cls.__name__, epoch)
      assert opt.lr.item() == pytest.approx(want(epoch), rel=1e-6)
      sched.step()


def test_schedule_changes_the_update_not_the_kernels(device, monkeypatch):
  from teeny.nn.optim import StepLR
  w = Tensor(np.array([1.0, 2.0], np.float32), device=device)
  opt = SGD([w], lr=0.5)
  sched = StepLR(opt, step_size=1, gamma=0.5)
  def step():
    opt.zero_grad()
    (w * w).sum().backward()  # gradient 2w: w <- w * (1 - 2 lr)
    opt.step()
    sched.step()
  step()
  np.testing.assert_allclose(w.numpy(), [0.0, 0.0])  # lr 0.5
  w.assign(Tensor(np.array([1.0, 2.0], np.float32), device=device)).realize()
  compiles = []
  compiler = Device[device].compiler
  original = compiler.compile_cached
  monkeypatch.setattr(compiler, "compile_cached", lambda src: compiles.append(src) or original(src))
  step()  # lr 0.25: read from the lr tensor, so the same kernels run
  np.testing.assert_allclose(w.numpy(), [0.5, 1.0], rtol=1e-6)
  assert compiles == []


def test_step_realizes_the_loss_with_the_gradients_once(device):
  """The forward pass runs once per step: the loss is realized with the gradients, and read after the step it is
  the loss of the old weights (as in PyTorch)."""
  w = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), device=device, requires_grad=True)
  x = Tensor(np.array([[1.0, -1.0]], np.float32), device=device)
  opt = SGD([w], lr=0.1)
  loss = (x @ w).sum()
  loss.backward()
  opt.step()
  kernels = GlobalCounters.kernel_count
  assert loss.item() == -4.0  # (1 - 3) + (2 - 4) from the old weights (the new ones give -4.4)
  assert GlobalCounters.kernel_count == kernels  # already realized: nothing runs again
  np.testing.assert_allclose(w.numpy(), [[0.9, 1.9], [3.1, 4.1]], rtol=1e-6)


# ---- LARS, Muon, OptimizerGroup, clip_grad_norm_ ----

def ref_newton_schulz(g, steps, coefficients, eps=1e-7):
  """tinygrad's Tensor.newton_schulz in numpy: the wide orientation, G / (||G||_F + eps), then
  X <- sum_i c_i (X X^T)^i X, `steps` times."""
  if g.shape[0] > g.shape[1]: return ref_newton_schulz(g.T, steps, coefficients, eps).T
  x = g / (np.linalg.norm(g) + eps)
  for _ in range(steps):
    gram = x @ x.T
    total, power = coefficients[0] * x, x
    for c in coefficients[1:]:
      power = gram @ power
      total = total + c * power
    x = total
  return x


def ref_lars(steps, lr, momentum=0.9, wd=1e-4, ns_steps=0, ns_coefficients=None, nesterov=False, classic=True, pre_wd=True,
             tcoef=0.001, keys=None):
  """tinygrad's LARS._step (Muon and its SGD are this with other settings), in numpy, written from its rule."""
  p = {k: v.copy() for k, v in INIT.items()}
  keys = list(p) if keys is None else keys
  b = {k: np.zeros_like(v) for k, v in p.items()}
  for _ in range(steps):
    grads = closed_form_grads(p)
    for k in keys:
      g = grads[k]
      r1, r2 = np.linalg.norm(p[k]), np.linalg.norm(g)
      r = (tcoef * r1 / (r2 + wd * r1) if r1 > 0 and r2 > 0 else 1.0) if tcoef else 1.0
      if pre_wd and wd: g = g + wd * p[k]
      if classic: g = g * r * lr
      if momentum:
        b[k] = momentum * b[k] + g
        g = g + momentum * b[k] if nesterov else b[k]
      if ns_coefficients: g = ref_newton_schulz(g.reshape(g.shape[0], -1), ns_steps, ns_coefficients).reshape(g.shape)
      if not pre_wd and wd: p[k] = p[k] * (1 - wd * lr)
      if not classic: g = g * r * lr
      p[k] = p[k] - g
  return p


def test_lars_matches_tinygrads_rule(device):
  """LARS against a numpy transcription of tinygrad's rule (PyTorch has no LARS): the trust ratio, classic
  momentum (lr inside the buffer), with and without Nesterov."""
  from teeny.nn.optim import LARS
  for kw in (dict(lr=0.5, momentum=0.9, weight_decay=1e-2, tcoef=0.01), dict(lr=0.5, momentum=0.8, nesterov=True, classic=False, tcoef=0.02)):
    ps = make_params(device)
    got, want = train(ps, LARS(list(ps.values()), **kw), device, steps=4), ref_lars(4, **{("wd" if k == "weight_decay" else k): v for k, v in kw.items()})
    for k in want:
      np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=f"{kw}: {k}")
      assert np.abs(got[k] - INIT[k]).max() > 1e-4  # it moved


def test_lars_without_trust_ratio_is_torch_sgd(device):
  """tinygrad's SGD is LARS(tcoef=0, classic=False, pre_wd=True): against torch.optim.SGD itself for 4 steps."""
  torch = pytest.importorskip("torch")
  from teeny.nn.optim import LARS
  tps = {k: torch.tensor(v, requires_grad=True) for k, v in INIT.items()}
  topt = torch.optim.SGD(list(tps.values()), lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)
  for _ in range(4):
    topt.zero_grad()
    x, y = torch.from_numpy(X), torch.from_numpy(Y)
    (((x @ tps["w1"] + tps["c1"]) @ tps["w2"] + tps["c2"] - y) ** 2).mean().backward()
    topt.step()
  ps = make_params(device)
  got = train(ps, LARS(list(ps.values()), lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True, classic=False, tcoef=0.0), device, steps=4)
  for k in got: np.testing.assert_allclose(got[k], tps[k].detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


def test_muon_matches_tinygrads_rule(device):
  """Muon against a numpy transcription of tinygrad's rule: torch.optim.Muon differs (an averaged momentum,
  bfloat16 orthogonalization, a shape-scaled lr, 2-D parameters only), so it is not the reference. The
  parameters include a wide matrix, a tall one (transposed for the iteration) and vectors."""
  from teeny.nn.optim import Muon
  ps = make_params(device)
  got, want = train(ps, Muon(list(ps.values()), lr=0.05), device, steps=3), ref_lars(
    3, lr=0.05, momentum=0.95, wd=0.1, ns_steps=5, ns_coefficients=(3.4445, -4.775, 2.0315), nesterov=True, classic=False, pre_wd=False, tcoef=0)
  for k in want:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-5, err_msg=k)
    assert np.abs(got[k] - INIT[k]).max() > 1e-3


def test_newton_schulz_orthogonalizes():
  """Enough steps of the classic cubic (1.5, -0.5) take a well-conditioned matrix's singular values to 1."""
  from teeny.nn.optim import newton_schulz
  g = rng.normal(size=(3, 5)) + 2 * np.eye(3, 5)
  x = newton_schulz(Tensor(g.astype(np.float32)), 30, (1.5, -0.5)).numpy()
  np.testing.assert_allclose(x @ x.T, np.eye(3), atol=1e-4)
  np.testing.assert_allclose(newton_schulz(Tensor(g.T.astype(np.float32)), 30, (1.5, -0.5)).numpy(), x.T, atol=1e-5)
  with pytest.raises(ValueError, match="matrix"): newton_schulz(Tensor.ones(3), 1, (1.0,))


def test_optimizer_group_steps_and_zeroes_all(device):
  """OptimizerGroup(Muon for the matrices, SGD for the vectors) gives what each optimizer gives alone."""
  from teeny.nn.optim import Muon, OptimizerGroup
  ps = make_params(device)
  muon, sgd = Muon([ps["w1"], ps["w2"]], lr=0.05), SGD([ps["c1"], ps["c2"]], lr=0.1, momentum=0.9)
  group = OptimizerGroup(muon, sgd)
  assert group[0] is muon and group[1] is sgd and len(group.params) == 4
  got = train(ps, group, device, steps=3)
  assert all(p.grad is None for p in ps.values()) is False
  group.zero_grad()
  assert all(p.grad is None for p in ps.values())
  # the references: each optimizer's rule with the other half of the parameters moving by its own rule
  p = {k: v.copy() for k, v in INIT.items()}
  b = {k: np.zeros_like(v) for k, v in p.items()}
  for _ in range(3):
    g = closed_form_grads(p)
    for k in ("w1", "w2"):
      b[k] = 0.95 * b[k] + g[k]
      u = ref_newton_schulz(g[k] + 0.95 * b[k], 5, (3.4445, -4.775, 2.0315))
      p[k] = p[k] * (1 - 0.1 * 0.05) - 0.05 * u
    for k in ("c1", "c2"):
      b[k] = 0.9 * b[k] + g[k]
      p[k] = p[k] - 0.1 * b[k]
  for k in p: np.testing.assert_allclose(got[k], p[k], rtol=1e-5, atol=1e-5, err_msg=k)
  with pytest.raises(TypeError, match="optimizers"): OptimizerGroup(muon, [ps["w1"]])


def test_lars_muon_group_bad_arguments():
  from teeny.nn.optim import LARS, Muon, OptimizerGroup
  w = Tensor(np.ones((2, 2), np.float32))
  with pytest.raises(ValueError, match="momentum"): LARS([w], momentum=-1)
  with pytest.raises(ValueError, match="nesterov"): LARS([w], momentum=0, nesterov=True)
  with pytest.raises(ValueError, match="scalar"): Muon([Tensor(np.float32(1.0))])
  with pytest.raises(ValueError, match="at least one"): OptimizerGroup()


def torch_clipped(norm_type, max_norm):
  """The closed-form gradients of INIT, clipped by torch.nn.utils.clip_grad_norm_: (total norm, grads)."""
  torch = pytest.importorskip("torch")
  ts = {k: torch.tensor(v, requires_grad=True) for k, v in INIT.items()}
  for k, g in closed_form_grads(INIT).items(): ts[k].grad = torch.tensor(g)
  total = torch.nn.utils.clip_grad_norm_(list(ts.values()), max_norm, norm_type=norm_type)
  return float(total), {k: t.grad.numpy() for k, t in ts.items()}


@pytest.mark.parametrize("norm_type,max_norm", [(2.0, 0.5), (2.0, 100.0), (math.inf, 0.3), (1.0, 1.0), (3, 0.2)])
def test_clip_grad_norm_matches_torch(device, norm_type, max_norm):
  """Returns the total norm before clipping and scales each gradient in place (a reference held to a gradient
  sees the new values), like torch.nn.utils.clip_grad_norm_; a max_norm above the norm leaves them alone."""
  from teeny.nn.utils import clip_grad_norm_
  import teeny.nn
  assert teeny.nn.utils.clip_grad_norm_ is clip_grad_norm_
  want_total, want = torch_clipped(norm_type, max_norm)
  ps = make_params(device)
  for t in ps.values(): t.requires_grad = True
  model_loss(ps, device).backward()
  held = ps["w1"].grad
  total = clip_grad_norm_(ps.values(), max_norm, norm_type=norm_type)
  np.testing.assert_allclose(total.numpy(), want_total, rtol=1e-5)
  for k in want: np.testing.assert_allclose(ps[k].grad.numpy(), want[k], rtol=1e-5, atol=1e-7, err_msg=k)
  np.testing.assert_allclose(held.numpy(), want["w1"], rtol=1e-5, atol=1e-7)


def test_clip_grad_norm_then_step_and_errors(device):
  """Clipping between backward() and step(): the step uses the clipped gradients. A single Tensor works, params
  without gradients are skipped, and error_if_nonfinite reads the norm and raises on inf."""
  from teeny.nn.utils import clip_grad_norm_
  w = Tensor(np.array([3.0, 4.0], np.float32), device=device)
  unused = Tensor(np.ones(2, np.float32), device=device)
  opt = SGD([w, unused], lr=1.0)
  (w * Tensor(np.array([3.0, 4.0], np.float32), device=device)).sum().backward()  # grad (3, 4): norm 5
  assert abs(clip_grad_norm_([w, unused], 1.0).item() - 5.0) < 1e-5
  opt.step()
  np.testing.assert_allclose(w.numpy(), [3 - 0.6, 4 - 0.8], rtol=1e-5)
  v = Tensor(np.array([1.0, 2.0], np.float32), device=device)
  v.grad = Tensor(np.array([np.inf, 1.0], np.float32), device=device)
  with pytest.raises(RuntimeError, match="nonfinite|inf"): clip_grad_norm_(v, 1.0, error_if_nonfinite=True)
  with pytest.raises(ValueError, match="norm_type"): clip_grad_norm_(v, 1.0, norm_type=0)
  assert clip_grad_norm_([unused], 1.0).item() == 0.0
  if Device[device].supports_dtype(dtypes.float64):  # float64 gradients past float32's squares: the norm in float64, as in PyTorch (it was inf: grads zeroed)
    big = Tensor(np.zeros(2), device=device)
    big.grad = Tensor(np.array([3e19, 4e19]), device=device)
    assert clip_grad_norm_(big, 1.0).item() == pytest.approx(5e19)
    np.testing.assert_allclose(big.grad.numpy(), [0.6, 0.8], rtol=1e-6)


def _jitted_step(opt, loss, w):
  """A TinyJit training step of opt on loss() that returns w: zero_grad, backward, step."""
  @TinyJit
  def step():
    opt.zero_grad()
    loss().backward()
    opt.step()
    return w.realize()
  return step


def test_setting_lr_to_a_number_after_construction(device):
  """opt.lr = 0.01 (PyTorch users set a group's lr) broke Adam's step with an AttributeError; it now writes into the
  learning-rate tensor, so a TinyJit step that captured it follows the new value."""
  for opt_class in (SGD, Adam):
    w = Tensor(np.array([1.0], np.float32), device=device, requires_grad=True)
    opt = opt_class([w], lr=0.1)
    opt.lr = 0.5
    (w * 2).sum().backward()
    opt.step()
    np.testing.assert_allclose(w.numpy(), [0.0 if opt_class is SGD else 0.5], rtol=1e-5, atol=1e-6)
  w = Tensor(np.array([1.0], np.float32), device=device, requires_grad=True)
  opt = SGD([w], lr=0.1)
  step = _jitted_step(opt, lambda: (w * 2).sum(), w)
  for k in range(5):
    opt.lr = 0.1 * k
    step()
  np.testing.assert_allclose(w.numpy(), [1 - 2 * 0.1 * sum(range(5))], rtol=1e-5)
  w = Tensor(np.array([1.0], np.float32), device=device, requires_grad=True)
  opt = SGD([w], lr=Tensor(0.1, device=device).cast(dtypes.bfloat16))  # (its numpy dtype holds bits: 0.01 was written as 0)
  opt.lr = 0.01
  assert abs(opt.lr.float().item() - 0.01) < 1e-4


def test_clip_grad_norm_over_two_devices():
  """Gradients on two devices: one total norm (on the first's device), each gradient scaled where it lives."""
  if len(DEVICES) < 2: pytest.skip("needs two devices")
  from teeny.nn.utils import clip_grad_norm_
  a, b = Tensor(np.ones(2, np.float32), device=DEVICES[0]), Tensor(np.ones(2, np.float32), device=DEVICES[1])
  a.grad, b.grad = Tensor(np.array([3.0, 0.0], np.float32), device=DEVICES[0]), Tensor(np.array([0.0, 4.0], np.float32), device=DEVICES[1])
  np.testing.assert_allclose(clip_grad_norm_([a, b], 2.5).numpy(), 5.0, rtol=1e-6)
  np.testing.assert_allclose(a.grad.numpy(), [1.5, 0.0], rtol=1e-5)
  np.testing.assert_allclose(b.grad.numpy(), [0.0, 2.0], rtol=1e-5)
  assert b.grad.device == DEVICES[1]


def _mlp_step_kernels(device, keep_logits: bool):
  """Kernels of one SGD step of a two-layer MLP, with its logits kept alive past the step or dropped before it;
  and the logits (None when dropped), which must be those of the weights before the step."""
  data = np.random.default_rng(1)
  x = Tensor(data.standard_normal((16, 12)).astype(np.float32), device=device)
  w1 = Tensor(data.standard_normal((8, 12)).astype(np.float32), device=device, requires_grad=True)
  w2 = Tensor(data.standard_normal((3, 8)).astype(np.float32), device=device, requires_grad=True)
  Tensor.realize_all(x, w1, w2)
  opt = SGD([w1, w2], lr=0.1)
  logits = (x @ w1.T).relu() @ w2.T
  logits.square().mean().backward()
  if not keep_logits: logits = None
  GlobalCounters.reset()
  opt.step()
  return GlobalCounters.kernel_count, logits


def test_step_runs_the_forward_pass_once_when_the_logits_live_on(device):
  """A training loop keeps its logits (to print accuracy, say). They read the weights the step overwrites, so they
  must hold the old weights' values: the step computes them with the gradients, from the same forward pass, not by
  running the forward pass a second time just before the update."""
  dropped, _ = _mlp_step_kernels(device, keep_logits=False)
  kept, logits = _mlp_step_kernels(device, keep_logits=True)
  assert kept == dropped
  data = np.random.default_rng(1)
  x, w1, w2 = (data.standard_normal(s).astype(np.float32) for s in ((16, 12), (8, 12), (3, 8)))
  np.testing.assert_allclose(logits.numpy(), np.maximum(x @ w1.T, 0) @ w2.T, rtol=1e-5, atol=1e-5)


def test_param_groups_read_and_set_the_rate_as_pytorch_code_does(device):
  """opt.param_groups (PyTorch's) is one dict-like group: "lr" reads the rate as it was set (0.1, not float32's
  0.10000000149) and `g["lr"] = x` writes it into the rate tensor, so TinyJit replays follow, as opt.lr = x does;
  the other settings read under PyTorch's names and refuse writes (constants of the compiled update)."""
  from teeny.nn.optim import OptimizerGroup, StepLR
  w = Tensor(np.array([1.0], np.float32), device=device, requires_grad=True)
  opt = SGD([w], lr=0.1, momentum=0.9)
  group = opt.param_groups[0]
  assert group["lr"] == 0.1 and group["momentum"] == 0.9 and group["params"] == [w] and "betas" not in group
  with pytest.raises(KeyError, match="read only"): group["momentum"] = 0.5
  assert Adam([w], lr=0.01).param_groups[0]["betas"] == (0.9, 0.999)
  assert len(OptimizerGroup(opt, Adam([Tensor([1.0], device=device, requires_grad=True)])).param_groups) == 2
  plain = SGD([w], lr=0.1)
  step = _jitted_step(plain, lambda: (w * 2).sum(), w)
  for k in range(5):
    for g in plain.param_groups: g["lr"] = 0.1 * k
    step()
  np.testing.assert_allclose(w.numpy(), [1 - 2 * 0.1 * sum(range(5))], rtol=1e-5)
  schedule = StepLR(SGD([w], lr=0.3), 1, 0.5)
  schedule.step()
  assert schedule.get_last_lr() == [0.15] and schedule.optimizer.param_groups[0]["lr"] == 0.15


def test_backward_adds_into_the_gradient_tensor_kept(device):
  """backward() adds into an existing .grad in place, as PyTorch's: after zero_grad(set_to_none=False) a reference
  kept to the .grad sees the next gradient (it kept reading the zeros), and one kept across two backward() calls
  sees their sum."""
  w = Tensor([1.0, 2.0], device=device, requires_grad=True)
  opt = SGD([w], lr=0.1)
  (w * w).sum().backward()
  kept = w.grad
  opt.zero_grad(set_to_none=False)
  (w * 3).sum().backward()
  assert w.grad is kept
  np.testing.assert_array_equal(kept.numpy(), [3.0, 3.0])
  (w * w).sum().backward()
  np.testing.assert_array_equal(kept.numpy(), [5.0, 7.0])


def test_step_and_cosine_schedules_go_on_from_a_rate_set_by_hand(device):
  """StepLR and CosineAnnealingLR step from the current rate, as PyTorch's: a rate set through param_groups between
  epochs carries on (it was thrown away: each epoch's rate came from the starting one). Rates from torch 2.13."""
  from teeny.nn.optim import StepLR, CosineAnnealingLR
  w = Tensor([1.0], device=device, requires_grad=True)
  step = StepLR(SGD([w], lr=0.1), step_size=2, gamma=0.5)
  for g in step.optimizer.param_groups: g["lr"] = 0.01
  rates = []
  for _ in range(4):
    step.step()
    rates.append(step.optimizer.param_groups[0]["lr"])
  np.testing.assert_allclose(rates, [0.01, 0.005, 0.005, 0.0025], rtol=1e-12)
  cosine = CosineAnnealingLR(SGD([w], lr=0.05), T_max=4)
  for _ in range(4): cosine.step()
  for g in cosine.optimizer.param_groups: g["lr"] = 0.003
  cosine.step()
  np.testing.assert_allclose(cosine.get_last_lr(), [0.003 + 0.05 * (1 - math.cos(math.pi / 4)) / 2], rtol=1e-12)
