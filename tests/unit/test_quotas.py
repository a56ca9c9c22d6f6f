"""Per-tenant limits (ponder.quotas): the token bucket's arithmetic, the bucket and the
daily counters in SQL (on SQLite, with the clock given), the merge of a tenant's own
limits with the server's, and the daily spend a worker reserves per model call."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from ponder.budget import BudgetExhausted, SpendLimitReached
from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.errors import ErrorCode, QuotaExceeded
from ponder.jobstate import Next, ending_for
from ponder.quotas import (
    SPEND_USD,
    Quotas,
    TenantLimits,
    add_today,
    adjust_today,
    bucket_level,
    bucket_wait,
    check_limit_value,
    load_limits,
    seconds_to_next_day,
    set_limits,
    take_token,
    used_today,
    utc_day,
)
from ponder.tables import Job, Tenant, TenantLimit
from tests.jobs_helpers import create_job, load_job, run_until_done
from tests.strategy_harness import services

DAY = 1_767_225_600.0  # 2026-01-01T00:00:00Z


# ---------------------------------------------------------------- arithmetic


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    assert bucket_level(0.0, stamp=100.0, now=100.0, rate=2.0, burst=10) == 0.0
    assert bucket_level(0.0, stamp=100.0, now=102.5, rate=2.0, burst=10) == 5.0
    assert bucket_level(3.0, stamp=100.0, now=200.0, rate=2.0, burst=10) == 10.0  # full
    # a clock that went back refills nothing (and takes nothing)
    assert bucket_level(3.0, stamp=100.0, now=90.0, rate=2.0, burst=10) == 3.0


def test_the_wait_is_what_the_missing_tokens_take_to_refill() -> None:
    assert bucket_wait(0.25, rate=0.5) == pytest.approx(1.5)
    assert bucket_wait(1.0, rate=0.5) == 0.0
    assert bucket_wait(3.0, rate=0.5, need=5.0) == pytest.approx(4.0)
    # 600 a minute: an empty bucket holds a token again after 0.1 s
    assert bucket_wait(0.0, rate=600 / 60) == pytest.approx(0.1)


def test_utc_days() -> None:
    assert utc_day(DAY) == "2026-01-01"
    assert utc_day(DAY - 1) == "2025-12-31"
    assert seconds_to_next_day(DAY) == 86_400
    assert seconds_to_next_day(DAY + 86_399.5) == 1.0  # never less than a second


# ---------------------------------------------------------------- the server's and the tenant's


def test_limits_are_the_servers_unless_the_tenant_has_its_own() -> None:
    settings = Settings(limit_max_tokens=1_000_000, tenant_jobs_per_minute=600)
    defaults = TenantLimits.of(settings, "t")
    assert defaults.max_priority == 9 and defaults.jobs_per_minute == 600
    assert defaults.jobs_burst == 600 and defaults.spend_per_day_usd is None
    assert defaults.ceilings()["max_tokens"] == 1_000_000
    assert defaults.own == frozenset() and defaults.whose("max_priority") == "this server"
    row = TenantLimit(tenant_id="t", max_priority=3, max_job_tokens=5_000, jobs_per_minute=6.0)
    own = TenantLimits.of(settings, "t", row)
    assert own.max_priority == 3 and own.jobs_per_minute == 6.0
    assert own.ceilings()["max_tokens"] == 5_000
    assert own.ceiling_owner("max_tokens", settings) == "this tenant"
    assert own.ceiling_owner("max_calls", settings) == "this server"
    assert own.whose("max_priority") == "this tenant"
    # a tenant ceiling above the server's (the server's was lowered since) is the server's
    lowered = TenantLimits.of(settings.model_copy(update={"limit_max_tokens": 1_000}), "t", row)
    assert lowered.ceilings()["max_tokens"] == 1_000


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("colour", 1, "unknown limit"),
        ("max_priority", 10, "between 0 and 9"),
        ("max_priority", 2.5, "whole number"),
        ("jobs_burst", 0, "above zero"),
        ("jobs_per_minute", -1.0, "above zero"),
        ("spend_per_day_usd", float("inf"), "must be a number"),
        ("max_job_tokens", 10**12, "at most the server's limit_max_tokens"),
        ("max_job_cost_usd", 5000.0, "at most the server's limit_max_cost_usd"),
        ("max_active_jobs", True, "must be a number"),
    ],
)
def test_limit_values_are_checked(name: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_limit_value(name, value, Settings())


def test_a_limit_may_be_cleared_and_priority_zero_is_a_limit() -> None:
    check_limit_value("jobs_per_minute", None, Settings())
    check_limit_value("max_priority", 0, Settings())


# ---------------------------------------------------------------- in SQL


@pytest.fixture
def db(sqlite_settings: Settings) -> tuple[sessionmaker[Session], str]:
    sessions = make_sessionmaker(make_engine(sqlite_settings.database_url))
    with sessions() as s, s.begin():
        tenant = Tenant(name="acme")
        s.add(tenant)
        s.flush()
        return sessions, tenant.id


def test_the_bucket_gives_its_burst_then_one_token_per_refill(
    db: tuple[sessionmaker[Session], str],
) -> None:
    sessions, tenant = db
    waits = []
    with sessions() as s:
        for i in range(5):
            waits.append(take_token(s.connection(), tenant, rate=1.0, burst=3, now=DAY + i * 0.1))
        s.commit()
    assert waits[:3] == [0.0, 0.0, 0.0]
    # three taken by DAY + 0.2 (0.2 s refilled): 0.3 tokens at DAY + 0.3 -> 0.7 s to wait
    assert waits[3] == pytest.approx(0.7) and waits[4] == pytest.approx(0.6)
    with sessions() as s:
        # a refusal took nothing: at DAY + 1.2 a token is there, and only one
        assert take_token(s.connection(), tenant, rate=1.0, burst=3, now=DAY + 1.2) == 0.0
        assert take_token(s.connection(), tenant, rate=1.0, burst=3, now=DAY + 1.2) > 0
        s.rollback()  # a submission that is not stored gives its token back
    with sessions() as s:
        assert take_token(s.connection(), tenant, rate=1.0, burst=3, now=DAY + 1.2) == 0.0
        s.commit()
    with sessions() as s:
        # a lower burst applies at once
        taken = [
            take_token(s.connection(), tenant, rate=1.0, burst=1, now=DAY + 100 + i) for i in (0, 0)
        ]
        assert taken[0] == 0.0 and taken[1] > 0


def test_daily_counters_stay_within_their_limit_and_restart_each_day(
    db: tuple[sessionmaker[Session], str],
) -> None:
    sessions, tenant = db
    with sessions() as s:
        conn = s.connection()
        assert add_today(conn, tenant, SPEND_USD, 4.0, limit=10.0, now=DAY) == 4.0
        assert add_today(conn, tenant, SPEND_USD, 6.0, limit=10.0, now=DAY + 60) == 10.0
        assert add_today(conn, tenant, SPEND_USD, 0.5, limit=10.0, now=DAY + 60) is None
        assert add_today(conn, tenant, SPEND_USD, 11.0, limit=10.0, now=DAY) is None
        adjust_today(conn, tenant, SPEND_USD, -3.0, day="2026-01-01")
        assert used_today(conn, tenant, SPEND_USD, now=DAY) == 7.0
        adjust_today(conn, tenant, SPEND_USD, -3.0, day="2025-12-31")  # another day: no-op
        adjust_today(conn, tenant, SPEND_USD, -30.0, day="2026-01-01")
        assert used_today(conn, tenant, SPEND_USD, now=DAY) == 0.0  # never below zero
        # the next day starts from zero
        assert add_today(conn, tenant, SPEND_USD, 9.0, limit=10.0, now=DAY + 90_000) == 9.0
        assert used_today(conn, tenant, SPEND_USD, now=DAY) == 0.0
        s.commit()


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_refused_bucket_is_remembered_until_it_can_have_refilled(
    db: tuple[sessionmaker[Session], str], sqlite_settings: Settings
) -> None:
    sessions, tenant = db
    clock = _Clock(DAY)
    quotas = Quotas(clock)
    with sessions() as s:
        set_limits(s, tenant, {"jobs_per_minute": 60.0, "jobs_burst": 1}, sqlite_settings)
        s.commit()
        limits = load_limits(s, tenant, sqlite_settings)
    with sessions() as s:
        quotas.admit_job(s, limits)
        s.commit()
    with sessions() as s, pytest.raises(QuotaExceeded) as refused:
        quotas.admit_job(s, limits)
    assert refused.value.limit == "jobs_per_minute" and refused.value.retry_after == 1.0
    assert refused.value.code is ErrorCode.QUOTA_EXCEEDED
    clock.now += 0.5
    with pytest.raises(QuotaExceeded) as early:  # no database needed
        quotas.refuse_early(limits)
    assert early.value.retry_after == pytest.approx(0.5)
    clock.now += 0.5
    quotas.refuse_early(limits)  # it may have refilled: ask the database
    with sessions() as s:
        quotas.admit_job(s, limits)
        s.commit()


def test_active_jobs_are_counted_with_batch_items(
    db: tuple[sessionmaker[Session], str], sqlite_settings: Settings
) -> None:
    sessions, tenant = db
    settings = sqlite_settings.model_copy(update={"tenant_max_active_jobs": 2})
    limits = TenantLimits.of(settings, tenant)
    quotas = Quotas()
    with sessions() as s, s.begin():
        for held in (True, False):
            s.add(
                Job(
                    tenant_id=tenant,
                    problem={},
                    strategy={},
                    model="sim",
                    budget={},
                    seed=1,
                    held=held,
                    batch_id="b" if held else None,
                )
            )
    with sessions() as s, pytest.raises(QuotaExceeded) as refused:
        quotas.admit_job(s, limits)
    assert refused.value.limit == "max_active_jobs" and refused.value.value == 2


# ---------------------------------------------------------------- spend per day (worker)


def test_the_job_ending_for_a_spent_day() -> None:
    error = SpendLimitReached("the tenant's daily spend limit ...")
    assert isinstance(error, BudgetExhausted)
    ending = ending_for(error)
    assert ending.then is Next.FINISH and ending.status == "completed"
    assert ending.stop_reason == "daily_spend_limit" and ending.error == str(error)


PRICEY = """\
models:
  - name: pricey
    provider: sim
    model: sim-1
    price_in_per_mtok: 1000
    price_out_per_mtok: 1000
