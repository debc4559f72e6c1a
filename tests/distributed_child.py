"""What tests/test_distributed.py runs in each process under `mpiexec -n 2` (or alone: a world of one):
`python tests/distributed_child.py SCENARIO`. Each scenario checks its results itself (against numpy, or against
what one process computes on the whole batch) and prints "ok SCENARIO rank R" at the end; a failed check raises,
which aborts every process (teeny.distributed.init's hook)."""
import sys
import numpy as np
from teeny import Tensor, TinyJit, nn, dtypes
from teeny import distributed as dist
from teeny.nn.optim import SGD
from teeny.nn.state import get_parameters, get_state_dict


def gathered(values) -> list:
  from teeny.runtime import collective
  return collective.comm().allgather(values)


def check(got, want, what: str, atol=1e-6):
  got, want = np.asarray(got), np.asarray(want)
  if got.shape != want.shape or not np.allclose(got, want, atol=atol, rtol=1e-6):
    raise AssertionError(f"rank {dist.rank()}: {what}: got {got!r}, want {want!r}")


def collectives():
  r, world = dist.rank(), dist.world_size()
  ranks = np.arange(world, dtype=np.float32)
  base = np.array([[1.0, -2.0, 3.5], [0.25, 8.0, -1.0]], dtype=np.float32)
  mine = base * (r + 1)
  everyone = np.stack([base * (k + 1) for k in range(world)])
  check(dist.allreduce(Tensor(mine)).numpy(), everyone.sum(0), "allreduce sum")
  check(dist.allreduce(Tensor(mine), "max").numpy(), everyone.max(0), "allreduce max")
  check(dist.allreduce(Tensor(mine), "min").numpy(), everyone.min(0), "allreduce min")
  check(dist.allreduce(Tensor(np.int32(r) + np.arange(4, dtype=np.int32))).numpy(),
        world * np.arange(4) + ranks.sum(), "allreduce of int32")
  half = dist.allreduce(Tensor(mine, dtype=dtypes.float16))
  assert half.dtype == dtypes.float16
  check(half.numpy().astype(np.float32), everyone.sum(0), "allreduce of float16", atol=1e-2)
  bf = dist.allreduce(Tensor(mine).cast(dtypes.bfloat16))
  check(bf.float().numpy(), everyone.sum(0), "allreduce of bfloat16", atol=0.1)
  # fused: the allreduce reads a lazy graph, its result feeds more work
  check((dist.allreduce(Tensor(mine) * 2 + 1) - 1).numpy(), 2 * everyone.sum(0) + world - 1, "allreduce in a graph")
  # gradient: every process's x reaches every process's output, so x's gradient is the sum of the upstream ones
  x = Tensor(mine, requires_grad=True)
  weight = Tensor(np.full(base.shape, r + 1.0, dtype=np.float32))
  (dist.allreduce(x * x) * weight).sum().backward()
  check(x.grad.numpy(), 2 * mine * sum(k + 1.0 for k in range(world)), "gradient through an allreduce")
  print(f"ok collectives rank {r}")


