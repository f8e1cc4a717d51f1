"""A Prefect task that runs one DVC stage and streams its output into the Prefect log; the
slot that lets one run of a pipeline go at a time (a Prefect global concurrency limit, so
it holds across hosts); publishing a run's results from a throw-away clone (DVC remote and
a git branch)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import get_run_logger, task

#: Failures that leave nothing half-done and may pass on a second try.
TRANSIENT = re.compile(r"Unable to acquire lock|lock is held|Failed to start the Ray|Connection refused|"
                       r"ray\.exceptions\.(GetTimeoutError|RaySystemError)")
RUNNING = re.compile(r"^Running stage '([^']+)'")


class StageFailed(RuntimeError):
    """A DVC stage failed; `transient` says whether repeating it is safe and may help."""

    def __init__(self, target: str, code: int, tail: str, transient: bool):
        self.transient = transient
        super().__init__(f"dvc repro {target} exited with {code} ({'transient' if transient else 'fatal'}):\n{tail}")


def _retry_if_transient(task, task_run, state) -> bool:
    try:
        state.result()
    except StageFailed as failure:
        return failure.transient
    except Exception:
        return False
    return False


def dvc_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment (plus `env`) with its interpreter's bin first on PATH, so
    `dvc` and the stages it starts are the project's."""
    venv_bin = str(Path(sys.executable).parent)
    return {**os.environ, **(env or {}), "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}"}


@task(retries=2, retry_delay_seconds=10, retry_condition_fn=_retry_if_transient, task_run_name="dvc repro {target}")
def run_stage(target: str, repo: str, env: dict[str, str] | None = None) -> list[str]:
    """`dvc repro <target>` (DVC skips what is up to date); returns the stages it ran.

    Each output line goes to the Prefect log as it comes; retried only on failures that
    are safe to repeat (a held DVC lock, Ray failing to start)."""
    logger = get_run_logger()
    environment = {**dvc_environment(env), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(["dvc", "repro", target], cwd=repo, env=environment, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
    ran, tail = [], []
    for line in process.stdout:
        line = line.rstrip("\n")
        for part in line.split("\r"):  # progress bars redraw with \r: log each state once
            if part.strip():
                logger.info(part)
        if match := RUNNING.match(line):
            ran.append(match.group(1))
        tail = (tail + [line])[-40:]
    code = process.wait()
    if code != 0:
        text = "\n".join(tail)
        raise StageFailed(target, code, text, bool(TRANSIENT.search(text)))
    logger.info("%s: ran %s", target, ", ".join(ran) or "nothing (up to date)")
    return ran


def pipeline_identity(repo: str) -> str:
    """What makes two runs the same pipeline: the git remote the checkout was cloned from (so
    workers on different hosts, each in its own clone, share it), else the checkout's path."""
    found = subprocess.run(["git", "config", "--get", "remote.origin.url"], cwd=repo, capture_output=True,
                           text=True)
    return found.stdout.strip() or str(Path(repo).resolve())


def slot_name(repo: str) -> str:
    """The Prefect global concurrency limit that serialises one pipeline's runs."""
    import hashlib

    identity = pipeline_identity(repo)
    return f"coderanker-pipeline-{Path(identity.rstrip('/')).name.removesuffix('.git')}-" \
           f"{hashlib.sha256(identity.encode()).hexdigest()[:10]}"


@contextmanager
def pipeline_slot(repo: str, logger: logging.Logger | logging.LoggerAdapter, timeout_s: float | None = None,
                  lease_s: float = 60.0) -> Iterator[str]:
    """Hold the pipeline's one slot for a whole run: a nightly run that fires while a manual
    one is running (on this worker or another host's) waits for it, instead of racing it
    through the same stages. A Prefect global concurrency limit of 1, created on first use;
    the slot is a lease the run renews, so a run that dies frees it within `lease_s` (Prefect
    takes 60 s at least).
    Raises TimeoutError after `timeout_s` (None: wait for ever)."""
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists

    name = slot_name(repo)
    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(name, 1)
        except ObjectAlreadyExists:  # another run created it between the read and the create
            pass
        held = client.read_global_concurrency_limit_by_name(name).active_slots
    if held:
        logger.info("waiting for the run that holds %s (one run of this pipeline at a time)", name)
    with concurrency(name, occupy=1, timeout_seconds=timeout_s, strict=True, lease_duration=lease_s):
        yield name


def pull_outputs(repo: str, logger: logging.Logger | logging.LoggerAdapter) -> None:
    """In a fresh clone: fetch from the DVC remote the outputs this commit's dvc.lock names,
    so that DVC re-runs only the stages whose inputs changed. What the remote lacks is left
    to re-run (a warning, not a failure)."""
    environment = dvc_environment()
    pulled = subprocess.run(["dvc", "pull", "--allow-missing"], cwd=repo, env=environment, capture_output=True,
                            text=True)
    text = (pulled.stdout + pulled.stderr).strip()
    if pulled.returncode != 0:
        logger.warning("dvc pull failed; every stage will run:\n%s", text[-2000:])
    else:
        logger.info("dvc pull: %s", (text.splitlines() or ["nothing to pull"])[-1])


def publish_results(repo: str, branch: str, logger: logging.Logger | logging.LoggerAdapter) -> str:
    """Make a run in a throw-away clone usable elsewhere: `dvc push` its outputs to the DVC
    remote, then commit params.yaml, dvc.lock and metrics/ on `branch` and push it to git
    `origin`. A clone of that branch, after `dvc pull`, has nothing to re-run. Returns the
    commit pushed."""
    def git(*args: str) -> str:
        identity = ["-c", "user.name=coderanker", "-c", f"user.email=coderanker@{os.uname().nodename}"]
        return subprocess.run(["git", *identity, *args], cwd=repo, check=True, capture_output=True,
                               text=True).stdout.strip()

    environment = dvc_environment()
    pushed = subprocess.run(["dvc", "push"], cwd=repo, env=environment, capture_output=True, text=True)
    if pushed.returncode != 0:
        raise RuntimeError(f"dvc push failed in {repo} (is a default DVC remote configured?):\n"
                           f"{pushed.stdout[-2000:]}{pushed.stderr[-2000:]}")
    logger.info("dvc push: %s", (pushed.stdout.strip().splitlines() or ["done"])[-1])
    git("checkout", "-B", branch)
    git("add", "params.yaml", "dvc.lock", "metrics")
    if git("status", "--porcelain", "--", "params.yaml", "dvc.lock", "metrics"):
        git("commit", "-q", "-m", f"coderanker run results ({branch})")
    git("push", "-q", "--force", "origin", f"HEAD:refs/heads/{branch}")
    commit = git("rev-parse", "HEAD")
    logger.info("results pushed to origin %s at %s", branch, commit[:12])
    return commit
