"""reranker.group_by_length: TRL's RewardTrainer batches pairs of similar length, every
pair once an epoch, and pads fewer tokens than the shuffled order."""

from __future__ import annotations

import random


def varied_pairs(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    pairs = []
    for index in range(count):
        prompt = [rng.randrange(10, 400) for _ in range(rng.randrange(20, 120))]
        pairs.append({"chosen_ids": prompt + [rng.randrange(10, 400) for _ in range(rng.randrange(2, 40))],
                      "rejected_ids": prompt + [index % 300 + 10] + [rng.randrange(10, 400)
                                                                     for _ in range(rng.randrange(2, 40))]})
    return pairs


def batches(tiny_model_dir, tmp_path, pairs, group: bool) -> list[list[int]]:
    """The training batches' pair indices (rejected ids identify a pair), as the trainer draws them."""
    import os

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from coderanker.training.reward import RerankerTrainConfig, reward_trainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    config = RerankerTrainConfig(batch_size=4, max_length=256, group_by_length=group, seed=0)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the trainer's output directory is relative
    try:
        trainer = reward_trainer(model, tokenizer, pairs, config, use_gpu=False, dtype="fp32")
        drawn = []
        index = {tuple(p["rejected_ids"]): i for i, p in enumerate(pairs)}
        for batch in trainer.get_train_dataloader():
            ids, mask = batch["input_ids"], batch["attention_mask"]
            half = len(ids) // 2
            rows = zip(ids[half:], mask[half:], strict=True)  # right-padded
            drawn.append([index[tuple(row[: int(m.sum())].tolist())] for row, m in rows])
        return drawn
    finally:
        os.chdir(cwd)


def padded_tokens(pairs: list[dict], drawn: list[list[int]]) -> int:
    return sum(2 * len(b) * max(max(len(pairs[i]["chosen_ids"]), len(pairs[i]["rejected_ids"])) for i in b)
               for b in drawn)


def test_grouped_batches_see_every_pair_once_and_pad_less(tiny_model_dir, tmp_path):
    pairs = varied_pairs(96)
    grouped = batches(tiny_model_dir, tmp_path, pairs, group=True)
    shuffled = batches(tiny_model_dir, tmp_path, pairs, group=False)
    assert sorted(i for b in grouped for i in b) == list(range(len(pairs)))
    assert sorted(i for b in shuffled for i in b) == list(range(len(pairs)))
    assert padded_tokens(pairs, grouped) < 0.9 * padded_tokens(pairs, shuffled)
    # seeded: the same order again
    assert batches(tiny_model_dir, tmp_path, pairs, group=True) == grouped
