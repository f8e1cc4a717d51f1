"""Mining a round: a pair mined again carries its latest round and kind, and mining a results
file one problem at a time gives what mining the whole list gives."""

from __future__ import annotations

import copy
import random
import zlib
from dataclasses import asdict

import pytest

from coderanker.jsonl import RecordError, write_jsonl
from coderanker.mining import dedupe_pairs, mine_file, mine_round
from coderanker.pairs import PairConfig
from coderanker.training.reward import RerankerTrainConfig, select_training_pairs


def pair(name, chosen, rejected, round_id, kind="pair", **extra):
    return {"name": name, "round": round_id, "kind": kind, "chosen": f"```{chosen}```",
            "rejected": f"```{rejected}```", "chosen_completion": chosen, "rejected_completion": rejected,
            "rejected_status": "failed", **extra}


def result(name, status, completion, **extra):
    return {"name": name, "status": status, "completion": completion, "response": f"```{completion}```", **extra}


class TableScorer:
    """Scores by program text; records each call's problems."""

    def __init__(self, table=None):
        self.table, self.calls = table or {}, []

    def score_candidates(self, problems, candidates):
        self.calls.append([c["name"] for c in candidates])
        return [self.table.get(c["completion"], zlib.crc32(f"{c['name']}/{c['completion']}".encode()) % 97 / 97)
                for c in candidates]


# --- de-duplication: the latest copy wins ---------------------------------------------------


def test_a_repeated_pair_moves_to_its_latest_round_with_that_round_s_kind():
    old_hard = pair("a", "g", "b", "r0", "hard_negative", rejected_score=3.0)
    other = pair("z", "g", "b", "r0")
    again = pair("a", "g ", "b", "r1")  # the same programs up to whitespace, mined as a plain pair
    assert dedupe_pairs([old_hard, other, again]) == [other, again]


def test_dedupe_is_deterministic_and_keeps_pairs_that_do_not_repeat_in_order():
    pairs = [pair(n, "g", f"b{i}", "r0") for n in "abc" for i in range(2)]
    assert dedupe_pairs(pairs) == pairs == dedupe_pairs(pairs + copy.deepcopy(pairs))


def test_an_earlier_pair_mined_as_this_round_s_hard_negative_keeps_hard_negative_priority():
    # b is unsolved this round; its failing x scores high and pairs with r0's passing program
    # for b, which repeats r0's (sol, x) pair.
    previous = [pair("b", "sol", "x", "r0"), pair("a", "g0", "f0", "r0"), pair("c", "g1", "f1", "r0")]
    results = [result("b", "failed", "x"), result("b", "failed", "y"),
               result("d", "passed", "p"), result("d", "failed", "q")]
    scorer = TableScorer({"x": 0.9, "y": 0.1, "p": 0.5, "q": 0.2})
    config = PairConfig(hard_top_k=1, hard_above_best_passing=True)

    pairs, report, _ = mine_round(results, previous, {}, "r1", config, scorer)

    assert [(p["name"], p["round"], p["kind"]) for p in pairs] == [
        ("a", "r0", "pair"), ("c", "r0", "pair"), ("d", "r1", "pair"), ("b", "r1", "hard_negative")]
    assert pairs[-1]["rejected_score"] == 0.9 and report.total_pairs == 4
    (first,) = select_training_pairs(pairs, "r1", RerankerTrainConfig(max_pairs=1))
    assert (first["name"], first["kind"]) == ("b", "hard_negative")


def test_a_hard_negative_against_an_earlier_round_s_reference_is_marked_as_one():
    # b and c are unsolved this round: each hard negative pairs with the positive of r0's pair
    # for its problem, a reference for b, a model sample for c; each keeps what it was.
    previous = [pair("b", "ref", "x0", "r0", chosen_reference=True),
                pair("c", "sample", "y0", "r0", chosen_reference=False)]
    results = [result("b", "failed", "x"), result("c", "failed", "y")]
    config = PairConfig(hard_top_k=1)

    pairs, _, _ = mine_round(results, previous, {}, "r1", config, TableScorer({"x": 0.9, "y": 0.8}))

    hard = {p["chosen_completion"]: p["chosen_reference"] for p in pairs if p["kind"] == "hard_negative"}
    assert hard == {"ref": True, "sample": False}


