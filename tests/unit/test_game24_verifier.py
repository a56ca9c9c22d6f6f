"""The Game of 24 verifier: exact, safe, and clear about what is wrong."""

from __future__ import annotations

import asyncio
import random

import pytest

from ponder.families.game24 import parse_answer
from ponder.problem import Problem
from ponder.verifiers.base import Verdict
from ponder.verifiers.game24 import Game24Verifier, check_expression

PUZZLE = [4, 9, 10, 13]


def check(expr: str, numbers: list[int] | None = None) -> Verdict:
    return check_expression(PUZZLE if numbers is None else numbers, expr)


# --- correct answers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("numbers", "expr"),
    [
        ([4, 9, 10, 13], "(13 - 9) * (10 - 4)"),
        ([4, 9, 10, 13], "(10-4)*(13-9)"),
        ([4, 9, 10, 13], "4 * (9 + 10 - 13)"),
        ([4, 9, 10, 13], "(13 - 9) * (10 - 4) = 24"),
        ([4, 9, 10, 13], "  (13-9)*(10-4)=24  "),
        ([4, 9, 10, 13], "(13 − 9) × (10 − 4)"),  # unicode minus and times
        ([4, 9, 10, 13], "((((13 - 9)))) * ((10 - 4))"),
        ([3, 3, 8, 8], "8 / (3 - 8 / 3)"),  # exact: a float would give 23.999…
        ([1, 5, 5, 5], "5 × (5 − 1 ÷ 5)"),
        ([2, 3, 5, 12], "12 / (3 - 5 / 2)"),
        ([4, 4, 10, 10], "(10 * 10 - 4) / 4"),
        ([1, 2, 3, 4], "1 * 2 * 3 * 4"),
        ([2, 3, 4], "2 * 3 * 4"),
        ([1, 2, 3, 4, 5, 6], "(6 - 5) * 1 * 2 * 3 * 4"),
        ([6, 6, 6, 6], "6+6+6+6"),
    ],
)
def test_correct_solutions_pass(numbers: list[int], expr: str) -> None:
    verdict = check_expression(numbers, expr)
    assert verdict.passed, verdict.feedback
    assert verdict.score == 1.0


def test_numbers_may_come_in_any_order() -> None:
    assert check("(9 - 13 + 10) * 4").passed
    assert check("(10 + 9 - 13) * 4").passed


# --- wrong answers: what is wrong, in plain words ----------------------------------------


def test_wrong_value_gets_partial_score_and_says_the_value() -> None:
    verdict = check("4 + 9 + 10 - 13")
    assert not verdict.passed
    assert "evaluates to 10, not 24" in verdict.feedback
    assert 0.0 < verdict.score <= 0.5


def test_partial_score_grows_as_the_value_nears_24() -> None:
    far = check("4 * 9 * 10 * 13")  # 4680
    off_by_24 = check("(13 - 10 + 9) * 4")  # 48
    off_by_6 = check("13 + 10 - 9 + 4")  # 18
    off_by_1 = check("(13 - 10) * 9 - 4")  # 23
    assert 0.0 < far.score < off_by_24.score < off_by_6.score < off_by_1.score <= 0.5
    assert "evaluates to 23, not 24" in off_by_1.feedback


def test_fraction_value_is_reported_exactly() -> None:
    verdict = check("13 / (9 - 4) + 10")  # 13/5 + 10 = 63/5
    assert not verdict.passed
    assert "63/5" in verdict.feedback


@pytest.mark.parametrize(
    ("expr", "phrase"),
    [
        ("(13 - 9) * (13 - 4)", "uses 13 twice"),
        ("(13 - 9) * (10 - 4) * 1", "uses 1, which is not in the puzzle"),
        ("(13 - 9) * 6", "uses 6, which is not in the puzzle"),
        ("(13 - 9) * 6", "does not use 4, 10"),
        ("4 * 6", "does not use 9, 10, 13"),
        ("24", "uses 24, which is not in the puzzle"),
        ("24 = 24", "uses 24"),
    ],
)
def test_wrong_numbers_are_named(expr: str, phrase: str) -> None:
    verdict = check(expr)
    assert not verdict.passed
    assert verdict.score == 0.0
    assert phrase in verdict.feedback


def test_duplicates_in_the_puzzle_may_each_be_used_once() -> None:
    assert check_expression([3, 3, 8, 8], "8 / (3 - 8 / 3)").passed
    verdict = check_expression([3, 3, 8, 8], "8 / (3 - 8 / 3) * 3 / 3")
    assert not verdict.passed
    assert "uses 3 four times (allowed twice)" in verdict.feedback


def test_division_by_zero_is_rejected() -> None:
    verdict = check_expression([4, 4, 10, 10], "(10 + 10) / (4 - 4)")
    assert not verdict.passed
    assert verdict.score == 0.0
    assert "divides by zero" in verdict.feedback
    # a zero made from fractions is still zero
    assert "divides by zero" in check_expression([3, 3, 8, 8], "8 / (3 - 3) / (8 / 8)").feedback


# --- malformed or hostile input: passed False, score 0, a clear reason ------------------


