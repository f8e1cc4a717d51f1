"""Hostile programs, one threat per class. Each must get the right status, and nothing it
started may still be running afterwards."""

from __future__ import annotations

import os
import time

import pytest

from coderanker.sandbox import SandboxConfig, Status, execute_programs
from coderanker.sandbox.runner import _pids_of

CONFIG = SandboxConfig(timeout_s=3, cpu_s=3, memory_mb=256, max_processes=16, output_limit_kb=256, workers=2)
ROOT = os.geteuid() == 0


def run(source: str, config: SandboxConfig = CONFIG):
    (outcome,) = execute_programs([("py", source)], config)
    return outcome


def sandbox_processes(config: SandboxConfig = CONFIG) -> list[int]:
    if not ROOT:
        return []
    return [pid for slot in range(config.effective_workers()) for pid in _pids_of(config.uid_base + slot)]


@pytest.fixture(autouse=True)
def nothing_left_running():
    yield
    time.sleep(0.1)
    assert sandbox_processes() == []


class TestInfiniteLoop:
    def test_timeout(self):
        outcome = run("while True:\n    pass\n")
        assert outcome.status is Status.TIMEOUT


class TestCpuLimit:
    def test_cpu_limit_counts_as_timeout(self):
        outcome = run("while True:\n    pass\n", SandboxConfig(timeout_s=30, cpu_s=1, workers=1))
        assert outcome.status is Status.TIMEOUT and outcome.detail == "cpu-time limit"


class TestSleepForever:
    def test_timeout(self):
        assert run("import time\ntime.sleep(1000)\n").status is Status.TIMEOUT


class TestMemoryBomb:
    def test_one_huge_allocation(self):
        assert run("x = bytearray(10**11)\n").status is Status.MEMORY_EXCEEDED

    def test_growing_list(self):
        assert run("x = []\nwhile True:\n    x.append(' ' * 10**6)\n").status is Status.MEMORY_EXCEEDED


class TestSyntaxError:
    def test_compile_error(self):
        outcome = run("def f(:\n    pass\n")
        assert outcome.status is Status.COMPILE_ERROR and "SyntaxError" in outcome.stderr_tail

    def test_null_byte_is_compile_error(self):
        assert run("x = 1\0\n").status is Status.COMPILE_ERROR


class TestNetwork:
    def test_connection_attempt_fails_inside_the_program(self):
        source = (
            "import socket\n"
            "for host in [('127.0.0.1', 22), ('1.1.1.1', 80), ('10.0.0.1', 80)]:\n"
            "    try:\n"
            "        socket.create_connection(host, timeout=1).close()\n"
            "        print('CONNECTED', host)\n"
            "    except OSError as err:\n"
            "        print('refused', host, err.errno)\n"
        )
        outcome = run(source)
        assert outcome.status is Status.PASSED
        assert "CONNECTED" not in outcome.stdout_tail and outcome.stdout_tail.count("refused") == 3


class TestForkBomb:
    def test_contained_and_reaped(self):
        source = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
        assert run(source).status is Status.TIMEOUT


class TestBackgroundDaemon:
    def test_daemon_that_left_the_process_group_is_killed(self):
        source = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)\n"
        assert run(source).status is Status.PASSED  # the program itself passes; its daemon dies


class TestHugeOutput:
    def test_killed_at_the_output_limit_with_a_capped_tail(self):
        outcome = run("while True:\n    print('x' * 1000)\n")
        assert outcome.status is Status.FAILED and outcome.detail == "output limit exceeded"
        assert len(outcome.stdout_tail) <= CONFIG.tail_bytes


class TestEarlyExit:
    def test_exit_zero_before_the_tests_end_is_not_a_pass(self):
        outcome = run("import os\nos._exit(0)\nassert False\n")
        assert outcome.status is Status.FAILED and "before the tests finished" in outcome.detail

    def test_sys_exit_zero_is_not_a_pass(self):
        assert run("import sys\nsys.exit(0)\nassert False\n").status is Status.FAILED


class TestEnvironment:
    def test_environment_is_scrubbed_and_uid_dropped(self):
        os.environ["CODERANKER_SECRET"] = "leak"
        try:
            outcome = run("import os\nprint(sorted(os.environ), os.getuid())\n")
        finally:
            del os.environ["CODERANKER_SECRET"]
        assert "CODERANKER_SECRET" not in outcome.stdout_tail
        if ROOT:
            assert outcome.stdout_tail.split()[-1] != "0"


class TestFileSize:
    def test_large_file_write_is_stopped(self):
        source = "with open('big', 'wb') as f:\n    f.write(b'0' * (64 * 2**20))\n"
        outcome = run(source, SandboxConfig(file_size_mb=1, workers=1))
        assert outcome.status is Status.FAILED


class TestInfrastructureFailure:
    def test_missing_interpreter_is_sandbox_error(self):
        outcome = run("pass\n", SandboxConfig(python="/nonexistent/python3", workers=1))
        assert outcome.status is Status.SANDBOX_ERROR

    def test_language_without_runner_is_sandbox_error(self):
        (outcome,) = execute_programs([("cobol", "x")], CONFIG)
        assert outcome.status is Status.SANDBOX_ERROR


class TestDeduplication:
    def test_identical_programs_share_one_run(self):
        outcomes = execute_programs([("py", "print(1)\n")] * 5 + [("py", "print(2)\n")], CONFIG)
        assert [o.stdout_tail for o in outcomes] == ["1\n"] * 5 + ["2\n"]
        assert len({id(o) for o in outcomes}) == 2
