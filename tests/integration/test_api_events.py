"""GET /v1/jobs/{id}/events: Server-Sent Events, live and resumable."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ponder.config import Settings
from tests.jobs_helpers import run_until_done
from worker.runner import WorkerServices

pytestmark = pytest.mark.integration

BODY = {
    "problem": {"task": "game24", "input": {"numbers": [3, 3, 8, 8]}},
    "strategy": {
        "name": "best_of_n",
        "params": {"n": 4, "batch_size": 1, "max_tokens": 128, "stop_when_verified": False},
    },
}


def parse_sse(text: str) -> list[dict[str, Any]]:
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if fields:
            out.append(
                {
                    "id": int(fields["id"]),
                    "event": fields["event"],
                    "data": json.loads(fields["data"]),
                }
            )
    return out


def run_job(settings: Settings, job_id: str) -> None:
    svc = WorkerServices(settings)
    try:
        run_until_done(svc, job_id)
    finally:
        svc.close()


def test_stream_follows_a_running_job_to_its_end(
    client: TestClient, headers: dict[str, str], pg_settings: Settings
) -> None:
    job_id = client.post("/v1/jobs", json=BODY, headers=headers).json()["id"]
    worker = threading.Thread(target=run_job, args=(pg_settings, job_id))
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        worker.start()  # the job runs while the stream is open
        text = "".join(resp.iter_text())
    worker.join()
    events = parse_sse(text)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "completed"
    assert kinds.count("candidate") == 4
    assert [e["id"] for e in events] == sorted({e["id"] for e in events})  # no repeats


def test_resume_with_last_event_id(
    client: TestClient, headers: dict[str, str], pg_settings: Settings
) -> None:
    job_id = client.post("/v1/jobs", json=BODY, headers=headers).json()["id"]
    run_job(pg_settings, job_id)
    everything = parse_sse(client.get(f"/v1/jobs/{job_id}/events", headers=headers).text)
    cut = everything[2]["id"]
    rest = parse_sse(
        client.get(f"/v1/jobs/{job_id}/events", headers={**headers, "Last-Event-ID": str(cut)}).text
    )
    assert rest == everything[3:]
    by_query = parse_sse(client.get(f"/v1/jobs/{job_id}/events?after={cut}", headers=headers).text)
    assert by_query == rest


def test_bad_last_event_id_and_other_tenants_job(
    client: TestClient, headers: dict[str, str]
) -> None:
    from tests.api_helpers import assert_problem, auth_headers

    job_id = client.post("/v1/jobs", json=BODY, headers=headers).json()["id"]
    bad = client.get(f"/v1/jobs/{job_id}/events", headers={**headers, "Last-Event-ID": "yesterday"})
    assert_problem(bad, 422, "Last-Event-ID")
    other = auth_headers(client, "someone-else")
    assert_problem(client.get(f"/v1/jobs/{job_id}/events", headers=other), 404, "no job")
