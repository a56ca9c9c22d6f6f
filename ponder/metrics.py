"""Prometheus metrics: every metric Ponder exports, defined once, and the hooks the code
calls where each thing happens.

Two kinds of figures:

* **Events** (counters and histograms): counted by the process where they happen. A
  worker counts slices, model calls, tokens, journal writes, lease recoveries, webhook
  attempts and the schedule runs its beat ticks start; the API counts the jobs and batch
  items it accepts, the queued jobs it cancels and the schedule runs a trigger or a
  backfill starts. A figure of the whole service is the sum over every process (PromQL
  ``sum``), which is how Prometheus treats counters anyway.
* **State** (gauges): queue depth, the age of the oldest queued job, jobs in flight,
  batch items by status and webhook deliveries waiting. Postgres is the only source of
  truth for those, so :class:`DatabaseState` reads them from it when the API's
  ``/metrics`` is scraped (a few indexed queries under a time limit), instead of each
  process guessing its share.

Label values always come from closed sets (statuses, stop reasons, outcomes, kinds,
priorities 0-9) or from the operator's model profiles, never from ids, tenants or text a
client sent, so the number of series stays bounded whatever the traffic. :data:`LABELS`
lists the label names in use and ``tests/unit/test_metrics.py`` holds every metric to
it.

A worker started with several processes (``ponder worker --processes N``) runs in
prometheus_client's multiprocess mode: the supervisor gives its children a directory
(``PROMETHEUS_MULTIPROC_DIR``) where each writes its values, and serves their sum.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, Protocol, TypeVar

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import Connection

from ponder.budget import BudgetExhausted
from ponder.errors import PonderError
from ponder.tables import (
    Batch,
    BatchStatus,
    DeliveryStatus,
    Job,
    JobStatus,
    ScheduleRunKind,
    StopReason,
    WebhookDelivery,
    utcnow,
)

P = ParamSpec("P")

# No ``<name>_created`` series beside each counter and histogram (prometheus_client's
# default): they would double the series and only say when the process started.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Every label name a Ponder metric may carry. None of them ever holds an id.
LABELS = frozenset(
    {
        "kind",
        "status",
        "stop_reason",
        "outcome",
        "model",
        "type",
        "limit",
        "response",
        "priority",
        "held",
        "leased",
    }
)

# A label value that is not one of the expected ones (a bug, or data written by a newer
# version) is shown as this, so a series can never be made from arbitrary text.
OTHER = "other"

# The most distinct model profile names labelled one by one; beyond (which only a
# models file with more profiles than this could cause) the rest share ``other``.
MAX_MODEL_LABELS = 200

_SECONDS_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SECONDS_CALL = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_SECONDS_SLICE = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_SECONDS_WEBHOOK = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)

# ---------------------------------------------------------------- jobs

JOBS_SUBMITTED = Counter(
    "ponder_jobs_submitted",
    "Jobs accepted and stored, by kind: job (one submitted on its own, POST /v1/jobs) "
    "or batch_item (each item of a batch, schedule runs' batches included). A request "
    "replayed with the same Idempotency-Key is not counted again.",
    ["kind"],
)
JOBS_FINISHED = Counter(
    "ponder_jobs_finished",
    "Jobs that reached a final status, by status (completed, failed, cancelled) and stop "
    "reason (verified, search_exhausted, budget_exhausted, deadline, daily_spend_limit, "
    "cancelled, error).",
    ["status", "stop_reason"],
)
SLICE_SECONDS = Histogram(
    "ponder_slice_duration_seconds",
    "Wall-clock time of one slice of a job on a worker (claim, replay of the journal, "
    "the strategy's run and how it ended), by outcome: finished; handoff (its slice "
    "time was up or the worker is stopping); retry (the model server or the database "
    "was unavailable); parked (its tenant had its share of the process); skipped (the "
    "job was not runnable, e.g. already finished); lost (another worker took it over); "
    "error (an unexpected failure).",
    ["outcome"],
    buckets=_SECONDS_SLICE,
)
SLICES_RUNNING = Gauge(
    "ponder_worker_slices_running",
    "Job slices running right now on this worker (all its processes).",
    multiprocess_mode="livesum",
)

# ---------------------------------------------------------------- model calls

MODEL_CALLS = Counter(
    "ponder_model_calls",
    "Requests to model servers (chat models, judges and reward models), by model "
    "profile and outcome: ok; timeout (the job's deadline ran out during the call); "
    "cancelled (abandoned, e.g. the worker stopped); or the error's code "
    "(provider_unavailable, provider_bad_request, provider_auth, provider_error, ...). "
    "One request may ask for several samples (n).",
    ["model", "outcome"],
)
MODEL_CALL_SECONDS = Histogram(
    "ponder_model_call_duration_seconds",
    "Time one request to a model server took, retries and waiting for a concurrency "
    "slot included, by model profile and outcome (as ponder_model_calls_total).",
    ["model", "outcome"],
    buckets=_SECONDS_CALL,
)
MODEL_TOKENS = Counter(
    "ponder_model_tokens",
    "Tokens of successful chat requests as the model server reported them, by model "
    "profile and type (prompt or completion). Summed over jobs, prompt + completion is "
    "their usage.tokens (a job also counts calls lost in a crash at their reserved "
    "worst case, which no server reported).",
    ["model", "type"],
)
MODEL_COMPLETIONS = Counter(
    "ponder_model_completions",
    "Completions (samples) successful chat requests returned, by model profile: what "
    "jobs count as usage.calls.",
    ["model"],
)
MODEL_COST = Counter(
    "ponder_model_cost_usd",
    "US dollars successful chat requests cost at their model profile's prices, by model "
    "profile: what jobs count as usage.cost_usd.",
    ["model"],
)
BUDGET_REFUSALS = Counter(
    "ponder_budget_refusals",
    "Model calls a job asked for that its budget or its tenant's daily spend could not "
    "cover (the job then stops with its best answer so far), by the limit that refused: "
    "tokens, calls or cost_usd (the job's budget), tenant_cost_usd (the tenant's "
    "spend per day).",
    ["limit"],
)

# ---------------------------------------------------------------- durability

JOURNAL_WRITE_SECONDS = Histogram(
    "ponder_journal_write_duration_seconds",
    "Time from a worker handing a durable write to its group committer (a call's "
    "reservation or result, a claim, a hand-off, a final status) until the transaction "
    "holding it committed: what a job waits for before it goes on.",
    buckets=_SECONDS_FAST,
)
JOURNAL_GROUP_WRITES = Histogram(
    "ponder_journal_commit_writes",
    "Writes a worker's group committer committed together in one transaction.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
JOURNAL_COMMIT_FAILURES = Counter(
    "ponder_journal_commit_failures",
    "Group commits whose COMMIT itself failed (the database connection was lost): each "
    "of their writes failed, and their jobs recover as after a worker crash.",
)
LEASE_RECOVERIES = Counter(
    "ponder_lease_recoveries",
    "Running jobs whose worker stopped renewing their lease (it died or stalled), found "
    "by the reaper and queued again so that another worker resumes them; counted once "
    "per expired lease.",
)
LOST_CALLS = Counter(
    "ponder_lost_calls",
    "Model calls that ended without a result, so that their usage is unknown: abandoned "
    "(the job's deadline or the worker's shutdown) or in flight when a worker died (found "
    "when the job resumes). Each counts as spent at its reserved worst case: what jobs "
    "show as lost_calls.",
)
REPLAYED_CALLS = Counter(
    "ponder_replayed_calls",
    "Calls a resumed job got back from its journal instead of making them again (free), "
    "by kind: sample (a chat model, judges included), verify, reward.",
    ["kind"],
)

# ---------------------------------------------------------------- webhooks, schedules

WEBHOOK_ATTEMPTS = Counter(
    "ponder_webhook_attempts",
    "Webhook delivery attempts, by the receiver's response (2xx, 3xx, 4xx, 5xx; "
    "timeout; refused: its address is not allowed; network: no connection; not_sent: "
    "its target was disabled) and what became of the delivery (delivered; retry: "
    "another attempt is scheduled; failed: the retries are used up; disabled: the "
    "target answered 410 Gone or was disabled already).",
    ["response", "outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "ponder_webhook_attempt_duration_seconds",
    "Time one webhook POST took until the response (or the error), by response (as "
    "ponder_webhook_attempts_total).",
    ["response"],
    buckets=_SECONDS_WEBHOOK,
)
SCHEDULE_FIRES = Counter(
    "ponder_schedule_fires",
    "Schedule runs started (their batch created) or skipped (the template could not "
    "make a batch then), by kind: scheduled, catchup (a missed fire time run late), "
    "manual (a trigger), backfill.",
    ["kind", "outcome"],
)

# ---------------------------------------------------------------- bounded label values

_STATUSES = frozenset(JobStatus.ALL)
_STOP_REASONS = frozenset(StopReason)
_RUN_KINDS = frozenset(ScheduleRunKind.ALL)
_REPLAY_KINDS = frozenset({"sample", "verify", "reward"})
_SLICE_OUTCOMES = frozenset({"finished", "handoff", "skipped", "lost", "retry", "parked"})
_LIMITS = frozenset({"tokens", "calls", "cost_usd", "tenant_cost_usd"})
_DELIVERY_OUTCOMES: dict[str, str] = {
    DeliveryStatus.DELIVERED: "delivered",
    DeliveryStatus.PENDING: "retry",
    DeliveryStatus.FAILED: "failed",
    DeliveryStatus.DISABLED: "disabled",
}
_WEBHOOK_FAILURES = frozenset({"timeout", "refused", "network", "not_sent"})

_models_seen: set[str] = set()
_models_lock = threading.Lock()


def _one_of(value: object, allowed: frozenset[str]) -> str:
    text_ = str(value)
    return text_ if text_ in allowed else OTHER


def model_label(name: str) -> str:
    """A model profile's name as a label value: its name, for the first
    :data:`MAX_MODEL_LABELS` names this process has seen, else ``other``."""
    if name in _models_seen:
        return name
    with _models_lock:
        if len(_models_seen) >= MAX_MODEL_LABELS:
            return OTHER
        _models_seen.add(name)
    return name


def call_outcome(error: BaseException | None) -> str:
    """The ``outcome`` label of a model call that ended with ``error`` (None: ok)."""
    if error is None:
        return "ok"
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, PonderError):
        return str(error.code.value)  # a closed set (ponder.errors.ErrorCode)
    if not isinstance(error, Exception):
        return "cancelled"  # asyncio.CancelledError and other interruptions
    return "error"


def response_class(status_code: int | None, failure: str | None) -> str:
    """The ``response`` label of a webhook attempt: the status class, or why there was
    no response."""
    if status_code is not None:
        first = status_code // 100
        return f"{first}xx" if 1 <= first <= 5 else OTHER
    return failure if failure in _WEBHOOK_FAILURES else "network"


# ---------------------------------------------------------------- hooks


def job_submitted(kind: str, count: int = 1) -> None:
    """``count`` jobs of ``kind`` (job, batch_item) were stored (after the commit)."""
    if count > 0:
        JOBS_SUBMITTED.labels(_one_of(kind, frozenset({"job", "batch_item"}))).inc(count)


def job_finished(status: str, stop_reason: str | None, count: int = 1) -> None:
    """``count`` jobs reached ``status`` for ``stop_reason`` (after the commit)."""
    if count > 0:
        JOBS_FINISHED.labels(
            _one_of(status, _STATUSES),
            "none" if stop_reason is None else _one_of(stop_reason, _STOP_REASONS),
        ).inc(count)


def call_replayed(kind: str) -> None:
    REPLAYED_CALLS.labels(_one_of(kind, _REPLAY_KINDS)).inc()


@contextlib.contextmanager
def model_call(model: str) -> Iterator[None]:
    """Count and time the model request made inside the block, by how it ended (the
    exception it raised, if any, goes on)."""
    started = time.monotonic()
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        label, outcome = model_label(model), call_outcome(error)
        MODEL_CALLS.labels(label, outcome).inc()
        MODEL_CALL_SECONDS.labels(label, outcome).observe(time.monotonic() - started)


def model_usage(
    model: str, prompt_tokens: int, completion_tokens: int, completions: int, cost_usd: float
) -> None:
    """What a successful chat request used, as its server reported it."""
    label = model_label(model)
    MODEL_TOKENS.labels(label, "prompt").inc(max(0, prompt_tokens))
    MODEL_TOKENS.labels(label, "completion").inc(max(0, completion_tokens))
    MODEL_COMPLETIONS.labels(label).inc(max(0, completions))
    if cost_usd > 0:
        MODEL_COST.labels(label).inc(cost_usd)


@contextlib.contextmanager
def budget_refusals() -> Iterator[None]:
    """Count a :class:`~ponder.budget.BudgetExhausted` raised in the block (a call the
    job's budget or its tenant's daily spend refused); it goes on."""
    try:
        yield
    except BudgetExhausted as exc:
        BUDGET_REFUSALS.labels(_one_of(exc.dimension, _LIMITS)).inc()
        raise


def webhook_attempted(
    status_code: int | None, failure: str | None, delivery_status: str, seconds: float
) -> None:
    """One webhook attempt: its response, the delivery's status after it, its time."""
    response = response_class(status_code, failure)
    outcome = _DELIVERY_OUTCOMES.get(str(delivery_status), OTHER)
    WEBHOOK_ATTEMPTS.labels(response, outcome).inc()
    if failure != "not_sent":
        WEBHOOK_SECONDS.labels(response).observe(max(0.0, seconds))


