"""Convolution and pooling at their edges, against PyTorch's semantics: a transposed convolution (and a
convolution's input gradient, which is one) sums only the products with the input's elements, so an infinite or
NaN weight reaches only the outputs it touches (teeny spread and padded the input with zeros first, and 0 * inf
made NaN elsewhere); one-element stride/padding sequences, an empty output, the pools' one-element kernel_size
and padding rule, and the ConvTranspose layers' output_size range.

The transposed convolution's reference is a numpy loop over the input positions and kernel taps written here
(it never multiplies by a zero it made), which runs without torch; PyTorch is compared too where installed."""
import itertools

import numpy as np
import pytest

from teeny import Tensor, GlobalCounters, Device
import teeny.nn as tnn
import teeny.ops.conv as conv_ops

try:
  import torch
  F = torch.nn.functional
except ImportError:  # (CI: no PyTorch; the numpy reference stands in)
  torch = F = None
rng = np.random.default_rng(23)
inf, nan = float("inf"), float("nan")


def reference_conv_transpose(x, w, stride, padding, output_padding, dilation, groups):
  """PyTorch's conv_transpose: input element i adds x[i] * w[tap] at output i * stride + tap * dilation - padding,
  for each tap of the kernel (w: (C_in, C_out/groups, *kernel)); float64 sums of the float32 products."""
  n, cin = x.shape[:2]
  cout_g, kernel = w.shape[1], w.shape[2:]
  sizes = [(m - 1) * s - 2 * p + d * (k - 1) + 1 + op
           for m, k, s, p, op, d in zip(x.shape[2:], kernel, stride, padding, output_padding, dilation)]
  out = np.zeros((n, cout_g * groups, *sizes))
  cin_g = cin // groups
  for g in range(groups):
    xs, ws = x[:, g * cin_g:(g + 1) * cin_g].astype(np.float64), w[g * cin_g:(g + 1) * cin_g].astype(np.float64)
    for i in itertools.product(*(range(m) for m in x.shape[2:])):
      for tap in itertools.product(*(range(k) for k in kernel)):
        o = [a * s + t * d - p for a, t, s, d, p in zip(i, tap, stride, dilation, padding)]
        if not all(0 <= v < m for v, m in zip(o, sizes)): continue
        term = np.einsum("nc,co->no", xs[(slice(None), slice(None)) + i], ws[(slice(None), slice(None)) + tap])
        with np.errstate(invalid="ignore"): out[(slice(None), slice(g * cout_g, (g + 1) * cout_g)) + tuple(o)] += term  # (inf - inf)
  return out.astype(np.float32)


def _weight_with(shape, special):
  w = rng.standard_normal(shape).astype(np.float32)
  if special is not None: w.flat[rng.integers(0, w.size, 2)] = special
  return w


CASES = [  # (input spatial sizes, kernel, stride, padding, output_padding, dilation, groups)
  ((5,), (3,), (1,), (0,), (0,), (1,), 1),
  ((4,), (3,), (2,), (1,), (1,), (1,), 1),
  ((3,), (2,), (3,), (0,), (2,), (2,), 2),
  ((4, 3), (3, 3), (1, 1), (1, 0), (0, 0), (1, 1), 1),
  ((3, 4), (3, 2), (2, 2), (1, 1), (1, 0), (1, 2), 1),
  ((3, 3), (2, 3), (2, 3), (0, 2), (0, 1), (2, 1), 2),
  ((4, 4), (1, 1), (2, 2), (0, 0), (1, 1), (1, 1), 1),
  ((2, 3, 2), (2, 2, 3), (2, 1, 2), (1, 0, 1), (1, 0, 0), (1, 2, 1), 1),
]


@pytest.fixture(params=[False, True], ids=["direct", "by_phase"])
def by_phase(request, monkeypatch):
  """Both ways a transposed convolution with a stride runs: one convolution over the input spread out (small ones)
  and one per phase of the stride (big ones; here every one)."""
  if request.param: monkeypatch.setattr(conv_ops, "PHASES_MIN_PRODUCTS", 0)
  return request.param


