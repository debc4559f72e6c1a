"""teeny: a lazy tensor compiler. `from teeny import Tensor` and write PyTorch-like code; kernels are fused,
compiled to OpenCL C or LLVM IR, and run when you ask for data."""
from teeny.dtype import dtypes, DType
from teeny.tensor import Tensor
from teeny.runtime.device import Device, Buffer
from teeny.helpers import GlobalCounters, Context, getenv
from teeny.uop import UOp, Ops
from teeny.engine.jit import TinyJit, JitError
from teeny.ops.args import ArgumentError, SizeError, IndexDtypeError
from teeny.tracing import trace
from teeny.variable import Variable

# torch.no_grad() / torch.inference_mode() habits: `with teeny.no_grad():` is `with Tensor.no_grad():`
no_grad = Tensor.no_grad
inference_mode = Tensor.inference_mode

__all__ = ["Tensor", "no_grad", "inference_mode", "Context", "dtypes", "DType", "Device", "Buffer", "GlobalCounters", "getenv", "UOp", "Ops", "TinyJit", "JitError", "ArgumentError", "SizeError", "IndexDtypeError", "trace", "Variable"]
__version__ = "0.1.0"
