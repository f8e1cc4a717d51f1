"""benchmarks/pool_draws: per-problem pick outcomes and the figures pooled over draws, on small
hand-computed pools (sampling, execution and scoring are the stages' own code, tested there),
and the seeds of the draws."""

from __future__ import annotations

import pytest

from benchmarks.pool_draws.run import DRAW_STRIDE, draw_config, parse, per_problem, scored_pool, summary
from coderanker.generation import SamplingConfig


def record(name: str, status: str, score: float, previous: float, greedy: bool = False) -> dict:
    return {"name": name, "status": status, "greedy": greedy, "score": score, "compare": previous}


def draw_one(size: int = 0) -> dict[str, dict]:
    # p1: 1 of 4 passes; this round's reranker picks it, the previous one a failing sample;
    # greedy fails. p2: none passes, greedy passes. p3: all pass, no greedy candidate.
    pool = [record("p1", "failed", 0.1, 0.9), record("p1", "passed", 0.8, 0.2), record("p1", "failed", 0.3, 0.1),
            record("p1", "failed", 0.2, 0.3), record("p1", "failed", 0.0, 0.0, greedy=True),
            record("p2", "failed", 0.5, 0.5), record("p2", "failed", 0.4, 0.4), record("p2", "passed", 0, 0, True),
            record("p3", "passed", 0.1, 0.2), record("p3", "passed", 0.2, 0.1)]
    return per_problem(pool, ["score", "compare"], size)


def draw_two() -> dict[str, dict]:
    # the same problems drawn again: p1 2 of 4 pass, both rerankers pick a failing sample; p2 as before
    pool = [record("p1", "failed", 0.9, 0.9), record("p1", "passed", 0.1, 0.1), record("p1", "passed", 0.2, 0.2),
            record("p1", "failed", 0.3, 0.3), record("p1", "failed", 0.0, 0.0, greedy=True),
            record("p2", "failed", 0.5, 0.5), record("p2", "passed", 0, 0, True),
            record("p3", "passed", 0.3, 0.1)]
    return per_problem(pool, ["score", "compare"])


def test_per_problem_outcomes():
    rows = draw_one()
    assert list(rows) == ["p1", "p2", "p3"]
    assert rows["p1"] == {"random": 0.25, "oracle": 1.0, "greedy": 0.0, "choice": True, "score": 1.0, "compare": 0.0}
    assert rows["p2"] == {"random": 0.0, "oracle": 0.0, "greedy": 1.0, "choice": False, "score": 0.0, "compare": 0.0}
    assert rows["p3"]["greedy"] is None and rows["p3"]["score"] == 1.0 and not rows["p3"]["choice"]


def test_per_problem_outcomes_in_pools_of_two():
    # p1's 4 samples ranked by score: pass, fail, fail, fail; a pool of 2 of them (6 pools)
    # holds the passing one in 3, and its pick passes there; the previous reranker ranks the
    # passing one third: its pick passes only in the pool of it and the lowest-ranked (1 of 6).
    whole, pairs = draw_one(), draw_one(2)
    assert pairs["p1"] == {**whole["p1"], "oracle": 0.5, "score": 0.5, "compare": pytest.approx(1 / 6)}
    assert pairs["p2"] == whole["p2"] and pairs["p3"] == whole["p3"]


def test_one_draw_hand_computed():
    figures = summary([draw_one()], "score", ["compare"])
    assert figures["pass@1"] == pytest.approx(1.25 / 3)
    assert figures["reranked_pass@1"] == pytest.approx(2 / 3)
    assert figures["reranked_gain"] == pytest.approx(0.75 / 3)
    assert figures["greedy_pass@1"] == pytest.approx(0.5)  # p1 fails, p2 passes; p3 has none
    assert figures["reranked_minus_greedy"] == pytest.approx(0.0)  # p1 +1, p2 -1
    assert figures["gap_closed"] == pytest.approx(1.0)  # the oracle is 2 / 3 too
    assert (figures["problems_with_choice"], figures["top1_hits"], figures["top1_chance"]) == (1, 1.0, 0.25)
    assert figures["minus_compare"] == pytest.approx(1 / 3)


