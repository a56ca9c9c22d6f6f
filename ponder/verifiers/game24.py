"""Exact, safe checking of Game of 24 answers: the ``game24`` verifier.

Spec: ``{"type": "game24"}`` (no options), for ``game24`` task problems (their default).

The answer is untrusted model (or client) text, so it is never handed to ``eval``: a
small tokenizer and recursive-descent parser build a tree that is evaluated with
:class:`fractions.Fraction`, so ``8 / (3 - 8/3)`` is exactly 24, not 23.999….

Rules (what a user of the puzzle expects):

- Integers, ``+ - * /`` (also ``× ÷ −``), parentheses and whitespace; an optional
  trailing ``= 24``.
- Every puzzle number is used exactly once, as given: no unary minus (``-4``), no
  digit gluing (``1`` and ``3`` do not make ``13``), no leading zeros (``04``), no
  decimals, no powers (``**``).
- Division by zero is an error, not a value.

Scoring: 1.0 for a solution; a well-formed expression over exactly the puzzle's numbers
with the wrong value scores in (0, 0.5], more the closer it lands to 24, so search and
refinement strategies get a gradient; anything else scores 0.0.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ponder.errors import ErrorCode, PonderError
from ponder.problem import Problem
from ponder.verifiers.base import Verdict, Verifier
from ponder.verifiers.registry import Models, register

TARGET = 24
MAX_EXPRESSION_CHARS = 200
MAX_NESTING = 50

# The unicode forms models (and people) write, mapped to the ASCII operator.
_OPERATOR_ALIASES = {"×": "*", "÷": "/", "−": "-"}
_OPERATORS = frozenset("+-*/")


class ExpressionError(PonderError, ValueError):
    """The text is not a well-formed Game of 24 expression; the message says why."""

    code = ErrorCode.UNCHECKABLE


@dataclass(frozen=True)
class _Token:
    kind: str  # "num" | "op" | "(" | ")" | "=" | "end"
    text: str
    pos: int


@dataclass(frozen=True)
class Num:
    value: int


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Node
    right: Node


Node = Num | BinOp


class DivisionByZero(PonderError, ArithmeticError):
    code = ErrorCode.UNCHECKABLE


def _describe_char(ch: str) -> str:
    if ch.isprintable() and not ch.isspace():
        return repr(ch)
    return f"U+{ord(ch):04X}"


def tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            continue
        if "0" <= ch <= "9":  # ASCII digits only: str.isdigit() accepts '²' and friends
            start = i
            while i < len(text) and "0" <= text[i] <= "9":
                i += 1
            digits = text[start:i]
            if i + 1 < len(text) and text[i] == "." and "0" <= text[i + 1] <= "9":
                raise ExpressionError(
                    f"decimals are not allowed (at position {start}); use the integers as given"
                )
            if len(digits) > 1 and digits[0] == "0":
                raise ExpressionError(f"number {digits!r} has a leading zero")
            tokens.append(_Token("num", digits, start))
            continue
        op = _OPERATOR_ALIASES.get(ch, ch)
        if op in _OPERATORS:
            if op == "*" and i + 1 < len(text) and text[i + 1] == "*":
                raise ExpressionError("'**' (power) is not allowed; only + - * / may be used")
            tokens.append(_Token("op", op, i))
        elif ch in "()":
            tokens.append(_Token(ch, ch, i))
        elif ch == "=":
            tokens.append(_Token("=", ch, i))
        elif ch == "." and i + 1 < len(text) and "0" <= text[i + 1] <= "9":
            raise ExpressionError(f"decimals are not allowed (at position {i})")
        else:
            raise ExpressionError(
                f"unexpected character {_describe_char(ch)} at position {i}; "
                "only integers, + - * /, parentheses and an optional '= 24' are allowed"
            )
        i += 1
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Parser:
    """expr := term (('+'|'-') term)* ; term := factor (('*'|'/') factor)* ;
    factor := NUMBER | '(' expr ')'"""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise ExpressionError("the expression is empty")
        node = self.expr()
        tok = self.peek()
        if tok.kind == "=":
            self.take()
            rhs = self.take()
            if rhs.kind != "num" or rhs.text != str(TARGET) or self.peek().kind != "end":
                raise ExpressionError("only '= 24' may follow the expression")
            return node
        if tok.kind in ("num", "("):
            raise ExpressionError(f"missing an operator before {tok.text!r} at position {tok.pos}")
        if tok.kind != "end":
            raise ExpressionError(f"unexpected {tok.text!r} at position {tok.pos}")
        return node

    def expr(self) -> Node:
        node = self.term()
        while self.peek().kind == "op" and self.peek().text in "+-":
            op = self.take().text
            node = BinOp(op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.factor()
        while self.peek().kind == "op" and self.peek().text in "*/":
            op = self.take().text
            node = BinOp(op, node, self.factor())
        return node

    def factor(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            return Num(int(tok.text))
        if tok.kind == "(":
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise ExpressionError(f"parentheses are nested more than {MAX_NESTING} deep")
            node = self.expr()
            close = self.take()
            if close.kind != ")":
                raise ExpressionError(f"missing ')' for the '(' at position {tok.pos}")
            self.depth -= 1
            return node
        if tok.kind == "op" and tok.text in "+-":
            # Numbers must be used as given: "-4" would make a new number out of 4.
            raise ExpressionError(
                f"unary {tok.text!r} at position {tok.pos} is not allowed; use each number as given"
            )
        if tok.kind == "end":
            raise ExpressionError("the expression ends too early (missing a number?)")
        raise ExpressionError(f"expected a number or '(' at position {tok.pos}, got {tok.text!r}")


def parse_expression(text: str) -> Node:
    """Parse ``text`` into a tree; raise :class:`ExpressionError` if malformed."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(
            f"the expression is {len(text)} characters long; at most "
            f"{MAX_EXPRESSION_CHARS} are allowed"
        )
    return _Parser(tokenize(text)).parse()


