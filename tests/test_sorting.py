"""sort, argsort, topk, masked_select and nonzero (teeny/ops/sorting.py) against PyTorch: values and indices
(stable order for ties, NaN sorted as the largest value), every axis, descending, ints and bools, gradients through
the picked elements, topk over rows longer than its blocks, and the lazy size= forms."""
import numpy as np
import pytest
from teeny import Tensor, dtypes

torch = pytest.importorskip("torch")
rng = np.random.default_rng(5)


def _ties_and_nans(shape, dtype=np.float32):
  x = rng.integers(-4, 5, shape).astype(dtype)  # many ties
  if np.issubdtype(dtype, np.floating):
    flat = x.reshape(-1)
    flat[rng.integers(0, flat.size, 3)] = np.nan
    flat[rng.integers(0, flat.size, 2)] = -np.inf
  return x


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_matches_torch_stable(device, dim, descending):
  x = _ties_and_nans((5, 7, 6))
  values, indices = Tensor(x, device=device).sort(dim=dim, descending=descending)
  want_values, want_indices = torch.tensor(x).sort(dim=dim, descending=descending, stable=True)
  np.testing.assert_array_equal(values.numpy(), want_values.numpy())
  np.testing.assert_array_equal(indices.numpy(), want_indices.numpy())
  assert indices.dtype == dtypes.int32
  np.testing.assert_array_equal(Tensor(x, device=device).argsort(dim, descending).numpy(), want_indices.numpy())


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.float16, np.bool_])
def test_sort_other_dtypes(device, dtype):
  x = (rng.integers(0, 2, (3, 9)) if dtype == np.bool_ else rng.integers(0, 100, (3, 9))).astype(dtype)
  values, indices = Tensor(x, device=device).sort()
  want_values, want_indices = torch.tensor(x).sort(stable=True)
  np.testing.assert_array_equal(values.numpy(), want_values.numpy())
  np.testing.assert_array_equal(indices.numpy(), want_indices.numpy())


def test_sort_gradient_reaches_the_sorted_elements(device):
  x = rng.standard_normal((3, 5)).astype(np.float32)
  t, tt = Tensor(x, device=device, requires_grad=True), torch.tensor(x, requires_grad=True)
  weights = np.arange(5, dtype=np.float32)
  (t.sort(descending=True)[0] * Tensor(weights, device=device)).sum().backward()
  (tt.sort(descending=True)[0] * torch.tensor(weights)).sum().backward()
  np.testing.assert_array_equal(t.grad.numpy(), tt.grad.numpy())


def test_sort_edges(device):
  np.testing.assert_array_equal(Tensor(3.0, device=device).sort()[0].numpy(), 3.0)
  assert Tensor.empty(2, 0, device=device).sort()[0].shape == (2, 0)
  with pytest.raises(IndexError): Tensor([1.0, 2.0], device=device).sort(dim=1)


@pytest.mark.parametrize("n,k", [(10, 3), (3000, 7), (1100, 300)])
@pytest.mark.parametrize("largest", [True, False])
def test_topk_matches_torch(device, n, k, largest):
  """Rows longer than a block (256, or 4k) are ranked by blocks first; the result is the same."""
  x = rng.standard_normal((2, n)).astype(np.float32)
  values, indices = Tensor(x, device=device).topk(k, largest=largest)
  want_values, want_indices = torch.tensor(x).topk(k, largest=largest)
  np.testing.assert_array_equal(values.numpy(), want_values.numpy())
  np.testing.assert_array_equal(indices.numpy(), want_indices.numpy())


def test_topk_ties_dim_gradient_and_names(device):
  x = _ties_and_nans((6, 4))
  values, indices = Tensor(x, device=device).topk(3, dim=0)
  want = torch.tensor(x).sort(dim=0, descending=True, stable=True)
  np.testing.assert_array_equal(values.numpy(), want[0][:3].numpy())
  np.testing.assert_array_equal(indices.numpy(), want[1][:3].numpy())
  t = Tensor([1.0, 5.0, 3.0, 4.0], device=device, requires_grad=True)
  t.topk(2, sorted_=True)[0].sum().backward()  # (tinygrad's keyword)
  np.testing.assert_array_equal(t.grad.numpy(), [0, 1, 0, 1])
  assert t.topk(0)[0].shape == (0,)
  with pytest.raises(ValueError, match="k=5"): t.topk(5)


def test_masked_select_and_nonzero_match_torch(device):
  x = rng.standard_normal((3, 4)).astype(np.float32)
  mask = x > 0.2
  got = Tensor(x, device=device).masked_select(Tensor(mask, device=device))
  np.testing.assert_array_equal(got.numpy(), torch.tensor(x).masked_select(torch.tensor(mask)).numpy())
  np.testing.assert_array_equal(Tensor(x, device=device).masked_select(Tensor(mask[0], device=device)).numpy(),
                                torch.tensor(x).masked_select(torch.tensor(mask[0])).numpy())  # (a broadcast mask)
  np.testing.assert_array_equal(Tensor(mask, device=device).nonzero().numpy(), torch.tensor(mask).nonzero().numpy())
  rows, cols = Tensor(mask, device=device).nonzero(as_tuple=True)
  np.testing.assert_array_equal(rows.numpy(), np.nonzero(mask)[0])
  np.testing.assert_array_equal(cols.numpy(), np.nonzero(mask)[1])
  with pytest.raises(TypeError, match="bool mask"): Tensor(x, device=device).masked_select(Tensor(x, device=device))


def test_fixed_size_forms_stay_lazy(device):
  """size=N: exactly N results, cut or padded with fill_value, without reading the mask (no kernel runs)."""
  x = Tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]], device=device)
  selected, indices = x.masked_select(x != 0, size=5, fill_value=-1.0), x.nonzero(size=2)
  assert not selected.uop.op.name == "BUFFER" and selected.shape == (5,) and indices.shape == (2, 2)
  np.testing.assert_array_equal(selected.numpy(), [1, 2, 3, -1, -1])
  np.testing.assert_array_equal(indices.numpy(), [[0, 0], [0, 2]])
