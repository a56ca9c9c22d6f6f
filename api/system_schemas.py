"""Response body of ``GET /v1/system``, built field by field from :mod:`ponder.system`."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from pydantic import BaseModel, Field

from ponder.system import SystemView


class SliceInFlight(BaseModel):
    """One of your jobs that a worker is running now."""

    job_id: str = Field(description="The job's id.")
    model: str = Field(description="The model profile it uses.")
    strategy: str = Field(description="Its strategy's name.")
    priority: int = Field(description="0 to 9; higher runs sooner.")
    batch_id: str | None = Field(description="Its batch, if it is a batch item.")
    started_at: datetime | None = Field(description="When a worker first started it.")
    lease_expires_at: datetime | None = Field(
        description="When its lease runs out unless the worker renews it (it does, every "
        "third of a lease, while it runs the job)."
    )
    attempt: int = Field(description="How many times a worker has taken the job's lease.")
    slices: int = Field(description="Slices of the job that have ended before this one.")


class WorkerPublic(BaseModel):
    """A worker process."""

    id: str = Field(description="`host:pid`: the machine and process it runs as.")
    hostname: str = Field(description="The machine's host name.")
    pid: int | None = Field(description="Its process id on that machine.")
    queue: str | None = Field(description="The queue it takes job slices from.")
    max_jobs: int | None = Field(
        description="Job slices it runs at once at most (`ponder worker --max-jobs`)."
    )
    started_at: datetime | None = Field(description="When it started.")
    last_seen_at: datetime | None = Field(
        description="Its last heartbeat (every third of a lease). Null for a worker known "
        "only from the job leases it holds (one started before heartbeats existed)."
    )
    alive: bool = Field(
        description="Its heartbeat is newer than one lease length. A worker that stopped "
        "cleanly disappears from the list; one that died shows `alive: false` for an hour "
        "(its jobs go to other workers once their leases run out)."
    )
    slices: int = Field(description="Job slices it runs now, every tenant's counted.")
    your_slices: int = Field(description="Of those, your jobs.")
    your_jobs: list[SliceInFlight] = Field(
        description="Your jobs it runs now (at most the first 100; `your_slices` counts all)."
    )


class PriorityDepthPublic(BaseModel):
    """Jobs waiting for a worker at one priority."""

    priority: int = Field(description="0 to 9; higher runs sooner.")
    waiting: int = Field(
        description="Sent to the queue and not yet taken by a worker (every tenant's)."
    )
    held: int = Field(
        description="Kept back in the database until they may be sent: batch items waiting "
        "for their batch's turn, and jobs of a tenant that already has many in the queue "
        "(every tenant's)."
    )
    yours: int = Field(description="Your jobs among `waiting` and `held`.")
    oldest_since: datetime | None = Field(
        description="Since when the job waiting longest at this priority has waited "
        "(every tenant's; it says nothing about whose job it is)."
    )


class QueuePublic(BaseModel):
    """Jobs waiting for a worker — queued, or between two slices — and jobs running."""

    by_priority: list[PriorityDepthPublic] = Field(
        description="Every priority from 9 (most urgent) to 0."
    )
    waiting: int = Field(description="All `waiting` jobs, every tenant's.")
    held: int = Field(description="All `held` jobs, every tenant's.")
    running: int = Field(description="Job slices running now, every tenant's.")
    oldest_since: datetime | None = Field(
        description="Since when the job waiting longest has waited; null when none waits."
    )
    your_waiting: int = Field(description="Your jobs waiting or held.")
    your_running: int = Field(description="Your jobs running now.")
    your_oldest_job_id: str | None = Field(description="Your job that has waited longest.")
    your_oldest_since: datetime | None = Field(description="Since when it has waited.")


class ModelConcurrency(BaseModel):
    """A model profile and how much of its concurrency is in use."""

    name: str = Field(description="The profile's name (what jobs send as `model`).")
    kind: str = Field(description="`chat` or `reward`.")
    provider: str = Field(description="Its provider (`openai`, `anthropic`, `sim`, ...).")
    max_concurrency: int = Field(description="Calls to it in flight at most.")
    shared_limit: bool = Field(
        description="`max_concurrency` holds across every worker process (counted in the "
        "broker's Redis); false when each process holds it on its own."
    )
    calls_in_flight: int | None = Field(
        description="Calls to it in flight now, across the deployment; null when they are "
        "not counted there (`note` says why)."
    )
    jobs_running: int = Field(description="Job slices running on it now, every tenant's.")
    your_jobs_running: int = Field(description="Of those, your jobs.")
    note: str | None = Field(description="Why `calls_in_flight` is null, if it is.")


class DeliveryCounts(BaseModel):
    """Your webhook deliveries created in a window, by their status now."""

    pending: int = Field(description="Not delivered yet (waiting for an attempt or a retry).")
    delivered: int = Field(description="Answered with a 2xx.")
    failed: int = Field(description="Every retry used up without a 2xx.")
    disabled: int = Field(description="Not sent: the target answered 410 Gone before.")


class DeliverySummary(BaseModel):
    """One of your webhook deliveries."""

    id: str = Field(description="The delivery's id (`GET /v1/deliveries/{id}`).")
    job_id: str | None = Field(description="The job it announces, if any.")
    event_type: str = Field(description="E.g. `job.completed`, `batch.completed`.")
    url: str = Field(description="Where it is sent.")
    status: str = Field(description="`pending`, `delivered`, `failed` or `disabled`.")
    attempts: int = Field(description="Attempts made so far.")
    last_status_code: int | None = Field(description="The last attempt's HTTP status.")
    last_error: str | None = Field(description="The last attempt's error, if it failed.")
    created_at: datetime = Field(description="When the delivery was created.")


class WebhookHealthPublic(BaseModel):
    """Your tenant's webhook deliveries (never another tenant's)."""

    last_hour: DeliveryCounts = Field(description="Deliveries created in the last hour.")
    last_day: DeliveryCounts = Field(description="Deliveries created in the last 24 hours.")
    pending: int = Field(description="Deliveries pending now, however old.")
    retrying: int = Field(description="Of those, deliveries whose last attempt failed.")
    oldest_pending: DeliverySummary | None = Field(
        description="The pending delivery created first; null when none is pending."
    )
    recent_failures: list[DeliverySummary] = Field(
        description="The last 24 hours' deliveries that failed, were not sent (410 Gone) "
        "or are retrying after a failed attempt, newest first (at most 5)."
    )


class SystemPublic(BaseModel):
    """What the deployment is doing now."""

    now: datetime = Field(description="The server's time when it answered (UTC).")
    lease_seconds: float = Field(
        description="How long a job's lease lasts without renewal: a worker silent for "
        "longer is taken for dead."
    )
    workers: list[WorkerPublic] = Field(
        description="Worker processes, live ones first. Empty when no worker has run in "
        "the last hour: jobs then wait in the queue until one starts (`ponder worker`)."
    )
    queue: QueuePublic = Field(description="Jobs waiting for a worker, and jobs running.")
    models: list[ModelConcurrency] = Field(
        description="Every model profile with its concurrency limit and the calls in flight."
    )
    webhooks: WebhookHealthPublic = Field(description="Your webhook deliveries' health.")

    @classmethod
    def from_view(cls, view: SystemView) -> SystemPublic:
        return cls.model_validate(asdict(view))
