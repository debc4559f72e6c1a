"""The OpenCL C renderer: a linearized program (see teeny/renderer/__init__.py) -> the source of one __kernel.

Without cl_khr_fp16, half exists only in memory: it is read with vload_half and written with vstore_half_rte,
and a value cast to half is rounded through the same pair so results match a real half.

Every kernel turns FP_CONTRACT off: OpenCL C lets a compiler fuse a*b+c into one fused multiply-add (rounded once)
wherever it likes, and a value computed in two kernels (a max and the comparison with it, a forward value and its
gradient's copy) could then round differently in each and not equal itself. Only an accumulator's update
acc + a*b is fused: on a GPU explicitly with fma(), where the device does fma in hardware (a software fma would
be slow); on a CPU driver (vector_alu) the update alone turns FP_CONTRACT on, as the LLVM renderer marks it
`contract`, since PoCL calls its fma() out of line (11 against 124 GFLOP/s in a matmul tile). The sums a reduce
keeps already depend on the kernel's tile and lanes, so this is no promise a forward value's copy needs.

A CPU driver also gets its vector loads and stores as lanes (a vector built from neighbouring elements, stores
lane by lane), which its compiler joins into vector moves: PoCL 3.0 calls vload8/vstore8 out of line too.
"""
from __future__ import annotations
import math
from teeny.dtype import DType, dtypes, PtrDType, VecDType
from teeny.uop import UOp, Ops
from teeny.renderer import Renderer, accumulator_updates

_C_TYPES = {dtypes.bool: "bool", dtypes.int8: "char", dtypes.uint8: "uchar", dtypes.int16: "short", dtypes.uint16: "ushort",
            dtypes.int32: "int", dtypes.uint32: "uint", dtypes.int64: "long", dtypes.uint64: "ulong",
            dtypes.float16: "half", dtypes.float32: "float", dtypes.float64: "double"}
_INT_SUFFIX = {dtypes.int64: "l", dtypes.uint64: "ul", dtypes.uint32: "u"}
_HALF_HELPERS = """inline ushort teeny_half_bits(float x) { ushort h; vstore_half_rte(x, 0, (__private half*)&h); return h; }
inline float teeny_half_from_bits(ushort h) { return vload_half(0, (__private half*)&h); }
inline float teeny_round_half(float x) { return teeny_half_from_bits(teeny_half_bits(x)); }"""
_BINARY = {Ops.ADD: "+", Ops.MUL: "*", Ops.IDIV: "/", Ops.FDIV: "/", Ops.MOD: "%", Ops.CMPLT: "<", Ops.CMPNE: "!=",
           Ops.AND: "&", Ops.OR: "|", Ops.XOR: "^", Ops.SHL: "<<", Ops.SHR: ">>"}
_UNARY_FN = {Ops.EXP2: "exp2", Ops.LOG2: "log2", Ops.SIN: "sin", Ops.SQRT: "sqrt", Ops.TRUNC: "trunc"}


def _bound(u: UOp, is_end: int) -> int | None:
  """A loop bound's value at its most iterations (a variable's lowest start, highest end); None when unknown."""
  if u.op is Ops.CONST: return u.arg
  if u.op is Ops.DEFINE_VAR: return u.arg[2] if is_end else u.arg[1]
  return None


