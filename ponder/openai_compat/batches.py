"""The Batch API (``/openai/v1/batches``) on native Ponder batches.

An input file (purpose ``batch``) holds one request per line, in OpenAI's format:
``{"custom_id": "...", "method": "POST", "url": "/v1/chat/completions", "body": {...}}``
(or ``/v1/responses`` with a Responses body). Each line becomes one item of a native
batch, checked exactly as a single request would be: the batch's feeder runs them a few
at a time, fairly among tenants, under the batch's budget cap (``ponder.budget`` of the
create request) and the tenant's limits. A line that cannot run (not JSON, no unique
``custom_id``, another ``url``, an unknown model, a bad budget, ...) is refused on its own
and reported in the error file; the batch runs the others. A batch with no valid line
is ``failed``.

When the native batch has ended, Ponder writes the output file (one line per request
that completed: ``{"id", "custom_id", "response": {"status_code": 200, "request_id",
"body"}, "error": null}``, the body being the ``chat.completion`` or ``response``) and the
error file (refused lines, failed and cancelled requests), each keyed by ``custom_id``.
``completion_window`` must be ``24h``; Ponder does not expire batches."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from ponder import openai_ids
from ponder.batches.service import BatchRejected, BatchService, CreatedBatch
from ponder.batches.spec import BatchSpec
from ponder.batches.store import totals_for
from ponder.catalog import StrategyCatalog
from ponder.jsonl import LineError, parse_jsonl
from ponder.llm.profiles import ModelProfile
from ponder.openai_compat import chat, files, responses
from ponder.openai_compat.errors import (
    OpenAIRequestError,
    Origins,
    from_field_errors,
)
from ponder.openai_compat.reads import (
    best_answer,
    progress_lines,
    ranked_answers,
    split_tokens,
    tokens_of_many,
)
from ponder.openai_compat.request import Plan
from ponder.tables import (
    Batch,
    BatchStatus,
    Job,
    JobStatus,
    JobStep,
    OpenAIBatch,
    OpenAIFile,
    StopReason,
    new_id,
    utcnow,
)

CHAT_ENDPOINT = "/v1/chat/completions"
RESPONSES_ENDPOINT = "/v1/responses"
ENDPOINTS = (CHAT_ENDPOINT, RESPONSES_ENDPOINT)
WINDOWS = ("24h",)
WINDOW = timedelta(hours=24)
# the most refused lines a batch object lists in ``errors`` (the error file has all)
MAX_LISTED_ERRORS = 100
PAGE = 500


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    input_file_id: str = Field(min_length=1, max_length=100)
    endpoint: str = Field(max_length=100)
    completion_window: str = Field(max_length=16)
    metadata: dict[str, str] | None = None
    ponder: Any = None


class BatchExtras(BaseModel):
    """Ponder's own fields of a batch (``extra_body={"ponder": {...}}``)."""

    model_config = ConfigDict(extra="forbid")

    budget: dict[str, Any] | None = Field(
        default=None, description="A cap on the whole batch: max_tokens and/or max_cost_usd."
    )
    webhook_url: str | None = Field(
        default=None, description="Gets Ponder's `batch.completed` event when it ends."
    )


def parse_request(raw: Any) -> tuple[BatchRequest, BatchExtras]:
    if not isinstance(raw, dict):
        raise OpenAIRequestError("the request body must be a JSON object")
    try:
        request = BatchRequest.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        param = str(error["loc"][0]) if error["loc"] else None
        message = "is required" if error["type"] == "missing" else str(error["msg"])
        raise OpenAIRequestError(f"{param}: {message}", param=param) from None
    if request.endpoint not in ENDPOINTS:
        raise OpenAIRequestError(
            f"endpoint: {request.endpoint!r} is not supported; use {' or '.join(ENDPOINTS)}",
            param="endpoint",
        )
    if request.completion_window not in WINDOWS:
        raise OpenAIRequestError(
            f"completion_window: must be {' or '.join(WINDOWS)} "
            f"(got {request.completion_window!r})",
            param="completion_window",
        )
    extras = request.ponder
    if extras is not None and not isinstance(extras, dict):
        raise OpenAIRequestError("ponder: must be an object (budget, webhook_url)", param="ponder")
    try:
        return request, BatchExtras.model_validate(extras or {})
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        param = ".".join(["ponder", *(str(p) for p in error["loc"])])
        message = (
            "unknown field; a batch's Ponder fields are: budget, webhook_url"
            if error["type"] == "extra_forbidden"
            else str(error["msg"])
        )
        raise OpenAIRequestError(f"{param}: {message}", param=param) from None


