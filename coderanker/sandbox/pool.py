"""Parallel execution: one worker slot (and sandbox uid) per concurrent program."""

from __future__ import annotations

import hashlib
import queue
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor

from coderanker.problems import Problem
from coderanker.sandbox.config import SandboxConfig, Status
from coderanker.sandbox.runner import Outcome, run_python

#: language code -> function running one whole program in the sandbox.
RUNNERS: dict[str, Callable[[str, SandboxConfig, int], Outcome]] = {"py": run_python}


def run_program(language: str, source: str, config: SandboxConfig, slot: int) -> Outcome:
    runner = RUNNERS.get(language)
    if runner is None:
        return Outcome(Status.SANDBOX_ERROR, None, 0.0, "", "", f"no runner for language {language!r}")
    try:
        return runner(source, config, slot)
    except OSError as err:  # the machine failed us, not the program
        return Outcome(Status.SANDBOX_ERROR, None, 0.0, "", "", f"{type(err).__name__}: {err}")


def execute_programs(
    programs: Iterable[tuple[str, str]], config: SandboxConfig, progress: Callable[[], None] | None = None
) -> list[Outcome]:
    """Run (language, source) programs in parallel; identical programs run once."""
    programs = list(programs)
    unique: dict[str, tuple[str, str]] = {}
    keys = []
    for language, source in programs:
        key = hashlib.sha256(f"{language}\0{source}".encode()).hexdigest()
        unique.setdefault(key, (language, source))
        keys.append(key)
    workers = config.effective_workers()
    slots: queue.Queue[int] = queue.Queue()
    for slot in range(workers):
        slots.put(slot)

    def run(item: tuple[str, str]) -> Outcome:
        slot = slots.get()
        try:
            return run_program(item[0], item[1], config, slot)
        finally:
            slots.put(slot)

    done: dict[str, Outcome] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as pool:
        for key, outcome in zip(unique, pool.map(run, unique.values()), strict=True):
            done[key] = outcome
            if progress:
                progress()
    return [done[key] for key in keys]


def execute(
    problems: Mapping[str, Problem],
    candidates: Iterable[dict],
    config: SandboxConfig,
    progress: Callable[[], None] | None = None,
) -> Iterator[dict]:
    """Execute candidates (dicts with `name` and `completion`); yields results in input order."""
    candidates = list(candidates)
    programs = []
    for candidate in candidates:
        problem = problems[candidate["name"]]
        programs.append((problem.language, problem.program(candidate["completion"])))
    for candidate, outcome in zip(candidates, execute_programs(programs, config, progress), strict=True):
        language = problems[candidate["name"]].language
        yield {**candidate, "language": candidate.get("language", language), **outcome.to_record()}
