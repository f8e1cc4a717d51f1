"""Run a training function on Ray Train (V2) TorchTrainer workers and fetch its model.

The worker function saves its model on rank 0 and reports it as the checkpoint; the
driver copies that checkpoint to the stage's output directory. RAY_ADDRESS selects a
cluster (its storage_path must then be shared storage); without it a local Ray starts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)
TRAINING_LOG = "training_log.json"


@dataclass(frozen=True)
class RayTrainConfig:
    """Where and how wide training runs; the `ray` section of params.yaml."""

    num_workers: int = field(default=1, metadata={"min": 1})
    """Ray Train workers (data-parallel replicas)."""
    cpus_per_worker: int = field(default=2, metadata={"min": 1})
    use_gpu: bool = False
    storage_path: str = ""
    """Ray Train storage for checkpoints; empty: a temporary local directory."""


def fit(train_fn: Callable[[dict], None], loop_config: dict, out_dir: str | os.PathLike,
        ray_config: RayTrainConfig, name: str) -> dict:
    """Train on Ray workers; the rank-0 checkpoint lands in out_dir. Returns final metrics."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=True)
    storage = ray_config.storage_path or tempfile.mkdtemp(prefix="coderanker-ray-")
    trainer = TorchTrainer(
        train_loop_per_worker=train_fn,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=ray_config.num_workers,
            use_gpu=ray_config.use_gpu,
            resources_per_worker={"CPU": ray_config.cpus_per_worker},
        ),
        run_config=RunConfig(name=name, storage_path=str(Path(storage).resolve())),
    )
    result = trainer.fit()
    if result.error:
        raise RuntimeError(f"{name} failed on Ray: {result.error}") from result.error
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    result.checkpoint.to_directory(str(out))
    if not ray_config.storage_path:
        shutil.rmtree(storage, ignore_errors=True)
    return dict(result.metrics or {})


def trainer_defaults(use_gpu: bool, prefix: str, dtype: str = "fp32") -> dict:
    """TrainingArguments every coderanker trainer shares: bf16 mixed precision (fp32 master
    weights, bf16 autocast, on CPU as on GPU) when `model.dtype` resolves to bf16, else
    full precision; a log line per step, no intermediate checkpoints, no trackers (the
    stage logs the curves to MLflow itself)."""
    return {"output_dir": tempfile.mkdtemp(prefix=prefix), "bf16": dtype == "bf16", "use_cpu": not use_gpu,
            "logging_steps": 1, "save_strategy": "no", "report_to": []}


def fsdp_arguments(checkpointing: bool) -> dict:
    """TrainingArguments that make accelerate shard the model with FSDP2 across the Ray Train
    workers (GPUs): one unit per transformer layer (the model's `_no_split_modules`),
    parameters resharded after each forward, FSDP's activation checkpointing when asked
    (instead of the trainer's, which would gather every layer once more), and a full state
    dict at the end (see `full_state_dict`)."""
    return {"fsdp": True, "fsdp_config": {"version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                                          "reshard_after_forward": True, "state_dict_type": "FULL_STATE_DICT",
                                          "activation_checkpointing": checkpointing}}


def full_state_dict(model) -> dict | None:
    """A sharded (FSDP2) model's whole weights, gathered to CPU on rank 0 (an empty dict on
    the other ranks); None for a model that is not sharded. A collective: every worker calls it."""
    from torch.distributed.tensor import DTensor

    if not any(isinstance(p, DTensor) for p in model.parameters()):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def lora_config(r: int, alpha: int, dropout: float, task_type: str):
    """A peft LoraConfig on every linear layer of the transformer (peft's "all-linear": the
    LM head and a SEQ_CLS model's score head are left out; the score head is then trained in
    full, as modules_to_save), or None for r = 0 (a full fine-tune)."""
    if not r:
        return None
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules="all-linear", task_type=task_type,
                      modules_to_save=["score"] if task_type == "SEQ_CLS" else None)


def merged(model):
    """A trained model as a plain transformers model: a peft model's adapter merged into
    its weights (the saved directory then loads like any model, in vLLM too); any other
    model as it is."""
    from peft import PeftModel

    return model.merge_and_unload() if isinstance(model, PeftModel) else model


def report_model(model, tokenizer, metrics: dict, log_history: list[dict]) -> None:
    """Called on every worker at the end: rank 0 saves the (unwrapped) model with its
    tokenizer and training log, and reports it as the checkpoint. A sharded model's weights
    are first gathered from every worker."""
    import ray.train
    from ray.train import Checkpoint

    state = full_state_dict(model)
    if ray.train.get_context().get_world_rank() != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, **({} if state is None else {"state_dict": state}))
        tokenizer.save_pretrained(tmp)
        (Path(tmp) / TRAINING_LOG).write_text(json.dumps(without_timings(log_history), indent=1))
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(tmp))


def without_timings(log_history: list[dict]) -> list[dict]:
    """The log minus wall-clock figures (runtime, per-second rates, GRPO's step time): a model
    directory is a DVC output and must be the same bytes whenever the same seeded training runs."""
    timing = ("runtime", "_per_second", "per_second", "step_time")
    return [{k: v for k, v in entry.items() if not k.endswith(timing) and k != "eps"} for entry in log_history]


def read_training_log(model_dir: str | os.PathLike) -> list[dict]:
    path = Path(model_dir) / TRAINING_LOG
    return json.loads(path.read_text()) if path.exists() else []
