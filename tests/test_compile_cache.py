"""The on-disk compile cache under abuse: two processes compiling the same kernels at once, truncated and corrupt
entries, and cache directories that can't be used (which must cost one warning, never a failure)."""
import os, subprocess, sys, textwrap, warnings
import numpy as np
import pytest
import teeny.runtime.disk_cache as disk_cache
from teeny.runtime.device import Compiler
from teeny.runtime.disk_cache import entry_path as _cache_path, read_entry as _read_cache_entry

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CountingCompiler(Compiler):
  """A stand-in backend: 'compiles' by tagging the source, and counts how often it had to."""
  cache_key = "test:counting"
  def __init__(self): self.calls = 0
  def compile(self, src: str) -> bytes:
    self.calls += 1
    return f"binary of {src}".encode()


@pytest.fixture
def cache(tmp_path, monkeypatch):
  monkeypatch.setenv("TEENY_CACHE_DIR", str(tmp_path / "cache"))
  monkeypatch.delenv("TEENY_NO_DISK_CACHE", raising=False)
  monkeypatch.setattr(disk_cache, "_warned", set())
  return tmp_path / "cache"


def cache_files(root):
  return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_entries_are_reused(cache):
  c = CountingCompiler()
  assert c.compile_cached("kernel a") == b"binary of kernel a"
  assert c.compile_cached("kernel a") == b"binary of kernel a"
  assert c.compile_cached("kernel b") == b"binary of kernel b"
  assert c.calls == 2 and len(cache_files(cache)) == 2


def _damaged(good: bytes) -> dict:
  head = len(disk_cache.MAGIC)
  flip = lambda data, at: data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1:]
  return {"truncated": good[:-3], "only the header": good[:head + 5], "empty": b"", "garbage": b"\x00garbage" * 9,
          "payload byte flipped": flip(good, len(good) - 2), "checksum byte flipped": flip(good, head + 3),
          "magic changed": flip(good, 0), "byte appended": good + b"x"}


@pytest.mark.parametrize("damage", list(_damaged(b"x" * 64)))
def test_damaged_entry_is_rebuilt_not_loaded(cache, damage):
  c = CountingCompiler()
  c.compile_cached("kernel a")
  path = _cache_path(c.cache_key, "kernel a")
  good = open(path, "rb").read()
  with open(path, "wb") as f: f.write(_damaged(good)[damage])
  assert _read_cache_entry(path) is None
  assert c.compile_cached("kernel a") == b"binary of kernel a"
  assert c.calls == 2, "a damaged entry was loaded instead of rebuilt"
  assert open(path, "rb").read() == good, "the rebuilt entry was not written back"
  assert c.compile_cached("kernel a") == b"binary of kernel a" and c.calls == 2


@pytest.mark.parametrize("how", ["missing and uncreatable", "read-only"])
def test_unusable_cache_dir_degrades_with_one_warning(tmp_path, monkeypatch, how):
  if how == "read-only":
    if os.geteuid() == 0: pytest.skip("root writes into read-only directories")
    cache = tmp_path / "ro"
    cache.mkdir()
    cache.chmod(0o500)
  else:
    (tmp_path / "a_file").write_text("not a directory")
    cache = tmp_path / "a_file" / "cache"  # its parent is a file: it can never be created
  monkeypatch.setenv("TEENY_CACHE_DIR", str(cache))
  monkeypatch.delenv("TEENY_NO_DISK_CACHE", raising=False)
  monkeypatch.setattr(disk_cache, "_warned", set())
  c = CountingCompiler()
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for src in ("k0", "k1", "k2", "k0"):
      assert c.compile_cached(src) == f"binary of {src}".encode()
  assert c.calls == 4  # no cache: every call compiles
  ours = [w for w in caught if "compile cache" in str(w.message)]
  assert len(ours) == 1, [str(w.message) for w in caught]
  assert str(cache) in str(ours[0].message)
  if how == "read-only": assert not list(cache.rglob("*"))


_CHILD = textwrap.dedent("""
  import os, sys, time
  import numpy as np
  from teeny import Tensor, Device
  device, me, sync = sys.argv[1], sys.argv[2], sys.argv[3]
  Device[device]  # open the device before the race starts
  open(os.path.join(sync, me), "w").close()
  deadline = time.time() + 120
  while len(os.listdir(sync)) < 2 and time.time() < deadline: time.sleep(0.005)
  x = Tensor(np.arange(12, dtype=np.int32).reshape(3, 4), device=device)
  outs = [((x * k + 1) * (x - k)).sum(k % 2) for k in range(10)]  # ten kernels, each its own source (integers are compiled in)
  print([o.numpy().tolist() for o in outs])
""")


def test_two_processes_compile_the_same_kernels_at_once(tmp_path, device):
  """Both succeed on a fresh cache, get the same (right) answers, and leave only whole, valid entries."""
  cache, sync = tmp_path / "cache", tmp_path / "sync"
  sync.mkdir()
  procs = []
  for i in range(2):
    # each child gets its own PoCL cache: the race under test is teeny's, and PoCL's cache breaks when shared
    env = dict(os.environ, TEENY_CACHE_DIR=str(cache), POCL_CACHE_DIR=str(tmp_path / f"pocl{i}"), PYTHONPATH=REPO)
    env.pop("TEENY_NO_DISK_CACHE", None)
    procs.append(subprocess.Popen([sys.executable, "-c", _CHILD, device, str(i), str(sync)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  results = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, results): assert p.returncode == 0, err
  x = np.arange(12, dtype=np.int32).reshape(3, 4)
  want = [((x * k + 1) * (x - k)).sum(k % 2).tolist() for k in range(10)]
  assert results[0][0] == results[1][0] == f"{want}\n"
  files = cache_files(cache)
  assert len(files) >= 10
  assert not [f for f in files if f.name.startswith(".tmp")], "a temp file was left behind"
  assert all(_read_cache_entry(str(f)) is not None for f in files)


def test_unusable_cache_dir_in_a_real_run_warns_once(tmp_path, device):
  """End to end: kernels still compile and run, and the warning is printed once, not once per kernel."""
  (tmp_path / "a_file").write_text("not a directory")
  env = dict(os.environ, TEENY_CACHE_DIR=str(tmp_path / "a_file" / "cache"), POCL_CACHE_DIR=str(tmp_path / "pocl"), PYTHONPATH=REPO)
  env.pop("TEENY_NO_DISK_CACHE", None)
  code = ("import numpy as np; from teeny import Tensor; x = Tensor(np.arange(4, dtype=np.float32), device='%s'); "
          "print([(x * k + 1).sum().item() for k in range(4)])" % device)
  run = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env, capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr
  assert run.stdout.strip() == str([float(np.sum(np.arange(4) * k + 1)) for k in range(4)])
  assert run.stderr.count("UserWarning: teeny: compile cache") == 1, run.stderr
