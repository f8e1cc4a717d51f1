"""Sandbox throughput of `--backend ray` against the local pool, in the same run: the same
candidates (each starter training problem's reference and a failing answer, hidden and
visible tests) through the local pool, a one-node Ray cluster with this machine's cores,
and a two-node cluster (tests/integration/ray_cluster.py: the head here, a node in its own
network namespace) with half of them each. Every setting runs as many sandboxes at once,
on the same cores, so the figures show what the Ray path costs, not what more machines give.

    .venv/bin/python -m benchmarks.ray_nodes [--repeat 3] [--problems 155]

Root only (network namespaces). While each cluster is up, local and Ray passes alternate,
so both see the same machine load, each setting after an untimed warm-up pass (Ray's
worker processes and the warm sandboxes start once per pipeline stage); medians are
reported, and every pass must give the same labels.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):  # run as a script: benchmarks/ray_nodes.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coderanker.executor import programs_per_candidate, run
from coderanker.problems import by_name
from coderanker.sandbox import SandboxConfig
from coderanker.sources import starter


def labels(results: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "duration_s"} for r in results]  # wall time: the one that varies


def one_pass(problems: dict, candidates: list[dict], config: SandboxConfig) -> tuple[float, list[dict]]:
    """Sandbox programs per second of one pass, and its labels."""
    programs = sum(programs_per_candidate(problems[c["name"]]) for c in candidates)
    quiet = (lambda: None) if config.backend == "local" else None  # no progress bar
    start = time.perf_counter()
    results = run(problems, candidates, config, quiet)
    return programs / (time.perf_counter() - start), labels(results)


def next_to_local(problems: dict, candidates: list[dict], config: SandboxConfig, repeat: int,
                  ) -> tuple[float, float, list[dict]]:
    """Median rate of the local pool and of `config` (a Ray cluster up now), passes alternating
    so that both see the same machine load, each after an untimed warm-up pass; and the
    labels, which every pass must share."""
    local_config = replace(config, backend="local")
    rates: dict[str, list[float]] = {"local": [], "ray": []}
    expected = one_pass(problems, candidates, local_config)[1]
    assert one_pass(problems, candidates, config)[1] == expected, "ray: labels differ from the local pool's"
    for _ in range(repeat):
        for name, setting in (("local", local_config), ("ray", config)):
            rate, got = one_pass(problems, candidates, setting)
            assert got == expected, f"{name}: labels differ from the first pass's"
            rates[name].append(rate)
    return statistics.median(rates["local"]), statistics.median(rates["ray"]), expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed passes of each setting (median reported)")
    parser.add_argument("--problems", type=int, default=155, help="first N starter training problems")
    args = parser.parse_args(argv)
    from tests.integration.ray_cluster import ray_cluster, unavailable

    cores = os.cpu_count() or 1
    if why := unavailable() or ("" if cores >= 2 else "needs 2 cores or more (a node gets half of them)"):
        print(f"benchmarks.ray_nodes: {why}", file=sys.stderr)
        return 1
    problems = by_name(starter("train")[: args.problems])
    bodies = [(name, body) for name, p in problems.items() for body in (p.reference, "    return None\n")]
    candidates = [{"name": name, "completion": body, "sample": i} for i, (name, body) in enumerate(bodies)]
    config = SandboxConfig(backend="ray", workers=0)  # a task per node's worth of CPUs; local: one per core
    local, on_ray = {}, {}
    for nodes in (1, 2):
        with ray_cluster(nodes=nodes, cpus_per_node=cores // nodes) as address:
            os.environ["RAY_ADDRESS"] = address
            try:
                local[nodes], on_ray[nodes], expected = next_to_local(problems, candidates, config, args.repeat)
            finally:
                del os.environ["RAY_ADDRESS"]
    programs = sum(programs_per_candidate(problems[c["name"]]) for c in candidates)
    passed = sum(r["status"] == "passed" for r in expected)
    half = cores // 2
    print(f"machine: {cores} cores; {len(candidates)} candidates of {len(problems)} starter problems ({programs} "
          f"sandbox programs, {passed} candidates passed); median of {args.repeat} passes after a warm-up, "
          "local and Ray passes alternating")
    print(f"local pool ({cores} workers): {local[1]:.1f} executions/s next to the 1-node cluster, "
          f"{local[2]:.1f} next to the 2-node one")
    print(f"ray, 1 node ({cores} CPUs: one task of {cores} sandboxes at a time): {on_ray[1]:.1f} executions/s")
    print(f"ray, 2 nodes ({half} CPU(s) each, the second in its own network namespace: "
          f"two tasks of {half} sandbox(es) at a time): {on_ray[2]:.1f} executions/s")
    print(f"ratios: ray 1 node / local {on_ray[1] / local[1]:.2f}x; ray 2 nodes / local {on_ray[2] / local[2]:.2f}x; "
          f"2 nodes / 1 node, each against its local passes {on_ray[2] / local[2] / (on_ray[1] / local[1]):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
