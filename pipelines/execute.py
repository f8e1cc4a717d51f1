"""DVC stage execute@<round>: run every candidate against its problem's tests in the sandbox.

CANDIDATES/<set>.jsonl + PROBLEMS/<set>.jsonl -> OUT/<set>.jsonl (execution results)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--problems", required=True, type=Path)
    parser.add_argument("--candidates", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--round", required=True)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)

    from coderanker.config import load_params, section
    from coderanker.executor import execute_file
    from coderanker.sandbox import SandboxConfig
    from coderanker.tracking import stage_run
    from pipelines.common import problem_files, setup_logging, timed_stage

    setup_logging()
    config = section(load_params(args.params), "execute", SandboxConfig, args.params)
    inputs = [args.problems, args.candidates]
    with stage_run("execute", args.round, {"execute": asdict(config)}, inputs) as run, \
            timed_stage(args.out, "execute", round=args.round):
        for path in problem_files(args.candidates):
            counts = execute_file(args.problems / path.name, path, args.out / path.name, config)
            run.log_metrics({f"{path.stem}.{status}": n for status, n in counts.items()})
            print(f"{path.stem}: {dict(counts)}")


if __name__ == "__main__":
    main()
