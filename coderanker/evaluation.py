"""Scoring a round's evaluation candidates with its reranker and summarising them."""

from __future__ import annotations

import os
from pathlib import Path

from coderanker.jsonl import read_jsonl, write_jsonl
from coderanker.metrics import summarise
from coderanker.problems import by_name, load_problems


def evaluate_round(problems_dir: Path, results_dir: Path, reranker_dir: str | os.PathLike, sets: list[str],
                   scored_dir: Path, rerank_config) -> dict[str, dict]:
    """Per evaluation set: pass@1, greedy, oracle, reranked pass@1, AUC, pairwise accuracy."""
    from coderanker.reranker import Reranker

    reranker = Reranker.load(str(reranker_dir), max_length=rerank_config.max_length,
                             batch_size=rerank_config.score_batch_size)
    summaries = {}
    for name in sets:
        problems = by_name(load_problems(problems_dir / f"eval-{name}.jsonl"))
        results = read_jsonl(results_dir / f"eval-{name}.jsonl")
        for result, score in zip(results, reranker.score_candidates(problems, results), strict=True):
            result["score"] = score
        write_jsonl(scored_dir / f"eval-{name}.jsonl", results)
        summaries[name] = summarise(results, score=lambda r: r["score"])
    return summaries
