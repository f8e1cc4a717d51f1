"""MLflow tracking: one experiment, a parent run per pipeline run, a nested run per round,
and under it one per stage; the reranker registry and its `champion` alias.

Stages are separate processes (DVC runs each one), so runs are addressed by id and tags
through MlflowClient, never through MLflow's per-process active-run stack:
- the parent run is CODERANKER_PARENT_RUN_ID when an orchestrator (the Prefect flow) owns
  it, else the one owned by the `dvc repro` process this stage runs under (its host, pid
  and start time, so a later `dvc repro` never nests under a dead one), else a new one;
- a round run is the parent's child tagged with that round, created on first use;
- the last round's evaluate stage ends the round and, unless an orchestrator owns it, the parent;
- a RUNNING run whose owning process is gone (killed, its machine lost) is marked KILLED by
  the next stage that starts on the same host.

Stage outputs hold no run ids or timings (DVC hashes them): a stage run is tagged with the
content hash of each output it wrote (DVC's own md5), and is found again by that hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import socket
import subprocess
import tempfile
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
OWNER = "coderanker.owner"  # host:pid:start of the process that ends the run
EVIDENCE = "evidence/eval.json"  # per-problem outcomes a promotion decision rests on
OUTPUT = "coderanker.out."  # + output path: the content hash (DVC md5) of what the stage wrote there
RERANKER_ARTIFACT = "reranker"  # a train_reranker run's MLflow model (coderanker.serving): what is registered
#: The experiment's kind for MLflow's UI: a model-training one (the UI's ExperimentKind
#: CUSTOM_MODEL_DEVELOPMENT, mlflow/server/js/build/static/js/main.*.js), not GenAI.
EXPERIMENT_KIND, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
#: MLflow 3.17's UI takes the view of every experiment page from its GenAI / Model training
#: switch (default GenAI: an overview of traces), not from the tag; this query opens the runs.
TRAINING_VIEW = "workflowType=machine_learning"


def tracking_uri(root: str | os.PathLike = ".") -> str:
    """MLFLOW_TRACKING_URI, else a SQLite database at an absolute path in the project root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path(root) / 'mlflow.db').resolve()}"


def client(root: str | os.PathLike = "."):
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri(root))
    return MlflowClient(tracking_uri(root))


def experiment_id(mlflow_client, name: str | None = None) -> str:
    """The pipeline's experiment, created on first use, tagged as a model-training one (an
    older one without the tag gets it; a kind someone chose in the UI is left alone)."""
    name = name or os.environ.get("CODERANKER_EXPERIMENT", EXPERIMENT)
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        if EXPERIMENT_KIND not in found.tags:
            mlflow_client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND, TRAINING_KIND)
        return found.experiment_id
    artifacts = None
    uri = mlflow_client.tracking_uri
    if uri.startswith("sqlite:"):  # keep artifacts beside the database, absolute
        artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    created = mlflow_client.create_experiment(name, artifact_location=artifacts,
                                              tags={EXPERIMENT_KIND: TRAINING_KIND})
    log.info("MLflow experiment %r created; its runs in `mlflow ui`: %s", name, experiment_page(created))
    return created


def experiment_page(experiment: str, server: str = "http://127.0.0.1:5000") -> str:
    """The address of an experiment's runs table in MLflow's UI (`mlflow ui` serves on port 5000)."""
    return f"{server.rstrip('/')}/#/experiments/{experiment}?{TRAINING_VIEW}"


