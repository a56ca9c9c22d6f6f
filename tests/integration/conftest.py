"""API fixtures on a real Postgres database and Redis queue per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ponder.config import Settings
from tests.api_helpers import api_client, auth_headers


@pytest.fixture
def client(pg_settings: Settings) -> Iterator[TestClient]:
    with api_client(pg_settings) as c:
        yield c


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    return auth_headers(client, "acme")
