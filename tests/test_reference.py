"""The reference interpreter (teeny/reference.py) as the oracle: graphs of every primitive op, in several dtypes,
movement chains and reductions, realized by teeny on every device and checked against the interpreter; the
interpreter itself checked against numpy and against exec_alu (constant folding); and VALIDATE=1."""
import math
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from teeny import Tensor, dtypes
from teeny.uop import UOp, Ops, exec_alu
from teeny.reference import evaluate, mismatch
from teeny.runtime.device import Device
from child import run_in_child

RNG = np.random.default_rng(0)
SHAPE = (3, 5)


def leaf(data, device, dtype=None) -> UOp:
  """A realized tensor's graph node (a buffer view) holding data."""
  return Tensor(np.asarray(data), device=device, dtype=dtype).realize().uop


def check(graph: UOp, device: str, rtol=None):
  """teeny's kernels and the reference interpreter give the same value for graph."""
  want = evaluate(graph)
  got = Tensor(graph, device=device).numpy()
  assert got.shape == want.shape == graph.shape and got.dtype == want.dtype == graph.dtype.np
  problem = mismatch(got, want, graph.dtype, rtol)
  assert problem is None, problem
  return want


def floats(dtype=np.float32, lo=-3.0, hi=3.0, shape=SHAPE):
  return RNG.uniform(lo, hi, size=shape).astype(dtype)


def ints(dtype=np.int32, lo=-50, hi=50, shape=SHAPE, nonzero=False):
  x = RNG.integers(lo, hi, size=shape).astype(dtype)
  return np.where(x == 0, 1, x).astype(dtype) if nonzero else x


# ---- every primitive op, realized by teeny and by the interpreter ----

UNARY_INPUTS = {Ops.EXP2: (-4, 4), Ops.LOG2: (0.1, 8), Ops.SIN: (-6, 6), Ops.SQRT: (0, 9), Ops.RECIP: (0.5, 4),
                Ops.NEG: (-3, 3), Ops.TRUNC: (-5, 5)}


@pytest.mark.parametrize("op", list(UNARY_INPUTS), ids=lambda op: op.name)
@pytest.mark.parametrize("dtype", [dtypes.float32, dtypes.float16], ids=str)
def test_unary(device, op, dtype):
  x = leaf(floats(dtype.np, *UNARY_INPUTS[op]), device)
  check(UOp(op, dtype, (x,)), device)


FLOAT_BINARY = [Ops.ADD, Ops.MUL, Ops.MAX, Ops.CMPLT, Ops.CMPNE]
INT_BINARY = [Ops.ADD, Ops.MUL, Ops.MAX, Ops.MOD, Ops.IDIV, Ops.CMPLT, Ops.CMPNE, Ops.AND, Ops.OR, Ops.XOR]


@pytest.mark.parametrize("op", FLOAT_BINARY, ids=lambda op: op.name)
def test_float_binary(device, op):
  a, b = leaf(floats(), device), leaf(floats(), device)
  check(a.alu(op, b), device)


@pytest.mark.parametrize("op", INT_BINARY, ids=lambda op: op.name)
@pytest.mark.parametrize("dtype", [dtypes.int32, dtypes.uint8, dtypes.int64], ids=str)
def test_int_binary(device, op, dtype):
  lo = 0 if dtypes.is_unsigned(dtype) else -50
  a = leaf(ints(dtype.np, lo, 120), device)
  b = leaf(ints(dtype.np, lo, 9, nonzero=True), device)  # (a zero divisor never reaches a kernel: Tensor guards it)
  check(a.alu(op, b), device)


