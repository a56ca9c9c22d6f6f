"""The ``regex`` verifier, and the time-bounded checker process it shares with
``json_schema``.

Spec::

    {"type": "regex", "pattern": "^[A-D]$", "flags": ["IGNORECASE"], "full_match": true}

``full_match`` (default true) requires the whole answer (surrounding whitespace
stripped) to match; false passes when the pattern matches anywhere in it. ``flags`` are
names of :mod:`re` flags: IGNORECASE, MULTILINE, DOTALL, VERBOSE, ASCII.

Patterns come from users and answers from models, and Python's regex engine backtracks:
``(a+)+$`` against thirty ``a``s and a ``b`` runs for minutes, holding the GIL so no
thread timeout can stop it. So:

- at submit time a pattern must compile, be at most :data:`MAX_PATTERN_CHARS` long and
  must not repeat a repetition (``(a+)+``, ``(?:\\w*)*``: exponential backtracking);
- answers longer than :data:`MAX_ANSWER_CHARS` fail without being matched;
- every match runs in a separate, long-lived checker process (:class:`BoundedChecker`)
  that is killed (and replaced on the next call) when a match exceeds
  :data:`MATCH_TIMEOUT_S`; the verdict then fails with a reason, and the worker is
  unharmed.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import re
import select
import subprocess
import sys
import threading
from typing import IO, Any

from ponder.errors import ErrorCode, PonderError
from ponder.problem import Problem
from ponder.verifiers.base import Verdict, Verifier
from ponder.verifiers.registry import Models, register

OPTIONS = ("pattern", "flags", "full_match")
MAX_PATTERN_CHARS = 1_000
MAX_ANSWER_CHARS = 10_000
MATCH_TIMEOUT_S = 1.0
FLAGS: dict[str, re.RegexFlag] = {
    "IGNORECASE": re.IGNORECASE,
    "MULTILINE": re.MULTILINE,
    "DOTALL": re.DOTALL,
    "VERBOSE": re.VERBOSE,
    "ASCII": re.ASCII,
}


class CheckTimeout(PonderError):
    """A check ran past its time bound; the checker process was killed."""

    code = ErrorCode.UNCHECKABLE


class CheckerError(PonderError):
    """The checker process failed (could not start, died, or answered nonsense)."""

    code = ErrorCode.UNCHECKABLE


# --- the checker process ---------------------------------------------------------------

# Runs in the child: one JSON request per line on stdin, one JSON answer per line on
# stdout. It imports nothing from Ponder (fast to start, nothing to break).
_CHILD_SOURCE = r"""
import json, re, sys

def regex(req):
    flags = 0
    for name in req["flags"]:
        flags |= getattr(re, name)
    compiled = re.compile(req["pattern"], flags)
    text = req["text"]
    found = compiled.fullmatch(text) if req["full_match"] else compiled.search(text)
    return {"matched": found is not None}

def json_schema(req):
    import referencing
    from jsonschema.validators import validator_for
    schema = req["schema"]
    cls = validator_for(schema)
    # an empty registry: a "$ref" to a URL is an error, never a network request
    validator = cls(schema, registry=referencing.Registry())
    error = next(iter(validator.iter_errors(req["instance"])), None)
    if error is None:
        return {"valid": True}
    path = "$" + "".join(
        f"[{p}]" if isinstance(p, int) else "." + str(p) for p in error.absolute_path
    )
    return {"valid": False, "path": path, "message": error.message[:500]}

