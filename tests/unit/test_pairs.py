"""Pair building and hard-negative selection against hand-worked cases."""

from __future__ import annotations

import random

from coderanker.mining import dedupe_pairs, mine_round, score_stats
from coderanker.pairs import PairConfig, build_pairs, labelled, pair_hard_negatives, select_hard_negatives


def r(name, status, completion, score=0.0, sample=0):
    return {"name": name, "status": status, "completion": completion, "response": f"```{completion}```",
            "score": score, "sample": sample}


RESULTS = [
    r("a", "passed", "good1", 0.2), r("a", "passed", "good1 ", 0.9),  # duplicate program (whitespace)
    r("a", "failed", "bad1", 0.8), r("a", "compile_error", "bad2", 0.1), r("a", "timeout", "bad3", 0.5),
    r("a", "sandbox_error", "infra", 5.0),
    r("b", "failed", "x", 0.7), r("b", "failed", "y", 0.3),  # never solved
    r("c", "passed", "ok", 0.4), r("c", "failed", "no", 0.6),
]  # fmt: skip


def test_labelled_drops_sandbox_errors_and_duplicates():
    groups = labelled(RESULTS)
    assert [x["completion"] for x in groups["a"]] == ["good1", "bad1", "bad2", "bad3"]
    assert all(x["status"] != "sandbox_error" for g in groups.values() for x in g)


def test_pairs_are_passing_vs_failing_of_the_same_problem():
    pairs = build_pairs(RESULTS, PairConfig(max_pairs_per_problem=10))
    assert {(g["completion"], b["completion"]) for g, b in pairs} == {
        ("good1", "bad1"), ("good1", "bad2"), ("good1", "bad3"), ("ok", "no")}
    assert all(g["name"] == b["name"] and g["status"] == "passed" and b["status"] != "passed" for g, b in pairs)


def test_pairs_capped_per_problem_and_seeded():
    config = PairConfig(max_pairs_per_problem=2, seed=3)
    first = build_pairs(RESULTS, config)
    assert sum(g["name"] == "a" for g, _ in first) == 2
    assert first == build_pairs(RESULTS, config)


def test_hard_negatives_top_k_per_problem():
    hard = select_hard_negatives(RESULTS, PairConfig(hard_top_k=1))
    assert [(h["name"], h["completion"]) for h in hard] == [("a", "bad1"), ("b", "x"), ("c", "no")]
    assert all(h["status"] != "passed" for h in hard)


def test_hard_negatives_above_best_passing():
    hard = select_hard_negatives(RESULTS, PairConfig(hard_top_k=0, hard_above_best_passing=True))
    # a: best passing 0.2 (the kept duplicate) -> bad1 0.8, bad3 0.5 qualify; b: none pass, all kept; c: 0.6 >= 0.4
    assert sorted((h["name"], h["completion"]) for h in hard) == [
        ("a", "bad1"), ("a", "bad3"), ("b", "x"), ("b", "y"), ("c", "no")]


def test_hard_negatives_quantile_floor():
    hard = select_hard_negatives(RESULTS, PairConfig(hard_top_k=0, hard_min_quantile=0.75))
    scores = sorted(x["score"] for g in labelled(RESULTS).values() for x in g)
    floor = scores[int(0.75 * (len(scores) - 1))]  # numpy's linear rule lands between; check the survivors
    assert all(h["score"] >= floor for h in hard) and {h["completion"] for h in hard} == {"bad1", "x"}


def test_hard_negatives_of_unsolved_problems_stay_unpaired():
    hard = select_hard_negatives(RESULTS, PairConfig(hard_top_k=1))
    pairs = pair_hard_negatives(hard, {"a": [RESULTS[0]], "c": [RESULTS[8]]})
    assert [(g["name"], b["completion"]) for g, b in pairs] == [("a", "bad1"), ("c", "no")]


class ConstantScorer:
    def __init__(self, rng):
        self.rng = rng

    def score_candidates(self, problems, candidates):
        return [self.rng.random() for _ in candidates]


def test_mine_round_accumulates_and_uses_earlier_positives():
    previous = [{"name": "b", "round": "r0", "kind": "pair", "chosen": "```sol```", "rejected": "```z```",
                 "chosen_completion": "sol", "rejected_completion": "z", "rejected_status": "failed"}]
    config = PairConfig(max_pairs_per_problem=10, hard_top_k=1)
    pairs, report, scored = mine_round(RESULTS, previous, {}, "r1", config, ConstantScorer(random.Random(0)))
    assert pairs[0] == previous[0]
    assert report.new_pairs == 4 and report.hard_negatives == 3
    # b's hard negative pairs with r0's passing program for b
    assert any(p["name"] == "b" and p["kind"] == "hard_negative" and p["chosen_completion"] == "sol" for p in pairs)
    assert all(p["rejected_status"] != "passed" for p in pairs)
    assert report.total_pairs == len(pairs) == len(dedupe_pairs(pairs + pairs))
    assert set(score_stats(scored)) == {"passing", "failing"}


