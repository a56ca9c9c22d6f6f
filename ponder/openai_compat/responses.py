"""The Responses API (``/openai/v1/responses``): a request as a Ponder job, the job as a
``response`` object, and its stream of events.

Status: ``queued`` and ``in_progress`` while the job waits and runs; ``completed`` for
an answer it stands behind (verified, or its search ran its course); ``incomplete``
(``incomplete_details.reason`` = ``max_output_tokens``) when its budget, its deadline or
the tenant's daily spend stopped it — with its best answer so far; ``failed`` (with
``error``) and ``cancelled``.

``output`` holds a ``reasoning`` item whose summary is the job's progress, one line per
event (candidates, scores, phases, ...; at most :data:`MAX_PROGRESS_LINES`), then the
answer as a ``message`` (none if the job found no answer).

The stream of a response is a pure function of the job's event log and final state, so
every reader gets the same events with the same ``sequence_number``, and a reader can
resume with ``starting_after``: ``response.created``, ``response.in_progress``, the
reasoning item opened, one ``response.reasoning_summary_text.delta`` per progress line
as the job runs, the reasoning item closed, the message item with one
``response.output_text.delta``, and a last event carrying the final response:
``response.completed``, ``response.incomplete``, or ``response.failed`` (for a failed
and for a cancelled job; the response's ``status`` tells them apart)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ponder import openai_ids
from ponder.catalog import StrategyCatalog
from ponder.llm.profiles import ModelProfile
from ponder.openai_compat.chat import ponder_view
from ponder.openai_compat.errors import OpenAIRequestError, Origins
from ponder.openai_compat.models import model_of
from ponder.openai_compat.progress import MAX_PROGRESS_LINES
from ponder.openai_compat.reads import Answer, Tokens
from ponder.openai_compat.request import Plan, parse_extras, plan_job, role_of, text_of
from ponder.tables import Job, JobStatus
from ponder.webhooks.openai_events import response_status

TEXT_PARTS = ("input_text", "output_text", "text")


class ResponseRequest(BaseModel):
    """The fields of a Responses request Ponder reads. Others OpenAI defines
    (``temperature``, ``store``, ``user``, ...) are accepted and left to the strategy;
    tools, conversations and chaining (``previous_response_id``) are refused."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=300)
    input: str | list[Any]
    instructions: str | None = None
    background: bool | None = None
    stream: bool | None = None
    reasoning: dict[str, Any] | None = None
    max_output_tokens: int | None = Field(default=None, gt=0)
    metadata: dict[str, str] | None = None
    tools: list[Any] | None = None
    previous_response_id: str | None = None
    conversation: Any = None
    ponder: Any = None


def parse_request(raw: Any) -> ResponseRequest:
    """The request body, or a 400 naming the first field at fault."""
    if not isinstance(raw, dict):
        raise OpenAIRequestError("the request body must be a JSON object")
    try:
        request = ResponseRequest.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        param = str(error["loc"][0]) if error["loc"] else None
        message = "is required" if error["type"] == "missing" else str(error["msg"])
        raise OpenAIRequestError(f"{param}: {message}", param=param) from None
    for name, value, why in (
        ("tools", request.tools, "Ponder's jobs answer in text and call no tools"),
        ("previous_response_id", request.previous_response_id, "send the whole conversation"),
        ("conversation", request.conversation, "send the whole conversation as `input`"),
    ):
        if value:
            raise OpenAIRequestError(f"{name}: not supported ({why}); leave it out", param=name)
    return request


def messages_of(request: ResponseRequest) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    if request.instructions is not None:
        out.append({"role": "system", "content": request.instructions})
    if isinstance(request.input, str):
        return [*out, {"role": "user", "content": request.input}]
    if not request.input:
        raise OpenAIRequestError("input: must not be empty", param="input")
    for i, item in enumerate(request.input):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise OpenAIRequestError(f"{where}: must be a message object", param=where)
        kind = item.get("type", "message")
        if kind != "message":
            raise OpenAIRequestError(
                f"{where}: items of type {kind!r} are not supported; send messages "
                "(role and text content)",
                param=where,
            )
        role = role_of(item.get("role"), f"{where}.role")
        out.append({"role": role, "content": text_of(item.get("content"), where, TEXT_PARTS)})
    return out


