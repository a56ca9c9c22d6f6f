"""What OpenAI-shaped requests share: the ``ponder`` object of the extra body, the
conversation's messages, and turning it all into a checked :class:`JobCreate`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ponder.catalog import StrategyCatalog
from ponder.jobspec import JobCreate
from ponder.llm.profiles import ModelProfile
from ponder.openai_compat.effort import effort_budget, known_efforts
from ponder.openai_compat.errors import (
    PONDER_BUDGET,
    OpenAIRequestError,
    Origins,
    from_field_errors,
)
from ponder.openai_compat.models import ModelChoice, resolve
from ponder.webhooks.openai_events import OPENAI

PONDER_FORMAT = "ponder"


class PonderExtras(BaseModel):
    """Ponder's own fields of a request, sent in the extra body as ``ponder``
    (``extra_body={"ponder": {...}}`` with the ``openai`` package)."""

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(
        default_factory=dict, description="The strategy's parameters (GET /v1/strategies)."
    )
    verifier: dict[str, Any] | None = Field(
        default=None, description='How answers are checked, e.g. {"type": "exact"}.'
    )
    budget: dict[str, Any] | None = Field(
        default=None,
        description="The job's budget: max_tokens, max_calls, max_cost_usd, max_seconds.",
    )
    task: str | None = Field(
        default=None, description="A problem family (e.g. game24): its prompt is used."
    )
    input: dict[str, Any] | None = Field(default=None, description="The task's instance.")
    expected: Any = Field(default=None, description="The known answer, if any.")
    priority: int | None = Field(default=None, description="0 to 9.")
    seed: int | None = Field(default=None, description="Seeds the strategy's randomness.")
    webhook_url: str | None = Field(default=None, description="Gets an event when it ends.")
    webhook_format: Literal["openai", "ponder"] = Field(
        default="openai",
        description="`openai` (response.* events) or `ponder` (job.* events).",
    )


def parse_extras(value: Any) -> PonderExtras:
    """The request's ``ponder`` object; a 400 naming the field if it is malformed."""
    if value is None:
        return PonderExtras()
    if not isinstance(value, dict):
        raise OpenAIRequestError(
            "ponder: must be an object of Ponder's fields (params, verifier, budget, task, "
            "input, expected, priority, seed, webhook_url, webhook_format)",
            param="ponder",
        )
    try:
        return PonderExtras.model_validate(value)
    except ValidationError as exc:
        known = ", ".join(PonderExtras.model_fields)
        error = exc.errors(include_url=False, include_input=False)[0]
        param = ".".join(["ponder", *(str(p) for p in error["loc"])])
        if error["type"] == "extra_forbidden":
            message = f"unknown field; Ponder's fields are: {known}"
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
        raise OpenAIRequestError(f"{param}: {message}", param=param) from None


def text_of(content: Any, where: str, part_types: tuple[str, ...]) -> str:
    """The text of a message's ``content``: a string, or a list of text parts (of
    ``part_types``) joined by newlines. Anything else is a 400 naming the part."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            text = part.get("text") if isinstance(part, dict) else None
            if kind not in part_types or not isinstance(text, str):
                shown = kind if isinstance(kind, str) else type(part).__name__
                raise OpenAIRequestError(
                    f"{where}[{j}]: only text parts ({', '.join(part_types)}) are supported "
                    f"(got {shown!r}); send the content as text",
                    param=f"{where}[{j}]",
                )
            texts.append(text)
        return "\n".join(texts)
    raise OpenAIRequestError(f"{where}: must be a string or a list of text parts", param=where)


ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def role_of(value: Any, where: str) -> str:
    role = ROLES.get(value) if isinstance(value, str) else None
    if role is None:
        raise OpenAIRequestError(
            f"{where}: the role {value!r} is not supported; use system, developer, user or "
            "assistant (tools and function calls are not)",
            param=where,
        )
    return role


@dataclass(frozen=True)
class Plan:
    """A checked job for an OpenAI-shaped request, and what to store beside it."""

    job: JobCreate
    origins: Origins
    model: ModelChoice
    webhook_format: str | None
    # kept on the job (``jobs.openai``): what the request said beyond the job's fields
    openai: dict[str, Any]


def plan_job(
    *,
    model: str,
    messages: list[dict[str, str]],
    extras: PonderExtras,
    effort: str | None,
    max_tokens: int | None,
    metadata: dict[str, Any] | None,
    seed: int | None,
    origins: Origins,
    models: dict[str, ModelProfile],
    strategies: StrategyCatalog,
    openai: dict[str, Any],
) -> Plan:
    """The job a request asks for. ``origins`` name the request's fields for messages,
    seed, effort and token cap (``budget`` is set here from what gave the budget).

    The budget is ``ponder.budget`` if given, else the effort's
    (:data:`ponder.openai_compat.effort.EFFORT_BUDGETS`), else ``max_tokens`` (the
    request's token cap, spent over every call, prompts included), else the server's
    default. The problem is ``ponder.task`` + ``ponder.input`` if given (the family writes
    the prompt; the messages are not sent), else the messages (with ``ponder.expected``)."""
    choice = resolve(model, models, strategies)
    budget: dict[str, Any] | None = None
    if extras.budget is not None:
        budget, origins = extras.budget, replace(origins, budget=PONDER_BUDGET, effort=None)
    elif effort is not None:
        budget = effort_budget(effort)
        if budget is None:
            raise OpenAIRequestError(
                f"{origins.effort_field}: unknown reasoning effort {effort!r}; use one of "
                f"{known_efforts()} (each is a documented budget), or set `ponder.budget`",
                param=origins.effort_field,
            )
        origins = replace(origins, budget=origins.effort_field, effort=effort)
    elif max_tokens is not None:
        budget = {"max_tokens": max_tokens}
        origins = replace(origins, budget=origins.max_tokens_field, effort=None)
    if extras.task is not None:
        problem: dict[str, Any] = {"task": extras.task, "input": extras.input}
    elif extras.input is not None:
        raise OpenAIRequestError(
            "ponder.input: give ponder.task with it (the problem family the input is for), "
            "or leave it out and pose the problem in the messages",
            param="ponder.input",
        )
    else:
        problem = {"messages": messages}
    if extras.expected is not None:
        problem["expected"] = extras.expected
    body: dict[str, Any] = {
        "problem": problem,
        "strategy": {"name": choice.strategy, "params": extras.params},
        "model": choice.profile,
        "metadata": metadata or {},
    }
    for key, value in (
        ("verifier", extras.verifier),
        ("budget", budget),
        ("webhook_url", extras.webhook_url),
        ("priority", extras.priority),
        ("seed", extras.seed if extras.seed is not None else seed),
    ):
        if value is not None:
            body[key] = value
    if extras.seed is not None:
        origins = replace(origins, seed="ponder.seed")
    try:
        job = JobCreate.model_validate(body)
    except ValidationError as exc:
        errors = [dict(e) for e in exc.errors(include_url=False, include_input=False)]
        raise from_field_errors(errors, "the request is not valid", origins) from None
    webhook_format = OPENAI if extras.webhook_format == OPENAI else None
    stored = {**openai, "model": choice.name}
    if effort is not None:
        stored["reasoning_effort"] = effort
    return Plan(job, origins, choice, webhook_format, stored)
