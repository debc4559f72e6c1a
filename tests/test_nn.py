"""nn layers against numpy references given the same weights: forward outputs, and the gradients of
sum(out * R) for a random R with respect to the input and every weight, on every device. Also PyTorch's default
initialization (statistically), BatchNorm's running statistics and train/eval behaviour, Dropout, and kernel
counts where fusion matters.

The convolution references are direct sums over kernel positions. Their gradients use linearity: a convolution is
linear in its input (and in its weight), so the gradient of sum(f(z) * R) is the vector of f(e_i) . R over the
basis vectors e_i, which is exact, not a finite difference."""
import math, os, sys
import numpy as np
import pytest
from teeny import Tensor, GlobalCounters, Device, dtypes
from teeny.nn import Linear, Conv2d, ConvTranspose2d, BatchNorm, BatchNorm1d, BatchNorm2d, LayerNorm, GroupNorm, RMSNorm, Embedding, Dropout
from teeny.nn.state import get_state_dict, get_parameters, load_state_dict
from teeny.nn.optim import SGD

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
from micrograd import train_moons  # noqa: E402

rng = np.random.default_rng(4)
TOL = dict(rtol=1e-5, atol=1e-5)


def set_weights(layer, **arrays) -> dict:
  """Load float64 arrays (kept as the reference) into the layer as float32."""
  load_state_dict(layer, {k: v.astype(np.float32) for k, v in arrays.items()}, strict=False)
  return {k: v.astype(np.float32).astype(np.float64) for k, v in arrays.items()}


def run_layer(layer, x: np.ndarray, device, r: np.ndarray | None = None, x_dtype=np.float32):
  """out = layer(x), then backward of sum(out * r): returns out, d/dx and {weight name: gradient} as numpy."""
  xt = Tensor(x.astype(x_dtype), device=device, requires_grad=dtypes.is_float(dtypes.from_np(x_dtype)) or None)
  weights = {k: t for k, t in get_state_dict(layer).items() if t.requires_grad is not False}
  for t in weights.values(): t.requires_grad = True
  out = layer(xt)
  r = rng.normal(size=out.shape) if r is None else r
  (out * Tensor(r.astype(np.float32), device=device)).sum().backward()
  grads = {k: t.grad.numpy() for k, t in weights.items()}
  return out.numpy(), (xt.grad.numpy() if xt.requires_grad else None), grads, r


@pytest.fixture(autouse=True)
def default_device(request):
  """Layers make their tensors on the default device, as in tinygrad: make it the device under test."""
  callspec = getattr(request.node, "callspec", None)
  device = callspec.params.get("device") if callspec else None
  previous = Device.DEFAULT
  if device is not None: Device.DEFAULT = device
  yield
  Device.DEFAULT = previous


DEVICES = Device.available()
CHEAP = "LLVM" if "LLVM" in DEVICES else DEVICES[0]


def cases_on_devices(cases, everywhere: str) -> list:
  """(device, case) pairs: the richest case on every device, the other variants on the device that compiles
  fastest (the layer code is the same on every device; the functional ops are tested on each in
  test_nn_functional.py). Keeps a cold-cache run of this file short."""
  return [pytest.param(d, c, id=f"{d}-{c}") for c in cases for d in (DEVICES if c == everywhere else [CHEAP])]


def linear_basis_grad(f, shape, r) -> np.ndarray:
  """Gradient of sum(f(z) * r) for f linear in z: (f(e_i) * r).sum() for every basis vector e_i."""
  out = np.zeros(int(np.prod(shape)))
  for i in range(out.size):
    e = np.zeros(out.size)
    e[i] = 1.0
    out[i] = (f(e.reshape(shape)) * r).sum()
  return out.reshape(shape)


# ---- Linear ----

def test_linear(device):
  layer = Linear(5, 3)
  w = set_weights(layer, weight=rng.normal(size=(3, 5)), bias=rng.normal(size=3))
  x = rng.normal(size=(2, 4, 5))
  out, dx, grads, r = run_layer(layer, x, device)
  np.testing.assert_allclose(out, x @ w["weight"].T + w["bias"], **TOL)
  np.testing.assert_allclose(dx, r @ w["weight"], **TOL)
  np.testing.assert_allclose(grads["weight"], r.reshape(-1, 3).T @ x.reshape(-1, 5), **TOL)
  np.testing.assert_allclose(grads["bias"], r.reshape(-1, 3).sum(0), **TOL)


def test_linear_without_bias_and_bad_input(device):
  layer = Linear(4, 2, bias=False)
  assert layer.bias is None and list(get_state_dict(layer)) == ["weight"]
  w = set_weights(layer, weight=rng.normal(size=(2, 4)))
  x = rng.normal(size=(3, 4))
  np.testing.assert_allclose(layer(Tensor(x.astype(np.float32), device=device)).numpy(), x @ w["weight"].T, **TOL)
  with pytest.raises(ValueError, match="4 input features"): layer(Tensor(np.ones((3, 5), np.float32), device=device))


def test_linear_forward_is_one_kernel(device):
  layer = Linear(8, 4)
  x = Tensor(rng.normal(size=(2, 8)).astype(np.float32), device=device).realize()
  Tensor.realize_all(*get_parameters(layer))
  GlobalCounters.reset()
  layer(x).realize()
  assert GlobalCounters.kernel_count == 1  # the matmul's reduce with the bias add fused in


# ---- convolutions ----

