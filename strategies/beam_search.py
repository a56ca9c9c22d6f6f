"""Step-level beam search over a step task.

Each level, every beam is expanded with the first ``k`` next steps the model proposes
for it (one propose call per beam, the model's own order), each partial solution is
scored by ``scorer`` and the ``beam_width`` best are kept:

* ``self_eval``: the mean of ``n_evaluate`` value-prompt samples (billed model calls);
* ``heuristic``: the task's cheap heuristic, no model call;
* ``prm``: a process reward model (the profile ``reward_model``, see
  :mod:`ponder.llm.reward`) scores every step of each candidate path in one journaled,
  unbilled call per level, no model sampling. A path scores its *last* step's score
  (``prm_aggregate: last``, the default: the PRM's judgement of the whole prefix) or
  the *minimum* over its steps (``prm_aggregate: min``: the weakest step).

With ``lookahead`` a state scores as the best of its one-step expansions (an extra
propose call per candidate; the expansions are reused when the state is kept).
Finished paths are verified and proposed as they appear; the search stops at the first
verified one, or when no beam is left.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ponder.families.base import StepState
from ponder.problem import Problem
from ponder.runtime import Context
from strategies.registry import register
from strategies.tree_of_thoughts import StepSearch, ranked


class BeamSearchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    beam_width: int = Field(default=3, ge=1, le=64, description="Partial solutions kept.")
    k: int = Field(default=4, ge=1, le=64, description="Candidate next steps per beam.")
    scorer: Literal["self_eval", "heuristic", "prm"] = Field(
        default="self_eval",
        description="self_eval: value-prompt samples; heuristic: the task's heuristic (free); "
        "prm: a process reward model's step scores (unbilled).",
    )
    reward_model: str | None = Field(
        default="sim-prm",
        description="prm: the reward model profile to score steps with (see GET /v1/models).",
    )
    prm_aggregate: Literal["last", "min"] = Field(
        default="last",
        description="prm: a path's score is its last step's score, or the minimum over steps.",
    )
    n_evaluate: int = Field(default=2, ge=1, le=16, description="self_eval samples per state.")
    lookahead: bool = Field(
        default=False, description="Score a state by the best of its one-step expansions."
    )
    propose_max_tokens: int = Field(default=192, ge=16, le=8192)
    evaluate_max_tokens: int = Field(default=128, ge=16, le=8192)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    parallel: int = Field(
        default=4, ge=1, le=64, description="Model calls in flight at once (waves)."
    )

    @model_validator(mode="after")
    def _prm_needs_a_reward_model(self) -> BeamSearchParams:
        if self.scorer == "prm" and not self.reward_model:
            raise ValueError(
                "scorer 'prm' needs reward_model: the name of a reward model profile "
                "(e.g. 'sim-prm'; see GET /v1/models)"
            )
        return self


@register(
    "beam_search",
    BeamSearchParams,
    "Step-level beam search: expand each beam with k proposed next steps, score partial "
    "solutions (model self-evaluation, a process reward model or the task heuristic, "
    "optional lookahead), keep the "
    "top beam_width; verify finished paths.",
    requires_steps=True,
)
async def beam_search(
    problem: Problem,
    ctx: Context,
    *,
    beam_width: int,
    k: int,
    scorer: str,
    reward_model: str | None,
    prm_aggregate: str,
    n_evaluate: int,
    lookahead: bool,
    propose_max_tokens: int,
    evaluate_max_tokens: int,
    temperature: float,
    parallel: int,
) -> None:
    s = StepSearch(problem, ctx, temperature=temperature, parallel=parallel)
    task = s.task
    prm = reward_model if scorer == "prm" else None
    if prm is not None:
        ctx.reward_model(prm)  # an unknown profile fails the job before any spending

    async def score(states: list[StepState]) -> list[float]:
        if scorer == "heuristic":
            return [task.heuristic(st) for st in states]
        if prm is not None:
            rows = await ctx.score_steps([list(st.steps) for st in states], reward_model=prm)
            if prm_aggregate == "min":
                return [min(row, default=0.0) for row in rows]
            return [row[-1] if row else 0.0 for row in rows]
        return await s.values(states, n=n_evaluate, max_tokens=evaluate_max_tokens)

    async def finish(found: list[tuple[str, str | None, StepState]]) -> list[float]:
        verdicts = await s.finish([st for _, _, st in found], [i for i, _, _ in found])
        for (i, p, st), v in zip(found, verdicts, strict=True):
            s.node_event(i, p, st, score=v.score, verified=v.passed)
        return [1.0 if v.passed else 0.0 for v in verdicts]

    root_id = s.new_id()
    s.node_event(root_id, None, s.root, score=None)
    beams: list[tuple[str, StepState]] = [(root_id, s.root)]
    seen: set[tuple[str, ...]] = {s.root.key()}
    depth = 0
    while beams and not s.solved:
        depth += 1
        expanded = await s.expand([st for _, st in beams], n=1, max_tokens=propose_max_tokens)
        fresh: list[tuple[str, str | None, StepState]] = []
        for (pid, _), kids in zip(beams, expanded, strict=True):
            for kid in kids[:k]:
                if kid.key() not in seen:
                    seen.add(kid.key())
                    fresh.append((s.new_id(), pid, kid))
        done = [f for f in fresh if task.is_terminal(f[2])]
        open_ = [f for f in fresh if not task.is_terminal(f[2])]
        if done:
            await finish(done)
            if s.solved:
                break
        if not open_:
            beams = []
            break
        states = [st for _, _, st in open_]
        looks = [task.heuristic(st) for st in states]
        await s.fallback(states[ranked(looks)[0]])  # anytime: before spending on scores
        if lookahead:
            grand = await s.expand(states, n=1, max_tokens=propose_max_tokens)
            scores: list[float] = []
            for (i, _, _), kids in zip(open_, grand, strict=True):
                kids = kids[:k]
                ends = [g for g in kids if task.is_terminal(g)]
                rest = [g for g in kids if not task.is_terminal(g)]
                best = 0.0
                if ends:
                    seen.update(g.key() for g in ends)
                    ids = [s.new_id() for _ in ends]
                    best = max(await finish([(j, i, g) for j, g in zip(ids, ends, strict=True)]))
                    if s.solved:
                        break
                if rest:
                    best = max(best, *(await score(rest)))
                scores.append(best)
            if s.solved:
                break
        else:
            scores = await score(states)
        for (i, p, st), sc in zip(open_, scores, strict=True):
            s.node_event(i, p, st, score=sc)
        order = ranked(scores)[:beam_width]
        beams = [(open_[j][0], open_[j][2]) for j in order]
        ctx.event(
            "level",
            {
                "depth": depth,
                "expanded": len(fresh),
                "kept": [i for i, _ in beams],
                "scores": [scores[j] for j in order],
            },
        )
        if beams:
            await s.fallback(beams[0][1])
