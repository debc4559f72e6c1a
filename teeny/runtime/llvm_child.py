"""Compiling LLVM IR in a child process, so that LLVM crashing on a kernel can't take the user's process with it.

LLVM's optimizer has aborted the whole process on some big kernels (an assertion in the SLP vectorizer on a 34k-line
backward kernel; the pass pipeline on an LSTM cell's backward kernel), and which kernels meet such a bug depends on
the CPU LLVM tunes for. The LLVM backend (ops_llvm.py) therefore compiles its big kernels here: a child process,
started on first use and kept for the process's life, that runs the same compile step (llvm_setup.compile_ir) and
sends the object file back. When the child dies, `CompileChild.compile` raises ChildCrashed (naming the signal) and
the next call starts a new child, so the backend can try again with a safer pipeline.

Run as a script, this file is the child: it reads requests from stdin and writes replies to stdout, each one an
8-byte little-endian length and that many bytes. A request is three bytes (speed level, SLP on, assembly wanted)
and the IR; a reply is b"O", the object's length, the object and the assembly, or b"E" and LLVM's error message.
The child imports only llvm_setup (not the teeny package): it starts in about 0.1 s.
"""
from __future__ import annotations
import os, signal, struct, subprocess, sys, threading

_LENGTH = struct.Struct("<Q")


class ChildCrashed(RuntimeError):
  """The compile child died (LLVM aborted or crashed) while compiling a kernel."""


def _write_message(stream, payload: bytes):
  stream.write(_LENGTH.pack(len(payload)) + payload)
  stream.flush()


def _read_message(stream) -> bytes | None:
  """The next message, or None at the end of the stream (the other side exited)."""
  header = stream.read(_LENGTH.size)
  if len(header) < _LENGTH.size: return None
  size, = _LENGTH.unpack(header)
  payload = stream.read(size)
  return payload if len(payload) == size else None


class CompileChild:
  """The parent's side: one child process, started when first needed and again after it died. Thread-safe (one
  request at a time); a process forked from the owner starts a child of its own rather than share the pipes."""
  def __init__(self, command: list[str] | None = None):
    self.command = command or [sys.executable, os.path.abspath(__file__)]
    self._proc: subprocess.Popen | None = None
    self._owner = 0  # the pid that started _proc
    self._lock = threading.Lock()

  def compile(self, src: str, speed_level: int, slp: bool, want_assembly: bool) -> tuple[bytes, str | None]:
    """LLVM IR -> (object file, assembly or None), compiled in the child. Raises RuntimeError when LLVM rejects the
    IR and ChildCrashed when the child died on it."""
    request = bytes([speed_level, slp, want_assembly]) + src.encode()
    with self._lock:
      proc = self._running()
      try:
        _write_message(proc.stdin, request)
        reply = _read_message(proc.stdout)
      except OSError:  # a broken pipe: the child is already gone
        reply = None
      if reply is None: raise ChildCrashed(self._death(proc))
    if reply[:1] == b"E": raise RuntimeError(reply[1:].decode())
    size, = _LENGTH.unpack_from(reply, 1)
    start = 1 + _LENGTH.size
    assembly = reply[start + size:].decode() if want_assembly else None
    return reply[start:start + size], assembly

  def _running(self) -> subprocess.Popen:
    if self._proc is None or self._owner != os.getpid() or self._proc.poll() is not None:
      # stderr is the user's: LLVM's own message about a crash is worth seeing
      self._proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
      self._owner = os.getpid()
    return self._proc

  def _death(self, proc: subprocess.Popen) -> str:
    """Why the child stopped, for the error message; forgets it, so the next compile starts a new one."""
    self._proc = None
    try:
      code = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
      proc.kill()
      return "the compile child stopped answering"
    if code < 0:
      try:
        return f"the compile child was killed by {signal.Signals(-code).name}"
      except ValueError:
        return f"the compile child was killed by signal {-code}"
    return f"the compile child exited with status {code}"

  def close(self):
    """Ends the child (it would also end by itself when this process exits: its stdin closes)."""
    with self._lock:
      if self._proc is not None and self._owner == os.getpid():
        self._proc.stdin.close()
        self._proc.wait()
      self._proc = None


def _serve():
  """The child's loop: compile each request until stdin closes."""
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import llvm_setup  # as a top-level module: importing the teeny package would cost ~0.5 s per child
  replies = os.fdopen(os.dup(1), "wb")
  os.dup2(2, 1)  # anything printed goes to stderr, never into the replies
  requests = sys.stdin.buffer
  tm = llvm_setup.target_machine()
  while (request := _read_message(requests)) is not None:
    speed_level, slp, want_assembly = request[0], bool(request[1]), bool(request[2])
    try:
      obj, assembly = llvm_setup.compile_ir(request[3:].decode(), tm, speed_level, slp, want_assembly)
      reply = b"O" + _LENGTH.pack(len(obj)) + obj + (assembly or "").encode()
    except RuntimeError as e:
      reply = b"E" + str(e).encode()
    _write_message(replies, reply)


if __name__ == "__main__":
  _serve()
