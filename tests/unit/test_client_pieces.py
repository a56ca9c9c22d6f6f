"""The Python client's pieces that need no server: checking webhook signatures (against
the server's own signing code and the Standard Webhooks reference library), reading
``Retry-After``, when to retry, Server-Sent Events, configuration."""

from __future__ import annotations

import email.utils
import json
import time

import httpx
import pytest
from standardwebhooks import Webhook

from ponder.webhooks.signing import generate_secret
from ponder.webhooks.signing import headers as signed_headers
from ponder_client import Ponder, PonderError, RetryPolicy
from ponder_client._retry import parse_retry_after
from ponder_client._sse import SSEDecoder
from ponder_client.webhooks import WebhookVerificationError, verify

NOW = 1_800_000_000
BODY = json.dumps(
    {"type": "job.completed", "timestamp": "2027-01-15T08:00:00+00:00", "data": {"id": "j1"}}
).encode()


def _delivery(*secrets: str, body: bytes = BODY, at: int = NOW) -> dict[str, str]:
    return signed_headers(list(secrets), "msg_1", at, body)


def test_a_delivery_signed_by_the_server_verifies_and_gives_its_event() -> None:
    secret = generate_secret()
    event = verify(BODY, _delivery(secret), [secret], now=NOW)
    assert (event.type, event.data) == ("job.completed", {"id": "j1"})
    assert verify(BODY.decode(), _delivery(secret), secret, now=NOW) == event  # text, one secret
    titled = {k.title(): v for k, v in _delivery(secret).items()}  # header names in any case
    assert verify(BODY, titled, [secret], now=NOW) == event


def test_during_a_rotation_either_secret_verifies_and_no_other() -> None:
    old, new, stranger = generate_secret(), generate_secret(), generate_secret()
    headers = _delivery(new, old)
    assert len(headers["webhook-signature"].split()) == 2
    for secrets in ([old], [new], [stranger, new], [old, new]):
        assert verify(BODY, headers, secrets, now=NOW).type == "job.completed"
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify(BODY, headers, [stranger], now=NOW)


@pytest.mark.parametrize(
    "change",
    ["body", "webhook-id", "webhook-timestamp", "webhook-signature", "version"],
)
def test_anything_changed_is_refused(change: str) -> None:
    secret = generate_secret()
    headers, body = _delivery(secret), BODY
    if change == "body":
        body = BODY.replace(b"j1", b"j2")
    elif change == "webhook-id":
        headers["webhook-id"] = "msg_2"
    elif change == "webhook-timestamp":
        headers["webhook-timestamp"] = str(NOW + 1)
    elif change == "webhook-signature":
        headers["webhook-signature"] = "v1," + "A" * 44
    else:
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v1a,")
    with pytest.raises(WebhookVerificationError):
        verify(body, headers, [secret], now=NOW)


def test_timestamps_beyond_the_tolerance_are_refused_both_ways() -> None:
    secret = generate_secret()
    headers = _delivery(secret)
    assert verify(BODY, headers, [secret], now=NOW + 300).type
    assert verify(BODY, headers, [secret], now=NOW - 300).type
    for now in (NOW + 301, NOW - 301):
        with pytest.raises(WebhookVerificationError, match="timestamp"):
            verify(BODY, headers, [secret], now=now)
    assert verify(BODY, headers, [secret], now=NOW + 3000, tolerance=3600).type


def test_missing_headers_and_bad_secrets_say_what_is_wrong() -> None:
    secret = generate_secret()
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        headers = _delivery(secret)
        del headers[name]
        with pytest.raises(WebhookVerificationError, match=name):
            verify(BODY, headers, [secret], now=NOW)
    headers = _delivery(secret)
    headers["webhook-timestamp"] = "yesterday"
    with pytest.raises(WebhookVerificationError, match="Unix time"):
        verify(BODY, headers, [secret], now=NOW)
    with pytest.raises(ValueError, match="whsec_"):
        verify(BODY, _delivery(secret), ["whsec_not base64!"], now=NOW)
    with pytest.raises(ValueError, match="at least one secret"):
        verify(BODY, _delivery(secret), [], now=NOW)


