"""TinyJit: capture the kernels a function launches once, then replay them with new inputs and no Python.

    @TinyJit
    def step(x, y):
      ...build a graph, assign to parameters...
      return loss.realize()

Call 1 runs the function as it is (a warm-up: state made lazily, like optimizer buffers, gets realized). Call 2
runs it again while recording every kernel and copy it launches, with their buffers. Calls 3+ replay the
recording: the function is not called, no graph is built and nothing is scheduled; the kernels run on the new
arguments' buffers. What a replay does with each buffer the recording touched:

  - a Tensor argument's buffer: the buffer of the Tensor passed in that place now;
  - a returned Tensor's buffer made during the call: a FRESH buffer on every replay, so a result you still
    hold is never overwritten by a later call (tinygrad instead hands out the same buffer each time);
  - a scratch buffer made during the call that nothing outside holds: kept by the jit, reused on every replay,
    and planned so scratch buffers whose lifetimes don't overlap share memory (teeny/memory.py);
  - anything else (parameters, constants made from host data, buffers still held elsewhere): the same buffer,
    so updates the function assigns to parameters keep landing in them. A write into one still pending when a
    replay starts (a learning-rate scheduler's lazy lr.assign) runs first; a tensor made before the capture call
    and still lazy then (a layer's weights never realized) is realized outside the capture, so replays read its
    buffer, and later writes to it, instead of recomputing its old graph;
  - the key buffer of each random draw (Tensor.rand and friends): rewritten with the generator's next key
    before the kernels run, so every replay draws new numbers, the same ones an unjitted call would.

The contract:
  - Tensor arguments (positional or keyword) are the inputs, and so are the Tensors directly inside a list, tuple
    or dict argument (one level deep, as tinygrad looks: `step(x, [h, c])`; deeper ones raise JitTypeError).
    Every call after the capture must pass the same shapes, dtypes and devices as the capture call (the warm-up
    call may differ), and the same pattern of one tensor passed in two places. A tensor on several devices
    (teeny/multi.py) is one input buffer per device, and must be split the same way on every call (the same axis
    and blocks, or replicated); its results come back sharded alike.
  - Non-Tensor arguments (and the non-Tensor items beside Tensors in a list, tuple or dict) are constants of the
    capture: a call that changes one raises JitValueError. Use jit.reset() to capture again, or one TinyJit per
    configuration. Bound Variables (teeny.Variable(...).bind(n), teeny/variable.py) are the exception: their name
    and range are part of the signature, and each replay gives the kernels that took one that call's value. A
    Variable the function made a size (x[:pos]: teeny/variable.py) is baked into the capture at its value: a call
    with another value of it starts over, with a warm-up, as if after reset().
  - Misuse raises JitError (tinygrad's name), as a subclass that is also the builtin error it always was:
    JitValueError (a ValueError: other shapes, other constants, other aliasing), JitTypeError (a TypeError:
    another dtype, Tensors nested too deep), JitDeviceError (a RuntimeError: another device), and JitError itself
    when the capture call launched no kernel (nothing to replay, as tinygrad's "didn't JIT anything!").
  - The result may be a Tensor, or tuples/lists/dicts (nested as you like) of Tensors and plain values;
    returned Tensors are realized. Plain values are returned as they were on the captured call.
  - Outputs may alias inputs: a returned argument (e.g. `x += 1; return x`) is, on replay, the tensor passed in
    that place now; another result reading an argument's buffer reads the one passed now.
  - Returned views stay views (jit_views.py): a result that was a view in the capture call (`z, z[0:2]`, `c.T` of
    an argument, `kv[0:3]` of a global or parameter) is on replay the same view of its base: the tensor passed now,
    the same parameter or global (returned itself too, while it still lies in the buffer the kernels used), or
    this replay's result; so writes through it reach its base and the base's later changes show through it, as
    eagerly. A slice read through a Variable writes into its source at the replay's position; results PyTorch
    copies (flip, pad, arithmetic) stay copies.
  - An argument that is a view of another tensor (`step(X[i:i + 64])`, `step(cache[layer])`) is copied into a
    buffer of its own before the call (the kernels read an argument's buffer whole), and copied back after the
    call if the function wrote to it: its writes reach X, as eagerly, though the function itself sees them in X
    only after it returns; returned, it (or a view of it) is the view passed (or that view of it).
  - Program order holds across replays: lazy tensors that read a buffer a replay overwrites (a parameter the
    step updates) are realized before the replay's kernels run, as an eager call would have them.
  - Whatever the function computes in Python (reading tensor data with .item()/.numpy(), branching on it,
    making tensors from host data that changes between calls) is frozen at the capture.
  - Nested jits: a TinyJit called while another one is capturing (on the same thread) just runs its function;
    its kernels become part of the outer capture, and its own state (calls, capture) is left as it was.
  - `TinyJit(fn, prune=True)` (or `@TinyJit(prune=True)`), tinygrad's meaning: at the capture, the kernels that
    neither read an input's buffer nor a buffer such a kernel touched before them (work that depends only on
    parameters and constants: `(weights * 2).contiguous()`) ran once, at the capture, and are left out of every
    replay; their results stay in the buffers they were written to. Only for work whose inputs never change
    between calls: a random draw or a parameter update that reads no input would be frozen too.

JIT=0 in the environment (or `with Context(JIT=0):`) turns every TinyJit off: each call runs the function as it is
and nothing is captured, as in tinygrad (for debugging a jitted step).

What a call passed and returned, the signature later calls must match, and the errors are in jit_args.py.

Threads: a TinyJit may be called from several threads. Calls of one TinyJit are serialized by a lock it holds
(reentrant, for a function that calls its own jit): while one thread warms up, captures or replays, another
thread calling the same jit waits, so two captures never mix and two replays never share scratch buffers at
once. Different TinyJits run side by side. A capture records only the kernels its own thread runs: kernels
other threads run meanwhile are theirs, and tensors another thread made are never part of the capture. (So a
jitted function must not wait for another thread that calls the same jit: that thread waits for the lock.)
"""
from __future__ import annotations
import functools, threading, types, weakref
from teeny import memory
from teeny.engine import realize
from teeny.dtype import dtypes
from teeny.helpers import GlobalCounters, debug_level, dprint, getenv
from teeny.memory import plan_memory
from teeny.runtime.device import Buffer
from teeny.schedule import ScheduleItem, buffer_view, forget_realized, writes_count
from teeny.tensor import Tensor
from teeny.engine.tensors import realize_old_value_readers, realize_pending_writes
from teeny.ops.random import rng_key_buffers
from teeny.uop import UOp, Ops
from teeny import program_order, tracing
from teeny.engine.jit_args import (JitError, JitValueError, JitTypeError, JitDeviceError,  # noqa: F401 (the errors are this module's API)
                                  _views_copied, _written_back, _inputs, _check_same, _map, _output_tensors, layout,
                                  _buffers_of, _moves_over)