def schedule_runs(started: Iterable[str], skipped: Iterable[str]) -> None:
    """Schedule runs (by kind) started and skipped, after their transaction committed."""
    for kind in started:
        SCHEDULE_FIRES.labels(_one_of(kind, _RUN_KINDS), "started").inc()
    for kind in skipped:
        SCHEDULE_FIRES.labels(_one_of(kind, _RUN_KINDS), "skipped").inc()


class _Outcome(Protocol):
    @property
    def kind(self) -> str: ...


OutcomeT = TypeVar("OutcomeT", bound=_Outcome)


def timed_slice(
    run: Callable[P, Coroutine[Any, Any, OutcomeT]],
) -> Callable[P, Coroutine[Any, Any, OutcomeT]]:
    """Decorates a job slice (an async function returning an outcome with a ``kind``):
    counts it as running while it runs and times it by its outcome."""

    @functools.wraps(run)
    async def timed(*args: P.args, **kwargs: P.kwargs) -> OutcomeT:
        started = time.monotonic()
        outcome = "error"
        SLICES_RUNNING.inc()
        try:
            result = await run(*args, **kwargs)
            outcome = _one_of(result.kind, _SLICE_OUTCOMES)
            return result
        finally:
            SLICES_RUNNING.dec()
            SLICE_SECONDS.labels(outcome).observe(time.monotonic() - started)

    return timed