"""

EXPENSIVE = {
    "name": "best_of_n",
    "params": {"n": 16, "batch_size": 2, "max_tokens": 256, "stop_when_verified": False},
}


def test_a_worker_reserves_each_call_against_the_tenants_day(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    """In the embedded mode (SQLite journal): calls stop once the day cannot cover the
    next one's worst case; what is counted is what the calls cost."""
    models = tmp_path / "models.yaml"
    models.write_text(PRICEY)
    settings = sqlite_settings.model_copy(update={"models_file": str(models)})
    first = create_job(settings, model="pricey", strategy=EXPENSIVE, budget={"max_calls": 64})
    job = load_job(settings, first)
    sessions = make_sessionmaker(make_engine(settings.database_url))
    with sessions() as s:
        set_limits(s, job.tenant_id, {"spend_per_day_usd": 1.5}, settings)
        s.commit()
    svc = services(settings, [])
    try:
        run_until_done(svc, first)
    finally:
        svc.close()
    done = load_job(settings, first)
    assert done.status == "completed" and done.stop_reason == "daily_spend_limit"
    assert 0 < done.usage_cost_usd <= 1.5 and done.usage_calls < 16
    with sessions() as s:
        import time

        spent = used_today(s, job.tenant_id, SPEND_USD, now=time.time())
    assert spent == pytest.approx(done.usage_cost_usd, abs=1e-9)
