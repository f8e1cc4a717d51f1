"""`coderanker profile use tiny && dvc repro` in a fresh copy of the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.e2e


def sh(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory) -> Path:
    """The working tree as a user's clone would have it (tracked and new files, no outputs)."""
    repo = tmp_path_factory.mktemp("clone") / "coderanker"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    sh(["git", "init", "-q"], repo)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "init", "--allow-empty"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tree"], repo)
    sh(["coderanker", "profile", "use", "tiny"], repo)
    sh(["dvc", "repro"], repo)
    return repo


def test_metrics_follow_the_design_format(tiny_repo):
    metrics = json.loads((tiny_repo / "metrics" / "r0.json").read_text())
    assert metrics["round"] == "r0"
    assert metrics["eval"] == metrics["eval_sets"]["starter"]
    for name, expected_problems in (("starter", 6), ("humaneval", 3)):
        block = metrics["eval_sets"][name]
        assert block["problems"] == expected_problems and block["samples_per_problem"] == 3
        for key in ("pass@1", "greedy_pass@1", "oracle_pass@n"):
            assert 0.0 <= block[key] <= 1.0
    assert set(metrics["seconds"]) == {"sample", "execute", "evaluate"}


def test_outputs_are_versioned_by_dvc(tiny_repo):
    lock = (tiny_repo / "dvc.lock").read_text()
    for stage in ("prepare_models", "prepare_data", "sample@r0", "execute@r0", "evaluate@r0"):
        assert f"{stage}:" in lock
    shown = json.loads(sh(["dvc", "metrics", "show", "--json"], tiny_repo).split("\n", 1)[0] or "{}")
    assert "metrics/r0.json" in json.dumps(shown)
    results = (tiny_repo / "data" / "r0" / "results" / "eval-starter.jsonl").read_text().splitlines()
    assert len(results) == 6 * 4  # 3 samples + 1 greedy per problem
    assert all(json.loads(line)["status"] != "sandbox_error" for line in results)


def test_second_repro_runs_nothing(tiny_repo):
    out = sh(["dvc", "repro"], tiny_repo)
    assert "Running stage" not in out
