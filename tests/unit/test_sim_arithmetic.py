"""The simulated model on arithmetic word problems: honest, deterministic, better with
more tokens, worse with more steps, and wrong in many different ways."""

from __future__ import annotations

import random
from collections import Counter
from fractions import Fraction
from functools import cache

from ponder.families.arithmetic import format_prompt, make_problem, parse_answer
from ponder.llm.base import SampleRequest
from ponder.sim.model import generate
from ponder.sim.skills.arithmetic import Op, read_story

PROBLEMS = 12
SAMPLES = 10


@cache
def problems(depth: int) -> tuple[tuple[str, int], ...]:
    rng = random.Random(f"sim-test-{depth}")
    return tuple(make_problem(depth, rng) for _ in range(PROBLEMS))


def answers(question: str, max_tokens: int, n: int, seed: int = 0) -> list[str | None]:
    request = SampleRequest(
        [{"role": "user", "content": format_prompt(question)}],
        n=n,
        max_tokens=max_tokens,
        temperature=0.8,
        seed=seed,
    )
    return [parse_answer(c.text) for c in generate(request)]


@cache
def accuracy(depth: int, max_tokens: int) -> float:
    right = 0
    for i, (question, answer) in enumerate(problems(depth)):
        right += sum(a == str(answer) for a in answers(question, max_tokens, SAMPLES, seed=i))
    return right / (PROBLEMS * SAMPLES)


def test_reads_the_story_back() -> None:
    story = read_story(
        "A shop has 17 apples. It sells 5 apples. It receives 3 boxes of 12 apples each. "
        "It gives away half of its apples. Then the number of apples becomes 4 times as "
        "large. How many apples does the shop have now?"
    )
    assert story is not None
    assert story.start == 17
    assert story.ops == [Op("-", 5), Op("+", 12, times=3), Op("/", 2), Op("*", 4)]


GENERIC = "Let me think about this.\nI am not sure; my best guess follows.\nAnswer: "


def replies(question: str) -> list[str]:
    request = SampleRequest(
        [{"role": "user", "content": format_prompt(question)}], n=4, max_tokens=512, seed=0
    )
    return [completion.text for completion in generate(request)]


def test_unknown_wording_gets_the_generic_reply() -> None:
    question = "What is the airspeed of an unladen swallow?"
    assert read_story(question) is None  # an arithmetic prompt outside the grammar
    for text in replies(question):
        # no attempt at a story: the generic reply, a guess from 0 to 100
        assert text.startswith(GENERIC), text
        assert 0 <= int(text.removeprefix(GENERIC)) <= 100, text
    # a question in the grammar is worked through, not guessed
    worded = "A shop has 17 apples. It sells 5 apples. How many apples does the shop have now?"
    assert read_story(worded) is not None
    assert not any(text.startswith(GENERIC) for text in replies(worded))


def test_accuracy_rises_with_tokens_and_falls_with_depth() -> None:
    for depth in (1, 4, 8):
        ladder = [accuracy(depth, t) for t in (64, 256, 2048)]
        assert ladder[0] < ladder[1] <= ladder[2] + 0.02, (depth, ladder)
    for tokens in (128, 512):
        by_depth = [accuracy(d, tokens) for d in (1, 4, 8)]
        assert by_depth[0] > by_depth[1] > by_depth[2], (tokens, by_depth)
    assert accuracy(1, 2048) >= 0.9
    assert accuracy(8, 2048) >= 0.7
    assert accuracy(8, 64) <= 0.2


def test_honest_completions_show_their_steps() -> None:
    question, answer = make_problem(4, random.Random(3))
    request = SampleRequest(
        [{"role": "user", "content": format_prompt(question)}], n=1, max_tokens=2048
    )
    text = generate(request)[0].text
    assert text.count("Step ") == 4
    assert text.rstrip().splitlines()[-1].startswith("Answer: ")
    assert str(answer) not in question  # it had to be worked out


def test_cut_off_means_no_answer() -> None:
    question, _ = make_problem(12, random.Random(1))
    request = SampleRequest(
        [{"role": "user", "content": format_prompt(question)}], n=4, max_tokens=40
    )
    for completion in generate(request):
        assert completion.finish_reason == "length"
        assert parse_answer(completion.text) is None


def test_deterministic_given_seed() -> None:
    question, _ = problems(8)[0]
    assert answers(question, 256, 8, seed=7) == answers(question, 256, 8, seed=7)
    assert answers(question, 256, 8, seed=7) != answers(question, 256, 8, seed=8)


def test_wrong_answers_are_diverse_so_voting_works() -> None:
    question, answer = problems(8)[1]
    samples = answers(question, 256, 200, seed=3)
    wrong = [a for a in samples if a is not None and a != str(answer)][:50]
    assert len(wrong) == 50
    assert len(set(wrong)) >= 5
    # the right answer is still the single most common one at a moderate allowance
    votes = Counter(a for a in answers(question, 512, 64, seed=4) if a is not None)
    assert votes.most_common(1)[0][0] == str(answer)


def test_slips_propagate_through_later_steps() -> None:
    question, answer = problems(4)[2]
    values = {Fraction(a) for a in answers(question, 64, 100) if a is not None and "%" not in a}
    assert Fraction(answer) in values
    assert len(values) >= 5
