"""DVC stage evaluate@<round>: the round's reranker scores the round's evaluation
candidates -> metrics/<round>.json (DESIGN.md format) and OUT_SCORED/<set>.jsonl.

The first evaluation set is reported as `eval`; every set is under `eval_sets`; `languages`
pools the sets by their problems' language (the paper's Table 1: greedy, random, reranked,
pruned-reranked and oracle pass@1 per language, and their average over languages)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

LANGUAGE_TABLE = "tables/pass_at_1_by_language.json"
"""The evaluate run's MLflow table of the `languages` block: one row per language, then the average."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--problems", required=True, type=Path)
    parser.add_argument("--results", required=True, type=Path, help="directory of execution results")
    parser.add_argument("--reranker", required=True, type=Path)
    parser.add_argument("--pairs", required=True, type=Path, help="the round's pairs directory (report.json)")
    parser.add_argument("--pool", type=Path, help="the first round's execution results: the shared pool on which "
                        "this round's reranker is compared with --previous-reranker")
    parser.add_argument("--previous-reranker", type=Path, help="the previous round's reranker")
    parser.add_argument("--round", required=True)
    parser.add_argument("--out", required=True, type=Path, help="metrics JSON file")
    parser.add_argument("--scored", required=True, type=Path, help="directory for scored evaluation results")
    parser.add_argument("--stage-dirs", nargs="*", type=Path, default=[],
                        help="the round's stage outputs: the MLflow run that wrote each (found by its "
                        "content hash) gives the stage's seconds")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)

    from coderanker.config import DataConfig, load_params, section
    from coderanker.evaluation import (
        Scorers,
        compare_on_shared_pool,
        evaluate_round,
        format_language_table,
        languages_table,
    )
    from coderanker.generation import SamplingConfig
    from coderanker.runtime import Placement
    from coderanker.tracking import stage_run
    from coderanker.training.reward import RerankerTrainConfig
    from pipelines.common import setup_logging, stage_outputs, write_atomic

    setup_logging()
    start = time.monotonic()
    params = load_params(args.params)
    data = section(params, "data", DataConfig, args.params)
    rerank = section(params, "reranker", RerankerTrainConfig, args.params)
    pool = section(params, "sample", SamplingConfig, args.params).eval_pool_size
    placement = Placement.from_params(params)
    inputs = [args.results, args.reranker, args.pairs]
    scorers = Scorers(rerank, placement)  # each reranker loaded once; a prior they share computed once
    with stage_run("evaluate", args.round, {"data.eval": params["data"]["eval"]}, inputs) as run:
        with stage_outputs(f"evaluate@{args.round}", args.scored, run=run) as scored:
            sets = evaluate_round(args.problems, args.results, args.reranker, list(data.eval), scored, rerank,
                                  placement, scorers, pool)
        languages = languages_table(args.problems, args.scored, list(data.eval), pool)
        shared = None
        if args.pool and args.previous_reranker:
            shared = compare_on_shared_pool(args.problems, args.pool, next(iter(data.eval)), args.reranker,
                                            args.previous_reranker, rerank, placement, scorers, pool)
        report = json.loads((args.pairs / "report.json").read_text())
        seconds = stage_seconds(run.client, args.stage_dirs)
        seconds["evaluate"] = round(time.monotonic() - start, 2)
        metrics = {
            "round": args.round,
            "eval": next(iter(sets.values())),
            "eval_sets": sets,
            "languages": languages,
            **({"shared_pool": shared} if shared else {}),
            "train": {"pairs": report["total_pairs"], "new_pairs": report["new_pairs"],
                      "hard_negatives": report["hard_negatives"]},
            "seconds": seconds,
        }
        write_atomic(args.out, json.dumps(metrics, indent=2) + "\n")
        track(args, params, metrics, run, next(iter(data.eval)))
    print(json.dumps(metrics, indent=2))
    print(f"{args.round}: pass@1 by language\n{format_language_table(languages)}", file=sys.stderr)


