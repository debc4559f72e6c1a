"""LLVM IR renderer: a linearized program (see teeny/renderer/__init__.py) -> the text of one LLVM module.

The kernel is one function

  define void @name(ptr noalias %data0, ..., ptr noalias %dataN, <values>..., i64 %core_start, i64 %core_end)

Pointers come in DEFINE_GLOBAL order (args 0..N, each once). The two trailing i64s are ALWAYS present: they are the [start, end) slice of
the outermost loop that the runtime hands to each core; the DEFINE_VARs named "core_start"/"core_end" bind to them.
Any other DEFINE_VAR becomes an argument of its own type (i32, float, ...) between the pointers and those two, in
the program's order.

The module also defines `@"<name>.packed"(ptr args, i64 core_start, i64 core_end)`, which reads the pointers and
values from an array of i64 slots (pointers first, then the values, each in the low bytes of one i64) and calls
the kernel: the runtime's native worker threads call every kernel through that one signature.

This is the whole ABI between this renderer and the LLVM backend (teeny/runtime/ops_llvm.py, which loads both
functions by these names). What the backend needs to know about the kernel (its buffer and value counts, whether
its outermost loop may be split, the work of one iteration) comes with the ProgramSpec (teeny/codegen/analysis.py).

Code generation is deliberately plain: loop counters and accumulators live in `alloca`s and O3's mem2reg turns
them into phis; values are SSA registers named %vN. Bool is i1 in registers and one byte in memory.
"""
from __future__ import annotations
import math, struct
import numpy as np
from teeny.renderer import Renderer, CORE_START, CORE_END, accumulator_updates, index_math
from teeny.dtype import DType, PtrDType, dtypes
from teeny.uop import ALU, UOp, Ops

_LTYPE = {dtypes.bool: "i1", dtypes.int8: "i8", dtypes.uint8: "i8", dtypes.int16: "i16", dtypes.uint16: "i16",
          dtypes.int32: "i32", dtypes.uint32: "i32", dtypes.int64: "i64", dtypes.uint64: "i64",
          dtypes.float16: "half", dtypes.float32: "float", dtypes.float64: "double"}
_INTRINSIC_SUFFIX = {dtypes.float16: "f16", dtypes.float32: "f32", dtypes.float64: "f64"}
_MATH = {Ops.EXP2: "exp2", Ops.LOG2: "log2", Ops.SIN: "sin", Ops.SQRT: "sqrt", Ops.TRUNC: "trunc"}
# glibc's libmvec has SIMD versions of these (a loop that calls them only vectorizes through a SIMD variant)
_LIBMVEC = {Ops.EXP2: "exp2", Ops.LOG2: "log2", Ops.SIN: "sin"}
_LIBMVEC_WIDTH = {"b": 128, "c": 256, "d": 256, "e": 512}  # x86 vector ABI ISA letter -> register bits


def ltype(dt: DType) -> str:
  """The LLVM type of a value in registers."""
  return _LTYPE[dt]


def mtype(dt: DType) -> str:
  """The LLVM type of an element in memory (bool is a byte)."""
  return "i8" if dt == dtypes.bool else _LTYPE[dt]


def is_float(dt: DType) -> bool: return dt in _INTRINSIC_SUFFIX


def _bound_literal(bound: float, dt: DType) -> str:
  """A conversion's bound as a literal of float dtype dt: inf where dt's values never reach it (half's 65504)."""
  return const_literal(math.inf if dt == dtypes.float16 and bound > 65504 else bound, dt)


def const_literal(value, dt: DType) -> str:
  """An exact LLVM literal. Floats use the hex form (decimal is rejected unless exactly representable)."""
  if dt == dtypes.bool: return "true" if value else "false"
  if dtypes.is_int(dt):
    bits = dt.itemsize * 8
    v = int(value) & ((1 << bits) - 1)
    return str(v - (1 << bits) if v >= 1 << (bits - 1) else v)  # LLVM prints ints signed
  if dt == dtypes.float16: return f"0xH{int(np.array(value, np.float16).view(np.uint16)):04X}"
  # float constants are written as the double that holds the exactly-rounded float value
  v = float(np.float32(value)) if dt == dtypes.float32 else float(value)
  if math.isnan(v): v = math.nan  # one canonical quiet NaN that converts to float without losing bits
  return f"0x{struct.unpack('<Q', struct.pack('<d', v))[0]:016X}"