def test_draws_pool_per_problem_then_over_problems():
    figures = summary([draw_one(), draw_two()], "score", ["compare"], seed=0)
    # p1: random (0.25 + 0.5) / 2, picks (1 + 0) / 2; p2: 0, 0; p3: 1, 1
    assert figures["pass@1"] == pytest.approx((0.375 + 0 + 1) / 3)
    assert figures["reranked_gain"] == pytest.approx((0.5 - 0.375) / 3)
    assert figures["minus_compare"] == pytest.approx(0.5 / 3)
    assert (figures["draws"], figures["problems_with_choice"], figures["top1_hits"]) == (2, 2, 1.0)
    assert figures["top1_chance"] == pytest.approx(0.75)
    low, high = figures["reranked_gain_ci95"]
    assert low <= figures["reranked_gain"] <= high and low >= 0  # only p1 differs, by +0.125
    assert "minus_compare" not in summary([draw_one()], "score")


class FieldScorer:
    """Scores candidates by their `score` field and counts what it was asked to score."""

    def __init__(self):
        self.scored = 0

    def score_candidates(self, problems, candidates):
        self.scored += len(candidates)
        return [float(c["score"]) for c in candidates]


class OneScorer:
    def __init__(self):
        self.scorer = FieldScorer()

    def get(self, directory):
        return self.scorer

    def release(self, directory):
        pass


def test_merged_draws_score_every_problem_with_a_choice_in_the_merge(tmp_path):
    from coderanker.jsonl import write_jsonl

    # p1 passes only in draw b, so only the merged pool gives it a choice; p2 never passes
    a = [{"name": "p1", "status": "failed", "greedy": False, "score": 0.9, "completion": "x"},
         {"name": "p1", "status": "failed", "greedy": False, "score": 0.1, "completion": "y"},
         {"name": "p2", "status": "failed", "greedy": False, "score": 0.5, "completion": "z"}]
    b = [{"name": "p1", "status": "passed", "greedy": False, "score": 0.95, "completion": "w"},
         {"name": "p1", "status": "failed", "greedy": False, "score": 0.2, "completion": "v"},
         {"name": "p2", "status": "failed", "greedy": False, "score": 0.7, "completion": "u"}]
    write_jsonl(tmp_path / "a.jsonl", a)
    write_jsonl(tmp_path / "b.jsonl", b)
    scorers = OneScorer()
    merged = scored_pool([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], {}, scorers, {"score": tmp_path})
    assert [r["score"] for r in merged] == [0.9, 0.1, 0.0, 0.95, 0.2, 0.0] and scorers.scorer.scored == 4
    rows = per_problem(merged, ["score"], 2)  # p1: ranked pass, fail, fail, fail; 3 of 6 pairs hold the pass
    assert rows["p1"]["choice"] and rows["p1"]["score"] == pytest.approx(0.5) and rows["p1"]["random"] == 0.25
    alone = per_problem(scored_pool([tmp_path / "a.jsonl"], {}, scorers, {"score": tmp_path}), ["score"])
    assert not alone["p1"]["choice"] and alone["p1"]["score"] == 0.0


def test_draws_reseed_the_stage_s_sampling():
    config = SamplingConfig(samples_per_problem=4, eval_samples_per_problem=20, seed=7)
    first, second = draw_config(config, 1), draw_config(config, 2)
    assert (first.samples_per_problem, first.include_references, first.greedy) == (20, False, True)
    assert (first.seed, second.seed) == (7 + DRAW_STRIDE, 7 + 2 * DRAW_STRIDE)
    with pytest.raises(SystemExit):
        parse(["--run", "x", "--draws", "-1"])
    with pytest.raises(SystemExit):
        parse(["--run", "x", "--draws", "4", "--combine", "2"])  # 5 pools do not merge in twos
    assert parse(["--run", "x", "--draws", "5", "--combine", "2"]).combine == 2
