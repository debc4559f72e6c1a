"""teeny in two minutes: lazy tensors, fused kernels, the same answers as numpy.

  python examples/quickstart.py                 # the default device (CL with a GPU, else LLVM)
  python examples/quickstart.py --device CL     # OpenCL (PoCL runs it on the CPU when there is no GPU)
  DEBUG=2 python examples/quickstart.py         # one line per kernel run, on stderr
"""
import argparse
import numpy as np
from teeny import Tensor, Device, GlobalCounters

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--device", default=None, type=str.upper, choices=["CL", "LLVM"],
                    help="the device to run on (default: Device.DEFAULT, chosen from CL=1 / LLVM=1 / DEVICE=...)")
args = parser.parse_args()
if args.device is not None: Device.DEFAULT = args.device
print(f"teeny on {Device.DEFAULT}\n")

rng = np.random.default_rng(0)
a_np, b_np, c_np = (rng.standard_normal((4, 8), dtype=np.float32) for _ in range(3))
a, b, c = Tensor(a_np), Tensor(b_np), Tensor(c_np)

# 1. Nothing runs while you build an expression: this is only a graph.
GlobalCounters.reset()
out = (a * b + c).sum(1)
print(f"built  (a*b + c).sum(1): {out!r}, kernels run so far: {GlobalCounters.kernel_count}")

# 2. Asking for data schedules the graph, compiles it, and runs it: a multiply, an add and a
#    row-sum fuse into ONE kernel, with no temporary buffer for a*b+c.
result = out.numpy()
print(f"after  .numpy():         kernels run: {GlobalCounters.kernel_count}")
print("  teeny:", np.round(result, 4))
print("  numpy:", np.round((a_np * b_np + c_np).sum(1), 4))
assert np.allclose(result, (a_np * b_np + c_np).sum(1), rtol=1e-5, atol=1e-5)

# 3. The familiar API is composed from a few primitive ops, and still fuses.
GlobalCounters.reset()
x = Tensor(np.linspace(-3, 3, 7, dtype=np.float32))
y = (x.relu() * 2 - 1).exp().sqrt()
print(f"\n(x.relu()*2 - 1).exp().sqrt(): {y.numpy().round(4)}  [{GlobalCounters.kernel_count} kernel]")
print(f"numpy:                          {np.sqrt(np.exp(np.maximum(x.numpy(), 0) * 2 - 1)).round(4)}")

# 4. A reduce whose result is expanded back over its rows must finish before the rows are read again.
#    On the CPU (LLVM) that happens inside one kernel: for each row, a loop for the max, one for the
#    exp-and-sum, one writing the row. On OpenCL the scheduler splits there instead: the max, the
#    exp-and-sum, and the division are 3 kernels, the subtract and the exp fused into the sum.
GlobalCounters.reset()
logits = Tensor(a_np)
e = (logits - logits.max(1, keepdim=True)).exp()
probs = (e / e.sum(1, keepdim=True)).numpy()
print(f"\nsoftmax rows sum to {probs.sum(1).round(5)}  [{GlobalCounters.kernel_count} kernel(s)]")
ref = np.exp(a_np - a_np.max(1, keepdims=True))
assert np.allclose(probs, ref / ref.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)

# 5. Matmul is a broadcasted multiply and a sum: one kernel too.
GlobalCounters.reset()
m = (a @ b.T).numpy()
print(f"\na @ b.T has shape {m.shape}, matches numpy: {np.allclose(m, a_np @ b_np.T, rtol=1e-4, atol=1e-4)}"
      f"  [{GlobalCounters.kernel_count} kernel]")
print("\nTry DEBUG=2 (kernels), DEBUG=3 (schedule and optimizations) or DEBUG=4 (generated code).")
