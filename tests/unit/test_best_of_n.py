"""best_of_n against the strategy contract (see tests/strategy_harness.py)."""

from __future__ import annotations

from ponder.config import Settings
from tests.strategy_harness import (
    GAME24_EASY,
    GAME24_HARD,
    check_cancel,
    check_resume,
    check_solves,
    check_tight_budget,
)

ONE_PER_CALL = {
    "name": "best_of_n",
    "params": {"n": 8, "batch_size": 1, "max_tokens": 256, "stop_when_verified": False},
}


def test_solves_at_a_generous_budget(sqlite_settings: Settings) -> None:
    check_solves(
        sqlite_settings,
        GAME24_HARD,
        {"name": "best_of_n", "params": {"n": 32, "max_tokens": 1024}},
        {"max_tokens": 100_000},
    )


def test_tight_budget(sqlite_settings: Settings) -> None:
    check_tight_budget(
        sqlite_settings,
        GAME24_HARD,
        {"name": "best_of_n", "params": {"n": 64, "batch_size": 2, "max_tokens": 128}},
        {"max_tokens": 900},
    )


def test_resume(sqlite_settings: Settings) -> None:
    check_resume(sqlite_settings, GAME24_EASY, ONE_PER_CALL, {"max_tokens": 50_000}, crash_at=4)


def test_cancel(sqlite_settings: Settings) -> None:
    check_cancel(sqlite_settings, GAME24_HARD, ONE_PER_CALL, {"max_tokens": 50_000})
