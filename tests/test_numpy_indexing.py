"""Indexing exactly as numpy and PyTorch, on every device: random index tuples mixing ints, slices (steps,
negative), None, Ellipsis, lists, tuples and integer tensors on 3-d and 4-d tensors; where the axes of tensor
indices go; Python lists and tuples as indices, read and written; tensor indices out of range (select nothing,
write nothing) and negative (from the end); and the gather: a tensor index compiles to a load at the index, never
to a loop over the indexed axes.

The reference is numpy, applied with PyTorch's rule where the two differ: an int beside tensor indices indexes
first, like a slice (numpy counts it as a tensor index, which moves the axes of x[0, :, idx]); tinygrad agrees
with PyTorch. PyTorch itself is a second reference where it is installed."""
import random
import numpy as np
import pytest
from teeny import Tensor, Device, dtypes, GlobalCounters
from teeny.codegen import get_program
from teeny.schedule import create_schedule


def arange_of(shape) -> np.ndarray:
  return np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) - 7


def as_teeny(index, device):
  """numpy arrays in the index become teeny tensors (lists and tuples stay as they are)."""
  return tuple(Tensor(i, device=device) if isinstance(i, np.ndarray) else i for i in index)


def random_item(rng: random.Random, size: int):
  kind = rng.choice(["int", "slice", "slice", "list", "tuple", "tensor"])
  if kind == "int": return rng.randint(-size, size - 1)
  if kind == "slice":
    ends = [None, rng.randint(-size - 1, size + 1)]
    return slice(rng.choice(ends), rng.choice(ends), rng.choice([None, 1, 2, 3, -1, -2]))
  shape = rng.choice([(2,), (3,), (1,), (2, 1), (1, 3), ()])
  values = np.array([rng.randint(-size, size - 1) for _ in range(int(np.prod(shape)))], dtype=np.int32).reshape(shape)
  if kind == "list": return values.tolist()
  if kind == "tuple" and values.ndim == 1: return tuple(values.tolist())
  return values


def random_index(rng: random.Random, shape) -> tuple:
  items = [random_item(rng, size) for size in shape[:rng.randint(1, len(shape))]]
  for _ in range(rng.choice([0, 0, 1, 2])): items.insert(rng.randint(0, len(items)), None)
  if rng.random() < 0.4:  # an Ellipsis standing for the axes no item names, or for none at all
    at = rng.randint(0, len(items))
    items = items[:at] + [Ellipsis] + items[at:]
  return tuple(items)


def numpy_index(index):
  """The same index for numpy: lists as integer arrays (an empty one too, which np.array would make float)."""
  return tuple(np.array(i, dtype=np.int64) if isinstance(i, list) else i for i in index)


def torch_rule_parts(ndim: int, index: tuple) -> tuple[tuple, tuple]:
  """x[index] under PyTorch's rule as two numpy indexings: the ints, slices and None first (a view), then the
  arrays along the axes that are left (so an int between arrays and slices doesn't move the arrays' axes). A 0-d
  array is an int there, as PyTorch reads a 0-d integer tensor."""
  index = tuple(np.asarray(i) if isinstance(i, (list, tuple)) else i for i in index)
  index = tuple(int(i) if isinstance(i, np.ndarray) and i.ndim == 0 else i for i in index)
  def is_array(i): return isinstance(i, np.ndarray)
  consumed = sum(1 for i in index if is_array(i) or (i is not None and i is not Ellipsis))
  at = next((k for k, i in enumerate(index) if not is_array(i) and i is Ellipsis), len(index))
  index = index[:at] + (slice(None),) * (ndim - consumed) + index[at + 1:]
  basic = tuple(slice(None) if is_array(i) else i for i in index)
  advanced = tuple(i if is_array(i) else slice(None) for i in index if is_array(i) or not isinstance(i, (int, np.integer)))
  return basic, advanced


