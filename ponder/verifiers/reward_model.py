"""The ``reward_model`` verifier: an outcome reward model scores the answer.

Spec: ``{"type": "reward_model", "model": "<reward profile>", "pass_threshold": 0.5}``.
``model`` must name a reward model profile (provider ``reward`` or ``sim-reward``;
checked at submit time). The answer is scored with the model's ``score`` call (the
HTTP contract in :mod:`ponder.llm.reward`: ``POST {base_url}/score``) for the problem's
prompt; the verdict's score is the model's, and it passes when that is at least
``pass_threshold``. The call goes through the job's Context
(:meth:`~ponder.verifiers.base.VerifierContext.score`: journaled, replayed on resume,
not billed: reward models carry no prices), so outside a Context this verifier cannot
run (:meth:`verify` raises).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from typing import Any

from ponder.problem import Problem
from ponder.verifiers.base import Verdict, Verifier, VerifierContext
from ponder.verifiers.registry import Models, register

OPTIONS = ("model", "pass_threshold")
DEFAULT_PASS_THRESHOLD = 0.5


def check_options(spec: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments ``spec`` asks for; ValueError saying what is wrong."""
    model = spec.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError(
            'the reward_model verifier needs "model": the name of a reward model profile'
        )
    threshold = spec.get("pass_threshold", DEFAULT_PASS_THRESHOLD)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not math.isfinite(threshold)
        or not 0.0 <= threshold <= 1.0
    ):
        raise ValueError(
            f"verifier option 'pass_threshold' must be a number from 0 to 1, got {threshold!r}"
        )
    return {"model": model, "pass_threshold": float(threshold)}


class RewardModelVerifier:
    """Passes when the reward model scores the answer at least ``pass_threshold``."""

    name = "reward_model"

    def __init__(self, model: str, pass_threshold: float = DEFAULT_PASS_THRESHOLD) -> None:
        self.model = model
        self.pass_threshold = pass_threshold

    def verdict(self, score: float) -> Verdict:
        """The verdict for the reward model's ``score`` of an answer."""
        score = min(max(float(score), 0.0), 1.0)
        passed = score >= self.pass_threshold
        return Verdict(
            passed,
            score,
            f"reward model {self.model!r} scored {score:.3f} ("
            f"{'passes' if passed else 'below'} the threshold {self.pass_threshold:g})",
        )

    async def verify(self, problem: Problem, answer: str) -> Verdict:
        raise RuntimeError(
            "the reward_model verifier calls a reward model, so it runs only through a "
            "job's Context (ctx.verify), which journals the calls"
        )

    def prepare(self, ctx: VerifierContext) -> None:
        ctx.reward_model(self.model)

    def verify_in(self, ctx: VerifierContext, problem: Problem, answer: str) -> Awaitable[Verdict]:
        return self._verdict(ctx.score([answer], reward_model=self.model))

    async def _verdict(self, scores: Awaitable[list[float]]) -> Verdict:
        return self.verdict((await scores)[0])


def check_model(name: str, models: Models) -> None:
    """ValueError unless ``name`` is a reward model profile in ``models``."""
    reward = ", ".join(n for n, p in models.items() if p.is_reward) or "none"
    profile = models.get(name)
    if profile is None:
        raise ValueError(f"unknown reward model {name!r}; reward model profiles: {reward}")
    if not profile.is_reward:
        raise ValueError(
            f"{name!r} is a chat model, not a reward model; reward model profiles: "
            f"{reward} (to have a chat model grade answers, use the llm_judge verifier)"
        )


def check_spec(spec: dict[str, Any], problem: Problem, models: Models | None) -> None:
    options = check_options(spec)
    if models is not None:
        check_model(options["model"], models)


@register("reward_model", options=OPTIONS, check=check_spec)
def build(spec: dict[str, Any]) -> Verifier:
    return RewardModelVerifier(**check_options(spec))
