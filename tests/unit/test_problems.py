"""Problem schema, validation errors (file, line, field) and the problem sources."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from coderanker.jsonl import write_jsonl
from coderanker.problems import LANGUAGES, ProblemFileError, load_problems, record_errors, scan_problems
from coderanker.sources import doctest_visible_tests, humaneval, load_source, multipl_e, starter

GOOD = {
    "name": "add", "language": "py", "prompt": "def add(a, b):\n", "tests": "assert add(1, 2) == 3\n",
    "stop_tokens": ["\ndef"], "entry_point": "add", "reference": "    return a + b\n",
    "source": "test", "split": "eval",
}  # fmt: skip


def write_lines(path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_every_planted_bad_record_is_named_with_line_and_field(tmp_path):
    path = tmp_path / "problems.jsonl"
    missing = {k: v for k, v in GOOD.items() if k != "tests"}
    write_lines(path, [
        json.dumps(GOOD).encode(),
        json.dumps({**missing, "name": "no_tests"}).encode(),
        json.dumps({**GOOD, "name": "bad_lang", "language": "rust"}).encode(),
        json.dumps({**GOOD, "name": "bad_type", "prompt": 3}).encode(),
        json.dumps(GOOD).encode(),
        b'{"name": "cut',
        b'{"name": "bad \xff utf8"}',
        b"[1, 2]",
        json.dumps({**GOOD, "name": "bad_split", "split": "dev"}).encode(),
    ])  # fmt: skip
    problems, errors = scan_problems(path)
    assert [p.name for _, p in problems] == ["add"]
    found = {(e.line, e.field) for e in errors}
    assert found == {
        (2, "tests"), (3, "language"), (4, "prompt"), (5, "name"),
        (6, "<line>"), (7, "<line>"), (8, "<line>"), (9, "split"),
    }  # fmt: skip
    duplicate = next(e for e in errors if e.line == 5)
    assert "first on line 1" in str(duplicate) and str(duplicate).startswith(f"{path}:5: name:")
    assert "UTF-8" in next(e.why for e in errors if e.line == 7)


def test_load_refuses_a_file_with_any_bad_record(tmp_path):
    path = tmp_path / "p.jsonl"
    write_lines(path, [json.dumps(GOOD).encode(), json.dumps({**GOOD, "name": "x", "language": "cobol"}).encode()])
    with pytest.raises(ProblemFileError, match=r"p.jsonl:2: language"):
        load_problems(path)


def test_round_trip_keeps_every_field(tmp_path):
    path = tmp_path / "p.jsonl"
    write_jsonl(path, [GOOD])
    (problem,) = load_problems(path)
    assert problem.to_record() == GOOD
    assert problem.program("    return a + b\n") == GOOD["prompt"] + "    return a + b\n\n" + GOOD["tests"]


def test_visible_tests_round_trip_and_make_their_own_program(tmp_path):
    path = tmp_path / "p.jsonl"
    record = {**GOOD, "visible_tests": "assert add(2, 2) == 4\n"}
    write_jsonl(path, [record, {**GOOD, "name": "add_hidden_only"}])
    shown, hidden_only = load_problems(path)
    assert shown.visible_tests == "assert add(2, 2) == 4\n" and shown.to_record() == record
    assert hidden_only.visible_tests is None and "visible_tests" not in hidden_only.to_record()
    assert shown.visible_program("    return a + b\n") == GOOD["prompt"] + "    return a + b\n\nassert add(2, 2) == 4\n"
    assert shown.program("    return a + b\n").endswith(GOOD["tests"])  # the hidden tests are unchanged
    with pytest.raises(ValueError, match="no visible tests"):
        hidden_only.visible_program("    return a + b\n")


def test_bad_visible_tests_are_named_with_line_and_field(tmp_path):
    path = tmp_path / "p.jsonl"
    write_lines(path, [
        json.dumps({**GOOD, "visible_tests": None}).encode(),
        json.dumps({**GOOD, "name": "listed", "visible_tests": ["assert add(1, 1) == 2"]}).encode(),
        json.dumps({**GOOD, "name": "blank", "visible_tests": " \n"}).encode(),
    ])  # fmt: skip
    problems, errors = scan_problems(path)
    assert [p.name for _, p in problems] == ["add"] and problems[0][1].visible_tests is None
    assert [str(e) for e in errors] == [
        f"{path}:2: visible_tests: expected str, got list",
        f"{path}:3: visible_tests: must not be empty; leave the field out when the prompt shows no examples",
    ]
    assert record_errors({**GOOD, "visible_tests": "assert add(1, 1) == 2\n"}) == []


IO = {"name": "sum", "language": "cpp", "prompt": "", "tests": "", "stop_tokens": ["\n}"],
      "io_tests": [{"input": "1 2\n", "output": "3\n"}, {"input": "4 5\n", "output": "9\n"}], "io_tolerance": 1e-6}


def test_io_problems_round_trip_and_run_as_whole_programs(tmp_path):
    path = tmp_path / "p.jsonl"
    write_jsonl(path, [IO])
    (problem,) = load_problems(path)
    assert problem.io_tests == (("1 2\n", "3\n"), ("4 5\n", "9\n")) and problem.io_tolerance == 1e-6
    assert problem.to_record() == {**IO, "source": "local", "split": "eval"}
    assert problem.io_program("int main() {}\n") == "int main() {}\n"


def test_bad_io_tests_are_named_with_line_field_and_case(tmp_path):
    path = tmp_path / "p.jsonl"
    write_lines(path, [
        json.dumps(IO).encode(),
        json.dumps({**IO, "name": "not_a_list", "io_tests": {"input": "1"}}).encode(),
        json.dumps({**IO, "name": "empty", "io_tests": []}).encode(),
        json.dumps({**IO, "name": "cases", "io_tests": [{"input": "1"}, {"input": 2, "output": "3"}, "4"]}).encode(),
        json.dumps({**IO, "name": "tolerance", "io_tolerance": -1}).encode(),
        json.dumps({**IO, "name": "tolerance_type", "io_tolerance": "1e-6"}).encode(),
        json.dumps({**GOOD, "name": "nothing_to_judge", "tests": " "}).encode(),
    ])  # fmt: skip
    problems, errors = scan_problems(path)
    assert [p.name for _, p in problems] == ["sum"]
    assert [str(e) for e in errors] == [
        f"{path}:2: io_tests: expected list, got dict",
        f"{path}:3: io_tests: must not be empty; leave the field out for a problem without I/O cases",
        f"{path}:4: io_tests[0].output: missing required field",
        f"{path}:4: io_tests[1].input: expected str, got int",
        f"{path}:4: io_tests[2]: expected an object with input and output, got str",
        f"{path}:5: io_tolerance: must be at least 0 and below 1, got -1",
        f"{path}:6: io_tolerance: expected number, got str",
        f"{path}:7: tests: empty, and no io_tests: the problem has nothing to judge a program by",
    ]


SCALE_PROMPT = '''def scale(xs: list, k: float) -> list:
    """Multiply every element of xs by k.
    >>> scale([1.0, 2.0], 2)  # doubles
    [2.0, 4.0]
    >>> scale([], 3)
    []
    >>> sum(scale([0.1, 0.2], 1))
    0.3
    >>> scale([2],
    ...       -1)
    [-2]
    >>> len(scale([1], 0)) == 1 or scale
    True
    >>> scale([1], 0) == [0]
    >>> print(scale([1], 1))
    [1]
    >>> scale
    <function scale at 0x7f>
    >>> ys = scale([3], 3)
    >>> scale([5], 1)
    [7]
    >>> scale([1, 2], 0.5)
    [0.5, 1.0]"""
'''
SCALE_TESTS = ("def check(candidate):\n    assert candidate([5], 1) == [5]\n"
               "    assert candidate([1, 2], 0.5) == [0.5, 1.0]\n")
# By hand: comments dropped, `scale` renamed `candidate` where it is the callee, the float
# compared within 1e-6, the continuation line kept as doctest gives it (its indent past
# "... "), a comparison parenthesised before `== True`; skipped: the example without output,
# the one that prints, the non-literal <function ...>, the statement, and [7], which the
# hidden tests contradict; the docstring's closing quotes are not part of [0.5, 1.0].
SCALE_VISIBLE = """def check(candidate):
    assert candidate([1.0, 2.0], 2) == [2.0, 4.0]
    assert candidate([], 3) == []
    assert abs(sum(candidate([0.1, 0.2], 1)) - 0.3) < 1e-6
    assert candidate([2],
      -1) == [-2]
    assert (len(candidate([1], 0)) == 1 or candidate) == True
    assert candidate([1, 2], 0.5) == [0.5, 1.0]


