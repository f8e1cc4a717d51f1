"""DVC stage evaluate@<round>: the round's reranker scores the round's evaluation
candidates -> metrics/<round>.json (DESIGN.md format) and OUT_SCORED/<set>.jsonl.

The first evaluation set is reported as `eval`; every set is under `eval_sets`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


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
                        help="output directories whose _stage.json timings to report")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)

    from coderanker.config import DataConfig, load_params, section
    from coderanker.evaluation import compare_on_shared_pool, evaluate_round
    from coderanker.runtime import Placement
    from coderanker.training.reward import RerankerTrainConfig
    from pipelines.common import META, setup_logging

    setup_logging()
    start = time.monotonic()
    params = load_params(args.params)
    data = section(params, "data", DataConfig, args.params)
    rerank = section(params, "reranker", RerankerTrainConfig, args.params)
    placement = Placement.from_params(params)
    sets = evaluate_round(args.problems, args.results, args.reranker, list(data.eval), args.scored, rerank, placement)
    pool = None
    if args.pool and args.previous_reranker:
        pool = compare_on_shared_pool(args.problems, args.pool, next(iter(data.eval)), args.reranker,
                                      args.previous_reranker, rerank, placement)
    report = json.loads((args.pairs / "report.json").read_text())
    seconds = {}
    for directory in args.stage_dirs:
        meta = json.loads((directory / META).read_text())
        seconds[meta["stage"]] = meta["seconds"]
    seconds["evaluate"] = round(time.monotonic() - start, 2)
    metrics = {
        "round": args.round,
        "eval": next(iter(sets.values())),
        "eval_sets": sets,
        **({"shared_pool": pool} if pool else {}),
        "train": {"pairs": report["total_pairs"], "new_pairs": report["new_pairs"],
                  "hard_negatives": report["hard_negatives"]},
        "seconds": seconds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(metrics, indent=2) + "\n")
    track(args, params, metrics)
    print(json.dumps(metrics, indent=2))


def track(args, params: dict, metrics: dict) -> None:
    """Log the round's figures, plots and a sample of scored candidates; register the
    reranker; end the round's run (and the pipeline's after its last round)."""
    from coderanker.jsonl import read_jsonl
    from coderanker.plots import pass_at_1_by_round, score_distributions
    from coderanker.tracking import read_json, register_reranker, stage_run

    inputs = [args.results, args.reranker, args.pairs]
    with stage_run("evaluate", args.round, {"data.eval": params["data"]["eval"]}, inputs) as run:
        run.log_metrics(metrics["eval_sets"], prefix="eval.")
        run.log_metrics(metrics["train"], prefix="train.")
        run.log_metrics(metrics["seconds"], prefix="seconds.")
        run.log_metrics(metrics.get("shared_pool", {}), prefix="shared_pool.")
        run.log_metrics(metrics["eval"], run_id=run.round_run_id, prefix="eval.")
        run.log_artifact(args.out)
        for name in metrics["eval_sets"]:
            scored = read_jsonl(args.scored / f"eval-{name}.jsonl")
            run.log_figure(score_distributions(scored, f"{args.round} {name}: reranker scores"),
                           f"plots/scores_{name}.png")
            keep = ("name", "sample", "greedy", "status", "score", "completion", "detail")
            run.log_dict([{k: r.get(k) for k in keep} for r in scored[:100]], f"candidates/{name}_sample.json")
        order = list(params["rounds"])
        history = [(r, read_json(args.out.parent / f"{r}.json")["eval"])
                   for r in order[: order.index(args.round) + 1] if (args.out.parent / f"{r}.json").exists()]
        run.log_figure(pass_at_1_by_round(history, "pass@1 by round (primary eval set)"), "plots/pass_at_1.png")
        source = read_json(args.reranker / "mlflow_run.json")["run_id"]
        register_reranker(run, source, metrics["eval"].get("reranked_pass@1"), args.round)
        run.end_round()
        if args.round == order[-1]:
            run.end_pipeline()


if __name__ == "__main__":
    main()
