"""Sandboxed execution of candidate programs against their problems' tests.

    from coderanker.sandbox.pool import execute
    results = execute(problems, candidates, SandboxConfig())

Each candidate needs `name` (its problem) and `completion`; every other field is carried
through unchanged into its result, which adds `status`, `exit_code`, `duration_s`,
`stdout_tail`, `stderr_tail` and `detail`.

The package exports only its configuration and statuses, so that reading params does not
load (and make every DVC stage depend on) the sandbox's machinery; the pool is
`coderanker.sandbox.pool`.
"""

from coderanker.sandbox.config import LABEL_STATUSES, IOCases, SandboxConfig, Status

__all__ = ["LABEL_STATUSES", "IOCases", "SandboxConfig", "Status"]
