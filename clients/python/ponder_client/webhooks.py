"""Checking the webhooks Ponder sends, for receivers.

Ponder signs every delivery the Standard Webhooks way: ``webhook-id``,
``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` headers, the signature
being ``v1,`` and the base64 HMAC-SHA256 of ``"{webhook-id}.{webhook-timestamp}.{body}"``
under a tenant secret (``whsec_`` + base64 of the key). While a secret is being rotated a
delivery carries one signature per active secret.

    from ponder_client import webhooks

    event = webhooks.verify(request_body, request_headers, secrets)  # raises if forged
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

from pydantic import ValidationError

from ._errors import PonderError
from .types import WebhookEvent

__all__ = ["DEFAULT_TOLERANCE_SECONDS", "WebhookVerificationError", "verify"]

SECRET_PREFIX = "whsec_"
# how far a delivery's timestamp may be from this machine's clock (replays older than
# this are refused)
DEFAULT_TOLERANCE_SECONDS = 300.0


class WebhookVerificationError(PonderError):
    """A delivery that must not be trusted: a header is missing, its timestamp is too
    far from now, or no signature matches any of the secrets."""


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "a webhook secret is `whsec_` followed by base64, as GET /v1/webhook-secrets shows it"
        ) from None


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"the `{name}` header is missing: not a Ponder delivery")


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secrets: str | Iterable[str],
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> WebhookEvent:
    """Check that ``body`` (the request's raw body, exactly as received) with
    ``headers`` was signed by Ponder with one of ``secrets`` (one, or several during a
    rotation), less than ``tolerance`` seconds away from ``now`` (default: this
    machine's clock). Returns the event; raises :class:`WebhookVerificationError` if it
    must not be trusted. Signatures are compared in constant time.

    Deliveries are retried, each time with the same ``webhook-id``
    (``headers["webhook-id"]``): drop the ones you have already handled."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    keys = [_key(secret) for secret in ([secrets] if isinstance(secrets, str) else secrets)]
    if not keys:
        raise ValueError("give at least one secret")
    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError(
            f"`webhook-timestamp` is not a Unix time in seconds: {stamp!r}"
        ) from None
    clock = time.time() if now is None else now
    if abs(clock - timestamp) > tolerance:
        raise WebhookVerificationError(
            f"the delivery's timestamp is {clock - timestamp:+.0f} s from now, beyond the "
            f"{tolerance:g} s allowed: an old message replayed, or a clock far off"
        )
    signed = f"{msg_id}.{timestamp}.".encode() + raw
    expected = [base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()) for key in keys]
    matched = False
    for signature in signatures.split():
        version, _, value = signature.partition(",")
        if version != "v1":
            continue
        given = value.encode()
        for candidate in expected:
            # every comparison is made, so the time taken says nothing about which matched
            matched |= hmac.compare_digest(candidate, given)
    if not matched:
        raise WebhookVerificationError(
            "no signature matches the secrets given: the body was changed, or it was signed "
            "with another secret (after a rotation, give the new secrets too)"
        )
    try:
        return WebhookEvent.model_validate_json(raw)
    except ValidationError as exc:
        raise WebhookVerificationError(f"signed, but not an event: {exc}") from None
