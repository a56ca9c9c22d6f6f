"""Sending outbox rows: claim, sign, POST, log the attempt, schedule the retry.

Life of a delivery (``webhook_deliveries.status``):

- ``pending``: due at ``next_attempt_at``. A sender *claims* it by bumping ``attempts``
  and pushing ``next_attempt_at`` past the attempt's timeout, so no other sender takes it
  meanwhile (and, should the sender die, it becomes due again by itself). The result is
  written fenced on that ``attempts`` value.
- ``delivered``: the receiver answered 2xx.
- ``failed``: every retry of the schedule failed (redirects count as failures: they are
  not followed).
- ``disabled``: the receiver answered 410 Gone. The target URL is disabled for the
  tenant; later deliveries to it are not sent until a redelivery re-enables it.

Every attempt is one ``webhook_attempts`` row: status code, latency, error, and when the
next attempt was scheduled. Every attempt of one event carries the same ``webhook-id``.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from ponder import metrics
from ponder.config import Settings
from ponder.queue import JobQueue
from ponder.retry_after import parse_retry_after
from ponder.tables import (
    DeliveryStatus,
    DisabledWebhookTarget,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSecret,
    utcnow,
)
from ponder.webhooks import signing
from ponder.webhooks.ssrf import ForbiddenAddress

# A claimed attempt is due again after this many times its timeout (its sender died).
CLAIM_TIMEOUTS = 2.0
RESPONSE_SNIPPET_BYTES = 300


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


# --- secrets -------------------------------------------------------------------------


def active_secrets(s: Session, tenant_id: str, now: datetime) -> list[WebhookSecret]:
    """The tenant's secrets that still sign, newest first; creates one if there is none."""
    rows = list(
        s.execute(
            select(WebhookSecret)
            .where(
                WebhookSecret.tenant_id == tenant_id,
                or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > now),
            )
            .order_by(WebhookSecret.created_at.desc(), WebhookSecret.id)
        ).scalars()
    )
    if not rows:
        secret = WebhookSecret(
            tenant_id=tenant_id, secret=signing.generate_secret(), created_at=now
        )
        s.add(secret)
        s.flush()
        rows = [secret]
    return rows


def rotate_secret(s: Session, tenant_id: str, *, grace_seconds: float, now: datetime) -> None:
    """A new secret signs from now on; the current ones keep signing for ``grace_seconds``
    (both signatures are sent meanwhile), then expire."""
    ends = now + timedelta(seconds=grace_seconds)
    s.execute(
        update(WebhookSecret)
        .where(
            WebhookSecret.tenant_id == tenant_id,
            or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > ends),
        )
        .values(expires_at=ends)
    )
    s.add(WebhookSecret(tenant_id=tenant_id, secret=signing.generate_secret(), created_at=now))
    s.flush()


# --- picking deliveries to send --------------------------------------------------------


def take_unsent(
    sessions: sessionmaker[Session],
    *,
    ids: list[str],
    now: datetime | None = None,
) -> list[str]:
    """Those of ``ids`` that are due and that no task was sent for yet, marked as sent
    for: the caller hands each to a delivery task."""
    if not ids:
        return []
    now = now or utcnow()
    with sessions() as s, s.begin():
        return list(
            s.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id.in_(ids),
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.next_attempt_at <= now,
                    WebhookDelivery.enqueued_at.is_(None),
                )
                .values(enqueued_at=now)
                .returning(WebhookDelivery.id)
            ).scalars()
        )


def due_deliveries(
    sessions: sessionmaker[Session],
    *,
    now: datetime,
    stale_before: datetime,
    limit: int = 500,
) -> list[str]:
    """For the reaper: due deliveries with no task sent for them, or whose task was sent
    before ``stale_before`` and never ran (lost with the broker). Marked as sent for now;
    rows another reaper holds are skipped (SKIP LOCKED on Postgres)."""
    with sessions() as s, s.begin():
        ids = list(
            s.execute(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.next_attempt_at <= now,
                    or_(
                        WebhookDelivery.enqueued_at.is_(None),
                        WebhookDelivery.enqueued_at < stale_before,
                    ),
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).scalars()
        )
        if ids:
            s.execute(
                update(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).values(enqueued_at=now)
            )
        return ids


