"""A task family: how to pose an instance to a model, read the answer back, and check it."""

from __future__ import annotations

from typing import Any, Protocol

from ponder.llm.base import Message
from ponder.problem import Problem
from ponder.verifiers.base import Verifier


class Task(Protocol):
    name: str
    description: str

    def validate_input(self, data: dict[str, Any]) -> None:
        """Raise ``ValueError`` with a message a user can act on if ``data`` is not a
        valid instance of this task."""

    def messages(self, problem: Problem) -> list[Message]:
        """The chat messages that pose ``problem`` to a model."""

    def parse_answer(self, text: str) -> str | None:
        """Extract the final answer from a model's full completion text (None if absent)."""

    def default_verifier(self) -> Verifier:
        """The verifier used when the job does not name one."""
