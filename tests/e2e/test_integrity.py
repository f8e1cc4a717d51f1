"""Lineage that holds under re-runs and bad input, on copies of the uninterrupted tiny run:
a seeded stage re-run with `dvc repro --force` writes the same bytes (so nothing downstream
re-runs), and a bad params file or a malformed source line stops `dvc repro` with one
clear error while the previous outputs, dvc.lock and the MLflow registry stay as they were."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ..helpers import differing_files, differing_outputs, lock_outs, sh

pytestmark = pytest.mark.e2e
# One stage of every kind; seeded, so each must reproduce its outputs exactly.
FORCED = ("prepare_models", "prepare_data", "ppo@r1", "sample@r0", "execute@r0", "mine@r1", "train_reranker@r0",
          "evaluate@r0")


def workspace_outs(repo: Path) -> dict[str, str]:
    from coderanker.tracking import content_md5

    return {path: content_md5(repo / path) for path in lock_outs(repo)}


def registry(repo: Path) -> list[tuple]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    versions = client.search_model_versions("name='coderanker-reranker'")
    return sorted((v.version, tuple(sorted(v.aliases)), v.run_id) for v in versions)


def failing_repro(repo: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode != 0, done.stdout[-3000:]
    return done.stdout + done.stderr


@pytest.fixture
def repo(tmp_path, tiny_repo) -> Path:
    copy = tmp_path / "coderanker"
    shutil.copytree(tiny_repo, copy, symlinks=True)
    return copy


def test_a_forced_rerun_of_seeded_stages_writes_identical_outputs(repo, tiny_repo):
    assert lock_outs(repo), "the tiny run left no dvc.lock"
    for stage in FORCED:
        out = sh(["dvc", "repro", "--force", "--single-item", stage], repo)
        assert f"Running stage '{stage}'" in out
    differ = differing_outputs(repo, tiny_repo)
    assert not differ, f"re-running seeded stages changed {differing_files(repo, tiny_repo, differ)}"
    assert "Running stage" not in sh(["dvc", "repro"], repo)  # so nothing downstream re-runs


@pytest.mark.parametrize("case", ["params", "source"])
def test_bad_input_stops_with_one_clear_error_and_loses_nothing(repo, case):
    lock, outputs, versions = (repo / "dvc.lock").read_text(), workspace_outs(repo), registry(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    if case == "params":  # a misspelt key whose section only a later stage reads
        text = (repo / "params.yaml").read_text().replace("  temperature:", "  temprature:", 1)
        (repo / "params.yaml").write_text(text)
        line = 1 + text[: text.index("temprature:")].count("\n")
        expected = f"params.yaml:{line}: sample.temprature: unknown key (did you mean temperature?)"
    else:  # a new training source whose third line is cut short
        good = sh([sys.executable, "-m", "coderanker.cli", "data", "export", "starter:train", "--out",
                   "data/sources/extra.jsonl"], repo) and (repo / "data/sources/extra.jsonl").read_text()
        lines = good.splitlines(keepends=True)[:4]
        lines[2] = lines[2][: len(lines[2]) // 2] + "\n"
        (repo / "data/sources/extra.jsonl").write_text("".join(lines))
        params["data"]["train"] = ["starter:train", "data/sources/extra.jsonl"]
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        expected = "data/sources/extra.jsonl:3: <line>: invalid JSON"
    output = failing_repro(repo)
    assert expected in output, output[-3000:]
    assert "Traceback" not in output, "a bad input is an error message, not a crash"
    assert (repo / "dvc.lock").read_text() == lock
    assert workspace_outs(repo) == outputs, "a failed stage must leave the previous outputs in place"
    assert registry(repo) == versions
