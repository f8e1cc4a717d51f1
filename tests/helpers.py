"""Helpers shared by the tests that run the pipeline in a copy of the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sh(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 3000) -> str:
    """Run a command with the project's venv first on PATH; fail the test with its output."""
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PWD": str(cwd)}
    environment.pop("MLFLOW_TRACKING_URI", None)
    environment.update(env or {})
    done = subprocess.run(cmd, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
    return done.stdout + done.stderr


def copy_worktree(dest: Path) -> Path:
    """The working tree as a user's clone would have it (tracked and new files, no outputs)."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "clone"]):
        sh(cmd, dest)
    return dest


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, theirs, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def lock_stages(repo: Path) -> dict[str, dict]:
    """dvc.lock's stages ({} when there is no lock yet)."""
    import yaml

    path = repo / "dvc.lock"
    return (yaml.safe_load(path.read_text()) or {}).get("stages", {}) if path.exists() else {}


def lock_outs(repo: Path) -> dict[str, str]:
    """Each output path in dvc.lock with its md5."""
    return {out["path"]: out["md5"] for stage in lock_stages(repo).values() for out in stage.get("outs", [])}


#: How far a candidate's score may move between two runs of the same scoring: float32
#: rounding. Seen in evaluate (3 of 30 scores of a process's first problem 1 ulp apart,
#: 1.2e-7, between a pipeline run and its killed-and-resumed twin; not reproduced in nine
#: fresh processes, with one thread or two) and in mine (a forced re-run of mine@r1: one
#: hard negative's rejected_score and the score statistics 1-2 ulp apart, the same pairs);
#: the cause is not yet found.
SCORE_TOLERANCE = 1e-6


def close(x, y, score: bool = False) -> bool:
    """JSON values equal, except that scores (the values under a key ending in `score`, and
    every figure of `score_stats`) may differ by float32 rounding (SCORE_TOLERANCE, relative)."""
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(
            close(x[k], y[k], score or k.endswith("score") or k == "score_stats") for k in x)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(close(a, b, score) for a, b in zip(x, y, strict=True))
    if score and isinstance(x, float) and isinstance(y, float):
        return abs(x - y) <= SCORE_TOLERANCE * max(1.0, abs(x))
    return x == y


def json_differences(ours: Path, theirs: Path) -> list[str]:
    """How two output directories of JSON and JSON Lines files (data/<round>/scored,
    data/<round>/pairs) differ beyond float32 rounding of the scores they record: the same
    files and records, every other field equal."""
    import json

    def records(path: Path) -> list:
        text = path.read_text()
        return [json.loads(line) for line in text.splitlines()] if path.suffix == ".jsonl" else [json.loads(text)]

    names = sorted(p.name for p in ours.iterdir())
    if names != sorted(p.name for p in theirs.iterdir()):
        return [f"files {names} vs {sorted(p.name for p in theirs.iterdir())}"]
    found = []
    for name in names:
        a, b = records(ours / name), records(theirs / name)
        if len(a) != len(b):
            found.append(f"{name}: {len(a)} vs {len(b)} records")
            continue
        found += [f"{name}:{line}: differs" for line, (x, y) in enumerate(zip(a, b, strict=True), 1)
                  if not close(x, y)]
    return found


def differing_files(ours: Path, theirs: Path, outputs: list[str]) -> dict[str, list[str]]:
    """Per output (a path `differing_outputs` named) of two checkouts, its files whose bytes
    differ or that only one side has: what a failed comparison shows."""
    def files(root: Path) -> set[str]:
        return {str(f.relative_to(root)) for f in root.rglob("*") if f.is_file()} if root.is_dir() else {""}

    def differing(a: Path, b: Path) -> list[str]:
        return sorted(n or a.name for n in files(a) | files(b)
                      if not ((a / n).is_file() and (b / n).is_file() and (a / n).read_bytes() == (b / n).read_bytes()))

    return {path: differing(ours / path, theirs / path) for path in outputs}


def differing_outputs(ours: Path, theirs: Path) -> list[str]:
    """dvc.lock outputs of two runs of the pipeline that differ (metrics/ left to the
    caller; scored candidates and the scores pairs record compared to float32 rounding,
    see SCORE_TOLERANCE)."""
    a, b = lock_outs(ours), lock_outs(theirs)
    differ = []
    for path in sorted(set(a) | set(b)):
        if path.startswith("metrics/") or a.get(path) == b.get(path):
            continue
        if re.fullmatch(r"data/[^/]+/(scored|pairs)", path) and path in a and path in b \
                and not json_differences(ours / path, theirs / path):
            continue
        differ.append(path)
    return differ
