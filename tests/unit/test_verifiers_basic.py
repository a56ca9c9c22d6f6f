"""exact, regex and json_schema verifiers, and submit-time spec validation, including
adversarial input: huge answers, catastrophic regexes, deeply nested JSON."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from ponder.llm.profiles import load_models_file
from ponder.problem import Problem
from ponder.verifiers import build_verifier, validate_verifier_spec, verifier_types
from ponder.verifiers.base import Verdict
from ponder.verifiers.exact import ExactVerifier
from ponder.verifiers.json_schema import JsonSchemaVerifier, extract_json_text
from ponder.verifiers.regex import BoundedChecker, RegexVerifier, compile_pattern

FREE = Problem(prompt="Say something.")
MODELS = load_models_file(None)  # sim (chat) and sim-prm (reward)


def with_expected(expected: Any) -> Problem:
    return Problem(prompt="Q?", expected=expected)


def run(spec: dict[str, Any], answer: str, problem: Problem = FREE) -> Verdict:
    validate_verifier_spec(spec, problem, MODELS)
    return asyncio.run(build_verifier(spec).verify(problem, answer))


# --- exact ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected", "passed"),
    [
        ("Paris", "paris", True),
        ("  The   Eiffel\nTower. ", "the eiffel tower", True),
        ("`42`", 42, True),
        ("ﬁne", "fine", True),  # NFKC ligature
        ("London", "Paris", False),
    ],
)
def test_exact(answer: str, expected: Any, passed: bool) -> None:
    verdict = run({"type": "exact"}, answer, with_expected(expected))
    assert verdict.passed is passed
    assert verdict.score == (1.0 if passed else 0.0)


def test_exact_case_sensitive() -> None:
    spec = {"type": "exact", "case_sensitive": True}
    assert run(spec, "Paris", with_expected("Paris")).passed
    verdict = run(spec, "paris", with_expected("Paris"))
    assert not verdict.passed and "letter case" in verdict.feedback


def test_exact_huge_answer_is_refused_quickly() -> None:
    verdict = asyncio.run(ExactVerifier().verify(with_expected("x"), "x" * 5_000_000))
    assert not verdict.passed and "characters long" in verdict.feedback


# --- regex ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "answer", "passed"),
    [
        ({"pattern": "[A-D]"}, " B ", True),
        ({"pattern": "[A-D]"}, "b", False),
        ({"pattern": "[A-D]", "flags": ["IGNORECASE"]}, "b", True),
        ({"pattern": "[A-D]"}, "The answer is B", False),
        ({"pattern": r"\b[A-D]\b", "full_match": False}, "The answer is B", True),
        ({"pattern": r"(\d+,)*\d+"}, "1,22,333", True),
        ({"pattern": "a.b", "flags": ["dotall"]}, "a\nb", True),
    ],
)
def test_regex(spec: dict[str, Any], answer: str, passed: bool) -> None:
    verdict = run({"type": "regex", **spec}, answer)
    assert verdict.passed is passed, verdict
    assert verdict.score == (1.0 if passed else 0.0)


def test_regex_catastrophic_backtracking_is_stopped_and_the_checker_recovers() -> None:
    checker = BoundedChecker()
    try:
        # (a|a)* passes the static check but backtracks exponentially on a near-miss
        slow = RegexVerifier(r"(a|a)*c", checker=checker, timeout_s=0.5)
        started = time.monotonic()
        verdict = asyncio.run(slow.verify(FREE, "a" * 40 + "b"))
        assert time.monotonic() - started < 5
        assert not verdict.passed and "longer than 0.5 s" in verdict.feedback
        fine = RegexVerifier("a+", checker=checker)
        assert asyncio.run(fine.verify(FREE, "aaa")).passed  # a new checker took over
    finally:
        checker.close()


def test_regex_huge_answer_is_not_matched() -> None:
    verdict = run({"type": "regex", "pattern": "a+"}, "a" * 1_000_000)
    assert not verdict.passed and "characters long" in verdict.feedback


def test_regex_concurrent_matches() -> None:
    verifier = RegexVerifier(r"\d+")

    async def many() -> list[Verdict]:
        return list(await asyncio.gather(*(verifier.verify(FREE, str(i)) for i in range(50))))

    assert all(v.passed for v in asyncio.run(many()))


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(?:\w*)*x", r"(a|b*)*", r"((ab)+)+", r"(x(a+)+)"])
def test_nested_quantifiers_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="repeats a repetition"):
        compile_pattern(pattern)


# --- json_schema ---------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"price": {"type": "number"}}},
        }
    },
    "required": ["items"],
}


@pytest.mark.parametrize(
    ("answer", "score", "phrase"),
    [
        ('{"items": [{"price": 1.5}]}', 1.0, "valid"),
        ('Sure:\n```json\n{"items": []}\n```\nDone.', 1.0, "valid"),
        ('```\n{"items": []}\n```', 1.0, "valid"),
        ('{"items": [{"price": 1}, {"price": "two"}]}', 0.5, "$.items[1].price"),
        ('{"things": []}', 0.5, "'items' is a required property"),
        ("items: none", 0.0, "not valid JSON"),
        ('{"items": [NaN]}', 0.0, "not valid JSON"),
    ],
)
def test_json_schema(answer: str, score: float, phrase: str) -> None:
    verdict = run({"type": "json_schema", "schema": SCHEMA}, answer)
    assert verdict.score == score, verdict
    assert verdict.passed is (score == 1.0)
    assert phrase in verdict.feedback


def test_json_schema_adversarial_answers() -> None:
    spec = {"type": "json_schema", "schema": {"type": "array"}}
    deep = run(spec, "[" * 40_000 + "]" * 40_000)
    assert deep.score == 0.0 and "too deeply" in deep.feedback
    nested = run(spec, "[" * 200 + "]" * 200)  # parses, but deeper than allowed
    assert nested.score == 0.0 and "levels deep" in nested.feedback
    huge = run(spec, "[" + "1," * 500_000 + "1]")
    assert huge.score == 0.0 and "characters long" in huge.feedback
    unclosed = "```json\n" + "`" * 50_000  # no closing fence: read whole, linearly
    started = time.monotonic()
    assert run(spec, unclosed).score == 0.0
    assert time.monotonic() - started < 2


def test_json_schema_remote_ref_is_not_fetched() -> None:
    schema = {"$ref": "http://127.0.0.1:1/schema.json"}
    verdict = asyncio.run(JsonSchemaVerifier(schema).verify(FREE, "1"))
    assert not verdict.passed and verdict.score == 0.5
    assert "could not be checked" in verdict.feedback


def test_json_schema_slow_pattern_is_time_bounded() -> None:
    checker = BoundedChecker()
    try:
        schema = {"type": "string", "pattern": "^(a|a)*c$"}
        verifier = JsonSchemaVerifier(schema, checker=checker, timeout_s=0.5)
        verdict = asyncio.run(verifier.verify(FREE, '"' + "a" * 40 + 'b"'))
        assert not verdict.passed and "longer than 0.5 s" in verdict.feedback
    finally:
        checker.close()


def test_extract_json_text() -> None:
    assert extract_json_text('x ```json\n{"a": 1}\n``` y') == '{"a": 1}'
    assert extract_json_text(' {"a": 1} ') == '{"a": 1}'


# --- submit-time validation ----------------------------------------------------------

BAD_SPECS: list[tuple[dict[str, Any], Problem, str]] = [
    ({"type": "magic"}, FREE, "available types: game24, exact"),
    ({}, FREE, "unknown verifier type (none given)"),
    ({"type": "exact", "case_sensitive": "yes"}, with_expected("a"), "true or false"),
    ({"type": "exact", "ignore_case": True}, with_expected("a"), "case_sensitive"),
    ({"type": "regex"}, FREE, 'needs a "pattern"'),
    ({"type": "regex", "pattern": "(ab"}, FREE, "does not compile: missing ), unterminated"),
    ({"type": "regex", "pattern": "(a+)+"}, FREE, "exponential time"),
    ({"type": "regex", "pattern": "a" * 1001}, FREE, "at most 1000"),
    ({"type": "regex", "pattern": "a", "flags": ["LOCALE"]}, FREE, "unknown regex flag"),
    ({"type": "regex", "pattern": "a", "flags": "I"}, FREE, "must be a list"),
    ({"type": "regex", "pattern": "a", "full_match": 1}, FREE, "true or false"),
    ({"type": "regex", "pattern": 5}, FREE, "must be a string"),
    ({"type": "json_schema"}, FREE, 'needs a "schema"'),
    ({"type": "json_schema", "schema": {"type": "nope"}}, FREE, "not a valid JSON Schema"),
    ({"type": "json_schema", "schema": {"minLength": -1}}, FREE, "at minLength"),
    ({"type": "json_schema", "schema": "string"}, FREE, "must be a JSON Schema object"),
    ({"type": "json_schema", "schema": {"pattern": "(a*)*"}}, FREE, "exponential time"),
    ({"type": "llm_judge", "rubric": "good"}, FREE, 'needs "model"'),
    ({"type": "llm_judge", "model": "sim"}, FREE, 'needs a "rubric"'),
    ({"type": "llm_judge", "model": "gpt-9", "rubric": "x"}, FREE, "unknown judge model"),
    ({"type": "llm_judge", "model": "sim-prm", "rubric": "x"}, FREE, "is a reward model"),
    (
        {"type": "llm_judge", "model": "sim", "rubric": "x", "pass_threshold": 7},
        FREE,
        "from 0 to 1",
    ),
    ({"type": "llm_judge", "model": "sim", "rubric": "x", "max_tokens": 1}, FREE, "16 to"),
    ({"type": "llm_judge", "model": "sim", "rubric": "x", "n": 3}, FREE, "options are"),
    ({"type": "reward_model", "model": "sim"}, FREE, "not a reward model"),
    ({"type": "reward_model", "model": "prm-x"}, FREE, "unknown reward model"),
    ({"type": "reward_model", "model": "sim-prm", "pass_threshold": -1}, FREE, "0 to 1"),
    ({"type": "none", "x": 1}, FREE, "takes no options"),
]


@pytest.mark.parametrize(("spec", "problem", "phrase"), BAD_SPECS)
def test_bad_specs_are_refused_with_the_reason(
    spec: dict[str, Any], problem: Problem, phrase: str
) -> None:
    with pytest.raises(ValueError) as excinfo:
        validate_verifier_spec(spec, problem, MODELS)
    assert phrase in str(excinfo.value), str(excinfo.value)


def test_every_type_is_listed() -> None:
    for kind in ("exact", "numeric", "regex", "json_schema", "llm_judge", "reward_model"):
        assert kind in verifier_types()


def test_model_checks_are_skipped_without_models() -> None:
    validate_verifier_spec({"type": "llm_judge", "model": "gpt-9", "rubric": "x"}, FREE)
    validate_verifier_spec({"type": "reward_model", "model": "prm-x"}, FREE)


def test_model_verifiers_need_a_context() -> None:
    for spec in (
        {"type": "llm_judge", "model": "sim", "rubric": "x"},
        {"type": "reward_model", "model": "sim-prm"},
    ):
        with pytest.raises(RuntimeError, match="Context"):
            asyncio.run(build_verifier(spec).verify(FREE, "a"))
