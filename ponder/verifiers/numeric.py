"""Numeric answers: compare a candidate's number with the problem's ``expected`` value.

The answer is untrusted text, so it is read with a small, linear-time extractor — never
``eval`` and never ``float()`` on unbounded input — into an exact
:class:`fractions.Fraction`:

- the number is the **last** one in the text ("so the answer is 42 apples" → 42), or the
  content of the last ``\\boxed{...}`` when there is one;
- ``1,234,567`` (thousands separators, groups of three), decimals, ``1.5e3``, negatives
  (``-5``, ``−5``), fractions ``3/4``, mixed numbers ``2 1/2``, LaTeX
  ``\\frac{3}{4}`` / ``\\dfrac`` / ``\\tfrac``, ``$...$``, ``**bold**``, ``\\text{..}``;
- ``50%`` matches an expected ``50`` or ``0.5`` (and an expected ``"50%"`` matches an
  answer of ``50`` or ``0.5``).

Spec: ``{"type": "numeric", "rel_tol": 1e-6, "abs_tol": 1e-9}``; the problem needs a
numeric ``expected``. Comparison is :func:`math.isclose`-style with ``rel_tol`` /
``abs_tol``. Scores: 1.0 when it matches; a wrong number scores in ``[0, 0.5)``,
shrinking as the relative error grows (so search and refinement get a gradient); no
readable number scores 0.0 with feedback saying why. The feedback never reveals the
expected value.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ponder.errors import ErrorCode, PonderError
from ponder.problem import Problem
from ponder.verifiers.base import Verdict, Verifier
from ponder.verifiers.registry import Models, register

DEFAULT_REL_TOL = 1e-6
DEFAULT_ABS_TOL = 1e-9
MAX_ANSWER_CHARS = 10_000
MAX_DIGITS = 200  # per number: a longer digit run is not an answer, it is an attack
MAX_EXPONENT = 1_000
MAX_BRACE_DEPTH = 20


class NumberError(PonderError, ValueError):
    """The text holds no readable number; the message says why."""

    code = ErrorCode.UNCHECKABLE


@dataclass(frozen=True)
class ParsedNumber:
    value: Fraction
    percent: bool = False

    def candidates(self) -> list[Fraction]:
        """The values this reading may stand for: ``50%`` is 50 or 0.5."""
        return [self.value, self.value / 100] if self.percent else [self.value]

    def canonical(self) -> str:
        """A normal form, so equal answers vote together: ``1,000`` and ``1000.0``
        both read ``1000``; non-integers are exact decimals or ``a/b``."""
        text = format_fraction(self.value)
        return f"{text}%" if self.percent else text


def format_fraction(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den == 1 and max(twos, fives) <= 30:  # a terminating decimal: write it out
        places = max(twos, fives)
        scaled = abs(value.numerator) * 10**places // value.denominator
        digits = str(scaled).rjust(places + 1, "0")
        sign = "-" if value < 0 else ""
        return f"{sign}{digits[:-places]}.{digits[-places:]}"
    return f"{value.numerator}/{value.denominator}"


# --- text clean-up --------------------------------------------------------------------

_REPLACEMENTS = {"\u2212": "-", "\ufe63": "-", "\u2012": "-", "\u2044": "/", "\u2215": "/"}
_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{([^{}]{1,300})\}\s*\{([^{}]{1,300})\}")
_TEXT_RE = re.compile(r"\\(?:text|mathrm|textbf|mathbf)\s*\{([^{}]{0,300})\}")
_LATEX_SPACES_RE = re.compile(r"\\[,!;: ]|~")
_LATEX_WORD_RE = re.compile(r"\\(?:left|right|displaystyle)\b")


def _last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox``), braces balanced."""
    at = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if at == -1:
        return None
    start = text.find("{", at)
    if start == -1 or text[at:start].rstrip() not in ("\\boxed", "\\fbox"):
        return None
    depth = 0
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "{":
            depth += 1
            if depth > MAX_BRACE_DEPTH:
                return None
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    return None  # unbalanced


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    for ch, repl in _REPLACEMENTS.items():
        text = text.replace(ch, repl)
    boxed = _last_boxed(text)
    if boxed is not None:
        text = boxed
    text = _TEXT_RE.sub(r" \1 ", text)
    text = _FRAC_RE.sub(r"(\1)/(\2)", text)
    text = _LATEX_SPACES_RE.sub("", text)
    text = _LATEX_WORD_RE.sub("", text)
    text = text.replace("\\%", "%").replace("\\$", " ").replace("$", " ")
    text = text.replace("**", " ").replace("`", " ")
    # "(3)/(4)" from \frac: drop parentheses hugging a plain number
    return re.sub(r"\(\s*(-?[0-9.,]{1,250})\s*\)", r"\1", text)


# --- the extractor --------------------------------------------------------------------

_NUM = r"(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+"
_TOKEN_RE = re.compile(
    r"(?<![\w.])(?P<sign>[-+])?"
    r"(?:(?P<whole>[0-9]+)[ \t]{1,3}(?=[0-9]+[ \t]{0,3}/[ \t]{0,3}[0-9]))?"
    rf"(?P<a>{_NUM})(?:[eE](?P<exp>[-+]?[0-9]+))?"
    rf"(?:[ \t]{{0,3}}/[ \t]{{0,3}}(?P<b>{_NUM}))?"
    r"(?P<pct>[ \t]{0,3}%)?"
)


