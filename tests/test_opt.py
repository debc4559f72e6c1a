"""The kernel optimizer's actions: each one, on every device, computes what the unoptimized kernel computes; the
heuristics pick register tiles for matmul-like kernels; bad actions raise KernelOptError; DEBUG=3 shows them;
LLVM turns upcast tiles into vector instructions; big sums split into two kernels."""
import copy, dataclasses, os, subprocess, sys
import numpy as np
import pytest
from conftest import use_tuning
from teeny import Tensor, Device, GlobalCounters
from teeny.uop import Ops
from teeny.codegen import get_program
from teeny.codegen.kernel import Kernel, Opt, KernelOptError
from teeny.codegen.heuristics import optimize
from teeny.renderer.tuning import Tuning
from teeny.engine.runner import CompiledRunner
from teeny.schedule import create_schedule
from teeny.dtype import dtypes
from child import run_in_child

DEVICES = Device.available()
rng = np.random.default_rng(0)


def rand(*shape): return rng.standard_normal(shape).astype(np.float32)


def only_kernel(t: Tensor):
  """The one kernel that realizes t (its inputs realized first)."""
  items, *_ = create_schedule([t.uop], [t.device])
  assert len(items) == 1, f"expected one kernel, got {len(items)}"
  return items[0]


def run_with(t: Tensor, opts: list[Opt] | None) -> np.ndarray:
  """Run t's kernel with exactly these actions (None: the heuristics) and read its output."""
  item = only_kernel(t)
  spec = get_program(item.ast, Device[t.device].renderer, opts if opts is not None else None)
  CompiledRunner(t.device, spec)(item.bufs, item.vals)
  Device[t.device].synchronize()
  return item.bufs[0].numpy().reshape(t.shape)


