"""Front ends that report a syntax error and still exit 0 (bash -n and bash on a broken
`[[ ... ]]` conditional) must not let the program pass: each such program is a
compile_error, while valid scripts and runtime errors keep their labels. The other seven
front ends exit non-zero on syntax errors: every language's `broken` fixture
(tests/sandbox/test_languages.py) is a compile_error through its exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coderanker.problems import Problem
from coderanker.sandbox import SandboxConfig, Status
from coderanker.sandbox.pool import execute_programs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sandbox"

#: Bodies of `add() { ... }` that print the right sum, so its tests would pass, after a line
#: that bash reports as an error but parses on, exit status 0 (each found by probing bash 5).
SILENT_BASH_ERRORS = [
    "[[ ; ]]",
    "[[ -z ]]",
    "[[ $1 -eq ]]",
    "[[ $1 < ]]",
    "[[ $1 == b c ]]",
    "[[ $1 -foo 2 ]]",
    "[[ ( $1 ]]",
    "if [[ ; then\n        echo never\n    fi",
]


def add_problem() -> Problem:
    with open(FIXTURES / "sh.jsonl", encoding="utf-8") as handle:
        record = next(json.loads(line) for line in handle if json.loads(line)["name"] == "fixture_0_add_sh")
    return Problem.from_record(record)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> SandboxConfig:
    return SandboxConfig(workers=2, uid_base=63100, cache_dir=str(tmp_path_factory.mktemp("compiled")))


def test_bash_conditionals_that_bash_reports_and_runs_past_are_compile_errors(config):
    problem = add_problem()
    bodies = [f"    {line}\n    echo $(( $1 + $2 ))\n" for line in SILENT_BASH_ERRORS]
    outcomes = execute_programs([("sh", problem.program(body)) for body in bodies], config)
    wrong = [(line, o.status.value, o.stderr_tail) for line, o in zip(SILENT_BASH_ERRORS, outcomes, strict=True)
             if o.status is not Status.COMPILE_ERROR]
    assert not wrong, wrong
    assert all("exited 0" in o.detail and o.exit_code == 0 for o in outcomes)


def test_valid_scripts_and_runtime_errors_keep_their_labels(config):
    problem = add_problem()
    passing = "    [[ -n $1 ]] && : # a valid conditional\n    echo $(( $1 + $2 ))\n"
    runtime = "    echo $(( $1 + ))\n"  # an arithmetic error happens when it runs: failed, not compile_error
    outcomes = execute_programs([("sh", problem.program(b)) for b in (passing, runtime)], config)
    assert [o.status for o in outcomes] == [Status.PASSED, Status.FAILED], outcomes