@dataclass(frozen=True)
class LineFailure:
    """A line refused at creation."""

    line: int
    custom_id: str | None
    code: str
    message: str
    param: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "custom_id": self.custom_id,
            "code": self.code,
            "message": self.message,
            "param": self.param,
        }


@dataclass(frozen=True)
class _Accepted:
    line: int
    custom_id: str
    plan: Plan


def plan_line(
    value: Any, endpoint: str, models: dict[str, ModelProfile], strategies: StrategyCatalog
) -> tuple[str | None, Plan | None, int]:
    """The custom_id, job plan and ``n`` of one parsed line (raises for a bad line)."""
    if not isinstance(value, dict):
        raise OpenAIRequestError("each line must be one JSON object")
    custom_id = value.get("custom_id")
    if not isinstance(custom_id, str) or not 0 < len(custom_id) <= 200:
        raise OpenAIRequestError(
            "custom_id: each line needs a custom_id, a string of 1 to 200 characters",
            param="custom_id",
        )
    method = value.get("method", "POST")
    if method != "POST":
        raise OpenAIRequestError(f"method: must be POST (got {method!r})", param="method")
    url = value.get("url")
    if url != endpoint:
        raise OpenAIRequestError(
            f"url: every line must have the batch's endpoint {endpoint!r} (got {url!r})",
            param="url",
        )
    body = value.get("body")
    if endpoint == CHAT_ENDPOINT:
        request = chat.parse_request(body)
        if request.stream:
            raise OpenAIRequestError("body.stream: a batch line cannot stream", param="stream")
        return custom_id, chat.plan(request, models, strategies), request.n
    parsed = responses.parse_request(body)
    return custom_id, responses.plan(parsed, models, strategies), 1


def _read_lines(text: str, max_line_bytes: int) -> tuple[list[Any], list[LineFailure]]:
    lines, errors = parse_jsonl(text, max_line_bytes=max_line_bytes)
    failures = [LineFailure(e.line or 0, None, "invalid_json_line", e.detail) for e in errors]
    return lines, failures


def _input_text(row: OpenAIFile) -> str:
    try:
        return row.content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OpenAIRequestError(
            f"input_file_id: the file is not UTF-8 text (byte {exc.start}); upload JSON Lines",
            param="input_file_id",
        ) from None


