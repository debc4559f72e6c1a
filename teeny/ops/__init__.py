"""Tensor's ops, one mixin class per family: creation of filled, empty, range and identity tensors (creation.py),
elementwise math (elementwise.py), activations (activation.py), exp, log, trigonometry and erf (transcendental.py), reductions and matmul
(reduce.py), indexing (indexing.py), joining and splitting (join.py), random numbers (random.py), neural network
functions (nn.py), convolutions (conv.py), sliding windows and pooling (pooling.py), in-place writes (writes.py), PyTorch's spellings of
what tinygrad names otherwise (pytorch.py) and PyTorch's methods teeny lacked: elementwise (pytorch_math.py),
moving, splitting and index ops (pytorch_shape.py), products and covariance (pytorch_linalg.py), reductions and
order statistics (pytorch_reduce.py), and the rest: searchsorted, det, gcd, logspace, hstack, ...
(pytorch_extra.py); sorting and selecting (sorting.py), einsum and rearrange (einsum.py), and qr and svd
(linalg.py). teeny/tensor.py's Tensor inherits them all (through mixins.py's TensorOps) and holds the rest:
its state, autograd entry points, realizing and reading, casts, movement, and the binary and comparison ops.

The rule: nothing in this package imports teeny/tensor.py. A mixin builds on `self`, `type(self)` (or `cls`) and
the private protocol Tensor provides (_new, _alu, _view, _own, _binop_operands, _constant, _check_inplace; and,
from the mixins, creation.py's _as_leaf and elementwise.py's _float), so the import graph stays one-way. args.py and constants.py hold the helpers they share. The graph shaping done
for speed (reduce splits, relayout copies) is not here but in the scheduler (teeny/schedule/shaping.py)."""
