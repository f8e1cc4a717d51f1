"""params.yaml: one section per stage, each loaded into that stage's config dataclass."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
DEFAULT_PARAMS = "params.yaml"


def load_params(path: str | os.PathLike = DEFAULT_PARAMS) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no params file (run `coderanker profile use cpu` to write one)")
    with open(path, encoding="utf-8") as handle:
        params = yaml.safe_load(handle) or {}
    if not isinstance(params, dict):
        raise ValueError(f"{path}: the top level must be a mapping of sections")
    return params


def section(params: dict[str, Any], name: str, cls: type[T], path: str = DEFAULT_PARAMS) -> T:
    """Build `cls` from params[name], naming the file and key on a bad setting."""
    values = params.get(name) or {}
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path}: {name}: unknown setting(s) {unknown}; known: {sorted(known)}")
    try:
        return cls(**values)
    except TypeError as err:
        raise ValueError(f"{path}: {name}: {err}") from err


@dataclass(frozen=True)
class EvalSet:
    """One evaluation problem set."""

    source: str
    """A problem source name (see `coderanker data export --help`)."""
    limit: int = 0
    """Keep the first `limit` problems; 0 keeps all."""


@dataclass(frozen=True)
class DataConfig:
    """Which problems each round trains and evaluates on; the `data` section."""

    train: list[str] = field(default_factory=lambda: ["starter:train"])
    """Problem sources whose candidates become reranker training pairs."""
    train_limit: int = 0
    """Keep the first `train_limit` training problems; 0 keeps all."""
    eval: dict[str, dict] = field(default_factory=lambda: {"starter": {"source": "starter:eval"}})
    """Named evaluation sets; the first is the primary one reported as `eval`."""

    def eval_sets(self) -> dict[str, EvalSet]:
        return {name: EvalSet(**spec) for name, spec in self.eval.items()}


def self_training_rounds(count: int) -> dict[str, dict]:
    """`rounds` for r0 (the bootstrap) and `count` self-training rounds after it."""
    rounds = {"r0": {"previous": "seed", "ppo": False, "hard_negatives": False}}
    for index in range(1, count + 1):
        rounds[f"r{index}"] = {"previous": f"r{index - 1}", "ppo": True, "hard_negatives": True}
    return rounds


def apply_overrides(params: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (`sample.samples_per_problem: 4`); a key must already exist."""
    import copy

    updated = copy.deepcopy(params)
    for dotted, value in overrides.items():
        node, keys = updated, dotted.split(".")
        for key in keys[:-1]:
            if not isinstance(node.get(key), dict):
                raise KeyError(f"params override {dotted!r}: no section {key!r}")
            node = node[key]
        if keys[-1] not in node:
            raise KeyError(f"params override {dotted!r}: no key {keys[-1]!r} (known: {sorted(node)})")
        node[keys[-1]] = value
    return updated
