"""params.yaml sections, overrides and generated rounds."""

from __future__ import annotations

import pytest

from coderanker.config import DataConfig, apply_overrides, load_params, section, self_training_rounds

from ..helpers import REPO


def test_every_profile_loads_into_every_stage_config():
    from coderanker.generation import SamplingConfig
    from coderanker.pairs import PairConfig
    from coderanker.sandbox import SandboxConfig
    from coderanker.training.policy import PolicyTrainConfig
    from coderanker.training.ray_train import RayTrainConfig
    from coderanker.training.reward import RerankerTrainConfig

    sections = {"data": DataConfig, "sample": SamplingConfig, "execute": SandboxConfig, "pairs": PairConfig,
                "reranker": RerankerTrainConfig, "ppo": PolicyTrainConfig, "ray": RayTrainConfig}
    for profile in ("tiny", "cpu", "paper"):
        params = load_params(REPO / "configs" / f"{profile}.yaml")
        for name, cls in sections.items():
            section(params, name, cls)
        assert list(params["rounds"])[0] == "r0" and params["rounds"]["r0"]["previous"] == "seed"


def test_unknown_setting_names_file_and_section(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("sample:\n  samples_per_problme: 3\n")
    from coderanker.generation import SamplingConfig

    with pytest.raises(ValueError, match=r"params.yaml: sample: unknown setting\(s\) \['samples_per_problme'\]"):
        section(load_params(path), "sample", SamplingConfig, str(path))


def test_rounds_chain_each_to_its_previous():
    assert self_training_rounds(2) == {
        "r0": {"previous": "seed", "ppo": False, "hard_negatives": False},
        "r1": {"previous": "r0", "ppo": True, "hard_negatives": True},
        "r2": {"previous": "r1", "ppo": True, "hard_negatives": True},
    }


def test_overrides_set_existing_dotted_keys_only():
    params = {"sample": {"samples_per_problem": 3}, "data": {"train": []}}
    updated = apply_overrides(params, {"sample.samples_per_problem": 5, "data.train": ["x.jsonl"]})
    assert updated == {"sample": {"samples_per_problem": 5}, "data": {"train": ["x.jsonl"]}}
    assert params["sample"]["samples_per_problem"] == 3
    with pytest.raises(KeyError, match="no key 'samples'"):
        apply_overrides(params, {"sample.samples": 1})
    with pytest.raises(KeyError, match="no section 'nope'"):
        apply_overrides(params, {"nope.x": 1})
