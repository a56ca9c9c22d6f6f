"""What a batch is made of: the request shapes shared by ``POST /v1/batches``, schedules
(which store a :class:`BatchTemplate` and create a batch from it at each fire time) and
:func:`ponder.batches.service.create_batch`.

Item validation is *not* here: every item is checked exactly like a ``POST /v1/jobs``
body by a :class:`JobValidator` the caller passes in (the API's, see
``ponder.submission.job_validator``), so a batch item is accepted if and only if the same
body would be accepted as a single job.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ponder.budget import BudgetLimits
from ponder.jsonlimits import check_storable

MAX_CUSTOM_ID_CHARS = 200
MAX_BATCH_METADATA_BYTES = 16 * 1024
MAX_URL_CHARS = 2048

JobStatusName = Literal["queued", "running", "completed", "failed", "cancelled"]


class DefaultStrategy(BaseModel):
    """The strategy items run with unless they name their own."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=100, description="A strategy name from `GET /v1/strategies`."
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="The strategy's parameters (see `GET /v1/strategies`); omitted ones "
        "take their defaults.",
    )


class JobDefaults(BaseModel):
    """Job fields shared by every item. An item's own field wins over the default;
    `metadata` is merged key by key (the item's keys win). For a `from_jobs` batch these
    fields instead *replace* the original job's (that is what the re-run changes)."""

    model_config = ConfigDict(extra="forbid")

    strategy: DefaultStrategy | None = Field(
        default=None, description="Strategy for items that name none (required then)."
    )
    model: str | None = Field(
        default=None, max_length=200, description="Model profile name (`GET /v1/models`)."
    )
    verifier: dict[str, Any] | None = Field(
        default=None,
        description='Verifier spec, e.g. `{"type": "game24"}`; omitted: each problem\'s '
        "default verifier.",
    )
    budget: BudgetLimits | None = Field(
        default=None,
        description="Per-item budget (each item's own hard cap), as for a single job.",
    )
    webhook_url: str | None = Field(
        default=None,
        max_length=MAX_URL_CHARS,
        description="Receives each item's own `job.*` events. (The batch's "
        "`batch.completed` goes to the batch-level `webhook_url`.)",
    )
    priority: int | None = Field(
        default=None, ge=0, le=9, strict=True, description="0 to 9; higher runs sooner."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Merged into every item's `metadata`."
    )

    def as_body(self) -> dict[str, Any]:
        """The defaults as job-body fields (only those given)."""
        body = self.model_dump(mode="json", exclude_none=True, exclude={"metadata"})
        return body


class JobFilter(BaseModel):
    """Which past jobs of the tenant a `from_jobs` batch re-runs (all conditions must
    hold). Jobs are taken oldest first."""

    model_config = ConfigDict(extra="forbid")

    status: list[JobStatusName] | None = Field(
        default=None,
        min_length=1,
        description="Only jobs with one of these statuses. Default: finished jobs "
        "(`completed`, `failed`, `cancelled`).",
    )
    created_after: datetime | None = Field(
        default=None, description="Only jobs submitted at or after this time (ISO 8601)."
    )
    created_before: datetime | None = Field(
        default=None, description="Only jobs submitted before this time (ISO 8601)."
    )
    batch_id: str | None = Field(
        default=None, max_length=64, description="Only the items of this batch."
    )
    metadata: dict[str, Any] | None = Field(
        default=None,
        description='Only jobs whose metadata contains this object (e.g. `{"run": "a"}` '
        "matches jobs whose metadata has `run` = `a`, nested objects likewise).",
    )
    limit: int | None = Field(
        default=None,
        ge=1,
        strict=True,
        description="Re-run at most this many jobs (the oldest matching). Without it, a "
        "filter matching more jobs than a batch may hold is refused.",
    )

    @field_validator("created_after", "created_before")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2026-01-31T12:00:00Z")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> JobFilter:
        if (
            self.created_after is not None
            and self.created_before is not None
            and self.created_after >= self.created_before
        ):
            raise ValueError("created_after must be earlier than created_before")
        return self


