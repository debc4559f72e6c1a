"""The model examples (examples/gpt2.py, llama.py, resnet.py) against their references: checkpoints written here,
offline, by transformers / torchvision with random weights, loaded by the examples, logits compared to 1e-4.
Each test skips when its reference package is not installed (they are optional, not in the test extra)."""
import os, sys
import numpy as np
import pytest
from teeny import Device, Tensor, dtypes

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import gpt2  # noqa: E402
import llama  # noqa: E402
import resnet  # noqa: E402


def import_torchvision():
  """torchvision, or None when it isn't installed. PyPI's torchvision wheel is built against PyTorch's CUDA build:
  beside the CPU build its compiled ops don't load, and its import fails registering `torchvision::nms` (and
  transformers, which imports torchvision when it and Pillow are installed, fails with it). The models need none
  of those ops, so then the two schemas it registers at import are declared first and the import is tried again."""
  try: import torch
  except ImportError: return None
  try:
    import torchvision
    return torchvision
  except ImportError: return None
  except RuntimeError as e:
    if "torchvision::nms" not in str(e): raise
  library = torch.library.Library("torchvision", "DEF")
  for op in ("nms", "qnms"): library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
  import_torchvision.library = library  # kept alive: dropping the Library object would drop the schemas
  import torchvision
  return torchvision


@pytest.fixture(scope="module", autouse=True)
def importable_torchvision():
  """Before transformers is used: an installed torchvision that fails to import would break it too (above)."""
  return import_torchvision()


@pytest.fixture
def on_device(device, monkeypatch):
  """The examples make their tensors on the default device: make it this test's device."""
  monkeypatch.setattr(Device, "DEFAULT", device)
  return device


# ---- sampling (no reference package needed) ----

def test_filter_logits_top_k_and_top_p():
  logits = np.log(np.array([0.1, 0.4, 0.05, 0.3, 0.15]))
  assert np.isfinite(gpt2.filter_logits(logits, top_k=2)).tolist() == [False, True, False, True, False]
  # sorted probabilities 0.4, 0.3, 0.15, ...: 0.4 + 0.3 = 0.7 reaches 0.65, so two survive; 0.75 needs a third
  assert np.isfinite(gpt2.filter_logits(logits, top_p=0.65)).tolist() == [False, True, False, True, False]
  assert np.isfinite(gpt2.filter_logits(logits, top_p=0.75)).tolist() == [False, True, False, True, True]
  assert np.isfinite(gpt2.filter_logits(logits, top_p=0.01)).tolist() == [False, True, False, False, False]
  assert np.isfinite(gpt2.filter_logits(logits)).all()


def test_sample_respects_filters_and_temperature_zero():
  logits = np.log(np.array([0.1, 0.4, 0.05, 0.3, 0.15]))
  rng = np.random.default_rng(0)
  assert gpt2.sample(logits, rng, temperature=0) == 1
  drawn = {gpt2.sample(logits, rng, temperature=1.5, top_k=2) for _ in range(200)}
  assert drawn == {1, 3}
  assert {gpt2.sample(logits, rng, top_p=0.65) for _ in range(200)} == {1, 3}
  with pytest.raises(ValueError, match="temperature"): gpt2.sample(logits, rng, temperature=-1)
  with pytest.raises(ValueError, match="top_p"): gpt2.sample(logits, rng, top_p=0)


# ---- GPT-2 vs transformers ----

PROMPT = [1, 5, 7, 22, 99, 3, 41, 8]


