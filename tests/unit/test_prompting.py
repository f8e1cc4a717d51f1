"""From model output to a completion that makes prompt + completion + tests a program."""

from __future__ import annotations

from coderanker.generation import reference_candidate
from coderanker.problems import Problem
from coderanker.prompting import chat_messages, extract_completion, strip_docstrings, truncate_at_stop
from coderanker.sandbox import SandboxConfig, execute_programs

PROBLEM = Problem(
    name="double", language="py",
    prompt='def double(x: int) -> int:\n    """Return twice x."""\n',
    tests="def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(-1) == -2\n\n\ncheck(double)\n",
    stop_tokens=("\ndef ", "\n#", "\nif __name__", "\nprint("), entry_point="double",
)  # fmt: skip


def run(completion: str) -> str:
    (outcome,) = execute_programs([("py", PROBLEM.program(completion))], SandboxConfig())
    return outcome.status.value


def test_chat_reply_with_whole_function_and_demo_code():
    reply = (
        "Sure! Here it is:\n```python\nimport math\n\n@staticmethod\ndef helper(v):\n    return v\n\n"
        "def double(x: int) -> int:\n    return helper(x) * 2\n\nprint(double(3))\nassert double(1) == 3\n"
        "if __name__ == '__main__':\n    raise SystemExit(1)\n```\nThis doubles x."
    )
    completion = extract_completion(PROBLEM, reply, "chat")
    assert "print(" not in completion and "__main__" not in completion and "assert" not in completion
    assert "import math" in completion and "@staticmethod" in completion
    assert run(completion) == "passed"


def test_chat_reply_with_body_only():
    assert run(extract_completion(PROBLEM, "```python\n    return x * 2\n```", "chat")) == "passed"
    assert run(extract_completion(PROBLEM, "```\nreturn x + x\n```", "chat")) == "passed"


def test_chat_reply_prefers_the_block_defining_the_entry_point():
    reply = "```python\nx = 1\n```\nand\n```python\ndef double(x):\n    return 2 * x\n```"
    assert run(extract_completion(PROBLEM, reply, "chat")) == "passed"


def test_unterminated_block_and_broken_code_are_compile_errors_not_crashes():
    completion = extract_completion(PROBLEM, "```python\ndef double(x):\n    return (x *", "chat")
    assert run(completion) == "compile_error"


def test_wrong_answer_fails():
    assert run(extract_completion(PROBLEM, "```python\ndef double(x):\n    return x\n```", "chat")) == "failed"


def test_completion_style_cuts_at_the_earliest_stop_token():
    text = "    return x * 2\n\nprint(double(2))\ndef other():\n    pass"
    completion = extract_completion(PROBLEM, text, "completion")
    assert completion == "    return x * 2\n"
    assert run(completion) == "passed"
    assert truncate_at_stop("abc", ("\ndef",)) == "abc"


def test_chat_prompt_shows_the_problem_in_a_fenced_block():
    (message,) = chat_messages(PROBLEM)
    assert message["role"] == "user" and "```python\n" + PROBLEM.prompt.rstrip() + "\n```" in message["content"]


def test_strip_docstrings_keeps_imports_and_heads():
    prompt = ('import math\n\n\ndef area(r: float) -> float:\n'
              '    """Area of a circle.\n    >>> area(1.0)\n    3.14\n    """\n')
    assert strip_docstrings(prompt) == "import math\n\n\ndef area(r: float) -> float:\n"
    code = 'class A:\n    """Doc."""\n    def f(self):\n        """One line."""\n        return 1\n'
    assert strip_docstrings(code) == "class A:\n    def f(self):\n        return 1\n"
    assert strip_docstrings("def broken(:\n") == "def broken(:\n"  # unparsable: unchanged


def test_reference_is_written_like_a_model_answer_and_still_passes():
    problem = Problem(**{**PROBLEM.__dict__, "reference": "    return x * 2\n"})
    candidate = reference_candidate(problem, "chat", "gen", "r0")
    assert candidate["response"] == "```python\ndef double(x: int) -> int:\n    return x * 2\n```"
    assert candidate["reference"] is True and candidate["completion"] == problem.reference
    assert run(extract_completion(problem, candidate["response"], "chat")) == "passed"
    assert run(candidate["completion"]) == "passed"
