"""One round's training pairs: new (passing, failing) pairs from the round's training
candidates, plus hard negatives (failing candidates the previous reranker scores high),
accumulated onto the previous round's pairs.

`mine_file` reads the round's results one problem at a time (`mine_round` takes them as a
list): only the candidates' scores are ever all in memory, never their programs."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from coderanker.jsonl import JsonlGroups
from coderanker.pairs import (
    PASSED,
    SANDBOX_ERROR,
    PairConfig,
    hard_score_floor,
    labelled,
    pair_hard_negatives,
    problem_hard_negatives,
    problem_pairs,
)
from coderanker.problems import Problem
from coderanker.reranker import candidate_response

log = logging.getLogger(__name__)

SCORE_BATCH = 256
"""Candidates per scorer call, in whole problems (a bigger problem is a call alone)."""


@dataclass
class MiningReport:
    new_pairs: int = 0
    hard_negatives: int = 0
    hard_negative_pairs: int = 0
    total_pairs: int = 0
    score_stats: dict = field(default_factory=dict)


def pair_record(chosen: dict, rejected: dict, round_id: str, kind: str, margin: float) -> dict:
    record = {
        "name": chosen["name"],
        "round": round_id,
        "kind": kind,
        "chosen": candidate_response(chosen),
        "rejected": candidate_response(rejected),
        "chosen_completion": chosen["completion"],
        "rejected_completion": rejected["completion"],
        "rejected_status": rejected["status"],
        # the chosen program was not sampled from the model: a reference or a program the dataset ships
        "chosen_reference": bool(chosen.get("reference") or chosen.get("dataset")),
    }
    if "score" in rejected:
        record["rejected_score"] = rejected["score"]
    if margin:
        record["margin"] = margin
    return record


def score_stats(results: list[dict]) -> dict:
    """Score distribution of passing vs failing candidates (for logs and MLflow)."""
    return score_distribution([r["score"] for r in results], [r["status"] == PASSED for r in results])


def score_distribution(scores: list[float], passing: list[bool]) -> dict:
    """`score_stats` of candidates given as their scores and whether each passes."""
    stats = {}
    for label, wanted in (("passing", True), ("failing", False)):
        rows = [score for score, passed in zip(scores, passing, strict=True) if passed == wanted]
        values = np.array(rows) if rows else np.array([])
        stats[label] = {"count": len(rows), **({
            "mean": float(values.mean()), "p10": float(np.quantile(values, 0.1)),
            "median": float(np.median(values)), "p90": float(np.quantile(values, 0.9)),
        } if len(rows) else {})}
    return stats


def mine_round(results: list[dict], previous_pairs: list[dict], problems: dict[str, Problem], round_id: str,
               config: PairConfig, scorer=None) -> tuple[list[dict], MiningReport, list[dict]]:
    """Returns (accumulated pairs, report, the round's labelled results with scores if scored)."""
    groups = labelled(results)
    pairs, report = mine_problems(list(groups), groups.__getitem__, previous_pairs, problems, round_id, config,
                                  scorer)
    return pairs, report, [r for group in groups.values() for r in group]


def mine_file(results_path: str | os.PathLike, previous_pairs: list[dict], problems: dict[str, Problem],
              round_id: str, config: PairConfig, scorer=None,
              batch_size: int = SCORE_BATCH) -> tuple[list[dict], MiningReport]:
    """`mine_round` on a results file, read one problem at a time (a problem's results need not
    be consecutive); returns (accumulated pairs, report)."""
    groups = JsonlGroups(results_path, "name", keep=lambda r: r["status"] != SANDBOX_ERROR)
    return mine_problems(groups.keys, groups.read, previous_pairs, problems, round_id, config, scorer, batch_size)


def mine_problems(names: list[str], read: Callable[[str], list[dict]], previous_pairs: list[dict],
                  problems: dict[str, Problem], round_id: str, config: PairConfig, scorer=None,
                  batch_size: int = SCORE_BATCH) -> tuple[list[dict], MiningReport]:
    """The round's pairs a problem at a time: `names` in order of first appearance, `read(name)`
    that problem's results. With a scorer, two passes: score every problem, keeping only the
    floats (the hard-negative floor is a quantile of all of them), then pair problem by problem."""
    report = MiningReport()
    scores = score_problems(names, read, problems, scorer, batch_size) if scorer is not None else {}
    flat = [scored for name in names for scored in scores.get(name, [])]
    floor = hard_score_floor([score for score, _ in flat], config)
    if flat:
        report.score_stats = score_distribution([score for score, _ in flat], [passed for _, passed in flat])
    earlier = earlier_positives(previous_pairs)
    # one generator for all problems, in name order, as in build_pairs and pair_hard_negatives
    pair_rng, hard_rng = random.Random(config.seed), random.Random(config.seed)
    new, hard_pairs = [], []
    for name in sorted(names):
        group = labelled(read(name)).get(name, [])
        new += [pair_record(g, b, round_id, "pair", config.margin) for g, b in problem_pairs(group, config, pair_rng)]
        if name not in scores:
            continue
        # scores attach after the new pairs: those carry a rejected_score only where the
        # results came with one, as when every new pair was built before scoring
        for result, (score, _) in zip(group, scores[name], strict=True):
            result["score"] = score
        hard = problem_hard_negatives(group, config, floor)
        positives = {name: [r for r in group if r["status"] == PASSED] + earlier.get(name, [])}
        hard_pairs += [pair_record(g, b, round_id, "hard_negative", config.margin)
                       for g, b in pair_hard_negatives(hard, positives, rng=hard_rng)]
        report.hard_negatives += len(hard)
    assert all(p["rejected_status"] != PASSED for p in hard_pairs)
    report.new_pairs, report.hard_negative_pairs = len(new), len(hard_pairs)
    pairs = dedupe_pairs(previous_pairs + new + hard_pairs)
    report.total_pairs = len(pairs)
    log.info("round %s: %d new pairs, %d hard negatives (%d paired), %d pairs in all", round_id,
             report.new_pairs, report.hard_negatives, report.hard_negative_pairs, report.total_pairs)
    return pairs, report


def score_problems(names: list[str], read: Callable[[str], list[dict]], problems: dict[str, Problem], scorer,
                   batch_size: int = SCORE_BATCH) -> dict[str, list[tuple[float, bool]]]:
    """Per problem, (score, passes) of each labelled result, in order. Each scorer call holds
    whole problems: the reranker batches a problem's candidates together, so its scores are
    those of one call over the whole round."""
    scored: dict[str, list[tuple[float, bool]]] = {}
    batch: list[tuple[str, list[dict]]] = []
    for index, name in enumerate(names):
        batch.append((name, labelled(read(name)).get(name, [])))
        if sum(len(group) for _, group in batch) >= batch_size or index == len(names) - 1:
            results = [r for _, group in batch for r in group]
            scores = iter(scorer.score_candidates(problems, results) if results else [])
            for done, group in batch:
                scored[done] = [(next(scores), r["status"] == PASSED) for r in group]
            batch = []
    return scored


def earlier_positives(previous_pairs: list[dict]) -> dict[str, list[dict]]:
    """Per problem, the chosen programs of earlier rounds' pairs: passing candidates too, a
    reference still marked as one (a pair it makes records `chosen_reference`)."""
    positives: dict[str, list[dict]] = {}
    for p in previous_pairs:
        positives.setdefault(p["name"], []).append(
            {"name": p["name"], "completion": p["chosen_completion"], "response": p["chosen"], "status": PASSED,
             "reference": bool(p.get("chosen_reference"))})
    return positives


def dedupe_pairs(pairs: list[dict]) -> list[dict]:
    """One record per (problem, chosen, rejected) program pair. Where a pair repeats, the later
    record wins and the pair moves to the later place: `mine_round` passes earlier rounds' pairs,
    then the round's new pairs, then its hard negatives, so a pair mined again carries the latest
    round and its kind (a hard negative of this round keeps that priority under max_pairs), and
    the file stays earlier rounds' remaining pairs, then this round's."""
    unique: dict[tuple, dict] = {}
    for p in pairs:
        key = (p["name"], p["chosen_completion"].strip(), p["rejected_completion"].strip())
        unique.pop(key, None)
        unique[key] = p
    return list(unique.values())
