"""The batch figures of :mod:`ponder.report` (pure) and the report chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ponder.report import (
    ItemOutcome,
    Original,
    is_scorable,
    percentile,
    plot_accuracy_vs_tokens,
    report_rows,
    summarize,
)


def outcome(**changes: Any) -> ItemOutcome:
    values: dict[str, Any] = {
        "status": "completed",
        "strategy": "best_of_n",
        "model": "sim",
        "scorable": True,
        "verified": True,
        "tokens": 100,
        "calls": 2,
        "cost_usd": 0.01,
        "seconds": 1.0,
        "latency_seconds": 1.0,
        "original": None,
    }
    values.update(changes)
    return ItemOutcome(**values)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([4.0, 1.0, 3.0, 2.0], 0) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0
    assert percentile([float(i) for i in range(1, 101)], 95) == pytest.approx(95.05)


@pytest.mark.parametrize(
    ("problem", "verifier", "scorable"),
    [
        ({"task": "game24", "input": {}}, None, True),  # the task's own verifier
        ({"prompt": "x", "expected": "4"}, None, True),  # exact against expected
        ({"prompt": "x"}, None, False),  # nothing to check against
        ({"task": "game24", "input": {}}, {"type": "none"}, False),
        ({"prompt": "x"}, {"type": "regex", "pattern": "a"}, True),
    ],
)
def test_which_items_are_scored(
    problem: dict[str, Any], verifier: dict[str, Any] | None, scorable: bool
) -> None:
    assert is_scorable(problem, verifier) is scorable


def test_accuracy_counts_scored_items_that_ran_and_latency_finished_ones() -> None:
    figures = summarize(
        [
            outcome(verified=True, latency_seconds=1.0),
            outcome(verified=False, latency_seconds=3.0),
            outcome(status="failed", verified=False, latency_seconds=2.0),  # counts, unsolved
            outcome(status="cancelled", verified=False, latency_seconds=None),  # left out
            outcome(scorable=False, verified=False, latency_seconds=5.0),  # no verifier
            outcome(status="running", verified=False, tokens=7, latency_seconds=None),
            outcome(status="queued", tokens=0, calls=0, cost_usd=0.0, latency_seconds=None),
        ]
    )
    assert figures.counts == {
        "queued": 1,
        "running": 1,
        "completed": 3,
        "failed": 1,
        "cancelled": 1,
        "total": 7,
    }
    assert (figures.accuracy.scored, figures.accuracy.verified) == (3, 1)
    assert figures.accuracy.rate == pytest.approx(1 / 3)
    assert figures.latency.p50_seconds == 2.5  # of 1, 3, 2, 5
    assert figures.usage["tokens"] == 100 * 5 + 7
    assert figures.comparison is None


def test_figures_per_strategy_and_model() -> None:
    figures = summarize(
        [
            outcome(strategy="best_of_n", tokens=100),
            outcome(strategy="best_of_n", tokens=300, verified=False),
            outcome(strategy="mcts", tokens=1000),
            outcome(strategy="mcts", model="big", tokens=50),
        ]
    )
    groups = {(g.strategy, g.model): g for g in figures.by_strategy}
    assert set(groups) == {("best_of_n", "sim"), ("mcts", "sim"), ("mcts", "big")}
    bon = groups[("best_of_n", "sim")]
    assert (bon.items, bon.finished, bon.tokens, bon.mean_tokens) == (2, 2, 400, 200.0)
    assert bon.accuracy.rate == 0.5


def test_nothing_finished_yet_gives_nulls_not_errors() -> None:
    figures = summarize([outcome(status="queued", tokens=0, latency_seconds=None)])
    assert figures.accuracy.rate is None and figures.latency.p50_seconds is None
    assert figures.by_strategy[0].mean_tokens is None
    assert summarize([]).counts["total"] == 0


def test_before_and_after_for_reruns() -> None:
    figures = summarize(
        [
            outcome(verified=True, tokens=500, original=Original(False, 100, 0.0)),  # improved
            outcome(verified=False, tokens=400, original=Original(True, 200, 0.0)),  # regressed
            outcome(verified=True, tokens=300, original=Original(True, 300, 0.0)),
            outcome(status="running", tokens=9, original=Original(False, 50, 0.0)),  # not yet
        ]
    )
    c = figures.comparison
    assert c is not None
    assert (c.items, c.solved_before, c.solved_after) == (3, 2, 2)
    assert (c.improved, c.regressed) == (1, 1)
    assert (c.tokens_before, c.tokens_after) == (600, 1200)


def test_report_rows_and_chart(tmp_path: Path) -> None:
    figures = summarize([outcome(), outcome(strategy="mcts", tokens=900, verified=False)])
    batch = {"id": "0123456789abcdef", "metadata": {"name": "cheap"}, **figures.as_json()}
    rows = report_rows([batch, {"id": "fedcba9876543210", "by_strategy": []}])
    assert [(r.label, r.strategy, r.accuracy) for r in rows] == [
        ("cheap", "best_of_n", 1.0),
        ("cheap", "mcts", 0.0),
    ]
    out = tmp_path / "chart.png"
    assert plot_accuracy_vs_tokens(rows, str(out)) == 2
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    empty = tmp_path / "empty.png"
    assert plot_accuracy_vs_tokens([], str(empty)) == 0
    assert empty.stat().st_size > 0


def test_items_cancelled_before_they_started_are_not_finished_work() -> None:
    figures = summarize(
        [
            outcome(tokens=300),
            outcome(status="cancelled", tokens=100, verified=False),  # stopped mid-run
            outcome(
                status="cancelled",
                tokens=0,
                verified=False,
                latency_seconds=None,
                started=False,
            ),
        ]
    )
    (group,) = figures.by_strategy
    assert group.items == 3
    assert group.finished == 2  # the one never started did no work
    assert group.mean_tokens == 200.0  # (300 + 100) / 2, not / 3
    assert figures.counts["cancelled"] == 2
