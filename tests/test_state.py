"""Model state: get_parameters / get_state_dict naming, load_state_dict (in place, strict, errors), the
safetensors format (bit-exact round trips of every dtype, a table of corrupt files that must raise ValueError
before any tensor is read, interop with the safetensors package and PyTorch when installed), and torch_load."""
import collections, json, os, pickle, zipfile
import numpy as np
import pytest
from teeny import Tensor, dtypes, Device, nn
from teeny.nn.state import get_parameters, get_state_dict, load_state_dict, safe_save, safe_load, safe_load_metadata, torch_load
from teeny.schedule import is_realized
from teeny.nn.optim import SGD


class Block:
  def __init__(self, n, device=None):
    self.weight = Tensor(np.arange(n * 2, dtype=np.float32).reshape(n, 2), device=device)
    self.bias = Tensor(np.zeros(2, np.float32), device=device)


class Net:
  def __init__(self, device=None):
    self.layers = [Block(3, device), Block(2, device)]
    self.heads = {"cls": Block(4, device)}
    self.scale = Tensor(np.array(2.0, np.float32), device=device)
    self.name, self.act = "net", Tensor.relu  # not tensors: ignored


# ---- walking a model ----

def test_state_dict_names_and_order():
  net = Net()
  assert list(get_state_dict(net)) == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
                                       "heads.cls.weight", "heads.cls.bias", "scale"]
  assert get_state_dict(net)["heads.cls.weight"] is net.heads["cls"].weight
  assert list(get_state_dict(net, prefix="model."))[0] == "model.layers.0.weight"


def test_state_dict_of_tuples_namedtuples_and_plain_containers():
  Pair = collections.namedtuple("Pair", ["left", "right"])
  a, b, c = Tensor([1.0]), Tensor([2.0]), Tensor([3.0])
  sd = get_state_dict({"pair": Pair(a, b), "seq": (c, [a])})
  assert list(sd) == ["pair.left", "pair.right", "seq.0", "seq.1.0"]
  assert list(get_state_dict(a)) == [""] and get_state_dict(a)[""] is a


def test_state_dict_survives_cycles_and_lists_shared_tensors_twice():
  net = Net()
  net.parent = net  # a back reference must not loop forever
  net.tied = net.layers[0].weight  # shared weights: both names, like PyTorch
  sd = get_state_dict(net)
  assert sd["tied"] is sd["layers.0.weight"]
  params = get_parameters(net)
  assert len(params) == 7 and params[0] is net.layers[0].weight  # each tensor once, in state-dict order


def test_deep_model_walk_is_iterative():
  node = root = {}
  for _ in range(5000):  # deeper than Python's recursion limit
    node["next"] = {}
    node = node["next"]
  node["w"] = Tensor([1.0])
  (name,) = get_state_dict(root)
  assert name == "next." * 5000 + "w"


# ---- load_state_dict ----

def test_load_state_dict_gives_a_tied_tensor_its_last_names_value(device):
  """PyTorch copies the names in order, so a tensor under two names ends with the later one's value; teeny kept the
  first (silently another model than torch's)."""
  net = Net(device)
  net.tied = net.layers[0].weight
  new = {k: Tensor(np.full(v.shape, 1.0, np.float32)) for k, v in get_state_dict(net).items()}
  new["tied"] = Tensor(np.full(net.tied.shape, 2.0, np.float32))
  load_state_dict(net, new)
  assert (net.layers[0].weight.numpy() == 2.0).all()


def test_load_state_dict_copies_in_place(device):
  net = Net(device)
  w = net.layers[0].weight
  new = {k: Tensor(np.full(v.shape, i, np.float32)) for i, (k, v) in enumerate(get_state_dict(net).items())}
  load_state_dict(net, new)
  assert net.layers[0].weight is w  # the same tensor, new contents
  for i, (k, v) in enumerate(get_state_dict(net).items()):
    np.testing.assert_array_equal(v.numpy(), np.full(v.shape, i, np.float32))
    assert v.device == device


def test_load_state_dict_converts_dtype_and_accepts_numpy(device):
  net = Net(device)
  sd = {k: v.numpy().astype(np.float64) + 1.5 for k, v in get_state_dict(net).items()}
  load_state_dict(net, sd)
  assert net.scale.dtype == dtypes.float32 and net.scale.item() == 3.5


def test_load_state_dict_takes_old_checkpoints_scalars_of_shape_1():
  """Checkpoints written before PyTorch had 0-d tensors hold scalars (BatchNorm's num_batches_tracked) as shape
  (1,); torch's load_state_dict reads them into the 0-d tensor, and so does teeny's. Other shapes stay errors."""
  bn = nn.BatchNorm2d(3)
  sd = {k: v.numpy() for k, v in get_state_dict(bn).items()}
  sd["num_batches_tracked"] = np.array([7], np.int64)
  load_state_dict(bn, sd)
  assert bn.num_batches_tracked.shape == () and bn.num_batches_tracked.item() == 7
  sd["num_batches_tracked"] = np.array([7, 8], np.int64)
  with pytest.raises(ValueError, match="num_batches_tracked"): load_state_dict(bn, sd)


