"""Data-parallel scaling over MPI (teeny.distributed): training throughput of one process and of two, each process
on one core with the same batch of its own (so two processes train on a global batch twice as big), and the
allreduce's speed against MPI's own for the same bytes.

Workloads (a jitted step each: forward, backward, average_gradients, SGD):
  mlp     784-512-512-10, relu, batch 128 per process: 0.67 M parameters, one 2.7 MB gradient bucket
  cnn     examples/mnist.py's LeNet on 28x28 inputs, batch 64 per process, BatchNorm synchronized
The scaling ratio is samples/s of two processes over samples/s of one (2.0: perfect; the issue's goal is 1.7).

Then the same workloads on several devices of one process (Tensor.shard, no MPI), eager and under TinyJit: one
device against LLVM and LLVM:1 with the batch sharded over them, each device the same batch as the one. LLVM:1 is a second device on the same CPU, so this row measures what sharding costs (the
rewrite per device, twice the launches, the allreduce copies) more than it can gain.

  python bench/bench_distributed.py                 # needs mpi4py and mpiexec: pip install 'teeny[mpi]'
  python bench/bench_distributed.py --steps 50 --device LLVM
"""
from __future__ import annotations
import argparse, json, os, shutil, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench_core import machine_header  # noqa: E402

CHILD = r"""
import json, os, statistics, sys, time
import numpy as np
sys.path.insert(0, os.path.join(sys.argv[1], "examples"))
from teeny import Tensor, TinyJit, nn, Device
from teeny import distributed as dist
from teeny.nn.optim import SGD
from teeny.nn.state import get_parameters
from teeny.runtime import collective, cpu_pool
from mnist import LeNet

workload, steps, device = sys.argv[2], int(sys.argv[3]), sys.argv[4]
Device.DEFAULT = device
dist.init()
if dist.world_size() == 1: cpu_pool.use_cpus(sorted(os.sched_getaffinity(0))[:1])  # (two processes get one core each)
rank, world = dist.rank(), dist.world_size()
rng = np.random.default_rng(rank)

if workload == "allreduce":
  for mib in (1, 16, 64):
    values = rng.standard_normal(mib << 18).astype(np.float32)
    t, out = Tensor(values).realize(), np.empty_like(values)
    def teeny_allreduce(): dist.allreduce(t).realize()
    def mpi_allreduce(): collective.comm().Allreduce(values, out)  # (into the same array every time: no page faults)
    for name, fn in (("teeny", teeny_allreduce), ("mpi", mpi_allreduce)):
      fn()
      times = []
      for _ in range(steps):
        dist.barrier()
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
      if rank == 0: print(json.dumps({"what": f"allreduce {mib} MiB", "who": name, "GB/s": values.nbytes / statistics.median(times) / 1e9}))
  sys.exit(0)

if workload == "mlp":
  model, batch, side = [nn.Linear(784, 512), Tensor.relu, nn.Linear(512, 512), Tensor.relu, nn.Linear(512, 10)], 128, None
else:
  model, batch, side = LeNet(28), 64, 28
  dist.sync_batchnorm(model)
dist.broadcast_parameters(model)
opt = SGD(get_parameters(model), lr=0.01)

def forward(x):
  for layer in model: x = layer(x)
  return x

@TinyJit
def step(x, y):
  opt.zero_grad()
  logits = forward(x.flatten(1)) if side is None else model(x)
  loss = logits.cross_entropy(y)
  loss.backward()
  dist.average_gradients(model)
  opt.step()
  return loss.realize()

shape = (batch, 784) if side is None else (batch, 1, side, side)
xs = [Tensor(rng.standard_normal(shape).astype(np.float32)).realize() for _ in range(4)]
ys = [Tensor(rng.integers(0, 10, batch).astype(np.int32)).realize() for _ in range(4)]
with Tensor.train():
  for i in range(3): step(xs[i % 4], ys[i % 4]).numpy()  # compile, capture
  times = []
  for i in range(steps):
    dist.barrier()
    t0 = time.perf_counter()
    step(xs[i % 4], ys[i % 4]).numpy()
    times.append(time.perf_counter() - t0)
if rank == 0:
  ms = statistics.median(times) * 1e3
  print(json.dumps({"what": workload, "processes": world, "ms/step": ms, "samples/s": batch * world / ms * 1e3}))
"""

