"""OpenCL devices by choice: every device has a name (CL:0, CL:1, ... over all platforms; CL the default one),
the default is chosen by CL_DEVICE or PYOPENCL_CTX or in code, a bad name lists the devices that exist, two names
of one device are one device, and what a device can do (float64, work-group sizes, local memory) is asked of it.

This machine may have one OpenCL device only: a second one is simulated by listing the same physical device twice
(a second name opens a second context, queue and allocator on it, which is all teeny sees of a device)."""
import dataclasses, os, subprocess, sys
import numpy as np
import pytest
from teeny import Tensor, Device, dtypes
from teeny.runtime.device import UnknownDeviceError, _allocators
from teeny.schedule import create_schedule
from teeny.codegen import get_program
from teeny.codegen.kernel import Kernel, Opt, KernelOptError
from teeny.codegen.heuristics import optimize

pytestmark = pytest.mark.skipif("CL" not in Device.available(), reason="no OpenCL device")
ops_cl = pytest.importorskip("teeny.runtime.ops_cl")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def two_cl_devices(monkeypatch):
  """CL:0 and CL:1 (the first device listed twice): CL is CL:0, CL:1 another device with its own context."""
  devices = ops_cl.cl_devices()
  if ops_cl.default_index() != 0: pytest.skip("the default OpenCL device is not CL:0")
  monkeypatch.setattr(ops_cl, "_devices_cache", [devices[0], devices[0]])
  monkeypatch.setattr(Device, "_canonical", {})
  monkeypatch.setattr(Device, "_opened", dict(Device._opened))
  yield
  _allocators.pop("CL:1", None)


def run_child(code: str, **env) -> subprocess.CompletedProcess:
  """`code` in a fresh interpreter with these environment variables (and no device choice inherited)."""
  clean = {k: v for k, v in os.environ.items() if k not in ("CL", "LLVM", "DEVICE", "CL_DEVICE", "PYOPENCL_CTX", "DEBUG")}
  clean["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)
  return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, cwd=_ROOT, capture_output=True, text=True, timeout=120)


# a child that sees three OpenCL devices (the first one, three times), then runs `code`
_THREE = "from teeny.runtime import ops_cl; ops_cl._devices_cache = ops_cl.cl_devices()[:1] * 3\nfrom teeny import Device, Tensor\n"


# ---- names ----
def test_every_opencl_device_has_a_name_and_the_default_is_marked():
  lines = Device.describe()
  cl_lines = [line for line in lines if line.startswith("CL:")]
  assert [line.split()[0] for line in cl_lines] == [f"CL:{i}" for i in range(len(ops_cl.cl_devices()))]
  assert sum("[default: CL]" in line for line in cl_lines) == 1
  default = ops_cl.default_index()
  dev = ops_cl.cl_devices()[default]
  assert dev.name.strip() in cl_lines[default] and dev.platform.name.strip() in cl_lines[default]
  assert any(line.startswith("LLVM") for line in lines) == ("LLVM" in Device.available())


def test_the_default_device_has_one_name_and_one_context():
  default = f"CL:{ops_cl.default_index()}"
  assert Device.canonicalize(default) == "CL"
  assert Device[default] is Device["CL"]
  x = np.arange(6, dtype=np.float32)
  a, b = Tensor(x, device=default), Tensor(x, device="CL")
  assert a.device == b.device == "CL"
  np.testing.assert_equal((a + b).numpy(), 2 * x)
  np.testing.assert_equal(a.to("CL").numpy(), x)


def test_a_name_that_names_no_device_lists_the_devices():
  n = len(ops_cl.cl_devices())
  for bad in (f"CL:{n}", "CL:x", "CL:-1", "GPU:99"):
    with pytest.raises(ValueError, match="CL:0") as e: Tensor([1.0], device=bad)
    assert bad.split(":")[1] in str(e.value) and ops_cl.cl_devices()[0].name.strip() in str(e.value)
  with pytest.raises(UnknownDeviceError, match="LLVM"): Device["LLVM:x"]
  assert Device.canonicalize("LLVM:0") == "LLVM" and Device.canonicalize("GPU") == "CL"


