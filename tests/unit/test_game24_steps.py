"""Game of 24 step prompts (Tree of Thoughts setup) and the simulated model's answers to
them: formats round-trip, bad lines are dropped, paths become checkable expressions, and
the sim's judgements get better with more tokens."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from ponder.families import StepState, StepTask, get_step_task
from ponder.families.game24 import (
    STEPS,
    Step,
    evaluate_messages,
    expression_from_steps,
    fallback_expression,
    heuristic,
    legal_steps,
    make_step,
    parse_evaluation,
    parse_proposals,
    parse_step,
    parse_step_prompt,
    propose_messages,
)
from ponder.problem import Problem
from ponder.sim.model import respond
from ponder.sim.skill import Draw
from ponder.sim.skills.game24_steps import evaluate, propose
from ponder.verifiers.game24 import check_expression

F = Fraction


# --- prompts and parsing ------------------------------------------------------------


def test_step_line_format_round_trips() -> None:
    step = make_step([4, 9, 10, 13], 13, "-", 9)
    assert step is not None
    assert step.line() == "13 - 9 = 4 (left: 4 4 10)"
    assert parse_step(step.line(), [4, 9, 10, 13]) == step


@pytest.mark.parametrize("numbers", [[4, 9, 10, 13], [1, 5, 5, 5], [3, 8, 8], [F(8, 3), 3, 8]])
def test_every_legal_step_round_trips(numbers: list[Fraction | int]) -> None:
    steps = legal_steps(numbers)
    assert steps
    text = "\n".join(s.line() for s in steps)
    assert parse_proposals(text, numbers) == steps


def test_prompts_round_trip_through_the_sim_parser() -> None:
    kind, left = parse_step_prompt(propose_messages([4, 4, 10], ["13 - 9 = 4"])[0]["content"]) or (
        "",
        [],
    )
    assert (kind, left) == ("propose", [4, 4, 10])
    parsed = parse_step_prompt(evaluate_messages([F(8, 3), 3, 8])[0]["content"])
    assert parsed == ("evaluate", [F(8, 3), 3, 8])
    assert parse_step_prompt("Use the numbers 1 2 3 4 and the operations") is None


def test_propose_prompt_shows_the_steps_so_far() -> None:
    step = make_step([4, 9, 10, 13], 13, "-", 9)
    assert step is not None
    content = propose_messages(step.left, [step])[0]["content"]
    assert "13 - 9 = 4 (left: 4 4 10)" in content
    assert "Numbers left: 4 4 10" in content


def test_parse_proposals_keeps_valid_steps_and_drops_bad_lines() -> None:
    text = "\n".join(
        [
            "Possible next steps:",
            "1. 13 - 9 = 4 (left: 4 4 10)",  # numbered: fine
            "- 10 - 4 = 6 (left: 6 9 13)",  # bulleted: fine
            "**4 × 9 = 36 (left: 10 13 36)**",  # unicode operator, bold: fine
            "9 / 4 = 9/4 (left: 9/4 10 13)",  # a fraction: fine
            "13 - 9 = 5 (left: 4 5 10)",  # wrong arithmetic
            "13 + 10 = 23 (left: 4 9 22)",  # wrong left list
            "13 + 10 = 23 (left: 4 9)",  # left list too short
            "13 + 13 = 26 (left: 4 9 10 26)",  # 13 is there only once
            "7 + 4 = 11 (left: 9 10 11 13)",  # 7 is not a number left
            "4 / 0 = 0 (left: 0 9 10 13)",  # not a number left, and division by zero
            "13 - 9 = 4 (left: 4 4 10)",  # duplicate
            "13 - 9 = 4",  # no left list
            "let me think: 13 - 9 = 4 (left: 4 4 10)",  # prose before the step
        ]
    )
    steps = parse_proposals(text, [4, 9, 10, 13])
    assert [s.line() for s in steps] == [
        "13 - 9 = 4 (left: 4 4 10)",
        "10 - 4 = 6 (left: 6 9 13)",
        "4 * 9 = 36 (left: 10 13 36)",
        "9 / 4 = 9/4 (left: 9/4 10 13)",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n\n",
        "(" * 10_000,
        "1 + 1 = 2 (left: " + "1 " * 5_000 + ")",
        "9" * 5_000 + " + 4 = 13 (left: 10 13 13)",
        "4 + 9 = 13 (left: 10 13 13)" * 50,
        "\x00\ufeff 4 + 9 = 13 (left: 10 13 13)",
        "4 / 0 = 0 (left: 0 10 13)",
        "4 + 9 = 1/0 (left: 1/0 10 13)",
        "4 ** 9 = 262144 (left: 10 13 262144)",
    ],
)
def test_adversarial_text_is_dropped_not_raised(text: str) -> None:
    assert parse_proposals(text, [4, 9, 10, 13]) == []


def test_division_by_zero_step_is_dropped() -> None:
    assert parse_proposals("5 / 0 = 0 (left: 0 5)", [0, 5, 5]) == []
    assert make_step([0, 5], 5, "/", 0) is None


def test_fractions_and_parenthesised_operands() -> None:
    left = [F(8, 3), 3, 8]
    step = parse_step("8 / (8/3) = 3 (left: 3 3)", left)
    assert step is not None and step.left == (3, 3)
    assert parse_step("2.5 * 2 = 5 (left: 5)", [F(5, 2), 2]) is not None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4 6: makes 24\nsure", 1.0),
        ("... likely", 0.5),
        ("IMPOSSIBLE.", 0.0),
        ("sure? no wait, impossible", 0.0),
        ("I cannot tell", 0.25),
        ("", 0.25),
        ("unsure", 0.25),
    ],
)
def test_parse_evaluation(text: str, value: float) -> None:
    assert parse_evaluation(text) == value


def test_heuristic_is_cheap_and_bounded() -> None:
    assert heuristic([24]) == 1.0 and heuristic([23]) == 0.0
    assert heuristic([4, 6]) == 1.0 and heuristic([11, 12]) == 0.0
    for numbers in ([4, 4, 10], [F(9, 4), 10, 13], [-5, 10, 13], [1, 100, 1000], [4, 9, 10, 13]):
        assert 0.0 <= heuristic(numbers) <= 0.9
    assert heuristic([4, 4, 10]) > heuristic([F(9, 4), -10, 130])


# --- paths to expressions -----------------------------------------------------------


def test_expression_from_steps_is_verified() -> None:
    steps = ["13 - 9 = 4 (left: 4 4 10)", "10 - 4 = 6 (left: 4 6)", "4 * 6 = 24 (left: 24)"]
    expr = expression_from_steps([4, 9, 10, 13], steps)
    assert expr == "(13 - 9) * (10 - 4)"
    assert check_expression([4, 9, 10, 13], expr).passed


def test_expression_from_steps_with_fractions() -> None:
    path: list[Step] = []
    left: list[Fraction | int] = [3, 3, 8, 8]
    for a, op, b in ((F(8), "/", F(3)), (F(3), "-", F(8, 3)), (F(8), "/", F(1, 3))):
        step = make_step(left, a, op, b)
        assert step is not None
        path.append(step)
        left = list(step.left)
    expr = expression_from_steps([3, 3, 8, 8], path)
    assert check_expression([3, 3, 8, 8], expr).passed, expr


def test_expression_from_steps_rejects_bad_paths() -> None:
    with pytest.raises(ValueError):
        expression_from_steps([4, 9, 10, 13], ["13 - 9 = 4 (left: 4 4 10)"])  # unfinished
    with pytest.raises(ValueError):
        expression_from_steps([4, 9, 10, 13], ["13 - 7 = 6 (left: 4 6 9 10)"])


def test_fallback_expression_is_well_formed() -> None:
    expr = fallback_expression([4, 9, 10, 13], ["13 - 9 = 4 (left: 4 4 10)"])
    verdict = check_expression([4, 9, 10, 13], expr)
    assert not verdict.passed and verdict.score > 0  # right numbers, wrong value


def test_game24_is_a_step_task() -> None:
    task = get_step_task("game24")
    assert task is STEPS and isinstance(task, StepTask)
    assert get_step_task("no-such-task") is None and get_step_task(None) is None
    problem = Problem(task="game24", input={"numbers": [4, 9, 10, 13]})
    root = task.root(problem)
    assert root == StepState(left=("4", "9", "10", "13"))
    text = "13 - 9 = 4 (left: 4 4 10)\n10 - 4 = 6 (left: 6 9 13)"
    kids = task.parse_proposals(text, root)
    assert [k.left for k in kids] == [("4", "4", "10"), ("6", "9", "13")]
    state = kids[0]
    for line in ("10 - 4 = 6 (left: 4 6)", "4 * 6 = 24 (left: 24)"):
        (state,) = task.parse_proposals(line, state)
    assert task.is_terminal(state) and state.depth == 3
    assert task.answer(problem, state) == "(13 - 9) * (10 - 4)"
    assert task.heuristic(state) == 1.0


# --- the simulated model ------------------------------------------------------------


def _solvable(values: list[Fraction]) -> bool:
    if len(values) == 1:
        return values[0] == 24
    return any(_solvable(list(s.left)) for s in legal_steps(values))


def test_sim_proposals_are_valid_steps_and_grow_with_tokens() -> None:
    numbers: list[Fraction | int] = [4, 9, 10, 13]
    counts = {}
    for max_tokens in (48, 128, 512):
        total, valid = 0, 0
        for seed in range(20):
            text = respond(
                propose_messages(numbers, []), Draw(random.Random(seed), max_tokens, 0.7)
            )
            lines = [ln for ln in text.splitlines() if "(left:" in ln]
            steps = parse_proposals(text, numbers)
            total += len(lines)
            valid += len(steps)
        assert valid >= 0.85 * total  # slips happen, and the parser drops them
        counts[max_tokens] = valid
    assert counts[48] < counts[128] < counts[512]


def test_sim_proposals_are_better_ordered_with_more_tokens() -> None:
    """With more tokens the first proposed step more often leaves a solvable state."""
    rng = random.Random(5)
    puzzles = [[rng.randint(1, 13) for _ in range(4)] for _ in range(30)]
    puzzles = [p for p in puzzles if _solvable([F(v) for v in p])]
    good = {}
    for max_tokens in (48, 512):
        hits = 0
        for i, p in enumerate(puzzles):
            text = propose([F(v) for v in p], Draw(random.Random(i), max_tokens, 0.7))
            steps = parse_proposals(text, p)
            hits += bool(steps) and _solvable(list(steps[0].left))
        good[max_tokens] = hits
    assert good[512] > good[48]


def test_sim_evaluation_accuracy_improves_with_tokens() -> None:
    rng = random.Random(0)
    states = [
        sorted(F(rng.randint(1, 13)) for _ in range(k)) for k in (2, 3, 3, 3) for _ in range(30)
    ]
    truth = [_solvable(s) for s in states]
    accuracy = {}
    for max_tokens in (32, 512):
        right = 0
        for i, (s, t) in enumerate(zip(states, truth, strict=True)):
            text = respond(evaluate_messages(s), Draw(random.Random(i), max_tokens, 0.7))
            right += (parse_evaluation(text) >= 0.5) == t
        accuracy[max_tokens] = right / len(states)
    assert accuracy[512] >= 0.85
    assert accuracy[512] > accuracy[32] + 0.1


def test_sim_evaluation_is_noisy_at_small_budgets() -> None:
    """A small search misjudges some solvable states (no answer key)."""
    verdicts = {
        parse_evaluation(evaluate([F(1), F(5), F(5), F(5)], Draw(random.Random(s), 32, 0.7)))
        for s in range(40)
    }
    assert len(verdicts) > 1


def test_sim_step_answers_are_deterministic() -> None:
    for make in (propose, evaluate):
        a = make([F(4), F(9), F(10), F(13)], Draw(random.Random(11), 256, 0.7))
        b = make([F(4), F(9), F(10), F(13)], Draw(random.Random(11), 256, 0.7))
        assert a == b


def test_sim_one_number_left() -> None:
    assert parse_evaluation(evaluate([F(24)], Draw(random.Random(1), 64, 0.7))) == 1.0
    assert parse_evaluation(evaluate([F(23)], Draw(random.Random(1), 64, 0.7))) == 0.0
    assert parse_proposals(propose([F(24)], Draw(random.Random(1), 64, 0.7)), [24]) == []


def test_sim_respects_max_tokens() -> None:
    from ponder.sim.tokens import count_tokens

    for max_tokens in (16, 64, 300):
        draw = Draw(random.Random(2), max_tokens, 0.7)
        assert count_tokens(propose([F(4), F(9), F(10), F(13)], draw)) <= max_tokens + 8
        assert count_tokens(evaluate([F(4), F(9), F(10), F(13)], draw)) <= max_tokens + 8
