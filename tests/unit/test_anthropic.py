"""AnthropicProvider against scripted servers (httpx.MockTransport); nothing waits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from ponder.llm.anthropic import ANTHROPIC_VERSION, AnthropicProvider
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
from ponder.llm.limits import LocalLimiter
from ponder.llm.profiles import ModelProfile, build_provider, public_view

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]
SECRET = "sk-ant-test-0123456789abcdef"
PROMPT = SampleRequest(
    messages=[
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is 6 * 7?"},
    ],
    max_tokens=64,
    temperature=0.5,
)


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


def message(
    text: str = "42",
    *,
    thinking: str | None = None,
    redacted: bool = False,
    stop_reason: str = "end_turn",
    input_tokens: int = 20,
    output_tokens: int = 5,
    **usage_extra: int,
) -> httpx.Response:
    content: list[dict[str, Any]] = []
    if thinking is not None:
        content.append({"type": "thinking", "thinking": thinking, "signature": "sig"})
    if redacted:
        content.append({"type": "redacted_thinking", "data": "opaque"})
    content.append({"type": "text", "text": text})
    return httpx.Response(
        200,
        json={
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test-1",
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                **usage_extra,
            },
        },
    )


def error(status: int, kind: str, text: str, **headers: str) -> httpx.Response:
    body = {"type": "error", "error": {"type": kind, "message": text}}
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
        "name": "claude",
        "provider": "anthropic",
        "base_url": "http://anthropic.test",
        "model": "claude-test-1",
        **profile_fields,
    }
    profile = ModelProfile(**fields)

    async def go() -> SampleResult | Exception:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
            provider = AnthropicProvider(profile, client=client, sleep=fake_sleep)
            try:
                return await provider.sample(request)
            except Exception as exc:  # the tests inspect the error
                return exc

    return asyncio.run(go()), server, sleeps


def test_sends_a_messages_request_with_the_system_prompt_on_top(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_TEST_KEY", SECRET)
    request = SampleRequest(
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is 6 * 7?"},
            {"role": "assistant", "content": "Let me see."},
            {"role": "system", "content": "Answer with a number."},
            {"role": "user", "content": "Go on."},
        ],
        max_tokens=64,
        temperature=0.5,
        top_p=0.9,
        seed=7,
        stop=["\n\n"],
    )
    result, server, _ = run(lambda r: message("42"), request, api_key_env="ANTHROPIC_TEST_KEY")
    assert isinstance(result, SampleResult)
    sent = server.requests[0]
    assert sent.method == "POST"
    assert str(sent.url) == "http://anthropic.test/v1/messages"
    assert sent.headers["x-api-key"] == SECRET
    assert sent.headers["anthropic-version"] == ANTHROPIC_VERSION
    assert "authorization" not in sent.headers
    assert server.bodies()[0] == {
        "model": "claude-test-1",
        "system": "You are terse.\n\nAnswer with a number.",
        "messages": [
            {"role": "user", "content": "What is 6 * 7?"},
            {"role": "assistant", "content": "Let me see."},
            {"role": "user", "content": "Go on."},
        ],
        "max_tokens": 64,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop_sequences": ["\n\n"],
    }  # no seed, no n: the Messages API has neither
    assert result.completions[0].text == "42"
    assert result.completions[0].finish_reason == "stop"
    assert result.completions[0].reasoning is None
    assert result.usage == Usage(prompt_tokens=20, completion_tokens=5, reasoning_tokens=0)
    assert result.model == "claude-test-1"


def test_a_base_url_ending_in_v1_is_not_doubled() -> None:
    _, server, _ = run(lambda r: message(), base_url="http://anthropic.test/api/v1/")
    assert str(server.requests[0].url) == "http://anthropic.test/api/v1/messages"


def test_thinking_is_sent_and_thinking_blocks_become_reasoning() -> None:
    request = SampleRequest(
        messages=[{"role": "user", "content": "Make 24 from 4 9 10 13."}],
        max_tokens=3000,
        temperature=1.0,
        extra={"thinking": {"type": "enabled", "budget_tokens": 2048}, "top_k": 5},
    )
    text = "Answer: (10 - 4) * (13 - 9)"  # 27 bytes: 7 tokens at 4 bytes a token

    def handler(_: httpx.Request) -> httpx.Response:
        return message(text, thinking="Try 10 - 4 = 6...", redacted=True, output_tokens=900)

    result, server, _ = run(handler, request)
    assert isinstance(result, SampleResult)
    body = server.bodies()[0]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["top_k"] == 5
    assert "temperature" not in body  # thinking runs at the API's default temperature
    assert body["max_tokens"] == 3000
    completion = result.completions[0]
    assert completion.text == text
    assert completion.reasoning == "Try 10 - 4 = 6..."
    # output tokens include the thinking; reasoning is the part the text does not explain
    assert result.usage == Usage(prompt_tokens=20, completion_tokens=900, reasoning_tokens=893)


def test_core_fields_win_over_extra() -> None:
    request = SampleRequest(
        messages=PROMPT.messages, max_tokens=64, extra={"max_tokens": 99999, "model": "other"}
    )
    _, server, _ = run(lambda r: message(), request)
    body = server.bodies()[0]
    assert body["max_tokens"] == 64
    assert body["model"] == "claude-test-1"


@pytest.mark.parametrize(
    ("thinking", "max_tokens", "temperature", "wording"),
    [
        ({"type": "enabled", "budget_tokens": 512}, 4000, 1.0, "at least 1024"),
        ({"type": "enabled", "budget_tokens": 4000}, 4000, 1.0, "must be below max_tokens"),
        ({"type": "enabled", "budget_tokens": 5000}, 4000, 1.0, "must be below max_tokens"),
        ({"type": "enabled"}, 4000, 1.0, "integer thinking.budget_tokens"),
        ({"type": "enabled", "budget_tokens": "2k"}, 4000, 1.0, "integer"),
        ({"type": "enabled", "budget_tokens": 2048}, 4000, 0.2, "temperature 1"),
        ("on", 4000, 1.0, "must be an object"),
    ],
)
def test_thinking_budget_is_validated_before_any_call(
    thinking: Any, max_tokens: int, temperature: float, wording: str
) -> None:
    request = SampleRequest(
        messages=PROMPT.messages,
        max_tokens=max_tokens,
        temperature=temperature,
        extra={"thinking": thinking},
    )
    result, server, _ = run(lambda r: message(), request)
    assert isinstance(result, BadRequest)
    assert not isinstance(result, ContextTooLong)
    assert wording in str(result)
    assert server.requests == []


def test_disabled_thinking_passes_through() -> None:
    request = SampleRequest(
        messages=PROMPT.messages, max_tokens=64, extra={"thinking": {"type": "disabled"}}
    )
    result, server, _ = run(lambda r: message(), request)
    assert isinstance(result, SampleResult)
    assert server.bodies()[0]["thinking"] == {"type": "disabled"}
    assert server.bodies()[0]["temperature"] == 0.8


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "refusal"),
    ],
)
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    result, _, _ = run(lambda r: message(stop_reason=stop_reason))
    assert isinstance(result, SampleResult)
    assert result.completions[0].finish_reason == finish


def test_cache_tokens_are_charged_as_prompt_tokens() -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        return message(cache_read_input_tokens=100, cache_creation_input_tokens=30)

    result, _, _ = run(handler)
    assert isinstance(result, SampleResult)
    assert result.usage.prompt_tokens == 150


def test_429_waits_as_long_as_retry_after_says_then_succeeds() -> None:
    responses = iter(
        [error(429, "rate_limit_error", "slow down", **{"retry-after": "7"}), message("ok")]
    )
    result, server, sleeps = run(lambda r: next(responses))
    assert isinstance(result, SampleResult)
    assert result.completions[0].text == "ok"
    assert len(server.requests) == 2
    assert sleeps == [7.0]


def test_529_overloaded_is_retried_and_reported_when_it_persists() -> None:
    responses = iter([error(529, "overloaded_error", "Overloaded"), message("ok")])
    result, _, sleeps = run(lambda r: next(responses))
    assert isinstance(result, SampleResult)
    assert len(sleeps) == 1

    result, server, sleeps = run(
        lambda r: error(529, "overloaded_error", "Overloaded"), max_retries=2
    )
    assert isinstance(result, ProviderUnavailable)
    assert not isinstance(result, RateLimited)
    assert "overloaded" in str(result) and "529" in str(result)
    assert len(server.requests) == 3
    assert len(sleeps) == 2


def test_500_then_success_backs_off_with_jitter() -> None:
    responses = iter([error(500, "api_error", "Internal"), message("ok")])
    result, server, sleeps = run(lambda r: next(responses))
    assert isinstance(result, SampleResult)
    assert len(server.requests) == 2
    assert len(sleeps) == 1 and 0.0 <= sleeps[0] <= 0.5  # base 0.5 s, full jitter


def test_persistent_429_is_rate_limited() -> None:
    result, server, _ = run(lambda r: error(429, "rate_limit_error", "slow down"), max_retries=1)
    assert isinstance(result, RateLimited)
    assert result.status_code == 429
    assert len(server.requests) == 2


def test_401_is_an_auth_error_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_TEST_KEY", SECRET)

    def handler(_: httpx.Request) -> httpx.Response:
        return error(401, "authentication_error", f"invalid x-api-key {SECRET}")

    result, server, sleeps = run(handler, api_key_env="ANTHROPIC_TEST_KEY")
    assert isinstance(result, AuthError)
    assert result.status_code == 401
    assert SECRET not in str(result)
    assert "ANTHROPIC_TEST_KEY" in str(result)
    assert len(server.requests) == 1 and sleeps == []


def test_permission_error_is_an_auth_error() -> None:
    result, _, _ = run(lambda r: error(403, "permission_error", "no access to this model"))
    assert isinstance(result, AuthError)


def test_missing_key_fails_before_calling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_TEST_KEY", raising=False)
    result, server, _ = run(lambda r: message(), api_key_env="ANTHROPIC_TEST_KEY")
    assert isinstance(result, AuthError)
    assert "ANTHROPIC_TEST_KEY" in str(result)
    assert server.requests == []


@pytest.mark.parametrize(
    "text",
    [
        "prompt is too long: 212345 tokens > 200000 maximum",
        "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000",
    ],
)
def test_prompt_too_long_is_context_too_long(text: str) -> None:
    result, server, _ = run(lambda r: error(400, "invalid_request_error", text))
    assert isinstance(result, ContextTooLong)
    assert text in str(result)
    assert len(server.requests) == 1


def test_other_400s_are_bad_requests_with_the_server_message() -> None:
    result, server, sleeps = run(
        lambda r: error(400, "invalid_request_error", "messages: roles must alternate")
    )
    assert isinstance(result, BadRequest)
    assert not isinstance(result, AuthError | ContextTooLong)
    assert "roles must alternate" in str(result)
    assert len(server.requests) == 1 and sleeps == []


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>bad gateway</html>"),
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(200, json={"type": "message", "usage": {"input_tokens": 1}}),
        httpx.Response(200, json={"content": [{"type": "text", "text": "x"}]}),
        httpx.Response(
            200,
            json={"content": [{"type": "text"}], "usage": {"input_tokens": 1, "output_tokens": 1}},
        ),
        httpx.Response(200, json={"type": "error", "error": {"type": "api_error", "message": "x"}}),
    ],
)
def test_malformed_responses_are_provider_unavailable(response: httpx.Response) -> None:
    result, _, _ = run(lambda r: response)
    assert isinstance(result, ProviderUnavailable)


def test_n_samples_are_concurrent_requests_with_summed_usage() -> None:
    in_flight = 0
    peak = 0
    counter = iter(range(100))
    all_four = asyncio.Event()

    async def slow(_: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 4:
            all_four.set()
        # no answer until all four are in flight: requests sent one after another would
        # wait here (10 s, a bound only against hanging) and fail the test
        await asyncio.wait_for(all_four.wait(), 10)
        in_flight -= 1
        return message(f"answer {next(counter)}", output_tokens=3)

    request = SampleRequest(messages=PROMPT.messages, n=4, max_tokens=64)
    result, server, _ = run(slow, request)
    assert isinstance(result, SampleResult)
    assert len(server.requests) == 4
    assert all("n" not in body for body in server.bodies())
    assert peak == 4  # all at once
    assert sorted(c.text for c in result.completions) == [f"answer {i}" for i in range(4)]
    assert result.usage == Usage(prompt_tokens=80, completion_tokens=12)


def test_at_most_max_concurrency_requests_are_in_flight() -> None:
    in_flight = 0
    peak = 0
    two = asyncio.Event()

    async def slow(_: httpx.Request) -> httpx.Response:
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
        return message()

    result, server, _ = run(
        slow, SampleRequest(messages=PROMPT.messages, n=6, max_tokens=64), max_concurrency=2
    )
    assert isinstance(result, SampleResult)
    assert len(server.requests) == 6
    assert peak == 2


def test_a_failing_sample_fails_the_call() -> None:
    responses = iter([message("a"), error(400, "invalid_request_error", "bad"), message("c")])
    request = SampleRequest(messages=PROMPT.messages, n=3, max_tokens=64)
    result, _, _ = run(lambda r: next(responses), request)
    assert isinstance(result, BadRequest)


def test_a_limiter_slot_wraps_every_request() -> None:
    limiter = LocalLimiter()
    seen: list[int] = []

    def handler(_: httpx.Request) -> httpx.Response:
        seen.append(limiter.held("claude"))
        return message()

    profile = ModelProfile(
        name="claude", provider="anthropic", base_url="http://anthropic.test", model="m"
    )

    async def go() -> None:
        transport = httpx.MockTransport(handler)
        async with httpx.AsyncClient(transport=transport) as client:
            provider = AnthropicProvider(profile, client=client, limiter=limiter)
            await provider.sample(SampleRequest(messages=PROMPT.messages, n=3, max_tokens=64))

    asyncio.run(go())
    assert len(seen) == 3 and all(held >= 1 for held in seen)
    assert limiter.held("claude") == 0


def test_only_system_messages_is_refused_locally() -> None:
    request = SampleRequest(messages=[{"role": "system", "content": "x"}])
    result, server, _ = run(lambda r: message(), request)
    assert isinstance(result, BadRequest)
    assert server.requests == []


def test_build_provider_and_public_view_for_anthropic() -> None:
    profile = ModelProfile(
        name="claude", provider="anthropic", model="claude-x", api_key_env="ANTHROPIC_API_KEY"
    )
    provider = build_provider(profile)
    assert isinstance(provider, AnthropicProvider)
    asyncio.run(provider.aclose())
    view = public_view(profile)
    assert "base_url" not in view and "claude-x" not in repr(view)
    assert view["capabilities"]["supports_n"] is False
    assert view["capabilities"]["reasoning"] == "thinking"
    assert "ANTHROPIC_API_KEY" not in repr(view)
