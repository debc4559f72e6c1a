"""GPT-2 in teeny: the Hugging Face GPT-2 architecture, loaded from a Hugging Face checkpoint directory, generating
with a KV cache under TinyJit.

Run it on your own checkpoint: a directory holding `config.json` and `model.safetensors` (or a sharded
`model.safetensors.index.json` with its shards), as `save_pretrained` writes it or as the Hub serves it:

    python examples/gpt2.py --model /path/to/gpt2 --prompt-ids 464,2068,7586 --max-new 20
    python examples/gpt2.py --model /path/to/gpt2 --prompt "The quick brown" --max-new 20   # needs `tokenizers`
    python examples/gpt2.py --model /path/to/gpt2 --prompt-ids 464 --bench                   # tokens/s vs transformers

Nothing is downloaded: the weights come from the path you give. `--temperature 0` is greedy decoding; otherwise
tokens are drawn after `--top-k` / `--top-p` filtering. fp32, fp16 and bf16 checkpoints load (computed in fp32).

How generation runs: every layer keeps a key/value cache of a fixed length (the context), and the position of
the tokens fed in is a Tensor input, not a Python int. Writes into the cache and the attention mask are both
computed from that Tensor, so every decoding step has the same shapes and the same graph: TinyJit captures the
kernels of one step and replays them for all the others. The prompt goes in first, in one call outside the jit.
"""
from __future__ import annotations
import argparse, json, math, os, time
import numpy as np
from teeny import Context, Device, Tensor, TinyJit, nn, dtypes
from teeny.nn.state import safe_load, load_state_dict, get_state_dict

# ---- shared by the model examples (llama.py imports these) ----

def read_config(model_dir: str) -> dict:
  """The model's config.json as a dict."""
  with open(os.path.join(model_dir, "config.json")) as f: return json.load(f)


def load_safetensors(model_dir: str) -> dict[str, Tensor]:
  """Every tensor of a Hugging Face checkpoint directory: a sharded one (model.safetensors.index.json) or one file."""
  index = os.path.join(model_dir, "model.safetensors.index.json")
  single = os.path.join(model_dir, "model.safetensors")
  if os.path.exists(index): return safe_load(index)
  if os.path.exists(single): return safe_load(single)
  raise FileNotFoundError(f"{model_dir} holds neither model.safetensors nor model.safetensors.index.json")


def cache_write(cache: Tensor, new: Tensor, positions: Tensor) -> Tensor:
  """cache (batch, heads, context, head_dim) with rows `positions` (T,) replaced by new (batch, heads, T, head_dim).
  Done with a comparison instead of slicing because the positions are a Tensor (so one jit capture fits all)."""
  slots = Tensor.arange(cache.shape[2], dtype=positions.dtype, device=cache.device)
  hit = slots.unsqueeze(1) == positions.unsqueeze(0)  # (context, T): which new row lands in which slot
  placed = hit.unsqueeze(-1).where(new.unsqueeze(2), 0.0).sum(3)  # (batch, heads, context, head_dim)
  return cache.assign(hit.any(1).unsqueeze(-1).where(placed, cache))


def cached_attention(q: Tensor, keys: Tensor, values: Tensor, positions: Tensor, scale: float) -> Tensor:
  """softmax(q k^T * scale) v over the cache, each query (at positions[i]) seeing the slots up to its own position.
  Slots after the last written one hold zeros or stale values; the mask hides them."""
  slots = Tensor.arange(keys.shape[-2], dtype=positions.dtype, device=keys.device)
  visible = slots.unsqueeze(0) <= positions.unsqueeze(1)  # (T, context)
  scores = (q @ keys.transpose(-1, -2)) * scale
  return visible.where(scores, -math.inf).softmax(-1) @ values