def conv2d_ref(x, w, b, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
  (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
  n, c, h, wd = x.shape
  o, cg, kh, kw = w.shape
  xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
  oh, ow = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
  out = np.zeros((n, o, oh, ow))
  og = o // groups
  for g in range(groups):
    for i in range(kh):
      for j in range(kw):
        patch = xp[:, g * cg:(g + 1) * cg, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
        out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, w[g * og:(g + 1) * og, :, i, j])
  return out + (0 if b is None else b.reshape(1, -1, 1, 1))


def conv_transpose2d_ref(x, w, b, stride=(1, 1), padding=(0, 0), output_padding=(0, 0), dilation=(1, 1), groups=1):
  """Scatter form: every input pixel adds weight * value at stride-spaced places, then padding crops the border."""
  (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
  n, c, h, wd = x.shape
  _, og, kh, kw = w.shape
  cg = c // groups
  full_h, full_w = (h - 1) * sh + dh * (kh - 1) + 1 + oph, (wd - 1) * sw + dw * (kw - 1) + 1 + opw
  full = np.zeros((n, og * groups, full_h, full_w))
  for g in range(groups):
    for i in range(kh):
      for j in range(kw):
        contrib = np.einsum("nchw,co->nohw", x[:, g * cg:(g + 1) * cg], w[g * cg:(g + 1) * cg, :, i, j])
        full[:, g * og:(g + 1) * og, i * dh:i * dh + sh * (h - 1) + 1:sh, j * dw:j * dw + sw * (wd - 1) + 1:sw] += contrib
  out_h, out_w = full_h - 2 * ph, full_w - 2 * pw
  out = full[:, :, ph:ph + out_h, pw:pw + out_w]
  return out + (0 if b is None else b.reshape(1, -1, 1, 1))


CONV_CASES = {
  "plain": dict(cin=3, cout=4, k=3, kw={}),
  "stride_pad": dict(cin=2, cout=4, k=3, kw=dict(stride=2, padding=1)),
  "rect_dilation": dict(cin=2, cout=3, k=(2, 3), kw=dict(padding=(2, 1), dilation=(2, 1))),
  "groups": dict(cin=4, cout=6, k=3, kw=dict(groups=2, padding=1, stride=(1, 2))),
  "depthwise": dict(cin=3, cout=3, k=3, kw=dict(groups=3)),
}


def _conv_ref_args(layer, kw):
  pad = layer.padding if isinstance(layer.padding, tuple) and len(layer.padding) == 2 else (layer.padding, layer.padding)
  return dict(stride=layer.stride, padding=pad, dilation=layer.dilation, groups=layer.groups)


@pytest.mark.parametrize("device,case", cases_on_devices(CONV_CASES, "groups"))
def test_conv2d(device, case):
  c = CONV_CASES[case]
  layer = Conv2d(c["cin"], c["cout"], c["k"], **c["kw"])
  w = set_weights(layer, weight=rng.normal(size=layer.weight.shape), bias=rng.normal(size=c["cout"]))
  x = rng.normal(size=(2, c["cin"], 7, 6))
  out, dx, grads, r = run_layer(layer, x, device)
  args = _conv_ref_args(layer, c["kw"])
  np.testing.assert_allclose(out, conv2d_ref(x, w["weight"], w["bias"], **args), **TOL)
  np.testing.assert_allclose(dx, linear_basis_grad(lambda z: conv2d_ref(z, w["weight"], None, **args), x.shape, r), **TOL)
  np.testing.assert_allclose(grads["weight"], linear_basis_grad(lambda z: conv2d_ref(x, z, None, **args), w["weight"].shape, r), **TOL)
  np.testing.assert_allclose(grads["bias"], r.sum((0, 2, 3)), **TOL)


def test_conv2d_same_padding(device):
  layer = Conv2d(2, 2, (3, 4), padding="same", bias=False)
  w = set_weights(layer, weight=rng.normal(size=layer.weight.shape))
  x = rng.normal(size=(1, 2, 5, 6))
  out = layer(Tensor(x.astype(np.float32), device=device)).numpy()
  assert out.shape == (1, 2, 5, 6)
  # PyTorch's 'same' puts the odd extra column of padding on the right
  xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 2)))
  np.testing.assert_allclose(out, conv2d_ref(xp, w["weight"], None), **TOL)
  with pytest.raises(ValueError, match="stride 1"): Conv2d(2, 2, 3, stride=2, padding="same")
  with pytest.raises(ValueError, match="divisible by groups"): Conv2d(3, 4, 3, groups=2)


@pytest.mark.parametrize("mode,np_mode", [("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap")])
@pytest.mark.parametrize("padding", [1, (2, 1), "same"])
def test_conv2d_padding_modes(device, mode, np_mode, padding):
  """padding_mode as in PyTorch's Conv2d: the input padded with its reflection, its edge or itself (wrapped around),
  then convolved without padding; the gradient flows back through that padding. (Its own random numbers: the
  module's stream feeds the tests after it, whose data must not depend on this one.)"""
  own = np.random.default_rng(11)
  layer = Conv2d(2, 3, 3, padding=padding, padding_mode=mode, bias=False)
  w = set_weights(layer, weight=own.normal(size=layer.weight.shape))
  x = own.normal(size=(2, 2, 6, 7))
  pads = {1: (1, 1), (2, 1): (2, 1), "same": (1, 1)}[padding]
  xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[0]), (pads[1], pads[1])), mode=np_mode)
  want = conv2d_ref(xp, w["weight"], None)
  out, dx, _, r = run_layer(layer, x, device, own.normal(size=want.shape))
  np.testing.assert_allclose(out, want, **TOL)
  np.testing.assert_allclose(dx, linear_basis_grad(lambda z: conv2d_ref(np.pad(z, ((0, 0), (0, 0), (pads[0],) * 2, (pads[1],) * 2), mode=np_mode), w["weight"], None), x.shape, r), **TOL)
  with pytest.raises(ValueError, match="padding_mode"): Conv2d(2, 2, 3, padding_mode="mirror")


CONVT_CASES = {
  "plain": dict(cin=3, cout=2, k=3, kw={}),
  "stride_pad_outpad": dict(cin=2, cout=3, k=3, kw=dict(stride=2, padding=1, output_padding=1)),
  "rect_dilation": dict(cin=2, cout=2, k=(2, 3), kw=dict(stride=(2, 1), dilation=(1, 2), padding=(0, 1))),
  "groups": dict(cin=4, cout=6, k=3, kw=dict(groups=2, stride=2)),
}


@pytest.mark.parametrize("device,case", cases_on_devices(CONVT_CASES, "stride_pad_outpad"))
def test_conv_transpose2d(device, case):
  c = CONVT_CASES[case]
  layer = ConvTranspose2d(c["cin"], c["cout"], c["k"], **c["kw"])
  w = set_weights(layer, weight=rng.normal(size=layer.weight.shape), bias=rng.normal(size=c["cout"]))
  x = rng.normal(size=(2, c["cin"], 4, 5))
  out, dx, grads, r = run_layer(layer, x, device)
  args = dict(stride=layer.stride, padding=layer.padding, output_padding=layer.output_padding, dilation=layer.dilation, groups=layer.groups)
  np.testing.assert_allclose(out, conv_transpose2d_ref(x, w["weight"], w["bias"], **args), **TOL)
  np.testing.assert_allclose(dx, linear_basis_grad(lambda z: conv_transpose2d_ref(z, w["weight"], None, **args), x.shape, r), **TOL)
  np.testing.assert_allclose(grads["weight"], linear_basis_grad(lambda z: conv_transpose2d_ref(x, z, None, **args), w["weight"].shape, r), **TOL)
  np.testing.assert_allclose(grads["bias"], r.sum((0, 2, 3)), **TOL)