def git_commit(root: str | os.PathLike = ".") -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout
        return commit.strip() + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def content_md5(path: str | os.PathLike) -> str:
    """A file's or directory's md5 exactly as DVC 3 records it in dvc.lock (a directory's is
    the md5 of its sorted JSON listing of relpath and file md5, with ".dir" appended)."""
    path = Path(path)
    if path.is_file():
        return _file_md5(path)
    files = sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).parts)
    listing = [{"md5": _file_md5(p), "relpath": p.relative_to(path).as_posix()} for p in files]
    return hashlib.md5(json.dumps(listing, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


def _file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def input_hashes(paths: list[str | os.PathLike]) -> dict[str, str]:
    """Tags naming the content of each input (dvc.lock's md5 for it): lineage that holds even
    for a stage run outside `dvc repro`."""
    return {f"coderanker.in.{Path(p).as_posix()}": content_md5(p) for p in paths if Path(p).exists()}


def _find_or_create_parent(mlflow_client, exp: str) -> str:
    if os.environ.get(PARENT_ENV):
        return os.environ[PARENT_ENV]
    owner = process_key(pipeline_process())
    runs = mlflow_client.search_runs(
        [exp], f"tags.`{KIND}` = 'pipeline' and tags.`{OWNER}` = '{owner}' and attributes.status = 'RUNNING'",
        order_by=["attributes.start_time DESC"], max_results=1)
    if runs:
        return runs[0].info.run_id
    run = mlflow_client.create_run(exp, run_name=f"pipeline {time.strftime('%Y-%m-%d %H:%M')}",
                                   tags={KIND: "pipeline", "coderanker.git_commit": git_commit(), OWNER: owner})
    return run.info.run_id


def pipeline_process(pid: int | None = None) -> int:
    """The `dvc repro` / `dvc exp run` process that runs this stage (walking up the parents),
    else this process: the owner of the pipeline's parent run."""
    pid = pid or os.getpid()
    current = pid
    while current > 1:
        try:
            argv = Path(f"/proc/{current}/cmdline").read_bytes().split(b"\0")
            parent = int(Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        words = [Path(a.decode(errors="replace")).name for a in argv if a]
        if "dvc" in words and ("repro" in words or "exp" in words):
            return current
        current = parent
    return pid


def process_key(pid: int) -> str:
    """host:pid:start-time (clock ticks since boot): names one process for ever, unlike a pid."""
    try:
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        start = "0"
    return f"{socket.gethostname()}:{pid}:{start}"


def process_alive(key: str) -> bool | None:
    """Whether the process a key names still runs; None when it ran on another host."""
    host, pid, start = key.rsplit(":", 2)
    if host != socket.gethostname():
        return None
    return process_key(int(pid)) == key if Path(f"/proc/{pid}").exists() else False


def reap_dead_runs(mlflow_client, exp: str) -> list[str]:
    """Mark KILLED every RUNNING run of this host whose owning process is gone: a stage killed
    by SIGKILL, a `dvc repro` or flow worker that died. Returns their ids."""
    host = socket.gethostname().replace("'", "")
    runs = mlflow_client.search_runs([exp], f"attributes.status = 'RUNNING' and tags.`{OWNER}` LIKE '{host}:%'",
                                     max_results=1000)
    dead = [run for run in runs if process_alive(run.data.tags[OWNER]) is False]
    for run in dead:
        mlflow_client.set_terminated(run.info.run_id, "KILLED")
        mlflow_client.set_tag(run.info.run_id, "coderanker.ended_by", "owner process gone")
        log.warning("MLflow run %s (%s) was left RUNNING by a process that is gone: marked KILLED",
                    run.info.run_id, run.info.run_name)
    return [run.info.run_id for run in dead]


def _find_or_create_round(mlflow_client, exp: str, parent: str, round_id: str) -> str:
    runs = mlflow_client.search_runs(
        [exp], f"tags.`{PARENT_TAG}` = '{parent}' and tags.`{KIND}` = 'round' and tags.`{ROUND}` = '{round_id}'",
        max_results=1)
    if runs:
        return runs[0].info.run_id
    owner = mlflow_client.get_run(parent).data.tags.get(OWNER) or process_key(pipeline_process())
    run = mlflow_client.create_run(exp, run_name=round_id,
                                   tags={PARENT_TAG: parent, KIND: "round", ROUND: round_id, OWNER: owner})
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

    def log_table(self, columns: dict[str, list], name: str) -> None:
        """A table artifact (MLflow's log_table: the run's Artifacts and the UI's table views)."""
        self.client.log_table(self.run_id, columns, name)

    def log_figure(self, figure, name: str) -> None:
        self.client.log_figure(self.run_id, figure, name)

    def set_tags(self, tags: dict) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def record_outputs(self, outputs: list[str | os.PathLike], seconds: float) -> None:
        """Tag the run with each output's content hash (dvc.lock's md5: how the run is found
        again) and log the stage's wall time, which the outputs themselves never hold."""
        self.set_tags({f"{OUTPUT}{Path(p).as_posix()}": content_md5(p) for p in outputs})
        self.log_metrics({"seconds": seconds})

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
    """A nested MLflow run for one stage of one round; FAILED if the body raises, KILLED (by
    the next stage to start) if its process dies without a word."""
    mlflow_client = client()
    exp = experiment_id(mlflow_client)
    reap_dead_runs(mlflow_client, exp)
    parent = _find_or_create_parent(mlflow_client, exp)
    round_run = _find_or_create_round(mlflow_client, exp, parent, round_id)
    tags = {PARENT_TAG: round_run, KIND: "stage", STAGE: stage, ROUND: round_id, OWNER: process_key(os.getpid()),
            "coderanker.git_commit": git_commit(), **input_hashes(inputs or [])}
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


def find_stage_run(mlflow_client, output: str | os.PathLike, md5: str | None = None):
    """The newest FINISHED stage run that wrote `output` with this content (default: what is
    there now), or None (e.g. outputs fetched from a DVC remote without their MLflow)."""
    md5 = md5 or content_md5(output)
    runs = mlflow_client.search_runs(
        [experiment_id(mlflow_client)],
        f"tags.`{OUTPUT}{Path(output).as_posix()}` = '{md5}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def round_history(stage: StageRun, rounds: list[str]) -> list[tuple[str, dict]]:
    """(round, eval figures) of the earlier `rounds` this pipeline run evaluated, from their
    round runs (no stage reads another round's metrics file: it is not among its deps)."""
    exp = experiment_id(stage.client)
    history = []
    for round_id in rounds:
        found = stage.client.search_runs(
            [exp], f"tags.`{PARENT_TAG}` = '{stage.parent_run_id}' and tags.`{KIND}` = 'round' "
            f"and tags.`{ROUND}` = '{round_id}'", max_results=1)
        if found:
            metrics = found[0].data.metrics
            history.append((round_id, {k.removeprefix("eval.").replace("_at_", "@"): v
                                       for k, v in metrics.items() if k.startswith("eval.")}))
    return history


def _registered_model(mlflow_client) -> None:
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_registered_model(REGISTERED_RERANKER)
    except MlflowException:
        mlflow_client.create_registered_model(REGISTERED_RERANKER)


def register_reranker(stage: StageRun, source_run_id: str, evidence: dict, round_id: str):
    """Register the reranker logged by `source_run_id` (artifact path `reranker`, an MLflow
    pyfunc model: see coderanker.serving) with its evaluation evidence (logged on this
    evaluate run), and move `champion` to it only when the evidence shows a gain (see
    `promote_with_evidence`). Returns (version, promoted)."""
    mlflow_client = stage.client
    _registered_model(mlflow_client)
    stage.log_dict(evidence, EVIDENCE)
    source = f"{mlflow_client.get_run(source_run_id).info.artifact_uri}/{RERANKER_ARTIFACT}"
    score = evidence.get("reranked_pass@1")
    version = mlflow_client.create_model_version(
        REGISTERED_RERANKER, source, run_id=source_run_id,
        tags={"reranked_pass_at_1": str(-1.0 if score is None else score), ROUND: round_id,
              "coderanker.git_commit": git_commit(), "coderanker.eval_hash": evidence["eval_hash"],
              "coderanker.evidence_run": stage.run_id})
    promoted = False
    if os.environ.get(PROMOTE_ENV, "1") != "0":
        promoted = promote_with_evidence(mlflow_client, version.version, stage)
    stage.set_tags({"coderanker.reranker_version": version.version, "coderanker.promoted": promoted})
    return version.version, promoted


def version_evidence(mlflow_client, version) -> dict:
    """The evaluation evidence a registered version was registered with ({} if none)."""
    import mlflow.artifacts

    run_id = version.tags.get("coderanker.evidence_run")
    if not run_id:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=EVIDENCE, dst_path=tmp,
                                                   tracking_uri=mlflow_client.tracking_uri)
        return json.loads(Path(path).read_text())


def promotion_decision(candidate: dict, champion: dict | None, seed: int = 0) -> dict:
    """Whether `candidate` may replace `champion` (each: evaluation evidence, see evaluate):
    both evaluated on the same eval set (content hash) with picks from pools of the same size
    (`pool_size`; evidence registered before it was recorded is taken as comparable), and a
    per-problem gain whose paired bootstrap 95% interval over problems excludes 0 — over the
    champion's top-1 outcome on
    each problem, or, with no champion yet, over a random pick (the problem's pass rate)."""
    from coderanker.metrics import bootstrap_ci95

    if not candidate.get("top1_pass"):
        return {"promote": False, "against": "champion", "why": "no evaluation evidence was registered"}
    hits = candidate["top1_pass"]
    if champion is None:
        baseline, against = candidate["pass_rate"], "random pick"
    elif champion.get("eval_hash") != candidate["eval_hash"]:
        return {"promote": False, "against": "champion", "why": "evaluated on a different eval set "
                f"({candidate['eval_hash'][:12]} vs the champion's {str(champion.get('eval_hash'))[:12]})"}
    elif None not in (champion.get("pool_size"), candidate.get("pool_size")) \
            and champion["pool_size"] != candidate["pool_size"]:
        return {"promote": False, "against": "champion", "why": "picked from pools of another size "
                f"({candidate['pool_size']} vs the champion's {champion['pool_size']})"}
    else:
        baseline, against = champion["top1_pass"], "champion"
    common = sorted(set(hits) & set(baseline))
    gains = [hits[name] - baseline[name] for name in common]
    interval = bootstrap_ci95(gains, seed=seed)
    gain = sum(gains) / len(gains) if gains else None
    promote = interval is not None and interval[0] > 0
    why = (f"gain {gain:+.3f} over the {against}, 95% interval [{interval[0]:+.3f}, {interval[1]:+.3f}] "
           f"over {len(common)} problems" if interval else f"too few problems ({len(common)}) for an interval")
    return {"promote": promote, "against": against, "gain": gain, "gain_ci95": interval,
            "problems": len(common), "why": why + ("" if promote else ": not shown to be better")}


def promote_with_evidence(mlflow_client, version: str, stage: StageRun | None = None) -> bool:
    """Move `champion` to `version` when `promotion_decision` allows it; the decision and its
    figures are logged on `stage` (the evaluate run) or the version's evidence run."""
    from mlflow.exceptions import MlflowException

    candidate = mlflow_client.get_model_version(REGISTERED_RERANKER, version)
    try:
        champion = mlflow_client.get_model_version_by_alias(REGISTERED_RERANKER, CHAMPION)
    except MlflowException:
        champion = None
    if champion is not None and champion.version == candidate.version:
        return True
    decision = promotion_decision(version_evidence(mlflow_client, candidate),
                                  version_evidence(mlflow_client, champion) if champion else None)
    decision["champion_version"] = champion.version if champion else None
    run = stage or StageRun(mlflow_client, candidate.tags["coderanker.evidence_run"], "", "")
    run.set_tags({"coderanker.promotion": "promoted" if decision["promote"] else "kept champion",
                  "coderanker.promotion_why": decision["why"]})
    run.log_metrics({"promotion": {k: decision[k] for k in ("gain", "problems") if decision.get(k) is not None},
                     **({"promotion.gain_ci95": decision["gain_ci95"]} if decision.get("gain_ci95") else {})})
    log.info("reranker v%s: %s", version, decision["why"])
    if decision["promote"]:
        mlflow_client.set_registered_model_alias(REGISTERED_RERANKER, CHAMPION, version)
    return decision["promote"]


def read_json(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text())
