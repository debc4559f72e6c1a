"""Ops over windows and scattered places: pad's reflect/replicate/circular modes (values and gradients), unfold, max
pooling's indices and max_unpool2d, 1-D and 3-D pooling, scatter_reduce and interpolate.

Each is checked against a small numpy reference written here (np.pad, sliding windows, loops over windows and
scattered places, per-axis resampling matrices), which runs without torch (CI installs none), and also against
PyTorch where it is installed."""
import itertools
import math

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from teeny import Tensor, dtypes, Device

try:
  import torch
  F = torch.nn.functional
except ImportError:  # (CI: no PyTorch; the numpy references stand in)
  torch = F = None
rng = np.random.default_rng(11)
NP_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


# ---- numpy references ----

def reference_pad(x: np.ndarray, padding, mode: str) -> tuple[np.ndarray, np.ndarray]:
  """(padded, source): F.pad's order (last axis first, (before, after) pairs) in np.pad's form, and for every output
  element the flat index of the input element it copies (a gradient sums back along it)."""
  widths = [(0, 0)] * (x.ndim - len(padding) // 2) + [tuple(padding[i:i + 2]) for i in range(len(padding) - 2, -1, -2)]
  source = np.pad(np.arange(x.size).reshape(x.shape), widths, mode=NP_PAD_MODES[mode])
  return x.reshape(-1)[source], source


def reference_unfold(x: np.ndarray, dim: int, size: int, step: int) -> np.ndarray:
  """Tensor.unfold: windows of size along dim, every step-th, the window as a new last axis."""
  dim = dim % x.ndim  # (the windows' own axis comes last: -1 would name it)
  windows = sliding_window_view(x, size, axis=dim)
  return np.take(windows, np.arange(0, windows.shape[dim], step), axis=dim)


def _pool_geometry(spatial, kernel, stride, padding, dilation, ceil_mode):
  """The output size along each spatial axis (PyTorch's rule: with ceil_mode a last window must start inside the
  input or its left padding)."""
  sizes = []
  for n, k, s, p, d in zip(spatial, kernel, stride, padding, dilation):
    span = n + 2 * p - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + p: out -= 1
    sizes.append(out)
  return sizes


def _as_tuple(value, count): return tuple(value) if isinstance(value, (tuple, list)) else (value,) * count


def reference_max_pool(x, kernel, stride=None, padding=0, dilation=1, ceil_mode=False):
  """(values, indices) of max pooling over x's trailing axes by a loop over windows, by PyTorch's CPU rule: the
  window's first element of x (padding never counts, also when x's are all -inf) unless a later one is greater or
  NaN (so a NaN wins, the last one); the index flat within the (unpadded) spatial axes of its channel."""
  spatial = x.shape[2:]
  kernel = _as_tuple(kernel, len(spatial))
  stride, padding, dilation = (_as_tuple(v, len(spatial)) for v in (stride or kernel, padding, dilation))
  out_sizes = _pool_geometry(spatial, kernel, stride, padding, dilation, ceil_mode)
  values, indices = np.empty(x.shape[:2] + tuple(out_sizes), x.dtype), np.empty(x.shape[:2] + tuple(out_sizes), np.int64)
  for place in itertools.product(*(range(n) for n in out_sizes)):
    best_value, best_index = np.full(x.shape[:2], -np.inf, x.dtype), None
    for offset in itertools.product(*(range(k) for k in kernel)):
      at = [o * s - p + i * d for o, s, p, i, d in zip(place, stride, padding, offset, dilation)]
      if any(a < 0 or a >= n for a, n in zip(at, spatial)): continue  # (padding never wins)
      value = x[(slice(None), slice(None)) + tuple(at)]
      if best_index is None: best_index = np.full(x.shape[:2], np.ravel_multi_index(at, spatial))
      better = (value > best_value) | np.isnan(value)  # (strictly: a tie keeps the first)
      best_value, best_index = np.where(better, value, best_value), np.where(better, np.ravel_multi_index(at, spatial), best_index)
    values[(slice(None), slice(None)) + place], indices[(slice(None), slice(None)) + place] = best_value, best_index
  return values, indices


def reference_avg_pool(x, kernel, stride=None, padding=0, count_include_pad=True, dilation=1, grad=None):
  """Average pooling over x's trailing axes by a loop over windows (no ceil_mode); with grad (the output's
  gradient), x's gradient instead: each window's share of it added to the elements the window read."""
  spatial = x.shape[2:]
  kernel = _as_tuple(kernel, len(spatial))
  stride, padding, dilation = (_as_tuple(v, len(spatial)) for v in (stride or kernel, padding, dilation))
  out_sizes = _pool_geometry(spatial, kernel, stride, padding, dilation, False)
  out, x_grad = np.empty(x.shape[:2] + tuple(out_sizes), np.float64), np.zeros(x.shape, np.float64)
  for place in itertools.product(*(range(n) for n in out_sizes)):
    offsets = itertools.product(*(range(k) for k in kernel))
    reads = [tuple(o * s - p + i * d for o, s, p, i, d in zip(place, stride, padding, offset, dilation)) for offset in offsets]
    inside = [(slice(None), slice(None)) + at for at in reads if all(0 <= a < n for a, n in zip(at, spatial))]
    count = math.prod(kernel) if count_include_pad else len(inside)
    out[(slice(None), slice(None)) + place] = sum(x[at].astype(np.float64) for at in inside) / count
    if grad is not None:
      for at in inside: x_grad[at] += grad[(slice(None), slice(None)) + place] / count
  return (out if grad is None else x_grad).astype(x.dtype)


def reference_max_unpool(values, indices, output_size):
  """max_unpool: zeros, each value put at its flat index within its channel."""
  out = np.zeros(values.shape[:2] + tuple(output_size), values.dtype)
  flat = out.reshape(values.shape[0], values.shape[1], -1)
  for n, c in itertools.product(range(values.shape[0]), range(values.shape[1])):
    flat[n, c, indices[n, c].reshape(-1)] = values[n, c].reshape(-1)
  return out


def reference_scatter_reduce(x, index, src, reduce, include_self):
  """scatter_reduce along axis 0 by a loop: the places each index reaches reduce their sources (with their own value
  unless include_self is False); mean divides by the count (floor division for ints, as PyTorch)."""
  gathered = {}
  for i, j in itertools.product(range(index.shape[0]), range(index.shape[1])):
    gathered.setdefault((index[i, j], j), [x[index[i, j], j]] if include_self else []).append(src[i, j])
  out = x.copy()
  combine = {"sum": sum, "prod": math.prod, "amax": np.max, "amin": np.min}  # (numpy's: a NaN wins, as PyTorch's)
  for place, items in gathered.items():
    if reduce != "mean": out[place] = combine[reduce](items)
    elif np.issubdtype(x.dtype, np.integer): out[place] = sum(int(v) for v in items) // len(items)
    else: out[place] = np.float32(sum(float(v) for v in items) / len(items))
  return out


def _cubic(t: float) -> float:
  """Keys' cubic convolution weight (a = -0.75, PyTorch's bicubic) at distance t."""
  a, t = -0.75, abs(t)
  if t <= 1: return ((a + 2) * t - (a + 3)) * t * t + 1
  return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a if t < 2 else 0.0


def resample_matrix(n: int, m: int, mode: str, align_corners: bool, scale: float | None = None) -> np.ndarray:
  """The (m, n) matrix taking n samples along one axis to m (interpolate is separable: one such matrix per axis).
  scale: input step per output step (n / m, or 1 / scale_factor when that was given)."""
  matrix = np.zeros((m, n))
  scale = n / m if scale is None else scale
  for j in range(m):
    if mode.startswith("nearest"):
      matrix[j, min(math.floor((j + 0.5 if mode == "nearest-exact" else j) * scale), n - 1)] = 1
      continue
    if align_corners: at = j * (n - 1) / (m - 1) if m > 1 else 0.0
    else: at = (j + 0.5) * scale - 0.5
    if mode == "cubic":
      base = math.floor(at)
      for k in range(base - 1, base + 3): matrix[j, min(max(k, 0), n - 1)] += _cubic(at - k)
      continue
    at = max(at, 0.0)  # (linear clamps a coordinate left of the first sample; cubic does not)
    low = min(math.floor(at), n - 1)
    high, frac = min(low + 1, n - 1), at - low
    matrix[j, low] += 1 - frac
    matrix[j, high] += frac
  return matrix


def reference_interpolate(x, size, mode, align_corners=False, scales=None, transpose=False, magnitude=False):
  """interpolate over x's trailing axes by one resampling matrix per axis ("bilinear"/"trilinear" are "linear",
  "bicubic" is "cubic"); transpose=True applies the transposes instead (the gradient, size being the input's).
  magnitude=True gives the sum of the terms' magnitudes instead (|weights| times |x|), which bounds float32's
  rounding error of each result."""
  axis_mode = {"bilinear": "linear", "trilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
  out = np.abs(x.astype(np.float64)) if magnitude else x.astype(np.float64)
  for axis, m in enumerate(size):
    axis_at = x.ndim - len(size) + axis
    n = out.shape[axis_at]
    matrix = resample_matrix(m, n, axis_mode, bool(align_corners), None if scales is None else scales[axis]).T \
      if transpose else resample_matrix(n, m, axis_mode, bool(align_corners), None if scales is None else scales[axis])
    if magnitude: matrix = np.abs(matrix)
    out = np.moveaxis(np.tensordot(matrix, out, axes=([1], [axis_at])), 0, axis_at)
  return out.astype(np.float32)


# ---- the tests ----

@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [(1, 2, 2, 0), (3, 0, 0, 2), (0, 0, 1, 1)])
def test_pad_modes_match_torch(device, mode, padding):
  x = rng.standard_normal((1, 2, 3, 4)).astype(np.float32)
  t = Tensor(x, device=device, requires_grad=True)
  out = t.pad(padding, mode=mode)
  want, source = reference_pad(x, padding, mode)
  np.testing.assert_array_equal(out.numpy(), want)
  (out * out).sum().backward()
  # d/dx of sum(out ** 2): 2 * out, summed back onto the element each output copied
  want_grad = np.bincount(source.reshape(-1), weights=2 * want.reshape(-1).astype(np.float64), minlength=x.size)
  np.testing.assert_allclose(t.grad.numpy(), want_grad.reshape(x.shape), rtol=1e-6)
  if torch is not None:
    tt = torch.tensor(x, requires_grad=True)
    torch_out = F.pad(tt, padding, mode=mode)
    np.testing.assert_array_equal(out.numpy(), torch_out.detach().numpy())
    (torch_out * torch_out).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-6)


