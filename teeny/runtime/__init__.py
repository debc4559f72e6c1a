"""Runtime: the device interface (device.py) and the backends (ops_cl.py: OpenCL via pyopencl, ops_llvm.py: LLVM via llvmlite)."""