def check_matmul_and_grads(a: np.ndarray, b: np.ndarray, device: str, kernels: int) -> Tensor:
  """a @ b on the device runs in `kernels` kernels and gives numpy's product, and the gradients of its sum are
  numpy's. Returns the left operand (a leaf that requires grad)."""
  ta, tb = Tensor(a, device=device, requires_grad=True), Tensor(b, device=device, requires_grad=True)
  Tensor.realize_all(ta, tb)
  GlobalCounters.reset()
  out = (ta @ tb).realize()
  assert GlobalCounters.kernel_count == kernels
  np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-4, atol=1e-4)
  out.sum().backward()
  ones = np.ones((a.shape[0], b.shape[1]), np.float32)
  np.testing.assert_allclose(ta.grad.numpy(), ones @ b.T, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(tb.grad.numpy(), a.T @ ones, rtol=1e-4, atol=1e-4)
  return ta


# (name, builder of the output tensor from realized inputs, [actions], whether a float reduce is reordered)
def matmul(dev): return Tensor(rand(32, 24), device=dev).realize() @ Tensor(rand(24, 48), device=dev).realize()
def elementwise(dev):
  a, b = Tensor(rand(16, 64), device=dev).realize(), Tensor(rand(64), device=dev).realize()
  return ((a * b + 1).relu() - a.exp2() * 0.5)
def rowsum(dev): return Tensor(rand(24, 96), device=dev).realize().sum(1)
def padded(dev): return Tensor(rand(12, 20), device=dev).realize().pad(((2, 2), (0, 4))).exp2() + 1
def maxpool(dev): return Tensor(rand(2, 3, 8, 8), device=dev).realize().max_pool2d(2)
def conv(dev):
  x, w = Tensor(rand(2, 4, 8, 8), device=dev).realize(), Tensor(rand(8, 4, 3, 3), device=dev).realize()
  return x.conv2d(w, padding=1)

CASES = [
  ("matmul", matmul, [Opt("UPCAST", 1, 16), Opt("UPCAST", 0, 4)]),
  ("matmul", matmul, [Opt("UPCAST", 0, 8), Opt("UNROLL", 2, 4)]),
  ("matmul", matmul, [Opt("UNROLL", 2, 0)]),
  ("matmul", matmul, [Opt("SWAP", 0, 1), Opt("UPCAST", 0, 3)]),
  ("matmul", matmul, [Opt("LOCAL", 1, 8), Opt("UPCAST", 0, 2)]),
  ("elementwise", elementwise, [Opt("UPCAST", 1, 8)]),
  ("elementwise", elementwise, [Opt("UPCAST", 0, 4), Opt("UPCAST", 1, 4)]),
  ("elementwise", elementwise, [Opt("LOCAL", 1, 16), Opt("UPCAST", 1, 4)]),
  ("rowsum", rowsum, [Opt("UNROLL", 1, 8)]),
  ("rowsum", rowsum, [Opt("UPCAST", 0, 4), Opt("UNROLL", 1, 3)]),
  ("rowsum", rowsum, [Opt("LOCAL", 0, 8)]),
  ("padded", padded, [Opt("UPCAST", 1, 8), Opt("UPCAST", 0, 4)]),
  ("maxpool", maxpool, [Opt("UNROLL", 3, 2), Opt("UPCAST", 1, 4)]),
  ("conv", conv, [Opt("UPCAST", 1, 8), Opt("UNROLL", 6, 3)]),
  ("conv", conv, [Opt("UPCAST", 3, 4), Opt("UPCAST", 1, 2), Opt("UNROLL", 4, 2)]),
  ("rowsum", rowsum, [Opt("GROUP", 1, 16)]),
  ("rowsum", rowsum, [Opt("GROUP", 1, 8), Opt("UNROLL", 2, 4)]),
  ("matmul", matmul, [Opt("GROUP", 2, 8)]),
  ("maxpool", maxpool, [Opt("GROUP", 3, 2)]),
  ("conv", conv, [Opt("GROUP", 4, 4), Opt("UNROLL", 6, 3)]),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,build,opts", CASES, ids=[f"{c[0]}-{'-'.join(map(repr, c[2]))}" for c in CASES])
def test_action_keeps_result(device, name, build, opts):
  if any(o.op in ("LOCAL", "GROUP") for o in opts) and not Device[device].renderer.has_threads:
    with pytest.raises(KernelOptError, match="work-groups"): run_with(build(device), opts)
    return
  out = build(device)
  plain = run_with(out, [])
  optimized = run_with(out, opts)
  # an upcast kernel sums each output in loop order, the plain one may keep partial sums: reassociation only
  np.testing.assert_allclose(optimized, plain, rtol=1e-5, atol=1e-5)
  # no reduce: the same ops on the same values. LLVM calls one exp2 however a loop is vectorized (the renderer's
  # vector_math_call): the same bits; an OpenCL driver's exp2 may differ in the last bit between vector widths
  if name in ("elementwise", "padded"):
    if device.startswith("LLVM"): np.testing.assert_array_equal(optimized, plain)
    else: np.testing.assert_allclose(optimized, plain, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(optimized, out.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_heuristics_tile_matmul_and_match_numpy(device):
  a, b = rand(64, 96), rand(96, 128)
  ta, tb = Tensor(a, device=device).realize(), Tensor(b, device=device).realize()
  spec = get_program(only_kernel(ta @ tb).ast, Device[device].renderer)
  assert [o.op for o in spec.opts].count("UPCAST") == 2, spec.opts  # columns and rows of a register tile
  np.testing.assert_allclose((ta @ tb).numpy(), a @ b, rtol=1e-4, atol=1e-4)


def test_bad_actions_raise_and_leave_the_kernel_alone():
  t = Tensor(rand(12, 20), device="LLVM").realize().sum(1)
  k = optimize(Kernel(only_kernel(t).ast), Device["LLVM"].renderer, [])
  before = (k.full_shape, k.kinds, k.ast)
  for bad, match in [(Opt("UPCAST", 0, 5), "does not split"), (Opt("UPCAST", 1, 4), "reduce axis"),
                     (Opt("UNROLL", 0, 2), "global axis"), (Opt("UPCAST", 7, 2), "no axis"),
                     (Opt("SWAP", 0, 0), "two different"), (Opt("SHUFFLE", 0, 2), "unknown"),
                     (Opt("LOCAL", 0, 2), "work-groups")]:
    with pytest.raises(KernelOptError, match=match): k.apply_opt(bad, Device["LLVM"].renderer)
    assert (k.full_shape, k.kinds, k.ast) == before
  if "CL" in DEVICES:  # a grouped reduce goes alone
    cl = optimize(Kernel(only_kernel(Tensor(rand(12, 20), device="CL").realize().sum(1)).ast), Device["CL"].renderer, [])
    cl.apply_opt(Opt("GROUP", 1, 4), Device["CL"].renderer)
    for bad in (Opt("UPCAST", 0, 2), Opt("LOCAL", 0, 2), Opt("GROUP", 2, 5)):
      with pytest.raises(KernelOptError, match="alone"): cl.apply_opt(bad, Device["CL"].renderer)
  big = optimize(Kernel(only_kernel(Tensor(rand(64, 512), device="LLVM").realize().sum(1)).ast), Device["LLVM"].renderer, [])
  big.apply_opt(Opt("UPCAST", 0, 64), Device["LLVM"].renderer)
  with pytest.raises(KernelOptError, match="copies"): big.apply_opt(Opt("UNROLL", 1, 8), Device["LLVM"].renderer)


def tuned(device: str, **numbers):
  """A copy of the device's renderer that carries a Tuning with these numbers changed."""
  renderer = copy.copy(Device[device].renderer)
  renderer.tuning = dataclasses.replace(renderer.tuning, **numbers)
  return renderer


def test_renderers_carry_the_default_tuning():
  for device in DEVICES: assert Device[device].renderer.tuning == Tuning()


def test_the_expansion_limit_is_the_renderers():
  k = optimize(Kernel(only_kernel(Tensor(rand(64, 512), device="LLVM").realize().sum(1)).ast), Device["LLVM"].renderer, [])
  with pytest.raises(KernelOptError, match="the limit is 8"): k.apply_opt(Opt("UPCAST", 0, 16), tuned("LLVM", max_expansion=8))
  k.apply_opt(Opt("UPCAST", 0, 16), Device["LLVM"].renderer)  # the default limit (256) takes it


@pytest.mark.parametrize("device", DEVICES)
def test_register_tile_size_is_the_renderers(device):
  a, b = rand(64, 96), rand(96, 128)
  ast = only_kernel(Tensor(a, device=device).realize() @ Tensor(b, device=device).realize()).ast
  # tiles of at most one vector of accumulators: the columns' vector, no rows and no widening
  spec = get_program(ast, tuned(device, tile_max_vectors=1))
  assert [o.op for o in spec.opts] == ["UPCAST"], spec.opts
  assert [o.op for o in get_program(ast, Device[device].renderer).opts].count("UPCAST") == 2


def run_script(code: str, **env) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                        env={**os.environ, "TEENY_NO_DISK_CACHE": "1", **env})


MATMUL = "import numpy as np\nfrom teeny import Tensor\nx = Tensor(np.ones((64, 64), np.float32), device='LLVM')\n(x @ x).realize()"


def test_debug3_prints_actions_and_noopt_drops_them():
  shown = run_script(MATMUL, DEBUG="3")
  assert shown.returncode == 0, shown.stderr
  assert "UPCAST(" in shown.stderr, shown.stderr
  plain = run_script(MATMUL, DEBUG="3", NOOPT="1")
  assert plain.returncode == 0 and "opts [" in plain.stderr and "UPCAST(" not in plain.stderr, plain.stderr


@pytest.mark.skipif("LLVM" not in DEVICES, reason="LLVM device not available")
def test_llvm_register_tile_becomes_vector_code():
  """DEBUG=7 prints the assembly: the matmul tile's inner loop multiplies and adds whole vectors (ymm/zmm)."""
  out = run_script(MATMUL, DEBUG="7")
  assert out.returncode == 0, out.stderr
  vector_ops = [line for line in out.stderr.splitlines() if ("vmulps" in line or "vfmadd" in line or "vaddps" in line)
                and ("%ymm" in line or "%zmm" in line)]
  assert len(vector_ops) >= 4, out.stderr[-3000:]


COLUMN_REDUCES = """import numpy as np
from teeny import Tensor
x = np.random.default_rng(0).standard_normal((256, 512)).astype(np.float32)
t = Tensor(x, device='LLVM').realize()
assert (t.max(0).numpy() == x.max(0)).all()
assert (t.int().sum(0).numpy() == x.astype(np.int32).sum(0)).all()
assert (t.argmax(0).numpy() == x.argmax(0)).all()
assert ((t > 1).any(0).numpy() == (x > 1).any(0)).all()
"""


def test_llvm_column_reduces_vectorize_across_their_upcast_lanes():
  """A max, an int sum, an argmax or an any over the rows of a matrix: the heuristics upcast the columns, and the
  accumulators' copies become vector code. LLVM's loop vectorizer, which may reorder these reduces (unlike a
  float sum), split each accumulator along the row loop instead, reading a column with gathers: x.max(0) of
  4096x4096 ran 2.6x slower, an int32 sum(0) 5x, a max-pool gradient 3x. The renderer keeps the loop vectorizer
  off such loops (!llvm.loop metadata). DEBUG=7 prints the assembly: packed maximums, no gathers."""
  out = run_script(COLUMN_REDUCES, DEBUG="7")
  assert out.returncode == 0, out.stderr[-3000:]
  assert "llvm.loop.vectorize.enable" in out.stderr
  assert "gather" not in out.stderr, [line for line in out.stderr.splitlines() if "gather" in line][:5]
  assert any("maxps" in line and "mm" in line for line in out.stderr.splitlines()), out.stderr[-3000:]


@pytest.mark.parametrize("device", DEVICES)
def test_big_sum_splits_into_two_kernels(device):
  x = rng.random(1 << 16).astype(np.float32)
  t = Tensor(x, device=device).realize()
  GlobalCounters.reset()
  got = t.sum().numpy()
  assert GlobalCounters.kernel_count == 2  # partial sums over all cores, then their sum
  np.testing.assert_allclose(got, x.astype(np.float64).sum(), rtol=1e-5)
  small = Tensor(x[:1000], device=device).realize()
  GlobalCounters.reset()
  small.sum().realize()
  assert GlobalCounters.kernel_count == 1


@pytest.mark.parametrize("device", DEVICES)
def test_split_sum_gradient_and_keepdim(device):
  x = rng.random((2, 1 << 15)).astype(np.float32)
  t = Tensor(x, device=device, requires_grad=True)
  s = t.sum(1, keepdim=True)
  assert s.shape == (2, 1)
  (s * Tensor([[1.0], [2.0]], device=device)).sum().backward()
  np.testing.assert_allclose(s.numpy(), x.astype(np.float64).sum(1, keepdims=True), rtol=1e-5)
  np.testing.assert_array_equal(t.grad.numpy(), np.broadcast_to(np.array([[1.0], [2.0]], np.float32), x.shape))


@pytest.mark.skipif("LLVM" not in DEVICES, reason="LLVM device not available")
def test_beam_searches_once_then_uses_the_cached_choice(tmp_path):
  code = ("import numpy as np\nfrom teeny import Tensor\nx = np.arange(512, dtype=np.float32).reshape(16, 32)\n"
          "t = Tensor(x, device='LLVM')\nassert np.array_equal(((t * 2 + 1) @ t.T).numpy(), (x * 2 + 1) @ x.T)")
  env = {"BEAM": "1", "DEBUG": "2", "TEENY_CACHE_DIR": str(tmp_path)}
  first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={**os.environ, **env})
  assert first.returncode == 0, first.stderr
  assert "BEAM=1: chose" in first.stderr, first.stderr
  again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={**os.environ, **env})
  assert again.returncode == 0 and "BEAM=1: cached choice" in again.stderr and "BEAM=1: chose" not in again.stderr, again.stderr


@pytest.mark.skipif("LLVM" not in DEVICES, reason="LLVM device not available")
def test_beam_timing_leaves_an_in_place_output_alone(tmp_path):
  # one kernel stores g and updates p in place (p read and written): BEAM times each candidate three times, and on
  # the real p that applied the update once per run (p off by hundreds); the timings now write copies
  code = ("import numpy as np\nfrom teeny import Tensor\nrng = np.random.default_rng(3)\n"
          "a, b = rng.normal(size=(16, 8)).astype(np.float32), rng.normal(size=(8, 12)).astype(np.float32)\n"
          "p = Tensor(np.ones((16, 12), np.float32), device='LLVM').realize()\ng = Tensor(a, device='LLVM') @ Tensor(b, device='LLVM')\n"
          "p.assign(p - 0.5 * g)\nTensor.realize_all(p, g)\n"
          "np.testing.assert_allclose(p.numpy(), 1 - 0.5 * (a @ b), rtol=1e-5, atol=1e-5)\n"
          "np.testing.assert_allclose(g.numpy(), a @ b, rtol=1e-5, atol=1e-5)")
  env = {"BEAM": "1", "DEBUG": "2", "TEENY_CACHE_DIR": str(tmp_path)}
  run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={**os.environ, **env})
  assert run.returncode == 0 and "BEAM=1: chose" in run.stderr, run.stderr


