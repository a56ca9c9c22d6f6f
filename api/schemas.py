"""Request and response bodies. One naming family per entity (``JobCreate``,
``JobPublic``, ``JobsPublic``); responses are built field by field from the tables, so a
new column never leaks into the API by accident."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ponder.jobspec import GAME24_EXAMPLE as GAME24_EXAMPLE
from ponder.jobspec import MAX_SEED as MAX_SEED
from ponder.jobspec import JobCreate as JobCreate
from ponder.jobspec import StrategyChoice as StrategyChoice
from ponder.jsonlimits import readable
from ponder.outcome import public_result, public_usage
from ponder.tables import Job

MAX_IDEMPOTENCY_KEY_CHARS = 255

# A JSON object read from a row, shown as stored except where it nests too deep to
# serialize (ponder.jsonlimits.readable): no stored row can make a response fail.
StoredObject = Annotated[dict[str, Any], AfterValidator(readable)]

# ---------------------------------------------------------------- responses


class StrategyUsed(BaseModel):
    name: str = Field(description="The strategy's name.")
    params: StoredObject = Field(
        description="Every parameter the strategy runs with, defaults filled in."
    )


class JobResult(BaseModel):
    answer: str | None = Field(description="The best answer found (as extracted from the model).")
    score: float = Field(description="Its verifier score, 0 to 1.")
    verified: bool = Field(description="Whether it passed the verifier.")


class JobUsage(BaseModel):
    tokens: int = Field(description="Prompt + completion tokens spent (including lost calls).")
    calls: int = Field(description="Model generations spent.")
    cost_usd: float = Field(description="Spend in US dollars at the model's prices.")
    seconds: float = Field(description="Running time so far, in seconds.")


class BudgetPublic(BaseModel):
    """The caps a job runs under (null: no cap on that dimension). Shown as stored, so
    no stored value can make a read fail."""

    max_tokens: int | None = Field(default=None, description="Prompt + completion tokens.")
    max_calls: int | None = Field(default=None, description="Model generations.")
    max_cost_usd: float | None = Field(default=None, description="Spend in US dollars.")
    max_seconds: float | None = Field(default=None, description="Seconds of running time.")

    @classmethod
    def from_stored(cls, budget: dict[str, Any] | None) -> BudgetPublic:
        known = {k: v for k, v in (budget or {}).items() if k in cls.model_fields}
        return cls.model_validate(known)


class JobPublic(BaseModel):
    """A job as the API shows it."""

    id: str = Field(description="The job's id (a UUID).")
    status: str = Field(description="`queued`, `running`, `completed`, `failed` or `cancelled`.")
    stop_reason: str | None = Field(
        description=(
            "Why a finished job stopped: `verified`, `budget_exhausted`, `deadline`, "
            "`search_exhausted`, `cancelled` or `error`; null while it runs."
        )
    )
    result: JobResult | None = Field(
        description="The best answer once the job has finished (null if it found none)."
    )
    usage: JobUsage = Field(description="What the job has spent so far.")
    budget: BudgetPublic = Field(description="The caps the job runs under.")
    progress: StoredObject = Field(
        description="Live progress from the strategy (candidates tried, best score, ...)."
    )
    error: str | None = Field(description="What went wrong, for a failed job.")
    model: str = Field(description="The model profile the job uses.")
    strategy: StrategyUsed = Field(description="The strategy and its parameters.")
    priority: int = Field(description="0 to 9; higher runs sooner.")
    metadata: StoredObject = Field(description="The metadata given at submission.")
    batch_id: str | None = Field(description="The batch this job belongs to, if any.")
    custom_id: str | None = Field(
        default=None, description="A batch item's `custom_id`, as given in the batch."
    )
    item_index: int | None = Field(
        default=None, description="A batch item's position in its batch (0 first)."
    )
    original_job_id: str | None = Field(
        default=None,
        description="For a batch re-running past jobs (`from_jobs`): the job it re-runs.",
    )
    webhook_url: str | None = Field(description="Where the job's final event is sent.")
    cancel_requested: bool = Field(
        description="A cancel was asked for; a running job stops before its next model call."
    )
    created_at: datetime = Field(description="When the job was submitted (UTC).")
    started_at: datetime | None = Field(description="When a worker first started it.")
    finished_at: datetime | None = Field(description="When it reached a final status.")
    updated_at: datetime = Field(description="When anything about the job last changed.")

    @classmethod
    def from_row(cls, job: Job) -> JobPublic:
        result = public_result(job.result)
        strategy = job.strategy or {}
        return cls(
            id=job.id,
            status=job.status,
            stop_reason=job.stop_reason,
            result=None if result is None else JobResult(**result),
            usage=JobUsage(**public_usage(job)),
            budget=BudgetPublic.from_stored(job.budget),
            progress=job.progress or {},
            error=job.error,
            model=job.model,
            strategy=StrategyUsed(
                name=str(strategy.get("name", "")), params=dict(strategy.get("params") or {})
            ),
            priority=job.priority,
            metadata=job.meta or {},
            batch_id=job.batch_id,
            custom_id=job.custom_id,
            item_index=job.item_index,
            original_job_id=job.original_job_id,
            webhook_url=job.webhook_url,
            cancel_requested=job.cancel_requested,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            updated_at=job.updated_at,
        )


class JobsPublic(BaseModel):
    """One page of jobs, newest first."""

    data: list[JobPublic] = Field(description="The jobs on this page.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class StrategyPublic(BaseModel):
    name: str = Field(description="What `strategy.name` to send.")
    description: str = Field(description="What the strategy does.")
    params_schema: dict[str, Any] = Field(
        description="JSON Schema of `strategy.params` (names, types, ranges, defaults)."
    )


class ModelCapabilities(BaseModel):
    model_config = ConfigDict(extra="allow")

    supports_n: bool = Field(description="Whether one request can ask for several samples.")


class ModelPublic(BaseModel):
    """A model profile as tenants see it: what a job may name and what it costs, nothing
    about where or how the deployment reaches it (no URLs, keys or upstream ids)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description="What to send as a job's `model` (chat profiles) or a strategy's "
        "`reward_model` (reward profiles)."
    )
    kind: str = Field(
        description="`chat` (a model jobs sample from) or `reward` (a reward model that "
        "scores answers or reasoning steps)."
    )
    provider: str = Field(
        description="`openai` (OpenAI-compatible), `anthropic`, `sim`, `reward` (an HTTP "
        "reward model) or `sim-reward`: which request options (e.g. thinking controls) "
        "apply."
    )
    capabilities: ModelCapabilities
    price_in_per_mtok: float = Field(description="USD per million prompt tokens.")
    price_out_per_mtok: float = Field(description="USD per million completion tokens.")


