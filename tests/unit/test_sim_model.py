"""The simulated model: deterministic, honest about tokens, and better with more of them."""

from __future__ import annotations

import ast
import asyncio
import functools
import statistics
from collections import Counter
from fractions import Fraction

import pytest

from ponder.families.game24 import format_prompt, parse_answer
from ponder.llm import base
from ponder.llm.base import Message, Provider, SampleRequest, SampleResult
from ponder.sim import model, skill
from ponder.sim.model import SimProvider
from ponder.sim.skill import Draw, register_skill
from ponder.sim.tokens import count_tokens
from ponder.verifiers.game24 import check_expression

PUZZLES = [
    [4, 9, 10, 13],
    [1, 1, 4, 6],
    [2, 3, 5, 12],
    [3, 3, 8, 8],
    [1, 5, 5, 5],
    [4, 4, 10, 10],
    [6, 6, 6, 6],
    [1, 2, 3, 4],
    [5, 5, 5, 1],
    [2, 7, 7, 10],
]
SAMPLES = 16  # per puzzle and budget


def puzzle_messages(numbers: list[int]) -> list[Message]:
    return [{"role": "user", "content": format_prompt(numbers)}]


def sample(request: SampleRequest, provider: SimProvider | None = None) -> SampleResult:
    return asyncio.run((provider or SimProvider()).sample(request))


def ask(
    numbers: list[int],
    max_tokens: int,
    *,
    n: int = 1,
    temperature: float = 0.8,
    seed: int | None = None,
) -> SampleResult:
    request = SampleRequest(
        puzzle_messages(numbers), n=n, max_tokens=max_tokens, temperature=temperature, seed=seed
    )
    return sample(request)


def solved(numbers: list[int], text: str) -> bool:
    answer = parse_answer(text)
    return answer is not None and check_expression(numbers, answer).passed


@functools.cache
def solve_rates(max_tokens: int) -> tuple[float, ...]:
    """Single-sample success rate per puzzle at ``max_tokens``."""
    rates = []
    for k, numbers in enumerate(PUZZLES):
        result = ask(numbers, max_tokens, n=SAMPLES, seed=1000 + k)
        rates.append(sum(solved(numbers, c.text) for c in result.completions) / SAMPLES)
    return tuple(rates)


def accuracy(max_tokens: int) -> float:
    return statistics.mean(solve_rates(max_tokens))


def rate(numbers: list[int], max_tokens: int) -> float:
    return solve_rates(max_tokens)[PUZZLES.index(numbers)]


# --- provider basics ---------------------------------------------------------------


def test_satisfies_the_provider_protocol() -> None:
    provider: Provider = SimProvider("sim-test")
    assert provider.name == "sim-test"
    asyncio.run(provider.aclose())


def test_returns_n_completions_and_usage() -> None:
    result = ask([4, 9, 10, 13], 256, n=5, seed=3)
    assert len(result.completions) == 5
    assert result.model == "sim"
    assert result.usage.completion_tokens == sum(count_tokens(c.text) for c in result.completions)
    prompt = format_prompt([4, 9, 10, 13])
    assert result.usage.prompt_tokens == count_tokens(prompt) + 4


def test_prompt_tokens_count_every_message() -> None:
    messages: list[Message] = [
        {"role": "system", "content": "Be careful."},
        {"role": "user", "content": "héllo wörld"},
    ]
    result = sample(SampleRequest(messages, max_tokens=32))
    expected = count_tokens("Be careful.") + 4 + count_tokens("héllo wörld") + 4
    assert result.usage.prompt_tokens == expected
    assert count_tokens("héllo wörld") == 4  # 13 UTF-8 bytes


def test_sim_tokens_never_undercount_the_shared_estimate() -> None:
    # The budget reserves with estimate_tokens (bytes); the sim must never report more.
    for text in ["", "a", "héllo", "🙂🙂", format_prompt([4, 9, 10, 13])]:
        assert count_tokens(text) <= base.estimate_tokens(text)