DEVICES_CHILD = r"""
import json, os, statistics, sys, time
import numpy as np
sys.path.insert(0, os.path.join(sys.argv[1], "examples"))
from teeny import Tensor, TinyJit, nn
from teeny.nn.optim import SGD
from teeny.nn.state import get_parameters, get_state_dict
from mnist import LeNet

workload, steps, devices, jit = sys.argv[2], int(sys.argv[3]), tuple(sys.argv[4].split(",")), sys.argv[5] == "jit"
rng = np.random.default_rng(0)
class MLP:
  def __init__(self): self.l1, self.l2, self.l3 = nn.Linear(784, 512), nn.Linear(512, 512), nn.Linear(512, 10)
  def __call__(self, x): return self.l3(self.l2(self.l1(x).relu()).relu())
if workload == "mlp": model, batch, shape = MLP(), 128, (784,)
else: model, batch, shape = LeNet(28), 64, (1, 28, 28)
batch *= len(devices)
for t in get_state_dict(model).values(): t.to_(devices if len(devices) > 1 else devices[0])
opt = SGD(get_parameters(model), lr=0.01)
def place(t): return t.shard(devices, 0) if len(devices) > 1 else t.to(devices[0])
xs = [place(Tensor(rng.standard_normal((batch, *shape)).astype(np.float32))).realize() for _ in range(4)]
ys = [place(Tensor(rng.integers(0, 10, batch).astype(np.int32))).realize() for _ in range(4)]
def step(x, y):
  opt.zero_grad()
  loss = model(x).cross_entropy(y)
  loss.backward()
  opt.step()
  return loss.realize()
if jit: step = TinyJit(step)
times = []
with Tensor.train():
  for i in range(steps + 3):
    t0 = time.perf_counter()
    step(xs[i % 4], ys[i % 4]).numpy()
    if i >= 3: times.append(time.perf_counter() - t0)
ms = statistics.median(times) * 1e3
print(json.dumps({"what": workload, "devices": len(devices), "ms/step": ms, "samples/s": batch / ms * 1e3}))
"""


def run_devices(devices: str, workload: str, steps: int, mode: str) -> dict:
  env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
  command = [sys.executable, "-c", DEVICES_CHILD, ROOT, workload, str(steps), devices, mode]
  done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
  if done.returncode: raise SystemExit(f"{workload} on {devices} failed:\n{done.stderr[-3000:]}")
  return next(json.loads(line) for line in done.stdout.splitlines() if line.startswith("{"))


def run(processes: int, workload: str, steps: int, device: str, mpiexec: str) -> list[dict]:
  env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
  command = [mpiexec, "-n", str(processes), sys.executable, "-c", CHILD, ROOT, workload, str(steps), device]
  done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
  if done.returncode: raise SystemExit(f"{workload} on {processes} processes failed:\n{done.stderr[-3000:]}")
  return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--steps", type=int, default=30, help="timed steps (and allreduce repeats)")
  parser.add_argument("--device", default="LLVM")
  parser.add_argument("--devices-only", action="store_true", help="only the rows of several devices in one process")
  args = parser.parse_args()
  print(machine_header("bench_distributed"))
  devices_table(args.steps)
  if not args.devices_only: processes_table(args)


def devices_table(steps: int):
  print(f"several devices in one process; medians of {steps} steps\n")
  print("| workload | step | LLVM ms/step | LLVM samples/s | LLVM+LLVM:1 ms/step | LLVM+LLVM:1 samples/s | ratio |")
  print("|---|---|---|---|---|---|---|")
  for workload in ("mlp", "cnn"):
    for mode in ("eager", "jit"):
      one, two = run_devices("LLVM", workload, steps, mode), run_devices("LLVM,LLVM:1", workload, steps, mode)
      print(f"| {workload} | {mode} | {one['ms/step']:.2f} | {one['samples/s']:.0f} | {two['ms/step']:.2f} | "
            f"{two['samples/s']:.0f} | {two['samples/s'] / one['samples/s']:.2f}x |")
  print()


def processes_table(args):
  mpiexec = next((p for p in (os.path.join(os.path.dirname(sys.executable), "mpiexec"), shutil.which("mpiexec"))
                  if p and os.path.exists(p)), None)
  if mpiexec is None: raise SystemExit("needs mpiexec and mpi4py: pip install 'teeny[mpi]'")
  print(f"device {args.device}; each process on one core; medians of {args.steps} steps\n")
  print("| workload | 1 process ms/step | 1 process samples/s | 2 processes ms/step | 2 processes samples/s | scaling |")
  print("|---|---|---|---|---|---|")
  for workload in ("mlp", "cnn"):
    one, two = run(1, workload, args.steps, args.device, mpiexec)[0], run(2, workload, args.steps, args.device, mpiexec)[0]
    print(f"| {workload} | {one['ms/step']:.2f} | {one['samples/s']:.0f} | {two['ms/step']:.2f} | {two['samples/s']:.0f} | "
          f"{two['samples/s'] / one['samples/s']:.2f}x |")
  print("\n| allreduce, 2 processes | teeny GB/s | MPI's own GB/s | teeny / MPI |")
  print("|---|---|---|---|")
  rows = run(2, "allreduce", args.steps, args.device, mpiexec)
  for what in dict.fromkeys(r["what"] for r in rows):
    mine, theirs = (next(r["GB/s"] for r in rows if r["what"] == what and r["who"] == who) for who in ("teeny", "mpi"))
    print(f"| {what} | {mine:.2f} | {theirs:.2f} | {mine / theirs:.2f} |")


if __name__ == "__main__":
  main()
