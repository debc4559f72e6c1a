"""Random differentiable programs in float64, and their gradients checked against central finite differences.

The programs reuse the forward fuzzer's generator for movement ops, broadcasting and the composed ops (cat,
tensor indexing, gather, pooling, conv2d), with smooth math only
(no kinks where a finite difference would straddle them, no comparisons): every input requires grad, the loss
is sum(output * fixed random weights) over the outputs, teeny computes d loss / d input with backward(), and
numpy evaluates the same program at x +- h for each input element (Richardson-extrapolated central
differences, error O(h^4)).
"""
from __future__ import annotations
import math
import numpy as np
from hypothesis import strategies as st
from teeny import Tensor, dtypes
from fuzz_programs import _Builder, _outputs, Program, Ref, Step, Unusable, _numpy_step, _teeny_step, _broadcast, _check_inexact

GRAD_SIZES = (2, 3, 1, 4, 2, 3, 1, 5, 2, 3, 4, 1, 2, 3, 0)  # an empty axis now and then, not every other program
MAX_INPUT_NUMEL = 24  # conv weights need a few more
H = 1e-4  # step of the finite differences; with Richardson extrapolation the error is ~ h^4 * f''''''


# name: (teeny, numpy), both on float64 values
SMOOTH_UNARY = {
  "neg": (lambda x: -x, lambda a: -a),
  "square": (Tensor.square, np.square),
  "cube": (lambda x: x ** 3, lambda a: a ** 3),
  "exp_half": (lambda x: (x * 0.5).exp(), lambda a: np.exp(a * 0.5)),
  "sin": (Tensor.sin, np.sin),
  "cos": (Tensor.cos, np.cos),
  "tanh": (Tensor.tanh, np.tanh),
  "sigmoid": (Tensor.sigmoid, lambda a: 1 / (1 + np.exp(-a))),
  "log_sq1": (lambda x: (x * x + 1).log(), lambda a: np.log(a * a + 1)),
  "sqrt_sq1": (lambda x: (x * x + 1).sqrt(), lambda a: np.sqrt(a * a + 1)),
  "recip_sq1": (lambda x: 1 / (x * x + 1), lambda a: 1 / (a * a + 1)),
  "silu": (Tensor.silu, lambda a: a / (1 + np.exp(-a))),
  "softplus": (Tensor.softplus, lambda a: np.logaddexp(0, a)),
  "gelu": (Tensor.gelu, lambda a: 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3)))),
  "mish": (Tensor.mish, lambda a: a * np.tanh(np.logaddexp(0, a))),
}

SMOOTH_BINARY = {
  "add": (lambda a, b: a + b, lambda a, b: a + b),
  "sub": (lambda a, b: a - b, lambda a, b: a - b),
  "mul": (lambda a, b: a * b, lambda a, b: a * b),
  "div_sq1": (lambda a, b: a / (b * b + 1), lambda a, b: a / (b * b + 1)),
  "maximum": (lambda a, b: a.maximum(b), np.maximum),  # ties only between copies of one value: the split sums to 1
}

# (no std: sqrt has a kink at 0, where a constant row, like the softmax of a size-1 axis, puts it)
SMOOTH_REDUCE = ("sum", "mean", "max", "min", "logsumexp", "softmax", "log_softmax", "var", "prod", "cumsum")


