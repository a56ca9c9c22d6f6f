"""Shared fixtures. Integration, e2e and chaos tests use the real Postgres and Redis on
127.0.0.1 (override with PONDER_TEST_PG / PONDER_TEST_REDIS); each test gets its own
database cloned from a migrated template and its own Celery queue name."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from ponder.config import Settings

PG_ADMIN = os.environ.get("PONDER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PONDER_TEST_REDIS", "redis://127.0.0.1:6379/9")


def _pg_url(dbname: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + dbname


def _admin_exec(sql: str) -> None:
    eng = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            conn.execute(text(sql))
    finally:
        eng.dispose()


def check_services() -> None:
    """Fail loudly (never skip) when the real services are unreachable."""
    try:
        _admin_exec("SELECT 1")
    except Exception as exc:
        pytest.fail(f"Postgres is unreachable at {PG_ADMIN}: {exc}", pytrace=False)
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        pytest.fail(f"Redis is unreachable at {REDIS_URL}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database, built once per test session."""
    check_services()
    from ponder.migrate import upgrade

    name = f"ponder_tmpl_{os.getpid()}"
    _admin_exec(f'DROP DATABASE IF EXISTS "{name}"')
    _admin_exec(f'CREATE DATABASE "{name}"')
    upgrade(_pg_url(name))
    yield name
    _admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated Postgres database for one test."""
    name = f"ponder_t_{uuid.uuid4().hex[:12]}"
    _admin_exec(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield _pg_url(name)
    _admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def queue_name() -> str:
    return f"ponder-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pg_settings(pg_url: str, queue_name: str) -> Settings:
    """Settings for a test against real Postgres + Redis, isolated by database and queue."""
    return Settings(
        database_url=pg_url,
        broker_url=REDIS_URL,
        queue=queue_name,
        webhook_allow_private=True,
        lease_seconds=6.0,
        requeue_after_seconds=5.0,
        reaper_interval_seconds=1.0,
        poll_interval_seconds=0.05,
    )


@pytest.fixture
def sqlite_settings(tmp_path: object) -> Settings:
    """Settings on a fresh, migrated SQLite file (no services): for fast unit tests."""
    from pathlib import Path

    from ponder.migrate import upgrade

    db = Path(str(tmp_path)) / "ponder.db"
    url = f"sqlite:///{db}"
    upgrade(url)
    return Settings(
        database_url=url,
        broker_url=f"filesystem://{Path(str(tmp_path)) / 'broker'}",
        queue="ponder-unit",
        lease_seconds=6.0,
    )
