"""From model output to a completion that makes prompt + completion + tests a program."""

from __future__ import annotations

from coderanker.generation import reference_candidate
from coderanker.problems import Problem
from coderanker.prompting import chat_messages, extract_completion, strip_docstrings, truncate_at_stop
from coderanker.sandbox import SandboxConfig
from coderanker.sandbox.pool import execute_programs

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


def test_prefill_answers_are_bodies_cut_at_the_fence_or_a_stop_token():
    from coderanker.generation import response_text

    generated = "\n    return x * 2\n```\n\nThis doubles x."  # the model writes the prompt's newline itself
    completion = extract_completion(PROBLEM, generated, "prefill")
    assert completion == "    return x * 2\n"
    assert run(completion) == "passed"
    # what the reranker scores ends where PPO's rollout stops: on the closing fence
    assert response_text(PROBLEM, generated, "prefill") == "\n    return x * 2\n```"
    cut = "\n    return x * 2\nprint(double(3))\n```"
    assert extract_completion(PROBLEM, cut, "prefill") == "    return x * 2"
    assert response_text(PROBLEM, cut, "prefill") == "\n    return x * 2```"
    open_ended = "\n    return (x *"  # ran out of tokens: the answer stays open
    assert response_text(PROBLEM, open_ended, "prefill") == open_ended
    assert run(extract_completion(PROBLEM, open_ended, "prefill")) == "compile_error"


def test_prefill_reference_reads_like_a_prefill_answer():
    from coderanker.generation import planted_reference, response_text

    problem = Problem(**{**PROBLEM.__dict__, "reference": "    return x * 2\n"})
    candidate = reference_candidate(problem, "prefill", "gen", "r0")
    assert candidate["response"] == response_text(problem, "\n    return x * 2\n```", "prefill")
    assert candidate["completion"] == problem.reference and candidate["reference"] is True
    planted = planted_reference(problem, "prefill", 5, "gen", "r0")
    assert planted["sample"] == 5 and planted["reference"] is False and planted["planted"] is True


def test_prefill_model_input_begins_the_answer_with_the_prompt_code(tiny_model_dir):
    from transformers import AutoTokenizer

    from coderanker.generation import model_input, prompt_ids
    from coderanker.reranker import encode_parts, fence_id

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = model_input(PROBLEM, tokenizer, "prefill")
    assert text.endswith("<|im_start|>assistant\n```python\n" + PROBLEM.prompt.rstrip())
    assert prompt_ids(PROBLEM, tokenizer, "prefill") == tokenizer(text, add_special_tokens=False)["input_ids"]
    fence = fence_id(tokenizer)
    assert fence is not None
    query, answer = encode_parts(tokenizer, "prefill", PROBLEM, "\n    return x * 2\n```", 512)
    assert answer[-1] == fence and tokenizer.eos_token_id not in answer  # PPO's rollout ends on the fence
    _, open_answer = encode_parts(tokenizer, "prefill", PROBLEM, "\n    return (x *", 512)
    assert open_answer[-1] == tokenizer.eos_token_id
    _, cut = encode_parts(tokenizer, "prefill", PROBLEM, "\n" + "    x = 1\n" * 200 + "```", len(query) + 9)
    assert len(query) + len(cut) == len(query) + 9 and cut[-1] == fence
