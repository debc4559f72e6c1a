"""The model examples (examples/gpt2.py, llama.py, resnet.py) against their references: checkpoints written here,
offline, by transformers / torchvision with random weights, loaded by the examples, logits compared to 1e-4.
Each test skips when its reference package is not installed (they are optional, not in the test extra)."""
import os, sys
import numpy as np
import pytest
from teeny import Device, Tensor, dtypes

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import gpt2  # noqa: E402


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
  assert gpt2.generate(model, PROMPT, 12) == reference_greedy(reference, PROMPT, 12)
  assert gpt2.generate(model, PROMPT[:3], 12) == reference_greedy(reference, PROMPT[:3], 12)  # reset cache, new capture


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
  ids = capsys.readouterr().out.split("ids:")[1].split()[0]
  assert [int(i) for i in ids.split(",")] == reference_greedy(reference, PROMPT, 5)
