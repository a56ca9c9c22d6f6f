"""``/v1/keys``: the tenant's API keys: create them with scopes, list them, revoke them.
Every route needs the ``admin`` scope. Adapters over :mod:`ponder.auth`."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request, Response

from api.deps import AdminKey, AdminTenant, AppContext, ContextDep, RequireJson, SessionDep
from api.key_schemas import KeyCreate, KeyCreated, KeyPublic, KeysPublic
from api.keyring import Keyring
from ponder import auth
from ponder.revocation import RevocationPublisher

router = APIRouter(prefix="/v1/keys", tags=["keys"])
log = logging.getLogger(__name__)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such API key for this API key's tenant."}
}


@router.post(
    "",
    status_code=201,
    summary="Create an API key",
    responses={
        403: {"description": "It asks for a scope the calling key lacks."},
        415: {"description": "The body is not JSON."},
    },
    response_description="The new key, shown this once, and its details.",
)
def create_key(
    key: AdminKey, _: RequireJson, body: KeyCreate, session: SessionDep, response: Response
) -> KeyCreated:
    """A new key of your tenant with the scopes asked for. The key itself is in the
    response only: store it now. A key can only create keys with scopes it holds."""
    issued = auth.grant_key(session, key, scopes=body.scopes, name=body.name)
    response.headers["Location"] = f"{router.prefix}/{issued.row.id}"
    public = KeyPublic.from_row(issued.row)
    return KeyCreated(**public.model_dump(), key=issued.key)


@router.get("", summary="List API keys")
def list_keys(
    tenant: AdminTenant,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Keys per page, 1 to 200.")] = 50,
    cursor: Annotated[
        str | None,
        Query(description="The `next_cursor` of the previous page; omit for the first page."),
    ] = None,
    include_revoked: Annotated[
        bool, Query(description="Also list revoked keys (with `revoked_at`).")
    ] = False,
) -> KeysPublic:
    """Your tenant's keys, newest first: name, prefix, scopes, when each was created and
    last used. Never the keys themselves (the server keeps only their hashes)."""
    page = auth.list_keys(
        session, tenant.id, limit=limit, cursor=cursor, include_revoked=include_revoked
    )
    return KeysPublic(
        data=[KeyPublic.from_row(row) for row in page.rows], next_cursor=page.next_cursor
    )


@router.get("/{key_id}", summary="Get an API key", responses=_NOT_FOUND)
def read_key(key_id: str, tenant: AdminTenant, session: SessionDep) -> KeyPublic:
    """One of your tenant's keys (revoked ones too)."""
    return KeyPublic.from_row(auth.get_key(session, tenant.id, key_id))


@router.delete("/{key_id}", status_code=204, summary="Revoke an API key", responses=_NOT_FOUND)
async def revoke_key(
    key_id: str, tenant: AdminTenant, context: ContextDep, request: Request
) -> Response:
    """Revoke one of your tenant's keys. Every API process refuses it within a second,
    and its open event streams close. Revoking a revoked key changes nothing (204 again).
    A key may revoke itself."""
    key_hash = await anyio.to_thread.run_sync(_revoke, context, tenant.id, key_id)
    keyring: Keyring = request.app.state.keyring
    keyring.revoked(key_hash)  # this process: at once
    settings = context.settings
    publisher: RevocationPublisher = request.app.state.revocation_publisher
    try:  # the other processes
        await anyio.to_thread.run_sync(publisher.publish, key_hash)
    except Exception as exc:
        log.warning(
            "could not announce the revocation of API key %s (%s: %s); other API "
            "processes refuse it once their auth cache expires (%.0f s)",
            key_id,
            type(exc).__name__,
            exc,
            settings.auth_cache_seconds,
        )
    return Response(status_code=204)


def _revoke(context: AppContext, tenant_id: str, key_id: str) -> str:
    with context.sessions() as session:
        return auth.revoke_key(session, tenant_id, key_id).key_hash
