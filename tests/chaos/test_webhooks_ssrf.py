"""SSRF: with private targets not allowed (the production default), webhooks to loopback,
private, metadata and IPv6 loopback addresses are refused at submit, and a host name that
resolves to loopback is refused by the worker when it connects — the receiver listening
there never gets a request. Real processes: sim, api, worker, beat."""

from __future__ import annotations

import ipaddress
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.stack import running_stack
from tests.webhook_receiver import Receiver, parse_plan

pytestmark = pytest.mark.chaos

JOB = {
    "problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}},
    "strategy": {"name": "best_of_n", "params": {"n": 1, "max_tokens": 128}},
    "model": "sim-http",
}


def _loopback_name() -> str:
    """A host name (not `localhost`, which is refused by name) that resolves to loopback
    here: this machine's own name usually does."""
    for name in (socket.gethostname(), "localhost.localdomain", "ip6-localhost"):
        try:
            addrs = {info[4][0] for info in socket.getaddrinfo(name, 80)}
        except OSError:
            continue
        if addrs and all(ipaddress.ip_address(a).is_loopback for a in addrs):
            return name
    pytest.skip("no host name other than localhost resolves to loopback on this machine")


def test_webhooks_to_internal_addresses_are_refused(
    pg_url: str, queue_name: str, tmp_path: Path
) -> None:
    receiver = Receiver(parse_plan("200"))
    url = receiver.start()
    port = url.rsplit(":", 1)[1]
    name = _loopback_name()
    with running_stack(
        pg_url,
        queue_name,
        tmp_path,
        env_overrides={
            "PONDER_WEBHOOK_ALLOW_PRIVATE": "false",
            "PONDER_WEBHOOK_RETRY_SCHEDULE": "[0.2]",
            "PONDER_WEBHOOK_RETRY_JITTER": "0",
        },
    ) as stack:
        stack.start("beat", "beat", "--loglevel", "INFO")
        key = stack.new_key("ssrf")
        with httpx.Client(
            base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as api:
            for target in (
                f"http://127.0.0.1:{port}/hook",
                "http://10.0.0.8/hook",
                "http://169.254.169.254/latest/meta-data/",
                f"http://[::1]:{port}/hook",
            ):
                resp = api.post("/v1/jobs", json={**JOB, "webhook_url": target})
                assert resp.status_code == 422, (target, resp.text)
                assert "webhook_url" in resp.json()["detail"]

            resp = api.post("/v1/jobs", json={**JOB, "webhook_url": f"http://{name}:{port}/hook"})
            assert resp.status_code == 202, resp.text
            job_id = resp.json()["id"]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                ds = api.get(f"/v1/jobs/{job_id}/deliveries").json()["deliveries"]
                if ds and ds[0]["status"] == "failed":
                    break
                time.sleep(0.1)
            else:
                raise AssertionError(f"the delivery never failed: {ds}\n{stack.logs()}")
    receiver.stop()
    [delivery] = ds
    assert delivery["attempts"] == 2  # the first attempt and its one retry
    for attempt in delivery["attempt_log"]:
        assert attempt["status_code"] is None
        assert "refused" in attempt["error"] and "loopback" in attempt["error"]
    assert receiver.requests == []
