"""Bad input raises at the call that caused it, with a message naming what was wrong, before any kernel runs."""
import re
import numpy as np
import pytest
from teeny import Tensor, GlobalCounters, dtypes
from teeny.runtime.device import Device

DEVICES = Device.available()


@pytest.fixture
def no_kernels():
  """Fails the test if any kernel ran inside it."""
  GlobalCounters.reset()
  yield
  assert GlobalCounters.kernel_count == 0, f"{GlobalCounters.kernel_count} kernel(s) ran before the error"


def t(shape, device, dtype=np.float32):
  return Tensor(np.arange(int(np.prod(shape))).reshape(shape).astype(dtype), device=device)


def test_add_mismatched_shapes_names_both(device, no_kernels):
  a, b = t((3,), device), t((4,), device)
  lazy = a * 2  # a pending graph must not run either
  with pytest.raises(ValueError) as e: lazy + b
  assert "(3,)" in str(e.value) and "(4,)" in str(e.value), str(e.value)
  with pytest.raises(ValueError) as e: b - a
  assert "(3,)" in str(e.value) and "(4,)" in str(e.value), str(e.value)


@pytest.mark.parametrize("sa,sb", [((2, 3), (3, 2)), ((2, 3, 4), (3, 1, 5)), ((5,), (2, 4))])
def test_broadcast_errors(device, no_kernels, sa, sb):
  a, b = t(sa, device), t(sb, device)
  for op in (lambda: a + b, lambda: a * b, lambda: a < b, lambda: a.maximum(b), lambda: a == b):
    with pytest.raises(ValueError) as e: op()
    assert str(sa) in str(e.value) and str(sb) in str(e.value), str(e.value)


def test_where_broadcast_error(device, no_kernels):
  cond = Tensor(np.array([True, False, True]), device=device)
  with pytest.raises(ValueError): cond.where(t((4,), device), 0.0)


@pytest.mark.parametrize("shape", [(5,), (2, 7), (-1, 5), (4, -1, 4), (-1, -1), (0, -1), (2, -2)])
def test_reshape_wrong_size(device, no_kernels, shape):
  x = t((3, 4), device)
  with pytest.raises(ValueError) as e: x.reshape(shape)
  assert "(3, 4)" in str(e.value) or str(shape) in str(e.value), str(e.value)


@pytest.mark.parametrize("order", [(0, 0, 1), (0, 1), (0, 1, 2, 3), (1, 1, 1), (2, 0, 0)])
def test_permute_bad_order(device, no_kernels, order):
  with pytest.raises(ValueError): t((2, 3, 4), device).permute(order)


def test_permute_out_of_range_axis(device, no_kernels):
  with pytest.raises((ValueError, IndexError)): t((2, 3, 4), device).permute(0, 1, 3)
  with pytest.raises((ValueError, IndexError)): t((2, 3, 4), device).permute(0, 1, -4)


@pytest.mark.parametrize("op", ["sum", "max", "min", "mean"])
@pytest.mark.parametrize("axis", [2, -3, 5, (0, 2), (0, 0), (1, -1)])
def test_reduce_bad_axis(device, no_kernels, op, axis):
  x = t((2, 3), device)
  with pytest.raises((IndexError, ValueError)) as e: getattr(x, op)(axis)
  if axis in (2, -3, 5): assert str(axis) in str(e.value), str(e.value)


def test_other_bad_axes(device, no_kernels):
  x = t((2, 3), device)
  with pytest.raises((IndexError, ValueError)): x.transpose(0, 2)
  with pytest.raises((IndexError, ValueError)): x.flip(2)
  with pytest.raises((IndexError, ValueError)): x.unsqueeze(3)
  with pytest.raises((IndexError, ValueError)): x.squeeze(2)
  with pytest.raises((IndexError, ValueError)): x.flatten(0, 2)
  with pytest.raises((IndexError, ValueError)): x.size(2)


@pytest.mark.parametrize("index", [3, -4, (0, 4), (0, -5), (slice(None), 4), (None, 3), (Ellipsis, 4)])
def test_index_out_of_range(device, no_kernels, index):
  with pytest.raises(IndexError) as e: t((3, 4), device)[index]
  assert re.search(r"-?\d", str(e.value)), str(e.value)


@pytest.mark.parametrize("index", [(0, 0, 0), (0, slice(None), 1), (Ellipsis, 0, 0, 0), (0, None, 0, 0)])
def test_too_many_indices(device, no_kernels, index):
  with pytest.raises(IndexError): t((3, 4), device)[index]


def test_index_zero_dim(device, no_kernels):
  with pytest.raises(IndexError): Tensor(1.0, device=device)[0]


def test_bad_index_types(device, no_kernels):
  x = t((3, 4), device)
  with pytest.raises((TypeError, IndexError)): x[1.5]
  with pytest.raises((TypeError, IndexError)): x["a"]
  with pytest.raises(IndexError): x[..., 0, ...]


def test_unknown_device(no_kernels):
  with pytest.raises(ValueError, match="FOO"): Tensor([1.0, 2.0], device="FOO")
  with pytest.raises(ValueError, match="FOO"): Tensor.zeros(2, device="FOO")
  with pytest.raises(ValueError, match="FOO"): Tensor([1.0]).to("FOO")
  with pytest.raises(ValueError, match="FOO"): Device["FOO"]