# ---------------------------------------------------------------- state, from Postgres


@dataclass(frozen=True)
class _Figures:
    """What one read of the database found."""

    queued: dict[tuple[str, str], int]  # (priority, held) -> jobs
    oldest: dict[str, datetime]  # held -> created_at of the oldest queued job
    running: dict[str, int]  # leased -> jobs
    batch_items: dict[str, int]  # status -> items of unfinished batches
    deliveries_pending: int


_BATCH_ITEM_STATUSES = ("held", *JobStatus.ALL)


def _flag(value: object) -> str:
    return "true" if value else "false"


def read_figures(conn: Connection) -> _Figures:
    """Queue depth, jobs in flight, batch items and deliveries waiting: four queries,
    each answered from an index on status (batch items: from the unfinished batches)."""
    queued: dict[tuple[str, str], int] = {}
    oldest: dict[str, datetime] = {}
    running: dict[str, int] = {"true": 0, "false": 0}
    rows = conn.execute(
        select(
            Job.status,
            Job.priority,
            Job.held,
            Job.lease_owner.is_not(None),
            func.count(),
            func.min(Job.created_at),
        )
        .where(Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
        .group_by(Job.status, Job.priority, Job.held, Job.lease_owner.is_not(None))
    ).all()
    for status, priority, held, leased, count, first in rows:
        if status == JobStatus.RUNNING:
            running[_flag(leased)] += int(count)
            continue
        key = (str(int(priority)), _flag(held))
        queued[key] = queued.get(key, 0) + int(count)
        if first is not None:
            first = first if first.tzinfo is not None else first.replace(tzinfo=UTC)
            seen = oldest.get(_flag(held))
            oldest[_flag(held)] = first if seen is None else min(seen, first)
    items = dict.fromkeys(_BATCH_ITEM_STATUSES, 0)
    for status, held, count in conn.execute(
        select(Job.status, Job.held, func.count())
        .select_from(Job)
        .join(Batch, Batch.id == Job.batch_id)
        .where(Batch.status.in_(BatchStatus.ACTIVE))
        .group_by(Job.status, Job.held)
    ).all():
        shown = "held" if held and status == JobStatus.QUEUED else _one_of(status, _STATUSES)
        items[shown] = items.get(shown, 0) + int(count)
    pending = conn.execute(
        select(func.count())
        .select_from(WebhookDelivery)
        .where(WebhookDelivery.status == DeliveryStatus.PENDING)
    ).scalar_one()
    return _Figures(queued, oldest, running, items, int(pending))


class DatabaseState(Collector):
    """The state gauges, read from the database at each scrape (the API's /metrics).

    Its reads run on a connection of their own (``engine``: a small pool, so a scrape
    never waits behind API traffic) under ``timeout`` seconds (Postgres'
    ``statement_timeout``). If the database does not answer, the scrape still answers:
    ``ponder_metrics_database_up`` is 0 and these gauges are left out."""

    def __init__(self, engine: Engine, *, timeout: float) -> None:
        self._engine = engine
        self._timeout = timeout

    def _read(self) -> _Figures:
        with self._engine.connect() as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                millis = max(1, int(self._timeout * 1000))
                conn.execute(text(f"SET LOCAL statement_timeout = {millis}"))
                conn.execute(text(f"SET LOCAL lock_timeout = {millis}"))
            return read_figures(conn)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        started = time.monotonic()
        try:
            figures: _Figures | None = self._read()
        except Exception:
            figures = None
        up = GaugeMetricFamily(
            "ponder_metrics_database_up",
            "1 if this scrape read the queue, jobs in flight, batch items and deliveries "
            "waiting from the database; 0 if it could not (those gauges are then left "
            "out of the scrape).",
            value=0.0 if figures is None else 1.0,
        )
        took = GaugeMetricFamily(
            "ponder_metrics_database_read_seconds",
            "How long this scrape's read of the database took (or failed after).",
            value=time.monotonic() - started,
        )
        yield up
        yield took
        if figures is not None:
            yield from _state_families(figures)


def _state_families(figures: _Figures) -> Iterator[GaugeMetricFamily]:
    queued = GaugeMetricFamily(
        "ponder_jobs_queued",
        "Jobs waiting to start, by priority (0-9) and held: false when published to the "
        "broker for a worker to take, true when kept in Postgres until their turn (a "
        "batch item waiting for the batch feeder, or a job beyond its tenant's share "
        "of the queue).",
        labels=["priority", "held"],
    )
    for (priority, held), count in sorted(figures.queued.items()):
        queued.add_metric([priority, held], float(count))
    yield queued
    oldest = GaugeMetricFamily(
        "ponder_queue_oldest_job_age_seconds",
        "Age (since it was submitted) of the oldest job waiting to start, by held (as "
        "ponder_jobs_queued); 0 when none waits.",
        labels=["held"],
    )
    now = utcnow()
    for held in ("false", "true"):
        first = figures.oldest.get(held)
        age = 0.0 if first is None else max(0.0, (now - first).total_seconds())
        oldest.add_metric([held], age)
    yield oldest
    running = GaugeMetricFamily(
        "ponder_jobs_running",
        "Jobs started and not finished (in flight), by leased: true while a worker runs "
        "a slice of them, false between two slices (the next slice queued, or a retry "
        "waiting).",
        labels=["leased"],
    )
    for leased in ("true", "false"):
        running.add_metric([leased], float(figures.running.get(leased, 0)))
    yield running
    items = GaugeMetricFamily(
        "ponder_batch_items",
        "Items of the batches still queued or running, by status: held (waiting for the "
        "batch feeder), queued, running, completed, failed, cancelled.",
        labels=["status"],
    )
    for status in _BATCH_ITEM_STATUSES:
        items.add_metric([status], float(figures.batch_items.get(status, 0)))
    yield items
    yield GaugeMetricFamily(
        "ponder_webhook_deliveries_pending",
        "Webhook deliveries waiting for their next attempt (or being sent).",
        value=float(figures.deliveries_pending),
    )


class _Together(Collector):
    def __init__(self, *parts: Collector) -> None:
        self._parts = parts

    def collect(self) -> Iterator[Any]:
        for part in self._parts:
            yield from part.collect()


def api_registry(state: DatabaseState | None) -> CollectorRegistry:
    """What the API's /metrics shows: this process's metrics (the events it counted, and
    the Python process's own figures) and, with ``state``, the state read from the
    database."""
    registry = CollectorRegistry()
    registry.register(_Together(REGISTRY, *([state] if state is not None else [])))
    return registry


# ---------------------------------------------------------------- serving


def multiprocess_registry(path: str) -> CollectorRegistry:
    """The sum of what every process writing to ``path`` (their
    ``PROMETHEUS_MULTIPROC_DIR``) counted: what a multi-process worker serves."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return registry


def mark_process_dead(pid: int, path: str) -> None:
    """Drop a dead process's share of the gauges that count live processes only."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def serve(registry: CollectorRegistry, host: str, port: int) -> Callable[[], None]:
    """Serve ``registry`` as Prometheus text at ``http://host:port/metrics`` (any path
    answers) from a thread of this process. Returns the function that stops it. Raises
    OSError when the address cannot be listened on (in use, not an interface here)."""
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
