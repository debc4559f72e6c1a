"""The OpenCL allocator on any OpenCL device that opens, also one that cannot compile (PoCL on some CPUs): moving
memory needs no compiler, so this runs where the rest of the CL tests skip.

Since the trace's memory counter gave every allocator a `device` attribute (its teeny device name, set when the
device opens), the OpenCL allocator's own `device` (the cl.Device it asked for limits) was that string: every
allocation on CL raised AttributeError ('str' object has no attribute 'max_mem_alloc_size'). Found on a machine
with a working OpenCL driver; here CL is left out of the suite, so nothing ran it."""
import numpy as np
import pytest

ops_cl = pytest.importorskip("teeny.runtime.ops_cl")
pytestmark = pytest.mark.skipif(not ops_cl.cl_devices(), reason="no OpenCL device opens")


def test_a_cl_device_allocates_and_copies_without_compiling():
  device = ops_cl.CLDevice("CL")
  device.allocator.device = "CL"  # (what opening it through Device[...] sets)
  data = np.arange(16, dtype=np.float32)
  handle = device.allocator.alloc(data.nbytes)
  device.allocator.copyin(handle, memoryview(data).cast("B"))
  out = np.zeros_like(data)
  device.allocator.copyout(memoryview(out).cast("B"), handle)
  np.testing.assert_array_equal(out, data)
  with pytest.raises(MemoryError, match="can't allocate"): device.allocator.alloc(device.cl_device.max_mem_alloc_size + 1)
  device.allocator.free(handle, data.nbytes)
