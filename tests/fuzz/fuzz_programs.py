"""Random tensor programs for differential fuzzing: a hypothesis strategy that builds them, and two interpreters
that run them, teeny on a device and numpy as the reference.

A Program is a list of Steps; step k defines node k from earlier nodes (inputs, movement ops, elementwise ops
over broadcast operands, reductions, casts, where, matmul, contiguous and mid-program realizes). Its outputs
are realized together, so one schedule computes several of them.

How results are compared. Every node is either EXACT or not, decided when the program is built:
  - exact nodes hold values computed without rounding: ints and bools, and floats that stay integer-valued
    (inputs drawn as small integers, +-*, max, sums, floor division, ...). They must match numpy bit for bit,
    and only they may feed comparisons, casts to int, argmax or where's condition, so a rounding difference
    can never flip a discrete result. The numpy interpreter checks the promise (integer values within the
    dtype's exact range, no integer overflow) and rejects the program when it doesn't hold: that is a limit of
    the generator, not a teeny bug.
  - other float nodes (exp, sin, division, mean, ...) carry an error bound propagated op by op from the
    dtype's epsilon and the magnitudes involved (a forward error analysis). teeny must be within a small
    multiple of it. The bound grows with what the program does, never with what teeny returned.
Dtype promotion follows teeny.dtype.promote and promote_operands (PyTorch's rules, a 0-d tensor beside one with
dimensions included; tested on their own in tests/test_dtype.py).
"""
from __future__ import annotations
from dataclasses import dataclass, field
import math
from typing import Any
import numpy as np
from hypothesis import strategies as st
from teeny import Device, Tensor, dtypes
from teeny.dtype import DType, promote, promote_operands, promote_scalar, to_dtype

SIZES = (1, 1, 2, 3, 4, 5, 7, 0)    # sampled_from shrinks to the front: 1 first, and 0-size now and then
MAX_NUMEL = 2048                    # keeps every program small: the fuzzer is after wrong answers, not speed
INPUT_DTYPES = ("float32", "float32", "float32", "int32", "bool", "float16", "float64", "int64", "int8", "uint8")
CAST_TARGETS = ("float32", "float16", "float64", "int32", "int64", "int8", "uint8", "bool")
INT_SCALARS = (2, -1, 3, 0, 1, -3)
FLOAT_SCALARS = (2.0, 0.5, -1.5, -3.0, 0.25)
SCALED_RELATIVE_TOL = 4.0           # teeny must be within this many error bounds of numpy


class Unusable(Exception):
  """The generated program broke a promise the comparison relies on (an exact node rounded, an int
  overflowed): it says nothing about teeny, so the example is discarded."""


@dataclass(frozen=True)
class Step:
  op: str
  srcs: tuple[int, ...] = ()
  arg: Any = None
  exact: bool = True

  def __str__(self):
    args = ", ".join([f"%{s}" for s in self.srcs] + ([repr(self.arg)] if self.arg is not None else []))
    return f"{self.op}({args}){'' if self.exact else '  ~'}"


@dataclass
class Program:
  steps: list[Step] = field(default_factory=list)
  outputs: tuple[int, ...] = ()

  def __str__(self):
    lines = [f"  %{i} = {s}" for i, s in enumerate(self.steps)]
    return "\n".join(lines + [f"  outputs {', '.join(f'%{o}' for o in self.outputs)}"])


def is_float(name: str) -> bool: return dtypes.is_float(to_dtype(name))


def float_of(dt: DType) -> DType: return dt if dtypes.is_float(dt) else dtypes.float32


# ---------------------------------------------------------------- the generator

@dataclass(frozen=True)
class _Node:
  shape: tuple[int, ...]
  dtype: DType
  exact: bool


def _prime_factors(n: int) -> list[int]:
  out, p = [], 2
  while p * p <= n:
    while n % p == 0: out.append(p); n //= p
    p += 1
  return out + ([n] if n > 1 else [])


