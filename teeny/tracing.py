"""The trace: a Chrome Trace Event / Perfetto JSON file of what teeny did, for ui.perfetto.dev or chrome://tracing.

Turned on by TRACE=path.json in the environment (recorded from import, written at exit), by
`with teeny.trace("path.json"):` (written when the block ends) or by `Context(TRACE="path.json")`. One trace is
recorded at a time: starting a second one while one records raises RuntimeError.

What it holds (each hook lives beside the code it times and asks `active` before doing any work, so with tracing
off a hook costs one attribute read and nothing is allocated):
  - the host process ("teeny host"), one track per Python thread: realize, schedule (cache hit or miss), compile
    (program spec and binary from the disk cache or made now), copies between devices and between the host and a
    device, TinyJit warm-up, capture and replay;
  - one process per device ("LLVM", "CL:0", ...): per host thread a track of the kernels it ran (name, sizes,
    GFLOP/s, GB/s, roofline share), the LLVM worker pool's slices on a track per worker thread, and a counter of
    the device memory handed out to buffers (and held in the allocator's cache for reuse).

Tracing synchronizes: every kernel is waited for (as DEBUG=2 does) so its span is its real duration; a traced
program runs slower than an untraced one, the more the smaller its kernels (bench/bench_trace.py measures it).

Events are kept in memory as tuples (times in perf_counter nanoseconds) and turned into JSON only when the file is
written: timestamps in microseconds since the trace started, events sorted by time, "M" metadata events naming
every process and thread first."""
from __future__ import annotations
import atexit, contextlib, json, os, threading, time
from teeny.helpers import CONTEXT_FLAGS, dprint, getenv

active = False  # whether a trace records now: every hook reads this first, and does nothing else when False
_recorder: _Recorder | None = None
_start_lock = threading.Lock()
HOST = "teeny host"  # the process name of the host's tracks


class _Recorder:
  """The events of one trace and the numbering of its tracks. Threads append events at once (list.append is
  atomic); the lock guards only the numbering of a new process or thread, which happens once per track."""
  def __init__(self, path: str):
    self.path, self.start_ns = path, time.perf_counter_ns()
    self.events: list[tuple] = []  # (ph, name, cat, pid, tid, start ns, duration ns or None, args)
    self.pids: dict[str, int] = {}  # process name -> pid (the host's is 1: it sorts first)
    self.tids: dict[tuple, int] = {}  # (pid, what the track is) -> tid, unique over the whole trace
    self.kernel_tracks: dict[tuple, tuple[int, int]] = {}  # (device, thread ident) -> (pid, tid): asked per kernel
    self.metadata: list[dict] = []
    self._lock = threading.Lock()

  def pid(self, process: str) -> int:
    pid = self.pids.get(process)
    if pid is None:
      with self._lock:
        pid = self.pids.get(process)
        if pid is None:
          pid = self.pids[process] = len(self.pids) + 1
          self._meta("process_name", pid, 0, {"name": process})
          self._meta("process_sort_index", pid, 0, {"sort_index": pid})
    return pid

  def tid(self, pid: int, key, name) -> int:
    """The tid of the track `key` of process `pid` (named `name`, or what name() returns, when first seen). tids
    are unique across processes, so a viewer that keys threads by tid alone still keeps the tracks apart."""
    tid = self.tids.get((pid, key))
    if tid is None:
      with self._lock:
        tid = self.tids.get((pid, key))
        if tid is None:
          tid = self.tids[(pid, key)] = len(self.tids) + 1
          self._meta("thread_name", pid, tid, {"name": name() if callable(name) else name})
          self._meta("thread_sort_index", pid, tid, {"sort_index": tid})
    return tid

  def _meta(self, name: str, pid: int, tid: int, args: dict):
    self.metadata.append({"ph": "M", "name": name, "pid": pid, "tid": tid, "ts": 0, "args": args})

  def to_json(self) -> dict:
    events = [self._event(e) for e in sorted(self.events, key=_start_then_outermost)]
    return {"traceEvents": self.metadata + events, "displayTimeUnit": "ms",
            "otherData": {"producer": "teeny", "pid": os.getpid()}}

  def _event(self, event: tuple) -> dict:
    ph, name, cat, pid, tid, start, duration, args = event
    out = {"ph": ph, "name": name, "cat": cat, "pid": pid, "tid": tid, "ts": (start - self.start_ns) / 1e3}
    if duration is not None: out["dur"] = duration / 1e3
    if type(args) is tuple: args = args[0](*args[1:])  # (worked out now: see complete)
    if args: out["args"] = args
    return out


def _start_then_outermost(event: tuple):
  """Sort key: by start time, and of spans starting together the longer first (a parent before its child)."""
  return (event[5], -(event[6] or 0))


# ---- turning it on and off ----

def start(path: str):
  """Start recording a trace to be written to `path` by stop()."""
  global _recorder, active
  if not isinstance(path, (str, os.PathLike)): raise TypeError(f"trace: a path to write the trace to, got {path!r}")
  with _start_lock:
    if _recorder is not None:
      raise RuntimeError(f"trace: a trace to {_recorder.path} is being recorded already; traces don't nest or "
                         f"overlap (end that one before starting one to {path})")
    _recorder = _Recorder(os.path.abspath(os.fspath(path)))  # (absolute: the program may change directory)
    active = True


