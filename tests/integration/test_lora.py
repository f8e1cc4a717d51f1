"""LoRA and gradient checkpointing in the training bodies (reward model, PPO, GRPO), called
directly on the CPU with the tiny random model and Ray made unimportable: what trains, what
the KL reference is, and that the saved model is a plain merged one."""

from __future__ import annotations

import math
import sys
from dataclasses import asdict

import pytest

pytestmark = pytest.mark.integration
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


@pytest.fixture(autouse=True)
def no_ray(monkeypatch):
    """The bodies must run where Ray is not installed: `import ray` fails in these tests."""
    monkeypatch.setitem(sys.modules, "ray", None)


@pytest.fixture(scope="module")
def reranker_dir(tiny_model_dir, tmp_path_factory):
    from coderanker.reranker import init_reranker

    return init_reranker(tiny_model_dir, tmp_path_factory.mktemp("reranker") / "seed")


@pytest.fixture(scope="module")
def pairs(reranker_dir) -> list[dict]:
    from transformers import AutoTokenizer

    from coderanker.reranker import encode_pair
    from coderanker.sources import starter

    tokenizer = AutoTokenizer.from_pretrained(reranker_dir)
    return [{"chosen_ids": encode_pair(tokenizer, "prefill", p, p.reference, 256),
             "rejected_ids": encode_pair(tokenizer, "prefill", p, "    return None\n", 256)}
            for p in starter("train")[:8]]


@pytest.fixture(scope="module")
def prompts(tiny_model_dir) -> list[dict]:
    from transformers import AutoTokenizer

    from coderanker.generation import model_input, prompt_ids
    from coderanker.sources import starter

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return [{"input_ids": prompt_ids(p, tokenizer, "prefill"), "text": model_input(p, tokenizer, "prefill")}
            for p in starter("train")[:4]]


@pytest.fixture
def checkpointed(monkeypatch) -> list[tuple[bool, object]]:
    """(grad enabled, use_reentrant) of every activation-checkpointed layer call, from the
    function transformers wraps when checkpointing is turned on."""
    import torch
    import transformers.modeling_utils

    calls, real = [], transformers.modeling_utils.checkpoint

    def counting(function, *args, **kwargs):
        calls.append((torch.is_grad_enabled(), kwargs.get("use_reentrant")))
        return real(function, *args, **kwargs)

    monkeypatch.setattr(transformers.modeling_utils, "checkpoint", counting)
    return calls


def record_trainer(monkeypatch, module, name: str, after_train=None) -> dict:
    """Swap a TRL trainer class for a subclass that notes the trainable parameters when
    training starts and runs `after_train(trainer)` before the body gets to merge."""
    base, seen = getattr(module, name), {}

    class Recorded(base):
        def train(self, *args, **kwargs):
            seen["trainable"] = [n for n, p in self.model.named_parameters() if p.requires_grad]
            result = super().train(*args, **kwargs)
            seen["trainer"] = self
            if after_train:
                after_train(self)
            return result

    monkeypatch.setattr(module, name, Recorded)
    return seen


def linear_layers(model) -> list[str]:
    """Names of the transformer's linear layers: what "all-linear" LoRA targets."""
    import torch

    heads = {"score", "lm_head"}
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n not in heads]


