"""What a verifier is, what it says about one candidate answer, and how a verifier that
calls a model asks the job's Context for those calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ponder.llm.base import Message
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
    """Checks a candidate answer (already extracted from the model's text) for a problem.

    A verifier may also set ``reads_whole_completion = True``: then the candidate is the
    whole completion, not the text after its last ``Answer:`` (code checked by tests)."""

    name: str

    async def verify(self, problem: Problem, answer: str) -> Verdict: ...


@dataclass(frozen=True)
class JudgeRequest:
    """A chat model call whose reply a verifier reads as its verdict."""

    model: str  # the chat model profile to call
    messages: list[Message]
    max_tokens: int
    temperature: float


class VerifierContext(Protocol):
    """What a verifier that calls a model asks the job's Context for. The Context
    (:class:`ponder.runtime.Context`) implements it: each call is journaled (its key is
    taken when the call is made, not when it is awaited, and a resumed run gets the
    journaled result back without calling anything) and budgeted like the strategy's
    own calls."""

    def prompt_text(self) -> str:
        """The job's problem as plain text (as posed to the model)."""

    def chat_model(self, name: str) -> object:
        """Look up chat model profile ``name`` now; ValueError if there is none."""

    def reward_model(self, name: str) -> object:
        """Look up reward model profile ``name`` now; ValueError if there is none."""

    def judge(self, request: JudgeRequest, parse: Callable[[str], Verdict]) -> Awaitable[Verdict]:
        """Call ``request.model`` once (billed at that profile's prices) and read its reply
        with ``parse`` (which must not raise); the verdict is journaled with the call."""

    def score(self, candidates: list[str], *, reward_model: str) -> Awaitable[list[float]]:
        """Outcome-reward scores in [0, 1] of ``candidates`` for the problem (unbilled)."""


@runtime_checkable
class ModelVerifier(Verifier, Protocol):
    """A verifier whose check calls a model, so it runs only through a job's Context
    (its :meth:`verify` raises); the Context dispatches on this interface."""

    def prepare(self, ctx: VerifierContext) -> None:
        """Look up the models it will call (ValueError if one does not exist), so that a
        job naming a missing model fails before it spends anything."""

    def verify_in(self, ctx: VerifierContext, problem: Problem, answer: str) -> Awaitable[Verdict]:
        """Check ``answer`` through ``ctx``'s calls. A plain function, not ``async``: the
        calls are issued (their journal keys taken) when it is called."""
