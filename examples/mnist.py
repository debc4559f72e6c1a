"""Train a LeNet-style CNN on handwritten digits with teeny.

Data, in order of preference:
  --mnist DIR    the MNIST IDX files (train-images-idx3-ubyte, ... optionally .gz) in DIR: 28x28 digits
  (default)      the 8x8 digits set that scikit-learn ships (pip install scikit-learn): 1,797 images
  --synthetic    8x8 digits drawn from a built-in font with random shifts and noise (no extra package)

Run `DEBUG=2 python examples/mnist.py` to see every kernel of the training step as it runs. The step runs under
TinyJit (captured on its second call, then replayed without building or scheduling a graph); --no-jit runs it eagerly.

Data-parallel on several processes (pip install 'teeny[mpi]'): `mpiexec -n 2 python examples/mnist.py --distributed`.
Each process trains on its half of every batch of --batch-size, the gradients are averaged over the processes and
BatchNorm uses the whole batch's statistics, so the run computes what one process computes (to rounding).

Data-parallel on several devices of one process: `python examples/mnist.py --devices LLVM,LLVM:1` (LLVM:1 is a
second device on the same CPU; CL:0,CL:1 where there are two OpenCL devices). The weights are replicated on every
device and each batch is sharded over them; the sums over the batch (the loss, BatchNorm's statistics, the weights'
gradients) add the devices' parts, so this too computes what one device computes.
"""
import argparse, gzip, os, time
import numpy as np
from teeny import Tensor, Device, Context, TinyJit, nn
from teeny.nn.optim import Adam
from teeny.nn.state import get_parameters, get_state_dict, safe_save