class _GradBuilder(_Builder):
  """The forward generator restricted to float64 inputs and smooth ops."""
  def new_input(self, shape=None, dtype=None) -> int | None:
    if shape is None: shape = tuple(self.choice(GRAD_SIZES) for _ in range(self.choice((1, 2, 2, 3, 0))))
    while math.prod(shape) > MAX_INPUT_NUMEL: shape = shape[1:]  # dropping leading axes keeps it broadcastable
    return self.add("input", (), (tuple(shape), "float64", self.integers(0, 2**16)), shape, dtypes.float64, False)

  def operand(self, i, allow_scalar=True):
    if allow_scalar and self.coin(0.25): return ("scalar", self.choice((2.0, -0.5, 1.5)))
    shape = self.nodes[i].shape
    j = self.pick(lambda n: _fits(n.shape, shape)) if self.coin(0.5) else None
    if j is None: j = self.new_input(self.broadcast_partner_shape(shape))
    return ("node", j) if j is not None else ("scalar", 1.0)

  def unary(self):
    i = self.pick()
    self.add("g_" + self.choice(tuple(SMOOTH_UNARY)), (i,), None, self.nodes[i].shape, dtypes.float64, False)

  def binary(self):
    i = self.pick()
    name = self.choice(tuple(SMOOTH_BINARY))
    kind, other = self.operand(i)
    if kind == "scalar":
      self.add("g_" + name, (i,), ("scalar", other, self.coin(0.3)), self.nodes[i].shape, dtypes.float64, False)
    else:
      shape = _broadcast(self.nodes[i].shape, self.nodes[other].shape)
      self.add("g_" + name, (i, other), None, shape, dtypes.float64, False)

  def where(self):
    """where() with a constant condition: gradients flow to the chosen side only."""
    i = self.pick()
    kind, other = self.operand(i, allow_scalar=True)
    srcs = (i,) if kind == "scalar" else (i, other)
    shapes = [self.nodes[s].shape for s in srcs]
    cond_shape = self.broadcast_partner_shape(_broadcast(*shapes))
    self.add("g_where", srcs, (cond_shape, self.integers(0, 2**16), other if kind == "scalar" else None),
             _broadcast(cond_shape, *shapes), dtypes.float64, False)

  def reduce(self):
    i = self.pick()
    n = self.nodes[i]
    nd = len(n.shape)
    name = self.choice(SMOOTH_REDUCE)
    one_axis = name in ("softmax", "log_softmax", "cumsum")
    if nd == 0: axis = 0 if one_axis else None
    elif one_axis or self.coin(0.6): axis = self.integers(-nd, nd - 1)
    else: axis = None
    axes = range(nd) if axis is None else [axis % nd] if nd else []
    reduced = math.prod(n.shape[a] for a in axes)
    if name in ("max", "min", "logsumexp") and reduced == 0: return
    if name == "var" and reduced < 2: return
    if name == "prod" and reduced > 4: return
    keepdim = self.coin(0.4)
    if one_axis: shape = n.shape
    else: shape = tuple(1 if a in axes else s for a, s in enumerate(n.shape) if keepdim or a not in axes)
    self.add("g_reduce", (i,), (name, axis, keepdim), shape, dtypes.float64, False)

  def cast(self): pass  # casts to narrower types would make the finite differences meaningless

  def matmul(self):
    i = self.pick(lambda n: len(n.shape) >= 1 and n.shape[-1] <= 4)
    if i is None: return
    k = self.nodes[i].shape[-1]
    j = self.new_input((k, self.choice((1, 2, 3))) if self.coin(0.7) else (k,))
    if j is None: return
    shape = np.matmul(np.zeros(self.nodes[i].shape), np.zeros(self.nodes[j].shape)).shape
    self.add("matmul", (i, j), None, shape, dtypes.float64, False)

  def boundary(self):
    i = self.pick()
    self.add("contiguous", (i,), None, self.nodes[i].shape, dtypes.float64, False)


def _fits(a, b) -> bool:
  try: np.broadcast_shapes(a, b); return True
  except ValueError: return False


GRAD_STEP_KINDS = (("movement",) * 5 + ("unary",) * 3 + ("binary",) * 3 + ("reduce",) * 3 +
                   ("where", "matmul", "boundary", "composed", "composed"))


@st.composite
def grad_programs(draw, max_steps: int = 8) -> Program:
  b = _GradBuilder(draw)
  b.new_input()
  for _ in range(draw(st.integers(1, max_steps))):
    getattr(b, draw(st.sampled_from(GRAD_STEP_KINDS)))()
  b.program.outputs = _outputs(b.program, draw)
  return b.program


# ---------------------------------------------------------------- running

def _weights(program: Program, k: int, shape) -> np.ndarray:
  return np.random.default_rng(1000 + k).uniform(-1, 1, shape)


def _cond(arg) -> np.ndarray:
  shape, seed, _ = arg
  return np.random.default_rng(seed).integers(0, 2, shape).astype(np.bool_)


def _teeny_grad_step(step: Step, src: list[Tensor], device: str) -> Tensor:
  if not step.op.startswith("g_"): return _teeny_step(step, src, device)
  name = step.op[2:]
  if name in SMOOTH_UNARY: return SMOOTH_UNARY[name][0](src[0])
  if name in SMOOTH_BINARY:
    fn = SMOOTH_BINARY[name][0]
    if step.arg is None: return fn(src[0], src[1])
    _, value, reverse = step.arg
    c = Tensor(value, device=device, dtype=dtypes.float64)
    return fn(c, src[0]) if reverse else fn(src[0], c)
  if name == "where":
    cond = Tensor(_cond(step.arg), device=device)
    other = src[1] if len(src) > 1 else step.arg[2]
    return cond.where(src[0], other)
  if name == "reduce":
    r, axis, keepdim = step.arg
    x = src[0]
    if r == "cumsum": return x.cumsum(axis)
    if r in ("softmax", "log_softmax"): return getattr(x, r)(axis)
    return getattr(x, r)(axis, keepdim=keepdim)
  raise ValueError(step.op)


def teeny_gradients(program: Program, device: str) -> tuple[float, list[np.ndarray]]:
  """The loss and d loss / d input for every input, computed by teeny's backward()."""
  nodes: list[Tensor] = []
  inputs = []
  for step in program.steps:
    if step.op == "input":
      t = Tensor(_input_values(step), device=device, requires_grad=True)
      inputs.append(t)
      nodes.append(t)
    else: nodes.append(_teeny_grad_step(step, [nodes[s] for s in step.srcs], device))
  loss = None
  for k, o in enumerate(program.outputs):
    term = (nodes[o] * Tensor(_weights(program, k, nodes[o].shape), device=device)).sum()
    loss = term if loss is None else loss + term
  # outputs that no input reaches (an index gathered by an index) leave nothing to differentiate: backward() raises
  # then, as torch's does, and every gradient is zero
  if loss.requires_grad: loss.backward()
  Tensor.realize_all(loss, *[t.grad for t in inputs if t.grad is not None])
  return loss.item(), [t.grad.numpy() if t.grad is not None else np.zeros(t.shape) for t in inputs]


