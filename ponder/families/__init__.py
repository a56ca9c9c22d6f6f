"""Task families, looked up by name, and the verifier a problem gets when its job names
none (:func:`verifier_for`)."""

from __future__ import annotations

from typing import Any

from ponder.families.base import Task
from ponder.once import Once
from ponder.problem import Problem
from ponder.verifiers import Verifier, build_verifier, validate_verifier_spec
from ponder.verifiers.registry import Models, needs_expected

_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    _load_builtin()
    try:
        return _TASKS[name]
    except KeyError:
        known = ", ".join(sorted(_TASKS)) or "none"
        raise KeyError(f"unknown task {name!r}; known tasks: {known}") from None


def all_tasks() -> dict[str, Task]:
    _load_builtin()
    return dict(_TASKS)


def _register_builtin() -> None:
    """Register the ``TASK`` of every module in this package."""
    import importlib
    import pkgutil

    import ponder.families as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name == "base" or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        task = getattr(module, "TASK", None)
        if task is not None:
            register_task(task)


_load_builtin = Once(_register_builtin)


def _free_form_default(problem: Problem) -> dict[str, Any]:
    return {"type": "exact" if problem.expected is not None else "none"}


def verifier_for(spec: dict[str, Any] | None, problem: Problem) -> Verifier:
    """The verifier a job with verifier ``spec`` runs ``problem`` with: the spec's; without
    one, the family's default verifier, or for a free-form problem ``exact`` when it has
    ``expected``, else ``none``. (A bad spec raises ValueError; specs are checked at
    submit by :func:`validate_verifier_for`.)"""
    if spec is not None:
        return build_verifier(spec)
    if problem.task is not None:
        return get_task(problem.task).default_verifier()
    return build_verifier(_free_form_default(problem))


def validate_verifier_for(
    spec: dict[str, Any] | None, problem: Problem, models: Models | None = None
) -> None:
    """Raise ValueError (with what to fix) if verifier ``spec`` cannot verify ``problem``
    (see :func:`ponder.verifiers.validate_verifier_spec`; ``models`` as there). Without
    a spec, a family problem whose default verifier compares with ``expected`` must
    give it."""
    if spec is not None:
        validate_verifier_spec(spec, problem, models)
        return
    if problem.task is not None and problem.expected is None:
        default = get_task(problem.task).default_verifier().name
        if needs_expected(default):
            raise ValueError(
                f"{problem.task!r} problems are checked against `problem.expected` by "
                f"default ({default} verifier); give `expected`, or set "
                '`verifier` to {"type": "none"} to select answers by vote'
            )
