"""Scoring a round's evaluation candidates with its reranker and summarising them."""

from __future__ import annotations

import os
from pathlib import Path

from coderanker.jsonl import read_jsonl, write_jsonl
from coderanker.metrics import (
    bootstrap_ci95,
    choice_sample_lists,
    compare_on_pool,
    gain_per_problem,
    group_by_problem,
    mean_or_none,
    mean_pass_at_k,
    pairwise_accuracy,
    summarise,
)
from coderanker.problems import by_name, load_problems


def evaluate_round(problems_dir: Path, results_dir: Path, reranker_dir: str | os.PathLike, sets: list[str],
                   scored_dir: Path, rerank_config, placement=None) -> dict[str, dict]:
    """Per evaluation set: pass@1, greedy, oracle, reranked pass@1 with its gain and
    intervals, within-problem hit rates, pruned figures (see `coderanker.metrics`)."""
    reranker = load_scorer(reranker_dir, rerank_config, placement)
    summaries = {}
    for name in sets:
        problems = by_name(load_problems(problems_dir / f"eval-{name}.jsonl"))
        results = read_jsonl(results_dir / f"eval-{name}.jsonl")
        for result, score in zip(results, reranker.score_candidates(problems, results), strict=True):
            result["score"] = score
        write_jsonl(scored_dir / f"eval-{name}.jsonl", results)
        summaries[name] = summarise(results, score=lambda r: r["score"])
    return summaries


def compare_on_shared_pool(problems_dir: Path, pool_dir: Path, set_name: str, reranker_dir, previous_dir,
                           rerank_config, placement=None) -> dict:
    """The round's reranker against the previous round's on the same candidates (the first
    round's pool of `set_name`): rounds compared on one pool, a paired comparison.

    Only the samples of problems with a choice are scored: elsewhere every pick has the same
    outcome, so the figures (all over every problem of the pool) are exact, at about a
    quarter of the scoring on the default profile."""
    problems = by_name(load_problems(problems_dir / f"eval-{set_name}.jsonl"))
    pool = read_jsonl(pool_dir / f"eval-{set_name}.jsonl")
    choice = {id(r) for samples in choice_sample_lists(group_by_problem(pool)) for r in samples}
    to_score = [r for r in pool if id(r) in choice]
    current = load_scorer(reranker_dir, rerank_config, placement).score_candidates(problems, to_score)
    previous = load_scorer(previous_dir, rerank_config, placement).score_candidates(problems, to_score)
    for result in pool:
        result["score"] = result["previous_score"] = 0.0
    for result, now, before in zip(to_score, current, previous, strict=True):
        result["score"], result["previous_score"] = now, before
    compared = compare_on_pool(pool, lambda r: r["previous_score"], lambda r: r["score"])
    groups = group_by_problem(pool)
    gains = gain_per_problem(groups, lambda r: r["score"])
    return {
        "problems": compared["problems"],
        "problems_with_choice": compared["problems_with_choice"],
        "scored": len(to_score),
        "pass@1": mean_pass_at_k(groups, 1),
        "reranked_pass@1": compared["reranked_pass@1_b"],
        "previous_reranked_pass@1": compared["reranked_pass@1_a"],
        "difference_vs_previous": compared["difference"],
        "difference_vs_previous_ci95": compared["difference_ci95"],
        "reranked_gain": mean_or_none(gains),
        "reranked_gain_ci95": bootstrap_ci95(gains),
        "reranker_pairwise_acc": pairwise_accuracy(groups, lambda r: r["score"]),
        "previous_reranker_pairwise_acc": pairwise_accuracy(groups, lambda r: r["previous_score"]),
    }


def load_scorer(reranker_dir, rerank_config, placement=None):
    from coderanker.reranker import Reranker

    return Reranker.load(str(reranker_dir), placement=placement, max_length=rerank_config.max_length,
                         batch_size=rerank_config.score_batch_size)
