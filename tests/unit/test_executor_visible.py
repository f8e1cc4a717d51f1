"""The executor runs a problem's visible tests next to its hidden ones: results gain
`visible_status`, the hidden tests alone decide `status` (runs the real sandbox)."""

from __future__ import annotations

import pytest

from coderanker import executor
from coderanker.executor import execute_candidates, pruned_flags, run, visible_statuses
from coderanker.problems import by_name
from coderanker.sandbox import SandboxConfig
from coderanker.sources import humaneval, starter

CONFIG = SandboxConfig(workers=2)
# Right on the two examples swap_letter_case's prompt shows, wrong on its hidden tests.
MEMORISED = '    return {"Hello World": "hELLO wORLD", "abc123": "ABC123"}[s]\n'


@pytest.fixture(scope="module")
def problems():
    swap = next(p for p in starter() if p.name == "starter_strings_swap_letter_case")
    unshown = next(p for p in humaneval() if p.visible_tests is None)  # its prompt shows no >>> examples
    return by_name([swap, unshown])


def candidates(problems) -> list[dict]:
    swap, unshown = problems.values()
    return [{"name": swap.name, "completion": swap.reference, "sample": 0},
            {"name": swap.name, "completion": MEMORISED, "sample": 1},
            {"name": swap.name, "completion": "    return None\n", "sample": 2},
            {"name": unshown.name, "completion": unshown.reference, "sample": 3}]


def test_visible_status_is_added_and_hidden_tests_decide_status(problems, monkeypatch):
    batches = []
    real = executor.execute_programs

    def recorded(programs, *args, **kwargs):
        batches.append(programs)
        return real(programs, *args, **kwargs)

    monkeypatch.setattr(executor, "execute_programs", recorded)
    results = run(problems, candidates(problems), CONFIG)
    assert [(r["sample"], r["status"], r.get("visible_status")) for r in results] == [
        (0, "passed", "passed"), (1, "failed", "passed"), (2, "failed", "failed"), (3, "passed", None)]
    assert "visible_status" not in results[3]  # a problem without visible tests adds no field
    assert len(batches) == 1 and len(batches[0]) == 4 + 3  # hidden and visible programs in one batch


def test_ray_tasks_run_the_same_programs_as_the_local_backend(problems):
    from coderanker.sandbox.ray_backend import _run_chunk  # what each Ray task runs, without Ray

    local = execute_candidates(problems, candidates(problems), CONFIG)
    on_task = _run_chunk(problems, candidates(problems), CONFIG)
    fields = ("sample", "status", "visible_status")
    assert [[r.get(f) for f in fields] for r in on_task] == [[r.get(f) for f in fields] for r in local]
    assert [r.get("visible_status") for r in on_task] == ["passed", "passed", "failed", None]


def test_visible_statuses_keep_what_candidates_carry_and_run_the_rest(problems):
    rows = candidates(problems)
    rows[2]["visible_status"] = "timeout"  # carried from an earlier execution: not run again
    rows[3]["visible_status"] = "passed"  # its problem has no visible tests: there is nothing to carry
    assert visible_statuses(problems, rows, CONFIG) == ["passed", "passed", "timeout", None]


def test_pruned_flags():
    names = ["a", "a", "a", "b", "b", "c"]
    visible = ["passed", "failed", "timeout", "failed", "compile_error", None]
    # a: one passed, the others are pruned; b: none passed, none is pruned; c: no visible tests
    assert pruned_flags(names, visible) == [False, True, True, False, False, False]