def test_pad_modes_with_negative_padding_crop_like_torch(device):
  """A negative pad crops, as in PyTorch: reflect and replicate pad the whole tensor and then crop (the mirror is
  about the original edge), circular crops first and wraps what is left. Values worked out by hand on 0..5."""
  x = Tensor(np.arange(6, dtype=np.float32), device=device)
  np.testing.assert_array_equal(x.pad((-1, 2), mode="reflect").numpy(), [1, 2, 3, 4, 5, 4, 3])
  np.testing.assert_array_equal(x.pad((2, -3), mode="reflect").numpy(), [2, 1, 0, 1, 2])
  np.testing.assert_array_equal(x.pad((-4, 2), mode="replicate").numpy(), [4, 5, 5, 5])
  np.testing.assert_array_equal(x.pad((-1, 2), mode="circular").numpy(), [1, 2, 3, 4, 5, 1, 2])
  np.testing.assert_array_equal(x.pad((2, -1), mode="circular").numpy(), [3, 4, 0, 1, 2, 3, 4])
  if torch is not None:
    grid = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    for mode in ("reflect", "replicate", "circular"):
      for padding in ((2, -1, -1, 2), (1, -2, 2, -1), (-2, 3, 0, 0), (3, -3, -1, 1)):
        np.testing.assert_array_equal(Tensor(grid, device=device).pad(padding, mode=mode).numpy(),
                                      F.pad(torch.tensor(grid), padding, mode=mode).numpy())


