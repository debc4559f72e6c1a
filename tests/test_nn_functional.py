"""Neural network functions on every device against numpy references: matmul with batch dims, linear, conv2d
(stride, padding, dilation, groups), conv_transpose2d, max/avg pooling, layernorm, batchnorm, dropout, attention
and the losses; their gradients against finite differences in float64 (LLVM)."""
import math
import numpy as np
import pytest
from teeny import Tensor, GlobalCounters, dtypes
from teeny.runtime.device import Device
from test_gradient import numeric_grad, analytic_grad

rng = np.random.default_rng(3)
HAS_LLVM = "LLVM" in Device.available()


def np_conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
  n, cin, _, _ = x.shape
  cout, cin_g, kh, kw = w.shape
  x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
  oh = (x.shape[2] - dilation * (kh - 1) - 1) // stride + 1
  ow = (x.shape[3] - dilation * (kw - 1) - 1) // stride + 1
  out, og = np.zeros((n, cout, oh, ow)), cout // groups
  for g in range(groups):
    for i in range(oh):
      for j in range(ow):
        patch = x[:, g * cin_g:(g + 1) * cin_g, i * stride:i * stride + dilation * (kh - 1) + 1:dilation,
                  j * stride:j * stride + dilation * (kw - 1) + 1:dilation]
        out[:, g * og:(g + 1) * og, i, j] = np.einsum("nchw,ochw->no", patch, w[g * og:(g + 1) * og])
  return out if b is None else out + b.reshape(1, -1, 1, 1)


