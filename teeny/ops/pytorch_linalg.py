"""PyTorch's products and matrix statistics as a Tensor mixin: outer, mv, bmm, addmm, baddbmm, trace, kron, cross,
dist, cov and corrcoef. Each checks the shapes PyTorch asks for (bmm: two 3-d tensors of one batch, mv: a matrix
and a vector, ...) and is composed from matmul, broadcasts and sums, so its gradient is the composition's."""
from __future__ import annotations
from typing import TYPE_CHECKING
from teeny.dtype import dtypes, promote
from teeny.ops.args import ArgumentError, _broadcast_shape, _canon_axis
from teeny.ops.pytorch import DtypeError, check_tensor
from teeny.ops.pytorch_math import check_scalars_fit
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self


def _check_ndim(name: str, what: str, t, ndim: int):
  check_tensor(t, f"{name}'s {what}")
  if t.ndim != ndim: raise ArgumentError(f"{name} needs a {ndim}-d {what}, got shape {t.shape}")


class PyTorchLinalgOps:
  """Tensor's PyTorch products, cross products, distances, covariance and correlation."""
  def outer(self, vec2) -> Self:
    """The outer product of two vectors, out[i, j] = self[i] * vec2[j], like torch.outer (promoted like *)."""
    _check_ndim("outer", "self", self, 1)
    _check_ndim("outer", "vec2", vec2, 1)
    return self.unsqueeze(1) * vec2.unsqueeze(0)
  def mv(self, vec) -> Self:
    """A matrix times a vector, like torch.mv."""
    _check_ndim("mv", "matrix (self)", self, 2)
    _check_ndim("mv", "vector", vec, 1)
    return self @ vec
  def bmm(self, mat2) -> Self:
    """A batch of matrices times a batch of as many (3-d tensors, no broadcasting), like torch.bmm."""
    _check_ndim("bmm", "batch1 (self)", self, 3)
    _check_ndim("bmm", "batch2", mat2, 3)
    if mat2.shape[0] != self.shape[0]: raise ArgumentError(f"bmm batches of different sizes: {self.shape} and {mat2.shape}")
    return self @ mat2
  def _beta_self_plus_alpha(self, name: str, product: Self, beta, alpha) -> Self:
    """beta * self + alpha * product, self broadcast to product's shape: addmm's and baddbmm's sum. beta = 0 leaves
    self out altogether (its NaNs don't show), as PyTorch does."""
    dtype = promote(self.dtype, product.dtype)
    check_scalars_fit(dtype, beta=beta, alpha=alpha)
    if _broadcast_shape(self.shape, product.shape) != product.shape:
      raise ArgumentError(f"{name}: self of shape {self.shape} doesn't broadcast to the product's {product.shape}")
    scaled = product if alpha == 1 else product * alpha
    if beta == 0:  # (the where reads self's NaN test only: self stays in the graph, and gets a gradient of 0, as PyTorch's)
      return self.isnan().where(scaled, scaled).cast(dtype)
    return ((self if beta == 1 else self * beta) + scaled).cast(dtype)
  def addmm(self, mat1, mat2, *, beta=1, alpha=1) -> Self:
    """beta * self + alpha * (mat1 @ mat2) for matrices mat1 and mat2, like torch.addmm."""
    _check_ndim("addmm", "mat1", mat1, 2)
    _check_ndim("addmm", "mat2", mat2, 2)
    return self._beta_self_plus_alpha("addmm", mat1 @ mat2, beta, alpha)
  def baddbmm(self, batch1, batch2, *, beta=1, alpha=1) -> Self:
    """beta * self + alpha * bmm(batch1, batch2), like torch.baddbmm."""
    return self._beta_self_plus_alpha("baddbmm", batch1.bmm(batch2), beta, alpha)
  def trace(self) -> Self:
    """The sum of a matrix's diagonal, like torch.trace (ints sum in int64)."""
    _check_ndim("trace", "matrix (self)", self, 2)
    return self.diagonal().sum()
  def kron(self, other) -> Self:
    """The Kronecker product, like torch.kron: every element of self times all of other, as blocks (the tensor with
    fewer dims gets leading dims of size 1)."""
    check_tensor(other, "kron's other")
    ndim = max(self.ndim, other.ndim)
    a = self.reshape((1,) * (ndim - self.ndim) + self.shape)
    b = other.reshape((1,) * (ndim - other.ndim) + other.shape)
    # a's dim i goes to 2i and b's to 2i + 1: the product's pairs (2i, 2i + 1) merge into block dims
    blocks = a.reshape(tuple(n for s in a.shape for n in (s, 1))) * b.reshape(tuple(n for s in b.shape for n in (1, s)))
    return blocks.reshape(tuple(x * y for x, y in zip(a.shape, b.shape)))
  def cross(self, other, dim: int | None = None) -> Self:
    """The cross product of 3-vectors along dim, self and other broadcast together, like torch.cross; with no dim,
    the first dim of size 3 (torch's older default)."""
    check_tensor(other, "cross's other")
    a, b = self._binop_operands(other)
    if dim is None:
      if 3 not in a.shape: raise ArgumentError(f"cross: no dim of size 3 in shape {a.shape}")
      d = a.shape.index(3)
    else: d = _canon_axis(dim, a.ndim)
    if a.shape[d] != 3: raise ArgumentError(f"cross needs dim {d} of size 3, got shape {a.shape}")
    a0, a1, a2 = a.split(1, d)
    b0, b1, b2 = b.split(1, d)
    return (a1 * b2 - a2 * b1).cat(a2 * b0 - a0 * b2, a0 * b1 - a1 * b0, dim=d)
  def dist(self, other, p: float = 2) -> Self:
    """The p-norm of self - other (broadcast), like torch.dist (norm's p: 2, 1, inf, -inf, 0, any other)."""
    return (self - other).norm(p)
  def cov(self, *, correction: int = 1, fweights=None, aweights=None) -> Self:
    """The covariance matrix of the variables in self's rows (observations in its columns; a 1-d tensor is one
    variable, its result 0-d), like torch.cov: divided by the weight sum minus correction; fweights (ints, how
    many times each observation counts) and aweights (floats) weigh the observations. The weights are not read,
    so negative ones are not refused (PyTorch checks); N - correction <= 0 gives inf or NaN, as there."""
    if self.ndim > 2: raise ArgumentError(f"cov takes a tensor of at most 2 dims, got shape {self.shape}")
    x = self.reshape(1, -1)._float() if self.ndim < 2 else self._float()
    weights = self._cov_weights(x.shape[1], fweights, aweights)
    if weights is None:
      mean = x.mean(1, keepdim=True)
      norm = max(x.shape[1] - correction, 0)  # (torch clamps it at 0 too: inf or NaN follow)
    else:
      count = weights.sum()
      mean = (x * weights).sum(1, keepdim=True) / count
      scaled_correction = correction if aweights is None else correction * (weights * aweights).sum() / count
      norm = (count - scaled_correction).maximum(0)
    centred = x - mean
    weighted = centred if weights is None else centred * weights
    return (centred @ weighted.T / norm).squeeze()
  def _cov_weights(self, observations: int, fweights, aweights):
    """cov's weight per observation: fweights * aweights, or either, or None; each checked like PyTorch's (a
    vector of one weight per observation, fweights of an int dtype, aweights of a float one)."""
    weights = None
    for name, w, want_float in (("fweights", fweights, False), ("aweights", aweights, True)):
      if w is None: continue
      check_tensor(w, f"cov's {name}")
      if w.ndim > 1 or w.numel() != observations: raise ArgumentError(f"cov {name} must be a vector of one weight per observation ({observations}), got shape {w.shape}")
      if dtypes.is_float(w.dtype) != want_float: raise DtypeError(f"cov {name} must have {'a float' if want_float else 'an int'} dtype, got {w.dtype}")
      weights = w.reshape(-1) if weights is None else weights * w.reshape(-1)
    return weights
  def corrcoef(self) -> Self:
    """Pearson's correlation coefficients of the variables in self's rows, like torch.corrcoef: cov over the
    outer product of the standard deviations, clipped into [-1, 1] (a constant row gives NaN)."""
    c = self.cov()
    if c.ndim == 0: return c / c
    std = c.diagonal().sqrt()
    return (c / std.unsqueeze(1) / std.unsqueeze(0)).clip(-1, 1)