def test_optimizer_keeps_working_after_load(device):
  w = Tensor(np.array([1.0, 2.0], np.float32), device=device)
  opt = SGD([w], lr=0.5, momentum=0.9)
  (w * w).sum().backward()
  opt.step()
  load_state_dict({"w": w}, {"w": Tensor(np.array([4.0, 6.0], np.float32))})
  opt.zero_grad()
  (w * w).sum().backward()
  opt.step()  # buffer was 2w = [2, 4]; now 0.9 * [2, 4] + [8, 12]
  np.testing.assert_allclose(w.numpy(), [4.0 - 0.5 * 9.8, 6.0 - 0.5 * 15.6], rtol=1e-6)


def test_missing_and_unexpected_keys_are_named():
  net = Net()
  sd = get_state_dict(Net())
  del sd["layers.1.bias"]
  sd["layers.9.weight"] = Tensor([1.0])
  with pytest.raises(RuntimeError, match=r"missing key\(s\): layers\.1\.bias.*unexpected key\(s\): layers\.9\.weight"):
    load_state_dict(net, sd)


def test_a_batchnorm_state_without_its_step_counter_loads_strictly():
  """Checkpoints from before PyTorch 0.4.1 have no num_batches_tracked (and torch_load drops the version that tells
  PyTorch so): PyTorch loads them with strict=True, keeping the counter; teeny raised 'missing key(s)'."""
  from teeny import nn
  bn = nn.BatchNorm2d(3)
  sd = {k: Tensor(np.full(v.shape, 2.0, np.float32)) for k, v in get_state_dict(bn).items() if k != "num_batches_tracked"}
  load_state_dict(bn, sd)
  np.testing.assert_array_equal(bn.running_var.numpy(), [2.0, 2.0, 2.0])
  assert bn.num_batches_tracked.item() == 0
  del sd["running_mean"]
  with pytest.raises(RuntimeError, match=r"missing key\(s\): running_mean$"): load_state_dict(bn, sd)


def test_shape_mismatch_is_named_and_leaves_model_untouched():
  net = Net()
  sd = {k: Tensor(np.ones(v.shape, np.float32)) for k, v in get_state_dict(net).items()}
  sd["heads.cls.weight"] = Tensor(np.ones((2, 4), np.float32))
  with pytest.raises(ValueError, match=r"layer `heads.cls.weight`: Expected shape \(4, 2\), but found \(2, 4\) in state dict"):
    load_state_dict(net, sd)
  np.testing.assert_array_equal(net.layers[0].weight.numpy(), np.arange(6, dtype=np.float32).reshape(3, 2))
  with pytest.raises(ValueError, match="shape"): load_state_dict(net, sd, strict=False)  # shapes matter either way


def test_load_state_dict_takes_tinygrads_verbose_consume_and_realize(device, capsys):
  """load_state_dict(model, state_dict, strict, verbose, consume, realize), tinygrad's order: realize was fourth,
  where tinygrad's verbose is. verbose prints one line (off by default, as PyTorch's); consume empties state_dict
  of what it loaded; realize=False leaves the writes pending."""
  layer = nn.Linear(3, 2)
  sd = {"weight": Tensor(np.full((2, 3), 2.0, np.float32), device=device), "bias": Tensor([1.0, -1.0], device=device)}
  load_state_dict(layer, sd, True, False, True, False)
  assert sd == {} and capsys.readouterr().out == ""
  assert not is_realized(layer.weight.uop)  # (realize=False: pending)
  np.testing.assert_array_equal(layer.weight.numpy(), np.full((2, 3), 2.0, np.float32))
  load_state_dict(layer, {"weight": Tensor.zeros(2, 3), "bias": Tensor.zeros(2)}, True, True)
  assert "loaded 2 tensors" in capsys.readouterr().out
  np.testing.assert_array_equal(layer.bias.numpy(), [0.0, 0.0])


def test_non_strict_loads_the_common_keys():
  net = Net()
  load_state_dict(net, {"scale": Tensor(np.array(7.0, np.float32)), "extra": Tensor([1.0])}, strict=False)
  assert net.scale.item() == 7.0
  np.testing.assert_array_equal(net.layers[1].bias.numpy(), [0.0, 0.0])


def test_state_dict_round_trip_through_a_file(device, tmp_path):
  src, dst = Net(device), Net(device)
  for i, t in enumerate(get_parameters(src)): t.assign(t + i + 0.25)
  safe_save(get_state_dict(src), tmp_path / "net.safetensors")
  load_state_dict(dst, safe_load(tmp_path / "net.safetensors", device=device))
  for (k, a), b in zip(get_state_dict(src).items(), get_state_dict(dst).values()):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)


# ---- safetensors: every dtype, bit for bit ----

