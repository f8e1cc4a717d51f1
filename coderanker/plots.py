"""Figures logged to MLflow: score distributions and pass@1 across rounds."""

from __future__ import annotations


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def score_distributions(results: list[dict], title: str):
    """Histogram of reranker scores, passing vs failing candidates."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    passing = [r["score"] for r in results if r["status"] == "passed"]
    failing = [r["score"] for r in results if r["status"] not in ("passed", "sandbox_error")]
    bins = 30
    if failing:
        axis.hist(failing, bins=bins, alpha=0.6, label=f"failing ({len(failing)})", color="tab:red")
    if passing:
        axis.hist(passing, bins=bins, alpha=0.6, label=f"passing ({len(passing)})", color="tab:green")
    axis.set_xlabel("reranker score")
    axis.set_ylabel("candidates")
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    return figure


def pass_at_1_by_round(rounds: list[tuple[str, dict]], title: str):
    """Random, greedy, reranked and oracle pass@1 per round (rounds: [(id, eval block)])."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    names = [name for name, _ in rounds]
    for key, style in (("pass@1", "o-"), ("greedy_pass@1", "s--"), ("reranked_pass@1", "^-"),
                       ("oracle_pass@n", "v:")):
        values = [block.get(key) for _, block in rounds]
        axis.plot(names, [v if v is not None else float("nan") for v in values], style, label=key)
    axis.set_ylim(0, 1)
    axis.set_xlabel("round")
    axis.set_ylabel("fraction solved")
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    return figure