OPS = {"regex": regex, "json_schema": json_schema}
for line in sys.stdin.buffer:
    try:
        req = json.loads(line)
        out = OPS[req["op"]](req)
    except RecursionError:
        out = {"error": "the input is nested too deeply to check"}
    except Exception as exc:
        out = {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
"""


class BoundedChecker:
    """A child process that runs checks one at a time under a wall-clock bound.

    Thread-safe (calls are serialized); started on first use, replaced after a timeout
    or a crash, and restarted in a forked process (it belongs to the pid that made it).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = os.getpid()

    def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        if os.getpid() != self._pid:  # forked: the process (and lock) are the parent's
            self._lock, self._proc, self._pid = threading.Lock(), None, os.getpid()
        line = (json.dumps(request) + "\n").encode()
        with self._lock:
            proc = self._ensure()
            stdin, stdout = _pipes(proc)
            try:
                stdin.write(line)
                stdin.flush()
            except OSError:
                self._kill()
                raise CheckerError("the checker process is gone") from None
            ready, _, _ = select.select([stdout], [], [], timeout)
            if not ready:
                self._kill()
                raise CheckTimeout(f"the check took longer than {timeout:g} s")
            reply = stdout.readline()
            if not reply:
                self._kill()
                raise CheckerError("the checker process died")
            try:
                answer = json.loads(reply)
            except ValueError:
                self._kill()
                raise CheckerError("the checker process answered nonsense") from None
        if not isinstance(answer, dict):
            raise CheckerError("the checker process answered nonsense")
        return answer

    async def acall(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        return await asyncio.to_thread(self.call, request, timeout)

    def close(self) -> None:
        if os.getpid() == self._pid:
            with self._lock:
                self._kill()

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-c", _CHILD_SOURCE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={},
                close_fds=True,
            )
        except OSError as exc:
            raise CheckerError(f"cannot start the checker process: {exc}") from None
        return self._proc

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def _pipes(proc: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes]]:
    assert proc.stdin is not None and proc.stdout is not None
    return proc.stdin, proc.stdout


CHECKER = BoundedChecker()
atexit.register(CHECKER.close)


# --- submit-time checks ------------------------------------------------------------------


def _repeat_codes() -> tuple[Any, ...]:
    from re import _constants as c  # type: ignore[attr-defined]

    return (c.MAX_REPEAT, c.MIN_REPEAT)


def _children(op: Any, av: Any) -> list[Any]:
    """The sub-patterns of one parsed item (``re._parser`` tuples)."""
    from re import _constants as c  # type: ignore[attr-defined]

    if op in _repeat_codes():
        return [av[2]]
    if op is c.SUBPATTERN:
        return [av[3]]
    if op is c.BRANCH:
        return list(av[1])
    if op in (c.ASSERT, c.ASSERT_NOT):
        return [av[1]]
    if op is c.GROUPREF_EXISTS:
        return [x for x in av[1:] if x is not None]
    if op is getattr(c, "ATOMIC_GROUP", None):
        return [av]
    if op is getattr(c, "POSSESSIVE_REPEAT", None):
        return [av[2]]
    return []


def _is_variable_repeat(item: tuple[Any, Any]) -> bool:
    op, av = item
    return op in _repeat_codes() and av[0] != av[1]


def _sole_item(sub: Any) -> tuple[Any, Any] | None:
    """The one item ``sub`` consists of, looking through plain groups."""
    from re import _constants as c  # type: ignore[attr-defined]

    items = list(sub)
    while len(items) == 1 and items[0][0] is c.SUBPATTERN:
        items = list(items[0][1][3])
    return items[0] if len(items) == 1 else None


def _nested_repeat(sub: Any) -> bool:
    """Whether a variable repetition repeats (only) another variable repetition."""
    for op, av in sub:
        if op in _repeat_codes() and av[0] != av[1]:
            inner = _sole_item(av[2])
            if inner is not None and _is_variable_repeat(inner):
                return True
            branches = inner[1][1] if inner is not None and inner[0] is _branch() else []
            if any(_sole_repeat(b) for b in branches):
                return True
        if any(_nested_repeat(child) for child in _children(op, av)):
            return True
    return False


def _branch() -> Any:
    from re import _constants as c  # type: ignore[attr-defined]

    return c.BRANCH


def _sole_repeat(sub: Any) -> bool:
    item = _sole_item(sub)
    return item is not None and _is_variable_repeat(item)


