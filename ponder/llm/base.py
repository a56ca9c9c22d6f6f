"""The model boundary: what every provider (real or simulated) speaks.

A provider turns one :class:`SampleRequest` (chat messages, ``n`` samples, a token cap)
into one :class:`SampleResult` (``n`` completions and the usage the server reported).
A :class:`RewardModel` scores answers and reasoning steps instead (see
:mod:`ponder.llm.reward`). Strategies never see either directly: they go through the
durable ``Context``, which journals each result and charges it to the job's budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict

from ponder.errors import ErrorCode, PonderError

Role = Literal["system", "user", "assistant"]


class Message(TypedDict):
    role: Role
    content: str


@dataclass(frozen=True)
class SampleRequest:
    messages: list[Message]
    n: int = 1
    max_tokens: int = 512
    temperature: float = 0.8
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str = "stop"  # "stop" | "length"
    reasoning: str | None = None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )


@dataclass(frozen=True)
class SampleResult:
    completions: list[Completion]
    usage: Usage
    model: str = ""


class Provider(Protocol):
    """Anything that can answer chat requests. Implementations must be safe to share
    between concurrent coroutines on one event loop."""

    name: str

    async def sample(self, request: SampleRequest) -> SampleResult: ...

    async def aclose(self) -> None: ...


class RewardModel(Protocol):
    """Scores answers and reasoning steps. Implementations must be safe to share between
    concurrent coroutines on one event loop, and deterministic for the same input where
    they can be (the Context journals results anyway)."""

    name: str

    async def score(self, prompt: str, candidates: list[str]) -> list[float]:
        """One score in [0, 1] per candidate answer (outcome reward)."""
        ...

    async def score_steps(self, prompt: str, paths: list[list[str]]) -> list[list[float]]:
        """Per path, one score in [0, 1] per step (process reward)."""
        ...

    async def aclose(self) -> None: ...


# --- errors: callers decide by type -------------------------------------------------


class ProviderError(PonderError):
    """A model call failed. ``retryable`` says whether trying again may help."""

    code = ErrorCode.PROVIDER_ERROR
    retryable: bool = False

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ProviderUnavailable(ProviderError):
    """The server could not be reached or kept failing (5xx, timeouts)."""

    code = ErrorCode.PROVIDER_UNAVAILABLE
    retryable = True


class RateLimited(ProviderUnavailable):
    """429 after retries were exhausted."""


class BadRequest(ProviderError):
    """The server refused the request as malformed (4xx other than 408/409/429)."""

    code = ErrorCode.PROVIDER_BAD_REQUEST


class AuthError(BadRequest):
    """401/403: the key is missing or wrong."""

    code = ErrorCode.PROVIDER_AUTH


class ContextTooLong(BadRequest):
    """The prompt plus the requested tokens do not fit the model's context."""


def estimate_tokens(text: str) -> int:
    """An upper bound on the tokens ``text`` encodes to for byte-level BPE tokenizers
    (no token covers less than one byte), used to reserve budget before a call."""
    return len(text.encode("utf-8"))


def estimate_prompt_tokens(messages: list[Message]) -> int:
    # a few tokens of chat-template framing per message
    return sum(estimate_tokens(m["content"]) + 8 for m in messages) + 4
