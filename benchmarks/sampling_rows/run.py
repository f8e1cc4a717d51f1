"""Sampling throughput at different `sample.batch_size` (rows decoded together), in one run:
a finished run's policy samples the same eval problems with the run's `sample` section at
each batch size, taking turns.

    .venv/bin/python -m benchmarks.sampling_rows --run DIR [--round r0] [--problems 15]
        [--samples 40] [--batch-sizes 120 240] [--repeats 2]

DIR is a finished `dvc repro` checkout (params.yaml, models/<round>/policy,
data/problems/eval-<set>.jsonl). The model is placed as the sample stage places it
(`model.device`, `model.dtype`). Each line gives samples/s (median of --repeats) and the
share of samples that ran to the token limit; the last line the ratio of the last batch size
over the first. A batch decodes until its longest row ends, so a policy that runs many answers
to the limit gains most from wider batches.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.generation.common import alternate


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, type=Path, help="a finished dvc repro checkout")
    parser.add_argument("--round", default="r0", help="whose policy samples (models/<round>/policy)")
    parser.add_argument("--set", default="starter", help="evaluation set (data/problems/eval-<set>.jsonl)")
    parser.add_argument("--problems", type=int, default=15, help="its first N problems")
    parser.add_argument("--samples", type=int, default=40, help="samples per problem")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[120, 240])
    parser.add_argument("--repeats", type=int, default=2, help="alternating passes of each batch size (median)")
    return parser.parse_args(argv)


def rate(model, tokenizer, problems, config) -> tuple[float, float]:
    """(samples/s, share truncated) of one pass."""
    from coderanker.generation import generate

    start = time.perf_counter()
    records = list(generate(model, tokenizer, problems, config))
    elapsed = time.perf_counter() - start
    return len(records) / elapsed, sum(bool(r.get("truncated")) for r in records) / len(records)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from benchmarks.generation.run import quiet
    from coderanker.config import load_params, section
    from coderanker.generation import SamplingConfig
    from coderanker.problems import load_problems
    from coderanker.runtime import Placement

    quiet()
    params = load_params(args.run / "params.yaml")
    base = replace(section(params, "sample", SamplingConfig, str(args.run / "params.yaml")),
                   samples_per_problem=args.samples, greedy=False, include_references=False)
    placement = Placement.from_params(params)
    policy = args.run / "models" / args.round / "policy"
    tokenizer = AutoTokenizer.from_pretrained(policy)
    model = placement.load(AutoModelForCausalLM, str(policy)).eval()
    problems = load_problems(args.run / f"data/problems/eval-{args.set}.jsonl")[: args.problems]
    print(f"{args.round}'s policy, {len(problems)} eval-{args.set} problems x {args.samples} samples, "
          f"{placement.device}/{placement.dtype}, max_new_tokens {base.max_new_tokens}, "
          f"median of {args.repeats}", flush=True)
    figures = alternate({size: lambda size=size: rate(model, tokenizer, problems, replace(base, batch_size=size))
                         for size in args.batch_sizes}, args.repeats)
    for size, (per_second, truncated) in figures.items():
        print(f"batch {size}: {per_second:.2f} samples/s, {truncated:.1%} at the token limit")
    first, last = args.batch_sizes[0], args.batch_sizes[-1]
    print(f"batch {last}: {figures[last][0] / figures[first][0]:.2f}x the samples/s of batch {first}")


if __name__ == "__main__":
    main()
