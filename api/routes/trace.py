"""``/v1/jobs/{id}/trace``: what a job did — every model/verifier call, every event
(candidates, tree nodes, rounds, votes) and its spend over time."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from api import crud
from api.deps import CurrentTenant, SessionDep
from api.errors import ApiProblem
from api.schemas import JobTrace, SpendPoint, TraceEvent, TraceStep
from ponder.tables import JobEvent, JobStep

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# A trace beyond this many rows of either kind is cut (and says so).
MAX_TRACE_ROWS = 20_000


@router.get(
    "/{job_id}/trace",
    summary="Trace a job: calls, candidates, scores and spend over time",
    responses={404: {"description": "No such job for this API key's tenant."}},
)
def read_trace(job_id: str, tenant: CurrentTenant, session: SessionDep) -> JobTrace:
    """Every journaled call in the order it was issued, every event the strategy emitted
    (candidates with their scores, search-tree nodes with their parents, rounds, votes),
    and the cumulative spend after each completed billed call."""
    job = crud.get_job(session, tenant.id, job_id)
    if job is None:
        raise ApiProblem(404, f"no job with id {job_id[:64]!r} belongs to this API key's tenant")
    steps = (
        session.execute(
            select(JobStep)
            .where(JobStep.job_id == job.id)
            .order_by(JobStep.key)
            .limit(MAX_TRACE_ROWS + 1)
        )
        .scalars()
        .all()
    )
    events = (
        session.execute(
            select(JobEvent)
            .where(JobEvent.job_id == job.id)
            .order_by(JobEvent.seq)
            .limit(MAX_TRACE_ROWS + 1)
        )
        .scalars()
        .all()
    )
    truncated = len(steps) > MAX_TRACE_ROWS or len(events) > MAX_TRACE_ROWS
    steps, events = steps[:MAX_TRACE_ROWS], events[:MAX_TRACE_ROWS]

    spend: list[SpendPoint] = []
    tokens = calls = 0
    cost = 0.0
    billed = sorted(
        (s for s in steps if s.status == "done" and s.kind == "sample" and s.completed_at),
        key=lambda s: (s.completed_at, s.key),
    )
    for s in billed:
        tokens, calls, cost = tokens + s.tokens, calls + s.calls, cost + s.cost_usd
        assert s.completed_at is not None
        spend.append(
            SpendPoint(
                at=s.completed_at, step=s.key, tokens=tokens, calls=calls, cost_usd=round(cost, 8)
            )
        )
    return JobTrace(
        job_id=job.id,
        status=job.status,
        steps=[
            TraceStep(
                key=s.key,
                kind=s.kind,
                status=s.status,
                tokens=s.tokens,
                calls=s.calls,
                cost_usd=s.cost_usd,
                started_at=s.created_at,
                completed_at=s.completed_at,
                result=s.result,
            )
            for s in steps
        ],
        events=[TraceEvent(seq=e.seq, kind=e.kind, data=e.data, at=e.created_at) for e in events],
        spend=spend,
        truncated=truncated,
    )
