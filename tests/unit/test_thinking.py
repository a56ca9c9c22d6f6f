"""thinking: native control mapping, budget forcing, and the strategy contract."""

from __future__ import annotations

import asyncio
import re
from fractions import Fraction
from typing import Any

import pytest
from sqlalchemy import select

from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.families.game24 import format_prompt, parse_answer
from ponder.llm.base import Message, SampleRequest
from ponder.llm.profiles import ModelProfile
from ponder.sim.model import CONTINUE_CUE, FINAL_ANSWER_CUE, SimProvider
from ponder.tables import JobEvent
from ponder.verifiers.game24 import check_expression
from strategies.thinking import (
    FINAL_PROMPT,
    WAIT_PROMPT,
    anthropic_controls,
    approx_tokens,
    native_controls_for,
    openai_controls,
    reasoning_effort,
    resolve_mode,
)
from tests.jobs_helpers import CountingProvider, create_job, load_job, run_until_done
from tests.strategy_harness import (
    GAME24_EASY,
    GAME24_HARD,
    check_cancel,
    check_resume,
    check_solves,
    check_tight_budget,
    run_job,
)
from worker.runner import WorkerServices

# Budget forcing in short segments: each segment stops early ("Out of time"), so the
# model is told "Wait" and continues where it stopped.
SEGMENTED = {
    "name": "thinking",
    "params": {
        "mode": "budget_forcing",
        "thinking_tokens": 2048,
        "segment_tokens": 256,
        "max_waits": 8,
    },
}
HARD_PUZZLES = [
    [3, 3, 8, 8],
    [2, 3, 5, 12],
    [1, 5, 5, 5],
    [4, 4, 10, 10],
    [5, 5, 5, 1],
    [2, 7, 7, 10],
    [1, 4, 5, 6],
    [3, 3, 7, 7],
    [1, 3, 4, 6],
    [1, 6, 11, 13],
]


# --- native controls (pure) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("budget", "effort"),
    [(64, "low"), (2048, "low"), (2049, "medium"), (8192, "medium"), (8193, "high")],
)
def test_reasoning_effort_thresholds(budget: int, effort: str) -> None:
    assert reasoning_effort(budget) == effort


def test_openai_controls_cap_reasoning_plus_answer() -> None:
    c = openai_controls(4096, 256)
    assert c.extra == {"reasoning_effort": "medium", "max_completion_tokens": 4352}
    assert c.max_tokens == 4352
    assert c.temperature is None
    assert openai_controls(20_000, 100).extra["reasoning_effort"] == "high"


@pytest.mark.parametrize(("budget", "answer"), [(64, 16), (1024, 256), (5000, 300), (1023, 1)])
def test_anthropic_budget_is_at_least_1024_and_below_max_tokens(budget: int, answer: int) -> None:
    c = anthropic_controls(budget, answer)
    given = c.extra["thinking"]["budget_tokens"]
    assert c.extra["thinking"]["type"] == "enabled"
    assert given == max(1024, budget)
    assert given < c.max_tokens
    assert c.max_tokens == given + answer
    assert c.temperature == 1.0  # extended thinking requires the default temperature


def test_native_controls_for_and_mode_resolution() -> None:
    assert native_controls_for("openai", 1000, 100) == openai_controls(1000, 100)
    assert native_controls_for("anthropic", 1000, 100) == anthropic_controls(1000, 100)
    assert resolve_mode("auto", None) == "budget_forcing"  # the sim: no native controls
    assert resolve_mode("auto", "openai") == "native"
    assert resolve_mode("native", None) == "native"
    assert resolve_mode("budget_forcing", "anthropic") == "budget_forcing"


def test_thinking_meter_and_prompts_the_sim_understands() -> None:
    assert approx_tokens("") == 0
    assert approx_tokens("abcd") == 1
    assert approx_tokens("abcde") == 2
    assert WAIT_PROMPT.lower().startswith(CONTINUE_CUE)
    assert FINAL_PROMPT.lower().startswith(FINAL_ANSWER_CUE)


# --- the strategy contract ---------------------------------------------------------------


def test_solves_at_a_generous_budget(sqlite_settings: Settings) -> None:
    check_solves(
        sqlite_settings, GAME24_HARD, {"name": "thinking", "params": {}}, {"max_tokens": 50_000}
    )


def test_tight_budget(sqlite_settings: Settings) -> None:
    check_tight_budget(
        sqlite_settings,
        GAME24_HARD,
        {"name": "thinking", "params": {"thinking_tokens": 4096}},
        {"max_tokens": 500},
    )


def test_resume(sqlite_settings: Settings) -> None:
    check_resume(sqlite_settings, GAME24_HARD, SEGMENTED, {"max_tokens": 100_000}, crash_at=3)


def test_cancel(sqlite_settings: Settings) -> None:
    check_cancel(sqlite_settings, GAME24_HARD, SEGMENTED, {"max_tokens": 100_000})


def _hard_solved(settings: Settings, params: dict[str, Any]) -> tuple[int, float]:
    """Puzzles of HARD_PUZZLES solved (two seeds each) and mean tokens per job."""
    solved, tokens, jobs = 0, 0, 0
    for k, numbers in enumerate(HARD_PUZZLES):
        for seed in (k, 100 + k):
            job, _ = run_job(
                settings,
                {"task": "game24", "input": {"numbers": numbers}},
                {"name": "thinking", "params": {"mode": "budget_forcing", **params}},
                {"max_tokens": 200_000},
                seed=seed,
            )
            solved += bool(job.result and job.result["verified"])
            tokens += job.usage_tokens
            jobs += 1
    return solved, tokens / jobs


