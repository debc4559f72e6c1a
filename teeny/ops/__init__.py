"""Tensor's ops, one mixin class per family: elementwise math (elementwise.py), reductions and matmul (reduce.py),
indexing (indexing.py), joining and splitting (join.py), random numbers (random.py), neural network functions
(nn.py), in-place writes (writes.py), PyTorch's spellings of what tinygrad names otherwise (pytorch.py), and
sorting and selecting (sorting.py). teeny/tensor.py's Tensor inherits them all (through mixins.py's TensorOps)
and holds the rest: its state, creation, autograd entry points,
realizing and reading, casts, movement, and the binary and comparison ops.

The rule: nothing in this package imports teeny/tensor.py. A mixin builds on `self`, `type(self)` and the private
protocol Tensor provides (_new, _alu, _view, _own, _binop_operands, _constant, _as_leaf, _check_inplace, _float),
so the import graph stays one-way. args.py and constants.py hold the helpers they share. The graph shaping done
for speed (reduce splits, relayout copies) is not here but in the scheduler (teeny/schedule/shaping.py)."""