class LLVMRenderer(Renderer):
  """Renders LLVM IR for the CPU.

  libmvec_isa ('b','c','d','e': SSE4, AVX, AVX2, AVX-512), when given, makes exp2/log2/sin glibc's libmvec SIMD
      functions of that ISA's width, in vectorized loops and scalar code alike (the runtime must have loaded
      libmvec): one implementation, so a value computed in two places has the same bits (vector_math_call).
  reassociate_reductions marks the float ADD/MUL that updates an accumulator (acc = acc + x) `reassoc` where
      lowering allowed it (ASSIGN's arg), and nothing else. LLVM then keeps many partial sums in vector lanes: a row sum runs ~6x faster here, and is
      closer to numpy (pairwise summation) than a serial float sum, whose error grows with the length.
  Accumulator updates acc + a*b are also marked `contract`, so they may become one fused multiply-add.
  vector_width (float32 lanes of the widest vector registers) is what the optimizer tiles for, and LLVM is asked
      to prefer vectors of that width.
  half_vector_width (default: vector_width) caps it in a kernel that touches float16: on x86 without AVX512-FP16
      LLVM 22's instruction selection aborts the whole process on some wider half vectors (a broadcast load of 16
      halves in prod's gradient, "Cannot select X86ISD::SUBV_BROADCAST_LOAD"), so the runtime asks for 4 there."""
  language = "LLVM IR"
  has_threads = False
  has_fp16 = has_fp64 = True  # LLVM IR has half and double (half math still runs in float: see math())
  max_global_dims = 1

  def __init__(self, libmvec_isa: str | None = None, reassociate_reductions: bool = True, vector_width: int = 8,
               half_vector_width: int | None = None):
    self.libmvec_isa, self.reassociate_reductions, self.vector_width = libmvec_isa, reassociate_reductions, vector_width
    self.half_vector_width = vector_width if half_vector_width is None else min(half_vector_width, vector_width)

  def render(self, name: str, program: list) -> str:
    touches_half = any((u.dtype.base if isinstance(u.dtype, PtrDType) else u.dtype) == dtypes.float16 for u in program)
    lanes = self.half_vector_width if touches_half else self.vector_width
    return _Emitter(name, program, self.libmvec_isa, self.reassociate_reductions, 32 * lanes).emit()


