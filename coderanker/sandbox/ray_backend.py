"""Fan execution out over Ray: each task runs a chunk of candidates on the sandbox pool of
the node it lands on; results come back in input order, the local backend's records.

`ray.init()` joins the cluster named by RAY_ADDRESS, or starts a local one. A task asks for
the CPUs it runs sandboxes on at once: `workers` (0: a whole node), never more than the
largest node has, since a task runs on one node (asking for the cluster's total CPUs would
never be scheduled on a cluster of several nodes). The candidates are cut into a few
chunks per task the cluster can run at once, so that every node that fits a task gets
some. A node with fewer CPUs than a task asks for gets none; lower `workers` to use it."""

from __future__ import annotations

import fcntl
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import IO

from coderanker.problems import Problem
from coderanker.sandbox.config import SandboxConfig
from coderanker.sandbox.warm import COMPILER_UID_OFFSET

#: Chunks per task the cluster can run at once: the nodes that finish first take more.
CHUNKS_PER_SLOT = 4
#: Root only: sandbox uid blocks this process holds on its machine, by (uid_base, size).
_uid_blocks: dict[tuple[int, int], tuple[int, list[IO]]] = {}


def claim_uids(uid_base: int, count: int) -> tuple[int, list[IO]]:
    """The first free block of `count` sandbox uids from uid_base on this machine, and the
    locks that hold it (released when they close, or when the process ends).

    The local pool gives each of its slots uid_base + slot. Tasks in different processes
    (two tasks on one node, or two nodes on one machine) would all start from uid_base, and
    programs of the same uid share one RLIMIT_NPROC count: one program's threads could make
    another's fork fail, a wrong label. One lock file per uid keeps the blocks apart."""
    folder = Path(tempfile.gettempdir()) / "coderanker-sandbox-uids"
    folder.mkdir(exist_ok=True)
    for first in range(uid_base, uid_base + COMPILER_UID_OFFSET - count + 1, count):  # below the compilers' uids
        held = []
        for uid in range(first, first + count):
            handle = open(folder / f"{uid}.lock", "a")  # held open while the block is in use
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                break
            held.append(handle)
        else:
            return first, held
        for handle in held:
            handle.close()
    raise RuntimeError(f"no free block of {count} sandbox uids from {uid_base} on this machine")


def _run_chunk(problems: dict[str, Problem], candidates: list[dict], config: SandboxConfig) -> list[dict]:
    # What the local backend runs (hidden and visible tests in one batch), so both give the same fields.
    from coderanker.executor import execute_candidates

    if os.geteuid() == 0:  # sandboxes run as uid_base + slot: this process's own block, kept (its workers stay warm)
        key = (config.uid_base, config.workers)
        if key not in _uid_blocks:
            _uid_blocks[key] = claim_uids(*key)
        config = replace(config, uid_base=_uid_blocks[key][0])
    return execute_candidates(problems, candidates, config)


def node_cpus() -> list[int]:
    """CPUs of each alive node of the cluster this process is connected to."""
    import ray

    return [int(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node["Alive"]]


def task_plan(candidates: int, workers: int, cpus: list[int], chunk_size: int) -> tuple[int, int]:
    """(CPUs per task, candidates per task) for a cluster whose nodes have `cpus` CPUs."""
    largest = max(cpus, default=1) or 1
    per_task = min(workers or largest, largest)
    slots = max(1, sum(n // per_task for n in cpus))
    size = max(per_task, -(-candidates // (slots * CHUNKS_PER_SLOT)))
    return per_task, min(size, chunk_size)


def execute_on_ray(problems: dict[str, Problem], candidates: list[dict], config: SandboxConfig,
                   chunk_size: int = 256) -> list[dict]:
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False,
                 include_dashboard=False, configure_logging=False)
    per_task, size = task_plan(len(candidates), config.workers, node_cpus(), chunk_size)
    task = ray.remote(num_cpus=per_task)(_run_chunk)
    chunk_config = replace(config, backend="local", workers=per_task)
    needed = {c["name"] for c in candidates}
    shared = ray.put({name: problem for name, problem in problems.items() if name in needed})
    refs = [task.remote(shared, candidates[i : i + size], chunk_config) for i in range(0, len(candidates), size)]
    return [result for chunk in ray.get(refs) for result in chunk]