# --- one attempt ---------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """What one HTTP attempt came to."""

    status_code: int | None
    error: str | None
    latency_ms: float
    retry_after: float | None = None
    # why there was no response: timeout, refused (address not allowed), network
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class DeliveryOutcome:
    """``status`` after the attempt (or ``skipped`` when it was not due or not pending),
    and the delay until the next attempt when one is scheduled."""

    status: str
    next_in: float | None = None
    status_code: int | None = None
    error: str | None = None


def retry_delay(
    settings: Settings, failures: int, attempt: Attempt, rng: random.Random
) -> float | None:
    """Seconds until the next attempt after ``failures`` failed attempts in a row (this
    one included), or None when the schedule is used up. A ``Retry-After`` on 429/503
    replaces the scheduled delay (capped by ``webhook_max_retry_after_seconds``)."""
    schedule = settings.webhook_retry_schedule
    if failures > len(schedule):
        return None
    if attempt.retry_after is not None:
        return min(attempt.retry_after, settings.webhook_max_retry_after_seconds)
    base = schedule[failures - 1]
    spread = settings.webhook_retry_jitter
    return max(0.0, base * (1 + rng.uniform(-spread, spread)))


def encode_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def post_once(
    client: httpx.Client, url: str, body: bytes, headers: dict[str, str], timeout: float
) -> Attempt:
    """POST the signed body once; never raises for network trouble (it becomes the
    attempt's error)."""
    started = time.monotonic()

    def took() -> float:
        return round((time.monotonic() - started) * 1000, 1)

    try:
        with client.stream("POST", url, content=body, headers=headers) as resp:
            snippet = b""
            for chunk in resp.iter_bytes():
                snippet += chunk
                if len(snippet) >= RESPONSE_SNIPPET_BYTES:
                    break
            code = resp.status_code
            if 200 <= code < 300:
                return Attempt(code, None, took())
            text = snippet[:RESPONSE_SNIPPET_BYTES].decode("utf-8", "replace").strip()
            if 300 <= code < 400:
                where = resp.headers.get("location", "?")
                error = (
                    f"HTTP {code} redirect to {where} not followed: the webhook URL itself "
                    "must answer 2xx"
                )
            elif code == 410:
                error = "HTTP 410 Gone: the target is disabled until a redelivery"
            else:
                error = f"HTTP {code}" + (f": {text}" if text else "")
            retry_after = parse_retry_after(resp.headers) if code in (429, 503) else None
            return Attempt(code, error, took(), retry_after)
    except ForbiddenAddress as exc:
        return Attempt(None, f"refused: {exc}", took(), failure="refused")
    except httpx.TimeoutException:
        return Attempt(None, f"no answer within {timeout:g} s", took(), failure="timeout")
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Attempt(None, error, took(), failure="network")


