"""Round against round on the shared r0 pool, again under other training seeds: how much of a
difference between two rounds' rerankers is the seed their training ran under.

    .venv/bin/python -m benchmarks.reranker_seeds --run DIR [--seeds 1 2] [--rounds r1 r2]

DIR is a finished `dvc repro` checkout. The evaluate stage compares each round's reranker with
the round before's on r0's evaluation pool (`shared_pool` in metrics/<round>.json). That
comparison is paired over the pool's problems, and its interval covers which problems the
pool holds, not the seed of each reranker's training (the order RewardTrainer draws its
pairs in). Here each --rounds reranker is trained again as its train_reranker stage trains it
(the run's params.yaml `reranker` and `ray` sections, the round's pairs, the stage's pair
selection and encoding, the likelihood prior attached), once per --seeds value in place of
`reranker.seed`, into DIR/reranker_seeds/seed-S/<round> (a finished one is reused), and every
consecutive pair of rounds is compared on the shared pool by the evaluate stage's own
function (`coderanker.evaluation.compare_on_shared_pool`, the prior computed once). The run's
own seed uses the committed rerankers (models/<round>/reranker): its line must equal the
run's metrics/<round>.json `shared_pool`, which is checked.

Figures per seed and pair of rounds: both rounds' reranked pass@1 on the pool, the later minus
the earlier with its 95% paired bootstrap interval over problems; last, the mean difference
over the seeds and how many have the later round at least the earlier.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, type=Path, help="a finished dvc repro checkout")
    parser.add_argument("--seeds", nargs="*", type=int, default=[1, 2],
                        help="training seeds besides the run's own (reranker.seed)")
    parser.add_argument("--rounds", nargs="+", default=["r1", "r2"], help="consecutive rounds to compare")
    args = parser.parse_args(argv)
    if len(args.rounds) < 2 or not all(r[:1] == "r" and r[1:].isdigit() for r in args.rounds):
        parser.error(f"--rounds: at least two rounds named rN, got {args.rounds}")
    return args


def train_round(run: Path, round_id: str, previous: Path | None, config, ray_config, dtype: str, out: Path) -> Path:
    """The round's reranker trained into `out` as its train_reranker stage trains it (init from
    the seed reranker, or `previous` under `reranker.init: previous` after r0); kept when finished."""
    from transformers import AutoTokenizer

    from coderanker.generation import resolve_style
    from coderanker.jsonl import read_jsonl
    from coderanker.problems import by_name, load_problems
    from coderanker.reranker import attach_likelihood, encode_pairs, read_prompt_style
    from coderanker.training.reward import round_config, select_training_pairs, train_reranker

    done = out / "train_metrics.json"  # written last, as the stage writes it
    if done.is_file():
        return out
    seed_dir = run / "models/seed/reranker"
    init = seed_dir if config.init == "seed" or round_id == "r0" or previous is None else previous
    config = round_config(config, init != seed_dir)
    tokenizer = AutoTokenizer.from_pretrained(init)
    style = resolve_style(read_prompt_style(init), tokenizer)
    problems = by_name(load_problems(run / "data/problems/train.jsonl"))
    pairs = select_training_pairs(read_jsonl(run / f"data/{round_id}/pairs/pairs.jsonl"), round_id, config)
    metrics = train_reranker(encode_pairs(tokenizer, style, problems, pairs, config.max_length), init, out, config,
                             ray_config, dtype)
    attach_likelihood(out, run / "models/seed/policy", config.likelihood_weight, style)
    done.write_text(json.dumps(metrics, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    from benchmarks.generation.run import quiet
    from coderanker.config import DataConfig, load_params, section
    from coderanker.evaluation import Scorers, compare_on_shared_pool
    from coderanker.generation import SamplingConfig
    from coderanker.runtime import Placement, training_dtype
    from coderanker.training.ray_train import RayTrainConfig
    from coderanker.training.reward import RerankerTrainConfig

    quiet()
    params_file = str(args.run / "params.yaml")
    params = load_params(params_file)
    base = section(params, "reranker", RerankerTrainConfig, params_file)
    ray_config = section(params, "ray", RayTrainConfig, params_file)
    dtype = training_dtype(params, ray_config)
    pool = section(params, "sample", SamplingConfig, params_file).eval_pool_size
    set_name = next(iter(section(params, "data", DataConfig, params_file).eval))
    placement = Placement.from_params(params)
    scorers = Scorers(base, placement)  # one prior for every reranker: the same seed policy
    differences: dict[tuple[str, str], list[float]] = {}
    for seed in [base.seed] + [s for s in dict.fromkeys(args.seeds) if s != base.seed]:
        dirs: dict[str, Path] = {}
        for round_id in args.rounds:
            if seed == base.seed:
                dirs[round_id] = args.run / f"models/{round_id}/reranker"
            else:
                # under reranker.init: previous, the round before's reranker of the same seed, or the run's
                before = f"r{int(round_id[1:]) - 1}"
                previous = dirs.get(before, args.run / f"models/{before}/reranker")
                dirs[round_id] = train_round(args.run, round_id, previous, replace(base, seed=seed), ray_config,
                                             dtype, args.run / f"reranker_seeds/seed-{seed}/{round_id}")
        for earlier, later in pairwise(args.rounds):
            shared = compare_on_shared_pool(args.run / "data/problems", args.run / "data/r0/results", set_name,
                                            dirs[later], dirs[earlier], base, placement, scorers, pool)
            if seed == base.seed:
                committed = json.loads((args.run / f"metrics/{later}.json").read_text()).get("shared_pool")
                if committed is not None and committed["difference_vs_previous"] != shared["difference_vs_previous"]:
                    raise SystemExit(f"{args.run / f'metrics/{later}.json'}: shared_pool.difference_vs_previous "
                                     f"{committed['difference_vs_previous']} but the committed rerankers give "
                                     f"{shared['difference_vs_previous']} here: the run's rerankers or pool changed")
            low, high = shared["difference_vs_previous_ci95"]
            difference = shared["difference_vs_previous"]
            differences.setdefault((earlier, later), []).append(difference)
            print(f"seed {seed}{' (the run)' if seed == base.seed else ''}: {later} "
                  f"{shared['reranked_pass@1']:.3f} vs {earlier} {shared['previous_reranked_pass@1']:.3f} on "
                  f"{set_name}'s r0 pool ({shared['problems']} problems, {shared['problems_with_choice']} with a "
                  f"choice, {shared['scored']} samples scored): {later} - {earlier} {difference:+.3f} "
                  f"[{low:+.3f}, {high:+.3f}]", flush=True)
    for (earlier, later), values in differences.items():
        print(f"{later} - {earlier} over {len(values)} seeds: mean {sum(values) / len(values):+.3f}, "
              f"min {min(values):+.3f}, max {max(values):+.3f}; {later} at least {earlier} under "
              f"{sum(v >= 0 for v in values)} of {len(values)}")


if __name__ == "__main__":
    main()
