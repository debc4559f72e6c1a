"""Vector code (teeny/codegen/vectorize.py): a CPU OpenCL driver gets kernels written with float8 arithmetic, lane
accumulators for reduces and one exp2; every other device gets what it got before. Results are checked against numpy
on every device, the bits of exp2 between a vectorized and a scalar kernel, and the source on renderers built from
made-up device facts (a GPU, a CPU), since this machine may have neither."""
import re, types
import numpy as np
from teeny import Tensor
from teeny.dtype import dtypes
from teeny.uop import UOp, Ops
from teeny.codegen import get_program
from teeny.codegen.vectorize import vectorize_alu
from teeny.renderer.cstyle import OpenCLRenderer
from teeny.schedule import create_schedule

rng = np.random.default_rng(24)


def same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  return (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))


def test_exp2_has_the_same_bits_in_vector_and_scalar_kernels(device):
  """A value computed in two kernels must have the same bits in both (a max and the comparison with it, a forward
  value and its gradient's copy). PoCL's scalar exp2 and its vector exp2 differ in the last bit for 0.7% of
  arguments, so the OpenCL renderer makes every float32 exp2 one 8-lane call. An odd length is never upcast: its
  kernel is scalar, the even one's a vector kernel on a CPU OpenCL driver."""
  x = np.concatenate([rng.uniform(-150, 130, 1 << 15), rng.standard_normal(1 << 15) * 10]).astype(np.float32)
  x[:8] = [np.inf, -np.inf, np.nan, 0.0, -0.0, -149.5, 127.99, -126.0]
  vector = Tensor(x, device=device).exp2().numpy()
  scalar = Tensor(x[:-1], device=device).exp2().numpy()
  assert same_bits(vector[:-1], scalar).all(), x[:-1][~same_bits(vector[:-1], scalar)][:5]
  with np.errstate(over="ignore"): want = np.exp2(x.astype(np.float64)).astype(np.float32)  # (inf past float32's max)
  np.testing.assert_allclose(vector, want, rtol=3e-7, atol=1.5e-45)  # (a denormal result: to its last step)


def test_sin_of_tiny_values_beside_large_ones_in_a_vector_kernel(device):
  """PoCL 3.0's vector sin is wrong for small arguments when another lane of the vector holds a large one (sin of
  -5.7e-7 came out -0.0093 beside 1e30 in a float8), so sin stays scalar in vector kernels. In float32, sin(x)
  rounds to x itself below about 1e-4."""
  tiny = (10.0 ** rng.uniform(-30, -5, 32) * rng.choice([-1, 1], 32)).astype(np.float32)
  x = np.stack([tiny, np.float32(1e30) * np.sign(tiny)], axis=1).reshape(-1)  # (tiny, large, tiny, large, ...)
  x[:4] = [-5.6619143e-07, 1e30, 1e-20, 2e5]
  got = Tensor(x, device=device).sin().numpy()
  np.testing.assert_array_equal(got[0::2], x[0::2])
  np.testing.assert_allclose(got[1::2], np.sin(x[1::2].astype(np.float64)), rtol=1e-6, atol=1e-7)


def test_vector_comparisons_selects_and_nans_match_numpy(device):
  """Comparisons make bool vectors (OpenCL C: int vectors of -1/0), selects pick by them, max keeps NaN; a
  condition shared by a row's lanes (broadcast along the vectorized axis) must read as -1 too, or every lane would
  take the false side."""
  a = rng.standard_normal((16, 64)).astype(np.float32)
  b = rng.standard_normal((16, 64)).astype(np.float32)
  a[0, :8], b[1, 8:16] = np.nan, np.nan
  a[2, :4], b[2, 4:8] = np.inf, -np.inf
  row = rng.standard_normal((16, 1)).astype(np.float32) > 0
  ta, tb, trow = (Tensor(v, device=device) for v in (a, b, row))
  checks = {
    "relu": (ta.relu(), np.where(np.isnan(a), a, np.maximum(a, 0))),
    "maximum": (ta.maximum(tb), np.maximum(a, b)),
    "where": ((ta > tb).where(ta, tb * 2), np.where(a > b, a, b * 2)),
    "isnan": ((ta != ta).where(1.0, 0.0), np.isnan(a).astype(np.float32)),
    "logic": (((ta < 0) & (tb > 0)).logical_not().where(ta, tb), np.where(~((a < 0) & (b > 0)), a, b)),
    "row condition": (trow.where(ta, tb), np.where(row, a, b)),
    "clip": (ta.clip(-0.5, 0.5), np.clip(a, -0.5, 0.5)),
    "reciprocal": (tb.reciprocal(), np.float32(1) / b),
  }
  for name, (got, want) in checks.items():
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, err_msg=name)


