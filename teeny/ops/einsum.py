"""Index notation as a Tensor mixin: einsum (numpy's and PyTorch's "ij,jk->ik") and rearrange (einops'
"b (h w) c -> b h w c").

einsum lines every operand up along one list of letters (the output's first, then the summed ones), so the whole
contraction is one broadcast multiply and one sum, which the scheduler fuses into one kernel like a matmul. A
letter repeated inside one operand ("ii->i") takes that operand's diagonal first. rearrange is only movement: a
reshape that splits the input's groups into single axes, a permute, and a reshape that joins the output's groups."""
from __future__ import annotations
import math
from typing import TYPE_CHECKING
from teeny.dtype import dtypes, NARROW_FLOATS
from teeny.ops.args import ArgumentError
if TYPE_CHECKING:
  from typing import Self

_ELLIPSIS_NAMES = "0123456789"  # stand-ins for the axes "..." covers (digits never name an axis in einsum)


def _expand_ellipsis(spec: str, ndim: int, ellipsis: str, where: str) -> list[str]:
  """One operand's letters with "..." replaced by the last (ndim - letters) names of `ellipsis`."""
  if "..." not in spec:
    if len(spec) != ndim: raise ArgumentError(f"einsum: {where} '{spec}' names {len(spec)} axes for a tensor with {ndim}")
    return list(spec)
  if spec.count("...") > 1: raise ArgumentError(f"einsum: {where} '{spec}' has more than one '...'")
  before, after = spec.split("...")
  covered = ndim - len(before) - len(after)
  if covered < 0: raise ArgumentError(f"einsum: {where} '{spec}' names more axes than the tensor's {ndim}")
  return list(before) + list(ellipsis[len(ellipsis) - covered:]) + list(after)


def _check_subscripts(formula: str, specs: list[str], rhs: str) -> None:
  """Subscripts are letters, as in PyTorch (a digit or symbol was read as an axis name), and the output names
  each at most once ("ij->ii" has no meaning as a sum)."""
  for i, spec in enumerate(specs + [rhs]):
    for ch in spec.replace("...", ""):
      if not ("a" <= ch <= "z" or "A" <= ch <= "Z"):
        raise ArgumentError(f"einsum: invalid subscript {ch!r} in '{formula}': subscripts must be letters in [a-zA-Z]")
  for ch in rhs.replace("...", ""):
    if rhs.count(ch) > 1: raise ArgumentError(f"einsum: output subscript {ch!r} appears more than once in '{formula}'")


def _take_diagonals(x, letters: list[str], where: str):
  """A letter named twice in one operand ("ii"): keep that operand's diagonal, named once (at the end). Its two
  axes must have one size (the diagonal of a 2x3 took the shorter one)."""
  while len(set(letters)) < len(letters):
    name = next(a for a in letters if letters.count(a) > 1)
    first = letters.index(name)
    second = letters.index(name, first + 1)
    if x.shape[first] != x.shape[second]:
      raise ArgumentError(f"einsum: subscript {name!r} is repeated for {where} but the sizes don't match, {x.shape[first]} != {x.shape[second]}")
    x = x.diagonal(0, first, second)
    letters = [a for i, a in enumerate(letters) if i not in (first, second)] + [name]
  return x, letters


def _implicit_output(named: list[str], ellipsis: str) -> list[str]:
  """The output of an einsum without "->": the "..." axes, then the letters named once over all the operands (a
  letter repeated inside one operand counts twice: "ii" is summed), in alphabetical order."""
  return list(ellipsis) + sorted(a for a in set(named) if named.count(a) == 1 and a not in ellipsis)


def _lined_up(t, names: list[str], order: list[str]):
  """An operand permuted to `order`, with a 1 for every letter it lacks (so the operands broadcast together)."""
  t = t.permute(tuple(sorted(range(len(names)), key=lambda k: order.index(names[k]))))
  ranked = sorted(names, key=order.index)
  return t.reshape(tuple(t.shape[ranked.index(a)] if a in ranked else 1 for a in order))


def _parse_side(side: str) -> list:
  """einops tokens: a name, "...", or a group "(a b)" as a list of names ("()" and "1" are empty groups)."""
  tokens, i = [], 0
  side = side.replace("...", " … ")
  while i < len(side):
    ch = side[i]
    if ch.isspace(): i += 1
    elif ch == "(":
      end = side.find(")", i)
      if end < 0: raise ArgumentError(f"rearrange: unclosed '(' in '{side.strip()}'")
      tokens.append(["..." if n == "…" else n for n in side[i + 1:end].split() if n != "1"])  # ("(...)": merged)
      i = end + 1
    else:
      end = i
      while end < len(side) and not side[end].isspace() and side[end] not in "()": end += 1
      name = side[i:end]
      tokens.append([] if name == "1" else "..." if name == "…" else name)
      i = end
  return tokens


def _flat(tokens: list) -> list[str]:
  """The names of a side's tokens, groups opened ("..." stays one name)."""
  return [n for token in tokens for n in ([token] if isinstance(token, str) else token)]


