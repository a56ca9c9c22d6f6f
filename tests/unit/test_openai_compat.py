"""OpenAICompatProvider against scripted servers (httpx.MockTransport); nothing waits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from ponder.llm.base import (
    AuthError,
    BadRequest,
    ContextTooLong,
    ProviderUnavailable,
    RateLimited,
    SampleRequest,
    SampleResult,
    Usage,
)
from ponder.llm.openai_compat import OpenAICompatProvider
from ponder.llm.profiles import ModelProfile

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]
SECRET = "sk-test-0123456789abcdef"
PROMPT = SampleRequest(messages=[{"role": "user", "content": "What is 6 * 7?"}], max_tokens=64)


class Server:
    """Records what the provider sent; answers with the handler's responses."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.handler(request)
        if not isinstance(response, httpx.Response):
            response = await response
        return response

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


def completion(
    texts: list[str] | str = "42",
    *,
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
    reasoning_tokens: int | None = None,
    reasoning: str | None = None,
) -> httpx.Response:
    texts = [texts] if isinstance(texts, str) else texts
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if reasoning_tokens is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    choices = []
    for index, text in enumerate(texts):
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if reasoning is not None:
            message["reasoning_content"] = reasoning
        choices.append({"index": index, "message": message, "finish_reason": "stop"})
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "m-1",
            "choices": choices,
            "usage": usage,
        },
    )


def error(status: int, message: str, *, param: str | None = None, **headers: str) -> httpx.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param}}
    return httpx.Response(status, json=body, headers=headers)


def run(
    handler: Handler,
    request: SampleRequest = PROMPT,
    **profile_fields: Any,
) -> tuple[SampleResult | Exception, Server, list[float]]:
    """Sample once; return the result (or the error raised), the server and the sleeps."""
    server = Server(handler)
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    fields: dict[str, Any] = {
        "name": "test-model",
        "provider": "openai",
        "base_url": "http://llm.test/v1",
        "model": "m-1",
        **profile_fields,
    }
    profile = ModelProfile(**fields)

    async def go() -> SampleResult | Exception:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
            provider = OpenAICompatProvider(profile, client=client, sleep=fake_sleep)
            try:
                return await provider.sample(request)
            except Exception as exc:  # the tests inspect the error
                return exc

    return asyncio.run(go()), server, sleeps


def test_sends_an_openai_request_and_reads_the_answer() -> None:
    result, server, sleeps = run(lambda r: completion("42"))
    assert isinstance(result, SampleResult)
    assert [c.text for c in result.completions] == ["42"]
    assert result.completions[0].finish_reason == "stop"
    assert result.usage == Usage(prompt_tokens=10, completion_tokens=5)
    assert result.model == "m-1"
    (sent,) = server.requests
    assert str(sent.url) == "http://llm.test/v1/chat/completions"
    assert server.bodies()[0] == {
        "model": "m-1",
        "messages": [{"role": "user", "content": "What is 6 * 7?"}],
        "n": 1,
        "max_tokens": 64,
        "temperature": 0.8,
    }
    assert "authorization" not in sent.headers  # no api_key_env: no header
    assert sleeps == []


def test_optional_fields_and_extra_are_sent_but_core_fields_win() -> None:
    request = SampleRequest(
        messages=PROMPT.messages,
        top_p=0.9,
        seed=5,
        stop=["\n\n"],
        extra={"reasoning_effort": "low", "max_tokens": 99_999},
    )
    _, server, _ = run(lambda r: completion(), request)
    body = server.bodies()[0]
    assert body["top_p"] == 0.9
    assert body["seed"] == 5
    assert body["stop"] == ["\n\n"]
    assert body["reasoning_effort"] == "low"
    assert body["max_tokens"] == 512


def test_api_key_comes_from_the_named_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONDER_TEST_KEY", SECRET)
    _, server, _ = run(lambda r: completion(), api_key_env="PONDER_TEST_KEY")
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"


def test_missing_key_fails_before_calling_and_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PONDER_TEST_KEY", raising=False)
    result, server, _ = run(lambda r: completion(), api_key_env="PONDER_TEST_KEY")
    assert isinstance(result, AuthError)
    assert "PONDER_TEST_KEY" in str(result)
    assert server.requests == []


def test_401_is_an_auth_error_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONDER_TEST_KEY", SECRET)
    result, server, sleeps = run(
        lambda r: error(401, f"Incorrect API key provided: {SECRET}."),
        api_key_env="PONDER_TEST_KEY",
    )
    assert isinstance(result, AuthError)
    assert result.status_code == 401
    assert SECRET not in str(result)
    assert "PONDER_TEST_KEY" in str(result)  # tells the operator where to look
    assert "Incorrect API key" in str(result)
    assert len(server.requests) == 1 and sleeps == []