def test_pad_mode_errors(device):
  x = Tensor.ones(2, 3, device=device)
  with pytest.raises(ValueError, match="too large"): x.pad((3, 0), mode="reflect")
  with pytest.raises(ValueError, match="mode must be"): x.pad((1, 1), mode="wrap")
  np.testing.assert_array_equal(x.pad(((0, 0), (1, 1)), "constant", 7.0).numpy()[:, 0], [7.0, 7.0])  # (tinygrad's order)


@pytest.mark.parametrize("dim,size,step", [(1, 3, 2), (1, 7, 1), (0, 1, 1), (2, 2, 1), (-1, 3, 3), (1, 2, 5)])
def test_unfold_matches_torch(device, dim, size, step):
  x = np.arange(42, dtype=np.float32).reshape(2, 7, 3)
  got = Tensor(x, device=device).unfold(dim, size, step).numpy()
  np.testing.assert_array_equal(got, reference_unfold(x, dim, size, step))
  if torch is not None: np.testing.assert_array_equal(got, torch.tensor(x).unfold(dim, size, step).numpy())


def test_unfold_errors(device):
  with pytest.raises(ValueError, match="size"): Tensor.ones(4, device=device).unfold(0, 5, 1)
  with pytest.raises(ValueError, match="step"): Tensor.ones(4, device=device).unfold(0, 2, 0)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=(3, 2), stride=(2, 1), dilation=(1, 2), ceil_mode=True)])
