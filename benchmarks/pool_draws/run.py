"""A round's reranker on fresh evaluation pools: the round's policy samples the evaluation
problems again under other seeds, the sandbox runs them, and the round's reranker (and the
round before's, for a paired comparison of rounds) picks from each pool.

    .venv/bin/python -m benchmarks.pool_draws --run DIR [--round r2] [--compare r1] [--draws 4]
        [--combine 2] [--pool 20]

DIR is a finished `dvc repro` checkout. The evaluate stage scores one draw of samples per
round (before 1380cd8's default, 20 of each evaluation problem, all of them the pool; since,
40, with pools of 20). How well a reranker picks from one draw varies with the draw (20
samples' 12 problems with a choice give a top-1 hit rate with a standard error near 0.14),
and a later round's pool also rests on everything before it (the
policy PPO trained against the previous reranker). This holds the round's policy and
rerankers fixed and draws the pool again: draw 0 is the committed pool
(data/ROUND/results), draws 1..N are sampled with the run's `sample` section at seed
`sample.seed + 100000 k` (a problem's samples per batch are seeded `seed + batch index`, so
the draws share no stream), executed with its `execute` section. Only the problems with a
choice are scored (elsewhere every pick has the same outcome, so the figures are exact).
Picks are made from pools of `sample.eval_pool_size` of a draw's samples, as the evaluate
stage's are (each figure its mean over every such pool; 0: the draw's every sample).
`--combine K` merges every K consecutive draws into one set of samples per problem: with
`--pool 20` and K = 2, each row is what the evaluate stage reports from 40 samples a problem.

Per draw and pooled over the draws: random pass@1, greedy, the reranker's pick, its gain over
a random pick and its difference from greedy, gap closed, top-1 hits among problems with a
choice next to chance, and the difference from each --compare round's reranker on the same
candidates (`seed`: the untrained reranker). Pooled intervals are 95% bootstraps over
problems, each problem's figure averaged over its draws (a problem is the unit resampled:
its draws are not independent of it). Draws' candidates and results stay under --work
(default DIR/pool_draws/ROUND), so a rerun scores them again without sampling.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

DRAW_STRIDE = 100_000
"""Seed offset between draws; the sampler seeds each batch with seed + batch index."""


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, type=Path, help="a finished dvc repro checkout")
    parser.add_argument("--round", help="the round whose policy and reranker are measured (default: the last)")
    parser.add_argument("--compare", nargs="*", help="rounds whose rerankers it is compared with on the same "
                        "candidates ('seed': the untrained one; default: the round's previous; the flag alone: none)")
    parser.add_argument("--set", default=None, help="the evaluation set (default: the first of data.eval)")
    parser.add_argument("--draws", type=int, default=4, help="fresh pools besides the committed one")
    parser.add_argument("--combine", type=int, default=1, help="merge every COMBINE consecutive draws into one "
                        "set of samples per problem (with sample.eval_pool_size, the stage's figures from "
                        "COMBINE times the samples); the draws must divide evenly")
    parser.add_argument("--pool", type=int, help="picks from pools of this many of a problem's samples "
                        "(default: the run's sample.eval_pool_size; 0: every sample)")
    parser.add_argument("--work", type=Path, help="where the draws' candidates and results go")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    if args.draws < 0:
        parser.error("--draws must be >= 0")
    if args.pool is not None and args.pool < 0:
        parser.error("--pool must be >= 0")
    if args.combine < 1 or (args.draws + 1) % args.combine:
        parser.error(f"--combine must divide the {args.draws + 1} pools (the committed one and --draws)")
    return args


def draw_config(config, draw: int):
    """The sampling of draw `draw` of an evaluation set: the stage's (samples, greedy), reseeded."""
    from pipelines.sample import set_sampling

    return replace(set_sampling(config, is_eval=True), seed=config.seed + DRAW_STRIDE * draw)


def sample_draws(run: Path, params: dict, round_id: str, set_name: str, draws: int, work: Path) -> list[Path]:
    """Results files of draws 1..draws (sampled and executed unless already there)."""
    from coderanker.config import section
    from coderanker.executor import execute_file
    from coderanker.generation import SamplingConfig
    from coderanker.jsonl import write_jsonl
    from coderanker.problems import load_problems
    from coderanker.runtime import Placement
    from coderanker.sandbox import SandboxConfig

    problems_path = run / f"data/problems/eval-{set_name}.jsonl"
    paths = [work / f"draw{k}.results.jsonl" for k in range(1, draws + 1)]
    missing = [(k, path) for k, path in enumerate(paths, 1) if not path.exists()]
    if not missing:
        return paths
    from transformers import AutoTokenizer

    from coderanker.vllm_backend import sampler

    config = section(params, "sample", SamplingConfig)
    policy = run / "models" / round_id / "policy"
    sample = sampler(config.backend, policy, AutoTokenizer.from_pretrained(policy), Placement.from_params(params))
    problems = load_problems(problems_path)
    work.mkdir(parents=True, exist_ok=True)
    for k, path in missing:
        candidates = work / f"draw{k}.candidates.jsonl"
        write_jsonl(candidates, sample(problems, draw_config(config, k), generator_id=str(policy), round_id=round_id))
        counts = execute_file(problems_path, candidates, path, section(params, "execute", SandboxConfig))
        print(f"draw {k}: {dict(counts)}", flush=True)
    del sample
    return paths


