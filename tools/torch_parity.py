"""teeny against PyTorch at the values that break numerics: every function below is run in both, forward and
gradient, in float32 and float64, on special values (+-0, +-inf, NaN, 1e+-30, denormals, the edges of each
function's domain and of float32's range, ties, constant rows, rows of zeros), and every difference is reported.

  python tools/torch_parity.py                    # every family on LLVM
  python tools/torch_parity.py --family reduce nn --device CL --show 20

Two kinds of difference are counted apart:
  severe   teeny gives NaN or +-inf where PyTorch's answer is finite (a value or a gradient): the defect this
           project ranks worst. The exit status is 1 when there is one.
  ulp      both finite, more than --ulp units in the last place apart. Many are PyTorch's own error (its sigmoid
           and tanh gradients cancel at large x, its softplus returns x above 20): read them, don't chase them.
PyTorch is needed (it is not a dependency); the suite's tests pin what this found (tests/test_gradient_edges.py).
"""
from __future__ import annotations
import argparse, itertools, os, sys, warnings
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout
from teeny import Tensor  # noqa: E402

try:
  import torch
  import torch.nn.functional as F
except ImportError: raise SystemExit("torch_parity needs PyTorch (pip install torch)") from None

SPECIAL = [-np.inf, -1e30, -1e4, -104.0, -88.8, -20.0, -3.0, -1.0, -0.999, -0.5, -1e-3, -1e-30, -0.0, 0.0, 1e-38, 1e-30,
           1e-7, 0.5, 0.999, 1.0, 1.0001, 1.5, 3.0, 9.0, 30.0, 88.7, 89.0, 100.0, 1e4, 1e30, np.inf, np.nan]

# name: (teeny function, torch function), each of one tensor
UNARY = {
  "exp": (Tensor.exp, torch.exp), "log": (Tensor.log, torch.log), "log1p": (Tensor.log1p, torch.log1p),
  "expm1": (Tensor.expm1, torch.expm1), "sqrt": (Tensor.sqrt, torch.sqrt), "rsqrt": (Tensor.rsqrt, torch.rsqrt),
  "sin": (Tensor.sin, torch.sin), "cos": (Tensor.cos, torch.cos), "tan": (Tensor.tan, torch.tan),
  "asin": (Tensor.asin, torch.asin), "acos": (Tensor.acos, torch.acos), "atan": (Tensor.atan, torch.atan),
  "sinh": (Tensor.sinh, torch.sinh), "cosh": (Tensor.cosh, torch.cosh), "tanh": (Tensor.tanh, torch.tanh),
  "asinh": (Tensor.asinh, torch.asinh), "acosh": (Tensor.acosh, torch.acosh), "atanh": (Tensor.atanh, torch.atanh),
  "erf": (Tensor.erf, torch.erf), "sigmoid": (Tensor.sigmoid, torch.sigmoid), "relu": (Tensor.relu, torch.relu),
  "gelu": (Tensor.gelu, lambda p: F.gelu(p, approximate="tanh")), "gelu_exact": (lambda t: t.gelu("none"), F.gelu),
  "silu": (Tensor.silu, F.silu), "softplus": (Tensor.softplus, F.softplus), "mish": (Tensor.mish, F.mish),
  "elu": (Tensor.elu, F.elu), "selu": (Tensor.selu, F.selu), "celu": (Tensor.celu, F.celu),
  "hardswish": (Tensor.hardswish, F.hardswish), "hardsigmoid": (Tensor.hardsigmoid, F.hardsigmoid),
  "logsigmoid": (Tensor.logsigmoid, F.logsigmoid), "softsign": (Tensor.softsign, F.softsign),
  "abs": (Tensor.abs, torch.abs), "sign": (Tensor.sign, torch.sign), "square": (Tensor.square, torch.square),
  "round": (Tensor.round, torch.round), "floor": (Tensor.floor, torch.floor),
}
# name: (teeny, torch), each of two tensors of the same shape
BINARY = {
  "add": (lambda a, b: a + b, lambda a, b: a + b), "mul": (lambda a, b: a * b, lambda a, b: a * b),
  "div": (lambda a, b: a / b, lambda a, b: a / b), "pow": (lambda a, b: a ** b, lambda a, b: a ** b),
  "maximum": (lambda a, b: a.maximum(b), torch.maximum), "minimum": (lambda a, b: a.minimum(b), torch.minimum),
  "atan2": (lambda a, b: a.atan2(b), torch.atan2), "fmod": (lambda a, b: a.fmod(b), torch.fmod),
  "remainder": (lambda a, b: a % b, lambda a, b: a % b), "copysign": (lambda a, b: a.copysign(b), torch.copysign),
  "clamp_min": (lambda a, b: a.clamp(b, None), lambda a, b: torch.clamp(a, b, None)),
}
ROWS = [[1, 2, 3, 4], [0, 2, 3, 4], [0, 0, 3, 4], [-np.inf, 1, 2, 3], [np.inf, 1, 2, 3], [-np.inf] * 4, [np.inf, np.inf, 1, 1],
        [np.nan, 1, 2, 3], [1e30, 1e30, -1e30, 5], [-0.0, 0.0, -0.0, 0.0], [5, 5, 5, 5], [1e-30, 2e-30, -1e-30, 0], [100, -100, 50, 0]]
