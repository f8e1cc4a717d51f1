"""Prefect flow `self-training`: every round of the DVC pipeline, stage by stage, under one
MLflow parent run, ending with a per-round summary table as a Prefect artifact."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from tasks.dvc import pipeline_slot, publish_results, pull_outputs, run_stage
from tasks.tracking import close_parent_run, open_parent_run, promote_reranker, record_round_metrics

ROUND_STAGES = ("ppo", "sample", "execute", "mine", "train_reranker", "evaluate")
SUMMARY_KEYS = ("pass@1", "greedy_pass@1", "reranked_pass@1", "oracle_pass@n", "reranker_auc")


def configure(repo: Path, profile: str | None, rounds: int | None, overrides: dict[str, Any]) -> dict:
    """Write params.yaml from the profile, round count and overrides; untouched if unchanged
    (so that DVC sees no change)."""
    import yaml

    from coderanker.config import apply_overrides, load_params, self_training_rounds

    params_path = repo / "params.yaml"
    params = load_params(repo / "configs" / f"{profile}.yaml") if profile else load_params(params_path)
    if rounds is not None:
        params["rounds"] = self_training_rounds(rounds)
    params = apply_overrides(params, overrides)
    if not params_path.exists() or load_params(params_path, validate=False) != params:
        header = f"# written by the self-training flow (profile={profile}, rounds={rounds}, overrides={overrides})\n"
        params_path.write_text(header + yaml.safe_dump(params, sort_keys=False))
    return params


def summary_table(results: dict[str, dict], ran: dict[str, list[str]]) -> str:
    header = "| round | problems | " + " | ".join(SUMMARY_KEYS) + " | pairs | hard negatives | stages run |"
    lines = [header, "|" + "---|" * (len(SUMMARY_KEYS) + 5)]
    for round_id, metrics in results.items():
        cells = [f"{metrics['eval'].get(k):.3f}" if metrics["eval"].get(k) is not None else "-" for k in SUMMARY_KEYS]
        lines.append(f"| {round_id} | {metrics['eval']['problems']} | " + " | ".join(cells)
                     + f" | {metrics['train']['pairs']} | {metrics['train']['hard_negatives']} | "
                     + f"{len(ran[round_id])} |")
    return "\n".join(lines)


@flow(name="self-training", log_prints=True)
def self_training(profile: str | None = None, rounds: int | None = None, promote: bool = True,
                  overrides: dict[str, Any] | None = None, repo: str = ".", publish: bool = False) -> dict:
    """Run every round; DVC re-runs only the stages whose code, data or params changed.

    profile: configs/<profile>.yaml replaces params.yaml (None keeps it);
    rounds: self-training rounds after r0 (None keeps params.yaml's);
    promote: move the `champion` alias to the last round's reranker if it wins;
    overrides: dotted params keys, e.g. {"sample.samples_per_problem": 4};
    publish: for a worker that runs each flow in a fresh clone (the `cluster` deployments):
    first `dvc pull` what the DVC remote has of this commit's outputs, and at the end `dvc
    push` the outputs and push params.yaml, dvc.lock and metrics/ to git origin on the
    branch `coderanker-runs/<flow run name>` (see `tasks.dvc.publish_results`).

    One run of a pipeline at a time (a Prefect concurrency limit named after the repository
    it was cloned from): a run that starts while another runs (a nightly run during a manual
    one, on any worker) waits for it."""
    logger = get_run_logger()
    root = Path(repo).resolve()
    run_name = flow_run.get_name() or "local"
    with pipeline_slot(str(root), logger):
        if publish:
            pull_outputs(str(root), logger)
        result = _run_rounds(root, run_name, profile, rounds, promote, overrides or {}, logger)
        if publish:
            branch = f"coderanker-runs/{run_name}"
            result["published"] = {"branch": branch, "commit": publish_results(str(root), branch, logger)}
        return result


def _run_rounds(root: Path, run_name: str, profile: str | None, rounds: int | None, promote: bool,
                overrides: dict[str, Any], logger: logging.LoggerAdapter) -> dict:
    params = configure(root, profile, rounds, overrides)
    parent = open_parent_run(str(root), f"prefect {run_name}",
                             {"profile": profile, "rounds": rounds, "promote": promote, **overrides})
    env = {"CODERANKER_PARENT_RUN_ID": parent, "CODERANKER_PROMOTE": "0"}
    ran: dict[str, list[str]] = {}
    results: dict[str, dict] = {}
    try:
        ran["setup"] = run_stage("prepare_models", str(root), env) + run_stage("prepare_data", str(root), env)
        for step, round_id in enumerate(params["rounds"]):
            ran[round_id] = [s for stage in ROUND_STAGES for s in run_stage(f"{stage}@{round_id}", str(root), env)]
            results[round_id] = record_round_metrics(str(root), parent, round_id, step)
        last = list(params["rounds"])[-1]
        promoted = promote_reranker(str(root), last) if promote else False
    except BaseException:
        close_parent_run(str(root), parent, "FAILED")
        raise
    close_parent_run(str(root), parent, "FINISHED")
    table = summary_table(results, ran)
    create_markdown_artifact(markdown=f"## Self-training summary\n\n{table}\n\nchampion moved: {promoted}",
                             key="self-training-summary", description="pass@1 per round")
    logger.info("summary:\n%s", table)
    return {"parent_run_id": parent, "stages_run": ran, "promoted": promoted,
            "metrics": {r: m["eval"] for r, m in results.items()}}


if __name__ == "__main__":
    self_training(repo=os.getcwd())
