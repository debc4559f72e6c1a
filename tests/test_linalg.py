"""qr and svd (teeny/ops/linalg.py) against numpy's LAPACK: QR's factors themselves (LAPACK's signs), SVD's
singular values, the reconstruction and orthonormal factors, both modes, batches, wide and tall matrices."""
import numpy as np
import pytest
from teeny import Tensor, Device, dtypes

rng = np.random.default_rng(4)


@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (3, 5), (2, 4, 3), (1, 3), (4, 1)])
def test_qr_matches_numpy(device, shape):
  a = rng.standard_normal(shape).astype(np.float32)
  for mode in ("reduced", "complete"):
    q, r = Tensor(a, device=device).qr(mode=mode)
    want_q, want_r = np.linalg.qr(a, mode=mode)
    np.testing.assert_allclose(q.numpy(), want_q, atol=2e-6, err_msg=mode)
    np.testing.assert_allclose(r.numpy(), want_r, atol=2e-6, err_msg=mode)


def test_qr_of_a_rank_deficient_matrix(device):
  """A zero column: its reflection is skipped (LAPACK's too), R keeps the zero and Q @ R is still the matrix."""
  a = rng.standard_normal((4, 3)).astype(np.float32)
  a[:, 1] = 0
  q, r = Tensor(a, device=device).qr()
  np.testing.assert_allclose(q.numpy() @ r.numpy(), a, atol=2e-6)
  np.testing.assert_allclose(q.numpy().T @ q.numpy(), np.eye(3), atol=2e-6)


@pytest.mark.parametrize("shape,full_matrices", [((4, 4), True), ((5, 3), True), ((3, 5), False), ((2, 4, 3), False)])
def test_svd_matches_numpy(device, shape, full_matrices):
  a = rng.standard_normal(shape).astype(np.float32)
  u, s, vh = Tensor(a, device=device).svd(full_matrices=full_matrices)
  want_u, want_s, want_vh = np.linalg.svd(a, full_matrices=full_matrices)
  assert (u.shape, s.shape, vh.shape) == (want_u.shape, want_s.shape, want_vh.shape)
  u, s, vh = u.numpy(), s.numpy(), vh.numpy()
  np.testing.assert_allclose(s, want_s, atol=3e-6, rtol=1e-5)
  k = s.shape[-1]
  np.testing.assert_allclose((u[..., :, :k] * s[..., None, :]) @ vh[..., :k, :], a, atol=3e-6)
  np.testing.assert_allclose(np.swapaxes(u, -1, -2) @ u, np.broadcast_to(np.eye(u.shape[-1]), u.shape[:-2] + (u.shape[-1],) * 2), atol=2e-6)
  np.testing.assert_allclose(vh @ np.swapaxes(vh, -1, -2), np.broadcast_to(np.eye(vh.shape[-2]), vh.shape[:-2] + (vh.shape[-2],) * 2), atol=2e-6)


def test_linalg_errors(device):
  with pytest.raises(ValueError, match="matrix"): Tensor([1.0, 2.0], device=device).qr()
  with pytest.raises(TypeError, match="float"): Tensor([[1, 2], [3, 4]], device=device).svd()
  with pytest.raises(ValueError, match="mode"): Tensor.ones(2, 2, device=device).qr(mode="r")


@pytest.mark.parametrize("shape", [(2, 2), (3, 2), (2, 3), (2, 2, 2), (3, 4, 6)])
def test_newton_schulz_orthogonalizes_each_matrix(device, shape):
  """tinygrad's Tensor.newton_schulz (Muon's step): with coefficients that map singular values to 1, each matrix of
  a batch (tall ones through their transpose) ends with orthonormal rows (or columns, when tall)."""
  a = rng.standard_normal(shape).astype(np.float32)
  for params in ((2, -1.5, 0.5), (2.0, -1.4, 0.2, 0.2)):
    out = Tensor(a, device=device).newton_schulz(steps=20, params=params, eps=0.0).numpy()
    m = out if shape[-1] >= shape[-2] else np.swapaxes(out, -1, -2)
    gram = m @ np.swapaxes(m, -1, -2)
    np.testing.assert_allclose(gram, np.broadcast_to(np.eye(gram.shape[-1]), gram.shape), atol=1e-3)
  with pytest.raises(ValueError, match="matrices"): Tensor([1.0, 2.0], device=device).newton_schulz(2, (1.0,))


