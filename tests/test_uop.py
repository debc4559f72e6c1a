"""The IR: hash-consing, patterns, graph_rewrite, toposort, and the symbolic rules (folding and identities)."""
from teeny.dtype import dtypes
from teeny.uop import UOp, Ops, UPat, PatternMatcher, graph_rewrite, toposort
from teeny.symbolic import symbolic


def c(v, dt=dtypes.int32): return UOp.const(dt, v)
def var(name, size): return UOp(Ops.SPECIAL, dtypes.int32, (), (name, size))


def test_identical_nodes_are_the_same_object():
  a, b = c(1) + c(2), c(1) + c(2)
  assert a is b
  assert c(1.0, dtypes.float32) is not c(1, dtypes.int32)


def test_signed_zero_and_bool_constants_stay_distinct():
  assert c(0.0, dtypes.float32) is not c(-0.0, dtypes.float32)
  assert c(True, dtypes.bool).arg is True and c(1, dtypes.int32).arg == 1


def test_constants_are_normalized_to_their_dtype():
  assert c(300, dtypes.uint8).arg == 44
  assert c(-1, dtypes.uint32).arg == 2**32 - 1
  assert c(2.5, dtypes.int32).arg == 2
  assert c(0.1, dtypes.float32).arg == float(__import__("numpy").float32(0.1))


def test_toposort_puts_sources_first_and_handles_deep_graphs():
  x = var("x", 10)
  node = x
  for _ in range(5000): node = node.alu(Ops.NEG)  # deeper than the recursion limit allows recursively
  order = toposort(node)
  assert order[0] is x and order[-1] is node and len(order) == 5001


def test_pattern_binds_names_and_matches_commutatively():
  x = var("x", 10)
  pm = PatternMatcher([(UPat(Ops.ADD, src=[UPat.var("a"), UPat.cvar("k")]), lambda a, k: a * UOp.const(a.dtype, k.arg))])
  assert graph_rewrite(c(3) + x, pm) is x * c(3)
  assert graph_rewrite(x + c(3), pm) is x * c(3)


def test_graph_rewrite_reaches_a_fixed_point():
  x = var("x", 10)
  expr = x
  for i in range(1, 2001): expr = expr + c(i)   # (((x + 1) + 2) + ...) folds to one add
  out = graph_rewrite(expr, symbolic)
  assert out is x + c(sum(range(1, 2001)))


def test_constant_folding():
  assert graph_rewrite(c(3) * c(4) + c(1), symbolic) is c(13)
  assert graph_rewrite(c(-7) // c(2), symbolic) is c(-3)  # IDIV truncates, like C
  assert graph_rewrite(c(-7) % c(2), symbolic) is c(-1)
  assert graph_rewrite(c(2.0, dtypes.float32).alu(Ops.EXP2), symbolic) is c(4.0, dtypes.float32)
  assert graph_rewrite(c(1).lt(c(2)), symbolic) is c(True, dtypes.bool)


def test_algebraic_identities():
  x = var("x", 10)
  f = UOp(Ops.DEFINE_VAR, dtypes.float32, (), ("f", 0, 1))
  assert graph_rewrite(x + c(0), symbolic) is x
  assert graph_rewrite(x * c(1), symbolic) is x
  assert graph_rewrite(x * c(0), symbolic) is c(0)
  assert graph_rewrite(f * c(0.0, dtypes.float32), symbolic) is not c(0.0, dtypes.float32)  # inf*0 is nan: kept
  assert graph_rewrite(-(-x), symbolic) is x
  assert graph_rewrite(x + -x, symbolic) is c(0)
  assert graph_rewrite(c(True, dtypes.bool).where(x, c(5)), symbolic) is x


def test_index_simplification_uses_bounds():
  x, y = var("x", 16), var("y", 4)
  assert graph_rewrite((x * 4 + y) // 4, symbolic) is x
  assert graph_rewrite((x * 4 + y) % 4, symbolic) is y
  assert graph_rewrite(y % 4, symbolic) is y
  assert graph_rewrite(y // 4, symbolic) is c(0)
  assert graph_rewrite(y.lt(4), symbolic) is c(True, dtypes.bool)
  assert graph_rewrite(y.lt(0), symbolic) is c(False, dtypes.bool)
  assert graph_rewrite(y.lt(2), symbolic) is y.lt(2)  # unknown: kept


def test_bounds():
  x = var("x", 16)
  assert (x.vmin, x.vmax) == (0, 15)
  assert ((x * 4 + c(3)).vmin, (x * 4 + c(3)).vmax) == (3, 63)
  assert ((x % 5).vmax, (x // 4).vmax) == (4, 3)


def test_arithmetic_builds_the_primitive_graph():
  """UOp's operators (the gradient rules' maths) build primitives; a Python scalar is a constant of the node's
  dtype seen at its shape, and bare in index math (no shape)."""
  f32 = dtypes.float32
  x = UOp(Ops.RANGE, f32, (), 4).reshape((1, 4)).expand((3, 4))
  y = x * 3.0
  two = UOp(Ops.EXPAND, f32, (UOp(Ops.RESHAPE, f32, (UOp.const(f32, 2.0),), (1, 1)),), (3, 4))
  assert x * 2.0 is x.alu(Ops.MUL, two) and 2.0 * x is two.alu(Ops.MUL, x)
  assert 2.0 - x is two.alu(Ops.ADD, UOp(Ops.NEG, f32, (x,)))
  assert x - y is x.alu(Ops.ADD, UOp(Ops.NEG, f32, (y,)))
  assert x / y is x.alu(Ops.FDIV, y) and x / 2.0 is x.alu(Ops.MUL, two.recip())  # (by a node: one correctly rounded FDIV)
  assert x.eq(y) is x.alu(Ops.CMPNE, y).ne(True) and x.eq(y).shape == (3, 4)
  cond = x.lt(y)
  assert cond.where(x, 2.0) is UOp(Ops.WHERE, f32, (cond, x, two)) and cond.where(2.0, x).src[1] is two
  assert x.sum((0,)).shape == (1, 4) and x.sum(()) is x and x.expand((3, 4)) is x
  i = UOp(Ops.SPECIAL, dtypes.int32, (), ("gidx0", 8))
  assert (i * 4 + 1).src[1] is UOp.const(dtypes.int32, 1)  # index math: bare constants
