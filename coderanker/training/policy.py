"""Policy training against the reranker on Ray Train workers: TRL's PPO (the paper's
method, `trl.experimental.ppo`) or GRPO, selectable in params.yaml."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from coderanker.training.ray_train import RayTrainConfig, fit, lora_config, merged, report_model, trainer_defaults

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class PolicyTrainConfig:
    """The `ppo` section of params.yaml."""

    algorithm: Literal["ppo", "grpo"] = "ppo"
    """ppo (TRL PPOTrainer, value model from the reranker) or grpo (TRL GRPOTrainer)."""
    init: Literal["base", "previous"] = "base"
    """base: every round starts from the initial policy (the paper); previous: continue."""
    total_episodes: int = field(default=24, metadata={"min": 1})
    """Prompts rolled out in all (PPO episodes)."""
    batch_size: int = field(default=4, metadata={"min": 1})
    """Episodes per PPO step (per device)."""
    num_mini_batches: int = field(default=1, metadata={"min": 1})
    gradient_accumulation_steps: int = field(default=1, metadata={"min": 1})
    num_ppo_epochs: int = field(default=2, metadata={"min": 1})
    response_length: int = field(default=96, metadata={"min": 1})
    """Generated tokens per episode."""
    temperature: float = field(default=0.8, metadata={"gt": 0})
    kl_coef: float = field(default=0.05, metadata={"min": 0})
    kl_estimator: Literal["k1", "k3"] = "k3"
    """k1 (TRL's default, unbiased but can be negative per batch) or k3 (non-negative)."""
    learning_rate: float = field(default=3e-6, metadata={"gt": 0})
    missing_eos_penalty: float = field(default=1.0, metadata={"min": 0})
    """Subtracted from the reward of responses without EOS (0: off)."""
    grpo_num_generations: int = field(default=4, metadata={"min": 2})
    """GRPO only: completions per prompt in a group."""
    reward_eval_prompts: int = field(default=8, metadata={"min": 0})
    """After training, the reward of the initial and the trained policy is measured on
    this many training prompts (0: skip)."""
    reward_eval_samples: int = field(default=4, metadata={"min": 1})
    """Sampled responses per prompt in that measurement."""
    seed: int = field(default=0, metadata={"min": 0})
    lora_r: int = field(default=0, metadata={"min": 0})
    """0: full fine-tune; > 0: a LoRA adapter of this rank on every linear layer
    of the policy's transformer, and of the value model's (its value head trained in full).
    The KL reference is then the policy with the adapter off, not a second copy; the saved
    policy is the merged, plain model."""
    lora_alpha: int = field(default=16, metadata={"min": 1})
    """LoRA scale: the adapter's update is multiplied by lora_alpha / lora_r."""
    lora_dropout: float = field(default=0.0, metadata={"min": 0, "max": 1})
    """Dropout on the LoRA adapter's input; GRPO only (TRL's PPO turns every dropout off)."""
    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass instead of keeping them
    (policy and value model): far less activation memory for one more forward pass per
    step. Generation runs without it."""


def train_policy(prompts: list[dict], policy_dir: str | os.PathLike, reranker_dir: str | os.PathLike,
                 out_dir: str | os.PathLike, config: PolicyTrainConfig, ray_config: RayTrainConfig,
                 dtype: str = "fp32", stop_token_id: int | None = None) -> dict:
    """prompts: [{"input_ids": [...], "text": model input}] for the training problems.

    `stop_token_id`: the token a rollout ends on when it is not EOS (the closing fence in
    prefill style, where the reranker scores answers up to that fence); the missing-EOS
    penalty is then off, as TRL counts only EOS as a finished answer."""
    if config.algorithm not in ("ppo", "grpo"):
        raise ValueError(f"ppo.algorithm must be ppo or grpo, not {config.algorithm!r}")
    # Ray workers do not share the driver's working directory: paths go absolute.
    loop = {"prompts": prompts, "policy": str(Path(policy_dir).resolve()),
            "reranker": str(Path(reranker_dir).resolve()),
            "config": asdict(config), "use_gpu": ray_config.use_gpu, "dtype": dtype, "stop_token_id": stop_token_id}
    worker = ppo_worker if config.algorithm == "ppo" else grpo_worker
    return fit(worker, loop, out_dir, ray_config, name=f"train_policy_{config.algorithm}")


def _summary(log_history: list[dict], kl_key: str, reward_key: str) -> dict:
    steps = [entry for entry in log_history if reward_key in entry]
    if not steps:
        return {}
    half = max(len(steps) // 2, 1)
    mean = lambda rows, key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    return {
        "steps": len(steps),
        "kl_last": steps[-1].get(kl_key, 0.0),
        "kl_mean": mean(steps, kl_key) if kl_key in steps[0] else 0.0,
        "reward_first_half": mean(steps[:half], reward_key),
        "reward_second_half": mean(steps[half:] or steps, reward_key),
    }


def ppo_worker(loop: dict) -> None:
    """Ray Train worker: PPO, then rank 0 saves and reports the policy."""
    report_model(*run_ppo(loop))


def run_ppo(loop: dict) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict, list[dict]]:
    """PPO on `loop` (train_policy's keys) where this process runs, no Ray needed: (trained
    policy, LoRA merged in; tokenizer; metrics; TRL's log history)."""
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, set_seed
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    config = PolicyTrainConfig(**loop["config"])
    set_seed(config.seed)  # numpy too: TRL's PPO permutes each mini-batch with np.random
    tokenizer = AutoTokenizer.from_pretrained(loop["policy"], padding_side="left")
    policy = AutoModelForCausalLM.from_pretrained(loop["policy"])
    peft_config = lora_config(config.lora_r, config.lora_alpha, config.lora_dropout, "CAUSAL_LM")
    # with LoRA, TRL's reference is the policy with its adapter off (PPOTrainer.null_ref_context)
    ref_policy = None if peft_config else AutoModelForCausalLM.from_pretrained(loop["policy"])
    reward = AutoModelForSequenceClassification.from_pretrained(loop["reranker"], num_labels=1)
    value = AutoModelForSequenceClassification.from_pretrained(loop["reranker"], num_labels=1)
    if config.gradient_checkpointing:  # PPOTrainer, unlike TRL's other trainers, never enables it
        for model in (policy, value):
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if peft_config:
        # PPOTrainer adapts only the policy; the value model gets its own adapter here, and goes
        # in as the plain model the adapter was injected into (TRL calls its backbone and score)
        value = get_peft_model(value, lora_config(config.lora_r, config.lora_alpha, config.lora_dropout,
                                                  "SEQ_CLS")).get_base_model()
    dataset = Dataset.from_list([{"input_ids": p["input_ids"]} for p in loop["prompts"]])
    args = PPOConfig(
        total_episodes=config.total_episodes,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_mini_batches=config.num_mini_batches,
        local_rollout_forward_batch_size=config.batch_size,
        num_ppo_epochs=config.num_ppo_epochs,
        response_length=config.response_length,
        temperature=config.temperature,
        kl_coef=config.kl_coef,
        kl_estimator=config.kl_estimator,
        learning_rate=config.learning_rate,
        missing_eos_penalty=None if loop.get("stop_token_id") is not None else config.missing_eos_penalty or None,
        stop_token=None if loop.get("stop_token_id") is not None else "eos",
        stop_token_id=loop.get("stop_token_id"),
        num_sample_generations=0,
        seed=config.seed,
        gradient_checkpointing=config.gradient_checkpointing,
        **trainer_defaults(loop["use_gpu"], "ppo-", loop.get("dtype", "fp32")),
    )
    trainer = PPOTrainer(args=args, processing_class=tokenizer, model=policy, ref_model=ref_policy,
                         reward_model=reward, value_model=value, train_dataset=dataset, peft_config=peft_config)
    trainer.train()
    history = trainer.state.log_history
    metrics = {"episodes": config.total_episodes, **_summary(history, "objective/kl", "objective/scores")}
    trained = trainer.accelerator.unwrap_model(trainer.model).policy
    if config.reward_eval_prompts:
        queries = [p["input_ids"] for p in loop["prompts"][: config.reward_eval_prompts]]
        stop = loop.get("stop_token_id")
        if peft_config:
            with trained.disable_adapter():  # the initial policy, PPO's KL reference
                metrics["reward_before"] = mean_reward(trained, reward, tokenizer, queries, config, stop)
        else:
            metrics["reward_before"] = mean_reward(ref_policy, reward, tokenizer, queries, config, stop)
        metrics["reward_after"] = mean_reward(trained, reward, tokenizer, queries, config, stop)
    # Ray Train wraps the policy+value model in DDP, where PPOTrainer.save_model would save
    # both (with shared tensors): the unwrapped policy alone is the round's policy.
    return as_saved(merged(trained), loop["policy"]), tokenizer, metrics, history


def mean_reward(policy, reward_model, tokenizer, queries: list[list[int]], config: PolicyTrainConfig,
                stop_token_id: int | None = None) -> float:
    """Mean reward of sampled responses as PPO optimises it: scored up to the stop token
    (kept) or EOS (with the missing-EOS penalty when there is no other stop token)."""
    import torch

    from coderanker.reranker import Reranker

    scorer = Reranker(reward_model, tokenizer)  # scores token ids: the prompt style plays no part
    eos, scores = tokenizer.eos_token_id, []
    stop = stop_token_id if stop_token_id is not None else eos
    device = next(policy.parameters()).device
    policy.eval()
    for index, query in enumerate(queries):
        torch.manual_seed(config.seed + index)
        with torch.inference_mode():
            out = policy.generate(torch.tensor([query], device=device), do_sample=True,
                                  temperature=config.temperature, max_new_tokens=config.response_length,
                                  num_return_sequences=config.reward_eval_samples,
                                  pad_token_id=tokenizer.pad_token_id, eos_token_id=stop)
        for row in out[:, len(query):].tolist():
            finished = stop in row
            response = row[: row.index(stop) + 1] if finished else [t for t in row if t != tokenizer.pad_token_id]
            if stop == eos:
                penalty = 0.0 if finished else config.missing_eos_penalty
                scores.append(scorer.score_ids([query + response + ([] if finished else [eos])])[0] - penalty)
            else:
                scores.append(scorer.score_ids([query + response])[0])
    return sum(scores) / len(scores)


def grpo_worker(loop: dict) -> None:
    """Ray Train worker: GRPO, then rank 0 saves and reports the policy."""
    report_model(*run_grpo(loop))


def run_grpo(loop: dict) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict, list[dict]]:
    """GRPO on `loop` (train_policy's keys) where this process runs, no Ray needed: (trained
    policy, LoRA merged in; tokenizer; metrics; TRL's log history)."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed
    from trl import GRPOConfig, GRPOTrainer

    config = PolicyTrainConfig(**loop["config"])
    set_seed(config.seed)  # python, numpy and torch
    tokenizer = AutoTokenizer.from_pretrained(loop["policy"], padding_side="left")
    reward = AutoModelForSequenceClassification.from_pretrained(loop["reranker"], num_labels=1)
    reward_tokenizer = AutoTokenizer.from_pretrained(loop["reranker"])
    # the model input as text (in prefill style the answer is begun), as sampling sees it
    dataset = Dataset.from_list([{"prompt": p["text"]} for p in loop["prompts"]])
    args = GRPOConfig(
        max_steps=max(config.total_episodes // config.batch_size, 1),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_generations=config.grpo_num_generations,
        max_completion_length=config.response_length,
        temperature=config.temperature,
        beta=config.kl_coef,
        learning_rate=config.learning_rate,
        seed=config.seed,
        gradient_checkpointing=config.gradient_checkpointing,
        **trainer_defaults(loop["use_gpu"], "grpo-", loop.get("dtype", "fp32")),
    )
    # with LoRA, TRL's KL reference is the policy with its adapter off (no second copy)
    peft_config = lora_config(config.lora_r, config.lora_alpha, config.lora_dropout, "CAUSAL_LM")
    trainer = GRPOTrainer(model=loop["policy"], reward_funcs=reward, args=args, train_dataset=dataset,
                          processing_class=tokenizer, reward_processing_classes=reward_tokenizer,
                          peft_config=peft_config)
    trainer.train()
    history = trainer.state.log_history
    metrics = {"episodes": config.total_episodes, **_summary(history, "kl", "reward")}
    return as_saved(merged(trainer.accelerator.unwrap_model(trainer.model)), loop["policy"]), tokenizer, metrics, \
        history


def as_saved(policy, initial_dir):
    """The trained policy with the generation config of the policy it started from.

    TRL's PPOTrainer sets the policy's generation `eos_token_id` to its stop token, which in
    prefill style is the closing fence. Saved so, the next round's sampler took the fence for
    an end of sequence (`decoding.eos_ids`) and ended answers there without writing it: every
    round after the first scored "body + EOS" where the first and the references score
    "body + fence", so its pools ranked by how an answer ended (the seed policy's prior gives
    an EOS inside a code block a low probability) and its pairs taught the head the same."""
    from coderanker.decoding import read_generation_config

    policy.generation_config = read_generation_config(initial_dir)
    return policy
