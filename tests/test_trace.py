"""The trace (teeny/tracing.py): `with teeny.trace(path):` and TRACE=path write a Chrome Trace Event / Perfetto JSON
file. Each file a test writes is validated against the Trace Event Format (validate_trace below), then searched for
the spans a program must have left: realize, schedule (cache hit and miss), compile (where its spec and binary came
from), kernel runs with their numbers, copies, TinyJit capture and replay, the LLVM pool's slices per thread and the
memory counter. And with tracing off, no hook records anything."""
import collections, json, os, sys
import pytest
import teeny
from teeny import Tensor, TinyJit, Context, tracing
from teeny.engine import runner
from conftest import DEVICES, use_tuning
from training import make_mlp, make_batch, train_step

sys.path.insert(0, os.path.dirname(__file__))
from child import run_in_child  # noqa: E402

SIZES = (12, 10, 8, 4)  # (tests/test_jit.py's MLP: the kernel replay holds its kernels already)
PHASES = {"X", "B", "E", "C", "M", "i", "I"}  # the phases a teeny trace may use
METADATA = {"process_name", "process_sort_index", "thread_name", "thread_sort_index"}
SLACK_US = 1e-3  # a nanosecond: times are written as microseconds in floats


# ---- the format ----

def validate_trace(trace: dict) -> list[dict]:
  """Check the Trace Event Format's JSON object form and what teeny promises of its traces; return the events."""
  assert isinstance(trace, dict) and set(trace) <= {"traceEvents", "displayTimeUnit", "otherData"}, list(trace)
  assert trace.get("displayTimeUnit", "ms") in ("ms", "ns")
  events = trace["traceEvents"]
  assert isinstance(events, list) and events
  for event in events: _check_event(event)
  _check_names_of_tracks(events)
  _check_nesting(events)
  _check_counters(events)
  return events


def _check_event(event: dict):
  assert {"ph", "ts", "pid", "tid", "name"} <= set(event), event
  assert event["ph"] in PHASES, event
  assert isinstance(event["ts"], (int, float)) and event["ts"] >= 0, event
  assert isinstance(event["pid"], int) and isinstance(event["tid"], int), event
  if event["ph"] == "X": assert isinstance(event["dur"], (int, float)) and event["dur"] >= 0, event
  if event["ph"] == "M": assert event["name"] in METADATA and "args" in event, event
  if event["ph"] == "C":
    assert event["args"] and all(isinstance(v, (int, float)) for v in event["args"].values()), event


