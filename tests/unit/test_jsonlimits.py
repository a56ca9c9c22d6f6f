"""The limits on client JSON (ponder/jsonlimits.py): nesting depth on raw text and on
parsed values, NUL characters, non-finite numbers, and cutting stored values for reads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from ponder.jsonl import parse_jsonl
from ponder.jsonlimits import (
    CUT,
    MAX_DEPTH,
    MAX_DOCUMENT_DEPTH,
    check_storable,
    nested_too_deep,
    readable,
    storable_text,
    unstorable,
)
from tests.bounds import BLOWUP_SECONDS, finishes_within


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("as_bytes", [False, True])
def test_raw_text_depth(as_bytes: bool) -> None:
    def deep(text: str, limit: int = 3) -> bool:
        return nested_too_deep(text.encode() if as_bytes else text, limit)

    assert not deep("[[[]]]")
    assert deep("[[[[]]]]")
    assert deep('{"a": [{"b": [1]}]}')
    assert not deep('{"a": [1], "b": {"c": 2}, "d": [[3]]}')
    # brackets inside strings, also after escaped quotes, do not count
    assert not deep('["[[[[", "\\"{{{{\\"", "\\\\", "]]]"]')
    # a string that never ends counts nothing after its quote
    assert not deep('[[["[[[[[[[[')
    assert not deep('[[["abc\\')


def test_raw_text_depth_at_the_document_limit() -> None:
    limit = MAX_DOCUMENT_DEPTH
    assert not nested_too_deep("[" * limit + "]" * limit)
    assert nested_too_deep("[" * (limit + 1) + "]" * (limit + 1))
    assert nested_too_deep("[" * 100_000)


@pytest.mark.parametrize(
    "text",
    [
        '\\"' * 500_000,  # many quotes that each start an unterminated string
        '"' + "\\" * 1_000_001,
        "[" * 500_000 + '"' * 500_000,
        '["' + "a" * 1_000_000,
    ],
)
def test_raw_text_depth_takes_linear_time(text: str) -> None:
    # a million characters: milliseconds read once, hours read quadratically
    # (bench/hostile.py prints the figures)
    with finishes_within(BLOWUP_SECONDS, "the depth scan of a million characters"):
        nested_too_deep(text)
        nested_too_deep(text.encode())


def test_values_at_the_limit_are_storable() -> None:
    assert unstorable(nested(MAX_DEPTH)) is None
    assert unstorable([[[]]], limit=3) is None
    assert unstorable({"a": "ok", "b": [1.5, -2, None, True]}) is None


def test_values_nested_too_deep_say_so() -> None:
    assert unstorable([[[[]]]], limit=3) == "nested deeper than 3 levels; flatten it"
    assert unstorable(nested(MAX_DEPTH + 1)) == (
        f"nested deeper than {MAX_DEPTH} levels; flatten it"
    )
    # checked without recursion: any depth is safe
    assert unstorable(nested(100_000)) is not None


def test_nul_characters_lone_surrogates_and_non_finite_numbers_say_where() -> None:
    assert unstorable({"a": ["x", "y\x00"]}, where="metadata") == (
        "strings must not contain NUL (\\u0000) characters or lone surrogates "
        "(\\ud800-\\udfff) (at metadata.a[1]); remove them"
    )
    assert "object keys" in (unstorable({"k\x00": 1}) or "")
    # json.loads turns the escape "\ud800" into a string that has no UTF-8 form
    assert "lone surrogates" in (unstorable(json.loads('{"a": "\\ud800"}')) or "")
    assert "object keys" in (unstorable(json.loads('{"\\udfff": 1}')) or "")
    assert unstorable("\U0001f600 é") is None  # a pair is a character, not a lone one
    assert storable_text("fine") is None and storable_text("a\x00") is not None
    assert unstorable({"n": float("nan")}) == "numbers must be finite (no NaN or Infinity) (at n)"
    assert "finite" in (unstorable([float("-inf")]) or "")
    long_path = unstorable({"k" * 200: "\x00"}) or ""
    assert "…" in long_path and len(long_path) < 200


def test_check_storable_is_a_pydantic_validator() -> None:
    assert check_storable({"a": 1}) == {"a": 1}
    with pytest.raises(ValueError, match="flatten it"):
        check_storable(nested(MAX_DEPTH + 1))


def test_readable_cuts_only_what_is_too_deep() -> None:
    shallow = {"a": [1, {"b": 2}]}
    assert readable(shallow) is shallow
    cut = readable(nested(300), limit=128)
    assert json.dumps(cut).count("{") == 128
    assert CUT in json.dumps(cut)

    class Out(BaseModel):
        value: Any

    Out(value=readable(nested(300))).model_dump_json()  # serializable


def test_json_lines_refuse_lines_nested_too_deep_by_number() -> None:
    text = '{"a": 1}\n' + "[" * 10_000 + "]" * 10_000 + "\n" + "[" * 5_000 + "\n[1]"
    lines, errors = parse_jsonl(text, max_line_bytes=1_000_000)
    assert [line.number for line in lines] == [1, 4]
    assert [error.line for error in errors] == [2, 3]
    assert all("nested deeper than" in error.detail for error in errors)
