"""The check test_pytorch_methods.py and test_pytorch_reductions.py make against PyTorch itself where it is
installed: the same call on teeny's tensors and on torch's gives the same values, dtype and gradients. CI installs
no PyTorch, so each test also checks its values against numpy (or values worked out by hand); this adds to them."""
import numpy as np
from teeny import Tensor

try:
  import torch
except ImportError:  # (the numpy checks of each test still run)
  torch = None


def _values(t) -> np.ndarray:
  return t.numpy() if isinstance(t, Tensor) else t.detach().numpy(force=True)


def _assert_same(got, want, rtol: float, atol: float):
  """Same shape, dtype (teeny's int32 standing for torch's int64, teeny's default int) and values (NaN equal to
  NaN)."""
  ours, theirs = _values(got), _values(want)
  assert ours.shape == theirs.shape, f"shape {ours.shape}, PyTorch's {theirs.shape}"
  assert ours.dtype == theirs.dtype or (ours.dtype == np.int32 and theirs.dtype == np.int64), f"dtype {ours.dtype}, PyTorch's {theirs.dtype}"
  np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol)


def assert_like_torch(device, call, *arrays, rtol: float = 1e-6, atol: float = 0.0, grad: bool = True):
  """call(make, *tensors) on teeny tensors of `arrays` and on torch tensors of them: the same result, and (with
  grad, for the float arrays) the same gradients of a weighted sum of it, which sees each element's own gradient.
  make(array) builds a constant tensor of the same library (an index, a weight). No-op without PyTorch."""
  if torch is None: return
  def is_float(a): return np.asarray(a).dtype.kind == "f"
  ours = [Tensor(a, device=device, requires_grad=True if grad and is_float(a) else None) for a in arrays]
  theirs = [torch.tensor(a, requires_grad=grad and is_float(a)) for a in arrays]
  got = call(lambda a: Tensor(np.asarray(a), device=device), *ours)
  want = call(lambda a: torch.tensor(np.asarray(a)), *theirs)
  _assert_same(got, want, rtol, atol)
  if not (grad and want.requires_grad): return
  weights = np.arange(1, want.numel() + 1).reshape(tuple(want.shape)).astype(_values(want).dtype)
  (got * Tensor(weights, device=device)).sum().backward()
  (want * torch.tensor(weights)).sum().backward()
  for mine, torchs in zip(ours, theirs):
    if mine.grad is None or torchs.grad is None:  # (one side has none: the other's must be 0)
      other = torchs.grad if mine.grad is None else mine.grad
      assert other is None or not np.any(_values(other)), "a gradient where PyTorch's is none, or the other way"
    else: _assert_same(mine.grad, torchs.grad, rtol, atol)
