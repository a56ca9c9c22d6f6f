"""Request validation that needs no database: JobCreate, cursors, error summaries."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from api.schemas import JobCreate
from ponder.field_errors import describe_validation_errors
from ponder.pagination import Cursor
from ponder.submission import request_hash

GOOD: dict[str, Any] = {
    "problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}},
    "strategy": {"name": "best_of_n", "params": {"n": 4}},
}


def errors_of(**changes: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        JobCreate.model_validate({**GOOD, **changes})
    detail, _ = describe_validation_errors(caught.value.errors())
    return detail


def test_defaults() -> None:
    job = JobCreate.model_validate(GOOD)
    assert job.model == "sim" and job.priority == 0 and job.metadata == {}
    assert job.budget is None and job.seed is None and job.webhook_url is None


def test_budget_must_bound_spend() -> None:
    assert "at least one of max_tokens" in errors_of(budget={})
    assert "at least one of" in errors_of(budget={"max_seconds": 10})
    JobCreate.model_validate({**GOOD, "budget": {"max_cost_usd": 0.1}})


@pytest.mark.parametrize(
    "url", ["http://example.com/h", "https://example.com:8443/a?b=c", "HTTPS://EXAMPLE.COM"]
)
def test_http_webhooks_are_fine(url: str) -> None:
    assert JobCreate.model_validate({**GOOD, "webhook_url": url}).webhook_url == url


@pytest.mark.parametrize(
    "url", ["ftp://example.com", "example.com/hook", "https://", "http://a b", "file:///etc/passwd"]
)
def test_other_webhooks_are_refused(url: str) -> None:
    assert "webhook_url" in errors_of(webhook_url=url)


def test_metadata_size_is_measured_as_json() -> None:
    JobCreate.model_validate({**GOOD, "metadata": {"a": "x" * 16_000}})
    assert "bytes" in errors_of(metadata={"a": "x" * 16_400})
    # multi-byte characters count as the bytes they take
    assert "bytes" in errors_of(metadata={"a": "é" * 8_200})


def test_strings_with_nul_are_refused_with_their_location() -> None:
    detail = errors_of(metadata={"list": ["ok", "bad\x00"]})
    assert "NUL" in detail and "metadata.list[1]" in detail


def test_non_finite_numbers_are_refused() -> None:
    assert "finite" in errors_of(metadata={"x": float("inf")})


def test_the_request_hash_ignores_key_order_and_spelled_out_defaults() -> None:
    a = JobCreate.model_validate(GOOD)
    b = JobCreate.model_validate(
        {"strategy": GOOD["strategy"], "problem": GOOD["problem"], "model": "sim", "priority": 0}
    )
    c = JobCreate.model_validate({**GOOD, "priority": 1})
    assert request_hash(a) == request_hash(b) != request_hash(c)


def test_cursor_round_trip() -> None:
    cursor = Cursor(
        datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), "0b0e5d8e-7f8a-4a57-9a3e-1f5c2b9d6a10"
    )
    assert Cursor.decode(cursor.encode()) == cursor


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "!!!",
        "x" * 500,
        _b64("just a string"),
        _b64(["2025-01-01T00:00:00", "0b0e5d8e-7f8a-4a57-9a3e-1f5c2b9d6a10"]),  # naive time
        _b64(["2025-01-01T00:00:00+00:00", "not-a-uuid"]),
        _b64(["yesterday", "0b0e5d8e-7f8a-4a57-9a3e-1f5c2b9d6a10"]),
        _b64(["2025-01-01T00:00:00+00:00", 5]),
        _b64([1, 2, 3]),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_bad_cursors_decode_to_none(text: str) -> None:
    assert Cursor.decode(text) is None


def test_validation_summary_names_each_field() -> None:
    detail, errors = describe_validation_errors(
        [
            {
                "loc": ("body", "budget", "max_tokens"),
                "msg": "Input should be greater than 0",
                "type": "greater_than",
            },
            {
                "loc": ("body", "x"),
                "msg": "Extra inputs are not permitted",
                "type": "extra_forbidden",
            },
        ]
    )
    assert detail.startswith(
        "body.budget.max_tokens: Input should be greater than 0; body.x: unknown field"
    )
    assert errors[0] == {
        "loc": ["body", "budget", "max_tokens"],
        "msg": "Input should be greater than 0",
        "type": "greater_than",
    }


def test_validation_summary_is_capped() -> None:
    raw = [{"loc": ("body", f"f{i}"), "msg": "bad", "type": "value_error"} for i in range(20)]
    detail, errors = describe_validation_errors(raw)
    assert len(errors) == 20
    assert "and 12 more" in detail
