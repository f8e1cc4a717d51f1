"""MLflow tracking: one experiment, a parent run per pipeline run, a nested run per round,
and under it one per stage; the reranker registry and its `champion` alias.

Stages are separate processes (DVC runs each one), so runs are addressed by id and tags
through MlflowClient, never through MLflow's per-process active-run stack:
- the parent run is CODERANKER_PARENT_RUN_ID when an orchestrator (the Prefect flow) owns
  it, else the RUNNING pipeline run of this git commit, else a new one (plain `dvc repro`);
- a round run is the parent's child tagged with that round, created on first use;
- the last round's evaluate stage ends the round and, unless an orchestrator owns it, the parent.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)
EXPERIMENT = "coderanker"
REGISTERED_RERANKER = "coderanker-reranker"
CHAMPION = "champion"
PARENT_ENV = "CODERANKER_PARENT_RUN_ID"
PROMOTE_ENV = "CODERANKER_PROMOTE"  # "0": register rerankers, leave `champion` to the orchestrator
KIND, ROUND, STAGE = "coderanker.kind", "coderanker.round", "coderanker.stage"
PARENT_TAG = "mlflow.parentRunId"


def tracking_uri(root: str | os.PathLike = ".") -> str:
    """MLFLOW_TRACKING_URI, else a SQLite database at an absolute path in the project root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path(root) / 'mlflow.db').resolve()}"


def client(root: str | os.PathLike = "."):
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri(root))
    return MlflowClient(tracking_uri(root))


def experiment_id(mlflow_client, name: str | None = None) -> str:
    name = name or os.environ.get("CODERANKER_EXPERIMENT", EXPERIMENT)
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifacts = None
    uri = mlflow_client.tracking_uri
    if uri.startswith("sqlite:"):  # keep artifacts beside the database, absolute
        artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return mlflow_client.create_experiment(name, artifact_location=artifacts)


def git_commit(root: str | os.PathLike = ".") -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout
        return commit.strip() + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def dvc_lock_hashes(paths: list[str | os.PathLike]) -> dict[str, str]:
    """md5 of each path as dvc.lock records it for the stage that produced it."""
    import yaml

    lock = Path("dvc.lock")
    if not lock.exists():
        return {}
    outs = {}
    for stage in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).values():
        for out in stage.get("outs", []):
            outs[out["path"]] = out.get("md5", "")
    wanted = {str(Path(p)) for p in paths}
    found = {}
    for path, md5 in outs.items():
        for want in wanted:
            if want == path or want.startswith(path + "/"):
                found[f"dvc.md5.{want}"] = md5
    return found


def _find_or_create_parent(mlflow_client, exp: str) -> str:
    if os.environ.get(PARENT_ENV):
        return os.environ[PARENT_ENV]
    commit = git_commit()
    runs = mlflow_client.search_runs(
        [exp], f"tags.`{KIND}` = 'pipeline' and tags.`coderanker.git_commit` = '{commit}' "
        "and attributes.status = 'RUNNING'", order_by=["attributes.start_time DESC"], max_results=1)
    if runs:
        return runs[0].info.run_id
    run = mlflow_client.create_run(exp, run_name=f"pipeline {time.strftime('%Y-%m-%d %H:%M')}",
                                   tags={KIND: "pipeline", "coderanker.git_commit": commit})
    return run.info.run_id


def _find_or_create_round(mlflow_client, exp: str, parent: str, round_id: str) -> str:
    runs = mlflow_client.search_runs(
        [exp], f"tags.`{PARENT_TAG}` = '{parent}' and tags.`{KIND}` = 'round' and tags.`{ROUND}` = '{round_id}'",
        max_results=1)
    if runs:
        return runs[0].info.run_id
    run = mlflow_client.create_run(exp, run_name=round_id,
                                   tags={PARENT_TAG: parent, KIND: "round", ROUND: round_id})
    return run.info.run_id


