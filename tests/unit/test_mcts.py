"""mcts: UCT selection, the three value sources, and the strategy contract."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import select

from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.families.base import StepState
from ponder.tables import JobEvent
from strategies.mcts import Node, select_child, uct_score
from tests.strategy_harness import (
    GAME24_HARD,
    check_cancel,
    check_resume,
    check_solves,
    check_tight_budget,
    run_job,
)

DEFAULT = {"name": "mcts", "params": {}}
HARDER = {"task": "game24", "input": {"numbers": [2, 3, 5, 12]}}  # needs 5/2: long runs
PLAYOUTS = {"name": "mcts", "params": {"rollout": "model"}}


def _node(name: str, parent: Node | None = None, visits: int = 0, total: float = 0.0) -> Node:
    node = Node(name, parent, StepState(left=("24",)), visits=visits, total=total)
    if parent is not None:
        parent.children.append(node)
    return node


# --- UCT ------------------------------------------------------------------------------


def test_uct_score() -> None:
    assert uct_score(0.0, 0, 10, 1.0) == math.inf  # every child is tried once first
    assert uct_score(0.5, 4, 10, 0.0) == 0.5  # c = 0: pure exploitation
    bonus = math.sqrt(math.log(10) / 4)
    assert uct_score(0.5, 4, 10, 2.0) == pytest.approx(0.5 + 2.0 * bonus)
    # more visits to a child shrink its bonus; more to the parent grow it
    assert uct_score(0.5, 8, 10, 1.0) < uct_score(0.5, 4, 10, 1.0) < uct_score(0.5, 4, 40, 1.0)


def test_select_child_prefers_unvisited_then_uct_and_skips_exhausted() -> None:
    root = _node("r", visits=10)
    a = _node("a", root, visits=5, total=4.0)  # mean 0.8
    b = _node("b", root, visits=5, total=1.0)  # mean 0.2
    assert select_child(root, 0.0) is a
    c = _node("c", root)
    assert select_child(root, 0.0) is c
    c.exhausted = True
    a.exhausted = True
    assert select_child(root, 0.0) is b
    b.exhausted = True
    assert select_child(root, 1.0) is None


# --- the strategy contract ---------------------------------------------------------------


@pytest.mark.parametrize("rollout", ["heuristic", "model", "evaluate"])
def test_solves_at_a_generous_budget(sqlite_settings: Settings, rollout: str) -> None:
    check_solves(
        sqlite_settings,
        GAME24_HARD,
        {"name": "mcts", "params": {"rollout": rollout, "iterations": 200}},
        {"max_tokens": 100_000},
    )


def test_tight_budget(sqlite_settings: Settings) -> None:
    job = check_tight_budget(sqlite_settings, GAME24_HARD, DEFAULT, {"max_tokens": 1200})
    assert job.result is not None and job.result["verified"] is False


@pytest.mark.parametrize("strategy", [DEFAULT, PLAYOUTS])
def test_resume(sqlite_settings: Settings, strategy: dict[str, object]) -> None:
    check_resume(sqlite_settings, HARDER, strategy, {"max_tokens": 100_000}, crash_at=6)


def test_cancel(sqlite_settings: Settings) -> None:
    check_cancel(sqlite_settings, GAME24_HARD, PLAYOUTS, {"max_tokens": 100_000})


def test_node_events_form_a_tree(sqlite_settings: Settings) -> None:
    job, _ = run_job(sqlite_settings, GAME24_HARD, DEFAULT, {"max_tokens": 100_000}, seed=5)
    engine = make_engine(sqlite_settings.database_url)
    with make_sessionmaker(engine)() as s:
        rows = s.scalars(
            select(JobEvent).where(JobEvent.job_id == job.id).order_by(JobEvent.seq)
        ).all()
        events = [(r.kind, r.data) for r in rows]
    engine.dispose()
    nodes = [d for kind, d in events if kind == "node"]
    iterations = [d for kind, d in events if kind == "iteration"]
    assert nodes and iterations
    seen: set[str] = set()
    for d in nodes:
        assert {"id", "parent", "visits", "value"} <= set(d)
        assert d["parent"] is None or d["parent"] in seen  # a parent is announced first
        assert 0.0 <= d["value"] <= 1.0
        seen.add(d["id"])
    root_visits = [d["visits"] for d in nodes if d["parent"] is None]
    assert root_visits[-1] == len(iterations)  # every iteration backs up to the root
