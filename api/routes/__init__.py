"""The API's routes: one module per resource, each with a module-level ``router``
(a FastAPI ``APIRouter``). :func:`all_routers` finds them, so a new resource is one new
module here and nothing else."""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter


def all_routers(tag_order: list[str]) -> list[APIRouter]:
    """Every route module's ``router``, in the order of their first tag in
    ``tag_order`` (the order the API document lists them in), then by module name."""
    found: list[tuple[int, str, APIRouter]] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        router = getattr(module, "router", None)
        if not isinstance(router, APIRouter):
            raise TypeError(f"api.routes.{info.name} has no module-level `router` (APIRouter)")
        tag = str(router.tags[0]) if router.tags else ""
        rank = tag_order.index(tag) if tag in tag_order else len(tag_order)
        found.append((rank, info.name, router))
    return [router for _, _, router in sorted(found, key=lambda entry: entry[:2])]
