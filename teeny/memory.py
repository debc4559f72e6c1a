"""The memory planner: buffers whose lifetimes don't overlap share memory.

Works on "slots" (numbered buffers) touched by an ordered list of kernels. A slot lives from the first kernel
that touches it to the last. Walking the kernels in order, a slot whose last use has passed gives its memory
back to a pool of its device, and a slot that starts takes memory from that pool: the smallest free block
that fits, else the largest free block, grown to fit (nothing is allocated while planning, so a block can still
grow). A kernel's own inputs are never reused for its output: a slot is released only after the kernel that
used it last. The schedule plans the intermediates of one realize with it, TinyJit the scratch buffers of a
whole captured function.

Set NO_MEMORY_PLANNER=1 (or memory.PLANNER = False) to give every buffer its own memory.
"""
from __future__ import annotations
import os

PLANNER = os.environ.get("NO_MEMORY_PLANNER", "") in ("", "0")


def plan_memory(uses: list[list[int]], plannable: dict[int, tuple[str, int]]) -> tuple[dict[int, int], list[list], set[int]]:
  """uses[i]: the slots kernel i touches. plannable: slot -> (device, nbytes) for the slots that may share.

  Returns (slot -> block index, blocks as [device, nbytes], slots whose memory a later slot takes over)."""
  first, last = {}, {}
  for i, slots in enumerate(uses):
    for s in slots:
      if s not in plannable: continue
      first.setdefault(s, i)
      last[s] = i
  starts, ends = {}, {}
  for s, i in first.items(): starts.setdefault(i, []).append(s)
  for s, i in last.items(): ends.setdefault(i, []).append(s)
  block_of: dict[int, int] = {}
  blocks: list[list] = []
  free: dict[str, list[int]] = {}       # device -> free block indices
  holder: dict[int, int] = {}          # block -> slot using it now
  clobbered: set[int] = set()
  for i in range(len(uses)):
    for s in starts.get(i, ()):
      device, nbytes = plannable[s]
      b = _take(free.setdefault(device, []), blocks, nbytes)
      if b is None:
        b = len(blocks)
        blocks.append([device, nbytes])
      else: clobbered.add(holder[b])
      blocks[b][1] = max(blocks[b][1], nbytes)
      block_of[s], holder[b] = b, s
    for s in ends.get(i, ()): free[plannable[s][0]].append(block_of[s])
  return block_of, blocks, clobbered


def _take(pool: list[int], blocks: list[list], nbytes: int) -> int | None:
  """The best free block for nbytes: the smallest that fits, else the largest (to be grown); removed from pool."""
  if not pool: return None
  fits = [b for b in pool if blocks[b][1] >= nbytes]
  b = min(fits, key=lambda b: blocks[b][1]) if fits else max(pool, key=lambda b: blocks[b][1])
  pool.remove(b)
  return b
