"""Run one program in a warm sandbox worker and classify what happened."""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import sys
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from coderanker.languages import LANGUAGES, Language
from coderanker.sandbox.cache import CompileCache
from coderanker.sandbox.config import IOCases, SandboxConfig, Status
from coderanker.sandbox.warm import COMPILER_UID_OFFSET, server_spec
from coderanker.sandbox.worker import REPO, TOOLS_MOUNT, Worker, WorkerError, WorkerSpec

log = logging.getLogger(__name__)
WORKDIR = "/tmp/w"  # the program's directory inside the sandbox (_zygote.WORK)
JAVATUPLES = ("/usr/share/java/javatuples.jar",)
TSC = "node_modules/typescript/lib/tsc.js"
PCH_DIR = "pch"


@dataclass
class Outcome:
    """How one program ended."""

    status: Status
    exit_code: int | None
    duration_s: float
    stdout_tail: str
    stderr_tail: str
    detail: str = ""
    warm: bool = False
    """Compiled by a warm compiler (coderanker.sandbox.warm); not part of the record."""

    def to_record(self) -> dict:
        return {
            "status": self.status.value,
            "exit_code": self.exit_code,
            "duration_s": round(self.duration_s, 4),
            "stdout_tail": self.stdout_tail,
            "stderr_tail": self.stderr_tail,
            "detail": self.detail,
        }


def sandbox_error(why: str) -> Outcome:
    return Outcome(Status.SANDBOX_ERROR, None, 0.0, "", "", why)


class ToolchainMissing(OSError):
    """A compiler, runtime or library the language needs is not installed: sandbox_error."""


def _world_executable(path: str) -> bool:
    """True when a non-root uid can run `path` (every directory above it searchable)."""
    real = Path(os.path.realpath(path))
    try:
        if not real.stat().st_mode & 0o001:
            return False
        return all(parent.stat().st_mode & 0o001 for parent in real.parents)
    except OSError:
        return False


@cache
def sandbox_python(configured: str) -> str:
    """The interpreter of the workers: a system one the sandbox uid can execute, outside
    the paths the sandbox hides (homes, the repository)."""
    if configured:
        return configured
    for candidate in ("/usr/bin/python3", shutil.which("python3") or "", sys.executable):
        real = os.path.realpath(candidate) if candidate else ""
        if real and os.path.exists(real) and _world_executable(real) and not real.startswith(("/root/", "/home/")):
            return real
    raise ToolchainMissing("no system Python the sandbox can execute; set execute.python")


def tools_dir(config: SandboxConfig) -> str:
    return config.tools_dir or str(REPO / ".tools")


def worker_spec(config: SandboxConfig, slot: int) -> WorkerSpec:
    uid = config.uid_base + slot if os.geteuid() == 0 else None
    return WorkerSpec(sandbox_python(config.python), uid, config.network, config.tmp_size_mb, config.tmp_inodes,
                      tools_dir(config))


@cache
def _which(name: str) -> str:
    path = shutil.which(name, path="/usr/local/bin:/usr/bin:/bin")
    if path is None:
        raise ToolchainMissing(f"{name} is not installed (run `make setup`)")
    return os.path.realpath(path) if name in ("node", "java", "javac") else path


def template_values(language: Language, config: SandboxConfig, compiling: bool) -> dict:
    values = {"heap_mb": config.compile_memory_mb if compiling else config.memory_mb}
    if language.code == "java":
        values["javatuples"] = next((jar for jar in JAVATUPLES if os.path.exists(jar)), None)
        if values["javatuples"] is None:
            raise ToolchainMissing("javatuples is not installed (libjavatuples-java; run `make setup`)")
    if language.code == "ts":
        if not os.path.exists(os.path.join(tools_dir(config), TSC)):
            raise ToolchainMissing(f"TypeScript is not installed in {tools_dir(config)} (run `make setup`)")
        values["tsc"] = f"{TOOLS_MOUNT}/{TSC}"
    return values


def command(language: Language, template: tuple[str, ...], config: SandboxConfig, compiling: bool,
            source: str = "") -> list[str]:
    argv = language.command(template, source, **template_values(language, config, compiling))
    if not argv[0].startswith("./"):
        argv[0] = _which(argv[0])
    if compiling and language.code == "cpp" and _includes_stdcpp(source) and _has_pch(config):
        # The program includes everything anyway; including the precompiled header first is
        # the same program, compiled in a third of the time (make setup builds it).
        argv[1:1] = ["-I", f"{TOOLS_MOUNT}/{PCH_DIR}", "-include", "bits/stdc++.h"]
    return argv


