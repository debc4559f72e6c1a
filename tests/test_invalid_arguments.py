"""Invalid arguments that used to give a silently wrong result, or an error from Python's internals (an
invalid-input sweep against torch 2.13): each now raises the exception PyTorch raises, at the call, before any
kernel runs, with a message naming what was wrong. Rows: (call, exception, a fragment of the message)."""
import numpy as np
import pytest
from teeny import Tensor, GlobalCounters, dtypes


def img(): return Tensor.zeros(2, 3, 4, 4)
def plane(): return Tensor(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
def vec(): return Tensor([1.0, 2.0, 3.0])
def square(): return Tensor(np.arange(9, dtype=np.float32).reshape(3, 3))


REFUSED = {
  # a 0-d tensor has no rows: iterating it was silently empty, so interpolate(size=Tensor(8)) did nothing
  "iterate 0-d": (lambda: list(Tensor(3.0)), TypeError, "iteration over a 0-d tensor"),
  # interpolate's sizes are one per spatial axis: a wrong count resized the channels, or one axis only
  "interpolate 3 sizes of 2 spatial": (lambda: img().interpolate(size=(5, 8, 8)), ValueError, "one value per spatial axis"),
  "interpolate 1 size of 2 spatial": (lambda: img().interpolate(size=(8,)), ValueError, "one value per spatial axis"),
  "interpolate 3 scales": (lambda: img().interpolate(scale_factor=(2.0, 2.0, 2.0)), ValueError, "one value per spatial axis"),
  "interpolate size 0": (lambda: img().interpolate(size=0), RuntimeError, "must be > 0"),
  "interpolate size -2": (lambda: img().interpolate(size=-2), RuntimeError, "must be > 0"),
  "interpolate size 2.5": (lambda: img().interpolate(size=2.5), TypeError, "size must be an int"),
  "interpolate size and recompute": (lambda: img().interpolate(size=8, recompute_scale_factor=True), ValueError, "recompute_scale_factor"),
  # pooling padding over half the window: windows of padding only (-inf, NaN)
  "max_pool2d padding > k/2": (lambda: plane().max_pool2d(2, padding=2), RuntimeError, "more than half the window"),
  "avg_pool2d padding > k/2": (lambda: plane().avg_pool2d(2, padding=2, count_include_pad=False), RuntimeError, "more than half"),
  "max_pool1d padding > k/2": (lambda: Tensor.zeros(1, 1, 4).max_pool1d(2, padding=2), RuntimeError, "more than half"),
  "avg_pool3d padding > k/2": (lambda: Tensor.zeros(1, 1, 4, 4, 4).avg_pool3d(2, padding=2), RuntimeError, "more than half"),
  "max_pool2d float kernel": (lambda: plane().max_pool2d(1.5), TypeError, "kernel_size must be an int"),
  "max_pool2d float padding": (lambda: plane().max_pool2d(2, padding=(1.5, 1)), TypeError, "padding must be an int"),
  "conv2d float padding": (lambda: plane().conv2d(Tensor.ones(1, 1, 3, 3), padding=(1.5, 1.5)), TypeError, "padding must be an int"),
  "conv2d float stride": (lambda: plane().conv2d(Tensor.ones(1, 1, 3, 3), stride=1.5), TypeError, "stride must be an int"),
  # flatten's start after its end inserted an axis of 1
  "flatten start > end": (lambda: Tensor.zeros(2, 3, 4).flatten(2, 1), RuntimeError, "start_dim 2 comes after end_dim 1"),
  "flatten -1, 0": (lambda: Tensor.zeros(2, 3, 4).flatten(-1, 0), RuntimeError, "comes after"),
  # repeat_interleave(-1) returned the input
  "repeat_interleave -1": (lambda: vec().repeat_interleave(-1), RuntimeError, "must be >= 0"),
  "repeat_interleave 1.5": (lambda: vec().repeat_interleave(1.5), TypeError, "repeats must be an int"),
  # output_padding >= stride and dilation grew the output
  "conv_transpose2d output_padding": (lambda: Tensor.ones(1, 1, 2, 2).conv_transpose2d(Tensor.ones(1, 1, 3, 3), stride=1, output_padding=1),
                                      RuntimeError, "output_padding (1, 1) must be smaller than the stride"),
  "conv_transpose2d bias size": (lambda: Tensor.ones(1, 3, 5, 5).conv_transpose2d(Tensor.ones(3, 2, 3, 3), Tensor.ones(3)),
                                 RuntimeError, "bias of shape (3,), expected (2,)"),
  # max_unpool2d's output_size must be one the pooling could come from
  "max_unpool2d output_size": (lambda: Tensor([[[[5.0, 7.0], [13.0, 15.0]]]]).max_unpool2d(Tensor([[[[5, 7], [13, 15]]]]), 2, output_size=(6, 6)),
                               ValueError, "between 2 and 6"),
  "max_unpool2d output_size length": (lambda: Tensor.zeros(1, 1, 2, 2).max_unpool2d(Tensor.zeros(1, 1, 2, 2, dtype=dtypes.int32), 2, output_size=(2, 5, 5)),
                                      ValueError, "must have 2 or 4 sizes"),
  # non-integer arguments were truncated or rounded
  "rot90 1.5": (lambda: square().rot90(1.5), TypeError, "rot90's k must be an int"),
  "chunk 1.5": (lambda: vec().chunk(1.5), TypeError, "chunk's chunks must be an int"),
  "chunk 2.0": (lambda: vec().chunk(2.0), TypeError, "chunk's chunks must be an int"),
  "narrow start 1.5": (lambda: vec().narrow(0, 1.5, 1), TypeError, "narrow's start must be an int"),
  "triu 0.5": (lambda: square().triu(0.5), TypeError, "triu's diagonal must be an int"),
  "tril 1.0": (lambda: square().tril(1.0), TypeError, "tril's diagonal must be an int"),
  "one_hot 2.5": (lambda: Tensor([0, 1]).one_hot(2.5), TypeError, "num_classes must be an int"),
  "bincount minlength 2.5": (lambda: Tensor([0, 1]).bincount(minlength=2.5), TypeError, "minlength must be an int"),
  "topk True": (lambda: vec().topk(True), TypeError, "topk's k must be an int, got True"),
  "kthvalue 1.0": (lambda: vec().kthvalue(1.0), TypeError, "kthvalue's k must be an int"),
  # the shortcuts for 0-d and empty tensors skipped the dim check
  "sort 0-d dim 1": (lambda: Tensor(3.0).sort(dim=1), IndexError, "axis 1 is out of range"),
  "argsort 0-d dim 2": (lambda: Tensor(3.0).argsort(dim=2), IndexError, "out of range"),
  "median 0-d dim 5": (lambda: Tensor(3.0).median(dim=5), IndexError, "axis 5 is out of range"),
  "nanmedian 0-d dim 2": (lambda: Tensor(3.0).nanmedian(dim=2), IndexError, "out of range"),
  "kthvalue 0-d dim 2": (lambda: Tensor(3.0).kthvalue(1, dim=2), IndexError, "out of range"),
  "flatten 0-d dim 1": (lambda: Tensor(3.0).flatten(1), IndexError, "axis 1 is out of range"),
  "softmax empty dim 7": (lambda: Tensor.zeros(0, 3).softmax(7), IndexError, "axis 7 is out of range"),
  "log_softmax empty dim 7": (lambda: Tensor.zeros(0, 3).log_softmax(7), IndexError, "axis 7 is out of range"),
  "squeeze (0, 0)": (lambda: Tensor.zeros(1, 3).squeeze((0, 0)), RuntimeError, "names an axis twice"),
  # non-integer sizes made shapes of floats that failed only at realize
  "narrow length 1.5": (lambda: Tensor.ones(4).narrow(0, 1, 1.5), TypeError, "narrow's length must be an int"),
  "split [1.5, 2.5]": (lambda: Tensor.ones(4).split([1.5, 2.5]), TypeError, "split's sizes must be an int"),
  "diag 1.5": (lambda: Tensor.ones(3).diag(1.5), TypeError, "diag's diagonal must be an int"),
  "diagflat 1.5": (lambda: Tensor.ones(3).diagflat(1.5), TypeError, "must be an int"),
  "pad pair 1.5": (lambda: Tensor.ones(4).pad(((1.5, 0),)), TypeError, "padding must be an int"),
  "pad_to 5.5": (lambda: Tensor.ones(4).pad_to(5.5), TypeError, "pad_to's sizes must be an int"),
  "shrink 1.5": (lambda: Tensor.ones(4).shrink(((0, 1.5),)), TypeError, "shrink's end must be an int"),
  "shrink_to 2.5": (lambda: Tensor.ones(4).shrink_to(2.5), TypeError, "shrink_to's sizes must be an int"),
  "shrink too many pairs": (lambda: Tensor.ones(4).shrink(((0, 1), (0, 1))), RuntimeError, "needs one (start, end) per axis"),
  "diff n 1.0": (lambda: Tensor.ones(4).diff(1.0), TypeError, "diff's n must be an int"),
  "unfold size 2.0": (lambda: Tensor.ones(3).unfold(0, 2.0, 1), TypeError, "unfold's size must be an int"),
  # Python's internals leaked out as the error
  "sum dim 1.5": (lambda: Tensor.ones(2, 3).sum(dim=1.5), TypeError, "axis must be an int, got 1.5"),
  "mean dim 1.5": (lambda: Tensor.ones(2, 3).mean(dim=1.5), TypeError, "axis must be an int"),
  "amax dim 1.5": (lambda: Tensor.ones(2, 3).amax(dim=1.5), TypeError, "axis must be an int"),
  "softmax dim 1.5": (lambda: Tensor.ones(2, 3).softmax(1.5), TypeError, "axis must be an int"),
  "flat pad 1.5": (lambda: Tensor.ones(4).pad((1.5, 1)), TypeError, "padding must be an int"),
  "split 2.0": (lambda: Tensor.ones(4).split(2.0), TypeError, "split's size must be an int"),
  "tensor_split 2.0": (lambda: Tensor.ones(4).tensor_split(2.0), TypeError, "tensor_split's sections must be an int"),
  "roll 1.0": (lambda: Tensor.ones(4).roll(1.0), TypeError, "roll's shifts must be an int"),
  "diagonal 1.0": (lambda: Tensor.ones(2, 2).diagonal(1.0), TypeError, "diagonal's offset must be an int"),
  "cat of 0-d": (lambda: Tensor(1.0).cat(Tensor(2.0)), RuntimeError, "cat of 0-d tensors"),
  "chunk of 0-d": (lambda: Tensor(1.0).chunk(2), RuntimeError, "chunk of a 0-d tensor"),
  "split of 0-d": (lambda: Tensor(1.0).split(1), RuntimeError, "split of a 0-d tensor"),
  "stack with a list": (lambda: Tensor.stack([Tensor.ones(2), [1, 2]]), TypeError, "stack takes tensors, got list"),
  # linspace with a float steps gave points outside [start, stop]
  "linspace steps 1.5": (lambda: Tensor.linspace(0, 1, 1.5), TypeError, "linspace's steps must be an int"),
  "linspace steps True": (lambda: Tensor.linspace(0, 1, True), TypeError, "linspace's steps must be an int"),
  # einsum: a repeated subscript took the shorter diagonal; digits were read as subscripts
  "einsum ii->i of 2x3": (lambda: Tensor.einsum("ii->i", Tensor.ones(2, 3)), RuntimeError, "sizes don't match, 2 != 3"),
  "einsum ii of 2x3": (lambda: Tensor.einsum("ii", Tensor.ones(2, 3)), RuntimeError, "sizes don't match"),
  "einsum i1->i": (lambda: Tensor.einsum("i1->i", Tensor.ones(2, 3)), RuntimeError, "invalid subscript '1'"),
  "einsum ij->ii": (lambda: Tensor.einsum("ij->ii", Tensor.ones(2, 3)), RuntimeError, "appears more than once"),
  # an int attention mask was added to the scores: nothing masked
  "sdpa int mask": (lambda: Tensor.ones(1, 1, 3, 4).scaled_dot_product_attention(Tensor.ones(1, 1, 3, 4), Tensor.ones(1, 1, 3, 4),
                    attn_mask=Tensor.ones(3, 3, dtype=dtypes.int32)), RuntimeError, "attn_mask must be bool"),
  # binary_crossentropy broadcast a target of another shape
  "bce target shape": (lambda: Tensor.full((2, 3), 0.5).binary_crossentropy(Tensor([1.0, 0.0, 1.0])), ValueError, "target of shape (3,)"),
  "hardtanh min > max": (lambda: vec().hardtanh(2.0, 1.0), ValueError, "min_val 2.0 cannot be greater than max_val 1.0"),
  # nll_loss read float targets as class indices
  "nll_loss float target": (lambda: Tensor.full((2, 3), -1.0).nll_loss(Tensor([1.0, 0.0])), RuntimeError, "class indices"),
  "nll_loss bool target": (lambda: Tensor.full((2, 3), -1.0).nll_loss(Tensor([True, False])), RuntimeError, "can't be bool"),
  "cross_entropy bool target": (lambda: Tensor.full((2, 3), -1.0).cross_entropy(Tensor([True, False])), RuntimeError, "can't be bool"),
  "isclose rtol -1": (lambda: vec().isclose(vec(), rtol=-1.0), RuntimeError, "rtol must be greater than or equal to zero"),
  "allclose atol -1": (lambda: vec().allclose(vec(), atol=-1.0), RuntimeError, "atol must be greater than or equal to zero"),
  # more non-integer arguments
  "randint high 3.5": (lambda: Tensor.randint(0, 3.5, (2,)), TypeError, "randint's high must be an int"),
  "divisor_override 2.5": (lambda: plane().avg_pool2d(2, divisor_override=2.5), TypeError, "divisor_override must be an int"),
  "cross_entropy ignore_index 1.5": (lambda: Tensor.ones(2, 3).cross_entropy(Tensor([0, 1]), ignore_index=1.5), TypeError, "ignore_index must be an int"),
  "diag_embed 1.5": (lambda: vec().diag_embed(1.5), TypeError, "diag_embed's offset must be an int"),
  # numbers a float dtype can't hold became inf (torch.full, fill_, clamp and masked_fill raise)
  "full float16 1e6": (lambda: Tensor.full((2,), 1e6, dtype=dtypes.float16), OverflowError, "1000000.0 cannot be converted to dtypes.float16"),
  "full float16 65519": (lambda: Tensor.full((2,), 65519.0, dtype=dtypes.float16), OverflowError, "without overflow"),
  "full bfloat16 1e39": (lambda: Tensor.full((2,), 1e39, dtype=dtypes.bfloat16), OverflowError, "bfloat16 without overflow"),
  "full float32 1e39": (lambda: Tensor.full((2,), 1e39), OverflowError, "float32 without overflow"),
  "full fp8e4m3 500": (lambda: Tensor.full((2,), 500.0, dtype=dtypes.fp8e4m3), OverflowError, "without overflow"),
  "fill_ float16 1e6": (lambda: Tensor.zeros(2, dtype=dtypes.float16).fill_(1e6), OverflowError, "without overflow"),
  "clamp float16 70000": (lambda: Tensor.zeros(2, dtype=dtypes.float16).clamp(0, 70000), OverflowError, "70000 cannot be converted"),
  "masked_fill float16 1e6": (lambda: Tensor.zeros(2, dtype=dtypes.float16).masked_fill(Tensor([True, False]), 1e6), OverflowError, "overflow"),
  # Python's internals leaked out as the error
  "cross_entropy 0-d": (lambda: Tensor(1.0).cross_entropy(Tensor(0)), RuntimeError, "needs an input with a class axis"),
  "nll_loss 0-d": (lambda: Tensor(1.0).nll_loss(Tensor(0)), RuntimeError, "needs an input with a class axis"),
  "x @ 2": (lambda: vec() @ 2, TypeError, "matmul takes a Tensor, got int"),
  "matmul a list": (lambda: vec().matmul([1.0, 2.0, 3.0]), TypeError, "matmul takes a Tensor, got list"),
  "scatter a list index": (lambda: Tensor.ones(2, 2).scatter(1, [[0]], 1.0), TypeError, "scatter index must be a Tensor"),
  "clamp a string": (lambda: vec().clamp("a"), TypeError, "clamp's min must be a number or a Tensor"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_refused_at_the_call(name):
  call, error, fragment = REFUSED[name]
  GlobalCounters.reset()
  with pytest.raises(error) as info: call()
  assert fragment in str(info.value), f"{name}: {info.value}"
  assert GlobalCounters.kernel_count == 0, f"{name}: {GlobalCounters.kernel_count} kernel(s) ran before the error"


def test_interpolate_sizes_follow_pytorch():
  """A single size (or a 0-d int tensor) is every spatial axis's, as in PyTorch; it resized the last axis only."""
  assert img().interpolate(size=8).shape == (2, 3, 8, 8)
  assert img().interpolate(size=Tensor(8)).shape == (2, 3, 8, 8)
  line = Tensor(np.arange(4.0, dtype=np.float32).reshape(1, 1, 4)).interpolate(size=Tensor(8), mode="nearest")
  np.testing.assert_array_equal(line.numpy().ravel(), [0, 0, 1, 1, 2, 2, 3, 3])
  assert Tensor.zeros(4, 4).interpolate(size=(8, 8)).shape == (8, 8)  # (tinygrad's form for a tensor without batch axes)


def test_int_conv_keeps_its_dtype():
  """An int convolution is in the input's int dtype, as PyTorch's and as an int matmul (it was int64)."""
  x = Tensor(np.arange(25, dtype=np.int32).reshape(1, 1, 5, 5))
  out = x.conv2d(Tensor.ones(1, 1, 3, 3, dtype=dtypes.int32))
  assert out.dtype == dtypes.int32
  np.testing.assert_array_equal(out.numpy()[0, 0], [[54, 63, 72], [99, 108, 117], [144, 153, 162]])
  small = Tensor.full((1, 1, 3, 3), 100, dtype=dtypes.int8).conv2d(Tensor.full((1, 1, 3, 3), 100, dtype=dtypes.int8))
  assert small.dtype == dtypes.int8 and small.item() == -112  # (90000 wrapped to int8, as PyTorch's)


def test_learning_rate_is_one_number():
  """A learning rate tensor of several elements was broadcast, a rate per element; PyTorch raises ValueError."""
  from teeny.nn.optim import SGD, Adam
  p = Tensor([1.0, 2.0, 3.0], requires_grad=True)
  with pytest.raises(ValueError, match="must have 1 element"): SGD([p], lr=Tensor([0.1, 1.0, 10.0]))
  with pytest.raises(ValueError, match="must have 1 element"): Adam([p], lr=Tensor([0.1, 1.0]))
  opt = SGD([p], lr=0.1)
  with pytest.raises(ValueError, match="must have 1 element"): opt.lr = Tensor([0.1, 1.0, 10.0])
  with pytest.raises(TypeError, match="must be a number or a 1-element Tensor, got 'a'"): SGD([p], lr="a")
  assert SGD([p], lr=Tensor([0.5])).lr.numel() == 1


def test_still_accepted():
  """The valid neighbours of the refused calls still work."""
  assert plane().max_pool2d(3, padding=1).shape == (1, 1, 2, 2)
  assert Tensor(3.0).flatten(0, -1).shape == (1,)
  assert len(vec().repeat_interleave(0).numpy()) == 0
  assert [t.item() for t in vec()] == [1.0, 2.0, 3.0]
  assert Tensor.ones(1, 1, 2, 2).conv_transpose2d(Tensor.ones(1, 1, 3, 3), stride=1, dilation=2, output_padding=1).shape == (1, 1, 7, 7)
  assert vec().narrow(0, Tensor(1), 2).tolist() == [2.0, 3.0]
  assert vec().chunk(np.int64(2))[0].shape == (2,)
  assert Tensor.full((2,), 65504.0, dtype=dtypes.float16).tolist() == [65504.0, 65504.0]
  assert Tensor.full((1,), float("inf"), dtype=dtypes.float16).tolist() == [float("inf")]
  assert Tensor.full((1,), 448.0, dtype=dtypes.fp8e4m3).tolist() == [448.0]
  assert (Tensor.ones(1, dtype=dtypes.float16) * 1e6).tolist() == [float("inf")]  # (arithmetic overflows, as PyTorch's)
  assert Tensor.einsum("ii->i", Tensor.eye(3)).tolist() == [1.0, 1.0, 1.0]
  assert Tensor.linspace(0, 1, np.int64(3)).tolist() == [0.0, 0.5, 1.0]
  assert vec().clamp(np.float32(1.5)).tolist() == [1.5, 2.0, 3.0]
  assert Tensor.full((2, 3), -1.0).nll_loss(Tensor(np.array([1, 0], np.uint8))).item() == 1.0
