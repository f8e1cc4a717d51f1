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

from coderanker.problems import Problem
from coderanker.sandbox.cache import CompileCache
from coderanker.sandbox.config import SandboxConfig
from coderanker.sandbox.runner import Outcome, ToolchainMissing, run_program, sandbox_error, worker_spec
from coderanker.sandbox.worker import Worker, WorkerSpec

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
    compiled = CompileCache(config.cache_dir)

    def run(item: tuple[str, str]) -> Outcome:
        slot = slots.get()
        try:
            spec = worker_spec(config, slot)
        except ToolchainMissing as err:
            slots.put(slot)
            return sandbox_error(str(err))
        worker = _idle_worker(spec)
        try:
            return run_program(item[0], item[1], config, worker, compiled)
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
