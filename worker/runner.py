"""One slice of a job: lease → replay → run → finalize (or hand off).

A slice claims the job's lease (bumping its fencing number), rebuilds the strategy's
Context from the journal, runs the strategy from the top (journaled calls replay for
free), and ends in one of: a terminal state written with its outbox row; a hand-off to a
new slice (time's up, the worker is shutting down, or the model server is unreachable for
now); or silence (another worker owns the job: this one is a zombie and must not write).

A worker that is shutting down (see :mod:`worker.shutdown`) starts no new call: the slice
drains the calls in flight for up to ``drain_seconds``, journals them and hands the job
back at once, so another worker resumes it without waiting for the lease to expire.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ponder import metrics, telemetry
from ponder.budget import BudgetLimits, Ledger, Spend
from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.fairness import ReleaseRequest, release_for
from ponder.families import get_task, verifier_for
from ponder.groupcommit import GroupCommitter
from ponder.jobstate import Ending, Next, could_not_start, ending_for, gave_up, retry_countdown
from ponder.jobstore import (
    Claim,
    ClaimRequest,
    JournalWrite,
    SqlJournal,
    claim_jobs,
    write_journal,
)
from ponder.llm.base import Provider
from ponder.llm.limits import Limiter, build_limiter
from ponder.llm.profiles import ModelProfile, build_provider, load_models_file
from ponder.llm.reward import RewardModelFactory, RewardModels
from ponder.logs import log_context
from ponder.problem import Problem
from ponder.quotas import Quotas, TenantLimits
from ponder.runtime import Context, LeaseLost, WorkerStopping
from ponder.tables import Job, StopReason
from ponder.workers import WorkerInfo
from strategies.registry import get_strategy
from worker.faults import install_faults
from worker.jobloop import JobLoop, LeaseKeeper

log = logging.getLogger(__name__)

ProviderFactory = Callable[[ModelProfile], Provider]
Stopping = Callable[[], bool]

# connections a worker process keeps for its group commits (one writes, one spare for a
# reconnect); the rest of PONDER_WORKER_DB_CONNECTIONS serve the lease heartbeat, reaper,
# batch feeder and webhooks
COMMIT_CONNECTIONS = 2


def _never() -> bool:
    return False


class WorkerServices:
    """What a worker process needs, built once per process (after fork): the database
    engines, the model clients, and the event loop every slice of the process runs on."""

    def __init__(
        self,
        settings: Settings,
        *,
        provider_factory: ProviderFactory | None = None,
        reward_model_factory: RewardModelFactory | None = None,
    ) -> None:
        self.settings = settings
        name = {"application_name": f"ponder-worker:{os.getpid()}"}
        pg = not settings.is_sqlite
        side = max(1, settings.worker_db_connections - COMMIT_CONNECTIONS)
        # reaper, batch feeder, webhook deliveries and other short transactions
        self.engine = make_engine(
            settings.database_url,
            **({"pool_size": side, "max_overflow": 0, "connect_args": name} if pg else {}),
        )
        # the group committer's, for every slice's journal writes: on Postgres an async
        # engine, so the writes run on the event loop (see ponder.groupcommit)
        self.commit_engine: Engine | AsyncEngine
        if pg:
            self.commit_engine = create_async_engine(
                settings.database_url,
                pool_size=COMMIT_CONNECTIONS,
                max_overflow=0,
                pool_pre_ping=True,
                connect_args=name,
            )
            # chaos tests only: a no-op unless PONDER_TEST_FAULT is set
            install_faults(self.commit_engine.sync_engine)
        else:
            self.commit_engine = make_engine(settings.database_url)
            install_faults(self.commit_engine)
        self.sessions = make_sessionmaker(self.engine)
        self.profiles = load_models_file(settings.models_file)
        self.committer = GroupCommitter(
            self.commit_engine,
            window=settings.commit_window_seconds,
            clean_errors=(LeaseLost,),
            batchers={
                JournalWrite: write_journal,
                ClaimRequest: claim_jobs,
                ReleaseRequest: release_for,
            },
        )
        self.jobloop = JobLoop(
            self.committer,
            LeaseKeeper(
                self.engine,
                settings.lease_seconds,
                WorkerInfo.of_this_process(settings.queue, settings.worker_max_jobs),
            ),
            tenant_share=settings.tenant_share,
        )
        # One limiter per process: max_concurrency holds across every worker process
        # (Redis-backed on the broker's Redis; in-process in the embedded mode).
        self.limiter: Limiter = build_limiter(settings.broker_url)
        limiter = self.limiter
        self._provider_factory: ProviderFactory = provider_factory or (
            lambda profile: build_provider(profile, limiter=limiter)
        )
        self._providers: dict[str, Provider] = {}
        # publish(job_id, priority): set by the Celery app (tasks.py) so the loop can
        # publish a tenant's held jobs; None where slices run without a broker (tests)
        self.publish: Callable[[str, int], bool] | None = None
        # reward models (PRMs) by profile name, built on first use, kept like providers
        self.reward_models = RewardModels(self.profiles, reward_model_factory)
        # the tenants' limits (their daily spend), read at most every
        # tenant_limits_cache_seconds
        self.quotas = Quotas()

    def tenant_limits(self, tenant_id: str) -> TenantLimits:
        """The tenant's limits (blocking: call it from a thread, not the loop)."""
        with self.engine.connect() as conn:
            return self.quotas.limits(conn, tenant_id, self.settings)

    def provider(self, model: str) -> Provider:
        if model not in self._providers:
            self._providers[model] = self._provider_factory(self.profiles[model])
        return self._providers[model]

    async def _close_clients(self) -> None:
        if isinstance(self.commit_engine, AsyncEngine):
            await self.commit_engine.dispose()
        for p in self._providers.values():
            await p.aclose()
        self._providers.clear()
        await self.reward_models.aclose()
        await self.limiter.aclose()

    def close(self) -> None:
        self.jobloop.close(self._close_clients)
        self.engine.dispose()
        if isinstance(self.commit_engine, Engine):
            self.commit_engine.dispose()


