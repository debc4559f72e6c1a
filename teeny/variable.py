"""Variables: named integers bound per call, tinygrad's `Variable("pos", 0, 1023).bind(n)`.

A Variable is a DEFINE_VAR node (arg (name, lo, hi)); bind(n) makes a BIND leaf of the tensor graph (arg (name, lo,
hi, n)). Python arithmetic on it (`pos + 1`, `2 * pos`) builds integer expressions over it, which tensors take as
numbers (`x * pos`), as indices (`x[pos]`) and as slice bounds (`x[pos:pos + 4]`, `x.shrink(((pos, pos + 4), None))`).

Its value is a kernel argument, like a float constant's (schedule/items.is_value_arg): graphs that differ only in
the bound value share their schedule and their compiled kernels, and TinyJit replays a capture with each call's
values (engine/jit.py). So a decode loop over positions compiles once.

A slice of the same length for every value (`x[pos:pos + 4]`) is read as a gather at the positions, and written
as a masked write of the whole sliced axis (cost: one pass over that axis).

A Variable may also be a size, as in tinygrad (`x[:pos]`, `x.shrink(((0, pos), None))`, `pad` by `n - pos`,
`reshape(pos, -1)`, `Tensor.zeros(pos)`), but not symbolically: every shape in teeny is concrete, so the size is
its value at the bound value (`as_size`), and the graph, its schedule and its kernels are those of that size. So
each value a size takes compiles its own kernels (tinygrad compiles one set for all), and TinyJit keeps a capture
for one set of size values at a time (it learns which Variables set sizes while it watches the function run,
`watched`), running the function again when they change: correct for every value, fast only when they
repeat. Positions that are not sizes keep their one compile.
"""
from __future__ import annotations
import threading
from teeny.dtype import dtypes, check_fits
from teeny.uop import UOp, Ops, is_bound_expression


def Variable(name: str, min_val: int, max_val: int) -> UOp:
  """An integer named `name` that takes values in [min_val, max_val]; bind(n) gives it a value."""
  if not isinstance(name, str) or not name: raise TypeError(f"a Variable's name is a non-empty str, got {name!r}")
  if not all(isinstance(v, int) and not isinstance(v, bool) for v in (min_val, max_val)) or min_val > max_val:
    raise ValueError(f"Variable {name!r}: bounds must be ints with min <= max, got [{min_val!r}, {max_val!r}]")
  if min_val < -2**31 or max_val > 2**31 - 1:  # (its kernel argument is an int32: a value past it would wrap)
    raise ValueError(f"Variable {name!r}: bounds [{min_val}, {max_val}] past int32's, the Variable's dtype")
  return UOp(Ops.DEFINE_VAR, dtypes.int32, (), (name, min_val, max_val))


class BoundValue(int):
  """A kernel's value argument that came from a bound Variable: the int, remembering the Variable's name, so TinyJit
  can give it each call's value when it replays (teeny/engine/jit.py)."""
  name: str

  def __new__(cls, value: int, name: str):
    out = super().__new__(cls, value)
    out.name = name
    return out


def is_symbolic(x) -> bool:
  """Whether x is an integer expression over Variables (a UOp standing for a number)."""
  return isinstance(x, UOp)


def checked(x: UOp) -> UOp:
  """x as a number for the tensor graph: an integer expression whose Variables are all bound, its // and % made to
  round down in the kernels too (_floored), and that fits int32 (the kernels compute it in int32) for every value
  the Variables may take (else it raises)."""
  _value_of(x)
  x = _floored(x)
  lo, hi = _exact_range(x)
  if lo < -2**31 or hi > 2**31 - 1:
    names = ", ".join(f"{n.arg[0]} in [{n.arg[1]}, {n.arg[2]}]" for n in x.toposort() if n.op is Ops.BIND)
    raise OverflowError(f"a Variable expression reaches [{lo}, {hi}] for {names}: past int32, in which kernels compute it "
                        "(it would wrap around); give the Variables narrower bounds")
  return x


