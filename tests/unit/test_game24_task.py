"""The Game of 24 task: input validation, prompts, and its place in the registry."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ponder.families import get_task, messages_for
from ponder.families.game24 import TASK, format_prompt, parse_prompt
from ponder.problem import Problem

EXPECTED_PROMPT = (
    "Use the numbers 4 9 10 13 and the operations + - * / with parentheses to make 24. "
    "Use every number exactly once.\n"
    "Think step by step, then give the expression on the last line as: Answer: <expression>"
)


@pytest.mark.parametrize(
    "numbers", [[4, 9, 10, 13], [1, 1, 1], [100, 100, 100, 100, 100, 100], [1, 2, 3, 4, 5]]
)
def test_valid_inputs_pass(numbers: list[int]) -> None:
    TASK.validate_input({"numbers": numbers})


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        ({}, "input.numbers is missing"),
        ({"numbers": [4, 9, 10, 13], "target": 24}, "unknown keys ['target']"),
        ({"numbers": "4 9 10 13"}, "must be a list of 3 to 6 integers between 1 and 100"),
        ({"numbers": None}, "must be a list"),
        ({"numbers": [4, 9]}, "got 2 numbers"),
        ({"numbers": []}, "got 0 numbers"),
        ({"numbers": [1, 2, 3, 4, 5, 6, 7]}, "got 7 numbers"),
        ({"numbers": [4, 9, 10, 0]}, "got 0 in"),
        ({"numbers": [4, 9, 10, 101]}, "got 101 in"),
        ({"numbers": [4, 9, 10, -13]}, "got -13 in"),
        ({"numbers": [4, 9, 10, 13.0]}, "got 13.0 in"),
        ({"numbers": [4, 9, 10, True]}, "got True in"),
        ({"numbers": [4, 9, 10, "13"]}, "got '13' in"),
        ({"numbers": [4, 9, 10, [13]]}, "got [13] in"),
    ],
)
def test_invalid_inputs_say_what_to_fix(data: dict[str, Any], phrase: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        TASK.validate_input(data)
    message = str(excinfo.value)
    assert phrase in message
    assert "input" in message


def test_input_must_be_an_object() -> None:
    with pytest.raises(ValueError, match="must be an object"):
        TASK.validate_input([4, 9, 10, 13])  # type: ignore[arg-type]


def test_prompt_wording() -> None:
    assert format_prompt([4, 9, 10, 13]) == EXPECTED_PROMPT


def test_prompt_round_trips_for_every_valid_shape() -> None:
    rng = random.Random(0)
    for _ in range(500):
        numbers = [rng.randint(1, 100) for _ in range(rng.randint(3, 6))]
        assert parse_prompt(format_prompt(numbers)) == numbers


def test_parse_prompt_finds_the_puzzle_inside_other_text() -> None:
    text = "You are a careful solver.\n\n" + format_prompt([3, 3, 8, 8]) + "\n\nBe brief."
    assert parse_prompt(text) == [3, 3, 8, 8]


def test_parse_prompt_takes_the_last_puzzle() -> None:
    text = format_prompt([1, 2, 3, 4]) + "\n...\n" + format_prompt([3, 3, 8, 8])
    assert parse_prompt(text) == [3, 3, 8, 8]


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France?",
        "",
        "Use the numbers 1 2 and the operations + - * / with parentheses to make 24.",
        "Use the numbers 1 2 3 4 5 6 7 and the operations + - * / with parentheses to make 24.",
        "Use the numbers 0 2 3 4 and the operations + - * / with parentheses to make 24.",
        "Use the numbers 1 2 3 400 and the operations + - * / with parentheses to make 24.",
        "Use the numbers 1 2 3 4 and the operations + - * / with parentheses to make 25.",
        "Use the numbers " + "1 " * 50_000,  # long and almost matching: must stay fast
    ],
)
def test_parse_prompt_rejects_other_text(text: str) -> None:
    assert parse_prompt(text) is None


def test_messages_pose_the_puzzle_as_one_user_message() -> None:
    problem = Problem(task="game24", input={"numbers": [4, 9, 10, 13]})
    assert TASK.messages(problem) == [{"role": "user", "content": EXPECTED_PROMPT}]
    assert messages_for(problem) == TASK.messages(problem)


def test_messages_refuse_an_invalid_instance() -> None:
    with pytest.raises(ValueError, match=r"input\.numbers"):
        TASK.messages(Problem(task="game24", input={"numbers": [4, 9]}))


def test_registry_and_default_verifier() -> None:
    assert get_task("game24") is TASK
    assert TASK.name == "game24"
    assert "24" in TASK.description
    assert TASK.default_verifier().name == "game24"
    assert TASK.parse_answer("...\nAnswer: (13 - 9) * (10 - 4) = 24") == "(13 - 9) * (10 - 4)"
