"""Inputs a hostile client sends (found by fuzzing the API document with Schemathesis and
by hand): each gets a clear 4xx, never a 500, and no row already stored can make a read
fail. Against the real app on Postgres; the keep-alive test runs a real uvicorn server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from ponder.auth import create_api_key
from ponder.config import Settings
from ponder.jsonlimits import CUT, MAX_DEPTH, MAX_DOCUMENT_DEPTH
from ponder.localproc import free_port
from ponder.tables import MAX_INT, Batch, DatasetItem, Job, JobEvent, Schedule
from tests.api_helpers import assert_problem, job_body
from worker.celery_app import dispatcher_for

pytestmark = pytest.mark.integration

NDJSON = {"Content-Type": "application/x-ndjson"}
PROBLEM_LINE = '{"id": "a", "task": "game24", "input": {"numbers": [4, 9, 10, 13]}}'
TEMPLATE: dict[str, Any] = {
    "dataset": "game24-easy",
    "defaults": {"strategy": {"name": "best_of_n", "params": {"n": 1}}},
}


def nested(depth: int, leaf: Any = 1) -> Any:
    """An object nesting ``depth`` objects: ``nested(2) == {"a": {"a": 1}}``."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def deep_text(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture
def sessions(client: TestClient) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = client.app.state.sessions  # type: ignore[attr-defined]
    return factory


def post_json(client: TestClient, path: str, text: str, headers: dict[str, str]) -> httpx.Response:
    return client.post(path, content=text, headers={**headers, "Content-Type": "application/json"})


def submitted_job(client: TestClient, headers: dict[str, str]) -> str:
    response = client.post("/v1/jobs", json=job_body(), headers=headers)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


@dataclass(frozen=True)
class LiveApi:
    url: str
    headers: dict[str, str]


@pytest.fixture
def live_api(pg_settings: Settings) -> Iterator[LiveApi]:
    """The API served by a real uvicorn server (in a thread), with a route that fails
    unexpectedly, and the headers of an API key."""
    dispatcher = dispatcher_for(pg_settings)
    app: FastAPI = create_app(pg_settings, dispatcher=dispatcher)

    def explode() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", explode)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    key = create_api_key(app.state.sessions, "acme")
    try:
        yield LiveApi(f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"})
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        dispatcher.close()


# ------------------------------------------------------------------ nesting depth


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/v1/jobs", json.dumps(job_body())[:-1] + f', "metadata": {deep_text(10_000)}}}'),
        ("/v1/batches", '{"items": ' + deep_text(10_000) + "}"),
        # over 64 KiB: scanned off the event loop
        (
            "/v1/batches",
            '{"metadata": {"pad": "' + "x" * 100_000 + '"}, "items": ' + deep_text(70) + "}",
        ),
        ("/v1/schedules", deep_text(10_000)),
        ("/v1/webhook-secrets/rotate", deep_text(10_000)),
    ],
)
def test_json_bodies_nested_10000_deep_are_a_422(
    client: TestClient, headers: dict[str, str], path: str, text: str
) -> None:
    doc = assert_problem(
        post_json(client, path, text, headers), 422, f"nested deeper than {MAX_DOCUMENT_DEPTH}"
    )
    assert doc["errors"][0]["loc"] == ["body"]


def test_brackets_inside_strings_do_not_count_as_nesting(
    client: TestClient, headers: dict[str, str]
) -> None:
    body = job_body(metadata={"brackets": "[" * 5000 + '\\"{' * 100})
    response = client.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == 202, response.text


def test_json_lines_nested_10000_deep_refuse_the_line(
    client: TestClient, headers: dict[str, str]
) -> None:
    good = json.dumps({**job_body(), "custom_id": "good"})
    upload = f"{good}\n{deep_text(10_000)}\n"
    response = client.post("/v1/batches", content=upload, headers={**headers, **NDJSON})
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["accepted"] == 1 and created["rejected"] == 1
    assert created["item_errors"][0]["line"] == 2
    assert f"nested deeper than {MAX_DOCUMENT_DEPTH}" in created["item_errors"][0]["detail"]

    only_deep = client.post("/v1/batches", content=deep_text(10_000), headers={**headers, **NDJSON})
    assert_problem(only_deep, 422, "line 1", "nested deeper than")


