"""The self-training flow's params handling and summary table (no server needed)."""

from __future__ import annotations

import shutil
import subprocess

from coderanker.config import load_params
from flows.self_training import configure, summary_table
from tasks.dvc import pipeline_identity, slot_name

from ..helpers import REPO


def make_repo(tmp_path):
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def test_profile_rounds_and_overrides_are_written(tmp_path):
    repo = make_repo(tmp_path)
    params = configure(repo, "tiny", 2, {"sample.samples_per_problem": 5})
    assert list(params["rounds"]) == ["r0", "r1", "r2"] and params["rounds"]["r2"]["previous"] == "r1"
    assert load_params(repo / "params.yaml") == params
    assert params["model"]["source"].startswith("tiny-random")
    assert params["sample"]["samples_per_problem"] == 5


def test_unchanged_params_are_not_rewritten(tmp_path):
    repo = make_repo(tmp_path)
    configure(repo, "tiny", 1, {})
    stamp = (repo / "params.yaml").stat().st_mtime_ns
    configure(repo, "tiny", 1, {})
    configure(repo, None, None, {})
    assert (repo / "params.yaml").stat().st_mtime_ns == stamp


def test_summary_table_has_a_row_per_round():
    block = {"problems": 50, "pass@1": 0.1, "greedy_pass@1": 0.12, "reranked_pass@1": 0.2,
             "oracle_pass@n": 0.3, "reranker_auc": None}
    table = summary_table({"r0": {"eval": block, "train": {"pairs": 10, "hard_negatives": 0}}},
                          {"r0": ["sample@r0"]})
    lines = table.splitlines()
    assert len(lines) == 3 and lines[2].startswith("| r0 | 50 | 0.100 | 0.120 | 0.200 | 0.300 | - | 10 | 0 | 1 |")


def test_clones_of_one_repository_share_one_pipeline_slot(tmp_path):
    """Workers on different hosts each run in their own clone: the slot is named after the
    repository they cloned, so they serialise; another repository gets another slot."""
    def git(*args, cwd=tmp_path):
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)

    origin = tmp_path / "origin"
    origin.mkdir()
    git("init", "-q", str(origin))
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x", cwd=origin)
    for clone in ("a", "b"):
        git("clone", "-q", f"file://{origin}", str(tmp_path / clone))
    assert pipeline_identity(str(tmp_path / "a")) == f"file://{origin}"
    assert slot_name(str(tmp_path / "a")) == slot_name(str(tmp_path / "b"))
    assert slot_name(str(tmp_path / "a")).startswith("coderanker-pipeline-origin-")
    assert slot_name(str(origin)) != slot_name(str(tmp_path / "a"))  # no origin: the checkout's own path
