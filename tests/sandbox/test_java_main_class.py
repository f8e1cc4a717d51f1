"""Java programs run under the class that holds `main`: HumanEval-X's `public class Main`
(tests in a public class of another name than MultiPL-E's Problem) passes when correct and
fails when wrong, instead of being a compile_error of the file's name."""

from __future__ import annotations

import pytest

from coderanker.languages import main_class
from coderanker.sandbox import SandboxConfig, Status
from coderanker.sandbox.pool import execute_programs

HUMANEVAL_X_PROMPT = """import java.util.*;
import java.lang.*;

class Solution {
    /**
    Add two numbers x and y
    >>> add(2, 3)
    5
     */
    public int add(int x, int y) {
"""
HUMANEVAL_X_TESTS = """
public class Main {
    public static void main(String[] args) {
        Solution s = new Solution();
        List<Boolean> correct = Arrays.asList(s.add(0, 1) == 1, s.add(5, 7) == 12, s.add(-4, 4) == 0);
        if (correct.contains(false)) {
            throw new AssertionError();
        }
    }
}
"""
CODEFORCES = """import java.util.*;

public final class Main {
    static int twice(int x) { return 2 * x; }

    public static void main(String[] args) {
        if (twice(21) != %s) throw new AssertionError("wrong");
    }
}
"""


def test_main_class_is_the_public_class_else_the_one_declaring_main_else_problem():
    assert main_class(HUMANEVAL_X_PROMPT + "return x + y;\n    }\n}\n" + HUMANEVAL_X_TESTS) == "Main"
    assert main_class(CODEFORCES) == "Main"
    assert main_class("class A {}\nclass Runner {\n    public static void main(String[] a) {}\n}\n") == "Runner"
    nested = "class Problem {\n    public static class Pair {}\n    public static void main(String[] a) {}\n}\n"
    assert main_class(nested) == "Problem"
    assert main_class("class Problem {\n}\n") == "Problem"


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> SandboxConfig:
    return SandboxConfig(workers=2, uid_base=63200, cache_dir=str(tmp_path_factory.mktemp("compiled")))


def test_public_class_main_programs_compile_and_are_judged(config):
    body = "        return x + y;\n    }\n}\n"
    wrong = "        return x - y;\n    }\n}\n"
    programs = [HUMANEVAL_X_PROMPT + body + HUMANEVAL_X_TESTS, HUMANEVAL_X_PROMPT + wrong + HUMANEVAL_X_TESTS,
                CODEFORCES % "42", CODEFORCES % "41"]
    outcomes = execute_programs([("java", p) for p in programs], config)
    assert [o.status for o in outcomes] == [Status.PASSED, Status.FAILED, Status.PASSED, Status.FAILED], [
        (o.status.value, o.stderr_tail[-300:]) for o in outcomes]


def test_main_class_ignores_nested_classes_comments_and_strings():
    program = ('class Problem {\n    public static class Helper { }\n    // public class Fake\n'
               '    static String s = "public class Quoted {";\n'
               '    public static void main(String[] args) { }\n}\n')
    assert main_class(program) == "Problem"
    assert main_class("/* public class Old */\nclass A {\n    static void main(String[] a) {}\n}\n") == "A"