def test_a_dataset_line_nested_10000_deep_is_a_422(
    client: TestClient, headers: dict[str, str]
) -> None:
    upload = f"{PROBLEM_LINE}\n{deep_text(10_000)}\n"
    response = client.post("/v1/datasets?name=deep", content=upload, headers={**headers, **NDJSON})
    doc = assert_problem(response, 422, "line 2", "nested deeper than")
    assert doc["items"][0]["line"] == 2


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 60, 256, 300])
def test_metadata_nested_too_deep_is_a_422(
    client: TestClient, headers: dict[str, str], depth: int
) -> None:
    response = client.post("/v1/jobs", json=job_body(metadata=nested(depth)), headers=headers)
    expected = MAX_DEPTH if depth < MAX_DOCUMENT_DEPTH else MAX_DOCUMENT_DEPTH
    assert_problem(response, 422, f"nested deeper than {expected} levels; flatten it")


def test_metadata_at_the_depth_limit_is_accepted(
    client: TestClient, headers: dict[str, str]
) -> None:
    response = client.post("/v1/jobs", json=job_body(metadata=nested(MAX_DEPTH)), headers=headers)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert client.get(f"/v1/jobs/{job_id}", headers=headers).json()["metadata"] == nested(MAX_DEPTH)


def test_a_batch_item_with_metadata_too_deep_is_refused_and_reads_keep_working(
    client: TestClient, headers: dict[str, str]
) -> None:
    items = [job_body(), job_body(metadata=nested(MAX_DEPTH + 8))]
    response = client.post("/v1/batches", json={"items": items}, headers=headers)
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["accepted"] == 1 and created["rejected"] == 1
    error = created["item_errors"][0]
    assert error["index"] == 1 and "metadata" in error["detail"]
    assert f"nested deeper than {MAX_DEPTH}" in error["detail"]
    listing = client.get("/v1/jobs", headers=headers)
    assert listing.status_code == 200, listing.text
    for job in listing.json()["data"]:
        assert client.get(f"/v1/jobs/{job['id']}", headers=headers).status_code == 200


def test_batch_and_schedule_metadata_nested_too_deep_are_a_422(
    client: TestClient, headers: dict[str, str]
) -> None:
    deep = nested(MAX_DEPTH + 1)
    batch = {"items": [job_body()], "metadata": deep}
    assert_problem(client.post("/v1/batches", json=batch, headers=headers), 422, "body.metadata")
    defaults = {"items": [job_body()], "defaults": {"verifier": deep}}
    assert_problem(client.post("/v1/batches", json=defaults, headers=headers), 422, "defaults")
    schedule = {"name": "s", "cron": "@daily", "template": {**TEMPLATE, "metadata": deep}}
    response = client.post("/v1/schedules", json=schedule, headers=headers)
    assert_problem(response, 422, "template.metadata", f"nested deeper than {MAX_DEPTH}")


# ------------------------------------------------------------------ rows already stored