def test_it_agrees_with_the_reference_library() -> None:
    secret, other = generate_secret(), generate_secret()
    now = int(time.time())  # the reference library reads the clock
    cases = [
        (BODY, _delivery(secret, at=now)),
        (BODY + b" ", _delivery(secret, at=now)),
        (BODY, _delivery(other, at=now)),
        (BODY, _delivery(other, secret, at=now)),
        (BODY, _delivery(secret, at=now - 3600)),
    ]
    outcomes = []
    for body, headers in cases:
        try:
            Webhook(secret).verify(body, headers)
            reference = True
        except Exception:
            reference = False
        try:
            verify(body, headers, [secret])
            ours = True
        except WebhookVerificationError:
            ours = False
        assert ours == reference, (body, headers)
        outcomes.append(ours)
    assert outcomes == [True, False, False, True, False]


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": " 1.5 "}) == 1.5
    assert parse_retry_after({"retry-after": "-3"}) == 0.0
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=NOW) == 30.0
    assert parse_retry_after({"retry-after": date}, now=NOW + 60) == 0.0  # already past
    for unreadable in ("soon", "nan", "inf", ""):
        assert parse_retry_after({"retry-after": unreadable}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after(httpx.Headers({"Retry-After": "2"})) == 2.0


def test_what_is_retried_and_after_how_long() -> None:
    policy = RetryPolicy(max_retries=3)
    wait = {"retry-after": "7"}
    # a 429 was refused before anything was done: retried for any request
    assert policy.after_status(0, 429, wait, idempotent=False) == 7.0
    # a 5xx may come after the server acted: only what may be repeated
    assert policy.after_status(0, 503, wait, idempotent=False) is None
    assert policy.after_status(0, 503, wait, idempotent=True) == 7.0
    for status in (400, 401, 403, 404, 409, 413, 422, 501):
        assert policy.after_status(0, status, {}, idempotent=True) is None
    assert policy.after_status(3, 503, {}, idempotent=True) is None  # retries used up
    assert policy.after_status(0, 429, {"retry-after": "61"}, idempotent=True) is None
    first = policy.after_status(0, 502, {}, idempotent=True)
    assert first is not None and 0.375 <= first <= 0.5  # backoff, less up to a quarter
    assert all(policy.backoff(n) <= policy.max_delay for n in range(40))
    assert policy.backoff(3) > policy.backoff(0)

    request = httpx.Request("POST", "http://127.0.0.1:9/v1/batches")
    never_sent = httpx.ConnectError("refused", request=request)
    maybe_sent = httpx.ReadError("reset", request=request)
    assert policy.after_error(0, never_sent, idempotent=False) is not None
    assert policy.after_error(0, maybe_sent, idempotent=False) is None
    assert policy.after_error(0, maybe_sent, idempotent=True) is not None
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)


def test_server_sent_events_are_decoded_line_by_line() -> None:
    decoder = SSEDecoder()
    lines = [
        ": keep-alive",
        "",
        "id: 7",
        "event: candidate",
        'data: {"a":',
        "data: 1}",
        "",
        "data: no id",
        "",
    ]
    messages = [m for m in map(decoder.feed, lines) if m is not None]
    assert [(m.id, m.event, m.data) for m in messages] == [
        ("7", "candidate", '{"a":\n1}'),
        (None, "message", "no id"),
    ]


def test_the_client_needs_a_key_and_reads_its_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PONDER_API_KEY", raising=False)
    monkeypatch.delenv("PONDER_API_URL", raising=False)
    with pytest.raises(PonderError, match="PONDER_API_KEY"):
        Ponder()
    monkeypatch.setenv("PONDER_API_KEY", "pk_env")
    monkeypatch.setenv("PONDER_API_URL", "http://127.0.0.1:8123/")
    client = Ponder()
    assert (client.base_url, client.api_key) == ("http://127.0.0.1:8123", "pk_env")
    assert Ponder("http://127.0.0.1:1", "pk_given", max_retries=0).retry.max_retries == 0
    with pytest.raises(ValueError, match="id"):
        client.jobs.get("")


def test_the_client_imports_nothing_but_httpx_and_pydantic() -> None:
    """Every module of ``ponder_client`` loads with the server and its dependencies made
    impossible to import (the distribution declares only httpx and pydantic)."""
    import subprocess
    import sys

    script = """
import importlib, pkgutil, sys
BLOCKED = {"ponder", "api", "worker", "strategies", "fastapi", "starlette", "celery",
           "sqlalchemy", "redis", "aiohttp", "typer", "rich", "yaml", "uvicorn"}
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"ponder_client imported {name}")
        return None
sys.meta_path.insert(0, Refuse())
import ponder_client
for module in pkgutil.walk_packages(ponder_client.__path__, "ponder_client."):
    importlib.import_module(module.name)
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd="/"
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_a_server_that_never_answers_times_out() -> None:
    """A socket that accepts connections but never answers (nothing reads it): every
    attempt times out, and the last one is raised as APITimeoutError."""
    import socket

    from ponder_client import APITimeoutError

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        waits: list[float] = []
        with Ponder(url, "pk_x", timeout=0.2, max_retries=1, sleep=waits.append) as client:
            with pytest.raises(APITimeoutError):
                client.jobs.list()
            assert len(waits) == 1  # a read that timed out is retried (a GET may be)
            waits.clear()
            with pytest.raises(APITimeoutError) as raised:
                client.schedules.trigger("s1", timeout=0.2)
            assert waits == []  # the server may have acted: not repeated
            assert "was not sent again" in " ".join(raised.value.__notes__)
