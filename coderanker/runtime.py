"""Where models run and in which precision: `model.device` and `model.dtype` of params.yaml.

`auto` picks CUDA when present, else the CPU; and bf16 on GPUs and on CPUs whose
instruction set multiplies bf16 natively (AMX or AVX512-BF16), fp32 elsewhere. On a CPU
without them oneDNN emulates bf16 and a matmul runs about 4x *slower* than fp32 (measured
on an AVX512 Xeon without AVX512-BF16: 55 against 205 GFLOP/s at SmolLM2's shapes), so
the fallback matters as much as the fast path.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "bf16", "fp32")
FAST_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class ModelConfig:
    """The `model` section of params.yaml."""

    source: str = "smollm2-gguf"
    """smollm2-gguf, tiny-random[:SEED], a .gguf path, a model directory or a hub id."""
    reranker_layers: int = field(default=0, metadata={"min": 0})
    """Keep the base's bottom N layers in the reranker (0: all)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto (CUDA when present), cpu or cuda: every model stage runs there."""
    dtype: Literal["auto", "bf16", "fp32"] = "auto"
    """auto (bf16 on GPUs and on CPUs with AMX/AVX512-BF16, else fp32), bf16 or fp32."""

    def __post_init__(self):
        if self.device not in DEVICES:
            raise ValueError(f"model.device must be one of {DEVICES}, not {self.device!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"model.dtype must be one of {DTYPES}, not {self.dtype!r}")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def cpu_has_fast_bf16() -> bool:
    return any(flag in cpu_flags() for flag in FAST_BF16_CPU_FLAGS)


def resolve_device(device: str = "auto") -> str:
    import torch

    if device not in DEVICES:
        raise ValueError(f"model.device must be one of {DEVICES}, not {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("model.device is cuda but torch sees no CUDA device")
    return device


def resolve_dtype(dtype: str = "auto", device: str = "cpu") -> str:
    """bf16 or fp32 for a resolved device."""
    if dtype not in DTYPES:
        raise ValueError(f"model.dtype must be one of {DTYPES}, not {dtype!r}")
    if dtype != "auto":
        return dtype
    if device == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def training_dtype(params: dict, ray_config) -> str:
    """The precision of training, resolved for where it runs: Ray Train's workers, on GPUs
    when `ray.use_gpu`, else on CPUs (whose flags are those of this machine: a cluster's
    CPU workers are expected to match the driver's)."""
    model = params.get("model") or {}
    return resolve_dtype(model.get("dtype", "auto"), "cuda" if ray_config.use_gpu else "cpu")


def torch_dtype(name: str):
    import torch

    return {"bf16": torch.bfloat16, "fp32": torch.float32}[name]


@dataclass(frozen=True)
class Placement:
    """A resolved device and dtype."""

    device: str
    dtype: str

    @classmethod
    def of(cls, device: str = "auto", dtype: str = "auto") -> Placement:
        resolved = resolve_device(device)
        return cls(resolved, resolve_dtype(dtype, resolved))

    @classmethod
    def from_params(cls, params: dict) -> Placement:
        model = params.get("model") or {}
        return cls.of(model.get("device", "auto"), model.get("dtype", "auto"))

    @property
    def torch_dtype(self):
        return torch_dtype(self.dtype)

    def load(self, loader, path, **kwargs):
        """`loader.from_pretrained(path)` in this precision, moved to this device."""
        return loader.from_pretrained(path, dtype=self.torch_dtype, **kwargs).to(self.device)
