"""Tensors on several devices of one process: the MULTI node, and the rewrite that gives each device its graph.

A sharded tensor's node is MULTI(shard_0, ..., shard_k-1) with arg (devices, axis): shard i is a graph on
devices[i]. With an axis, the shards are consecutive blocks of that axis (Tensor.shard); with axis None every shard
holds the whole tensor (replicated: Tensor.to(devices)). Tensor ops and gradients build their graph over a MULTI as
over any node, at the whole tensor's shapes. To realize it, `per_device` rewrites that graph bottom-up so the MULTI
rises to the top: ADD(MULTI(a0, a1), MULTI(b0, b1)) becomes MULTI(ADD(a0, b0), ADD(a1, b1)). What is left is one
ordinary graph per device, scheduled like any other; data moves between devices only through COPY nodes.

- Operands laid out differently are brought to one layout first: a replicated one is sliced (free), one sharded on
  another axis or in other blocks is gathered to every device and sliced (copies).
- A reduce over the sharded axis is a reduce per shard, then an allreduce across the devices built from COPYs and
  the reduce's own op: with two devices each adds the partial results in device order, with more a ring passes
  chunks around; either way each value is combined once in one order, so the replicas are equal bit for bit.
- Movement ops keep the sharding where the blocks stay whole: a reshape that keeps them, permute, expand, a pad
  or shrink along the axis (only the first and last shards change size) and flip (the shards trade places). A
  reshape that would cut blocks, or a shrink that empties a shard, gathers the tensor first.
- Graphs without buffers (constants, aranges) are sliced into each device's graph. One with a kernel's worth of
  work in it (a reduce) is computed on the first device and copied, so no node has two devices in one schedule.
"""
from __future__ import annotations
import math, weakref
from teeny.dtype import dtypes, NARROW_FLOATS
from teeny.uop import UOp, Ops, UPat, PatternMatcher, graph_rewrite, ELEMENTWISE, MOVEMENT, toposort

_COMBINE = {Ops.ADD: Ops.ADD, Ops.MAX: Ops.MAX, Ops.MUL: Ops.MUL}  # how a reduce's partial results combine


# ---- layouts ----

def even_bounds(size: int, n: int) -> list[tuple[int, int]]:
  """n consecutive blocks covering range(size), the first size % n of them one longer."""
  out, start = [], 0
  for i in range(n):
    length = size // n + (1 if i < size % n else 0)
    out.append((start, start + length))
    start += length
  return out


def bounds_of(m: UOp) -> list[tuple[int, int]] | None:
  """The block of the sharded axis each shard of MULTI m holds (None when replicated)."""
  axis = m.arg[1]
  if axis is None: return None
  out, start = [], 0
  for s in m.src:
    out.append((start, start + s.shape[axis]))
    start += s.shape[axis]
  return out


def multi(shards, devices: tuple[str, ...], axis: int | None) -> UOp:
  shards = tuple(shards)
  return UOp(Ops.MULTI, shards[0].dtype, shards, (devices, axis))


def block(node: UOp, axis: int, bounds: tuple[int, int]) -> UOp:
  """node's rows bounds[0]:bounds[1] of axis (node itself when that is all of it)."""
  if bounds == (0, node.shape[axis]): return node
  return node.shrink(tuple(bounds if i == axis else (0, s) for i, s in enumerate(node.shape)))


def copy_to(node: UOp, source: str, device: str) -> UOp:
  """node (computed on `source`) on `device`: itself when that is its device or it reads no buffer. A graph
  without buffers that makes a kernel of its own (a constant's contiguous()) is computed on `source` and copied:
  one node on several devices is computed on one of them, and the others' kernels would read its buffer there."""
  if source == device: return node
  if not has_buffers(node):
    if not _has_work(node): return node  # (computed inside each device's kernels)
    node = UOp(Ops.CONTIGUOUS, node.dtype, (node,), ("on", source))
  return UOp(Ops.COPY, node.dtype, (node,), (source, device))


def has_buffers(node: UOp) -> bool:
  """Whether node is bound to a device: it reads a buffer, or copies, or was placed on one (see _shards_in)."""
  known = node._cache.get("has_buffers")
  if known is not None: return known
  stack = [node]  # sources first, stopping at nodes already known (a step's graph is mostly new on top of old)
  while stack:
    n = stack[-1]
    unknown = [s for s in n.src if "has_buffers" not in s._cache]
    if unknown:
      stack.extend(unknown)
      continue
    stack.pop()
    bound = n.op in (Ops.BUFFER, Ops.MULTI, Ops.COPY) or _placed(n) or any(s._cache["has_buffers"] for s in n.src)
    n._cache["has_buffers"] = bound
  return node._cache["has_buffers"]


