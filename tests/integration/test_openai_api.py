"""The OpenAI-compatible surface over HTTP without workers (real Postgres and Redis, jobs
stay queued): what a request becomes, every error in OpenAI's shape, the wait bound of a
chat completion, files, a batch whose every line is refused, and webhook events written
in OpenAI's format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ponder.config import Settings
from ponder.tables import WebhookDelivery
from tests.api_helpers import api_client, auth_headers

pytestmark = pytest.mark.integration

PROMPT = "Use the numbers 4 9 10 13 and the operations + - * / with parentheses to make 24."
MESSAGES = [{"role": "user", "content": PROMPT}]


@pytest.fixture
def client(pg_settings: Settings) -> Iterator[TestClient]:
    settings = pg_settings.model_copy(update={"openai_max_wait_seconds": 0.3})
    with api_client(settings) as c:
        yield c


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    return auth_headers(client, "acme")


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error


def test_a_chat_completion_that_outlasts_the_wait_names_its_job(
    client: TestClient, headers: dict[str, str]
) -> None:
    answer = client.post(
        "/openai/v1/chat/completions",
        json={"model": "best_of_n/sim", "messages": MESSAGES, "ponder": {"params": {"n": 2}}},
        headers=headers,
    )
    error = error_of(answer, 504)
    job_id = answer.headers["Ponder-Job-Id"]
    assert answer.headers["x-should-retry"] == "false"
    assert error["code"] == "timeout" and error["job_id"] == job_id
    assert f"GET /v1/jobs/{job_id}" in error["message"]
    job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
    assert job["status"] == "queued"
    assert job["strategy"] == {"name": "best_of_n", "params": job["strategy"]["params"]}
    assert job["strategy"]["params"]["n"] == 2


def test_a_response_without_background_answers_in_progress_after_the_wait(
    client: TestClient, headers: dict[str, str]
) -> None:
    answer = client.post(
        "/openai/v1/responses", json={"model": "sim", "input": PROMPT}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "queued" and body["output"] == [] and body["usage"] is None
    assert body["background"] is False
    assert answer.headers["Ponder-Job-Id"] == body["ponder"]["job_id"]
    again = client.get(f"/openai/v1/responses/{body['id']}", headers=headers).json()
    assert again["id"] == body["id"] and again["model"] == "sim"
    # the native job is a response too, by its own id
    native = client.get(f"/openai/v1/responses/{body['ponder']['job_id']}", headers=headers)
    assert native.json()["id"] == body["id"]


def test_an_idempotency_key_returns_the_same_job(
    client: TestClient, headers: dict[str, str]
) -> None:
    body = {"model": "sim", "input": PROMPT, "background": True}
    keyed = {**headers, "Idempotency-Key": "once"}
    first = client.post("/openai/v1/responses", json=body, headers=keyed).json()
    second = client.post("/openai/v1/responses", json=body, headers=keyed).json()
    assert first["id"] == second["id"]
    other = client.post("/openai/v1/responses", json={**body, "input": "x"}, headers=keyed)
    assert error_of(other, 409)["code"] == "conflict"


@pytest.mark.parametrize(
    ("path", "body", "status", "param", "phrase"),
    [
        ("/chat/completions", {"model": "gpt-9", "messages": MESSAGES}, 404, "model", "GET"),
        ("/chat/completions", {"messages": MESSAGES}, 400, "model", "required"),
        ("/chat/completions", {"model": "sim", "messages": []}, 400, "messages", "at least"),
        (
            "/chat/completions",
            {"model": "sim", "messages": [{"role": "tool", "content": "x"}]},
            400,
            "messages[0].role",
            "not supported",
        ),
        (
            "/chat/completions",
            {
                "model": "sim",
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
            },
            400,
            "messages[0].content[0]",
            "only text parts",
        ),
        (
            "/chat/completions",
            {"model": "sim", "messages": MESSAGES, "tools": [{"type": "function"}]},
            400,
            "tools",
            "no tools",
        ),
        ("/chat/completions", {"model": "sim", "messages": MESSAGES, "n": 99}, 400, "n", "16"),
        (
            "/chat/completions",
            {"model": "sim", "messages": MESSAGES, "ponder": {"budget": {"max_seconds": 5}}},
            400,
            "ponder.budget",
            "set at least one of max_tokens",
        ),
        (
            "/chat/completions",
            {"model": "sim", "messages": MESSAGES, "ponder": {"budget": {"max_calls": 10**9}}},
            400,
            "ponder.budget.max_calls",
            "must be at most 100000 on this server",
        ),
        (
            "/chat/completions",
            {"model": "sim", "messages": MESSAGES, "ponder": {"budjet": {}}},
            400,
            "ponder.budjet",
            "unknown field",
        ),
        (
            "/chat/completions",
            {"model": "best_of_n/sim", "messages": MESSAGES, "ponder": {"params": {"k": 1}}},
            400,
            "ponder.params.k",
            "unknown parameter",
        ),
        (
            "/chat/completions",
            {"model": "sim", "messages": MESSAGES, "reasoning_effort": "huge"},
            400,
            "reasoning_effort",
            "`low`",
        ),
        (
            "/chat/completions",
            {"model": "sim", "messages": MESSAGES, "ponder": {"task": "chess", "input": {}}},
            400,
            "ponder.task",
            "unknown task",
        ),
        (
            "/chat/completions",
            {"model": "tree_of_thoughts/sim", "messages": MESSAGES},
            400,
            "model",
            "needs a task with step prompts",
        ),
        (
            "/responses",
            {"model": "sim", "input": PROMPT, "previous_response_id": "resp_1"},
            400,
            "previous_response_id",
            "not supported",
        ),
        (
            "/responses",
            {"model": "sim", "input": [{"type": "function_call_output"}]},
            400,
            "input[0]",
            "not supported",
        ),
        ("/responses", {"model": "sim"}, 400, "input", "required"),
    ],
)
def test_bad_requests_get_openais_error_naming_the_field(
    client: TestClient,
    headers: dict[str, str],
    path: str,
    body: dict[str, Any],
    status: int,
    param: str,
    phrase: str,
) -> None:
    error = error_of(client.post(f"/openai/v1{path}", json=body, headers=headers), status)
    assert error["param"] == param, error
    assert phrase.lower() in error["message"].lower(), error


def test_a_high_effort_over_the_tenants_ceiling_says_what_to_do(
    pg_settings: Settings,
) -> None:
    settings = pg_settings.model_copy(update={"limit_max_tokens": 100_000})
    with api_client(settings) as client:
        answer = client.post(
            "/openai/v1/responses",
            json={"model": "sim", "input": PROMPT, "reasoning": {"effort": "high"}},
            headers=auth_headers(client),
        )
    error = error_of(answer, 400)
    assert error["param"] == "reasoning.effort"
    assert "reasoning effort 'high' sets budget.max_tokens" in error["message"]
    assert "choose a lower effort" in error["message"]


def test_over_the_job_rate_is_a_429_with_retry_after(pg_settings: Settings) -> None:
    settings = pg_settings.model_copy(
        update={"tenant_jobs_per_minute": 1.0, "tenant_jobs_burst": 1}
    )
    with api_client(settings) as client:
        headers = auth_headers(client)
        body = {"model": "sim", "input": PROMPT, "background": True}
        assert client.post("/openai/v1/responses", json=body, headers=headers).status_code == 200
        refused = client.post("/openai/v1/responses", json=body, headers=headers)
    error = error_of(refused, 429)
    assert error["code"] == "rate_limit_exceeded" and error["limit"] == "jobs_per_minute"
    assert int(refused.headers["Retry-After"]) >= 1


def test_responses_of_other_tenants_and_unknown_paths_are_404s(
    client: TestClient, headers: dict[str, str]
) -> None:
    mine = client.post(
        "/openai/v1/responses",
        json={"model": "sim", "input": PROMPT, "background": True},
        headers=headers,
    ).json()
    theirs = auth_headers(client, "globex")
    assert error_of(client.get(f"/openai/v1/responses/{mine['id']}", headers=theirs), 404)
    assert error_of(client.get("/openai/v1/responses/resp_nope", headers=headers), 404)
    unknown = error_of(client.get("/openai/v1/assistants", headers=headers), 404)
    assert unknown["code"] == "unknown_url" and "/chat/completions" in unknown["message"]
    cancelled = client.post(f"/openai/v1/responses/{mine['id']}/cancel", headers=headers)
    assert cancelled.json()["status"] == "cancelled"


def upload(client: TestClient, headers: dict[str, str], lines: list[str], **form: str) -> Any:
    return client.post(
        "/openai/v1/files",
        files={"file": ("requests.jsonl", "\n".join(lines).encode(), "application/jsonl")},
        data={"purpose": "batch", **form},
        headers=headers,
    )


def test_files_upload_list_read_and_delete(client: TestClient, headers: dict[str, str]) -> None:
    first = upload(client, headers, ['{"a": 1}']).json()
    second = upload(client, headers, ['{"b": 2}', '{"c": 3}']).json()
    assert first["object"] == "file" and first["purpose"] == "batch" and first["bytes"] == 8
    listed = client.get("/openai/v1/files", headers=headers).json()
    assert [f["id"] for f in listed["data"]] == [second["id"], first["id"]]
    page = client.get("/openai/v1/files", params={"limit": 1}, headers=headers).json()
    assert page["has_more"] is True and page["data"][0]["id"] == second["id"]
    rest = client.get(
        "/openai/v1/files", params={"limit": 1, "after": second["id"]}, headers=headers
    ).json()
    assert [f["id"] for f in rest["data"]] == [first["id"]] and rest["has_more"] is False
    content = client.get(f"/openai/v1/files/{second['id']}/content", headers=headers)
    assert content.content == b'{"b": 2}\n{"c": 3}'
    assert client.get(f"/openai/v1/files/{first['id']}", headers=headers).json() == first
    theirs = auth_headers(client, "globex")
    assert error_of(client.get(f"/openai/v1/files/{first['id']}", headers=theirs), 404)
    deleted = client.delete(f"/openai/v1/files/{first['id']}", headers=headers).json()
    assert deleted == {"id": first["id"], "object": "file", "deleted": True}
    assert error_of(client.get(f"/openai/v1/files/{first['id']}", headers=headers), 404)


def test_bad_uploads_are_400s(client: TestClient, headers: dict[str, str]) -> None:
    wrong = error_of(upload(client, headers, ["{}"], purpose="fine-tune"), 400)
    assert wrong["param"] == "purpose" and "`batch`" in wrong["message"]
    plain = client.post("/openai/v1/files", json={"purpose": "batch"}, headers=headers)
    assert error_of(plain, 400)["param"] == "file"
    no_file = client.post("/openai/v1/files", data={"purpose": "batch"}, files={}, headers=headers)
    assert error_of(no_file, 400)["param"] == "file"


def test_a_batch_with_no_valid_line_fails_with_an_error_file(
    client: TestClient, headers: dict[str, str]
) -> None:
    lines = [
        json.dumps(
            {
                "custom_id": "x",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "gpt-9", "messages": MESSAGES},
            }
        ),
        json.dumps({"custom_id": "y", "method": "POST", "url": "/v1/embeddings", "body": {}}),
        json.dumps({"method": "POST", "url": "/v1/chat/completions", "body": {}}),
        "{not json",
    ]
    file_id = upload(client, headers, lines).json()["id"]
    batch = client.post(
        "/openai/v1/batches",
        json={
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
        headers=headers,
    ).json()
    assert batch["status"] == "failed" and batch["output_file_id"] is None
    assert batch["request_counts"] == {"total": 4, "completed": 0, "failed": 4}
    listed = {(e["line"], e["code"], e["param"]) for e in batch["errors"]["data"]}
    assert listed == {
        (1, "model_not_found", "model"),
        (2, "invalid_request", "url"),
        (3, "invalid_request", "custom_id"),
        (4, "invalid_json_line", None),
    }
    content = client.get(f"/openai/v1/files/{batch['error_file_id']}/content", headers=headers)
    errors = [json.loads(line) for line in content.text.splitlines()]
    assert [(e["custom_id"], e["error"]["line"]) for e in errors] == [
        ("x", 1),
        ("y", 2),
        (None, 3),
        (None, 4),
    ]
    assert all(e["response"] is None and e["id"].startswith("batch_req_") for e in errors)
    assert client.get(f"/openai/v1/batches/{batch['id']}", headers=headers).json() == batch
    cancel = client.post(f"/openai/v1/batches/{batch['id']}/cancel", headers=headers)
    assert "nothing to cancel" in error_of(cancel, 400)["message"]


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"endpoint": "/v1/embeddings"}, "endpoint"),
        ({"completion_window": "1h"}, "completion_window"),
        ({"input_file_id": "file-nope"}, "input_file_id"),
        ({"ponder": {"budget": {"max_tokens": -1}}}, "ponder.budget.max_tokens"),
        ({"ponder": {"defaults": {}}}, "ponder.defaults"),
    ],
)
def test_bad_batch_requests_are_refused_whole(
    client: TestClient, headers: dict[str, str], changes: dict[str, Any], param: str
) -> None:
    line = json.dumps(
        {
            "custom_id": "x",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "sim", "messages": MESSAGES},
        }
    )
    file_id = upload(client, headers, [line]).json()["id"]
    body = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        **changes,
    }
    answer = client.post("/openai/v1/batches", json=body, headers=headers)
    error = error_of(answer, 404 if param == "input_file_id" else 400)
    assert error["param"] == param, error
    assert client.get("/openai/v1/batches", headers=headers).json()["data"] == []


def test_webhook_events_in_openai_format_are_written_with_the_status_change(
    client: TestClient, headers: dict[str, str]
) -> None:
    body = {
        "model": "sim",
        "input": PROMPT,
        "background": True,
        "ponder": {"webhook_url": "http://127.0.0.1:9/hooks"},
    }
    created = client.post("/openai/v1/responses", json=body, headers=headers).json()
    native = client.post(
        "/openai/v1/responses",
        json={**body, "ponder": {**body["ponder"], "webhook_format": "ponder"}},
        headers=headers,
    ).json()
    for response in (created, native):
        client.post(f"/openai/v1/responses/{response['id']}/cancel", headers=headers)
    sessions = client.app.state.sessions  # type: ignore[attr-defined]
    with sessions() as session:
        rows = {row.job_id: row for row in session.execute(select(WebhookDelivery)).scalars()}
    openai_row = rows[created["ponder"]["job_id"]]
    assert openai_row.event_type == "response.cancelled"
    assert openai_row.payload == {
        "id": "evt_" + openai_row.webhook_id.removeprefix("msg_"),
        "object": "event",
        "created_at": openai_row.payload["created_at"],
        "type": "response.cancelled",
        "data": {"id": created["id"]},
    }
    ponder_row = rows[native["ponder"]["job_id"]]
    assert ponder_row.event_type == "job.cancelled"
    assert ponder_row.payload["data"]["id"] == native["ponder"]["job_id"]
