"""Every op family of Tensor in one base class, so teeny/tensor.py inherits one name (see teeny/ops/__init__.py for
what each family holds and the rule they share: none imports tensor.py)."""
from teeny.ops.creation import CreationOps
from teeny.ops.elementwise import ElementwiseOps
from teeny.ops.activation import ActivationOps
from teeny.ops.transcendental import TranscendentalOps
from teeny.ops.reduce import ReduceOps
from teeny.ops.indexing import IndexingOps
from teeny.ops.join import JoinOps
from teeny.ops.random import RandomOps
from teeny.ops.nn import NNOps
from teeny.ops.conv import ConvOps
from teeny.ops.pooling import PoolingOps
from teeny.ops.writes import WriteOps
from teeny.ops.pytorch import PyTorchOps
from teeny.ops.pytorch_math import PyTorchMathOps
from teeny.ops.pytorch_shape import PyTorchShapeOps
from teeny.ops.pytorch_linalg import PyTorchLinalgOps
from teeny.ops.pytorch_reduce import PyTorchReduceOps
from teeny.ops.pytorch_extra import PyTorchExtraOps
from teeny.ops.sorting import SortOps
from teeny.ops.einsum import EinsumOps
from teeny.ops.linalg import LinalgOps
from teeny.ops.sharding import ShardingOps


class TensorOps(CreationOps, ElementwiseOps, ActivationOps, TranscendentalOps, ReduceOps, IndexingOps, JoinOps, RandomOps, NNOps, ConvOps, PoolingOps,
                WriteOps, PyTorchOps, PyTorchMathOps, PyTorchShapeOps, PyTorchLinalgOps, PyTorchReduceOps, PyTorchExtraOps, SortOps,
                EinsumOps, LinalgOps, ShardingOps):
  """The ops Tensor inherits: creation, elementwise math, activations, transcendental functions, reductions, indexing, joins,
  random numbers, nn functions, convolutions, pooling, in-place writes, PyTorch's spellings (and its elementwise, shape, linear
  algebra, reduction and remaining methods), sorting, einsum and rearrange, qr and svd, and sharding over devices."""