def create(
    sessions: sessionmaker[Session],
    service: BatchService,
    tenant_id: str,
    request: BatchRequest,
    extras: BatchExtras,
) -> str:
    """Check every line of the input file, run the valid ones as a native batch and
    record the Batch API's batch (in the native batch's transaction); its row id."""
    settings, models, strategies = service.settings, service.models, service.strategies
    with sessions() as session:
        try:
            source = files.get(session, tenant_id, request.input_file_id)
        except OpenAIRequestError as exc:
            exc.param = "input_file_id"
            raise
        if source.purpose not in files.UPLOAD_PURPOSES:
            raise OpenAIRequestError(
                f"input_file_id: {request.input_file_id} has purpose {source.purpose!r}; "
                "a batch reads a file uploaded with purpose `batch`",
                param="input_file_id",
            )
        text = _input_text(source)
        input_id = source.id
    lines, failures = _read_lines(text, settings.batch_max_line_bytes)
    if not lines and not failures:
        raise OpenAIRequestError(
            "input_file_id: the file has no requests (one JSON object per line)",
            param="input_file_id",
        )
    accepted: list[_Accepted] = []
    seen: dict[str, int] = {}
    for line in lines:
        custom_id = line.value.get("custom_id") if isinstance(line.value, dict) else None
        shown = custom_id if isinstance(custom_id, str) else None
        try:
            found_id, line_plan, _ = plan_line(line.value, request.endpoint, models, strategies)
        except OpenAIRequestError as exc:
            code = "model_not_found" if exc.status == 404 else "invalid_request"
            failures.append(LineFailure(line.number, shown, code, exc.message, exc.param))
            continue
        assert found_id is not None and line_plan is not None
        if found_id in seen:
            failures.append(
                LineFailure(
                    line.number,
                    found_id,
                    "duplicate_custom_id",
                    f"custom_id {found_id!r} is already used by line {seen[found_id]}; "
                    "custom_ids must be unique in a batch",
                    "custom_id",
                )
            )
            continue
        seen[found_id] = line.number
        accepted.append(_Accepted(line.number, found_id, line_plan))
    record_id = new_id()
    record = OpenAIBatch(
        id=record_id,
        tenant_id=tenant_id,
        input_file_id=input_id,
        endpoint=request.endpoint,
        completion_window=request.completion_window,
        meta=dict(request.metadata or {}),
        line_count=len(lines) + len([f for f in failures if f.code == "invalid_json_line"]),
        created_at=utcnow(),
    )
    if accepted:
        spec = _spec(accepted, extras, request)

        def keep(session: Session, created: CreatedBatch) -> None:
            refused = [_refused(error, accepted) for error in created.errors]
            record.batch_id = created.batch_id
            record.line_errors = _sorted(failures + refused)
            session.add(record)

        try:
            service.create(sessions, tenant_id, spec, also=keep)
            return record_id
        except BatchRejected as exc:
            if not exc.items:
                raise from_field_errors(exc.errors, exc.detail, Origins()) from None
            failures += [_refused(error, accepted) for error in exc.items]
    record.line_errors = _sorted(failures)
    record.failed_at = record.created_at
    with sessions() as session:
        session.add(record)
        session.commit()
    return record_id


def _spec(accepted: list[_Accepted], extras: BatchExtras, request: BatchRequest) -> BatchSpec:
    items = [
        {
            **a.plan.job.model_dump(mode="json", exclude_none=True),
            "custom_id": a.custom_id,
        }
        for a in accepted
    ]
    batch: dict[str, Any] = {"items": items, "metadata": dict(request.metadata or {})}
    if extras.budget is not None:
        batch["budget"] = extras.budget
    if extras.webhook_url is not None:
        batch["webhook_url"] = extras.webhook_url
    try:
        return BatchSpec.model_validate(batch)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        loc = [str(p) for p in error["loc"]]
        param = ".".join(["ponder", *loc]) if loc[:1] != ["metadata"] else "metadata"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise OpenAIRequestError(f"{param}: {message}", param=param) from None


def _refused(error: LineError, accepted: list[_Accepted]) -> LineFailure:
    index = error.index if error.index is not None else 0
    item = accepted[index]
    made = from_field_errors(error.errors, error.detail, item.plan.origins)
    return LineFailure(item.line, item.custom_id, "invalid_request", made.message, made.param)


def _sorted(failures: list[LineFailure]) -> list[dict[str, Any]]:
    return [f.as_json() for f in sorted(failures, key=lambda f: f.line)]


# ---------------------------------------------------------------- reading


def batch_id(record: OpenAIBatch) -> str:
    return openai_ids.public_id(openai_ids.BATCH, record.id)


