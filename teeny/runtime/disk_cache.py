"""The on-disk cache: compiled kernels (object code teeny loads and runs, driver binaries), BEAM choices and device
ceilings, under cache_dir() ($TEENY_CACHE_DIR, else ~/.cache/teeny) as ROOT/KIND/XX/DIGEST, where DIGEST is the
sha256 of (key, source) and KIND the key's first field ("llvm", "cl", "beam", ...).

Safe to share a machine. Whatever is in the cache runs inside this process, so it must be this user's own writing:
  - teeny makes its directories 0700 and its entries 0600, whatever the umask;
  - before it reads or writes through the root, a KIND or XX directory or an entry, it checks that the thing is
    owned by this user (the effective uid) and not writable by group or others; sub-directories and entries may
    not be symlinks (the root may be one, when the link is this user's). Everything is opened relative to an
    already checked directory's descriptor, so renaming a path after the check changes nothing.
  Anything that fails a check is not used at all (no read, no write): teeny warns once per path, saying why, and
  compiles without it. The checksum in each entry only catches torn or damaged files.

Bounded: past TEENY_CACHE_MAX_BYTES bytes of entries (2 GiB by default) the least recently used entries are
deleted. An entry's modification time is when it was last written or read (set explicitly, since atime is often
not kept). The directory is scanned when this process writes its first entry, and again whenever its running
estimate of the total (the last scan plus what it wrote since) passes the limit; a scan trims to 7/8 of the limit,
so a process that keeps compiling scans once per eighth of the limit written, never per compile.
"""
from __future__ import annotations
import errno, hashlib, os, re, stat, time, threading, warnings
from teeny.helpers import cache_dir

MAGIC = b"TEENY1\n"
DEFAULT_MAX_BYTES = 2 << 30
_TMP_PREFIX = ".tmp-"
_STALE_TMP_NS = 3600 * 10 ** 9  # a temp file this old was left by a killed process: a scan deletes it
_DIGEST = re.compile(r"[0-9a-f]{64}\Z")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NOFOLLOW_DIR = _DIR_FLAGS | os.O_NOFOLLOW

_warned: set = set()             # paths already warned about in this process
_warned_lock = threading.Lock()
_estimated: dict = {}            # root -> bytes of entries it holds, as this process last counted plus wrote since
_size_lock = threading.Lock()    # guards _estimated and serializes scans


class _Unsafe(Exception):
  """A cache path that fails a check: (path, why)."""


# ---- public: get, put, and the path of an entry ----

def disk_cache_get(key: str, src: str) -> bytes | None:
  """The payload stored for (key, src), or None: missing, damaged, unsafe (warned), or the cache is off."""
  if os.environ.get("TEENY_NO_DISK_CACHE"): return None
  root = cache_dir()
  kind, prefix, digest = _entry_parts(key, src)
  fds: list[int] = []
  try:
    root_fd = _open_root(root, create=False, fds=fds)
    if root_fd is None: return None
    dir_fd = _open_dirs(root_fd, root, (kind, prefix), create=False, fds=fds)
    if dir_fd is None: return None
    return _read_entry_at(dir_fd, digest, os.path.join(root, kind, prefix, digest))
  except _Unsafe as e: _warn_unsafe(*e.args)
  except OSError as e: _warn_unusable(root, e)
  finally:
    for fd in fds: os.close(fd)
  return None


def disk_cache_put(key: str, src: str, payload: bytes):
  """Store payload for (key, src). Any failure (unwritable or unsafe directory, full disk) warns once per path and
  leaves no temp file: teeny goes on without the cache."""
  if os.environ.get("TEENY_NO_DISK_CACHE"): return
  root = cache_dir()
  kind, prefix, digest = _entry_parts(key, src)
  fds: list[int] = []
  try:
    root_fd = _open_root(root, create=True, fds=fds)
    dir_fd = _open_dirs(root_fd, root, (kind, prefix), create=True, fds=fds)
    written = _write_entry_at(dir_fd, digest, os.path.join(root, kind, prefix, digest), payload)
    _account_write(root, root_fd, written)
  except _Unsafe as e: _warn_unsafe(*e.args)
  except OSError as e: _warn_unusable(root, e)
  finally:
    for fd in fds: os.close(fd)


def entry_path(key: str, src: str) -> str | None:
  """Where the entry for (key, src) lives (None when the cache is off)."""
  if os.environ.get("TEENY_NO_DISK_CACHE"): return None
  return os.path.join(cache_dir(), *_entry_parts(key, src))


def read_entry(path: str) -> bytes | None:
  """The payload of the entry file at `path` if it is whole and safe (its directory and itself), else None."""
  try:
    dir_fd = os.open(os.path.dirname(path), _NOFOLLOW_DIR)
  except OSError: return None
  try:
    _check(os.fstat(dir_fd), os.path.dirname(path), stat.S_ISDIR)
    return _read_entry_at(dir_fd, os.path.basename(path), path)
  except (_Unsafe, OSError): return None
  finally: os.close(dir_fd)


