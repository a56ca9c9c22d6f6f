"""Problem families by name (a problem's ``task``), and what a problem's family decides:
the messages that pose it and the verifier it gets when the job names none.

A family is one module that registers its instance (a :class:`~ponder.families.base.Task`)
and, if its problems can be solved one step at a time, its step view (a
:class:`~ponder.families.base.StepTask` of the same name); both calls return what they
register, so the module keeps it::

    TASK = register(Game24Task())
    STEPS = register_steps(Game24Steps())

The built-in modules are listed in :data:`BUILTIN` (like entry points) and imported on
the first lookup, so a new built-in family is its module plus a line there. A module
from elsewhere registers its family when it is imported.
"""

from __future__ import annotations

import importlib
from typing import Any, TypeVar

from ponder.families.base import StepTask, Task
from ponder.llm.base import Message
from ponder.once import Once
from ponder.problem import Problem
from ponder.verifiers import Verifier, build_verifier, validate_verifier_spec
from ponder.verifiers.registry import Models, needs_expected

BUILTIN = (
    "ponder.families.arithmetic",
    "ponder.families.game24",
)

TaskT = TypeVar("TaskT", bound=Task)
StepTaskT = TypeVar("StepTaskT", bound=StepTask)

_TASKS: dict[str, Task] = {}
_STEP_TASKS: dict[str, StepTask] = {}


def register(task: TaskT) -> TaskT:
    """Register problem family ``task`` under its name; returns it."""
    _TASKS[task.name] = task
    return task


def register_steps(task: StepTaskT) -> StepTaskT:
    """Register the step view of the family of the same name; returns it."""
    _STEP_TASKS[task.name] = task
    return task


def _import_builtin() -> None:
    for module in BUILTIN:
        importlib.import_module(module)


_load = Once(_import_builtin)


def get_task(name: str) -> Task:
    _load()
    try:
        return _TASKS[name]
    except KeyError:
        known = ", ".join(sorted(_TASKS)) or "none"
        raise KeyError(f"unknown task {name!r}; known tasks: {known}") from None


def all_tasks() -> dict[str, Task]:
    _load()
    return dict(_TASKS)


def get_step_task(name: str | None) -> StepTask | None:
    """The step-task view of task family ``name`` (None if it has none)."""
    if name is None:
        return None
    _load()
    return _STEP_TASKS.get(name)


def messages_for(problem: Problem) -> list[Message]:
    """The chat messages that pose ``problem`` to a model: its family's prompt, else its
    free-form prompt or messages."""
    if problem.task is not None:
        return get_task(problem.task).messages(problem)
    if problem.prompt is not None:
        return [{"role": "user", "content": problem.prompt}]
    assert problem.messages is not None
    return [{"role": m.role, "content": m.content} for m in problem.messages]  # type: ignore[typeddict-item]


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
