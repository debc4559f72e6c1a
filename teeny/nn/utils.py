"""Helpers that PyTorch keeps in torch.nn.utils: clip_grad_norm_ (tinygrad has none in its library; its training
examples clip by hand), so a PyTorch training loop's `clip_grad_norm_(model.parameters(), 1.0)` works as it is."""
from __future__ import annotations
import math
from typing import Iterable
from teeny.dtype import dtypes
from teeny.tensor import Tensor


def _with_grads(parameters) -> list[Tensor]:
  """The tensors among `parameters` (one Tensor or an iterable of them) that have a gradient."""
  params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
  for p in params:
    if not isinstance(p, Tensor): raise TypeError(f"clip_grad_norm_ takes Tensors, got {type(p).__name__}")
  return [p for p in params if p.grad is not None]


def _total_norm(grads: list[Tensor], norm_type: float) -> Tensor:
  """The norm of all the gradients as one vector: the max of |g| for inf, else (sum |g|^p)^(1/p). Each
  gradient's own norm first, then the norm of those, as PyTorch does (the same value up to rounding), on the first
  gradient's device."""
  device = grads[0].device
  # in float32, or float64 where a gradient is float64 (float32 squares of 3e19 overflow: the clip scale became 0)
  wide = dtypes.float64 if any(g.dtype == dtypes.float64 for g in grads) else dtypes.float32
  def on_device(norms: list[Tensor]) -> Tensor: return Tensor.stack(*[n.to(device) if n.device != device else n for n in norms])
  if norm_type == math.inf: return on_device([g.abs().max().cast(wide) for g in grads]).max()
  if norm_type == 2.0: return on_device([g.cast(wide).square().sum().sqrt() for g in grads]).square().sum().sqrt()
  each = [(g.cast(wide).abs() ** norm_type).sum() ** (1 / norm_type) for g in grads]
  return (on_device(each) ** norm_type).sum() ** (1 / norm_type)


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach=None) -> Tensor:
  """Scale the gradients of `parameters` in place so their total norm (all of them as one vector) is at most
  max_norm, like torch.nn.utils.clip_grad_norm_: each g *= min(1, max_norm / (total + 1e-6)). Returns the total
  norm before clipping, as a lazy scalar float32 Tensor, float64 where a gradient is (no data is read, unless
  error_if_nonfinite asks to check it: then a nan or inf norm raises RuntimeError). `foreach` is accepted for
  PyTorch's signature and ignored."""
  norm_type = float(norm_type)
  if not norm_type > 0: raise ValueError(f"clip_grad_norm_: norm_type must be positive (or inf), got {norm_type}")
  if max_norm < 0: raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm}")
  params = _with_grads(parameters)
  if not params: return Tensor(0.0)
  with Tensor.no_grad():  # clipping is not part of any gradient, as in PyTorch
    total = _total_norm([p.grad for p in params], norm_type)
    if error_if_nonfinite and not math.isfinite(total.item()):
      raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total.item()}; "
                         "pass error_if_nonfinite=False to clip anyway")
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for p in params:
      here = scale if p.grad.device == scale.device else scale.to(p.grad.device)
      p.grad.assign(p.grad * here.cast(p.grad.dtype))
  return total