def _check_names_of_tracks(events: list[dict]):
  """Every process and thread an event is on is named by an "M" event."""
  processes = {e["pid"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
  threads = {(e["pid"], e["tid"]) for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
  for e in events:
    if e["ph"] == "M": continue
    assert e["pid"] in processes, e
    if e["ph"] == "X": assert (e["pid"], e["tid"]) in threads, e


def _check_nesting(events: list[dict]):
  """On each (pid, tid), spans come in order of start and nest: each one ends inside every span still open."""
  open_spans = collections.defaultdict(list)  # (pid, tid) -> ends of the spans that contain the current time
  last_start = {}
  for e in events:
    if e["ph"] != "X": continue
    track, start, end = (e["pid"], e["tid"]), e["ts"], e["ts"] + e["dur"]
    assert start >= last_start.get(track, 0), f"spans out of order on {track}: {e}"
    last_start[track] = start
    stack = open_spans[track]
    while stack and stack[-1][0] <= start + SLACK_US: stack.pop()
    if stack: assert end <= stack[-1][0] + SLACK_US, f"{e} overlaps {stack[-1][1]} without nesting in it"
    stack.append((end, e))


def _check_counters(events: list[dict]):
  last = {}
  for e in events:
    if e["ph"] != "C": continue
    key = (e["pid"], e["name"])
    assert e["ts"] >= last.get(key, 0), f"counter {key} goes back in time: {e}"
    last[key] = e["ts"]


def spans(events: list[dict], cat: str | None = None, name: str | None = None) -> list[dict]:
  return [e for e in events if e["ph"] == "X" and (cat is None or e["cat"] == cat) and (name is None or e["name"] == name)]


def process_names(events: list[dict]) -> dict[int, str]:
  return {e["pid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}


# ---- in this process: teeny.trace(...) ----

def small_program(device: str):
  """Elementwise, reduce and matmul kernels (a training step has all three), a TinyJit capture and replays, and
  copies to the host; a copy to another device when there is one."""
  params = make_mlp(SIZES, device)
  step = TinyJit(lambda x, y: train_step(params, x, y))
  losses = [step(*make_batch(SIZES, 16, device, seed=i)).numpy() for i in range(4)]
  others = [d for d in DEVICES if d != device]
  if others: params[0].to(others[0]).numpy()
  return losses


def test_trace_of_a_small_program_is_valid_and_complete(device, tmp_path):
  path = tmp_path / "trace.json"
  with teeny.trace(str(path)):
    small_program(device)
  events = validate_trace(json.loads(path.read_text()))
  names = process_names(events)
  assert names[1] == tracing.HOST and device in names.values()
  host = [pid for pid, name in names.items() if name == tracing.HOST]
  assert {e["pid"] for e in spans(events, "realize")} == set(host)
  assert spans(events, "realize", "realize") and spans(events, "realize", "run schedule")
  assert {e["args"]["cache"] for e in spans(events, "schedule")} <= {"hit", "miss"}
  jit = [e["name"].split()[1] for e in spans(events, "jit")]
  assert jit == ["warm-up", "capture", "replay", "replay"], jit
  replays = spans(events, "jit")[2:]
  assert all(r["args"]["launches"] > 0 for r in replays)
  _check_kernels(events, device, replays)
  assert spans(events, "copy", f"copy {device} -> host") and spans(events, "copy", f"copy host -> {device}")
  memory = [e for e in events if e["ph"] == "C" and e["name"] == "memory (MB)"]
  assert memory and {names[e["pid"]] for e in memory} >= {device}
  assert all(set(e["args"]) == {"in use", "cached for reuse"} for e in memory)


def _check_kernels(events: list[dict], device: str, replays: list[dict]):
  """Kernel runs: on the device's process, with their numbers; a replay's kernels inside the replay's time."""
  kernels = spans(events, "kernel")
  device_pid = next(pid for pid, name in process_names(events).items() if name == device)
  assert kernels and all(k["pid"] == device_pid for k in kernels)
  for k in kernels:
    args = k["args"]
    assert args["kernel"] == k["name"] and args["GFLOP/s"] >= 0 and args["GB/s"] >= 0 and args["bytes"] > 0, args
    assert len(args["global size"]) == 3 and args["kernel us"] > 0 and "roofline" in args, args
    assert args["program"] in ("compiled for this run", "memory cache hit", "TinyJit replay"), args
  in_replay = [k for k in kernels if k["args"]["program"] == "TinyJit replay"]
  assert len(in_replay) == sum(r["args"]["launches"] for r in replays)  # (the step launches no copy)
  for r in replays:
    inside = [k for k in in_replay if r["ts"] <= k["ts"] and k["ts"] + k["dur"] <= r["ts"] + r["dur"] + SLACK_US]
    assert len(inside) == r["args"]["launches"]


def test_compile_spans_say_where_the_program_came_from(device, tmp_path):
  """A kernel's first run compiles it (or reads its binary from the disk cache); after the runner cache is
  emptied, the next run finds spec and binary on disk; a kernel run again is a memory cache hit."""
  x = Tensor([1.0, 2.0], device=device)
  path = tmp_path / "trace.json"
  runner._runner_cache.clear()  # (an earlier test in this process may have run the same kernel: then no compile span)
  with teeny.trace(str(path)):
    (x + 1).numpy()
    runner._runner_cache.clear()
    (x + 1).numpy()
    (x + 1).numpy()
  events = validate_trace(json.loads(path.read_text()))
  compiles = spans(events, "compile")
  outer = [c for c in compiles if "kernel" in c["args"]]
  assert len(outer) == 2 and outer[0]["name"] == outer[1]["name"], outer
  assert outer[0]["args"]["binary"] in ("compiled now", "disk cache hit") and outer[0]["args"]["memory cache"] == "miss"
  if not os.environ.get("TEENY_NO_DISK_CACHE"):
    assert outer[1]["args"]["binary"] == "disk cache hit" and outer[1]["args"]["program spec"] == "disk cache hit"
  assert {c["name"] for c in compiles} - {c["name"] for c in outer} == {"codegen", "compile and load"}
  runs = [k["args"]["program"] for k in spans(events, "kernel")]
  assert runs == ["compiled for this run", "compiled for this run", "memory cache hit"], runs
  schedules = [s["args"]["cache"] for s in spans(events, "schedule")]
  assert schedules[-1] == "hit", schedules


def test_trace_blocks_do_not_nest_and_a_raising_block_still_writes(tmp_path):
  first, second = tmp_path / "a.json", tmp_path / "b.json"
  with pytest.raises(ZeroDivisionError):
    with teeny.trace(str(first)):
      with pytest.raises(RuntimeError, match="traces don't nest"):
        with teeny.trace(str(second)): pass
      (Tensor([1.0, 2.0]) + 1).numpy()
      1 / 0
  assert not tracing.active and not second.exists()
  events = validate_trace(json.loads(first.read_text()))
  assert spans(events, "realize", "realize")
  with pytest.raises(TypeError, match="a path"):
    with teeny.trace(None): pass


def test_context_trace_flag(tmp_path):
  path = tmp_path / "ctx.json"
  with Context(TRACE=str(path)):
    assert tracing.active
    (Tensor([1.0, 2.0]) * 3).numpy()
  assert not tracing.active
  assert spans(validate_trace(json.loads(path.read_text())), "realize", "realize")
  with pytest.raises(ValueError, match="takes the path"):
    with Context(TRACE=0): pass


def test_tracing_off_records_nothing(device, monkeypatch):
  """With no trace recording, no hook calls into the recorder (each checks `tracing.active` first); every kernel
  and copy that can is split across the LLVM pool, so its hooks are passed too."""
  assert not tracing.active and tracing._recorder is None
  def called(*args, **kwargs): raise AssertionError("a trace hook ran while tracing is off")
  for name in ("complete", "counter", "span", "host_track", "kernel_track", "thread_track"):
    monkeypatch.setattr(tracing, name, called)
  use_tuning(monkeypatch, device, parallel_threshold=0, parallel_copy_bytes=0)
  small_program(device)


def test_exported_name():
  """The exported name is the context manager; the module is teeny.tracing."""
  assert teeny.trace is tracing.trace and "trace" in teeny.__all__


# ---- in a child: TRACE=path, and the LLVM pool's slices ----

_CHILD_PROGRAM = """
import numpy as np
from teeny import Tensor, TinyJit
from teeny.nn import Linear
from teeny.nn.optim import SGD
x = Tensor(np.random.default_rng(0).standard_normal((512, 1024)).astype(np.float32))
(x.exp() + 1).numpy()                       # elementwise, large enough to be split across cores
x.sum(axis=1).numpy()                       # reduce
(x @ x.T).numpy()                           # matmul
(Tensor(np.ones(1 << 21, np.float32)) + 1).numpy()  # 8 MB copied in and out: split across the pool too
model = Linear(1024, 10)
opt = SGD([model.weight, model.bias], lr=0.1)
@TinyJit
def step(inputs):
  with Tensor.train():
    opt.zero_grad()
    loss = model(inputs).relu().sum()
    loss.backward()
    opt.step()
    return loss.realize()
for _ in range(4): step(x).numpy()
"""


@pytest.mark.skipif("LLVM" not in DEVICES, reason="the worker pool is the LLVM device's")
@pytest.mark.parametrize("native", ["1", "0"], ids=["native_pool", "python_pool"])
def test_trace_env_in_a_child_and_pool_slices(tmp_path, native):
  """TRACE=path records from import and writes at exit; split kernels show one slice per thread that ran one,
  covering the kernel's range once, inside the kernel's span (cpu_pool.ll's teeny_traced_slice stamps them)."""
  path = tmp_path / "env.json"
  run_in_child(_CHILD_PROGRAM, env={"TRACE": str(path), "DEVICE": "LLVM", "TEENY_NATIVE_POOL": native})
  events = validate_trace(json.loads(path.read_text()))
  assert [e["name"].split()[1] for e in spans(events, "jit")] == ["warm-up", "capture", "replay", "replay"]
  compiles = [c for c in spans(events, "compile") if "kernel" in c["args"]]
  assert compiles and all(c["args"]["binary"] == "compiled now" for c in compiles)  # (the child has no disk cache)
  assert "miss" in {s["args"]["cache"] for s in spans(events, "schedule")}
  kernels, slices = spans(events, "kernel"), spans(events, "slice")
  split = [k for k in kernels if any(s["name"] == k["name"] and _inside(s, k) for s in slices)]
  assert split, "no kernel ran split across the pool"
  for k in split:
    mine = sorted((s for s in slices if s["name"] == k["name"] and _inside(s, k)), key=lambda s: s["args"]["range"])
    ranges = [s["args"]["range"] for s in mine]
    assert ranges[0][0] == 0 and ranges[-1][1] == mine[0]["args"]["of"] == k["args"]["global size"][0], ranges
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:])) and len(mine) == mine[0]["args"]["slices"]
  pages_copied = collections.Counter()  # pages of a copy -> pages its slices copied: whole copies, no page twice
  for c in spans(events, "slice", "copy"): pages_copied[c["args"]["of"]] += c["args"]["pages"][1] - c["args"]["pages"][0]
  assert pages_copied and all(copied % pages == 0 for pages, copied in pages_copied.items()), pages_copied
  threads = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
  assert "kernels from MainThread" in threads
  if os.cpu_count() > 1: assert any(name.startswith("teeny-llvm-") for name in threads), threads


def _inside(inner: dict, outer: dict) -> bool:
  return outer["ts"] <= inner["ts"] and inner["ts"] + inner["dur"] <= outer["ts"] + outer["dur"] + SLACK_US


_STAMPS_PROGRAM = """
import ctypes, threading, time
import numpy as np
from teeny.runtime import cpu_pool
pool = cpu_pool._pool()
slices, pages = pool.helpers + 1, 37
src = np.arange(pages * cpu_pool._COPY_PAGE, dtype=np.uint8)
dst = np.zeros_like(src)
before = time.perf_counter_ns()
stamps = pool.copy(dst.ctypes.data, src.ctypes.data, src.nbytes, slices, traced=True)
after = time.perf_counter_ns()
assert (dst == src).all()
ranges = sorted((start, end) for start, end, _, _, _ in stamps)
assert len(stamps) == slices and ranges[0][0] == 0 and ranges[-1][1] == pages, stamps
assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:])), ranges
assert all(before <= began <= ended <= after for _, _, began, ended, _ in stamps), (before, stamps, after)
threads = {threading.get_native_id()} | {t.native_id for t in threading.enumerate()}
assert {thread for *_, thread in stamps} <= threads, stamps
assert pool.copy(dst.ctypes.data, src.ctypes.data, src.nbytes, slices) is None  # untraced: no stamps
print(type(pool).__name__, len(stamps))
"""


@pytest.mark.skipif("LLVM" not in DEVICES, reason="the worker pool is the LLVM device's")
@pytest.mark.parametrize("native", ["1", "0"], ids=["native_pool", "python_pool"])
def test_pool_stamps_each_slice_once_on_the_perf_counter_clock(native):
  """cpu_pool.ll's teeny_traced_slice (and the Python pool's twin): one stamp per slice, the slices' ranges
  partition the work, their times lie between perf_counter_ns readings taken around the call (the same clock),
  and the thread ids are threads of this process."""
  done = run_in_child(_STAMPS_PROGRAM, env={"TEENY_NATIVE_POOL": native})
  if native == "0": assert done.stdout.split()[0] == "_PythonPool"  # (with 1, the native pool where it runs)
