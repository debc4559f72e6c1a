"""sort, argsort, topk, masked_select and nonzero (teeny/ops/sorting.py): values and indices (stable order for ties,
NaN sorted as the largest value), every axis, descending, ints and bools, gradients through the picked elements,
topk over rows longer than its blocks, and the lazy size= forms.

The reference is PyTorch where it is installed, and otherwise a small pure-Python one (reference_sort: the order
torch.sort(stable=True) gives) with numpy's boolean indexing: every test runs without torch (CI installs none)."""
import math

import numpy as np
import pytest

from teeny import Tensor, dtypes

try:
  import torch
except ImportError:  # (CI: no PyTorch; the references below stand in)
  torch = None
rng = np.random.default_rng(5)


def _ties_and_nans(shape, dtype=np.float32):
  x = rng.integers(-4, 5, shape).astype(dtype)  # many ties
  if np.issubdtype(dtype, np.floating):
    flat = x.reshape(-1)
    flat[rng.integers(0, flat.size, 3)] = np.nan
    flat[rng.integers(0, flat.size, 2)] = -np.inf
  return x


def _sort_key(value, descending: bool):
  """A key sorting NaN as the largest value; Python numbers, so negating a uint8 or a bool cannot wrap."""
  number = float(value)
  if math.isnan(number): return (1, 0.0) if not descending else (0, 0.0)
  return (0, number) if not descending else (1, -number)


def reference_sort(x: np.ndarray, dim: int = -1, descending: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """(values, indices) as torch.sort(stable=True) gives them: NaN last (first when descending), ties in their
  original order either way. Python's sorted is stable, and the key puts the descending order in ascending form."""
  moved = np.moveaxis(x, dim, -1)
  rows = moved.reshape(-1, moved.shape[-1]) if moved.size else moved.reshape(0, moved.shape[-1])
  order = np.array([sorted(range(len(row)), key=lambda i, row=row: _sort_key(row[i], descending)) for row in rows],
                   dtype=np.int64).reshape(moved.shape)
  values = np.take_along_axis(moved, order, -1)
  return np.moveaxis(values, -1, dim), np.moveaxis(order, -1, dim)


def expected_sort(x: np.ndarray, dim: int = -1, descending: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """PyTorch's stable sort where installed, else reference_sort."""
  if torch is None: return reference_sort(x, dim, descending)
  values, indices = torch.tensor(x).sort(dim=dim, descending=descending, stable=True)
  return values.numpy(), indices.numpy()


def test_reference_sort_is_torchs_order():
  """The reference itself against small cases written out by hand (so it stays checked where torch is absent)."""
  x = np.array([2.0, np.nan, -np.inf, 2.0, 1.0, np.nan, 1.0], dtype=np.float32)
  values, indices = reference_sort(x)
  np.testing.assert_array_equal(indices, [2, 4, 6, 0, 3, 1, 5])
  np.testing.assert_array_equal(values, [-np.inf, 1, 1, 2, 2, np.nan, np.nan])
  values, indices = reference_sort(x, descending=True)
  np.testing.assert_array_equal(indices, [1, 5, 0, 3, 4, 6, 2])
  np.testing.assert_array_equal(reference_sort(np.array([[3, 0], [1, 2]], np.uint8), dim=0, descending=True)[1], [[0, 1], [1, 0]])
  if torch is not None:
    for descending in (False, True):
      want = torch.tensor(x).sort(descending=descending, stable=True)[1].numpy()
      np.testing.assert_array_equal(reference_sort(x, descending=descending)[1], want)


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_matches_torch_stable(device, dim, descending):
  x = _ties_and_nans((5, 7, 6))
  values, indices = Tensor(x, device=device).sort(dim=dim, descending=descending)
  want_values, want_indices = expected_sort(x, dim, descending)
  np.testing.assert_array_equal(values.numpy(), want_values)
  np.testing.assert_array_equal(indices.numpy(), want_indices)
  assert indices.dtype == dtypes.int32
  np.testing.assert_array_equal(Tensor(x, device=device).argsort(dim, descending).numpy(), want_indices)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.float16, np.bool_])