def assert_plain_merged(model, tokenizer, out, auto_class, initial, targeted: list[str]):
    """`model` is a plain transformers model whose saved directory has no adapter files,
    loads with `auto_class` to the same outputs, and differs from `initial` exactly in the
    LoRA-targeted layers (and the score head, trained in full, where there is one)."""
    import torch
    from peft import PeftModel

    assert not isinstance(model, PeftModel) and type(model) is type(initial)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    assert not [f for f in ADAPTER_FILES if (out / f).exists()]
    loaded = auto_class.from_pretrained(out)
    trained, before = dict(model.named_parameters()), dict(initial.named_parameters())
    assert set(trained) == set(before) == set(dict(loaded.named_parameters()))
    for name, weight in trained.items():
        assert weight.device.type == "cpu" and weight.dtype == torch.float32, name
        layer = name.rsplit(".", 1)[0]
        changed = not torch.equal(weight, before[name])
        assert changed is (layer in targeted or layer == "score"), name
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    with torch.inference_mode():
        assert torch.allclose(loaded(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-5)


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_reward_model_with_lora_trains_only_adapters_and_head_and_saves_merged(
        reranker_dir, pairs, tmp_path, monkeypatch, checkpointed, dtype):
    import trl
    from transformers import AutoModelForSequenceClassification

    from coderanker.training.reward import RerankerTrainConfig, train_reward_model

    seen = record_trainer(monkeypatch, trl, "RewardTrainer")
    config = RerankerTrainConfig(epochs=3.0, learning_rate=1e-2, batch_size=4, max_length=256, fit_eval_pairs=0,
                                 lora_r=4, lora_alpha=8)
    loop = {"pairs": pairs, "init": str(reranker_dir), "config": asdict(config), "use_gpu": False, "dtype": dtype}
    model, tokenizer, metrics, history = train_reward_model(loop)

    initial = AutoModelForSequenceClassification.from_pretrained(reranker_dir, num_labels=1)
    targeted = linear_layers(initial)
    trainable = seen["trainable"]
    assert all(".lora_A." in n or ".lora_B." in n or "score.modules_to_save." in n for n in trainable), trainable
    assert len(trainable) == 2 * len(targeted) + 1  # A and B per linear layer, the score weight
    assert_plain_merged(model, tokenizer, tmp_path / "out", AutoModelForSequenceClassification, initial, targeted)
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    assert metrics["train_loss_after"] < metrics["train_loss_before"], metrics
    assert all(math.isfinite(e["loss"]) for e in history if "loss" in e) and any("loss" in e for e in history)
    assert checkpointed == []  # gradient_checkpointing false means off (TRL's default is on)


def test_reranker_refuses_lora_with_trainable_layers():
    from coderanker.training.reward import RerankerTrainConfig

    with pytest.raises(ValueError, match=r"reranker\.trainable_layers and reranker\.lora_r"):
        RerankerTrainConfig(lora_r=8, trainable_layers=2)


def policy_loop(prompts, tiny_model_dir, reranker_dir, dtype: str = "fp32", **config) -> dict:
    from coderanker.training.policy import PolicyTrainConfig

    base = {"total_episodes": 4, "batch_size": 4, "response_length": 8, "learning_rate": 1e-2,
            "reward_eval_prompts": 2, "reward_eval_samples": 2}
    return {"prompts": prompts, "policy": str(tiny_model_dir), "reranker": str(reranker_dir),
            "config": asdict(PolicyTrainConfig(**{**base, **config})), "use_gpu": False, "dtype": dtype,
            "stop_token_id": None}


def reference_is_the_base(tiny_model_dir):
    """After PPO: the trainer had no reference copy; its reference (the policy with the
    adapter off) scores like the initial policy, the adapted policy does not; the value
    model's adapter and head were what trained of it."""
    import torch
    from transformers import AutoModelForCausalLM

    initial = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.tensor([[1, 5, 9, 13, 17, 21, 25, 29]])

    def check(trainer):
        assert trainer.ref_model is None and trainer.is_peft_model
        policy = trainer.accelerator.unwrap_model(trainer.model).policy
        with torch.inference_mode():
            expected = initial(input_ids=ids).logits
            with trainer.null_ref_context():
                reference = policy(input_ids=ids).logits
            adapted = policy(input_ids=ids).logits
        assert torch.allclose(reference, expected, atol=1e-6)
        assert not torch.allclose(adapted, expected, atol=1e-3)
        value = dict(trainer.accelerator.unwrap_model(trainer.model).value_model.named_parameters())
        trainable = [n for n, p in value.items() if p.requires_grad]
        assert trainable and all(".lora_" in n or "score.modules_to_save." in n for n in trainable), trainable
        assert any(value[n].abs().sum() > 0 for n in trainable if ".lora_B." in n)  # B starts at zero

    return check


@pytest.mark.parametrize(("dtype", "checkpointing"), [("fp32", False), ("bf16", False), ("fp32", True)],
                         ids=["fp32", "bf16", "fp32-checkpointing"])
def test_ppo_with_lora_uses_the_adapter_free_base_as_reference_and_saves_merged(
        tiny_model_dir, reranker_dir, prompts, tmp_path, monkeypatch, checkpointed, dtype, checkpointing):
    import trl.experimental.ppo
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from coderanker.training.policy import PolicyTrainConfig, mean_reward, run_ppo

    seen = record_trainer(monkeypatch, trl.experimental.ppo, "PPOTrainer", reference_is_the_base(tiny_model_dir))
    loop = policy_loop(prompts, tiny_model_dir, reranker_dir, dtype, lora_r=4, lora_alpha=8,
                       gradient_checkpointing=checkpointing)
    model, tokenizer, metrics, history = run_ppo(loop)

    assert "trainer" in seen and seen["trainable"]  # policy and value model: adapters and the value head
    assert all(".lora_" in n or "score.modules_to_save." in n for n in seen["trainable"]), seen["trainable"]
    assert bool(checkpointed) is checkpointing
    if checkpointing:
        assert any(grad for grad, _ in checkpointed) and {r for _, r in checkpointed} == {False}
    initial = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert_plain_merged(model, tokenizer, tmp_path / "policy", AutoModelForCausalLM, initial, linear_layers(initial))
    assert metrics["steps"] == 1 and all(math.isfinite(v) for v in metrics.values()), metrics
    # "before" is the initial policy itself: the same seeded samples and scores
    reward = AutoModelForSequenceClassification.from_pretrained(reranker_dir, num_labels=1)
    queries = [p["input_ids"] for p in prompts[:2]]
    config = PolicyTrainConfig(**loop["config"])
    assert metrics["reward_before"] == pytest.approx(mean_reward(initial, reward, tokenizer, queries, config), abs=1e-6)


def test_ppo_with_a_stop_token_saves_the_initial_policy_s_generation_config(tiny_model_dir, reranker_dir, prompts,
                                                                           tmp_path):
    """TRL's PPOTrainer sets the policy's generation EOS to its stop token (the closing fence
    in prefill style); the saved policy keeps the initial one's, or the next round's sampler
    would end answers at the fence as at an EOS, without writing it."""
    from transformers import AutoTokenizer

    from coderanker.decoding import read_generation_config
    from coderanker.reranker import fence_id
    from coderanker.training.policy import run_ppo
    from coderanker.vllm_backend import stop_token_ids

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    fence, initial = fence_id(tokenizer), read_generation_config(tiny_model_dir)
    assert fence is not None and fence not in stop_token_ids(tiny_model_dir, tokenizer)
    loop = {**policy_loop(prompts, tiny_model_dir, reranker_dir, reward_eval_prompts=0), "stop_token_id": fence}
    model, tokenizer, _, _ = run_ppo(loop)
    model.save_pretrained(tmp_path / "policy")
    tokenizer.save_pretrained(tmp_path / "policy")
    assert read_generation_config(tmp_path / "policy").eos_token_id == initial.eos_token_id
    assert stop_token_ids(tmp_path / "policy", tokenizer) == stop_token_ids(tiny_model_dir, tokenizer)


def test_grpo_with_lora_saves_a_merged_policy(tiny_model_dir, reranker_dir, prompts, tmp_path, monkeypatch):
    import trl
    from transformers import AutoModelForCausalLM

    from coderanker.training.policy import run_grpo

    seen = record_trainer(monkeypatch, trl, "GRPOTrainer")
    loop = policy_loop(prompts, tiny_model_dir, reranker_dir, algorithm="grpo", total_episodes=8,
                       grpo_num_generations=4, reward_eval_prompts=0, lora_r=4, lora_alpha=8)
    model, tokenizer, metrics, history = run_grpo(loop)

    assert seen["trainer"].ref_model is None  # the KL reference is the adapter switched off
    assert all(".lora_" in n for n in seen["trainable"]) and seen["trainable"]
    assert metrics["steps"] == 2, metrics
    initial = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert_plain_merged(model, tokenizer, tmp_path / "policy", AutoModelForCausalLM, initial, linear_layers(initial))


def test_reward_model_with_gradient_checkpointing_checkpoints_and_learns(reranker_dir, pairs, checkpointed):
    import torch
    from transformers import AutoModelForSequenceClassification

    from coderanker.training.reward import RerankerTrainConfig, train_reward_model

    config = RerankerTrainConfig(epochs=2.0, learning_rate=1e-3, batch_size=4, max_length=256, fit_eval_pairs=0,
                                 gradient_checkpointing=True)
    loop = {"pairs": pairs, "init": str(reranker_dir), "config": asdict(config), "use_gpu": False, "dtype": "fp32"}
    model, _, metrics, _ = train_reward_model(loop)

    assert any(grad for grad, _ in checkpointed) and {r for _, r in checkpointed} == {False}
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
    assert metrics["train_loss_after"] < metrics["train_loss_before"], metrics
    initial = AutoModelForSequenceClassification.from_pretrained(reranker_dir, num_labels=1)
    moved = [n for n, p in initial.named_parameters() if not torch.equal(p, model.get_parameter(n))]
    assert "score.weight" in moved and any(".layers.0." in n for n in moved)