def torch_rule(a: np.ndarray, index: tuple) -> np.ndarray:
  """a[index] with PyTorch's rule, computed by numpy (see torch_rule_parts)."""
  index = numpy_index(index)
  if not any(isinstance(i, (np.ndarray, tuple)) for i in index): return a[index]
  basic, advanced = torch_rule_parts(a.ndim, index)
  return a[basic][advanced]


def torch_rule_set(a: np.ndarray, index: tuple, values):
  """a[index] = values with PyTorch's rule, in place (a[basic] is a numpy view of a)."""
  basic, advanced = torch_rule_parts(a.ndim, numpy_index(index))
  a[basic][advanced] = values


@pytest.mark.parametrize("seed", range(3))
def test_random_index_tuples_give_numpys_shape_and_values(device, seed):
  """numpy's values and shapes, with PyTorch's rule for an int beside tensor indices (see torch_rule)."""
  rng = random.Random(seed)
  shapes = [(4, 3, 5), (2, 4, 3, 5)]  # distinct sizes: a misplaced axis shows in the shape
  checked = 0
  while checked < 6:
    shape = rng.choice(shapes)
    a = arange_of(shape)
    index = random_index(rng, shape)
    try: expected = torch_rule(a, index)
    except IndexError: continue  # (too many indices for this shape)
    out = Tensor(a, device=device)[as_teeny(index, device)]
    assert out.shape == expected.shape, index
    np.testing.assert_array_equal(out.numpy(), expected, err_msg=str(index))
    checked += 1


def test_random_index_tuples_give_numpys_shape(device):
  """Many more tuples, shapes only (no kernel runs): where every axis of the result goes."""
  rng = random.Random(100)
  a = arange_of((2, 4, 3, 5))
  t = Tensor(a, device=device)
  for _ in range(400):
    index = random_index(rng, a.shape)
    try: expected = torch_rule(a, index)
    except IndexError: continue
    assert t[as_teeny(index, device)].shape == expected.shape, index
    assert t._index_plan(as_teeny(index, device)).result_shape == expected.shape, index  # (what __setitem__ writes)


I = lambda *v: np.array(v, dtype=np.int32)  # noqa: E731
# (index, the result's shape on a (2, 3, 4, 5) tensor, PyTorch's): an int indexes first, like a slice
INT_PLACEMENT = {
  "int_slice_tensor": ((0, slice(None), I(1, 2)), (3, 2, 5)),                 # numpy: (2, 3, 5)
  "tensor_slice_int": ((I(0, 1), slice(None), 0), (2, 3, 5)),
  "slice_int_tensor_adjacent": ((slice(None), 0, I(0, 1)), (2, 2, 5)),
  "slice_tensor_int_adjacent": ((slice(None), I(0, 2), 1), (2, 2, 5)),
  "tensor_int_tensor_adjacent": ((I(0, 1), 0, I(1, 2)), (2, 5)),
  "slice_int_slice_tensor": ((slice(None), 1, slice(None), I(0, 3)), (2, 4, 2)),  # numpy: (2, 2, 4)
  "none_int_slice_tensor": ((None, 0, slice(None), I(1)), (1, 3, 1, 5)),      # numpy: (1, 1, 3, 5)
  "ellipsis_of_no_axes": ((slice(None), I(0), 0, Ellipsis, I(1)), (2, 1)),    # numpy: (1, 2)
  "ellipsis_between_tensors": ((I(0, 1), Ellipsis, I(2, 3)), (2, 3, 4)),
  "ellipsis_after": ((slice(None), I(0, 1), 2, Ellipsis), (2, 2, 5)),
}