def check_fits_dtype(x: UOp, dtype) -> None:
  """Raise OverflowError, as for an int, where a Variable expression may take a value an int dtype can't hold (a
  where's branch beside an int8 tensor would wrap): over its Variables' declared ranges, not only the bound
  values, since one kernel (and a TinyJit replay) serves every value they take."""
  lo, hi = _exact_range(checked(x))
  try: check_fits([lo, hi], dtype)
  except OverflowError as e:
    raise OverflowError(f"a Variable expression ranges over [{lo}, {hi}], past {dtype}'s values ({e}): give its Variables "
                        "narrower ranges") from None


def for_tensor(x: UOp) -> UOp:
  """A node Tensor(x) holds: checked(x) for a number over bound Variables (Tensor(pos // 2)), else x itself."""
  return checked(x) if is_bound_expression(x) else x


def _floored(x: UOp) -> UOp:
  """x with each // and % rounding down, as Python's do (and bound_value), where a kernel's IDIV and MOD truncate
  toward zero: rebuilt bottom-up, each division made one whose dividend is never negative (_floor_node)."""
  done: dict[UOp, UOp] = {}
  for n in x.toposort():
    src = tuple(done[s] for s in n.src)
    done[n] = _floor_node(n.op, *src) if n.op in (Ops.IDIV, Ops.MOD) else n.replace(src=src)
  return done[x]


