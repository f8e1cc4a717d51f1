#!/usr/bin/env bash
# Run here (on the CPU machine, in the repository root) before a device check: writes what
# benchmarks/gpu/check.sh needs and the GPU machine lacks into two git-ignored folders that
# the device run carries (about 10 MB together):
#   .gpucheck/tokenizer  the SmolLM2 tokenizer (the random model is built from a config there)
#   .whl/                wheels for Python 3.12 of the packages the GPU image does not have
#                        (TRL and datasets with their pure-Python needs; torch, transformers,
#                        accelerate, peft, pyarrow and pandas are there)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
grep -qx '/.gpucheck/' .git/info/exclude 2>/dev/null || echo '/.gpucheck/' >> .git/info/exclude
rm -rf .gpucheck .whl
"$PY" - <<'PY'
from coderanker.models import tiny_random

_, tokenizer = tiny_random()
tokenizer.save_pretrained(".gpucheck/tokenizer")
PY
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
wheels=(trl=="$(version trl)" datasets=="$(version datasets)" dill=="$(version dill)"
        multiprocess=="$(version multiprocess)")
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${wheels[@]}"
du -sh .gpucheck .whl
