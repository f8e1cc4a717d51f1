"""What every figure of the generation benchmark shares."""

from __future__ import annotations

import statistics
from collections.abc import Callable

EMULATED = "auto resolves to fp32 here: bf16 would be emulated"


def alternate(measures: dict[str, Callable[[], tuple[float, ...]]], repeats: int) -> dict[str, tuple[float, ...]]:
    """Each measure `repeats` times, taking turns (so all see the same machine load); medians."""
    runs: dict[str, list[tuple[float, ...]]] = {name: [] for name in measures}
    for _ in range(repeats):
        for name, measure in measures.items():
            runs[name].append(measure())
    return {name: tuple(statistics.median(column) for column in zip(*rows, strict=True)) for name, rows in runs.items()}
