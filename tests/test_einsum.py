"""einsum against numpy (explicit and implicit outputs, traces and diagonals, ellipses, batched matmul) with its
kernel count and gradient, and einops-style rearrange against the numpy reshapes and transposes it spells."""
import numpy as np
import pytest
from teeny import Tensor, GlobalCounters, Device, dtypes

rng = np.random.default_rng(2)
A, B, S = (rng.standard_normal(s).astype(np.float32) for s in ((3, 4), (4, 5), (4, 4)))
C, D = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((2, 4, 5)).astype(np.float32)
CASES = [("ij,jk->ik", [A, B]), ("ii->", [S]), ("ii->i", [S]), ("ij->ji", [A]), ("bij,bjk->bik", [C, D]),
         ("...ij->...ji", [C]), ("ij,jk", [A, B]), ("i,j->ij", [A[0], B[0]]), ("bij,bjk", [C, D]),
         ("...ij,...jk->...ik", [C, D]), ("ij->", [A]), ("iij->ji", [rng.standard_normal((3, 3, 2)).astype(np.float32)]),
         ("i j , j k -> i k", [A, B])]


@pytest.mark.parametrize("formula,operands", CASES, ids=[c[0] for c in CASES])
def test_einsum_matches_numpy(device, formula, operands):
  got = Tensor.einsum(formula, *[Tensor(o, device=device) for o in operands])
  np.testing.assert_allclose(got.numpy(), np.einsum(formula.replace(" ", ""), *operands), rtol=1e-5, atol=1e-5)


def test_einsum_is_one_kernel_and_differentiates(device):
  a, b = Tensor(A, device=device, requires_grad=True), Tensor(B, device=device, requires_grad=True)
  a.realize(), b.realize()
  GlobalCounters.reset()
  out = Tensor.einsum("ij,jk->ik", [a, b]).realize()  # (operands as one list, like torch)
  assert GlobalCounters.kernel_count == 1
  out.sum().backward()
  np.testing.assert_allclose(a.grad.numpy(), np.ones((3, 5), np.float32) @ B.T, rtol=1e-5)


def test_einsum_errors(device):
  a = Tensor(A, device=device)
  with pytest.raises(ValueError, match="2 operands"): Tensor.einsum("ij,jk->ik", a)
  with pytest.raises(ValueError, match="names 3 axes"): Tensor.einsum("ijk->i", a)
  with pytest.raises(ValueError, match="output letter"): Tensor.einsum("ij->z", a)
  with pytest.raises(RuntimeError, match="more than one"): Tensor.einsum("...i...,...i->", [a, a])


X = np.arange(2 * 3 * 4 * 6, dtype=np.float32).reshape(2, 3, 4, 6)


@pytest.mark.parametrize("formula,sizes,want", [
  ("b c h w -> b h w c", {}, X.transpose(0, 2, 3, 1)),
  ("b c (h p1) (w p2) -> b (h w) (p1 p2 c)", {"p1": 2, "p2": 3}, X.reshape(2, 3, 2, 2, 2, 3).transpose(0, 2, 4, 3, 5, 1).reshape(2, 4, 18)),
  ("b ... w -> w b ...", {}, X.transpose(3, 0, 1, 2)),
  ("b c h w -> b (c h w)", {}, X.reshape(2, -1)),
  ("b c h w -> b 1 c h w", {}, X.reshape(2, 1, 3, 4, 6)),
  ("b c h (w 1) -> b c h w", {}, X),
  ("... -> ...", {}, X),
  ("b ... w -> b (...) w", {}, X.reshape(2, 12, 6)),
  ("b … w -> (w …) b", {}, X.transpose(3, 1, 2, 0).reshape(72, 2)),
  ("b c (h2 h) w -> (b h2) c h w", {"h2": 2}, X.reshape(2, 3, 2, 2, 6).transpose(0, 2, 1, 3, 4).reshape(4, 3, 2, 6)),
])
def test_rearrange(device, formula, sizes, want):
  np.testing.assert_array_equal(Tensor(X, device=device).rearrange(formula, **sizes).numpy(), want)


def test_rearrange_errors(device):
  t = Tensor(X, device=device)
  with pytest.raises(ValueError, match="exactly once"): t.rearrange("b c h w -> b c h")
  with pytest.raises(ValueError, match="can't infer"): t.rearrange("b c (h p) w -> b c h p w")
  with pytest.raises(ValueError, match="doesn't split"): t.rearrange("b c (h p) w -> b c h p w", p=3)
  with pytest.raises(ValueError, match="names 3 axes"): t.rearrange("b c h -> b c h")


def test_einsum_implicit_output_and_dtypes_like_torch(device):
  """Without '->' a letter repeated inside one operand is summed ("ii" is the trace: it gave the diagonal, since the
  letters were counted after the diagonal was taken); integers keep their dtype and wrap (they became int64), and
  float16 multiplies in float32 like a matmul ([300, 300] . [300, -300] was inf - inf = NaN)."""
  from teeny import dtypes
  a = np.arange(9, dtype=np.float32).reshape(3, 3)
  assert Tensor.einsum("ii", Tensor(a, device=device)).item() == np.trace(a)
  b = np.arange(18, dtype=np.float32).reshape(3, 3, 2)
  np.testing.assert_array_equal(Tensor.einsum("iij", Tensor(b, device=device)).numpy(), np.einsum("iij", b))
  u, v = np.full((2, 3), 200, np.uint8), np.full((3, 2), 3, np.uint8)
  out = Tensor.einsum("ij,jk->ik", Tensor(u, device=device), Tensor(v, device=device))
  assert out.dtype == dtypes.uint8 and (out.numpy() == np.uint8(1800 % 256)).all()
  h, k = np.array([[300, 300]], np.float16), np.array([[300], [-300]], np.float16)
  assert Tensor.einsum("ij,jk->ik", Tensor(h, device=device), Tensor(k, device=device)).item() == 0
  assert (Tensor(h, device=device) @ Tensor(k, device=device)).item() == 0
  x, y = np.array([1000, 1, -1000], np.float16), np.array([1000, 0.5, 1000], np.float16)
  assert Tensor(x, device=device).dot(Tensor(y, device=device)).item() == 0.5


def test_one_int_operand_sums_widen_as_pytorchs(device):
  """One operand's einsum is a sum, which widens ints to int64 as PyTorch's ("i->" of uint8 [200, 100] was 44);
  several operands' products keep their int dtype (PyTorch's bmm), and a diagonal without a sum keeps it too."""
  if not Device[device].supports_dtype(dtypes.int64): pytest.skip("no int64 on this device")
  total = Tensor.einsum("i->", Tensor(np.array([200, 100], np.uint8), device=device))
  assert total.dtype == dtypes.int64 and total.item() == 300
  assert Tensor.einsum("ii", Tensor(np.diag([2**30, 2**30]).astype(np.int32), device=device)).item() == 2**31
  assert Tensor.einsum("ii->i", Tensor(np.eye(2, dtype=np.int8), device=device)).dtype == dtypes.int8
  a = Tensor(np.full((2, 2), 100, np.int8), device=device)
  assert Tensor.einsum("ij,jk->ik", a, a).dtype == dtypes.int8
