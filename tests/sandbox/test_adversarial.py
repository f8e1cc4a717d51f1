"""Hostile programs, one threat per class. Each must get the right status, and nothing it
started may still be running afterwards."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import replace
from pathlib import Path

import pytest

from coderanker.sandbox import SandboxConfig, Status
from coderanker.sandbox.pool import execute_programs

# uid_base 63000: apart from the pipeline's default sandbox uids, so a pipeline running on the
# same machine never shows up in (or counts against) these tests.
CONFIG = SandboxConfig(timeout_s=3, cpu_s=3, memory_mb=256, max_processes=16, output_limit_kb=256, workers=2,
                       uid_base=63000, compile_timeout_s=30, tmp_size_mb=16, tmp_inodes=512)
#: For the managed runtimes, whose start alone can take seconds on a loaded machine.
SLOW_START = replace(CONFIG, timeout_s=30, cpu_s=30)
ROOT = os.geteuid() == 0
REPO = Path(__file__).resolve().parents[2]


def run(source: str, config: SandboxConfig = CONFIG, language: str = "py"):
    (outcome,) = execute_programs([(language, source)], config)
    return outcome


def _pids_of(uid: int) -> list[int]:
    """Live processes of `uid` anywhere on the host (zombies excluded: their parent reaps them)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid != uid:
                    continue
                with open(f"/proc/{entry.name}/stat", "rb") as handle:
                    state = handle.read().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in (b"Z", b"X"):
                pids.append(int(entry.name))
    return pids


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


MEMORY_BOMBS = {
    "cpp": "#include <vector>\nint main() { std::vector<char*> v; while (true) v.push_back(new char[1 << 20]()); }\n",
    "java": ("import java.util.*;\nclass Problem { public static void main(String[] a) {\n"
             "List<long[]> l = new ArrayList<>(); while (true) l.add(new long[1 << 20]); } }\n"),
    "js": "let a = [];\nwhile (true) a.push(new Array(1e6).fill(1));\n",
    "ts": "let a: number[][] = [];\nwhile (true) a.push(new Array(1e6).fill(1));\n",
    "php": "<?php\n$a = [];\nwhile (true) $a[] = str_repeat('x', 1 << 20);\n",
    "sh": "x=a\nwhile true; do x=$x$x; done\n",
    "cs": ("using System; using System.Collections.Generic;\nclass Problem { static void Main() {\n"
           "var l = new List<byte[]>(); while (true) l.Add(new byte[1 << 20]); } }\n"),
}


class TestMemoryBomb:
    def test_one_huge_allocation(self):
        assert run("x = bytearray(10**11)\n").status is Status.MEMORY_EXCEEDED

    def test_growing_list(self):
        assert run("x = []\nwhile True:\n    x.append(' ' * 10**6)\n").status is Status.MEMORY_EXCEEDED

    @pytest.mark.parametrize("language", list(MEMORY_BOMBS))
    def test_every_other_language(self, language):
        outcome = run(MEMORY_BOMBS[language], SLOW_START, language=language)
        assert outcome.status is Status.MEMORY_EXCEEDED, outcome.stderr_tail


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

    def test_only_an_isolated_loopback(self):
        source = (
            "import socket\n"
            "print([name for _, name in socket.if_nameindex()])\n"
            "server = socket.socket(); server.bind(('127.0.0.1', 0)); server.listen()\n"
            "print('listening', server.getsockname()[1])\n"
        )
        outcome = run(source)
        assert outcome.status is Status.PASSED and outcome.stdout_tail.startswith("['lo']")
        port = int(outcome.stdout_tail.split()[-1])
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass  # the sandbox's loopback is not the host's


class TestForkBomb:
    def test_contained_and_reaped(self):
        source = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
        assert run(source).status is Status.TIMEOUT

    def test_shell_fork_bomb_with_a_daemon(self):
        outcome = run("setsid sleep 1000 &\nbomb() { bomb | bomb & }\nbomb\nsleep 1000\n", language="sh")
        assert outcome.status is Status.TIMEOUT


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


