"""`coderanker data ...`, `coderanker execute` and `coderanker profile use` as a user runs them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from coderanker.cli import main
from coderanker.jsonl import read_jsonl, write_jsonl

from ..conftest import REPO


def export(name: str, out: Path) -> list[dict]:
    assert main(["data", "export", name, "--out", str(out)]) == 0
    return read_jsonl(out)


def candidates_file(path: Path, problems: list[dict], body) -> Path:
    write_jsonl(path, [{"name": p["name"], "completion": body(p), "sample": i, "extra": "kept"}
                       for i, p in enumerate(problems)])
    return path


def execute(tmp_path: Path, problems: Path, candidates: Path) -> list[dict]:
    out = tmp_path / "results.jsonl"
    args = ["execute", "--problems", str(problems), "--candidates", str(candidates), "--out", str(out),
            "--params", str(tmp_path / "none.yaml")]
    assert main(args) == 0
    return read_jsonl(out)


def test_humaneval_canonical_solutions_all_pass(tmp_path):
    problems = export("humaneval", tmp_path / "he.jsonl")
    results = execute(tmp_path, tmp_path / "he.jsonl",
                      candidates_file(tmp_path / "c.jsonl", problems, lambda p: p["reference"]))
    assert len(results) == 164
    assert Counter(r["status"] for r in results) == {"passed": 164}
    assert all(r["extra"] == "kept" for r in results) and [r["sample"] for r in results] == list(range(164))


def test_starter_references_pass_and_wrong_bodies_fail(tmp_path):
    problems = export("starter", tmp_path / "starter.jsonl")
    right = execute(tmp_path, tmp_path / "starter.jsonl",
                    candidates_file(tmp_path / "right.jsonl", problems, lambda p: p["reference"]))
    assert Counter(r["status"] for r in right) == {"passed": len(problems)}
    wrong = execute(tmp_path, tmp_path / "starter.jsonl",
                    candidates_file(tmp_path / "wrong.jsonl", problems, lambda p: "    return None\n"))
    assert Counter(r["status"] for r in wrong) == {"failed": len(problems)}


def test_validate_reports_each_bad_record(tmp_path, capsys):
    problems = export("starter:eval", tmp_path / "p.jsonl")[:3]
    problems[1] = {**problems[1], "reference": "    return 12345\n"}
    del problems[2]["prompt"]
    write_jsonl(tmp_path / "bad.jsonl", problems)
    capsys.readouterr()
    assert main(["data", "validate", str(tmp_path / "bad.jsonl"), "--check-references"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{tmp_path / 'bad.jsonl'}:2: reference: does not pass its own tests (failed: AssertionError)",
        f"{tmp_path / 'bad.jsonl'}:2: visible_tests: the reference does not pass them (failed: AssertionError)",
        f"{tmp_path / 'bad.jsonl'}:3: prompt: missing required field",
    ]


def test_validate_checks_references_against_their_visible_tests(tmp_path, capsys):
    problems = export("starter:eval", tmp_path / "p.jsonl")[:3]
    assert all("visible_tests" in p for p in problems)  # exported with the examples' tests
    problems[0] = {**problems[0], "visible_tests": problems[0]["visible_tests"].replace("assert ", "assert not ", 1)}
    problems[2] = {**problems[2], "visible_tests": ""}
    write_jsonl(tmp_path / "bad.jsonl", problems)
    capsys.readouterr()
    assert main(["data", "validate", str(tmp_path / "bad.jsonl"), "--check-references"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{tmp_path / 'bad.jsonl'}:1: visible_tests: the reference does not pass them (failed: AssertionError)",
        f"{tmp_path / 'bad.jsonl'}:3: visible_tests: must not be empty; leave the field out when the prompt "
        "shows no examples",
    ]
    assert main(["data", "validate", str(tmp_path / "p.jsonl"), "--check-references"]) == 0


def test_validate_accepts_a_good_file(tmp_path):
    export("starter:eval", tmp_path / "p.jsonl")
    assert main(["data", "validate", str(tmp_path / "p.jsonl")]) == 0


def test_execute_refuses_bad_candidates_and_writes_nothing(tmp_path, capsys):
    export("starter:eval", tmp_path / "p.jsonl")
    (tmp_path / "c.jsonl").write_text(json.dumps({"name": "nope", "completion": ""}) + "\n"
                                      + json.dumps({"completion": 1}) + "\n")
    out = tmp_path / "r.jsonl"
    code = main(["execute", "--problems", str(tmp_path / "p.jsonl"), "--candidates", str(tmp_path / "c.jsonl"),
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    assert "c.jsonl:1: name: unknown problem 'nope'" in err
    assert "c.jsonl:2: name: missing required field" in err and "c.jsonl:2: completion: expected str" in err


def test_rerank_prune_marks_candidates_that_fail_the_shown_examples(tmp_path, tiny_model_dir, capsys):
    from coderanker.reranker import init_reranker

    reranker = init_reranker(tiny_model_dir, tmp_path / "reranker")
    solved, unsolved = export("starter:eval", tmp_path / "p.jsonl")[:2]
    unshown = {**solved, "name": "no_examples"}
    del unshown["visible_tests"]
    write_jsonl(tmp_path / "p.jsonl", [solved, unsolved, unshown])
    wrong = "    return None\n"
    write_jsonl(tmp_path / "c.jsonl", [
        {"name": solved["name"], "completion": solved["reference"], "sample": 0},
        {"name": solved["name"], "completion": wrong, "sample": 1},
        {"name": solved["name"], "completion": wrong, "sample": 2, "visible_status": "passed"},  # carried: kept
        {"name": unsolved["name"], "completion": wrong, "sample": 3},
        {"name": unsolved["name"], "completion": "    raise SystemExit(3)\n", "sample": 4},
        {"name": "no_examples", "completion": wrong, "sample": 5},
    ])  # fmt: skip
    out = tmp_path / "scored.jsonl"
    args = ["rerank", "--model", str(reranker), "--problems", str(tmp_path / "p.jsonl"),
            "--candidates", str(tmp_path / "c.jsonl"), "--out", str(out), "--params", str(tmp_path / "none.yaml")]
    assert main(args + ["--prune", "--workers", "2"]) == 0
    rows = read_jsonl(out)
    assert [(r["sample"], r["visible_status"], r["pruned"]) for r in rows] == [
        (0, "passed", False), (1, "failed", True), (2, "passed", False),  # the problem one candidate solves
        (3, "failed", False), (4, "failed", False),  # nobody passed its examples: nothing is pruned
        (5, None, False),  # no visible tests
    ]
    assert all(isinstance(r["score"], float) for r in rows)
    assert "pruned 1 of 6 candidates" in capsys.readouterr().err
    assert main(args) == 0  # without --prune: scores only, as before
    assert [set(r) - {"name", "completion", "sample", "visible_status"} for r in read_jsonl(out)] == [{"score"}] * 6
    assert [r["score"] for r in read_jsonl(out)] == pytest.approx([r["score"] for r in rows])


@pytest.mark.parametrize("name", ["tiny", "cpu", "paper"])
def test_profile_use_writes_params(tmp_path, monkeypatch, name):
    monkeypatch.chdir(REPO)
    out = tmp_path / "params.yaml"
    assert main(["profile", "use", name, "--params", str(out)]) == 0
    assert out.read_text() == (REPO / "configs" / f"{name}.yaml").read_text()


def test_committed_params_are_the_cpu_profile():
    assert (REPO / "params.yaml").read_text() == (REPO / "configs" / "cpu.yaml").read_text()


def test_profile_use_unknown_name(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["profile", "use", "nope", "--params", str(tmp_path / "p.yaml")]) == 2


def test_validate_checks_io_problems_cases_and_references(tmp_path, capsys):
    good = {"name": "sum", "language": "py", "prompt": "", "tests": "", "stop_tokens": ["\n```"],
            "reference": "a, b = map(int, input().split())\nprint(a + b)\n",
            "io_tests": [{"input": "1 2\n", "output": "3\n"}, {"input": "2 2\n", "output": "4\n"}]}
    wrong_case = {**good, "name": "wrong_case", "io_tests": [{"input": "1 2\n", "output": "3\n"},
                                                             {"input": "2 2\n", "output": "5\n"}]}
    missing = {**good, "name": "missing", "io_tests": [{"input": "1 2\n"}]}
    write_jsonl(tmp_path / "io.jsonl", [good, wrong_case, missing])
    capsys.readouterr()
    assert main(["data", "validate", str(tmp_path / "io.jsonl"), "--check-references"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{tmp_path / 'io.jsonl'}:2: io_tests: the reference does not pass them (failed: case 2 of 2: wrong answer: "
        "token 1: expected '5', got '4')",
        f"{tmp_path / 'io.jsonl'}:3: io_tests[0].output: missing required field",
    ]
