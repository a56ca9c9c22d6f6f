"""Verifier types by name, built from a job's verifier spec (``{"type": ..., ...}``).

A verifier type is one module that registers the function building its verifier::

    @register("regex", options=("pattern", "flags", "full_match"), check=check_spec)
    def build(spec: dict[str, Any]) -> Verifier:
        return RegexVerifier(**check_options(spec))

``options`` are the keys a spec may have besides ``type`` (others are refused here);
``check(spec, problem, models)`` raises ValueError, saying what to fix, when the spec is
wrong or cannot verify the problem (``models``, profile name → profile, is None when the
models it names are not to be checked); ``needs_expected`` says the verifier compares
with ``problem.expected``, so a problem family whose default it is needs ``expected``.
The module's docstring documents its spec.

The built-in modules are listed in :data:`BUILTIN` (like entry points; their order is
the order types are listed to users) and imported on the first lookup, so a new
built-in type is its module plus a line there. A module from elsewhere registers its
types when it is imported (they are listed after the built-in ones).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import count
from typing import Any, Protocol

from ponder.once import Once
from ponder.problem import Problem
from ponder.verifiers.base import Verifier


class Profile(Protocol):
    """What spec checks need of a model profile (a
    :class:`ponder.llm.profiles.ModelProfile`)."""

    @property
    def is_reward(self) -> bool: ...


Models = Mapping[str, Profile]  # profile name -> profile
Build = Callable[[dict[str, Any]], Verifier]
Check = Callable[[dict[str, Any], Problem, Models | None], None]

BUILTIN = (
    "ponder.verifiers.game24",
    "ponder.verifiers.exact",
    "ponder.verifiers.numeric",
    "ponder.verifiers.regex",
    "ponder.verifiers.json_schema",
    "ponder.verifiers.llm_judge",
    "ponder.verifiers.reward_model",
    "ponder.verifiers.python_tests",
    "ponder.verifiers.none",
)


@dataclass(frozen=True)
class VerifierType:
    name: str
    build: Build
    options: tuple[str, ...]
    check: Check | None
    needs_expected: bool
    rank: tuple[int, int]  # where it is listed: its module's place in BUILTIN, then order


_REGISTRY: dict[str, VerifierType] = {}
_order = count()


def register(
    name: str,
    *,
    options: tuple[str, ...] = (),
    check: Check | None = None,
    needs_expected: bool = False,
) -> Callable[[Build], Build]:
    def deco(build: Build) -> Build:
        module = BUILTIN.index(build.__module__) if build.__module__ in BUILTIN else len(BUILTIN)
        _REGISTRY[name] = VerifierType(
            name, build, tuple(options), check, needs_expected, (module, next(_order))
        )
        return build

    return deco


def _import_builtin() -> None:
    for module in BUILTIN:
        importlib.import_module(module)


_load = Once(_import_builtin)


def verifier_types() -> tuple[str, ...]:
    """The names of every verifier type, in the order they are listed to users."""
    _load()
    return tuple(t.name for t in sorted(_REGISTRY.values(), key=lambda t: t.rank))


def needs_expected(name: str) -> bool:
    """Whether verifier type ``name`` compares answers with ``problem.expected``."""
    _load()
    verifier_type = _REGISTRY.get(name)
    return verifier_type is not None and verifier_type.needs_expected


def validate_verifier_spec(
    spec: dict[str, Any], problem: Problem, models: Models | None = None
) -> None:
    """Raise ValueError (with what to fix) if ``spec`` cannot verify ``problem``.
    ``models`` (profile name → profile) checks the model a spec names (``llm_judge``,
    ``reward_model``); without it that check is skipped."""
    if not isinstance(spec, dict):
        raise ValueError('the verifier must be an object like {"type": "exact"}')
    kind = spec.get("type")
    types = verifier_types()
    if kind not in types:
        shown = "(none given)" if kind is None else repr(kind)
        raise ValueError(f"unknown verifier type {shown}; available types: {', '.join(types)}")
    verifier_type = _REGISTRY[kind]
    allowed = verifier_type.options
    extra = set(spec) - {"type", *allowed}
    if extra:
        if not allowed:
            raise ValueError(f"verifier {kind!r} takes no options; got {sorted(extra)}")
        raise ValueError(
            f"verifier {kind!r} takes no options named {sorted(extra)}; its options are "
            + ", ".join(allowed)
        )
    if verifier_type.check is not None:
        verifier_type.check(spec, problem, models)


def build_verifier(spec: dict[str, Any]) -> Verifier:
    """The verifier ``spec`` describes (checked at submit; a bad spec raises ValueError)."""
    kind = spec.get("type")
    if kind not in verifier_types():
        raise ValueError(f"unknown verifier type {kind!r}")
    return _REGISTRY[kind].build(spec)
