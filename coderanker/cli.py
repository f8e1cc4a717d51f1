"""The `coderanker` command line (see DESIGN.md, "Commands users run")."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

PROFILES_DIR = Path("configs")


def data_export(args: argparse.Namespace) -> int:
    from coderanker.jsonl import write_jsonl
    from coderanker.sources import load_source

    problems = load_source(args.name)[: args.limit or None]
    count = write_jsonl(args.out, (problem.to_record() for problem in problems))
    print(f"wrote {count} problems to {args.out}", file=sys.stderr)
    return 0


def data_validate(args: argparse.Namespace) -> int:
    from coderanker.problems import scan_problems

    problems, errors = scan_problems(args.file)
    if args.check_references:
        errors += reference_errors(args.file, problems, args.workers)
    for error in sorted(errors, key=lambda e: e.line):
        print(error)
    if not errors:
        print(f"{args.file}: {len(problems)} problems, all valid", file=sys.stderr)
    return 1 if errors else 0


def reference_errors(path, problems, workers: int):
    """A RecordError for every reference that does not pass its own tests (field `reference`),
    its stdin/stdout cases (`io_tests`) or its visible tests (`visible_tests`); all run in
    one sandbox batch."""
    from coderanker.jsonl import RecordError
    from coderanker.sandbox import SandboxConfig
    from coderanker.sandbox.pool import execute_programs, judged_programs

    checked = [(line, "io_tests" if len(program) == 3 else "reference", program)
               for line, p in problems if p.reference is not None for program in judged_programs(p, p.reference)]
    checked += [(line, "visible_tests", (p.language, p.visible_program(p.reference))) for line, p in problems
                if p.reference is not None and p.visible_tests is not None]
    outcomes = execute_programs([program for _, _, program in checked], SandboxConfig(workers=workers))
    what = {"reference": "does not pass its own tests", "visible_tests": "the reference does not pass them",
            "io_tests": "the reference does not pass them"}
    return [
        RecordError(path, line, field, f"{what[field]} ({o.status.value}: "
                    f"{(o.detail or (o.stderr_tail.strip().splitlines() or [''])[-1])[:200]})")
        for (line, field, _), o in zip(checked, outcomes, strict=True)
        if o.status.value != "passed"
    ]


def execute_cmd(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from coderanker.config import section
    from coderanker.executor import execute_file
    from coderanker.sandbox import SandboxConfig

    config = section(params_if_present(args.params), "execute", SandboxConfig, args.params)
    overrides = {"workers": args.workers, "backend": args.backend}
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    counts = execute_file(args.problems, args.candidates, args.out, config)
    print(" ".join(f"{status}={count}" for status, count in sorted(counts.items())), file=sys.stderr)
    return 0


def params_if_present(path: str) -> dict:
    """params.yaml's sections when the file exists (commands run outside a checkout too)."""
    from coderanker.config import load_params

    return load_params(path) if Path(path).exists() else {}


def placement_for(args: argparse.Namespace, params: dict):
    """--device/--dtype, else params.yaml's model.device/model.dtype, else auto."""
    from coderanker.runtime import Placement

    model = params.get("model") or {}
    return Placement.of(args.device or model.get("device", "auto"), args.dtype or model.get("dtype", "auto"))


def sample_cmd(args: argparse.Namespace) -> int:
    """The pipeline's sampler on any problem file: settings from params.yaml's `sample`
    section when present, flags on top; model on `model.device` in `model.dtype`; the
    backend (hf or vllm) from --backend, else sample.backend."""
    from dataclasses import replace

    from transformers import AutoTokenizer

    from coderanker.config import section
    from coderanker.generation import SamplingConfig
    from coderanker.jsonl import write_jsonl
    from coderanker.problems import load_problems
    from coderanker.vllm_backend import require_vllm, sampler

    params = params_if_present(args.params)
    config = section(params, "sample", SamplingConfig, args.params)
    flags = {"samples_per_problem": args.n, "max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
             "top_p": args.top_p, "batch_size": args.batch_size, "seed": args.seed, "prompt_style": args.style,
             "backend": args.backend}
    config = replace(config, **{k: v for k, v in flags.items() if v is not None},
                     greedy=args.greedy, include_references=False)
    if config.backend == "vllm":
        require_vllm()  # before a model loads
    placement = placement_for(args, params)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    sample = sampler(config.backend, args.model, tokenizer, placement)
    count = write_jsonl(args.out, sample(load_problems(args.problems), config, generator_id=str(args.model)))
    print(f"wrote {count} candidates to {args.out} ({placement.device}, {placement.dtype})", file=sys.stderr)
    return 0


