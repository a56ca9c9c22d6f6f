"""Schemathesis hooks for fuzzing Ponder (loaded with ``SCHEMATHESIS_HOOKS``; see
tests/e2e/test_schemathesis.py and the README's Tests section).

- **JSON Lines bodies.** ``POST /v1/batches`` and ``POST /v1/datasets`` take
  ``application/x-ndjson``, which the API document can only describe as a string;
  :data:`JSON_LINES` generates uploads instead: job bodies, dataset problems, batch
  header lines, arbitrary JSON, text that is not JSON, lines nested too deep, NUL
  escapes and blank lines, in any mix.
- **No webhook leaves the machine.** Every ``webhook_url`` a request would make the
  workers call (any URL the server accepts) is rewritten to a host under ``.test``,
  which never resolves, before the request is sent: the examples in the document name
  example.com, and generated URLs could name any address."""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from hypothesis import strategies as st

from ponder.batches.spec import check_http_url
from ponder.jsonlimits import MAX_DOCUMENT_DEPTH

SAFE_URL = "http://webhooks.test/"

# ------------------------------------------------------------------ JSON Lines bodies

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_numbers = st.lists(st.integers(min_value=-1, max_value=14), min_size=3, max_size=5)
_problem = st.one_of(
    st.fixed_dictionaries(
        {"task": st.just("game24"), "input": st.fixed_dictionaries({"numbers": _numbers})}
    ),
    st.fixed_dictionaries({"prompt": st.text(min_size=1, max_size=40)}),
    st.fixed_dictionaries({"task": st.sampled_from(["arithmetic", "nope"]), "input": _json}),
)
_strategy = st.sampled_from(
    [
        {"name": "best_of_n", "params": {"n": 2}},
        {"name": "self_consistency", "params": {"n": 3}},
        {"name": "refine"},
        {"name": "no_such_strategy"},
    ]
)
_job_line = st.fixed_dictionaries(
    {"problem": _problem, "strategy": _strategy},
    optional={
        "custom_id": st.text(max_size=8) | st.integers(),
        "metadata": st.dictionaries(st.text(max_size=5), _scalars, max_size=3),
        "priority": st.integers(min_value=-1, max_value=10),
        "budget": st.fixed_dictionaries({"max_tokens": st.integers(min_value=-1, max_value=10**6)}),
        "model": st.sampled_from(["sim", "sim-http", "unknown-model"]),
    },
)
_dataset_line = st.fixed_dictionaries(
    {"task": st.just("game24"), "input": st.fixed_dictionaries({"numbers": _numbers})},
    optional={"id": st.text(max_size=6), "expected": _scalars},
)
_header = st.fixed_dictionaries(
    {},
    optional={
        "defaults": st.just({"strategy": {"name": "best_of_n", "params": {"n": 2}}}),
        "strict": st.booleans(),
        "metadata": st.dictionaries(st.text(max_size=5), _scalars, max_size=2),
        "budget": st.fixed_dictionaries({"max_tokens": st.integers(min_value=0, max_value=10**6)}),
    },
).map(lambda settings: {"batch": settings})
_line = st.one_of(
    _job_line.map(json.dumps),
    _dataset_line.map(json.dumps),
    _header.map(json.dumps),
    _json.map(json.dumps),
    st.text(max_size=20),  # mostly not JSON
    st.just("[" * (MAX_DOCUMENT_DEPTH + 1) + "]" * (MAX_DOCUMENT_DEPTH + 1)),
    st.just('{"task": "game24", "input": {"numbers": [1, 2, 3, 4]}, "id": "a\\u0000"}'),
    st.just(""),
)
JSON_LINES = st.lists(_line, max_size=6).map(lambda lines: "\n".join(lines).encode())

schemathesis.openapi.media_type("application/x-ndjson", JSON_LINES)


# ------------------------------------------------------------------ webhooks stay here


def _safe(url: str) -> str:
    """A URL the server would accept, with its host replaced by one under ``.test``
    (about as long, so a length limit still applies)."""
    try:
        check_http_url(url)
    except ValueError:
        return url  # refused by the server anyway: no webhook is ever sent to it
    return SAFE_URL + "x" * max(0, len(url) - len(SAFE_URL))


def _without_webhooks(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _safe(sub)
            if key == "webhook_url" and isinstance(sub, str)
            else _without_webhooks(sub)
            for key, sub in value.items()
        }
    if isinstance(value, list):
        return [_without_webhooks(sub) for sub in value]
    return value


def _lines_without_webhooks(text: str) -> str:
    out = []
    for line in text.split("\n"):
        try:
            value = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        safe = _without_webhooks(value)
        out.append(line if safe == value else json.dumps(safe))
    return "\n".join(out)


@schemathesis.hook
def before_call(
    context: schemathesis.HookContext, case: schemathesis.Case[Any], kwargs: dict[str, Any]
) -> None:
    body = case.body
    if isinstance(body, dict | list):
        case.body = _without_webhooks(body)
    elif isinstance(body, bytes) and b"webhook_url" in body:
        case.body = _lines_without_webhooks(body.decode("utf-8", "surrogateescape")).encode(
            "utf-8", "surrogateescape"
        )
    elif isinstance(body, str) and "webhook_url" in body:
        case.body = _lines_without_webhooks(body)