def make_gpt2(path, dtype="float32", shard: str | None = None):
  """A tiny random GPT-2 saved with save_pretrained (initializer_range 0.2: wide enough that greedy decoding
  doesn't settle on one token). Returns transformers' model, in float32, loaded back from that file."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  torch.manual_seed(0)
  cfg = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=100, n_positions=64, initializer_range=0.2,
                                bos_token_id=0, eos_token_id=0)
  model = transformers.GPT2LMHeadModel(cfg).to(getattr(torch, dtype))
  model.save_pretrained(path, **({"max_shard_size": shard} if shard else {}))
  return transformers.GPT2LMHeadModel.from_pretrained(path, dtype=torch.float32).eval()


def reference_logits(model, ids: list[int]) -> np.ndarray:
  import torch
  with torch.no_grad(): return model(torch.tensor([ids])).logits[0].numpy()


def teeny_logits(model, ids: list[int]) -> np.ndarray:
  return model.forward(Tensor([ids], dtype=dtypes.int32), Tensor(0, dtype=dtypes.int32))[0].numpy()


def reference_greedy(model, ids: list[int], max_new: int) -> list[int]:
  import torch
  with torch.no_grad():
    out = model.generate(torch.tensor([ids]), max_new_tokens=max_new, min_new_tokens=max_new, do_sample=False, pad_token_id=0)
  return out[0, len(ids):].tolist()


def test_gpt2_logits_match_transformers(tmp_path, on_device):
  reference = make_gpt2(tmp_path)
  model = gpt2.load_gpt2(str(tmp_path))
  diff = np.abs(teeny_logits(model, PROMPT) - reference_logits(reference, PROMPT)).max()
  assert diff < 1e-4, f"max |teeny - transformers| = {diff}"


def test_gpt2_greedy_generation_with_jit_matches_transformers(tmp_path, on_device):
  reference = make_gpt2(tmp_path)
  model = gpt2.load_gpt2(str(tmp_path), context=len(PROMPT) + 12)
  generator = gpt2.Generator(model)
  assert generator(PROMPT, 12) == reference_greedy(reference, PROMPT, 12)
  # the same capture serves another prompt: the cache is cleared in place, the steps replay
  assert generator(PROMPT[:3], 12) == reference_greedy(reference, PROMPT[:3], 12)
  assert generator.step.calls == 22 and generator.step._capture is not None


def test_gpt2_cached_steps_match_a_full_forward(tmp_path):
  """Token by token through the KV cache gives the logits of one pass over the whole sequence."""
  make_gpt2(tmp_path)
  model = gpt2.load_gpt2(str(tmp_path), context=len(PROMPT))
  full = teeny_logits(model, PROMPT)
  model.reset_cache()
  for i, token in enumerate(PROMPT):
    step = model.forward(Tensor([[token]], dtype=dtypes.int32), Tensor(i, dtype=dtypes.int32))[0, 0].numpy()
    np.testing.assert_allclose(step, full[i], atol=1e-5, rtol=0)


def test_gpt2_bfloat16_and_sharded_checkpoints(tmp_path):
  if not hasattr(dtypes, "bfloat16"): pytest.skip("teeny has no bfloat16")
  bf16 = make_gpt2(tmp_path / "bf16", dtype="bfloat16")
  model = gpt2.load_gpt2(str(tmp_path / "bf16"))
  diff = np.abs(teeny_logits(model, PROMPT) - reference_logits(bf16, PROMPT)).max()
  assert diff < 1e-4, f"bf16 checkpoint: max |teeny - transformers| = {diff}"
  sharded = make_gpt2(tmp_path / "sharded", shard="40KB")
  assert os.path.exists(tmp_path / "sharded" / "model.safetensors.index.json")
  model = gpt2.load_gpt2(str(tmp_path / "sharded"))
  diff = np.abs(teeny_logits(model, PROMPT) - reference_logits(sharded, PROMPT)).max()
  assert diff < 1e-4, f"sharded checkpoint: max |teeny - transformers| = {diff}"


def test_gpt2_command_line(tmp_path, capsys):
  reference = make_gpt2(tmp_path)
  gpt2.main(["--model", str(tmp_path), "--prompt-ids", ",".join(map(str, PROMPT)), "--max-new", "5"])
  out = capsys.readouterr().out
  assert "5 tokens in" in out and "compiles included" in out  # (the time, which says what it includes)
  ids = out.split("ids:")[1].split()[0]
  assert [int(i) for i in ids.split(",")] == reference_greedy(reference, PROMPT, 5)



def test_gpt2_command_line_with_a_tokenizer(tmp_path, capsys):
  """--prompt TEXT goes through the directory's tokenizer.json (a word-level one made here with `tokenizers`)."""
  tokenizers = pytest.importorskip("tokenizers")
  reference = make_gpt2(tmp_path)
  words = ["the", "cat", "sees", "a", "dog", "[UNK]"]
  tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
  tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
  tokenizer.save(str(tmp_path / "tokenizer.json"))
  gpt2.main(["--model", str(tmp_path), "--prompt", "the cat sees a dog", "--max-new", "4"])
  out = capsys.readouterr().out
  assert [int(i) for i in out.split("ids:")[1].split()[0].split(",")] == reference_greedy(reference, [0, 1, 2, 3, 4], 4)
  assert "text:" in out


