"""Liveness and readiness probes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ponder.config import Settings
from tests.api_helpers import api_client, assert_problem

pytestmark = pytest.mark.integration


def test_healthz_needs_no_key_and_no_services(pg_settings: Settings) -> None:
    # nothing listens on either port: healthz must not care
    settings = pg_settings.model_copy(
        update={
            "database_url": "postgresql+psycopg://postgres@127.0.0.1:1/nowhere",
            "broker_url": "redis://127.0.0.1:1/0",
        }
    )
    with api_client(settings) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_ok_with_postgres_and_redis(pg_settings: Settings) -> None:
    with api_client(pg_settings) as client:
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "broker": "ok"}


def test_readyz_503_when_the_broker_is_down(pg_settings: Settings) -> None:
    settings = pg_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with api_client(settings) as client:
        response = client.get("/readyz")
    doc = assert_problem(response, 503, "broker is down")
    assert "database" not in doc["detail"]
    assert doc["database"] == "ok"
    assert doc["broker"].startswith("down")


def test_readyz_503_when_the_database_is_down(pg_settings: Settings) -> None:
    settings = pg_settings.model_copy(
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"}
    )
    with api_client(settings) as client:
        response = client.get("/readyz")
    doc = assert_problem(response, 503, "database is down")
    assert doc["broker"] == "ok"


def test_a_database_outage_is_a_503_not_a_500(pg_settings: Settings) -> None:
    settings = pg_settings.model_copy(
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"}
    )
    with api_client(settings) as client:
        response = client.get("/v1/jobs", headers={"Authorization": "Bearer pk_anything"})
    assert_problem(response, 503, "database is unavailable")
    assert response.headers["Retry-After"]


def test_readyz_checks_the_filesystem_broker_folder(sqlite_settings: Settings) -> None:
    with api_client(sqlite_settings) as client:
        assert client.get("/readyz").json() == {"database": "ok", "broker": "ok"}
        folder = Path(sqlite_settings.broker_url.removeprefix("filesystem://"))
        shutil.rmtree(folder)
        assert_problem(client.get("/readyz"), 503, "broker is down", "does not exist")