def test_max_pool_indices_and_unpool_match_torch(device, kw):
  x = rng.standard_normal((2, 3, 7, 8)).astype(np.float32)
  x[0, 0, :2, :2] = 1.0  # a tie: the first max's index
  want_values, want_indices = reference_max_pool(x, kw["kernel_size"], kw.get("stride"), kw.get("padding", 0),
                                                 kw.get("dilation", 1), kw.get("ceil_mode", False))
  values, indices = Tensor(x, device=device).max_pool2d(return_indices=True, **kw)
  np.testing.assert_array_equal(values.numpy(), want_values)
  np.testing.assert_array_equal(indices.numpy(), want_indices)
  assert indices.dtype == dtypes.int32
  if torch is not None:
    torch_values, torch_indices = F.max_pool2d(torch.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(values.numpy(), torch_values.numpy())
    np.testing.assert_array_equal(indices.numpy(), torch_indices.numpy())
  if "dilation" in kw: return  # (torch's max_unpool2d takes no dilation)
  size = dict(kernel_size=kw["kernel_size"], stride=kw.get("stride"), padding=kw.get("padding", 0), output_size=x.shape[-2:])
  unpooled = values.max_unpool2d(indices, **size).numpy()
  np.testing.assert_array_equal(unpooled, reference_max_unpool(want_values, want_indices, x.shape[-2:]))
  if torch is not None:
    np.testing.assert_array_equal(unpooled, F.max_unpool2d(torch_values, torch_indices, **size).numpy())


@pytest.mark.parametrize("kw", [dict(kernel_size=2, padding=1), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=(1, 2), stride=(1, 2), padding=(0, 1)), dict(kernel_size=2, stride=1),
                                dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)])
def test_max_pool_picks_like_torch_at_minus_inf_nan_and_ties(device, kw):
  # windows whose elements are all -inf (they tie the padding's -inf: the pick must still be an element, not a
  # padded slot, whose gradient would be dropped), NaNs (the last one wins, as PyTorch's CPU kernel), and ties
  x = np.random.default_rng(7).choice([-np.inf, -np.inf, 1.0, 0.0, np.nan], size=(2, 2, 5, 6)).astype(np.float32)
  x[0, 0] = -np.inf
  want_values, want_indices = reference_max_pool(x, kw["kernel_size"], kw.get("stride"), kw.get("padding", 0),
                                                 1, kw.get("ceil_mode", False))
  t = Tensor(x, device=device, requires_grad=True)
  values, indices = t.max_pool2d(return_indices=True, **kw)
  grad = np.random.default_rng(8).standard_normal(want_values.shape).astype(np.float32)
  (values * Tensor(grad, device=device)).sum().backward()
  np.testing.assert_array_equal(values.numpy(), want_values)
  np.testing.assert_array_equal(indices.numpy(), want_indices)
  want_grad = np.zeros((2, 2, 30), np.float32)  # each output's gradient at its index
  for n, c in itertools.product(range(2), range(2)): np.add.at(want_grad[n, c], want_indices[n, c].reshape(-1), grad[n, c].reshape(-1))
  np.testing.assert_allclose(t.grad.numpy(), want_grad.reshape(x.shape), rtol=1e-6)
  if torch is not None:
    tx = torch.tensor(x, requires_grad=True)
    torch_values, torch_indices = F.max_pool2d(tx, return_indices=True, **kw)
    (torch_values * torch.tensor(grad)).sum().backward()
    np.testing.assert_array_equal(indices.numpy(), torch_indices.numpy())
    np.testing.assert_allclose(t.grad.numpy(), tx.grad.numpy(), rtol=1e-6)


def test_pooling_in_1d_and_3d_matches_torch(device):
  x1 = rng.standard_normal((2, 3, 9)).astype(np.float32)
  values, indices = Tensor(x1, device=device).max_pool1d(3, return_indices=True)
  want_values, want_indices = reference_max_pool(x1, 3)
  np.testing.assert_array_equal(values.numpy(), want_values)
  np.testing.assert_array_equal(indices.numpy(), want_indices)
  avg1 = Tensor(x1, device=device).avg_pool1d(2).numpy()
  np.testing.assert_allclose(avg1, reference_avg_pool(x1, 2), rtol=1e-6)
  x3 = rng.standard_normal((1, 2, 5, 6, 4)).astype(np.float32)
  t3 = Tensor(x3, device=device)
  np.testing.assert_array_equal(t3.max_pool3d(2).numpy(), reference_max_pool(x3, 2)[0])
  np.testing.assert_array_equal(t3.max_pool2d((2, 2, 2)).numpy(), reference_max_pool(x3, 2)[0])  # (tinygrad's form)
  avg3 = t3.avg_pool3d(3, stride=1, padding=1, count_include_pad=False).numpy()
  # (the reference sums in float64: float32 sums of up to 27 values near 1 that cancel differ by ~1e-7 absolute)
  np.testing.assert_allclose(avg3, reference_avg_pool(x3, 3, 1, 1, count_include_pad=False), rtol=1e-6, atol=1e-6)
  if torch is None: return
  torch_values, torch_indices = F.max_pool1d(torch.tensor(x1), 3, return_indices=True)
  np.testing.assert_array_equal(values.numpy(), torch_values.numpy())
  np.testing.assert_array_equal(indices.numpy(), torch_indices.numpy())
  np.testing.assert_allclose(avg1, F.avg_pool1d(torch.tensor(x1), 2).numpy(), rtol=1e-6)
  np.testing.assert_array_equal(t3.max_pool3d(2).numpy(), F.max_pool3d(torch.tensor(x3), 2).numpy())
  np.testing.assert_allclose(avg3, F.avg_pool3d(torch.tensor(x3), 3, stride=1, padding=1, count_include_pad=False).numpy(), rtol=1e-6)