def _special_values(dt) -> np.ndarray:
  """Values a careless writer or reader would change: limits, -0.0, infinities, subnormals, NaNs with payloads."""
  if dt == dtypes.bool: return np.array([True, False, True])
  npdt = dt.np
  if dtypes.is_int(dt):
    info = np.iinfo(npdt)
    return np.array([info.min, info.min + 1, -1 if info.min else 1, 0, 1, info.max - 1, info.max], dtype=npdt)
  bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[dt.itemsize]
  mant = {2: 10, 4: 23, 8: 52}[dt.itemsize]
  exp_all = ((1 << (dt.itemsize * 8 - 1 - mant)) - 1) << mant
  sign = 1 << (dt.itemsize * 8 - 1)
  nans = np.array([exp_all | 1, exp_all | (1 << (mant - 1)) | 5, sign | exp_all | 3], dtype=bits).view(npdt)  # payloads, -NaN
  finfo = np.finfo(npdt)
  regular = np.array([0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, finfo.max, finfo.min, finfo.tiny, finfo.smallest_subnormal], dtype=npdt)
  return np.concatenate([regular, nans])


ALL_DTYPES = [dtypes.bool, dtypes.int8, dtypes.uint8, dtypes.int16, dtypes.uint16, dtypes.int32, dtypes.uint32,
              dtypes.int64, dtypes.uint64, dtypes.float16, dtypes.float32, dtypes.float64]


@pytest.mark.parametrize("dt", ALL_DTYPES, ids=str)
def test_every_dtype_round_trips_bit_exactly(device, dt, tmp_path):
  values = _special_values(dt)
  tensors = {"flat": Tensor(values, device=device, dtype=dt),
             "grid": Tensor(np.resize(values, (3, 4)), device=device, dtype=dt),
             "scalar": Tensor(values[:1].reshape(()), device=device, dtype=dt),
             "empty": Tensor(np.zeros((0, 5), dt.np), device=device, dtype=dt)}
  safe_save(tensors, tmp_path / "x.safetensors")
  back = safe_load(tmp_path / "x.safetensors", device=device)
  assert list(back) == sorted(tensors)  # one dtype: file order is by name
  for k, t in tensors.items():
    assert back[k].dtype == dt and back[k].shape == t.shape and back[k].device == device
    assert back[k].numpy().tobytes() == t.numpy().tobytes(), k


def test_mixed_dtypes_are_aligned_and_metadata_kept(tmp_path):
  tensors = {"a_u8": Tensor(np.arange(3, dtype=np.uint8)), "b_f64": Tensor(np.arange(3.0)),
             "c_f16": Tensor(np.ones(5, np.float16)), "d_i32": Tensor(np.arange(7, dtype=np.int32))}
  path = tmp_path / "mixed.safetensors"
  safe_save(tensors, path, metadata={"format": "pt", "note": "teeny"})
  raw = path.read_bytes()
  n = int.from_bytes(raw[:8], "little")
  assert n % 8 == 0
  header = json.loads(raw[8:8 + n])
  assert header["__metadata__"] == {"format": "pt", "note": "teeny"}
  for name, e in header.items():
    if name != "__metadata__": assert e["data_offsets"][0] % tensors[name].dtype.itemsize == 0, name
  assert safe_load_metadata(path) == {"format": "pt", "note": "teeny"}
  back = safe_load(path)
  for k, t in tensors.items(): np.testing.assert_array_equal(back[k].numpy(), t.numpy())


def test_save_saves_lazy_tensors_and_checks_its_arguments(tmp_path):
  safe_save({"lazy": Tensor.arange(4) * 3}, tmp_path / "lazy.safetensors")
  np.testing.assert_array_equal(safe_load(tmp_path / "lazy.safetensors")["lazy"].numpy(), [0, 3, 6, 9])
  with pytest.raises(TypeError, match="not a Tensor"): safe_save({"x": np.ones(2)}, tmp_path / "a")
  with pytest.raises(TypeError, match="names must be strings"): safe_save({1: Tensor([1.0])}, tmp_path / "a")
  with pytest.raises(ValueError, match="reserved"): safe_save({"__metadata__": Tensor([1.0])}, tmp_path / "a")
  with pytest.raises(TypeError, match="metadata"): safe_save({"x": Tensor([1.0])}, tmp_path / "a", metadata={"k": 1})
  assert not os.path.exists(tmp_path / "a")


# ---- safetensors: corrupt files ----

def _file(header, data: bytes = b"", length: int | None = None) -> bytes:
  head = header if isinstance(header, bytes) else json.dumps(header).encode()
  return (len(head) if length is None else length).to_bytes(8, "little") + head + data


