"""``/v1/admin``: what the service's operators manage over HTTP — for now each tenant's
limits (:mod:`ponder.quotas`), the same as ``ponder tenants limits show/set``. Every
route needs an admin key (see ``api.deps.require_admin``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ContextDep, RequireAdmin, RequireJson, SessionDep
from ponder.quotas import LimitsUpdate, describe, get_tenant, update_limits

router = APIRouter(prefix="/v1/admin", tags=["admin"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "The API key is not an admin key."},
    404: {"description": "No tenant with this name."},
}


@router.get(
    "/tenants/{name}/limits",
    summary="A tenant's limits",
    responses=_ERRORS,
    response_description="Each limit with its value and where it comes from (`tenant` or "
    "`server`), and what the tenant uses now.",
)
def get_limits(name: str, _: RequireAdmin, session: SessionDep, context: ContextDep) -> Any:
    """The tenant's limits and usage, as `ponder tenants limits show NAME` prints them."""
    return describe(session, get_tenant(session, name), context.settings)


@router.patch(
    "/tenants/{name}/limits",
    summary="Change a tenant's limits",
    responses=_ERRORS,
    response_description="The tenant's limits after the change.",
)
def patch_limits(
    name: str,
    body: LimitsUpdate,
    _admin: RequireAdmin,
    _json: RequireJson,
    session: SessionDep,
    context: ContextDep,
) -> Any:
    """Set the limits sent (a number), or give them the server's default back (null);
    limits left out keep their value. This API process applies the change at once,
    others within `PONDER_TENANT_LIMITS_CACHE_SECONDS`."""
    shown = update_limits(session, name, body, context.settings)
    context.quotas.forget(str(shown["tenant_id"]))
    return shown