class TestHostEnvironmentAndHome:
    def test_environment_is_scrubbed_and_uid_dropped(self):
        os.environ["CODERANKER_SECRET"] = "leak"
        try:
            outcome = run("import os\nprint(sorted(os.environ), os.getuid())\n")
        finally:
            del os.environ["CODERANKER_SECRET"]
        assert "CODERANKER_SECRET" not in outcome.stdout_tail
        if ROOT:
            assert outcome.stdout_tail.split()[-1] != "0"

    def test_no_host_secrets_home_or_project(self):
        source = (
            "import os\n"
            "print('uid', os.getuid())\n"
            "print('env', sorted(os.environ))\n"
            f"for folder in ['/root', '/home', os.path.expanduser('~'), {str(REPO)!r}]:\n"
            "    print('list', folder, os.listdir(folder) if os.path.isdir(folder) else None)\n"
            "try:\n"
            "    print('SHADOW', open('/etc/shadow').read()[:10])\n"
            "except OSError as err:\n"
            "    print('shadow denied', err.errno)\n"
            "print('pids', sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
            "try:\n"
            "    print('ENVIRON', open('/proc/1/environ').read())\n"
            "except OSError as err:\n"
            "    print('environ denied', err.errno)\n"
        )
        os.environ["CODERANKER_SECRET"] = "leak"
        try:
            outcome = run(source)
        finally:
            del os.environ["CODERANKER_SECRET"]
        lines = dict(line.split(" ", 1) for line in outcome.stdout_tail.splitlines())
        assert outcome.status is Status.PASSED, outcome.stderr_tail
        assert "CODERANKER_SECRET" not in outcome.stdout_tail and "SHADOW" not in outcome.stdout_tail
        assert "ENVIRON" not in outcome.stdout_tail
        assert all(line.endswith("[]") or line.endswith("None") for key, line in lines.items() if key == "list")
        assert f"'{REPO.name}'" not in outcome.stdout_tail
        # PID namespace: the program sees a handful of processes (its sandbox's), never the host's
        assert len(eval(lines["pids"])) < 6 and os.getpid() not in eval(lines["pids"])
        if ROOT:
            assert lines["uid"] != "0"


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


class TestCompileThatNeverEnds:
    def test_exponential_template_instantiation_times_out(self):
        source = (
            "template <int N, int M> struct Grow {\n"
            "    enum { value = Grow<N - 1, 2 * M>::value + Grow<N - 1, 2 * M + 1>::value };\n"
            "};\n"
            "template <int M> struct Grow<0, M> { enum { value = 1 }; };\n"
            "int main() { return Grow<40, 0>::value; }\n"
        )
        outcome = run(source, replace(CONFIG, compile_timeout_s=3), language="cpp")
        assert outcome.status is Status.TIMEOUT and outcome.detail == "compile time limit"


