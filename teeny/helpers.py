"""Small shared utilities with no teeny imports: environment flags (and Context, which sets them for a block), the
DEBUG level, GlobalCounters (what ran and how much memory is in use, counted by every layer), a bounded LRU cache
and snapshots of weak containers that other threads may change."""
from __future__ import annotations
import contextlib, functools, hashlib, itertools, os, sys, threading


@functools.lru_cache(maxsize=None)
def getenv(key: str, default=0):
  value = os.environ.get(key)
  if value is None: return default
  return type(default)(value) if not isinstance(default, bool) else value not in ("", "0", "false", "False")


def debug_level() -> int:
  """DEBUG, read from the environment each time (tests and users may change it). It is asked on every realize,
  so it reads os.environ's own dict: os.environ.get costs a microsecond (encoding the key, decoding the value)."""
  if _ENVIRON is None: return int(os.environ.get("DEBUG") or 0)
  value = _ENVIRON.get(_DEBUG_KEY)
  return int(value) if value else 0


_ENVIRON = getattr(os.environ, "_data", None)  # CPython's mapping behind os.environ (encoded keys and values)
_DEBUG_KEY = os.environ.encodekey("DEBUG") if _ENVIRON is not None else None


# flags that are not environment variables: name -> a function that sets the flag and returns its old value
# (teeny/tensor.py registers TRAINING, which is Tensor.training)
CONTEXT_FLAGS: dict = {}


class Context(contextlib.ContextDecorator):
  """Flags for one block or one decorated function, restored after, like tinygrad's Context:
  `with Context(DEBUG=2, NOOPT=1):`, `@Context(TRAINING=1)`. Environment flags (DEBUG, BEAM, NOOPT, ...) are set
  in os.environ, which teeny reads when it uses them; TRAINING is Tensor.training."""
  def __init__(self, **flags): self.flags = flags
  def __enter__(self):
    self._saved = []
    for name, value in self.flags.items():
      if name in CONTEXT_FLAGS: self._saved.append((name, True, CONTEXT_FLAGS[name](value)))
      else:
        self._saved.append((name, False, os.environ.get(name)))
        os.environ[name] = str(int(value)) if isinstance(value, bool) else str(value)
    getenv.cache_clear()  # (getenv keeps what it read)
    return self
  def __exit__(self, *exc):
    for name, is_hook, old in reversed(self._saved):
      if is_hook: CONTEXT_FLAGS[name](old)
      elif old is None: os.environ.pop(name, None)
      else: os.environ[name] = old
    getenv.cache_clear()
    return False


def dprint(*args):
  """Print to stderr: DEBUG output never mixes with a program's own stdout."""
  print(*args, file=sys.stderr, flush=True)


def argsort(xs) -> list[int]: return sorted(range(len(xs)), key=xs.__getitem__)


def snapshot(items) -> list:
  """list(items), where items is a weak container (a WeakSet) or a method iterating one (a WeakValueDictionary's
  values), that other threads may add to meanwhile: iterating one raises RuntimeError when it changes size under
  the iterator, so it is taken again (adds are rare and quick)."""
  while True:
    try: return list(items() if callable(items) else items)
    except RuntimeError: continue


def cache_dir() -> str:
  """Where compiled kernels are cached: $TEENY_CACHE_DIR, else the user's cache dir."""
  if os.environ.get("TEENY_CACHE_DIR"): return os.environ["TEENY_CACHE_DIR"]
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "teeny")


@functools.lru_cache(maxsize=None)
def source_digest() -> str:
  """A digest of teeny's own code (every .py and .ll file of the package): what an on-disk cache of results that
  code computes (engine/runner.py's program specs) is keyed by, so a changed teeny never reads a stale entry."""
  package = os.path.dirname(os.path.abspath(__file__))
  digest = hashlib.sha256()
  for folder, dirs, files in sorted(os.walk(package)):
    dirs.sort()
    for name in sorted(files):
      if name.endswith((".py", ".ll")):
        path = os.path.join(folder, name)
        digest.update(os.path.relpath(path, package).encode() + b"\0")
        with open(path, "rb") as f: digest.update(f.read())
  return digest.hexdigest()


