"""Creation as a Tensor mixin: full, zeros, ones, empty, arange, eye and the *_like forms (random tensors are
random.py's). Each is a classmethod (Tensor.zeros(2, 3), also called on an instance) that builds through `cls`,
never through teeny/tensor.py, and each takes requires_grad and sets it on the tensor it returns (_as_leaf). Also
_from_host, which copies host data (lists, numpy arrays, bytes) into a new buffer for Tensor(data)."""
from __future__ import annotations
import math
from typing import TYPE_CHECKING
import numpy as np
from teeny.dtype import DType, dtypes, to_dtype, to_host, check_fits, check_float_fits, STORAGE_FLOATS
from teeny.uop import UOp
from teeny.runtime.device import Buffer, Device
from teeny.schedule import buffer_view
from teeny.ops.sharding import canonical_device
from teeny import multi
from teeny.ops.args import ArgumentError, Scalar, INDEX_MAX, _fits, _shape_arg, _new_shape
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self


class CreationOps:
  """Tensor's constructors of filled, empty, range and identity tensors."""
  # requires_grad is set on the tensor a creation function returns (the leaf), not on a tensor it was built from:
  # a flag set on an inner tensor would be left behind on a node the result only reads
  @staticmethod
  def _as_leaf(out: Self, requires_grad: bool | None) -> Self:
    if requires_grad is not None: out.requires_grad = requires_grad
    return out
  @classmethod
  def full(cls, shape, fill_value: Scalar, dtype=None, device=None, requires_grad: bool | None = None) -> Self:
    """A tensor of `shape` filled with fill_value, like torch.full; unless dtype is given, bool, the default int
    (int32; torch's is int64) or the default float, after fill_value. It has storage of its own: writes are allowed."""
    shape = _new_shape(shape)
    dt = to_dtype(dtype) if dtype is not None else dtypes.from_py(fill_value)
    if not isinstance(fill_value, np.generic):  # (a Python number: torch.full's checks)
      check_fits(fill_value, dt)
      check_float_fits(fill_value, dt)
    t = cls(UOp.const(dt, fill_value), device=device)
    filled = t.reshape((1,) * len(shape)).expand(shape)._own() if shape else t  # (storage of its own, like torch.full)
    return cls._as_leaf(filled, requires_grad)
  @classmethod
  def zeros(cls, *shape, **kw) -> Self:
    """Zeros of `shape` (sizes, or one tuple), like torch.zeros: the default float unless dtype= is given."""
    return cls.full(_shape_arg(shape), 0.0 if kw.get("dtype") is None else 0, **kw)
  @classmethod
  def ones(cls, *shape, **kw) -> Self:
    """Ones of `shape` (sizes, or one tuple), like torch.ones: the default float unless dtype= is given."""
    return cls.full(_shape_arg(shape), 1.0 if kw.get("dtype") is None else 1, **kw)
  @classmethod
  def empty(cls, *shape, dtype=None, device=None, requires_grad: bool | None = None) -> Self:
    """A new buffer of `shape`, uninitialized (its elements are whatever the memory held), like torch.empty; the
    default float unless dtype is given."""
    dt = to_dtype(dtype) if dtype is not None else dtypes.default_float
    dev = canonical_device(device) if device is not None else Device.DEFAULT
    shape = _new_shape(shape)
    if math.prod(shape) > INDEX_MAX: raise ArgumentError(f"a buffer of shape {shape} has {math.prod(shape)} elements, more than 64-bit indices can count ({INDEX_MAX})")
    if type(dev) is tuple:  # on several devices: a buffer on each (replicated, uninitialized)
      node = multi.multi((buffer_view(Buffer(d, math.prod(shape), dt), shape) for d in dev), dev, None)
    else: node = buffer_view(Buffer(dev, math.prod(shape), dt), shape)
    return cls(node, device=dev, requires_grad=requires_grad)
  @classmethod
  def invalids(cls, *shape, **kw) -> Self:
    """tinygrad's name for a buffer whose values are not set yet: empty(*shape, **kw)."""
    return cls.empty(*shape, **kw)
  @classmethod
  def arange(cls, start, stop=None, step=1, dtype=None, device=None, requires_grad: bool | None = None) -> Self:
    """start, start + step, ... up to stop (excluded), like torch.arange; arange(n) counts from 0. Unless dtype is
    given: the default int (int32, torch's int64; int64 when a value doesn't fit), or the default float if any
    argument is a float. An int dtype given that can't hold every value raises OverflowError (torch wraps them)."""
    if stop is None: start, stop = 0, start
    if step == 0: raise ArgumentError("arange step must not be zero")
    start, stop, step = (v.item() if isinstance(v, np.generic) else v for v in (start, stop, step))  # (numbers, as in PyTorch)
    dt = to_dtype(dtype) if dtype is not None else dtypes.from_py([start, stop, step])
    if dtype is None and dt == dtypes.default_int and not _fits(range(start, stop, step), dt): dt = dtypes.int64
    elif dtypes.is_int(dt) and all(isinstance(v, int) for v in (start, stop, step)) and not _fits(range(start, stop, step), dt):
      # (PyTorch wraps them around, silently)
      raise OverflowError(f"arange({start}, {stop}, {step}) has values {dt} can't hold")
    # made on the host like torch.arange: exact, and O(n) (a lazy cumsum of ones would cost O(n^2) adds). Floats
    # are start + i * step in float64, rounded once, as PyTorch's (numpy's own float32 arange(0, 1, 0.1)[9] is
    # 0.90000004; bfloat16 and fp8 go through float32, as their numpy type is their bits)
    if dtypes.is_float(dt):
      count = max(0, math.ceil((stop - start) / step))  # (numpy's count, without making its array)
      with np.errstate(over="ignore"):  # (past float16's range: inf, as in PyTorch)
        values = (start + np.arange(count, dtype=np.float64) * step).astype(np.float32 if dt in STORAGE_FLOATS else dt.np)
    else: values = np.arange(start, stop, step, dtype=dt.np)
    return cls(values, device=device, dtype=dt, requires_grad=requires_grad)
  @classmethod
  def eye(cls, n: int, m: int | None = None, dtype=None, device=None, requires_grad: bool | None = None) -> Self:
    """The n x m identity matrix (m defaults to n), like torch.eye; the default float unless dtype is given."""
    m = n if m is None else m
    n, m = _new_shape((n, m))
    dt = to_dtype(dtype) if dtype is not None else dtypes.default_float
    if n == 0 or m == 0: return cls.zeros(n, m, dtype=dt, device=device, requires_grad=requires_grad)
    # k rows of [1, 0*k] laid end to end and cut into rows of k put the ones on the diagonal of a k x k square
    k = max(n, m)
    row = cls.ones(1, dtype=dt, device=device).pad(((0, k),))
    square = row.reshape(1, k + 1).expand(k, k + 1).reshape(-1).shrink(((0, k * k),)).reshape(k, k)
    return cls._as_leaf(square.shrink(((0, n), (0, m)))._own(), requires_grad)
  def full_like(self, fill_value: Scalar, **kw) -> Self:
    """A tensor of self's shape filled with fill_value, in self's dtype and device unless dtype=/device= are given
    (PyTorch's rule: not fill_value's dtype)."""
    return type(self).full(self.shape, fill_value, dtype=kw.pop("dtype", self.dtype), device=kw.pop("device", self.device), **kw)
  def zeros_like(self, **kw) -> Self:
    """Zeros of self's shape, dtype and device (each can be given instead), like torch.zeros_like."""
    return self.full_like(0, **kw)
  def ones_like(self, **kw) -> Self:
    """Ones of self's shape, dtype and device (each can be given instead), like torch.ones_like."""
    return self.full_like(1, **kw)


