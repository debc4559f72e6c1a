"""Reading PyTorch's torch.save files of tensors (torch_load), without PyTorch: the zip archive and the pickle inside
it, checked before any tensor's bytes are read. bfloat16 and fp8 tensors (PyTorch >= 2.1 saves fp8 as bytes with
the dtype named per tensor) load as their bits, unchanged. nn/state.py exports torch_load."""
from __future__ import annotations
import collections, io, math, os, pickle, zipfile
import numpy as np
from teeny.dtype import DType, dtypes
from teeny.tensor import Tensor
from teeny.uop import Ops
from teeny.nn.loading import MAX_DIMS as _MAX_DIMS, MAX_ITEMS as _MAX_ITEMS, from_bytes as _from_bytes, short as _short
from teeny.nn.loading import FileSource, file_stamp, file_tensor


# ---- PyTorch's torch.save files ----

_TORCH_STORAGES: dict[str, DType] = {
  "FloatStorage": dtypes.float32, "DoubleStorage": dtypes.float64, "HalfStorage": dtypes.float16,
  "LongStorage": dtypes.int64, "IntStorage": dtypes.int32, "ShortStorage": dtypes.int16, "CharStorage": dtypes.int8,
  "ByteStorage": dtypes.uint8, "BoolStorage": dtypes.bool, "BFloat16Storage": dtypes.bfloat16,
  "UntypedStorage": dtypes.uint8,  # bytes: newer dtypes (fp8) are saved as these, the dtype given per tensor
}
# torch's dtypes by name, as _rebuild_tensor_v3 names a tensor's dtype
_TORCH_DTYPES: dict[str, DType] = {
  "float32": dtypes.float32, "float64": dtypes.float64, "float16": dtypes.float16, "bfloat16": dtypes.bfloat16,
  "float8_e4m3fn": dtypes.fp8e4m3, "float8_e5m2": dtypes.fp8e5m2, "int64": dtypes.int64, "int32": dtypes.int32,
  "int16": dtypes.int16, "int8": dtypes.int8, "uint8": dtypes.uint8, "bool": dtypes.bool, "uint16": dtypes.uint16,
  "uint32": dtypes.uint32, "uint64": dtypes.uint64,
}
_MAX_RATIO = 100  # torch.save stores entries uncompressed; a re-zipped checkpoint's weights shrink far less than this
_MAX_SMALL_ENTRY = 4096  # a tiny entry ("byteorder") may compress by any ratio: the bytes stay few


class _StorageRef:
  """One storage of the file, as the pickle names it: its key in the archive, its dtype and its length in items.
  The bytes are read once per key and dtype (torch_load makes one Tensor of each); a tensor's layout is checked
  against the item count before any byte is read."""
  __slots__ = ("key", "dtype", "numel")
  __hash__ = None  # not a set member or a dict key: the loaded structure may only hold it where it can be replaced
  def __init__(self, key: str, dtype: DType, numel: int): self.key, self.dtype, self.numel = key, dtype, numel


class _TensorRef:
  """A tensor of the file: a strided view (offset, size, stride, in items) of one storage, its values negated
  where PyTorch's negative bit is set (a neg view: x.conj().imag of a complex x)."""
  __slots__ = ("storage", "offset", "size", "stride", "negative")
  __hash__ = None
  def __init__(self, storage, offset, size, stride, negative=False):
    self.storage, self.offset, self.size, self.stride, self.negative = storage, offset, size, stride, negative


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None) -> _TensorRef:
  """torch._utils._rebuild_tensor_v2: the layout checked against the storage's item count, nothing read yet.
  metadata holds the tensor's flags: "neg" (its values are the storage's negated) is the one a real tensor has."""
  negative = _negative_flag(metadata)
  if not isinstance(storage, _StorageRef): raise pickle.UnpicklingError(f"a tensor's storage is a {type(storage).__name__}, not a storage")
  if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride) <= _MAX_DIMS):
    raise pickle.UnpicklingError(f"bad tensor layout: size {_short(size)}, stride {_short(stride)}")
  if not all(type(v) is int and v >= 0 for v in (offset, *size, *stride)):
    raise pickle.UnpicklingError(f"bad tensor layout: offset {_short(offset)}, size {_short(size)}, stride {_short(stride)} (ints >= 0)")
  if math.prod(s for s in size if s) >= _MAX_ITEMS: raise pickle.UnpicklingError(f"tensor size {size} has {_MAX_ITEMS} items or more")
  if math.prod(size):
    last = offset + sum((s - 1) * st for s, st in zip(size, stride))
    if last >= storage.numel:
      raise pickle.UnpicklingError(f"tensor of size {size}, stride {stride} at offset {offset} runs past its storage of {storage.numel} items")
  return _TensorRef(storage, offset, size, stride, negative)