@dataclass(frozen=True)
class SliceOutcome:
    kind: str  # finished | handoff | skipped | lost | retry | parked
    detail: str = ""
    countdown: float | None = None
    # when finished: the webhook deliveries finalize wrote, and the job's batch, so the
    # task hands them on without looking them up again
    deliveries: tuple[str, ...] = ()
    batch_id: str | None = None
    tenant_id: str | None = None

    @property
    def requeue(self) -> bool:
        return self.kind in ("handoff", "retry")


def _finished(journal: SqlJournal, job: Job, detail: str) -> SliceOutcome:
    return SliceOutcome(
        "finished",
        detail,
        deliveries=tuple(journal.deliveries),
        batch_id=job.batch_id,
        tenant_id=job.tenant_id,
    )


def run_slice(
    svc: WorkerServices, job_id: str, owner: str, *, stopping: Stopping = _never
) -> SliceOutcome:
    """Run one slice of ``job_id`` as ``owner`` on the process's event loop and wait for
    its outcome (from any thread but the loop's). ``stopping`` says whether the worker is
    shutting down (then the slice hands the job back as soon as its calls in flight are
    journaled)."""
    return svc.jobloop.call(run_slice_async(svc, job_id, owner, stopping=stopping))


@metrics.timed_slice
async def run_slice_async(
    svc: WorkerServices, job_id: str, owner: str, *, stopping: Stopping = _never
) -> SliceOutcome:
    """:func:`run_slice` on the loop: many of these run at once in one process."""
    if stopping():
        # Not claimed: the job stays free, and the message published for it goes to a
        # worker that is not stopping.
        return SliceOutcome("handoff", "worker shutting down")
    settings = svc.settings
    claimed_at = telemetry.now_ns()
    try:
        c: Claim | None = await svc.committer.submit(
            ClaimRequest(job_id, owner, settings.lease_seconds), key=job_id
        )
    except DBAPIError as exc:
        log.warning("job %s: database unavailable at claim: %s", job_id, exc)
        return SliceOutcome("retry", "database unavailable", countdown=2.0)
    if c is None:
        return SliceOutcome("skipped", "not runnable or leased elsewhere")
    metrics.LOST_CALLS.inc(c.lost_calls)
    job = c.job
    # every log line of the slice names it; with tracing on it is a span in the trace of
    # the job's submission
    with (
        log_context(
            job_id=job.id, tenant_id=job.tenant_id, slice=job.slices + 1, attempt=c.attempt
        ),
        _slice_span(c, claimed_at) as span,
    ):
        outcome = await _run_claimed(svc, c, stopping)
        if span.is_recording():
            span.set_attribute("ponder.slice.outcome", outcome.kind)
            span.set_attribute("ponder.slice.detail", outcome.detail)
        log.info("job %s: slice ended: %s (%s)", job.id, outcome.kind, outcome.detail)
    return outcome


