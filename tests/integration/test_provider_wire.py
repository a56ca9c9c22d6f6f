"""Each HTTP provider against a REAL local HTTP server (a thread in this test, on a free
port) that speaks the vendor's wire format and scripts faults: 429 with Retry-After,
500 then success, a response slower than the timeout, a server that rejects ``n``,
malformed JSON. Real sockets, real httpx clients. A reply held back is held until the
test lets it go (an event), not for a guessed time."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ponder.llm.anthropic import AnthropicProvider
from ponder.llm.base import (
    AuthError,
    BadRequest,
    Provider,
    ProviderUnavailable,
    SampleRequest,
    SampleResult,
)
from ponder.llm.limits import LocalLimiter
from ponder.llm.openai_compat import OpenAICompatProvider
from ponder.llm.profiles import ModelProfile

KEY = "sk-wire-test-0123456789"
PROMPT = SampleRequest(
    messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 6 * 7?"},
    ],
    max_tokens=32,
    temperature=0.5,
)


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list → JSON; str/bytes → sent as is; None → the normal answer
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # the reply waits for this event (at most HOLD_SECONDS): a server that has not
    # answered yet, for as long as the test needs
    hold: threading.Event | None = None


# how long a held reply waits at most: only so that a broken test cannot leave the
# server's thread waiting forever
HOLD_SECONDS = 60.0


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)  # when the request arrived


Script = Callable[["Seen", int], Reply]


class WireServer:
    """A threaded HTTP server answering every POST with ``script(request, index)``;
    a ``Reply`` with no body gets the normal answer of ``dialect`` for the request."""

    def __init__(self, dialect: str, script: Script) -> None:
        self.dialect = dialect
        self.script = script
        self.seen: list[Seen] = []
        self.answered = 0  # replies sent
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                payload = json.loads(self.rfile.read(length) or b"{}")
                seen = Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, payload)
                with outer._lock:
                    index = len(outer.seen)
                    outer.seen.append(seen)
                reply = outer.script(seen, index)
                if reply.hold is not None:
                    reply.hold.wait(HOLD_SECONDS)
                if reply.delay:
                    time.sleep(reply.delay)
                body = reply.body if reply.body is not None else outer.answer(seen, index)
                if isinstance(body, dict | list):
                    data = json.dumps(body).encode()
                elif isinstance(body, str):
                    data = body.encode()
                else:
                    data = body
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                    with outer._lock:
                        outer.answered += 1
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, seen: Seen, index: int) -> dict[str, Any]:
        if self.dialect == "openai":
            n = int(seen.body.get("n", 1))
            return {
                "id": f"chatcmpl-{index}",
                "object": "chat.completion",
                "created": 0,
                "model": seen.body["model"],
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": f"42 (#{index}.{i})"},
                        "finish_reason": "stop",
                        "logprobs": {"content": []} if seen.body.get("logprobs") else None,
                    }
                    for i in range(n)
                ],
                "usage": {
                    "prompt_tokens": 11,
                    "completion_tokens": 40 * n,
                    "total_tokens": 11 + 40 * n,
                    "completion_tokens_details": {"reasoning_tokens": 30 * n},
                },
            }
        content: list[dict[str, Any]] = []
        if isinstance(seen.body.get("thinking"), dict):
            content.append({"type": "thinking", "thinking": "6 * 7 = 42", "signature": "s"})
        content.append({"type": "text", "text": f"42 (#{index})"})
        return {
            "id": f"msg_{index}",
            "type": "message",
            "role": "assistant",
            "model": seen.body["model"],
            "content": content,
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 9},
        }


def serve(dialect: str, script: Script | list[Reply] | None = None) -> WireServer:
    if script is None:
        return WireServer(dialect, lambda seen, i: Reply())
    if isinstance(script, list):
        replies = script
        return WireServer(dialect, lambda seen, i: replies[min(i, len(replies) - 1)])
    return WireServer(dialect, script)


@pytest.fixture
def servers() -> Iterator[list[WireServer]]:
    started: list[WireServer] = []
    yield started
    for server in started:
        server.close()


def provider_for(
    dialect: str, server: WireServer, *, limiter: LocalLimiter | None = None, **fields: Any
) -> Provider:
    base_url = server.root + ("/v1" if dialect == "openai" else "")
    profile = ModelProfile(
        name=f"{dialect}-wire",
        provider="openai" if dialect == "openai" else "anthropic",
        base_url=base_url,
        model="wire-1",
        api_key_env="PONDER_WIRE_TEST_KEY",
        **fields,
    )
    if dialect == "openai":
        return OpenAICompatProvider(profile, limiter=limiter)
    return AnthropicProvider(profile, limiter=limiter)


def sample(provider: Provider, request: SampleRequest = PROMPT) -> SampleResult | Exception:
    async def go() -> SampleResult | Exception:
        try:
            return await provider.sample(request)
        except Exception as exc:
            return exc
        finally:
            await provider.aclose()

    return asyncio.run(go())


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONDER_WIRE_TEST_KEY", KEY)


DIALECTS = ["openai", "anthropic"]


def rate_limited(dialect: str, **headers: str) -> Reply:
    kind = "rate_limit_error"
    body = (
        {"error": {"message": "Rate limit reached", "type": kind, "code": "rate_limit_exceeded"}}
        if dialect == "openai"
        else {"type": "error", "error": {"type": kind, "message": "Rate limit reached"}}
    )
    return Reply(429, body, headers)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_plain_call_over_the_wire(dialect: str, servers: list[WireServer]) -> None:
    server = serve(dialect)
    servers.append(server)
    result = sample(provider_for(dialect, server))
    assert isinstance(result, SampleResult), result
    assert result.completions[0].text.startswith("42")
    seen = server.seen[0]
    if dialect == "openai":
        assert seen.path == "/v1/chat/completions"
        assert seen.headers["authorization"] == f"Bearer {KEY}"
        assert seen.body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert result.usage.reasoning_tokens == 30
    else:
        assert seen.path == "/v1/messages"
        assert seen.headers["x-api-key"] == KEY
        assert seen.headers["anthropic-version"] == "2023-06-01"
        assert seen.body["system"] == "Be brief."
        assert seen.body["messages"] == [{"role": "user", "content": "What is 6 * 7?"}]
        assert result.usage.prompt_tokens == 12 and result.usage.completion_tokens == 9


@pytest.mark.parametrize("dialect", DIALECTS)
def test_429_with_retry_after_is_waited_out(dialect: str, servers: list[WireServer]) -> None:
    server = serve(dialect, [rate_limited(dialect, **{"Retry-After": "1"}), Reply()])
    servers.append(server)
    result = sample(provider_for(dialect, server))
    assert isinstance(result, SampleResult), result
    assert len(server.seen) == 2
    # the retry came no sooner than the second the server asked for (its own backoff
    # would have been at most 0.5 s); a lower bound, which a loaded machine only widens
    assert server.seen[1].at - server.seen[0].at >= 0.95


@pytest.mark.parametrize("dialect", DIALECTS)
def test_500_then_success(dialect: str, servers: list[WireServer]) -> None:
    server = serve(dialect, [Reply(500, "Internal Server Error"), Reply()])
    servers.append(server)
    result = sample(provider_for(dialect, server))
    assert isinstance(result, SampleResult), result
    assert len(server.seen) == 2


def test_anthropic_529_overloaded_then_success(servers: list[WireServer]) -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    server = serve("anthropic", [Reply(529, overloaded), Reply()])
    servers.append(server)
    result = sample(provider_for("anthropic", server))
    assert isinstance(result, SampleResult), result
    assert len(server.seen) == 2


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_response_slower_than_the_timeout(dialect: str, servers: list[WireServer]) -> None:
    silent = threading.Event()
    server = serve(dialect, [Reply(hold=silent)])
    servers.append(server)
    try:
        result = sample(provider_for(dialect, server, timeout_s=0.3, max_retries=1))
        # both tries given up while the server still had not answered the first
        assert server.answered == 0
    finally:
        silent.set()
    assert isinstance(result, ProviderUnavailable), result
    assert "did not answer within 0.3 s" in str(result)
    assert len(server.seen) == 2  # tried twice


def test_openai_server_rejecting_n_gets_concurrent_single_requests(
    servers: list[WireServer],
) -> None:
    def script(seen: Seen, index: int) -> Reply:
        if seen.body.get("n", 1) > 1:
            return Reply(
                400,
                {
                    "error": {
                        "message": "'n' must be 1 for this model",
                        "type": "invalid_request_error",
                        "param": "n",
                        "code": "unsupported_value",
                    }
                },
            )
        return Reply()

    server = serve("openai", script)
    servers.append(server)
    provider = provider_for("openai", server)
    request = SampleRequest(messages=PROMPT.messages, n=3, max_tokens=32, seed=5)
    result = sample(provider, request)
    assert isinstance(result, SampleResult), result
    assert len(result.completions) == 3
    assert [s.body["n"] for s in server.seen] == [3, 1, 1, 1]
    assert sorted(s.body["seed"] for s in server.seen[1:]) == [5, 6, 7]
    assert result.usage.completion_tokens == 120 and result.usage.reasoning_tokens == 90
    assert isinstance(provider, OpenAICompatProvider) and provider.supports_n is False


def test_anthropic_n_is_concurrent_requests(servers: list[WireServer]) -> None:
    # no reply until all three requests have arrived: sent one after the other, the
    # first would wait for the others (HOLD_SECONDS) and time out
    all_three = threading.Event()

    def script(seen: Seen, index: int) -> Reply:
        if index == 2:
            all_three.set()
        return Reply(hold=all_three)

    server = serve("anthropic", script)
    servers.append(server)
    request = SampleRequest(messages=PROMPT.messages, n=3, max_tokens=32)
    result = sample(provider_for("anthropic", server, timeout_s=30, max_retries=0), request)
    assert isinstance(result, SampleResult), result
    assert len(result.completions) == 3 and len(server.seen) == 3
    assert all("n" not in s.body for s in server.seen)
    assert result.usage.prompt_tokens == 36 and result.usage.completion_tokens == 27


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("body", ['{"choices": [', "<html>502 Bad Gateway</html>", ""])
def test_malformed_json_is_provider_unavailable(
    dialect: str, body: str, servers: list[WireServer]
) -> None:
    server = serve(dialect, [Reply(200, body)])
    servers.append(server)
    result = sample(provider_for(dialect, server))
    assert isinstance(result, ProviderUnavailable), result
    assert "not JSON" in str(result)
    assert len(server.seen) == 1


@pytest.mark.parametrize("dialect", DIALECTS)
def test_401_is_an_auth_error_and_the_key_never_shows(
    dialect: str, servers: list[WireServer]
) -> None:
    body = {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "auth"}}
    server = serve(dialect, [Reply(401, body)])
    servers.append(server)
    result = sample(provider_for(dialect, server))
    assert isinstance(result, AuthError), result
    assert KEY not in str(result)
    assert len(server.seen) == 1


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_bad_request_is_not_retried(dialect: str, servers: list[WireServer]) -> None:
    body = {"error": {"message": "temperature: must be <= 2", "type": "invalid_request_error"}}
    server = serve(dialect, [Reply(400, body)])
    servers.append(server)
    result = sample(provider_for(dialect, server))
    assert isinstance(result, BadRequest) and "temperature" in str(result)
    assert len(server.seen) == 1


def test_openai_logprobs_and_reasoning_controls_reach_the_server(
    servers: list[WireServer],
) -> None:
    server = serve("openai")
    servers.append(server)
    request = SampleRequest(
        messages=PROMPT.messages,
        max_tokens=4000,
        extra={
            "logprobs": True,
            "top_logprobs": 3,
            "reasoning_effort": "high",
            "max_completion_tokens": 3000,
        },
    )
    result = sample(provider_for("openai", server), request)
    assert isinstance(result, SampleResult), result
    sent = server.seen[0].body
    assert sent["logprobs"] is True and sent["top_logprobs"] == 3
    assert sent["reasoning_effort"] == "high"
    assert sent["max_completion_tokens"] == 3000 and "max_tokens" not in sent
    assert result.usage.reasoning_tokens == 30  # completion_tokens_details.reasoning_tokens


def test_anthropic_thinking_over_the_wire(servers: list[WireServer]) -> None:
    server = serve("anthropic")
    servers.append(server)
    request = SampleRequest(
        messages=PROMPT.messages,
        max_tokens=2048,
        temperature=1.0,
        extra={"thinking": {"type": "enabled", "budget_tokens": 1024}},
    )
    result = sample(provider_for("anthropic", server), request)
    assert isinstance(result, SampleResult), result
    assert server.seen[0].body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert result.completions[0].reasoning == "6 * 7 = 42"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_limiter_caps_requests_in_flight(dialect: str, servers: list[WireServer]) -> None:
    """Two providers (think: two processes) share one limiter capped at 2."""
    in_flight = 0
    peak = 0
    lock = threading.Lock()
    two_at_once = threading.Event()

    def script(seen: Seen, index: int) -> Reply:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
            if in_flight == 2:
                two_at_once.set()
        # the first request waits for a second one, however loaded the machine, so the
        # limit is reached; every request then takes a moment, so the six waiting
        # behind the limit press against it
        two_at_once.wait(HOLD_SECONDS)
        time.sleep(0.05)
        with lock:
            in_flight -= 1
        return Reply()

    server = serve(dialect, script)
    servers.append(server)
    limiter = LocalLimiter()
    request = SampleRequest(messages=PROMPT.messages, n=4, max_tokens=32)

    async def go() -> list[SampleResult]:
        providers = [
            provider_for(dialect, server, limiter=limiter, max_concurrency=2, supports_n=False)
            for _ in range(2)
        ]
        try:
            return list(await asyncio.gather(*(p.sample(request) for p in providers)))
        finally:
            for p in providers:
                await p.aclose()

    results = asyncio.run(go())
    assert all(len(r.completions) == 4 for r in results)
    assert len(server.seen) == 8
    assert peak == 2
