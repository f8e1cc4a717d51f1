"""Every model stage on one device and dtype, each asserting where its models live, with
tokens/s, candidates/s and steps/s: sampling (HF, and vLLM when it is installed),
reranker scoring, RewardTrainer steps, PPO steps (full and LoRA), GRPO steps, and on a GPU
RewardTrainer steps with the reranker sharded by FSDP2 (`reranker.sharding: fsdp`).

    python -m benchmarks.gpu.check [--device cuda] [--dtype bf16] [--shape smollm2|tiny] [--tokenizer DIR]

`benchmarks/gpu/check.sh` runs it on a GPU machine (which has torch, transformers,
accelerate and peft, but not TRL, Ray, DVC or MLflow: nothing here imports the last
three, TRL travels as a wheel). The model is random, built from a config (`--shape`:
SmolLM2-135M's or a tiny one) around the SmolLM2 tokenizer in `--tokenizer`, so only the
tokenizer's files travel. The training bodies run without Ray (Ray Train is how the
pipeline schedules them; the bodies are the same code). CPU CI runs this script with
`--device cpu --shape tiny` in bf16 and in fp32 (tests/unit/test_gpu_check.py).

The last line is a JSON summary; each stage also prints one line as it ends.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

REPO = Path(__file__).resolve().parents[2]
SHAPES = {
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2},
    "smollm2": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                "num_key_value_heads": 3},
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--shape", default="smollm2", choices=sorted(SHAPES))
    parser.add_argument("--tokenizer", type=Path, default=REPO / ".gpucheck" / "tokenizer",
                        help="a directory with the SmolLM2 tokenizer's files (benchmarks/gpu/prepare.sh writes it)")
    parser.add_argument("--problems", type=int, default=8, help="starter training problems sampled")
    parser.add_argument("--samples", type=int, default=8, help="samples per problem")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2, help="training steps of each trainer")
    return parser.parse_args(argv)


def build_model(shape: str, tokenizer_dir: Path, out: Path) -> Path:
    """A random Llama of `shape` around the tokenizer, saved as a model directory."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from coderanker.models import set_distinct_pad

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
                         max_position_embeddings=2048, **SHAPES[shape])
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    set_distinct_pad(tokenizer, model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def where(model) -> str:
    """The device type every parameter of `model` is on; raises if they are spread."""
    kinds = {p.device.type for p in model.parameters()}
    if len(kinds) != 1:
        raise AssertionError(f"parameters spread over {sorted(kinds)}")
    return kinds.pop()


def expect(model, device: str, what: str) -> None:
    found = where(model)
    if found != device:
        raise AssertionError(f"{what} is on {found}, expected {device}")


class Stages:
    """Runs the stages in order; each adds a figure and the peak device memory it used."""

    def __init__(self, device: str):
        self.device, self.results = device, {}

    def run(self, name: str, fn):
        import torch

        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
        start = time.perf_counter()
        figures = fn()
        if self.device == "cuda":
            torch.cuda.synchronize()
            figures["peak_gib"] = round(torch.cuda.max_memory_allocated() / 1024**3, 2)
        figures["seconds"] = round(time.perf_counter() - start, 2)
        self.results[name] = figures
        print(f"{name}: {json.dumps(figures)}", flush=True)
        return figures


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from coderanker.generation import SamplingConfig, generate, model_input, prompt_ids, resolve_style
    from coderanker.reranker import Reranker, fence_id, init_reranker
    from coderanker.runtime import Placement
    from coderanker.sources import starter
    from coderanker.training.policy import PolicyTrainConfig, run_grpo, run_ppo
    from coderanker.training.reward import RerankerTrainConfig, train_reward_model

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but torch sees no CUDA device")
    use_gpu = args.device == "cuda"
    placement = Placement(args.device, args.dtype)
    stages = Stages(args.device)
    problems = starter("train")[: args.problems]
    work = Path(tempfile.mkdtemp(prefix="coderanker-gpucheck-"))
    base = build_model(args.shape, args.tokenizer, work / "policy")
    tokenizer = AutoTokenizer.from_pretrained(base)
    config = SamplingConfig(samples_per_problem=args.samples, greedy=False, max_new_tokens=args.max_new_tokens,
                            batch_size=args.problems * args.samples, seed=0)
    style = resolve_style(config.prompt_style, tokenizer)
    candidates: list[dict] = []

    def sample_hf():
        model = placement.load(AutoModelForCausalLM, base)
        expect(model, args.device, "the sampler's model")
        if model.dtype != placement.torch_dtype:
            raise AssertionError(f"the sampler's model is {model.dtype}, expected {placement.torch_dtype}")
        candidates.extend(generate(model, tokenizer, problems, config))
        tokens = sum(len(tokenizer(c["response"], add_special_tokens=False)["input_ids"]) for c in candidates)
        del model
        return {"candidates": len(candidates), "tokens": tokens}

    figures = stages.run("sample_hf", sample_hf)
    figures["tokens_per_s"] = round(figures["tokens"] / figures["seconds"], 1)

    try:
        import vllm  # noqa: F401
    except ImportError:
        stages.results["sample_vllm"] = {"skipped": "vLLM is not installed"}
        print("sample_vllm: skipped (vLLM is not installed)", flush=True)
    else:
        from coderanker.vllm_backend import generate_vllm

        def sample_vllm():
            rows = list(generate_vllm(base, problems, replace(config, backend="vllm"), dtype=args.dtype))
            tokens = sum(len(tokenizer(c["response"], add_special_tokens=False)["input_ids"]) for c in rows)
            return {"candidates": len(rows), "tokens": tokens}

        figures = stages.run("sample_vllm", sample_vllm)
        figures["tokens_per_s"] = round(figures["tokens"] / figures["seconds"], 1)

    layers = min(SHAPES[args.shape]["num_hidden_layers"], 4)
    reranker_dir = init_reranker(base, work / "reranker", seed=0, layers=layers)
    by_name = {p.name: p for p in problems}

    def score():
        reranker = Reranker.load(str(reranker_dir), placement=placement, batch_size=16)
        expect(reranker.model, args.device, "the reranker")
        scores = reranker.score_candidates(by_name, candidates)
        if not all(isinstance(s, float) for s in scores):
            raise AssertionError("a score is not a float")
        return {"candidates": len(scores)}

    figures = stages.run("score", score)
    figures["candidates_per_s"] = round(figures["candidates"] / figures["seconds"], 1)

    # Pairs for Bradley-Terry steps: two candidates of a problem, in a seeded order (random
    # weights make any label as good as another: this measures speed and placement).
    reranker = Reranker.load(str(reranker_dir), placement=Placement("cpu", "fp32"))
    pairs = []
    for name in by_name:
        group = [c for c in candidates if c["name"] == name]
        for first, second in zip(group[::2], group[1::2], strict=False):
            pairs.append({"chosen_ids": reranker.encode(by_name[name], first["response"]),
                          "rejected_ids": reranker.encode(by_name[name], second["response"])})
    del reranker
    reward_config = RerankerTrainConfig(batch_size=4, max_length=512, fit_eval_pairs=8)
    needed = args.steps * reward_config.batch_size
    pairs = (pairs * (needed // max(len(pairs), 1) + 1))[:needed]

    def train_reward():
        loop = {"pairs": pairs, "init": str(reranker_dir), "config": asdict(reward_config), "use_gpu": use_gpu,
                "dtype": args.dtype}
        model, _, metrics, history = train_reward_model(loop)
        expect(model, args.device, "the trained reranker")
        steps = sum(1 for entry in history if "loss" in entry)
        return {"steps": steps, "loss_after": round(metrics["train_loss_after"], 4)}

    figures = stages.run("train_reranker", train_reward)
    figures["steps_per_s"] = round(figures["steps"] / figures["seconds"], 3)

    stop = fence_id(tokenizer) if style == "prefill" else None
    prompts = [{"input_ids": prompt_ids(p, tokenizer, style), "text": model_input(p, tokenizer, style)}
               for p in problems]
    prompts = (prompts * (4 // len(prompts) + 1))[: max(len(prompts), 4)]  # PPO's loader drops a short last batch

    def policy_stage(algorithm: str, lora_r: int):
        ppo = PolicyTrainConfig(algorithm=algorithm, total_episodes=4 * args.steps, batch_size=4,
                                response_length=32, reward_eval_prompts=0, lora_r=lora_r)
        loop = {"prompts": prompts, "policy": str(base), "reranker": str(reranker_dir), "config": asdict(ppo),
                "use_gpu": use_gpu, "dtype": args.dtype, "stop_token_id": stop}

        def body():
            model, _, metrics, history = (run_ppo if algorithm == "ppo" else run_grpo)(loop)
            expect(model, args.device, f"the {algorithm} policy")
            steps = sum(1 for entry in history if any(k.startswith(("objective/", "reward")) for k in entry))
            return {"steps": steps}

        figures = stages.run(f"{algorithm}{'_lora' if lora_r else ''}", body)
        figures["steps_per_s"] = round(figures["steps"] / figures["seconds"], 3)

    policy_stage("ppo", 0)
    policy_stage("ppo", 8)
    policy_stage("grpo", 0)

    def train_reward_sharded():
        """`reranker.sharding: fsdp` as one Ray Train GPU worker runs it: accelerate's FSDP2 on a
        process group (here of one), the gathered weights as report_model saves them. Last: it
        leaves a process group in this process."""
        import torch.distributed as dist
        from torch.distributed.tensor import DTensor

        from coderanker.training.ray_train import full_state_dict

        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0", WORLD_SIZE="1",
                          LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
        sharded = replace(reward_config, sharding="fsdp", gradient_checkpointing=True)
        loop = {"pairs": pairs, "init": str(reranker_dir), "config": asdict(sharded), "use_gpu": True,
                "dtype": args.dtype}
        model, _, metrics, history = train_reward_model(loop)
        if not all(isinstance(p, DTensor) for p in model.parameters()):
            raise AssertionError("reranker.sharding: fsdp left parameters unsharded")
        expect(model, args.device, "the sharded reranker")
        state = full_state_dict(model)
        if sorted(state) != sorted(model.state_dict()) or {t.device.type for t in state.values()} != {"cpu"}:
            raise AssertionError("the gathered state dict is not the whole model on the CPU")
        steps = sum(1 for entry in history if "loss" in entry)
        dist.destroy_process_group()
        return {"steps": steps, "world_size": 1, "loss_after": round(metrics["train_loss_after"], 4)}

    if use_gpu:  # accelerate shards on GPUs only
        figures = stages.run("train_reranker_fsdp", train_reward_sharded)
        figures["steps_per_s"] = round(figures["steps"] / figures["seconds"], 3)
    else:
        print("train_reranker_fsdp: skipped (accelerate has FSDP on GPUs only)", flush=True)
    summary = {"device": args.device, "dtype": args.dtype, "shape": args.shape,
               "gpu": torch.cuda.get_device_name() if use_gpu else None, "torch": torch.__version__,
               "stages": stages.results}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    raise SystemExit(main())