def test_lane_accumulators_match_numpy(device):
  """A reduce along contiguous rows keeps a vector of partial results on a CPU OpenCL driver, combined after its
  loop: sums, maxes with a NaN or -inf in a row, and softmax, against numpy."""
  x = rng.standard_normal((32, 1024)).astype(np.float32)
  x[3, 100], x[4, :] = np.nan, -np.inf
  x[5, 7] = np.inf
  t = Tensor(x, device=device)
  np.testing.assert_allclose(t.sum(1).numpy(), x.astype(np.float64).sum(1), rtol=1e-5, atol=1e-4)
  np.testing.assert_array_equal(t.max(1).numpy(), x.max(1))
  np.testing.assert_array_equal(t.min(1).numpy(), x.min(1))
  finite = x[6:]
  want = np.exp(finite - finite.max(1, keepdims=True))
  np.testing.assert_allclose(Tensor(finite, device=device).softmax(-1).numpy(), want / want.sum(1, keepdims=True), rtol=2e-6, atol=1e-9)


def test_vector_accumulators_of_a_matmul_match_numpy(device):
  a, b = rng.standard_normal((64, 128)).astype(np.float32), rng.standard_normal((128, 96)).astype(np.float32)
  got = (Tensor(a, device=device) @ Tensor(b, device=device)).numpy()
  np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-4)


# ---- the source, on renderers of made-up devices ----

CPU = types.SimpleNamespace(name="a CPU", is_gpu=False, has_fp64=True, max_work_group_size=4096, max_work_item_sizes=(4096,) * 3,
                            local_mem_size=1 << 20, native_vector_width_float=16, native_vector_width_int=16, fma_dtypes=())
GPU = types.SimpleNamespace(name="a GPU", is_gpu=True, has_fp16=True, has_fp64=True, max_work_group_size=1024,
                            max_work_item_sizes=(1024, 1024, 64), local_mem_size=48 << 10, native_vector_width_float=4,
                            native_vector_width_int=4, fma_dtypes=(dtypes.float32,))


def source(t: Tensor, info) -> str:
  items, *_ = create_schedule([t.uop], [t.device])
  return get_program(items[-1].ast, OpenCLRenderer(info)).src


def test_a_cpu_driver_gets_vector_arithmetic_and_a_gpu_does_not():
  a, b, c = (Tensor(rng.standard_normal(1 << 12).astype(np.float32)) for _ in range(3))
  chain = ((a * b + c).relu() * a - b).exp2()
  cpu, gpu = source(chain, CPU), source(chain, GPU)
  assert re.search(r"float8 v\d+ = \(v\d+\*v\d+\);", cpu) and re.search(r"float8 v\d+ = exp2\(v\d+\);", cpu), cpu
  assert re.search(r"int8 v\d+ = \(v\d+<v\d+\);", cpu), cpu
  # PoCL calls vload8/vstore8 out of line: a CPU driver's vectors are built from their lanes
  assert "vload" not in cpu and "vstore" not in cpu and "(data0+v" in cpu, cpu
  # a GPU runs one element per work-item, as before
  assert re.search(r"float v\d+ = exp2\(v\d+\);", gpu) and "float4" not in gpu and "(float8)" not in gpu, gpu


def test_a_cpu_driver_vectorizes_strided_reads_only_for_exp2_and_log2():
  """Vectors of strided loads made a transpose 2x slower on PoCL (its own vectorizer handles a plain copy), but
  x.T.exp() 2.8x faster (the driver leaves exp2 scalar)."""
  x = Tensor(rng.standard_normal((64, 64)).astype(np.float32))
  assert "float8" not in source(x.T.contiguous(), CPU) and "float8" not in source(x.T + x, CPU)
  assert re.search(r"float8 v\d+ = exp2\(v\d+\);", source(x.T.exp(), CPU)), source(x.T.exp(), CPU)


