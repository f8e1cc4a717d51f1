"""The multi-node mode, with real servers on this machine: PostgreSQL under MLflow and
Prefect servers, a DVC remote over SSH, a two-node Ray cluster (the second node in its own
network namespace), and a Prefect worker that shares no disk with the deploying checkout:
it clones the repository at the deployed commit for each flow run."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest

from ..helpers import copy_worktree, sh
from . import ray_cluster
from .stack import VENV_BIN, free_port, mlflow_server, postgres, prefect_server, ssh_remote, start, stop

pytestmark = pytest.mark.integration
# Ray Train's workers and the sandbox's tasks must each fit on one 1-CPU node.
OVERRIDES = {"execute.backend": "ray", "ray.cpus_per_worker": 1}


def rest(url: str, path: str, body: dict | None = None) -> dict:
    """MLflow's REST API (what a user's client sees), GET or POST."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/api/2.0/mlflow/{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def git(repo: Path, *args: str) -> str:
    return sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], repo).strip()


def test_tiny_pipeline_on_servers_a_ray_cluster_and_a_dvc_remote_from_a_cloned_repository(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    repo = copy_worktree(tmp_path / "checkout")
    with ExitStack() as stack:
        db = stack.enter_context(postgres(logs))
        mlflow_url = stack.enter_context(mlflow_server(db, tmp_path / "artifacts", logs))
        prefect_env = stack.enter_context(prefect_server(db, tmp_path / "prefect-home", logs))
        remote = stack.enter_context(ssh_remote(tmp_path / "ssh", logs))
        ray_address = stack.enter_context(ray_cluster.two_node_cluster(logs))

        # The repository the workers clone: its default DVC remote is committed with it.
        sh(["dvc", "remote", "add", "-d", "storage", remote.url], repo)
        sh(["dvc", "remote", "modify", "storage", "keyfile", str(remote.keyfile)], repo)
        git(repo, "add", ".dvc/config")
        git(repo, "commit", "-qm", "DVC remote")
        origin = tmp_path / "origin.git"
        sh(["git", "clone", "-q", "--bare", str(repo), str(origin)], tmp_path)
        commit = git(repo, "rev-parse", "HEAD")

        deploy_env = {**prefect_env, "CODERANKER_GIT_URL": origin.as_uri(), "CODERANKER_GIT_COMMIT": commit}
        sh(["prefect", "work-pool", "create", "coderanker-cluster", "--type", "process"], repo, deploy_env)
        sh(["prefect", "--no-prompt", "deploy", "--prefect-file", "infra/prefect-cluster.yaml", "--name", "cluster"],
           repo, deploy_env)
        # The worker runs elsewhere: an empty directory, settings from its environment only.
        worker_home = tmp_path / "worker-host"
        worker_home.mkdir()
        worker_env = {**prefect_env, "MLFLOW_TRACKING_URI": mlflow_url, "RAY_ADDRESS": ray_address,
                      # Ray's token authentication as the cluster has it (see ray_cluster.ray_cluster):
                      # on if a Ray driver earlier in this process turned it on; the token is ~/.ray's.
                      "RAY_AUTH_MODE": ray_cluster.auth_mode()}
        worker = start([str(VENV_BIN / "prefect"), "worker", "start", "--pool", "coderanker-cluster"],
                       logs / "worker.log", env=worker_env, cwd=worker_home)
        stack.callback(stop, worker)

        out = sh(["prefect", "deployment", "run", "self-training/cluster", "--param", "profile=tiny",
                  "--param", "rounds=1", "--param", f"overrides={json.dumps(OVERRIDES)}", "--watch"],
                 tmp_path, prefect_env)
        assert "Completed" in out, (out[-3000:], (logs / "worker.log").read_text()[-5000:])
        run_name = re.search(r"Created flow run '([^']+)'", out).group(1)
        worker_log = (logs / "worker.log").read_text()
        assert "Running stage 'evaluate@r1'" in worker_log
        assert not list(worker_home.rglob("mlflow.db")), "the worker fell back to a local MLflow store"

        # MLflow: the runs, their metrics and the registered reranker, read over REST.
        experiment = rest(mlflow_url, "experiments/get-by-name?experiment_name=coderanker")["experiment"]
        runs = rest(mlflow_url, "runs/search", {"experiment_ids": [experiment["experiment_id"]],
                                                "max_results": 500})["runs"]
        tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
        stages = {(t.get("coderanker.stage"), t.get("coderanker.round")) for t in tags}
        assert {("evaluate", "r1"), ("train_reranker", "r1"), ("ppo", "r1")} <= stages
        (evaluate,) = [r for r, t in zip(runs, tags, strict=True)
                       if t.get("coderanker.stage") == "evaluate" and t.get("coderanker.round") == "r1"]
        keys = {m["key"] for m in evaluate["data"]["metrics"]}
        assert any(k.endswith(".reranked_pass_at_1") for k in keys), sorted(keys)  # MLflow keys: @ as _at_
        assert any(k.startswith("seconds.") for k in keys), sorted(keys)
        model = rest(mlflow_url, "registered-models/get?name=coderanker-reranker")["registered_model"]
        assert model["latest_versions"]
        # Proxied artifacts: they went through the server into its destination.
        assert list((tmp_path / "artifacts").rglob("model.safetensors"))

        # Both Ray nodes did work: the execute stages' sandbox tasks spread over the cluster.
        assert len(ray_cluster.nodes_that_ran_tasks(ray_address, "_run_chunk")) == 2

        # DVC: the run pushed its outputs and its lock; a second clone pulls and has nothing to run.
        branch = f"coderanker-runs/{run_name}"
        second = tmp_path / "second-clone"
        sh(["git", "clone", "-q", "--branch", branch, origin.as_uri(), str(second)], tmp_path)
        assert json.loads((second / "metrics" / "r1.json").read_text())["round"] == "r1"
        sh(["dvc", "pull"], second)
        repro = sh(["dvc", "repro"], second, {"MLFLOW_TRACKING_URI": mlflow_url, "RAY_ADDRESS": ray_address})
        assert "Running stage" not in repro, repro[-3000:]
        assert (second / "models" / "r1" / "reranker" / "model.safetensors").exists()

        # The served reranker answers scoring requests for (prompt, completion) rows.
        version = max(int(v["version"]) for v in model["latest_versions"])
        port = free_port()
        serve_env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_url, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
        server = start([str(VENV_BIN / "mlflow"), "models", "serve", "-m", f"models:/coderanker-reranker/{version}",
                        "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                       logs / "serve.log", env=serve_env, cwd=tmp_path)
        stack.callback(stop, server)
        rows = {"dataframe_records": [{"prompt": "def add(a, b):\n", "completion": "    return a + b\n"},
                                      {"prompt": "def add(a, b):\n", "completion": "    return a - b\n"}]}
        scores = _invoke(f"http://127.0.0.1:{port}/invocations", rows, logs / "serve.log")
        assert len(scores) == 2 and all(isinstance(s, float) for s in scores)


def _invoke(url: str, body: dict, log: Path, timeout_s: float = 300) -> list[float]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                answer = json.loads(response.read())
            predictions = answer["predictions"] if isinstance(answer, dict) else answer
            return [float(p["score"]) if isinstance(p, dict) else float(p) for p in predictions]
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(2)

