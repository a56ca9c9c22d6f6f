"""Task families, looked up by name."""

from __future__ import annotations

from ponder.families.base import Task
from ponder.once import Once

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