from teeny.engine.jit_views import _Out, ReturnedOutputs
from teeny.variable import BoundValue, watched, check_ranges


class TinyJit:
  """Capture the kernels `fn` launches and replay them (see the module's docstring). `TinyJit(fn)`, `@TinyJit`,
  or with options `TinyJit(fn, prune=True)` / `@TinyJit(prune=True)`."""
  def __new__(cls, fn=None, *, prune: bool = False):
    if fn is None: return functools.partial(cls, prune=prune)  # @TinyJit(prune=True): the decorator
    return super().__new__(cls)

  def __init__(self, fn, *, prune: bool = False):
    if not callable(fn): raise TypeError(f"TinyJit wraps a function, got {type(fn).__name__}")
    self.fn, self.prune = fn, prune
    functools.update_wrapper(self, fn)
    self._lock = threading.RLock()  # one call at a time (see Threads above)
    self.reset()

  def reset(self):
    """Forget the capture: the next call runs the function normally again, the one after captures."""
    with self._lock:
      self.calls = 0
      self._signature = None
      self._capture: _Capture | None = None
      self._size_names: set[str] = set()  # the Variables the function made sizes (teeny/variable.py)
      self._sizes_at: tuple = ()  # their values for the calls counted in self.calls (and the capture)
      self._ranges: list = []  # the positions from Variables the capture read or wrote, and their ranges

  @property
  def captured(self) -> _Capture | None:
    """The capture (tinygrad's name): None until the second call made one. Its `jit_cache` lists what each replay
    launches, one entry per kernel or copy (`linear.src` is the same, as tinygrad's newer name), and
    `free_intermediates()` gives the scratch buffers' memory back until the next replay."""
    return self._capture

  def __get__(self, obj, objtype=None):
    # a jitted method: the instance is a non-Tensor argument, so one TinyJit serves one instance
    return self if obj is None else functools.partial(self.__call__, obj)

  def __call__(self, *args, **kwargs):
    """Run, capture or replay (the first, second and later calls)."""
    if realize.capture.recording is not None: return _run_and_realize(self.fn, args, kwargs)  # nested: be transparent
    if not getenv("JIT", 1): return _run_and_realize(self.fn, args, kwargs)  # JIT=0 (tinygrad's switch): no jit at all
    args, kwargs, copies = _views_copied(args, kwargs)
    tensors, signature, variables = _inputs(args, kwargs)
    Tensor.realize_all(*tensors)
    input_bufs = [b for t in tensors for b in _buffers_of(t)]  # (a sharded tensor's: one per device, in order)
    # which argument each one shares its buffer with (a buffer passed twice must be passed twice again)
    first: dict[int, int] = {}
    signature += (tuple(first.setdefault(id(b), i) for i, b in enumerate(input_bufs)), tuple(layout(t) for t in tensors))
    versions = [t._version for t in tensors]  # (a write into an argument while the function runs changes its version)
    with self._lock:
      call = self._traced_call if tracing.active else self._call
      out = call(args, kwargs, tensors, input_bufs, signature, variables)
      if not copies: return out
      # the arguments written: seen by their versions where the function ran, by the replayed kernels' writes else
      written = {id(t) for t, v in zip(tensors, versions) if t._version != v}
      if self._capture is not None: written |= {id(t) for t in self._capture.written_args(tensors)}
      return _written_back(out, copies, written)

  def _traced_call(self, args, kwargs, tensors: list[Tensor], input_bufs: list[Buffer], signature: tuple, variables: dict):
    """_call in a trace span named for what the call did: warm-up, capture or replay."""
    name = getattr(self.fn, '__name__', repr(self.fn))
    what = "replay" if self._capture is not None else ("warm-up" if self.calls == 0 else "capture")
    with tracing.span(f"TinyJit {what} {name}", "jit", {"call": self.calls + 1}) as span:
      out = self._call(args, kwargs, tensors, input_bufs, signature, variables)
      if self._capture is not None: span.args["launches"] = len(self._capture.launches)
    return out

  def _sizes_of(self, variables: dict) -> tuple:
    return tuple(sorted((name, int(variables[name])) for name in self._size_names if name in variables))

  def _call(self, args, kwargs, tensors: list[Tensor], input_bufs: list[Buffer], signature: tuple, variables: dict):
    """A call with its inputs realized, holding the lock: check the signature, then warm up, capture or replay.
    A Variable the function made a size is baked into the capture's kernels at its value: a call with another
    value starts over with a warm-up (variable.py)."""
    sizes = self._sizes_of(variables)
    if sizes != self._sizes_at:
      if debug_level() >= 1: dprint(f"TinyJit {getattr(self.fn, '__name__', self.fn)}: new sizes {sizes}: runs again")
      self.calls, self._signature, self._capture, self._sizes_at, self._ranges = 0, None, None, sizes, []
    # the capture call's signature is the one replays must keep; the warm-up call only runs (as tinygrad's: a
    # first call, say a prompt, may differ from the steps)
    if self.calls == 1: self._signature = signature
    elif self.calls > 1: _check_same(self._signature, signature)
    self.calls += 1
    if self._capture is not None:
      check_ranges(self._ranges, variables)  # (positions from Variables: this call's values, as a build would)
      return self._capture.replay(input_bufs, tensors, variables)
    with watched() as seen:
      out = self._warm_up_or_capture(args, kwargs, tensors, input_bufs, variables)
    if self._capture is not None: self._ranges = seen.ranges
    if seen.sizes - self._size_names:  # a Variable became a size: later calls are told apart by its value too
      self._size_names |= seen.sizes
      self._sizes_at = self._sizes_of(variables)
    return out

  def _warm_up_or_capture(self, args, kwargs, tensors: list[Tensor], input_bufs: list[Buffer], variables: dict):
    if self.calls == 1: return _run_and_realize(self.fn, args, kwargs)
    recorded: list = []
    rng_before = Tensor._rng_counter
    realize.capture.recording = recorded  # (this thread's: see realize.capture)
    program_order.set_capture_start(program_order.capture_position())
    try: out = _run_and_realize(self.fn, args, kwargs)
    finally:
      realize.capture.recording = None
      program_order.set_capture_start(None)
    name = getattr(self.fn, '__name__', self.fn)
    if not recorded:
      self.calls -= 1  # the next call tries to capture again, as tinygrad's does
      raise JitError(f"TinyJit {name}: the capture call launched no kernel, so there is nothing to replay (realize a "
                     "result inside the function, or call it without TinyJit)")
    _check_one_binding_per_name(recorded, variables, name)
    self._capture = _Capture(recorded, input_bufs, tensors, out, rng_before, Tensor._rng_counter, self.prune)
    if debug_level() >= 1: dprint(f"TinyJit {name}: captured {len(self._capture.launches)} item(s){self._capture.pruned_note}")
    return out


