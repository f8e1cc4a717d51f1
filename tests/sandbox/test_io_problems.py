"""stdin/stdout problems (`io_tests`) in all eight languages: the program is compiled once
and run once per case, each under its own limits; it passes only if every case's output
matches (whitespace-insensitive), and `detail` names the first case that did not."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from coderanker.executor import execute_candidates
from coderanker.languages import LANGUAGES
from coderanker.problems import Problem
from coderanker.sandbox import IOCases, SandboxConfig, Status
from coderanker.sandbox.pool import execute_programs

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sandbox" / "io.jsonl"


def records() -> list[dict]:
    with open(FIXTURE, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> SandboxConfig:
    return SandboxConfig(workers=2, uid_base=63300, timeout_s=3, cpu_s=3,
                         cache_dir=str(tmp_path_factory.mktemp("compiled")))


@pytest.fixture(scope="module")
def outcomes(config) -> dict[tuple[str, str], object]:
    """Every language's fixture programs in one parallel call."""
    cases = []
    for record in records():
        problem = Problem.from_record(record)
        io = IOCases(problem.io_tests)
        cases += [(record["language"], p["kind"], (problem.language, problem.io_program(p["completion"]), io))
                  for p in record["programs"]]
    results = execute_programs([program for _, _, program in cases], config)
    return {(language, kind): outcome for (language, kind, _), outcome in zip(cases, results, strict=True)}


def test_the_fixtures_cover_every_language_and_outcome():
    assert sorted(r["language"] for r in records()) == sorted(LANGUAGES)
    for record in records():
        kinds = {p["kind"] for p in record["programs"]}
        assert {"correct", "wrong", "late", "runtime_error", "timeout", "compile_error"} <= kinds, record["name"]


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_io_programs_are_judged_per_case(language, outcomes):
    (record,) = [r for r in records() if r["language"] == language]
    wrong = []
    for program in record["programs"]:
        outcome = outcomes[language, program["kind"]]
        expected_detail = f"case {program['case']} of 3" if program["case"] else ""
        if outcome.status.value != program["status"] or not outcome.detail.startswith(expected_detail):
            wrong.append(f"{program['kind']}: {outcome.status.value} {outcome.detail!r} (expected "
                         f"{program['status']} {expected_detail!r}) {outcome.stderr_tail[-300:]}")
    assert not wrong, "\n".join(wrong)


def test_a_wrong_answer_says_what_differs(outcomes):
    assert outcomes["py", "wrong"].detail == "case 1 of 3: wrong answer: token 1: expected '3', got '-1'"
    assert outcomes["cpp", "late"].detail == "case 3 of 3: wrong answer: token 1: expected '-2', got '8'"


def test_float_answers_within_the_tolerance_pass(config):
    program = "print(f'{1 / 3:.6f}', 2.5)\n"
    cases = (("", "0.3333333333 2.5\n"),)
    exact, tolerant, too_far = execute_programs([
        ("py", program, IOCases(cases)), ("py", program, IOCases(cases, tolerance=1e-5)),
        ("py", program, IOCases((("", "0.3334 2.5\n"),), tolerance=1e-5))], config)
    assert exact.status is Status.FAILED and "expected '0.3333333333', got '0.333333'" in exact.detail
    assert tolerant.status is Status.PASSED
    assert too_far.status is Status.FAILED
    integers, words = execute_programs([
        ("py", "print(1000001)\n", IOCases((("", "1000000\n"),), tolerance=1e-5)),
        ("py", "print('nan', '1_0')\n", IOCases((("", "nan 10\n"),), tolerance=1e-5))], config)
    assert integers.status is Status.FAILED  # integers are exact whatever the tolerance
    assert words.status is Status.FAILED and "'1_0'" in words.detail


def test_every_case_starts_from_the_same_files(config):
    """Scratch files of one case (in its directory or /tmp) are gone when the next starts."""
    program = ("import os\nprint('seen' if os.path.exists('mark') or os.path.exists('/tmp/mark') else 'fresh')\n"
               "open('mark', 'w').close()\nopen('/tmp/mark', 'w').close()\n")
    (outcome,) = execute_programs([("py", program, IOCases((("", "fresh\n"),) * 3))], config)
    assert outcome.status is Status.PASSED, outcome


