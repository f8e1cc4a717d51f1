"""DVC stage prepare_models: materialise the base model as a safetensors directory."""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", required=True, help="smollm2-gguf, tiny-random[:SEED], a .gguf, a dir or hub id")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)

    from coderanker.models import prepare_model
    from pipelines.common import setup_logging, timed_stage

    setup_logging()
    with timed_stage(args.out, "prepare_models", source=args.source):
        prepare_model(args.source, args.out)


if __name__ == "__main__":
    main()