def deliver(
    sessions: sessionmaker[Session],
    delivery_id: str,
    *,
    settings: Settings,
    client: httpx.Client,
    rng: random.Random | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> DeliveryOutcome:
    """Make one attempt of a due, pending delivery and record it."""
    rng = rng or random.Random()
    now = clock()
    window = timedelta(seconds=settings.webhook_timeout_seconds * CLAIM_TIMEOUTS)
    with sessions() as s, s.begin():
        row = s.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at <= now,
            )
            .values(
                attempts=WebhookDelivery.attempts + 1,
                next_attempt_at=now + window,
                enqueued_at=None,
            )
            .returning(
                WebhookDelivery.attempts,
                WebhookDelivery.retries,
                WebhookDelivery.tenant_id,
                WebhookDelivery.url,
                WebhookDelivery.webhook_id,
                WebhookDelivery.payload,
            )
        ).first()
        if row is None:
            return DeliveryOutcome("skipped")
        number, retries, tenant_id, url, msg_id, payload = row
        disabled = s.get(DisabledWebhookTarget, (tenant_id, url_hash(url)))
        if disabled is not None:
            error = (
                f"not sent: the target was disabled at {disabled.disabled_at.isoformat()} "
                f"({disabled.reason}); redeliver to re-enable it"
            )
            _record(s, delivery_id, number, now, Attempt(None, error, 0.0), None)
            s.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, WebhookDelivery.attempts == number)
                .values(status=DeliveryStatus.DISABLED, last_status_code=None, last_error=error)
            )
            metrics.webhook_attempted(None, "not_sent", DeliveryStatus.DISABLED, 0.0)
            return DeliveryOutcome(DeliveryStatus.DISABLED, error=error)
        secrets = [x.secret for x in active_secrets(s, tenant_id, now)]

    body = encode_body(payload)
    timestamp = int(now.timestamp())
    headers = signing.headers(secrets, msg_id, timestamp, body)
    attempt = post_once(client, url, body, headers, settings.webhook_timeout_seconds)

    done = clock()
    values: dict[str, Any] = {
        "last_status_code": attempt.status_code,
        "last_error": attempt.error,
    }
    next_in: float | None = None
    if attempt.ok:
        status = DeliveryStatus.DELIVERED
        values.update(status=status, delivered_at=done)
    elif attempt.status_code == 410:
        status = DeliveryStatus.DISABLED
        values.update(status=status)
    else:
        failures = retries + 1
        next_in = retry_delay(settings, failures, attempt, rng)
        if next_in is None:
            status = DeliveryStatus.FAILED
            values.update(status=status, retries=failures)
        else:
            status = DeliveryStatus.PENDING
            values.update(
                retries=failures,
                next_attempt_at=done + timedelta(seconds=next_in),
                enqueued_at=None,
            )
    with sessions() as s, s.begin():
        next_at = values.get("next_attempt_at") if status == DeliveryStatus.PENDING else None
        _record(s, delivery_id, number, now, attempt, next_at)
        s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.attempts == number)
            .values(**values)
        )
        if status == DeliveryStatus.DISABLED:
            _disable_target(s, tenant_id, url, done, reason=f"HTTP 410 Gone at attempt {number}")
    seconds = attempt.latency_ms / 1000
    metrics.webhook_attempted(attempt.status_code, attempt.failure, status, seconds)
    return DeliveryOutcome(status, next_in, attempt.status_code, attempt.error)


def _record(
    s: Session,
    delivery_id: str,
    number: int,
    started: datetime,
    attempt: Attempt,
    next_attempt_at: datetime | None,
) -> None:
    s.add(
        WebhookAttempt(
            delivery_id=delivery_id,
            number=number,
            started_at=started,
            latency_ms=attempt.latency_ms,
            status_code=attempt.status_code,
            error=attempt.error,
            next_attempt_at=next_attempt_at,
        )
    )


def _disable_target(s: Session, tenant_id: str, url: str, now: datetime, *, reason: str) -> None:
    values = {
        "tenant_id": tenant_id,
        "url_hash": url_hash(url),
        "url": url,
        "disabled_at": now,
        "reason": reason,
    }
    dialect = s.get_bind().dialect.name
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    s.execute(insert_(DisabledWebhookTarget).values(**values).on_conflict_do_nothing())


def redeliver(s: Session, delivery: WebhookDelivery, *, now: datetime) -> None:
    """Send a delivery again now, whatever its state, with a fresh retry schedule and the
    same ``webhook-id``; re-enables its target if a 410 had disabled it."""
    s.execute(
        delete(DisabledWebhookTarget).where(
            DisabledWebhookTarget.tenant_id == delivery.tenant_id,
            DisabledWebhookTarget.url_hash == url_hash(delivery.url),
        )
    )
    s.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery.id)
        .values(
            status=DeliveryStatus.PENDING,
            retries=0,
            next_attempt_at=now,
            enqueued_at=None,
            delivered_at=None,
        )
    )


# A retry due within this many seconds is published with a countdown; later ones are
# published by the reaper when they come due.
SHORT_RETRY_SECONDS = 60.0


def attempt(
    sessions: sessionmaker[Session],
    queue: JobQueue,
    delivery_id: str,
    *,
    settings: Settings,
    client: httpx.Client,
) -> DeliveryOutcome:
    """One attempt of a delivery (:func:`deliver`); a retry due soon is published at
    once with a countdown, a later one is left to the reaper."""
    outcome = deliver(sessions, delivery_id, settings=settings, client=client)
    if outcome.next_in is not None and outcome.next_in <= SHORT_RETRY_SECONDS:
        due = utcnow() + timedelta(seconds=outcome.next_in)
        for again in take_unsent(sessions, ids=[delivery_id], now=due):
            queue.enqueue_delivery(again, countdown=outcome.next_in)
    return outcome
