"""Every exception Ponder defines derives from PonderError and carries an ErrorCode, so
callers can map any of them by code (see ponder/errors.py). The walk below imports every
module of the service's packages: a new public exception class cannot slip in unbased."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

from ponder.errors import ErrorCode, PonderError

PACKAGES = ("ponder", "worker", "strategies", "api")

# HTTP adapters: each instance carries its own HTTP status (and the sim server's OpenAI
# error ``code``), so no one ErrorCode fits the class. They are responses, not failures
# of the service layer, and stay outside the hierarchy.
HTTP_ADAPTERS = {
    "api.errors.ApiProblem",
    "api.middleware.BodyTooLarge",
    "api.simulator.OpenAIError",
}


def _modules() -> list[ModuleType]:
    modules = []
    for name in PACKAGES:
        package = importlib.import_module(name)
        modules.append(package)
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            if info.name.rpartition(".")[2] == "__main__":
                continue  # runs the CLI when imported
            modules.append(importlib.import_module(info.name))
    return modules


def _exceptions() -> dict[str, type[BaseException]]:
    found = {}
    for module in _modules():
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not attr.startswith("_")
            ):
                found[f"{module.__name__}.{value.__qualname__}"] = value
    return found


EXCEPTIONS = _exceptions()


def test_the_walk_finds_the_exceptions() -> None:
    assert "ponder.runtime.LeaseLost" in EXCEPTIONS
    assert "ponder.llm.base.ContextTooLong" in EXCEPTIONS
    assert "ponder.schedules.cron.CronError" in EXCEPTIONS
    assert HTTP_ADAPTERS.issubset(EXCEPTIONS)  # still there: the exemption is not stale


@pytest.mark.parametrize("name", sorted(set(EXCEPTIONS) - HTTP_ADAPTERS))
def test_every_exception_is_a_ponder_error_with_a_code(name: str) -> None:
    cls = EXCEPTIONS[name]
    assert issubclass(cls, PonderError), f"{name} must derive from ponder.errors.PonderError"
    assert isinstance(cls.code, ErrorCode), f"{name}.code must be an ErrorCode"


@pytest.mark.parametrize(
    ("name", "base"),
    [
        # callers catch these by their standard base (``except ValueError`` around
        # parsing, pydantic validators turn a ValueError into a field error)
        ("ponder.schedules.cron.CronError", ValueError),
        ("ponder.llm.profiles.ModelsFileError", ValueError),
        ("ponder.verifiers.numeric.NumberError", ValueError),
        ("ponder.verifiers.llm_judge.ScoreError", ValueError),
        ("ponder.verifiers.game24.ExpressionError", ValueError),
        ("ponder.verifiers.game24.DivisionByZero", ArithmeticError),
        ("ponder.sandbox.SandboxUnavailable", RuntimeError),
    ],
)
def test_standard_bases_are_kept(name: str, base: type[Exception]) -> None:
    assert issubclass(EXCEPTIONS[name], base)


def test_subclasses_inherit_or_refine_the_code() -> None:
    assert EXCEPTIONS["ponder.llm.base.RateLimited"].code is ErrorCode.PROVIDER_UNAVAILABLE
    assert EXCEPTIONS["ponder.llm.base.AuthError"].code is ErrorCode.PROVIDER_AUTH
    assert EXCEPTIONS["ponder.budget.DeadlineExceeded"].code is ErrorCode.BUDGET_EXHAUSTED
    assert EXCEPTIONS["ponder.runtime.WorkerStopping"].code is ErrorCode.SLICE_EXPIRED
