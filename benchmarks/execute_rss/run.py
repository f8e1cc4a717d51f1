"""Peak memory of `execute_file` against the length of its candidates file: 2,000 and
20,000 candidates (cheap Python programs for a handful of starter problems: passing,
failing and raising, many with long completions), each file executed in a fresh process
that reports its own peak RSS. The executor streams its files, so the two should match.

    .venv/bin/python -m benchmarks.execute_rss [--sizes 2000 20000] [--workers N] [--chunk-size N]

`--chunk-size` above the largest size holds a whole file at once, as the executor did
before it streamed: the contrast.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STARTER = REPO / "coderanker" / "data" / "starter.jsonl"
PROBLEMS = 5
PADDING = "    # " + "long completions carry comments and dead code too; " * 2 + "\n"


def write_inputs(folder: Path, sizes: list[int]) -> None:
    """problems.jsonl (the first starter problems, as they are in the package) and one
    candidates file per size; every completion is distinct, so none is deduplicated."""
    with open(STARTER, encoding="utf-8") as handle:
        problems = [json.loads(line) for line, _ in zip(handle, range(PROBLEMS), strict=False)]
    (folder / "problems.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems), encoding="utf-8")
    for size in sizes:
        with open(folder / f"candidates-{size}.jsonl", "w", encoding="utf-8") as out:
            for sample in range(size):
                problem = problems[sample % PROBLEMS]
                kind = sample // PROBLEMS % 4
                body = {0: problem["reference"], 1: "    return None\n",
                        2: problem["reference"] + PADDING * 30, 3: "    raise ValueError('no idea')\n"}[kind]
                completion = f"    # sample {sample}\n" + PADDING * (sample % 20) + body
                out.write(json.dumps({"name": problem["name"], "completion": completion, "sample": sample}) + "\n")


def child(problems: str, candidates: str, out: str, workers: int, chunk_size: int) -> int:
    """Run in the fresh process: execute one file, print its counts, time and peak RSS."""
    import resource

    from coderanker import executor
    from coderanker.sandbox import SandboxConfig

    executor.CHUNK_SIZE = chunk_size
    config = SandboxConfig(workers=workers, cache_dir=str(Path(out).parent / "compiled"))
    start = time.perf_counter()
    counts = executor.execute_file(problems, candidates, out, config)
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # this process alone: not its sandboxes
    print(json.dumps({"counts": dict(sorted(counts.items())), "seconds": seconds, "peak_rss_mb": peak_kb / 1024}))
    return 0


def measure(folder: Path, size: int, workers: int, chunk_size: int) -> dict:
    out = folder / f"results-{size}.jsonl"
    cmd = [sys.executable, "-m", "benchmarks.execute_rss", "--child", str(folder / "problems.jsonl"),
           str(folder / f"candidates-{size}.jsonl"), str(out), "--workers", str(workers),
           "--chunk-size", str(chunk_size)]
    done = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    with open(out, encoding="utf-8") as handle:
        report["results"] = sum(1 for _ in handle)
    return report


def main(argv: list[str] | None = None) -> int:
    from coderanker.executor import CHUNK_SIZE

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE, help="candidates the executor holds at once")
    parser.add_argument("--child", nargs=3, metavar=("PROBLEMS", "CANDIDATES", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child, args.workers, args.chunk_size)

    with tempfile.TemporaryDirectory(prefix="coderanker-execute-rss-") as tmp:
        folder = Path(tmp)
        write_inputs(folder, args.sizes)
        print(f"machine: {os.cpu_count()} cores; workers: {args.workers}; chunk size: {args.chunk_size}", flush=True)
        peaks = []
        for size in args.sizes:
            file_mb = (folder / f"candidates-{size}.jsonl").stat().st_size / 2**20
            report = measure(folder, size, args.workers, args.chunk_size)
            assert report["results"] == size, report
            peaks.append(report["peak_rss_mb"])
            print(f"{size} candidates ({file_mb:.1f} MB): peak RSS {report['peak_rss_mb']:.1f} MB, "
                  f"{report['seconds']:.0f} s, {report['counts']}", flush=True)
    print(f"peak RSS {args.sizes[-1]} / {args.sizes[0]} candidates: {peaks[-1] / peaks[0]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
