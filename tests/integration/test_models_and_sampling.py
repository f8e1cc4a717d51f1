"""Model preparation (the real GGUF path included) and batched sampling with real models."""

from __future__ import annotations

import json

import pytest

from coderanker.generation import SamplingConfig, generate
from coderanker.sources import starter

pytestmark = pytest.mark.integration


def test_default_gguf_becomes_an_equivalent_safetensors_directory(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from coderanker.models import load_gguf, prepare_model, smollm2_gguf_path

    out = prepare_model("smollm2-gguf", tmp_path / "base")
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    saved = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template and tokenizer.pad_token is not None
    original, _ = load_gguf(smollm2_gguf_path())
    ids = tokenizer("def add(a, b):\n    return", return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(saved(**ids).logits, original(**ids).logits, atol=1e-5)


def test_sampling_is_batched_seeded_and_in_schema(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    problems = starter("eval")[:3]
    config = SamplingConfig(samples_per_problem=2, max_new_tokens=8, batch_size=4, seed=7)
    first = list(generate(model, tokenizer, problems, config, generator_id="tiny", round_id="r0"))
    again = list(generate(model, tokenizer, problems, config, generator_id="tiny", round_id="r0"))
    assert first == again  # seeded
    assert len(first) == 3 * 2 + 3  # samples + one greedy per problem
    assert {c["name"] for c in first} == {p.name for p in problems}
    assert sorted(c["sample"] for c in first if c["name"] == problems[0].name) == [-1, 0, 1]
    assert all(set(c) >= {"name", "language", "completion", "sample", "greedy", "generator", "round"}
               for c in first)
    other_seed = list(generate(model, tokenizer, problems, SamplingConfig(
        samples_per_problem=2, max_new_tokens=8, batch_size=4, seed=8), round_id="r0"))
    assert [c["completion"] for c in other_seed if not c["greedy"]] != [
        c["completion"] for c in first if not c["greedy"]]


def test_reranker_can_keep_the_bottom_layers_of_the_base(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from coderanker.reranker import init_reranker

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    full = AutoModelForSequenceClassification.from_pretrained(init_reranker(tiny_model_dir, tmp_path / "full"))
    cut = AutoModelForSequenceClassification.from_pretrained(
        init_reranker(tiny_model_dir, tmp_path / "cut", layers=1))
    assert len(full.model.layers) == base.config.num_hidden_layers == 2
    assert len(cut.model.layers) == cut.config.num_hidden_layers == 1
    # the kept layer is the base's first, its weights unchanged
    for name, tensor in cut.model.layers[0].state_dict().items():
        assert torch.equal(tensor, base.model.layers[0].state_dict()[name]), name
    assert cut(input_ids=torch.tensor([[1, 2, 3, 4]])).logits.shape == (1, 1)