class StageRun:
    """A stage's MLflow run, logged through the client."""

    def __init__(self, mlflow_client, run_id: str, round_run_id: str, parent_run_id: str):
        self.client, self.run_id = mlflow_client, run_id
        self.round_run_id, self.parent_run_id = round_run_id, parent_run_id

    def log_params(self, params: dict, prefix: str = "") -> None:
        from mlflow.entities import Param

        flat = _flatten(params, prefix)
        items = [Param(k[:250], str(v)[:6000]) for k, v in flat.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: dict, step: int = 0, run_id: str | None = None, prefix: str = "") -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        rows = [Metric(k, float(v), now, step) for k, v in _flatten(metrics, prefix).items()
                if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
        for start in range(0, len(rows), 500):
            self.client.log_batch(run_id or self.run_id, metrics=rows[start : start + 500])

    def log_curves(self, history: list[dict], prefix: str = "") -> None:
        """Per-step training curves from a Trainer's log_history."""
        for entry in history:
            step = int(entry.get("step", 0))
            self.log_metrics({k: v for k, v in entry.items() if k not in ("step", "epoch")}, step, prefix=prefix)

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        if Path(path).is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_dict(self, data, name: str) -> None:
        self.client.log_dict(self.run_id, data, name)

    def log_figure(self, figure, name: str) -> None:
        self.client.log_figure(self.run_id, figure, name)

    def set_tags(self, tags: dict) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def end_round(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.round_run_id, status)

    def end_pipeline(self, status: str = "FINISHED") -> None:
        if not os.environ.get(PARENT_ENV):  # an orchestrator that owns the parent ends it
            self.client.set_terminated(self.parent_run_id, status)


def _flatten(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        elif name.endswith("_ci95") and isinstance(value, list | tuple) and len(value) == 2:  # [low, high]
            flat[f"{name}_low".replace("@", "_at_")], flat[f"{name}_high".replace("@", "_at_")] = value
        else:
            flat[name.replace("@", "_at_")] = value
    return flat


@contextmanager
def stage_run(stage: str, round_id: str, params: dict | None = None, inputs: list | None = None):
    """A nested MLflow run for one stage of one round; FAILED if the body raises."""
    mlflow_client = client()
    exp = experiment_id(mlflow_client)
    parent = _find_or_create_parent(mlflow_client, exp)
    round_run = _find_or_create_round(mlflow_client, exp, parent, round_id)
    tags = {PARENT_TAG: round_run, KIND: "stage", STAGE: stage, ROUND: round_id,
            "coderanker.git_commit": git_commit(), **dvc_lock_hashes(inputs or [])}
    run = mlflow_client.create_run(exp, run_name=f"{stage}@{round_id}", tags=tags)
    stage_run_ = StageRun(mlflow_client, run.info.run_id, round_run, parent)
    if params:
        stage_run_.log_params(params)
    try:
        yield stage_run_
    except BaseException:
        mlflow_client.set_terminated(run.info.run_id, "FAILED")
        raise
    mlflow_client.set_terminated(run.info.run_id, "FINISHED")


def register_reranker(stage: StageRun, source_run_id: str, reranked_pass_at_1: float | None, round_id: str):
    """Register the reranker logged by `source_run_id` (artifact path `reranker`) and move
    `champion` to it only if it beats the current champion's reranked pass@1 on eval."""
    from mlflow.exceptions import MlflowException

    mlflow_client = stage.client
    try:
        mlflow_client.get_registered_model(REGISTERED_RERANKER)
    except MlflowException:
        mlflow_client.create_registered_model(REGISTERED_RERANKER)
    source = f"{mlflow_client.get_run(source_run_id).info.artifact_uri}/reranker"
    score = -1.0 if reranked_pass_at_1 is None else reranked_pass_at_1
    version = mlflow_client.create_model_version(
        REGISTERED_RERANKER, source, run_id=source_run_id,
        tags={"reranked_pass_at_1": str(score), ROUND: round_id, "coderanker.git_commit": git_commit()})
    promoted = os.environ.get(PROMOTE_ENV, "1") != "0" and promote_if_better(mlflow_client, version.version, score)
    stage.set_tags({"coderanker.reranker_version": version.version, "coderanker.promoted": promoted})
    return version.version, promoted


def promote_if_better(mlflow_client, version: str, score: float) -> bool:
    """Move `champion` to `version` when it beats the champion's score (or there is none)."""
    from mlflow.exceptions import MlflowException

    try:
        champion = mlflow_client.get_model_version_by_alias(REGISTERED_RERANKER, CHAMPION)
        best = float(champion.tags.get("reranked_pass_at_1", "-1"))
    except MlflowException:
        champion, best = None, -math.inf
    if champion is not None and score <= best:
        log.info("reranker v%s (%.3f) does not beat champion v%s (%.3f)", version, score, champion.version, best)
        return False
    mlflow_client.set_registered_model_alias(REGISTERED_RERANKER, CHAMPION, version)
    log.info("reranker v%s is the new champion (%.3f > %.3f)", version, score, best)
    return True


def read_json(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text())
