"""The evaluation maths against hand-computed tables and slow reference implementations."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from coderanker.metrics import (
    bootstrap_ci95,
    compare_on_pool,
    figure_fields,
    group_by_problem,
    pairwise_accuracy,
    pass_at_k,
    pool_hit_rate,
    program_key,
    ranked_outcomes,
    reranked_pass_at_1,
    roc_auc,
    summarise,
    top_k_hits,
    top_sample,
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


def program(completion: str, language: str = "py") -> str | None:
    return program_key({"completion": completion, "language": language})


def test_program_key_ignores_formatting_and_comments_but_not_code():
    body = "    if x:\n        return 1\n    return 2\n"
    assert program(body) == program("    if x:  # one\n\n        return (1)\n    return 2")
    assert program(body) != program("    if x:\n        return 2\n    return 1\n")
    broken = "    return (x +\n"  # does not parse: compared as text, whitespace collapsed
    assert program(broken) == program("    return  (x +")
    assert program("int f() {\n  return 1; }", "cpp") == program("int f() { return 1; }", "cpp")
    assert program("return 1", "cpp") != program("return 2", "cpp")
    assert program("x = '\0'\0") is not None  # a NUL byte: not Python, compared as text
    assert program_key({"program": "abc", "completion": "ignored"}) == "abc"
    assert program_key({"name": "p"}) is None


CONSENSUS = [
    # p1: the passing program is written twice (once reformatted), three failing ones once; the
    # reranker prefers a failing one
    {**result("p1", "failed", 0, score=0.9), "completion": "    return a\n"},
    {**result("p1", "passed", 1, score=0.1), "completion": "    return x + 1\n"},
    {**result("p1", "failed", 2, score=0.2), "completion": "    return b\n"},
    {**result("p1", "passed", 3, score=0.3), "completion": "    return (x  +  1)  # again\n"},
    {**result("p1", "failed", 4, score=0.0), "completion": "    return c\n"},
    # p2: a failing program written twice, the passing one once (the vote is wrong; the greedy
    # candidate's copy of the passing program is not a vote)
    {**result("p2", "failed", 0, score=0.1), "completion": "    return 0\n"},
    {**result("p2", "passed", 1, score=0.5), "completion": "    return 1\n"},
    {**result("p2", "failed", 2, score=0.2), "completion": "    return 0\n"},
    {**result("p2", "passed", -1, greedy=True), "completion": "    return 1\n"},
    {**result("p2", "passed", -1, greedy=True), "completion": "    return 1\n"},
    # p3: all different, ties go to the earliest sample (which passes)
    {**result("p3", "passed", 0, score=0.0), "completion": "    return 3\n"},
    {**result("p3", "failed", 1, score=1.0), "completion": "    return 4\n"},
]  # fmt: skip


def test_consensus_picks_the_most_written_program():
    summary = summarise(CONSENSUS, score=lambda r: r["score"])
    assert summary["consensus_pass@1"] == pytest.approx(2 / 3)  # p1 right, p2 wrong, p3 right (tie)
    gains = [1 - 2 / 5, 0 - 1 / 3, 1 - 1 / 2]
    assert summary["consensus_gain"] == pytest.approx(sum(gains) / 3)
    low, high = summary["consensus_gain_ci95"]
    assert low <= summary["consensus_gain"] <= high
    # the reranker: p1 wrong (0.9), p2 right (0.5), p3 wrong (1.0)
    assert summary["reranked_pass@1"] == pytest.approx(1 / 3)
    assert summary["reranked_minus_consensus"] == pytest.approx((-1 + 1 - 1) / 3)
    assert summary["reranked_minus_consensus_ci95"] is not None
    cut = [figure_fields(r, "score") for r in CONSENSUS]
    assert not any("completion" in r for r in cut)
    assert summarise(cut, score=lambda r: r["score"]) == summary
    without_reranker = summarise(CONSENSUS)
    assert without_reranker["consensus_pass@1"] == summary["consensus_pass@1"]
    assert "reranked_minus_consensus" not in without_reranker


def test_consensus_needs_to_know_the_programs():
    summary = summarise(RESULTS, score=lambda r: r["score"])  # results without completions
    assert summary["consensus_pass@1"] is None and summary["consensus_gain_ci95"] is None
    assert "reranked_minus_consensus" not in summary


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


# --- figures added next to reranked_gain -------------------------------------------------


def row(name, status, sample, score=0.0, greedy=False, reference=False, visible=None, truncated=None):
    """A result; `visible_status` and `truncated` only when given (absent keys are the point)."""
    r = {"name": name, "status": status, "sample": sample, "greedy": greedy, "reference": reference, "score": score}
    if visible is not None:
        r["visible_status"] = visible
    if truncated is not None:
        r["truncated"] = truncated
    return r


TABLE = [
    # q1: 2 of 4 pass; top pick s0 fails, top two (s0, s2) hold a pass; visible tests prune s0 and s3
    row("q1", "failed", 0, 0.9, visible="failed", truncated=True),
    row("q1", "passed", 1, 0.5, visible="passed", truncated=False),
    row("q1", "passed", 2, 0.7, visible="passed", truncated=False),
    row("q1", "failed", 3, 0.1, visible="failed", truncated=False),
    row("q1", "passed", -1, greedy=True),
    row("q1", "passed", -2, 5.0, reference=True, visible="failed", truncated=True),  # not a sample
    # q2: 1 of 3 pass, all scores tied: the earlier samples s0, s1 (both failing) are the top two; no visible tests
    row("q2", "failed", 0, 0.8), row("q2", "failed", 1, 0.8), row("q2", "passed", 2, 0.8),
    row("q2", "passed", -1, greedy=True),
    # q3: 2 of 4 pass; no sample passes its visible tests, so pruning falls back to all four; no greedy
    row("q3", "passed", 0, 0.3, visible="failed", truncated=False),
    row("q3", "failed", 1, 0.6, visible="failed", truncated=True),
    row("q3", "failed", 2, 0.2, visible="compile_error", truncated=False),
    row("q3", "passed", 3, 0.1, visible="timeout", truncated=False),
    row("q3", "sandbox_error", 4, 1.0, visible="passed", truncated=True),  # dropped
    # q4: 1 of 2 pass, the reranker picks it; greedy fails; no visible tests
    row("q4", "failed", 0, 0.1), row("q4", "passed", 1, 0.9), row("q4", "failed", -1, greedy=True),
    # q5: no choice, all pass; greedy passes
    row("q5", "passed", 0, visible="passed", truncated=False),
    row("q5", "passed", 1, visible="passed", truncated=False),
    row("q5", "passed", -1, greedy=True),
    # q6: no choice, all fail; the visible tests keep only s0
    row("q6", "failed", 0, visible="passed"), row("q6", "failed", 1, visible="failed"),
]  # fmt: skip


def by_score(r):
    return r["score"]


def oracle_score(r):
    return float(r["status"] == "passed")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("problems", 6),
        ("problems_with_choice", 4),  # q1..q4
        ("pass@1", (1 / 2 + 1 / 3 + 1 / 2 + 1 / 2 + 1 + 0) / 6),  # 17/36
        ("oracle_pass@n", 5 / 6),
        ("reranked_pass@1", 2 / 6),  # q4, q5
        ("gap_closed", (2 / 6 - 17 / 36) / (5 / 6 - 17 / 36)),  # -5/13: worse than random
        # top pick minus greedy: q1 0-1, q2 0-1, q4 1-0, q5 1-1 (q3, q6 have no greedy)
        ("reranked_minus_greedy", (-1 - 1 + 1 + 0) / 4),
        ("top1_hit_rate", 1 / 4),  # q4 only
        ("top1_chance", (1 / 2 + 1 / 3 + 1 / 2 + 1 / 2) / 4),  # 11/24
        ("top2_hit_rate", 3 / 4),  # q1 (s0, s2), q3 (s1, s0), q4; not q2 (s0, s1)
        ("top2_chance", (5 / 6 + 2 / 3 + 5 / 6 + 1) / 4),  # pass@2 of (4,2), (3,1), (4,2), (2,1)
        ("pruned_pass@1", (1 + 1 / 3 + 1 / 2 + 1 / 2 + 1 + 0) / 6),  # q1 {s1, s2}, q2-q4 fallback, q6 {s0}
        ("pruned_reranked_pass@1", 3 / 6),  # q1 s2, q4 s1, q5 s0
        ("pruned_fraction", 7 / 12),  # 12 samples with visible_status: q1 2, q3 4, q6 1 not passed
        ("truncation_rate", 2 / 10),  # 10 samples carry the key: q1 s0, q3 s1
    ],
)
def test_new_figures_hand_table(key, expected):
    assert summarise(TABLE, score=by_score)[key] == pytest.approx(expected)


def test_gap_closed_on_original_table():
    # reranked 1/3, random 1/4, oracle 2/3: closes (1/12) / (5/12) of the gap
    assert summarise(RESULTS, score=by_score)["gap_closed"] == pytest.approx(1 / 5)
    assert summarise(RESULTS, score=oracle_score)["gap_closed"] == pytest.approx(1.0)


def test_gap_closed_none_without_headroom():
    rows = [row("a", "passed", 0), row("a", "passed", 1), row("b", "failed", 0), row("b", "failed", 1)]
    assert summarise(rows, score=by_score)["gap_closed"] is None


def test_figures_of_results_cut_to_figure_fields_equal_those_of_the_full_results():
    """What streaming evaluation keeps per candidate: everything else (programs, outputs) goes."""
    full = [{**r, "completion": f"return {i}", "detail": "out" * i, "language": "py"} for i, r in enumerate(TABLE)]
    cut = [figure_fields(r, "score") for r in full]
    assert not any({"completion", "detail", "sample"} & r.keys() for r in cut)
    assert summarise(cut, score=by_score) == summarise(full, score=by_score)
    assert summarise(cut) == summarise(full)


def test_figures_without_a_score():
    summary = summarise(TABLE)
    assert summary["pruned_pass@1"] == pytest.approx(5 / 9)
    assert summary["pruned_fraction"] == pytest.approx(7 / 12)
    assert summary["truncation_rate"] == pytest.approx(1 / 5)
    assert not {"gap_closed", "reranked_gain_ci95", "pruned_reranked_pass@1", "top1_hit_rate"} & summary.keys()


def test_pruning_is_a_no_op_without_visible_tests():
    summary = summarise(RESULTS, score=by_score)
    assert summary["pruned_pass@1"] == pytest.approx(summary["pass@1"])
    assert summary["pruned_reranked_pass@1"] == pytest.approx(summary["reranked_pass@1"])
    assert summary["pruned_fraction"] is None
    assert summary["truncation_rate"] is None


def test_pruning_falls_back_when_no_sample_passes_visible_tests():
    rows = [row("p", "passed", 0, 0.1, visible="failed"), row("p", "failed", 1, 0.9, visible="timeout"),
            row("p", "failed", 2, 0.5, visible="failed")]  # fmt: skip
    summary = summarise(rows, score=by_score)
    assert summary["pruned_pass@1"] == pytest.approx(1 / 3)
    assert summary["pruned_reranked_pass@1"] == 0.0  # s1 is the top pick among all three
    assert summary["pruned_fraction"] == 1.0


def test_pruning_lifts_a_weak_reranker():
    # the reranker prefers the failing sample, but it fails the visible tests and is pruned
    rows = [row("p", "failed", 0, 0.9, visible="failed"), row("p", "passed", 1, 0.1, visible="passed")]
    summary = summarise(rows, score=by_score)
    assert (summary["reranked_pass@1"], summary["pruned_reranked_pass@1"]) == (0.0, 1.0)
    assert summary["pruned_pass@1"] == 1.0


def slow_top_k_chance(n, c, k):
    """Fraction of all orderings of n samples (c passing) with a passing one among the first k."""
    orders = list(itertools.permutations([True] * c + [False] * (n - c)))
    return sum(any(order[:k]) for order in orders) / len(orders)


def test_top2_chance_matches_enumerated_orderings():
    for n in range(2, 7):
        for c in range(n + 1):
            assert pass_at_k(n, c, 2) == pytest.approx(slow_top_k_chance(n, c, 2))
            assert pass_at_k(n, c, 1) == pytest.approx(slow_top_k_chance(n, c, 1))


def test_hit_rates_average_to_chance_over_all_score_orders():
    statuses = ["failed", "passed", "failed", "passed", "failed"]
    hits = {1: [], 2: []}
    for scores in itertools.permutations(range(len(statuses))):
        groups = group_by_problem([row("p", s, i, float(scores[i])) for i, s in enumerate(statuses)])
        figures = top_k_hits(groups, by_score)
        for k in hits:
            hits[k].append(figures[f"top{k}_hit_rate"])
    assert sum(hits[1]) / len(hits[1]) == pytest.approx(figures["top1_chance"]) == pytest.approx(2 / 5)
    assert sum(hits[2]) / len(hits[2]) == pytest.approx(figures["top2_chance"]) == pytest.approx(7 / 10)


def test_ranked_outcomes_break_ties_like_top_sample():
    rng = random.Random(1)
    for _ in range(100):
        samples = [{"score": rng.choice([0.0, 0.5, 1.0]), "status": rng.choice(["passed", "failed"]), "i": i}
                   for i in range(rng.randint(1, 6))]
        order = sorted(range(len(samples)), key=lambda i: (-samples[i]["score"], i))
        assert ranked_outcomes(samples, by_score) == [samples[i]["status"] == "passed" for i in order]
        assert samples[order[0]] is top_sample(samples, by_score)


def random_problem(rng: random.Random, n: int) -> list[dict]:
    """One problem's samples with tied scores, visible-test verdicts and a greedy answer."""
    samples = [row("p", rng.choice(["passed", "failed", "failed"]), i, score=rng.choice([0.0, 0.5, 1.0, 2.0]),
                   visible=rng.choice(["passed", "failed", None])) for i in range(n)]
    for r in samples:
        r["completion"] = f"return {rng.randint(0, 2)}"  # a few programs repeat: the consensus vote
    return samples + [row("p", rng.choice(["passed", "failed"]), -1, greedy=True)]


