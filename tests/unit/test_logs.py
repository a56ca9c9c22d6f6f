"""Log lines (ponder.logs): one JSON object per line with the job's fields where they
apply, the human-readable format by default."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import format_span_id, format_trace_id, get_current_span

from ponder import logs, telemetry
from ponder.config import Settings


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing JSON lines into a buffer."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("ponder.test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, out
    finally:
        logger.removeHandler(handler)


def _records(out: io.StringIO) -> list[dict[str, Any]]:
    text = out.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_a_line_is_one_json_object(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = lines
    logger.warning("job %s: %s", "j1", "two\nlines and ünïcode")
    (record,) = _records(out)
    assert set(record) == {"time", "level", "logger", "message"}
    assert record["level"] == "WARNING"
    assert record["logger"] == "ponder.test.logs"
    assert record["message"] == "job j1: two\nlines and ünïcode"
    assert record["time"].endswith("+00:00")
    assert out.getvalue().isascii()


def test_the_context_names_the_job_and_ends_with_the_block(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = lines
    with logs.log_context(job_id="j1", tenant_id="t1"):
        with logs.log_context(slice=2, attempt=3, tenant_id=None):
            logger.info("inside")
        logger.info("outer")
    logger.info("after")
    inside, outer, after = _records(out)
    assert {k: inside[k] for k in ("job_id", "tenant_id", "slice", "attempt")} == {
        "job_id": "j1",
        "tenant_id": "t1",
        "slice": 2,
        "attempt": 3,
    }
    assert "slice" not in outer and outer["job_id"] == "j1"
    assert "job_id" not in after


def test_each_task_on_a_loop_keeps_its_own_fields(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = lines

    async def slice_(job_id: str, entered: list[str], go: asyncio.Event) -> None:
        with logs.log_context(job_id=job_id):
            entered.append(job_id)
            await go.wait()
            logger.info("%s", job_id)

    async def main() -> None:
        entered: list[str] = []
        go = asyncio.Event()
        tasks = [asyncio.ensure_future(slice_(job_id, entered, go)) for job_id in "ab"]
        while len(entered) < 2:  # both are inside their blocks before either logs
            await asyncio.sleep(0)
        go.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    records = _records(out)
    assert len(records) == 2
    assert all(r["job_id"] == r["message"] for r in records)


def test_exceptions_stay_on_the_line(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = lines
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failed")
    (record,) = _records(out)
    assert record["message"] == "failed"
    assert "RuntimeError: boom" in record["exception"]
    assert "Traceback" in record["exception"]


def test_with_tracing_on_a_line_names_its_span(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = lines
    provider = TracerProvider()
    telemetry.install(provider)
    try:
        with telemetry.span("ponder.test"):
            ctx = get_current_span().get_span_context()
            logger.info("in a span")
        logger.info("outside")
    finally:
        telemetry.uninstall()
        provider.shutdown()
    inside, outside = _records(out)
    assert inside["trace_id"] == format_trace_id(ctx.trace_id)
    assert inside["span_id"] == format_span_id(ctx.span_id)
    assert "trace_id" not in outside


def test_configure_replaces_the_root_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    try:
        logs.configure("json", "warning")
        assert root.level == logging.WARNING
        (handler,) = root.handlers
        assert isinstance(handler.formatter, logs.JsonFormatter)
        logs.configure("text", logging.INFO)
        assert not isinstance(root.handlers[0].formatter, logs.JsonFormatter)
    finally:
        logging.captureWarnings(False)


def test_the_setting_defaults_to_text_and_refuses_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PONDER_LOG_FORMAT", raising=False)
    assert Settings().log_format == "text"
    monkeypatch.setenv("PONDER_LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    monkeypatch.setenv("PONDER_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        Settings()
