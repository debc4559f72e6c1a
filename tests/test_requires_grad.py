"""requires_grad=True is never silently dropped: every creation function given it returns a real leaf (it gets
.grad from backward() and an optimizer updates it), setting .requires_grad = True on any float tensor makes a leaf,
and Tensor.gradient() differentiates with respect to any float tensor in the graph, as tinygrad's does. Checked by
hand (d sum(t * w) / dt = w, one SGD step moves t by -lr * w) and against PyTorch when it is installed."""
import numpy as np
import pytest
from teeny import Tensor, dtypes
from teeny.nn.optim import SGD

try:
  import torch
except ImportError:  # the PyTorch comparisons are skipped, the hand-derived checks still run
  torch = None

SHAPE = (2, 3)
WEIGHTS = np.arange(1.0, 7.0, dtype=np.float32).reshape(SHAPE)

# name -> fn(device, requires_grad) making a float32 tensor of SHAPE (arange: 6 elements)
CREATORS = {
  "zeros": lambda d, rg: Tensor.zeros(*SHAPE, device=d, requires_grad=rg),
  "ones": lambda d, rg: Tensor.ones(SHAPE, device=d, requires_grad=rg),
  "full": lambda d, rg: Tensor.full(SHAPE, 2.5, device=d, requires_grad=rg),
  "empty": lambda d, rg: Tensor.empty(*SHAPE, device=d, requires_grad=rg),
  "eye": lambda d, rg: Tensor.eye(2, 3, device=d, requires_grad=rg),
  "arange": lambda d, rg: Tensor.arange(6, dtype=dtypes.float32, device=d, requires_grad=rg),
  "zeros_like": lambda d, rg: Tensor(WEIGHTS, device=d).zeros_like(requires_grad=rg),
  "ones_like": lambda d, rg: Tensor(WEIGHTS, device=d).ones_like(requires_grad=rg),
  "full_like": lambda d, rg: Tensor(WEIGHTS, device=d).full_like(-1.5, requires_grad=rg),
  "rand": lambda d, rg: Tensor.rand(*SHAPE, device=d, requires_grad=rg),
  "randn": lambda d, rg: Tensor.randn(*SHAPE, device=d, requires_grad=rg),
  "rand_like": lambda d, rg: Tensor(WEIGHTS, device=d).rand_like(requires_grad=rg),
  "randn_like": lambda d, rg: Tensor(WEIGHTS, device=d).randn_like(requires_grad=rg),
  "uniform": lambda d, rg: Tensor.uniform(*SHAPE, low=-2.0, high=2.0, device=d, requires_grad=rg),
  "normal": lambda d, rg: Tensor.normal(*SHAPE, mean=1.0, std=0.5, device=d, requires_grad=rg),
  "scaled_uniform": lambda d, rg: Tensor.scaled_uniform(*SHAPE, device=d, requires_grad=rg),
  "glorot_uniform": lambda d, rg: Tensor.glorot_uniform(*SHAPE, device=d, requires_grad=rg),
  "kaiming_uniform": lambda d, rg: Tensor.kaiming_uniform(*SHAPE, device=d, requires_grad=rg),
  "kaiming_normal": lambda d, rg: Tensor.kaiming_normal(*SHAPE, device=d, requires_grad=rg),
}


