"""``/openai/v1/models``: every name a request's ``model`` may take."""

from __future__ import annotations

import time
from typing import Any

from api.deps import ContextDep
from api.openai.common import ReadKey, surface_router
from ponder.openai_compat.models import model_names, resolve

router = surface_router("openai")

# models "exist" since the API process started
_STARTED = int(time.time())


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": _STARTED, "owned_by": "ponder"}


@router.get("/models")
def list_models(key: ReadKey, context: ContextDep) -> Any:
    """Each chat model profile (the ``auto`` strategy on it), then STRATEGY/PROFILE for
    every strategy and profile."""
    names = model_names(context.models, context.strategies)
    return {"object": "list", "data": [_model(name) for name in names]}


@router.get("/models/{model:path}")
def retrieve_model(model: str, key: ReadKey, context: ContextDep) -> Any:
    """One model name; a 404 ``model_not_found`` if it names nothing here."""
    return _model(resolve(model, context.models, context.strategies).name)
