"""The python_tests verifier: real sandboxed runs, every attack a clear failed verdict."""

from __future__ import annotations

import asyncio
import re

import pytest

from ponder import sandbox
from ponder.config import Settings
from ponder.problem import Problem
from ponder.sandbox import IsolationStatus
from ponder.verifiers.base import Verdict
from ponder.verifiers.python_tests import (
    PythonTestsVerifier,
    extract_code,
    validate_python_tests_spec,
)

TESTS = """
def test_small():
    assert add(1, 2) == 3

def test_zero():
    assert add(-1, 1) == 0

def test_big():
    assert add(10**6, 1) == 1000001, "big numbers"
"""
GOOD = "def add(a, b):\n    return a + b\n"
PROBLEM = Problem(prompt="Write add(a, b).")


def verdict(answer: str, **options: object) -> Verdict:
    spec = {"type": "python_tests", "tests": TESTS, "timeout_s": 1.0, **options}
    verifier = PythonTestsVerifier.from_spec(spec)

    async def both() -> Verdict:
        result = await verifier.verify(PROBLEM, answer)
        after = await verifier.verify(PROBLEM, GOOD)  # the worker carries on unharmed
        assert after == Verdict(True, 1.0, "3/3 tests passed"), after
        return result

    return asyncio.run(both())


def test_passing_code() -> None:
    assert verdict(GOOD) == Verdict(True, 1.0, "3/3 tests passed")


def test_partially_failing_code() -> None:
    result = verdict("def add(a, b):\n    return a + b if a < 100 else 0\n")
    assert not result.passed and result.score == pytest.approx(2 / 3)
    assert result.feedback.startswith("2/3 tests passed; first failure: test_big: ")
    assert "AssertionError: big numbers" in result.feedback


def test_code_in_a_markdown_fence() -> None:
    answer = "Here is my solution:\n\n```python\n" + GOOD + "```\n\nUsage:\n```\nadd(1, 2)\n```\n"
    assert verdict(answer).passed
    assert extract_code(answer) == GOOD
    assert extract_code("```py\nx = 1\n") == "x = 1\n"  # an unclosed fence
    assert extract_code("x = 2") == "x = 2"


def test_syntax_error_in_the_candidate() -> None:
    result = verdict("def add(a, b) return a + b\n")
    assert not result.passed and result.score == 0.0
    assert "SyntaxError" in result.feedback and "candidate.py, line 1" in result.feedback


def test_infinite_loop() -> None:
    result = verdict("def add(a, b):\n    while True:\n        pass\n")
    assert not result.passed and result.score == 0.0
    assert result.feedback.startswith("timed out after 1 s")
    assert "stuck in test_small" in result.feedback


def test_memory_hog() -> None:
    hog = "def add(a, b):\n    x = []\n    while True:\n        x.append(bytearray(10**7))\n"
    result = verdict(hog, memory_mb=128)
    assert not result.passed
    assert "MemoryError" in result.feedback and "memory limit of 128 MB" in result.feedback


def test_fork_bomb() -> None:
    bomb = (
        "import os\n"
        "def add(a, b):\n"
        "    while True:\n"
        "        try:\n"
        "            os.fork()\n"
        "        except OSError:\n"
        "            pass\n"
    )
    result = verdict(bomb)
    assert not result.passed and result.feedback.startswith("killed: too many processes")


def test_huge_file() -> None:
    writer = "def add(a, b):\n    with open('f', 'wb') as f:\n"
    writer += "        for _ in range(100):\n            f.write(b'x' * (1 << 20))\n"
    result = verdict(writer)
    assert not result.passed and "file size limit exceeded" in result.feedback


def test_network() -> None:
    code = (
        "import socket\n"
        "def add(a, b):\n"
        "    socket.create_connection(('127.0.0.1', 80), timeout=3)\n"
    )
    result = verdict(code)
    assert not result.passed and "network access is disabled" in result.feedback
    result = verdict(code.replace("127.0.0.1", "192.0.2.1"))  # a documentation address
    assert not result.passed and "network access is disabled" in result.feedback


def test_reading_files_outside() -> None:
    code = "def add(a, b):\n    return len(open('/etc/shadow').read())\n"
    result = verdict(code)  # not part of the sandbox's file system
    assert not result.passed and "FileNotFoundError" in result.feedback


def test_printing_megabytes() -> None:
    result = verdict("print('y' * 3_000_000)\n" + GOOD)
    assert result.passed and result.feedback == "3/3 tests passed; output truncated"
    flood = "def add(a, b):\n    while True:\n        print('x' * 100000)\n"
    result = verdict(flood)
    assert not result.passed and result.feedback.startswith("killed: output limit exceeded")