class _Builder:
  """Draws steps one at a time, knowing the shape, dtype and exactness of every node so far."""
  def __init__(self, draw):
    self.draw, self.program, self.nodes = draw, Program(), []

  def add(self, op: str, srcs, arg, shape, dtype: DType, exact: bool) -> int | None:
    if math.prod(shape) > MAX_NUMEL: return None
    self.program.steps.append(Step(op, tuple(srcs), arg, exact))
    self.nodes.append(_Node(tuple(shape), dtype, exact))
    return len(self.nodes) - 1

  def pick(self, ok=lambda n: True) -> int | None:
    """A node passing `ok`: usually the most recent one, so programs grow deep rather than wide."""
    choices = [i for i in reversed(range(len(self.nodes))) if ok(self.nodes[i])]
    if not choices: return None
    return choices[0] if self.coin(0.5) else self.draw(st.sampled_from(choices))

  def integers(self, lo, hi) -> int: return self.draw(st.integers(lo, hi))
  def choice(self, options): return self.draw(st.sampled_from(options))
  def coin(self, p_true=0.5) -> bool: return self.draw(st.integers(0, 99)) < p_true * 100

  # ---- inputs ----
  def new_input(self, shape=None, dtype: str | None = None) -> int | None:
    if shape is None: shape = tuple(self.choice(SIZES) for _ in range(self.integers(0, 4)))
    shape = tuple(shape)
    while math.prod(shape) > MAX_NUMEL: shape = shape[1:]  # dropping leading axes keeps it broadcastable
    dtype = dtype or self.choice(INPUT_DTYPES)
    # floats are integer-valued (exact) most of the time, or any real numbers in [-3, 3]
    exact = not is_float(dtype) or self.coin(0.6)
    seed = self.integers(0, 2**16)
    return self.add("input", (), (tuple(shape), dtype, seed), shape, to_dtype(dtype), exact)

  def broadcast_partner_shape(self, shape) -> tuple[int, ...]:
    """A shape that broadcasts with `shape`: some leading axes dropped, some axes 1, some 1s grown."""
    out = list(shape[self.integers(0, len(shape)):]) if shape else []
    for i, s in enumerate(out):
      kind = self.integers(0, 3)
      if kind == 1: out[i] = 1
      elif kind == 2 and s == 1: out[i] = self.choice((2, 3))
    if len(out) == len(shape) and self.coin(0.2): out = [self.choice((1, 2))] + out  # a new leading axis
    return tuple(out)

  def operand(self, i: int, allow_scalar=True):
    """Something to combine with node i: ("node", j) broadcastable with it, or ("scalar", python value)."""
    shape = self.nodes[i].shape
    if allow_scalar and self.coin(0.3):
      return ("scalar", self.choice(INT_SCALARS + FLOAT_SCALARS + (True,)))
    if self.coin(0.5):
      j = self.pick(lambda n: _broadcasts(n.shape, shape))
      if j is not None: return ("node", j)
    j = self.new_input(self.broadcast_partner_shape(shape))
    return ("node", j) if j is not None else ("scalar", 1)

  # ---- the steps ----
  def movement(self):
    i = self.pick()
    n = self.nodes[i]
    kind = self.choice(("reshape", "permute", "expand", "pad", "shrink", "flip", "getitem", "getitem"))
    shape, nd = n.shape, len(n.shape)
    if kind == "reshape":
      new = self.shape_with_numel(math.prod(shape))
      self.add("reshape", (i,), new, _reshape_result(shape, new), n.dtype, n.exact)
    elif kind == "permute" and nd > 1:
      order = tuple(self.draw(st.permutations(range(nd))))
      self.add("permute", (i,), order, tuple(shape[o] for o in order), n.dtype, n.exact)
    elif kind == "expand":
      new = tuple(self.choice((1, 2, 3)) if s == 1 else s for s in shape)
      new = tuple(self.choice((1, 2, 3)) for _ in range(self.integers(0, 2))) + new
      self.add("expand", (i,), new, new, n.dtype, n.exact)
    elif kind == "pad" and nd > 0:
      pads = []
      for s in shape:
        b, a = self.integers(-1 if s > 1 else 0, 2), self.integers(-1 if s > 1 else 0, 2)
        pads.append((b, a) if b + a > -s else (0, 0))
      value = self.pad_value(n)
      self.add("pad", (i,), (tuple(pads), value), tuple(s + b + a for s, (b, a) in zip(shape, pads)), n.dtype, n.exact)
    elif kind == "shrink" and nd > 0:
      arg = []
      for s in shape:
        b = self.integers(0, s)
        arg.append((b, self.integers(b, s)))
      self.add("shrink", (i,), tuple(arg), tuple(e - b for b, e in arg), n.dtype, n.exact)
    elif kind == "flip" and nd > 0:
      axes = tuple(sorted({a % nd for a in self.draw(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd))}))
      if self.coin(0.3): axes = tuple(a - nd for a in axes)  # negative axes too
      self.add("flip", (i,), axes, shape, n.dtype, n.exact)
    elif kind == "getitem":
      index = self.index_for(shape)
      self.add("getitem", (i,), index, np.empty(shape, dtype=np.int8)[index].shape, n.dtype, n.exact)

  def shape_with_numel(self, numel: int) -> tuple[int, ...]:
    if numel == 0:
      shape = [self.choice(SIZES) for _ in range(self.integers(1, 4))]
      shape[self.integers(0, len(shape) - 1)] = 0
      return tuple(shape)
    factors = _prime_factors(numel)
    shape = [1] * self.integers(1 if factors else 0, 4)
    for f in factors: shape[self.integers(0, len(shape) - 1)] *= f
    if shape and self.coin(0.2): shape[self.integers(0, len(shape) - 1)] = -1
    return tuple(shape)

  def index_for(self, shape) -> tuple:
    """A basic index: ints, slices with any step (negative too), None, maybe an Ellipsis."""
    index = []
    for s in shape:
      kind = self.integers(0, 3)
      if kind == 0 and s > 0: index.append(self.integers(-s, s - 1))
      elif kind == 3: index.append(slice(None))
      else:
        bound = st.one_of(st.none(), st.integers(-s - 2, s + 2))
        step = self.choice((None, 1, 2, -1, 3, -2, -3))
        index.append(slice(self.draw(bound), self.draw(bound), step))
      if self.coin(0.1): index.append(None)
    if index and self.coin(0.15):  # an Ellipsis stands for a run of full slices
      at = self.integers(0, len(index))
      index = index[:at] + [Ellipsis] + [i for i in index[at:] if i is None]
    return tuple(index)

  def pad_value(self, n: _Node):
    if self.coin(0.6): return 0
    if n.dtype == dtypes.bool: return True
    if not dtypes.is_float(n.dtype): return self.choice((1, -2, 3)) if not dtypes.is_unsigned(n.dtype) else 5
    return self.choice((1.0, -2.0)) if n.exact else self.choice((1.5, -0.25))

  def unary(self):
    i = self.pick()
    n = self.nodes[i]
    name = self.choice(tuple(UNARY))
    fn_dtype, needs_exact, keeps_exact = UNARY[name]
    out_dtype = fn_dtype(n.dtype)
    if out_dtype is None or (needs_exact and not n.exact): return
    self.add(name, (i,), None, n.shape, out_dtype, n.exact and keeps_exact)

  def binary(self):
    i = self.pick()
    name = self.choice(tuple(BINARY))
    other = self.operand(i)
    a = self.nodes[i]
    if other[0] == "scalar":
      value = other[1]
      dt, b_exact, shape = promote_scalar(a.dtype, value), _scalar_is_exact(value), a.shape
      srcs, arg = (i,), ("scalar", value, self.coin(0.3))
    else:
      b = self.nodes[other[1]]
      dt, b_exact, shape = promote_operands(a.dtype, len(a.shape), b.dtype, len(b.shape)), b.exact, _broadcast(a.shape, b.shape)
      srcs, arg = (i, other[1]), None
    out_dtype = BINARY[name](dt)
    if out_dtype is None: return
    exact = a.exact and b_exact
    if name in EXACT_ONLY and not exact: return
    self.add(name, srcs, arg, shape, out_dtype, exact and name not in INEXACT_RESULTS)

  def where(self):
    c = self.pick(lambda n: n.exact)
    if c is None: return
    cond = self.nodes[c]
    x = self.operand(c, allow_scalar=True)
    y = self.operand(c, allow_scalar=True)
    nodes = [self.nodes[v] for kind, v in (x, y) if kind == "node"]
    scalars = [v for kind, v in (x, y) if kind == "scalar"]
    if not _broadcasts(cond.shape, *[n.shape for n in nodes]): return
    if len(nodes) == 2: dt = promote_operands(nodes[0].dtype, len(nodes[0].shape), nodes[1].dtype, len(nodes[1].shape))
    elif len(nodes) == 1: dt = promote_scalar(nodes[0].dtype, scalars[0])
    elif all(isinstance(s, bool) for s in scalars): dt = dtypes.bool
    else: dt = dtypes.from_py(scalars)
    shape = _broadcast(cond.shape, *[n.shape for n in nodes])
    exact = all(n.exact for n in nodes) and all(_scalar_is_exact(s) for s in scalars)
    self.add("where", (c,) + tuple(v for kind, v in (x, y) if kind == "node"),
             tuple(v if kind == "scalar" else None for kind, v in (x, y)), shape, dt, exact)

  def reduce(self):
    i = self.pick()
    n = self.nodes[i]
    name = self.choice(tuple(REDUCES))
    nd = len(n.shape)
    one_axis = name in ("argmax", "argmin", "cumsum", "cummax", "softmax", "log_softmax")
    if nd == 0: axis = None if name not in ("cumsum", "cummax", "softmax", "log_softmax") else 0
    elif one_axis: axis = self.integers(-nd, nd - 1) if name not in ("argmax", "argmin") or self.coin(0.8) else None
    elif self.coin(0.3): axis = None
    elif self.coin(0.5): axis = self.integers(-nd, nd - 1)
    else: axis = tuple(sorted(set(self.draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd)))))
    keepdim = self.coin(0.4)
    axes = range(nd) if axis is None else ([axis % nd] if isinstance(axis, int) and nd else (axis if nd else []))
    reduced = math.prod(n.shape[a] for a in axes)
    fn_dtype, needs_exact, keeps_exact, needs_elements = REDUCES[name]
    out_dtype = fn_dtype(n.dtype)
    if out_dtype is None or (needs_exact and not n.exact) or (needs_elements and reduced == 0): return
    if name == "prod" and reduced > 8: return
    if name in ("var",) and reduced < 2: return
    if name in ("cumsum", "cummax", "softmax", "log_softmax"): shape = n.shape
    else: shape = tuple(1 if a in axes else s for a, s in enumerate(n.shape) if keepdim or a not in axes)
    self.add(name, (i,), (axis, keepdim), shape, out_dtype, n.exact and keeps_exact)

  def cast(self):
    i = self.pick()
    n = self.nodes[i]
    target = to_dtype(self.choice(CAST_TARGETS))
    if dtypes.is_float(n.dtype) and not dtypes.is_float(target):
      if not n.exact or dtypes.is_unsigned(target): return  # a float cast to an int must be an exact, in-range int
    self.add("cast", (i,), target.name, n.shape, target, n.exact)

  def matmul(self):
    i = self.pick(lambda n: len(n.shape) >= 1)
    if i is None: return
    a = self.nodes[i]
    dtype = self.choice(INPUT_DTYPES)
    m = self.choice(SIZES)
    if self.coin(0.5):  # a @ w
      k = a.shape[-1]
      j = self.new_input((k, m) if self.coin(0.7) else (k,), dtype)
      srcs = (i, j)
    else:  # w @ a
      k = a.shape[-2] if len(a.shape) >= 2 else a.shape[0]
      j = self.new_input((m, k) if self.coin(0.7) else (k,), dtype)
      srcs = (j, i)
    if j is None: return
    sa, sb = self.nodes[srcs[0]].shape, self.nodes[srcs[1]].shape
    try: shape = np.matmul(np.empty(sa, np.int8), np.empty(sb, np.int8)).shape
    except ValueError: return
    exact = a.exact and self.nodes[j].exact
    self.add("matmul", srcs, None, shape, promote(a.dtype, self.nodes[j].dtype), exact)

  def boundary(self):
    """A kernel boundary: contiguous(), a realize in the middle of the program, or a copy to another device and back."""
    i = self.pick()
    n = self.nodes[i]
    self.add(self.choice(("contiguous", "realize", "device_roundtrip")), (i,), None, n.shape, n.dtype, n.exact)

  def assign(self):
    """t = node.clone().realize(), then t.assign(value) in place, where the value may read t elsewhere."""
    i = self.pick()
    n = self.nodes[i]
    kind = self.choice(ASSIGN_VALUES)
    if kind in ("flip", "plus_flip", "shift") and (not n.shape or n.shape[0] == 0): kind = "double"
    srcs = (i,)
    if kind == "other":
      j = self.pick(lambda m: m.shape == n.shape and (m.exact or dtypes.is_float(n.dtype)))
      if j is None or j == i: return
      srcs, exact = (i, j), n.exact and self.nodes[j].exact
    else: exact = n.exact
    self.add("assign", srcs, kind, n.shape, n.dtype, exact)


  def composed(self):
    """The composed ops of the tensor API that build their own views: cat, tensor indexing, gather, pooling, conv."""
    getattr(self, self.choice(("cat", "index_tensor", "gather", "pool", "conv")))()

  def cat(self):
    i = self.pick(lambda n: len(n.shape) >= 1)
    if i is None: return
    a = self.nodes[i]
    d = self.integers(0, len(a.shape) - 1)
    want = a.shape[:d] + (self.choice(SIZES),) + a.shape[d + 1:]
    j = self.new_input(want)
    if j is None or self.nodes[j].shape != want: return  # (the gradient fuzzer's inputs may come out smaller)
    b = self.nodes[j]
    shape = a.shape[:d] + (a.shape[d] + b.shape[d],) + a.shape[d + 1:]
    self.add("cat", (i, j), d, shape, promote(a.dtype, b.dtype), a.exact and b.exact)

  def index_input(self, shape, size: int, negative: bool) -> int | None:
    """An int32 tensor of indices into an axis of `size`, all in range (maybe counting from the end)."""
    return self.add("index_input", (), (tuple(shape), size, negative, self.integers(0, 2**16)), shape, dtypes.int32, True)

  def index_tensor(self):
    """x[..., t] on one axis, t an in-range int tensor (fancy indexing, numpy's rules)."""
    i = self.pick(lambda n: len(n.shape) >= 1 and any(s > 0 for s in n.shape))
    if i is None: return
    a = self.nodes[i]
    axis = self.choice([k for k, s in enumerate(a.shape) if s > 0])
    t = self.index_input(tuple(self.choice((1, 2, 3, 4)) for _ in range(self.integers(1, 2))), a.shape[axis], self.coin(0.3))
    if t is None: return
    shape = np.empty(a.shape, np.int8)[(slice(None),) * axis + (np.zeros(self.nodes[t].shape, np.int64),)].shape
    self.add("index_tensor", (i, t), axis, shape, a.dtype, a.exact)

  def gather(self):
    i = self.pick(lambda n: len(n.shape) >= 1 and all(s > 0 for s in n.shape))
    if i is None: return
    a = self.nodes[i]
    d = self.integers(0, len(a.shape) - 1)
    shape = tuple(self.choice((1, 2, 3)) if k == d else self.integers(1, s) for k, s in enumerate(a.shape))
    t = self.index_input(shape, a.shape[d], False)
    if t is not None: self.add("gather", (i, t), d, shape, a.dtype, a.exact)

  def pool(self):
    i = self.pick(lambda n: len(n.shape) >= 2 and n.shape[-1] > 0 and n.shape[-2] > 0 and n.dtype != dtypes.bool)
    if i is None: return
    a = self.nodes[i]
    kind = self.choice(("max", "avg"))
    kernel = tuple(self.integers(1, 3) for _ in range(2))
    stride = tuple(self.integers(1, 3) for _ in range(2))
    dilation = tuple(self.integers(1, 2) for _ in range(2))
    padding = tuple(self.integers(0, k // 2) for k in kernel)
    out = tuple((s + 2 * p - d * (k - 1) - 1) // st + 1 for s, p, d, k, st in zip(a.shape[-2:], padding, dilation, kernel, stride))
    if min(out) < 1 or any(d * (k - 1) + 1 > s + 2 * p for s, p, d, k in zip(a.shape[-2:], padding, dilation, kernel)): return
    include_pad = self.coin(0.7)
    # (an int64 average pool stays int64, truncated toward zero, as torch's avg_pool2d, and exact; torch has no
    # other integer one, and teeny's gives floats)
    stays = kind == "max" or a.dtype == dtypes.int64
    dtype = a.dtype if stays else float_of(a.dtype)
    self.add(f"{kind}_pool", (i,), (kernel, stride, dilation, padding, include_pad), a.shape[:-2] + out, dtype, a.exact and stays)

  def conv(self):
    """conv2d of a float node seen as (N, C, H, W) with a new weight (and maybe bias), stride/padding/dilation/groups."""
    i = self.pick(lambda n: dtypes.is_float(n.dtype) and 0 < math.prod(n.shape) <= 256)
    if i is None: return
    a = self.nodes[i]
    numel = math.prod(a.shape)
    n_, c, h, w = self.four_dims(numel)
    x = self.add("reshape", (i,), (n_, c, h, w), (n_, c, h, w), a.dtype, a.exact)
    groups = self.choice([g for g in (1, 2, 3) if c % g == 0])
    cout = groups * self.integers(1, 2)
    kernel = (self.integers(1, min(3, h + 2)), self.integers(1, min(3, w + 2)))
    stride, dilation = (self.integers(1, 2), self.integers(1, 2)), (self.integers(1, 2), 1)
    padding = (self.integers(0, 1), self.integers(0, 1))
    out = tuple((s + 2 * p - d * (k - 1) - 1) // st + 1 for s, p, d, k, st in zip((h, w), padding, dilation, kernel, stride))
    if min(out) < 1: return
    wt = self.new_input((cout, c // groups) + kernel, a.dtype.name)
    bias = self.new_input((cout,), a.dtype.name) if self.coin(0.4) else None
    if wt is None or self.nodes[wt].shape != (cout, c // groups) + kernel: return
    srcs = (x, wt) + ((bias,) if bias is not None else ())
    exact = all(self.nodes[s].exact for s in srcs)
    self.add("conv", srcs, (groups, stride, dilation, padding), (n_, cout) + out, a.dtype, exact)

  def four_dims(self, numel: int) -> tuple[int, int, int, int]:
    dims = [1, 1, 1, 1]
    for f in _prime_factors(numel): dims[self.integers(0, 3)] *= f
    return tuple(dims)


ASSIGN_VALUES = ("flip", "plus_flip", "double", "shift", "other")
STEP_KINDS = (("movement",) * 7 + ("unary",) * 3 + ("binary",) * 4 + ("reduce",) * 3 +
              ("cast", "where", "matmul", "boundary", "assign") + ("composed",) * 3)


@st.composite
def programs(draw, min_steps: int = 2, max_steps: int = 12) -> Program:
  """A random program of min_steps to max_steps steps after its first input."""
  b = _Builder(draw)
  b.new_input()
  for _ in range(draw(st.integers(min_steps, max_steps))):
    getattr(b, draw(st.sampled_from(STEP_KINDS)))()
  b.program.outputs = _outputs(b.program, draw)
  return b.program


def _outputs(program: Program, draw) -> tuple[int, ...]:
  """The nodes nothing else uses (the latest 4 of them), plus maybe one intermediate: realized together."""
  used = {s for step in program.steps for s in step.srcs}
  last = len(program.steps) - 1
  sinks = [i for i in reversed(range(last + 1)) if i not in used and (program.steps[i].op != "input" or i == last)][:4]
  extra = draw(st.lists(st.integers(0, last), max_size=1))
  return tuple(dict.fromkeys(sinks + extra))


def _broadcast(*shapes):
  return tuple(np.broadcast_shapes(*shapes))


def _broadcasts(*shapes) -> bool:
  try: return math.prod(np.broadcast_shapes(*shapes)) <= MAX_NUMEL
  except ValueError: return False


def _reshape_result(shape, new) -> tuple[int, ...]:
  return np.empty(shape, dtype=np.int8).reshape(new).shape


def _scalar_is_exact(value) -> bool: return isinstance(value, (bool, int)) or float(value).is_integer()


# ---------------------------------------------------------------- op tables

def _any(dt): return dt
def _not_bool(dt): return None if dt == dtypes.bool else dt
def _floatish(dt): return float_of(dt)
def _int_or_bool(dt): return None if dtypes.is_float(dt) else dt
def _to_bool(dt): return dtypes.bool
def _truth(dt): return dtypes.uint8 if dt == dtypes.uint8 else dtypes.bool  # (torch.any/all keep uint8)
def _scalar_promoted(value): return lambda dt: promote_scalar(dt, value)
def _signed_clip(dt): return None if dtypes.is_unsigned(dt) else promote_scalar(dt, 0)

# name: (result dtype from the source dtype or None if not allowed, needs an exact source, result stays exact)
UNARY = {
  "neg": (_not_bool, False, True), "abs": (_any, False, True), "relu": (_scalar_promoted(0), False, True),
  "square": (_any, False, True), "clip": (_signed_clip, False, True), "sign": (_any, True, True),
  "exp": (_floatish, False, False), "log1": (_floatish, False, False), "sqrt1": (_floatish, False, False),
  "sin": (_floatish, False, False), "sigmoid": (_floatish, False, False), "tanh": (_floatish, False, False),
  "recip1": (_floatish, False, False), "floor_half": (_floatish, True, True), "round_half": (_floatish, True, True),
  "ceil_half": (_floatish, True, True), "logical_not": (_to_bool, True, True), "invert": (_int_or_bool, True, True),
}


def _arith(dt): return dt
def _no_bool_arith(dt): return None if dt == dtypes.bool else dt
def _true_div(dt): return float_of(dt)
def _cmp(dt): return dtypes.bool
def _bits(dt): return None if dtypes.is_float(dt) else dt


BINARY = {
  "add": _arith, "mul": _arith, "sub": _no_bool_arith, "maximum": _arith, "minimum": _arith, "div": _true_div,
  "floordiv": _no_bool_arith, "mod": _no_bool_arith, "lt": _cmp, "gt": _cmp, "le": _cmp, "ge": _cmp, "eq": _cmp,
  "ne": _cmp, "and": _bits, "or": _bits, "xor": _bits,
}
EXACT_ONLY = {"lt", "gt", "le", "ge", "eq", "ne", "floordiv", "mod"}  # discrete results need exact operands
INEXACT_RESULTS = {"div"}


def _sum_dtype(dt): return dtypes.int64 if not dtypes.is_float(dt) else dt
def _keep(dt): return dt


# name: (result dtype, needs an exact source, result stays exact, needs the reduced axes to be non-empty)
REDUCES = {
  "sum": (_sum_dtype, False, True, False), "max": (_keep, False, True, True), "min": (_keep, False, True, True),
  "mean": (_floatish, False, False, False), "prod": (_sum_dtype, True, True, False),
  "any": (_truth, True, True, False), "all": (_truth, True, True, False),
  "argmax": (lambda dt: dtypes.int32, True, True, True), "argmin": (lambda dt: dtypes.int32, True, True, True),
  "cumsum": (_sum_dtype, False, True, False), "cummax": (_keep, False, True, False),
  "logsumexp": (_floatish, False, False, True), "softmax": (_floatish, False, False, False),
  "log_softmax": (_floatish, False, False, False), "var": (_floatish, False, False, True),
}


# ---------------------------------------------------------------- teeny interpreter

def _f(x: Tensor) -> Tensor: return x if dtypes.is_float(x.dtype) else x.float()


T_UNARY = {
  "neg": lambda x: -x, "abs": Tensor.abs, "relu": Tensor.relu, "square": Tensor.square, "clip": lambda x: x.clip(-2, 3),
  "sign": Tensor.sign, "exp": lambda x: _f(x).clip(-6, 6).exp(), "log1": lambda x: (_f(x).abs() + 1).log(),
  "sqrt1": lambda x: (_f(x).abs() + 1).sqrt(), "sin": Tensor.sin, "sigmoid": Tensor.sigmoid, "tanh": Tensor.tanh,
  "recip1": lambda x: 1 / (_f(x).abs() + 1), "floor_half": lambda x: (_f(x) * 0.5).floor(),
  "round_half": lambda x: (_f(x) * 0.5).round(), "ceil_half": lambda x: (_f(x) * 0.5).ceil(),
  "logical_not": Tensor.logical_not, "invert": lambda x: ~x,
}


def _maximum(a, b): return a.maximum(b) if isinstance(a, Tensor) else b.maximum(a)
def _minimum(a, b): return a.minimum(b) if isinstance(a, Tensor) else b.minimum(a)


# python operators, so a scalar on the left goes through the reflected methods (__radd__, __rfloordiv__, ...)
T_BINARY = {
  "add": lambda a, b: a + b, "mul": lambda a, b: a * b, "sub": lambda a, b: a - b, "maximum": _maximum,
  "minimum": _minimum, "div": lambda a, b: a / b, "floordiv": lambda a, b: a // b, "mod": lambda a, b: a % b,
  "lt": lambda a, b: a < b, "gt": lambda a, b: a > b, "le": lambda a, b: a <= b, "ge": lambda a, b: a >= b,
  "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "and": lambda a, b: a & b, "or": lambda a, b: a | b,
  "xor": lambda a, b: a ^ b,
}


def _t_reduce(name, x: Tensor, axis, keepdim):
  if name == "cumsum": return x.cumsum(axis if axis is not None else 0)
  if name == "cummax": return x.cummax(axis if axis is not None else 0)[0]  # (the values; [1] is the indices)
  if name in ("softmax", "log_softmax"): return getattr(x, name)(axis if axis is not None else -1)
  return getattr(x, name)(axis, keepdim=keepdim)


def _input_array(arg) -> np.ndarray:
  shape, dtype, seed = arg
  rng = np.random.default_rng(seed)
  dt = to_dtype(dtype)
  if dt == dtypes.bool: return rng.integers(0, 2, shape).astype(np.bool_)
  if dtypes.is_unsigned(dt): return rng.integers(0, 10, shape).astype(dt.np)
  return rng.integers(-9, 10, shape).astype(dt.np)


def _real_input(arg) -> np.ndarray:
  shape, dtype, seed = arg
  return np.random.default_rng(seed).uniform(-3, 3, shape).astype(to_dtype(dtype).np)


def index_values(step: Step) -> np.ndarray:
  shape, size, negative, seed = step.arg
  return np.random.default_rng(seed).integers(-size if negative else 0, size, shape).astype(np.int32)


def input_value(step: Step) -> np.ndarray:
  return _input_array(step.arg) if step.exact else _real_input(step.arg)


def _teeny_assign(x: Tensor, other: Tensor | None, kind: str) -> Tensor:
  t = x.clone().realize()
  if kind == "flip": value = t.flip()
  elif kind == "plus_flip": value = t + t.flip()
  elif kind == "double": value = t * 2
  elif kind == "shift": value = t.pad(((1, 0),) + ((0, 0),) * (t.ndim - 1)).shrink(((0, t.shape[0]),) + tuple((0, s) for s in t.shape[1:]))
  else: value = other
  return t.assign(value)


def run_teeny(program: Program, device: str) -> list[np.ndarray]:
  """Build the program with teeny tensors (realizing where it says), realize the outputs together, read them."""
  nodes: list[Tensor] = []
  for step in program.steps:
    src = [nodes[s] for s in step.srcs]
    nodes.append(_teeny_step(step, src, device))
  outs = [nodes[o] for o in program.outputs]
  Tensor.realize_all(*outs)
  return [o.numpy() for o in outs]


def _teeny_step(step: Step, src: list[Tensor], device: str) -> Tensor:
  op, arg = step.op, step.arg
  if op == "input": return Tensor(input_value(step), device=device)
  if op == "index_input": return Tensor(index_values(step), device=device)
  if op == "cat": return src[0].cat(src[1], dim=arg)
  if op == "index_tensor": return src[0][(slice(None),) * arg + (src[1],)]
  if op == "gather": return src[0].gather(arg, src[1])
  if op in ("max_pool", "avg_pool"):
    kernel, stride, dilation, padding, include_pad = arg
    if op == "max_pool": return src[0].max_pool2d(kernel, stride, dilation, padding)
    return src[0].avg_pool2d(kernel, stride, dilation, padding, count_include_pad=include_pad)
  if op == "conv":
    groups, stride, dilation, padding = arg
    return src[0].conv2d(src[1], src[2] if len(src) > 2 else None, groups=groups, stride=stride, dilation=dilation, padding=padding)
  x = src[0] if src else None
  if op == "reshape": return x.reshape(arg)
  if op == "permute": return x.permute(arg)
  if op == "expand": return x.expand(arg)
  if op == "pad": return x.pad(arg[0], value=arg[1])
  if op == "shrink": return x.shrink(arg)
  if op == "flip": return x.flip(arg)
  if op == "getitem": return x[arg]
  if op == "contiguous": return x.contiguous()
  if op == "realize": return x.contiguous().realize()
  if op == "device_roundtrip":
    other = next((d for d in Device.available() if d != device), device)
    return x.to(other).to(device)
  if op == "assign": return _teeny_assign(x, src[1] if len(src) > 1 else None, arg)
  if op == "cast": return x.cast(arg)
  if op == "matmul": return src[0] @ src[1]
  if op in T_UNARY: return T_UNARY[op](x)
  if op in T_BINARY:
    if arg is None: return T_BINARY[op](src[0], src[1])
    _, value, reverse = arg
    return T_BINARY[op](value, x) if reverse else T_BINARY[op](x, value)
  if op == "where":
    it = iter(src[1:])
    x_, y_ = (v if v is not None else next(it) for v in arg)
    cond = src[0]
    # (a non-bool condition beside a bool x reads as PyTorch's x.where(mask, y): the truthy form is spelled out)
    if cond.dtype != dtypes.bool and isinstance(x_, Tensor) and x_.dtype == dtypes.bool: cond = cond != 0
    return cond.where(x_, y_)
  if op in REDUCES: return _t_reduce(op, x, *arg)
  raise ValueError(f"unknown step {op}")


# ---------------------------------------------------------------- numpy reference with error bounds

@dataclass
class Ref:
  """A node's reference value and, for inexact float nodes, a bound on its absolute error."""
  value: np.ndarray
  err: float = 0.0


def _eps(dt) -> float: return float(np.finfo(dt).eps) if np.issubdtype(dt, np.floating) else 0.0


def _mag(a: np.ndarray) -> float:
  """The largest finite absolute value (0 for empty or all-non-finite arrays)."""
  if a.size == 0 or a.dtype == np.bool_: return float(a.size > 0)
  v = np.abs(a.astype(np.float64))
  v = v[np.isfinite(v)]
  return float(v.max()) if v.size else 0.0


def _np_promote_pair(a: np.ndarray, b, scalar: bool):
  """Both operands in the dtype teeny computes in (PyTorch's promotion)."""
  if scalar:
    dt = promote_scalar(dtypes.from_np(a.dtype), b)
    return a.astype(dt.np), np.array(b).astype(dt.np)  # astype wraps (-1 -> 255 for uint8) like teeny's constants
  dt = promote_operands(dtypes.from_np(a.dtype), a.ndim, dtypes.from_np(b.dtype), np.ndim(b))
  return a.astype(dt.np), b.astype(dt.np)


def _in_float(fn, x: np.ndarray, out_dt) -> np.ndarray:
  """teeny's composed float16 math runs in float32 and rounds once."""
  with np.errstate(all="ignore"):
    return fn(x.astype(np.float32) if out_dt == np.float16 else x.astype(out_dt)).astype(out_dt)


def _np_unary(name: str, x: Ref) -> Ref:
  a, e = x.value, x.err
  fdt = float_of(dtypes.from_np(a.dtype)).np.type
  eps = _eps(fdt)
  with np.errstate(all="ignore"):
    if name == "neg": return Ref(-a, e)
    if name == "abs": return Ref(np.abs(a) if a.dtype != np.bool_ else a, e)
    if name == "relu":
      a, zero = _np_promote_pair(a, 0, True)
      return Ref(np.maximum(a, zero), e)
    if name == "square":
      out = a * a
      return Ref(out, 2 * _mag(a) * e + e * e + _eps(out.dtype) * _mag(out))
    if name == "clip":
      a, _ = _np_promote_pair(a, 0, True)
      return Ref(np.minimum(np.maximum(a, np.array(-2).astype(a.dtype)), np.array(3).astype(a.dtype)), e)
    if name == "sign":  # (torch's sign of NaN is 0, where numpy's is NaN)
      return Ref(a if a.dtype == np.bool_ else np.where(np.isnan(a), 0, np.sign(a)).astype(a.dtype), 0.0)
    if name in ("floor_half", "round_half", "ceil_half"):
      half = a.astype(fdt) * fdt(0.5)
      fn = {"floor_half": np.floor, "round_half": np.round, "ceil_half": np.ceil}[name]
      return Ref(fn(half).astype(fdt), 0.0)
    if name == "logical_not": return Ref(a == 0, 0.0)
    if name == "invert": return Ref(~a, 0.0)
    # inexact float math: rounding of the argument, the function's own few ulps, and the propagated error
    if name == "exp":
      out = _in_float(lambda v: np.exp(np.clip(v, -6, 6)), a, fdt)
      return Ref(out, _mag(out) * (e + 4 * eps * (_mag(a) + 4)))
    if name == "log1":
      out = np.log(np.abs(a.astype(fdt)) + fdt(1)).astype(fdt)
      return Ref(out, e + eps * (_mag(a) + 1) + 8 * eps * _mag(out))
    if name == "sqrt1":
      out = np.sqrt(np.abs(a.astype(fdt)) + fdt(1)).astype(fdt)
      return Ref(out, 0.5 * (e + eps * (_mag(a) + 1)) + 8 * eps * _mag(out))
    if name == "sin":
      out = _in_float(np.sin, a, fdt)
      return Ref(out, e + 8 * eps * (_mag(a) + 1))
    if name == "sigmoid":
      out = _in_float(lambda v: 1 / (1 + np.exp(-v)), a, fdt)
      return Ref(out, 0.25 * e + 8 * eps * (1 + 0.25 * _mag(a)))
    if name == "tanh":
      out = _in_float(np.tanh, a, fdt)
      return Ref(out, e + 16 * eps * (1 + _mag(a)))
    if name == "recip1":
      d = np.abs(a.astype(fdt)) + fdt(1)
      out = (fdt(1) / d).astype(fdt)
      return Ref(out, e + 2 * eps * (_mag(a) + 1) * _mag(out) + 4 * eps)
  raise ValueError(name)


def _np_binary(name: str, a: np.ndarray, b: np.ndarray, ea: float, eb: float) -> Ref:
  with np.errstate(all="ignore"):
    if name in ("add", "sub", "mul", "maximum", "minimum") and a.dtype == np.bool_:
      out = {"add": a | b, "mul": a & b, "maximum": a | b, "minimum": a & b}[name]
      return Ref(np.asarray(out), 0.0)
    if name == "add": out = a + b
    elif name == "sub": out = a - b
    elif name == "mul": out = a * b
    elif name == "maximum": return Ref(np.maximum(a, b), max(ea, eb))
    elif name == "minimum": return Ref(np.minimum(a, b), max(ea, eb))
    elif name == "div":
      fdt = float_of(dtypes.from_np(a.dtype)).np.type
      a, b = a.astype(fdt), b.astype(fdt)
      out = a / b
      mb = _min_abs(b)
      if mb == 0: raise Unusable("true division by zero in an inexact node")
      return Ref(out, ea / mb + _mag(a) * eb / (mb * mb) + 4 * _eps(fdt) * _mag(out))
    elif name == "floordiv": return Ref(np.floor_divide(a, b), 0.0)
    elif name == "mod": return Ref(np.mod(a, b), 0.0)
    elif name in ("lt", "gt", "le", "ge", "eq", "ne"):
      fn = {"lt": np.less, "gt": np.greater, "le": np.less_equal, "ge": np.greater_equal, "eq": np.equal, "ne": np.not_equal}
      return Ref(np.asarray(fn[name](a, b)), 0.0)
    elif name in ("and", "or", "xor"): return Ref(np.asarray({"and": a & b, "or": a | b, "xor": a ^ b}[name]), 0.0)
    else: raise ValueError(name)
  out = np.asarray(out)
  if name == "mul": err = ea * _mag(b) + eb * _mag(a) + ea * eb
  else: err = ea + eb
  return Ref(out, err + _eps(out.dtype) * _mag(out))


def _min_abs(b: np.ndarray) -> float:
  return float(np.abs(b.astype(np.float64)).min()) if b.size else 1.0


def _wide_int_check(name: str, a: np.ndarray, b, out: np.ndarray):
  """int32/int64 arithmetic must not overflow in a program (OpenCL C leaves signed overflow undefined; narrower
  ints compute in int and wrap when stored, unsigned ints wrap by definition): recompute with Python ints and
  reject the program when the results differ."""
  if out.dtype not in (np.int32, np.int64) or name not in ("add", "sub", "mul", "neg", "square", "abs"): return
  wa = a.astype(object)
  wb = b.astype(object) if isinstance(b, np.ndarray) else b
  wide = {"add": lambda: wa + wb, "sub": lambda: wa - wb, "mul": lambda: wa * wb, "neg": lambda: -wa,
          "square": lambda: wa * wa, "abs": lambda: np.abs(wa)}[name]()
  if not np.array_equal(np.asarray(wide, dtype=object), out.astype(object)): raise Unusable(f"integer overflow in {name}")


def _np_reduce(name: str, x: Ref, axis, keepdim) -> Ref:
  a, e = x.value, x.err
  nd = a.ndim
  axes = None if axis is None or nd == 0 else ((axis,) if isinstance(axis, int) else tuple(axis))
  n = a.size if axes is None else math.prod(a.shape[i] for i in axes)
  kd = dict(axis=axes, keepdims=keepdim)
  fdt = float_of(dtypes.from_np(a.dtype)).np.type
  with np.errstate(all="ignore"):
    if name == "sum":
      if a.dtype == np.float16: out = a.astype(np.float32).sum(**kd).astype(np.float16)  # float32 accumulator
      elif np.issubdtype(a.dtype, np.floating): out = a.sum(**kd)
      else:
        out = a.astype(np.int64).sum(**kd)
        if not np.array_equal(a.astype(object).sum(**kd), out.astype(object)): raise Unusable("integer overflow in sum")
      _check_accumulation(a, axes, keepdim)
      sumabs = _mag(np.abs(a.astype(np.float64)).sum(**kd))
      return Ref(np.asarray(out), n * e + (n + 1) * _eps(out.dtype) * sumabs)
    if name in ("max", "min"):
      return Ref(np.asarray(getattr(np, name)(a, **kd)), e)
    if name == "mean":
      s = a.astype(np.float32).sum(**kd).astype(fdt) if fdt == np.float16 else a.astype(fdt).sum(**kd)
      out = np.asarray(s * fdt(1 / n) if n else s * fdt(np.nan)).astype(fdt)
      sumabs = _mag(np.abs(a.astype(np.float64)).sum(**kd))
      return Ref(out, (n * e + (n + 2) * _eps(fdt) * sumabs) / max(n, 1) + 2 * _eps(fdt) * _mag(out))
    if name == "prod":
      out = a.astype(np.float32).prod(**kd).astype(np.float16) if a.dtype == np.float16 else a.astype(_sum_dtype(dtypes.from_np(a.dtype)).np).prod(**kd)
      if not np.issubdtype(a.dtype, np.floating) and not np.array_equal(a.astype(object).prod(**kd), np.asarray(out).astype(object)):
        raise Unusable("integer overflow in prod")
      return Ref(np.asarray(out), 0.0)
    if name in ("any", "all"):  # (a uint8 tensor gives uint8, as torch.any and torch.all do)
      return Ref(np.asarray(getattr(np, name)(a, **kd)).astype(np.uint8 if a.dtype == np.uint8 else np.bool_), 0.0)
    if name in ("argmax", "argmin"):
      fn = getattr(np, name)
      if axis is None or nd == 0:
        out = np.asarray(fn(a.reshape(-1)) if nd else 0)
        if keepdim: out = out.reshape((1,) * nd)
      else: out = fn(a, axis=axis, keepdims=keepdim)
      return Ref(np.asarray(out).astype(np.int32), 0.0)
    ax = 0 if nd == 0 else axis
    if name == "cumsum":
      if nd == 0: return _np_reduce("sum", x, None, False)
      if a.dtype == np.float16: out = np.cumsum(a.astype(np.float32), axis=ax).astype(np.float16)
      elif np.issubdtype(a.dtype, np.floating): out = np.cumsum(a, axis=ax)
      else: out = np.cumsum(a.astype(np.int64), axis=ax)
      _check_accumulation(a, (ax % nd,), True)
      n = a.shape[ax]
      return Ref(out, n * e + (n + 1) * _eps(out.dtype) * _mag(np.abs(a.astype(np.float64)).sum(axis=ax)))
    if name == "cummax":
      return Ref(a if nd == 0 else np.maximum.accumulate(a, axis=ax), e)
    af = a.astype(np.float64)
    eps, mx = _eps(fdt), _mag(a)
    if name == "logsumexp":
      m = np.max(af, **dict(axis=axes, keepdims=True))
      out = (np.log(np.exp(af - m).sum(**kd)) + (m if keepdim else np.squeeze(m, axis=axes))).astype(fdt)
      return Ref(np.asarray(out), 2 * e + eps * (8 * mx + 4 * n + 16 * _mag(out)))
    if name in ("softmax", "log_softmax"):
      if nd == 0: af, ax = af.reshape(1), 0
      m = af.max(axis=ax, keepdims=True) if af.size else af
      sh = af - m
      lse = np.log(np.exp(sh).sum(axis=ax, keepdims=True))
      out = (np.exp(sh - lse) if name == "softmax" else sh - lse).astype(fdt).reshape(a.shape)
      return Ref(out, 4 * e + eps * (8 * mx + 4 * a.shape[ax % max(nd, 1)] + 16 * _mag(out)) if nd else 4 * e + 16 * eps)
    if name == "var":
      mean = af.mean(axis=axes, keepdims=True)
      out = (((af - mean) ** 2).sum(**kd) / (n - 1)).astype(fdt)
      return Ref(np.asarray(out), 4 * (mx + 1) * (e + n * eps * mx) + 8 * eps * _mag(out))
  raise ValueError(name)


def _check_accumulation(a: np.ndarray, axes, keepdim):
  """Sums of an exact float node must be exact in any order: every partial sum fits the accumulator."""
  if not np.issubdtype(a.dtype, np.floating): return
  limit = 2.0 ** (53 if a.dtype == np.float64 else 24)
  if _mag(np.abs(a.astype(np.float64)).sum(axis=axes, keepdims=keepdim)) > limit: raise Unusable("sum not exact")


def _check_exact(ref: Ref):
  """An exact float node holds integers its dtype represents exactly."""
  a = ref.value
  if not np.issubdtype(a.dtype, np.floating): return
  finite = a[np.isfinite(a)].astype(np.float64)
  limit = 2.0 ** {np.dtype(np.float16): 11, np.dtype(np.float32): 24, np.dtype(np.float64): 53}[a.dtype]
  if finite.size and (np.any(finite != np.trunc(finite)) or np.abs(finite).max() > limit): raise Unusable("exact node rounded")


def _check_inexact(ref: Ref):
  a = ref.value
  if a.size and not np.all(np.isfinite(a)): raise Unusable("an inexact node left the finite range")
  if a.size and np.issubdtype(a.dtype, np.floating) and _mag(a) > float(np.finfo(a.dtype).max) / 64: raise Unusable("close to overflow")


def run_numpy(program: Program) -> list[Ref]:
  refs: list[Ref] = []
  for step in program.steps:
    src = [refs[s] for s in step.srcs]
    ref = _numpy_step(step, src)
    ref.value = np.asarray(ref.value)
    if step.exact: _check_exact(ref)
    elif np.issubdtype(ref.value.dtype, np.floating): _check_inexact(ref)
    refs.append(ref)
  return [refs[o] for o in program.outputs]


def _numpy_step(step: Step, src: list[Ref]) -> Ref:
  op, arg = step.op, step.arg
  if op == "input": return Ref(input_value(step), 0.0)
  if op == "index_input": return Ref(index_values(step), 0.0)
  if op == "cat":
    l, r = _np_promote_pair(src[0].value, src[1].value, False)
    return Ref(np.concatenate([l, r], axis=arg), max(src[0].err, src[1].err))
  if op == "index_tensor": return Ref(np.asarray(src[0].value[(slice(None),) * arg + (src[1].value,)]), src[0].err)
  if op == "gather":
    a, idx = src[0].value, src[1].value
    crop = tuple(slice(None) if k == arg else slice(0, s) for k, s in enumerate(idx.shape))
    return Ref(np.take_along_axis(a[crop], idx.astype(np.int64), axis=arg), src[0].err)
  if op in ("max_pool", "avg_pool"): return _np_pool(op, src[0], *arg)
  if op == "conv": return _np_conv(src, *arg, exact=step.exact)
  x = src[0] if src else None
  a = x.value if x is not None else None
  if op == "reshape": return Ref(a.reshape(arg), x.err)
  if op == "permute": return Ref(np.transpose(a, arg), x.err)
  if op == "expand": return Ref(np.broadcast_to(a, arg).copy(), x.err)
  if op == "pad":
    pads, value = arg
    crop = tuple(slice(max(-b, 0), s - max(-e, 0)) for (b, e), s in zip(pads, a.shape))
    grow = tuple((max(b, 0), max(e, 0)) for b, e in pads)
    return Ref(np.pad(a[crop], grow, constant_values=np.array(value).astype(a.dtype)), x.err)
  if op == "shrink": return Ref(a[tuple(slice(b, e) for b, e in arg)], x.err)
  if op == "flip": return Ref(np.flip(a, arg), x.err)
  if op == "getitem": return Ref(np.asarray(a[arg]).copy(), x.err)
  if op in ("contiguous", "realize", "device_roundtrip"): return x
  if op == "assign": return _np_assign(x, src[1] if len(src) > 1 else None, arg)
  if op == "cast":
    target = to_dtype(arg).np
    if np.issubdtype(a.dtype, np.floating) and not np.issubdtype(target, np.floating) and target != np.bool_:
      info = np.iinfo(target)
      if a.size and (np.nanmin(a) < info.min or np.nanmax(a) > info.max or not np.all(np.isfinite(a))):
        raise Unusable("float to int cast out of range")
    with np.errstate(all="ignore"): out = a.astype(target)
    return Ref(out, x.err + _eps(target) * _mag(out))
  if op == "matmul": return _np_matmul(src[0], src[1], step.exact)
  if op in UNARY:
    ref = _np_unary(op, x)
    if op in ("neg", "square", "abs"): _wide_int_check(op, a, None, np.asarray(ref.value))
    return ref
  if op in BINARY:
    if arg is None: l, r, el, er = src[0].value, src[1].value, src[0].err, src[1].err
    else:
      _, value, reverse = arg
      l, r = _np_promote_pair(a, value, True)
      el, er = x.err, 0.0
      if reverse: l, r, el, er = r, l, er, el
    if arg is None: l, r = _np_promote_pair(l, r, False)
    if op == "div" and r.size and not np.issubdtype(r.dtype, np.floating) and np.any(r == 0): raise Unusable("int / 0")
    ref = _np_binary(op, l, r, el, er)
    _wide_int_check(op, l, r, np.asarray(ref.value))
    return ref
  if op == "where": return _np_where(src, arg)
  if op in REDUCES: return _np_reduce(op, x, *arg)
  raise ValueError(op)


def _np_assign(x: Ref, other: Ref | None, kind: str) -> Ref:
  a = x.value
  with np.errstate(all="ignore"):
    if kind == "flip": value = np.flip(a)
    elif kind == "shift": value = np.concatenate([np.zeros_like(a[:1]), a[:-1]])
    elif kind == "other": value = other.value
    else:
      l, r = (_np_promote_pair(a, 2, True) if kind == "double" else _np_promote_pair(a, np.flip(a), False))
      value = _np_binary("mul" if kind == "double" else "add", l, r, x.err, 0.0 if kind == "double" else x.err).value
      _wide_int_check("mul" if kind == "double" else "add", l, r, np.asarray(value))
    out = np.asarray(value).astype(a.dtype)
  err = max(x.err, other.err if other is not None else 0.0) * 2 + _eps(a.dtype) * _mag(out)
  return Ref(out, err)


def _windows(a: np.ndarray, kernel, stride, dilation, padding, fill):
  """Every window offset's strided slice of the padded last two axes: [(offset, (..., OH, OW) array)]."""
  pads = [(0, 0)] * (a.ndim - 2) + [(p, p) for p in padding]
  xp = np.pad(a, pads, constant_values=fill)
  out = [(s + 2 * p - d * (k - 1) - 1) // st + 1 for s, p, d, k, st in zip(a.shape[-2:], padding, dilation, kernel, stride)]
  views = []
  for i in range(kernel[0]):
    for j in range(kernel[1]):
      r0, c0 = i * dilation[0], j * dilation[1]
      views.append(((i, j), xp[..., r0:r0 + (out[0] - 1) * stride[0] + 1:stride[0], c0:c0 + (out[1] - 1) * stride[1] + 1:stride[1]]))
  return views


def _np_pool(op: str, x: Ref, kernel, stride, dilation, padding, include_pad) -> Ref:
  a = x.value
  if op == "max_pool":
    lowest = -np.inf if np.issubdtype(a.dtype, np.floating) else np.iinfo(a.dtype).min
    return Ref(np.maximum.reduce([v for _, v in _windows(a, kernel, stride, dilation, padding, np.array(lowest).astype(a.dtype))]), x.err)
  if a.dtype == np.int64:  # torch: the window's sum over its count in integers, truncated
    total = np.add.reduce([v for _, v in _windows(a.astype(object), kernel, stride, dilation, padding, 0)])
    if include_pad: count = kernel[0] * kernel[1]
    else: count = np.add.reduce([v for _, v in _windows(np.ones(a.shape[-2:], np.int64), kernel, stride, dilation, padding, 0)])
    exact = np.vectorize(lambda t, c: abs(t) // c * (1 if t >= 0 else -1), otypes=[object])(total, count)
    if any(not np.iinfo(a.dtype).min <= t <= np.iinfo(a.dtype).max for t in np.asarray(total).ravel()):
      raise Unusable("integer overflow in avg_pool's sum")
    return Ref(np.asarray(exact).astype(a.dtype), 0.0)
  fdt = float_of(dtypes.from_np(a.dtype)).np.type
  wide = a.astype(np.float64)
  total = np.add.reduce([v for _, v in _windows(wide, kernel, stride, dilation, padding, 0.0)])
  if include_pad: count = float(kernel[0] * kernel[1])
  else: count = np.add.reduce([v for _, v in _windows(np.ones(a.shape[-2:]), kernel, stride, dilation, padding, 0.0)])
  out = (total / count).astype(fdt)
  k = kernel[0] * kernel[1]
  sumabs = _mag(np.add.reduce([np.abs(v) for _, v in _windows(wide, kernel, stride, dilation, padding, 0.0)]))
  return Ref(out, x.err + (k + 4) * _eps(fdt) * (sumabs + _mag(out)))


def _np_conv(src: list[Ref], groups, stride, dilation, padding, exact: bool) -> Ref:
  """Cross-correlation like PyTorch, products in the tensor's dtype (float16 summed in float32, like teeny)."""
  x, w = src[0].value, src[1].value
  n, c, cout = x.shape[0], x.shape[1], w.shape[0]
  cin_g, cout_g = c // groups, cout // groups
  acc = np.float32 if x.dtype == np.float16 else x.dtype
  total, sumabs = 0, 0
  with np.errstate(all="ignore"):
    for (i, j), win in _windows(x, w.shape[2:], stride, dilation, padding, x.dtype.type(0)):
      wins = win.reshape(n, groups, cin_g, *win.shape[2:])
      taps = w[:, :, i, j].reshape(groups, cout_g, cin_g)
      prods = wins[:, :, None] * taps[None, :, :, :, None, None]     # (n, g, cout_g, cin_g, oh, ow) in the dtype
      if exact: _check_exact(Ref(prods))
      total = total + prods.astype(acc).sum(axis=3)
      sumabs = sumabs + np.abs(prods.astype(np.float64)).sum(axis=3)
  out = np.asarray(total).reshape(n, cout, *np.asarray(total).shape[-2:])
  if len(src) > 2: out = out + src[2].value.astype(acc).reshape(1, cout, 1, 1)
  out = out.astype(x.dtype)
  k = cin_g * w.shape[2] * w.shape[3]
  if exact and _mag(np.asarray(sumabs)) > 2.0 ** (53 if x.dtype == np.float64 else 24): raise Unusable("conv not exact")
  err = k * (src[0].err * _mag(w) + src[1].err * _mag(x)) + (k + 3) * _eps(x.dtype) * (_mag(np.asarray(sumabs)) + _mag(out))
  if len(src) > 2: err += src[2].err
  return Ref(out, err)


def _np_where(src: list[Ref], arg) -> Ref:
  cond = src[0].value.astype(np.bool_)
  it = iter(src[1:])
  ops = [v if v is not None else next(it) for v in arg]
  nodes = [o for o in ops if isinstance(o, Ref)]
  scalars = [o for o in ops if not isinstance(o, Ref)]
  if len(nodes) == 2:
    x, y = nodes[0].value, nodes[1].value
    dt = promote_operands(dtypes.from_np(x.dtype), np.ndim(x), dtypes.from_np(y.dtype), np.ndim(y))
  elif len(nodes) == 1: dt = promote_scalar(dtypes.from_np(nodes[0].value.dtype), scalars[0])
  elif all(isinstance(s, bool) for s in scalars): dt = dtypes.bool
  else: dt = dtypes.from_py(scalars)
  vals = [o.value.astype(dt.np) if isinstance(o, Ref) else np.array(o).astype(dt.np) for o in ops]
  err = max([o.err for o in nodes], default=0.0)
  return Ref(np.where(cond, vals[0], vals[1]), err)


def _np_matmul(x: Ref, y: Ref, exact: bool) -> Ref:
  """teeny's matmul as documented: products in the promoted dtype, summed over k (float16 in a float32
  accumulator, bools with OR)."""
  a, b = _np_promote_pair(x.value, y.value, False)
  a2 = a[None] if a.ndim == 1 else a
  b2 = b[:, None] if b.ndim == 1 else b
  with np.errstate(all="ignore"):
    prods = a2[..., :, :, None] * b2[..., None, :, :]
    if exact: _check_exact(Ref(prods))
    if a.dtype == np.bool_: out = prods.any(axis=-2)
    elif a.dtype == np.float16: out = prods.astype(np.float32).sum(axis=-2).astype(np.float16)
    else: out = prods.sum(axis=-2, dtype=a.dtype)
  if a.ndim == 1: out = out[..., 0, :]
  if b.ndim == 1: out = out[..., 0]
  if a.dtype in (np.int32, np.int64):
    wide = (a2.astype(object)[..., :, :, None] * b2.astype(object)[..., None, :, :]).sum(axis=-2)
    if a.ndim == 1: wide = wide[..., 0, :]
    if b.ndim == 1: wide = wide[..., 0]
    if not np.array_equal(np.asarray(wide, dtype=object), np.asarray(out).astype(object)): raise Unusable("integer overflow in matmul")
  if not np.issubdtype(a.dtype, np.floating): return Ref(np.asarray(out), 0.0)
  sumabs = _mag(np.abs(prods.astype(np.float64)).sum(axis=-2))
  if exact and sumabs > 2.0 ** (53 if a.dtype == np.float64 else 24): raise Unusable("matmul not exact")
  k = a2.shape[-1]
  err = k * (x.err * _mag(b) + y.err * _mag(a) + x.err * y.err) + (k + 2) * _eps(a.dtype) * sumabs
  return Ref(np.asarray(out), err)


# ---------------------------------------------------------------- comparing

def compare(program: Program, got: list[np.ndarray], want: list[Ref]) -> str | None:
  """None when every output matches, else a message saying which one and how."""
  for o, g, w in zip(program.outputs, got, want):
    step = program.steps[o]
    wv = w.value
    if g.shape != wv.shape: return f"%{o}: shape {g.shape} != numpy's {wv.shape}"
    if g.dtype != wv.dtype: return f"%{o}: dtype {g.dtype} != numpy's {wv.dtype}"
    if step.exact or not np.issubdtype(wv.dtype, np.floating):
      if not np.array_equal(g, wv, equal_nan=np.issubdtype(wv.dtype, np.floating)):
        return f"%{o}: exact values differ\n teeny {g.tolist()}\n numpy {wv.tolist()}"
      continue
    gf, wf = g.astype(np.float64), wv.astype(np.float64)
    tol = SCALED_RELATIVE_TOL * w.err + 4 * _eps(wv.dtype) * np.abs(wf) + 1e-300
    bad = ~(np.abs(gf - wf) <= tol)
    if bad.any():
      at = tuple(int(i[0]) for i in np.nonzero(np.atleast_1d(bad))) if bad.ndim else ()
      return (f"%{o}: off by {np.abs(gf - wf)[at]:.3g} at {at} (bound {w.err:.3g})\n teeny {g.tolist()}\n numpy {wv.tolist()}")
  return None