check(scale)
"""


def test_visible_tests_from_a_prompts_doctest_examples():
    visible = doctest_visible_tests(SCALE_PROMPT, "scale", SCALE_TESTS)
    assert visible == SCALE_VISIBLE
    exec(compile(SCALE_PROMPT + "    return [x * k for x in xs]\n" + "\n" + visible, "right", "exec"), {})
    with pytest.raises(AssertionError):  # self-running: a wrong body fails when the program runs
        exec(compile(SCALE_PROMPT + "    return [x + k for x in xs]\n" + "\n" + visible, "wrong", "exec"), {})
    assert "[7]" in doctest_visible_tests(SCALE_PROMPT, "scale")  # without hidden tests it stays
    assert doctest_visible_tests('def f():\n    """No examples."""\n', "f") is None
    assert doctest_visible_tests('def f():\n    """\n    >>> f()\n    <f>\n    """\n', "f") is None


def test_starter_set_size_split_and_shape():
    problems = starter()
    splits = Counter(p.split for p in problems)
    assert len(problems) >= 200
    assert 140 <= splits["train"] <= 160 and 45 <= splits["eval"] <= 55
    assert len({p.name for p in problems}) == len(problems)
    for p in problems:
        assert p.language == "py" and p.reference and p.entry_point in p.prompt
        assert p.tests.count("assert") >= 4, p.name
        assert p.tests.rstrip().endswith(f"check({p.entry_point})"), p.name
        assert p.visible_tests.rstrip().endswith(f"check({p.entry_point})"), p.name  # every prompt has >>> lines
    assert sum(p.visible_tests.count("    assert ") for p in problems) == 331
    assert [p.name for p in starter("eval")] == [p.name for p in problems if p.split == "eval"]


def test_humaneval_has_164_self_running_problems():
    problems = humaneval()
    assert len(problems) == 164
    assert all(p.split == "eval" and p.tests.rstrip().endswith(f"check({p.entry_point})") for p in problems)
    assert problems[0].name == "HumanEval_0_has_close_elements"
    shown = [p for p in problems if p.visible_tests is not None]
    assert len(shown) == 70 and sum(p.visible_tests.count("    assert ") for p in shown) == 165
    assert problems[0].visible_tests == (
        "def check(candidate):\n"
        "    assert candidate([1.0, 2.0, 3.0], 0.5) == False\n"
        "    assert candidate([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) == True\n"
        "\n\ncheck(has_close_elements)\n")


MULTIPL_E_ROW = {
    "name": "HumanEval_0_has_close_elements", "language": "cpp",
    "prompt": "#include<assert.h>\nbool has_close_elements(std::vector<float> numbers, float threshold) {\n",
    "doctests": "transform", "original": "x.py", "prompt_terminology": "reworded",
    "tests": "}\nint main() {\n    assert(candidate({1.0, 2.0}, 0.5) == false);\n}\n",
    "stop_tokens": ["\n}"],
}  # fmt: skip


def test_multipl_e_rows_load_unchanged_from_a_local_file(tmp_path):
    path = tmp_path / "humaneval-cpp.jsonl"
    write_jsonl(path, [MULTIPL_E_ROW])
    (problem,) = multipl_e("humaneval-cpp", data_files=str(path))
    assert (problem.name, problem.language, problem.prompt, problem.tests) == (
        MULTIPL_E_ROW["name"], "cpp", MULTIPL_E_ROW["prompt"], MULTIPL_E_ROW["tests"])
    assert problem.stop_tokens == ("\n}",) and problem.source == "multipl-e:humaneval-cpp"
    assert problem.visible_tests is None


def test_mbpp_from_a_local_file_in_hub_format(tmp_path):
    mbpp_file = tmp_path / "mbpp.jsonl"
    write_jsonl(mbpp_file, [{
        "task_id": 2, "text": "Write a function to add two numbers.", "code": "def add(a, b):\r\n    return a + b",
        "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"], "test_setup_code": "",
        "challenge_test_list": [],
    }])  # fmt: skip
    (problem,) = load_source(f"mbpp:test={mbpp_file}")
    assert problem.name == "MBPP_2" and problem.entry_point == "add" and problem.split == "eval"
    assert problem.visible_tests == "\nassert add(1, 2) == 3\n"  # the test the MBPP prompt shows
    from coderanker.sandbox import SandboxConfig
    from coderanker.sandbox.pool import execute_programs

    programs = [("py", problem.program(problem.reference)), ("py", problem.visible_program(problem.reference)),
                ("py", problem.program("def add(a, b):\n    return a - b\n"))]
    assert [o.status.value for o in execute_programs(programs, SandboxConfig())] == ["passed", "passed", "failed"]


PY_SUM = "a, b = map(int, input().split())\nprint(a + b)\n"
CPP_SUM = "#include <iostream>\nint main() { long long a, b; std::cin >> a >> b; std::cout << a + b; }\n"
CC_ROW = {
    "name": "1_A. Sum", "description": "Print a + b.\n\nInput: two integers.",
    "public_tests": {"input": ["1 2\n"], "output": ["3\n"]},
    "private_tests": {"input": ["5 5\n"], "output": ["10\n"]},
    "generated_tests": {"input": [], "output": []},
    "solutions": {"language": [3, 2, 1, 3], "solution": [PY_SUM, CPP_SUM, "print input()", "import sys\r\n"
                                                         "print(sum(map(int, sys.stdin.read().split())))\r\n"]},
    "incorrect_solutions": {"language": [3, 4], "solution": ["print(3)\n", "class Main {}\n"]},
}  # fmt: skip


def test_codecontests_rows_become_native_io_problems_and_candidates(tmp_path):
    from coderanker.executor import execute_candidates
    from coderanker.problems import by_name
    from coderanker.sandbox import SandboxConfig
    from coderanker.sources import source_candidates

    cc_file = tmp_path / "cc.jsonl"
    write_jsonl(cc_file, [CC_ROW, {**CC_ROW, "name": "no cases", "public_tests": {}, "private_tests": {}}])
    py, cpp = load_source(f"codecontests:train:py,cpp={cc_file}")
    assert (py.name, py.language, cpp.name, cpp.language) == (
        "CodeContests_1_A_Sum_py", "py", "CodeContests_1_A_Sum_cpp", "cpp")
    assert py.io_tests == (("1 2\n", "3\n"), ("5 5\n", "10\n")) and py.tests == "" and py.split == "train"
    assert py.prompt.startswith("# 1_A. Sum\n# Print a + b.\n#\n# Input: two integers.\n")
    assert cpp.prompt.startswith("// 1_A. Sum\n// Print a + b.") and cpp.reference == CPP_SUM
    assert py.reference == PY_SUM and load_source(f"codecontests:train={cc_file}")[0].name == py.name  # py by default
    shipped = source_candidates(f"codecontests:train:py,cpp={cc_file}")
    # correct ones after the reference, incorrect ones; Python 2 and languages not asked for are left out
    assert [(c["name"], c["generator"]) for c in shipped] == [
        ("CodeContests_1_A_Sum_py", "codecontests:solutions"),
        ("CodeContests_1_A_Sum_py", "codecontests:incorrect_solutions")]
    assert source_candidates(f"mbpp:test={cc_file}") == []
    candidates = shipped + [{"name": p.name, "completion": p.reference} for p in (py, cpp)]
    results = execute_candidates(by_name([py, cpp]), candidates, SandboxConfig())
    assert [r["status"] for r in results] == ["passed", "failed", "passed", "passed"], results
    assert results[1]["detail"].startswith("case 2 of 2: wrong answer")  # right on the public case only
    with pytest.raises(ValueError, match="py, cpp, java"):
        load_source(f"codecontests:train:rust={cc_file}")


def test_unknown_source_names_the_choices():
    with pytest.raises(ValueError, match="starter:train"):
        load_source("no-such-source")


def test_languages_are_multipl_e_codes():
    assert set(LANGUAGES) == {"py", "cpp", "java", "js", "ts", "php", "sh", "cs"}


def test_prepare_data_writes_the_programs_training_sources_ship(tmp_path):
    """CodeContests' solutions of the training problems kept (train_limit) land in
    problems/candidates/train.jsonl, which the first round's sample stage adds."""
    import yaml

    from coderanker.jsonl import read_jsonl
    from pipelines.prepare_data import main

    cc_file = tmp_path / "cc.jsonl"
    write_jsonl(cc_file, [CC_ROW, {**CC_ROW, "name": "2_B. Other"}])
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {
        "train": [f"codecontests:train:py={cc_file}"], "train_limit": 1,
        "eval": {"starter": {"source": "starter:eval", "limit": 2}}}}))
    main(["--params", str(params), "--out", str(tmp_path / "problems"), "--seed-pairs", str(tmp_path / "seed")])
    (problem,) = read_jsonl(tmp_path / "problems" / "train.jsonl")
    shipped = read_jsonl(tmp_path / "problems" / "candidates" / "train.jsonl")
    assert problem["name"] == "CodeContests_1_A_Sum_py" and problem["io_tests"]
    assert [c["name"] for c in shipped] == [problem["name"]] * 2 and all(c["dataset"] for c in shipped)
    assert len(read_jsonl(tmp_path / "problems" / "eval-starter.jsonl")) == 2
