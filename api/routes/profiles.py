"""``/v1/models``: the model profiles a job may name."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ContextDep, ReadTenant
from api.schemas import ModelPublic
from ponder.llm.profiles import public_view

router = APIRouter(prefix="/v1/models", tags=["catalog"])


@router.get("", summary="List models")
def list_models(tenant: ReadTenant, context: ContextDep) -> list[ModelPublic]:
    """The configured model profiles (never their keys). `sim`, the simulated model, is
    always available."""
    return [ModelPublic.model_validate(public_view(p)) for p in context.models.values()]
