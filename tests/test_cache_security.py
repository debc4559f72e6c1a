"""The compile cache is only used when this user wrote it: what is in it runs inside the process (LLVM object code,
OpenCL driver binaries), so a directory or entry that someone else owns or can write is refused with one warning,
and teeny compiles without it. Directories are made 0700 and entries 0600 whatever the umask.

The two-user tests fork an "attacker" (uid 65534) that plants a kernel computing something else where the victim's
kernel would be found; they need root (to switch uids) and skip otherwise."""
import hashlib, itertools, os, shutil, stat, tempfile, traceback, warnings
import numpy as np
import pytest
import teeny.runtime.disk_cache as disk_cache
from teeny import Tensor
from teeny.engine.runner import _runner_cache
from teeny.runtime.device import Compiler, Device

from test_compile_cache import CountingCompiler

ATTACKER = 65534  # nobody
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")


@pytest.fixture
def fresh_warnings(monkeypatch):
  monkeypatch.delenv("TEENY_NO_DISK_CACHE", raising=False)
  monkeypatch.setattr(disk_cache, "_warned", set())
  monkeypatch.setattr(disk_cache, "_estimated", {})


@pytest.fixture
def shared_tmp():
  """A directory like /tmp (sticky, anyone may create in it) that the attacker can reach."""
  path = tempfile.mkdtemp(prefix="teeny-shared-", dir="/tmp")
  os.chmod(path, 0o1777)
  yield path
  shutil.rmtree(path, ignore_errors=True)


