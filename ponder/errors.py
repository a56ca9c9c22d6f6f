"""The one base of Ponder's own exceptions, and the codes that classify them.

Every exception Ponder raises on purpose derives from :class:`PonderError` and carries an
:class:`ErrorCode`. The layers above map codes to what their callers see (the API to an
HTTP status, the worker to a job's final status), so a new error needs no new ``except``
clause as long as its code already has a meaning there.

Outside stay the HTTP adapters (``api.errors.ApiProblem``, ``api.middleware.BodyTooLarge``,
the simulated model server's ``OpenAIError``), whose instances each carry their own HTTP
status, and private control-flow exceptions that never leave their module.
``tests/unit/test_errors.py`` checks every public exception class of ``ponder``,
``worker``, ``strategies`` and ``api``."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class ErrorCode(StrEnum):
    """What kind of failure an error is, independent of where it was raised."""

    # the caller sent something wrong (the API answers 4xx)
    INVALID = "invalid"  # a field is invalid: 422
    NOT_FOUND = "not_found"  # no such resource for this tenant: 404
    FORBIDDEN = "forbidden"  # it exists, but no tenant may do this to it: 403
    CONFLICT = "conflict"  # the resource's state does not allow it: 409
    QUOTA_EXCEEDED = "quota_exceeded"  # over one of the tenant's limits for now: 429
    # a job's run stops for a reason that is not a fault
    BUDGET_EXHAUSTED = "budget_exhausted"
    CANCELLED = "cancelled"
    # the worker lost the right to go on; another worker resumes the job
    LEASE_LOST = "lease_lost"
    SLICE_EXPIRED = "slice_expired"
    NON_DETERMINISM = "non_determinism"
    # a model provider failed
    PROVIDER_ERROR = "provider_error"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    PROVIDER_BAD_REQUEST = "provider_bad_request"
    PROVIDER_AUTH = "provider_auth"
    # configuration or environment
    CONFIGURATION = "configuration"
    UNAVAILABLE = "unavailable"  # a dependency (sandbox, broker, ...) is missing or down
    FORBIDDEN_ADDRESS = "forbidden_address"  # an outgoing request aimed where it may not
    # a verifier could not read or check an answer
    UNCHECKABLE = "uncheckable"
    INTERNAL = "internal"


class PonderError(Exception):
    """Base of every exception Ponder raises on purpose. ``code`` says what kind it is."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL


class NotFound(PonderError):
    """No such resource, or it belongs to another tenant (never told apart: a 404)."""

    code = ErrorCode.NOT_FOUND

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Forbidden(PonderError):
    """The resource exists but may not be changed this way by anyone (a 403), e.g. a
    built-in dataset."""

    code = ErrorCode.FORBIDDEN

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Conflict(PonderError):
    """The resource exists but its state does not allow the request (a 409). ``extra``
    holds machine-readable facts a client may act on, e.g. the job's status."""

    code = ErrorCode.CONFLICT

    def __init__(self, detail: str, extra: dict[str, object] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class QuotaExceeded(PonderError):
    """The request is over one of the tenant's limits for now (a 429): ``limit`` names it
    (``jobs_per_minute``, ``max_active_jobs``, ``batch_items_per_day``,
    ``spend_per_day_usd``), ``value`` is its value, and ``retry_after`` says how many
    seconds to wait before trying again (None when no wait is known to be enough).
    A request that can never pass (e.g. a priority above the tenant's maximum) is an
    ``Invalid`` (422) instead."""

    code = ErrorCode.QUOTA_EXCEEDED

    def __init__(
        self, limit: str, detail: str, *, value: float | None, retry_after: float | None
    ) -> None:
        super().__init__(detail)
        self.limit = limit
        self.detail = detail
        self.value = value
        self.retry_after = retry_after
