"""The ``regex`` verifier, and the rules every user regex follows (``json_schema``'s
``pattern`` and ``patternProperties`` too).

Spec::

    {"type": "regex", "pattern": "^[A-D]$", "flags": ["IGNORECASE"], "full_match": true}

``full_match`` (default true) requires the whole answer (surrounding whitespace
stripped) to match; false passes when the pattern matches anywhere in it. ``flags`` are
IGNORECASE, MULTILINE, DOTALL, VERBOSE and ASCII (Python's names).

Patterns come from users and answers from models, so patterns are matched with **RE2**
(the google-re2 bindings): its matching time is linear in the answer's length whatever
the pattern, so ``(a+)+$``, ``(a|aa)+$`` or ``(.*){25}x`` answer in milliseconds on a
long near-miss where Python's backtracking engine would run for minutes. No pattern
needs screening and no match needs a time limit: matching runs in the worker itself.

RE2's syntax is Python's without the features that need backtracking: backreferences
(``\\1``, ``(?P=name)``), lookahead and lookbehind, atomic groups, possessive
quantifiers, conditionals and ``(?#...)`` comments. A pattern using one is refused at
submit time with the feature named (a 422). Unlike Python's default, ``\\w``, ``\\d``,
``\\s`` and ``\\b`` are ASCII-only, as under Python's ASCII flag (accepted; it changes
nothing); ``\\pL``, ``\\p{Greek}`` or ``[[:alpha:]]`` are RE2's Unicode and POSIX
classes. Python's ``\\Z``, ``\\uXXXX``, ``\\UXXXXXXXX``, ``\\N{NAME}`` and VERBOSE's
whitespace and ``#`` comments are translated to RE2.

Bounds: a pattern has at most :data:`MAX_PATTERN_CHARS` characters (and RE2's own
limits: repetition counts up to 1000, 8 MiB of compiled program); answers longer than
:data:`MAX_ANSWER_CHARS` fail without being matched.
"""

from __future__ import annotations

import functools
import string
import unicodedata
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type hints

from ponder.problem import Problem
from ponder.verifiers.base import Verdict, Verifier
from ponder.verifiers.registry import Models, register

OPTIONS = ("pattern", "flags", "full_match")
MAX_PATTERN_CHARS = 1_000
MAX_ANSWER_CHARS = 10_000
FLAGS = ("IGNORECASE", "MULTILINE", "DOTALL", "VERBOSE", "ASCII")
_INLINE = {"IGNORECASE": "i", "MULTILINE": "m", "DOTALL": "s"}  # RE2's (?ims)

# RE2's parse errors for what it lacks, and how to say it
_UNSUPPORTED = (
    ("invalid perl operator: (?=", "lookahead (?=...)"),
    ("invalid perl operator: (?!", "negative lookahead (?!...)"),
    ("invalid perl operator: (?<=", "lookbehind (?<=...)"),
    ("invalid perl operator: (?<!", "negative lookbehind (?<!...)"),
    ("invalid perl operator: (?P", "named backreferences (?P=name)"),
    ("invalid perl operator: (?>", "atomic groups (?>...)"),
    ("invalid perl operator: (?(", "conditionals (?(1)...)"),
    ("invalid perl operator: (?#", "comments (?#...)"),
    ("invalid escape sequence: \\k", "named backreferences \\k<name>"),
    ("invalid escape sequence: \\g", "references \\g<...>"),
)


def _unsupported(error: str) -> str | None:
    for prefix, feature in _UNSUPPORTED:
        if error.startswith(prefix):
            return feature
    if error.startswith("invalid escape sequence: \\") and error[-1:].isdigit():
        return f"backreferences ({error.rsplit(' ', 1)[-1]})"
    if error.startswith("bad repetition operator: ") and error.endswith("+"):
        return f"possessive quantifiers ({error.rsplit(' ', 1)[-1]})"
    return None