def _placed(n: UOp) -> bool:
  return n.op is Ops.CONTIGUOUS and type(n.arg) is tuple and n.arg[0] == "on"


def _has_work(node: UOp) -> bool:
  """Whether a graph without buffers could become a kernel of its own (so it must live on one device)."""
  return any(n.op in (Ops.REDUCE_AXIS, Ops.CONTIGUOUS) for n in toposort(node))


def shard(node: UOp, device: str, devices: tuple[str, ...], axis: int) -> UOp:
  """A tensor on `device` split along axis into consecutive blocks, one per device of `devices`."""
  blocks = even_bounds(node.shape[axis], len(devices))
  return multi((copy_to(block(node, axis, b), device, d) for b, d in zip(blocks, devices)), devices, axis)


def replicate(node: UOp, device: str, devices: tuple[str, ...]) -> UOp:
  """A tensor on `device` (or one without buffers) copied whole to every device of `devices`."""
  return multi((copy_to(node, device, d) for d in devices), devices, None)


def gather(m: UOp, device: str) -> UOp:
  """The whole tensor of MULTI m as one graph on `device`: its shards copied there and joined."""
  devices, axis = m.arg
  if axis is None:
    return m.src[devices.index(device)] if device in devices else copy_to(m.src[0], devices[0], device)
  pieces = [copy_to(s, d, device) for s, d in zip(m.src, devices)]
  return join(pieces, axis)


def join(pieces: list[UOp], axis: int) -> UOp:
  """pieces (one dtype) side by side along axis: each padded out to the whole length, and the pieces added (or'ed,
  for bool). Floats are padded with -0.0, not 0.0: x + -0.0 is x for every x, where -0.0 + 0.0 would be 0.0
  (torch.cat keeps -0.0); negating is exact, so -pad(-x) is x padded with -0.0. Tensor.cat builds its graph here too."""
  total = sum(p.shape[axis] for p in pieces)
  out, start = None, 0
  for p in pieces:
    size = p.shape[axis]
    padding = tuple((start, total - start - size) if i == axis else (0, 0) for i in range(len(p.shape)))
    if size == total: placed = p  # (one piece: nothing to pad)
    else: placed = -((-p).pad(padding)) if dtypes.is_float(p.dtype) else p.pad(padding)
    out = placed if out is None else out.alu(Ops.OR if p.dtype is dtypes.bool else Ops.ADD, placed)
    start += size
  return out


def _shards_in(node: UOp, devices: tuple[str, ...], axis: int | None, bounds) -> tuple[UOp, ...]:
  """node's shards in the layout (devices, axis, bounds): one graph per device."""
  if node.op is Ops.MULTI:
    if node.arg[0] != devices:
      raise RuntimeError(f"tensors sharded over different devices meet: {node.arg[0]} and {devices}; move one with .to()")
    if node.arg[1] == axis and bounds_of(node) == bounds: return node.src
    if node.arg[1] is None: whole = node.src  # replicated: every device slices its own copy
    else: whole = tuple(gather(node, d) for d in devices)
  elif not has_buffers(node):
    if _has_work(node):  # computed once, on the first device
      first = UOp(Ops.CONTIGUOUS, node.dtype, (node,), ("on", devices[0]))
      whole = tuple(UOp(Ops.COPY, node.dtype, (first,), (devices[0], d)) if i else first for i, d in enumerate(devices))
    else: whole = (node,) * len(devices)
  else:
    raise RuntimeError("a tensor on one device meets a sharded one: move it with .to(devices) or .shard(devices)")
  if axis is None: return whole
  return tuple(block(w, axis, b) for w, b in zip(whole, bounds))


# ---- the rules: MULTI rises through every op ----

def _layout_for(srcs) -> tuple[tuple[str, ...], int | None, list | None]:
  """The layout an op over these sources computes in: that of its first sharded MULTI source, else replicated."""
  multis = [s for s in srcs if s.op is Ops.MULTI]
  target = next((m for m in multis if m.arg[1] is not None), multis[0])
  return target.arg[0], target.arg[1], bounds_of(target)


