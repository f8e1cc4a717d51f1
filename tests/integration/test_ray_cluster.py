"""A real two-node Ray cluster (tests/integration/ray_cluster.py: the head here, a second
node in its own network namespace, 1 CPU each), reached through RAY_ADDRESS: the sandbox
fan-out gives the local backend's records and runs on both nodes; Ray Train puts one worker
on each node and they train together over the network."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from coderanker.executor import run
from coderanker.problems import by_name
from coderanker.sandbox import SandboxConfig
from coderanker.sources import starter
from tests.integration.ray_cluster import ClusterUnavailable, nodes_that_ran_tasks, two_node_cluster, unavailable

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    pytest.importorskip("ray")
    if why := unavailable():
        pytest.skip(f"two-node Ray cluster: {why}")
    try:
        with two_node_cluster(cpus_per_node=1) as address:
            yield address
    except ClusterUnavailable as err:
        pytest.skip(f"two-node Ray cluster: {err}")


def candidates_of(problems: dict) -> list[dict]:
    """Each problem's reference and wrong answers of every kind (failing, raising, not
    compiling), plus a program that never ends and one that exhausts its memory."""
    wrong = ("    return None\n", "    raise ValueError('no idea')\n", "    return (\n")
    bodies = [(name, body) for name, p in problems.items() for body in (p.reference, *wrong)]
    first = next(iter(problems))
    bodies += [(first, "    while True:\n        pass\n"), (first, "    x = bytearray(2**34)\n    return x\n")]
    return [{"name": name, "completion": body, "sample": i} for i, (name, body) in enumerate(bodies)]


def labels(results: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "duration_s"} for r in results]  # wall time: the one field that varies


def task_nodes(address: str, function: str, tasks: int, timeout_s: float = 60.0) -> dict[str, int]:
    """Finished `function` tasks per node, once all `tasks` have reached Ray's state API
    (task events arrive a moment after a task ends) or timeout_s has passed."""
    deadline = time.monotonic() + timeout_s
    while sum((per_node := nodes_that_ran_tasks(address, function)).values()) < tasks and time.monotonic() < deadline:
        time.sleep(1)
    return per_node


def test_fan_out_matches_local_and_runs_on_both_nodes(cluster, monkeypatch):
    import ray

    from coderanker.sandbox.ray_backend import task_plan

    monkeypatch.setenv("RAY_ADDRESS", cluster)
    problems = by_name(starter("eval")[:24])
    candidates = candidates_of(problems)
    # the endless loop ends by its 1 s of CPU time on either backend: with the CPU-time and
    # wall-clock limits equal (2 s each) a loaded machine let the wall clock win locally
    # (exit -9, "wall-clock limit") and the CPU time on Ray (-24), and the labels differed
    config = SandboxConfig(timeout_s=4.0, cpu_s=1)
    on_ray = run(problems, candidates, replace(config, backend="ray"))
    assert ray.get_runtime_context().gcs_address == cluster
    nodes = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
    assert len(nodes) == 2, nodes
    local = run(problems, candidates, replace(config, workers=2))
    assert labels(on_ray) == labels(local)
    assert [list(r) for r in on_ray] == [list(r) for r in local]  # the same fields in the same order
    statuses = [r["status"] for r in local]
    assert statuses[:4] == ["passed", "failed", "failed", "compile_error"], statuses[:4]
    assert statuses[-2:] == ["timeout", "memory_exceeded"], statuses[-2:]
    _, size = task_plan(len(candidates), 0, [1, 1], 256)
    chunks = -(-len(candidates) // size)
    ran_on = task_nodes(cluster, "_run_chunk", chunks)
    assert sum(ran_on.values()) == chunks
    assert set(ran_on) == set(nodes), ran_on  # every chunk task ran, and each node ran some


def where_workers_train(config: dict) -> None:
    """A Ray Train worker: one all-reduce over torch.distributed (Gloo, across the nodes),
    then rank 0 reports every rank's node and the sum as its checkpoint."""
    import tempfile

    import ray
    import ray.train
    import torch
    import torch.distributed as dist

    rank = ray.train.get_context().get_world_rank()
    nodes = [None] * dist.get_world_size()
    dist.all_gather_object(nodes, ray.get_runtime_context().get_node_id())
    total = torch.tensor([float(rank + 1)])
    dist.all_reduce(total)
    metrics = {"sum": total.item()}
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "nodes.json").write_text(json.dumps(nodes))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def test_ray_train_puts_a_worker_on_each_node(cluster, monkeypatch, tmp_path):
    import ray

    from coderanker.training.ray_train import RayTrainConfig, fit

    monkeypatch.setenv("RAY_ADDRESS", cluster)
    metrics = fit(where_workers_train, {}, tmp_path / "out", RayTrainConfig(num_workers=2, cpus_per_worker=1),
                  name="two_nodes")
    assert metrics["sum"] == 3.0  # 1 + 2: both ranks took part
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    trained_on = json.loads((tmp_path / "out" / "nodes.json").read_text())
    assert sorted(trained_on) == sorted(nodes)


def test_tasks_sharing_a_machine_get_their_own_sandbox_uids():
    """Two Ray nodes on one machine (or two tasks on one node) each run a local pool whose
    slots are uid_base + slot: each process holds its own block, so no two programs that run
    at once share a uid (and with it an RLIMIT_NPROC count)."""
    import os

    from coderanker.sandbox.ray_backend import claim_uids

    if os.geteuid() != 0:
        pytest.skip("sandbox uids are per slot only as root")
    base = 63_000  # not the default 61000 that running pipelines use
    first, held = claim_uids(base, 2)
    second, others = claim_uids(base, 2)
    assert set(range(first, first + 2)).isdisjoint(range(second, second + 2))
    for handle in held:
        handle.close()
    again, held = claim_uids(base, 2)
    assert again == first  # a block is free again once its holder lets go (or ends)
    for handle in held + others:
        handle.close()
