"""Warm compilers: Java and TypeScript programs compiled by a long-lived compiler inside
the sandbox (javax.tools in one JVM, the TypeScript compiler API in one node process)
instead of a fresh `javac` or `tsc` per program, which spends most of its time starting
and warming up (about 1.8 Java programs/s and 0.4 TypeScript programs/s cold on 2 cores).

Isolation and limits are today's: the compiler runs in the same sandbox as the programs,
under the compile step's rlimits, but as a uid of its own (the program's plus
COMPILER_UID_OFFSET), so programs cannot signal, trace or write to it; each request has the
compile step's wall-clock limit (a request past it is a compile timeout and the compiler
is restarted, and the program compiled cold). A compiler that fails to start, crashes or
reports an internal error is stopped and the program is compiled cold, which stays the
authority: the labels are the cold path's (tests/sandbox/test_warm_compilers.py). A kind
whose compiler cannot start is not tried again by that sandbox. Only with per-slot uids
(the host runs as root): under one uid a program could stop or alter the compiler. The
zygote side is in _zygote.py.
"""

from __future__ import annotations

from pathlib import Path

from coderanker.languages import JVM, Language

SERVERS = Path(__file__).with_name("servers")
#: The compiler's uid is the program's plus this (root only; programs get uid_base + slot).
COMPILER_UID_OFFSET = 10000
#: A compiler is restarted after this many programs (bounds what a long-lived JVM accumulates).
REQUESTS_PER_SERVER = 1000
#: Cumulative CPU a compiler may use before the kernel stops it (it is then restarted);
#: each request is held to the compile step's wall-clock limit instead.
SERVER_CPU_S = 3600
#: The Java compiler's heap (javac needs little for one program).
SERVER_HEAP_MB = 512
WARM = ("java", "ts")
#: Longest a compiler may take to set itself up (compiling the Java server) before cold compiles.
SETUP_TIMEOUT_S = 60


def server_spec(language: Language, cold_argv: list[str], source_name: str, rlimits: dict[str, int],
                env: dict[str, str], heap_mb: int, which, typescript_dir: str) -> dict | None:
    """The zygote's description of a warm compiler for one compile step (None: compile cold).

    `cold_argv` is the cold command; the request is the same compiler arguments with the
    work directory replaced by the compiler's own ({dir})."""
    if language.code not in WARM:
        return None
    directory = f"/tmp/.compiler-{language.code}"
    spec = {"kind": language.code, "dir": directory, "source": source_name,
            "rlimits": {**rlimits, "RLIMIT_CPU": SERVER_CPU_S}, "requests_per_server": REQUESTS_PER_SERVER,
            "env": {**env, "HOME": directory, "TMPDIR": directory}}
    if language.code == "java":
        # the cold javac's JVM settings, but a heap that leaves room in the same address-space
        # limit for a JVM that lives on (at the cold heap, malloc failed after a few programs);
        # a program whose compile needs more is compiled cold. VM messages go to stderr.
        jvm = [flag.format(heap_mb=min(heap_mb, SERVER_HEAP_MB)) for flag in JVM]
        jvm += ["-XX:+DisplayVMOutputToStderr", f"-XX:ErrorFile={directory}/hs_err.log"]
        args, skip = [], False
        for arg in cold_argv[1:-1]:
            if skip:
                args.append("{dir}")
                skip = False
            elif arg == "-d":
                args.append(arg)
                skip = True
            elif not arg.startswith("-J"):
                args.append(arg)
        server = (SERVERS / "CompileServer.java").read_text()
        return {**spec, "failure_code": 2, "files": {"CompileServer.java": server},
                "setup": [which("javac"), *(f"-J{flag}" for flag in jvm), "-d", directory,
                          f"{directory}/CompileServer.java"],
                "setup_output": "CompileServer.class", "setup_timeout": SETUP_TIMEOUT_S,
                "argv": [which("java"), *jvm, "-cp", directory, "CompileServer"],
                "args": [*args, f"{{dir}}/{source_name}"]}
    return {**spec, "failure_code": 3, "files": {"ts_server.js": (SERVERS / "ts_server.js").read_text()},
            "argv": [which("node"), f"--max-old-space-size={heap_mb}", f"{directory}/ts_server.js", typescript_dir],
            "args": [*cold_argv[2:-1], f"{{dir}}/{source_name}"]}
