"""GGUF files (llama.cpp's checkpoints): gguf_load reads the metadata and the tensors, dequantizing the block
formats on the host with numpy.

A GGUF file (version 2 or 3, little-endian) is: "GGUF", a u32 version, the u64 counts of tensors and of metadata
entries; the metadata (a string key, a u32 value type, the value: numbers, bools, strings of u64 length + UTF-8,
and arrays of a type and a u64 count); then per tensor its name, its number of dimensions, the u64 dimensions
(innermost first: the numpy shape is their reverse), its ggml type and the offset of its bytes in the data part,
which starts at the next multiple of `general.alignment` (32 by default) after the tensor list.

Tensor types read: F32, F16, BF16 (kept as they are) and the block formats Q8_0, Q4_0, Q4_K, Q6_K (dequantized to
float32; each block holds a float16 scale and small ints, see the _dequant_* functions). Every count, length and
offset is checked against the file's size before anything is read, so a damaged file raises a ValueError.
"""
from __future__ import annotations
import os, struct
import numpy as np
from teeny.dtype import dtypes
from teeny.tensor import Tensor
from teeny.nn.loading import MAX_DIMS, MAX_ITEMS, from_bytes, FileSource, file_stamp, file_tensor

# metadata value types: their struct formats (8: string, 9: array are read apart)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


class _Cursor:
  """Little-endian reads from an open file, each checked against the bytes left in it."""
  def __init__(self, f, path: str):
    self.f, self.path, self.size = f, path, os.fstat(f.fileno()).st_size

  def take(self, n: int, what: str) -> bytes:
    left = self.size - self.f.tell()
    if n < 0 or n > left: raise ValueError(f"{self.path}: {what} needs {n} bytes, the file has {left} left: truncated or corrupt")
    return self.f.read(n)

  def unpack(self, fmt: str, what: str):
    return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

  def string(self, what: str) -> str:
    raw = self.take(self.unpack("<Q", what), what)
    try: return raw.decode("utf-8")
    except UnicodeDecodeError: raise ValueError(f"{self.path}: {what} is not UTF-8") from None

  def value(self, kind: int, what: str):
    """One metadata value of type `kind` (an array: a list, its items read one by one, arrays of arrays too)."""
    if kind in _SCALARS: return self.unpack(_SCALARS[kind], what)
    if kind == _STRING: return self.string(what)
    if kind != _ARRAY: raise ValueError(f"{self.path}: {what} has unknown value type {kind}")
    item_kind, count = self.unpack("<I", what), self.unpack("<Q", what)
    if count > self.size - self.f.tell(): raise ValueError(f"{self.path}: {what} claims {count} items, more than the file holds")
    if item_kind in _SCALARS:  # numbers in one read
      fmt = _SCALARS[item_kind]
      return list(np.frombuffer(self.take(count * struct.calcsize(fmt), what), dtype=np.dtype(fmt)).tolist())
    return [self.value(item_kind, what) for _ in range(count)]


# ---- the block formats: (elements per block, bytes per block, dequantize (blocks, bytes) uint8 -> (blocks, elements)) ----

def _f16(blocks: np.ndarray, start: int) -> np.ndarray:
  """The float16 at byte `start` of every block, as a float32 column."""
  return blocks[:, start:start + 2].copy().view(np.float16).astype(np.float32)


def _dequant_q8_0(blocks: np.ndarray) -> np.ndarray:
  """Q8_0: a float16 scale d, then 32 int8 q: x = d * q."""
  return _f16(blocks, 0) * blocks[:, 2:].view(np.int8).astype(np.float32)


def _dequant_q4_0(blocks: np.ndarray) -> np.ndarray:
  """Q4_0: a float16 scale d, then 16 bytes: low nibbles are elements 0..15, high nibbles 16..31; x = d * (q - 8)."""
  qs = blocks[:, 2:]
  q = np.concatenate([qs & 0xF, qs >> 4], axis=1).astype(np.float32) - 8
  return _f16(blocks, 0) * q