@pytest.mark.parametrize("name", list(INT_PLACEMENT))
def test_int_beside_tensor_indices_places_axes_like_pytorch(device, name):
  index, shape = INT_PLACEMENT[name]
  a = arange_of((2, 3, 4, 5))
  expected = torch_rule(a, index)
  assert expected.shape == shape
  out = Tensor(a, device=device)[as_teeny(index, device)]
  assert out.shape == shape
  np.testing.assert_array_equal(out.numpy(), expected)
  values = -np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
  written, t = a.copy(), Tensor(a, device=device)
  torch_rule_set(written, index, values)
  t[as_teeny(index, device)] = Tensor(values, device=device)
  np.testing.assert_array_equal(t.numpy(), written)
  torch = pytest.importorskip("torch")
  torch_index = tuple(torch.tensor(i, dtype=torch.int64) if isinstance(i, np.ndarray) else i for i in index)
  np.testing.assert_array_equal(out.numpy(), torch.tensor(a)[torch_index].numpy())
  written_by_torch = torch.tensor(a)
  written_by_torch[torch_index] = torch.tensor(values)
  np.testing.assert_array_equal(t.numpy(), written_by_torch.numpy())


A = arange_of((3, 4, 5))
LISTS = {
  "list": ([0, 2],), "two_lists": ([0, 1], [1, 2]), "nested_list_broadcast": ([[0], [1]], [1, 2]),
  "negative_entries": ([-1, 0, -3],), "negative_pairs": ([-1, 0], [-4, 3], [-5, 4]),
  "tuple_is_per_axis": (0, 2), "tuple_inside_tuple": ((0, 2), 1), "list_after_slice": (slice(None), [3, 0, 3]),
  "list_with_none": (None, [2, 1], slice(1, None)), "empty_list": ([],), "list_of_one": ([1], [2], [3]),
}


@pytest.mark.parametrize("name", list(LISTS))
def test_lists_and_tuples_index_like_numpy_and_torch(device, name):
  index = LISTS[name]
  expected = A[numpy_index(index)]
  out = Tensor(A, device=device)[index]
  assert out.shape == expected.shape
  np.testing.assert_array_equal(out.numpy(), expected)
  torch = pytest.importorskip("torch")
  torch_index = tuple(torch.tensor(i, dtype=torch.int64) if isinstance(i, list) and not i else i for i in index)
  np.testing.assert_array_equal(out.numpy(), torch.tensor(A)[torch_index].numpy())


def test_a_list_as_the_whole_index_is_one_array_index(device):
  t = Tensor(A, device=device)
  assert t[[0, 2]].shape == (2, 4, 5)                # numpy: an array index on axis 0
  assert t[(0, 2)].shape == (5,)                    # a tuple: one index per axis
  np.testing.assert_array_equal(t[[[0, 1], [2, 0]]].numpy(), A[np.array([[0, 1], [2, 0]])])


@pytest.mark.parametrize("name", ["list", "two_lists", "nested_list_broadcast", "negative_entries", "tuple_inside_tuple",
                                  "list_after_slice"])
def test_setitem_with_lists_and_tuples_writes_like_numpy(device, name):
  index = LISTS[name]
  expected = A.copy()
  values = 100 + np.arange(expected[numpy_index(index)].size, dtype=np.float32).reshape(expected[numpy_index(index)].shape)
  expected[numpy_index(index)] = values
  t = Tensor(A.copy(), device=device)
  t[index] = Tensor(values, device=device)
  np.testing.assert_array_equal(t.numpy(), expected)


def test_tensor_index_out_of_range_selects_nothing_and_negative_counts_from_the_end(device):
  x = arange_of((4, 6))
  t = Tensor(x, device=device)
  rows, cols = [0, -1, 4, -5, 2], [5, -6, 0, 1, 6]
  out = t[Tensor(rows, device=device), Tensor(cols, device=device)].numpy()
  # in range (negatives from the end) as numpy; out of range (4, -5 on 4 rows; 6 on 6 columns) gives 0
  np.testing.assert_array_equal(out, [x[0, 5], x[-1, -6], 0, 0, 0])
  np.testing.assert_array_equal(t[Tensor([-4, 3, -5, 9], device=device)].numpy(), [x[0], x[3], np.zeros(6), np.zeros(6)])
  # indices of any int dtype: values past int32 or in the top half of uint32 are out of range, never wrapped in
  big = Tensor([2**40 + 1, 1], device=device, dtype=dtypes.int64)
  np.testing.assert_array_equal(t[big].numpy(), [np.zeros(6), x[1]])
  top = Tensor(np.array([2**32 - 1, 2], dtype=np.uint32), device=device)
  np.testing.assert_array_equal(t[:, top].numpy(), np.stack([np.zeros(4), x[:, 2]], 1))
  small = Tensor(np.array([3, -1], dtype=np.int8), device=device)
  np.testing.assert_array_equal(t[small].numpy(), x[[3, -1]])


