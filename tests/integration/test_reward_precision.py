"""Reranker training (TRL RewardTrainer on Ray Train) in bf16 mixed precision and in fp32,
on the CPU: both learn the same pairs."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def pairs_for(tokenizer, style: str) -> list[dict]:
    from coderanker.reranker import encode_pair
    from coderanker.sources import starter

    records = []
    for problem in starter("train")[:8]:
        chosen = encode_pair(tokenizer, style, problem, problem.reference, 256)
        rejected = encode_pair(tokenizer, style, problem, "    return None\n", 256)
        records.append({"chosen_ids": chosen, "rejected_ids": rejected})
    return records


@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
def test_reward_training_learns_in_either_precision(tiny_model_dir, tmp_path, dtype):
    import ray
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from coderanker.reranker import init_reranker
    from coderanker.training.ray_train import RayTrainConfig, trainer_defaults
    from coderanker.training.reward import RerankerTrainConfig, train_reranker

    assert trainer_defaults(False, "t-", dtype)["bf16"] is (dtype == "bf16")
    init = init_reranker(tiny_model_dir, tmp_path / "seed")
    tokenizer = AutoTokenizer.from_pretrained(init)
    config = RerankerTrainConfig(epochs=4.0, learning_rate=1e-3, batch_size=4, max_length=256, fit_eval_pairs=0)
    try:
        metrics = train_reranker(pairs_for(tokenizer, "prefill"), init, tmp_path / "out", config,
                                 RayTrainConfig(num_workers=1, cpus_per_worker=1), dtype=dtype)
    finally:
        ray.shutdown()
    assert metrics["train_loss_after"] < metrics["train_loss_before"], metrics
    assert metrics["train_pair_accuracy_after"] >= 0.75, metrics
    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out")
    assert saved.config.num_labels == 1
