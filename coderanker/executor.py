"""File-level execution: read candidates, check them, run them on a backend, write results."""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from coderanker.errors import InputError
from coderanker.jsonl import RecordError, iter_lines, jsonl_writer
from coderanker.languages import LANGUAGES
from coderanker.problems import Problem, ProblemFileError, scan_problems
from coderanker.sandbox import SandboxConfig
from coderanker.sandbox.pool import execute_programs, first_failure, judged_programs
from coderanker.sandbox.runner import ToolchainMissing, command, sandbox_python

log = logging.getLogger(__name__)
#: Candidates held in memory at once: execute_file reads, runs and writes a file this many at a time.
CHUNK_SIZE = 2000


class CandidateFileError(InputError):
    def __init__(self, errors: list[RecordError]):
        self.errors = errors
        shown = "\n".join(map(str, errors[:20]))
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} bad candidate record(s):\n{shown}{more}")


class ToolchainMissingError(InputError):
    """A problems file with a language this machine cannot run (found before anything runs)."""


def candidate_errors(path: str | os.PathLike, line: int, item: dict | RecordError,
                     problems: dict[str, Problem]) -> list[RecordError]:
    """Everything wrong with one line of a candidates file (nothing: an empty list)."""
    if isinstance(item, RecordError):
        return [item]
    bad = [(f, "missing required field") for f in ("name", "completion") if f not in item]
    bad += [(f, f"expected str, got {type(item[f]).__name__}")
            for f in ("name", "completion") if f in item and not isinstance(item[f], str)]
    if not bad and item["name"] not in problems:
        bad.append(("name", f"unknown problem {item['name']!r}"))
    return [RecordError(path, line, field, why) for field, why in bad]


def load_candidates(path: str | os.PathLike, problems: dict[str, Problem]) -> list[dict]:
    """Candidates with `name` (a known problem) and `completion`; all bad lines are reported."""
    candidates, errors = [], []
    for line, item in iter_lines(path):
        found = candidate_errors(path, line, item, problems)
        errors += found
        if not found:
            candidates.append(item)
    if errors:
        raise CandidateFileError(errors)
    return candidates


def check_candidates(path: str | os.PathLike, problems: dict[str, Problem]) -> Counter:
    """Check a whole candidates file as load_candidates does, keeping none of it: the number
    of candidates per problem name, or CandidateFileError with every bad line."""
    per_problem, errors = Counter(), []
    for line, item in iter_lines(path):
        found = candidate_errors(path, line, item, problems)
        errors += found
        if not found:
            per_problem[item["name"]] += 1
    if errors:
        raise CandidateFileError(errors)
    return per_problem


def candidate_chunks(path: str | os.PathLike, problems: dict[str, Problem], size: int) -> Iterator[list[dict]]:
    """The candidates of a checked file, `size` at a time (a line that went bad since raises)."""
    chunk = []
    for line, item in iter_lines(path):
        if errors := candidate_errors(path, line, item, problems):
            raise CandidateFileError(errors)
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def missing_toolchain(language_code: str, config: SandboxConfig) -> str:
    """Why this machine cannot check, compile or run the language's programs, looked up as
    the sandbox looks each command up when it runs them; empty when nothing is missing."""
    language = LANGUAGES[language_code]
    try:
        sandbox_python(config.python)  # the workers' interpreter, which runs Python programs too
        for template, compiling in ((language.compile, True), (language.run, False)):
            if template:
                command(language, template, config, compiling)
    except ToolchainMissing as err:
        return str(err)
    return ""


def check_toolchains(problems_path: str | os.PathLike, numbered: list[tuple[int, Problem]],
                     used: Iterable[str], config: SandboxConfig) -> None:
    """Refuse, before anything runs, a file whose candidates need a toolchain this machine
    lacks (every one of them would end as sandbox_error): name the first such problem."""
    used, missing = set(used), {}
    for line, problem in numbered:
        if problem.name in used and problem.language not in missing:
            missing[problem.language] = missing_toolchain(problem.language, config)
        if problem.name in used and missing[problem.language]:
            raise ToolchainMissingError(f"{problems_path}:{line}: language {problem.language!r}: toolchain missing: "
                                        f"{missing[problem.language]} or drop the file's {problem.language!r} problems")


def execute_candidates(problems: dict[str, Problem], candidates: list[dict], config: SandboxConfig,
                       progress: Callable[[], None] | None = None) -> list[dict]:
    """Results in input order: each candidate plus its hidden tests' outcome (`status`, ...).

    Hidden tests are `tests` and/or `io_tests` (stdin/stdout cases; with both, the first that
    does not pass decides). Where its problem has visible tests, the same batch of sandbox
    programs also runs prompt + completion + visible tests, and the result gains
    `visible_status`; the hidden tests alone decide `status`."""
    hidden, spans, visible, shown = [], [], [], []
    for i, candidate in enumerate(candidates):
        problem = problems[candidate["name"]]
        judged = judged_programs(problem, candidate["completion"])
        spans.append((len(hidden), len(hidden) + len(judged)))
        hidden += judged
        if problem.visible_tests is not None:
            shown.append(i)
            visible.append((problem.language, problem.visible_program(candidate["completion"])))
    outcomes = execute_programs(hidden + visible, config, progress)
    results = [{**c, "language": c.get("language", problems[c["name"]].language),
                **first_failure(outcomes[start:end]).to_record()}
               for c, (start, end) in zip(candidates, spans, strict=True)]
    for i, outcome in zip(shown, outcomes[len(hidden):], strict=True):
        results[i]["visible_status"] = outcome.status.value
    return results