def test_rows_stored_too_deep_never_make_a_read_fail(
    client: TestClient, headers: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    """Rows written before the limits existed (or by hand) may nest past what a response
    can serialize: every read still answers, showing the deep part cut."""
    job_id = submitted_job(client, headers)
    batch = client.post("/v1/batches", json={"items": [job_body()]}, headers=headers).json()
    schedule = client.post(
        "/v1/schedules", json={"name": "s", "cron": "@daily", "template": TEMPLATE}, headers=headers
    ).json()
    upload = client.post(
        "/v1/datasets?name=mine", content=PROBLEM_LINE, headers={**headers, **NDJSON}
    ).json()
    deep = nested(300)
    with sessions() as s, s.begin():
        # every job of this test; a budget no request could set (a 0 cap)
        s.execute(update(Job).values(meta=deep, progress=deep, budget={"max_cost_usd": 0.0}))
        s.add(JobEvent(job_id=job_id, seq=1, kind="candidate", data=deep))
        s.execute(
            update(Batch)
            .where(Batch.id == batch["id"])
            .values(meta=deep, defaults={"metadata": deep, "verifier": deep})
        )
        s.execute(
            update(Schedule)
            .where(Schedule.id == schedule["id"])
            .values(template={**TEMPLATE, "metadata": deep})
        )
        s.execute(
            update(DatasetItem)
            .where(DatasetItem.dataset_id == upload["id"])
            .values(problem={"task": "game24", "input": deep})
        )

    reads = [
        "/v1/jobs",
        f"/v1/jobs/{job_id}",
        f"/v1/jobs/{job_id}/trace",
        f"/v1/jobs?batch_id={batch['id']}",
        "/v1/batches",
        f"/v1/batches/{batch['id']}",
        "/v1/schedules",
        f"/v1/schedules/{schedule['id']}",
        f"/v1/datasets/{upload['id']}",
    ]
    for path in reads:
        response = client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text[:300])
        assert CUT in response.text, path
    job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
    assert json.dumps(job["metadata"]).count("{") <= 130