def effort_of(request: ResponseRequest) -> str | None:
    effort = (request.reasoning or {}).get("effort")
    if effort is not None and not isinstance(effort, str):
        raise OpenAIRequestError("reasoning.effort: must be a string", param="reasoning.effort")
    return effort


def plan(
    request: ResponseRequest, models: dict[str, ModelProfile], strategies: StrategyCatalog
) -> Plan:
    """The job ``request`` asks for (see :func:`ponder.openai_compat.request.plan_job`)."""
    return plan_job(
        model=request.model,
        messages=messages_of(request),
        extras=parse_extras(request.ponder),
        effort=effort_of(request),
        max_tokens=request.max_output_tokens,
        metadata=request.metadata,
        seed=None,
        origins=Origins(
            messages="input",
            seed="ponder.seed",
            effort_field="reasoning.effort",
            max_tokens_field="max_output_tokens",
        ),
        models=models,
        strategies=strategies,
        openai={
            "object": "response",
            "background": bool(request.background),
            "instructions": request.instructions is not None,
        },
    )


def response_id(job_id: str) -> str:
    return openai_ids.public_id(openai_ids.RESPONSE, job_id)


def _instructions(job: Job) -> str | None:
    if not (job.openai or {}).get("instructions"):
        return None
    messages = job.problem.get("messages") or []
    first = messages[0] if messages else None
    if isinstance(first, dict) and first.get("role") == "system":
        return str(first.get("content", ""))
    return None


def _metadata(meta: dict[str, Any]) -> dict[str, str]:
    return {
        str(k): v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
        for k, v in (meta or {}).items()
    }


def usage(tokens: Tokens) -> dict[str, Any]:
    return {
        "input_tokens": tokens.prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": tokens.completion,
        "output_tokens_details": {"reasoning_tokens": tokens.reasoning},
        "total_tokens": tokens.total,
    }


def reasoning_item(job: Job, lines: list[str], *, done: bool) -> dict[str, Any]:
    text = "".join(line + "\n" for line in lines)
    return {
        "id": openai_ids.public_id(openai_ids.REASONING, job.id),
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}] if done else [],
        "status": "completed" if done else "in_progress",
    }


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(job: Job, answer: Answer | None, *, done: bool) -> dict[str, Any]:
    status = "in_progress"
    if done:
        status = (
            "completed"
            if response_status(job.status, job.stop_reason) == "completed"
            else ("incomplete")
        )
    return {
        "id": openai_ids.public_id(openai_ids.MESSAGE, job.id),
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [_output_text(answer.text)] if done and answer is not None else [],
    }


