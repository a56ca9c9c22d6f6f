"""Verifiers, built from a job's verifier spec (``{"type": ..., ...}``).

=============  ==========================================================================
type           options (besides ``type``)
=============  ==========================================================================
game24         none (a ``game24`` task problem)
exact          ``case_sensitive`` (default false); needs ``problem.expected``
numeric        ``rel_tol``, ``abs_tol``; needs a numeric ``problem.expected``
regex          ``pattern`` (required), ``flags`` (list of re flag names), ``full_match``
json_schema    ``schema`` (required, a JSON Schema)
llm_judge      ``model`` (chat profile), ``rubric`` (required), ``pass_threshold`` (0.7),
               ``max_tokens`` (256), ``temperature`` (0)
reward_model   ``model`` (reward profile), ``pass_threshold`` (0.5)
none           none: candidates are selected by the strategy's own means
=============  ==========================================================================

:func:`validate_verifier_spec` runs at submit time (a ValueError becomes a 422 with its
message); :func:`build_verifier` builds the verifier a job runs with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ponder.problem import Problem
from ponder.verifiers.base import Verdict, Verifier
from ponder.verifiers.exact import ExactVerifier, NoVerifier

if TYPE_CHECKING:
    from ponder.llm.profiles import ModelProfile

VERIFIER_TYPES = (
    "game24",
    "exact",
    "numeric",
    "regex",
    "json_schema",
    "llm_judge",
    "reward_model",
    "python_tests",
    "none",
)
# The options each verifier type accepts besides "type".
VERIFIER_OPTIONS: dict[str, tuple[str, ...]] = {
    "exact": ("case_sensitive",),
    "numeric": ("rel_tol", "abs_tol"),
    "regex": ("pattern", "flags", "full_match"),
    "json_schema": ("schema",),
    "llm_judge": ("model", "rubric", "pass_threshold", "max_tokens", "temperature"),
    "reward_model": ("model", "pass_threshold"),
    "python_tests": ("tests", "timeout_s", "memory_mb"),
}


def _check_default(problem: Problem) -> None:
    # the task's own verifier; free-form: exact if expected is given, else none
    if problem.task is not None and problem.expected is None:
        from ponder.families import get_task

        default = get_task(problem.task).default_verifier().name
        if default in ("numeric", "exact"):
            raise ValueError(
                f"{problem.task!r} problems are checked against `problem.expected` by "
                f"default ({default} verifier); give `expected`, or set "
                '`verifier` to {"type": "none"} to select answers by vote'
            )


def _options(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec's options checked and normalized into the verifier's constructor
    arguments; ValueError saying what is wrong."""
    kind = spec["type"]
    if kind == "exact":
        from ponder.verifiers import exact

        return exact.check_options(spec)
    if kind == "numeric":
        from ponder.verifiers.numeric import NumericVerifier

        options = {k: spec[k] for k in VERIFIER_OPTIONS["numeric"] if k in spec}
        NumericVerifier(**options)  # checks the options
        return options
    if kind == "regex":
        from ponder.verifiers import regex

        return regex.check_options(spec)
    if kind == "json_schema":
        from ponder.verifiers import json_schema

        return json_schema.check_options(spec)
    if kind == "llm_judge":
        from ponder.verifiers import llm_judge

        return llm_judge.check_options(spec)
    if kind == "reward_model":
        from ponder.verifiers import reward_model

        return reward_model.check_options(spec)
    if kind == "python_tests":
        from ponder.verifiers.python_tests import validate_python_tests_spec

        validate_python_tests_spec(spec)
    return {}


def _check_model(kind: str, name: str, models: Mapping[str, ModelProfile]) -> None:
    chat = ", ".join(n for n, p in models.items() if not p.is_reward) or "none"
    reward = ", ".join(n for n, p in models.items() if p.is_reward) or "none"
    profile = models.get(name)
    if kind == "llm_judge":
        if profile is None:
            raise ValueError(f"unknown judge model {name!r}; configured chat models: {chat}")
        if profile.is_reward:
            raise ValueError(
                f"judge model {name!r} is a reward model, which cannot write a judgement; "
                f"name a chat model (configured chat models: {chat}), or use "
                f'{{"type": "reward_model", "model": "{name}"}}'
            )
    else:
        if profile is None:
            raise ValueError(f"unknown reward model {name!r}; reward model profiles: {reward}")
        if not profile.is_reward:
            raise ValueError(
                f"{name!r} is a chat model, not a reward model; reward model profiles: "
                f"{reward} (to have a chat model grade answers, use the llm_judge verifier)"
            )


