"""Refine: generate → critique → revise, for up to ``rounds`` rounds (Self-Refine,
Madaan et al., 2023; with verifier feedback as the critique when there is one, as in
Reflexion-style loops).

1. Sample ``n_initial`` candidates, verify each, start from the best.
2. Each round, critique the current version — the verifier's feedback when it says
   something about the answer, else a critique written by the model — and ask for a
   revision: the original problem, the previous attempt and the critique, asking for a
   corrected final ``Answer:`` line.
3. Stop as soon as a version is verified. A revision can be worse than what it revises,
   so the best version seen is kept (both as the job's best-so-far and as the version
   the next round revises).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from ponder.llm.base import Message
from ponder.problem import Problem
from ponder.runtime import Context
from ponder.verifiers.base import Verdict
from strategies._select import informative
from strategies.registry import register

CRITIQUE_PROMPT = (
    "Review the attempt above critically. Check every step and the final answer against "
    "the problem; point out each mistake and what to do instead. Do not write a new "
    "solution."
)
REVISE_PROMPT = (
    "A review of your attempt:\n{critique}\n\n"
    "Using this review, solve the problem again and fix the mistakes. Think step by "
    "step, then give the corrected final answer on the last line as: Answer: <answer>"
)
EVENT_TEXT_CHARS = 600  # how much of a critique a `round` event carries


class RefineParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(default=3, ge=0, le=64, description="Most critique → revise rounds.")
    n_initial: int = Field(
        default=1, ge=1, le=256, description="Initial candidates; the best one is refined."
    )
    max_tokens: int = Field(
        default=1024,
        ge=16,
        le=200_000,
        description="Completion token cap per attempt (initial and revisions).",
    )
    critique_max_tokens: int = Field(
        default=256,
        ge=16,
        le=200_000,
        description="Completion token cap for a model-written critique.",
    )
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)


@dataclass(frozen=True)
class Attempt:
    text: str
    answer: str | None
    verdict: Verdict

    def rank(self) -> tuple[bool, float, bool]:
        return (self.verdict.passed, self.verdict.score, self.answer is not None)


def verifier_critique(attempt: Attempt) -> str:
    if attempt.answer is None:
        return f"The attempt has no final answer line: {attempt.verdict.feedback}."
    return f"The final answer `{attempt.answer}` was checked: {attempt.verdict.feedback}."


@register(
    "refine",
    RefineParams,
    "Generate, then critique (verifier feedback, else the model) and revise for up to "
    "`rounds` rounds; stops when verified and keeps the best version seen.",
)
async def refine(
    problem: Problem,
    ctx: Context,
    *,
    rounds: int,
    n_initial: int,
    max_tokens: int,
    critique_max_tokens: int,
    temperature: float,
) -> None:
    messages = ctx.messages()
    completions = await ctx.sample(
        messages, n=n_initial, max_tokens=max_tokens, temperature=temperature
    )
    answers = [ctx.parse_answer(c.text) for c in completions]
    verdicts: list[Verdict] = list(await asyncio.gather(*(ctx.verify(a) for a in answers)))
    best: Attempt | None = None
    for i, (c, answer, verdict) in enumerate(zip(completions, answers, verdicts, strict=True)):
        ctx.event(
            "candidate",
            {"index": i, "answer": answer, "score": verdict.score, "passed": verdict.passed},
        )
        ctx.propose(answer, verdict)
        attempt = Attempt(c.text, answer, verdict)
        if best is None or attempt.rank() > best.rank():
            best = attempt
    assert best is not None  # ctx.sample returns at least one completion or raises
    _round_event(ctx, 0, best, critique=None, source=None, improved=False)

    for round_no in range(1, rounds + 1):
        if best.verdict.passed:
            return
        conversation: list[Message] = [*messages, {"role": "assistant", "content": best.text}]
        if informative(best.verdict):
            critique, source = verifier_critique(best), "verifier"
        else:
            reviews = await ctx.sample(
                [*conversation, {"role": "user", "content": CRITIQUE_PROMPT}],
                n=1,
                max_tokens=critique_max_tokens,
                temperature=temperature,
            )
            critique, source = reviews[0].text.strip(), "model"
        revision_prompt = REVISE_PROMPT.format(critique=critique)
        revised = await ctx.sample(
            [*conversation, {"role": "user", "content": revision_prompt}],
            n=1,
            max_tokens=max_tokens,
            temperature=temperature,
        )
        text = revised[0].text
        answer = ctx.parse_answer(text)
        verdict = await ctx.verify(answer)
        ctx.propose(answer, verdict)
        attempt = Attempt(text, answer, verdict)
        improved = attempt.rank() > best.rank()
        _round_event(ctx, round_no, attempt, critique=critique, source=source, improved=improved)
        if improved:
            best = attempt


def _round_event(
    ctx: Context,
    round_no: int,
    attempt: Attempt,
    *,
    critique: str | None,
    source: str | None,
    improved: bool,
) -> None:
    ctx.event(
        "round",
        {
            "round": round_no,
            "answer": attempt.answer,
            "score": attempt.verdict.score,
            "passed": attempt.verdict.passed,
            "feedback": attempt.verdict.feedback,
            "critique": None if critique is None else critique[:EVENT_TEXT_CHARS],
            "critique_source": source,
            "improved": improved,
        },
    )
