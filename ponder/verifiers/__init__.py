"""Verifiers, built from a job's verifier spec (``{"type": ..., ...}``)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from ponder.problem import Problem
from ponder.verifiers.base import Verdict, Verifier

VERIFIER_TYPES = ("game24", "exact", "numeric", "none")
# The options each verifier type accepts besides "type".
VERIFIER_OPTIONS: dict[str, tuple[str, ...]] = {"numeric": ("rel_tol", "abs_tol")}


class NoVerifier:
    """No external check: candidates are selected by the strategy's own means."""

    name = "none"

    async def verify(self, problem: Problem, answer: str) -> Verdict:
        return Verdict(False, 0.0, "no verifier configured")


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).strip().lower()
    text = re.sub(r"\s+", " ", text)
    return text.strip(" .`$")


class ExactVerifier:
    """Passes when the answer equals the problem's ``expected`` (normalized text)."""

    name = "exact"

    async def verify(self, problem: Problem, answer: str) -> Verdict:
        if problem.expected is None:
            return Verdict(False, 0.0, "the problem has no `expected` answer to compare with")
        ok = _normalize(answer) == _normalize(str(problem.expected))
        return Verdict(ok, 1.0 if ok else 0.0, "" if ok else "does not match the expected answer")


def validate_verifier_spec(spec: dict[str, Any] | None, problem: Problem) -> None:
    """Raise ValueError (with what to fix) if ``spec`` cannot verify ``problem``."""
    if spec is None:
        # the task's own verifier; free-form: exact if expected is given, else none
        if problem.task is not None and problem.expected is None:
            from ponder.tasks import get_task

            default = get_task(problem.task).default_verifier().name
            if default in ("numeric", "exact"):
                raise ValueError(
                    f"{problem.task!r} problems are checked against `problem.expected` by "
                    f"default ({default} verifier); give `expected`, or set "
                    '`verifier` to {"type": "none"} to select answers by vote'
                )
        return
    kind = spec.get("type")
    if kind not in VERIFIER_TYPES:
        raise ValueError(f"unknown verifier type {kind!r}; available: {', '.join(VERIFIER_TYPES)}")
    allowed = VERIFIER_OPTIONS.get(kind, ())
    extra = set(spec) - {"type", *allowed}
    if extra:
        if not allowed:
            raise ValueError(f"verifier {kind!r} takes no options; got {sorted(extra)}")
        raise ValueError(
            f"verifier {kind!r} has no option(s) {sorted(extra)}; its options are "
            + ", ".join(allowed)
        )
    if kind == "game24" and problem.task != "game24":
        raise ValueError("the game24 verifier needs a `game24` task problem")
    if kind == "exact" and problem.expected is None:
        raise ValueError("the exact verifier needs `problem.expected`")
    if kind == "numeric":
        from ponder.verifiers.numeric import NumberError, NumericVerifier, parse_expected

        NumericVerifier(**{k: spec[k] for k in allowed if k in spec})  # checks the options
        try:
            parse_expected(problem.expected)
        except NumberError as exc:
            raise ValueError(str(exc)) from None


def build_verifier(spec: dict[str, Any] | None, problem: Problem) -> Verifier:
    from ponder.tasks import get_task

    if spec is None:
        if problem.task is not None:
            return get_task(problem.task).default_verifier()
        return ExactVerifier() if problem.expected is not None else NoVerifier()
    kind = spec["type"]
    if kind == "game24":
        from ponder.verifiers.game24 import Game24Verifier

        return Game24Verifier()
    if kind == "exact":
        return ExactVerifier()
    if kind == "numeric":
        from ponder.verifiers.numeric import NumericVerifier

        return NumericVerifier(**{k: spec[k] for k in VERIFIER_OPTIONS["numeric"] if k in spec})
    return NoVerifier()