def parameters():
  r, world = dist.rank(), dist.world_size()
  Tensor.manual_seed(100 + r)  # different weights on every process, until the broadcast
  model = [nn.Linear(5, 4), nn.BatchNorm(4), nn.Linear(4, 3)]
  dist.broadcast_parameters(model)
  for name, t in get_state_dict(model).items():
    values = gathered(t.numpy())
    for v in values[1:]: check(v, values[0], f"{name} after broadcast_parameters")
  params = get_parameters(model)
  for p in params:
    if dtypes.is_float(p.dtype): p.requires_grad = True
  x = Tensor(np.random.default_rng(r).standard_normal((6, 5)).astype(np.float32))
  with Tensor.train():
    h = model[1](model[0](x)).relu()
    (model[2](h) ** 2).mean().backward()
  local = {name: t.grad.numpy() for name, t in get_state_dict(model).items() if t.grad is not None}
  for bucket_bytes in (1 << 20, 64):  # one bucket, then one per parameter or so
    for name, t in get_state_dict(model).items():
      if name in local: t.grad = Tensor(local[name])
    dist.average_gradients(model, bucket_bytes=bucket_bytes)
    for name, t in get_state_dict(model).items():
      if name in local: check(t.grad.numpy(), np.mean(gathered(local[name]), axis=0), f"averaged gradient of {name}")
  # a gradient of 1 MiB or more is allreduced on its own, beside a bucket of small ones
  big = {"big": Tensor.zeros(512, 512), "small": Tensor.zeros(3)}
  local = {name: np.full(t.shape, r + 1.0, dtype=np.float32) for name, t in big.items()}
  for name, t in big.items(): t.grad = Tensor(local[name])
  dist.average_gradients(big)
  for name, t in big.items(): check(t.grad.numpy(), np.full(t.shape, (world + 1) / 2), f"averaged gradient of {name}")
  # the sampler: every index of an epoch exactly once over all processes, each global batch split evenly
  sampler = dist.DistributedSampler(50, 8, seed=3)
  mine = list(sampler)
  assert len(mine) == 6 and all(len(b) == 8 // world for b in mine), mine
  seen = np.concatenate([np.concatenate(b) for b in gathered(mine)])
  assert len(set(seen.tolist())) == len(seen) == 48, seen
  # processes on one host run on disjoint equal shares of its CPUs, one LLVM worker slice per CPU of the share
  import os
  from teeny.runtime import cpu_pool
  cpus = gathered(sorted(os.sched_getaffinity(0)))
  if len(set().union(*cpus)) >= world:  # (enough CPUs for one each)
    assert len({c for share in cpus for c in share}) == sum(len(share) for share in cpus), cpus
    assert cpu_pool.threads() == len(cpus[r]), (cpu_pool.threads(), cpus)
  print(f"ok parameters rank {r}")


def sync_batchnorm():
  """A synchronized BatchNorm on each process's part of a batch computes what one BatchNorm computes on the whole
  batch: outputs, input gradients, the sum of the weight gradients, the running statistics."""
  r, world = dist.rank(), dist.world_size()
  full = np.random.default_rng(7).standard_normal((4 * world, 3, 2, 2)).astype(np.float32) * 3 + 1
  upstream = np.random.default_rng(8).standard_normal(full.shape).astype(np.float32)
  part = slice(4 * r, 4 * (r + 1))
  synced, alone = nn.BatchNorm2d(3), nn.BatchNorm2d(3)
  assert dist.sync_batchnorm([synced]) == 1
  for bn in (synced, alone): bn.weight.requires_grad = bn.bias.requires_grad = True
  x_part, x_full = Tensor(full[part], requires_grad=True), Tensor(full, requires_grad=True)
  with Tensor.train():
    out_part, out_full = synced(x_part), alone(x_full)
    (out_part * Tensor(upstream[part])).sum().backward()
    (out_full * Tensor(upstream)).sum().backward()
  check(out_part.numpy(), out_full.numpy()[part], "synchronized BatchNorm output", atol=1e-5)
  check(x_part.grad.numpy(), x_full.grad.numpy()[part], "synchronized BatchNorm input gradient", atol=1e-5)
  check(np.sum(gathered(synced.weight.grad.numpy()), axis=0), alone.weight.grad.numpy(), "weight gradient", atol=1e-4)
  check(synced.running_mean.numpy(), alone.running_mean.numpy(), "running mean")
  check(synced.running_var.numpy(), alone.running_var.numpy(), "running variance", atol=1e-5)
  print(f"ok sync_batchnorm rank {r}")


def jit():
  """average_gradients inside a TinyJit: the allreduce is captured with the kernels and replayed; the weights
  equal those of the same steps run without the jit."""
  r = dist.rank()
  data = [np.random.default_rng(50 + 10 * step + r).standard_normal((4, 3)).astype(np.float32) for step in range(6)]
  results = []
  for use_jit in (False, True):
    Tensor.manual_seed(1)
    layer = nn.Linear(3, 2)
    dist.broadcast_parameters(layer)
    opt = SGD(get_parameters(layer), lr=0.1)
    def step(x: Tensor) -> Tensor:
      opt.zero_grad()
      loss = (layer(x) ** 2).mean()
      loss.backward()
      dist.average_gradients(layer)
      opt.step()
      return loss.realize()
    run = TinyJit(step) if use_jit else step
    for x in data: run(Tensor(x)).numpy()
    if use_jit:
      assert run.captured is not None, "the jit never captured"
      assert any(len(launch.ast.arg) == 3 for launch in run.captured.jit_cache if launch.runner is None), "no allreduce captured"
    results.append(layer.weight.numpy())
  check(results[1], results[0], "weights trained under TinyJit")
  values = gathered(results[1])
  assert np.array_equal(values[0], values[-1]), "weights differ between processes"
  print(f"ok jit rank {r}")


def mismatch():
  """A parameter of another shape on one process: every process gets the same ValueError, nobody waits."""
  r = dist.rank()
  model = {"embed": Tensor.zeros(4, 8), "head": Tensor.zeros(8, 3 if r == 0 else 5)}
  for call in (lambda: dist.broadcast_parameters(model), lambda: _grads_and_average(model)):
    try: call()
    except ValueError as e:
      if "head" not in str(e): raise
      print(f"raised rank {r}: {e}")
    else: raise AssertionError("no error for parameters of different shapes")
  print(f"ok mismatch rank {r}")


def _grads_and_average(model: dict):
  for t in model.values(): t.grad = t.zeros_like()
  dist.average_gradients(model)


def crash():
  """Rank 1 fails before a collective that rank 0 is already waiting in: the run must end, not hang."""
  if dist.rank() == 1: raise RuntimeError("rank 1 failed on purpose")
  dist.allreduce(Tensor([1.0])).numpy()
  print("rank 0 was never released")


def alone():
  """Without mpiexec: a world of one, where every collective is the identity."""
  assert dist.world_size() == 1 and dist.rank() == 0
  check(dist.allreduce(Tensor([1.5, 2.0])).numpy(), [1.5, 2.0], "allreduce of one process")
  assert dist.local_share(np.arange(6)).tolist() == list(range(6))
  print("ok alone rank 0")


if __name__ == "__main__":
  dist.init()
  {"collectives": collectives, "parameters": parameters, "sync_batchnorm": sync_batchnorm, "jit": jit,
   "mismatch": mismatch, "crash": crash, "alone": alone}[sys.argv[1]]()
