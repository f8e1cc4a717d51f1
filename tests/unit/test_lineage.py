"""dvc.yaml's lineage against the code: every stage depends on every project module its
entry point imports (transitively, including imports inside functions) and on every path
its command passes in, so a change to any of them re-runs the stage."""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("coderanker", "pipelines")


def module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def imported_modules(path: Path) -> set[str]:
    """Project modules a file imports anywhere in it (absolute imports, the project's style)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] in PACKAGES and module_file(name))
    return found


def closure(module: str) -> set[Path]:
    """Files of `module` and everything it imports, with the packages' __init__ files."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts)) if module_file(".".join(parts[:i]))]
        todo += sorted(imported_modules(module_file(name)) - seen)
    return {module_file(name) for name in seen}


def stages() -> list:
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        return [(stage.addressing, stage.cmd, [str(d.def_path) for d in stage.deps],
                 [str(o.def_path) for o in stage.outs]) for stage in repo.index.stages]


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


STAGES = stages()


@pytest.mark.parametrize("name,cmd,deps,outs", STAGES, ids=[s[0] for s in STAGES])
def test_stage_depends_on_every_module_it_imports(name, cmd, deps, outs):
    words = shlex.split(cmd)
    module = words[words.index("-m") + 1]
    files = sorted(str(path.relative_to(ROOT)) for path in closure(module))
    missing = [path for path in files if not covered(path, deps)]
    assert not missing, f"{name}: dvc.yaml deps miss modules it imports: {missing}"


@pytest.mark.parametrize("name,cmd,deps,outs", STAGES, ids=[s[0] for s in STAGES])
def test_stage_depends_on_every_path_its_command_reads(name, cmd, deps, outs):
    paths = [word for word in shlex.split(cmd) if word.split("/")[0] in ("data", "models", "metrics")]
    missing = [path for path in paths if not covered(path, deps + outs)]
    assert not missing, f"{name}: paths in its command that are neither deps nor outs: {missing}"


def test_the_import_scan_sees_function_level_imports():
    """The check can fail: pipelines import the library inside main()."""
    files = {str(p.relative_to(ROOT)) for p in closure("pipelines.evaluate")}
    assert {"coderanker/evaluation.py", "coderanker/tracking.py", "coderanker/metrics.py"} <= files
    assert not covered("coderanker/tracking.py", ["coderanker/metrics.py", "pipelines/evaluate.py"])
