"""Sliding-window benchmark: pooling and a depthwise convolution on 16x64x112x112 float32 (a ResNet stem's
activations), on every teeny device, beside torch when it is importable, in one run.

  python bench/bench_windows.py                        # every device that opens here
  python bench/bench_windows.py --repeats 5 --devices LLVM --workloads maxpool maxpool_bwd

Workloads (ms per call, each result realized and the device synchronized):
  maxpool      max_pool2d(3, stride 2, padding 1): overlapping 3x3 windows
  maxpool_bwd  its input's gradient for a given output gradient (the backward of a training step; the forward's
               maxima are computed first, untimed, as the forward pass would have)
  avgpool      avg_pool2d(3, stride 2, padding 1)
  depthwise    conv2d with 64 3x3 filters, groups=64, padding 1 (one filter per channel)

Every teeny result is checked against torch's (or, without torch, against numpy on a slice) before it is timed.
ratio = torch's time / teeny's (above 1: teeny is faster). The machine is shared and noisy: compare ratios within
one run, never absolute numbers across runs.
"""
from __future__ import annotations
import os, sys
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout too
from teeny import Tensor, Device  # noqa: E402
from teeny.schedule import forget_realized  # noqa: E402
from bench_core import WrongResult, bench_arguments, bench_devices, machine_header, median_ms, optional  # noqa: E402  (bench/ is on the path when run as a script)

SHAPE = (16, 64, 112, 112)
WORKLOADS = ("maxpool", "maxpool_bwd", "avgpool", "depthwise")


def arrays() -> dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  return {"x": rng.standard_normal(SHAPE, dtype=np.float32), "g": rng.standard_normal(SHAPE[:2] + (56, 56), dtype=np.float32),
          "w": rng.standard_normal((64, 1, 3, 3), dtype=np.float32)}


def teeny_call(name: str, device: str, data: dict):
  """A function computing the workload once, realized, and its result (for the check)."""
  x = Tensor(data["x"], device=device).realize()
  if name == "maxpool_bwd":
    x.requires_grad = True
    g = Tensor(data["g"], device=device).realize()
    def backward():
      x.grad = None
      forget_realized()  # (the same graph every call: each one computes its gradient again)
      x.max_pool2d(3, 2, padding=1).realize().backward(g)
      grad = x.grad.realize()
      Device[device].synchronize()
      return grad
    return backward
  w = Tensor(data["w"], device=device).realize()
  ops = {"maxpool": lambda: x.max_pool2d(3, 2, padding=1), "avgpool": lambda: x.avg_pool2d(3, 2, padding=1),
         "depthwise": lambda: x.conv2d(w, padding=1, groups=64)}
  def run():
    forget_realized()
    out = ops[name]().realize()
    Device[device].synchronize()
    return out
  return run


def torch_call(name: str, data: dict):
  torch = optional("torch")
  if torch is None: return None
  import torch.nn.functional as F
  x, g, w = (torch.from_numpy(data[k]) for k in ("x", "g", "w"))
  if name == "maxpool_bwd":
    xg = x.clone().requires_grad_(True)
    def backward():
      xg.grad = None
      F.max_pool2d(xg, 3, 2, 1).backward(g)
      return xg.grad
    return backward
  return {"maxpool": lambda: F.max_pool2d(x, 3, 2, 1), "avgpool": lambda: F.avg_pool2d(x, 3, 2, 1),
          "depthwise": lambda: F.conv2d(x, w, padding=1, groups=64)}[name]


def numpy_maxpool(x: np.ndarray) -> np.ndarray:
  """The check without torch: max_pool2d(3, 2, padding=1) of the first image's first channels."""
  padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
  return np.max([padded[:, :, i:i + 112:2, j:j + 112:2] for i in range(3) for j in range(3)], axis=0)


def check(name: str, device: str, got: np.ndarray, data: dict, want):
  if want is None:
    if name != "maxpool": return  # (without torch only the forward max is checked)
    want = numpy_maxpool(data["x"][:1, :4])
    got = got[:1, :4]
  if not np.allclose(got, want, rtol=1e-4, atol=1e-4):
    raise WrongResult(f"{name} on {device}: result does not match the reference; not timed")


def main():
  args = bench_arguments(__doc__, list(WORKLOADS), repeats=10).parse_args()
  devices = bench_devices(args)
  data = arrays()
  print(machine_header("bench_windows"))
  print(f"{'workload':<12} {'device':<7} {'teeny ms':>9} {'torch ms':>9} {'ratio':>7}")
  for name in args.workloads:
    reference = torch_call(name, data)
    want = reference().detach().numpy() if reference is not None else None
    torch_ms = median_ms(reference, args.repeats) if reference is not None else None
    for device in devices:
      run = teeny_call(name, device, data)
      check(name, device, run().numpy(), data, want)
      ms = median_ms(run, args.repeats)
      torch_text = f"{torch_ms:9.2f}" if torch_ms is not None else f"{'-':>9}"
      ratio = f"{torch_ms / ms:6.2f}x" if torch_ms is not None else f"{'-':>7}"
      print(f"{name:<12} {device:<7} {ms:9.2f} {torch_text} {ratio}")


if __name__ == "__main__":
  main()
