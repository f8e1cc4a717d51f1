"""Generation throughput: coderanker's sampler (shared prefill, reserved key/value cache,
rows leaving the batch, in the precision `auto` resolves to) against naive fp32
`model.generate` on left-padded batches of independent sequences; then reranker scoring and
Bradley-Terry training steps in the project's precision against fp32, in the same run.

    .venv/bin/python -m benchmarks.generation [--model DIR] [--problems 8] [--samples 8] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: benchmarks/generation/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.generation.common import EMULATED
from coderanker.runtime import FAST_BF16_CPU_FLAGS, Placement, cpu_flags

RERANKER_LAYERS = 10  # the cpu profile's model.reranker_layers


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="generator directory (default: smollm2-gguf prepared into a temp dir)")
    parser.add_argument("--problems", type=int, default=8, help="first N starter training problems")
    parser.add_argument("--samples", type=int, default=8, help="samples per problem")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--style", default="auto", help="prompt style: auto, prefill, chat or completion")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--repeats", type=int, default=1, help="alternating timed passes of each side (median)")
    return parser.parse_args(argv)


def header(placement: Placement) -> str:
    flags = cpu_flags()
    listed = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in ("avx512f", *FAST_BF16_CPU_FLAGS))
    native = "auto resolves to bf16 here: native bf16" if placement.dtype == "bf16" else EMULATED
    return (f"machine: {os.cpu_count()} cores, torch threads {os.cpu_count()}; cpu flags: {listed}; "
            f"placement auto -> {placement.device}/{placement.dtype}; {native}")


def quiet() -> None:
    """Keep the output to the figures: no load reports, progress bars or deprecation warnings."""
    import warnings

    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", category=FutureWarning)


def dtype_lines(what: str, unit: str, rates: dict, project: str) -> list[str]:
    """The project's precision against fp32 (the same measurement when that is fp32), then
    bf16 forced on a line of its own when the project's path is not bf16."""
    def line(label: str, dtype: str) -> str:
        return (f"{what}: {label} {rates[dtype][0]:.1f} {unit}, fp32 {rates['fp32'][0]:.1f} {unit}, "
                f"ratio {rates[dtype][0] / rates['fp32'][0]:.2f}x")

    return [line(f"coderanker ({project})", project)] + ([f"{line('bf16 forced', 'bf16')} ({EMULATED})"]
                                                         if project != "bf16" else [])


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import torch
    from transformers import AutoTokenizer

    from benchmarks.generation.reranking import scoring, shared_query, training, training_dtype
    from benchmarks.generation.sampling import sampling
    from coderanker.generation import resolve_style
    from coderanker.models import prepare_model
    from coderanker.reranker import init_reranker
    from coderanker.sources import starter

    torch.set_num_threads(os.cpu_count() or 1)
    quiet()
    placement = Placement.of("auto", "auto")
    use_gpu = placement.device == "cuda"
    work = Path(tempfile.mkdtemp(prefix="coderanker-bench-generation-"))
    try:
        model_dir = args.model or str(prepare_model("smollm2-gguf", work / "model"))
        style = resolve_style(args.style, AutoTokenizer.from_pretrained(model_dir))
        reranker_dir = str(init_reranker(model_dir, work / "reranker", layers=RERANKER_LAYERS, prompt_style=style))
        problems = starter("train")[: args.problems]
        print(header(placement), flush=True)
        rates, candidates = sampling(model_dir, placement, problems, args, style)
        print(f"sampling: {len(problems)} problems x {args.samples} samples, style {style}, batch {args.batch_size}, "
              f"max_new_tokens {args.max_new_tokens}, median of {args.repeats}; candidates/s: coderanker "
              f"{rates['coderanker'][1]:.2f}, naive fp32 generate {rates['naive'][1]:.2f}", flush=True)
        scores = scoring(reranker_dir, placement.device, problems, candidates, args.repeats, style)
        print("\n".join(dtype_lines("reranker scoring", "candidates/s", scores, placement.dtype)), flush=True)
        shared = shared_query(reranker_dir, placement.device, problems, candidates, args.repeats, style)
        fast, slow = shared["shared"][0], shared["whole"][0]
        print(f"reranker scoring: shared query {fast:.1f} candidates/s, whole sequences {slow:.1f} "
              f"candidates/s (both fp32), ratio {fast / slow:.2f}x", flush=True)
        pairs = training(reranker_dir, problems, candidates, args.repeats, style, use_gpu)
        trained = training_dtype(use_gpu, placement.dtype)
        print("\n".join(dtype_lines("reranker training", "pairs/s", pairs, trained)), flush=True)
        ours, naive = rates["coderanker"][0], rates["naive"][0]
        print(f"sampling: coderanker {ours:.1f} tok/s, naive fp32 generate {naive:.1f} tok/s, "
              f"ratio {ours / naive:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