def _includes_stdcpp(source: str) -> bool:
    return any(line.replace(" ", "") == "#include<bits/stdc++.h>" for line in source.splitlines()[:50])


def _has_pch(config: SandboxConfig) -> bool:
    return os.path.exists(os.path.join(tools_dir(config), PCH_DIR, "bits", "stdc++.h.gch"))


def step(language: Language, stage: str, argv: list[str] | None, config: SandboxConfig, source: str = "",
         case: tuple[str, str] | None = None, tolerance: float = 0.0) -> dict:
    compiling = stage == "compile"
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORKDIR, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
           **dict(language.env)}
    return {
        "stage": stage,
        "argv": argv,
        "python": language.source_name(source) if argv is None else None,
        "env": env,
        "timeout": config.compile_timeout_s if compiling else config.timeout_s,
        "rlimits": config.rlimits(compiling, language.runtime_mb, language.min_processes),
        "keep": list(language.artefacts) if compiling else [],
        "quiet": compiling and language.check_must_be_quiet,
        "markers": [] if compiling else [*language.failure_markers, *language.memory_markers],
        **({"stdin": base64.b64encode(case[0].encode()).decode(), "expect": case[1], "tolerance": tolerance}
           if case is not None else {}),
    }


def build_job(language: Language, source: str, config: SandboxConfig, uid: int | None,
              artefacts: dict[str, str] | None, io: IOCases | None = None) -> dict:
    """The worker's job: the source (and cached artefacts, which skip the compile step);
    for a stdin/stdout program one run step per case, which stops at the first that fails."""
    files = {language.source_name(source): base64.b64encode(source.encode()).decode(), **(artefacts or {})}
    steps = []
    if language.compile and artefacts is None:
        steps.append(step(language, "compile", command(language, language.compile, config, True, source), config,
                          source))
        if config.warm_compilers and uid is not None:  # never under the programs' own uid
            spec = server_spec(language, steps[-1]["argv"], language.source_name(source), steps[-1]["rlimits"],
                               steps[-1]["env"], config.compile_memory_mb, _which,
                               f"{TOOLS_MOUNT}/{os.path.dirname(os.path.dirname(TSC))}")
            if spec:
                steps[-1]["server"] = spec
    run_argv = command(language, language.run, config, False, source) if language.run else None
    if io is not None and run_argv is None:
        # A whole stdin/stdout Python program runs as on any machine: its own interpreter,
        # site included (exit(), quit(), threads and atexit behave), never the worker's memory;
        # it is checked first, as compile() checks a program with tests.
        python, name = sandbox_python(config.python), language.source_name(source)
        check = [python, "-I", "-S", "-c", "import sys; compile(open(sys.argv[1], 'rb').read(), sys.argv[1], 'exec')",
                 name]
        steps.append(step(language, "compile", check, config, source))
        run_argv = [python, "-I", name]
    if io is None:
        steps.append(step(language, "run", run_argv, config, source))
    else:
        steps += [step(language, "run", run_argv, config, source, case, io.tolerance) for case in io.cases]
    return {"uid": uid, "compiler_uid": None if uid is None else uid + COMPILER_UID_OFFSET,
            "files": files, "steps": steps, "tail": config.tail_bytes,
            "output_limit": config.output_limit_kb * 1024, "keep_limit": 64 * 2**20}


