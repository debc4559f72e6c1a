"""Views: movement ops as strides/offset/mask, stacked when one view can't express a reshape, and their index math."""
import itertools
import numpy as np
import pytest
from teeny.dtype import dtypes
from teeny.uop import UOp, Ops, graph_rewrite
from teeny.symbolic import symbolic
from teeny.view import ShapeTracker, View


def evaluate(st: ShapeTracker, base: np.ndarray) -> np.ndarray:
  """What the view shows of a flat buffer: its index math evaluated for every position (invalid reads give 0)."""
  out = np.zeros(st.shape, dtype=base.dtype)
  for pos in itertools.product(*[range(s) for s in st.shape]):
    idxs = [UOp.const(dtypes.int32, p) for p in pos]
    idx, valid = st.to_index(idxs)
    idx = graph_rewrite(idx, symbolic)
    ok = True if valid is None else graph_rewrite(valid, symbolic).arg
    assert idx.op is Ops.CONST
    out[pos] = base[idx.arg] if ok else 0
  return out


BASE = np.arange(24)
CASES = [
  ("permute", lambda st: st.permute((2, 0, 1)), lambda a: a.transpose(2, 0, 1)),
  ("expand", lambda st: st.reshape((2, 1, 12)).expand((2, 3, 12)), lambda a: np.broadcast_to(a.reshape(2, 1, 12), (2, 3, 12))),
  ("pad", lambda st: st.pad(((1, 0), (0, 2), (1, 1))), lambda a: np.pad(a, ((1, 0), (0, 2), (1, 1)))),
  ("shrink", lambda st: st.shrink(((0, 1), (1, 3), (2, 4))), lambda a: a[0:1, 1:3, 2:4]),
  ("flip", lambda st: st.flip((0, 2)), lambda a: a[::-1, :, ::-1]),
  ("permute_reshape", lambda st: st.permute((1, 0, 2)).reshape((24,)), lambda a: a.transpose(1, 0, 2).reshape(24)),
  ("pad_reshape", lambda st: st.pad(((0, 0), (1, 1), (0, 0))).reshape((2, 20)), lambda a: np.pad(a, ((0, 0), (1, 1), (0, 0))).reshape(2, 20)),
  ("flip_pad_shrink", lambda st: st.flip((1,)).pad(((0, 0), (2, 2), (0, 0))).shrink(((1, 2), (0, 6), (1, 3))),
   lambda a: np.pad(a[:, ::-1], ((0, 0), (2, 2), (0, 0)))[1:2, 0:6, 1:3]),
  ("split_merge", lambda st: st.reshape((2, 3, 2, 2)).permute((0, 2, 1, 3)).reshape((4, 6)),
   lambda a: a.reshape(2, 3, 2, 2).transpose(0, 2, 1, 3).reshape(4, 6)),
]


@pytest.mark.parametrize("name,move,ref", CASES, ids=[c[0] for c in CASES])
def test_view_matches_numpy(name, move, ref):
  st = move(ShapeTracker.from_shape((2, 3, 4)))
  np.testing.assert_equal(evaluate(st, BASE), ref(BASE.reshape(2, 3, 4)))


@pytest.mark.parametrize("name,move,ref", CASES, ids=[c[0] for c in CASES])
def test_element_at_matches_numpy(name, move, ref):
  """element_at (the index math on plain ints, for heuristics) reads what numpy's view shows; None where it pads."""
  st = move(ShapeTracker.from_shape((2, 3, 4)))
  want = ref((BASE + 1).reshape(2, 3, 4))  # + 1: element 0 reads 1, padding reads 0
  for pos in itertools.product(*[range(s) for s in st.shape]):
    element = st.element_at(list(pos))
    assert (0 if element is None else BASE[element] + 1) == want[pos], pos


def test_reshape_of_contiguous_or_split_stays_one_view():
  st = ShapeTracker.from_shape((4, 6)).reshape((2, 2, 3, 2)).reshape((24,))
  assert len(st.views) == 1 and st.contiguous


def test_reshape_of_permuted_needs_two_views():
  st = ShapeTracker.from_shape((4, 6)).permute((1, 0)).reshape((24,))
  assert len(st.views) == 2


def test_masks_combine_and_empty_mask_is_canonical():
  v = View.create((4,)).pad(((2, 2),)).shrink(((0, 2),))   # only padding left
  assert v.mask == ((0, 0),)


def test_index_expression_simplifies():
  x, y = UOp(Ops.SPECIAL, dtypes.int32, (), ("x", 4)), UOp(Ops.SPECIAL, dtypes.int32, (), ("y", 6))
  st = ShapeTracker.from_shape((24,)).reshape((4, 6))
  idx, valid = st.to_index([x, y])
  assert valid is None and graph_rewrite(idx, symbolic) is x * UOp.const(dtypes.int32, 6) + y


def test_reshape_back_to_the_shape_below_drops_the_top_view():
  """A permuted view reshaped to another shape takes a second view; reshaped back, the top view maps every index
  to itself and goes, so loads through it need no division (an input gradient of avg_pool2d)."""
  st = ShapeTracker.from_shape((4, 6)).permute((1, 0))
  base = np.arange(24)
  stacked = st.reshape((3, 8))
  assert len(stacked.views) == 2
  back = stacked.reshape((6, 4))
  assert back.views == st.views
  np.testing.assert_array_equal(evaluate(back, base), evaluate(st, base))
  assert len(stacked.reshape((24,)).views) == 2  # (any other shape keeps both)
