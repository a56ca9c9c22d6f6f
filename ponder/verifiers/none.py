"""The ``none`` verifier: no external check.

Spec: ``{"type": "none"}`` (no options). Every verdict fails with score 0, so
candidates are selected by the strategy's own means (votes, self-evaluation, reward
models); the free-form default when a problem has no ``expected``.
"""

from __future__ import annotations

from typing import Any

from ponder.problem import Problem
from ponder.verifiers.base import Verdict, Verifier
from ponder.verifiers.registry import register


class NoVerifier:
    """No external check: candidates are selected by the strategy's own means."""

    name = "none"

    async def verify(self, problem: Problem, answer: str) -> Verdict:
        return Verdict(False, 0.0, "no verifier configured")


@register("none")
def build(spec: dict[str, Any]) -> Verifier:
    return NoVerifier()
