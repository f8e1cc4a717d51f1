"""Every language on project-written MultiPL-E-format fixtures: each problem's correct
completion passes, its wrong one fails and its broken one is a compile_error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from coderanker.languages import LANGUAGES
from coderanker.problems import Problem
from coderanker.prompting import truncate_at_stop
from coderanker.sandbox import SandboxConfig, Status
from coderanker.sandbox.pool import execute_programs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sandbox"
EXPECTED = {"reference": Status.PASSED, "wrong": Status.FAILED, "broken": Status.COMPILE_ERROR}


def fixture_records(language: str) -> list[dict]:
    with open(FIXTURES / f"{language}.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def programs(language: str) -> list[tuple[str, str, str]]:
    """(problem name, kind, program) for every completion of the language's fixtures."""
    return [(record["name"], kind, Problem.from_record(record).program(record[kind]))
            for record in fixture_records(language) for kind in EXPECTED]


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> SandboxConfig:
    return SandboxConfig(workers=2, uid_base=63000, cache_dir=str(tmp_path_factory.mktemp("compiled")))


@pytest.fixture(scope="module")
def outcomes(config) -> dict[tuple[str, str], object]:
    """All 120 programs in one parallel call, as the pipeline runs them."""
    cases = [(name, kind, language, program) for language in LANGUAGES for name, kind, program in programs(language)]
    results = execute_programs([(language, program) for _, _, language, program in cases], config)
    return {(name, kind): outcome for (name, kind, _, _), outcome in zip(cases, results, strict=True)}


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_fixtures_pass_fail_and_do_not_compile(language, outcomes):
    records = fixture_records(language)
    assert len(records) >= 5
    wrong = [
        f"{record['name']} {kind}: {outcomes[record['name'], kind].status.value} (expected {expected.value}) "
        f"{outcomes[record['name'], kind].detail} {outcomes[record['name'], kind].stderr_tail[-300:]}"
        for record in records for kind, expected in EXPECTED.items()
        if outcomes[record["name"], kind].status is not expected
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_fixtures_use_the_languages_stop_tokens(language):
    for record in fixture_records(language):
        assert tuple(record["stop_tokens"]) == LANGUAGES[language].stop_tokens
        # the stop tokens never cut a correct completion short, and where the tests open with
        # the function's closing brace (cpp, java, cs, sh) or the next definition, they cut there
        sampled = truncate_at_stop(record["reference"] + "\n" + record["tests"], record["stop_tokens"])
        assert sampled.startswith(record["reference"])
        assert sampled == record["reference"] or language in ("js", "ts")


class TestCompileCache:
    def test_cached_artefact_is_run_instead_of_compiling_again(self, tmp_path):
        config = SandboxConfig(workers=1, uid_base=63000, cache_dir=str(tmp_path))
        ((_, _, good), (_, _, bad), _) = programs("cpp")[:3]
        assert [o.status for o in execute_programs([("cpp", good), ("cpp", bad)], config)] == [
            Status.PASSED, Status.FAILED]
        entries = {path.name: path for path in tmp_path.glob("*/*")}
        assert len(entries) == 2
        # Swap the two cached binaries: the correct source now runs the wrong binary, so
        # its result can only come from the cache.
        good_dir, bad_dir = sorted(entries.values(), key=lambda p: p.stat().st_mtime_ns)
        swap = tmp_path / "swap"
        shutil.move(good_dir / "program", swap)
        shutil.move(bad_dir / "program", good_dir / "program")
        shutil.move(swap, bad_dir / "program")
        assert [o.status for o in execute_programs([("cpp", good), ("cpp", bad)], config)] == [
            Status.FAILED, Status.PASSED]


class TestMissingToolchain:
    def test_missing_typescript_is_a_sandbox_error(self, tmp_path):
        config = SandboxConfig(workers=1, uid_base=63000, tools_dir=str(tmp_path / "none"), cache_dir=str(tmp_path))
        (_, _, program) = programs("ts")[0]
        (outcome,) = execute_programs([("ts", program)], config)
        assert outcome.status is Status.SANDBOX_ERROR and "TypeScript" in outcome.detail
