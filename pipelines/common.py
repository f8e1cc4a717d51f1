"""Shared plumbing of the stage entry points: logging, timing, stage metadata."""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path

META = "_stage.json"


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@contextmanager
def timed_stage(out_dir: Path, stage: str, **extra):
    """Time the body and record it in out_dir/_stage.json (read by the evaluate stage)."""
    start = time.monotonic()
    yield
    seconds = round(time.monotonic() - start, 2)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / META).write_text(json.dumps({"stage": stage, "seconds": seconds, **extra}, indent=2) + "\n")
    logging.getLogger(stage).info("%s finished in %.1f s", stage, seconds)


def problem_files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.glob("*.jsonl"))
