"""benchmarks/reranker_slice: the held-out slices (one, or every problem once across folds),
the pairs each selection trains on, and the held-out figures, on small hand-built inputs.
The training itself is the project's `train_reranker`, tested in tests/integration."""

from __future__ import annotations

import pytest

from benchmarks.reranker_slice.run import held_out_slices, measure, variant_pairs, with_choice
from coderanker.training.reward import RerankerTrainConfig


def test_folds_hold_every_problem_out_exactly_once():
    names = [f"p{i}" for i in range(10)]
    folds = held_out_slices(names, holdout=3, folds=4, seed=0)
    assert len(folds) == 4 and sorted(map(len, folds)) == [2, 2, 3, 3]
    assert set().union(*folds) == set(names) and sum(map(len, folds)) == len(names)
    assert held_out_slices(list(reversed(names)), 3, 4, 0) == folds  # seeded, order of input irrelevant
    one = held_out_slices(names, holdout=3, folds=0, seed=0)
    assert len(one) == 1 and len(one[0]) == 3
    assert held_out_slices(names, 3, 4, seed=1) != folds


def pair(name: str, reference: bool, index: int) -> dict:
    return {"name": name, "chosen": f"good {index}", "rejected": f"bad {index}", "chosen_reference": reference,
            "round": "r0", "kind": "pair"}


def test_selections_keep_the_pairs_they_name():
    mined = [pair("a", True, 0), pair("a", False, 1), pair("b", True, 2)]
    pooled = [{**p, "round": "pooled"} for p in (pair("a", True, 3), pair("b", False, 4), pair("c", False, 5))]
    config = RerankerTrainConfig(max_pairs=2)
    assert variant_pairs("file", mined, pooled, 2, config) == mined[:2]
    spread = variant_pairs("spread", mined, pooled, 2, config)
    assert spread[0] == mined[1] and len(spread) == 2  # the model sample's pair first
    samples = variant_pairs("samples", mined, pooled, 2, config)
    assert sorted(p["chosen"] for p in samples) == ["good 4", "good 5"]
    assert [p["chosen"] for p in variant_pairs("references", mined, pooled, 2, config)] == ["good 3"]
    with pytest.raises(SystemExit, match="unknown selection"):
        variant_pairs("everything", mined, pooled, 2, config)


def sized(name: str, round_id: str, kind: str, chosen: int, rejected: int) -> dict:
    return {"name": name, "round": round_id, "kind": kind, "chosen": "c" * chosen, "rejected": "r" * rejected,
            "chosen_completion": "c" * chosen, "rejected_completion": "r" * rejected}


def test_round_filters_drop_hard_negatives_or_balance_lengths_per_round():
    r0 = [sized("a", "r0", "pair", 10, 20), sized("b", "r0", "pair", 10, 5)]
    r1 = [sized(f"p{i}", "r1", "pair", 10, 3) for i in range(4)] + [sized("q", "r1", "pair", 10, 30),
                                                                       sized("h", "r1", "hard_negative", 10, 2)]
    rounds = {"r1": r0 + r1}
    config = RerankerTrainConfig()
    assert variant_pairs("r1", [], [], 0, config, rounds) == r0 + r1
    assert variant_pairs("r1-nohard", [], [], 0, config, rounds) == r0 + r1[:5]
    balanced = variant_pairs("r1-balanced", [], [], 0, config, rounds)
    assert balanced[:2] == r0  # r0: one shorter rejected, one longer: nothing to drop
    kept = balanced[2:]
    shorter = [p for p in kept if len(p["rejected"]) < len(p["chosen"])]
    assert len(shorter) == len(kept) - len(shorter) == 1 and r1[4] in kept
    assert variant_pairs("r1-balanced", [], [], 0, config, rounds) == balanced  # seeded
    with pytest.raises(SystemExit, match="unknown pair filter"):
        variant_pairs("r1-longest", [], [], 0, config, rounds)


def result(name: str, status: str, score: float) -> dict:
    return {"name": name, "status": status, "score": score, "greedy": False, "completion": f"{name}{score}"}


def test_figures_count_only_problems_with_a_choice():
    # a: the passing sample scores top (hit; 1 of 3 pass), b: a failing one does (miss; 1 of 2),
    # c: nothing passes (no choice, dropped before scoring)
    samples = [result("a", "passed", 0.9), result("a", "failed", 0.5), result("a", "failed", 0.1),
               result("b", "failed", 0.8), result("b", "passed", 0.2), result("c", "failed", 0.3)]
    kept = with_choice(samples)
    assert {r["name"] for r in kept} == {"a", "b"}
    figures = measure(kept, seed=0)
    assert figures["problems_with_choice"] == 2 and figures["eval_pairs"] == 3
    assert figures["pairwise_acc"] == pytest.approx(2 / 3)
    assert figures["top1_hit_rate"] == 0.5 and figures["top1_chance"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert figures["choice_gain"] == pytest.approx(((1 - 1 / 3) + (0 - 1 / 2)) / 2)
    low, high = figures["choice_gain_ci95"]
    assert low <= figures["choice_gain"] <= high


def test_held_out_samples_are_the_held_out_problems_model_samples_of_the_rounds_asked_for(tmp_path):
    """--round1 ranks r0's and r1's samples only: r2's come from a policy trained after r1."""
    from benchmarks.reranker_slice.run import held_out_samples
    from coderanker.jsonl import write_jsonl

    for round_id in ("r0", "r1", "r2"):
        write_jsonl(tmp_path / f"data/{round_id}/results/train.jsonl", [
            {"name": "a", "completion": f"{round_id} sample", "status": "passed", "round": round_id},
            {"name": "a", "completion": "ref", "status": "passed", "reference": True},
            {"name": "a", "completion": "greedy", "status": "failed", "greedy": True},
            {"name": "b", "completion": "other problem", "status": "failed"}])
    assert [r["completion"] for r in held_out_samples(tmp_path, {"a"})] == ["r0 sample", "r1 sample", "r2 sample"]
    assert [r["completion"] for r in held_out_samples(tmp_path, {"a"}, "r[01]")] == ["r0 sample", "r1 sample"]


def test_pairs_whose_chosen_program_is_a_reference_are_marked_whatever_they_recorded(tmp_path):
    """Older runs' pairs lack the key, or (a hard negative against an earlier round's
    reference, before faabd4c) recorded False; a model sample's pair stays unmarked."""
    from benchmarks.reranker_slice.run import mark_references
    from coderanker.jsonl import write_jsonl

    write_jsonl(tmp_path / "data/r0/results/train.jsonl", [
        {"name": "a", "completion": "ref a", "status": "passed", "reference": True},
        {"name": "a", "completion": "sample a", "status": "passed"}])
    pairs = [{"name": "a", "chosen_completion": "ref a"},
             {"name": "a", "chosen_completion": "ref a", "chosen_reference": False, "kind": "hard_negative"},
             {"name": "a", "chosen_completion": "sample a", "chosen_reference": False},
             {"name": "b", "chosen_completion": "ref b", "chosen_reference": True}]
    assert [p["chosen_reference"] for p in mark_references(pairs, tmp_path)] == [True, True, False, True]
