"""Pure evaluation maths: pass@k, greedy and oracle pass rates, reranked top-1, rank metrics.

Inputs are execution results (dicts with `name`, `status`, `greedy`, optional `score`).
`sandbox_error` results are infrastructure failures: they are left out of every count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

import numpy as np

PASSED, SANDBOX_ERROR = "passed", "sandbox_error"


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from n samples with c correct (Chen et al. 2021):
    1 - C(n-c, k) / C(n, k), computed as a stable product."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def group_by_problem(results: Iterable[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for result in results:
        if result["status"] != SANDBOX_ERROR:
            groups[result["name"]].append(result)
    return dict(groups)


def sampled(group: list[dict]) -> list[dict]:
    return [r for r in group if not r.get("greedy") and not r.get("reference")]


def mean_pass_at_k(groups: dict[str, list[dict]], k: int) -> float | None:
    """Mean over problems with at least k sampled candidates; None when there are none."""
    values = []
    for group in groups.values():
        samples = sampled(group)
        if len(samples) >= k:
            values.append(pass_at_k(len(samples), sum(r["status"] == PASSED for r in samples), k))
    return float(np.mean(values)) if values else None


def greedy_pass_at_1(groups: dict[str, list[dict]]) -> float | None:
    """Fraction of problems whose greedy candidate passes (problems without one are skipped)."""
    outcomes = [
        any(r["status"] == PASSED for r in greedy)
        for greedy in ([r for r in g if r.get("greedy")] for g in groups.values())
        if greedy
    ]
    return float(np.mean(outcomes)) if outcomes else None


def oracle_pass_at_n(groups: dict[str, list[dict]]) -> float | None:
    """Fraction of problems with at least one passing sampled candidate (pass@N)."""
    outcomes = [any(r["status"] == PASSED for r in sampled(g)) for g in groups.values() if sampled(g)]
    return float(np.mean(outcomes)) if outcomes else None


def top_sample(samples: list[dict], score: Callable[[dict], float]) -> dict:
    """The reranker's pick: the top-scored sample; ties go to the earliest sample, so a
    constant score reduces to "take sample 0"."""
    return samples[max(range(len(samples)), key=lambda i: (score(samples[i]), -i))]


def reranked_pass_at_1(groups: dict[str, list[dict]], score: Callable[[dict], float]) -> float | None:
    """Fraction of problems whose top-scored sampled candidate passes (see `top_sample`)."""
    outcomes = [top_sample(samples, score)["status"] == PASSED for samples in map(sampled, groups.values()) if samples]
    return float(np.mean(outcomes)) if outcomes else None


def roc_auc(scores: list[float], labels: list[bool]) -> float | None:
    """Probability that a random positive outscores a random negative (ties count half)."""
    scores_arr, labels_arr = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    pos, neg = scores_arr[labels_arr], scores_arr[~labels_arr]
    if len(pos) == 0 or len(neg) == 0:
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    values = np.concatenate([pos, neg])[order]
    # average ranks over ties
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def pairwise_accuracy(groups: dict[str, list[dict]], score: Callable[[dict], float]) -> float | None:
    """Over all (passing, failing) pairs of the same problem: the fraction where the passing
    one scores higher (ties count half)."""
    wins, total = 0.0, 0
    for group in groups.values():
        good = [score(r) for r in sampled(group) if r["status"] == PASSED]
        bad = [score(r) for r in sampled(group) if r["status"] != PASSED]
        for g in good:
            for b in bad:
                wins += 1.0 if g > b else 0.5 if g == b else 0.0
                total += 1
    return wins / total if total else None


def reranked_gain(groups: dict[str, list[dict]], score: Callable[[dict], float]) -> dict:
    """How much the reranker beats a random pick, with its noise.

    Per problem, d = [top-scored sample passes] - (fraction of samples that pass); the mean
    of d is reranked pass@1 minus pass@1. Its standard error over problems (a paired
    comparison on the same candidates) is the noise. Only problems with both passing and
    failing samples can give d != 0; their number is `problems_with_choice`."""
    diffs, choice = [], 0
    for group in groups.values():
        samples = sampled(group)
        if not samples:
            continue
        passed = [r["status"] == PASSED for r in samples]
        diffs.append(float(top_sample(samples, score)["status"] == PASSED) - sum(passed) / len(passed))
        choice += 0 < sum(passed) < len(passed)
    if not diffs:
        return {"reranked_gain": None, "reranked_gain_se": None, "problems_with_choice": 0}
    se = float(np.std(diffs, ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else None
    return {"reranked_gain": float(np.mean(diffs)), "reranked_gain_se": se, "problems_with_choice": choice}


def summarise(results: Iterable[dict], score: Callable[[dict], float] | None = None) -> dict:
    """The `eval` block of metrics/<round>.json for one problem set."""
    groups = group_by_problem(results)
    counts = [len(sampled(g)) for g in groups.values()]
    summary = {
        "problems": len(groups),
        "samples_per_problem": int(max(counts)) if counts else 0,
        "pass@1": mean_pass_at_k(groups, 1),
        "greedy_pass@1": greedy_pass_at_1(groups),
        "oracle_pass@n": oracle_pass_at_n(groups),
    }
    if score is not None:
        flat = [r for g in groups.values() for r in sampled(g)]
        summary["reranked_pass@1"] = reranked_pass_at_1(groups, score)
        summary["reranker_auc"] = roc_auc([score(r) for r in flat], [r["status"] == PASSED for r in flat])
        summary["reranker_pairwise_acc"] = pairwise_accuracy(groups, score)
        summary.update(reranked_gain(groups, score))
    return summary
