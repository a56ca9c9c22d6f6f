"""JSON Lines uploads, read line by line so one bad line is reported by its number
instead of refusing the whole upload."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ponder.jsonlimits import MAX_DOCUMENT_DEPTH, nested_too_deep, too_deep_message


@dataclass(frozen=True)
class LineError:
    """Why one item (an upload line, or a position in ``items``) was not accepted."""

    detail: str
    line: int | None = None  # 1-based line number of a JSON Lines upload
    index: int | None = None  # 0-based position among the items
    custom_id: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"detail": self.detail, "errors": self.errors}
        if self.line is not None:
            out["line"] = self.line
        if self.index is not None:
            out["index"] = self.index
        if self.custom_id is not None:
            out["custom_id"] = self.custom_id
        return out

    def where(self) -> str:
        if self.line is not None:
            return f"line {self.line}"
        if self.index is not None:
            return f"item {self.index}"
        return "batch"


@dataclass(frozen=True)
class Line:
    number: int  # 1-based
    value: Any


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


def parse_jsonl(text: str, *, max_line_bytes: int) -> tuple[list[Line], list[LineError]]:
    """The JSON values of ``text``'s non-blank lines with their line numbers, and an error
    for each line that is not JSON or is longer than ``max_line_bytes``."""
    lines: list[Line] = []
    errors: list[LineError] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        size = len(stripped.encode())
        if size > max_line_bytes:
            errors.append(
                LineError(
                    f"the line is {size} bytes; at most {max_line_bytes} bytes per line are "
                    "allowed (shorten the problem, or split it differently)",
                    line=number,
                    errors=[{"loc": ["line"], "msg": "line too long", "type": "too_long"}],
                )
            )
            continue
        if nested_too_deep(stripped, MAX_DOCUMENT_DEPTH):
            errors.append(
                LineError(
                    f"the line is {too_deep_message(MAX_DOCUMENT_DEPTH)}",
                    line=number,
                    errors=[{"loc": ["line"], "msg": "nested too deep", "type": "too_deep"}],
                )
            )
            continue
        try:
            value = json.loads(stripped, parse_constant=_reject_constant)
        except ValueError as exc:
            errors.append(
                LineError(
                    f"not valid JSON ({exc}); each line must be one JSON object",
                    line=number,
                    errors=[{"loc": ["line"], "msg": str(exc), "type": "json_invalid"}],
                )
            )
            continue
        lines.append(Line(number, value))
    return lines, errors