def test_avg_pool_takes_tinygrads_argument_order_and_dilation(device):
  """avg_pool2d(kernel_size, stride, dilation, padding, ceil_mode, count_include_pad), as tinygrad's and teeny's
  max_pool2d: avg_pool2d(3, 2, 1) is dilation 1 (no padding), avg_pool2d(2, 2, 1, 1) padding 1 (not ceil_mode).
  The 1-d and 3-d poolings (PyTorch's only, padding third there) take what follows stride by name."""
  x = rng.standard_normal((2, 3, 9, 10)).astype(np.float32)
  t = Tensor(x, device=device)
  np.testing.assert_allclose(t.avg_pool2d(3, 2, 1).numpy(), reference_avg_pool(x, 3, 2), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(t.avg_pool2d(2, 2, 1, 1).numpy(), reference_avg_pool(x, 2, 2, 1), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(t.avg_pool2d(3, 1, 2).numpy(), reference_avg_pool(x, 3, 1, dilation=2), rtol=1e-6, atol=1e-7)
  for include in (True, False):
    dilated = t.avg_pool2d(3, 2, (2, 1), 1, count_include_pad=include).numpy()
    np.testing.assert_allclose(dilated, reference_avg_pool(x, 3, 2, 1, include, dilation=(2, 1)), rtol=1e-6, atol=1e-7)
  # a dilated average's gradient: each window's share back to the elements it read
  tx = Tensor(x, device=device, requires_grad=True)
  out = tx.avg_pool2d(3, 1, 2, padding=1, count_include_pad=False)
  grad = rng.standard_normal(out.shape).astype(np.float32)
  (out * Tensor(grad, device=device)).sum().backward()
  want = reference_avg_pool(x, 3, 1, 1, False, dilation=2, grad=grad)
  np.testing.assert_allclose(tx.grad.numpy(), want, rtol=1e-5, atol=1e-6)
  with pytest.raises(TypeError, match="positional"): Tensor(x[0]).avg_pool1d(3, 2, 1)
  with pytest.raises(TypeError, match="positional"): Tensor(x[0]).max_pool1d(3, 2, 1)
  with pytest.raises(TypeError, match="positional"): Tensor(x[None]).avg_pool3d(3, 2, 1)
  with pytest.raises(TypeError, match="positional"): Tensor(x[None]).max_pool3d(3, 2, 1)
  np.testing.assert_allclose(Tensor(x[0], device=device).avg_pool1d(3, 2, padding=1).numpy(),
                             reference_avg_pool(x[0], 3, 2, 1), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_scatter_reduce_matches_torch(device, reduce, include_self, dtype):
  x = rng.integers(-5, 5, (4, 3)).astype(dtype)
  src = rng.integers(-5, 5, (5, 3)).astype(dtype)
  index = rng.integers(0, 4, (5, 2))
  got = Tensor(x, device=device).scatter_reduce(0, Tensor(index.astype(np.int32), device=device), Tensor(src, device=device), reduce,
                                               include_self=include_self)
  np.testing.assert_allclose(got.numpy(), reference_scatter_reduce(x, index, src, reduce, include_self), rtol=1e-6)
  if torch is not None:
    want = torch.tensor(x).scatter_reduce(0, torch.tensor(index), torch.tensor(src), reduce, include_self=include_self)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
  with pytest.raises(ValueError, match="reduce must be"): Tensor(x, device=device).scatter_reduce(0, Tensor(index, device=device), Tensor(src, device=device), "max")


def reference_scatter_extreme_gradients(x, index, src, reduce, include_self, grad):
  """The gradients of scatter_reduce amax/amin (axis 0), PyTorch's rule: a place that received values shares its
  gradient evenly among those equal to its result (self's value among them with include_self); where the result is
  NaN every value there gets NaN (PyTorch's 0 / 0: no value equals NaN). A place that received nothing passes it to
  self (PyTorch's formula gives an untouched NaN self NaN there too: not followed). With include_self=False, PyTorch
  also counts self's excluded value among the ties (a share of 1/3 for two tied sources), giving it none: followed."""
  grad_x, grad_src = grad.copy(), np.zeros_like(src)
  for place in itertools.product(range(x.shape[0]), range(index.shape[1])):
    sources = [(i, place[1]) for i in range(index.shape[0]) if index[i, place[1]] == place[0]]
    if not sources: continue
    values = [src[s] for s in sources] + ([x[place]] if include_self else [])
    result = np.nan if np.isnan(values).any() else (max if reduce == "amax" else min)(values)
    def ties(v): return v == result or np.isnan(result)
    counted = values if include_self else values + [x[place]]
    share = grad[place] / sum(ties(v) for v in counted) if not np.isnan(result) else np.nan
    grad_x[place] = share if include_self and ties(x[place]) else 0.0
    for s in sources: grad_src[s] += share if ties(src[s]) else 0.0
  return grad_x, grad_src


@pytest.mark.parametrize("reduce", ["amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_extreme_gradients_share_among_ties_like_torch(device, reduce, include_self):
  # ties between self and sources and among sources, and infinite sources, which the placeholders for the values a
  # place did not receive (+-inf) must not tie: an inf source of amin got half its gradient
  values = [np.inf, -np.inf, 1.0, 2.0, 2.0, np.nan]
  picks = np.random.default_rng(5)
  x, src = picks.choice(values, (4, 3)).astype(np.float32), picks.choice(values, (6, 3)).astype(np.float32)
  x[0, 0], src[0, 0], src[1, 0], src[2, 1] = 2.0, 2.0, 2.0, np.inf
  index = picks.integers(0, 4, (6, 2))
  index[:3, 0], index[2, 1] = 0, 1
  tx, ts = Tensor(x, device=device, requires_grad=True), Tensor(src, device=device, requires_grad=True)
  out = tx.scatter_reduce(0, Tensor(index.astype(np.int32), device=device), ts, reduce, include_self=include_self)
  grad = picks.standard_normal(x.shape).astype(np.float32)
  (out * Tensor(grad, device=device)).sum().backward()
  np.testing.assert_array_equal(out.numpy(), reference_scatter_reduce(x, index, src, reduce, include_self))
  want_x, want_src = reference_scatter_extreme_gradients(x, index, src, reduce, include_self, grad)
  np.testing.assert_allclose(tx.grad.numpy(), want_x, rtol=1e-6)
  np.testing.assert_allclose(ts.grad.numpy(), want_src, rtol=1e-6)


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear", "bicubic"])
@pytest.mark.parametrize("size", [(9, 4), (10, 14), (3, 3)])
def test_interpolate_matches_torch(device, mode, size):
  x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
  for align_corners in ([None] if mode.startswith("nearest") else [False, True]):
    got = Tensor(x, device=device).interpolate(size, mode=mode, align_corners=align_corners).numpy()
    # a result near 0 of a sum of up to 16 terms of either sign is exact to float32's rounding of the terms, not of
    # the result: each may be off by 16 roundings of the sum of the magnitudes (torch's float32 result is too)
    bound = 2e-6 + 16 * 2.0 ** -24 * reference_interpolate(x, size, mode, align_corners, magnitude=True)
    for want in [reference_interpolate(x, size, mode, align_corners)] + \
                ([F.interpolate(torch.tensor(x), size=size, mode=mode, align_corners=align_corners).numpy()] if torch is not None else []):
      np.testing.assert_array_less(np.abs(got - want) - 1e-5 * np.abs(want), bound)


def test_interpolate_scale_factor_1d_3d_and_gradient(device):
  x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
  for factor in (2, 0.5, 1.7):
    got = Tensor(x, device=device).interpolate(scale_factor=factor, mode="bilinear").numpy()
    size = (math.floor(5 * factor), math.floor(7 * factor))  # (a given factor also sets the step: 1 / factor)
    np.testing.assert_allclose(got, reference_interpolate(x, size, "bilinear", scales=(1 / factor,) * 2), atol=2e-6)
    if torch is not None:
      np.testing.assert_allclose(got, F.interpolate(torch.tensor(x), scale_factor=factor, mode="bilinear", align_corners=False).numpy(), atol=2e-6)
  x1 = rng.standard_normal((2, 3, 6)).astype(np.float32)
  linear = Tensor(x1, device=device).interpolate((11,), mode="linear").numpy()
  np.testing.assert_allclose(linear, reference_interpolate(x1, (11,), "linear"), atol=2e-6)
  x3 = rng.standard_normal((1, 2, 3, 4, 5)).astype(np.float32)
  trilinear = Tensor(x3, device=device).interpolate((5, 6, 4), mode="trilinear", align_corners=True).numpy()
  np.testing.assert_allclose(trilinear, reference_interpolate(x3, (5, 6, 4), "trilinear", True), atol=2e-6)
  t = Tensor(x, device=device, requires_grad=True)
  weights = rng.standard_normal((2, 3, 8, 9)).astype(np.float32)
  (t.interpolate((8, 9), mode="bicubic") * Tensor(weights, device=device)).sum().backward()
  # a linear map's gradient: the weights through the transposed resampling matrices
  np.testing.assert_allclose(t.grad.numpy(), reference_interpolate(weights, (5, 7), "bicubic", transpose=True), atol=1e-5)
  if torch is not None:
    np.testing.assert_allclose(linear, F.interpolate(torch.tensor(x1), size=11, mode="linear").numpy(), atol=2e-6)
    np.testing.assert_allclose(trilinear, F.interpolate(torch.tensor(x3), size=(5, 6, 4), mode="trilinear", align_corners=True).numpy(), atol=2e-6)
    tt = torch.tensor(x, requires_grad=True)
    (F.interpolate(tt, size=(8, 9), mode="bicubic", align_corners=False) * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), atol=1e-5)
  with pytest.raises(ValueError, match="mode must be"): Tensor(x, device=device).interpolate((3, 3), mode="area")
  with pytest.raises(ValueError, match="exactly one"): Tensor(x, device=device).interpolate()


def test_interpolate_follows_torchs_shortcuts_for_kept_and_doubled_axes(device):
  """An axis whose size a scale_factor keeps (4 * 1.1 -> 4) is copied by the linear modes and 2-D nearest, as
  PyTorch does (it was resampled at 1 / 1.1: 0, 0.86, 1.77, ...; PyTorch's bicubic does resample it), and 2-D
  nearest doubling an axis (3 * 2.3 -> 6) takes source i // 2, PyTorch's rule (floor(i / 2.3) gave 0, 0, 0, 1, 1, 2)
  in values and gradients."""
  x = np.arange(24, dtype=np.float32).reshape(1, 1, 4, 6)
  for mode in ("linear", "nearest"):
    t = Tensor(x, device=device, requires_grad=True)
    out = t.interpolate(mode=mode, scale_factor=(1.1, 1.0))
    np.testing.assert_array_equal(out.numpy(), x, err_msg=mode)
    out.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.ones_like(x), err_msg=mode)
  row = Tensor(np.arange(3, dtype=np.float32).reshape(1, 1, 1, 3), device=device, requires_grad=True)
  out = row.interpolate(mode="nearest", scale_factor=(1.0, 2.3))
  np.testing.assert_array_equal(out.numpy().ravel(), [0, 0, 1, 1, 2, 2])
  (out * Tensor(np.arange(1, 7, dtype=np.float32).reshape(1, 1, 1, 6), device=device)).sum().backward()
  np.testing.assert_array_equal(row.grad.numpy().ravel(), [3, 7, 11])


def test_window_forms_that_raised_where_torch_works(device, monkeypatch):
  """conv2d(padding='same' / 'valid') on the Tensor method (only the layers knew the strings), avg_pool2d's
  divisor_override, an unbatched ConvTranspose2d input, and unfold of a 0-d tensor ((1, 1) for PyTorch's (1,)) or
  with windows of size 0 (no gradient graph)."""
  monkeypatch.setattr(Device, "DEFAULT", device)  # (a layer makes its weights on the default device, as in tinygrad)
  from teeny.nn import ConvTranspose2d
  x = rng.standard_normal((1, 2, 5, 6)).astype(np.float32)
  w = rng.standard_normal((3, 2, 3, 4)).astype(np.float32)
  tx, tw = Tensor(x, device=device), Tensor(w, device=device)
  np.testing.assert_allclose(tx.conv2d(tw, padding="same").numpy(), tx.conv2d(tw, padding=(1, 2, 1, 1)).numpy(), rtol=1e-6)
  assert tx.conv2d(tw, padding="valid").shape == (1, 3, 3, 3)
  with pytest.raises(ValueError, match="stride 1"): tx.conv2d(tw, padding="same", stride=2)
  windows = sliding_window_view(x, (2, 2), axis=(2, 3))[:, :, ::2, ::2]
  np.testing.assert_allclose(tx.avg_pool2d(2, divisor_override=3).numpy(), windows.sum((-2, -1)) / 3, rtol=1e-6)
  layer = ConvTranspose2d(2, 3, 3)
  np.testing.assert_allclose(layer(Tensor(x[0], device=device)).numpy(), layer(Tensor(x, device=device)).numpy()[0], rtol=1e-6)
  assert Tensor(3.0, device=device).unfold(0, 1, 1).shape == (1,)
  v = Tensor(np.ones((2, 3), np.float32), device=device, requires_grad=True)
  v.unfold(1, 0, 1).sum().backward()
  np.testing.assert_array_equal(v.grad.numpy(), np.zeros((2, 3)))


def test_float64_interpolate_computes_its_weights_in_float64(device):
  """The sampling positions and weights were float32 for every dtype: a float64 resize was good to 1e-7 only."""
  if not Device[device].supports_dtype(dtypes.float64): pytest.skip("no float64 on this device")
  line = np.arange(5, dtype=np.float64) * 0.1 + 3.0  # linear in the index: linear resampling reproduces it exactly
  got = Tensor(line.reshape(1, 1, 5), device=device).interpolate((7,), mode="linear").numpy().ravel()
  positions = np.clip((np.arange(7) + 0.5) * 5 / 7 - 0.5, 0, 4)
  np.testing.assert_allclose(got, positions * 0.1 + 3.0, rtol=1e-15)


def test_conv_transpose_output_size_and_interpolate_recompute_scale_factor(device, monkeypatch):
  """ConvTranspose2d(x, output_size=) (PyTorch's way to pick among the sizes a stride allows) and interpolate's
  recompute_scale_factor raised TypeError."""
  monkeypatch.setattr(Device, "DEFAULT", device)  # (a layer makes its weights on the default device, as in tinygrad)
  from teeny.nn import ConvTranspose2d
  layer = ConvTranspose2d(2, 3, 3, stride=2, padding=1)
  x = Tensor(rng.standard_normal((1, 2, 4, 5)).astype(np.float32), device=device)
  for size in ((7, 9), (8, 10), (1, 3, 8, 9)):
    out = layer(x, output_size=size)
    assert out.shape[-2:] == tuple(size)[-2:]
    padding = (size[-2] - 7, size[-1] - 9)
    np.testing.assert_allclose(out.numpy(), x.conv_transpose2d(layer.weight, layer.bias, stride=2, padding=1, output_padding=padding).numpy(), rtol=1e-6)
  with pytest.raises(ValueError, match="can't be reached"): layer(x, output_size=(10, 10))
  img = rng.standard_normal((1, 1, 5, 7)).astype(np.float32)
  t = Tensor(img, device=device)
  np.testing.assert_allclose(t.interpolate(scale_factor=1.7, mode="bilinear", recompute_scale_factor=True).numpy(),
                             t.interpolate((8, 11), mode="bilinear").numpy(), rtol=1e-6)
  with pytest.raises(ValueError, match="antialias"): t.interpolate((3, 3), mode="bilinear", antialias=True)


def test_int64_average_pooling_truncates_as_pytorchs(device):
  """PyTorch averages int64 windows in integers, truncating toward zero (11 / 4 is 2, -11 / 4 is -2); teeny gave the
  float32 mean 2.75."""
  if not Device[device].supports_dtype(dtypes.int64): pytest.skip("no int64 on this device")
  x = Tensor(np.array([[[[1, 2], [3, 5]]], [[[-1, -2], [-3, -5]]]], np.int64), device=device)
  out = x.avg_pool2d(2)
  assert out.dtype == dtypes.int64
  np.testing.assert_array_equal(out.numpy().ravel(), [2, -2])
  np.testing.assert_array_equal(x.avg_pool2d(2, divisor_override=3).numpy().ravel(), [3, -3])
  np.testing.assert_array_equal(x.avg_pool2d(2, padding=1, count_include_pad=False).numpy()[0, 0], [[1, 2], [3, 5]])


def test_functional_convolutions_take_an_unbatched_input(device):
  """Tensor.conv2d and conv_transpose2d of a (C, H, W) input give (C_out, H', W'), as PyTorch's functional forms
  (the layers took it; the Tensor methods raised)."""
  x = np.random.default_rng(0).standard_normal((2, 5, 5)).astype(np.float32)
  w = np.random.default_rng(1).standard_normal((3, 2, 3, 3)).astype(np.float32)
  batched = Tensor(x[None], device=device).conv2d(Tensor(w, device=device), padding=1).numpy()[0]
  np.testing.assert_allclose(Tensor(x, device=device).conv2d(Tensor(w, device=device), padding=1).numpy(), batched, rtol=1e-6)
  wt = np.random.default_rng(2).standard_normal((2, 3, 3, 3)).astype(np.float32)
  batched = Tensor(x[None], device=device).conv_transpose2d(Tensor(wt, device=device), stride=2).numpy()[0]
  np.testing.assert_allclose(Tensor(x, device=device).conv_transpose2d(Tensor(wt, device=device), stride=2).numpy(), batched, rtol=1e-6)
