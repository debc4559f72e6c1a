"""Small dense linear algebra as a Tensor mixin: qr (Householder reflections) and svd (one-sided Jacobi rotations
after a QR), batched over leading axes. Both are built from matmuls and elementwise ops, one reflection or one round
of rotations at a time, so they suit the small matrices of orthogonal initialisation and the like, not large
factorisations. qr's gradient is the closed form PyTorch's and TensorFlow's use (a rule: through the reflections it
was 0 for entries below the diagonal of a column already zero there, a triangular input's); svd's is the chain rule
through its steps (PyTorch's is closed-form)."""
from __future__ import annotations
import math
from typing import TYPE_CHECKING
import numpy as np
from teeny.dtype import dtypes
from teeny.ops.args import ArgumentError
from teeny.gradient import tensor_rules
if TYPE_CHECKING:
  from typing import Self

_MAX_SWEEPS = 40  # Jacobi sweeps at most; it stops earlier once every column pair is orthogonal to rounding


def _round_robin(n: int) -> list[list[tuple[int, int]]]:
  """n - 1 rounds (n even; a bye for odd n) of disjoint column pairs that together pair every two columns once:
  the circle method, column 0 fixed and the others turning."""
  players = list(range(n)) + ([-1] if n % 2 else [])
  rounds = []
  for _ in range(len(players) - 1):
    half = len(players) // 2
    pairs = [(players[i], players[-1 - i]) for i in range(half)]
    rounds.append([(min(p, q), max(p, q)) for p, q in pairs if p >= 0 and q >= 0])
    players = [players[0], players[-1]] + players[1:-1]
  return rounds