def translate_pattern(pattern: str, verbose: bool) -> str:
    """Python's spellings RE2 lacks, in RE2's: ``\\Z``, ``\\u``, ``\\U``, ``\\N{...}``,
    and (VERBOSE) whitespace and comments outside character classes dropped.
    Self-contained (``string`` and ``unicodedata`` only): json_schema's checker process
    runs its source."""
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        char = pattern[i]
        if char == "\\" and i + 1 < n:
            escape, i = pattern[i + 1], i + 2
            width = {"u": 4, "U": 8}.get(escape, 0)
            digits = pattern[i : i + width]
            if escape == "Z":
                out.append("\\z")
            elif width and len(digits) == width and all(d in string.hexdigits for d in digits):
                out.append("\\x{" + digits + "}")
                i += width
            elif escape == "N" and pattern.startswith("{", i) and "}" in pattern[i:]:
                end = pattern.index("}", i)
                name = pattern[i + 1 : end]
                try:
                    out.append(f"\\x{{{ord(unicodedata.lookup(name)):x}}}")
                except KeyError:
                    raise ValueError(f"unknown Unicode character name \\N{{{name}}}") from None
                i = end + 1
            else:
                out.append("\\" + escape)
            continue
        i += 1
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern.startswith("^", i):  # [^ and a ] right after [ or [^ are literal
                out.append("[^")
                char, i = "", i + 1
            if pattern.startswith("]", i):
                out.append(char + "]")
                char, i = "", i + 1
        elif verbose and char in " \t\n\r\v\f":
            continue
        elif verbose and char == "#":
            end = pattern.find("\n", i)
            i = n if end == -1 else end + 1
            continue
        out.append(char)
    return "".join(out)


def compile_pattern(pattern: Any, flags: tuple[str, ...] = (), *, what: str = "pattern") -> Any:
    """The RE2 program for a user's pattern; ValueError saying what to fix. ``flags``
    are names from :data:`FLAGS`."""
    if not isinstance(pattern, str):
        raise ValueError(f"the regex {what} must be a string, got {type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(
            f"the regex {what} is {len(pattern)} characters long; at most "
            f"{MAX_PATTERN_CHARS} are allowed"
        )
    return _compile(pattern, tuple(sorted(set(flags))), what)


@functools.lru_cache(maxsize=256)
def _compile(pattern: str, flags: tuple[str, ...], what: str) -> Any:
    try:
        source = translate_pattern(pattern, "VERBOSE" in flags)
    except ValueError as exc:
        raise ValueError(f"the regex {what} {_shown(pattern)} does not compile: {exc}") from None
    inline = "".join(sorted(_INLINE[f] for f in flags if f in _INLINE))
    if inline:
        source = f"(?{inline}){source}"
    options = re2.Options()
    options.log_errors = False  # the error comes back as the exception instead
    options.never_capture = True  # only "does it match": no submatches to track
    try:
        return re2.compile(source, options)
    except re2.error as exc:
        error = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        feature = _unsupported(error)
        if feature:
            raise ValueError(
                f"the regex {what} {_shown(pattern)} uses {feature}, which RE2 does not "
                "support (patterns are matched with RE2, in linear time: no backreferences, "
                "lookaround, atomic groups or possessive quantifiers)"
            ) from None
        raise ValueError(f"the regex {what} {_shown(pattern)} does not compile: {error}") from None


def check_options(spec: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments ``spec`` asks for; ValueError saying what is wrong."""
    if "pattern" not in spec:
        raise ValueError('the regex verifier needs a "pattern" (an RE2 regular expression)')
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
    compile_pattern(spec["pattern"], tuple(flags))
    return {"pattern": spec["pattern"], "flags": flags, "full_match": full_match}


class RegexVerifier:
    """Passes when the answer matches the pattern (whole answer unless ``full_match``
    is false)."""

    name = "regex"

    def __init__(
        self, pattern: str, flags: list[str] | None = None, full_match: bool = True
    ) -> None:
        self.flags = sorted({f.upper() for f in flags or []})
        self._compiled = compile_pattern(pattern, tuple(self.flags))
        self.pattern = pattern
        self.full_match = full_match

    def matches(self, text: str) -> bool:
        """Linear in ``len(text)``: RE2 never backtracks."""
        if self.full_match:
            return self._compiled.fullmatch(text) is not None
        return self._compiled.search(text) is not None

    async def verify(self, problem: Problem, answer: str) -> Verdict:
        text = answer.strip() if self.full_match else answer
        if len(text) > MAX_ANSWER_CHARS:
            return Verdict(
                False,
                0.0,
                f"the answer is {len(text)} characters long; at most {MAX_ANSWER_CHARS} "
                "are matched",
            )
        if self.matches(text):
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
