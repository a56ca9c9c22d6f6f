"""Statuses, stop reasons and kinds are StrEnums (ponder/tables.py) whose members are the
very strings the database, the API and webhooks have always carried."""

from __future__ import annotations

import json
from typing import Literal

import pytest
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.dialects import postgresql, sqlite

from ponder.tables import (
    BatchSource,
    BatchStatus,
    DeliveryStatus,
    JobStatus,
    ScheduleRunKind,
    ScheduleRunStatus,
    StopReason,
    StoredValue,
)

# the values as they are stored: changing one needs a migration, not a refactor
VALUES: dict[type[StoredValue], tuple[str, ...]] = {
    JobStatus: ("queued", "running", "completed", "failed", "cancelled"),
    StopReason: (
        "verified",
        "budget_exhausted",
        "deadline",
        "search_exhausted",
        "cancelled",
        "error",
        "daily_spend_limit",
    ),
    DeliveryStatus: ("pending", "delivered", "failed", "disabled"),
    BatchStatus: ("queued", "running", "completed", "cancelled"),
    BatchSource: ("inline", "upload", "dataset", "from_jobs"),
    ScheduleRunKind: ("scheduled", "catchup", "manual", "backfill"),
    ScheduleRunStatus: ("pending", "started", "skipped"),
}


def test_every_stored_value_enum_is_pinned() -> None:
    assert set(StoredValue.__subclasses__()) == set(VALUES)


@pytest.mark.parametrize("enum", list(VALUES), ids=lambda e: e.__name__)
def test_values_and_helper_collections(enum: type[StoredValue]) -> None:
    assert tuple(member.value for member in enum) == VALUES[enum]
    if enum is not StopReason:
        assert getattr(enum, "ALL") == VALUES[enum]  # noqa: B009 (not every enum has ALL)
        assert all(type(value) is str for value in getattr(enum, "ALL"))  # noqa: B009


def test_subsets() -> None:
    assert frozenset({"completed", "failed", "cancelled"}) == JobStatus.TERMINAL
    assert BatchStatus.ACTIVE == ("queued", "running")
    assert JobStatus.COMPLETED in JobStatus.TERMINAL and "completed" in JobStatus.TERMINAL


def test_a_member_is_its_string() -> None:
    member = JobStatus.CANCELLED
    assert member == "cancelled" and hash(member) == hash("cancelled")
    assert str(member) == f"{member}" == "%s" % member == "cancelled"  # noqa: UP031
    assert json.dumps({"status": member, member: 1}) == '{"status": "cancelled", "cancelled": 1}'
    assert {"cancelled": 1}[member] == 1


class _Shape(BaseModel):
    status: Literal["queued", "running", "completed", "failed", "cancelled"]
    stop_reason: str | None


def test_pydantic_validates_and_serializes_members_as_plain_strings() -> None:
    shape = _Shape(status=JobStatus.FAILED, stop_reason=StopReason.DEADLINE)
    assert type(shape.status) is str and type(shape.stop_reason) is str
    assert shape.model_dump() == {"status": "failed", "stop_reason": "deadline"}
    assert shape.model_dump_json() == '{"status":"failed","stop_reason":"deadline"}'


_ROWS = sa.table("rows", sa.column("status", sa.String(16)))


@pytest.mark.parametrize("dialect", [postgresql.psycopg.dialect(), sqlite.dialect()])
def test_statements_compile_as_with_plain_strings(dialect: sa.Dialect) -> None:
    def statement(done: str, cancelled: str) -> sa.Update:
        return sa.update(_ROWS).values(
            status=sa.case((_ROWS.c.status == cancelled, cancelled), else_=done)
        )

    with_members = statement(BatchStatus.COMPLETED, BatchStatus.CANCELLED)
    with_strings = statement("completed", "cancelled")
    assert str(with_members.compile(dialect=dialect)) == str(with_strings.compile(dialect=dialect))
    literal = sa.select(sa.literal(JobStatus.QUEUED))
    assert str(literal.compile(dialect=dialect, compile_kwargs={"literal_binds": True})) == str(
        sa.select(sa.literal("queued")).compile(
            dialect=dialect, compile_kwargs={"literal_binds": True}
        )
    )


def test_a_member_round_trips_as_a_plain_string() -> None:
    engine = sa.create_engine("sqlite://")
    table = sa.Table("t", sa.MetaData(), sa.Column("status", sa.String(16)))
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(sa.insert(table).values(status=JobStatus.RUNNING))
        conn.execute(sa.insert(table), [{"status": JobStatus.QUEUED}])
        got = conn.execute(sa.select(table.c.status).order_by(table.c.status)).scalars().all()
        found = conn.execute(
            sa.select(sa.func.count()).where(table.c.status.in_(JobStatus.ALL))
        ).scalar()
    assert got == ["queued", "running"] and all(type(value) is str for value in got)
    assert found == 2
