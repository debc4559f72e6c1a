"""scatter keeps the dtype of the tensor it writes into, bool included (as torch): a plain scatter replaces, 'add'
is a logical or and 'multiply' a logical and on bool."""
import numpy as np
import pytest
from teeny import Tensor, dtypes

BASE, INDEX, SRC = [True, False, False, True], [1, 2, 1], [True, False, True]
# by hand: index 1 gets True then True (the last write wins), index 2 gets False
WANT = {None: [True, True, False, True], "add": [True, True, False, True], "multiply": [True, False, False, True]}


@pytest.mark.parametrize("reduce", [None, "add", "multiply"])
def test_scatter_on_bool_keeps_bool(device, reduce):
  x, index, src = (Tensor(v, device=device) for v in (BASE, INDEX, SRC))
  out = x.scatter(0, index, src, reduce=reduce)
  assert out.dtype == dtypes.bool
  np.testing.assert_array_equal(out.numpy(), np.array(WANT[reduce]))
  torch = pytest.importorskip("torch")
  want = torch.tensor(BASE).scatter(0, torch.tensor(INDEX), torch.tensor(SRC), **({"reduce": reduce} if reduce else {}))
  np.testing.assert_array_equal(out.numpy(), want.numpy())


def test_scatter_keeps_other_dtypes(device):
  """A scalar source on bool, scatter_add on bool (or), and int8 / float16 targets keep their dtype."""
  x, index = Tensor(BASE, device=device), Tensor(INDEX, device=device)
  filled = x.scatter(0, index, True)
  assert filled.dtype == dtypes.bool and filled.tolist() == [True, True, True, True]
  added = x.scatter_add(0, index, Tensor(SRC, device=device))
  assert added.dtype == dtypes.bool and added.tolist() == WANT["add"]
  for dt, np_dt in ((dtypes.int8, np.int8), (dtypes.float16, np.float16)):
    y = Tensor(np.array([1, 2, 3, 4], np_dt), device=device)
    out = y.scatter(0, index, Tensor(np.array([7, 8, 9], np_dt), device=device))
    assert out.dtype == dt
    np.testing.assert_array_equal(out.numpy(), np.array([1, 9, 8, 4], np_dt))


def test_scatter_source_of_another_dtype_is_refused(device):
  """PyTorch refuses a tensor source whose dtype isn't self's (a float16 tensor and a float32 source); so does
  teeny, instead of casting it quietly. A Python number is cast, as before."""
  x, index = Tensor(np.zeros(4, np.float16), device=device), Tensor(INDEX, device=device)
  src = Tensor(np.float32([7, 8, 9]), device=device)
  with pytest.raises(RuntimeError, match="dtype"): x.scatter(0, index, src)
  with pytest.raises(RuntimeError, match="dtype"): x.scatter_add(0, index, src)
  with pytest.raises(RuntimeError, match="dtype"): x.scatter_reduce(0, index, src, reduce="sum")
  np.testing.assert_array_equal(x.scatter(0, index, 2.5).numpy(), np.float16([0, 2.5, 2.5, 0]))