def test_prompt_plus_max_tokens_must_fit_the_context() -> None:
    request = SampleRequest(puzzle_messages([4, 9, 10, 13]), max_tokens=131_072)
    with pytest.raises(base.ContextTooLong):
        sample(request)
    with pytest.raises(base.BadRequest):
        sample(SampleRequest(puzzle_messages([4, 9, 10, 13]), max_tokens=0))


def test_supports_n_false_rejects_n_above_one() -> None:
    provider = SimProvider(supports_n=False)
    request = SampleRequest(puzzle_messages([4, 9, 10, 13]), n=2, max_tokens=64)
    with pytest.raises(base.BadRequest):
        sample(request, provider)
    one = SampleRequest(puzzle_messages([4, 9, 10, 13]), n=1, max_tokens=64)
    assert len(sample(one, provider).completions) == 1


# --- determinism -------------------------------------------------------------------


def test_same_request_same_completions() -> None:
    for seed in (None, 7):
        first = ask([3, 3, 8, 8], 512, n=4, seed=seed)
        again = ask([3, 3, 8, 8], 512, n=4, seed=seed)
        assert first == again


def test_samples_and_seeds_vary() -> None:
    texts = [c.text for c in ask([4, 9, 10, 13], 512, n=8, seed=1).completions]
    assert len(set(texts)) > 1
    other_seed = [c.text for c in ask([4, 9, 10, 13], 512, n=8, seed=2).completions]
    assert texts != other_seed


def test_seed_none_is_derived_from_the_prompt() -> None:
    a = ask([4, 9, 10, 13], 512, n=3)
    b = ask([4, 9, 10, 13], 512, n=3)
    c = ask([1, 5, 5, 5], 512, n=3)
    assert a == b
    assert a.completions != c.completions


def test_temperature_zero_is_greedy() -> None:
    greedy = ask([4, 9, 10, 13], 512, n=4, temperature=0.0, seed=1)
    texts = {c.text for c in greedy.completions}
    assert len(texts) == 1
    assert ask([4, 9, 10, 13], 512, n=2, temperature=0.0, seed=99).completions[0].text in texts


def test_no_global_random_or_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    import random
    import time

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the sim must not use global random or the clock")

    for name in ("random", "randint", "choice", "gauss", "shuffle", "seed"):
        monkeypatch.setattr(random, name, forbidden)
    monkeypatch.setattr(time, "time", forbidden)
    monkeypatch.setattr(time, "monotonic", forbidden)
    # the pure core (an event loop itself reads the monotonic clock)
    request = SampleRequest(puzzle_messages([3, 3, 8, 8]), n=3, max_tokens=512, seed=5)
    completions = model.generate(request)
    monkeypatch.undo()
    assert completions == ask([3, 3, 8, 8], 512, n=3, seed=5).completions


# --- token accounting --------------------------------------------------------------


@pytest.mark.parametrize("max_tokens", [1, 2, 5, 16, 40, 64, 128, 300, 1000, 3000])
def test_completions_never_exceed_max_tokens(max_tokens: int) -> None:
    requests = [
        SampleRequest(puzzle_messages(numbers), n=6, max_tokens=max_tokens, seed=11)
        for numbers in ([4, 9, 10, 13], [1, 1, 1, 1], [7, 13, 29, 41, 53, 97])
    ]
    requests.append(SampleRequest([{"role": "user", "content": "Hi?"}], max_tokens=max_tokens))
    for request in requests:
        result = sample(request)
        for completion in result.completions:
            tokens = count_tokens(completion.text)
            assert tokens <= max_tokens
            if completion.finish_reason == "length":
                assert tokens >= max_tokens - 1  # cut at the limit, not early
            else:
                assert completion.finish_reason == "stop"
        assert result.usage.completion_tokens <= max_tokens * request.n


def test_tiny_budget_is_truncated_with_length() -> None:
    completion = ask([4, 9, 10, 13], 4).completions[0]
    assert completion.finish_reason == "length"
    assert count_tokens(completion.text) <= 4