class LinalgOps:
  """qr and svd."""
  def _check_matrix(self, name: str) -> None:
    if self.ndim < 2: raise ArgumentError(f"{name} needs a matrix (or a batch of them), got shape {self.shape}")
    if not dtypes.is_float(self.dtype): raise TypeError(f"{name} needs a float tensor, got {self.dtype}")

  def newton_schulz(self, steps: int, params: tuple[float, ...], eps: float = 1e-7) -> Self:
    """Push each matrix (the last two axes) toward the nearest orthogonal one, its singular values toward 1, with
    `steps` rounds of an odd polynomial (tinygrad's newton_schulz, what Muon orthogonalizes with): X = A / (||A||_F
    + eps), then X <- sum_i params[i] (X X^T)^i X. A tall matrix is worked on transposed, so X X^T is the smaller."""
    if self.ndim < 2: raise ArgumentError(f"newton_schulz takes matrices (at least 2 axes), got shape {self.shape}")
    if steps < 0 or not params: raise ArgumentError(f"newton_schulz needs steps >= 0 and at least one param, got {steps} and {params}")
    if self.shape[-2] > self.shape[-1]: return self.transpose(-2, -1).newton_schulz(steps, params, eps).transpose(-2, -1)
    # each iterate is stored (contiguous): left lazy, step k's kernels would recompute every earlier step's sums
    # (and a lazy input such as randn's bits) inline, and compiling them grows with k
    x = (self / (self.square().sum((-2, -1), keepdim=True).sqrt() + eps)).contiguous()
    for _ in range(steps):
      gram = x @ x.transpose(-2, -1)
      power, total = x, params[0] * x
      for c in params[1:]:
        power = gram @ power
        total = total + c * power
      x = total.contiguous()
    return x
  def _power_of_two_scale(self) -> Self:
    """Each matrix's largest magnitude rounded down to a power of 2 (1 for a zero or non-finite matrix), a
    constant of the gradient: dividing by it is exact, and keeps the squares qr and svd sum from overflowing
    float32 (entries of 1e18 made svd stop its rotations early) or underflowing."""
    biggest = self.abs().max((-2, -1), keepdim=True).detach()
    scale = biggest.log2().floor().exp2()
    return (scale.isfinite() & (scale > 0)).where(scale, 1.0)

  def qr(self, mode: str = "reduced") -> tuple[Self, Self]:
    """Q, R with self = Q @ R, Q orthonormal and R upper triangular, like torch.linalg.qr: mode "reduced" gives Q
    (m, k) and R (k, n) with k = min(m, n), "complete" Q (m, m) and R (m, n). R's diagonal has LAPACK's signs
    (numpy's and PyTorch's): a reflection maps its column to minus the sign of its diagonal times its norm, and a
    column already zero below the diagonal is left as it is. The gradient is PyTorch's closed form (a triangular
    input's entries below the diagonal got 0 through the reflections); complete mode of a tall matrix, which PyTorch
    can't differentiate, differentiates through the reflections."""
    self._check_matrix("qr")
    if mode not in ("reduced", "complete"): raise ArgumentError(f"qr mode must be 'reduced' or 'complete', got {mode!r}")
    m, n = self.shape[-2:]
    k = min(m, n)
    if self.numel() == 0:  # (PyTorch's shapes: a complete Q of a (m, 0) matrix is the identity; the rest are empty)
      lead, rows = self.shape[:-2], m if mode == "complete" else k
      q = type(self).eye(m, rows, dtype=self.dtype, device=self.device).expand(*lead, m, rows).contiguous()
      return q, type(self).zeros(*lead, rows, n, dtype=self.dtype, device=self.device)
    q, r = self._householder_qr()
    if mode == "complete" and m > n: return q, r  # (no closed form: PyTorch refuses this gradient)
    q, r = q[..., :, :k], r[..., :k, :]
    # the closed-form gradient, one rule per factor (it is linear in the two factors' incoming gradients)
    return self._exact_gradient(q, ("qr", "Q"), r), self._exact_gradient(r, ("qr", "R"), q)

  def _householder_qr(self) -> tuple[Self, Self]:
    """The complete Q (m, m) and R (m, n), by Householder reflections; gradients through them (svd's, which
    stays finite at a rank-deficient matrix, where the closed form divides by R's zero diagonal)."""
    m, n = self.shape[-2:]
    lead = self.shape[:-2]
    magnitude = self._power_of_two_scale()  # (Q is the scaled matrix's; R is scaled back at the end)
    r = self / magnitude
    q = type(self).eye(m, dtype=self.dtype, device=self.device).expand(*lead, m, m)
    for i in range(min(m, n)):
      # step i's column and rows are picked by small host-made tensors, not by i in the kernels' code, so every
      # step runs the same kernels (compiled once)
      pick = type(self)(np.arange(n).reshape(n, 1) == i, device=self.device).cast(self.dtype)
      row = type(self)(np.arange(m).reshape(m, 1) - i, device=self.device)  # < 0 above the diagonal, 0 on it
      column = (row >= 0).where(r @ pick, 0.0)  # (..., m, 1): column i from the diagonal down
      alpha = (row == 0).where(column, 0.0).sum(-2, keepdim=True)
      norm = column.square().sum(-2, keepdim=True)._sqrt_flat_at_zero()  # (a zero column: gradient 0, not inf * 0)
      below = (row > 0).where(column, 0.0).square().sum(-2, keepdim=True)
      beta = -(alpha < 0).where(-norm, norm)  # -sign(alpha) * norm, sign(0) = +1 (LAPACK's choice)
      v = (row == 0).where(column - beta, column)  # the reflection's vector: x - beta * e_i
      scale = (below > 0).where(2 / (below > 0).where(v.square().sum(-2, keepdim=True), 1.0), 0.0)
      r = (r - (scale * v) @ (v.transpose(-1, -2) @ r)).contiguous()
      q = (q - (q @ v) @ (scale * v).transpose(-1, -2)).contiguous()  # (each step stored: no graph that nests)
    return q, r.triu() * magnitude  # (what the reflections left below the diagonal is rounding)

  def svd(self, full_matrices: bool = True) -> tuple[Self, Self, Self]:
    """U, S, Vh with self = U @ diag(S) @ Vh, S descending, like torch.linalg.svd: full_matrices gives U (m, m) and
    Vh (n, n), else U (m, k) and Vh (k, n), k = min(m, n). A QR first, then Jacobi rotations of R's columns until
    they are orthogonal (reading their largest cosine from the device after each round of rotations). Where a
    singular value is 0 its U column is 0, not an arbitrary unit vector (U @ diag(S) @ Vh is self either way)."""
    self._check_matrix("svd")
    m, n = self.shape[-2:]
    if self.numel() == 0:  # (an empty batch or matrix: PyTorch's shapes; a full square factor is the identity)
      k, lead = min(m, n), self.shape[:-2]
      def factor(rows: int, cols: int) -> Self:
        return type(self).eye(rows, cols, dtype=self.dtype, device=self.device).expand(*lead, rows, cols).contiguous()
      u, vh = (factor(m, m), factor(n, n)) if full_matrices else (factor(m, k), factor(k, n))
      return u, type(self).zeros(*lead, k, dtype=self.dtype, device=self.device), vh
    if m < n:
      u, s, vh = self.transpose(-1, -2).svd(full_matrices)
      return vh.transpose(-1, -2), s, u.transpose(-1, -2)
    magnitude = self._power_of_two_scale()  # (S is the scaled matrix's, scaled back)
    q, r = (self / magnitude)._householder_qr()
    work = r[..., :n, :].contiguous().realize()
    v = type(self).eye(n, dtype=self.dtype, device=self.device).expand(*self.shape[:-2], n, n).contiguous().realize()
    work, v = work._jacobi_sweeps(v)
    norms = work.square().sum(-2)._sqrt_flat_at_zero()  # (a zero singular value: gradient 0, not inf * 0 = NaN)
    s, order = norms.sort(dim=-1, descending=True)
    picked = order.unsqueeze(-2).expand(*order.shape[:-1], n, n)
    u_small = work.gather(-1, picked) / (s > 0).where(s, 1.0).unsqueeze(-2)
    v = v.gather(-1, picked)
    u = q[..., :, :n] @ u_small
    if full_matrices and m > n: u = u.cat(q[..., :, n:], dim=-1)  # R's zero rows: Q's last columns complete U
    return u, s * magnitude.squeeze(-1), v.transpose(-1, -2)

  def _jacobi_sweeps(self, v: Self) -> tuple[Self, Self]:
    """Rotate pairs of columns of self (n columns, also applied to v) until every pair is orthogonal: a sweep is
    n - 1 rounds of disjoint pairs, each round one batch of 2x2 rotations that zero the pairs' dot products."""
    n = self.shape[-1]
    eps = np.finfo(np.float64 if self.dtype == dtypes.float64 else np.float32).eps
    work = self
    for _ in range(_MAX_SWEEPS if n > 1 else 0):
      worst = 0.0
      for pairs in _round_robin(n):
        work, v, cosine = work._rotate_pairs(v, pairs)
        worst = max(worst, cosine)
      if worst <= eps * n: break
    return work, v

  def _rotate_pairs(self, v: Self, pairs: list[tuple[int, int]]) -> tuple[Self, Self, float]:
    """One round: for each pair (p, q) the rotation (c, s) with t = s / c the smaller root of
    t^2 + 2 zeta t - 1 = 0, zeta = (|q|^2 - |p|^2) / (2 p.q), applied to columns p and q of self and of v. Also the
    largest |p.q| / (|p| |q|) before the round (read from the device)."""
    n = self.shape[-1]
    pick_p = np.zeros((n, len(pairs)), np.float32)
    pick_q = np.zeros((n, len(pairs)), np.float32)
    for k, (p, q) in enumerate(pairs): pick_p[p, k], pick_q[q, k] = 1, 1
    select_p = type(self)(pick_p, device=self.device).cast(self.dtype)
    select_q = type(self)(pick_q, device=self.device).cast(self.dtype)
    col_p, col_q = self @ select_p, self @ select_q
    alpha, beta = col_p.square().sum(-2, keepdim=True), col_q.square().sum(-2, keepdim=True)
    gamma = (col_p * col_q).sum(-2, keepdim=True)
    turn = gamma != 0
    zeta = (beta - alpha) / (2 * turn.where(gamma, 1.0))
    t = turn.where((zeta >= 0).where(1.0, -1.0) / (zeta.abs() + (1 + zeta.square()).sqrt()), 0.0)
    c = 1 / (1 + t.square()).sqrt()
    s = c * t
    lengths = alpha.sqrt() * beta.sqrt()  # (not sqrt(alpha * beta), which overflows first)
    cosine = (gamma.abs() / lengths.maximum(1e-300 if self.dtype == dtypes.float64 else 1e-30)).max().item()
    def rotate(x: Self) -> Self:
      xp, xq = x @ select_p, x @ select_q
      moved_p, moved_q = c * xp - s * xq - xp, s * xp + c * xq - xq
      # realized each round: the next round then reads two buffers, and every round runs the same kernels
      return (x + moved_p @ select_p.transpose(-1, -2) + moved_q @ select_q.transpose(-1, -2)).realize()
    return rotate(self), rotate(v), float(cosine) if not math.isnan(cosine) else math.inf


