"""params.yaml sections, their validation at load time, overrides and generated rounds."""

from __future__ import annotations

import pytest

from coderanker.cli import main as cli_main
from coderanker.config import (
    DataConfig,
    EvalSet,
    ParamsError,
    apply_overrides,
    load_params,
    section,
    self_training_rounds,
)

from ..helpers import REPO

PROFILES = sorted((REPO / "configs").glob("*.yaml"))


def write(tmp_path, text: str):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def issues_of(path) -> list[str]:
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert str(caught.value).splitlines() == [str(issue) for issue in caught.value.issues]
    return str(caught.value).splitlines()


@pytest.mark.parametrize("path", [REPO / "params.yaml", *PROFILES], ids=lambda p: p.name)
def test_every_profile_passes_and_loads_into_every_stage_config(path):
    from coderanker.config import sections

    assert {p.stem for p in PROFILES} >= {"tiny", "cpu", "paper"}
    params = load_params(path)
    for name, cls in sections().items():
        if name != "rounds":
            section(params, name, cls, str(path))
    assert list(params["rounds"])[0] == "r0" and params["rounds"]["r0"]["previous"] == "seed"


def test_a_misspelt_key_names_its_line_and_the_key_it_resembles(tmp_path):
    path = write(tmp_path, "model:\n  source: tiny-random\nsample:\n  temperature: 0.8\n  samples_per_problme: 4\n")
    assert issues_of(path) == [f"{path}:5: sample.samples_per_problme: unknown key (did you mean samples_per_problem?)"]


def test_a_wrong_type_is_refused_with_the_value(tmp_path):
    path = write(tmp_path, 'sample:\n  samples_per_problem: 4\n  temperature: "hot"\n')
    assert issues_of(path) == [f"{path}:3: sample.temperature: expected a number, got 'hot'"]


def test_bad_values_are_all_listed_one_per_line_in_file_order(tmp_path):
    path = write(tmp_path, "model:\n  device: auto\n  dtype: fp16\nsample:\n  samples_per_problem: -1\n")
    assert issues_of(path) == [f"{path}:3: model.dtype: expected one of auto, bf16, fp32, got 'fp16'",
                               f"{path}:5: sample.samples_per_problem: must be >= 0, got -1"]


def test_a_bool_is_not_an_integer_nor_an_integer_a_bool_but_an_integer_is_a_number(tmp_path):
    path = write(tmp_path, "sample:\n  greedy: 1\n  batch_size: true\n  top_p: 1\n  temperature: 2\n")
    assert issues_of(path) == [f"{path}:2: sample.greedy: expected true or false, got 1",
                               f"{path}:3: sample.batch_size: expected an integer, got true"]


def test_exclusive_bounds_and_yaml_float_spelling(tmp_path):
    path = write(tmp_path, "sample:\n  temperature: 0\nreranker:\n  learning_rate: 3e-5\n")
    assert issues_of(path) == [f"{path}:2: sample.temperature: must be > 0, got 0",
                               f"{path}:4: reranker.learning_rate: expected a number, got '3e-5' "
                               "(YAML reads 1e-5 as a string: write 1.0e-5)"]


def test_a_round_must_build_on_seed_or_an_earlier_round(tmp_path):
    path = write(tmp_path, "rounds:\n  r0: {previous: seed, ppo: false, hard_negatives: false}\n"
                           "  r1:\n    previous: r0\n    ppo: true\n    hard_negatives: true\n"
                           "  r2:\n    previous: r5\n    ppo: true\n    hard_negatives: true\n")
    assert issues_of(path) == [f"{path}:8: rounds.r2.previous: 'r5' is neither seed nor an earlier round (r0, r1)"]


def test_a_round_missing_a_key_points_at_the_round_and_seed_is_no_round_id(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("rounds:\n  r0: {previous: seed, ppo: false, hard_negatives: false}\n"
                    "  r1:\n    previous: r0\n    hard_negatives: true\n"
                    "  seed: {previous: r1, ppo: true, hard_negatives: true}\n")
    assert issues_of(path) == [
        f"{path}:3: rounds.r1.ppo: missing (required)",
        f"{path}:6: rounds.seed: a round id is a directory name (letters, digits, - and _) other than seed",
    ]


def test_unknown_sections_nested_entries_and_duplicate_keys(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("sample:\n  seed: 1\n  seed: 2\ndata:\n  train: [a, 3]\n  eval:\n    x:\n      limit: 1\n"
                    "sampel:\n  seed: 1\n")
    assert issues_of(path) == [
        f"{path}:3: sample.seed: duplicate key (first on line 2)",
        f"{path}:5: data.train[1]: expected a string, got 3",
        f"{path}:7: data.eval.x.source: missing (required)",
        f"{path}:9: sampel: unknown section (did you mean sample?)",
    ]


def test_invalid_yaml_names_its_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("sample:\n  seed: 1\n seed: [\n")
    assert issues_of(path)[0].startswith(f"{path}:3: not valid YAML: ")


def test_section_checks_a_hand_made_dict_and_builds_nested_sets():
    from coderanker.generation import SamplingConfig

    with pytest.raises(ParamsError, match=r"^p.yaml: sample.top_p: must be <= 1, got 1.5$"):
        section({"sample": {"top_p": 1.5}}, "sample", SamplingConfig, "p.yaml")
    data = section({"data": {"eval": {"he": {"source": "humaneval", "limit": 2}}}}, "data", DataConfig)
    assert data.eval_sets() == {"he": EvalSet("humaneval", 2)}


def test_rounds_chain_each_to_its_previous():
    assert self_training_rounds(2) == {
        "r0": {"previous": "seed", "ppo": False, "hard_negatives": False},
        "r1": {"previous": "r0", "ppo": True, "hard_negatives": True},
        "r2": {"previous": "r1", "ppo": True, "hard_negatives": True},
    }


def test_overrides_set_dotted_keys_and_are_validated_like_the_file():
    params = {"sample": {"samples_per_problem": 3}, "data": {"train": []}}
    updated = apply_overrides(params, {"sample.samples_per_problem": 5, "data.train": ["x.jsonl"],
                                       "sample.temperature": 1})
    assert updated == {"sample": {"samples_per_problem": 5, "temperature": 1}, "data": {"train": ["x.jsonl"]}}
    assert params["sample"] == {"samples_per_problem": 3}
    refused = {
        "sample.temperature": ("hot", "override: sample.temperature: expected a number, got 'hot'"),
        "sample.samples_per_problem": (-2, "override: sample.samples_per_problem: must be >= 0, got -2"),
        "sample.samples_per_problem.x": (1, "override: sample.samples_per_problem: is 3, not a mapping: "
                                            "cannot set sample.samples_per_problem.x"),
        "sample.temperatur": (1.0, "override: sample.temperatur: unknown key (did you mean temperature?)"),
        "smaple.seed": (1, "override: smaple: unknown section (did you mean sample?)"),
    }
    for key, (value, message) in refused.items():
        with pytest.raises(ParamsError) as caught:
            apply_overrides(params, {key: value})
        assert str(caught.value) == message
        assert [(i.source, i.line) for i in caught.value.issues] == [("override", None)]


def test_params_check_exits_2_with_the_issues_and_0_when_valid(tmp_path, capsys):
    path = write(tmp_path, "ray:\n  num_workers: 1\n  use_gpu: 0\n")
    assert cli_main(["params", "check", str(path)]) == 2
    assert capsys.readouterr().err == f"{path}:3: ray.use_gpu: expected true or false, got 0\n"
    assert cli_main(["params", "check", str(REPO / "configs" / "tiny.yaml")]) == 0