def response_object(
    job: Job,
    *,
    answer: Answer | None,
    tokens: Tokens | None,
    progress: list[str],
    status: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """The ``response`` object of ``job``. A finished job's has its output and usage;
    ``status`` overrides the job's (a stream's opening events show ``queued`` /
    ``in_progress`` with no output); ``model`` overrides the name shown."""
    shown = status or response_status(job.status, job.stop_reason)
    finished = status is None and job.status in JobStatus.TERMINAL
    output: list[dict[str, Any]] = []
    if finished:
        output.append(reasoning_item(job, progress, done=True))
        if answer is not None:
            output.append(message_item(job, answer, done=True))
    effort = (job.openai or {}).get("reasoning_effort")
    return {
        "id": response_id(job.id),
        "object": "response",
        "created_at": job.created_at.timestamp(),
        "status": shown,
        "background": (job.openai or {}).get("background"),
        "completed_at": (
            job.finished_at.timestamp()
            if finished and shown == "completed" and job.finished_at is not None
            else None
        ),
        "error": (
            {"code": "server_error", "message": job.error or "the job failed"}
            if shown == "failed"
            else None
        ),
        "incomplete_details": {"reason": "max_output_tokens"} if shown == "incomplete" else None,
        "instructions": _instructions(job),
        "max_output_tokens": None,
        "metadata": _metadata(job.meta),
        "model": model or model_of(job.strategy, job.model, job.openai),
        "output": output,
        "parallel_tool_calls": False,
        "previous_response_id": None,
        "reasoning": {"effort": effort, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "truncation": "disabled",
        "usage": usage(tokens) if finished and tokens is not None else None,
        "user": None,
        "ponder": ponder_view(job, answer),
    }


@dataclass
class ResponseStream:
    """Numbers a response's stream events in the one order every reader sees (see the
    module's docstring). Feed it :meth:`opening`, then :meth:`progress` per event line,
    then :meth:`closing`; each returns the events to send (with ``sequence_number``)."""

    seq: int = -1
    lines: list[str] = field(default_factory=list)

    def _event(self, body: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        return {**body, "sequence_number": self.seq}

    def opening(self, job: Job) -> list[dict[str, Any]]:
        def snapshot(status: str) -> dict[str, Any]:
            return response_object(job, answer=None, tokens=None, progress=[], status=status)

        item_id = openai_ids.public_id(openai_ids.REASONING, job.id)
        return [
            self._event({"type": "response.created", "response": snapshot("queued")}),
            self._event({"type": "response.in_progress", "response": snapshot("in_progress")}),
            self._event(
                {
                    "type": "response.output_item.added",
                    "output_index": 0,
                    "item": reasoning_item(job, [], done=False),
                }
            ),
            self._event(
                {
                    "type": "response.reasoning_summary_part.added",
                    "item_id": item_id,
                    "output_index": 0,
                    "summary_index": 0,
                    "part": {"type": "summary_text", "text": ""},
                }
            ),
        ]

    def progress(self, job: Job, line: str) -> list[dict[str, Any]]:
        if len(self.lines) >= MAX_PROGRESS_LINES:
            return []
        self.lines.append(line)
        return [
            self._event(
                {
                    "type": "response.reasoning_summary_text.delta",
                    "item_id": openai_ids.public_id(openai_ids.REASONING, job.id),
                    "output_index": 0,
                    "summary_index": 0,
                    "delta": line + "\n",
                }
            )
        ]

    def closing(self, job: Job, answer: Answer | None, tokens: Tokens) -> list[dict[str, Any]]:
        """The events after the job has ended."""
        reasoning_id = openai_ids.public_id(openai_ids.REASONING, job.id)
        text = "".join(line + "\n" for line in self.lines)
        out = [
            self._event(
                {
                    "type": "response.reasoning_summary_text.done",
                    "item_id": reasoning_id,
                    "output_index": 0,
                    "summary_index": 0,
                    "text": text,
                }
            ),
            self._event(
                {
                    "type": "response.reasoning_summary_part.done",
                    "item_id": reasoning_id,
                    "output_index": 0,
                    "summary_index": 0,
                    "part": {"type": "summary_text", "text": text},
                }
            ),
            self._event(
                {
                    "type": "response.output_item.done",
                    "output_index": 0,
                    "item": reasoning_item(job, self.lines, done=True),
                }
            ),
        ]
        if answer is not None:
            message_id = openai_ids.public_id(openai_ids.MESSAGE, job.id)
            where = {"item_id": message_id, "output_index": 1, "content_index": 0}
            out += [
                self._event(
                    {
                        "type": "response.output_item.added",
                        "output_index": 1,
                        "item": message_item(job, answer, done=False),
                    }
                ),
                self._event(
                    {"type": "response.content_part.added", **where, "part": _output_text("")}
                ),
                self._event(
                    {
                        "type": "response.output_text.delta",
                        **where,
                        "delta": answer.text,
                        "logprobs": [],
                    }
                ),
                self._event(
                    {
                        "type": "response.output_text.done",
                        **where,
                        "text": answer.text,
                        "logprobs": [],
                    }
                ),
                self._event(
                    {
                        "type": "response.content_part.done",
                        **where,
                        "part": _output_text(answer.text),
                    }
                ),
                self._event(
                    {
                        "type": "response.output_item.done",
                        "output_index": 1,
                        "item": message_item(job, answer, done=True),
                    }
                ),
            ]
        final = response_object(job, answer=answer, tokens=tokens, progress=self.lines)
        kind = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(
            final["status"], "response.failed"
        )
        out.append(self._event({"type": kind, "response": final}))
        return out
