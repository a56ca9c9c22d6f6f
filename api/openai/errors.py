"""Errors in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, for every
route of the surface: :class:`OpenAIRoute` turns whatever a route or its dependencies
raise (a bad or missing API key, a missing scope, invalid input, a tenant over a limit,
Ponder's own errors) into that shape with the status OpenAI's clients expect, so the
``openai`` package raises its matching exception (``AuthenticationError``,
``NotFoundError``, ``BadRequestError``, ``RateLimitError``, ...)."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.errors import ApiProblem
from ponder.errors import Conflict, Forbidden, NotFound, QuotaExceeded
from ponder.field_errors import Invalid, describe_validation_errors
from ponder.openai_compat.errors import OpenAIRequestError, Origins, from_field_errors

log = logging.getLogger(__name__)

JOB_HEADER = "Ponder-Job-Id"
BATCH_HEADER = "Ponder-Batch-Id"
# tells the openai package not to retry (a retry would start another job)
NO_RETRY = {"x-should-retry": "false"}

_TYPES = {
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(
    message: str,
    *,
    status: int,
    param: str | None = None,
    code: str | None = None,
    kind: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "message": message,
        "type": kind
        or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
        "param": param,
        "code": code,
    }
    if extra:
        error.update({k: v for k, v in extra.items() if k not in error})
    return {"error": error}


def error_response(
    message: str,
    *,
    status: int,
    param: str | None = None,
    code: str | None = None,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(message, status=status, param=param, code=code, kind=kind, extra=extra),
        status_code=status,
        headers=headers,
    )


def from_request_error(
    exc: OpenAIRequestError, headers: dict[str, str] | None = None
) -> JSONResponse:
    return error_response(
        exc.message, status=exc.status, param=exc.param, code=exc.error_code, headers=headers
    )


def convert(exc: Exception, request: Request) -> Response | None:
    """The OpenAI-shaped answer to ``exc``, or None if it is not one this knows."""
    if isinstance(exc, OpenAIRequestError):
        return from_request_error(exc)
    if isinstance(exc, ApiProblem):
        code: str | None = None
        extra = dict(exc.extra or {})
        if exc.status == 401:
            code = "invalid_api_key"
        elif exc.status == 403 and "missing_scope" in extra:
            code = "missing_scope"
        status = 400 if exc.status == 422 else exc.status
        return error_response(
            exc.detail, status=status, code=code, headers=exc.headers, extra=extra or None
        )
    if isinstance(exc, Invalid):
        return from_request_error(from_field_errors(exc.errors, exc.detail, Origins()))
    if isinstance(exc, RequestValidationError):
        detail, _ = describe_validation_errors(exc.errors())
        return error_response(detail, status=400)
    if isinstance(exc, NotFound):
        return error_response(str(exc), status=404)
    if isinstance(exc, Forbidden):
        return error_response(str(exc), status=403)
    if isinstance(exc, Conflict):
        return error_response(str(exc), status=409, code="conflict", headers=NO_RETRY)
    if isinstance(exc, QuotaExceeded):
        headers = dict(NO_RETRY) if exc.retry_after is None else {}
        limit = {"limit": exc.limit, "limit_value": exc.value}
        if exc.retry_after is not None:
            seconds = max(1, math.ceil(exc.retry_after))
            headers["Retry-After"] = str(seconds)
        return error_response(
            exc.detail, status=429, code="rate_limit_exceeded", headers=headers, extra=limit
        )
    if isinstance(exc, StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return error_response(detail, status=exc.status_code, headers=dict(exc.headers or {}))
    if isinstance(exc, OperationalError | SQLAlchemyTimeoutError):
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            "the database is unavailable right now; retry in a few seconds",
            status=503,
            headers={"Retry-After": "5"},
        )
    return None


class OpenAIRoute(APIRoute):
    """A route whose every error is answered in OpenAI's shape (an unexpected one is a
    500 with an incident id, logged)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                converted = convert(exc, request)
                if converted is not None:
                    return converted
                incident = uuid.uuid4().hex[:12]
                log.error(
                    "unhandled error on %s %s (incident %s)",
                    request.method,
                    request.url.path,
                    incident,
                    exc_info=exc,
                )
                return error_response(
                    "the server hit an unexpected error; nothing about your request was at "
                    f"fault. Retry later, and quote incident {incident} if it persists.",
                    status=500,
                    headers=NO_RETRY,
                )

        return answer
