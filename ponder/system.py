"""What the deployment is doing now, as one tenant may see it (``GET /v1/system``, the
dashboard's System page): the worker processes and the job slices they run, the jobs
waiting for a worker by priority, each model profile's concurrency in use, and the
tenant's webhook deliveries.

What a tenant sees of the others: numbers only. Facts about the shared machinery
(workers — host name, process id, heartbeat —, how many slices each runs, how many jobs
wait at each priority and since when, how many calls each model has in flight) are
counted over every tenant, since they say nothing about whose work it is. Anything that
identifies work — job ids, their strategies, batches, webhook deliveries — is the
tenant's own only (the ``your_*`` fields, and the whole webhook section).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, func, or_, select
from sqlalchemy.orm import Session

from ponder.config import Settings
from ponder.llm.limits import SlotGauge
from ponder.llm.profiles import ModelProfile
from ponder.tables import DeliveryStatus, Job, JobStatus, WebhookDelivery, Worker, utcnow
from ponder.workers import FORGET_AFTER, worker_of

log = logging.getLogger(__name__)

# the tenant's own job slices listed per worker, at most (the count is always whole)
MAX_LISTED_SLICES = 100
# the tenant's recent failed deliveries listed, at most
MAX_LISTED_FAILURES = 5
PRIORITIES = range(10)

# every job slice running now: its lease owner, its model, whether it is the tenant's
Running = list[tuple[str, str, bool]]


@dataclass(frozen=True)
class SliceView:
    """One of the tenant's jobs a worker is running now."""

    job_id: str
    model: str
    strategy: str
    priority: int
    batch_id: str | None
    started_at: datetime | None
    lease_expires_at: datetime | None
    attempt: int
    slices: int


@dataclass
class WorkerView:
    id: str
    hostname: str
    pid: int | None
    queue: str | None
    max_jobs: int | None
    started_at: datetime | None
    last_seen_at: datetime | None  # None: known only from the leases it holds
    alive: bool
    slices: int = 0  # job slices it runs now, every tenant's
    your_slices: int = 0
    your_jobs: list[SliceView] = field(default_factory=list)


@dataclass(frozen=True)
class PriorityDepth:
    priority: int
    waiting: int  # sent to the queue, not yet taken by a worker (every tenant)
    held: int  # kept in the database until the batch feeder or fairness sends them
    yours: int  # the tenant's, waiting or held
    oldest_since: datetime | None  # the longest wait at this priority began then


@dataclass(frozen=True)
class QueueView:
    by_priority: list[PriorityDepth]
    waiting: int
    held: int
    running: int  # slices running now, every tenant's
    oldest_since: datetime | None
    your_waiting: int
    your_running: int
    your_oldest_job_id: str | None
    your_oldest_since: datetime | None


@dataclass(frozen=True)
class ModelView:
    name: str
    kind: str  # chat | reward
    provider: str
    max_concurrency: int
    shared_limit: bool  # max_concurrency holds across every worker process
    calls_in_flight: int | None  # slots held now (None: not counted, see ``note``)
    jobs_running: int  # slices running on it now, every tenant's
    your_jobs_running: int
    note: str | None


@dataclass(frozen=True)
class DeliveryFailure:
    id: str
    job_id: str | None
    event_type: str
    url: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime


@dataclass(frozen=True)
class DeliveryWindow:
    pending: int
    delivered: int
    failed: int
    disabled: int


@dataclass(frozen=True)
class WebhookHealth:
    last_hour: DeliveryWindow
    last_day: DeliveryWindow
    pending: int  # pending now, whenever created
    retrying: int  # of those, with a failed attempt behind them
    oldest_pending: DeliveryFailure | None
    recent_failures: list[DeliveryFailure]


@dataclass(frozen=True)
class SystemView:
    now: datetime
    lease_seconds: float
    workers: list[WorkerView]
    queue: QueueView
    models: list[ModelView]
    webhooks: WebhookHealth


