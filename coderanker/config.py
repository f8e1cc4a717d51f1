"""params.yaml: one section per stage, each loaded into that stage's config dataclass.

The whole file is checked when it is loaded, against the sections' dataclasses: an unknown
key, a value of the wrong type (read from the field's annotation) or out of its bounds (the
field's `metadata`: `min`, `max`, `gt`) is refused before any stage does any work, with the
file, the line, the key's dotted path and why:

    params.yaml:37: sample.temperature: expected a number, got 'hot'
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import operator
import os
import re
import types
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from coderanker.errors import InputError

T = TypeVar("T")
DEFAULT_PARAMS = "params.yaml"
OVERRIDE = "override"
ROUND_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
BOUNDS = {"min": (">=", operator.ge), "max": ("<=", operator.le), "gt": (">", operator.gt)}
"""Field metadata keys that bound a number, how they read and how they are tested."""

Key = tuple[str | int, ...]
"""A setting's path: mapping keys (str) and list indexes (int)."""
Problem = tuple[Key, str]
"""A setting's path and what is wrong with it."""


@dataclass(frozen=True)
class ParamIssue:
    """One bad setting: where it is (a file and line, or `override`) and what is wrong."""

    source: str
    line: int | None
    key: str
    """The dotted path, e.g. `sample.temperature` or `data.train[0]`."""
    reason: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.key}: {self.reason}" if self.key else f"{where}: {self.reason}"


class ParamsError(InputError):
    """params.yaml, a profile or an override does not fit the sections; one issue a line."""

    def __init__(self, issues: list[ParamIssue]):
        self.issues = issues
        super().__init__("\n".join(map(str, issues)))


@dataclass(frozen=True)
class EvalSet:
    """One evaluation problem set."""

    source: str
    """A problem source name (see `coderanker data export --help`)."""
    limit: int = field(default=0, metadata={"min": 0})
    """Keep the first `limit` problems; 0 keeps all."""


@dataclass(frozen=True)
class DataConfig:
    """Which problems each round trains and evaluates on; the `data` section."""

    train: list[str] = field(default_factory=lambda: ["starter:train"])
    """Problem sources whose candidates become reranker training pairs."""
    train_limit: int = field(default=0, metadata={"min": 0})
    """Keep the first `train_limit` training problems; 0 keeps all."""
    eval: dict[str, EvalSet] = field(default_factory=lambda: {"starter": EvalSet("starter:eval")},
                                     metadata={"min_items": 1})
    """Named evaluation sets; the first is the primary one reported as `eval`."""

    def __post_init__(self):
        # params.yaml gives each set as a mapping
        sets = {name: spec if isinstance(spec, EvalSet) else EvalSet(**spec) for name, spec in self.eval.items()}
        object.__setattr__(self, "eval", sets)

    def eval_sets(self) -> dict[str, EvalSet]:
        return dict(self.eval)


@dataclass(frozen=True)
class RoundConfig:
    """One self-training round of the `rounds` section (dvc.yaml unrolls every stage per round)."""

    previous: str
    """The round it builds on: seed (the state before r0) or an earlier round."""
    ppo: bool
    """PPO-train the policy against the previous round's reranker first."""
    hard_negatives: bool
    """Mine hard negatives with the previous round's reranker."""


@functools.cache
def sections() -> dict[str, Any]:
    """Every section of params.yaml and its type (imported on first use: importing config
    stays light, and the stage modules may import config)."""
    from coderanker.generation import SamplingConfig
    from coderanker.pairs import PairConfig
    from coderanker.runtime import ModelConfig
    from coderanker.sandbox.config import SandboxConfig
    from coderanker.training.policy import PolicyTrainConfig
    from coderanker.training.ray_train import RayTrainConfig
    from coderanker.training.reward import RerankerTrainConfig

    return {"model": ModelConfig, "data": DataConfig, "sample": SamplingConfig, "execute": SandboxConfig,
            "pairs": PairConfig, "reranker": RerankerTrainConfig, "ppo": PolicyTrainConfig,
            "ray": RayTrainConfig, "rounds": dict[str, RoundConfig]}