@pytest.mark.skipif(len(DEVICES) < 2, reason="needs two devices")
def test_ops_across_devices(no_kernels):
  d0, d1 = DEVICES[:2]
  a, b = t((3,), d0), t((3,), d1)
  for op in (lambda: a + b, lambda: a * b, lambda: b - a, lambda: a < b, lambda: a.maximum(b),
             lambda: Tensor(np.array([True, False, True]), device=d0).where(a, b), lambda: a.assign(b)):
    with pytest.raises(RuntimeError) as e: op()
    assert d0 in str(e.value) and d1 in str(e.value), str(e.value)


@pytest.mark.skipif(len(DEVICES) < 2, reason="needs two devices")
def test_copy_across_devices_works():
  d0, d1 = DEVICES[:2]
  a = t((2, 3), d0)
  b = (a * 2).to(d1)
  assert b.device == d1
  np.testing.assert_array_equal((b + t((2, 3), d1)).numpy(), np.arange(6, dtype=np.float32).reshape(2, 3) * 3)


@pytest.mark.parametrize("shape", [(2,), (2, 3), (0,), (1, 0)])
def test_item_needs_one_element(device, no_kernels, shape):
  with pytest.raises((ValueError, RuntimeError)) as e: Tensor.zeros(*shape, device=device).item()
  assert str(shape) in str(e.value), str(e.value)


def test_item_of_one_element_ok(device):
  assert Tensor([[5.0]], device=device).item() == 5.0


def test_bool_sub_neg_raise_type_error(device, no_kernels):
  a = Tensor(np.array([True, False]), device=device)
  b = Tensor(np.array([False, False]), device=device)
  with pytest.raises(TypeError): a - b
  with pytest.raises(TypeError): a - True
  with pytest.raises(TypeError): True - a
  with pytest.raises(TypeError): -a
  with pytest.raises(TypeError): a.neg()
  with pytest.raises(TypeError): a.sub(b)


def test_bool_floordiv_mod_raise(device, no_kernels):
  a = Tensor(np.array([True, False]), device=device)
  with pytest.raises(TypeError): a // a
  with pytest.raises(TypeError): a % a


def test_bitwise_on_float_raises(device, no_kernels):
  x = t((3,), device)
  with pytest.raises(TypeError): x & x
  with pytest.raises(TypeError): x | 1
  with pytest.raises(TypeError): x << 1


def test_bad_operand_type(device, no_kernels):
  x = t((3,), device)
  with pytest.raises(TypeError): x + "a"
  with pytest.raises(TypeError): x * None
  with pytest.raises(TypeError): x + [1, 2, 3]


def test_expand_errors(device, no_kernels):
  x = t((3, 1), device)
  with pytest.raises(ValueError): x.expand(4, 2)
  with pytest.raises(ValueError): x.expand(3)
  with pytest.raises(ValueError): t((3, 2), device).expand(3, 4)


def test_pad_shrink_errors(device, no_kernels):
  x = t((3, 4), device)
  with pytest.raises(ValueError): x.pad((1, 2, 3))               # flat padding must come in pairs
  with pytest.raises(ValueError): x.pad((1, 1, 1, 1, 1, 1))      # more pairs than axes
  with pytest.raises(ValueError): x.pad(((1, 1),))               # too few per-axis pairs
  with pytest.raises(ValueError): x.shrink(((0, 4), (0, 4)))     # past the end
  with pytest.raises(ValueError): x.shrink(((2, 1), (0, 4)))     # start after end
  with pytest.raises(ValueError): x.shrink(((-1, 2), (0, 4)))    # negative start
  with pytest.raises(ValueError): x.shrink(((0, 1),))            # too few pairs


def test_matmul_shape_error(device, no_kernels):
  with pytest.raises(ValueError) as e: t((2, 3), device) @ t((4, 5), device)
  assert "(2, 3)" in str(e.value) and "(4, 5)" in str(e.value), str(e.value)


def test_creation_errors(device, no_kernels):
  with pytest.raises(ValueError): Tensor([[1, 2], [3]], device=device)
  with pytest.raises(TypeError): Tensor([1, 2], dtype="float13", device=device)
  with pytest.raises(ValueError): Tensor.arange(0, 5, 0, device=device)
  with pytest.raises((TypeError, ValueError)): Tensor(np.array(["a", "b"]), device=device)
  with pytest.raises(ValueError): Tensor([1.0, 2.0, 3.0], device=device).bitcast(dtypes.int64)  # (3 floats: 1.5 int64s)


def test_empty_max_min_raise(device, no_kernels):
  x = Tensor.zeros(0, 3, device=device)
  with pytest.raises(ValueError): x.max()
  with pytest.raises(ValueError): x.min(0)
  with pytest.raises(ValueError): Tensor([], device=device).max(keepdim=True)


def test_bool_of_multi_element(device, no_kernels):
  with pytest.raises((RuntimeError, ValueError)): bool(t((2,), device))


def test_assign_shape_mismatch(device, no_kernels):
  x = t((3,), device)
  with pytest.raises(ValueError) as e: x.assign(t((4,), device))
  assert "(3,)" in str(e.value) and "(4,)" in str(e.value), str(e.value)


def test_no_kernel_after_caught_error(device):
  """An error leaves nothing behind: the next realize runs only what it needs."""
  a, b = t((3,), device), t((4,), device)
  with pytest.raises(ValueError): a + b
  GlobalCounters.reset()
  np.testing.assert_array_equal((a + 1).numpy(), np.arange(3, dtype=np.float32) + 1)
  assert GlobalCounters.kernel_count == 1
