"""What a verifier says about one candidate answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ponder.problem import Problem


@dataclass(frozen=True)
class Verdict:
    passed: bool
    score: float  # in [0, 1]
    feedback: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "score": self.score, "feedback": self.feedback}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        return cls(bool(data["passed"]), float(data["score"]), str(data.get("feedback", "")))


class Verifier(Protocol):
    """Checks a candidate answer (already extracted from the model's text) for a problem."""

    name: str

    async def verify(self, problem: Problem, answer: str) -> Verdict: ...
