"""``/v1/batches`` over the API on real Postgres + Redis: creation from inline items, JSON
Lines uploads and datasets, per-item validation (the same as POST /v1/jobs), strict mode,
results order, listing, and a 4xx for every bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ponder.config import Settings
from tests.api_helpers import api_client, assert_problem, auth_headers, queued_job_ids

pytestmark = pytest.mark.integration

GAME24 = {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}}
DEFAULTS = {"strategy": {"name": "best_of_n", "params": {"n": 2}}, "model": "sim"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def item(custom_id: str | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"problem": GAME24, **fields}
    if custom_id is not None:
        body["custom_id"] = custom_id
    return body


@pytest.fixture
def small_settings(pg_settings: Settings) -> Settings:
    return pg_settings.model_copy(
        update={"batch_max_in_flight": 2, "batch_max_items": 50, "batch_max_line_bytes": 2048}
    )


@pytest.fixture
def api(small_settings: Settings) -> Iterator[TestClient]:
    with api_client(small_settings) as c:
        yield c


@pytest.fixture
def auth(api: TestClient) -> dict[str, str]:
    return auth_headers(api, "acme")


def create(api: TestClient, auth: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    resp = api.post("/v1/batches", headers=auth, json=body)
    assert resp.status_code == 202, resp.text
    data: dict[str, Any] = resp.json()
    return data


def results(api: TestClient, auth: dict[str, str], batch_id: str) -> list[dict[str, Any]]:
    resp = api.get(f"/v1/batches/{batch_id}/results", headers=auth)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in resp.text.splitlines()]


# ---------------------------------------------------------------- accepted batches


def test_inline_batch_is_accepted_and_only_k_items_are_queued(
    api: TestClient, auth: dict[str, str], small_settings: Settings
) -> None:
    batch = create(
        api,
        auth,
        {"items": [item(f"q{i}") for i in range(5)], "defaults": DEFAULTS},
    )
    assert batch["accepted"] == 5 and batch["rejected"] == 0 and batch["item_errors"] == []
    assert batch["counts"]["queued"] == 5 and batch["counts"]["total"] == 5
    assert batch["status"] == "running"  # its first items were fed at once
    # the feeder put exactly batch_max_in_flight items on the broker, the first ones
    lines = results(api, auth, batch["id"])
    assert [line["custom_id"] for line in lines] == [f"q{i}" for i in range(5)]
    assert set(queued_job_ids(small_settings)) == {lines[0]["job_id"], lines[1]["job_id"]}


def test_defaults_merge_under_items_and_metadata_merges_key_by_key(
    api: TestClient, auth: dict[str, str]
) -> None:
    batch = create(
        api,
        auth,
        {
            "items": [
                item("a"),
                item("b", strategy={"name": "self_consistency"}, metadata={"k": "item"}),
            ],
            "defaults": {**DEFAULTS, "metadata": {"k": "default", "shared": 1}, "priority": 3},
        },
    )
    jobs = {line["custom_id"]: line["job_id"] for line in results(api, auth, batch["id"])}
    a = api.get(f"/v1/jobs/{jobs['a']}", headers=auth).json()
    b = api.get(f"/v1/jobs/{jobs['b']}", headers=auth).json()
    assert a["strategy"]["name"] == "best_of_n" and a["strategy"]["params"]["n"] == 2
    assert b["strategy"]["name"] == "self_consistency"
    assert a["metadata"] == {"k": "default", "shared": 1}
    assert b["metadata"] == {"k": "item", "shared": 1}
    assert a["priority"] == b["priority"] == 3
    assert a["batch_id"] == b["batch_id"] == batch["id"]


def test_results_keep_item_order_custom_ids_and_skip_refused_items(
    api: TestClient, auth: dict[str, str]
) -> None:
    items = [item("z"), item("y"), {"custom_id": "bad"}, item(), item("x")]
    batch = create(api, auth, {"items": items, "defaults": DEFAULTS})
    assert batch["accepted"] == 4
    assert [(e["index"], e["custom_id"]) for e in batch["item_errors"]] == [(2, "bad")]
    lines = results(api, auth, batch["id"])
    assert [(line["index"], line["custom_id"]) for line in lines] == [
        (0, "z"),
        (1, "y"),
        (3, None),
        (4, "x"),
    ]
    assert all(line["status"] == "queued" and line["result"] is None for line in lines)
    # the job itself says which item it is
    job = api.get(f"/v1/jobs/{lines[1]['job_id']}", headers=auth).json()
    assert (job["batch_id"], job["custom_id"], job["item_index"]) == (batch["id"], "y", 1)
    assert job["original_job_id"] is None


def test_jsonl_upload_reports_each_bad_line_by_number(
    api: TestClient, auth: dict[str, str]
) -> None:
    lines = [
        json.dumps({"batch": {"defaults": DEFAULTS, "metadata": {"source": "file"}}}),  # 1
        json.dumps(item("ok-1")),  # 2
        "",  # 3: blank lines are skipped
        "{not json",  # 4
        json.dumps(item("bad-strategy", strategy={"name": "nope"})),  # 5
        json.dumps({"custom_id": "no-problem"}),  # 6
        "   ",  # 7
        json.dumps({"custom_id": "huge", "problem": {"prompt": "x" * 3000}}),  # 8: too long
        json.dumps([1, 2]),  # 9: not an object
        json.dumps(item("ok-1")),  # 10: duplicate custom_id
        json.dumps(item("ok-2", priority=12)),  # 11: out of range
        json.dumps(item("ok-3")),  # 12
    ]
    resp = api.post("/v1/batches", headers={**auth, **NDJSON}, content="\n".join(lines) + "\n")
    assert resp.status_code == 202, resp.text
    batch = resp.json()
    assert batch["source"] == "upload" and batch["metadata"] == {"source": "file"}
    assert batch["accepted"] == 2
    errors = {e["line"]: e for e in batch["item_errors"]}
    assert sorted(errors) == [4, 5, 6, 8, 9, 10, 11]
    assert "not valid JSON" in errors[4]["detail"]
    assert "unknown strategy 'nope'" in errors[5]["detail"]
    assert errors[5]["errors"][0]["loc"] == ["strategy", "name"]
    assert "problem" in errors[6]["detail"] and "required" in errors[6]["detail"].lower()
    assert "bytes" in errors[8]["detail"]
    assert "JSON object" in errors[9]["detail"]
    assert "already used by line 2" in errors[10]["detail"]
    assert errors[11]["errors"][0]["loc"] == ["priority"]
    assert [r["custom_id"] for r in results(api, auth, batch["id"])] == ["ok-1", "ok-3"]


def test_strict_upload_rejects_the_whole_batch_listing_bad_lines(
    api: TestClient, auth: dict[str, str]
) -> None:
    body = "\n".join(
        [
            json.dumps({"batch": {"defaults": DEFAULTS, "strict": True}}),
            json.dumps(item("a")),
            json.dumps({"problem": {"task": "game24", "input": {"numbers": [1]}}}),
            "[",
        ]
    )
    resp = api.post("/v1/batches", headers={**auth, **NDJSON}, content=body)
    doc = assert_problem(resp, 422, "strict mode", "line 3", "line 4")
    assert [e["line"] for e in doc["items"]] == [3, 4]
    assert api.get("/v1/batches", headers=auth).json()["data"] == []  # nothing stored


def test_strict_inline_batch_is_refused_and_non_strict_runs_the_valid_ones(
    api: TestClient, auth: dict[str, str]
) -> None:
    items = [item("a"), item("b", model="no-such-model")]
    resp = api.post(
        "/v1/batches", headers=auth, json={"items": items, "defaults": DEFAULTS, "strict": True}
    )
    doc = assert_problem(resp, 422, "item 1", "unknown model 'no-such-model'")
    assert doc["items"][0]["index"] == 1 and doc["items"][0]["custom_id"] == "b"
    batch = create(api, auth, {"items": items, "defaults": DEFAULTS})
    assert batch["accepted"] == 1 and batch["item_errors"][0]["index"] == 1


def test_builtin_dataset_batch_uses_item_ids_as_custom_ids(
    api: TestClient, auth: dict[str, str]
) -> None:
    batch = create(api, auth, {"dataset": "game24-easy", "defaults": DEFAULTS})
    assert batch["source"] == "dataset" and batch["dataset"] == "game24-easy"
    assert batch["accepted"] == 50
    lines = results(api, auth, batch["id"])
    assert lines[0]["custom_id"] == "game24-12-12-12-12"
    assert len({line["custom_id"] for line in lines}) == 50


def test_batches_are_listed_newest_first_with_a_cursor(
    api: TestClient, auth: dict[str, str]
) -> None:
    ids = [create(api, auth, {"items": [item()], "defaults": DEFAULTS})["id"] for _ in range(3)]
    first = api.get("/v1/batches", headers=auth, params={"limit": 2}).json()
    assert [b["id"] for b in first["data"]] == ids[::-1][:2]
    assert first["data"][0]["counts"]["total"] == 1
    second = api.get(
        "/v1/batches", headers=auth, params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [b["id"] for b in second["data"]] == [ids[0]] and second["next_cursor"] is None
    running = api.get("/v1/batches", headers=auth, params={"status": "completed"}).json()
    assert running["data"] == []


def test_another_tenants_batch_is_a_404(api: TestClient, auth: dict[str, str]) -> None:
    batch = create(api, auth, {"items": [item()], "defaults": DEFAULTS})
    other = auth_headers(api, "globex")
    for method, path in [
        ("GET", f"/v1/batches/{batch['id']}"),
        ("GET", f"/v1/batches/{batch['id']}/results"),
        ("POST", f"/v1/batches/{batch['id']}/cancel"),
    ]:
        assert_problem(api.request(method, path, headers=other), 404, "no batch")
    assert api.get("/v1/batches", headers=other).json()["data"] == []


# ---------------------------------------------------------------- every bad input: 4xx


@pytest.mark.parametrize(
    ("body", "phrases"),
    [
        ({}, ["exactly one of", "items"]),
        ({"items": [item()], "dataset": "game24"}, ["exactly one of", "got `items` and `dataset`"]),
        ({"items": "nope", "defaults": DEFAULTS}, ["items"]),
        ({"items": [item()], "defaults": {"priority": 10}}, ["defaults.priority"]),
        ({"items": [item()], "defaults": {"strategy": {"name": ""}}}, ["defaults.strategy.name"]),
        ({"items": [item()], "defaults": {"colour": "red"}}, ["defaults.colour", "unknown field"]),
        ({"items": [item()], "budget": {}}, ["max_tokens and/or max_cost_usd"]),
        ({"items": [item()], "budget": {"max_tokens": -5}}, ["budget.max_tokens"]),
        ({"items": [item()], "webhook_url": "ftp://x.example"}, ["webhook_url", "http"]),
        ({"items": [item()], "metadata": {"x": "y" * 20000}}, ["metadata", "bytes"]),
        ({"items": [item()], "strict": "maybe"}, ["strict"]),
        ({"dataset": "no-such-dataset", "defaults": DEFAULTS}, ["unknown dataset", "game24"]),
        ({"dataset": "game24-easy"}, ["strategy"]),  # no strategy anywhere
        ({"items": []}, ["no items"]),
        ({"items": [item()]}, ["no valid item", "strategy"]),
        ({"items": [item() for _ in range(51)], "defaults": DEFAULTS}, ["at most 50"]),
        ({"items": [7], "defaults": DEFAULTS}, ["item 0", "JSON object"]),
        (
            {"items": [item(custom_id="x" * 300)], "defaults": DEFAULTS},
            ["custom_id", "1 to 200"],
        ),
        ({"items": [{**item(), "custom_id": 5}], "defaults": DEFAULTS}, ["custom_id"]),
        ({"from_jobs": {}, "defaults": DEFAULTS}, ["from_jobs", "matched no jobs"]),
        ({"from_jobs": {"status": []}, "defaults": DEFAULTS}, ["from_jobs.status"]),
        ({"from_jobs": {"status": ["lost"]}}, ["from_jobs.status"]),
        (
            {
                "from_jobs": {
                    "created_after": "2026-01-02T00:00:00Z",
                    "created_before": "2026-01-01T00:00:00Z",
                }
            },
            ["created_after must be earlier"],
        ),
        ({"from_jobs": {"created_after": "2026-01-02T00:00:00"}}, ["time zone"]),
        ({"from_jobs": {"limit": 0}}, ["from_jobs.limit"]),
    ],
)
def test_bad_batch_bodies_are_422_saying_what_to_fix(
    api: TestClient, auth: dict[str, str], body: dict[str, Any], phrases: list[str]
) -> None:
    assert_problem(api.post("/v1/batches", headers=auth, json=body), 422, *phrases)


def test_bad_bodies_and_content_types(api: TestClient, auth: dict[str, str]) -> None:
    post = api.post
    assert_problem(
        post("/v1/batches", headers={**auth, "Content-Type": "text/plain"}, content="x"),
        415,
        "application/x-ndjson",
    )
    assert_problem(post("/v1/batches", headers=auth), 415, "no Content-Type")
    json_type = {**auth, "Content-Type": "application/json"}
    assert_problem(post("/v1/batches", headers=json_type, content=""), 422, "body is required")
    assert_problem(post("/v1/batches", headers=json_type, content="{"), 422, "not valid JSON")
    assert_problem(post("/v1/batches", headers=json_type, content="[1]"), 422, "JSON object")
    upload = {**auth, **NDJSON}
    assert_problem(post("/v1/batches", headers=upload, content=b"\xff\xfe"), 422, "UTF-8")
    assert_problem(post("/v1/batches", headers=upload, content="\n\n"), 422, "no items")
    assert_problem(
        post("/v1/batches", headers=upload, content='{"batch": {"dataset": "game24"}}\n{}'),
        422,
        "not allowed in an upload",
    )
    assert_problem(
        post("/v1/batches", headers=upload, content='{"batch": {"strict": 3}}\n{}'),
        422,
        "batch header",
    )
    assert_problem(
        post("/v1/batches", headers=upload, content='{"batch": {}, "extra": 1}\n{}'),
        422,
        "header line",
    )
    assert_problem(post("/v1/batches", json={"items": []}), 401, "API key")


def test_bad_ids_and_queries(api: TestClient, auth: dict[str, str]) -> None:
    assert_problem(api.get("/v1/batches/not-a-uuid", headers=auth), 404, "no batch")
    assert_problem(api.get("/v1/batches/00000000-0000-0000-0000-000000000000", headers=auth), 404)
    assert_problem(api.get("/v1/batches", headers=auth, params={"cursor": "zzz"}), 422, "cursor")
    assert_problem(api.get("/v1/batches", headers=auth, params={"limit": 0}), 422, "limit")
    assert_problem(api.get("/v1/batches", headers=auth, params={"status": "lost"}), 422, "status")
    assert_problem(
        api.get("/v1/batches", headers=auth, params={"schedule_id": "x"}), 422, "schedule_id"
    )


def test_openapi_documents_both_request_bodies(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()
    create_op = schema["paths"]["/v1/batches"]["post"]
    content = create_op["requestBody"]["content"]
    assert {"application/json", "application/x-ndjson"} <= set(content)
    spec = content["application/json"]["schema"]
    assert "$ref" not in json.dumps(spec)  # self-contained
    for name in ("items", "dataset", "from_jobs", "defaults", "budget", "strict"):
        assert spec["properties"][name]["description"]
    for path in ("/v1/batches/{batch_id}", "/v1/datasets", "/v1/datasets/{dataset_id}"):
        for op in schema["paths"][path].values():
            assert op.get("description") or op.get("summary")


def test_from_jobs_keeps_custom_ids_unless_originals_share_them(
    api: TestClient, auth: dict[str, str]
) -> None:
    body = {"items": [item("a"), item("b")], "defaults": DEFAULTS}
    first = create(api, auth, body)
    create(api, auth, body)
    one = create(
        api, auth, {"from_jobs": {"batch_id": first["id"], "status": ["queued"]}, "defaults": {}}
    )
    assert [r["custom_id"] for r in results(api, auth, one["id"])] == ["a", "b"]
    both = create(api, auth, {"from_jobs": {"status": ["queued"], "limit": 4}, "defaults": {}})
    lines = results(api, auth, both["id"])
    assert both["accepted"] == 4 and [r["custom_id"] for r in lines] == [None] * 4
    assert all(r["original_job_id"] for r in lines)
