"""Runtime: the device interface (device.py) and the backends (ops_cl.py: OpenCL via pyopencl, ops_llvm.py: LLVM via
llvmlite, with llvm_setup.py, the CPU worker pool cpu_pool.py + cpu_pool.ll, and the ELF reader elf.py)."""
