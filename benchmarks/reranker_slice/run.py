"""Choosing reranker settings without touching the eval split: a slice of the *training*
problems is held out, rerankers are trained on the other problems' pairs under each
variant, and each is measured on the held-out problems' own samples (every round's).

    .venv/bin/python -m benchmarks.reranker_slice --run DIR [--holdout 40] [--pairs 192]
        [--variants file:0 spread:0 spread:3]

DIR is a finished `dvc repro` checkout of the cpu profile (data/r*/results, data/r0/pairs,
models/seed/reranker). A variant is SELECTION:TRAINABLE_LAYERS: `file` takes the first
--pairs pairs in file order (the selection before 2026-11-29: problems in name order), `spread`
is `select_training_pairs` (pairs whose chosen program is a model sample first, then one
pair per problem at a time). Figures: within-problem pairwise accuracy on the held-out
problems' (passing, failing) sample pairs with a 95% bootstrap interval over problems,
top-1 hit rate next to chance, and training pairs/s.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, type=Path, help="a finished cpu-profile dvc repro checkout")
    parser.add_argument("--holdout", type=int, default=40, help="training problems held out")
    parser.add_argument("--pairs", type=int, default=192, help="training pairs per variant")
    parser.add_argument("--variants", nargs="+", default=["file:0", "spread:0", "spread:3"])
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def held_out_samples(run: Path, holdout: set[str]) -> list[dict]:
    """Every round's sampled (not reference, not greedy) training candidates of the held-out
    problems, pooled per problem."""
    from coderanker.jsonl import read_jsonl

    samples = []
    for results in sorted(run.glob("data/r*/results/train.jsonl")):
        samples += [r for r in read_jsonl(results)
                    if r["name"] in holdout and not r.get("reference") and not r.get("greedy")]
    return samples


def mark_references(pairs: list[dict], run: Path) -> list[dict]:
    """Pairs mined before pairs recorded `chosen_reference` get it from the round's results."""
    from coderanker.jsonl import read_jsonl

    references = {(r["name"], r["completion"]) for r in read_jsonl(run / "data/r0/results/train.jsonl")
                  if r.get("reference")}
    return [{**p, "chosen_reference": p.get("chosen_reference", (p["name"], p["chosen_completion"]) in references)}
            for p in pairs]


def measure(scored: list[dict], seed: int) -> dict:
    from coderanker.metrics import bootstrap_ci95, group_by_problem, pairwise_counts, top_k_hits

    groups = group_by_problem(scored)
    wins, totals = pairwise_counts(groups, lambda r: r["score"])
    per_problem = [w / t for w, t in zip(wins, totals, strict=True)]
    hits = top_k_hits(groups, lambda r: r["score"])
    return {"pairwise_acc": sum(wins) / sum(totals), "pairwise_acc_problem_mean": sum(per_problem) / len(per_problem),
            "pairwise_acc_ci95": bootstrap_ci95(per_problem, seed=seed), "eval_pairs": sum(totals),
            "problems_with_choice": len(totals), **hits}


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    from transformers import AutoTokenizer

    from coderanker.generation import resolve_style
    from coderanker.jsonl import read_jsonl
    from coderanker.problems import by_name, load_problems
    from coderanker.reranker import Reranker, encode_pair, read_prompt_style
    from coderanker.training.ray_train import RayTrainConfig
    from coderanker.training.reward import RerankerTrainConfig, select_training_pairs, train_reranker

    problems = by_name(load_problems(args.run / "data/problems/train.jsonl"))
    names = sorted(problems)
    random.Random(args.seed).shuffle(names)
    holdout = set(names[: args.holdout])
    pairs = [p for p in mark_references(read_jsonl(args.run / "data/r0/pairs/pairs.jsonl"), args.run)
             if p["name"] not in holdout]
    samples = held_out_samples(args.run, holdout)
    init = args.run / "models/seed/reranker"
    tokenizer = AutoTokenizer.from_pretrained(init)
    style = resolve_style(read_prompt_style(init), tokenizer)
    base = RerankerTrainConfig(init="seed", max_pairs=args.pairs, epochs=1.0, learning_rate=3e-5, batch_size=4,
                               max_length=512, warmup_ratio=0.1, score_batch_size=20, fit_eval_pairs=24)
    print(f"held out {len(holdout)} training problems, {len(samples)} samples; "
          f"{len(pairs)} pairs on the other {len(problems) - len(holdout)} "
          f"({sum(not p['chosen_reference'] for p in pairs)} with a model sample chosen)", flush=True)
    rows = {}
    for variant in args.variants:
        selection, layers = variant.split(":")
        config = replace(base, trainable_layers=int(layers))
        chosen = pairs[: args.pairs] if selection == "file" else select_training_pairs(pairs, "r0", config)
        encoded = [{"chosen_ids": encode_pair(tokenizer, style, problems[p["name"]], p["chosen"], config.max_length),
                    "rejected_ids": encode_pair(tokenizer, style, problems[p["name"]], p["rejected"],
                                                config.max_length)} for p in chosen]
        with tempfile.TemporaryDirectory(prefix="slice-") as out:
            start = time.monotonic()
            train_reranker(encoded, init, out, config, RayTrainConfig(), "fp32")
            seconds = time.monotonic() - start
            log = json.loads((Path(out) / "training_log.json").read_text())
            runtime = next((float(e["train_runtime"]) for e in log if "train_runtime" in e), seconds)
            scorer = Reranker.load(out, max_length=config.max_length, batch_size=config.score_batch_size)
            scored = [{**s, "score": v} for s, v in zip(samples, scorer.score_candidates(problems, samples),
                                                          strict=True)]
        rows[variant] = {"problems_trained": len({p["name"] for p in chosen}),
                         "model_sample_chosen": sum(not p["chosen_reference"] for p in chosen),
                         "pairs_per_s": len(chosen) / runtime, "stage_seconds": seconds,
                         **measure(scored, args.seed)}
        print(variant, json.dumps(rows[variant]), flush=True)
    first = next(iter(rows))
    for variant, row in rows.items():
        low, high = row["pairwise_acc_ci95"]
        print(f"{variant:>10}: pairwise acc {row['pairwise_acc']:.3f} "
              f"(problem mean {row['pairwise_acc_problem_mean']:.3f} "
              f"[{low:.3f}, {high:.3f}]) top-1 {row['top1_hit_rate']:.3f} vs chance {row['top1_chance']:.3f} "
              f"on {row['problems_with_choice']} problems; {row['pairs_per_s']:.2f} pairs/s "
              f"({row['pairs_per_s'] / rows[first]['pairs_per_s']:.2f}x {first})")


if __name__ == "__main__":
    main()