def _elementwise(n: UOp) -> UOp | None:
  if not any(s.op is Ops.MULTI for s in n.src): return None
  if n.op is Ops.DETACH: return _detached(n.src[0])
  devices, axis, bounds = _layout_for(n.src)
  per_source = [_shards_in(s, devices, axis, bounds) for s in n.src]
  return multi((UOp(n.op, n.dtype, srcs, n.arg) for srcs in zip(*per_source)), devices, axis)


def _detached(value: UOp) -> UOp:
  """A DETACH of value, in value's own layout: its other sources (a gradient rule's inputs: a convolution's input
  and weight, a scatter's index) are left out, as gradients were taken on the whole graph already, and their
  layouts say nothing about the value's (a weight sharded on its input channels, an output that is not)."""
  if value.op is not Ops.MULTI: return UOp(Ops.DETACH, value.dtype, (value,))
  return multi((UOp(Ops.DETACH, s.dtype, (s,)) for s in value.src), *value.arg)


def _reduce(n: UOp, m: UOp) -> UOp:
  op, axes = n.arg[:2]
  devices, axis = m.arg
  if axis is None or axis not in axes: return multi((s.reduce(op, axes) for s in m.src), devices, axis)
  # a sum or product of half floats accumulates in float32 and rounds once on one device: so do the shards', their
  # partial results combined in float32 (rounding each to half first lost up to a dozen half ulps)
  wide = n.dtype in NARROW_FLOATS and op is not Ops.MAX
  partial = [(s.cast(dtypes.float32) if wide else s).reduce(op, axes) for s in m.src]
  if len(devices) > 2 and math.prod(partial[0].shape) >= len(devices): totals = _ring_allreduce(partial, devices, op)
  else: totals = _allreduce(partial, devices, op)
  return multi((t.cast(n.dtype) for t in totals), devices, None)


def _allreduce(partial: list[UOp], devices, op: Ops) -> list[UOp]:
  """Every device combines all the partial results, in device order (the same bits everywhere)."""
  out = []
  for d in devices:
    total = None
    for p, source in zip(partial, devices):
      here = copy_to(p, source, d)
      total = here if total is None else total.alu(_COMBINE[op], here)
    out.append(total)
  return out


def _ring_allreduce(partial: list[UOp], devices, op: Ops) -> list[UOp]:
  """A ring: the partial results are cut into one chunk per device; chunk j travels once around the ring, each
  device adding its own part, and ends complete on device j (reduce-scatter), which sends it to all the others
  (all-gather). Each device moves 2 (k-1)/k of the data instead of k-1 times all of it."""
  k, shape = len(devices), partial[0].shape
  flat = [p.reshape((math.prod(shape),)) for p in partial]
  chunks = even_bounds(math.prod(shape), k)
  done = []
  for j, bounds in enumerate(chunks):
    at = (j + 1) % k
    acc = block(flat[at], 0, bounds)
    for step in range(2, k + 1):
      nxt = (j + step) % k
      acc = copy_to(acc, devices[at], devices[nxt]).alu(_COMBINE[op], block(flat[nxt], 0, bounds))
      at = nxt
    done.append(acc)  # on device j
  return [join([copy_to(c, devices[j], d) for j, c in enumerate(done)], 0).reshape(shape) for d in devices]


def _movement(n: UOp, m: UOp) -> UOp:
  devices, axis = m.arg
  if axis is None: return multi((UOp(n.op, n.dtype, (s,), n.arg) for s in m.src), devices, None)
  moved = _MOVES[n.op](n, m, devices, axis)
  if moved is not None: return moved
  whole = [gather(m, d) for d in devices]  # blocks that can't stay whole: every device takes all of it
  return multi((UOp(n.op, n.dtype, (w,), n.arg) for w in whole), devices, None)


