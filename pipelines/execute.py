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

    import numpy as np

    from coderanker.config import load_params, section
    from coderanker.executor import execute_file
    from coderanker.sandbox import SandboxConfig
    from coderanker.tracking import stage_run
    from pipelines.common import problem_files, setup_logging, stage_outputs

    setup_logging()
    config = section(load_params(args.params), "execute", SandboxConfig, args.params)
    inputs = [args.problems, args.candidates]
    with stage_run("execute", args.round, {"execute": asdict(config)}, inputs) as run, \
            stage_outputs(f"execute@{args.round}", args.out, run=run) as out:
        for path in problem_files(args.candidates):
            durations: list[float] = []  # wall times vary run to run: to MLflow, not into the results
            counts = execute_file(args.problems / path.name, path, out / path.name, config, durations=durations)
            run.log_metrics({f"{path.stem}.{status}": n for status, n in counts.items()})
            if durations:
                run.log_metrics({f"{path.stem}.duration_s": {"mean": float(np.mean(durations)),
                                 "p95": float(np.percentile(durations, 95)), "max": max(durations)}})
            print(f"{path.stem}: {dict(counts)}")


if __name__ == "__main__":
    from pipelines.common import entry

    entry(main)
