"""Running test code in a child process, for code that may kill the process it runs in (a driver that aborts or
crashes while it builds unusual kernels: forced GPU-style vector code on PoCL, say). The child is a fresh
interpreter (never a fork: the test process holds OpenCL and LLVM state), so an abort there fails one test instead
of ending the whole pytest run; a known driver bug, recognised by its message, makes the test xfail with it.

    from child import run_in_child
    out = run_in_child("from teeny import Tensor; print((Tensor([1.0]) + 1).numpy())")
    assert out.stdout.strip() == "[2.]"
"""
from __future__ import annotations
import os, signal, subprocess, sys, tempfile
import pytest

# the repository root: the child imports the same teeny as the test process
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_in_child(code: str, *, timeout: float = 300, env: dict | None = None,
                 driver_bugs: dict[str, str] | None = None) -> subprocess.CompletedProcess:
  """Run `code` with `python -c` in a fresh process and return it once it exited with status 0. Otherwise the
  calling test fails with the exit status (or the signal that ended it) and the end of the child's output, or,
  when that output contains a key of `driver_bugs`, xfails with the key's explanation.

  The child gets caches of its own (a temporary PoCL kernel cache and no teeny disk cache), so a driver that
  crashed half way through writing its cache can't break later processes (PoCL then answers
  INVALID_KERNEL_NAME for a kernel that compiled fine)."""
  with tempfile.TemporaryDirectory(prefix="teeny-child-") as tmp:
    child_env = {**os.environ, "POCL_CACHE_DIR": os.path.join(tmp, "pocl"), "TEENY_NO_DISK_CACHE": "1",
                 "PYTHONPATH": os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p), **(env or {})}
    try: done = subprocess.run([sys.executable, "-c", code], env=child_env, cwd=_ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
      pytest.fail(f"child process ran past {timeout} s; its output so far:\n{_tail(e.stdout)}\n{_tail(e.stderr)}")
  if done.returncode == 0: return done
  output = done.stdout + done.stderr
  for message, why in (driver_bugs or {}).items():
    if message in output: pytest.xfail(f"{why} (the driver said: {message!r})")
  pytest.fail(f"child process {_ended(done.returncode)}; its output ends:\n{_tail(done.stdout)}\n{_tail(done.stderr)}")


def _ended(returncode: int) -> str:
  if returncode < 0:
    try: return f"was killed by {signal.Signals(-returncode).name}"
    except ValueError: return f"was killed by signal {-returncode}"
  return f"exited with status {returncode}"


def _tail(text, limit: int = 4000) -> str:
  if isinstance(text, bytes): text = text.decode(errors="replace")
  return (text or "")[-limit:]
