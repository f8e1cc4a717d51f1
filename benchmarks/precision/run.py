"""Does bf16 hurt quality? The same problems, seeds and models in bf16 and in fp32: the pass
rate of the samples each precision draws (with its 95% interval for the difference), and
how well the reranker's bf16 scores of one candidate set track its fp32 scores.

    .venv/bin/python -m benchmarks.precision [--model DIR] [--reranker DIR] [--problems 24] [--samples 8]

bf16 runs whatever the CPU: on one without AMX/AVX512-BF16 it is emulated (slow), and its
kernels round differently, so it draws other samples than native bf16 (README: pass rate
0.135 emulated, 0.156 native, fp32 0.146). Problems are starter *training* problems.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="generator directory (default: smollm2-gguf prepared into a temp dir)")
    parser.add_argument("--reranker", help="reranker directory (default: the base's bottom 10 layers, fresh head)")
    parser.add_argument("--problems", type=int, default=24, help="first N starter training problems")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=1234)
    return parser.parse_args(argv)


def sample_and_run(model_dir, problems, args, dtype: str) -> list[dict]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from coderanker.executor import run
    from coderanker.generation import SamplingConfig, generate
    from coderanker.problems import by_name
    from coderanker.runtime import Placement
    from coderanker.sandbox import SandboxConfig

    model = Placement.of("cpu", dtype).load(AutoModelForCausalLM, model_dir)
    config = SamplingConfig(samples_per_problem=args.samples, greedy=False, max_new_tokens=args.max_new_tokens,
                            batch_size=120, seed=args.seed)
    candidates = list(generate(model, AutoTokenizer.from_pretrained(model_dir), problems, config))
    return run(by_name(problems), candidates, SandboxConfig())


def pass_rate(results: list[dict]) -> tuple[float, int]:
    return sum(r["status"] == "passed" for r in results) / len(results), len(results)


def difference_ci95(a: tuple[float, int], b: tuple[float, int]) -> tuple[float, float, float]:
    """Difference of two pass rates with a normal-approximation 95% interval."""
    (p, n), (q, m) = a, b
    se = math.sqrt(p * (1 - p) / n + q * (1 - q) / m)
    return q - p, q - p - 1.96 * se, q - p + 1.96 * se


def score_correlation(reranker_dir, problems, candidates) -> tuple[float, float]:
    """Pearson and Spearman correlation of bf16 against fp32 scores of the same candidates."""
    import numpy as np

    from coderanker.problems import by_name
    from coderanker.reranker import Reranker
    from coderanker.runtime import Placement

    scores = []
    for dtype in ("fp32", "bf16"):
        scorer = Reranker.load(str(reranker_dir), placement=Placement.of("cpu", dtype), batch_size=20, max_length=512)
        scores.append(scorer.score_candidates(by_name(problems), candidates))
    fp32, bf16 = np.array(scores[0]), np.array(scores[1])
    ranks = [np.argsort(np.argsort(s)) for s in (fp32, bf16)]
    return float(np.corrcoef(fp32, bf16)[0, 1]), float(np.corrcoef(*ranks)[0, 1])


def main(argv: list[str] | None = None) -> None:
    from coderanker.models import prepare_model
    from coderanker.reranker import init_reranker
    from coderanker.runtime import cpu_has_fast_bf16
    from coderanker.sources import starter

    args = parse(argv)
    problems = starter("train")[: args.problems]
    with tempfile.TemporaryDirectory(prefix="coderanker-precision-") as tmp:
        model_dir = Path(args.model) if args.model else prepare_model("smollm2-gguf", Path(tmp) / "base")
        reranker_dir = args.reranker or init_reranker(model_dir, Path(tmp) / "reranker", layers=10)
        print(f"cpu has native bf16: {cpu_has_fast_bf16()} (else bf16 is emulated: slower, and rounded differently)")
        fp32 = sample_and_run(model_dir, problems, args, "fp32")
        bf16 = sample_and_run(model_dir, problems, args, "bf16")
        diff, low, high = difference_ci95(pass_rate(fp32), pass_rate(bf16))
        print(f"samples: {len(problems)} problems x {args.samples}, seed {args.seed}")
        print(f"pass rate: fp32 {pass_rate(fp32)[0]:.3f}, bf16 {pass_rate(bf16)[0]:.3f}, "
              f"bf16 - fp32 {diff:+.3f} [95% {low:+.3f}, {high:+.3f}]")
        pearson, spearman = score_correlation(reranker_dir, problems, fp32)
        print(f"reranker scores of the fp32 samples, bf16 vs fp32: pearson {pearson:.4f}, spearman {spearman:.4f}")


if __name__ == "__main__":
    main()
