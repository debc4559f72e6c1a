"""Indexing and joining on every device against numpy: __getitem__ with ints, slices, None, Ellipsis and integer
tensors (fancy indexing), __setitem__ with the same forms, cat/stack/split/chunk/repeat/unflatten, gather/scatter,
one_hot, masked_fill, tril/triu, and the errors bad indices raise."""
import numpy as np
import pytest
import teeny
from teeny import Tensor, dtypes, GlobalCounters

A = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
I = lambda *v: np.array(v, dtype=np.int32)  # noqa: E731

INDICES = {
  "int": (1,), "negative_int": (-1, 2), "step_slice": (slice(None, None, -2),), "ellipsis": (Ellipsis, 1),
  "none_ellipsis_slice": (None, 1, Ellipsis, slice(1, 4, 2)), "list": ([0, 2],), "tensor_middle": (slice(None), I(1, 3)),
  "two_tensors": (I(0, 2), I(1, 3)),
  "broadcast_tensors": (I(0, 2).reshape(2, 1), I(1, 3, 0)), "adjacent_tensors_after_slice": (slice(None), I(0, 1), I(2, 3)),
  "negative_tensor": (I(-1, 0),), "tensor_with_reversed_slice": (1, I(0, 3), slice(None, None, -1)),
  "2d_index_tensor": (I(0, 1, 2, 1).reshape(2, 2),), "none_between_tensors": (I(0, 1), None, I(2, 3)),
}


def as_teeny(index, device):
  return tuple(Tensor(i, device=device) if isinstance(i, np.ndarray) else i for i in index)


@pytest.mark.parametrize("name", list(INDICES))
def test_getitem_matches_numpy(device, name):
  index = INDICES[name]
  expected = A[tuple(np.array(i) if isinstance(i, list) else i for i in index)]
  out = Tensor(A, device=device)[as_teeny(index, device)]
  assert out.shape == expected.shape
  np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize("name", list(INDICES))
def test_setitem_matches_numpy(device, name):
  index = INDICES[name]
  np_index = tuple(np.array(i) if isinstance(i, list) else i for i in index)
  expected = A.copy()
  values = 100 + np.arange(expected[np_index].size, dtype=np.float32).reshape(expected[np_index].shape)
  expected[np_index] = values
  t = Tensor(A.copy(), device=device)
  t[as_teeny(index, device)] = Tensor(values, device=device)
  np.testing.assert_array_equal(t.numpy(), expected)


def test_setitem_scalar_broadcast_and_repeated_index(device):
  t, a = Tensor(A.copy(), device=device), A.copy()
  t[1, :, ::2] = -1.0; a[1, :, ::2] = -1.0
  t[..., 0] = Tensor(np.arange(4, dtype=np.float32), device=device); a[..., 0] = np.arange(4)
  np.testing.assert_array_equal(t.numpy(), a)
  v = Tensor([5, 6, 7], device=device, dtype=dtypes.int32)
  v[Tensor([0, 2, 0], device=device)] = Tensor([1, 2, 3], device=device, dtype=dtypes.int32)  # the last write wins, like numpy
  assert v.tolist() == [3, 6, 2]


def test_fancy_index_is_one_kernel_and_differentiable(device):
  table = Tensor(np.arange(20, dtype=np.float32).reshape(5, 4), device=device, requires_grad=True)
  idx = Tensor([3, 0, 3], device=device).realize()
  table.realize()
  GlobalCounters.reset()
  rows = table[idx].realize()
  assert GlobalCounters.kernel_count == 1
  np.testing.assert_array_equal(rows.numpy(), np.arange(20).reshape(5, 4)[[3, 0, 3]])
  (table[idx] * 2).sum().backward()
  expected = np.zeros((5, 4)); expected[3] = 4; expected[0] = 2
  np.testing.assert_array_equal(table.grad.numpy(), expected)


def test_out_of_range_tensor_index_selects_nothing(device):
  out = Tensor([1.0, 2.0, 3.0], device=device)[Tensor([0, 7], device=device)]
  assert out.tolist() == [1.0, 0.0]


