"""What a TinyJit call passed and returned: the input Tensors found in the arguments (also directly inside a list,
tuple or dict argument), the call's signature that every later call must match (shapes, dtypes, devices, the
non-Tensor constants, which places share a buffer, how sharded tensors are split), the errors a mismatch raises
(JitError and its builtin-kind subclasses), view arguments copied and written back, the Tensors found in a result,
and the buffers under a realized tensor. teeny/engine/jit.py's docstring states the contract."""
from __future__ import annotations
import copy
import numpy as np
from teeny.tensor import Tensor
from teeny.runtime.device import Buffer
from teeny.uop import UOp, Ops


class JitError(Exception):
  """Misuse of a TinyJit (tinygrad's name for it). The errors raised are also the builtin kinds below."""


class JitValueError(JitError, ValueError):
  """A call that doesn't match the capture: another shape, other constants, other Tensors shared between places."""


class JitTypeError(JitError, TypeError):
  """An argument of another dtype than at the capture, or Tensors hidden where the jit doesn't look for them."""


class JitDeviceError(JitError, RuntimeError):
  """An argument on another device than at the capture."""


# ---- arguments ----

def _items(value) -> list[tuple]:
  """(key, item) pairs of a list, tuple or dict argument: the places the jit looks for Tensors inside one."""
  return list(value.items()) if isinstance(value, dict) else list(enumerate(value))


def _rebuilt(value, items: list):
  """A list, tuple (namedtuple too) or dict like `value` holding `items` instead."""
  if isinstance(value, dict):
    out = copy.copy(value)  # (keeps a dict subclass and what it holds besides its items: a defaultdict's factory)
    out.update(zip(value.keys(), items))
    return out
  return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)


def _views_copied(args: tuple, kwargs: dict) -> tuple[tuple, dict, list[tuple]]:
  """The arguments with every Tensor that is a view of another tensor's storage replaced by a copy of it (also
  inside a list, tuple or dict argument): a capture reads its arguments' buffers whole, and a view has none of its
  own. Also the (view, copy) pairs, for _written_back after the call."""
  copies: list[tuple] = []
  def own(v):
    if not (isinstance(v, Tensor) and v._base is not None): return v
    copies.append((v, v.contiguous()))
    return copies[-1][1]
  def own_inside(v):
    if isinstance(v, (list, tuple, dict)) and _holds_tensors(v): return _rebuilt(v, [own(item) for _, item in _items(v)])
    return own(v)
  return tuple(own_inside(a) for a in args), {k: own_inside(v) for k, v in kwargs.items()}, copies


def _written_back(out, copies: list[tuple], written: set[int]):
  """After a call with view arguments (copied by _views_copied): each view whose copy the call wrote (by id, in
  `written`) takes the copy's values, so the writes land in the tensor it views, as eagerly; and `out` with a
  returned copy, or a view of one, replaced by the view passed, or that view of it."""
  Tensor.realize_all(*[view.assign(copy) for view, copy in copies if id(copy) in written])
  passed = {id(copy): view for view, copy in copies}
  def as_passed(t: Tensor) -> Tensor:
    base = t if t._base is None else t._base
    if id(base) not in passed: return t
    view = passed[id(base)]
    for op, arg in t._view_ops if t._base is not None else (): view = view._view(op, arg)
    return view
  return _map(out, Tensor, as_passed)


def _holds_tensors(value) -> bool:
  return any(isinstance(item, Tensor) for _, item in _items(value))


class _TensorHere:
  """Stands for a Tensor inside a list, tuple or dict argument in the capture's constants (equal to itself only)."""
  def __repr__(self): return "<Tensor>"


_TENSOR_HERE = _TensorHere()


def _check_not_deeper(name, value):
  """Tensors two or more containers deep are not looked for (tinygrad doesn't either): say so, not freeze them."""
  for key, item in _items(value):
    if isinstance(item, (list, tuple, dict)) and any(isinstance(t, Tensor) for t in _output_tensors(item)):
      raise JitTypeError(f"TinyJit: argument {_label((name, key))} holds Tensors two containers deep; the jit takes Tensors "
                         "as arguments or directly inside a list, tuple or dict argument")


def _inputs(args: tuple, kwargs: dict) -> tuple[list[Tensor], tuple, dict[str, int]]:
  """The input Tensors in order (positional arguments, then keywords by name; those inside a list, tuple or dict
  argument in its order), the call's signature: what must stay the same from call to call (the caller adds
  which inputs share a buffer), and the bound Variables (teeny/variable.py) passed in the same places, name ->
  value: a replay gives their values to the kernels that took them at the capture."""
  named = [(i, a) for i, a in enumerate(args)] + sorted(kwargs.items())
  tensors, shapes, constants, variables = [], [], [], {}
  def variable_or(value):  # a bound Variable: its name and range are the signature's, its value is the call's
    if isinstance(value, np.ndarray): return value.copy()  # (a reference would follow the caller's changes in place)
    if not (isinstance(value, UOp) and value.op is Ops.BIND): return value
    name, bound = value.arg[0], value.arg[3]
    if variables.setdefault(name, bound) != bound:
      raise JitValueError(f"TinyJit: Variable {name!r} is bound to {variables[name]} and to {bound} in one call")
    return ("a Variable", value.arg[:3])
  def add(name, t: Tensor):
    tensors.append(t)
    shapes.append((name, t.shape, t.dtype, t.device))
  for name, value in named:
    if isinstance(value, Tensor):
      add(name, value)
      continue
    if isinstance(value, (list, tuple, dict)):
      _check_not_deeper(name, value)
      if _holds_tensors(value):
        for key, item in _items(value):
          if isinstance(item, Tensor): add((name, key), item)
        value = _rebuilt(value, [_TENSOR_HERE if isinstance(item, Tensor) else variable_or(item) for _, item in _items(value)])
      else: value = _rebuilt(value, [variable_or(item) for _, item in _items(value)])
    constants.append((name, variable_or(value)))
  return tensors, (tuple(shapes), tuple(constants)), variables


