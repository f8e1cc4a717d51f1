"""The evaluation maths against hand-computed tables and slow reference implementations."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from coderanker.metrics import (
    group_by_problem,
    pairwise_accuracy,
    pass_at_k,
    reranked_pass_at_1,
    roc_auc,
    summarise,
)


def reference_pass_at_k(n: int, c: int, k: int) -> float:
    """The definition: 1 - C(n-c, k) / C(n, k)."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (1, 0, 1, 0.0),
        (1, 1, 1, 1.0),
        (5, 2, 1, 0.4),  # c/n
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (4, 2, 2, 5 / 6),  # 1 - C(2,2)/C(4,2) = 1 - 1/6
        (10, 0, 5, 0.0),
        (10, 6, 5, 1.0),  # fewer than k failures: some pass is certain
        (5, 1, 3, 0.6),  # 1 - C(4,3)/C(5,3) = 1 - 4/10
    ],
)
def test_pass_at_k_hand_table(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_matches_definition():
    for n in range(1, 16):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(reference_pass_at_k(n, c, k), abs=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 4, 1), (3, -1, 1), (3, 1, 0)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def result(name, status, sample=0, greedy=False, score=0.0):
    return {"name": name, "status": status, "sample": sample, "greedy": greedy, "score": score}


RESULTS = [
    # p1: 1 of 4 pass; the reranker likes the passing one; greedy fails
    result("p1", "passed", 0, score=0.9), result("p1", "failed", 1, score=0.1),
    result("p1", "timeout", 2, score=0.2), result("p1", "compile_error", 3, score=0.3),
    result("p1", "failed", -1, greedy=True),
    # p2: none pass; greedy fails
    result("p2", "failed", 0), result("p2", "failed", 1), result("p2", "failed", 2),
    result("p2", "memory_exceeded", 3), result("p2", "failed", -1, greedy=True),
    # p3: 2 of 4 pass, the reranker prefers a failing one; greedy passes
    result("p3", "failed", 0, score=0.8), result("p3", "passed", 1, score=0.5),
    result("p3", "passed", 2, score=0.4), result("p3", "failed", 3, score=0.1),
    result("p3", "passed", -1, greedy=True),
    # an infrastructure failure is not a sample
    result("p3", "sandbox_error", 4, score=1.0),
]  # fmt: skip


def test_summary_hand_computed():
    summary = summarise(RESULTS, score=lambda r: r["score"])
    assert summary["problems"] == 3
    assert summary["samples_per_problem"] == 4
    assert summary["pass@1"] == pytest.approx((1 / 4 + 0 + 2 / 4) / 3)
    assert summary["greedy_pass@1"] == pytest.approx(1 / 3)
    assert summary["oracle_pass@n"] == pytest.approx(2 / 3)
    assert summary["reranked_pass@1"] == pytest.approx(1 / 3)  # p1 right, p2 impossible, p3 wrong
    # pairs: p1 3 of 3 won; p3 (0.5 vs 0.8 lose, 0.5 vs 0.1 win, 0.4 vs 0.8 lose, 0.4 vs 0.1 win)
    assert summary["reranker_pairwise_acc"] == pytest.approx((3 + 2) / (3 + 4))
    # gain per problem: p1 1 - 1/4, p2 0 - 0, p3 0 - 2/4; sample std over the three
    diffs = [0.75, 0.0, -0.5]
    assert summary["reranked_gain"] == pytest.approx(summary["reranked_pass@1"] - summary["pass@1"])
    assert summary["reranked_gain"] == pytest.approx(sum(diffs) / 3)
    mean = sum(diffs) / 3
    std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    assert summary["reranked_gain_se"] == pytest.approx(std / math.sqrt(3))
    assert summary["problems_with_choice"] == 2


def test_sandbox_errors_are_not_counted():
    groups = group_by_problem(RESULTS)
    assert all(r["status"] != "sandbox_error" for g in groups.values() for r in g)


def test_reranked_constant_score_takes_first_sample():
    groups = group_by_problem(RESULTS)
    assert reranked_pass_at_1(groups, lambda r: 0.0) == pytest.approx(1 / 3)  # p1's sample 0 passes


def test_oracle_reranker_reaches_pass_at_n():
    groups = group_by_problem(RESULTS)
    oracle = reranked_pass_at_1(groups, lambda r: float(r["status"] == "passed"))
    assert oracle == pytest.approx(summarise(RESULTS)["oracle_pass@n"])


def slow_auc(scores, labels):
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_matches_brute_force_with_ties():
    rng = random.Random(0)
    for _ in range(50):
        scores = [rng.choice([0.0, 0.25, 0.5, 1.0]) + rng.random() * rng.choice([0, 1]) for _ in range(30)]
        labels = [rng.random() < 0.4 for _ in range(30)]
        if any(labels) and not all(labels):
            assert roc_auc(scores, labels) == pytest.approx(slow_auc(scores, labels))


def test_auc_undefined_with_one_class():
    assert roc_auc([0.1, 0.2], [True, True]) is None


def test_pairwise_accuracy_none_without_pairs():
    groups = group_by_problem([result("p", "failed", 0), result("p", "failed", 1)])
    assert pairwise_accuracy(groups, lambda r: 0.0) is None