def rerank_cmd(args: argparse.Namespace) -> int:
    from coderanker.executor import load_candidates
    from coderanker.jsonl import write_jsonl
    from coderanker.problems import by_name, load_problems
    from coderanker.reranker import Reranker

    problems = by_name(load_problems(args.problems))
    candidates = load_candidates(args.candidates, problems)
    placement = placement_for(args, params_if_present(args.params))
    reranker = Reranker.load(args.model, placement=placement, batch_size=args.batch_size, max_length=args.max_length)
    scores = reranker.score_candidates(problems, candidates)
    rows = [{**c, "score": s} for c, s in zip(candidates, scores, strict=True)]
    if args.prune:
        rows = prune_rows(args, problems, rows)
    write_jsonl(args.out, rows)
    print(f"scored {len(candidates)} candidates -> {args.out}", file=sys.stderr)
    return 0


def prune_rows(args: argparse.Namespace, problems: dict, rows: list[dict]) -> list[dict]:
    """Rows with `visible_status` (run in the sandbox where a row lacks it) and `pruned`."""
    from dataclasses import replace

    from coderanker.config import section
    from coderanker.executor import pruned_flags, visible_statuses
    from coderanker.sandbox import SandboxConfig

    config = section(params_if_present(args.params), "execute", SandboxConfig, args.params)
    if args.workers is not None:
        config = replace(config, workers=args.workers)
    visible = visible_statuses(problems, rows, config)
    pruned = pruned_flags([row["name"] for row in rows], visible)
    print(f"pruned {sum(pruned)} of {len(rows)} candidates (failed the examples their prompts show)",
          file=sys.stderr)
    return [{**row, "visible_status": v, "pruned": p} for row, v, p in zip(rows, visible, pruned, strict=True)]


def profile_use(args: argparse.Namespace) -> int:
    source = PROFILES_DIR / f"{args.name}.yaml"
    if not source.exists():
        names = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        print(f"error: no profile {source} (available: {', '.join(names) or 'none'})", file=sys.stderr)
        return 2
    shutil.copyfile(source, args.params)
    print(f"{args.params} <- {source}", file=sys.stderr)
    return 0


