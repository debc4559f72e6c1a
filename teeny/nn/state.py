"""Model state: finding a model's tensors (get_parameters, get_state_dict), loading saved values back into them
(load_state_dict), the safetensors file format (safe_save, safe_load, safe_load_metadata), written and read by
teeny itself, and reading PyTorch's torch.save files of tensors (torch_load), without PyTorch.

A safetensors file is: 8 bytes, the little-endian length N of a JSON header; N bytes of that header (padded with
spaces so the data starts 8-byte aligned); then the raw little-endian bytes of every tensor. The header maps each
name to {"dtype", "shape", "data_offsets": [begin, end]} with offsets into the data part, plus an optional
"__metadata__" of string pairs. safe_load checks the whole header against the file's size before it reads a
single tensor, so a truncated or lying file raises a ValueError instead of reading out of bounds."""
from __future__ import annotations
import collections, json, math, os, pickle, tempfile, zipfile
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


def _read_header(path) -> tuple[dict, int, int]:
  """The parsed header, where the data starts, and how many data bytes follow it; every field checked."""
  path = os.fspath(path)
  size = os.path.getsize(path)
  if size < 8: raise ValueError(f"{path}: truncated safetensors file ({size} bytes, the header length alone takes 8)")
  with open(path, "rb") as f:
    n = int.from_bytes(f.read(8), "little")
    if n > size - 8:
      raise ValueError(f"{path}: header length {n} runs past the end of the file ({size} bytes): truncated or corrupt")
    if n > _MAX_HEADER: raise ValueError(f"{path}: header length {n} is larger than the {_MAX_HEADER} bytes allowed")
    raw = f.read(n)
  try: header = json.loads(raw.decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e: raise ValueError(f"{path}: corrupt header, not JSON: {e}") from None
  if not isinstance(header, dict): raise ValueError(f"{path}: corrupt header, a JSON {type(header).__name__} instead of an object")
  data_start, data_len = 8 + n, size - 8 - n
  _check_entries(path, header, data_len)
  return header, data_start, data_len


def _check_entries(path: str, header: dict, data_len: int):
  """Each entry is well formed, its byte range matches shape * itemsize, and the ranges tile the data exactly."""
  meta = header.get("__metadata__")
  if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
    raise ValueError(f"{path}: __metadata__ must map strings to strings")
  spans = []
  for name, e in header.items():
    if name == "__metadata__": continue
    if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
      raise ValueError(f"{path}: entry {name!r} must have exactly dtype, shape and data_offsets, got {e!r}")
    if e["dtype"] not in _ST_DTYPES:
      raise ValueError(f"{path}: {name!r} has dtype {e['dtype']!r}, which teeny can't load (it knows {', '.join(_ST_DTYPES)})")
    shape, offsets = e["shape"], e["data_offsets"]
    if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
      raise ValueError(f"{path}: {name!r} has a bad shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets) and 0 <= offsets[0] <= offsets[1]):
      raise ValueError(f"{path}: {name!r} has bad data_offsets {offsets!r}")
    want = math.prod(shape) * _ST_DTYPES[e["dtype"]].itemsize
    if offsets[1] - offsets[0] != want:
      raise ValueError(f"{path}: {name!r} spans {offsets[1] - offsets[0]} bytes but its shape {tuple(shape)} of {e['dtype']} needs {want}")
    spans.append((offsets[0], offsets[1], name))
  end = 0
  for begin, stop, name in sorted(spans):
    if begin < end: raise ValueError(f"{path}: {name!r} (bytes {begin}..{stop}) overlaps the tensor before it (which ends at {end})")
    if begin > end: raise ValueError(f"{path}: gap in the data: bytes {end}..{begin} before {name!r} belong to no tensor")
    if stop > data_len: raise ValueError(f"{path}: {name!r} (bytes {begin}..{stop}) runs past the end of the data ({data_len} bytes): truncated file?")
    end = stop
  if end != data_len: raise ValueError(f"{path}: {data_len - end} bytes after the last tensor belong to no tensor")


def safe_load_metadata(path) -> dict[str, str]:
  """The "__metadata__" strings of a safetensors file ({} if it has none)."""
  return dict(_read_header(path)[0].get("__metadata__") or {})


def safe_load(path, device: str | None = None) -> dict[str, Tensor]:
  """Read every tensor of a safetensors file onto device (the default device if None), after checking the
  whole header against the file. Tensors come back in the file's order; BOOL bytes other than 0 read as True."""
  header, data_start, data_len = _read_header(path)
  entries = sorted(((k, e) for k, e in header.items() if k != "__metadata__"), key=lambda ke: ke[1]["data_offsets"][0])
  data = np.memmap(path, dtype=np.uint8, mode="r", offset=data_start, shape=(data_len,)) if data_len else np.zeros(0, np.uint8)
  out = {}
  for name, e in entries:
    dt = _ST_DTYPES[e["dtype"]]
    begin, end = e["data_offsets"]
    raw = np.asarray(data[begin:end])
    arr = raw != 0 if dt == dtypes.bool else raw.view(_little_endian(dt))
    out[name] = Tensor(arr.reshape(e["shape"]), device=device, dtype=dt)
  del data
  return out


# ---- PyTorch's torch.save files ----

_TORCH_STORAGES: dict[str, DType] = {
  "FloatStorage": dtypes.float32, "DoubleStorage": dtypes.float64, "HalfStorage": dtypes.float16,
  "LongStorage": dtypes.int64, "IntStorage": dtypes.int32, "ShortStorage": dtypes.int16, "CharStorage": dtypes.int8,
  "ByteStorage": dtypes.uint8, "BoolStorage": dtypes.bool,
}


class _TorchUnpickler(pickle.Unpickler):
  """Unpickles only what a file of tensors holds (dicts, OrderedDicts, tensors rebuilt from storages): any other
  class or function named in the pickle is refused, so loading a file can't run code from it."""
  def __init__(self, file, read_storage):
    super().__init__(file)
    self.read_storage = read_storage

  def find_class(self, module: str, name: str):
    if (module, name) == ("collections", "OrderedDict"): return collections.OrderedDict
    if (module, name) == ("torch._utils", "_rebuild_tensor_v2"): return _rebuild_tensor
    if (module, name) == ("torch._utils", "_rebuild_parameter"): return lambda data, requires_grad, hooks, *rest: data
    if module == "torch" and name.endswith("Storage"): return name
    raise pickle.UnpicklingError(f"torch_load refuses {module}.{name}: only files of tensors (state dicts) are loaded")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"): raise pickle.UnpicklingError(f"unknown storage reference {pid!r}")
    _, kind, key, _location, numel = pid
    if kind not in _TORCH_STORAGES: raise pickle.UnpicklingError(f"storage type {kind} is not supported by teeny")
    return self.read_storage(str(key), _TORCH_STORAGES[kind], numel)


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, requires_grad=False, hooks=None, metadata=None) -> np.ndarray:
  """The strided view of a storage that torch saved as a tensor, bounds-checked, copied out."""
  size, stride = tuple(size), tuple(stride)
  if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size) or any(st < 0 for st in stride):
    raise pickle.UnpicklingError(f"bad tensor layout: offset {offset}, size {size}, stride {stride}")
  if math.prod(size) == 0: return np.zeros(size, dtype=storage.dtype)
  last = offset + sum((s - 1) * st for s, st in zip(size, stride))
  if last >= storage.size:
    raise pickle.UnpicklingError(f"tensor of size {size}, stride {stride} at offset {offset} runs past its storage of {storage.size} items")
  view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=[st * storage.itemsize for st in stride])
  return np.array(view)