POOL_FIGURES = ("reranked_pass@1", "reranked_gain", "oracle_pass@n", "pruned_pass@1", "pruned_reranked_pass@1",
                "reranked_minus_greedy", "consensus_pass@1")


def test_pool_figures_are_their_mean_over_every_pool():
    """With more samples than the pool, each figure is the mean of that figure over every pool
    of that size (the samples keep their order, so ties break alike); exact but the
    consensus vote, which is estimated from drawn pools."""
    rng = random.Random(3)
    for n, pool in [(5, 2), (6, 3), (7, 4), (6, 5), (4, 1)]:
        for _ in range(8):
            results = random_problem(rng, n)
            samples, greedy = results[:-1], results[-1:]
            pools = [summarise([*map(samples.__getitem__, chosen), *greedy], score=by_score)
                     for chosen in itertools.combinations(range(n), pool)]
            figures = summarise(results, score=by_score, pool=pool)
            assert figures["pool_size"] == pool and figures["samples_per_problem"] == n
            for key in POOL_FIGURES:
                expected = float(np.mean([p[key] for p in pools]))
                if key == "reranked_gain":  # a pool's random pick is its own pass rate, whose mean is c/n
                    expected = float(np.mean([p["reranked_pass@1"] for p in pools])) - figures["pass@1"]
                tolerance = 0.1 if key == "consensus_pass@1" else 1e-9
                assert figures[key] == pytest.approx(expected, abs=tolerance), (n, pool, key)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_pool_hit_rate_is_the_mean_over_every_pool(k):
    rng = random.Random(k)
    for _ in range(60):
        ranked = [rng.random() < 0.4 for _ in range(rng.randint(1, 8))]
        pool = rng.randint(1, len(ranked))
        hits = [any(ranked[i] for i in chosen[:k]) for chosen in itertools.combinations(range(len(ranked)), pool)]
        assert pool_hit_rate(ranked, pool, k) == pytest.approx(sum(hits) / len(hits))
        assert pool_hit_rate(ranked, 0, k) == float(any(ranked[:k])) == pool_hit_rate(ranked, len(ranked) + 3, k)


