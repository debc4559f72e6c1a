"""Ops over windows and scattered places, against PyTorch: pad's reflect/replicate/circular modes (values and
gradients), unfold, max pooling's indices and max_unpool2d, 1-D and 3-D pooling, and scatter_reduce."""
import numpy as np
import pytest
from teeny import Tensor, dtypes

torch = pytest.importorskip("torch")
F = torch.nn.functional
rng = np.random.default_rng(11)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [(1, 2, 2, 0), (3, 0, 0, 2), (0, 0, 1, 1)])
def test_pad_modes_match_torch(device, mode, padding):
  x = rng.standard_normal((1, 2, 3, 4)).astype(np.float32)
  t, tt = Tensor(x, device=device, requires_grad=True), torch.tensor(x, requires_grad=True)
  out, want = t.pad(padding, mode=mode), F.pad(tt, padding, mode=mode)
  np.testing.assert_array_equal(out.numpy(), want.detach().numpy())
  (out * out).sum().backward()
  (want * want).sum().backward()
  np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-6)


def test_pad_mode_errors(device):
  x = Tensor.ones(2, 3, device=device)
  with pytest.raises(ValueError, match="too large"): x.pad((3, 0), mode="reflect")
  with pytest.raises(ValueError, match="mode must be"): x.pad((1, 1), mode="wrap")
  with pytest.raises(ValueError, match="no negative"): x.pad((-1, 1), mode="circular")
  np.testing.assert_array_equal(x.pad(((0, 0), (1, 1)), "constant", 7.0).numpy()[:, 0], [7.0, 7.0])  # (tinygrad's order)


@pytest.mark.parametrize("dim,size,step", [(1, 3, 2), (1, 7, 1), (0, 1, 1), (2, 2, 1), (-1, 3, 3), (1, 2, 5)])
def test_unfold_matches_torch(device, dim, size, step):
  x = np.arange(42, dtype=np.float32).reshape(2, 7, 3)
  np.testing.assert_array_equal(Tensor(x, device=device).unfold(dim, size, step).numpy(), torch.tensor(x).unfold(dim, size, step).numpy())


def test_unfold_errors(device):
  with pytest.raises(ValueError, match="size"): Tensor.ones(4, device=device).unfold(0, 5, 1)
  with pytest.raises(ValueError, match="step"): Tensor.ones(4, device=device).unfold(0, 2, 0)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=(3, 2), stride=(2, 1), dilation=(1, 2), ceil_mode=True)])
def test_max_pool_indices_and_unpool_match_torch(device, kw):
  x = rng.standard_normal((2, 3, 7, 8)).astype(np.float32)
  x[0, 0, :2, :2] = 1.0  # a tie: the first max's index
  want_values, want_indices = F.max_pool2d(torch.tensor(x), return_indices=True, **kw)
  values, indices = Tensor(x, device=device).max_pool2d(return_indices=True, **kw)
  np.testing.assert_array_equal(values.numpy(), want_values.numpy())
  np.testing.assert_array_equal(indices.numpy(), want_indices.numpy())
  assert indices.dtype == dtypes.int32
  if "dilation" in kw: return  # (torch's max_unpool2d takes no dilation)
  size = dict(kernel_size=kw["kernel_size"], stride=kw.get("stride"), padding=kw.get("padding", 0), output_size=x.shape[-2:])
  np.testing.assert_array_equal(values.max_unpool2d(indices, **size).numpy(), F.max_unpool2d(want_values, want_indices, **size).numpy())