def numbers_used(node: Node) -> list[int]:
    if isinstance(node, Num):
        return [node.value]
    return numbers_used(node.left) + numbers_used(node.right)


def evaluate(node: Node) -> Fraction:
    """Exact value of ``node``; raises :class:`DivisionByZero`."""
    if isinstance(node, Num):
        return Fraction(node.value)
    left, right = evaluate(node.left), evaluate(node.right)
    if node.op == "+":
        return left + right
    if node.op == "-":
        return left - right
    if node.op == "*":
        return left * right
    if right == 0:
        raise DivisionByZero
    return left / right


def format_value(value: Fraction) -> str:
    text = str(value)  # "22" or "23/2"
    return text if len(text) <= 24 else f"about {float(value):.6g}"


def closeness_score(value: Fraction) -> float:
    """Partial credit in (0, 0.5] for a wrong value: 0.4 at distance 1, 0.25 at 4, → 0."""
    distance = float(abs(value - TARGET))
    return max(0.5 * 4.0 / (4.0 + distance), 1e-6)


_TIMES = {1: "once", 2: "twice", 3: "three times", 4: "four times", 5: "five times"}


def _count_phrase(count: int) -> str:
    return _TIMES.get(count, f"{count} times")


def _number_problems(puzzle: list[int], used: list[int]) -> list[str]:
    have, want = Counter(used), Counter(puzzle)
    problems: list[str] = []
    for n in sorted(have):
        if n not in want:
            problems.append(f"uses {n}, which is not in the puzzle")
        elif have[n] > want[n]:
            times, allowed = _count_phrase(have[n]), _count_phrase(want[n])
            problems.append(f"uses {n} {times} (allowed {allowed})")
    missing = sorted((want - have).elements())
    if missing:
        problems.append("does not use " + ", ".join(str(n) for n in missing))
    return problems


def check_expression(numbers: list[int], expr: str) -> Verdict:
    """Judge ``expr`` as an answer to the puzzle ``numbers``. Pure and total: never
    raises on any input text."""
    if not isinstance(expr, str):
        return Verdict(False, 0.0, "the answer must be text")
    try:
        tree = parse_expression(expr)
    except ExpressionError as exc:
        return Verdict(False, 0.0, f"not a valid expression: {exc}")

    puzzle_text = " ".join(str(n) for n in numbers)
    problems = _number_problems(list(numbers), numbers_used(tree))
    try:
        value: Fraction | None = evaluate(tree)
    except DivisionByZero:
        value = None
        problems.insert(0, "divides by zero")
    if problems:
        return Verdict(False, 0.0, f"{'; '.join(problems)} (puzzle: {puzzle_text})")
    assert value is not None
    if value == TARGET:
        return Verdict(True, 1.0, "correct: uses every number once and makes 24")
    return Verdict(
        False,
        closeness_score(value),
        f"evaluates to {format_value(value)}, not {TARGET}",
    )


def _puzzle_numbers(problem: Problem) -> list[int] | None:
    data: Any = problem.input
    if not isinstance(data, dict):
        return None
    numbers = data.get("numbers")
    if not isinstance(numbers, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) for n in numbers
    ):
        return None
    return numbers


class Game24Verifier:
    name = "game24"

    async def verify(self, problem: Problem, answer: str) -> Verdict:
        numbers = _puzzle_numbers(problem)
        if numbers is None:
            return Verdict(False, 0.0, "the problem has no input.numbers to check against")
        return check_expression(numbers, answer)


def check_spec(spec: dict[str, Any], problem: Problem, models: Models | None) -> None:
    if problem.task != "game24":
        raise ValueError("the game24 verifier needs a `game24` task problem")


@register("game24", check=check_spec)
def build(spec: dict[str, Any]) -> Verifier:
    return Game24Verifier()