def test_a_whole_python_program_has_its_own_interpreter(config):
    """Not the worker's forked memory, which holds the job (every case's expected output)."""
    program = ("import gc\nprint(any(isinstance(o, dict) and 'expect' in o for o in gc.get_objects()))\n"
               "print(callable(exit))\n")
    (outcome,) = execute_programs([("py", program, IOCases((("", "False True\n"),)))], config)
    assert outcome.status is Status.PASSED, outcome


def test_input_reaches_stdin_and_nowhere_else(config):
    """Each case gets its own input; a program cannot open another case's input by path."""
    echo = "import sys\nprint(sys.stdin.read().strip()[::-1])\n"
    cases = IOCases((("abc\n", "cba\n"), ("hello\n", "olleh\n"), ("", "\n")))
    peek = "print(open('/tmp/.stdin').read())\n"
    ran, peeked = execute_programs([("py", echo, cases), ("py", peek, IOCases((("secret\n", "secret\n"),)))],
                                   config)
    assert ran.status is Status.PASSED, ran
    if os.geteuid() == 0:  # programs run as a sandbox uid only when the host runs as root
        assert peeked.status is Status.FAILED and "PermissionError" in peeked.stderr_tail


def test_a_problem_with_tests_and_io_tests_needs_both(config):
    record = {"name": "both", "language": "py", "prompt": "", "stop_tokens": ["\ndef"],
              "tests": "assert double(5) == 10\n", "io_tests": [{"input": "3\n", "output": "6\n"}]}
    problem = Problem.from_record(record)
    main = "import sys\n\ndata = sys.stdin.read().split()  # empty when the tests run\nif data:\n    print({})\n"
    body = "def double(x):\n    return 2 * x\n\n" + main.format("double(int(data[0]))")
    io_wrong = "def double(x):\n    return 2 * x\n\n" + main.format("double(int(data[0])) + 1")
    tests_wrong = "def double(x):\n    return x + 2\n\n" + main.format("6")
    candidates = [{"name": "both", "completion": c} for c in (body, io_wrong, tests_wrong)]
    results = execute_candidates({"both": problem}, candidates, config)
    assert [r["status"] for r in results] == ["passed", "failed", "failed"], results
    assert results[1]["detail"].startswith("case 1 of 1") and "case" not in results[2]["detail"]


class TestAdversarialIO:
    """The I/O path under the same limits as every program: each case is its own run."""

    def test_a_flood_on_one_case_fails_that_case(self, config):
        program = "import sys\nn = int(input())\nif n == 2:\n    while True:\n        print('x' * 1000)\nprint(n)\n"
        cases = IOCases((("1\n", "1\n"), ("2\n", "2\n"), ("3\n", "3\n")))
        (outcome,) = execute_programs([("py", program, cases)], config)
        assert outcome.status is Status.FAILED and outcome.detail == "case 2 of 3: output limit exceeded"

    def test_reading_beyond_the_input_is_a_runtime_error_not_a_hang(self, config):
        cases = IOCases((("1\n", "1\n"),))
        python, cpp = execute_programs([
            ("py", "a = input()\nb = input()\nprint(a)\n", cases),
            ("cpp", "#include <iostream>\nint main() {\n    int a = 0, b = 0;\n    std::cin >> a >> b;\n"
                    "    std::cout << a << ' ' << b << std::endl;\n}\n", cases)], config)
        assert python.status is Status.FAILED and "EOFError" in python.stderr_tail
        assert cpp.status is Status.FAILED and "wrong answer" in cpp.detail  # reads 0 for b: prints "1 0"

    def test_a_forked_child_is_killed_after_its_case_and_cannot_answer_the_next(self, config):
        program = ("import os, sys, time\nn = int(input())\n"
                   "if os.fork() == 0:\n    time.sleep(1.5)\n    print('late', n)\n    sys.stdout.flush()\n"
                   "    os._exit(0)\nprint(n)\n")
        cases = IOCases((("1\n", "1\n"), ("2\n", "2\n")))
        (outcome,) = execute_programs([("py", program, cases)], config)
        # passed: each case's output is the parent's alone, and its child was killed ("processes
        # survived" would be a sandbox_error)
        assert outcome.status is Status.PASSED and "late" not in outcome.stdout_tail, outcome