def np_conv_transpose2d(x, w, stride=1, padding=0, dilation=1, output_padding=0, groups=1):
  """Each input pixel scatters its weighted kernel into the output (the definition)."""
  n, cin, h, wd = x.shape
  _, cout_g, kh, kw = w.shape
  oh = (h - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1
  ow = (wd - 1) * stride - 2 * padding + dilation * (kw - 1) + output_padding + 1
  full = np.zeros((n, cout_g * groups, oh + 2 * padding + stride + dilation * kh, ow + 2 * padding + stride + dilation * kw))
  cin_g = cin // groups
  for c in range(cin):
    g = c // cin_g
    for i in range(h):
      for j in range(wd):
        for ki in range(kh):
          for kj in range(kw):
            full[:, g * cout_g:(g + 1) * cout_g, i * stride + ki * dilation, j * stride + kj * dilation] += x[:, c, i, j, None] * w[c, :, ki, kj]
  return full[:, :, padding:padding + oh, padding:padding + ow]


def np_pool(x, k, s, p, d=1, ceil=False, op="max", count_include_pad=True):
  n = x.shape[-1]
  span = n + 2 * p - d * (k - 1) - 1
  out = (-(-span // s) if ceil else span // s) + 1
  if ceil and (out - 1) * s >= n + p: out -= 1
  res = np.zeros(x.shape[:-2] + (out, out))
  for i in range(out):
    for j in range(out):
      rows = [i * s - p + a * d for a in range(k)]
      cols = [j * s - p + a * d for a in range(k)]
      vr, vc = [r for r in rows if 0 <= r < n], [c for c in cols if 0 <= c < n]
      win = x[..., vr, :][..., vc]
      if op == "max": res[..., i, j] = win.max((-2, -1))
      else:
        inside = lambda idx: [q for q in idx if -p <= q < n + p]  # noqa: E731
        count = len(inside(rows)) * len(inside(cols)) if count_include_pad else len(vr) * len(vc)
        res[..., i, j] = win.sum((-2, -1)) / count
  return res


def check(t: Tensor, expected, rtol=1e-4, atol=1e-5):
  out = t.numpy()
  assert out.shape == np.shape(expected), f"{out.shape} != {np.shape(expected)}"
  np.testing.assert_allclose(out, expected, rtol=rtol, atol=atol)


def T(a, device): return Tensor(np.asarray(a, dtype=np.float32), device=device)


def test_matmul_batched_and_broadcast(device):
  a, b = rng.standard_normal((3, 17, 33)), rng.standard_normal((33, 5))
  check(T(a, device) @ T(b, device), a @ b)
  c, d = rng.standard_normal((2, 1, 4, 6)), rng.standard_normal((3, 6, 2))
  check(T(c, device).matmul(T(d, device)), c @ d)
  v = rng.standard_normal(6)
  check(T(c, device).dot(T(v, device)), c @ v)
  with pytest.raises(ValueError, match="don't match"): T(a, device) @ T(b.T, device)


def test_linear(device):
  x, w, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal(5)
  check(T(x, device).linear(T(w, device), T(b, device)), x @ w + b)


CONVS = {"plain": (1, 0, 1, 1), "stride2_pad1": (2, 1, 1, 1), "dilation2": (1, 1, 2, 1), "groups2": (1, 1, 1, 2),
         "stride2_pad1_dil2_groups2": (2, 1, 2, 2), "stride3": (3, 0, 1, 1)}


@pytest.mark.parametrize("name", list(CONVS))
def test_conv2d(device, name):
  stride, padding, dilation, groups = CONVS[name]
  x, w, b = rng.standard_normal((2, 4, 9, 8)), rng.standard_normal((6, 4 // groups, 3, 3)), rng.standard_normal(6)
  out = T(x, device).conv2d(T(w, device), T(b, device), groups=groups, stride=stride, padding=padding, dilation=dilation)
  check(out, np_conv2d(x, w, b, stride, padding, dilation, groups))


def test_conv2d_is_one_kernel_and_checks_channels(device):
  x, w, b = T(rng.standard_normal((1, 3, 6, 6)), device).realize(), T(rng.standard_normal((4, 3, 3, 3)), device).realize(), T(np.ones(4), device).realize()
  GlobalCounters.reset()
  x.conv2d(w, b, padding=1).relu().realize()
  assert GlobalCounters.kernel_count == 1
  with pytest.raises(ValueError, match="channels"): x.conv2d(T(np.ones((4, 2, 3, 3)), device))
  with pytest.raises(ValueError, match="groups"): x.conv2d(w, groups=2)
  with pytest.raises(ValueError, match="dims"): T(np.ones((6, 6)), device).conv2d(w)  # ((3, 6, 6): unbatched, as PyTorch)
  with pytest.raises(ValueError, match="larger than the input"): x.conv2d(T(np.ones((4, 3, 7, 7)), device))


def test_conv1d_and_conv3d(device):
  x, w = rng.standard_normal((2, 3, 10)), rng.standard_normal((4, 3, 3))
  expected = np_conv2d(x[:, :, None], w[:, :, None], stride=1)[:, :, 0]
  check(T(x, device).conv2d(T(w, device)), expected)
  x3, w3 = rng.standard_normal((1, 2, 4, 5, 5)), rng.standard_normal((3, 2, 2, 3, 3))
  # a 3-d convolution is a sum over kernel depth of 2-d convolutions of depth slices
  expected3 = np.stack([sum(np_conv2d(x3[:, :, d + kd], w3[:, :, kd]) for kd in range(2)) for d in range(3)], 2)
  check(T(x3, device).conv2d(T(w3, device)), expected3)


@pytest.mark.parametrize("stride,padding,dilation,output_padding,groups", [(1, 0, 1, 0, 1), (2, 1, 1, 1, 1), (2, 0, 2, 0, 2), (3, 1, 1, 2, 1)])
def test_conv_transpose2d(device, stride, padding, dilation, output_padding, groups):
  x, w, b = rng.standard_normal((2, 4, 4, 3)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(3 * groups)
  out = T(x, device).conv_transpose2d(T(w, device), T(b, device), groups=groups, stride=stride, padding=padding,
                                      dilation=dilation, output_padding=output_padding)
  expected = np_conv_transpose2d(x, w, stride, padding, dilation, output_padding, groups) + b.reshape(1, -1, 1, 1)
  check(out, expected)


@pytest.mark.parametrize("k,s,p,d,ceil", [(2, 2, 0, 1, False), (3, 2, 1, 1, False), (3, 1, 1, 2, False), (3, 2, 0, 1, True), (2, 2, 1, 1, True)])
def test_max_pool2d(device, k, s, p, d, ceil):
  x = rng.standard_normal((2, 3, 7, 7))
  check(T(x, device).max_pool2d(k, s, dilation=d, padding=p, ceil_mode=ceil), np_pool(x, k, s, p, d, ceil, "max"))


def np_max_pool_grad(x, g, k, s, p, d=1):
  """PyTorch's gradient of max_pool2d (square windows): each output's gradient to the first maximum of its window,
  the window scanned row by row (a NaN counts as the maximum)."""
  (rows, n), (out_rows, out) = x.shape[-2:], g.shape[-2:]
  dx = np.zeros_like(x)
  for idx in np.ndindex(*x.shape[:-2]):
    for i in range(out_rows):
      for j in range(out):
        best = None
        for a in range(k):
          for b in range(k):
            r, c = i * s - p + a * d, j * s - p + b * d
            if not (0 <= r < rows and 0 <= c < n): continue
            v = x[idx + (r, c)]
            if best is None or v > x[idx + best] or (np.isnan(v) and not np.isnan(x[idx + best])): best = (r, c)
        dx[idx + best] += g[idx + (i, j)]
  return dx


@pytest.mark.parametrize("k,s,p,d", [(2, 2, 0, 1), (3, 2, 1, 1), (3, 1, 1, 2), (2, 1, 0, 1)])
def test_max_pool2d_gradient_goes_to_the_first_max_of_a_window(device, k, s, p, d):
  """As in PyTorch: after a relu, windows of zeros are common, and each gives its whole gradient to its first
  zero (tinygrad and Tensor.max share it among the ties)."""
  x = np.maximum(rng.standard_normal((2, 3, 7, 7)), 0).round(1)
  x[0, 0, 1, 1] = np.nan
  out_n = (7 + 2 * p - d * (k - 1) - 1) // s + 1
  g = rng.standard_normal((2, 3, out_n, out_n))
  t = T(x, device).requires_grad_()
  (t.max_pool2d(k, s, dilation=d, padding=p) * T(g, device)).sum().backward()
  check(t.grad, np_max_pool_grad(x, g, k, s, p, d))


@pytest.mark.parametrize("shape", [(8, 8), (7, 6), (5, 9)])
@pytest.mark.parametrize("k,s,p,ceil", [(3, 2, 1, False), (3, 2, 1, True), (3, 2, 0, True), (2, 1, 1, False), (3, 3, 1, True)])
def test_pooling_gradients_of_padded_inputs_of_any_size(device, shape, k, s, p, ceil):
  """The gradient is summed straight into the unpadded input, folded by the stride with the padding's shift:
  window elements that fall in the padding (or past an odd end, or in ceil_mode's extra windows) are dropped.
  An even size folds exactly, so the gradient is that sum's buffer, reshaped. (Its own random numbers: the
  module's stream feeds the tests after it.)"""
  own = np.random.default_rng(5)
  x = own.standard_normal((2, 3) + shape)
  t = T(x, device).requires_grad_()
  out = t.max_pool2d(k, s, padding=p, ceil_mode=ceil)
  g = own.standard_normal(out.shape)
  (out * T(g, device)).sum().backward()
  check(t.grad, np_max_pool_grad(x, g, k, s, p))
  t.grad = None
  out = t.avg_pool2d(k, s, padding=p, ceil_mode=ceil)
  (out * T(g, device)).sum().backward()
  expected = np.zeros_like(x)  # each window's gradient over its divisor, added to its elements in the input
  for i, j in np.ndindex(*out.shape[-2:]):
    rows, cols = range(i * s - p, i * s - p + k), range(j * s - p, j * s - p + k)
    # the divisor counts the padding, not what ceil_mode's last window reaches past it (PyTorch's rule)
    divisor = len([r for r in rows if r < shape[0] + p]) * len([c for c in cols if c < shape[1] + p])
    inside_rows, inside_cols = [r for r in rows if 0 <= r < shape[0]], [c for c in cols if 0 <= c < shape[1]]
    expected[..., inside_rows[0]:inside_rows[-1] + 1, inside_cols[0]:inside_cols[-1] + 1] += (g[..., i, j] / divisor)[..., None, None]
  check(t.grad, expected)


def test_max_pool2d_gradient_kernels(device):
  """Windows apart (2x2, stride 2): the gradient is one kernel, which compares each element with the others of its
  window and puts the gradient back (no max, count or index read first; nothing stored of the windows)."""
  x = T(rng.standard_normal((2, 4, 8, 8)), device).requires_grad_().realize()
  g = T(rng.standard_normal((2, 4, 4, 4)), device).realize()
  (x.max_pool2d(2) * g).sum().backward()
  GlobalCounters.reset()
  x.grad.realize()
  assert GlobalCounters.kernel_count == 1
  check(x.grad, np_max_pool_grad(x.numpy(), g.numpy(), 2, 2, 0))


def np_avg_pool_grad(n, g, k, s, p, include=True):
  """The gradient of avg_pool2d (square windows, no ceil_mode) for an n x n input: each window's gradient over
  its count, added to every element of it."""
  dx = np.zeros(g.shape[:-2] + (n, n))
  for i in range(g.shape[-2]):
    for j in range(g.shape[-1]):
      rows, cols = [r for r in range(i * s - p, i * s - p + k)], [c for c in range(j * s - p, j * s - p + k)]
      vr, vc = [r for r in rows if 0 <= r < n], [c for c in cols if 0 <= c < n]
      count = k * k if include else len(vr) * len(vc)
      dx[..., vr[0]:vr[-1] + 1, vc[0]:vc[-1] + 1] += (g[..., i, j] / count)[..., None, None]
  return dx


@pytest.mark.parametrize("k,s,p,include", [(3, 2, 1, True), (3, 2, 1, False), (3, 1, 1, True), (2, 2, 0, True), (3, 2, 0, True)])
def test_avg_pool2d_gradient(device, k, s, p, include):
  """Overlapping windows (3x3, stride 2) send their gradient back through ops/pooling.py's rule, windows apart by
  movement alone: both against numpy."""
  x = rng.standard_normal((2, 3, 7, 7))
  t = T(x, device).requires_grad_()
  out = t.avg_pool2d(k, s, padding=p, count_include_pad=include)
  g = rng.standard_normal(out.shape)
  (out * T(g, device)).sum().backward()
  check(t.grad, np_avg_pool_grad(7, g, k, s, p, include))


@pytest.mark.parametrize("k,s,p,ceil,include", [(2, 2, 0, False, True), (3, 2, 1, False, True), (3, 2, 1, False, False), (3, 2, 0, True, True), (2, 2, 1, True, False)])
def test_avg_pool2d(device, k, s, p, ceil, include):
  x = rng.standard_normal((2, 3, 7, 7))
  out = T(x, device).avg_pool2d(k, s, padding=p, ceil_mode=ceil, count_include_pad=include)
  check(out, np_pool(x, k, s, p, 1, ceil, "avg", include))


def test_layernorm_and_batchnorm(device):
  x = rng.standard_normal((4, 6)) * 3 + 1
  mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
  check(T(x, device).layernorm(eps=1e-5), (x - mean) / np.sqrt(var + 1e-5))
  img = rng.standard_normal((2, 3, 4, 4))
  w, b, m, v = rng.standard_normal(3), rng.standard_normal(3), rng.standard_normal(3), rng.uniform(0.5, 2, 3)
  expected = (img - m.reshape(1, 3, 1, 1)) / np.sqrt(v.reshape(1, 3, 1, 1) + 1e-5) * w.reshape(1, 3, 1, 1) + b.reshape(1, 3, 1, 1)
  invstd = (T(v, device) + 1e-5).rsqrt()
  check(T(img, device).batchnorm(T(w, device), T(b, device), T(m, device), invstd), expected)


def test_dropout_only_in_training(device):
  x = Tensor.ones(64, 64, device=device)
  assert (x.dropout(0.5).numpy() == 1).all()
  with Tensor.train():
    out = x.dropout(0.25).numpy()
  kept = out != 0
  assert 0.7 < kept.mean() < 0.8
  np.testing.assert_allclose(out[kept], 1 / 0.75)
  with pytest.raises(ValueError, match="probability"): x.dropout(1.5)


def np_softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def test_scaled_dot_product_attention(device):
  q, k, v = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, 5, 4))
  scores = q @ k.swapaxes(-1, -2) / 2.0
  check(T(q, device).scaled_dot_product_attention(T(k, device), T(v, device)), np_softmax(scores) @ v)
  causal = np.tril(np.ones((5, 5), bool))
  expected = np_softmax(np.where(causal, scores, -np.inf)) @ v
  check(T(q, device).scaled_dot_product_attention(T(k, device), T(v, device), is_causal=True), expected)
  check(T(q, device).scaled_dot_product_attention(T(k, device), T(v, device), attn_mask=Tensor(causal, device=device)), expected)
  with pytest.raises(RuntimeError, match="not both"):  # (PyTorch refuses it too)
    T(q, device).scaled_dot_product_attention(T(k, device), T(v, device), attn_mask=Tensor(causal, device=device), is_causal=True)


def test_attention_applies_dropout_p_and_keeps_half_queries_half(device):
  """dropout_p went through Tensor.dropout, which does nothing outside Tensor.training: PyTorch's functional
  attention drops whenever dropout_p > 0. A float32 mask made float16 queries' result float32 (PyTorch: float16)."""
  q = rng.standard_normal((1, 8, 4)).astype(np.float32)
  plain = T(q, device).scaled_dot_product_attention(T(q, device), T(q, device)).numpy()
  Tensor.manual_seed(0)
  dropped = T(q, device).scaled_dot_product_attention(T(q, device), T(q, device), dropout_p=0.9).numpy()
  assert not Tensor.training and not np.allclose(dropped, plain)
  half = T(q, device).half()
  out = half.scaled_dot_product_attention(half, half, attn_mask=Tensor(np.zeros((8, 8), np.float32), device=device))
  assert out.dtype == dtypes.float16
  np.testing.assert_allclose(out.float().numpy(), plain, atol=3e-3)


def np_log_softmax(x, axis):
  shifted = x - x.max(axis, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis, keepdims=True))


def test_cross_entropy_forms(device):
  logits, labels = rng.standard_normal((5, 4)), np.array([0, 3, 1, 1, 2])
  lp = np_log_softmax(logits, 1)
  nll = -lp[np.arange(5), labels]
  x, y = T(logits, device), Tensor(labels, device=device)
  check(x.cross_entropy(y), nll.mean())
  check(x.cross_entropy(y, reduction="sum"), nll.sum())
  check(x.cross_entropy(y, reduction="none"), nll)
  check(x.cross_entropy(y, label_smoothing=0.1), (0.9 * nll - 0.1 * lp.mean(1)).mean())
  ignored = np.array([0, -100, 1, 1, -100])
  keep = ignored != -100
  check(x.cross_entropy(Tensor(ignored, device=device)), (-lp[np.arange(5)[keep], ignored[keep]]).mean())
  probs = np_softmax(rng.standard_normal((5, 4)))
  check(x.cross_entropy(T(probs, device)), -(lp * probs).sum(1).mean())
  spatial, targets = rng.standard_normal((2, 4, 3, 3)), rng.integers(0, 4, (2, 3, 3))
  lp4 = np_log_softmax(spatial, 1)
  expected = -np.take_along_axis(lp4, targets[:, None], 1)[:, 0].mean()
  check(T(spatial, device).cross_entropy(Tensor(targets, device=device)), expected)
  check(T(logits, device).sparse_categorical_crossentropy(y), nll.mean())
  with pytest.raises(ValueError, match="targets of shape"): x.cross_entropy(Tensor([0, 1], device=device))
  with pytest.raises(ValueError, match="reduction"): x.cross_entropy(y, reduction="avg")


def test_binary_losses_and_mse(device):
  z, y = rng.standard_normal(8) * 3, (rng.uniform(size=8) > 0.5).astype(np.float64)
  p = 1 / (1 + np.exp(-z))
  bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
  check(T(p, device).binary_crossentropy(T(y, device)), bce.mean())
  check(T(z, device).binary_crossentropy_logits(T(y, device)), bce.mean())
  pw = np.full(8, 2.0)
  weighted = -(pw * y * np.log(p) + (1 - y) * np.log(1 - p))
  check(T(z, device).binary_crossentropy_logits(T(y, device), pos_weight=T(pw, device)), weighted.mean())
  check(T(z, device).mse(T(y, device)), ((z - y) ** 2).mean())


def test_losses_stay_finite_for_huge_logits(device):
  logits = T([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], device)
  loss = logits.cross_entropy(Tensor([0, 2], device=device)).item()
  assert loss == 0.0
  assert math.isfinite(T([1e4, -1e4], device).binary_crossentropy_logits(T([0.0, 1.0], device)).item())


# gradients: float64 finite differences on LLVM
W_CONV = rng.standard_normal((4, 2, 3, 3)) / 3
GRAD_FUNCS = {
  "conv2d_x": lambda x: x.conv2d(Tensor(W_CONV, device=x.device, dtype=x.dtype), groups=2, stride=2, padding=1, dilation=2).square(),
  "conv2d_w": lambda x: Tensor(np.linspace(-1, 1, 1 * 4 * 7 * 7).reshape(1, 4, 7, 7), device=x.device, dtype=x.dtype).conv2d(
    x.reshape(4, 2, 3, 3), groups=2, stride=2, padding=1, dilation=2).square(),
  "conv_transpose2d": lambda x: x.conv_transpose2d(Tensor(W_CONV, device=x.device, dtype=x.dtype), stride=2, padding=1).square(),
  "max_pool2d": lambda x: x.max_pool2d(3, 2, padding=1) * Tensor(np.arange(16.0).reshape(1, 1, 4, 4), device=x.device, dtype=x.dtype),
  "avg_pool2d": lambda x: x.avg_pool2d(3, 2, padding=1, count_include_pad=False).square(),
  "layernorm": lambda x: x.layernorm(axis=(-2, -1)) * Tensor(np.arange(4 * 49.0).reshape(4, 7, 7) / 50, device=x.device, dtype=x.dtype),
  "fancy_index": lambda x: x.reshape(-1)[Tensor([3, 3, 0, 17], device=x.device)].square(),
  "gather": lambda x: x.reshape(4, 49).gather(1, Tensor([[0, 5], [1, 1], [48, 2], [7, 7]], device=x.device)).square(),
  "cat": lambda x: x.reshape(4, 49).cat(x.reshape(4, 49) * 2, dim=0).square(),
  "scatter_add": lambda x: Tensor.zeros(2, 49, device=x.device, dtype=x.dtype).scatter_add(
    0, Tensor([[0, 1] * 24 + [0], [1, 1] * 24 + [0]], device=x.device), x.reshape(4, 49)[:2]).square(),
  "cross_entropy": lambda x: x.reshape(4, 49).cross_entropy(Tensor([0, 5, 48, 7], device=x.device), label_smoothing=0.1),
  "attention": lambda x: x.reshape(4, 7, 7).scaled_dot_product_attention(x.reshape(4, 7, 7) * 0.5, x.reshape(4, 7, 7).flip(1), is_causal=True),
  "bce_logits": lambda x: x.binary_crossentropy_logits(Tensor(np.linspace(0, 1, 196).reshape(1, 4, 7, 7), device=x.device, dtype=x.dtype)),
}


def grad_point(name: str) -> np.ndarray:
  shape = (4 * 2 * 9,) if name == "conv2d_w" else (1, 4, 7, 7)
  return np.random.default_rng(7).uniform(-1, 1, shape)


@pytest.mark.skipif(not HAS_LLVM, reason="finite differences run on LLVM")
@pytest.mark.parametrize("name", list(GRAD_FUNCS))
def test_gradient_matches_finite_differences(name):
  f = lambda t: GRAD_FUNCS[name](t).sum()  # noqa: E731
  x = grad_point(name)
  np.testing.assert_allclose(analytic_grad(f, x), numeric_grad(f, x), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not HAS_LLVM, reason="the float64 reference runs on LLVM")
@pytest.mark.parametrize("name", list(GRAD_FUNCS))
def test_gradient_float32_on_every_device(device, name):
  """The same gradients in float32 on each device, against the float64 ones checked above."""
  f = lambda t: GRAD_FUNCS[name](t).sum()  # noqa: E731
  x = grad_point(name)
  t = Tensor(x.astype(np.float32), device=device, requires_grad=True)
  f(t).backward()
  np.testing.assert_allclose(t.grad.numpy(), analytic_grad(f, x), rtol=2e-3, atol=2e-4)


def test_non_contiguous_inputs(device):
  """Transposed, flipped and sliced views feed every kind of new op exactly like contiguous copies."""
  base = rng.standard_normal((4, 3, 6, 5))
  x = T(base, device).permute(0, 1, 3, 2).flip(3)[:, :, :, 1:]  # (4, 3, 5, 5), no longer a plain view
  a = np.ascontiguousarray(base.transpose(0, 1, 3, 2)[:, :, :, ::-1][:, :, :, 1:])
  w = rng.standard_normal((2, 3, 3, 3))
  check(x.conv2d(T(w, device), padding=1), np_conv2d(a, w, padding=1))
  check(x.max_pool2d(2), np_pool(a, 2, 2, 0, op="max"))
  check(x[:, 1, Tensor([4, 0], device=device)], a[:, 1, [4, 0]])
  check(x[::2].cat(x[1::2], dim=1), np.concatenate([a[::2], a[1::2]], 1))
  logits = x[:, :, 0, :].transpose(1, 2).reshape(20, 3)
  labels = np.arange(20) % 3
  lp = np_log_softmax(a[:, :, 0, :].transpose(0, 2, 1).reshape(20, 3), 1)
  check(logits.cross_entropy(Tensor(labels, device=device)), -lp[np.arange(20), labels].mean())


def test_conv2d_backward_float32(device):
  """stride 2, padding 1, dilation 2, groups 2: weight and input gradients of sum(conv * g) against numpy."""
  x, w, g = rng.standard_normal((2, 4, 9, 9)), rng.standard_normal((4, 2, 3, 3)), rng.standard_normal((2, 4, 4, 4))
  tx, tw = T(x, device).requires_grad_(), T(w, device).requires_grad_()
  (tx.conv2d(tw, groups=2, stride=2, padding=1, dilation=2) * T(g, device)).sum().backward()
  eps, num_w = 1e-6, np.zeros_like(w)
  for i in np.ndindex(w.shape):  # the loss is linear in w: a difference quotient is exact up to rounding
    hi = w.copy(); hi[i] += eps
    num_w[i] = ((np_conv2d(x, hi, None, 2, 1, 2, 2) - np_conv2d(x, w, None, 2, 1, 2, 2)) * g).sum() / eps
  np.testing.assert_allclose(tw.grad.numpy(), num_w, rtol=1e-3, atol=1e-3)
  num_x = np_conv_transpose2d(g, w, stride=2, padding=1, dilation=2, output_padding=0, groups=2)
  num_x = np.pad(num_x, ((0, 0), (0, 0), (0, 9 - num_x.shape[2]), (0, 9 - num_x.shape[3])))
  np.testing.assert_allclose(tx.grad.numpy(), num_x, rtol=1e-4, atol=1e-4)


def test_interpolate_samples_at_the_scale_where_pytorch_does(device):
  """With a scale_factor, PyTorch's 1-D and 3-D nearest (and bicubic) sample at floor(i / scale) even where the size
  stays or exactly doubles; only its linear kernels and its 2-D nearest copy such an axis (and double by i >> 1).
  teeny copied and doubled for every mode: arange(7) at 1.1 gave 0..6 where PyTorch gives [0, 0, 1, 2, 3, 4, 5]."""
  row = Tensor(np.arange(7, dtype=np.float32).reshape(1, 1, 7), device=device)
  np.testing.assert_array_equal(row.interpolate(scale_factor=1.1, mode="nearest").numpy().ravel(), [0, 0, 1, 2, 3, 4, 5])
  five = Tensor(np.arange(5, dtype=np.float32).reshape(1, 1, 5), device=device)
  np.testing.assert_array_equal(five.interpolate(scale_factor=2.1, mode="nearest").numpy().ravel(), [0, 0, 0, 1, 1, 2, 2, 3, 3, 4])
  volume = Tensor(np.arange(5, dtype=np.float32).reshape(1, 1, 5, 1, 1), device=device)
  np.testing.assert_array_equal(volume.interpolate(scale_factor=1.1, mode="nearest").numpy().ravel(), [0, 0, 1, 2, 3])
  plane = Tensor(np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2), device=device)  # 2-D nearest: i >> 1
  np.testing.assert_array_equal(plane.interpolate(scale_factor=2.1, mode="nearest").numpy()[0, 0, 0], [0, 0, 1, 1])
  np.testing.assert_array_equal(row.interpolate(scale_factor=1.1, mode="linear").numpy().ravel(), np.arange(7))
  torch = pytest.importorskip("torch")
  x = np.random.default_rng(0).standard_normal((1, 1, 3, 5)).astype(np.float32)
  want = torch.nn.functional.interpolate(torch.tensor(x), scale_factor=1.1, mode="bicubic").numpy()
  np.testing.assert_allclose(Tensor(x, device=device).interpolate(scale_factor=1.1, mode="bicubic").numpy(), want, rtol=1e-5, atol=1e-6)


def test_attention_with_no_keys_or_an_empty_head(device):
  """No keys give zeros and a head dim of 0 gives the mean of the values, as PyTorch's (the max of an empty row and
  1 / sqrt(0) raised)."""
  q = Tensor(np.ones((2, 3, 4), np.float32), device=device)
  out = q.scaled_dot_product_attention(Tensor.zeros(2, 0, 4, device=device), Tensor.zeros(2, 0, 5, device=device))
  np.testing.assert_array_equal(out.numpy(), np.zeros((2, 3, 5)))
  v = np.random.default_rng(1).standard_normal((2, 4, 5)).astype(np.float32)
  out = Tensor.zeros(2, 3, 0, device=device).scaled_dot_product_attention(Tensor.zeros(2, 4, 0, device=device), Tensor(v, device=device))
  np.testing.assert_allclose(out.numpy(), np.broadcast_to(v.mean(1, keepdims=True), (2, 3, 5)), rtol=1e-6)


def test_regression_and_distribution_losses_and_cosine_similarity(device):
  """l1_loss, smooth_l1_loss (beta), huber_loss (delta), kl_div (log_target, "batchmean") and cosine_similarity,
  PyTorch's formulas (they were missing), against numpy."""
  rng = np.random.default_rng(0)
  x, y = rng.standard_normal((4, 5)).astype(np.float32), (rng.standard_normal((4, 5)) * 2).astype(np.float32)
  a, b, d = Tensor(x, device=device), Tensor(y, device=device), np.abs(x - y)
  np.testing.assert_allclose(a.l1_loss(b).numpy(), d.mean(), rtol=1e-6)
  np.testing.assert_allclose(a.smooth_l1_loss(b, "none", beta=0.5).numpy(), np.where(d < 0.5, d * d, d - 0.25), rtol=1e-6)
  np.testing.assert_allclose(a.huber_loss(b, "sum", delta=2.0).numpy(), np.where(d < 2, 0.5 * d * d, 2 * (d - 1)).sum(), rtol=1e-5)
  p = rng.dirichlet(np.ones(5), 4).astype(np.float32)
  p[0, 1] = 0  # (a zero target adds nothing: 0 log 0 is 0)
  logq = np.log(rng.dirichlet(np.ones(5), 4)).astype(np.float32)
  terms = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1)) - logq), 0)
  np.testing.assert_allclose(Tensor(logq, device=device).kl_div(Tensor(p, device=device), "batchmean").numpy(), terms.sum() / 4, rtol=1e-5)
  logp = np.log(p + 1e-3).astype(np.float32)
  np.testing.assert_allclose(Tensor(logq, device=device).kl_div(Tensor(logp, device=device), "none", log_target=True).numpy(),
                             np.exp(logp) * (logp - logq), rtol=1e-5, atol=1e-7)
  cosine = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
  np.testing.assert_allclose(a.cosine_similarity(b).numpy(), cosine, rtol=1e-5)
  np.testing.assert_array_equal(Tensor.zeros(2, 3, device=device).cosine_similarity(Tensor(x[:2, :3], device=device)).numpy(), [0, 0])
