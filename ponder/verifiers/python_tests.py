"""``python_tests``: run the candidate's code against user-given tests in the sandbox.

Spec: ``{"type": "python_tests", "tests": "<python source>", "timeout_s": 5,
"memory_mb": 256}``. The tests are ``test_*`` functions (each one a test, run in
definition order), or plain top-level ``assert``\\ s (then the whole file is one test).
The tests see the candidate's names directly, and may also ``import solution`` (or
``candidate``). Test functions take no arguments (no pytest fixtures).

The answer is Python code: the longest ```` ```python ```` fenced block when there is
one (else the longest plain fenced block, else the whole text). Candidate and tests run
in one sandboxed process (see :mod:`ponder.sandbox`) under a small harness that writes
its results, with a per-run random nonce given on ``argv``, to a report file that the
trusted launcher reads back. A candidate that prints a fake summary, exits early
(``sys.exit``, ``os._exit``) or crashes gets no credit: only a report carrying the nonce
counts, and tests it does not mention count as failed. (Residual risk, documented: code
running in the same interpreter could dig the nonce out of the harness's stack frame;
that takes deliberate introspection of the harness, not a printed line.)

Verdict: passed iff every test passes; score = passed / total; feedback like
``"3/5 tests passed; first failure: test_x: AssertionError: ..."`` or the reason the run
was stopped (timeout, memory, process limit, output limit, too many files, network, no
isolation...).
"""

from __future__ import annotations

import ast
import hmac
import json
import math
import re
import secrets
from dataclasses import dataclass
from typing import Any

from ponder.config import Settings
from ponder.problem import Problem
from ponder.sandbox import (
    SandboxLimits,
    SandboxResult,
    SandboxUnavailable,
    run_python_async,
)
from ponder.verifiers.base import Verdict, Verifier
from ponder.verifiers.registry import Models, register

SPEC_KEYS = ("type", "tests", "timeout_s", "memory_mb")
OPTIONS = ("tests", "timeout_s", "memory_mb")
MAX_TESTS_BYTES = 100_000
MAX_ANSWER_BYTES = 100_000
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 0.1, 60.0
MIN_MEMORY_MB, MAX_MEMORY_MB = 32, 4096
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MEMORY_MB = 256
MAX_FEEDBACK_ERROR = 400

# The harness: main.py in the sandbox. It keeps its own references to what it needs, so
# a candidate that patches builtins or modules cannot change how results are written.
HARNESS = r"""
import json as _json, os as _os, sys as _sys, traceback as _tb


def _ponder_main(nonce):
    dumps, oopen, owrite, oclose = _json.dumps, _os.open, _os.write, _os.close
    flags = _os.O_WRONLY | _os.O_CREAT | _os.O_TRUNC
    fmt_only, extract_tb = _tb.format_exception_only, _tb.extract_tb
    base_exc = BaseException
    state = {"phase": "candidate", "running": None, "error": None, "results": []}

    def report(done):
        state["done"] = done
        data = dumps(dict(state, nonce=nonce)).encode()
        try:
            fd = oopen(".ponder-report", flags, 0o600)
            try:
                while data:
                    data = data[owrite(fd, data):]
            finally:
                oclose(fd)
        except base_exc:
            pass

    def describe(exc):
        try:
            if isinstance(exc, SyntaxError):
                return "SyntaxError: %s (%s, line %s)" % (exc.msg, exc.filename, exc.lineno)
            text = "".join(fmt_only(type(exc), exc)).strip()
            where = [f for f in extract_tb(exc.__traceback__)
                     if f.filename in ("candidate.py", "tests.py")]
            if where and not isinstance(exc, SyntaxError):
                text += " (%s, line %s)" % (where[-1].filename, where[-1].lineno)
            return text[:2000]
        except base_exc:
            return "an exception that could not be described"

    _sys.path.insert(0, _os.getcwd())
    report(False)
    module = type(_sys)("solution")
    module.__file__ = "candidate.py"
    try:
        with open("candidate.py", encoding="utf-8") as fh:
            code = compile(fh.read(), "candidate.py", "exec")
        _sys.modules["solution"] = _sys.modules["candidate"] = module
        exec(code, module.__dict__)
    except base_exc as exc:
        state["phase"], state["error"] = "candidate", describe(exc)
        report(True)
        return
    state["phase"] = "tests"
    namespace = dict(module.__dict__)
    namespace["__name__"] = "tests"
    try:
        with open("tests.py", encoding="utf-8") as fh:
            code = compile(fh.read(), "tests.py", "exec")
        exec(code, namespace)
    except base_exc as exc:
        state["phase"], state["error"] = "load", describe(exc)
        report(True)
        return
    tests = [(name, fn) for name, fn in list(namespace.items())
             if name.startswith("test_") and callable(fn)
             and getattr(getattr(fn, "__code__", None), "co_filename", "") == "tests.py"]
    for name, fn in tests:
        state["running"] = name
        report(False)
        try:
            fn()
            state["results"].append([name, True, ""])
        except base_exc as exc:
            state["results"].append([name, False, describe(exc)])
    state["running"] = None
    report(True)


_ponder_main(_sys.argv.pop(1))
"""


