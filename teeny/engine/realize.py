"""Running schedules: get the compiled program of each kernel (runner.py), launch it on the item's buffers (allocated
on first use), copy between devices, count what ran in GlobalCounters, and print what happened at the DEBUG level
asked. DEBUG>=2 prints each kernel's share of the device's ceilings once they are known (roofline.py measures
them at exit the first time, never inside a realize, and caches them on disk). While
a TinyJit captures on a thread, every item that thread runs here is also recorded for it (see `capture`).
PROGRESS=1 keeps one line on stderr up to date while a realize runs longer than a second (see _Progress)."""
from __future__ import annotations
import sys, threading, time
from teeny.uop import Ops, UOp
from teeny.runtime import collective
from teeny.runtime.device import Buffer
from teeny.schedule import ScheduleItem, allreduce_op
from teeny.helpers import GlobalCounters, debug_level, dprint, getenv
from teeny.engine.runner import get_runner, is_loaded
from teeny.engine.roofline import roofline_share, note_unplaced


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


def _run_kernel(item: ScheduleItem, level: int):
  bufs = item.bufs
  device = bufs[0].device
  runner = get_runner(device, item.ast, bufs, item.vals)
  recording = capture.recording
  if recording is not None: recording.append((item, runner, [b.is_allocated for b in bufs]))
  handles, mem = [], 0
  for b in bufs:  # one loop for both (this runs for every kernel launched)
    handles.append(b.handle)
    mem += b.nbytes
  elapsed = runner.launch(*handles, vals=item.vals, wait=level >= 2)
  GlobalCounters.kernel_count += 1
  GlobalCounters.global_ops += runner.spec.flops
  GlobalCounters.global_mem += mem
  if level >= 2:
    t = max(elapsed or 0.0, 1e-9)
    roof = roofline_share(device, mem, runner.spec.flops, t)
    if roof is None:  # the ceilings are measured at exit, never inside the user's realize (roofline.py)
      note_unplaced(device, runner.spec.name, mem, runner.spec.flops, t)
      roof = "roofline at exit"
    dprint(f"*** {device:<5} {GlobalCounters.kernel_count:4d} {runner.spec.name:<34} arg {len(item.bufs):2d} "
           f"mem {mem / 1e9:6.3f} GB tm {t * 1e6:9.2f}us ({runner.spec.flops / t / 1e9:9.2f} GFLOPS {mem / t / 1e9:7.2f} GB/s, {roof})")


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
  """A COPY item: between devices, or an allreduce of src over every process into dst (teeny.distributed)."""
  op = allreduce_op(copy)
  if op is None: copy_buffer(dst, src)
  else: collective.allreduce_buffer(dst, src, op)


def copy_buffer(dst: Buffer, src: Buffer):
  """Copy between devices, through the host."""
  if src.size: dst.copyin(memoryview(src.numpy()).cast("B"))