class _Counters:
  """What ran since the last reset(): GlobalCounters, named like tinygrad's. mem_used is a level, not a count: the
  bytes of device memory handed out to buffers right now (the allocators' caches of freed blocks not included);
  peak_mem is the highest it has been since reset(). One instance, not a class of class attributes: these change
  on every launch and allocation, and writing a class's attributes voids the interpreter's attribute caches."""
  def __init__(self):
    self.kernel_count = 0      # kernels launched
    self.global_ops = 0        # estimated arithmetic ops
    self.global_mem = 0        # bytes the kernels read and wrote
    self.copies = 0            # copies between devices
    self.schedule_hits = 0     # realizes whose schedule came from the schedule cache
    self.schedule_misses = 0   # realizes that ran the scheduler
    self.mem_used = 0          # bytes of device memory in use now
    self.peak_mem = 0          # most bytes in use at once since reset()

  def reset(self):
    self.kernel_count = self.global_ops = self.global_mem = self.copies = 0
    self.schedule_hits = self.schedule_misses = 0
    self.peak_mem = self.mem_used


GlobalCounters = _Counters()


class LRUCache:
  """A dict that keeps at most `maxsize` entries and, when given `cost` (value -> a size, e.g. bytes), at most
  `max_cost` of their summed costs, dropping the least recently used entries when over either (the newest entry
  is always kept, even when it alone costs more than max_cost: its caller is about to use it). A hit is one dict
  lookup and a stamp: keys like the schedule cache's are long tuples, which Python hashes anew on every lookup (an
  OrderedDict's get and move_to_end would hash twice). Finding the least recently used entry is a scan, made only
  when an insert overfills the cache: inserts follow a compile or a scheduler run, which cost far more. Inserts
  hold a lock, since threads that realize at once insert at once and the scan must not see the dict change; a
  hit needs none (one dict lookup, atomic)."""
  def __init__(self, maxsize: int, max_cost: int | None = None, cost=None):
    self.maxsize, self.max_cost, self._cost = maxsize, max_cost, cost
    self.total_cost = 0  # the summed cost of the entries held
    self._data, self._clock = {}, itertools.count()
    self._insert_lock = threading.Lock()

  def get(self, key, default=None):
    entry = self._data.get(key)  # [value, when last used, cost]
    if entry is None: return default
    entry[1] = next(self._clock)
    return entry[0]

  def __setitem__(self, key, value):
    cost = self._cost(value) if self._cost is not None else 0
    with self._insert_lock:
      replaced = self._data.get(key)
      if replaced is not None: self.total_cost -= replaced[2]
      self._data[key] = [value, next(self._clock), cost]
      self.total_cost += cost
      evicted = []  # dropped after the lock is released: freeing a value (a loaded program) may take time or locks
      while len(self._data) > self.maxsize or self._over_cost():
        oldest = min(self._data, key=lambda k: self._data[k][1])
        evicted.append(self._data.pop(oldest))
        self.total_cost -= evicted[-1][2]
    del evicted

  def _over_cost(self) -> bool:
    return self.max_cost is not None and self.total_cost > self.max_cost and len(self._data) > 1

  def __contains__(self, key): return key in self._data
  def __len__(self): return len(self._data)
  def values(self): return [entry[0] for entry in list(self._data.values())]  # list(): one atomic snapshot
  def clear(self):
    with self._insert_lock:
      self._data.clear()
      self.total_cost = 0


def pretty(u) -> str:
  """Print a graph as numbered lines (shared nodes printed once)."""
  nodes = u.toposort()
  ids = {n: i for i, n in enumerate(nodes)}
  lines = []
  for n in nodes:
    srcs = ",".join(f"%{ids[s]}" for s in n.src)
    lines.append(f"%{ids[n]:<3} {n.op.name:<13} {str(n.dtype):<20} [{srcs}] {n.arg!r}"[:240])
  return "\n".join(lines)
