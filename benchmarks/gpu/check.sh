#!/usr/bin/env bash
# The device check (issue 11): every model stage on CUDA in bf16 with a random SmolLM2-shaped
# model, asserting where each model lives, printing tokens/s and steps/s. Ends within 8 min
# on one H200. Prepare here with benchmarks/gpu/prepare.sh, then on the GPU machine, from
# the repository root (the device tool: run with carry [".whl", ".gpucheck"]):
#   benchmarks/gpu/check.sh [extra args for python -m benchmarks.gpu.check]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-python3}
if [ -d .whl ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
export HF_HUB_OFFLINE=1 TRL_EXPERIMENTAL_SILENCE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch, transformers, peft, trl; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'trl', trl.__version__)"
exec timeout 450 "$PY" -m benchmarks.gpu.check "$@"
