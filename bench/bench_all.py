"""All benchmarks in one run: every workload on every teeny device, beside numpy, torch and tinygrad.

  python bench/bench_all.py                                # every teeny device that opens here, 7 repeats
  python bench/bench_all.py --quick --devices LLVM --workloads matmul256 softmax tiny
  nice -n 10 python bench/bench_all.py                     # on a shared machine

Workloads (float32). Each counts one kind of work, the same for every library, and reports a rate of it:
  chain6 sum rowsum1k rowsum4k   bench_core's memory-bound kernels: GB/s of the bytes an ideal kernel moves
  matmul256 matmul1024 matmul2048   `a @ b` of two NxN matrices: GFLOP/s = 2*N^3 / time
  softmax    `x.softmax(-1)` of 4096x4096: GB/s = (read + write) 2*4*N*N / time
  conv2d     input 16x64x56x56, weight 64x64x3x3, padding 1: GFLOP/s = 2*16*64*56*56*64*9 / time. numpy has no
             conv, so its column is what a numpy user writes: im2col (a sliding_window_view of every 3x3 window)
             contracted with the weight by one tensordot (BLAS); torch runs F.conv2d, tinygrad Tensor.conv2d
  conv2d_bwd the same convolution's backward: both gradients (input and weight) for an upstream gradient that is
             new every run, GFLOP/s = 2x conv2d's work / time (so it matches conv2d's rate where backward takes
             twice forward's time). numpy's column: the weight gradient contracted from im2col windows, the input
             gradient as conv2d's im2col of the gradient with the flipped filters; torch runs autograd
  tiny       bench_overhead's `x = (x + 1).realize()` on 16 floats: realized ops/s
  mlp        bench_overhead's SGD step of an MLP 784-512-512-10 at batch 256, eager: ms per step
  mlp_jit    the same step under TinyJit (tinygrad: its TinyJit; numpy and torch have no JIT: their eager step)
  copyout    bench_overhead's `.numpy()` of 64 MiB: GB/s (numpy's column is a.copy(); torch's .numpy() is a view,
             so torch is not shown)
  scalars_fixed scalars   bench_overhead's `(x * i + 1).sum(1).numpy()` loop on 16x64, 1,000 times, with i fixed and
             with i new every time (a decaying learning rate): iterations/s. teeny passes a float32 number to its
             kernel as an argument, so the two rows should match; numpy and torch run the same loop eagerly
  cold       first call in a fresh process: `python -c` that imports the library, computes (ones(64,64) + 1).sum(),
             prints it and exits, with every compile cache (teeny's, PoCL's, pyopencl's, tinygrad's) pointed at a
             fresh empty directory: seconds of the whole subprocess, interpreter start included, median of 3.
             teeny's modules are byte-compiled first (`compileall`), as `pip install` does for an installed
             package and Python does on a first import: a machine that sets PYTHONDONTWRITEBYTECODE would
             otherwise recompile teeny's source in every process (about 0.1 s), which is not a first call's cost
  gpt_step1 gpt_step1_cold   `examples/gpt.py --steps 1` in a subprocess: the seconds it prints for its first
             training step (forward, backward, AdamW: scheduling, and compiling what the cache lacks), with teeny's
             kernel cache warm (the median of 3 runs after one that filled it) and empty (that first run). teeny only

How it is timed. Array workloads (chain6 .. conv2d) use bench_core's timers: inputs realized once, a warm-up
whose result is checked against numpy in float64 (a wrong result is reported, never timed), then each repeat
builds a FRESH lazy expression and times realize() + synchronize(); no copy-out. tiny, mlp and copyout are
bench_overhead's functions, which also check before timing. Each number is a median of the repeats; a
measurement stops repeating once it has taken --budget seconds, so a kernel that takes seconds does not hold the
run for minutes. Ratios are the other library's time over teeny's for the same work: above 1, teeny is faster.

torch and tinygrad are optional: their columns show "-" when they are not installed. torch runs in this process
(CPU). tinygrad picks its device by environment variable, and some of its backends crash the process when their
driver is missing, so each tinygrad device (DEV=CPU, DEV=CPU:LLVM, DEV=CL; CPU=1, CLANG=1, LLVM=1, CL=1 for older
tinygrad) is first probed in a subprocess, then every device that works runs the workloads in a subprocess of
its own (this script with --tinygrad-worker), checked the same way. The table shows the best of them, with its
device. tinygrad finds the pip PoCL driver only after pyopencl is imported, so its workers, and its cold run on
CL, import pyopencl first (the cold time includes that import).
The machine is shared and noisy: compare ratios within one run, never absolute numbers across runs.
"""
from __future__ import annotations
import argparse, datetime, functools, glob, importlib.util, json, os, platform, re, statistics, subprocess, sys
import tempfile, time
from importlib import metadata
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)  # bench_core and bench_overhead, from any working directory
# bench_core also puts the checkout on the path for teeny, and sets torch's OpenMP threads to wait passively
import bench_core, bench_overhead as bo  # noqa: E402
from bench_core import WrongResult  # noqa: E402
from teeny import Device  # noqa: E402

