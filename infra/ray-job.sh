#!/bin/sh
# The entrypoint of infra/k8s/rayjob.yaml: one run of the DVC pipeline as a Ray job, on the
# Ray head, in a fresh clone (the image's copy of the repository is not a git checkout).
#   CODERANKER_GIT_URL     the repository to clone (required)
#   CODERANKER_GIT_COMMIT  the commit, branch or tag to run (default: the default branch)
#   CODERANKER_PROFILE     configs/<profile>.yaml to start from (default: the committed params.yaml)
#   CODERANKER_RAY_STORAGE Ray Train's storage, shared by every Ray pod (default: the volume
#                          infra/k8s/ray-storage.yaml mounts)
# The sandbox's tasks and Ray Train's workers run on the job's Ray worker nodes (the stage
# processes join the job's cluster: Ray sets RAY_ADDRESS for the entrypoint). Outputs come
# from and go to the repository's default DVC remote when it has one.
set -eu
: "${CODERANKER_GIT_URL:?set CODERANKER_GIT_URL to the repository to clone}"
work=$(mktemp -d /tmp/coderanker-job.XXXXXX)
git clone --quiet "$CODERANKER_GIT_URL" "$work"
cd "$work"
if [ -n "${CODERANKER_GIT_COMMIT:-}" ]; then
    git checkout --quiet "$CODERANKER_GIT_COMMIT"
fi
# params.yaml from the profile, with the sandbox and training on the cluster; the same
# function the Prefect flow uses (typed, checked like params.yaml).
python - <<'PY'
import os
from pathlib import Path

from flows.self_training import configure

storage = os.environ.get("CODERANKER_RAY_STORAGE", "/var/lib/coderanker/ray-storage")
configure(Path("."), os.environ.get("CODERANKER_PROFILE") or None, None,
          {"execute.backend": "ray", "ray.storage_path": storage})
PY
dvc pull --allow-missing || echo "dvc pull failed or no DVC remote: every stage runs"
dvc repro
dvc push || echo "outputs not pushed: the repository has no default DVC remote"
