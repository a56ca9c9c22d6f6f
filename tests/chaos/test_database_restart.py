"""Postgres crashes (``pg_ctl stop -m immediate``) and comes back while jobs run: every
job completes, and the API and the workers recover without being restarted. While the
database is down the API answers 503 with Retry-After at once (not a 500, not a hang).
Runs on a private Postgres cluster, never the shared one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bounds import finishes_within
from tests.chaos.helpers import Probe, api_client, best_of_n_body, submit, wait_job, wait_until
from tests.privsvc import PONDER_DB, PrivatePostgres
from tests.stack import running_stack

pytestmark = pytest.mark.chaos

JOBS = 6


def test_postgres_restart_while_jobs_run(
    private_pg: PrivatePostgres, queue_name: str, tmp_path: Path
) -> None:
    url = private_pg.url(PONDER_DB)
    with running_stack(url, queue_name, tmp_path, sim_args=("--latency-ms", "300")) as stack:
        stack.start("beat", "beat")
        probe = Probe(url)
        with api_client(stack, stack.new_key("chaos")) as client:
            ids = [
                submit(client, best_of_n_body(n=6, max_calls=10, seed=seed)) for seed in range(JOBS)
            ]
            wait_until(
                lambda: probe.count("running") >= 1 and probe.samples(ids[0], "done") >= 1,
                "jobs to be running",
                stack,
            )
            probe.close()
            private_pg.stop("immediate")  # a crash: no checkpoint, recovery at the next start

            # a refused connection answers in milliseconds; the bound only tells that
            # from a request left hanging on the database (the client waits 30 s)
            with finishes_within(10, "a read with Postgres down"):
                resp = client.get(f"/v1/jobs/{ids[0]}")
            assert resp.status_code == 503, resp.text
            assert resp.headers["content-type"].startswith("application/problem+json")
            assert "Retry-After" in resp.headers
            assert client.get("/readyz").status_code == 503

            private_pg.start()
            jobs = [wait_job(client, job_id, stack) for job_id in ids]
            assert client.get("/readyz").status_code == 200
        probe = Probe(url)
        usage, done, lost = probe.totals()
        probe.close()
        # the same processes throughout: nothing was restarted
        assert all(proc.poll() is None for proc in stack.procs.values()), stack.logs()

    assert [job["status"] for job in jobs] == ["completed"] * JOBS, jobs
    assert usage == done + lost  # nothing journaled was paid for twice
