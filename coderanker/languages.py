"""The eight MultiPL-E languages: stop tokens and how the sandbox checks, compiles and runs
each program. The single source of truth for both; commands follow MultiPL-E's
evaluation scripts (evaluation/src/eval_<lang>.py).

Templates in commands: {src} the program file, {heap_mb} the program's memory limit,
{javatuples} the javatuples jar, {tsc} TypeScript's compiler script.

compile_error rule: a program is a compile_error when the language's front end rejects it
before any test runs: the compiler (cpp, java, cs, ts: tsc's type errors included, as in
MultiPL-E) or a syntax check (py: compile(); js: node --check; php: php -l; sh: bash -n).
An error the program raises while running is `failed`.
"""

from __future__ import annotations

from dataclasses import dataclass

JVM = ("-Xmx{heap_mb}m", "-Xss8m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
       "-XX:CompressedClassSpaceSize=64m", "-XX:ReservedCodeCacheSize=64m", "-XX:MaxMetaspaceSize=256m")


@dataclass(frozen=True)
class Language:
    """How one language's programs are checked, built and run."""

    code: str
    """MultiPL-E's language code."""
    source: str
    """File name the program is written to."""
    stop_tokens: tuple[str, ...]
    """Where a sampled completion ends (MultiPL-E's stop tokens for the language)."""
    run: tuple[str, ...] = ()
    """Runs the (compiled) program; exit code 0 passes. Empty: Python, run in the warm worker."""
    compile: tuple[str, ...] = ()
    """Syntax check or compiler; a non-zero exit is compile_error."""
    artefacts: tuple[str, ...] = ()
    """Files the compiler writes (glob patterns); cached by the source's content hash."""
    env: tuple[tuple[str, str], ...] = ()
    """Extra environment of every step."""
    runtime_mb: int = 0
    """Address space a managed runtime reserves beyond the program's memory limit (JVM, V8, mono)."""
    min_processes: int = 0
    """Floor on RLIMIT_NPROC: runtimes that start threads (each counts as a process)."""
    failure_markers: tuple[str, ...] = ()
    """Text on stderr that fails a run whatever its exit code (mono exits 0 on a failed Debug.Assert)."""
    memory_markers: tuple[str, ...] = ()
    """Text on stderr that says the program ran out of memory."""

    def command(self, template: tuple[str, ...], **values: object) -> list[str]:
        return [part.format(src=self.source, **values) for part in template]


LANGUAGES: dict[str, Language] = {
    language.code: language
    for language in (
        Language(
            "py", "program.py", ("\ndef", "\n#", "\nif", "\nclass"),
            memory_markers=("MemoryError",),
        ),
        Language(
            "cpp", "program.cpp", ("\n}",),
            compile=("g++", "{src}", "-o", "program", "-std=c++17"),
            run=("./program",), artefacts=("program",),
            memory_markers=("std::bad_alloc",),
        ),
        Language(
            "java", "Problem.java", ("\n    }\n",),
            compile=("javac", *(f"-J{flag}" for flag in JVM), "-encoding", "UTF8", "-cp", "{javatuples}",
                     "-d", ".", "{src}"),
            run=("java", *JVM, "-ea", "-cp", ".:{javatuples}", "Problem"), artefacts=("*.class",),
            runtime_mb=1024, min_processes=64,
            memory_markers=("java.lang.OutOfMemoryError",),
        ),
        Language(
            "js", "program.js", ("\nfunction ", "\n/*", "\n//", "\nconsole.log"),
            compile=("node", "--check", "{src}"), run=("node", "--max-old-space-size={heap_mb}", "{src}"),
            runtime_mb=1024, min_processes=32,
            memory_markers=("JavaScript heap out of memory", "Fatal process out of memory"),
        ),
        Language(
            "ts", "program.ts", ("\nfunction ", "\n/*", "\n//", "\nclass"),
            compile=("node", "{tsc}", "--target", "esnext", "{src}"),
            run=("node", "--max-old-space-size={heap_mb}", "program.js"), artefacts=("program.js",),
            runtime_mb=1024, min_processes=32,
            memory_markers=("JavaScript heap out of memory", "Fatal process out of memory"),
        ),
        Language(
            "php", "program.php", ("\nfunction", "\n?>", "\n//", "\n#"),
            compile=("php", "-l", "{src}"), run=("php", "-d", "memory_limit={heap_mb}M", "{src}"),
            runtime_mb=128, memory_markers=("Allowed memory size of", "\nOut of memory"),
        ),
        Language(
            "sh", "program.sh", ("\n}",),
            compile=("bash", "-n", "{src}"), run=("bash", "{src}"),
            memory_markers=("xmalloc: cannot allocate", "xrealloc: cannot allocate"),
        ),
        Language(
            "cs", "program.cs", ("\n    }\n",),
            compile=("mcs", "-d:DEBUG", "-r:System.Numerics.dll", "{src}", "-out:program.exe"),
            run=("mono", "program.exe"), artefacts=("program.exe",),
            env=(("MONO_TRACE_LISTENER", "Console.Error"),),
            runtime_mb=1024, min_processes=32,
            failure_markers=("System.Diagnostics.DefaultTraceListener.Fail", "Unhandled Exception"),
            memory_markers=("OutOfMemoryException", "Garbage collector could not allocate"),
        ),
    )
}


def stop_tokens(code: str) -> tuple[str, ...]:
    """MultiPL-E's stop tokens for a language code (KeyError for an unknown one)."""
    return LANGUAGES[code].stop_tokens