MATMUL_SIZES = (256, 1024, 2048)
SOFTMAX_N = 4096
CONV_X, CONV_W = (16, 64, 56, 56), (64, 64, 3, 3)
MLP_BATCH = 256
CORE = ["chain6", "sum", "rowsum1k", "rowsum4k"]
ARRAY = CORE + [f"matmul{n}" for n in MATMUL_SIZES] + ["softmax", "conv2d"]
ALL = ARRAY + ["conv2d_bwd", "tiny", "scalars_fixed", "scalars", "mlp", "mlp_jit", "copyout", "cold", "gpt_step1", "gpt_step1_cold"]
TINYGRAD_TWINS = ARRAY + ["tiny", "mlp", "mlp_jit", "copyout"]  # (and cold, run apart); the rest are teeny's only
SHARED = {"mlp_jit": "mlp", "scalars_fixed": "scalars"}  # numpy and torch have no JIT, and no kernel to recompile
LABELS = {
  "chain6": "chain6 ((a*b+c).relu()*a-b).exp2(), 3x2^24", "sum": "sum of 2^24", "rowsum1k": "row-sum 1024x1024",
  "rowsum4k": "row-sum 4096x4096", **{f"matmul{n}": f"matmul {n}x{n}" for n in MATMUL_SIZES},
  "softmax": f"softmax {SOFTMAX_N}x{SOFTMAX_N}, last axis", "conv2d": "conv2d 16x64x56x56, 64 3x3, pad 1",
  "conv2d_bwd": "same, backward (input and weight gradients)",
  "tiny": "tiny x=(x+1).realize(), 16 floats", "mlp": f"MLP 784-512-512-10 SGD step, batch {MLP_BATCH}",
  "mlp_jit": "same, TinyJit", "copyout": ".numpy() of 64 MiB", "cold": "first call, fresh process",
  "scalars_fixed": "(x*i+1).sum(1).numpy() on 16x64, i fixed", "scalars": "same, i new every iteration",
  "gpt_step1": "examples/gpt.py step 1, warm kernel cache", "gpt_step1_cold": "same, empty kernel cache",
}


# ---- the new array workloads ----

def softmax_np(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def conv_np(x, w):
  """conv2d with padding 1 the way numpy users write it: im2col, then one BLAS contraction."""
  k = w.shape[-1]
  windows = sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (k, k), axis=(2, 3))  # (N, C, H, W, k, k)
  return np.moveaxis(np.tensordot(windows, w, axes=((1, 4, 5), (1, 2, 3))), 3, 1)  # (N, H, W, O) -> (N, O, H, W)


def conv_expr(x, w):
  # teeny and tinygrad have Tensor.conv2d; torch's conv is a function
  if type(x).__module__.startswith("torch"):
    import torch.nn.functional as F
    return F.conv2d(x, w, padding=1)
  return x.conv2d(w, padding=1)


def conv_grads_np(x, w, g):
  """conv2d's gradients (padding 1) for upstream gradient g, numpy's way: the weight's from the input's im2col
  windows, the input's a convolution of g with the filters flipped and transposed."""
  k = w.shape[-1]
  windows = sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (k, k), axis=(2, 3))  # (N, C, H, W, k, k)
  dw = np.tensordot(g, windows, axes=((0, 2, 3), (0, 2, 3)))  # (O, C, k, k)
  dx = conv_np(g, np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)))
  return dx, dw