class OpenCLRenderer(Renderer):
  language = "OpenCL C"
  has_threads = True

  def __init__(self, info=None):
    self.has_fp16 = bool(getattr(info, "has_fp16", False))
    self.has_fp64 = bool(getattr(info, "has_fp64", False))
    self.device_name = getattr(info, "name", "OpenCL device")
    # work-group limits as the device reports them: lower.py folds every local axis into dimension 0, so a group
    # holds at most max_work_item_sizes[0] items as well as max_work_group_size
    work_group = int(getattr(info, "max_work_group_size", 1))
    item_sizes = tuple(getattr(info, "max_work_item_sizes", ()) or (work_group,))
    self.max_local_size = max(1, min(work_group, int(item_sizes[0])))
    # bytes of __local memory one work-group may use (unknown: 32 KiB, the least OpenCL 1.2 devices must have)
    self.local_mem_size = int(getattr(info, "local_mem_size", 32 << 10))
    # a driver that stops loops past this many iterations in all (see CLDeviceInfo): None where loops run to the end
    self.max_loop_iterations = getattr(info, "max_loop_iterations", None)
    self.is_gpu = bool(getattr(info, "is_gpu", False))
    # the float types the device computes fma() for in hardware (CL_DEVICE_SINGLE/DOUBLE_FP_CONFIG's CL_FP_FMA)
    self.fma_dtypes = frozenset(getattr(info, "fma_dtypes", ()))
    # vloadN/vstoreN for neighbouring elements (Tuning.gpu_vector_widths, cpu_vector_widths: taken when the renderer
    # is built). A CPU driver also gets vector arithmetic: PoCL vectorizes a kernel across work-items itself, but
    # not past a call to exp2 (codegen/vectorize.py). On a GPU each work-item is one lane anyway.
    self.vector_widths = self.tuning.gpu_vector_widths if self.is_gpu else self.tuning.cpu_vector_widths
    self.vector_alu = not self.is_gpu
    # never wider than the device computes natively: a driver may not build wider ones (PoCL 3.0 on AMD Zen 4
    # aborts the process building 16-wide stores, see tests/test_opt.py)
    native_float, native_int = (max(1, int(getattr(info, f"native_vector_width_{t}", 1))) for t in ("float", "int"))
    self.native_vector_width = {dtypes.float32: native_float, dtypes.int32: native_int, dtypes.uint32: native_int}

  def ctype(self, dt: DType) -> str:
    if isinstance(dt, VecDType):  # (OpenCL C has no bool vectors: a float32 comparison gives an int vector of -1/0)
      return f"int{dt.count}" if dt.scalar == dtypes.bool else f"{_C_TYPES[dt.scalar]}{dt.count}"
    if dt == dtypes.float16 and not self.has_fp16: return "float"  # half values live in float registers
    return _C_TYPES[dt]

  def const(self, value, dt: DType) -> str:
    if dt == dtypes.bool: return "1" if value else "0"
    if dtypes.is_float(dt):
      # NAN and INFINITY are float: a double one is cast, or as_long(NAN) would reinterpret 4 bytes as 8
      special = "NAN" if math.isnan(value) else ("-" if value < 0 else "") + "INFINITY" if math.isinf(value) else None
      if special is not None: return f"((double){special})" if dt == dtypes.float64 else special
      text = float(value).hex()
      return f"({text}{'' if dt == dtypes.float64 else 'f'})"
    if value == dtypes.min(dt) and not dtypes.is_unsigned(dt):  # -2147483648 is not a C literal
      text = f"({value + 1}{_INT_SUFFIX.get(dt, '')}-1)"
    else: text = f"{value}{_INT_SUFFIX.get(dt, '')}"
    # C has no char or short literals: without the cast, max(char, 0) is an ambiguous overload
    return f"(({_C_TYPES[dt]}){text})" if dt.itemsize < 4 else text

  def render(self, name: str, program: list[UOp]) -> str:
    out = _KernelText()
    out.fused = self._fused_updates(program)
    inside_fma = _read_only_by(program, set(out.fused)) & set(out.fused.values())
    for i, u in enumerate(program):
      if u in inside_fma: continue
      statement = _STATEMENTS.get(u.op)
      if statement is not None: statement(self, u, out)
      else:  # a value: one named variable
        out.r[u] = f"v{i}"
        if u in out.fused and self.vector_alu: self._contracted(u, out.fused[u], out)
        else:
          value = self._fma(u, out.fused[u], out.r) if u in out.fused else self._expr(u, out.r)
          out.line(f"{self.ctype(u.dtype)} {out.r[u]} = {value};")
    if self.max_loop_iterations is not None: self._check_loop_iterations(name, program)
    head = self._head(name, program)
    return "\n".join(head + [f"__kernel void {name}({', '.join(out.params)}) {{"] + out.body + ["}"]) + "\n"

  def _fused_updates(self, program: list[UOp]) -> dict[UOp, UOp]:
    """The accumulator updates acc + a*b rendered fused (fma(a, b, acc), or contracted on a CPU driver): update ->
    its product."""
    fused = {}
    for update in accumulator_updates(program):
      products = [s for s in update.src if s.op is Ops.MUL]
      if update.op is Ops.ADD and products and (self.vector_alu or getattr(update.dtype, "scalar", update.dtype) in self.fma_dtypes):
        fused[update] = products[0]
    return fused

  def _contracted(self, update: UOp, product: UOp, out: _KernelText):
    """acc + a*b in a block of its own that lets the compiler fuse it (FP_CONTRACT ON holds to the block's end)."""
    accumulator = update.src[1] if update.src[0] is product else update.src[0]
    a, b, acc = out.r[product.src[0]], out.r[product.src[1]], out.r[accumulator]
    out.line(f"{self.ctype(update.dtype)} {out.r[update]};")
    out.line("{")
    out.body.append("#pragma OPENCL FP_CONTRACT ON")
    out.line(f"  {out.r[update]} = {a}*{b}+{acc};")
    out.line("}")

  def _head(self, name: str, program: list[UOp]) -> list[str]:
    """The pragmas and helpers the kernel needs before its signature (FP_CONTRACT: see the module's docstring)."""
    uses_double = any(u.dtype == dtypes.float64 or (isinstance(u.dtype, PtrDType) and u.dtype.base == dtypes.float64) for u in program)
    uses_half = not self.has_fp16 and any(_touches_half(u) for u in program)
    head = ["#pragma OPENCL FP_CONTRACT OFF"]
    if uses_double and not self.has_fp64:  # (Tensor refuses float64 here already: this guards every other path)
      raise TypeError(f"kernel {name} computes in float64, which {self.device_name} does not support (no cl_khr_fp64)")
    if uses_double: head.append("#pragma OPENCL EXTENSION cl_khr_fp64 : enable")
    if self.has_fp16: head.append("#pragma OPENCL EXTENSION cl_khr_fp16 : enable")
    if uses_half: head.append(_HALF_HELPERS)
    return head

  # ---- statements: the ops that declare, open or close something rather than compute a value ----
  def _global(self, u: UOp, out: _KernelText):
    out.r[u] = f"data{u.arg}"
    ctype = "uchar" if u.dtype.base == dtypes.bool else _C_TYPES[u.dtype.base]
    out.params.append(f"__global {ctype}* restrict {out.r[u]}")

  def _var(self, u: UOp, out: _KernelText):
    out.r[u] = u.arg[0]
    out.params.append(f"{self.ctype(u.dtype)} {u.arg[0]}")

  def _const(self, u: UOp, out: _KernelText): out.r[u] = self.const(u.arg, u.dtype)

  def _local(self, u: UOp, out: _KernelText):
    out.r[u] = u.arg[0]
    out.body.append(f"  __local {self.ctype(u.dtype.base)} {u.arg[0]}[{u.arg[1]}];")  # (at the top of the body)

  def _barrier(self, u: UOp, out: _KernelText):
    out.r[u] = ""  # no value: loads list it only to be ordered after it
    out.line("barrier(CLK_LOCAL_MEM_FENCE);")

  def _range(self, u: UOp, out: _KernelText):
    v = f"ridx{u.arg}"
    out.line(f"for ({self.ctype(u.dtype)} {v} = {out.r[u.src[0]]}; {v} < {out.r[u.src[1]]}; {v}++) {{")
    out.r[u] = v
    out.indent += 1

  def _endrange(self, u: UOp, out: _KernelText):
    out.indent -= 1
    out.line("}")

  def _store_statement(self, u: UOp, out: _KernelText):
    buf, idx, val = (out.r[s] for s in u.src[:3])
    stmt = self._store(u.src[0].dtype.base, buf, idx, val, u.src[2].dtype)
    out.line(f"if ({out.r[u.src[3]]}) {{ {stmt} }}" if len(u.src) > 3 else stmt)

  def _acc(self, u: UOp, out: _KernelText):
    out.r[u] = f"acc{u.arg}"
    out.line(f"{self.ctype(u.dtype)} {out.r[u]} = {out.r[u.src[0]]};")

  def _assign(self, u: UOp, out: _KernelText):
    out.r[u] = out.r[u.src[0]]
    out.line(f"{out.r[u]} = {out.r[u.src[1]]};")

  def _special(self, u: UOp, out: _KernelText):
    out.r[u] = u.arg[0]
    fn = {"gidx": "get_global_id", "group": "get_group_id", "lidx": "get_local_id"}[u.arg[0][:-1]]
    out.line(f"{self.ctype(u.dtype)} {out.r[u]} = {fn}({u.arg[0][-1]});  /* {u.arg[1]} */")

  def _check_loop_iterations(self, name: str, program: list[UOp]):
    """Refuse a kernel whose work-items would run more loop iterations than the driver lets them (it would end the
    loops early and give wrong numbers, silently). Counts every loop's iterations times its enclosing loops'."""
    total, enclosing = 0, [1]
    for u in program:
      if u.op is Ops.RANGE:
        start, end = (_bound(s, i) for i, s in enumerate(u.src[:2]))
        runs = max(0, end - start) if None not in (start, end) else self.max_loop_iterations + 1  # unknown: too many
        total += enclosing[-1] * runs
        enclosing.append(enclosing[-1] * runs)
      elif u.op is Ops.ENDRANGE: enclosing.pop()
    if total > self.max_loop_iterations:
      raise RuntimeError(f"kernel {name} runs {total} loop iterations per work-item; {self.device_name} stops a "
                         f"work-item's loops after {self.max_loop_iterations} in all, which would give wrong results")

  def _store(self, base: DType, buf: str, idx: str, val: str, value_dtype: DType | None = None) -> str:
    if isinstance(value_dtype, VecDType) and self.vector_alu:  # (lane by lane: see the module's docstring)
      return " ".join(f"({buf}+{idx})[{j}] = {val}.s{j:x};" for j in range(value_dtype.count))
    if isinstance(value_dtype, VecDType): return f"vstore{value_dtype.count}({val}, 0, {buf} + {idx});"
    if base == dtypes.float16 and not self.has_fp16: return f"vstore_half_rte({val}, {idx}, {buf});"
    if base == dtypes.bool: return f"{buf}[{idx}] = (uchar)({val});"
    return f"{buf}[{idx}] = {val};"

  def _load(self, u: UOp, r) -> str:
    buf, idx = r[u.src[0]], r[u.src[1]]
    if isinstance(u.dtype, VecDType) and self.vector_alu:  # (from its lanes: see the module's docstring)
      return f"({self.ctype(u.dtype)})({', '.join(f'({buf}+{idx})[{j}]' for j in range(u.dtype.count))})"
    if isinstance(u.dtype, VecDType): return f"vload{u.dtype.count}(0, {buf} + {idx})"
    base = u.src[0].dtype.base
    if base == dtypes.float16 and not self.has_fp16: text = f"vload_half({idx}, {buf})"
    elif base == dtypes.bool: text = f"({buf}[{idx}] != 0)"
    else: text = f"{buf}[{idx}]"
    return f"({r[u.src[2]]} ? {text} : {r[u.src[3]]})" if len(u.src) == 4 else text  # (buf, idx, barrier): plain

  def _expr(self, u: UOp, r) -> str:
    op, s = u.op, [r[x] for x in u.src]
    scalar = getattr(u.dtype, "scalar", u.dtype)  # (a vector op computes as its scalar op does, lane by lane)
    if op is Ops.LOAD: return self._load(u, r)
    if op is Ops.GEP: return f"({s[0]}.s{u.arg:x}!=0)" if scalar == dtypes.bool else f"{s[0]}.s{u.arg:x}"
    if op is Ops.VECTORIZE: return self._vectorize(u, s)
    if op in _BINARY: return self._binary(u, s[0], s[1])
    if op in _UNARY_FN: return self._exp2(u, s[0]) if op is Ops.EXP2 and self._exp2_in_vectors(scalar) else f"{_UNARY_FN[op]}({s[0]})"
    if op is Ops.NEG: return f"(!{s[0]})" if scalar == dtypes.bool else f"(-{s[0]})"  # (! of a bool vector: -1/0)
    if op is Ops.RECIP: return f"({self.const(1.0, scalar)}/{s[0]})"
    if op is Ops.MAX:
      if dtypes.is_float(scalar): return f"(({s[0]}>{s[1]} || {s[0]}!={s[0]}) ? {s[0]} : {s[1]})"  # NaN wins, like numpy
      return f"({s[0]}|{s[1]})" if scalar == dtypes.bool else f"max({s[0]}, {s[1]})"
    if op is Ops.WHERE: return f"({s[0]} ? {s[1]} : {s[2]})"
    if op is Ops.CAST: return self._cast(u.src[0].dtype, u.dtype, s[0])
    if op is Ops.BITCAST:
      # bool is one byte 0/1 (as in memory) but has no as_type: as_uchar(bool) is an ambiguous overload on NVIDIA
      if u.src[0].dtype == dtypes.bool: return f"(({self.ctype(u.dtype)})({s[0]}))"
      if u.dtype == dtypes.bool: return f"({s[0]}!=0)"
      if u.src[0].dtype == dtypes.float16 and not self.has_fp16:  # the half lives in a float: take its bits
        return f"as_{_C_TYPES[u.dtype]}(teeny_half_bits({s[0]}))"
      if u.dtype == dtypes.float16 and not self.has_fp16: return f"teeny_half_from_bits(as_ushort({s[0]}))"
      return f"as_{_C_TYPES[u.dtype]}({s[0]})"
    raise RuntimeError(f"OpenCL renderer can't render {op}")

  def _vectorize(self, u: UOp, lanes: list[str]) -> str:
    """A vector of scalar lanes: one value broadcast, or a list. Bool lanes become -1/0 (a vector condition selects
    by each lane's top bit: true as 1 would select the false side)."""
    if u.dtype.scalar == dtypes.bool: lanes = [f"-(int)({x})" for x in lanes]
    listed = lanes[0] if len(set(lanes)) == 1 else ", ".join(lanes)
    return f"({self.ctype(u.dtype)})({listed})"

  def _exp2_in_vectors(self, dtype: DType) -> bool: return self.vector_alu and dtype == dtypes.float32

  def _exp2(self, u: UOp, x: str) -> str:
    """float32 exp2, always as one 8-lane call: PoCL's scalar exp2 and its vector exp2 differ in the last bit for 0.7%
    of arguments, and a value computed in two kernels (one vectorized, one not) must have the same bits in both."""
    lanes = getattr(u.dtype, "count", 1)
    if lanes == 8: return f"exp2({x})"
    widened = f"exp2((float8)({x if lanes == 1 else ', '.join([x] * (8 // lanes))}))"
    part = {1: "s0", 2: "s01", 4: "lo"}[lanes]
    return f"{widened}.{part}"

  def _fma(self, update: UOp, product: UOp, r) -> str:
    """acc + a*b (or a*b + acc) as fma(a, b, acc): the product is exact, the sum rounded once."""
    accumulator = update.src[1] if update.src[0] is product else update.src[0]
    return f"fma({r[product.src[0]]}, {r[product.src[1]]}, {r[accumulator]})"

  def _binary(self, u: UOp, a: str, b: str) -> str:
    op = u.op
    # (a bool vector, an int vector of -1/0, stays one under &, |, ^ without the cast)
    if op in (Ops.AND, Ops.OR, Ops.XOR) and u.dtype == dtypes.bool: return f"(bool)({a}{_BINARY[op]}{b})"
    if op is Ops.MOD and dtypes.is_float(u.dtype): return f"fmod({a}, {b})"
    if op in (Ops.IDIV, Ops.MOD) and dtypes.is_int(u.dtype): return self._divide(u, a, b)
    return f"({a}{_BINARY[op]}{b})"

  def _divide(self, u: UOp, a: str, b: str) -> str:
    """C integer division. A CPU traps on x/0 and INT_MIN/-1 (SIGFPE kills the process), and a divisor the tensor
    level made safe can still be 0 in a padded region, where the kernel computes the value and masks it. So a
    divisor that is not a known-safe constant is guarded like the LLVM renderer's: x/0 and x%0 give 0, x/-1 is -x
    and x%-1 is 0 (C's ?: evaluates only the branch it picks)."""
    divisor, op = u.src[1], _BINARY[u.op]
    signed = not dtypes.is_unsigned(u.dtype)
    if divisor.op is Ops.CONST and divisor.arg != 0 and not (signed and divisor.arg == -1): return f"({a}{op}{b})"
    result = f"({b}==0 ? 0 : ({a}{op}{b}))"
    if not signed: return result
    return f"({b}==-1 ? {'(-(' + a + '))' if u.op is Ops.IDIV else '0'} : {result})"

  def _cast(self, src: DType, dst: DType, x: str) -> str:
    if dst == dtypes.bool: return f"({x}!=0)"
    if dst == dtypes.float16 and not self.has_fp16:
      return f"teeny_round_half((float)({x}))" if src != dtypes.float16 else x
    if dtypes.is_float(src) and dtypes.is_int(dst) and not isinstance(dst, VecDType): return self._float_to_int(dst, x)
    return f"({self.ctype(dst)})({x})"

  def _float_to_int(self, dst: DType, x: str) -> str:
    """The LLVM renderer's conversion (its float_to_int): out-of-range values wrap through a wider int, and a value
    that int can't hold (NaN, +-inf) becomes its minimum. C leaves those conversions undefined, and a compiler folds
    a constant one to poison: a kernel of a NaN constant (float64 exp(x + nan), whose exp2 converts its exponent)
    lost its store on PoCL and returned whatever the memory held before."""
    if dst == dtypes.uint64:  # negative values go through long (wrapping), the rest need the unsigned conversion
      return f"({x}<0 ? (ulong){self._float_to_signed(x, 64)} : ({x}<0x1p64 ? (ulong)({x}) : 0x8000000000000000ul))"
    if dst in (dtypes.int64, dtypes.int32): return self._float_to_signed(x, dst.itemsize * 8)
    return f"({self.ctype(dst)}){self._float_to_signed(x, 64 if dst == dtypes.uint32 else 32)}"

  @staticmethod
  def _float_to_signed(x: str, bits: int) -> str:
    """x as a `bits`-wide signed int, its minimum where x doesn't fit (the comparison is false for NaN)."""
    ctype, minimum = ("long", "(-0x7fffffffffffffffl-1)") if bits == 64 else ("int", "(-0x7fffffff-1)")
    return f"(fabs({x})<0x1p{bits - 1} ? ({ctype})({x}) : {minimum})"


