"""The paper's Table 1 (pass@1 per language and its average): hand-computed tables of small
scored results, and the evaluate stage writing it to metrics/<round>.json and MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from coderanker.evaluation import format_language_table, language_columns
from coderanker.jsonl import write_jsonl
from coderanker.metrics import AVERAGE, LANGUAGE_FIGURES, by_language, summarise

ROOT = Path(__file__).resolve().parents[2]


def score(result: dict) -> float:
    return result["score"]


def result(name: str, status: str, score: float = 0.0, language: str = "py", **extra) -> dict:
    return {"name": name, "language": language, "status": status, "score": score, "greedy": False, **extra}


def greedy(name: str, status: str, language: str = "py") -> dict:
    return result(name, status, language=language, greedy=True)


# Set "a": p1 has 2 of 3 samples passing, the top-scored passes, its greedy passes; p2 has no
# passing sample (a planted reference does not count). Set "b" holds another problem also named
# p1: 1 of 4 passing, the top-scored one fails its visible tests (pruned) and so does not pass,
# the best survivor passes; its top-scored candidate of all is a sandbox error (left out).
SET_A = [
    result("p1", "passed", 0.9), result("p1", "passed", 0.6), result("p1", "failed", 0.1), greedy("p1", "passed"),
    result("p2", "failed", 0.8), result("p2", "timeout", 0.2), greedy("p2", "failed"),
    result("p2", "passed", 1.0, reference=True),
]
SET_B = [
    result("p1", "passed", 0.5, visible_status="passed"), result("p1", "failed", 0.9, visible_status="failed"),
    result("p1", "failed", 0.1, visible_status="passed"), result("p1", "compile_error", 0.3),
    result("p1", "sandbox_error", 0.99), greedy("p1", "failed"),
]
# Pooled by problem (3 problems), by hand:
POOLED_A_B = {
    "greedy_pass@1": 1 / 3,  # p1 passes; p2, b's p1 fail
    "pass@1": (2 / 3 + 0 + 1 / 4) / 3,  # 11/36; the mean of the sets' (1/3, 1/4) would be 7/24
    "reranked_pass@1": 1 / 3,  # top picks: 0.9 passes, 0.8 fails, 0.9 fails
    "pruned_reranked_pass@1": 2 / 3,  # b's p1: 0.9 is pruned, 0.5 passes
    "oracle_pass@n": 2 / 3,  # p2 has no passing sample
}


def cpp(name: str, passing: int, failing: int, greedy_status: str | None = "passed") -> list[dict]:
    rows = [result(name, "passed", 0.5 + i / 10, language="cpp") for i in range(passing)]
    rows += [result(name, "failed", 0.1 + i / 10, language="cpp") for i in range(failing)]
    return rows + ([greedy(name, greedy_status, language="cpp")] if greedy_status else [])


def test_one_language_across_two_sets_is_pooled_by_problem():
    table = by_language({"a": SET_A, "b": SET_B}, score)
    assert list(table) == ["py", AVERAGE]
    row = table["py"]
    assert row["sets"] == "a,b" and row["problems"] == 3
    assert {f: row[f] for f in LANGUAGE_FIGURES} == pytest.approx(POOLED_A_B)
    assert row["pass@1"] == pytest.approx(11 / 36)
    assert table[AVERAGE] == pytest.approx(row)  # one language: the average is its row


def test_a_set_alone_gives_the_figures_of_its_eval_sets_block():
    for rows in (SET_A, SET_B):
        alone, block = by_language({"s": rows}, score)["py"], summarise(rows, score)
        assert {f: alone[f] for f in (*LANGUAGE_FIGURES, "problems")} == {f: block[f] for f in
                                                                         (*LANGUAGE_FIGURES, "problems")}


def test_two_languages_and_a_mixed_set_each_count_by_their_problems():
    mixed = cpp("c2", passing=0, failing=2, greedy_status="failed")
    mixed += [result("m1", "passed", 0.3), result("m1", "failed", 0.7)]
    table = by_language({"a": SET_A, "cpp": cpp("c1", passing=1, failing=1), "mixed": mixed}, score)
    assert list(table) == ["py", "cpp", AVERAGE]
    py, cpp_row, average = table["py"], table["cpp"], table[AVERAGE]
    assert (py["sets"], py["problems"]) == ("a,mixed", 3)
    assert (cpp_row["sets"], cpp_row["problems"]) == ("cpp,mixed", 2)
    # py: p1, p2 of "a" and m1 (no greedy candidate: greedy over p1, p2 only)
    assert py["pass@1"] == pytest.approx((2 / 3 + 0 + 1 / 2) / 3)
    assert py["greedy_pass@1"] == pytest.approx(1 / 2)
    assert py["reranked_pass@1"] == pytest.approx(1 / 3)  # m1's top pick (0.7) fails
    # cpp: c1 (1 of 2 passing, the passing one scores higher, greedy passes), c2 (nothing passes)
    assert {f: cpp_row[f] for f in LANGUAGE_FIGURES} == pytest.approx(
        {"greedy_pass@1": 1 / 2, "pass@1": 1 / 4, "reranked_pass@1": 1 / 2, "pruned_reranked_pass@1": 1 / 2,
         "oracle_pass@n": 1 / 2})
    # the average is over languages, unweighted: not the pooled figure over all 5 problems
    assert (average["sets"], average["problems"]) == ("a,cpp,mixed", 5)
    for figure in LANGUAGE_FIGURES:
        assert average[figure] == pytest.approx((py[figure] + cpp_row[figure]) / 2), figure
    assert average["pass@1"] != pytest.approx((2 / 3 + 0 + 1 / 2 + 1 / 2 + 0) / 5)


def test_a_figure_none_in_every_set_stays_none_and_makes_the_average_none():
    no_greedy = [r for r in SET_A if not r["greedy"]]
    table = by_language({"a": no_greedy, "b": [r for r in SET_B if not r["greedy"]],
                         "cpp": cpp("c1", passing=1, failing=1)}, score)
    assert table["py"]["greedy_pass@1"] is None and table["py"]["pass@1"] == pytest.approx(11 / 36)
    assert table["cpp"]["greedy_pass@1"] == 1.0
    assert table[AVERAGE]["greedy_pass@1"] is None
    assert table[AVERAGE]["pass@1"] == pytest.approx((11 / 36 + 1 / 2) / 2)


def test_a_language_with_only_sandbox_errors_keeps_its_row_and_voids_the_average():
    broken = [result("j1", "sandbox_error", 0.5, language="java"), result("j1", "sandbox_error", 0.1, language="java")]
    table = by_language({"a": SET_A, "java": broken}, score)
    assert table["java"] == {"sets": "java", "problems": 0, **dict.fromkeys(LANGUAGE_FIGURES)}
    assert all(table[AVERAGE][f] is None for f in LANGUAGE_FIGURES)
    assert table[AVERAGE]["problems"] == 2 and table[AVERAGE]["sets"] == "a,java"


def test_the_table_as_columns_and_as_aligned_text():
    table = by_language({"a": SET_A, "java": [result("j1", "sandbox_error", language="java")]}, score)
    columns = language_columns(table)
    assert list(columns) == ["language", "sets", "problems", *LANGUAGE_FIGURES]
    assert columns["language"] == ["py", "java", AVERAGE] and columns["problems"] == [2, 0, 2]
    lines = format_language_table(table).splitlines()
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1  # aligned
    assert lines[1].split() == ["py", "a", "2", "0.500", "0.333", "0.500", "0.500", "0.500"]
    assert lines[2].split()[3:] == ["-"] * 5


# The evaluate stage, end to end on hand-made files: a stand-in scorer, a real MLflow (SQLite).

class ScoreField:
    """Scores each candidate by its own `score` field (what the hand-made results carry)."""

    def score_candidates(self, problems, candidates):
        return [c["score"] for c in candidates]


def problem(name: str, language: str) -> dict:
    return {"name": name, "language": language, "prompt": "x = 1\n", "tests": "assert x == 1\n", "stop_tokens": []}


@pytest.fixture
def stage_files(tmp_path, monkeypatch):
    """Problems, results and a pairs report for sets `a` (py) and `b` (mixed: py and cpp)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())
    params["data"]["eval"] = {"a": {"source": "starter:eval"}, "b": {"source": "humaneval"}}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    set_b = SET_B + cpp("c1", passing=1, failing=1)
    for name, rows in (("a", SET_A), ("b", set_b)):
        write_jsonl(tmp_path / "problems" / f"eval-{name}.jsonl",
                    [problem(n, lang) for n, lang in dict((r["name"], r["language"]) for r in rows).items()])
        write_jsonl(tmp_path / "results" / f"eval-{name}.jsonl", [{**r, "completion": "pass"} for r in rows])
    (tmp_path / "pairs").mkdir()
    (tmp_path / "pairs" / "report.json").write_text(json.dumps({"total_pairs": 4, "new_pairs": 4, "hard_negatives": 0}))
    (tmp_path / "reranker").mkdir()
    (tmp_path / "reranker" / "config.json").write_text("{}")
    monkeypatch.setattr("coderanker.evaluation.load_scorer", lambda *args, **kwargs: ScoreField())
    monkeypatch.setattr("coderanker.serving.log_reranker",
                        lambda run, model_dir: run.log_artifact(Path(model_dir) / "config.json", "reranker"))
    return tmp_path