def conv_bwd_runs(grads, make_g, r: int, sync=lambda: None) -> float:
  """ms per backward: `grads(g)` with an upstream gradient made (and realized) before each timed run, so no run
  repeats another's graph (teeny would find its result already computed)."""
  pending = [make_g() for _ in range(bench_core.WAKE_CALLS + r)]

  def run():
    grads(pending.pop())
    sync()
  return bench_core.median_ms(run, r)


def conv_bwd_teeny(dev: str, r: int) -> float:
  from teeny import Tensor
  x_np, w_np, g_np = inputs("conv2d_bwd")
  x = Tensor(x_np, device=dev, requires_grad=True).realize()
  w = Tensor(w_np, device=dev, requires_grad=True).realize()

  def grads(g):
    x.grad = w.grad = None
    x.conv2d(w, padding=1).backward(g)
    Tensor.realize_all(x.grad, w.grad)
  grads(Tensor(g_np, device=dev))
  for got, want_ in zip((x.grad, w.grad), want("conv2d_bwd")): bench_core.check("conv2d_bwd", dev, got.numpy(), want_, 1e-4)
  return conv_bwd_runs(grads, lambda: Tensor.rand(*CONV_X, device=dev).realize(), r, Device[dev].synchronize)


def conv_bwd_torch(r: int) -> float:
  import torch
  x_np, w_np, g_np = inputs("conv2d_bwd")
  x, w = (torch.from_numpy(a).requires_grad_() for a in (x_np, w_np))

  def grads(g):
    x.grad = w.grad = None
    torch.nn.functional.conv2d(x, w, padding=1).backward(g)
  grads(torch.from_numpy(g_np))
  for got, want_ in zip((x.grad, w.grad), want("conv2d_bwd")): bench_core.check("conv2d_bwd", "torch", got.numpy(), want_, 1e-4)
  return conv_bwd_runs(grads, lambda: torch.rand(*CONV_X), r)


def conv_bwd_numpy(r: int) -> float:
  x_np, w_np, g_np = inputs("conv2d_bwd")
  for got, want_ in zip(conv_grads_np(x_np, w_np, g_np), want("conv2d_bwd")): bench_core.check("conv2d_bwd", "numpy", got, want_, 1e-4)
  rng = np.random.default_rng(4)
  return conv_bwd_runs(lambda g: conv_grads_np(x_np, w_np, g), lambda: rng.random(CONV_X, dtype=np.float32), r)


# They join bench_core's table (expression for any library, numpy twin, bytes moved, rtol), so its timers and
# checks serve them unchanged. matmul and conv inputs are positive, so every output is far from 0 and the check
# is relative everywhere; 1e-3 leaves room for a float32 dot product of 2048 terms summed in order.
bench_core.WORKLOADS.update({
  **{f"matmul{n}": (lambda a, b: a @ b, lambda a, b: a @ b, lambda ins: 3 * ins[0].nbytes, 1e-3) for n in MATMUL_SIZES},
  "softmax": (lambda x: x.softmax(-1), softmax_np, lambda ins: 2 * ins[0].nbytes, 1e-4),
  "conv2d": (conv_expr, conv_np, lambda ins: 2 * ins[0].nbytes + ins[1].nbytes, 1e-4),
})

_inputs: dict[str, list[np.ndarray]] = {}


def inputs(name: str) -> list[np.ndarray]:
  """The same arrays in every process (seeded), so tinygrad's workers time and check what teeny did."""
  if name not in _inputs:
    f32 = np.float32
    if name in CORE: _inputs.update(bench_core.make_inputs(np.random.default_rng(0)))
    elif name.startswith("matmul"):
      n = int(name[6:])
      rng = np.random.default_rng(n)
      _inputs[name] = [rng.random((n, n), dtype=f32) for _ in range(2)]
    elif name == "softmax": _inputs[name] = [np.random.default_rng(1).standard_normal((SOFTMAX_N,) * 2, dtype=f32)]
    elif name == "conv2d":
      rng = np.random.default_rng(2)
      _inputs[name] = [rng.random(CONV_X, dtype=f32), rng.random(CONV_W, dtype=f32)]
    elif name == "conv2d_bwd": _inputs[name] = inputs("conv2d") + [np.random.default_rng(3).random(CONV_X, dtype=f32)]
  return _inputs[name]


@functools.lru_cache(maxsize=1)  # every library and device of a workload checks against it; one at a time in memory
def want(name: str):
  arrays = [x.astype(np.float64) for x in inputs(name)]
  if name == "conv2d_bwd": return conv_grads_np(*arrays)
  return np.asarray(bench_core.WORKLOADS[name][1](*arrays))