def params_check(args: argparse.Namespace) -> int:
    from coderanker.config import ParamsError, load_params

    try:
        load_params(args.file)
    except ParamsError as err:
        print(err, file=sys.stderr)
        return 2
    print(f"{args.file}: valid", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from coderanker.reranker import BATCH_SIZE, MAX_LENGTH
    from coderanker.sources import SOURCES_HELP

    parser = argparse.ArgumentParser(prog="coderanker", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="export and validate problem files").add_subparsers(
        dest="data_command", required=True)
    export = data.add_parser("export", help="write a problem source as JSONL", epilog=SOURCES_HELP,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("name")
    export.add_argument("--out", required=True, type=Path)
    export.add_argument("--limit", type=int, default=0, help="keep the first N problems")
    export.set_defaults(func=data_export)
    validate = data.add_parser("validate", help="check a problem file; one line per bad record")
    validate.add_argument("file", type=Path)
    validate.add_argument("--check-references", action="store_true",
                          help="also run every reference against its tests and its visible_tests "
                               "in the sandbox")
    validate.add_argument("--workers", type=int, default=0)
    validate.set_defaults(func=data_validate)

    execute = commands.add_parser("execute", help="run candidates against their tests in the sandbox")
    execute.add_argument("--problems", required=True, type=Path)
    execute.add_argument("--candidates", required=True, type=Path)
    execute.add_argument("--out", required=True, type=Path)
    execute.add_argument("--workers", type=int, help="programs at once (default: one per core)")
    execute.add_argument("--backend", choices=["local", "ray"])
    execute.add_argument("--params", default="params.yaml", help="limits from its execute section if present")
    execute.set_defaults(func=execute_cmd)

    sample = commands.add_parser("sample", help="sample candidate programs for a problem file")
    sample.add_argument("--model", required=True, help="generator: a model directory or hub id")
    sample.add_argument("--problems", required=True, type=Path)
    sample.add_argument("--out", required=True, type=Path)
    sample.add_argument("-n", type=int, help="samples per problem (default: params.yaml sample.samples_per_problem)")
    sample.add_argument("--greedy", action="store_true", help="also one greedy candidate per problem (sample -1)")
    sample.add_argument("--max-new-tokens", type=int)
    sample.add_argument("--temperature", type=float)
    sample.add_argument("--top-p", type=float)
    sample.add_argument("--batch-size", type=int)
    sample.add_argument("--seed", type=int)
    sample.add_argument("--style", choices=["auto", "prefill", "chat", "completion"])
    sample.add_argument("--device", choices=["auto", "cpu", "cuda"])
    sample.add_argument("--dtype", choices=["auto", "bf16", "fp32"])
    sample.add_argument("--backend", choices=["hf", "vllm"],
                        help="hf (CPU or GPU) or vllm (GPU; pip install -e '.[gpu]'); "
                             "default: params.yaml sample.backend, else hf")
    sample.add_argument("--params", default="params.yaml", help="settings from its sample section if present")
    sample.set_defaults(func=sample_cmd)

    rerank = commands.add_parser(
        "rerank", help="score candidates with a reranker (adds \"score\")",
        description="Score candidates with a reranker: every output row is its candidate plus \"score\". "
                    "With --prune (generate, prune, then rank, as AlphaCode filters by the examples a "
                    "problem shows), every row also gets \"visible_status\" (how the candidate did on its "
                    "problem's visible_tests: a status, or null where the problem has none; candidates "
                    "that carry one from `coderanker execute` keep it, the others run in the sandbox) and "
                    "\"pruned\": true when its problem has visible tests, it did not pass them, and another "
                    "candidate of the problem did (where none passed, none is pruned). Pick the top-scored "
                    "row that is not pruned.")
    rerank.add_argument("--model", required=True,
                        help="reranker directory or MLflow URI, e.g. models:/coderanker-reranker@champion")
    rerank.add_argument("--problems", required=True, type=Path)
    rerank.add_argument("--candidates", required=True, type=Path)
    rerank.add_argument("--out", required=True, type=Path)
    rerank.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    rerank.add_argument("--max-length", type=int, default=MAX_LENGTH)
    rerank.add_argument("--prune", action="store_true",
                        help="add visible_status and pruned to every row (see above)")
    rerank.add_argument("--params", default="params.yaml",
                        help="with --prune: sandbox limits from its execute section if present")
    rerank.add_argument("--workers", type=int, help="with --prune: programs at once (default: one per core)")
    rerank.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: params.yaml model.device")
    rerank.add_argument("--dtype", choices=["auto", "bf16", "fp32"], help="default: params.yaml model.dtype")
    rerank.set_defaults(func=rerank_cmd)

    profile = commands.add_parser("profile", help="switch params.yaml between profiles").add_subparsers(
        dest="profile_command", required=True)
    use = profile.add_parser("use", help="write params.yaml from configs/NAME.yaml")
    use.add_argument("name")
    use.add_argument("--params", default="params.yaml")
    use.set_defaults(func=profile_use)

    params = commands.add_parser("params", help="check params files").add_subparsers(
        dest="params_command", required=True)
    check = params.add_parser("check", help="check a params file against every section's types; "
                              "one line per bad setting (exit 2)")
    check.add_argument("file", nargs="?", type=Path, default=Path("params.yaml"))
    check.set_defaults(func=params_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