def not_found(shown: str) -> OpenAIRequestError:
    text = shown if len(shown) <= 80 else shown[:80] + "..."
    return OpenAIRequestError(
        f"No such Batch object: {text} (no batch with this id belongs to this API key's tenant)",
        param="batch_id",
        status=404,
    )


def get(session: Session, tenant_id: str, shown: str) -> OpenAIBatch:
    wanted = openai_ids.row_id(openai_ids.BATCH, shown)
    record = None
    if wanted is not None:
        record = session.execute(
            select(OpenAIBatch).where(OpenAIBatch.id == wanted, OpenAIBatch.tenant_id == tenant_id)
        ).scalar_one_or_none()
    if record is None:
        raise not_found(shown)
    return record


def page(
    session: Session, tenant_id: str, *, limit: int, after: str | None
) -> tuple[list[OpenAIBatch], bool]:
    """The tenant's batches, newest first, after the batch ``after``."""
    query = select(OpenAIBatch).where(OpenAIBatch.tenant_id == tenant_id)
    if after:
        mark = get(session, tenant_id, after)
        query = query.where(
            or_(
                OpenAIBatch.created_at < mark.created_at,
                and_(OpenAIBatch.created_at == mark.created_at, OpenAIBatch.id < mark.id),
            )
        )
    query = query.order_by(OpenAIBatch.created_at.desc(), OpenAIBatch.id.desc())
    rows = list(session.execute(query.limit(limit + 1)).scalars())
    return rows[:limit], len(rows) > limit


def cancel(
    sessions: sessionmaker[Session], service: BatchService, tenant_id: str, shown: str
) -> None:
    """Cancel the batch's native batch (items not started end at once, running ones
    stop before their next call)."""
    with sessions() as session:
        record = get(session, tenant_id, shown)
        native = record.batch_id
        native_status = None
        if native is not None:
            native_status = session.execute(
                select(Batch.status).where(Batch.id == native)
            ).scalar_one()
    if native is None:
        raise OpenAIRequestError(
            f"batch {shown} failed validation (no line could run); there is nothing to cancel",
            param="batch_id",
        )
    if native_status in (BatchStatus.COMPLETED, BatchStatus.CANCELLED):
        if native_status == BatchStatus.CANCELLED:
            return
        raise OpenAIRequestError(
            f"batch {shown} has already completed; only batches in progress can be cancelled",
            param="batch_id",
        )
    service.cancel(sessions, tenant_id, native)


def finalize(sessions: sessionmaker[Session], record: OpenAIBatch) -> None:
    """Write the output and error files of a batch that has ended (once; a batch still
    running is left alone)."""
    if record.finalized_at is not None:
        return
    with sessions() as session:
        native: Batch | None = None
        if record.batch_id is not None:
            native = session.get(Batch, record.batch_id)
            if native is None or native.finished_at is None:
                return
        source = session.get(OpenAIFile, record.input_file_id)
        requests = _requests(source, record.endpoint) if source is not None else {}
    output, errors = _render(sessions, record, requests)
    with sessions() as session, session.begin():
        locked = session.execute(
            select(OpenAIBatch).where(OpenAIBatch.id == record.id).with_for_update()
        ).scalar_one()
        if locked.finalized_at is not None:
            return
        name = f"{batch_id(record)}"
        output_id = error_id = None
        if output:
            output_id = files.store(
                session,
                record.tenant_id,
                purpose=files.OUTPUT_PURPOSE,
                filename=f"{name}_output.jsonl",
                data=output,
            ).id
        if errors:
            error_id = files.store(
                session,
                record.tenant_id,
                purpose=files.OUTPUT_PURPOSE,
                filename=f"{name}_error.jsonl",
                data=errors,
            ).id
        session.execute(
            update(OpenAIBatch)
            .where(OpenAIBatch.id == record.id)
            .values(output_file_id=output_id, error_file_id=error_id, finalized_at=utcnow())
        )


@dataclass(frozen=True)
class _Request:
    model: str
    n: int


