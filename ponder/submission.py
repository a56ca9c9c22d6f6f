"""Checks on a submitted job that need the server's configuration (strategies, tasks,
models, budget ceilings) and the tenant's limits (its maximum priority, its per-job
budget ceilings: :mod:`ponder.quotas`), and the job row it becomes. Each failure is a
422 whose detail names the field and what to send instead."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from pydantic import BaseModel, ValidationError

from ponder.budget import BudgetLimits
from ponder.catalog import StrategyCatalog
from ponder.config import Settings
from ponder.families import all_tasks, get_step_task, get_task, validate_verifier_for
from ponder.field_errors import Invalid, describe_validation_errors, invalid
from ponder.jobspec import ItemInvalid, JobCreate, JobValidator
from ponder.llm.profiles import ModelProfile
from ponder.problem import Problem
from ponder.quotas import TenantLimits
from ponder.webhooks.ssrf import ForbiddenAddress, check_target_url

DEFAULT_MAX_TOKENS = 50_000
DEFAULT_MAX_CALLS = 128
DEFAULT_MAX_SECONDS = 600.0


def request_hash(body: JobCreate) -> str:
    """SHA-256 of the request's canonical JSON (sorted keys, defaults filled in), so the
    same job sent with different key order or whitespace hashes the same."""
    canonical = json.dumps(
        body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def job_values(
    body: JobCreate,
    settings: Settings,
    models: dict[str, ModelProfile],
    strategies: StrategyCatalog,
    limits: TenantLimits | None = None,
) -> dict[str, Any]:
    """The checked, normalized columns of the job ``body`` asks for; raises
    :class:`Invalid` (a 422 in the API) naming the field to fix. ``limits`` are the
    submitting tenant's (its maximum priority and per-job budget ceilings); without
    them the server's defaults apply."""
    limits = limits or TenantLimits.of(settings, "")
    if body.priority > limits.max_priority:
        raise invalid(
            ("body", "priority"),
            f"must be at most {limits.max_priority} for {limits.whose('max_priority')} "
            f"(max_priority; got {body.priority}); send a lower priority, or ask an "
            "operator to raise it (`ponder tenants limits set TENANT --max-priority N`)",
        )
    strategy_params = _check_strategy(strategies, body.strategy.name, body.strategy.params)
    _check_problem(body.problem)
    if (
        strategies.get(body.strategy.name).requires_steps
        and get_step_task(body.problem.task) is None
    ):
        raise invalid(
            ("body", "strategy", "name"),
            f"strategy {body.strategy.name!r} searches over reasoning steps and needs a task "
            "with step prompts (game24); use best_of_n, self_consistency, refine, thinking "
            "or auto for this problem",
        )
    chat_models = ", ".join(name for name, p in models.items() if not p.is_reward)
    profile = models.get(body.model)
    if profile is None:
        raise invalid(
            ("body", "model"),
            f"unknown model {body.model!r}; configured models: {chat_models}",
        )
    if profile.is_reward:
        raise invalid(
            ("body", "model"),
            f"{body.model!r} is a reward model (provider {profile.provider!r}): it scores "
            "answers and steps but cannot write them; name a chat model here (configured "
            f"chat models: {chat_models}) and use {body.model!r} as a strategy's "
            "reward_model (e.g. beam_search with scorer 'prm')",
        )
    _check_reward_model_param(strategy_params, models)
    try:
        validate_verifier_for(body.verifier, body.problem, models)
    except ValueError as exc:
        raise invalid(("body", "verifier"), str(exc)) from None
    budget = _check_budget(body.budget, settings, limits)
    if body.webhook_url is not None:
        try:
            check_target_url(body.webhook_url, allow_private=settings.webhook_allow_private)
        except ForbiddenAddress as exc:
            raise invalid(
                ("body", "webhook_url"),
                f"webhooks may not be sent there: {exc}; give a public http(s) URL (to "
                "reach a receiver on this machine while developing, start the API and "
                "workers with PONDER_WEBHOOK_ALLOW_PRIVATE=true, e.g. `ponder up "
                "--allow-private-webhooks`)",
            ) from None
    return {
        "problem": body.problem.model_dump(mode="json", exclude_none=True),
        "strategy": {"name": body.strategy.name, "params": strategy_params},
        "verifier": body.verifier,
        "model": body.model,
        "budget": budget.model_dump(mode="json", exclude_none=True),
        "priority": body.priority,
        "meta": body.metadata,
        "webhook_url": body.webhook_url,
        "seed": body.seed if body.seed is not None else secrets.randbits(31),
    }


