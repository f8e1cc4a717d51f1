"""Pure selection maths for reranker training: Bradley-Terry pairs and hard negatives.

Inputs are execution results (dicts with `name`, `status`, `completion`, `response`, and
`score` where a reranker scored them). `sandbox_error` is never a label: it is dropped
before anything else happens.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

PASSED, SANDBOX_ERROR = "passed", "sandbox_error"


@dataclass(frozen=True)
class PairConfig:
    """How pairs and hard negatives are chosen; the `pairs` section of params.yaml."""

    max_pairs_per_problem: int = field(default=8, metadata={"min": 1})
    """Cap on (passing, failing) pairs drawn per problem and round."""
    margin: float = field(default=0.0, metadata={"min": 0})
    """Bradley-Terry margin: loss = -log sigmoid(r+ - r- - margin); 0 disables it."""
    hard_top_k: int = field(default=2, metadata={"min": 0})
    """Hard negatives: the k highest-scored failing candidates per problem (0: no cap)."""
    hard_above_best_passing: bool = False
    """Hard negatives must score at least the problem's best passing candidate."""
    hard_min_quantile: float = field(default=0.0, metadata={"min": 0, "max": 1})
    """Hard negatives must score at or above this quantile of all scores (0: off)."""
    seed: int = field(default=0, metadata={"min": 0})


def labelled(results: Iterable[dict]) -> dict[str, list[dict]]:
    """Results grouped by problem, sandbox errors dropped, identical programs kept once."""
    groups: dict[str, list[dict]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for result in results:
        key = (result["name"], result["completion"].strip())
        if result["status"] == SANDBOX_ERROR or key in seen:
            continue
        seen.add(key)
        groups[result["name"]].append(result)
    return dict(groups)


def build_pairs(results: Iterable[dict], config: PairConfig) -> list[tuple[dict, dict]]:
    """(passing, failing) pairs of the same problem, at most max_pairs_per_problem each,
    drawn without replacement by a seeded shuffle."""
    rng = random.Random(config.seed)
    return [pair for _, group in sorted(labelled(results).items()) for pair in problem_pairs(group, config, rng)]


def problem_pairs(group: list[dict], config: PairConfig, rng: random.Random) -> list[tuple[dict, dict]]:
    """`build_pairs` for one problem's labelled results; problems in name order share `rng`."""
    good = [r for r in group if r["status"] == PASSED]
    bad = [r for r in group if r["status"] != PASSED]
    combos = [(g, b) for g in good for b in bad]
    rng.shuffle(combos)
    return combos[: config.max_pairs_per_problem]


def select_hard_negatives(results: Iterable[dict], config: PairConfig) -> list[dict]:
    """Failing candidates that the reranker scores high; every enabled rule must hold."""
    groups = labelled(results)
    floor = hard_score_floor([r["score"] for group in groups.values() for r in group], config)
    return [r for _, group in sorted(groups.items()) for r in problem_hard_negatives(group, config, floor)]


def hard_score_floor(scores: list[float], config: PairConfig) -> float | None:
    """The hard_min_quantile of all the round's scores (None: no floor)."""
    return float(np.quantile(scores, config.hard_min_quantile)) if scores and config.hard_min_quantile else None


def problem_hard_negatives(group: list[dict], config: PairConfig, floor: float | None) -> list[dict]:
    """`select_hard_negatives` for one problem's labelled, scored results."""
    failing = sorted((r for r in group if r["status"] != PASSED), key=lambda r: -r["score"])
    if config.hard_top_k:
        failing = failing[: config.hard_top_k]
    passing = [r["score"] for r in group if r["status"] == PASSED]
    hard = []
    for r in failing:
        if config.hard_above_best_passing and passing and r["score"] < max(passing):
            continue
        if floor is not None and r["score"] < floor:
            continue
        hard.append(r)
    return hard


def pair_hard_negatives(hard: list[dict], positives: dict[str, list[dict]], seed: int = 0,
                        rng: random.Random | None = None) -> list[tuple[dict, dict]]:
    """Pair each hard negative with a passing candidate of its problem (from any round);
    hard negatives of problems never solved stay unpaired. Pass `rng` (instead of `seed`) to
    pair problem by problem with one generator."""
    rng = rng or random.Random(seed)
    return [(rng.choice(positives[r["name"]]), r) for r in hard if positives.get(r["name"])]