class LeNet:
  """(conv 3x3 -> batchnorm -> relu -> maxpool 2x2) twice, then a linear classifier: for 8x8 or 28x28 inputs. The
  convolutions have no bias: the BatchNorm after each subtracts the mean, so a bias there would get a gradient of
  exactly 0 in exact arithmetic (rounding noise in floats, which Adam would scale up to full steps)."""
  def __init__(self, side: int, classes: int = 10):
    self.c1, self.b1 = nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
    self.c2, self.b2 = nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)
    self.fc = nn.Linear(32 * (side // 4) ** 2, classes)

  def __call__(self, x: Tensor) -> Tensor:
    x = self.b1(self.c1(x)).relu().max_pool2d(2)
    x = self.b2(self.c2(x)).relu().max_pool2d(2)
    return self.fc(x.flatten(1))


def read_idx(path: str) -> np.ndarray:
  """An IDX file (MNIST's format): two zero bytes, type 0x08 (uint8), ndim, big-endian sizes, then the data."""
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f: raw = f.read()
  if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08: raise ValueError(f"{path} is not a uint8 IDX file")
  ndim = raw[3]
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
  if data.size != int(np.prod(shape)): raise ValueError(f"{path}: the header says {shape}, the file holds {data.size} values")
  return data.reshape(shape)


def load_mnist(folder: str):
  def find(stem: str) -> str:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
      if os.path.exists(os.path.join(folder, name)): return os.path.join(folder, name)
    raise FileNotFoundError(f"no {stem}[.gz] in {folder}")
  x_train, y_train = read_idx(find("train-images-idx3-ubyte")), read_idx(find("train-labels-idx1-ubyte"))
  x_test, y_test = read_idx(find("t10k-images-idx3-ubyte")), read_idx(find("t10k-labels-idx1-ubyte"))
  return x_train / 255.0, y_train, x_test / 255.0, y_test


# 3 wide x 5 tall glyphs of the digits 0-9, row by row
FONT = ["111101101101111", "010110010010111", "111001111100111", "111001111001111", "101101111001001",
        "111100111001111", "111100111101111", "111001010010010", "111101111101111", "111101111001111"]


def synthetic_digits(n: int, rng: np.random.Generator):
  """Glyphs stretched to 6 wide, placed at a random offset in an 8x8 frame, random brightness, Gaussian noise."""
  labels = rng.integers(0, 10, n)
  images = np.zeros((n, 8, 8))
  for i, label in enumerate(labels):
    glyph = np.array([int(c) for c in FONT[label]], dtype=float).reshape(5, 3).repeat(2, axis=1)
    top, left = rng.integers(0, 4), rng.integers(0, 3)
    images[i, top:top + 5, left:left + 6] = glyph * rng.uniform(0.6, 1.0)
  return images + rng.normal(0, 0.15, images.shape), labels


def load_digits(synthetic: bool, rng: np.random.Generator):
  if synthetic: x, y = synthetic_digits(2000, rng)
  else:
    try: from sklearn.datasets import load_digits as sklearn_digits
    except ImportError: raise SystemExit("the 8x8 digits set comes with scikit-learn: pip install scikit-learn "
                                         "(or pass --synthetic, or --mnist DIR with the MNIST files)") from None
    data = sklearn_digits()
    x, y = data.images / 16.0, data.target
  order = rng.permutation(len(x))
  split = int(0.8 * len(x))
  return x[order[:split]], y[order[:split]], x[order[split:]], y[order[split:]]


def evaluate(model, x: np.ndarray, y: np.ndarray, batch: int = 500, devices=None) -> float:
  correct = 0
  for i in range(0, len(x), batch):
    logits = model(on(Tensor(x[i:i + batch, None]), devices))
    correct += int((logits.argmax(1).numpy() == y[i:i + batch]).sum())
  return correct / len(x)


def on(batch: Tensor, devices) -> Tensor:
  """A batch on the devices the model is on: split along the batch axis when there are several."""
  return batch if devices is None or len(batch) < len(devices) else batch.shard(devices, axis=0)


def train(args) -> float:
  if args.device: Device.DEFAULT = args.device  # the model's weights and every batch go there
  devices = tuple(args.devices.split(",")) if args.devices else None
  dist = start_distributed() if args.distributed else None
  say = print if dist is None or dist.rank() == 0 else (lambda *a, **k: None)
  rng = np.random.default_rng(args.seed)  # (the same on every process: the same data, order and weights)
  Tensor.manual_seed(args.seed)
  if args.mnist: x_train, y_train, x_test, y_test = load_mnist(args.mnist)
  else: x_train, y_train, x_test, y_test = load_digits(args.synthetic, rng)
  mean, std = x_train.mean(), x_train.std()
  x_train, x_test = ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)
  where = f"{dist.world_size()} processes on {Device.DEFAULT}" if dist else ", ".join(devices) if devices else Device.DEFAULT
  say(f"{len(x_train)} training and {len(x_test)} test images of {x_train.shape[1]}x{x_train.shape[2]} on {where}")

  model = LeNet(x_train.shape[1])
  if devices:  # every weight and BatchNorm statistic replicated on each device
    for t in get_state_dict(model).values(): t.to_(devices)
  if dist:
    dist.broadcast_parameters(model)  # (equal already, from the same seed: this is how a real run makes sure)
    dist.sync_batchnorm(model)        # BatchNorm over the global batch, as one process would see it
  opt = Adam(get_parameters(model), lr=args.lr)

  def step(x: Tensor, y: Tensor) -> Tensor:
    """One training step on a batch: the loss, realized with the old weights, and the weights updated."""
    opt.zero_grad()
    loss = model(x).cross_entropy(y)
    loss.backward()
    if dist:
      dist.average_gradients(model)
      loss = dist.allreduce(loss.detach()) / dist.world_size()  # the global batch's loss
    Tensor.realize_all(loss, *opt.schedule_step())
    return loss
  # (over MPI the step stays eager: its allreduces wait for the other processes, call by call)
  run_step = TinyJit(step) if args.jit and dist is None else step
  accuracy, steps = 0.0, 0
  for epoch in range(1, args.epochs + 1):
    start, losses = time.perf_counter(), []
    order = rng.permutation(len(x_train))
    with Tensor.train():
      for i in range(0, len(order) - args.batch_size + 1, args.batch_size):
        first = epoch == 1 and i == 0
        batch = order[i:i + args.batch_size]
        if dist: batch = dist.local_share(batch)  # this process's part of the global batch
        x, y = on(Tensor(x_train[batch, None]), devices), on(Tensor(y_train[batch].astype(np.int32)), devices)
        with Context(PROGRESS=int(first) if dist is None or dist.rank() == 0 else 0):  # (the first step compiles)
          losses.append(run_step(x, y).item())
        if first:
          say(f"first step {time.perf_counter() - start:.2f} s (scheduling and compiling), not counted in s/epoch")
          start = time.perf_counter()
        steps += 1
        if steps == args.steps: break
    seconds = time.perf_counter() - start
    accuracy = evaluate(model, x_test, y_test, devices=devices)
    say(f"epoch {epoch:2d}  loss {np.mean(losses):.4f}  test accuracy {accuracy * 100:5.1f}%  {seconds:6.2f} s/epoch")
    if steps == args.steps: break
  say(f"final test accuracy {accuracy * 100:.1f}%")
  if args.save: safe_save(get_state_dict(model), args.save.format(rank=dist.rank() if dist else 0))
  return accuracy


def start_distributed():
  from teeny import distributed as dist  # (mpi4py is needed only here)
  dist.init()
  return dist


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--device", default=None, help="CL or LLVM (default: teeny's default device)")
  parser.add_argument("--mnist", default=None, metavar="DIR", help="folder with the MNIST IDX files")
  parser.add_argument("--synthetic", action="store_true", help="built-in synthetic 8x8 digits instead of scikit-learn's")
  parser.add_argument("--epochs", type=int, default=5)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--lr", type=float, default=3e-3)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--distributed", action="store_true", help="one of several processes started by mpiexec")
  parser.add_argument("--no-jit", dest="jit", action="store_false", help="run the training step eagerly, without TinyJit")
  parser.add_argument("--devices", default=None, help="several devices of this process, e.g. LLVM,LLVM:1: data-parallel")
  parser.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: train every epoch)")
  parser.add_argument("--save", default=None, metavar="PATH", help="save the weights as safetensors at the end "
                      "({rank} in PATH: this process's rank)")
  train(parser.parse_args())
