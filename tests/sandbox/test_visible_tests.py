"""Visible tests (the examples a prompt shows) derived for the starter set and HumanEval:
every reference passes its own, and a wrong completion fails them."""

from __future__ import annotations

from collections import Counter

from coderanker.sandbox import SandboxConfig
from coderanker.sandbox.pool import execute_programs
from coderanker.sources import humaneval, starter

CONFIG = SandboxConfig(workers=2, uid_base=63100)
WRONG = "    return None\n"


def test_every_reference_passes_its_visible_tests_and_a_wrong_completion_fails_them():
    problems = starter() + humaneval()
    assert len(problems) == 205 + 164
    shown = [p for p in problems if p.visible_tests is not None]
    assert Counter(p.source for p in shown) == {"starter": 205, "humaneval": 70}
    programs = [("py", p.visible_program(p.reference)) for p in shown]
    programs += [("py", p.visible_program(WRONG)) for p in shown]
    outcomes = execute_programs(programs, CONFIG)
    right, wrong = outcomes[: len(shown)], outcomes[len(shown):]
    assert [(p.name, o.status.value, o.stderr_tail[-300:]) for p, o in zip(shown, right, strict=True)
            if o.status.value != "passed"] == []
    assert [(p.name, o.status.value) for p, o in zip(shown, wrong, strict=True) if o.status.value != "failed"] == []
