"""Sandbox settings and the typed result of one execution."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass


class Status(enum.StrEnum):
    """What happened to one program. SANDBOX_ERROR is the infrastructure's failure, never
    the program's: it is never a negative label and never a hard negative."""

    PASSED = "passed"
    FAILED = "failed"
    COMPILE_ERROR = "compile_error"
    TIMEOUT = "timeout"
    MEMORY_EXCEEDED = "memory_exceeded"
    SANDBOX_ERROR = "sandbox_error"


#: Statuses that say something about the program (usable as training labels).
LABEL_STATUSES = frozenset(Status) - {Status.SANDBOX_ERROR}


@dataclass(frozen=True)
class SandboxConfig:
    """Limits and isolation for every program; the `execute` section of params.yaml."""

    timeout_s: float = 10.0
    """Wall-clock limit per program; on expiry the whole process tree is killed."""
    cpu_s: int = 10
    """CPU-time limit (RLIMIT_CPU); SIGXCPU counts as a timeout."""
    memory_mb: int = 1024
    """Address-space limit (RLIMIT_AS)."""
    file_size_mb: int = 16
    """Largest file a program may write (RLIMIT_FSIZE)."""
    max_processes: int = 32
    """Processes per sandbox uid (RLIMIT_NPROC); effective where a uid is dropped to."""
    max_open_files: int = 64
    """Open file descriptors (RLIMIT_NOFILE)."""
    output_limit_kb: int = 1024
    """Stdout+stderr beyond this kills the program (status failed)."""
    tail_bytes: int = 2048
    """How much of the end of stdout and of stderr each result keeps."""
    network: str = "isolate"
    """isolate: new network namespace, run anyway where the kernel refuses (logged);
    strict: refuse to run without one (sandbox_error); host: no isolation."""
    uid_base: int = 61000
    """Root only: programs run as uid uid_base + worker slot, never as root."""
    python: str = ""
    """Interpreter for Python programs; empty picks one the sandbox uid can execute."""
    workers: int = 0
    """Programs run at once; 0 means one per core."""
    tmp_root: str = ""
    """Where per-program temporary directories are made; empty means the system default."""
    backend: str = "local"
    """local: this machine's cores; ray: Ray tasks (RAY_ADDRESS selects a cluster)."""


    def effective_workers(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)

    def rlimits(self) -> dict[str, int]:
        return {
            "RLIMIT_CPU": int(self.cpu_s),
            "RLIMIT_AS": self.memory_mb * 2**20,
            "RLIMIT_FSIZE": self.file_size_mb * 2**20,
            "RLIMIT_NPROC": self.max_processes,
            "RLIMIT_NOFILE": self.max_open_files,
            "RLIMIT_CORE": 0,
        }
