"""A provider for any server speaking OpenAI's chat completions API (OpenAI, vLLM,
llama.cpp, Ollama, the Ponder simulator, ...).

What callers can rely on:

* one connection pool per provider (see :mod:`ponder.llm.http_client`, which this
  module shares with :mod:`ponder.llm.anthropic`), at most ``max_concurrency`` requests
  in flight, so a provider is cheap to share between concurrent coroutines; with a
  :class:`~ponder.llm.limits.Limiter` (the worker passes a Redis-backed one), at most
  ``max_concurrency`` across every worker process too;
* transient failures (408, 409, 429, 5xx, timeouts, dropped connections) are retried
  with capped exponential backoff and full jitter, honouring ``Retry-After``; what is
  left is raised as a typed :class:`~ponder.llm.base.ProviderError`;
* servers that cannot return several samples per request (``n > 1``) get ``n``
  concurrent single-sample requests instead, and the provider remembers that;
* the API key is read once from the environment variable the profile names and never
  appears in a log line or an exception message;
* ``request.extra`` passes server-specific parameters through (``logprobs``,
  ``top_logprobs``, ``reasoning_effort``, ``max_completion_tokens``, ...); usage counts
  ``completion_tokens_details.reasoning_tokens`` as ``Usage.reasoning_tokens``.
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
    ContextTooLong,
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

_CONTEXT_WORDING = re.compile(
    r"context[ _]length|context[ _]window|maximum context|prompt is too long|"
    r"too many tokens|exceeds? the (?:model'?s? )?(?:maximum|max)",
    re.IGNORECASE,
)
_MENTIONS_N = re.compile(r"(?<![\w.-])['\"`]?n['\"`]?(?![\w'-])")


# --- the provider -------------------------------------------------------------------


class _NUnsupported(Exception):
    """The server refused ``n > 1``; the caller falls back to single-sample requests."""


@register_provider("openai", default_base_url="https://api.openai.com/v1")
class OpenAICompatProvider(HttpChatProvider):
    """Calls ``POST {base_url}/chat/completions`` for the model ``profile`` describes."""

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
        if base_url is None:  # pragma: no cover - profiles always have one for openai
            raise ValueError(f"model profile {profile.name!r} has no base_url")
        super().__init__(
            profile,
            base_url.rstrip("/") + "/chat/completions",
            client=client,
            sleep=sleep,
            retry_policy=retry_policy,
            limiter=limiter,
        )
        self._supports_n = profile.supports_n

    @property
    def supports_n(self) -> bool:
        """False once the profile or the server has said ``n > 1`` is not supported."""
        return self._supports_n

    async def sample(self, request: SampleRequest) -> SampleResult:
        if request.n < 1:
            raise BadRequest(f"model {self.name!r}: n must be at least 1, got {request.n}")
        self._check_api_key()
        if request.n == 1 or not self._supports_n:
            return await self._sample_one_by_one(request, request.n, first_index=0)
        try:
            result = await self._post(request, n=request.n, seed=request.seed)
        except _NUnsupported:
            self._remember_no_n("rejected n > 1")
            return await self._sample_one_by_one(request, request.n, first_index=0)
        missing = request.n - len(result.completions)
        if missing <= 0:
            return SampleResult(result.completions[: request.n], result.usage, result.model)
        if len(result.completions) == 1:  # the server silently ignored n
            self._remember_no_n(f"returned 1 choice when asked for n={request.n}")
        rest = await self._sample_one_by_one(request, missing, first_index=len(result.completions))
        return SampleResult(
            result.completions + rest.completions, result.usage + rest.usage, result.model
        )

    def _remember_no_n(self, what: str) -> None:
        if self._supports_n:
            log.info(
                "model %r: the server %s; sending one request per sample from now on "
                "(set supports_n: false in the models file to skip this probe)",
                self.name,
                what,
            )
        self._supports_n = False

    async def _sample_one_by_one(
        self, request: SampleRequest, count: int, *, first_index: int
    ) -> SampleResult:
        """``count`` concurrent n=1 requests; sample ``i`` gets ``seed + i`` so the
        samples differ yet stay reproducible."""

        def seed_for(index: int) -> int | None:
            return None if request.seed is None else request.seed + index

        results = await gather_or_cancel(
            [self._post(request, n=1, seed=seed_for(first_index + i)) for i in range(count)]
        )
        completions = [c for r in results for c in r.completions[:1]]
        usage = sum((r.usage for r in results), Usage())
        return SampleResult(completions, usage, results[0].model if results else "")

    def _body(self, request: SampleRequest, *, n: int, seed: int | None) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "model": self.profile.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in request.messages],
            "n": n,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": seed,
            "stop": request.stop,
        }
        # ``extra`` carries server-specific parameters (e.g. reasoning_effort); the core
        # fields above always win so the budget's max_tokens cannot be overridden.
        body = {**request.extra, **{k: v for k, v in fields.items() if v is not None}}
        if "max_completion_tokens" in request.extra:
            # Reasoning models take only max_completion_tokens (reasoning included) and
            # reject max_tokens beside it; the cap stays within what the budget reserved.
            body["max_completion_tokens"] = min(
                int(request.extra["max_completion_tokens"]), request.max_tokens
            )
            del body["max_tokens"]
        return body

    def _headers(self) -> dict[str, str]:
        if not self._api_key:
            return {}
        return {"Authorization": f"Bearer {self._api_key}"}

    async def _post(self, request: SampleRequest, *, n: int, seed: int | None) -> SampleResult:
        """One logical call, with retries. Raises :class:`_NUnsupported` when the server
        refuses ``n > 1``."""
        response = await self._send_body(self._body(request, n=n, seed=seed), self._headers())
        status = response.status_code
        if status < 300:
            return self._parse(response, n=n)
        message = self._server_message(response)
        error = self._client_error(status, message, response)
        if (
            status == 400
            and n > 1
            and not isinstance(error, ContextTooLong)
            and self._rejects_n(response, message)
        ):
            raise _NUnsupported()
        raise error

    def _is_context_too_long(self, status: int, message: str, response: httpx.Response) -> bool:
        too_long = (
            _error_field(response, "code") == "context_length_exceeded"
            or _CONTEXT_WORDING.search(message) is not None
        )
        return status in (400, 413, 422) and too_long

    @staticmethod
    def _rejects_n(response: httpx.Response, message: str) -> bool:
        return _error_field(response, "param") == "n" or bool(_MENTIONS_N.search(message))

    def _parse(self, response: httpx.Response, *, n: int) -> SampleResult:
        def malformed(why: str) -> ProviderUnavailable:
            return self._malformed(response, why)

        try:
            payload = response.json()
        except ValueError:
            raise malformed("the body is not JSON") from None
        if not isinstance(payload, dict):
            raise malformed("the body is not a JSON object")
        if "choices" not in payload and payload.get("error"):
            raise self._reported_error(response)
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices:
            raise malformed("no 'choices' list")
        completions: list[tuple[int, Completion]] = []
        for position, choice in enumerate(choices):
            if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
                raise malformed(f"choice {position} has no 'message' object")
            message = choice["message"]
            content = message.get("content")
            if content is None:
                content = ""
            if not isinstance(content, str):
                raise malformed(f"choice {position} has non-text content")
            reasoning = message.get("reasoning_content")
            if not isinstance(reasoning, str):
                reasoning = message.get("reasoning")
            index = choice.get("index", position)
            completions.append(
                (
                    index if isinstance(index, int) else position,
                    Completion(
                        text=content,
                        finish_reason=str(choice.get("finish_reason") or "stop"),
                        reasoning=reasoning if isinstance(reasoning, str) and reasoning else None,
                    ),
                )
            )
        completions.sort(key=lambda pair: pair[0])

        usage_data = payload.get("usage")
        if not isinstance(usage_data, dict):
            raise malformed("no 'usage' object, so the call's cost cannot be charged")
        prompt_tokens = usage_data.get("prompt_tokens")
        completion_tokens = usage_data.get("completion_tokens")
        if not isinstance(prompt_tokens, int) or not isinstance(completion_tokens, int):
            raise malformed("'usage' lacks integer prompt_tokens/completion_tokens")
        details = usage_data.get("completion_tokens_details")
        reasoning_tokens = details.get("reasoning_tokens") if isinstance(details, dict) else None
        usage = Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            reasoning_tokens=reasoning_tokens if isinstance(reasoning_tokens, int) else 0,
        )
        model = payload.get("model")
        return SampleResult(
            completions=[c for _, c in completions[:n]],
            usage=usage,
            model=model if isinstance(model, str) and model else self.profile.model,
        )


def _error_field(response: httpx.Response, field: str) -> Any:
    try:
        payload = response.json()
    except ValueError:
        return None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return payload["error"].get(field)
    return None