def stage_seconds(client, directories: list[Path]) -> dict[str, float]:
    """Each output's stage and wall time, from the MLflow run that wrote that content (a stage
    DVC skipped reports the run that made its cached output); missing when none is found."""
    from coderanker.tracking import STAGE, find_stage_run

    seconds = {}
    for directory in directories:
        found = find_stage_run(client, directory)
        if found is not None and "seconds" in found.data.metrics:
            seconds[found.data.tags[STAGE]] = found.data.metrics["seconds"]
    return seconds


def evidence(problems_file: Path, scored_file: Path, reranked: float | None, pool: int = 0) -> dict:
    """What a promotion decision rests on: the eval set's content hash, the pool the picks are
    made from (`pool_size`, the most samples a pick saw), and per problem whether the
    reranker's pick of the pool passes (its mean over pools, see `coderanker.metrics`) and the
    pass rate of its samples (a random pick)."""
    from coderanker.jsonl import iter_lines
    from coderanker.metrics import count_passing, group_by_problem, pick_rate, pool_size, sampled
    from coderanker.tracking import content_md5

    keep = ("name", "status", "score", "greedy", "reference")
    rows = ({k: r.get(k) for k in keep} for _, r in iter_lines(scored_file) if isinstance(r, dict))
    top1, rate, size = {}, {}, 0
    for name, group in group_by_problem(rows).items():
        if samples := sampled(group):
            top1[name] = pick_rate(samples, lambda r: r["score"], pool)
            rate[name] = count_passing(samples) / len(samples)
            size = max(size, pool_size(len(samples), pool))
    return {"eval_hash": content_md5(problems_file), "pool_size": size, "reranked_pass@1": reranked,
            "top1_pass": top1, "pass_rate": rate}


def track(args, params: dict, metrics: dict, run, primary: str) -> None:
    """Log the round's figures, plots and a sample of scored candidates; register the
    reranker with its evidence; end the round's run (and the pipeline's after its last round)."""
    from coderanker.config import section
    from coderanker.evaluation import language_columns
    from coderanker.generation import SamplingConfig
    from coderanker.jsonl import iter_lines
    from coderanker.plots import pass_at_1_by_round, score_distributions
    from coderanker.tracking import find_stage_run, register_reranker, round_history

    run.log_metrics(metrics["eval_sets"], prefix="eval.")
    run.log_metrics(metrics["languages"], prefix="languages.")
    run.log_table(language_columns(metrics["languages"]), LANGUAGE_TABLE)
    run.log_metrics(metrics["train"], prefix="train.")
    run.log_metrics(metrics["seconds"], prefix="seconds.")
    run.log_metrics(metrics.get("shared_pool", {}), prefix="shared_pool.")
    run.log_metrics(metrics["eval"], run_id=run.round_run_id, prefix="eval.")
    run.log_artifact(args.out)
    for name in metrics["eval_sets"]:
        scores, examples = [], []
        for _, record in iter_lines(args.scored / f"eval-{name}.jsonl"):
            scores.append({"status": record["status"], "score": record["score"]})
            if len(examples) < 100:
                examples.append({k: record.get(k) for k in
                                 ("name", "sample", "greedy", "status", "score", "completion", "detail")})
        run.log_figure(score_distributions(scores, f"{args.round} {name}: reranker scores"),
                       f"plots/scores_{name}.png")
        run.log_dict(examples, f"candidates/{name}_sample.json")
    order = list(params["rounds"])
    history = round_history(run, order[: order.index(args.round)]) + [(args.round, metrics["eval"])]
    run.log_figure(pass_at_1_by_round(history, "pass@1 by round (primary eval set)"), "plots/pass_at_1.png")
    trained = find_stage_run(run.client, args.reranker)
    if trained is None:  # a reranker from a DVC remote, without its MLflow run: log it here
        from coderanker.serving import log_reranker

        log_reranker(run, args.reranker)
    source = trained.info.run_id if trained is not None else run.run_id
    register_reranker(run, source, evidence(args.problems / f"eval-{primary}.jsonl",
                                            args.scored / f"eval-{primary}.jsonl",
                                            metrics["eval"].get("reranked_pass@1"),
                                            section(params, "sample", SamplingConfig).eval_pool_size), args.round)
    run.end_round()
    if args.round == order[-1]:
        run.end_pipeline()


if __name__ == "__main__":
    from pipelines.common import entry

    entry(main)
