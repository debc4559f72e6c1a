"""Vector code for renderers that render it: after lowering has copied a kernel's body once per lane of an upcast
axis, the copies are scalar. vectorize_memory joins loads and stores of neighbouring elements into vector loads
and stores (OpenCL's vloadN/vstoreN); vectorize_alu then joins the lanes' arithmetic into vector arithmetic, from
each vector store back towards the loads, as far as the lanes do the same thing.

Why a renderer asks for vector arithmetic: a CPU OpenCL driver (PoCL) vectorizes a kernel across its work-items
itself, but not past a call it has no vector form of: exp2 in a scalar kernel ran 8x slower than in one written
with float8 (3 against 23 GB/s on a 3-input chain, see Tuning.cpu_vector_widths). LLVM needs none of this (its own
vectorizer does the job), and on a GPU vectors buy nothing.

Only what lanes compute the same way in vector and scalar form is joined, so a value computed in two kernels (one
vectorized, one not) has the same bits in both: float32 arithmetic, comparisons, selects and bool logic. SIN stays
scalar: PoCL 3.0's vector sin is wrong for small arguments beside a large one (sin(-5.7e-7) = -0.0093 when another
lane holds 1e30). EXP2 is joined, and the OpenCL renderer makes every float32 exp2 the same 8-lane call
(cstyle.py), since PoCL's scalar and vector exp2 differ in the last bit for 0.7% of arguments. Lanes that differ,
and everything else (integer index math, casts, loads a gate guards), stay scalar: the vector is then built from
its lanes (VECTORIZE), which is correct anywhere, only not faster.
"""
from __future__ import annotations
from teeny.dtype import dtypes
from teeny.uop import UOp, Ops, PatternMatcher, UPat, graph_rewrite


def vectorize(sink: UOp, renderer) -> UOp:
  """The vector code `renderer` renders: vector loads and stores (vector_widths), then vector arithmetic (vector_alu)."""
  if renderer.vector_widths: sink = vectorize_memory(sink, renderer.vector_widths_for)
  return vectorize_alu(sink) if renderer.vector_alu else sink


def lane_sum_widths(renderer) -> tuple:
  """The unroll widths whose copies lowering accumulates apart, as vector lanes (lower.py's _lane_sums): a renderer
  of vector arithmetic's vector widths, else none."""
  return renderer.vector_widths if renderer.vector_alu else ()


# ---- vector loads and stores (renderers with vector_widths: OpenCL's vloadN/vstoreN) ----

VECTOR_SCALARS = (dtypes.float32, dtypes.int32, dtypes.uint32)


def _base_and_offset(idx: UOp) -> tuple[UOp, int]:
  """An index as (base, constant offset): symbolic keeps a constant term last, so x+3 is ADD(x, 3)."""
  if idx.op is Ops.ADD and idx.src[1].op is Ops.CONST: return idx.src[0], idx.src[1].arg
  if idx.op is Ops.CONST: return UOp.const(idx.dtype, 0), idx.arg
  return idx, 0


def _runs(offsets, widths) -> list[tuple[int, int]]:
  """(start, width) of runs of consecutive offsets, each as wide as `widths` allows, greedily from the lowest."""
  runs, taken = [], set()
  for k in sorted(offsets):
    if k in taken: continue
    width = next((w for w in widths if all(k + j in offsets and k + j not in taken for j in range(w))), None)
    if width is None: continue
    runs.append((k, width))
    taken.update(range(k, k + width))
  return runs


def _at(base: UOp, k: int) -> UOp: return base + UOp.const(base.dtype, k) if k else base


def _replaced_load(ctx: dict, x: UOp) -> UOp | None: return ctx.get(x)


_replace_loads = PatternMatcher([(UPat(Ops.LOAD, name="x"), _replaced_load)])  # ctx: scalar LOAD -> its lane (GEP)


def vectorize_memory(sink: UOp, widths_for) -> UOp:
  """Loads (and stores) of neighbouring elements of one buffer, as upcasting makes them, become one vector load
  (store) of one of `widths_for(element dtype)` lanes (widest first), the widest that fits; the scalar users read
  its lanes with GEP. Gated accesses and types other than VECTOR_SCALARS stay scalar."""
  loads: dict = {}
  for u in sink.toposort():
    if u.op is Ops.LOAD and len(u.src) == 2 and u.dtype in VECTOR_SCALARS:
      base, k = _base_and_offset(u.src[1])
      loads.setdefault((u.src[0], base), {})[k] = u
  lanes: dict[UOp, UOp] = {}
  for (buf, base), offsets in loads.items():
    for k, width in _runs(offsets, widths_for(buf.dtype.base)):
      vector = UOp(Ops.LOAD, offsets[k].dtype.vec(width), (buf, _at(base, k)))
      for j in range(width): lanes[offsets[k + j]] = UOp(Ops.GEP, offsets[k].dtype, (vector,), j)
  if lanes: sink = graph_rewrite(sink, _replace_loads, lanes)
  stores, kept = {}, []
  for st in sink.src:
    if st.op is Ops.STORE and len(st.src) == 3 and st.src[2].dtype in VECTOR_SCALARS:
      base, k = _base_and_offset(st.src[1])
      stores.setdefault((st.src[0], base), {})[k] = st
    else: kept.append(st)
  for (buf, base), offsets in stores.items():
    done = set()
    for k, width in _runs(offsets, widths_for(buf.dtype.base)):
      values = tuple(offsets[k + j].src[2] for j in range(width))
      kept.append(UOp(Ops.STORE, dtypes.void, (buf, _at(base, k), UOp(Ops.VECTORIZE, values[0].dtype.vec(width), values))))
      done.update(range(k, k + width))
    kept.extend(st for k, st in offsets.items() if k not in done)
  return sink.replace(src=tuple(kept))