class _KernelText:
  """One render's state: the C name of each value (`r`), the kernel's parameters, its body lines, the loop depth,
  and the accumulator updates rendered as fma() (update -> its product)."""
  def __init__(self):
    self.r: dict[UOp, str] = {}
    self.fused: dict[UOp, UOp] = {}
    self.params: list[str] = []
    self.body: list[str] = []
    self.indent = 1

  def line(self, text: str): self.body.append("  " * self.indent + text)


def _read_only_by(program: list[UOp], readers: set[UOp]) -> set[UOp]:
  """The values that no op outside `readers` reads. Here: products only fused updates read, which are not written
  out on their own (they would be dead code for the compiler and noise for a reader)."""
  read_elsewhere, read_by_them = set(), set()
  for u in program:
    for s in u.src: (read_by_them if u in readers else read_elsewhere).add(s)
  return read_by_them - read_elsewhere


def _touches_half(u: UOp) -> bool:
  """Whether u reads or converts a half, which without cl_khr_fp16 goes through the _HALF_HELPERS."""
  if u.op is Ops.LOAD: return u.dtype == dtypes.float16
  return u.op in (Ops.CAST, Ops.BITCAST) and dtypes.float16 in (u.dtype, u.src[0].dtype)


_STATEMENTS = {Ops.DEFINE_GLOBAL: OpenCLRenderer._global, Ops.DEFINE_VAR: OpenCLRenderer._var, Ops.CONST: OpenCLRenderer._const,
               Ops.DEFINE_LOCAL: OpenCLRenderer._local, Ops.BARRIER: OpenCLRenderer._barrier, Ops.RANGE: OpenCLRenderer._range,
               Ops.ENDRANGE: OpenCLRenderer._endrange, Ops.STORE: OpenCLRenderer._store_statement,
               Ops.DEFINE_ACC: OpenCLRenderer._acc, Ops.ASSIGN: OpenCLRenderer._assign, Ops.SPECIAL: OpenCLRenderer._special}