def load_params(path: str | os.PathLike = DEFAULT_PARAMS, validate: bool = True) -> dict[str, Any]:
    """The sections of a params file, every one checked (unless `validate` is false)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no params file (run `coderanker profile use cpu` to write one)")
    loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
    try:
        node = loader.get_single_node()
        params = (loader.construct_document(node) if node is not None else None) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        reason = f"not valid YAML: {getattr(err, 'problem', None) or err}"
        raise ParamsError([ParamIssue(str(path), mark.line + 1 if mark else None, "", reason)]) from err
    finally:
        loader.dispose()
    if not isinstance(params, dict):
        raise ParamsError([ParamIssue(str(path), 1, "", "the top level must be a mapping of sections")])
    if validate:
        lines, duplicates = key_lines(node)
        refuse(duplicates + params_problems(params), str(path), lines)
    return params


def validate_params(params: dict[str, Any], source: str = DEFAULT_PARAMS, lines: dict[Key, int] | None = None) -> None:
    """Raise a ParamsError listing every bad setting of `params` (from `source`), each with
    the line of its key in `lines` (from `key_lines`) where there is one."""
    refuse(params_problems(params), source, lines)


def refuse(problems: Sequence[Problem], source: str, lines: dict[Key, int] | None = None) -> None:
    if problems:
        issues = [ParamIssue(source, line_of(key, lines or {}), dotted(key), reason) for key, reason in problems]
        raise ParamsError(sorted(issues, key=lambda issue: issue.line or 0))


def section(params: dict[str, Any], name: str, cls: type[T], path: str = DEFAULT_PARAMS) -> T:
    """Build `cls` from params[name], checked again (callers may pass a hand-made dict)."""
    values = params.get(name) or {}
    refuse(check(values, cls, (name,)), str(path))
    return cls(**values)


def self_training_rounds(count: int) -> dict[str, dict]:
    """`rounds` for r0 (the bootstrap) and `count` self-training rounds after it."""
    rounds = {"r0": {"previous": "seed", "ppo": False, "hard_negatives": False}}
    for index in range(1, count + 1):
        rounds[f"r{index}"] = {"previous": f"r{index - 1}", "ppo": True, "hard_negatives": True}
    return rounds


def apply_overrides(params: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (`sample.samples_per_problem: 4`), then check the result as load_params
    checks a file; an issue names the override's dotted key (there is no line)."""
    updated, problems = copy.deepcopy(params), []
    for dotted_key, value in overrides.items():
        node, keys = updated, dotted_key.split(".")
        for depth, key in enumerate(keys[:-1]):
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                problems.append((tuple(keys[: depth + 1]), f"is {shown(node)}, not a mapping: cannot set {dotted_key}"))
                break
        else:
            node[keys[-1]] = value
    refuse(problems + params_problems(updated), OVERRIDE)
    return updated


def params_problems(params: dict[str, Any]) -> list[Problem]:
    """Every problem in a whole params mapping: sections, keys, types, bounds, rounds."""
    known, problems = sections(), []
    for name, value in params.items():
        if name not in known:
            problems.append(((str(name),), unknown_key(str(name), known, "section")))
        elif value is not None:  # an empty section keeps every default
            problems += check(value, known[name], (name,))
    rounds = params.get("rounds")
    return problems + (round_problems(rounds) if isinstance(rounds, dict) else []) + sharding_problems(params)


def sharding_problems(params: dict[str, Any]) -> list[Problem]:
    """FSDP shards across GPUs only: `reranker.sharding: fsdp` without `ray.use_gpu`."""
    from coderanker.training.reward import FSDP_NEEDS_GPUS

    reranker, ray = params.get("reranker"), params.get("ray")
    if isinstance(reranker, dict) and reranker.get("sharding") == "fsdp" and not (
            isinstance(ray, dict) and ray.get("use_gpu") is True):
        return [(("reranker", "sharding"), FSDP_NEEDS_GPUS.removeprefix("reranker.sharding: "))]
    return []


def check(value: Any, hint: Any, key: Key) -> list[Problem]:
    """Problems of `value` against a type hint; dataclasses, dicts and lists recurse."""
    origin, args = get_origin(hint), get_args(hint)
    if dataclasses.is_dataclass(hint):
        return check_fields(value, hint, key)
    if origin is dict and isinstance(value, dict):
        bad_keys = [((*key, str(k)), "keys must be strings") for k in value if not isinstance(k, str)]
        item_hint = args[1] if args else Any
        return bad_keys + [p for k, v in value.items() for p in check(v, item_hint, (*key, str(k)))]
    if origin is list and isinstance(value, list):
        item_hint = args[0] if args else Any
        return [p for index, item in enumerate(value) for p in check(item, item_hint, (*key, index))]
    if origin in (Union, types.UnionType):
        matches = [not check(value, arg, key) for arg in args]
        return [] if any(matches) else [(key, expected(value, hint))]
    return [] if is_instance(value, hint) else [(key, expected(value, hint))]


