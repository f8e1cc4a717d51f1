from __future__ import annotations

from pathlib import Path

import pytest

from ..helpers import copy_worktree, sh


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory) -> Path:
    """`coderanker profile use tiny && dvc repro` in a fresh copy of the working tree: the
    uninterrupted run other e2e tests compare against."""
    repo = copy_worktree(tmp_path_factory.mktemp("clone") / "coderanker")
    sh(["coderanker", "profile", "use", "tiny"], repo)
    sh(["dvc", "repro"], repo)
    return repo