def test_a_batch_cap_too_small_to_share_still_gives_items_a_positive_cap(
    client: TestClient, headers: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    body = {"items": [job_body()], "budget": {"max_cost_usd": 5e-324}}
    response = client.post("/v1/batches", json=body, headers=headers)
    assert response.status_code == 202, response.text
    with sessions() as s:
        budgets = [job.budget for job in s.query(Job).all()]
    assert budgets and all(b["max_cost_usd"] > 0 for b in budgets)
    assert client.get("/v1/jobs", headers=headers).status_code == 200


# ------------------------------------------------------------------ NUL characters


def test_nul_in_batch_metadata_is_a_422(client: TestClient, headers: dict[str, str]) -> None:
    body = {"items": [job_body()], "metadata": {"run": "a\x00b"}}
    response = client.post("/v1/batches", json=body, headers=headers)
    doc = assert_problem(response, 422, "body.metadata", "NUL", "metadata.run")
    assert doc["errors"][0]["loc"] == ["body", "metadata"]


def test_nul_in_a_batch_header_line_is_a_422(client: TestClient, headers: dict[str, str]) -> None:
    header = json.dumps({"batch": {"metadata": {"run": "a\x00b"}}})
    upload = f"{header}\n{json.dumps(job_body())}\n"
    response = client.post("/v1/batches", content=upload, headers={**headers, **NDJSON})
    assert_problem(response, 422, "line 1", "NUL")


@pytest.mark.parametrize(
    "template",
    [
        {**TEMPLATE, "metadata": {"k": "\x00"}},
        {**TEMPLATE, "dataset": "game24\x00"},
        {"from_jobs": {"batch_id": "\x00"}, "defaults": TEMPLATE["defaults"]},
        {**TEMPLATE, "defaults": {**TEMPLATE["defaults"], "model": "sim\x00"}},
    ],
)
def test_nul_in_a_schedule_template_is_a_422(
    client: TestClient, headers: dict[str, str], template: dict[str, Any]
) -> None:
    schedule = {"name": "s", "cron": "@daily", "template": template}
    response = client.post("/v1/schedules", json=schedule, headers=headers)
    assert_problem(response, 422, "NUL")


@pytest.mark.parametrize("field", ["name", "cron", "timezone"])
def test_nul_in_schedule_fields_is_a_422(
    client: TestClient, headers: dict[str, str], field: str
) -> None:
    schedule = {"name": "s", "cron": "@daily", "template": TEMPLATE, field: "UTC\x00"}
    response = client.post("/v1/schedules", json=schedule, headers=headers)
    assert_problem(response, 422, f"body.{field}")


def test_nul_in_a_dataset_description_is_a_422(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post(
        "/v1/datasets",
        params={"name": "d", "description": "two\x00puzzles"},
        content=PROBLEM_LINE,
        headers={**headers, **NDJSON},
    )
    assert_problem(response, 422, "query.description", "NUL")


def test_nul_in_a_dataset_line_is_a_422(client: TestClient, headers: dict[str, str]) -> None:
    lines = [
        '{"id": "a\\u0000", "task": "game24", "input": {"numbers": [4, 9, 10, 13]}}',
        '{"task": "game24", "input": {"numbers": [4, 9, 10, 13], "x\\u0000": 1}}',
    ]
    response = client.post(
        "/v1/datasets?name=d", content="\n".join(lines), headers={**headers, **NDJSON}
    )
    doc = assert_problem(response, 422, "line 1", "line 2", "NUL")
    assert [item["line"] for item in doc["items"]] == [1, 2]


def test_nul_in_a_dataset_reference_is_not_found(
    client: TestClient, headers: dict[str, str]
) -> None:
    assert_problem(client.get("/v1/datasets/a%00b", headers=headers), 404, "no dataset")
    assert_problem(client.delete("/v1/datasets/a%00b", headers=headers), 404, "no dataset")
    body = {"dataset": "a\x00b", "defaults": TEMPLATE["defaults"]}
    assert_problem(client.post("/v1/batches", json=body, headers=headers), 422, "NUL")


@pytest.mark.parametrize(
    ("path", "text", "headers_extra", "phrase"),
    [
        (
            "/v1/jobs",
            json.dumps(job_body())[:-1] + ', "metadata": {"a": "\\ud800"}}',
            {},
            "body.metadata",
        ),
        (
            "/v1/jobs",
            '{"problem": {"prompt": "\\udc00"}, "strategy": {"name": "best_of_n"}}',
            {},
            "body.problem",
        ),
        (
            "/v1/batches",
            '{"items": [' + json.dumps(job_body())[:-1] + ', "custom_id": "\\ud800"}]}',
            {},
            "item 0: custom_id",
        ),
        (
            "/v1/batches",
            json.dumps(job_body())[:-1] + ', "custom_id": "\\ud800"}',
            NDJSON,
            "line 1: custom_id",
        ),
        (
            "/v1/datasets?name=d",
            '{"id": "\\ud800", "task": "game24", "input": {"numbers": [4, 9, 10, 13]}}',
            NDJSON,
            "line 1: id",
        ),
    ],
)
def test_lone_surrogates_are_a_422(
    client: TestClient,
    headers: dict[str, str],
    path: str,
    text: str,
    headers_extra: dict[str, str],
    phrase: str,
) -> None:
    """``"\\ud800"`` is valid JSON, but the string it makes has no UTF-8 form: it can be
    neither stored nor echoed in a response."""
    request_headers = {**headers, "Content-Type": "application/json", **headers_extra}
    response = client.post(path, content=text, headers=request_headers)
    assert_problem(response, 422, phrase, "lone surrogates")


# ------------------------------------------------------------------ integer bounds


def cancelled_job(client: TestClient, headers: dict[str, str]) -> str:
    job_id = submitted_job(client, headers)
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=headers).status_code == 200
    return job_id


@pytest.mark.parametrize(
    "value", [b"\xb2", "²".encode(), b"9" * 4301, str(MAX_INT + 1).encode(), b"-1", b"x"]
)
def test_a_bad_last_event_id_is_a_422(live_api: LiveApi, value: bytes) -> None:
    # over a real server: header bytes reach the app as uvicorn decodes them (b"\xb2" is
    # "²", which str.isdigit() takes for a digit)
    with httpx.Client(base_url=live_api.url, headers=live_api.headers, timeout=30) as client:
        response = client.post("/v1/jobs", json=job_body())
        job_id = response.json()["id"]
        assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
        response = client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": value})
    assert_problem(response, 422, "last-event-id")


@pytest.mark.parametrize("value", [str(MAX_INT + 1), str(2**63), "9" * 5000, "-1"])
def test_a_bad_after_is_a_422(client: TestClient, headers: dict[str, str], value: str) -> None:
    job_id = cancelled_job(client, headers)
    response = client.get(f"/v1/jobs/{job_id}/events", params={"after": value}, headers=headers)
    assert_problem(response, 422, "query.after")


def test_the_largest_event_id_resumes_after_every_event(
    client: TestClient, headers: dict[str, str]
) -> None:
    job_id = cancelled_job(client, headers)
    for extra in ({"Last-Event-ID": str(MAX_INT)}, {}):
        params = {} if extra else {"after": MAX_INT}
        response = client.get(
            f"/v1/jobs/{job_id}/events", params=params, headers={**headers, **extra}
        )
        assert response.status_code == 200, response.text
        assert "data:" not in response.text


def test_dataset_offsets_are_bounded(client: TestClient, headers: dict[str, str]) -> None:
    upload = client.post("/v1/datasets?name=d", content=PROBLEM_LINE, headers={**headers, **NDJSON})
    dataset_id = upload.json()["id"]
    for ref in (dataset_id, "game24"):
        too_far = client.get(f"/v1/datasets/{ref}", params={"offset": MAX_INT + 1}, headers=headers)
        assert_problem(too_far, 422, "query.offset")
        last = client.get(f"/v1/datasets/{ref}", params={"offset": MAX_INT}, headers=headers)
        assert last.status_code == 200, last.text
        assert last.json()["items"] == [] and last.json()["next_offset"] is None


# ------------------------------------------------------------------ schema and server agree


@pytest.mark.parametrize(
    "path", ["/v1/jobs", "/v1/batches", "/v1/datasets", "/v1/schedules", "/v1/schedules/{id}/runs"]
)
def test_an_empty_cursor_is_the_first_page(
    client: TestClient, headers: dict[str, str], path: str
) -> None:
    schedule = client.post(
        "/v1/schedules", json={"name": "s", "cron": "@daily", "template": TEMPLATE}, headers=headers
    ).json()
    path = path.replace("{id}", schedule["id"])
    first = client.get(path, headers=headers)
    empty = client.get(path, params={"cursor": ""}, headers=headers)
    assert empty.status_code == 200, empty.text
    assert empty.json() == first.json()


def test_wait_beyond_the_setting_is_a_422_the_schema_declares(
    client: TestClient, headers: dict[str, str], pg_settings: Settings
) -> None:
    job_id = submitted_job(client, headers)
    limit = pg_settings.max_wait_seconds
    schema = client.get("/openapi.json").json()
    (wait,) = [
        p for p in schema["paths"]["/v1/jobs/{job_id}"]["get"]["parameters"] if p["name"] == "wait"
    ]
    assert wait["schema"]["maximum"] == limit and "x-maximum-setting" not in wait["schema"]
    response = client.get(f"/v1/jobs/{job_id}", params={"wait": limit + 1}, headers=headers)
    assert_problem(response, 422, "query.wait", f"at most {limit:g}")


@pytest.mark.parametrize("grace", [False, True, "10", None])
def test_grace_seconds_must_be_a_number(
    client: TestClient, headers: dict[str, str], grace: Any
) -> None:
    before = client.get("/v1/webhook-secrets", headers=headers).json()["secrets"]
    response = client.post(
        "/v1/webhook-secrets/rotate", json={"grace_seconds": grace}, headers=headers
    )
    if grace is None:  # the server's default grace period
        assert response.status_code == 200, response.text
        return
    assert_problem(response, 422, "body.grace_seconds")
    assert client.get("/v1/webhook-secrets", headers=headers).json()["secrets"] == before


def test_rotate_takes_no_body_or_json(client: TestClient, headers: dict[str, str]) -> None:
    assert client.post("/v1/webhook-secrets/rotate", headers=headers).status_code == 200
    response = client.post(
        "/v1/webhook-secrets/rotate",
        content="grace_seconds=5",
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 415, "JSON")


@pytest.mark.parametrize("value", [True, "100", 100.0])
@pytest.mark.parametrize("field", ["max_tokens", "max_calls"])
def test_budget_counts_must_be_integers(
    client: TestClient, headers: dict[str, str], field: str, value: Any
) -> None:
    response = client.post("/v1/jobs", json=job_body(budget={field: value}), headers=headers)
    assert_problem(response, 422, f"body.budget.{field}", "valid integer")
    batch = {"items": [job_body()], "budget": {"max_tokens": value}}
    assert_problem(client.post("/v1/batches", json=batch, headers=headers), 422, "max_tokens")


@pytest.mark.parametrize("value", [True, "0.5"])
def test_budget_amounts_must_be_numbers(
    client: TestClient, headers: dict[str, str], value: Any
) -> None:
    response = client.post(
        "/v1/jobs", json=job_body(budget={"max_cost_usd": value}), headers=headers
    )
    assert_problem(response, 422, "body.budget.max_cost_usd", "valid number")


def test_instants_outside_the_years_the_schema_declares_are_a_422(
    client: TestClient, headers: dict[str, str]
) -> None:
    schema = client.get("/openapi.json").json()
    backfill = schema["components"]["schemas"]["BackfillRequest"]["properties"]["start"]
    assert backfill["pattern"] == r"^(19[7-9][0-9]|2[0-9]{3})-"
    schedule = client.post(
        "/v1/schedules", json={"name": "s", "cron": "@daily", "template": TEMPLATE}, headers=headers
    ).json()
    for start in ("0112-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "1969-12-31T23:00:00Z"):
        response = client.post(
            f"/v1/schedules/{schedule['id']}/backfill",
            json={"start": start, "end": "2026-01-02T00:00:00Z"},
            headers=headers,
        )
        assert_problem(response, 422, "body.start", "between the years 1970 and 2999")
    late = {
        "name": "t",
        "cron": "@daily",
        "template": TEMPLATE,
        "end_time": "9999-12-31T23:59:59-14:00",
    }
    assert_problem(client.post("/v1/schedules", json=late, headers=headers), 422, "body.end_time")


def test_bodies_that_are_not_json_text_are_a_422_not_a_400(
    client: TestClient, headers: dict[str, str]
) -> None:
    json_type = {**headers, "Content-Type": "application/json"}
    for body, phrase in [
        (b'{"grace_seconds": "\xff"}', "not UTF-8"),
        (b'{"grace_seconds": ' + b"9" * 5000 + b"}", "too many digits"),
    ]:
        response = client.post("/v1/webhook-secrets/rotate", content=body, headers=json_type)
        assert_problem(response, 422, "not valid JSON", phrase)
        response = client.post("/v1/schedules", content=body, headers=json_type)
        assert_problem(response, 422, "not valid JSON")


def test_every_error_status_an_operation_answers_is_in_the_document(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            declared = set(operation["responses"])
            where = f"{method.upper()} {path}"
            if "requestBody" in operation:
                assert {"400", "413", "415", "422"} <= declared, where
            if operation.get("parameters") or "requestBody" in operation:
                assert "422" in declared, where
            if "{" in path:
                assert "404" in declared, where
            if path.startswith("/v1/"):
                assert "401" in declared, where
            for code, response in operation["responses"].items():
                if code.startswith("4"):
                    assert "application/problem+json" in response["content"], (where, code)
            for parameter in operation.get("parameters", []):
                # absent when not given: a header or query value is never JSON null
                assert "null" not in json.dumps(parameter["schema"]), (where, parameter)


# ------------------------------------------------------------------ keep-alive after errors


def _local_port(response: httpx.Response) -> int:
    stream = response.extensions["network_stream"]
    port: int = stream.get_extra_info("socket").getsockname()[1]
    return port


def test_keep_alive_connections_survive_every_error(live_api: LiveApi) -> None:
    with httpx.Client(base_url=live_api.url, timeout=30) as client:
        first = client.get("/healthz")
        port = _local_port(first)
        errors = [
            ("GET", "/boom", None, 500),
            ("GET", "/v1/jobs", None, 401),
            ("GET", "/nowhere", None, 404),
            ("POST", "/v1/jobs", deep_text(10_000), 422),
        ]
        for method, path, content, status in errors:
            response = client.request(
                method, path, content=content, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == status, (path, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.headers.get("connection", "").lower() != "close", path
            after = client.get("/healthz")
            assert after.status_code == 200
            assert _local_port(after) == port, f"the connection was dropped after {path}"
        assert "secret internals" not in client.get("/boom").text