@pytest.mark.parametrize("special", [None, inf, -inf, nan])
@pytest.mark.parametrize("case", CASES)
def test_conv_transpose_sums_only_the_inputs_terms(device, case, special, by_phase):
  sizes, kernel, stride, padding, output_padding, dilation, groups = case
  x = rng.standard_normal((2, 2 * groups, *sizes)).astype(np.float32)
  w = _weight_with((2 * groups, 2, *kernel), special)
  got = Tensor(x, device=device).conv_transpose2d(Tensor(w, device=device), None, groups, stride, dilation, padding, output_padding)
  want = reference_conv_transpose(x, w, stride, padding, output_padding, dilation, groups)
  np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)
  if torch is None: return
  conv_transpose = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[len(sizes)]
  torch_out = conv_transpose(torch.tensor(x), torch.tensor(w), None, stride, padding, output_padding, groups, dilation)
  np.testing.assert_allclose(got.numpy(), torch_out.numpy(), rtol=1e-5, atol=1e-5)


def test_non_finite_weights_reach_what_pytorch_reaches(device, by_phase):
  """The sweep's cases (PyTorch's values): stride 2's inserted zeros and the full correlation's padding give no
  NaN, in conv_transpose and in the input gradient of conv."""
  def t(v): return Tensor(np.array(v, np.float32), device=device)
  np.testing.assert_array_equal(t([[[1., 2., 3.]]]).conv_transpose2d(t([[[inf]]]), stride=2).numpy(), [[[inf, 0, inf, 0, inf]]])
  np.testing.assert_array_equal(t([[[1., 2., 3.]]]).conv_transpose2d(t([[[1., inf]]])).numpy(), [[[1, inf, inf, inf]]])
  for w, want in [([[[1., inf]]], [1, inf, inf]), ([[[nan, 1.]]], [nan, nan, 1])]:
    x = Tensor(np.array([[[1., 2., 3.]]], np.float32), device=device, requires_grad=True)
    x.conv2d(t(w)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[want]])


@pytest.mark.parametrize("special", [None, inf, nan])
@pytest.mark.parametrize("sizes,kernel,stride,padding,dilation,groups", [
  ((7,), (3,), (2,), (1,), (1,), 1), ((8, 7), (3, 3), (1, 1), (1, 1), (1, 1), 1), ((9, 8), (3, 2), (2, 3), (1, 0), (1, 2), 2),
  ((6, 7), (2, 3), (3, 2), (0, 1), (2, 1), 1)])
def test_conv_gradients_match_the_transposed_reference(device, sizes, kernel, stride, padding, dilation, groups, special, by_phase):
  """x.grad of a convolution is the transposed convolution of the output's gradient (its output_padding the rows a
  stride leaves unread); with finite inputs weight.grad is the sum of windows times that gradient."""
  x = rng.standard_normal((2, 2 * groups, *sizes)).astype(np.float32)
  w = _weight_with((4, 2, *kernel), special)
  tx, tw = Tensor(x, device=device, requires_grad=True), Tensor(w, device=device, requires_grad=True)
  out = tx.conv2d(tw, None, groups, stride, dilation, padding)
  g = rng.standard_normal(out.shape).astype(np.float32)
  (out * Tensor(g, device=device)).sum().backward()
  rows = [(m + 2 * p - d * (k - 1) - 1) % s for m, p, d, k, s in zip(sizes, padding, dilation, kernel, stride)]
  # (C_out, C_in/g, *k) read as a transposed convolution's (C_in', C_out'/g, *k), C_in' = C_out
  want_dx = reference_conv_transpose(g, w, stride, padding, rows, dilation, groups)
  np.testing.assert_allclose(tx.grad.numpy(), want_dx, rtol=1e-5, atol=1e-5)
  if special is None:
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0)) + tuple((p, p) for p in padding))
    want_dw = np.zeros(w.shape)
    cin_g, cout_g = 2, 4 // groups
    for o in itertools.product(*(range(m) for m in out.shape[2:])):
      for tap in itertools.product(*(range(k) for k in kernel)):
        at = tuple(a * s + t * d for a, t, s, d in zip(o, tap, stride, dilation))
        for gi in range(groups):
          xs = padded[(slice(None), slice(gi * cin_g, (gi + 1) * cin_g)) + at]
          gs = g[(slice(None), slice(gi * cout_g, (gi + 1) * cout_g)) + o]
          want_dw[(slice(gi * cout_g, (gi + 1) * cout_g), slice(None)) + tap] += np.einsum("no,nc->oc", gs, xs)
    np.testing.assert_allclose(tw.grad.numpy(), want_dw, rtol=1e-4, atol=1e-4)
  if torch is None: return
  conv = {1: F.conv1d, 2: F.conv2d}[len(sizes)]
  px, pw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
  (conv(px, pw, None, stride, padding, dilation, groups) * torch.tensor(g)).sum().backward()
  np.testing.assert_allclose(tx.grad.numpy(), px.grad.numpy(), rtol=1e-5, atol=1e-5)
  if special is None: np.testing.assert_allclose(tw.grad.numpy(), pw.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_conv_transpose_relays_its_filters_out_like_a_convolution(device):
  """A big stride-1 transposed convolution (its products masked to the input's terms) still reads its filters from
  the scheduler's copy with the output channel innermost: the copy and one kernel."""
  x, w = rng.standard_normal((4, 16, 16, 16)).astype(np.float32), rng.standard_normal((16, 32, 3, 3)).astype(np.float32)
  tx, tw = Tensor(x, device=device).realize(), Tensor(w, device=device).realize()
  GlobalCounters.reset()
  out = tx.conv_transpose2d(tw, padding=1).realize()
  assert GlobalCounters.kernel_count == 2
  np.testing.assert_allclose(out.numpy(), reference_conv_transpose(x, w, (1, 1), (1, 1), (0, 0), (1, 1), 1), rtol=1e-4, atol=1e-4)


def test_conv_transpose_with_an_empty_output_is_empty(device):
  """(2, 1, 2) with stride 3 and padding 2 reaches no output: PyTorch's (2, 2, 0), and zero gradients."""
  x = Tensor(np.ones((2, 1, 2), np.float32), device=device, requires_grad=True)
  w = Tensor(np.ones((1, 2, 1), np.float32), device=device, requires_grad=True)
  out = x.conv_transpose2d(w, Tensor(np.ones(2, np.float32), device=device), stride=3, padding=2)
  assert out.shape == (2, 2, 0) and out.numpy().shape == (2, 2, 0)
  out.sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), np.zeros((2, 1, 2)))
  np.testing.assert_array_equal(w.grad.numpy(), np.zeros((1, 2, 1)))
  with pytest.raises(RuntimeError, match="too small"):
    x.conv_transpose2d(w, stride=3, padding=3)


