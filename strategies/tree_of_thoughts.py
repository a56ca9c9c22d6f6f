"""Tree of Thoughts (Yao et al., 2023) over a step task, as in its Game of 24 setup.

A thought is one step (``13 - 9 = 4 (left: 4 4 10)``). From each state the model is
asked for possible next steps (``n_propose`` samples of the propose prompt); each new
state is valued by ``n_evaluate`` samples of the value prompt (sure 1 / likely 0.5 /
impossible 0, averaged, cached per position). BFS keeps the ``breadth`` best states per
level; DFS walks the best children first, prunes those valued below
``value_threshold`` and backtracks. A finished path (one number left) becomes an
expression that the verifier checks; the search stops at the first verified one.

:class:`StepSearch` holds what step-level strategies share (expansion, valuation,
finishing paths, events); ``beam_search`` uses it too.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ponder.families import StepState, StepTask, get_step_task
from ponder.llm.base import Completion, Message
from ponder.problem import Problem
from ponder.runtime import Context
from ponder.verifiers.base import Verdict
from strategies.registry import register


class StepSearch:
    """Step-task plumbing over a :class:`Context`: every model call goes through ``ctx``
    in a deterministic order (a batch of calls is issued in list order, then gathered)."""

    def __init__(
        self, problem: Problem, ctx: Context, *, temperature: float, parallel: int = 4
    ) -> None:
        task = get_step_task(problem.task)
        if task is None:
            raise ValueError(
                f"this strategy searches over steps and needs a task with step prompts "
                f"(game24); got {problem.task or 'a free-form problem'!r}"
            )
        self.task: StepTask = task
        self.problem = problem
        self.ctx = ctx
        self.temperature = temperature
        self.parallel = parallel
        self.root = task.root(problem)
        self._ids = 0
        self._values: dict[tuple[str, ...], float] = {}
        self._children: dict[StepState, list[StepState]] = {}
        self._fallbacks: set[tuple[str, ...]] = set()

    # ---- state -------------------------------------------------------------------

    @property
    def solved(self) -> bool:
        best = self.ctx.best
        return best is not None and best.verdict.passed

    def new_id(self) -> str:
        node_id = f"n{self._ids}"
        self._ids += 1
        return node_id

    def node_event(self, node_id: str, parent: str | None, state: StepState, **fields: Any) -> None:
        self.ctx.event(
            "node",
            {
                "id": node_id,
                "parent": parent,
                "depth": state.depth,
                "state": state.describe(),
                "left": list(state.left),
                **fields,
            },
        )

    # ---- model calls ---------------------------------------------------------------

    async def _sample_all(
        self, prompts: list[list[Message]], *, n: int, max_tokens: int
    ) -> list[list[Completion]]:
        """One call per prompt, at most ``parallel`` in flight: each wave is issued in
        list order (journal keys stay deterministic) and settled before the next, so the
        budget reserves a wave's worst case, not the whole level's."""
        out: list[list[Completion]] = []
        for start in range(0, len(prompts), self.parallel):
            wave = [
                self.ctx.sample(m, n=n, max_tokens=max_tokens, temperature=self.temperature)
                for m in prompts[start : start + self.parallel]
            ]
            out.extend(await asyncio.gather(*wave))
        return out

    async def expand(
        self, states: list[StepState], *, n: int, max_tokens: int
    ) -> list[list[StepState]]:
        """The distinct child states the model proposes for each state (``n`` samples of
        the propose prompt each; states expanded before reuse their children)."""
        todo = [s for s in dict.fromkeys(states) if s not in self._children]
        replies = await self._sample_all(
            [self.task.propose_messages(s) for s in todo], n=n, max_tokens=max_tokens
        )
        for state, completions in zip(todo, replies, strict=True):
            children: dict[StepState, None] = {}
            for c in completions:
                for child in self.task.parse_proposals(c.text, state):
                    children.setdefault(child)
            self._children[state] = list(children)
        return [self._children[s] for s in states]

    async def values(self, states: list[StepState], *, n: int, max_tokens: int) -> list[float]:
        """Each state's value: the mean of ``n`` value-prompt judgements (cached per
        position, so a position reached by two paths is valued once)."""
        todo = list(dict.fromkeys(s.key() for s in states if s.key() not in self._values))
        first = {s.key(): s for s in reversed(states)}
        replies = await self._sample_all(
            [self.task.evaluate_messages(first[key]) for key in todo], n=n, max_tokens=max_tokens
        )
        for key, completions in zip(todo, replies, strict=True):
            scores = [self.task.parse_evaluation(c.text) for c in completions]
            self._values[key] = sum(scores) / len(scores) if scores else 0.0
        return [self._values[s.key()] for s in states]

    async def finish(self, states: list[StepState], node_ids: list[str]) -> list[Verdict]:
        """Turn finished paths into answers, verify them and propose each."""
        answers = [self.task.answer(self.problem, s) for s in states]
        verdicts: list[Verdict] = await asyncio.gather(*(self.ctx.verify(a) for a in answers))
        for node_id, answer, verdict in zip(node_ids, answers, verdicts, strict=True):
            self.ctx.event(
                "candidate",
                {
                    "node": node_id,
                    "answer": answer,
                    "score": verdict.score,
                    "passed": verdict.passed,
                    "feedback": verdict.feedback,
                },
            )
            self.ctx.propose(answer, verdict)
        return verdicts

    async def fallback(self, state: StepState) -> None:
        """Offer the task's completion of a partial path as an anytime best-so-far."""
        if self.solved or state.key() in self._fallbacks:
            return
        self._fallbacks.add(state.key())
        answer = self.task.fallback_answer(self.problem, state)
        if answer is not None:
            self.ctx.propose(answer, await self.ctx.verify(answer))


def ranked(values: list[float]) -> list[int]:
    """Indices by value, best first; ties keep their order (deterministic)."""
    return sorted(range(len(values)), key=lambda i: (-values[i], i))


class TreeOfThoughtsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["bfs", "dfs"] = Field(
        default="bfs", description="Breadth-first (best states per level) or depth-first."
    )
    breadth: int = Field(
        default=5, ge=1, le=64, description="States kept per level (BFS) or children tried (DFS)."
    )
    n_propose: int = Field(default=1, ge=1, le=16, description="Propose samples per state.")
    n_evaluate: int = Field(default=3, ge=1, le=16, description="Value samples per state.")
    propose_max_tokens: int = Field(default=256, ge=16, le=8192)
    evaluate_max_tokens: int = Field(default=128, ge=16, le=8192)
    value_threshold: float = Field(
        default=0.25,
        ge=0.0,
        le=1.0,
        description="DFS: children valued below this are pruned.",
    )
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    parallel: int = Field(
        default=4, ge=1, le=64, description="Model calls in flight at once (waves)."
    )


@register(
    "tree_of_thoughts",
    TreeOfThoughtsParams,
    "Tree of Thoughts: propose next steps, value states (sure/likely/impossible), search "
    "BFS (best `breadth` per level) or DFS (best first, prune, backtrack); verify finished paths.",
    requires_steps=True,
)
async def tree_of_thoughts(
    problem: Problem,
    ctx: Context,
    *,
    mode: str,
    breadth: int,
    n_propose: int,
    n_evaluate: int,
    propose_max_tokens: int,
    evaluate_max_tokens: int,
    value_threshold: float,
    temperature: float,
    parallel: int,
) -> None:
    search = StepSearch(problem, ctx, temperature=temperature, parallel=parallel)
    root_id = search.new_id()
    search.node_event(root_id, None, search.root, value=None)
    tot = _ToT(search, breadth, n_propose, n_evaluate, propose_max_tokens, evaluate_max_tokens)
    if mode == "dfs":
        await tot.dfs(root_id, search.root, value_threshold, set())
    else:
        await tot.bfs(root_id)