def test_debug2_places_every_kernel_on_the_roofline():
  """Without a cache the ceilings are unknown: each line says so, and the summary at exit gives every kernel its
  share (tests/test_debug.py has the cached case)."""
  out = run_script(MATMUL, DEBUG="2")
  assert out.returncode == 0, out.stderr
  kernel_lines = [line for line in out.stderr.splitlines() if line.startswith("*** LLVM")]
  assert kernel_lines and all(line.endswith("roofline at exit)") for line in kernel_lines), out.stderr
  assert "roofline of LLVM, measured after the program ran" in out.stderr
  summary = out.stderr[out.stderr.index("kernels on LLVM by total time"):].splitlines()[1:]
  assert len(summary) == len({line.split()[3] for line in kernel_lines})
  assert all(("% of mem" in line or "% of FLOPS" in line) for line in summary), out.stderr


def test_overlapping_pooling_gradient_unrolls_its_folded_columns():
  """max_pool2d(3, 2, padding=1)'s gradient adds shifted, strided copies into the input folded by the stride
  (..., rows, 2, rows, 2), each copy landing in one column: on LLVM the heuristics unroll both short column axes
  (and take two lanes of the outermost axis), so each copy's padding check of its column folds to a constant. The
  input is folded unpadded (12 = 6 x 2), so the gradient is that kernel's buffer, reshaped: no copy follows it.
  The result is unchanged."""
  device = "LLVM"
  from test_nn_functional import np_max_pool_grad
  x, g = rand(4, 2, 12, 12), rand(4, 2, 6, 6)
  tx = Tensor(x, device=device, requires_grad=True).realize()
  out = tx.max_pool2d(3, 2, padding=1).realize()
  grad = out.gradient(tx, gradient=Tensor(g, device=device))[0]
  items, *_ = create_schedule((grad.uop,), (device,))
  shapes = [Kernel(it.ast).full_shape for it in items]
  assert len(items) == 2 and shapes[-1][-4:] == (6, 2, 6, 2), shapes  # (the first maxima's places, then the adjoint)
  adjoint = items[-1:]
  upcasts = [o for o in get_program(adjoint[0].ast, Device[device].renderer).opts if o.op == "UPCAST"]
  assert sorted(o.amount for o in upcasts) == [2, 2, 2], upcasts
  np.testing.assert_allclose(grad.numpy(), np_max_pool_grad(x, g, 3, 2, 1), rtol=1e-6, atol=1e-6)