def test_mining_the_same_round_twice_gives_the_same_file():
    results = [result(f"p{i % 5}", "passed" if i % 3 == 0 else "failed", f"c{i}") for i in range(40)]
    previous = [pair("p1", "c3", "c1", "r0"), pair("p2", "c6", "c2", "r0", "hard_negative")]
    config = PairConfig(max_pairs_per_problem=3, hard_top_k=2)
    first = mine_round(copy.deepcopy(results), copy.deepcopy(previous), {}, "r1", config, TableScorer())[0]
    again = mine_round(copy.deepcopy(results), copy.deepcopy(previous), {}, "r1", config, TableScorer())[0]
    assert first == again


# --- mining a file one problem at a time ----------------------------------------------------


def round_results(rng: random.Random, problems: int) -> list[dict]:
    """As sample + execute write a training file: each problem's samples together, then the
    references, then the programs the dataset ships; some sandbox errors and repeated programs."""
    statuses = ["passed", "failed", "failed", "timeout", "compile_error", "sandbox_error"]
    rows = [result(f"p{p:02d}", rng.choice(statuses), f"s{rng.randint(0, 5)}", sample=i)
            for p in range(problems) for i in range(rng.randint(1, 6))]
    rows += [result(f"p{p:02d}", "passed", "ref", reference=True) for p in range(problems) if rng.random() < 0.7]
    rows += [result(f"p{p:02d}", rng.choice(statuses), f"d{rng.randint(0, 2)}", dataset=True)
             for p in rng.sample(range(problems), problems // 2)]
    return rows


@pytest.mark.parametrize("hard_min_quantile", [0.0, 0.6])
def test_mine_file_equals_mine_round_on_a_file_whose_problems_are_not_consecutive(tmp_path, hard_min_quantile):
    rng = random.Random(4)
    results = round_results(rng, 30)
    previous = [pair(f"p{p:02d}", "old", f"s{p % 6}", "r0") for p in range(0, 30, 3)]
    config = PairConfig(max_pairs_per_problem=3, hard_top_k=2, hard_min_quantile=hard_min_quantile, seed=1)
    write_jsonl(tmp_path / "train.jsonl", results)
    streamed = TableScorer()

    pairs, report = mine_file(tmp_path / "train.jsonl", copy.deepcopy(previous), {}, "r1", config, streamed,
                              batch_size=7)
    expected_pairs, expected_report, _ = mine_round(results, previous, {}, "r1", config, TableScorer())

    assert pairs == expected_pairs and asdict(report) == asdict(expected_report)
    assert report.hard_negative_pairs > 0 and report.new_pairs > 0
    # every call held whole problems (what keeps a real reranker's scores those of one call)
    calls_of: dict[str, set[int]] = {}
    for index, names in enumerate(streamed.calls):
        for name in names:
            calls_of.setdefault(name, set()).add(index)
    assert len(streamed.calls) > 1 and all(len(calls) == 1 for calls in calls_of.values())


def test_mine_file_without_a_scorer_equals_mine_round(tmp_path):
    results = round_results(random.Random(5), 12)
    write_jsonl(tmp_path / "train.jsonl", results)
    config = PairConfig(max_pairs_per_problem=2)
    pairs, report = mine_file(tmp_path / "train.jsonl", [], {}, "r0", config)
    expected_pairs, expected_report, _ = mine_round(results, [], {}, "r0", config)
    assert pairs == expected_pairs and asdict(report) == asdict(expected_report)


def test_mine_file_names_a_bad_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"name": "a", "status": "passed", "completion": "x", "response": "x"}\n{"status": "failed"}\n')
    with pytest.raises(RecordError, match=r"train\.jsonl:2: name: missing required field"):
        mine_file(path, [], {}, "r0", PairConfig())
