"""Performance policy in one place: every tuned number teeny's speed depends on, as one `Tuning` object that a
device's renderer carries (`renderer.tuning`).

These numbers change no result, only how fast it comes: where a sum is split into two kernels, when a matmul copies
an operand first, how big a register tile grows, when a kernel is worth waking the CPU's other cores for. Each was
measured on one machine (a 2-core AMD Zen 4 VM with AVX-512, see PERFORMANCE.md), and each field names the workload
of bench/bench_all.py (which runs bench/bench_core.py's too) that justifies its value: rerun that workload before
and after changing it. A field with no bench workload says what it bounds instead.

The defaults are the values teeny was tuned with. A device may build its own (from its core count, its cache sizes):
`dataclasses.replace(Tuning(), parallel_threshold=...)`, set as its renderer's `tuning`. Tests do the same to reach
a heuristic with small inputs, instead of patching module globals.
"""
from __future__ import annotations
from dataclasses import dataclass


@dataclass(frozen=True)
class Tuning:
  # ---- graph shape (teeny/tensor.py: extra kernels and copies that Tensor ops insert for speed) ----
  # conv2d lays its filters out output channel innermost (a copy) from this many output channels and this much work
  # (multiply-adds). Workload: conv2d
  conv_relayout_min_cout: int = 16
  conv_relayout_min_work: int = 1 << 22
  # a @ b copies a row-major b with at most this many columns, an inner dimension at least this long and at least
  # this much work (multiply-adds) to column-major first (x @ w of a classifier, w 512x10). Workload: mlp
  matmul_relayout_max_n: int = 16
  matmul_relayout_min_k: int = 64
  matmul_relayout_min_work: int = 1 << 18
  # a sum of at least split_min_reduced elements into at most split_max_outputs results runs as two kernels (one
  # output per core would leave the others idle). Workload: sum
  split_min_reduced: int = 1 << 15
  split_max_outputs: int = 16
  # no float accumulator adds more terms than this (longer sums add partial sums): not speed but precision, for
  # devices that add a sum's terms one after another (tests/test_long_sums.py), so no bench workload
  split_max_chunk: int = 1 << 16
  # a sum along one axis of at least chunk_min_reduced elements of a product of at least chunk_min_product (a big
  # matmul) runs in slices of chunk_size along that axis, as many as keep the partial results within
  # chunk_max_bytes. Workload: matmul1024, matmul2048
  chunk_min_reduced: int = 1024
  chunk_min_product: int = 1 << 29
  chunk_size: int = 128
  chunk_max_bytes: int = 256 << 20
  # a smaller product (at least slice_min_product elements) is sliced too when each row of outputs reads more than
  # slice_max_bytes of it (the right-hand matrix outgrows a core's share of L2), in slices of at most
  # slice_target_bytes. Workload: mlp, mlp_jit (its 256x784 @ 784x512)
  slice_min_product: int = 1 << 26
  slice_max_bytes: int = 3 << 19
  slice_target_bytes: int = 1 << 20
  # Tensor.cat of more pieces that are all constants (a stack of Python numbers) makes the result on the host and
  # uploads it once (no kernel with a masked term per piece). No bench workload: it bounds kernel size
  cat_host_pieces: int = 16
  # Tensor.cat of more pieces joins them this many at a time first (one compile serves every group, and no kernel
  # gets a masked term per piece). No bench workload: it bounds compile time and kernel size
  cat_group_size: int = 32

  # ---- scheduling (teeny/schedule.py) ----
  # elementwise work a reduce reads broadcast this many times or more is realized first, when the reduce reads at
  # least broadcast_realize_min_size elements (the relu mask in front of a matmul). Workload: mlp, mlp_jit
  broadcast_realize_factor: int = 16
  broadcast_realize_min_size: int = 1 << 16
  # a chain of elementwise ops is cut into kernels at most this deep, each reading at most about that many value
  # arguments (LLVM compiles a 10,000-op chain in quadratic time and crashed on 100,000; the builder would otherwise
  # find each over-full kernel by rebuilding the graph). They bound kernel size, no bench workload: the deepest
  # kernel of the test suite and the examples is 184 ops deep
  max_fused_depth: int = 512
  max_kernel_values: int = 64
  # elementwise work that two kernels or more would each compute is stored once when it is at least this many
  # operations (a micrograd-style scalar graph recomputed its whole forward pass in every gradient's kernel).
  # Workload: bench/bench_micrograd.py; mlp and conv2d must not change
  shared_work_ops: int = 32

  # ---- the kernel optimizer (teeny/codegen/kernel.py, heuristics.py) ----
  # copies of the loop body one thread may hold (upcast x unroll): more only bloats the code. A bound on code size
  # (every action, BEAM's too), not a measurement; the tiles of matmul1024 and conv2d stay far below it
  max_expansion: int = 256
  # a register tile holds at most this many vectors of accumulators (32 vector registers on AVX-512 x86).
  # Workload: matmul1024
  tile_max_vectors: int = 16
  # a tile gets as many rows as keep what they read over the reduce loop within this many bytes (most of the L1
  # data cache of one core: 32-48 KB on x86 of the last years). Workload: conv2d
  tile_rows_l1_bytes: int = 32 << 10
  # a reduce longer than this is not walked element by element to count the cache lines a tile row reads (one line
  # per step is assumed). It bounds the optimizer's time, no bench workload
  footprint_max_steps: int = 4096
  # accumulators of a dot tile (every input reads the reduce loop contiguously: x @ w.T), each a vector register,
  # the rest hold the loads. Workload: mlp (its weight gradient's and classifier's tiles)
  dot_tile_max: int = 24
  # a reduce over a window of two axes or more and at most this many elements in all (a 3x3 pooling window) is
  # unrolled whole on the CPU, instead of loops of three steps; no vector of strided outputs is made for it.
  # Workload: bench/bench_windows.py (16x64x112x112, old and new alternated): max_pool2d (kernel 3, stride 2,
  # padding 1) with its gradient 35-37 -> 25-29 ms, avg_pool2d the same 11-14 -> 3.0-3.1 ms, a depthwise 3x3
  # convolution 28-30 -> 19-28 ms; the max pool gradient's pick of each window's maximum 5.6 -> 2.5 ms
  small_reduce_unroll: int = 16
  # ... unless its body, copied that many times, would exceed this many graph nodes: a recurrent cell's gradient
  # kernel (7,000 nodes under a reduce of 3) took LLVM minutes to compile unrolled, under a second as a loop. A bound
  # on compile time, no bench workload (a pooling window's body is 3-21 nodes)
  small_reduce_max_nodes: int = 1024
  # on a GPU a reduce with fewer outputs than group_max_outputs, over at least group_min_reduced elements, is split
  # across the work-items of a group (GROUP). No GPU was measured: sum, rowsum1k on an OpenCL GPU would justify them
  group_max_outputs: int = 4096
  group_min_reduced: int = 256
  # an elementwise kernel padded along its innermost axis at edges that are all multiples of at least this many
  # elements is split there into (pieces, stretch) (heuristics.py, _split_at_mask_edges): a cat of 4096-wide rows
  # 3x faster; at stretches of 8 (a 1000-wide piece among 4096-wide ones) the split was slower. Workload: none in
  # bench_all; measured on cats of 2048-row matrices along dim 1 (2x4096: 9.8 -> 2.9 ms on LLVM)
  min_split_stretch: int = 64

  # ---- rendering (teeny/renderer/cstyle.py) ----
  # vloadN/vstoreN widths an OpenCL GPU gets (a CPU driver gets none: PoCL vectorizes across work-items itself, and
  # vectors inside one work-item measured slower there). Workload: matmul1024, mlp on CL
  gpu_vector_widths: tuple = (16, 8, 4, 2)
  # vector widths of a CPU OpenCL driver, for loads, stores and arithmetic alike (codegen/vectorize.py): PoCL leaves a
  # scalar kernel that calls exp2 unvectorized, float8 code ran 8x faster (2.9 -> 23 GB/s on chain6's kernel); 16
  # lanes abort PoCL 3.0's compiler on AMD Zen 4 ("Do not know how to scalarize"). Workload: chain6, softmax on CL
  cpu_vector_widths: tuple = (8, 4, 2)

  # ---- the CPU runtime (teeny/runtime/ops_llvm.py) ----
  # a kernel of at least this many operations is split across the cores (waking a worker costs more below).
  # Workload: mlp (its small kernels), tiny (stays on the calling thread)
  parallel_threshold: int = 1 << 19
  # copies in and out of at least this many bytes run on every core. Workload: copyout
  parallel_copy_bytes: int = 4 << 20
  # time-stamp counter ticks a worker spins before it sleeps (about 1-2 ms at 2-4 GHz). Workload: rowsum1k, mlp
  spin_cycles: int = 1 << 22