def test_the_evaluate_stage_writes_the_table_to_its_metrics_and_mlflow(stage_files, capsys):
    from coderanker import tracking
    from pipelines import evaluate

    evaluate.main(["--problems", "problems", "--results", "results", "--reranker", "reranker", "--pairs", "pairs",
                   "--round", "r0", "--out", "metrics/r0.json", "--scored", "scored"])
    metrics = json.loads(Path("metrics/r0.json").read_text())
    assert list(metrics) == ["round", "eval", "eval_sets", "languages", "train", "seconds"]
    written = [{**r, "completion": "pass"} for r in SET_A]  # as the results file holds them
    pool = yaml.safe_load(Path("params.yaml").read_text())["sample"]["eval_pool_size"]  # tiny's: 3
    assert metrics["eval"] == metrics["eval_sets"]["a"] == json.loads(json.dumps(summarise(written, score, pool=pool)))
    expected = by_language({"a": SET_A, "b": SET_B + cpp("c1", passing=1, failing=1)}, score, pool=pool)
    assert metrics["languages"] == expected != by_language({"a": SET_A, "b": SET_B + cpp("c1", passing=1, failing=1)},
                                                           score)  # some problem has more samples than the pool
    assert metrics["languages"]["py"]["sets"] == "a,b" and metrics["languages"]["cpp"]["sets"] == "b"
    assert metrics["languages"]["py"]["pass@1"] == pytest.approx(11 / 36)
    assert format_language_table(expected) in capsys.readouterr().err

    client = tracking.client()
    experiment = tracking.experiment_id(client)
    run = client.search_runs([experiment], "tags.`coderanker.stage` = 'evaluate'")[0]
    assert evaluate.LANGUAGE_TABLE in [a.path for a in client.list_artifacts(run.info.run_id, "tables")]
    logged = client.load_table(experiment, evaluate.LANGUAGE_TABLE, run_ids=[run.info.run_id])
    assert list(logged.columns) == ["language", "sets", "problems", *LANGUAGE_FIGURES]
    assert list(logged["language"]) == ["py", "cpp", AVERAGE] and list(logged["problems"]) == [3, 1, 4]
    assert list(logged["pass@1"]) == pytest.approx([expected[lang]["pass@1"] for lang in ("py", "cpp", AVERAGE)])
    assert run.data.metrics["languages.average.reranked_pass_at_1"] == pytest.approx(
        expected[AVERAGE]["reranked_pass@1"])