def plant(path: str, payload: bytes):
  """Write an entry in teeny's format (the checksum is no secret), making its directories as needed."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f: f.write(disk_cache.MAGIC + hashlib.sha256(payload).digest() + payload)


def as_user(uid: int, gid: int, fn):
  """Run fn() in a forked child with this uid and gid; fail the test if it fails."""
  pid = os.fork()
  if pid == 0:
    code = 1
    try:
      os.setgroups([])
      os.setgid(gid)
      os.setuid(uid)
      os.umask(0o000)
      fn()
      code = 0
    except BaseException: traceback.print_exc()
    finally: os._exit(code)
  _, status = os.waitpid(pid, 0)
  assert os.waitstatus_to_exitcode(status) == 0, "the attacker's setup failed"


def files_under(root) -> dict:
  return {os.path.join(d, f): open(os.path.join(d, f), "rb").read() for d, _, fs in os.walk(root) for f in fs}


def compile_warned(c: Compiler, srcs) -> list[str]:
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for src in srcs: assert c.compile_cached(src) == f"binary of {src}".encode()
  return [str(w.message) for w in caught if "compile cache" in str(w.message)]


# ---- permissions of what teeny creates ----

@pytest.mark.parametrize("umask", [0o000, 0o002, 0o022, 0o277])
def test_cache_dirs_and_entries_are_private_whatever_the_umask(tmp_path, monkeypatch, fresh_warnings, umask):
  root = tmp_path / "missing parent" / "cache"
  monkeypatch.setenv("TEENY_CACHE_DIR", str(root))
  old = os.umask(umask)
  try: assert compile_warned(CountingCompiler(), ["kernel a"]) == []
  finally: os.umask(old)
  entry = disk_cache.entry_path(CountingCompiler.cache_key, "kernel a")
  made = [str(root.parent), str(root), str(root / "test"), os.path.dirname(entry)]
  assert [oct(stat.S_IMODE(os.stat(d).st_mode)) for d in made] == [oct(0o700)] * 4
  assert oct(stat.S_IMODE(os.stat(entry).st_mode)) == oct(0o600)
  c = CountingCompiler()
  assert c.compile_cached("kernel a") == b"binary of kernel a" and c.calls == 0  # and it is used


# ---- refused roots, directories and entries (one warning, no read, no write) ----

def _refused(c: CountingCompiler, root, path, why: str):
  """Compiling three times through an unusable cache: compiles every time, warns once naming path and why."""
  before = files_under(root)
  messages = compile_warned(c, ["kernel a", "kernel a", "kernel a"])
  assert c.calls == 3, "a refused cache entry was read"
  assert len(messages) == 1 and str(path) in messages[0] and why in messages[0], messages
  assert files_under(root) == before, "teeny wrote into a refused cache"


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o720, 0o702])
def test_group_or_world_writable_cache_root_is_refused(tmp_path, monkeypatch, fresh_warnings, mode):
  root = tmp_path / "cache"
  monkeypatch.setenv("TEENY_CACHE_DIR", str(root))
  plant(disk_cache.entry_path(CountingCompiler.cache_key, "kernel a"), b"planted")
  root.chmod(mode)
  _refused(CountingCompiler(), root, root, "writable by group or others")


@needs_root
def test_cache_root_owned_by_another_user_is_refused(tmp_path, monkeypatch, fresh_warnings):
  root = tmp_path / "cache"
  monkeypatch.setenv("TEENY_CACHE_DIR", str(root))
  plant(disk_cache.entry_path(CountingCompiler.cache_key, "kernel a"), b"planted")
  root.chmod(0o700)
  os.chown(root, ATTACKER, ATTACKER)
  _refused(CountingCompiler(), root, root, f"owned by uid {ATTACKER}")


def test_writable_sub_directory_is_refused_and_others_still_work(tmp_path, monkeypatch, fresh_warnings):
  root = tmp_path / "cache"
  monkeypatch.setenv("TEENY_CACHE_DIR", str(root))
  entry = disk_cache.entry_path(CountingCompiler.cache_key, "kernel a")
  plant(entry, b"planted")
  os.chmod(os.path.dirname(entry), 0o777)
  _refused(CountingCompiler(), root, os.path.dirname(entry), "writable by group or others")

  class OtherCompiler(CountingCompiler): cache_key = "other:counting"
  other = OtherCompiler()
  assert compile_warned(other, ["kernel a", "kernel a"]) == [] and other.calls == 1


@pytest.mark.parametrize("how, why", [("writable by others", "writable by group or others"), ("a symlink", "symlink")])
def test_unsafe_entry_is_neither_read_nor_replaced(tmp_path, monkeypatch, fresh_warnings, how, why):
  root = tmp_path / "cache"
  monkeypatch.setenv("TEENY_CACHE_DIR", str(root))
  entry = disk_cache.entry_path(CountingCompiler.cache_key, "kernel a")
  if how == "a symlink":
    plant(str(tmp_path / "elsewhere"), b"planted")
    os.makedirs(os.path.dirname(entry))
    os.symlink(tmp_path / "elsewhere", entry)
  else:
    plant(entry, b"planted")
    os.chmod(entry, 0o666)
  for d in (root, root / "test", os.path.dirname(entry)): os.chmod(d, 0o700)
  _refused(CountingCompiler(), root, entry, why)


@needs_root
def test_entry_owned_by_another_user_is_refused(tmp_path, monkeypatch, fresh_warnings):
  root = tmp_path / "cache"
  monkeypatch.setenv("TEENY_CACHE_DIR", str(root))
  entry = disk_cache.entry_path(CountingCompiler.cache_key, "kernel a")
  plant(entry, b"planted")
  os.chown(entry, ATTACKER, ATTACKER)
  _refused(CountingCompiler(), root, entry, f"owned by uid {ATTACKER}")


def test_symlinked_sub_directory_is_refused(tmp_path, monkeypatch, fresh_warnings):
  root, elsewhere = tmp_path / "cache", tmp_path / "elsewhere"
  monkeypatch.setenv("TEENY_CACHE_DIR", str(root))
  entry = disk_cache.entry_path(CountingCompiler.cache_key, "kernel a")
  plant(str(elsewhere / os.path.relpath(entry, root / "test")), b"planted")
  root.mkdir(mode=0o700)
  os.symlink(elsewhere, root / "test")
  _refused(CountingCompiler(), root, root / "test", "symlink")


def test_cache_root_may_be_a_symlink_of_this_user(tmp_path, monkeypatch, fresh_warnings):
  """~/.cache/teeny pointing to a larger disk: used like the directory it points to."""
  (tmp_path / "big disk").mkdir(mode=0o700)
  os.symlink(tmp_path / "big disk", tmp_path / "cache")
  monkeypatch.setenv("TEENY_CACHE_DIR", str(tmp_path / "cache"))
  c = CountingCompiler()
  assert compile_warned(c, ["kernel a", "kernel a"]) == [] and c.calls == 1
  assert len(files_under(tmp_path / "big disk")) == 1


@needs_root
def test_cache_root_symlink_owned_by_another_user_is_refused(tmp_path, monkeypatch, fresh_warnings):
  (tmp_path / "mine").mkdir(mode=0o700)
  os.symlink(tmp_path / "mine", tmp_path / "cache")
  os.lchown(tmp_path / "cache", ATTACKER, ATTACKER)
  monkeypatch.setenv("TEENY_CACHE_DIR", str(tmp_path / "cache"))
  _refused(CountingCompiler(), tmp_path / "mine", tmp_path / "cache", f"symlink owned by uid {ATTACKER}")


# ---- two users: a planted kernel is never run ----

_constants = itertools.count()


def kernel_sources(device: str, monkeypatch, value: int) -> list[str]:
  """The sources teeny compiles for `x * value + 1` on this device (compiled without the disk cache). Integers:
  they are compiled into the kernel, where a float32 number would be a value argument of one shared kernel."""
  dev = Device[device]
  srcs, original = [], dev.compiler.compile_cached
  with monkeypatch.context() as m:
    m.setenv("TEENY_NO_DISK_CACHE", "1")
    m.setattr(dev.compiler, "compile_cached", lambda src: srcs.append(src) or original(src))
    (Tensor(np.arange(8, dtype=np.int32), device=device) * value + 1).realize()
  assert len(srcs) == 1
  return srcs


@needs_root
@pytest.mark.parametrize("scenario", ["attacker made the root", "world-writable root", "group-writable sub-directory"])
def test_planted_kernel_from_another_user_is_never_run(device, shared_tmp, monkeypatch, fresh_warnings, scenario):
  root = os.path.join(shared_tmp, "cache")
  monkeypatch.setenv("TEENY_CACHE_DIR", root)
  value = 1000 + next(_constants)
  src, = kernel_sources(device, monkeypatch, value)
  evil_src, = kernel_sources(device, monkeypatch, value + 1)  # the same kernel, computing something else
  compiler = Device[device].compiler
  evil = compiler.compile(evil_src)
  entry = disk_cache.entry_path(compiler.cache_key, src)
  kind_dir = os.path.join(root, compiler.cache_key.split(":")[0])
  attacker_gid = ATTACKER
  if scenario == "attacker made the root": refused, why = root, f"owned by uid {ATTACKER}"
  elif scenario == "world-writable root":
    os.mkdir(root)
    os.chmod(root, 0o777)
    refused, why = root, "writable by group or others"
  else:  # a cache made under umask 002: the attacker is in the victim's group
    os.mkdir(root, 0o755)
    os.mkdir(kind_dir)
    os.chmod(kind_dir, 0o775)
    attacker_gid, refused, why = os.getegid(), kind_dir, "writable by group or others"
  as_user(ATTACKER, attacker_gid, lambda: plant(entry, evil))
  planted = files_under(root)
  assert list(planted) == [entry] and os.stat(entry).st_uid == ATTACKER

  _runner_cache.clear()  # the kernel was compiled above: make the victim look it up again
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out = (Tensor(np.arange(8, dtype=np.int32), device=device) * value + 1).numpy()
  np.testing.assert_array_equal(out, np.arange(8, dtype=np.int32) * value + 1)
  messages = [str(w.message) for w in caught if "compile cache" in str(w.message)]
  assert len(messages) == 1 and refused in messages[0] and why in messages[0], messages
  # (the victim may keep other entries, program specs, in a directory of its own that is safe)
  assert files_under(refused) == planted, "the victim wrote into a cache another user can write"

  # The control: with the ownership and mode checks switched off, the planted entry is what runs (wrong numbers),
  # so the assertions above do test the checks and not a cache that was never looked at.
  _runner_cache.clear()
  monkeypatch.setattr(disk_cache, "_why_unsafe", lambda st, is_kind: None)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    hijacked = (Tensor(np.arange(8, dtype=np.int32), device=device) * value + 1).numpy()
  _runner_cache.clear()  # don't leave the planted kernel loaded for later tests
  np.testing.assert_array_equal(hijacked, np.arange(8, dtype=np.int32) * (value + 1) + 1)