def test_thinks_longer_when_allowed_but_stops_once_solved() -> None:
    unsolvable = [5, 17, 29, 61]  # no solution: the search runs until it is stopped
    short = ask(unsolvable, 128, seed=1).usage.completion_tokens
    longer = ask(unsolvable, 1024, seed=1).usage.completion_tokens
    assert short <= 128
    assert 900 < longer <= 1024
    # an easy puzzle is solved long before a generous allowance runs out
    easy = ask([1, 2, 3, 4], 8192, n=8, seed=1)
    assert easy.usage.completion_tokens / 8 < 1000
    # the mean length over the puzzle set grows with the allowance
    lengths = {
        mt: statistics.mean(ask(p, mt, seed=3).usage.completion_tokens for p in PUZZLES)
        for mt in (128, 512, 2048)
    }
    assert lengths[128] < lengths[512] < lengths[2048]


def test_stop_sequences_end_the_text() -> None:
    request = SampleRequest(puzzle_messages([4, 9, 10, 13]), max_tokens=512, stop=["Answer:"])
    completion = sample(request).completions[0]
    assert "Answer:" not in completion.text
    assert completion.text


# --- the search: honest, and better with more tokens ------------------------------


def test_completion_is_a_readable_trace_ending_in_an_answer() -> None:
    text = ask([4, 9, 10, 13], 1024, seed=2).completions[0].text
    lines = text.splitlines()
    assert lines[0] == "Numbers: 4 9 10 13. Target: 24."
    assert any("(left:" in line for line in lines)
    assert lines[-1].startswith("Answer: ")
    assert parse_answer(text)


def test_accuracy_grows_with_max_tokens() -> None:
    low, high = accuracy(128), accuracy(2048)
    assert 0.1 <= low <= 0.45
    assert high >= 0.8
    assert high - low >= 0.3
    assert accuracy(128) <= accuracy(512) <= accuracy(2048)


@pytest.mark.parametrize(
    ("hard", "budget"),
    [([3, 3, 8, 8], 256), ([1, 5, 5, 5], 256), ([3, 3, 8, 8], 512), ([2, 3, 5, 12], 512)],
)
def test_hard_puzzles_are_harder(hard: list[int], budget: int) -> None:
    # they need fractions (8 / (3 - 8/3)), which a quick heuristic tries last
    assert rate([1, 2, 3, 4], budget) - rate(hard, budget) >= 0.4


