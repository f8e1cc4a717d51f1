"""Scoring a round's evaluation candidates with its reranker and summarising them.

Results files are read one problem at a time and scored whole problems per scorer call (the
reranker batches a problem's candidates together, so the scores equal those of one call over
the file); what stays in memory is each candidate's score and the few fields the figures read
(`coderanker.metrics.figure_fields`), never the programs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from coderanker.jsonl import JsonlGroups, RecordError, iter_lines, write_jsonl
from coderanker.metrics import (
    LANGUAGE_FIGURES,
    bootstrap_ci95,
    by_language,
    choice_sample_lists,
    compare_on_pool,
    figure_fields,
    gain_per_problem,
    group_by_problem,
    mean_or_none,
    mean_pass_at_k,
    pairwise_accuracy,
    summarise,
)
from coderanker.problems import Problem, by_name, load_problems

SCORE_BATCH = 256
"""Candidates per scorer call, in whole problems (a bigger problem is a call alone)."""
LANGUAGE_COLUMNS = ("language", "sets", "problems", *LANGUAGE_FIGURES)


def evaluate_round(problems_dir: Path, results_dir: Path, reranker_dir: str | os.PathLike, sets: list[str],
                   scored_dir: Path, rerank_config, placement=None, scorers: Scorers | None = None,
                   pool: int = 0) -> dict[str, dict]:
    """Per evaluation set: pass@1, greedy, oracle, reranked pass@1 with its gain and
    intervals, within-problem hit rates, pruned figures, each for picks from a pool of `pool`
    samples (0: all; see `coderanker.metrics`)."""
    reranker = (scorers or Scorers(rerank_config, placement)).get(reranker_dir)
    summaries = {}
    for name in sets:
        problems = by_name(load_problems(problems_dir / f"eval-{name}.jsonl"))
        summaries[name] = evaluate_file(results_dir / f"eval-{name}.jsonl", problems, reranker,
                                        scored_dir / f"eval-{name}.jsonl", pool=pool)
    return summaries


def evaluate_file(results_path: str | os.PathLike, problems: dict[str, Problem], scorer,
                  scored_path: str | os.PathLike, batch_size: int = SCORE_BATCH, pool: int = 0) -> dict:
    """Score one results file and summarise it (`coderanker.metrics.summarise`). `scored_path`
    gets the same records in the same order, each with its `score`, written as they stream."""
    scores = score_lines(JsonlGroups(results_path), problems, scorer, batch_size)
    kept = []

    def scored() -> Iterator[dict]:
        for line, result in numbered_records(results_path):
            result["score"] = scores[line]
            kept.append(figure_fields(result, "score"))
            yield result

    write_jsonl(scored_path, scored())
    return summarise(kept, score=lambda r: r["score"], pool=pool)


def languages_table(problems_dir: Path, scored_dir: Path, sets: list[str], pool: int = 0) -> dict[str, dict]:
    """The `languages` block of metrics/<round>.json (`coderanker.metrics.by_language`) from the
    scored files `evaluate_round` wrote. A problem's language is the one its problems file gives,
    so a set of mixed languages counts in each of them by its problems."""
    results = {}
    for name in sets:
        problems = by_name(load_problems(problems_dir / f"eval-{name}.jsonl"))
        results[name] = [{**figure_fields(result, "score"), "language": problems[result["name"]].language}
                         for _, result in numbered_records(scored_dir / f"eval-{name}.jsonl")]
    return by_language(results, score=lambda r: r["score"], pool=pool)


def language_columns(table: dict[str, dict]) -> dict[str, list]:
    """The `languages` block as LANGUAGE_COLUMNS, one row per language then the average (the shape
    of an MLflow table)."""
    return {column: [language if column == "language" else row[column] for language, row in table.items()]
            for column in LANGUAGE_COLUMNS}


def format_language_table(table: dict[str, dict]) -> str:
    """The `languages` block as aligned text, one line per language; figures to 3 decimals, "-" when None."""
    columns = language_columns(table)
    cells = {column: [str(v) if column in ("language", "sets", "problems") else "-" if v is None else f"{v:.3f}"
                      for v in values] for column, values in columns.items()}
    widths = {column: max(len(column), *map(len, values)) for column, values in cells.items()}

    def line(row: dict[str, str]) -> str:
        return "  ".join(row[c].ljust(widths[c]) if c in ("language", "sets") else row[c].rjust(widths[c])
                         for c in cells)

    rows = [dict(zip(cells, values, strict=True)) for values in zip(*cells.values(), strict=True)]
    return "\n".join(line(row) for row in [{c: c for c in cells}, *rows])


def compare_on_shared_pool(problems_dir: Path, pool_dir: Path, set_name: str, reranker_dir, previous_dir,
                           rerank_config, placement=None, scorers: Scorers | None = None, pool: int = 0) -> dict:
    """The round's reranker against the previous round's on the same candidates (the first
    round's pool of `set_name`): rounds compared on one pool, a paired comparison; each picks
    from `pool` of a problem's samples as `evaluate_round`'s do.

    Only the samples of problems with a choice are scored: elsewhere every pick has the same
    outcome, so the figures (all over every problem of the pool) are exact, at about a
    quarter of the scoring on the default profile. Given the stage's `scorers`, candidates
    already scored (the first round's own pool) and a likelihood prior both rerankers share
    are computed once."""
    scorers = scorers or Scorers(rerank_config, placement)
    problems = by_name(load_problems(problems_dir / f"eval-{set_name}.jsonl"))
    path = pool_dir / f"eval-{set_name}.jsonl"
    records = [{**figure_fields(result), "line": line} for line, result in numbered_records(path)]
    choice = choice_sample_lists(group_by_problem(records))
    to_score = {r["line"] for samples in choice for r in samples}
    names = [samples[0]["name"] for samples in choice]
    groups = JsonlGroups(path)
    current = score_lines(groups, problems, scorers.get(reranker_dir), SCORE_BATCH, names, to_score)
    scorers.release(reranker_dir)  # one reranker resident at a time, as before (the prior stays shared)
    previous = score_lines(groups, problems, scorers.get(previous_dir), SCORE_BATCH, names, to_score)
    scorers.release(previous_dir)
    for result in records:
        result["score"], result["previous_score"] = current.get(result["line"], 0.0), previous.get(result["line"], 0.0)
    compared = compare_on_pool(records, lambda r: r["previous_score"], lambda r: r["score"], pool=pool)
    groups = group_by_problem(records)
    gains = gain_per_problem(groups, lambda r: r["score"], pool)
    return {
        "problems": compared["problems"],
        "problems_with_choice": compared["problems_with_choice"],
        "scored": len(to_score),
        "pass@1": mean_pass_at_k(groups, 1),
        "reranked_pass@1": compared["reranked_pass@1_b"],
        "previous_reranked_pass@1": compared["reranked_pass@1_a"],
        "difference_vs_previous": compared["difference"],
        "difference_vs_previous_ci95": compared["difference_ci95"],
        "reranked_gain": mean_or_none(gains),
        "reranked_gain_ci95": bootstrap_ci95(gains),
        "reranker_pairwise_acc": pairwise_accuracy(groups, lambda r: r["score"]),
        "previous_reranker_pairwise_acc": pairwise_accuracy(groups, lambda r: r["previous_score"]),
    }


def score_lines(groups: JsonlGroups, problems: dict[str, Problem], scorer, batch_size: int = SCORE_BATCH,
                names: list[str] | None = None, lines: set[int] | None = None) -> dict[int, float]:
    """Scores by line number of the results of `names` (default: all problems), only those on
    `lines` if given; each scorer call holds whole problems, in file order within each."""
    scores: dict[int, float] = {}
    for batch in groups.batches(batch_size, names):
        numbers, results = [], []
        for name in batch:
            for number, result in zip(groups.line_numbers(name), groups.read(name), strict=True):
                if lines is None or number in lines:
                    numbers.append(number)
                    results.append(result)
        if results:
            scores.update(zip(numbers, scorer.score_candidates(problems, results), strict=True))
    return scores


def numbered_records(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """(line number, record) of each record in file order; a bad line raises RecordError."""
    for line, item in iter_lines(path):
        if isinstance(item, RecordError):
            raise item
        yield line, item


def load_scorer(reranker_dir, rerank_config, placement=None, **kwargs):
    from coderanker.reranker import Reranker

    return Reranker.load(str(reranker_dir), placement=placement, max_length=rerank_config.max_length,
                         batch_size=rerank_config.score_batch_size, **kwargs)


class Scorers:
    """The rerankers of one stage, each loaded once until released: a reranker asked for
    again is the same scorer, its scores memoised, and rerankers whose likelihood priors are
    the same policy share one prior and its memo (see `coderanker.reranker.Reranker.load`)."""

    def __init__(self, rerank_config, placement=None):
        self.rerank_config, self.placement = rerank_config, placement
        self.loaded: dict[str, object] = {}
        self.priors: dict = {}

    def get(self, reranker_dir):
        key = self.key(reranker_dir)
        if key not in self.loaded:
            self.loaded[key] = load_scorer(reranker_dir, self.rerank_config, self.placement, priors=self.priors,
                                           memo=True)
        return self.loaded[key]

    def release(self, reranker_dir) -> None:
        """Drop a reranker (its model and memo); a prior it shares stays for the others."""
        self.loaded.pop(self.key(reranker_dir), None)

    @staticmethod
    def key(reranker_dir) -> str:
        return str(Path(reranker_dir).resolve()) if Path(str(reranker_dir)).exists() else str(reranker_dir)