def _entry_parts(key: str, src: str) -> tuple[str, str, str]:
  digest = hashlib.sha256(f"{key}\0{src}".encode()).hexdigest()
  return key.split(":")[0], digest[:2], digest


# ---- the checks ----

def _why_unsafe(st: os.stat_result, is_kind) -> str | None:
  """Why a file or directory with this stat may not be trusted, or None when it may."""
  if stat.S_ISLNK(st.st_mode): return "is a symlink"
  if not is_kind(st.st_mode): return "is not a directory" if is_kind is stat.S_ISDIR else "is not a regular file"
  if st.st_uid != os.geteuid(): return f"is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
  if st.st_mode & 0o022: return f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
  return None


def _check(st: os.stat_result, path: str, is_kind):
  why = _why_unsafe(st, is_kind)
  if why is not None: raise _Unsafe(path, why)


def _open_root(root: str, create: bool, fds: list) -> int | None:
  """A descriptor of the checked cache root (None if it doesn't exist and create is False). The root itself may be
  a symlink this user owns (e.g. ~/.cache/teeny -> a larger disk); what it points to is checked like any root."""
  try: link = os.lstat(root)
  except FileNotFoundError:
    if not create: return None
    _make_root(root)
    link = os.lstat(root)
  if stat.S_ISLNK(link.st_mode) and link.st_uid != os.geteuid():
    raise _Unsafe(root, f"is a symlink owned by uid {link.st_uid}, not by this user (uid {os.geteuid()})")
  fd = os.open(root, _DIR_FLAGS)
  fds.append(fd)
  _check(os.fstat(fd), root, stat.S_ISDIR)
  return fd


def _make_root(root: str):
  """Create the root and any missing parents, each 0700 whatever the umask."""
  missing, path = [], os.path.abspath(root)
  while not os.path.lexists(path):
    missing.append(path)
    path = os.path.dirname(path)
  for path in reversed(missing):
    try: os.mkdir(path, 0o700)
    except FileExistsError: continue  # another process made it first: it is checked like any existing one
    fd = os.open(path, _NOFOLLOW_DIR)
    try: os.fchmod(fd, 0o700)  # the umask may have cleared owner bits
    finally: os.close(fd)


def _open_dirs(parent_fd: int, parent_path: str, names: tuple, create: bool, fds: list) -> int | None:
  """Descend from a checked directory through `names`, checking each (and creating it 0700 when asked)."""
  fd, path = parent_fd, parent_path
  for name in names:
    path = os.path.join(path, name)
    made = False
    if create:
      try:
        os.mkdir(name, 0o700, dir_fd=fd)
        made = True
      except FileExistsError: pass
    try: child = os.open(name, _NOFOLLOW_DIR, dir_fd=fd)
    except FileNotFoundError:
      if create: raise
      return None
    except OSError as e:
      if e.errno in (errno.ELOOP, errno.ENOTDIR): raise _Unsafe(path, "is a symlink or not a directory") from None
      raise
    fds.append(child)
    if made: os.fchmod(child, 0o700)
    _check(os.fstat(child), path, stat.S_ISDIR)
    fd = child
  return fd


# ---- entries ----

def _read_entry_at(dir_fd: int, name: str, path: str) -> bytes | None:
  """An entry is MAGIC + sha256(payload) + payload; anything else (truncated, corrupt) reads as a miss. A hit marks
  the entry used now, for the size bound's least-recently-used order."""
  try: fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
  except FileNotFoundError: return None
  except OSError as e:
    if e.errno == errno.ELOOP: raise _Unsafe(path, "is a symlink") from None
    raise
  try:
    st = os.fstat(fd)
    _check(st, path, stat.S_ISREG)
    with os.fdopen(os.dup(fd), "rb") as f: data = f.read()
    head = len(MAGIC) + 32
    if len(data) < head or not data.startswith(MAGIC): return None
    payload = data[head:]
    if hashlib.sha256(payload).digest() != data[len(MAGIC):head]: return None
    try: os.utime(fd, ns=(time.time_ns(),) * 2)
    except OSError: pass  # a read-only cache still serves hits
    return payload
  finally: os.close(fd)


def _write_entry_at(dir_fd: int, name: str, path: str, payload: bytes) -> int:
  """Write through a 0600 temp file in the same directory and rename it into place (a concurrent reader sees the
  old entry or the whole new one). An existing entry that fails the checks is left alone. The bytes written."""
  try: _check(os.stat(name, dir_fd=dir_fd, follow_symlinks=False), path, stat.S_ISREG)
  except FileNotFoundError: pass
  tmp = f"{_TMP_PREFIX}{os.getpid()}-{os.urandom(8).hex()}"
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
  try:
    os.fchmod(fd, 0o600)  # the umask may have cleared owner bits
    data = MAGIC + hashlib.sha256(payload).digest() + payload
    with os.fdopen(os.dup(fd), "wb") as f: f.write(data)
    os.utime(fd, ns=(time.time_ns(),) * 2)
    os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    return len(data)
  except BaseException:
    try: os.unlink(tmp, dir_fd=dir_fd)
    except OSError: pass
    raise
  finally: os.close(fd)


