"""LLVM, set up once per process for the LLVM backend (ops_llvm.py) and the CPU worker pool (cpu_pool.py): the native
target initialised, the host CPU's name and features, the math libraries the JIT links kernels against (libm,
libmvec, libgcc_s), the target machine both compile for, and the lock that serialises every use of LLVM's global
context. Importing this module does the setup."""
from __future__ import annotations
import ctypes.util, re, threading
import llvmlite.binding as llvm

LLVM_LOCK = threading.Lock()  # LLVM's global context is not thread-safe: parse, optimize and load one at a time


def _load_library(soname: str, fallback: str) -> bool:
  """Make a shared library's symbols visible to the JIT linker. Tries the soname first: find_library forks ldconfig."""
  for candidate in (soname, ctypes.util.find_library(fallback) if fallback else None):
    if not candidate: continue
    try:
      llvm.load_library_permanently(candidate)
      return True
    except RuntimeError: continue
  return False


llvm.initialize_native_target()
llvm.initialize_native_asmprinter()
HOST_CPU = llvm.get_host_cpu_name()
HOST_FEATURES = llvm.get_host_cpu_features().flatten()
HOST_HAS = frozenset(f[1:] for f in HOST_FEATURES.split(",") if f.startswith("+"))  # e.g. "avx512f"
_load_library("libm.so.6", "m")  # the llvm.exp2/log2/sin intrinsics become calls to exp2f, log2f, sinf, ...
_HAS_LIBMVEC = _load_library("libmvec.so.1", "")
_load_library("libgcc_s.so.1", "")  # compiler runtime helpers LLVM may call (e.g. __truncsfhf2 without F16C)


def libmvec_isa() -> str | None:
  """The x86 vector-ABI letter of the widest libmvec variants this CPU can run, or None if they can't be used."""
  if not _HAS_LIBMVEC or not re.match(r"x86_64", llvm.get_process_triple()): return None
  for isa, needs in (("e", {"avx512f"}), ("d", {"avx2", "fma"}), ("b", {"sse4.1"})):
    if needs <= HOST_HAS: return isa
  return None


def vector_width() -> int:
  """float32 lanes of this CPU's widest vector registers."""
  return 16 if "avx512f" in HOST_HAS else 8 if "avx" in HOST_HAS else 4


def half_vector_width() -> int:
  """float32 lanes a kernel that touches float16 may use (see LLVMRenderer): 4 (128 bits) on x86 without
  AVX512-FP16, where LLVM 22 aborts on some wider half vectors, else the full width."""
  if re.match(r"x86_64", llvm.get_process_triple()) and "avx512fp16" not in HOST_HAS: return 4
  return vector_width()


def target_machine(jit: bool = False):
  """This CPU as LLVM's code generator sees it (all its features, O3), for compiling kernels and for the JIT."""
  target = llvm.Target.from_triple(llvm.get_process_triple())
  # the large code model: the JIT may place code, constants and libm far apart (no 2 GiB reach limit)
  return target.create_target_machine(cpu=HOST_CPU, features=HOST_FEATURES, opt=3, reloc="static",
                                      codemodel="jitdefault", jit=jit)


def compile_ir(src: str, tm, speed_level: int = 3, slp: bool = True, want_assembly: bool = False) -> tuple[bytes, str | None]:
  """LLVM IR text -> (an ELF object file for target machine `tm`, its assembly when asked for). The one compile
  step, run by the backend in this process and by its compile child (llvm_child.py) alike. Raises RuntimeError when
  LLVM rejects the IR; the caller holds LLVM_LOCK."""
  try:
    mod = llvm.parse_assembly(src)
    mod.verify()
  except RuntimeError as e:
    raise RuntimeError(f"LLVM rejected the IR: {e}") from None  # (the caller names the kernel)
  mod.triple, mod.data_layout = tm.triple, str(tm.target_data)
  pto = llvm.create_pipeline_tuning_options(speed_level=speed_level)
  pto.slp_vectorization = slp  # off by default in llvmlite's options; clang's -O3 has it
  pb = llvm.create_pass_builder(tm, pto)
  pb.getModulePassManager().run(mod, pb)
  assembly = tm.emit_assembly(mod) if want_assembly else None
  return tm.emit_object(mod), assembly