@pytest.mark.parametrize(
    ("expr", "phrase"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("(13 - 9) * (10 - 4", "missing ')'"),
        ("(13 - 9) * (10 - 4))", "unexpected ')'"),
        ("13 - 9 *", "ends too early"),
        ("4 9 10 13", "missing an operator"),
        ("(13 - 9)(10 - 4)", "missing an operator"),
        ("()", "expected a number"),
        ("4 ** 2 + 9 - 10 + 13", "'**' (power) is not allowed"),
        ("-4 + 9 + 10 + 13", "unary '-'"),
        ("4 * -6", "unary '-'"),
        ("(13 - 9) * -(4 - 10)", "unary '-'"),
        ("+4 + 9 - 10 + 13", "unary '+'"),
        ("(13 - 9) * (10 - 04)", "leading zero"),
        ("(13 - 9) * (10 - 4.0)", "decimals"),
        ("1.5 * 16", "decimals"),
        ("(13 - 9) * (10 - 4) = 23", "only '= 24'"),
        ("(13 - 9) * (10 - 4) == 24", "only '= 24'"),
        ("(13 - 9) * (10 - 4) = 24 + 0", "only '= 24'"),
        ("(13 - 9) ^ 2", "unexpected character '^'"),
        ("__import__('os').system('true')", "unexpected character '_'"),
        ("13\x00 - 9", "U+0000"),
        ("4 * 6 🙂", "unexpected character '🙂'"),
        ("２４", "unexpected character"),  # fullwidth digits are not ASCII integers
        ("2⁴ + 8", "unexpected character"),
        ("1e3", "unexpected character 'e'"),
        ("0x18", "unexpected character 'x'"),
        ("4 % 9", "unexpected character '%'"),
        ("[13 - 9] * [10 - 4]", "unexpected character '['"),
    ],
)
def test_malformed_input_is_rejected(expr: str, phrase: str) -> None:
    verdict = check(expr)
    assert not verdict.passed
    assert verdict.score == 0.0
    assert phrase in verdict.feedback, verdict.feedback


def test_over_long_input_is_rejected_without_parsing() -> None:
    verdict = check("(" * 5_000 + "4" + ")" * 5_000)
    assert not verdict.passed
    assert "at most 200" in verdict.feedback
    assert "at most 200" in check("4 + " * 2_500 + "4").feedback  # 10k characters


def test_200_characters_is_still_accepted() -> None:
    expr = "(13 - 9) * (10 - 4)"
    padded = expr + " " * (200 - len(expr))
    assert check(padded).passed
    assert not check(padded + " ").passed


def test_nesting_limit() -> None:
    ok = "(" * 50 + "13 - 9" + ")" * 50 + " * (10 - 4)"
    too_deep = "(" * 51 + "13 - 9" + ")" * 51 + " * (10 - 4)"
    assert check(ok).passed
    verdict = check(too_deep)
    assert not verdict.passed
    assert "nested more than 50" in verdict.feedback


def test_huge_integers_are_just_wrong_numbers() -> None:
    verdict = check("9" * 90 + " - " + "9" * 90 + " + 24")
    assert not verdict.passed
    assert "not in the puzzle" in verdict.feedback


def test_random_garbage_never_raises() -> None:
    rng = random.Random(0)
    alphabet = "0123456789+-*/()= ×÷−.^%_abc\x00🙂"
    for _ in range(3_000):
        expr = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        verdict = check(expr)
        assert 0.0 <= verdict.score <= 1.0
        assert verdict.feedback
        if verdict.passed:
            assert verdict.score == 1.0


# --- the async verifier ------------------------------------------------------------------


def test_verifier_reads_the_numbers_from_the_problem() -> None:
    verifier = Game24Verifier()
    assert verifier.name == "game24"
    problem = Problem(task="game24", input={"numbers": [3, 3, 8, 8]})
    assert asyncio.run(verifier.verify(problem, "8 / (3 - 8 / 3)")).passed
    assert not asyncio.run(verifier.verify(problem, "(13 - 9) * (10 - 4)")).passed


def test_verifier_without_numbers_explains() -> None:
    verdict = asyncio.run(Game24Verifier().verify(Problem(prompt="make 24"), "4 * 6"))
    assert not verdict.passed
    assert "input.numbers" in verdict.feedback


# --- reading the answer out of a completion ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: (13 - 9) * (10 - 4)", "(13 - 9) * (10 - 4)"),
        ("thinking...\nanswer: (13-9)*(10-4) = 24", "(13-9)*(10-4)"),
        ("ANSWER:4*6", "4*6"),
        ("Answer: `(13-9)*(10-4)`", "(13-9)*(10-4)"),
        ("Answer: $ (13-9)*(10-4) = 24 $", "(13-9)*(10-4)"),
        ("Answer: ``(13-9)*(10-4) =24``.", "(13-9)*(10-4)"),
        ("**Answer:** (13-9)*(10-4)", "(13-9)*(10-4)"),
        ("Answer: 1 + 2\nmore thoughts\nAnswer: 3 * 8\n", "3 * 8"),
        ("Answer: 3 * 8\nI am confident.", "3 * 8"),
        ("The answer is 24", None),
        ("no answer here", None),
        ("Answer:", None),
        ("Answer:   \n", None),
        ("Answer: ``", None),
        ("", None),
    ],
)
def test_parse_answer(text: str, expected: str | None) -> None:
    assert parse_answer(text) == expected


def test_parse_answer_then_check() -> None:
    text = "Let me try.\n13 - 9 = 4\n10 - 4 = 6\nAnswer: `(13 − 9) × (10 − 4) = 24`"
    answer = parse_answer(text)
    assert answer is not None
    assert check(answer).passed
