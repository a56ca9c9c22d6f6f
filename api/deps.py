"""Request dependencies as ``Annotated`` aliases, so route signatures stay short."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from api.errors import ApiProblem
from api.keyring import Keyring
from ponder.auth import (
    KeyGrant,
    LastUsedThrottle,
    Scope,
    grant_for_hash,
    hash_key,
    plausible_key,
    touch_key,
)
from ponder.batches.service import BatchService
from ponder.catalog import StrategyCatalog
from ponder.config import Settings
from ponder.fairness import QueueGauge
from ponder.jobs.service import JobService
from ponder.llm.limits import SlotGauge
from ponder.llm.profiles import ModelProfile
from ponder.queue import JobQueue
from ponder.quotas import Quotas
from ponder.tables import Tenant

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppContext:
    """What one API instance is built from; lives on ``app.state.ponder``."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    dispatcher: JobQueue
    # the strategies a job may name (strategies.registry), for the core's checks
    strategies: StrategyCatalog
    models: dict[str, ModelProfile]
    # for single reads on hot paths: autocommit sessions (no BEGIN/ROLLBACK round trips)
    reads: sessionmaker[Session]
    # the thread pool the hot paths run their database work on (see api.main)
    db_threads: anyio.CapacityLimiter
    # whether a tenant's queue of waiting jobs is full (ponder.fairness), counted lazily
    queues: QueueGauge
    # the job use cases (submit, cancel), built from the parts above
    jobs: JobService
    # the batch use cases (create, cancel)
    batches: BatchService
    # the tenants' limits and what this process remembers of them (shared by the
    # services above)
    quotas: Quotas
    # the models' concurrency slots held across the deployment (GET /v1/system)
    slots: SlotGauge


async def get_context(request: Request) -> AppContext:
    context = request.app.state.ponder
    assert isinstance(context, AppContext)
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


async def get_settings(context: ContextDep) -> Settings:
    return context.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_sessions(context: ContextDep) -> sessionmaker[Session]:
    return context.sessions


SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]


def get_db(sessions: SessionsDep) -> Iterator[Session]:
    """One session per request, closed (and its connection returned) afterwards."""
    with sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description=(
        "An API key, sent as `Authorization: Bearer pk_...`. Each key holds scopes: "
        "`read` (every GET), `submit` (create, change and cancel work) and `admin` (API "
        "keys, webhook signing secrets); each operation lists the one it needs. Create "
        "a key with `POST /v1/keys` or `ponder keys create --tenant NAME [--scope ...]`."
    ),
)

_HOW_TO_AUTHENTICATE = "send your API key as `Authorization: Bearer <api key>`"


