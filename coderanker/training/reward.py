"""Bradley-Terry reranker training with TRL's RewardTrainer on Ray Train workers."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from coderanker.training.ray_train import (
    RayTrainConfig,
    fit,
    fsdp_arguments,
    lora_config,
    merged,
    report_model,
    trainer_defaults,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class RerankerTrainConfig:
    """The `reranker` section of params.yaml."""

    init: Literal["seed", "previous"] = "seed"
    """seed: every round starts from the untrained reranker (the paper); previous: continue
    from the previous round's reranker."""
    max_pairs: int = field(default=0, metadata={"min": 0})
    """Cap on pairs per training run (0: all pairs so far, the paper). Under a cap, hard
    negatives come first, then this round's pairs, then a seeded sample of earlier ones:
    with init=previous that is continual training with replay, for small compute budgets."""
    replay: float = field(default=0.0, metadata={"min": 0, "max": 1})
    """Under max_pairs, the share of the cap kept for earlier rounds' pairs (0: they only
    fill what this round's pairs leave). A guard against forgetting them, and with init=seed
    a sample of every round's pairs at the cost of max_pairs."""
    epochs: float = field(default=1.0, metadata={"gt": 0})
    learning_rate: float = field(default=2e-5, metadata={"gt": 0})
    continued_learning_rate: float = field(default=0.0, metadata={"min": 0})
    """The learning rate where training continues from an earlier round's reranker (init:
    previous, every round after the first); 0: learning_rate. A lower rate there moves a
    trained reranker less on one round's few pairs."""
    batch_size: int = field(default=4, metadata={"min": 1})
    """Pairs per device step."""
    gradient_accumulation_steps: int = field(default=1, metadata={"min": 1})
    group_by_length: bool = False
    """Batch pairs of similar length (transformers' `LengthGroupedSampler`: the shuffled pairs
    are cut into mega-batches of up to 50 steps, each sorted by the pair's longer side), so a
    step pads less. Every pair is still seen once an epoch, in a seeded order."""
    max_length: int = field(default=768, metadata={"min": 1})
    """Tokens of model input + response; longer responses are cut, never dropped."""
    warmup_ratio: float = field(default=0.1, metadata={"min": 0, "max": 1})
    weight_decay: float = field(default=0.0, metadata={"min": 0})
    center_rewards_coefficient: float = field(default=0.0, metadata={"min": 0})
    seed: int = field(default=0, metadata={"min": 0})
    score_batch_size: int = field(default=8, metadata={"min": 1})
    """Candidates scored per forward pass (mining, evaluation, rerank)."""
    trainable_layers: int = field(default=0, metadata={"min": 0})
    """Train only the top N transformer layers (plus the final norm and the scalar head);
    0 trains everything. Backward passes stop at the lowest trainable layer, which on a CPU
    roughly halves the step time for N a fifth of the depth."""
    likelihood_weight: float = field(default=0.0, metadata={"min": 0})
    """The likelihood prior: > 0 adds this times the seed policy's total log-probability of
    the response to the trained head's score, wherever the reranker ranks (mining,
    evaluation, `coderanker rerank`, the MLflow model; `coderanker.reranker.attach_likelihood`).
    0: the head alone. PPO's reward stays the head: there the prior is the reference
    policy's log-probability, which PPO's KL penalty already holds the policy to."""
    fit_eval_pairs: int = field(default=64, metadata={"min": 0})
    """Pairs (evenly spread over the training pairs, every round's included) on which
    accuracy and loss are measured before and after training; 0: all."""
    lora_r: int = field(default=0, metadata={"min": 0})
    """0: full fine-tune (the paper); > 0: a LoRA adapter of this rank on every linear layer
    of the transformer, the scalar head trained in full. The saved reranker is the merged,
    plain model. Not combinable with trainable_layers."""
    lora_alpha: int = field(default=16, metadata={"min": 1})
    """LoRA scale: the adapter's update is multiplied by lora_alpha / lora_r."""
    lora_dropout: float = field(default=0.0, metadata={"min": 0, "max": 1})
    """Dropout on the LoRA adapter's input (the model's own dropout stays off)."""
    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass instead of keeping them: far
    less activation memory for one more forward pass per step."""
    sharding: Literal["ddp", "fsdp"] = "ddp"
    """How the Ray Train workers (`ray.num_workers`, one per GPU) hold the model. ddp: each
    holds all of it (data-parallel replicas). fsdp: PyTorch FSDP2 through accelerate shards
    weights, gradients and Adam's moments across them, each transformer layer gathered only
    while it computes, for a full fine-tune that does not fit one GPU (a 6.7B reranker on
    80 GB GPUs); gradient_checkpointing then uses FSDP's own activation checkpointing. GPUs
    only (`ray.use_gpu`: accelerate has no FSDP on CPU); a full fine-tune (lora_r 0)."""

    def __post_init__(self):
        if self.lora_r and self.trainable_layers:
            raise ValueError("reranker.trainable_layers and reranker.lora_r cannot both be set: "
                             "LoRA adapts every layer (set one of them to 0)")
        if self.sharding == "fsdp" and self.lora_r:
            raise ValueError("reranker.sharding: fsdp shards a full fine-tune; with reranker.lora_r the trained "
                             "weights are small and DDP replicas fit (set sharding: ddp or lora_r: 0)")


#: The dataset column `group_by_length` batches by: a pair's longer side, in tokens.
LENGTH_COLUMN = "length"

FSDP_NEEDS_GPUS = ("reranker.sharding: fsdp needs ray.use_gpu: true (accelerate shards models across GPUs "
                   "only; on CPU use sharding: ddp)")


def round_config(config: RerankerTrainConfig, continued: bool) -> RerankerTrainConfig:
    """`config` for one round's training: with `continued_learning_rate` as its learning rate
    where `continued` (training starts from an earlier round's reranker, not the seed's)."""
    from dataclasses import replace

    if continued and config.continued_learning_rate:
        return replace(config, learning_rate=config.continued_learning_rate)
    return config


def select_training_pairs(pairs: list[dict], round_id: str, config: RerankerTrainConfig) -> list[dict]:
    """All pairs, or under `max_pairs` the round's hard negatives, then its other new pairs,
    then a seeded sample of earlier rounds' pairs; `replay` keeps a share of the cap for the
    earlier pairs (this round's pairs fill what they leave, and the other way round).

    Within each group, pairs whose chosen program is a model sample come before those whose
    chosen program is a reference (what the reranker ranks at evaluation is model samples),
    and problems take turns, one pair each in a seeded order, so a cap covers as many
    problems as it can instead of the first ones by name."""
    import random

    if not config.max_pairs or len(pairs) <= config.max_pairs:
        return pairs
    rng = random.Random(config.seed)
    current = [p for p in pairs if p.get("round") == round_id]
    hard = [p for p in current if p.get("kind") == "hard_negative"]
    new = [p for p in current if p.get("kind") != "hard_negative"]
    earlier = [p for p in pairs if p.get("round") != round_id]
    ordered = [[], []]
    for index, group in ((0, hard), (0, new), (1, earlier)):
        ordered[index] += spread([p for p in group if not p.get("chosen_reference")], rng)
        ordered[index] += spread([p for p in group if p.get("chosen_reference")], rng)
    this_round, replayed = ordered
    kept = min(len(this_round), config.max_pairs - min(len(replayed), round(config.replay * config.max_pairs)))
    return this_round[:kept] + replayed[: config.max_pairs - kept]


def spread(pairs: list[dict], rng) -> list[dict]:
    """Pairs reordered so that problems take turns (a seeded order of problems, and of pairs
    within each): every problem's first pair, then every problem's second, and so on."""
    by_problem: dict[str, list[dict]] = {}
    for pair in pairs:
        by_problem.setdefault(pair["name"], []).append(pair)
    names = sorted(by_problem)
    rng.shuffle(names)
    for name in names:
        rng.shuffle(by_problem[name])
    depth = max((len(v) for v in by_problem.values()), default=0)
    return [by_problem[name][i] for i in range(depth) for name in names if i < len(by_problem[name])]


def train_reranker(pairs: list[dict], init_dir: str | os.PathLike, out_dir: str | os.PathLike,
                   config: RerankerTrainConfig, ray_config: RayTrainConfig, dtype: str = "fp32") -> dict:
    """Train on token-id pairs ({"chosen_ids", "rejected_ids"[, "margin"]}); returns metrics
    including pairwise accuracy on the training pairs before and after training."""
    if not pairs:
        raise ValueError("no training pairs: no problem had both a passing and a failing candidate")
    if config.sharding == "fsdp" and not ray_config.use_gpu:
        raise ValueError(FSDP_NEEDS_GPUS)
    # Ray workers do not share the driver's working directory: paths go absolute.
    loop = {"pairs": pairs, "init": str(Path(init_dir).resolve()), "config": asdict(config),
            "use_gpu": ray_config.use_gpu, "dtype": dtype}
    return fit(reward_worker, loop, out_dir, ray_config, name="train_reranker")


def reward_worker(loop: dict) -> None:
    """Ray Train worker: train, then rank 0 saves and reports the reranker."""
    report_model(*train_reward_model(loop))


def train_reward_model(loop: dict) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict, list[dict]]:
    """Train a reranker on `loop` (train_reranker's keys) where this process runs, no Ray
    needed: (trained model, LoRA merged in; tokenizer; metrics; TRL's log history)."""
    config = RerankerTrainConfig(**loop["config"])
    pairs = loop["pairs"]
    model, tokenizer = reward_model(loop["init"], config)
    trainer = reward_trainer(model, tokenizer, pairs, config, loop["use_gpu"], loop.get("dtype", "fp32"))
    probe = pairs
    if config.fit_eval_pairs:
        probe = pairs[:: max(len(pairs) // config.fit_eval_pairs, 1)][: config.fit_eval_pairs]
    # the fit figures in the training's precision: an fp32 forward beside bf16 training gave
    # the same figure to 1e-8 only, so the reranker directory (a DVC output) was not always
    # the same bytes for the same seeded training
    with trainer.accelerator.autocast():
        before = pair_fit(model, probe, tokenizer.pad_token_id, config.batch_size)
    trainer.train()
    with trainer.accelerator.autocast():
        after = pair_fit(trainer.model, probe, tokenizer.pad_token_id, config.batch_size)
    metrics = {
        "pairs": len(pairs),
        "fit_eval_pairs": len(probe),
        "train_pair_accuracy_before": before[0],
        "train_pair_accuracy_after": after[0],
        "train_loss_before": before[1],
        "train_loss_after": after[1],
    }
    return merged(trainer.accelerator.unwrap_model(trainer.model)), tokenizer, metrics, trainer.state.log_history


def reward_model(init: str | os.PathLike, config: RerankerTrainConfig) -> tuple[PreTrainedModel,
                                                                              PreTrainedTokenizerBase]:
    """The reranker to train from `init` (a directory), seeded, its frozen layers set by
    `trainable_layers`, dropout off: (model, tokenizer)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl.trainer.utils import disable_dropout_in_model

    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(init)
    model = AutoModelForSequenceClassification.from_pretrained(init, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    if config.trainable_layers:
        freeze_below_top(model, config.trainable_layers)
    disable_dropout_in_model(model)  # as TRL would, but before LoRA adds its own dropout
    return model, tokenizer


def reward_trainer(model, tokenizer, pairs: list[dict], config: RerankerTrainConfig, use_gpu: bool,
                   dtype: str):
    """TRL's RewardTrainer for `config` on token-id pairs (train_reranker's), not yet trained."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    dataset = Dataset.from_list(pairs)
    grouping = {}
    if config.group_by_length:
        # the sampler reads the lengths before the collator sees the rows; the collator
        # ignores the extra column (it takes chosen_ids, rejected_ids and margin)
        dataset = dataset.add_column(LENGTH_COLUMN, [max(len(p["chosen_ids"]), len(p["rejected_ids"]))
                                                     for p in pairs])
        grouping = {"train_sampling_strategy": "group_by_length", "length_column_name": LENGTH_COLUMN,
                    "remove_unused_columns": False}
    args = RewardConfig(
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_length=config.max_length,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio of all steps
        weight_decay=config.weight_decay,
        center_rewards_coefficient=config.center_rewards_coefficient or None,
        seed=config.seed,
        gradient_checkpointing=config.gradient_checkpointing and config.sharding != "fsdp",
        disable_dropout=False,  # done above
        **grouping,
        **trainer_defaults(use_gpu, "reward-", dtype),
        **(fsdp_arguments(config.gradient_checkpointing) if config.sharding == "fsdp" else {}),
    )
    peft_config = lora_config(config.lora_r, config.lora_alpha, config.lora_dropout, "SEQ_CLS")
    return RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config)


def freeze_below_top(model, trainable: int) -> None:
    """Freeze embeddings and all but the top `trainable` decoder layers."""
    backbone = getattr(model, model.base_model_prefix)
    layers = backbone.layers
    for parameter in backbone.parameters():
        parameter.requires_grad = False
    for layer in layers[max(len(layers) - trainable, 0) :]:
        for parameter in layer.parameters():
            parameter.requires_grad = True
    for parameter in backbone.norm.parameters():
        parameter.requires_grad = True
    for parameter in model.score.parameters():
        parameter.requires_grad = True


def pair_fit(model, pairs: list[dict], pad_id: int, batch_size: int) -> tuple[float, float]:
    """(accuracy, mean Bradley-Terry loss) of a reward model on token-id pairs."""
    import torch
    import torch.nn.functional as F

    model.eval()
    wins, losses = 0, []
    with torch.inference_mode():
        for start in range(0, len(pairs), batch_size):
            batch = pairs[start : start + batch_size]
            sequences = [p["chosen_ids"] for p in batch] + [p["rejected_ids"] for p in batch]
            width = max(len(s) for s in sequences)
            ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in sequences])
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences])
            rewards = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits[:, 0]
            chosen, rejected = rewards.float().cpu().chunk(2)
            wins += int((chosen > rejected).sum())
            losses += (-F.logsigmoid(chosen - rejected)).tolist()
    return wins / len(pairs), sum(losses) / len(losses)
