"""Shared by the chaos tests: jobs over HTTP, and what Postgres says about them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ponder.db import make_engine, make_sessionmaker
from ponder.tables import Job, JobEvent, JobStep
from tests.stack import Stack

TERMINAL = ("completed", "failed", "cancelled")


def best_of_n_body(
    *, n: int, max_calls: int, seed: int = 7, max_tokens: int = 20_000
) -> dict[str, Any]:
    """A job of ``n`` one-completion model calls made one after the other (every candidate
    drawn, none skipped), seeded so that a rerun makes exactly the same calls."""
    return {
        "problem": {"task": "game24", "input": {"numbers": [3, 3, 8, 8]}},
        "strategy": {
            "name": "best_of_n",
            "params": {"n": n, "batch_size": 1, "max_tokens": 128, "stop_when_verified": False},
        },
        "model": "sim-http",
        "budget": {"max_tokens": max_tokens, "max_calls": max_calls},
        "seed": seed,
    }


def api_client(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def submit(client: httpx.Client, body: dict[str, Any]) -> str:
    resp = client.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def wait_until(cond: Callable[[], bool], what: str, stack: Stack, timeout: float = 60.0) -> None:
    """Poll ``cond`` until it holds; fail with the processes' logs after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what}\n{stack.logs()}"
            )
        time.sleep(0.05)


def wait_job(
    client: httpx.Client, job_id: str, stack: Stack, timeout: float = 90.0
) -> dict[str, Any]:
    """The job once it has ended (long-polling the API)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", params={"wait": 10}).json()
        if job["status"] in TERMINAL:
            return job
    raise AssertionError(f"job {job_id} did not end within {timeout:g} s\n{stack.logs()}")


class Probe:
    """Reads jobs and their journals straight from Postgres."""

    def __init__(self, database_url: str) -> None:
        self._engine = make_engine(database_url, pool_size=1, max_overflow=2)
        self._sessions = make_sessionmaker(self._engine)

    def close(self) -> None:
        self._engine.dispose()

    def sessions(self) -> Session:
        """A session for queries of the test's own."""
        return self._sessions()

    def job(self, job_id: str) -> Job:
        with self._sessions() as s:
            job = s.get(Job, job_id)
            assert job is not None, f"no job {job_id}"
            s.expunge(job)
            return job

    def samples(self, job_id: str, status: str) -> int:
        """Billed model calls in the job's journal: ``done`` (result journaled) or
        ``pending`` (reserved, in flight)."""
        with self._sessions() as s:
            return int(
                s.execute(
                    select(func.count()).where(
                        JobStep.job_id == job_id,
                        JobStep.kind == "sample",
                        JobStep.status == status,
                    )
                ).scalar_one()
            )

    def event_kinds(self, job_id: str) -> list[str]:
        with self._sessions() as s:
            return list(
                s.execute(
                    select(JobEvent.kind).where(JobEvent.job_id == job_id).order_by(JobEvent.seq)
                ).scalars()
            )

    def count(self, status: str) -> int:
        with self._sessions() as s:
            return int(s.execute(select(func.count()).where(Job.status == status)).scalar_one())

    def totals(self) -> tuple[int, int, int]:
        """Over every job: paid calls (usage), journaled billed calls, calls lost in flight."""
        with self._sessions() as s:
            usage, lost = s.execute(
                select(
                    func.coalesce(func.sum(Job.usage_calls), 0),
                    func.coalesce(func.sum(Job.lost_calls), 0),
                )
            ).one()
            done = s.execute(
                select(func.count()).where(JobStep.kind == "sample", JobStep.status == "done")
            ).scalar_one()
        return int(usage), int(done), int(lost)
