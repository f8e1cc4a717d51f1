"""The README's Prefect section against a real Prefect server and process worker: deploy
from prefect.yaml, run 'self-training/manual' on the tiny profile, check what it left in
DVC and MLflow, that a second run re-runs nothing, and that appended problems re-run the
pipeline from the data stage on."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ..helpers import copy_worktree, descendants, sh
from .stack import free_port, start, stop

pytestmark = pytest.mark.integration
OVERRIDES = {"data.train": ["data/sources/extra.jsonl"], "data.train_limit": 0}


@pytest.fixture(scope="module")
def prefect(tmp_path_factory):
    """A real Prefect server with its own PREFECT_HOME, a process pool and worker, and the
    deployments from prefect.yaml; everything is stopped at the end."""
    root = tmp_path_factory.mktemp("prefect")
    repo = copy_worktree(root / "coderanker")
    from coderanker.jsonl import write_jsonl
    from coderanker.sources import starter

    write_jsonl(repo / "data" / "sources" / "extra.jsonl", [p.to_record() for p in starter("train")[:5]])
    sh(["git", "add", "-A"], repo)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "extra source"], repo)
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(root / "home"), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "INFO",
           # No scheduled runs: the nightly deployment firing at 02:00 UTC mid-test would add a run.
           "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PWD": str(repo)}
    env.pop("MLFLOW_TRACKING_URI", None)
    server = start(["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)], root / "server.log",
                   env, repo)
    worker = None
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, (root / "server.log").read_text()[-3000:]
                time.sleep(1)
        sh(["prefect", "work-pool", "create", "coderanker", "--type", "process"], repo, env)
        sh(["prefect", "--no-prompt", "deploy", "--all"], repo, env)
        worker = start(["prefect", "worker", "start", "--pool", "coderanker"], root / "worker.log", env, repo)
        yield repo, env, root / "worker.log"
    finally:
        if worker is not None:
            stop(worker)
        stop(server)


def run_manual(repo: Path, env: dict) -> str:
    return sh(["prefect", "deployment", "run", "self-training/manual", "--param", "profile=tiny",
               "--param", "rounds=1", "--param", f"overrides={json.dumps(OVERRIDES)}", "--watch"], repo, env)


def test_manual_run_then_no_change_then_new_problems(prefect):
    repo, env, worker_log = prefect
    out = run_manual(repo, env)
    assert "Completed" in out, out[-3000:]
    for round_id in ("r0", "r1"):
        assert json.loads((repo / "metrics" / f"{round_id}.json").read_text())["round"] == round_id
    assert (repo / "models" / "r1" / "reranker" / "model.safetensors").exists()
    lock = (repo / "dvc.lock").read_text()
    assert "evaluate@r1:" in lock and "ppo@r1:" in lock

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("coderanker")
    runs = client.search_runs([experiment.experiment_id], "tags.`coderanker.orchestrator` = 'prefect'")
    (parent,) = runs
    assert parent.info.status == "FINISHED"
    rounds = client.search_runs([experiment.experiment_id],
                                f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(r.data.tags["coderanker.round"] for r in rounds) == ["r0", "r1"]
    # The champion moves only on evidence; the decision and its figures are on the evaluate run.
    (evaluate,) = client.search_runs([experiment.experiment_id], "tags.`coderanker.stage` = 'evaluate' and "
                                     "tags.`coderanker.round` = 'r1'")
    assert evaluate.data.tags["coderanker.promotion_why"]

    # Nothing changed: no stage runs again.
    stamps = {p: p.stat().st_mtime_ns for p in (repo / "metrics").glob("*.json")}
    assert "Completed" in run_manual(repo, env)
    assert (repo / "dvc.lock").read_text() == lock
    assert {p: p.stat().st_mtime_ns for p in (repo / "metrics").glob("*.json")} == stamps
    assert "ran nothing (up to date)" in worker_log.read_text()

    # New problems appended to the training source: the pipeline re-runs from the data stage.
    from coderanker.sources import starter

    extra = repo / "data" / "sources" / "extra.jsonl"
    with extra.open("a") as handle:
        handle.write(json.dumps(starter("train")[5].to_record()) + "\n")
    before = len(worker_log.read_text())
    assert "Completed" in run_manual(repo, env)
    rerun = worker_log.read_text()[before:]
    assert "Running stage 'prepare_data'" in rerun and "Running stage 'train_reranker@r1'" in rerun
    assert "Running stage 'prepare_models'" not in rerun
    assert len((repo / "data" / "problems" / "train.jsonl").read_text().splitlines()) == 6

    # The evaluate flow scores a registered reranker (the champion by default) on executed candidates.
    versions = client.search_model_versions("name='coderanker-reranker'")
    newest = max(int(v.version) for v in versions)
    out = sh(["prefect", "deployment", "run", "evaluate/champion", "--param",
              f"reranker=models:/coderanker-reranker/{newest}", "--param",
              "results=data/r1/results/eval-starter.jsonl", "--watch"], repo, env)
    assert "Completed" in out, out[-3000:]


def test_nightly_deployment_carries_its_cron_schedule(prefect):
    repo, env, _ = prefect
    out = sh(["prefect", "deployment", "inspect", "self-training/nightly"], repo, env)
    assert "0 2 * * *" in out and "UTC" in out


def kill_workers() -> None:
    """SIGKILL every Prefect worker on this machine and its whole process tree (the flow run,
    `dvc repro`, the stage)."""
    workers = [int(line.split()[0]) for line in subprocess.run(["ps", "-eo", "pid,args"], capture_output=True,
               text=True).stdout.splitlines()[1:] if "prefect worker start" in line]
    for pid in [p for w in workers for p in [w, *descendants(w)]]:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    time.sleep(2)


def test_a_flow_run_whose_worker_dies_is_rerun_and_resumes_from_dvc(prefect):
    """SIGKILL the worker and its flow run's whole process tree part-way through a run (the
    training data changed, so the pipeline re-runs from the data stage; `mine@r0` is held by
    the failpoint before its outputs are in place, so the kill lands inside a stage); a new
    worker and a second run finish it without re-running a stage the dead run had finished,
    and the dead run's MLflow parent ends KILLED."""
    repo, env, worker_log = prefect
    from coderanker.sources import starter

    with (repo / "data" / "sources" / "extra.jsonl").open("a") as handle:
        handle.write(json.dumps(starter("train")[6].to_record()) + "\n")
    kill_workers()
    paused_log = worker_log.with_suffix(".paused.log")
    paused = start(["prefect", "worker", "start", "--pool", "coderanker"], paused_log,
                   {**env, "CODERANKER_PAUSE_BEFORE_COMMIT": "mine@r0"}, repo)
    try:
        sh(["prefect", "deployment", "run", "self-training/manual", "--param", "profile=tiny", "--param",
            "rounds=1", "--param", f"overrides={json.dumps(OVERRIDES)}"], repo, env)
        deadline = time.monotonic() + 1200
        while "mine@r0: paused before putting its outputs in place" not in paused_log.read_text():
            assert time.monotonic() < deadline, paused_log.read_text()[-3000:]
            assert paused.poll() is None, paused_log.read_text()[-3000:]
            time.sleep(0.5)
        finished = set(re.findall(r"Running stage '([^']+)'", paused_log.read_text())) - {"mine@r0"}
        assert {"prepare_data", "sample@r0", "execute@r0"} <= finished
        kill_workers()
    finally:
        stop(paused)
    worker = start(["prefect", "worker", "start", "--pool", "coderanker"], worker_log.with_suffix(".2.log"), env, repo)
    try:
        out = run_manual(repo, env)
        assert "Completed" in out, out[-3000:]
        rerun = worker_log.with_suffix(".2.log").read_text()
        again = finished & set(re.findall(r"Running stage '([^']+)'", rerun))
        assert not again, f"stages the dead run had finished ran again: {sorted(again)}"
        assert "Running stage 'mine@r0'" in rerun and "Running stage 'evaluate@r1'" in rerun
    finally:
        stop(worker)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("coderanker")
    parents = client.search_runs([experiment.experiment_id], "tags.`coderanker.orchestrator` = 'prefect'",
                                 order_by=["attributes.start_time ASC"])
    assert [p.info.status for p in parents[-2:]] == ["KILLED", "FINISHED"]
    assert not client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")


