"""Run one strategy on one problem in this process, with no database or broker: for
benchmarks and quick experiments. The service itself always runs jobs through the
durable runner (worker/runner.py); this is the same Context over an in-memory journal."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ponder.budget import BudgetExhausted, BudgetLimits, Ledger
from ponder.families import get_task, verifier_for
from ponder.llm.base import Provider, Usage
from ponder.llm.profiles import build_provider, load_models_file
from ponder.llm.reward import RewardModels
from ponder.memjournal import MemoryJournal
from ponder.problem import Problem
from ponder.runtime import Context, PriceFn, PriceLookup, ProviderLookup, RewardModelLookup
from ponder.tables import StopReason


@dataclass(frozen=True)
class OfflineResult:
    result: dict[str, Any] | None
    stop_reason: str
    tokens: int
    calls: int
    events: list[tuple[str, dict[str, Any]]]

    @property
    def verified(self) -> bool:
        return bool(self.result and self.result.get("verified"))


def _free(_: Usage) -> float:
    return 0.0


def _free_prices(_: str) -> PriceFn:
    return _free


class _BuiltinProviders:
    """The ``providers`` lookup by default: the run's own provider by its name, else a
    built-in profile's provider (built on first use and closed by :meth:`aclose`)."""

    def __init__(self, own: Provider) -> None:
        self._own = own
        self._profiles = load_models_file(None)
        self._built: dict[str, Provider] = {}

    def __call__(self, name: str) -> Provider:
        if name == self._own.name:
            return self._own
        if name not in self._built:
            self._built[name] = build_provider(self._profiles[name])
        return self._built[name]

    async def aclose(self) -> None:
        built, self._built = list(self._built.values()), {}
        for provider in built:
            await provider.aclose()


async def run_offline(
    problem: dict[str, Any],
    strategy: str,
    params: dict[str, Any],
    budget: dict[str, Any],
    *,
    provider: Provider,
    seed: int,
    verifier: dict[str, Any] | None = None,
    reward_models: RewardModelLookup | None = None,
    providers: ProviderLookup | None = None,
    prices: PriceLookup | None = None,
) -> OfflineResult:
    """``reward_models`` (name → RewardModel) defaults to the built-in ones (``sim-prm``);
    ``providers`` (name → Provider, for a verifier's judge model) to ``provider`` by its
    name and the built-in profiles; ``prices`` (name → price function) to free. The
    caller keeps ownership of lookups it passes."""
    from strategies.registry import get_strategy

    prob = Problem.model_validate(problem)
    journal = MemoryJournal()
    ledger = Ledger(BudgetLimits.model_validate(budget))
    own_rewards = RewardModels(load_models_file(None)) if reward_models is None else None
    rewards = reward_models or own_rewards
    own_providers = _BuiltinProviders(provider) if providers is None else None
    chat_models = providers or own_providers
    ctx = Context(
        problem=prob,
        task=get_task(prob.task) if prob.task else None,
        provider=provider,
        price=_free,
        verifier=verifier_for(verifier, prob),
        ledger=ledger,
        journal=journal,
        seed=seed,
        clock=time.monotonic,
        reward_models=rewards,
        providers=chat_models,
        prices=prices or _free_prices,
    )
    try:
        await get_strategy(strategy).run(prob, ctx, params)
        best = ctx.best
        passed = best is not None and best.verdict.passed
        stop_reason = StopReason.VERIFIED if passed else StopReason.SEARCH_EXHAUSTED
    except BudgetExhausted as exc:
        stop_reason = exc.stop_reason
    finally:
        await ctx.drain(None)
        if own_rewards is not None:
            await own_rewards.aclose()
        if own_providers is not None:
            await own_providers.aclose()
    spent = ledger.spent
    return OfflineResult(ctx.best_json(), stop_reason, spent.tokens, spent.calls, journal.events)
