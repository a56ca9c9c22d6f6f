"""Strategies on arithmetic jobs: the numeric verifier is the default, and best_of_n
solves a deep word problem the single-sample model usually gets wrong."""

from __future__ import annotations

from ponder.config import Settings
from ponder.datasets import as_problem, load_dataset
from tests.strategy_harness import check_solves

PROBLEM = as_problem(load_dataset("arithmetic-d8")[0])


def test_best_of_n_solves_with_the_default_numeric_verifier(sqlite_settings: Settings) -> None:
    job = check_solves(
        sqlite_settings,
        PROBLEM,
        {"name": "best_of_n", "params": {"n": 16, "max_tokens": 512}},
        {"max_tokens": 50_000},
    )
    assert job.result is not None
    assert job.result["answer"] == str(PROBLEM["expected"])


def test_explicit_numeric_verifier_with_tolerance(sqlite_settings: Settings) -> None:
    check_solves(
        sqlite_settings,
        as_problem(load_dataset("arithmetic-d2")[0]),
        {"name": "best_of_n", "params": {"n": 8, "max_tokens": 512}},
        {"max_tokens": 20_000},
        verifier={"type": "numeric", "rel_tol": 1e-3},
    )