def _requests(source: OpenAIFile, endpoint: str) -> dict[str, _Request]:
    """custom_id → the model name and ``n`` its line asked for."""
    out: dict[str, _Request] = {}
    try:
        text = source.content.decode("utf-8")
    except UnicodeDecodeError:
        return out
    for raw in text.split("\n"):
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(value, dict) or not isinstance(value.get("custom_id"), str):
            continue
        found = value.get("body")
        body: dict[str, Any] = found if isinstance(found, dict) else {}
        n = body.get("n", 1) if endpoint == CHAT_ENDPOINT else 1
        out.setdefault(
            value["custom_id"],
            _Request(str(body.get("model", "")), n if isinstance(n, int) and n > 0 else 1),
        )
    return out


def _render(
    sessions: sessionmaker[Session], record: OpenAIBatch, requests: dict[str, _Request]
) -> tuple[bytes, bytes]:
    output: list[str] = []
    errors: list[str] = []
    for failure in record.line_errors or []:
        errors.append(
            _line(
                openai_ids.BATCH_REQUEST + uuid.uuid4().hex,
                failure.get("custom_id"),
                None,
                {
                    "code": failure.get("code"),
                    "message": failure.get("message"),
                    "param": failure.get("param"),
                    "line": failure.get("line"),
                },
            )
        )
    if record.batch_id is not None:
        for job, text in _item_lines(sessions, record, requests):
            (output if job.status == JobStatus.COMPLETED else errors).append(text)
    return _joined(output), _joined(errors)


