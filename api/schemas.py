"""Request and response bodies. One naming family per entity (``JobCreate``,
``JobPublic``, ``JobsPublic``); responses are built field by field from the tables, so a
new column never leaks into the API by accident."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ponder.budget import BudgetLimits
from ponder.models import Job
from ponder.problem import Problem

MAX_METADATA_BYTES = 16 * 1024
MAX_WEBHOOK_URL_CHARS = 2048
MAX_IDEMPOTENCY_KEY_CHARS = 255
MAX_SEED = 2**63 - 1

GAME24_EXAMPLE: dict[str, Any] = {
    "problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}},
    "strategy": {"name": "best_of_n", "params": {"n": 16}},
    "verifier": {"type": "game24"},
    "model": "sim",
    "budget": {"max_tokens": 20000, "max_calls": 64, "max_cost_usd": 0.5, "max_seconds": 120},
    "webhook_url": "https://example.com/hooks/ponder",
    "priority": 0,
    "metadata": {"experiment": "demo"},
}


# ---------------------------------------------------------------- requests


class StrategyChoice(BaseModel):
    """Which strategy runs the job, and its parameters."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=100,
        description="A strategy name from `GET /v1/strategies`, e.g. `best_of_n`.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "The strategy's parameters; `GET /v1/strategies` lists each strategy's "
            "parameters as JSON Schema. Parameters left out take their defaults."
        ),
    )


class JobCreate(BaseModel):
    """A job to run: a problem, how to attack it, and how much compute it may spend."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [GAME24_EXAMPLE]})

    problem: Problem = Field(
        description=(
            "What to solve: a task instance (`task` + `input`, e.g. "
            '`{"task": "game24", "input": {"numbers": [4, 9, 10, 13]}}`) or a free-form '
            "`prompt` / `messages`. `expected` (optional) is the known answer."
        )
    )
    strategy: StrategyChoice = Field(description="The test-time-compute strategy to run.")
    verifier: dict[str, Any] | None = Field(
        default=None,
        description=(
            'How candidate answers are checked, e.g. `{"type": "game24"}` or '
            '`{"type": "exact"}`. Defaults to the task\'s own verifier (free-form '
            'problems: `exact` when `expected` is given, else none). `{"type": "none"}` '
            "leaves selection to the strategy (votes, self-evaluation)."
        ),
    )
    model: str = Field(
        default="sim",
        min_length=1,
        max_length=200,
        description="A configured model name from `GET /v1/models`. `sim` is always there.",
    )
    budget: BudgetLimits | None = Field(
        default=None,
        description=(
            "Hard caps on what the job may spend. When given it must set at least one of "
            "`max_tokens`, `max_calls`, `max_cost_usd`. When omitted: 50 000 tokens, "
            "128 calls and 600 seconds."
        ),
    )
    webhook_url: str | None = Field(
        default=None,
        max_length=MAX_WEBHOOK_URL_CHARS,
        description=(
            "An http(s) URL that receives a signed `job.completed` / `job.failed` / "
            "`job.cancelled` event when the job ends (Standard Webhooks)."
        ),
    )
    priority: int = Field(
        default=0,
        ge=0,
        le=9,
        strict=True,
        description="0 (default) to 9; higher runs sooner when workers are busy.",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Any JSON object (at most 16 KiB), stored and returned unchanged.",
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SEED,
        strict=True,
        description=(
            "Seeds the strategy's randomness, for reproducible runs. Omitted: a random seed."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        """Refuse what the database cannot store faithfully: NUL characters in strings and
        non-finite numbers (NaN, Infinity)."""
        where = _unstorable(data, "")
        if where is not None:
            path, what = where
            at = f" at {path}" if path else ""
            raise ValueError(f"{what}{at}; remove it")
        return data

    @field_validator("budget")
    @classmethod
    def _budget_caps_spend(cls, budget: BudgetLimits | None) -> BudgetLimits | None:
        if budget is not None and (
            budget.max_tokens is None and budget.max_calls is None and budget.max_cost_usd is None
        ):
            raise ValueError(
                "set at least one of max_tokens, max_calls or max_cost_usd "
                "(max_seconds alone does not bound spend), or leave `budget` out for the defaults"
            )
        return budget

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
            raise ValueError("must not contain spaces or control characters")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            raise ValueError("is not a valid URL") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise ValueError(
                f"must be an http:// or https:// URL, got scheme {parts.scheme or 'none'!r}"
            )
        if not parts.hostname:
            raise ValueError("must name a host, e.g. https://example.com/hooks/ponder")
        return url

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_METADATA_BYTES:
            raise ValueError(
                f"is {size} bytes as JSON; at most {MAX_METADATA_BYTES} bytes are allowed"
            )
        return metadata


def _unstorable(value: Any, path: str) -> tuple[str, str] | None:
    """Where ``value`` holds a NUL character or a non-finite float, if anywhere."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return where, "strings must not contain NUL (\\u0000) characters"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return where, "numbers must be finite (no NaN or Infinity)"
        elif isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, str) and "\x00" in key:
                    return where, "object keys must not contain NUL (\\u0000) characters"
                stack.append((sub, f"{where}.{key}" if where else str(key)))
        elif isinstance(item, list):
            stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))
    return None


