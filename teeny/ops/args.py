"""Argument checks that Tensor and its op mixins share: axes, int arguments and sizes (a float is refused, never
truncated), shapes, window sizes and padding, broadcasting, and the most elements 64-bit indices count. Each turns
what the user passed into the canonical form the ops use, or raises an error that says what was wrong with it."""
from __future__ import annotations
import functools, inspect
import numpy as np
from teeny.dtype import DType, dtypes
from teeny.variable import as_size, is_symbolic

Scalar = int | float | bool
INDEX_MAX = 2**63 - 1  # the most elements 64-bit indices count


class ArgumentError(ValueError, RuntimeError):
  """A tensor op called with arguments it can't take: shapes that don't fit, a size, mode or axis it has no
  meaning for. It is a ValueError (Python's kind for a bad argument) and a RuntimeError (what PyTorch raises for
  the same calls), so code written for either catches it."""


def takes_dim(method, empty_is_every_axis: bool = True):
  """A method that takes `axis` also takes PyTorch's name for it, `dim=` (x.sum(dim=1), x.softmax(dim=-1)); naming
  the axis twice is an error. An empty dim=() or [] means every axis, as in PyTorch's reductions (tinygrad's
  axis=() reduces none), unless empty_is_every_axis is False (PyTorch's any and all reduce none then)."""
  # where axis comes among the positional arguments after self (first for a reduction, second for normalize(p, axis))
  axis_at = list(inspect.signature(method).parameters).index("axis") - 1
  @functools.wraps(method)
  def with_dim(self, *args, **kwargs):
    if "dim" in kwargs:
      if len(args) > axis_at or "axis" in kwargs:
        raise TypeError(f"{method.__name__}() got the axis twice: dim= and axis (dim is PyTorch's name for axis)")
      dim = kwargs.pop("dim")
      kwargs["axis"] = None if empty_is_every_axis and isinstance(dim, (tuple, list)) and not dim else dim
    return method(self, *args, **kwargs)
  return with_dim


def _canon_axis(axis: int, ndim: int) -> int:
  if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool): raise TypeError(f"axis must be an int, got {axis!r}")
  n = max(ndim, 1)
  if not -n <= axis < n: raise IndexError(f"axis {axis} is out of range for a tensor with {ndim} dimensions")
  return int(axis) % n if ndim else 0


def _canon_axes(axes, ndim: int, what: str) -> list[int]:
  """One axis or a sequence of them as canonical axes, each in range and none named twice (as PyTorch refuses)."""
  out = [_canon_axis(a, ndim) for a in (axes if isinstance(axes, (tuple, list, range)) else [axes])]
  if len(set(out)) != len(out): raise ArgumentError(f"{what}: dim {axes} names an axis twice (a repeated dim)")
  return out


def _int_arg(value, what: str, error: type[Exception] = TypeError) -> int:
  """An argument that must be an int, as PyTorch's are (a numpy int, or a 0-d int tensor, which PyTorch reads too):
  a float, bool or string raises TypeError here, where int() would quietly truncate 1.5 to 1 or read True as 1."""
  if getattr(value, "ndim", None) == 0 and isinstance(getattr(value, "dtype", None), DType) and dtypes.is_int(value.dtype):
    value = value.item()
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)): raise error(f"{what} must be an int, got {value!r}")
  return int(value)


def index_dtype(count: int) -> DType:
  """The dtype of indices and counts up to `count`: int32 (teeny's default int) where it holds them, else int64."""
  return dtypes.int32 if count <= dtypes.max(dtypes.int32) else dtypes.int64


def _fits(values: range, dtype: DType) -> bool:
  """Whether every value of a range fits dtype."""
  return not values or (dtypes.min(dtype) <= min(values[0], values[-1]) and max(values[0], values[-1]) <= dtypes.max(dtype))


def _broadcast_shape(*shapes: tuple[int, ...]) -> tuple[int, ...]:
  ndim = max(len(s) for s in shapes)
  padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
  out = []
  for dims in zip(*padded):
    sizes = {d for d in dims if d != 1}
    if len(sizes) > 1:
      raise ArgumentError(f"shapes {' and '.join(str(tuple(s)) for s in shapes)} can't be broadcast together")
    out.append(sizes.pop() if sizes else 1)
  return tuple(out)


class SizeError(TypeError, ArgumentError):
  """A size that isn't an int: a TypeError, as PyTorch raises, and a ValueError, as tinygrad does."""


class IndexDtypeError(TypeError, ArgumentError):
  """An index tensor of a float or bool dtype: a TypeError (Python's kind) and a RuntimeError (what PyTorch raises)."""


def _shape_arg(shape, keep: tuple[int, ...] | None = None) -> tuple[int, ...]:
  """Sizes given as ints or as one tuple/list of them. With `keep` (a reshape's current shape), None at position i
  is keep[i] (tinygrad's x.reshape(None, 6))."""
  if len(shape) == 1 and isinstance(shape[0], (tuple, list)): shape = shape[0]
  if keep is not None: shape = tuple(keep[i] if s is None and i < len(keep) else s for i, s in enumerate(shape))
  for s in shape:  # int(2.5) would quietly make a size of 2
    if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
      if is_symbolic(s): return _shape_arg(tuple(as_size(v) for v in shape))  # (a Variable: its bound value, variable.py)
      raise SizeError(f"sizes must be ints, got {s!r} in {tuple(shape)}")
  return tuple(int(s) for s in shape)


