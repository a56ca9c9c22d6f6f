"""Self-consistency: sample reasoning paths, majority-vote over their normalized final
answers (Wang et al., 2022).

``adaptive: true`` stops sampling once the leading answer is settled, in the spirit of
Adaptive-Consistency (Aggarwal et al., 2023): after each batch, the posterior
probability that the leader really is the more likely of the top two answers (a Beta
posterior on their vote counts) is compared with ``confidence``. Easy problems, where
samples agree, stop after a few samples; hard ones, where they scatter, use the budget.

With a real verifier, every candidate is still checked: a candidate that passes becomes
the job's answer at once (and, with ``stop_when_verified``, ends sampling); when none
passes, the vote decides. The vote winner is proposed after every batch with a score
that only rises while the vote goes on (its votes over the planned ``n``), so each new
leader replaces the last one, and finally with its vote share; a non-passing candidate's
partial-credit score never outranks the vote.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field

from ponder.problem import Problem
from ponder.runtime import BudgetExhausted, Cancelled, Context
from ponder.verifiers.base import Verdict
from strategies._select import VoteBook, normalize_answer
from strategies.registry import register


class SelfConsistencyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(default=16, ge=1, le=4096, description="Most samples to vote over.")
    batch_size: int = Field(
        default=4,
        ge=1,
        le=256,
        description="Samples asked for per model request (adaptive mode checks after each).",
    )
    max_tokens: int = Field(
        default=1024, ge=16, le=200_000, description="Completion token cap per sample."
    )
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    adaptive: bool = Field(
        default=False,
        description="Stop once the leading answer is settled with `confidence`.",
    )
    confidence: float = Field(
        default=0.95,
        gt=0.5,
        lt=1.0,
        description=(
            "Adaptive stopping threshold: posterior probability (Beta on the top two vote "
            "counts) that the leading answer is the true majority."
        ),
    )
    min_samples: int = Field(
        default=3, ge=1, le=4096, description="Adaptive mode never stops before this many."
    )
    stop_when_verified: bool = Field(
        default=True, description="Stop sampling once a candidate passes the verifier."
    )


@register(
    "self_consistency",
    SelfConsistencyParams,
    "Majority vote over normalized final answers of N samples; `adaptive` stops as soon "
    "as the leading answer is settled with the requested confidence.",
)
async def self_consistency(
    problem: Problem,
    ctx: Context,
    *,
    n: int,
    batch_size: int,
    max_tokens: int,
    temperature: float,
    adaptive: bool,
    confidence: float,
    min_samples: int,
    stop_when_verified: bool,
) -> None:
    messages = ctx.messages()
    book = VoteBook(planned=n)
    stopped = "n_reached"
    try:
        while book.samples < n:
            want = min(batch_size, n - book.samples)
            completions = await ctx.sample(
                messages, n=want, max_tokens=max_tokens, temperature=temperature
            )
            answers = [ctx.parse_answer(c.text) for c in completions]
            verdicts: list[Verdict] = list(await asyncio.gather(*(ctx.verify(a) for a in answers)))
            for answer, verdict in zip(answers, verdicts, strict=True):
                ctx.event(
                    "candidate",
                    {
                        "index": book.samples,
                        "answer": answer,
                        "normalized": normalize_answer(answer),
                        "score": verdict.score,
                        "passed": verdict.passed,
                        "feedback": verdict.feedback,
                    },
                )
                book.add(answer, verdict)
                if verdict.passed:
                    ctx.propose(answer, verdict)
            settled = book.leader_confidence()
            ctx.event("vote", {**book.event_data(), "confidence": round(settled, 6)})
            book.propose_leader(ctx, final=False)
            best = ctx.best
            if stop_when_verified and best is not None and best.verdict.passed:
                stopped = "verified"
                break
            if adaptive and book.samples >= min_samples and settled >= confidence:
                stopped = "confident"
                break
    except (BudgetExhausted, Cancelled):
        book.propose_leader(ctx, final=True)
        raise
    book.propose_leader(ctx, final=True)
    leader = book.leader()
    ctx.event(
        "vote_result",
        {
            "answer": None if leader is None else leader.answer,
            "votes": 0 if leader is None else leader.count,
            "samples": book.samples,
            "share": round(book.final_score(), 6),
            "confidence": round(book.leader_confidence(), 6),
            "stopped": stopped,
        },
    )