def torch_load(path, device: str | None = None):
  """Read a file written by torch.save (the zip format of PyTorch >= 1.6) that holds tensors, usually a state
  dict, without PyTorch: returns the same structure with teeny Tensors on device. The pickle inside may only
  name dicts and tensors; anything else (a pickled model class, code) raises a ValueError."""
  path = os.fspath(path)
  if not zipfile.is_zipfile(path): raise ValueError(f"{path}: not a zip-format torch.save file (legacy pickle files are not supported)")
  with zipfile.ZipFile(path) as z:
    names = z.namelist()
    pkl = next((n for n in names if n.endswith("/data.pkl") and n.count("/") == 1), None)
    if pkl is None: raise ValueError(f"{path}: no data.pkl in the archive: not a torch.save file")
    prefix = pkl[:-len("data.pkl")]
    little = z.read(prefix + "byteorder").decode().strip() != "big" if prefix + "byteorder" in names else True
    storages: dict[str, np.ndarray] = {}

    def read_storage(key: str, dt: DType, numel: int) -> np.ndarray:
      if key not in storages:
        name = prefix + "data/" + key
        if name not in names: raise pickle.UnpicklingError(f"storage {key} is missing from the archive")
        raw = z.read(name)
        if len(raw) != numel * dt.itemsize:
          raise pickle.UnpicklingError(f"storage {key} has {len(raw)} bytes, {numel} items of {dt} need {numel * dt.itemsize}")
        arr = np.frombuffer(raw, dtype=np.uint8)
        storages[key] = arr != 0 if dt == dtypes.bool else arr.view(dt.np.newbyteorder("<" if little else ">"))
      return storages[key]

    try: obj = _TorchUnpickler(z.open(pkl), read_storage).load()
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, zipfile.BadZipFile) as e:
      raise ValueError(f"{path}: can't load: {e}") from None
  return _to_tensors(obj, device)


def _to_tensors(obj, device):
  """Replace every numpy array in a loaded structure (dicts and lists of them) by a Tensor on device."""
  if isinstance(obj, np.ndarray): return Tensor(obj, device=device, dtype=dtypes.from_np(obj.dtype.newbyteorder("=")))
  if isinstance(obj, dict): return type(obj)((k, _to_tensors(v, device)) for k, v in obj.items())
  if isinstance(obj, (list, tuple)): return type(obj)(_to_tensors(v, device) for v in obj)
  return obj
