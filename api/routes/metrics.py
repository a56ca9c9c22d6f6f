"""``/metrics``: Prometheus metrics (no API key; see :mod:`api.metrics`). Left out of the
API document: it is for monitoring systems, not API clients, and answers Prometheus'
text format rather than JSON."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client.exposition import choose_encoder

from api.errors import ApiProblem
from api.metrics import MetricsEndpoint

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    endpoint = request.app.state.metrics
    assert isinstance(endpoint, MetricsEndpoint)
    if endpoint.registry is None:
        raise ApiProblem(
            404, "metrics are turned off on this server (PONDER_METRICS_ENABLED=false)"
        )
    if not endpoint.here:
        raise ApiProblem(
            404,
            "this server serves its metrics on a port of their own "
            "(PONDER_API_METRICS_PORT), not on the API's port",
        )
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(endpoint.registry), media_type=content_type)
