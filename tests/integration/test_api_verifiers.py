"""Verifier specs are checked at submit time: a bad one is a 422 whose detail says
what to fix; a good one is accepted (202). Against real Postgres and Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ponder.config import Settings
from tests.api_helpers import api_client, assert_problem, auth_headers, job_body
from tests.jobs_helpers import load_job

pytestmark = pytest.mark.integration

FREE = {"prompt": "Give the capital of France as JSON.", "expected": "Paris"}

BAD: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("unknown type", {"type": "oracle"}, ("unknown verifier type 'oracle'", "json_schema")),
    ("unknown option", {"type": "exact", "strict": True}, ("'strict'", "case_sensitive")),
    ("regex missing pattern", {"type": "regex"}, ('needs a "pattern"',)),
    (
        "regex does not compile",
        {"type": "regex", "pattern": "[a-"},
        ("does not compile", "missing ]"),
    ),
    (
        "regex backreference",
        {"type": "regex", "pattern": "(a)\\1"},
        ("uses backreferences (\\1), which RE2 does not support",),
    ),
    (
        "regex lookbehind",
        {"type": "regex", "pattern": "(?<!a)b"},
        ("uses negative lookbehind (?<!...), which RE2 does not support",),
    ),
    (
        "regex lookahead",
        {"type": "regex", "pattern": "x(?=y)"},
        ("uses lookahead (?=...), which RE2 does not support",),
    ),
    (
        "regex possessive",
        {"type": "regex", "pattern": "a++"},
        ("uses possessive quantifiers (++), which RE2 does not support",),
    ),
    (
        "schema lookahead",
        {"type": "json_schema", "schema": {"type": "string", "pattern": "^(?=a)"}},
        ("'pattern' in the schema", "uses lookahead (?=...)"),
    ),
    ("regex flag", {"type": "regex", "pattern": "a", "flags": ["FAST"]}, ("unknown regex flag",)),
    (
        "schema invalid",
        {"type": "json_schema", "schema": {"type": "integerish"}},
        ("not a valid JSON Schema", "at type"),
    ),
    (
        "schema bad pattern",
        {"type": "json_schema", "schema": {"type": "string", "pattern": "(x"}},
        ("not a valid JSON Schema",),
    ),
    (
        "judge unknown model",
        {"type": "llm_judge", "model": "gpt-nope", "rubric": "Correct capital."},
        ("unknown judge model 'gpt-nope'", "sim"),
    ),
    (
        "judge is a reward model",
        {"type": "llm_judge", "model": "sim-prm", "rubric": "Correct capital."},
        ("is a reward model",),
    ),
    (
        "judge threshold",
        {"type": "llm_judge", "model": "sim", "rubric": "x", "pass_threshold": 1.5},
        ("pass_threshold", "from 0 to 1"),
    ),
    ("judge without rubric", {"type": "llm_judge", "model": "sim"}, ('needs a "rubric"',)),
    (
        "reward model is a chat model",
        {"type": "reward_model", "model": "sim"},
        ("not a reward model", "sim-prm"),
    ),
    (
        "reward model threshold",
        {"type": "reward_model", "model": "sim-prm", "pass_threshold": "high"},
        ("pass_threshold",),
    ),
]


@pytest.mark.parametrize(("verifier", "phrases"), [pytest.param(v, p, id=i) for i, v, p in BAD])
def test_bad_verifier_spec_is_a_422(
    client: TestClient, headers: dict[str, str], verifier: dict[str, Any], phrases: tuple[str, ...]
) -> None:
    body = job_body(problem=FREE, verifier=verifier)
    response = client.post("/v1/jobs", json=body, headers=headers)
    assert_problem(response, 422, "body.verifier", *phrases)


GOOD: list[dict[str, Any]] = [
    {"type": "exact", "case_sensitive": True},
    {"type": "regex", "pattern": "paris", "flags": ["IGNORECASE"], "full_match": False},
    # once refused as catastrophic; RE2 matches them in linear time
    {"type": "regex", "pattern": "(a|aa)+$"},
    {"type": "regex", "pattern": "(a|a)*$"},
    {"type": "regex", "pattern": "(.*){25}x"},
    {"type": "regex", "pattern": "(\\w+\\s?)+$"},
    {"type": "regex", "pattern": "(x+x+)+y"},
    {"type": "regex", "pattern": "(a+)+$"},
    {
        "type": "json_schema",
        "schema": {
            "type": "object",
            "properties": {"capital": {"type": "string", "pattern": "^[A-Z]"}},
            "required": ["capital"],
        },
    },
    {"type": "llm_judge", "model": "sim", "rubric": "Names Paris.", "pass_threshold": 0.8},
    {"type": "reward_model", "model": "sim-prm", "pass_threshold": 0.6},
]


@pytest.mark.parametrize("verifier", GOOD, ids=[v.get("pattern", v["type"]) for v in GOOD])
def test_good_verifier_spec_is_accepted(
    pg_settings: Settings, client: TestClient, headers: dict[str, str], verifier: dict[str, Any]
) -> None:
    body = job_body(problem=FREE, verifier=verifier)
    response = client.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == 202, response.text
    assert load_job(pg_settings, response.json()["id"]).verifier == verifier


def test_judge_from_the_models_file(pg_settings: Settings, tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    models.write_text(
        "models:\n  - name: judge-sim\n    provider: sim\n    model: sim-1\n", encoding="utf-8"
    )
    settings = pg_settings.model_copy(update={"models_file": str(models)})
    with api_client(settings) as client:
        headers = auth_headers(client)
        verifier = {"type": "llm_judge", "model": "judge-sim", "rubric": "Names Paris."}
        body = job_body(problem=FREE, verifier=verifier)
        assert client.post("/v1/jobs", json=body, headers=headers).status_code == 202
