"""The API in the embedded mode (SQLite + filesystem broker): the same code paths as
on Postgres, no services needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from ponder.auth import create_api_key
from ponder.config import Settings
from worker.celery_app import dispatcher_for

JOB = {
    "problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}},
    "strategy": {"name": "best_of_n", "params": {"n": 2}},
}


@pytest.fixture
def client(sqlite_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_settings, dispatcher=dispatcher_for(sqlite_settings))) as c:
        yield c


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    key = create_api_key(client.app.state.sessions, "acme")  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {key}"}


def test_submit_writes_a_message_to_the_broker_folder(
    client: TestClient, headers: dict[str, str], sqlite_settings: Settings
) -> None:
    response = client.post("/v1/jobs", json=JOB, headers=headers)
    assert response.status_code == 202, response.text
    folder = Path(sqlite_settings.broker_url.removeprefix("filesystem://")) / "queue"
    messages = list(folder.iterdir())
    assert len(messages) == 1
    assert response.json()["id"] in messages[0].read_text()


def test_list_pages_and_cancel(client: TestClient, headers: dict[str, str]) -> None:
    ids = [client.post("/v1/jobs", json=JOB, headers=headers).json()["id"] for _ in range(3)]
    page1 = client.get("/v1/jobs?limit=2", headers=headers).json()
    page2 = client.get(
        "/v1/jobs", params={"limit": 2, "cursor": page1["next_cursor"]}, headers=headers
    ).json()
    assert [j["id"] for j in page1["data"] + page2["data"]] == list(reversed(ids))
    assert page2["next_cursor"] is None

    cancelled = client.post(f"/v1/jobs/{ids[0]}/cancel", headers=headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.post(f"/v1/jobs/{ids[0]}/cancel", headers=headers).status_code == 409
    only = client.get("/v1/jobs?status=cancelled", headers=headers).json()["data"]
    assert [j["id"] for j in only] == [ids[0]]


def test_idempotent_replay(client: TestClient, headers: dict[str, str]) -> None:
    keyed = {**headers, "Idempotency-Key": "abc"}
    first = client.post("/v1/jobs", json=JOB, headers=keyed)
    again = client.post("/v1/jobs", json=JOB, headers=keyed)
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