def shifted_conv(x: Tensor, w: Tensor, padding: tuple, stride: int = 1) -> Tensor:
  """conv2d written as a sum over the kernel's offsets of strided slices times the filter taps (no groups, no
  dilation): only primitive ops, so its gradients (of every order) are the autodiff of the primitives."""
  (top, bottom), (left, right) = padding
  xp = x.pad(((0, 0), (0, 0), (top, bottom), (left, right)))
  kh, kw = w.shape[2:]
  oh, ow = (xp.shape[2] - kh) // stride + 1, (xp.shape[3] - kw) // stride + 1
  out = None
  for i in range(kh):
    for j in range(kw):
      part = xp[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
      term = (part.reshape(part.shape[0], 1, *part.shape[1:]) * w[:, :, i, j].reshape(1, *w.shape[:2], 1, 1)).sum(2)
      out = term if out is None else out + term
  return out


@pytest.mark.parametrize("padding,stride", [(((1, 1), (1, 1)), 1), (((2, 0), (1, 3)), 2)])
def test_conv_gradients_of_first_and_second_order_match_the_primitives(device, padding, stride):
  """conv2d's gradient rule (a transposed convolution for the input) against autodiff of the same convolution
  built from slices: the gradients, and the gradient of a gradient (a penalty on the input's gradient)."""
  x = rng.normal(size=(2, 3, 7, 8)).astype(np.float32)
  w = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
  g = None
  results = []
  for conv in (lambda a, b: a.conv2d(b, stride=stride, padding=(padding[1][0], padding[1][1], padding[0][0], padding[0][1])),
               lambda a, b: shifted_conv(a, b, padding, stride)):
    tx, tw = Tensor(x, requires_grad=True, device=device), Tensor(w, requires_grad=True, device=device)
    out = conv(tx, tw)
    if g is None: g = Tensor(rng.normal(size=out.shape).astype(np.float32), device=device)
    dx, dw = (out * g).sum().gradient(tx, tw)
    penalty_w, = ((dx * dx).sum() + (dw * dw).sum()).gradient(tw)
    results.append([t.numpy() for t in (out, dx, dw, penalty_w)])
  for got, want in zip(*results): np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conv_input_gradient_is_a_transposed_convolution(device):
  """The input's gradient is one convolution of the output's gradient with the flipped filters: no buffer as big
  as every window of the input (9x it for a 3x3 kernel) is made and summed back."""
  from teeny.schedule import create_schedule
  x = Tensor(rng.normal(size=(2, 8, 12, 12)).astype(np.float32), requires_grad=True, device=device)
  w = Tensor(rng.normal(size=(8, 8, 3, 3)).astype(np.float32), device=device).realize()
  out = x.conv2d(w, padding=1)
  g = Tensor(rng.normal(size=out.shape).astype(np.float32), device=device).realize()
  dx, = (out * g).sum().gradient(x)
  items, *_ = create_schedule([dx.uop], [device])
  biggest = max(b.size for item in items for b in item.bufs)
  assert biggest <= x.numel() * 2, f"a buffer of {biggest} elements for an input of {x.numel()}"
  want = conv_transpose2d_ref(g.numpy(), w.numpy(), None, padding=(1, 1))
  np.testing.assert_allclose(dx.numpy(), want, rtol=1e-4, atol=1e-4)


def test_conv_transpose2d_inverts_conv2d_shapes(device):
  conv = Conv2d(3, 5, 3, stride=2, padding=1)
  up = ConvTranspose2d(5, 3, 3, stride=2, padding=1, output_padding=1)
  x = Tensor(rng.normal(size=(1, 3, 8, 8)).astype(np.float32))
  assert up(conv(x)).shape == (1, 3, 8, 8)


# ---- initialization like PyTorch ----

def _check_uniform(t: Tensor, bound: float):
  """Values of uniform(-bound, bound): inside the bound, reaching near it, with its std and mean (within 5 standard
  errors for this many samples, so a wrong bound or a normal draw fails but an honest draw passes)."""
  v = t.numpy().reshape(-1)
  n, std = v.size, bound / math.sqrt(3)
  assert np.abs(v).max() <= bound * (1 + 1e-6)
  assert np.abs(v).max() > bound * (1 - 5 / n)
  assert abs(v.std() / std - 1) < 5 * math.sqrt(0.2 / n)  # the sample std of a uniform has relative sd sqrt(0.2 / n)
  assert abs(v.mean()) < 5 * std / math.sqrt(n)


def test_default_init_matches_pytorch():
  Tensor.manual_seed(7)
  lin = Linear(64, 512)
  _check_uniform(lin.weight, 1 / 8)  # kaiming_uniform(a=sqrt(5)) = uniform(+-1/sqrt(fan_in))
  _check_uniform(lin.bias, 1 / 8)
  conv = Conv2d(8, 256, 3, groups=2)
  assert conv.weight.shape == (256, 4, 3, 3)
  _check_uniform(conv.weight, 1 / 6)  # fan_in = 8 / 2 * 3 * 3
  _check_uniform(conv.bias, 1 / 6)
  convt = ConvTranspose2d(256, 8, 3, groups=2)
  assert convt.weight.shape == (256, 4, 3, 3)  # (in, out / groups, kh, kw)
  _check_uniform(convt.weight, 1 / 6)  # PyTorch's fan_in for it: weight.shape[1] * kh * kw
  assert np.abs(convt.bias.numpy()).max() <= 1 / 6 * (1 + 1e-6)  # only 8 values: just the bound
  emb = Embedding(100, 64).weight.numpy()
  assert abs(emb.mean()) < 0.03 and abs(emb.std() - 1) < 0.03  # normal(0, 1)
  for layer in (BatchNorm2d(6), LayerNorm(6), GroupNorm(2, 6)):
    np.testing.assert_array_equal(layer.weight.numpy(), np.ones(6))
    np.testing.assert_array_equal(layer.bias.numpy(), np.zeros(6))
  np.testing.assert_array_equal(RMSNorm(6).weight.numpy(), np.ones(6))


def test_two_draws_differ():
  a, b = Linear(16, 16), Linear(16, 16)
  assert not np.array_equal(a.weight.numpy(), b.weight.numpy())


# ---- normalization layers ----

def norm_ref(x, axes, eps):
  """x normalized over axes (mean 0, biased variance 1) and the pieces its gradient needs."""
  mu = x.mean(axes, keepdims=True)
  invstd = 1 / np.sqrt(x.var(axes, keepdims=True) + eps)
  return (x - mu) * invstd, invstd


def norm_ref_grad(xhat, invstd, dxhat, axes):
  """d/dx of normalizing over axes, given the gradient at the normalized value."""
  n = np.prod([xhat.shape[a] for a in axes])
  return invstd / n * (n * dxhat - dxhat.sum(axes, keepdims=True) - xhat * (dxhat * xhat).sum(axes, keepdims=True))


BN_SHAPES = {"NC": (6, 3), "NCL": (4, 3, 5), "NCHW": (2, 3, 4, 5)}


@pytest.mark.parametrize("device,case", cases_on_devices(BN_SHAPES, "NCHW"))
def test_batchnorm_training(device, case):
  shape = BN_SHAPES[case]
  layer = BatchNorm(3)
  w = set_weights(layer, weight=rng.normal(size=3), bias=rng.normal(size=3))
  x = rng.normal(size=shape) * 2 + 1
  axes = tuple(a for a in range(len(shape)) if a != 1)
  per_c = (1, -1) + (1,) * (len(shape) - 2)
  with Tensor.train(): out, dx, grads, r = run_layer(layer, x, device)
  xhat, invstd = norm_ref(x, axes, 1e-5)
  np.testing.assert_allclose(out, xhat * w["weight"].reshape(per_c) + w["bias"].reshape(per_c), **TOL)
  np.testing.assert_allclose(dx, norm_ref_grad(xhat, invstd, r * w["weight"].reshape(per_c), axes), **TOL)
  np.testing.assert_allclose(grads["weight"], (r * xhat).sum(axes), **TOL)
  np.testing.assert_allclose(grads["bias"], r.sum(axes), **TOL)


def test_batchnorm_running_stats_and_eval(device):
  layer = BatchNorm2d(3, momentum=0.1)
  w = set_weights(layer, weight=rng.normal(size=3), bias=rng.normal(size=3))
  mean, var = np.zeros(3), np.ones(3)
  for _ in range(3):
    x = rng.normal(size=(4, 3, 2, 5)) * 3 - 1
    with Tensor.train(): layer(Tensor(x.astype(np.float32), device=device)).realize()
    n = x.size // 3
    mean = 0.9 * mean + 0.1 * x.mean((0, 2, 3))
    var = 0.9 * var + 0.1 * x.var((0, 2, 3)) * n / (n - 1)  # unbiased, like PyTorch
  np.testing.assert_allclose(layer.running_mean.numpy(), mean, **TOL)
  np.testing.assert_allclose(layer.running_var.numpy(), var, **TOL)
  assert layer.num_batches_tracked.item() == 3
  # eval: a fixed affine map by the running statistics, and its gradient
  x = rng.normal(size=(2, 3, 3, 3))
  out, dx, grads, r = run_layer(layer, x, device)
  scale = (w["weight"] / np.sqrt(var + 1e-5)).reshape(1, 3, 1, 1)
  np.testing.assert_allclose(out, (x - mean.reshape(1, 3, 1, 1)) * scale + w["bias"].reshape(1, 3, 1, 1), **TOL)
  np.testing.assert_allclose(dx, r * scale, **TOL)
  np.testing.assert_allclose(layer.running_mean.numpy(), mean, **TOL)  # eval leaves them alone
  assert layer.num_batches_tracked.item() == 3


def test_batchnorm_cumulative_average_and_no_tracking(device):
  layer = BatchNorm1d(2, momentum=None)
  xs = [rng.normal(size=(5, 2)) for _ in range(3)]
  for x in xs:
    with Tensor.train(): layer(Tensor(x.astype(np.float32), device=device)).realize()
  np.testing.assert_allclose(layer.running_mean.numpy(), np.mean([x.mean(0) for x in xs], 0), **TOL)
  np.testing.assert_allclose(layer.running_var.numpy(), np.mean([x.var(0, ddof=1) for x in xs], 0), **TOL)
  free = BatchNorm1d(2, track_running_stats=False, affine=False)
  assert list(get_state_dict(free)) == []
  x = rng.normal(size=(6, 2))
  out = free(Tensor(x.astype(np.float32), device=device)).numpy()  # eval, but batch statistics
  np.testing.assert_allclose(out, norm_ref(x, (0,), 1e-5)[0], **TOL)


def test_batchnorm_layers_do_not_share_statistics(device):
  a, b = BatchNorm(4), BatchNorm(4)
  Tensor.realize_all(*get_parameters(a), *get_parameters(b))
  with Tensor.train(): a(Tensor(rng.normal(size=(3, 4)).astype(np.float32) + 5, device=device)).realize()
  np.testing.assert_array_equal(b.running_mean.numpy(), np.zeros(4))
  np.testing.assert_array_equal(b.running_var.numpy(), np.ones(4))
  assert a.running_mean.numpy().min() > 0.1


def test_batchnorm_with_an_optimizer(device):
  """Running statistics are buffers of the optimizer: realized by the step, from the batch the step trained on."""
  layer = BatchNorm(2)
  opt = SGD(get_parameters(layer), lr=0.1)
  assert [id(t) for t in opt.buffers] == [id(layer.running_mean), id(layer.running_var), id(layer.num_batches_tracked)]
  x = rng.normal(size=(8, 2)) + 3
  with Tensor.train():
    opt.zero_grad()
    (layer(Tensor(x.astype(np.float32), device=device)) * Tensor(np.arange(16.0).reshape(8, 2).astype(np.float32), device=device)).sum().backward()
    opt.step()
  np.testing.assert_allclose(layer.running_mean.numpy(), 0.1 * x.mean(0), **TOL)
  assert layer.num_batches_tracked.item() == 1


def test_batchnorm_statistics_update_under_tinyjit_with_an_optimizer_of_the_weights_alone(device):
  """An optimizer given only BatchNorm's weight and bias (PyTorch's model.parameters()) left the running statistics'
  updates pending: under TinyJit they stopped after the capture (num_batches_tracked 2 after 6 steps), and eagerly
  each step's update was a graph over the last. They run with the step now; float64 statistics with
  momentum=None average in float64."""
  from teeny import TinyJit
  from teeny.schedule import is_realized
  batches = [rng.normal(size=(4, 3, 2, 2)).astype(np.float32) for _ in range(6)]
  results = []
  for jit in (False, True):
    layer = BatchNorm(3)
    opt = SGD([layer.weight, layer.bias], lr=0.1)
    def step(x):
      opt.zero_grad()
      loss = layer(x).square().mean()
      loss.backward()
      opt.step()
      return loss
    step = TinyJit(step) if jit else step
    with Tensor.train():
      for b in batches:
        step(Tensor(b, device=device))
        assert is_realized(layer.running_mean.uop)  # (no graph left pending between steps)
    results.append((layer.num_batches_tracked.item(), layer.running_mean.numpy()))
  expected = np.zeros(3)
  for b in batches: expected = 0.9 * expected + 0.1 * b.mean((0, 2, 3))
  for count, mean in results:
    assert count == 6
    np.testing.assert_allclose(mean, expected, rtol=1e-5, atol=1e-6)
  if Device[device].supports_dtype(dtypes.float64):
    layer = BatchNorm(2, momentum=None)
    layer.running_mean, layer.running_var = (Tensor.zeros(2, dtype=dtypes.float64, device=device).contiguous(),
                                             Tensor.ones(2, dtype=dtypes.float64, device=device).contiguous())
    xs = [rng.normal(size=(5, 2)) for _ in range(3)]
    with Tensor.train():
      for x in xs: layer(Tensor(x, device=device)).realize()
    np.testing.assert_allclose(layer.running_mean.numpy(), np.mean([x.mean(0) for x in xs], axis=0), rtol=1e-13)


def test_batchnorm_errors(device):
  layer = BatchNorm(3)
  with pytest.raises(ValueError, match="3 channels"): layer(Tensor(np.ones((2, 4), np.float32)))
  with Tensor.train():
    with pytest.raises(ValueError, match="more than one value per channel"): layer(Tensor(np.ones((1, 3), np.float32)))


def test_batchnorm_eval_forward_is_one_kernel(device):
  layer = BatchNorm2d(3)
  x = Tensor(rng.normal(size=(2, 3, 4, 4)).astype(np.float32), device=device).realize()
  Tensor.realize_all(*get_parameters(layer))
  GlobalCounters.reset()
  layer(x).realize()
  assert GlobalCounters.kernel_count == 1  # (x - mean) * weight * rsqrt(var + eps) + bias: elementwise


@pytest.mark.parametrize("device,normalized", cases_on_devices({(5,): 0, (4, 5): 0}, (4, 5)))
def test_layernorm(device, normalized):
  layer = LayerNorm(normalized)
  w = set_weights(layer, weight=rng.normal(size=normalized), bias=rng.normal(size=normalized))
  x = rng.normal(size=(3, 4, 5)) * 2 + 1
  axes = tuple(range(3 - len(normalized), 3))
  out, dx, grads, r = run_layer(layer, x, device)
  xhat, invstd = norm_ref(x, axes, 1e-5)
  batch = tuple(range(3 - len(normalized)))
  np.testing.assert_allclose(out, xhat * w["weight"] + w["bias"], **TOL)
  np.testing.assert_allclose(dx, norm_ref_grad(xhat, invstd, r * w["weight"], axes), **TOL)
  np.testing.assert_allclose(grads["weight"], (r * xhat).sum(batch), **TOL)
  np.testing.assert_allclose(grads["bias"], r.sum(batch), **TOL)


def test_layernorm_without_affine(device):
  layer = LayerNorm(6, eps=1e-3, elementwise_affine=False)
  assert list(get_state_dict(layer)) == []
  x = rng.normal(size=(2, 6))
  np.testing.assert_allclose(layer(Tensor(x.astype(np.float32), device=device)).numpy(), norm_ref(x, (1,), 1e-3)[0], **TOL)
  with pytest.raises(ValueError, match="LayerNorm"): layer(Tensor(np.ones((2, 5), np.float32), device=device))


def test_norm_layers_return_a_half_input_in_its_dtype(device):
  # PyTorch's mixed norms: a float16 input with float32 weights is normalized in float32 and returned in float16;
  # teeny returned float32 (the values the same)
  from teeny.nn import InstanceNorm
  x = rng.normal(size=(2, 4, 3, 3)).astype(np.float16)
  for layer in (BatchNorm2d(4), LayerNorm(3), GroupNorm(2, 4), InstanceNorm(4), RMSNorm(3, eps=1e-6)):  # (its default eps is the dtype's)
    out = layer(Tensor(x, device=device))
    assert out.dtype == dtypes.float16, type(layer).__name__
    want = layer(Tensor(x.astype(np.float32), device=device)).numpy()
    np.testing.assert_allclose(out.numpy(), want, rtol=2e-3, atol=2e-3, err_msg=type(layer).__name__)


@pytest.mark.parametrize("device,shape", cases_on_devices({(2, 6, 5): 0, (2, 6, 3, 2): 0}, (2, 6, 3, 2)))
def test_groupnorm(device, shape):
  layer = GroupNorm(3, 6)
  w = set_weights(layer, weight=rng.normal(size=6), bias=rng.normal(size=6))
  x = rng.normal(size=shape) * 2 - 1
  out, dx, grads, r = run_layer(layer, x, device)
  per_c = (1, 6) + (1,) * (len(shape) - 2)
  xg = x.reshape(shape[0], 3, -1)
  xhat_g, invstd = norm_ref(xg, (2,), 1e-5)
  xhat = xhat_g.reshape(shape)
  np.testing.assert_allclose(out, xhat * w["weight"].reshape(per_c) + w["bias"].reshape(per_c), **TOL)
  dxhat = (r * w["weight"].reshape(per_c)).reshape(shape[0], 3, -1)
  np.testing.assert_allclose(dx, norm_ref_grad(xhat_g, invstd, dxhat, (2,)).reshape(shape), **TOL)
  red = (0,) + tuple(range(2, len(shape)))
  np.testing.assert_allclose(grads["weight"], (r * xhat).sum(red), **TOL)
  np.testing.assert_allclose(grads["bias"], r.sum(red), **TOL)
  with pytest.raises(ValueError, match="divisible"): GroupNorm(4, 6)


def test_rmsnorm_default_eps_is_the_dtypes_epsilon_like_pytorch(device):
  """nn.RMSNorm's eps defaults to the input's machine epsilon (torch.finfo(dtype).eps), as PyTorch's: at x = 0 the
  gradient is 1 / sqrt(eps), 2896 in float32 (tinygrad's 1e-6 gives 1000)."""
  layer = RMSNorm(4)
  x = Tensor(np.zeros((2, 4), np.float32), device=device, requires_grad=True)
  layer(x).sum().backward()
  np.testing.assert_allclose(x.grad.numpy(), np.full((2, 4), 1 / np.sqrt(np.finfo(np.float32).eps)), rtol=1e-5)


def test_rmsnorm_of_half_floats_computes_in_float32_with_its_epsilon(device):
  """float16 squares of |x| > 256 overflowed: RMSNorm gave all zeros for [300, -200, 100, 50]. Computed in
  float32 and rounded once, with float32's epsilon as PyTorch's default there (the half dtype's 2**-10 shrank a
  float16 output at scale 0.003 from 0.25 to 0.02)."""
  x = np.array([[300.0, -200.0, 100.0, 50.0], [0.003, -0.002, 0.001, 0.0005]])
  for dt in (dtypes.float16, dtypes.bfloat16):
    out = RMSNorm(4)(Tensor(x, device=device).cast(dt))
    assert out.dtype == dt
    rms = np.sqrt((x * x).mean(-1, keepdims=True) + np.finfo(np.float32).eps)
    np.testing.assert_allclose(out.float().numpy(), x / rms, rtol=2 ** -7 if dt == dtypes.bfloat16 else 2 ** -10)


def test_rmsnorm(device):
  layer = RMSNorm(5, eps=1e-6)
  w = set_weights(layer, weight=rng.normal(size=5))["weight"]
  x = rng.normal(size=(3, 2, 5))
  out, dx, grads, r = run_layer(layer, x, device)
  inv = 1 / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(out, x * inv * w, **TOL)
  g = r * w
  np.testing.assert_allclose(dx, g * inv - x * inv ** 3 * (g * x).sum(-1, keepdims=True) / 5, **TOL)
  np.testing.assert_allclose(grads["weight"], (r * x * inv).sum((0, 1)), **TOL)


# ---- Embedding, Dropout ----

def test_embedding(device):
  layer = Embedding(7, 4)
  w = set_weights(layer, weight=rng.normal(size=(7, 4)))["weight"]
  idx = np.array([[0, 3, 3], [6, 1, 3]])
  out, _, grads, r = run_layer(layer, idx, device, x_dtype=np.int32)
  np.testing.assert_array_equal(out, w[idx].astype(np.float32))  # a selection: exact
  want = np.zeros((7, 4))
  np.add.at(want, idx, r)
  np.testing.assert_allclose(grads["weight"], want, **TOL)
  with pytest.raises(TypeError, match="ints"): layer(Tensor(np.ones(2, np.float32), device=device))


def test_dropout(device):
  Tensor.manual_seed(3)
  x = Tensor(np.full((100, 100), 2.0, np.float32), device=device)
  drop = Dropout(0.3)
  np.testing.assert_array_equal(drop(x).numpy(), x.numpy())  # eval: the identity
  xt = Tensor(np.full((100, 100), 2.0, np.float32), device=device, requires_grad=True)
  with Tensor.train():
    out = drop(xt)
    out.sum().backward()
  v, g = out.numpy(), xt.grad.numpy()
  kept = v != 0
  np.testing.assert_allclose(v[kept], 2.0 / 0.7, rtol=1e-6)  # survivors scaled by 1 / (1 - p)
  assert 0.27 < 1 - kept.mean() < 0.33
  np.testing.assert_allclose(g, np.where(kept, 1 / 0.7, 0.0), rtol=1e-6)  # the same mask in the backward pass
  with Tensor.train():
    np.testing.assert_array_equal(Dropout(0.0)(x).numpy(), x.numpy())
    np.testing.assert_array_equal(Dropout(1.0)(x).numpy(), np.zeros((100, 100)))
  with pytest.raises(ValueError, match="probability"): Dropout(1.5)
  with Tensor.train():  # a NaN or inf dropped stays NaN (x times the mask, as PyTorch): a where() made it 0
    out = Dropout(0.5)(Tensor(np.array([np.nan, np.inf] * 32, np.float32), device=device)).numpy()
  assert np.isnan(out[0::2]).all() and np.isinf(out[1::2]).sum() + np.isnan(out[1::2]).sum() == 32


# ---- a small model end to end ----

def test_two_moons_mlp_reaches_95_percent(device):
  """The classic micrograd demo (examples/micrograd.py): a 2-16-16-1 MLP with a max-margin loss, trained by Adam
  on 200 points; it must classify >= 95% of them within 40 full-batch steps (it gets there in 20-30 from three
  seeds tried)."""
  previous, Device.DEFAULT = Device.DEFAULT, device
  try: assert train_moons(steps=40) >= 0.95
  finally: Device.DEFAULT = previous


def test_pytorch_state_dict_runs_the_same(tmp_path):
  """Weight layouts match PyTorch's: a torch model's state dict, read by torch_load and loaded by name, gives
  the same outputs in teeny (eval mode, so BatchNorm uses the loaded running statistics). One device: this checks
  layouts and names, which are the same on every device."""
  torch = pytest.importorskip("torch")
  from teeny.nn.state import torch_load
  torch.manual_seed(0)
  tm = torch.nn.ModuleDict({"conv": torch.nn.Conv2d(2, 4, 3, stride=2, padding=1), "bn": torch.nn.BatchNorm2d(4),
                            "up": torch.nn.ConvTranspose2d(4, 3, 2, stride=2), "norm": torch.nn.LayerNorm(8),
                            "fc": torch.nn.Linear(8, 5), "emb": torch.nn.Embedding(10, 8)})
  with torch.no_grad():
    tm["bn"].running_mean.uniform_(-1, 1)
    tm["bn"].running_var.uniform_(0.5, 2)
  tm.eval()
  torch.save(tm.state_dict(), tmp_path / "m.pt")
  Device.DEFAULT = CHEAP
  model = {"conv": Conv2d(2, 4, 3, stride=2, padding=1), "bn": BatchNorm2d(4), "up": ConvTranspose2d(4, 3, 2, stride=2),
           "norm": LayerNorm(8), "fc": Linear(8, 5), "emb": Embedding(10, 8)}
  load_state_dict(model, torch_load(tmp_path / "m.pt"))
  x = np.random.default_rng(0).normal(size=(2, 2, 8, 8)).astype(np.float32)
  idx = np.array([[1, 9, 4]])
  with torch.no_grad():
    want = tm["fc"](tm["norm"](tm["up"](tm["bn"](tm["conv"](torch.from_numpy(x)))))).numpy()
    want_emb = tm["emb"](torch.from_numpy(idx)).numpy()
  got = model["fc"](model["norm"](model["up"](model["bn"](model["conv"](Tensor(x)))))).numpy()
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(model["emb"](Tensor(idx.astype(np.int32))).numpy(), want_emb)


def test_conv1d_conv3d_and_conv_transpose1d_match_the_2d_references(device):
  """Conv1d is Conv2d over a height of 1; Conv3d sums 2-d convolutions over its depth taps; ConvTranspose1d is
  ConvTranspose2d over a height of 1; 'same' padding keeps every spatial size."""
  from teeny.nn import Conv1d, Conv3d, ConvTranspose1d
  conv1 = Conv1d(3, 4, 3, stride=2, padding=1)
  w = set_weights(conv1, weight=rng.normal(size=(4, 3, 3)), bias=rng.normal(size=4))
  x = rng.normal(size=(2, 3, 9))
  out = conv1(Tensor(x.astype(np.float32), device=device)).numpy()
  want = conv2d_ref(x[:, :, None], w["weight"][:, :, None], w["bias"], stride=(1, 2), padding=(0, 1))[:, :, 0]
  np.testing.assert_allclose(out, want, **TOL)
  conv3 = Conv3d(2, 3, (2, 3, 3), padding=(0, 1, 1))
  w = set_weights(conv3, weight=rng.normal(size=(3, 2, 2, 3, 3)), bias=rng.normal(size=3))
  x = rng.normal(size=(1, 2, 4, 5, 6))
  out = conv3(Tensor(x.astype(np.float32), device=device)).numpy()
  want = np.stack([sum(conv2d_ref(x[:, :, d + kd], w["weight"][:, :, kd], None, padding=(1, 1)) for kd in range(2))
                   for d in range(3)], axis=2) + w["bias"].reshape(1, 3, 1, 1, 1)
  np.testing.assert_allclose(out, want, **TOL)
  up = ConvTranspose1d(3, 2, 3, stride=2, padding=1, output_padding=1)
  w = set_weights(up, weight=rng.normal(size=(3, 2, 3)), bias=rng.normal(size=2))
  x = rng.normal(size=(2, 3, 5))
  out = up(Tensor(x.astype(np.float32), device=device)).numpy()
  want = conv_transpose2d_ref(x[:, :, None], w["weight"][:, :, None], w["bias"], stride=(1, 2), padding=(0, 1),
                              output_padding=(0, 1))[:, :, 0]
  np.testing.assert_allclose(out, want, **TOL)
  assert Conv1d(2, 2, 4, padding="same")(Tensor.ones(1, 2, 7, device=device)).shape == (1, 2, 7)
  assert Conv3d(2, 2, 3, padding="same")(Tensor.ones(1, 2, 3, 4, 5, device=device)).shape == (1, 2, 3, 4, 5)


# ---- InstanceNorm, LayerNorm2d, LSTMCell, GRUCell, BatchNorm(sz=): against torch, forward and gradients ----

def torch_run(module, inputs: list[np.ndarray], r: np.ndarray, call=None):
  """out = call(module, *inputs) in torch (float64), then backward of sum(out * r): out, input grads, {name: grad}."""
  torch = pytest.importorskip("torch")
  module = module.double()
  xs = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in inputs]
  out = (call or (lambda m, *a: m(*a)))(module, *xs)
  (out * torch.from_numpy(r)).sum().backward()
  grads = {k: p.grad.numpy() for k, p in module.named_parameters()}
  return out.detach().numpy(), [x.grad.numpy() for x in xs], grads