def test_setitem_out_of_range_tensor_index_writes_nothing(device):
  t = Tensor(np.zeros(5, dtype=np.float32), device=device)
  t[Tensor([1, 7, -1, -9], device=device)] = Tensor([1.0, 2.0, 3.0, 4.0], device=device)
  np.testing.assert_array_equal(t.numpy(), [0, 1, 0, 0, 3])


@pytest.mark.parametrize("dtype", [dtypes.float32, dtypes.float16, dtypes.int32, dtypes.bool])
def test_gather_by_two_tensors_keeps_the_dtype(device, dtype):
  x = (arange_of((5, 7)) % 4).astype(dtype.np)
  i, j = I(4, 0, -1, 2, 2), I(6, 0, 3, -7, 1)
  out = Tensor(x, device=device)[Tensor(i, device=device), Tensor(j, device=device)]
  assert out.dtype == dtype
  np.testing.assert_array_equal(out.numpy(), x[i, j])


def programs(t: Tensor) -> list:
  items, *_ = create_schedule([t.uop], [t.device])
  return [get_program(item.ast, Device[t.device].renderer) for item in items]


def test_two_tensor_fancy_index_loads_at_the_index_without_looping_over_the_tensor(device):
  n, m, k = 300, 200, 1000
  rng = np.random.default_rng(0)
  x = rng.standard_normal((n, m), dtype=np.float32)
  i, j = rng.integers(-n, n, k).astype(np.int32), rng.integers(-m, m, k).astype(np.int32)
  tx = Tensor(x, device=device).realize()
  ti, tj = Tensor(i, device=device).realize(), Tensor(j, device=device).realize()
  specs = programs(tx[ti, tj])
  gather = specs[-1]
  # the name is the loop shape: k selections, no loop over the n*m positions (a one-hot would be r_..._60000)
  assert gather.name.startswith("E_") and str(n * m) not in gather.name
  assert sum(s.flops for s in specs) < 50 * k  # a one-hot compare-and-sum: about 4 * k * n * m
  GlobalCounters.reset()
  np.testing.assert_array_equal(tx[ti, tj].numpy(), x[i, j])
  assert GlobalCounters.global_ops < 50 * k


def test_row_index_loads_rows_without_looping_over_the_indexed_axis(device):
  n, m, k = 300, 20, 100
  x = arange_of((n, m))
  i = np.random.default_rng(1).integers(0, n, k).astype(np.int32)
  tx, ti = Tensor(x, device=device).realize(), Tensor(i, device=device).realize()
  specs = programs(tx[ti])
  assert str(n) not in specs[-1].name.split("_")
  assert sum(s.flops for s in specs) < 20 * k * m  # not k * n * m
  np.testing.assert_array_equal(tx[ti].numpy(), x[i])


def test_gather_method_loads_at_the_index(device):
  x = arange_of((40, 300))
  index = np.random.default_rng(2).integers(0, 300, (40, 50)).astype(np.int32)
  tx, ti = Tensor(x, device=device).realize(), Tensor(index, device=device).realize()
  specs = programs(tx.gather(1, ti))
  assert str(300) not in specs[-1].name.split("_")
  assert sum(s.flops for s in specs) < 20 * index.size
  np.testing.assert_array_equal(tx.gather(1, ti).numpy(), np.take_along_axis(x, index, 1))
  torch = pytest.importorskip("torch")
  np.testing.assert_array_equal(tx.gather(1, ti).numpy(), torch.tensor(x).gather(1, torch.tensor(index, dtype=torch.int64)).numpy())


