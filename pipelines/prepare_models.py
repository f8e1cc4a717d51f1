"""DVC stage prepare_models: the seed policy (the base model as a safetensors directory)
and the seed reranker (the same base with a fresh scalar head)."""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", required=True, help="smollm2-gguf, tiny-random[:SEED], a .gguf, a dir or hub id")
    parser.add_argument("--out", required=True, type=Path, help="directory for policy/ and reranker/")
    parser.add_argument("--seed", type=int, default=0, help="seed of the reranker's fresh head")
    parser.add_argument("--reranker-layers", type=int, default=0,
                        help="keep the base's bottom N layers in the reranker (0: all)")
    parser.add_argument("--prompt-style", default="auto",
                        help="the text the reranker scores (sample.prompt_style): prefill, chat, completion or auto")
    args = parser.parse_args(argv)

    from coderanker.models import prepare_model
    from coderanker.reranker import init_reranker
    from pipelines.common import setup_logging, stage_outputs

    setup_logging()
    with stage_outputs("prepare_models", args.out) as out:
        policy = prepare_model(args.source, out / "policy")
        init_reranker(policy, out / "reranker", seed=args.seed, layers=args.reranker_layers,
                      prompt_style=args.prompt_style)


if __name__ == "__main__":
    from pipelines.common import entry

    entry(main)
