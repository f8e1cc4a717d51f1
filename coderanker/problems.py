"""The problem schema (a superset of MultiPL-E's) and its validation."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from coderanker.jsonl import RecordError, iter_lines

#: MultiPL-E language codes the pipeline knows.
LANGUAGES = ("py", "cpp", "java", "js", "ts", "php", "sh", "cs")
SPLITS = ("train", "eval")
REQUIRED = {"name": str, "language": str, "prompt": str, "tests": str, "stop_tokens": list}
OPTIONAL = {"entry_point": str, "reference": str, "source": str, "split": str, "visible_tests": str}


@dataclass(frozen=True)
class Problem:
    """One programming problem; the program that runs is prompt + completion + "\\n" + tests.

    `visible_tests`, when known, are self-running tests of the examples the prompt itself
    shows (its `>>>` lines): a candidate that fails them can be pruned before ranking, as
    AlphaCode filters by a problem's example cases. Only `tests` decide a candidate's status."""

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
        if field in record and record[field] is not None and not isinstance(record[field], kind):
            errors.append((field, f"expected {kind.__name__}, got {type(record[field]).__name__}"))
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


class ProblemFileError(ValueError):
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
