"""One round's training pairs: new (passing, failing) pairs from the round's training
candidates, plus hard negatives (failing candidates the previous reranker scores high),
accumulated onto the previous round's pairs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from coderanker.pairs import PASSED, PairConfig, build_pairs, labelled, pair_hard_negatives, select_hard_negatives
from coderanker.problems import Problem
from coderanker.reranker import candidate_response

log = logging.getLogger(__name__)


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
    stats = {}
    for label, rows in (("passing", [r for r in results if r["status"] == PASSED]),
                        ("failing", [r for r in results if r["status"] != PASSED])):
        scores = np.array([r["score"] for r in rows]) if rows else np.array([])
        stats[label] = {"count": len(rows), **({
            "mean": float(scores.mean()), "p10": float(np.quantile(scores, 0.1)),
            "median": float(np.median(scores)), "p90": float(np.quantile(scores, 0.9)),
        } if len(rows) else {})}
    return stats


def mine_round(results: list[dict], previous_pairs: list[dict], problems: dict[str, Problem], round_id: str,
               config: PairConfig, scorer=None) -> tuple[list[dict], MiningReport, list[dict]]:
    """Returns (accumulated pairs, report, the round's labelled results with scores if scored)."""
    report = MiningReport()
    usable = [r for group in labelled(results).values() for r in group]
    new = [pair_record(g, b, round_id, "pair", config.margin) for g, b in build_pairs(usable, config)]
    report.new_pairs = len(new)
    hard_pairs: list[dict] = []
    if scorer is not None and usable:
        for result, score in zip(usable, scorer.score_candidates(problems, usable), strict=True):
            result["score"] = score
        hard = select_hard_negatives(usable, config)
        positives: dict[str, list[dict]] = {}
        for r in usable:
            if r["status"] == PASSED:
                positives.setdefault(r["name"], []).append(r)
        for p in previous_pairs:  # passing programs of earlier rounds are positives too
            positives.setdefault(p["name"], []).append(
                {"name": p["name"], "completion": p["chosen_completion"], "response": p["chosen"], "status": PASSED})
        hard_pairs = [pair_record(g, b, round_id, "hard_negative", config.margin)
                      for g, b in pair_hard_negatives(hard, positives, config.seed)]
        report.hard_negatives, report.hard_negative_pairs = len(hard), len(hard_pairs)
        report.score_stats = score_stats(usable)
        assert all(p["rejected_status"] != PASSED for p in hard_pairs)
    pairs = dedupe_pairs(previous_pairs + new + hard_pairs)
    report.total_pairs = len(pairs)
    log.info("round %s: %d new pairs, %d hard negatives (%d paired), %d pairs in all", round_id,
             report.new_pairs, report.hard_negatives, report.hard_negative_pairs, report.total_pairs)
    return pairs, report, usable


def dedupe_pairs(pairs: list[dict]) -> list[dict]:
    """One record per (problem, chosen, rejected) program pair, in first-seen order; a pair
    that was also mined as a hard negative is kept marked as one."""
    unique: dict[tuple, dict] = {}
    for p in pairs:
        key = (p["name"], p["chosen_completion"].strip(), p["rejected_completion"].strip())
        if key not in unique or (p["kind"] == "hard_negative" and unique[key]["kind"] != "hard_negative"):
            unique[key] = p if key not in unique else {**unique[key], "kind": p["kind"], **_scored(p)}
    return list(unique.values())


def _scored(pair: dict) -> dict:
    return {"rejected_score": pair["rejected_score"]} if "rejected_score" in pair else {}
