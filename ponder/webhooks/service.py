"""The webhook use cases of a tenant: its signing secrets (list, rotate) and its
deliveries with their attempt logs (a job's, one, send one again). ``/v1/webhook-secrets``
and ``/v1/deliveries`` are thin adapters over them.

They raise :class:`ponder.errors.NotFound` for a job or delivery the tenant does not
have."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ponder.config import Settings
from ponder.errors import NotFound
from ponder.queue import JobQueue
from ponder.tables import (
    Job,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSecret,
    canonical_id,
    utcnow,
)
from ponder.webhooks.delivery import active_secrets, redeliver, rotate_secret, take_unsent


@dataclass(frozen=True)
class DeliveryLog:
    """A delivery and every attempt to send it, oldest first."""

    delivery: WebhookDelivery
    attempts: list[WebhookAttempt]


def list_secrets(sessions: sessionmaker[Session], tenant_id: str) -> list[WebhookSecret]:
    """Every secret that signs the tenant's deliveries now, newest first; the tenant's
    first secret is created (committed) if it has none."""
    with sessions() as s, s.begin():
        return active_secrets(s, tenant_id, utcnow())


def rotate_secrets(
    sessions: sessionmaker[Session],
    tenant_id: str,
    *,
    grace_seconds: float | None,
    settings: Settings,
) -> list[WebhookSecret]:
    """Create a new signing secret, committed; the current ones keep signing for
    ``grace_seconds`` (None: the server's ``webhook_secret_grace_seconds``). Every
    secret that signs from now on, newest first."""
    grace = settings.webhook_secret_grace_seconds if grace_seconds is None else grace_seconds
    now = utcnow()
    with sessions() as s, s.begin():
        active_secrets(s, tenant_id, now)  # the tenant's first secret, if it had none
        rotate_secret(s, tenant_id, grace_seconds=grace, now=now)
        # a secret retired at once (grace 0) no longer signs at this instant
        return active_secrets(s, tenant_id, now + timedelta(microseconds=1))


def job_deliveries(session: Session, tenant_id: str, job_id: str) -> list[DeliveryLog]:
    """Every delivery of the tenant's job, oldest first (none when the job has no
    ``webhook_url`` or has not ended)."""
    wanted = canonical_id(job_id)
    found = None
    if wanted is not None:
        found = session.scalars(
            select(Job.id).where(Job.id == wanted, Job.tenant_id == tenant_id)
        ).one_or_none()
    if found is None:
        raise NotFound(f"no job with id {job_id[:64]!r} belongs to this API key's tenant")
    rows = list(
        session.execute(
            select(WebhookDelivery)
            .where(WebhookDelivery.job_id == found)
            .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        ).scalars()
    )
    return _with_attempts(session, rows)


def get_delivery(session: Session, tenant_id: str, delivery_id: str) -> DeliveryLog:
    """The tenant's delivery and its attempts."""
    return _with_attempts(session, [_delivery(session, tenant_id, delivery_id)])[0]


def send_again(
    session: Session,
    sessions: sessionmaker[Session],
    tenant_id: str,
    delivery_id: str,
    *,
    queue: JobQueue,
) -> DeliveryLog:
    """Send the tenant's delivery again now, whatever its status: a fresh retry
    schedule, the same ``webhook-id``, its URL re-enabled if a 410 had disabled it
    (committed in a transaction of its own, then handed to ``queue``). The delivery as
    it is then, read with ``session``."""
    found_id = _delivery(session, tenant_id, delivery_id).id
    session.rollback()
    with sessions() as s, s.begin():
        row = s.get(WebhookDelivery, found_id)
        assert row is not None
        redeliver(s, row, now=utcnow())
    for again in take_unsent(sessions, ids=[found_id]):
        queue.enqueue_delivery(again)
    session.expire_all()
    return get_delivery(session, tenant_id, found_id)


def _delivery(session: Session, tenant_id: str, delivery_id: str) -> WebhookDelivery:
    row = session.get(WebhookDelivery, delivery_id[:64])
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"no delivery with id {delivery_id[:64]!r} belongs to this API key's tenant")
    return row


def _with_attempts(session: Session, deliveries: list[WebhookDelivery]) -> list[DeliveryLog]:
    ids = [d.id for d in deliveries]
    attempts = (
        session.execute(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(ids))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
        )
        .scalars()
        .all()
        if ids
        else []
    )
    by_delivery: dict[str, list[WebhookAttempt]] = {}
    for a in attempts:
        by_delivery.setdefault(a.delivery_id, []).append(a)
    return [DeliveryLog(d, by_delivery.get(d.id, [])) for d in deliveries]
