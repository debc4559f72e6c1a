"""Model state: finding a model's tensors (get_parameters, get_state_dict), loading saved values back into them
(load_state_dict), the safetensors file format (safe_save, safe_load, safe_load_metadata), written and read by
teeny itself, sharded Hugging Face checkpoints (an index.json naming the shards), and PyTorch's torch.save files
of tensors (torch_load, read in nn/torch_file.py), without PyTorch, and GGUF files (gguf_load, nn/gguf.py). bfloat16 and fp8 tensors load as their bits,
unchanged (dtypes.bfloat16, fp8e4m3, fp8e5m2).

A safetensors file is: 8 bytes, the little-endian length N of a JSON header; N bytes of that header (padded with
spaces so the data starts 8-byte aligned); then the raw little-endian bytes of every tensor. The header maps each
name to {"dtype", "shape", "data_offsets": [begin, end]} with offsets into the data part, plus an optional
"__metadata__" of string pairs. safe_load checks the whole header against the file's size before it reads a
single tensor, so a truncated or lying file raises a ValueError instead of reading out of bounds.

Both loaders take files from strangers: no code in a file runs, every malformed file raises a ValueError naming
it, and the memory and time a load takes follow what the file really holds (README, "Loading files you didn't
write"; tests/test_loader_safety.py)."""
from __future__ import annotations
import contextlib, gc, json, operator, os, tempfile, time
from typing import NamedTuple
import numpy as np
from teeny.dtype import DType, dtypes, STORAGE_FLOATS
from teeny.tensor import Tensor
from teeny.nn.loading import MAX_DIMS as _MAX_DIMS, MAX_ITEMS as _MAX_ITEMS, from_bytes as _from_bytes, short as _short, shard_plan
from teeny.nn.loading import FileSource, file_stamp, file_tensor
from teeny.nn.torch_file import torch_load, _strided_view  # noqa: F401  (torch_load is this module's too)
from teeny.nn.gguf import gguf_load  # noqa: F401  (and gguf_load, like tinygrad's nn.state)

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


class IncompatibleKeys(NamedTuple):
  """What load_state_dict returns, like PyTorch's: the model's keys the state lacked, and the state's keys the
  model has not."""
  missing_keys: list
  unexpected_keys: list


def load_state_dict(model, state_dict: dict, strict: bool = True, verbose: bool = False, consume: bool = False,
                    realize: bool = True) -> IncompatibleKeys:
  """Copy the values of state_dict into the model's tensors of the same names, in place (with assign), so an
  optimizer already holding those tensors keeps working. Values are converted to each tensor's dtype and moved
  to its device. strict=True (the default) requires the keys to match exactly; a shape mismatch is an error
  either way. Everything is checked before anything is written: a failed load leaves the model untouched.
  Returns the missing and unexpected keys (empty lists after a strict load), as PyTorch's does. The arguments
  are tinygrad's, in its order: verbose prints what was loaded and how long it took (off by default, as PyTorch
  prints nothing; tinygrad's is on), consume removes the loaded entries from state_dict (its memory can go)."""
  start = time.perf_counter()
  targets = get_state_dict(model)
  # a BatchNorm's step counter, which checkpoints from before PyTorch 0.4.1 lack: kept as it is, as PyTorch does
  missing = [k for k in targets if k not in state_dict and k.rsplit(".", 1)[-1] != "num_batches_tracked"]
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
    if target.shape == () and value.shape == (1,): value = value.reshape(())  # old checkpoints' scalars, as torch loads them
    if value.shape != target.shape:
      raise ValueError(f"Shape mismatch in layer `{name}`: Expected shape {target.shape}, but found {value.shape} in state dict.")  # (tinygrad's words)
    values[name] = value
  last_name = {id(targets[name]): name for name in values}  # a shared (tied) tensor takes its last name's value, as in PyTorch
  written = []
  for name in last_name.values():
    target = targets[name]
    written.append(target.assign(values[name].to(target.device).cast(target.dtype)))
  if realize: Tensor.realize_all(*written)
  if consume:
    for name in values: del state_dict[name]
  if verbose:
    size = sum(targets[name].nbytes for name in last_name.values())
    print(f"loaded {len(last_name)} tensors ({size / 1e6:.2f} MB) into {type(model).__name__} in "
          f"{(time.perf_counter() - start) * 1e3:.1f} ms{'' if realize else ' (lazily: realize=False)'}")
  return IncompatibleKeys(missing, unexpected)


# ---- safetensors ----

