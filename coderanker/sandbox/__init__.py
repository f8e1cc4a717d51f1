"""Sandboxed execution of candidate programs against their problems' tests.

    results = execute(problems, candidates, SandboxConfig())

Each candidate needs `name` (its problem) and `completion`; every other field is carried
through unchanged into its result, which adds `status`, `exit_code`, `duration_s`,
`stdout_tail`, `stderr_tail` and `detail`.
"""

from coderanker.sandbox.config import LABEL_STATUSES, IOCases, SandboxConfig, Status
from coderanker.sandbox.pool import execute, execute_programs

__all__ = ["LABEL_STATUSES", "IOCases", "SandboxConfig", "Status", "execute", "execute_programs"]
