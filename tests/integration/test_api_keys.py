"""API keys over HTTP: scopes on every route, /v1/keys, revocation (HTTP and CLI) that
takes effect at once and ends open event streams, the last use of each key."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.keyring import Keyring
from ponder.auth import ALL_SCOPES, Scope, create_api_key
from ponder.config import Settings
from ponder.revocation import RevocationListener
from tests.api_helpers import api_client, assert_problem, job_body

pytestmark = pytest.mark.integration

ANY_ID = str(uuid.uuid4())

# every /v1 operation and the one scope it needs (a new route must be added here:
# test_every_route_is_in_the_table fails otherwise)
ROUTES: list[tuple[str, str, Scope]] = [
    ("POST", "/v1/jobs", Scope.SUBMIT),
    ("GET", "/v1/jobs", Scope.READ),
    ("GET", "/v1/jobs/{job_id}", Scope.READ),
    ("POST", "/v1/jobs/{job_id}/cancel", Scope.SUBMIT),
    ("GET", "/v1/jobs/{job_id}/events", Scope.READ),
    ("GET", "/v1/jobs/{job_id}/trace", Scope.READ),
    ("GET", "/v1/jobs/{job_id}/deliveries", Scope.READ),
    ("POST", "/v1/batches", Scope.SUBMIT),
    ("GET", "/v1/batches", Scope.READ),
    ("GET", "/v1/batches/{batch_id}", Scope.READ),
    ("GET", "/v1/batches/{batch_id}/results", Scope.READ),
    ("POST", "/v1/batches/{batch_id}/cancel", Scope.SUBMIT),
    ("POST", "/v1/datasets", Scope.SUBMIT),
    ("GET", "/v1/datasets", Scope.READ),
    ("GET", "/v1/datasets/{dataset_id}", Scope.READ),
    ("DELETE", "/v1/datasets/{dataset_id}", Scope.SUBMIT),
    ("POST", "/v1/schedules", Scope.SUBMIT),
    ("GET", "/v1/schedules", Scope.READ),
    ("GET", "/v1/schedules/{schedule_id}", Scope.READ),
    ("PATCH", "/v1/schedules/{schedule_id}", Scope.SUBMIT),
    ("DELETE", "/v1/schedules/{schedule_id}", Scope.SUBMIT),
    ("POST", "/v1/schedules/{schedule_id}/trigger", Scope.SUBMIT),
    ("POST", "/v1/schedules/{schedule_id}/backfill", Scope.SUBMIT),
    ("GET", "/v1/schedules/{schedule_id}/runs", Scope.READ),
    ("GET", "/v1/webhook-secrets", Scope.ADMIN),
    ("POST", "/v1/webhook-secrets/rotate", Scope.ADMIN),
    ("GET", "/v1/deliveries/{delivery_id}", Scope.READ),
    ("POST", "/v1/deliveries/{delivery_id}/redeliver", Scope.SUBMIT),
    ("GET", "/v1/models", Scope.READ),
    ("GET", "/v1/strategies", Scope.READ),
    ("GET", "/v1/system", Scope.READ),
    ("POST", "/v1/keys", Scope.ADMIN),
    ("GET", "/v1/keys", Scope.ADMIN),
    ("GET", "/v1/keys/{key_id}", Scope.ADMIN),
    ("DELETE", "/v1/keys/{key_id}", Scope.ADMIN),
]
# every operation of the OpenAI-compatible surface (/openai/v1, left out of the API
# document: test_every_openai_route_is_in_the_table reads the app's routes instead) and
# the scope it needs; errors there are in OpenAI's shape
OPENAI_ROUTES: list[tuple[str, str, Scope]] = [
    ("POST", "/openai/v1/chat/completions", Scope.SUBMIT),
    ("POST", "/openai/v1/responses", Scope.SUBMIT),
    ("GET", "/openai/v1/responses/{response_id}", Scope.READ),
    ("POST", "/openai/v1/responses/{response_id}/cancel", Scope.SUBMIT),
    ("POST", "/openai/v1/files", Scope.SUBMIT),
    ("GET", "/openai/v1/files", Scope.READ),
    ("GET", "/openai/v1/files/{file_id}", Scope.READ),
    ("GET", "/openai/v1/files/{file_id}/content", Scope.READ),
    ("DELETE", "/openai/v1/files/{file_id}", Scope.SUBMIT),
    ("POST", "/openai/v1/batches", Scope.SUBMIT),
    ("GET", "/openai/v1/batches", Scope.READ),
    ("GET", "/openai/v1/batches/{batch_id}", Scope.READ),
    ("POST", "/openai/v1/batches/{batch_id}/cancel", Scope.SUBMIT),
    ("GET", "/openai/v1/models", Scope.READ),
    ("GET", "/openai/v1/models/{model:path}", Scope.READ),
]
# the service's operators' routes (other tenants' limits): the `admin` scope of a tenant
# listed in PONDER_ADMIN_TENANTS; a tenant's own admin key is not enough
OPERATOR_ROUTES = [
    ("GET", "/v1/admin/tenants/{name}/limits"),
    ("PATCH", "/v1/admin/tenants/{name}/limits"),
]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_key(client: TestClient, *scopes: str, tenant: str = "acme") -> str:
    sessions = client.app.state.sessions  # type: ignore[attr-defined]
    return create_api_key(sessions, tenant, scopes=scopes or ALL_SCOPES)


def call(client: TestClient, method: str, template: str, key: str) -> Any:
    path = template
    for name in ("job_id", "batch_id", "dataset_id", "schedule_id", "delivery_id", "key_id"):
        path = path.replace("{" + name + "}", ANY_ID)
    body: dict[str, Any] | None = {} if method in ("POST", "PATCH") else None
    if path == "/v1/jobs":
        body = job_body() if method == "POST" else None
    if path == "/v1/keys" and method == "POST":
        body = {"scopes": ["admin"]}  # a key with only `admin` may grant just that
    return client.request(method, path, json=body, headers=bearer(key))


def test_every_route_is_in_the_table(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operations = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if path.startswith("/v1/")
        for method in item
    }
    assert operations == {(method, path) for method, path, _ in ROUTES} | set(OPERATOR_ROUTES)


def test_every_openai_route_is_in_the_table(client: TestClient) -> None:
    from fastapi.routing import APIRoute

    from api.routes.openai import PARTS, PREFIX

    operations = {
        (method, PREFIX + route.path)
        for part in PARTS
        for route in part.router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    assert operations == {(method, path) for method, path, _ in OPENAI_ROUTES}
    spec = client.get("/openapi.json").json()
    assert not [path for path in spec["paths"] if path.startswith("/openai")]


@pytest.mark.parametrize(
    ("method", "path", "scope"), OPENAI_ROUTES, ids=[f"{m} {p}" for m, p, _ in OPENAI_ROUTES]
)
def test_each_openai_route_needs_its_scope_and_answers_in_openais_shape(
    client: TestClient, method: str, path: str, scope: Scope
) -> None:
    target = path.replace("{model:path}", "best_of_n/sim")
    for name in ("response_id", "file_id", "batch_id"):
        target = target.replace("{" + name + "}", ANY_ID)
    others = [s for s in ALL_SCOPES if s != scope]
    body = {} if method == "POST" else None
    refused = client.request(method, target, json=body, headers=bearer(new_key(client, *others)))
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["code"] == "missing_scope" and f"`{scope.value}` scope" in error["message"]
    anonymous = client.request(method, target, json=body)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.json()["error"]["code"] == "invalid_api_key"
    allowed = client.request(method, target, json=body, headers=bearer(new_key(client, scope)))
    # past the scope check: whatever the route answers (an unknown id is a 404, an empty
    # body a 400, ...), it is no 401 or 403, and in OpenAI's shape
    assert allowed.status_code not in (401, 403), (allowed.status_code, allowed.text)
    if allowed.status_code >= 400:
        assert allowed.json()["error"]["message"]


@pytest.mark.parametrize(("method", "path"), OPERATOR_ROUTES)
def test_operator_routes_need_the_admin_scope_of_an_operator_tenant(
    pg_settings: Settings, method: str, path: str
) -> None:
    settings = pg_settings.model_copy(update={"admin_tenants": ["ops"]})
    with api_client(settings) as client:
        target = path.replace("{name}", "acme")
        body: dict[str, Any] | None = {} if method == "PATCH" else None
        sessions = client.app.state.sessions  # type: ignore[attr-defined]
        create_api_key(sessions, "acme", scopes=ALL_SCOPES)  # the tenant exists
        for tenant, scopes, allowed in [
            ("acme", ALL_SCOPES, False),  # a tenant's own admin key: not an operator
            ("ops", ("read", "submit"), False),  # an operator's key without admin
            ("ops", ("admin",), True),
        ]:
            key = create_api_key(sessions, tenant, scopes=scopes)
            answer = client.request(method, target, json=body, headers=bearer(key))
            if allowed:
                assert answer.status_code == 200, answer.text
            else:
                assert answer.status_code == 403, answer.text


def test_openapi_names_each_operations_scope_and_its_403(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for method, path, scope in ROUTES:
        operation = spec["paths"][path][method.lower()]
        assert operation["security"] == [{"ApiKey": [scope.value]}], (method, path)
        forbidden = operation["responses"]["403"]
        assert f"`{scope.value}` scope" in forbidden["description"], (method, path)
        assert "application/problem+json" in forbidden["content"]
    problem = spec["components"]["schemas"]["ProblemDetail"]
    assert "missing_scope" in problem["properties"]


@pytest.mark.parametrize(
    ("method", "path", "scope"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES]
)
def test_each_route_refuses_a_key_without_its_scope_and_lets_one_with_it_through(
    client: TestClient, method: str, path: str, scope: Scope
) -> None:
    others = [s for s in ALL_SCOPES if s != scope]
    refused = call(client, method, path, new_key(client, *others))
    doc = assert_problem(refused, 403, f"lacks the `{scope.value}` scope", path.split("{")[0])
    assert doc["missing_scope"] == scope.value
    allowed = call(client, method, path, new_key(client, scope))
    # past the scope check: whatever the route answers (an unknown id is a 404, an empty
    # body a 422, ...), it is no 401 or 403
    assert allowed.status_code not in (401, 403), (allowed.status_code, allowed.text)


def test_the_403_says_what_the_key_has_and_how_to_get_the_scope(client: TestClient) -> None:
    response = client.post("/v1/jobs", json=job_body(), headers=bearer(new_key(client, "read")))
    doc = assert_problem(
        response,
        403,
        "this API key lacks the `submit` scope, which POST /v1/jobs needs",
        "the key's scopes: `read`",
        "POST /v1/keys",
        "ponder keys create --tenant NAME --scope submit",
    )
    assert doc["missing_scope"] == "submit"


def test_a_submit_only_key_submits_but_cannot_read_back(client: TestClient) -> None:
    key = new_key(client, "submit")
    job = client.post("/v1/jobs", json=job_body(), headers=bearer(key))
    assert job.status_code == 202, job.text
    assert_problem(client.get(f"/v1/jobs/{job.json()['id']}", headers=bearer(key)), 403, "read")
    cancel = client.post(f"/v1/jobs/{job.json()['id']}/cancel", headers=bearer(key))
    assert cancel.status_code == 200, cancel.text


def test_webhook_secrets_need_admin(client: TestClient) -> None:
    ordinary = new_key(client, "submit", "read")
    assert_problem(client.get("/v1/webhook-secrets", headers=bearer(ordinary)), 403, "admin")
    secrets = client.get("/v1/webhook-secrets", headers=bearer(new_key(client, "admin")))
    assert secrets.status_code == 200 and secrets.json()["secrets"]


# ------------------------------------------------------------------ /v1/keys


def test_create_list_get_and_revoke_keys_over_http(client: TestClient) -> None:
    admin = bearer(new_key(client))
    made = client.post(
        "/v1/keys", json={"scopes": ["read", "submit"], "name": " ci "}, headers=admin
    )
    assert made.status_code == 201, made.text
    created = made.json()
    assert created["key"].startswith("pk_") and created["key"].startswith(created["prefix"])
    assert created["scopes"] == ["submit", "read"] and created["name"] == "ci"
    assert created["last_used_at"] is None and created["revoked_at"] is None
    assert made.headers["Location"] == f"/v1/keys/{created['id']}"

    new = bearer(created["key"])
    assert client.get("/v1/jobs", headers=new).status_code == 200
    assert_problem(client.get("/v1/keys", headers=new), 403, "admin")

    listed = client.get("/v1/keys", headers=admin).json()
    assert created["id"] in [k["id"] for k in listed["data"]]
    assert all("key" not in k and "key_hash" not in k for k in listed["data"])
    shown = client.get(f"/v1/keys/{created['id']}", headers=admin).json()
    assert shown["name"] == "ci" and shown["last_used_at"] is not None  # used just now

    assert client.delete(f"/v1/keys/{created['id']}", headers=admin).status_code == 204
    # refused at once on this process, although its grant was cached a moment ago
    assert_problem(client.get("/v1/jobs", headers=new), 401, "revoked")
    again = client.delete(f"/v1/keys/{created['id']}", headers=admin)
    assert again.status_code == 204  # revoking twice changes nothing
    shown = client.get(f"/v1/keys/{created['id']}", headers=admin).json()
    assert shown["revoked_at"] is not None
    active = client.get("/v1/keys", headers=admin).json()["data"]
    assert created["id"] not in [k["id"] for k in active]
    every = client.get("/v1/keys", params={"include_revoked": "true"}, headers=admin).json()
    assert created["id"] in [k["id"] for k in every["data"]]


def test_keys_page_newest_first(client: TestClient) -> None:
    admin = bearer(new_key(client, tenant="pager"))
    for n in range(4):
        made = client.post("/v1/keys", json={"scopes": ["read"], "name": f"k{n}"}, headers=admin)
        assert made.status_code == 201, made.text
    first = client.get("/v1/keys", params={"limit": 3}, headers=admin).json()
    second = client.get(
        "/v1/keys", params={"limit": 3, "cursor": first["next_cursor"]}, headers=admin
    ).json()
    names = [k["name"] for k in first["data"] + second["data"]]
    assert names == ["k3", "k2", "k1", "k0", None]
    assert second["next_cursor"] is None


def test_a_key_cannot_create_a_more_powerful_one(client: TestClient) -> None:
    admin_only = bearer(new_key(client, "admin"))
    response = client.post("/v1/keys", json={"scopes": ["admin", "submit"]}, headers=admin_only)
    assert_problem(response, 403, "cannot create a key with the `submit` scope", "lacks it")
    assert (
        client.post("/v1/keys", json={"scopes": ["admin"]}, headers=admin_only).status_code == 201
    )


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"scopes": []}, "scopes"),
        ({"scopes": ["write"]}, "scopes"),
        ({}, "scopes"),
        ({"scopes": ["read"], "name": "x" * 201}, "name"),
        ({"scopes": ["read"], "owner": "me"}, "owner"),
    ],
)
def test_bad_key_requests_are_422s(client: TestClient, body: dict[str, Any], where: str) -> None:
    response = client.post("/v1/keys", json=body, headers=bearer(new_key(client)))
    assert_problem(response, 422, where)


def test_keys_of_other_tenants_are_404s(client: TestClient) -> None:
    mine = bearer(new_key(client, tenant="mine"))
    theirs = bearer(new_key(client, tenant="theirs"))
    their_key = client.post("/v1/keys", json={"scopes": ["read"]}, headers=theirs).json()
    assert_problem(client.get(f"/v1/keys/{their_key['id']}", headers=mine), 404, "no API key")
    assert_problem(client.delete(f"/v1/keys/{their_key['id']}", headers=mine), 404, "no API key")
    assert_problem(client.delete("/v1/keys/not-an-id", headers=mine), 404, "no API key")
    assert client.get("/v1/jobs", headers=bearer(their_key["key"])).status_code == 200


def test_a_key_may_revoke_itself(client: TestClient) -> None:
    key = new_key(client)
    me = client.get("/v1/keys", headers=bearer(key)).json()["data"][0]
    assert client.delete(f"/v1/keys/{me['id']}", headers=bearer(key)).status_code == 204
    assert_problem(client.get("/v1/keys", headers=bearer(key)), 401, "revoked")


def test_last_use_is_recorded_at_most_once_a_minute(client: TestClient) -> None:
    admin = bearer(new_key(client))
    made = client.post("/v1/keys", json={"scopes": ["read"]}, headers=admin).json()
    assert made["last_used_at"] is None
    for _ in range(3):
        assert client.get("/v1/jobs", headers=bearer(made["key"])).status_code == 200
    first = client.get(f"/v1/keys/{made['id']}", headers=admin).json()["last_used_at"]
    assert first is not None
    client.app.state.auth_cache.clear()  # type: ignore[attr-defined]
    assert client.get("/v1/jobs", headers=bearer(made["key"])).status_code == 200
    # looked up again, used again: within the minute, not written again
    assert client.get(f"/v1/keys/{made['id']}", headers=admin).json()["last_used_at"] == first


# ------------------------------------------------------------------ revocation


# How long a revocation may take to reach this process before the test calls it lost.
# The auth cache is far longer (600 s) where it matters, so only the announcement can
# beat this; it takes milliseconds (bench/revocation.py measures it), and the bound is
# generous so that a loaded machine does not trip it.
REACH_SECONDS = 30.0


def _wait_until(predicate: Any, what: str, timeout: float = REACH_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.01)


def _listening(client: TestClient) -> None:
    listener: RevocationListener = client.app.state.revocations  # type: ignore[attr-defined]
    assert listener.subscribed.wait(REACH_SECONDS), "the revocation listener did not subscribe"


@pytest.fixture
def long_cache_client(pg_settings: Settings) -> Iterator[TestClient]:
    # a cache far longer than the test: only the announcement can make the key fail
    with api_client(pg_settings.model_copy(update={"auth_cache_seconds": 600.0})) as c:
        _listening(c)
        yield c


def test_cli_revocation_reaches_the_api_process_at_once(
    long_cache_client: TestClient, pg_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ponder.cli import app as cli

    client = long_cache_client
    key = new_key(client, "read")
    assert client.get("/v1/jobs", headers=bearer(key)).status_code == 200  # cached now
    monkeypatch.setenv("PONDER_DATABASE_URL", pg_settings.database_url)
    monkeypatch.setenv("PONDER_BROKER_URL", pg_settings.broker_url)
    monkeypatch.setenv("PONDER_QUEUE", pg_settings.queue)
    listed = CliRunner().invoke(cli, ["keys", "list", "--tenant", "acme"])
    assert listed.exit_code == 0, listed.output
    assert key[:11] in listed.output and "never" not in listed.output

    revoked = CliRunner().invoke(cli, ["keys", "revoke", key[:11]])
    assert revoked.exit_code == 0, revoked.output
    assert "revoked API key" in revoked.output and "1 API process told" in revoked.output
    _wait_until(
        lambda: client.get("/v1/jobs", headers=bearer(key)).status_code == 401,
        "the cached key refused after the command line revoked it",
    )

    again = CliRunner().invoke(cli, ["keys", "revoke", "pk_nothere"])
    assert again.exit_code == 1 and "no API key starts with" in again.output


def test_a_revocation_published_by_another_process_reaches_this_one(
    long_cache_client: TestClient, pg_settings: Settings
) -> None:
    from ponder.auth import hash_key
    from ponder.revocation import publish_revoked

    client = long_cache_client
    key = new_key(client, "read")
    assert client.get("/v1/jobs", headers=bearer(key)).status_code == 200
    # the database row is untouched: only the announcement (say, a process that revoked
    # it and whose commit this cache predates) makes the key fail here
    assert publish_revoked(pg_settings.broker_url, pg_settings.queue, hash_key(key)) == 1
    _wait_until(
        lambda: client.get("/v1/jobs", headers=bearer(key)).status_code == 401,
        "the cached key refused after the announcement",
    )


def _read_stream(client: TestClient, path: str, key: str, out: dict[str, Any]) -> None:
    with client.stream("GET", path, headers=bearer(key)) as response:
        out["status"] = response.status_code
        out["opened"].set()
        out["text"] = "".join(response.iter_text())


def test_revoking_a_key_ends_its_open_event_streams(client: TestClient) -> None:
    key = new_key(client)
    other = new_key(client)
    job = client.post("/v1/jobs", json=job_body(), headers=bearer(key)).json()  # stays queued
    path = f"/v1/jobs/{job['id']}/events"
    streams = [{"opened": threading.Event()} for _ in range(2)]
    readers = [
        threading.Thread(target=_read_stream, args=(client, path, k, s), daemon=True)
        for k, s in zip((key, other), streams, strict=True)
    ]
    for reader in readers:
        reader.start()
    assert all(s["opened"].wait(REACH_SECONDS) for s in streams)
    keyring: Keyring = client.app.state.keyring  # type: ignore[attr-defined]
    _wait_until(lambda: keyring.open_streams() == 2, "both streams registered")

    mine = client.get("/v1/keys", headers=bearer(other)).json()["data"]
    key_id = next(k["id"] for k in mine if key.startswith(k["prefix"]))
    assert client.delete(f"/v1/keys/{key_id}", headers=bearer(other)).status_code == 204
    # a stream of a queued job never ends on its own: the revocation ended it
    readers[0].join(REACH_SECONDS)
    assert not readers[0].is_alive(), "the revoked key's stream stayed open"
    assert streams[0]["status"] == 200 and "revoked" in streams[0]["text"]
    # the other key's stream is still open
    assert readers[1].is_alive() and keyring.open_streams() == 1
    # end it: the other key revokes itself
    other_id = next(k["id"] for k in mine if other.startswith(k["prefix"]))
    assert client.delete(f"/v1/keys/{other_id}", headers=bearer(other)).status_code == 204
    readers[1].join(REACH_SECONDS)
    assert not readers[1].is_alive()


def test_revocation_works_on_the_process_when_redis_is_down(pg_settings: Settings) -> None:
    settings = pg_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with api_client(settings) as client:
        key = new_key(client)
        victim = new_key(client, "read")
        assert client.get("/v1/jobs", headers=bearer(victim)).status_code == 200
        listed = client.get("/v1/keys", headers=bearer(key)).json()["data"]
        victim_id = next(k["id"] for k in listed if victim.startswith(k["prefix"]))
        # the announcement fails (logged); the revocation stands and holds here at once
        assert client.delete(f"/v1/keys/{victim_id}", headers=bearer(key)).status_code == 204
        assert_problem(client.get("/v1/jobs", headers=bearer(victim)), 401, "revoked")
