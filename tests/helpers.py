"""Helpers shared by the tests that run the pipeline in a copy of the repository."""

from __future__ import annotations

import os
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