def test_fancy_index_of_a_computed_tensor_through_views(device):
  a, b = arange_of((6, 8)), arange_of((8, 6)) * 0.5
  i, j = I(5, 0, 2, -1), I(1, 7, 3, 3)
  ta, tb = Tensor(a, device=device), Tensor(b, device=device)
  np.testing.assert_array_equal((ta + tb.T)[Tensor(i, device=device), Tensor(j, device=device)].numpy(), (a + b.T)[i, j])
  np.testing.assert_array_equal(ta[::-2, 1::3][Tensor(I(2, 0, -1), device=device)].numpy(), a[::-2, 1::3][[2, 0, -1]])
  np.testing.assert_array_equal(ta.flip(1)[:, [0, -1]].numpy(), a[:, ::-1][:, [0, -1]])


def test_gradient_of_two_tensor_fancy_index_adds_up_repeats(device):
  x = arange_of((4, 5))
  i, j = I(0, 3, 0, -1, 2), I(1, 4, 1, 0, 2)
  tx = Tensor(x, device=device, requires_grad=True)
  weights = np.arange(1, 6, dtype=np.float32)
  (tx[Tensor(i, device=device), Tensor(j, device=device)] * Tensor(weights, device=device)).sum().backward()
  expected = np.zeros_like(x)
  np.add.at(expected, (i, j), weights)
  np.testing.assert_array_equal(tx.grad.numpy(), expected)
  torch = pytest.importorskip("torch")
  xt = torch.tensor(x, requires_grad=True)
  (xt[torch.tensor(i, dtype=torch.int64), torch.tensor(j, dtype=torch.int64)] * torch.tensor(weights)).sum().backward()
  np.testing.assert_array_equal(tx.grad.numpy(), xt.grad.numpy())


@pytest.mark.parametrize("index", [True, False, (True, 0), (0, True), (Ellipsis, False), (False, slice(1, 1)),
                                   (None, False, 1), (0, True, slice(None, None, 2)), np.True_, np.array(False)],
                         ids=str)
def test_a_single_bool_index_is_a_new_axis_like_numpy(device, index):
  """x[True] is x with a new axis of size 1, x[False] one of size 0 (numpy's and PyTorch's reading of a 0-d
  mask); a 0-d bool tensor reads its value. They raised TypeError/IndexError."""
  a = arange_of((2, 3))
  np.testing.assert_array_equal(Tensor(a, device=device)[index].numpy(), a[index])
  if isinstance(index, (bool, np.ndarray)):
    np.testing.assert_array_equal(Tensor(a, device=device)[Tensor(bool(index), device=device)].numpy(), a[index])


@pytest.mark.parametrize("index", [True, False, (True, 1), (0, False)], ids=str)
def test_setitem_through_a_single_bool_index(device, index):
  a = arange_of((2, 3))
  t = Tensor(a, device=device)
  t[index] = 5.0
  a[index] = 5.0
  np.testing.assert_array_equal(t.numpy(), a)
  x = Tensor(arange_of((2, 3)), device=device, requires_grad=True)
  (x[index] * 2).sum().backward()
  hit = np.zeros((2, 3), np.float32)
  hit[index] = 2  # (the elements the index selects)
  np.testing.assert_array_equal(x.grad.numpy(), hit)


def test_a_bool_index_beside_tensor_indices_raises(device):
  with pytest.raises(IndexError, match="bool index"): Tensor(arange_of((2, 3)), device=device)[True, [1, 0]]


def test_take_and_index_select_select_nothing_past_the_negative_end(device):
  """An index below -size selects 0, as x[idx] does (PyTorch raises): take and index_select counted a negative
  index from the end twice, so -13 of 12 elements read the last one."""
  a = Tensor(np.arange(1, 13, dtype=np.float32).reshape(3, 4), device=device)
  assert a.take(Tensor([-13, -24, -1, 0, 11, 12], device=device)).tolist() == [0, 0, 12, 1, 12, 0]
  assert a.index_select(1, Tensor([-5, -8, -1, 0, 4], device=device)).tolist()[0] == [0, 0, 4, 1, 0]