def test_a_pool_of_every_sample_changes_nothing():
    rng = random.Random(5)
    results = [r for name in "abcd" for r in random_problem(rng, 6) if (r.update(name=name) or True)]
    whole = summarise(results, score=by_score)
    assert summarise(results, score=by_score, pool=6) == {**whole, "pool_size": 6} == summarise(
        results, score=by_score, pool=60)
    assert whole["pool_size"] == 6


def test_top_hits_in_a_pool_are_their_mean_over_every_pool():
    rng = random.Random(7)
    results = random_problem(rng, 6)[:-1]
    while not 0 < sum(r["status"] == "passed" for r in results) < 6:
        results = random_problem(rng, 6)[:-1]
    for pool in (3, 2, 1):
        figures = top_k_hits(group_by_problem(results), by_score, pool=pool)
        for k in (1, 2):
            hits, chance = [], []
            for chosen in itertools.combinations(results, pool):
                top = sorted(range(pool), key=lambda i: (-chosen[i]["score"], i))[:k]
                hits.append(any(chosen[i]["status"] == "passed" for i in top))
                # a random order of the pool: its first k hold a pass with probability pass@min(k, pool)
                chance.append(pass_at_k(pool, sum(r["status"] == "passed" for r in chosen), min(k, pool)))
            assert figures[f"top{k}_hit_rate"] == pytest.approx(sum(hits) / len(hits))
            assert figures[f"top{k}_chance"] == pytest.approx(sum(chance) / len(chance))


