"""``/healthz`` (is the process up) and ``/readyz`` (can it serve: database and broker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from api.deps import ContextDep
from api.errors import problem_response
from api.schemas import Health, ProblemDetail, Readiness

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_SECONDS = 2.0
OK = "ok"


@router.get("/healthz", summary="Liveness")
def healthz() -> Health:
    """Answers as long as the process runs; touches neither the database nor the broker."""
    return Health(status=OK)


@router.get(
    "/readyz",
    summary="Readiness",
    response_model=Readiness,
    responses={503: {"model": ProblemDetail, "description": "The database or broker is down."}},
)
async def readyz(context: ContextDep) -> JSONResponse:
    """200 when the database answers `SELECT 1` and the message broker is reachable,
    else 503 naming what is down."""
    results: dict[str, str] = {}

    async def run(name: str, check: Any, *args: Any) -> None:
        results[name] = f"down: no answer within {CHECK_TIMEOUT_SECONDS:g} s"
        with anyio.move_on_after(CHECK_TIMEOUT_SECONDS + 0.5):
            results[name] = await anyio.to_thread.run_sync(check, *args, abandon_on_cancel=True)

    async with anyio.create_task_group() as group:
        group.start_soon(run, "database", _check_database, context.engine)
        group.start_soon(run, "broker", _check_broker, context.settings.broker_url)
    status = {"database": results["database"], "broker": results["broker"]}
    down = [name for name, state in status.items() if state != OK]
    if not down:
        return JSONResponse(status)
    detail = "not ready: " + "; ".join(f"{name} is {status[name]}" for name in down)
    return problem_response(503, detail, extra=status)


def _check_database(engine: Engine) -> str:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return _down(exc)
    return OK


def _check_broker(url: str) -> str:
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("redis", "rediss", "unix"):
        import redis

        try:
            client = redis.Redis.from_url(
                url,
                socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
                socket_timeout=CHECK_TIMEOUT_SECONDS,
            )
            try:
                client.ping()
            finally:
                client.close()
        except Exception as exc:
            return _down(exc)
        return OK
    if scheme == "filesystem":
        folder = Path(url.removeprefix("filesystem://") or ".ponder/broker")
        return OK if folder.is_dir() else f"down: broker folder {folder} does not exist"
    return OK  # in-memory and other transports have nothing to reach


def _down(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig  # the driver's message, without SQLAlchemy's help link
    message = " ".join(str(exc).split())[:300]
    return f"down: {type(exc).__name__}: {message}" if message else f"down: {type(exc).__name__}"
