"""Fan execution out over Ray: each task runs a chunk on one node's sandbox pool.

`ray.init()` joins the cluster named by RAY_ADDRESS, or starts a local one."""

from __future__ import annotations

import os
from dataclasses import replace

from coderanker.problems import Problem
from coderanker.sandbox.config import SandboxConfig


def _run_chunk(problems: dict[str, Problem], candidates: list[dict], config: SandboxConfig) -> list[dict]:
    # What the local backend runs (hidden and visible tests in one batch), so both give the same fields.
    from coderanker.executor import execute_candidates

    return execute_candidates(problems, candidates, config)


def execute_on_ray(problems: dict[str, Problem], candidates: list[dict], config: SandboxConfig,
                   chunk_size: int = 256) -> list[dict]:
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False,
                 include_dashboard=False, configure_logging=False)
    # Each task owns the cores it asks for and runs that many sandboxes at once.
    per_task = max(1, min(config.effective_workers(), int(ray.cluster_resources().get("CPU", 1))))
    task = ray.remote(num_cpus=per_task)(_run_chunk)
    chunk_config = replace(config, backend="local", workers=per_task)
    needed = {c["name"] for c in candidates}
    shared = ray.put({name: problem for name, problem in problems.items() if name in needed})
    refs = [task.remote(shared, candidates[i : i + chunk_size], chunk_config)
            for i in range(0, len(candidates), chunk_size)]
    return [result for chunk in ray.get(refs) for result in chunk]