def _size_arg(value, what: str) -> int:
  """A size given as one number (a split's length, a window, a pad): an int, or an expression over bound
  Variables (its value now, variable.as_size); a float would make a shape of floats that only fails at realize."""
  return as_size(value) if is_symbolic(value) else _int_arg(value, what, SizeError)


def _pad_pairs(padding, ndim: int) -> tuple:
  """pad()'s padding as one (before, after) pair (or None) per axis: PyTorch's flat (last_before, last_after, ...)
  turned into pairs; each size an int, or bound Variables (their values now)."""
  if padding and all(not isinstance(p, (tuple, list)) and p is not None for p in padding):
    if len(padding) % 2 or len(padding) // 2 > ndim: raise ArgumentError(f"flat padding {tuple(padding)} doesn't fit {ndim} dimensions")
    pairs = [(0, 0)] * ndim
    for i in range(len(padding) // 2): pairs[ndim - 1 - i] = (padding[2 * i], padding[2 * i + 1])
    padding = pairs
  return tuple((0, 0) if p is None else tuple(_size_arg(n, "padding") for n in p) for p in padding)


def _new_shape(shape) -> tuple[int, ...]:
  """The shape of a new tensor: ints >= 0."""
  shape = _shape_arg(shape)
  if any(s < 0 for s in shape): raise ArgumentError(f"a tensor can't have a negative size, got shape {shape}")
  return shape


def _tuple_arg(value, n: int, name: str, least: int = 1) -> tuple[int, ...]:
  """An int or a sequence of n ints (stride, dilation, kernel size, ...), each at least `least`."""
  out = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
  if len(out) != n: raise ArgumentError(f"{name} must be an int >= {least} or {n} of them, got {value!r}")
  out = tuple(_size_arg(v, name) for v in out)
  if any(v < least for v in out): raise ArgumentError(f"{name} must be an int >= {least} or {n} of them, got {value!r}")
  return out


def _tuple_float(value, n: int) -> tuple[float, ...]:
  """A positive number or a sequence of n of them (interpolate's scale_factor), as floats."""
  out = tuple(float(v) for v in value) if isinstance(value, (tuple, list)) else (float(value),) * n
  if len(out) != n or any(v <= 0 for v in out): raise ArgumentError(f"scale_factor must be a positive number or {n} of them, got {value!r}")
  return out


def check_output_padding(output_padding: tuple, stride: tuple, dilation: tuple) -> None:
  """A transposed convolution's output_padding only picks among the sizes a stride (or dilation) makes possible,
  so it is smaller than one of them, as PyTorch requires; a larger one grew the output past them."""
  for op, s, d in zip(output_padding, stride, dilation):
    if op >= s and op >= d:
      raise ArgumentError(f"conv_transpose: output_padding {output_padding} must be smaller than the stride {stride} or the "
                          f"dilation {dilation} on each axis")


def conv_padding(padding, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...], name: str = "conv"):
  """A convolution's padding with PyTorch's strings resolved: 'valid' is none, 'same' a total of d*(k-1) per axis,
  the odd one on the right, as PyTorch's flat (last_before, last_after, ...) pads (stride 1 only, as there)."""
  if not isinstance(padding, str): return padding
  if padding == "valid": return 0
  if padding != "same": raise ArgumentError(f"{name}: padding must be an int, {len(kernel)} ints, 'valid' or 'same', got {padding!r}")
  if any(s != 1 for s in stride): raise ArgumentError(f"{name}: padding='same' needs stride 1 (like PyTorch)")
  flat = []
  for k, d in zip(reversed(kernel), reversed(dilation)):
    total = d * (k - 1)
    flat += [total // 2, total - total // 2]
  return tuple(flat)


def _padding_arg(padding, n: int) -> tuple[tuple[int, int], ...]:
  """Padding for n spatial dims as (before, after) pairs: an int, one int per dim, or PyTorch's flat
  (last_before, last_after, ...) of 2n ints."""
  if not isinstance(padding, (tuple, list)): padding = (padding,) * n
  padding = tuple(_size_arg(p, "padding") for p in padding)
  if len(padding) == n: return tuple((p, p) for p in padding)
  if len(padding) == 2 * n: return tuple((padding[2 * i], padding[2 * i + 1]) for i in reversed(range(n)))
  raise ArgumentError(f"padding {padding} must be an int, {n} ints, or {2 * n} ints")


def _one_for_all(value, n: int):
  """A one-element sequence given for n > 1 spatial dims as its element, which counts for every dim, as PyTorch reads
  a convolution's or pooling's (2,) (stride=(2,) of a 2-d convolution is (2, 2))."""
  return value[0] if isinstance(value, (tuple, list)) and len(value) == 1 and n > 1 else value


def _spatial_arg(value, n: int, name: str, least: int = 1) -> tuple[int, ...]:
  """_tuple_arg for a window's kernel size, stride, dilation or output padding: also one int in a sequence, for all."""
  return _tuple_arg(_one_for_all(value, n), n, name, least)


def _spatial_padding(padding, n: int) -> tuple[tuple[int, int], ...]:
  """_padding_arg for a convolution's or pooling's padding: also one int in a sequence, for all dims."""
  return _padding_arg(_one_for_all(padding, n), n)