# name: (teeny, torch), each of a tensor whose rows are ROWS, reduced along axis 1
REDUCE = {
  "sum": (lambda t: t.sum(1), lambda p: p.sum(1)), "mean": (lambda t: t.mean(1), lambda p: p.mean(1)),
  "prod": (lambda t: t.prod(1), lambda p: p.prod(1)), "max": (lambda t: t.max(1), lambda p: p.amax(1)),
  "logsumexp": (lambda t: t.logsumexp(1), lambda p: p.logsumexp(1)), "softmax": (lambda t: t.softmax(1), lambda p: p.softmax(1)),
  "log_softmax": (lambda t: t.log_softmax(1), lambda p: p.log_softmax(1)), "var": (lambda t: t.var(1), lambda p: p.var(1)),
  "std": (lambda t: t.std(1), lambda p: p.std(1)), "norm": (lambda t: t.norm(dim=1), lambda p: p.norm(dim=1)),
  "normalize": (lambda t: t.normalize(axis=1), lambda p: F.normalize(p, dim=1)), "cumsum": (lambda t: t.cumsum(1), lambda p: p.cumsum(1)),
  "cumprod": (lambda t: t.cumprod(1), lambda p: p.cumprod(1)), "layernorm": (lambda t: t.layernorm(), lambda p: F.layer_norm(p, (4,))),
  "max_dim": (lambda t: t.max(dim=1).values, lambda p: p.max(dim=1).values), "min_dim": (lambda t: t.min(dim=1).values, lambda p: p.min(dim=1).values),
  "cummax": (lambda t: t.cummax(1).values, lambda p: p.cummax(1).values), "logcumsumexp": (lambda t: t.logcumsumexp(1), lambda p: p.logcumsumexp(1)),
  # max pooling with padding: a window of -inf elements ties the padding's -inf; its gradient must reach an element
  "max_pool_padded": (lambda t: t.reshape(1, 1, *t.shape).max_pool2d((1, 2), (1, 2), 1, (0, 1)),
                      lambda p: F.max_pool2d(p[None, None], (1, 2), (1, 2), (0, 1))),
  "max_pool_3x3": (lambda t: t.reshape(1, 1, *t.shape).max_pool2d(3, 2, 1, 1), lambda p: F.max_pool2d(p[None, None], 3, 2, 1)),
}

NN_ROWS = [r for r in ROWS if not np.isnan(r).any()]  # (PyTorch's BCE refuses NaN probabilities)
_TARGETS = np.array([0.0, 1.0, 0.5, 1.0], np.float32)  # (binary targets per column; classes per row below)
_CLASSES = np.arange(len(NN_ROWS)) % 4
_ATTEND = np.ones((len(NN_ROWS), len(NN_ROWS)), bool)
_ATTEND[3] = False  # (a query row that may attend to no key)
# name: (teeny, torch), each of a tensor whose rows are NN_ROWS: losses and layers
NN = {
  "binary_crossentropy": (lambda t: t.sigmoid().binary_crossentropy(Tensor(_TARGETS).expand(*t.shape)),
                          lambda p: F.binary_cross_entropy(p.sigmoid(), torch.tensor(_TARGETS, dtype=p.dtype).expand(*p.shape))),
  "bce_with_logits": (lambda t: t.binary_crossentropy_logits(Tensor(_TARGETS).expand(*t.shape)),
                      lambda p: F.binary_cross_entropy_with_logits(p, torch.tensor(_TARGETS, dtype=p.dtype).expand(*p.shape))),
  "cross_entropy": (lambda t: t.cross_entropy(Tensor(_CLASSES)), lambda p: F.cross_entropy(p, torch.tensor(_CLASSES))),
  # (log_softmax of a row holding -inf: another class's log-probability is -inf)
  "nll_loss": (lambda t: t.log_softmax(1).nll_loss(Tensor(_CLASSES)), lambda p: F.nll_loss(p.log_softmax(1), torch.tensor(_CLASSES))),
  "attention_masked_row": (lambda t: t.reshape(1, *t.shape).scaled_dot_product_attention(t.reshape(1, *t.shape), t.reshape(1, *t.shape), attn_mask=Tensor(_ATTEND)),
                           lambda p: F.scaled_dot_product_attention(p[None], p[None], p[None], attn_mask=torch.tensor(_ATTEND))),
}