class TestWriteOutsideTheTemporaryDirectory:
    TARGETS = ["/", "/etc", "/usr", "/var/tmp", "/dev", "/dev/shm", "/root", "/home", "/proc", str(REPO)]

    def test_only_its_own_directory_is_writable(self):
        source = (
            "import os\n"
            f"for folder in {self.TARGETS!r}:\n"
            "    try:\n"
            "        with open(os.path.join(folder, 'coderanker-escape'), 'w') as f:\n"
            "            f.write('x')\n"
            "        print('WROTE', folder)\n"
            "    except OSError as err:\n"
            "        print('denied', folder, err.errno)\n"
            "open('mine', 'w').write('ok')\n"
            "print('own', os.getcwd())\n"
        )
        outcome = run(source)
        assert outcome.status is Status.PASSED, outcome.stderr_tail
        assert "WROTE" not in outcome.stdout_tail and outcome.stdout_tail.count("denied") == len(self.TARGETS)
        assert not any(os.path.exists(os.path.join(folder, "coderanker-escape")) for folder in self.TARGETS)

    def test_nothing_written_survives_into_the_next_program(self):
        run("open('left-over', 'w').write('x')\nopen('/tmp/left-over-tmp', 'w').write('x')\n")
        outcome = run("import os\nprint(sorted(os.listdir('.')), sorted(os.listdir('/tmp')))\n")
        assert "left-over" not in outcome.stdout_tail

    def test_tmp_is_a_private_writable_scratch_space_within_the_budget(self):
        """As on any machine, a program may write scratch files to /tmp ($TMPDIR); they count
        against the sandbox's tmpfs budget and are gone before the next program."""
        source = (
            "import os, tempfile\n"
            "with open('/tmp/scratch.txt', 'w') as f:\n"
            "    f.write('kept')\n"
            "with tempfile.NamedTemporaryFile('w', delete=False) as f:\n"
            "    f.write('x')\n"
            "assert open('/tmp/scratch.txt').read() == 'kept' and f.name.startswith('/tmp/')\n"
            "assert os.environ['TMPDIR'] == '/tmp'\n"
        )
        outcome = run(source)
        assert outcome.status is Status.PASSED, outcome.stderr_tail
        flood = run("with open('/tmp/big', 'wb') as f:\n    for _ in range(512):\n        f.write(b'x' * 2**20)\n",
                    replace(CONFIG, file_size_mb=1024))
        assert flood.status is Status.FAILED and "No space left" in flood.stderr_tail
        assert "scratch" not in run("import os\nprint(os.listdir('/tmp'))\n").stdout_tail


class TestKillTheParent:
    def test_cannot_signal_its_supervisor_and_the_next_program_runs(self):
        source = (
            "import os, signal\n"
            "for pid in (os.getppid(), 1, -1):\n"
            "    try:\n"
            "        os.kill(pid, signal.SIGKILL)\n"
            "        print('KILLED', pid)\n"
            "    except OSError as err:\n"
            "        print('denied', pid, err.errno)\n"
        )
        outcome = run(source)
        if ROOT:
            assert outcome.stdout_tail.count("denied") == 2 and "KILLED -1" in outcome.stdout_tail
            assert outcome.status is Status.PASSED
        assert run("print('alive')\n").stdout_tail == "alive\n"


class TestCloseStdout:
    def test_closing_its_output_is_still_judged_by_the_tests(self):
        assert run("import os\nos.close(1)\nos.close(2)\nassert 1 + 1 == 2\n").status is Status.PASSED
        assert run("import os\nos.close(1)\nos.close(2)\nassert 1 + 1 == 3\n").status is Status.FAILED


class TestFillTheDisk:
    def test_one_big_file_stops_at_the_tmpfs_size(self):
        source = (
            "import errno\n"
            "try:\n"
            "    with open('big', 'wb') as f:\n"
            "        while True:\n"
            "            f.write(b'0' * 2**20)\n"
            "except OSError as err:\n"
            "    print('stopped', errno.errorcode[err.errno])\n"
        )
        config = replace(CONFIG, file_size_mb=1024)
        outcome = run(source, config)
        assert outcome.status is Status.PASSED and "stopped ENOSPC" in outcome.stdout_tail

    def test_many_small_files_stop_at_the_inode_budget(self):
        source = (
            "import errno\n"
            "n = 0\n"
            "try:\n"
            "    while True:\n"
            "        open(f'f{n}', 'w').close()\n"
            "        n += 1\n"
            "except OSError as err:\n"
            "    print('stopped', errno.errorcode[err.errno], n)\n"
        )
        outcome = run(source)
        assert outcome.status is Status.PASSED and "stopped ENOSPC" in outcome.stdout_tail
        assert int(outcome.stdout_tail.split()[-1]) < CONFIG.tmp_inodes

    def test_the_next_program_gets_an_empty_tmpfs(self):
        run("open('big', 'wb').write(b'0' * 8 * 2**20)\n")
        outcome = run("import os\ns = os.statvfs('.')\nprint(s.f_bfree * s.f_frsize // 2**20)\n")
        assert int(outcome.stdout_tail) >= CONFIG.tmp_size_mb - 1
