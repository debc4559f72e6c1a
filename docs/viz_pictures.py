"""Makes the viewer's pages and the pictures in README.md and docs/walkthrough.md (run from the repository root):

  python docs/viz_pictures.py                # writes docs/img/*.html (not committed) and, with chromium, docs/img/*.png

The micrograd expression (a*b + c).relu() and its backward; one training step of a small MLP (8-16-4, ReLU,
cross-entropy, SGD, batch 32): the forward and backward realize (the loss and the gradients), then the update.
Screenshots are taken with Debian's chromium: `chromium --headless --screenshot --window-size=W,H page.html#fit`.
"""
import os, shutil, subprocess, sys
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from teeny import Tensor  # noqa: E402
from teeny.nn import Linear  # noqa: E402
from teeny.nn.optim import SGD  # noqa: E402
from teeny.nn.state import get_parameters  # noqa: E402
import teeny.viz as viz  # noqa: E402

IMG = os.path.join(ROOT, "docs", "img")


def micrograd():
  a, b, c = Tensor(2.0, requires_grad=True), Tensor(-3.0, requires_grad=True), Tensor(10.0, requires_grad=True)
  out = (a * b + c).relu()
  out.backward()
  return [out, a.grad, b.grad, c.grad]


def mlp_step():
  """The two realizes of one training step: (loss and gradients, the parameter updates)."""
  rng = np.random.default_rng(0)
  Tensor.manual_seed(0)
  model = [Linear(8, 16), Tensor.relu, Linear(16, 4)]
  params = get_parameters(model)
  for p in params: p.realize()
  opt = SGD(params, lr=0.1)
  x, y = Tensor(rng.standard_normal((32, 8), dtype=np.float32)), Tensor(rng.integers(0, 4, 32).astype(np.int32))
  with Tensor.train():
    logits = x
    for layer in model: logits = layer(logits)
    loss = logits.cross_entropy(y)
    loss.backward()
    forward_backward = [loss, *[p.grad for p in params]]
    viz.graph(forward_backward, os.path.join(IMG, "mlp_step.html"), run=True, title="MLP 8-16-4 step: loss and gradients")
    viz.dot(forward_backward, os.path.join(IMG, "mlp_step.dot"), title="MLP 8-16-4 step: loss and gradients")
    updates = opt.schedule_step()  # (realizes the loss and the gradients, as opt.step() does)
    viz.graph(updates, os.path.join(IMG, "mlp_update.html"), title="MLP 8-16-4 step: the SGD update")
    Tensor.realize_all(*updates)


def screenshot(page: str, png: str, size: str, fragment: str = "fit"):
  uri = "file://" + os.path.join(IMG, page) + "#" + fragment
  subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                  f"--screenshot={os.path.join(IMG, png)}", f"--window-size={size}", uri], check=True, capture_output=True, timeout=120)


if __name__ == "__main__":
  os.makedirs(IMG, exist_ok=True)
  viz.graph(micrograd(), os.path.join(IMG, "micrograd.html"), run=True, title="micrograd: (a*b + c).relu() and its backward")
  mlp_step()
  if shutil.which("chromium") is None: sys.exit("no chromium: pages written, no screenshots")
  screenshot("micrograd.html", "viz_micrograd.png", "1500,900", "kernel=4")
  screenshot("mlp_step.html", "viz_mlp_step.png", "1600,1000")
  screenshot("mlp_step.html", "viz_mlp_kernel.png", "1600,1000", "fit,kernel=3")
  screenshot("mlp_update.html", "viz_mlp_update.png", "1500,700")
  print("wrote", ", ".join(sorted(f for f in os.listdir(IMG) if f.endswith(".png"))))