def _floor_node(op, a: UOp, b: UOp) -> UOp:
  """a // b or a % b (op IDIV or MOD) rounding down, built from truncating ones: a negative divisor is negated
  (a // b == -a // -b, a % b == -(-a % -b)); a dividend that may be negative is shifted by k * b to be nonnegative,
  where truncating is rounding down ((a + k*b) // b - k, (a + k*b) % b). A divisor that may be 0 raises."""
  b_lo, b_hi = _exact_range(b)
  if b_lo <= 0 <= b_hi:
    raise ValueError(f"a Variable expression divides by one that ranges over [{b_lo}, {b_hi}], which holds 0: give the "
                     "divisor's Variables ranges that keep it on one side of 0")
  if b_hi < 0:
    flipped = _floor_node(op, -a, -b)
    return -flipped if op is Ops.MOD else flipped
  a_lo = _exact_range(a)[0]
  if a_lo >= 0: return a.alu(op, b)
  k = -(a_lo // b_lo)  # the least k with a_lo + k * b_lo >= 0 (so a + k * b >= 0 for every b >= b_lo)
  shifted = (a + b * k).alu(op, b)
  return shifted if op is Ops.MOD else shifted - k


def _exact_range(x: UOp) -> tuple[int, int]:
  """The lowest and highest value of an integer expression over Variables, over their declared ranges, computed
  with Python's unbounded ints (UOp.vmin/vmax clamp to the dtype, which hides an overflow)."""
  found: dict[UOp, tuple[int, int]] = {}
  for n in x.toposort():
    a, b = (found[s] for s in n.src) if len(n.src) == 2 else (found[n.src[0]] if n.src else None, None)
    if n.op is Ops.BIND: found[n] = (n.arg[1], n.arg[2])
    elif n.op is Ops.CONST: found[n] = (n.arg, n.arg)
    elif n.op is Ops.NEG: found[n] = (-a[1], -a[0])
    elif n.op is Ops.ADD: found[n] = (a[0] + b[0], a[1] + b[1])
    elif n.op is Ops.MAX: found[n] = (max(a[0], b[0]), max(a[1], b[1]))
    elif n.op is Ops.MUL:
      corners = [p * q for p in a for q in b]
      found[n] = (min(corners), max(corners))
    else:  # IDIV, MOD: no larger in size than the dividend (a quotient) or the divisor (a remainder)
      big = max(abs(v) for v in a + (b if n.op is Ops.MOD else ()))
      found[n] = (-big, big)
  return found[x]


def value(x) -> int:
  """The value of an int, or of an expression over bound Variables at their bound values."""
  return _value_of(x) if is_symbolic(x) else x


def _value_of(x: UOp) -> int:
  """A Variable expression's value; UOp.bound_value checks each node on the way (every Variable bound, integer
  arithmetic only) and raises saying which is not."""
  if not dtypes.is_int(x.dtype) or x.shape != ():
    raise TypeError(f"a Tensor takes a Variable expression as a number; this node is a {x.op.name} of {x.dtype}, shape {x.shape}")
  return x.bound_value()


def _linear(x: UOp) -> tuple[dict[str, int], int] | None:
  """x as (coefficient of each Variable, constant), or None when x is not linear in its Variables."""
  if x.op is Ops.CONST: return {}, x.arg
  if x.op is Ops.BIND: return {x.arg[0]: 1}, 0
  if x.op is Ops.NEG:
    inner = _linear(x.src[0])
    return None if inner is None else ({k: -c for k, c in inner[0].items()}, -inner[1])
  if x.op is Ops.ADD:
    a, b = _linear(x.src[0]), _linear(x.src[1])
    if a is None or b is None: return None
    coefs = dict(a[0])
    for k, c in b[0].items(): coefs[k] = coefs.get(k, 0) + c
    return coefs, a[1] + b[1]
  if x.op is Ops.MUL:
    a, b = _linear(x.src[0]), _linear(x.src[1])
    if a is None or b is None or (a[0] and b[0]): return None  # (a product of two Variables)
    if b[0]: a, b = b, a  # the constant factor second
    scale = b[1]
    return {k: c * scale for k, c in a[0].items()}, a[1] * scale
  return None


def fixed_difference(stop, start) -> int | None:
  """stop - start when it is the same for every value of the Variables in them (pos + 4 - pos: 4), else None."""
  if not is_symbolic(stop) and not is_symbolic(start): return stop - start
  diff = (stop if is_symbolic(stop) else UOp.const(dtypes.int32, stop)) - start
  form = _linear(checked(diff))
  if form is None or any(form[0].values()): return None
  return form[1]


class _Watch(threading.local):
  # while a TinyJit runs its function on this thread (watched): the Variables made sizes, and the positions that
  # must stay in range, as (expression, lo, hi, what it is)
  sizes: set[str] | None = None
  ranges: list | None = None


_watch = _Watch()


def as_size(x):
  """A size (a slice's bound or length, a pad, a shape entry) given as an int or an expression over bound
  Variables: its value now, the size the graph is built with. A watching TinyJit learns which Variables it read."""
  if not is_symbolic(x): return x
  if _watch.sizes is not None: _watch.sizes.update(node.arg[0] for node in checked(x).toposort() if node.op is Ops.BIND)
  return value(x)


def keep_in_range(expr, lo: int, hi: int, what: str) -> None:
  """A position given by an expression over bound Variables must be in [lo, hi] (an index, a slice's first element):
  checked now, at the bound values (IndexError), and by a watching TinyJit again at each replay, which binds other
  values without building the graph (check_ranges). Out of range, a kernel would read 0 and write nothing."""
  _raise_if_outside(expr, value(expr), lo, hi, what)
  if _watch.ranges is not None: _watch.ranges.append((expr, lo, hi, what))


def check_ranges(ranges: list, values: dict) -> None:
  """keep_in_range's checks again, with the Variables' values of a TinyJit replay (name -> value)."""
  for expr, lo, hi, what in ranges: _raise_if_outside(expr, expr.bound_value(values), lo, hi, what, values)


def _raise_if_outside(expr, at: int, lo: int, hi: int, what: str, values: dict | None = None):
  if lo <= at <= hi: return
  names = {n.arg[0]: n.arg[3] if values is None else values.get(n.arg[0], n.arg[3]) for n in expr.toposort() if n.op is Ops.BIND}
  bound = ", ".join(f"{name} = {v}" for name, v in names.items())
  raise IndexError(f"{what} starts at {at} with {bound}, outside [{lo}, {hi}]: a position from Variables doesn't wrap or clamp")


class watched:
  """Collect, inside the block, the Variables made sizes (`sizes`) and the ranges positions must keep (`ranges`);
  a watch inside a watch passes what it saw on to the outer one."""
  def __enter__(self):
    self.outer = (_watch.sizes, _watch.ranges)
    _watch.sizes, _watch.ranges = self.sizes, self.ranges = set(), []
    return self
  def __exit__(self, *exc):
    _watch.sizes, _watch.ranges = self.outer
    if self.outer[0] is not None:
      self.outer[0].update(self.sizes)
      self.outer[1].extend(self.ranges)
