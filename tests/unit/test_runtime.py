"""Device and dtype resolution: bf16 only where the hardware multiplies it natively."""

from __future__ import annotations

import pytest

from coderanker import runtime
from coderanker.runtime import ModelConfig, Placement, resolve_dtype


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx512f", "amx_bf16", "amx_tile"}, "bf16"),
        ({"avx512f", "avx512_bf16"}, "bf16"),
        ({"avx512f", "avx2"}, "fp32"),  # AVX512 alone: oneDNN emulates bf16, ~4x slower than fp32
        (set(), "fp32"),
    ],
)
def test_auto_dtype_on_cpu_follows_the_cpu_flags(monkeypatch, flags, expected):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset(flags))
    assert resolve_dtype("auto", "cpu") == expected


def test_explicit_dtypes_win_over_the_hardware(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset())
    assert resolve_dtype("bf16", "cpu") == "bf16"
    assert resolve_dtype("fp32", "cpu") == "fp32"


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="model.dtype"):
        ModelConfig(dtype="fp16")
    with pytest.raises(ValueError, match="model.device"):
        ModelConfig(device="tpu")
    with pytest.raises(ValueError, match="model.dtype"):
        resolve_dtype("half", "cpu")


def test_cuda_requested_without_a_gpu_is_an_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="cuda"):
        Placement.of("cuda", "auto")


def test_placement_from_params_reads_the_model_section(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    assert Placement.from_params({"model": {"device": "cpu", "dtype": "auto"}}) == Placement("cpu", "bf16")
    assert Placement.from_params({"model": {"device": "cpu", "dtype": "fp32"}}) == Placement("cpu", "fp32")
    assert Placement.from_params({}).device in ("cpu", "cuda")


def test_cpu_flags_are_read_from_proc_cpuinfo():
    from pathlib import Path

    if not Path("/proc/cpuinfo").exists():
        pytest.skip("no /proc/cpuinfo")
    runtime.cpu_flags.cache_clear()
    flags = runtime.cpu_flags()
    text = Path("/proc/cpuinfo").read_text()
    assert flags and all(flag in text for flag in list(flags)[:5])
