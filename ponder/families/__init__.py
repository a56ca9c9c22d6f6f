"""Problem families (a problem's ``task``: ``game24``, ``arithmetic``), looked up by
name; one module each, registered in :mod:`ponder.families.registry`. The family
decides how a problem is posed (:func:`messages_for`) and which verifier it gets when
the job names none (:func:`verifier_for`)."""

from __future__ import annotations

from ponder.families.base import StepState, StepTask, Task
from ponder.families.registry import (
    all_tasks,
    get_step_task,
    get_task,
    messages_for,
    register,
    register_steps,
    validate_verifier_for,
    verifier_for,
)

__all__ = [
    "StepState",
    "StepTask",
    "Task",
    "all_tasks",
    "get_step_task",
    "get_task",
    "messages_for",
    "register",
    "register_steps",
    "validate_verifier_for",
    "verifier_for",
]
