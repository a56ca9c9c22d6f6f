"""Fault injection, for chaos tests only: makes a worker kill itself at a chosen point.

Never set ``PONDER_TEST_FAULT`` outside tests. When it is unset (always, in production)
:func:`install_faults` does nothing. When it is ``POINT`` or ``POINT:N``, the worker
process SIGKILLs itself — and, when it is a Celery pool process, the main worker process
too, as ``kill -9`` of a worker would — the Nth time (default: the first) that it is
about to commit a transaction of kind POINT, counting from that process's start:

``step_commit``
    the transaction that journals a billed model call's result (the call was made and
    paid for, its result is lost with the transaction);
``finalize_commit``
    the transaction that writes a job's terminal state (status, result, outbox row).

The points are recognised from the SQL a transaction ran (SQLAlchemy engine events on
the worker's engine), so the journal code itself carries no test hooks.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from sqlalchemy import Connection, Engine, event

log = logging.getLogger(__name__)

ENV_VAR = "PONDER_TEST_FAULT"
POINTS = ("step_commit", "finalize_commit")
_POINT_KEY = "ponder_fault_point"  # in Connection.info: the point the open transaction is at


def _point_of(statement: str) -> str | None:
    """Which fault point a SQL statement belongs to, if any."""
    sql = " ".join(statement.split()).lower()
    if sql.startswith("update job_steps set") and ("status=" in sql or "status =" in sql):
        return "step_commit"  # a billed call's result marked done (alone or in a group)
    if sql.startswith("update jobs set") and "finished_at=" in sql:
        return "finalize_commit"  # a job's terminal state
    return None


def parse_fault(spec: str) -> tuple[str, int]:
    """``POINT`` or ``POINT:N`` → (point, n). ValueError naming the valid points."""
    point, _, count = spec.strip().partition(":")
    if point not in POINTS:
        raise ValueError(
            f"{ENV_VAR}={spec!r}: unknown fault point {point!r}; use one of "
            f"{', '.join(POINTS)}, optionally followed by :N (the Nth time)"
        )
    try:
        n = int(count) if count else 1
    except ValueError:
        raise ValueError(f"{ENV_VAR}={spec!r}: N must be a whole number") from None
    if n < 1:
        raise ValueError(f"{ENV_VAR}={spec!r}: N must be at least 1")
    return point, n


def install_faults(engine: Engine) -> None:
    """Arm the fault named by ``PONDER_TEST_FAULT`` on ``engine`` (nothing when unset)."""
    spec = os.environ.get(ENV_VAR, "")
    if not spec:
        return
    point, nth = parse_fault(spec)
    seen = 0
    log.warning("%s=%s: this worker will kill itself (fault injection for tests)", ENV_VAR, spec)

    @event.listens_for(engine, "before_cursor_execute")
    def _note(conn: Connection, _cursor: Any, statement: str, *_args: Any, **_kwargs: Any) -> None:
        if _point_of(statement) == point:
            conn.info[_POINT_KEY] = point

    @event.listens_for(engine, "commit")
    def _maybe_die(conn: Connection) -> None:
        nonlocal seen
        if conn.info.pop(_POINT_KEY, None) != point:
            return
        seen += 1
        if seen == nth:
            _kill_worker(f"{point} #{nth}")

    @event.listens_for(engine, "rollback")
    def _forget(conn: Connection) -> None:
        conn.info.pop(_POINT_KEY, None)


def _kill_worker(where: str) -> None:
    from billiard.process import current_process

    log.error("%s: killing this worker with SIGKILL before the %s commit", ENV_VAR, where)
    for handler in logging.getLogger().handlers:
        handler.flush()
    if current_process().name != "MainProcess":  # a pool process: the worker dies with it
        os.kill(os.getppid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