F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
CORRUPT = {
  "empty_file": (b"", "truncated"),
  "short_length": (b"\x10\x00\x00", "truncated"),
  "length_past_eof": (_file({"x": F32_2}, bytes(8), length=1000), "runs past the end of the file"),
  "huge_length": (_file({"x": F32_2}, bytes(8), length=2**63), "runs past the end of the file"),
  "header_not_json": (_file(b"{not json at all", bytes(8)), "not JSON"),
  "header_not_utf8": (_file(b"\xff\xfe{}", b""), "not JSON"),
  "header_not_object": (_file([1, 2, 3]), "instead of an object"),
  "entry_not_object": (_file({"x": [0, 8]}, bytes(8)), "exactly dtype, shape and data_offsets"),
  "missing_offsets": (_file({"x": {"dtype": "F32", "shape": [2]}}, bytes(8)), "exactly dtype, shape and data_offsets"),
  "unknown_dtype": (_file({"x": {"dtype": "C64", "shape": [2], "data_offsets": [0, 16]}}, bytes(16)), "dtype 'C64'"),
  "negative_shape": (_file({"x": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, bytes(8)), "bad shape"),
  "float_shape": (_file({"x": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}}, bytes(8)), "bad shape"),
  "offsets_reversed": (_file({"x": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}}, bytes(8)), "bad data_offsets"),
  "offsets_not_pair": (_file({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}, bytes(8)), "bad data_offsets"),
  "size_disagrees_with_shape": (_file({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8)), "needs 12"),
  "overlap": (_file({"x": F32_2, "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12)), "overlaps"),
  "gap": (_file({"x": F32_2, "y": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}}, bytes(20)), "gap"),
  "gap_at_start": (_file({"x": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12)), "gap"),
  "offsets_past_eof": (_file({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8)), "runs past the end of the data"),
  "truncated_data": (_file({"x": F32_2, "y": {"dtype": "F64", "shape": [4], "data_offsets": [8, 40]}}, bytes(30)), "runs past the end of the data"),
  "trailing_bytes": (_file({"x": F32_2}, bytes(12)), "belong to no tensor"),
  "bad_metadata": (_file({"__metadata__": {"k": 1}, "x": F32_2}, bytes(8)), "__metadata__"),
}


@pytest.mark.parametrize("name", list(CORRUPT))
def test_corrupt_file_raises_before_reading(name, tmp_path, monkeypatch):
  content, message = CORRUPT[name]
  path = tmp_path / f"{name}.safetensors"
  path.write_bytes(content)
  def no_reads(*a, **k): raise AssertionError("tensor data was read from a file that failed validation")
  monkeypatch.setattr(np, "memmap", no_reads)
  with pytest.raises(ValueError, match=message): safe_load(path)
  with pytest.raises(ValueError, match=message): safe_load_metadata(path)


def test_a_valid_file_from_the_table_helper_loads(tmp_path):
  """The corrupt table is built with the same helper: make sure its base case is a valid file."""
  path = tmp_path / "ok.safetensors"
  path.write_bytes(_file({"x": F32_2, "y": {"dtype": "F64", "shape": [1], "data_offsets": [8, 16]}},
                         np.array([1.5, -2], np.float32).tobytes() + np.array([3.25]).tobytes()))
  back = safe_load(path)
  np.testing.assert_array_equal(back["x"].numpy(), [1.5, -2])
  np.testing.assert_array_equal(back["y"].numpy(), [3.25])


def test_bool_bytes_other_than_one_read_as_true(tmp_path):
  path = tmp_path / "b.safetensors"
  path.write_bytes(_file({"b": {"dtype": "BOOL", "shape": [3], "data_offsets": [0, 3]}}, bytes([0, 1, 7])))
  np.testing.assert_array_equal(safe_load(path)["b"].numpy(), [False, True, True])


# ---- interop with the safetensors package (and PyTorch) ----

def _sample() -> dict:
  return {name: np.resize(_special_values(dt), (2, 3)) for name, dt in zip("abcdefghijkl", ALL_DTYPES)}


def test_safetensors_package_reads_teeny_files(tmp_path):
  st = pytest.importorskip("safetensors.numpy")
  from safetensors import safe_open
  arrays = _sample()
  safe_save({k: Tensor(v) for k, v in arrays.items()}, tmp_path / "t.safetensors", metadata={"who": "teeny"})
  loaded = st.load_file(str(tmp_path / "t.safetensors"))
  assert sorted(loaded) == sorted(arrays)
  for k, v in arrays.items(): assert loaded[k].dtype == v.dtype and loaded[k].tobytes() == v.tobytes(), k
  with safe_open(str(tmp_path / "t.safetensors"), framework="np") as f: assert f.metadata() == {"who": "teeny"}


def test_teeny_reads_safetensors_package_files(tmp_path):
  st = pytest.importorskip("safetensors.numpy")
  arrays = _sample()
  st.save_file(arrays, str(tmp_path / "s.safetensors"), metadata={"who": "safetensors"})
  back = safe_load(tmp_path / "s.safetensors")
  for k, v in arrays.items(): assert back[k].numpy().tobytes() == v.tobytes(), k
  assert safe_load_metadata(tmp_path / "s.safetensors") == {"who": "safetensors"}


def test_pytorch_reads_teeny_files(tmp_path):
  torch = pytest.importorskip("torch")
  st_torch = pytest.importorskip("safetensors.torch")
  arrays = {k: v for k, v in _sample().items() if v.dtype not in (np.uint16, np.uint32, np.uint64)}  # older torch lacks them
  safe_save({k: Tensor(v) for k, v in arrays.items()}, tmp_path / "t.safetensors")
  loaded = st_torch.load_file(str(tmp_path / "t.safetensors"))
  for k, v in arrays.items(): assert loaded[k].numpy().tobytes() == v.tobytes(), k
  assert isinstance(loaded["a"], torch.Tensor)


# ---- torch_load ----

class _RunsCode:
  def __init__(self, marker): self.marker = marker
  def __reduce__(self): return (os.system, (f"touch {self.marker}",))


def test_torch_load_refuses_code(tmp_path):
  marker = tmp_path / "pwned"
  path = tmp_path / "evil.pt"
  with zipfile.ZipFile(path, "w") as z: z.writestr("archive/data.pkl", pickle.dumps({"w": _RunsCode(marker)}, protocol=2))
  with pytest.raises(ValueError, match="refuses posix.system|refuses os.system|refuses nt.system"): torch_load(path)
  assert not marker.exists()


def test_torch_load_rejects_non_torch_files(tmp_path):
  (tmp_path / "plain.pt").write_bytes(pickle.dumps({"a": 1}))
  with pytest.raises(ValueError, match="not a zip-format"): torch_load(tmp_path / "plain.pt")
  with zipfile.ZipFile(tmp_path / "other.zip", "w") as z: z.writestr("readme.txt", "hi")
  with pytest.raises(ValueError, match="no data.pkl"): torch_load(tmp_path / "other.zip")


def test_torch_load_reads_pytorch_files(device, tmp_path):
  torch = pytest.importorskip("torch")
  base = torch.arange(12, dtype=torch.float32).reshape(3, 4) - 5.5
  tensors = {"base": base, "transposed": base.t(), "slice": base[1:, 2:], "scalar": torch.tensor(2.5, dtype=torch.float64),
             "half": torch.tensor([1.5, -0.0, float("inf")], dtype=torch.float16), "int8": torch.tensor([-128, 127], dtype=torch.int8),
             "uint8": torch.tensor([0, 255], dtype=torch.uint8), "int32": torch.tensor([-2**31, 2**31 - 1], dtype=torch.int32),
             "int64": torch.tensor([-2**63, 2**63 - 1]), "bool": torch.tensor([True, False, True]), "empty": torch.zeros(0, 3)}
  torch.save(tensors, tmp_path / "t.pt")
  back = torch_load(tmp_path / "t.pt", device=device)
  assert list(back) == list(tensors)
  for k, v in tensors.items():
    assert back[k].device == device and back[k].shape == tuple(v.shape), k
    assert back[k].numpy().tobytes() == v.numpy().tobytes(), k


def test_torch_load_of_a_model_state_dict_into_load_state_dict(tmp_path):
  torch = pytest.importorskip("torch")
  model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
  torch.save(model.state_dict(), tmp_path / "m.pt")
  sd = torch_load(tmp_path / "m.pt")
  assert list(sd) == list(model.state_dict())
  target = {"0": {"weight": Tensor(np.zeros((4, 3), np.float32)), "bias": Tensor(np.zeros(4, np.float32))},
            "1": {"weight": Tensor(np.zeros(4, np.float32)), "bias": Tensor(np.zeros(4, np.float32)),
                  "running_mean": Tensor(np.ones(4, np.float32)), "running_var": Tensor(np.zeros(4, np.float32)),
                  "num_batches_tracked": Tensor(np.array(5, np.int64))}}
  load_state_dict(target, sd)
  np.testing.assert_array_equal(target["0"]["weight"].numpy(), model[0].weight.detach().numpy())
  assert target["1"]["num_batches_tracked"].item() == 0


def test_torch_load_catches_lying_files(tmp_path):
  torch = pytest.importorskip("torch")
  torch.save({"w": torch.arange(8, dtype=torch.float32)}, tmp_path / "ok.pt")
  def rewrite(dst, change):
    with zipfile.ZipFile(tmp_path / "ok.pt") as src, zipfile.ZipFile(dst, "w") as out:
      for n in src.namelist(): out.writestr(n, change(n, src.read(n)))
  rewrite(tmp_path / "short.pt", lambda n, b: b[:12] if n.endswith("data/0") else b)
  with pytest.raises(ValueError, match="has 12 bytes"): torch_load(tmp_path / "short.pt")
  # claim 16 items of storage for a tensor of 8 (the pickled size says 16; the file has 8 items)
  rewrite(tmp_path / "size.pt", lambda n, b: b.replace(b"K\x08", b"K\x10") if n.endswith("data.pkl") else b)
  with pytest.raises(ValueError, match="need 64"): torch_load(tmp_path / "size.pt")


# ---- bfloat16 and fp8 checkpoints, sharded checkpoints ----

LOW_TORCH = {dtypes.bfloat16: "bfloat16", dtypes.fp8e4m3: "float8_e4m3fn", dtypes.fp8e5m2: "float8_e5m2"}


def _low_precision_tensors(torch):
  """torch tensors of every low-precision dtype holding every bit pattern (each NaN among them)."""
  every16 = torch.arange(-2 ** 15, 2 ** 15, dtype=torch.int32).to(torch.int16)
  every8 = torch.arange(256, dtype=torch.int32).to(torch.uint8)
  return {"bf": every16.view(torch.bfloat16).reshape(256, 256), "e4": every8.clone().view(torch.float8_e4m3fn).reshape(16, 16),
          "e5": every8.view(torch.float8_e5m2), "f": torch.arange(6, dtype=torch.float32).reshape(2, 3)}


def _assert_same_bits(t: Tensor, ref):
  """t holds exactly ref's bits (a bfloat16/fp8 tensor is read back through its unsigned bits)."""
  import torch
  bits_of = {2: (dtypes.uint16, torch.int16, np.uint16), 1: (dtypes.uint8, torch.uint8, np.uint8)}
  if t.dtype.itemsize > 2:
    np.testing.assert_array_equal(t.numpy(), ref.numpy())
    return
  ours, theirs, view = bits_of[t.dtype.itemsize]
  np.testing.assert_array_equal(t.bitcast(ours).numpy(), ref.view(theirs).numpy().view(view))


def test_safe_load_reads_bf16_and_fp8(device, tmp_path):
  torch = pytest.importorskip("torch")
  st = pytest.importorskip("safetensors.torch")
  tensors = _low_precision_tensors(torch)
  st.save_file(tensors, str(tmp_path / "low.safetensors"))
  header = json.loads((tmp_path / "low.safetensors").read_bytes()[8:].split(b"}}")[0] + b"}}")
  assert {header[k]["dtype"] for k in ("bf", "e4", "e5")} == {"BF16", "F8_E4M3", "F8_E5M2"}
  loaded = safe_load(tmp_path / "low.safetensors", device=device)
  assert (loaded["bf"].dtype, loaded["e4"].dtype, loaded["e5"].dtype) == (dtypes.bfloat16, dtypes.fp8e4m3, dtypes.fp8e5m2)
  for name, ref in tensors.items(): _assert_same_bits(loaded[name], ref)
  np.testing.assert_array_equal(loaded["bf"][1:3].numpy(), tensors["bf"][1:3].float().numpy())  # values, in float32
  # and back: teeny writes the bits, the safetensors package reads the same tensors
  safe_save(loaded, tmp_path / "again.safetensors")
  again = st.load_file(str(tmp_path / "again.safetensors"))
  for name, ref in tensors.items():
    assert again[name].dtype == ref.dtype
    assert torch.equal(again[name].view(torch.uint8), ref.view(torch.uint8))


def test_torch_load_reads_bf16_and_fp8(device, tmp_path):
  torch = pytest.importorskip("torch")
  tensors = _low_precision_tensors(torch)
  tensors["bf_t"] = tensors["bf"][:4, :6].t()  # a strided view of the bfloat16 storage
  tensors["e4_slice"] = tensors["e4"][2:5, 1::3]  # and of an fp8 one (saved as bytes with the dtype named)
  torch.save(tensors, tmp_path / "low.pt")
  loaded = torch_load(tmp_path / "low.pt", device=device)
  assert loaded["e4_slice"].dtype == dtypes.fp8e4m3 and loaded["bf_t"].dtype == dtypes.bfloat16
  for name, ref in tensors.items(): _assert_same_bits(loaded[name], ref.contiguous())


def test_torch_load_bf16_model_into_load_state_dict(tmp_path):
  torch = pytest.importorskip("torch")
  lin = torch.nn.Linear(5, 3).to(torch.bfloat16)
  torch.save(lin.state_dict(), tmp_path / "lin.pt")
  state = torch_load(tmp_path / "lin.pt")
  model = type("Lin", (), {})()
  model.weight, model.bias = Tensor.zeros(3, 5), Tensor.zeros(3)  # float32 parameters take the bfloat16 values
  load_state_dict(model, state)
  np.testing.assert_array_equal(model.weight.numpy(), lin.weight.float().detach().numpy())
  x = np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32)
  ref = (torch.from_numpy(x) @ lin.weight.float().t() + lin.bias.float()).detach().numpy()
  np.testing.assert_allclose((Tensor(x) @ model.weight.T + model.bias).numpy(), ref, rtol=1e-5, atol=1e-6)


