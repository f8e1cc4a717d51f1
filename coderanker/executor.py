"""File-level execution: read candidates, check them, run them on a backend, write results."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from coderanker.jsonl import RecordError, iter_lines, write_jsonl
from coderanker.problems import Problem, by_name, load_problems
from coderanker.sandbox import SandboxConfig, execute_programs
from coderanker.sandbox.pool import first_failure, judged_programs

log = logging.getLogger(__name__)


class CandidateFileError(ValueError):
    def __init__(self, errors: list[RecordError]):
        self.errors = errors
        shown = "\n".join(map(str, errors[:20]))
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} bad candidate record(s):\n{shown}{more}")


def load_candidates(path: str | os.PathLike, problems: dict[str, Problem]) -> list[dict]:
    """Candidates with `name` (a known problem) and `completion`; all bad lines are reported."""
    candidates, errors = [], []
    for line, item in iter_lines(path):
        if isinstance(item, RecordError):
            errors.append(item)
            continue
        bad = [(f, "missing required field") for f in ("name", "completion") if f not in item]
        bad += [(f, f"expected str, got {type(item[f]).__name__}")
                for f in ("name", "completion") if f in item and not isinstance(item[f], str)]
        if not bad and item["name"] not in problems:
            bad.append(("name", f"unknown problem {item['name']!r}"))
        errors += [RecordError(path, line, field, why) for field, why in bad]
        if not bad:
            candidates.append(item)
    if errors:
        raise CandidateFileError(errors)
    return candidates


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


def run(problems: dict[str, Problem], candidates: list[dict], config: SandboxConfig) -> list[dict]:
    """Execute on the configured backend, results in input order."""
    if config.backend == "ray":
        from coderanker.sandbox.ray_backend import execute_on_ray

        return execute_on_ray(problems, candidates, config)
    if config.backend != "local":
        raise ValueError(f"unknown execution backend {config.backend!r} (local or ray)")
    from tqdm.auto import tqdm

    programs = sum(len(judged_programs(problems[c["name"]], "")) + (problems[c["name"]].visible_tests is not None)
                   for c in candidates)
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
                 progress: Callable[[], None] | None = None) -> Counter:
    """Execute one candidates file against one problems file; returns status counts."""
    problems = by_name(load_problems(problems_path))
    candidates = load_candidates(candidates_path, problems)
    results = run(problems, candidates, config)
    write_jsonl(out_path, results)
    return Counter(result["status"] for result in results)