def validate_verifier_spec(
    spec: dict[str, Any] | None,
    problem: Problem,
    models: Mapping[str, ModelProfile] | None = None,
) -> None:
    """Raise ValueError (with what to fix) if ``spec`` cannot verify ``problem``.
    ``models`` (profile name → profile) checks the model an ``llm_judge`` or
    ``reward_model`` verifier names; without it that check is skipped."""
    if spec is None:
        _check_default(problem)
        return
    if not isinstance(spec, dict):
        raise ValueError('the verifier must be an object like {"type": "exact"}')
    kind = spec.get("type")
    if kind not in VERIFIER_TYPES:
        shown = "(none given)" if kind is None else repr(kind)
        raise ValueError(
            f"unknown verifier type {shown}; available types: {', '.join(VERIFIER_TYPES)}"
        )
    allowed = VERIFIER_OPTIONS.get(kind, ())
    extra = set(spec) - {"type", *allowed}
    if extra:
        if not allowed:
            raise ValueError(f"verifier {kind!r} takes no options; got {sorted(extra)}")
        raise ValueError(
            f"verifier {kind!r} takes no options named {sorted(extra)}; its options are "
            + ", ".join(allowed)
        )
    if kind == "game24" and problem.task != "game24":
        raise ValueError("the game24 verifier needs a `game24` task problem")
    if kind == "exact" and problem.expected is None:
        raise ValueError("the exact verifier needs `problem.expected`")
    options = _options(spec)
    if kind == "numeric":
        from ponder.verifiers.numeric import NumberError, parse_expected

        try:
            parse_expected(problem.expected)
        except NumberError as exc:
            raise ValueError(str(exc)) from None
    if kind in ("llm_judge", "reward_model") and models is not None:
        _check_model(kind, options["model"], models)


def build_verifier(spec: dict[str, Any] | None, problem: Problem) -> Verifier:
    """The verifier ``spec`` describes (checked at submit; a bad spec raises ValueError)."""
    from ponder.families import get_task

    if spec is None:
        if problem.task is not None:
            return get_task(problem.task).default_verifier()
        return ExactVerifier() if problem.expected is not None else NoVerifier()
    kind = spec.get("type")
    if kind not in VERIFIER_TYPES:
        raise ValueError(f"unknown verifier type {kind!r}")
    if kind == "game24":
        from ponder.verifiers.game24 import Game24Verifier

        return Game24Verifier()
    if kind == "none":
        return NoVerifier()
    options = _options(spec)
    if kind == "exact":
        return ExactVerifier(**options)
    if kind == "numeric":
        from ponder.verifiers.numeric import NumericVerifier

        return NumericVerifier(**options)
    if kind == "regex":
        from ponder.verifiers.regex import RegexVerifier

        return RegexVerifier(**options)
    if kind == "json_schema":
        from ponder.verifiers.json_schema import JsonSchemaVerifier

        return JsonSchemaVerifier(**options)
    if kind == "llm_judge":
        from ponder.verifiers.llm_judge import LlmJudgeVerifier

        return LlmJudgeVerifier(**options)
    if kind == "python_tests":
        from ponder.verifiers.python_tests import PythonTestsVerifier

        return PythonTestsVerifier.from_spec(spec)
    from ponder.verifiers.reward_model import RewardModelVerifier

    return RewardModelVerifier(**options)


__all__ = [
    "VERIFIER_OPTIONS",
    "VERIFIER_TYPES",
    "ExactVerifier",
    "NoVerifier",
    "Verdict",
    "Verifier",
    "build_verifier",
    "validate_verifier_spec",
]
