"""The problem schema (a superset of MultiPL-E's) and its validation."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from coderanker.errors import InputError
from coderanker.jsonl import RecordError, iter_lines

#: MultiPL-E language codes the pipeline knows.
LANGUAGES = ("py", "cpp", "java", "js", "ts", "php", "sh", "cs")
SPLITS = ("train", "eval")
REQUIRED = {"name": str, "language": str, "prompt": str, "tests": str, "stop_tokens": list}
OPTIONAL = {"entry_point": str, "reference": str, "source": str, "split": str, "visible_tests": str,
            "io_tests": list, "io_tolerance": (int, float)}


@dataclass(frozen=True)
class Problem:
    """One programming problem; the program that runs is prompt + completion + "\\n" + tests.

    `visible_tests`, when known, are self-running tests of the examples the prompt itself
    shows (its `>>>` lines): a candidate that fails them can be pruned before ranking, as
    AlphaCode filters by a problem's example cases. Only `tests` decide a candidate's status.

    `io_tests` make a stdin/stdout problem (CodeContests, Codeforces, APPS style): `prompt +
    completion` is a whole program, run once per case with the case's `input` on stdin; its
    stdout must match `output` token by token (whitespace-insensitive), numbers within
    `io_tolerance` (absolute, or relative to the expected value) when that is set. `tests`
    may then be empty; with both, both must pass."""

    name: str
    language: str
    prompt: str
    tests: str
    stop_tokens: tuple[str, ...]
    entry_point: str | None = None
    reference: str | None = None
    source: str = "local"
    split: str = "eval"
    visible_tests: str | None = None
    io_tests: tuple[tuple[str, str], ...] | None = None
    io_tolerance: float | None = None

    def io_program(self, completion: str) -> str:
        """The whole stdin/stdout program of an I/O problem."""
        return self.prompt + completion

    def program(self, completion: str) -> str:
        return self.prompt + completion + "\n" + self.tests

    def visible_program(self, completion: str) -> str:
        """The program that runs the examples the prompt shows (prompt + completion + visible tests)."""
        if self.visible_tests is None:
            raise ValueError(f"problem {self.name!r} has no visible tests")
        return self.prompt + completion + "\n" + self.visible_tests

    def to_record(self) -> dict:
        record = {
            "name": self.name,
            "language": self.language,
            "prompt": self.prompt,
            "tests": self.tests,
            "stop_tokens": list(self.stop_tokens),
            "source": self.source,
            "split": self.split,
        }
        if self.entry_point is not None:
            record["entry_point"] = self.entry_point
        if self.reference is not None:
            record["reference"] = self.reference
        if self.visible_tests is not None:
            record["visible_tests"] = self.visible_tests
        if self.io_tests is not None:
            record["io_tests"] = [{"input": i, "output": o} for i, o in self.io_tests]
        if self.io_tolerance is not None:
            record["io_tolerance"] = self.io_tolerance
        return record

    @classmethod
    def from_record(cls, record: dict) -> Problem:
        return cls(
            name=record["name"],
            language=record["language"],
            prompt=record["prompt"],
            tests=record["tests"],
            stop_tokens=tuple(record["stop_tokens"]),
            entry_point=record.get("entry_point"),
            reference=record.get("reference"),
            source=record.get("source", "local"),
            split=record.get("split", "eval"),
            visible_tests=record.get("visible_tests"),
            io_tests=tuple((case["input"], case["output"]) for case in record["io_tests"])
            if record.get("io_tests") is not None else None,
            io_tolerance=float(record["io_tolerance"]) if record.get("io_tolerance") is not None else None,
        )


def record_errors(record: dict) -> list[tuple[str, str]]:
    """(field, why) for everything wrong with one record, in field order."""
    errors = []
    for field, kind in REQUIRED.items():
        if field not in record:
            errors.append((field, "missing required field"))
        elif not isinstance(record[field], kind):
            errors.append((field, f"expected {kind.__name__}, got {type(record[field]).__name__}"))
    for field, kind in OPTIONAL.items():
        if field in record and record[field] is not None and (
                not isinstance(record[field], kind) or isinstance(record[field], bool)):
            expected = kind.__name__ if isinstance(kind, type) else "number"
            errors.append((field, f"expected {expected}, got {type(record[field]).__name__}"))
    errors += io_errors(record)
    if isinstance(record.get("name"), str) and not record["name"].strip():
        errors.append(("name", "must not be empty"))
    if isinstance(record.get("language"), str) and record["language"] not in LANGUAGES:
        errors.append(("language", f"unknown language {record['language']!r}; one of {LANGUAGES}"))
    if isinstance(record.get("stop_tokens"), list) and not all(
        isinstance(token, str) and token for token in record["stop_tokens"]
    ):
        errors.append(("stop_tokens", "every stop token must be a non-empty string"))
    if isinstance(record.get("split"), str) and record["split"] not in SPLITS:
        errors.append(("split", f"unknown split {record['split']!r}; one of {SPLITS}"))
    if isinstance(record.get("visible_tests"), str) and not record["visible_tests"].strip():
        errors.append(("visible_tests", "must not be empty; leave the field out when the prompt shows no examples"))
    return errors


def io_errors(record: dict) -> list[tuple[str, str]]:
    """What is wrong with a record's `io_tests` and `io_tolerance`, each case named by index;
    and a problem must have something to judge by: non-empty `tests` or `io_tests`."""
    errors, cases = [], record.get("io_tests")
    if isinstance(cases, list):
        if not cases:
            errors.append(("io_tests", "must not be empty; leave the field out for a problem without I/O cases"))
        for index, case in enumerate(cases):
            if not isinstance(case, dict):
                errors.append((f"io_tests[{index}]", f"expected an object with input and output, "
                                                     f"got {type(case).__name__}"))
                continue
            for key in ("input", "output"):
                if key not in case:
                    errors.append((f"io_tests[{index}].{key}", "missing required field"))
                elif not isinstance(case[key], str):
                    errors.append((f"io_tests[{index}].{key}", f"expected str, got {type(case[key]).__name__}"))
    tolerance = record.get("io_tolerance")
    if isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool) and not 0 <= tolerance < 1:
        errors.append(("io_tolerance", f"must be at least 0 and below 1, got {tolerance}"))
    if isinstance(record.get("tests"), str) and not record["tests"].strip() and record.get("io_tests") is None:
        errors.append(("tests", "empty, and no io_tests: the problem has nothing to judge a program by"))
    return errors


def scan_problems(path: str | os.PathLike) -> tuple[list[tuple[int, Problem]], list[RecordError]]:
    """Every valid problem with its line number, and one RecordError per problem found."""
    problems, errors, first_line = [], [], {}
    for line, item in iter_lines(path):
        if isinstance(item, RecordError):
            errors.append(item)
            continue
        found = record_errors(item)
        errors.extend(RecordError(path, line, field, why) for field, why in found)
        if found:
            continue
        name = item["name"]
        if name in first_line:
            errors.append(
                RecordError(path, line, "name", f"duplicate name {name!r} (first on line {first_line[name]})")
            )
            continue
        first_line[name] = line
        problems.append((line, Problem.from_record(item)))
    return problems, errors


class ProblemFileError(InputError):
    """A problem file with bad records; its message lists every one."""

    def __init__(self, errors: list[RecordError]):
        self.errors = errors
        shown = "\n".join(str(error) for error in errors[:20])
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} bad problem record(s):\n{shown}{more}")


def load_problems(path: str | os.PathLike) -> list[Problem]:
    """Load a problem file, refusing it whole if any record is bad."""
    problems, errors = scan_problems(path)
    if errors:
        raise ProblemFileError(errors)
    return [problem for _, problem in problems]


def by_name(problems: Iterable[Problem]) -> dict[str, Problem]:
    return {problem.name: problem for problem in problems}
