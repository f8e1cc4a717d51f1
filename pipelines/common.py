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


def flag(text: str) -> bool:
    """argparse type for DVC-rendered booleans (true/false)."""
    lowered = text.strip().lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"expected true or false, got {text!r}")
    return lowered in ("true", "1", "yes")


def results_by_set(directory: Path) -> dict[str, list[dict]]:
    """Every <set>.jsonl of a stage output directory, read."""
    from coderanker.jsonl import read_jsonl

    return {path.stem: read_jsonl(path) for path in problem_files(directory)}