def exact_value_and_numbers(expr: str) -> tuple[Fraction, list[int]]:
    """An independent evaluator (Python's own parser, walked by hand) to double-check
    the verifier on everything the sim says."""

    def walk(node: ast.expr) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            used.append(node.value)
            return Fraction(node.value)
        assert isinstance(node, ast.BinOp), ast.dump(node)
        left, right = walk(node.left), walk(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        assert isinstance(node.op, ast.Div)
        return left / right

    used: list[int] = []
    return walk(ast.parse(expr, mode="eval").body), used


def test_every_verified_answer_is_really_a_solution() -> None:
    checked = 0
    for budget in (128, 512, 2048):
        for k, numbers in enumerate(PUZZLES):
            for completion in ask(numbers, budget, n=8, seed=k).completions:
                answer = parse_answer(completion.text)
                assert answer is not None
                if check_expression(numbers, answer).passed:
                    value, used = exact_value_and_numbers(answer)
                    assert value == 24
                    assert Counter(used) == Counter(numbers)
                    checked += 1
    assert checked > 80


def test_failed_search_answers_with_its_closest_attempt() -> None:
    # 1 1 1 1 has no solution: the answer is a well-formed miss using every number.
    result = ask([1, 1, 1, 1], 4096, n=20, seed=4)
    near_misses = 0
    for completion in result.completions:
        answer = parse_answer(completion.text)
        assert answer is not None
        verdict = check_expression([1, 1, 1, 1], answer)
        assert not verdict.passed
        near_misses += verdict.score > 0  # right numbers, wrong value (unless it slipped)
        assert "Tried everything" in completion.text
    assert near_misses >= 16


def test_slips_make_verification_worthwhile() -> None:
    # At a small budget the model sometimes claims success but writes a wrong answer.
    slipped = 0
    for k, numbers in enumerate(PUZZLES):
        for completion in ask(numbers, 128, n=30, seed=50 + k).completions:
            if "Found it" in completion.text and not solved(numbers, completion.text):
                slipped += 1
    assert slipped > 0


def test_refinement_conversation_still_reads_the_puzzle() -> None:
    messages: list[Message] = [
        *puzzle_messages([4, 9, 10, 13]),
        {"role": "assistant", "content": "Answer: 4 + 9 + 10 + 13"},
        {"role": "user", "content": "That evaluates to 36, not 24. Try again."},
    ]
    text = sample(SampleRequest(messages, max_tokens=1024, seed=1)).completions[0].text
    assert text.startswith("Numbers: 4 9 10 13.")


# --- other prompts ------------------------------------------------------------------


def test_generic_prompts_get_a_short_deterministic_answer() -> None:
    request = SampleRequest([{"role": "user", "content": "What is 2 + 2?"}], n=3, seed=1)
    first, again = sample(request), sample(request)
    assert first == again
    for completion in first.completions:
        assert completion.text.splitlines()[-1].startswith("Answer: ")
        assert count_tokens(completion.text) < 64


def test_skills_plug_in(monkeypatch: pytest.MonkeyPatch) -> None:
    class Echo:
        name = "echo"

        def respond(self, messages: list[Message], draw: Draw) -> str | None:
            content = messages[-1]["content"]
            if not content.startswith("echo:"):
                return None
            return f"Answer: {content.removeprefix('echo:')} {draw.rng.randint(0, 9)}"

    # Copy the registry only once its one-time loader has run. A copy taken before would
    # receive the built-in skills the loader registers during this test, and the
    # original, put back afterwards, would lack them for every later test.
    model._skills_once()
    built_in = skill.registered_skills()
    assert built_in, "the loader registered no skill"
    monkeypatch.setattr(skill, "_SKILLS", list(built_in))
    register_skill(Echo())
    result = sample(SampleRequest([{"role": "user", "content": "echo:hi"}], seed=1))
    assert result.completions[0].text.startswith("Answer: hi ")
    # game24 prompts still go to the game24 skill
    assert ask([4, 9, 10, 13], 256).completions[0].text.startswith("Numbers:")
    # the plug-in went first; the built-in skills are all still there, in their order
    assert skill.registered_skills()[1:] == built_in


# --- latency -------------------------------------------------------------------------


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def _patch_sim_sleep(monkeypatch: pytest.MonkeyPatch, fake: FakeSleep) -> None:
    """Replace the simulator's sleep only: patching ``asyncio.sleep`` itself would also
    catch (and turn into a busy loop) every other task sleeping on the same loop."""
    import asyncio
    from types import SimpleNamespace

    sim_asyncio = SimpleNamespace(sleep=fake, to_thread=asyncio.to_thread)
    monkeypatch.setattr("ponder.sim.model.asyncio", sim_asyncio)


def test_latency_is_ttft_plus_the_longest_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeSleep()
    _patch_sim_sleep(monkeypatch, fake)
    provider = SimProvider(ttft_ms=250, tokens_per_s=100)
    request = SampleRequest(puzzle_messages([3, 3, 8, 8]), n=4, max_tokens=512, seed=9)
    result = sample(request, provider)
    longest = max(count_tokens(c.text) for c in result.completions)
    assert fake.calls == [pytest.approx(0.25 + longest / 100)]


def test_no_latency_configured_means_no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeSleep()
    _patch_sim_sleep(monkeypatch, fake)
    sample(SampleRequest(puzzle_messages([4, 9, 10, 13]), max_tokens=128))
    assert fake.calls == []
    sample(SampleRequest(puzzle_messages([4, 9, 10, 13]), max_tokens=128), SimProvider(ttft_ms=40))
    assert fake.calls == [pytest.approx(0.04)]
