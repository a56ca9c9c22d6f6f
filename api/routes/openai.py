"""``/openai/v1``: the OpenAI-compatible surface (``api/openai/``), so the official
``openai`` package works with ``base_url=http://HOST:PORT/openai/v1`` and a Ponder API
key. Its routes answer errors in OpenAI's shape and are left out of Ponder's own API
document (``/docs``); the README's "Use it from the OpenAI SDK" describes them."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.openai import batches, chat, files, models, responses
from api.openai.common import PREFIX, surface_router
from ponder.openai_compat.errors import OpenAIRequestError

# the modules whose routers make the surface (tests/integration/test_api_keys.py reads it)
PARTS = (chat, responses, files, batches, models)

router = APIRouter(prefix=PREFIX, tags=["openai"], include_in_schema=False)
for part in PARTS:
    router.include_router(part.router)

_fallback = surface_router("openai")

ENDPOINTS = (
    "POST /chat/completions, POST /responses, GET /responses/{id}, "
    "POST /responses/{id}/cancel, POST|GET /files, GET|DELETE /files/{id}, "
    "GET /files/{id}/content, POST|GET /batches, GET /batches/{id}, "
    "POST /batches/{id}/cancel, GET /models, GET /models/{model}"
)


@_fallback.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown_endpoint(rest: str, request: Request) -> None:
    """Anything else under /openai/v1: an OpenAI-shaped 404 listing what exists."""
    del rest
    raise OpenAIRequestError(
        f"Ponder's OpenAI-compatible API has no endpoint {request.method} "
        f"{request.url.path}; it serves {ENDPOINTS} (under {PREFIX})",
        status=404,
        error_code="unknown_url",
    )


router.include_router(_fallback)
