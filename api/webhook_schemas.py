"""Request and response bodies of the webhook endpoints (secrets, deliveries)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from api.schemas import StoredObject
from ponder.tables import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookSecret

MAX_GRACE_SECONDS = 30 * 86_400


class SecretPublic(BaseModel):
    id: str
    secret: str = Field(
        description="`whsec_` + base64 of the HMAC-SHA256 key. Verify deliveries with it "
        "(any Standard Webhooks library takes it as is)."
    )
    created_at: datetime
    expires_at: datetime | None = Field(
        description="When it stops signing; null while it is the current secret."
    )

    @classmethod
    def from_row(cls, row: WebhookSecret) -> SecretPublic:
        return cls(
            id=row.id, secret=row.secret, created_at=row.created_at, expires_at=row.expires_at
        )


class SecretList(BaseModel):
    secrets: list[SecretPublic] = Field(
        description="Every secret that still signs deliveries, newest first. Each delivery "
        "carries one signature per secret in its `webhook-signature` header."
    )


class RotateSecret(BaseModel):
    model_config = {"extra": "forbid"}

    grace_seconds: float | None = Field(
        default=None,
        ge=0,
        le=MAX_GRACE_SECONDS,
        strict=True,  # a number: `false` or "10" is no grace period
        allow_inf_nan=False,
        description="How long the current secret keeps signing beside the new one (both "
        "signatures are sent meanwhile). Default: the server's setting (24 h). 0 retires "
        "it at once.",
    )


class AttemptPublic(BaseModel):
    number: int = Field(description="1 for the first attempt, counting redeliveries too.")
    started_at: datetime
    latency_ms: float
    status_code: int | None = Field(description="The receiver's HTTP status; null if none.")
    error: str | None = Field(description="Why the attempt failed; null on success.")
    next_attempt_at: datetime | None = Field(
        description="When the retry after this attempt was scheduled; null if none."
    )

    @classmethod
    def from_row(cls, row: WebhookAttempt) -> AttemptPublic:
        return cls(
            number=row.number,
            started_at=row.started_at,
            latency_ms=row.latency_ms,
            status_code=row.status_code,
            error=row.error,
            next_attempt_at=row.next_attempt_at,
        )


class DeliveryPublic(BaseModel):
    id: str
    webhook_id: str = Field(
        description="The `webhook-id` header: the same on every attempt of this event, so "
        "receivers can drop duplicates."
    )
    event_type: str = Field(description="`job.completed`, `job.failed`, `job.cancelled`, …")
    job_id: str | None
    url: str
    status: str = Field(
        description="`pending` (waiting for its next attempt), `delivered` (a 2xx answer), "
        "`failed` (every retry failed) or `disabled` (the target answered 410 Gone)."
    )
    attempts: int
    next_attempt_at: datetime | None = Field(description="When a pending delivery is next sent.")
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: StoredObject = Field(description="The JSON body sent.")
    attempt_log: list[AttemptPublic] = Field(description="Every attempt, oldest first.")

    @classmethod
    def from_row(cls, row: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryPublic:
        return cls(
            id=row.id,
            webhook_id=row.webhook_id,
            event_type=row.event_type,
            job_id=row.job_id,
            url=row.url,
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at if row.status == DeliveryStatus.PENDING else None,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
            payload=row.payload,
            attempt_log=[AttemptPublic.from_row(a) for a in attempts],
        )


class DeliveryList(BaseModel):
    deliveries: list[DeliveryPublic]
