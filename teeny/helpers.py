"""Small shared utilities: environment flags, the DEBUG level, and tiny pure helpers with no teeny imports."""
from __future__ import annotations
import functools, os, sys


@functools.lru_cache(maxsize=None)
def getenv(key: str, default=0):
  value = os.environ.get(key)
  if value is None: return default
  return type(default)(value) if not isinstance(default, bool) else value not in ("", "0", "false", "False")


def debug_level() -> int: return int(os.environ.get("DEBUG") or 0)  # read each time: tests and users may change it


def dprint(*args):
  """Print to stderr: DEBUG output never mixes with a program's own stdout."""
  print(*args, file=sys.stderr, flush=True)


def argsort(xs) -> list[int]: return sorted(range(len(xs)), key=xs.__getitem__)


def cache_dir() -> str:
  """Where compiled kernels are cached: $TEENY_CACHE_DIR, else the user's cache dir."""
  if os.environ.get("TEENY_CACHE_DIR"): return os.environ["TEENY_CACHE_DIR"]
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "teeny")
