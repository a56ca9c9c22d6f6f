"""A job's outcome as every surface shows it — the job resource, webhooks and terminal
events, batch result lines — written once: the result with its answer, score and
verdict, and the usage rounded the same way everywhere."""

from __future__ import annotations

from typing import Any, Protocol


class Spent(Protocol):
    """What a job row (or finalize's summary of one) says of its spend."""

    @property
    def usage_tokens(self) -> int: ...
    @property
    def usage_calls(self) -> int: ...
    @property
    def usage_cost_usd(self) -> float: ...
    @property
    def usage_seconds(self) -> float: ...


def public_result(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored best answer as clients see it: ``answer`` (text or null), ``score``
    (0 to 1) and ``verified``; None if the job found no candidate."""
    if result is None:
        return None
    score = result.get("score")
    answer = result.get("answer")
    return {
        "answer": None if answer is None else str(answer),
        "score": float(score) if isinstance(score, int | float) else 0.0,
        "verified": bool(result.get("verified", False)),
    }


def usage(tokens: int, calls: int, cost_usd: float, seconds: float) -> dict[str, Any]:
    """Spend as clients see it: cost to 8 decimals, seconds to milliseconds."""
    return {
        "tokens": int(tokens),
        "calls": int(calls),
        "cost_usd": round(float(cost_usd), 8),
        "seconds": round(float(seconds), 3),
    }


def public_usage(job: Spent) -> dict[str, Any]:
    """A job's spend so far (:func:`usage`)."""
    return usage(job.usage_tokens, job.usage_calls, job.usage_cost_usd, job.usage_seconds)