def programs_per_candidate(problem: Problem) -> int:
    """Sandbox programs one candidate of the problem runs (hidden tests, then visible ones)."""
    return len(judged_programs(problem, "")) + (problem.visible_tests is not None)


def run(problems: dict[str, Problem], candidates: list[dict], config: SandboxConfig,
        progress: Callable[[], None] | None = None) -> list[dict]:
    """Execute on the configured backend, results in input order; `progress` (local
    backend) is called per program, else a progress bar shows them."""
    if config.backend == "ray":
        from coderanker.sandbox.ray_backend import execute_on_ray

        return execute_on_ray(problems, candidates, config)
    if config.backend != "local":
        raise ValueError(f"unknown execution backend {config.backend!r} (local or ray)")
    if progress is not None:
        return execute_candidates(problems, candidates, config, progress)
    from tqdm.auto import tqdm

    programs = sum(programs_per_candidate(problems[c["name"]]) for c in candidates)
    with tqdm(total=programs, desc="execute", unit="prog", mininterval=5) as bar:
        return execute_candidates(problems, candidates, config, progress=bar.update)


def visible_statuses(problems: dict[str, Problem], candidates: list[dict], config: SandboxConfig) -> list[str | None]:
    """Each candidate's `visible_status`: the one it carries, else its visible tests' outcome in
    the sandbox (on the configured backend); None where its problem has no visible tests."""
    # The visible tests in the place of the hidden ones: `run` then labels them alone.
    as_tests = {name: replace(p, tests=p.visible_tests, visible_tests=None)
                for name, p in problems.items() if p.visible_tests is not None}
    statuses = [c.get("visible_status") if c["name"] in as_tests else None for c in candidates]
    todo = [i for i, c in enumerate(candidates) if c["name"] in as_tests and statuses[i] is None]
    ran = run(as_tests, [{"name": candidates[i]["name"], "completion": candidates[i]["completion"]} for i in todo],
              config) if todo else []
    for i, result in zip(todo, ran, strict=True):
        statuses[i] = result["status"]
    return statuses


def pruned_flags(names: list[str], visible: list[str | None]) -> list[bool]:
    """Which candidates to prune: those whose visible tests did not pass, among the candidates
    of a problem where at least one passed them (a problem where none passed keeps all;
    candidates without visible tests, `None`, are never pruned)."""
    solved = {name for name, status in zip(names, visible, strict=True) if status == "passed"}
    return [status is not None and status != "passed" and name in solved
            for name, status in zip(names, visible, strict=True)]


def execute_file(problems_path, candidates_path, out_path, config: SandboxConfig,
                 progress: Callable[[], None] | None = None, durations: list[float] | None = None) -> Counter:
    """Execute one candidates file against one problems file; returns status counts.

    Before anything runs, the whole file is checked (every bad line reported) and so are
    the toolchains its problems need. Then it is read, run and written CHUNK_SIZE candidates
    at a time, so memory stays flat however long it is; results go to a temporary file
    that replaces out_path only once every candidate has its result. `progress` is called
    per program (local backend); without it a progress bar shows them. Given a `durations`
    list, each result's wall time moves there instead of into the file (the pipeline's
    results are a DVC output and must not change when the same programs run again)."""
    numbered, errors = scan_problems(problems_path)
    if errors:
        raise ProblemFileError(errors)
    problems = {problem.name: problem for _, problem in numbered}
    per_problem = check_candidates(candidates_path, problems)
    if config.backend == "local":  # Ray tasks run on other machines, whose toolchains this one cannot see
        check_toolchains(problems_path, numbered, per_problem, config)
    counts = Counter()
    with contextlib.ExitStack() as stack:
        if progress is None and config.backend == "local":
            from tqdm.auto import tqdm

            total = sum(programs_per_candidate(problems[name]) * n for name, n in per_problem.items())
            progress = stack.enter_context(tqdm(total=total, desc="execute", unit="prog", mininterval=5)).update
        write = stack.enter_context(jsonl_writer(out_path))
        for chunk in candidate_chunks(candidates_path, problems, CHUNK_SIZE):
            for result in run(problems, chunk, config, progress):
                if durations is not None:
                    durations.append(result.pop("duration_s", 0.0))
                write(result)
                counts[result["status"]] += 1
    return counts
