"""Adaptive compute allocation: about one sample for easy problems, the budget for hard
ones, and a stop as soon as the answer is settled.

Every sample is read for two cheap signals before the next one is drawn:

- **settled?** With a verifier, a sample that passes ends the job. Without one (the
  ``none`` verifier), answers are votes and the job ends once the leading answer is
  settled: the posterior probability (a Beta on the top two vote counts, as in
  Adaptive-Consistency) that it is the majority reaches ``confidence``. A vote in which
  the model, with room to spare, keeps disagreeing with itself (after
  ``scatter_samples`` samples, no answer holds half the votes) also ends: more samples of
  the same kind rarely settle it, and the leader (on a tie, the first answer) stands.
- **how hard?** A sample that ran out of room (cut at its token cap, no final answer, or
  ``room_fraction`` of its cap used) says the problem needs longer reasoning than it got:
  later samples get ``growth`` times the cap, up to ``max_sample_tokens``. A sample that
  finished with room to spare and still missed slipped; the next one keeps the cap. So
  easy problems stay at the cheap first size and hard ones reach long samples after one
  short one.

With a verifier, samples are drawn one at a time from ``probe_max_tokens`` up, so the job
never pays for a batch it did not need; a problem still unsolved after ``max_samples``
gets ``refine_rounds`` of critique → revise and then, if ``search``, a tree search (tasks
with step prompts) or a last best-of-N. Without one, a vote needs samples that are
usually right on their own, so they start at ``vote_max_tokens``, two in the first
request (the prompt is paid once) and one at a time after that; when the budget cannot
pay for two samples of at least half that size, one sample as large as it pays for
comes first instead.

Decisions read only the completions and verdicts received and the budget left (counted
from them), so a resumed run decides the same; the ledger's hard caps still stop
everything with the best-so-far. The model's token probabilities are not used: the
provider interface does not return them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ponder.families import get_step_task
from ponder.llm.base import Completion, estimate_prompt_tokens
from ponder.problem import Problem
from ponder.runtime import BudgetExhausted, Cancelled, Context
from ponder.verifiers.base import Verdict
from strategies._select import NO_VERIFIER_FEEDBACK, VoteBook, normalize_answer
from strategies.registry import get_strategy, register

BYTES_PER_TOKEN = 4  # the room meter: about 4 bytes a token (as the thinking strategy)
MIN_SAMPLE_TOKENS = 16


class AutoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    probe_max_tokens: int = Field(
        default=192,
        ge=MIN_SAMPLE_TOKENS,
        le=200_000,
        description="With a verifier: completion cap of the first sample (and of later ones "
        "until a sample runs out of room).",
    )
    vote_max_tokens: int = Field(
        default=2048,
        ge=MIN_SAMPLE_TOKENS,
        le=200_000,
        description="Without a verifier: completion cap of the first samples (a vote needs "
        "samples that are usually right on their own, so it starts higher than a probe "
        "a verifier checks).",
    )
    growth: float = Field(
        default=16.0,
        ge=1.0,
        le=64.0,
        description="Cap multiplier applied after a sample that ran out of room.",
    )
    max_sample_tokens: int = Field(
        default=4096,
        ge=MIN_SAMPLE_TOKENS,
        le=200_000,
        description="Largest completion cap any sample gets.",
    )
    room_fraction: float = Field(
        default=0.8,
        gt=0.0,
        le=1.0,
        description="A sample that used at least this fraction of its cap (or was cut at "
        "it, or gave no answer) ran out of room.",
    )
    max_samples: int = Field(
        default=32,
        ge=1,
        le=4096,
        description="Most samples drawn before refinement and search (with a verifier) or "
        "before the vote is closed (without one).",
    )
    confidence: float = Field(
        default=0.8,
        gt=0.5,
        lt=1.0,
        description="Without a verifier: stop once the posterior probability (Beta on the "
        "top two vote counts) that the leading answer is the majority reaches this.",
    )
    scatter_samples: int = Field(
        default=4,
        ge=2,
        le=4096,
        description="Without a verifier: stop once at least this many samples were drawn, "
        "no answer holds half of their votes and the last ones had room to spare (the "
        "leader stands).",
    )
    refine_rounds: int = Field(
        default=2,
        ge=0,
        le=16,
        description="With a verifier: critique → revise rounds if `max_samples` did not solve it.",
    )
    search: bool = Field(
        default=True,
        description="With a verifier: end with a tree search (or best-of-N) if still unsolved.",
    )
    temperature: float = Field(
        default=0.8, ge=0.0, le=2.0, description="Sampling temperature of every sample."
    )


def _fit_cap(ctx: Context, cap: int, samples: int = 1) -> int | None:
    """``cap``, or the largest smaller cap at which the budget left still pays for
    ``samples`` samples in one request (None: not even the smallest)."""
    tokens, calls, _ = ctx.budget_left()
    if calls is not None and calls < samples:
        return None
    if tokens is None:
        return cap
    prompt = estimate_prompt_tokens(ctx.messages())
    fits = tokens // samples - prompt
    if fits >= cap:
        return cap
    return fits if fits >= MIN_SAMPLE_TOKENS else None


def _solved(ctx: Context) -> bool:
    best = ctx.best
    return best is not None and best.verdict.passed


def room_used(completion: Completion, cap: int) -> float:
    """The fraction of its token cap a completion used (1.0 when cut at the cap)."""
    if completion.finish_reason == "length":
        return 1.0
    used = -(-len(completion.text.encode("utf-8")) // BYTES_PER_TOKEN)
    return min(used / max(cap, 1), 1.0)


def ran_out_of_room(completion: Completion, answer: str | None, cap: int, fraction: float) -> bool:
    return answer is None or room_used(completion, cap) >= fraction


@register(
    "auto",
    AutoParams,
    "Adaptive compute: one cheap sample first, longer ones only for problems that need "
    "them, stopping at the first verified answer or, without a verifier, once the vote "
    "is settled; refinement and search only for problems still unsolved.",
)
async def auto(
    problem: Problem,
    ctx: Context,
    *,
    probe_max_tokens: int,
    vote_max_tokens: int,
    growth: float,
    max_sample_tokens: int,
    room_fraction: float,
    max_samples: int,
    confidence: float,
    scatter_samples: int,
    refine_rounds: int,
    search: bool,
    temperature: float,
) -> None:
    if not ctx.has_verifier:
        ladder = _Ladder(
            min(vote_max_tokens, max_sample_tokens), growth, max_sample_tokens, room_fraction
        )
        await _vote(
            ctx,
            ladder,
            max_samples,
            confidence,
            scatter_samples,
            temperature,
            pair_floor=max(vote_max_tokens // 2, MIN_SAMPLE_TOKENS),
        )
        return

    ladder = _Ladder(
        min(probe_max_tokens, max_sample_tokens), growth, max_sample_tokens, room_fraction
    )
    ctx.event("phase", {"phase": "sample", "max_tokens": ladder.cap})
    await _sample_until_verified(ctx, ladder, max_samples, temperature)
    if _solved(ctx):
        return
    cap = ladder.cap
    if refine_rounds and _fit_cap(ctx, cap) == cap:
        ctx.event("phase", {"phase": "refine", "rounds": refine_rounds, "max_tokens": cap})
        await get_strategy("refine").run(
            problem,
            ctx,
            {
                "rounds": refine_rounds,
                "n_initial": 1,
                "max_tokens": cap,
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
        await get_strategy("best_of_n").run(
            problem,
            ctx,
            {"n": 64, "batch_size": 4, "max_tokens": max_sample_tokens, "temperature": temperature},
        )


class _Ladder:
    """The completion cap of the next sample: up by ``growth`` after a sample that ran out
    of room, never past ``top``."""

    def __init__(self, start: int, growth: float, top: int, fraction: float) -> None:
        self.cap = start
        self.growth = growth
        self.top = top
        self.fraction = fraction

    def read(self, completion: Completion, answer: str | None, cap: int) -> bool:
        """Take one sample drawn at ``cap`` into account; True if it ran out of room."""
        short = ran_out_of_room(completion, answer, cap, self.fraction)
        if short and cap >= self.cap and self.cap < self.top:
            self.cap = min(self.top, max(int(self.cap * self.growth), self.cap + 1))
        return short


async def _sample_until_verified(
    ctx: Context, ladder: _Ladder, max_samples: int, temperature: float
) -> None:
    """Sequential sampling on the cap ladder until a sample passes the verifier."""
    messages = ctx.messages()
    for index in range(max_samples):
        # Past what the budget pays for, the call itself stops the job (budget_exhausted).
        cap = _fit_cap(ctx, ladder.cap) or ladder.cap
        [completion] = await ctx.sample(messages, n=1, max_tokens=cap, temperature=temperature)
        answer = ctx.parse_answer(completion.text)
        verdict = await ctx.verify(answer)
        short = ladder.read(completion, answer, cap)
        ctx.event(
            "candidate",
            {
                "index": index,
                "answer": answer,
                "score": verdict.score,
                "passed": verdict.passed,
                "feedback": verdict.feedback,
                "max_tokens": cap,
                "room_used": round(room_used(completion, cap), 3),
            },
        )
        ctx.propose(answer, verdict)
        if verdict.passed:
            return
        if index == 0 or short:
            ctx.event(
                "difficulty",
                {
                    "samples": index + 1,
                    "ran_out_of_room": short,
                    "next_max_tokens": ladder.cap,
                },
            )


async def _vote(
    ctx: Context,
    ladder: _Ladder,
    max_samples: int,
    confidence: float,
    scatter_samples: int,
    temperature: float,
    *,
    pair_floor: int,
) -> None:
    """No verifier: vote on the cap ladder until the leader is settled. The first
    request asks for two samples, unless the budget only pays for two below
    ``pair_floor`` tokens each: then for one, as large as it pays for."""
    messages = ctx.messages()
    book = VoteBook(planned=max_samples)
    no_check = Verdict(False, 0.0, NO_VERIFIER_FEEDBACK)
    stopped = "max_samples"
    ctx.event("phase", {"phase": "vote", "max_tokens": ladder.cap})
    try:
        while book.samples < max_samples:
            want, cap = 1, _fit_cap(ctx, ladder.cap) or ladder.cap
            if book.samples == 0 and max_samples > 1:
                pair = _fit_cap(ctx, ladder.cap, 2)
                if pair is not None and pair >= min(pair_floor, ladder.cap):
                    want, cap = 2, pair
            completions = await ctx.sample(
                messages, n=want, max_tokens=cap, temperature=temperature
            )
            had_room = True
            for completion in completions:
                answer = ctx.parse_answer(completion.text)
                short = ladder.read(completion, answer, cap)
                had_room = had_room and not short
                ctx.event(
                    "candidate",
                    {
                        "index": book.samples,
                        "answer": answer,
                        "normalized": normalize_answer(answer),
                        "max_tokens": cap,
                        "room_used": round(room_used(completion, cap), 3),
                    },
                )
                book.add(answer, no_check)
            settled = book.leader_confidence()
            ctx.event("vote", {**book.event_data(), "confidence": round(settled, 6)})
            book.propose_leader(ctx, final=False)
            if settled >= confidence:
                stopped = "settled"
                break
            leader = book.leader()
            top = 0 if leader is None else leader.count
            if book.samples >= scatter_samples and 2 * top < book.samples and had_room:
                stopped = "scattered"
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
            "max_tokens": ladder.cap,
        },
    )
