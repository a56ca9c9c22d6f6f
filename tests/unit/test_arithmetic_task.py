"""The arithmetic task: input validation, prompt round trip, answer parsing, generator."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ponder.families import get_task, messages_for
from ponder.families.arithmetic import (
    TASK,
    format_prompt,
    make_problem,
    parse_answer,
    parse_prompt,
)
from ponder.problem import Problem
from ponder.verifiers.numeric import NumericVerifier

QUESTION = "A shop has 17 apples. It sells 5 apples. How many apples does the shop have now?"


def test_registered() -> None:
    assert get_task("arithmetic") is TASK
    assert isinstance(TASK.default_verifier(), NumericVerifier)


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        ({}, "input.question is missing"),
        ({"question": ""}, "input.question is empty"),
        ({"question": "   \n"}, "input.question is empty"),
        ({"question": 7}, "input.question must be text"),
        ({"question": "x" * 4001}, "4001 characters long; at most 4000"),
        ({"question": QUESTION, "answer": 12}, "unknown keys ['answer']"),
    ],
)
def test_invalid_inputs(data: dict[str, Any], phrase: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        TASK.validate_input(data)
    assert phrase in str(excinfo.value)


def test_input_must_be_an_object() -> None:
    with pytest.raises(ValueError, match="must be an object"):
        TASK.validate_input("2 + 2")  # type: ignore[arg-type]


def test_valid_input_and_messages() -> None:
    TASK.validate_input({"question": "x" * 4000})
    problem = Problem(task="arithmetic", input={"question": QUESTION}, expected=12)
    messages = messages_for(problem)
    assert len(messages) == 1 and messages[0]["role"] == "user"
    content = messages[0]["content"]
    assert "step by step" in content and "Answer: <number>" in content
    assert parse_prompt(content) == QUESTION


def test_parse_prompt_takes_the_last_question() -> None:
    text = format_prompt("first?") + "\n\n" + format_prompt(QUESTION)
    assert parse_prompt(text) == QUESTION
    assert parse_prompt("What is 2 + 2?") is None


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Step 1: 17 - 5 = 12\nAnswer: 12", "12"),
        ("answer: 12 apples.", "12"),
        ("Answer: 1,234", "1234"),
        ("Answer: -3", "-3"),
        ("Answer: 3/4", "0.75"),
        ("Answer: 1/3", "1/3"),
        ("Answer: \\boxed{42}", "42"),
        ("So it is \\boxed{\\frac{3}{4}}.", "0.75"),
        ("Answer: 7\nWait.\nAnswer: 9", "9"),
        ("**Answer:** $12$", "12"),
        ("Answer: 50%", "50%"),
        ("Answer: 12.50", "12.5"),
        ("The answer is 12", None),
        ("Answer: unknown", None),
        ("", None),
    ],
)
def test_parse_answer(text: str, answer: str | None) -> None:
    assert parse_answer(text) == answer


def test_generator_is_deterministic_and_integer() -> None:
    for depth in range(1, 13):
        a = [make_problem(depth, random.Random(depth)) for _ in range(3)]
        b = [make_problem(depth, random.Random(depth)) for _ in range(3)]
        assert a == b
    rng = random.Random(0)
    for _ in range(300):
        depth = rng.randint(1, 12)
        question, answer = make_problem(depth, rng)
        assert isinstance(answer, int) and answer > 0
        TASK.validate_input({"question": question})
        assert question.endswith("have now?")


@pytest.mark.parametrize("depth", [0, 13, -1, True, 2.0])
def test_generator_rejects_bad_depth(depth: Any) -> None:
    with pytest.raises(ValueError, match="depth must be an integer from 1 to 12"):
        make_problem(depth, random.Random(0))


def test_generator_depth_counts_operations() -> None:
    from ponder.sim.skills.arithmetic import read_story

    rng = random.Random(5)
    for depth in (1, 2, 4, 8, 12):
        for _ in range(20):
            question, _ = make_problem(depth, rng)
            story = read_story(question)
            assert story is not None, question
            assert sum(2 if op.times else 1 for op in story.ops) == depth
