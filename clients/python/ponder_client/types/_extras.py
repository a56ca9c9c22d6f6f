"""Bodies the API document describes only in words: a line of a batch's results, and a
webhook's payload. Their fields are those the server writes (the tests check a live
server's against them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeAlias

from ._base import PonderModel
from ._models import JobResult, JobUsage

JobStatus: TypeAlias = Literal["queued", "running", "completed", "failed", "cancelled"]
BatchStatus: TypeAlias = Literal["queued", "running", "completed", "cancelled"]
ScheduleRunStatus: TypeAlias = Literal["pending", "started", "skipped"]
Scope: TypeAlias = Literal["admin", "submit", "read"]

# a job in one of these has finished; its event stream ends with an event of that name
TERMINAL_JOB_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


class BatchResult(PonderModel):
    """One item of a batch's results (``GET /v1/batches/{id}/results``)."""

    custom_id: str | None
    """The item's ``custom_id`` (a dataset batch: the dataset item's id)."""

    index: int
    """The item's position in the batch (0 first)."""

    job_id: str
    """The job that runs the item."""

    status: str
    """The job's status (items still running appear with their current status)."""

    stop_reason: str | None
    """Why it stopped, once finished."""

    result: JobResult | None
    """Its best answer, once finished (null if it found none)."""

    usage: JobUsage
    """What it spent."""

    error: str | None
    """What went wrong, for a failed item."""

    original_job_id: str | None
    """For a ``from_jobs`` batch: the job this item re-runs."""


class WebhookEvent(PonderModel):
    """The body of a webhook delivery."""

    type: str
    """``job.completed``, ``job.failed``, ``job.cancelled`` or ``batch.completed``."""

    timestamp: datetime
    """When the event happened."""

    data: dict[str, Any]
    """The job (``id``, ``status``, ``stop_reason``, ``result``, ``usage``, ``error``,
    ``batch_id``, ``metadata``) or the batch (``id``, ``status``, ``counts``, ``usage``)."""