def test_within_problem_figures_none_without_choice():
    figures = summarise([row("a", "passed", 0), row("a", "passed", 1)], score=by_score)
    assert [figures[f"top{k}_{f}"] for k in (1, 2) for f in ("hit_rate", "chance")] == [None] * 4


def test_everything_undefined_is_none_not_nan():
    for rows in ([], [row("a", "passed", 0, greedy=True)], [row("a", "passed", 0), row("a", "failed", 1)]):
        summary = summarise(rows, score=by_score)
        for key in ("reranked_gain_ci95", "reranked_minus_greedy_ci95", "reranker_pairwise_acc_ci95"):
            assert summary[key] is None  # fewer than two problems
        assert not any(isinstance(v, float) and math.isnan(v) for v in summary.values())
    assert summarise([], score=by_score)["reranked_minus_greedy"] is None


# --- paired bootstrap over problems ---------------------------------------------------------


def random_results(rng, problems, samples=5):
    rows = []
    for p in range(problems):
        rate = rng.random()
        rows.append(row(f"p{p}", "passed" if rng.random() < rate else "failed", -1, greedy=True))
        rows += [row(f"p{p}", "passed" if rng.random() < rate else "failed", i, rng.random()) for i in range(samples)]
    return rows


def test_intervals_contain_their_point_estimates():
    for seed in range(5):
        summary = summarise(random_results(random.Random(seed), 40), score=by_score, seed=seed)
        for key in ("reranked_gain", "reranked_minus_greedy", "reranker_pairwise_acc"):
            low, high = summary[f"{key}_ci95"]
            assert isinstance(low, float) and isinstance(high, float)
            assert low <= summary[key] <= high and low < high


