"""The on-disk compile cache stays under TEENY_CACHE_MAX_BYTES: past it, the least recently used entries (written or
read longest ago) are deleted; the directory is scanned now and then, not on every compile; only teeny's own
entries are ever deleted."""
import os, time
import pytest
import teeny.runtime.disk_cache as disk_cache
from teeny.runtime.device import Compiler

PAYLOAD = 1000
ENTRY = len(disk_cache.MAGIC) + 32 + PAYLOAD  # bytes of one entry on disk


class FixedSizeCompiler(Compiler):
  """'Compiles' every source to PAYLOAD bytes, and counts how often it had to."""
  cache_key = "test:fixed"
  def __init__(self): self.calls = 0
  def compile(self, src: str) -> bytes:
    self.calls += 1
    return src.encode().ljust(PAYLOAD, b".")


@pytest.fixture
def cache(tmp_path, monkeypatch):
  monkeypatch.setenv("TEENY_CACHE_DIR", str(tmp_path / "cache"))
  monkeypatch.delenv("TEENY_NO_DISK_CACHE", raising=False)
  monkeypatch.setattr(disk_cache, "_warned", set())
  monkeypatch.setattr(disk_cache, "_estimated", {})
  return tmp_path / "cache"


def entry_bytes(root) -> int:
  return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def cached(src: str) -> bool: return os.path.exists(disk_cache.entry_path(FixedSizeCompiler.cache_key, src))


def test_cache_never_holds_more_than_the_limit(cache, monkeypatch):
  limit = 10 * ENTRY + ENTRY // 2
  monkeypatch.setenv("TEENY_CACHE_MAX_BYTES", str(limit))
  c = FixedSizeCompiler()
  for i in range(40):
    c.compile_cached(f"kernel {i}")
    assert entry_bytes(cache) <= limit, f"after {i + 1} entries"
  assert cached("kernel 39") and cached("kernel 38") and not cached("kernel 0")
  assert entry_bytes(cache) >= limit * 7 // 8 - ENTRY  # trimmed to 7/8 of the limit, not emptied


def test_recently_read_entries_are_kept_and_evicted_ones_are_rebuilt(cache, monkeypatch):
  monkeypatch.setenv("TEENY_CACHE_MAX_BYTES", str(10 * ENTRY))
  c = FixedSizeCompiler()
  for i in range(8): c.compile_cached(f"kernel {i}")
  assert c.compile_cached("kernel 0").startswith(b"kernel 0") and c.calls == 8  # a hit: kernel 0 is now recent
  for i in range(8, 14): c.compile_cached(f"kernel {i}")
  assert cached("kernel 0") and not cached("kernel 1") and not cached("kernel 2")
  calls = c.calls
  assert c.compile_cached("kernel 1").startswith(b"kernel 1") and c.calls == calls + 1  # evicted: compiled again
  assert c.compile_cached("kernel 0").startswith(b"kernel 0") and c.calls == calls + 1


def test_cache_is_scanned_now_and_then_not_on_every_compile(cache, monkeypatch):
  scans = []
  original = disk_cache.trim
  monkeypatch.setattr(disk_cache, "trim", lambda *args: scans.append(1) or original(*args))
  c = FixedSizeCompiler()
  for i in range(30): c.compile_cached(f"kernel {i}")
  assert len(scans) == 1  # the default limit (2 GiB) is far: only this process's first write scans
  monkeypatch.setattr(disk_cache, "_estimated", {})
  monkeypatch.setenv("TEENY_CACHE_MAX_BYTES", str(80 * ENTRY))
  scans.clear()
  for i in range(30, 230): c.compile_cached(f"kernel {i}")
  assert 1 < len(scans) <= 1 + 200 // 10  # a scan trims to 7/8 of the limit: the next is 10 entries later
  assert entry_bytes(cache) <= 80 * ENTRY


def test_only_teeny_entries_are_deleted(cache, monkeypatch):
  """A cache directory pointed at a folder holding other files (or with leftovers) loses only teeny's entries:
  files named by a digest in ROOT/KIND/XX, and temp files left an hour ago by a killed process."""
  c = FixedSizeCompiler()
  c.compile_cached("kernel 0")
  entry_dir = os.path.dirname(disk_cache.entry_path(c.cache_key, "kernel 0"))
  foreign = [cache / "notes.txt", cache / "test" / "notes.txt", os.path.join(entry_dir, "notes.txt")]
  for path in foreign:
    with open(path, "wb") as f: f.write(b"x" * 5000)
  stale, fresh = os.path.join(entry_dir, ".tmp-1-stale"), os.path.join(entry_dir, ".tmp-2-fresh")
  for path in (stale, fresh):
    with open(path, "wb") as f: f.write(b"x" * 5000)
  hour_ago = time.time() - 3700
  os.utime(stale, (hour_ago, hour_ago))
  monkeypatch.setattr(disk_cache, "_estimated", {})
  monkeypatch.setenv("TEENY_CACHE_MAX_BYTES", str(3 * ENTRY))
  for i in range(1, 10): c.compile_cached(f"kernel {i}")
  assert all(os.path.exists(p) for p in foreign) and os.path.exists(fresh) and not os.path.exists(stale)
  assert not cached("kernel 0") and cached("kernel 9")


def test_bad_limit_is_a_clear_error(cache, monkeypatch):
  monkeypatch.setenv("TEENY_CACHE_MAX_BYTES", "2G")
  with pytest.raises(ValueError, match="TEENY_CACHE_MAX_BYTES.*'2G'"):
    FixedSizeCompiler().compile_cached("kernel 0")
