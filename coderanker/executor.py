"""File-level execution: read candidates, check them, run them on a backend, write results."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable

from coderanker.jsonl import RecordError, iter_lines, write_jsonl
from coderanker.problems import Problem, by_name, load_problems
from coderanker.sandbox import SandboxConfig, execute

log = logging.getLogger(__name__)


class CandidateFileError(ValueError):
    def __init__(self, errors: list[RecordError]):
        self.errors = errors
        shown = "\n".join(map(str, errors[:20]))
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} bad candidate record(s):\n{shown}{more}")


def load_candidates(path: str | os.PathLike, problems: dict[str, Problem]) -> list[dict]:
    """Candidates with `name` (a known problem) and `completion`; all bad lines are reported."""
    candidates, errors = [], []
    for line, item in iter_lines(path):
        if isinstance(item, RecordError):
            errors.append(item)
            continue
        bad = [(f, "missing required field") for f in ("name", "completion") if f not in item]
        bad += [(f, f"expected str, got {type(item[f]).__name__}")
                for f in ("name", "completion") if f in item and not isinstance(item[f], str)]
        if not bad and item["name"] not in problems:
            bad.append(("name", f"unknown problem {item['name']!r}"))
        errors += [RecordError(path, line, field, why) for field, why in bad]
        if not bad:
            candidates.append(item)
    if errors:
        raise CandidateFileError(errors)
    return candidates


def run(problems: dict[str, Problem], candidates: list[dict], config: SandboxConfig) -> list[dict]:
    """Execute on the configured backend, results in input order."""
    if config.backend == "ray":
        from coderanker.sandbox.ray_backend import execute_on_ray

        return execute_on_ray(problems, candidates, config)
    if config.backend != "local":
        raise ValueError(f"unknown execution backend {config.backend!r} (local or ray)")
    from tqdm.auto import tqdm

    with tqdm(total=len(candidates), desc="execute", unit="prog", mininterval=5) as bar:
        return list(execute(problems, candidates, config, progress=bar.update))


def execute_file(problems_path, candidates_path, out_path, config: SandboxConfig,
                 progress: Callable[[], None] | None = None) -> Counter:
    """Execute one candidates file against one problems file; returns status counts."""
    problems = by_name(load_problems(problems_path))
    candidates = load_candidates(candidates_path, problems)
    results = run(problems, candidates, config)
    write_jsonl(out_path, results)
    return Counter(result["status"] for result in results)
