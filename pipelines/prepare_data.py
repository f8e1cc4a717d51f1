"""DVC stage prepare_data: resolve the `data` section into problem files.

Writes OUT/train.jsonl and OUT/eval-<set>.jsonl (one per evaluation set),
OUT/candidates/train.jsonl (programs the training sources ship: CodeContests' solutions and
incorrect solutions, which the first round's candidates include), and the seed round's
(empty) pair set that round r0 accumulates onto."""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed-pairs", required=True, type=Path, help="directory of the empty seed pair set")
    args = parser.parse_args(argv)

    from coderanker.config import DataConfig, load_params, section
    from coderanker.jsonl import write_jsonl
    from coderanker.sources import load_source, source_candidates
    from pipelines.common import setup_logging, stage_outputs

    setup_logging()
    data = section(load_params(args.params), "data", DataConfig, args.params)
    with stage_outputs("prepare_data", args.out, args.seed_pairs) as (out, seed_pairs):
        train = [problem for source in data.train for problem in load_source(source)]
        files = {"train": train[: data.train_limit or None]}
        for name, spec in data.eval_sets().items():
            files[f"eval-{name}"] = load_source(spec.source)[: spec.limit or None]
        for name, problems in files.items():
            write_jsonl(out / f"{name}.jsonl", (problem.to_record() for problem in problems))
            print(f"{name}: {len(problems)} problems")
        kept = {problem.name for problem in files["train"]}
        shipped = [c for source in data.train for c in source_candidates(source) if c["name"] in kept]
        write_jsonl(out / "candidates" / "train.jsonl", shipped)
        print(f"train: {len(shipped)} candidates shipped with the problems")
        write_jsonl(seed_pairs / "pairs.jsonl", [])


if __name__ == "__main__":
    from pipelines.common import entry

    entry(main)