@pytest.mark.parametrize("name", list(CREATORS))
def test_creation_with_requires_grad_makes_a_leaf_that_gets_a_gradient_and_trains(device, name):
  t = CREATORS[name](device, True)
  assert t.requires_grad is True
  w = WEIGHTS.reshape(t.shape)
  loss = (t * Tensor(w, device=device)).sum()
  loss.backward()
  # read the leaf after the graph was built from it while it was lazy: its value is realized now, and the step
  # below must still update it (and the gradient must still have reached it)
  before = t.numpy().copy()
  np.testing.assert_array_equal(t.grad.numpy(), w)  # d sum(t * w) / dt = w
  if torch is not None:
    pt = torch.tensor(before, requires_grad=True)
    (pt * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), pt.grad.numpy())
  SGD([t], lr=0.1).step()
  np.testing.assert_allclose(t.numpy(), before - 0.1 * w, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", list(CREATORS))
def test_creation_without_requires_grad_is_no_leaf(device, name):
  t = CREATORS[name](device, None)
  assert not t.requires_grad
  with pytest.raises(RuntimeError, match="no tensor with requires_grad"): (t * 2).sum().backward()


def test_zeros_bias_trains_like_pytorch(device):
  """The issue's example: a bias made with zeros(requires_grad=True) trains (it used to stay 0 for ever)."""
  x = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]], np.float32)
  y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
  w0 = np.array([[0.1, -0.2], [0.3, 0.4]], np.float32)
  w, b = Tensor(w0, device=device, requires_grad=True), Tensor.zeros(2, device=device, requires_grad=True)
  opt = SGD([w, b], lr=0.1)
  for _ in range(3):
    opt.zero_grad()
    ((Tensor(x, device=device) @ w + b - Tensor(y, device=device)).square().mean()).backward()
    opt.step()
  # the same three steps by hand in float64
  wn, bn = w0.astype(np.float64), np.zeros(2)
  for _ in range(3):
    r = x @ wn + bn - y
    wn, bn = wn - 0.1 * x.T @ (2 * r / r.size), bn - 0.1 * (2 * r / r.size).sum(0)
  assert np.abs(b.numpy()).min() > 0.01
  np.testing.assert_allclose(b.numpy(), bn, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(w.numpy(), wn, rtol=1e-5, atol=1e-6)
  if torch is not None:
    pw, pb = torch.tensor(w0, requires_grad=True), torch.zeros(2, requires_grad=True)
    popt = torch.optim.SGD([pw, pb], lr=0.1)
    for _ in range(3):
      popt.zero_grad()
      ((torch.tensor(x) @ pw + pb - torch.tensor(y)).square().mean()).backward()
      popt.step()
    np.testing.assert_allclose(b.numpy(), pb.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_setting_requires_grad_on_any_tensor_makes_a_leaf(device):
  base = Tensor([1.0, 2.0, 3.0], device=device)
  lazy = base * 2 + 1  # a lazy result of tensors that don't require grad
  lazy.requires_grad = True
  realized = (base - 1).realize()
  realized.requires_grad = True
  loss = (lazy * realized * Tensor([1.0, 10.0, 100.0], device=device)).sum()
  loss.backward()
  np.testing.assert_allclose(lazy.grad.numpy(), [0.0, 10.0, 200.0])   # d/dlazy = realized * c
  np.testing.assert_allclose(realized.grad.numpy(), [3.0, 50.0, 700.0])  # d/drealized = lazy * c
  assert base.grad is None


def test_a_frozen_parameter_unfrozen_again_trains(device):
  """w.requires_grad = False, then True again raised 'the truth value of a tensor ... is ambiguous': the set of
  leaves compared the tensor added again with ==, which is elementwise."""
  w = Tensor.ones(4, device=device, requires_grad=True)
  w.requires_grad = False
  w.requires_grad = True
  (w * 2).sum().backward()
  assert w.grad.numpy().tolist() == [2.0] * 4


def test_leaf_realized_between_forward_and_backward_gets_its_gradient(device):
  t = Tensor.ones(3, device=device, requires_grad=True)
  early = (t * Tensor([1.0, 2.0, 3.0], device=device)).sum()  # holds t's lazy node
  t.requires_grad_()  # again: still the same leaf
  t.realize()
  late = (t * 10).sum()  # holds t's buffer
  (early + late).backward()
  np.testing.assert_allclose(t.grad.numpy(), [11.0, 12.0, 13.0])


def test_a_realized_result_dropped_before_backward_still_passes_gradient(device):
  # its graph was kept by the tensor alone: once the tensor was gone (realized inside a function, or a temporary
  # like (x * 3).realize().exp()), its buffer was a constant to backward(): x.grad [1, 1] for [61.26, 1211.29]
  x = Tensor([1.0, 2.0], device=device, requires_grad=True)
  ((x * 3).realize().exp().sum() + x.sum()).backward()
  np.testing.assert_allclose(x.grad.numpy(), 3 * np.exp([3.0, 6.0]) + 1, rtol=1e-5)
  def forward(t):
    h = t.exp()
    h.numpy()  # (print(h) while debugging)
    return h * 2
  x.grad = None
  forward(x).sum().backward()
  np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([1.0, 2.0]), rtol=1e-6)
  w = Tensor(np.ones((3, 2), np.float32), device=device, requires_grad=True)
  (Tensor(np.array([[1.0, 2.0, 3.0]] * 2, np.float32), device=device) @ w).realize().relu().sum().backward()
  np.testing.assert_allclose(w.grad.numpy(), [[2.0, 2.0], [4.0, 4.0], [6.0, 6.0]])


@pytest.mark.parametrize("realized", [True, False])
def test_graphs_built_before_requires_grad_was_set_take_the_tensor_as_a_constant(device, realized):
  # PyTorch records no gradient edge to a tensor that did not require grad when it was used: a lazy result, a
  # view and a realized result kept for backward, all made before, pass it no gradient
  w = Tensor([1.0, 2.0, 3.0], device=device)
  w = w.realize() if realized else w * 1
  p = Tensor([1.0, 1.0, 1.0], device=device, requires_grad=True)
  lazy, view, kept = w * 2, w[0:2], (w * p).realize()
  w.requires_grad_()
  (lazy * w).sum().backward()
  np.testing.assert_allclose(w.grad.numpy(), [2.0, 4.0, 6.0])  # not 4, 8, 12: lazy is a constant
  w.grad = None
  (view * w[0:2]).sum().backward()
  np.testing.assert_allclose(w.grad.numpy(), [1.0, 2.0, 0.0])
  w.grad = None
  (kept + w).sum().backward()
  np.testing.assert_allclose(w.grad.numpy(), [1.0, 1.0, 1.0])
  np.testing.assert_allclose(p.grad.numpy(), [1.0, 2.0, 3.0])  # the kept graph still passes p its gradient
  (w * 3).sum().backward()  # graphs built after: w is a leaf there
  np.testing.assert_allclose(w.grad.numpy(), [4.0, 4.0, 4.0])
  if torch is not None:
    tw = torch.tensor([1.0, 2.0, 3.0])
    tlazy, tview = tw * 2, tw[0:2]
    tw.requires_grad_()
    (tlazy * tw).sum().backward()
    (tview * tw[0:2]).sum().backward()
    np.testing.assert_allclose(tw.grad.numpy(), [3.0, 6.0, 6.0])


def test_an_optimizer_makes_parameters_that_graphs_built_before_pass_gradient_to(device):
  # tinygrad's way, and PyTorch's for a parameter (which requires grad from the start): the forward pass and a
  # view kept by a layer, made before the optimizer, still train the weights
  w = Tensor([1.0, 2.0, 3.0], device=device).realize()
  transposed = w.reshape(3, 1).T  # a view a layer keeps
  loss = (w * w).sum() + (transposed * 10).sum()
  SGD([w], lr=0.1)
  loss.backward()
  np.testing.assert_allclose(w.grad.numpy(), [12.0, 14.0, 16.0])


def test_a_view_made_before_requires_grad_still_writes_through_to_its_base(device):
  w = Tensor([1.0, 2.0, 3.0], device=device).realize()
  view = w[0:2]
  w.requires_grad_()
  with Tensor.no_grad(): view += 10
  np.testing.assert_allclose(w.numpy(), [11.0, 12.0, 3.0])
  w.assign(Tensor([0.0, 5.0, 0.0], device=device))
  np.testing.assert_allclose(view.numpy(), [0.0, 5.0])


def test_results_that_are_not_floats_do_not_require_grad(device):
  x = Tensor([1.0, 2.0], device=device, requires_grad=True)
  for result in (x > 1, x == 2, x.argmax(), x.int()):
    assert not result.requires_grad  # PyTorch: False; no gradient flows through them
  assert x.sign().requires_grad and (x ** 0).requires_grad  # (built on comparisons: gradient 0, as PyTorch's)
  masked = x * (x > 1)
  assert masked.requires_grad
  masked.sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0])


