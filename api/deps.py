"""Request dependencies as ``Annotated`` aliases, so route signatures stay short."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.errors import ApiProblem
from ponder.auth import hash_key, tenant_for_key
from ponder.batches.service import BatchService
from ponder.catalog import StrategyCatalog
from ponder.config import Settings
from ponder.fairness import QueueGauge
from ponder.jobs.service import JobService
from ponder.llm.profiles import ModelProfile
from ponder.queue import JobQueue
from ponder.tables import Tenant


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
        "An API key, sent as `Authorization: Bearer pk_...`. "
        "Create one with `ponder keys create --tenant NAME`."
    ),
)

_HOW_TO_AUTHENTICATE = "send your API key as `Authorization: Bearer <api key>`"


class AuthCache:
    """Recently verified API keys (by hash), so busy clients do not cost a database
    lookup per request. Only successes are cached, for ``ttl`` seconds: a revoked key
    stops working within that time; a new key works at once."""

    def __init__(self, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[str, tuple[float, Tenant]] = {}

    def get(self, key: str) -> Tenant | None:
        hit = self._entries.get(hash_key(key))
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def clear(self) -> None:
        self._entries.clear()

    def put(self, key: str, tenant: Tenant) -> None:
        if self._ttl <= 0:
            return
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[hash_key(key)] = (time.monotonic() + self._ttl, tenant)


async def current_tenant(
    request: Request,
    sessions: SessionsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Tenant:
    """The tenant whose API key the request carries, else a 401.

    A recently verified key is answered from the cache on the event loop; otherwise the
    lookup runs in a worker thread with its own short session, so a long-polling route
    holds no connection while it waits."""
    if credentials is None:
        if request.headers.get("authorization"):
            detail = f"the Authorization header is not a Bearer token; {_HOW_TO_AUTHENTICATE}"
        else:
            detail = f"this endpoint needs an API key; {_HOW_TO_AUTHENTICATE}"
        raise ApiProblem(401, detail, headers={"WWW-Authenticate": "Bearer"})
    key = credentials.credentials.strip()
    cache: AuthCache = request.app.state.auth_cache
    tenant = cache.get(key)
    if tenant is None:
        tenant = await anyio.to_thread.run_sync(_lookup_tenant, sessions, key)
        if tenant is not None:
            cache.put(key, tenant)
    if tenant is None:
        raise ApiProblem(
            401,
            "invalid API key: it is unknown or has been revoked",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return tenant


def _lookup_tenant(sessions: sessionmaker[Session], key: str) -> Tenant | None:
    with sessions() as session:
        return tenant_for_key(session, key)


CurrentTenant = Annotated[Tenant, Depends(current_tenant)]


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


async def require_json_if_any(request: Request) -> None:
    """:func:`require_json` for an optional body: a request without one passes."""
    headers = request.headers
    if headers.get("content-length", "0").strip() in ("", "0") and not headers.get(
        "transfer-encoding"
    ):
        return
    await require_json(request)


OptionalJson = Annotated[None, Depends(require_json_if_any)]