def test_out_of_range_list_index_raises(device):
  """A list or array index is on the host: out of range it raises IndexError as in PyTorch (it selected 0)."""
  x = Tensor(A, device=device)
  for index in ([0, 3], (slice(None), [4]), np.array([-4]), (0, slice(None), [[5]])):
    with pytest.raises(IndexError, match="out of bounds"): x[index]
  with pytest.raises(IndexError, match="out of bounds"): x[[0, 3]] = 1.0
  np.testing.assert_array_equal(x[[-3, 2]].numpy(), A[[-3, 2]])


def test_bad_indices_raise(device):
  t = Tensor(A, device=device)
  with pytest.raises(IndexError, match="out of bounds"): t[3]
  with pytest.raises(IndexError, match="too many indices"): t[0, 0, 0, 0]
  with pytest.raises(IndexError, match="integers"): t[Tensor([0.5], device=device)]
  with pytest.raises(IndexError, match="mask of shape"): t[Tensor([True, False], device=device)]
  with pytest.raises(TypeError, match="unsupported index"): t[1.5]
  with pytest.raises(TypeError, match="unsupported index"): t["a"]
  with pytest.raises(IndexError, match="single ellipsis"): t[..., ...]
  with pytest.raises(ValueError, match="can't assign"): t.__setitem__(0, Tensor(np.ones(3, np.float32), device=device))


def test_cat_stack_and_their_errors(device):
  a, b = A[:, :2], -A[:, 2:]
  ta, tb = Tensor(a, device=device), Tensor(b, device=device)
  np.testing.assert_array_equal(ta.cat(tb, dim=1).numpy(), np.concatenate([a, b], 1))
  np.testing.assert_array_equal(Tensor.cat([ta, tb, ta], dim=-2).numpy(), np.concatenate([a, b, a], -2))
  np.testing.assert_array_equal(Tensor.stack([ta, ta], dim=2).numpy(), np.stack([a, a], 2))
  mixed = Tensor([1, 2], device=device).cat(Tensor([0.5], device=device))
  assert mixed.dtype == dtypes.float32 and mixed.tolist() == [1.0, 2.0, 0.5]
  with pytest.raises(ValueError, match="differ in another dimension"): ta.cat(Tensor(A[:2], device=device), dim=1)
  with pytest.raises(ValueError, match="one shape"): Tensor.stack([ta, Tensor(A[:2], device=device)])
  with pytest.raises(ValueError, match="numbers of dimensions"): ta.cat(Tensor([1.0], device=device))


def test_cat_of_one_row_fuses(device):
  parts = [Tensor(np.full((2, 3), i, np.float32), device=device).realize() for i in range(4)]
  GlobalCounters.reset()
  Tensor.cat(*parts, dim=1).realize()
  assert GlobalCounters.kernel_count == 1


def test_stack_of_five_thousand(device):
  scalars = Tensor.stack([Tensor(float(i), device=device) for i in range(5000)])
  np.testing.assert_array_equal(scalars.numpy(), np.arange(5000, dtype=np.float32))
  rows = [Tensor([float(i), 1.0], device=device).realize() for i in range(5000)]
  np.testing.assert_array_equal(Tensor.stack(rows).numpy()[:, 0], np.arange(5000, dtype=np.float32))


def test_split_chunk_unflatten_repeat(device):
  t = Tensor(A, device=device)
  assert [p.shape for p in t.split(2, dim=1)] == [(3, 2, 5), (3, 2, 5)]
  parts = t.split([1, 4], dim=2)
  np.testing.assert_array_equal(parts[1].numpy(), A[:, :, 1:])
  assert [p.shape for p in t.chunk(2, dim=2)] == [(3, 4, 3), (3, 4, 2)]
  with pytest.raises(ValueError, match="don't add up"): t.split([1, 1], dim=0)
  assert t.unflatten(1, (2, 2)).shape == (3, 2, 2, 5)
  np.testing.assert_array_equal(t.repeat(2, 1, 1, 2).numpy(), np.tile(A, (2, 1, 1, 2)))
  np.testing.assert_array_equal(t.repeat_interleave(2, 0).numpy(), np.repeat(A, 2, 0))
  with pytest.raises(ValueError, match="at least one count per axis"): t.repeat(2, 2)


