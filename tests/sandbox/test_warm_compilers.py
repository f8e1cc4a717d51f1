"""Warm compilers (javax.tools in one JVM, the TypeScript compiler API in one node) label
every program as a fresh javac/tsc does, under the same limits, out of the programs' reach."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from coderanker.problems import Problem
from coderanker.sandbox import IOCases, SandboxConfig, Status
from coderanker.sandbox.pool import execute_programs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sandbox"
ROOT = os.geteuid() == 0


def fixture_programs(language: str) -> list[tuple]:
    """The language's MultiPL-E fixtures (reference, wrong, broken) and its I/O fixtures."""
    programs = []
    for line in open(FIXTURES / f"{language}.jsonl", encoding="utf-8"):
        record = json.loads(line)
        programs += [(language, Problem.from_record(record).program(record[kind]))
                     for kind in ("reference", "wrong", "broken")]
    for line in open(FIXTURES / "io.jsonl", encoding="utf-8"):
        record = json.loads(line)
        if record["language"] == language:
            problem = Problem.from_record(record)
            programs += [(language, problem.io_program(p["completion"]), IOCases(problem.io_tests))
                         for p in record["programs"] if p["kind"] != "timeout"]
    return programs


def config(tmp_path: Path, **changes) -> SandboxConfig:
    settings = {"workers": 1, "uid_base": 63400, "timeout_s": 5, "cpu_s": 5, **changes}
    return SandboxConfig(cache_dir=str(tmp_path / f"cache-{len(os.listdir(tmp_path))}"), **settings)


@pytest.mark.parametrize("language", ["java", "ts"])
def test_warm_and_cold_compilers_label_every_fixture_alike(language, tmp_path):
    programs = fixture_programs(language)
    warm = execute_programs(programs, config(tmp_path))
    cold = execute_programs(programs, config(tmp_path, warm_compilers=False))
    assert [o.status for o in warm] == [o.status for o in cold], [
        (program[1][-200:], w.status.value, c.status.value, w.stderr_tail[-300:])
        for program, w, c in zip(programs, warm, cold, strict=True) if w.status is not c.status]
    assert all(o.warm for o in warm) and not any(o.warm for o in cold), [
        (o.status.value, o.detail, o.stderr_tail[-300:]) for o in warm if not o.warm]
    assert {o.status for o in warm} >= {Status.PASSED, Status.FAILED, Status.COMPILE_ERROR}
    broken = [w for w, c in zip(warm, cold, strict=True) if c.status is Status.COMPILE_ERROR]
    assert all("error" in o.stderr_tail for o in broken)  # the compiler's diagnostics, as tsc/javac print them


def test_a_compile_past_its_time_limit_is_a_timeout_and_the_compiler_starts_again(tmp_path):
    """A sandbox of its own, whose compiler has yet to start: no JVM starts in 50 ms."""
    program = fixture_programs("java")[0]
    (late,) = execute_programs([program], config(tmp_path, compile_timeout_s=0.05, uid_base=63450))
    assert late.status is Status.TIMEOUT and late.detail == "compile time limit"
    (again,) = execute_programs([program], config(tmp_path, uid_base=63450))
    assert again.status is Status.PASSED and again.warm, again


@pytest.mark.skipif(not ROOT, reason="programs and compilers get uids of their own only when run as root")
def test_programs_cannot_reach_the_compiler(tmp_path):
    """A program may signal every process of its own uid and look around /tmp: the compiler
    (another uid, a 0700 directory) survives and keeps compiling warm."""
    java = fixture_programs("java")[0]
    probe = ("import os, signal\n"
             "try:\n    os.listdir('/tmp/.compiler-java')\n    print('LISTED')\nexcept OSError as err:\n"
             "    print('denied', err.errno)\n"
             "for pid in [int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]:\n"
             "    try:\n        os.kill(pid, signal.SIGKILL)\n        print('KILLED', pid)\n"
             "    except OSError:\n        pass\n")
    first, poke, second = (execute_programs([program], config(tmp_path))[0]
                           for program in (java, ("py", probe), replace_comment(java)))
    assert first.warm and poke.status is Status.PASSED, poke.stderr_tail
    assert "denied" in poke.stdout_tail and "LISTED" not in poke.stdout_tail and "KILLED" not in poke.stdout_tail
    assert second.status is Status.PASSED and second.warm


def replace_comment(program: tuple) -> tuple:
    return (program[0], "// another program\n" + program[1])


def test_a_compiler_that_cannot_start_leaves_the_decision_to_the_cold_compile(tmp_path):
    """The compiler's limits are the compile step's: with a 1 MB heap no JVM starts, the warm
    compiler gives up and the cold compile, which fails the same way, decides."""
    program = fixture_programs("java")[0]
    (starved,) = execute_programs([program], replace(config(tmp_path), compile_memory_mb=1))
    (cold,) = execute_programs([program], replace(config(tmp_path), compile_memory_mb=1, warm_compilers=False))
    assert starved.status is cold.status and not starved.warm
