"""A provider for Anthropic's Messages API (``POST {base_url}/v1/messages``) over httpx.

What callers can rely on (the same as :mod:`ponder.llm.openai_compat`):

* one connection pool per provider (see :mod:`ponder.llm.http_client`), at most
  ``max_concurrency`` requests in flight in this process, and across all workers when
  a :class:`~ponder.llm.limits.Limiter` is given;
* transient failures (408, 409, 429, 5xx including 529 "overloaded", timeouts, dropped
  connections) are retried with the shared :class:`~ponder.llm.retry.RetryPolicy`
  (capped exponential backoff, full jitter, ``Retry-After`` honoured); what is left is
  raised as a typed :class:`~ponder.llm.base.ProviderError`;
* the API has no ``n``: ``n > 1`` becomes ``n`` concurrent requests whose usage is
  summed;
* system messages go to the top-level ``system`` field; ``request.extra`` may carry
  ``thinking: {"type": "enabled", "budget_tokens": B}`` (extended thinking; ``B`` must
  be at least 1024 and below ``max_tokens``, and the temperature must be 1), whose
  thinking blocks come back as :attr:`Completion.reasoning`;
* usage: ``input_tokens`` (plus cache reads/writes, charged as input) and
  ``output_tokens``, which already include the thinking tokens; ``reasoning_tokens`` is
  an estimate (the API does not report it separately): output tokens less the visible
  text's;
* the API key is read once from the environment variable the profile names, sent as
  ``x-api-key``, and never appears in a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import httpx

from ponder.llm.base import (
    BadRequest,
    Completion,
    ProviderUnavailable,
    SampleRequest,
    SampleResult,
    Usage,
)
from ponder.llm.http_client import HttpChatProvider, gather_or_cancel
from ponder.llm.limits import Limiter
from ponder.llm.profiles import ModelProfile
from ponder.llm.registry import register_provider
from ponder.llm.retry import RetryPolicy, Sleep

log = logging.getLogger(__name__)

ANTHROPIC_VERSION = "2023-06-01"
MIN_THINKING_BUDGET = 1024
_BYTES_PER_TOKEN = 4
_CONTEXT_WORDING = re.compile(
    r"prompt is too long|context[ _]length|context[ _]window|context limit|"
    r"maximum context|too many (?:input )?tokens",
    re.IGNORECASE,
)
_STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


@register_provider(
    "anthropic",
    default_base_url="https://api.anthropic.com",
    # The Messages API has no ``n`` (samples are concurrent requests); reasoning is
    # extended thinking, thinking.budget_tokens >= 1024 and below max_tokens.
    capabilities={
        "supports_n": False,
        "reasoning": "thinking",
        "thinking_budget_min": MIN_THINKING_BUDGET,
    },
)
class AnthropicProvider(HttpChatProvider):
    """Calls Anthropic's Messages API for the model ``profile`` describes."""

    response_kind = "Messages API message"

    def __init__(
        self,
        profile: ModelProfile,
        *,
        client: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        retry_policy: RetryPolicy | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        base_url = profile.effective_base_url
        if base_url is None:  # pragma: no cover - anthropic profiles always have one
            raise ValueError(f"model profile {profile.name!r} has no base_url")
        root = base_url.rstrip("/")
        # The vendor's root is https://api.anthropic.com; accept a root ending in /v1 too.
        super().__init__(
            profile,
            root + ("/messages" if root.endswith("/v1") else "/v1/messages"),
            client=client,
            sleep=sleep,
            retry_policy=retry_policy,
            limiter=limiter,
        )

    supports_n = False  # the Messages API returns one message per request

    async def sample(self, request: SampleRequest) -> SampleResult:
        if request.n < 1:
            raise BadRequest(f"model {self.name!r}: n must be at least 1, got {request.n}")
        body = self._body(request)  # validates before anything is sent
        self._check_api_key()
        results = await gather_or_cancel([self._post(body) for _ in range(request.n)])
        return SampleResult(
            completions=[r.completions[0] for r in results],
            usage=sum((r.usage for r in results), Usage()),
            model=results[0].model,
        )

    # --- the request -------------------------------------------------------------------

    def _body(self, request: SampleRequest) -> dict[str, Any]:
        system = [m["content"] for m in request.messages if m["role"] == "system"]
        messages = [
            {"role": m["role"], "content": m["content"]}
            for m in request.messages
            if m["role"] != "system"
        ]
        if not messages:
            raise BadRequest(
                f"model {self.name!r}: the Messages API needs at least one user or "
                "assistant message besides the system prompt"
            )
        thinking = request.extra.get("thinking")
        thinking_on = self._check_thinking(thinking, request)
        fields: dict[str, Any] = {
            "model": self.profile.model,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "system": "\n\n".join(system) if system else None,
            # Extended thinking only runs at the default temperature; send none then.
            "temperature": None if thinking_on else request.temperature,
            "top_p": request.top_p,
            "stop_sequences": request.stop or None,
        }
        # ``extra`` carries Anthropic-specific parameters (thinking, top_k, metadata...);
        # the core fields win so the budget's max_tokens cannot be overridden. Anthropic
        # has no ``seed``: requests are not reproducible, and the journal covers resumes.
        return {**request.extra, **{k: v for k, v in fields.items() if v is not None}}

    def _check_thinking(self, thinking: Any, request: SampleRequest) -> bool:
        """Whether extended thinking is on; raises :class:`BadRequest` (before any call
        is made) when its settings cannot be accepted by the API."""
        if thinking is None:
            return False
        if not isinstance(thinking, dict):
            raise BadRequest(
                f"model {self.name!r}: 'thinking' must be an object like "
                '{"type": "enabled", "budget_tokens": 2048}'
            )
        if thinking.get("type") != "enabled":
            return False
        budget = thinking.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise BadRequest(
                f"model {self.name!r}: extended thinking needs an integer "
                f"thinking.budget_tokens (at least {MIN_THINKING_BUDGET})"
            )
        if budget < MIN_THINKING_BUDGET:
            raise BadRequest(
                f"model {self.name!r}: thinking.budget_tokens is {budget}, but Anthropic "
                f"requires at least {MIN_THINKING_BUDGET}"
            )
        if budget >= request.max_tokens:
            raise BadRequest(
                f"model {self.name!r}: thinking.budget_tokens ({budget}) must be below "
                f"max_tokens ({request.max_tokens}), which covers the thinking and the "
                "answer together; raise max_tokens or lower the thinking budget"
            )
        if request.temperature != 1.0:
            raise BadRequest(
                f"model {self.name!r}: extended thinking requires temperature 1, "
                f"got {request.temperature:g}"
            )
        return True

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    async def _post(self, body: dict[str, Any]) -> SampleResult:
        """One message, with retries."""
        response = await self._send_body(body, self._headers())
        if response.status_code < 300:
            return self._parse(response)
        raise self._client_error(response.status_code, self._server_message(response), response)

    # --- errors ------------------------------------------------------------------------

    def _is_auth_failure(self, status: int, response: httpx.Response) -> bool:
        kind = _error_type(response)
        return status in (401, 403) or kind in ("authentication_error", "permission_error")

    def _is_context_too_long(self, status: int, message: str, response: httpx.Response) -> bool:
        return status in (400, 413) and _CONTEXT_WORDING.search(message) is not None

    # --- the response ------------------------------------------------------------------

    def _parse(self, response: httpx.Response) -> SampleResult:
        def malformed(why: str) -> ProviderUnavailable:
            return self._malformed(response, why)

        try:
            payload = response.json()
        except ValueError:
            raise malformed("the body is not JSON") from None
        if not isinstance(payload, dict):
            raise malformed("the body is not a JSON object")
        if payload.get("type") == "error" or ("content" not in payload and payload.get("error")):
            raise self._reported_error(response)
        content = payload.get("content")
        if not isinstance(content, list):
            raise malformed("no 'content' list")
        texts: list[str] = []
        thoughts: list[str] = []
        thought = False
        for position, block in enumerate(content):
            if not isinstance(block, dict):
                raise malformed(f"content block {position} is not an object")
            kind = block.get("type")
            if kind == "text":
                text = block.get("text")
                if not isinstance(text, str):
                    raise malformed(f"text block {position} has no 'text' string")
                texts.append(text)
            elif kind == "thinking":
                thought = True
                thinking = block.get("thinking")
                if isinstance(thinking, str) and thinking:
                    thoughts.append(thinking)
            elif kind == "redacted_thinking":
                thought = True  # encrypted reasoning: counted in usage, not readable
        text = "".join(texts)

        usage_data = payload.get("usage")
        if not isinstance(usage_data, dict):
            raise malformed("no 'usage' object, so the call's cost cannot be charged")
        input_tokens = usage_data.get("input_tokens")
        output_tokens = usage_data.get("output_tokens")
        if not isinstance(input_tokens, int) or not isinstance(output_tokens, int):
            raise malformed("'usage' lacks integer input_tokens/output_tokens")
        cached = sum(
            value
            for value in (
                usage_data.get("cache_creation_input_tokens"),
                usage_data.get("cache_read_input_tokens"),
            )
            if isinstance(value, int)
        )
        reasoning_tokens = 0
        if thought:
            visible = -(-len(text.encode("utf-8")) // _BYTES_PER_TOKEN)
            reasoning_tokens = max(0, output_tokens - visible)
        stop_reason = payload.get("stop_reason")
        finish = _STOP_REASONS.get(str(stop_reason), str(stop_reason or "stop"))
        model = payload.get("model")
        return SampleResult(
            completions=[
                Completion(
                    text=text,
                    finish_reason=finish,
                    reasoning="\n\n".join(thoughts) if thoughts else None,
                )
            ],
            usage=Usage(
                prompt_tokens=input_tokens + cached,
                completion_tokens=output_tokens,
                reasoning_tokens=reasoning_tokens,
            ),
            model=model if isinstance(model, str) and model else self.profile.model,
        )


def _error_type(response: httpx.Response) -> str | None:
    try:
        payload = response.json()
    except ValueError:
        return None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        kind = payload["error"].get("type")
        return kind if isinstance(kind, str) else None
    return None


__all__ = ["ANTHROPIC_VERSION", "MIN_THINKING_BUDGET", "AnthropicProvider"]
