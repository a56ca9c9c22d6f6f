"""Model providers by name: what a model profile's ``provider`` may say.

A provider is one module that registers its factory with a decorator: a chat model with
:func:`register_provider`, called as ``factory(profile, limiter=limiter)`` (a class
taking the profile works as is)::

    @register_provider("openai", default_base_url="https://api.openai.com/v1")
    class OpenAICompatProvider(HttpChatProvider): ...

and a reward model with :func:`register_reward_model`, called as ``factory(profile)``.
The decorator also says how the provider's profiles differ from the rest: a default
``base_url`` or ``model``, whether it runs in process (no ``base_url``, no key), the
capabilities ``GET /v1/models`` shows. :mod:`ponder.llm.profiles` validates profiles and
builds providers from these entries alone, with no list of provider names of its own.

The built-in providers are listed in :data:`BUILTIN_PROVIDERS` by module name, like
entry points: a module is imported the first time its provider is looked up, so this
registry imports none of them (they import it) and profiles need not import them either.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ponder.llm.base import Provider, RewardModel

ChatFactory = Callable[..., Provider]
RewardFactory = Callable[..., RewardModel]
_Chat = TypeVar("_Chat", bound=ChatFactory)
_Reward = TypeVar("_Reward", bound=RewardFactory)

# provider name -> the module that registers it, in the order messages list them
BUILTIN_PROVIDERS: Mapping[str, str] = {
    "openai": "ponder.llm.openai_compat",
    "anthropic": "ponder.llm.anthropic",
    "sim": "ponder.sim.model",
    "reward": "ponder.llm.reward",
    "sim-reward": "ponder.sim.reward",
}

REWARD_CAPABILITIES: Mapping[str, Any] = {"supports_n": False, "score": True, "score_steps": True}


@dataclass(frozen=True)
class ProviderSpec:
    """One registered provider: how to build it and what its profiles may say."""

    name: str
    chat: ChatFactory | None = None  # exactly one of chat and reward is set
    reward: RewardFactory | None = None
    default_base_url: str | None = None  # the vendor's API root
    default_model: str | None = None  # the model id when a profile names none
    # Set for a provider that runs in this process: why base_url does not apply
    # (``base_url`` and ``api_key_env`` are refused).
    in_process: str | None = None
    # Set when a profile must give a base_url: what it is (the error's explanation).
    base_url_required: str | None = None
    simulated_latency: bool = False  # ttft_ms and tokens_per_s apply
    # What ``GET /v1/models`` shows; None: whether the profile supports ``n``.
    capabilities: Mapping[str, Any] | None = None

    @property
    def is_reward(self) -> bool:
        """A reward model (scores answers and steps), not a chat model."""
        return self.reward is not None


_REGISTRY: dict[str, ProviderSpec] = {}


def register_provider(
    name: str,
    *,
    default_base_url: str | None = None,
    default_model: str | None = None,
    in_process: str | None = None,
    simulated_latency: bool = False,
    capabilities: Mapping[str, Any] | None = None,
) -> Callable[[_Chat], _Chat]:
    """Register the chat model factory it decorates as provider ``name``."""

    def deco(factory: _Chat) -> _Chat:
        _add(
            ProviderSpec(
                name,
                chat=factory,
                default_base_url=default_base_url,
                default_model=default_model,
                in_process=in_process,
                simulated_latency=simulated_latency,
                capabilities=capabilities,
            )
        )
        return factory

    return deco


def register_reward_model(
    name: str,
    *,
    default_model: str | None = None,
    in_process: str | None = None,
    base_url_required: str | None = None,
) -> Callable[[_Reward], _Reward]:
    """Register the reward model factory it decorates as provider ``name``."""

    def deco(factory: _Reward) -> _Reward:
        _add(
            ProviderSpec(
                name,
                reward=factory,
                default_model=default_model,
                in_process=in_process,
                base_url_required=base_url_required,
                capabilities=REWARD_CAPABILITIES,
            )
        )
        return factory

    return deco


def _add(spec: ProviderSpec) -> None:
    _REGISTRY[spec.name] = spec  # a later registration of a name replaces the earlier


def provider_names() -> list[str]:
    """Every provider name a profile may use: the built-ins, then the others in the
    order they were registered. Imports nothing."""
    extra = [name for name in _REGISTRY if name not in BUILTIN_PROVIDERS]
    return [*BUILTIN_PROVIDERS, *extra]


def provider_spec(name: str) -> ProviderSpec | None:
    """The provider registered as ``name`` (importing its module if it is a built-in
    not imported yet), or None when there is none."""
    spec = _REGISTRY.get(name)
    if spec is None and name in BUILTIN_PROVIDERS:
        importlib.import_module(BUILTIN_PROVIDERS[name])
        spec = _REGISTRY.get(name)
    return spec


def reward_provider_names() -> list[str]:
    """The names of the reward model providers (imports every built-in provider)."""
    return [name for name in provider_names() if _is_reward(name)]


def _is_reward(name: str) -> bool:
    spec = provider_spec(name)
    return spec is not None and spec.is_reward


def one_of(names: Sequence[str]) -> str:
    """``'a', 'b' or 'c'``: choices as validation messages list them."""
    quoted = [repr(name) for name in names]
    if len(quoted) <= 1:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


__all__ = [
    "BUILTIN_PROVIDERS",
    "ChatFactory",
    "ProviderSpec",
    "RewardFactory",
    "one_of",
    "provider_names",
    "provider_spec",
    "register_provider",
    "register_reward_model",
    "reward_provider_names",
]
