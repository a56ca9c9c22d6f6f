"""The webhook endpoints: signing secrets and their rotation, a job's deliveries with the
attempt log, redelivery, and webhook URLs refused at submit time (SSRF)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from ponder.config import Settings
from tests.api_helpers import api_client, auth_headers, job_body

pytestmark = pytest.mark.integration


def test_a_tenant_gets_one_secret_until_it_rotates(
    client: TestClient, headers: dict[str, str]
) -> None:
    first = client.get("/v1/webhook-secrets", headers=headers)
    assert first.status_code == 200, first.text
    [secret] = first.json()["secrets"]
    assert secret["secret"].startswith("whsec_") and secret["expires_at"] is None
    assert client.get("/v1/webhook-secrets", headers=headers).json()["secrets"] == [secret]

    rotated = client.post("/v1/webhook-secrets/rotate", headers=headers)
    assert rotated.status_code == 200, rotated.text
    both = rotated.json()["secrets"]
    assert len(both) == 2
    assert both[1]["id"] == secret["id"] and both[1]["expires_at"] is not None
    assert both[0]["expires_at"] is None  # the new one, listed first

    # another tenant has its own secret
    other = auth_headers(client, "globex")
    theirs = client.get("/v1/webhook-secrets", headers=other).json()["secrets"]
    assert {s["secret"] for s in theirs}.isdisjoint({s["secret"] for s in both})


def test_rotate_with_no_grace_retires_the_old_secrets_at_once(
    client: TestClient, headers: dict[str, str]
) -> None:
    assert client.post("/v1/webhook-secrets/rotate", headers=headers).status_code == 200
    out = client.post("/v1/webhook-secrets/rotate", json={"grace_seconds": 0}, headers=headers)
    assert out.status_code == 200, out.text
    assert len(out.json()["secrets"]) == 1
    assert client.get("/v1/webhook-secrets", headers=headers).json() == out.json()


@pytest.mark.parametrize(
    "body",
    [
        {"grace_seconds": -1},
        {"grace_seconds": 10**9},
        {"grace_seconds": "soon"},
        {"grace": 5},
        [1, 2],
    ],
)
def test_rotate_refuses_bad_bodies(client: TestClient, headers: dict[str, str], body: Any) -> None:
    out = client.post("/v1/webhook-secrets/rotate", json=body, headers=headers)
    assert out.status_code == 422, out.text
    assert out.json()["detail"]


def test_secrets_need_an_api_key(client: TestClient) -> None:
    assert client.get("/v1/webhook-secrets").status_code == 401
    assert client.post("/v1/webhook-secrets/rotate").status_code == 401


def test_a_cancelled_job_lists_its_delivery_and_it_can_be_redelivered(
    client: TestClient, headers: dict[str, str]
) -> None:
    hook = "http://127.0.0.1:9/hooks/ponder"
    job = client.post("/v1/jobs", json=job_body(webhook_url=hook), headers=headers).json()
    assert client.get(f"/v1/jobs/{job['id']}/deliveries", headers=headers).json() == {
        "deliveries": []
    }
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers).status_code == 200

    out = client.get(f"/v1/jobs/{job['id']}/deliveries", headers=headers)
    assert out.status_code == 200, out.text
    [delivery] = out.json()["deliveries"]
    assert delivery["event_type"] == "job.cancelled"
    assert delivery["url"] == hook and delivery["status"] == "pending"
    assert delivery["webhook_id"].startswith("msg_")
    assert delivery["payload"]["type"] == "job.cancelled"
    assert delivery["payload"]["data"]["id"] == job["id"]
    assert delivery["payload"]["data"]["status"] == "cancelled"
    assert delivery["payload"]["data"]["stop_reason"] == "cancelled"
    assert set(delivery["payload"]["data"]["usage"]) == {"tokens", "calls", "cost_usd", "seconds"}
    assert delivery["attempt_log"] == []

    one = client.get(f"/v1/deliveries/{delivery['id']}", headers=headers)
    assert one.status_code == 200 and one.json()["webhook_id"] == delivery["webhook_id"]
    again = client.post(f"/v1/deliveries/{delivery['id']}/redeliver", headers=headers)
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "pending"
    assert again.json()["webhook_id"] == delivery["webhook_id"]

    # another tenant sees none of it
    other = auth_headers(client, "globex")
    assert client.get(f"/v1/jobs/{job['id']}/deliveries", headers=other).status_code == 404
    assert client.get(f"/v1/deliveries/{delivery['id']}", headers=other).status_code == 404
    nope = client.post(f"/v1/deliveries/{delivery['id']}/redeliver", headers=other)
    assert nope.status_code == 404 and "belongs to this API key's tenant" in nope.json()["detail"]


def test_unknown_deliveries_and_jobs_are_404(client: TestClient, headers: dict[str, str]) -> None:
    assert client.get("/v1/deliveries/nope", headers=headers).status_code == 404
    assert client.post("/v1/deliveries/nope/redeliver", headers=headers).status_code == 404
    assert client.get("/v1/deliveries/" + "x" * 300, headers=headers).status_code == 404
    assert client.get("/v1/jobs/nope/deliveries", headers=headers).status_code == 404


@pytest.fixture
def strict_client(pg_settings: Settings) -> Any:
    with api_client(pg_settings.model_copy(update={"webhook_allow_private": False})) as c:
        yield c


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://127.1/hook", "loopback"),
        ("http://2130706433/hook", "loopback"),
        ("http://0x7f.0.0.1/hook", "loopback"),
        ("http://localhost:8080/hook", "loopback"),
        ("http://api.localhost/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://172.16.5.4/hook", "private"),
        ("http://[fd12::1]/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://169.254.10.10/hook", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://100.64.0.7/hook", "CGNAT"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://240.0.0.1/hook", "reserved"),
    ],
)
def test_submit_refuses_webhooks_to_forbidden_addresses(
    strict_client: TestClient, url: str, why: str
) -> None:
    headers = auth_headers(strict_client, "acme")
    out = strict_client.post("/v1/jobs", json=job_body(webhook_url=url), headers=headers)
    assert out.status_code == 422, out.text
    detail = out.json()["detail"]
    assert "webhook_url" in detail and why in detail, detail
    # a developer with a local receiver learns the switch that allows it
    assert "PONDER_WEBHOOK_ALLOW_PRIVATE=true" in detail, detail


def test_submit_accepts_public_addresses_and_names(strict_client: TestClient) -> None:
    headers = auth_headers(strict_client, "acme")
    # names under .test never resolve, and 192.0.2.0/24 is for documentation: nothing
    # here is ever contacted (no worker runs), and no real host is named
    for url in ("https://hooks.ponder.test/hooks/ponder", "http://hooks.ponder.test:8080/x"):
        out = strict_client.post("/v1/jobs", json=job_body(webhook_url=url), headers=headers)
        assert out.status_code == 202, out.text


def test_loopback_is_allowed_when_private_targets_are_allowed(
    client: TestClient, headers: dict[str, str]
) -> None:
    out = client.post(
        "/v1/jobs", json=job_body(webhook_url="http://127.0.0.1:9/hook"), headers=headers
    )
    assert out.status_code == 202, out.text


def test_openapi_describes_every_webhook_endpoint(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = [
        ("/v1/webhook-secrets", "get"),
        ("/v1/webhook-secrets/rotate", "post"),
        ("/v1/jobs/{job_id}/deliveries", "get"),
        ("/v1/deliveries/{delivery_id}", "get"),
        ("/v1/deliveries/{delivery_id}/redeliver", "post"),
    ]
    for path, method in paths:
        operation = spec["paths"][path][method]
        assert operation["summary"] and operation["description"], (path, method)
        assert operation["tags"] == ["webhooks"]
    assert "webhooks" in {tag["name"] for tag in spec["tags"]}
