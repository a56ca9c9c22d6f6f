"""A verifier type is one module plus ``@register``: listed after the built-in types,
its options and spec check applied at submit, built by name."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ponder.problem import Problem
from ponder.verifiers import Verdict, Verifier, build_verifier, registry, validate_verifier_spec
from ponder.verifiers.registry import Models, register, verifier_types

PROBLEM = Problem(prompt="Spell it.", expected="cat")


class LengthVerifier:
    name = "length"

    def __init__(self, chars: int) -> None:
        self.chars = chars

    async def verify(self, problem: Problem, answer: str) -> Verdict:
        return Verdict(len(answer) == self.chars, 1.0 if len(answer) == self.chars else 0.0)


def check(spec: dict[str, Any], problem: Problem, models: Models | None) -> None:
    if not isinstance(spec.get("chars"), int):
        raise ValueError("the length verifier needs 'chars', a whole number")


def test_a_registered_type_is_listed_checked_and_built(monkeypatch: pytest.MonkeyPatch) -> None:
    builtin = verifier_types()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register("length", options=("chars",), check=check)
    def build(spec: dict[str, Any]) -> Verifier:
        return LengthVerifier(spec["chars"])

    assert verifier_types() == (*builtin, "length")
    with pytest.raises(ValueError, match="needs 'chars'"):
        validate_verifier_spec({"type": "length"}, PROBLEM)
    with pytest.raises(ValueError, match="its options are chars"):
        validate_verifier_spec({"type": "length", "chars": 3, "x": 1}, PROBLEM)
    validate_verifier_spec({"type": "length", "chars": 3}, PROBLEM)
    verifier = build_verifier({"type": "length", "chars": 3})
    assert asyncio.run(verifier.verify(PROBLEM, "dog")).passed


def test_unknown_types_list_the_builtin_ones_in_order() -> None:
    with pytest.raises(ValueError) as excinfo:
        validate_verifier_spec({"type": "nope"}, PROBLEM)
    assert str(excinfo.value) == (
        "unknown verifier type 'nope'; available types: game24, exact, numeric, regex, "
        "json_schema, llm_judge, reward_model, python_tests, none"
    )