def test_gradient_works_for_targets_that_do_not_require_grad(device):
  x = Tensor([1.0, -2.0, 0.5], device=device)
  hidden = x * 3
  y = (hidden * hidden).sum() + (x ** 3).sum()
  gx, gh = y.gradient(x, hidden)
  xs = np.array([1.0, -2.0, 0.5])
  np.testing.assert_allclose(gx.numpy(), 18 * xs + 3 * xs ** 2, rtol=1e-6)  # d/dx with hidden = 3x
  np.testing.assert_allclose(gh.numpy(), 6 * xs, rtol=1e-6)                 # d/dhidden
  if torch is not None:
    px = torch.tensor(xs, dtype=torch.float32, requires_grad=True)
    ph = px * 3
    pgx, pgh = torch.autograd.grad((ph * ph).sum() + (px ** 3).sum(), [px, ph])
    np.testing.assert_allclose(gx.numpy(), pgx.numpy(), rtol=1e-6)
    np.testing.assert_allclose(gh.numpy(), pgh.numpy(), rtol=1e-6)


def test_only_float_tensors_can_require_grad(device):
  with pytest.raises(RuntimeError, match="only float tensors"): Tensor([1, 2], device=device, requires_grad=True)
  with pytest.raises(RuntimeError, match="only float tensors"): Tensor.zeros(2, dtype=dtypes.int32, device=device).requires_grad_()
  Tensor([1, 2], device=device, requires_grad=False)  # turning it off is fine


