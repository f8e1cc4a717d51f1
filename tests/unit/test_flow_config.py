"""The self-training flow's params handling and summary table (no server needed)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys

import pytest

from coderanker.config import load_params
from flows.self_training import configure, summary_table
from tasks.dvc import checkout_lock

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


def test_checkout_lock_admits_one_run_at_a_time_and_names_the_holder(tmp_path):
    log = logging.getLogger("test")
    with checkout_lock(str(tmp_path), "flow run first", log) as path:
        assert "flow run first" in path.read_text()
        with pytest.raises(TimeoutError, match=r"self-training\.lock: the checkout is held by flow run first"):
            with checkout_lock(str(tmp_path), "flow run second", log, timeout_s=0.2, poll_s=0.05):
                raise AssertionError("two runs held the checkout")
    with checkout_lock(str(tmp_path), "flow run second", log, timeout_s=0):
        assert "flow run second" in path.read_text()


def test_checkout_lock_is_released_when_its_holder_dies(tmp_path):
    code = ("import logging, sys; from tasks.dvc import checkout_lock\n"
            f"with checkout_lock({str(tmp_path)!r}, 'doomed', logging.getLogger()):\n"
            "    print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(TimeoutError, match="doomed"):
        with checkout_lock(str(tmp_path), "waiter", logging.getLogger(), timeout_s=0.1, poll_s=0.05):
            pass
    holder.kill()
    holder.wait()
    with checkout_lock(str(tmp_path), "waiter", logging.getLogger(), timeout_s=5, poll_s=0.05):
        pass
