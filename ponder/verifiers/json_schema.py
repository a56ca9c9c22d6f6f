"""The ``json_schema`` verifier: the answer must be JSON valid against a schema.

Spec: ``{"type": "json_schema", "schema": {...}}`` (any JSON Schema draft jsonschema
knows; ``$schema`` picks it, else the latest). The schema is checked at submit time
(``check_schema``; its ``pattern`` regexes under the same rules as the regex verifier).

The answer is read as JSON: the content of its first fenced block (```` ```json ````
or plain ```` ``` ````) when it has one, else the whole answer. Scores: 1.0 valid; 0.5
JSON that breaks the schema (the feedback names the first error's path, like
``$.items[2].price``, and its message); 0.0 not JSON. Adversarial answers are bounded:
at most :data:`MAX_ANSWER_CHARS` characters and :data:`MAX_DEPTH` levels of nesting are
read. Schema regexes (``pattern``, ``patternProperties``, and those that
``additionalProperties`` and ``unevaluatedProperties`` consult) are matched with RE2,
in linear time, like the regex verifier's. Validation runs in a long-lived checker
process (:class:`BoundedChecker`), killed and replaced when a check exceeds
:data:`VALIDATE_TIMEOUT_S` (a big instance against a costly schema: ``uniqueItems`` over
thousands of objects...); the verdict then fails with the reason, and the worker is
unharmed. A ``$ref`` to a URL is an error, never a network request.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import json
import math
import os
import select
import subprocess
import sys
import threading
from typing import IO, Any

from ponder.errors import ErrorCode, PonderError
from ponder.problem import Problem
from ponder.verifiers.base import Verdict, Verifier
from ponder.verifiers.regex import compile_pattern, translate_pattern
from ponder.verifiers.registry import Models, register

OPTIONS = ("schema",)
MAX_ANSWER_CHARS = 100_000
MAX_SCHEMA_CHARS = 100_000
MAX_DEPTH = 64
VALIDATE_TIMEOUT_S = 2.0


class CheckTimeout(PonderError):
    """A check ran past its time bound; the checker process was killed."""

    code = ErrorCode.UNCHECKABLE


class CheckerError(PonderError):
    """The checker process failed (could not start, died, or answered nonsense)."""

    code = ErrorCode.UNCHECKABLE


# --- the checker process ---------------------------------------------------------------

# Runs in the child: one JSON request per line on stdin, one JSON answer per line on
# stdout. It imports nothing from Ponder (fast to start, nothing to break) but the
# source of translate_pattern, so schema regexes read as the regex verifier's do.
_CHILD_SOURCE = (
    "import functools, json, string, sys, unicodedata\n"
    + inspect.getsource(translate_pattern)
    + r"""
_patched = []

def use_re2():
    # jsonschema's keywords call re.search(pattern, text): RE2 answers them instead,
    # in time linear in the text whatever the pattern
    import re2
    from jsonschema import _keywords, _legacy_keywords, _utils
    options = re2.Options()
    options.log_errors = False
    options.never_capture = True

    @functools.lru_cache(maxsize=256)
    def program(pattern):
        return re2.compile(translate_pattern(pattern, False), options)

    class RE2:
        @staticmethod
        def search(pattern, text, flags=0):
            return program(pattern).search(text)

    for module in (_keywords, _legacy_keywords, _utils):
        module.re = RE2
    _patched.append(True)

def json_schema(req):
    import referencing
    from jsonschema.validators import validator_for
    if not _patched:
        use_re2()
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

OPS = {"json_schema": json_schema}
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
)


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


# --- the verifier ------------------------------------------------------------------------


def extract_json_text(answer: str) -> str:
    """The JSON part of ``answer``: its first fenced code block, else all of it. Plain
    string scanning (no regex), linear in the answer's length."""
    start = answer.find("```")
    if start != -1:
        body = answer.find("\n", start + 3)
        if body != -1:
            end = answer.find("```", body + 1)
            if end != -1:
                return answer[body + 1 : end].strip()
    return answer.strip()


def depth(value: Any) -> int:
    """How deeply ``value`` nests arrays and objects (iteratively: no recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item)
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str) -> Any:
    """Strict JSON (no NaN/Infinity); ValueError saying why not."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None
    except ValueError as exc:
        raise ValueError(str(exc)[:200]) from None


