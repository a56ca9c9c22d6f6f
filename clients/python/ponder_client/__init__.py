"""A client for Ponder's API.

    from ponder_client import Ponder

    client = Ponder()   # PONDER_API_URL and PONDER_API_KEY, or Ponder(base_url, api_key)
    job = client.jobs.create(
        problem={"task": "game24", "input": {"numbers": [4, 9, 10, 13]}},
        strategy={"name": "best_of_n", "params": {"n": 16}},
    )
    job = client.jobs.wait(job.id)
    print(job.status, job.result)

:class:`AsyncPonder` is the same for asyncio. Answers are pydantic models
(:mod:`ponder_client.types`); errors derive from :class:`PonderError`, and an error
answer of the API is an :class:`APIStatusError` carrying the server's ``detail``.
:func:`ponder_client.webhooks.verify` checks the webhooks Ponder sends."""

from . import types, webhooks
from ._base_client import APIResponseValidationError
from ._client import AsyncPonder, Ponder
from ._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    PonderError,
    RateLimitError,
    RequestTooLargeError,
    ServiceUnavailableError,
    UnprocessableEntityError,
    UnsupportedMediaTypeError,
    WaitTimeoutError,
)
from ._pagination import AsyncPage, SyncPage
from ._retry import RetryPolicy
from ._utils import NOT_GIVEN, NotGiven
from ._version import __version__
from .webhooks import WebhookVerificationError

__all__ = [
    "NOT_GIVEN",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncPage",
    "AsyncPonder",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "NotGiven",
    "PermissionDeniedError",
    "Ponder",
    "PonderError",
    "RateLimitError",
    "RequestTooLargeError",
    "RetryPolicy",
    "ServiceUnavailableError",
    "SyncPage",
    "UnprocessableEntityError",
    "UnsupportedMediaTypeError",
    "WaitTimeoutError",
    "WebhookVerificationError",
    "__version__",
    "types",
    "webhooks",
]
