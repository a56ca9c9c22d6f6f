"""The Ledger: reserve → settle, hard caps on every dimension, also under concurrency."""

from __future__ import annotations

import threading

import pytest

from ponder.budget import BudgetExhausted, BudgetLimits, Ledger, Spend


def test_reserve_settle_and_release() -> None:
    ledger = Ledger(BudgetLimits(max_tokens=1000, max_calls=10, max_cost_usd=1.0))
    r = ledger.reserve(Spend(400, 2, 0.4))
    assert ledger.reserved == Spend(400, 2, 0.4)
    ledger.settle(r, Spend(150, 2, 0.1))
    assert ledger.spent == Spend(150, 2, 0.1)
    assert ledger.reserved == Spend()
    r2 = ledger.reserve(Spend(800, 1, 0.5))
    ledger.release(r2)
    assert ledger.spent == Spend(150, 2, 0.1)


@pytest.mark.parametrize(
    ("limits", "ask", "dimension"),
    [
        (BudgetLimits(max_tokens=100), Spend(101, 1, 0.0), "tokens"),
        (BudgetLimits(max_calls=3), Spend(1, 4, 0.0), "calls"),
        (BudgetLimits(max_cost_usd=0.01), Spend(1, 1, 0.02), "cost_usd"),
    ],
)
def test_each_dimension_is_a_hard_cap(limits: BudgetLimits, ask: Spend, dimension: str) -> None:
    ledger = Ledger(limits)
    with pytest.raises(BudgetExhausted) as err:
        ledger.reserve(ask)
    assert err.value.dimension == dimension
    assert str(err.value)  # says what ran out


def test_in_flight_reservations_count_against_the_cap() -> None:
    ledger = Ledger(BudgetLimits(max_tokens=1000))
    ledger.reserve(Spend(600, 1))
    with pytest.raises(BudgetExhausted):
        ledger.reserve(Spend(500, 1))
    ledger.reserve(Spend(400, 1))  # exactly fills the cap


def test_forfeit_counts_the_worst_case_as_spent() -> None:
    ledger = Ledger(BudgetLimits(max_tokens=1000))
    r = ledger.reserve(Spend(700, 1, 0.0))
    ledger.forfeit(r)
    assert ledger.spent.tokens == 700
    with pytest.raises(BudgetExhausted):
        ledger.reserve(Spend(301, 1))


def test_affordable() -> None:
    ledger = Ledger(BudgetLimits(max_tokens=1000, max_calls=5), Spend(100, 1, 0.0))
    assert ledger.affordable(Spend(200, 1), 10) == 4  # calls: 4 left; tokens: 900 // 200 = 4
    assert ledger.affordable(Spend(300, 1), 10) == 3
    assert ledger.affordable(Spend(1000, 1), 10) == 0
    assert Ledger(BudgetLimits(max_seconds=5)).affordable(Spend(10**9, 1), 7) == 7


def test_no_overspend_under_concurrent_reservations() -> None:
    limits = BudgetLimits(max_tokens=10_000, max_calls=500, max_cost_usd=2.5)
    ledger = Ledger(limits)
    granted: list[int] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        for i in range(400):
            size = 7 + (seed * 31 + i * 17) % 90
            try:
                r = ledger.reserve(Spend(size, 1, size / 4000))
            except BudgetExhausted:
                continue
            # settle at or below the reservation, as providers do
            ledger.settle(r, Spend(size - (i % 5), 1, (size - (i % 5)) / 4000))
            with lock:
                granted.append(size)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spent = ledger.spent
    assert spent.tokens <= 10_000
    assert spent.calls <= 500
    assert spent.cost_usd <= 2.5 + 1e-9
    assert ledger.reserved == Spend()
    assert len(granted) == spent.calls
