"""`alembic upgrade head` yields exactly the models' schema, on Postgres and on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ponder.db import make_engine
from ponder.migrate import upgrade
from ponder.tables import Base


def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(ctx, Base.metadata))
    finally:
        engine.dispose()


@pytest.mark.integration
def test_postgres_schema_matches_models(pg_url: str) -> None:
    upgrade(pg_url)  # idempotent on the already-migrated test database
    assert _diff(pg_url) == []


def test_sqlite_schema_matches_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'schema.db'}"
    upgrade(url)
    assert _diff(url) == []


@pytest.mark.integration
def test_upgrade_from_empty_database(pg_url: str) -> None:
    from sqlalchemy import text

    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    upgrade(pg_url)
    assert _diff(pg_url) == []


def test_ponder_migrate_says_what_it_did(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from alembic.script import ScriptDirectory
    from typer.testing import CliRunner

    from ponder.cli import app
    from ponder.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("PONDER_DATABASE_URL", url)
    script = ScriptDirectory.from_config(alembic_config(url))
    head = script.get_current_head()
    runner = CliRunner()

    first = runner.invoke(app, ["migrate"])
    assert first.exit_code == 0, first.output
    assert first.output.strip() == f"created the database schema (revision {head})"

    again = runner.invoke(app, ["migrate"])
    assert again.output.strip() == f"the database was already up to date (schema revision {head})"

    previous = script.get_revision(head).down_revision
    assert isinstance(previous, str)
    from alembic import command

    command.downgrade(alembic_config(url), previous)
    upgraded = runner.invoke(app, ["migrate"])
    assert upgraded.output.strip() == (
        f"upgraded the database schema from revision {previous} to {head}"
    )