def unit_and_work(name: str) -> tuple[str, float]:
  """What a workload's rate counts, and how much of it one run does."""
  if name.startswith("matmul"): return "GFLOP/s", 2 * int(name[6:]) ** 3
  if name in ("conv2d", "conv2d_bwd"):
    (n, c, h, w), (o, _, kh, kw) = CONV_X, CONV_W
    convs = 2 if name == "conv2d_bwd" else 1  # (backward: two convolutions' worth, one per gradient)
    return "GFLOP/s", convs * 2 * n * o * h * w * c * kh * kw  # padding 1 keeps the output at h x w
  if name in ARRAY: return "GB/s", bench_core.WORKLOADS[name][2](inputs(name))
  return {"tiny": ("ops/s", 1), "mlp": ("ms", 1), "mlp_jit": ("ms", 1), "copyout": ("GB/s", bo.COPY_BYTES),
          "cold": ("s", 1), "scalars_fixed": ("it/s", 1), "scalars": ("it/s", 1), "gpt_step1": ("s", 1),
          "gpt_step1_cold": ("s", 1)}[name]


def rate(name: str, ms: float) -> float:
  unit, work = unit_and_work(name)
  if unit in ("GB/s", "GFLOP/s"): return work / ms / 1e6
  return {"ops/s": 1e3 / ms, "it/s": 1e3 / ms, "ms": ms, "s": ms / 1e3}[unit]


# ---- measurements: every function returns ms per run of the workload, or None where the library has none ----

def per_op(ops_per_s): return None if ops_per_s is None else 1e3 / ops_per_s
def copy_ms(gb_per_s): return None if gb_per_s is None else bo.COPY_BYTES / gb_per_s / 1e6


def teeny_ms(name: str, dev: str, r: int) -> float:
  if name in ARRAY: return bench_core.bench_teeny(dev, name, inputs(name), want(name), r)[0]
  if name == "cold": return cold_ms("teeny", r, {"DEVICE": dev})
  if name == "conv2d_bwd": return conv_bwd_teeny(dev, r)
  if name.startswith("gpt_step1"): return gpt_step1_s(dev, r)[name == "gpt_step1_cold"] * 1e3
  return {"tiny": lambda: per_op(bo.tiny_teeny(dev, r)),
          "scalars_fixed": lambda: per_op(bo.scalars_teeny(dev, r, changing=False)),
          "scalars": lambda: per_op(bo.scalars_teeny(dev, r, changing=True)), "mlp": lambda: bo.mlp_teeny(dev, MLP_BATCH, r, jit=False),
          "mlp_jit": lambda: bo.mlp_teeny(dev, MLP_BATCH, r, jit=True),
          "copyout": lambda: copy_ms(bo.copyout_teeny(dev, r))}[name]()


def numpy_ms(name: str, r: int) -> float:
  if name in ARRAY:
    # numpy's result is checked too: conv2d's column is our im2col, which must be right to stand for numpy
    bench_core.check(name, "numpy", np.asarray(bench_core.WORKLOADS[name][1](*inputs(name))), want(name),
                     bench_core.WORKLOADS[name][3])
    return bench_core.bench_numpy(name, inputs(name), r)
  if name == "cold": return cold_ms("numpy", r, {})
  if name == "conv2d_bwd": return conv_bwd_numpy(r)
  if name.startswith("gpt_step1"): return None
  return {"tiny": lambda: per_op(bo.tiny_numpy(r)), "scalars": lambda: per_op(bo.scalars_numpy(r)), "mlp": lambda: bo.mlp_numpy(MLP_BATCH, r),
          "copyout": lambda: copy_ms(bo.copyout_numpy(r))}[name]()


def torch_ms(name: str, r: int) -> float | None:
  if importlib.util.find_spec("torch") is None: return None
  if name in ARRAY: return bench_core.bench_torch(name, inputs(name), want(name), r)
  if name == "cold": return cold_ms("torch", r, {})
  if name == "conv2d_bwd": return conv_bwd_torch(r)
  if name.startswith("gpt_step1"): return None
  return {"tiny": lambda: per_op(bo.tiny_torch(r)), "scalars": lambda: per_op(bo.scalars_torch(r)), "mlp": lambda: bo.mlp_torch(MLP_BATCH, r),
          "copyout": lambda: None}[name]()


