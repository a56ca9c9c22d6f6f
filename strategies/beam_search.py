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

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ponder.families.base import StepState
from ponder.problem import Problem
from ponder.runtime import Context
from strategies.registry import register
from strategies.tree_of_thoughts import SearchNode, StepSearch, ranked


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
    search = StepSearch(problem, ctx, temperature=temperature, parallel=parallel)
    prm = reward_model if scorer == "prm" else None
    if prm is not None:
        ctx.reward_model(prm)  # an unknown profile fails the job before any spending
    beam = _BeamSearch(
        s=search,
        beam_width=beam_width,
        k=k,
        scorer=scorer,
        prm=prm,
        prm_aggregate=prm_aggregate,
        n_evaluate=n_evaluate,
        lookahead=lookahead,
        propose_max_tokens=propose_max_tokens,
        evaluate_max_tokens=evaluate_max_tokens,
    )
    await beam.run()


@dataclass(kw_only=True)
class _BeamSearch:
    s: StepSearch
    beam_width: int
    k: int
    scorer: str
    prm: str | None  # the reward model profile when scorer is "prm"
    prm_aggregate: str
    n_evaluate: int
    lookahead: bool
    propose_max_tokens: int
    evaluate_max_tokens: int

    async def run(self) -> None:
        """Each level: expand every beam, verify the finished paths, score the open ones
        and keep the ``beam_width`` best as the next beams."""
        s = self.s
        root = s.root_node()
        s.emit(root, score=None)
        beams = [root]
        seen = {root.state.key()}
        depth = 0
        while beams and not s.solved:
            depth += 1
            candidates = await self.expand(beams, seen)
            finished, open_ = s.split_finished(candidates)
            if finished:
                await self.finish(finished)
                if s.solved:
                    break
            if not open_:
                break
            await s.fallback(s.best_looking(open_).state)  # anytime: before spending on scores
            if self.lookahead:
                scores = await self.lookahead_scores(open_, seen)
                if s.solved:
                    break  # a lookahead expansion finished a verified path
            else:
                scores = await self.score([node.state for node in open_])
            best = ranked(scores)[: self.beam_width]
            beams = [open_[i] for i in best]
            self.level_events(depth, candidates, open_, scores, best)
            if beams:
                await s.fallback(beams[0].state)

    async def expand(self, beams: list[SearchNode], seen: set[tuple[str, ...]]) -> list[SearchNode]:
        """The first ``k`` next steps the model proposes for each beam, at new positions."""
        children = await self.s.expand(
            [beam.state for beam in beams], n=1, max_tokens=self.propose_max_tokens
        )
        return self.s.new_children(beams, children, seen, limit=self.k)

    async def score(self, states: list[StepState]) -> list[float]:
        s = self.s
        if self.scorer == "heuristic":
            return [s.task.heuristic(state) for state in states]
        if self.prm is not None:
            paths = [list(state.steps) for state in states]
            rows = await s.ctx.score_steps(paths, reward_model=self.prm)
            if self.prm_aggregate == "min":
                return [min(row, default=0.0) for row in rows]
            return [row[-1] if row else 0.0 for row in rows]
        return await s.values(states, n=self.n_evaluate, max_tokens=self.evaluate_max_tokens)

    async def lookahead_scores(
        self, nodes: list[SearchNode], seen: set[tuple[str, ...]]
    ) -> list[float]:
        """Each node scored as the best of its (first ``k``) one-step expansions: a
        finished one by its verification (1 or 0), the others by :meth:`score`. Stops
        early, with the scores so far, once a path is verified."""
        s = self.s
        children = await s.expand(
            [node.state for node in nodes], n=1, max_tokens=self.propose_max_tokens
        )
        scores: list[float] = []
        for node, kids in zip(nodes, children, strict=True):
            kids = kids[: self.k]
            ends = [kid for kid in kids if s.task.is_terminal(kid)]
            rest = [kid for kid in kids if not s.task.is_terminal(kid)]
            best = 0.0
            if ends:
                seen.update(end.key() for end in ends)
                best = max(await self.finish([s.new_node(end, node) for end in ends]))
                if s.solved:
                    break
            if rest:
                best = max(best, *(await self.score(rest)))
            scores.append(best)
        return scores

    async def finish(self, nodes: list[SearchNode]) -> list[float]:
        """Verify and propose finished paths; 1 for each that passed, else 0."""
        verdicts = await self.s.finish_nodes(nodes)
        for node, verdict in zip(nodes, verdicts, strict=True):
            self.s.emit(node, score=verdict.score, verified=verdict.passed)
        return [1.0 if verdict.passed else 0.0 for verdict in verdicts]

    def level_events(
        self,
        depth: int,
        candidates: list[SearchNode],
        scored: list[SearchNode],
        scores: list[float],
        kept: list[int],
    ) -> None:
        """A node event per scored candidate, then the level's: the beams kept."""
        for node, score in zip(scored, scores, strict=True):
            self.s.emit(node, score=score)
        self.s.ctx.event(
            "level",
            {
                "depth": depth,
                "expanded": len(candidates),
                "kept": [scored[i].id for i in kept],
                "scores": [scores[i] for i in kept],
            },
        )
