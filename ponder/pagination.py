"""Keyset pagination, newest first, written once for every listing.

A page ends at a row; the next page starts after it. The position is the row's
``(time, id)`` pair, encoded as an opaque URL-safe ``cursor`` the client passes back
unchanged. Rows with the same time are ordered by id, so no row is skipped or repeated
when many share a timestamp."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from ponder.field_errors import invalid
from ponder.tables import canonical_id

T = TypeVar("T")

# longer texts are never a cursor this server issued
MAX_CURSOR_CHARS = 200


@dataclass(frozen=True)
class Cursor:
    """A position in a newest-first listing: the time and id of the last row shown."""

    at: datetime
    row_id: str

    def encode(self) -> str:
        raw = json.dumps([self.at.isoformat(), self.row_id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        """The cursor ``text`` encodes, or None if it is not one this server issued."""
        if not text or len(text) > MAX_CURSOR_CHARS:
            return None
        try:
            raw: Any = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            at_text, row_id = raw
            at = datetime.fromisoformat(at_text)
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            return None
        if at.tzinfo is None or not isinstance(row_id, str):
            return None
        canonical = canonical_id(row_id)
        return None if canonical is None else cls(at, canonical)


def parse_cursor(text: str | None) -> Cursor | None:
    """The ``cursor`` query parameter: None for the first page (no cursor, or an empty
    one), else the position it encodes; anything else is an invalid field (a 422)."""
    if not text:
        return None
    cursor = Cursor.decode(text)
    if cursor is None:
        raise invalid(
            ("query", "cursor"),
            "not a valid cursor; pass the `next_cursor` of a previous page unchanged, "
            "or omit it for the first page",
        )
    return cursor


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of rows and the cursor of the next page (None on the last one)."""

    rows: list[T]
    next_cursor: str | None


def newest_first(
    session: Session,
    query: Select[T],
    *,
    time_column: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[str],
    limit: int,
    after: Cursor | None,
    position: Callable[[T], Cursor],
) -> Page[T]:
    """The page of ``query``'s rows after ``after``, newest first by ``time_column``
    (ties broken by ``id_column``). ``position`` gives a row's place in that order."""
    if after is not None:
        query = query.where(
            or_(
                time_column < after.at,
                and_(time_column == after.at, id_column < after.row_id),
            )
        )
    ordered = query.order_by(time_column.desc(), id_column.desc()).limit(limit + 1)
    rows = list(session.scalars(ordered).all())
    page = rows[:limit]
    more = len(rows) > limit and bool(page)
    return Page(page, position(page[-1]).encode() if more else None)