def run_program(language_code: str, source: str, config: SandboxConfig, worker: Worker,
                compiled: CompileCache | None = None, io: IOCases | None = None) -> Outcome:
    """Run one whole program (check or compile, then run, or run once per I/O case) on a
    warm worker."""
    language = LANGUAGES.get(language_code)
    if language is None:
        return sandbox_error(f"no runner for language {language_code!r}")
    try:
        toolchain = (os.path.join(tools_dir(config), TSC),) if language.code == "ts" else ()
        key = compiled.key(language, source, toolchain) if compiled is not None and language.artefacts else None
        artefacts = compiled.get(key) if key else None
        job = build_job(language, source, config, worker.spec.uid, artefacts, io)
        # a warm compile that runs out of time is compiled cold again; a compiler may first set itself up
        limit = sum(s["timeout"] * (2 if s.get("server") else 1) + (s.get("server") or {}).get("setup_timeout", 0)
                    for s in job["steps"]) + 30
        answer = worker.run(job, limit)
    except (WorkerError, OSError) as err:  # the machine failed us, not the program
        return sandbox_error(f"{type(err).__name__}: {err}")
    if "error" in answer:
        return sandbox_error(f"sandbox worker: {answer['error']}")
    if answer.get("warm_fallbacks"):
        log.debug("warm compiler fell back to a cold compile: %s", answer["warm_fallbacks"])
    outcome = classify(language, answer["steps"], config, len(io.cases) if io else None)
    outcome.warm = any(s.get("warm") for s in answer["steps"])
    if key and answer["files"] and outcome.status is not Status.COMPILE_ERROR:
        compiled.put(key, answer["files"])
    return outcome


def _text(data: str) -> str:
    return base64.b64decode(data).decode("utf-8", errors="replace")


def classify(language: Language, steps: list[dict], config: SandboxConfig, cases: int | None = None) -> Outcome:
    """The status of a program from its steps; with `cases`, a stdin/stdout program whose run
    steps are its cases: every one must run cleanly and match, and `detail` names the first
    case that did not."""
    outcome = _classify(language, steps, config, whole_program=cases is not None)
    if cases is None or steps[-1]["stage"] != "run":
        return outcome
    case = sum(s["stage"] == "run" for s in steps)
    where = f"case {case} of {cases}"
    if outcome.status is Status.PASSED and steps[-1].get("mismatch"):
        return replace(outcome, status=Status.FAILED, detail=f"{where}: wrong answer: {steps[-1]['mismatch']}")
    if outcome.status is Status.PASSED and case < cases:  # the worker stopped early: never a label
        return replace(outcome, status=Status.SANDBOX_ERROR, detail=f"{where}: the cases after it did not run")
    if outcome.status is not Status.PASSED:
        return replace(outcome, detail=f"{where}: {outcome.detail}" if outcome.detail else where)
    return outcome


def _classify(language: Language, steps: list[dict], config: SandboxConfig, whole_program: bool = False) -> Outcome:
    last = steps[-1]
    code, events = last["code"], last["events"]
    stdout, stderr = _text(last["stdout"]), _text(last["stderr"])
    duration = sum(s["duration_s"] for s in steps)

    def outcome(status: Status, detail: str = "") -> Outcome:
        return Outcome(status, code, duration, stdout, stderr, detail)

    if "E" in events or not last["clean"]:
        return outcome(Status.SANDBOX_ERROR, "sandbox set-up failed" if "E" in events else "processes survived")
    cpu_limit = last["cpu_s"] >= (config.compile_cpu_s if last["stage"] == "compile" else config.cpu_s) - 0.05
    killed_at_cpu_limit = code == -signal.SIGXCPU or (code == -signal.SIGKILL and cpu_limit)
    if last["stage"] == "compile":
        if last["timed_out"] or killed_at_cpu_limit:
            return outcome(Status.TIMEOUT, "compile time limit")
        if last["flooded"]:
            return outcome(Status.COMPILE_ERROR, "compiler output limit exceeded")
        if code == 0:
            return outcome(Status.COMPILE_ERROR, "the syntax check reported errors (and exited 0)")
        return outcome(Status.COMPILE_ERROR)
    if last["flooded"]:
        return outcome(Status.FAILED, "output limit exceeded")
    if last["timed_out"]:
        return outcome(Status.TIMEOUT, "wall-clock limit")
    if "C" in events:
        return outcome(Status.COMPILE_ERROR)
    if "M" in events or any(marker in stderr for marker in language.memory_markers):
        return outcome(Status.MEMORY_EXCEEDED)
    if killed_at_cpu_limit:
        return outcome(Status.TIMEOUT, "cpu-time limit")
    if any(marker in stderr for marker in language.failure_markers):
        return outcome(Status.FAILED, "assertion failed")
    if code == 0 and language.run == () and not whole_program and "D" not in events:
        return outcome(Status.FAILED, "exited before the tests finished")
    if code == 0:
        return outcome(Status.PASSED)
    if code is not None and code < 0:
        return outcome(Status.FAILED, f"killed by signal {signal.Signals(-code).name}")
    return outcome(Status.FAILED)