def test_gpt2_hub_layout_without_prefix_and_with_mask_buffers(tmp_path):
  """GPT-2 as the Hub holds it: GPT2Model's names (no "transformer."), the causal-mask buffers attn.bias kept."""
  reference = make_gpt2(tmp_path)
  from safetensors.numpy import load_file, save_file
  weights = {name.removeprefix("transformer."): value for name, value in load_file(tmp_path / "model.safetensors").items()}
  for layer in range(2): weights[f"h.{layer}.attn.bias"] = np.tril(np.ones((1, 1, 64, 64), np.float32))
  save_file(weights, tmp_path / "model.safetensors")
  diff = np.abs(teeny_logits(gpt2.load_gpt2(str(tmp_path)), PROMPT) - reference_logits(reference, PROMPT)).max()
  assert diff < 1e-4, f"max |teeny - transformers| = {diff}"


def test_gpt2_incomplete_checkpoint_is_a_clear_error(tmp_path):
  make_gpt2(tmp_path)
  from safetensors.numpy import load_file, save_file
  weights = load_file(tmp_path / "model.safetensors")
  del weights["transformer.h.1.mlp.c_fc.weight"]
  save_file(weights, tmp_path / "model.safetensors")
  with pytest.raises(ValueError, match="h.1.mlp.c_fc.weight"): gpt2.load_gpt2(str(tmp_path))

# ---- LLaMA vs transformers ----

