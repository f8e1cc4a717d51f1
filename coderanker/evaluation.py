"""Scoring a round's evaluation candidates with its reranker and summarising them."""

from __future__ import annotations

import os
from pathlib import Path

from coderanker.jsonl import read_jsonl, write_jsonl
from coderanker.metrics import compare_on_pool, summarise
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
    round's pool of `set_name`): rounds compared on one pool, a paired comparison."""
    problems = by_name(load_problems(problems_dir / f"eval-{set_name}.jsonl"))
    pool = read_jsonl(pool_dir / f"eval-{set_name}.jsonl")
    current = load_scorer(reranker_dir, rerank_config, placement).score_candidates(problems, pool)
    previous = load_scorer(previous_dir, rerank_config, placement).score_candidates(problems, pool)
    for result, now, before in zip(pool, current, previous, strict=True):
        result["score"], result["previous_score"] = now, before
    compared = compare_on_pool(pool, lambda r: r["previous_score"], lambda r: r["score"])
    summary = summarise(pool, score=lambda r: r["score"])
    return {
        "problems": compared["problems"],
        "problems_with_choice": compared["problems_with_choice"],
        "pass@1": summary["pass@1"],
        "reranked_pass@1": compared["reranked_pass@1_b"],
        "previous_reranked_pass@1": compared["reranked_pass@1_a"],
        "difference_vs_previous": compared["difference"],
        "difference_vs_previous_ci95": compared["difference_ci95"],
        "reranked_gain": summary["reranked_gain"],
        "reranked_gain_ci95": summary["reranked_gain_ci95"],
        "reranker_auc": summary["reranker_auc"],
    }


def load_scorer(reranker_dir, rerank_config, placement=None):
    from coderanker.reranker import Reranker

    return Reranker.load(str(reranker_dir), placement=placement, max_length=rerank_config.max_length,
                         batch_size=rerank_config.score_batch_size)
