"""The batch feeder: batch items are inserted *held* (never published, never touched by
the reaper) and the feeder queues them a few at a time, so a 10 000-item batch occupies
at most ``batch_max_in_flight`` places in the queue and other tenants' jobs — which go
straight to the queue — are never stuck behind it.

Limits, per feed:

- at most ``settings.batch_max_in_flight`` items of one batch queued or running;
- at most ``settings.batch_tenant_max_in_flight`` batch items of one tenant, shared
  between its batches fairly: each free place goes to the batch with the fewest items
  in flight, ties to the batch fed longest ago (round-robin);
- items of a batch go highest ``priority`` first, then in item order, and are published
  with their priority;
- a batch with a ``budget`` cap starts an item only when the cap, minus what finished
  items spent and the budgets reserved by items in flight, covers the item's whole
  budget — its own ``max_tokens`` / ``max_cost_usd``, or, where it sets none, an equal
  share of the cap (``cap / batch_max_in_flight``, held to the tenant's per-job
  ceilings — the same a job may ask for —, which becomes its budget). Like the
  ledger reserving a call's worst case, this means the batch never spends more than
  its cap, crash or not. When nothing is in flight and the next item does not fit, the
  remaining items end ``cancelled`` with stop reason ``budget_exhausted``;
- a tenant that has used up its daily spend (``ponder.quotas``) is fed nothing until
  the next UTC day: its items would stop at their first model call.

The feeder runs right after a batch is created, after each batch item finishes (in the
worker), and on every reaper tick (which also completes batches whose last item ended
without a worker, e.g. cancelled while queued). Feeds of one tenant are serialized by
row locks on its active batches (``SELECT ... FOR UPDATE`` in id order), so two feeders
never overfill a batch. An item fed but lost (its message dropped) is an ordinary queued
job by then and the reaper re-enqueues it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from ponder import metrics
from ponder.batches.store import (
    complete_if_done,
    finish_unclaimed_items,
    held_items,
    in_flight_items,
    unfinished_batch_ids,
)
from ponder.config import Settings
from ponder.quotas import SPEND_USD, TenantLimits, load_limits, used_today
from ponder.tables import Batch, BatchStatus, Job, JobStatus, StopReason, utcnow

log = logging.getLogger(__name__)

# publish(job_id, priority) -> whether the broker took it (Dispatcher.enqueue)
Publish = Callable[[str, int], bool]

_CAPPED = ("max_tokens", "max_cost_usd")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class _Room:
    """What one batch may still be fed in this round."""

    batch: Batch
    in_flight: int
    room: int
    cap: _CapState | None
    fed: list[tuple[str, int]] = field(default_factory=list)
    dry: bool = False  # no more held items, or the cap cannot cover the next one


@dataclass
class _CapState:
    remaining: dict[str, float]  # by budget key: the cap minus spent and reserved
    shares: dict[str, float]  # the budget of an item that sets none in that dimension


@dataclass(frozen=True)
class FeedResult:
    fed: int  # items taken out of hold (and published, unless the broker refused)
    published: int
    fed_batches: frozenset[str]  # the batches those items belong to
    exhausted: list[str]  # batches whose budget cap ran out (their held items were ended)
    deliveries: list[str]  # outbox rows written (items ended by an exhausted cap)


def feed(
    sessions: sessionmaker[Session],
    publish: Publish,
    settings: Settings,
    *,
    tenant_id: str | None = None,
) -> FeedResult:
    """Top up the in-flight items of every active batch (of ``tenant_id`` only, if
    given) and publish them. Safe to run concurrently from any number of processes."""
    exhausted: list[str] = []
    with sessions() as s, s.begin():
        query = select(Batch).where(Batch.status.in_(BatchStatus.ACTIVE))
        if tenant_id is not None:
            query = query.where(Batch.tenant_id == tenant_id)
        batches = list(s.execute(query.order_by(Batch.id).with_for_update()).scalars())
        if not batches:
            return FeedResult(0, 0, frozenset(), [], [])
        in_flight = _in_flight(s, batches)
        now = utcnow()
        by_tenant: dict[str, list[Batch]] = {}
        for batch in batches:
            by_tenant.setdefault(batch.tenant_id, []).append(batch)
        fed: list[tuple[str, int]] = []
        fed_batches: set[str] = set()
        for tenant_batches in by_tenant.values():
            fed.extend(
                _feed_tenant(s, tenant_batches, in_flight, settings, now, exhausted, fed_batches)
            )
    published = sum(1 for job_id, priority in fed if publish(job_id, priority))
    deliveries: list[str] = []
    for batch_id in exhausted:
        deliveries.extend(_end_for_budget(sessions, batch_id))
    return FeedResult(len(fed), published, frozenset(fed_batches), exhausted, deliveries)


def on_item_finished(
    sessions: sessionmaker[Session],
    publish: Publish,
    settings: Settings,
    job_id: str,
    *,
    batch_id: str | None = None,
    tenant_id: str | None = None,
) -> list[str]:
    """After a job ended: if it is a batch item, feed its tenant's batches (a place in
    flight just freed up) and complete its batch if that was the last item. The worker
    passes the job's ``batch_id`` and ``tenant_id`` (it has them); without them they are
    looked up. Returns the outbox rows written (to hand to a delivery task now). Never
    raises: the reaper tick does the same work if this fails."""
    try:
        if batch_id is None or tenant_id is None:
            with sessions() as s:
                row = s.execute(select(Job.batch_id, Job.tenant_id).where(Job.id == job_id)).first()
            if row is None or row.batch_id is None:
                return []
            batch_id, tenant_id = row.batch_id, row.tenant_id
        result = feed(sessions, publish, settings, tenant_id=tenant_id)
        if batch_id in result.fed_batches:
            return result.deliveries  # items were just fed: the batch is not finished
        done = complete_if_done(sessions, batch_id)
        return result.deliveries + (done.deliveries if done else [])
    except Exception:
        log.warning("feeding after job %s failed; the reaper will catch up", job_id, exc_info=True)
        return []


def tick(sessions: sessionmaker[Session], publish: Publish, settings: Settings) -> dict[str, int]:
    """The reaper's periodic pass: feed every tenant's batches, then complete the
    batches whose items have all finished."""
    result = feed(sessions, publish, settings)
    completed = 0
    for batch_id in unfinished_batch_ids(sessions):
        if complete_if_done(sessions, batch_id) is not None:
            completed += 1
    return {"batch_items_fed": result.fed, "batches_completed": completed}


# ---------------------------------------------------------------- one tenant


def _in_flight(s: Session, batches: list[Batch]) -> dict[str, int]:
    tenants = sorted({b.tenant_id for b in batches})
    rows = s.execute(
        select(Job.batch_id, func.count())
        .where(
            Job.tenant_id.in_(tenants),
            Job.batch_id.in_([b.id for b in batches]),
            in_flight_items(),
        )
        .group_by(Job.batch_id)
    ).all()
    return {str(batch_id): int(n) for batch_id, n in rows}


def _feed_tenant(
    s: Session,
    batches: list[Batch],
    in_flight: dict[str, int],
    settings: Settings,
    now: datetime,
    exhausted: list[str],
    fed_batches: set[str],
) -> list[tuple[str, int]]:
    limits = load_limits(s, batches[0].tenant_id, settings)
    if limits.spend_per_day_usd is not None and (
        used_today(s, limits.tenant_id, SPEND_USD, now=now.timestamp()) >= limits.spend_per_day_usd
    ):
        return []  # its daily spend is used up: its items wait for the next day
    tenant_room = settings.batch_tenant_max_in_flight - sum(in_flight.get(b.id, 0) for b in batches)
    rooms = []
    for batch in sorted(batches, key=lambda b: (b.last_fed_at or _EPOCH, b.created_at, b.id)):
        n = in_flight.get(batch.id, 0)
        cap = _cap_state(s, batch, settings, limits) if batch.budget else None
        rooms.append(_Room(batch, n, settings.batch_max_in_flight - n, cap))
    # fair shares: each place to the batch with the fewest items in flight (ties: the
    # one fed longest ago, as ``rooms`` is ordered), until the tenant's room or the items
    # run out; then the items are taken in one query per batch
    while tenant_room > 0:
        candidates = [r for r in rooms if r.room > 0 and not r.dry]
        if not candidates:
            break
        share = {r.batch.id: 0 for r in candidates}
        for _ in range(tenant_room):
            open_ = [r for r in candidates if share[r.batch.id] < r.room]
            if not open_:
                break
            best = min(open_, key=lambda r: r.in_flight + len(r.fed) + share[r.batch.id])
            share[best.batch.id] += 1
        for r in candidates:
            taken = _take(s, r, share[r.batch.id])
            r.room -= taken
            tenant_room -= taken
            if taken < share[r.batch.id]:
                r.dry = True
    fed: list[tuple[str, int]] = []
    for r in rooms:
        if r.fed:
            values: dict[str, Any] = {"last_fed_at": now, "updated_at": now}
            if r.batch.status == BatchStatus.QUEUED:
                values["status"] = BatchStatus.RUNNING
            s.execute(update(Batch).where(Batch.id == r.batch.id).values(**values))
            fed.extend(r.fed)
            fed_batches.add(r.batch.id)
        elif r.cap is not None and r.dry and r.in_flight == 0 and _has_held(s, r.batch.id):
            exhausted.append(r.batch.id)  # the cap cannot cover the next item, ever
    fed.sort(key=lambda f: -f[1])  # publish the most urgent first
    return fed


def _take(s: Session, r: _Room, n: int) -> int:
    """Take up to ``n`` held items of the batch out of hold (highest priority first, then
    item order); returns how many."""
    if n <= 0:
        return 0
    taken = 0
    below: int | None = None
    now = utcnow()
    while taken < n:
        # the highest priority still held (a backward scan of ix_jobs_batch_held)
        level = (
            select(Job.priority)
            .where(held_items(r.batch.id))
            .order_by(Job.priority.desc())
            .limit(1)
        )
        if below is not None:
            level = level.where(Job.priority < below)
        priority = s.execute(level).scalar()
        if priority is None:
            break
        below = int(priority)
        rows = s.execute(
            select(Job.id, Job.budget)
            .where(held_items(r.batch.id), Job.priority == below)
            .order_by(Job.item_index)
            .limit(n - taken)
            .with_for_update(skip_locked=True)
        ).all()
        released = {"held": False, "enqueued_at": now, "updated_at": now}
        if r.cap is None:
            ids = [str(row[0]) for row in rows]
            if ids:
                s.execute(update(Job).where(Job.id.in_(ids)).values(**released))
            r.fed.extend((job_id, below) for job_id in ids)
            taken += len(ids)
        else:
            for job_id, budget in rows:
                reserved = _afford(r.cap, budget or {})
                if reserved is None:
                    r.dry = True
                    return taken
                s.execute(update(Job).where(Job.id == job_id).values(**released, budget=reserved))
                r.fed.append((str(job_id), below))
                taken += 1
    return taken


def _has_held(s: Session, batch_id: str) -> bool:
    return s.execute(select(Job.id).where(held_items(batch_id)).limit(1)).first() is not None


# ---------------------------------------------------------------- batch budget cap


def _cap_state(s: Session, batch: Batch, settings: Settings, tenant: TenantLimits) -> _CapState:
    """What the batch cap leaves for new items: the cap minus what finished items spent
    minus the budgets of items in flight (their worst case, reserved). An item that sets
    no limit in a capped dimension gets an equal share of the cap, at most the tenant's
    per-job ceiling (what it could have asked for as a job)."""
    limits = {k: float(v) for k, v in (batch.budget or {}).items() if k in _CAPPED and v}
    spent = s.execute(
        select(
            func.coalesce(func.sum(Job.usage_tokens), 0),
            func.coalesce(func.sum(Job.usage_cost_usd), 0.0),
        ).where(Job.batch_id == batch.id, Job.status.in_(list(JobStatus.TERMINAL)))
    ).one()
    used = {"max_tokens": float(spent[0]), "max_cost_usd": float(spent[1])}
    flying = s.execute(
        select(Job.budget).where(
            Job.tenant_id == batch.tenant_id, Job.batch_id == batch.id, in_flight_items()
        )
    ).scalars()
    for budget in flying:
        for key in limits:
            used[key] += float((budget or {}).get(key) or 0)
    ceilings = tenant.ceilings()
    # (a cap so small its share rounds to 0 is the share: an item's cap must be positive)
    shares = {k: min(v / settings.batch_max_in_flight or v, ceilings[k]) for k, v in limits.items()}
    if "max_tokens" in shares:
        shares["max_tokens"] = max(1.0, math.floor(shares["max_tokens"]))
    return _CapState({k: limits[k] - used[k] for k in limits}, shares)


def _afford(cap: _CapState, budget: dict[str, Any]) -> dict[str, Any] | None:
    """The item's budget (with the cap's share set where it has none), reserved out of
    the cap; None if the cap's remainder does not cover it."""
    out = dict(budget)
    for key, share in cap.shares.items():
        need = float(budget.get(key) or share)
        if cap.remaining[key] < need:
            return None
        out[key] = int(need) if key == "max_tokens" else need
    for key in cap.shares:
        cap.remaining[key] -= float(out[key])
    return out


def _end_for_budget(sessions: sessionmaker[Session], batch_id: str) -> list[str]:
    with sessions() as s, s.begin():
        finished, deliveries = finish_unclaimed_items(
            s,
            batch_id,
            status=JobStatus.CANCELLED,
            stop_reason=StopReason.BUDGET_EXHAUSTED,
            error="the batch's budget cap was used up before this item could start",
            only_held=True,
        )
    metrics.job_finished(JobStatus.CANCELLED, StopReason.BUDGET_EXHAUSTED, finished)
    done = complete_if_done(sessions, batch_id)
    return deliveries + (done.deliveries if done else [])
