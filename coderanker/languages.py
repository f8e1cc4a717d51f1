"""The eight MultiPL-E languages: stop tokens and how the sandbox checks, compiles and runs
each program. The single source of truth for both; commands follow MultiPL-E's
evaluation scripts (evaluation/src/eval_<lang>.py).

Templates in commands: {src} the program file, {main} Java's main class, {heap_mb} the program's memory limit,
{javatuples} the javatuples jar, {tsc} TypeScript's compiler script.

compile_error rule: a program is a compile_error when the language's front end rejects it
before any test runs: the compiler (cpp, java, cs, ts: tsc's type errors included, as in
MultiPL-E) or a syntax check (py: compile(); js: node --check; php: php -l; sh: bash -n).
An error the program raises while running is `failed`. A front end that reports an error
but exits 0 still rejects the program: bash -n (and bash itself) only print errors in a
`[[ ... ]]` conditional (`[[ ; ]]`, `[[ -z ]]`, `[[ $a == b c ]]`) and go on, so a script
with one would pass its tests; for sh any non-warning line from bash -n is a compile_error.
Audited (tests/sandbox/test_front_end_errors.py): py, cpp, java, js, ts, php and cs front
ends exit non-zero on every syntax error tried.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

JVM = ("-Xmx{heap_mb}m", "-Xss8m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
       "-XX:CompressedClassSpaceSize=64m", "-XX:ReservedCodeCacheSize=64m", "-XX:MaxMetaspaceSize=256m")


@dataclass(frozen=True)
class Language:
    """How one language's programs are checked, built and run."""

    code: str
    """MultiPL-E's language code."""
    source: str
    """File name the program is written to ({main}: Java's main class, see `main_class`)."""
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
    check_must_be_quiet: bool = False
    """The syntax check reports some errors on stderr and still exits 0 (bash -n on a broken
    `[[ ... ]]`): any line it writes, warnings aside, is a compile_error."""

    def source_name(self, program: str = "") -> str:
        """The file a program is written to: Java's is named after its main class."""
        return self.source.format(main=main_class(program)) if "{main}" in self.source else self.source

    def command(self, template: tuple[str, ...], program: str = "", **values: object) -> list[str]:
        names = {"src": self.source_name(program), "main": main_class(program) if self.code == "java" else ""}
        return [part.format(**names, **values) for part in template]


#: Java comments, text blocks, strings and chars: blanked (offsets kept) before braces are counted.
_JAVA_NOISE = re.compile(r'//[^\n]*|/\*.*?\*/|"""[\s\S]*?"""|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)
_JAVA_SCAN = re.compile(r"[{}]|\bclass\s+(\w+)")
_PUBLIC = re.compile(r"\bpublic\s+(?:(?:final|abstract|strictfp)\s+)*$")
_MAIN = re.compile(r"\bstatic\s+(?:final\s+)?void\s+main\s*\(")


def main_class(program: str) -> str:
    """The class a Java program runs as: its public top-level class (javac accepts a public
    class only in a file of its name: `public class Main`, the convention of HumanEval-X,
    CodeContests and Codeforces), else the top-level class that declares `main`, else
    MultiPL-E's `Problem`. Nested classes never count."""
    code = _JAVA_NOISE.sub(lambda m: " " * len(m.group()), program)
    depth, top = 0, []  # top-level classes: (offset, name)
    for match in _JAVA_SCAN.finditer(code):
        if match.group() == "{":
            depth += 1
        elif match.group() == "}":
            depth -= 1
        elif depth == 0:
            top.append((match.start(), match.group(1)))
    for offset, name in top:
        if _PUBLIC.search(code[code.rfind("\n", 0, offset) + 1 : offset]):
            return name
    main = _MAIN.search(code)
    owners = [name for offset, name in top if main and offset < main.start()]
    return owners[-1] if owners else "Problem"


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
            "java", "{main}.java", ("\n    }\n",),
            compile=("javac", *(f"-J{flag}" for flag in JVM), "-encoding", "UTF8", "-cp", "{javatuples}",
                     "-d", ".", "{src}"),
            run=("java", *JVM, "-ea", "-cp", ".:{javatuples}", "{main}"), artefacts=("*.class",),
            runtime_mb=1024, min_processes=64,
            memory_markers=("java.lang.OutOfMemoryError",),
        ),
        Language(
            "js", "program.js", ("\nfunction ", "\n/*", "\n//", "\nconsole.log"),
            compile=("node", "--check", "{src}"), run=("node", "--max-old-space-size={heap_mb}", "{src}"),
            runtime_mb=1024, min_processes=32,
            failure_markers=("Assertion failed",),  # console.assert prints and goes on (HumanEval-X's tests)
            memory_markers=("JavaScript heap out of memory", "Fatal process out of memory"),
        ),
        Language(
            "ts", "program.ts", ("\nfunction ", "\n/*", "\n//", "\nclass"),
            compile=("node", "{tsc}", "--target", "esnext", "{src}"),
            run=("node", "--max-old-space-size={heap_mb}", "program.js"), artefacts=("program.js",),
            runtime_mb=1024, min_processes=32,
            failure_markers=("Assertion failed",),  # console.assert prints and goes on (HumanEval-X's tests)
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
            check_must_be_quiet=True,
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
