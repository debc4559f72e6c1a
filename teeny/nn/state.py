"""Model state: finding a model's tensors (get_parameters, get_state_dict), loading saved values back into them
(load_state_dict), the safetensors file format (safe_save, safe_load, safe_load_metadata), written and read by
teeny itself, and reading PyTorch's torch.save files of tensors (torch_load), without PyTorch.

A safetensors file is: 8 bytes, the little-endian length N of a JSON header; N bytes of that header (padded with
spaces so the data starts 8-byte aligned); then the raw little-endian bytes of every tensor. The header maps each
name to {"dtype", "shape", "data_offsets": [begin, end]} with offsets into the data part, plus an optional
"__metadata__" of string pairs. safe_load checks the whole header against the file's size before it reads a
single tensor, so a truncated or lying file raises a ValueError instead of reading out of bounds.

Both loaders take files from strangers: no code in a file runs, every malformed file raises a ValueError naming
it, and the memory and time a load takes follow what the file really holds (README, "Loading files you didn't
write"; tests/test_loader_safety.py)."""
from __future__ import annotations
import collections, contextlib, gc, io, json, math, operator, os, pickle, tempfile, zipfile
import numpy as np
from teeny.dtype import DType, dtypes
from teeny.tensor import Tensor

# ---- walking a model ----

def _children(obj, prefix: str) -> list[tuple[str, object]]:
  """The named things inside obj: dict items, list/tuple elements, namedtuple fields, or an object's attributes."""
  if isinstance(obj, dict): return [(f"{prefix}{k}.", v) for k, v in obj.items()]
  if hasattr(obj, "_asdict") and isinstance(obj, tuple): return [(f"{prefix}{k}.", v) for k, v in obj._asdict().items()]
  if isinstance(obj, (list, tuple)): return [(f"{prefix}{i}.", v) for i, v in enumerate(obj)]
  if isinstance(obj, (type, type(os), type(_children))): return []  # classes, modules, functions hold no weights
  if hasattr(obj, "__dict__"): return [(f"{prefix}{k}.", v) for k, v in vars(obj).items()]
  return []


def get_state_dict(obj, prefix: str = "") -> dict[str, Tensor]:
  """Every Tensor reachable from obj, named by the path to it ("layers.0.weight"), in attribute order.

  Walks attributes, dicts, lists and tuples like tinygrad; a tensor reachable by two paths is listed under both
  names (shared weights), like PyTorch. Iterative and cycle-safe: an object met again on the current path (a
  child pointing back to its parent) is not entered twice."""
  out: dict[str, Tensor] = {}
  stack: list[tuple[str, object, frozenset]] = [(prefix, obj, frozenset())]
  while stack:
    name, node, on_path = stack.pop()
    if isinstance(node, Tensor):
      out[name.rstrip(".")] = node
      continue
    if id(node) in on_path: continue
    kids = _children(node, name)
    path = on_path | {id(node)}
    stack.extend((n, v, path) for n, v in reversed(kids))  # reversed: pop them in their own order
  return out


def get_parameters(obj) -> list[Tensor]:
  """The distinct tensors reachable from obj, in get_state_dict's order (a shared tensor appears once)."""
  unique: dict[int, Tensor] = {}
  for t in get_state_dict(obj).values(): unique.setdefault(id(t), t)
  return list(unique.values())


def load_state_dict(model, state_dict: dict, strict: bool = True, realize: bool = True) -> None:
  """Copy the values of state_dict into the model's tensors of the same names, in place (with assign), so an
  optimizer already holding those tensors keeps working. Values are converted to each tensor's dtype and moved
  to its device. strict=True (the default) requires the keys to match exactly; a shape mismatch is an error
  either way. Everything is checked before anything is written: a failed load leaves the model untouched."""
  targets = get_state_dict(model)
  missing = [k for k in targets if k not in state_dict]
  unexpected = [k for k in state_dict if k not in targets]
  if strict and (missing or unexpected):
    parts = []
    if missing: parts.append(f"missing key(s): {', '.join(missing)}")
    if unexpected: parts.append(f"unexpected key(s): {', '.join(map(str, unexpected))}")
    raise RuntimeError(f"load_state_dict into {type(model).__name__}: {'; '.join(parts)}")
  values = {}
  for name, target in targets.items():
    if name not in state_dict: continue
    value = state_dict[name]
    if not isinstance(value, Tensor): value = Tensor(np.asarray(value), device=target.device)
    if value.shape != target.shape:
      raise ValueError(f"load_state_dict: {name!r} has shape {value.shape} in the state dict but {target.shape} in the model")
    values[name] = value
  written = {}
  for name, value in values.items():
    target = targets[name]
    if id(target) in written: continue  # a shared tensor takes the value under its first name
    written[id(target)] = target.assign(value.to(target.device).cast(target.dtype))
  if realize: Tensor.realize_all(*written.values())


