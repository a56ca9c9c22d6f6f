"""Creating batches: every item validated like a single job, then the batch and all its
item jobs inserted in one transaction (one bulk INSERT; nothing is published to the
broker here — the feeder queues items a few at a time, see :mod:`ponder.batches.feeder`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, sessionmaker

from ponder import metrics
from ponder.batches.feeder import feed
from ponder.batches.spec import (
    MAX_CUSTOM_ID_CHARS,
    BatchSpec,
    BatchTemplate,
    JobFilter,
)
from ponder.batches.store import cancel_batch, get_batch
from ponder.catalog import StrategyCatalog
from ponder.config import Settings
from ponder.datasets import catalog as datasets
from ponder.errors import Conflict, ErrorCode, NotFound, PonderError
from ponder.jobspec import ItemInvalid, JobValidator
from ponder.jsonl import Line, LineError, parse_jsonl
from ponder.jsonlimits import storable_text
from ponder.llm.profiles import ModelProfile
from ponder.queue import JobQueue
from ponder.quotas import Quotas, TenantLimits, batch_never_fits
from ponder.submission import job_validator
from ponder.tables import Batch, BatchSource, BatchStatus, Job, JobStatus, new_id, utcnow
from ponder.webhooks.delivery import take_unsent
from ponder.webhooks.ssrf import ForbiddenAddress, check_target_url

# the most per-item errors a response lists (all are counted)
MAX_REPORTED_ERRORS = 1000
_TERMINAL = sorted(JobStatus.TERMINAL)


class BatchRejected(PonderError):
    """The batch as a whole cannot be created. ``detail`` says what to fix; ``items`` lists
    per-item errors (strict mode, or no valid item), ``errors`` field errors."""

    code = ErrorCode.INVALID

    def __init__(
        self,
        detail: str,
        *,
        items: list[LineError] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.items = items or []
        self.errors = errors or []


@dataclass(frozen=True)
class CreatedBatch:
    """What :func:`create_batch` made: the batch id, how many items it accepted (its
    jobs), and why the other items were refused (non-strict mode)."""

    batch_id: str
    accepted: int
    errors: list[LineError] = field(default_factory=list)


@dataclass(frozen=True)
class _RawItem:
    index: int  # 0-based position among the items
    line: int | None  # JSONL line number
    body: Any  # the item as given (a job body, or a dataset problem wrapped as one)
    custom_id: Any = None
    original_job_id: str | None = None


def create_batch(
    session: Session,
    *,
    tenant_id: str,
    spec: BatchTemplate | BatchSpec,
    validator: JobValidator,
    settings: Settings,
    schedule_id: str | None = None,
    fire_time: datetime | None = None,
    quotas: Quotas | None = None,
    charge: bool = True,
) -> CreatedBatch:
    """Validate ``spec`` and insert the batch and one held job per valid item, inside the
    caller's transaction. **The caller commits**, then should call
    :func:`ponder.batches.feeder.feed` (with the tenant id) so the first items start at
    once; otherwise the reaper's feeder tick starts them within
    ``reaper_interval_seconds``.

    - Each item is merged with ``spec.defaults`` and checked by ``validator`` exactly as
      ``POST /v1/jobs`` checks a body (``ponder.submission.job_validator(settings, models)``
      builds the API's validator).
    - Items come from ``spec.items`` (a :class:`BatchSpec`), a dataset (``spec.dataset``:
      the tenant's dataset id or name, or a built-in name) or past jobs
      (``spec.from_jobs``).
    - Invalid items are returned in :attr:`CreatedBatch.errors` (position, and for uploads
      the line number); in strict mode any invalid item raises :class:`BatchRejected`
      instead, as does a batch with no valid item, an unknown dataset, or more items than
      ``settings.batch_max_items``.
    - ``schedule_id`` / ``fire_time`` mark a run created by a schedule. At most one batch
      exists per (schedule_id, fire_time): a second insert raises
      ``sqlalchemy.exc.IntegrityError`` at flush (the caller's transaction is then
      unusable; roll back).
    - The tenant's limits apply (:mod:`ponder.quotas`, read through ``quotas``): each
      item's priority and budget against its maximum and per-job ceilings (as for a
      job), the batch's ``webhook_url`` and budget cap against what the server allows,
      and a batch that could never fit its daily items or its jobs queued or running
      raises :class:`BatchRejected`. With ``charge`` (not for a check that keeps
      nothing) the batch's items are counted against the tenant's batch items today,
      its jobs queued or running and its daily spend, which raise
      :class:`ponder.errors.QuotaExceeded` when the batch does not fit now.
    """
    strict = isinstance(spec, BatchSpec) and spec.strict
    if isinstance(spec, BatchSpec) and spec.items is not None:
        raw = [_inline_item(i, value) for i, value in enumerate(spec.items)]
        source = BatchSource.INLINE
    elif spec.dataset is not None:
        raw = _dataset_items(session, tenant_id, spec.dataset, settings)
        source = BatchSource.DATASET
    elif spec.from_jobs is not None:
        raw = _from_jobs_items(session, tenant_id, spec.from_jobs, settings)
        source = BatchSource.FROM_JOBS
    else:  # the spec's own validation makes this unreachable
        raise BatchRejected("give one of `items`, `dataset` or `from_jobs`")
    return _create(
        session,
        tenant_id=tenant_id,
        template=spec,
        raw=raw,
        source=source,
        strict=strict,
        validator=validator,
        settings=settings,
        schedule_id=schedule_id,
        fire_time=fire_time,
        quotas=quotas,
        charge=charge,
    )


def create_batch_from_jsonl(
    session: Session,
    *,
    tenant_id: str,
    text: str,
    validator: JobValidator,
    settings: Settings,
    quotas: Quotas | None = None,
) -> CreatedBatch:
    """Like :func:`create_batch`, for a JSON Lines upload: one job body per line (blank
    lines ignored). The first non-blank line may instead be a header
    ``{"batch": {"defaults": ..., "budget": ..., "webhook_url": ..., "metadata": ...,
    "strict": ...}}`` with the batch's settings. Errors name line numbers."""
    lines, parse_errors = parse_jsonl(text, max_line_bytes=settings.batch_max_line_bytes)
    header: dict[str, Any] = {}
    header_number = 1
    if lines and isinstance(lines[0].value, dict) and "batch" in lines[0].value:
        first = lines.pop(0)
        header = _header(first)
        header_number = first.number
    try:
        spec = BatchSpec.model_validate({**header, "items": []})
    except Exception as exc:  # pydantic ValidationError: a bad header
        raise BatchRejected(f"line 1 (the batch header): {_first_message(exc)}") from None
    raw = [_inline_item(i, line.value, line=line.number) for i, line in enumerate(lines)]
    return _create(
        session,
        tenant_id=tenant_id,
        template=spec,
        raw=raw,
        source=BatchSource.UPLOAD,
        strict=spec.strict,
        validator=validator,
        settings=settings,
        pre_errors=parse_errors,
        quotas=quotas,
        header_line=header_number if header else None,
    )


def active_batches_for_schedule(session: Session, schedule_id: str) -> int:
    """How many batches created for ``schedule_id`` have not finished yet (some item is
    still queued or running; a cancelled batch counts until its running items end). For
    a schedule's ``max_active_runs``."""
    return int(
        session.execute(
            select(func.count())
            .select_from(Batch)
            .where(Batch.schedule_id == schedule_id, Batch.finished_at.is_(None))
        ).scalar_one()
    )


# ---------------------------------------------------------------- sources


def _inline_item(index: int, value: Any, *, line: int | None = None) -> _RawItem:
    if isinstance(value, dict) and "custom_id" in value:
        body = dict(value)
        return _RawItem(index, line, body, custom_id=body.pop("custom_id"))
    return _RawItem(index, line, value)


def _header(first: Line) -> dict[str, Any]:
    value = first.value
    if set(value) != {"batch"} or not isinstance(value["batch"], dict):
        raise BatchRejected(
            f"line {first.number}: a header line is exactly "
            '{"batch": {"defaults": {...}, "budget": {...}, "strict": ..., ...}}'
        )
    header = dict(value["batch"])
    for key in ("items", "dataset", "from_jobs"):
        if key in header:
            raise BatchRejected(
                f"line {first.number} (the batch header): `{key}` is not allowed in an "
                "upload; the upload's lines are the items"
            )
    return header


def _first_message(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for error in errors(include_url=False, include_input=False)[:4]:
            loc = ".".join(str(p) for p in error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown field; remove it"
            parts.append(f"{loc}: {message}" if loc else message)
        return "; ".join(parts)
    return str(exc)


def _dataset_items(
    session: Session, tenant_id: str, ref: str, settings: Settings
) -> list[_RawItem]:
    found = datasets.resolve(session, tenant_id, ref)
    if found is None:
        message = (
            f"unknown dataset {ref!r}; give one of your datasets' id or name, or a built-in "
            f"one: {datasets.known_names(session, tenant_id)}"
        )
        raise BatchRejected(
            f"dataset: {message}",
            errors=[{"loc": ["body", "dataset"], "msg": message, "type": "value_error"}],
        )
    _check_size(len(found.entries), settings, what=f"dataset {found.name!r}")
    return [
        _RawItem(i, None, {"problem": entry.problem}, custom_id=entry.key)
        for i, entry in enumerate(found.entries)
    ]


def _from_jobs_items(
    session: Session, tenant_id: str, wanted: JobFilter, settings: Settings
) -> list[_RawItem]:
    jobs = matching_jobs(session, tenant_id, wanted, cap=settings.batch_max_items + 1)
    if not jobs:
        message = "matched no jobs of this tenant; widen the filter"
        raise BatchRejected(
            f"from_jobs: {message}",
            errors=[{"loc": ["body", "from_jobs"], "msg": message, "type": "value_error"}],
        )
    if wanted.limit is None and len(jobs) > settings.batch_max_items:
        message = (
            f"matches more than {settings.batch_max_items} jobs, more than a batch holds; "
            "narrow it (created_after/before, status, metadata) or set `limit`"
        )
        raise BatchRejected(
            f"from_jobs: {message}",
            errors=[{"loc": ["body", "from_jobs"], "msg": message, "type": "value_error"}],
        )
    # a re-run keeps each original's custom_id, unless several originals share one
    # (e.g. the same item of two earlier batches): those get none
    seen: dict[str, int] = {}
    for job in jobs:
        if job.custom_id is not None:
            seen[job.custom_id] = seen.get(job.custom_id, 0) + 1
    return [
        _RawItem(
            i,
            None,
            {
                "problem": job.problem,
                "strategy": job.strategy,
                "model": job.model,
                "budget": job.budget,
                "priority": job.priority,
                "metadata": job.meta or {},
                **({"verifier": job.verifier} if job.verifier is not None else {}),
            },
            custom_id=job.custom_id if job.custom_id and seen[job.custom_id] == 1 else None,
            original_job_id=job.id,
        )
        for i, job in enumerate(jobs)
    ]


def matching_jobs(session: Session, tenant_id: str, wanted: JobFilter, *, cap: int) -> list[Job]:
    """The tenant's jobs ``wanted`` selects, oldest first, at most ``wanted.limit`` (or
    ``cap``)."""
    statuses = list(wanted.status) if wanted.status else _TERMINAL
    query = select(Job).where(Job.tenant_id == tenant_id, Job.status.in_(statuses))
    if wanted.created_after is not None:
        query = query.where(Job.created_at >= wanted.created_after)
    if wanted.created_before is not None:
        query = query.where(Job.created_at < wanted.created_before)
    if wanted.batch_id is not None:
        query = query.where(Job.batch_id == wanted.batch_id.strip().lower())
    limit = min(wanted.limit or cap, cap)
    postgres = session.get_bind().dialect.name == "postgresql"
    if wanted.metadata and postgres:
        query = query.where(type_coerce(Job.meta, JSONB).contains(wanted.metadata))  # @>
    # oldest first; a batch's items (inserted together) in item order
    query = query.order_by(Job.created_at, Job.batch_id, Job.item_index, Job.id)
    if wanted.metadata and not postgres:
        # SQLite has no JSON containment: filter here
        out = []
        for job in session.execute(query).scalars():
            if _contains(job.meta or {}, wanted.metadata):
                out.append(job)
                if len(out) >= limit:
                    break
        return out
    return list(session.execute(query.limit(limit)).scalars())


def _contains(have: Any, want: Any) -> bool:
    """JSONB ``@>`` semantics, for SQLite."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(
            k in have and _contains(have[k], v) for k, v in want.items()
        )
    if isinstance(want, list):
        return isinstance(have, list) and all(any(_contains(h, w) for h in have) for w in want)
    return bool(have == want)


def _check_size(count: int, settings: Settings, *, what: str) -> None:
    if count > settings.batch_max_items:
        raise BatchRejected(
            f"{what} has {count} items; a batch holds at most {settings.batch_max_items} "
            "(split it into several batches)"
        )


# ---------------------------------------------------------------- validation and insert


def _create(
    session: Session,
    *,
    tenant_id: str,
    template: BatchTemplate,
    raw: list[_RawItem],
    source: str,
    strict: bool,
    validator: JobValidator,
    settings: Settings,
    pre_errors: list[LineError] | None = None,
    schedule_id: str | None = None,
    fire_time: datetime | None = None,
    quotas: Quotas | None = None,
    charge: bool = True,
    header_line: int | None = None,
) -> CreatedBatch:
    errors = list(pre_errors or [])
    _check_size(len(raw) + len(errors), settings, what="the batch")
    quotas = quotas or Quotas()
    limits = quotas.limits(session, tenant_id, settings)
    _check_batch_fields(template, settings, limits, header_line)
    # more items than the tenant may ever have at once or in a day: a 422, however many
    # of them are valid
    never = batch_never_fits(limits, len(raw) + len(errors))
    if never is not None:
        raise BatchRejected(never)
    if charge:
        # refused at once if not even one more item fits today (read only; the exact
        # count is taken with the items, below)
        quotas.pre_check_batch(session, limits, 1)
    rerun = source == BatchSource.FROM_JOBS
    defaults_body = template.defaults.as_body()
    batch_id = new_id()
    now = utcnow()
    rows: list[dict[str, Any]] = []
    seen_ids: dict[str, int] = {}
    # the dimensions the batch's cap limits (max_tokens, max_cost_usd)
    capped = (
        set(template.budget.model_dump(exclude_none=True)) if template.budget is not None else set()
    )
    for item in raw:
        try:
            custom_id = _custom_id(item.custom_id, seen_ids, item)
            body = _merge(item.body, defaults_body, template.defaults.metadata, rerun=rerun)
            values = _uncapped(validator(body, limits), body, capped)
        except ItemInvalid as exc:
            errors.append(
                LineError(
                    exc.detail,
                    line=item.line,
                    index=item.index,
                    custom_id=_shown(item.custom_id),
                    errors=exc.errors,
                )
            )
            continue
        if custom_id is not None:
            seen_ids[custom_id] = item.line if item.line is not None else item.index
        rows.append(
            {
                **values,
                "id": new_id(),
                "tenant_id": tenant_id,
                "status": JobStatus.QUEUED,
                "batch_id": batch_id,
                "item_index": item.index,
                "custom_id": custom_id,
                "original_job_id": item.original_job_id,
                "held": True,
                "created_at": now,
                "updated_at": now,
            }
        )
    errors.sort(key=lambda e: (e.line or 0, e.index or 0))
    if not rows and not errors:
        raise BatchRejected("the batch has no items; give at least one")
    if errors and (strict or not rows):
        raise BatchRejected(_summary(errors, strict=strict, accepted=len(rows)), items=errors)
    session.add(
        Batch(
            id=batch_id,
            tenant_id=tenant_id,
            status=BatchStatus.QUEUED,
            source=source,
            dataset=template.dataset,
            source_filter=(
                template.from_jobs.model_dump(mode="json", exclude_none=True)
                if template.from_jobs is not None
                else None
            ),
            defaults=template.defaults.model_dump(mode="json", exclude_none=True),
            budget=(
                template.budget.model_dump(mode="json", exclude_none=True)
                if template.budget is not None
                else None
            ),
            webhook_url=template.webhook_url,
            meta=template.metadata,
            item_count=len(rows),
            rejected_count=len(errors),
            schedule_id=schedule_id,
            fire_time=fire_time,
            created_at=now,
            updated_at=now,
        )
    )
    session.flush()
    if rows:
        session.execute(insert(Job), rows)
    if charge:
        # last, so the counters' row locks are held only until the caller commits
        quotas.admit_batch(session, limits, len(rows))
    return CreatedBatch(batch_id=batch_id, accepted=len(rows), errors=errors)


def _check_batch_fields(
    template: BatchTemplate, settings: Settings, limits: TenantLimits, header_line: int | None
) -> None:
    """The batch's own fields against what the server allows, as a job's are: its
    ``webhook_url`` (no private, loopback or metadata address) and its budget cap (at
    most what ``batch_max_items`` items could spend at the per-job ceilings)."""
    problems: list[tuple[tuple[str, ...], str]] = []
    if template.webhook_url is not None:
        try:
            check_target_url(template.webhook_url, allow_private=settings.webhook_allow_private)
        except ForbiddenAddress as exc:
            problems.append(
                (
                    ("webhook_url",),
                    f"webhooks may not be sent there: {exc}; give a public http(s) URL",
                )
            )
    if template.budget is not None:
        ceilings = limits.ceilings()
        for field_name in ("max_tokens", "max_cost_usd"):
            value = getattr(template.budget, field_name)
            most = ceilings[field_name] * settings.batch_max_items
            if value is not None and value > most:
                problems.append(
                    (
                        ("budget", field_name),
                        f"must be at most {most:g}, what {settings.batch_max_items} items "
                        f"could spend at the per-job ceiling of {ceilings[field_name]:g} "
                        f"(got {value:g}); each item's share of the cap is also held to "
                        "that ceiling",
                    )
                )
    if not problems:
        return
    parts = "; ".join(f"{'.'.join(loc)}: {message}" for loc, message in problems)
    if header_line is not None:
        raise BatchRejected(f"line {header_line} (the batch header): {parts}")
    raise BatchRejected(
        parts,
        errors=[
            {"loc": ["body", *loc], "msg": message, "type": "value_error"}
            for loc, message in problems
        ],
    )


def _uncapped(values: dict[str, Any], body: dict[str, Any], capped: set[str]) -> dict[str, Any]:
    """An item's row values without the limits it did not ask for in a dimension the
    batch's cap limits: the server's default job budget does not count as asking, so the
    feeder gives such an item its share of the cap (cap / batch_max_in_flight) instead."""
    asked = body.get("budget")
    asked = asked if isinstance(asked, dict) else {}
    budget = dict(values.get("budget") or {})
    for key in capped:
        if asked.get(key) is None:
            budget.pop(key, None)
    return {**values, "budget": budget}


def _shown(custom_id: Any) -> str | None:
    """An item's custom_id as an error report may show it (one that cannot be stored,
    or that is no string, is left out)."""
    if isinstance(custom_id, str) and storable_text(custom_id) is None:
        return custom_id
    return None


def _custom_id(value: Any, seen: dict[str, int], item: _RawItem) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_CUSTOM_ID_CHARS:
        message = f"must be a string of 1 to {MAX_CUSTOM_ID_CHARS} characters"
        raise ItemInvalid(
            f"custom_id: {message}",
            [{"loc": ["custom_id"], "msg": message, "type": "value_error"}],
        )
    unstorable = storable_text(value)
    if unstorable is not None:
        message = unstorable
        raise ItemInvalid(
            f"custom_id: {message}",
            [{"loc": ["custom_id"], "msg": message, "type": "value_error"}],
        )
    if value in seen:
        where = "line" if item.line is not None else "item"
        message = f"{value!r} is already used by {where} {seen[value]}; custom_ids must be unique"
        raise ItemInvalid(
            f"custom_id: {message}",
            [{"loc": ["custom_id"], "msg": message, "type": "value_error"}],
        )
    return value


def _merge(
    body: Any,
    defaults: dict[str, Any],
    default_metadata: dict[str, Any],
    *,
    rerun: bool,
) -> dict[str, Any]:
    """The job body of one item: the item over the defaults (for a re-run, the defaults
    over the original job); metadata merged key by key."""
    if not isinstance(body, dict):
        message = f"each item must be a JSON object (a job body), got {_json_type(body)}"
        raise ItemInvalid(message, [{"loc": [], "msg": message, "type": "model_type"}])
    merged = {**body, **defaults} if rerun else {**defaults, **body}
    item_metadata = body.get("metadata")
    if isinstance(item_metadata, dict):
        first, last = (
            (item_metadata, default_metadata) if rerun else (default_metadata, item_metadata)
        )
        merged["metadata"] = {**first, **last}
    elif "metadata" not in body and default_metadata:
        merged["metadata"] = dict(default_metadata)
    return merged


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _summary(errors: list[LineError], *, strict: bool, accepted: int) -> str:
    shown = "; ".join(f"{e.where()}: {e.detail}" for e in errors[:5])
    more = f"; and {len(errors) - 5} more (see `items`)" if len(errors) > 5 else ""
    if strict:
        return (
            f"{len(errors)} item(s) are invalid and strict mode refuses the whole batch "
            f"(fix them, or send strict: false to run the {accepted} valid ones): {shown}{more}"
        )
    return f"no valid item in the batch: {shown}{more}"


def not_found(batch_id: str) -> NotFound:
    shown = batch_id if len(batch_id) <= 64 else batch_id[:64] + "..."
    return NotFound(f"no batch with id {shown!r} belongs to this API key's tenant")


def get(session: Session, tenant_id: str, batch_id: str) -> Batch:
    """The tenant's batch; :class:`NotFound` if it has none with that id."""
    batch = get_batch(session, tenant_id, batch_id)
    if batch is None:
        raise not_found(batch_id)
    return batch


@dataclass(frozen=True)
class BatchService:
    """The batch use cases that need the server's configuration and its queue."""

    settings: Settings
    models: dict[str, ModelProfile]
    strategies: StrategyCatalog
    queue: JobQueue
    # the tenants' limits and what this process remembers of them (ponder.quotas)
    quotas: Quotas = field(default_factory=Quotas)

    def create(
        self,
        sessions: sessionmaker[Session],
        tenant_id: str,
        source: BatchSpec | str,
        *,
        also: Callable[[Session, CreatedBatch], None] | None = None,
    ) -> CreatedBatch:
        """Check every item exactly as a job is checked, store the batch and its items
        in one transaction (:class:`BatchRejected` refuses it as a whole), then queue its
        first items. ``source`` is a batch request or the text of a JSON Lines upload.
        ``also`` adds the caller's own rows to that transaction (e.g. the Batch API's
        record of the batch), so they are stored together or not at all."""
        validator = job_validator(self.settings, self.models, self.strategies)
        with sessions() as session:
            if isinstance(source, str):
                created = create_batch_from_jsonl(
                    session,
                    tenant_id=tenant_id,
                    text=source,
                    validator=validator,
                    settings=self.settings,
                    quotas=self.quotas,
                )
            else:
                created = create_batch(
                    session,
                    tenant_id=tenant_id,
                    spec=source,
                    validator=validator,
                    settings=self.settings,
                    quotas=self.quotas,
                )
            if also is not None:
                also(session, created)
            session.commit()
        metrics.job_submitted("batch_item", created.accepted)
        # committed: start the first items now (the reaper's feeder tick would, later)
        feed(sessions, self.queue.publish, self.settings, tenant_id=tenant_id)
        return created

    def cancel(self, sessions: sessionmaker[Session], tenant_id: str, batch_id: str) -> Batch:
        """Items not started end at once, running ones stop before their next call; a
        completed batch is a :class:`Conflict`."""
        with sessions() as session:
            batch = get(session, tenant_id, batch_id)
            if batch.status == BatchStatus.COMPLETED:
                raise Conflict(
                    f"batch {batch.id} has already completed; only queued or running "
                    "batches can be cancelled",
                    extra={"batch_status": batch.status},
                )
            found = batch.id
        for delivery_id in take_unsent(sessions, ids=cancel_batch(sessions, found)):
            self.queue.enqueue_delivery(delivery_id)
        with sessions() as session:
            return get(session, tenant_id, found)
