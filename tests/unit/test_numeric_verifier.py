"""The numeric verifier: reading numbers out of untrusted text, tolerance, scoring."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from typing import Any

import pytest

from ponder.families import verifier_for
from ponder.problem import Problem
from ponder.verifiers import build_verifier, validate_verifier_spec
from ponder.verifiers.numeric import NumberError, NumericVerifier, parse_number
from tests.bounds import BLOWUP_SECONDS, finishes_within


def check(expected: Any, answer: str, **options: float) -> tuple[bool, float, str]:
    v = NumericVerifier(**options).check(expected, answer)
    return v.passed, v.score, v.feedback


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("-7", -7),
        ("−7", -7),
        ("1,234,567", 1234567),
        ("$1,234.50", Fraction(246900, 200)),
        ("3/4", Fraction(3, 4)),
        ("-3/4", Fraction(-3, 4)),
        ("2 1/2", Fraction(5, 2)),
        ("\\frac{3}{4}", Fraction(3, 4)),
        ("\\dfrac{-3}{4}", Fraction(-3, 4)),
        ("\\boxed{17}", 17),
        ("the total is \\boxed{\\frac{1}{3}} apples", Fraction(1, 3)),
        ("so the shop has 59 apples.", 59),
        ("**Answer:** 12", 12),
        ("$12$", 12),
        ("1.5e3", 1500),
        (".5", Fraction(1, 2)),
        ("0.25", Fraction(1, 4)),
        ("10 - 3 = 7", 7),
        ("x = 5-3, i.e. 2", 2),
        ("1\\,000", 1000),
        ("½", Fraction(1, 2)),
        ("(-12)", -12),
    ],
)
def test_parses(text: str, value: Fraction | int) -> None:
    assert parse_number(text).value == value


@pytest.mark.parametrize("text", ["", "no number here", "∞", "nan", "inf", "\\boxed{}", "٣"])
def test_unreadable(text: str) -> None:
    with pytest.raises(NumberError):
        parse_number(text)


def test_correct_and_tolerance() -> None:
    assert check(42, "Answer: 42")[:2] == (True, 1.0)
    assert check(42, "42.0000000001")[0]
    assert not check(42, "42.001")[0]
    assert check(42, "42.001", rel_tol=1e-3)[0]
    assert check(0, "0.0000000001")[0]
    assert not check(0, "0.001")[0]
    assert check(0, "0.001", abs_tol=0.01)[0]
    assert check("3/4", "0.75")[0]
    assert check(0.1, "1/10", rel_tol=0.0, abs_tol=0.0)[0]  # 0.1 means one tenth
    assert check("1,000", "1000")[0]


def test_percent_matches_either_reading() -> None:
    assert check(50, "50%")[0]
    assert check(0.5, "50%")[0]
    assert check("50%", "0.5")[0]
    assert check("50%", "50")[0]
    assert not check(0.6, "50%")[0]


def test_wrong_answers_score_below_half_and_shrink_with_error() -> None:
    near = check(100, "101")
    mid = check(100, "150")
    far = check(100, "100000")
    negative = check(100, "-100")
    for passed, score, _ in (near, mid, far, negative):
        assert not passed
        assert 0.0 <= score < 0.5
    assert near[1] > mid[1] > far[1]
    assert "100" not in near[2].replace("101", ""), "feedback must not reveal the answer"


def test_unparseable_scores_zero_with_feedback() -> None:
    passed, score, feedback = check(42, "I don't know")
    assert (passed, score) == (False, 0.0)
    assert "no number" in feedback


@pytest.mark.parametrize(
    "answer",
    [
        "9" * 100_000,  # too long to read
        "1" * 500,  # too many digits
        "1e999999999",  # exponent out of range
        "1e-99999999999999999999",
        "3/0",
        "\\boxed{" * 5000 + "1" + "}" * 5000,
        "{" * 10_000,
        "1 " * 4000 + "/",
        "- " * 4000,
        "\x00\ud800",
        "1" + " " * 9000 + "x",
    ],
)
def test_adversarial_answers_are_judged_without_blowing_up_and_never_pass(answer: str) -> None:
    # each is read in milliseconds; computed naively (10**999999999, a 100 000-digit
    # number, 5 000 nested groups) it would take hours (bench/hostile.py prints the figures)
    with finishes_within(BLOWUP_SECONDS, "judging a hostile answer"):
        verdict = NumericVerifier().check(42, answer)
    assert not verdict.passed
    assert 0.0 <= verdict.score < 0.5


def test_huge_but_bounded_numbers() -> None:
    passed, score, _ = check(42, "1e900")
    assert not passed and score == 0.0
    assert check("1e900", "1e900")[0]


@pytest.mark.parametrize(
    ("expected", "phrase"),
    [
        (None, "needs `problem.expected`"),
        (True, "not a boolean"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        ("many", "not a number"),
        ([1], "must be a number"),
    ],
)
def test_bad_expected(expected: Any, phrase: str) -> None:
    passed, score, feedback = check(expected, "1")
    assert (passed, score) == (False, 0.0)
    assert phrase in feedback


def free(expected: Any) -> Problem:
    return Problem(prompt="How many?", expected=expected)


def test_spec_validation() -> None:
    validate_verifier_spec({"type": "numeric"}, free(3))
    validate_verifier_spec({"type": "numeric", "rel_tol": 0.01, "abs_tol": 0}, free(3))
    bad: list[tuple[dict[str, Any], Problem, str]] = [
        ({"type": "numeric"}, free(None), "needs `problem.expected`"),
        ({"type": "numeric"}, free("lots"), "not a number"),
        ({"type": "numeric", "tol": 1}, free(3), "its options are rel_tol, abs_tol"),
        ({"type": "numeric", "rel_tol": "1"}, free(3), "'rel_tol' must be a number"),
        ({"type": "numeric", "rel_tol": True}, free(3), "'rel_tol' must be a number"),
        ({"type": "numeric", "rel_tol": -1}, free(3), "≥ 0"),
        ({"type": "numeric", "rel_tol": 2}, free(3), "below 1"),
        ({"type": "numeric", "abs_tol": float("inf")}, free(3), "finite"),
        ({"type": "exact", "rel_tol": 0.1}, free(3), "takes no options"),
    ]
    for spec, problem, phrase in bad:
        with pytest.raises(ValueError) as excinfo:
            validate_verifier_spec(spec, problem)
        assert phrase in str(excinfo.value), (spec, str(excinfo.value))


def test_build_verifier_passes_options() -> None:
    verifier = build_verifier({"type": "numeric", "rel_tol": 0.1})
    assert isinstance(verifier, NumericVerifier)
    verdict = asyncio.run(verifier.verify(free(100), "95"))
    assert verdict.passed


def test_arithmetic_task_defaults_to_numeric() -> None:
    problem = Problem(task="arithmetic", input={"question": "x"}, expected=3)
    assert isinstance(verifier_for(None, problem), NumericVerifier)