def test_429_waits_as_long_as_retry_after_says_then_succeeds() -> None:
    replies = iter([error(429, "slow down", **{"Retry-After": "7"}), completion("ok")])
    result, server, sleeps = run(lambda r: next(replies))
    assert isinstance(result, SampleResult)
    assert result.completions[0].text == "ok"
    assert sleeps == [7.0]
    assert len(server.requests) == 2


def test_retry_after_ms_is_honoured() -> None:
    replies = iter([error(429, "slow down", **{"retry-after-ms": "1500"}), completion()])
    _, _, sleeps = run(lambda r: next(replies))
    assert sleeps == [1.5]


def test_500_then_success_backs_off_with_jitter() -> None:
    replies = iter([error(500, "oops"), error(503, "busy"), completion("ok")])
    result, server, sleeps = run(lambda r: next(replies))
    assert isinstance(result, SampleResult)
    assert len(server.requests) == 3
    assert len(sleeps) == 2
    assert 0.0 <= sleeps[0] <= 0.5
    assert 0.0 <= sleeps[1] <= 1.0


@pytest.mark.parametrize("status", [408, 409])
def test_timeout_and_conflict_statuses_are_retried(status: int) -> None:
    replies = iter([error(status, "try again"), completion()])
    result, server, _ = run(lambda r: next(replies))
    assert isinstance(result, SampleResult)
    assert len(server.requests) == 2


def test_persistent_429_becomes_rate_limited_after_max_retries() -> None:
    result, server, sleeps = run(lambda r: error(429, "quota"), max_retries=3)
    assert isinstance(result, RateLimited)
    assert result.status_code == 429
    assert result.retryable
    assert len(server.requests) == 4
    assert len(sleeps) == 3
    assert "4 attempt(s)" in str(result) and "quota" in str(result)


def test_persistent_5xx_becomes_provider_unavailable() -> None:
    result, server, _ = run(lambda r: error(502, "bad gateway"), max_retries=2)
    assert isinstance(result, ProviderUnavailable)
    assert not isinstance(result, RateLimited)
    assert result.status_code == 502
    assert len(server.requests) == 3


def test_400_is_not_retried_and_carries_the_server_message() -> None:
    result, server, sleeps = run(lambda r: error(400, "temperature must be <= 2"))
    assert isinstance(result, BadRequest)
    assert not isinstance(result, ContextTooLong)
    assert "temperature must be <= 2" in str(result)
    assert len(server.requests) == 1 and sleeps == []


def test_long_server_messages_are_truncated() -> None:
    result, _, _ = run(lambda r: error(422, "x" * 5000))
    assert isinstance(result, BadRequest)
    assert len(str(result)) < 1000


def test_context_overflow_is_context_too_long() -> None:
    message = "This model's maximum context length is 4096 tokens. However, you requested 9000."
    result, server, _ = run(lambda r: error(400, message))
    assert isinstance(result, ContextTooLong)
    assert len(server.requests) == 1


def test_timeouts_are_retried_then_reported_as_unavailable() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    result, server, sleeps = run(hang, max_retries=2, timeout_s=5)
    assert isinstance(result, ProviderUnavailable)
    assert "did not answer within 5 s" in str(result)
    assert len(server.requests) == 3
    assert len(sleeps) == 2


def test_connection_errors_are_retried_and_never_show_url_credentials() -> None:
    replies: list[httpx.Response | None] = [None, completion("ok")]

    def flaky(request: httpx.Request) -> httpx.Response:
        reply = replies.pop(0)
        if reply is None:
            raise httpx.ConnectError("connection refused", request=request)
        return reply

    result, server, _ = run(flaky)
    assert isinstance(result, SampleResult)
    assert len(server.requests) == 2

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    failed, _, _ = run(down, base_url="http://user:hunter2@llm.test/v1", max_retries=1)
    assert isinstance(failed, ProviderUnavailable)
    assert "hunter2" not in str(failed)
    assert "http://llm.test/v1/chat/completions" in str(failed)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>gateway</html>"),
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(200, json={"usage": {"prompt_tokens": 1, "completion_tokens": 1}}),
        httpx.Response(200, json={"choices": [{"index": 0}], "usage": {}}),
        httpx.Response(200, json={"choices": [{"index": 0, "message": {"content": "hi"}}]}),
    ],
    ids=["html", "list", "no-choices", "no-message", "no-usage"],
)
def test_malformed_responses_are_provider_unavailable(response: httpx.Response) -> None:
    result, server, _ = run(lambda r: response)
    assert isinstance(result, ProviderUnavailable)
    assert result.retryable
    assert "not a valid chat completion" in str(result)
    assert len(server.requests) == 1  # the server may have billed it: the caller decides