def test_every_float32_exp2_on_a_cpu_driver_is_one_8_lane_call():
  odd = Tensor(rng.standard_normal(1001).astype(np.float32)).exp2()  # (1001 lanes: no vector kernel)
  assert re.search(r"float v\d+ = exp2\(\(float8\)\(v\d+\)\)\.s0;", source(odd, CPU)), source(odd, CPU)
  four = Tensor(rng.standard_normal(4 * 1001).astype(np.float32)).reshape(1001, 4).exp2()
  assert re.search(r"float4 v\d+ = exp2\(\(float8\)\(v\d+, v\d+\)\)\.lo;", source(four, CPU)), source(four, CPU)


def test_sin_stays_scalar_in_a_cpu_drivers_vector_kernel():
  src = source(Tensor(rng.standard_normal(1 << 10).astype(np.float32)).sin(), CPU)
  assert "float8" in src and not re.search(r"float8 v\d+ = sin\(", src), src


def test_a_cpu_driver_sums_rows_into_lane_accumulators():
  src = source(Tensor(rng.standard_normal((64, 1024)).astype(np.float32)).sum(1), CPU)
  assert re.search(r"float8 acc\d+ = ", src) and re.search(r"v\d+ = \(acc\d+\+v\d+\);", src), src
  assert re.search(r"float v\d+ = acc\d+\.s7;", src), src  # (the lanes, combined after the loop)


# ---- the pass itself ----

def var(name: str, dtype=dtypes.float32) -> UOp: return UOp(Ops.DEFINE_VAR, dtype, (), (name, -1.0, 1.0))


def test_lanes_that_differ_stay_scalar():
  x0, x1, y = var("x0"), var("x1"), var("y")
  same = UOp(Ops.VECTORIZE, dtypes.float32.vec(2), (x0 + y, x1 + y))
  joined = vectorize_alu(UOp(Ops.SINK, dtypes.void, (same,))).src[0]
  assert joined.op is Ops.ADD and joined.dtype == dtypes.float32.vec(2), joined
  assert joined.src[0].src == (x0, x1) and joined.src[1].src == (y, y)
  mixed = UOp(Ops.VECTORIZE, dtypes.float32.vec(2), (x0 + y, x1 * y))
  assert vectorize_alu(UOp(Ops.SINK, dtypes.void, (mixed,))).src[0] is mixed
  ints = UOp(Ops.VECTORIZE, dtypes.int32.vec(2), (var("i", dtypes.int32) + 1, var("j", dtypes.int32) + 1))
  assert vectorize_alu(UOp(Ops.SINK, dtypes.void, (ints,))).src[0] is ints  # (integer math stays scalar)


def test_an_update_is_joined_only_with_its_own_accumulator():
  """ASSIGN(acc_j, acc_j + x_j) of every lane becomes one vector update; an update that reads another lane's
  accumulator would leave a scalar accumulator read but never updated, so such lanes stay scalar."""
  rng_ = UOp(Ops.RANGE, dtypes.int32, (UOp.const(dtypes.int32, 0), UOp.const(dtypes.int32, 4)), 0)
  accs = [UOp(Ops.DEFINE_ACC, dtypes.float32, (UOp.const(dtypes.float32, 0.0), rng_), i) for i in range(2)]
  xs = [var("x0"), var("x1")]
  own = tuple(UOp(Ops.ASSIGN, dtypes.float32, (acc, acc + x), "reassoc") for acc, x in zip(accs, xs))
  joined = vectorize_alu(UOp(Ops.SINK, dtypes.void, (UOp(Ops.VECTORIZE, dtypes.float32.vec(2), own),))).src[0]
  assert joined.op is Ops.ASSIGN and joined.src[0].op is Ops.DEFINE_ACC and joined.src[0].dtype == dtypes.float32.vec(2)
  assert joined.src[0].arg == 2 and joined.src[1].src[0] is joined.src[0]  # (a new accumulator, read by its update)
  crossed = tuple(UOp(Ops.ASSIGN, dtypes.float32, (acc, other + x), "reassoc") for acc, other, x in zip(accs, accs[::-1], xs))
  vec = UOp(Ops.VECTORIZE, dtypes.float32.vec(2), crossed)
  assert vectorize_alu(UOp(Ops.SINK, dtypes.void, (vec,))).src[0] is vec