def load_from_torch(layer, module) -> None:
  """The torch module's parameters, by name, into the teeny layer (float32)."""
  load_state_dict(layer, {k: v.detach().numpy().astype(np.float32) for k, v in module.state_dict().items()}, strict=False)


@pytest.mark.parametrize("device,shape", cases_on_devices({(2, 3, 5): 0, (2, 3, 4, 4): 0}, (2, 3, 4, 4)))
def test_instancenorm_matches_torch(device, shape):
  torch = pytest.importorskip("torch")
  from teeny.nn import InstanceNorm
  tm = {3: torch.nn.InstanceNorm1d, 4: torch.nn.InstanceNorm2d}[len(shape)](3, eps=1e-5, affine=True)
  with torch.no_grad():
    tm.weight.normal_()
    tm.bias.normal_()
  layer = InstanceNorm(3)
  load_from_torch(layer, tm)
  x = rng.normal(size=shape) * 2 + 1
  out, dx, grads, r = run_layer(layer, x, device)
  want, (want_dx,), want_grads = torch_run(tm, [x.astype(np.float32)], r)
  np.testing.assert_allclose(out, want, **TOL)
  np.testing.assert_allclose(dx, want_dx, **TOL)
  for k in ("weight", "bias"): np.testing.assert_allclose(grads[k], want_grads[k], **TOL, err_msg=k)
  plain = InstanceNorm(3, affine=False)
  assert list(get_state_dict(plain)) == []
  got = plain(Tensor(x.astype(np.float32), device=device)).numpy()
  np.testing.assert_allclose(got, torch.nn.functional.instance_norm(torch.from_numpy(x)).numpy(), **TOL)
  with pytest.raises(ValueError, match="InstanceNorm"): layer(Tensor(np.ones((2, 4, 5), np.float32), device=device))