def test_gather_and_scatter(device):
  x = np.arange(12, dtype=np.float32).reshape(3, 4)
  idx = np.array([[0, 2, 1, 0], [2, 2, 0, 1]])
  tx, ti = Tensor(x, device=device), Tensor(idx, device=device)
  np.testing.assert_array_equal(tx.gather(0, ti).numpy(), np.take_along_axis(x, idx, 0))
  np.testing.assert_array_equal(tx.gather(1, ti[:, :2]).numpy(), np.take_along_axis(x[:2], idx[:, :2], 1))
  src = np.arange(8, dtype=np.float32).reshape(2, 4) + 1
  cols = np.broadcast_to(np.arange(4), idx.shape)
  expected = x.copy(); np.add.at(expected, (idx, cols), src)
  np.testing.assert_array_equal(tx.scatter_add(0, ti, Tensor(src, device=device)).numpy(), expected)
  expected = x.copy(); expected[idx, cols] = src  # numpy's last write wins, as teeny's
  np.testing.assert_array_equal(tx.scatter(0, ti, Tensor(src, device=device)).numpy(), expected)
  expected = x.copy(); expected[idx[:, :2], cols[:, :2]] = -1
  np.testing.assert_array_equal(tx.scatter(0, ti[:, :2], -1.0).numpy(), expected)
  with pytest.raises(TypeError, match="int tensor"): tx.gather(0, Tensor([[0.0]], device=device))
  with pytest.raises(teeny.IndexDtypeError, match="int tensor"): tx.gather(0, Tensor([[True]], device=device))
  assert issubclass(teeny.IndexDtypeError, RuntimeError)  # (PyTorch's kind)
  with pytest.raises(ValueError, match="dimensions"): tx.gather(0, Tensor([0], device=device))


def test_writes_with_repeated_indices_give_every_written_value_its_places_gradient_like_torch(device):
  # PyTorch's rule (index_put's and scatter's backward: the gradient gathered at the index): a value that a later
  # write to the same place overwrote still gets that place's gradient, not 0
  x, v = Tensor.zeros(5, device=device, requires_grad=True), Tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
  y = x * 1
  y[Tensor([1, 1, 3], device=device)] = v
  (y * Tensor.arange(5.0, device=device)).sum().backward()
  np.testing.assert_array_equal(y.numpy(), [0.0, 2.0, 0.0, 3.0, 0.0])
  np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 2.0, 0.0, 4.0])
  np.testing.assert_array_equal(v.grad.numpy(), [1.0, 1.0, 3.0])
  x, src = Tensor.zeros(2, 4, device=device, requires_grad=True), Tensor.ones(2, 3, device=device, requires_grad=True)
  y = x.scatter(1, Tensor([[0, 0, 2], [1, 3, 3]], device=device), src)
  (y * Tensor.arange(8.0, device=device).reshape(2, 4)).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 1.0, 0.0, 3.0], [4.0, 0.0, 6.0, 0.0]])
  np.testing.assert_array_equal(src.grad.numpy(), [[0.0, 0.0, 2.0], [5.0, 7.0, 7.0]])
  # an index that covers a corner of x only (scatter), an index out of range (setitem writes nothing there)
  x, src = Tensor.zeros(3, 3, device=device, requires_grad=True), Tensor.ones(1, 2, device=device, requires_grad=True)
  (x.scatter(0, Tensor([[2, 2]], device=device), src) * Tensor.arange(9.0, device=device).reshape(3, 3)).sum().backward()
  np.testing.assert_array_equal(src.grad.numpy(), [[6.0, 7.0]])
  np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [0.0, 0.0, 8.0]])


def test_setitem_with_a_bool_mask_over_leading_dims_writes_where_it_is_true(device):
  a = np.arange(-4, 8, dtype=np.float32).reshape(3, 4)
  rows = np.array([True, False, True])
  cases = [(lambda t: t < 0, lambda x: x < 0, 0), (lambda t: Tensor(rows, device=device), lambda x: rows, 7.5),
           (lambda t: rows, lambda x: rows, Tensor([1.0, 2.0, 3.0, 4.0], device=device)),
           (lambda t: rows, lambda x: rows, Tensor([[1.0, 2.0, 3.0, 4.0]], device=device))]
  for make_mask, numpy_mask, value in cases:
    t, want = Tensor(a, device=device), a.copy()
    t[make_mask(t)] = value
    want[numpy_mask(want)] = value.numpy() if isinstance(value, Tensor) else value
    np.testing.assert_array_equal(t.numpy(), want)
  base = Tensor(a, device=device)
  view = base[1:]
  view[view > 5] = -1  # through a view into its base
  np.testing.assert_array_equal(base.numpy(), np.where(a > 5, -1, a))
  x, v = Tensor(a, device=device, requires_grad=True), Tensor(5.0, device=device, requires_grad=True)
  y = x * 1
  y[y < 0] = v
  (y * 2).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), np.where(a < 0, 0, 2))
  assert v.grad.item() == 8.0  # 2 for each of the four places written, as in PyTorch
  t, want = Tensor(a, device=device), a.copy()  # a value per selected element: the mask is read (as PyTorch does)
  t[rows] = Tensor(np.ones((2, 4), np.float32), device=device)
  want[rows] = 1
  np.testing.assert_array_equal(t.numpy(), want)


