"""Errors of the OpenAI-compatible surface, raised in the core and shown by the API in
OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``. Field errors found by
Ponder's own checks (:class:`ponder.field_errors.Invalid`, a batch line's
:class:`ponder.jobspec.ItemInvalid`) are renamed to the request's own fields (``model``,
``messages[0].content``, ``ponder.budget.max_tokens``, ``reasoning.effort``, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ponder.errors import ErrorCode, PonderError


class OpenAIRequestError(PonderError):
    """A request the surface refuses: ``status`` (400 unless said), ``param`` (the
    request field at fault, dotted), ``error_code`` (OpenAI's ``code``) and a message
    saying what to change."""

    code = ErrorCode.INVALID

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        error_code: str | None = None,
        status: int = 400,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.error_code = error_code
        self.status = status


class ModelNotFound(OpenAIRequestError):
    """``model`` names nothing this server runs (a 404 ``model_not_found``)."""

    code = ErrorCode.NOT_FOUND

    def __init__(self, message: str, *, param: str = "model") -> None:
        super().__init__(message, param=param, error_code="model_not_found", status=404)


PONDER_BUDGET = "ponder.budget"


@dataclass(frozen=True)
class Origins:
    """Which request field each part of the job came from, to name it in errors."""

    messages: str = "messages"  # the conversation (``input`` for the Responses API)
    seed: str = "seed"
    effort_field: str = "reasoning_effort"  # ``reasoning.effort`` for Responses
    max_tokens_field: str = "max_completion_tokens"
    # the field the job's budget came from (PONDER_BUDGET, the effort or the token cap)
    budget: str = PONDER_BUDGET
    # the reasoning effort whose budget the job has, if it has one
    effort: str | None = None


def param_for(loc: Sequence[Any], origins: Origins) -> str:
    """The request field that a job field's error location (``("body", "budget",
    "max_tokens")``, ``("problem", "messages", 0, "content")``, ...) came from."""
    parts = [str(p) for p in loc]
    if parts[:1] == ["body"]:
        parts = parts[1:]
    if not parts:
        return "request"
    head, rest = parts[0], parts[1:]
    if head == "budget":
        # a budget the request gave as such names its field; one made from another
        # field (an effort, a token cap) names that field
        return _dotted(origins.budget, rest if origins.budget == PONDER_BUDGET else [])
    if head == "strategy":
        if rest[:1] == ["params"]:
            return _dotted("ponder.params", rest[1:])
        return "model"
    if head == "problem":
        if rest[:1] == ["messages"]:
            index = f"[{rest[1]}]" if len(rest) > 1 else ""
            return _dotted(origins.messages + index, rest[2:])
        if rest and rest[0] in ("task", "input", "expected"):
            return _dotted("ponder." + rest[0], rest[1:])
        return origins.messages
    if head == "seed":
        return origins.seed
    if head == "metadata":
        return "metadata"
    if head == "model":
        return "model"
    return _dotted("ponder." + head, rest)


def _dotted(base: str, rest: Sequence[str]) -> str:
    return ".".join([base, *rest]) if rest else base


def from_field_errors(
    errors: Sequence[dict[str, Any]], detail: str, origins: Origins
) -> OpenAIRequestError:
    """The 400 for a job whose fields Ponder refused (``errors`` as in a 422's
    ``errors``), each message prefixed with the request field it is about."""
    if not errors:
        return OpenAIRequestError(detail)
    messages = []
    for error in errors[:4]:
        loc = list(error.get("loc", ()))
        param = param_for(loc, origins)
        text = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            text = "unknown field; remove it"
        field = [str(p) for p in loc if p != "body"]
        if origins.effort is not None and field[:1] == ["budget"] and len(field) > 1:
            text = (
                f"reasoning effort {origins.effort!r} sets budget.{field[1]}, which {text}; "
                "choose a lower effort, or set `ponder.budget` yourself"
            )
        messages.append(f"{param}: {text}")
    if len(errors) > 4:
        messages.append(f"and {len(errors) - 4} more")
    first = param_for(list(errors[0].get("loc", ())), origins)
    return OpenAIRequestError("; ".join(messages), param=first)
