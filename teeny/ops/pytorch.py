"""PyTorch's spellings as a Tensor mixin, so PyTorch habits work beside tinygrad's names: .to(dtype) and
.to(device, dtype), the casts (.float() .half() .double() .int() .long() .bool() .bfloat16() .short()), .cpu(),
.dim(), .mT, float(t), int(t), format(t, ".2f"), np.asarray(t), print(t) showing the values, Tensor.from_numpy,
empty_like, linspace, is_leaf, detach_(), Tensor.inference_mode(), bitcast / view(dtype) between item sizes, .byte()
.char() .nelement(), the *_as spellings (expand_as, view_as, reshape_as, type_as) and the new_* constructors
(new_zeros, new_ones, new_full, new_empty, new_tensor). The PyTorch methods teeny lacked besides are in
pytorch_math.py (elementwise), pytorch_shape.py (moving, splitting, picking), pytorch_linalg.py (products, cov) and
pytorch_reduce.py (reductions, order statistics).
(dim= beside axis= is ops/args.py's takes_dim; clamp(min=, max=) and var(unbiased=) are in their own mixins.)"""
from __future__ import annotations
from typing import TYPE_CHECKING
import numpy as np
from teeny.dtype import DType, dtypes, to_dtype, normalize_const
from teeny.uop import UOp, Ops
from teeny.schedule import is_buffer_view, buffer_of
from teeny.ops.args import ArgumentError, _shape_arg, _int_arg
from teeny.runtime.device import Device, check_dtype
from teeny.ops.sharding import canonical_device
if TYPE_CHECKING:  # (typing.Self is Python 3.11; annotations are never evaluated here: __future__ annotations)
  from typing import Self

CPU_DEVICE = "LLVM"  # what .cpu() moves to: teeny's CPU backend


class DtypeError(TypeError, ArgumentError):
  """An op given a tensor of a dtype it has no meaning for (frac of ints, quantile of ints): a TypeError (Python's
  kind) and a RuntimeError (what PyTorch raises)."""


def check_tensor(x, name: str):
  """Raise TypeError unless x is a teeny tensor (x is what argument `name` of a PyTorch method got)."""
  if not isinstance(x, PyTorchOps): raise TypeError(f"{name} must be a Tensor, got {type(x).__name__}")


def _is_dtype(x) -> bool:
  """Whether a positional argument of .to() names a dtype (a DType, a name like "float16", a numpy dtype) rather
  than a device (any other string)."""
  if isinstance(x, str): return isinstance(getattr(dtypes, x, None), DType)
  return isinstance(x, (DType, np.dtype, type))


def _has_float64(device) -> bool:
  try: check_dtype(canonical_device(device if device is not None else Device.DEFAULT), dtypes.float64)
  except TypeError: return False
  return True


