"""A full disk. A program that fills the sandbox's private /tmp (bytes or inodes, each file
within file_size_mb) has failed, and its detail says why; the programs after it on the same
worker find a fresh tmpfs; nothing is lost. A full disk on the host's side (the compile
cache, the results file) is no program's fault: execute_file stops with one error naming
what it was writing, labels nothing, and leaves no results file behind."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest

from coderanker.executor import execute_file
from coderanker.sandbox import IOCases, SandboxConfig, Status
from coderanker.sandbox.pool import execute_programs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sandbox"
# One worker: every program runs in the same sandbox, after the one that filled its /tmp.
CONFIG = SandboxConfig(workers=1, uid_base=63600, timeout_s=10, cpu_s=10, memory_mb=256, file_size_mb=4,
                       tmp_size_mb=16, tmp_inodes=512)
NO_SPACE = "no space left in the sandbox's /tmp"
FILL_BYTES = ("for i in range(100):  # files of 3 MB: within file_size_mb, and /tmp fills\n"
              "    with open(f'/tmp/part{i}', 'wb') as f:\n"
              "        f.write(b'x' * 3 * 2**20)\n")
FILL_INODES = "for i in range(10**6):\n    open(f'empty{i}', 'w').close()\n"
SCRATCH = ("import os\n"  # nothing of the filler is left, and /tmp has room again
           "left = [n for n in os.listdir('/tmp') + os.listdir('.') if n.startswith(('part', 'empty'))]\n"
           "assert not left, left[:5]\n"
           "open('/tmp/scratch', 'wb').write(b'x' * 2**20)\n"
           "s = os.statvfs('/tmp')\n"
           f"assert s.f_bavail * s.f_frsize >= {CONFIG.tmp_size_mb - 2} * 2**20, s\n"
           f"assert s.f_favail >= {CONFIG.tmp_inodes - 16}, s\n")


def test_a_program_that_fills_its_tmp_fails_and_the_next_ones_find_it_fresh():
    echo = IOCases((("1\n", "1\n"), ("2\n", "2\n")))
    programs = [("py", FILL_BYTES), ("py", SCRATCH), ("py", FILL_INODES), ("py", "#1\n" + SCRATCH),
                ("py", FILL_BYTES + "print(input())\n", echo), ("py", "print(input())\n" + SCRATCH, echo),
                ("py", "#2\n" + SCRATCH)]
    outcomes = execute_programs(programs, CONFIG)
    assert [o.status for o in outcomes] == [Status.FAILED, Status.PASSED, Status.FAILED, Status.PASSED,
                                            Status.FAILED, Status.PASSED, Status.PASSED], \
        [(o.status.value, o.detail, o.stderr_tail[-300:]) for o in outcomes]
    assert outcomes[0].detail == outcomes[2].detail == f"{NO_SPACE} (tmp_size_mb=16, tmp_inodes=512)"
    assert outcomes[4].detail == f"case 1 of 2; {NO_SPACE} (tmp_size_mb=16, tmp_inodes=512)"
    assert "No space left on device" in outcomes[0].stderr_tail


def test_a_program_that_handles_a_full_tmp_is_judged_by_its_tests():
    catches = "try:\n" + "".join("    " + line + "\n" for line in FILL_BYTES.splitlines()) + \
              "except OSError as err:\n    print(err)\n"
    (outcome,) = execute_programs([("py", catches)], CONFIG)
    assert outcome.status is Status.PASSED and outcome.detail == ""


@pytest.fixture
def full_disk(tmp_path) -> Path:
    """A directory on a small filesystem that is already full (a tmpfs: root only)."""
    folder = tmp_path / "full"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small filesystem")
    try:
        with open(folder / "filler", "wb", buffering=0) as handle:
            try:
                while True:
                    handle.write(b"x" * 4096)
            except OSError as err:
                assert err.errno == errno.ENOSPC
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def write_files(folder: Path, language: str) -> tuple[Path, Path]:
    """A fixture language's problems and their references as candidates."""
    records = [json.loads(line) for line in open(FIXTURES / f"{language}.jsonl", encoding="utf-8")]
    problems, candidates = folder / "problems.jsonl", folder / "candidates.jsonl"
    problems.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    candidates.write_text("".join(json.dumps({"name": r["name"], "completion": r["reference"]}) + "\n"
                                  for r in records), encoding="utf-8")
    return problems, candidates


def test_a_full_compile_cache_stops_the_stage_naming_it(tmp_path, full_disk):
    problems, candidates = write_files(tmp_path, "cpp")
    config = SandboxConfig(workers=2, uid_base=63600, cache_dir=str(full_disk / "compiled"))
    with pytest.raises(OSError, match=f"cannot write the compile cache {full_disk}/compiled.*: No space left") as err:
        execute_file(problems, candidates, tmp_path / "out.jsonl", config)
    assert err.value.errno == errno.ENOSPC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["candidates.jsonl", "full", "problems.jsonl"]


def test_a_full_results_disk_stops_the_stage_naming_the_file(tmp_path, full_disk):
    problems, candidates = write_files(tmp_path, "py")
    out = full_disk / "results" / "out.jsonl"
    with pytest.raises(OSError, match=f"cannot write {out}: No space left on device") as err:
        execute_file(problems, candidates, out, CONFIG)
    assert err.value.errno == errno.ENOSPC
    assert os.listdir(out.parent) == []  # neither the results nor their temporary file
