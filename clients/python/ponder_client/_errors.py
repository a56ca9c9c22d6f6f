"""The errors the client raises. Every one derives from :class:`PonderError`; an answer of
the API with an error status is an :class:`APIStatusError` (one subclass per status) that
carries the server's ``detail``, which says what went wrong and what to fix."""

from __future__ import annotations

from typing import Any

import httpx

from .types import FieldError

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "PonderError",
    "RateLimitError",
    "RequestTooLargeError",
    "ServiceUnavailableError",
    "UnprocessableEntityError",
    "UnsupportedMediaTypeError",
    "WaitTimeoutError",
]


class PonderError(Exception):
    """The base of every error this library raises."""


class APIError(PonderError):
    """A request to the API did not succeed."""

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request = request


class APIConnectionError(APIError):
    """The API could not be reached, or the connection broke before its answer was read
    (after the retries the client was allowed)."""


class APITimeoutError(APIConnectionError):
    """The API did not answer in time."""


class APIStatusError(APIError):
    """The API answered with an error status (4xx or 5xx).

    ``detail`` is the server's explanation (the problem document's ``detail``), ``body``
    the whole problem document (``None`` if the answer was not JSON)."""

    def __init__(
        self,
        response: httpx.Response,
        *,
        detail: str,
        body: dict[str, Any] | None,
    ) -> None:
        super().__init__(f"HTTP {response.status_code}: {detail}", request=response.request)
        self.response = response
        self.status_code = response.status_code
        self.headers = response.headers
        self.detail = detail
        self.body = body

    @property
    def errors(self) -> list[FieldError]:
        """The invalid fields (on a 422): where each is and what is wrong with it."""
        raw = (self.body or {}).get("errors") or []
        return [FieldError.model_validate(item) for item in raw if isinstance(item, dict)]


class BadRequestError(APIStatusError):
    """400: the request could not be read."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, malformed, unknown or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the API key lacks the scope the operation needs (``missing_scope`` names
    it), or the operation is not allowed (deleting a built-in dataset)."""

    @property
    def missing_scope(self) -> str | None:
        value = (self.body or {}).get("missing_scope")
        return value if isinstance(value, str) else None


class NotFoundError(APIStatusError):
    """404: no such resource for this API key's tenant."""


class ConflictError(APIStatusError):
    """409: e.g. an Idempotency-Key reused with another body, a name already taken, or a
    job that has already finished."""


class RequestTooLargeError(APIStatusError):
    """413: the body is larger than the server accepts."""


class UnsupportedMediaTypeError(APIStatusError):
    """415: the body's Content-Type is not one the operation takes."""


class UnprocessableEntityError(APIStatusError):
    """422: a field is invalid (``errors`` lists each), or the request cannot be done as
    asked (a budget over the server's ceiling, an unknown strategy, ...)."""


class RateLimitError(APIStatusError):
    """429: over one of the tenant's limits for now. ``limit`` names it; ``retry_after``
    is how many seconds the server asked to wait (``None`` where waiting does not help)."""

    @property
    def limit(self) -> str | None:
        value = (self.body or {}).get("limit")
        return value if isinstance(value, str) else None

    @property
    def retry_after(self) -> float | None:
        from ._retry import parse_retry_after

        return parse_retry_after(self.headers)


class InternalServerError(APIStatusError):
    """5xx: the server failed. ``incident`` is the id to quote for an unexpected error."""

    @property
    def incident(self) -> str | None:
        value = (self.body or {}).get("incident")
        return value if isinstance(value, str) else None


class ServiceUnavailableError(InternalServerError):
    """503: the server cannot serve now (e.g. its database is restarting); retry later."""


class WaitTimeoutError(PonderError):
    """A wait (``jobs.wait``, ``batches.wait``) ran out of time before the job or batch
    finished. ``last`` is what was seen last (it is still running)."""

    def __init__(self, message: str, last: Any) -> None:
        super().__init__(message)
        self.last = last


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: RequestTooLargeError,
    415: UnsupportedMediaTypeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def status_error(response: httpx.Response) -> APIStatusError:
    """The error for an answer with an error status (its body already read)."""
    body: dict[str, Any] | None = None
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        body = parsed
    detail = body.get("detail") if body is not None else None
    if not isinstance(detail, str) or not detail:
        detail = response.text.strip() or response.reason_phrase or "no detail given"
    status = response.status_code
    kind = _BY_STATUS.get(status)
    if kind is None:
        kind = InternalServerError if status >= 500 else APIStatusError
    return kind(response, detail=detail, body=body)
