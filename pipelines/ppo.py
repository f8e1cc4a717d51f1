"""DVC stage ppo@<round>: train the round's policy against the previous round's reranker
(TRL PPO or GRPO on Ray Train). Rounds with ppo disabled (the bootstrap r0) pass the
seed policy through unchanged. -> OUT (a policy directory)."""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import asdict
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--problems", required=True, type=Path)
    parser.add_argument("--seed-policy", required=True, type=Path)
    parser.add_argument("--previous-policy", required=True, type=Path)
    parser.add_argument("--reranker", required=True, type=Path, help="the previous round's reranker (reward)")
    parser.add_argument("--enabled", required=True, help="true/false: train this round")
    parser.add_argument("--round", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)

    from coderanker.config import load_params, section
    from coderanker.tracking import stage_run
    from coderanker.training.policy import PolicyTrainConfig
    from coderanker.training.ray_train import RayTrainConfig, read_training_log
    from pipelines.common import flag, setup_logging, stage_outputs

    setup_logging()
    params = load_params(args.params)
    config = section(params, "ppo", PolicyTrainConfig, args.params)
    ray_config = section(params, "ray", RayTrainConfig, args.params)
    init = args.seed_policy if config.init == "base" else args.previous_policy
    inputs = [args.problems, init, args.reranker]
    with stage_run("ppo", args.round, {"ppo": asdict(config), "ray": asdict(ray_config)}, inputs) as run, \
            stage_outputs(f"ppo@{args.round}", args.out, run=run) as out:
        if not flag(args.enabled):
            shutil.copytree(init, out, dirs_exist_ok=True)
            metrics = {"trained": False}
        else:
            metrics = train(args, params, init, config, ray_config, out)
            (out / "train_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
            run.log_curves(read_training_log(out))
            run.log_metrics(metrics, prefix="final.")
    print(json.dumps(metrics, indent=2))


def train(args, params, init, config, ray_config, out: Path) -> dict:
    from transformers import AutoTokenizer

    from coderanker.generation import model_input, prompt_ids, resolve_style
    from coderanker.problems import load_problems
    from coderanker.reranker import fence_id
    from coderanker.runtime import training_dtype
    from coderanker.training.policy import train_policy

    tokenizer = AutoTokenizer.from_pretrained(init)
    style = resolve_style(params.get("sample", {}).get("prompt_style", "auto"), tokenizer)
    prompts = [{"input_ids": prompt_ids(p, tokenizer, style), "text": model_input(p, tokenizer, style)}
               for p in load_problems(args.problems / "train.jsonl")]
    stop = fence_id(tokenizer) if style == "prefill" else None
    return train_policy(prompts, init, args.reranker, out, config, ray_config,
                        training_dtype(params, ray_config), stop)


if __name__ == "__main__":
    from pipelines.common import entry

    entry(main)
