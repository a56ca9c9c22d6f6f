"""Best-of-N: sample N candidates, verify each, keep the best."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field

from ponder.problem import Problem
from ponder.runtime import Context
from strategies.registry import register


class BestOfNParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(default=8, ge=1, le=4096, description="How many candidates to sample.")
    batch_size: int = Field(
        default=8, ge=1, le=256, description="Candidates asked for per model request."
    )
    max_tokens: int = Field(
        default=1024, ge=16, le=200_000, description="Completion token cap per candidate."
    )
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    stop_when_verified: bool = Field(
        default=True, description="Stop sampling once a candidate passes the verifier."
    )


@register(
    "best_of_n",
    BestOfNParams,
    "Sample N candidates (in batches), score each with the verifier, return the best.",
)
async def best_of_n(
    problem: Problem,
    ctx: Context,
    *,
    n: int,
    batch_size: int,
    max_tokens: int,
    temperature: float,
    stop_when_verified: bool,
) -> None:
    messages = ctx.messages()
    drawn = 0
    while drawn < n:
        want = min(batch_size, n - drawn)
        completions = await ctx.sample(
            messages, n=want, max_tokens=max_tokens, temperature=temperature
        )
        answers = [ctx.parse_answer(c.text) for c in completions]
        verdicts = await asyncio.gather(*(ctx.verify(a) for a in answers))
        for i, (answer, verdict) in enumerate(zip(answers, verdicts, strict=True)):
            ctx.event(
                "candidate",
                {
                    "index": drawn + i,
                    "answer": answer,
                    "score": verdict.score,
                    "passed": verdict.passed,
                    "feedback": verdict.feedback,
                },
            )
            ctx.propose(answer, verdict)
        drawn += len(completions)
        best = ctx.best
        if stop_when_verified and best is not None and best.verdict.passed:
            return
