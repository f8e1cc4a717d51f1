"""`reranker.sharding: fsdp`: the weights of a model sharded with FSDP2 across Ray Train
workers are gathered and saved whole (two real workers on this CPU, Gloo); the trainer
arguments that make accelerate shard on GPUs; and the refusals (no GPUs, LoRA)."""

from __future__ import annotations

from dataclasses import asdict

import pytest

pytestmark = pytest.mark.integration
STEP_INPUT = [[5, 9, 2, 7, 3, 8]]


def tiny_classifier():
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, num_labels=1, pad_token_id=0)
    torch.manual_seed(0)
    return LlamaForSequenceClassification(config)


def sgd_step(model) -> None:
    """One deterministic update, so the saved weights are trained ones, not the initial ones."""
    import torch

    model(input_ids=torch.tensor(STEP_INPUT)).logits.sum().backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad


def sharded_worker(loop: dict) -> None:
    """A Ray Train worker: shard each decoder layer and the root (as accelerate does with the
    FSDP2 plugin), train one step, and report through the project's report_model."""
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor
    from transformers import AutoTokenizer

    from coderanker.training.ray_train import report_model

    model = tiny_classifier()
    full = sum(p.numel() for p in model.parameters())
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    assert all(isinstance(p, DTensor) for p in model.parameters())
    local = sum(p.to_local().numel() for p in model.parameters())
    sgd_step(model)
    report_model(model, AutoTokenizer.from_pretrained(loop["tokenizer"]), {"local": local, "full": full}, [])


def test_sharded_weights_are_gathered_and_saved_whole(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification

    from coderanker.training.ray_train import RayTrainConfig, fit

    metrics = fit(sharded_worker, {"tokenizer": str(tiny_model_dir)}, tmp_path / "out",
                  RayTrainConfig(num_workers=2, cpus_per_worker=1), name="fsdp_save")
    assert metrics["local"] < 0.6 * metrics["full"]  # rank 0 held about half the weights
    reference = tiny_classifier()
    sgd_step(reference)
    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out")
    expected, got = reference.state_dict(), saved.state_dict()
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        assert torch.allclose(got[name], tensor, atol=1e-6), name
    assert not torch.equal(got["score.weight"], tiny_classifier().state_dict()["score.weight"])  # trained
    assert (tmp_path / "out" / "tokenizer_config.json").exists()


def test_an_unsharded_model_is_saved_as_it_was():
    from coderanker.training.ray_train import full_state_dict

    assert full_state_dict(tiny_classifier()) is None


def test_fsdp_arguments_build_accelerates_fsdp2_plugin():
    from accelerate.utils import FullyShardedDataParallelPlugin
    from trl import RewardConfig

    from coderanker.training.ray_train import fsdp_arguments, trainer_defaults

    args = RewardConfig(**trainer_defaults(True, "fsdp-", "fp32"), **fsdp_arguments(True), gradient_checkpointing=False)
    plugin = FullyShardedDataParallelPlugin(**args.fsdp_plugin_args)
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.activation_checkpointing is True and not args.gradient_checkpointing
    assert "FULL_STATE_DICT" in str(plugin.state_dict_type)
    assert plugin.auto_wrap_policy is not None  # the model's _no_split_modules: one unit per decoder layer
    unchecked = RewardConfig(**trainer_defaults(True, "fsdp-", "fp32"), **fsdp_arguments(False))
    assert FullyShardedDataParallelPlugin(**unchecked.fsdp_plugin_args).activation_checkpointing is False


def test_fsdp_is_refused_without_gpus_and_with_lora(tmp_path):
    from coderanker.config import ParamsError, apply_overrides, load_params
    from coderanker.training.ray_train import RayTrainConfig
    from coderanker.training.reward import RerankerTrainConfig, train_reranker

    config = RerankerTrainConfig(sharding="fsdp")
    with pytest.raises(ValueError, match="needs ray.use_gpu: true"):
        train_reranker([{"chosen_ids": [1], "rejected_ids": [2]}], tmp_path, tmp_path / "out", config, RayTrainConfig())
    with pytest.raises(ValueError, match="shards a full fine-tune"):
        RerankerTrainConfig(**{**asdict(config), "lora_r": 8})
    params = load_params("params.yaml")
    with pytest.raises(ParamsError, match=r"reranker\.sharding: fsdp needs ray\.use_gpu: true"):
        apply_overrides(params, {"reranker.sharding": "fsdp"})
    apply_overrides(params, {"reranker.sharding": "fsdp", "ray.use_gpu": True})
