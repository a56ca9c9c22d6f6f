"""Adaptive compute allocation: probe cheaply, then escalate only while unsolved.

Easy problems should cost one short sample; hard ones get the budget. The phases:

1. **probe** — one sample at ``probe_max_tokens``; with a verifier, a pass ends the job.
2. **think longer** — with a verifier: rounds of ``growth``× more tokens per sample (and
   more samples per round), stopping at the first verified answer. Longer reasoning is
   the cheapest lever while a problem is within reach, and a verifier makes sequential
   stopping exact. Without a verifier: adaptive self-consistency instead, whose vote
   stops as soon as the leader is settled.
3. **refine** — critique → revise using the verifier's feedback.
4. **search** — tree of thoughts for tasks with step prompts, else a final best-of-N.

Each phase runs only while the problem is unsolved and the budget left (counted from the
results received, so a resumed run decides the same) can pay for it; the ledger's hard
caps still stop everything with the best-so-far.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ponder.families import get_step_task
from ponder.llm.base import estimate_prompt_tokens
from ponder.problem import Problem
from ponder.runtime import Context
from strategies.registry import get_strategy, register


class AutoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    probe_max_tokens: int = Field(
        default=256, ge=16, le=200_000, description="Completion cap of the cheap first sample."
    )
    max_rounds: int = Field(
        default=4, ge=0, le=16, description="Think-longer rounds after the probe."
    )
    growth: float = Field(
        default=2.0, ge=1.0, le=8.0, description="Token cap multiplier per round."
    )
    max_sample_tokens: int = Field(
        default=4096, ge=16, le=200_000, description="Largest completion cap any round uses."
    )
    refine_rounds: int = Field(default=2, ge=0, le=16, description="Critique → revise rounds.")
    search: bool = Field(
        default=True, description="End with a tree search (or best-of-N) if still unsolved."
    )
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)


def _affordable(ctx: Context, tokens_per_sample: int, samples: int = 1) -> bool:
    """Whether the budget left covers ``samples`` samples of this size (uncapped: yes)."""
    tokens, calls, _ = ctx.budget_left()
    prompt = estimate_prompt_tokens(ctx.messages())
    if tokens is not None and tokens < (prompt + tokens_per_sample) * samples:
        return False
    return calls is None or calls >= samples


def _solved(ctx: Context) -> bool:
    best = ctx.best
    return best is not None and best.verdict.passed


@register(
    "auto",
    AutoParams,
    "Adaptive compute: a cheap probe, then longer thinking, refinement and search, "
    "each only while the problem is unsolved and the budget allows.",
)
async def auto(
    problem: Problem,
    ctx: Context,
    *,
    probe_max_tokens: int,
    max_rounds: int,
    growth: float,
    max_sample_tokens: int,
    refine_rounds: int,
    search: bool,
    temperature: float,
) -> None:
    best_of_n = get_strategy("best_of_n")
    ctx.event("phase", {"phase": "probe", "max_tokens": probe_max_tokens})
    await best_of_n.run(
        problem,
        ctx,
        {"n": 1, "max_tokens": probe_max_tokens, "temperature": temperature},
    )
    if _solved(ctx):
        return

    if not ctx.has_verifier:
        # Nothing can check an answer: let a vote decide, stopping once it is settled.
        tokens = min(max_sample_tokens, int(probe_max_tokens * growth))
        ctx.event("phase", {"phase": "self_consistency", "max_tokens": tokens})
        await get_strategy("self_consistency").run(
            problem,
            ctx,
            {
                "n": 32,
                "batch_size": 4,
                "max_tokens": tokens,
                "adaptive": True,
                "temperature": temperature,
            },
        )
        return

    tokens, samples = probe_max_tokens, 1
    for round_no in range(1, max_rounds + 1):
        tokens = min(max_sample_tokens, int(tokens * growth))
        if round_no > 1:
            samples *= 2
        if not _affordable(ctx, tokens):
            break
        ctx.event(
            "phase",
            {"phase": "think_longer", "round": round_no, "max_tokens": tokens, "samples": samples},
        )
        await best_of_n.run(
            problem,
            ctx,
            {"n": samples, "batch_size": samples, "max_tokens": tokens, "temperature": temperature},
        )
        if _solved(ctx):
            return

    if refine_rounds and _affordable(ctx, tokens):
        ctx.event("phase", {"phase": "refine", "rounds": refine_rounds, "max_tokens": tokens})
        await get_strategy("refine").run(
            problem,
            ctx,
            {
                "rounds": refine_rounds,
                "n_initial": 1,
                "max_tokens": tokens,
                "temperature": temperature,
            },
        )
        if _solved(ctx):
            return

    if not search:
        return
    if get_step_task(problem.task) is not None:
        ctx.event("phase", {"phase": "tree_of_thoughts"})
        await get_strategy("tree_of_thoughts").run(problem, ctx, {})
    else:
        ctx.event("phase", {"phase": "best_of_n", "max_tokens": max_sample_tokens})
        await best_of_n.run(
            problem,
            ctx,
            {"n": 64, "batch_size": 4, "max_tokens": max_sample_tokens, "temperature": temperature},
        )
