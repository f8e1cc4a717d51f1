"""The device check (benchmarks/gpu/check.py) on this CPU: every model stage it runs on CUDA
(sampling, scoring, RewardTrainer, PPO full and LoRA, GRPO) runs here on device cpu, in bf16
and in fp32, and asserts where its models live; the memory table computes for every profile."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from coderanker.models import tiny_random

    _, tokenizer = tiny_random()
    out = tmp_path_factory.mktemp("tokenizer")
    tokenizer.save_pretrained(out)
    return out


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_every_model_stage_runs_on_the_cpu_in_each_dtype(tokenizer_dir, dtype):
    command = [sys.executable, "-m", "benchmarks.gpu.check", "--device", "cpu", "--dtype", dtype, "--shape", "tiny",
               "--tokenizer", str(tokenizer_dir), "--problems", "2", "--samples", "4", "--max-new-tokens", "12",
               "--steps", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["device"], summary["dtype"]) == ("cpu", dtype)
    stages = summary["stages"]
    assert set(stages) == {"sample_hf", "sample_vllm", "score", "train_reranker", "ppo", "ppo_lora", "grpo"}
    assert stages["sample_hf"]["candidates"] == 8 and stages["sample_hf"]["tokens_per_s"] > 0
    assert stages["score"]["candidates"] == 8
    assert stages["train_reranker"]["steps"] >= 1
    for name in ("ppo", "ppo_lora", "grpo"):
        assert stages[name]["steps"] >= 1, (name, stages[name])


def sharded_row(gpus: int) -> str:
    return f"train_reranker, sharding: fsdp over {gpus} GPUs (each)"


def test_the_memory_table_covers_every_stage_of_each_profile():
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu.memory", "--profile", "cpu", "--profile", "paper"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines()[2:]]
    table = {(p.strip(), s.strip()): float(g) for p, s, g, _ in rows}
    stages = {"sample", "mine, evaluate (scoring)", "train_reranker", "ppo (policy training)"}
    sharded = {sharded_row(n) for n in (2, 4)}
    assert {s for p, s in table if p == "cpu"} == stages  # no GPUs, no FSDP
    assert {s for p, s in table if p == "paper"} == stages | sharded
    # FSDP over 2 GPUs brings the full fine-tune of the 6.7B reranker under an 80 GB GPU, 4 further
    assert table[("paper", "train_reranker")] > 80 > table[("paper", sharded_row(2))] > table[("paper", sharded_row(4))]
    # 6.7B in bf16 is 12.5 GiB of weights alone; SmolLM2-135M's sampler needs a few GiB at most
    assert table[("paper", "sample")] > 12.5 and table[("cpu", "sample")] < 4
    # LoRA in the paper profile keeps PPO's four models within one 141 GB GPU's reach
    assert table[("paper", "ppo (policy training)")] < 139


def test_the_paper_profile_validates_and_dvc_plans_every_stage(tmp_path):
    """`coderanker profile use paper`, then DVC's plan. `dvc repro --dry` stops at the first
    stage whose inputs do not exist yet in a fresh clone, for every profile (DVC 3.67,
    treeverse/dvc#9818), so the plan is `dvc status`: every stage, each changed; the first
    stage's dry run shows the paper's model in its command."""
    from tests.helpers import copy_worktree, sh

    repo = copy_worktree(tmp_path / "clone")
    sh(["coderanker", "profile", "use", "paper"], repo)
    sh(["coderanker", "params", "check"], repo)
    stages = {line.split()[0] for line in sh(["dvc", "stage", "list"], repo).splitlines() if line.strip()}
    assert {"prepare_models", "prepare_data", "sample@r0", "ppo@r2", "evaluate@r2"} <= stages
    status = subprocess.run(["dvc", "status", "--json"], cwd=repo, capture_output=True, text=True, check=True,
                            env={**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"})
    assert set(json.loads(status.stdout)) == stages
    plan = sh(["dvc", "repro", "--dry", "prepare_models"], repo)
    assert "--source deepseek-ai/deepseek-coder-6.7b-instruct --reranker-layers 0" in plan
