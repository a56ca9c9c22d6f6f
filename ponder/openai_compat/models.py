"""What a request's ``model`` may name: a chat model profile (the job runs the ``auto``
strategy on it) or ``STRATEGY/PROFILE`` (e.g. ``best_of_n/sim``). A profile whose own
name contains a ``/`` is matched whole first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ponder.catalog import StrategyCatalog
from ponder.llm.profiles import ModelProfile
from ponder.openai_compat.errors import ModelNotFound

DEFAULT_STRATEGY = "auto"


@dataclass(frozen=True)
class ModelChoice:
    """The strategy and model profile a ``model`` name stands for, and the name itself."""

    strategy: str
    profile: str
    name: str


def chat_profiles(models: dict[str, ModelProfile]) -> list[str]:
    return [name for name, profile in models.items() if not profile.is_reward]


def model_names(models: dict[str, ModelProfile], strategies: StrategyCatalog) -> list[str]:
    """Every name ``model`` may take: each chat profile, then each STRATEGY/PROFILE."""
    profiles = chat_profiles(models)
    combos = [f"{s.name}/{p}" for s in strategies.all() for p in profiles]
    return profiles + combos


def resolve(name: str, models: dict[str, ModelProfile], strategies: StrategyCatalog) -> ModelChoice:
    """The strategy and profile ``name`` stands for; :class:`ModelNotFound` otherwise."""
    profile = models.get(name)
    if profile is not None and not profile.is_reward:
        return ModelChoice(DEFAULT_STRATEGY, name, name)
    strategy, slash, rest = name.partition("/")
    if slash:
        known = {s.name for s in strategies.all()}
        profile = models.get(rest)
        if strategy in known and profile is not None and not profile.is_reward:
            return ModelChoice(strategy, rest, name)
    raise ModelNotFound(_unknown(name, models, strategies))


def _unknown(name: str, models: dict[str, ModelProfile], strategies: StrategyCatalog) -> str:
    shown = name if len(name) <= 100 else name[:100] + "..."
    profiles = ", ".join(chat_profiles(models))
    strategy_names = ", ".join(s.name for s in strategies.all())
    return (
        f"The model `{shown}` does not exist on this server. Name a model profile "
        f"({profiles}) to run the `auto` strategy on it, or STRATEGY/PROFILE (strategies: "
        f"{strategy_names}), e.g. `best_of_n/{chat_profiles(models)[0]}`; "
        "GET /openai/v1/models lists every name."
    )


def model_of(strategy: dict[str, Any], profile: str, openai: dict[str, Any] | None) -> str:
    """The ``model`` a job shows on this surface: the name its request gave, else (a job
    made through the native API) the profile for ``auto``, STRATEGY/PROFILE otherwise."""
    given = (openai or {}).get("model")
    if isinstance(given, str):
        return given
    name = str(strategy.get("name", DEFAULT_STRATEGY))
    return profile if name == DEFAULT_STRATEGY else f"{name}/{profile}"
