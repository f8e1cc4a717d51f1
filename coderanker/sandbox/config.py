"""Sandbox settings and the typed result of one execution."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import Literal


class Status(enum.StrEnum):
    """What happened to one program. SANDBOX_ERROR is the infrastructure's failure, never
    the program's: it is never a negative label and never a hard negative."""

    PASSED = "passed"
    FAILED = "failed"
    COMPILE_ERROR = "compile_error"
    TIMEOUT = "timeout"
    MEMORY_EXCEEDED = "memory_exceeded"
    SANDBOX_ERROR = "sandbox_error"


@dataclass(frozen=True)
class IOCases:
    """A stdin/stdout problem's cases: the program is compiled once and run once per case,
    each under its own limits, with the case's input on stdin; its stdout must match the
    expected output token by token (numbers within `tolerance` when it is set)."""

    cases: tuple[tuple[str, str], ...]
    tolerance: float = 0.0


#: Statuses that say something about the program (usable as training labels).
LABEL_STATUSES = frozenset(Status) - {Status.SANDBOX_ERROR}


@dataclass(frozen=True)
class SandboxConfig:
    """Limits and isolation for every program; the `execute` section of params.yaml."""

    timeout_s: float = field(default=10.0, metadata={"gt": 0})
    """Wall-clock limit per program run; on expiry every process it started is killed."""
    cpu_s: int = field(default=10, metadata={"min": 1})
    """CPU-time limit (RLIMIT_CPU); SIGXCPU counts as a timeout."""
    memory_mb: int = field(default=1024, metadata={"min": 1})
    """Address-space limit (RLIMIT_AS); managed runtimes (JVM, node, mono) get this as their heap
    limit and their language's `runtime_mb` more address space (coderanker/languages.py)."""
    file_size_mb: int = field(default=16, metadata={"min": 1})
    """Largest file a program may write (RLIMIT_FSIZE)."""
    max_processes: int = field(default=32, metadata={"min": 1})
    """Processes (threads included) per sandbox uid (RLIMIT_NPROC); raised to a runtime's floor."""
    max_open_files: int = field(default=64, metadata={"min": 1})
    """Open file descriptors (RLIMIT_NOFILE)."""
    output_limit_kb: int = field(default=1024, metadata={"min": 1})
    """Stdout+stderr beyond this kills the program (status failed)."""
    tail_bytes: int = field(default=2048, metadata={"min": 0})
    """How much of the end of stdout and of stderr each result keeps."""
    network: Literal["isolate", "strict", "host"] = "isolate"
    """isolate or strict: a new network namespace with only loopback (no network);
    host: the host's network (no network isolation)."""
    uid_base: int = field(default=61000, metadata={"min": 1})
    """Root only: programs run as uid uid_base + worker slot, never as root."""
    python: str = ""
    """Interpreter of the sandbox workers and of Python programs; empty picks the system's."""
    workers: int = field(default=0, metadata={"min": 0})
    """Programs run at once (warm sandboxes); 0 means one per core."""
    backend: Literal["local", "ray"] = "local"
    """local: this machine's cores; ray: Ray tasks (RAY_ADDRESS selects a cluster)."""
    compile_timeout_s: float = field(default=30.0, metadata={"gt": 0})
    """Wall-clock limit of a compile or syntax-check step (timeout when exceeded)."""
    compile_cpu_s: int = field(default=30, metadata={"min": 1})
    """CPU-time limit of a compile step."""
    compile_memory_mb: int = field(default=2048, metadata={"min": 1})
    """Address-space limit of a compile step (plus the language's runtime_mb)."""
    tmp_size_mb: int = field(default=256, metadata={"min": 1})
    """Size of each sandbox's private tmpfs, the only place a program can write."""
    tmp_inodes: int = field(default=4096, metadata={"min": 1})
    """Files and directories that tmpfs may hold."""
    cache_dir: str = ""
    """Compiled artefacts by content hash; empty: $XDG_CACHE_HOME/coderanker/compiled."""
    warm_compilers: bool = True
    """Compile Java and TypeScript in a long-lived compiler inside the sandbox (see
    coderanker/sandbox/warm.py); false: a fresh javac/tsc per program."""
    tools_dir: str = ""
    """Project-local toolchains (TypeScript's tsc); empty: <repository>/.tools."""

    def effective_workers(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)

    def rlimits(self, compiling: bool = False, runtime_mb: int = 0, min_processes: int = 0) -> dict[str, int]:
        """Limits of one step: a program run, or (compiling) a syntax check or compile."""
        return {
            "RLIMIT_CPU": int(self.compile_cpu_s if compiling else self.cpu_s),
            "RLIMIT_AS": ((self.compile_memory_mb if compiling else self.memory_mb) + runtime_mb) * 2**20,
            "RLIMIT_FSIZE": (max(self.file_size_mb, 64) if compiling else self.file_size_mb) * 2**20,
            "RLIMIT_NPROC": max(self.max_processes, min_processes),
            "RLIMIT_NOFILE": max(self.max_open_files, 256) if compiling else self.max_open_files,
            "RLIMIT_CORE": 0,
        }
