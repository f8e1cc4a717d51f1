"""Reranker throughput: scoring (candidates/s) and Bradley-Terry training (pairs/s), fp32 and bf16."""

from __future__ import annotations

import functools
import shutil
import time

from benchmarks.generation.common import alternate
from coderanker.runtime import Placement

TRAIN_STEPS, TRAIN_BATCH = 8, 4  # timed RewardTrainer steps (after one warm-up step), pairs per step


def scoring(path: str, device: str, problems, candidates: list[dict], repeats: int, style: str) -> dict:
    """Median candidates/s of Reranker.score_candidates in fp32 and in bf16."""
    from coderanker.reranker import Reranker

    by_name = {p.name: p for p in problems}
    rerankers = {dtype: Reranker.load(path, placement=Placement(device, dtype), prompt_style=style)
                 for dtype in ("fp32", "bf16")}
    for reranker in rerankers.values():
        reranker.score_candidates(by_name, candidates[:2])  # warm-up

    def rate(reranker) -> tuple[float]:
        start = time.perf_counter()
        reranker.score_candidates(by_name, candidates)
        return (len(candidates) / (time.perf_counter() - start),)

    return alternate({dtype: functools.partial(rate, r) for dtype, r in rerankers.items()}, repeats)


def shared_query(path: str, device: str, problems, candidates: list[dict], repeats: int, style: str) -> dict:
    """Median candidates/s in fp32 of score_candidates (each problem's query run once, its
    cache shared by the answers) against score_ids on whole sequences (the previous path)."""
    from coderanker.reranker import Reranker, candidate_response

    by_name = {p.name: p for p in problems}
    reranker = Reranker.load(path, placement=Placement(device, "fp32"), prompt_style=style)

    def shared() -> tuple[float]:
        start = time.perf_counter()
        reranker.score_candidates(by_name, candidates)
        return (len(candidates) / (time.perf_counter() - start),)

    def whole() -> tuple[float]:
        start = time.perf_counter()
        reranker.score_ids([reranker.encode(by_name[c["name"]], candidate_response(c)) for c in candidates])
        return (len(candidates) / (time.perf_counter() - start),)

    return alternate({"shared": shared, "whole": whole}, repeats)


def training_pairs(path: str, problems, candidates: list[dict], style: str, count: int) -> list[dict]:
    """Consecutive candidates of the same problem as (chosen, rejected) token ids, cycled to `count`."""
    from transformers import AutoTokenizer

    from coderanker.reranker import candidate_response, encode_pair
    from coderanker.training.reward import RerankerTrainConfig

    tokenizer, length = AutoTokenizer.from_pretrained(path), RerankerTrainConfig().max_length
    by_name = {p.name: p for p in problems}
    pairs = [{key: encode_pair(tokenizer, style, by_name[c["name"]], candidate_response(c), length)
              for key, c in (("chosen_ids", first), ("rejected_ids", second))}
             for first, second in zip(candidates, candidates[1:], strict=False) if first["name"] == second["name"]]
    if not pairs:
        raise SystemExit("no two candidates of the same problem to pair: use --samples 2 or more")
    return [pairs[i % len(pairs)] for i in range(count)]


def training_rate(path: str, pairs: list[dict], dtype: str, use_gpu: bool) -> tuple[float]:
    """Pairs/s of RewardTrainer steps after one warm-up step, set up as reward_worker does."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import RewardConfig, RewardTrainer

    from coderanker.training.ray_train import trainer_defaults
    from coderanker.training.reward import RerankerTrainConfig

    class Clock(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []

        def on_step_end(self, *_, **__):
            self.times.append(time.perf_counter())

    config, clock = RerankerTrainConfig(), Clock()
    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    defaults = {**trainer_defaults(use_gpu, "bench-reward-", dtype), "logging_strategy": "no"}
    args = RewardConfig(max_steps=TRAIN_STEPS + 1, per_device_train_batch_size=TRAIN_BATCH,
                        max_length=config.max_length, learning_rate=config.learning_rate, seed=config.seed,
                        gradient_checkpointing=config.gradient_checkpointing, disable_tqdm=True, **defaults)
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(pairs),
                            processing_class=tokenizer, callbacks=[clock])
    trainer.remove_callback(PrinterCallback)
    try:
        trainer.train()
    finally:
        shutil.rmtree(defaults["output_dir"], ignore_errors=True)
    return (TRAIN_STEPS * TRAIN_BATCH / (clock.times[-1] - clock.times[0]),)


def training_dtype(use_gpu: bool, dtype: str) -> str:
    """The precision trainer_defaults trains in for a resolved `model.dtype`."""
    from coderanker.training.ray_train import trainer_defaults

    defaults = trainer_defaults(use_gpu, "bench-reward-", dtype)
    shutil.rmtree(defaults["output_dir"], ignore_errors=True)
    return "bf16" if defaults.get("bf16") else "fp32"


def training(path: str, problems, candidates: list[dict], repeats: int, style: str, use_gpu: bool) -> dict:
    """Median pairs/s of RewardTrainer steps with fp32 and with bf16 mixed precision."""
    pairs = training_pairs(path, problems, candidates, style, (TRAIN_STEPS + 1) * TRAIN_BATCH)
    return alternate({dtype: functools.partial(training_rate, path, pairs, dtype, use_gpu)
                      for dtype in ("fp32", "bf16")}, repeats)
