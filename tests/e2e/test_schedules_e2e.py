"""Schedules with the real processes: two `ponder beat` at once race to tick a schedule
that is eight minutes behind (as after a downtime), and every fire time gets exactly one
run and one batch, whose jobs the worker then runs."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ponder.db import make_engine, make_sessionmaker
from ponder.tables import Batch, Job, ScheduleRun
from tests.schedule_helpers import TEMPLATE, set_cursor, tenant_with_dataset
from tests.stack import Stack

pytestmark = pytest.mark.e2e

MISSED = 8


def test_two_beats_catch_up_each_missed_fire_time_exactly_once(stack: Stack) -> None:
    engine = make_engine(stack.env["PONDER_DATABASE_URL"])
    sessions = make_sessionmaker(engine)
    try:
        key = stack.new_key("acme")
        tenant_with_dataset(sessions, "acme")
        with httpx.Client(
            base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            response = client.post(
                "/v1/schedules",
                json={
                    "name": "every-minute",
                    "cron": "* * * * *",
                    "template": TEMPLATE,
                    "catchup": True,
                    "max_active_runs": 100,
                },
            )
            assert response.status_code == 201, response.text
            schedule_id = response.json()["id"]

        # as if beat had been down for eight minutes: the cursor is eight fire times back
        first_missed = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(
            minutes=MISSED - 1
        )
        set_cursor(sessions, schedule_id, first_missed)
        stack.env["PONDER_SCHEDULE_TICK_SECONDS"] = "0.5"
        stack.start("beat", "beat", "--loglevel", "INFO")
        stack.start("beat2", "beat", "--loglevel", "INFO")

        runs = wait_for_started_runs(sessions, schedule_id, at_least=MISSED)
        fire_times = [run.fire_time for run in runs]
        # one run per fire time: consecutive minutes from the first missed one, no gap
        assert fire_times == [first_missed + timedelta(minutes=i) for i in range(len(runs))]
        assert len(runs) >= MISSED
        assert [run.kind for run in runs[: MISSED - 1]] == ["catchup"] * (MISSED - 1)
        with sessions() as s:
            batches = list(s.scalars(select(Batch).where(Batch.schedule_id == schedule_id)))
            assert sorted((b.fire_time, b.id) for b in batches) == [
                (run.fire_time, run.batch_id) for run in runs
            ]
            # the worker runs the batches' jobs
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                statuses = list(
                    s.scalars(
                        select(Job.status).where(Job.batch_id.in_([b.id for b in batches[:MISSED]]))
                    )
                )
                if statuses and all(st in ("completed", "failed") for st in statuses):
                    break
                time.sleep(0.5)
                s.expire_all()
            assert statuses.count("completed") == 2 * MISSED, statuses

        # both beats were sending ticks the whole time
        for name in ("beat", "beat2"):
            log = (stack.logdir / f"{name}.log").read_text(errors="replace")
            assert "ponder.schedule_tick" in log, log[-2000:]
            assert stack.procs[name].poll() is None, log[-2000:]
    finally:
        engine.dispose()


def wait_for_started_runs(
    sessions: sessionmaker[Session], schedule_id: str, *, at_least: int, timeout: float = 60.0
) -> list[ScheduleRun]:
    deadline = time.monotonic() + timeout
    runs: list[ScheduleRun] = []
    while time.monotonic() < deadline:
        with sessions() as s:
            runs = list(
                s.scalars(
                    select(ScheduleRun)
                    .where(ScheduleRun.schedule_id == schedule_id)
                    .order_by(ScheduleRun.fire_time)
                )
            )
        if len(runs) >= at_least and all(run.status == "started" for run in runs):
            return runs
        time.sleep(0.5)
    raise AssertionError(f"runs did not all start: {[(r.fire_time, r.status) for r in runs]}")
