"""Skills: the prompt families the simulated model can work on, each a recognizer with
a responder. A skill module (see :mod:`ponder.sim.skills`) registers its skills with
:func:`register_skill` at import time; :func:`ponder.sim.model.respond` tries them in
turn, newest first, before its built-in Game of 24 skill and a generic reply."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from ponder.llm.base import Message


@dataclass
class Draw:
    """What one sample may do: its private dice, its token allowance, its temperature."""

    rng: random.Random
    max_tokens: int
    temperature: float


class Skill(Protocol):
    """A prompt family the sim can work on. ``respond`` returns None when the messages
    are not this skill's kind of prompt, so skills are tried in order."""

    name: str

    def respond(self, messages: list[Message], draw: Draw) -> str | None: ...


_SKILLS: list[Skill] = []


def register_skill(skill: Skill) -> Skill:
    """Add a prompt family; later registrations are tried first."""
    _SKILLS.insert(0, skill)
    return skill


def registered_skills() -> list[Skill]:
    """The registered skills in the order they are tried."""
    return list(_SKILLS)


__all__ = ["Draw", "Skill", "register_skill", "registered_skills"]