def _sharded_checkpoint(torch, folder):
  """A Hugging Face style sharded checkpoint in folder: two shards and model.safetensors.index.json."""
  st = pytest.importorskip("safetensors.torch")
  g = torch.Generator().manual_seed(0)
  tensors = {"embed.weight": torch.randn(8, 4, generator=g).bfloat16(), "layers.0.w": torch.randn(4, 4, generator=g),
             "layers.1.w": torch.randn(4, 4, generator=g).half(), "head.bias": torch.randn(3, generator=g)}
  shards = {"model-00001-of-00002.safetensors": ["embed.weight", "layers.0.w"],
            "model-00002-of-00002.safetensors": ["layers.1.w", "head.bias"]}
  for file, names in shards.items(): st.save_file({n: tensors[n] for n in names}, str(folder / file))
  weight_map = {n: file for file, names in shards.items() for n in names}
  (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
  return tensors


@pytest.mark.parametrize("by", ["index", "directory"])
def test_safe_load_of_a_sharded_checkpoint(device, tmp_path, by):
  torch = pytest.importorskip("torch")
  tensors = _sharded_checkpoint(torch, tmp_path)
  loaded = safe_load(tmp_path / "model.safetensors.index.json" if by == "index" else tmp_path, device=device)
  assert list(loaded) == ["embed.weight", "layers.0.w", "layers.1.w", "head.bias"]
  assert loaded["embed.weight"].dtype == dtypes.bfloat16 and loaded["layers.1.w"].dtype == dtypes.float16
  for name, ref in tensors.items(): _assert_same_bits(loaded[name], ref)


def test_sharded_index_errors_are_named(tmp_path):
  torch = pytest.importorskip("torch")
  _sharded_checkpoint(torch, tmp_path)
  index = tmp_path / "model.safetensors.index.json"
  good = json.loads(index.read_text())
  cases = [({"weight_map": {"a": "../evil.safetensors"}}, "not a file name"), ({"metadata": {}}, "weight_map"),
           ({"weight_map": {**good["weight_map"], "ghost": "model-00001-of-00002.safetensors"}}, "ghost")]
  for content, message in cases:
    index.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message): safe_load(index)
  index.write_text("{not json")
  with pytest.raises(ValueError, match="index"): safe_load(index)
  with pytest.raises(ValueError, match="index"): safe_load(tmp_path / "missing.index.json")


