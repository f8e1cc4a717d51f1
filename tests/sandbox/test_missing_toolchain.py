"""A problem whose language has no toolchain on this machine: execute_file refuses the file
before anything runs, with one error that names the language, the missing command and the
first such problem's file and line (never a file of sandbox_error results)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from coderanker import cli, executor
from coderanker.executor import ToolchainMissingError, execute_file
from coderanker.languages import LANGUAGES
from coderanker.sandbox import SandboxConfig, runner

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sandbox"
CONFIG = SandboxConfig(workers=1, uid_base=63700)


def fixture_records(language: str, count: int = 2) -> list[dict]:
    with open(FIXTURES / f"{language}.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line, _ in zip(handle, range(count), strict=False)]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    """Two Python problems, then two C# problems (lines 3 and 4), a candidate for each."""
    problems = fixture_records("py") + fixture_records("cs")
    candidates = [{"name": p["name"], "completion": p["reference"]} for p in problems]
    return write_jsonl(tmp_path / "problems.jsonl", problems), write_jsonl(tmp_path / "candidates.jsonl", candidates)


@pytest.fixture
def without_mcs(tmp_path, monkeypatch):
    """The sandbox's command lookup (runner._which: shutil.which on a fixed PATH) pointed at
    a PATH with mono but without mcs, as on a machine where mono-mcs is not installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("mono") or "/usr/bin/mono", bin_dir / "mono")
    real = shutil.which

    def which(name, mode=os.F_OK | os.X_OK, path=None):  # the sandbox's lookups pass their own PATH
        return real(name, mode, path if path is None else str(bin_dir))

    monkeypatch.setattr(shutil, "which", which)
    runner._which.cache_clear()  # it remembers what it found
    yield
    runner._which.cache_clear()


def test_refused_before_anything_runs_naming_language_command_file_and_line(files, tmp_path, without_mcs,
                                                                            monkeypatch):
    problems, candidates = files
    monkeypatch.setattr(executor, "execute_programs", lambda *a, **k: pytest.fail("a program ran"))
    with pytest.raises(ToolchainMissingError) as raised:
        execute_file(problems, candidates, tmp_path / "out.jsonl", CONFIG)
    assert str(raised.value) == (f"{problems}:3: language 'cs': toolchain missing: mcs is not installed "
                                 f"(run `make setup`) or drop the file's 'cs' problems")
    assert list(tmp_path.glob("*out.jsonl*")) == []  # no results file, not even a temporary one


def test_the_cli_prints_it_as_one_line(files, tmp_path, without_mcs, capsys):
    problems, candidates = files
    code = cli.main(["execute", "--problems", str(problems), "--candidates", str(candidates),
                     "--out", str(tmp_path / "out.jsonl"), "--workers", "1", "--params", str(tmp_path / "none.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err == [f"error: {problems}:3: language 'cs': toolchain missing: mcs is not installed "
                                 f"(run `make setup`) or drop the file's 'cs' problems"]


def test_problems_without_candidates_do_not_count(files, tmp_path, without_mcs):
    problems, candidates = files
    python_only = write_jsonl(tmp_path / "python.jsonl",
                              [c for c in map(json.loads, candidates.read_text().splitlines()) if "_py" in c["name"]])
    counts = execute_file(problems, python_only, tmp_path / "out.jsonl", CONFIG)
    assert counts == {"passed": 2}


def test_every_toolchain_of_this_machine_is_found():
    """make setup installed all eight: the check finds nothing missing (no false refusal)."""
    assert {code: executor.missing_toolchain(code, CONFIG) for code in LANGUAGES} == {
        code: "" for code in LANGUAGES}