def make_llama(path, tie: bool = False):
  """A tiny random LLaMA with grouped-query attention (4 query heads sharing 2 key/value heads), saved with
  save_pretrained. Returns transformers' model."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  torch.manual_seed(0)
  cfg = transformers.LlamaConfig(num_hidden_layers=2, hidden_size=64, intermediate_size=96, num_attention_heads=4,
                                 num_key_value_heads=2, vocab_size=100, max_position_embeddings=64, initializer_range=0.2,
                                 rope_theta=500.0, rms_norm_eps=1e-5, tie_word_embeddings=tie,
                                 bos_token_id=0, eos_token_id=0, pad_token_id=0)
  model = transformers.LlamaForCausalLM(cfg).eval()
  model.save_pretrained(path)
  return model


def test_llama_gqa_logits_match_transformers(tmp_path, on_device):
  reference = make_llama(tmp_path)
  model = llama.load_llama(str(tmp_path))
  assert model.layers[0].self_attn.kv_heads < model.layers[0].self_attn.heads
  diff = np.abs(teeny_logits(model, PROMPT) - reference_logits(reference, PROMPT)).max()
  assert diff < 1e-4, f"max |teeny - transformers| = {diff}"


def test_llama_greedy_generation_with_jit_matches_transformers(tmp_path):
  reference = make_llama(tmp_path, tie=True)
  model = llama.load_llama(str(tmp_path), context=len(PROMPT) + 12)
  assert model.tied
  assert gpt2.generate(model, PROMPT, 12) == reference_greedy(reference, PROMPT, 12)


def write_gguf(path, reference, kind: str = "F32") -> dict:
  """reference's weights in a GGUF file named and laid out as llama.cpp's converter writes them (q/k rows
  interleaved per head), as F32 or Q8_0. Returns the weights as the file holds them, dequantized, by HF name."""
  gguf = pytest.importorskip("gguf")
  cfg = reference.config
  writer = gguf.GGUFWriter(str(path), "llama")
  writer.add_block_count(cfg.num_hidden_layers)
  writer.add_context_length(cfg.max_position_embeddings)
  writer.add_embedding_length(cfg.hidden_size)
  writer.add_feed_forward_length(cfg.intermediate_size)
  writer.add_head_count(cfg.num_attention_heads)
  writer.add_head_count_kv(cfg.num_key_value_heads)
  writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
  writer.add_rope_freq_base(llama.rope_theta(cfg.to_dict()))
  held = {}
  for hf_name, value in reference.state_dict().items():
    name = hf_name.removeprefix("model.")
    gguf_name = GGUF_OF.get(name) or gguf_layer_name(name)
    array = value.numpy()
    heads = {"attn_q": cfg.num_attention_heads, "attn_k": cfg.num_key_value_heads}.get(gguf_name.split(".")[-2])
    if heads: array = interleave_rope(array, heads)
    if kind == "Q8_0" and array.ndim == 2:
      quantized = gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0)
      writer.add_tensor(gguf_name, quantized, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
      array = gguf.quants.dequantize(quantized, gguf.GGMLQuantizationType.Q8_0)
      if heads: array = deinterleave_rope(array, heads)
    else: writer.add_tensor(gguf_name, array)
    held[hf_name] = array if not heads or kind == "Q8_0" else value.numpy()
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()
  return held


GGUF_OF = {"embed_tokens.weight": "token_embd.weight", "norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}


def gguf_layer_name(name: str) -> str:
  """layers.3.self_attn.q_proj.weight -> blk.3.attn_q.weight"""
  _, layer, rest = name.split(".", 2)
  module, suffix = rest.rsplit(".", 1)
  kind = {v: k for k, v in llama.GGUF_NAMES.items()}[module]
  return f"blk.{layer}.{kind}.{suffix}"


def interleave_rope(weight: np.ndarray, heads: int) -> np.ndarray:
  """llama.cpp's converter's reordering of q/k rows (the inverse of llama.unpermute_rope), written independently."""
  rows = weight.shape[0]
  return weight.reshape(heads, 2, rows // heads // 2, -1).swapaxes(1, 2).reshape(weight.shape)


def deinterleave_rope(weight: np.ndarray, heads: int) -> np.ndarray:
  """interleave_rope undone (numpy, for the reference's weights)."""
  rows = weight.shape[0]
  return weight.reshape(heads, rows // heads // 2, 2, -1).swapaxes(1, 2).reshape(weight.shape)


def test_llama_from_gguf_matches_transformers(tmp_path):
  reference = make_llama(tmp_path)
  write_gguf(tmp_path / "model.gguf", reference)
  model = llama.load_llama(str(tmp_path / "model.gguf"))
  diff = np.abs(teeny_logits(model, PROMPT) - reference_logits(reference, PROMPT)).max()
  assert diff < 1e-4, f"GGUF F32: max |teeny - transformers| = {diff}"


def test_llama_from_q8_0_gguf_matches_transformers_with_the_same_weights(tmp_path):
  """A Q8_0 file: transformers runs with the weights dequantized by the gguf package, teeny dequantizes its own."""
  torch = pytest.importorskip("torch")
  reference = make_llama(tmp_path)
  held = write_gguf(tmp_path / "model.gguf", reference, kind="Q8_0")
  original = reference.state_dict()["model.layers.0.self_attn.q_proj.weight"].numpy()
  assert 0 < np.abs(held["model.layers.0.self_attn.q_proj.weight"] - original).max() < 0.05  # quantized, but close
  reference.load_state_dict({name: torch.tensor(np.ascontiguousarray(value)) for name, value in held.items()})
  model = llama.load_llama(str(tmp_path / "model.gguf"))
  diff = np.abs(teeny_logits(model, PROMPT) - reference_logits(reference, PROMPT)).max()
  assert diff < 1e-4, f"GGUF Q8_0: max |teeny - transformers| = {diff}"


# ---- ResNet-18 vs torchvision ----

def test_resnet18_logits_match_torchvision(tmp_path, on_device):
  torch = pytest.importorskip("torch")
  torchvision = import_torchvision()
  if torchvision is None: pytest.skip("torchvision is not installed")
  torch.manual_seed(0)
  reference = torchvision.models.resnet18(weights=None, num_classes=10)
  for module in reference.modules():  # random statistics, so batch norm in eval isn't the identity
    if isinstance(module, torch.nn.BatchNorm2d):
      module.running_mean.uniform_(-0.5, 0.5)
      module.running_var.uniform_(0.5, 2.0)
      module.weight.data.uniform_(0.5, 1.5)
      module.bias.data.uniform_(-0.5, 0.5)
  reference.eval()
  torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
  images = np.random.default_rng(0).standard_normal((2, 3, 64, 64), dtype=np.float32)
  with torch.no_grad(): expected = reference(torch.tensor(images)).numpy()
  model = resnet.load_resnet(str(tmp_path / "resnet18.pth"))
  diff = np.abs(model(Tensor(images)).numpy() - expected).max()
  assert diff < 1e-4, f"max |teeny - torchvision| = {diff}"
