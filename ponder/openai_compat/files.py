"""Files of the OpenAI-compatible surface (``/openai/v1/files``): uploads with purpose
``batch`` (a Batch API input), and the output and error files Ponder writes when such a
batch ends (purpose ``batch_output``). Stored in Postgres (``openai_files``), one row
each, and scoped to the tenant like everything else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from ponder import openai_ids
from ponder.openai_compat.errors import OpenAIRequestError
from ponder.tables import OpenAIFile, new_id, utcnow

UPLOAD_PURPOSES = ("batch",)
OUTPUT_PURPOSE = "batch_output"
MAX_FILENAME_CHARS = 255


def file_id(row_id: str) -> str:
    return openai_ids.public_id(openai_ids.FILE, row_id)


def not_found(shown: str) -> OpenAIRequestError:
    text = shown if len(shown) <= 80 else shown[:80] + "..."
    return OpenAIRequestError(
        f"No such File object: {text} (no file with this id belongs to this API key's tenant)",
        param="file_id",
        status=404,
    )


def store(
    session: Session, tenant_id: str, *, purpose: str, filename: str, data: bytes
) -> OpenAIFile:
    """Add a file to the caller's transaction."""
    row = OpenAIFile(
        id=new_id(),
        tenant_id=tenant_id,
        purpose=purpose,
        filename=filename[:MAX_FILENAME_CHARS],
        size=len(data),
        content=data,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def upload(
    session: Session, tenant_id: str, *, purpose: str, filename: str, data: bytes
) -> OpenAIFile:
    """Store an uploaded file (committed); a 400 for a purpose other than ``batch``."""
    if purpose not in UPLOAD_PURPOSES:
        raise OpenAIRequestError(
            f"purpose: {purpose!r} is not supported here; upload Batch API input files "
            "with purpose `batch`",
            param="purpose",
        )
    if not data:
        raise OpenAIRequestError("file: the file is empty", param="file")
    row = store(session, tenant_id, purpose=purpose, filename=filename or "upload.jsonl", data=data)
    session.commit()
    return row


def get(session: Session, tenant_id: str, shown: str) -> OpenAIFile:
    """The tenant's file; a 404 otherwise."""
    wanted = openai_ids.row_id(openai_ids.FILE, shown)
    row = None
    if wanted is not None:
        row = session.execute(
            select(OpenAIFile).where(OpenAIFile.id == wanted, OpenAIFile.tenant_id == tenant_id)
        ).scalar_one_or_none()
    if row is None:
        raise not_found(shown)
    return row


def remove(session: Session, tenant_id: str, shown: str) -> str:
    """Delete the tenant's file (committed); its public id."""
    row = get(session, tenant_id, shown)
    session.execute(delete(OpenAIFile).where(OpenAIFile.id == row.id))
    session.commit()
    return file_id(row.id)


@dataclass(frozen=True)
class FilePage:
    rows: list[OpenAIFile]
    has_more: bool


def page(
    session: Session,
    tenant_id: str,
    *,
    limit: int,
    after: str | None,
    purpose: str | None,
    newest_first: bool,
) -> FilePage:
    """A page of the tenant's files, ordered by creation, after the file ``after``."""
    query = select(OpenAIFile).where(OpenAIFile.tenant_id == tenant_id)
    if purpose is not None:
        query = query.where(OpenAIFile.purpose == purpose)
    if after:
        mark = get(session, tenant_id, after)
        if newest_first:
            query = query.where(
                or_(
                    OpenAIFile.created_at < mark.created_at,
                    and_(OpenAIFile.created_at == mark.created_at, OpenAIFile.id < mark.id),
                )
            )
        else:
            query = query.where(
                or_(
                    OpenAIFile.created_at > mark.created_at,
                    and_(OpenAIFile.created_at == mark.created_at, OpenAIFile.id > mark.id),
                )
            )
    if newest_first:
        query = query.order_by(OpenAIFile.created_at.desc(), OpenAIFile.id.desc())
    else:
        query = query.order_by(OpenAIFile.created_at, OpenAIFile.id)
    rows = list(session.execute(query.limit(limit + 1)).scalars())
    return FilePage(rows[:limit], len(rows) > limit)


def file_object(row: OpenAIFile) -> dict[str, Any]:
    return {
        "id": file_id(row.id),
        "object": "file",
        "bytes": row.size,
        "created_at": int(row.created_at.timestamp()),
        "filename": row.filename,
        "purpose": row.purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }
