"""Errors in what a client sent, described field by field: the wording every 422 uses,
whether the API or the batch and schedule code finds the problem."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ponder.errors import ErrorCode, PonderError

# the largest number of field errors spelled out in ``detail`` (all are in ``errors``)
_MAX_DETAILED_ERRORS = 8


class Invalid(PonderError):
    """One or more invalid fields of a request (a 422 in the API). ``errors`` holds one
    entry per field: ``loc`` (its path), ``msg`` and ``type``."""

    code = ErrorCode.INVALID

    def __init__(self, detail: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


def invalid(loc: Sequence[str | int], message: str) -> Invalid:
    """An :class:`Invalid` for one field, shaped like pydantic's validation errors."""
    return Invalid(
        f"{dotted(loc)}: {message}", [{"loc": list(loc), "msg": message, "type": "value_error"}]
    )


def dotted(loc: Sequence[str | int]) -> str:
    return ".".join(str(part) for part in loc) or "request"


_NOT_AN_OBJECT = frozenset({"dict_type", "model_type", "model_attributes_type"})
_WHOLE_BODY_ERRORS = _NOT_AN_OBJECT | {"missing"}


def describe_validation_errors(raw: Sequence[Any]) -> tuple[str, list[dict[str, Any]]]:
    """A readable one-line summary of pydantic/FastAPI errors and a JSON-safe list of
    them (location, message, type; never the input, which may be large or secret)."""
    messages: list[str] = []
    errors: list[dict[str, Any]] = []
    for error in raw:
        loc: tuple[str | int, ...] = tuple(error.get("loc", ()))
        kind = str(error.get("type", "value_error"))
        message = _message(kind, loc, error)
        errors.append({"loc": list(loc), "msg": message, "type": kind})
        if kind == "json_invalid" or (loc == ("body",) and kind in _WHOLE_BODY_ERRORS):
            messages.append(message)  # already says it is about the whole body
        else:
            messages.append(f"{dotted(loc)}: {message}")
    if not messages:
        return "the request is not valid", errors
    shown = messages[:_MAX_DETAILED_ERRORS]
    if len(messages) > len(shown):
        shown.append(f"and {len(messages) - len(shown)} more (see `errors`)")
    return "; ".join(shown), errors


def _message(kind: str, loc: tuple[str | int, ...], error: dict[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    if kind == "json_invalid":
        position = f" at character {loc[1]}" if len(loc) > 1 else ""
        reason = ctx.get("error", "syntax error")
        return (
            f"request body is not valid JSON ({reason}{position}); "
            "send a JSON object with Content-Type: application/json"
        )
    if loc == ("body",) and kind == "missing":
        return "request body is required: send a JSON object with Content-Type: application/json"
    if loc == ("body",) and kind in _NOT_AN_OBJECT:
        return "request body must be a JSON object ({...})"
    if kind == "extra_forbidden":
        return "unknown field; remove it (check the spelling against the API schema)"
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")
