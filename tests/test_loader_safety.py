"""The loaders against hostile files: torch_load and safe_load stay bounded in memory and time by
what a file really holds, and every malformed file raises a ValueError naming the file (and the field). The
hostile files are built here, small, from zipfile / struct / json and a tiny hand-written pickler (so the pickles
can name torch's functions without torch); real torch.save files are checked when torch is installed."""
import json, os, struct, sys, time, zipfile
import numpy as np
import pytest
from teeny import Tensor, dtypes
from teeny.nn.state import safe_load, safe_save, torch_load, _strided_view

sys.path.insert(0, os.path.dirname(__file__))
from child import run_in_child  # noqa: E402


# ---- a tiny pickler: enough opcodes to write what torch.save writes, and worse ----

class G:  # a global, as the pickle names it
  def __init__(self, module, name): self.module, self.name = module, name

class R:  # a call: func(*args)
  def __init__(self, func, args): self.func, self.args = func, args

class P:  # a persistent id (torch's storage references)
  def __init__(self, pid): self.pid = pid


def pickle_of(obj, protocol: int = 2) -> bytes:
  """obj as pickle bytes; a container met twice is written once and fetched from the memo after (so a few
  hundred bytes can describe a structure of 2**60 paths)."""
  out, memo = [bytes([0x80, protocol])], {}

  def emit(o):
    if id(o) in memo: return out.append(b"j" + struct.pack("<I", memo[id(o)]))  # LONG_BINGET
    if o is None: out.append(b"N")
    elif o is True or o is False: out.append(b"\x88" if o else b"\x89")
    elif isinstance(o, int):
      if -2**31 <= o < 2**31: out.append(b"J" + struct.pack("<i", o))
      else:
        raw = o.to_bytes((o.bit_length() + 8) // 8, "little", signed=True)
        out.append(b"\x8a" + bytes([len(raw)]) + raw)
    elif isinstance(o, float): out.append(b"G" + struct.pack(">d", o))
    elif isinstance(o, str): out.append(b"X" + struct.pack("<I", len(o.encode())) + o.encode())
    elif isinstance(o, G): out.append(b"c" + o.module.encode() + b"\n" + o.name.encode() + b"\n")
    elif isinstance(o, R): emit(o.func), emit(tuple(o.args)), out.append(b"R")
    elif isinstance(o, P): emit(o.pid), out.append(b"Q")
    elif isinstance(o, tuple):
      out.append(b"(")
      for v in o: emit(v)
      out.append(b"t")
    elif isinstance(o, (list, dict)):
      out.append(b"]" if isinstance(o, list) else b"}")
      memo[id(o)] = len(memo)
      out.append(b"r" + struct.pack("<I", memo[id(o)]))  # LONG_BINPUT: before the items, so a cycle finds it
      for item in (o if isinstance(o, list) else o.items()):
        if isinstance(o, list): emit(item), out.append(b"a")
        else: emit(item[0]), emit(item[1]), out.append(b"s")
    else: raise TypeError(type(o))

  emit(obj)
  return b"".join(out) + b"."


def storage(key, numel, kind="FloatStorage"): return P(("storage", G("torch", kind), key, "cpu", numel))


def tensor(store, offset, size, stride):
  return R(G("torch._utils", "_rebuild_tensor_v2"), (store, offset, tuple(size), tuple(stride), False, R(G("collections", "OrderedDict"), ())))


def torch_file(path, obj=None, storages=None, *, pkl: bytes | None = None, compress=zipfile.ZIP_STORED) -> str:
  """A torch.save-style zip: archive/data.pkl, archive/byteorder and archive/data/<key> for each storage."""
  with zipfile.ZipFile(path, "w", compression=compress) as z:
    z.writestr("archive/data.pkl", pkl if pkl is not None else pickle_of(obj))
    z.writestr("archive/byteorder", "little")
    for key, data in (storages or {}).items(): z.writestr(f"archive/data/{key}", data)
  return str(path)


def f32(*values) -> bytes: return np.array(values, np.float32).tobytes()


# ---- torch_load: the hand-made files load right ----

def test_hand_made_torch_file_loads(device, tmp_path):
  store = storage("0", 6)
  path = torch_file(tmp_path / "ok.pt", {"w": tensor(store, 0, (2, 3), (3, 1)), "t": tensor(store, 1, (2, 2), (1, 3))}, {"0": f32(0, 1, 2, 3, 4, 5)})
  sd = torch_load(path, device=device)
  np.testing.assert_array_equal(sd["w"].numpy(), [[0, 1, 2], [3, 4, 5]])
  np.testing.assert_array_equal(sd["t"].numpy(), [[1, 4], [2, 5]])
  assert sd["w"].device == device


def test_any_strided_layout_reads_like_numpy(device):
  """Views built from movement ops match numpy's as_strided for random layouts: slices, transposes, zero
  strides and overlapping windows alike."""
  rng = np.random.default_rng(17)
  items = np.arange(64, dtype=np.float32)
  store = Tensor(items, device=device)
  for _ in range(12):
    ndim = int(rng.integers(1, 4))
    size = tuple(int(s) for s in rng.integers(1, 5, ndim))
    stride = tuple(int(s) for s in rng.integers(0, 9, ndim))
    span = sum((n - 1) * s for n, s in zip(size, stride))
    offset = int(rng.integers(0, 64 - span)) if span < 64 else None
    if offset is None: continue
    want = np.lib.stride_tricks.as_strided(items[offset:], size, [4 * s for s in stride])
    np.testing.assert_array_equal(_strided_view(store, offset, size, stride).numpy(), want, err_msg=f"{offset} {size} {stride}")


def test_zero_strides_stay_one_item(tmp_path):
  """A 600-byte file claiming a 4 GiB tensor of one repeated item loads as an expand of that item: the right
  values, and the process never holds the 4 GiB (it would with a copy)."""
  path = torch_file(tmp_path / "zero.pt", {"w": tensor(storage("0", 1), 0, (2**20, 2**10), (0, 0))}, {"0": f32(3.5)})
  assert os.path.getsize(path) < 1000
  # The child's peak from /proc (VmHWM, this process image's own). Not getrusage's ru_maxrss: Linux carries the
  # peak of the image before exec into it, and that is pytest's when the parent is a long test run.
  code = f"""
from teeny.nn.state import torch_load
w = torch_load({path!r})["w"]
assert w.shape == (2**20, 2**10), w.shape
assert w[12345, 5:8].numpy().tolist() == [3.5] * 3
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(peak_kib // 1024)
"""
  peak_mib = int(run_in_child(code).stdout.split()[-1])
  assert peak_mib < 1024, f"loading a one-item tensor took {peak_mib} MiB"


def test_overlapping_strides_read_right(device, tmp_path):
  store = storage("0", 1999)
  path = torch_file(tmp_path / "windows.pt", {"w": tensor(store, 0, (1000, 1000), (1, 1))}, {"0": np.arange(1999, dtype=np.float32).tobytes()})
  w = torch_load(path, device=device)["w"]
  expected = np.arange(1000)[:, None] + np.arange(1000)[None, :]
  np.testing.assert_array_equal(w.numpy(), expected)


def test_shared_storage_is_read_once_and_shared(tmp_path):
  store = storage("0", 4)
  path = torch_file(tmp_path / "shared.pt", {"a": tensor(store, 0, (4,), (1,)), "b": tensor(store, 2, (2,), (1,))}, {"0": f32(1, 2, 3, 4)})
  sd = torch_load(path)
  np.testing.assert_array_equal(sd["b"].numpy(), [3, 4])
  sd["a"].assign(Tensor(np.array([5, 6, 7, 8], np.float32))).realize()  # one storage, like PyTorch: b sees the write
  np.testing.assert_array_equal(sd["b"].numpy(), [7, 8])


def test_loaded_tensors_are_views_of_their_storage_as_in_pytorch(device, tmp_path):
  """A transpose, a column, stepped slices and overlapping windows of one storage were copies (built with pad):
  a write through one didn't reach the storage or the others (silently). Every layout movement ops can express is
  a view now; numpy's as_strided views over the same bytes are the reference."""
  store = storage("0", 12)
  layouts = {"full": (0, (12,), (1,)), "t": (0, (4, 3), (1, 4)), "col": (1, (3,), (4,)), "odd": (1, (6,), (2,)),
             "block": (5, (2, 2), (4, 1)), "one": (3, (2, 3), (0, 0)), "sevens": (1, (2,), (7,)), "thirds": (0, (2, 2), (7, 3)),
             "windows": (2, (3, 4), (2, 1))}
  path = torch_file(tmp_path / "views.pt", {k: tensor(store, *v) for k, v in layouts.items()}, {"0": f32(*range(12))})
  sd = torch_load(path, device=device)
  items = np.arange(12, dtype=np.float32)
  ref = {k: np.lib.stride_tricks.as_strided(items[o:], size, [4 * s for s in stride]) for k, (o, size, stride) in layouts.items()}
  for name, index, value in (("t", (1, 0), -1.0), ("col", (2,), -2.0), ("odd", (5,), -3.0), ("full", (0,), -4.0), ("block", (1, 1), -5.0),
                              ("sevens", (1,), -6.0), ("thirds", (1, 1), -7.0)):
    sd[name][index] = value
    ref[name][index] = value
    for k in layouts: np.testing.assert_array_equal(sd[k].numpy(), ref[k], err_msg=f"after writing {name}: {k}")
  sd["t"] += 100
  ref["t"] += 100
  for k in layouts: np.testing.assert_array_equal(sd[k].numpy(), ref[k], err_msg=f"after t += 100: {k}")
  with pytest.raises(RuntimeError, match="expanded"): sd["windows"][0, 0] = 1.0  # (overlapping rows: PyTorch raises too)


def test_pytorch_negative_views_load_negated(tmp_path):
  """A tensor saved with PyTorch's negative bit (x.conj().imag of a complex x) loaded with its sign flipped:
  the flag in _rebuild_tensor_v2's metadata was ignored. Flags teeny doesn't know are refused."""
  store = storage("0", 3)
  def flagged(metadata): return R(G("torch._utils", "_rebuild_tensor_v2"), (store, 0, (3,), (1,), False, R(G("collections", "OrderedDict"), ()), metadata))
  path = torch_file(tmp_path / "neg.pt", {"im": flagged({"neg": True}), "re": flagged({})}, {"0": f32(1, -2, 3)})
  sd = torch_load(path)
  np.testing.assert_array_equal(sd["im"].numpy(), [-1, 2, -3])
  np.testing.assert_array_equal(sd["re"].numpy(), [1, -2, 3])
  with pytest.raises(RuntimeError, match="clone"): sd["re"][0] = 0.0  # (the negated one is a copy of it)
  with pytest.raises(RuntimeError, match="clone"): sd["im"][0] = 0.0
  copy = sd["re"].clone()
  copy[0] = 5.0
  assert copy.numpy().tolist() == [5, -2, 3]
  path = torch_file(tmp_path / "conj.pt", {"z": flagged({"conj": True})}, {"0": f32(1, -2, 3)})
  with pytest.raises(ValueError, match="tensor flags"): torch_load(path)


def test_torch_load_takes_the_plain_values_pytorch_weights_only_takes(tmp_path):
  """torch.Size, torch.device, bytes, bytearray, set and complex beside the tensors (torch.load(weights_only=True)
  loads them) made the whole file refused. bytearray is rebuilt only from bytes: bytearray(n) would make n bytes
  the file doesn't hold."""
  raw = R(G("_codecs", "encode"), ("ab\xff", "latin1"))
  obj = {"size": R(G("torch", "Size"), ([2, 3],)), "dev": R(G("torch", "device"), ("cuda", 1)), "raw": raw,
         "buf": R(G("__builtin__", "bytearray"), (raw,)), "set": R(G("__builtin__", "set"), ([1, 2],)),
         "z": R(G("__builtin__", "complex"), (1.0, 2.0)), "w": tensor(storage("0", 1), 0, (1,), (1,))}
  sd = torch_load(torch_file(tmp_path / "plain.pt", obj, {"0": f32(7)}))
  assert (sd["size"], sd["dev"], sd["raw"], sd["buf"], sd["set"], sd["z"]) == ((2, 3), "cuda:1", b"ab\xff", bytearray(b"ab\xff"), {1, 2}, 1 + 2j)
  assert sd["w"].tolist() == [7.0]
  big = {"buf": R(G("__builtin__", "bytearray"), (2**40,))}
  with pytest.raises(ValueError, match="only rebuilt from its bytes"): torch_load(torch_file(tmp_path / "big.pt", big))


# ---- torch_load: bounded ----

def test_zip_bomb_is_refused_before_it_unpacks(tmp_path):
  """A storage of 16 MiB of zeros deflates to 16 KiB; the archive says so, and torch_load refuses it before
  unpacking a byte (torch.save never compresses)."""
  numel = 4 * 2**20
  path = torch_file(tmp_path / "bomb.pt", {"w": tensor(storage("0", numel), 0, (numel,), (1,))}, {"0": bytes(4 * numel)}, compress=zipfile.ZIP_DEFLATED)
  assert os.path.getsize(path) < 100_000
  with pytest.raises(ValueError, match=r"bomb\.pt: .*compressed more than 100:1"): torch_load(path)


def test_overlapping_zip_entries_are_refused(tmp_path):
  """An overlapping zip bomb points many entries at one compressed run; entries must not overlap."""
  path = torch_file(tmp_path / "overlap.pt", {"a": tensor(storage("0", 2), 0, (2,), (1,)), "b": tensor(storage("1", 2), 0, (2,), (1,))},
                    {"0": f32(1, 2), "1": f32(3, 4)})
  raw = bytearray(open(path, "rb").read())
  records = [i for i in range(len(raw)) if raw[i:i + 4] == b"PK\x01\x02"]  # central directory records
  first = struct.unpack_from("<I", raw, records[-2] + 42)[0]
  struct.pack_into("<I", raw, records[-1] + 42, first)  # the last entry's data now starts where the one before's does
  open(path, "wb").write(bytes(raw))
  with pytest.raises(ValueError, match=r"overlap\.pt: .*overlap in the archive"): torch_load(path)


def test_shared_lists_convert_once(tmp_path):
  """A billion laughs: 64 lists, each holding the one before twice: 2**64 paths in a few hundred bytes."""
  level = [tensor(storage("0", 1), 0, (), ())]
  for _ in range(64): level = [level, level]
  path = torch_file(tmp_path / "laughs.pt", {"x": level}, {"0": f32(2.0)})
  assert os.path.getsize(path) < 2000
  start = time.perf_counter()
  x = torch_load(path)["x"]
  assert time.perf_counter() - start < 10
  assert x[0] is x[1]  # shared in the file, shared in the result
  for _ in range(64): x = x[0]
  assert x[0].item() == 2.0


def test_deep_and_cyclic_structures_load_without_recursion(tmp_path):
  deep = b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."  # 100,000 nested lists
  x = torch_load(torch_file(tmp_path / "deep.pt", pkl=deep))
  for _ in range(99_999): x = x[0]
  assert x == []
  loop: list = []
  loop.append(loop)
  y = torch_load(torch_file(tmp_path / "loop.pt", {"loop": loop, "t": (loop, 1)}))
  assert y["loop"][0] is y["loop"] and y["t"][0] is y["loop"]


# ---- torch_load: malformed files are ValueErrors naming the file ----

S = storage("0", 4)
GOOD = {"0": f32(1, 2, 3, 4)}
BAD_PICKLES = {
  "truncated_pickle": (pickle_of({"w": tensor(S, 0, (4,), (1,))})[:-9], "can't load"),
  "offset_past_storage": (pickle_of({"w": tensor(S, 3, (4,), (1,))}), "runs past its storage of 4 items"),
  "negative_stride": (pickle_of({"w": tensor(S, 0, (2,), (-1,))}), "ints >= 0"),
  "size_not_tuple": (pickle_of({"w": tensor(S, 0, "ab", (1,))}), "bad tensor layout"),
  "huge_size": (pickle_of({"w": tensor(S, 0, (2**62, 2**62), (0, 0))}), "items or more"),
  "too_many_dims": (pickle_of({"w": tensor(S, 0, (1,) * 100, (1,) * 100)}), "bad tensor layout"),
  "storage_too_big_for_entry": (pickle_of({"w": tensor(storage("0", 8), 0, (8,), (1,))}), "has 16 bytes, 8 items of dtypes.float32 need 32"),
  "missing_storage": (pickle_of({"w": tensor(storage("7", 4), 0, (4,), (1,))}), "storage 7 is missing"),
  "unsupported_storage": (pickle_of({"w": tensor(storage("0", 4, "ComplexFloatStorage"), 0, (4,), (1,))}), "refuses torch.ComplexFloatStorage"),
  "bad_persistent_id": (pickle_of({"w": P(("storage", "x"))}), "unknown storage reference"),
  "negative_numel": (pickle_of({"w": tensor(storage("0", -4), 0, (1,), (1,))}), "bad storage reference"),
  "storage_called": (pickle_of({"w": R(G("torch", "FloatStorage"), (4,))}), "TypeError"),
  "tensor_not_from_storage": (pickle_of({"w": tensor(5, 0, (1,), (1,))}), "not a storage"),
  "tensor_as_dict_key": (pickle_of({"w": R(G("collections", "OrderedDict"), ([(tensor(S, 0, (4,), (1,)), 1)],))}), "unhashable"),
  "code": (pickle_of({"w": R(G("os", "system"), ("true",))}), "refuses os.system"),
  "builtins_getattr": (pickle_of({"w": R(G("builtins", "getattr"), (1, "real"))}), "refuses builtins.getattr"),
  "state_on_a_tensor": (pickle_of([tensor(S, 0, (4,), (1,))])[:-2] + pickle_of({"x": 1})[2:-1] + b"ba.", "can't load"),
  "huge_bytes_claim": (b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"abc.", "can't load"),
  "huge_long_claim": (b"\x80\x02\x8b" + struct.pack("<i", 2**31 - 1) + b"abc.", "can't load"),
}


@pytest.mark.parametrize("name", list(BAD_PICKLES))
def test_malformed_pickle_is_a_value_error_naming_the_file(name, tmp_path):
  pkl, message = BAD_PICKLES[name]
  path = torch_file(tmp_path / f"{name}.pt", pkl=pkl, storages=GOOD)
  with pytest.raises(ValueError, match=f"{name}\\.pt: .*{message}"): torch_load(path)


def test_malformed_zip_is_a_value_error_naming_the_file(tmp_path):
  path = torch_file(tmp_path / "crc.pt", {"w": tensor(S, 0, (4,), (1,))}, GOOD, compress=zipfile.ZIP_DEFLATED)
  raw = bytearray(open(path, "rb").read())
  at = raw.index(b"archive/data.pkl") + len("archive/data.pkl")  # the first local header's name, then its deflated bytes
  raw[at + 3:at + 9] = b"\xff" * 6
  open(path, "wb").write(bytes(raw))
  with pytest.raises(ValueError, match=r"crc\.pt: can't load"): torch_load(path)
  (tmp_path / "cut.pt").write_bytes(open(torch_file(tmp_path / "whole.pt", {"w": 1}), "rb").read()[:-30])
  with pytest.raises(ValueError, match=r"cut\.pt: "): torch_load(tmp_path / "cut.pt")


# ---- torch_load: real torch.save files ----

def test_real_torch_checkpoints_load_with_shared_and_strided_tensors(device, tmp_path):
  torch = pytest.importorskip("torch")
  model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
  base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
  saved = {"model": model.state_dict(), "base": base, "shared_slice": base[1:3, ::2], "transposed": base.t(),
           "expanded": torch.tensor([1.5, -2.0]).reshape(2, 1).expand(2, 5), "windows": torch.arange(10.0).as_strided((4, 3), (2, 1)),
           "list": [base[0], base[0]], "half": torch.tensor([0.5, -1.0], dtype=torch.float16).expand(3, 2)}
  torch.save(saved, tmp_path / "ckpt.pt")
  back = torch_load(tmp_path / "ckpt.pt", device=device)
  for k, v in saved["model"].items(): np.testing.assert_array_equal(back["model"][k].numpy(), v.numpy(), err_msg=k)
  for k in ("base", "shared_slice", "transposed", "expanded", "windows", "half"):
    assert back[k].shape == tuple(saved[k].shape) and back[k].device == device, k
    np.testing.assert_array_equal(back[k].numpy(), saved[k].numpy(), err_msg=k)
  assert back["list"][0].shape == (6,) and back["list"][1].tolist() == [0, 1, 2, 3, 4, 5]


# ---- safe_load: nothing done to the file later can crash the process ----

def test_safe_load_survives_the_file_shrinking(tmp_path):
  """Run in a child: with a memory map, touching a tensor after its file was cut short is a SIGBUS."""
  path = str(tmp_path / "big.safetensors")
  safe_save({"a": Tensor(np.arange(1 << 18, dtype=np.float32)), "b": Tensor(np.ones(1 << 18, np.float32))}, path)
  code = f"""
import os
import teeny.nn.state as state
from teeny.nn.state import safe_load
path = {path!r}
tensors = safe_load(path)
os.truncate(path, 0)  # after loading: the tensors are the process's own
assert tensors["a"].numpy()[-1] == (1 << 18) - 1 and tensors["b"].numpy().sum() == 1 << 18
open(path, "wb").write(open(path + ".keep", "rb").read())
check = state._check_entries
def check_then_truncate(*args):  # the header checks out, then the file loses its data before it is read
  spans = check(*args)
  os.truncate(path, os.path.getsize(path) // 2)
  return spans
state._check_entries = check_then_truncate
try: safe_load(path)
except ValueError as e: print("ValueError:", e)
"""
  with open(path, "rb") as f: open(path + ".keep", "wb").write(f.read())
  out = run_in_child(code).stdout
  assert "ValueError:" in out and "big.safetensors: the file ended while reading tensor" in out, out


# ---- safe_load: every malformed header is a ValueError naming the file and the field ----

def _file(header, data: bytes = b"", length: int | None = None) -> bytes:
  head = header if isinstance(header, bytes) else json.dumps(header).encode()
  return (len(head) if length is None else length).to_bytes(8, "little") + head + data


def _entry(dtype="F32", shape=(2,), offsets=(0, 8)): return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


BAD_HEADERS = {
  "dtype_list": (_file({"x": _entry(dtype=["F32"])}, bytes(8)), r"'x' has dtype \['F32'\]"),
  "dtype_dict": (_file({"x": _entry(dtype={"F32": 1})}, bytes(8)), r"'x' has dtype \{'F32': 1\}"),
  "nested_json": (_file(b"[" * 100_000 + b"]" * 100_000), "nested too deeply|not JSON"),
  "nested_in_entry": (_file(b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), "nested too deeply|not JSON"),
  "hundred_dims": (_file({"x": _entry(shape=[1] * 100, offsets=(0, 4))}, bytes(4)), "'x' has a bad shape"),
  "long_int_shape": (_file(b'{"x": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 4]}}', bytes(4)), "'x' has a bad shape"),
  "long_int_offset": (_file(b'{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, ' + b"4" * 5000 + b"]}}", bytes(4)), "'x' has bad data_offsets"),
  "zero_size_huge_dim": (_file({"x": _entry(shape=[2**62, 0], offsets=(0, 0))}), r"'x' has shape \[4611686018427387904, 0\]"),
  "bool_shape": (_file({"x": _entry(shape=[True, 2])}, bytes(8)), "'x' has a bad shape"),
  "offsets_out_of_range": (_file({"x": _entry(shape=[2**40], offsets=(0, 2**42))}, bytes(8)), "'x' .* runs past the end of the data"),
  "offsets_unordered": (_file({"x": _entry(shape=[0], offsets=(8, 0))}, bytes(8)), "'x' has bad data_offsets"),
  "offsets_overlapping": (_file({"x": _entry(), "y": _entry(offsets=(4, 12))}, bytes(12)), "'y' .* overlaps"),
  "header_longer_than_file": (_file({"x": _entry()}, bytes(8), length=10_000), "header length 10000 runs past the end of the file"),
  "entry_extra_field": (_file({"x": {**_entry(), "extra": 1}}, bytes(8)), "entry 'x' must have exactly"),
}


@pytest.mark.parametrize("name", list(BAD_HEADERS))
def test_malformed_header_is_a_value_error_naming_file_and_field(name, tmp_path):
  content, message = BAD_HEADERS[name]
  path = tmp_path / f"{name}.safetensors"
  path.write_bytes(content)
  with pytest.raises(ValueError, match=f"{name}\\.safetensors: .*{message}"): safe_load(path)


def test_many_empty_tensors_share_nothing_visible(device, tmp_path):
  """Empty tensors alias one per dtype and shape (a header of 1.5 M of them loads in seconds): each still has
  its own name, shape, dtype and device."""
  header = {f"e{i}": _entry(dtype="F32" if i % 2 else "I64", shape=(i % 3, 0), offsets=(0, 0)) for i in range(6)}
  header["x"] = _entry(shape=(2,), offsets=(0, 8))
  path = tmp_path / "empties.safetensors"
  path.write_bytes(_file(header, f32(1, 2)))
  back = safe_load(path, device=device)
  assert list(back) == list(header)
  for i in range(6):
    t = back[f"e{i}"]
    assert t.shape == (i % 3, 0) and t.dtype == (dtypes.float32 if i % 2 else dtypes.int64) and t.device == device
    assert t.numpy().shape == (i % 3, 0)
  np.testing.assert_array_equal(back["x"].numpy(), [1, 2])
