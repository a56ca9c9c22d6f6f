"""The Game of 24: combine the given numbers with + - * / and parentheses to make 24.

The prompt wording is fixed and machine-readable on purpose: the simulated model reads
puzzles back out of prompts with :func:`parse_prompt`, so ``format_prompt`` and
``parse_prompt`` must round-trip.
"""

from __future__ import annotations

import re
from typing import Any

from ponder.llm.base import Message
from ponder.problem import Problem
from ponder.verifiers.base import Verifier
from ponder.verifiers.game24 import Game24Verifier

MIN_NUMBERS, MAX_NUMBERS = 3, 6
MIN_VALUE, MAX_VALUE = 1, 100

_INPUT_RULE = (
    f"input.numbers must be a list of {MIN_NUMBERS} to {MAX_NUMBERS} integers "
    f"between {MIN_VALUE} and {MAX_VALUE}"
)

# Bounded repetition keeps the regex linear even on a 200k-character prompt.
_PROMPT_RE = re.compile(
    r"Use the numbers ((?:[1-9]\d{0,2} ){"
    + f"{MIN_NUMBERS},{MAX_NUMBERS}"
    + r"})and the operations \+ - \* / with parentheses to make 24\."
)
_ANSWER_RE = re.compile(r"answer\s*:", re.IGNORECASE)
_TRAILING_TARGET_RE = re.compile(r"=\s*24\s*$")
_WRAPPING = " \t\r\n`$"


def format_prompt(numbers: list[int]) -> str:
    listed = " ".join(str(n) for n in numbers)
    return (
        f"Use the numbers {listed} and the operations + - * / with parentheses to make 24. "
        "Use every number exactly once.\n"
        "Think step by step, then give the expression on the last line as: "
        "Answer: <expression>"
    )


def parse_prompt(text: str) -> list[int] | None:
    """The puzzle numbers posed in ``text`` (the last puzzle if there are several, as in
    a refinement conversation), or None if ``text`` poses no valid Game of 24 puzzle."""
    matches = list(_PROMPT_RE.finditer(text))
    if not matches:
        return None
    numbers = [int(tok) for tok in matches[-1].group(1).split()]
    if not all(MIN_VALUE <= n <= MAX_VALUE for n in numbers):
        return None
    return numbers


def parse_answer(text: str) -> str | None:
    """The expression after the last ``Answer:`` (any case), on the same line, without a
    trailing ``= 24``, markdown backticks/bold, ``$`` math delimiters or a final period."""
    matches = list(_ANSWER_RE.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end() :]
    line = rest.lstrip(" \t").split("\n", 1)[0]
    if line.startswith("**"):  # "**Answer:** expr" — the closing bold marker
        line = line[2:]
    previous = None
    while line != previous:
        previous = line
        line = line.strip(_WRAPPING)
        line = line.removesuffix(".").removesuffix("**")
        line = _TRAILING_TARGET_RE.sub("", line)
    return line or None


def validate_numbers(data: Any) -> list[int]:
    """The puzzle numbers in ``data`` or a ValueError saying what to fix."""
    if not isinstance(data, dict):
        raise ValueError(
            f'input must be an object like {{"numbers": [4, 9, 10, 13]}}, got {data!r}'
        )
    extra = sorted(set(data) - {"numbers"})
    if extra:
        raise ValueError(f"input has unknown keys {extra}; only 'numbers' is allowed")
    if "numbers" not in data:
        raise ValueError(f"input.numbers is missing; {_INPUT_RULE}")
    numbers = data["numbers"]
    if not isinstance(numbers, list):
        raise ValueError(f"{_INPUT_RULE}, got {numbers!r}")
    if not MIN_NUMBERS <= len(numbers) <= MAX_NUMBERS:
        raise ValueError(f"{_INPUT_RULE}, got {len(numbers)} numbers")
    for n in numbers:
        # bool is an int subclass; True is not a puzzle number
        if isinstance(n, bool) or not isinstance(n, int) or not MIN_VALUE <= n <= MAX_VALUE:
            raise ValueError(f"{_INPUT_RULE}, got {n!r} in {numbers!r}")
    return list(numbers)


class Game24Task:
    name = "game24"
    description = (
        "Game of 24: combine 3 to 6 integers (1..100) with + - * / and parentheses, each "
        'used exactly once, to make 24. Input: {"numbers": [4, 9, 10, 13]}.'
    )

    def validate_input(self, data: dict[str, Any]) -> None:
        validate_numbers(data)

    def messages(self, problem: Problem) -> list[Message]:
        numbers = validate_numbers(problem.input)
        return [{"role": "user", "content": format_prompt(numbers)}]

    def parse_answer(self, text: str) -> str | None:
        return parse_answer(text)

    def default_verifier(self) -> Verifier:
        return Game24Verifier()


TASK = Game24Task()