# ---- safetensors ----

_ST_DTYPES: dict[str, DType] = {
  "BOOL": dtypes.bool, "U8": dtypes.uint8, "I8": dtypes.int8, "I16": dtypes.int16, "U16": dtypes.uint16,
  "I32": dtypes.int32, "U32": dtypes.uint32, "I64": dtypes.int64, "U64": dtypes.uint64,
  "F16": dtypes.float16, "F32": dtypes.float32, "F64": dtypes.float64,
}
_ST_CODES = {dt: code for code, dt in _ST_DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024  # the safetensors package refuses bigger headers too
_MAX_DIMS = 64  # numpy's and PyTorch's limit
_MAX_ITEMS = 2**48  # no shape (even an empty one, [2**62, 0]) may reach this many items: index math stays far from overflow


def _little_endian(dt: DType) -> np.dtype: return dt.np.newbyteorder("<")


def safe_save(tensors: dict[str, Tensor], path, metadata: dict[str, str] | None = None) -> None:
  """Write tensors to path in the safetensors format. Biggest items first, so every tensor's bytes start at a
  multiple of its item size; the file is written to a temporary name and renamed, so a crash leaves no half file."""
  if not isinstance(tensors, dict): raise TypeError(f"safe_save needs a dict of name -> Tensor, got {type(tensors).__name__}")
  for name, t in tensors.items():
    if not isinstance(name, str): raise TypeError(f"safe_save: tensor names must be strings, got {name!r}")
    if name == "__metadata__": raise ValueError("safe_save: '__metadata__' is reserved and can't name a tensor")
    if not isinstance(t, Tensor): raise TypeError(f"safe_save: {name!r} is a {type(t).__name__}, not a Tensor")
    if t.dtype not in _ST_CODES: raise TypeError(f"safe_save: {name!r} has dtype {t.dtype}, which safetensors can't hold")
  if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
    raise TypeError("safe_save: metadata must be a dict of str -> str")
  order = sorted(tensors, key=lambda n: (-tensors[n].dtype.itemsize, n))
  Tensor.realize_all(*tensors.values())
  header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
  offset = 0
  for name in order:
    t = tensors[name]
    header[name] = {"dtype": _ST_CODES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
    offset += t.nbytes
  head = json.dumps(header, separators=(",", ":")).encode()
  head += b" " * (-len(head) % 8)  # the data starts 8-byte aligned
  path = os.fspath(path)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-safetensors")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(len(head).to_bytes(8, "little"))
      f.write(head)
      for name in order: f.write(tensors[name].numpy().astype(_little_endian(tensors[name].dtype)).tobytes())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp): os.unlink(tmp)
    raise


def _read_exactly(f, n: int, path: str, what: str) -> bytes:
  """n bytes from f; fewer means the file is shorter than it was when its size was checked."""
  data = f.read(n)
  if len(data) != n: raise ValueError(f"{path}: the file ended while reading {what} ({len(data)} of {n} bytes): was it changed while loading?")
  return data


class _LongNumber(str):
  """A JSON number too long to be a size or an offset: kept as text, so the field check names it (int() of a
  5,000-digit string is slow, and Python refuses it)."""


def _parse_int(text: str): return int(text) if len(text) <= 20 else _LongNumber(text)


def _read_header(f, path: str) -> tuple[dict, int, list[tuple[int, int, str]]]:
  """The parsed header of the open file f, where the data starts, and the tensors as (begin, end, name) in the
  order of their bytes; every field checked."""
  size = os.fstat(f.fileno()).st_size
  if size < 8: raise ValueError(f"{path}: truncated safetensors file ({size} bytes, the header length alone takes 8)")
  n = int.from_bytes(_read_exactly(f, 8, path, "the header length"), "little")
  if n > size - 8:
    raise ValueError(f"{path}: header length {n} runs past the end of the file ({size} bytes): truncated or corrupt")
  if n > _MAX_HEADER: raise ValueError(f"{path}: header length {n} is larger than the {_MAX_HEADER} bytes allowed")
  header = _parse_header(path, _read_exactly(f, n, path, "the header"))
  return header, 8 + n, _check_entries(path, header, size - 8 - n)


def _parse_header(path: str, raw: bytes) -> dict:
  try: text = raw.decode("utf-8")
  except UnicodeDecodeError as e: raise ValueError(f"{path}: corrupt header, not JSON: {e}") from None
  try:
    try: header = json.loads(text)
    except ValueError:  # perhaps a number longer than Python's int() takes: parse again keeping those as text,
      header = json.loads(text, parse_int=_parse_int)  # so the check of its field names it
  except ValueError as e: raise ValueError(f"{path}: corrupt header, not JSON: {e}") from None
  except RecursionError: raise ValueError(f"{path}: corrupt header, JSON nested too deeply") from None
  if not isinstance(header, dict): raise ValueError(f"{path}: corrupt header, a JSON {type(header).__name__} instead of an object")
  return header


def _short(value) -> str:
  text = repr(value)
  return text if len(text) <= 200 else text[:200] + "..."


def _check_shape(path: str, name: str, shape) -> int:
  """The number of items in shape, a list of at most _MAX_DIMS sizes, each a non-negative int; an empty
  tensor's other sizes stay sane too. (A plain loop: a header may hold millions of shapes.)"""
  if type(shape) is not list or len(shape) > _MAX_DIMS:
    raise ValueError(f"{path}: {name!r} has a bad shape {_short(shape)} (a list of at most {_MAX_DIMS} sizes, each an int >= 0)")
  nonzero, empty = 1, False
  for s in shape:
    if type(s) is not int or s < 0:
      raise ValueError(f"{path}: {name!r} has a bad shape {_short(shape)} (a list of at most {_MAX_DIMS} sizes, each an int >= 0)")
    if s: nonzero *= s
    else: empty = True
  if nonzero >= _MAX_ITEMS:  # [2**62, 0] holds nothing, but no index math should meet 2**62
    raise ValueError(f"{path}: {name!r} has shape {_short(shape)}, whose sizes multiply past {_MAX_ITEMS} items")
  return 0 if empty else nonzero


def _check_entries(path: str, header: dict, data_len: int) -> list[tuple[int, int, str]]:
  """Each entry is well formed, its byte range matches shape * itemsize, and the ranges tile the data exactly.
  Returns the (begin, end, name) of every tensor, in the order of their bytes."""
  meta = header.get("__metadata__")
  if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
    raise ValueError(f"{path}: __metadata__ must map strings to strings")
  spans = []
  fields = {"dtype", "shape", "data_offsets"}
  for name, e in header.items():
    if name == "__metadata__": continue
    if type(e) is not dict or e.keys() != fields:
      raise ValueError(f"{path}: entry {name!r} must have exactly dtype, shape and data_offsets, got {_short(e)}")
    dtype, shape, offsets = e["dtype"], e["shape"], e["data_offsets"]
    if type(dtype) is not str or dtype not in _ST_DTYPES:
      raise ValueError(f"{path}: {name!r} has dtype {_short(dtype)}, which teeny can't load (it knows {', '.join(_ST_DTYPES)})")
    items = _check_shape(path, name, shape)
    if not (type(offsets) is list and len(offsets) == 2 and type(offsets[0]) is int and type(offsets[1]) is int and 0 <= offsets[0] <= offsets[1]):
      raise ValueError(f"{path}: {name!r} has bad data_offsets {_short(offsets)} (a pair [begin, end] of ints, 0 <= begin <= end)")
    want = items * _ST_DTYPES[dtype].itemsize
    if offsets[1] - offsets[0] != want:
      raise ValueError(f"{path}: {name!r} spans {offsets[1] - offsets[0]} bytes (data_offsets) but its shape {tuple(shape)} of {dtype} needs {want}")
    spans.append((offsets[0], offsets[1], name))
  end = 0
  spans.sort(key=operator.itemgetter(0, 1))  # stable: empty tensors at one offset keep the header's order
  for begin, stop, name in spans:
    if begin < end: raise ValueError(f"{path}: {name!r} (data_offsets {begin}..{stop}) overlaps the tensor before it (which ends at {end})")
    if begin > end: raise ValueError(f"{path}: gap in the data: bytes {end}..{begin} before {name!r} belong to no tensor")
    if stop > data_len: raise ValueError(f"{path}: {name!r} (data_offsets {begin}..{stop}) runs past the end of the data ({data_len} bytes): truncated file?")
    end = stop
  if end != data_len: raise ValueError(f"{path}: {data_len - end} bytes after the last tensor belong to no tensor")
  return spans


def safe_load_metadata(path) -> dict[str, str]:
  """The "__metadata__" strings of a safetensors file ({} if it has none)."""
  path = os.fspath(path)
  with open(path, "rb") as f, _gc_paused(): return dict(_read_header(f, path)[0].get("__metadata__") or {})


def safe_load(path, device: str | None = None) -> dict[str, Tensor]:
  """Read every tensor of a safetensors file onto device (the default device if None), after checking the
  whole header against the file. Tensors come back in the file's order; BOOL bytes other than 0 read as True.

  The header and the data are read from one open file with ordinary reads (no memory map), each tensor's bytes
  copied out before its tensor is made: a file changed or cut short while it loads raises a ValueError, and
  nothing done to the file later can reach the tensors (a memory map would kill the process with SIGBUS)."""
  path = os.fspath(path)
  with open(path, "rb") as f, _gc_paused():
    header, data_start, spans = _read_header(f, path)
    f.seek(data_start)
    out = {}
    empties: dict[tuple, Tensor] = {}  # (dtype, shape) -> one zero-size tensor that the others alias
    for begin, end, name in spans:
      e = header[name]
      dt, shape = _ST_DTYPES[e["dtype"]], tuple(e["shape"])
      if begin == end:  # nothing to read: alias one tensor per (dtype, shape), 7x cheaper than a buffer each
        if (dt, shape) not in empties: empties[dt, shape] = Tensor(np.zeros(shape, dt.np), device=device, dtype=dt)
        empty = empties[dt, shape]
        out[name] = Tensor(empty, device=empty.device)
        continue
      raw = np.frombuffer(_read_exactly(f, end - begin, path, f"tensor {name!r}"), dtype=np.uint8)
      arr = raw != 0 if dt == dtypes.bool else raw.view(_little_endian(dt))
      out[name] = Tensor(arr.reshape(shape), device=device, dtype=dt)
  return out


@contextlib.contextmanager
def _gc_paused():
  """No cyclic garbage collection inside: a header of a million tensors makes millions of JSON dicts and lists,
  and every full collection would walk all of them again (half of a 1.5 M-entry load's time went there)."""
  was_enabled = gc.isenabled()
  gc.disable()
  try: yield
  finally:
    if was_enabled: gc.enable()


# ---- PyTorch's torch.save files ----

_TORCH_STORAGES: dict[str, DType] = {
  "FloatStorage": dtypes.float32, "DoubleStorage": dtypes.float64, "HalfStorage": dtypes.float16,
  "LongStorage": dtypes.int64, "IntStorage": dtypes.int32, "ShortStorage": dtypes.int16, "CharStorage": dtypes.int8,
  "ByteStorage": dtypes.uint8, "BoolStorage": dtypes.bool,
}
_MAX_RATIO = 100  # torch.save stores entries uncompressed; a re-zipped checkpoint's weights shrink far less than this
_MAX_SMALL_ENTRY = 4096  # a tiny entry ("byteorder") may compress by any ratio: the bytes stay few


class _StorageRef:
  """One storage of the file, as the pickle names it: its key in the archive, its dtype and its length in items.
  The bytes are read once per key (torch_load makes one Tensor per key and dtype); a tensor's layout is checked
  against the item count before any byte is read."""
  __slots__ = ("key", "dtype", "numel")
  __hash__ = None  # not a set member or a dict key: the loaded structure may only hold it where it can be replaced
  def __init__(self, key: str, dtype: DType, numel: int): self.key, self.dtype, self.numel = key, dtype, numel


class _TensorRef:
  """A tensor of the file: a strided view (offset, size, stride, in items) of one storage."""
  __slots__ = ("storage", "offset", "size", "stride")
  __hash__ = None
  def __init__(self, storage, offset, size, stride): self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None) -> _TensorRef:
  """torch._utils._rebuild_tensor_v2: the layout checked against the storage's item count, nothing read yet."""
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
  return _TensorRef(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, hooks=None, *state): return data


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
    if (module, name) in (("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state")): return _rebuild_parameter
    if module == "torch" and name in _TORCH_STORAGES: return name
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


