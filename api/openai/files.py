"""``/openai/v1/files``: upload a Batch API input (``purpose=batch``, multipart form as
the ``openai`` package sends it), list, retrieve, download (``/content``) and delete
files; a batch's output and error files are downloaded here too."""

from __future__ import annotations

import email.policy
from email import message_from_bytes
from typing import Annotated, Any, Literal

import anyio
from fastapi import Query, Request, Response
from fastapi.responses import JSONResponse

from api.deps import AppContext, ContextDep
from api.openai.common import ReadKey, SubmitKey, surface_router
from ponder.openai_compat import files
from ponder.openai_compat.errors import OpenAIRequestError

router = surface_router("openai")


def parse_form(content_type: str, body: bytes) -> tuple[dict[str, str], tuple[str, bytes] | None]:
    """The fields and the file (name, bytes) of a ``multipart/form-data`` body."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise OpenAIRequestError(
            "upload the file as multipart/form-data with the fields `file` and `purpose` "
            "(as client.files.create(file=..., purpose='batch') does)",
            param="file",
        )
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    message = message_from_bytes(head + body, policy=email.policy.HTTP)
    fields: dict[str, str] = {}
    upload: tuple[str, bytes] | None = None
    if not message.is_multipart():
        raise OpenAIRequestError("the multipart body could not be read", param="file")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name == "file":
            upload = (part.get_filename() or "upload.jsonl", data)
        elif isinstance(name, str):
            fields[name] = data.decode("utf-8", errors="replace")
    return fields, upload


@router.post("/files")
async def create_file(key: SubmitKey, context: ContextDep, request: Request) -> Any:
    """Store an uploaded file; only ``purpose=batch`` (Batch API input) is taken."""
    body = await request.body()
    fields, upload = await anyio.to_thread.run_sync(
        parse_form, request.headers.get("content-type", ""), body
    )
    if upload is None:
        raise OpenAIRequestError("file: the form has no `file` field", param="file")
    purpose = fields.get("purpose")
    if not purpose:
        raise OpenAIRequestError("purpose: is required (use `batch`)", param="purpose")
    name, data = upload

    def store() -> dict[str, Any]:
        with context.sessions() as session:
            row = files.upload(session, key.tenant.id, purpose=purpose, filename=name, data=data)
            return files.file_object(row)

    return JSONResponse(await anyio.to_thread.run_sync(store, limiter=context.db_threads))


@router.get("/files")
def list_files(
    key: ReadKey,
    context: ContextDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    after: Annotated[str | None, Query(max_length=100)] = None,
    purpose: Annotated[str | None, Query(max_length=32)] = None,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
) -> Any:
    with context.sessions() as session:
        found = files.page(
            session,
            key.tenant.id,
            limit=limit,
            after=after,
            purpose=purpose,
            newest_first=order == "desc",
        )
        data = [files.file_object(row) for row in found.rows]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": found.has_more,
    }


def _get(context: AppContext, tenant_id: str, file_id: str) -> dict[str, Any]:
    with context.sessions() as session:
        return files.file_object(files.get(session, tenant_id, file_id))


@router.get("/files/{file_id}")
def retrieve_file(file_id: str, key: ReadKey, context: ContextDep) -> Any:
    return _get(context, key.tenant.id, file_id)


@router.get("/files/{file_id}/content")
def file_content(file_id: str, key: ReadKey, context: ContextDep) -> Response:
    with context.sessions() as session:
        row = files.get(session, key.tenant.id, file_id)
        data = row.content
        name = row.filename
    return Response(
        data,
        media_type="application/jsonl" if name.endswith(".jsonl") else "application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{_ascii(name)}"'},
    )


def _ascii(name: str) -> str:
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)


@router.delete("/files/{file_id}")
def delete_file(file_id: str, key: SubmitKey, context: ContextDep) -> Any:
    with context.sessions() as session:
        shown = files.remove(session, key.tenant.id, file_id)
    return {"id": shown, "object": "file", "deleted": True}
