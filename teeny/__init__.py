"""teeny: a lazy tensor compiler. `from teeny import Tensor` and write PyTorch-like code; kernels are fused,
compiled to OpenCL C or LLVM IR, and run when you ask for data."""
from teeny.dtype import dtypes, DType
from teeny.tensor import Tensor
from teeny.runtime.device import Device, Buffer
from teeny.helpers import GlobalCounters
from teeny.uop import UOp, Ops
from teeny.engine.jit import TinyJit

__all__ = ["Tensor", "dtypes", "DType", "Device", "Buffer", "GlobalCounters", "UOp", "Ops", "TinyJit"]
__version__ = "0.1.0"