def torch_load(path, device: str | None = None):
  """Read a file written by torch.save (the zip format of PyTorch >= 1.6) that holds tensors, usually a state
  dict, without PyTorch: returns the same structure with teeny Tensors on device. The pickle inside may only
  name dicts and tensors; anything else (a pickled model class, code) raises a ValueError.

  Bounded by what the file holds: every size is checked before bytes are read (see _Archive), each storage is
  read once, and every tensor is a view of its storage like in PyTorch (a tensor expanded from one item stays one
  item, tensors sharing a storage share it), so memory follows the storages the file really holds. A structure
  that shares containers (a list in many places) is converted once per container. Every malformed file raises a
  ValueError naming the file."""
  path = os.fspath(path)
  with open(path, "rb") as f:
    try: return _torch_load(path, f, device)
    except (ValueError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile) as e: raise ValueError(f"{path}: can't load: {e}") from None
    except Exception as e:  # whatever else a malformed zip or pickle sets off (zlib.error, RecursionError, MemoryError, ...)
      raise ValueError(f"{path}: can't load, malformed file: {type(e).__name__}: {e}") from None


def _torch_load(path: str, f, device):
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
    raw: dict[str, bytes] = {}

    def storage_tensor(ref: _StorageRef) -> Tensor:
      if (ref.key, ref.dtype) not in storages:
        if ref.key not in raw: raw[ref.key] = archive.read(prefix + "data/" + ref.key, ref.numel * ref.dtype.itemsize)
        arr = np.frombuffer(raw[ref.key], dtype=np.uint8)
        arr = arr != 0 if ref.dtype == dtypes.bool else arr.view(ref.dtype.np.newbyteorder("<" if little else ">"))
        storages[ref.key, ref.dtype] = Tensor(arr, device=device, dtype=ref.dtype)
      return storages[ref.key, ref.dtype]

    return _convert(obj, lambda t: _strided_view(storage_tensor(t.storage), t.offset, t.size, t.stride))


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


