"""A warm sandbox worker: one bubblewrap sandbox per worker slot, holding a Python
"zygote" (_zygote.py) that forks one child per step. The host sends it jobs and reads its
answers; a worker that dies or stops answering is killed and started afresh, and the job it
was given runs again on the fresh one."""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import signal
import struct
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ZYGOTE = Path(__file__).with_name("_zygote.py").read_text(encoding="utf-8")
REPO = Path(__file__).resolve().parents[2]
TOOLS_MOUNT = "/run/coderanker/tools"
#: Hidden behind empty tmpfs mounts: homes, runtime state and shared scratch space.
HIDDEN = ("/root", "/home", "/run", "/var/tmp", "/mnt", "/media", "/srv")
#: What the zygote needs to administer its children; a child that drops to its uid loses them all.
CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER")
SYSTEM_DIRS = {"/", "/usr", "/bin", "/lib", "/lib64", "/etc", "/opt", "/usr/local"}
log = logging.getLogger(__name__)


class WorkerError(OSError):
    """The worker (not the program) failed: sandbox_error."""


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker is started with; workers are shared between calls with equal specs."""

    python: str
    uid: int | None
    network: str
    tmp_size_mb: int
    tmp_inodes: int
    tools_dir: str


def hidden_paths() -> list[str]:
    """System-wide hidden paths plus this user's home, the repository and the working
    directory (candidates have no business reading the project or its secrets)."""
    extra = [os.path.expanduser("~"), str(REPO), os.getcwd()]
    paths = list(HIDDEN) + [p for p in map(os.path.realpath, extra) if p not in SYSTEM_DIRS]
    return [p for p in dict.fromkeys(paths) if os.path.isdir(p)]


def bwrap_command(spec: WorkerSpec) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise WorkerError("bubblewrap (bwrap) is not installed; run `make setup`")
    root = os.geteuid() == 0
    cmd = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
           "--unshare-cgroup-try"]
    if spec.network != "host":
        cmd.append("--unshare-net")
    if not root:
        cmd.append("--unshare-user")
    cmd += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for path in hidden_paths():
        cmd += ["--tmpfs", path]
    cmd += ["--size", str(spec.tmp_size_mb * 2**20), "--tmpfs", "/tmp", "--remount-ro", "/dev"]
    if spec.tools_dir and os.path.isdir(spec.tools_dir):
        cmd += ["--perms", "0755", "--dir", os.path.dirname(TOOLS_MOUNT), "--ro-bind", spec.tools_dir, TOOLS_MOUNT]
    if root:
        for cap in CAPS:
            cmd += ["--cap-add", cap]
    cmd += ["--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
            "--chdir", "/"]
    settings = {"tmp_size_mb": spec.tmp_size_mb, "tmp_inodes": spec.tmp_inodes}
    return cmd + ["--", spec.python, "-I", "-S", "-c", ZYGOTE, json.dumps(settings)]


_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def _spawn(cmd: list[str]) -> subprocess.Popen:
    """Start bwrap from one thread that lives as long as this process: --die-with-parent
    (PR_SET_PDEATHSIG) fires when the *thread* that started it ends, and pool threads come
    and go. If this process dies, every sandbox dies with it."""
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-spawner")
    return _spawner.submit(subprocess.Popen, cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, start_new_session=True).result()


def _forget_spawner() -> None:
    global _spawner, _spawner_lock
    _spawner, _spawner_lock = None, threading.Lock()  # its thread did not survive the fork


os.register_at_fork(after_in_child=_forget_spawner)


class Worker:
    """One warm sandbox; used by one thread at a time."""

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.proc: subprocess.Popen | None = None

    def _start(self) -> None:
        if not os.path.exists(self.spec.python):
            raise WorkerError(f"no Python interpreter at {self.spec.python} for the sandbox worker")
        try:
            self.proc = _spawn(bwrap_command(self.spec))
        except OSError as err:
            raise WorkerError(f"cannot start the sandbox: {err}") from err
        hello = self._read(time.monotonic() + 30)
        if not hello.get("ready"):
            raise self._died("the sandbox did not start")

    def run(self, job: dict, limit_s: float) -> dict:
        """Send a job and wait for its answer, at most limit_s seconds (a backstop: the
        worker enforces each step's own limit). A worker that dies or stops answering is
        replaced and the job sent once more (every job starts from a fresh directory, so
        running it again is safe): only a second failure in a row raises WorkerError."""
        try:
            return self._run_once(job, limit_s)
        except WorkerError as err:
            log.warning("%s; running its job again on a fresh sandbox worker", err)
            try:
                return self._run_once(job, limit_s)
            except WorkerError as again:
                raise WorkerError(f"{again}; the try before, on another worker: {err}") from again

    def _run_once(self, job: dict, limit_s: float) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.close()
            self._start()
        data = json.dumps(job).encode()
        try:
            self.proc.stdin.write(struct.pack(">I", len(data)) + data)
            self.proc.stdin.flush()
        except OSError as err:
            raise self._died(f"the sandbox worker is gone ({err})") from err
        return self._read(time.monotonic() + limit_s)

    def _read(self, deadline: float) -> dict:
        header = self._read_exactly(4, deadline)
        return json.loads(self._read_exactly(struct.unpack(">I", header)[0], deadline))

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        fd, data = self.proc.stdout.fileno(), b""
        while len(data) < size:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise self._died("the sandbox worker stopped answering")
            chunk = os.read(fd, size - len(data))
            if not chunk:
                raise self._died("the sandbox worker died")
            data += chunk
        return data

    def _died(self, why: str) -> WorkerError:
        code = self.proc.poll() if self.proc is not None else None
        stderr = self.close()
        why = f"{why} (exit status {code})" if code is not None else why
        return WorkerError(f"{why}: {stderr}" if stderr else why)

    def close(self) -> str:
        """Kill the sandbox (its PID namespace dies with it); returns the end of its stderr."""
        proc, self.proc = self.proc, None
        if proc is None:
            return ""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        os.set_blocking(proc.stderr.fileno(), False)  # never wait on a pipe a straggler may hold
        try:
            stderr = (proc.stderr.read() or b"").decode(errors="replace").strip()[-2000:]
        except OSError:
            stderr = ""
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
        return stderr
