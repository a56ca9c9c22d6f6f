"""The job request (``JobCreate``): what a client asks for, as ``POST /v1/jobs``, batch
items and schedule templates take it. Shape checks only; the checks that need the
server's configuration are in :mod:`ponder.submission`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ponder.budget import BudgetLimits
from ponder.errors import ErrorCode, PonderError
from ponder.jsonlimits import check_storable
from ponder.problem import Problem

if TYPE_CHECKING:
    from ponder.quotas import TenantLimits

MAX_METADATA_BYTES = 16 * 1024
MAX_WEBHOOK_URL_CHARS = 2048
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

    @field_validator("*", mode="before")
    @classmethod
    def _storable(cls, value: Any, info: ValidationInfo) -> Any:
        """Refuse what the database cannot store faithfully (NUL characters, NaN and
        Infinity) and values nested deeper than :data:`ponder.jsonlimits.MAX_DEPTH`."""
        return check_storable(value, where=info.field_name or "")

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


class ItemInvalid(PonderError):
    """A batch item that would be refused as a job: ``detail`` says what to fix, ``errors``
    lists the invalid fields (``loc``, ``msg``, ``type``) like a 422 does."""

    code = ErrorCode.INVALID

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class JobValidator(Protocol):
    """Checks one job body (the JSON ``POST /v1/jobs`` takes) exactly as that endpoint
    does, and returns the ``jobs`` row values it becomes (``problem``, ``strategy``,
    ``verifier``, ``model``, ``budget``, ``priority``, ``meta``, ``webhook_url``,
    ``seed``), or raises :class:`ItemInvalid`. With ``limits``, the tenant's maximum
    priority and per-job budget ceilings apply too (``POST /v1/jobs`` applies them)."""

    def __call__(
        self, body: dict[str, Any], limits: TenantLimits | None = None
    ) -> dict[str, Any]: ...
