"""Champion promotion on evidence, and MLflow runs whose process died: against a real MLflow
(SQLite) for the registry and the reaping, by hand-computed cases for the decision."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from coderanker import tracking


def evidence(top1: list[float], rates: list[float], eval_hash: str = "h1") -> dict:
    names = [f"p{i}" for i in range(len(top1))]
    return {"eval_hash": eval_hash, "reranked_pass@1": sum(top1) / len(top1),
            "top1_pass": dict(zip(names, top1, strict=True)), "pass_rate": dict(zip(names, rates, strict=True))}


def test_first_version_needs_a_gain_over_random_whose_interval_excludes_zero():
    strong = evidence([1.0] * 8, [0.25] * 8)
    decision = tracking.promotion_decision(strong, None)
    assert decision["promote"] and decision["against"] == "random pick"
    assert decision["gain"] == pytest.approx(0.75) and decision["gain_ci95"] == pytest.approx([0.75, 0.75])
    noisy = evidence([1, 0, 1, 0, 0, 1, 0, 0], [0.5] * 8)  # mean gain -0.125: chance
    assert not tracking.promotion_decision(noisy, None)["promote"]


def test_a_challenger_must_beat_the_champion_on_the_same_eval_set():
    champion = evidence([1, 0, 0, 0, 1, 0, 0, 0, 0, 0], [0.2] * 10)
    better = evidence([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], [0.2] * 10)
    decision = tracking.promotion_decision(better, champion)
    assert decision["promote"] and decision["against"] == "champion" and decision["problems"] == 10
    assert decision["gain"] == pytest.approx(0.6) and decision["gain_ci95"][0] > 0
    slightly = evidence([1, 1, 0, 0, 1, 0, 0, 0, 0, 0], [0.2] * 10)  # one problem more: noise
    assert not tracking.promotion_decision(slightly, champion)["promote"]
    elsewhere = evidence([1] * 10, [0.2] * 10, eval_hash="h2")
    refused = tracking.promotion_decision(elsewhere, champion)
    assert not refused["promote"] and "different eval set" in refused["why"]


def test_a_challenger_must_pick_from_pools_of_the_champion_s_size():
    champion = evidence([1, 0, 0, 0, 1, 0, 0, 0, 0, 0], [0.2] * 10)
    better = evidence([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], [0.2] * 10)
    assert tracking.promotion_decision({**better, "pool_size": 20}, champion)["promote"]  # before pool_size
    assert tracking.promotion_decision({**better, "pool_size": 20}, {**champion, "pool_size": 20})["promote"]
    refused = tracking.promotion_decision({**better, "pool_size": 40}, {**champion, "pool_size": 20})
    assert not refused["promote"] and "pools of another size (40 vs the champion's 20)" in refused["why"]


@pytest.fixture
def mlflow_db(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def register(round_id: str, proof: dict) -> tuple[str, bool]:
    with tracking.stage_run("evaluate", round_id) as run:
        run.log_artifact(__file__, "reranker")  # stands in for the model directory
        return tracking.register_reranker(run, run.run_id, proof, round_id)


def test_the_registry_moves_champion_only_on_evidence_and_logs_why(mlflow_db):
    assert register("r0", evidence([1, 0, 1, 0, 0, 1, 0, 0], [0.5] * 8)) == (1, False)
    assert register("r1", evidence([1.0] * 8, [0.25] * 8)) == (2, True)
    assert register("r2", evidence([1, 1, 1, 1, 1, 1, 1, 0], [0.25] * 8)) == (3, False)
    client = tracking.client()
    assert client.get_model_version_by_alias(tracking.REGISTERED_RERANKER, tracking.CHAMPION).version == 2
    runs = {r.data.tags["coderanker.round"]: r for r in client.search_runs(
        [tracking.experiment_id(client)], "tags.`coderanker.stage` = 'evaluate'")}
    assert runs["r1"].data.tags["coderanker.promotion"] == "promoted"
    assert runs["r1"].data.metrics["promotion.gain_ci95_low"] == pytest.approx(0.75)
    assert runs["r2"].data.tags["coderanker.promotion"] == "kept champion"
    assert "not shown to be better" in runs["r2"].data.tags["coderanker.promotion_why"]


def test_a_run_whose_process_was_killed_is_marked_killed_and_never_a_parent(mlflow_db):
    script = textwrap.dedent("""
        import os, sys, time
        from coderanker import tracking
        with tracking.stage_run("sample", "r0") as run:
            print(run.run_id, run.parent_run_id, flush=True)
            time.sleep(600)
    """)
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + str(tracking.Path(tracking.__file__).parents[1])}
    process = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    run_id, parent_id = process.stdout.readline().split()
    client = tracking.client()
    assert client.get_run(run_id).info.status == "RUNNING"
    process.send_signal(signal.SIGKILL)
    process.wait()
    with tracking.stage_run("sample", "r0") as run:  # the next stage to start
        assert run.parent_run_id != parent_id
    assert client.get_run(run_id).info.status == "KILLED"
    assert client.get_run(parent_id).info.status == "KILLED"
    assert client.get_run(run_id).data.tags["coderanker.ended_by"] == "owner process gone"
