"""Task families, looked up by name."""

from __future__ import annotations

from ponder.tasks.base import Task

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


def _load_builtin() -> None:
    if not _TASKS:
        from ponder.tasks import game24

        register_task(game24.TASK)
