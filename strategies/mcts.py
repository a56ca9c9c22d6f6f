"""Monte Carlo tree search over the steps of a step task (Game of 24), with UCT.

Each iteration walks down the tree by UCT (mean value + ``c * sqrt(ln N / n)``; a child
never visited goes first), expands the node it reaches with the model's proposed next
steps (the first ``expand_k`` it lists; more as the node's visits grow — progressive
widening — or once all its children are exhausted, asking the model again when its list
runs out), values one new child and backs the value up the path. The value comes from

* ``rollout="heuristic"`` — the task's cheap heuristic, no model call (for the Game of
  24 exact once two numbers are left);
* ``rollout="model"`` — a playout: the model proposes next steps from the state, the
  playout follows its first proposal (sometimes, by ``ctx.rng``, another of its first
  ``expand_k``) to a finished path, which is verified: 1 if it passes, else the
  verifier's partial credit;
* ``rollout="evaluate"`` — the model's own judgement of the state (sure / likely /
  impossible).

Finished paths (in the tree or in playouts) are verified (unbilled) and proposed; the
search stops at the first verified one, when the tree is exhausted, or after
``iterations``. Every choice is deterministic given the journal: ties break by order,
randomness comes only from ``ctx.rng`` and proposals are cached per state, so a resumed
run issues the same calls in the same order. Budget exhaustion surfaces as
``BudgetExhausted`` from the next call; the best-so-far stands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ponder.families.base import StepState
from ponder.problem import Problem
from ponder.runtime import Context
from strategies.registry import register
from strategies.tree_of_thoughts import StepSearch

PLAYOUT_EPSILON = 0.2  # a playout follows the model's first proposal, else explores
Rollout = Literal["model", "evaluate", "heuristic"]


@dataclass
class Node:
    id: str
    parent: Node | None
    state: StepState
    visits: int = 0
    total: float = 0.0
    children: list[Node] = field(default_factory=list)
    pending: list[StepState] = field(default_factory=list)  # proposed, not yet children
    expanded: bool = False
    terminal: bool = False
    reward: float | None = None  # a finished path's verified value (or a dead end's 0)
    exhausted: bool = False  # nothing below this node is left to find
    asked_out: bool = False  # asking the model for more steps here brings nothing new

    @property
    def value(self) -> float:
        return self.total / self.visits if self.visits else 0.0


def uct_score(child_value: float, child_visits: int, parent_visits: int, c: float) -> float:
    """UCT (UCB1 applied to trees): exploitation plus ``c`` times the exploration bonus;
    an unvisited child scores infinity, so every child is tried once first."""
    if child_visits == 0:
        return math.inf
    return child_value + c * math.sqrt(math.log(max(parent_visits, 1)) / child_visits)


def select_child(node: Node, c: float) -> Node | None:
    """The open child with the highest UCT score (the first of equals), or None."""
    best: Node | None = None
    best_score = -math.inf
    for child in node.children:
        if child.exhausted:
            continue
        score = uct_score(child.value, child.visits, node.visits, c)
        if score > best_score:
            best, best_score = child, score
    return best


class MctsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    iterations: int = Field(
        default=64, ge=1, le=10_000, description="Select-expand-evaluate-backup rounds at most."
    )
    c: float = Field(
        default=0.5, ge=0.0, le=100.0, description="UCT exploration weight (0: greedy)."
    )
    expand_k: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Children made per expansion (the model's first proposals; more come "
        "with visits); also the choices a model playout may explore among.",
    )
    rollout: Rollout = Field(
        default="heuristic",
        description=(
            "How a new state is valued: `model` (a playout with the model's proposals to a "
            "verified finish), `evaluate` (the model judges the state) or `heuristic` "
            "(the task's heuristic, no call)."
        ),
    )
    max_tokens: int = Field(
        default=256, ge=16, le=8192, description="Completion token cap per model call."
    )
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)


@register(
    "mcts",
    MctsParams,
    "Monte Carlo tree search over steps with UCT; values from model playouts, model "
    "self-evaluation or the task heuristic; verifies finished paths, stops when verified.",
    requires_steps=True,
)
async def mcts(
    problem: Problem,
    ctx: Context,
    *,
    iterations: int,
    c: float,
    expand_k: int,
    rollout: Rollout,
    max_tokens: int,
    temperature: float,
) -> None:
    search = StepSearch(problem, ctx, temperature=temperature)
    run = _Mcts(search, c=c, expand_k=expand_k, rollout=rollout, max_tokens=max_tokens)
    await run.search(iterations)


class _Mcts:
    def __init__(
        self, s: StepSearch, *, c: float, expand_k: int, rollout: Rollout, max_tokens: int
    ) -> None:
        self.s = s
        self.c = c
        self.expand_k = expand_k
        self.rollout = rollout
        self.max_tokens = max_tokens
        self.root = Node(s.new_id(), None, s.root)
        self.playouts = 0

    def event(self, node: Node, **extra: object) -> None:
        self.s.node_event(
            node.id,
            None if node.parent is None else node.parent.id,
            node.state,
            visits=node.visits,
            value=round(node.value, 6),
            **extra,
        )

    def iteration_event(self, iteration: int, leaf: Node, value: float) -> None:
        self.s.ctx.event(
            "iteration", {"iteration": iteration, "leaf": leaf.id, "value": round(value, 6)}
        )

    async def search(self, iterations: int) -> None:
        s = self.s
        self.event(self.root)
        for it in range(iterations):
            if s.solved or self.root.exhausted:
                return
            leaf = await self.select_and_expand()
            if leaf is None:
                return
            value = await self.evaluate(leaf)
            self.backup(leaf, value)
            self.iteration_event(it + 1, leaf, value)

    async def select_and_expand(self) -> Node | None:
        """Down by UCT to a node not yet expanded; expand it and return the new child to
        value. A node whose children are all exhausted is asked for more steps (once per
        exhaustion); one with nothing new is exhausted itself, and the walk restarts.
        None once the whole tree is exhausted."""
        while not self.root.exhausted:
            node = self.root
            while node.expanded and not node.terminal:
                if node.pending and len(node.children) < self.allowed_children(node):
                    return await self.widen(node, 1)  # progressive widening
                child = select_child(node, self.c)
                if child is None:
                    if not node.pending and not node.asked_out:
                        await self.ask_again(node)
                    if node.pending:
                        return await self.widen(node)
                    self.mark_exhausted(node)
                    break
                node = child
            else:
                return node if node.terminal else await self.expand(node)
        return None

    async def expand(self, node: Node) -> Node:
        s = self.s
        [kids] = await s.expand([node.state], n=1, max_tokens=self.max_tokens)
        node.expanded = True
        node.pending = list(kids)
        # Finishing steps are few and all listed at once: asking again would repeat them.
        node.asked_out = all(s.task.is_terminal(kid) for kid in kids)
        if not node.pending:
            node.terminal, node.reward = True, 0.0  # a dead end: nothing valid proposed
            self.mark_exhausted(node)
            return node
        leaf = await self.widen(node)
        open_kids = [ch.state for ch in node.children if not ch.terminal]
        if open_kids and node.parent is None:
            # An anytime best-so-far before any path is finished.
            looks = [s.task.heuristic(st) for st in open_kids]
            await s.fallback(open_kids[looks.index(max(looks))])
        return leaf

    async def ask_again(self, node: Node) -> None:
        """Every child of ``node`` is exhausted: sample the propose prompt once more (a new
        call, so new dice) and keep the steps not proposed before."""
        s = self.s
        [reply] = await s.ctx.sample(
            s.task.propose_messages(node.state),
            n=1,
            max_tokens=self.max_tokens,
            temperature=s.temperature,
        )
        known = {ch.state.key() for ch in node.children}
        for kid in s.task.parse_proposals(reply.text, node.state):
            if kid.key() not in known:
                known.add(kid.key())
                node.pending.append(kid)
        node.asked_out = not node.pending

    def allowed_children(self, node: Node) -> int:
        """Progressive widening: ``expand_k`` children, one more as visits grow (at 1, 4,
        9, ... visits), so a well-visited node tries more of the model's proposals."""
        return self.expand_k + math.isqrt(node.visits)

    async def widen(self, node: Node, count: int | None = None) -> Node:
        """Make the next ``count`` (default ``expand_k``) proposals of ``node`` its
        children and return the one to value now. Finished paths among them are verified
        at once (verification is not billed) and the best of them is returned."""
        s = self.s
        added = [
            Node(s.new_id(), node, kid, terminal=s.task.is_terminal(kid))
            for kid in node.pending[: count or self.expand_k]
        ]
        del node.pending[: count or self.expand_k]
        node.children.extend(added)
        done = [ch for ch in added if ch.terminal]
        if done:
            verdicts = await s.finish([ch.state for ch in done], [ch.id for ch in done])
            for ch, verdict in zip(done, verdicts, strict=True):
                ch.reward = 1.0 if verdict.passed else verdict.score
        for child in added:
            self.event(child, **({} if child.reward is None else {"reward": child.reward}))
        for ch in done:
            self.mark_exhausted(ch)
        if done:
            return max(done, key=lambda ch: ch.reward or 0.0)
        return added[0]

    async def evaluate(self, node: Node) -> float:
        s = self.s
        if node.terminal:
            return node.reward or 0.0  # verified when it was added
        if self.rollout == "heuristic":
            return s.task.heuristic(node.state)
        if self.rollout == "evaluate":
            [value] = await s.values([node.state], n=1, max_tokens=self.max_tokens)
            return value
        return await self.playout(node)

    async def playout(self, node: Node) -> float:
        """Play the model's proposals to a finished path and verify it: its first
        proposal, or (with chance ``PLAYOUT_EPSILON``) one at random among the first
        ``expand_k``. Proposals are cached per state, so playouts through known states
        cost nothing."""
        s = self.s
        self.playouts += 1
        state = node.state
        while not s.task.is_terminal(state):
            [kids] = await s.expand([state], n=1, max_tokens=self.max_tokens)
            if not kids:
                return 0.0
            explore = s.ctx.rng.random() < PLAYOUT_EPSILON
            state = s.ctx.rng.choice(kids[: self.expand_k]) if explore else kids[0]
        [verdict] = await s.finish([state], [f"{node.id}/playout{self.playouts}"])
        return 1.0 if verdict.passed else verdict.score

    def backup(self, leaf: Node, value: float) -> None:
        node: Node | None = leaf
        while node is not None:
            node.visits += 1
            node.total += value
            self.event(node)
            node = node.parent

    def mark_exhausted(self, node: Node) -> None:
        """``node`` holds nothing more; so does every ancestor whose children all are."""
        node.exhausted = True
        parent = node.parent
        while (
            parent is not None
            and parent.asked_out
            and not parent.pending
            and all(ch.exhausted for ch in parent.children)
        ):
            parent.exhausted = True
            parent = parent.parent
