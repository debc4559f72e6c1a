"""Laziness: building graphs runs nothing; data is computed only when asked for."""
import time
import numpy as np
from teeny import Tensor, GlobalCounters, Device, dtypes


def test_building_a_10000_op_graph_runs_no_kernel_and_is_fast(device):
  GlobalCounters.reset()
  x = Tensor(np.arange(4, dtype=np.int32), device=device)
  # this process's CPU time, not the wall clock: on a shared 2-core CI machine another process may hold the core
  # (one run took 1.33 s of wall clock where 0.1 s is usual). A quadratic build would take minutes either way.
  start = time.process_time()
  y = x
  for _ in range(10000): y = y + 1
  built = time.process_time() - start
  assert GlobalCounters.kernel_count == 0
  assert built < 2.0, f"building took {built:.2f}s of CPU time"
  # a chain deeper than Tuning.max_fused_depth is cut into kernels of that depth (LLVM compiles a deeper one in
  # quadratic time); the symbolic rules fold each one's adds into one, and all but the last are one program
  np.testing.assert_equal(y.numpy(), np.arange(4) + 10000)
  assert GlobalCounters.kernel_count == -(-10000 // Device[device].renderer.tuning.max_fused_depth)


def test_deep_float_chain_realizes(device):
  x = Tensor(np.ones(3, dtype=np.float32), device=device)
  y = x
  for _ in range(300): y = y * 1.01
  np.testing.assert_allclose(y.numpy(), np.ones(3) * 1.01 ** 300, rtol=1e-4)


def test_methods_do_not_compute(device):
  GlobalCounters.reset()
  x = Tensor(np.arange(12, dtype=np.float32).reshape(3, 4), device=device)
  y = (x.permute(1, 0)[1:, ::2].exp() + x.sum()).max(0) * Tensor.ones(2, device=device)
  assert y.shape == (2,)
  assert GlobalCounters.kernel_count == 0
  y.realize()
  assert GlobalCounters.kernel_count > 0


def test_stacking_many_tensors_needs_no_recursion(device):
  parts = [Tensor([float(i)], device=device) for i in range(2000)]
  total = parts[0]
  for p in parts[1:]: total = total + p
  assert total.item() == sum(range(2000))


def test_zero_size_tensors_run_no_kernel(device):
  GlobalCounters.reset()
  e = Tensor.zeros(0, 3, device=device)
  assert (e + 1).numpy().shape == (0, 3)
  assert GlobalCounters.kernel_count == 0
  assert (e.sum(0)).numpy().tolist() == [0.0, 0.0, 0.0]
  assert Tensor.zeros(0, dtype=dtypes.int32, device=device).sum().item() == 0
