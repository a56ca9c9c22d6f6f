"""Every kind of bad request gets a 4xx problem document whose detail says what to fix,
never a 500. Against real Postgres and Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from ponder.config import Settings
from ponder.tables import ApiKey, Job
from tests.api_helpers import (
    api_client,
    assert_problem,
    auth_headers,
    job_body,
    queued_job_ids,
)

pytestmark = pytest.mark.integration


GAME24 = {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}}
BEST_OF_N = {"name": "best_of_n", "params": {"n": 4}}

# (case id, changes to the good body, phrases the detail must contain)
BAD_BODIES: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    (
        "unknown strategy",
        {"strategy": {"name": "beam_me_up"}},
        ("body.strategy.name", "unknown strategy 'beam_me_up'", "best_of_n"),
    ),
    (
        "strategy n=0",
        {"strategy": {"name": "best_of_n", "params": {"n": 0}}},
        ("body.strategy.params.n", "greater than or equal to 1"),
    ),
    (
        "strategy n too big",
        {"strategy": {"name": "best_of_n", "params": {"n": 10**6}}},
        ("body.strategy.params.n", "less than or equal to 4096"),
    ),
    (
        "unknown strategy param",
        {"strategy": {"name": "best_of_n", "params": {"beams": 3}}},
        ("body.strategy.params.beams", "unknown parameter", "n, batch_size"),
    ),
    (
        "strategy param wrong type",
        {"strategy": {"name": "best_of_n", "params": {"temperature": "hot"}}},
        ("body.strategy.params.temperature", "valid number"),
    ),
    (
        "strategy missing name",
        {"strategy": {"params": {}}},
        ("body.strategy.name", "Field required"),
    ),
    (
        "unknown model",
        {"model": "gpt-17"},
        ("body.model", "unknown model 'gpt-17'", "configured models: sim"),
    ),
    (
        "unknown task",
        {"problem": {"task": "sudoku", "input": {}}},
        ("body.problem.task", "unknown task 'sudoku'", "game24"),
    ),
    (
        "prompt and task",
        {"problem": {**GAME24, "prompt": "hi"}},
        ("body.problem", "exactly one of"),
    ),
    ("neither prompt nor task", {"problem": {"expected": "4"}}, ("body.problem", "exactly one of")),
    ("task without input", {"problem": {"task": "game24"}}, ("needs its `input`",)),
    (
        "too few numbers",
        {"problem": {"task": "game24", "input": {"numbers": [4, 9]}}},
        ("body.problem.input", "3 to 6", "got 2 numbers"),
    ),
    (
        "number out of range",
        {"problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 1000]}}},
        ("body.problem.input", "between 1 and 100"),
    ),
    (
        "numbers not a list",
        {"problem": {"task": "game24", "input": {"numbers": "4 9 10 13"}}},
        ("body.problem.input", "input.numbers"),
    ),
    (
        "unknown input key",
        {"problem": {"task": "game24", "input": {"nums": [4, 9, 10, 13]}}},
        ("body.problem.input", "unknown keys"),
    ),
    ("empty messages", {"problem": {"messages": []}}, ("body.problem", "must not be empty")),
    (
        "bad message role",
        {"problem": {"messages": [{"role": "wizard", "content": "hi"}]}},
        ("body.problem.messages.0.role",),
    ),
    (
        "negative budget",
        {"budget": {"max_tokens": -5}},
        ("body.budget.max_tokens", "greater than 0"),
    ),
    ("zero cost budget", {"budget": {"max_cost_usd": 0}}, ("body.budget.max_cost_usd",)),
    (
        "absurd token budget",
        {"budget": {"max_tokens": 10**15}},
        ("body.budget.max_tokens", "at most 10000000"),
    ),
    (
        "absurd cost budget",
        {"budget": {"max_cost_usd": 1e9}},
        ("body.budget.max_cost_usd", "at most 1000"),
    ),
    (
        "absurd seconds",
        {"budget": {"max_calls": 5, "max_seconds": 10**8}},
        ("body.budget.max_seconds", "at most 86400"),
    ),
    (
        "absurd calls",
        {"budget": {"max_calls": 10**9}},
        ("body.budget.max_calls", "at most 100000"),
    ),
    ("empty budget", {"budget": {}}, ("body.budget", "at least one of max_tokens")),
    ("only max_seconds", {"budget": {"max_seconds": 30}}, ("at least one of",)),
    (
        "unknown budget field",
        {"budget": {"max_tokens": 5, "max_dollars": 3}},
        ("body.budget.max_dollars", "unknown field"),
    ),
    ("priority too high", {"priority": 10}, ("body.priority", "less than or equal to 9")),
    ("priority negative", {"priority": -1}, ("body.priority", "greater than or equal to 0")),
    ("priority not a number", {"priority": "urgent"}, ("body.priority",)),
    ("priority fractional", {"priority": 1.5}, ("body.priority",)),
    ("priority boolean", {"priority": True}, ("body.priority",)),
    (
        "webhook ftp scheme",
        {"webhook_url": "ftp://hooks.ponder.test/hook"},
        ("body.webhook_url", "http:// or https://", "'ftp'"),
    ),
    (
        "webhook javascript scheme",
        {"webhook_url": "javascript:alert(1)"},
        ("body.webhook_url", "http:// or https://"),
    ),
    ("webhook no host", {"webhook_url": "https:///path"}, ("body.webhook_url", "host")),
    (
        "webhook too long",
        {"webhook_url": "https://hooks.ponder.test/" + "a" * 2100},
        ("body.webhook_url", "2048"),
    ),
    ("webhook with spaces", {"webhook_url": "https://exa mple.com/"}, ("body.webhook_url",)),
    (
        "webhook bad port",
        {"webhook_url": "https://hooks.ponder.test:99999/"},
        ("body.webhook_url",),
    ),
    (
        "metadata too large",
        {"metadata": {"blob": "x" * 17_000}},
        ("body.metadata", "16384 bytes"),
    ),
    ("metadata not an object", {"metadata": [1, 2]}, ("body.metadata", "dictionary")),
    ("negative seed", {"seed": -1}, ("body.seed", "greater than or equal to 0")),
    ("huge seed", {"seed": 2**64}, ("body.seed",)),
    (
        "unknown verifier",
        {"verifier": {"type": "oracle"}},
        ("body.verifier", "unknown verifier type 'oracle'", "game24"),
    ),
    (
        "verifier for another task",
        {"problem": {"prompt": "2+2?"}, "verifier": {"type": "game24"}},
        ("body.verifier", "game24"),
    ),
    (
        "exact verifier without expected",
        {"verifier": {"type": "exact"}},
        ("body.verifier", "expected"),
    ),
    ("unknown top-level field", {"colour": "blue"}, ("body.colour", "unknown field")),
    (
        "NUL in prompt",
        {"problem": {"prompt": "a\x00b"}},
        ("NUL", "problem.prompt"),
    ),
    ("NUL in metadata key", {"metadata": {"a\x00": 1}}, ("NUL",)),
]


@pytest.mark.parametrize(
    ("changes", "phrases"), [pytest.param(c, p, id=i) for i, c, p in BAD_BODIES]
)
def test_bad_job_is_a_422_saying_what_to_fix(
    client: TestClient,
    headers: dict[str, str],
    pg_settings: Settings,
    changes: dict[str, Any],
    phrases: tuple[str, ...],
) -> None:
    body = job_body()
    body.update(changes)
    doc = assert_problem(client.post("/v1/jobs", json=body, headers=headers), 422, *phrases)
    assert doc["errors"], "validation problems list the invalid fields"
    for error in doc["errors"]:
        assert error["loc"] and error["msg"] and error["type"]
        assert "input" not in error  # the rejected value is never echoed back
    # nothing was stored or queued
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        assert s.execute(select(Job.id)).first() is None
    assert queued_job_ids(pg_settings) == []


def test_missing_required_fields(client: TestClient, headers: dict[str, str]) -> None:
    doc = assert_problem(
        client.post("/v1/jobs", json={}, headers=headers),
        422,
        "body.problem: Field required",
        "body.strategy: Field required",
    )
    assert [e["loc"] for e in doc["errors"]] == [["body", "problem"], ["body", "strategy"]]


def test_several_errors_are_all_reported(client: TestClient, headers: dict[str, str]) -> None:
    body = job_body(priority=99, seed=-3, budget={"max_tokens": 0})
    doc = assert_problem(
        client.post("/v1/jobs", json=body, headers=headers),
        422,
        "body.priority",
        "body.seed",
        "body.budget.max_tokens",
    )
    assert len(doc["errors"]) == 3


def test_non_finite_numbers_are_refused(client: TestClient, headers: dict[str, str]) -> None:
    raw = (
        b'{"problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}},'
        b' "strategy": {"name": "best_of_n"}, "metadata": {"x": NaN}}'
    )
    response = client.post(
        "/v1/jobs", content=raw, headers={**headers, "Content-Type": "application/json"}
    )
    assert_problem(response, 422, "finite", "metadata.x")


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b'{"problem": ', b"\xff\xfe", b'{"a": 1} trailing'],
    ids=["garbage", "truncated", "not utf-8", "trailing data"],
)
def test_malformed_json_is_a_422(client: TestClient, headers: dict[str, str], raw: bytes) -> None:
    response = client.post(
        "/v1/jobs", content=raw, headers={**headers, "Content-Type": "application/json"}
    )
    assert_problem(response, 422, "not valid JSON")


def test_body_that_is_not_an_object(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/v1/jobs", json=[GAME24], headers=headers)
    assert_problem(response, 422, "must be a JSON object")


def test_empty_body(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post(
        "/v1/jobs", content=b"", headers={**headers, "Content-Type": "application/json"}
    )
    assert_problem(response, 422, "request body is required")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_a_415(
    client: TestClient, headers: dict[str, str], content_type: str | None
) -> None:
    import json

    sent = dict(headers)
    if content_type is not None:
        sent["Content-Type"] = content_type
    response = client.post("/v1/jobs", content=json.dumps(job_body()).encode(), headers=sent)
    assert_problem(response, 415, "Content-Type: application/json")


def test_json_with_charset_is_accepted(client: TestClient, headers: dict[str, str]) -> None:
    import json

    response = client.post(
        "/v1/jobs",
        content=json.dumps(job_body()).encode(),
        headers={**headers, "Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 202, response.text


# ------------------------------------------------------------------ auth


def test_missing_api_key_is_a_401_telling_how_to_send_it(client: TestClient) -> None:
    response = client.post("/v1/jobs", json=job_body())
    assert_problem(response, 401, "Authorization: Bearer <api key>")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer pk_not-a-real-key", "Bearer sk-something-else", "Bearer " + "pk_" + "x" * 5000],
    ids=["unknown key", "foreign format", "very long"],
)
def test_wrong_api_key_is_a_401(client: TestClient, authorization: str) -> None:
    response = client.get("/v1/jobs", headers={"Authorization": authorization})
    assert_problem(response, 401, "invalid API key")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "pk_key_without_scheme", "Bearer"])
def test_authorization_that_is_not_a_bearer_token(client: TestClient, authorization: str) -> None:
    response = client.get("/v1/jobs", headers={"Authorization": authorization})
    assert_problem(response, 401, "Bearer")


def test_revoked_key_is_a_401(pg_settings: Settings) -> None:
    # with the key cache off, revocation takes effect at once
    settings = pg_settings.model_copy(update={"auth_cache_seconds": 0.0})
    with api_client(settings) as client:
        headers = auth_headers(client, "revoked-tenant")
        assert client.get("/v1/jobs", headers=headers).status_code == 200
        with client.app.state.sessions() as s, s.begin():  # type: ignore[attr-defined]
            s.execute(update(ApiKey).values(revoked_at=datetime.now(UTC)))
        assert_problem(client.get("/v1/jobs", headers=headers), 401, "invalid API key")


def test_key_revoked_behind_the_apis_back_stops_working_once_the_key_cache_expires(
    client: TestClient,
) -> None:
    # revoked in SQL, nobody is told: the cache's TTL is the fallback
    from api.keyring import AuthCache

    cache: AuthCache = client.app.state.auth_cache  # type: ignore[attr-defined]
    headers = auth_headers(client, "cached-tenant")
    assert client.get("/v1/jobs", headers=headers).status_code == 200  # now cached
    with client.app.state.sessions() as s, s.begin():  # type: ignore[attr-defined]
        s.execute(update(ApiKey).values(revoked_at=datetime.now(UTC)))
    assert client.get("/v1/jobs", headers=headers).status_code == 200  # within the TTL
    cache.clear()  # what the TTL's expiry does
    assert_problem(client.get("/v1/jobs", headers=headers), 401, "invalid API key")


# ------------------------------------------------------------------ body size


def test_oversized_body_by_content_length_is_a_413(
    pg_settings: Settings,
) -> None:
    settings = pg_settings.model_copy(update={"max_body_bytes": 2048})
    with api_client(settings) as client:
        headers = auth_headers(client)
        body = job_body(metadata={"blob": "x" * 4000})
        response = client.post("/v1/jobs", json=body, headers=headers)
        assert_problem(response, 413, "2048-byte limit")
        # a body under the limit still goes through
        assert client.post("/v1/jobs", json=job_body(), headers=headers).status_code == 202


def test_batch_and_dataset_uploads_have_their_own_larger_limit(pg_settings: Settings) -> None:
    settings = pg_settings.model_copy(update={"max_body_bytes": 2048, "max_upload_bytes": 60_000})
    line = json.dumps({"problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}}})
    upload = "\n".join([line] * 500).encode()  # about 35 KB: over the body limit
    ndjson = {"Content-Type": "application/x-ndjson"}
    with api_client(settings) as client:
        headers = {**auth_headers(client), **ndjson}
        header = json.dumps({"batch": {"defaults": {"strategy": {"name": "best_of_n"}}}})
        batch = client.post(
            "/v1/batches", content=header.encode() + b"\n" + upload, headers=headers
        )
        assert batch.status_code == 202, batch.text
        assert batch.json()["accepted"] == 500
        dataset = client.post("/v1/datasets?name=big", content=upload, headers=headers)
        assert dataset.status_code == 201, dataset.text
        # other routes keep the body limit, and uploads have theirs
        assert_problem(client.post("/v1/jobs", content=upload, headers=headers), 413, "2048-byte")
        too_big = client.post("/v1/batches", content=upload * 2, headers=headers)
        assert_problem(too_big, 413, "60000-byte limit")


def test_oversized_chunked_body_is_a_413(client: TestClient, headers: dict[str, str]) -> None:
    limit = client.app.state.settings.max_body_bytes  # type: ignore[attr-defined]
    chunk = b"x" * 65536
    sent = 0

    def stream() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(limit // len(chunk) + 3):
            sent += len(chunk)
            yield chunk

    response = client.post(
        "/v1/jobs", content=stream(), headers={**headers, "Content-Type": "application/json"}
    )
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "byte limit")


def test_small_chunked_body_is_accepted(client: TestClient, headers: dict[str, str]) -> None:
    import json

    data = json.dumps(job_body()).encode()

    def stream() -> Iterator[bytes]:
        yield data[:10]
        yield data[10:]

    response = client.post(
        "/v1/jobs", content=stream(), headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 202, response.text


def test_malformed_content_length_is_a_400(client: TestClient, headers: dict[str, str]) -> None:
    import asyncio

    app = client.app
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/jobs",
        "raw_path": b"/v1/jobs",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-length", b"12abc"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    start = messages[0]
    assert start["status"] == 400
    assert (b"content-type", b"application/problem+json") in start["headers"]


# ------------------------------------------------------------------ query and header params


@pytest.mark.parametrize(
    ("query", "phrases"),
    [
        ("cursor=not-a-cursor", ("query.cursor", "next_cursor")),
        ("cursor=WyJ4IiwieSJd", ("query.cursor",)),  # valid base64 of ["x","y"]
        ("status=finished", ("query.status", "'queued'", "'cancelled'")),
        ("limit=0", ("query.limit", "greater than or equal to 1")),
        ("limit=201", ("query.limit", "less than or equal to 200")),
        ("limit=ten", ("query.limit", "valid integer")),
        ("batch_id=not-a-uuid", ("query.batch_id", "UUID")),
    ],
)
def test_bad_list_query_is_a_422(
    client: TestClient, headers: dict[str, str], query: str, phrases: tuple[str, ...]
) -> None:
    assert_problem(client.get(f"/v1/jobs?{query}", headers=headers), 422, *phrases)


@pytest.mark.parametrize(
    ("wait", "phrases"),
    [
        ("61", ("query.wait", "at most 60 seconds")),
        ("100000", ("query.wait", "at most 60")),
        ("-1", ("query.wait", "greater than or equal to 0")),
        ("soon", ("query.wait", "valid number")),
        ("inf", ("query.wait",)),
        ("nan", ("query.wait",)),
    ],
)
def test_bad_wait_is_a_422(
    client: TestClient, headers: dict[str, str], wait: str, phrases: tuple[str, ...]
) -> None:
    job_id = client.post("/v1/jobs", json=job_body(), headers=headers).json()["id"]
    assert_problem(client.get(f"/v1/jobs/{job_id}?wait={wait}", headers=headers), 422, *phrases)


def test_idempotency_key_too_long_is_a_422(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post(
        "/v1/jobs", json=job_body(), headers={**headers, "Idempotency-Key": "k" * 256}
    )
    assert_problem(response, 422, "Idempotency-Key", "255")


# ------------------------------------------------------------------ routing and crashes


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    assert_problem(client.get("/v2/everything"), 404, "/v2/everything", "/docs")


def test_wrong_method_is_a_405_problem(client: TestClient, headers: dict[str, str]) -> None:
    response = client.delete("/v1/jobs", headers=headers)
    assert_problem(response, 405, "DELETE", "/v1/jobs")
    assert "GET" in response.headers["allow"] and "POST" in response.headers["allow"]


def test_unexpected_error_is_a_generic_500_problem(pg_settings: Settings) -> None:
    with api_client(pg_settings, raise_server_exceptions=False) as client:

        def explode() -> None:
            raise RuntimeError("secret internals")

        client.app.add_api_route("/boom", explode)  # type: ignore[attr-defined]
        response = client.get("/boom")
        doc = assert_problem(response, 500, "unexpected error", "incident")
        assert "secret internals" not in response.text
        assert doc["incident"] in doc["detail"]


def test_step_strategy_on_a_problem_without_step_prompts_is_a_422(
    client: TestClient, headers: dict[str, str]
) -> None:
    for name in ("tree_of_thoughts", "beam_search", "mcts"):
        body = {"problem": {"prompt": "What is 2 + 2?"}, "strategy": {"name": name}}
        resp = client.post("/v1/jobs", json=body, headers=headers)
        assert_problem(resp, 422, "step prompts")


def test_arithmetic_problem_without_expected_and_default_verifier_is_a_422(
    client: TestClient, headers: dict[str, str]
) -> None:
    problem = {"task": "arithmetic", "input": {"question": "A shop has 3 apples."}}
    body = {"problem": problem, "strategy": {"name": "best_of_n"}}
    assert_problem(client.post("/v1/jobs", json=body, headers=headers), 422, "expected")
    body["verifier"] = {"type": "none"}
    assert client.post("/v1/jobs", json=body, headers=headers).status_code == 202
