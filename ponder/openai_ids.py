"""The ids the OpenAI-compatible surface shows for Ponder's rows: a prefix and the row's
UUID without dashes (``resp_``/``chatcmpl-`` + a job's id, ``batch_`` + an OpenAI batch's,
``file-`` + a file's). Written once here for the surface and its webhook events."""

from __future__ import annotations

import uuid

RESPONSE = "resp_"
CHAT_COMPLETION = "chatcmpl-"
BATCH = "batch_"
FILE = "file-"
BATCH_REQUEST = "batch_req_"
REQUEST = "req_"
MESSAGE = "msg_"
REASONING = "rs_"
EVENT = "evt_"


def public_id(prefix: str, row_id: str) -> str:
    """``prefix`` + the UUID ``row_id`` as 32 hex digits."""
    return prefix + uuid.UUID(row_id).hex


def row_id(prefix: str, shown: str) -> str | None:
    """The row's UUID (canonical text) behind ``shown``, or None if it is not ``prefix``
    followed by a UUID. A plain UUID is accepted too (a job's id from the native API)."""
    text = shown.strip()
    if len(text) > 80:
        return None
    if text.startswith(prefix):
        text = text[len(prefix) :]
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None