def _joined(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


def _line(request_id: str, custom_id: Any, response: dict[str, Any] | None, error: Any) -> str:
    return json.dumps(
        {"id": request_id, "custom_id": custom_id, "response": response, "error": error},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def _item_lines(
    sessions: sessionmaker[Session], record: OpenAIBatch, requests: dict[str, _Request]
) -> Iterator[tuple[Job, str]]:
    last = -1
    while True:
        with sessions() as session:
            jobs = list(
                session.execute(
                    select(Job)
                    .where(Job.batch_id == record.batch_id, Job.item_index > last)
                    .order_by(Job.item_index)
                    .limit(PAGE)
                ).scalars()
            )
            if not jobs:
                return
            tokens = tokens_of_many(session, jobs)
            for job in jobs:
                last = job.item_index if job.item_index is not None else last
                yield job, _item_line(session, record, job, requests, tokens)


def _item_line(
    session: Session,
    record: OpenAIBatch,
    job: Job,
    requests: dict[str, _Request],
    tokens: dict[str, Any],
) -> str:
    line_id = openai_ids.public_id(openai_ids.BATCH_REQUEST, job.id)
    request_id = openai_ids.public_id(openai_ids.REQUEST, job.id)
    asked = requests.get(job.custom_id or "", _Request(job.model, 1))
    if job.status == JobStatus.COMPLETED:
        model = asked.model or job.model
        if record.endpoint == CHAT_ENDPOINT:
            answers = ranked_answers(session, job, asked.n)
            body = chat.completion(job, answers, tokens[job.id], model)
        else:
            body = responses.response_object(
                job,
                answer=best_answer(job),
                tokens=tokens[job.id],
                progress=progress_lines(session, job.id),
                model=model,
            )
        return _line(
            line_id,
            job.custom_id,
            {"status_code": 200, "request_id": request_id, "body": body},
            None,
        )
    if job.status == JobStatus.FAILED:
        return _line(
            line_id,
            job.custom_id,
            {
                "status_code": 500,
                "request_id": request_id,
                "body": {
                    "error": {
                        "message": job.error or "the job failed",
                        "type": "server_error",
                        "param": None,
                        "code": "job_failed",
                    }
                },
            },
            None,
        )
    if job.stop_reason == StopReason.BUDGET_EXHAUSTED:
        error = {
            "code": "batch_budget_exhausted",
            "message": "the batch's budget cap was used up before this request could run",
        }
    else:
        error = {
            "code": "batch_cancelled",
            "message": "the batch was cancelled before this request finished",
        }
    return _line(line_id, job.custom_id, None, error)


def _status(record: OpenAIBatch, native: Batch | None) -> str:
    if record.failed_at is not None or native is None:
        return "failed"
    if native.status == BatchStatus.CANCELLED:
        return "cancelled" if native.finished_at is not None else "cancelling"
    if native.status == BatchStatus.COMPLETED:
        return "completed" if record.finalized_at is not None else "finalizing"
    return "in_progress"


def _batch_tokens(session: Session, native_id: str, total: int) -> Any:
    usage = JobStep.result["usage"]
    prompt, reasoning = session.execute(
        select(
            func.coalesce(func.sum(usage["prompt_tokens"].as_integer()), 0),
            func.coalesce(func.sum(usage["reasoning_tokens"].as_integer()), 0),
        )
        .join(Job, Job.id == JobStep.job_id)
        .where(Job.batch_id == native_id, JobStep.status == "done")
    ).one()
    return split_tokens(total, int(prompt), int(reasoning))


def batch_object(session: Session, record: OpenAIBatch) -> dict[str, Any]:
    """The ``batch`` object (with ``ponder``: the native batch's id, counts and usage)."""
    native = session.get(Batch, record.batch_id) if record.batch_id is not None else None
    totals = totals_for(session, [native.id])[native.id] if native is not None else None
    counts = totals["counts"] if totals else {}
    refused = record.line_errors or []
    status = _status(record, native)
    created = record.created_at
    usage = None
    if totals is not None and native is not None:
        tokens = _batch_tokens(session, native.id, int(totals["usage"]["tokens"]))
        usage = {
            "input_tokens": tokens.prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": tokens.completion,
            "output_tokens_details": {"reasoning_tokens": tokens.reasoning},
            "total_tokens": tokens.total,
        }
    listed = [
        {
            "code": e.get("code"),
            "line": e.get("line"),
            "message": e.get("message"),
            "param": e.get("param"),
        }
        for e in refused[:MAX_LISTED_ERRORS]
    ]
    finished = native.finished_at if native is not None else None
    return {
        "id": batch_id(record),
        "object": "batch",
        "endpoint": record.endpoint,
        "errors": {"object": "list", "data": listed} if listed else None,
        "input_file_id": files.file_id(record.input_file_id),
        "completion_window": record.completion_window,
        "status": status,
        "output_file_id": (files.file_id(record.output_file_id) if record.output_file_id else None),
        "error_file_id": files.file_id(record.error_file_id) if record.error_file_id else None,
        "created_at": int(created.timestamp()),
        "in_progress_at": int(created.timestamp()) if native is not None else None,
        "expires_at": int((created + WINDOW).timestamp()),
        "finalizing_at": (
            int(finished.timestamp()) if finished is not None and status == "completed" else None
        ),
        "completed_at": (
            int(finished.timestamp()) if finished is not None and status == "completed" else None
        ),
        "failed_at": int(record.failed_at.timestamp()) if record.failed_at else None,
        "expired_at": None,
        "cancelling_at": (
            int(native.cancelled_at.timestamp())
            if native is not None and native.cancelled_at is not None
            else None
        ),
        "cancelled_at": (
            int(finished.timestamp()) if finished is not None and status == "cancelled" else None
        ),
        "request_counts": {
            "total": record.line_count,
            "completed": int(counts.get(JobStatus.COMPLETED, 0)),
            "failed": int(counts.get(JobStatus.FAILED, 0))
            + int(counts.get(JobStatus.CANCELLED, 0))
            + len(refused),
        },
        "usage": usage,
        "metadata": dict(record.meta or {}),
        "model": None,
        "ponder": {
            "batch_id": native.id if native is not None else None,
            "counts": counts,
            "usage": totals["usage"] if totals else None,
        },
    }