def _times_inverse_rt(x, r):
  """x R^-T for an upper triangular R (k, k): the columns y_i of Y with Y R^T = x, by back substitution from the
  last one (y_i = (x_i - sum_j>i R_ij y_j) / R_ii)."""
  k = r.shape[-1]
  columns: list = [None] * k
  for i in reversed(range(k)):
    rest = x[..., :, i:i + 1]
    if i + 1 < k: rest = rest - type(x).cat(*columns[i + 1:], dim=-1) @ r[..., i:i + 1, i + 1:].transpose(-1, -2)
    columns[i] = rest / r[..., i:i + 1, i:i + 1]
  return type(x).cat(*columns, dim=-1)


def _qr_tall_gradient(q, r, dq, dr):
  """A's gradient for A = QR with m >= n (Q (m, n), R (n, n)), given the incoming gradients dq, dr (either None):
  Q (dR + tril(Q^T dQ - dQ^T Q + R dR^T - dR R^T) R^-T) + (dQ - Q Q^T dQ) R^-T."""
  skew, grad = None, None
  if dr is not None:
    rdr = r @ dr.transpose(-1, -2)
    skew, grad = rdr - rdr.transpose(-1, -2), dr
  if dq is not None:
    qdq = q.transpose(-1, -2) @ dq
    skew = qdq - qdq.transpose(-1, -2) if skew is None else skew + (qdq - qdq.transpose(-1, -2))
  inner = _times_inverse_rt(skew.tril(), r)
  out = q @ (inner if grad is None else grad + inner)
  return out if dq is None else out + _times_inverse_rt(dq - q @ qdq, r)


def _qr_gradient(arg, grad, value, a, other):
  """qr's rule for one factor (arg[1]: "Q" or "R"; other is the other factor). A wide A = [X | Y] (m < n) with R =
  [U | V]: X's gradient is the square one with dQ + Y dV^T, Y's is Q dV."""
  q, r = (value, other) if arg[1] == "Q" else (other, value)
  dq, dr = (grad, None) if arg[1] == "Q" else (None, grad)
  m, n = a.shape[-2:]
  if m >= n: return _qr_tall_gradient(q, r, dq, dr), None
  u, y = r[..., :, :m], a[..., :, m:]
  if dr is None: return _qr_tall_gradient(q, u, dq, None).cat(y.zeros_like(), dim=-1), None
  dv = dr[..., :, m:]
  dx = _qr_tall_gradient(q, u, y @ dv.transpose(-1, -2), dr[..., :, :m])
  return dx.cat(q @ dv, dim=-1), None


tensor_rules["qr"] = _qr_gradient
