"""What picks the passing program without running its tests: the reranker against
pick rules that need no training, on the candidate pools a run already scored.

    .venv/bin/python -m benchmarks.pick_baselines --run DIR [--set eval-starter] [--seed 0] [--pool N]

DIR is a finished `dvc repro` checkout (data/r*/scored/SET.jsonl: every round's evaluation
pool with the round's reranker scores). `--set train` reads the training problems' samples
instead (data/r*/results/train.jsonl, references left out; unscored, so only the rules
without the reranker): the split to judge a pick rule on without touching evaluation.

Rules, each picking one sample per problem:
`random` (the pass rate), `greedy` (the greedy candidate), `reranker` (the paper's
protocol, as `reranked_pass@1`), `consensus` (a sample of the largest group of identical
programs: same syntax tree for Python, same text up to whitespace elsewhere; a
self-consistency vote, as AlphaCode clusters and MBR decoding select, but without
executing anything; every round's metrics report it as `consensus_pass@1`),
`consensus+reranker` (the reranker's pick within the largest group), `oracle`, and with
`--likelihood` also `likelihood` (the sample whose response the policy that wrote it gives
the highest total log-probability; this runs each round's policy over the samples of the
problems with a choice, some minutes on 2 cores). Per
rule: pass@1, the gain over a random pick and the difference from greedy with paired 95%
bootstrap intervals over problems, and top-1 hits among the problems with a choice next to
chance; for the rules that pick by score, the mean length of the pick against that of the
passing samples there (characters). Without --likelihood nothing runs a model; reads only.

Picks are made from pools of `--pool` of a problem's samples (default: the run's
`sample.eval_pool_size` for an evaluation set, every sample for `train`), each figure its
exact mean over every such pool, as the evaluate stage's (`coderanker.metrics.pick_rate`);
the reranker and oracle rows then equal the stage's `reranked_pass@1` and `oracle_pass@n`.
The consensus rules count votes among all of a problem's samples and pick from the pool by
them, where the stage's `consensus_pass@1` votes within each pool: the two agree only when
the pool is every sample. `pick / passing chars` is the pick from every sample.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, type=Path, help="a finished dvc repro checkout")
    parser.add_argument("--set", default="eval-starter", help="the evaluation set (data/r*/scored/SET.jsonl)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--pool", type=int, help="pick from pools of this many samples (default: the run's "
                        "sample.eval_pool_size for an evaluation set, 0 for train; 0: every sample)")
    parser.add_argument("--likelihood", action="store_true",
                        help="also rank by the generating policy's log-probability of each sample (runs it)")
    return parser.parse_args(argv)


def with_votes(group: list[dict]) -> list[dict]:
    """A problem's records, each with `votes`: how many of its sampled records are the same
    program (`coderanker.metrics.program_key`; the greedy candidate is not counted: it is not
    one of the N samples)."""
    from coderanker.metrics import program_key, sampled

    keys = [program_key(r) for r in group]
    counts = Counter(key for key, r in zip(keys, group, strict=True) if sampled([r]))
    return [{**r, "votes": counts[key]} for key, r in zip(keys, group, strict=True)]


def policy_log_likelihoods(policy_dir: Path, problems: dict, samples: list[dict], style: str,
                           max_length: int = 512) -> list[tuple[float, float]]:
    """Per sample, the (total, per-token mean) log-probability of its response under the
    policy, the response as the reranker sees it (`coderanker.reranker.encode_parts`: the
    model input, then the response and EOS): a score that needs no training and no pool."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from coderanker.reranker import candidate_response, encode_parts

    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    model = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32).eval()
    figures = []
    with torch.inference_mode():
        for sample in samples:
            query, answer = encode_parts(tokenizer, style, problems[sample["name"]], candidate_response(sample),
                                         max_length)
            ids = torch.tensor([query + answer])
            logits = model(input_ids=ids).logits[0, len(query) - 1: -1].float()
            token = torch.log_softmax(logits, dim=-1).gather(1, ids[0, len(query):, None])[:, 0]
            figures.append((float(token.sum()), float(token.mean())))
    return figures


