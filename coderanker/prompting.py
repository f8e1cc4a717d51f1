"""What the model sees and what is kept of what it writes.

Two styles: `chat` wraps the problem in the model's chat template and extracts the code
block it answers with; `completion` feeds the raw prompt and cuts the continuation at the
problem's stop tokens (MultiPL-E's convention, for base code models).
Either way `problem.prompt + completion + "\\n" + problem.tests` is the program that runs.
"""

from __future__ import annotations

import ast
import re

from coderanker.problems import Problem

LANGUAGE_NAMES = {
    "py": "Python", "cpp": "C++", "java": "Java", "js": "JavaScript",
    "ts": "TypeScript", "php": "PHP", "sh": "Bash", "cs": "C#",
}  # fmt: skip
FENCE = re.compile(r"```[ \t]*([\w+#-]*)[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.S)
KEPT_TOP_LEVEL = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign)


def chat_messages(problem: Problem) -> list[dict]:
    language = LANGUAGE_NAMES.get(problem.language, problem.language)
    fence = "python" if problem.language == "py" else problem.language
    return [
        {
            "role": "user",
            "content": (
                f"Complete the following {language} function. Reply with the whole function "
                f"in a single ```{fence} code block.\n\n```{fence}\n{problem.prompt.rstrip()}\n```"
            ),
        }
    ]


def truncate_at_stop(text: str, stop_tokens: tuple[str, ...] | list[str]) -> str:
    """Cut `text` at the earliest stop token (MultiPL-E's rule)."""
    cut = min((i for i in (text.find(token) for token in stop_tokens) if i >= 0), default=len(text))
    return text[:cut]


def code_block(reply: str, entry_point: str | None) -> str:
    """The code of a chat reply: the first fenced block defining the entry point, else the
    first fenced block, else the whole reply."""
    blocks = [match.group(2) for match in FENCE.finditer(reply)]
    if not blocks:
        return reply
    if entry_point:
        for block in blocks:
            if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", block, re.M):
                return block
    return blocks[0]


def python_completion(code: str, entry_point: str | None) -> str:
    """Turn extracted Python code into a completion of the prompt.

    A whole function at top level redefines the prompt's docstring-only function (which is
    valid Python), so it is kept whole, minus top-level demo code (prints, asserts,
    `if __name__` blocks) that would run before the tests. Anything else is a body."""
    code = code.strip("\n")
    defines_entry = entry_point and re.search(rf"^def\s+{re.escape(entry_point)}\s*\(", code, re.M)
    if not defines_entry:
        lines = code.splitlines()
        if lines and not lines[0].startswith((" ", "\t")):
            lines = ["    " + line if line.strip() else line for line in lines]
        return "\n".join(lines) + "\n"
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return "\n" + code + "\n"  # runs, and fails to compile: a true label
    lines = code.splitlines()
    kept = []
    for node in tree.body:
        if isinstance(node, KEPT_TOP_LEVEL):
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            kept.append("\n".join(lines[first - 1 : node.end_lineno]))
    return "\n" + "\n\n".join(kept) + "\n"


def extract_completion(problem: Problem, generated: str, style: str) -> str:
    """The completion to run, from the model's raw output."""
    if style == "completion":
        return truncate_at_stop(generated, problem.stop_tokens)
    if style == "prefill":  # the body after the prompt's code, up to the closing fence
        body = truncate_at_stop(generated, (*problem.stop_tokens, "```"))
        gap = problem.prompt[len(problem.prompt.rstrip()) :]  # whitespace the model wrote itself
        return body[len(gap) :] if gap and body.startswith(gap) else body
    code = code_block(generated, problem.entry_point)
    if problem.language == "py":
        return python_completion(code, problem.entry_point)
    return code


def strip_docstrings(source: str) -> str:
    """Python `source` without the docstrings of its functions and classes (the lines they
    span). A prompt is a function head whose body is only its docstring, so a `pass` is
    added while parsing; source that does not parse is returned unchanged."""
    try:
        tree = ast.parse(source + ("" if source.endswith("\n") else "\n") + "    pass\n")
    except SyntaxError:
        return source
    drop: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                first.value.value, str
            ):
                drop.update(range(first.lineno - 1, first.end_lineno))
    return "".join(line for i, line in enumerate(source.splitlines(keepends=True)) if i not in drop)
