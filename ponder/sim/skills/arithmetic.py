"""The simulated model on arithmetic word problems (the ``arithmetic`` task).

Honest by construction: the skill reads the question's sentences back with the
template grammar of :mod:`ponder.families.arithmetic` (it never sees ``expected``), works
the story out one operation per trace line, and can slip on any operation: a slip
writes a plausible wrong result (off by one or ten, swapped digits, the wrong
operation, a lost zero) and every later step builds on it, so different slips end in
different wrong answers — majority voting helps, a verifier helps more.

Tokens buy care: after each operation the model may write check lines (undo the
operation and compare); each check catches a slip with probability ``CATCH``. It plans
how many checks it can afford per step from what is left of ``max_tokens`` after the
remaining steps and the answer line, so a bigger allowance — or a shallower problem —
means more checking and fewer slips. The trace must fit ``max_tokens``: if the steps
themselves do not fit, the completion is cut before the ``Answer:`` line.

Calibration (single-sample accuracy, temperature 0.8, 400 samples per cell: 40
generated problems per depth x 10 samples; ``python -m ponder.sim.calibrate`` prints
this table, ``tests/unit/test_sim_arithmetic.py`` re-checks the trends):

    depth \\ max_tokens    64   128   256   512  1024  2048
         1              0.76  0.94  0.98  0.99  0.98  0.99
         2              0.57  0.70  0.93  0.97  0.96  0.99
         4              0.36  0.42  0.69  0.90  0.96  0.96
         8              0.10  0.12  0.20  0.53  0.81  0.88
        12              0.00  0.05  0.07  0.20  0.49  0.86
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from ponder.families.arithmetic import parse_prompt
from ponder.llm.base import Message
from ponder.sim.skill import Draw, register_skill
from ponder.sim.tokens import count_tokens
from ponder.verifiers.numeric import format_fraction

SLIP = 0.25  # chance that one operation, done once without checking, comes out wrong
CATCH = 0.45  # chance that one check line notices a wrong result
MAX_CHECKS = 5  # per operation: floor ≈ SLIP * (1 - CATCH) ** MAX_CHECKS ≈ 1.3%
STEP_LINE_TOKENS = 8  # planning estimates (actual lines are counted exactly)
CHECK_LINE_TOKENS = 30
ANSWER_TOKENS = 20
MAX_OPERATIONS = 64  # longer stories are not this grammar's


@dataclass(frozen=True)
class Op:
    """One arithmetic operation on the running value; ``times`` makes the operand
    itself a product first (``receives 3 boxes of 12``)."""

    op: str  # "+", "-", "*", "/"
    operand: int
    times: int | None = None


_PRONOUN = r"(?:It|He|She|They)"
_POSSESSIVE = r"(?:its|his|her|their)"
_N = r"([0-9]{1,7})"
_W = r"([a-z]+)"
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"{_PRONOUN} (?:buys|receives|finds) {_N} more {_W}\."), "add"),
    (re.compile(rf"{_PRONOUN} (?:sells|gives away|loses) {_N} {_W}\."), "sub"),
    (re.compile(rf"{_PRONOUN} doubles {_POSSESSIVE} {_W}\."), "double"),
    (re.compile(rf"{_PRONOUN} triples {_POSSESSIVE} {_W}\."), "triple"),
    (re.compile(rf"Then the number of {_W} becomes {_N} times as large\."), "times"),
    (re.compile(rf"{_PRONOUN} gives away half of {_POSSESSIVE} {_W}\."), "half"),
    (
        re.compile(
            rf"{_PRONOUN} splits {_POSSESSIVE} {_W} into {_N} equal groups and keeps one group\."
        ),
        "split",
    ),
    (re.compile(rf"{_PRONOUN} receives {_N} boxes of {_N} {_W} each\."), "boxes"),
    (re.compile(rf"{_PRONOUN} packs {_N} bags of {_N} {_W} each and sells them\."), "bags"),
]
_START_RE = re.compile(rf"(.{{1,60}}?) has {_N} {_W}\.")
_QUESTION_RE = re.compile(rf"How many {_W} does .{{1,60}} have now\?")
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.?!])\s+")


@dataclass(frozen=True)
class Story:
    start: int
    items: str
    ops: list[Op]


def read_story(question: str) -> Story | None:
    """The story's starting amount and operations, read from its sentences; None unless
    every sentence is one this grammar knows."""
    sentences = _SENTENCE_SPLIT_RE.split(question.strip())
    if len(sentences) < 2 or len(sentences) > MAX_OPERATIONS + 2:
        return None
    first = _START_RE.fullmatch(sentences[0])
    if first is None or _QUESTION_RE.fullmatch(sentences[-1]) is None:
        return None
    ops: list[Op] = []
    for sentence in sentences[1:-1]:
        op = _read_sentence(sentence)
        if op is None:
            return None
        ops.append(op)
    return Story(int(first.group(2)), first.group(3), ops)


def _read_sentence(sentence: str) -> Op | None:
    for pattern, kind in _RULES:
        m = pattern.fullmatch(sentence)
        if m is None:
            continue
        if kind == "add":
            return Op("+", int(m.group(1)))
        if kind == "sub":
            return Op("-", int(m.group(1)))
        if kind == "double":
            return Op("*", 2)
        if kind == "triple":
            return Op("*", 3)
        if kind == "times":
            return Op("*", int(m.group(2)))
        if kind == "half":
            return Op("/", 2)
        if kind == "split":
            n = int(m.group(2))
            return Op("/", n) if n else None
        if kind == "boxes":
            return Op("+", int(m.group(2)), times=int(m.group(1)))
        if kind == "bags":
            return Op("-", int(m.group(2)), times=int(m.group(1)))
    return None


# --- working it out --------------------------------------------------------------------

_SYMBOL = {"+": "+", "-": "-", "*": "×", "/": "÷"}
_INVERSE = {"+": "-", "-": "+", "*": "/", "/": "*"}


def _apply(op: str, a: Fraction, b: Fraction) -> Fraction:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a / b


def _show(value: Fraction) -> str:
    text = format_fraction(value)
    if len(text) > 14 and value.denominator != 1:
        return f"{float(value):.4f}".rstrip("0").rstrip(".")
    return text


def _slip(op: str, a: Fraction, b: Fraction, right: Fraction, draw: Draw) -> Fraction:
    """A plausible wrong result for ``a op b`` (never the right one)."""
    rng = draw.rng
    for _ in range(8):
        kind = rng.randrange(6)
        if kind == 0:
            wrong = right + rng.choice((-2, -1, 1, 2))
        elif kind == 1:
            wrong = right + rng.choice((-10, 10))
        elif kind == 2:  # the neighbouring operation
            other = {"+": "-", "-": "+", "*": "+", "/": "-"}[op]
            wrong = _apply(other, a, b)
        elif kind == 3 and right.denominator == 1 and abs(right) >= 10:
            digits = list(str(abs(right.numerator)))
            i = rng.randrange(len(digits) - 1)
            digits[i], digits[i + 1] = digits[i + 1], digits[i]
            wrong = Fraction(int("".join(digits))) * (1 if right > 0 else -1)
        elif kind == 4 and right.denominator == 1 and right.numerator % 10 == 0 and right:
            wrong = right / 10  # a lost zero
        elif kind == 5:
            wrong = right * 10 if rng.random() < 0.3 else right + rng.choice((-5, 5, -3, 3))
        else:
            continue
        if wrong != right:
            return wrong
    return right + 1


def _checks_for_step(draw: Draw, used: int, ops_left: int) -> int:
    """How many checks the model can afford on this operation, leaving room for the
    remaining operations (one line each) and the answer."""
    spare = draw.max_tokens - used - ANSWER_TOKENS - ops_left * STEP_LINE_TOKENS
    if spare <= 0:
        return 0
    return min(MAX_CHECKS, spare // (ops_left * CHECK_LINE_TOKENS))


def solve_story(story: Story, draw: Draw) -> str:
    """A completion: one line per operation, check lines as the allowance permits, and
    ``Answer: <number>``. Deterministic given ``draw.rng``."""
    lines = [f"Start: {story.start} {story.items}."]
    used = count_tokens(lines[0] + "\n")
    value = Fraction(story.start)
    ops_left = sum(2 if op.times is not None else 1 for op in story.ops)
    number = 0
    product: Fraction | None = None  # "3 boxes of 12": worked out first, then added
    for op in story.ops:
        pairs: list[tuple[str, Fraction, Fraction, bool]] = []
        if op.times is not None:
            pairs.append(("*", Fraction(op.times), Fraction(op.operand), True))
        pairs.append((op.op, Fraction(0), Fraction(op.operand), False))
        for kind, a, b, is_product in pairs:
            left = a if is_product else value
            right_operand = b if is_product or product is None else product
            if not is_product:
                product = None
            number += 1
            if kind == "/" and right_operand == 0:
                lines.append(f"Step {number}: cannot divide by zero; giving up.")
                return "\n".join(lines)
            result = _apply(kind, left, right_operand)
            slipped = draw.rng.random() < SLIP
            written = _slip(kind, left, right_operand, result, draw) if slipped else result
            line = (
                f"Step {number}: {_show(left)} {_SYMBOL[kind]} {_show(right_operand)} "
                f"= {_show(written)}"
            )
            lines.append(line)
            used += count_tokens(line + "\n")
            ops_left -= 1
            for j in range(_checks_for_step(draw, used, ops_left + 1)):
                caught = slipped and draw.rng.random() < CATCH
                inverse = _INVERSE[kind]
                if caught:
                    check = (
                        f"  check {j + 1}: working back from {_show(written)}, undoing the "
                        f"step with {_SYMBOL[inverse]} {_show(right_operand)} does not give "
                        f"{_show(left)}; redo it: "
                        f"{_show(left)} {_SYMBOL[kind]} {_show(right_operand)} = {_show(result)}"
                    )
                    written, slipped = result, False
                else:
                    check = (
                        f"  check {j + 1}: working back from {_show(written)}, undoing the "
                        f"step with {_SYMBOL[inverse]} {_show(right_operand)} gives "
                        f"{_show(left)}, the amount before it; {_show(written)} holds"
                    )
                lines.append(check)
                used += count_tokens(check + "\n")
            if is_product:
                product = written
            else:
                value = written
    lines.append(f"So there are {_show(value)} {story.items} at the end.")
    lines.append(f"Answer: {_show(value)}")
    return "\n".join(lines)


class ArithmeticSkill:
    name = "arithmetic"

    def respond(self, messages: list[Message], draw: Draw) -> str | None:
        for message in reversed(messages):
            if message["role"] == "assistant":
                continue
            question = parse_prompt(message["content"])
            if question is None:
                continue
            story = read_story(question)
            if story is None:
                return None  # an arithmetic prompt outside the grammar: generic reply
            return solve_story(story, draw)
        return None


register_skill(ArithmeticSkill())
