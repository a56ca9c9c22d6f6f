"""A problem family (a problem's ``task``): how to pose an instance to a model, read the
answer back, and check it; and the step view of families solved one step at a time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

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


# --- step tasks: problems solved one step at a time (tree and beam search) -------------


@dataclass(frozen=True)
class StepState:
    """A partial solution of a step task: what is left to work with and the steps taken
    so far, both as plain text so states go into events and journals as they are.

    For the Game of 24, ``left`` holds the remaining numbers (``"4"``, ``"8/3"``) and
    ``steps`` lines like ``"13 - 9 = 4 (left: 4 4 10)"``.
    """

    left: tuple[str, ...]
    steps: tuple[str, ...] = ()

    @property
    def depth(self) -> int:
        return len(self.steps)

    def key(self) -> tuple[str, ...]:
        """States with the same key are the same position (order of ``left`` ignored)."""
        return tuple(sorted(self.left))

    def describe(self) -> str:
        return self.steps[-1] if self.steps else "start: " + " ".join(self.left)


@runtime_checkable
class StepTask(Protocol):
    """What tree/beam/MCTS strategies need from a task to search over its steps: a start
    state, prompts that ask a model for next steps and for a value judgement, parsers
    for both replies, a cheap heuristic, and the final answer of a finished path."""

    name: str

    def root(self, problem: Problem) -> StepState:
        """The start state of ``problem`` (raises ``ValueError`` on a bad instance)."""

    def is_terminal(self, state: StepState) -> bool:
        """No further step is possible: the path is finished (solved or not)."""

    def propose_messages(self, state: StepState) -> list[Message]:
        """Ask the model for possible next steps from ``state``."""

    def parse_proposals(self, text: str, state: StepState) -> list[StepState]:
        """The valid child states named in the model's reply (bad lines dropped)."""

    def evaluate_messages(self, state: StepState) -> list[Message]:
        """Ask the model how promising ``state`` is."""

    def parse_evaluation(self, text: str) -> float:
        """The value in [0, 1] a reply to :meth:`evaluate_messages` gives."""

    def heuristic(self, state: StepState) -> float:
        """A cheap value in [0, 1] with no model call."""

    def answer(self, problem: Problem, state: StepState) -> str | None:
        """The final answer a terminal path stands for (None if it has none)."""

    def fallback_answer(self, problem: Problem, state: StepState) -> str | None:
        """A well-formed (probably wrong) answer completing a partial path, so an anytime
        strategy has a best-so-far before any path is finished."""
