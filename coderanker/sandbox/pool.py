"""Parallel execution on a pool of warm sandbox workers, one per slot (and sandbox uid).

Workers outlive a call: the next call with the same settings finds them warm. They are
killed when the process exits; after a crash each worker sees its job pipe close and ends."""

from __future__ import annotations

import atexit
import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from coderanker.problems import Problem
from coderanker.sandbox.cache import CompileCache
from coderanker.sandbox.config import IOCases, SandboxConfig, Status
from coderanker.sandbox.runner import Outcome, ToolchainMissing, run_program, sandbox_error, worker_spec
from coderanker.sandbox.worker import Worker, WorkerSpec

#: How runtimes report ENOSPC (its strerror: Python, bash, Java, node, PHP, perror in C and C++).
NO_SPACE = "no space left on device"
_workers: dict[WorkerSpec, queue.Queue[Worker]] = {}
_lock = threading.Lock()


def _idle_worker(spec: WorkerSpec) -> Worker:
    """A warm worker for this slot's spec; each spec has exactly one worker."""
    with _lock:
        if spec not in _workers:
            _workers[spec] = queue.Queue()
            _workers[spec].put(Worker(spec))
        idle = _workers[spec]
    return idle.get()


def shutdown() -> None:
    """Kill every warm worker (they restart on the next call)."""
    with _lock:
        for idle in _workers.values():
            while not idle.empty():
                idle.get().close()
        _workers.clear()


def _forget_workers() -> None:
    """In a forked child: the workers (and their pipes) belong to the parent; start afresh."""
    global _lock
    _workers.clear()
    _lock = threading.Lock()


atexit.register(shutdown)
os.register_at_fork(after_in_child=_forget_workers)


Program = tuple[str, str] | tuple[str, str, IOCases | None]


def execute_programs(
    programs: Iterable[Program], config: SandboxConfig, progress: Callable[[], None] | None = None
) -> list[Outcome]:
    """Run (language, source) programs, or (language, source, IOCases) stdin/stdout
    programs, in parallel; identical programs run once."""
    unique: dict[str, tuple[str, str, IOCases | None]] = {}
    keys = []
    for language, source, *rest in programs:
        io = rest[0] if rest else None
        key = hashlib.sha256(f"{language}\0{source}\0{io!r}".encode()).hexdigest()
        unique.setdefault(key, (language, source, io))
        keys.append(key)
    workers = config.effective_workers()
    slots: queue.Queue[int] = queue.Queue()
    for slot in range(workers):
        slots.put(slot)
    compiled = CompileCache(config.cache_dir)

    def run(item: tuple[str, str, IOCases | None]) -> Outcome:
        slot = slots.get()
        try:
            spec = worker_spec(config, slot)
        except ToolchainMissing as err:
            slots.put(slot)
            return sandbox_error(str(err))
        worker = _idle_worker(spec)
        try:
            return no_space_detail(run_program(item[0], item[1], config, worker, compiled, io=item[2]), config)
        except OSError as err:
            # Only the compile cache's writes get out of run_program: this machine's disk, not
            # the program, failed. No label: the batch stops (map cancels what has not started).
            where = err.filename or compiled.root
            raise OSError(err.errno, f"cannot write the compile cache {where}: {err.strerror or err}") from err
        finally:
            _workers[spec].put(worker)
            slots.put(slot)

    done: dict[str, Outcome] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as pool:
        for key, outcome in zip(unique, pool.map(run, unique.values()), strict=True):
            done[key] = outcome
            if progress:
                progress()
    return [done[key] for key in keys]


def no_space_detail(outcome: Outcome, config: SandboxConfig) -> Outcome:
    """A program that failed on a full /tmp filled its own scratch space (the sandbox's
    private tmpfs, the only place it can write, fresh for every program): say so."""
    if outcome.status is not Status.FAILED or NO_SPACE not in outcome.stderr_tail.lower():
        return outcome
    why = (f"no space left in the sandbox's /tmp (tmp_size_mb={config.tmp_size_mb}, "
           f"tmp_inodes={config.tmp_inodes})")
    return replace(outcome, detail=f"{outcome.detail}; {why}" if outcome.detail else why)


def judged_programs(problem: Problem, completion: str) -> list[Program]:
    """What decides a candidate's status: its tests program (prompt + completion + tests)
    when the problem has tests, and its stdin/stdout program when it has io_tests."""
    programs: list[Program] = []
    if problem.tests.strip() or problem.io_tests is None:
        programs.append((problem.language, problem.program(completion)))
    if problem.io_tests is not None:
        programs.append((problem.language, problem.io_program(completion),
                         IOCases(problem.io_tests, problem.io_tolerance or 0.0)))
    return programs


def first_failure(outcomes: list[Outcome]) -> Outcome:
    """One status from a candidate's judged programs: the first that did not pass, else the last."""
    return next((o for o in outcomes if o.status.value != "passed"), outcomes[-1])


def execute(
    problems: Mapping[str, Problem],
    candidates: Iterable[dict],
    config: SandboxConfig,
    progress: Callable[[], None] | None = None,
) -> Iterator[dict]:
    """Execute candidates (dicts with `name` and `completion`) against their hidden tests
    (tests and/or io_tests); yields results in input order."""
    candidates = list(candidates)
    programs, spans = [], []
    for candidate in candidates:
        judged = judged_programs(problems[candidate["name"]], candidate["completion"])
        spans.append((len(programs), len(programs) + len(judged)))
        programs += judged
    outcomes = execute_programs(programs, config, progress)
    for candidate, (start, end) in zip(candidates, spans, strict=True):
        language = problems[candidate["name"]].language
        outcome = first_failure(outcomes[start:end])
        yield {**candidate, "language": candidate.get("language", language), **outcome.to_record()}