def _check_one_binding_per_name(recorded: list, variables: dict, name):
  """A replay gives every value bound to an argument's Variable that call's value, found by name: a Variable of
  the same name bound to another value inside the function would take it too, so the capture refuses it."""
  for item, _, _ in recorded:
    for v in item.vals:
      if isinstance(v, BoundValue) and v.name in variables and int(v) != variables[v.name]:
        raise JitValueError(f"TinyJit {name}: Variable {v.name!r} is an argument (bound to {variables[v.name]}) and bound "
                            f"to {int(v)} inside the function; a replay can't tell them apart: name the inner one otherwise")


def _run_and_realize(fn, args, kwargs):
  out = fn(*args, **kwargs)
  # with the writes the call left pending (BatchNorm's running statistics), so a capture records them too
  Tensor.realize_all(*_output_tensors(out), *program_order.writes_to_run_now())
  return out


# ---- the capture ----

class _Launch:
  """One captured kernel (runner) or copy (runner None), the slots of its buffers and its values (the numbers the
  capture call passed: constants stay what they were then, as in tinygrad's TinyJit; a bound Variable's value
  argument takes each replay's value of that Variable, found by name in `bound_at`). For a kernel, `args`
  holds the handles of the buffers that stay the same (never changed: each replay fills a copy of it) and
  `patches` the (argument, slot) pairs a replay fills."""
  def __init__(self, runner, slots: list[int], kept: dict[int, Buffer], ast: UOp, vals: tuple):
    self.runner, self.slots, self.ast, self.vals = runner, slots, ast, vals
    self.bound_at = [(i, v.name) for i, v in enumerate(vals) if isinstance(v, BoundValue)]
    self.src = (ast,)  # (tinygrad's tests read a launch's AST as call.src[0])
    self.args = tuple(kept[s].handle if s in kept else None for s in slots)
    self.patches = [(i, s) for i, s in enumerate(slots) if s not in kept]

  def vals_for(self, variables: dict[str, int]) -> tuple:
    """The values of this replay: the captured ones, with the call's value of each Variable passed as an argument
    (one made inside the function is a constant of the capture, like any other number)."""
    if not self.bound_at or not variables: return self.vals
    vals = list(self.vals)
    for i, name in self.bound_at:
      if name in variables: vals[i] = BoundValue(variables[name], name)
    return tuple(vals)

  def args_for(self, handles: dict) -> tuple | list:
    """The kernel's arguments in a replay whose own buffers' handles are `handles` (slot -> handle)."""
    if not self.patches: return self.args
    args = list(self.args)  # this call's own list: self.args is shared by every replay
    for i, s in self.patches: args[i] = handles[s]
    return args