def choice_problems(statuses_of):
    """One problem per list of sample statuses ("P" passes, "F" fails)."""
    return [row(f"p{p}", "passed" if s == "P" else "failed", i)
            for p, statuses in enumerate(statuses_of) for i, s in enumerate(statuses)]  # fmt: skip


def test_always_right_reranker_interval_excludes_zero():
    # 30 problems with 1, 2 or 3 of 4 passing: gains 3/4, 1/2, 1/4, mean 1/2
    summary = summarise(choice_problems(["PFFF", "FPPF", "FPPP"] * 10), score=oracle_score)
    low, high = summary["reranked_gain_ci95"]
    assert summary["reranked_gain"] == pytest.approx(0.5)
    assert 0 < low < 0.5 < high < 1
    assert summary["reranker_pairwise_acc_ci95"] == [1.0, 1.0]


def test_constant_score_on_symmetric_data_interval_contains_zero():
    # a constant score takes sample 0: gain +1/2 on half the problems, -1/2 on the other half
    summary = summarise(choice_problems(["PFPF", "FPFP"] * 15), score=lambda r: 0.0)
    low, high = summary["reranked_gain_ci95"]
    assert summary["reranked_gain"] == pytest.approx(0.0)
    assert low < 0 < high


def test_bootstrap_is_deterministic_for_a_seed():
    rows = random_results(random.Random(3), 25)
    first, again = summarise(rows, by_score, seed=7), summarise(rows, by_score, seed=7)
    other = summarise(rows, by_score, seed=8)
    keys = ("reranked_gain_ci95", "reranked_minus_greedy_ci95", "reranker_pairwise_acc_ci95")
    assert [first[k] for k in keys] == [again[k] for k in keys]
    assert [first[k] for k in keys] != [other[k] for k in keys]