def _strided_view(storage: Tensor, offset: int, size: tuple, stride: tuple) -> Tensor:
  """The tensor torch keeps as (offset, size, stride) over a 1-D storage, built from movement ops on the storage
  (like PyTorch's view, it copies nothing): a zero stride is an expand, so a tensor expanded from one item costs
  one item. The dims that step through memory are peeled outermost (largest stride) first: a dim of n steps of s
  over an inner window of w items is a pad + reshape (n, s) + shrink to w when the windows don't overlap (w <= s),
  and otherwise the window tiled n times and read along a diagonal (reshape to rows of length + s)."""
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
      x = x.pad(unpadded + ((0, n * s - length),)).reshape(*lead, n, s)
    else:  # row r must start at item r*s of the window: rows of length + s over n copies of it start there
      x = x.reshape(*lead, 1, length).expand(*lead, n, length).reshape(*lead, n * length)
      x = x.pad(unpadded + ((0, n * s),)).reshape(*lead, n, length + s)
    x = x.shrink(whole + ((0, n), (0, inner)))
  x = x.reshape(x.shape[:-1])  # the innermost window is one item
  if len(moving) > 1: x = x.permute(sorted(range(len(moving)), key=lambda k: moving[k]))
  x = x.reshape(tuple(size[i] if i in moving else 1 for i in range(len(size))))
  return x.expand(size)
