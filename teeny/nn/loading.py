"""What teeny's checkpoint readers share (nn/state.py's safetensors, nn/torch_file.py's torch.save files,
nn/gguf.py): a tensor made from a file's bytes as they are, or one whose bytes are read from the file only when it
is first used (lazy loading: FileSource, file_tensor), the limits every reader checks shapes against, and the plan
of a sharded Hugging Face checkpoint (its `model.safetensors.index.json`: which tensors each shard holds)."""
from __future__ import annotations
import json, math, os
import numpy as np
from teeny.dtype import DType, STORAGE_FLOATS
from teeny.tensor import Tensor
from teeny.runtime.device import Buffer, Device
from teeny.schedule import buffer_view
from collections.abc import Callable

MAX_DIMS = 64  # numpy's and PyTorch's limit
MAX_ITEMS = 2**48  # no shape (even an empty one, [2**62, 0]) may reach this many items: index math stays far from overflow
INDEX_NAME = "model.safetensors.index.json"


def short(value) -> str:
  text = repr(value)
  return text if len(text) <= 200 else text[:200] + "..."


def from_bytes(arr: np.ndarray, dt: DType, device: str | None) -> Tensor:
  """A tensor of dtype dt holding arr's items as they are: the bits of bfloat16/fp8 (which numpy holds as
  unsigned ints) are copied in unchanged, not read as values to round."""
  if dt not in STORAGE_FLOATS: return Tensor(arr, device=device, dtype=dt)
  device = Device.canonicalize(device) if device is not None else Device.DEFAULT
  buf = Buffer(device, arr.size, dt)
  if arr.size: buf.copyin(memoryview(np.ascontiguousarray(arr, dtype=dt.np).reshape(-1)).cast("B"))  # (native byte order)
  return Tensor(buffer_view(buf, arr.shape), device=device)


class FileSource:
  """Where a lazily loaded tensor's bytes are: `nbytes` at `offset` of the file at `path`, which must still be the
  file that was checked at load (same size and modification time), and `convert`, which makes the raw bytes (a
  uint8 array) into the buffer's items (as the dtype's numpy type: the bits of bfloat16/fp8)."""
  __slots__ = ("path", "offset", "nbytes", "stamp", "convert")
  def __init__(self, path: str, offset: int, nbytes: int, stamp: tuple, convert: Callable[[np.ndarray], np.ndarray]):
    self.path, self.offset, self.nbytes, self.stamp, self.convert = path, offset, nbytes, stamp, convert

  def read(self) -> np.ndarray:
    with open(self.path, "rb") as f:
      if file_stamp(f) != self.stamp:
        raise ValueError(f"{self.path} changed after it was loaded lazily: its tensors can't be read (load it again)")
      f.seek(self.offset)
      raw = f.read(self.nbytes)
    if len(raw) != self.nbytes: raise ValueError(f"{self.path}: the file ended while reading a tensor lazily")
    return self.convert(np.frombuffer(raw, dtype=np.uint8))


def file_stamp(f) -> tuple[int, int]:
  """What tells a file's later reads that it is still the file that was checked: its size and modification time."""
  st = os.fstat(f.fileno())
  return st.st_size, st.st_mtime_ns


class _FileBuffer(Buffer):
  """A buffer whose contents are read from a file the first time its memory is needed (a kernel reads it, it is
  copied to another device or read back), and not before: loading a checkpoint lazily costs no memory."""
  __slots__ = ("_source",)
  def __init__(self, device: str, size: int, dtype: DType, source: FileSource):
    super().__init__(device, size, dtype)
    self._source = source

  def ensure_allocated(self) -> Buffer:
    source = self._source
    if self._handle is None and source is not None:
      items = source.read()  # first: a file that fails to read leaves the buffer as it was, to fail again
      self._source = None
      super().ensure_allocated()
      self._allocator.copyin(self._handle, memoryview(np.ascontiguousarray(items, dtype=self.dtype.np).reshape(-1)).cast("B"))
    return super().ensure_allocated()


def file_tensor(source: FileSource, shape: tuple, dt: DType, device: str | None) -> Tensor:
  """A tensor of shape and dtype dt whose items `source` reads when it is first used (see _FileBuffer)."""
  device = Device.canonicalize(device) if device is not None else Device.DEFAULT
  return Tensor(buffer_view(_FileBuffer(device, math.prod(shape), dt, source), shape), device=device)


def shard_plan(path: str) -> list[tuple[str, list[str]]] | None:
  """For a sharded checkpoint's index (or a directory holding `model.safetensors.index.json`): each shard file
  with the names the index's weight_map puts in it, shards in the order the index first names them. None when
  path is a single safetensors file. Shard names must be plain file names beside the index."""
  if os.path.isdir(path): path = os.path.join(path, INDEX_NAME)
  elif not path.endswith(".json"): return None
  try:
    with open(path, encoding="utf-8") as f: index = json.load(f)
  except (OSError, ValueError) as e: raise ValueError(f"{path}: can't read the checkpoint index: {e}") from None
  weight_map = index.get("weight_map") if isinstance(index, dict) else None
  if not isinstance(weight_map, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
    raise ValueError(f"{path}: a checkpoint index needs a \"weight_map\" of tensor name -> shard file name")
  plan: dict[str, list[str]] = {}
  for name, shard in weight_map.items():
    if os.path.basename(shard) != shard or shard in ("", ".", ".."):
      raise ValueError(f"{path}: shard {short(shard)} of {name!r} is not a file name beside the index")
    plan.setdefault(shard, []).append(name)
  folder = os.path.dirname(path)
  return [(os.path.join(folder, shard), names) for shard, names in plan.items()]