def _check_strategy(
    strategies: StrategyCatalog, name: str, params: dict[str, Any]
) -> dict[str, Any]:
    try:
        spec = strategies.get(name)
    except KeyError:
        available = ", ".join(s.name for s in strategies.all())
        raise invalid(
            ("body", "strategy", "name"),
            f"unknown strategy {name!r}; available strategies: {available}",
        ) from None
    try:
        parsed: BaseModel = spec.params.model_validate(params)
    except ValidationError as exc:
        known = ", ".join(spec.params.model_fields)
        raw = []
        for error in exc.errors(include_url=False, include_input=False):
            entry: dict[str, Any] = {
                "loc": ("body", "strategy", "params", *error["loc"]),
                "type": error["type"],
                "msg": error["msg"],
            }
            if error["type"] == "extra_forbidden":
                entry["type"] = "value_error"
                entry["msg"] = (
                    f"unknown parameter for strategy {name!r}; its parameters are: {known}"
                )
            raw.append(entry)
        detail, errors = describe_validation_errors(raw)
        raise Invalid(detail, errors) from None
    return parsed.model_dump(mode="json")


def _check_reward_model_param(params: dict[str, Any], models: dict[str, ModelProfile]) -> None:
    """A strategy's ``reward_model`` parameter must name a reward model profile."""
    name = params.get("reward_model")
    if not isinstance(name, str):
        return
    profile = models.get(name)
    if profile is not None and profile.is_reward:
        return
    known = ", ".join(n for n, p in models.items() if p.is_reward) or "none"
    what = "unknown reward model" if profile is None else "not a reward model (a chat model)"
    raise invalid(
        ("body", "strategy", "params", "reward_model"),
        f"{what} {name!r}; reward model profiles: {known}"
        if profile is None
        else f"{name!r} is {what}; reward model profiles: {known}",
    )


def _check_problem(problem: Problem) -> None:
    if problem.task is None:
        return
    try:
        task = get_task(problem.task)
    except KeyError:
        known = ", ".join(sorted(all_tasks())) or "none"
        raise invalid(
            ("body", "problem", "task"), f"unknown task {problem.task!r}; known tasks: {known}"
        ) from None
    try:
        task.validate_input(problem.input or {})
    except ValueError as exc:
        raise invalid(("body", "problem", "input"), str(exc)) from None


def _check_budget(
    budget: BudgetLimits | None, settings: Settings, limits: TenantLimits
) -> BudgetLimits:
    ceilings = limits.ceilings()
    if budget is None:
        # the defaults never exceed what the server and the tenant allow
        return BudgetLimits(
            max_tokens=min(DEFAULT_MAX_TOKENS, int(ceilings["max_tokens"])),
            max_calls=min(DEFAULT_MAX_CALLS, int(ceilings["max_calls"])),
            max_seconds=min(DEFAULT_MAX_SECONDS, ceilings["max_seconds"]),
        )
    problems = []
    for field, ceiling in ceilings.items():
        value = getattr(budget, field)
        if value is not None and value > ceiling:
            where = (
                "on this server"
                if limits.ceiling_owner(field, settings) == "this server"
                else "for this tenant (its own per-job ceiling; an operator can raise it "
                "up to the server's)"
            )
            problems.append(
                {
                    "loc": ("body", "budget", field),
                    "type": "value_error",
                    "msg": (f"must be at most {_number(ceiling)} {where} (got {_number(value)})"),
                }
            )
    if problems:
        detail, errors = describe_validation_errors(problems)
        raise Invalid(detail, errors)
    return budget


def _number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def job_validator(
    settings: Settings, models: dict[str, ModelProfile], strategies: StrategyCatalog
) -> JobValidator:
    """The check ``POST /v1/jobs`` makes, as a function of a raw job body: the job's row
    values, or :class:`ponder.jobspec.ItemInvalid` with the same messages a 422 for
    that body would carry (field locations relative to the body). Batches validate each
    item with it, so an item is accepted exactly when it would be accepted as a job."""

    def validate(body: dict[str, Any], limits: TenantLimits | None = None) -> dict[str, Any]:
        try:
            job = JobCreate.model_validate(body)
            return job_values(job, settings, models, strategies, limits)
        except ValidationError as exc:
            detail, errors = describe_validation_errors(
                exc.errors(include_url=False, include_input=False)
            )
            raise ItemInvalid(detail, errors) from None
        except Invalid as exc:
            if not exc.errors:
                raise ItemInvalid(exc.detail) from None
            relative = [
                {**e, "loc": list(e["loc"])[1:] if list(e["loc"])[:1] == ["body"] else e["loc"]}
                for e in exc.errors
            ]
            detail, errors = describe_validation_errors(relative)
            raise ItemInvalid(detail, errors) from None

    return validate
