"""DVC stage evaluate@<round>: pass@k figures per evaluation set -> metrics/<round>.json.

The first evaluation set is reported as `eval` (DESIGN.md); every set, the first
included, is under `eval_sets`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", required=True, type=Path, help="directory of execution results")
    parser.add_argument("--round", required=True)
    parser.add_argument("--out", required=True, type=Path, help="metrics JSON file")
    parser.add_argument("--stage-dirs", nargs="*", type=Path, default=[],
                        help="output directories whose _stage.json timings to report")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)

    from coderanker.config import DataConfig, load_params, section
    from coderanker.jsonl import read_jsonl
    from coderanker.metrics import summarise
    from pipelines.common import META, setup_logging

    setup_logging()
    start = time.monotonic()
    data = section(load_params(args.params), "data", DataConfig, args.params)
    sets = {name: summarise(read_jsonl(args.results / f"eval-{name}.jsonl")) for name in data.eval}
    seconds = {}
    for directory in args.stage_dirs:
        meta = json.loads((directory / META).read_text())
        seconds[meta["stage"]] = meta["seconds"]
    seconds["evaluate"] = round(time.monotonic() - start, 2)
    metrics = {"round": args.round, "eval": next(iter(sets.values())), "eval_sets": sets, "seconds": seconds}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