# --- the spec ----------------------------------------------------------------------------


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"python_tests option {name!r} must be a number, got {value!r}")
    return float(value)


def validate_python_tests_spec(spec: dict[str, Any]) -> None:
    """Raise ValueError, saying what to fix, if ``spec`` is not a valid python_tests spec."""
    if not isinstance(spec, dict):
        raise ValueError("the verifier spec must be an object")
    if spec.get("type", "python_tests") != "python_tests":
        raise ValueError(f"not a python_tests spec: type {spec.get('type')!r}")
    extra = sorted(set(spec) - set(SPEC_KEYS))
    if extra:
        raise ValueError(
            f"verifier 'python_tests' has no option(s) {extra}; its options are "
            + ", ".join(OPTIONS)
        )
    tests = spec.get("tests")
    if not isinstance(tests, str) or not tests.strip():
        raise ValueError("python_tests needs `tests`: non-empty Python source (a string)")
    if len(tests.encode("utf-8", "surrogatepass")) > MAX_TESTS_BYTES:
        raise ValueError(f"python_tests `tests` is longer than {MAX_TESTS_BYTES} bytes")
    try:
        tree = ast.parse(tests, "tests.py")
        compile(tree, "tests.py", "exec")
    except SyntaxError as exc:
        raise ValueError(
            f"python_tests `tests` has a syntax error at line {exc.lineno}: {exc.msg}"
        ) from None
    except ValueError as exc:  # e.g. NUL bytes
        raise ValueError(f"python_tests `tests` cannot be compiled: {exc}") from None
    if not find_test_names(tree) and not any(isinstance(n, ast.Assert) for n in ast.walk(tree)):
        raise ValueError("python_tests `tests` define no test_* function and no assert")
    if "timeout_s" in spec:
        timeout = _number("timeout_s", spec["timeout_s"])
        if not MIN_TIMEOUT_S <= timeout <= MAX_TIMEOUT_S:
            raise ValueError(
                f"python_tests `timeout_s` must be in {MIN_TIMEOUT_S}..{MAX_TIMEOUT_S}, "
                f"got {timeout:g}"
            )
    if "memory_mb" in spec:
        memory = spec["memory_mb"]
        if isinstance(memory, bool) or not isinstance(memory, int):
            raise ValueError(f"python_tests `memory_mb` must be an integer, got {memory!r}")
        if not MIN_MEMORY_MB <= memory <= MAX_MEMORY_MB:
            raise ValueError(
                f"python_tests `memory_mb` must be in {MIN_MEMORY_MB}..{MAX_MEMORY_MB}, "
                f"got {memory}"
            )


def find_test_names(tree: ast.Module) -> list[str]:
    """The ``test_*`` functions the tests define at top level, in order."""
    names = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    ]
    return list(dict.fromkeys(names))


# --- the answer ----------------------------------------------------------------------------

_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(answer: str) -> str:
    """The code in a model's answer: the longest ```python block, else the longest
    fenced block, else the whole text."""
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE_RE.finditer(answer)]
    python = [code for lang, code in blocks if lang in ("python", "py", "python3")]
    chosen = python or [code for lang, code in blocks if not lang]
    if chosen:
        return max(chosen, key=len)
    return answer


