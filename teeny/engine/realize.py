"""Running schedules: get the compiled program of each kernel (runner.py), launch it on the item's buffers (allocated
on first use), copy between devices, count what ran in GlobalCounters, and print what happened at the DEBUG level
asked. DEBUG>=2 prints each kernel's share of the device's ceilings once they are known (roofline.py measures
them at exit the first time, never inside a realize, and caches them on disk). While
a TinyJit captures on a thread, every item that thread runs here is also recorded for it (see `capture`).
PROGRESS=1 keeps one line on stderr up to date while a realize runs longer than a second (see _Progress). While a
trace records (teeny/tracing.py), every kernel is waited for and recorded on its device's track with the numbers
DEBUG=2 prints (`traced_launch`), and every copy on the host's."""
from __future__ import annotations
import sys, threading, time
from teeny.uop import Ops, UOp
from teeny.runtime import collective
from teeny.runtime.device import Buffer
from teeny.schedule import ScheduleItem, allreduce_op
from teeny.helpers import GlobalCounters, debug_level, dprint, getenv
from teeny.engine.runner import get_runner, is_loaded
from teeny.engine.roofline import roofline_closest, roofline_share, note_kernel
from teeny import tracing


class _ThreadCapture(threading.local):
  """Per thread: while a TinyJit captures on this thread, `recording` is the list it records into: per item run,
  (item, its runner or None for a copy, which of its buffers had memory before it ran). Per thread, because the
  kernels other threads run meanwhile are theirs, not the capture's."""
  recording: list | None = None  # (a class default: every thread starts with None)


capture = _ThreadCapture()


def run_schedule(items: list[ScheduleItem]):
  level = debug_level()
  if level >= 3:
    for i, item in enumerate(items):
      dprint(f"schedule {i}: {item.ast.op.name if item.ast.op is Ops.COPY else 'kernel'} bufs={item.bufs}")
  start = time.perf_counter() if level >= 1 else 0.0
  progress = _Progress(len(items)) if getenv("PROGRESS", 0) and level < 2 else None  # (DEBUG=2 lists every kernel)
  if tracing.active: _run_traced(items, level, progress)
  else:
    for done, item in enumerate(items, 1):
      if item.ast.op is Ops.COPY: _run_copy(item, level)
      elif progress is None: _run_kernel(item, level)
      else:
        new = not is_loaded(item.bufs[0].device, item.ast)
        _run_kernel(item, level)
        progress.update(done, new)
  if progress is not None: progress.close()
  if level >= 1 and items:
    dprint(f"realized {len(items)} item(s) in {(time.perf_counter() - start) * 1e3:.2f} ms; schedule cache "
           f"{GlobalCounters.schedule_hits} hits {GlobalCounters.schedule_misses} misses; mem {GlobalCounters.mem_used / 1e6:.2f} MB "
           f"(peak {GlobalCounters.peak_mem / 1e6:.2f} MB)")


class _Progress:
  """PROGRESS=1: while a realize runs longer than AFTER_S seconds (a first training step: most of its kernels are
  new, each optimized, rendered and compiled), one line on stderr, rewritten in place a few times a second: the
  kernels done of all, how many of them were new to this process, and the seconds so far."""
  AFTER_S, EVERY_S = 1.0, 0.25

  def __init__(self, total: int):
    self.total, self.new, self.start, self.shown = total, 0, time.perf_counter(), None

  def update(self, done: int, new: bool):
    self.new += new
    elapsed = time.perf_counter() - self.start
    if elapsed >= self.AFTER_S and (self.shown is None or elapsed - self.shown >= self.EVERY_S):
      self.shown = elapsed
      self._write(done, elapsed, "")

  def close(self):
    if self.shown is not None: self._write(self.total, time.perf_counter() - self.start, "\n")

  def _write(self, done: int, elapsed: float, end: str):
    sys.stderr.write(f"\r  realize: {done}/{self.total} kernels, {self.new} new (optimized and compiled), {elapsed:.1f} s{end}")
    sys.stderr.flush()


def _run_kernel(item: ScheduleItem, level: int, program: str | None = None):
  """Launch one kernel and count it. `program` (while a trace records: where the kernel's program came from): the
  kernel is waited for and recorded in the trace (traced_launch)."""
  bufs = item.bufs
  device = bufs[0].device
  runner = get_runner(device, item.ast, bufs, item.vals)
  recording = capture.recording
  if recording is not None: recording.append((item, runner, [b.is_allocated for b in bufs]))
  handles, mem = [], 0
  for b in bufs:  # one loop for both (this runs for every kernel launched)
    handles.append(b.handle)
    mem += b.nbytes
  if program is None: elapsed = runner.launch(*handles, vals=item.vals, wait=level >= 2)
  else: elapsed = traced_launch(runner, handles, item.vals, mem, program)
  GlobalCounters.kernel_count += 1
  GlobalCounters.global_ops += runner.spec.flops
  GlobalCounters.global_mem += mem
  if level >= 2: _print_kernel(runner, len(bufs), mem, elapsed)


