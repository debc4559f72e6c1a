"""Data into and out of teeny as PyTorch takes and gives it (findings of a differential sweep against torch 2.13):
Python lists mixing big ints and floats for an int dtype, numpy scalars given a dtype, a one-element int tensor
as a Python index, np.array(t, copy=False), and PyTorch's method form of where. Expected values are PyTorch's,
written out."""
import operator
import numpy as np
import pytest
from teeny import Tensor, dtypes


@pytest.mark.parametrize("data,dtype,want", [
  ([2**63 - 1, 1.5], dtypes.int64, [2**63 - 1, 1]),
  ([2**53 + 1, 0.5], dtypes.int64, [2**53 + 1, 0]),
  ([2**64 - 1, 1], dtypes.uint64, [2**64 - 1, 1]),
  ([2**63 + 5, 1], dtypes.uint64, [2**63 + 5, 1]),
  ([[1, 2.7], [-3.9, 4]], dtypes.int32, [[1, 2], [-3, 4]]),
  ([True, 2.5], dtypes.int8, [1, 2]),
], ids=str)
def test_a_list_of_ints_and_floats_keeps_every_int_exact(device, data, dtype, want):
  """numpy's array of ints beside a float (or ints past int64) is float64, which rounded ints past 2^53: 2**63 - 1
  beside 1.5 became -2**63 as int64, 2**64 - 1 beside 1 became 0 as uint64. Floats truncate toward 0."""
  t = Tensor(data, dtype=dtype, device=device)
  assert t.dtype == dtype and t.tolist() == want


def test_a_list_that_doesnt_fit_its_int_dtype_raises(device):
  with pytest.raises(OverflowError, match="uint8"): Tensor([300, 1.5], dtype=dtypes.uint8, device=device)
  with pytest.raises(ValueError, match="nan"): Tensor([float("nan"), 1], dtype=dtypes.int64, device=device)
  assert Tensor([], dtype=dtypes.int32, device=device).shape == (0,)


def test_a_numpy_scalar_given_an_int_dtype_is_checked_like_a_number(device):
  """torch.tensor(np.int64(2**40), dtype=torch.int32) raises; it was 0 here (300 as uint8: 44)."""
  with pytest.raises(OverflowError): Tensor(np.int64(2**40), dtype=dtypes.int32, device=device)
  with pytest.raises(OverflowError): Tensor(np.int64(300), dtype=dtypes.uint8, device=device)
  assert Tensor(np.int64(-1), dtype=dtypes.uint8, device=device).item() == 255  # (a negative int wraps, as in PyTorch)
  assert Tensor(np.float32(1.5), dtype=dtypes.int32, device=device).item() == 1


def test_a_one_element_int_tensor_is_a_python_index(device):
  assert operator.index(Tensor(2, device=device)) == 2
  assert [10, 20, 30][Tensor(1, device=device)] == 20
  assert list(range(Tensor([3], device=device))) == [0, 1, 2]
  with pytest.raises(TypeError, match="integer tensors"): operator.index(Tensor(2.0, device=device))
  with pytest.raises(TypeError): operator.index(Tensor([1, 2], device=device))


def test_numpy_array_without_a_copy_raises(device):
  """np.array(t, copy=False) must not hand back a copy (a write to it would be lost): numpy 2's rule, as PyTorch."""
  t = Tensor([1.0, 2.0], device=device)
  with pytest.raises(ValueError, match="copy"): np.array(t, copy=False)
  np.testing.assert_array_equal(np.asarray(t), [1.0, 2.0])


def test_where_in_pytorchs_method_form(device):
  """x.where(condition, y) with a bool condition and a non-bool x is PyTorch's method (x where condition, else y);
  tinygrad's reading (x != 0 as the condition) gave [1, 0, 1]. A bool self stays tinygrad's condition."""
  x = Tensor([129.5, -3.0, 7.25], device=device)
  mask = Tensor([True, False, True], device=device)
  assert x.where(mask, 0.0).tolist() == [129.5, 0.0, 7.25]
  assert x.where(mask, Tensor([1.0, 2.0, 3.0], device=device)).tolist() == [129.5, 2.0, 7.25]
  assert mask.where(x, 0.0).tolist() == [129.5, 0.0, 7.25]
  assert Tensor([1.0, 0.0, 2.0], device=device).where(5, 6).tolist() == [5, 6, 5]


def test_tensors_arrays_and_ranges_as_data(device):
  """torch.tensor takes a list of tensors or arrays, a range, and another library's tensor: so does Tensor (they
  raised TypeError)."""
  assert Tensor([Tensor(1.0), Tensor(2.0)], device=device).tolist() == [1.0, 2.0]
  pair = Tensor([Tensor([1, 2]), Tensor([3, 4])], device=device)
  assert pair.dtype == dtypes.int32 and pair.tolist() == [[1, 2], [3, 4]]
  stacked = Tensor([np.ones(2, np.float32), np.zeros(2, np.float32)], device=device)
  assert stacked.dtype == dtypes.float32 and stacked.tolist() == [[1, 1], [0, 0]]
  assert Tensor(range(3), device=device).tolist() == [0, 1, 2]
  torch = pytest.importorskip("torch")
  from_torch = Tensor(torch.tensor([1, 2], dtype=torch.int16), device=device)
  assert from_torch.dtype == dtypes.int16 and from_torch.tolist() == [1, 2]


def test_creation_edges(device):
  """Ints past int64 for an int dtype raise OverflowError (TypeError before), strings TypeError; linspace and
  empty_like take requires_grad= like every creation function."""
  with pytest.raises(OverflowError): Tensor([2**64], dtype=dtypes.int64, device=device)
  with pytest.raises(TypeError, match="strings"): Tensor(["a", 1], dtype=dtypes.int64, device=device)
  t = Tensor.linspace(0, 1, 5, device=device, requires_grad=True)
  (t * t).sum().backward()
  np.testing.assert_allclose(t.grad.numpy(), [0, 0.5, 1, 1.5, 2])
  assert Tensor.ones(3, device=device).empty_like(requires_grad=True).requires_grad
