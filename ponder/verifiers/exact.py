"""The ``exact`` verifier: normalized string equality with ``problem.expected``.

Spec: ``{"type": "exact", "case_sensitive": false}``; the problem needs ``expected``.
The answer and the problem's ``expected`` are compared after Unicode NFKC
normalization, collapsing runs of whitespace to one space and trimming surrounding
whitespace, dots, backticks and ``$``; letters are folded to lower case unless
``case_sensitive`` is true.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from ponder.problem import Problem
from ponder.verifiers.base import Verdict, Verifier
from ponder.verifiers.registry import Models, register

OPTIONS = ("case_sensitive",)
# Longer answers are not compared (normalizing megabytes of text per candidate is
# wasted work: no expected answer is that long).
MAX_ANSWER_CHARS = 100_000

_SPACES_RE = re.compile(r"\s+")


def normalize(text: str, *, case_sensitive: bool = False) -> str:
    text = unicodedata.normalize("NFKC", text).strip()
    if not case_sensitive:
        text = text.casefold()
    text = _SPACES_RE.sub(" ", text)
    return text.strip(" .`$")


def check_options(spec: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments ``spec`` asks for; ValueError saying what is wrong."""
    value = spec.get("case_sensitive", False)
    if not isinstance(value, bool):
        raise ValueError(f"verifier option 'case_sensitive' must be true or false, got {value!r}")
    return {"case_sensitive": value}


class ExactVerifier:
    """Passes when the answer equals the problem's ``expected`` (normalized text)."""

    name = "exact"

    def __init__(self, *, case_sensitive: bool = False) -> None:
        self.case_sensitive = case_sensitive

    def check(self, expected: Any, answer: str) -> Verdict:
        if expected is None:
            return Verdict(False, 0.0, "the problem has no `expected` answer to compare with")
        if len(answer) > MAX_ANSWER_CHARS:
            return Verdict(
                False,
                0.0,
                f"the answer is {len(answer)} characters long; at most {MAX_ANSWER_CHARS} "
                "are compared",
            )
        got = normalize(answer, case_sensitive=self.case_sensitive)
        want = normalize(str(expected), case_sensitive=self.case_sensitive)
        if got == want:
            return Verdict(True, 1.0, "correct")
        if not self.case_sensitive or got.casefold() != want.casefold():
            return Verdict(False, 0.0, "does not match the expected answer")
        return Verdict(False, 0.0, "does not match the expected answer (letter case differs)")

    async def verify(self, problem: Problem, answer: str) -> Verdict:
        return self.check(problem.expected, answer)


def check_spec(spec: dict[str, Any], problem: Problem, models: Models | None) -> None:
    if problem.expected is None:
        raise ValueError("the exact verifier needs `problem.expected`")
    check_options(spec)


@register("exact", options=OPTIONS, check=check_spec, needs_expected=True)
def build(spec: dict[str, Any]) -> Verifier:
    return ExactVerifier(**check_options(spec))