def with_likelihoods(run: Path, set_name: str, groups: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """`groups` with `likelihood` on every record: the total log-probability of its response
    under its `generator` (a policy directory of the run), for the samples of the problems with
    a choice (elsewhere every pick has the same outcome, and 0.0 stands in)."""
    from transformers import AutoTokenizer

    from coderanker.generation import resolve_style
    from coderanker.metrics import choice_sample_lists
    from coderanker.problems import by_name, load_problems
    from coderanker.reranker import read_prompt_style

    problems = by_name(load_problems(run / f"data/problems/{set_name}.jsonl"))
    choice = {r["name"] for samples in choice_sample_lists(groups) for r in samples}
    scored = {}
    for generator in sorted({r["generator"] for n in choice for r in groups[n]}):
        policy = run / generator
        style = resolve_style(read_prompt_style(run / "models/seed/reranker"), AutoTokenizer.from_pretrained(policy))
        rows = [r for n in choice for r in groups[n] if r["generator"] == generator]
        for row, (total, _) in zip(rows, policy_log_likelihoods(policy, problems, rows, style), strict=True):
            scored[id(row)] = total
    return {name: [{**r, "likelihood": scored.get(id(r), 0.0)} for r in group] for name, group in groups.items()}


def rules() -> dict[str, Callable[[dict], object]]:
    """Scores for `coderanker.metrics.top_sample` (ties to the earliest sample); None for the
    rules that are not a pick by score."""
    return {"random": None, "greedy": None, "reranker": lambda r: r["score"], "consensus": lambda r: r["votes"],
            "consensus+reranker": lambda r: (r["votes"], r["score"]), "likelihood": lambda r: r["likelihood"],
            "oracle": None}


NEEDS = {"reranker": "score", "consensus+reranker": "score", "likelihood": "likelihood"}
"""The record field a rule reads beyond the labels; a pool without it leaves the rule out."""


def rule_outcomes(groups: dict[str, list[dict]], rule: str, pool: int = 0) -> dict[str, float]:
    """Per problem with samples, the chance that the rule's pick from a pool of `pool` passes."""
    from coderanker.metrics import count_passing, pass_at_k, passes, pick_rate, pool_size, sampled

    outcomes = {}
    for name, group in groups.items():
        samples = sampled(group)
        if not samples:
            continue
        if rule == "random":
            outcomes[name] = count_passing(samples) / len(samples)
        elif rule == "oracle":
            outcomes[name] = pass_at_k(len(samples), count_passing(samples), pool_size(len(samples), pool))
        elif rule == "greedy":
            greedy = [r for r in group if r.get("greedy")]
            if greedy:
                outcomes[name] = float(any(map(passes, greedy)))
        else:
            outcomes[name] = pick_rate(samples, rules()[rule], pool)
    return outcomes


def measure(groups: dict[str, list[dict]], seed: int, pool: int = 0) -> dict[str, dict]:
    from coderanker.metrics import bootstrap_ci95, choice_sample_lists

    choice = {r["name"] for samples in choice_sample_lists(groups) for r in samples}
    present = {key for key in set(NEEDS.values()) if all(key in r for group in groups.values() for r in group)}
    outcomes = {rule: rule_outcomes(groups, rule, pool) for rule in rules()
                if rule not in NEEDS or NEEDS[rule] in present}
    random, greedy = outcomes["random"], outcomes["greedy"]
    figures = {}
    for rule, outcome in outcomes.items():
        if not outcome:  # a pool without greedy candidates, say
            continue
        names = sorted(outcome)
        gain = [outcome[n] - random[n] for n in names]
        versus_greedy = [outcome[n] - greedy[n] for n in names if n in greedy]
        figures[rule] = {
            "pass@1": sum(outcome.values()) / len(outcome), "problems": len(outcome),
            "gain": sum(gain) / len(gain), "gain_ci95": bootstrap_ci95(gain, seed=seed),
            "minus_greedy": sum(versus_greedy) / len(versus_greedy) if versus_greedy else None,
            "minus_greedy_ci95": bootstrap_ci95(versus_greedy, seed=seed),
            "top1_hits": sum(outcome[n] for n in names if n in choice),
            "top1_chance": sum(random[n] for n in names if n in choice), "problems_with_choice": len(choice),
            **pick_lengths(groups, rule, choice),
        }
    return figures


def pick_lengths(groups: dict[str, list[dict]], rule: str, choice: set[str]) -> dict[str, float]:
    """Among the problems with a choice, the mean length (characters of the completion) of a
    scoring rule's pick and of the passing samples (each problem's mean, then the mean over
    problems): a rule drawn to short or long programs shows here. Empty for the rules that are
    not a pick by score."""
    from coderanker.metrics import passes, sampled, top_sample

    score = rules().get(rule)
    if score is None or not choice:
        return {}
    picks, passing = [], []
    for name in sorted(choice):
        samples = sampled(groups[name])
        picks.append(len(top_sample(samples, score)["completion"]))
        good = [len(r["completion"]) for r in samples if passes(r)]
        passing.append(sum(good) / len(good))
    return {"pick_chars": sum(picks) / len(picks), "passing_chars": sum(passing) / len(passing)}


def difference(value: float | None, ci: list[float] | None) -> str:
    if value is None:
        return ""
    return f"{value:+.3f} " + ("[n/a]" if ci is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]")


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    from coderanker.config import load_params, section
    from coderanker.generation import SamplingConfig
    from coderanker.jsonl import read_jsonl
    from coderanker.metrics import group_by_problem

    size, params = args.pool, args.run / "params.yaml"
    if size is None:
        size = 0 if args.set == "train" or not params.exists() else section(load_params(params), "sample",
                                                                             SamplingConfig).eval_pool_size

    pattern = "data/r*/results/train.jsonl" if args.set == "train" else f"data/r*/scored/{args.set}.jsonl"
    pools = sorted(args.run.glob(pattern))
    if not pools:
        raise SystemExit(f"{args.run}: no {pattern} (a finished dvc repro checkout?)")
    print("| round | rule | pass@1 | gain over random | minus greedy | top-1 hits / chance | pick / passing chars |")
    print("|---|---|---|---|---|---|---|")
    for pool in pools:
        records = [r for r in read_jsonl(pool) if not r.get("reference")]
        groups = {name: with_votes(group) for name, group in group_by_problem(records).items()}
        if args.likelihood:
            groups = with_likelihoods(args.run, args.set, groups)
        for rule, row in measure(groups, args.seed, size).items():
            gain = difference(row["gain"], row["gain_ci95"])
            greedy = difference(row["minus_greedy"], row["minus_greedy_ci95"])
            hits = f"{row['top1_hits']:.1f}/{row['problems_with_choice']} ({row['top1_chance']:.1f})"
            chars = f"{row['pick_chars']:.0f} / {row['passing_chars']:.0f}" if "pick_chars" in row else ""
            print(f"| {pool.parts[-3]} | {rule} | {row['pass@1']:.3f} | {gain} | {greedy} | {hits} | {chars} |")
    print(f"({args.set}; {len(groups)} problems in the last round's pool; picks from "
          + (f"pools of {size} samples" if size else "every sample")
          + "; intervals: paired 95% bootstraps over problems)")


if __name__ == "__main__":
    main()