# ---- GGUF ----

def _write_gguf(path, rng):
  """A GGUF file with metadata of several types and tensors of every type gguf_load reads, written by the gguf
  package; returns what each tensor should load as (the package's own dequantization)."""
  gguf = pytest.importorskip("gguf")
  from gguf import quants, GGMLQuantizationType as Q
  w = gguf.GGUFWriter(str(path), "llama")
  w.add_uint32("llama.block_count", 2)
  w.add_float32("llama.rope.freq_base", 0.5)
  w.add_array("tokenizer.ggml.tokens", ["a", "<s>", "héllo"])
  w.add_array("tokenizer.ggml.scores", [0.25, -1.0, 2.0])
  w.add_bool("flag", True)
  values = rng.standard_normal((3, 64)).astype(np.float32)
  expected = {"f32": values, "f16": values.astype(np.float16)}
  w.add_tensor("f32", values)
  w.add_tensor("f16", values.astype(np.float16))
  for name, kind in (("q8_0", Q.Q8_0), ("q4_0", Q.Q4_0)):
    raw = quants.quantize(values, kind)
    w.add_tensor(name, raw, raw_dtype=kind)
    expected[name] = quants.dequantize(raw, kind)
  # the package can't quantize to the K formats: random blocks with sane float16 scales stand in for them
  for name, kind, size, scales_at in (("q4_k", Q.Q4_K, 144, (0, 2)), ("q6_k", Q.Q6_K, 210, (208,))):
    blocks = rng.integers(0, 256, (6, size), dtype=np.uint8)
    for at in scales_at: blocks[:, at:at + 2] = rng.uniform(1e-3, 0.1, (6, 1)).astype(np.float16).view(np.uint8)
    raw = blocks.reshape(2, 3 * size)
    w.add_tensor(name, raw, raw_dtype=kind)
    expected[name] = quants.dequantize(raw, kind)
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()
  return expected


