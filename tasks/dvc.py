"""A Prefect task that runs one DVC stage and streams its output into the Prefect log, and
the lock that lets one pipeline run at a time use a checkout."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import subprocess
import sys
import time
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


@contextmanager
def checkout_lock(repo: str, holder: str, logger: logging.Logger | logging.LoggerAdapter,
                  timeout_s: float | None = None, poll_s: float = 5.0) -> Iterator[Path]:
    """Hold the checkout for one pipeline run: a nightly run that fires while a manual one is
    running waits for it, instead of rewriting params.yaml under it and failing on DVC's lock
    halfway. Raises TimeoutError naming the holder after `timeout_s` (None: wait for ever).

    An flock on .dvc/tmp/self-training.lock: the kernel drops it when its holder dies, so a
    killed run never leaves the checkout locked."""
    path = Path(repo) / ".dvc" / "tmp" / "self-training.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        started, next_report = time.monotonic(), 0.0
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                handle.seek(0)
                other = handle.read().strip() or "another process"
                waited = time.monotonic() - started
                if timeout_s is not None and waited >= timeout_s:
                    raise TimeoutError(f"{path}: the checkout is held by {other}; "
                                       f"gave up after {waited:.0f} s") from None
                if waited >= next_report:  # at once, then every 10 minutes
                    logger.info("waiting for %s, which holds %s", other, path)
                    next_report += 600
                time.sleep(poll_s)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{holder} (pid {os.getpid()})\n")
        handle.flush()
        try:
            yield path
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