def test_bool_masks_select_where_true_like_torch(device):
  """x[mask] raised (the result's size is data); PyTorch reads the mask and selects where it is true, also for a
  mask over inner axes, beside other indices, or given as a list."""
  m01, m2 = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, False]]), np.array([True, False, True, True, False])
  t = Tensor(A, device=device)
  cases = [(lambda L: t[L(m01)], A[m01]), (lambda L: t[:, :, L(m2)], A[:, :, m2]), (lambda L: t[..., L(m2)], A[..., m2]),
           (lambda L: t[0, L(m01[0])], A[0, m01[0]]), (lambda L: t[L(m01), 1:3], A[m01][:, 1:3]), (lambda L: t[t > 40], A[A > 40]),
           (lambda L: t[[True, False, True]], A[[True, False, True]])]
  for k, (index, want) in enumerate(cases):
    for as_tensor in (lambda m: Tensor(m, device=device), lambda m: m):
      np.testing.assert_array_equal(index(as_tensor).numpy(), want, err_msg=str(k))
  x = Tensor(A, device=device, requires_grad=True)
  (x[x > 40] * 2).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), np.where(A > 40, 2, 0))


def test_a_0d_int_tensor_index_counts_as_an_int(device):
  """x[Tensor(0), :, [1, 0]]: PyTorch reads the 0-d tensor as the int 0, so the list's axis stays in place; it counted as
  a second index tensor, separated from the list by a slice, which moved the list's axis first (in reads and writes)."""
  t = Tensor(A, device=device)
  np.testing.assert_array_equal(t[Tensor(1, device=device), :, [1, 0]].numpy(), A[1][:, [1, 0]])
  np.testing.assert_array_equal(t[Tensor(1, device=device), 2].numpy(), A[1, 2])
  value = np.arange(8, dtype=np.float32).reshape(4, 2)
  t[Tensor(1, device=device), :, [1, 0]] = Tensor(value, device=device)
  want = A.copy()
  want[1][:, [1, 0]] = value
  np.testing.assert_array_equal(t.numpy(), want)


def test_one_hot_masked_fill_tril_triu(device):
  labels = Tensor([1, 0, 3], device=device)
  np.testing.assert_array_equal(labels.one_hot(4).numpy(), np.eye(4, dtype=np.int32)[[1, 0, 3]])
  assert labels.one_hot().shape == (3, 4)
  small = Tensor(np.array([255, 0], np.uint8), device=device).one_hot(300)  # (more classes than uint8 holds: raised)
  assert small.shape == (2, 300) and small.numpy()[0, 255] == 1 and small.numpy().sum() == 2
  x = np.arange(20, dtype=np.float32).reshape(4, 5)
  tx = Tensor(x, device=device)
  mask = x % 3 == 0
  np.testing.assert_array_equal(tx.masked_fill(Tensor(mask, device=device), -1).numpy(), np.where(mask, -1, x))
  for k in (-1, 0, 2):
    np.testing.assert_array_equal(tx.tril(k).numpy(), np.tril(x, k))
    np.testing.assert_array_equal(tx.triu(k).numpy(), np.triu(x, k))
  with pytest.raises(TypeError, match="bool mask"): tx.masked_fill(tx, 0)