def _slots(recorded: list) -> tuple[list[tuple], dict[int, Buffer], set[int]]:
  """Number every distinct buffer of the recording. Returns per item (ast, runner, slots, values), slot -> buffer, and the
  slots whose memory was first given while the recording ran (made during the call)."""
  slot_of: dict[Buffer, int] = {}
  made: set[int] = set()
  launches = []
  for item, runner, allocated in recorded:
    for buf, had_memory in zip(item.bufs, allocated):
      if buf not in slot_of:
        slot_of[buf] = len(slot_of)
        if not had_memory: made.add(slot_of[buf])
    launches.append((item.ast, runner, [slot_of[b] for b in item.bufs], item.vals))
  return launches, {s: b for b, s in slot_of.items()}, made


def _pruned(launches: list[tuple], input_slots: set[int]) -> tuple[list[tuple], set[int]]:
  """tinygrad's prune: in order, a launch is kept if it touches a buffer that is an input or that a kept launch
  touched (those buffers then count too), or takes a bound Variable's value (each call binds its own); the others
  did work that no input changes, done once at the capture. Returns the kept launches and the slots the left-out
  ones touched."""
  needed, kept, left_out = set(input_slots), [], []
  for launch in launches:
    slots = set(launch[2])
    if slots & needed or any(isinstance(v, BoundValue) for v in launch[3]):
      kept.append(launch)
      needed |= slots
    else: left_out.append(launch)
  return kept, {s for launch in left_out for s in launch[2]}