def test_idiv_mod_truncate_like_c(device):
  a, b = leaf(np.array([-7, 7, -7, 7, -8, 0], np.int32), device), leaf(np.array([2, -2, -2, 2, 3, 5], np.int32), device)
  np.testing.assert_array_equal(check(a // b, device), [-3, -3, 3, 3, -2, 0])
  np.testing.assert_array_equal(check(a % b, device), [-1, 1, -1, 1, -2, 0])


def test_shifts(device):
  a = leaf(ints(np.int32, -1000, 1000), device)
  b = leaf(ints(np.int32, 0, 8), device)
  check(a.alu(Ops.SHL, b), device)
  check(a.alu(Ops.SHR, b), device)  # arithmetic: a negative number stays negative


def test_bool_logic(device):
  a, b = leaf(RNG.random(SHAPE) < 0.5, device), leaf(RNG.random(SHAPE) < 0.5, device)
  for op in (Ops.AND, Ops.OR, Ops.XOR, Ops.CMPNE, Ops.MAX):
    check(a.alu(op, b), device)


def test_max_propagates_nan(device):
  a = leaf(np.array([1.0, np.nan, 3.0, np.nan, -0.0], np.float32), device)
  b = leaf(np.array([np.nan, 2.0, 1.0, np.nan, 0.0], np.float32), device)
  out = check(a.alu(Ops.MAX, b), device)
  assert np.isnan(out[:2]).all() and out[2] == 3.0 and np.isnan(out[3])


def test_where(device):
  cond = leaf(RNG.random(SHAPE) < 0.5, device)
  check(cond.where(leaf(floats(), device), leaf(floats(), device)), device)
  check(cond.where(leaf(ints(), device), leaf(ints(), device)), device)


CASTS = [(dtypes.float32, dtypes.int32), (dtypes.float32, dtypes.uint8), (dtypes.int32, dtypes.float32),
         (dtypes.float32, dtypes.bool), (dtypes.bool, dtypes.float32), (dtypes.int32, dtypes.int8),
         (dtypes.float32, dtypes.float16), (dtypes.int64, dtypes.int32)]


@pytest.mark.parametrize("src,dst", CASTS, ids=str)
def test_cast(device, src, dst):
  if src == dtypes.bool: data = RNG.random(SHAPE) < 0.5
  elif dtypes.is_float(src): data = floats(src.np, 0 if dtypes.is_unsigned(dst) else -100, 100)
  else: data = ints(src.np, -300, 300)
  if src == dtypes.float32 and dst == dtypes.bool: data[0, :2] = 0.0
  check(leaf(data, device).cast(dst), device)


def test_cast_float_to_int_truncates(device):
  out = check(leaf(np.array([-2.7, -0.5, 0.5, 2.7], np.float32), device).cast(dtypes.int32), device)
  np.testing.assert_array_equal(out, [-2, 0, 0, 2])


@pytest.mark.parametrize("src,dst", [(dtypes.float32, dtypes.int32), (dtypes.int32, dtypes.float32),
                                     (dtypes.uint32, dtypes.int32), (dtypes.float16, dtypes.int16)], ids=str)
def test_bitcast(device, src, dst):
  data = floats(src.np) if dtypes.is_float(src) else ints(src.np, 0, 1 << 20)
  x = leaf(data, device)
  want = check(UOp(Ops.BITCAST, dst, (x,)), device)
  np.testing.assert_array_equal(want, data.view(dst.np))


@pytest.mark.parametrize("op", [Ops.ADD, Ops.MAX, Ops.MUL], ids=lambda op: op.name)
@pytest.mark.parametrize("axes", [(0,), (1,), (0, 1)], ids=str)
def test_reduce(device, op, axes):
  data = floats(lo=0.5, hi=1.5) if op is Ops.MUL else floats()
  check(leaf(data, device).reduce(op, axes), device)


@pytest.mark.parametrize("dtype", [dtypes.int32, dtypes.float16], ids=str)
def test_reduce_dtypes(device, dtype):
  x = leaf(ints(dtype.np, -20, 20, shape=(4, 6, 5)), device)
  check(x.reduce(Ops.ADD, (1,)), device)
  check(x.reduce(Ops.MAX, (0, 2)), device)


def test_arange_leaf(device):
  check(UOp(Ops.RANGE, dtypes.int32, (), 7), device)


def test_const_at_shape(device):
  c = UOp.const(dtypes.float32, 2.5)
  check(c.reshape((1, 1)).expand((2, 3)) + leaf(floats(shape=(2, 3)), device), device)


# ---- movement ----

def test_movement_ops(device):
  x = leaf(floats(shape=(2, 3, 4)), device)
  check(x.reshape((6, 4)), device)
  check(x.permute((2, 0, 1)), device)
  check(x.reshape((2, 3, 1, 4)).expand((2, 3, 5, 4)), device)
  check(x.pad(((1, 0), (0, 2), (1, 1))), device)
  check(x.shrink(((0, 1), (1, 3), (1, 4))), device)
  check(x.flip((0, 2)), device)


def test_movement_chain(device):
  x = leaf(floats(shape=(4, 6)), device)
  y = x.permute((1, 0)).pad(((1, 1), (0, 2))).shrink(((1, 7), (1, 5))).flip((1,)).reshape((3, 2, 4))
  check(y.reshape((3, 2, 1, 4)).expand((3, 2, 2, 4)) * 2.0, device)


@settings(deadline=None, max_examples=12, derandomize=True)
@given(moves=st.lists(st.sampled_from(["permute", "flip", "pad", "shrink", "reshape"]), min_size=1, max_size=4))
def test_random_movement_chains(moves):
  device = "LLVM"  # (hypothesis and a fixture don't mix; the ops are device-independent once scheduled)
  x = leaf(floats(shape=(4, 3)), device)
  y = x
  for move in moves:
    shape = y.shape
    if move == "permute": y = y.permute(tuple(reversed(range(len(shape)))))
    elif move == "flip": y = y.flip((0,))
    elif move == "pad": y = y.pad(tuple((1, 0) for _ in shape))
    elif move == "shrink": y = y.shrink(tuple((0, max(1, s - 1)) for s in shape))
    else: y = y.reshape((math.prod(shape),))
  check(y.sum(tuple(range(len(y.shape)))) if len(y.shape) > 1 else y, device)


# ---- graph-level ops ----

def test_contiguous_detach_copy(device):
  x = leaf(floats(), device)
  check(x.permute((1, 0)).contiguous() + 1.0, device)
  check(UOp(Ops.DETACH, dtypes.float32, (x * 3.0,)), device)


def test_assign_through_a_view(device):
  t = Tensor(floats(shape=(4, 5)), device=device)
  t.realize()
  t[1:3, ::2] = Tensor(floats(shape=(2, 3)), device=device)
  graph = t._base.uop if t._base is not None else t.uop
  assert graph.op is Ops.ASSIGN
  want = evaluate(graph)
  problem = mismatch(t.numpy(), want, graph.dtype)
  assert problem is None, problem


def test_tensor_graphs(device):
  """Whole user-level graphs (composed ops: softmax, matmul, where) checked like the primitives."""
  a, b = Tensor(floats(shape=(4, 8)), device=device), Tensor(floats(shape=(8, 3)), device=device)
  for t in ((a @ b).relu(), a.softmax(axis=1), (a > 0).where(a, -a).sum(axis=0), a.reshape(8, 4).T.max(axis=1)):
    want = evaluate(t.uop)
    problem = mismatch(t.numpy(), want, t.uop.dtype)
    assert problem is None, problem


# ---- the interpreter itself: against numpy, and against exec_alu (the one-value rules) ----

def test_reference_matches_numpy(device):
  """The interpreter's rules say what numpy says where numpy's meaning is teeny's."""
  x, y = floats(shape=(4, 6)), floats(shape=(4, 6))
  a, b = leaf(x, device), leaf(y, device)
  np.testing.assert_allclose(evaluate((a * b).reduce(Ops.ADD, (1,))), (x * y).sum(1, keepdims=True), rtol=1e-5)
  np.testing.assert_array_equal(evaluate(a.permute((1, 0)).flip((0,))), x.T[::-1])
  np.testing.assert_array_equal(evaluate(a.pad(((1, 0), (0, 2)))), np.pad(x, ((1, 0), (0, 2))))
  np.testing.assert_array_equal(evaluate(a.lt(b).where(a, b)), np.where(x < y, x, y))
  np.testing.assert_array_equal(evaluate(UOp(Ops.RANGE, dtypes.int32, (), 5)), np.arange(5))


def test_copy_between_devices():
  devices = Device.available()
  if len(devices) < 2: pytest.skip("one device")
  t = Tensor(floats(), device=devices[0]).to(devices[1]) * 2
  want = evaluate(t.uop)
  assert any(n.op is Ops.COPY for n in t.uop.toposort())
  assert mismatch(t.numpy(), want, t.uop.dtype) is None


INT_OPS = [Ops.ADD, Ops.MUL, Ops.MAX, Ops.IDIV, Ops.MOD, Ops.CMPLT, Ops.CMPNE, Ops.AND, Ops.OR, Ops.XOR]


@settings(deadline=None, max_examples=200, derandomize=True)
@given(op=st.sampled_from(INT_OPS), a=st.integers(-2**31, 2**31 - 1), b=st.integers(-2**31, 2**31 - 1).filter(bool))
def test_agrees_with_exec_alu_int32(op, a, b):
  node = UOp.const(dtypes.int32, a).alu(op, UOp.const(dtypes.int32, b))
  assert evaluate(node).item() == exec_alu(op, dtypes.int32, [a, b])


FLOAT_OPS = [Ops.ADD, Ops.MUL, Ops.MAX, Ops.CMPLT, Ops.CMPNE]
UNARY_OPS = [Ops.EXP2, Ops.LOG2, Ops.SIN, Ops.SQRT, Ops.RECIP, Ops.NEG, Ops.TRUNC]
finite32 = st.floats(-1e6, 1e6, width=32)


@settings(deadline=None, max_examples=200, derandomize=True)
@given(op=st.sampled_from(FLOAT_OPS + UNARY_OPS), a=finite32 | st.sampled_from([0.0, -0.0, math.inf, math.nan]), b=finite32)
def test_agrees_with_exec_alu_float32(op, a, b):
  args = [a] if op in UNARY_OPS else [a, b]
  node = UOp(op, dtypes.bool if op in (Ops.CMPLT, Ops.CMPNE) else dtypes.float32,
             tuple(UOp.const(dtypes.float32, v) for v in args))
  got, want = evaluate(node).item(), exec_alu(op, dtypes.float32, [UOp.const(dtypes.float32, v).arg for v in args])
  assert got == want or (math.isnan(got) and math.isnan(want)) or math.isclose(got, want, rel_tol=1e-6), (got, want)


def test_mismatch_finds_the_worst_element():
  want = np.array([1.0, 2.0, 3.0, np.nan], np.float32)
  assert mismatch(want.copy(), want, dtypes.float32) is None
  assert "index (2,)" in mismatch(np.array([1.0, 2.0, 4.0, np.nan], np.float32), want, dtypes.float32)
  assert "index (3,)" in mismatch(np.array([1.0, 2.0, 3.0, 0.0], np.float32), want, dtypes.float32)
  assert "1 of 3" in mismatch(np.array([1, 5, 3]), np.array([1, 2, 3]), dtypes.int32)


# ---- VALIDATE=1 ----

def test_validate_checks_every_realize():
  code = """
import numpy as np
from teeny import Tensor
import teeny.reference as reference
from teeny.uop import Ops
a = Tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
print((a * 2 + 1).sum(axis=1).numpy().tolist())        # checked, agrees
a.assign(a + 1).realize()                              # a write: checked against the values before it
print(a.numpy()[0].tolist())
reference._BINARY[Ops.ADD] = np.subtract               # a wrong reference stands in for a wrong kernel
try: (a + 1).realize()
except RuntimeError as e: print("caught:", str(e).splitlines()[0])
"""
  out = run_in_child(code, env={"VALIDATE": "1"}).stdout.splitlines()
  assert out[0] == "[16.0, 48.0, 80.0]" and out[1] == "[1.0, 2.0, 3.0, 4.0]"
  assert out[2].startswith("caught: VALIDATE: a tensor of shape (3, 4)") and "worst at index" in out[2]


def test_validate_knows_bfloat16_and_fp8():
  """The reference holds bfloat16/fp8 as bits, computes in float32 and rounds each result once, as the kernels do:
  VALIDATE=1 checks low-precision graphs (it reported a false mismatch for every one)."""
  code = """
import numpy as np
from teeny import Tensor, dtypes
for dt in (dtypes.bfloat16, dtypes.fp8e4m3, dtypes.fp8e5m2):
  a = Tensor(np.float32([1.5, 2.25, 3.0, -7.0, 1 / 3])).cast(dt)
  outs = [(a * 2 + 1), a.exp(), a.sum(), a.max(), a.cast(dtypes.float32) * 3, (a @ a.reshape(5, 1)).reshape(1)]
  print(dt.name, [o.numpy().tolist() for o in outs][2])
"""
  out = run_in_child(code, env={"VALIDATE": "1"}).stdout.splitlines()
  assert out == ["bfloat16 0.083984375", "fp8e4m3 0.09375", "fp8e5m2 -0.1875"], out  # (the rounded values summed)