def test_a_pooling_window_is_unrolled_whole_and_not_tiled_into_strided_vectors(monkeypatch):
  """On LLVM a reduce over a few elements in all (max_pool2d(3, 2, padding=1)'s 3x3 window,
  Tuning.small_reduce_unroll) is unrolled whole, in the forward max and in the gradient's pick of each window's
  maximum, and no output axis is upcast: a vector of outputs that each read a stride-2 window was a gather per
  element, 2.2x slower. A matmul's reduce of 64 keeps its loop. A Tuning with a smaller bound leaves the window a
  loop. Results unchanged."""
  device = "LLVM"
  from test_nn_functional import np_max_pool_grad, np_pool
  x, g = rand(2, 4, 12, 12), rand(2, 4, 6, 6)
  tx = Tensor(x, device=device, requires_grad=True).realize()
  out = tx.max_pool2d(3, 2, padding=1)
  grad = out.gradient(tx, gradient=Tensor(g, device=device))[0]
  items, *_ = create_schedule((grad.uop,), (device,))
  window_kernels = [it.ast for it in items if Kernel(it.ast).full_shape[-2:] == (3, 3)]
  assert len(window_kernels) == 2, [Kernel(it.ast).full_shape for it in items]  # the forward max, the pick
  for ast in window_kernels:
    opts = get_program(ast, Device[device].renderer).opts
    assert sorted((o.op, o.amount) for o in opts) == [("UNROLL", 0), ("UNROLL", 0)], opts
  matmul = only_kernel(Tensor(rand(8, 64), device=device) @ Tensor(rand(64, 8), device=device))
  assert not any(o.op == "UNROLL" and o.amount == 0 for o in get_program(matmul.ast, Device[device].renderer).opts)
  np.testing.assert_equal(out.numpy(), np_pool(x, 3, 2, 1))
  np.testing.assert_allclose(grad.numpy(), np_max_pool_grad(x, g, 3, 2, 1), rtol=1e-6, atol=1e-6)
  use_tuning(monkeypatch, device, small_reduce_unroll=8)
  assert not any(o.op == "UNROLL" for o in get_program(window_kernels[0], Device[device].renderer).opts)


def test_a_cat_along_rows_splits_its_loop_at_the_pieces_edges():
  """An elementwise kernel padded along its innermost axis at edges that are multiples of a long stretch (a cat of
  two 64-wide rows) splits that axis at them on LLVM, so which input a loop reads depends on the outer index
  alone; edges without a long common stretch (a 3-wide piece beside them) are left alone. Results unchanged."""
  a, b, c = rand(8, 64), rand(8, 64), rand(8, 3)
  ta, tb, tc = (Tensor(x, device="LLVM").realize() for x in (a, b, c))
  split = get_program(only_kernel(ta.cat(tb, dim=1)).ast, Device["LLVM"].renderer).applied_opts
  assert "split(1,64)" in split, split
  unsplit = get_program(only_kernel(ta.cat(tb, tc, dim=1)).ast, Device["LLVM"].renderer).applied_opts
  assert not any(str(o).startswith("split") for o in unsplit), unsplit
  np.testing.assert_equal(ta.cat(tb, dim=1).numpy(), np.concatenate([a, b], 1))
  np.testing.assert_equal(ta.cat(tb, tc, dim=1).numpy(), np.concatenate([a, b, c], 1))


def test_a_padded_copy_takes_two_lanes_where_a_cat_does_not():
  """On LLVM a copy whose every load is padded by a few elements (x.pad(1), which max_pool2d's and a convolution's
  weight gradient materialize) takes two lanes along its innermost and outermost axes, sharing the padding checks.
  A cat's pieces are long stretches, and a kernel with a plain load beside the padded one vectorizes that load:
  neither gets them. Results unchanged."""
  x = rand(4, 3, 10, 10)
  tx = Tensor(x, device="LLVM").realize()
  def upcasts(t): return [o for o in get_program(only_kernel(t).ast, Device["LLVM"].renderer).opts if o.op == "UPCAST"]
  padded = tx.pad(((0, 0), (0, 0), (1, 1), (1, 1)))
  assert sorted(o.amount for o in upcasts(padded)) == [2, 2]
  rows, more_rows = Tensor(rand(32, 64), device="LLVM").realize(), Tensor(rand(32, 64), device="LLVM").realize()
  assert upcasts(rows.cat(more_rows, dim=0)) == [] and upcasts(tx.pad(((0, 0), (0, 0), (0, 0), (1, 0)))[..., :-1] + tx) == []
  np.testing.assert_equal(padded.numpy(), np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))))
  np.testing.assert_equal(rows.cat(more_rows, dim=0).numpy(), np.concatenate([rows.numpy(), more_rows.numpy()]))


