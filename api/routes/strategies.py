"""``/v1/strategies``: the test-time-compute strategies a job may name."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ReadTenant
from api.schemas import StrategyPublic
from strategies.registry import all_strategies

router = APIRouter(prefix="/v1/strategies", tags=["catalog"])


@router.get("", summary="List strategies")
def list_strategies(tenant: ReadTenant) -> list[StrategyPublic]:
    """Every strategy, with the JSON Schema of the `strategy.params` it accepts."""
    return [
        StrategyPublic(
            name=spec.name, description=spec.description, params_schema=spec.params_schema()
        )
        for spec in all_strategies()
    ]
