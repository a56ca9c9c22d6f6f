"""Every error is an RFC 9457 problem document (``application/problem+json``):
``{type, title, status, detail}``, plus ``errors`` (one entry per invalid field) for
validation failures. ``detail`` always says what went wrong and how to fix it.

The service layer (``ponder``) raises :class:`ponder.field_errors.Invalid` (422),
:class:`ponder.errors.NotFound` (404), :class:`ponder.errors.Forbidden` (403),
:class:`ponder.errors.Conflict` (409) and :class:`ponder.errors.QuotaExceeded` (429, with
``Retry-After``); the handlers here turn them into problem documents, so routes need no
``try``."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ponder.errors import Conflict, Forbidden, NotFound, QuotaExceeded
from ponder.field_errors import Invalid, describe_validation_errors
from ponder.field_errors import invalid as ponder_invalid

PROBLEM_JSON = "application/problem+json"
# in a parameter's JSON Schema: the name of the setting that is its maximum (the API
# document shows the setting's value; see api.main)
MAXIMUM_SETTING = "x-maximum-setting"

log = logging.getLogger(__name__)


class ApiProblem(Exception):
    """An error the API reports to the client as a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers
        self.extra = extra


def invalid(loc: Sequence[str | int], message: str) -> ApiProblem:
    """A 422 for one field, shaped like the framework's validation errors."""
    return from_invalid(ponder_invalid(loc, message))


def from_invalid(exc: Invalid) -> ApiProblem:
    """The 422 for invalid fields found outside the API (:mod:`ponder.submission`)."""
    return ApiProblem(422, exc.detail, errors=exc.errors)


def problem_response(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _title(status),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def quota_response(exc: QuotaExceeded) -> JSONResponse:
    """The 429 for a request over one of the tenant's limits: ``Retry-After`` (whole
    seconds, at least 1) when a wait is known to help, and the limit's name and value
    in the body (``limit``, ``limit_value``, ``retry_after_seconds``)."""
    headers = None
    extra: dict[str, Any] = {"limit": exc.limit, "limit_value": exc.value}
    if exc.retry_after is not None:
        seconds = max(1, math.ceil(exc.retry_after))
        headers = {"Retry-After": str(seconds)}
        extra["retry_after_seconds"] = seconds
    return problem_response(429, exc.detail, headers=headers, extra=extra)


# RFC 9110 names, where Python's table still has the older ones
_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}


def _title(status: int) -> str:
    if status in _TITLES:
        return _TITLES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette's own 405 names only the
    first route that matched the path)."""
    methods = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes):
            methods.append(method)
    return ", ".join(methods)


def _unreadable(cause: BaseException | None) -> str:
    """Why FastAPI could not parse a JSON body, in a few words."""
    if isinstance(cause, UnicodeDecodeError):
        return f"byte {cause.start} is not UTF-8"
    if isinstance(cause, RecursionError):
        return "nested too deep"
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        return "a number has too many digits"
    return "it could not be parsed"


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """The 500 for an error no handler expected: logged with an incident id the client
    can quote."""
    incident = uuid.uuid4().hex[:12]
    log.error(
        "unhandled error on %s %s (incident %s)",
        request.method,
        request.url.path,
        incident,
        exc_info=exc,
    )
    return problem_response(
        500,
        "the server hit an unexpected error; nothing about your request was at fault. "
        f"Retry later, and quote incident {incident} if it persists.",
        extra={"incident": incident},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every error, expected or not, through :func:`problem_response`."""

    async def on_api_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiProblem)
        return problem_response(
            exc.status, exc.detail, errors=exc.errors, headers=exc.headers, extra=exc.extra
        )

    async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Invalid)
        # no ``errors`` member when no single field is at fault (e.g. a whole template)
        return problem_response(422, exc.detail, errors=exc.errors or None)

    async def on_not_found(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, NotFound)
        return problem_response(404, exc.detail)

    async def on_forbidden(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Forbidden)
        return problem_response(403, exc.detail)

    async def on_conflict(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Conflict)
        return problem_response(409, exc.detail, extra=dict(exc.extra))

    async def on_quota_exceeded(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, QuotaExceeded)
        return quota_response(exc)

    async def on_http_exception(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        generic = detail in (_title(exc.status_code), HTTPStatus(exc.status_code).phrase)
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and generic:
            detail = (
                f"no endpoint at {request.url.path}; the API lives under /v1 "
                "(see /docs for every endpoint)"
            )
        elif exc.status_code == 405 and generic:
            allowed = _allowed_methods(request) or headers.get("Allow", "")
            if allowed:
                headers["Allow"] = allowed
            detail = f"{request.method} is not allowed on {request.url.path}" + (
                f"; use {allowed}" if allowed else ""
            )
        elif exc.status_code == 400 and detail == "There was an error parsing the body":
            # the body is not JSON text (JSON that is malformed is a 422 already):
            # a content problem like any other, so a 422 too
            return problem_response(
                422,
                f"request body is not valid JSON ({_unreadable(exc.__cause__)}); "
                "send a JSON object in UTF-8 with Content-Type: application/json",
                errors=[{"loc": ["body"], "msg": "not valid JSON", "type": "json_invalid"}],
            )
        return problem_response(exc.status_code, detail, headers=headers or None)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail, errors = describe_validation_errors(exc.errors())
        return problem_response(422, detail, errors=errors)

    async def on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return problem_response(
            503,
            "the database is unavailable right now; retry in a few seconds",
            headers={"Retry-After": "5"},
        )

    app.add_exception_handler(ApiProblem, on_api_problem)
    app.add_exception_handler(Invalid, on_invalid)
    app.add_exception_handler(NotFound, on_not_found)
    app.add_exception_handler(Conflict, on_conflict)
    app.add_exception_handler(Forbidden, on_forbidden)
    app.add_exception_handler(QuotaExceeded, on_quota_exceeded)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(OperationalError, on_database_unavailable)
    app.add_exception_handler(SQLAlchemyTimeoutError, on_database_unavailable)
    app.add_exception_handler(Exception, unexpected_error)
