"""Prefect tasks around MLflow: the flow's parent run, round metrics, champion promotion."""

from __future__ import annotations

import json
import os
from pathlib import Path

from prefect import task


@task
def open_parent_run(repo: str, name: str, params: dict) -> str:
    """The flow run's parent MLflow run; stages nest under it via CODERANKER_PARENT_RUN_ID."""
    from coderanker import tracking

    client = tracking.client(repo)
    run = client.create_run(tracking.experiment_id(client), run_name=name,
                            tags={tracking.KIND: "pipeline", "coderanker.git_commit": tracking.git_commit(repo),
                                  "coderanker.orchestrator": "prefect",
                                  # a flow process that dies leaves it RUNNING: the next stage marks it KILLED
                                  tracking.OWNER: tracking.process_key(os.getpid())})
    tracking.StageRun(client, run.info.run_id, run.info.run_id, run.info.run_id).log_params(params)
    return run.info.run_id


@task
def record_round_metrics(repo: str, parent_run_id: str, round_id: str, step: int) -> dict:
    """Log metrics/<round>.json on the parent run, with the round's index as the step."""
    from coderanker import tracking

    metrics = json.loads((Path(repo) / "metrics" / f"{round_id}.json").read_text())
    run = tracking.StageRun(tracking.client(repo), parent_run_id, parent_run_id, parent_run_id)
    run.log_metrics({"eval": metrics["eval"], "train": metrics["train"]}, step=step)
    return metrics


@task
def close_parent_run(repo: str, parent_run_id: str, status: str) -> None:
    from coderanker import tracking

    tracking.client(repo).set_terminated(parent_run_id, status)


@task
def promote_reranker(repo: str, round_id: str) -> bool:
    """Move `champion` to the round's newest registered reranker only if its evidence shows a
    gain over the champion on the same eval set (see `tracking.promotion_decision`)."""
    from coderanker import tracking

    client = tracking.client(repo)
    versions = [v for v in client.search_model_versions(f"name='{tracking.REGISTERED_RERANKER}'")
                if v.tags.get(tracking.ROUND) == round_id]
    if not versions:
        raise RuntimeError(f"no registered reranker for round {round_id}")
    newest = max(versions, key=lambda v: int(v.version))
    return tracking.promote_with_evidence(client, newest.version)
