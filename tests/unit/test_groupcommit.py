"""Group commit on a real (SQLite) database: concurrent writes share transactions, each
caller gets its own result or error, a bad write fails alone, a failed COMMIT fails every
write of its group, and jobs whose journal write failed that way retry without paying
for anything twice."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, event, select
from sqlalchemy import insert as sa_insert
from sqlalchemy.exc import IntegrityError, OperationalError

from ponder.config import Settings
from ponder.db import make_engine
from ponder.groupcommit import GroupCommitter
from ponder.llm.profiles import ModelProfile
from ponder.sim.model import SimProvider
from ponder.tables import JobStep
from tests.jobs_helpers import CountingProvider, create_job, expire_lease, load_job
from worker.runner import WorkerServices, run_slice

meta = MetaData()
rows = Table("rows", meta, Column("id", Integer, primary_key=True), Column("v", String))


class Refused(Exception):
    """A write that changed nothing (like a fenced write whose lease is gone)."""


@pytest.fixture
def engine(tmp_path: Any) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path}/g.db")
    meta.create_all(eng)
    yield eng
    eng.dispose()


def put(i: int, v: str = "x") -> Any:
    def write(conn: Connection) -> int:
        conn.execute(sa_insert(rows).values(id=i, v=v))
        return i

    return write


def stored(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(select(rows.c.id))}


def run(committer: GroupCommitter, writes: list[Any]) -> list[Any]:
    async def go() -> list[Any]:
        out = await asyncio.gather(
            *(committer.run(w, key=str(i)) for i, w in enumerate(writes)), return_exceptions=True
        )
        await committer.aclose()
        return out

    return asyncio.run(go())


def test_concurrent_writes_share_transactions(engine: Engine) -> None:
    committer = GroupCommitter(engine)
    results = run(committer, [put(i) for i in range(1, 101)])
    assert results == list(range(1, 101))
    assert stored(engine) == set(range(1, 101))
    assert committer.stats.writes == 100
    assert committer.stats.groups < 10


def test_a_clean_refusal_fails_alone(engine: Engine) -> None:
    def refuse(conn: Connection) -> None:
        raise Refused("lease lost")

    committer = GroupCommitter(engine, clean_errors=(Refused,))
    results = run(committer, [put(1), refuse, put(2)])
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], Refused)
    assert stored(engine) == {1, 2}
    assert committer.stats.solo_retries == 0


def test_a_bad_write_fails_alone(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa_insert(rows).values(id=7, v="taken"))
    committer = GroupCommitter(engine)
    results = run(committer, [put(1), put(7), put(2)])  # 7 violates the primary key
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], IntegrityError)
    assert stored(engine) == {1, 2, 7}
    assert committer.stats.solo_retries == 1


def test_a_failed_commit_fails_every_write_of_its_group(engine: Engine) -> None:
    failures = [1]

    @event.listens_for(engine, "commit")
    def drop_connection(_conn: Connection) -> None:
        if failures:
            failures.pop()
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    committer = GroupCommitter(engine, window=0.05)
    results = run(committer, [put(i) for i in range(1, 6)])
    assert all(isinstance(r, OperationalError) for r in results), results
    assert stored(engine) == set()  # nothing of the group survived
    assert committer.stats.failed_commits == 1


def test_jobs_whose_commit_failed_retry_without_paying_twice(sqlite_settings: Settings) -> None:
    """A COMMIT that fails while journaling model results: every job in that group
    stops (retry), and once claimed again each finishes with every paid call either
    journaled or counted as lost, never made twice for a journaled step."""
    strategy = {
        "name": "best_of_n",
        "params": {"n": 4, "batch_size": 1, "max_tokens": 64, "stop_when_verified": False},
    }
    budget = {"max_tokens": 5_000, "max_calls": 4}
    ids = [create_job(sqlite_settings, strategy=strategy, budget=budget, seed=i) for i in range(6)]
    providers: list[CountingProvider] = []

    def factory(profile: ModelProfile) -> CountingProvider:
        p = CountingProvider(SimProvider(profile.name))
        providers.append(p)
        return p

    svc = WorkerServices(sqlite_settings, provider_factory=factory)
    fail_next = {"armed": True}

    @event.listens_for(svc.commit_engine, "before_cursor_execute")
    def note(conn: Connection, _c: Any, statement: str, *_a: Any, **_k: Any) -> None:
        if statement.lstrip().lower().startswith("update job_steps set"):
            conn.info["completes_a_step"] = True

    @event.listens_for(svc.commit_engine, "commit")
    def fail_once(conn: Connection) -> None:
        if conn.info.pop("completes_a_step", False) and fail_next["armed"]:
            fail_next["armed"] = False
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    @event.listens_for(svc.commit_engine, "rollback")
    def forget(conn: Connection) -> None:
        conn.info.pop("completes_a_step", None)

    from worker.runner import run_slice_async

    async def all_first_slices() -> list[Any]:
        return await asyncio.gather(*(run_slice_async(svc, j, f"w{i}") for i, j in enumerate(ids)))

    first = svc.jobloop.call(all_first_slices())
    retried = [j for j, o in zip(ids, first, strict=True) if o.kind == "retry"]
    assert retried, [o.kind for o in first]
    assert not fail_next["armed"]
    for job_id in retried:  # their worker gave up the slice; the lease runs out
        expire_lease(sqlite_settings, job_id)
        for attempt in range(10):
            if run_slice(svc, job_id, f"again-{attempt}").kind == "finished":
                break
    calls_made = sum(p.calls for p in providers)
    total_journaled = 0
    with svc.sessions() as s:
        for job_id in ids:
            job = load_job(sqlite_settings, job_id)
            assert job.status == "completed", (job.status, job.error)
            journaled = len(
                s.execute(
                    select(JobStep).where(
                        JobStep.job_id == job_id, JobStep.kind == "sample", JobStep.status == "done"
                    )
                )
                .scalars()
                .all()
            )
            total_journaled += journaled
            # paid calls: journaled ones plus those lost with the failed commit
            assert job.usage_calls == journaled + job.lost_calls
            assert job.usage_calls <= budget["max_calls"]
    # every call made is either journaled or was lost with the failed group: none of the
    # journaled steps was paid for twice
    lost = sum(load_job(sqlite_settings, j).lost_calls for j in ids)
    assert calls_made == total_journaled + lost
    assert lost >= 1
    svc.close()
