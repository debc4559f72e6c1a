"""ResNet-18 (and ResNet-34) in teeny, loading a torchvision state dict saved with torch.save.

Run it on your own checkpoint: a file written by `torch.save(torchvision.models.resnet18(...).state_dict(), PATH)`
(teeny reads it without PyTorch, and runs no code from it):

    python examples/resnet.py --model resnet18.pth --image cat.jpg        # top-5 ImageNet class indices (needs Pillow)
    python examples/resnet.py --model resnet18.pth                        # a random input, to try the model out
    python examples/resnet.py --model resnet34.pth --depth 34 --image cat.jpg

Nothing is downloaded. The model runs in inference mode: batch norm uses the checkpoint's running statistics.
"""
from __future__ import annotations
import argparse, time
import numpy as np
from teeny import Context, Device, Tensor, nn
from teeny.nn.state import torch_load, load_state_dict

BLOCKS_PER_STAGE = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def run_in_order(layers: list, x: Tensor) -> Tensor:
  """x through each layer in turn."""
  for layer in layers: x = layer(x)
  return x


class BasicBlock:
  """Two 3x3 convolutions with batch norm, added to the input (through a 1x1 convolution when the shape changes)."""
  def __init__(self, channels_in: int, channels: int, stride: int):
    self.conv1 = nn.Conv2d(channels_in, channels, 3, stride=stride, padding=1, bias=False)
    self.bn1 = nn.BatchNorm2d(channels)
    self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
    self.bn2 = nn.BatchNorm2d(channels)
    changes_shape = stride != 1 or channels_in != channels
    self.downsample = [nn.Conv2d(channels_in, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels)] if changes_shape else []

  def __call__(self, x: Tensor) -> Tensor:
    out = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu()))
    shortcut = run_in_order(self.downsample, x)  # no downsample: x itself
    return (out + shortcut).relu()


class ResNet:
  """torchvision's ResNet with basic blocks. Attribute names follow its state dict's keys."""
  def __init__(self, depth: int = 18, num_classes: int = 1000):
    if depth not in BLOCKS_PER_STAGE: raise ValueError(f"depth must be one of {sorted(BLOCKS_PER_STAGE)}, got {depth}")
    self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
    self.bn1 = nn.BatchNorm2d(64)
    channels_in, stages = 64, []
    for stage, blocks in enumerate(BLOCKS_PER_STAGE[depth]):
      channels = 64 * 2 ** stage
      stride = 1 if stage == 0 else 2  # every stage after the first halves the image
      stages.append([BasicBlock(channels_in if i == 0 else channels, channels, stride if i == 0 else 1) for i in range(blocks)])
      channels_in = channels
    self.layer1, self.layer2, self.layer3, self.layer4 = stages
    self.fc = nn.Linear(512, num_classes)

  def __call__(self, images: Tensor) -> Tensor:
    """Logits (batch, classes) for normalized images (batch, 3, height, width)."""
    x = self.bn1(self.conv1(images)).relu().max_pool2d(kernel_size=3, stride=2, padding=1)
    for stage in (self.layer1, self.layer2, self.layer3, self.layer4): x = run_in_order(stage, x)
    return self.fc(x.mean((2, 3)))  # global average pooling


def load_resnet(path: str, depth: int = 18) -> ResNet:
  """A ResNet with the weights of a torchvision state dict saved with torch.save (class count from fc.weight)."""
  weights = torch_load(path)
  if "fc.weight" not in weights: raise ValueError(f"{path}: no fc.weight: is this a torchvision ResNet state dict?")
  model = ResNet(depth, num_classes=weights["fc.weight"].shape[0])
  load_state_dict(model, weights)  # strict: every key matches, or a clear error
  return model


def load_image(path: str) -> Tensor:
  """The image at path as torchvision's ImageNet preprocessing gives it: shorter side 256, center 224x224 crop,
  scaled to [0, 1] and normalized per channel. (1, 3, 224, 224)."""
  try: from PIL import Image
  except ImportError: raise SystemExit("--image needs Pillow (pip install pillow)") from None
  image = Image.open(path).convert("RGB")
  scale = 256 / min(image.size)
  image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
  left, top = (image.width - 224) // 2, (image.height - 224) // 2
  pixels = np.asarray(image.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255
  pixels = (pixels - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
  return Tensor(pixels.transpose(2, 0, 1)[None].copy())


def main(argv=None):
  """The command line: print the top-5 classes for an image (or a random input)."""
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", required=True, help="a torchvision ResNet state dict saved with torch.save")
  parser.add_argument("--depth", type=int, default=18, choices=sorted(BLOCKS_PER_STAGE))
  parser.add_argument("--image", default=None, help="an image file (needs Pillow); default: a random input")
  parser.add_argument("--device", default=None, help="LLVM or CL (default: teeny's default device)")
  args = parser.parse_args(argv)
  if args.device: Device.DEFAULT = args.device
  model = load_resnet(args.model, args.depth)
  images = load_image(args.image) if args.image else Tensor(np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32))
  start = time.perf_counter()
  with Context(PROGRESS=1):  # (the first call schedules and compiles every kernel: show how far it is)
    probs = model(images).softmax(-1)[0].numpy()
  print(f"forward pass in {time.perf_counter() - start:.2f} s, compiles included")
  for index in np.argsort(-probs)[:5]: print(f"class {index:4d}  p = {probs[index]:.4f}")


if __name__ == "__main__":
  main()