def test_tensors_on_two_opencl_devices_copy_but_do_not_mix(two_cl_devices):
  x = np.arange(8, dtype=np.float32)
  assert Device.canonicalize("CL:0") == "CL" and Device.canonicalize("CL:1") == "CL:1"
  assert Device["CL:1"] is not Device["CL"] and Device["CL:1"].ctx is not Device["CL"].ctx
  a, b = Tensor(x, device="CL"), Tensor(x * 10, device="CL:1")
  assert b.device == "CL:1"
  with pytest.raises(RuntimeError, match="different devices"): a + b
  np.testing.assert_equal((a.to("CL:1") + b).numpy(), x * 11)
  np.testing.assert_equal((b.to("CL") * 2 + a).numpy(), x * 21)
  np.testing.assert_equal(Tensor(b, device="CL:0").numpy(), x * 10)


def test_default_device_chosen_in_code(two_cl_devices, monkeypatch):
  monkeypatch.setattr(Device, "_default", Device.DEFAULT)
  Device.DEFAULT = "CL:1"
  assert Device.DEFAULT == "CL:1"
  t = Tensor([1.0, 2.0]) * 3
  assert t.device == "CL:1"
  np.testing.assert_equal(t.numpy(), [3.0, 6.0])
  Device.DEFAULT = "CL:0"
  assert Device.DEFAULT == "CL"


# ---- choosing the default by environment ----
def test_cl_device_chooses_the_default_opencl_device():
  code = _THREE + ("print(Device.canonicalize('CL:2'), Device.canonicalize('CL:0'));"
                   "print([l for l in Device.describe() if 'default' in l][0].split()[0]);"
                   "print((Tensor([1.0, 2.0], device='CL:2') + Tensor([3.0, 4.0], device='CL')).numpy().tolist())")
  out = run_child(code, CL_DEVICE="2")
  assert out.returncode == 0, out.stderr
  assert out.stdout.split("\n")[:3] == ["CL CL:0", "CL:2", "[4.0, 6.0]"]


def test_pyopencl_ctx_chooses_the_default_opencl_device():
  platform = ops_cl.cl_devices()[0].platform
  loader_index = ops_cl._platforms_in_loader_order().index(platform)
  out = run_child("from teeny.runtime import ops_cl; print(ops_cl.default_index())", PYOPENCL_CTX=f"{loader_index}:0")
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == str(ops_cl.cl_devices().index(platform.get_devices()[0]))
  out = run_child("from teeny.runtime import ops_cl; print(ops_cl.default_index())", PYOPENCL_CTX=f"{loader_index}:99")
  assert out.returncode != 0 and "PYOPENCL_CTX" in out.stderr and "CL:0" in out.stderr


def test_cl_device_naming_no_device_is_an_error_not_a_silent_fallback():
  out = run_child("from teeny import Device; print(Device.available())", CL_DEVICE="99")
  assert out.returncode != 0
  assert "CL_DEVICE='99'" in out.stderr and "CL:0" in out.stderr, out.stderr


def test_debug_1_shows_the_platform_and_device():
  dev = ops_cl.cl_devices()[ops_cl.default_index()]
  out = run_child("from teeny import Tensor; (Tensor([1.0], device='CL') + 1).numpy()", DEBUG="1",
                  CL_DEVICE=str(ops_cl.default_index()))  # (the child chooses what this process chose)
  assert out.returncode == 0, out.stderr
  opened = [line for line in out.stderr.splitlines() if line.startswith("opened device CL")]
  assert opened and dev.name.strip() in opened[0] and dev.platform.name.strip() in opened[0], out.stderr


# ---- float64 only where the device has it ----
@pytest.fixture
def cl_without_fp64(monkeypatch):
  dev = Device["CL"]
  monkeypatch.setattr(dev, "info", dataclasses.replace(dev.info, has_fp64=False))
  monkeypatch.setattr(dev.renderer, "has_fp64", False)
  return dev


