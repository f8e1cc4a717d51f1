"""`--backend ray` on a real local Ray instance gives the same labels as the local pool."""

from __future__ import annotations

import pytest

from coderanker.executor import run
from coderanker.problems import by_name
from coderanker.sandbox import SandboxConfig
from coderanker.sources import starter

pytestmark = pytest.mark.integration


def test_ray_backend_matches_local():
    ray = pytest.importorskip("ray")
    problems = by_name(starter("eval")[:20])
    candidates = [{"name": name, "completion": body, "sample": i}
                  for i, (name, p) in enumerate(problems.items())
                  for body in (p.reference, "    return None\n")]
    try:
        on_ray = run(problems, candidates, SandboxConfig(backend="ray", workers=2))
    finally:
        ray.shutdown()
    local = run(problems, candidates, SandboxConfig(workers=2))
    assert [r["status"] for r in on_ray] == [r["status"] for r in local] == ["passed", "failed"] * 20
    assert [r["sample"] for r in on_ray] == [c["sample"] for c in candidates]