class _ToT:
    def __init__(
        self,
        search: StepSearch,
        breadth: int,
        n_propose: int,
        n_evaluate: int,
        propose_max_tokens: int,
        evaluate_max_tokens: int,
    ) -> None:
        self.s = search
        self.breadth = breadth
        self.n_propose = n_propose
        self.n_evaluate = n_evaluate
        self.propose_max_tokens = propose_max_tokens
        self.evaluate_max_tokens = evaluate_max_tokens

    async def children(
        self, parents: list[tuple[str, StepState]], seen: set[tuple[str, ...]]
    ) -> list[tuple[str, StepState, float]]:
        """Expand ``parents``, verify finished children, value the rest; one node event
        per new child. Positions already in ``seen`` are skipped (and added)."""
        s = self.s
        expanded = await s.expand(
            [st for _, st in parents], n=self.n_propose, max_tokens=self.propose_max_tokens
        )
        fresh: list[tuple[str, str, StepState]] = []
        for (pid, _), kids in zip(parents, expanded, strict=True):
            for kid in kids:
                if kid.key() not in seen:
                    seen.add(kid.key())
                    fresh.append((s.new_id(), pid, kid))
        done = [(i, p, st) for i, p, st in fresh if s.task.is_terminal(st)]
        open_ = [(i, p, st) for i, p, st in fresh if not s.task.is_terminal(st)]
        out: list[tuple[str, StepState, float]] = []
        if done:
            verdicts = await s.finish([st for _, _, st in done], [i for i, _, _ in done])
            for (i, p, st), v in zip(done, verdicts, strict=True):
                s.node_event(i, p, st, value=1.0 if v.passed else 0.0, verified=v.passed)
            if s.solved:
                return out
        if open_:
            # An anytime candidate before spending on values: the best-looking child.
            looks = [s.task.heuristic(st) for _, _, st in open_]
            await s.fallback(open_[ranked(looks)[0]][2])
            values = await s.values(
                [st for _, _, st in open_], n=self.n_evaluate, max_tokens=self.evaluate_max_tokens
            )
            for (i, p, st), value in zip(open_, values, strict=True):
                s.node_event(i, p, st, value=value)
                out.append((i, st, value))
        return out

    async def bfs(self, root_id: str) -> None:
        s = self.s
        frontier: list[tuple[str, StepState]] = [(root_id, s.root)]
        seen: set[tuple[str, ...]] = {s.root.key()}
        depth = 0
        while frontier and not s.solved:
            depth += 1
            kids = await self.children(frontier, seen)
            order = ranked([v for _, _, v in kids])[: self.breadth]
            frontier = [(kids[k][0], kids[k][1]) for k in order]
            s.ctx.event(
                "level",
                {
                    "depth": depth,
                    "expanded": len(kids),
                    "kept": [kids[k][0] for k in order],
                    "values": [kids[k][2] for k in order],
                    "solved": s.solved,
                },
            )
            if frontier:
                await s.fallback(frontier[0][1])

    async def dfs(
        self,
        node_id: str,
        state: StepState,
        threshold: float,
        seen: set[tuple[str, ...]],
    ) -> bool:
        s = self.s
        kids = await self.children([(node_id, state)], seen)
        if s.solved:
            return True
        order = ranked([v for _, _, v in kids])[: self.breadth]
        s.ctx.event(
            "level",
            {
                "depth": state.depth + 1,
                "parent": node_id,
                "expanded": len(kids),
                "kept": [kids[k][0] for k in order if kids[k][2] >= threshold],
                "values": [kids[k][2] for k in order],
            },
        )
        for k in order:
            kid_id, kid, value = kids[k]
            if value < threshold:
                s.ctx.event("prune", {"id": kid_id, "value": value, "threshold": threshold})
                continue
            if await self.dfs(kid_id, kid, threshold, seen):
                return True
        return False