class _Emitter:
  """One render: walks the program once, appending instructions to the current basic block."""

  def __init__(self, name: str, program: list, libmvec_isa: str | None, reassociate_reductions: bool, vector_bits: int):
    self.name, self.program, self.libmvec_isa, self.vector_bits = name, program, libmvec_isa, vector_bits
    updates = accumulator_updates(program)  # update -> its ASSIGN's arg
    self.reductions = {u for u, arg in updates.items() if arg == "reassoc"} if reassociate_reductions else set()
    # acc + a*b may become one fused multiply-add (rounded once: the exact product, closer to the true sum)
    self.contracted = set(updates) | {s for u in updates for s in u.src if s.op is Ops.MUL and is_float(s.dtype)}
    self.index_math = index_math(program)
    self.values: dict[UOp, str] = {}      # uop -> SSA value or literal
    self.slots: dict[UOp, str] = {}       # DEFINE_ACC / ASSIGN -> the alloca holding the accumulator
    self.loops: dict[UOp, tuple] = {}     # RANGE -> (counter alloca, counter value, header label, exit label)
    self.in_order_loops: dict[UOp, int] = {}  # loop updating an accumulator in order -> its !llvm.loop node
    self.allocas: list[str] = []
    self.lines: list[str] = []
    self.declares: set[str] = set()
    self.keep: set[str] = set()           # functions listed in @llvm.compiler.used
    self.definitions: set[str] = set()    # helper functions the kernel calls (vector_math_call's wrappers)
    self.attrs: dict[str, int] = {}       # call-site attribute string -> attribute group number
    self.block = "entry"
    self.counter = 0

  # ---- small helpers ----
  def fresh(self, prefix="v") -> str:
    self.counter += 1
    return f"%{prefix}{self.counter}"

  def label(self, prefix: str) -> str:
    self.counter += 1
    return f"{prefix}{self.counter}"

  def emit_line(self, text: str): self.lines.append("  " + text)

  def inst(self, text: str) -> str:
    out = self.fresh()
    self.emit_line(f"{out} = {text}")
    return out

  def start_block(self, label: str):
    self.lines.append(f"{label}:")
    self.block = label

  def branch(self, target: str): self.emit_line(f"br label %{target}")

  def get(self, u: UOp) -> str:
    """The value of u at this point: accumulators are re-read from their slot, since ASSIGN may have changed them."""
    if u in self.slots: return self.inst(f"load {ltype(u.dtype)}, ptr {self.slots[u]}")
    if u.op is Ops.CONST: return const_literal(u.arg, u.dtype)  # a constant needs no place in the program
    if u not in self.values: raise ValueError(f"LLVM renderer: {u.op.name} used before it is defined in kernel {self.name}")
    return self.values[u]

  def call(self, ret: str, fn: str, args: list[tuple[str, str]], attrs: str = "") -> str:
    self.declares.add(f"declare {ret} @{fn}({', '.join(t for t, _ in args)})")
    tail = ""
    if attrs: tail = f" #{self.attrs.setdefault(attrs, len(self.attrs))}"
    return self.inst(f"call {ret} @{fn}({', '.join(f'{t} {v}' for t, v in args)}){tail}")

  # ---- the whole function ----
  def emit(self) -> str:
    params, var_params = self.collect_params()
    for u in self.program: self.render_uop(u)
    self.emit_line("ret void")
    sig = ", ".join([f"ptr noalias %data{i}" for i in range(params)] + [f"{t} {p}" for t, p in var_params[:-2]] +
                    [f"i64 {p}" for _, p in var_params[-2:]])
    # the vector width the optimizer tiled for (LLVM would otherwise keep 256 bits on CPUs that have 512)
    attrs = f'"prefer-vector-width"="{self.vector_bits}"'
    body = "\n".join([f'define void @"{self.name}"({sig}) nounwind {attrs} {{', "entry:", *self.allocas, *self.lines, "}"])
    out = [body, self.packed_wrapper(params, [t for t, _ in var_params[:-2]]), *sorted(self.definitions), *sorted(self.declares)]
    out += [f"attributes #{n} = {{ {a} }}" for a, n in self.attrs.items()]
    if self.in_order_loops: out.append('!0 = !{!"llvm.loop.vectorize.enable", i1 false}')
    out += [f"!{n} = distinct !{{!{n}, !0}}" for n in self.in_order_loops.values()]
    if self.keep:
      kept = ", ".join(f"ptr @{f}" for f in sorted(self.keep))
      out.append(f'@llvm.compiler.used = appending global [{len(self.keep)} x ptr] [{kept}], section "llvm.metadata"')
    return "\n".join(out) + "\n"

  def packed_wrapper(self, nbufs: int, value_types: list[str]) -> str:
    """`<name>.packed(ptr args, i64 core_start, i64 core_end)`: the kernel with its buffers and values read from one
    array of i64 slots (pointers first, then values, each in the slot's low bytes: x86 is little-endian), so the
    runtime's native worker threads can call any kernel."""
    lines, call_args = [], []
    for i in range(nbufs + len(value_types)):
      lines.append(f"  %slot{i} = getelementptr i64, ptr %args, i64 {i}")
      if i < nbufs:
        lines.append(f"  %buf{i} = load ptr, ptr %slot{i}")
        call_args.append(f"ptr %buf{i}")
      else:
        t = value_types[i - nbufs]
        lines.append(f"  %val{i} = load {t}, ptr %slot{i}")
        call_args.append(f"{t} %val{i}")
    call_args += [f"i64 %{CORE_START}", f"i64 %{CORE_END}"]
    # noinline: the wrapper is a trampoline; inlining would compile the kernel body twice
    noinline = self.attrs.setdefault("noinline", len(self.attrs))
    return "\n".join([f'define void @"{self.name}.packed"(ptr %args, i64 %{CORE_START}, i64 %{CORE_END}) nounwind {{',
                      "entry:", *lines, f'  call void @"{self.name}"({", ".join(call_args)}) #{noinline}', "  ret void", "}"])

  def collect_params(self) -> tuple[int, list[tuple[str, str]]]:
    """The number of buffer arguments, and (type, name) of each value argument, the slice bounds last."""
    nbufs, others, seen, buffers = 0, [], set(), set()
    for u in self.program:
      if u.op is Ops.DEFINE_GLOBAL:
        nbufs = max(nbufs, u.arg + 1)
        buffers.add(u.arg)
        self.values[u] = f"%data{u.arg}"
      elif u.op is Ops.DEFINE_VAR:
        name = u.arg[0]
        if name in (CORE_START, CORE_END): self.values[u] = f"%{name}"; continue
        if name in seen: raise ValueError(f"LLVM renderer: DEFINE_VAR {name!r} appears twice in kernel {self.name}")
        seen.add(name)
        self.values[u] = f"%var{len(others)}"
        others.append((ltype(u.dtype), self.values[u]))
    # the runtime passes ProgramSpec.n_bufs (the DEFINE_GLOBALs) pointers: a gap in their numbering would shift them
    if len(buffers) != nbufs: raise ValueError(f"LLVM renderer: buffers {sorted(buffers)} of kernel {self.name} are not numbered 0..{nbufs - 1}")
    return nbufs, others + [("i64", f"%{CORE_START}"), ("i64", f"%{CORE_END}")]

  # ---- one op ----
  def render_uop(self, u: UOp):
    op = u.op
    if op in (Ops.DEFINE_GLOBAL, Ops.DEFINE_VAR): return
    if op is Ops.CONST: self.values[u] = const_literal(u.arg, u.dtype); return
    if op is Ops.RANGE: return self.render_range(u)
    if op is Ops.ENDRANGE: return self.render_endrange(u.src[0])
    if op is Ops.LOAD: self.values[u] = self.render_load(u); return
    if op is Ops.STORE: return self.render_store(u)
    if op is Ops.DEFINE_ACC:
      slot = self.fresh("acc")
      self.allocas.append(f"  {slot} = alloca {ltype(u.dtype)}")
      self.emit_line(f"store {ltype(u.dtype)} {self.get(u.src[0])}, ptr {slot}")
      self.slots[u] = slot
      return
    if op is Ops.ASSIGN:
      acc, value = u.src
      if acc not in self.slots: raise ValueError(f"LLVM renderer: ASSIGN to a {acc.op.name}, not an accumulator, in {self.name}")
      self.emit_line(f"store {ltype(acc.dtype)} {self.get(value)}, ptr {self.slots[acc]}")
      self.slots[u] = self.slots[acc]
      if u.arg != "reassoc" and self.loops:  # (the innermost loop open here; see render_endrange)
        self.in_order_loops.setdefault(next(reversed(self.loops)), len(self.in_order_loops) + 1)
      return
    if op is Ops.CAST: self.values[u] = self.cast(self.get(u.src[0]), u.src[0].dtype, u.dtype); return
    if op is Ops.BITCAST: self.values[u] = self.bitcast(self.get(u.src[0]), u.src[0].dtype, u.dtype); return
    if op is Ops.SPECIAL: raise ValueError(f"LLVM renderer: SPECIAL {u.arg} (thread ids) has no meaning on the CPU backend")
    if op in ALU: self.values[u] = self.alu(u); return
    raise NotImplementedError(f"LLVM renderer: no rule for {op.name} in kernel {self.name}")

  # ---- loops ----
  def render_range(self, u: UOp):
    t = ltype(u.dtype)
    slot, header, body, exit_ = self.fresh("ridx"), self.label("loop"), self.label("body"), self.label("exit")
    start, end = self.get(u.src[0]), self.get(u.src[1])
    start, end = self.int_to(start, u.src[0].dtype, u.dtype), self.int_to(end, u.src[1].dtype, u.dtype)
    self.allocas.append(f"  {slot} = alloca {t}")
    self.emit_line(f"store {t} {start}, ptr {slot}")
    self.branch(header)
    self.start_block(header)
    idx = self.inst(f"load {t}, ptr {slot}")
    cond = self.inst(f"icmp slt {t} {idx}, {end}")
    self.emit_line(f"br i1 {cond}, label %{body}, label %{exit_}")
    self.start_block(body)
    self.values[u] = idx
    self.loops[u] = (slot, idx, header, exit_)

  def render_endrange(self, rng: UOp):
    slot, idx, header, exit_ = self.loops.pop(rng)
    t = ltype(rng.dtype)
    nxt = self.inst(f"add nsw {t} {idx}, 1")  # nsw: the counter stays below `end`, so it never wraps
    self.emit_line(f"store {t} {nxt}, ptr {slot}")
    # a loop updating accumulators in order (copies for upcast axes, which SLP vectorizes across) is kept from
    # LLVM's loop vectorizer: it split each one along the loop, reading strided elements with gathers (x.max(0) of
    # a matrix ran 2.6x slower, an int sum(0) 5x, where the float sum, not reassociated, was left alone)
    loop_id = self.in_order_loops.get(rng)
    self.emit_line(f"br label %{header}" + (f", !llvm.loop !{loop_id}" if loop_id else ""))
    self.start_block(exit_)

  def int_to(self, v: str, src: DType, dst: DType) -> str:
    return v if ltype(src) == ltype(dst) else self.cast(v, src, dst)

  # ---- memory ----
  def address(self, buf: UOp, idx: UOp, gate: str | None = None) -> str:
    i = self.get(idx)
    if gate is not None: i = self.inst(f"select i1 {gate}, {ltype(idx.dtype)} {i}, {ltype(idx.dtype)} 0")
    if ltype(idx.dtype) != "i64": i = self.inst(f"{'zext' if dtypes.is_unsigned(idx.dtype) else 'sext'} {ltype(idx.dtype)} {i} to i64")
    return self.inst(f"getelementptr inbounds {mtype(buf.dtype.base)}, ptr {self.get(buf)}, i64 {i}")

  def load_value(self, buf: UOp, idx: UOp, gate: str | None = None) -> str:
    dt = buf.dtype.base
    v = self.inst(f"load {mtype(dt)}, ptr {self.address(buf, idx, gate)}, align {dt.itemsize}")
    return self.inst(f"icmp ne i8 {v}, 0") if dt == dtypes.bool else v

  def render_load(self, u: UOp) -> str:
    if len(u.src) == 2: return self.load_value(*u.src)
    # gated: where the gate is false, read element 0 instead (every buffer of the CPU device has one, see
    # runtime/ops_llvm.py) and select the alternative. No branch, so loops with padded loads still vectorize.
    buf, idx, gate, alt = u.src
    gate_v = self.get(gate)
    v = self.load_value(buf, idx, gate_v)
    return self.inst(f"select i1 {gate_v}, {ltype(u.dtype)} {v}, {ltype(u.dtype)} {self.get(alt)}")

  def render_store(self, u: UOp):
    buf, idx, value = u.src[:3]
    dt = buf.dtype.base
    v = self.get(value)
    if len(u.src) == 4:
      then, join = self.label("gstore"), self.label("gjoin")
      self.emit_line(f"br i1 {self.get(u.src[3])}, label %{then}, label %{join}")
      self.start_block(then)
    if dt == dtypes.bool: v = self.inst(f"zext i1 {v} to i8")
    self.emit_line(f"store {mtype(dt)} {v}, ptr {self.address(buf, idx)}, align {dt.itemsize}")
    if len(u.src) == 4:
      self.branch(join)
      self.start_block(join)

  # ---- arithmetic ----
  def alu(self, u: UOp) -> str:
    op, dt = u.op, u.src[0].dtype
    args = [self.get(s) for s in u.src]
    if op is Ops.WHERE: return self.inst(f"select i1 {args[0]}, {ltype(u.dtype)} {args[1]}, {ltype(u.dtype)} {args[2]}")
    if op in _MATH: return self.math(op, args[0], dt)
    if op is Ops.NEG: return self.negate(args[0], dt)
    t, a = ltype(dt), args[0]
    if op is Ops.RECIP: return self.inst(f"fdiv {t} {const_literal(1.0, dt)}, {a}")
    b = args[1]
    if op is Ops.MAX: return self.max(a, b, dt)
    if op is Ops.MOD and is_float(dt): return self.inst(f"frem {t} {a}, {b}")  # C's fmod (a libm call on x86)
    if op in (Ops.IDIV, Ops.MOD): return self.divide(op, a, b, u.src[1], dt)
    if op is Ops.CMPLT:
      if is_float(dt): return self.inst(f"fcmp olt {t} {a}, {b}")
      return self.inst(f"icmp {'slt' if _signed(dt) else 'ult'} {t} {a}, {b}")
    if op is Ops.CMPNE: return self.inst(f"{'fcmp une' if is_float(dt) else 'icmp ne'} {t} {a}, {b}")
    if op in (Ops.SHL, Ops.SHR) and dt != dtypes.bool: return self.shift(op, a, b, u.src[1], dt)
    return self.inst(f"{self.binary_instruction(u, dt)} {t} {a}, {b}")

  def negate(self, a: str, dt: DType) -> str:
    t = ltype(dt)
    if is_float(dt): return self.inst(f"fneg {t} {a}")
    return self.inst(f"xor i1 {a}, true") if dt == dtypes.bool else self.inst(f"sub {t} 0, {a}")

  def binary_instruction(self, u: UOp, dt: DType) -> str:
    """The instruction (with its flags) of ADD, MUL, FDIV, AND, OR or XOR on dt."""
    op = u.op
    if is_float(dt):
      name = {Ops.ADD: "fadd", Ops.MUL: "fmul", Ops.FDIV: "fdiv"}.get(op)
      flags = [f for f, on in (("reassoc", u in self.reductions), ("contract", u in self.contracted)) if on]
      if flags: name += " " + " ".join(flags)
    elif dt == dtypes.bool: name = {Ops.ADD: "or", Ops.MUL: "and", Ops.AND: "and", Ops.OR: "or", Ops.XOR: "xor"}.get(op)
    else: name = {Ops.ADD: "add", Ops.MUL: "mul", Ops.AND: "and", Ops.OR: "or", Ops.XOR: "xor"}.get(op)
    if name is None: raise NotImplementedError(f"LLVM renderer: {op.name} on {dt} in kernel {self.name}")
    if u in self.index_math and _signed(dt): name += " nsw"  # index_math holds only ADD and MUL
    return name

  def max(self, a: str, b: str, dt: DType) -> str:
    t = ltype(dt)
    # llvm.maximum returns NaN if either side is NaN (like numpy), and unlike a compare+select it lets the loop
    # vectorizer turn a max-reduction into vector code (it is associative). It orders -0. below +0.
    if is_float(dt): return self.call(t, f"llvm.maximum.{_INTRINSIC_SUFFIX[dt]}", [(t, a), (t, b)])
    if dt == dtypes.bool: return self.inst(f"or i1 {a}, {b}")
    fn = f"llvm.{'smax' if _signed(dt) else 'umax'}.{t}"
    return self.call(t, fn, [(t, a), (t, b)])

  def divide(self, op: Ops, a: str, b: str, divisor: UOp, dt: DType) -> str:
    """C division (truncating). x86 traps on x/0 and INT_MIN/-1, which would kill the process, so a divisor that
    is not a known-safe constant is guarded: x/0 and x%0 give 0 (like numpy), x/-1 is -x and x%-1 is 0."""
    t, signed = ltype(dt), _signed(dt)
    instr = ("sdiv" if signed else "udiv") if op is Ops.IDIV else ("srem" if signed else "urem")
    if divisor.op is Ops.CONST and divisor.arg != 0 and not (signed and divisor.arg == -1):
      return self.inst(f"{instr} {t} {a}, {b}")
    zero = self.inst(f"icmp eq {t} {b}, 0")
    bad = self.inst(f"or i1 {zero}, {self.inst(f'icmp eq {t} {b}, -1')}") if signed else zero
    q = self.inst(f"{instr} {t} {a}, {self.inst(f'select i1 {bad}, {t} 1, {t} {b}')}")
    if signed:  # b == -1: the divide by 1 gave a; the right answer is -a (wrapping) or 0
      neg1 = self.inst(f"icmp eq {t} {b}, -1")
      q = self.inst(f"select i1 {neg1}, {t} {self.inst(f'sub {t} 0, {a}') if op is Ops.IDIV else '0'}, {t} {q}")
    return self.inst(f"select i1 {zero}, {t} 0, {t} {q}")

  def shift(self, op: Ops, a: str, b: str, amount: UOp, dt: DType) -> str:
    """A shift by the bit width or more is poison in LLVM; numpy gives 0 (or -1 for a negative value shifted
    right), and so do we. A constant amount in range needs no guard."""
    t, bits = ltype(dt), 8 * dt.itemsize
    instr = "shl" if op is Ops.SHL else ("ashr" if _signed(dt) else "lshr")
    if amount.op is Ops.CONST and 0 <= amount.arg < bits: return self.inst(f"{instr} {t} {a}, {b}")
    too_far = self.inst(f"icmp uge {t} {b}, {bits}")  # unsigned: a negative amount is "too far" as well
    shifted = self.inst(f"{instr} {t} {a}, {self.inst(f'select i1 {too_far}, {t} 0, {t} {b}')}")
    overflow = self.inst(f"ashr {t} {a}, {bits - 1}") if instr == "ashr" else "0"
    return self.inst(f"select i1 {too_far}, {t} {overflow}, {t} {shifted}")

  def math(self, op: Ops, x: str, dt: DType) -> str:
    if not is_float(dt):
      if op is Ops.TRUNC: return x
      raise NotImplementedError(f"LLVM renderer: {op.name} on {dt} in kernel {self.name}")
    if dt == dtypes.float16 and op is not Ops.TRUNC:
      # half math is done in float and rounded once, like numpy; float has enough bits for this to be exact
      return self.inst(f"fptrunc float {self.math(op, self.inst(f'fpext half {x} to float'), dtypes.float32)} to half")
    t = ltype(dt)
    if op in _LIBMVEC and self.libmvec_isa in _LIBMVEC_WIDTH: return self.vector_math_call(_LIBMVEC[op], x, dt)
    return self.call(t, f"llvm.{_MATH[op]}.{_INTRINSIC_SUFFIX[dt]}", [(t, x)])

  def vector_math_call(self, base: str, x: str, dt: DType) -> str:
    """The one implementation of this function on this CPU: glibc's libmvec SIMD version of the widest width the
    CPU runs (_ZGV<isa>N<lanes>v_<fn>). A scalar use calls a wrapper (`teeny_<fn>`) that runs the same SIMD
    function on copies of its argument, and the call names that SIMD function as its vector variant, so the loop
    vectorizer calls it directly. So every evaluation of a value, vectorized or not, in any kernel, gets the same
    bits. (libm's scalar functions and libmvec's differ in the last bit: a value computed in two kernels, a row's
    max in one and `x == max` in the next, or a loop's vector body and its scalar remainder, must equal itself.)"""
    t, fn = ltype(dt), base + ("f" if dt == dtypes.float32 else "")
    lanes = _LIBMVEC_WIDTH[self.libmvec_isa] // (8 * dt.itemsize)
    vt, vector_fn, wrapper = f"<{lanes} x {t}>", f"_ZGV{self.libmvec_isa}N{lanes}v_{fn}", f"teeny_{fn}"
    self.declares.add(f"declare {vt} @{vector_fn}({vt})")
    self.keep.add(vector_fn)  # the optimizer deletes unused declarations before the vectorizer could use them
    # noinline: the vectorizer must see the scalar call (inlined, the splat would hide it); kept (listed as used):
    # otherwise interprocedural constant propagation drops a constant argument from this internal function, and
    # the call's vector variant no longer matches it (LLVM's verifier then aborts the process in the vectorizer)
    self.keep.add(wrapper)
    self.definitions.add("\n".join([
      f"define internal {t} @{wrapper}({t} %x) noinline nounwind memory(none) {{",
      f"  %one = insertelement {vt} poison, {t} %x, i64 0",
      f"  %all = shufflevector {vt} %one, {vt} poison, <{lanes} x i32> zeroinitializer",
      f"  %out = call {vt} @{vector_fn}({vt} %all)",
      f"  %y = extractelement {vt} %out, i64 0",
      f"  ret {t} %y", "}"]))
    # memory(none): like the llvm.* intrinsics, we ignore errno, which the kernel never reads
    attrs = f'nounwind memory(none) "vector-function-abi-variant"="_ZGV_LLVM_N{lanes}v_{wrapper}({vector_fn})"'
    return self.inst(f"call {t} @{wrapper}({t} {x}) #{self.attrs.setdefault(attrs, len(self.attrs))}")

  # ---- conversions ----
  def cast(self, v: str, src: DType, dst: DType) -> str:
    if src == dst: return v
    ts, td = ltype(src), ltype(dst)
    if dst == dtypes.bool:
      return self.inst(f"fcmp une {ts} {v}, {const_literal(0.0, src)}") if is_float(src) else self.inst(f"icmp ne {ts} {v}, 0")
    if src == dtypes.float64 and dst == dtypes.float16: return self.double_to_half(v)
    if is_float(src) and is_float(dst):
      return self.inst(f"{'fpext' if dst.itemsize > src.itemsize else 'fptrunc'} {ts} {v} to {td}")
    if is_float(dst): return self.inst(f"{'sitofp' if _signed(src) else 'uitofp'} {ts} {v} to {td}")
    if is_float(src): return self.float_to_int(v, src, dst)
    if ts == td: return v  # int <-> int of one size: same bits
    if dst.itemsize < src.itemsize: return self.inst(f"trunc {ts} {v} to {td}")
    return self.inst(f"{'sext' if _signed(src) else 'zext'} {ts} {v} to {td}")

  def float_to_int(self, v: str, src: DType, dst: DType) -> str:
    """Like C on x86 (and so numpy): out-of-range values wrap through a wider int, e.g. -1.0 -> uint8 is 255 and
    300.0 -> int8 is 44; a value the wider int can't hold (NaN, +-inf, past its range) becomes its minimum, which
    is what x86's conversion gives at run time (int8 and uint32 then read 0). See _fptosi."""
    ts, td = ltype(src), ltype(dst)
    if dst == dtypes.uint64:  # negative values go through int64 (wrapping), the rest need the unsigned convert
      neg = self.inst(f"fcmp olt {ts} {v}, {const_literal(0.0, src)}")
      fits = self.inst(f"fcmp olt {ts} {v}, {_bound_literal(2.0 ** 64, src)}")  # (false for NaN)
      unsigned = self.inst(f"select i1 {fits}, i64 {self.inst(f'fptoui {ts} {v} to i64')}, i64 {const_literal(2 ** 63, dtypes.uint64)}")
      return self.inst(f"select i1 {neg}, i64 {self._fptosi(v, src, 64)}, i64 {unsigned}")
    if dst.itemsize == 8 or dst == dtypes.int32: return self._fptosi(v, src, dst.itemsize * 8)
    bits = 64 if dst == dtypes.uint32 else 32
    return self.inst(f"trunc i{bits} {self._fptosi(v, src, bits)} to {td}")

  def _fptosi(self, v: str, src: DType, bits: int) -> str:
    """fptosi to a `bits`-wide int, with the int's minimum where the value doesn't fit. LLVM's fptosi gives poison
    there, which is harmless at run time but not where LLVM folds a constant: a kernel of a NaN constant (x * nan
    cast to int64, float64 exp(x + nan), whose exp2 converts its exponent) lost its store, and its output kept
    whatever the memory held before."""
    ts = ltype(src)
    magnitude = self.call(ts, f"llvm.fabs.{_INTRINSIC_SUFFIX[src]}", [(ts, v)])
    fits = self.inst(f"fcmp olt {ts} {magnitude}, {_bound_literal(2.0 ** (bits - 1), src)}")  # (false for NaN)
    converted = self.inst(f"fptosi {ts} {v} to i{bits}")
    return self.inst(f"select i1 {fits}, i{bits} {converted}, i{bits} {-2 ** (bits - 1)}")

  def double_to_half(self, v: str) -> str:
    """x86 has no double->half instruction and LLVM would call a runtime library function per element. Rounding to
    float first would round twice, so round to float *to odd* (truncate, then set the last bit if inexact): a
    float with odd rounding keeps enough bits for the final float->half rounding to be the correct one."""
    f = self.inst(f"fptrunc double {v} to float")
    back = self.inst(f"fpext float {f} to double")
    inexact = self.inst(f"fcmp une double {back}, {v}")
    bits = self.inst(f"bitcast float {f} to i32")
    # `f` rounded away from zero if its magnitude is above v's: step one ulp back toward zero (sign-magnitude bits)
    fabs = lambda x: self.call("double", "llvm.fabs.f64", [("double", x)])
    away = self.inst(f"fcmp ogt double {fabs(back)}, {fabs(v)}")
    toward_zero = self.inst(f"sub i32 {bits}, {self.inst(f'zext i1 {away} to i32')}")
    odd = self.inst(f"select i1 {inexact}, i32 {self.inst(f'or i32 {toward_zero}, 1')}, i32 {bits}")
    return self.inst(f"fptrunc float {self.inst(f'bitcast i32 {odd} to float')} to half")

  def bitcast(self, v: str, src: DType, dst: DType) -> str:
    if src.itemsize != dst.itemsize: raise ValueError(f"LLVM renderer: BITCAST {src} -> {dst} changes the size")
    if src == dtypes.bool: return self.inst(f"zext i1 {v} to i8")
    if dst == dtypes.bool: return self.inst(f"icmp ne i8 {v}, 0")
    return v if ltype(src) == ltype(dst) else self.inst(f"bitcast {ltype(src)} {v} to {ltype(dst)}")


def _signed(dt: DType) -> bool: return dtypes.is_int(dt) and not dtypes.is_unsigned(dt)