def _input_slots(input_bufs: list[Buffer], slot_of: dict) -> dict[int, int]:
  """slot -> index of the argument filling it (the first, if one buffer is passed twice)."""
  inputs: dict[int, int] = {}
  for i, b in enumerate(input_bufs):
    if b in slot_of and slot_of[b] not in inputs: inputs[slot_of[b]] = i
  return inputs


class _Capture:
  """A recording turned into slots. Each slot is filled on replay from an argument (`inputs`), with a fresh
  buffer (`fresh`: returned tensors made during the call), or by a buffer the capture keeps (`kept`)."""
  def __init__(self, recorded: list, input_bufs: list[Buffer], input_tensors: list[Tensor], out, rng_before: int, rng_after: int,
               prune: bool = False):
    self.launches_info, buf_of, made = _slots(recorded)
    recorded.clear()  # the buffers must now be held by buf_of alone, for the scratch test in _keep_or_plan
    slot_of = {b: s for s, b in buf_of.items()}
    self.inputs = _input_slots(input_bufs, slot_of)
    # pruned launches ran at the capture and never again: the buffers they touched keep their contents (never
    # planned as scratch, never a fresh buffer per replay)
    n_recorded = len(self.launches_info)
    self.launches_info, self._pinned = _pruned(self.launches_info, set(self.inputs)) if prune else (self.launches_info, set())
    self.pruned_note = f" (pruned from {n_recorded})" if prune else ""
    self.fresh = self._fresh_slots(out, slot_of, buf_of, made)
    # (the returned tensors' bases, and each one as a view of its base: jit_views.py)
    self.outputs = ReturnedOutputs(out, lambda t: self._where(t, slot_of, input_bufs, input_tensors),
                                   lambda bufs: all(slot_of.get(b) not in made for b in bufs))
    slot_of.clear()  # (it holds the buffers too)
    scratch = self._keep_or_plan(buf_of, made)
    self._scratch = scratch  # (slot -> spec: free_intermediates gives their memory back, the next replay plans again)
    # the key buffers of random draws, with their draw number relative to the call's first draw
    self.rng_keys = [(b, rng_key_buffers[b] - rng_before) for b in self.kept.values() if b in rng_key_buffers]
    self.rng_draws = rng_after - rng_before
    self.launches = [_Launch(runner, slots, self.kept, ast, vals) for ast, runner, slots, vals in self.launches_info]
    self._freed = False
    self._count_replay_work()
    # the buffers outside the capture's own that kernels overwrite (parameters, arguments): results remembered from
    # them are stale after a replay, as assign() makes them when run eagerly (see replay)
    outputs = [s for ast, r, slots, _ in self.launches_info if r is not None for s in slots[:writes_count(ast)]]
    self.written = {s for s in outputs if s in self.inputs or (s in self.kept and s not in scratch)}
    self._written_inputs = sorted({self.inputs[s] for s in self.written if s in self.inputs})  # (input buffer numbers)

  def written_args(self, tensors: list[Tensor]) -> list[Tensor]:
    """The argument tensors (this call's, in input order) whose buffers a replay's kernels write."""
    owner = [t for t in tensors for _ in _buffers_of(t)]  # (input buffer number -> its tensor)
    return [owner[i] for i in self._written_inputs]

  def _fresh_slots(self, out, slot_of: dict, buf_of: dict[int, Buffer], made: set[int]) -> dict[int, tuple]:
    """slot -> (device, size, dtype) of each returned tensor's buffer made during the call: a new one per replay."""
    fresh: dict[int, tuple] = {}
    for buf in (b for t in _output_tensors(out) for b in _buffers_of(t)):
      s = slot_of.get(buf)
      if s is not None and s in made and s not in self.inputs and s not in self._pinned: fresh[s] = _spec(buf_of[s])
    return fresh

  def _keep_or_plan(self, buf_of: dict[int, Buffer], made: set[int]) -> dict[int, tuple]:
    """Fill `self.kept` (slot -> the buffer every replay uses) and return the scratch slots' specs: those made during
    the call and held by nothing but the recording. To find them, drop our references and see which buffers die:
    those nobody else can see are free to be planned (their memory went back to the allocator)."""
    maybe = [s for s in made if s not in self.inputs and s not in self.fresh and s not in self._pinned]
    refs = {s: weakref.ref(buf_of[s]) for s in maybe}
    specs = {s: _spec(buf_of.pop(s)) for s in maybe}
    scratch = {s: specs[s] for s in maybe if refs[s]() is None}
    self.kept: dict[int, Buffer] = {s: b for s, b in buf_of.items() if s not in self.inputs and s not in self.fresh}
    self.kept.update({s: refs[s]() for s in maybe if s not in scratch})
    self.kept.update(self._plan(scratch))
    return scratch

  def _count_replay_work(self):
    """What one replay adds to GlobalCounters: kernels, copies, flops, and the bytes of the kernels' buffers
    (`fixed_mem`; the arguments' sizes, `input_reads`, are added on replay)."""
    kernels = [(r, slots) for _, r, slots, _ in self.launches_info if r is not None]
    self.n_copies = len(self.launches) - len(kernels)
    self.flops = sum(r.spec.flops for r, _ in kernels)
    fresh_nbytes = {s: size * dtype.itemsize for s, (_, size, dtype) in self.fresh.items()}
    kernel_slots = [s for _, slots in kernels for s in slots]
    self.fixed_mem = sum(self.kept[s].nbytes if s in self.kept else fresh_nbytes.get(s, 0) for s in kernel_slots)
    self.input_reads = [s for s in kernel_slots if s in self.inputs]

  def _where(self, t: Tensor, slot_of: dict, input_bufs: list[Buffer], input_tensors: list[Tensor]) -> _Out:
    same = next((i for i, a in enumerate(input_tensors) if a is t), None)
    if same is not None: return _Out(t.device, None, same_arg=same)
    bottom, moves = _moves_over(t.uop)
    if bottom.op is Ops.MULTI:
      shards = [self._where_node(n, None, slot_of, input_bufs) for n in bottom.src]
      return _Out(t.device, moves, shards=shards, multi_arg=bottom.arg)
    return self._where_node(t.uop, t.device, slot_of, input_bufs)

  def _where_node(self, node: UOp, device, slot_of: dict, input_bufs: list[Buffer]) -> _Out:
    """Where a realized node's buffer comes from on replay: a slot, an input buffer, or the buffer itself."""
    bottom, moves = _moves_over(node)
    buf = bottom.arg
    s = slot_of.get(buf)
    if s is not None and (s in self.fresh or s in self.inputs): return _Out(device, moves, slot=s)
    arg = next((i for i, b in enumerate(input_bufs) if b is buf), None)
    return _Out(device, moves, arg=arg) if arg is not None else _Out(device, moves, buf=buf)

  def _plan(self, scratch: dict[int, tuple]) -> dict[int, Buffer]:
    """Buffers for the scratch slots, sharing memory where their lifetimes don't overlap (if the planner is on)."""
    if not memory.PLANNER: return {s: Buffer(*spec) for s, spec in scratch.items()}
    plannable = {s: (d, size * dt.itemsize) for s, (d, size, dt) in scratch.items()}
    block_of, blocks, _ = plan_memory([slots for _, _, slots, _ in self.launches_info], plannable)
    bases = [Buffer(d, nbytes, dtypes.uint8) for d, nbytes in blocks]
    return {s: Buffer(d, size, dt, bases[block_of[s]]) for s, (d, size, dt) in scratch.items()}

  @property
  def jit_cache(self) -> list[_Launch]:
    """What a replay launches, in order: one entry per kernel or copy (`.ast`: the kernel's AST, or a COPY node)."""
    return self.launches
  @property
  def linear(self):
    """jit_cache as tinygrad's newer captured program spells it: `.src` holds the launches."""
    return types.SimpleNamespace(src=tuple(self.launches))

  def free_intermediates(self):
    """Give back the scratch buffers' memory (what the function made and nothing outside holds): for a jit kept
    around but not called for a while. The next replay makes and plans them again."""
    for s in self._scratch: self.kept.pop(s, None)
    self._freed = True

  def _replan(self):
    self.kept.update(self._plan(self._scratch))
    self.launches = [_Launch(runner, slots, self.kept, ast, vals) for ast, runner, slots, vals in self.launches_info]
    self._freed = False

  def replay(self, input_bufs: list[Buffer], input_tensors: list[Tensor], variables: dict[str, int]):
    if self._freed: self._replan()
    # writes still pending into the buffers the recording reads or writes (a learning-rate scheduler's lazy assign)
    # run first: the launches below would read the old values and be overwritten by them after
    realize_pending_writes(self.kept.values())
    bufs = {s: input_bufs[i] for s, i in self.inputs.items()}
    for s, spec in self.fresh.items(): bufs[s] = Buffer(*spec)
    if self.written:
      # results remembered from the overwritten buffers are stale, and lazy tensors reading them read them now
      forget_realized()
      realize_old_value_readers(set(self._buffers(bufs, self.written)))
    first_draw = Tensor._take_draws(self.rng_draws)  # (at once: another thread may be drawing too)
    for key, draw in self.rng_keys: key.copyin(memoryview(Tensor._rng_key(first_draw + draw)).cast("B"))
    if debug_level() >= 2: self._replay_with_debug(bufs, variables)
    else: self._replay(bufs, variables, traced=tracing.active)
    return self.outputs.replayed(lambda o: self._output(o, bufs, input_bufs, input_tensors), variables)

  def _replay(self, bufs: dict[int, Buffer], variables: dict[str, int], traced: bool):
    """The launches in order. traced: each kernel waited for and recorded in the trace (realize.traced_launch)."""
    handles = {s: b.handle for s, b in bufs.items()}
    for launch in self.launches:
      if launch.runner is None:
        realize.run_copy(launch.ast, *self._buffers(bufs, launch.slots))
      elif not traced: launch.runner.launch(*launch.args_for(handles), vals=launch.vals_for(variables))
      else:
        mem = sum(b.nbytes for b in self._buffers(bufs, launch.slots))
        realize.traced_launch(launch.runner, list(launch.args_for(handles)), launch.vals_for(variables), mem, "TinyJit replay")
    self._count(bufs)

  def _count(self, bufs: dict[int, Buffer]):
    """Add one replay's work to GlobalCounters."""
    # each sum worked out before its `+=`: a call between reading a counter and writing it back is where another
    # thread may run and count meanwhile, and its counts would be lost
    kernels, mem = len(self.launches) - self.n_copies, self.fixed_mem + sum(bufs[s].nbytes for s in self.input_reads)
    GlobalCounters.kernel_count += kernels
    GlobalCounters.copies += self.n_copies
    GlobalCounters.global_ops += self.flops
    GlobalCounters.global_mem += mem

  def _buffers(self, bufs: dict[int, Buffer], slots) -> list[Buffer]:
    """The buffers of these slots in this replay: its own (`bufs`), or those the capture keeps."""
    return [bufs[s] if s in bufs else self.kept[s] for s in slots]

  def _replay_with_debug(self, bufs: dict[int, Buffer], variables: dict[str, int]):
    """The same launches through run_schedule, which prints a line per kernel with its time."""
    realize.run_schedule([ScheduleItem(launch.ast, self._buffers(bufs, launch.slots), launch.vals_for(variables))
                          for launch in self.launches])

  def _output(self, o: _Out, bufs: dict[int, Buffer], input_bufs: list[Buffer], input_tensors: list[Tensor]) -> Tensor:
    if o.same_arg is not None: return input_tensors[o.same_arg]
    return Tensor(self._output_node(o, bufs, input_bufs), device=o.device)

  def _output_node(self, o: _Out, bufs: dict[int, Buffer], input_bufs: list[Buffer]) -> UOp:
    if o.shards is not None:
      shards = tuple(self._output_node(s, bufs, input_bufs) for s in o.shards)
      node = UOp(Ops.MULTI, shards[0].dtype, shards, o.multi_arg)
    else:
      buf = bufs[o.slot] if o.slot is not None else (input_bufs[o.arg] if o.arg is not None else o.buf)
      node = buffer_view(buf, (buf.size,))
    for op, arg in o.moves: node = UOp(op, node.dtype, (node,), arg)
    return node


def _spec(buf: Buffer) -> tuple: return (buf.device, buf.size, buf.dtype)