def test_one_element_conv_arguments_count_for_every_dim(device):
  a = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
  x, w = Tensor(a, device=device), Tensor(np.ones((1, 1, 2, 2), np.float32), device=device)
  np.testing.assert_array_equal(x.conv2d(w, stride=(2,)).numpy(), [[[[10, 18], [42, 50]]]])  # (PyTorch's values)
  np.testing.assert_array_equal(x.conv2d(w, padding=[1]).numpy(), x.conv2d(w, padding=1).numpy())
  np.testing.assert_array_equal(x.conv2d(w, dilation=(2,)).numpy(), x.conv2d(w, dilation=2).numpy())
  np.testing.assert_array_equal(x.conv_transpose2d(w, stride=(2,), padding=(1,), output_padding=(1,)).numpy(),
                                x.conv_transpose2d(w, stride=2, padding=1, output_padding=1).numpy())


def test_negative_conv_padding_raises_as_in_pytorch(device):
  x, w = Tensor.ones(1, 1, 5, 5, device=device), Tensor.ones(1, 1, 3, 3, device=device)
  with pytest.raises(RuntimeError, match="negative padding"): x.conv2d(w, padding=-1)
  with pytest.raises(RuntimeError, match="negative padding"): x.conv2d(w, padding=(1, 1, 0, -1))
  with pytest.raises(RuntimeError, match="padding"): x.conv_transpose2d(w, padding=-1)


def test_2d_pooling_with_a_one_element_kernel_pools_both_axes(device):
  """PyTorch's max_pool2d/avg_pool2d read kernel_size (2,) or [2] as 2x2 (teeny pooled the last axis only, the
  tinygrad reading); the *3d ones as 2x2x2. (A longer kernel_size still pools as many axes: tinygrad's form.)"""
  a = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
  x = Tensor(a, device=device)
  for k in [(2,), [2]]:
    np.testing.assert_array_equal(x.max_pool2d(k).numpy(), [[[[5, 7], [13, 15]]]])
    np.testing.assert_array_equal(x.avg_pool2d(k).numpy(), [[[[2.5, 4.5], [10.5, 12.5]]]])
  x3 = Tensor(np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4), device=device)
  np.testing.assert_array_equal(x3.max_pool3d((2,)).numpy(), x3.max_pool3d(2).numpy())
  np.testing.assert_array_equal(x3.avg_pool3d([2]).numpy(), x3.avg_pool3d(2).numpy())
  values, indices = x.max_pool2d((2,), return_indices=True)
  np.testing.assert_array_equal(Tensor.max_unpool2d(values, indices, (2,)).numpy(), x.max_pool2d(2, return_indices=True)[0].max_unpool2d(
    x.max_pool2d(2, return_indices=True)[1], 2).numpy())
  assert x3.max_pool2d((2, 2, 2)).shape == (1, 1, 2, 2)