def test_one_run_of_a_pipeline_at_a_time_and_a_dead_holder_frees_its_slot(prefect):
    """The pipeline slot is a Prefect global concurrency limit on the server: a second
    process waits while the first holds it, and a holder killed with SIGKILL frees it when
    its lease runs out."""
    repo, env, _ = prefect
    holder = subprocess.Popen(
        [sys.executable, "-c", "import logging, sys; from tasks.dvc import pipeline_slot\n"
         f"with pipeline_slot({str(repo)!r}, logging.getLogger(), lease_s=60):\n"
         "    print('held', flush=True); sys.stdin.read()"],
        cwd=repo, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        waiter = ("import logging; from tasks.dvc import pipeline_slot\n"
                  f"with pipeline_slot({str(repo)!r}, logging.getLogger(), timeout_s={{}}):\n    print('got it')")
        refused = subprocess.run([sys.executable, "-c", waiter.format(5)], cwd=repo, env=env, capture_output=True,
                                 text=True)
        assert refused.returncode != 0 and "TimeoutError" in refused.stderr, refused.stderr[-2000:]
    finally:
        holder.kill()
        holder.wait()
    got = subprocess.run([sys.executable, "-c", waiter.format(240)], cwd=repo, env=env, capture_output=True, text=True)
    assert got.returncode == 0 and "got it" in got.stdout, got.stderr[-2000:]
