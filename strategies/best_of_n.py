"""Best-of-N: sample N candidates, score each with the verifier, select one.

Selection (``selection``):

- ``verifier`` (default): the best verdict, passed first, then score.
- ``reward``: the highest verifier score (the verifier as a reward model).
- ``weighted``: reward-weighted answer groups: the scores of the samples that gave the
  same normalized answer are summed and the heaviest group wins (with the "none"
  verifier every score is 0, so this is a majority vote). The result's score is the
  group's share of all the weight.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ponder.problem import Problem
from ponder.runtime import BudgetExhausted, Cancelled, Context
from ponder.verifiers.base import Verdict
from strategies._select import VoteBook
from strategies.registry import register

Selection = Literal["verifier", "reward", "weighted"]


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
        default=True, description="Stop sampling once the selected candidate is verified."
    )
    selection: Selection = Field(
        default="verifier",
        description=(
            "How the answer is chosen: `verifier` (passed first, then score), `reward` "
            "(highest verifier score), or `weighted` (sum of scores per normalized answer; "
            "the heaviest answer group wins)."
        ),
    )


@register(
    "best_of_n",
    BestOfNParams,
    "Sample N candidates (in batches), score each with the verifier, and select by "
    "verdict, by reward score, or by reward-weighted answer groups.",
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
    selection: Selection = "verifier",
) -> None:
    messages = ctx.messages()
    book = VoteBook(planned=n, weighted=True)
    top_score: float | None = None  # for "reward": the best score proposed so far
    drawn = 0
    try:
        while drawn < n:
            want = min(batch_size, n - drawn)
            completions = await ctx.sample(
                messages, n=want, max_tokens=max_tokens, temperature=temperature
            )
            answers = [ctx.parse_answer(c.text) for c in completions]
            verdicts: list[Verdict] = list(await asyncio.gather(*(ctx.verify(a) for a in answers)))
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
                if selection == "verifier":
                    ctx.propose(answer, verdict)
                elif selection == "reward":
                    if answer is not None and (top_score is None or verdict.score > top_score):
                        top_score = verdict.score
                        ctx.propose(answer, verdict)
                else:
                    book.add(answer, verdict)
            drawn += len(completions)
            if selection == "weighted":
                ctx.event("vote", book.event_data())
                book.propose_leader(ctx, final=False)
            best = ctx.best
            if stop_when_verified and best is not None and best.verdict.passed:
                break
    except (BudgetExhausted, Cancelled):
        if selection == "weighted":
            book.propose_leader(ctx, final=True)
        raise
    if selection == "weighted":
        book.propose_leader(ctx, final=True)
