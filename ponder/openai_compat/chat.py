"""Chat Completions (``POST /openai/v1/chat/completions``): the request as a Ponder job,
and the job as a ``chat.completion`` or as ``chat.completion.chunk`` stream events.

``message.content`` is the answer the job selected (for a task such as game24, the
expression after ``Answer:``). ``n`` > 1 returns up to ``n`` distinct answers, best
first. ``finish_reason`` is ``stop`` for an answer the job stands behind and ``length``
for the best answer so far of a job stopped by its budget or deadline. ``usage`` is the
job's real spend; each object also carries ``ponder`` (the job's id, status, stop
reason, score, whether it was verified, and its spend in Ponder's units)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ponder import openai_ids
from ponder.catalog import StrategyCatalog
from ponder.llm.profiles import ModelProfile
from ponder.openai_compat.errors import OpenAIRequestError, Origins
from ponder.openai_compat.reads import Answer, Tokens
from ponder.openai_compat.request import Plan, parse_extras, plan_job, role_of, text_of
from ponder.outcome import public_usage
from ponder.tables import Job, JobStatus
from ponder.webhooks.openai_events import LIMIT_STOPS

MAX_N = 16
TEXT_PARTS = ("text",)


class ChatRequest(BaseModel):
    """The fields of a Chat Completions request Ponder reads. Others OpenAI defines
    (``temperature``, ``top_p``, ``stop``, ``user``, ...) are accepted and left to the
    strategy; ``tools`` and ``logprobs`` are refused (a job returns text answers)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=300)
    messages: list[Any] = Field(min_length=1)
    n: int = Field(default=1, ge=1, le=MAX_N)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    max_completion_tokens: int | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)
    metadata: dict[str, str] | None = None
    seed: int | None = None
    tools: list[Any] | None = None
    logprobs: bool | None = None
    ponder: Any = None


def parse_request(raw: Any) -> ChatRequest:
    """The request body, or a 400 naming the first field at fault."""
    if not isinstance(raw, dict):
        raise OpenAIRequestError("the request body must be a JSON object")
    try:
        request = ChatRequest.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        param = ".".join(str(p) for p in error["loc"]) or None
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required"
        raise OpenAIRequestError(f"{param}: {message}", param=param) from None
    if request.tools:
        raise OpenAIRequestError(
            "tools: Ponder's jobs answer in text and call no tools; leave `tools` out",
            param="tools",
        )
    if request.logprobs:
        raise OpenAIRequestError(
            "logprobs: not available (an answer is selected from many samples)",
            param="logprobs",
        )
    return request


def messages_of(request: ChatRequest) -> list[dict[str, str]]:
    out = []
    for i, message in enumerate(request.messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise OpenAIRequestError(f"{where}: must be an object", param=where)
        role = role_of(message.get("role"), f"{where}.role")
        content = message.get("content")
        if content is None:
            raise OpenAIRequestError(f"{where}.content: is required", param=f"{where}.content")
        out.append({"role": role, "content": text_of(content, f"{where}.content", TEXT_PARTS)})
    return out


def plan(
    request: ChatRequest, models: dict[str, ModelProfile], strategies: StrategyCatalog
) -> Plan:
    """The job ``request`` asks for (see :func:`ponder.openai_compat.request.plan_job`)."""
    extras = parse_extras(request.ponder)
    return plan_job(
        model=request.model,
        messages=messages_of(request),
        extras=extras,
        effort=request.reasoning_effort,
        max_tokens=request.max_completion_tokens or request.max_tokens,
        metadata=request.metadata,
        seed=request.seed,
        origins=Origins(
            max_tokens_field=(
                "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
            )
        ),
        models=models,
        strategies=strategies,
        openai={"object": "chat.completion", "n": request.n},
    )


def include_usage(request: ChatRequest) -> bool:
    return bool((request.stream_options or {}).get("include_usage"))


def completion_id(job_id: str) -> str:
    return openai_ids.public_id(openai_ids.CHAT_COMPLETION, job_id)


def finish_reason(job: Job) -> str:
    return "length" if job.stop_reason in LIMIT_STOPS else "stop"


def usage(tokens: Tokens) -> dict[str, Any]:
    return {
        "prompt_tokens": tokens.prompt,
        "completion_tokens": tokens.completion,
        "total_tokens": tokens.total,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": tokens.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def ponder_view(job: Job, answer: Answer | None) -> dict[str, Any]:
    """The ``ponder`` member of the surface's objects: the job behind it."""
    return {
        "job_id": job.id,
        "status": job.status,
        "stop_reason": job.stop_reason,
        "score": None if answer is None else answer.score,
        "verified": None if answer is None else answer.verified,
        "usage": public_usage(job),
    }


def completion(job: Job, answers: list[Answer], tokens: Tokens, model: str) -> dict[str, Any]:
    """The ``chat.completion`` of a finished job (``answers`` best first; none when the
    job found no answer: one choice with null content)."""
    reason = finish_reason(job)
    shown: list[Answer | None] = list(answers) or [None]
    return {
        "id": completion_id(job.id),
        "object": "chat.completion",
        "created": int(job.created_at.timestamp()),
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {
                    "role": "assistant",
                    "content": None if answer is None else answer.text,
                    "refusal": None,
                    "annotations": [],
                },
                "finish_reason": reason,
                "logprobs": None,
            }
            for i, answer in enumerate(shown)
        ],
        "usage": usage(tokens),
        "service_tier": "default",
        "system_fingerprint": None,
        "ponder": ponder_view(job, answers[0] if answers else None),
    }