def test_bootstrap_width_matches_the_normal_approximation():
    values = np.random.default_rng(0).normal(0.2, 1.0, size=400)
    low, high = bootstrap_ci95(values)
    half = 1.96 * values.std() / math.sqrt(len(values))
    assert low == pytest.approx(values.mean() - half, abs=0.15 * half)
    assert high == pytest.approx(values.mean() + half, abs=0.15 * half)


def test_pooled_bootstrap_resamples_wins_over_pairs():
    # 20 problems with 1 pair, won; 20 with 9 pairs, all lost: pooled 20/200, per-problem mean 1/2
    wins, pairs = [1.0] * 20 + [0.0] * 20, [1] * 20 + [9] * 20
    low, high = bootstrap_ci95(wins, pairs)
    assert low < 0.1 < high < 0.2


def test_bootstrap_rejects_missing_or_empty_denominators():
    with pytest.raises(ValueError):
        bootstrap_ci95([1.0, 0.0], [1, 0])
    with pytest.raises(ValueError):
        bootstrap_ci95([1.0, 0.0], [1])


# --- two rerankers on the same pool ---------------------------------------------------------


def test_compare_on_pool_hand_table():
    # RESULTS: by score picks p1 right, p3 wrong; the oracle picks both right; p2 has no pass
    comparison = compare_on_pool(RESULTS, by_score, oracle_score)
    assert comparison["reranked_pass@1_a"] == pytest.approx(1 / 3)
    assert comparison["reranked_pass@1_b"] == pytest.approx(2 / 3)
    assert comparison["difference"] == pytest.approx(1 / 3)
    assert (comparison["problems"], comparison["problems_with_choice"]) == (3, 2)
    low, high = comparison["difference_ci95"]
    assert 0.0 <= low <= 1 / 3 <= high <= 1.0


def test_compare_on_pool_is_antisymmetric_and_zero_against_itself():
    rows = random_results(random.Random(5), 30)
    ab, ba = compare_on_pool(rows, by_score, oracle_score), compare_on_pool(rows, oracle_score, by_score)
    assert ab["difference"] == pytest.approx(-ba["difference"]) and ab["difference"] > 0
    assert ab["difference_ci95"] == pytest.approx([-x for x in reversed(ba["difference_ci95"])])
    same = compare_on_pool(rows, by_score, by_score)
    assert same["difference"] == 0.0 and same["difference_ci95"] == [0.0, 0.0]
    assert ab["reranked_pass@1_a"] == pytest.approx(summarise(rows, by_score)["reranked_pass@1"])