# ---- vector arithmetic (renderers with vector_alu) ----

# lane ops joined into one vector op, by the dtype of their result (bool: the result of a float32 comparison, or of
# logic on such results; the OpenCL renderer holds a bool vector in an int vector of -1/0, as OpenCL C does)
_FLOAT_OPS = {Ops.ADD, Ops.MUL, Ops.NEG, Ops.RECIP, Ops.FDIV, Ops.MAX, Ops.EXP2, Ops.LOG2, Ops.SQRT, Ops.TRUNC, Ops.WHERE}
_BOOL_OPS = {Ops.CMPLT, Ops.CMPNE, Ops.AND, Ops.OR, Ops.XOR, Ops.NEG}


def _joinable(lanes: tuple[UOp, ...]) -> bool:
  """Whether the lanes are one op with one arg whose vector form computes the same bits as its scalar form."""
  first = lanes[0]
  if any(u.op is not first.op or u.arg != first.arg or u.dtype != first.dtype or len(u.src) != len(first.src) for u in lanes):
    return False
  if first.dtype == dtypes.float32: return first.op in _FLOAT_OPS
  if first.dtype != dtypes.bool or first.op not in _BOOL_OPS: return False
  # comparisons of float32 values, and bool logic (whose operands are bools)
  return all(s.dtype in (dtypes.float32, dtypes.bool) for s in first.src)


def _vector_of(lanes: tuple[UOp, ...]) -> UOp:
  """The lanes as one vector: the vector itself when they are its lanes in order, else VECTORIZE (rewritten further)."""
  source = lanes[0].src[0] if lanes[0].op is Ops.GEP else None
  if source is not None and source.dtype.count == len(lanes) and all(u.op is Ops.GEP and u.src[0] is source and u.arg == j for j, u in enumerate(lanes)):
    return source
  return UOp(Ops.VECTORIZE, lanes[0].dtype.vec(len(lanes)), lanes)


def _same_accumulators(accs: tuple[UOp, ...]) -> bool:
  """float32 accumulators, each its own, over the same loops: one vector accumulator can hold them."""
  return (len(set(accs)) == len(accs) and all(a.op is Ops.DEFINE_ACC and a.dtype == dtypes.float32 for a in accs)
          and all(a.src[1:] == accs[0].src[1:] for a in accs))


def _joinable_update(lanes: tuple[UOp, ...]) -> bool:
  """ASSIGN(acc_j, op(acc_j, x_j)) for every lane j: one update of a vector accumulator."""
  if any(u.op is not Ops.ASSIGN or u.arg != lanes[0].arg for u in lanes): return False
  accs, values = tuple(u.src[0] for u in lanes), tuple(u.src[1] for u in lanes)
  return _same_accumulators(accs) and _joinable(values) and all(acc in v.src for acc, v in zip(accs, values))


def _join_lanes(ctx: dict, vec: UOp) -> UOp | None:
  """VECTORIZE(op(a0, b0), op(a1, b1), ...) -> op(VECTORIZE(a0, a1, ...), VECTORIZE(b0, b1, ...)); accumulators
  too: the lanes' DEFINE_ACCs become one vector accumulator, their updates one update (an update is joined only
  with its accumulator, so no lane's scalar accumulator is left read but never updated)."""
  lanes, first = vec.src, vec.src[0]
  if first.op is Ops.GEP:
    joined = _vector_of(lanes)
    return joined if joined is not vec else None
  if first.op is Ops.DEFINE_ACC:
    if not _same_accumulators(lanes): return None
    ctx["next_acc"] += 1  # (graph_rewrite rewrites each node once: this VECTORIZE is the one accumulator everywhere)
    return UOp(Ops.DEFINE_ACC, vec.dtype, (_vector_of(tuple(u.src[0] for u in lanes)),) + first.src[1:], ctx["next_acc"])
  if not (_joinable_update(lanes) if first.op is Ops.ASSIGN else _joinable(lanes)): return None
  sources = tuple(_vector_of(tuple(u.src[i] for u in lanes)) for i in range(len(first.src)))
  return UOp(first.op, vec.dtype, sources, first.arg)


_join = PatternMatcher([(UPat(Ops.VECTORIZE, name="vec"), _join_lanes)])


def vectorize_alu(sink: UOp) -> UOp:
  """Join the scalar lanes that vector stores write into vector arithmetic (see the module's docstring)."""
  accs = [u.arg for u in sink.toposort() if u.op is Ops.DEFINE_ACC]
  return graph_rewrite(sink, _join, {"next_acc": max(accs, default=-1)})
