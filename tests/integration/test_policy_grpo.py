"""GRPO, the alternative to PPO, trains a tiny policy against a tiny reranker on Ray Train."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def test_grpo_trains_and_saves_a_policy(tiny_model_dir, tmp_path):
    import ray
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from coderanker.generation import model_input, prompt_ids
    from coderanker.reranker import init_reranker
    from coderanker.sources import starter
    from coderanker.training.policy import PolicyTrainConfig, train_policy
    from coderanker.training.ray_train import RayTrainConfig, read_training_log

    reranker = init_reranker(tiny_model_dir, tmp_path / "reranker")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = [{"input_ids": prompt_ids(p, tokenizer, "prefill"), "text": model_input(p, tokenizer, "prefill")}
               for p in starter("train")[:4]]
    config = PolicyTrainConfig(algorithm="grpo", total_episodes=8, batch_size=4, grpo_num_generations=4,
                               response_length=8, learning_rate=1e-3, reward_eval_prompts=0)
    try:
        metrics = train_policy(prompts, tiny_model_dir, reranker, tmp_path / "policy", config,
                               RayTrainConfig(num_workers=1, cpus_per_worker=1))
    finally:
        ray.shutdown()
    assert metrics["steps"] == 2, metrics
    history = read_training_log(tmp_path / "policy")
    assert any("reward" in entry for entry in history)
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "policy")
    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    moved = sum((a - b).abs().sum().item() for a, b in zip(trained.parameters(), original.parameters(), strict=True))
    assert moved > 0
    assert json.loads((tmp_path / "policy" / "config.json").read_text())["model_type"] == "llama"
