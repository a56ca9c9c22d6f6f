"""The dataset use cases: upload, list, read a page of problems, delete
(``/v1/datasets`` is a thin adapter over them). Lookups and storage are in
:mod:`ponder.datasets.catalog`.

They raise :class:`ponder.errors.NotFound` for a dataset that is neither the tenant's
nor built-in, :class:`ponder.errors.Conflict` for a name already taken,
:class:`ponder.field_errors.Invalid` for a bad name or cursor, and the two below."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ponder.config import Settings
from ponder.datasets import catalog
from ponder.datasets.catalog import BuiltinDataset, DatasetEntry
from ponder.errors import Conflict, ErrorCode, Forbidden, NotFound, PonderError
from ponder.field_errors import invalid
from ponder.jsonl import LineError
from ponder.jsonlimits import storable_text
from ponder.pagination import Cursor, Page, newest_first, parse_cursor
from ponder.quotas import check_room, load_limits
from ponder.tables import Dataset, DatasetItem

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
# bad lines spelled out in an UploadRejected's detail (all are in ``items``)
_DETAILED_LINES = 5


class UploadRejected(PonderError):
    """Nothing of the upload was stored: ``detail`` says why, ``items`` lists its bad
    lines (by line number), if that is the reason (a 422 in the API)."""

    code = ErrorCode.INVALID

    def __init__(self, detail: str, items: list[LineError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.items = items or []


class BuiltinReadOnly(Forbidden):
    """The request would change a built-in dataset (a 403 in the API)."""


@dataclass(frozen=True)
class DatasetListing:
    """A page of the tenant's uploads, newest first, and on the first page only every
    built-in dataset."""

    uploaded: Page[Dataset]
    builtin: list[BuiltinDataset]


@dataclass(frozen=True)
class DatasetPage:
    """A dataset (the tenant's upload, or built-in) and a page of its problems.
    ``next_offset`` is where the next page starts; None after the last problem."""

    dataset: Dataset | BuiltinDataset
    items: list[DatasetEntry]
    next_offset: int | None


def check_new_name(name: str) -> None:
    """:class:`Invalid` (at ``query.name``) unless ``name`` may name a new upload:
    letters, digits, ``.``, ``_``, ``-``; not a built-in's name; not like an id."""
    if not _NAME.match(name):
        raise invalid(
            ("query", "name"),
            "use letters, digits, '.', '_' and '-' only, starting with a letter or digit",
        )
    if catalog.builtin(name) is not None:
        raise invalid(("query", "name"), f"{name!r} is a built-in dataset's name; pick another")
    if _is_uuid(name):
        raise invalid(("query", "name"), "must not look like a dataset id (a UUID)")


def check_description(description: str) -> None:
    """:class:`Invalid` (at ``query.description``) unless ``description`` can be stored."""
    problem = storable_text(description)
    if problem is not None:
        raise invalid(("query", "description"), problem)


def upload_dataset(
    sessions: sessionmaker[Session],
    tenant_id: str,
    *,
    name: str,
    description: str,
    upload: bytes,
    settings: Settings,
) -> Dataset:
    """Store ``upload`` (JSON Lines in UTF-8, one problem per line) as the tenant's
    dataset ``name``, in its own transaction. Every line is checked: any bad line, or no
    problem at all, is an :class:`UploadRejected` and nothing is stored."""
    check_new_name(name)
    check_description(description)
    try:
        text = upload.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadRejected(
            f"the upload is not UTF-8 text (byte {exc.start}); send JSON Lines in UTF-8"
        ) from None
    entries, errors = catalog.parse_upload(
        text, max_line_bytes=settings.batch_max_line_bytes, max_items=settings.batch_max_items
    )
    if errors:
        shown = "; ".join(
            f"{'line ' + str(e.line) if e.line else 'upload'}: {e.detail}"
            for e in errors[:_DETAILED_LINES]
        )
        more = (
            f"; and {len(errors) - _DETAILED_LINES} more (see `items`)"
            if len(errors) > _DETAILED_LINES
            else ""
        )
        raise UploadRejected(
            f"{len(errors)} bad line(s); nothing was stored: {shown}{more}", errors
        )
    if not entries:
        raise UploadRejected("the upload holds no problems; send one JSON object per line")
    with sessions() as session:
        check_room(session, load_limits(session, tenant_id, settings), "datasets")
        try:
            dataset = catalog.create_dataset(
                session, tenant_id=tenant_id, name=name, description=description, entries=entries
            )
            session.commit()
        except IntegrityError:
            session.rollback()
            raise Conflict(
                f"you already have a dataset named {name!r}; delete it first or pick another name"
            ) from None
        return dataset


def list_datasets(
    session: Session, tenant_id: str, *, limit: int, cursor: str | None = None
) -> DatasetListing:
    """A page of the tenant's uploads, newest first; the first page (no ``cursor``)
    also lists the built-in datasets. ``cursor`` is a previous page's ``next_cursor``."""
    page = newest_first(
        session,
        select(Dataset).where(Dataset.tenant_id == tenant_id),
        time_column=Dataset.created_at,
        id_column=Dataset.id,
        limit=limit,
        after=parse_cursor(cursor),
        position=lambda dataset: Cursor(dataset.created_at, dataset.id),
    )
    return DatasetListing(page, [] if cursor else catalog.builtin_datasets())


def read_dataset(
    session: Session, tenant_id: str, dataset_id: str, *, offset: int, limit: int
) -> DatasetPage:
    """The tenant's dataset (by id or name), else the built-in one so named, with its
    problems from position ``offset`` on (at most ``limit``)."""
    own = catalog.get_dataset(session, tenant_id, dataset_id)
    dataset: Dataset | BuiltinDataset
    if own is not None:
        rows = session.execute(
            select(DatasetItem.item_key, DatasetItem.problem)
            .where(DatasetItem.dataset_id == own.id, DatasetItem.position >= offset)
            .order_by(DatasetItem.position)
            .limit(limit)
        ).all()
        items = [DatasetEntry(r[0], r[1]) for r in rows]
        dataset, size = own, own.item_count
    else:
        found = catalog.builtin(dataset_id)
        entries = catalog.builtin_entries(dataset_id) if found else None
        if found is None or entries is None:
            raise _not_found(dataset_id)
        items = entries[offset : offset + limit]
        dataset, size = found, found.size
    end = offset + len(items)
    return DatasetPage(dataset, items, end if end < size and limit > 0 else None)


def delete_dataset(session: Session, tenant_id: str, dataset_id: str) -> None:
    """Delete the tenant's dataset and its problems, committed. Batches made from it keep
    their items (each holds its own copy of the problem)."""
    own = catalog.get_dataset(session, tenant_id, dataset_id)
    if own is None:
        if catalog.builtin(dataset_id) is not None:
            raise BuiltinReadOnly(f"{dataset_id!r} is a built-in dataset; it cannot be deleted")
        raise _not_found(dataset_id)
    session.execute(delete(DatasetItem).where(DatasetItem.dataset_id == own.id))
    session.execute(delete(Dataset).where(Dataset.id == own.id))
    session.commit()


def _not_found(dataset_id: str) -> NotFound:
    shown = dataset_id if len(dataset_id) <= 64 else dataset_id[:64] + "..."
    return NotFound(
        f"no dataset {shown!r} belongs to this API key's tenant, and no built-in has that name"
    )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
