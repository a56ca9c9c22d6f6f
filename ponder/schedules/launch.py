"""Creating a schedule run's batch with :func:`ponder.batches.service.create_batch`: the
one place schedules meet batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ponder.batches.service import BatchRejected, active_batches_for_schedule, create_batch
from ponder.batches.spec import BatchTemplate
from ponder.config import Settings
from ponder.errors import ErrorCode, PonderError, QuotaExceeded
from ponder.jobspec import JobValidator
from ponder.schedules.store import Launched, RunRejected
from ponder.tables import Batch, Schedule, ScheduleRun

_MAX_NOTED_ITEMS = 3


class TemplateInvalid(PonderError):
    """A template that cannot make a batch now: ``detail`` says why, ``errors`` lists the
    invalid fields (locations inside the template)."""

    code = ErrorCode.INVALID

    def __init__(self, detail: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


@dataclass(frozen=True)
class TemplateLauncher:
    """Makes each run's batch from its schedule's template, validating every item with
    ``validator`` exactly as ``POST /v1/jobs`` would (the API's
    ``ponder.submission.job_validator``)."""

    settings: Settings
    validator: JobValidator

    def check(self, session: Session, tenant_id: str, template: BatchTemplate) -> None:
        """Raise :class:`TemplateInvalid` unless ``template`` makes a batch right now: the
        batch is built exactly as at a fire time (dataset looked up, every item validated)
        inside a savepoint that is then rolled back, so nothing is kept."""
        savepoint = session.begin_nested()
        try:
            create_batch(
                session,
                tenant_id=tenant_id,
                spec=template,
                validator=self.validator,
                settings=self.settings,
                # a check: the tenant's limits that can never pass apply, but nothing is
                # counted against what it may use today
                charge=False,
            )
        except BatchRejected as exc:
            errors = [_inside_template(error) for error in exc.errors]
            if not errors and exc.items:
                errors = [
                    {"loc": ["template", item.where()], "msg": item.detail, "type": "value_error"}
                    for item in exc.items[:_MAX_NOTED_ITEMS]
                ]
            raise TemplateInvalid(exc.detail, errors) from None
        finally:
            savepoint.rollback()

    def active_runs(self, session: Session, schedule_id: str) -> int:
        return active_batches_for_schedule(session, schedule_id)

    def launch(self, session: Session, schedule: Schedule, run: ScheduleRun) -> Launched:
        try:
            template = BatchTemplate.model_validate(schedule.template)
        except ValidationError as exc:
            raise RunRejected(f"the schedule's template is no longer valid: {exc}") from None
        try:
            with session.begin_nested():
                created = create_batch(
                    session,
                    tenant_id=schedule.tenant_id,
                    spec=template,
                    validator=self.validator,
                    settings=self.settings,
                    schedule_id=schedule.id,
                    fire_time=run.fire_time,
                )
        except BatchRejected as exc:
            raise RunRejected(exc.detail) from None
        except QuotaExceeded as exc:
            # over one of the tenant's limits at this fire time: the run is skipped and
            # says which (the next fire time tries again)
            raise RunRejected(f"over the tenant's {exc.limit} limit: {exc.detail}") from None
        except IntegrityError:
            # A batch for this fire time exists already (at most one per fire time): the
            # run is that batch's, whoever made it.
            existing = session.scalars(
                select(Batch.id).where(
                    Batch.schedule_id == schedule.id, Batch.fire_time == run.fire_time
                )
            ).first()
            if existing is None:
                raise
            return Launched(existing)
        note = None
        if created.errors:
            shown = "; ".join(f"{e.where()}: {e.detail}" for e in created.errors[:_MAX_NOTED_ITEMS])
            more = len(created.errors) - _MAX_NOTED_ITEMS
            note = (
                f"{len(created.errors)} of {created.accepted + len(created.errors)} items were "
                f"refused: {shown}" + (f"; and {more} more" if more > 0 else "")
            )
        return Launched(created.batch_id, note, created.accepted)


def _inside_template(error: dict[str, Any]) -> dict[str, Any]:
    """A batch field error's location, as a location inside a schedule's ``template``."""
    loc = [part for part in error.get("loc", []) if part != "body"]
    return {**error, "loc": ["template", *loc]}