def test_reasoning_text_and_tokens_are_read() -> None:
    result, _, _ = run(
        lambda r: completion(
            "24", completion_tokens=120, reasoning_tokens=100, reasoning="4*(13-10)... "
        )
    )
    assert isinstance(result, SampleResult)
    assert result.usage == Usage(prompt_tokens=10, completion_tokens=120, reasoning_tokens=100)
    assert result.completions[0].reasoning == "4*(13-10)... "


def test_n_samples_come_back_in_one_request_when_supported() -> None:
    request = SampleRequest(messages=PROMPT.messages, n=3)
    result, server, _ = run(lambda r: completion(["a", "b", "c"]), request)
    assert isinstance(result, SampleResult)
    assert [c.text for c in result.completions] == ["a", "b", "c"]
    assert [b["n"] for b in server.bodies()] == [3]


def _rejects_n(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    if body["n"] > 1:
        return error(400, "n must be 1 for this model", param="n")
    return completion(f"sample seed={body.get('seed')}", prompt_tokens=10, completion_tokens=5)


def test_server_rejecting_n_falls_back_to_concurrent_requests_and_remembers() -> None:
    server = Server(_rejects_n)
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    profile = ModelProfile(name="t", provider="openai", base_url="http://llm.test/v1", model="m")

    async def go() -> tuple[SampleResult, SampleResult, bool]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
            provider = OpenAICompatProvider(profile, client=client, sleep=fake_sleep)
            first = await provider.sample(SampleRequest(PROMPT.messages, n=4, seed=100))
            second = await provider.sample(SampleRequest(PROMPT.messages, n=2))
            return first, second, provider.supports_n

    first, second, supports_n = asyncio.run(go())
    assert [c.text for c in first.completions] == [f"sample seed={100 + i}" for i in range(4)]
    assert first.usage == Usage(prompt_tokens=40, completion_tokens=20)
    assert len(second.completions) == 2
    assert second.usage == Usage(prompt_tokens=20, completion_tokens=10)
    assert supports_n is False
    ns = [b["n"] for b in server.bodies()]
    assert ns == [4, 1, 1, 1, 1, 1, 1]  # asked for n>1 once, never again
    assert "seed" not in server.bodies()[-1]  # no seed given: none invented
    assert sleeps == []


def test_supports_n_false_never_sends_n_above_one() -> None:
    request = SampleRequest(messages=PROMPT.messages, n=3, seed=7)
    result, server, _ = run(_rejects_n, request, supports_n=False)
    assert isinstance(result, SampleResult)
    assert len(result.completions) == 3
    assert result.usage == Usage(prompt_tokens=30, completion_tokens=15)
    assert [b["n"] for b in server.bodies()] == [1, 1, 1]
    assert sorted(b["seed"] for b in server.bodies()) == [7, 8, 9]


def test_server_silently_ignoring_n_gets_the_missing_samples() -> None:
    request = SampleRequest(messages=PROMPT.messages, n=3, seed=1)
    result, server, _ = run(lambda r: completion("one"), request)
    assert isinstance(result, SampleResult)
    assert len(result.completions) == 3
    assert result.usage == Usage(prompt_tokens=30, completion_tokens=15)
    assert [b["n"] for b in server.bodies()] == [3, 1, 1]
    assert [b["seed"] for b in server.bodies()] == [1, 2, 3]


def test_a_failing_fallback_request_fails_the_call() -> None:
    def second_fails(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("seed") == 1:
            return error(400, "bad stop sequence")
        return completion()

    request = SampleRequest(messages=PROMPT.messages, n=3, seed=0)
    result, _, _ = run(second_fails, request, supports_n=False)
    assert isinstance(result, BadRequest)
    assert "bad stop sequence" in str(result)


def test_at_most_max_concurrency_requests_are_in_flight() -> None:
    in_flight = 0
    peak = 0
    two = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 2:
            two.set()
        # the first waits for a second (the limit reached, however loaded the machine);
        # each then takes a moment while the other four press against the limit
        await asyncio.wait_for(two.wait(), 10)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return completion()

    request = SampleRequest(messages=PROMPT.messages, n=6)
    result, server, _ = run(slow, request, supports_n=False, max_concurrency=2)
    assert isinstance(result, SampleResult)
    assert len(server.requests) == 6
    assert peak == 2


def test_aclose_closes_only_a_client_it_created() -> None:
    profile = ModelProfile(name="t", provider="openai", base_url="http://llm.test/v1", model="m")

    async def go() -> tuple[bool, bool]:
        own = OpenAICompatProvider(profile)
        await own.aclose()
        async with httpx.AsyncClient() as shared:
            borrowed = OpenAICompatProvider(profile, client=shared)
            await borrowed.aclose()
            return own._client.is_closed, shared.is_closed

    assert asyncio.run(go()) == (True, False)


def test_n_below_one_is_refused_locally() -> None:
    result, server, _ = run(lambda r: completion(), SampleRequest(PROMPT.messages, n=0))
    assert isinstance(result, BadRequest)
    assert server.requests == []


def test_redirects_are_reported_with_a_hint() -> None:
    moved = httpx.Response(301, headers={"location": "https://new.test/v1/chat/completions"})
    result, server, _ = run(lambda r: moved)
    assert isinstance(result, BadRequest)
    assert "https://new.test/v1/chat/completions" in str(result)
    assert "base_url" in str(result)
    assert len(server.requests) == 1


def test_max_completion_tokens_replaces_max_tokens_within_the_reserved_cap() -> None:
    from ponder.llm.base import SampleRequest
    from ponder.llm.openai_compat import OpenAICompatProvider
    from ponder.llm.profiles import ModelProfile

    provider = OpenAICompatProvider(
        ModelProfile(name="o", provider="openai", base_url="http://127.0.0.1:9/v1", model="o")
    )
    msgs = [{"role": "user", "content": "hi"}]
    body = provider._body(
        SampleRequest(
            messages=msgs,
            max_tokens=500,
            extra={"max_completion_tokens": 9000, "reasoning_effort": "high"},
        ),
        n=1,
        seed=None,
    )
    assert "max_tokens" not in body
    assert body["max_completion_tokens"] == 500
    assert body["reasoning_effort"] == "high"
    plain = provider._body(SampleRequest(messages=msgs, max_tokens=500), n=1, seed=None)
    assert plain["max_tokens"] == 500 and "max_completion_tokens" not in plain


def test_the_aiohttp_pool_answers_like_httpx_and_caps_connections() -> None:
    """The production connection pool (aiohttp) against a real local server: answers
    come back as httpx responses (status, headers, body), at most ``max_connections``
    requests reach the server at once, a refused connection is an httpx.ConnectError and
    a silent server an httpx timeout."""
    import socket

    from aiohttp import web

    from ponder.llm.http import AiohttpPoster

    state = {"now": 0, "peak": 0}
    four = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        if state["now"] == 4:
            four.set()
        try:
            body = await request.json()
            if "sleep" not in body:
                # the first requests wait until four are in (the pool's cap reached,
                # however loaded the machine); the other 16 then press against it
                await asyncio.wait_for(four.wait(), 10)
            await asyncio.sleep(float(body.get("sleep", 0.01)))
            return web.json_response({"echo": body["i"]}, status=201, headers={"Retry-After": "3"})
        finally:
            state["now"] -= 1

    async def go() -> None:
        app = web.Application()
        app.router.add_post("/x", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}/x"
        timeout = httpx.Timeout(5)
        pool = AiohttpPoster(4, timeout=timeout)
        try:
            answers = await asyncio.gather(
                *(pool.post(url, json={"i": i}, headers={}, timeout=timeout) for i in range(20))
            )
            assert [r.status_code for r in answers] == [201] * 20
            assert [r.json()["echo"] for r in answers] == list(range(20))
            assert answers[0].headers["retry-after"] == "3"
            assert state["peak"] == 4
            with pytest.raises(httpx.TimeoutException):
                await pool.post(
                    url,
                    json={"i": 0, "sleep": 2},
                    headers={},
                    timeout=httpx.Timeout(0.2),
                )
            with socket.socket() as probe:  # a port nobody listens on
                probe.bind(("127.0.0.1", 0))
                closed = probe.getsockname()[1]
            with pytest.raises(httpx.ConnectError):
                await pool.post(
                    f"http://127.0.0.1:{closed}/x", json={}, headers={}, timeout=timeout
                )
        finally:
            await pool.aclose()
            await runner.cleanup()
        assert pool.is_closed

    asyncio.run(go())