def inputs(family: str, dtype) -> list[np.ndarray]:
  if family == "unary": return [np.array(SPECIAL, dtype)]
  if family == "binary":
    pairs = np.array(list(itertools.product(SPECIAL[::2], SPECIAL[::2])), dtype)
    return [pairs[:, 0].copy(), pairs[:, 1].copy()]
  return [np.array(NN_ROWS if family == "nn" else ROWS, dtype)]


def run_teeny(fn, arrays: list[np.ndarray], device: str) -> tuple[np.ndarray, list[np.ndarray]]:
  """fn's value and the gradient of its sum for each input (zeros where none reaches it)."""
  ts = [Tensor(a, device=device, requires_grad=True) for a in arrays]
  out = fn(*ts)
  out.sum().backward()
  return out.numpy(), [t.grad.numpy() if t.grad is not None else np.zeros_like(a) for t, a in zip(ts, arrays)]


def run_torch(fn, arrays: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
  ps = [torch.tensor(a, requires_grad=True) for a in arrays]
  out = fn(*ps)
  out.sum().backward()
  return out.detach().numpy(), [p.grad.numpy() if p.grad is not None else np.zeros_like(a) for p, a in zip(ps, arrays)]


def _place(i: tuple, arrays: list[np.ndarray], want: np.ndarray) -> str:
  """Where a difference is, in the inputs' terms: the input values of an elementwise result, the row of a reduction."""
  if not i: return "the whole input"
  if arrays[0].ndim == 1 and want.shape == arrays[0].shape: return "(" + ", ".join(repr(float(x[i])) for x in arrays) + ")"
  if want.shape[:1] == arrays[0].shape[:1]: return f"row {arrays[0][i[0]].tolist()}"
  return f"index {i}"


def differences(name: str, what: str, got: np.ndarray, want: np.ndarray, arrays: list[np.ndarray], ulp: float):
  """(kind, line) for each element where teeny's and PyTorch's answers differ."""
  eps, tiny = np.finfo(want.dtype).eps, np.finfo(want.dtype).tiny
  for i in np.ndindex(want.shape):
    a, b = float(got[i]), float(want[i])
    if (np.isnan(a) and np.isnan(b)) or a == b: continue
    line = f"{want.dtype} {name} {what} at {_place(i, arrays, want)}: teeny {a!r}, torch {b!r}"
    if np.isfinite(b) and not np.isfinite(a): yield "severe", line
    elif np.isfinite(a) and np.isfinite(b) and abs(a - b) > ulp * eps * max(abs(b), tiny):
      yield "ulp", line + f" ({abs(a - b) / (eps * max(abs(b), tiny)):.0f} ulp)"
    elif not (np.isfinite(a) and np.isfinite(b)): yield "ulp", line  # (both non-finite, or PyTorch's alone)


FAMILIES = {"unary": UNARY, "binary": BINARY, "reduce": REDUCE, "nn": NN}


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--family", choices=list(FAMILIES), nargs="*", default=list(FAMILIES))
  parser.add_argument("--device", default="LLVM")
  parser.add_argument("--ulp", type=float, default=16, help="report finite differences larger than this")
  parser.add_argument("--show", type=int, default=10, help="lines of each kind to print")
  args = parser.parse_args()
  warnings.filterwarnings("ignore")
  found = {"severe": [], "ulp": []}
  for family in args.family:
    for name, (teeny_fn, torch_fn) in FAMILIES[family].items():
      for dtype in (np.float32, np.float64):
        arrays = inputs(family, dtype)
        try: got = run_teeny(teeny_fn, arrays, args.device)
        except Exception as e:
          found["severe"].append(f"{np.dtype(dtype)} {name}: teeny raised {type(e).__name__}: {e}")
          continue
        want = run_torch(torch_fn, arrays)
        for what, a, b in [("value", got[0], want[0])] + [(f"grad {k}", g, w) for k, (g, w) in enumerate(zip(got[1], want[1]))]:
          for kind, line in differences(name, what, a, b, arrays, args.ulp): found[kind].append(line)
  for kind in ("severe", "ulp"):
    print(f"{kind}: {len(found[kind])}")
    for line in found[kind][:args.show]: print("  " + line)
  raise SystemExit(1 if found["severe"] else 0)


if __name__ == "__main__":
  main()
