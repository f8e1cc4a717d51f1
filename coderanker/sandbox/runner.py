"""Run one program in the sandbox and classify what happened."""

from __future__ import annotations

import json
import logging
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from coderanker.sandbox.config import SandboxConfig, Status

log = logging.getLogger(__name__)
LAUNCHER = (Path(__file__).with_name("_launcher.py")).read_text(encoding="utf-8")
SCRUBBED_PATH = "/usr/local/bin:/usr/bin:/bin"
_warned_network = False


@dataclass
class Outcome:
    """How one program ended."""

    status: Status
    exit_code: int | None
    duration_s: float
    stdout_tail: str
    stderr_tail: str
    detail: str = ""

    def to_record(self) -> dict:
        return {
            "status": self.status.value,
            "exit_code": self.exit_code,
            "duration_s": round(self.duration_s, 4),
            "stdout_tail": self.stdout_tail,
            "stderr_tail": self.stderr_tail,
            "detail": self.detail,
        }


class _Tail:
    """Keeps the last `keep` bytes of a stream and counts all of them."""

    def __init__(self, keep: int):
        self.keep, self.data, self.total = keep, b"", 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data = (self.data + chunk)[-self.keep :]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


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
def sandbox_python(configured: str, dropping_uid: bool) -> str:
    """The interpreter that runs Python programs: one the sandbox uid can execute."""
    if configured:
        return configured
    candidates = [sys.executable, shutil.which("python3") or "", "/usr/bin/python3"]
    for candidate in candidates:
        if candidate and os.path.exists(candidate) and (not dropping_uid or _world_executable(candidate)):
            return candidate
    raise FileNotFoundError("no Python interpreter that the sandbox uid can execute; set execute.python")


def sandbox_uid(config: SandboxConfig, slot: int) -> int | None:
    return config.uid_base + slot if os.geteuid() == 0 else None


def kill_uid(uid: int) -> int:
    """SIGKILL every process of `uid` (daemons that left the process group included)."""
    killed = 0
    for _ in range(50):  # a fork bomb may fork while we kill; its NPROC cap bounds this
        pids = [pid for pid in _pids_of(uid) if pid != os.getpid()]
        if not pids:
            return killed
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        time.sleep(0.005)
    return killed


def _pids_of(uid: int) -> list[int]:
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
            if state not in (b"Z", b"X"):  # zombies cannot be killed; their parent reaps them
                pids.append(int(entry.name))
    return pids


def run_python(source: str, config: SandboxConfig, slot: int = 0) -> Outcome:
    """Run a Python program; each run in a fresh temporary directory, removed afterwards."""
    uid = sandbox_uid(config, slot)
    try:
        python = sandbox_python(config.python, uid is not None)
    except FileNotFoundError as err:
        return Outcome(Status.SANDBOX_ERROR, None, 0.0, "", "", str(err))
    workdir = tempfile.mkdtemp(prefix="coderanker-", dir=config.tmp_root or None)
    try:
        program = os.path.join(workdir, "program.py")
        with open(program, "w", encoding="utf-8") as handle:
            handle.write(source)
        if uid is not None:
            os.chown(workdir, uid, uid)
            os.chown(program, uid, uid)
        return _run_launcher({"mode": "python", "program": program}, python, workdir, uid, config)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run_launcher(job: dict, python: str, workdir: str, uid: int | None, config: SandboxConfig) -> Outcome:
    status_r, status_w = os.pipe()
    rlimits = config.rlimits()
    if uid is None:
        rlimits.pop("RLIMIT_NPROC")  # would count all of the caller's processes
    job = {**job, "status_fd": status_w, "uid": uid, "network": config.network, "rlimits": rlimits}
    env = {"PATH": SCRUBBED_PATH, "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            [python, "-I", "-S", "-c", LAUNCHER, json.dumps(job)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(status_w,),
            cwd=workdir,
            env=env,
            start_new_session=True,
        )
    except OSError as err:
        os.close(status_r)
        os.close(status_w)
        return Outcome(Status.SANDBOX_ERROR, None, 0.0, "", "", f"spawn failed: {err}")
    os.close(status_w)
    try:
        events, out, err, timed_out, flooded = _collect(proc, status_r, config, start)
    finally:
        _kill_tree(proc, uid)
        os.close(status_r)
    duration = time.monotonic() - start
    return _classify(proc.returncode, events, out, err, timed_out, flooded, duration)


def _collect(proc, status_r, config, start):
    """Read stdout, stderr and status events until the program exits or a limit is hit."""
    out, err = _Tail(config.tail_bytes), _Tail(config.tail_bytes)
    events = bytearray()
    sinks = {proc.stdout.fileno(): out.add, proc.stderr.fileno(): err.add, status_r: events.extend}
    selector = selectors.DefaultSelector()
    for fd in sinks:
        selector.register(fd, selectors.EVENT_READ)
    deadline, limit = start + config.timeout_s, config.output_limit_kb * 1024
    timed_out = flooded = False
    exited_at = None
    try:
        while selector.get_map():
            now = time.monotonic()
            if proc.poll() is not None:
                exited_at = exited_at or now
                if now - exited_at > 0.05:  # left-over children may hold the pipes open
                    break
            elif now >= deadline:
                timed_out = True
                break
            for key, _ in selector.select(timeout=min(0.05, max(deadline - now, 0.001))):
                chunk = os.read(key.fd, 65536)
                if chunk:
                    sinks[key.fd](chunk)
                else:
                    selector.unregister(key.fd)
            if out.total + err.total > limit:
                flooded = True
                break
    finally:
        selector.close()
    return bytes(events), out, err, timed_out, flooded


def _kill_tree(proc: subprocess.Popen, uid: int | None) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if uid is not None:
        kill_uid(uid)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()


def _classify(code, events, out, err, timed_out, flooded, duration) -> Outcome:
    global _warned_network
    if b"N" in events and not _warned_network:
        _warned_network = True
        log.warning("the kernel refused a network namespace: programs run with the host network")
    tails = (out.text(), err.text())

    def outcome(status: Status, detail: str = "") -> Outcome:
        return Outcome(status, code, duration, *tails, detail)

    if b"E" in events or (code == 125 and b"R" not in events and b"C" not in events):
        return outcome(Status.SANDBOX_ERROR, "sandbox setup failed")
    if flooded:
        return outcome(Status.FAILED, "output limit exceeded")
    if timed_out:
        return outcome(Status.TIMEOUT, "wall-clock limit")
    if b"C" in events:
        return outcome(Status.COMPILE_ERROR)
    if b"M" in events or "MemoryError" in tails[1]:
        return outcome(Status.MEMORY_EXCEEDED)
    if b"T" in events or code == -signal.SIGXCPU:
        return outcome(Status.TIMEOUT, "cpu-time limit")
    if code == -signal.SIGKILL:
        return outcome(Status.MEMORY_EXCEEDED, "killed (out of memory)")
    if code == 0 and b"D" in events:
        return outcome(Status.PASSED)
    if code == 0:
        return outcome(Status.FAILED, "exited before the tests finished")
    if code is not None and code < 0:
        return outcome(Status.FAILED, f"killed by signal {signal.Signals(-code).name}")
    return outcome(Status.FAILED)
