"""Engine and session factories. Postgres in production; SQLite for the embedded mode."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)  # survive a Postgres restart without a restart
    # Keep as many connections as the API's thread pool (40 threads) can use at once:
    # connections beyond pool_size are closed when returned, and under load that meant a
    # new Postgres backend (a fork) for one request in six. Only what is used is opened.
    kwargs.setdefault("pool_size", 40)
    kwargs.setdefault("max_overflow", 10)
    return create_engine(url, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on error."""
    with factory() as session, session.begin():
        yield session


def is_transient_conflict(exc: BaseException) -> bool:
    """Whether Postgres aborted the transaction to break a deadlock or a serialization
    conflict (SQLSTATE class 40): running it again is the remedy."""
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith("40")


def retry_conflicts(work: Callable[[], T], *, attempts: int = 4) -> T:
    """``work()`` (which runs its own transactions), run again after a short random pause
    when Postgres aborts it to break a deadlock, up to ``attempts`` times in all. For
    statements that lock many rows another process may lock in another order (a batch's
    items, which workers' heartbeats lock too)."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except DBAPIError as exc:
            if attempt == attempts or not is_transient_conflict(exc):
                raise
            time.sleep(random.uniform(0.01, 0.05) * attempt)
    raise AssertionError("unreachable")