def scored_pool(paths: list[Path], problems: dict, scorers, rerankers: dict[str, Path]) -> list[dict]:
    """The records (`figure_fields`) of one pool made of the results files `paths` (draws
    merged: a problem's samples are all its draws' samples), with each reranker's score under
    its name for the samples of problems with a choice in the merged pool (0.0 elsewhere,
    where any pick has the same outcome)."""
    from coderanker.evaluation import SCORE_BATCH, numbered_records, score_lines
    from coderanker.jsonl import JsonlGroups
    from coderanker.metrics import choice_sample_lists, figure_fields, group_by_problem

    pools = [[{**figure_fields(result), "line": line} for line, result in numbered_records(path)] for path in paths]
    merged = [record for pool in pools for record in pool]
    names = [samples[0]["name"] for samples in choice_sample_lists(group_by_problem(merged))]
    chosen = set(names)
    lines = [{record["line"] for record in pool if record["name"] in chosen} for pool in pools]
    for key, directory in rerankers.items():
        scorer = scorers.get(directory)
        for path, pool, lines_of_pool in zip(paths, pools, lines, strict=True):
            scores = score_lines(JsonlGroups(path), problems, scorer, SCORE_BATCH, names, lines_of_pool)
            for record in pool:
                record[key] = scores.get(record["line"], 0.0)
        scorers.release(directory)
    return merged


def per_problem(pool: list[dict], keys: list[str], size: int = 0) -> dict[str, dict]:
    """Per problem with samples: `random` (its pass rate), `greedy`, `oracle`, `choice`, and per
    reranker key the outcome of its pick (1.0 passes); picks from pools of `size` of the
    samples (0: all), as the evaluate stage's `sample.eval_pool_size` (see `coderanker.metrics`)."""
    from coderanker.metrics import count_passing, group_by_problem, pass_at_k, passes, pick_rate, pool_size, sampled

    rows = {}
    for name, group in group_by_problem(pool).items():
        samples = sampled(group)
        if not samples:
            continue
        passing = count_passing(samples)
        greedy = [r for r in group if r.get("greedy")][:1]  # merged draws: the first draw's, as the stage has one
        rows[name] = {"random": passing / len(samples),
                      "oracle": pass_at_k(len(samples), passing, pool_size(len(samples), size)),
                      "greedy": float(any(map(passes, greedy))) if greedy else None,
                      "choice": 0 < passing < len(samples),
                      **{key: pick_rate(samples, lambda r, key=key: r[key], size) for key in keys}}
    return rows


def summary(draws: list[dict[str, dict]], key: str, compare: Sequence[str] = (), seed: int = 0) -> dict:
    """Figures of reranker `key` over one or more draws (each: per_problem's rows): per problem
    averaged over its draws, then over problems, with bootstrap intervals over problems; per
    key in `compare`, the paired difference of `key`'s picks from that reranker's."""
    from coderanker.metrics import bootstrap_ci95, gap_closed, mean_or_none

    names = [name for name in draws[0] if all(name in d for d in draws[1:])]  # file order: draw 0 alone
    # reproduces the evaluate stage's bootstrap

    def mean_over_draws(figure) -> list[float]:
        return [sum(figure(d[name]) for d in draws) / len(draws) for name in names]

    random, picked = mean_over_draws(lambda r: r["random"]), mean_over_draws(lambda r: r[key])
    oracle = mean_over_draws(lambda r: r["oracle"])
    gains = [p - r for p, r in zip(picked, random, strict=True)]
    with_greedy = [n for n in names if all(d[n]["greedy"] is not None for d in draws)]
    minus_greedy = [sum(d[n][key] - d[n]["greedy"] for d in draws) / len(draws) for n in with_greedy]
    choice = [(d[n][key], d[n]["random"]) for d in draws for n in names if d[n]["choice"]]
    figures = {
        "problems": len(names), "draws": len(draws), "problems_with_choice": len(choice),
        "pass@1": mean_or_none(random),
        "greedy_pass@1": mean_or_none([sum(d[n]["greedy"] for d in draws) / len(draws) for n in with_greedy]),
        "reranked_pass@1": mean_or_none(picked), "oracle_pass@n": mean_or_none(oracle),
        "reranked_gain": mean_or_none(gains), "reranked_gain_ci95": bootstrap_ci95(gains, seed=seed),
        "reranked_minus_greedy": mean_or_none(minus_greedy),
        "reranked_minus_greedy_ci95": bootstrap_ci95(minus_greedy, seed=seed),
        "top1_hits": sum(hit for hit, _ in choice), "top1_chance": sum(rate for _, rate in choice),
    }
    figures["gap_closed"] = gap_closed(figures["reranked_pass@1"], figures["pass@1"], figures["oracle_pass@n"])
    for other in compare:
        versus = mean_over_draws(lambda r, other=other: r[key] - r[other])
        figures[f"minus_{other}"] = mean_or_none(versus)
        figures[f"minus_{other}_ci95"] = bootstrap_ci95(versus, seed=seed)
    return figures


