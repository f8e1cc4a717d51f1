"""DVC stage sample@<round>: the round's generator samples candidates for every problem file.

PROBLEMS/<set>.jsonl -> OUT/<set>.jsonl; evaluation sets also get one greedy candidate."""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, type=Path, help="generator directory")
    parser.add_argument("--problems", required=True, type=Path, help="directory of problem files")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--round", required=True)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from coderanker.config import load_params, section
    from coderanker.generation import SamplingConfig, generate
    from coderanker.jsonl import write_jsonl
    from coderanker.problems import load_problems
    from coderanker.tracking import stage_run
    from pipelines.common import problem_files, setup_logging, timed_stage

    setup_logging()
    config = section(load_params(args.params), "sample", SamplingConfig, args.params)
    inputs = [args.model, args.problems]
    with stage_run("sample", args.round, {"sample": asdict(config)}, inputs) as run, \
            timed_stage(args.out, "sample", round=args.round):
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        model = AutoModelForCausalLM.from_pretrained(args.model)
        for path in problem_files(args.problems):
            is_eval = path.stem.startswith("eval")
            set_config = replace(config, include_references=False) if is_eval else replace(config, greedy=False)
            candidates = generate(model, tokenizer, load_problems(path), set_config,
                                  generator_id=str(args.model), round_id=args.round)
            count = write_jsonl(args.out / path.name, candidates)
            run.log_metrics({f"candidates.{path.stem}": count})
            print(f"{path.stem}: {count} candidates")


if __name__ == "__main__":
    main()