class PyTorchOps:
  """Tensor's PyTorch spellings."""
  def to(self, *args, device: str | None = None, dtype=None) -> Self:
    """To another device, dtype or both, like torch's .to: t.to("CL"), t.to(dtypes.float16), t.to("CL",
    dtypes.half), t.to(device=..., dtype=...). Self when nothing changes."""
    for a in args:
      if _is_dtype(a) and dtype is None: dtype = a
      elif isinstance(a, (str, tuple)) and device is None: device = a  # (a tuple: several devices)
      else: raise TypeError(f".to() takes a device and a dtype, got {args}")
    out = self if device is None else self._to_device(device)
    return out if dtype is None else out.cast(dtype)
  def _bitcast_resized(self, dtype: DType) -> Self:
    """self's bits read as dtype of another item size, as torch's x.view(dtype): the last axis holds the same bytes,
    so its size is scaled by the size ratio (8 uint8 -> 1 int64, 1 float32 -> 4 uint8), little-endian as every
    device teeny runs on. Unlike torch's, the result is a tensor of its own: later writes to self don't show in
    it, and writing into it raises (it would not reach self). Done with shifts of unsigned ints of each size."""
    if self.ndim == 0: raise ArgumentError(f"bitcast of a 0-d tensor from {self.dtype} to {dtype}: the item sizes differ, so it needs an axis to resize")
    small, large = sorted((self.dtype, dtype), key=lambda d: d.itemsize)
    ratio, small_bits = large.itemsize // small.itemsize, 8 * small.itemsize
    small_uint, large_uint = (next(u for u in dtypes.uints if u.itemsize == d.itemsize) for d in (small, large))
    shifts = type(self).arange(0, ratio * small_bits, small_bits, dtype=large_uint, device=self.device)
    *outer, last = self.shape
    if self.dtype.itemsize < dtype.itemsize:  # `ratio` items make one: shifted into place, their bits never overlap
      if last % ratio: raise ArgumentError(f"bitcast from {self.dtype} to {dtype} reads {ratio} items as one: the last axis ({last}) must be a multiple of {ratio}")
      parts = self.bitcast(small_uint).reshape(*outer, last // ratio, ratio).cast(large_uint)
      out = (parts << shifts).sum(-1, dtype=large_uint).bitcast(dtype)
    else:  # one item makes `ratio`: each the low bits of a shift
      parts = (self.bitcast(large_uint).unsqueeze(-1) >> shifts).cast(small_uint)
      out = parts.reshape(*outer, last * ratio).bitcast(dtype)
    out = out._own()
    out._unwritable = f"{out.dtype} bitcast of a {self.dtype} tensor (of another item size: a tensor of its own, not a view): write into the tensor it was made from"
    return out
  def to_(self, device: str) -> Self:
    """Move this tensor to another device in place (tinygrad's to_): views made of it earlier follow. Returns self."""
    return self.replace(self.to(device))
  # the casts by torch's names (after them, `bool`, `int` and `float` in this class body are the methods)
  def float(self) -> Self:
    """Cast to float32, like torch's .float()."""
    return self.cast(dtypes.float32)
  def half(self) -> Self:
    """Cast to float16, like torch's .half()."""
    return self.cast(dtypes.float16)
  def double(self) -> Self:
    """Cast to float64, like torch's .double()."""
    return self.cast(dtypes.float64)
  def int(self) -> Self:
    """Cast to int32, like torch's .int()."""
    return self.cast(dtypes.int32)
  def long(self) -> Self:
    """Cast to int64, like torch's .long()."""
    return self.cast(dtypes.int64)
  def bool(self) -> Self:
    """Cast to bool (nonzero is True), like torch's .bool()."""
    return self.cast(dtypes.bool)
  def bfloat16(self) -> Self:
    """Cast to bfloat16, like torch's .bfloat16() (stored as bfloat16; arithmetic in float32)."""
    return self.cast(dtypes.bfloat16)
  def short(self) -> Self:
    """Cast to int16, like torch's .short()."""
    return self.cast(dtypes.int16)
  def byte(self) -> Self:
    """Cast to uint8, like torch's .byte()."""
    return self.cast(dtypes.uint8)
  def char(self) -> Self:
    """Cast to int8, like torch's .char()."""
    return self.cast(dtypes.int8)
  def type_as(self, other) -> Self:
    """Cast to other's dtype, like torch's .type_as(other)."""
    check_tensor(other, "type_as's other")
    return self.cast(other.dtype)
  def expand_as(self, other) -> Self:
    """A view broadcast to other's shape, like torch's .expand_as(other)."""
    check_tensor(other, "expand_as's other")
    return self.expand(other.shape)
  def view_as(self, other) -> Self:
    """A view in other's shape, like torch's .view_as(other)."""
    check_tensor(other, "view_as's other")
    return self.reshape(other.shape)
  def reshape_as(self, other) -> Self:
    """Reshaped to other's shape, like torch's .reshape_as(other)."""
    check_tensor(other, "reshape_as's other")
    return self.reshape(other.shape)
  def nelement(self) -> int:
    """The number of elements, numel(), by torch's other name."""
    return self.numel()
  def element_size(self) -> int:
    """The bytes one element takes (the dtype's itemsize), like torch's element_size()."""
    return self.dtype.itemsize
  @property
  def nbytes(self) -> int:
    """The bytes all the elements take: numel() * element_size()."""
    return self.numel() * self.dtype.itemsize
  def is_floating_point(self) -> bool:
    """Whether the dtype is a float one, like torch's."""
    return dtypes.is_float(self.dtype)
  def cpu(self) -> Self:
    """On the CPU (the LLVM device), like torch's .cpu()."""
    return self.to(CPU_DEVICE)
  def dim(self) -> int:
    """The number of dimensions (ndim), like torch's .dim()."""
    return self.ndim
  @property
  def mT(self) -> Self:
    """The last two dimensions swapped (a batch of matrices transposed), like torch's .mT."""
    if self.ndim < 2: raise ArgumentError(f".mT needs at least 2 dimensions, got shape {self.shape}")
    return self.transpose(-2, -1)

  # ---- to Python and numpy (these ask for the data: they realize) ----
  def _scalar(self, what: str):
    if self.numel() != 1: raise TypeError(f"only a tensor of one element converts to {what}, got shape {self.shape}")
    return self.item()
  def __float__(self) -> float: return float(self._scalar("a Python float"))
  def __int__(self) -> int: return int(self._scalar("a Python int"))
  def __index__(self) -> int:
    """operator.index(t), as PyTorch's: a one-element int or bool tensor as a Python int ([10, 20][t], range(t))."""
    if dtypes.is_float(self.dtype): raise TypeError(f"only integer tensors of a single element can be converted to an index, got {self.dtype}")
    return int(self._scalar("an index"))
  def __format__(self, spec: str) -> str:
    """format(t, ".2f") formats a one-element tensor's value; format(t) (and f"{t}") is str(t)."""
    return format(self._scalar("a formatted number"), spec) if spec else str(self)
  def __array__(self, dtype=None, copy=None) -> np.ndarray:
    """np.asarray(t), np.array(t): the values (a copy on the host; copy=False raises, as numpy 2 asks)."""
    if copy is False: raise ValueError("a tensor's values are on its device: np.array(t, copy=False) can't avoid a copy (use np.asarray(t))")
    values = self.numpy()
    return values if dtype is None else values.astype(dtype, copy=False)
  def __str__(self) -> str:
    """The values, like torch's print(t): print asks for the data (repr(t) does not)."""
    values = np.array2string(self.numpy(), separator=", ", prefix="Tensor(")
    grad = ", requires_grad=True" if self.requires_grad else ""
    return f"Tensor({values}, device='{self.device}', dtype={self.dtype}{grad})"
  def empty_like(self, dtype=None, device=None, requires_grad: bool | None = None) -> Self:
    """An uninitialized tensor of self's shape (and dtype and device unless given), like torch.empty_like."""
    return type(self).empty(self.shape, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)
  # the new_* constructors: self's dtype and device unless given, like torch's
  def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad: bool | None = None) -> Self:
    """A tensor of `size` filled with fill_value, in self's dtype and on self's device unless given, like torch's
    new_full (a float fill of an int dtype is truncated, as there)."""
    return type(self).full(_shape_arg((size,)), fill_value, dtype=dtype or self.dtype, device=device or self.device,
                           requires_grad=requires_grad)
  def new_zeros(self, *size, dtype=None, device=None, requires_grad: bool | None = None) -> Self:
    """Zeros of `size` (sizes or one tuple), in self's dtype and on self's device unless given, like torch's."""
    return self.new_full(_shape_arg(size), 0, dtype=dtype, device=device, requires_grad=requires_grad)
  def new_ones(self, *size, dtype=None, device=None, requires_grad: bool | None = None) -> Self:
    """Ones of `size` (sizes or one tuple), in self's dtype and on self's device unless given, like torch's."""
    return self.new_full(_shape_arg(size), 1, dtype=dtype, device=device, requires_grad=requires_grad)
  def new_empty(self, *size, dtype=None, device=None, requires_grad: bool | None = None) -> Self:
    """An uninitialized tensor of `size`, in self's dtype and on self's device unless given, like torch's."""
    return type(self).empty(_shape_arg(size), dtype=dtype or self.dtype, device=device or self.device,
                            requires_grad=requires_grad)
  def new_tensor(self, data, *, dtype=None, device=None, requires_grad: bool | None = None) -> Self:
    """A new tensor holding a copy of data (numbers, lists, arrays or a tensor, whose graph is left behind), in
    self's dtype and on self's device unless given, like torch's new_tensor."""
    dtype, device = dtype or self.dtype, device or self.device
    if isinstance(data, PyTorchOps): out = data.detach().to(device, dtype).clone()
    else: out = type(self)(data, dtype=dtype, device=device)
    return self._as_leaf(out, requires_grad)
  @classmethod
  def linspace(cls, start, stop, steps: int, dtype=None, device=None, requires_grad: bool | None = None) -> Self:
    """steps evenly spaced values from start to stop, both included, like torch.linspace: the first half counted
    up from start, the second down from stop (so stop is exact)."""
    steps = _int_arg(steps, "linspace's steps")  # (1.5 gave points outside [start, stop])
    if steps < 0: raise ArgumentError(f"linspace needs steps >= 0, got {steps}")
    if dtype is not None and to_dtype(dtype) == dtypes.bool: raise ArgumentError("linspace has no bool form (as in PyTorch)")
    if steps == 1: return cls.full((1,), start, dtype=dtype or dtypes.default_float, device=device, requires_grad=requires_grad)
    # computed in float64 for float64 (in float32 0.1 steps round) and for ints (as PyTorch: float32 can't hold
    # 2**30 // 6 or 1e10 + 50) where the device has it, else in the default float and rounded once
    dt = dtypes.float64 if dtype is not None and to_dtype(dtype) == dtypes.float64 else dtypes.default_float
    if dtype is not None and dtypes.is_int(to_dtype(dtype)):  # an int dtype takes the ends as its own values first, as PyTorch
      start, stop = normalize_const(start, to_dtype(dtype)), normalize_const(stop, to_dtype(dtype))
      if _has_float64(device): dt = dtypes.float64
    i = cls.arange(steps, device=device).cast(dt)
    step = (stop - start) / max(steps - 1, 1)
    out = (i < steps // 2).where(start + i * step, stop - (steps - 1 - i) * step)
    return cls._as_leaf(out.cast(dtype) if dtype is not None else out, requires_grad)
  @classmethod
  def from_blob(cls, ptr: int, shape, dtype=None, device=None, **kw) -> Self:
    """A tensor over the memory at host address ptr, without a copy and without owning it (tinygrad's from_blob,
    torch.frombuffer's idea): the memory must outlive the tensor, kernels read what is there when they run, and
    writes to the tensor land there. Only on a device that reads host memory in place (LLVM)."""
    if not isinstance(ptr, int) or ptr <= 0: raise ArgumentError(f"from_blob needs a host address (a positive int), got {ptr!r}")
    out = cls.empty(*shape if isinstance(shape, (tuple, list)) else (shape,), dtype=dtype, device=device, **kw)
    if ptr % out.dtype.itemsize: raise ArgumentError(f"from_blob: address {ptr:#x} is not aligned to {out.dtype} ({out.dtype.itemsize} bytes)")
    if out.numel() == 0: return out
    buffer_of(out.uop).borrow(ptr)
    return out
  @classmethod
  def from_numpy(cls, array: np.ndarray) -> Self:
    """A tensor holding a copy of a numpy array (teeny's buffers live on a device: unlike torch, not shared)."""
    if not isinstance(array, np.ndarray): raise TypeError(f"from_numpy takes a numpy array, got {type(array).__name__}")
    return cls(array)

  # ---- autograd ----
  @property
  def is_leaf(self) -> bool:
    """Like torch's: a tensor that doesn't require grad, or one the user made that does (a parameter); the result
    of an op on tensors that require grad is not a leaf, and neither is a view of one."""
    return not self._requires_grad or (self._leaf and self._base is None)
  def detach_(self) -> Self:
    """Detach this tensor from the graph that computes it, in place (like torch's detach_): it no longer requires
    grad, and no gradient flows through it into what it was computed from. Views can't: use detach()."""
    if self._base is not None: raise RuntimeError("detach_() of a view: use detach(), which returns a new tensor")
    if self._requires_grad:
      self._graph = None  # (a realized result keeps the graph that computed it for backward: not any more)
      if not is_buffer_view(self._uop): self._uop = UOp(Ops.DETACH, self.dtype, (self._uop,))
    self._requires_grad, self._leaf = None, False
    return self
  @classmethod
  def inference_mode(cls):
    """torch.inference_mode's spelling of no_grad: `with Tensor.inference_mode():` (teeny has no other difference)."""
    return cls.no_grad()
