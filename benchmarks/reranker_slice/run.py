"""Choosing reranker settings without touching the eval split: a slice of the *training*
problems is held out, rerankers are trained on the other problems' pairs under each
variant, and each is measured on the held-out problems' own samples (every round's).

    .venv/bin/python -m benchmarks.reranker_slice --run DIR [--holdout 40] [--pairs 192]
        [--variants file:0 spread:0 spread:3] [--folds K]
    .venv/bin/python -m benchmarks.reranker_slice --run DIR --folds 3 --round1 previous:3e-4:0 previous:1e-4:0.5

DIR is a finished `dvc repro` checkout of the cpu profile (data/r*/results, data/r0/pairs,
models/seed/reranker). A variant is SELECTION:TRAINABLE_LAYERS[:LEARNING_RATE[:EPOCHS]] (defaults
3e-5, the cpu profile's until 2026-11-30, and 1): `file` takes the first
--pairs pairs in file order (the selection before 2026-11-29: problems in name order), `spread`
is `select_training_pairs` (pairs whose chosen program is a model sample first, then one
pair per problem at a time) over r0's mined pairs. Two more draw fresh pairs from every
round's training results (at most --per-problem per problem, `coderanker.pairs.build_pairs`),
then select as `spread` does: `samples` keeps the pairs whose passing program is a model
sample, `references` those whose passing program is the problem's reference. A round's name
(`r2`) takes every pair that round's reranker trained on (`data/r2/pairs`: every pair so far,
hard negatives included), through `select_training_pairs` as that round's stage does;
`r2-nohard` drops every round's hard negatives from them, `r2-balanced` balances each round's
pairs by length (`filtered`). --group-by-length trains every variant as `reranker.group_by_length`.

--folds K cross-fits instead of holding one slice out: the problems are dealt into K folds,
each fold is scored by a reranker trained on the other folds' pairs, so every problem with
a choice counts once (4x the held-out problems of --holdout 40 at K=4, at K trainings per
variant). Rows `untrained` (the seed reranker), `vote` (the largest group of identical
programs, `benchmarks.pick_baselines`) and `likelihood` / `mean likelihood` (the response's
total / per-token log-probability under the seed policy) are measured on the same pools.
--likelihood-weights B ... adds, per variant, rows that rank by the reranker's score plus B
times the seed policy's total log-probability (a score per candidate, no pool needed).
--offset-weights B ... adds, per variant, a reranker trained on the residual of that prior:
Bradley-Terry with the prior as an offset, loss -log sigmoid(r+ + B ll+ - r- - B ll-) (TRL's
`margin` column, B (ll- - ll+)), ranked by its score plus B ll as the prior's reranker ranks.

--round1 INIT:LEARNING_RATE:REPLAY[:MAX_PAIRS] ... simulates a self-training round instead, cross-fitted
(--folds, default 4): per fold, an r0 reranker is trained on the other folds' r0 pairs with
the run's params.yaml `reranker` section, mines hard negatives among the other folds' r1
training candidates with the run's `pairs` section (as the mine stage does), and each variant
trains r1's reranker from it (`previous`) or from the untrained one (`seed`) on
`select_training_pairs` of those pairs at the variant's learning rate and `replay` share
(and `max_pairs`, default the run's; 0: every pair so far, the paper's rule).
Every reranker ranks the held-out fold's samples (r0's and r1's), and each variant is also
compared with the fold's r0 reranker on the same samples (a paired interval): forgetting
shows as a negative difference.

Figures: within-problem pairwise accuracy on the held-out problems' (passing, failing)
sample pairs with a 95% bootstrap interval over problems, top-1 hit rate next to chance,
the top pick's gain over a random pick among problems with a choice (with its interval),
and training pairs/s.
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
    parser.add_argument("--holdout", type=int, default=40, help="training problems held out (without --folds)")
    parser.add_argument("--folds", type=int, default=0, help="cross-fit over K folds instead of one held-out slice")
    parser.add_argument("--pairs", type=int, default=192, help="training pairs per variant (and fold)")
    parser.add_argument("--per-problem", type=int, default=8,
                        help="pairs drawn per problem by the `samples` and `references` selections")
    parser.add_argument("--variants", nargs="*", default=["file:0", "spread:0", "spread:3"])
    parser.add_argument("--init", type=Path, help="the untrained reranker to start from (default: the run's "
                        "models/seed/reranker; another `pipelines.prepare_models --reranker-layers` output to "
                        "compare depths)")
    parser.add_argument("--round1", nargs="+", metavar="INIT:LR:REPLAY[:MAX_PAIRS]",
                        help="simulate round r1's training instead (see above)")
    parser.add_argument("--likelihood-weights", nargs="*", type=float, default=[], metavar="B",
                        help="also rank by each variant's score + B x the seed policy's log-probability")
    parser.add_argument("--offset-weights", nargs="*", type=float, default=[], metavar="B",
                        help="also train each variant with B x the seed policy's log-probability as an offset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--group-by-length", action="store_true",
                        help="batch pairs of similar length, as reranker.group_by_length (default: shuffled)")
    return parser.parse_args(argv)


def held_out_slices(names: list[str], holdout: int, folds: int, seed: int) -> list[set[str]]:
    """The held-out problem sets: one slice of `holdout` problems, or (folds > 0) every
    problem dealt into `folds` disjoint folds after a seeded shuffle."""
    names = sorted(names)
    random.Random(seed).shuffle(names)
    if folds:
        return [set(names[i::folds]) for i in range(folds)]
    return [set(names[:holdout])]


def held_out_samples(run: Path, holdout: set[str], rounds: str = "r*") -> list[dict]:
    """Every round's (or those `rounds` matches) sampled (not reference, not greedy) training
    candidates of the held-out problems, pooled per problem."""
    from coderanker.jsonl import read_jsonl

    samples = []
    for results in sorted(run.glob(f"data/{rounds}/results/train.jsonl")):
        samples += [r for r in read_jsonl(results)
                    if r["name"] in holdout and not r.get("reference") and not r.get("greedy")]
    return samples


def mark_references(pairs: list[dict], run: Path) -> list[dict]:
    """Pairs with `chosen_reference` true where their chosen program is a training problem's
    reference (r0's results list them), whatever the pair recorded: pairs mined before pairs
    recorded the key lack it, and before faabd4c a hard negative paired with an earlier
    round's reference recorded False."""
    from coderanker.jsonl import read_jsonl

    references = {(r["name"], r["completion"]) for r in read_jsonl(run / "data/r0/results/train.jsonl")
                  if r.get("reference")}
    return [{**p, "chosen_reference": bool(p.get("chosen_reference"))
             or (p["name"], p["chosen_completion"]) in references} for p in pairs]


def fresh_pairs(run: Path, per_problem: int, seed: int) -> list[dict]:
    """(passing, failing) pairs drawn from every round's training results pooled (identical
    programs once), at most `per_problem` per problem, as the mine stage records them."""
    from coderanker.jsonl import read_jsonl
    from coderanker.mining import pair_record
    from coderanker.pairs import PairConfig, build_pairs

    results = [r for path in sorted(run.glob("data/r*/results/train.jsonl")) for r in read_jsonl(path)]
    config = PairConfig(max_pairs_per_problem=per_problem, seed=seed)
    return [pair_record(chosen, rejected, "pooled", "pair", 0.0) for chosen, rejected in build_pairs(results, config)]


def variant_pairs(selection: str, mined: list[dict], pooled: list[dict], count: int, config,
                  rounds: dict[str, list[dict]] | None = None) -> list[dict]:
    """The training pairs of one variant (see the module's docstring); `rounds` holds the
    pairs a round's name selects."""
    from coderanker.training.reward import select_training_pairs

    round_id, _, how = selection.partition("-")
    if rounds and round_id in rounds:
        return select_training_pairs(filtered(rounds[round_id], how, config.seed), round_id, config)
    if selection == "file":
        return mined[:count]
    if selection == "spread":
        return select_training_pairs(mined, "r0", config)
    if selection in ("samples", "references"):
        wanted = selection == "references"
        return select_training_pairs([p for p in pooled if p["chosen_reference"] == wanted], "pooled", config)
    raise SystemExit(f"unknown selection {selection!r}: file, spread, samples, references or a round's name "
                     f"(one of {sorted(rounds or {})}, optionally -{' or -'.join(PAIR_FILTERS)})")


PAIR_FILTERS = ("nohard", "balanced")


def filtered(pairs: list[dict], how: str, seed: int) -> list[dict]:
    """A round's pairs (`ROUND-FILTER` selections): `nohard` drops every round's hard
    negatives; `balanced` drops, per round, a seeded sample of the pairs on the more common
    side so that as many rejected programs are shorter than their chosen one as are not (length
    then tells nothing about which side passed). No filter: the pairs as they are."""
    if not how:
        return pairs
    if how == "nohard":
        return [p for p in pairs if p.get("kind") != "hard_negative"]
    if how != "balanced":
        raise SystemExit(f"unknown pair filter {how!r}: one of {', '.join(PAIR_FILTERS)}")
    rng, dropped = random.Random(seed), set()
    for round_id in sorted({p.get("round") for p in pairs}, key=str):
        indices = [i for i, p in enumerate(pairs) if p.get("round") == round_id]
        shorter = [i for i in indices if len(pairs[i]["rejected_completion"]) < len(pairs[i]["chosen_completion"])]
        rest = sorted(set(indices) - set(shorter))
        larger, smaller = (shorter, rest) if len(shorter) > len(rest) else (rest, shorter)
        dropped.update(rng.sample(larger, len(larger) - len(smaller)))
    return [p for i, p in enumerate(pairs) if i not in dropped]


def measure(scored: list[dict], seed: int, score=lambda r: r["score"]) -> dict:
    """Figures over `scored`, the samples of problems with a choice only (`with_choice`)."""
    from coderanker.metrics import bootstrap_ci95, gain_per_problem, group_by_problem, pairwise_counts, top_k_hits

    groups = group_by_problem(scored)
    wins, totals = pairwise_counts(groups, score)
    per_problem = [w / t for w, t in zip(wins, totals, strict=True)]
    hits = top_k_hits(groups, score)
    gain = gain_per_problem(groups, score)
    return {"pairwise_acc": sum(wins) / sum(totals), "pairwise_acc_problem_mean": sum(per_problem) / len(per_problem),
            "pairwise_acc_ci95": bootstrap_ci95(per_problem, seed=seed), "eval_pairs": sum(totals),
            "problems_with_choice": len(totals), "choice_gain": sum(gain) / len(gain),
            "choice_gain_ci95": bootstrap_ci95(gain, seed=seed), **hits}


def with_choice(samples: list[dict]) -> list[dict]:
    """The samples of problems with both passing and failing samples (elsewhere every pick
    has the same outcome, so only these are scored)."""
    from coderanker.metrics import choice_sample_lists, group_by_problem

    return [r for group in choice_sample_lists(group_by_problem(samples)) for r in group]


def train_and_score(pairs: list[dict], init, out: str, config, problems: dict, held: list[dict], tokenizer,
                    style, dtype: str = "fp32") -> dict:
    """Train a reranker from `init` on `pairs` into `out` (one Ray Train worker, as the stage
    trains by default), then score `held` with it:
    {"scored": held with "score", "runtime": TRL's train_runtime, "seconds": the whole fit}."""
    from coderanker.reranker import encode_pairs
    from coderanker.training.ray_train import RayTrainConfig
    from coderanker.training.reward import train_reranker

    encoded = encode_pairs(tokenizer, style, problems, pairs, config.max_length)
    start = time.monotonic()
    train_reranker(encoded, init, out, config, RayTrainConfig(), dtype)
    elapsed = time.monotonic() - start
    log = json.loads((Path(out) / "training_log.json").read_text())
    runtime = next((float(e["train_runtime"]) for e in log if "train_runtime" in e), elapsed)
    return {"scored": score_with(out, config, problems, held, style), "runtime": runtime, "seconds": elapsed}


def pair_log_likelihoods(policy_dir: Path, problems: dict, pairs: list[dict], style: str,
                         max_length: int) -> dict[tuple[str, str], float]:
    """The seed policy's total log-probability of every pair's chosen and rejected response,
    by (problem, response), computed as the stage's prior computes it (auto placement)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from coderanker.reranker import encode_parts, response_log_likelihoods
    from coderanker.runtime import Placement

    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    model = Placement.of().load(AutoModelForCausalLM, policy_dir).eval()
    keys = list(dict.fromkeys((p["name"], text) for p in pairs for text in (p["chosen"], p["rejected"])))
    items = [encode_parts(tokenizer, style, problems[name], text, max_length) for name, text in keys]
    return dict(zip(keys, response_log_likelihoods(model, items, tokenizer.pad_token_id, 20), strict=True))


def score_with(reranker, config, problems: dict, candidates: list[dict], style) -> list[dict]:
    """`candidates` with "score" from the reranker directory `reranker`, in prompt style `style`
    (the one its pairs were encoded in)."""
    from coderanker.reranker import Reranker

    scorer = Reranker.load(str(reranker), max_length=config.max_length, batch_size=config.score_batch_size,
                           prompt_style=style)
    return [{**c, "score": v} for c, v in zip(candidates, scorer.score_candidates(problems, candidates), strict=True)]


def round_one(args: argparse.Namespace, problems: dict, init: Path, tokenizer, style) -> None:
    """`--round1`: r1's training variants against the r0 reranker, cross-fitted (module docstring)."""
    from coderanker.config import load_params, section
    from coderanker.jsonl import read_jsonl
    from coderanker.metrics import bootstrap_ci95, gain_per_problem, group_by_problem
    from coderanker.mining import mine_round
    from coderanker.pairs import PairConfig
    from coderanker.reranker import Reranker
    from coderanker.runtime import training_dtype
    from coderanker.training.ray_train import RayTrainConfig
    from coderanker.training.reward import RerankerTrainConfig, select_training_pairs

    params = load_params(args.run / "params.yaml")
    dtype = training_dtype(params, RayTrainConfig())  # as the run's train_reranker stages
    base = section(params, "reranker", RerankerTrainConfig, str(args.run / "params.yaml"))
    pair_config = section(params, "pairs", PairConfig, str(args.run / "params.yaml"))
    slices = held_out_slices(list(problems), args.holdout, args.folds or 4, args.seed)
    mined = mark_references(read_jsonl(args.run / "data/r0/pairs/pairs.jsonl"), args.run)
    r1_results = read_jsonl(args.run / "data/r1/results/train.jsonl")
    variants = []
    for text in dict.fromkeys(args.round1):
        parts = text.split(":")
        if len(parts) not in (3, 4) or parts[0] not in ("previous", "seed") or not 0 <= float(parts[2]) <= 1:
            raise SystemExit(f"--round1 {text!r}: INIT:LEARNING_RATE:REPLAY[:MAX_PAIRS], INIT previous or seed, "
                             "REPLAY in [0, 1]")
        variants.append((text, *parts[:3], int(parts[3]) if len(parts) == 4 else base.max_pairs))
    scored: dict[str, list[dict]] = {"r0": [], **{text: [] for text, *_ in variants}}
    for fold, holdout in enumerate(slices):
        held = with_choice(held_out_samples(args.run, holdout, "r[01]"))
        with tempfile.TemporaryDirectory(prefix="round1-") as tmp:
            r0_dir = Path(tmp) / "r0"
            r0_pairs = select_training_pairs([p for p in mined if p["name"] not in holdout], "r0", base)
            fit = train_and_score(r0_pairs, init, str(r0_dir), base, problems, held, tokenizer, style, dtype)
            scored["r0"] += fit["scored"]
            scorer = Reranker.load(str(r0_dir), max_length=base.max_length, batch_size=base.score_batch_size,
                                   prompt_style=style)
            pairs, mining, _ = mine_round([dict(r) for r in r1_results if r["name"] not in holdout],
                                          [p for p in mined if p["name"] not in holdout], problems, "r1",
                                          pair_config, scorer)
            del scorer
            print(f"fold {fold} ({dtype}): {len(held)} held-out samples; r0 trained on {len(r0_pairs)} pairs; r1 mined "
                  f"{mining.new_pairs} new pairs and {mining.hard_negative_pairs} hard-negative pairs", flush=True)
            for text, start, rate, replay, max_pairs in variants:
                config = replace(base, learning_rate=float(rate), replay=float(replay), max_pairs=max_pairs)
                chosen = select_training_pairs(pairs, "r1", config)
                with tempfile.TemporaryDirectory(prefix="round1-") as out:
                    fit = train_and_score(chosen, r0_dir if start == "previous" else init, out, config, problems,
                                          held, tokenizer, style, dtype)
                scored[text] += fit["scored"]
                counts = {kind: sum(p.get("kind") == kind and p.get("round") == "r1" for p in chosen)
                          for kind in ("hard_negative", "pair")}
                counts |= {"earlier": sum(p.get("round") != "r1" for p in chosen), "seconds": round(fit["seconds"])}
                print(f"  {text}: {counts}", flush=True)
    rows = {label: measure(samples, args.seed) for label, samples in scored.items()}
    reference = gain_per_problem(group_by_problem(scored["r0"]), lambda r: r["score"])
    for label, row in rows.items():
        gain_low, gain_high = row["choice_gain_ci95"]
        line = (f"{label:>20}: pairwise acc {row['pairwise_acc']:.3f} top-1 {row['top1_hit_rate']:.3f} vs chance "
                f"{row['top1_chance']:.3f}, gain {row['choice_gain']:+.3f} [{gain_low:+.3f}, {gain_high:+.3f}] "
                f"on {row['problems_with_choice']} problems")
        if label != "r0":
            # the same held-out samples in the same order, so the per-problem gains pair up
            difference = [a - b for a, b in zip(gain_per_problem(group_by_problem(scored[label]),
                                                                 lambda r: r["score"]), reference, strict=True)]
            low, high = bootstrap_ci95(difference, seed=args.seed)
            line += f"; minus r0 {sum(difference) / len(difference):+.3f} [{low:+.3f}, {high:+.3f}]"
        print(line, flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    from transformers import AutoTokenizer

    from benchmarks.pick_baselines.run import policy_log_likelihoods, with_votes
    from coderanker.config import load_params
    from coderanker.generation import resolve_style
    from coderanker.jsonl import read_jsonl
    from coderanker.metrics import group_by_problem
    from coderanker.problems import by_name, load_problems
    from coderanker.reranker import Reranker, read_prompt_style
    from coderanker.runtime import training_dtype
    from coderanker.training.ray_train import RayTrainConfig
    from coderanker.training.reward import RerankerTrainConfig

    problems = by_name(load_problems(args.run / "data/problems/train.jsonl"))
    init = args.init or args.run / "models/seed/reranker"
    tokenizer = AutoTokenizer.from_pretrained(init)
    style = resolve_style(read_prompt_style(init), tokenizer)
    if args.round1:
        round_one(args, problems, init, tokenizer, style)
        return
    dtype = training_dtype(load_params(args.run / "params.yaml"), RayTrainConfig())  # as the run's stages
    slices = held_out_slices(list(problems), args.holdout, args.folds, args.seed)
    rounds = {path.parent.parent.name: mark_references(read_jsonl(path), args.run)
              for path in sorted(args.run.glob("data/r*/pairs/pairs.jsonl"))}
    mined = rounds["r0"]
    pooled = fresh_pairs(args.run, args.per_problem, args.seed)
    base = RerankerTrainConfig(init="seed", max_pairs=args.pairs, epochs=1.0, learning_rate=3e-5, batch_size=4,
                               max_length=512, warmup_ratio=0.1, score_batch_size=20, fit_eval_pairs=24,
                               group_by_length=args.group_by_length)
    samples = [with_choice(held_out_samples(args.run, holdout)) for holdout in slices]
    print(f"{len(slices)} held-out slice(s) of {sorted(map(len, slices))} training problems; "
          f"{sum(map(len, samples))} samples of the {len(group_by_problem(sum(samples, [])))} held-out problems "
          f"with a choice; pairs: r0 mined {len(mined)}, pooled {len(pooled)} "
          f"({sum(not p['chosen_reference'] for p in pooled)} with a model sample chosen); training in {dtype}",
          flush=True)
    everything = sum(samples, [])
    rows = {"vote": measure([r for group in group_by_problem(everything).values() for r in with_votes(group)],
                            args.seed, score=lambda r: r["votes"])}
    untrained = Reranker.load(str(init), max_length=base.max_length, batch_size=base.score_batch_size)
    rows["untrained"] = measure([{**s, "score": v} for s, v in
                                 zip(everything, untrained.score_candidates(problems, everything), strict=True)],
                                args.seed)
    del untrained
    likelihoods = policy_log_likelihoods(args.run / "models/seed/policy", problems, everything, style, base.max_length)
    for label, index in (("likelihood", 0), ("mean likelihood", 1)):
        rows[label] = measure([{**s, "score": v[index]} for s, v in zip(everything, likelihoods, strict=True)],
                              args.seed)
    prior: dict = {}  # the seed policy's log-probability of the trained pairs' programs (--offset-weights)
    for variant in args.variants:
        selection, layers, *rest = variant.split(":")
        config = replace(base, trainable_layers=int(layers), **dict(zip(("learning_rate", "epochs"),
                                                                         map(float, rest), strict=False)))
        scored, trained, runtime, seconds = [], [], 0.0, 0.0
        for holdout, held in zip(slices, samples, strict=True):
            chosen = variant_pairs(selection, [p for p in mined if p["name"] not in holdout],
                                   [p for p in pooled if p["name"] not in holdout], args.pairs, config,
                                   {name: [p for p in pairs if p["name"] not in holdout]
                                    for name, pairs in rounds.items()})
            with tempfile.TemporaryDirectory(prefix="slice-") as out:
                fit = train_and_score(chosen, init, out, config, problems, held, tokenizer, style, dtype)
            scored += fit["scored"]
            runtime, seconds = runtime + fit["runtime"], seconds + fit["seconds"]
            trained.append(chosen)
        rows[variant] = {"pairs": sum(map(len, trained)),
                         "model_sample_chosen": sum(not p["chosen_reference"] for c in trained for p in c),
                         "pairs_per_s": sum(map(len, trained)) / runtime, "stage_seconds": seconds,
                         **measure(scored, args.seed)}
        print(variant, json.dumps(rows[variant]), flush=True)
        for weight in args.likelihood_weights:
            # `scored` runs over the slices in order, as `everything` and `likelihoods` do
            rows[f"{variant} + {weight:g} ll"] = measure(
                [{**s, "score": s["score"] + weight * v[0]} for s, v in zip(scored, likelihoods, strict=True)],
                args.seed)
        needed = [p for chosen in trained for p in chosen if args.offset_weights
                  and ((p["name"], p["chosen"]) not in prior or (p["name"], p["rejected"]) not in prior)]
        if needed:
            prior |= pair_log_likelihoods(args.run / "models/seed/policy", problems, needed, style, base.max_length)
        for weight in args.offset_weights:
            offset = []
            for held, chosen in zip(samples, trained, strict=True):
                margins = [{**p, "margin": weight * (prior[p["name"], p["rejected"]] - prior[p["name"], p["chosen"]])}
                           for p in chosen]
                with tempfile.TemporaryDirectory(prefix="slice-") as out:
                    offset += train_and_score(margins, init, out, config, problems, held, tokenizer, style,
                                              dtype)["scored"]
            rows[f"{variant} offset {weight:g}"] = measure(
                [{**s, "score": s["score"] + weight * v[0]} for s, v in zip(offset, likelihoods, strict=True)],
                args.seed)
            print(f"{variant} offset {weight:g}", json.dumps(rows[f"{variant} offset {weight:g}"]), flush=True)
    first = next(iter(args.variants), None)
    for variant, row in rows.items():
        low, high = row["pairwise_acc_ci95"]
        gain_low, gain_high = row["choice_gain_ci95"]
        speed = (f"; {row['pairs_per_s']:.2f} pairs/s ({row['pairs_per_s'] / rows[first]['pairs_per_s']:.2f}x "
                 f"{first})" if "pairs_per_s" in row else "")
        print(f"{variant:>14}: pairwise acc {row['pairwise_acc']:.3f} "
              f"(problem mean {row['pairwise_acc_problem_mean']:.3f} [{low:.3f}, {high:.3f}]) "
              f"top-1 {row['top1_hit_rate']:.3f} vs chance {row['top1_chance']:.3f}, "
              f"gain {row['choice_gain']:+.3f} [{gain_low:+.3f}, {gain_high:+.3f}] "
              f"on {row['problems_with_choice']} problems{speed}")


if __name__ == "__main__":
    main()