def test_float64_is_refused_on_a_device_without_fp64(cl_without_fp64):
  x = np.arange(4, dtype=np.float64)
  for make in (lambda: Tensor(x, device="CL"), lambda: Tensor([1.0], dtype=dtypes.float64, device="CL"),
               lambda: Tensor.zeros(3, dtype=dtypes.float64, device="CL"),
               lambda: Tensor([1.0], device="CL").cast(dtypes.float64), lambda: Tensor([1.0], device="CL").double(),
               lambda: Tensor([1], dtype=dtypes.int64, device="CL").bitcast(dtypes.float64),
               lambda: Tensor(x, device="LLVM").to("CL")):
    with pytest.raises(TypeError, match="float64"): make()
  # what the device has still works
  np.testing.assert_equal((Tensor(x.astype(np.float32), device="CL") * 2).numpy(), x * 2)


def test_a_float64_kernel_is_never_rendered_for_a_device_without_fp64(cl_without_fp64):
  """Whatever path a float64 value takes into a kernel, the renderer refuses it rather than compute in float."""
  from teeny.renderer.cstyle import OpenCLRenderer
  t = Tensor(np.arange(4, dtype=np.float64) / 3, device="LLVM").realize() * 3
  items, *_ = create_schedule([t.uop], ["LLVM"])
  info = dataclasses.replace(Device["CL"].info, has_fp64=True)
  assert "cl_khr_fp64" in get_program(items[0].ast, OpenCLRenderer(info)).src
  with pytest.raises(TypeError, match="cl_khr_fp64"): get_program(items[0].ast, OpenCLRenderer(cl_without_fp64.info))


def test_float64_on_a_device_with_fp64_is_float64():
  if not Device["CL"].info.has_fp64: pytest.skip("this OpenCL device has no float64")
  x = np.array([1 / 3, 1e-300, 2.0 ** 60 + 1], dtype=np.float64)
  out = (Tensor(x, device="CL") * 3).numpy()
  assert out.dtype == np.float64
  np.testing.assert_equal(out, x * 3)


# ---- limits asked of the device ----
@dataclasses.dataclass
class _SmallGPU:
  """A GPU with small limits: groups of at most 256 items, 64 in dimension 0, and 128 bytes of local memory."""
  name: str = "small GPU"
  is_gpu: bool = True
  has_fp16: bool = False
  has_fp64: bool = False
  max_work_group_size: int = 256
  max_work_item_sizes: tuple = (64, 256, 256)
  local_mem_size: int = 128
  native_vector_width_float: int = 4
  native_vector_width_int: int = 4
  max_loop_iterations: int | None = None


def test_the_renderer_keeps_the_devices_limits():
  info, renderer = Device["CL"].info, Device["CL"].renderer
  assert renderer.max_local_size == min(info.max_work_group_size, info.max_work_item_sizes[0])
  assert renderer.local_mem_size == info.local_mem_size
  assert renderer.has_fp64 == info.has_fp64


def _rowsum_kernel() -> Kernel:
  a = Tensor(np.ones((4, 4096), dtype=np.float32), device="CL").realize()
  items, *_ = create_schedule([a.sum(1).uop], ["CL"])
  k = Kernel(items[0].ast)
  k.reduce_axes_last(); k.merge_axes(); k.ensure_parallel_axis()
  return k


