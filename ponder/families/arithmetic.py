"""Multi-step arithmetic word problems with a numeric answer.

Input: ``{"question": "A shop has 17 apples. It sells 5 apples. ..."}``; the answer the
job is checked against goes in the problem's ``expected`` (checked by the numeric
verifier). Any question text is accepted; :func:`make_problem` generates questions from
a small template grammar, which is also what the simulated model knows how to read (it
parses the sentences back and re-derives every step; it never sees an answer key).

The prompt wording is fixed: the simulated model finds the question again with
:func:`parse_prompt`, so ``format_prompt`` and ``parse_prompt`` must round-trip.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from ponder.families.registry import register
from ponder.llm.base import Message
from ponder.problem import Problem
from ponder.verifiers.base import Verifier
from ponder.verifiers.numeric import NumberError, NumericVerifier, parse_number

MAX_QUESTION_CHARS = 4000
MIN_DEPTH, MAX_DEPTH = 1, 12

PROMPT_HEADER = (
    "Solve this arithmetic word problem. Reason step by step, one short line per step, "
    "then give the final answer on the last line as: Answer: <number>"
)
_QUESTION_MARK = "\n\nProblem: "
_ANSWER_RE = re.compile(r"answer\s*:", re.IGNORECASE)


def format_prompt(question: str) -> str:
    return f"{PROMPT_HEADER}{_QUESTION_MARK}{question}"


def parse_prompt(text: str) -> str | None:
    """The question posed in ``text`` (the last one if there are several), or None."""
    at = text.rfind(PROMPT_HEADER + _QUESTION_MARK)
    if at == -1:
        return None
    question = text[at + len(PROMPT_HEADER) + len(_QUESTION_MARK) :].strip()
    return question or None


def parse_answer(text: str) -> str | None:
    """The number after the last ``Answer:`` (on that line), in canonical form
    (``1,000`` → ``1000``, ``\\frac{3}{4}`` → ``0.75``, ``50%`` stays ``50%``); without an
    ``Answer:`` line, the last ``\\boxed{}``; None if neither holds a number."""
    matches = list(_ANSWER_RE.finditer(text))
    if matches:
        rest = text[matches[-1].end() :].lstrip(" \t")
        candidate = rest.split("\n", 1)[0]
    elif "\\boxed" in text:
        candidate = text[text.rfind("\\boxed") :]
    else:
        return None
    try:
        return parse_number(candidate).canonical()
    except NumberError:
        return None


def validate_question(data: Any) -> str:
    """The question in ``data`` or a ValueError saying what to fix."""
    if not isinstance(data, dict):
        raise ValueError(
            'input must be an object like {"question": "A shop has 17 apples. ..."}, '
            f"got {type(data).__name__}"
        )
    extra = sorted(set(data) - {"question"})
    if extra:
        raise ValueError(f"input has unknown keys {extra}; only 'question' is allowed")
    if "question" not in data:
        raise ValueError("input.question is missing; give the word problem as text")
    question = data["question"]
    if not isinstance(question, str):
        raise ValueError(f"input.question must be text, got {type(question).__name__}")
    if not question.strip():
        raise ValueError("input.question is empty; give the word problem as text")
    if len(question) > MAX_QUESTION_CHARS:
        raise ValueError(
            f"input.question is {len(question)} characters long; at most "
            f"{MAX_QUESTION_CHARS} are allowed"
        )
    return question.strip()


class ArithmeticTask:
    name = "arithmetic"
    description = (
        "Multi-step arithmetic word problems with a numeric answer. Input: "
        '{"question": "A shop has 17 apples. It sells 5 apples. ..."}; put the answer in '
        "problem.expected (checked by the numeric verifier)."
    )

    def validate_input(self, data: dict[str, Any]) -> None:
        validate_question(data)

    def messages(self, problem: Problem) -> list[Message]:
        question = validate_question(problem.input)
        return [{"role": "user", "content": format_prompt(question)}]

    def parse_answer(self, text: str) -> str | None:
        return parse_answer(text)

    def default_verifier(self) -> Verifier:
        return NumericVerifier()


TASK = register(ArithmeticTask())


# --- the generator: a small template grammar ------------------------------------------
#
# A story has one running quantity ("17 apples"); each sentence changes it. One-step
# sentences add, subtract, multiply or divide; two-step sentences ("receives 3 boxes of
# 12 apples each") multiply, then add or subtract. ``depth`` counts arithmetic
# operations, so a two-step sentence counts twice. Every intermediate value is a
# positive integer (divisions divide exactly), so answers are integers.


@dataclass(frozen=True)
class Actor:
    subject: str  # "A shop", "Maya"
    pronoun: str  # "it", "she"
    possessive: str  # "its", "her"
    items: str  # "apples"

    def referent(self) -> str:
        """How the closing question names the actor: "the shop", "Maya"."""
        first, _, rest = self.subject.partition(" ")
        return f"the {rest}" if first in ("A", "The") and rest else self.subject


ACTORS = (
    Actor("A shop", "it", "its", "apples"),
    Actor("Maya", "she", "her", "marbles"),
    Actor("A library", "it", "its", "books"),
    Actor("Tom", "he", "his", "stickers"),
    Actor("A farm", "it", "its", "eggs"),
    Actor("The bakery", "it", "its", "muffins"),
    Actor("Priya", "she", "her", "coins"),
    Actor("The school", "it", "its", "pencils"),
    Actor("Leo", "he", "his", "cards"),
    Actor("A warehouse", "it", "its", "bottles"),
)

# (kind, template). Placeholders: {P} pronoun (capitalized), {pos} possessive,
# {items}, {n}; two-step templates use {a} and {b}.
ADD_TEMPLATES = (
    "{P} buys {n} more {items}.",
    "{P} receives {n} more {items}.",
    "{P} finds {n} more {items}.",
)
SUB_TEMPLATES = (
    "{P} sells {n} {items}.",
    "{P} gives away {n} {items}.",
    "{P} loses {n} {items}.",
)
MUL_TEMPLATES = (
    "{P} doubles {pos} {items}.",  # n = 2
    "{P} triples {pos} {items}.",  # n = 3
    "Then the number of {items} becomes {n} times as large.",
)
DIV_TEMPLATES = (
    "{P} gives away half of {pos} {items}.",  # n = 2
    "{P} splits {pos} {items} into {n} equal groups and keeps one group.",
)
ADD_PRODUCT_TEMPLATES = ("{P} receives {a} boxes of {b} {items} each.",)
SUB_PRODUCT_TEMPLATES = ("{P} packs {a} bags of {b} {items} each and sells them.",)

MAX_VALUE = 5000  # keeps numbers readable


def _fill(template: str, actor: Actor, **numbers: int) -> str:
    return template.format(
        P=actor.pronoun.capitalize(), pos=actor.possessive, items=actor.items, **numbers
    )


def _step(value: int, budget: int, actor: Actor, rng: random.Random) -> tuple[str, int, int]:
    """One sentence applied to ``value``: (sentence, new value, operations used)."""
    options = ["add", "sub", "mul", "div"]
    if budget >= 2:
        options += ["add_product", "sub_product"]
    while True:
        kind = rng.choice(options)
        if kind == "add":
            n = rng.randint(2, 40)
            return _fill(rng.choice(ADD_TEMPLATES), actor, n=n), value + n, 1
        if kind == "sub" and value > 3:
            n = rng.randint(1, min(value - 1, 40))
            return _fill(rng.choice(SUB_TEMPLATES), actor, n=n), value - n, 1
        if kind == "mul":
            n = rng.randint(2, 5)
            if value * n > MAX_VALUE:
                continue
            template = (
                MUL_TEMPLATES[n - 2] if n in (2, 3) and rng.random() < 0.6 else MUL_TEMPLATES[2]
            )
            return _fill(template, actor, n=n), value * n, 1
        if kind == "div":
            divisors = [d for d in range(2, 7) if value % d == 0 and value // d >= 2]
            if not divisors:
                continue
            n = rng.choice(divisors)
            template = DIV_TEMPLATES[0] if n == 2 and rng.random() < 0.5 else DIV_TEMPLATES[1]
            return _fill(template, actor, n=n), value // n, 1
        if kind == "add_product":
            a, b = rng.randint(2, 9), rng.randint(2, 12)
            if value + a * b > MAX_VALUE:
                continue
            return _fill(rng.choice(ADD_PRODUCT_TEMPLATES), actor, a=a, b=b), value + a * b, 2
        if kind == "sub_product":
            a, b = rng.randint(2, 6), rng.randint(2, 12)
            if a * b >= value:
                continue
            return _fill(rng.choice(SUB_PRODUCT_TEMPLATES), actor, a=a, b=b), value - a * b, 2


def make_problem(depth: int, rng: random.Random) -> tuple[str, int]:
    """A word problem with ``depth`` arithmetic operations (1..12) and its integer
    answer, drawn from ``rng`` (deterministic given its state)."""
    if (
        isinstance(depth, bool)
        or not isinstance(depth, int)
        or not (MIN_DEPTH <= depth <= MAX_DEPTH)
    ):
        raise ValueError(f"depth must be an integer from {MIN_DEPTH} to {MAX_DEPTH}, got {depth!r}")
    actor = rng.choice(ACTORS)
    value = rng.randint(5, 60)
    sentences = [f"{actor.subject} has {value} {actor.items}."]
    used = 0
    while used < depth:
        sentence, value, ops = _step(value, depth - used, actor, rng)
        sentences.append(sentence)
        used += ops
    sentences.append(f"How many {actor.items} does {actor.referent()} have now?")
    return " ".join(sentences), value
