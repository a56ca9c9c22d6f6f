"""``/v1/datasets`` on real Postgres: upload (JSON Lines), list with the built-ins, read,
delete, tenant isolation, running a batch from an upload, and a 4xx for bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api_helpers import assert_problem, auth_headers

pytestmark = pytest.mark.integration

NDJSON = {"Content-Type": "application/x-ndjson"}
LINES = [
    {
        "id": "q1",
        "task": "arithmetic",
        "input": {"question": "Ann has 2 cats and gets 3 more. How many cats does Ann have now?"},
        "expected": 5,
    },
    {"problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}}, "id": "q2"},
    {"problem": {"prompt": "What is 6 times 7?"}, "expected": "42"},
]


def jsonl(rows: list[Any]) -> str:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n"


def upload(
    client: TestClient, headers: dict[str, str], name: str, rows: list[Any], **params: str
) -> Any:
    return client.post(
        "/v1/datasets",
        headers={**headers, **NDJSON},
        params={"name": name, **params},
        content=jsonl(rows),
    )


def test_upload_list_get_and_delete(client: TestClient, headers: dict[str, str]) -> None:
    resp = upload(client, headers, "my-set", LINES, description="three kinds")
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["name"] == "my-set" and created["size"] == 3 and created["builtin"] is False
    assert resp.headers["location"] == f"/v1/datasets/{created['id']}"

    listed = client.get("/v1/datasets", headers=headers).json()["data"]
    assert listed[0]["id"] == created["id"]
    builtins = {d["name"]: d for d in listed if d["builtin"]}
    assert builtins["game24"]["size"] == 1362 and builtins["game24-easy"]["size"] == 50
    assert (
        builtins["arithmetic"]["size"] == 200 and builtins["arithmetic-d4"]["task"] == "arithmetic"
    )

    for ref in (created["id"], "my-set"):
        got = client.get(f"/v1/datasets/{ref}", headers=headers).json()
        assert got["description"] == "three kinds"
        assert [i["id"] for i in got["items"]] == ["q1", "q2", None]
        assert got["items"][0]["problem"]["expected"] == 5
        assert got["items"][2]["problem"] == {"prompt": "What is 6 times 7?", "expected": "42"}
    page = client.get(
        f"/v1/datasets/{created['id']}", headers=headers, params={"offset": 1, "limit": 1}
    ).json()
    assert [i["id"] for i in page["items"]] == ["q2"] and page["next_offset"] == 2

    assert client.delete(f"/v1/datasets/{created['id']}", headers=headers).status_code == 204
    assert_problem(client.get(f"/v1/datasets/{created['id']}", headers=headers), 404)
    assert_problem(client.delete(f"/v1/datasets/{created['id']}", headers=headers), 404)


def test_builtin_datasets_read_but_cannot_be_deleted(
    client: TestClient, headers: dict[str, str]
) -> None:
    got = client.get("/v1/datasets/game24-hard", headers=headers, params={"limit": 2}).json()
    assert got["builtin"] is True and got["size"] == 50 and len(got["items"]) == 2
    assert got["items"][0]["problem"]["task"] == "game24" and got["next_offset"] == 2
    assert_problem(client.delete("/v1/datasets/game24", headers=headers), 403, "built-in")


def test_another_tenants_dataset_is_a_404_and_not_listed(
    client: TestClient, headers: dict[str, str]
) -> None:
    created = upload(client, headers, "private", LINES).json()
    other = auth_headers(client, "globex")
    assert_problem(client.get(f"/v1/datasets/{created['id']}", headers=other), 404)
    assert_problem(client.get("/v1/datasets/private", headers=other), 404)
    assert_problem(client.delete(f"/v1/datasets/{created['id']}", headers=other), 404)
    listed = client.get("/v1/datasets", headers=other).json()["data"]
    assert all(d["builtin"] for d in listed)
    # ... nor can it be run as a batch by the other tenant
    resp = client.post(
        "/v1/batches",
        headers=other,
        json={"dataset": created["id"], "defaults": {"strategy": {"name": "best_of_n"}}},
    )
    assert_problem(resp, 422, "unknown dataset")


def test_a_batch_runs_an_uploaded_dataset_by_name_with_ids_as_custom_ids(
    client: TestClient, headers: dict[str, str]
) -> None:
    upload(client, headers, "mixed", LINES)
    resp = client.post(
        "/v1/batches",
        headers=headers,
        json={"dataset": "mixed", "defaults": {"strategy": {"name": "self_consistency"}}},
    )
    assert resp.status_code == 202, resp.text
    batch = resp.json()
    assert batch["accepted"] == 3 and batch["dataset"] == "mixed"
    lines = [
        json.loads(x)
        for x in client.get(f"/v1/batches/{batch['id']}/results", headers=headers).text.splitlines()
    ]
    assert [x["custom_id"] for x in lines] == ["q1", "q2", None]
    job = client.get(f"/v1/jobs/{lines[0]['job_id']}", headers=headers).json()
    assert job["strategy"]["name"] == "self_consistency"


def test_the_list_pages_with_a_cursor(client: TestClient, headers: dict[str, str]) -> None:
    for name in ("a1", "a2", "a3"):
        assert upload(client, headers, name, LINES[:1]).status_code == 201
    first = client.get("/v1/datasets", headers=headers, params={"limit": 2}).json()
    own = [d["name"] for d in first["data"] if not d["builtin"]]
    assert own == ["a3", "a2"] and first["next_cursor"]
    second = client.get(
        "/v1/datasets", headers=headers, params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [d["name"] for d in second["data"]] == ["a1"]  # built-ins only on the first page
    assert second["next_cursor"] is None


def test_bad_lines_refuse_the_whole_upload_listing_each(
    client: TestClient, headers: dict[str, str]
) -> None:
    rows: list[Any] = [
        LINES[0],  # 1
        "",  # 2 blank: fine
        "{nope",  # 3
        {"id": "q9", "task": "game24", "input": {"numbers": [1, 2]}},  # 4 bad input
        {"task": "chess", "input": {}},  # 5 unknown task
        {"id": "q1", "prompt": "dup id"},  # 6 duplicate id
        {"prompt": "a", "colour": "red"},  # 7 unknown field
        {"problem": "text"},  # 8 problem not an object
        [1],  # 9
        {"id": 5, "prompt": "x"},  # 10 id not a string
        {"prompt": "bad \u0000 char"},  # 11 NUL
        {"problem": {"prompt": "x"}, "colour": 1},  # 12 unknown field beside problem
        {"task": "game24"},  # 13 no input
    ]
    resp = upload(client, headers, "bad", rows)
    doc = assert_problem(resp, 422, "nothing was stored", "line 3")
    assert [e["line"] for e in doc["items"]] == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    details = {e["line"]: e["detail"] for e in doc["items"]}
    assert "not valid JSON" in details[3]
    assert "problem.input" in details[4]
    assert "unknown task 'chess'" in details[5]
    assert "already used on line 1" in details[6]
    assert "unknown field" in details[7]
    assert "NUL" in details[11]
    assert client.get("/v1/datasets/bad", headers=headers).status_code == 404


@pytest.mark.parametrize(
    ("params", "phrase"),
    [
        ({"name": ""}, "name"),
        ({"name": "has space"}, "letters, digits"),
        ({"name": "-leading"}, "letters, digits"),
        ({"name": "game24"}, "built-in"),
        ({"name": "00000000-0000-0000-0000-000000000000"}, "UUID"),
        ({"name": "x" * 201}, "name"),
        ({}, "name"),
    ],
)
def test_bad_names_are_422(
    client: TestClient, headers: dict[str, str], params: dict[str, str], phrase: str
) -> None:
    resp = client.post(
        "/v1/datasets", headers={**headers, **NDJSON}, params=params, content=jsonl(LINES)
    )
    assert_problem(resp, 422, phrase)


def test_other_bad_uploads(client: TestClient, headers: dict[str, str]) -> None:
    assert upload(client, headers, "taken", LINES).status_code == 201
    assert_problem(upload(client, headers, "taken", LINES), 409, "already have a dataset")
    assert_problem(
        client.post("/v1/datasets", headers=headers, params={"name": "j"}, json=LINES),
        415,
        "application/x-ndjson",
    )
    assert_problem(upload(client, headers, "empty", ["", "  "]), 422, "no problems")
    assert_problem(
        client.post(
            "/v1/datasets", headers={**headers, **NDJSON}, params={"name": "bin"}, content=b"\xff"
        ),
        422,
        "UTF-8",
    )
    assert_problem(
        client.get("/v1/datasets", headers=headers, params={"cursor": "bad"}), 422, "cursor"
    )
    assert_problem(
        client.get("/v1/datasets/game24", headers=headers, params={"limit": 5000}), 422, "limit"
    )
    assert_problem(client.get("/v1/datasets/nope", headers=headers), 404, "no dataset")
    assert_problem(client.get("/v1/datasets"), 401)