def _to_fraction(digits: str, exponent: str | None = None) -> Fraction:
    plain = digits.replace(",", "")
    if len(plain) > MAX_DIGITS:
        raise NumberError(f"a number with more than {MAX_DIGITS} digits is not an answer")
    value = Fraction(plain)
    if exponent is not None:
        power = int(exponent) if len(exponent.lstrip("+-")) <= 6 else MAX_EXPONENT + 1
        if abs(power) > MAX_EXPONENT:
            raise NumberError(f"exponent {exponent} is out of range (at most ±{MAX_EXPONENT})")
        value *= Fraction(10) ** power
    return value


def parse_number(text: str) -> ParsedNumber:
    """The number ``text`` states (see the module notes), or :class:`NumberError`."""
    if not isinstance(text, str):
        raise NumberError("the answer must be text")
    if len(text) > MAX_ANSWER_CHARS:
        raise NumberError(
            f"the answer is {len(text)} characters long; at most {MAX_ANSWER_CHARS} are read"
        )
    cleaned = _clean(text)
    match = None
    for match in _TOKEN_RE.finditer(cleaned):  # noqa: B007 - we want the last one
        pass
    if match is None:
        raise NumberError("no number found in the answer")
    value = _to_fraction(match["a"], match["exp"])
    if match["b"] is not None:
        denominator = _to_fraction(match["b"])
        if denominator == 0:
            raise NumberError("the answer divides by zero")
        fraction = value / denominator
        whole = match["whole"]
        if whole is not None and match["exp"] is None and 0 <= fraction < 1:
            value = _to_fraction(whole) + fraction  # a mixed number: "2 1/2"
        else:
            value = fraction
    if match["sign"] == "-":
        value = -value
    return ParsedNumber(value, percent=match["pct"] is not None)


def parse_expected(expected: Any) -> ParsedNumber:
    """The problem's ``expected`` as a number, or :class:`NumberError` saying why."""
    if expected is None:
        raise NumberError("the numeric verifier needs `problem.expected`")
    if isinstance(expected, bool):
        raise NumberError("`problem.expected` must be a number, not a boolean")
    if isinstance(expected, int):
        return ParsedNumber(Fraction(expected))
    if isinstance(expected, float):
        if not math.isfinite(expected):
            raise NumberError("`problem.expected` must be a finite number")
        return ParsedNumber(Fraction(repr(expected)))  # 0.1 means 1/10, not its binary
    if isinstance(expected, str):
        try:
            return parse_number(expected)
        except NumberError as exc:
            raise NumberError(f"`problem.expected` is not a number: {exc}") from None
    raise NumberError(
        f"`problem.expected` must be a number or numeric text, got {type(expected).__name__}"
    )


def _close(a: Fraction, b: Fraction, rel_tol: Fraction, abs_tol: Fraction) -> bool:
    return abs(a - b) <= max(rel_tol * max(abs(a), abs(b)), abs_tol)


def _relative_error(answer: Fraction, expected: Fraction) -> Fraction:
    scale = abs(expected) if expected != 0 else Fraction(1)
    return abs(answer - expected) / scale


def partial_score(rel_error: Fraction) -> float:
    """Credit in ``[0, 0.5)`` for a wrong number: 0.45 at 2.5% off, 0.25 at 25%, → 0."""
    if rel_error > 10**9:
        return 0.0
    score = 0.5 / (1.0 + 4.0 * float(rel_error))
    return min(score, 0.499)


def _check_tolerance(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"verifier option {name!r} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"verifier option {name!r} must be a finite number ≥ 0, got {value!r}")
    if name == "rel_tol" and value >= 1:
        raise ValueError(f"verifier option 'rel_tol' must be below 1 (a fraction), got {value!r}")
    return float(value)


class NumericVerifier:
    """Passes when the answer's number is within tolerance of ``problem.expected``."""

    name = "numeric"
    OPTIONS = ("rel_tol", "abs_tol")

    def __init__(self, rel_tol: float = DEFAULT_REL_TOL, abs_tol: float = DEFAULT_ABS_TOL) -> None:
        self.rel_tol = _check_tolerance("rel_tol", rel_tol)
        self.abs_tol = _check_tolerance("abs_tol", abs_tol)

    def check(self, expected: Any, answer: str) -> Verdict:
        """Judge ``answer`` against ``expected``. Pure and total: never raises."""
        try:
            want = parse_expected(expected)
        except NumberError as exc:
            return Verdict(False, 0.0, str(exc))
        try:
            got = parse_number(answer)
        except NumberError as exc:
            return Verdict(False, 0.0, f"cannot read a number: {exc}")
        rel, abs_ = Fraction(repr(self.rel_tol)), Fraction(repr(self.abs_tol))
        pairs = [(g, w) for g in got.candidates() for w in want.candidates()]
        if any(_close(g, w, rel, abs_) for g, w in pairs):
            return Verdict(True, 1.0, "correct")
        error = min(_relative_error(g, w) for g, w in pairs)
        shown = got.canonical()
        if len(shown) > 40:
            shown = shown[:37] + "..."
        return Verdict(False, partial_score(error), f"{shown} is not the expected answer")

    async def verify(self, problem: Problem, answer: str) -> Verdict:
        return self.check(problem.expected, answer)


def _options(spec: dict[str, Any]) -> dict[str, Any]:
    options = {k: spec[k] for k in NumericVerifier.OPTIONS if k in spec}
    NumericVerifier(**options)  # checks the options
    return options


def check_spec(spec: dict[str, Any], problem: Problem, models: Models | None) -> None:
    _options(spec)
    try:
        parse_expected(problem.expected)
    except NumberError as exc:
        raise ValueError(str(exc)) from None


@register("numeric", options=NumericVerifier.OPTIONS, check=check_spec, needs_expected=True)
def build(spec: dict[str, Any]) -> Verifier:
    return NumericVerifier(**_options(spec))