def _slice_span(c: Claim, claimed_at: int) -> AbstractContextManager[telemetry.SpanLike]:
    if not telemetry.enabled():
        return telemetry.NOOP
    job = c.job
    attributes: dict[str, telemetry.AttrValue] = {
        "ponder.job.id": job.id,
        "ponder.tenant.id": job.tenant_id,
        "ponder.slice": job.slices + 1,
        "ponder.attempt": c.attempt,
        "ponder.strategy": str(job.strategy.get("name")),
        "ponder.model": job.model,
        "ponder.job.priority": job.priority,
        "ponder.calls.journaled": len(c.steps),
        **telemetry.budget_limits(job.budget),
    }
    if job.batch_id is not None:
        attributes["ponder.batch.id"] = job.batch_id
    return telemetry.span(
        "ponder.slice",
        attributes,
        parent=job.trace_context,
        start_time=claimed_at,
        kind="consumer",
    )


async def _run_claimed(svc: WorkerServices, c: Claim, stopping: Stopping) -> SliceOutcome:
    """The slice once its lease is held: it ends with the job finished, handed back,
    parked, or (lease lost, database gone) left for another slice."""
    settings = svc.settings
    journal = SqlJournal(svc.committer, c)
    job = c.job
    try:
        ending = gave_up(job.recoveries, settings.max_attempts)
        if ending is not None:
            await _finalize(journal, ending, job.best, job.usage_seconds, job.progress)
            return _finished(journal, job, "max_attempts")
        # each billed call is reserved against the tenant's daily spend too (the journal
        # does it in the write that reserves the call)
        limits = svc.quotas.cached(job.tenant_id, settings)
        if limits is None:
            loop = asyncio.get_running_loop()
            limits = await loop.run_in_executor(None, svc.tenant_limits, job.tenant_id)
        journal.spend_limit_usd = limits.spend_per_day_usd
        tenants = svc.jobloop.tenants
        # batch items are shared out by the batch feeder already (and a parked item
        # would wait for a feeder that only feeds items not yet started): they always run
        if not tenants.take(job.tenant_id, always=job.batch_id is not None):
            # its tenant has its share of this process: others must find places free
            await journal.park(never_ran=job.slices == 0 and not c.steps)
            return SliceOutcome("parked", "its tenant has its share of this worker process")
        try:
            # one of the tenant's queued jobs started: publish its next held one
            await _release_held(svc, job.tenant_id)
            started = time.monotonic()
            seconds_before = job.usage_seconds
            svc.jobloop.leases.hold(journal, lambda: seconds_before + (time.monotonic() - started))
            try:
                return await _run(
                    svc,
                    c,
                    journal,
                    _Shutdown(stopping, svc.jobloop.stops.event(stopping), settings),
                )
            finally:
                svc.jobloop.leases.release(journal)
        finally:
            tenants.give_back(job.tenant_id)
            # a place of this tenant's freed up: a job parked for want of it may run
            await _release_held(svc, job.tenant_id)
    except LeaseLost:
        return SliceOutcome("lost", "lease taken over")
    except DBAPIError as exc:
        # The database went away mid-slice. Our lease lapses; the task retries shortly
        # and the reaper covers us if that publish is lost too.
        log.warning("job %s: database error mid-slice: %s", job.id, exc)
        return SliceOutcome("retry", "database unavailable", countdown=settings.lease_seconds)


async def _release_held(svc: WorkerServices, tenant_id: str) -> None:
    """Publish the tenant's next held job, if it has one and its queue has room
    (ponder.fairness). Never raises: the reaper publishes held jobs of tenants with none
    queued."""
    publish = svc.publish
    if publish is None:
        return
    try:
        released: list[tuple[str, int]] = await svc.committer.submit(
            ReleaseRequest(tenant_id, svc.settings.tenant_max_queued), key=tenant_id
        )
        loop = asyncio.get_running_loop()
        for job_id, priority in released:
            await loop.run_in_executor(None, publish, job_id, priority)
    except Exception as exc:
        log.warning("could not publish a held job of tenant %s: %s", tenant_id, exc)