def test_pooling_in_1d_and_3d_matches_torch(device):
  x1 = rng.standard_normal((2, 3, 9)).astype(np.float32)
  values, indices = Tensor(x1, device=device).max_pool1d(3, return_indices=True)
  want_values, want_indices = F.max_pool1d(torch.tensor(x1), 3, return_indices=True)
  np.testing.assert_array_equal(values.numpy(), want_values.numpy())
  np.testing.assert_array_equal(indices.numpy(), want_indices.numpy())
  np.testing.assert_allclose(Tensor(x1, device=device).avg_pool1d(2).numpy(), F.avg_pool1d(torch.tensor(x1), 2).numpy(), rtol=1e-6)
  x3 = rng.standard_normal((1, 2, 5, 6, 4)).astype(np.float32)
  t3 = Tensor(x3, device=device)
  np.testing.assert_array_equal(t3.max_pool3d(2).numpy(), F.max_pool3d(torch.tensor(x3), 2).numpy())
  np.testing.assert_array_equal(t3.max_pool2d((2, 2, 2)).numpy(), F.max_pool3d(torch.tensor(x3), 2).numpy())  # (tinygrad's form)
  np.testing.assert_allclose(t3.avg_pool3d(3, stride=1, padding=1, count_include_pad=False).numpy(),
                             F.avg_pool3d(torch.tensor(x3), 3, stride=1, padding=1, count_include_pad=False).numpy(), rtol=1e-6)


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_scatter_reduce_matches_torch(device, reduce, include_self, dtype):
  x = rng.integers(-5, 5, (4, 3)).astype(dtype)
  src = rng.integers(-5, 5, (5, 3)).astype(dtype)
  index = rng.integers(0, 4, (5, 2))
  want = torch.tensor(x).scatter_reduce(0, torch.tensor(index), torch.tensor(src), reduce, include_self=include_self)
  got = Tensor(x, device=device).scatter_reduce(0, Tensor(index.astype(np.int32), device=device), Tensor(src, device=device), reduce,
                                               include_self=include_self)
  np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
  with pytest.raises(ValueError, match="reduce must be"): Tensor(x, device=device).scatter_reduce(0, Tensor(index, device=device), Tensor(src, device=device), "max")


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear", "bicubic"])
@pytest.mark.parametrize("size", [(9, 4), (10, 14), (3, 3)])
def test_interpolate_matches_torch(device, mode, size):
  x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
  for align_corners in ([None] if mode.startswith("nearest") else [False, True]):
    want = F.interpolate(torch.tensor(x), size=size, mode=mode, align_corners=align_corners).numpy()
    got = Tensor(x, device=device).interpolate(size, mode=mode, align_corners=align_corners)
    np.testing.assert_allclose(got.numpy(), want, atol=2e-6, rtol=1e-5)


def test_interpolate_scale_factor_1d_3d_and_gradient(device):
  x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
  for factor in (2, 0.5, 1.7):
    want = F.interpolate(torch.tensor(x), scale_factor=factor, mode="bilinear", align_corners=False).numpy()
    np.testing.assert_allclose(Tensor(x, device=device).interpolate(scale_factor=factor, mode="bilinear").numpy(), want, atol=2e-6)
  x1 = rng.standard_normal((2, 3, 6)).astype(np.float32)
  np.testing.assert_allclose(Tensor(x1, device=device).interpolate((11,), mode="linear").numpy(),
                             F.interpolate(torch.tensor(x1), size=11, mode="linear").numpy(), atol=2e-6)
  x3 = rng.standard_normal((1, 2, 3, 4, 5)).astype(np.float32)
  np.testing.assert_allclose(Tensor(x3, device=device).interpolate((5, 6, 4), mode="trilinear", align_corners=True).numpy(),
                             F.interpolate(torch.tensor(x3), size=(5, 6, 4), mode="trilinear", align_corners=True).numpy(), atol=2e-6)
  t, tt = Tensor(x, device=device, requires_grad=True), torch.tensor(x, requires_grad=True)
  weights = rng.standard_normal((2, 3, 8, 9)).astype(np.float32)
  (t.interpolate((8, 9), mode="bicubic") * Tensor(weights, device=device)).sum().backward()
  (F.interpolate(tt, size=(8, 9), mode="bicubic", align_corners=False) * torch.tensor(weights)).sum().backward()
  np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), atol=1e-5)
  with pytest.raises(ValueError, match="mode must be"): Tensor(x, device=device).interpolate((3, 3), mode="area")
  with pytest.raises(ValueError, match="exactly one"): Tensor(x, device=device).interpolate()