async def authenticated_key(
    request: Request,
    security_scopes: SecurityScopes,
    sessions: SessionsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> KeyGrant:
    """What the request's API key grants, else a 401; a 403 naming the scope if the key
    lacks one the route needs (routes ask through the aliases below).

    A recently verified key is answered from the process's cache on the event loop;
    otherwise the lookup runs in a worker thread with its own short session, so a
    long-polling route holds no connection while it waits. A key revoked anywhere is
    refused here within a second (see :mod:`ponder.revocation`)."""
    grant = getattr(request.state, "api_key", None)
    if not isinstance(grant, KeyGrant):  # once per request, however many routes ask
        grant = await _verify(request, sessions, credentials)
        request.state.api_key = grant
    for scope in security_scopes.scopes:
        if not grant.allows(Scope(scope)):
            raise _missing_scope(request, grant, Scope(scope))
    return grant


async def _verify(
    request: Request,
    sessions: sessionmaker[Session],
    credentials: HTTPAuthorizationCredentials | None,
) -> KeyGrant:
    if credentials is None:
        if request.headers.get("authorization"):
            detail = f"the Authorization header is not a Bearer token; {_HOW_TO_AUTHENTICATE}"
        else:
            detail = f"this endpoint needs an API key; {_HOW_TO_AUTHENTICATE}"
        raise ApiProblem(401, detail, headers={"WWW-Authenticate": "Bearer"})
    key = credentials.credentials.strip()
    keyring: Keyring = request.app.state.keyring
    grant: KeyGrant | None = None
    if plausible_key(key):
        key_hash = hash_key(key)
        if not keyring.is_revoked(key_hash):
            grant = keyring.cache.get(key_hash)
            if grant is None:
                epoch = keyring.cache.epoch
                grant = await anyio.to_thread.run_sync(
                    _lookup, sessions, key_hash, keyring.last_used
                )
                if grant is not None and keyring.is_revoked(key_hash):
                    grant = None  # revoked while we looked it up
                if grant is not None:
                    keyring.cache.put(grant, epoch)
            elif keyring.last_used.due(grant):
                await anyio.to_thread.run_sync(_touch, sessions, grant.key_id)
    if grant is None:
        raise ApiProblem(
            401,
            "invalid API key: it is unknown or has been revoked",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return grant


async def key_still_valid(request: Request, sessions: sessionmaker[Session], key_hash: str) -> bool:
    """Whether the key with this hash is still valid (from the cache, else the
    database); for what outlives one request, i.e. event streams."""
    keyring: Keyring = request.app.state.keyring
    if keyring.is_revoked(key_hash):
        return False
    if keyring.cache.get(key_hash) is not None:
        return True
    epoch = keyring.cache.epoch
    grant = await anyio.to_thread.run_sync(_lookup, sessions, key_hash, keyring.last_used)
    if grant is None or keyring.is_revoked(key_hash):
        return False
    keyring.cache.put(grant, epoch)
    return True


def _lookup(
    sessions: sessionmaker[Session], key_hash: str, last_used: LastUsedThrottle
) -> KeyGrant | None:
    with sessions() as session:
        grant = grant_for_hash(session, key_hash)
        if grant is not None and last_used.due(grant):
            _touch_in(session, grant.key_id)
        return grant


def _touch(sessions: sessionmaker[Session], key_id: str) -> None:
    with sessions() as session:
        _touch_in(session, key_id)


def _touch_in(session: Session, key_id: str) -> None:
    try:
        touch_key(session, key_id)
    except SQLAlchemyError as exc:  # the request goes on; the next one tries again
        session.rollback()
        log.warning("could not record the last use of API key %s: %s", key_id, exc)


def _missing_scope(request: Request, grant: KeyGrant, scope: Scope) -> ApiProblem:
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    has = ", ".join(f"`{s}`" for s in grant.scopes) or "none"
    return ApiProblem(
        403,
        f"this API key lacks the `{scope}` scope, which {request.method} {path} needs "
        f"(the key's scopes: {has}). Use a key with `{scope}`: a key with `admin` can "
        f"create one (POST /v1/keys), an operator with "
        f"`ponder keys create --tenant NAME --scope {scope}`",
        extra={"missing_scope": str(scope)},
    )


async def _tenant_of(grant: Annotated[KeyGrant, Security(authenticated_key)]) -> Tenant:
    # async: a plain function would cost every request a hop to the thread pool
    return grant.tenant


# What each route needs: its tenant (or the whole grant) through a key with one scope.
# ``GET`` routes read, routes that create, change or cancel work submit, key management
# and webhook signing secrets are admin.
ReadTenant = Annotated[Tenant, Security(_tenant_of, scopes=[Scope.READ.value])]
SubmitTenant = Annotated[Tenant, Security(_tenant_of, scopes=[Scope.SUBMIT.value])]
AdminTenant = Annotated[Tenant, Security(_tenant_of, scopes=[Scope.ADMIN.value])]
ReadKey = Annotated[KeyGrant, Security(authenticated_key, scopes=[Scope.READ.value])]
AdminKey = Annotated[KeyGrant, Security(authenticated_key, scopes=[Scope.ADMIN.value])]


async def require_json(request: Request) -> None:
    """A 415 for bodies that are not JSON (FastAPI would otherwise report a confusing
    validation error)."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        got = f"Content-Type {media_type!r}" if media_type else "no Content-Type"
        raise ApiProblem(
            415, f"the request body must be JSON with Content-Type: application/json (got {got})"
        )


RequireJson = Annotated[None, Depends(require_json)]


# ---- operators ---------------------------------------------------------------------------
# Routes that manage *other* tenants (their limits) are for the service's operators: a key
# with the `admin` scope of a tenant listed in PONDER_ADMIN_TENANTS. A tenant's own admin
# key manages only that tenant's keys and secrets.


async def require_admin(tenant: AdminTenant, settings: SettingsDep) -> Tenant:
    """The caller's tenant if it operates the service (admin scope, listed in
    PONDER_ADMIN_TENANTS), else a 403."""
    if tenant.name not in settings.admin_tenants:
        raise ApiProblem(
            403,
            "this endpoint is for the service's operators: an API key with the `admin` "
            "scope of a tenant listed in PONDER_ADMIN_TENANTS (or manage limits with "
            "`ponder tenants limits`)",
        )
    return tenant


RequireAdmin = Annotated[Tenant, Depends(require_admin)]


async def require_json_if_any(request: Request) -> None:
    """:func:`require_json` for an optional body: a request without one passes."""
    headers = request.headers
    if headers.get("content-length", "0").strip() in ("", "0") and not headers.get(
        "transfer-encoding"
    ):
        return
    await require_json(request)


OptionalJson = Annotated[None, Depends(require_json_if_any)]