def tinygrad_ms(name: str, r: int) -> float | None:
  """In a --tinygrad-worker process, whose environment has chosen tinygrad's device."""
  if name in ARRAY: return bench_core.bench_tinygrad(name, inputs(name), want(name), r)
  return {"tiny": lambda: per_op(bo.tiny_tinygrad(r)), "mlp": lambda: mlp_tinygrad(r, jit=False),
          "mlp_jit": lambda: mlp_tinygrad(r, jit=True), "copyout": lambda: copy_ms(bo.copyout_tinygrad(r))}[name]()


def mlp_tinygrad(r: int, jit: bool) -> float:
  from tinygrad import Tensor, Device as TinyDevice, TinyJit
  weights, x, y = bo.mlp_data(MLP_BATCH)
  expected = bo.numpy_step([w.copy() for w in weights], x, y)
  params = [tinygrad_param(Tensor, w) for w in weights]
  xt, yt = Tensor(x).realize(), Tensor(y).realize()

  def step(x, y):  # bench_overhead's teeny step, in tinygrad's spelling
    h = x
    for i in range(0, len(params), 2):
      h = h @ params[i] + params[i + 1]
      if i + 2 < len(params): h = h.relu()
    loss = -(h.log_softmax(1) * y).sum(1).mean()
    for p, g in zip(params, tinygrad_grads(loss, params)): p.assign(p - 0.01 * g)
    return loss.realize(*params)
  if jit: step = TinyJit(step)
  loss = step(xt, yt).item()
  if not np.isclose(loss, expected, rtol=1e-3):
    raise WrongResult(f"MLP step on tinygrad: loss {loss}, numpy says {expected}")
  for _ in range(2): step(xt, yt)  # jit: the capture, and a first replay

  def run():
    step(xt, yt)
    TinyDevice[TinyDevice.DEFAULT].synchronize()
  return bench_core.median_ms(run, r)


def tinygrad_param(Tensor, w: np.ndarray):
  try: return Tensor(w, requires_grad=True).realize()
  except TypeError: return Tensor(w).realize()  # tinygrad 0.14 has no requires_grad: every float tensor can get one


def tinygrad_grads(loss, params: list) -> list:
  # gradient() differentiates for the parameters only; 0.14's backward() fills .grad of every float tensor in the
  # graph, the input batch too, which is work the other libraries don't do
  if hasattr(loss, "gradient"): return loss.gradient(*params)
  for p in params: p.grad = None
  loss.backward()
  return [p.grad for p in params]


COLD = {
  "teeny": "from teeny import Tensor; print((Tensor.ones(64, 64) + 1).sum().numpy())",
  "numpy": "import numpy as np; print((np.ones((64, 64), np.float32) + 1).sum())",
  "torch": "import torch; print((torch.ones(64, 64) + 1).sum().numpy())",
  "tinygrad": "from tinygrad import Tensor; print((Tensor.ones(64, 64) + 1).sum().numpy())",
}