def _reshape(n: UOp, m: UOp, devices, axis: int) -> UOp | None:
  """A reshape keeps the sharding when each block is whole rows of some new axis: the new axis where the sizes
  before it multiply to the same as before the old one, and every block boundary falls on a row of it."""
  old, new = m.shape, n.arg
  before, inner = math.prod(old[:axis]), math.prod(old[axis + 1:])
  for new_axis in range(len(new)):
    if math.prod(new[:new_axis]) != before or new[new_axis] == 1: continue
    row = math.prod(new[new_axis + 1:])
    if any((b * inner) % row or (e * inner) % row for b, e in bounds_of(m)): continue
    if new[new_axis] * row != old[axis] * inner: continue
    shards = [s.reshape(new[:new_axis] + ((e - b) * inner // row,) + new[new_axis + 1:]) for s, (b, e) in zip(m.src, bounds_of(m))]
    return multi(shards, devices, new_axis)
  return None


def _permute(n: UOp, m: UOp, devices, axis: int) -> UOp:
  return multi((s.permute(n.arg) for s in m.src), devices, n.arg.index(axis))


def _expand(n: UOp, m: UOp, devices, axis: int) -> UOp:
  # with one device its shard is the whole tensor, whose sharded axis may have size 1 and be expanded
  if len(m.src) == 1: return multi((m.src[0].expand(n.arg),), devices, axis)
  # with several, every shard holds a row at least, so the sharded axis (longer than 1) is never expanded
  return multi((s.expand(n.arg[:axis] + (s.shape[axis],) + n.arg[axis + 1:]) for s in m.src), devices, axis)


def _pad(n: UOp, m: UOp, devices, axis: int) -> UOp:
  before, after = n.arg[axis]
  last = len(m.src) - 1
  shards = []
  for i, s in enumerate(m.src):
    edges = (before if i == 0 else 0, after if i == last else 0)  # only the outer shards grow
    shards.append(s.pad(tuple(edges if a == axis else p for a, p in enumerate(n.arg))))
  return multi(shards, devices, axis)


def _shrink(n: UOp, m: UOp, devices, axis: int) -> UOp | None:
  start, end = n.arg[axis]
  shards = []
  for s, (b, e) in zip(m.src, bounds_of(m)):
    lo, hi = max(start, b), min(end, e)
    if hi <= lo: return None  # a shard left empty: gather instead
    shards.append(s.shrink(tuple((lo - b, hi - b) if a == axis else w for a, w in enumerate(n.arg))))
  return multi(shards, devices, axis)


def _flip(n: UOp, m: UOp, devices, axis: int) -> UOp:
  if axis not in n.arg: return multi((s.flip(n.arg) for s in m.src), devices, axis)
  # the last block, flipped, becomes the first: device i holds what device k-1-i held
  k = len(devices)
  return multi((copy_to(m.src[k - 1 - i].flip(n.arg), devices[k - 1 - i], d) for i, d in enumerate(devices)), devices, axis)


_MOVES = {Ops.RESHAPE: _reshape, Ops.PERMUTE: _permute, Ops.EXPAND: _expand, Ops.PAD: _pad, Ops.SHRINK: _shrink,
          Ops.FLIP: _flip}


def _copy(n: UOp) -> UOp | None:
  source = n.src[0]
  if len(n.arg) == 3:  # an allreduce across processes (teeny.distributed): each device's shard takes part
    if source.op is not Ops.MULTI: return None
    devices, axis = source.arg
    return multi((UOp(Ops.COPY, n.dtype, (s,), (d, d, n.arg[2])) for s, d in zip(source.src, devices)), devices, axis)
  frm, to = n.arg[:2]
  if type(to) is tuple:  # to several devices: replicated
    if source.op is Ops.MULTI:
      if frm == to: return source
      source, frm = gather(source, source.arg[0][0]), source.arg[0][0]
    return replicate(source, frm, to)
  if source.op is Ops.MULTI: return gather(source, to)
  if type(frm) is tuple:  # (a constant, the same on every device)
    if has_buffers(source): raise RuntimeError(f"a copy from {frm} of a graph that is not on them")
    return source
  return None


def _assign(n: UOp, m: UOp) -> UOp:
  devices, axis = m.arg
  values = _shards_in(n.src[1], devices, axis, bounds_of(m))
  writes = tuple(UOp(Ops.ASSIGN, n.dtype, (t, v), n.arg) for t, v in zip(m.src, values))
  # (n is the write rebuilt over its rewritten sources, not the tensor's node: found by the write's unique arg)
  if n.arg in _per_device_writes: _per_device_writes[n.arg] = writes
  return multi(writes, devices, axis)


# a write into a sharded tensor (an ASSIGN over a MULTI), by its arg (unique per write) -> the writes per device it
# became when a schedule rewrote it (None before). The scheduler marks those realized, never the write itself, so
# this is how program order tells whether it ran. An entry lives as long as the write's node (and keeps the writes
# per device, whose realized-map entries die with them, alive as long).
_per_device_writes: dict = {}


def track_write(write: UOp):
  """Remember what `write`, a new ASSIGN into a MULTI, becomes per device, for as long as it lives."""
  _per_device_writes[write.arg] = None
  weakref.finalize(write, _per_device_writes.pop, write.arg, None)


def writes_per_device(write: UOp) -> tuple[UOp, ...] | None:
  """The writes, one per device, that a write into a sharded tensor (see track_write) became when a schedule
  rewrote it; None if none did (then it has not run)."""
  return _per_device_writes.get(write.arg)


pm_multi = PatternMatcher([
  (UPat(tuple(ELEMENTWISE) + (Ops.CONTIGUOUS, Ops.DETACH), name="n"), _elementwise),
  (UPat(Ops.REDUCE_AXIS, src=(UPat(Ops.MULTI, name="m"),), name="n"), _reduce),
  (UPat(tuple(MOVEMENT), src=(UPat(Ops.MULTI, name="m"),), name="n"), _movement),
  (UPat(Ops.COPY, name="n"), _copy),
  (UPat(Ops.ASSIGN, src=(UPat(Ops.MULTI, name="m"), UPat()), name="n"), _assign),
])


def per_device(node: UOp, devices: tuple[str, ...]) -> tuple[UOp, ...]:
  """The graph of a tensor on `devices` as one graph per device (in that order). A graph without buffers (a
  constant made on several devices) is computed on each, each its own node."""
  return _rewritten(node, devices)[0]


def is_multi(n: UOp) -> bool:
  """Whether node n belongs to a sharded tensor's graph: a MULTI, or a copy from several devices (a gather)."""
  return n.op is Ops.MULTI or (n.op is Ops.COPY and type(n.arg[0]) is tuple)


def on_one_device(node: UOp) -> UOp:
  """The graph of a tensor on one device that reads sharded ones (a gather, a gradient): each MULTI resolved."""
  out = graph_rewrite(node, pm_multi, fixed_point=False)
  if out.op is Ops.MULTI: raise RuntimeError(f"a tensor on one device computed on several ({out.arg[0]})")
  return out


def layout(node: UOp, devices: tuple[str, ...]) -> int | None:
  """The axis a tensor on `devices` is sharded along once computed (None: replicated)."""
  return _rewritten(node, devices)[1]


def rewrite_together(tensors: list[tuple[UOp, tuple[str, ...]]]):
  """Rewrite the graphs of several tensors on several devices ((node, devices) pairs) in one pass, for per_device
  to find: the parts they share (a training step's forward pass under every update) are rewritten once."""
  todo = [(node, devices) for node, devices in tensors if _cached(node, devices) is None]
  if not todo: return
  tops = graph_rewrite(UOp(Ops.SINK, dtypes.void, tuple(node for node, _ in todo)), pm_multi, fixed_point=False).src
  for (node, devices), top in zip(todo, tops): _keep(node, devices, top)


def _rewritten(node: UOp, devices: tuple[str, ...]) -> tuple[tuple[UOp, ...], int | None]:
  cached = _cached(node, devices)
  return cached if cached is not None else _keep(node, devices, graph_rewrite(node, pm_multi, fixed_point=False))


def _cached(node: UOp, devices: tuple[str, ...]):
  cached = node._cache.get("per_device")
  return cached[1] if cached is not None and cached[0] == devices else None


def _keep(node: UOp, devices: tuple[str, ...], top: UOp) -> tuple[tuple[UOp, ...], int | None]:
  """Remember node's rewritten graph `top` as one graph per device and the sharded axis."""
  if top.op is not Ops.MULTI: top = multi(_shards_in(top, devices, None, None), devices, None)
  if top.arg[0] != devices: raise RuntimeError(f"a tensor on {devices} computed on {top.arg[0]}")
  result = (tuple(_own_node(s, d) for s, d in zip(top.src, devices)), top.arg[1])
  node._cache["per_device"] = (devices, result)
  return result


def _own_node(shard_node: UOp, device: str) -> UOp:
  """A shard with no buffer under it (a constant) would be the same node on every device: tag it with its device."""
  if has_buffers(shard_node): return shard_node
  return UOp(Ops.CONTIGUOUS, shard_node.dtype, (shard_node,), ("on", device))