def _from_host(data, dtype: DType | None, device: str) -> UOp:
  """Copy a list, numpy array or bytes (uint8, like tinygrad's Tensor(bytes)) into a new device buffer."""
  if isinstance(data, (bytes, bytearray, memoryview)): data = np.frombuffer(data, np.uint8)
  if isinstance(data, range): data = list(data)
  elif hasattr(data, "__array__") and not isinstance(data, np.ndarray): data = np.asarray(data)  # (a torch tensor, ...)
  if isinstance(data, np.ndarray):
    if data.dtype == np.float64 and dtype is None: dtype = dtypes.float64
    arr = data if data.dtype.isnative else data.astype(data.dtype.newbyteorder("="))  # (a big-endian file's array)
  else:
    try: arr = np.array(data)
    except ValueError as e: raise ArgumentError(f"can't make a tensor from ragged or mixed data: {e}") from None
    if dtype is not None and dtypes.is_int(to_dtype(dtype)) and arr.dtype.kind in "fO": arr = _exact_ints(data, dtype)
    if arr.dtype == object or arr.dtype.kind in "USV": raise TypeError(f"can't make a tensor from {type(data).__name__} of {'strings' if arr.dtype.kind in 'US' else 'objects'}")
    if dtype is None: dtype = dtypes.from_py(data) if arr.size else dtypes.default_float
    else: check_fits(arr, to_dtype(dtype))  # (Python numbers: torch.tensor's check)
  dt = dtype if dtype is not None else dtypes.from_np(arr.dtype)
  shape = arr.shape  # before ascontiguousarray, which turns a 0-d array into shape (1,)
  arr = np.ascontiguousarray(to_host(arr, dt))  # (bfloat16/fp8: values rounded to their bits)
  buf = Buffer(device, arr.size, dt)
  if arr.size: buf.copyin(memoryview(arr.reshape(-1)).cast("B"))
  return buffer_view(buf, shape)


def _exact_ints(data, dtype) -> np.ndarray:
  """Python numbers for an int dtype as exact ints (floats truncated toward 0, as PyTorch's), in int64 (uint64
  where one is past int64): numpy's own array of ints mixed with floats, or with ints past int64's range, is
  float64, which rounded every int past 2^53 (2**63 - 1 beside 1.5 became -2**63 as int64)."""
  def exact(v):
    try: return int(v)
    except (ValueError, OverflowError): raise ValueError(f"value {v} cannot be converted to {dtype}") from None
  ints = np.vectorize(exact, otypes=[object])(np.array(data, dtype=object))
  check_fits(ints, to_dtype(dtype))  # (exactly, before a numpy int type could wrap them)
  past_int64 = ints.size and ints.max() > np.iinfo(np.int64).max
  return ints.astype(np.uint64 if past_int64 else np.int64)