# ---- warnings ----

def _warn_once(path: str, message: str):
  with _warned_lock:
    if path in _warned: return
    _warned.add(path)
  warnings.warn(message, stacklevel=4)


def _warn_unsafe(path: str, why: str):
  _warn_once(path, f"teeny: compile cache: {path} {why}; not using it (teeny compiles without it; see README, "
                   f"'The compile cache')")


def _warn_unusable(root: str, error: OSError):
  _warn_once(root, f"teeny: compile cache at {root} is not usable ({error}); compiling without it")


# ---- the size bound ----

def max_bytes() -> int:
  """TEENY_CACHE_MAX_BYTES, the most bytes of entries the cache keeps (2 GiB by default)."""
  value = os.environ.get("TEENY_CACHE_MAX_BYTES")
  if not value: return DEFAULT_MAX_BYTES
  try: limit = int(value)
  except ValueError: limit = -1
  if limit < 0: raise ValueError(f"TEENY_CACHE_MAX_BYTES must be a whole number of bytes, got {value!r}")
  return limit


def _account_write(root: str, root_fd: int, nbytes: int):
  """Count a write; scan and trim the cache when this process has not counted it yet or thinks it is over."""
  limit = max_bytes()
  with _size_lock:
    estimate = _estimated.get(root)
    if estimate is not None and estimate + nbytes <= limit:
      _estimated[root] = estimate + nbytes
      return
    _estimated[root] = trim(root_fd, root, limit)


def trim(root_fd: int, root: str, limit: int) -> int:
  """Delete the least recently used entries until the cache holds at most 7/8 of `limit` bytes (nothing when it
  holds at most `limit`). Only entries in checked directories are counted or deleted: files named by a digest in
  ROOT/KIND/XX, and stale temp files. Returns the bytes left."""
  entries, total, now = [], 0, time.time_ns()
  for rel, st in _scan(root_fd, root):
    name = os.path.basename(rel)
    if name.startswith(_TMP_PREFIX):
      if now - st.st_mtime_ns > _STALE_TMP_NS: _unlink(root_fd, rel)
      continue
    entries.append((st.st_mtime_ns, st.st_size, rel))
    total += st.st_size
  if total <= limit: return total
  entries.sort()
  for _, size, rel in entries:
    if total <= limit * 7 // 8: break
    if _unlink(root_fd, rel): total -= size
  return total


def _scan(root_fd: int, root: str):
  """(path relative to the root, lstat) of every file teeny may count: ROOT/KIND/XX/NAME in checked directories.
  Unsafe directories are skipped (warned); the layout is two levels deep, so this is two loops, no recursion."""
  for kind in _listdir(root_fd, dirs=True):
    fds: list[int] = []
    try:
      kind_fd = _open_dirs(root_fd, root, (kind,), create=False, fds=fds)
      if kind_fd is None: continue
      for prefix in _listdir(kind_fd, dirs=True):
        if len(prefix) != 2: continue
        prefix_fd = _open_dirs(kind_fd, os.path.join(root, kind), (prefix,), create=False, fds=fds)
        if prefix_fd is None: continue
        for name in _listdir(prefix_fd, dirs=False):
          if not (name.startswith(_TMP_PREFIX) or (_DIGEST.match(name) and name.startswith(prefix))): continue
          try: st = os.stat(name, dir_fd=prefix_fd, follow_symlinks=False)
          except FileNotFoundError: continue  # deleted by another process meanwhile
          if _why_unsafe(st, stat.S_ISREG) is None: yield os.path.join(kind, prefix, name), st
    except _Unsafe as e: _warn_unsafe(*e.args)
    except OSError: continue
    finally:
      for fd in fds: os.close(fd)


def _listdir(dir_fd: int, dirs: bool) -> list[str]:
  """The names of the real directories (dirs=True) or of the regular files in a directory; never symlinks."""
  try:
    with os.scandir(dir_fd) as it:
      return [e.name for e in it if (e.is_dir(follow_symlinks=False) if dirs else e.is_file(follow_symlinks=False))]
  except OSError: return []


def _unlink(root_fd: int, rel: str) -> bool:
  """Delete ROOT/rel. The directories on the way were checked during the scan (this user's, writable by no one
  else), so no one else can have replaced them since."""
  try:
    os.unlink(rel, dir_fd=root_fd)
    return True
  except OSError: return False