def _label(name) -> str:
  """An input's place for messages: 0, 'x', or 1[0] / 'state'['h'] for one inside a list, tuple or dict."""
  if isinstance(name, tuple): return f"{_label(name[0])}[{name[1]!r}]"
  return repr(name)

def layout(t: Tensor):
  """How a realized tensor's data lies on its devices: None on one device; for a sharded one (teeny/multi.py) the
  sharded axis (None: replicated) and each shard's shape. Part of the signature: another split is another program."""
  if t.uop.op is not Ops.MULTI: return None
  return t.uop.arg[1], tuple(s.shape for s in t.uop.src)


def _check_same(old: tuple, new: tuple):
  old_shapes, old_constants, old_aliases, old_layouts = old
  new_shapes, new_constants, new_aliases, new_layouts = new
  if [s[0] for s in old_shapes] != [s[0] for s in new_shapes]:
    raise JitValueError(f"TinyJit: called with Tensor arguments {[_label(s[0]) for s in new_shapes]}, captured with "
                        f"{[_label(s[0]) for s in old_shapes]}; call jit.reset() to capture again")
  for (name, shape, dtype, device), (_, shape0, dtype0, device0) in zip(new_shapes, old_shapes):
    where = f"TinyJit: argument {_label(name)}"
    if shape != shape0: raise JitValueError(f"{where} has shape {shape}, captured with {shape0}; call jit.reset() to capture again")
    if dtype != dtype0: raise JitTypeError(f"{where} has dtype {dtype}, captured with {dtype0}; call jit.reset() to capture again")
    if device != device0: raise JitDeviceError(f"{where} is on {device}, captured on {device0}; call jit.reset() to capture again")
  if [c[0] for c in old_constants] != [c[0] for c in new_constants] or not all(
      _same(a, b) for (_, a), (_, b) in zip(old_constants, new_constants)):
    raise JitValueError(f"TinyJit: non-Tensor arguments {_show(new_constants)} differ from the captured {_show(old_constants)}; "
                        "they are constants of the capture: call jit.reset() to capture again")
  for (name, *_), was, now in zip(new_shapes, old_layouts, new_layouts):
    if was != now:
      raise JitValueError(f"TinyJit: argument {_label(name)} lies on its devices as {_show_layout(now)}, captured as "
                          f"{_show_layout(was)}; call jit.reset() to capture again")
  if old_aliases != new_aliases:
    raise JitValueError("TinyJit: the same Tensor (buffer) is passed in a different set of places than when captured; call jit.reset()")


def _show_layout(layout) -> str:
  if layout is None: return "one buffer"
  axis, shapes = layout
  return f"{'replicas' if axis is None else f'shards along axis {axis}'} of shapes {list(shapes)}"


def _same(a, b) -> bool:
  """Whether a call's non-Tensor argument is the capture's constant: of the same type and value, floats and numpy
  values by their bits (2 and 2.0, True and 1, 0.0 and -0.0 compute different results, which == would not tell
  apart; a NaN is the same NaN), containers element by element."""
  if type(a) is not type(b): return False
  if isinstance(a, (float, np.floating, np.ndarray)):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
  if isinstance(a, (list, tuple)): return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
  if isinstance(a, dict): return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
  try: return a is b or bool(a == b)
  except Exception: return False  # no single truth value: not "the same"


def _show(constants) -> str: return "{" + ", ".join(f"{k!r}: {v!r}"[:80] for k, v in constants) + "}"

# ---- outputs ----

def _map(out, kind, fn):
  """`out` with every instance of `kind` in it, at any depth of tuples, lists and dicts, replaced by fn(it).
  (Recursive, but over a function's return value, which is small, never over a graph.)"""
  if isinstance(out, kind): return fn(out)
  if isinstance(out, dict): return {k: _map(v, kind, fn) for k, v in out.items()}
  if isinstance(out, (list, tuple)):
    items = [_map(v, kind, fn) for v in out]
    return type(out)(*items) if hasattr(out, "_fields") else type(out)(items)  # a namedtuple takes fields
  return out


def _output_tensors(out) -> list[Tensor]:
  found: list[Tensor] = []
  _map(out, Tensor, found.append)
  return found


# ---- a realized tensor's buffers ----

def _buffers_of(t: Tensor) -> list[Buffer]:
  """The buffers under a realized tensor (or a realized view): its one buffer, or a sharded tensor's buffer on each
  of its devices, in device order."""
  bottom, _ = _moves_over(t.uop)
  if bottom.op is Ops.MULTI: return [_moves_over(shard)[0].arg for shard in bottom.src]
  return [bottom.arg]


def _moves_over(node) -> tuple[UOp, list[tuple]]:
  """A realized tensor's node as movement ops over a buffer, or over a sharded tensor's MULTI (a view of one):
  that buffer or MULTI node, and the ops from it up as (op, arg) pairs."""
  moves = []
  while node.op not in (Ops.BUFFER, Ops.MULTI):
    moves.append((node.op, node.arg))
    node = node.src[0]
  return node, moves[::-1]