def cold_ms(lib: str, r: int, env: dict[str, str], prelude: str = "") -> float:
  if lib == "teeny": compile_bytecode()
  times = []
  for _ in range(min(r, 3)):
    with tempfile.TemporaryDirectory(prefix="bench_cold_") as tmp:
      # every disk cache a first call could hit, emptied: cold means compiling everything
      fresh = {"TEENY_CACHE_DIR": f"{tmp}/teeny", "POCL_CACHE_DIR": f"{tmp}/pocl", "XDG_CACHE_HOME": tmp,
               "CACHEDB": f"{tmp}/tinygrad.db", "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
      t0 = time.perf_counter()
      out = subprocess.run([sys.executable, "-c", prelude + COLD[lib]], env={**os.environ, **env, **fresh},
                           capture_output=True, text=True, timeout=600)
      times.append(time.perf_counter() - t0)
    if out.returncode != 0: raise RuntimeError(last_line(out.stderr) or f"exit status {out.returncode}")
    if float(out.stdout.split()[-1]) != 64 * 64 * 2: raise WrongResult(f"cold {lib}: printed {out.stdout.strip()!r}")
  return statistics.median(times) * 1e3


def compile_bytecode():
  """What `pip install` does for an installed package: teeny's modules byte-compiled once, before any timing."""
  import compileall
  compileall.compile_dir(os.path.join(ROOT, "teeny"), quiet=1)


STEP1 = re.compile(r"^step\s+1\s+loss\s+\S+\s+([0-9.]+) s", re.M)


@functools.lru_cache(maxsize=None)  # both gpt rows of a device come from the same runs
def gpt_step1_s(dev: str, r: int) -> tuple[float, float]:
  """(median warm, cold) seconds of examples/gpt.py's first step: one run fills an empty kernel cache, then up to 3
  more find every kernel in it. Each run is a fresh process, so nothing is kept in memory between them."""
  compile_bytecode()
  seconds = []
  with tempfile.TemporaryDirectory(prefix="bench_gpt_") as tmp:
    env = {**os.environ, "TEENY_CACHE_DIR": f"{tmp}/teeny", "POCL_CACHE_DIR": f"{tmp}/pocl", "XDG_CACHE_HOME": tmp,
           "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}  # (teeny from this checkout)
    for _ in range(1 + min(r, 3)):
      out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "gpt.py"), "--device", dev, "--steps", "1",
                            "--sample", "0"], env=env, capture_output=True, text=True, timeout=1800)
      found = STEP1.search(out.stdout)
      if out.returncode != 0 or found is None: raise RuntimeError(last_line(out.stderr) or f"exit status {out.returncode}")
      seconds.append(float(found.group(1)))
  return statistics.median(seconds[1:]), seconds[0]


def last_line(text: str) -> str: return (text.strip().splitlines() or [""])[-1]


# ---- tinygrad, one subprocess per device ----

TINYGRAD_TARGETS = [("CPU", {"DEV": "CPU"}), ("CPU:LLVM", {"DEV": "CPU:LLVM"}), ("CL", {"DEV": "CL"}),
                    ("CPU", {"CPU": "1"}), ("CLANG", {"CLANG": "1"}), ("LLVM", {"LLVM": "1"}), ("CL", {"CL": "1"})]


def opencl_env() -> dict[str, str]:
  """Lets tinygrad's OpenCL backend load the OpenCL library that teeny's pyopencl brings (tinygrad finds no
  libOpenCL on its own when the driver came from pip)."""
  spec = importlib.util.find_spec("pyopencl")
  libs = glob.glob(os.path.join(os.path.dirname(spec.origin), ".libs", "libOpenCL*")) if spec and spec.origin else []
  return {"OPENCL_PATH": os.environ.get("OPENCL_PATH", libs[0])} if libs else {}


# Importing pyopencl registers the pip PoCL driver with that library; without it tinygrad's CL device finds no
# platform and crashes. It goes before tinygrad's import in the workers and in tinygrad's cold run on CL.
PYOPENCL_FIRST = "import pyopencl; "


def tinygrad_setup():
  try: import pyopencl  # noqa: F401
  except ImportError: pass


def tinygrad_run(target_env: dict[str, str], args: list[str], timeout: float) -> subprocess.CompletedProcess:
  cmd = [sys.executable, os.path.abspath(__file__), *args]
  env = {**os.environ, **opencl_env(), **target_env}
  try: return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
  except subprocess.TimeoutExpired as e:
    out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    return subprocess.CompletedProcess(cmd, -9, out, f"timed out after {timeout:.0f} s")


def tinygrad_devices() -> tuple[list[tuple[str, dict]], list[str]]:
  """The tinygrad devices that compute 1+1 here (the same device twice counts once), and why the others don't."""
  works, seen, fails = [], set(), []
  for label, env in TINYGRAD_TARGETS:
    out = tinygrad_run(env, ["--tinygrad-probe", label], timeout=300)
    key = out.stdout.strip()
    if out.returncode == 0 and key.startswith("OK") and key not in seen: works.append((label, env)); seen.add(key)
    elif out.returncode != 0 and not any(label == w[0] for w in works):
      why = last_line(out.stderr) if out.returncode > 0 else f"crashed (signal {-out.returncode})"
      fails.append(f"{label} via {' '.join(f'{k}={v}' for k, v in env.items())}: {why[:100]}")
  return works, fails