def test_work_group_and_local_memory_limits_come_from_the_device():
  from teeny.renderer.cstyle import OpenCLRenderer
  small = OpenCLRenderer(_SmallGPU())
  assert small.max_local_size == 64 and small.local_mem_size == 128
  k = _rowsum_kernel()
  with pytest.raises(KernelOptError, match="128 bytes"): k.copy().apply_opt(Opt("GROUP", 1, 64), small)  # 256 bytes
  k.copy().apply_opt(Opt("GROUP", 1, 32), small)  # 32 float partial sums: 128 bytes
  with pytest.raises(KernelOptError, match="at most 2 here"): k.copy().apply_opt(Opt("LOCAL", 0, 4), OpenCLRenderer(
    dataclasses.replace(_SmallGPU(), max_work_item_sizes=(2, 256, 256))))
  # the heuristics pick the largest group that fits (the real device would take 256)
  chosen = optimize(Kernel(k.ast), small)
  assert [o for o in chosen.opts if o.op == "GROUP"] == [Opt("GROUP", 1, 32)], chosen.opts
  big = OpenCLRenderer(dataclasses.replace(_SmallGPU(), max_work_item_sizes=(1024,) * 3, max_work_group_size=1024, local_mem_size=65536))
  assert [o for o in optimize(Kernel(k.ast), big).opts if o.op == "GROUP"] == [Opt("GROUP", 1, 256)]


def test_a_launch_larger_than_the_kernel_allows_is_a_clear_error():
  from teeny.engine.runner import get_runner
  src = Tensor(np.arange(8, dtype=np.float32), device="CL").realize()
  items, *_ = create_schedule([(src + 1).uop], ["CL"])
  runner = get_runner("CL", items[0].ast)
  program = runner.program
  too_many = program.max_work_group_size * 2
  out, inp = items[0].bufs
  with pytest.raises(RuntimeError, match=f"at most {program.max_work_group_size}"):
    program(out.handle, inp.handle, global_size=(1, 1, 1), local_size=(too_many, 1, 1))


def test_a_driver_that_stops_long_loops_gets_no_kernel_that_would_need_them():
  """Mesa's llvmpipe (rusticl) ends a work-item's loops after 65,535 iterations in all: a kernel that would run
  more is refused with a clear error, not run into wrong numbers; shorter ones render as usual."""
  from teeny.renderer.cstyle import OpenCLRenderer
  capped = OpenCLRenderer(dataclasses.replace(_SmallGPU(), max_work_group_size=1, max_loop_iterations=1000))
  assert OpenCLRenderer(Device["CL"].info).max_loop_iterations is None or "llvmpipe" in Device["CL"].info.name
  def rowsum_ast(n):
    a = Tensor(np.ones((2, n), dtype=np.float32), device="CL").realize()
    return create_schedule([a.sum(1).uop], ["CL"])[0][0].ast
  assert "for (" in get_program(rowsum_ast(1000), capped, []).src
  with pytest.raises(RuntimeError, match="1001 loop iterations per work-item"): get_program(rowsum_ast(1001), capped, [])
  # nested loops count together: a sum over axes 0 and 2 of (n, 2, 40) runs n outer and n * 40 inner iterations
  def nested_ast(n):
    a = Tensor(np.ones((n, 2, 40), dtype=np.float32), device="CL").realize()
    return create_schedule([a.sum((0, 2)).uop], ["CL"])[0][0].ast
  assert get_program(nested_ast(20), capped, []).src.count("for (") == 2
  with pytest.raises(RuntimeError, match="1230 loop iterations"): get_program(nested_ast(30), capped, [])


def test_each_mpi_rank_gets_a_pocl_cache_of_its_own(tmp_path):
  """PoCL 3.0 segfaults when two processes fill one empty kernel cache with the same kernels at once (two MPI ranks
  building their first kernels: 3 runs of 8), so under MPI the CL backend gives each rank a cache folder of its own
  before PoCL starts."""
  code = "import os, teeny.runtime.ops_cl; print(os.environ['POCL_CACHE_DIR'])"
  for rank_variable in ("PMI_RANK", "OMPI_COMM_WORLD_RANK"):
    env = {k: v for k, v in os.environ.items() if k not in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")}
    env.update({rank_variable: "3", "POCL_CACHE_DIR": str(tmp_path), "PYTHONPATH": _ROOT})
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(tmp_path / "rank3")
  env.pop("OMPI_COMM_WORLD_RANK")  # not under MPI: PoCL's cache as the user set it
  done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
  assert done.stdout.strip() == str(tmp_path)