def _k4_scales(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Q4_K's 8 six-bit scales and 8 six-bit mins from its 12 packed bytes: sub-blocks 0-3 keep theirs in the low 6
  bits of bytes 0-3 (scales) and 4-7 (mins); 4-7 in the nibbles of bytes 8-11 with the top 2 bits from bytes 0-7."""
  p = packed.astype(np.int32)
  low_scales, low_mins = p[:, 0:4] & 63, p[:, 4:8] & 63
  high_scales = (p[:, 8:12] & 0xF) | ((p[:, 0:4] >> 6) << 4)
  high_mins = (p[:, 8:12] >> 4) | ((p[:, 4:8] >> 6) << 4)
  scales, mins = np.concatenate([low_scales, high_scales], 1), np.concatenate([low_mins, high_mins], 1)
  return scales.astype(np.float32), mins.astype(np.float32)


def _dequant_q4_k(blocks: np.ndarray) -> np.ndarray:
  """Q4_K: 256 elements in 8 sub-blocks of 32: float16 d and dmin, 12 bytes of scales/mins, 128 bytes of nibbles.
  Each 32 bytes of nibbles hold two sub-blocks (low nibbles, then high); x = d * scale * q - dmin * min."""
  d, dmin = _f16(blocks, 0), _f16(blocks, 2)
  scales, mins = _k4_scales(blocks[:, 4:16])
  qs = blocks[:, 16:].reshape(-1, 4, 32)
  q = np.stack([qs & 0xF, qs >> 4], axis=2).reshape(-1, 8, 32).astype(np.float32)  # (block, sub-block, element)
  out = (d * scales)[:, :, None] * q - (dmin * mins)[:, :, None]
  return out.reshape(-1, 256)


def _dequant_q6_k(blocks: np.ndarray) -> np.ndarray:
  """Q6_K: 256 elements as 6-bit ints (low 4 bits in 128 bytes `ql`, high 2 bits in 64 bytes `qh`), 16 int8 scales
  (one per 16 elements), a float16 d; x = d * scale * (q - 32). Each half of 128 elements uses 64 bytes of ql and 32
  of qh: element l + 32k takes ql[l + 32 (k % 2)]'s low (k < 2) or high nibble and bits 2k..2k+1 of qh[l]."""
  ql, qh = blocks[:, :128].astype(np.int32), blocks[:, 128:192].astype(np.int32)
  scales = blocks[:, 192:208].view(np.int8).astype(np.float32)
  d = _f16(blocks, 208)
  halves = []
  for h in range(2):
    low, high = ql[:, 64 * h:64 * h + 64], qh[:, 32 * h:32 * h + 32]
    parts = [(low[:, 32 * (k % 2):32 * (k % 2) + 32] >> (4 * (k // 2)) & 0xF) | (((high >> (2 * k)) & 3) << 4) for k in range(4)]
    halves.append(np.concatenate(parts, axis=1) - 32)  # (block, 128)
  q = np.concatenate(halves, axis=1).astype(np.float32).reshape(-1, 16, 16)
  return (d[:, :, None] * scales[:, :, None] * q).reshape(-1, 256)


_BLOCKS = {8: (32, 34, _dequant_q8_0), 2: (32, 18, _dequant_q4_0), 12: (256, 144, _dequant_q4_k), 14: (256, 210, _dequant_q6_k)}
_PLAIN = {0: dtypes.float32, 1: dtypes.float16, 30: dtypes.bfloat16}  # ggml types stored as they are
_TYPE_NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 8: "Q8_0", 12: "Q4_K", 14: "Q6_K", 30: "BF16"}


def _nbytes(path: str, name: str, kind: int, count: int) -> int:
  if kind in _PLAIN: return count * _PLAIN[kind].itemsize
  if kind not in _BLOCKS: raise ValueError(f"{path}: tensor {name!r} has ggml type {kind}, which teeny can't read (it reads {', '.join(_TYPE_NAMES.values())})")
  per_block, block_bytes, _ = _BLOCKS[kind]
  if count % per_block: raise ValueError(f"{path}: tensor {name!r} has {count} elements, not whole blocks of {per_block}")
  return count // per_block * block_bytes


def _read_tensor_infos(cur: _Cursor, count: int) -> list[tuple[str, tuple, int, int]]:
  infos = []
  for i in range(count):
    name = cur.string(f"the name of tensor {i}")
    n_dims = cur.unpack("<I", f"tensor {name!r}")
    if n_dims > MAX_DIMS: raise ValueError(f"{cur.path}: tensor {name!r} has {n_dims} dimensions, more than {MAX_DIMS}")
    dims = [cur.unpack("<Q", f"tensor {name!r}") for _ in range(n_dims)]
    kind, offset = cur.unpack("<I", f"tensor {name!r}"), cur.unpack("<Q", f"tensor {name!r}")
    count_items = int(np.prod(dims, dtype=object)) if dims else 1
    if count_items >= MAX_ITEMS: raise ValueError(f"{cur.path}: tensor {name!r} has shape {dims}: too many items")
    infos.append((name, tuple(reversed(dims)), kind, offset))
  return infos


def gguf_load(path, device: str | None = None, lazy: bool = False) -> tuple[dict, dict[str, Tensor]]:
  """(metadata, tensors) of a GGUF file: the metadata as a dict of Python values (arrays as lists), and every tensor
  by name on device, in numpy's axis order (GGUF lists dimensions innermost first). F32, F16 and BF16 tensors
  keep their dtype; Q8_0, Q4_0, Q4_K and Q6_K are dequantized to float32. Like tinygrad's gguf_load.
  lazy=True reads (and dequantizes) each tensor only when it is first used, like safe_load(lazy=True)."""
  path = os.fspath(path)
  with open(path, "rb") as f:
    cur = _Cursor(f, path)
    if cur.take(4, "the magic") != b"GGUF": raise ValueError(f"{path}: not a GGUF file (no 'GGUF' magic)")
    version = cur.unpack("<I", "the version")
    if version not in (2, 3): raise ValueError(f"{path}: GGUF version {version} is not supported (2 and 3 are)")
    n_tensors, n_kv = cur.unpack("<Q", "the tensor count"), cur.unpack("<Q", "the metadata count")
    if max(n_tensors, n_kv) > cur.size: raise ValueError(f"{path}: counts {n_tensors}, {n_kv} are larger than the file")
    metadata = {}
    for i in range(n_kv):
      key = cur.string(f"metadata key {i}")
      metadata[key] = cur.value(cur.unpack("<I", f"metadata {key!r}"), f"metadata {key!r}")
    infos = _read_tensor_infos(cur, n_tensors)
    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0: raise ValueError(f"{path}: general.alignment {alignment!r} is not a positive int")
    data_start = -(-f.tell() // alignment) * alignment
    stamp = file_stamp(f) if lazy else None
    return metadata, {name: _load_tensor(cur, data_start, name, shape, kind, offset, device, stamp) for name, shape, kind, offset in infos}


class _Items:
  """A tensor's bytes -> its items: the plain types viewed little-endian, the block formats dequantized."""
  __slots__ = ("kind",)
  def __init__(self, kind: int): self.kind = kind
  def __call__(self, raw: np.ndarray) -> np.ndarray:
    if self.kind in _PLAIN: return raw.view(_PLAIN[self.kind].np.newbyteorder("<"))
    _, block_bytes, dequantize = _BLOCKS[self.kind]
    return dequantize(raw.reshape(-1, block_bytes)) if raw.size else np.zeros(0, np.float32)


def _load_tensor(cur: _Cursor, data_start: int, name: str, shape: tuple, kind: int, offset: int, device, stamp) -> Tensor:
  """One tensor: read now, or (a lazy load: stamp given) when it is first used."""
  count = int(np.prod(shape, dtype=object)) if shape else 1
  nbytes = _nbytes(cur.path, name, kind, count)
  if data_start + offset + nbytes > cur.size:
    raise ValueError(f"{cur.path}: tensor {name!r} (bytes {offset}..{offset + nbytes} of the data) runs past the end of the file")
  dt, items = _PLAIN.get(kind, dtypes.float32), _Items(kind)
  if stamp is not None and count: return file_tensor(FileSource(cur.path, data_start + offset, nbytes, stamp, items), shape, dt, device)
  cur.f.seek(data_start + offset)
  return from_bytes(items(np.frombuffer(cur.take(nbytes, f"tensor {name!r}"), dtype=np.uint8)).reshape(shape), dt, device)