_ST_DTYPES: dict[str, DType] = {
  "BOOL": dtypes.bool, "U8": dtypes.uint8, "I8": dtypes.int8, "I16": dtypes.int16, "U16": dtypes.uint16,
  "I32": dtypes.int32, "U32": dtypes.uint32, "I64": dtypes.int64, "U64": dtypes.uint64,
  "F16": dtypes.float16, "F32": dtypes.float32, "F64": dtypes.float64,
  "BF16": dtypes.bfloat16, "F8_E4M3": dtypes.fp8e4m3, "F8_E5M2": dtypes.fp8e5m2,
}
_ST_CODES = {dt: code for code, dt in _ST_DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024  # the safetensors package refuses bigger headers too


def _little_endian(dt: DType) -> np.dtype: return dt.np.newbyteorder("<")


def storage_bits(t: Tensor) -> Tensor:
  """t itself, or for bfloat16/fp8 (numpy has no such dtype) a view of its bits as unsigned integers."""
  return t.bitcast({2: dtypes.uint16, 1: dtypes.uint8}[t.dtype.itemsize]) if t.dtype in STORAGE_FLOATS else t


def _to_bytes(t: Tensor) -> bytes:
  """t's items as little-endian bytes (bfloat16/fp8: their bits)."""
  t = storage_bits(t)
  return t.numpy().astype(_little_endian(t.dtype)).tobytes()


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
      for name in order: f.write(_to_bytes(tensors[name]))
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


def safe_load(path, device: str | None = None, lazy: bool = False) -> dict[str, Tensor]:
  """Read every tensor of a safetensors file onto device (the default device if None), after checking the
  whole header against the file. Tensors come back in the file's order; BOOL bytes other than 0 read as True;
  BF16, F8_E4M3 and F8_E5M2 load as dtypes.bfloat16, fp8e4m3 and fp8e5m2.

  A sharded Hugging Face checkpoint loads too: give its `model.safetensors.index.json` (or the directory that holds
  it). Its shards are read one after another, each file as below; the tensors come back in the index's order.

  The header and the data are read from one open file with ordinary reads (no memory map), each tensor's bytes
  copied out before its tensor is made: a file changed or cut short while it loads raises a ValueError, and
  nothing done to the file later can reach the tensors (a memory map would kill the process with SIGBUS).

  lazy=True reads only the header (checked all the same) at load: each tensor's bytes are read from the file
  when the tensor is first used (realized into a kernel, moved to another device, read back), so a checkpoint
  bigger than memory loads, and moves to the device tensor by tensor. The file must stay as it was: a file
  changed since the load raises a ValueError when a tensor is read, naming it."""
  path = os.fspath(path)
  plan = shard_plan(path)
  if plan is not None: return _load_shards(plan, device, lazy)
  with open(path, "rb") as f, _gc_paused():
    header, data_start, spans = _read_header(f, path)
    f.seek(data_start)
    out = {}
    stamp = file_stamp(f)
    empties: dict[tuple, Tensor] = {}  # (dtype, shape) -> one zero-size tensor that the others alias
    for begin, end, name in spans:
      e = header[name]
      dt, shape = _ST_DTYPES[e["dtype"]], tuple(e["shape"])
      if begin == end:  # nothing to read: alias one tensor per (dtype, shape), 7x cheaper than a buffer each
        if (dt, shape) not in empties: empties[dt, shape] = Tensor(np.zeros(shape, dt.np), device=device, dtype=dt)
        empty = empties[dt, shape]
        out[name] = Tensor(empty, device=empty.device)
        continue
      convert = _bool_bytes if dt == dtypes.bool else _ItemsOf(dt)
      if lazy:
        out[name] = file_tensor(FileSource(path, data_start + begin, end - begin, stamp, convert), shape, dt, device)
        continue
      raw = np.frombuffer(_read_exactly(f, end - begin, path, f"tensor {name!r}"), dtype=np.uint8)
      out[name] = _from_bytes(convert(raw).reshape(shape), dt, device)
  return out


def _bool_bytes(raw: np.ndarray) -> np.ndarray: return raw != 0


class _ItemsOf:
  """Little-endian bytes of a file -> the items of dt (a class, not a closure: one per tensor of a lazy load)."""
  __slots__ = ("dt",)
  def __init__(self, dt: DType): self.dt = dt
  def __call__(self, raw: np.ndarray) -> np.ndarray: return raw.view(_little_endian(self.dt))


def _load_shards(plan: list[tuple[str, list[str]]], device, lazy: bool) -> dict[str, Tensor]:
  """The tensors an index names, shard by shard (nn/loading.py read and checked the index)."""
  found: dict[str, Tensor] = {}
  for shard, names in plan:
    tensors = safe_load(shard, device, lazy)
    missing = [n for n in names if n not in tensors]
    if missing: raise ValueError(f"{shard}: the index puts {_short(missing[:5])} in this file, which doesn't hold them")
    found.update((n, tensors[n]) for n in names)
  return found


@contextlib.contextmanager
def _gc_paused():
  """No cyclic garbage collection inside: a header of a million tensors makes millions of JSON dicts and lists,
  and every full collection would walk all of them again (half of a 1.5 M-entry load's time went there)."""
  was_enabled = gc.isenabled()
  gc.disable()
  try: yield
  finally:
    if was_enabled: gc.enable()