def test_gguf_load_reads_metadata_and_dequantizes(device, tmp_path):
  from teeny.nn.state import gguf_load
  expected = _write_gguf(tmp_path / "m.gguf", np.random.default_rng(0))
  metadata, tensors = gguf_load(tmp_path / "m.gguf", device=device)
  assert metadata["general.architecture"] == "llama" and metadata["llama.block_count"] == 2
  assert metadata["tokenizer.ggml.tokens"] == ["a", "<s>", "héllo"] and metadata["tokenizer.ggml.scores"] == [0.25, -1.0, 2.0]
  assert metadata["llama.rope.freq_base"] == 0.5 and metadata["flag"] is True
  assert list(tensors) == list(expected)
  assert tensors["f16"].dtype == dtypes.float16 and tensors["q4_k"].dtype == dtypes.float32
  for name, want in expected.items():
    assert tensors[name].shape == want.shape, name
    np.testing.assert_array_equal(tensors[name].numpy(), want, err_msg=name)  # the same float32 steps: bit-exact
  lazy_metadata, lazy = gguf_load(tmp_path / "m.gguf", device=device, lazy=True)
  assert lazy_metadata == metadata and list(lazy) == list(tensors)
  for name, want in expected.items(): np.testing.assert_array_equal(lazy[name].numpy(), want, err_msg=name)


