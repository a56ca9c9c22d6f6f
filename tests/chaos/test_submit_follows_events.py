"""`ponder submit FILE --wait` follows the job's Server-Sent Events (not a polling loop),
and when the connection drops — here, the API is killed and restarted mid-job — it
reconnects with Last-Event-ID and carries on to the finished job."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ponder.cli import _follow
from ponder.localproc import wait_http_ok
from ponder_client import Ponder
from ponder_client.types import Job
from tests.chaos.helpers import Probe, wait_until
from tests.stack import PONDER, running_stack

pytestmark = pytest.mark.chaos

JOB_ID = "job-1"


def _frame(seq: int, kind: str, data: dict[str, Any]) -> bytes:
    body = json.dumps({"seq": seq, "kind": kind, "data": data, "at": "2026-01-01T00:00:01Z"})
    return f"id: {seq}\nevent: {kind}\ndata: {body}\n\n".encode()


def _job(**changes: Any) -> dict[str, Any]:
    """A job as the API shows it (a running one, unless ``changes`` say otherwise)."""
    return {
        "id": JOB_ID,
        "status": "running",
        "stop_reason": None,
        "result": None,
        "usage": {"tokens": 0, "calls": 0, "cost_usd": 0.0, "seconds": 0.0},
        "budget": {"max_tokens": None, "max_calls": 4, "max_cost_usd": None, "max_seconds": None},
        "progress": {},
        "error": None,
        "model": "sim",
        "strategy": {"name": "best_of_n", "params": {"n": 4}},
        "priority": 0,
        "metadata": {},
        "batch_id": None,
        "webhook_url": None,
        "cancel_requested": False,
        "created_at": "2026-01-01T00:00:00Z",
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": None,
        "updated_at": "2026-01-01T00:00:00Z",
        **changes,
    }


class _DroppedStream(httpx.SyncByteStream):
    """Sends some frames, then the connection breaks."""

    def __init__(self, frames: list[bytes]) -> None:
        self._frames = frames

    def __iter__(self) -> Iterator[bytes]:
        yield from self._frames
        raise httpx.ReadError("connection reset by peer")


def test_follow_resumes_after_a_dropped_stream_with_last_event_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    requests: list[httpx.Request] = []
    job = _job()

    def api(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        sse = {"content-type": "text/event-stream"}
        if request.url.path == f"/v1/jobs/{JOB_ID}/events":
            streams = sum(1 for r in requests if r.url.path.endswith("/events"))
            assert streams <= 2, "the stream was not resumed after event 2"
            if "Last-Event-ID" not in request.headers:
                first = [_frame(1, "started", {}), _frame(2, "best", {"score": 0.5})]
                return httpx.Response(200, headers=sse, stream=_DroppedStream(first))
            assert request.headers["Last-Event-ID"] == "2"  # resume after the last one seen
            job.update(
                status="completed",
                usage={"tokens": 300, "calls": 3, "cost_usd": 0.0, "seconds": 0.3},
                progress={"best_score": 1.0, "verified": True},
            )
            rest = _frame(3, "best", {"score": 1.0}) + _frame(4, "completed", {})
            return httpx.Response(200, headers=sse, content=rest)
        assert request.url.path == f"/v1/jobs/{JOB_ID}"
        if job["status"] == "running":
            job["usage"] = {"tokens": 200, "calls": 2, "cost_usd": 0.0, "seconds": 0.2}
        return httpx.Response(200, json=job)

    with httpx.Client(transport=httpx.MockTransport(api)) as http:
        client = Ponder("http://api.test", "pk_test", http_client=http, sleep=lambda _: None)
        final = _follow(client, Job.model_validate(job))

    assert final.status == "completed"
    streams = [r for r in requests if r.url.path.endswith("/events")]
    assert len(streams) == 2
    assert "wait" not in "".join(str(r.url) for r in requests)  # no long-poll loop
    err = capsys.readouterr().err
    assert "lost the connection to the API" in err and "after event 2" in err
    assert "reconnected to the API" in err
    assert "best score 1.00 verified" in err


def test_submit_wait_survives_an_api_restart(pg_url: str, queue_name: str, tmp_path: Path) -> None:
    body = tmp_path / "job.json"
    body.write_text(
        json.dumps(
            {
                "problem": {"task": "game24", "input": {"numbers": [3, 3, 8, 8]}},
                "strategy": {
                    "name": "best_of_n",
                    "params": {"n": 12, "batch_size": 1, "stop_when_verified": False},
                },
                "model": "sim-http",
                "budget": {"max_tokens": 30000, "max_calls": 12},
            }
        )
    )
    with running_stack(pg_url, queue_name, tmp_path, sim_args=("--latency-ms", "500")) as stack:
        env = {**stack.env, "PONDER_API_URL": stack.api_url, "PONDER_API_KEY": stack.new_key("cli")}
        cli = subprocess.Popen(
            [*PONDER, "submit", str(body), "--wait"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        probe = Probe(pg_url)
        try:
            wait_until(
                lambda: (
                    probe.count("running") == 1
                    and '/events HTTP/1.1" 200' in (tmp_path / "api.log").read_text()
                ),
                "the CLI to follow the running job's events",
                stack,
            )
            port = stack.api_url.rsplit(":", 1)[1]
            stack.kill9("api")
            stack.start("api", "api", "--port", port)
            wait_http_ok(f"{stack.api_url}/readyz", [stack.procs["api"]])
            out, err = cli.communicate(timeout=90)
        finally:
            if cli.poll() is None:
                cli.kill()
            probe.close()
        api_log = (tmp_path / "api.log").read_text()

    assert cli.returncode == 0, err
    job = json.loads(out)
    assert job["status"] == "completed"
    assert "lost the connection to the API" in err and "reconnected to the API" in err
    assert "best score" in err  # the progress bar
    assert api_log.count(f"GET /v1/jobs/{job['id']}/events") >= 2  # one stream per API run
    assert f"GET /v1/jobs/{job['id']}?wait" not in api_log  # followed, not long-polled
