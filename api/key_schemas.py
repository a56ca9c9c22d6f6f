"""Request and response bodies of ``/v1/keys``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ponder.auth import MAX_KEY_NAME_CHARS, scopes_of
from ponder.tables import ApiKey

ScopeName = Literal["admin", "submit", "read"]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scopes: list[ScopeName] = Field(
        min_length=1,
        max_length=3,
        description="What the key may do: `read` (every GET), `submit` (create, change "
        "and cancel jobs, batches, datasets, schedules; redeliver webhooks), `admin` (API "
        "keys, webhook signing secrets). Only scopes the calling key holds itself.",
        examples=[["submit", "read"]],
    )
    name: str | None = Field(
        default=None,
        max_length=MAX_KEY_NAME_CHARS,
        description="A label to tell keys apart, e.g. `ci` or `dashboard`.",
    )


class KeyPublic(BaseModel):
    """An API key as listings show it: never the key itself (it is not stored)."""

    id: str = Field(description="What `DELETE /v1/keys/{id}` takes.")
    name: str | None = Field(description="Its label; null if none was given.")
    prefix: str = Field(description="The key's first characters (`pk_` and 8 more).")
    scopes: list[ScopeName] = Field(description="What the key may do.")
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="When a request last used it, to about a minute; null if never."
    )
    revoked_at: datetime | None = Field(description="When it was revoked; null while it works.")

    @classmethod
    def from_row(cls, row: ApiKey) -> KeyPublic:
        return cls(
            id=row.id,
            name=row.name,
            prefix=row.prefix,
            scopes=[s.value for s in scopes_of(row)],
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


class KeyCreated(KeyPublic):
    key: str = Field(
        description="The API key, shown this once: the server keeps only its hash. Send it "
        "as `Authorization: Bearer <key>`."
    )


class KeysPublic(BaseModel):
    """One page of the tenant's API keys, newest first."""

    data: list[KeyPublic] = Field(description="The keys on this page.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )
