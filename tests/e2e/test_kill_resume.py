"""Kill and resume: the tiny pipeline is SIGKILLed (the whole `dvc repro` process tree) in
one stage of every kind, each time part-way (its outputs written, not yet in place, its
MLflow run open), and resumed with `dvc repro`. Each resume must not re-run a stage that
had finished, must not accept partial output, and must end the dead MLflow runs as KILLED
without nesting under them; the last resume must end with exactly the outputs (DVC hashes)
and metrics of the uninterrupted run in `tiny_repo`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ..helpers import copy_worktree, descendants, differing_files, differing_outputs, lock_outs, lock_stages, sh

pytestmark = pytest.mark.e2e
PAUSE_ENV = "CODERANKER_PAUSE_BEFORE_COMMIT"
# (stage address, its output) in the order DVC reaches them: one stage of every kind.
KILLS = [("prepare_models", "models/seed"), ("prepare_data", "data/problems"),
         ("sample@r0", "data/r0/candidates"), ("execute@r0", "data/r0/results"), ("mine@r0", "data/r0/pairs"),
         ("train_reranker@r0", "models/r0/reranker"), ("ppo@r1", "models/r1/policy"),
         ("mine@r1", "data/r1/pairs"), ("evaluate@r0", "data/r0/scored")]  # DVC evaluates after training
RUNNING = re.compile(r"Running stage '([^']+)'")


def environment(pause: str | None) -> dict:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop(PAUSE_ENV, None)
    if pause:
        env[PAUSE_ENV] = pause
    return env


def repro_until_paused(repo: Path, address: str, timeout_s: float = 900) -> list[str]:
    """`dvc repro` until `address` pauses with its outputs unplaced; then SIGKILL the whole
    tree (DVC, the stage, Ray). Returns the stages DVC started."""
    process = subprocess.Popen(["dvc", "repro"], cwd=repo, env=environment(address), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines: list[str] = []
    paused = threading.Event()

    def read():
        for line in process.stdout:
            lines.append(line)
            if f"{address}: paused before putting its outputs in place" in line:
                paused.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout_s
    while not paused.is_set() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert paused.is_set(), f"{address} never paused:\n{''.join(lines)[-4000:]}"
    for pid in [process.pid, *descendants(process.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=60)
    reader.join(timeout=10)
    return RUNNING.findall("".join(lines))


def mlflow_runs(repo: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("coderanker")
    return client.search_runs([experiment.experiment_id], max_results=1000) if experiment else []


def without_seconds(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "seconds"}


def test_killed_in_every_kind_of_stage_then_resumed(tmp_path, tiny_repo):
    repo = copy_worktree(tmp_path / "coderanker")
    sh(["coderanker", "profile", "use", "tiny"], repo)
    finished: set[str] = set()
    dying: set[str] = set()
    for address, out in KILLS:
        locked = lock_stages(repo).get(address)  # the clone's committed entry, if any
        started = repro_until_paused(repo, address)
        # Nothing that had finished ran again; the run went straight on to the next stages.
        assert not finished & set(started), (address, sorted(finished & set(started)))
        assert started[-1] == address, started
        finished |= set(started[:-1])
        # The killed stage's outputs were written but never put in place, nor recorded.
        assert not (repo / out).exists(), f"{address}: partial output {out} was accepted"
        assert (repo / out).parent.joinpath(f".{Path(out).name}.partial").is_dir()
        assert lock_stages(repo).get(address) == locked, f"{address}: dvc.lock recorded a killed stage"
        status = sh(["dvc", "status", address], repo)
        assert "changed" in status or "deleted" in status or "modified" in status, status
        runs = mlflow_runs(repo)
        status = {r.info.run_id: r.info.status for r in runs}
        if not address.startswith("prepare_"):  # this run's first stage ended the last run's dead ones
            assert all(status[i] == "KILLED" for i in dying), [
                (r.info.run_name, r.info.status) for r in runs if r.info.run_id in dying]
        dying = {i for i, state in status.items() if state == "RUNNING"}  # the killed run's
        for run in runs:  # nothing nests under a dead pipeline run
            if run.data.tags.get("coderanker.kind") == "round" and run.info.status == "RUNNING":
                assert status[run.data.tags["mlflow.parentRunId"]] == "RUNNING", (address, run.info.run_name)
    out = sh(["dvc", "repro"], repo)
    assert not finished & set(RUNNING.findall(out)), sorted(finished & set(RUNNING.findall(out)))

    # The resumed pipeline ends exactly where the uninterrupted one did.
    assert set(lock_outs(tiny_repo)) == set(lock_outs(repo))
    differ = differing_outputs(repo, tiny_repo)
    assert not differ, f"outputs differ from the uninterrupted run: {differing_files(repo, tiny_repo, differ)}"
    for round_id in ("r0", "r1", "r2"):
        ours = json.loads((repo / "metrics" / f"{round_id}.json").read_text())
        theirs = json.loads((tiny_repo / "metrics" / f"{round_id}.json").read_text())
        assert without_seconds(ours) == without_seconds(theirs), round_id
    assert not list(repo.rglob("*.partial")), "a finished pipeline leaves no staging directories"

    # MLflow: every dead run is KILLED, no run is left RUNNING, and the final pipeline run
    # is a new one, FINISHED, under which every round of the last resume nests.
    runs = mlflow_runs(repo)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    parents = sorted((r for r in runs if r.data.tags.get("coderanker.kind") == "pipeline"),
                     key=lambda r: r.info.start_time)
    assert [r.info.status for r in parents] == ["KILLED"] * (len(parents) - 1) + ["FINISHED"]
    assert all(r.info.run_id not in dying for r in parents[-1:])
    killed_stages = {(r.data.tags["coderanker.stage"], r.data.tags["coderanker.round"]) for r in runs
                     if r.data.tags.get("coderanker.kind") == "stage" and r.info.status == "KILLED"}
    assert {a for a, _ in KILLS if "@" in a} == {f"{s}@{r}" for s, r in killed_stages}