@pytest.mark.parametrize("device", DEVICES)
def test_big_conv_relays_its_filters_out_and_matches_numpy(device):
  """A convolution big enough for register tiles first copies its filters with the output channel innermost
  (one small kernel), then convolves in one kernel; the result is numpy's."""
  x, w = rand(4, 16, 16, 16), rand(32, 16, 3, 3)
  tx, tw = Tensor(x, device=device).realize(), Tensor(w, device=device).realize()
  GlobalCounters.reset()
  out = tx.conv2d(tw, padding=1).realize()
  assert GlobalCounters.kernel_count == 2
  windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3))
  want = np.einsum("nchwij,ocij->nohw", windows.astype(np.float64), w.astype(np.float64))
  np.testing.assert_allclose(out.numpy(), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_long_sum_over_a_big_product_runs_in_slices(device, monkeypatch):
  """A big matmul sums its reduce axis in slices (each core's slice of the inputs stays in its cache), then adds
  the slices up: two kernels, numpy's result, and gradients as before. Thresholds lowered to keep the test small."""
  use_tuning(monkeypatch, device, chunk_min_product=1 << 12, chunk_min_reduced=256, chunk_size=64)
  check_matmul_and_grads(rand(8, 256), rand(256, 16), device, kernels=2)


@pytest.mark.parametrize("device", DEVICES)
def test_matmul_whose_right_matrix_outgrows_the_cache_runs_in_slices(device, monkeypatch):
  """A matmul whose right-hand matrix (what each row of outputs reads) is past Tuning.slice_max_bytes sums slices of
  the reduce axis of at most slice_target_bytes apart: the fewest slices that divide the axis (96 * 64 floats are 24 KiB:
  3 slices of 8), then their sum. An axis with no such divisor stays one kernel. Thresholds lowered to keep it small."""
  import teeny.schedule.shaping as shaping
  use_tuning(monkeypatch, device, slice_min_product=1 << 12, slice_max_bytes=16 << 10, slice_target_bytes=8 << 10)
  product = Tensor.empty(8, 96, 64, device=device).uop
  assert shaping._reduce_chunks(product, (1,), Device[device].renderer.tuning) == 3
  check_matmul_and_grads(rand(8, 96), rand(96, 64), device, kernels=2)
  check_matmul_and_grads(rand(8, 97), rand(97, 64), device, kernels=1)  # 97 is prime: 97 slices would be too many
  check_matmul_and_grads(rand(8, 96), rand(96, 32), device, kernels=1)  # 12 KiB: fits


# Kernels with OpenCL vectors or work-groups forced on (what a GPU gets) are built in a child process: drivers
# may abort the process building code they never get otherwise. PoCL 3.0's LLVM 14 doesn't know AMD Zen 4: it
# compiles for znver3 (no AVX-512) while it reports 16-wide native vectors and links its AVX-512 builtins. The
# front end warns that a float16 argument "without 'avx512f' enabled changes the ABI", and generating code for a
# vstore16 (vload16 builds) then dies in LLVM's legalizer ("Do not know how to scalarize this operator's
# operand!", or a segfault) after minutes; a PoCL cache left by that crash makes the next process fail with
# INVALID_KERNEL_NAME and abort at exit. The child builds the source first and stops at that warning, so the
# test xfails in a second instead of crashing after minutes. 8 lanes (AVX2) build everywhere.
_POCL_ZEN4 = ("PoCL 3.0 (LLVM 14) on AMD Zen 4 can't build 16-wide vector stores: it compiles for znver3, without "
              "AVX-512, while it reports 16-wide native vectors")
POCL_ZEN4_BUGS = {"without 'avx512f' enabled changes the ABI": _POCL_ZEN4,
                  "Do not know how to scalarize this operator's operand!": _POCL_ZEN4}
VECTOR_CASES = {"elementwise": (elementwise, [Opt("UPCAST", 1, 8)]),
                "matmul": (matmul, [Opt("UPCAST", 1, 16), Opt("UPCAST", 0, 4)]),
                "rowsum": (rowsum, [Opt("UPCAST", 0, 4), Opt("UNROLL", 1, 3)])}

_VECTOR_CHILD = """
import copy, sys
sys.path.insert(0, "tests")
import numpy as np
from teeny import Device
from teeny.codegen import get_program
from teeny.engine.runner import CompiledRunner
from test_opt import VECTOR_CASES, only_kernel, run_with
name, widths = {name!r}, {widths!r}
build, opts = VECTOR_CASES[name]
renderer = copy.copy(Device["CL"].renderer)
renderer.vector_widths, renderer.native_vector_width = widths, {{}}
renderer.vector_alu = False  # (what a GPU gets: vector loads and stores, scalar arithmetic)
out = build("CL")
item = only_kernel(out)
spec = get_program(item.ast, renderer, opts)
import pyopencl as cl  # the front end's warnings first (see POCL_ZEN4_BUGS): code generation may crash after minutes
dev = Device["CL"]
log = cl.Program(dev.ctx, spec.src).build().get_build_info(dev.cl_device, cl.program_build_info.LOG)
if "without 'avx512f' enabled changes the ABI" in log: sys.exit(log)
widest = max(w for w in widths if f"vload{{w}}" in spec.src)
assert widest == widths[0] or name == "rowsum", spec.src
assert "vstore" in spec.src or name == "rowsum", spec.src
CompiledRunner("CL", spec)(item.bufs, item.vals)
got = item.bufs[0].numpy().reshape(out.shape)
# Same sums in the same order as the scalar kernel, but a compiler may fuse multiply-adds differently in vector
# and scalar code (Intel's runtime does): one float32 rounding per term apart, not more.
np.testing.assert_allclose(got, run_with(out, opts), rtol=1e-5, atol=1e-5)
np.testing.assert_allclose(got, out.numpy(), rtol=1e-4, atol=1e-4)
print("vload" + str(widest))
"""


@pytest.mark.skipif("CL" not in DEVICES, reason="CL device not available")
@pytest.mark.parametrize("name", VECTOR_CASES)
def test_opencl_vector_loads_and_stores(name):
  """With vector widths (what a GPU gets), neighbouring elements that upcasting made are loaded and stored as
  OpenCL vectors (vloadN/vstoreN, up to 8 lanes), and the kernel computes what the scalar one does and numpy."""
  out = run_in_child(_VECTOR_CHILD.format(name=name, widths=(8, 4, 2)), driver_bugs=POCL_ZEN4_BUGS)
  # (the row sum's loads are runs of 3 along its unrolled reduce: 2 lanes and 1)
  assert out.stdout.split()[-1] == ("vload2" if name == "rowsum" else "vload8"), out.stdout


@pytest.mark.skipif("CL" not in DEVICES, reason="CL device not available")
def test_opencl_16_wide_vector_stores():
  """A 16-wide register tile stored with vstore16 computes what the scalar kernel does (xfails on the driver bug
  above, which would otherwise have aborted the test run)."""
  out = run_in_child(_VECTOR_CHILD.format(name="matmul", widths=(16,)), driver_bugs=POCL_ZEN4_BUGS)
  assert out.stdout.split()[-1] == "vload16", out.stdout


class _FakeCLInfo:
  """What OpenCLRenderer reads of a device: a GPU whose native vectors are 4 floats and 1 int."""
  has_fp16, max_work_group_size, is_gpu = False, 256, True
  native_vector_width_float, native_vector_width_int = 4, 1


@pytest.mark.skipif("CL" not in DEVICES, reason="CL device not available")
def test_opencl_vectors_are_never_wider_than_the_device_computes_natively():
  """The renderer asks the device for its native vector widths: a 16-wide tile of floats on a device with 4-wide
  float vectors is loaded and stored 4 lanes at a time, and ints on a device without int vectors stay scalar.
  (Rendered only: no driver builds it.)"""
  from teeny.renderer.cstyle import OpenCLRenderer
  renderer = OpenCLRenderer(_FakeCLInfo())
  floats = get_program(only_kernel(matmul("CL")).ast, renderer, [Opt("UPCAST", 1, 16), Opt("UPCAST", 0, 4)]).src
  assert "vload4" in floats and "vstore4" in floats, floats
  assert not any(f"{op}{w}" in floats for op in ("vload", "vstore") for w in (8, 16)), floats
  a = Tensor(np.arange(16 * 64, dtype=np.int32).reshape(16, 64), device="CL").realize()
  ints = get_program(only_kernel(a * 3 + 1).ast, renderer, [Opt("UPCAST", 0, 8)]).src
  assert "vload" not in ints and "vstore" not in ints, ints
  info = Device["CL"].info  # the real device's answer is what its renderer keeps
  assert Device["CL"].renderer.native_vector_width[dtypes.float32] == info.native_vector_width_float >= 1


_GROUP_CHILD = """
import copy, sys
sys.path.insert(0, "tests")
import numpy as np
from teeny import Device, Tensor
from teeny.codegen import get_program
from teeny.engine.runner import CompiledRunner
from test_opt import only_kernel, rand
renderer = copy.copy(Device["CL"].renderer)
renderer.is_gpu = True
x = rand(4, 2048)
out = Tensor(x, device="CL").realize().sum(1)
item = only_kernel(out)
spec = get_program(item.ast, renderer)
assert [o.op for o in spec.opts] == ["GROUP"] and "barrier(CLK_LOCAL_MEM_FENCE)" in spec.src, spec.opts
CompiledRunner("CL", spec)(item.bufs, item.vals)
np.testing.assert_allclose(item.bufs[0].numpy(), x.astype(np.float64).sum(1), rtol=1e-5)
"""


@pytest.mark.skipif("CL" not in DEVICES, reason="CL device not available")
def test_gpu_heuristics_group_a_reduce_with_few_outputs():
  """On a GPU (faked here: the heuristics only read the renderer) a reduce with few long rows is split across a
  work-group, and the grouped kernel still computes the row sums (run on this machine's OpenCL device, in a
  child process: GPU-style code on a CPU driver)."""
  run_in_child(_GROUP_CHILD)


@pytest.mark.parametrize("device", DEVICES)
def test_matmul_with_few_columns_copies_its_right_operand_column_major(device):
  """x @ w with w of shape (512, 10) (a classifier) first copies w column-major (one small kernel), so its kernel
  reads both operands along k and tiles all 10 outputs; results and gradients are numpy's. x @ w.T is
  column-major already: one kernel."""
  x, w = rand(64, 512), rand(512, 10)
  tx = check_matmul_and_grads(x, w, device, kernels=2)
  tv = Tensor(w.T.copy(), device=device).realize()
  GlobalCounters.reset()
  np.testing.assert_allclose((tx.detach() @ tv.T).numpy(), x @ w, rtol=1e-4, atol=1e-4)
  assert GlobalCounters.kernel_count == 1


def test_heuristic_tiles_for_few_columns(monkeypatch):
  """x @ w.T with 10 rows in w tiles all 10 outputs of a row (a dot tile along k); x.T @ g with g's 10 columns
  puts the vector along x's 512 contiguous columns, not along g's 10 (the scheduler's copy of a narrow right
  matrix switched off, schedule/shaping.py: this is about the heuristic on the product as it is)."""
  renderer = Device["LLVM"].renderer
  x, w = Tensor(rand(64, 512), device="LLVM").realize(), Tensor(rand(10, 512), device="LLVM").realize()
  dot = get_program(only_kernel(x @ w.T).ast, renderer)
  assert Opt("UPCAST", 1, 10) in dot.opts, dot.opts
  h, g = Tensor(rand(256, 512), device="LLVM").realize(), Tensor(rand(256, 10), device="LLVM").realize()
  # the weight gradient's product as autograd builds it
  use_tuning(monkeypatch, "LLVM", matmul_relayout_max_n=0)
  grad = get_program(only_kernel((h.T.unsqueeze(-1) * g.unsqueeze(0)).sum(1)).ast, renderer)
  vector = renderer.vector_width
  assert grad.opts[0] == Opt("UPCAST", 0, 2 * vector) and grad.opts[1].amount == 5, grad.opts


def test_heuristic_tile_rows_fit_l1():
  """A padded convolution's tile row is one image: it reads a cache line per channel and kernel row over the
  reduce (64 x 3 lines, 12 KB), so only 2 rows fit beside each other in L1 and the tile widens over the filters
  instead (all 64). A matmul's row reads one row of its left matrix (2 KB): 8 rows, as before."""
  renderer = Device["LLVM"].renderer
  vector = renderer.vector_width
  x, w = Tensor(rand(8, 64, 16, 16), device="LLVM").realize(), Tensor(rand(64, 64, 3, 3), device="LLVM").realize()
  items, *_ = create_schedule([x.conv2d(w, padding=1).uop], ["LLVM"])  # the filter relayout, then the convolution
  conv = get_program(items[-1].ast, renderer)
  rows = [o for o in conv.opts if o.axis == 0]
  filters = [o.amount for o in conv.opts if o.axis == 1]
  assert rows == [Opt("UPCAST", 0, 2)] and np.prod(filters) == 64 and 2 * vector in filters, conv.opts
  a, b = Tensor(rand(256, 512), device="LLVM").realize(), Tensor(rand(512, 512), device="LLVM").realize()
  matmul = get_program(only_kernel(a @ b).ast, renderer)
  assert Opt("UPCAST", 0, 8) in matmul.opts, matmul.opts


def test_heuristic_dot_tile_of_a_convolution_weight_gradient():
  """The weight gradient of a convolution reads the image and the output gradient along the same pixel rows (a
  dot tile). The tile spans filters (what the output gradient moves along) and kernel rows (the image), not kernel
  rows and kernel columns: neighbouring kernel columns would be overlapping loads of one image row. (Rows 34 wide:
  one a multiple of 4, or up to 32 wide, splits into lanes instead: test_conv_weight_gradient_keeps_partial_sums_in_lanes.)"""
  x = Tensor(rand(2, 16, 34, 34), device="LLVM", requires_grad=True).realize()
  w = Tensor(rand(16, 16, 3, 3), device="LLVM", requires_grad=True).realize()
  g = Tensor(rand(2, 16, 34, 34), device="LLVM").realize()
  (x.conv2d(w, padding=1) * g).sum().backward()
  items, *_ = create_schedule([w.grad.uop], ["LLVM"])
  tile = get_program(items[-1].ast, Device["LLVM"].renderer).opts
  assert tile == [Opt("UPCAST", 0, 8), Opt("UPCAST", 2, 3)], tile  # (16 filters, 16 channels, 3 rows, 3 columns, ...)
  ref_x, ref_w, ref_g = (t.numpy().astype(np.float64) for t in (x, w, g))
  windows = np.lib.stride_tricks.sliding_window_view(np.pad(ref_x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3))
  np.testing.assert_allclose(w.grad.numpy(), np.einsum("nchwij,nohw->ocij", windows, ref_g), rtol=1e-4, atol=1e-3)


def test_heuristics_for_a_convolution_input_gradient():
  """A convolution's input gradient is a convolution of the output's gradient with the flipped filters (ops/nn.py's
  gradient rule): a register tile like the forward convolution's, and no buffer of every window (9x the input)."""
  x = Tensor(rand(2, 16, 40, 40), device="LLVM", requires_grad=True).realize()
  w = Tensor(rand(16, 16, 3, 3), device="LLVM", requires_grad=True).realize()
  g = Tensor(rand(2, 16, 40, 40), device="LLVM").realize()
  (x.conv2d(w, padding=1) * g).sum().backward()
  items, *_ = create_schedule([x.grad.uop], ["LLVM"])
  assert max(item.bufs[0].size for item in items) == x.numel()
  convs = [get_program(item.ast, Device["LLVM"].renderer) for item in items if item.ast.src[0].src[2].op is Ops.REDUCE_AXIS]
  assert len(convs) == 1 and [o.op for o in convs[0].opts] == ["UPCAST", "UPCAST"], [c.opts for c in convs]
  ref_x, ref_w, ref_g = (t.numpy().astype(np.float64) for t in (x, w, g))
  padded_grad = np.zeros((2, 16, 42, 42))
  for i in range(3):
    for j in range(3): padded_grad[:, :, i:i + 40, j:j + 40] += np.einsum("nohw,oc->nchw", ref_g, ref_w[:, :, i, j])
  np.testing.assert_allclose(x.grad.numpy(), padded_grad[:, :, 1:41, 1:41], rtol=1e-4, atol=1e-3)


def test_heuristics_tile_the_gradients_of_a_constant_loss_seed():
  """x.conv2d(w).sum().backward(): the upstream gradient is a constant, so the input gradient's reduce reads only w
  and the weight gradient's only x, each broadcast over output axes no input moves along. Those axes are tiled
  (a vector of outputs per loaded value, and rows): without it both ran as scalar loops (1.4 s and 0.37 s for
  16x64x56x56, now 37 and 42 ms). Values against numpy."""
  xn, wn = rand(2, 8, 12, 12), rand(8, 8, 3, 3)
  x = Tensor(xn, device="LLVM", requires_grad=True).realize()
  w = Tensor(wn, device="LLVM", requires_grad=True).realize()
  x.conv2d(w, padding=1).sum().backward()
  for grad in (x.grad, w.grad):
    items, *_ = create_schedule([grad.uop], ["LLVM"])
    reduces = [get_program(it.ast, Device["LLVM"].renderer) for it in items if it.ast.src[0].src[2].op is Ops.REDUCE_AXIS]
    # (the weight gradient: its lanes, then their sum, test_conv_weight_gradient_keeps_partial_sums_in_lanes)
    assert len(reduces) in (1, 2) and any(o.op == "UPCAST" for o in reduces[0].opts), [r.opts for r in reduces]
  want_dx = np.zeros((2, 8, 14, 14))
  for i in range(3):
    for j in range(3): want_dx[:, :, i:i + 12, j:j + 12] += wn[:, :, i, j].sum(0)[None, :, None, None]
  want_dw = np.stack([np.pad(xn, ((0, 0), (0, 0), (1, 1), (1, 1)))[:, :, i:i + 12, j:j + 12].sum((0, 2, 3))
                      for i in range(3) for j in range(3)], -1).reshape(8, 3, 3)[None].repeat(8, 0)
  np.testing.assert_allclose(x.grad.numpy(), want_dx[:, :, 1:13, 1:13], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(w.grad.numpy(), want_dw, rtol=1e-5, atol=1e-4)


def test_heuristic_window_gradient_lanes_share_the_padding_checks():
  """Summing overlapping windows back into an image through the general window view (unfold's gradient) reads
  through padded views: lanes go along the outermost axis (images x channels), where they share the index math and
  the padding checks, not along the image rows, where every lane would be a gated load of its own (4x slower
  measured). (Pooling's gradients have rules of their own: ops/pooling.py.)"""
  x = Tensor(rand(2, 16, 12, 12), device="LLVM", requires_grad=True).realize()
  out = x.unfold(3, 3, 2)  # (2, 16, 12, 5, 3): windows of 3 along the rows, every second column
  g = Tensor(rand(*out.shape), device="LLVM").realize()
  (out * g).sum().backward()
  items, *_ = create_schedule([x.grad.uop], ["LLVM"])
  last = get_program(items[-1].ast, Device["LLVM"].renderer)
  assert last.opts == [Opt("UPCAST", 0, Device["LLVM"].renderer.vector_width)], last.opts
  ref_g = g.numpy()
  want = np.zeros(x.shape, np.float32)
  for j in range(out.shape[3]): want[..., 2 * j:2 * j + 3] += ref_g[..., j, :]
  np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("width,lanes", [(16, 8), (12, 4), (7, 7)])
def test_conv_weight_gradient_keeps_partial_sums_in_lanes(width, lanes):
  """A convolution's weight gradient splits each output row into (row / lanes, lanes), 8 or 4 lanes when they
  divide it, the whole row when it is short: lanes of partial sums over everything else reduced, a vector of
  accumulators the heuristics upcast (with rows of output channels and kernel columns), summed across by a
  second, small kernel. LLVM summed across its vectors at the end of every image row before (27-29 ms for
  16x64x56x56 3x3, now 17-20), and rows under 32 wide got no tile at all (16x128x28x28: 530 ms, now 29; 14x14:
  460 -> 47). Values against torch's rule: the correlation of the input with the output's gradient."""
  xn, wn, gn = rand(2, 4, width, width), rand(6, 4, 3, 3), rand(2, 6, width, width)
  x = Tensor(xn, device="LLVM").realize()
  w = Tensor(wn, device="LLVM", requires_grad=True).realize()
  x.conv2d(w, padding=1).backward(Tensor(gn, device="LLVM"))
  items, *_ = create_schedule([w.grad.uop], ["LLVM"])
  reduces = [get_program(it.ast, Device["LLVM"].renderer) for it in items if it.ast.src[0].src[2].op is Ops.REDUCE_AXIS]
  assert len(reduces) == 2, [r.name for r in reduces]  # (the lanes, then their sum)
  upcasts = [o for o in reduces[0].opts if o.op == "UPCAST"]
  assert upcasts and upcasts[0].amount == lanes, reduces[0].opts
  padded = np.pad(xn, ((0, 0), (0, 0), (1, 1), (1, 1)))
  want = np.zeros((6, 4, 3, 3))
  for i in range(3):
    for j in range(3): want[:, :, i, j] = np.einsum("nohw,nchw->oc", gn, padded[:, :, i:i + width, j:j + width])
  np.testing.assert_allclose(w.grad.numpy(), want, rtol=1e-4, atol=1e-4)


def test_conv_weight_gradient_tiles_kernel_rows_not_columns():
  """The weight gradient's tile, beside its lanes along the image row: rows of output channels and of kernel rows,
  not of kernel columns. A kernel column shifts the image by one element, as the next lane does, so a tile over it
  loads overlapping, unaligned vectors of one image row (16x64x56x56 3x3 on a Zen 4: 30 ms with 3 kernel
  columns, 21 with 3 kernel rows)."""
  from teeny.codegen.heuristics import _element_step
  x = Tensor(rand(2, 4, 16, 16), device="LLVM").realize()
  w = Tensor(rand(6, 4, 3, 3), device="LLVM", requires_grad=True).realize()
  x.conv2d(w, padding=1).backward(Tensor(rand(2, 6, 16, 16), device="LLVM"))
  items, *_ = create_schedule([w.grad.uop], ["LLVM"])
  lanes = next(it for it in items if it.ast.src[0].src[2].op is Ops.REDUCE_AXIS)  # (then their sum)
  k = optimize(Kernel(lanes.ast), Device["LLVM"].renderer)
  lane, *rows = [a for a in k.axes_of("upcast") if k.full_shape[a] == 8] + [a for a in k.axes_of("upcast") if k.full_shape[a] != 8]
  for view in k.input_views():
    lane_step = _element_step(view, k, lane)
    assert [a for a in rows if lane_step and _element_step(view, k, a) == lane_step] == [], k.applied
  assert any(k.full_shape[a] == 3 for a in rows), k.applied  # (3 kernel rows)


def test_a_masked_sum_steps_its_accumulator_under_the_mask(device):
  """A sum of where(c, x, 0) (a transposed convolution's products, masked outside its input) is lowered as
  where(c, acc + x, acc), which the CPU runs as a masked fused multiply-add instead of zeroing each product first
  (16x64x56x56 3x3 on a Zen 4: 33 -> 26 ms, the plain convolution's time). The same bits: what the mask leaves
  out never reaches the sum (inf, nan), and a sum of -0.0s is +0.0 as before (the accumulator starts at +0.0)."""
  x = Tensor(np.array([1., np.inf, np.nan, -0.5, 2.], np.float32), device=device)
  keep = Tensor(np.array([True, False, False, True, True]), device=device)
  masked = x.where(keep, 0)
  ast = only_kernel(masked.sum()).ast
  program = get_program(ast, Device[device].renderer).program
  assert any(u.op is Ops.ASSIGN and u.src[1].op is Ops.WHERE for u in program)
  assert masked.sum().item() == 2.5
  zeros = Tensor(np.array([-0., -0., -0.], np.float32), device=device)
  for mask in ([True, True, True], [False, True, False], [False, False, False]):
    total = zeros.where(Tensor(np.array(mask), device=device), 0).sum().numpy()
    assert total == 0 and not np.signbit(total), (mask, total)


def test_max_pool_gradient_loops_over_its_windows(device):
  """max_pool2d(2)'s input gradient is one elementwise kernel that stores the input's shape as windows, (N, C,
  H/2, 2, W/2, 2): the same bytes in the same order. The PAD by nothing that marks pooling's pieces as copies
  (ops/join.py _copy_result) hid the reshape under it, and the kernel looped over (N, C, H, W), finding each
  element's window by division and remainder (16x64x112x112 on a Zen 4: 20 ms, now 6). Values against numpy."""
  xn, gn = rand(2, 8, 16, 16), rand(2, 8, 8, 8)
  x = Tensor(xn, device=device, requires_grad=True).realize()
  x.max_pool2d(2).backward(Tensor(gn, device=device))
  items, *_ = create_schedule([x.grad.uop], [device])
  assert len(items) == 1
  renderer = Device[device].renderer
  if not renderer.has_threads:  # (OpenCL folds the six axes into three ids, which takes divisions of its own)
    assert not [u.op for u in get_program(items[0].ast, renderer).program if u.op in (Ops.IDIV, Ops.MOD)]
  windows = xn.reshape(2, 8, 8, 2, 8, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 8, 8, 8, 4)
  first_max = windows.argmax(-1)
  want = np.zeros_like(windows)
  np.put_along_axis(want, first_max[..., None], gn[..., None], -1)
  want = want.reshape(2, 8, 8, 8, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 8, 16, 16)
  np.testing.assert_array_equal(x.grad.numpy(), want)


def test_an_unrolled_half_sum_adds_its_copies_in_float32(device):
  # UNROLL of a float16 sum rounded each pair of copies to float16 before the float32 accumulator: BEAM could pick a
  # kernel 3 ulps off the loop's (found by tools/opt_fuzz.py); the copies now meet in float32, one rounding at the end
  if not device.startswith("LLVM"): pytest.skip("lowering, the same for every device: checked on LLVM")
  data = np.random.default_rng(3).standard_normal((64, 16)).astype(np.float16)
  out = Tensor(data, device=device).realize().sum(1)
  plain = run_with(out, [])
  for amount in (2, 4, 0):
    unrolled = run_with(out, [Opt("UNROLL", 1, amount)])
    ulp = np.spacing(np.abs(plain).astype(np.float16)).astype(np.float32)
    assert np.all(np.abs(unrolled.astype(np.float32) - plain.astype(np.float32)) <= ulp), amount
  np.testing.assert_allclose(plain.astype(np.float32), data.astype(np.float32).sum(1), rtol=1e-3, atol=1e-3)