def test_mine_round_without_scorer_mines_no_hard_negatives():
    pairs, report, _ = mine_round(RESULTS, [], {}, "r0", PairConfig(max_pairs_per_problem=10))
    assert report.hard_negatives == 0 and {p["kind"] for p in pairs} == {"pair"}


def test_a_pair_also_mined_as_hard_negative_later_is_kept_as_that_round_s_hard_negative():
    regular = {"name": "a", "kind": "pair", "chosen_completion": "g", "rejected_completion": "b", "round": "r0"}
    hard = {**regular, "kind": "hard_negative", "round": "r1", "rejected_score": 2.0}
    (kept,) = dedupe_pairs([regular, hard])
    assert kept["kind"] == "hard_negative" and kept["rejected_score"] == 2.0 and kept["round"] == "r1"


def test_training_pairs_under_a_cap_put_hard_negatives_then_new_pairs_first():
    from coderanker.training.reward import RerankerTrainConfig, select_training_pairs

    pairs = ([{"name": f"p{i}", "round": "r0", "kind": "pair", "i": i} for i in range(5)]
             + [{"name": f"p{i}", "round": "r1", "kind": "pair", "i": i} for i in range(3)]
             + [{"name": f"p{i}", "round": "r1", "kind": "hard_negative", "i": i} for i in range(2)])
    assert select_training_pairs(pairs, "r1", RerankerTrainConfig()) == pairs
    chosen = select_training_pairs(pairs, "r1", RerankerTrainConfig(max_pairs=6))
    assert [p["kind"] for p in chosen[:2]] == ["hard_negative"] * 2
    assert [(p["round"], p["kind"]) for p in chosen[2:5]] == [("r1", "pair")] * 3
    assert len(chosen) == 6 and chosen[5]["round"] == "r0"


def test_replay_keeps_its_share_of_the_cap_for_earlier_rounds_and_either_side_fills_the_other_s_gap():
    from coderanker.training.reward import RerankerTrainConfig, select_training_pairs

    pairs = ([{"name": f"p{i}", "round": "r0", "kind": "pair", "i": i} for i in range(5)]
             + [{"name": f"p{i}", "round": "r1", "kind": "pair", "i": i} for i in range(3)]
             + [{"name": f"p{i}", "round": "r1", "kind": "hard_negative", "i": i} for i in range(4)])
    chosen = select_training_pairs(pairs, "r1", RerankerTrainConfig(max_pairs=6, replay=0.5))
    assert [(p["round"], p["kind"]) for p in chosen] == [("r1", "hard_negative")] * 3 + [("r0", "pair")] * 3
    # all the replay the cap allows, and this round's pairs where earlier ones run out
    assert [p["round"] for p in select_training_pairs(pairs, "r1", RerankerTrainConfig(max_pairs=6, replay=1.0))
            ] == ["r1"] + ["r0"] * 5
    few = pairs[:2] + pairs[5:]
    assert [p["round"] for p in select_training_pairs(few, "r1", RerankerTrainConfig(max_pairs=6, replay=0.5))
            ] == ["r1"] * 4 + ["r0"] * 2
    # and earlier pairs fill the gap this round's leave
    assert len(select_training_pairs(pairs[:5] + pairs[-1:], "r1", RerankerTrainConfig(max_pairs=4, replay=0.25))
               ) == 4


def test_only_rounds_that_continue_a_trained_reranker_take_the_continued_learning_rate():
    from coderanker.training.reward import RerankerTrainConfig, round_config

    config = RerankerTrainConfig(learning_rate=3e-4, continued_learning_rate=1e-4)
    assert round_config(config, continued=True).learning_rate == 1e-4
    assert round_config(config, continued=False).learning_rate == 3e-4
    assert round_config(RerankerTrainConfig(learning_rate=3e-4), continued=True).learning_rate == 3e-4


def test_training_pairs_under_a_cap_cover_problems_in_turn_model_samples_first():
    """A cap must not keep the first problems by name (the pairs file is in name order), and
    pairs whose chosen program is a model sample, what evaluation ranks, come first."""
    from coderanker.training.reward import RerankerTrainConfig, select_training_pairs

    pairs = [{"name": f"p{n}", "round": "r0", "kind": "pair", "chosen_reference": True, "i": i}
             for n in range(6) for i in range(4)]
    pairs += [{"name": "p5", "round": "r0", "kind": "pair", "chosen_reference": False, "i": 9}]
    chosen = select_training_pairs(pairs, "r0", RerankerTrainConfig(max_pairs=7))
    assert chosen[0]["chosen_reference"] is False
    assert sorted(p["name"] for p in chosen[1:]) == [f"p{n}" for n in range(6)]
    assert select_training_pairs(pairs, "r0", RerankerTrainConfig(max_pairs=7, seed=1)) != chosen