class _Shutdown:
    """Watches the worker's stop flag while a strategy runs. Once it is up, the strategy
    has ``drain_seconds`` to reach its next call (where the Context raises
    :class:`WorkerStopping`) and the calls in flight to finish."""

    def __init__(self, stopping: Stopping, raised: asyncio.Event, settings: Settings) -> None:
        self._stopping = stopping
        self._raised = raised
        self._grace = settings.drain_seconds
        self._deadline: float | None = None

    def seen(self) -> bool:
        if self._deadline is None and (self._raised.is_set() or self._stopping()):
            self._deadline = time.monotonic() + self._grace
        return self._deadline is not None

    def time_left(self) -> float:
        self.seen()
        return 0.0 if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    async def run(self, strategy: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(strategy)
        if not self.seen():
            flag = asyncio.ensure_future(self._raised.wait())
            try:
                await asyncio.wait({task, flag}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                flag.cancel()
            if task.done():
                return task.result()
            self.seen()
        done, _ = await asyncio.wait({task}, timeout=self.time_left())
        if not done:
            # Still waiting on a call after the grace period: give up on it (its spend is
            # counted as lost) rather than hold the shutdown any longer.
            task.cancel()
            await asyncio.wait({task})
            if task.cancelled():
                raise WorkerStopping(
                    f"the worker is shutting down; calls still running after {self._grace:g} s "
                    "(drain_seconds) were abandoned"
                )
        return task.result()


async def _run(
    svc: WorkerServices, c: Claim, journal: SqlJournal, shutdown: _Shutdown
) -> SliceOutcome:
    settings = svc.settings
    job = c.job
    try:
        problem = Problem.model_validate(job.problem)
        task = get_task(problem.task) if problem.task else None
        spec = get_strategy(job.strategy["name"])
        profile = svc.profiles[job.model]
        ledger = Ledger(
            BudgetLimits.model_validate(job.budget),
            Spend(job.usage_tokens, job.usage_calls, job.usage_cost_usd),
        )
        ctx = Context(
            problem=problem,
            task=task,
            provider=svc.provider(job.model),
            price=profile.cost_usd,
            verifier=verifier_for(job.verifier, problem),
            ledger=ledger,
            journal=journal,
            seed=job.seed,
            clock=time.monotonic,
            seconds_before=job.usage_seconds,
            slice_seconds=settings.slice_seconds,
            reward_models=svc.reward_models,
            providers=svc.provider,
            prices=lambda name: svc.profiles[name].cost_usd,
            stopping=shutdown.seen,
        )
    except Exception as exc:  # a job that cannot even start fails with the reason
        log.exception("job %s: cannot start", job.id)
        await _finalize(journal, could_not_start(exc), job.best, job.usage_seconds, job.progress)
        return _finished(journal, job, "could not start")
    journal.event(
        "started" if job.slices == 0 and c.attempt == 1 else "resumed",
        {"attempt": c.attempt, "journaled_steps": len(c.steps), "lost_calls": c.lost_calls},
    )

    try:
        await shutdown.run(spec.run(problem, ctx, job.strategy.get("params") or {}))
    except DBAPIError:
        raise  # the database went away: the slice is retried (see run_slice_async)
    except Exception as exc:
        ending = ending_for(exc)
        if ending.unexpected:
            log.exception("job %s: strategy %s failed", job.id, spec.name)
    else:
        best = ctx.best
        ending = ending_for(None, verified=best is not None and best.verdict.passed)
    _note_calls(ctx)

    if ending.then is Next.LOST:
        raise LeaseLost("lease taken over")
    if ending.then is Next.SHUTDOWN:
        await ctx.drain(shutdown.time_left())
        await journal.handoff(ctx.seconds_used())
        log.info(
            "job %s: the worker is shutting down; the job is handed back to the queue for "
            "another worker",
            job.id,
        )
        return SliceOutcome("handoff", "worker shutting down")
    if ending.then is Next.HANDOFF:
        await ctx.drain(settings.drain_seconds)
        await journal.handoff(ctx.seconds_used())
        return SliceOutcome("handoff", "slice time used up")
    if ending.then is Next.RETRY:
        await ctx.drain(settings.drain_seconds)
        journal.event("model_unavailable", {"error": ending.error})
        await journal.handoff(ctx.seconds_used(), interrupted=True)
        return SliceOutcome("retry", ending.error or "", countdown=retry_countdown(job.recoveries))
    if ending.stop_reason in (StopReason.BUDGET_EXHAUSTED, StopReason.DEADLINE):
        log.info("job %s stops: %s", job.id, ending.stop_reason)
    await ctx.drain(settings.drain_seconds)
    if journal.lease_lost:
        raise LeaseLost("lease lost while finishing")
    await _finalize(journal, ending, ctx.best_json(), ctx.seconds_used(), ctx.progress())
    return _finished(journal, job, ending.stop_reason or "")


def _note_calls(ctx: Context) -> None:
    """The slice's span: the billed calls its strategy made, and the journaled calls
    (of every kind) it replayed."""
    span = telemetry.current_span()
    if span.is_recording():
        span.set_attribute("ponder.calls.new", ctx.new_calls)
        span.set_attribute("ponder.journal.replayed", ctx.replayed_calls)


async def _finalize(
    journal: SqlJournal,
    ending: Ending,
    result: Any,
    seconds_used: float,
    progress: Any,
) -> None:
    assert ending.status is not None and ending.stop_reason is not None
    await journal.finalize(
        status=ending.status,
        stop_reason=ending.stop_reason,
        result=result,
        error=ending.error,
        seconds_used=seconds_used,
        progress=progress,
    )
