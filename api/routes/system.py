"""``/v1/system``: what the deployment is doing now (the dashboard's System page)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ContextDep, ReadTenant, SessionDep
from api.system_schemas import SystemPublic
from ponder.system import system_view

router = APIRouter(prefix="/v1/system", tags=["system"])


@router.get("", summary="Workers, queue, models and webhook health")
def read(tenant: ReadTenant, session: SessionDep, context: ContextDep) -> SystemPublic:
    """The worker processes and the job slices they run, the jobs waiting for a worker
    by priority (and the longest wait), each model profile's concurrency limit with the
    calls in flight, and your webhook deliveries over the last hour and day.

    **What you see of other tenants: numbers only.** Facts about the shared machinery —
    the workers (host name, process id, heartbeat, how many slices each runs), how many
    jobs wait at each priority and since when, how many calls each model has in flight —
    are counted over every tenant, since they say nothing about whose work it is.
    Anything that identifies work is your tenant's only: the jobs listed under each
    worker (`your_jobs`), `your_oldest_job_id`, and every webhook delivery."""
    view = system_view(session, tenant.id, context.settings, context.models, context.slots)
    return SystemPublic.from_view(view)
