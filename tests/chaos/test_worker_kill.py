"""kill -9 a worker in the middle of a multi-call job: the reaper hands the job to another
worker, which replays the journal, and the job completes within its budget."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.models import JobStep
from tests.jobs_helpers import load_job
from tests.stack import running_stack

pytestmark = pytest.mark.chaos


def test_kill_9_worker_mid_job(pg_url: str, queue_name: str, tmp_path: Path) -> None:
    # 300 ms per model call, one call per candidate: the job takes several seconds
    with running_stack(
        pg_url, queue_name, tmp_path, sim_args=("--latency-ms", "300"), worker_concurrency=1
    ) as stack:
        stack.start("beat", "beat", "--loglevel", "INFO")
        key = stack.new_key("chaos")
        settings = Settings(database_url=pg_url)
        engine = make_engine(pg_url)
        sessions = make_sessionmaker(engine)
        with httpx.Client(
            base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            resp = client.post(
                "/v1/jobs",
                json={
                    "problem": {"task": "game24", "input": {"numbers": [3, 3, 8, 8]}},
                    "strategy": {
                        "name": "best_of_n",
                        "params": {
                            "n": 12,
                            "batch_size": 1,
                            "max_tokens": 128,
                            "stop_when_verified": False,
                        },
                    },
                    "model": "sim-http",
                    "budget": {"max_tokens": 20000, "max_calls": 12},
                },
            )
            assert resp.status_code == 202, resp.text
            job_id = resp.json()["id"]

            def journaled() -> int:
                with sessions() as s:
                    return int(
                        s.execute(
                            select(func.count()).where(
                                JobStep.job_id == job_id,
                                JobStep.kind == "sample",
                                JobStep.status == "done",
                            )
                        ).scalar_one()
                    )

            deadline = time.monotonic() + 60
            while journaled() < 3:
                assert time.monotonic() < deadline, stack.logs()
                time.sleep(0.05)
            before_kill = journaled()
            stack.kill9("worker")
            assert load_job(settings, job_id).status == "running"

            stack.start("worker2", "worker", "--concurrency", "1", "--loglevel", "INFO")
            job = client.get(f"/v1/jobs/{job_id}", params={"wait": 60}).json()
            if job["status"] == "running":
                job = client.get(f"/v1/jobs/{job_id}", params={"wait": 60}).json()
            done_samples = journaled()
        engine.dispose()

    assert job["status"] == "completed", job
    row = load_job(settings, job_id)
    assert row.recoveries == 1
    assert row.lost_calls <= 1  # only the call in flight at the kill is lost
    assert done_samples >= before_kill  # what was journaled before the kill was kept
    # every call is paid once: the journaled ones plus the one lost at the kill
    assert row.usage_calls == done_samples + row.lost_calls
    assert row.usage_calls <= 12
    assert row.usage_tokens <= 20000
