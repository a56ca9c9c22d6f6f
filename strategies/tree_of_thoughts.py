"""Tree of Thoughts (Yao et al., 2023) over a step task, as in its Game of 24 setup.

A thought is one step (``13 - 9 = 4 (left: 4 4 10)``). From each state the model is
asked for possible next steps (``n_propose`` samples of the propose prompt); each new
state is valued by ``n_evaluate`` samples of the value prompt (sure 1 / likely 0.5 /
impossible 0, averaged, cached per position). BFS keeps the ``breadth`` best states per
level; DFS walks the best children first, prunes those valued below
``value_threshold`` and backtracks. A finished path (one number left) becomes an
expression that the verifier checks; the search stops at the first verified one.

:class:`StepSearch` holds what step-level strategies share (expansion, valuation,
finishing paths, events) and :class:`SearchNode` a state in its tree; ``beam_search``
uses both.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ponder.families import StepState, StepTask, get_step_task
from ponder.llm.base import Completion, Message
from ponder.problem import Problem
from ponder.runtime import Context
from ponder.verifiers.base import Verdict
from strategies.registry import register


@dataclass(frozen=True)
class SearchNode:
    """A state of the search tree under the ids its events name it by (``n0``, ``n1``, ...
    in the order states are first met)."""

    id: str
    parent: str | None
    state: StepState


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

    def root_node(self) -> SearchNode:
        return self.new_node(self.root)

    def new_node(self, state: StepState, parent: SearchNode | None = None) -> SearchNode:
        return SearchNode(self.new_id(), None if parent is None else parent.id, state)

    def new_children(
        self,
        parents: list[SearchNode],
        children: list[list[StepState]],
        seen: set[tuple[str, ...]],
        *,
        limit: int | None = None,
    ) -> list[SearchNode]:
        """Nodes for each parent's children (its first ``limit``) at positions not in
        ``seen``, which gains them; ids are given in parent order, then child order."""
        fresh: list[SearchNode] = []
        for parent, kids in zip(parents, children, strict=True):
            for kid in kids[:limit]:
                if kid.key() not in seen:
                    seen.add(kid.key())
                    fresh.append(self.new_node(kid, parent))
        return fresh

    def split_finished(self, nodes: list[SearchNode]) -> tuple[list[SearchNode], list[SearchNode]]:
        """``nodes`` whose paths are finished, and the others (both in order)."""
        finished = [node for node in nodes if self.task.is_terminal(node.state)]
        rest = [node for node in nodes if not self.task.is_terminal(node.state)]
        return finished, rest

    def best_looking(self, nodes: list[SearchNode]) -> SearchNode:
        """The node the task's cheap heuristic likes best (the first of equals)."""
        looks = [self.task.heuristic(node.state) for node in nodes]
        return nodes[ranked(looks)[0]]

    def emit(self, node: SearchNode, **fields: Any) -> None:
        """The ``node`` event for ``node``, with ``fields`` (its value, score, ...)."""
        self.node_event(node.id, node.parent, node.state, **fields)

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

    async def finish_nodes(self, nodes: list[SearchNode]) -> list[Verdict]:
        """:meth:`finish` the finished paths ``nodes``."""
        return await self.finish([node.state for node in nodes], [node.id for node in nodes])

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
    root = search.root_node()
    search.emit(root, value=None)
    tot = _ToT(search, breadth, n_propose, n_evaluate, propose_max_tokens, evaluate_max_tokens)
    if mode == "dfs":
        await tot.dfs(root, value_threshold, set())
    else:
        await tot.bfs(root)


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

    async def bfs(self, root: SearchNode) -> None:
        """ToT-BFS: expand the frontier, value the new states, keep the ``breadth`` best."""
        s = self.s
        frontier = [root]
        seen = {root.state.key()}
        depth = 0
        while frontier and not s.solved:
            depth += 1
            kids, values = await self.children(frontier, seen)
            best = ranked(values)[: self.breadth]
            frontier = [kids[i] for i in best]
            self.bfs_level_event(depth, kids, frontier, [values[i] for i in best])
            if frontier:
                await s.fallback(frontier[0].state)

    async def dfs(self, node: SearchNode, threshold: float, seen: set[tuple[str, ...]]) -> bool:
        """ToT-DFS: try ``node``'s ``breadth`` best children in order, pruning those valued
        below ``threshold``; True once a path is verified (the search stops)."""
        s = self.s
        kids, values = await self.children([node], seen)
        if s.solved:
            return True
        best = ranked(values)[: self.breadth]
        self.dfs_level_event(node, kids, values, best, threshold)
        for i in best:
            if values[i] < threshold:
                self.prune_event(kids[i], values[i], threshold)
                continue
            if await self.dfs(kids[i], threshold, seen):
                return True
        return False

    async def children(
        self, parents: list[SearchNode], seen: set[tuple[str, ...]]
    ) -> tuple[list[SearchNode], list[float]]:
        """The thought generator and state evaluator: expand ``parents``, verify the
        finished children, value the rest (returned with their values). One node event
        per new child; positions already in ``seen`` are skipped (and added)."""
        s = self.s
        expanded = await s.expand(
            [p.state for p in parents], n=self.n_propose, max_tokens=self.propose_max_tokens
        )
        finished, open_ = s.split_finished(s.new_children(parents, expanded, seen))
        if finished:
            verdicts = await s.finish_nodes(finished)
            for node, v in zip(finished, verdicts, strict=True):
                s.emit(node, value=1.0 if v.passed else 0.0, verified=v.passed)
            if s.solved:
                return [], []
        if not open_:
            return [], []
        # An anytime candidate before spending on values: the best-looking child.
        await s.fallback(s.best_looking(open_).state)
        values = await s.values(
            [node.state for node in open_], n=self.n_evaluate, max_tokens=self.evaluate_max_tokens
        )
        for node, value in zip(open_, values, strict=True):
            s.emit(node, value=value)
        return open_, values

    # ---- events ------------------------------------------------------------------

    def bfs_level_event(
        self, depth: int, kids: list[SearchNode], kept: list[SearchNode], values: list[float]
    ) -> None:
        self.s.ctx.event(
            "level",
            {
                "depth": depth,
                "expanded": len(kids),
                "kept": [node.id for node in kept],
                "values": values,
                "solved": self.s.solved,
            },
        )

    def dfs_level_event(
        self,
        parent: SearchNode,
        kids: list[SearchNode],
        values: list[float],
        best: list[int],
        threshold: float,
    ) -> None:
        self.s.ctx.event(
            "level",
            {
                "depth": parent.state.depth + 1,
                "parent": parent.id,
                "expanded": len(kids),
                "kept": [kids[i].id for i in best if values[i] >= threshold],
                "values": [values[i] for i in best],
            },
        )

    def prune_event(self, node: SearchNode, value: float, threshold: float) -> None:
        self.s.ctx.event("prune", {"id": node.id, "value": value, "threshold": threshold})