def compile_pattern(pattern: Any, flags: Any = None, *, what: str = "pattern") -> re.Pattern[str]:
    """Compile a user's pattern under the limits above; ValueError saying what to fix."""
    if not isinstance(pattern, str):
        raise ValueError(f"the regex {what} must be a string, got {type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(
            f"the regex {what} is {len(pattern)} characters long; at most "
            f"{MAX_PATTERN_CHARS} are allowed"
        )
    value = 0
    for name in flags or []:
        value |= FLAGS[name]
    try:
        compiled = re.compile(pattern, value)
    except re.error as exc:
        raise ValueError(f"the regex {what} {pattern!r} does not compile: {exc}") from None
    except (RecursionError, OverflowError):
        raise ValueError(f"the regex {what} is too complex to compile") from None
    from re import _parser  # type: ignore[attr-defined]

    try:
        parsed = _parser.parse(pattern, value)
    except (re.error, RecursionError):  # pragma: no cover - compiled fine above
        raise ValueError(f"the regex {what} is too complex to analyse") from None
    if _nested_repeat(parsed):
        raise ValueError(
            f"the regex {what} {pattern!r} repeats a repetition (like (a+)+ or (a|b*)*), "
            "which can take exponential time to match; use a single quantifier (a+) or "
            "make the inner part unambiguous"
        )
    return compiled


def check_options(spec: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments ``spec`` asks for; ValueError saying what is wrong."""
    if "pattern" not in spec:
        raise ValueError('the regex verifier needs a "pattern" (a Python regular expression)')
    flags = spec.get("flags", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise ValueError(
            f"verifier option 'flags' must be a list of flag names ({', '.join(FLAGS)})"
        )
    unknown = [f for f in flags if f.upper() not in FLAGS]
    if unknown:
        raise ValueError(f"unknown regex flag(s) {unknown}; the flags are {', '.join(FLAGS)}")
    flags = sorted({f.upper() for f in flags})
    full_match = spec.get("full_match", True)
    if not isinstance(full_match, bool):
        raise ValueError(f"verifier option 'full_match' must be true or false, got {full_match!r}")
    compile_pattern(spec["pattern"], flags)
    return {"pattern": spec["pattern"], "flags": flags, "full_match": full_match}


class RegexVerifier:
    """Passes when the answer matches the pattern (whole answer unless ``full_match``
    is false)."""

    name = "regex"

    def __init__(
        self,
        pattern: str,
        flags: list[str] | None = None,
        full_match: bool = True,
        *,
        checker: BoundedChecker | None = None,
        timeout_s: float = MATCH_TIMEOUT_S,
    ) -> None:
        self.flags = sorted({f.upper() for f in flags or []})
        compile_pattern(pattern, self.flags)
        self.pattern = pattern
        self.full_match = full_match
        self._checker = checker or CHECKER
        self._timeout = timeout_s

    async def verify(self, problem: Problem, answer: str) -> Verdict:
        text = answer.strip() if self.full_match else answer
        if len(text) > MAX_ANSWER_CHARS:
            return Verdict(
                False,
                0.0,
                f"the answer is {len(text)} characters long; at most {MAX_ANSWER_CHARS} "
                "are matched",
            )
        request = {
            "op": "regex",
            "pattern": self.pattern,
            "flags": self.flags,
            "full_match": self.full_match,
            "text": text,
        }
        try:
            reply = await self._checker.acall(request, self._timeout)
        except CheckTimeout:
            return Verdict(
                False,
                0.0,
                f"matching took longer than {self._timeout:g} s and was stopped (the pattern "
                "backtracks too much on this answer); counted as no match",
            )
        except CheckerError as exc:
            return Verdict(False, 0.0, f"the answer could not be matched: {exc}")
        if "error" in reply:
            return Verdict(False, 0.0, f"the answer could not be matched: {reply['error']}")
        if reply.get("matched"):
            return Verdict(True, 1.0, "matches the pattern")
        how = "the whole answer does not match" if self.full_match else "no match in the answer"
        return Verdict(False, 0.0, f"{how} the pattern {_shown(self.pattern)}")


def _shown(pattern: str) -> str:
    return repr(pattern if len(pattern) <= 80 else pattern[:77] + "...")


def check_spec(spec: dict[str, Any], problem: Problem, models: Models | None) -> None:
    check_options(spec)


@register("regex", options=OPTIONS, check=check_spec)
def build(spec: dict[str, Any]) -> Verifier:
    return RegexVerifier(**check_options(spec))
