"""exact, regex and json_schema verifiers, and submit-time spec validation, including
adversarial input: huge answers, catastrophic regexes (RE2 matches them in linear time),
deeply nested JSON, costly schemas."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from ponder.llm.profiles import load_models_file
from ponder.problem import Problem
from ponder.verifiers import build_verifier, validate_verifier_spec, verifier_types
from ponder.verifiers.base import Verdict
from ponder.verifiers.exact import ExactVerifier
from ponder.verifiers.json_schema import BoundedChecker, JsonSchemaVerifier, extract_json_text
from ponder.verifiers.regex import MAX_ANSWER_CHARS, RegexVerifier, compile_pattern
from tests.bounds import BLOWUP_SECONDS, finishes_within

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


def test_exact_huge_answer_is_refused_by_its_length_unread() -> None:
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


# Patterns that make a backtracking engine take exponential time, by family, each with a
# near miss and a hit as long as an answer may be. RE2 answers each in milliseconds
# (bench/verifiers.py prints the times beside Python's re); the test asserts the answers.
N = MAX_ANSWER_CHARS
CATASTROPHIC: list[tuple[str, str, str]] = [
    # overlapping alternatives under a repetition
    (r"(a|aa)+$", "a" * (N - 1) + "b", "a" * N),
    (r"(a|a)*$", "a" * (N - 1) + "b", "a" * N),
    (r"((a|b|ab)*)*c", "ab" * (N // 2), "ab" * (N // 2 - 1) + "c"),
    # a repetition of a repetition
    (r"(a+)+b", "a" * N, "a" * (N - 1) + "b"),
    (r"(x+x+)+y", "x" * N, "x" * (N - 1) + "y"),
    (r"(\w+\s?)+$", "ab " * (N // 3) + "!", "ab " * (N // 3 - 1) + "ab"),
    (r"(\d+,?)+$", "1" * (N - 1) + "x", "1," * (N // 2 - 1) + "1"),
    (r"^(([a-z])+.)+[A-Z]([a-z])+$", "a" * (N - 1) + "!", "ab" * (N // 2 - 2) + "Xyz"),
    (
        r"^([a-zA-Z0-9])(([\-.]|[_]+)?([a-zA-Z0-9]+))*(@){1}[a-z0-9]+[.]{1}"
        r"(([a-z]{2,3})|([a-z]{2,3}[.]{1}[a-z]{2,3}))$",
        "a" * (N - 1) + "!",
        "a" * (N - 7) + "@ex.com",
    ),
    # wildcards repeated
    (r"(.*){25}x", "a" * N, "a" * (N - 1) + "x"),
    (r"(.*a){20}", "a" * (N - 1) + "b", "a" * N),
    (r".*.*.*.*.*=.*", "x" * N, "x" * (N - 2) + "=x"),
]


@pytest.mark.parametrize(("pattern", "near_miss", "hit"), CATASTROPHIC)
def test_catastrophic_patterns_are_matched_in_linear_time(
    pattern: str, near_miss: str, hit: str
) -> None:
    spec = {"type": "regex", "pattern": pattern}
    assert not run(spec, near_miss).passed
    assert run(spec, hit).passed
    assert run({**spec, "full_match": False}, hit).passed  # searched for, anywhere
    # the same answers as Python's engine where it can finish: on short texts
    if "{2" not in pattern:  # even 12 characters take Python long on (.*){25}
        for text in (near_miss[:12], near_miss[-12:], hit[:12], hit[-12:]):
            assert RegexVerifier(pattern).matches(text) is bool(re.fullmatch(pattern, text))


def test_flags_map_to_re2() -> None:
    assert RegexVerifier(r"(A|aa)+$", ["IGNORECASE"]).matches("a" * (N - 1) + "A")
    assert RegexVerifier(r"^b$", ["MULTILINE"], full_match=False).matches("a\nb\nc")
    assert not RegexVerifier(r"^b$", [], full_match=False).matches("a\nb\nc")
    assert RegexVerifier(r"a.b", ["DOTALL"]).matches("a\nb")
    assert not RegexVerifier(r"a.b").matches("a\nb")
    verbose = RegexVerifier("\\d+  # digits\n [ ]x  # then a space and x\n", ["VERBOSE"])
    assert verbose.matches("12 x") and not verbose.matches("12x")
    # Python spellings RE2 lacks are translated; \w is ASCII (as under re.ASCII)
    assert RegexVerifier(r"caf\u00e9\Z").matches("café")
    assert RegexVerifier(r"\N{GREEK SMALL LETTER ALPHA}\U000003b2").matches("αβ")
    assert not RegexVerifier(r"\w+", ["ASCII"]).matches("café")
    assert not RegexVerifier(r"\w+").matches("café")
    assert RegexVerifier(r"\pL+").matches("café")  # RE2's Unicode classes


@pytest.mark.parametrize(
    ("pattern", "feature"),
    [
        (r"(a)\1", "backreferences (\\1)"),
        (r"(?P<x>a)(?P=x)", "named backreferences (?P=name)"),
        (r"a(?=b)", "lookahead (?=...)"),
        (r"a(?!b)", "negative lookahead (?!...)"),
        (r"(?<=a)b", "lookbehind (?<=...)"),
        (r"(?<!a)b", "negative lookbehind (?<!...)"),
        (r"(?>a+)b", "atomic groups (?>...)"),
        (r"a*+b", "possessive quantifiers (*+)"),
        (r"(a)?(?(1)b|c)", "conditionals (?(1)...)"),
    ],
)
def test_what_re2_lacks_is_refused_with_its_name(pattern: str, feature: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        compile_pattern(pattern)
    message = str(excinfo.value)
    assert f"uses {feature}, which RE2 does not support" in message, message


def test_regex_huge_answer_is_not_matched() -> None:
    verdict = run({"type": "regex", "pattern": "a+"}, "a" * 1_000_000)
    assert not verdict.passed and "characters long" in verdict.feedback


def test_regex_concurrent_matches() -> None:
    verifier = RegexVerifier(r"\d+")

    async def many() -> list[Verdict]:
        return list(await asyncio.gather(*(verifier.verify(FREE, str(i)) for i in range(50))))

    assert all(v.passed for v in asyncio.run(many()))


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
    with finishes_within(BLOWUP_SECONDS, "an unclosed fence"):  # quadratic: minutes
        assert run(spec, unclosed).score == 0.0


def test_json_schema_remote_ref_is_not_fetched() -> None:
    schema = {"$ref": "http://127.0.0.1:1/schema.json"}
    verdict = asyncio.run(JsonSchemaVerifier(schema).verify(FREE, "1"))
    assert not verdict.passed and verdict.score == 0.5
    assert "could not be checked" in verdict.feedback


def test_json_schema_regexes_are_re2() -> None:
    checker = BoundedChecker()
    try:
        slow = "x" * 5_000  # Python's re would take minutes on each of these
        cases: list[tuple[dict[str, Any], Any, bool]] = [
            ({"type": "string", "pattern": "^(x+x+)+y$"}, slow, False),
            ({"type": "string", "pattern": "^(x+x+)+y$"}, slow + "y", True),
            ({"patternProperties": {"^(x|x)*$": {"type": "integer"}}}, {slow + "!": "s"}, True),
            ({"patternProperties": {"^(x|x)*$": {"type": "integer"}}}, {slow: "s"}, False),
            (
                {"patternProperties": {"^(x+x+)+y$": {}}, "additionalProperties": False},
                {slow: 1},
                False,
            ),
            (
                {"patternProperties": {"^(x+x+)+y$": {}}, "unevaluatedProperties": False},
                {slow + "y": 1},
                True,
            ),
            ({"type": "string", "pattern": "caf\\u00e9$"}, "café", True),
        ]
        for schema, instance, valid in cases:
            verifier = JsonSchemaVerifier(schema, checker=checker, timeout_s=10)
            verdict = asyncio.run(verifier.verify(FREE, json.dumps(instance)))
            assert verdict.passed is valid, (schema, verdict)
    finally:
        checker.close()


def test_json_schema_costly_check_is_time_bounded_and_the_checker_recovers() -> None:
    checker = BoundedChecker()
    try:
        costly = json.dumps([{"a": i} for i in range(7_500)], separators=(",", ":"))
        verifier = JsonSchemaVerifier({"uniqueItems": True}, checker=checker, timeout_s=0.5)
        with finishes_within(BLOWUP_SECONDS, "a check stopped at 0.5 s"):  # unstopped: minutes
            verdict = asyncio.run(verifier.verify(FREE, costly))
        assert not verdict.passed and "longer than 0.5 s" in verdict.feedback
        fine = JsonSchemaVerifier({"type": "array"}, checker=checker)
        assert asyncio.run(fine.verify(FREE, "[1]")).passed  # a new checker took over
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
    ({"type": "regex", "pattern": "(ab"}, FREE, "does not compile: missing ): (ab"),
    ({"type": "regex", "pattern": "(a)\\1"}, FREE, "uses backreferences (\\1), which RE2"),
    ({"type": "regex", "pattern": "a" * 1001}, FREE, "at most 1000"),
    ({"type": "regex", "pattern": "a", "flags": ["LOCALE"]}, FREE, "unknown regex flag"),
    ({"type": "regex", "pattern": "a", "flags": "I"}, FREE, "must be a list"),
    ({"type": "regex", "pattern": "a", "full_match": 1}, FREE, "true or false"),
    ({"type": "regex", "pattern": 5}, FREE, "must be a string"),
    ({"type": "json_schema"}, FREE, 'needs a "schema"'),
    ({"type": "json_schema", "schema": {"type": "nope"}}, FREE, "not a valid JSON Schema"),
    ({"type": "json_schema", "schema": {"minLength": -1}}, FREE, "at minLength"),
    ({"type": "json_schema", "schema": "string"}, FREE, "must be a JSON Schema object"),
    ({"type": "json_schema", "schema": {"pattern": "a(?=b)"}}, FREE, "uses lookahead (?=...)"),
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


@pytest.mark.parametrize(
    ("spec", "phrase"),
    [
        ({"type": "llm_judge", "model": "gpt-9", "rubric": "x"}, "unknown judge model"),
        ({"type": "llm_judge", "model": "sim-prm", "rubric": "x"}, "is a reward model"),
        ({"type": "reward_model", "model": "prm-x"}, "unknown reward model"),
        ({"type": "reward_model", "model": "sim"}, "not a reward model"),
    ],
)
def test_model_checks_are_skipped_without_models(spec: dict[str, Any], phrase: str) -> None:
    # with the configured models, the model the spec names is refused ...
    with pytest.raises(ValueError, match=phrase):
        validate_verifier_spec(spec, FREE, MODELS)
    # ... without them, that one check is skipped: the same spec is accepted (no raise)
    validate_verifier_spec(spec, FREE)
    validate_verifier_spec(spec, FREE, None)
    # while the spec's own options are still checked
    with pytest.raises(ValueError, match="options are"):
        validate_verifier_spec({**spec, "n": 3}, FREE)


def test_model_verifiers_need_a_context() -> None:
    for spec in (
        {"type": "llm_judge", "model": "sim", "rubric": "x"},
        {"type": "reward_model", "model": "sim-prm"},
    ):
        with pytest.raises(RuntimeError, match="Context"):
            asyncio.run(build_verifier(spec).verify(FREE, "a"))
