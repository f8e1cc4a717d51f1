"""DVC stage train_reranker@<round>: Bradley-Terry training (TRL RewardTrainer on Ray Train)
on every pair accumulated so far. -> OUT (a reranker directory with training_log.json), also
logged to MLflow as the pyfunc model `reranker` (coderanker.serving)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--problems", required=True, type=Path)
    parser.add_argument("--pairs", required=True, type=Path, help="the round's pairs directory")
    parser.add_argument("--seed-reranker", required=True, type=Path)
    parser.add_argument("--previous-reranker", required=True, type=Path)
    parser.add_argument("--policy", required=True, type=Path,
                        help="the seed policy: the likelihood prior's model (reranker.likelihood_weight)")
    parser.add_argument("--round", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    from coderanker.config import load_params, section
    from coderanker.generation import resolve_style
    from coderanker.jsonl import read_jsonl
    from coderanker.problems import by_name, load_problems
    from coderanker.reranker import attach_likelihood, encode_pairs, read_prompt_style
    from coderanker.runtime import training_dtype
    from coderanker.serving import log_reranker
    from coderanker.tracking import stage_run
    from coderanker.training.ray_train import RayTrainConfig, read_training_log
    from coderanker.training.reward import (
        RerankerTrainConfig,
        round_config,
        select_training_pairs,
        train_reranker,
    )
    from pipelines.common import setup_logging, stage_outputs

    setup_logging()
    params = load_params(args.params)
    config = section(params, "reranker", RerankerTrainConfig, args.params)
    ray_config = section(params, "ray", RayTrainConfig, args.params)
    init = args.seed_reranker if config.init == "seed" else args.previous_reranker
    # r0 names the seed as its previous round: only later rounds continue a trained reranker
    config = round_config(config, init.resolve() != args.seed_reranker.resolve())
    inputs = [args.problems, args.pairs, init] + ([args.policy] if config.likelihood_weight else [])
    with stage_run("train_reranker", args.round, {"reranker": asdict(config), "ray": asdict(ray_config)},
                   inputs) as run, stage_outputs(f"train_reranker@{args.round}", args.out, run=run) as out:
        tokenizer = AutoTokenizer.from_pretrained(init)
        style = resolve_style(read_prompt_style(init), tokenizer)  # the style the reranker was made for
        problems = by_name(load_problems(args.problems / "train.jsonl"))
        pairs = select_training_pairs(read_jsonl(args.pairs / "pairs.jsonl"), args.round, config)
        encoded = encode_pairs(tokenizer, style, problems, pairs, config.max_length)
        metrics = train_reranker(encoded, init, out, config, ray_config, training_dtype(params, ray_config))
        attach_likelihood(out, args.policy, config.likelihood_weight, style)  # writes coderanker.json
        (out / "train_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        run.log_curves(read_training_log(out))
        run.log_metrics(metrics, prefix="final.")
        log_reranker(run, out)  # the MLflow model `reranker` (pyfunc), which evaluate registers
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    from pipelines.common import entry

    entry(main)
