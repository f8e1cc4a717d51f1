"""Shared plumbing of the stage entry points: logging, atomic outputs, stage timing."""

from __future__ import annotations

import logging
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

PARTIAL = ".partial"  # suffix of an output being written (git-ignored; never a DVC output)
#: Fault injection for the kill-and-resume tests: a stage whose address (`mine@r0`) this names
#: stops, its outputs written but not yet in place, until it is killed.
PAUSE_ENV = "CODERANKER_PAUSE_BEFORE_COMMIT"


def entry(main) -> None:
    """A stage's `__main__`: bad input (coderanker.errors.InputError: a params key, a record's
    file and line, a missing toolchain) exits 2 with its message alone; anything else is a
    bug or an infrastructure failure and keeps its traceback."""
    import sys

    from coderanker.errors import InputError

    try:
        main()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@contextmanager
def stage_outputs(address: str, *outs: Path, run=None):
    """Write a stage's output directories atomically and record how long it took.

    The body writes into one staging directory per output (yielded: a path, or a tuple for
    several); only when it returns does each replace its output, so a stage killed part-way
    leaves nothing under the output's name for anyone to mistake for a result. Then `run`
    (the stage's MLflow run) is tagged with each output's content hash and logs the seconds:
    timings go to MLflow, never into the outputs, which hold deterministic content only."""
    start = time.monotonic()
    staging = [out.parent / f".{out.name}{PARTIAL}" for out in outs]
    for path in staging:
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    try:
        yield staging[0] if len(staging) == 1 else tuple(staging)
    except BaseException:
        for path in staging:
            shutil.rmtree(path, ignore_errors=True)
        raise
    if os.environ.get(PAUSE_ENV) == address:
        print(f"{address}: paused before putting its outputs in place ({PAUSE_ENV})", flush=True)
        time.sleep(3600)
    for path, out in zip(staging, outs, strict=True):
        replace_dir(path, out)
    seconds = round(time.monotonic() - start, 2)
    if run is not None:
        run.record_outputs(list(outs), seconds)
    logging.getLogger(address).info("%s finished in %.1f s", address, seconds)


def replace_dir(source: Path, target: Path) -> None:
    """Move a finished directory into place (a rename; an old target goes first)."""
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()
    os.replace(source, target)


def write_atomic(path: Path, text: str) -> None:
    """A small file written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.parent / f".{path.name}{PARTIAL}"
    partial.write_text(text)
    os.replace(partial, path)


def problem_files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.glob("*.jsonl"))


def flag(text: str) -> bool:
    """argparse type for DVC-rendered booleans (true/false)."""
    lowered = text.strip().lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"expected true or false, got {text!r}")
    return lowered in ("true", "1", "yes")

