"""Prefect flow `evaluate`: score executed candidates with a given reranker (a directory or
an MLflow URI such as models:/coderanker-reranker@champion) and report the figures."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact


@task
def score_and_summarise(reranker: str, problems: str, results: str, repo: str, pool: int | None = None) -> dict:
    import os

    from coderanker.jsonl import read_jsonl
    from coderanker.metrics import summarise
    from coderanker.problems import by_name, load_problems
    from coderanker.reranker import Reranker
    from coderanker.tracking import tracking_uri

    os.environ.setdefault("MLFLOW_TRACKING_URI", tracking_uri(repo))
    root = Path(repo)
    if pool is None:
        pool = repo_pool_size(root)
    scorer = Reranker.load(reranker)
    index = by_name(load_problems(root / problems))
    rows = read_jsonl(root / results)
    for row, score in zip(rows, scorer.score_candidates(index, rows), strict=True):
        row["score"] = score
    return summarise(rows, score=lambda r: r["score"], pool=pool)


def repo_pool_size(root: Path) -> int:
    """`sample.eval_pool_size` of the repository's params.yaml (0 without one)."""
    from coderanker.config import load_params, section
    from coderanker.generation import SamplingConfig

    params = root / "params.yaml"
    return section(load_params(params), "sample", SamplingConfig).eval_pool_size if params.exists() else 0


def shown(value) -> str:
    """A metric for the table: floats rounded, intervals as [low, high], None as is."""
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    return str(value)


@flow(name="evaluate", log_prints=True)
def evaluate(reranker: str = "models:/coderanker-reranker@champion",
             problems: str = "data/problems/eval-starter.jsonl",
             results: str = "data/r0/results/eval-starter.jsonl", repo: str = ".", pool: int | None = None) -> dict:
    """Reranked pass@1 next to random, greedy and oracle pass@1 for one result file; the
    reranker picks from pools of `pool` of a problem's samples (0: all of them; default: the
    repository's `sample.eval_pool_size`, as the evaluate stage does)."""
    summary = score_and_summarise(reranker, problems, results, str(Path(repo).resolve()), pool)
    rows = "\n".join(f"| {k} | {shown(v)} |" for k, v in summary.items())
    create_markdown_artifact(markdown=f"## {reranker} on {results}\n\n| metric | value |\n|---|---|\n{rows}",
                             key="reranker-evaluation")
    print(json.dumps(summary, indent=2))
    return summary
