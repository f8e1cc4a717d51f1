"""Problems written for other well-known harnesses run unchanged once converted to the
schema: HumanEval-X's C++, Java and JavaScript layout (project-written rows in the hub's
format, tests/fixtures/sources), MBPP's `test_list` and CodeContests' I/O cases
(tests/unit/test_problems.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coderanker.sandbox import SandboxConfig, Status
from coderanker.sandbox.pool import execute_programs
from coderanker.sources import load_source

SOURCES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"


@pytest.mark.parametrize("language", ["cpp", "java", "js"])
def test_humaneval_x_references_pass_wrong_bodies_fail_and_examples_are_visible(language, tmp_path):
    path = SOURCES / f"humaneval-x-{language}.jsonl"
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    problems = load_source(f"humaneval-x:{language}={path}")
    assert [p.language for p in problems] == [language] * len(rows)
    assert problems[0].name.startswith("HumanEvalX_0") and problems[0].source == f"humaneval-x:{language}"
    programs = []
    for problem, row in zip(problems, rows, strict=True):
        assert problem.prompt == row["prompt"] and problem.tests.endswith(row["test"])  # the harness's own text
        assert problem.reference.strip() and problem.stop_tokens[0] not in problem.reference
        programs += [(language, problem.program(problem.reference)), (language, problem.program(row["wrong"]))]
        if problem.visible_tests is not None:
            programs.append((language, problem.visible_program(problem.reference)))
    assert sum(p.visible_tests is not None for p in problems) == (1 if language == "java" else 2)
    outcomes = execute_programs(programs, SandboxConfig(workers=2, uid_base=63500, cache_dir=str(tmp_path)))
    expected = []
    for problem in problems:
        expected += [Status.PASSED, Status.FAILED] + ([Status.PASSED] if problem.visible_tests is not None else [])
    assert [o.status for o in outcomes] == expected, [(o.status.value, o.stderr_tail[-200:]) for o in outcomes]


def test_console_assert_failures_fail_the_run_though_node_exits_0(tmp_path):
    """HumanEval-X's JavaScript tests use console.assert, which prints "Assertion failed" and
    goes on: the exit code alone would call every wrong program a pass."""
    (outcome,) = execute_programs([("js", "console.assert(1 === 2)\n")], SandboxConfig(workers=1, uid_base=63500))
    assert outcome.exit_code == 0 and outcome.status is Status.FAILED and outcome.detail == "assertion failed"
