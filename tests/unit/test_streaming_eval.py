"""Evaluation streams its results files: the figures and the scored file equal those of
scoring and summarising the whole list at once, on files laid out as sample + execute write them."""

from __future__ import annotations

import random
import zlib

import pytest

from coderanker import evaluation
from coderanker.evaluation import compare_on_shared_pool, evaluate_file
from coderanker.jsonl import JsonlGroups, RecordError, read_jsonl, write_jsonl
from coderanker.metrics import (
    bootstrap_ci95,
    choice_sample_lists,
    compare_on_pool,
    gain_per_problem,
    group_by_problem,
    mean_or_none,
    mean_pass_at_k,
    pairwise_accuracy,
    summarise,
)


class CrcScorer:
    """Scores from the program text, on a coarse grid (ties happen); records each call's problems."""

    def __init__(self, salt=""):
        self.salt, self.calls = salt, []

    def score_candidates(self, problems, candidates):
        self.calls.append([c["name"] for c in candidates])
        return [zlib.crc32(f"{self.salt}{c['name']}/{c['completion']}".encode()) % 7 / 7 for c in candidates]


def eval_results(rng: random.Random, problems: int, samples: int = 6) -> list[dict]:
    """An evaluation results file: each problem's samples together, then every problem's greedy
    candidate, then planted references (and references, as training files have); sandbox
    errors, visible-test statuses, truncation."""
    statuses = ["passed", "passed", "failed", "timeout", "compile_error", "sandbox_error"]

    def candidate(p, sample, **extra):
        row = {"name": f"p{p:03d}", "language": "py", "completion": f"return {rng.randint(0, 9)}",
               "response": "...", "sample": sample, "greedy": False, "truncated": rng.random() < 0.1,
               "status": rng.choice(statuses), "detail": "x" * rng.randint(0, 50), **extra}
        if rng.random() < 0.6:
            row["visible_status"] = rng.choice(["passed", "failed", "sandbox_error"])
        return row

    rows = [candidate(p, i) for p in range(problems) for i in range(rng.randint(0, samples))]
    rows += [candidate(p, -1, greedy=True) for p in range(problems) if rng.random() < 0.9]
    rows += [{**candidate(p, samples, planted=True), "status": "passed"} for p in range(problems) if rng.random() < 0.3]
    rows += [candidate(p, 0, reference=True) for p in range(problems) if rng.random() < 0.1]  # never a sample
    return rows


def one_call_per_problem(calls: list[list[str]]) -> bool:
    seen: dict[str, set[int]] = {}
    for index, names in enumerate(calls):
        for name in names:
            seen.setdefault(name, set()).add(index)
    return all(len(indices) == 1 for indices in seen.values())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streamed_evaluation_equals_summarising_the_whole_list(tmp_path, seed):
    rows = eval_results(random.Random(seed), 120)
    write_jsonl(tmp_path / "eval.jsonl", rows)
    with open(tmp_path / "eval.jsonl", "a") as handle:
        handle.write("\n")  # a blank line is no record
    full = read_jsonl(tmp_path / "eval.jsonl")
    for row, score in zip(full, CrcScorer().score_candidates({}, full), strict=True):
        row["score"] = score
    scorer = CrcScorer()

    figures = evaluate_file(tmp_path / "eval.jsonl", {}, scorer, tmp_path / "scored" / "eval.jsonl", batch_size=50)

    assert figures == summarise(full, score=lambda r: r["score"])
    assert figures["problems"] > 100 and figures["reranker_auc"] is not None
    assert read_jsonl(tmp_path / "scored" / "eval.jsonl") == full  # same records, same order, with scores
    assert len(scorer.calls) > 10 and one_call_per_problem(scorer.calls)


def old_shared_pool_figures(pool: list[dict], current, previous) -> dict:
    """What compare_on_shared_pool computed from the whole pool in memory."""
    choice = {id(r) for samples in choice_sample_lists(group_by_problem(pool)) for r in samples}
    to_score = [r for r in pool if id(r) in choice]
    for row in pool:
        row["score"] = row["previous_score"] = 0.0
    for row, now, before in zip(to_score, current.score_candidates({}, to_score),
                                previous.score_candidates({}, to_score), strict=True):
        row["score"], row["previous_score"] = now, before
    compared = compare_on_pool(pool, lambda r: r["previous_score"], lambda r: r["score"])
    groups = group_by_problem(pool)
    gains = gain_per_problem(groups, lambda r: r["score"])
    return {
        "problems": compared["problems"], "problems_with_choice": compared["problems_with_choice"],
        "scored": len(to_score), "pass@1": mean_pass_at_k(groups, 1),
        "reranked_pass@1": compared["reranked_pass@1_b"], "previous_reranked_pass@1": compared["reranked_pass@1_a"],
        "difference_vs_previous": compared["difference"], "difference_vs_previous_ci95": compared["difference_ci95"],
        "reranked_gain": mean_or_none(gains), "reranked_gain_ci95": bootstrap_ci95(gains),
        "reranker_pairwise_acc": pairwise_accuracy(groups, lambda r: r["score"]),
        "previous_reranker_pairwise_acc": pairwise_accuracy(groups, lambda r: r["previous_score"]),
    }  # fmt: skip


