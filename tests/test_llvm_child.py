"""The LLVM backend compiles big kernels in a child process (teeny/runtime/llvm_child.py): the same object as in this
process, LLVM's errors passed on, and a crash of LLVM turned into a safer compile or an error instead of a dead
process. The crashes are made by a child whose compile step aborts, as LLVM's assertions do."""
import os, sys
import numpy as np
import pytest
from teeny import Device, Tensor
from teeny.runtime import llvm_child
from teeny.runtime.llvm_child import ChildCrashed, CompileChild
from teeny.runtime.llvm_setup import LLVM_LOCK, compile_ir, target_machine
from teeny.runtime.ops_llvm import LLVMCompiler

IR = """
define void @double_it(ptr %out, ptr %in, i64 %n) {
entry:
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %next, %loop ]
  %src = getelementptr float, ptr %in, i64 %i
  %x = load float, ptr %src
  %y = fmul float %x, 2.0
  %dst = getelementptr float, ptr %out, i64 %i
  store float %y, ptr %dst
  %next = add i64 %i, 1
  %done = icmp eq i64 %next, %n
  br i1 %done, label %exit, label %loop
exit:
  ret void
}
"""

# a child whose compile step aborts the process (SIGABRT, as an LLVM assertion does): always, or only with SLP on
CRASHING_CHILD = """
import os, runpy, sys
sys.path.insert(0, {runtime!r})
import llvm_setup
real_compile = llvm_setup.compile_ir
def compile_ir(src, tm, speed_level=3, slp=True, want_assembly=False):
  if {crash_when}: os.abort()
  return real_compile(src, tm, speed_level, slp, want_assembly)
llvm_setup.compile_ir = compile_ir
runpy.run_path({child!r}, run_name="__main__")
"""


def crashing_child(tmp_path, crash_when: str) -> list[str]:
  script = tmp_path / "crashing_child.py"
  script.write_text(CRASHING_CHILD.format(runtime=os.path.dirname(llvm_child.__file__), child=llvm_child.__file__,
                                          crash_when=crash_when))
  return [sys.executable, str(script)]


def here(src: str, speed_level: int = 3, slp: bool = True) -> bytes:
  with LLVM_LOCK: return compile_ir(src, target_machine(), speed_level, slp)[0]


def test_the_child_makes_the_object_this_process_makes():
  child = CompileChild()
  try:
    obj, assembly = child.compile(IR, 3, True, True)
    assert obj == here(IR)
    assert "double_it" in assembly
    assert child.compile(IR, 3, True, False) == (obj, None)  # the same child answers again
  finally:
    child.close()


def test_ir_llvm_rejects_raises_its_message_and_the_child_lives_on():
  child = CompileChild()
  try:
    with pytest.raises(RuntimeError, match="LLVM rejected the IR"):
      child.compile("define void @f() { ret i32 0 }", 3, True, False)
    assert child.compile(IR, 3, True, False)[0] == here(IR)
  finally:
    child.close()


def test_a_crash_is_an_error_and_the_next_compile_starts_a_new_child(tmp_path):
  child = CompileChild(crashing_child(tmp_path, "slp"))
  try:
    with pytest.raises(ChildCrashed, match="SIGABRT"):
      child.compile(IR, 3, True, False)
    assert child.compile(IR, 3, False, False)[0] == here(IR, slp=False)
  finally:
    child.close()


def test_a_kernel_llvm_crashes_on_compiles_again_without_slp(tmp_path):
  compiler = LLVMCompiler()
  compiler.isolate_lines = 0
  compiler.child = CompileChild(crashing_child(tmp_path, "slp"))
  try:
    with pytest.warns(RuntimeWarning, match="without the SLP vectorizer"):
      obj = compiler.compile(IR)
    assert obj == here(IR, slp=False)
  finally:
    compiler.child.close()


def test_a_kernel_llvm_crashes_on_with_every_pipeline_raises(tmp_path):
  compiler = LLVMCompiler()
  compiler.isolate_lines = 0
  compiler.child = CompileChild(crashing_child(tmp_path, "True"))
  try:
    with pytest.raises(RuntimeError, match="every pipeline.*O1: the compile child was killed by SIGABRT"):
      compiler.compile(IR)
  finally:
    compiler.child.close()


def test_small_kernels_compile_in_this_process():
  compiler = LLVMCompiler()
  assert compiler.compile(IR) == here(IR)
  assert compiler.child._proc is None


def test_tensors_compute_through_the_child(monkeypatch):
  monkeypatch.setenv("TEENY_NO_DISK_CACHE", "1")
  compiler = Device["LLVM"].compiler
  monkeypatch.setattr(compiler, "isolate_lines", 0)
  a = np.random.default_rng(0).standard_normal((7, 1511)).astype(np.float32)
  got = ((Tensor(a, device="LLVM") * 3 + 1).exp2().sum(1)).numpy()
  np.testing.assert_allclose(got, (np.exp2(a * 3 + 1)).sum(1), rtol=1e-5)
  assert compiler.child._proc is not None