# --- the verdict -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Report:
    phase: str
    running: str | None
    error: str | None
    results: list[tuple[str, bool, str]]
    done: bool


def _read_report(raw: str | None, nonce: str) -> _Report | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("nonce"), str):
        return None
    if not hmac.compare_digest(data["nonce"], nonce):
        return None
    results: list[tuple[str, bool, str]] = []
    for item in data.get("results") or []:
        if isinstance(item, list) and len(item) == 3:
            results.append((str(item[0]), item[1] is True, str(item[2])))
    running = data.get("running")
    error = data.get("error")
    return _Report(
        phase=str(data.get("phase")),
        running=running if isinstance(running, str) else None,
        error=error if isinstance(error, str) else None,
        results=results,
        done=data.get("done") is True,
    )


def _hint(error: str, memory_mb: int) -> str:
    """Say which sandbox limit an exception most likely comes from."""
    if "MemoryError" in error:
        return f" (memory limit of {memory_mb} MB exceeded)"
    if any(m in error for m in ("Network is unreachable", "Errno 101", "Errno 111")):
        return " (network access is disabled)"
    if "can't start new thread" in error or "Resource temporarily unavailable" in error:
        return " (process limit reached)"
    if "File too large" in error:
        return " (file size limit exceeded)"
    if "No space left on device" in error:
        return " (disk space limit exceeded)"
    return ""


def _short(error: str, memory_mb: int) -> str:
    one = " ".join(error.split())
    if len(one) > MAX_FEEDBACK_ERROR:
        one = one[: MAX_FEEDBACK_ERROR - 3] + "..."
    return one + _hint(error, memory_mb)


