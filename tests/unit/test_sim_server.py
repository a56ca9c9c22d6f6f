"""The simulator's OpenAI-compatible HTTP API, in process (httpx.ASGITransport)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from api.simulator import create_sim_app
from ponder.llm.base import (
    Completion,
    ContextTooLong,
    Provider,
    ProviderUnavailable,
    SampleRequest,
    SampleResult,
    Usage,
)
from ponder.llm.openai_compat import OpenAICompatProvider
from ponder.llm.profiles import ModelProfile
from ponder.sim.model import SimProvider

T = TypeVar("T")

GAME24 = (
    "Use the numbers 4 9 10 13 and the operations + - * / with parentheses to make 24. "
    "Use every number exactly once.\n"
    "Think step by step, then give the expression on the last line as: Answer: <expression>"
)
GAME24_MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": GAME24}]


def with_client(
    provider: Provider, use: Callable[[httpx.AsyncClient], Awaitable[T]], **app_kwargs: Any
) -> T:
    async def go() -> T:
        transport = httpx.ASGITransport(app=create_sim_app(provider, **app_kwargs))
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
            return await use(client)

    return asyncio.run(go())


def post(provider: Provider, body: dict[str, Any], **app_kwargs: Any) -> httpx.Response:
    async def use(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post("/v1/chat/completions", json=body)

    return with_client(provider, use, **app_kwargs)


def through_provider(
    provider: Provider, request: SampleRequest, **profile_fields: Any
) -> tuple[SampleResult, bool]:
    """Send ``request`` through OpenAICompatProvider to the sim app; also report whether
    the client still believes the server supports n."""
    profile = ModelProfile(
        name="sim-http",
        provider="openai",
        base_url="http://sim/v1",
        model="sim-1",
        **profile_fields,
    )

    async def use(client: httpx.AsyncClient) -> tuple[SampleResult, bool]:
        http = OpenAICompatProvider(profile, client=client)
        return await http.sample(request), http.supports_n

    return with_client(provider, use)


class Recorder:
    """A provider that records the request and answers with a fixed result."""

    name = "recorder"

    def __init__(self, result: SampleResult | None = None, error: Exception | None = None):
        self.requests: list[SampleRequest] = []
        self.result = result or SampleResult([Completion("hi")], Usage(3, 1))
        self.error = error

    async def sample(self, request: SampleRequest) -> SampleResult:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return self.result

    async def aclose(self) -> None:
        return None


def test_lists_its_model() -> None:
    async def use(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get("/v1/models")

    response = with_client(SimProvider(), use, model_name="sim-7")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    (model,) = body["data"]
    assert model["id"] == "sim-7"
    assert model["object"] == "model"
    assert isinstance(model["created"], int)
    assert model["owned_by"]


def test_answers_a_game24_prompt_in_openai_shape() -> None:
    response = post(
        SimProvider(),
        {"model": "sim-1", "messages": GAME24_MESSAGES, "n": 2, "max_tokens": 512, "seed": 3},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "sim-1"
    assert [c["index"] for c in body["choices"]] == [0, 1]
    for choice in body["choices"]:
        assert choice["message"]["role"] == "assistant"
        assert choice["message"]["content"].strip()
        assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_round_trip_through_the_http_provider() -> None:
    request = SampleRequest(messages=[{"role": "user", "content": GAME24}], n=4, seed=11)
    result, supports_n = through_provider(SimProvider(), request)
    direct = asyncio.run(SimProvider().sample(request))
    assert supports_n is True
    assert len(result.completions) == 4
    assert [c.text for c in result.completions] == [c.text for c in direct.completions]
    assert result.usage == direct.usage
    for completion in result.completions:
        if completion.finish_reason == "stop":
            assert completion.text.strip().splitlines()[-1].startswith("Answer:")


def test_n_rejecting_server_says_so_in_openai_shape() -> None:
    response = post(
        SimProvider(supports_n=False),
        {"model": "sim-1", "messages": GAME24_MESSAGES, "n": 3},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "n"
    assert error["type"] == "invalid_request_error"
    assert "'n' must be 1" in error["message"]


def test_http_provider_falls_back_when_the_server_rejects_n() -> None:
    request = SampleRequest(messages=[{"role": "user", "content": GAME24}], n=3, seed=5)
    result, supports_n = through_provider(SimProvider(supports_n=False), request)
    assert supports_n is False
    assert len(result.completions) == 3
    singles = [
        asyncio.run(SimProvider().sample(SampleRequest(request.messages, seed=5 + i)))
        for i in range(3)
    ]
    assert [c.text for c in result.completions] == [s.completions[0].text for s in singles]
    assert result.usage == sum((s.usage for s in singles), Usage())


def test_request_fields_reach_the_provider() -> None:
    recorder = Recorder()
    response = post(
        recorder,
        {
            "model": "sim-1",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
                },
            ],
            "max_completion_tokens": 77,
            "temperature": 0.2,
            "top_p": 0.5,
            "seed": 9,
            "stop": "END",
            "user": "ignored-but-accepted",
        },
    )
    assert response.status_code == 200
    (request,) = recorder.requests
    assert request.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
    ]
    assert (request.max_tokens, request.temperature, request.top_p, request.seed) == (
        77,
        0.2,
        0.5,
        9,
    )
    assert request.stop == ["END"]


def test_reasoning_is_passed_through() -> None:
    recorder = Recorder(
        SampleResult([Completion("24", reasoning="try 4*6")], Usage(5, 20, reasoning_tokens=15))
    )
    result, _ = through_provider(recorder, SampleRequest([{"role": "user", "content": "?"}]))
    assert result.completions[0].reasoning == "try 4*6"
    assert result.usage == Usage(5, 20, reasoning_tokens=15)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "sim-1", "messages": GAME24_MESSAGES, "n": 0}, "n"),
        ({"model": "sim-1", "messages": []}, "messages"),
        ({"model": "sim-1"}, "messages"),
        ({"model": "sim-1", "messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
        ({"model": "sim-1", "messages": GAME24_MESSAGES, "temperature": 5}, "temperature"),
        ({"model": "sim-1", "messages": GAME24_MESSAGES, "stream": True}, "stream"),
    ],
)
def test_bad_requests_are_400_in_openai_shape(body: dict[str, Any], param: str) -> None:
    response = post(Recorder(), body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


def test_invalid_json_is_a_400() -> None:
    async def use(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(
            "/v1/chat/completions",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )

    response = with_client(Recorder(), use)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_model_and_route() -> None:
    response = post(Recorder(), {"model": "gpt-9", "messages": GAME24_MESSAGES})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and "sim-1" in error["message"]

    async def use(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get("/v1/nothing-here")

    missing = with_client(Recorder(), use)
    assert missing.status_code == 404
    assert "error" in missing.json()


def test_provider_errors_map_to_openai_errors() -> None:
    too_long = Recorder(error=ContextTooLong("prompt is too long for the context window"))
    response = post(too_long, {"model": "sim-1", "messages": GAME24_MESSAGES})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"
    with pytest.raises(ContextTooLong):
        through_provider(too_long, SampleRequest([{"role": "user", "content": "?"}]))

    down = Recorder(error=ProviderUnavailable("overloaded"))
    response = post(down, {"model": "sim-1", "messages": GAME24_MESSAGES})
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "server_error"