def tinygrad_probe(label: str):
  tinygrad_setup()
  from tinygrad import Tensor, Device as TinyDevice
  if TinyDevice.DEFAULT != label.split(":")[0]: raise SystemExit(f"default device is {TinyDevice.DEFAULT}, not {label}")
  if (Tensor.ones(4) + 1).numpy().tolist() != [2.0] * 4: raise SystemExit("1 + 1 is not 2")
  print("OK", TinyDevice.DEFAULT, type(TinyDevice[TinyDevice.DEFAULT].renderer).__name__)


def tinygrad_worker(workloads: list[str], r: int):
  """Runs in the subprocess: one JSON line per workload, flushed, so a crash keeps what was measured before it."""
  tinygrad_setup()
  for name in workloads:
    try: res = {"ms": tinygrad_ms(name, r)}
    except WrongResult as e: res = {"error": "WRONG", "why": str(e)}
    except Exception as e: res = {"error": "err", "why": f"{type(e).__name__}: {e}"}
    print("RESULT " + json.dumps({"workload": name, **res}), flush=True)


def tinygrad_results(workloads: list[str], args, notes: list[str]) -> dict[str, tuple[str, float | str]]:
  """workload -> (device, best ms) or (device, error), over every tinygrad device that works here."""
  best: dict[str, tuple[str, float | str]] = {}
  todo = [w for w in workloads if w in TINYGRAD_TWINS]
  for label, env in args.tinygrad_targets:
    progress(f"tinygrad {label}: {' '.join(todo)}")
    out = tinygrad_run(env, ["--tinygrad-worker", "--repeats", str(args.repeats), "--budget", str(args.budget),
                             "--workloads", *todo], timeout=3600) if todo else None
    results = [json.loads(line[7:]) for line in out.stdout.splitlines() if line.startswith("RESULT ")] if out else []
    got = {d["workload"]: d for d in results}
    for name in todo:
      died = f"worker died (exit status {out.returncode}): {last_line(out.stderr)[:200]}"
      d = got.get(name, {"error": "err", "why": died})
      if "error" in d: notes.append(f"tinygrad {label}, {name}: {d['why'][:300]}")
      keep(best, name, label, d.get("ms", d.get("error")))
    if "cold" in workloads:
      prelude = PYOPENCL_FIRST if label == "CL" and importlib.util.find_spec("pyopencl") else ""
      try: keep(best, "cold", label, cold_ms("tinygrad", args.repeats, {**opencl_env(), **env}, prelude))
      except Exception as e: notes.append(f"tinygrad {label}, cold: {e}"); keep(best, "cold", label, "err")
  return best


def keep(best: dict, name: str, label: str, value: float | str | None):
  """Keep the fastest number; an error only shows when no device gave a number."""
  if value is None: return
  old = best.get(name)
  if old is None or isinstance(old[1], str) or (not isinstance(value, str) and value < old[1]):
    best[name] = (label, value)


# ---- the run and the table ----

def progress(msg: str): print(f"... {msg}", file=sys.stderr, flush=True)


def attempt(who: str, name: str, fn, notes: list[str]) -> float | str | None:
  """A number, None (library not here), or the short error that goes in the cell; the full one goes in a note."""
  try: return fn()
  except WrongResult as e: notes.append(str(e)); return "WRONG"
  except Exception as e:
    notes.append(f"{name} on {who}: {type(e).__name__}: {str(e)[:300]}")
    return "err: " + type(e).__name__


def fmt(v: float | str | None) -> str:
  if v is None: return "-"
  if isinstance(v, str): return v
  return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}" if v >= 0.1 else f"{v:.3g}"


def ratio(teeny: float | str | None, other: float | str | None) -> str:
  if not isinstance(teeny, float) or not isinstance(other, float): return "-"
  return f"{other / teeny:.2f}x"  # both are times of the same work: above 1, teeny is faster


def version(pkg: str) -> str:
  try: return metadata.version(pkg)
  except metadata.PackageNotFoundError: return "not installed"


def git_rev() -> str:
  try:
    git = lambda *a: subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True).stdout.strip()
    rev, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "--", "teeny")
    return rev + (" + uncommitted changes in teeny/" if dirty else "")
  except OSError: return "?"


