"""Webhook events in OpenAI's shape, for jobs whose ``webhook_format`` is ``openai``
(jobs made through the OpenAI-compatible surface, unless they asked for Ponder's own).

The body is what OpenAI sends for a background response:
``{"id": "evt_…", "object": "event", "created_at": <unix seconds>,
"type": "response.completed", "data": {"id": "resp_…"}}``, signed with the tenant's
secrets exactly like every Ponder webhook (Standard Webhooks), so the ``openai``
package's ``client.webhooks.unwrap(body, headers, secret=...)`` verifies and parses it.
The event's type follows the job's end: ``response.completed`` (an answer it stood
behind: verified, or the search ran its course), ``response.incomplete`` (stopped by its
budget, its deadline or the tenant's daily spend: the best answer so far),
``response.failed`` and ``response.cancelled``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ponder import openai_ids
from ponder.tables import JobStatus, StopReason

OPENAI = "openai"
FORMATS = (OPENAI,)

# stop reasons after which a completed job's answer is the best so far, not a final one
LIMIT_STOPS = frozenset(
    {StopReason.BUDGET_EXHAUSTED, StopReason.DEADLINE, StopReason.DAILY_SPEND_LIMIT}
)


def response_status(status: str, stop_reason: str | None) -> str:
    """The OpenAI response status of a job in ``status`` (stopped for ``stop_reason``)."""
    if status == JobStatus.QUEUED:
        return "queued"
    if status == JobStatus.RUNNING:
        return "in_progress"
    if status == JobStatus.COMPLETED:
        return "incomplete" if stop_reason in LIMIT_STOPS else "completed"
    if status == JobStatus.CANCELLED:
        return "cancelled"
    return "failed"


def event_type(status: str, stop_reason: str | None) -> str:
    """``response.<status>`` for a job that has ended."""
    return "response." + response_status(status, stop_reason)


def payload(message_id: str, job_id: str, *, kind: str, at: datetime) -> dict[str, Any]:
    """The body of one event; its id follows the delivery's ``webhook-id``."""
    return {
        "id": openai_ids.EVENT + message_id.removeprefix("msg_"),
        "object": "event",
        "created_at": int(at.timestamp()),
        "type": kind,
        "data": {"id": openai_ids.public_id(openai_ids.RESPONSE, job_id)},
    }
