"""Extended thinking: spend a reasoning budget on one long line of thought.

Two ways to buy the thinking:

* **native** — the provider has its own reasoning controls; the budget is mapped onto
  them (OpenAI-compatible ``reasoning_effort`` + ``max_completion_tokens``, Anthropic
  ``thinking.budget_tokens``) by the small pure functions below, and one call does it.
* **budget forcing** (s1-style, for open models without such controls) — let the model
  reason; when it stops before ``min_thinking_tokens``, append what it wrote and ask it
  to go on with "Wait" (up to ``max_waits`` times); cut it off at the thinking cap; then
  ask for the final answer ("Final answer:") with a short ``answer_max_tokens``.

Every answer the model commits to along the way is verified and proposed, so the job
always has a best-so-far, and (by default) thinking stops as soon as one passes.

Thinking tokens are metered from the text itself (about 4 bytes a token; a segment cut
at its limit counts the whole limit), never from the ledger: the ledger of a resumed job
already holds the spend of calls that are about to be replayed, so decisions taken from
it would differ on resume. The job's budget still caps everything: a call the budget
cannot cover raises ``BudgetExhausted`` and the job stops with its best-so-far.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ponder.llm.base import Message
from ponder.problem import Problem
from ponder.runtime import Context
from strategies.registry import register

NativeKind = Literal["openai", "anthropic"]
Mode = Literal["native", "budget_forcing", "auto"]

# reasoning_effort by thinking budget (upper bounds, inclusive): rough guides to how many
# reasoning tokens OpenAI-style reasoning models spend at each level.
EFFORT_LOW_MAX = 2048
EFFORT_MEDIUM_MAX = 8192
ANTHROPIC_MIN_BUDGET = 1024  # the API's smallest thinking.budget_tokens

BYTES_PER_TOKEN = 4  # a typical BPE tokenizer's average on English and math
MIN_SEGMENT_TOKENS = 64  # a reasoning segment shorter than this is not worth a call

WAIT_PROMPT = (
    "Wait. Do not stop yet: keep thinking. Check the reasoning so far and explore what "
    "you have not tried; then end with your best answer."
)
FINAL_PROMPT = (
    "Final answer: stop thinking now and reply with only your final answer, on one line, "
    "in the format the problem asked for (Answer: <answer>)."
)


# --- native reasoning controls (pure) -------------------------------------------------


@dataclass(frozen=True)
class NativeControls:
    """What one native-thinking request carries: ``extra`` goes into the provider's
    request body, ``max_tokens`` caps (and reserves budget for) reasoning plus answer,
    ``temperature`` overrides the strategy's when the API requires a fixed one."""

    extra: dict[str, Any] = field(default_factory=dict)
    max_tokens: int = 0
    temperature: float | None = None


def reasoning_effort(thinking_tokens: int) -> Literal["low", "medium", "high"]:
    """The OpenAI-style ``reasoning_effort`` whose typical spend fits the budget."""
    if thinking_tokens <= EFFORT_LOW_MAX:
        return "low"
    if thinking_tokens <= EFFORT_MEDIUM_MAX:
        return "medium"
    return "high"


def openai_controls(thinking_tokens: int, answer_max_tokens: int) -> NativeControls:
    """OpenAI-compatible servers: effort by budget; ``max_completion_tokens`` bounds the
    reasoning and the visible answer together."""
    total = thinking_tokens + answer_max_tokens
    return NativeControls(
        extra={
            "reasoning_effort": reasoning_effort(thinking_tokens),
            "max_completion_tokens": total,
        },
        max_tokens=total,
    )


def anthropic_controls(thinking_tokens: int, answer_max_tokens: int) -> NativeControls:
    """Anthropic: ``thinking.budget_tokens`` must be at least 1024 and below
    ``max_tokens``; extended thinking also requires the default temperature (1)."""
    budget = max(ANTHROPIC_MIN_BUDGET, thinking_tokens)
    return NativeControls(
        extra={"thinking": {"type": "enabled", "budget_tokens": budget}},
        max_tokens=budget + max(answer_max_tokens, 1),
        temperature=1.0,
    )


def native_controls_for(
    kind: NativeKind, thinking_tokens: int, answer_max_tokens: int
) -> NativeControls:
    if kind == "anthropic":
        return anthropic_controls(thinking_tokens, answer_max_tokens)
    return openai_controls(thinking_tokens, answer_max_tokens)


def resolve_mode(mode: Mode, native: NativeKind | None) -> Literal["native", "budget_forcing"]:
    """``auto`` thinks natively only where the model has native controls; the simulated
    model (and any open model) has none, so it gets budget forcing."""
    if mode == "auto":
        return "native" if native is not None else "budget_forcing"
    return mode


def approx_tokens(text: str) -> int:
    """The thinking meter: tokens ``text`` holds, at about 4 bytes a token."""
    return -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN)


# --- the strategy ------------------------------------------------------------------------


class ThinkingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    thinking_tokens: int = Field(
        default=4096, ge=64, le=200_000, description="The reasoning budget (tokens)."
    )
    answer_max_tokens: int = Field(
        default=256, ge=16, le=32_000, description="Token cap on the final answer."
    )
    mode: Mode = Field(
        default="auto",
        description=(
            "`native` (provider reasoning controls), `budget_forcing` (s1-style 'Wait' "
            "continuation, for open models) or `auto` (native where `native_controls` says "
            "the model has them, else budget forcing)."
        ),
    )
    native_controls: NativeKind | None = Field(
        default=None,
        description=(
            "Which native reasoning controls the model speaks: `openai` "
            "(reasoning_effort, max_completion_tokens) or `anthropic` "
            "(thinking.budget_tokens); null for none (native mode then uses `openai`)."
        ),
    )
    min_thinking_tokens: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Budget forcing: when the model stops thinking before this many tokens, it is "
            "told 'Wait' and continues; null means the whole thinking budget."
        ),
    )
    max_waits: int = Field(
        default=2, ge=0, le=64, description="Budget forcing: at most this many 'Wait's."
    )
    segment_tokens: int | None = Field(
        default=None,
        ge=MIN_SEGMENT_TOKENS,
        le=200_000,
        description=(
            "Budget forcing: token cap per reasoning call (null: the rest of the thinking "
            "budget). Shorter segments check their answers more often."
        ),
    )
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    stop_when_verified: bool = Field(
        default=True, description="Stop thinking once an answer passes the verifier."
    )


@register(
    "thinking",
    ThinkingParams,
    "Extended thinking: native reasoning controls mapped from the budget, or budget "
    "forcing ('Wait' until the thinking budget is used, then 'Final answer:').",
)
async def thinking(
    problem: Problem,
    ctx: Context,
    *,
    thinking_tokens: int,
    answer_max_tokens: int,
    mode: Mode,
    native_controls: NativeKind | None,
    min_thinking_tokens: int | None,
    max_waits: int,
    segment_tokens: int | None,
    temperature: float,
    stop_when_verified: bool,
) -> None:
    if resolve_mode(mode, native_controls) == "native":
        await _native(
            ctx, native_controls or "openai", thinking_tokens, answer_max_tokens, temperature
        )
        return
    await _budget_forcing(
        ctx,
        thinking_tokens=thinking_tokens,
        answer_max_tokens=answer_max_tokens,
        min_thinking_tokens=thinking_tokens
        if min_thinking_tokens is None
        else min(min_thinking_tokens, thinking_tokens),
        max_waits=max_waits,
        segment_tokens=segment_tokens,
        temperature=temperature,
        stop_when_verified=stop_when_verified,
    )


async def _check(ctx: Context, text: str, source: str, index: int) -> bool:
    """Verify and propose the answer in ``text``; True if it passed."""
    answer = ctx.parse_answer(text)
    if answer is None:
        return False
    verdict = await ctx.verify(answer)
    ctx.event(
        "candidate",
        {
            "index": index,
            "source": source,
            "answer": answer,
            "score": verdict.score,
            "passed": verdict.passed,
            "feedback": verdict.feedback,
        },
    )
    ctx.propose(answer, verdict)
    return verdict.passed


async def _native(
    ctx: Context, kind: NativeKind, thinking_tokens: int, answer_max_tokens: int, temperature: float
) -> None:
    controls = native_controls_for(kind, thinking_tokens, answer_max_tokens)
    temp = temperature if controls.temperature is None else controls.temperature
    [completion] = await ctx.sample(
        ctx.messages(), max_tokens=controls.max_tokens, temperature=temp, extra=controls.extra
    )
    ctx.event(
        "thinking",
        {
            "mode": "native",
            "controls": controls.extra,
            "tokens": approx_tokens(completion.reasoning or ""),
            "finish": completion.finish_reason,
        },
    )
    await _check(ctx, completion.text, "native", 0)


async def _budget_forcing(
    ctx: Context,
    *,
    thinking_tokens: int,
    answer_max_tokens: int,
    min_thinking_tokens: int,
    max_waits: int,
    segment_tokens: int | None,
    temperature: float,
    stop_when_verified: bool,
) -> None:
    convo: list[Message] = list(ctx.messages())
    used = waits = segments = 0
    while (room := thinking_tokens - used) >= MIN_SEGMENT_TOKENS:
        ask = room if segment_tokens is None else min(room, segment_tokens)
        [completion] = await ctx.sample(convo, max_tokens=ask, temperature=temperature)
        text, finish = completion.text, completion.finish_reason
        used += ask if finish == "length" else approx_tokens(text)
        segments += 1
        convo = [*convo, {"role": "assistant", "content": text}]
        ctx.event(
            "thinking",
            {
                "mode": "budget_forcing",
                "segment": segments,
                "tokens": used,
                "waits": waits,
                "finish": finish,
            },
        )
        # An answer the model committed to (not one cut off mid-line) is checked now.
        passed = finish != "length" and await _check(ctx, text, "thinking", segments - 1)
        if passed and stop_when_verified:
            return
        if thinking_tokens - used < MIN_SEGMENT_TOKENS:
            break  # the cap: thinking is cut off here
        if finish != "length":
            # It stopped on its own: force more thinking only below the minimum.
            if used >= min_thinking_tokens or waits >= max_waits:
                break
            waits += 1
        # (cut at a segment's limit: it goes on in the next segment, not counted as a wait)
        convo = [*convo, {"role": "user", "content": WAIT_PROMPT}]
    final: list[Message] = [*convo, {"role": "user", "content": FINAL_PROMPT}]
    [completion] = await ctx.sample(final, max_tokens=answer_max_tokens, temperature=temperature)
    ctx.event(
        "thinking",
        {"mode": "budget_forcing", "final": True, "tokens": used, "waits": waits},
    )
    await _check(ctx, completion.text, "final", segments)
