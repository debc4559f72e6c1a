"""A small decoder-only transformer (GPT) trained character by character with teeny.

The text is made up here by a little grammar (so it ships with the example and needs no download): sentences
about animals doing things. The model sees 32 characters and learns to predict the next one; the loss falls from
log(vocabulary) ~ 3.3 toward ~1, and the samples at the end look like the grammar's sentences.

Run `DEBUG=2 python examples/gpt.py --steps 1` to see the kernels of one training step.
"""
import argparse, math, time
import numpy as np
from teeny import Tensor, Device, Context, nn
from teeny.nn.optim import AdamW
from teeny.nn.state import get_parameters


def make_text(sentences: int, rng: np.random.Generator) -> str:
  animals = ["the cat", "a dog", "the old fox", "my bird", "a small mouse", "the horse"]
  verbs = ["sees", "chases", "likes", "finds", "follows", "hears"]
  places = ["in the garden", "by the river", "under the tree", "at night", "on the hill", "near the house"]
  out = []
  for _ in range(sentences):
    a, b = rng.choice(animals), rng.choice(animals)
    out.append(f"{a} {rng.choice(verbs)} {b} {rng.choice(places)}.")
  return " ".join(out) + " "


class Block:
  """Pre-norm transformer block: x + attention(layernorm(x)), then x + mlp(layernorm(x))."""
  def __init__(self, dim: int, heads: int):
    self.heads = heads
    self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
    self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
    self.fc, self.out = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

  def attention(self, x: Tensor) -> Tensor:
    batch, time_, dim = x.shape
    q, k, v = self.qkv(x).reshape(batch, time_, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
    y = q.scaled_dot_product_attention(k, v, is_causal=True)  # (batch, heads, time, head_dim)
    return self.proj(y.transpose(1, 2).reshape(batch, time_, dim))

  def __call__(self, x: Tensor) -> Tensor:
    x = x + self.attention(self.ln1(x))
    return x + self.out(self.fc(self.ln2(x)).gelu())


class GPT:
  def __init__(self, vocab: int, context: int, dim: int = 64, heads: int = 4, layers: int = 2):
    self.token, self.position = nn.Embedding(vocab, dim), nn.Embedding(context, dim)
    self.blocks = [Block(dim, heads) for _ in range(layers)]
    self.ln, self.head = nn.LayerNorm(dim), nn.Linear(dim, vocab)

  def __call__(self, tokens: Tensor) -> Tensor:
    positions = Tensor.arange(tokens.shape[1]).reshape(1, -1)
    x = self.token(tokens) + self.position(positions)
    for block in self.blocks: x = block(x)
    return self.head(self.ln(x))  # (batch, time, vocab) logits


def sample(model: GPT, prompt: list[int], length: int, context: int, rng: np.random.Generator, temperature: float = 0.7) -> list[int]:
  """Extend the prompt a character at a time, always feeding the last `context` characters (one shape: one compile)."""
  out = list(prompt)
  for _ in range(length):
    window = Tensor(np.array([out[-context:]], dtype=np.int32))
    logits = model(window)[0, -1].numpy().astype(np.float64) / temperature
    probs = np.exp(logits - logits.max())
    out.append(int(rng.choice(len(probs), p=probs / probs.sum())))
  return out


def train(args) -> float:
  if args.device: Device.DEFAULT = args.device
  rng = np.random.default_rng(args.seed)
  Tensor.manual_seed(args.seed)
  text = make_text(2000, rng)
  chars = sorted(set(text))
  encode = {c: i for i, c in enumerate(chars)}
  data = np.array([encode[c] for c in text], dtype=np.int32)
  print(f"{len(text)} characters, vocabulary {len(chars)}, context {args.context}, on {Device.DEFAULT}")

  model = GPT(len(chars), args.context, args.dim, args.heads, args.layers)
  opt = AdamW(get_parameters(model), lr=args.lr, weight_decay=0.01)
  print(f"{sum(p.numel() for p in get_parameters(model)):,} parameters")
  compiler = Device[Device.DEFAULT].compiler
  loss_value, start, compiled = math.log(len(chars)), time.perf_counter(), compiler.compiles
  for step in range(1, args.steps + 1):
    starts = rng.integers(0, len(data) - args.context - 1, args.batch_size)
    x = Tensor(np.stack([data[s:s + args.context] for s in starts]))
    y = Tensor(np.stack([data[s + 1:s + args.context + 1] for s in starts]))
    with Tensor.train(), Context(PROGRESS=int(step == 1)):  # (the first step compiles: show how far it is)
      opt.zero_grad()
      loss = model(x).sparse_categorical_crossentropy(y)
      loss.backward()
      loss_value = loss.item()  # read before the step changes the weights the loss reads
      opt.step()
    if step == 1:  # (scheduling and compiling happen here: reported apart, and left out of ms/step)
      print(f"step    1  loss {loss_value:.4f}  {time.perf_counter() - start:7.2f} s, {compiler.compiles - compiled} programs compiled "
            "(the others came from teeny's disk cache)")
      start = time.perf_counter()
    elif step % args.print_every == 0:
      print(f"step {step:4d}  loss {loss_value:.4f}  {(time.perf_counter() - start) / (step - 1) * 1e3:7.1f} ms/step (steps 2-{step})")
  prompt = [encode[c] for c in text[:args.context]]
  print("sample:", "".join(chars[i] for i in sample(model, prompt, args.sample, args.context, rng)))
  return loss_value


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--device", default=None, help="CL or LLVM (default: teeny's default device)")
  parser.add_argument("--steps", type=int, default=150)
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--context", type=int, default=32)
  parser.add_argument("--dim", type=int, default=64)
  parser.add_argument("--heads", type=int, default=4)
  parser.add_argument("--layers", type=int, default=2)
  parser.add_argument("--lr", type=float, default=3e-3)
  parser.add_argument("--sample", type=int, default=200, help="characters to generate at the end")
  parser.add_argument("--print-every", type=int, default=25)
  parser.add_argument("--seed", type=int, default=0)
  train(parser.parse_args())