def header(args, tg_fails: list[str]):
  print(f"# teeny bench_all, {datetime.datetime.now().isoformat(' ', 'minutes')}, {bench_core.cpu_name()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}, "
        f"torch {version('torch')}, tinygrad {version('tinygrad')}, teeny at git {git_rev()}")
  for d in args.devices:
    try: print(f"#   teeny {d}: {Device[d]!r}")
    except Exception as e: print(f"#   teeny {d}: does not open ({e})")
  if args.tinygrad_targets is not None:
    print(f"#   tinygrad devices here: {', '.join(t[0] for t in args.tinygrad_targets) or 'none'}")
    for f in tg_fails: print(f"#   tinygrad not here: {f}")
  print(f"# median of up to {args.repeats} repeats (fewer once a measurement took {args.budget:g} s); "
        "teeny/X = X's time / teeny's time for the same work, above 1: teeny is faster")


def measure_all(args, notes: list[str]) -> list[list[str]]:
  tg = tinygrad_results(args.workloads, args, notes) if args.tinygrad_targets else {}
  rows, r, others = [], args.repeats, {}
  for name in args.workloads:
    progress(f"{name}: numpy, torch")
    # numpy and torch have no JIT: mlp_jit's row shows their eager step, measured once for both rows
    key = SHARED.get(name, name)
    if key not in others:
      others[key] = (attempt("numpy", key, lambda: numpy_ms(key, r), notes),
                     attempt("torch", key, lambda: torch_ms(key, r), notes))
    np_v, torch_v = others[key]
    tg_dev, tg_v = tg.get(name, ("", None))
    unit = unit_and_work(name)[0]
    for dev in args.devices:
      progress(f"{name}: teeny {dev}")
      v = attempt(f"teeny {dev}", name, lambda: teeny_ms(name, dev, r), notes)
      metric = lambda x: rate(name, x) if isinstance(x, float) else x
      tg_cell = fmt(metric(tg_v)) + (f" ({tg_dev})" if isinstance(tg_v, float) else "")
      teeny_cells = [fmt(v), fmt(metric(v)) if isinstance(v, float) else "-"]
      rows.append([LABELS[name], unit, dev, *teeny_cells, fmt(metric(np_v)), fmt(metric(torch_v)), tg_cell,
                   ratio(v, np_v), ratio(v, torch_v), ratio(v, tg_v)])
  return rows


def print_table(rows: list[list[str]]):
  cols = ["workload", "unit", "device", "teeny ms", "teeny", "numpy", "torch", "tinygrad",
          "teeny/numpy", "teeny/torch", "teeny/tinygrad"]
  print("\n| " + " | ".join(cols) + " |")
  print("|" + "|".join("---" for _ in cols) + "|")
  for row in rows: print("| " + " | ".join(row) + " |")


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement; the median is reported")
  parser.add_argument("--budget", type=float, default=10.0, help="seconds after which a measurement stops repeating")
  parser.add_argument("--quick", action="store_true", help="3 repeats and a 3 s budget: a fast, rougher run")
  parser.add_argument("--devices", nargs="*", default=None, help="teeny devices (default: every one that opens here)")
  parser.add_argument("--workloads", nargs="*", default=ALL, choices=ALL, metavar="WORKLOAD", help=" ".join(ALL))
  parser.add_argument("--no-tinygrad", action="store_true", help="skip tinygrad even when it is installed")
  parser.add_argument("--tinygrad-worker", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--tinygrad-probe", metavar="LABEL", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.quick: args.repeats, args.budget = min(args.repeats, 3), min(args.budget, 3.0)
  bench_core.BUDGET_S = args.budget
  if args.tinygrad_probe: return tinygrad_probe(args.tinygrad_probe)
  if args.tinygrad_worker: return tinygrad_worker(args.workloads, args.repeats)

  args.devices = args.devices if args.devices is not None else Device.available()
  if not args.devices: raise SystemExit("no teeny device opens on this machine")
  tg_fails: list[str] = []
  args.tinygrad_targets = None
  if importlib.util.find_spec("tinygrad") is not None and not args.no_tinygrad:
    progress("probing tinygrad's devices")
    args.tinygrad_targets, tg_fails = tinygrad_devices()
  notes: list[str] = []
  rows = measure_all(args, notes)
  header(args, tg_fails)
  for n in notes: print(f"# {n}")
  print_table(rows)
  teeny_bad = [row for row in rows if row[3] == "WRONG" or row[3].startswith("err")]
  if teeny_bad: raise SystemExit(f"{len(teeny_bad)} teeny measurement(s) failed or were wrong; see the notes above")


if __name__ == "__main__":
  main()