def filter_logits(logits: np.ndarray, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
  """logits with everything outside the top_k largest and outside the smallest set of tokens whose probability
  reaches top_p set to -inf (0 and 1.0 switch a filter off). The most likely token always survives."""
  out = logits.astype(np.float64).copy()
  if 0 < top_k < out.size: out[out < np.sort(out)[-top_k]] = -np.inf
  if top_p < 1.0:
    order = np.argsort(-out, kind="stable")
    probs = np.exp(out[order] - out[order[0]])
    cumulative = np.cumsum(probs / probs.sum())
    keep = np.searchsorted(cumulative, top_p) + 1  # tokens before the one that crosses top_p, and that one
    out[order[keep:]] = -np.inf
  return out


def sample(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> int:
  """One token id from the last position's logits: argmax when temperature is 0, else a draw after filtering."""
  if temperature < 0: raise ValueError(f"temperature must be >= 0, got {temperature}")
  if top_k < 0 or not 0 < top_p <= 1: raise ValueError(f"top_k must be >= 0 and top_p in (0, 1], got {top_k} and {top_p}")
  if temperature == 0: return int(np.argmax(logits))
  kept = filter_logits(logits / temperature, top_k, top_p)
  probs = np.exp(kept - kept.max())
  return int(rng.choice(probs.size, p=probs / probs.sum()))


class Generator:
  """Generation for one model: the prompt in one call, then one token per call of a TinyJit-captured step. The
  model is any with `forward(tokens, start_pos) -> logits`, `context` and `reset_cache()` (GPT2 here, Llama in
  llama.py). The capture is kept between calls: reset_cache clears the same cache buffers it writes."""
  def __init__(self, model):
    self.model, self.step = model, TinyJit(model.forward)

  def __call__(self, prompt: list[int], max_new: int, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
               seed: int = 0) -> list[int]:
    """The prompt's continuation, max_new token ids (one prompt: batch 1)."""
    if len(prompt) == 0: raise ValueError("generate needs a prompt of at least one token id")
    if len(prompt) + max_new > self.model.context:
      raise ValueError(f"prompt ({len(prompt)}) + max_new ({max_new}) tokens exceed the model's context of {self.model.context}")
    rng = np.random.default_rng(seed)
    self.model.reset_cache()
    # the prompt's length varies from call to call, so it runs outside the jit (its kernels are cached all the same)
    logits = self.model.forward(Tensor([prompt], dtype=dtypes.int32), Tensor(0, dtype=dtypes.int32))
    out: list[int] = []
    for i in range(max_new):
      out.append(sample(logits[0, -1].numpy(), rng, temperature, top_k, top_p))
      if i + 1 == max_new: break
      position = Tensor(len(prompt) + i, dtype=dtypes.int32)
      logits = self.step(Tensor([[out[-1]]], dtype=dtypes.int32), position)
    return out


def generate(model, prompt: list[int], max_new: int, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
             seed: int = 0) -> list[int]:
  """Generator(model)(...): one generation, with a capture of its own."""
  return Generator(model)(prompt, max_new, temperature, top_k, top_p, seed)


class KVCache:
  """One attention layer's keys and values, (1, kv_heads, context, head_dim) each, in buffers that stay put."""
  def __init__(self, kv_heads: int, context: int, head_dim: int):
    # realized zeros: the jit must see buffers it can write, not lazy constants
    self.cache_k = Tensor.zeros(1, kv_heads, context, head_dim).contiguous().realize()
    self.cache_v = Tensor.zeros(1, kv_heads, context, head_dim).contiguous().realize()

  def reset(self):
    """Zeros again, written into the same buffers (a captured jit step keeps writing those)."""
    Tensor.realize_all(self.cache_k.assign(self.cache_k.zeros_like()), self.cache_v.assign(self.cache_v.zeros_like()))

  def write(self, k: Tensor, v: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
    """The caches with k, v (1, kv_heads, T, head_dim) written at positions (T,)."""
    return cache_write(self.cache_k, k, positions), cache_write(self.cache_v, v, positions)


# ---- GPT-2 ----

ACTIVATIONS = {"gelu_new": lambda x: x.gelu(), "gelu_pytorch_tanh": lambda x: x.gelu(), "gelu_fast": lambda x: x.gelu(),
               "gelu": lambda x: x.gelu(approximate="none"), "relu": lambda x: x.relu(), "silu": lambda x: x.silu(),
               "swish": lambda x: x.silu(), "quick_gelu": lambda x: x.quick_gelu()}


class Attention:
  """Multi-head causal self-attention with a key/value cache of `context` slots."""
  def __init__(self, dim: int, heads: int, context: int, scale: float):
    self.heads, self.head_dim, self.scale = heads, dim // heads, scale
    self.c_attn, self.c_proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
    self.cache = KVCache(heads, context, self.head_dim)

  def __call__(self, x: Tensor, positions: Tensor) -> Tensor:
    batch, length, dim = x.shape
    q, k, v = self.c_attn(x).reshape(batch, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
    keys, values = self.cache.write(k, v, positions)
    y = cached_attention(q, keys, values, positions, self.scale)  # (batch, heads, length, head_dim)
    return self.c_proj(y.transpose(1, 2).reshape(batch, length, dim))


class MLP:
  """dim -> inner -> dim with the config's activation."""
  def __init__(self, dim: int, inner: int, activation: str):
    if activation not in ACTIVATIONS: raise ValueError(f"activation_function {activation!r} is not one of {', '.join(ACTIVATIONS)}")
    self.c_fc, self.c_proj, self.act = nn.Linear(dim, inner), nn.Linear(inner, dim), ACTIVATIONS[activation]

  def __call__(self, x: Tensor) -> Tensor: return self.c_proj(self.act(self.c_fc(x)))


class Block:
  """Pre-norm transformer block, GPT-2's: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""
  def __init__(self, cfg: dict, layer: int, context: int):
    dim, heads = cfg["n_embd"], cfg["n_head"]
    scale = 1 / math.sqrt(dim // heads) if cfg.get("scale_attn_weights", True) else 1.0
    if cfg.get("scale_attn_by_inverse_layer_idx", False): scale /= layer + 1
    self.ln_1 = nn.LayerNorm(dim, eps=cfg.get("layer_norm_epsilon", 1e-5))
    self.attn = Attention(dim, heads, context, scale)
    self.ln_2 = nn.LayerNorm(dim, eps=cfg.get("layer_norm_epsilon", 1e-5))
    self.mlp = MLP(dim, cfg.get("n_inner") or 4 * dim, cfg.get("activation_function", "gelu_new"))

  def __call__(self, x: Tensor, positions: Tensor) -> Tensor:
    x = x + self.attn(self.ln_1(x), positions)
    return x + self.mlp(self.ln_2(x))


class GPT2:
  """GPT2LMHeadModel. Attribute names follow the checkpoint's keys, so load_state_dict fills them directly."""
  def __init__(self, cfg: dict, context: int | None = None):
    self.context = min(context or cfg["n_positions"], cfg["n_positions"])
    self.wte, self.wpe = nn.Embedding(cfg["vocab_size"], cfg["n_embd"]), nn.Embedding(cfg["n_positions"], cfg["n_embd"])
    self.h = [Block(cfg, i, self.context) for i in range(cfg["n_layer"])]
    self.ln_f = nn.LayerNorm(cfg["n_embd"], eps=cfg.get("layer_norm_epsilon", 1e-5))

  def reset_cache(self):
    """Forget every cached key and value (a new sequence)."""
    for block in self.h: block.attn.cache.reset()

  def forward(self, tokens: Tensor, start_pos: Tensor) -> Tensor:
    """Logits (1, T, vocab) for tokens (1, T) at positions start_pos .. start_pos + T - 1 (start_pos: an int32
    Tensor of shape ()), attending to what the cache holds before them. Writes their keys and values. One sequence
    at a time: the cache holds one."""
    positions = start_pos + Tensor.arange(tokens.shape[1], dtype=dtypes.int32, device=tokens.device)
    x = self.wte(tokens) + self.wpe(positions)
    for block in self.h: x = block(x, positions)
    return self.ln_f(x) @ self.wte.weight.T  # the head shares the token embedding (tied weights)

  __call__ = forward


def hf_to_teeny(weights: dict[str, Tensor]) -> dict[str, Tensor]:
  """Rename a Hugging Face GPT-2 state dict to GPT2's names. GPT-2's Conv1D stores weights (in, out), the
  transpose of a Linear's; the attention's causal-mask buffers (attn.bias, attn.masked_bias) and the tied
  lm_head are dropped."""
  out = {}
  for name, value in weights.items():
    name = name.removeprefix("transformer.")
    if name.endswith((".attn.bias", ".attn.masked_bias")) or name == "lm_head.weight": continue
    if name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")): value = value.T
    out[name] = value
  return out


def check_complete(model, weights: dict[str, Tensor], model_dir: str) -> None:
  """Raise if the checkpoint leaves any of the model's weights unset (the KV caches are not weights)."""
  wanted = [n for n in get_state_dict(model) if not n.endswith(("cache_k", "cache_v"))]
  missing = [n for n in wanted if n not in weights]
  if missing: raise ValueError(f"{model_dir}: the checkpoint lacks {len(missing)} weight(s), e.g. {missing[:5]}")


def load_gpt2(model_dir: str, context: int | None = None) -> GPT2:
  """A GPT2 with the weights of the Hugging Face checkpoint in model_dir (config.json + safetensors), computing
  in float32 whatever the file's dtype. context: the KV cache's length (default: the config's n_positions)."""
  model = GPT2(read_config(model_dir), context)
  weights = hf_to_teeny(load_safetensors(model_dir))
  check_complete(model, weights, model_dir)
  load_state_dict(model, weights, strict=False)  # not strict: the caches are in the model, not in the file
  return model


# ---- the command line ----

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def load_tokenizer(model_dir: str):
  """The directory's tokenizer as (encode: str -> ids, decode: ids -> str), or None when it holds no tokenizer
  files or neither `tokenizers` nor `transformers` is installed (both optional)."""
  if not os.path.isdir(model_dir) or not any(os.path.exists(os.path.join(model_dir, f)) for f in TOKENIZER_FILES): return None
  if os.path.exists(os.path.join(model_dir, "tokenizer.json")):
    try:
      from tokenizers import Tokenizer
      tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
      return (lambda text: tok.encode(text).ids), tok.decode
    except ImportError: pass
  try:
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    return tok.encode, tok.decode
  except (ImportError, OSError, ValueError): return None


def prompt_ids(args, tokenizer) -> list[int]:
  """The prompt as token ids, from --prompt-ids or (with a tokenizer) --prompt."""
  if args.prompt_ids: return [int(i) for i in args.prompt_ids.split(",")]
  if args.prompt is None: raise SystemExit("give --prompt-ids 1,2,3 or --prompt TEXT")
  if tokenizer is None: raise SystemExit(f"--prompt needs tokenizer files in {args.model} and `tokenizers` or `transformers` installed; use --prompt-ids")
  ids = tokenizer[0](args.prompt)
  if not ids: raise SystemExit(f"the tokenizer in {args.model} turned {args.prompt!r} into no tokens")
  return ids


def bench_transformers(model_dir: str, prompt: list[int], max_new: int) -> float | None:
  """Greedy tokens/s of transformers' own model (eager, CPU, fp32) on the same prompt; None when it can't run."""
  try:
    import torch
    from transformers import AutoModelForCausalLM
  except ImportError: return None
  try: hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
  except (ImportError, OSError, ValueError) as e:  # a broken install, or a checkpoint transformers can't read (a .gguf)
    print(f"transformers could not load {model_dir}: {e}")
    return None
  ids = torch.tensor([prompt])
  with torch.no_grad():
    def run(): hf.generate(ids, max_new_tokens=max_new, min_new_tokens=max_new, do_sample=False, pad_token_id=0)
    return max_new / best_time(run)


def best_time(run, repeats: int = 3) -> float:
  """The fastest of `repeats` timed calls of run, after one untimed call (compiles, captures, warms caches)."""
  run()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
  return min(times)


def bench(model, model_dir: str, prompt: list[int], max_new: int) -> None:
  """Print greedy tokens/s, the best of 3 runs after a warm-up: teeny, then transformers eager."""
  generator = Generator(model)
  teeny_rate = max_new / best_time(lambda: generator(prompt, max_new))
  print(f"teeny:        {teeny_rate:8.1f} tokens/s ({max_new} new tokens after {len(prompt)} prompt tokens, greedy)")
  theirs = bench_transformers(model_dir, prompt, max_new)
  if theirs is None: print("transformers: not measured")
  else: print(f"transformers: {theirs:8.1f} tokens/s (eager, fp32, same prompt and length)")


def main(argv=None, load=None, doc: str = __doc__):
  """The command line of gpt2.py (llama.py passes its own loader and docstring)."""
  parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", required=True, help="checkpoint directory: config.json + model.safetensors[.index.json]")
  parser.add_argument("--prompt-ids", default=None, help="comma-separated token ids, e.g. 464,2068,7586")
  parser.add_argument("--prompt", default=None, help="text (needs tokenizer files and `tokenizers` or `transformers`)")
  parser.add_argument("--max-new", type=int, default=20, help="tokens to generate")
  parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
  parser.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0: all)")
  parser.add_argument("--top-p", type=float, default=1.0, help="keep the most likely tokens up to this probability")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--bench", action="store_true", help="print tokens/s of teeny and of transformers eager")
  parser.add_argument("--device", default=None, help="LLVM or CL (default: teeny's default device)")
  args = parser.parse_args(argv)
  if args.device: Device.DEFAULT = args.device
  tokenizer = load_tokenizer(args.model)
  prompt = prompt_ids(args, tokenizer)
  model = (load or load_gpt2)(args.model, context=len(prompt) + args.max_new)
  if args.bench: return bench(model, args.model, prompt, args.max_new)
  start = time.perf_counter()
  with Context(PROGRESS=1):  # (the prompt's call and the first steps compile their kernels: show how far they are)
    new = generate(model, prompt, args.max_new, args.temperature, args.top_k, args.top_p, args.seed)
  print(f"{len(new)} tokens in {time.perf_counter() - start:.2f} s, compiles included (--bench times them without)")
  print("ids:", ",".join(map(str, new)))
  if tokenizer is not None: print("text:", tokenizer[1](prompt + new))


if __name__ == "__main__":
  main()
