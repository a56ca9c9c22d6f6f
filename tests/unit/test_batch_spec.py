"""Batch request shapes and JSON Lines parsing (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from ponder.batches.spec import BatchBudget, BatchSpec, BatchTemplate, JobDefaults, JobFilter
from ponder.jsonl import parse_jsonl


def test_a_spec_names_exactly_one_source() -> None:
    assert BatchSpec.model_validate({"items": [{}]}).items == [{}]
    assert BatchSpec.model_validate({"dataset": "game24"}).dataset == "game24"
    assert BatchSpec.model_validate({"from_jobs": {}}).from_jobs == JobFilter()
    for bad in ({}, {"items": [], "dataset": "x"}, {"dataset": "x", "from_jobs": {}}):
        with pytest.raises(ValidationError, match="exactly one of"):
            BatchSpec.model_validate(bad)


def test_a_template_has_no_inline_items() -> None:
    with pytest.raises(ValidationError, match="exactly one of `dataset`, `from_jobs`"):
        BatchTemplate.model_validate({"defaults": {}})
    with pytest.raises(ValidationError, match="items"):
        BatchTemplate.model_validate({"dataset": "x", "items": []})
    template = BatchTemplate.model_validate({"dataset": "game24", "metadata": {"k": 1}})
    # a stored template round-trips (schedules keep it as JSON)
    assert BatchTemplate.model_validate(template.model_dump(mode="json")) == template


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        ({"max_tokens": 0}, "greater than 0"),
        ({}, "max_tokens and/or max_cost_usd"),
        ({"max_calls": 5}, "Extra inputs"),
    ],
)
def test_batch_budget(data: dict[str, Any], phrase: str) -> None:
    with pytest.raises(ValidationError, match=phrase):
        BatchBudget.model_validate(data)


def test_defaults_become_job_fields() -> None:
    defaults = JobDefaults.model_validate(
        {"strategy": {"name": "best_of_n"}, "priority": 2, "metadata": {"a": 1}}
    )
    assert defaults.as_body() == {"strategy": {"name": "best_of_n", "params": {}}, "priority": 2}
    with pytest.raises(ValidationError):
        JobDefaults.model_validate({"priority": True})  # strict: not a number


@pytest.mark.parametrize(
    "url", ["ftp://x.example/a", "https://", "http://exa mple.com", "https://x.example:99999/"]
)
def test_batch_webhook_url_must_be_http(url: str) -> None:
    with pytest.raises(ValidationError, match="webhook_url"):
        BatchSpec.model_validate({"items": [{}], "webhook_url": url})


def test_job_filter_times_need_a_zone_and_an_order() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        JobFilter.model_validate({"created_after": "2026-01-01T00:00:00"})
    with pytest.raises(ValidationError, match="earlier"):
        JobFilter.model_validate(
            {"created_after": "2026-01-02T00:00:00Z", "created_before": "2026-01-01T00:00:00Z"}
        )


def test_jsonl_lines_keep_their_numbers_and_bad_ones_are_reported() -> None:
    text = "\n".join(
        [
            json.dumps({"a": 1}),
            "",
            "  \t",
            "{bad",
            json.dumps({"b": "x" * 100}),
            "NaN",
            "[1]",
        ]
    )
    lines, errors = parse_jsonl(text + "\r\n", max_line_bytes=64)
    assert [(line.number, line.value) for line in lines] == [(1, {"a": 1}), (7, [1])]
    assert [(e.line, e.errors[0]["type"]) for e in errors] == [
        (4, "json_invalid"),
        (5, "too_long"),
        (6, "json_invalid"),
    ]
    assert "at most 64 bytes" in errors[1].detail