def _split_sizes(lhs: list, shape: tuple, sizes: dict, side: str) -> tuple[dict, list]:
  """Each input name's size ("..." -> the shape it covers), and the input's shape with every group split."""
  rest = len(shape) - (len(lhs) - (1 if "..." in lhs else 0))
  if lhs.count("...") > 1: raise ArgumentError(f"rearrange: '...' appears more than once in '{side}'")
  if rest < 0 or ("..." not in lhs and rest != 0):
    raise ArgumentError(f"rearrange: '{side}' names {len(lhs)} axes for a tensor of shape {shape}")
  known, split_shape, axis = dict(sizes), [], 0
  for token in lhs:
    if token == "...":
      known["..."] = tuple(shape[axis:axis + rest])
      split_shape += list(known["..."])
      axis += rest
      continue
    group = [token] if isinstance(token, str) else token
    n, missing = shape[axis], [g for g in group if g not in known]
    if len(missing) > 1: raise ArgumentError(f"rearrange: can't infer the sizes of {missing} from an axis of {n}: give them")
    given = math.prod(known[g] for g in group if g not in missing)
    if missing: known[missing[0]] = n // given if given else 0
    if math.prod(known[g] for g in group) != n:
      raise ArgumentError(f"rearrange: {group} of sizes {[known[g] for g in group]} doesn't split axis {axis} of size {n}")
    split_shape += [known[g] for g in group]
    axis += 1
  return known, split_shape


class EinsumOps:
  """einsum and rearrange."""
  @staticmethod
  def einsum(formula: str, *operands, dtype=None):
    """Sum of products over the letters the output doesn't keep, like numpy.einsum / torch.einsum: "ij,jk->ik" is
    a matmul, "ii->" a trace, "bij,bjk->bik" a batched matmul, "...ij->...ji" a transpose; with no "->", the
    output keeps the letters named once (a letter repeated inside one operand counts twice: "ii" is a trace), in
    alphabetical order. Operands may also come as one list. Integers keep their dtype (wrapping), as in PyTorch;
    float16, bfloat16 and fp8 multiply in float32 and round the sum once, as a matmul does."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)): operands = tuple(operands[0])
    if not isinstance(formula, str):
      raise TypeError(f"einsum takes the equation first, as a string ('ij,jk->ik'), got {type(formula).__name__}: the "
                      "sublist form einsum(x, [0, 1], ...) is not supported")
    formula = formula.replace(" ", "")
    lhs, arrow, rhs = formula.partition("->")
    specs = lhs.split(",")
    _check_subscripts(formula, specs, rhs)
    if len(specs) != len(operands): raise ArgumentError(f"einsum: '{formula}' names {len(specs)} operands, got {len(operands)}")
    widest = max((t.ndim - len(s.replace("...", "")) for s, t in zip(specs, operands) if "..." in s), default=0)
    ellipsis = _ELLIPSIS_NAMES[:widest]
    if operands[0].dtype in NARROW_FLOATS and all(t.dtype == operands[0].dtype for t in operands):
      return type(operands[0]).einsum(formula, *[t.float() for t in operands], dtype=dtype).cast(dtype or operands[0].dtype)
    tensors, letters, named = [], [], []
    for i, (spec, t) in enumerate(zip(specs, operands)):
      names = _expand_ellipsis(spec, t.ndim, ellipsis, f"operand {i}")
      named += names
      t, names = _take_diagonals(t, names, f"operand {i}")
      tensors.append(t)
      letters.append(names)
    every = [a for names in letters for a in names]
    out = list(rhs.replace("...", ellipsis)) if arrow else _implicit_output(named, ellipsis)
    for a in out:
      if a not in every: raise ArgumentError(f"einsum: output letter '{a}' names no input axis in '{formula}'")
    order = out + sorted(set(every) - set(out), key=every.index)
    product = None
    for t, names in zip(tensors, letters):
      t = _lined_up(t, names, order)
      product = t if product is None else product * t
    summed = tuple(range(len(out), len(order)))
    # PyTorch's integer einsum of several operands doesn't widen to int64 (its products are bmm's); one operand's
    # is a sum, which does ("i->" of uint8 [200, 100] is 300, not 44)
    if dtype is None and dtypes.is_int(product.dtype) and len(operands) > 1: dtype = product.dtype
    return product.sum(summed, dtype=dtype) if summed else (product if dtype is None else product.cast(dtype))

  def rearrange(self, formula: str, **sizes: int) -> Self:
    """einops' rearrange: "b c (h p1) (w p2) -> b (h w) (p1 p2 c)" with sizes naming what a split can't infer
    (p1=2, p2=2); "..." (or "…") stands for the axes not named, "(...)" on the right for them merged into one, "1" or
    "()" for a unit axis."""
    left, arrow, right = formula.partition("->")
    if not arrow: raise ArgumentError(f"rearrange needs 'input -> output', got '{formula}'")
    lhs, rhs = _parse_side(left), _parse_side(right)
    if sorted(_flat(lhs)) != sorted(_flat(rhs)) or len(_flat(rhs)) != len(set(_flat(rhs))):
      raise ArgumentError(f"rearrange: '{formula}' must name each input axis exactly once on both sides")
    known, split_shape = _split_sizes(lhs, self.shape, sizes, left.strip())
    rest = len(known.get("...", ()))
    names = [n for token in lhs for n in (["..."] * rest if token == "..." else [token] if isinstance(token, str) else token)]
    positions = {n: i for i, n in enumerate(names) if n != "..."}
    ellipsis_axes = [i for i, n in enumerate(names) if n == "..."]
    order = [a for n in _flat(rhs) for a in (ellipsis_axes if n == "..." else [positions[n]])]
    out_shape = []
    for token in rhs:
      if token == "...": out_shape += list(known["..."])
      else: out_shape.append(math.prod(math.prod(known[g]) if g == "..." else known[g] for g in ([token] if isinstance(token, str) else token)))
    return self.reshape(tuple(split_shape)).permute(tuple(order)).reshape(tuple(out_shape))
