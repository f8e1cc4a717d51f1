"""Reranker training with batches of similar-length pairs (`reranker.group_by_length`) against
shuffled batches, in one run: the same pairs, model, precision and settings as the run's
train_reranker stage, one epoch each, taking turns.

    .venv/bin/python -m benchmarks.pair_batching --run DIR [--round r2] [--pairs 400] [--repeats 1]

DIR is a finished `dvc repro` checkout (its params.yaml, models/seed/reranker and
data/<round>/pairs). A seeded sample of --pairs of the pairs that round's reranker trained on
is encoded as the stage encodes them. Figures per order: pairs/s (TRL's train_runtime), the
share of the batches' tokens that are padding, and the training loss; the last line prints
the ratio of pairs/s, grouped over shuffled.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.generation.common import alternate


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, type=Path, help="a finished dvc repro checkout")
    parser.add_argument("--round", default="r2", help="whose training pairs (data/<round>/pairs)")
    parser.add_argument("--pairs", type=int, default=400, help="pairs per training (a seeded sample)")
    parser.add_argument("--repeats", type=int, default=1, help="alternating trainings of each order (median)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def encoded_pairs(run: Path, round_id: str, count: int, config, seed: int) -> list[dict]:
    """A seeded sample of the round's training pairs, as token ids the way train_reranker encodes them."""
    from transformers import AutoTokenizer

    from coderanker.generation import resolve_style
    from coderanker.jsonl import read_jsonl
    from coderanker.problems import by_name, load_problems
    from coderanker.reranker import encode_pairs, read_prompt_style
    from coderanker.training.reward import select_training_pairs

    init = run / "models/seed/reranker"
    tokenizer = AutoTokenizer.from_pretrained(init)
    style = resolve_style(read_prompt_style(init), tokenizer)
    problems = by_name(load_problems(run / "data/problems/train.jsonl"))
    pairs = select_training_pairs(read_jsonl(run / f"data/{round_id}/pairs/pairs.jsonl"), round_id, config)
    pairs = random.Random(seed).sample(pairs, min(count, len(pairs)))
    return encode_pairs(tokenizer, style, problems, pairs, config.max_length)


def padding_share(trainer) -> float:
    """Padding tokens over all tokens of the epoch's batches, as the trainer draws them."""
    padded = real = 0
    for batch in trainer.get_train_dataloader():
        padded += batch["input_ids"].numel()
        real += int(batch["attention_mask"].sum())
    return 1 - real / padded


def train_once(run: Path, pairs: list[dict], config, dtype: str) -> tuple[float, float, float]:
    """(pairs/s, padding share, mean training loss) of one epoch, set up as train_reward_model."""
    from transformers import PrinterCallback, ProgressCallback

    from coderanker.training.reward import reward_model, reward_trainer

    model, tokenizer = reward_model(run / "models/seed/reranker", config)
    trainer = reward_trainer(model, tokenizer, pairs, config, use_gpu=False, dtype=dtype)
    for callback in (PrinterCallback, ProgressCallback):  # the figures only
        trainer.remove_callback(callback)
    try:
        padding = padding_share(trainer)
        output = trainer.train()
    finally:
        shutil.rmtree(trainer.args.output_dir, ignore_errors=True)
    return len(pairs) / output.metrics["train_runtime"], padding, output.training_loss


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    from benchmarks.generation.run import quiet
    from coderanker.config import load_params, section
    from coderanker.runtime import training_dtype
    from coderanker.training.ray_train import RayTrainConfig
    from coderanker.training.reward import RerankerTrainConfig

    quiet()
    params = load_params(args.run / "params.yaml")
    config = section(params, "reranker", RerankerTrainConfig, str(args.run / "params.yaml"))
    dtype = training_dtype(params, RayTrainConfig())
    pairs = encoded_pairs(args.run, args.round, args.pairs, config, args.seed)
    lengths = [max(len(p["chosen_ids"]), len(p["rejected_ids"])) for p in pairs]
    print(f"{len(pairs)} of {args.round}'s training pairs, longer side {statistics.mean(lengths):.0f} tokens on "
          f"average ({min(lengths)}-{max(lengths)}); batch {config.batch_size}, top {config.trainable_layers} "
          f"layers trained, {dtype}, one epoch each, {args.repeats} turn(s)", flush=True)
    figures = alternate({order: lambda grouped=grouped: train_once(args.run, pairs,
                                                                    replace(config, group_by_length=grouped), dtype)
                         for order, grouped in (("shuffled", False), ("grouped", True))}, args.repeats)
    for order, (rate, padding, loss) in figures.items():
        print(f"{order:>8}: {rate:.2f} pairs/s, {padding:.1%} of tokens padding, training loss {loss:.4f}")
    print(f"group_by_length: {figures['grouped'][0] / figures['shuffled'][0]:.2f}x the pairs/s of shuffled batches")


if __name__ == "__main__":
    main()
