"""Job-finished notifications, so long-polls wake at once instead of polling the database.

On Postgres a terminal status change runs ``pg_notify('ponder_jobs', job_id)`` in the same
transaction (delivered on commit); :class:`JobNotifier` LISTENs on one connection and wakes
the waiters of that job. On SQLite, or while the listener is reconnecting, waiters fall
back to polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

CHANNEL = "ponder_jobs"
log = logging.getLogger(__name__)


_NOTIFY = text("SELECT pg_notify(:channel, :id)")


def notify_job_finished(db: Session | Connection, job_id: str) -> None:
    """Queue a notification for ``job_id``; Postgres sends it when the transaction commits."""
    dialect = db.dialect if isinstance(db, Connection) else db.get_bind().dialect
    if dialect.name == "postgresql":
        db.execute(_NOTIFY, {"channel": CHANNEL, "id": job_id})


class JobNotifier:
    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self.enabled = url.get_backend_name() == "postgresql"
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self.connected = False

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._listen(), name="ponder-job-notifier")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]

    async def _listen(self) -> None:
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.connected = True
                    async for note in conn.notifies():
                        for event in self._waiters.get(note.payload, ()):
                            event.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Postgres restarting: poll meanwhile, reconnect
                log.warning("job notifications unavailable (%s); retrying", exc)
            finally:
                self.connected = False
                for waiters in self._waiters.values():
                    for event in waiters:
                        event.set()  # let waiters re-read rather than miss a change
            await asyncio.sleep(1.0)
