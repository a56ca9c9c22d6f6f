"""The in-memory runner used by benchmarks gives what the durable runner gives."""

from __future__ import annotations

import asyncio

from ponder.config import Settings
from ponder.sim.model import SimProvider
from strategies.offline import run_offline
from tests.strategy_harness import GAME24_HARD, run_job

STRATEGY = {
    "name": "best_of_n",
    "params": {"n": 6, "batch_size": 2, "max_tokens": 256, "stop_when_verified": False},
}


def test_offline_matches_the_durable_runner(sqlite_settings: Settings) -> None:
    budget = {"max_tokens": 50_000}
    job, _ = run_job(sqlite_settings, GAME24_HARD, STRATEGY, budget, seed=7)
    offline = asyncio.run(
        run_offline(
            GAME24_HARD, "best_of_n", STRATEGY["params"], budget, provider=SimProvider(), seed=7
        )
    )
    assert offline.result == job.result
    assert offline.tokens == job.usage_tokens
    assert offline.calls == job.usage_calls
    assert offline.stop_reason == job.stop_reason


def test_offline_stops_at_the_budget() -> None:
    offline = asyncio.run(
        run_offline(
            GAME24_HARD,
            "best_of_n",
            {"n": 64, "batch_size": 4, "max_tokens": 128},
            {"max_tokens": 700},
            provider=SimProvider(),
            seed=3,
        )
    )
    assert offline.stop_reason == "budget_exhausted"
    assert offline.tokens <= 700