def test_a_list_holding_a_slice_is_the_tuple(device):
  """x[[slice(None), [1, 3]]]: numpy refuses a list holding a slice (it can't be an int array), PyTorch reads it as
  the tuple x[:, [1, 3]]; so does teeny, reading and writing. (It failed inside numpy with an inhomogeneous-array
  error.) A list of ints or of lists stays an integer array index."""
  ref = np.arange(20.0, dtype=np.float32).reshape(4, 5)
  x = Tensor(ref, device=device)
  for index in ([slice(None), [1, 3]], [[0, 2], slice(None)], [None, 1], [Ellipsis, 0]):
    np.testing.assert_array_equal(x[index].numpy(), ref[tuple(index)])
  x[[slice(None), [1, 3]]] = -1.0
  ref[:, [1, 3]] = -1.0
  np.testing.assert_array_equal(x.numpy(), ref)
  np.testing.assert_array_equal(x[[0, 2]].numpy(), ref[[0, 2]])


def test_index_forms_that_raised_where_torch_works(device):
  """0-d gather/scatter/scatter_reduce (internal IndexError), an empty index tensor in a write (max of an empty axis),
  a value with extra leading 1s (y[1] = ones(1, 4)), a mask larger than the tensor in masked_select, and a 0-d
  nonzero(as_tuple=True) (was ()): as PyTorch does them."""
  three, zero = Tensor(3.0, device=device), Tensor(0, device=device)
  assert three.gather(0, zero).item() == 3.0 and three.gather(0, zero).shape == ()
  assert three.scatter(0, zero, Tensor(5.0, device=device)).item() == 5.0 and three.scatter(-1, zero, 7.0).item() == 7.0
  assert three.scatter_reduce(0, zero, Tensor(5.0, device=device), "amax").item() == 5.0
  y = Tensor.zeros(3, 4, device=device).contiguous()
  y[Tensor(np.zeros(0, np.int32), device=device)] = 1.0
  y[1] = Tensor.ones(1, 4, device=device)
  y[0:2, 3] = Tensor([[7.0, 8.0]], device=device)
  np.testing.assert_array_equal(y.numpy(), [[0, 0, 0, 7], [1, 1, 1, 8], [0, 0, 0, 0]])
  empty = Tensor.zeros(3, 4, device=device).scatter(1, Tensor(np.zeros((3, 0), np.int32), device=device), Tensor.ones(3, 4, device=device))
  assert empty.numpy().sum() == 0
  picked = Tensor(np.arange(4, dtype=np.float32), device=device).masked_select(Tensor(np.ones((2, 4), bool), device=device))
  np.testing.assert_array_equal(picked.numpy(), [0, 1, 2, 3, 0, 1, 2, 3])
  (where,) = Tensor(2.0, device=device).nonzero(as_tuple=True)
  assert where.tolist() == [0]


def test_scatter_reduce_amax_gradient_is_nan_where_the_result_is(device):
  """A place whose amax is NaN gave its values finite shares (0.5 each); PyTorch's rule gives all of them NaN
  (0 / 0: no value equals NaN), as the docstring said."""
  x = Tensor([np.nan, 2.0], device=device, requires_grad=True)
  src = Tensor([1.0, np.nan], device=device, requires_grad=True)
  x.scatter_reduce(0, Tensor([0, 0], device=device), src, "amax").sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [np.nan, 1.0])
  np.testing.assert_array_equal(src.grad.numpy(), [np.nan, np.nan])


def test_scatter_reduce_extremes_count_self_as_pytorch_and_take_no_index(device):
  """amax/amin with include_self=False count self's old value among a place's ties (PyTorch's rule), giving it no
  share: x [1, 7], src [1, 7, 7] into places [0, 1, 1] gives src [1/2, 1/3, 1/3] (teeny gave [1, 1/2, 1/2]);
  an empty index gives self (it raised: the max of an empty tensor)."""
  x = Tensor([1.0, 7.0], device=device, requires_grad=True)
  src = Tensor([1.0, 7.0, 7.0], device=device, requires_grad=True)
  x.scatter_reduce(0, Tensor([0, 1, 1], device=device), src, "amax", include_self=False).sum().backward()
  np.testing.assert_allclose(src.grad.numpy(), [0.5, 1 / 3, 1 / 3], rtol=1e-6)
  np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])
  empty = Tensor.zeros(4, 5, device=device).scatter_reduce(0, Tensor(np.zeros((0, 5), np.int32), device=device), Tensor.zeros(0, 5, device=device), "amax")
  np.testing.assert_array_equal(empty.numpy(), np.zeros((4, 5)))
