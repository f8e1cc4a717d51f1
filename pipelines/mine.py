"""DVC stage mine@<round>: accumulate reranker training pairs, mining hard negatives with
the previous round's reranker. -> OUT/pairs.jsonl (all pairs so far), OUT/report.json."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--problems", required=True, type=Path)
    parser.add_argument("--results", required=True, type=Path, help="the round's execution results")
    parser.add_argument("--previous-pairs", required=True, type=Path, help="the previous round's pairs directory")
    parser.add_argument("--scorer", required=True, type=Path, help="the previous round's reranker")
    parser.add_argument("--hard-negatives", required=True, help="true/false: mine hard negatives this round")
    parser.add_argument("--round", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)

    from coderanker.config import load_params, section
    from coderanker.jsonl import read_jsonl, write_jsonl
    from coderanker.mining import mine_file
    from coderanker.pairs import PairConfig
    from coderanker.problems import by_name, load_problems
    from coderanker.reranker import Reranker
    from coderanker.runtime import Placement
    from coderanker.tracking import stage_run
    from coderanker.training.reward import RerankerTrainConfig
    from pipelines.common import flag, setup_logging, stage_outputs

    setup_logging()
    params = load_params(args.params)
    config = section(params, "pairs", PairConfig, args.params)
    rerank = section(params, "reranker", RerankerTrainConfig, args.params)
    inputs = [args.problems, args.results, args.previous_pairs, args.scorer]
    with stage_run("mine", args.round, {"pairs": asdict(config)}, inputs) as run, \
            stage_outputs(f"mine@{args.round}", args.out, run=run) as out:
        problems = by_name(load_problems(args.problems / "train.jsonl"))
        scorer = None
        if flag(args.hard_negatives):
            scorer = Reranker.load(str(args.scorer), placement=Placement.from_params(params),
                                   max_length=rerank.max_length, batch_size=rerank.score_batch_size)
        pairs, report = mine_file(args.results / "train.jsonl", read_jsonl(args.previous_pairs / "pairs.jsonl"),
                                  problems, args.round, config, scorer)
        write_jsonl(out / "pairs.jsonl", pairs)
        (out / "report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
        run.log_metrics(asdict(report))
        run.log_artifact(out / "report.json")
    print(json.dumps(asdict(report), indent=2))


if __name__ == "__main__":
    from pipelines.common import entry

    entry(main)