def system_view(
    session: Session,
    tenant_id: str,
    settings: Settings,
    models: dict[str, ModelProfile],
    gauge: SlotGauge,
) -> SystemView:
    """Everything :mod:`ponder.system` shows, for ``tenant_id``. On Postgres its queries
    read one snapshot (a repeatable-read transaction), so its counts agree with each
    other; ``session`` should not have begun a transaction yet."""
    if not session.in_transaction() and session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    now = utcnow()
    live_lease = and_(
        Job.status == JobStatus.RUNNING,
        Job.lease_owner.is_not(None),
        Job.lease_expires_at >= now,
    )
    running: Running = [
        (str(owner), model, bool(own))
        for owner, model, own in session.execute(
            select(Job.lease_owner, Job.model, Job.tenant_id == tenant_id).where(live_lease)
        )
    ]
    mine: Sequence[Row[Any]] = session.execute(
        select(
            Job.id,
            Job.lease_owner,
            Job.model,
            Job.strategy,
            Job.priority,
            Job.batch_id,
            Job.started_at,
            Job.lease_expires_at,
            Job.attempt,
            Job.slices,
        )
        .where(live_lease, Job.tenant_id == tenant_id)
        .order_by(Job.started_at, Job.id)
    ).all()
    workers = _workers(session, now, settings.lease_seconds, running, mine)
    return SystemView(
        now=now,
        lease_seconds=settings.lease_seconds,
        workers=workers,
        queue=_queue(session, tenant_id, now, running),
        models=_models(models, running, gauge, settings),
        webhooks=_webhooks(session, tenant_id, now),
    )


def _workers(
    session: Session,
    now: datetime,
    lease_seconds: float,
    running: Running,
    mine: Sequence[Row[Any]],
) -> list[WorkerView]:
    views: dict[str, WorkerView] = {}
    for row in session.scalars(select(Worker).where(Worker.last_seen_at >= now - FORGET_AFTER)):
        views[row.id] = WorkerView(
            id=row.id,
            hostname=row.hostname,
            pid=row.pid,
            queue=row.queue,
            max_jobs=row.max_jobs,
            started_at=row.started_at,
            last_seen_at=row.last_seen_at,
            alive=row.last_seen_at >= now - timedelta(seconds=lease_seconds),
        )

    def view(owner: str) -> WorkerView:
        wid = worker_of(owner)
        found = views.get(wid)
        if found is None:  # a worker without a heartbeat row: its live lease shows it
            host, _, pid = wid.rpartition(":")
            found = views[wid] = WorkerView(
                id=wid,
                hostname=host or wid,
                pid=int(pid) if pid.isdigit() else None,
                queue=None,
                max_jobs=None,
                started_at=None,
                last_seen_at=None,
                alive=True,
            )
        return found

    for owner, _model, is_mine in running:
        w = view(owner)
        w.slices += 1
        w.your_slices += int(is_mine)
    for r in mine:
        w = view(r.lease_owner)
        if len(w.your_jobs) < MAX_LISTED_SLICES:
            w.your_jobs.append(
                SliceView(
                    job_id=r.id,
                    model=r.model,
                    strategy=str((r.strategy or {}).get("name", "")),
                    priority=r.priority,
                    batch_id=r.batch_id,
                    started_at=r.started_at,
                    lease_expires_at=r.lease_expires_at,
                    attempt=r.attempt,
                    slices=r.slices,
                )
            )
    return sorted(views.values(), key=lambda w: (not w.alive, w.hostname, w.pid or 0, w.id))


def _queue(session: Session, tenant_id: str, now: datetime, running: Running) -> QueueView:
    """Jobs waiting for a worker: queued, or between two slices (running without a live
    lease: handed back, or their worker died and the reaper will send them again)."""
    waiting_for_worker = and_(
        Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
        or_(Job.lease_owner.is_(None), Job.lease_expires_at < now),
    )
    since = func.min(func.coalesce(Job.enqueued_at, Job.created_at))
    is_mine = Job.tenant_id == tenant_id
    rows = session.execute(
        select(Job.priority, Job.held, func.count(), func.count().filter(is_mine), since)
        .where(waiting_for_worker)
        .group_by(Job.priority, Job.held)
    ).all()
    waiting: Counter[int] = Counter()
    held: Counter[int] = Counter()
    yours: Counter[int] = Counter()
    oldest: dict[int, datetime] = {}
    for priority, is_held, count, own, first in rows:
        (held if is_held else waiting)[priority] += count
        yours[priority] += own
        if first is not None and (priority not in oldest or first < oldest[priority]):
            oldest[priority] = first
    shown = sorted(set(PRIORITIES) | set(waiting) | set(held), reverse=True)
    by_priority = [PriorityDepth(p, waiting[p], held[p], yours[p], oldest.get(p)) for p in shown]
    own_oldest = session.execute(
        select(Job.id, func.coalesce(Job.enqueued_at, Job.created_at).label("since"))
        .where(waiting_for_worker, is_mine)
        .order_by("since", Job.id)
        .limit(1)
    ).first()
    return QueueView(
        by_priority=by_priority,
        waiting=sum(waiting.values()),
        held=sum(held.values()),
        running=len(running),
        oldest_since=min(oldest.values(), default=None),
        your_waiting=sum(yours.values()),
        your_running=sum(1 for _owner, _model, own in running if own),
        your_oldest_job_id=None if own_oldest is None else own_oldest.id,
        your_oldest_since=None if own_oldest is None else own_oldest.since,
    )