def test_sort_other_dtypes(device, dtype):
  x = (rng.integers(0, 2, (3, 9)) if dtype == np.bool_ else rng.integers(0, 100, (3, 9))).astype(dtype)
  values, indices = Tensor(x, device=device).sort()
  want_values, want_indices = expected_sort(x)
  np.testing.assert_array_equal(values.numpy(), want_values)
  np.testing.assert_array_equal(indices.numpy(), want_indices)


def test_sort_gradient_reaches_the_sorted_elements(device):
  x = rng.standard_normal((3, 5)).astype(np.float32)
  t = Tensor(x, device=device, requires_grad=True)
  weights = np.arange(5, dtype=np.float32)
  (t.sort(descending=True)[0] * Tensor(weights, device=device)).sum().backward()
  # the gradient of sum(sorted * weights): each weight lands on the element sorted into its place
  want = np.zeros_like(x)
  np.put_along_axis(want, reference_sort(x, descending=True)[1], np.broadcast_to(weights, x.shape), -1)
  np.testing.assert_array_equal(t.grad.numpy(), want)
  if torch is not None:
    tt = torch.tensor(x, requires_grad=True)
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
  if torch is not None:
    want_values, want_indices = (w.numpy() for w in torch.tensor(x).topk(k, largest=largest))
  else:  # (no ties in normal samples: topk is the first k of the sorted row)
    want_values, want_indices = (w[:, :k] for w in reference_sort(x, descending=largest))
  np.testing.assert_array_equal(values.numpy(), want_values)
  np.testing.assert_array_equal(indices.numpy(), want_indices)


def test_topk_ties_dim_gradient_and_names(device):
  x = _ties_and_nans((6, 4))
  values, indices = Tensor(x, device=device).topk(3, dim=0)
  want_values, want_indices = expected_sort(x, 0, descending=True)
  np.testing.assert_array_equal(values.numpy(), want_values[:3])
  np.testing.assert_array_equal(indices.numpy(), want_indices[:3])
  t = Tensor([1.0, 5.0, 3.0, 4.0], device=device, requires_grad=True)
  t.topk(2, sorted_=True)[0].sum().backward()  # (tinygrad's keyword)
  np.testing.assert_array_equal(t.grad.numpy(), [0, 1, 0, 1])
  assert t.topk(0)[0].shape == (0,)
  with pytest.raises(ValueError, match="k=5"): t.topk(5)


def test_masked_select_and_nonzero_match_torch(device):
  x = rng.standard_normal((3, 4)).astype(np.float32)
  mask = x > 0.2
  got = Tensor(x, device=device).masked_select(Tensor(mask, device=device))
  np.testing.assert_array_equal(got.numpy(), x[mask])
  broadcast = Tensor(x, device=device).masked_select(Tensor(mask[0], device=device))  # (a broadcast mask)
  np.testing.assert_array_equal(broadcast.numpy(), x[np.broadcast_to(mask[0], x.shape)])
  np.testing.assert_array_equal(Tensor(mask, device=device).nonzero().numpy(), np.argwhere(mask))
  if torch is not None:
    np.testing.assert_array_equal(got.numpy(), torch.tensor(x).masked_select(torch.tensor(mask)).numpy())
    np.testing.assert_array_equal(broadcast.numpy(), torch.tensor(x).masked_select(torch.tensor(mask[0])).numpy())
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


@pytest.mark.parametrize("n, k", [(257, 3), (300, 50), (512, 7), (1025, 65), (2000, 300)])
def test_topk_of_long_rows_whose_last_block_holds_fewer_than_k(device, n, k):
  """Long rows are ranked in blocks of 256 (4k past k = 64); a last block with fewer than k elements had its
  padding tied at one rank, so topk of arange(257) gave [0, 255, 255]. Every row of a batch, both directions."""
  rows = np.stack([np.arange(n, dtype=np.float32), np.random.default_rng(n).standard_normal(n).astype(np.float32)])
  for largest in (True, False):
    values, indices = Tensor(rows, device=device).topk(k, largest=largest)
    want = np.sort(rows, axis=1)[:, ::-1][:, :k] if largest else np.sort(rows, axis=1)[:, :k]
    np.testing.assert_array_equal(values.numpy(), want)
    np.testing.assert_array_equal(np.take_along_axis(rows, indices.numpy().astype(np.int64), 1), want)
