"""Settings, read from the environment (prefix ``PONDER_``) or passed explicitly.

Nothing reads settings at import time: each entry point builds a :class:`Settings`
(``Settings()`` reads the environment) and passes it down, so tests can build their own.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PONDER_", extra="ignore", env_parse_none_str="null"
    )

    database_url: str = Field(
        default="postgresql+psycopg://postgres@127.0.0.1:5432/ponder",
        description="SQLAlchemy URL of the database (Postgres, or SQLite for the embedded mode).",
    )
    broker_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Celery broker URL (Redis), or filesystem:///DIR for the embedded mode.",
    )
    models_file: str | None = Field(default=None, description="YAML file of model profiles.")
    webhook_allow_private: bool = Field(
        default=False, description="Allow webhook targets on private/loopback addresses (dev only)."
    )
    webhook_timeout_seconds: float = Field(
        default=15.0, gt=0, description="How long one webhook attempt may take."
    )
    webhook_retry_schedule: list[float] = Field(
        default=[5, 300, 1800, 7200, 18000, 36000, 36000],
        description="Seconds to wait before each retry of a failed webhook delivery, as a "
        "JSON list; after the last one the delivery is marked failed.",
    )
    webhook_retry_jitter: float = Field(
        default=0.2, ge=0, le=1, description="Each retry delay varies by up to this fraction."
    )
    webhook_max_retry_after_seconds: float = Field(
        default=86_400.0, gt=0, description="Longest Retry-After a webhook receiver is granted."
    )
    webhook_secret_grace_seconds: float = Field(
        default=86_400.0,
        ge=0,
        description="After a secret rotation, how long the old secret keeps signing too.",
    )
    queue: str = Field(default="ponder", description="Celery queue that job slices go to.")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="How the API, worker and beat write their logs: `text` (human-readable) "
        "or `json` (one JSON object per line, with the job, tenant, slice and attempt a "
        "line is about).",
    )

    # durable execution
    slice_seconds: float = Field(default=60.0, gt=0, description="Longest run of one task slice.")
    lease_seconds: float = Field(default=30.0, gt=0, description="Lease length; renewed at 1/3.")
    max_attempts: int = Field(
        default=5, ge=1, description="Worker losses a job survives before it is failed."
    )
    requeue_after_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Re-enqueue a queued job whose task has not started by then.",
    )
    reaper_interval_seconds: float = Field(default=5.0, gt=0)
    drain_seconds: float = Field(
        default=30.0, ge=0, description="How long a stopping slice waits for calls in flight."
    )

    # the worker's execution engine (worker/jobloop.py)
    worker_max_jobs: int = Field(
        default=512,
        ge=1,
        le=10_000,
        description="Job slices one worker process runs at once on its event loop "
        "(`ponder worker --max-jobs`).",
    )
    worker_processes: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Worker processes `ponder worker` starts (`--processes`); default: one "
        "per CPU core.",
    )
    worker_tenant_reserve: int | None = Field(
        default=None,
        ge=0,
        description="Slices of each worker process that one tenant may not take, kept for "
        "other tenants (default: max_jobs / 64, at least 1).",
    )
    tenant_max_queued: int = Field(
        default=32,
        ge=1,
        le=100_000,
        description="Jobs of one tenant waiting in the broker at once; more are kept held "
        "in Postgres and published as these start, so no tenant's flood stands in front "
        "of another tenant's job.",
    )
    worker_db_connections: int = Field(
        default=10,
        ge=3,
        le=200,
        description="Postgres connections one worker process may hold, however many jobs "
        "it runs (2 for its group commits, the rest for the reaper, batch feeder and "
        "webhook deliveries).",
    )
    commit_window_seconds: float = Field(
        default=0.001,
        ge=0,
        le=0.1,
        description="How long an idle worker waits for other jobs' journal writes to "
        "commit them together (writes arriving during a commit always join the next).",
    )

    # API
    max_body_bytes: int = Field(
        default=1_048_576, gt=0, description="Largest accepted request body."
    )
    max_upload_bytes: int = Field(
        default=64 * 1_048_576,
        gt=0,
        description="Largest body of a batch or dataset upload (POST /v1/batches, /v1/datasets).",
    )
    max_wait_seconds: float = Field(default=60.0, ge=0, description="Longest ?wait= long-poll.")
    openai_max_wait_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Longest a request of the OpenAI-compatible surface waits for its job "
        "(a chat completion, a response without background, a stream) before it answers "
        "with the job's id to fetch the result from later.",
    )
    poll_interval_seconds: float = Field(default=0.2, gt=0)
    auth_cache_seconds: float = Field(
        default=5.0, ge=0, description="How long a verified API key is trusted without a lookup."
    )

    # Prometheus metrics (ponder.metrics)
    metrics_enabled: bool = Field(
        default=True,
        description="Serve Prometheus metrics: GET /metrics on the API (no API key needed), "
        "and a worker's metrics port when one is given. false: the API answers 404 at "
        "/metrics and `ponder worker` refuses --metrics-port.",
    )
    api_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65_535,
        description="Serve the API's metrics on this port (`ponder api --metrics-port`) "
        "instead of at /metrics on the API's own port, which then answers 404 there.",
    )
    api_metrics_host: str = Field(
        default="127.0.0.1",
        description="Interface the API's separate metrics port listens on "
        "(`ponder api --metrics-host`).",
    )
    worker_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65_535,
        description="Port a worker serves its metrics on (`ponder worker --metrics-port`); "
        "unset: none.",
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1",
        description="Interface a worker's metrics port listens on "
        "(`ponder worker --metrics-host`).",
    )
    metrics_read_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Longest time a scrape of the API's metrics spends reading the queue, "
        "jobs in flight and batch items from the database; past it the scrape answers "
        "without them (ponder_metrics_database_up 0).",
    )

    # budget ceilings: a job may ask for at most this much
    limit_max_tokens: int = Field(default=10_000_000, gt=0)
    limit_max_calls: int = Field(default=100_000, gt=0)
    limit_max_cost_usd: float = Field(default=1_000.0, gt=0)
    limit_max_seconds: float = Field(default=86_400.0, gt=0)

    # sandbox for untrusted code (the python_tests verifier)
    sandbox_allow_unisolated: bool = Field(
        default=False,
        description="Run untrusted code without a network namespace when the kernel cannot "
        "make one — unsafe; dev only.",
    )
    sandbox_max_processes: int = Field(
        default=32, ge=2, le=4096, description="Processes and threads one sandboxed run may have."
    )
    sandbox_file_size_mb: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Largest file a sandboxed run may write (its /tmp holds 4x).",
    )
    sandbox_max_output_bytes: int = Field(
        default=65_536, ge=1024, description="stdout/stderr kept per stream of a sandboxed run."
    )

    # batches (ponder.batches)
    batch_max_items: int = Field(
        default=100_000, ge=1, description="Most items one batch (or dataset) may hold."
    )
    batch_max_line_bytes: int = Field(
        default=262_144, ge=256, description="Longest line of a JSON Lines upload."
    )
    batch_max_in_flight: int = Field(
        default=8,
        ge=1,
        description="Items of one batch queued or running at once; the feeder queues the "
        "next items as these finish, so a big batch never crowds out other work.",
    )
    batch_tenant_max_in_flight: int = Field(
        default=32,
        ge=1,
        description="Batch items of one tenant queued or running at once, across all its "
        "batches (shared between them round-robin).",
    )

    # schedules (ponder.schedules)
    schedule_tick_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often beat materialises due fire times and starts pending runs.",
    )
    schedule_max_backfill_runs: int = Field(
        default=1000, ge=1, description="Most fire times one backfill request may cover."
    )

    # per-tenant limits (ponder.quotas): the server's defaults; a tenant's own row in
    # tenant_limits (`ponder tenants limits set`) overrides each of them
    tenant_max_priority: int = Field(
        default=9,
        ge=0,
        le=9,
        description="Highest job priority (0 to 9) a tenant may ask for; above it a job or "
        "batch item is refused (422).",
    )
    tenant_jobs_per_minute: float | None = Field(
        default=600.0,
        gt=0,
        description="Jobs a tenant may submit per minute, sustained (a token bucket "
        "refilling at this rate); null: no rate limit.",
    )
    tenant_jobs_burst: int = Field(
        default=600,
        ge=1,
        description="Jobs a tenant may submit at once before the per-minute rate applies "
        "(the token bucket's size).",
    )
    tenant_max_active_jobs: int | None = Field(
        default=100_000,
        ge=1,
        description="Jobs of one tenant queued or running at once, batch items included; "
        "null: no limit.",
    )
    tenant_batch_items_per_day: int | None = Field(
        default=1_000_000,
        ge=1,
        description="Batch items one tenant may submit per UTC day; null: no limit.",
    )
    tenant_spend_per_day_usd: float | None = Field(
        default=None,
        gt=0,
        description="US dollars one tenant's model calls may cost per UTC day (reserved "
        "before each call, like a job's budget); null: no limit.",
    )
    tenant_max_schedules: int | None = Field(
        default=1000, ge=1, description="Schedules one tenant may have; null: no limit."
    )
    tenant_max_datasets: int | None = Field(
        default=1000, ge=1, description="Uploaded datasets one tenant may have; null: no limit."
    )
    tenant_limits_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long an API or worker process keeps a tenant's limits before "
        "reading them again (a change takes effect within this time).",
    )
    admin_tenants: list[str] = Field(
        default_factory=list,
        description="Tenants whose API keys may manage other tenants' limits over HTTP "
        "(/v1/admin/...), as a JSON list of names. A placeholder until API key scopes.",
    )

    @property
    def tenant_share(self) -> int:
        """Slices of one worker process one tenant may run at once."""
        reserve = self.worker_tenant_reserve
        if reserve is None:
            reserve = max(1, self.worker_max_jobs // 64)
        return max(1, self.worker_max_jobs - reserve)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