def test_one_element_pool_arguments_and_an_empty_stride(device):
  """stride/padding/dilation (1,) count for both axes, and stride=[] is the default (the kernel size), as in PyTorch."""
  a = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
  x = Tensor(a, device=device)
  np.testing.assert_array_equal(x.max_pool2d(2, (1,)).numpy(), x.max_pool2d(2, 1).numpy())
  np.testing.assert_array_equal(x.max_pool2d(2, 2, padding=(1,)).numpy(), [[[[0, 2, 3], [8, 10, 11], [12, 14, 15]]]])
  np.testing.assert_array_equal(x.max_pool2d(2, 1, dilation=[2]).numpy(), x.max_pool2d(2, 1, dilation=2).numpy())
  np.testing.assert_array_equal(x.avg_pool2d(2, (1,), padding=(1,)).numpy(), x.avg_pool2d(2, 1, padding=1).numpy())
  np.testing.assert_array_equal(x.avg_pool2d(2, 1, dilation=[2]).numpy(), x.avg_pool2d(2, 1, 2).numpy())
  np.testing.assert_array_equal(x.max_pool2d(2, stride=[]).numpy(), x.max_pool2d(2).numpy())
  np.testing.assert_array_equal(x.avg_pool2d(2, stride=[]).numpy(), x.avg_pool2d(2).numpy())
  with pytest.raises(RuntimeError, match="kernel_size"): x.max_pool2d([])


def test_max_pool_padding_is_at_most_half_the_kernel(device):
  """PyTorch's bound is half the kernel size, whatever the dilation (teeny allowed half the dilated span)."""
  x = Tensor(np.arange(7, dtype=np.float32).reshape(1, 1, 7), device=device)
  for k, d, p in [(5, 2, 4), (3, 3, 3), (3, 2, 2)]:
    with pytest.raises(RuntimeError, match="half the kernel"): x.max_pool1d(k, stride=1, dilation=d, padding=p)
  np.testing.assert_array_equal(x.max_pool1d(5, stride=1, dilation=2, padding=2).numpy(), [[[6, 5, 6]]])


def test_conv_transpose_layer_output_size_range_and_padding_mode(device, monkeypatch):
  """nn.ConvTranspose*d's output_size picks an output_padding below the stride, PyTorch's range for the layer (the
  functional form also takes one below the dilation); padding_mode='zeros' is accepted, the others refused."""
  monkeypatch.setattr(Device, "DEFAULT", device)  # (a layer makes its weights on the default device, as in tinygrad)
  layer = tnn.ConvTranspose1d(1, 1, 2, stride=1, dilation=2, bias=False)
  layer.weight = Tensor(np.ones((1, 1, 2), np.float32), device=device)
  x = Tensor(np.ones((1, 1, 3), np.float32), device=device)
  assert layer(x, output_size=[5]).shape == (1, 1, 5)
  with pytest.raises(ValueError, match=r"\[5, 5\]"): layer(x, output_size=[6])
  np.testing.assert_array_equal(x.conv_transpose2d(layer.weight, dilation=2, output_padding=1).numpy(), [[[1, 1, 2, 1, 1, 0]]])
  strided = tnn.ConvTranspose2d(1, 1, 3, stride=2, padding_mode="zeros")
  assert strided(Tensor.ones(1, 1, 4, 4, device=device), output_size=(10, 9)).shape == (1, 1, 10, 9)
  with pytest.raises(ValueError, match="padding_mode"): tnn.ConvTranspose2d(1, 1, 3, padding_mode="reflect")


def test_conv_layers_take_one_element_stride_padding_and_dilation(device, monkeypatch):
  """nn.Conv2d(stride=(2,)) and the like: one value for both dims, as PyTorch's layers pass them on."""
  monkeypatch.setattr(Device, "DEFAULT", device)  # (a layer makes its weights on the default device, as in tinygrad)
  conv = tnn.Conv2d(1, 1, 3, stride=(2,), padding=[1], dilation=(1,))
  assert conv.stride == (2, 2) and conv.padding == (1, 1)
  assert conv(Tensor.ones(1, 1, 6, 6, device=device)).shape == (1, 1, 3, 3)
  up = tnn.ConvTranspose2d(1, 1, 3, stride=(2,), padding=(1,), output_padding=(1,))
  assert up(Tensor.ones(1, 1, 3, 3, device=device)).shape == (1, 1, 6, 6)
  with pytest.raises(TypeError, match="kernel_size"): tnn.Conv2d(1, 1, (3,))
