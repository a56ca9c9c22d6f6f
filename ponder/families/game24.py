"""The Game of 24: combine the given numbers with + - * / and parentheses to make 24.

The prompt wording is fixed and machine-readable on purpose: the simulated model reads
puzzles back out of prompts with :func:`parse_prompt`, so ``format_prompt`` and
``parse_prompt`` must round-trip.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ponder.families.base import StepState
from ponder.families.registry import register, register_steps
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


TASK = register(Game24Task())


# --- step prompts (Tree of Thoughts' Game of 24 setup) ----------------------------------
#
# A state is the numbers left plus the steps taken. A step combines two of the numbers
# left with one operation and is written exactly as ``13 - 9 = 4 (left: 4 4 10)``; the
# numbers left after it are listed in ascending order. Fractions are written ``8/3``
# (``(8/3)`` as an operand is accepted too). The simulated model reads the state back out
# of these prompts with :func:`parse_step_prompt`, so the wording is fixed.

PROPOSE_HEADER = "Game of 24, next steps."
EVALUATE_HEADER = "Game of 24, evaluate the numbers left."
_NUMBERS_LEFT_RE = re.compile(r"^Numbers left: ([^\n]{1,400})$", re.MULTILINE)
_MAX_STEP_LINE = 200
_NUM = r"-?\d{1,12}(?:[./]\d{1,12})?"
_OPERAND = rf"\(\s*{_NUM}\s*\)|{_NUM}"
_STEP_RE = re.compile(
    r"^(?:(?:\d{1,3}[.)]|[-*•])\s+)?"
    rf"(?P<a>{_OPERAND})\s*(?P<op>[-+*/×÷−x])\s*(?P<b>{_OPERAND})\s*"
    rf"=\s*(?P<r>{_OPERAND})\s*"
    r"\(\s*left\s*:(?P<left>[^\n]*)\)\s*\.?$",
    re.IGNORECASE,
)
_EVAL_WORD_RE = re.compile(r"\b(sure|likely|impossible)\b", re.IGNORECASE)
EVALUATION_VALUES = {"sure": 1.0, "likely": 0.5, "impossible": 0.0}
UNKNOWN_EVALUATION = 0.25

Number = Fraction | int


def format_number(value: Number) -> str:
    """``4``, ``-5`` or ``8/3``."""
    return str(Fraction(value))


def format_numbers(values: Sequence[Number]) -> str:
    return " ".join(format_number(v) for v in sorted(Fraction(v) for v in values))


def parse_number(text: str) -> Fraction | None:
    """A number as written in a step (``4``, ``-5``, ``8/3``, ``(8/3)``, ``2.5``)."""
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    if not re.fullmatch(_NUM, text):
        return None
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def _apply(a: Fraction, op: str, b: Fraction) -> Fraction | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return None if b == 0 else a / b


@dataclass(frozen=True)
class Step:
    """``a op b = result``; ``left`` is every number left after the step, ascending."""

    a: Fraction
    op: str
    b: Fraction
    result: Fraction
    left: tuple[Fraction, ...]

    def line(self) -> str:
        a, b = (format_number(v) for v in (self.a, self.b))
        return (
            f"{a} {self.op} {b} = {format_number(self.result)} (left: {format_numbers(self.left)})"
        )

    def __str__(self) -> str:
        return self.line()


def _remove(pool: list[Fraction], value: Fraction) -> bool:
    if value in pool:
        pool.remove(value)
        return True
    return False


def make_step(numbers_left: Sequence[Number], a: Number, op: str, b: Number) -> Step | None:
    """The step ``a op b`` from ``numbers_left`` (None if illegal: a number not left, or
    division by zero)."""
    pool = [Fraction(v) for v in numbers_left]
    fa, fb = Fraction(a), Fraction(b)
    if op not in ("+", "-", "*", "/") or not (_remove(pool, fa) and _remove(pool, fb)):
        return None
    result = _apply(fa, op, fb)
    if result is None:
        return None
    return Step(fa, op, fb, result, tuple(sorted([*pool, result])))


def legal_steps(numbers_left: Sequence[Number]) -> list[Step]:
    """Every legal step, one per distinct set of numbers left (larger operand first for
    ``-`` and ``/`` when both orders give the same outcome)."""
    values = [Fraction(v) for v in numbers_left]
    out: list[Step] = []
    seen: set[tuple[Fraction, ...]] = set()
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            x, y = (values[i], values[j]) if values[i] >= values[j] else (values[j], values[i])
            for a, op, b in ((x, "+", y), (x, "*", y), (x, "-", y), (y, "-", x)):
                step = make_step(values, a, op, b)
                if step is not None and step.left not in seen:
                    seen.add(step.left)
                    out.append(step)
            for a, b in ((x, y), (y, x)):
                step = make_step(values, a, "/", b)
                if step is not None and step.left not in seen:
                    seen.add(step.left)
                    out.append(step)
    return out


def parse_step(line: str, numbers_left: Sequence[Number]) -> Step | None:
    """One step line, checked: both operands are among ``numbers_left``, the arithmetic
    is right, and the ``left`` list is exactly what remains. None if anything is off."""
    line = line.strip().strip("`*").strip()
    if not line or len(line) > _MAX_STEP_LINE:
        return None
    m = _STEP_RE.match(line)
    if m is None:
        return None
    op = {"×": "*", "x": "*", "X": "*", "÷": "/", "−": "-"}.get(m["op"], m["op"])
    a, b, result = parse_number(m["a"]), parse_number(m["b"]), parse_number(m["r"])
    if a is None or b is None or result is None:
        return None
    step = make_step(numbers_left, a, op, b)
    if step is None or step.result != result:
        return None
    written: list[Fraction] = []
    for tok in re.split(r"[\s,]+", m["left"].strip()):
        if not tok:
            continue
        value = parse_number(tok)
        if value is None:
            return None
        written.append(value)
    if tuple(sorted(written)) != step.left:
        return None
    return step


def parse_proposals(text: str, numbers_left: Sequence[Number]) -> list[Step]:
    """The valid, distinct next steps in a model's reply, in the order written; lines that
    are not steps, have wrong arithmetic or a wrong ``left`` list are dropped."""
    out: list[Step] = []
    seen: set[tuple[Fraction, str, Fraction, tuple[Fraction, ...]]] = set()
    for line in text.splitlines():
        step = parse_step(line, numbers_left)
        if step is None:
            continue
        key = (step.a, step.op, step.b, step.left)
        if key not in seen:
            seen.add(key)
            out.append(step)
    return out


def propose_messages(numbers_left: Sequence[Number], steps: Sequence[Step | str]) -> list[Message]:
    """Ask for possible next steps from a state, one per line in the step format. (Kept
    short: budgets reserve a prompt's bytes before every call.)"""
    done = "; ".join(str(s) for s in steps) or "none"
    content = (
        f"{PROPOSE_HEADER}\n"
        "Combine two of the numbers left with + - * or /. List possible next steps, one per "
        "line, as: a op b = result (left: numbers left, ascending). Fractions as 8/3. "
        "Example: 14 - 8 = 6 (left: 2 6 8)\n"
        f"Steps so far: {done}\n"
        f"Numbers left: {format_numbers(numbers_left)}\n"
        "Possible next steps:"
    )
    return [{"role": "user", "content": content}]


def evaluate_messages(numbers_left: Sequence[Number]) -> list[Message]:
    """Ask whether the numbers left can still make 24: sure / likely / impossible."""
    content = (
        f"{EVALUATE_HEADER}\n"
        "Can they make 24, each used once, with + - * / ? Try a few ways, then give one "
        "word on the last line: sure, likely or impossible.\n"
        f"Numbers left: {format_numbers(numbers_left)}\n"
        "Judgement:"
    )
    return [{"role": "user", "content": content}]


def parse_step_prompt(text: str) -> tuple[str, list[Fraction]] | None:
    """``("propose" | "evaluate", numbers left)`` for a step prompt, else None."""
    if text.startswith(PROPOSE_HEADER):
        kind = "propose"
    elif text.startswith(EVALUATE_HEADER):
        kind = "evaluate"
    else:
        return None
    matches = _NUMBERS_LEFT_RE.findall(text)
    if not matches:
        return None
    numbers: list[Fraction] = []
    for tok in matches[-1].split():
        value = parse_number(tok)
        if value is None:
            return None
        numbers.append(value)
    if not 1 <= len(numbers) <= MAX_NUMBERS:
        return None
    return kind, numbers


def parse_evaluation(text: str) -> float:
    """sure 1.0, likely 0.5, impossible 0.0 (the last such word), else 0.25."""
    words = _EVAL_WORD_RE.findall(text)
    if not words:
        return UNKNOWN_EVALUATION
    return EVALUATION_VALUES[words[-1].lower()]


def heuristic(numbers_left: Sequence[Number]) -> float:
    """A glance at the numbers, no search: 1.0 / 0.0 when one number is left (is it 24?)
    or two (does one operation make 24?); otherwise a score in (0, 0.9] that prefers
    whole positive numbers of moderate size, especially ones that divide 24."""
    values = [Fraction(v) for v in numbers_left]
    if not values:
        return 0.0
    if len(values) == 1:
        return 1.0 if values[0] == TARGET_VALUE else 0.0
    if len(values) == 2:
        a, b = values
        made = {_apply(x, op, y) for x, y in ((a, b), (b, a)) for op in "+-*/"}
        return 1.0 if TARGET_VALUE in made else 0.0
    total = 0.0
    for v in values:
        if v <= 0:
            score = 0.15
        elif v.denominator != 1:
            score = 0.35
        elif v > 48:
            score = 0.3
        else:
            score = 0.75 + (0.25 if 24 % int(v) == 0 else 0.0)
        total += score
    return round(0.9 * total / len(values), 6)


@dataclass(frozen=True)
class _Made:
    value: Fraction
    expr: str
    atom: bool

    def operand(self) -> str:
        return self.expr if self.atom else f"({self.expr})"


def _replay_steps(numbers: Sequence[int], steps: Sequence[Step | str]) -> list[_Made]:
    items = [_Made(Fraction(n), str(n), True) for n in numbers]
    for raw in steps:
        left = [it.value for it in items]
        step = raw if isinstance(raw, Step) else parse_step(raw, left)
        if step is None or make_step(left, step.a, step.op, step.b) != step:
            raise ValueError(f"step {str(raw)!r} does not apply to {format_numbers(left)}")
        x = next(it for it in items if it.value == step.a)
        items.remove(x)
        y = next(it for it in items if it.value == step.b)
        items.remove(y)
        items.append(_Made(step.result, f"{x.operand()} {step.op} {y.operand()}", False))
    return items


def expression_from_steps(numbers: Sequence[int], steps: Sequence[Step | str]) -> str:
    """The expression a finished path stands for, e.g. ``(13 - 9) * (10 - 4)`` for
    ``13 - 9 = 4``, ``10 - 4 = 6``, ``4 * 6 = 24``. Raises ``ValueError`` if a step does
    not apply or more than one number is left."""
    items = _replay_steps(numbers, steps)
    if len(items) != 1:
        raise ValueError(f"the path leaves {len(items)} numbers, not one")
    return items[0].expr


def fallback_expression(numbers: Sequence[int], steps: Sequence[Step | str]) -> str:
    """A well-formed expression for a partial path: its steps, then the numbers still
    left added up. Usually wrong; an anytime candidate, not a solution."""
    items = _replay_steps(numbers, steps)
    return " + ".join(it.operand() if len(items) > 1 else it.expr for it in items)


TARGET_VALUE = Fraction(24)


class Game24Steps:
    """The Game of 24 as a :class:`~ponder.families.base.StepTask`."""

    name = "game24"

    @staticmethod
    def numbers_left(state: StepState) -> list[Fraction]:
        values = [parse_number(tok) for tok in state.left]
        if any(v is None for v in values):
            raise ValueError(f"bad game24 state {state.left!r}")
        return [v for v in values if v is not None]

    def root(self, problem: Problem) -> StepState:
        numbers = validate_numbers(problem.input)
        return StepState(left=tuple(format_numbers(numbers).split()))

    def is_terminal(self, state: StepState) -> bool:
        return len(state.left) <= 1

    def propose_messages(self, state: StepState) -> list[Message]:
        return propose_messages(self.numbers_left(state), state.steps)

    def parse_proposals(self, text: str, state: StepState) -> list[StepState]:
        return [
            StepState(left=tuple(format_number(v) for v in s.left), steps=(*state.steps, s.line()))
            for s in parse_proposals(text, self.numbers_left(state))
        ]

    def evaluate_messages(self, state: StepState) -> list[Message]:
        return evaluate_messages(self.numbers_left(state))

    def parse_evaluation(self, text: str) -> float:
        return parse_evaluation(text)

    def heuristic(self, state: StepState) -> float:
        return heuristic(self.numbers_left(state))

    def answer(self, problem: Problem, state: StepState) -> str | None:
        try:
            return expression_from_steps(validate_numbers(problem.input), state.steps)
        except ValueError:
            return None

    def fallback_answer(self, problem: Problem, state: StepState) -> str | None:
        try:
            return fallback_expression(validate_numbers(problem.input), state.steps)
        except ValueError:
            return None


STEPS = register_steps(Game24Steps())