def test_norm_layers_take_what_torch_takes(device):
  # an unbatched (C, L) input to InstanceNorm raised (PyTorch's InstanceNorm1d reads it as one sample); a batch of 0
  # made GroupNorm's reshape(0, groups, -1) undetermined
  from teeny.nn import InstanceNorm
  x = rng.normal(size=(3, 5)).astype(np.float32)
  got = InstanceNorm(3, affine=False)(Tensor(x, device=device)).numpy()
  mean, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
  np.testing.assert_allclose(got, (x - mean) / np.sqrt(var + 1e-5), **TOL)
  assert GroupNorm(2, 4)(Tensor.zeros(0, 4, 3, device=device)).numpy().shape == (0, 4, 3)


def test_layernorm2d_matches_torch(device):
  torch = pytest.importorskip("torch")
  from teeny.nn import LayerNorm2d
  tm = torch.nn.LayerNorm(3, eps=1e-6)
  with torch.no_grad():
    tm.weight.normal_()
    tm.bias.normal_()
  layer = LayerNorm2d(3, eps=1e-6)
  load_from_torch(layer, tm)
  x = rng.normal(size=(2, 3, 4, 5)) - 0.5
  out, dx, grads, r = run_layer(layer, x, device)
  want, (want_dx,), want_grads = torch_run(tm, [x.astype(np.float32)], r, lambda m, a: m(a.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
  np.testing.assert_allclose(out, want, **TOL)
  np.testing.assert_allclose(dx, want_dx, **TOL)
  for k in ("weight", "bias"): np.testing.assert_allclose(grads[k], want_grads[k], **TOL, err_msg=k)
  with pytest.raises(ValueError, match="LayerNorm2d"): layer(Tensor(np.ones((2, 4, 5), np.float32), device=device))


def run_cell_teeny(cell, xs: list[np.ndarray], state, r: np.ndarray, device, lstm: bool):
  """Run the cell over the time steps xs from `state` (None: zeros), then backward of sum(last h * r): the last h
  (and c), d/dx of every step and the weights' gradients."""
  weights = get_state_dict(cell)
  for t in weights.values(): t.requires_grad = True
  xts = [Tensor(x.astype(np.float32), device=device, requires_grad=True) for x in xs]
  if state is not None: state = tuple(Tensor(s.astype(np.float32), device=device) for s in state)
  for x in xts:
    state = cell(x, state if lstm or state is None else state[0])
    state = state if lstm else (state,)
  (state[0] * Tensor(r.astype(np.float32), device=device)).sum().backward()
  return [s.numpy() for s in state], [x.grad.numpy() for x in xts], {k: t.grad.numpy() for k, t in weights.items()}


def run_cell_torch(module, xs: list[np.ndarray], state, r: np.ndarray, lstm: bool):
  torch = pytest.importorskip("torch")
  module = module.double()
  xts = [torch.tensor(x, requires_grad=True) for x in xs]
  if state is not None: state = tuple(torch.tensor(s) for s in state)
  for x in xts:
    state = module(x, state if lstm or state is None else state[0])
    state = state if lstm else (state,)
  (state[0] * torch.from_numpy(r)).sum().backward()
  return [s.detach().numpy() for s in state], [x.grad.numpy() for x in xts], {k: p.grad.numpy() for k, p in module.named_parameters()}


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell"])
@pytest.mark.parametrize("start", ["zeros", "given"])
def test_recurrent_cells_match_torch(device, kind, start):
  """Three time steps of a torch cell's weights loaded by name (PyTorch's gate order), from a given state or from
  hc=None; outputs and the gradients of every step's input and every weight."""
  torch = pytest.importorskip("torch")
  import teeny.nn as nn
  lstm = kind == "LSTMCell"
  torch.manual_seed(1)
  tm = getattr(torch.nn, kind)(4, 5)
  cell = getattr(nn, kind)(4, 5)
  load_from_torch(cell, tm)
  xs = [rng.normal(size=(3, 4)) for _ in range(3)]
  state = None if start == "zeros" else tuple(rng.normal(size=(3, 5)) for _ in range(2 if lstm else 1))
  r = rng.normal(size=(3, 5))
  got_state, got_dx, got_grads = run_cell_teeny(cell, xs, state, r, device, lstm)
  want_state, want_dx, want_grads = run_cell_torch(tm, [x.astype(np.float32).astype(np.float64) for x in xs],
                                                   None if state is None else [s.astype(np.float32).astype(np.float64) for s in state], r, lstm)
  for g, w in zip(got_state, want_state): np.testing.assert_allclose(g, w, **TOL)
  for g, w in zip(got_dx, want_dx): np.testing.assert_allclose(g, w, **TOL)
  assert set(got_grads) == set(want_grads) == {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}
  for k in want_grads: np.testing.assert_allclose(got_grads[k], want_grads[k], **TOL, err_msg=k)


def test_recurrent_cells_forms_init_and_errors():
  """tinygrad's call form `h, c = cell(x, (h, c))`, an unbatched input (PyTorch's), bias=False, PyTorch's init
  (every weight and bias uniform(+-1/sqrt(hidden))), and clear errors."""
  from teeny.nn import LSTMCell, GRUCell
  lstm = LSTMCell(3, 64)
  assert lstm.weight_ih.shape == (256, 3) and lstm.weight_hh.shape == (256, 64) and lstm.bias_ih.shape == (256,)
  for t in (lstm.weight_hh, lstm.bias_hh): _check_uniform(t, 1 / 8)
  x = Tensor(rng.normal(size=(2, 3)).astype(np.float32))
  h, c = lstm(x)
  h2, c2 = lstm(x, (h, c))
  assert h2.shape == c2.shape == (2, 64)
  h1, c1 = lstm(x[0])
  assert h1.shape == c1.shape == (64,)
  np.testing.assert_allclose(h1.numpy(), h.numpy()[0], **TOL)
  gru = GRUCell(3, 4, bias=False)
  assert gru.bias_ih is None and list(get_state_dict(gru)) == ["weight_ih", "weight_hh"]
  assert gru(x).shape == (2, 4) and gru(x[1], gru(x[1])).shape == (4,)
  with pytest.raises(ValueError, match="input_size 3"): lstm(Tensor.ones(2, 4))
  with pytest.raises(ValueError, match="shape"): gru(x, Tensor.ones(3, 4))
  with pytest.raises(TypeError, match="pair"): lstm(x, h)


def test_batchnorm_takes_tinygrads_sz():
  """tinygrad's BatchNorm(sz=...) beside PyTorch's num_features: the same layer; exactly one of them."""
  a, b = BatchNorm(sz=3, eps=1e-3), BatchNorm(num_features=3, eps=1e-3)
  assert a.num_features == b.num_features == 3 and a.weight.shape == a.running_var.shape == (3,)
  assert BatchNorm2d(sz=4, affine=False).weight is None
  with pytest.raises(TypeError, match="once"): BatchNorm(3, sz=3)
  with pytest.raises(TypeError, match="once"): BatchNorm()
  with pytest.raises(TypeError, match="positive int"): BatchNorm(sz=0)


def test_batchnorm_refuses_tinygrads_positional_order_after_eps():
  """The arguments after eps are PyTorch's (momentum, affine, track_running_stats); tinygrad's are (affine,
  track_running_stats, momentum). tinygrad's BatchNorm(3, 1e-5, False) ran as momentum 0 with weight and bias:
  its running statistics never moved, silently. The types tell the two orders apart, so it raises."""
  with pytest.raises(TypeError, match="momentum must be a number"): BatchNorm(3, 1e-5, False)
  with pytest.raises(TypeError, match="momentum must be a number"): BatchNorm(3, 1e-5, True, True, 0.1)
  with pytest.raises(TypeError, match="track_running_stats must be a bool"): BatchNorm(3, 1e-5, 0.1, True, 0.5)
  layer = BatchNorm(3, 1e-5, 0.2, False, True)  # (PyTorch's positional form)
  assert layer.momentum == 0.2 and layer.weight is None and layer.track_running_stats
  assert BatchNorm(sz=3, affine=np.bool_(False), momentum=np.float32(0.5)).weight is None  # (numpy scalars pass)
  assert BatchNorm(3, momentum=None).momentum is None


def test_sequential_applies_layers_in_order(device):
  """tinygrad's x.sequential(layers): each callable in turn, methods and layers alike."""
  layer = Linear(3, 2)
  x = Tensor([[1.0, -2.0, 3.0]], device=device)
  layer.weight, layer.bias = layer.weight.to(device), layer.bias.to(device)
  np.testing.assert_allclose(x.sequential([Tensor.relu, layer, Tensor.neg]).numpy(), (-layer(x.relu())).numpy(), rtol=1e-6)
  assert x.sequential([]) is x


def _np_log_softmax(x, axis):
  shifted = x - x.max(axis, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis, keepdims=True))


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_and_bce_take_a_class_weight(device, label_smoothing):
  """weight= (PyTorch's keyword) raised TypeError. With class indices each row's terms scale by its class's weight
  and the mean divides by the weights of the rows kept (ignore_index rows out)."""
  x = rng.standard_normal((6, 4, 3)).astype(np.float32)
  w = np.array([0.5, 2.0, 1.0, 0.1], np.float32)
  y = rng.integers(0, 4, (6, 3))
  y[0, 0] = -100
  logp = _np_log_softmax(x.astype(np.float64), 1) * w.reshape(4, 1)
  kept = y != -100
  picked = -np.take_along_axis(logp, np.where(kept, y, 0)[:, None], 1)[:, 0]
  rows = (1 - label_smoothing) * picked - label_smoothing * logp.mean(1)
  want = np.where(kept, rows, 0).sum() / np.where(kept, w[np.where(kept, y, 0)], 0).sum()
  got = Tensor(x, device=device).cross_entropy(Tensor(y.astype(np.int32), device=device), label_smoothing=label_smoothing,
                                               weight=Tensor(w, device=device))
  np.testing.assert_allclose(got.item(), want, rtol=1e-5)
  p, t, bw = rng.random(5).astype(np.float32), (rng.random(5) > 0.5).astype(np.float32), rng.random(5).astype(np.float32)
  bce = -(t * np.log(p) + (1 - t) * np.log(1 - p)) * bw
  np.testing.assert_allclose(Tensor(p, device=device).binary_crossentropy(Tensor(t, device=device), weight=Tensor(bw, device=device)).item(),
                             bce.mean(), rtol=1e-5)
  logits = np.log(p / (1 - p))
  np.testing.assert_allclose(Tensor(logits, device=device).binary_crossentropy_logits(Tensor(t, device=device), "sum", weight=Tensor(bw, device=device)).item(),
                             bce.sum(), rtol=1e-5)


def test_layer_keywords_pytorch_has(device):
  """Embedding(padding_idx=) (a zero row that gets no gradient), LayerNorm(bias=False), Adam(betas=) and
  zero_grad(set_to_none=False) raised TypeError."""
  from teeny.nn.optim import Adam
  emb = Embedding(5, 3, padding_idx=-1)
  emb.weight.requires_grad = True
  np.testing.assert_array_equal(emb.weight.numpy()[4], 0)
  (emb(Tensor([[4, 1, 4]], device=emb.weight.device)) * 2).sum().backward()
  np.testing.assert_array_equal(emb.weight.grad.numpy()[[1, 4]], [[2, 2, 2], [0, 0, 0]])
  norm = LayerNorm(3, bias=False)
  assert norm.bias is None and list(get_state_dict(norm)) == ["weight"]
  x = rng.standard_normal((2, 3)).astype(np.float32)
  np.testing.assert_allclose(norm(Tensor(x, device=device)).numpy(), (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5), rtol=1e-5, atol=1e-6)
  w = Tensor([1.0], device=device, requires_grad=True)
  opt = Adam([w], lr=0.1, betas=(0.5, 0.75))
  assert (opt.b1, opt.b2) == (0.5, 0.75)
  (w * 3).sum().backward()
  grad = w.grad
  opt.zero_grad(set_to_none=False)
  assert w.grad is grad and w.grad.numpy().tolist() == [0.0]


@pytest.mark.skipif("LLVM" not in DEVICES, reason="no LLVM device")
def test_lstm_backward_over_five_steps_compiles_and_is_right():
  """An LSTMCell's backward over 5 steps (batch 2, input 3, hidden 4) made one kernel of 34k lines of LLVM IR that
  aborted the process in LLVM's SLP vectorizer (an assertion): tanh's gradient is 1 - y^2 of its value again, and
  kernels that big compile without SLP. In a child process, so a regression fails this test, not the run; one
  weight's gradient is checked against a central difference. LLVM only: PoCL 3.0 takes over 5 minutes to build
  that kernel (README says so)."""
  device = "LLVM"
  import os, sys
  sys.path.insert(0, os.path.dirname(__file__))
  from child import run_in_child
  code = ("import numpy as np; from teeny import Tensor, nn\n"
          "Tensor.manual_seed(0)\n"
          f"cell = nn.LSTMCell(3, 4); x = Tensor(np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32), device={device!r})\n"
          "for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh): p.replace(p.to(x.device).realize()).requires_grad = True\n"
          "def loss():\n  h = None\n  for t in range(5): h = cell(x[t], h)\n  return h[0].sum()\n"
          "loss().backward(); grad = float(cell.weight_hh.grad.numpy()[1, 2])\n"
          "w = cell.weight_hh.numpy(); ends = []\n"
          "for step in (1e-2, -1e-2):\n  moved = w.copy(); moved[1, 2] += step; cell.weight_hh.assign(Tensor(moved, device=x.device)); ends.append(loss().item())\n"
          "print(grad, (ends[0] - ends[1]) / 2e-2)")
  grad, numeric = map(float, run_in_child(code).stdout.split())
  assert np.isfinite(grad) and abs(grad - numeric) <= 1e-2 * max(1.0, abs(numeric)), (grad, numeric)


def test_linear_of_no_inputs_is_its_bias(device):
  """Linear(0, 3) builds (its kaiming bound divided by sqrt(0)) and maps a (2, 0) batch to the bias, as PyTorch's."""
  layer = Linear(0, 3)
  out = layer(Tensor.zeros(2, 0, device=device).to(layer.weight.device))
  np.testing.assert_allclose(out.numpy(), np.broadcast_to(layer.bias.numpy(), (2, 3)))