def test_forging_the_summary() -> None:
    forged = (
        "import json, os\n"
        "print(json.dumps({'passed': 3, 'total': 3}))\n"
        "report = {'nonce': '0' * 32, 'done': True, 'phase': 'tests',\n"
        "          'results': [['test_small', True, ''], ['test_zero', True, ''],\n"
        "                      ['test_big', True, '']]}\n"
        "open('.ponder-report', 'w').write(json.dumps(report))\n"
        "os._exit(0)\n"
    )
    result = verdict(forged)
    assert not result.passed and result.score == 0.0
    assert "without a valid test report" in result.feedback
    # exiting early is no pass either
    result = verdict("import sys\nsys.exit(0)\n")
    assert not result.passed and "SystemExit" in result.feedback
    # nor is claiming fewer tests: tests the report does not mention count as failed
    result = verdict("import os\ndef add(a, b):\n    os._exit(0)\n")
    assert not result.passed and result.score == 0.0


def test_plain_asserts() -> None:
    verifier = PythonTestsVerifier("assert add(2, 3) == 5\n", timeout_s=2)
    assert asyncio.run(verifier.check(GOOD)) == Verdict(True, 1.0, "1/1 tests passed")
    bad = asyncio.run(verifier.check("def add(a, b):\n    return 0\n"))
    assert not bad.passed and "the tests failed to load: AssertionError" in bad.feedback


def test_import_solution() -> None:
    tests = "import solution\n\ndef test_it():\n    assert solution.add(1, 1) == 2\n"
    verifier = PythonTestsVerifier(tests, timeout_s=2)
    assert asyncio.run(verifier.check(GOOD)).passed


def test_refuses_without_isolation_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        sandbox, "isolation_status", lambda: IsolationStatus(False, None, "simulated")
    )
    refused = asyncio.run(PythonTestsVerifier(TESTS, timeout_s=2).check(GOOD))
    assert not refused.passed and refused.feedback.startswith("refusing to run untrusted code")
    assert "PONDER_SANDBOX_ALLOW_UNISOLATED" in refused.feedback
    allowed = PythonTestsVerifier(
        TESTS, timeout_s=2, settings=Settings(sandbox_allow_unisolated=True)
    )
    result = asyncio.run(allowed.check(GOOD))
    assert result.passed and "WITHOUT isolation" in result.feedback


def test_without_bubblewrap_the_verdict_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "_find_tool", lambda name: None)
    status = sandbox.isolation_status.__wrapped__()
    monkeypatch.setattr(sandbox, "isolation_status", lambda: status)
    refused = asyncio.run(PythonTestsVerifier(TESTS, timeout_s=2).check(GOOD))
    assert not refused.passed and refused.score == 0.0
    assert refused.feedback.startswith("refusing to run untrusted code")
    assert "bubblewrap (bwrap) is not installed: apt-get install bubblewrap" in refused.feedback


def test_too_many_files() -> None:
    writer = "def add(a, b):\n    for i in range(10**6):\n        open(f'f{i}', 'w').close()\n"
    result = verdict(writer)
    assert not result.passed
    assert result.feedback.startswith("killed: more than 4096 files in the working directory")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "python_tests"}, "needs `tests`"),
        ({"type": "python_tests", "tests": "   "}, "needs `tests`"),
        ({"type": "python_tests", "tests": 5}, "needs `tests`"),
        ({"type": "python_tests", "tests": "x" * 100_001}, "longer than 100000"),
        ({"type": "python_tests", "tests": "def test_a(:\n  pass"}, "syntax error at line 1"),
        ({"type": "python_tests", "tests": "x = 1\n"}, "no test_* function and no assert"),
        ({"type": "python_tests", "tests": TESTS, "timeout_s": 0.01}, "0.1..60"),
        ({"type": "python_tests", "tests": TESTS, "timeout_s": 61}, "0.1..60"),
        ({"type": "python_tests", "tests": TESTS, "timeout_s": True}, "must be a number"),
        ({"type": "python_tests", "tests": TESTS, "memory_mb": 16}, "32..4096"),
        ({"type": "python_tests", "tests": TESTS, "memory_mb": 5000}, "32..4096"),
        ({"type": "python_tests", "tests": TESTS, "memory_mb": 64.5}, "must be an integer"),
        ({"type": "python_tests", "tests": TESTS, "cpu": 1}, "has no option(s) ['cpu']"),
    ],
)
def test_spec_validation(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_python_tests_spec(spec)


def test_valid_spec() -> None:
    validate_python_tests_spec({"type": "python_tests", "tests": TESTS, "timeout_s": 5})
    validate_python_tests_spec(
        {"type": "python_tests", "tests": "assert True", "timeout_s": 0.1, "memory_mb": 32}
    )