def test_svd_and_qr_of_huge_entries_and_a_zero_singular_value(device):
  """Entries of 1e18 overflowed float32's column sums of squares (svd stopped rotating early: S 1.8178e18 for
  1.8193e18, U far from orthogonal); a zero singular value made every gradient NaN (sqrt's slope at 0)."""
  a = (rng.standard_normal((3, 3)) * 1e18).astype(np.float32)
  u, s, vh = Tensor(a, device=device).svd()
  np.testing.assert_allclose(s.numpy(), np.linalg.svd(a.astype(np.float64), compute_uv=False), rtol=1e-5)
  np.testing.assert_allclose(u.numpy().T @ u.numpy(), np.eye(3), atol=1e-5)
  q, r = Tensor(a, device=device).qr()
  np.testing.assert_allclose(q.numpy() @ r.numpy(), a, rtol=1e-5, atol=1e13)
  b = Tensor(np.array([[1.0, 0.0], [2.0, 0.0]], np.float32), device=device, requires_grad=True)
  _, s, _ = b.svd()
  s.square().sum().backward()  # d(sum S^2) = 2 A
  np.testing.assert_allclose(b.grad.numpy(), [[2.0, 0.0], [4.0, 0.0]], rtol=1e-5, atol=1e-6)
  b.grad = None
  _, s, _ = b.svd()
  s.sum().backward()
  assert np.isfinite(b.grad.numpy()).all()


def test_svd_of_empty_matrices_and_the_einsum_sublist_form(device):
  """svd of an empty batch or matrix raised (max of an empty tensor): PyTorch's shapes, a full square factor the
  identity; einsum's sublist form raised an unrelated TypeError (it is not supported: now said)."""
  for shape, full in (((0, 3, 3), True), ((2, 0, 3), True), ((2, 3, 0), False)):
    u, s, vh = Tensor.zeros(*shape, device=device).svd(full)
    m, n = shape[-2:]
    k = min(m, n)
    assert (u.shape, s.shape, vh.shape) == ((*shape[:-2], m, m if full else k), (*shape[:-2], k), (*shape[:-2], n if full else k, n))
  _, _, vh = Tensor.zeros(2, 0, 3, device=device).svd()
  np.testing.assert_array_equal(vh.numpy(), np.broadcast_to(np.eye(3), (2, 3, 3)))
  with pytest.raises(TypeError, match="sublist"): Tensor.einsum(Tensor.ones(2, 3, device=device), [0, 1], [1])


def test_qr_gradient_is_the_closed_form_at_triangular_inputs(device):
  """PyTorch's closed-form gradient of qr: at a triangular input (a column already zero below the diagonal, its
  reflection skipped) the gradient through the reflections was 0 for those entries. Values from torch 2.13; the
  other shapes (tall, wide, batched) against a central difference."""
  a = Tensor(np.array([[2.0, 1.0], [0.0, 3.0]], np.float32), device=device, requires_grad=True)
  q, r = a.qr()
  (q.sum() + r.sum()).backward()
  np.testing.assert_allclose(a.grad.numpy(), [[1.0, 1.0], [1.0, 1.0]], rtol=1e-6, atol=1e-6)
  if not Device[device].supports_dtype(dtypes.float64): return
  for shape in ((4, 2), (2, 4), (2, 3, 3)):
    x = rng.standard_normal(shape)
    weights = [rng.standard_normal(f.shape) for f in np.linalg.qr(x)]
    def loss(v):
      qv, rv = Tensor(v, device=device).qr()
      return ((qv * Tensor(weights[0], device=device)).sum() + (rv * Tensor(weights[1], device=device)).sum()).item()
    t = Tensor(x, device=device, requires_grad=True)
    qt, rt = t.qr()
    ((qt * Tensor(weights[0], device=device)).sum() + (rt * Tensor(weights[1], device=device)).sum()).backward()
    h, numeric = 1e-6, np.zeros(shape)
    for i in np.ndindex(*shape):
      step = np.zeros(shape)
      step[i] = h
      numeric[i] = (loss(x + step) - loss(x - step)) / (2 * h)
    np.testing.assert_allclose(t.grad.numpy(), numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0, 0), (2, 0, 3)])
def test_qr_of_an_empty_matrix_has_pytorchs_shapes(device, shape):
  """qr of an empty matrix raised (the max of an empty tensor); PyTorch's factors: a complete Q of a (3, 0) matrix is
  the identity, everything else empty."""
  x = Tensor.zeros(*shape, device=device)
  m, n = shape[-2:]
  q, r = x.qr()
  assert q.shape == shape[:-2] + (m, min(m, n)) and r.shape == shape[:-2] + (min(m, n), n)
  q, r = x.qr(mode="complete")
  assert q.shape == shape[:-2] + (m, m) and r.shape == shape[:-2] + (m, n)
  np.testing.assert_array_equal(q.numpy(), np.broadcast_to(np.eye(m), q.shape))