def kernel_seconds(elapsed: float | None) -> float:
  """A kernel's time as DEBUG=2 and a trace divide by (never zero)."""
  return max(elapsed or 0.0, 1e-9)


def _print_kernel(runner, nbufs: int, mem: int, elapsed: float | None):
  """DEBUG=2's line for a kernel that ran."""
  device, spec, t = runner.device, runner.spec, kernel_seconds(elapsed)
  roof = roofline_share(device, mem, spec.flops, t)
  note_kernel(device, spec.name, mem, spec.flops, t, placed=roof is not None)  # (for the table at exit)
  if roof is None: roof = "roofline at exit"  # the ceilings are measured at exit, never inside the user's realize
  dprint(f"*** {device:<5} {GlobalCounters.kernel_count:4d} {spec.name:<34} arg {nbufs:2d} "
         f"mem {mem / 1e9:6.3f} GB tm {t * 1e6:9.2f}us ({spec.flops / t / 1e9:9.2f} GFLOPS {mem / t / 1e9:7.2f} GB/s, {roof})")


# ---- traced runs: every kernel waited for and recorded (teeny/tracing.py) ----

def _run_traced(items: list[ScheduleItem], level: int, progress: _Progress | None):
  with tracing.span("run schedule", "realize", {"items": len(items)}):
    for done, item in enumerate(items, 1):
      if item.ast.op is Ops.COPY:
        _run_copy(item, level)
        continue
      new = not is_loaded(item.bufs[0].device, item.ast)
      _run_kernel(item, level, "compiled for this run" if new else "memory cache hit")
      if progress is not None: progress.update(done, new)


def traced_launch(runner, handles: list, vals: tuple, mem: int, program: str) -> float | None:
  """Launch a kernel, wait for it and record its span on its device's track of this thread (`program`: where its
  program came from). Returns the kernel's time, as launch(wait=True) does. The span's numbers are worked out when
  the trace is written (_kernel_args), not here: a replayed step of small kernels is what a trace slows most."""
  track = tracing.kernel_track(runner.device)
  start = time.perf_counter_ns()
  elapsed = runner.launch(*handles, vals=vals, wait=True)
  end = time.perf_counter_ns()
  tracing.complete(track, runner.spec.name, "kernel", start, end, (_kernel_args, runner, len(handles), mem, elapsed, program))
  return elapsed


def _kernel_args(runner, nbufs: int, mem: int, elapsed: float | None, program: str) -> dict:
  """A kernel span's args: its name, sizes, bytes, flops, time, GFLOP/s, GB/s and roofline share as DEBUG=2 works
  them out (the share once the device's ceilings are known: by the time the trace is written they may be)."""
  spec, t = runner.spec, kernel_seconds(elapsed)
  local_size = list(spec.local_size) if spec.local_size else None
  args = {"kernel": spec.name, "global size": list(spec.global_size), "local size": local_size, "buffers": nbufs,
          "bytes": mem, "flops": spec.flops, "kernel us": round(t * 1e6, 3), "GFLOP/s": round(spec.flops / t / 1e9, 3),
          "GB/s": round(mem / t / 1e9, 3), "program": program}
  closest = roofline_closest(runner.device, mem, spec.flops, t)
  if closest is None: args["roofline"] = "not measured yet (roofline.measure_ceilings() or a DEBUG=2 run measures it)"
  else: args.update({"roofline %": round(closest[0] * 100, 2), "roofline": f"{closest[0]:.0%} of {closest[1]}"})
  return args


def _run_copy(item: ScheduleItem, level: int):
  dst, src = item.bufs
  recording = capture.recording
  if recording is not None: recording.append((item, None, [b.is_allocated for b in item.bufs]))
  t0 = time.perf_counter()
  run_copy(item.ast, dst, src)
  GlobalCounters.copies += 1
  if level >= 2:
    op = allreduce_op(item.ast)
    what = f"{src.device} -> {dst.device}" if op is None else f"allreduce ({op}) over {collective.comm().Get_size()} processes"
    dprint(f"*** {dst.device:<5} copy {src.nbytes:10d} bytes {what} tm {(time.perf_counter() - t0) * 1e6:9.2f}us")


def run_copy(copy: UOp, dst: Buffer, src: Buffer):
  """A COPY item: between devices, or an allreduce of src over every process into dst (teeny.distributed); in a
  span on the host's track while a trace records."""
  if tracing.active:
    with tracing.span(copy_name(copy, dst, src), "copy", {"bytes": src.nbytes}): return _copy(copy, dst, src)
  _copy(copy, dst, src)


def _copy(copy: UOp, dst: Buffer, src: Buffer):
  op = allreduce_op(copy)
  if op is None: copy_buffer(dst, src)
  else: collective.allreduce_buffer(dst, src, op)


def copy_buffer(dst: Buffer, src: Buffer):
  """Copy between devices, through the host."""
  if src.size: dst.copyin(memoryview(src.numpy()).cast("B"))


def copy_name(copy: UOp, dst: Buffer, src: Buffer) -> str:
  """What a COPY item is called in a trace and in the viewer."""
  op = allreduce_op(copy)
  return f"copy {src.device} -> {dst.device}" if op is None else f"allreduce ({op})"