def chunk(
    job: Job,
    model: str,
    choices: list[dict[str, Any]],
    *,
    usage_of: Tokens | None = None,
    with_usage_member: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``. ``with_usage_member`` writes ``usage: null`` on
    chunks without usage (as OpenAI does when usage was asked for)."""
    body: dict[str, Any] = {
        "id": completion_id(job.id),
        "object": "chat.completion.chunk",
        "created": int(job.created_at.timestamp()),
        "model": model,
        "choices": choices,
        "service_tier": "default",
        "system_fingerprint": None,
    }
    if usage_of is not None:
        body["usage"] = usage(usage_of)
    elif with_usage_member:
        body["usage"] = None
    if extra:
        body.update(extra)
    return body


def first_delta() -> list[dict[str, Any]]:
    return [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "finish_reason": None,
            "logprobs": None,
        }
    ]


def progress_delta(line: str) -> list[dict[str, Any]]:
    """A chunk's choices for one line of progress: no content, the line as
    ``reasoning_content`` (where OpenAI-compatible servers put reasoning text)."""
    return [
        {
            "index": 0,
            "delta": {"reasoning_content": line + "\n"},
            "finish_reason": None,
            "logprobs": None,
        }
    ]


def answer_chunks(
    job: Job, answers: list[Answer], tokens: Tokens, model: str, *, usage_chunk: bool
) -> list[dict[str, Any]]:
    """The chunks that end a stream: each answer's content, each choice's finish reason,
    then the usage: in a last chunk with no choices when the request asked for it
    (``stream_options.include_usage``), else on the finish chunk."""
    reason = finish_reason(job)
    shown: list[Answer | None] = list(answers) or [None]
    out = []
    for i, answer in enumerate(shown):
        if answer is not None:
            delta: dict[str, Any] = {"content": answer.text}
            if i > 0:
                delta["role"] = "assistant"
            out.append(
                chunk(
                    job,
                    model,
                    [{"index": i, "delta": delta, "finish_reason": None, "logprobs": None}],
                    with_usage_member=usage_chunk,
                )
            )
    view = {"ponder": ponder_view(job, answers[0] if answers else None)}
    finish: list[dict[str, Any]] = [
        {"index": i, "delta": {}, "finish_reason": reason, "logprobs": None}
        for i in range(len(shown))
    ]
    if usage_chunk:
        out.append(chunk(job, model, finish, with_usage_member=True))
        out.append(chunk(job, model, [], usage_of=tokens, extra=view))
    else:
        out.append(chunk(job, model, finish, usage_of=tokens, extra=view))
    return out


def unfinished_message(job: Job, waited: float) -> str:
    return (
        f"job {job.id} is still {job.status} after {waited:g} seconds, the longest this "
        "server waits (PONDER_OPENAI_MAX_WAIT_SECONDS); it goes on running. Fetch its "
        f"result later with GET /v1/jobs/{job.id}?wait=60 (the Ponder-Job-Id header names "
        "it), or use the Responses API with background: true for long jobs"
    )


def failed_message(job: Job) -> str:
    if job.status == JobStatus.CANCELLED:
        return (
            f"job {job.id} was cancelled before it finished; GET /v1/jobs/{job.id} shows "
            "its best answer so far"
        )
    return f"job {job.id} failed: {job.error or 'no reason recorded'}"