class FieldError(BaseModel):
    loc: list[str | int] = Field(
        description='Where the invalid value is, e.g. `["body", "priority"]`.'
    )
    msg: str = Field(description="What is wrong with it.")
    type: str = Field(description="A machine-readable error kind.")


class ProblemDetail(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`)."""

    type: str = Field(default="about:blank", description="Problem type URI.")
    title: str = Field(description="The HTTP status phrase.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong and how to fix it.")
    errors: list[FieldError] | None = Field(
        default=None, description="Validation errors, one per invalid field."
    )
    missing_scope: str | None = Field(
        default=None,
        description="On a 403 because the API key lacks a scope: that scope (`admin`, "
        "`submit` or `read`).",
    )


class Health(BaseModel):
    status: str = Field(description="Always `ok` when the process answers.")


class Readiness(BaseModel):
    database: str = Field(description="`ok`, or why the database is unreachable.")
    broker: str = Field(description="`ok`, or why the message broker is unreachable.")


class TraceStep(BaseModel):
    """One journaled call."""

    key: int = Field(description="Position of the call in the strategy's program order.")
    kind: str = Field(
        description="`sample` (a model call, also a verifier's judge call), `verify` (a "
        "verifier call) or `reward` (a reward model's scores)."
    )
    status: str = Field(description="`done`, or `pending` while the call is in flight.")
    tokens: int = Field(description="Tokens the call used (prompt + completion).")
    calls: int = Field(description="Model generations the call produced.")
    cost_usd: float = Field(description="What the call cost, in US dollars.")
    started_at: datetime = Field(
        description="When the call was journaled, just before it was made."
    )
    completed_at: datetime | None = Field(description="When its result was journaled.")
    seconds: float | None = Field(
        description="How long the call took (journaled to result); null while in flight."
    )
    attempt: int = Field(
        description="The slice of the job that made the call (1 first; each time a worker "
        "takes the job up again it is one more)."
    )
    replayed: bool = Field(
        description="A later slice replayed this call from the journal instead of making "
        "it again (a job picked up again after a hand-off or a crash repeats no call)."
    )
    result: StoredObject | None = Field(
        description="What the call returned: completions and usage, or the verdict."
    )


class TraceEvent(BaseModel):
    """One event the strategy or the runner emitted."""

    seq: int = Field(description="Increasing per job; the SSE event id.")
    kind: str = Field(
        description="E.g. `started`, `candidate`, `best`, `node`, `round`, `vote`, `completed`."
    )
    data: StoredObject
    at: datetime


class SpendPoint(BaseModel):
    """Cumulative spend after one billed call completed."""

    at: datetime
    step: int
    tokens: int
    calls: int
    cost_usd: float


class JobTrace(BaseModel):
    """Everything a job did, for debugging and for plotting spend against score."""

    job_id: str
    status: str
    steps: list[TraceStep]
    events: list[TraceEvent]
    spend: list[SpendPoint]
    truncated: bool = Field(description="True when the trace was cut at its size limit.")
