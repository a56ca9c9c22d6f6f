"""What JSON Ponder accepts and stores: how deep it may nest, and what its strings and
numbers may hold. Written once, for every way JSON comes in (request bodies, JSON Lines
uploads) and every value stored as JSON (a job's metadata, problem, verifier and
strategy parameters; a batch's and a schedule's metadata and defaults; dataset problems).

- A whole **document** a client sends (a JSON request body, one line of a JSON Lines
  upload) nests at most :data:`MAX_DOCUMENT_DEPTH` objects and arrays. This is checked on
  the raw text, before anything parses it, so no recursive parser or serializer on the
  way (Python's ``json``, pydantic, Postgres) ever meets deeper nesting than it copes with.
- A **value** Ponder stores as JSON nests at most :data:`MAX_DEPTH` levels, holds no NUL
  character (U+0000, which Postgres cannot store in text or JSONB) and no lone
  surrogate (``"\\ud800"`` is valid JSON but no Unicode text: it has no UTF-8 form) in
  a string or an object key, and no non-finite number (NaN, Infinity: not JSON, and
  not storable).
- **Reading** a stored value never fails: :func:`readable` cuts what nests deeper than
  :data:`MAX_READ_DEPTH` (rows stored before these limits existed)."""

from __future__ import annotations

import math
import re
from itertools import accumulate
from typing import Any

# objects/arrays a stored JSON value may nest (``{"a": {}}`` nests 2)
MAX_DEPTH = 32
# objects/arrays a whole request body or JSON Lines line may nest: room for the
# envelope around stored values (a batch body's items, an item's metadata)
MAX_DOCUMENT_DEPTH = 64
# what a response shows of a stored value; deeper parts are cut (pydantic refuses to
# serialize beyond 255 levels, and a response wraps the value in a few of its own)
MAX_READ_DEPTH = 128
CUT = "(cut: nested too deep to show)"

_PATH_CHARS = 80
# what a string must not hold: NUL, or a lone surrogate (from a "\ud800" escape)
_UNSTORABLE_CHARS = re.compile("[\x00\ud800-\udfff]")
_CHARS = "NUL (\\u0000) characters or lone surrogates (\\ud800-\\udfff)"
_WHAT = f"must not contain {_CHARS}"

# a JSON string, also an unterminated one (so a scan never backtracks: linear time)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_STRING_BYTES = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_NOT_BRACKET_BYTES = re.compile(rb"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_STEP_BYTES = {ord(k): v for k, v in _STEP.items()}


def nested_too_deep(text: str | bytes, limit: int = MAX_DOCUMENT_DEPTH) -> bool:
    """Whether the JSON text ``text`` nests more than ``limit`` objects and arrays
    (brackets inside strings do not count). Linear time; text with no more than
    ``limit`` opening brackets in all is answered without a scan. Invalid JSON gets some
    answer; its parser reports what is wrong with it."""
    if isinstance(text, bytes):
        if text.count(b"[") + text.count(b"{") <= limit:
            return False
        brackets_b = _NOT_BRACKET_BYTES.sub(b"", _STRING_BYTES.sub(b"", text))
        return max(accumulate(map(_STEP_BYTES.__getitem__, brackets_b)), default=0) > limit
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


def too_deep_message(limit: int = MAX_DOCUMENT_DEPTH) -> str:
    return f"nested deeper than {limit} levels; flatten it"


def unstorable(value: Any, limit: int = MAX_DEPTH, *, where: str = "") -> str | None:
    """Why ``value`` (parsed JSON) cannot be stored, saying where (below ``where``, the
    name of the field that holds it) and what to do; None if it can. Iterative, so any
    depth is safe to check."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, (where,) if where else ())]
    base = len(stack[0][1])
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE_CHARS.search(item):
                return f"strings {_WHAT}{_at(path)}; remove them"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"numbers must be finite (no NaN or Infinity){_at(path)}"
        elif isinstance(item, dict | list):
            if len(path) - base >= limit:
                return too_deep_message(limit)
            if isinstance(item, dict):
                for key, sub in item.items():
                    if isinstance(key, str) and _UNSTORABLE_CHARS.search(key):
                        return f"object keys {_WHAT}{_at(path)}; remove them"
                    stack.append((sub, (*path, str(key))))
            else:
                stack.extend((sub, (*path, i)) for i, sub in enumerate(item))
    return None


def storable_text(text: str) -> str | None:
    """Why the string ``text`` cannot be stored (a NUL or a lone surrogate), or None."""
    return f"must not contain {_CHARS}; remove them" if _UNSTORABLE_CHARS.search(text) else None


def check_storable(value: Any, limit: int = MAX_DEPTH, *, where: str = "") -> Any:
    """``value`` if it can be stored (see :func:`unstorable`), else ValueError saying
    why: for pydantic validators of fields that hold client JSON (``where`` is the
    field's name)."""
    problem = unstorable(value, limit, where=where)
    if problem is not None:
        raise ValueError(problem)
    return value


def readable(value: Any, limit: int = MAX_READ_DEPTH) -> Any:
    """A stored value as a response may show it: unchanged, except that objects and
    arrays nested deeper than ``limit`` are replaced by :data:`CUT`."""
    if nests_deeper(value, limit):
        return _cut(value, limit)
    return value


def nests_deeper(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` objects and arrays."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                return True
            subs = item.values() if isinstance(item, dict) else item
            stack.extend((sub, depth + 1) for sub in subs if isinstance(sub, dict | list))
    return False


def _cut(value: Any, limit: int) -> Any:
    # recursion is bounded by ``limit``
    if not isinstance(value, dict | list):
        return value
    if limit <= 0:
        return CUT
    if isinstance(value, dict):
        return {key: _cut(sub, limit - 1) for key, sub in value.items()}
    return [_cut(sub, limit - 1) for sub in value]


def _at(path: tuple[str | int, ...]) -> str:
    if not path:
        return ""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    if len(text) > _PATH_CHARS:
        text = text[:_PATH_CHARS] + "…"
    return f" (at {text})"
