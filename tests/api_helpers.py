"""Helpers shared by the API tests (this module holds no tests itself)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from ponder.auth import create_api_key
from ponder.config import Settings
from worker.celery_app import Dispatcher, celery_priority, dispatcher_for

GAME24_JOB: dict[str, Any] = {
    "problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}},
    "strategy": {"name": "best_of_n", "params": {"n": 4}},
}


def job_body(**changes: Any) -> dict[str, Any]:
    """The game24 job with top-level fields replaced (a value of ``...`` removes one)."""
    body = json.loads(json.dumps(GAME24_JOB))
    for key, value in changes.items():
        if value is ...:
            body.pop(key, None)
        else:
            body[key] = value
    return body


@contextmanager
def api_client(
    settings: Settings,
    *,
    dispatcher: Dispatcher | None = None,
    raise_server_exceptions: bool = True,
) -> Iterator[TestClient]:
    """A client of a freshly built app (lifespan run), cleaning its Redis queue after."""
    own = dispatcher_for(settings) if dispatcher is None else None
    app = create_app(settings, dispatcher=dispatcher or own)
    try:
        with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:
            yield client
    finally:
        if own is not None:
            own.close()
        _drop_queue(settings)


def _drop_queue(settings: Settings) -> None:
    if not settings.broker_url.startswith("redis://"):
        return
    r = redis.Redis.from_url(settings.broker_url, socket_connect_timeout=2)
    try:
        keys = list(r.scan_iter(f"{settings.queue}*")) + list(
            r.scan_iter(f"_kombu.binding*.{settings.queue}")
        )
        if keys:
            r.delete(*keys)
    except redis.ConnectionError:
        pass  # a test pointed the broker at a closed port on purpose
    finally:
        r.close()


def auth_headers(client: TestClient, tenant: str = "acme") -> dict[str, str]:
    """Headers carrying a new API key of ``tenant`` (created if missing)."""
    key = create_api_key(client.app.state.sessions, tenant)  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {key}"}


def queue_key(settings: Settings, priority: int = 0) -> str:
    """The Redis list a job of this priority is published to (kombu keeps one list per
    priority step; step 0 is the bare queue name)."""
    step = celery_priority(priority)
    return settings.queue if step == 0 else f"{settings.queue}:{step}"


def queued_job_ids(settings: Settings) -> list[str]:
    """The job ids of every message waiting on the settings' queue, all priorities."""
    r = redis.Redis.from_url(settings.broker_url)
    try:
        ids = []
        for priority in range(10):
            for raw in r.lrange(queue_key(settings, priority), 0, -1):
                message = json.loads(raw)
                args = json.loads(base64.b64decode(message["body"]))[0]
                ids.append(args[0])
        return ids
    finally:
        r.close()


def assert_problem(response: httpx.Response, status: int, *phrases: str) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem with ``status`` whose detail mentions each of
    ``phrases`` (case-insensitive). Returns the document."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    doc: dict[str, Any] = response.json()
    assert doc["status"] == status
    assert doc["title"]
    assert doc["type"] == "about:blank"
    assert isinstance(doc["detail"], str) and doc["detail"].strip(), doc
    for phrase in phrases:
        assert phrase.lower() in doc["detail"].lower(), (phrase, doc["detail"])
    return doc
