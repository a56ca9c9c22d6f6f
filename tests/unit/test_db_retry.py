"""Transactions Postgres aborts to break a deadlock are run again (ponder.db)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from ponder.db import is_transient_conflict, retry_conflicts


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _error(sqlstate: str) -> OperationalError:
    return OperationalError("UPDATE jobs ...", {}, _PgError(sqlstate))


def test_deadlocks_and_serialization_failures_are_transient() -> None:
    assert is_transient_conflict(_error("40P01"))  # deadlock_detected
    assert is_transient_conflict(_error("40001"))  # serialization_failure
    assert not is_transient_conflict(_error("08006"))  # connection failure
    assert not is_transient_conflict(ValueError("40P01"))


def test_a_deadlock_is_retried_until_the_work_succeeds() -> None:
    calls = []

    def work() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _error("40P01")
        return "done"

    assert retry_conflicts(work) == "done" and len(calls) == 3


def test_other_errors_and_the_last_attempt_are_raised() -> None:
    def down() -> None:
        raise _error("08006")

    with pytest.raises(OperationalError):
        retry_conflicts(down)
    calls = []

    def always() -> None:
        calls.append(1)
        raise _error("40P01")

    with pytest.raises(OperationalError):
        retry_conflicts(always, attempts=2)
    assert len(calls) == 2