def _input_values(step: Step) -> np.ndarray:
  shape, _, seed = step.arg
  return np.random.default_rng(seed).normal(0, 1, shape)


def numpy_loss(program: Program, inputs: list[np.ndarray]) -> float:
  values: list[np.ndarray] = []
  it = iter(inputs)
  for step in program.steps:
    if step.op == "input": values.append(next(it)); continue
    values.append(_numpy_grad_step(step, [values[s] for s in step.srcs]))
  total = 0.0
  for k, o in enumerate(program.outputs):
    total += float((values[o] * _weights(program, k, values[o].shape)).sum())
  return total


def _numpy_grad_step(step: Step, src: list[np.ndarray]) -> np.ndarray:
  with np.errstate(all="ignore"):
    if not step.op.startswith("g_"):
      ref = _numpy_step(step, [Ref(s, 0.0) for s in src])
      out = np.asarray(ref.value)
    else:
      name = step.op[2:]
      if name in SMOOTH_UNARY: out = SMOOTH_UNARY[name][1](src[0])
      elif name in SMOOTH_BINARY:
        fn = SMOOTH_BINARY[name][1]
        if name == "maximum" and step.arg is None: _no_kink_within_step(src[0], src[1])
        if step.arg is None: out = fn(src[0], src[1])
        else:
          _, value, reverse = step.arg
          out = fn(value, src[0]) if reverse else fn(src[0], value)
      elif name == "where": out = np.where(_cond(step.arg), src[0], src[1] if len(src) > 1 else step.arg[2])
      else: out = _np_grad_reduce(src[0], *step.arg)
  out = np.asarray(out)
  if out.dtype.kind != "f": return out  # index tensors stay ints
  out = out.astype(np.float64)
  _check_inexact(Ref(out))
  if out.size and np.abs(out).max() > 1e6: raise Unusable("values too large for finite differences")
  return out


def _no_kink_within_step(a: np.ndarray, b: np.ndarray):
  """maximum(a, b) has a kink where a == b: two different values closer than the finite differences' steps
  would be straddled (equal values are copies of one value, whose tie split sums to 1)."""
  gap = np.abs(np.asarray(a) - np.asarray(b))
  if np.any((gap > 0) & (gap < 4 * H)): raise Unusable("maximum of two values closer than the finite-difference step")


def _np_grad_reduce(a: np.ndarray, name: str, axis, keepdim) -> np.ndarray:
  if a.ndim == 0 and name in ("softmax", "log_softmax", "cumsum"):
    return {"softmax": np.ones(()), "log_softmax": np.zeros(()), "cumsum": a}[name]
  kd = dict(axis=None if a.ndim == 0 else axis, keepdims=keepdim)
  if name in ("sum", "max", "min", "prod"): return getattr(np, name)(a, **kd)
  if name == "mean": return np.mean(a, **kd) if a.size else np.full(np.sum(a, **kd).shape, np.nan)
  if name == "var": return np.var(a, ddof=1, **kd)
  if name == "cumsum": return np.cumsum(a, axis=axis)
  if name == "logsumexp":
    m = np.max(a, axis=kd["axis"], keepdims=True)
    out = np.log(np.exp(a - m).sum(axis=kd["axis"], keepdims=True)) + m
    return out if keepdim else out.reshape(np.sum(a, **kd).shape)
  m = a.max(axis=axis, keepdims=True) if a.size else a
  lse = np.log(np.exp(a - m).sum(axis=axis, keepdims=True)) + m
  return np.exp(a - lse) if name == "softmax" else a - lse


def finite_difference_gradients(program: Program) -> list[np.ndarray]:
  inputs = [_input_values(s) for s in program.steps if s.op == "input"]
  grads = []
  for x in inputs:
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
      def at(h):
        x[idx] += h
        try: return numpy_loss(program, inputs)
        finally: x[idx] -= h
      d1 = (at(H) - at(-H)) / (2 * H)
      d2 = (at(H / 2) - at(-H / 2)) / H
      g[idx] = (4 * d2 - d1) / 3
    grads.append(g)
  return grads


def compare_gradients(program: Program, got: list[np.ndarray], want: list[np.ndarray]) -> str | None:
  scale = max([1.0] + [float(np.abs(w).max()) for w in want if w.size])
  for k, (g, w) in enumerate(zip(got, want)):
    if g.shape != w.shape: return f"input {k}: gradient shape {g.shape} != {w.shape}"
    bad = ~(np.abs(g - w) <= 1e-6 * scale + 1e-5 * np.abs(w))
    if bad.any():
      return f"input {k}: gradient differs from finite differences\n teeny {g.tolist()}\n numeric {w.tolist()}"
  return None
