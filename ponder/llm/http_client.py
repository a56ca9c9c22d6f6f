"""What every HTTP client of a model server shares, so that each one holds only its
wire format: the chat providers (:mod:`ponder.llm.openai_compat`,
:mod:`ponder.llm.anthropic`) and the reward model client (:mod:`ponder.llm.reward`).

:class:`HttpModelClient` reads the API key once from the environment variable the
profile names, sends requests on one pooled connection (an
:class:`~ponder.llm.http.AiohttpPoster` unless a client is passed in) with the retries
of :func:`~ponder.llm.http.post_with_retries`, at most ``max_concurrency`` at once in
this process and, given a :class:`~ponder.llm.limits.Limiter`, across processes too;
it keeps the key out of every message and words the refusals (401/403, other 4xx).
:class:`HttpChatProvider` adds what both chat providers make of a client error
(refused key, redirect, context too long, else a bad request) and of a response that is
not what their API promises.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any, TypeVar

import httpx

from ponder.llm.base import AuthError, BadRequest, ContextTooLong, ProviderUnavailable
from ponder.llm.http import (
    AiohttpPoster,
    Endpoint,
    Poster,
    post_with_retries,
    scrub_secret,
    server_message,
)
from ponder.llm.limits import Limiter
from ponder.llm.profiles import ModelProfile, redact_url
from ponder.llm.retry import RetryPolicy, Sleep

_T = TypeVar("_T")


class HttpModelClient:
    """The part of an HTTP model client that does not depend on the wire format."""

    kind = "model"  # how messages name the client: "model 'x'", "reward model 'x'"

    def __init__(
        self,
        profile: ModelProfile,
        *,
        client: Poster | None,
        sleep: Sleep,
        retry_policy: RetryPolicy | None,
        limiter: Limiter | None,
    ) -> None:
        self.name = profile.name
        self.profile = profile
        self._sleep = sleep
        self._policy = retry_policy or RetryPolicy(max_retries=profile.max_retries)
        self._timeout = httpx.Timeout(profile.timeout_s, pool=None)
        self._slots = asyncio.Semaphore(profile.max_concurrency)
        self._limiter = limiter
        self._api_key = os.environ.get(profile.api_key_env, "") if profile.api_key_env else ""
        self._owns_client = client is None
        self._client: Poster = client or AiohttpPoster(
            profile.max_concurrency, timeout=self._timeout
        )

    @property
    def _who(self) -> str:
        return f"{self.kind} {self.name!r}"

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def _check_api_key(self) -> None:
        """Raise :class:`AuthError` when the profile names a key variable that is unset."""
        if self.profile.api_key_env and not self._api_key:
            raise AuthError(
                f"{self._who} needs an API key in the environment variable "
                f"{self.profile.api_key_env}, which is not set (or empty) in this process"
            )

    async def _send(
        self, url: str, shown_url: str, body: dict[str, Any], headers: dict[str, str]
    ) -> httpx.Response:
        """POST ``body`` to ``url`` with retries (``shown_url`` is what messages show);
        the first answer that is a 2xx or should not be retried."""
        return await post_with_retries(
            self._client,
            url,
            body=body,
            headers=headers,
            timeout=self._timeout,
            policy=self._policy,
            sleep=self._sleep,
            slot=self._slot,
            endpoint=Endpoint(
                self._who, shown_url, self.profile.timeout_s, self._scrub, self._server_message
            ),
        )

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """A slot of this process's ``max_concurrency`` and of the deployment-wide limit
        (if any), held around one request."""
        async with self._slots, self._limit():
            yield

    def _limit(self) -> AbstractAsyncContextManager[None]:
        """A slot of the profile's deployment-wide concurrency limit (if any)."""
        if self._limiter is None:
            return nullcontext()
        return self._limiter.slot(self.name, self.profile.max_concurrency)

    def _server_message(self, response: httpx.Response) -> str:
        return server_message(response, self._api_key)

    def _scrub(self, text: str) -> str:
        return scrub_secret(text, self._api_key)

    def _auth_error(self, status: int, message: str, shown_url: str) -> AuthError:
        key_hint = (
            f"the key in {self.profile.api_key_env}"
            if self.profile.api_key_env
            else "no key (the profile sets no api_key_env)"
        )
        return AuthError(
            f"{self._who} at {shown_url} refused the request (HTTP {status}) "
            f"sent with {key_hint}; server said: {message}",
            status_code=status,
        )

    def _rejected(self, status: int, message: str, shown_url: str) -> BadRequest:
        return BadRequest(
            f"{self._who} at {shown_url} rejected the request (HTTP {status}); "
            f"server said: {message}",
            status_code=status,
        )


class HttpChatProvider(HttpModelClient):
    """A chat model behind one HTTP endpoint (``url``). Subclasses build the request,
    read the response, and say which refusals mean a refused key or a prompt too long
    for the context window."""

    response_kind = "chat completion"  # what a valid response is, for messages

    def __init__(
        self,
        profile: ModelProfile,
        url: str,
        *,
        client: Poster | None,
        sleep: Sleep,
        retry_policy: RetryPolicy | None,
        limiter: Limiter | None,
    ) -> None:
        super().__init__(
            profile, client=client, sleep=sleep, retry_policy=retry_policy, limiter=limiter
        )
        self._url = url
        self._shown_url = redact_url(url)

    async def _send_body(self, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        return await self._send(self._url, self._shown_url, body, headers)

    def _is_auth_failure(self, status: int, response: httpx.Response) -> bool:
        return status in (401, 403)

    def _is_context_too_long(self, status: int, message: str, response: httpx.Response) -> bool:
        return False

    def _client_error(self, status: int, message: str, response: httpx.Response) -> BadRequest:
        """What a non-2xx answer that was not retried means (``message``: what the server
        said, without the key)."""
        if self._is_auth_failure(status, response):
            return self._auth_error(status, message, self._shown_url)
        if 300 <= status < 400:
            target = response.headers.get("location")
            where = f" to {redact_url(target)}" if target else ""
            return BadRequest(
                f"{self._who}: {self._shown_url} answered with a redirect "
                f"(HTTP {status}){where}; set base_url in the models file to the final address",
                status_code=status,
            )
        if self._is_context_too_long(status, message, response):
            return ContextTooLong(
                f"{self._who}: the prompt plus max_tokens do not fit the model's "
                f"context window (HTTP {status}); server said: {message}",
                status_code=status,
            )
        return self._rejected(status, message, self._shown_url)

    def _malformed(self, response: httpx.Response, why: str) -> ProviderUnavailable:
        """A 2xx whose body is not a valid :attr:`response_kind`."""
        return ProviderUnavailable(
            f"{self._who} at {self._shown_url} sent a response that is not a valid "
            f"{self.response_kind} ({why}); the server or a proxy in front of it may be "
            "misconfigured",
            status_code=response.status_code,
        )

    def _reported_error(self, response: httpx.Response) -> ProviderUnavailable:
        """A 2xx whose body is an error report instead of a response."""
        return ProviderUnavailable(
            f"{self._who} at {self._shown_url} reported an error: {self._server_message(response)}",
            status_code=response.status_code,
        )


async def gather_or_cancel(calls: Iterable[Awaitable[_T]]) -> list[_T]:
    """Run ``calls`` concurrently and return their results in order; when one fails (or
    the caller is cancelled), cancel the others, wait for them, and raise."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


__all__ = ["HttpChatProvider", "HttpModelClient", "gather_or_cancel"]