class BatchBudget(BaseModel):
    """A cap on what the whole batch may spend, summed over its items."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(
        default=None, gt=0, strict=True, description="Tokens across all items."
    )
    max_cost_usd: float | None = Field(
        default=None, gt=0, strict=True, description="US dollars across all items."
    )

    @model_validator(mode="after")
    def _some_cap(self) -> BatchBudget:
        if self.max_tokens is None and self.max_cost_usd is None:
            raise ValueError("set max_tokens and/or max_cost_usd, or leave `budget` out")
        if self.max_cost_usd is not None and not math.isfinite(self.max_cost_usd):
            raise ValueError("max_cost_usd must be a finite number")
        return self


class BatchTemplate(BaseModel):
    """A batch without inline items: its problems come from a `dataset` or from past jobs
    (`from_jobs`). Schedules store this and create a batch from it at each fire time."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Run every problem of a dataset: an uploaded dataset's id or name "
        "(`GET /v1/datasets`) or a built-in one (`game24`, `game24-easy`, "
        "`arithmetic-d4`, ...). Needs `defaults.strategy`.",
    )
    from_jobs: JobFilter | None = Field(
        default=None,
        description="Re-run the problems of past jobs, changing what `defaults` gives "
        "(strategy, model, budget, ...); the rest is copied from each original job. The "
        "batch then reports solved/tokens before vs after.",
    )
    defaults: JobDefaults = Field(
        default_factory=JobDefaults, description="Job fields shared by every item."
    )
    budget: BatchBudget | None = Field(
        default=None,
        description="Cap on the batch's total spend. An item starts only if what the cap "
        "has left (minus what finished items spent and the budgets of running items) "
        "covers its whole budget; an item that sets no limit in a capped dimension gets "
        "an equal share of the cap (cap / the server's batch_max_in_flight) as its limit. "
        "So the cap is never exceeded. Items that no longer fit end `cancelled` with "
        "stop_reason `budget_exhausted`, never started.",
    )
    webhook_url: str | None = Field(
        default=None,
        max_length=MAX_URL_CHARS,
        description="Receives one signed `batch.completed` event when every item has "
        "finished (completed, failed or cancelled).",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Any JSON object (at most 16 KiB), stored on the batch and returned.",
    )

    @field_validator("*", mode="before")
    @classmethod
    def _storable(cls, value: Any, info: ValidationInfo) -> Any:
        """Refuse what the database cannot store faithfully (NUL characters, NaN and
        Infinity) and values nested deeper than :data:`ponder.jsonlimits.MAX_DEPTH`.
        Inline ``items`` are checked one by one, as jobs."""
        if info.field_name == "items":
            return value
        return check_storable(value, where=info.field_name or "")

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        return None if url is None else check_http_url(url)

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_BATCH_METADATA_BYTES:
            raise ValueError(
                f"is {size} bytes as JSON; at most {MAX_BATCH_METADATA_BYTES} bytes are allowed"
            )
        return metadata

    @classmethod
    def _source_fields(cls) -> tuple[str, ...]:
        return ("dataset", "from_jobs")

    @model_validator(mode="after")
    def _one_source(self) -> BatchTemplate:
        fields = self._source_fields()
        given = [f for f in fields if getattr(self, f) is not None]
        if len(given) != 1:
            names = ", ".join(f"`{f}`" for f in fields)
            got = "none" if not given else " and ".join(f"`{f}`" for f in given)
            raise ValueError(f"give exactly one of {names} (got {got})")
        return self


class BatchSpec(BatchTemplate):
    """A batch to create: inline `items`, a `dataset` or `from_jobs`, plus shared
    settings."""

    items: list[Any] | None = Field(
        default=None,
        description="The jobs, each a `POST /v1/jobs` body (fields missing from it come "
        'from `defaults`), e.g. `{"problem": {"task": "game24", "input": {"numbers": '
        "[4, 9, 10, 13]}}}`, optionally with a `custom_id` (a string unique in the batch, "
        "returned with its result).",
    )
    strict: bool = Field(
        default=False,
        description="false (default): invalid items are reported in the response and the "
        "valid ones run. true: any invalid item refuses the whole batch (422 listing them).",
    )

    @classmethod
    def _source_fields(cls) -> tuple[str, ...]:
        return ("items", "dataset", "from_jobs")


def check_http_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host, else ValueError saying why."""
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme or "none"
        raise ValueError(f"must be an http:// or https:// URL, got scheme {scheme!r}")
    if not parts.hostname:
        raise ValueError("must name a host, e.g. https://example.com/hooks/ponder")
    return url