def test_streamed_shared_pool_comparison_equals_the_in_memory_one(tmp_path, monkeypatch):
    rows = eval_results(random.Random(7), 80)
    write_jsonl(tmp_path / "pool" / "eval-set.jsonl", rows)
    scorers = {"current": CrcScorer("now"), "previous": CrcScorer("before")}
    monkeypatch.setattr(evaluation, "load_problems", lambda path: [])
    monkeypatch.setattr(evaluation, "SCORE_BATCH", 40)
    monkeypatch.setattr(evaluation, "load_scorer", lambda directory, *args, **kwargs: scorers[directory])

    figures = compare_on_shared_pool(tmp_path, tmp_path / "pool", "set", "current", "previous", None)

    expected = old_shared_pool_figures(rows, CrcScorer("now"), CrcScorer("before"))
    assert figures == expected and 0 < figures["scored"] < len(rows)
    assert all(len(s.calls) > 1 and one_call_per_problem(s.calls) for s in scorers.values())


# --- reading a file one group at a time -----------------------------------------------------


def test_groups_need_not_be_consecutive(tmp_path):
    rows = [{"name": n, "i": i} for i, n in enumerate("abacbba")]
    write_jsonl(tmp_path / "r.jsonl", rows)
    groups = JsonlGroups(tmp_path / "r.jsonl")
    assert groups.keys == ["a", "b", "c"]
    assert [r["i"] for r in groups.read("b")] == [1, 4, 5] and groups.line_numbers("b") == [2, 5, 6]
    kept = JsonlGroups(tmp_path / "r.jsonl", keep=lambda r: r["i"] != 3)
    assert kept.keys == ["a", "b"] and [r["i"] for r in kept.read("a")] == [0, 2, 6]


def test_batches_hold_whole_groups(tmp_path):
    write_jsonl(tmp_path / "r.jsonl", [{"name": n} for n in "aabbbbbcd"])
    groups = JsonlGroups(tmp_path / "r.jsonl")
    assert list(groups.batches(3)) == [["a"], ["b"], ["c", "d"]]  # b (5) is a batch alone
    assert list(groups.batches(3, ["d", "a"])) == [["d", "a"]]


@pytest.mark.parametrize(("text", "where"), [
    ('{"name": "a"}\n{"name": 3}\n', r"r\.jsonl:2: name: expected str, got int"),
    ('{"name": "a"}\n\n{"name": \n', r"r\.jsonl:3: <line>: invalid JSON"),
    ('["a"]\n', r"r\.jsonl:1: <line>: a record must be a JSON object"),
])  # fmt: skip
def test_a_bad_line_is_named(tmp_path, text, where):
    (tmp_path / "r.jsonl").write_text(text)
    with pytest.raises(RecordError, match=where):
        JsonlGroups(tmp_path / "r.jsonl")


def test_length_runs_cut_sorted_lengths_with_the_fewest_padded_tokens():
    from itertools import combinations

    from coderanker.reranker import length_runs

    def cost(runs, lengths, overhead):
        overhead = len(lengths) * max(lengths) + 1 if overhead is None else overhead  # None: fewest runs first
        return sum((end - start) * lengths[end - 1] + overhead for start, end in runs)

    lengths = sorted(random.Random(3).choice([5, 9, 12, 40, 41, 90, 128]) for _ in range(11))
    for batch_size, overhead in ((4, 16), (20, 16), (20, 0), (3, 1000), (4, None)):
        runs = length_runs(lengths, batch_size, overhead)
        assert runs[0][0] == 0 and runs[-1][1] == len(lengths)
        assert all(a[1] == b[0] for a, b in zip(runs, runs[1:], strict=False))
        assert all(0 < end - start <= batch_size for start, end in runs)
        every = []  # brute force over every set of cut points
        for k in range(len(lengths)):
            for cuts in combinations(range(1, len(lengths)), k):
                bounds = [0, *cuts, len(lengths)]
                candidate = list(zip(bounds, bounds[1:], strict=False))
                if all(end - start <= batch_size for start, end in candidate):
                    every.append(cost(candidate, lengths, overhead))
        assert cost(runs, lengths, overhead) == min(every)
    assert length_runs([], 4) == [] and length_runs([7], 4) == [(0, 1)]
    # overhead None (GPUs): the fewest runs batch_size allows, the fewest padded tokens among those
    fewest = length_runs(lengths, 4, None)
    assert len(fewest) == -(-len(lengths) // 4)
    with pytest.raises(ValueError, match="batch_size"):
        length_runs(lengths, 0)