def interval(value: float | None, ci: list[float] | None) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f} " + ("[n/a]" if ci is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]")


def row(label: str, figures: dict, compare: Sequence[str]) -> str:
    cells = [label, f"{figures['pass@1']:.3f}", f"{figures['greedy_pass@1']:.3f}",
             f"{figures['reranked_pass@1']:.3f}", interval(figures["reranked_gain"], figures["reranked_gain_ci95"]),
             interval(figures["reranked_minus_greedy"], figures["reranked_minus_greedy_ci95"]),
             "-" if figures["gap_closed"] is None else f"{figures['gap_closed']:.2f}",
             f"{figures['top1_hits']:.1f}/{figures['problems_with_choice']} ({figures['top1_chance']:.1f})",
             f"{figures['oracle_pass@n']:.3f}"]
    cells += [interval(figures[f"minus_{other}"], figures[f"minus_{other}_ci95"]) for other in compare]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    from coderanker.config import DataConfig, load_params, section
    from coderanker.evaluation import Scorers
    from coderanker.generation import SamplingConfig
    from coderanker.problems import by_name, load_problems
    from coderanker.runtime import Placement
    from coderanker.training.reward import RerankerTrainConfig

    params = load_params(args.run / "params.yaml")
    rounds = list(params["rounds"])
    round_id = args.round or rounds[-1]
    if round_id not in rounds:
        raise SystemExit(f"{args.run}/params.yaml: no round {round_id!r} (rounds: {', '.join(rounds)})")
    compare = [params["rounds"][round_id]["previous"]] if args.compare is None else args.compare
    if unknown := [name for name in compare if name not in ("seed", *rounds)]:
        raise SystemExit(f"{args.run}/params.yaml: no round {', '.join(unknown)} to compare with")
    set_name = args.set or next(iter(section(params, "data", DataConfig).eval))
    committed = args.run / f"data/{round_id}/results/eval-{set_name}.jsonl"
    if not committed.exists():
        raise SystemExit(f"{committed}: missing (a finished dvc repro checkout?)")
    paths = [committed, *sample_draws(args.run, params, round_id, set_name, args.draws,
                                      args.work or args.run / "pool_draws" / round_id)]
    rerankers = {"score": args.run / "models" / round_id / "reranker",
                 **{name: args.run / "models" / name / "reranker" for name in compare}}
    scorers = Scorers(section(params, "reranker", RerankerTrainConfig), Placement.from_params(params))
    problems = by_name(load_problems(args.run / f"data/problems/eval-{set_name}.jsonl"))
    size = section(params, "sample", SamplingConfig).eval_pool_size if args.pool is None else args.pool
    chunks = [paths[k : k + args.combine] for k in range(0, len(paths), args.combine)]
    draws = [per_problem(scored_pool(chunk, problems, scorers, rerankers), list(rerankers), size) for chunk in chunks]
    columns = ["pool", "random", "greedy", "reranked", "gain over random", "minus greedy", "gap closed",
               "top-1 hits / chance", "oracle"] + [f"minus {name}'s reranker" for name in compare]
    print(f"{round_id}'s policy and reranker on eval-{set_name}: {len(paths)} draws"
          + (f", merged {args.combine} at a time" if args.combine > 1 else "")
          + (f"; picks from pools of {size}" if size else ""))
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for k, draw in enumerate(draws):
        first, last = k * args.combine, (k + 1) * args.combine - 1
        label = (f"draws {first}-{last}" if last > first else f"draw {first}") + (" (committed)" if k == 0 else "")
        print(row(label, summary([draw], "score", compare, args.seed), compare))
    pooled = summary(draws, "score", compare, args.seed)
    print(row(f"all {len(draws)} pooled", pooled, compare))
    print(json.dumps({"round": round_id, "compare": compare, "set": set_name, "combine": args.combine,
                      "pool_size": size, "pooled": pooled}))


if __name__ == "__main__":
    main()
