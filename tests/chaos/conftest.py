"""Chaos fixtures: private Redis and Postgres servers a test may flush, crash and restart
(never the shared ones)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.privsvc import PONDER_DB, PrivatePostgres, PrivateRedis


@pytest.fixture(scope="session")
def migrated_pg_cluster() -> Iterator[PrivatePostgres]:
    """A stopped private cluster with a migrated ``ponder`` database, built once per
    session (``initdb`` + ``ponder migrate``); tests run on copies of it."""
    pg = PrivatePostgres.create()
    pg.start()
    try:
        admin = create_engine(pg.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{PONDER_DB}"'))
        admin.dispose()
        out = subprocess.run(
            [sys.executable, "-m", "ponder", "migrate"],
            env={**os.environ, "PONDER_DATABASE_URL": pg.url(PONDER_DB)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, f"ponder migrate failed: {out.stdout}\n{out.stderr}"
    finally:
        pg.stop()
    yield pg
    pg.destroy()


@pytest.fixture
def private_pg(migrated_pg_cluster: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """A running private Postgres whose ``ponder`` database is migrated (see ``.url``)."""
    pg = migrated_pg_cluster.copy()
    pg.start()
    yield pg
    pg.destroy()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()
