"""What teeny's checkpoint readers share (nn/state.py's safetensors, nn/torch_file.py's torch.save files,
nn/gguf.py): a tensor made from a file's bytes as they are, the limits every reader checks shapes against, and the
plan of a sharded Hugging Face checkpoint (its `model.safetensors.index.json`: which tensors each shard holds)."""
from __future__ import annotations
import json, os
import numpy as np
from teeny.dtype import DType, STORAGE_FLOATS
from teeny.tensor import Tensor
from teeny.runtime.device import Buffer, Device
from teeny.schedule import buffer_view

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