def stop() -> str | None:
  """Stop recording and write the file; returns its path (None when no trace was recording)."""
  global _recorder, active
  with _start_lock:
    recorder, _recorder = _recorder, None
    active = False
  if recorder is None: return None
  with open(recorder.path, "w") as f: json.dump(recorder.to_json(), f)
  return recorder.path


@contextlib.contextmanager
def trace(path: str):
  """`with teeny.trace("out.json"):` records what teeny does inside the block and writes it as a Chrome Trace Event
  / Perfetto JSON file when the block ends (also when it raises). Open it in https://ui.perfetto.dev or
  chrome://tracing. Tracing waits for every kernel, so the program runs slower meanwhile."""
  start(path)
  try: yield path
  finally: stop()


def _trace_flag(path):
  """Context(TRACE="out.json"): start a trace for the block; Context calls this again with the old value, None,
  when the block ends, which writes it. Returns the old value."""
  old = _recorder.path if _recorder is not None else None
  if path is None: stop()
  elif path in ("", "0", 0, False): raise ValueError("Context(TRACE=...) takes the path to write a trace to; a trace ends with its block")
  else: start(path)
  return old


CONTEXT_FLAGS["TRACE"] = _trace_flag


def _start_from_environment():
  """TRACE=path.json: record from import to exit, written when the interpreter exits normally."""
  path = getenv("TRACE", "")
  if not path or path == "0": return
  start(path)
  atexit.register(_stop_at_exit)


def _stop_at_exit():
  try: stop()
  except OSError as e: dprint(f"teeny: TRACE: could not write the trace: {e}")


# ---- recording: called by the hooks, only while `active` ----

def host_track() -> tuple[int, int]:
  """(pid, tid) of the calling thread's track in the host process."""
  recorder = _recorder
  if recorder is None: return (0, 0)
  pid = recorder.pid(HOST)
  thread = threading.current_thread()
  return pid, recorder.tid(pid, ("host", thread.native_id), thread.name)


def kernel_track(device: str) -> tuple[int, int]:
  """(pid, tid) of the track of the kernels the calling thread runs on `device`."""
  recorder = _recorder
  if recorder is None: return (0, 0)
  key = (device, threading.get_ident())
  track = recorder.kernel_tracks.get(key)
  if track is None:
    pid, thread = recorder.pid(device), threading.current_thread()
    track = recorder.kernel_tracks[key] = (pid, recorder.tid(pid, ("thread", thread.native_id), f"kernels from {thread.name}"))
  return track


def thread_track(device: str, native_id: int) -> tuple[int, int]:
  """(pid, tid) of the track of OS thread `native_id` in `device`'s process (the LLVM worker pool's slices). The
  calling thread's own slices go on its kernel track, inside the kernel's span."""
  recorder = _recorder
  if recorder is None: return (0, 0)
  pid = recorder.pid(device)
  return pid, recorder.tid(pid, ("thread", native_id), lambda: _thread_name(native_id))


def _thread_name(native_id: int) -> str:
  """The name of a track of OS thread `native_id` in a device's process: the Python thread's name."""
  names = {t.native_id: t.name for t in threading.enumerate()}
  name = names.get(native_id, f"thread {native_id}")
  return f"kernels from {name}" if native_id == threading.get_native_id() else name


def complete(track: tuple[int, int], name: str, cat: str, start_ns: int, end_ns: int, args: dict | tuple | None = None):
  """A span ("X" event) on `track` from start_ns to end_ns (time.perf_counter_ns). `args` is a dict, or a tuple
  (function, *params) whose call makes the dict when the trace is written: per-kernel numbers cost nothing to
  work out while the program runs."""
  recorder = _recorder
  if recorder is not None:
    recorder.events.append(("X", name, cat, track[0], track[1], start_ns, max(end_ns - start_ns, 0), args))


def counter(process: str, name: str, values: dict):
  """A counter ("C" event) of `process` now: each key of `values` is one series of the counter `name`."""
  recorder = _recorder
  if recorder is not None:
    recorder.events.append(("C", name, "memory", recorder.pid(process), 0, time.perf_counter_ns(), None, values))


class span:
  """`with tracing.span("schedule", "schedule") as s:` records a span on the calling thread's host track; s.args
  and s.name may be filled in inside the block. Use only while `active`."""
  __slots__ = ("name", "cat", "args", "track", "start_ns")

  def __init__(self, name: str, cat: str, args: dict | None = None):
    self.name, self.cat, self.args = name, cat, args if args is not None else {}

  def __enter__(self) -> span:
    self.track = host_track()
    self.start_ns = time.perf_counter_ns()
    return self

  def __exit__(self, kind, error, tb):
    if kind is not None: self.args["raised"] = f"{kind.__name__}: {error}"
    complete(self.track, self.name, self.cat, self.start_ns, time.perf_counter_ns(), self.args)
    return False


_start_from_environment()