def test_gguf_load_refuses_damaged_files(tmp_path):
  from teeny.nn.state import gguf_load
  _write_gguf(tmp_path / "m.gguf", np.random.default_rng(1))
  good = (tmp_path / "m.gguf").read_bytes()
  cases = {"magic": (b"GGUX" + good[4:], "not a GGUF file"), "version": (good[:4] + (9).to_bytes(4, "little") + good[8:], "version 9"),
           "truncated": (good[:len(good) - 100], "runs past the end"), "header_cut": (good[:60], "truncated or corrupt"),
           "huge_count": (good[:8] + (2**60).to_bytes(8, "little") + good[16:], "larger than the file")}
  for name, (content, message) in cases.items():
    (tmp_path / f"{name}.gguf").write_bytes(content)
    with pytest.raises(ValueError, match=message): gguf_load(tmp_path / f"{name}.gguf")


def test_bf16_bits_of_either_byte_order_load_unchanged(device):
  """A big-endian file's bfloat16 bits (torch.save on a big-endian machine) are swapped to the device's order."""
  from teeny.nn.loading import from_bytes
  for order in "<>":
    bits = np.array([0x3F80, 0xC040, 0x7F80], dtype=f"{order}u2")
    np.testing.assert_array_equal(from_bytes(bits, dtypes.bfloat16, device).numpy(), [1.0, -3.0, np.inf])


# ---- lazy loading ----

def test_lazy_safe_load_reads_each_tensor_when_first_used(device, tmp_path):
  rng = np.random.default_rng(7)
  values = {"a": rng.standard_normal((4, 5)).astype(np.float32), "b": np.array([0, 1, 2, 0], np.uint8).view(np.bool_),
            "c": rng.integers(-9, 9, (3,)).astype(np.int64), "d": rng.standard_normal(6).astype(np.float32)}
  tensors = {k: Tensor(v, device=device) for k, v in values.items()}
  tensors["bf"] = Tensor(values["d"], dtype=dtypes.bfloat16, device=device)
  path = tmp_path / "m.safetensors"
  safe_save(tensors, path)
  eager, lazy = safe_load(path, device=device), safe_load(path, device=device, lazy=True)
  assert list(lazy) == list(eager) and all(lazy[k].dtype == eager[k].dtype and lazy[k].shape == eager[k].shape for k in eager)
  np.testing.assert_array_equal((lazy["a"] * 2).numpy(), values["a"] * 2)  # read by the kernel that uses it
  other = next((d for d in Device.available() if d != device), device)  # a copy to another device, where there is one
  np.testing.assert_array_equal(lazy["bf"].to(other).numpy(), eager["bf"].numpy())
  # the file changes: a tensor already read keeps its values, one never used refuses to read the new file
  os.utime(path, ns=(1, 1))
  np.testing.assert_array_equal(lazy["a"].numpy(), values["a"])
  with pytest.raises(ValueError, match="changed after it was loaded"): lazy["c"].numpy()
  with pytest.raises(ValueError, match="changed after it was loaded"): (lazy["d"] + 1).realize()
  np.testing.assert_array_equal(eager["c"].numpy(), values["c"])  # (an eager load read everything at once)


def test_lazy_sharded_checkpoint_into_a_model(tmp_path):
  torch = pytest.importorskip("torch")
  tensors = _sharded_checkpoint(torch, tmp_path)
  loaded = safe_load(tmp_path, lazy=True)
  from types import SimpleNamespace as Obj
  model = Obj(embed=Obj(weight=Tensor.zeros(8, 4, dtype=dtypes.bfloat16)), head=Obj(bias=Tensor.zeros(3)),
              layers=[Obj(w=Tensor.zeros(4, 4)), Obj(w=Tensor.zeros(4, 4, dtype=dtypes.float16))])
  load_state_dict(model, loaded)
  for name, ref in tensors.items(): _assert_same_bits(get_state_dict(model)[name], ref)


def test_lazy_torch_load(device, tmp_path):
  torch = pytest.importorskip("torch")
  tensors = _low_precision_tensors(torch)
  tensors["view"] = tensors["f"].t()[1:]
  tensors["flags"] = torch.tensor([True, False, True])
  torch.save(tensors, tmp_path / "m.pt")
  lazy = torch_load(tmp_path / "m.pt", device=device, lazy=True)
  for name in ("bf", "e4", "view", "flags"): _assert_same_bits(lazy[name], tensors[name].contiguous())
  os.utime(tmp_path / "m.pt", ns=(1, 1))
  with pytest.raises(ValueError, match="changed after it was loaded"): lazy["e5"].numpy()  # (never used before)


def test_load_state_dict_returns_the_keys_that_did_not_match(device):
  """load_state_dict returns (missing_keys, unexpected_keys), as PyTorch's: strict=False loads what matches and says
  what didn't (it returned None)."""
  layer = nn.Linear(2, 3)
  result = load_state_dict(layer, {"weight": Tensor.ones(3, 2), "extra": Tensor.ones(1)}, strict=False)
  assert result.missing_keys == ["bias"] and result.unexpected_keys == ["extra"]
  np.testing.assert_array_equal(layer.weight.numpy(), np.ones((3, 2)))
  assert tuple(load_state_dict(layer, get_state_dict(layer))) == ([], [])
