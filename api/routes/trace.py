"""``/v1/jobs/{id}/trace``: what a job did — every model/verifier call, every event
(candidates, tree nodes, rounds, votes) and its spend over time."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ReadTenant, SessionDep
from api.schemas import JobTrace, SpendPoint, TraceEvent, TraceStep
from ponder.jobs import service as jobs_service

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get(
    "/{job_id}/trace",
    summary="Trace a job: calls, candidates, scores and spend over time",
    responses={404: {"description": "No such job for this API key's tenant."}},
)
def read_trace(job_id: str, tenant: ReadTenant, session: SessionDep) -> JobTrace:
    """Every journaled call in the order it was issued, every event the strategy emitted
    (candidates with their scores, search-tree nodes with their parents, rounds, votes),
    and the cumulative spend after each completed billed call."""
    found = jobs_service.trace(session, tenant.id, job_id)
    return JobTrace(
        job_id=found.job.id,
        status=found.job.status,
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
                seconds=None
                if s.completed_at is None
                else round((s.completed_at - s.created_at).total_seconds(), 6),
                attempt=s.attempt,
                replayed=jobs_service.replayed(found.job, s),
                result=s.result,
            )
            for s in found.steps
        ],
        events=[
            TraceEvent(seq=e.seq, kind=e.kind, data=e.data, at=e.created_at) for e in found.events
        ],
        spend=[
            SpendPoint(at=p.at, step=p.step, tokens=p.tokens, calls=p.calls, cost_usd=p.cost_usd)
            for p in found.spend
        ],
        truncated=found.truncated,
    )