def test_a_larger_thinking_budget_solves_more_hard_puzzles(sqlite_settings: Settings) -> None:
    small, small_tokens = _hard_solved(sqlite_settings, {"thinking_tokens": 256})
    # The same 2048-token budget in one long segment and in eight forced segments:
    # continuing after "Wait" must buy about what one long trace buys.
    large, large_tokens = _hard_solved(sqlite_settings, {"thinking_tokens": 2048})
    forced, forced_tokens = _hard_solved(sqlite_settings, SEGMENTED["params"])
    print(f"\nhard game24 solved of 20 (tokens/job): 256 thinking {small} ({small_tokens:.0f})")
    print(f"  2048 in one segment {large} ({large_tokens:.0f})")
    print(f"  2048 as 8x256 with Wait {forced} ({forced_tokens:.0f})")
    assert small <= 6
    assert large >= small + 10
    assert forced >= small + 10


def test_native_mode_sends_the_mapped_controls(sqlite_settings: Settings) -> None:
    # The sim ignores provider-native options, so this checks the request, not the effect.
    job_id = create_job(
        sqlite_settings,
        problem=GAME24_EASY,
        strategy={
            "name": "thinking",
            "params": {"mode": "auto", "native_controls": "openai", "thinking_tokens": 3000},
        },
        budget={"max_tokens": 50_000},
    )
    providers: list[CountingProvider] = []

    def factory(profile: ModelProfile) -> CountingProvider:
        providers.append(CountingProvider(SimProvider(profile.name)))
        return providers[-1]

    svc = WorkerServices(sqlite_settings, provider_factory=factory)
    run_until_done(svc, job_id)
    svc.close()
    job = load_job(sqlite_settings, job_id)
    assert job.stop_reason == "verified"
    [request] = providers[0].requests
    assert request.extra == {"reasoning_effort": "medium", "max_completion_tokens": 3256}
    assert request.max_tokens == 3256


def test_budget_forcing_emits_thinking_events(sqlite_settings: Settings) -> None:
    job, calls = run_job(sqlite_settings, GAME24_HARD, SEGMENTED, {"max_tokens": 100_000}, seed=7)
    engine = make_engine(sqlite_settings.database_url)
    with make_sessionmaker(engine)() as s:
        rows = s.scalars(
            select(JobEvent).where(JobEvent.job_id == job.id, JobEvent.kind == "thinking")
        ).all()
        events = [r.data for r in sorted(rows, key=lambda r: r.seq)]
    engine.dispose()
    assert len(events) == calls >= 2
    tokens = [e["tokens"] for e in events]
    assert tokens == sorted(tokens) and tokens[-1] <= 2048
    waits = [e["waits"] for e in events]
    assert waits == sorted(waits) and waits[0] == 0 and waits[-1] >= 1
    assert all(e["mode"] == "budget_forcing" for e in events)


# --- the sim across turns ------------------------------------------------------------------

_LEFT_RE = re.compile(r"\(left: ([^)]*)\)$")


def _positions(text: str) -> list[tuple[Fraction, ...]]:
    out = []
    for line in text.splitlines():
        m = _LEFT_RE.search(line)
        if m:
            out.append(tuple(sorted(Fraction(t) for t in m[1].split())))
    return out


def _say(messages: list[Message], max_tokens: int, seed: int) -> str:
    request = SampleRequest(messages, max_tokens=max_tokens, seed=seed)
    return asyncio.run(SimProvider().sample(request)).completions[0].text


def test_sim_continues_its_own_search_after_wait() -> None:
    messages: list[Message] = [{"role": "user", "content": format_prompt([3, 3, 8, 8])}]
    first = _say(messages, 200, seed=0)
    assert "Out of time" in first
    messages += [
        {"role": "assistant", "content": first},
        {"role": "user", "content": WAIT_PROMPT},
    ]
    second = _say(messages, 200, seed=1)
    assert second.startswith("Continuing:")
    assert parse_answer(second)
    # Every position but the one in progress when the first turn ran out is new ground.
    done_before = set(_positions(first)[:-1])
    assert done_before
    assert not done_before & set(_positions(second))


def test_sim_final_answer_reuses_what_the_thinking_found() -> None:
    found = "Numbers: 3 3 8 8. Target: 24.\nFound it: 8 / (3 - (8 / 3)) = 24\n"
    good = 0
    for seed in range(20):
        messages: list[Message] = [
            {"role": "user", "content": format_prompt([3, 3, 8, 8])},
            {"role": "assistant", "content": found},
            {"role": "user", "content": FINAL_PROMPT},
        ]
        text = _say(messages, 32, seed)
        assert text.startswith("Answer: ")
        answer = parse_answer(text)
        good += answer is not None and check_expression([3, 3, 8, 8], answer).passed
    assert good >= 15  # short thinking: an occasional miscopy


def test_sim_single_turn_and_refinement_prompts_are_not_continuations() -> None:
    messages: list[Message] = [
        {"role": "user", "content": format_prompt([4, 9, 10, 13])},
        {"role": "assistant", "content": "Answer: 4 + 9 + 10 + 13"},
        {"role": "user", "content": "That evaluates to 36, not 24. Try again."},
    ]
    assert _say(messages, 256, seed=1).startswith("Numbers: 4 9 10 13.")
    assert _say(messages[:1], 256, seed=1).startswith("Numbers: 4 9 10 13.")
