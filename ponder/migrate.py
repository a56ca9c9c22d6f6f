"""Run Alembic migrations from code (``ponder migrate``, tests, the embedded mode)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

import migrations


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def current_revision(database_url: str) -> str | None:
    """The schema revision the database is at, or None for a database without one."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(database_url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade to ``revision``; the revisions before and after (None: no schema)."""
    before = current_revision(database_url)
    command.upgrade(alembic_config(database_url), revision)
    return before, current_revision(database_url)


def describe_upgrade(before: str | None, after: str | None) -> str:
    """What an upgrade did, in one line for ``ponder migrate``."""
    if before == after:
        return f"the database was already up to date (schema revision {after})"
    if before is None:
        return f"created the database schema (revision {after})"
    return f"upgraded the database schema from revision {before} to {after}"