def test_gradient_refuses_targets_it_cant_tell_apart(device):
  """Tensor.gradient with respect to a constant (Tensor(2.0), Tensor.ones(3)) collected every use of that number:
  the 2.0 in t * 2.0 is the same node as t, so (t * 2.0).gradient(t) gave 4 instead of 2. It raises now, as
  tinygrad's does; a leaf (requires_grad=True) or a realized tensor is its own node and gets the right answer.
  An int target raises too (only float tensors have gradients, as in PyTorch)."""
  t = Tensor(2.0, device=device)
  with pytest.raises(RuntimeError, match="constant"): (t * 2.0).gradient(t)
  with pytest.raises(RuntimeError, match="constant"): (Tensor.ones(3, device=device) * 5).sum().gradient(Tensor.ones(3, device=device))
  with pytest.raises(RuntimeError, match="float"): Tensor([1, 2], device=device).float().sum().gradient(Tensor([1, 2], device=device))
  assert (t.realize() * 2.0).gradient(t)[0].item() == 2.0
  leaf = Tensor(2.0, device=device, requires_grad=True)
  assert (leaf * 2.0).gradient(leaf)[0].item() == 2.0


def test_a_realized_gradient_can_be_differentiated_again(device):
  """gradient() of a target that doesn't require grad (tinygrad's form) gave a graph that a realize (a print) dropped:
  differentiating it again gave zeros, silently. A gradient() result keeps its graph when realized."""
  x = Tensor(np.array([0.5, 1.0, 2.0], np.float32), device=device)
  g, = (x ** 3).sum().gradient(x)
  np.testing.assert_allclose(g.numpy(), 3 * np.array([0.5, 1.0, 2.0]) ** 2, rtol=1e-6)
  h, = g.sum().gradient(x)
  np.testing.assert_allclose(h.numpy(), 6 * np.array([0.5, 1.0, 2.0]), rtol=1e-6)
