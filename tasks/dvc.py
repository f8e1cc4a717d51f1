"""A Prefect task that runs one DVC stage and streams its output into the Prefect log."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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


@task(retries=2, retry_delay_seconds=10, retry_condition_fn=_retry_if_transient, task_run_name="dvc repro {target}")
def run_stage(target: str, repo: str, env: dict[str, str] | None = None) -> list[str]:
    """`dvc repro <target>` (DVC skips what is up to date); returns the stages it ran.

    Each output line goes to the Prefect log as it comes; retried only on failures that
    are safe to repeat (a held DVC lock, Ray failing to start)."""
    logger = get_run_logger()
    venv_bin = str(Path(sys.executable).parent)
    environment = {**os.environ, **(env or {}), "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
                   "PYTHONUNBUFFERED": "1"}
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
