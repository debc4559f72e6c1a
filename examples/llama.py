"""LLaMA in teeny: RMSNorm, rotary position embeddings (RoPE), a SwiGLU MLP and grouped-query attention, loaded
from a Hugging Face `LlamaForCausalLM` checkpoint directory or from a llama.cpp GGUF file, generating with a KV
cache under TinyJit (the same generation loop and sampling as gpt2.py).

Run it on your own checkpoint: a directory holding `config.json` and `model.safetensors` (or a sharded
`model.safetensors.index.json`), or a `.gguf` file (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K tensors, dequantized
to float32 at load):

    python examples/llama.py --model /path/to/llama-dir --prompt-ids 1,450,4996 --max-new 20
    python examples/llama.py --model /path/to/model.gguf --prompt-ids 1,450,4996 --max-new 20
    python examples/llama.py --model /path/to/llama-dir --prompt "Once upon a time" --top-k 40 --temperature 0.8

Nothing is downloaded. Everything is computed in float32; the whole model is held in memory as float32, so this
is for small models (a 1B model needs about 5 GB).
"""
from __future__ import annotations
import math, os
import numpy as np
from teeny import Tensor, nn, dtypes
from teeny.nn.state import gguf_load, load_state_dict, get_state_dict
import gpt2  # the shared pieces: checkpoint reading, the KV cache, attention, sampling, generate, the command line
from gpt2 import KVCache, cached_attention


def rope_angles(positions: Tensor, head_dim: int, theta: float) -> tuple[Tensor, Tensor]:
  """cos and sin (T, head_dim) of each position's rotation angles, in Hugging Face's layout: the frequencies for
  the first half of a head's dimensions, repeated for the second half (rotate_half pairs i with i + head_dim/2)."""
  inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
  angles = positions.float().unsqueeze(1) * Tensor(inv_freq.astype(np.float32), device=positions.device)
  angles = angles.cat(angles, dim=1)
  return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
  """Rotate x (..., T, head_dim): x * cos + rotate_half(x) * sin, with rotate_half(a, b) = (-b, a)."""
  half = x.shape[-1] // 2
  rotated = (-x[..., half:]).cat(x[..., :half], dim=-1)
  return x * cos + rotated * sin


