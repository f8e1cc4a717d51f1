"""DVC stage sample@<round>: the round's generator samples candidates for every problem file.

PROBLEMS/<set>.jsonl -> OUT/<set>.jsonl; evaluation sets also get one greedy candidate. The
first round's training candidates also include the programs the training sources ship
(PROBLEMS/candidates/train.jsonl: CodeContests' solutions and incorrect solutions)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, type=Path, help="generator directory")
    parser.add_argument("--problems", required=True, type=Path, help="directory of problem files")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--round", required=True)
    parser.add_argument("--previous", default="seed",
                        help="the round this one builds on; 'seed' marks the first round")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    from coderanker.config import load_params, section
    from coderanker.generation import SamplingConfig, planted_reference, resolve_style
    from coderanker.jsonl import read_jsonl, write_jsonl
    from coderanker.problems import load_problems
    from coderanker.runtime import Placement
    from coderanker.tracking import stage_run
    from coderanker.vllm_backend import require_vllm, sampler
    from pipelines.common import problem_files, setup_logging, stage_outputs

    setup_logging()
    params = load_params(args.params)
    config = section(params, "sample", SamplingConfig, args.params)
    placement = Placement.from_params(params)
    if config.backend == "vllm":
        require_vllm()  # before a run opens or a model loads
    inputs = [args.model, args.problems]
    with stage_run("sample", args.round, {"sample": asdict(config), "placement": asdict(placement)}, inputs) as run, \
            stage_outputs(f"sample@{args.round}", args.out, run=run) as out:
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        sample = sampler(config.backend, args.model, tokenizer, placement)
        for path in problem_files(args.problems):
            set_config = set_sampling(config, is_eval=path.stem.startswith("eval"))
            problems = load_problems(path)
            candidates = list(sample(problems, set_config, generator_id=str(args.model), round_id=args.round))
            if path.stem.startswith("eval") and config.plant_eval_references:
                style = resolve_style(config.prompt_style, tokenizer)
                candidates += [planted_reference(p, style, set_config.samples_per_problem, str(args.model), args.round)
                               for p in problems if p.reference is not None]
            shipped = args.problems / "candidates" / "train.jsonl"
            if path.stem == "train" and config.dataset_candidates and args.previous == "seed" and shipped.exists():
                candidates += [{**c, "round": args.round} for c in read_jsonl(shipped)]
            count = write_jsonl(out / path.name, candidates)
            run.log_metrics({f"candidates.{path.stem}": count})
            print(f"{path.stem}: {count} candidates")


def set_sampling(config, is_eval: bool):
    """Evaluation sets: eval_samples_per_problem samples and a greedy one, no references;
    training sets: samples and the references, no greedy."""
    from dataclasses import replace

    if is_eval:
        return replace(config, include_references=False,
                       samples_per_problem=config.eval_samples_per_problem or config.samples_per_problem)
    return replace(config, greedy=False)


if __name__ == "__main__":
    from pipelines.common import entry

    entry(main)
