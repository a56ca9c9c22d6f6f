"""Worker heartbeat rows (ponder.workers) on SQLite: insert, renew, leave, forget."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from ponder.config import Settings
from ponder.db import make_engine
from ponder.tables import Worker, utcnow
from ponder.workers import FORGET_AFTER, WorkerInfo, beat, forget_gone, leave, worker_of


def test_a_lease_owner_names_its_worker() -> None:
    assert worker_of("host-1:4242:0123abcd") == "host-1:4242"
    assert worker_of("w1") == "w1"  # an owner of another form is its own worker
    assert worker_of("a:b") == "a:b"


def test_beat_inserts_then_renews_and_leave_and_forget_remove(
    sqlite_settings: Settings,
) -> None:
    engine = make_engine(sqlite_settings.database_url)
    info = WorkerInfo("h:1", "h", 1, "q", 8, utcnow())
    first = utcnow() - timedelta(minutes=2)
    with engine.begin() as conn:
        beat(conn, info, first)
        beat(conn, info)  # renewed, not duplicated
        beat(conn, WorkerInfo("h:2", "h", 2, "q", 8, utcnow()), utcnow() - FORGET_AFTER * 2)
    with engine.begin() as conn:
        rows = {w.id: w for w in conn.execute(select(Worker)).all()}
        assert set(rows) == {"h:1", "h:2"}
        assert rows["h:1"].last_seen_at > first
        assert forget_gone(conn) == 1
        leave(conn, "h:1")
        assert conn.execute(select(Worker.id)).all() == []
    engine.dispose()
