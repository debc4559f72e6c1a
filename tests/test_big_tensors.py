"""Tensors of 2^31 elements and more: loops, launches and indices past INT32_MAX are 64-bit on every device, so
fill, sum and copy give every element, or the device says clearly, before any kernel runs, that it can't hold
such a buffer. Reduces of a constant fold to a constant at any size; past what 64-bit indices count, errors.

The tests that move gigabytes are marked `big`: `python -m pytest -m "not big"` leaves them out."""
import time
import numpy as np
import pytest
from teeny import Tensor, Device, GlobalCounters, dtypes
from teeny.codegen import get_program
from teeny.schedule import create_schedule

N = 2**31 + 7  # uint8 elements: just past what int32 indices reach
PERIOD = 251   # a prime: an index that wrapped at 2^31 or 2^32 reads a different value of the pattern


def pattern(device: str) -> Tensor:
  """The lazy uint8 tensor p[i] = i % PERIOD of N elements, computed from a 251-element buffer (no big buffer)."""
  rows = -(-N // PERIOD)
  period = Tensor(np.arange(PERIOD, dtype=np.uint8), device=device)
  return period.reshape(1, PERIOD).expand(rows, PERIOD).reshape(-1)[:N]


def pattern_sum(n: int) -> int:
  whole, rest = divmod(n, PERIOD)
  return whole * (PERIOD * (PERIOD - 1) // 2) + rest * (rest - 1) // 2


def check_pattern(read, n: int, start: int):
  """read(lo, hi, step) == (start + i) % PERIOD for i in range(lo, hi, step): all of the first and last 100,000
  elements of n, and every 4097th."""
  for lo, hi, step in ((0, 100_000, 1), (n - 100_000, n, 1), (0, n, 4097)):
    want = (np.arange(lo, hi, step, dtype=np.int64) + start) % PERIOD
    np.testing.assert_array_equal(read(lo, hi, step), want.astype(np.uint8))


def holds_one_buffer(device: str, nbytes: int) -> bool:
  """Whether the device can hold one buffer of nbytes (OpenCL devices have a limit per buffer)."""
  cl_device = getattr(Device[device], "cl_device", None)
  return cl_device is None or cl_device.max_mem_alloc_size >= nbytes


def timed(what: str, fn):
  start = time.perf_counter()
  out = fn()
  print(f"{what}: {time.perf_counter() - start:.2f} s")
  return out


@pytest.mark.big
def test_fill_past_2_31_elements_writes_every_one(device):
  """A uint8 tensor of 2^31 + 7 elements filled with 3 holds 3 everywhere (its max and min, reduces that read
  every element; a 32-bit launch or loop bound writes nothing or only part of it), or the device refuses the
  buffer with a MemoryError naming its size before any kernel runs."""
  GlobalCounters.reset()
  fill = Tensor.full((N,), 3, dtype=dtypes.uint8, device=device).contiguous()
  if not holds_one_buffer(device, N):
    with pytest.raises(MemoryError, match=f"can't allocate {N} bytes"): fill.realize()
    assert GlobalCounters.kernel_count == 0
    return
  fill = timed("fill", fill.realize)
  assert timed("max", lambda: fill.max().item()) == 3 and timed("min", lambda: fill.min().item()) == 3


@pytest.mark.big
def test_sum_past_2_31_elements(device):
  """The sum of the 2^31 + 7 element pattern is exact on every device, computed from a small buffer (a loop
  past INT32_MAX without a big buffer: it runs on devices that can't hold one)."""
  assert timed("lazy sum", lambda: pattern(device).sum().item()) == pattern_sum(N)


@pytest.mark.big
def test_argmax_past_2_31_elements(device):
  """argmax and max(dim=0) of the 2^31 + 7 element pattern with a larger element past index 2^31: int64 indices
  (an int32 arange raised OverflowError), counted without a host arange of 2^31 int64s (16 GiB)."""
  if not holds_one_buffer(device, N): return
  x = pattern(device).contiguous().realize()
  x[N - 3] = 255
  assert timed("argmax", lambda: x.argmax().item()) == N - 3
  found = x.max(dim=0)
  assert found.values.item() == 255 and found.indices.item() == N - 3 and found.indices.dtype == dtypes.int64


def test_nonzero_past_2_31_elements_counts_in_int64(device):
  """nonzero and masked_select of a mask of more than 2^31 - 1 elements count positions in int64 (an int32 count
  would wrap past index 2^31); lazy with size=, so nothing here is allocated."""
  mask = Tensor.zeros(N, dtype=dtypes.bool, device=device)
  assert mask.nonzero(size=1).dtype == dtypes.int64 and mask.nonzero(size=1).shape == (1, 1)
  assert Tensor.zeros(7, dtype=dtypes.bool, device=device).nonzero(size=1).dtype == dtypes.int32


@pytest.mark.big
def test_copy_past_2_31_elements(device):
  """The pattern realized, summed, read back whole (.numpy()) and copied by a kernel from offset 7 on
  (.contiguous(): reads past index 2^31), element for element; or a MemoryError before any kernel runs. (The
  copy is checked in pieces on the device: a first read of 2 GiB of fresh host memory alone takes 10 s on the
  VM we test on.)"""
  x = pattern(device)
  GlobalCounters.reset()
  if not holds_one_buffer(device, N):
    with pytest.raises(MemoryError, match=f"can't allocate {N} bytes"): x.realize()
    assert GlobalCounters.kernel_count == 0
    return
  x = timed("realize", x.realize)
  assert timed("sum", lambda: x.sum().item()) == pattern_sum(N)
  whole = timed(".numpy()", x.numpy)
  check_pattern(lambda lo, hi, step: whole[lo:hi:step], N, 0)
  whole = None  # frees the 2 GiB copy (not `del`: the lambda above still names it)
  tail = timed(".contiguous()", x[7:].contiguous().realize)
  x = None
  check_pattern(lambda lo, hi, step: tail[lo:hi:step].numpy(), N - 7, 7)


def test_kernels_past_2_31_elements_use_64_bit_ids_and_bounds():
  """Rendered only (no memory needed): an OpenCL kernel of 2^31 + 7 work-items takes its global id as a long
  (a 32-bit int wraps negative and writes out of bounds), an LLVM kernel gets its loop slice as i64; small kernels
  keep 32-bit index math."""
  for device in Device.available():
    renderer = Device[device].renderer
    big = create_schedule([(Tensor.empty(N, dtype=dtypes.uint8, device=device) + 1).uop], [device])[0][0]
    small = create_schedule([(Tensor.empty(1000, dtype=dtypes.uint8, device=device) + 1).uop], [device])[0][0]
    big_src, small_src = get_program(big.ast, renderer).src, get_program(small.ast, renderer).src
    if device == "CL":
      assert "long gidx0 = get_global_id(0)" in big_src, big_src
      assert "int gidx0 = get_global_id(0)" in small_src, small_src
    if device == "LLVM":
      assert "i64 %core_start, i64 %core_end" in big_src and "i64 %core_start, i64 %core_end" in small_src
      assert "icmp slt i64" in big_src and "icmp slt i64" not in small_src


def test_reduce_of_a_constant_folds_at_any_size(device):
  """Tensor.ones(2**40, 2**40).sum() is 2^80 (exact in float32) without a loop of 2^80 steps; max, min, prod
  and mean fold too, and ints wrap like the device's ints. Each result is one tiny kernel at most."""
  ones = Tensor.ones(2**40, 2**40, device=device)
  GlobalCounters.reset()
  assert ones.sum().item() == 2.0**80 == np.float32(1.2089258e24)
  assert ones.mean().item() == 1.0 and ones.max().item() == 1.0 and ones.min().item() == 1.0
  assert GlobalCounters.kernel_count <= 4
  np.testing.assert_array_equal(Tensor.full((3, 4), 2.5, device=device).T.sum(1).numpy(), np.full(4, 7.5, np.float32))
  assert Tensor.full((3, 5), -2, device=device).prod().item() == (-2) ** 15
  assert Tensor.full((70,), 2.0, device=device).prod().item() == 2.0**70
  assert Tensor.full((300,), 10.0, device=device).prod().item() == np.inf  # past float32: inf, like numpy
  assert Tensor.full((2**62,), 3, dtype=dtypes.int32, device=device).sum().item() == -(2**62)  # 3 * 2^62 wraps in int64
  assert (-Tensor.full((5, 7), 1.5, device=device) * 2).exp2().sum(0).tolist() == [5 * 2.0**-3] * 7  # elementwise too
  counts = Tensor.ones(2**20, 2**20, dtype=dtypes.bool, device=device).sum()
  assert counts.dtype == dtypes.int64 and counts.item() == 2**40
  half = Tensor.ones(70_000, dtype=dtypes.float16, device=device).sum()
  assert half.dtype == dtypes.float16 and half.item() == np.inf  # 70,000 is past float16's 65,504, like torch


def test_sizes_past_64_bits_raise_clear_errors(device):
  """A reduce that would need more than 2^63 - 1 indices (not of a constant), a buffer of that many elements,
  and realizing such a tensor raise ValueError naming the sizes; small pieces of it compute fine."""
  big = Tensor([1.0, 2.0], device=device).reshape(2, 1, 1).expand(2, 2**40, 2**40)
  with pytest.raises(ValueError, match="64-bit"): big.sum()
  with pytest.raises(ValueError, match="64-bit"): Tensor.empty(2**64, device=device)
  with pytest.raises(ValueError, match="64-bit"): (big * 2).numpy()
  np.testing.assert_array_equal((big[1, 5, 3:6] * 2).numpy(), np.full(3, 4.0, np.float32))


def test_arange_past_int32_is_int64(device):
  """An int arange whose values don't fit int32 is int64 (teeny's default int is int32, PyTorch's int64);
  asking for a dtype keeps it."""
  a = Tensor.arange(2**31 - 2, 2**31 + 2, device=device)
  assert a.dtype == dtypes.int64
  np.testing.assert_array_equal(a.numpy(), np.arange(2**31 - 2, 2**31 + 2, dtype=np.int64))
  assert Tensor.arange(-2**31 - 1, -2**31 + 1, device=device).dtype == dtypes.int64
  assert Tensor.arange(2**31 + 5, 3, -2**30, device=device).dtype == dtypes.int64
  assert Tensor.arange(-2**31, 2**31 - 1, 2**30, device=device).dtype == dtypes.int32
  assert Tensor.arange(10, device=device).dtype == dtypes.int32
  # a dtype asked for that can't hold every value raises (PyTorch wraps them around; tinygrad raises too), before
  # anything is made: arange(2**33) in int32 would otherwise allocate 32 GiB
  for args, dt in (((2**33,), dtypes.int32), ((129,), dtypes.int8), ((-129, 128), dtypes.int8), ((128, 0, -1), dtypes.int8), ((127, -130, -1), dtypes.int8)):
    with pytest.raises(OverflowError, match="can't hold"): Tensor.arange(*args, dtype=dt, device=device)
  np.testing.assert_array_equal(Tensor.arange(127, -129, -1, dtype=dtypes.int8, device=device).numpy(), np.arange(127, -129, -1).astype(np.int8))
  assert Tensor.arange(5, dtype=dtypes.int64, device=device).dtype == dtypes.int64
  torch = pytest.importorskip("torch")
  np.testing.assert_array_equal(a.numpy(), torch.arange(2**31 - 2, 2**31 + 2).numpy())