def _models(
    models: dict[str, ModelProfile],
    running: Running,
    gauge: SlotGauge,
    settings: Settings,
) -> list[ModelView]:
    jobs: Counter[str] = Counter()
    yours: Counter[str] = Counter()
    for _owner, model, own in running:
        jobs[model] += 1
        yours[model] += int(own)
    shared = [p.name for p in models.values() if _takes_slots(p)]
    held: dict[str, int] | None = None
    error: str | None = None
    if gauge.shared:
        try:
            held = gauge.held(shared)
        except Exception as exc:  # Redis away: the page still shows the rest
            log.warning("could not read the models' concurrency slots: %s", exc)
            error = f"could not be counted: the broker's Redis did not answer ({exc})"
    views = []
    for p in models.values():
        takes = _takes_slots(p)
        note: str | None = None
        in_flight: int | None = None
        if not takes:
            note = (
                "runs inside each worker process: max_concurrency holds per process, calls "
                "are not counted across the deployment"
            )
        elif not gauge.shared:
            note = "without a Redis broker each worker process counts its own calls"
        elif held is None:
            note = error
        else:
            in_flight = held.get(p.name, 0)
        views.append(
            ModelView(
                name=p.name,
                kind="reward" if p.spec.is_reward else "chat",
                provider=p.provider,
                max_concurrency=p.max_concurrency,
                shared_limit=takes and gauge.shared,
                calls_in_flight=in_flight,
                jobs_running=jobs[p.name],
                your_jobs_running=yours[p.name],
                note=note,
            )
        )
    return views


def _takes_slots(profile: ModelProfile) -> bool:
    """Whether the profile's calls take the deployment-wide slots (HTTP chat models do;
    in-process and reward models do not)."""
    spec = profile.spec
    return spec.chat is not None and spec.in_process is None


def _webhooks(session: Session, tenant_id: str, now: datetime) -> WebhookHealth:
    day_ago, hour_ago = now - timedelta(days=1), now - timedelta(hours=1)
    mine = WebhookDelivery.tenant_id == tenant_id
    rows = session.execute(
        select(
            WebhookDelivery.status,
            func.count(),
            func.count().filter(WebhookDelivery.created_at >= hour_ago),
        )
        .where(mine, WebhookDelivery.created_at >= day_ago)
        .group_by(WebhookDelivery.status)
    ).all()
    day: Counter[str] = Counter()
    hour: Counter[str] = Counter()
    for status, count, recent in rows:
        day[status] += count
        hour[status] += recent
    pending_rows = session.execute(
        select(func.count(), func.count().filter(WebhookDelivery.retries > 0)).where(
            mine, WebhookDelivery.status == DeliveryStatus.PENDING
        )
    ).one()
    oldest = session.scalars(
        select(WebhookDelivery)
        .where(mine, WebhookDelivery.status == DeliveryStatus.PENDING)
        .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        .limit(1)
    ).first()
    failures = session.scalars(
        select(WebhookDelivery)
        .where(
            mine,
            WebhookDelivery.created_at >= day_ago,
            or_(
                WebhookDelivery.status.in_([DeliveryStatus.FAILED, DeliveryStatus.DISABLED]),
                and_(
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.retries > 0,
                ),
            ),
        )
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
        .limit(MAX_LISTED_FAILURES)
    ).all()
    return WebhookHealth(
        last_hour=_window(hour),
        last_day=_window(day),
        pending=int(pending_rows[0]),
        retrying=int(pending_rows[1]),
        oldest_pending=None if oldest is None else _delivery(oldest),
        recent_failures=[_delivery(d) for d in failures],
    )


def _window(counts: Counter[str]) -> DeliveryWindow:
    return DeliveryWindow(
        pending=counts[DeliveryStatus.PENDING],
        delivered=counts[DeliveryStatus.DELIVERED],
        failed=counts[DeliveryStatus.FAILED],
        disabled=counts[DeliveryStatus.DISABLED],
    )


def _delivery(d: WebhookDelivery) -> DeliveryFailure:
    return DeliveryFailure(
        id=d.id,
        job_id=d.job_id,
        event_type=d.event_type,
        url=d.url,
        status=d.status,
        attempts=d.attempts,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        created_at=d.created_at,
    )