class Attention:
  """Grouped-query attention: `heads` query heads share `kv_heads` key/value heads (heads // kv_heads each)."""
  def __init__(self, cfg: dict, context: int):
    dim, self.heads, self.kv_heads = cfg["hidden_size"], cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    if self.heads % self.kv_heads: raise ValueError(f"num_attention_heads {self.heads} is not a multiple of num_key_value_heads {self.kv_heads}")
    self.head_dim = cfg.get("head_dim") or dim // self.heads
    bias = cfg.get("attention_bias", False)
    self.q_proj = nn.Linear(dim, self.heads * self.head_dim, bias=bias)
    self.k_proj = nn.Linear(dim, self.kv_heads * self.head_dim, bias=bias)
    self.v_proj = nn.Linear(dim, self.kv_heads * self.head_dim, bias=bias)
    self.o_proj = nn.Linear(self.heads * self.head_dim, dim, bias=bias)
    self.cache = KVCache(self.kv_heads, context, self.head_dim)

  def __call__(self, x: Tensor, positions: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    batch, length, _ = x.shape
    q = self.q_proj(x).reshape(batch, length, self.heads, self.head_dim).transpose(1, 2)
    k = self.k_proj(x).reshape(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
    v = self.v_proj(x).reshape(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
    keys, values = self.cache.write(apply_rope(k, cos, sin), v, positions)
    # each kv head serves a group of consecutive query heads: group the queries, broadcast the keys over the group
    q = apply_rope(q, cos, sin).reshape(batch, self.kv_heads, self.heads // self.kv_heads, length, self.head_dim)
    y = cached_attention(q, keys.unsqueeze(2), values.unsqueeze(2), positions, 1 / math.sqrt(self.head_dim))
    return self.o_proj(y.reshape(batch, self.heads, length, self.head_dim).transpose(1, 2).reshape(batch, length, -1))


class MLP:
  """SwiGLU: down(silu(gate(x)) * up(x))."""
  def __init__(self, dim: int, inner: int, bias: bool):
    self.gate_proj, self.up_proj = nn.Linear(dim, inner, bias=bias), nn.Linear(dim, inner, bias=bias)
    self.down_proj = nn.Linear(inner, dim, bias=bias)

  def __call__(self, x: Tensor) -> Tensor: return self.down_proj(self.gate_proj(x).silu() * self.up_proj(x))


class Layer:
  """Pre-norm decoder layer: x + attention(rmsnorm(x)), then x + mlp(rmsnorm(x))."""
  def __init__(self, cfg: dict, context: int):
    dim, eps = cfg["hidden_size"], cfg.get("rms_norm_eps", 1e-6)
    self.input_layernorm, self.post_attention_layernorm = nn.RMSNorm(dim, eps=eps), nn.RMSNorm(dim, eps=eps)
    self.self_attn = Attention(cfg, context)
    self.mlp = MLP(dim, cfg["intermediate_size"], cfg.get("mlp_bias", False))

  def __call__(self, x: Tensor, positions: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    x = x + self.self_attn(self.input_layernorm(x), positions, cos, sin)
    return x + self.mlp(self.post_attention_layernorm(x))


def rope_theta(cfg: dict) -> float:
  """RoPE's base: `rope_theta`, or (transformers 5) `rope_parameters["rope_theta"]`. Only the default rope type."""
  params = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
  kind = params.get("rope_type", params.get("type", "default"))
  if kind != "default": raise ValueError(f"rope type {kind!r} is not supported by this example (only 'default')")
  return float(params.get("rope_theta", cfg.get("rope_theta", 10000.0)))


class Llama:
  """LlamaForCausalLM. Attribute names follow the Hugging Face checkpoint's keys (less their "model." prefix)."""
  def __init__(self, cfg: dict, context: int | None = None):
    limit = cfg.get("max_position_embeddings", 2048)
    self.context = min(context or limit, limit)
    self.theta, self.head_dim = rope_theta(cfg), cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
    self.layers = [Layer(cfg, self.context) for _ in range(cfg["num_hidden_layers"])]
    self.norm = nn.RMSNorm(cfg["hidden_size"], eps=cfg.get("rms_norm_eps", 1e-6))
    self.tied = cfg.get("tie_word_embeddings", False)
    self.lm_head = None if self.tied else nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)

  def reset_cache(self):
    """Forget every cached key and value (a new sequence)."""
    for layer in self.layers: layer.self_attn.cache.reset()

  def forward(self, tokens: Tensor, start_pos: Tensor) -> Tensor:
    """Logits (1, T, vocab) for tokens (1, T) at positions start_pos .. start_pos + T - 1 (start_pos: an int32
    Tensor of shape ()), attending to what the cache holds before them. Writes their keys and values. One sequence
    at a time: the cache holds one."""
    positions = start_pos + Tensor.arange(tokens.shape[1], dtype=dtypes.int32, device=tokens.device)
    cos, sin = rope_angles(positions, self.head_dim, self.theta)
    x = self.embed_tokens(tokens)
    for layer in self.layers: x = layer(x, positions, cos, sin)
    x = self.norm(x)
    return x @ self.embed_tokens.weight.T if self.tied else self.lm_head(x)

  __call__ = forward


def load_weights(model: Llama, weights: dict[str, Tensor], source: str) -> Llama:
  """Fill the model from weights named like its state dict; every weight must be there (the caches are not)."""
  wanted = [n for n in get_state_dict(model) if not n.endswith(("cache_k", "cache_v"))]
  missing = [n for n in wanted if n not in weights]
  if missing: raise ValueError(f"{source}: the checkpoint lacks {len(missing)} weight(s), e.g. {missing[:5]}")
  load_state_dict(model, {n: weights[n] for n in wanted}, strict=False)  # not strict: the caches are not in the file
  return model


def load_hf(model_dir: str, context: int | None = None) -> Llama:
  """A Llama from a Hugging Face checkpoint directory (config.json + safetensors, any float dtype)."""
  cfg = gpt2.read_config(model_dir)
  weights = {name.removeprefix("model."): value for name, value in gpt2.load_safetensors(model_dir).items()}
  return load_weights(Llama(cfg, context), weights, model_dir)


# ---- GGUF ----

GGUF_NAMES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
              "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
              "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}


def gguf_config(meta: dict, weights: dict[str, Tensor]) -> dict:
  """A Hugging Face-style config from a GGUF file's `llama.*` metadata."""
  arch = meta.get("general.architecture", "llama")
  if arch != "llama": raise ValueError(f"this example reads GGUF files of the llama architecture, not {arch!r}")
  vocab, dim = weights["token_embd.weight"].shape
  heads = int(meta["llama.attention.head_count"])
  return {"hidden_size": dim, "vocab_size": vocab, "num_hidden_layers": int(meta["llama.block_count"]),
          "num_attention_heads": heads, "num_key_value_heads": int(meta.get("llama.attention.head_count_kv", heads)),
          "intermediate_size": int(meta["llama.feed_forward_length"]),
          "rms_norm_eps": float(meta.get("llama.attention.layer_norm_rms_epsilon", 1e-5)),
          "rope_theta": float(meta.get("llama.rope.freq_base", 10000.0)),
          "max_position_embeddings": int(meta.get("llama.context_length", 2048)),
          "head_dim": int(meta.get("llama.attention.key_length", dim // heads)),
          "tie_word_embeddings": "output.weight" not in weights}


def unpermute_rope(weight: Tensor, heads: int) -> Tensor:
  """llama.cpp stores q/k projections with each head's rows interleaved (pairs (2i, 2i+1) rotate together, Meta's
  layout); Hugging Face's rotate_half pairs i with i + head_dim/2. Reorder the rows back to Hugging Face's."""
  rows, cols = weight.shape
  return weight.reshape(heads, rows // heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def gguf_to_hf_names(name: str) -> str:
  """A GGUF tensor name as the model's: blk.3.attn_q.weight -> layers.3.self_attn.q_proj.weight."""
  fixed = {"token_embd.weight": "embed_tokens.weight", "output_norm.weight": "norm.weight", "output.weight": "lm_head.weight"}
  if name in fixed: return fixed[name]
  _, layer, kind, suffix = name.split(".", 3)
  return f"layers.{layer}.{GGUF_NAMES.get(kind, kind)}.{suffix}"


def load_gguf(path: str, context: int | None = None) -> Llama:
  """A Llama from a llama.cpp GGUF file (quantized tensors come back dequantized to float32)."""
  meta, tensors = gguf_load(path)
  cfg = gguf_config(meta, tensors)
  weights = {}
  for name, value in tensors.items():
    if name.endswith("attn_q.weight"): value = unpermute_rope(value, cfg["num_attention_heads"])
    if name.endswith("attn_k.weight"): value = unpermute_rope(value, cfg["num_key_value_heads"])
    weights[gguf_to_hf_names(name)] = value
  return load_weights(Llama(cfg, context), weights, path)


def load_llama(path: str, context: int | None = None) -> Llama:
  """A Llama from a .gguf file or a Hugging Face checkpoint directory."""
  return load_gguf(path, context) if os.path.isfile(path) and path.endswith(".gguf") else load_hf(path, context)


if __name__ == "__main__":
  gpt2.main(load=load_llama, doc=__doc__)