# ---------------------------------------------------------------- responses


class StrategyUsed(BaseModel):
    name: str = Field(description="The strategy's name.")
    params: dict[str, Any] = Field(
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
    budget: BudgetLimits = Field(description="The caps the job runs under.")
    progress: dict[str, Any] = Field(
        description="Live progress from the strategy (candidates tried, best score, ...)."
    )
    error: str | None = Field(description="What went wrong, for a failed job.")
    model: str = Field(description="The model profile the job uses.")
    strategy: StrategyUsed = Field(description="The strategy and its parameters.")
    priority: int = Field(description="0 to 9; higher runs sooner.")
    metadata: dict[str, Any] = Field(description="The metadata given at submission.")
    batch_id: str | None = Field(description="The batch this job belongs to, if any.")
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
        result = None
        if job.result is not None:
            score = job.result.get("score")
            answer = job.result.get("answer")
            result = JobResult(
                answer=None if answer is None else str(answer),
                score=float(score) if isinstance(score, int | float) else 0.0,
                verified=bool(job.result.get("verified", False)),
            )
        strategy = job.strategy or {}
        return cls(
            id=job.id,
            status=job.status,
            stop_reason=job.stop_reason,
            result=result,
            usage=JobUsage(
                tokens=job.usage_tokens,
                calls=job.usage_calls,
                cost_usd=round(job.usage_cost_usd, 8),
                seconds=round(job.usage_seconds, 3),
            ),
            budget=BudgetLimits.model_validate(job.budget),
            progress=job.progress or {},
            error=job.error,
            model=job.model,
            strategy=StrategyUsed(
                name=str(strategy.get("name", "")), params=dict(strategy.get("params") or {})
            ),
            priority=job.priority,
            metadata=job.meta or {},
            batch_id=job.batch_id,
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
    """A model profile, without credentials."""

    model_config = ConfigDict(extra="allow")

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
        "reward model) or `sim-reward`."
    )
    model: str = Field(description="The model id the provider serves.")
    base_url: str | None = Field(description="The provider's API root (credentials removed).")
    capabilities: ModelCapabilities
    price_in_per_mtok: float = Field(description="USD per million prompt tokens.")
    price_out_per_mtok: float = Field(description="USD per million completion tokens.")
    max_concurrency: int = Field(
        description="Requests in flight at most to this model, across all workers."
    )


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


class Health(BaseModel):
    status: str = Field(description="Always `ok` when the process answers.")


class Readiness(BaseModel):
    database: str = Field(description="`ok`, or why the database is unreachable.")
    broker: str = Field(description="`ok`, or why the message broker is unreachable.")


class TraceStep(BaseModel):
    """One journaled call."""

    key: int = Field(description="Position of the call in the strategy's program order.")
    kind: str = Field(description="`sample` (a model call) or `verify` (a verifier call).")
    status: str = Field(description="`done`, or `pending` while the call is in flight.")
    tokens: int = Field(description="Tokens the call used (prompt + completion).")
    calls: int = Field(description="Model generations the call produced.")
    cost_usd: float
    started_at: datetime
    completed_at: datetime | None
    result: dict[str, Any] | None = Field(
        description="What the call returned: completions and usage, or the verdict."
    )


class TraceEvent(BaseModel):
    """One event the strategy or the runner emitted."""

    seq: int = Field(description="Increasing per job; the SSE event id.")
    kind: str = Field(
        description="E.g. `started`, `candidate`, `best`, `node`, `round`, `vote`, `completed`."
    )
    data: dict[str, Any]
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
