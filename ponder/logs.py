"""Log lines of the API, worker and beat: human-readable by default, or one JSON object
per line with ``PONDER_LOG_FORMAT=json`` (for log collectors).

A JSON line has ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, the
traceback under ``exception`` when there is one, and what is known of the work the line
is about: ``job_id``, ``tenant_id``, ``slice`` (which slice of the job: 1 for the first,
one more after each hand-off) and ``attempt`` (the lease's fencing number, one more at
every claim) while a worker runs a slice, ``job_id`` and ``tenant_id`` while the API
submits a job; with tracing on (:mod:`ponder.telemetry`), ``trace_id`` and ``span_id``.
Those fields come from :func:`log_context`, which code that knows them wraps around the
work (a context variable: each slice on a worker's event loop has its own).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from ponder import telemetry

LogFormat = Literal["text", "json"]

# the human-readable line of the processes whose logging Ponder sets up itself
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_context: ContextVar[Mapping[str, str | int] | None] = ContextVar("ponder_log", default=None)


@contextmanager
def log_context(**fields: str | int | None) -> Iterator[None]:
    """Add ``fields`` (those not None) to every log line written inside the block, in
    this thread or task and the tasks it starts."""
    current = _context.get()
    merged = dict(current or {})
    merged.update({k: v for k, v in fields.items() if v is not None})
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def context_fields() -> Mapping[str, str | int]:
    """The fields :func:`log_context` set here."""
    return _context.get() or {}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages and tracebacks are
    escaped; non-ASCII text too, so any output encoding takes it)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = _context.get()
        if fields:
            data.update(fields)
        ids = telemetry.current_ids()
        if ids is not None:
            data["trace_id"], data["span_id"] = ids
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=str)


def formatter(fmt: LogFormat, text_format: str = TEXT_FORMAT) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(text_format)


def configure(fmt: LogFormat, level: str | int = "INFO", *, text_format: str = TEXT_FORMAT) -> None:
    """Send every log record at ``level`` or above to standard error, one line each in
    ``fmt``, replacing the root logger's handlers; Python warnings are logged too."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(fmt, text_format))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.captureWarnings(True)