def _negative_flag(metadata) -> bool:
  if metadata is None: return False
  if not isinstance(metadata, dict) or not set(metadata) <= {"neg"}:
    raise pickle.UnpicklingError(f"tensor flags {_short(metadata)} are not supported (only PyTorch's 'neg')")
  return bool(metadata.get("neg", False))


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad=False, hooks=None, dtype=None, metadata=None) -> _TensorRef:
  """torch._utils._rebuild_tensor_v3: a tensor over a storage of bytes, its dtype named (PyTorch's fp8 tensors)."""
  if not isinstance(storage, _StorageRef) or not isinstance(dtype, DType):
    raise pickle.UnpicklingError(f"a tensor of a {type(storage).__name__} and dtype {_short(dtype)}: not a storage and a dtype")
  if storage.dtype != dtype:
    nbytes = storage.numel * storage.dtype.itemsize
    if storage.dtype != dtypes.uint8 or nbytes % dtype.itemsize:
      raise pickle.UnpicklingError(f"storage {storage.key} of {storage.numel} {storage.dtype} can't hold whole {dtype} items")
    storage = _StorageRef(storage.key, dtype, nbytes // dtype.itemsize)
  return _rebuild_tensor(storage, offset, size, stride, metadata=metadata)


def _rebuild_parameter(data, requires_grad=False, hooks=None, *state): return data


def _latin1_bytes(text, encoding="latin1") -> bytes:
  """_codecs.encode as pickle protocol 2 uses it for a bytes object: its bytes as latin-1 text (nothing else)."""
  if not isinstance(text, str) or encoding != "latin1": raise pickle.UnpicklingError("_codecs.encode only rebuilds bytes (latin-1 text)")
  return text.encode("latin1")


def _bytearray(data=b"") -> bytearray:
  """bytearray as pickle rebuilds one, from its bytes only (never bytearray(n): n bytes of memory that the file
  doesn't hold)."""
  if not isinstance(data, bytes): raise pickle.UnpicklingError("bytearray is only rebuilt from its bytes")
  return bytearray(data)


def _torch_device(kind, index=None) -> str:
  """A torch.device in the file (PyTorch's weights_only loads them): its name, e.g. 'cpu' or 'cuda:0'."""
  if not isinstance(kind, str) or not (index is None or type(index) is int): raise pickle.UnpicklingError(f"bad torch.device {_short(kind)}")
  return kind if index is None else f"{kind}:{index}"


# plain values torch.load(weights_only=True) accepts too: rebuilt as the Python objects they are
_PLAIN_CLASSES = {("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "bytearray"): _bytearray,
                  ("builtins", "complex"): complex, ("_codecs", "encode"): _latin1_bytes, ("torch", "Size"): tuple,
                  ("torch", "device"): _torch_device}


class _TorchUnpickler(pickle.Unpickler):
  """Unpickles only what a file of tensors holds (dicts, OrderedDicts, lists, tuples, numbers, strings, tensors
  rebuilt from storages): any other class or function named in the pickle is refused, so loading a file can't run
  code from it. Tensors come out as _TensorRefs, checked against the sizes the archive stores, no data read."""
  def __init__(self, file, storage_ref):
    super().__init__(file)
    self.storage_ref = storage_ref

  def find_class(self, module: str, name: str):
    if (module, name) == ("collections", "OrderedDict"): return collections.OrderedDict
    if (module, name) == ("torch._utils", "_rebuild_tensor_v2"): return _rebuild_tensor
    if (module, name) == ("torch._utils", "_rebuild_tensor_v3"): return _rebuild_tensor_v3
    if (module, name) == ("torch.storage", "UntypedStorage"): return "UntypedStorage"
    if module == "torch" and name in _TORCH_DTYPES: return _TORCH_DTYPES[name]
    if (module, name) in (("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state")): return _rebuild_parameter
    if module == "torch" and name in _TORCH_STORAGES: return name
    if module == "__builtin__": module = "builtins"  # (pickle protocol 2, which torch.save uses, names Python 2's)
    if (module, name) in _PLAIN_CLASSES: return _PLAIN_CLASSES[module, name]
    raise pickle.UnpicklingError(f"torch_load refuses {module}.{name}: only files of tensors (state dicts) are loaded")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"): raise pickle.UnpicklingError(f"unknown storage reference {_short(pid)}")
    _, kind, key, _location, numel = pid
    if not (isinstance(kind, str) and kind in _TORCH_STORAGES): raise pickle.UnpicklingError(f"storage type {_short(kind)} is not supported by teeny")
    if not (isinstance(key, str) and type(numel) is int and numel >= 0): raise pickle.UnpicklingError(f"bad storage reference {_short(pid)}")
    return self.storage_ref(key, _TORCH_STORAGES[kind], numel)


class _Archive:
  """The zip archive of a torch.save file, read with every size checked before the bytes are: entries may not
  overlap (an overlapping "zip bomb" reuses one compressed run for many entries), nor decompress to more than
  _MAX_RATIO times their stored size, nor differ from the size the pickle claims for them."""
  def __init__(self, path: str, z: zipfile.ZipFile):
    self.path, self.z = path, z
    infos = sorted(z.infolist(), key=lambda i: i.header_offset)
    for a, b in zip(infos, infos[1:]):
      if a.header_offset + a.compress_size > b.header_offset:
        raise ValueError(f"entries {a.filename!r} and {b.filename!r} overlap in the archive")
    self.infos = {i.filename: i for i in infos}

  def read(self, name: str, want: int | None = None) -> bytes:
    info = self.infos.get(name)
    if info is None: raise ValueError(f"{name} is missing from the archive")
    if want is not None and info.file_size != want:
      raise ValueError(f"{name} has {info.file_size} bytes, but the pickle's storage needs {want}")
    if info.file_size > _MAX_SMALL_ENTRY and info.file_size > _MAX_RATIO * info.compress_size:
      raise ValueError(f"{name} unpacks to {info.file_size} bytes from {info.compress_size}: compressed more than {_MAX_RATIO}:1, a zip bomb?")
    with self.z.open(info) as f: data = f.read(info.file_size + 1)
    if len(data) != info.file_size: raise ValueError(f"{name} holds {len(data)} bytes, but the archive says {info.file_size}")
    return data


def torch_load(path, device: str | None = None, lazy: bool = False):
  """Read a file written by torch.save (the zip format of PyTorch >= 1.6) that holds tensors, usually a state
  dict, without PyTorch: returns the same structure with teeny Tensors on device. The pickle inside may only
  name dicts and tensors; anything else (a pickled model class, code) raises a ValueError.

  Bounded by what the file holds: every size is checked before bytes are read (see _Archive), each storage is
  read once (per dtype it is viewed as) and its host copy dropped once it is on the device, and every tensor is a
  view of its storage like in PyTorch (a tensor expanded from one item stays one item, tensors sharing a storage
  share it), so memory follows the storages the file really holds. A structure that shares containers (a list in
  many places) is converted once per container. Every malformed file raises a ValueError naming the file.

  lazy=True (like safe_load's) reads each storage when a tensor of it is first used; the file must stay as it was.
  (Storages that the archive compresses, which torch.save never does, are read at load all the same.)"""
  path = os.fspath(path)
  with open(path, "rb") as f:
    try: return _torch_load(path, f, device, lazy)
    except (ValueError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile) as e: raise ValueError(f"{path}: can't load: {e}") from None
    except Exception as e:  # whatever else a malformed zip or pickle sets off (zlib.error, RecursionError, MemoryError, ...)
      raise ValueError(f"{path}: can't load, malformed file: {type(e).__name__}: {e}") from None


def _torch_load(path: str, f, device, lazy: bool):
  if not zipfile.is_zipfile(f): raise ValueError("not a zip-format torch.save file (legacy pickle files are not supported)")
  with zipfile.ZipFile(f) as z:
    archive = _Archive(path, z)
    pkl = next((n for n in archive.infos if n.endswith("/data.pkl") and n.count("/") == 1), None)
    if pkl is None: raise ValueError("no data.pkl in the archive: not a torch.save file")
    prefix = pkl[:-len("data.pkl")]
    little = prefix + "byteorder" not in archive.infos or archive.read(prefix + "byteorder").decode().strip() != "big"
    refs: dict[str, _StorageRef] = {}

    def storage_ref(key: str, dt: DType, numel: int) -> _StorageRef:
      ref = refs.setdefault(key, _StorageRef(key, dt, numel))
      if ref.numel * ref.dtype.itemsize != numel * dt.itemsize:
        raise pickle.UnpicklingError(f"storage {key} is named with {numel} items of {dt} and with {ref.numel} of {ref.dtype}")
      entry = archive.infos.get(prefix + "data/" + key)
      if entry is None: raise pickle.UnpicklingError(f"storage {key} is missing from the archive")
      want = numel * dt.itemsize
      if entry.file_size != want:
        raise pickle.UnpicklingError(f"storage {key} has {entry.file_size} bytes, {numel} items of {dt} need {want}")
      return ref if ref.dtype == dt else _StorageRef(key, dt, numel)

    obj = _TorchUnpickler(io.BytesIO(archive.read(pkl)), storage_ref).load()
    storages: dict[tuple[str, DType], Tensor] = {}
    stamp = file_stamp(f)

    def storage_tensor(ref: _StorageRef) -> Tensor:
      if (ref.key, ref.dtype) not in storages:
        name, items = prefix + "data/" + ref.key, _StorageItems(ref.dtype, little)
        start = _stored_data_offset(f, archive.infos[name]) if lazy and ref.numel else None
        if start is not None:
          storages[ref.key, ref.dtype] = file_tensor(FileSource(path, start, ref.numel * ref.dtype.itemsize, stamp, items), (ref.numel,), ref.dtype, device)
        else:  # the bytes are dropped once on the device: host memory holds one storage at a time
          raw = np.frombuffer(archive.read(name, ref.numel * ref.dtype.itemsize), dtype=np.uint8)
          storages[ref.key, ref.dtype] = _from_bytes(items(raw), ref.dtype, device)
      return storages[ref.key, ref.dtype]

    return _convert(obj, lambda t: _loaded_tensor(storage_tensor(t.storage), t))


class _StorageItems:
  """A storage's bytes -> its items (bool bytes other than 0 are True; the file's byte order)."""
  __slots__ = ("dt", "little")
  def __init__(self, dt: DType, little: bool): self.dt, self.little = dt, little
  def __call__(self, raw: np.ndarray) -> np.ndarray:
    return raw != 0 if self.dt == dtypes.bool else raw.view(self.dt.np.newbyteorder("<" if self.little else ">"))


def _stored_data_offset(f, info: zipfile.ZipInfo) -> int | None:
  """Where an uncompressed archive entry's bytes start in the file (after its local header: 30 bytes, its name,
  its extra field), for reading them later; None for a compressed entry or a local header that doesn't match."""
  if info.compress_type != zipfile.ZIP_STORED: return None
  f.seek(info.header_offset)
  local = f.read(30)
  if len(local) != 30 or local[:4] != b"PK\x03\x04": return None
  name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
  start = info.header_offset + 30 + name_len + extra_len
  return start if start + info.file_size <= os.fstat(f.fileno()).st_size else None


def _convert(root, tensor_of):
  """root with every _TensorRef replaced by tensor_of(ref): without recursion, and each container (and tensor)
  converted once however often it is shared, so a pickle of lists that hold each other twice over (a billion
  laughs) converts in time proportional to its size, and sharing (even cycles) survives the copy.

  Lists and dicts are made empty first and filled at the end, so a cycle through them finds its copy already
  there; tuples are built once their items are (a cycle can't run through tuples alone)."""
  new: dict[int, object] = {}
  order: list = []  # containers, each after everything it holds unless a cycle runs through it
  keep: list = []  # the originals, alive while their ids key `new`
  stack = [(root, False)]
  while stack:
    obj, done = stack.pop()
    if done:
      order.append(obj)
      continue
    if id(obj) in new: continue
    if isinstance(obj, _TensorRef): new[id(obj)] = tensor_of(obj)
    elif isinstance(obj, (list, dict, tuple)):
      new[id(obj)] = type(obj)() if not isinstance(obj, tuple) else None  # a tuple is made once its items are
      stack.append((obj, True))
      stack.extend((v, False) for v in (obj.values() if isinstance(obj, dict) else obj))
    else: continue  # numbers, strings, None: kept as they are
    keep.append(obj)

  def convert(v): return new.get(id(v), v) if isinstance(v, (_TensorRef, list, dict, tuple)) else v
  for obj in order:
    if isinstance(obj, tuple): new[id(obj)] = tuple(convert(v) for v in obj)
  for obj in order:
    if isinstance(obj, list): new[id(obj)].extend(convert(v) for v in obj)
    elif isinstance(obj, dict): new[id(obj)].update((k, convert(v)) for k, v in obj.items())
  return convert(root)


def _loaded_tensor(storage: Tensor, ref: _TensorRef) -> Tensor:
  """The file's tensor: a view of its storage, as PyTorch's is. A negative one (PyTorch's neg view, which negates
  what it reads and writes) is a copy here, which would neither follow writes into the storage nor pass its own
  writes on: then it and every tensor of its storage raise on a write (clone() one to write)."""
  x = _strided_view(storage, ref.offset, ref.size, ref.stride)
  if not ref.negative: return x
  x = -x
  x._unwritable = "tensor loaded from a torch file as a negative view (a copy here, a view in PyTorch): clone() it to write"
  storage._unwritable = "tensor loaded from a torch file whose storage a negative view of the file shares (a copy here, a view in PyTorch): clone() it to write"
  return x


def _strided_view(storage: Tensor, offset: int, size: tuple, stride: tuple) -> Tensor:
  """The tensor torch keeps as (offset, size, stride) over a 1-D storage, as a view of the storage made of
  movement ops (writes through it reach the storage and the tensors sharing it, and it sees theirs): a zero stride
  is an expand, so a tensor expanded from one item costs one item. The dims that step through memory are peeled
  outermost (largest stride) first: a dim of n steps of s over an inner window of w items is a pad + reshape (n, s)
  + shrink to w when the windows don't overlap (w <= s), and otherwise the window tiled n times and read along a
  diagonal (reshape to rows of length + s; writing into such overlapping rows raises, as in PyTorch). The pads
  are the view's own movement ops, not pad()'s copy: only padding is cut off after them."""
  if math.prod(size) == 0: return Tensor(np.zeros(size, storage.dtype.np), device=storage.device, dtype=storage.dtype)
  moving = sorted((i for i in range(len(size)) if size[i] > 1 and stride[i] > 0), key=lambda i: -stride[i])
  contiguous = all(stride[i] == math.prod(size[i + 1:]) for i in range(len(size)) if size[i] > 1)
  if contiguous: return storage.shrink(((offset, offset + math.prod(size)),)).reshape(size)
  spans = [1] * (len(moving) + 1)  # spans[k]: items from the first to the last one the dims moving[k:] reach
  for k in reversed(range(len(moving))): spans[k] = spans[k + 1] + (size[moving[k]] - 1) * stride[moving[k]]
  x = storage.shrink(((offset, offset + spans[0]),))
  for k, axis in enumerate(moving):
    n, s, inner, length = size[axis], stride[axis], spans[k + 1], spans[k]
    lead = x.shape[:-1]
    unpadded, whole = ((0, 0),) * len(lead), tuple((0, d) for d in lead)
    if inner <= s:
      x = x._view(Ops.PAD, unpadded + ((0, n * s - length),)).reshape(*lead, n, s)
    else:  # row r must start at item r*s of the window: rows of length + s over n copies of it start there
      x = x.reshape(*lead, 1, length).expand(*lead, n, length).reshape(*lead, n * length)
      x = x._view(Ops.PAD, unpadded + ((0, n * s),)).reshape(*lead, n, length + s)
    x = x.shrink(whole + ((0, n), (0, inner)))
  x = x.reshape(x.shape[:-1])  # the innermost window is one item
  if len(moving) > 1: x = x.permute(sorted(range(len(moving)), key=lambda k: moving[k]))
  x = x.reshape(tuple(size[i] if i in moving else 1 for i in range(len(size))))
  return x.expand(size)