def _stderr_tail(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return " ".join(lines[-1].split())[:MAX_FEEDBACK_ERROR] if lines else ""


def interpret(
    result: SandboxResult,
    nonce: str,
    expected_tests: list[str],
    *,
    timeout_s: float,
    memory_mb: int,
    max_processes: int,
    max_files: int = SandboxLimits.max_files,
) -> Verdict:
    """Turn a sandbox run of the harness into a verdict."""
    report = _read_report(result.report, nonce)
    results = report.results if report else []
    names = [name for name, _, _ in results]
    total = max(len(expected_tests), len(set(names)), 1)
    passed = len({name for name, ok, _ in results if ok})
    score = passed / total
    progress = f"{passed}/{total} tests passed"
    notes: list[str] = []
    if result.truncated:
        notes.append("output truncated")
    if not result.isolated:
        notes.append("ran WITHOUT isolation (sandbox_allow_unisolated)")
    suffix = "".join(f"; {note}" for note in notes)

    def verdict(ok: bool, text: str) -> Verdict:
        return Verdict(ok, 1.0 if ok else min(score, 1.0), text + suffix)

    stuck = f", stuck in {report.running}" if report and report.running else ""
    if result.killed_by == "setup":
        return Verdict(False, 0.0, f"the sandbox could not start: {result.setup_error}")
    if result.killed_by == "output":
        return verdict(False, f"killed: output limit exceeded ({progress} before that)")
    if result.killed_by == "files":
        return verdict(
            False, f"killed: more than {max_files} files in the working directory ({progress})"
        )
    if result.timed_out:
        limit_hit = (
            result.processes_at_kill is not None and result.processes_at_kill >= max_processes
        )
        reason = f"timed out after {timeout_s:g} s"
        if limit_hit:
            reason = f"killed: too many processes (limit {max_processes} reached); " + reason
        return verdict(False, f"{reason} ({progress}{stuck})")
    if result.killed_by == "cpu":
        return verdict(False, f"killed: CPU time limit exceeded ({progress}{stuck})")
    if result.killed_by is not None:
        how = result.killed_by.removeprefix("signal ")
        return verdict(False, f"killed by {how} ({progress}{stuck})")
    if report is None:
        tail = _stderr_tail(result.stderr)
        why = f": {_short(tail, memory_mb)}" if tail else ""
        return Verdict(
            False,
            0.0,
            f"0/{total} tests passed; the program exited (code {result.exit_code}) "
            f"without a valid test report{why}" + suffix,
        )
    if not report.done:
        return verdict(
            False,
            f"the program exited (code {result.exit_code}) before the tests finished "
            f"({progress}{stuck})",
        )
    if report.phase == "candidate" and report.error:
        return verdict(False, f"{progress}; the code raised {_short(report.error, memory_mb)}")
    if report.phase == "load" and report.error:
        return verdict(
            False, f"{progress}; the tests failed to load: {_short(report.error, memory_mb)}"
        )
    if not expected_tests and not results:  # plain asserts: loading the tests was the test
        return Verdict(True, 1.0, "1/1 tests passed" + suffix)
    missing = [name for name in expected_tests if name not in names]
    failures = [(name, err) for name, ok, err in results if not ok]
    if failures:
        name, err = failures[0]
        return verdict(False, f"{progress}; first failure: {name}: {_short(err, memory_mb)}")
    if missing:
        return verdict(False, f"{progress}; not run: {', '.join(missing[:5])}")
    return verdict(True, progress)


class PythonTestsVerifier:
    """Runs the candidate's code against ``tests`` in the sandbox."""

    name = "python_tests"
    OPTIONS = OPTIONS
    # the candidate is the whole completion: its code is taken from a fenced block
    reads_whole_completion = True

    def __init__(
        self,
        tests: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        memory_mb: int = DEFAULT_MEMORY_MB,
        *,
        settings: Settings | None = None,
    ) -> None:
        validate_python_tests_spec({"tests": tests, "timeout_s": timeout_s, "memory_mb": memory_mb})
        self.tests = tests
        self.timeout_s = float(timeout_s)
        self.memory_mb = memory_mb
        self.expected_tests = find_test_names(ast.parse(tests, "tests.py"))
        settings = settings or Settings()
        self.allow_unisolated = settings.sandbox_allow_unisolated
        self.limits = SandboxLimits(
            wall_s=self.timeout_s,
            memory_mb=memory_mb,
            file_size_mb=settings.sandbox_file_size_mb,
            max_processes=settings.sandbox_max_processes,
            max_output_bytes=settings.sandbox_max_output_bytes,
        )

    @classmethod
    def from_spec(
        cls, spec: dict[str, Any], settings: Settings | None = None
    ) -> PythonTestsVerifier:
        validate_python_tests_spec(spec)
        options = {k: spec[k] for k in OPTIONS if k in spec}
        return cls(**options, settings=settings)

    def program(self, code: str, nonce: str) -> tuple[str, dict[str, str], list[str]]:
        """(main.py source, files beside it, argv) of the run that checks ``code``."""
        return HARNESS, {"candidate.py": code, "tests.py": self.tests}, [nonce]

    def check_result(self, result: SandboxResult, nonce: str) -> Verdict:
        return interpret(
            result,
            nonce,
            self.expected_tests,
            timeout_s=self.timeout_s,
            memory_mb=self.memory_mb,
            max_processes=self.limits.max_processes,
            max_files=self.limits.max_files,
        )

    async def check(self, answer: str) -> Verdict:
        if not isinstance(answer, str) or not answer.strip():
            return Verdict(False, 0.0, "the answer holds no code")
        if len(answer.encode("utf-8", "surrogatepass")) > MAX_ANSWER_BYTES:
            return Verdict(False, 0.0, f"the answer is longer than {MAX_ANSWER_BYTES} bytes")
        code = extract_code(answer)
        nonce = secrets.token_hex(16)
        main, files, argv = self.program(code, nonce)
        try:
            result = await run_python_async(
                main,
                limits=self.limits,
                files=files,
                argv=argv,
                allow_unisolated=self.allow_unisolated,
            )
        except SandboxUnavailable as exc:
            return Verdict(False, 0.0, str(exc))
        return self.check_result(result, nonce)

    async def verify(self, problem: Problem, answer: str) -> Verdict:
        return await self.check(answer)


def check_spec(spec: dict[str, Any], problem: Problem, models: Models | None) -> None:
    validate_python_tests_spec(spec)


@register("python_tests", options=OPTIONS, check=check_spec)
def build(spec: dict[str, Any]) -> Verifier:
    return PythonTestsVerifier.from_spec(spec)