def check_options(spec: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments ``spec`` asks for; ValueError saying what is wrong."""
    if "schema" not in spec:
        raise ValueError('the json_schema verifier needs a "schema" (a JSON Schema object)')
    schema = spec["schema"]
    if not isinstance(schema, dict | bool):
        raise ValueError(f"'schema' must be a JSON Schema object, got {type(schema).__name__}")
    try:
        size = len(json.dumps(schema, allow_nan=False))
    except (ValueError, TypeError, RecursionError):
        raise ValueError("'schema' must be plain JSON (no NaN or Infinity)") from None
    if size > MAX_SCHEMA_CHARS:
        raise ValueError(f"'schema' is {size} characters of JSON; at most {MAX_SCHEMA_CHARS}")
    if depth(schema) > MAX_DEPTH:
        raise ValueError(f"'schema' nests more than {MAX_DEPTH} levels deep")
    from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]
    from jsonschema.validators import validator_for  # type: ignore[import-untyped]

    try:
        cls = validator_for(schema)
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(the top level)"
        raise ValueError(
            f"'schema' is not a valid JSON Schema: at {where}: {exc.message[:300]}"
        ) from None
    except RecursionError:
        raise ValueError("'schema' is nested too deeply to check") from None
    _check_patterns(schema)
    return {"schema": schema}


def _check_patterns(schema: Any) -> None:
    """Schema regexes (``pattern``, ``patternProperties``) under the regex verifier's
    submit-time rules: RE2 must compile them."""
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            pattern = node.get("pattern")
            if isinstance(pattern, str):
                compile_pattern(pattern, what="'pattern' in the schema")
            props = node.get("patternProperties")
            if isinstance(props, dict):
                for key in props:
                    compile_pattern(key, what="key of 'patternProperties' in the schema")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


class JsonSchemaVerifier:
    """Passes when the answer is JSON valid against ``schema``."""

    name = "json_schema"

    def __init__(
        self,
        schema: dict[str, Any] | bool,
        *,
        checker: BoundedChecker | None = None,
        timeout_s: float = VALIDATE_TIMEOUT_S,
    ) -> None:
        self.schema = schema
        self._checker = checker or CHECKER
        self._timeout = timeout_s

    async def verify(self, problem: Problem, answer: str) -> Verdict:
        if len(answer) > MAX_ANSWER_CHARS:
            return Verdict(
                False,
                0.0,
                f"the answer is {len(answer)} characters long; at most {MAX_ANSWER_CHARS} "
                "are read as JSON",
            )
        try:
            instance = parse_json(extract_json_text(answer))
        except ValueError as exc:
            return Verdict(False, 0.0, f"the answer is not valid JSON: {exc}")
        if depth(instance) > MAX_DEPTH:
            return Verdict(False, 0.0, f"the answer's JSON nests more than {MAX_DEPTH} levels deep")
        if isinstance(instance, float) and not math.isfinite(instance):  # pragma: no cover
            return Verdict(False, 0.0, "the answer is not valid JSON")
        request = {"op": "json_schema", "schema": self.schema, "instance": instance}
        try:
            reply = await self._checker.acall(request, self._timeout)
        except CheckTimeout:
            return Verdict(
                False,
                0.5,
                f"valid JSON, but checking it against the schema took longer than "
                f"{self._timeout:g} s and was stopped",
            )
        except CheckerError as exc:
            return Verdict(False, 0.5, f"valid JSON, but it could not be checked: {exc}")
        if "error" in reply:
            return Verdict(False, 0.5, f"valid JSON, but it could not be checked: {reply['error']}")
        if reply.get("valid"):
            return Verdict(True, 1.0, "valid against the schema")
        return Verdict(
            False,
            0.5,
            f"valid JSON, but not valid against the schema: at {reply.get('path', '$')}: "
            f"{reply.get('message', '')}",
        )


def check_spec(spec: dict[str, Any], problem: Problem, models: Models | None) -> None:
    check_options(spec)


@register("json_schema", options=OPTIONS, check=check_spec)
def build(spec: dict[str, Any]) -> Verifier:
    return JsonSchemaVerifier(**check_options(spec))