def check_fields(value: Any, cls: type, key: Key) -> list[Problem]:
    """Problems of a mapping against a dataclass: unknown and missing keys, each field's type
    and then its bounds."""
    if not isinstance(value, dict):
        return [(key, expected(value, cls))]
    hints, known = get_type_hints(cls), {f.name: f for f in fields(cls)}
    problems = [((*key, f.name), "missing (required)") for f in known.values() if f.name not in value
                and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    for name, item in value.items():
        if name not in known:
            problems.append(((*key, str(name)), unknown_key(str(name), known)))
        else:
            at = (*key, name)
            problems += check(item, hints[name], at) or bound_problems(item, known[name].metadata, at)
    return problems


def bound_problems(value: Any, bounds: dict, key: Key) -> list[Problem]:
    """Problems with a field's `min`, `max` and `gt` (numbers) and `min_items` (containers)."""
    if isinstance(value, int | float):
        return [(key, f"must be {sign} {bounds[name]}, got {shown(value)}")
                for name, (sign, holds) in BOUNDS.items() if name in bounds and not holds(value, bounds[name])]
    if isinstance(value, dict | list) and len(value) < bounds.get("min_items", 0):
        return [(key, f"must have at least {bounds['min_items']} item(s), got {len(value)}")]
    return []


def round_problems(rounds: dict) -> list[Problem]:
    """Round ids are directory names; each round builds on seed or an earlier round."""
    problems, earlier = [], []
    for round_id, spec in rounds.items():
        if isinstance(round_id, str) and (not ROUND_ID.fullmatch(round_id) or round_id == "seed"):
            problems.append((("rounds", str(round_id)), "a round id is a directory name (letters, digits, "
                             "- and _) other than seed"))
        previous = spec.get("previous") if isinstance(spec, dict) else None
        if isinstance(previous, str) and previous != "seed" and previous not in earlier:
            rounds_before = f" ({', '.join(earlier)})" if earlier else ""
            problems.append((("rounds", str(round_id), "previous"),
                             f"{previous!r} is neither seed nor an earlier round{rounds_before}"))
        earlier.append(str(round_id))
    return problems


def is_instance(value: Any, hint: Any) -> bool:
    """isinstance for the scalar hints of params: a bool is not a number, an int is a float."""
    if get_origin(hint) is Literal:
        return any(value == choice and type(value) is type(choice) for choice in get_args(hint))
    if hint is Any:
        return True
    if hint in (int, float) and isinstance(value, bool):
        return False
    if hint is float:
        return isinstance(value, int | float)
    if hint is None or hint is type(None):
        return value is None
    return isinstance(value, get_origin(hint) or hint)


def expected(value: Any, hint: Any) -> str:
    reason = f"expected {describe(hint)}, got {shown(value)}"
    if hint is float and isinstance(value, str) and is_number(value):
        reason += " (YAML reads 1e-5 as a string: write 1.0e-5)"
    return reason


def describe(hint: Any) -> str:
    """A type hint in words: `a number`, `one of ppo, grpo`, `a list`."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (Union, types.UnionType):
        return " or ".join(describe(arg) for arg in args)
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list",
             dict: "a mapping", type(None): "null"}
    return "a mapping" if dataclasses.is_dataclass(hint) else names.get(origin or hint, str(hint))


def shown(value: Any) -> str:
    """A value as params.yaml would spell it."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    return repr(value)


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def unknown_key(name: str, known: Any, what: str = "key") -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"unknown {what}" + (f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(known)})")


def dotted(key: Key) -> str:
    """("data", "train", 0) -> data.train[0]"""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in key).lstrip(".")


def line_of(key: Key, lines: dict[Key, int]) -> int | None:
    """The line of a key, else of its nearest parent (a missing key has none of its own)."""
    for depth in range(len(key), 0, -1):
        if key[:depth] in lines:
            return lines[key[:depth]]
    return None


def key_lines(node: yaml.Node | None, key: Key = ()) -> tuple[dict[Key, int], list[Problem]]:
    """The 1-based line of every key and list item under a composed YAML node, and the
    duplicate keys (yaml.safe_load silently keeps the last one)."""
    lines, duplicates = {}, []
    if isinstance(node, yaml.MappingNode):
        children = [((*key, name.value), name, value) for name, value in node.value]
    elif isinstance(node, yaml.SequenceNode):
        children = [((*key, index), item, item) for index, item in enumerate(node.value)]
    else:
        children = []
    for child, marked, value in children:
        if child in lines:
            duplicates.append((child, f"duplicate key (first on line {lines[child]})"))
        lines[child] = marked.start_mark.line + 1
        below, repeated = key_lines(value, child)
        lines.update(below)
        duplicates += repeated
    return lines, duplicates
